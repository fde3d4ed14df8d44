//! Test-only: the real provisioning API and its sandbox OIDC issuer, in this process on a
//! loopback HTTPS listener with a throw-away CA, approving every sign-in as one user
//! (`auto_approve_as`). Tests drive the bindings' sign-in against it (device code, PKCE with a
//! custom-scheme redirect) and call the API with the tokens.

use std::{
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use fieldlink_dps_emulator::tls::CertificateAuthority;
use fieldlink_provisioning_api::{
    ApiConfig, ProvisioningApi,
    issuer::{ClientConfig, Issuer, IssuerConfig, UserConfig, hash_password},
    storage::SqliteStorage,
};
use tokio::task::JoinHandle;

use crate::{client::ProfileConfig, error::FieldlinkError, runtime};

/// The client id the issuer knows.
const CLIENT_ID: &str = "fieldlink-mobile";
/// The custom-scheme redirect the issuer accepts for that client.
const MOBILE_REDIRECT: &str = "com.example.fieldlink:/oauth2redirect";
/// The user every sign-in is approved as.
const USER: &str = "alice";

/// The running API + issuer.
#[derive(uniffi::Object)]
pub struct IdentitySandbox {
    base_url: String,
    ca_pem: String,
    server: Mutex<Option<JoinHandle<()>>>,
    _dir: tempfile::TempDir,
}

impl std::fmt::Debug for IdentitySandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentitySandbox")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

fn setup(what: &str, error: impl std::fmt::Display) -> FieldlinkError {
    FieldlinkError::invalid_argument(format!("identity sandbox: {what}: {error}"))
}

async fn start() -> Result<IdentitySandbox, FieldlinkError> {
    let dir = tempfile::tempdir().map_err(|e| setup("temporary directory", e))?;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| setup("bind", e))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| setup("listener", e))?;
    let address = listener.local_addr().map_err(|e| setup("listener", e))?;
    let base_url = format!("https://{address}");
    let mut config = IssuerConfig::new(&base_url, "fieldlink-api");
    config.poll_interval_s = 1;
    config.auto_approve_as = Some(USER.to_owned());
    config.clients = vec![ClientConfig {
        client_id: CLIENT_ID.to_owned(),
        name: Some("fieldlink mobile".to_owned()),
        redirect_uris: vec![MOBILE_REDIRECT.to_owned()],
    }];
    config.users = vec![UserConfig {
        username: USER.to_owned(),
        subject: None,
        password_hash: hash_password("unused: sign-ins are auto-approved"),
        tenant: "acme".to_owned(),
        roles: vec!["installer".to_owned()],
        name: Some("Alice Installer".to_owned()),
        disabled: false,
    }];
    let issuer = Issuer::new(config).map_err(|e| setup("issuer", e))?;
    let storage = SqliteStorage::open(dir.path().join("api.db"))
        .await
        .map_err(|e| setup("storage", e))?;
    let api = ProvisioningApi::builder(
        ApiConfig {
            issuers: vec![issuer.trusted_issuer()],
            ..ApiConfig::default()
        },
        Arc::new(storage),
    )
    .build()
    .await
    .map_err(|e| setup("api", e))?;
    let router = api.router().merge(issuer.router());
    let ca = CertificateAuthority::generate().map_err(|e| setup("CA", e))?;
    let certificate = ca
        .issue_server_certificate(&["127.0.0.1".to_owned()])
        .map_err(|e| setup("certificate", e))?;
    let tls = axum_server::tls_rustls::RustlsConfig::from_config(
        certificate
            .rustls_config()
            .map_err(|e| setup("rustls", e))?,
    );
    let server = tokio::spawn(async move {
        // `api` (and its background tasks) lives as long as the server.
        let _api = api;
        let _ = axum_server::from_tcp_rustls(listener, tls)
            .serve(router.into_make_service())
            .await;
    });
    tokio::time::sleep(Duration::from_millis(20)).await;
    Ok(IdentitySandbox {
        base_url,
        ca_pem: ca.cert_pem(),
        server: Mutex::new(Some(server)),
        _dir: dir,
    })
}

/// Starts the API + issuer sandbox.
#[uniffi::export(async_runtime = "tokio")]
pub async fn start_identity_sandbox() -> Result<Arc<IdentitySandbox>, FieldlinkError> {
    runtime::run(start()).await.map(Arc::new)
}

#[uniffi::export]
impl IdentitySandbox {
    /// A profile for this sandbox (API and issuer at the same URL, its CA as `ca_pem`).
    pub fn profile(&self, name: String) -> ProfileConfig {
        ProfileConfig {
            name,
            api_url: self.base_url.clone(),
            issuer_url: self.base_url.clone(),
            client_id: CLIENT_ID.to_owned(),
            scopes: Vec::new(),
            ca_pem: Some(self.ca_pem.clone()),
            allow_insecure_loopback: false,
        }
    }

    /// The custom-scheme redirect URI the issuer accepts.
    pub fn mobile_redirect(&self) -> String {
        MOBILE_REDIRECT.to_owned()
    }

    /// The base URL (API and issuer).
    pub fn base_url(&self) -> String {
        self.base_url.clone()
    }

    /// Stops the server. Idempotent.
    pub fn shutdown(&self) {
        if let Some(server) = self
            .server
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            server.abort();
        }
    }
}
