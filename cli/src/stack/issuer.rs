//! The stack's sandbox OIDC issuer (`fieldlink_provisioning_api::issuer`) on an HTTPS listener
//! of its own, its certificate signed by the stack's CA.
//!
//! Registered clients: the CLI (device code), the desktop app (authorization code + PKCE with a
//! loopback redirect on any port, RFC 8252) and the mobile shells (authorization code + PKCE
//! with a custom-scheme redirect). One installer user with a random password: its Argon2id hash
//! is all the issuer keeps; the clear password goes only to the 0600 manifest (a sandbox test
//! user). `auto_approve` (demo only) approves every sign-in as that user without the page.
//!
//! Start-up: [`begin`] binds the listener and builds the issuer (its RSA signing key) on the
//! blocking pool, so the stack starts the DPS emulator meanwhile; [`PendingIssuer::start`]
//! serves it.

use argon2::{
    Algorithm, Argon2, Params, PasswordHasher, Version,
    password_hash::{SaltString, rand_core::OsRng},
};
use fieldlink_dps_emulator::tls::CertificateAuthority;
use fieldlink_provisioning_api::{
    RunningApi,
    issuer::{ClientConfig, Issuer, IssuerConfig, IssuerConfigError, UserConfig},
    server::serve_router_tls,
};
use rand::RngCore;
use tokio::task::JoinHandle;

use crate::exit::{CliError, Exit};

/// The API audience the issuer's access tokens name.
pub const AUDIENCE: &str = "fieldlink-provisioning-api";
/// The tenant of every sandbox user.
pub const TENANT: &str = "sandbox";
/// The CLI's client (device authorization grant).
pub const CLI_CLIENT: &str = "fieldlink-cli";
/// The desktop app's client (authorization code + PKCE, loopback redirect).
pub const DESKTOP_CLIENT: &str = "fieldlink-desktop";
/// The desktop app's redirect URI; any port matches (RFC 8252 §7.3).
pub const DESKTOP_REDIRECT: &str = "http://127.0.0.1/callback";
/// The mobile shells' client (authorization code + PKCE, custom-scheme redirect).
pub const MOBILE_CLIENT: &str = "fieldlink-mobile";
/// The mobile shells' redirect URI (matched exactly).
pub const MOBILE_REDIRECT: &str = "io.fieldlink.installer:/oauth2redirect";
/// The installer test user's name.
pub const INSTALLER_USER: &str = "installer";

/// A sandbox user (test credentials; `Debug` hides the password).
#[derive(Clone)]
pub struct SandboxUser {
    /// Sign-in name.
    pub username: String,
    /// The clear password (sandbox only; it goes to the 0600 manifest and nowhere else).
    pub password: String,
    /// Tenant.
    pub tenant: String,
    /// Role.
    pub role: String,
}

impl std::fmt::Debug for SandboxUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SandboxUser")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("tenant", &self.tenant)
            .field("role", &self.role)
            .finish()
    }
}

/// A registered client, as the manifest describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxClient {
    /// `client_id`.
    pub client_id: String,
    /// `device_code` or `authorization_code`.
    pub grant: String,
    /// Registered redirect URIs.
    pub redirect_uris: Vec<String>,
}

/// The running issuer.
pub struct StackIssuer {
    /// The issuer (its trust entry feeds the API).
    pub issuer: Issuer,
    /// Its HTTPS listener.
    pub running: RunningApi,
    /// Its URL (`iss`), `https://127.0.0.1:PORT`.
    pub url: String,
    /// Its users.
    pub users: Vec<SandboxUser>,
    /// Its clients.
    pub clients: Vec<SandboxClient>,
    /// Whether it approves every sign-in by itself (demo only).
    pub auto_approve: bool,
}

fn failed(what: &str, error: impl std::fmt::Display) -> CliError {
    CliError::new(
        Exit::Internal,
        "stack_start_failed",
        format!("cannot start the sandbox issuer ({what}): {error}"),
    )
}

/// A random password (128 bits, hex).
fn random_password() -> String {
    let mut bytes = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// Argon2id memory cost for the sandbox password, KiB (the default is 19 MiB).
const SANDBOX_HASH_MEMORY_KIB: u32 = 64;
/// Argon2id passes for the sandbox password (the default is 2).
const SANDBOX_HASH_PASSES: u32 = 1;

/// The Argon2id PHC string of a [`random_password`], with deliberately small parameters.
///
/// Argon2's memory hardness slows down guessing *human-chosen* passwords; a random 128-bit
/// secret cannot be guessed however cheap one guess is, so the default 19 MiB and two passes
/// would only add start-up time and peak memory to every `demo` and `sandbox up`. The issuer
/// verifies with the parameters the PHC string names, so it accepts these as it accepts the
/// defaults. Never use this for a password a person chose.
fn hash_random_password(password: &str) -> Result<String, CliError> {
    let params = Params::new(SANDBOX_HASH_MEMORY_KIB, SANDBOX_HASH_PASSES, 1, None)
        .map_err(|error| failed("password hash", error))?;
    let salt = SaltString::generate(&mut OsRng);
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|error| failed("password hash", error))
}

fn clients() -> Vec<SandboxClient> {
    vec![
        SandboxClient {
            client_id: CLI_CLIENT.to_owned(),
            grant: "device_code".to_owned(),
            redirect_uris: Vec::new(),
        },
        SandboxClient {
            client_id: DESKTOP_CLIENT.to_owned(),
            grant: "authorization_code".to_owned(),
            redirect_uris: vec![DESKTOP_REDIRECT.to_owned()],
        },
        SandboxClient {
            client_id: MOBILE_CLIENT.to_owned(),
            grant: "authorization_code".to_owned(),
            redirect_uris: vec![MOBILE_REDIRECT.to_owned()],
        },
    ]
}

/// An issuer being built on the blocking pool (its RSA key generation takes ~100 ms), with its
/// listener already bound.
pub struct PendingIssuer {
    build: JoinHandle<Result<Issuer, IssuerConfigError>>,
    listener: std::net::TcpListener,
    url: String,
    users: Vec<SandboxUser>,
    clients: Vec<SandboxClient>,
    auto_approve: bool,
}

/// Binds the issuer's loopback port and starts building the issuer on the blocking pool; call
/// [`PendingIssuer::start`] to serve it. Must run inside the tokio runtime.
pub fn begin(auto_approve: bool) -> Result<PendingIssuer, CliError> {
    let listener =
        std::net::TcpListener::bind("127.0.0.1:0").map_err(|error| failed("listen", error))?;
    let addr = listener
        .local_addr()
        .map_err(|error| failed("listen", error))?;
    let url = format!("https://{addr}");

    let users = vec![SandboxUser {
        username: INSTALLER_USER.to_owned(),
        password: random_password(),
        tenant: TENANT.to_owned(),
        role: "installer".to_owned(),
    }];
    let clients = clients();
    let mut config = IssuerConfig::new(url.clone(), AUDIENCE);
    // A local sandbox answers at once; one second keeps sign-ins quick (RFC 8628 says 5 by
    // default).
    config.poll_interval_s = 1;
    config.clients = clients
        .iter()
        .map(|client| ClientConfig {
            client_id: client.client_id.clone(),
            name: Some(
                match client.client_id.as_str() {
                    CLI_CLIENT => "fieldlink CLI",
                    DESKTOP_CLIENT => "fieldlink desktop",
                    _ => "fieldlink mobile",
                }
                .to_owned(),
            ),
            redirect_uris: client.redirect_uris.clone(),
        })
        .collect();
    config.users = users
        .iter()
        .map(|user| {
            Ok(UserConfig {
                username: user.username.clone(),
                subject: None,
                password_hash: hash_random_password(&user.password)?,
                tenant: user.tenant.clone(),
                roles: vec![user.role.clone()],
                name: Some(format!("Sandbox {}", user.username)),
                disabled: false,
            })
        })
        .collect::<Result<_, CliError>>()?;
    config.auto_approve_as = auto_approve.then(|| INSTALLER_USER.to_owned());
    let build = tokio::task::spawn_blocking(move || Issuer::new(config));
    Ok(PendingIssuer {
        build,
        listener,
        url,
        users,
        clients,
        auto_approve,
    })
}

impl PendingIssuer {
    /// Waits for the issuer and serves it over HTTPS with a certificate from `ca`.
    pub async fn start(self, ca: &CertificateAuthority) -> Result<StackIssuer, CliError> {
        let tls = ca
            .issue_server_certificate(&["127.0.0.1".to_owned(), "localhost".to_owned()])
            .and_then(|certificate| certificate.rustls_config())
            .map_err(|error| failed("certificate", error))?;
        let issuer = self
            .build
            .await
            .map_err(|error| failed("key generation", error))?
            .map_err(|error| failed("configuration", error))?;
        let running = serve_router_tls(issuer.router(), self.listener, tls)
            .map_err(|error| failed("listen", error))?;
        Ok(StackIssuer {
            issuer,
            running,
            url: self.url,
            users: self.users,
            clients: self.clients,
            auto_approve: self.auto_approve,
        })
    }
}

impl StackIssuer {
    /// The installer test user.
    pub fn installer(&self) -> Option<&SandboxUser> {
        self.users
            .iter()
            .find(|user| user.username == INSTALLER_USER)
    }
}

#[cfg(test)]
mod tests {
    use argon2::{PasswordHash, PasswordVerifier};

    use super::*;

    #[test]
    fn the_sandbox_hash_is_a_small_argon2id_phc_string_the_default_verifier_accepts() {
        let password = random_password();
        let hash = hash_random_password(&password).unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=64,t=1,p=1$"), "{hash}");
        let parsed = PasswordHash::new(&hash).unwrap();
        // The issuer verifies with `Argon2::default()`, which takes the parameters from the
        // PHC string.
        assert!(
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        );
        assert!(
            Argon2::default()
                .verify_password(random_password().as_bytes(), &parsed)
                .is_err()
        );
        assert_ne!(hash, hash_random_password(&password).unwrap(), "salted");
    }
}
