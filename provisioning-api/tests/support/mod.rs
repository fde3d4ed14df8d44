//! Shared harness of the integration tests: storage backends (SQLite in a temp dir, PostgreSQL
//! in a fresh schema per test), the API served on loopback, token minting, and request helpers.
#![allow(dead_code)]

use std::{sync::Arc, time::Duration};

use fieldlink_provisioning_api::{
    ApiConfig, ProvisioningApi, RunningApi,
    auth::Role,
    clock::{Clock, ManualClock, SystemClock},
    dps::DpsServiceClient,
    storage::{
        PostgresOptions, PostgresStorage, SecretsKey, SecretsKeyring, SqliteStorage, Storage,
        StorageError,
    },
    test_tokens::TokenMinter,
};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// Which storage backend a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub const POSTGRES_ENV: &str = "FIELDLINK_TEST_POSTGRES_URL";

/// The PostgreSQL URL, or `None` (with a loud skip line) when it is not configured locally.
/// In CI (`CI` set) a missing URL fails the test.
pub fn postgres_url() -> Option<String> {
    match std::env::var(POSTGRES_ENV) {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ if std::env::var_os("CI").is_some() => {
            panic!("{POSTGRES_ENV} is not set but CI is: the PostgreSQL tests must run in CI")
        }
        _ => {
            eprintln!(
                "\n*** SKIPPING PostgreSQL test: {POSTGRES_ENV} is not set \
                 (set it to postgres://user:pass@127.0.0.1:5432/db to run it) ***\n"
            );
            None
        }
    }
}

/// A storage backend with its clean-up.
pub struct TestStorage {
    pub storage: Arc<dyn Storage>,
    /// The secrets key the store was opened with, and as a keyring.
    pub secrets_key: SecretsKey,
    pub secrets: SecretsKeyring,
    postgres: Option<PostgresStorage>,
    postgres_url: Option<String>,
    _dir: Option<tempfile::TempDir>,
}

/// A keyring with a fresh random secrets key.
pub fn fresh_secrets() -> SecretsKeyring {
    SecretsKeyring::new(SecretsKey::generate())
}

impl TestStorage {
    /// A fresh, empty store sealed with a fresh key; `None` when PostgreSQL is not configured
    /// locally.
    pub async fn open(backend: Backend) -> Option<Self> {
        let secrets_key = SecretsKey::generate();
        let secrets = SecretsKeyring::new(secrets_key.clone());
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let storage =
                    SqliteStorage::open_sealed(dir.path().join("api.db"), secrets.clone())
                        .await
                        .expect("open sqlite");
                Some(Self {
                    storage: Arc::new(storage),
                    secrets_key,
                    secrets,
                    postgres: None,
                    postgres_url: None,
                    _dir: Some(dir),
                })
            }
            Backend::Postgres => {
                let url = postgres_url()?;
                let schema = format!("test_{}", uuid::Uuid::new_v4().simple());
                let storage = PostgresStorage::connect_sealed(
                    &url,
                    PostgresOptions {
                        schema: Some(schema),
                        max_connections: 12,
                        acquire_timeout: Duration::from_secs(30),
                    },
                    secrets.clone(),
                )
                .await
                .expect("connect to PostgreSQL");
                Some(Self {
                    storage: Arc::new(storage.clone()),
                    secrets_key,
                    secrets,
                    postgres: Some(storage),
                    postgres_url: Some(url),
                    _dir: None,
                })
            }
        }
    }

    /// Opens the same database again (as a restarted replica would) with `secrets`.
    pub async fn reopen(&self, secrets: SecretsKeyring) -> Result<Arc<dyn Storage>, StorageError> {
        match (&self._dir, &self.postgres_url) {
            (Some(dir), _) => Ok(Arc::new(
                SqliteStorage::open_sealed(dir.path().join("api.db"), secrets).await?,
            )),
            (None, Some(url)) => {
                let schema = self
                    .postgres
                    .as_ref()
                    .and_then(|pg| pg.schema().map(str::to_owned));
                Ok(Arc::new(
                    PostgresStorage::connect_sealed(
                        url,
                        PostgresOptions {
                            schema,
                            max_connections: 2,
                            acquire_timeout: Duration::from_secs(30),
                        },
                        secrets,
                    )
                    .await?,
                ))
            }
            (None, None) => unreachable!("a test store is SQLite or PostgreSQL"),
        }
    }

    /// The first column of every row of `sql`, as text (plain SQL, around the store).
    pub async fn raw_column(&self, sql: &str) -> Vec<Option<String>> {
        match (&self._dir, &self.postgres) {
            (Some(dir), _) => {
                let conn = rusqlite::Connection::open(dir.path().join("api.db")).expect("open");
                let mut stmt = conn.prepare(sql).expect("prepare");
                stmt.query_map([], |r| r.get(0))
                    .expect("query")
                    .collect::<Result<_, _>>()
                    .expect("rows")
            }
            (None, Some(pg)) => {
                use sqlx::Row;
                sqlx::query(sql)
                    .fetch_all(pg.pool())
                    .await
                    .expect("query")
                    .iter()
                    .map(|row| row.try_get(0).expect("text column"))
                    .collect()
            }
            (None, None) => unreachable!("a test store is SQLite or PostgreSQL"),
        }
    }

    /// Runs a plain SQL statement around the store.
    pub async fn raw_execute(&self, sql: &str) {
        match (&self._dir, &self.postgres) {
            (Some(dir), _) => {
                let conn = rusqlite::Connection::open(dir.path().join("api.db")).expect("open");
                conn.busy_timeout(Duration::from_secs(5)).expect("timeout");
                conn.execute_batch(sql).expect("execute");
            }
            (None, Some(pg)) => {
                sqlx::raw_sql(sql)
                    .execute(pg.pool())
                    .await
                    .expect("execute");
            }
            (None, None) => unreachable!("a test store is SQLite or PostgreSQL"),
        }
    }

    /// Drops the PostgreSQL schema.
    pub async fn cleanup(self) {
        if let Some(pg) = self.postgres {
            pg.drop_schema().await.expect("drop test schema");
            pg.pool().close().await;
        }
    }
}

pub const ISSUER: &str = "https://issuer.fieldlink.test";
pub const AUDIENCE: &str = "fieldlink-provisioning-api";
pub const OPERATOR: &str = "operator";

/// The API running on loopback over a test store.
pub struct TestApi {
    pub running: RunningApi,
    pub base: String,
    pub http: reqwest::Client,
    pub minter: TokenMinter,
    pub clock: ManualClock,
    pub store: TestStorage,
    pub backend: Backend,
}

/// Options for [`TestApi::start_with`].
#[derive(Default)]
pub struct Options {
    pub config: ApiConfig,
    pub dps: Option<Arc<dyn DpsServiceClient>>,
}

impl TestApi {
    pub async fn start(backend: Backend) -> Option<Self> {
        Self::start_with(backend, Options::default()).await
    }

    pub async fn start_with(backend: Backend, options: Options) -> Option<Self> {
        let store = TestStorage::open(backend).await?;
        let minter = TokenMinter::new(ISSUER, AUDIENCE);
        let clock = ManualClock::new(SystemClock.now_ms());
        let mut config = options.config;
        config.issuers = vec![minter.trusted_issuer()];
        config.operator_tenant = OPERATOR.to_owned();
        let mut builder =
            ProvisioningApi::builder(config, store.storage.clone()).clock(Arc::new(clock.clone()));
        if let Some(dps) = options.dps {
            builder = builder.dps_client(dps);
        }
        let api = builder.build().await.expect("build API");
        let running = api
            .bind("127.0.0.1:0".parse().expect("addr"))
            .await
            .expect("serve");
        let base = running.base_url();
        Some(Self {
            running,
            base,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .pool_max_idle_per_host(200)
                .build()
                .expect("client"),
            minter,
            clock,
            store,
            backend,
        })
    }

    pub async fn finish(self) {
        self.running.shutdown().await.expect("shutdown");
        self.store.cleanup().await;
    }

    pub fn token(&self, tenant: &str, roles: &[Role]) -> String {
        self.minter.token(tenant, roles, self.clock.now_unix())
    }

    pub fn installer(&self, tenant: &str) -> String {
        self.token(tenant, &[Role::Installer])
    }

    pub fn admin(&self, tenant: &str) -> String {
        self.token(tenant, &[Role::Admin])
    }

    pub fn operator(&self) -> String {
        self.token(OPERATOR, &[Role::Admin])
    }

    /// Sends a request; returns status, headers and the body parsed as JSON (or a string).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        Reply::from(request.send().await.expect("request")).await
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Reply {
        self.call(Method::GET, path, token, None).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Reply {
        self.call(Method::POST, path, token, Some(body)).await
    }

    pub async fn delete(&self, path: &str, token: Option<&str>) -> Reply {
        self.call(Method::DELETE, path, token, None).await
    }

    /// Adds a pool instance through the admin API.
    pub async fn add_instance(&self, spec: Value) -> Reply {
        let reply = self
            .post("/v1/admin/dps-instances", Some(&self.operator()), spec)
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
        reply
    }

    /// Adds `count` shared instances `dps-0..` in region `region` with the given caps.
    pub async fn add_instances(&self, count: usize, region: &str, cap: u64, rate: u64) {
        for i in 0..count {
            self.add_instance(instance_spec(
                &format!("dps-{region}-{i}"),
                region,
                cap,
                rate,
                &[],
            ))
            .await;
        }
    }

    /// Imports `ids` into `tenant`'s allowlist through the API.
    pub async fn allowlist(&self, tenant: &str, ids: &[String]) {
        let reply = self
            .post("/v1/allowlist", Some(&self.admin(tenant)), json!(ids))
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    }

    /// `POST /v1/assignments` as an installer of `tenant`.
    pub async fn assign(&self, tenant: &str, registration_id: &str) -> Reply {
        self.post(
            "/v1/assignments",
            Some(&self.installer(tenant)),
            json!({ "registration_id": registration_id }),
        )
        .await
    }

    /// Registrations per instance, from the admin API.
    pub async fn registrations(&self) -> Vec<(String, u64)> {
        let reply = self
            .get("/v1/admin/dps-instances", Some(&self.operator()))
            .await;
        assert_eq!(reply.status, StatusCode::OK);
        reply.body["instances"]
            .as_array()
            .expect("instances")
            .iter()
            .map(|i| {
                (
                    i["name"].as_str().expect("name").to_owned(),
                    i["registrations"].as_u64().expect("registrations"),
                )
            })
            .collect()
    }
}

/// An instance spec for the admin API.
pub fn instance_spec(name: &str, region: &str, cap: u64, rate: u64, tenants: &[&str]) -> Value {
    json!({
        "name": name,
        "id_scope": format!("0ne{}", name.replace('-', "")),
        "global_endpoint": "global.azure-devices-provisioning.net",
        "service_endpoint": format!("https://{name}.azure-devices-provisioning.net"),
        "region": region,
        "allowed_tenants": tenants,
        "registration_cap": cap,
        "rate_limit_per_minute": rate,
        "service_credentials": {"policy_name": "provisioningserviceowner", "key": "c2VjcmV0LWtleQ=="}
    })
}

/// Device IDs `{prefix}-00000..`.
pub fn device_ids(prefix: &str, count: usize) -> Vec<String> {
    (0..count).map(|i| format!("{prefix}-{i:05}")).collect()
}

/// A response.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Reply {
    pub async fn from(response: reqwest::Response) -> Self {
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.expect("body");
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Self {
            status,
            headers,
            body,
        }
    }

    /// The error code of an error reply.
    pub fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or("<none>")
    }

    /// Asserts the shape of an error body.
    pub fn assert_error(&self, status: StatusCode, code: &str) {
        assert_eq!(self.status, status, "{:?}", self.body);
        assert_eq!(self.code(), code, "{:?}", self.body);
        assert!(self.body["message"].is_string());
        assert!(self.body["retryable"].is_boolean());
        assert!(self.body["details"].is_object());
        if matches!(
            status,
            StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
        ) {
            let retry_after = self
                .headers
                .get("retry-after")
                .expect("429/503 carry Retry-After");
            assert!(
                retry_after
                    .to_str()
                    .expect("ascii")
                    .parse::<u64>()
                    .expect("seconds")
                    >= 1
            );
        }
    }
}

/// Runs each listed `async fn(&TestApi)` on SQLite and on PostgreSQL (default options).
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        $crate::on_both_backends_with!($crate::support::Options::default; $($name),*);
    };
}

/// Runs each listed `async fn(&TestApi)` on SQLite and on PostgreSQL, the API built with
/// `$options()`.
#[macro_export]
macro_rules! on_both_backends_with {
    ($options:path; $($name:ident),* $(,)?) => {
        mod sqlite {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let backend = $crate::support::Backend::Sqlite;
                    if let Some(api) = $crate::support::TestApi::start_with(backend, $options()).await {
                        super::$name(&api).await;
                        api.finish().await;
                    }
                }
            )*
        }
        mod postgres {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let backend = $crate::support::Backend::Postgres;
                    if let Some(api) = $crate::support::TestApi::start_with(backend, $options()).await {
                        super::$name(&api).await;
                        api.finish().await;
                    }
                }
            )*
        }
    };
}
