//! fieldlink's reference provisioning API.
//!
//! It assigns devices to DPS instances (least-loaded, capacity- and rate-aware, sticky,
//! idempotent), signs commissioning tickets, reports DPS registration state through the DPS
//! service API, keeps per-tenant device allowlists, and administers the DPS pool. Storage is
//! SQLite (embedded) or PostgreSQL (several replicas); callers authenticate with bearer JWTs
//! from a trusted issuer's JWKS.
//!
//! Start it in-process:
//!
//! ```no_run
//! # async fn start() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use fieldlink_provisioning_api::{ApiConfig, ProvisioningApi};
//! use fieldlink_provisioning_api::storage::{SecretsKey, SecretsKeyring, SqliteStorage};
//! use fieldlink_provisioning_api::test_tokens::TokenMinter;
//!
//! let minter = TokenMinter::new("https://issuer.test", "fieldlink-api");
//! let config = ApiConfig { issuers: vec![minter.trusted_issuer()], ..ApiConfig::default() };
//! // The secrets in the database are sealed with this key; keep a persistent database's key
//! // in a 0600 file (`settings::read_secrets_key_file`), see "Secrets at rest".
//! let secrets = SecretsKeyring::new(SecretsKey::generate());
//! let storage = Arc::new(SqliteStorage::open_sealed("api.db", secrets).await?);
//! let api = ProvisioningApi::builder(config, storage).build().await?;
//! let running = api.bind("127.0.0.1:0".parse()?).await?;
//! println!("listening on {}", running.base_url());
//! # Ok(()) }
//! ```

pub mod allocation;
pub mod allowlist_import;
pub mod auth;
pub mod backoff;
pub mod clock;
pub mod config;
pub mod dps;
pub mod error;
pub mod http;
pub mod issuer;
pub mod metrics;
pub mod model;
pub mod secret;
pub mod server;
pub mod settings;
pub mod storage;
pub mod test_tokens;
pub mod ticketing;

pub use config::ApiConfig;
pub use server::{ApiBuilder, ProvisioningApi, RunningApi, StartError};
