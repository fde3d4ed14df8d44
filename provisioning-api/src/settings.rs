//! The server binary's configuration file (JSON), turned into an [`ApiConfig`], a store and a
//! DPS client.
//!
//! ```json
//! {
//!   "listen": "0.0.0.0:8443",
//!   "tls": { "cert_file": "/etc/fieldlink/api.crt", "key_file": "/etc/fieldlink/api.key" },
//!   "storage": { "postgres": { "url_env": "FIELDLINK_API_DATABASE_URL", "max_connections": 32 } },
//!   "secrets_key_file": "/etc/fieldlink/secrets.key",
//!   "operator_tenant": "operator",
//!   "issuers": [{
//!     "issuer": "https://login.example.com/acme/v2.0",
//!     "audiences": ["api://fieldlink"],
//!     "tenant": "acme",
//!     "role_claim": "roles",
//!     "role_values": { "Fieldlink.Installer": "installer", "Fieldlink.Admin": "admin" }
//!   }],
//!   "ticket_lifetime_s": 900,
//!   "dps_pool": [{ "name": "dps-weu-1", "id_scope": "0ne00000001", "region": "westeurope",
//!                  "service_endpoint": "https://dps-weu-1.azure-devices-provisioning.net",
//!                  "service_credentials": { "policy_name": "provisioningserviceowner", "key": "…" } }]
//! }
//! ```
//!
//! Without `tls` the server speaks plain HTTP, and only when `listen` is a loopback address
//! (local development, or behind a TLS-terminating proxy on the same host); any other address
//! without `tls` is refused at load time.
//!
//! Secrets stored in the database (ticket signing keys, DPS shared-access keys) are sealed
//! with the key-encryption key from `secrets_key_file` or [`SECRETS_KEY_ENV`] (see
//! [`FileConfig::secrets_keyring`]); the binary refuses to start without one.

use std::{
    collections::HashMap,
    io::Write,
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use serde::Deserialize;

use crate::{
    ApiConfig,
    auth::{RemoteJwks, Role, StaticJwks, TenantSource, TrustedIssuer, default_role_values},
    dps::{DpsServiceClient, http::HttpDpsServiceClient},
    model::NewDpsInstance,
    storage::{
        PostgresOptions, PostgresStorage, SecretsKey, SecretsKeyring, SqliteStorage, Storage,
    },
    ticketing::TicketPolicy,
};

/// Environment variable holding the current secrets key (base64 of 32 bytes).
pub const SECRETS_KEY_ENV: &str = "FIELDLINK_API_SECRETS_KEY";
/// Environment variable holding the previous secrets key while rotating (base64).
pub const PREVIOUS_SECRETS_KEY_ENV: &str = "FIELDLINK_API_PREVIOUS_SECRETS_KEY";

/// Why the configuration is unusable.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// The file could not be read or parsed.
    #[error("configuration {path}: {reason}")]
    Load {
        /// The file.
        path: String,
        /// What failed.
        reason: String,
    },
    /// A value is invalid.
    #[error("invalid configuration: {0}")]
    Invalid(String),
    /// No secrets key is configured, and the store is persistent.
    #[error(
        "secrets_key_required: no secrets key is configured, and secrets stored in the database \
         (ticket signing keys, DPS shared-access keys) are sealed with it. Create one with \
         `provisioning-api gen-secrets-key /etc/fieldlink/secrets.key` (or \
         `(umask 077; head -c 32 /dev/urandom | base64 > /etc/fieldlink/secrets.key)`) and set \
         \"secrets_key_file\" in the configuration, or put the base64 key in {SECRETS_KEY_ENV}"
    )]
    SecretsKeyRequired,
    /// A secrets key file or variable is unusable.
    #[error("{code}: secrets key {source_name}: {reason}")]
    SecretsKey {
        /// Stable code: `secrets_key_file_insecure`, `secrets_key_invalid` or
        /// `secrets_key_conflict`.
        code: &'static str,
        /// The file or variable.
        source_name: String,
        /// What is wrong and how to fix it.
        reason: String,
    },
    /// The store could not be opened (including `secrets_key_mismatch`).
    #[error(transparent)]
    Storage(#[from] crate::storage::StorageError),
}

impl SettingsError {
    /// Stable snake_case code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Load { .. } => "config_unreadable",
            Self::Invalid(_) => "config_invalid",
            Self::SecretsKeyRequired => "secrets_key_required",
            Self::SecretsKey { code, .. } => code,
            Self::Storage(error) => error.code(),
        }
    }
}

fn key_error(code: &'static str, source_name: &str, reason: impl Into<String>) -> SettingsError {
    SettingsError::SecretsKey {
        code,
        source_name: source_name.to_owned(),
        reason: reason.into(),
    }
}

/// Reads a secrets key file: base64 of 32 bytes, readable by its owner only (on Unix a file
/// any group or other user can read is refused).
pub fn read_secrets_key_file(path: &Path) -> Result<SecretsKey, SettingsError> {
    let name = path.display().to_string();
    let metadata = std::fs::metadata(path)
        .map_err(|e| key_error("secrets_key_invalid", &name, format!("cannot read: {e}")))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = metadata.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(key_error(
                "secrets_key_file_insecure",
                &name,
                format!(
                    "mode {mode:04o} lets other users read it; run `chmod 600 {name}` (and \
                     consider rotating the key if others may have read it)"
                ),
            ));
        }
    }
    #[cfg(not(unix))]
    let _ = metadata;
    let text = zeroize::Zeroizing::new(
        std::fs::read_to_string(path)
            .map_err(|e| key_error("secrets_key_invalid", &name, format!("cannot read: {e}")))?,
    );
    SecretsKey::from_base64(&text)
        .map_err(|e| key_error("secrets_key_invalid", &name, e.to_string()))
}

/// Writes a fresh random secrets key (base64) to a new file created with mode 0600; refuses
/// to overwrite an existing file.
pub fn write_new_secrets_key_file(path: &Path) -> Result<SecretsKey, SettingsError> {
    let name = path.display().to_string();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .map_err(|e| key_error("secrets_key_invalid", &name, format!("cannot create: {e}")))?;
    let key = SecretsKey::generate();
    file.write_all(format!("{}\n", key.to_base64().expose()).as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| key_error("secrets_key_invalid", &name, format!("cannot write: {e}")))?;
    Ok(key)
}

/// The key from `file` and/or the environment variable `env`; both set to different keys is
/// refused.
fn configured_key(file: Option<&Path>, env: &str) -> Result<Option<SecretsKey>, SettingsError> {
    let from_file = file.map(read_secrets_key_file).transpose()?;
    let from_env = match std::env::var(env) {
        Ok(text) if !text.trim().is_empty() => Some(
            SecretsKey::from_base64(&zeroize::Zeroizing::new(text))
                .map_err(|e| key_error("secrets_key_invalid", env, e.to_string()))?,
        ),
        _ => None,
    };
    match (from_file, from_env) {
        (Some(a), Some(b)) if a.id() != b.id() => Err(key_error(
            "secrets_key_conflict",
            env,
            "differs from the configured key file; set only one of them",
        )),
        (Some(key), _) | (None, Some(key)) => Ok(Some(key)),
        (None, None) => Ok(None),
    }
}

/// Where data lives.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum StorageSettings {
    /// Embedded SQLite (one replica).
    Sqlite {
        /// Database file.
        path: PathBuf,
    },
    /// PostgreSQL (several replicas).
    Postgres {
        /// Connection URL (prefer `url_env` to keep the password out of the file).
        #[serde(default)]
        url: Option<String>,
        /// Environment variable holding the URL.
        #[serde(default)]
        url_env: Option<String>,
        /// Schema (default `public`).
        #[serde(default)]
        schema: Option<String>,
        /// Pool size per replica.
        #[serde(default = "default_pool")]
        max_connections: u32,
    },
}

fn default_pool() -> u32 {
    16
}

/// The HTTPS listener's certificate and key (PEM files).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSettings {
    /// Certificate chain, PEM: the server certificate first, then any intermediates.
    pub cert_file: PathBuf,
    /// Private key, PEM (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
}

impl TlsSettings {
    /// The rustls server configuration (ring provider, TLS 1.2 and 1.3, ALPN h2 and
    /// http/1.1).
    pub fn rustls_config(&self) -> Result<Arc<rustls::ServerConfig>, SettingsError> {
        use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
        let load = |path: &Path, reason: String| SettingsError::Load {
            path: path.display().to_string(),
            reason,
        };
        let chain = CertificateDer::pem_file_iter(&self.cert_file)
            .map_err(|e| load(&self.cert_file, e.to_string()))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| load(&self.cert_file, e.to_string()))?;
        if chain.is_empty() {
            return Err(load(&self.cert_file, "no PEM certificate in it".to_owned()));
        }
        let key = PrivateKeyDer::from_pem_file(&self.key_file)
            .map_err(|e| load(&self.key_file, format!("no usable PEM private key: {e}")))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| SettingsError::Invalid(format!("tls: {e}")))?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(|e| SettingsError::Invalid(format!("tls: certificate and key: {e}")))?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

/// One trusted token issuer.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssuerSettings {
    /// Exact `iss`.
    pub issuer: String,
    /// Accepted `aud` values.
    pub audiences: Vec<String>,
    /// JWKS URL; discovered from `{issuer}/.well-known/openid-configuration` when neither this
    /// nor `jwks_file` is given.
    #[serde(default)]
    pub jwks_uri: Option<String>,
    /// A static JWKS file (sandboxes, tests).
    #[serde(default)]
    pub jwks_file: Option<PathBuf>,
    /// Every token of this issuer belongs to this tenant.
    #[serde(default)]
    pub tenant: Option<String>,
    /// Otherwise the tenant is this claim (default `tenant`).
    #[serde(default)]
    pub tenant_claim: Option<String>,
    /// The claim holding the role(s) (default `roles`).
    #[serde(default)]
    pub role_claim: Option<String>,
    /// Claim value → role; default: `installer`, `admin`, `qa`.
    #[serde(default)]
    pub role_values: Option<HashMap<String, Role>>,
}

/// The whole file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Listen address.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Serve HTTPS with this certificate. Without it the server speaks plain HTTP, which is
    /// accepted only when `listen` is a loopback address.
    #[serde(default)]
    pub tls: Option<TlsSettings>,
    /// Storage.
    pub storage: StorageSettings,
    /// Operator tenant.
    #[serde(default = "default_operator")]
    pub operator_tenant: String,
    /// Trusted issuers.
    #[serde(default)]
    pub issuers: Vec<IssuerSettings>,
    /// Clock skew allowed on tokens, seconds.
    #[serde(default = "default_leeway")]
    pub token_leeway_s: i64,
    /// Ticket lifetime, seconds.
    #[serde(default = "default_ticket_lifetime")]
    pub ticket_lifetime_s: i64,
    /// Ticket `not_before` skew, seconds.
    #[serde(default = "default_skew")]
    pub ticket_not_before_skew_s: i64,
    /// Enforce allowlists.
    #[serde(default = "default_true")]
    pub allowlist_enforced: bool,
    /// Registration-status cache, ms.
    #[serde(default = "default_cache_ms")]
    pub status_cache_ttl_ms: u64,
    /// Extra CA (PEM) trusted for DPS service calls (the emulator's CA).
    #[serde(default)]
    pub dps_ca_file: Option<PathBuf>,
    /// Instances added at start when absent.
    #[serde(default)]
    pub dps_pool: Vec<NewDpsInstance>,
    /// Log as JSON lines.
    #[serde(default)]
    pub log_json: bool,
    /// The sandbox OIDC issuer's configuration file (see `docs/auth.md`): when set, the API
    /// also serves the issuer and trusts its tokens.
    #[serde(default)]
    pub sandbox_issuer: Option<PathBuf>,
    /// The key-encryption key sealing the secrets stored in the database: a file holding
    /// base64 of 32 random bytes, mode 0600 (or [`SECRETS_KEY_ENV`]).
    #[serde(default)]
    pub secrets_key_file: Option<PathBuf>,
    /// While rotating the secrets key: the previous one (or [`PREVIOUS_SECRETS_KEY_ENV`]).
    /// Secrets sealed with it are re-sealed with the current key at start-up.
    #[serde(default)]
    pub previous_secrets_key_file: Option<PathBuf>,
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}
fn default_operator() -> String {
    "operator".to_owned()
}
fn default_leeway() -> i64 {
    30
}
fn default_ticket_lifetime() -> i64 {
    15 * 60
}
fn default_skew() -> i64 {
    60
}
fn default_true() -> bool {
    true
}
fn default_cache_ms() -> u64 {
    3_000
}

impl FileConfig {
    /// Reads and parses `path`.
    pub fn load(path: &Path) -> Result<Self, SettingsError> {
        let load = |reason: String| SettingsError::Load {
            path: path.display().to_string(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| load(e.to_string()))?;
        let config: Self = serde_json::from_str(&text).map_err(|e| load(e.to_string()))?;
        if config.ticket_lifetime_s <= 0 || config.ticket_lifetime_s > 24 * 3600 {
            return Err(SettingsError::Invalid(
                "ticket_lifetime_s must be within 1..=86400".to_owned(),
            ));
        }
        if config.tls.is_none() && !config.listen.ip().is_loopback() {
            return Err(SettingsError::Invalid(format!(
                "listen {} is not a loopback address and no tls {{cert_file, key_file}} is \
                 configured: plain HTTP is served on loopback only",
                config.listen
            )));
        }
        Ok(config)
    }

    /// The configured secrets keys (`secrets_key_file` / [`SECRETS_KEY_ENV`], and the
    /// previous ones); `None` when no current key is configured.
    pub fn secrets_keyring(&self) -> Result<Option<SecretsKeyring>, SettingsError> {
        let Some(current) = configured_key(self.secrets_key_file.as_deref(), SECRETS_KEY_ENV)?
        else {
            return Ok(None);
        };
        let previous = configured_key(
            self.previous_secrets_key_file.as_deref(),
            PREVIOUS_SECRETS_KEY_ENV,
        )?;
        let keyring = SecretsKeyring::new(current);
        Ok(Some(match previous {
            Some(previous) => keyring.with_previous(previous),
            None => keyring,
        }))
    }

    /// The configured secrets keys; [`SettingsError::SecretsKeyRequired`] when there are none
    /// (what the binary uses: every configured store is persistent).
    pub fn require_secrets_keyring(&self) -> Result<SecretsKeyring, SettingsError> {
        self.secrets_keyring()?
            .ok_or(SettingsError::SecretsKeyRequired)
    }

    /// Opens the configured store with the configured secrets key or, when none is
    /// configured, a process-lifetime ephemeral one (in-process tests over a temporary
    /// database). The binary uses [`Self::require_secrets_keyring`] and
    /// [`Self::open_storage_sealed`] instead.
    pub async fn open_storage(&self) -> Result<Arc<dyn Storage>, SettingsError> {
        let secrets = self
            .secrets_keyring()?
            .unwrap_or_else(SecretsKeyring::ephemeral);
        self.open_storage_sealed(secrets).await
    }

    /// Opens the configured store, sealing its secrets with `secrets`.
    pub async fn open_storage_sealed(
        &self,
        secrets: SecretsKeyring,
    ) -> Result<Arc<dyn Storage>, SettingsError> {
        Ok(match &self.storage {
            StorageSettings::Sqlite { path } => {
                Arc::new(SqliteStorage::open_sealed(path, secrets).await?)
            }
            StorageSettings::Postgres {
                url,
                url_env,
                schema,
                max_connections,
            } => {
                let url = match (url, url_env) {
                    (Some(url), _) => url.clone(),
                    (None, Some(var)) => std::env::var(var).map_err(|_| {
                        SettingsError::Invalid(format!("environment variable {var} is not set"))
                    })?,
                    (None, None) => {
                        return Err(SettingsError::Invalid(
                            "postgres storage needs url or url_env".to_owned(),
                        ));
                    }
                };
                let options = PostgresOptions {
                    schema: schema.clone(),
                    max_connections: *max_connections,
                    ..PostgresOptions::default()
                };
                Arc::new(PostgresStorage::connect_sealed(&url, options, secrets).await?)
            }
        })
    }

    /// The HTTP client for DPS and JWKS calls (system roots plus `dps_ca_file`).
    pub fn http_client(&self) -> Result<reqwest::Client, SettingsError> {
        let mut builder = reqwest::Client::builder().use_rustls_tls();
        if let Some(path) = &self.dps_ca_file {
            let pem = std::fs::read(path).map_err(|e| SettingsError::Load {
                path: path.display().to_string(),
                reason: e.to_string(),
            })?;
            let ca = reqwest::Certificate::from_pem(&pem)
                .map_err(|e| SettingsError::Invalid(format!("dps_ca_file: {e}")))?;
            builder = builder.add_root_certificate(ca);
        }
        builder
            .build()
            .map_err(|e| SettingsError::Invalid(format!("HTTP client: {e}")))
    }

    /// The DPS service client.
    pub fn dps_client(&self) -> Result<Arc<dyn DpsServiceClient>, SettingsError> {
        Ok(Arc::new(HttpDpsServiceClient::new(
            self.http_client()?,
            Duration::from_secs(5),
        )))
    }

    /// The trusted issuers (fetching discovery documents where needed).
    pub async fn trusted_issuers(&self) -> Result<Vec<TrustedIssuer>, SettingsError> {
        let client = self.http_client()?;
        let mut issuers = Vec::new();
        for settings in &self.issuers {
            let jwks: Arc<dyn crate::auth::JwksSource> =
                match (&settings.jwks_file, &settings.jwks_uri) {
                    (Some(file), _) => {
                        let text =
                            std::fs::read_to_string(file).map_err(|e| SettingsError::Load {
                                path: file.display().to_string(),
                                reason: e.to_string(),
                            })?;
                        Arc::new(
                            StaticJwks::from_json(&text)
                                .map_err(|e| SettingsError::Invalid(e.to_string()))?,
                        )
                    }
                    (None, Some(uri)) => Arc::new(RemoteJwks::new(
                        uri.clone(),
                        client.clone(),
                        Duration::from_secs(3600),
                    )),
                    (None, None) => Arc::new(
                        RemoteJwks::discover(
                            &settings.issuer,
                            client.clone(),
                            Duration::from_secs(3600),
                        )
                        .await
                        .map_err(|e| SettingsError::Invalid(e.to_string()))?,
                    ),
                };
            if settings.audiences.is_empty() {
                return Err(SettingsError::Invalid(format!(
                    "issuer {} accepts no audience",
                    settings.issuer
                )));
            }
            let mut issuer = TrustedIssuer::new(settings.issuer.clone(), String::new(), jwks);
            issuer.audiences = settings.audiences.clone();
            issuer.tenant = match (&settings.tenant, &settings.tenant_claim) {
                (Some(tenant), _) => TenantSource::Fixed(tenant.clone()),
                (None, Some(claim)) => TenantSource::Claim(claim.clone()),
                (None, None) => TenantSource::Claim("tenant".to_owned()),
            };
            if let Some(claim) = &settings.role_claim {
                issuer.role_claim = claim.clone();
            }
            issuer.role_values = settings
                .role_values
                .clone()
                .unwrap_or_else(default_role_values);
            issuers.push(issuer);
        }
        Ok(issuers)
    }

    /// The API configuration (issuers resolved separately).
    pub fn api_config(&self, issuers: Vec<TrustedIssuer>) -> ApiConfig {
        let mut config = ApiConfig {
            issuers,
            operator_tenant: self.operator_tenant.clone(),
            token_leeway_s: self.token_leeway_s,
            ticket: TicketPolicy {
                lifetime_s: self.ticket_lifetime_s,
                not_before_skew_s: self.ticket_not_before_skew_s,
            },
            allowlist_enforced: self.allowlist_enforced,
            dps_pool: self.dps_pool.clone(),
            ..ApiConfig::default()
        };
        config.registration_status.cache_ttl = Duration::from_millis(self.status_cache_ttl_ms);
        config
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_full_file() {
        let dir = tempfile::tempdir().expect("dir");
        let jwks = dir.path().join("jwks.json");
        let minter = crate::test_tokens::TokenMinter::new("https://i.test", "api");
        std::fs::write(&jwks, minter.jwks_json()).expect("write");
        let file = dir.path().join("api.json");
        std::fs::write(
            &file,
            serde_json::json!({
                "listen": "127.0.0.1:0",
                "storage": {"sqlite": {"path": dir.path().join("api.db")}},
                "issuers": [{"issuer": "https://i.test", "audiences": ["api"],
                             "jwks_file": jwks, "tenant": "acme",
                             "role_values": {"Fieldlink.Admin": "admin"}}],
                "ticket_lifetime_s": 600,
                "dps_pool": [{"name": "dps-1", "id_scope": "0ne00000001", "region": "weu",
                              "service_endpoint": "https://dps-1.azure-devices-provisioning.net"}]
            })
            .to_string(),
        )
        .expect("write");
        let config = FileConfig::load(&file).expect("valid");
        assert_eq!(config.operator_tenant, "operator");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let issuers = runtime.block_on(config.trusted_issuers()).expect("issuers");
        assert_eq!(issuers[0].tenant, TenantSource::Fixed("acme".to_owned()));
        assert_eq!(
            issuers[0].role_values.get("Fieldlink.Admin"),
            Some(&Role::Admin)
        );
        let api = config.api_config(issuers);
        assert_eq!(api.ticket.lifetime_s, 600);
        assert_eq!(api.dps_pool.len(), 1);
        assert!(runtime.block_on(config.open_storage()).is_ok());
    }

    #[test]
    fn secrets_key_files_are_private_valid_and_required() {
        if std::env::var_os(SECRETS_KEY_ENV).is_some()
            || std::env::var_os(PREVIOUS_SECRETS_KEY_ENV).is_some()
        {
            eprintln!("skipping: {SECRETS_KEY_ENV} is set in this environment");
            return;
        }
        let dir = tempfile::tempdir().expect("dir");
        let key_file = dir.path().join("secrets.key");
        let key = write_new_secrets_key_file(&key_file).expect("written");
        assert!(
            write_new_secrets_key_file(&key_file).is_err(),
            "an existing key file is never overwritten"
        );
        assert_eq!(
            read_secrets_key_file(&key_file).expect("reads").id(),
            key.id()
        );
        let file = dir.path().join("api.json");
        let write_config = |extra: serde_json::Value| {
            let mut config = serde_json::json!({
                "storage": {"sqlite": {"path": dir.path().join("api.db")}}
            });
            if let (Some(config), Some(extra)) = (config.as_object_mut(), extra.as_object()) {
                config.extend(extra.clone());
            }
            std::fs::write(&file, config.to_string()).expect("write");
            FileConfig::load(&file).expect("loads")
        };
        let bare = write_config(serde_json::json!({}));
        let refused = bare.require_secrets_keyring().expect_err("no key");
        assert_eq!(refused.code(), "secrets_key_required");
        assert!(refused.to_string().contains("gen-secrets-key"), "{refused}");
        let other = dir.path().join("old.key");
        let old = write_new_secrets_key_file(&other).expect("written");
        let config = write_config(serde_json::json!({
            "secrets_key_file": key_file, "previous_secrets_key_file": other
        }));
        let keyring = config.require_secrets_keyring().expect("keys");
        assert_eq!(keyring.current_id(), key.id());
        assert_ne!(old.id(), key.id());

        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o644))
                .expect("chmod");
            let insecure = read_secrets_key_file(&key_file).expect_err("world-readable");
            assert_eq!(insecure.code(), "secrets_key_file_insecure");
            assert!(insecure.to_string().contains("chmod 600"), "{insecure}");
            std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600))
                .expect("chmod");
        }
        std::fs::write(&key_file, "c2hvcnQ=\n").expect("write");
        assert_eq!(
            read_secrets_key_file(&key_file).expect_err("short").code(),
            "secrets_key_invalid"
        );
    }

    #[test]
    fn refuses_unknown_fields_and_bad_lifetimes() {
        let dir = tempfile::tempdir().expect("dir");
        let file = dir.path().join("api.json");
        std::fs::write(
            &file,
            r#"{"storage": {"sqlite": {"path": "x.db"}}, "colour": 1}"#,
        )
        .expect("write");
        assert!(FileConfig::load(&file).is_err());
        std::fs::write(
            &file,
            r#"{"storage": {"sqlite": {"path": "x.db"}}, "ticket_lifetime_s": 0}"#,
        )
        .expect("write");
        assert!(matches!(
            FileConfig::load(&file),
            Err(SettingsError::Invalid(_))
        ));
    }

    #[test]
    fn plain_http_only_on_loopback_and_tls_files_load() {
        let dir = tempfile::tempdir().expect("dir");
        let file = dir.path().join("api.json");
        std::fs::write(
            &file,
            r#"{"listen": "0.0.0.0:8080", "storage": {"sqlite": {"path": "x.db"}}}"#,
        )
        .expect("write");
        let refused = FileConfig::load(&file).expect_err("public plain HTTP is refused");
        assert!(refused.to_string().contains("loopback"), "{refused}");
        std::fs::write(
            &file,
            r#"{"listen": "[::1]:8080", "storage": {"sqlite": {"path": "x.db"}}}"#,
        )
        .expect("write");
        assert!(FileConfig::load(&file).expect("loopback").tls.is_none());

        let ca = fieldlink_dps_emulator::tls::CertificateAuthority::generate().expect("ca");
        let server = ca
            .issue_server_certificate(&["api.example".to_owned()])
            .expect("certificate");
        let cert = dir.path().join("api.crt");
        let key = dir.path().join("api.key");
        std::fs::write(&cert, &server.cert_pem).expect("write");
        std::fs::write(&key, server.key_pem()).expect("write");
        std::fs::write(
            &file,
            serde_json::json!({"listen": "0.0.0.0:8443",
                               "tls": {"cert_file": cert, "key_file": key},
                               "storage": {"sqlite": {"path": "x.db"}}})
            .to_string(),
        )
        .expect("write");
        let config = FileConfig::load(&file).expect("public with tls");
        let tls = config.tls.expect("tls");
        let rustls = tls.rustls_config().expect("loads");
        assert_eq!(rustls.alpn_protocols[1], b"http/1.1");

        let swapped = TlsSettings {
            cert_file: key.clone(),
            key_file: cert.clone(),
        };
        assert!(
            swapped.rustls_config().is_err(),
            "a key is not a certificate"
        );
        let wrong_key = dir.path().join("other.key");
        let other = ca
            .issue_server_certificate(&["api.example".to_owned()])
            .expect("certificate");
        std::fs::write(&wrong_key, other.key_pem()).expect("write");
        let mismatched = TlsSettings {
            cert_file: cert,
            key_file: wrong_key,
        };
        assert!(
            mismatched.rustls_config().is_err(),
            "a key that does not match the certificate is refused"
        );
    }
}
