//! SQLite backend: one connection in WAL mode, owned by a dedicated thread; async callers send
//! it closures and await the answer, so the runtime never blocks on SQLite. One writer also
//! serialises every transaction, which is all the allocation needs for correctness.

use std::{
    path::{Path, PathBuf},
    sync::{Arc, mpsc},
    time::Duration,
};

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, Row, Transaction, TransactionBehavior, params};
use tokio::sync::oneshot;

use super::{
    AssignError, AssignKind, AssignOutcome, AssignRequest, ClaimOutcome, DeviceLookup,
    IdempotencyClaim, PoolError, SCHEMA, Storage, StorageError, StoredTicketKey,
    plan::{self, Decision},
    rows::{
        ASSIGNMENT_COLUMNS, AssignmentRow, INSTANCE_COLUMNS, InstanceRow, TicketKeyColumns,
        encode_public_key, sealed_ticket_key, ticket_key_from,
    },
    sealing::{SealedColumn, SecretsKeyring},
    to_i64,
};
use crate::model::{
    AllowlistEntry, Assignment, AssignmentStatus, DpsInstance, ImportOutcome, InstanceState,
    NewDpsInstance,
};

type Job = Box<dyn FnOnce(&mut Connection) + Send>;

/// The embedded SQLite store.
pub struct SqliteStorage {
    jobs: mpsc::Sender<Job>,
    path: PathBuf,
    secrets: Arc<SecretsKeyring>,
}

impl std::fmt::Debug for SqliteStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStorage")
            .field("path", &self.path)
            .field("secrets_key", &self.secrets.current_id())
            .finish()
    }
}

impl From<rusqlite::Error> for StorageError {
    fn from(error: rusqlite::Error) -> Self {
        StorageError::Unavailable(format!("sqlite: {error}"))
    }
}

impl From<rusqlite::Error> for AssignError {
    fn from(error: rusqlite::Error) -> Self {
        AssignError::Storage(error.into())
    }
}

impl From<rusqlite::Error> for PoolError {
    fn from(error: rusqlite::Error) -> Self {
        PoolError::Storage(error.into())
    }
}

fn open_connection(path: &Path) -> Result<Connection, StorageError> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StorageError::Unavailable(format!(
            "sqlite refused WAL mode (got {mode})"
        )));
    }
    conn.execute_batch("PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;")?;
    conn.execute_batch(SCHEMA)?;
    Ok(conn)
}

/// Seals plaintext secrets and re-seals those under a previous key, in one transaction;
/// fails on a secret sealed with an unknown key or one that does not open.
fn migrate_secrets(conn: &mut Connection, secrets: &SecretsKeyring) -> Result<(), StorageError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    for (column, select, update) in [
        (
            SealedColumn::TicketPrivateKey,
            "SELECT key_id, private_pkcs8_pem FROM ticket_keys",
            "UPDATE ticket_keys SET private_pkcs8_pem = ?1 WHERE key_id = ?2",
        ),
        (
            SealedColumn::DpsServiceKey,
            "SELECT name, service_key FROM dps_instances WHERE service_key IS NOT NULL",
            "UPDATE dps_instances SET service_key = ?1 WHERE name = ?2",
        ),
    ] {
        let stored: Vec<(String, String)> = tx
            .prepare(select)?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        for (row, value) in stored {
            if let Some(sealed) = secrets.migrate(column, &row, &value)? {
                tx.execute(update, [&sealed, &row])?;
            }
        }
    }
    tx.commit()?;
    Ok(())
}

impl SqliteStorage {
    /// Opens (creating if needed) the database at `path` with a process-lifetime ephemeral
    /// secrets key ([`SecretsKeyring::ephemeral`]): for temporary databases (tests,
    /// sandboxes) only. A persistent database needs [`Self::open_sealed`].
    pub async fn open(path: impl AsRef<Path>) -> Result<Self, StorageError> {
        Self::open_sealed(path, SecretsKeyring::ephemeral()).await
    }

    /// Opens (creating if needed) the database at `path`, in WAL mode, applies the schema and
    /// brings every stored secret under `secrets`' current key (plaintext legacy values are
    /// sealed, values under a previous key re-sealed). A secret sealed with a key `secrets`
    /// does not hold fails with [`StorageError::SecretsKeyMismatch`].
    pub async fn open_sealed(
        path: impl AsRef<Path>,
        secrets: SecretsKeyring,
    ) -> Result<Self, StorageError> {
        let path = path.as_ref().to_path_buf();
        let secrets = Arc::new(secrets);
        let thread_secrets = secrets.clone();
        let (jobs, queue) = mpsc::channel::<Job>();
        let (ready_tx, ready_rx) = oneshot::channel();
        let thread_path = path.clone();
        std::thread::Builder::new()
            .name("fieldlink-sqlite".to_owned())
            .spawn(move || {
                let opened = open_connection(&thread_path).and_then(|mut conn| {
                    migrate_secrets(&mut conn, &thread_secrets)?;
                    Ok(conn)
                });
                let mut conn = match opened {
                    Ok(conn) => {
                        let _ = ready_tx.send(Ok(()));
                        conn
                    }
                    Err(error) => {
                        let _ = ready_tx.send(Err(error));
                        return;
                    }
                };
                while let Ok(job) = queue.recv() {
                    job(&mut conn);
                }
            })
            .map_err(|e| StorageError::Unavailable(format!("cannot start sqlite thread: {e}")))?;
        ready_rx
            .await
            .map_err(|_| StorageError::Unavailable("sqlite thread died".to_owned()))??;
        Ok(Self {
            jobs,
            path,
            secrets,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    async fn run<R, E, F>(&self, job: F) -> Result<R, E>
    where
        F: FnOnce(&mut Connection, &SecretsKeyring) -> Result<R, E> + Send + 'static,
        R: Send + 'static,
        E: From<StorageError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let secrets = self.secrets.clone();
        self.jobs
            .send(Box::new(move |conn| {
                let _ = reply.send(job(conn, &secrets));
            }))
            .map_err(|_| StorageError::Unavailable("sqlite thread stopped".to_owned()))?;
        answer
            .await
            .map_err(|_| StorageError::Unavailable("sqlite thread stopped".to_owned()))?
    }
}

fn instance_row(row: &Row<'_>) -> rusqlite::Result<InstanceRow> {
    Ok(InstanceRow {
        name: row.get(0)?,
        id_scope: row.get(1)?,
        global_endpoint: row.get(2)?,
        service_endpoint: row.get(3)?,
        region: row.get(4)?,
        allowed_tenants: row.get(5)?,
        registration_cap: row.get(6)?,
        rate_limit_per_minute: row.get(7)?,
        state: row.get(8)?,
        registrations: row.get(9)?,
        rate_minute: row.get(10)?,
        rate_count: row.get(11)?,
        rate_previous_count: row.get(12)?,
        service_policy_name: row.get(13)?,
        service_key: row.get(14)?,
        service_resource_uri: row.get(15)?,
        created_at_ms: row.get(16)?,
    })
}

fn assignment_row(row: &Row<'_>) -> rusqlite::Result<AssignmentRow> {
    Ok(AssignmentRow {
        tenant: row.get(0)?,
        registration_id: row.get(1)?,
        dps_instance: row.get(2)?,
        id_scope: row.get(3)?,
        global_endpoint: row.get(4)?,
        region: row.get(5)?,
        status: row.get(6)?,
        generation: row.get(7)?,
        assigned_at_ms: row.get(8)?,
        updated_at_ms: row.get(9)?,
    })
}

fn load_instance(
    conn: &Connection,
    name: &str,
    secrets: &SecretsKeyring,
) -> Result<Option<DpsInstance>, StorageError> {
    conn.prepare_cached(&format!(
        "SELECT {INSTANCE_COLUMNS} FROM dps_instances WHERE name = ?1"
    ))?
    .query_row([name], instance_row)
    .optional()?
    .map(|row| row.into_instance(secrets))
    .transpose()
}

fn load_instances(
    conn: &Connection,
    secrets: &SecretsKeyring,
) -> Result<Vec<DpsInstance>, StorageError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {INSTANCE_COLUMNS} FROM dps_instances ORDER BY name"
    ))?;
    let rows = stmt.query_map([], instance_row)?;
    rows.map(|row| row.map_err(StorageError::from)?.into_instance(secrets))
        .collect()
}

fn load_assignment(
    conn: &Connection,
    tenant: &str,
    registration_id: &str,
) -> Result<Option<Assignment>, StorageError> {
    conn.prepare_cached(&format!(
        "SELECT {ASSIGNMENT_COLUMNS} FROM assignments WHERE tenant = ?1 AND registration_id = ?2"
    ))?
    .query_row([tenant, registration_id], assignment_row)
    .optional()?
    .map(AssignmentRow::into_assignment)
    .transpose()
}

fn allowlist_owner(
    conn: &Connection,
    registration_id: &str,
) -> Result<Option<String>, StorageError> {
    Ok(conn
        .prepare_cached("SELECT tenant FROM allowlist WHERE registration_id = ?1")?
        .query_row([registration_id], |r| r.get(0))
        .optional()?)
}

/// Whether another tenant has a record of this device (`only_assigned`: a current one).
fn assigned_elsewhere(
    conn: &Connection,
    tenant: &str,
    registration_id: &str,
    only_assigned: bool,
) -> Result<bool, StorageError> {
    Ok(conn
        .prepare_cached(
            "SELECT 1 FROM assignments WHERE registration_id = ?1 AND tenant <> ?2 \
             AND (?3 = 0 OR status = 'assigned') LIMIT 1",
        )?
        .query_row(params![registration_id, tenant, only_assigned], |_| Ok(()))
        .optional()?
        .is_some())
}

fn increment(
    tx: &Transaction<'_>,
    instance: &DpsInstance,
    now_ms: i64,
) -> Result<bool, StorageError> {
    let next = instance.rate.record(now_ms);
    let changed = tx
        .prepare_cached(
            "UPDATE dps_instances SET registrations = registrations + 1, rate_minute = ?1, \
         rate_count = ?2, rate_previous_count = ?3 \
         WHERE name = ?4 AND state = 'active' AND registrations < registration_cap \
         AND registrations = ?5 AND rate_minute = ?6 AND rate_count = ?7",
        )?
        .execute(params![
            next.minute,
            to_i64(next.count),
            to_i64(next.previous_count),
            instance.name,
            to_i64(instance.registrations),
            instance.rate.minute,
            to_i64(instance.rate.count),
        ])?;
    Ok(changed == 1)
}

fn decrement(tx: &Transaction<'_>, name: &str) -> Result<(), StorageError> {
    tx.prepare_cached(
        "UPDATE dps_instances SET registrations = registrations - 1 \
         WHERE name = ?1 AND registrations > 0",
    )?
    .execute([name])?;
    Ok(())
}

fn write_assignment(tx: &Transaction<'_>, a: &Assignment) -> Result<(), StorageError> {
    tx.prepare_cached(&format!(
        "INSERT INTO assignments ({ASSIGNMENT_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) \
         ON CONFLICT (tenant, registration_id) DO UPDATE SET dps_instance = excluded.dps_instance, \
         id_scope = excluded.id_scope, global_endpoint = excluded.global_endpoint, \
         region = excluded.region, status = excluded.status, generation = excluded.generation, \
         assigned_at_ms = excluded.assigned_at_ms, updated_at_ms = excluded.updated_at_ms"
    ))?
    .execute(params![
        a.tenant,
        a.registration_id,
        a.dps_instance,
        a.id_scope,
        a.global_endpoint,
        a.region,
        a.status.as_str(),
        to_i64(a.generation),
        a.assigned_at_ms,
        a.updated_at_ms,
    ])?;
    Ok(())
}

fn assign_in(
    conn: &mut Connection,
    request: &AssignRequest,
    secrets: &SecretsKeyring,
) -> Result<AssignOutcome, AssignError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let owner = allowlist_owner(&tx, &request.registration_id)?;
    let elsewhere = assigned_elsewhere(&tx, &request.tenant, &request.registration_id, true)?;
    plan::check_owner(request, owner.as_deref(), elsewhere)?;
    let existing = load_assignment(&tx, &request.tenant, &request.registration_id)?;
    let current = match plan::decide(existing.as_ref(), request)? {
        Decision::Keep(assignment) => {
            tx.commit()?;
            return Ok(AssignOutcome {
                assignment,
                kind: AssignKind::Existing,
            });
        }
        Decision::Place { current } => current,
    };
    let instances = load_instances(&tx, secrets)?;
    let names = plan::candidates(&instances, request, current.as_deref())?;
    let chosen = names
        .first()
        .and_then(|name| instances.iter().find(|i| &i.name == name))
        .ok_or_else(|| StorageError::Corrupt("ranked instance vanished".to_owned()))?;
    let (assignment, kind) = plan::placed(existing.as_ref(), chosen, request);
    if kind != AssignKind::Existing {
        if !increment(&tx, chosen, request.now_ms)? {
            return Err(StorageError::Unavailable(
                "instance counters changed inside a transaction".to_owned(),
            )
            .into());
        }
        if let AssignKind::Moved { from } = &kind {
            decrement(&tx, from)?;
        }
        write_assignment(&tx, &assignment)?;
    }
    tx.commit()?;
    Ok(AssignOutcome { assignment, kind })
}

fn deprovision_in(
    conn: &mut Connection,
    tenant: &str,
    registration_id: &str,
    now_ms: i64,
) -> Result<Assignment, AssignError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let Some(mut assignment) = load_assignment(&tx, tenant, registration_id)? else {
        return Err(AssignError::NotAssigned);
    };
    if assignment.status == AssignmentStatus::Assigned {
        decrement(&tx, &assignment.dps_instance)?;
        assignment.status = AssignmentStatus::Deprovisioned;
        assignment.updated_at_ms = now_ms;
        write_assignment(&tx, &assignment)?;
    }
    tx.commit()?;
    Ok(assignment)
}

fn claim_in(conn: &mut Connection, claim: &IdempotencyClaim) -> Result<ClaimOutcome, StorageError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let existing: Option<(String, Option<String>, i64, i64)> = tx
        .prepare_cached(
            "SELECT fingerprint, response, created_at_ms, expires_at_ms FROM idempotency_keys \
             WHERE tenant = ?1 AND idempotency_key = ?2",
        )?
        .query_row([&claim.tenant, &claim.key], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })
        .optional()?;
    let outcome = match existing {
        Some((_, _, _, expires)) if expires <= claim.now_ms => None,
        Some((fingerprint, _, _, _)) if fingerprint != claim.fingerprint => {
            Some(ClaimOutcome::Mismatch)
        }
        Some((_, Some(response), _, _)) => Some(ClaimOutcome::Completed { response }),
        Some((_, None, created, _)) if created + claim.stale_after_ms > claim.now_ms => {
            Some(ClaimOutcome::InProgress)
        }
        _ => None,
    };
    if let Some(outcome) = outcome {
        tx.commit()?;
        return Ok(outcome);
    }
    tx.prepare_cached(
        "INSERT INTO idempotency_keys (tenant, idempotency_key, fingerprint, response, \
         created_at_ms, expires_at_ms) VALUES (?1, ?2, ?3, NULL, ?4, ?5) \
         ON CONFLICT (tenant, idempotency_key) DO UPDATE SET fingerprint = excluded.fingerprint, \
         response = NULL, created_at_ms = excluded.created_at_ms, \
         expires_at_ms = excluded.expires_at_ms",
    )?
    .execute(params![
        claim.tenant,
        claim.key,
        claim.fingerprint,
        claim.now_ms,
        claim.expires_at_ms
    ])?;
    tx.commit()?;
    Ok(ClaimOutcome::Claimed)
}

fn ticket_key_row(row: &Row<'_>) -> rusqlite::Result<TicketKeyColumns> {
    Ok((
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
    ))
}

fn import_in(
    conn: &mut Connection,
    tenant: &str,
    entries: &[AllowlistEntry],
    now_ms: i64,
) -> Result<ImportOutcome, StorageError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut outcome = ImportOutcome::default();
    {
        let mut insert = tx.prepare_cached(
            "INSERT INTO allowlist (registration_id, tenant, label, imported_at_ms) \
             VALUES (?1, ?2, ?3, ?4) ON CONFLICT (registration_id) DO NOTHING",
        )?;
        let mut owner =
            tx.prepare_cached("SELECT tenant FROM allowlist WHERE registration_id = ?1")?;
        for entry in entries {
            if insert.execute(params![entry.registration_id, tenant, entry.label, now_ms])? == 1 {
                outcome.added += 1;
                continue;
            }
            let holder: String = owner.query_row([&entry.registration_id], |r| r.get(0))?;
            if holder == tenant {
                outcome.already_listed += 1;
            } else {
                outcome
                    .owned_by_other_tenant
                    .push(entry.registration_id.clone());
            }
        }
    }
    tx.commit()?;
    Ok(outcome)
}

#[async_trait]
impl Storage for SqliteStorage {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    async fn ping(&self) -> Result<(), StorageError> {
        self.run(|conn, _| {
            conn.query_row("SELECT 1", [], |_| Ok(()))?;
            Ok::<_, StorageError>(())
        })
        .await
    }

    async fn add_instance(
        &self,
        spec: NewDpsInstance,
        now_ms: i64,
    ) -> Result<DpsInstance, PoolError> {
        let row = InstanceRow::new(spec, now_ms, &self.secrets)?;
        self.run(move |conn, secrets| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let taken = tx
                .query_row(
                    "SELECT 1 FROM dps_instances WHERE name = ?1 OR id_scope = ?2",
                    [&row.name, &row.id_scope],
                    |_| Ok(()),
                )
                .optional()?
                .is_some();
            if taken {
                return Err(PoolError::AlreadyExists);
            }
            tx.execute(
                &format!(
                    "INSERT INTO dps_instances ({INSTANCE_COLUMNS}) VALUES \
                     (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)"
                ),
                params![
                    row.name,
                    row.id_scope,
                    row.global_endpoint,
                    row.service_endpoint,
                    row.region,
                    row.allowed_tenants,
                    row.registration_cap,
                    row.rate_limit_per_minute,
                    row.state,
                    row.registrations,
                    row.rate_minute,
                    row.rate_count,
                    row.rate_previous_count,
                    row.service_policy_name,
                    row.service_key,
                    row.service_resource_uri,
                    row.created_at_ms,
                ],
            )?;
            let instance = load_instance(&tx, &row.name, secrets)?
                .ok_or_else(|| StorageError::Corrupt("inserted instance missing".to_owned()))?;
            tx.commit()?;
            Ok(instance)
        })
        .await
    }

    async fn list_instances(&self) -> Result<Vec<DpsInstance>, StorageError> {
        self.run(|conn, secrets| load_instances(conn, secrets))
            .await
    }

    async fn instance(&self, name: &str) -> Result<Option<DpsInstance>, StorageError> {
        let name = name.to_owned();
        self.run(move |conn, secrets| load_instance(conn, &name, secrets))
            .await
    }

    async fn set_instance_state(
        &self,
        name: &str,
        state: InstanceState,
    ) -> Result<DpsInstance, PoolError> {
        let name = name.to_owned();
        self.run(move |conn, secrets| {
            conn.execute(
                "UPDATE dps_instances SET state = ?1 WHERE name = ?2",
                [state.as_str(), &name],
            )?;
            load_instance(conn, &name, secrets)?.ok_or(PoolError::NotFound(name))
        })
        .await
    }

    async fn remove_instance(&self, name: &str) -> Result<(), PoolError> {
        let name = name.to_owned();
        self.run(move |conn, secrets| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let instance =
                load_instance(&tx, &name, secrets)?.ok_or(PoolError::NotFound(name.clone()))?;
            if instance.registrations > 0 {
                return Err(PoolError::NotEmpty {
                    registrations: instance.registrations,
                });
            }
            tx.execute("DELETE FROM dps_instances WHERE name = ?1", [&name])?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn import_allowlist(
        &self,
        tenant: &str,
        entries: Vec<AllowlistEntry>,
        now_ms: i64,
    ) -> Result<ImportOutcome, StorageError> {
        let tenant = tenant.to_owned();
        self.run(move |conn, _| import_in(conn, &tenant, &entries, now_ms))
            .await
    }

    async fn allowlist_page(
        &self,
        tenant: &str,
        after: Option<String>,
        limit: u32,
    ) -> Result<Vec<AllowlistEntry>, StorageError> {
        let tenant = tenant.to_owned();
        self.run(move |conn, _| {
            let mut stmt = conn.prepare_cached(
                "SELECT registration_id, label FROM allowlist WHERE tenant = ?1 \
                 AND registration_id > ?2 ORDER BY registration_id LIMIT ?3",
            )?;
            let rows = stmt.query_map(
                params![tenant, after.unwrap_or_default(), i64::from(limit)],
                |r| {
                    Ok(AllowlistEntry {
                        registration_id: r.get(0)?,
                        label: r.get(1)?,
                    })
                },
            )?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    async fn remove_from_allowlist(
        &self,
        tenant: &str,
        registration_id: &str,
    ) -> Result<bool, StorageError> {
        let (tenant, id) = (tenant.to_owned(), registration_id.to_owned());
        self.run(move |conn, _| {
            Ok(conn.execute(
                "DELETE FROM allowlist WHERE tenant = ?1 AND registration_id = ?2",
                [&tenant, &id],
            )? == 1)
        })
        .await
    }

    async fn device(
        &self,
        tenant: &str,
        registration_id: &str,
    ) -> Result<DeviceLookup, StorageError> {
        let (tenant, id) = (tenant.to_owned(), registration_id.to_owned());
        self.run(move |conn, _| {
            let owner = allowlist_owner(conn, &id)?;
            let assignment = load_assignment(conn, &tenant, &id)?;
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
                (None, None) if assigned_elsewhere(conn, &tenant, &id, false)? => {
                    DeviceLookup::OtherTenant
                }
                (None, None) => DeviceLookup::Unknown,
            })
        })
        .await
    }

    async fn assign(&self, request: AssignRequest) -> Result<AssignOutcome, AssignError> {
        self.run(move |conn, secrets| assign_in(conn, &request, secrets))
            .await
    }

    async fn deprovision(
        &self,
        tenant: &str,
        registration_id: &str,
        now_ms: i64,
    ) -> Result<Assignment, AssignError> {
        let (tenant, id) = (tenant.to_owned(), registration_id.to_owned());
        self.run(move |conn, _| deprovision_in(conn, &tenant, &id, now_ms))
            .await
    }

    async fn claim_idempotency_key(
        &self,
        claim: IdempotencyClaim,
    ) -> Result<ClaimOutcome, StorageError> {
        self.run(move |conn, _| claim_in(conn, &claim)).await
    }

    async fn complete_idempotency_key(
        &self,
        tenant: &str,
        key: &str,
        response: &str,
    ) -> Result<(), StorageError> {
        let (tenant, key, response) = (tenant.to_owned(), key.to_owned(), response.to_owned());
        self.run(move |conn, _| {
            conn.execute(
                "UPDATE idempotency_keys SET response = ?1 \
                 WHERE tenant = ?2 AND idempotency_key = ?3",
                [&response, &tenant, &key],
            )?;
            Ok(())
        })
        .await
    }

    async fn release_idempotency_key(&self, tenant: &str, key: &str) -> Result<(), StorageError> {
        let (tenant, key) = (tenant.to_owned(), key.to_owned());
        self.run(move |conn, _| {
            conn.execute(
                "DELETE FROM idempotency_keys WHERE tenant = ?1 AND idempotency_key = ?2 \
                 AND response IS NULL",
                [&tenant, &key],
            )?;
            Ok(())
        })
        .await
    }

    async fn purge_idempotency_keys(&self, now_ms: i64) -> Result<u64, StorageError> {
        self.run(move |conn, _| {
            let purged = conn.execute(
                "DELETE FROM idempotency_keys WHERE expires_at_ms <= ?1",
                [now_ms],
            )?;
            Ok(u64::try_from(purged).unwrap_or(u64::MAX))
        })
        .await
    }

    async fn ticket_keys(&self) -> Result<Vec<StoredTicketKey>, StorageError> {
        self.run(|conn, secrets| {
            let mut stmt = conn.prepare_cached(
                "SELECT key_id, private_pkcs8_pem, public_key, state, created_at_ms \
                 FROM ticket_keys ORDER BY created_at_ms DESC, key_id",
            )?;
            let rows = stmt.query_map([], ticket_key_row)?;
            rows.map(|row| ticket_key_from(row?, secrets)).collect()
        })
        .await
    }

    async fn put_ticket_key(
        &self,
        key: StoredTicketKey,
        rotate: bool,
    ) -> Result<bool, StorageError> {
        let sealed = sealed_ticket_key(&key, &self.secrets)?;
        self.run(move |conn, _| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            if rotate {
                tx.execute(
                    "UPDATE ticket_keys SET state = 'previous' WHERE state = 'current'",
                    [],
                )?;
            }
            let inserted = tx.execute(
                "INSERT INTO ticket_keys (key_id, private_pkcs8_pem, public_key, state, \
                 created_at_ms) VALUES (?1, ?2, ?3, 'current', ?4) ON CONFLICT DO NOTHING",
                params![
                    key.key_id,
                    sealed,
                    encode_public_key(&key.public_key),
                    key.created_at_ms
                ],
            )?;
            tx.commit()?;
            Ok(inserted == 1)
        })
        .await
    }

    async fn retire_ticket_key(&self, key_id: &str) -> Result<bool, StorageError> {
        let key_id = key_id.to_owned();
        self.run(move |conn, _| {
            Ok(conn.execute(
                "DELETE FROM ticket_keys WHERE key_id = ?1 AND state = 'previous'",
                [&key_id],
            )? == 1)
        })
        .await
    }
}
