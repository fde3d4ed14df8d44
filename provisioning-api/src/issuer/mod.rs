//! The sandbox OpenID Connect issuer: for the sandbox and small deployments, the API can sign its
//! installers in itself.
//!
//! - Discovery: `{issuer}/.well-known/openid-configuration` (and the RFC 8414 twin).
//! - JWKS with rotating RSA 2048 (RS256) and Ed25519 (EdDSA) keys: `{issuer}/oauth2/jwks`.
//! - Device authorization grant (RFC 8628): `{issuer}/oauth2/device_authorization`, with the
//!   verification page `{issuer}/device` where a user signs in and approves or denies.
//! - Authorization code + PKCE S256 (RFC 7636, mandatory) with registered redirect URIs
//!   (loopback on any port per RFC 8252, custom schemes for mobile): `{issuer}/oauth2/authorize`.
//! - Token endpoint `{issuer}/oauth2/token`: `device_code`, `authorization_code`, and
//!   `refresh_token` with rotation and reuse detection (reuse revokes the whole family).
//! - Revocation (RFC 7009): `{issuer}/oauth2/revoke`.
//! - Users, tenants and roles from a JSON file, passwords as Argon2id hashes
//!   ([`hash_password`]).
//!
//! ID tokens are RS256 JWTs (OIDC Discovery's mandatory algorithm), or EdDSA for a client that
//! registers `id_token_signed_response_alg: "EdDSA"`. Access tokens are EdDSA JWTs with `iss`, `aud`, `sub`, `exp`, `tenant` and `roles`, exactly
//! what [`crate::auth::Authenticator`] checks; [`Issuer::trusted_issuer`] plugs the live key
//! set into the API's configuration. Grant state is held in memory (one process).
//!
//! For production, organisations bring their own issuer (Entra ID, ...): it is trusted through
//! the `issuers` entries of the API's configuration file ([`crate::settings::IssuerSettings`]:
//! issuer URL → tenant, audiences, role claim and values).

mod config;
mod endpoints;
mod grants;
mod html;
mod keys;
mod pages;
mod redirect;
mod tokens;
mod users;

use std::{collections::HashMap, sync::Arc};

use axum::{
    Router,
    routing::{get, post},
};

pub use config::{ClientConfig, IssuerConfig, IssuerConfigError, UserConfig};
pub use grants::{normalize_user_code, pkce_matches};
pub use keys::{IssuerJwks, KeyGenerationError, RotatedKeys, SigningAlgorithm, SigningKeys};
pub use redirect::{is_loopback, is_registered};
pub use users::hash_password;

use crate::{
    auth::TrustedIssuer,
    clock::{Clock, SystemClock},
};

/// Paths of the issuer's endpoints, relative to the issuer URL.
pub mod paths {
    /// OpenID Connect discovery.
    pub const DISCOVERY: &str = "/.well-known/openid-configuration";
    /// RFC 8414 metadata.
    pub const OAUTH_METADATA: &str = "/.well-known/oauth-authorization-server";
    /// JWKS.
    pub const JWKS: &str = "/oauth2/jwks";
    /// Authorization endpoint.
    pub const AUTHORIZE: &str = "/oauth2/authorize";
    /// Token endpoint.
    pub const TOKEN: &str = "/oauth2/token";
    /// Device authorization endpoint.
    pub const DEVICE_AUTHORIZATION: &str = "/oauth2/device_authorization";
    /// Revocation endpoint.
    pub const REVOKE: &str = "/oauth2/revoke";
    /// Device verification page.
    pub const DEVICE: &str = "/device";
    /// Device approve/deny form target.
    pub const DEVICE_DECISION: &str = "/device/decision";
}

pub(crate) struct IssuerState {
    config: IssuerConfig,
    prefix: String,
    clients: HashMap<String, ClientConfig>,
    keys: Arc<SigningKeys>,
    users: users::UserDirectory,
    grants: grants::Grants,
    clock: Arc<dyn Clock>,
}

impl IssuerState {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.config.issuer)
    }

    fn local(&self, path: &str) -> String {
        format!("{}{path}", self.prefix)
    }

    fn mint(
        &self,
        approval: &grants::Approval,
        user: &UserConfig,
        refresh_token: String,
        now: i64,
    ) -> tokens::TokenResponse {
        tokens::Minter {
            issuer: &self.config.issuer,
            audience: &self.config.audience,
            ttl_s: self.config.access_token_ttl_s,
            keys: &self.keys,
            id_token_algorithm: self.config.id_token_algorithm(&approval.client_id),
        }
        .mint(approval, user, refresh_token, now)
    }

    fn client_name<'a>(&'a self, client_id: &'a str) -> &'a str {
        self.clients
            .get(client_id)
            .and_then(|c| c.name.as_deref())
            .unwrap_or(client_id)
    }
}

/// A running sandbox issuer (cheap to clone).
#[derive(Clone)]
pub struct Issuer {
    state: Arc<IssuerState>,
}

impl std::fmt::Debug for Issuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issuer")
            .field("issuer", &self.state.config.issuer)
            .field("clients", &self.state.clients.len())
            .field("users", &self.state.users)
            .finish_non_exhaustive()
    }
}

impl Issuer {
    /// An issuer on the system clock.
    pub fn new(config: IssuerConfig) -> Result<Self, IssuerConfigError> {
        Self::with_clock(config, Arc::new(SystemClock))
    }

    /// An issuer on `clock` (tests move time).
    pub fn with_clock(
        config: IssuerConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, IssuerConfigError> {
        config.validate()?;
        let prefix = url::Url::parse(&config.issuer)
            .map(|u| u.path().trim_end_matches('/').to_owned())
            .map_err(|e| IssuerConfigError::Invalid(e.to_string()))?;
        let keys = Arc::new(
            SigningKeys::new(
                clock.now_unix(),
                config.key_rotation_s,
                config
                    .access_token_ttl_s
                    .max(config.authorization_code_ttl_s)
                    .saturating_add(300),
            )
            .map_err(|e| IssuerConfigError::Keys(e.to_string()))?,
        );
        if config.auto_approve_as.is_some() {
            tracing::warn!(
                issuer = %config.issuer,
                "sandbox issuer AUTO-APPROVES every sign-in (demo only)"
            );
        }
        Ok(Self {
            state: Arc::new(IssuerState {
                prefix,
                clients: config
                    .clients
                    .iter()
                    .map(|c| (c.client_id.clone(), c.clone()))
                    .collect(),
                users: users::UserDirectory::new(&config.users),
                grants: grants::Grants::default(),
                keys,
                clock,
                config,
            }),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &IssuerConfig {
        &self.state.config
    }

    /// The issuer's routes (all under the issuer URL's path); merge them into the API's router
    /// or serve them alone.
    pub fn router(&self) -> Router {
        let s = &self.state;
        Router::new()
            .route(&s.local(paths::DISCOVERY), get(endpoints::discovery))
            .route(&s.local(paths::OAUTH_METADATA), get(endpoints::discovery))
            .route(&s.local(paths::JWKS), get(endpoints::jwks))
            .route(
                &s.local(paths::DEVICE_AUTHORIZATION),
                post(endpoints::device_authorization),
            )
            .route(&s.local(paths::TOKEN), post(endpoints::token))
            .route(&s.local(paths::REVOKE), post(endpoints::revoke))
            .route(
                &s.local(paths::DEVICE),
                get(pages::device_page).post(pages::device_sign_in),
            )
            .route(
                &s.local(paths::DEVICE_DECISION),
                post(pages::device_decision),
            )
            .route(
                &s.local(paths::AUTHORIZE),
                get(pages::authorize).post(pages::authorize_sign_in),
            )
            .with_state(self.state.clone())
    }

    /// The API-side trust entry for this issuer: its `iss`, audience, live key set (rotation
    /// is seen at once), tenant claim `tenant`, role claim `roles`.
    pub fn trusted_issuer(&self) -> TrustedIssuer {
        TrustedIssuer::new(
            self.state.config.issuer.clone(),
            self.state.config.audience.clone(),
            Arc::new(IssuerJwks(self.state.keys.clone())),
        )
    }

    /// Replaces the signing keys now (the old ones stay published until their tokens expire);
    /// returns the new key ids.
    pub fn rotate_keys(&self) -> Result<RotatedKeys, KeyGenerationError> {
        self.state.keys.rotate(self.state.clock.now_unix())
    }

    /// The key id that signs access tokens now (EdDSA).
    pub fn current_key_id(&self) -> String {
        self.state.keys.current_key_id()
    }

    /// The key id that signs with `algorithm` now (RS256: ID tokens by default).
    pub fn current_key_id_for(&self, algorithm: SigningAlgorithm) -> String {
        self.state.keys.current_key_id_for(algorithm)
    }
}
