//! The provisioning API inside the stack: the real `fieldlink-provisioning-api` on an embedded
//! SQLite database in a temporary directory, served on loopback, with the emulator's instances
//! as its DPS pool and every virtual device on the tenant's allowlist. The installer side talks
//! to it with the core's `ProvisioningApiClient`; tokens come from the API's test-token minter
//! (the stack's auto-approved sign-in), minted afresh for every request so a long-lived
//! sandbox never holds an expired one.

use std::sync::Arc;

use async_trait::async_trait;
use fieldlink_core::api_client::{
    AccessToken, AccessTokenSource, ApiClientConfig, ProvisioningApiClient, TokenError,
};
use fieldlink_dps_emulator::RunningEmulator;
use fieldlink_provisioning_api::{
    ApiConfig, ProvisioningApi, RunningApi,
    auth::Role,
    dps::status::RegistrationStatusConfig,
    model::{AllowlistEntry, NewDpsInstance},
    storage::SqliteStorage,
    test_tokens::TokenMinter,
};
use serde_json::json;

use crate::exit::{CliError, Exit};

/// The tenant every stack device belongs to.
pub const TENANT: &str = "sandbox";
/// The issuer the stack's tokens name.
pub const ISSUER: &str = "https://issuer.sandbox.fieldlink.invalid";
/// The shared access policy the API uses on the emulator's service API.
pub const POLICY: &str = "provisioningserviceowner";
const AUDIENCE: &str = "fieldlink-provisioning-api";

/// Mints a fresh installer token for every request.
pub struct MintedTokens {
    minter: TokenMinter,
}

impl MintedTokens {
    fn mint(&self) -> AccessToken {
        let now = fieldlink_core::assignment::system_clock()();
        AccessToken::new(self.minter.token(TENANT, &[Role::Installer], now))
    }
}

#[async_trait]
impl AccessTokenSource for MintedTokens {
    async fn access_token(&self) -> Result<AccessToken, TokenError> {
        Ok(self.mint())
    }

    async fn on_unauthorized(&self) -> Result<AccessToken, TokenError> {
        Ok(self.mint())
    }
}

/// The running API and a client for it.
pub struct StackApi {
    /// The server.
    pub running: RunningApi,
    /// The installer's client.
    pub client: Arc<ProvisioningApiClient>,
    _dir: tempfile::TempDir,
}

fn failed(what: &str, error: impl std::fmt::Display) -> CliError {
    CliError::new(
        Exit::Internal,
        "stack_start_failed",
        format!("cannot start the provisioning API ({what}): {error}"),
    )
}

/// The API's pool entry for one emulated instance.
fn pool_instance(
    emulator: &RunningEmulator,
    name: &str,
    policy_key: &str,
) -> Result<NewDpsInstance, CliError> {
    let info = emulator
        .control()
        .instance(name)
        .ok_or_else(|| failed("pool", name))?;
    let service = emulator
        .http_base_url()
        .ok_or_else(|| failed("pool", "the emulator has no HTTP listener"))?;
    let global = emulator
        .https_base_url()
        .ok_or_else(|| failed("pool", "the emulator has no HTTPS listener"))?;
    serde_json::from_value(json!({
        "name": name,
        "id_scope": info.id_scope,
        "global_endpoint": global,
        "service_endpoint": format!("{service}/dps/{name}"),
        "region": "local",
        "service_credentials": {
            "policy_name": POLICY,
            "key": policy_key,
            "resource_uri": info.service_host_name,
        },
    }))
    .map_err(|error| failed("pool", error))
}

/// Starts the API over `emulator`'s `instances` with `registration_ids` allowlisted.
pub async fn start(
    emulator: &RunningEmulator,
    instances: &[String],
    policy_key: &str,
    registration_ids: &[String],
) -> Result<StackApi, CliError> {
    let dir = tempfile::tempdir().map_err(|error| failed("temporary directory", error))?;
    let storage = Arc::new(
        SqliteStorage::open(dir.path().join("api.db"))
            .await
            .map_err(|error| failed("SQLite", error))?,
    );
    let minter = TokenMinter::new(ISSUER, AUDIENCE);
    let config = ApiConfig {
        issuers: vec![minter.trusted_issuer()],
        registration_status: RegistrationStatusConfig {
            cache_ttl: std::time::Duration::from_millis(100),
            ..RegistrationStatusConfig::default()
        },
        dps_pool: instances
            .iter()
            .map(|name| pool_instance(emulator, name, policy_key))
            .collect::<Result<_, _>>()?,
        ..ApiConfig::default()
    };
    let api = ProvisioningApi::builder(config, storage)
        .build()
        .await
        .map_err(|error| failed("build", error))?;
    let now_ms = fieldlink_core::assignment::system_clock()() * 1_000;
    api.storage()
        .import_allowlist(
            TENANT,
            registration_ids
                .iter()
                .map(|id| AllowlistEntry {
                    registration_id: id.clone(),
                    label: Some("virtual fleet".into()),
                })
                .collect(),
            now_ms,
        )
        .await
        .map_err(|error| failed("allowlist", error))?;
    let address = "127.0.0.1:0"
        .parse()
        .map_err(|error| failed("address", error))?;
    let running = api
        .bind(address)
        .await
        .map_err(|error| failed("listen", error))?;
    let client = ProvisioningApiClient::new(
        ApiClientConfig::new(running.base_url()).allowing_insecure_loopback(),
        Arc::new(MintedTokens { minter }),
    )
    .map_err(|error| failed("client", error))?;
    Ok(StackApi {
        running,
        client: Arc::new(client),
        _dir: dir,
    })
}
