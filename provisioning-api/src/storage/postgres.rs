//! PostgreSQL backend (sqlx, runtime-checked queries), for several API replicas sharing one
//! database.
//!
//! An assignment runs in one READ COMMITTED transaction: it locks the device's row, reads the
//! pool without locks, ranks it with [`crate::allocation`], then locks the best instance row
//! with `FOR UPDATE SKIP LOCKED` (so concurrent transactions spread over the next-best
//! instances instead of queueing on one), re-checks it, increments it with a compare-and-set
//! `UPDATE … WHERE registrations < registration_cap AND …`, and inserts the record under the
//! `(tenant, registration_id)` primary key. A concurrent insert of the same device, a failed
//! compare-and-set, a deadlock or a serialisation failure rolls back and retries.

use std::{collections::HashMap, sync::Arc, time::Duration};

use async_trait::async_trait;
use sqlx::{
    PgConnection, PgPool, Row,
    postgres::{PgConnectOptions, PgPoolOptions, PgRow},
};

use super::{
    AssignError, AssignKind, AssignMode, AssignOutcome, AssignRequest, ClaimOutcome, DeviceLookup,
    IdempotencyClaim, PoolError, SCHEMA, Storage, StorageError, StoredTicketKey,
    plan::{self, Decision},
    rows::{
        ASSIGNMENT_COLUMNS, AssignmentRow, INSTANCE_COLUMNS, InstanceRow, encode_public_key,
        sealed_ticket_key, ticket_key_from,
    },
    sealing::{SealedColumn, SecretsKeyring},
    to_i64,
};
use crate::model::{
    AllowlistEntry, Assignment, AssignmentStatus, DpsInstance, ImportOutcome, InstanceState,
    NewDpsInstance,
};

const MIGRATION_LOCK: i64 = 0x6669_656c_646c_6e6b;
const MAX_ATTEMPTS: usize = 16;
const IMPORT_CHUNK: usize = 5_000;

/// How to connect.
#[derive(Debug, Clone)]
pub struct PostgresOptions {
    /// Use (and create) this schema instead of `public`; lets tests and tenants of one server
    /// share a database.
    pub schema: Option<String>,
    /// Pool size.
    pub max_connections: u32,
    /// How long to wait for a pooled connection.
    pub acquire_timeout: Duration,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        Self {
            schema: None,
            max_connections: 16,
            acquire_timeout: Duration::from_secs(5),
        }
    }
}

/// The PostgreSQL store.
#[derive(Debug, Clone)]
pub struct PostgresStorage {
    pool: PgPool,
    schema: Option<String>,
    secrets: Arc<SecretsKeyring>,
}

impl From<sqlx::Error> for StorageError {
    fn from(error: sqlx::Error) -> Self {
        StorageError::Unavailable(format!("postgres: {error}"))
    }
}

impl From<sqlx::Error> for AssignError {
    fn from(error: sqlx::Error) -> Self {
        AssignError::Storage(error.into())
    }
}

impl From<sqlx::Error> for PoolError {
    fn from(error: sqlx::Error) -> Self {
        PoolError::Storage(error.into())
    }
}

/// Whether `name` is a plain lower-case SQL identifier (safe to quote into DDL).
fn valid_schema_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

impl PostgresStorage {
    /// Connects with a process-lifetime ephemeral secrets key ([`SecretsKeyring::ephemeral`]):
    /// for throw-away schemas (tests, benches) only. A persistent database needs
    /// [`Self::connect_sealed`].
    pub async fn connect(url: &str, options: PostgresOptions) -> Result<Self, StorageError> {
        Self::connect_sealed(url, options, SecretsKeyring::ephemeral()).await
    }

    /// Connects to `url`, applies the schema and brings every stored secret under `secrets`'
    /// current key (idempotent; serialised between replicas with an advisory lock). A secret
    /// sealed with a key `secrets` does not hold fails with
    /// [`StorageError::SecretsKeyMismatch`].
    pub async fn connect_sealed(
        url: &str,
        options: PostgresOptions,
        secrets: SecretsKeyring,
    ) -> Result<Self, StorageError> {
        let mut connect: PgConnectOptions = url
            .parse()
            .map_err(|e| StorageError::Unavailable(format!("bad PostgreSQL URL: {e}")))?;
        if let Some(schema) = &options.schema {
            if !valid_schema_name(schema) {
                return Err(StorageError::Unavailable(format!(
                    "schema name {schema:?} must match [a-z_][a-z0-9_]*"
                )));
            }
            connect = connect.options([("search_path", schema.as_str())]);
        }
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections)
            .acquire_timeout(options.acquire_timeout)
            .connect_with(connect)
            .await?;
        let storage = Self {
            pool,
            schema: options.schema,
            secrets: Arc::new(secrets),
        };
        storage.migrate().await?;
        Ok(storage)
    }

    async fn migrate(&self) -> Result<(), StorageError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(MIGRATION_LOCK)
            .execute(&mut *tx)
            .await?;
        if let Some(schema) = &self.schema {
            sqlx::raw_sql(&format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\""))
                .execute(&mut *tx)
                .await?;
        }
        sqlx::raw_sql(SCHEMA).execute(&mut *tx).await?;
        for (column, select, update) in [
            (
                SealedColumn::TicketPrivateKey,
                "SELECT key_id, private_pkcs8_pem FROM ticket_keys FOR UPDATE",
                "UPDATE ticket_keys SET private_pkcs8_pem = $1 WHERE key_id = $2",
            ),
            (
                SealedColumn::DpsServiceKey,
                "SELECT name, service_key FROM dps_instances WHERE service_key IS NOT NULL \
                 FOR UPDATE",
                "UPDATE dps_instances SET service_key = $1 WHERE name = $2",
            ),
        ] {
            let stored: Vec<(String, String)> = sqlx::query_as(select).fetch_all(&mut *tx).await?;
            for (row, value) in stored {
                if let Some(sealed) = self.secrets.migrate(column, &row, &value)? {
                    sqlx::query(update)
                        .bind(&sealed)
                        .bind(&row)
                        .execute(&mut *tx)
                        .await?;
                }
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// Drops this store's schema (tests clean up after themselves). Refuses for `public`.
    pub async fn drop_schema(&self) -> Result<(), StorageError> {
        if let Some(schema) = &self.schema {
            sqlx::raw_sql(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
                .execute(&self.pool)
                .await?;
        }
        Ok(())
    }

    /// The schema this store lives in (`None`: the connection's default).
    pub fn schema(&self) -> Option<&str> {
        self.schema.as_deref()
    }

    /// The connection pool.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

fn instance_row(row: &PgRow) -> Result<InstanceRow, sqlx::Error> {
    Ok(InstanceRow {
        name: row.try_get("name")?,
        id_scope: row.try_get("id_scope")?,
        global_endpoint: row.try_get("global_endpoint")?,
        service_endpoint: row.try_get("service_endpoint")?,
        region: row.try_get("region")?,
        allowed_tenants: row.try_get("allowed_tenants")?,
        registration_cap: row.try_get("registration_cap")?,
        rate_limit_per_minute: row.try_get("rate_limit_per_minute")?,
        state: row.try_get("state")?,
        registrations: row.try_get("registrations")?,
        rate_minute: row.try_get("rate_minute")?,
        rate_count: row.try_get("rate_count")?,
        rate_previous_count: row.try_get("rate_previous_count")?,
        service_policy_name: row.try_get("service_policy_name")?,
        service_key: row.try_get("service_key")?,
        service_resource_uri: row.try_get("service_resource_uri")?,
        created_at_ms: row.try_get("created_at_ms")?,
    })
}

fn instance_from(row: &PgRow, secrets: &SecretsKeyring) -> Result<DpsInstance, StorageError> {
    instance_row(row)?.into_instance(secrets)
}

fn assignment_from(row: &PgRow) -> Result<Assignment, StorageError> {
    AssignmentRow {
        tenant: row.try_get("tenant")?,
        registration_id: row.try_get("registration_id")?,
        dps_instance: row.try_get("dps_instance")?,
        id_scope: row.try_get("id_scope")?,
        global_endpoint: row.try_get("global_endpoint")?,
        region: row.try_get("region")?,
        status: row.try_get("status")?,
        generation: row.try_get("generation")?,
        assigned_at_ms: row.try_get("assigned_at_ms")?,
        updated_at_ms: row.try_get("updated_at_ms")?,
    }
    .into_assignment()
}

async fn load_instance(
    conn: &mut PgConnection,
    name: &str,
    lock: &str,
    secrets: &SecretsKeyring,
) -> Result<Option<DpsInstance>, StorageError> {
    sqlx::query(&format!(
        "SELECT {INSTANCE_COLUMNS} FROM dps_instances WHERE name = $1 {lock}"
    ))
    .bind(name)
    .fetch_optional(&mut *conn)
    .await?
    .as_ref()
    .map(|row| instance_from(row, secrets))
    .transpose()
}

async fn load_instances(
    conn: &mut PgConnection,
    secrets: &SecretsKeyring,
) -> Result<Vec<DpsInstance>, StorageError> {
    sqlx::query(&format!(
        "SELECT {INSTANCE_COLUMNS} FROM dps_instances ORDER BY name"
    ))
    .fetch_all(&mut *conn)
    .await?
    .iter()
    .map(|row| instance_from(row, secrets))
    .collect()
}

async fn load_assignment(
    conn: &mut PgConnection,
    tenant: &str,
    registration_id: &str,
    lock: &str,
) -> Result<Option<Assignment>, StorageError> {
    sqlx::query(&format!(
        "SELECT {ASSIGNMENT_COLUMNS} FROM assignments WHERE tenant = $1 AND registration_id = $2 \
         {lock}"
    ))
    .bind(tenant)
    .bind(registration_id)
    .fetch_optional(&mut *conn)
    .await?
    .as_ref()
    .map(assignment_from)
    .transpose()
}

async fn allowlist_owner(
    conn: &mut PgConnection,
    registration_id: &str,
) -> Result<Option<String>, StorageError> {
    Ok(
        sqlx::query_scalar("SELECT tenant FROM allowlist WHERE registration_id = $1")
            .bind(registration_id)
            .fetch_optional(&mut *conn)
            .await?,
    )
}

async fn assigned_elsewhere(
    conn: &mut PgConnection,
    tenant: &str,
    registration_id: &str,
    only_assigned: bool,
) -> Result<bool, StorageError> {
    Ok(sqlx::query_scalar::<_, i32>(
        "SELECT 1 FROM assignments WHERE registration_id = $1 AND tenant <> $2 \
         AND (NOT $3 OR status = 'assigned') LIMIT 1",
    )
    .bind(registration_id)
    .bind(tenant)
    .bind(only_assigned)
    .fetch_optional(&mut *conn)
    .await?
    .is_some())
}

/// The allowlist owner and whether another tenant holds a current assignment, in one round
/// trip.
async fn ownership(
    conn: &mut PgConnection,
    tenant: &str,
    registration_id: &str,
) -> Result<(Option<String>, bool), StorageError> {
    let row = sqlx::query(
        "SELECT (SELECT tenant FROM allowlist WHERE registration_id = $1) AS owner, \
         EXISTS (SELECT 1 FROM assignments WHERE registration_id = $1 AND tenant <> $2 \
         AND status = 'assigned') AS elsewhere",
    )
    .bind(registration_id)
    .bind(tenant)
    .fetch_one(&mut *conn)
    .await?;
    Ok((row.try_get("owner")?, row.try_get("elsewhere")?))
}

async fn increment(
    conn: &mut PgConnection,
    instance: &DpsInstance,
    now_ms: i64,
) -> Result<bool, StorageError> {
    let next = instance.rate.record(now_ms);
    let result = sqlx::query(
        "UPDATE dps_instances SET registrations = registrations + 1, rate_minute = $1, \
         rate_count = $2, rate_previous_count = $3 \
         WHERE name = $4 AND state = 'active' AND registrations < registration_cap \
         AND registrations = $5 AND rate_minute = $6 AND rate_count = $7",
    )
    .bind(next.minute)
    .bind(to_i64(next.count))
    .bind(to_i64(next.previous_count))
    .bind(&instance.name)
    .bind(to_i64(instance.registrations))
    .bind(instance.rate.minute)
    .bind(to_i64(instance.rate.count))
    .execute(&mut *conn)
    .await?;
    Ok(result.rows_affected() == 1)
}

async fn decrement(conn: &mut PgConnection, name: &str) -> Result<(), StorageError> {
    sqlx::query(
        "UPDATE dps_instances SET registrations = registrations - 1 \
         WHERE name = $1 AND registrations > 0",
    )
    .bind(name)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Inserts (`insert_only`: fails softly on a concurrent insert, returning `false`) or updates
/// an assignment record.
async fn write_assignment(
    conn: &mut PgConnection,
    a: &Assignment,
    insert_only: bool,
) -> Result<bool, StorageError> {
    let on_conflict = if insert_only {
        "DO NOTHING"
    } else {
        "DO UPDATE SET dps_instance = EXCLUDED.dps_instance, id_scope = EXCLUDED.id_scope, \
         global_endpoint = EXCLUDED.global_endpoint, region = EXCLUDED.region, \
         status = EXCLUDED.status, generation = EXCLUDED.generation, \
         assigned_at_ms = EXCLUDED.assigned_at_ms, updated_at_ms = EXCLUDED.updated_at_ms"
    };
    let result = sqlx::query(&format!(
        "INSERT INTO assignments ({ASSIGNMENT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, \
         $9, $10) ON CONFLICT (tenant, registration_id) {on_conflict}"
    ))
    .bind(&a.tenant)
    .bind(&a.registration_id)
    .bind(&a.dps_instance)
    .bind(&a.id_scope)
    .bind(&a.global_endpoint)
    .bind(&a.region)
    .bind(a.status.as_str())
    .bind(to_i64(a.generation))
    .bind(a.assigned_at_ms)
    .bind(a.updated_at_ms)
    .execute(&mut *conn)
    .await?;
    Ok(result.rows_affected() == 1)
}

/// Why one transaction attempt ended without an answer.
enum Attempt {
    /// Contention: roll back and try again.
    Retry,
    /// A definite answer.
    Fail(AssignError),
}

fn transient(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(db)
        if matches!(db.code().as_deref(), Some("40001" | "40P01" | "23505")))
}

impl From<sqlx::Error> for Attempt {
    fn from(error: sqlx::Error) -> Self {
        if transient(&error) {
            Attempt::Retry
        } else {
            Attempt::Fail(error.into())
        }
    }
}

impl From<StorageError> for Attempt {
    fn from(error: StorageError) -> Self {
        Attempt::Fail(error.into())
    }
}

impl From<AssignError> for Attempt {
    fn from(error: AssignError) -> Self {
        Attempt::Fail(error)
    }
}

async fn lock_candidate(
    conn: &mut PgConnection,
    names: &[String],
    request: &AssignRequest,
    current: Option<&str>,
    secrets: &SecretsKeyring,
) -> Result<Option<DpsInstance>, StorageError> {
    for name in names {
        if let Some(instance) = load_instance(conn, name, "FOR UPDATE SKIP LOCKED", secrets).await?
            && plan::still_admits(&instance, request, current)
        {
            return Ok(Some(instance));
        }
    }
    // Every candidate is busy in another transaction: queue on the best one.
    if let Some(first) = names.first()
        && let Some(instance) = load_instance(conn, first, "FOR UPDATE", secrets).await?
        && plan::still_admits(&instance, request, current)
    {
        return Ok(Some(instance));
    }
    Ok(None)
}

impl PostgresStorage {
    /// A sticky repeat for a device that holds a slot needs no transaction: one read answers
    /// it. `None` means the full transaction must run.
    async fn sticky_repeat(
        &self,
        request: &AssignRequest,
    ) -> Result<Option<AssignOutcome>, AssignError> {
        if request.mode != AssignMode::Sticky {
            return Ok(None);
        }
        let row = sqlx::query(&format!(
            "SELECT {ASSIGNMENT_COLUMNS}, \
             (SELECT tenant FROM allowlist l WHERE l.registration_id = $2) AS owner, \
             EXISTS (SELECT 1 FROM assignments o WHERE o.registration_id = $2 AND o.tenant <> $1 \
             AND o.status = 'assigned') AS elsewhere \
             FROM assignments WHERE tenant = $1 AND registration_id = $2 AND status = 'assigned'"
        ))
        .bind(&request.tenant)
        .bind(&request.registration_id)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let owner: Option<String> = row.try_get("owner")?;
        let elsewhere: bool = row.try_get("elsewhere")?;
        plan::check_owner(request, owner.as_deref(), elsewhere)?;
        Ok(Some(AssignOutcome {
            assignment: assignment_from(&row)?,
            kind: AssignKind::Existing,
        }))
    }

    async fn try_assign(&self, request: &AssignRequest) -> Result<AssignOutcome, Attempt> {
        let mut tx = self.pool.begin().await?;
        let (owner, elsewhere) =
            ownership(&mut tx, &request.tenant, &request.registration_id).await?;
        plan::check_owner(request, owner.as_deref(), elsewhere)?;
        let existing = load_assignment(
            &mut tx,
            &request.tenant,
            &request.registration_id,
            "FOR UPDATE",
        )
        .await?;
        let current = match plan::decide(existing.as_ref(), request)? {
            Decision::Keep(assignment) => {
                tx.commit().await?;
                return Ok(AssignOutcome {
                    assignment,
                    kind: AssignKind::Existing,
                });
            }
            Decision::Place { current } => current,
        };
        let instances = load_instances(&mut tx, &self.secrets).await?;
        let names = plan::candidates(&instances, request, current.as_deref())?;
        let Some(chosen) =
            lock_candidate(&mut tx, &names, request, current.as_deref(), &self.secrets).await?
        else {
            return Err(Attempt::Retry);
        };
        let (assignment, kind) = plan::placed(existing.as_ref(), &chosen, request);
        if kind != AssignKind::Existing {
            if !increment(&mut tx, &chosen, request.now_ms).await? {
                return Err(Attempt::Retry);
            }
            if let AssignKind::Moved { from } = &kind {
                decrement(&mut tx, from).await?;
            }
            if !write_assignment(&mut tx, &assignment, existing.is_none()).await? {
                // Another transaction inserted this device first.
                return Err(Attempt::Retry);
            }
        }
        tx.commit().await?;
        Ok(AssignOutcome { assignment, kind })
    }
}

#[async_trait]
impl Storage for PostgresStorage {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    async fn ping(&self) -> Result<(), StorageError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn add_instance(
        &self,
        spec: NewDpsInstance,
        now_ms: i64,
    ) -> Result<DpsInstance, PoolError> {
        let row = InstanceRow::new(spec, now_ms, &self.secrets)?;
        let result = sqlx::query(&format!(
            "INSERT INTO dps_instances ({INSTANCE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, \
             $8, $9, $10, $11, $12, $13, $14, $15, $16, $17) ON CONFLICT DO NOTHING \
             RETURNING {INSTANCE_COLUMNS}"
        ))
        .bind(&row.name)
        .bind(&row.id_scope)
        .bind(&row.global_endpoint)
        .bind(&row.service_endpoint)
        .bind(&row.region)
        .bind(&row.allowed_tenants)
        .bind(row.registration_cap)
        .bind(row.rate_limit_per_minute)
        .bind(&row.state)
        .bind(row.registrations)
        .bind(row.rate_minute)
        .bind(row.rate_count)
        .bind(row.rate_previous_count)
        .bind(&row.service_policy_name)
        .bind(&row.service_key)
        .bind(&row.service_resource_uri)
        .bind(row.created_at_ms)
        .fetch_optional(&self.pool)
        .await?;
        match result {
            Some(row) => Ok(instance_from(&row, &self.secrets)?),
            None => Err(PoolError::AlreadyExists),
        }
    }

    async fn list_instances(&self) -> Result<Vec<DpsInstance>, StorageError> {
        let mut conn = self.pool.acquire().await?;
        load_instances(&mut conn, &self.secrets).await
    }

    async fn instance(&self, name: &str) -> Result<Option<DpsInstance>, StorageError> {
        let mut conn = self.pool.acquire().await?;
        load_instance(&mut conn, name, "", &self.secrets).await
    }

    async fn set_instance_state(
        &self,
        name: &str,
        state: InstanceState,
    ) -> Result<DpsInstance, PoolError> {
        let row = sqlx::query(&format!(
            "UPDATE dps_instances SET state = $1 WHERE name = $2 RETURNING {INSTANCE_COLUMNS}"
        ))
        .bind(state.as_str())
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some(row) => Ok(instance_from(&row, &self.secrets)?),
            None => Err(PoolError::NotFound(name.to_owned())),
        }
    }

    async fn remove_instance(&self, name: &str) -> Result<(), PoolError> {
        let mut tx = self.pool.begin().await?;
        let instance = load_instance(&mut tx, name, "FOR UPDATE", &self.secrets)
            .await?
            .ok_or_else(|| PoolError::NotFound(name.to_owned()))?;
        if instance.registrations > 0 {
            return Err(PoolError::NotEmpty {
                registrations: instance.registrations,
            });
        }
        sqlx::query("DELETE FROM dps_instances WHERE name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn import_allowlist(
        &self,
        tenant: &str,
        entries: Vec<AllowlistEntry>,
        now_ms: i64,
    ) -> Result<ImportOutcome, StorageError> {
        let mut outcome = ImportOutcome::default();
        let mut tx = self.pool.begin().await?;
        for chunk in entries.chunks(IMPORT_CHUNK) {
            let ids: Vec<String> = chunk.iter().map(|e| e.registration_id.clone()).collect();
            let labels: Vec<Option<String>> = chunk.iter().map(|e| e.label.clone()).collect();
            let inserted: Vec<String> = sqlx::query_scalar(
                "INSERT INTO allowlist (registration_id, tenant, label, imported_at_ms) \
                 SELECT id, $3, label, $4 FROM UNNEST($1::text[], $2::text[]) AS t(id, label) \
                 ON CONFLICT (registration_id) DO NOTHING RETURNING registration_id",
            )
            .bind(&ids)
            .bind(&labels)
            .bind(tenant)
            .bind(now_ms)
            .fetch_all(&mut *tx)
            .await?;
            outcome.added += inserted.len() as u64;
            let mut fresh: HashMap<String, u32> = HashMap::new();
            for id in inserted {
                *fresh.entry(id).or_default() += 1;
            }
            let owners: HashMap<String, String> = sqlx::query(
                "SELECT registration_id, tenant FROM allowlist WHERE registration_id = ANY($1)",
            )
            .bind(&ids)
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
            .collect::<Result<_, sqlx::Error>>()?;
            for id in ids {
                if let Some(count) = fresh.get_mut(&id)
                    && *count > 0
                {
                    *count -= 1;
                    continue;
                }
                match owners.get(&id) {
                    Some(owner) if owner == tenant => outcome.already_listed += 1,
                    _ => outcome.owned_by_other_tenant.push(id),
                }
            }
        }
        tx.commit().await?;
        Ok(outcome)
    }

    async fn allowlist_page(
        &self,
        tenant: &str,
        after: Option<String>,
        limit: u32,
    ) -> Result<Vec<AllowlistEntry>, StorageError> {
        let rows = sqlx::query(
            "SELECT registration_id, label FROM allowlist WHERE tenant = $1 \
             AND registration_id > $2 ORDER BY registration_id LIMIT $3",
        )
        .bind(tenant)
        .bind(after.unwrap_or_default())
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(AllowlistEntry {
                    registration_id: row.try_get(0)?,
                    label: row.try_get(1)?,
                })
            })
            .collect()
    }

    async fn remove_from_allowlist(
        &self,
        tenant: &str,
        registration_id: &str,
    ) -> Result<bool, StorageError> {
        let result =
            sqlx::query("DELETE FROM allowlist WHERE tenant = $1 AND registration_id = $2")
                .bind(tenant)
                .bind(registration_id)
                .execute(&self.pool)
                .await?;
        Ok(result.rows_affected() == 1)
    }

    async fn device(
        &self,
        tenant: &str,
        registration_id: &str,
    ) -> Result<DeviceLookup, StorageError> {
        let mut conn = self.pool.acquire().await?;
        let owner = allowlist_owner(&mut conn, registration_id).await?;
        let assignment = load_assignment(&mut conn, tenant, registration_id, "").await?;
        Ok(match (owner, assignment) {
            (Some(owner), assignment) if owner == tenant => DeviceLookup::Owned {
                allowlisted: true,
                assignment,
            },
            (_, Some(assignment)) => DeviceLookup::Owned {
                allowlisted: false,
                assignment: Some(assignment),
            },
            (Some(_), None) => DeviceLookup::OtherTenant,
            (None, None) => {
                if assigned_elsewhere(&mut conn, tenant, registration_id, false).await? {
                    DeviceLookup::OtherTenant
                } else {
                    DeviceLookup::Unknown
                }
            }
        })
    }

    async fn assign(&self, request: AssignRequest) -> Result<AssignOutcome, AssignError> {
        if let Some(outcome) = self.sticky_repeat(&request).await? {
            return Ok(outcome);
        }
        for _ in 0..MAX_ATTEMPTS {
            match self.try_assign(&request).await {
                Ok(outcome) => return Ok(outcome),
                Err(Attempt::Fail(error)) => return Err(error),
                Err(Attempt::Retry) => tokio::task::yield_now().await,
            }
        }
        Err(StorageError::Unavailable(format!(
            "assignment still contended after {MAX_ATTEMPTS} attempts"
        ))
        .into())
    }

    async fn deprovision(
        &self,
        tenant: &str,
        registration_id: &str,
        now_ms: i64,
    ) -> Result<Assignment, AssignError> {
        let mut tx = self.pool.begin().await?;
        let Some(mut assignment) =
            load_assignment(&mut tx, tenant, registration_id, "FOR UPDATE").await?
        else {
            return Err(AssignError::NotAssigned);
        };
        if assignment.status == AssignmentStatus::Assigned {
            decrement(&mut tx, &assignment.dps_instance).await?;
            assignment.status = AssignmentStatus::Deprovisioned;
            assignment.updated_at_ms = now_ms;
            write_assignment(&mut tx, &assignment, false).await?;
        }
        tx.commit().await?;
        Ok(assignment)
    }

    async fn claim_idempotency_key(
        &self,
        claim: IdempotencyClaim,
    ) -> Result<ClaimOutcome, StorageError> {
        let mut tx = self.pool.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO idempotency_keys (tenant, idempotency_key, fingerprint, response, \
             created_at_ms, expires_at_ms) VALUES ($1, $2, $3, NULL, $4, $5) \
             ON CONFLICT (tenant, idempotency_key) DO NOTHING",
        )
        .bind(&claim.tenant)
        .bind(&claim.key)
        .bind(&claim.fingerprint)
        .bind(claim.now_ms)
        .bind(claim.expires_at_ms)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if inserted {
            tx.commit().await?;
            return Ok(ClaimOutcome::Claimed);
        }
        let row = sqlx::query(
            "SELECT fingerprint, response, created_at_ms, expires_at_ms FROM idempotency_keys \
             WHERE tenant = $1 AND idempotency_key = $2 FOR UPDATE",
        )
        .bind(&claim.tenant)
        .bind(&claim.key)
        .fetch_one(&mut *tx)
        .await?;
        let fingerprint: String = row.try_get(0)?;
        let response: Option<String> = row.try_get(1)?;
        let created: i64 = row.try_get(2)?;
        let expires: i64 = row.try_get(3)?;
        let outcome = if expires <= claim.now_ms {
            None
        } else if fingerprint != claim.fingerprint {
            Some(ClaimOutcome::Mismatch)
        } else if let Some(response) = response {
            Some(ClaimOutcome::Completed { response })
        } else if created + claim.stale_after_ms > claim.now_ms {
            Some(ClaimOutcome::InProgress)
        } else {
            None
        };
        if let Some(outcome) = outcome {
            tx.commit().await?;
            return Ok(outcome);
        }
        sqlx::query(
            "UPDATE idempotency_keys SET fingerprint = $3, response = NULL, created_at_ms = $4, \
             expires_at_ms = $5 WHERE tenant = $1 AND idempotency_key = $2",
        )
        .bind(&claim.tenant)
        .bind(&claim.key)
        .bind(&claim.fingerprint)
        .bind(claim.now_ms)
        .bind(claim.expires_at_ms)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(ClaimOutcome::Claimed)
    }

    async fn complete_idempotency_key(
        &self,
        tenant: &str,
        key: &str,
        response: &str,
    ) -> Result<(), StorageError> {
        sqlx::query(
            "UPDATE idempotency_keys SET response = $1 WHERE tenant = $2 AND idempotency_key = $3",
        )
        .bind(response)
        .bind(tenant)
        .bind(key)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn release_idempotency_key(&self, tenant: &str, key: &str) -> Result<(), StorageError> {
        sqlx::query(
            "DELETE FROM idempotency_keys WHERE tenant = $1 AND idempotency_key = $2 \
             AND response IS NULL",
        )
        .bind(tenant)
        .bind(key)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn purge_idempotency_keys(&self, now_ms: i64) -> Result<u64, StorageError> {
        let result = sqlx::query("DELETE FROM idempotency_keys WHERE expires_at_ms <= $1")
            .bind(now_ms)
            .execute(&self.pool)
            .await?;
        Ok(result.rows_affected())
    }

    async fn ticket_keys(&self) -> Result<Vec<StoredTicketKey>, StorageError> {
        let rows = sqlx::query(
            "SELECT key_id, private_pkcs8_pem, public_key, state, created_at_ms \
             FROM ticket_keys ORDER BY created_at_ms DESC, key_id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                ticket_key_from(
                    (
                        row.try_get(0)?,
                        row.try_get(1)?,
                        row.try_get(2)?,
                        row.try_get(3)?,
                        row.try_get(4)?,
                    ),
                    &self.secrets,
                )
            })
            .collect()
    }

    async fn put_ticket_key(
        &self,
        key: StoredTicketKey,
        rotate: bool,
    ) -> Result<bool, StorageError> {
        let sealed = sealed_ticket_key(&key, &self.secrets)?;
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(MIGRATION_LOCK + 1)
            .execute(&mut *tx)
            .await?;
        if rotate {
            sqlx::query("UPDATE ticket_keys SET state = 'previous' WHERE state = 'current'")
                .execute(&mut *tx)
                .await?;
        }
        let inserted = sqlx::query(
            "INSERT INTO ticket_keys (key_id, private_pkcs8_pem, public_key, state, \
             created_at_ms) VALUES ($1, $2, $3, 'current', $4) ON CONFLICT DO NOTHING",
        )
        .bind(&key.key_id)
        .bind(&sealed)
        .bind(encode_public_key(&key.public_key))
        .bind(key.created_at_ms)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        tx.commit().await?;
        Ok(inserted)
    }

    async fn retire_ticket_key(&self, key_id: &str) -> Result<bool, StorageError> {
        let result =
            sqlx::query("DELETE FROM ticket_keys WHERE key_id = $1 AND state = 'previous'")
                .bind(key_id)
                .execute(&self.pool)
                .await?;
        Ok(result.rows_affected() == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_names_are_plain_identifiers() {
        assert!(valid_schema_name("test_0a1b"));
        assert!(valid_schema_name("_x"));
        assert!(!valid_schema_name(""));
        assert!(!valid_schema_name("1abc"));
        assert!(!valid_schema_name("a\"; DROP TABLE x; --"));
        assert!(!valid_schema_name("Upper"));
    }
}
