//! The provisioning API inside the stack: the real `fieldlink-provisioning-api` on an embedded
//! SQLite database in a temporary directory, served over HTTPS on loopback (its certificate
//! signed by the stack's CA), with the emulator's instances as its DPS pool (reached over the
//! emulator's HTTPS service API) and every virtual device on the tenant's allowlist. It trusts
//! the stack's sandbox issuer (its live key set; tenant `sandbox`). The installer side talks to
//! it with the core's `ProvisioningApiClient`, whose tokens come from the stack's real sign-in
//! ([`super::sign_in`]).

use std::{path::Path, sync::Arc, time::Duration};

use fieldlink_core::api_client::{ApiClientConfig, ProvisioningApiClient};
use fieldlink_dps_emulator::{RunningEmulator, tls::CertificateAuthority};
use fieldlink_provisioning_api::{
    ApiConfig, ProvisioningApi, RunningApi,
    auth::TenantSource,
    dps::{http::HttpDpsServiceClient, status::RegistrationStatusConfig},
    model::{AllowlistEntry, NewDpsInstance},
    storage::{SecretsKey, SecretsKeyring, SqliteStorage},
};
use serde_json::json;

use super::{
    issuer::{StackIssuer, TENANT},
    sign_in::{StackSession, sign_in},
};
use crate::exit::{CliError, Exit};

/// The shared access policy the API uses on the emulator's service API.
pub const POLICY: &str = "provisioningserviceowner";

/// The running API and a signed-in client for it.
pub struct StackApi {
    /// The server.
    pub running: RunningApi,
    /// The installer's client.
    pub client: Arc<ProvisioningApiClient>,
    /// The stack's sign-in behind the client.
    pub sign_in: StackSession,
    _dir: tempfile::TempDir,
}

fn failed(what: &str, error: impl std::fmt::Display) -> CliError {
    CliError::new(
        Exit::Internal,
        "stack_start_failed",
        format!("cannot start the provisioning API ({what}): {error}"),
    )
}

/// The API's pool entry for one emulated instance: the emulator's HTTPS service API.
fn pool_instance(
    emulator: &RunningEmulator,
    name: &str,
    policy_key: &str,
) -> Result<NewDpsInstance, CliError> {
    let info = emulator
        .control()
        .instance(name)
        .ok_or_else(|| failed("pool", name))?;
    let https = emulator
        .https_base_url()
        .ok_or_else(|| failed("pool", "the emulator has no HTTPS listener"))?;
    serde_json::from_value(json!({
        "name": name,
        "id_scope": info.id_scope,
        "global_endpoint": https,
        "service_endpoint": format!("{https}/dps/{name}"),
        "region": "local",
        "service_credentials": {
            "policy_name": POLICY,
            "key": policy_key,
            "resource_uri": info.service_host_name,
        },
    }))
    .map_err(|error| failed("pool", error))
}

/// What the API needs from the rest of the stack.
pub struct ApiParts<'a> {
    /// The DPS emulator.
    pub emulator: &'a RunningEmulator,
    /// Its instance names (the pool).
    pub instances: &'a [String],
    /// The service API's policy key.
    pub policy_key: &'a str,
    /// The allowlisted devices.
    pub registration_ids: &'a [String],
    /// The stack's CA (signs the API's certificate).
    pub ca: &'a CertificateAuthority,
    /// The CA certificate as a file (the sign-in's HTTP client trusts it).
    pub ca_file: &'a Path,
    /// The issuer the API trusts.
    pub issuer: &'a StackIssuer,
}

/// Starts the API, signs the stack in and returns both.
pub async fn start(parts: ApiParts<'_>) -> Result<StackApi, CliError> {
    let ca_pem = parts.ca.cert_pem();
    let dir = tempfile::tempdir().map_err(|error| failed("temporary directory", error))?;
    let storage = Arc::new(
        // A temporary database: a fresh secrets key that lives (and dies) with it.
        SqliteStorage::open_sealed(
            dir.path().join("api.db"),
            SecretsKeyring::new(SecretsKey::generate()),
        )
        .await
        .map_err(|error| failed("SQLite", error))?,
    );
    let mut trusted = parts.issuer.issuer.trusted_issuer();
    trusted.tenant = TenantSource::Fixed(TENANT.to_owned());
    let config = ApiConfig {
        issuers: vec![trusted],
        registration_status: RegistrationStatusConfig {
            cache_ttl: Duration::from_millis(100),
            ..RegistrationStatusConfig::default()
        },
        dps_pool: parts
            .instances
            .iter()
            .map(|name| pool_instance(parts.emulator, name, parts.policy_key))
            .collect::<Result<_, _>>()?,
        ..ApiConfig::default()
    };
    let dps_http = reqwest::Client::builder()
        .use_rustls_tls()
        .https_only(true)
        .add_root_certificate(
            reqwest::Certificate::from_pem(ca_pem.as_bytes())
                .map_err(|error| failed("CA certificate", error))?,
        )
        .build()
        .map_err(|error| failed("DPS client", error))?;
    let api = ProvisioningApi::builder(config, storage)
        .dps_client(Arc::new(HttpDpsServiceClient::new(
            dps_http,
            Duration::from_secs(5),
        )))
        .build()
        .await
        .map_err(|error| failed("build", error))?;
    let now_ms = fieldlink_core::assignment::system_clock()() * 1_000;
    api.storage()
        .import_allowlist(
            TENANT,
            parts
                .registration_ids
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
    let tls = parts
        .ca
        .issue_server_certificate(&["127.0.0.1".to_owned(), "localhost".to_owned()])
        .and_then(|certificate| certificate.rustls_config())
        .map_err(|error| failed("certificate", error))?;
    let address = "127.0.0.1:0"
        .parse()
        .map_err(|error| failed("address", error))?;
    let running = api
        .bind_tls(address, tls)
        .await
        .map_err(|error| failed("listen", error))?;
    let session = sign_in(parts.issuer, &running.base_url(), parts.ca_file).await?;
    let client = ProvisioningApiClient::new(
        ApiClientConfig::new(running.base_url()).with_ca_pem(ca_pem),
        session.client.clone(),
    )
    .map_err(|error| failed("client", error))?;
    Ok(StackApi {
        running,
        client: Arc::new(client),
        sign_in: session,
        _dir: dir,
    })
}
