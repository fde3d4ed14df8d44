//! [`AuthClient`]: one profile's sign-in — discovery, token storage, refresh (a
//! [`TokenSource`]), and sign-out with revocation.

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use openidconnect::{
    AdditionalProviderMetadata, ClientId, DeviceAuthorizationUrl, IssuerUrl, OAuth2TokenResponse,
    ProviderMetadata, RefreshToken, RevocationUrl, TokenResponse as _, TokenUrl,
    core::{
        CoreAuthDisplay, CoreClaimName, CoreClaimType, CoreClient, CoreClientAuthMethod,
        CoreGrantType, CoreJsonWebKey, CoreJweContentEncryptionAlgorithm,
        CoreJweKeyManagementAlgorithm, CoreResponseMode, CoreResponseType, CoreRevocableToken,
        CoreSubjectIdentifierType, CoreTokenResponse,
    },
};
use serde::{Deserialize, Serialize};
use tokio::sync::{Mutex, OnceCell};

use super::{
    AuthError, Profile,
    http::PolicyHttp,
    map::{request_error, revocation_error},
    profile::TOKEN_SERVICE,
    session::{AccessToken, Identity, Session, StoredTokens, jwt_claims},
};
use crate::secrets::{SecretError, SecretStore, delete_if_present, get_optional};

/// Refresh this long before the access token expires.
pub const REFRESH_MARGIN_S: i64 = 60;
/// A 401 within this long after a refresh does not trigger another one.
const RECENT_REFRESH_S: i64 = 5;

/// The discovery fields beyond the OIDC core set that fieldlink uses.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExtraProviderMetadata {
    /// RFC 8628 device authorization endpoint.
    #[serde(default)]
    pub device_authorization_endpoint: Option<DeviceAuthorizationUrl>,
    /// RFC 7009 revocation endpoint.
    #[serde(default)]
    pub revocation_endpoint: Option<RevocationUrl>,
}

impl AdditionalProviderMetadata for ExtraProviderMetadata {}

/// Discovered issuer metadata.
pub type IssuerMetadata = ProviderMetadata<
    ExtraProviderMetadata,
    CoreAuthDisplay,
    CoreClientAuthMethod,
    CoreClaimName,
    CoreClaimType,
    CoreGrantType,
    CoreJweContentEncryptionAlgorithm,
    CoreJweKeyManagementAlgorithm,
    CoreJsonWebKey,
    CoreResponseMode,
    CoreResponseType,
    CoreSubjectIdentifierType,
>;

/// Something that hands out access tokens for API calls.
#[async_trait]
pub trait TokenSource: Send + Sync {
    /// A valid access token, refreshed first when it expires within a minute.
    async fn access_token(&self) -> Result<AccessToken, AuthError>;

    /// The API answered 401 to the current token: refresh now (once, even when several calls
    /// report it together) and return the new token.
    async fn on_unauthorized(&self) -> Result<AccessToken, AuthError>;
}

/// What [`AuthClient::logout`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogoutReport {
    /// Whether a session was stored.
    pub was_signed_in: bool,
    /// Whether the issuer confirmed revocation of the refresh token.
    pub revoked: bool,
    /// Why revocation did not happen (no endpoint, issuer unreachable, ...); the local
    /// tokens are forgotten regardless.
    pub revocation_note: Option<String>,
}

/// One profile's sign-in client.
pub struct AuthClient {
    pub(crate) profile: Profile,
    pub(crate) http: PolicyHttp,
    store: Arc<dyn SecretStore>,
    metadata: OnceCell<Arc<IssuerMetadata>>,
    cache: Mutex<Option<StoredTokens>>,
}

impl std::fmt::Debug for AuthClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthClient")
            .field("profile", &self.profile.name)
            .field("issuer", &self.profile.issuer_url)
            .field("store", &self.store.describe())
            .finish_non_exhaustive()
    }
}

pub(crate) fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

impl AuthClient {
    /// A client for `profile` keeping tokens in `store`. No network access yet.
    pub fn new(profile: Profile, store: Arc<dyn SecretStore>) -> Result<Arc<Self>, AuthError> {
        profile.validate()?;
        Ok(Arc::new(Self {
            http: PolicyHttp::new(&profile)?,
            profile,
            store,
            metadata: OnceCell::new(),
            cache: Mutex::new(None),
        }))
    }

    /// The profile.
    pub fn profile(&self) -> &Profile {
        &self.profile
    }

    /// The HTTP client with this profile's TLS settings (for the API client).
    pub fn http_client(&self) -> reqwest::Client {
        self.http.client().clone()
    }

    /// The issuer's metadata (discovered once, then cached), with every endpoint checked
    /// against the URL policy.
    pub async fn metadata(&self) -> Result<Arc<IssuerMetadata>, AuthError> {
        self.metadata
            .get_or_try_init(|| async {
                let issuer = IssuerUrl::new(self.profile.issuer_url.clone()).map_err(|e| {
                    AuthError::InvalidProfile {
                        reason: format!("issuer URL: {e}"),
                    }
                })?;
                let metadata = IssuerMetadata::discover_async(issuer, &self.http)
                    .await
                    .map_err(|e| super::map::discovery_error(&e))?;
                let extra = metadata.additional_metadata();
                let mut urls = vec![metadata.authorization_endpoint().to_string()];
                urls.extend(metadata.token_endpoint().map(|u| u.to_string()));
                urls.extend(
                    extra
                        .device_authorization_endpoint
                        .as_ref()
                        .map(|u| u.to_string()),
                );
                urls.extend(extra.revocation_endpoint.as_ref().map(|u| u.to_string()));
                for url in urls {
                    self.http.check(&url)?;
                }
                Ok(Arc::new(metadata))
            })
            .await
            .cloned()
    }

    pub(crate) fn token_url(metadata: &IssuerMetadata) -> Result<TokenUrl, AuthError> {
        metadata
            .token_endpoint()
            .cloned()
            .ok_or_else(|| AuthError::Unsupported {
                what: "a token endpoint".to_owned(),
            })
    }

    pub(crate) fn oidc(
        &self,
        metadata: &IssuerMetadata,
    ) -> CoreClient<
        openidconnect::EndpointSet,
        openidconnect::EndpointNotSet,
        openidconnect::EndpointNotSet,
        openidconnect::EndpointNotSet,
        openidconnect::EndpointMaybeSet,
        openidconnect::EndpointMaybeSet,
    > {
        CoreClient::from_provider_metadata(
            metadata.clone(),
            ClientId::new(self.profile.client_id.clone()),
            None,
        )
    }

    async fn load(&self) -> Result<Option<StoredTokens>, AuthError> {
        let store = self.store.clone();
        let account = self.profile.token_account();
        let secret = tokio::task::spawn_blocking(move || {
            get_optional(store.as_ref(), TOKEN_SERVICE, &account)
        })
        .await
        .map_err(|e| SecretError::Platform {
            detail: format!("secret store task: {e}"),
        })??;
        secret
            .map(|s| StoredTokens::from_secret(&s))
            .transpose()
            .map_err(AuthError::from)
    }

    async fn save(&self, tokens: &StoredTokens) -> Result<(), AuthError> {
        let store = self.store.clone();
        let account = self.profile.token_account();
        let full = tokens.to_secret()?;
        let mut slim = tokens.clone();
        slim.access_token = None;
        slim.expires_at = Some(0);
        let slim = slim.to_secret()?;
        tokio::task::spawn_blocking(move || {
            match store.set(TOKEN_SERVICE, &account, &full) {
                // Windows' Credential Manager holds 2.5 KiB: keep the refresh token, drop the
                // access token (it is refreshed on next use).
                Err(SecretError::TooLarge { .. }) => store.set(TOKEN_SERVICE, &account, &slim),
                other => other,
            }
        })
        .await
        .map_err(|e| SecretError::Platform {
            detail: format!("secret store task: {e}"),
        })??;
        Ok(())
    }

    async fn forget(&self) -> Result<(), AuthError> {
        let store = self.store.clone();
        let account = self.profile.token_account();
        tokio::task::spawn_blocking(move || {
            delete_if_present(store.as_ref(), TOKEN_SERVICE, &account)
        })
        .await
        .map_err(|e| SecretError::Platform {
            detail: format!("secret store task: {e}"),
        })??;
        Ok(())
    }

    /// Turns a token response into stored tokens (verifying the ID token when present) and
    /// saves them. `previous` supplies the refresh token and identity a refresh response may
    /// omit.
    async fn store_response(
        &self,
        metadata: &IssuerMetadata,
        response: &CoreTokenResponse,
        nonce: Option<&openidconnect::Nonce>,
        previous: Option<&StoredTokens>,
    ) -> Result<StoredTokens, AuthError> {
        let now = now_unix();
        let access = response.access_token().secret().clone();
        let mut identity = Identity::default();
        if let Some(id_token) = response.id_token() {
            let oidc = self.oidc(metadata);
            let verifier = oidc.id_token_verifier();
            let claims = match nonce {
                Some(nonce) => id_token.claims(&verifier, nonce),
                None => id_token.claims(&verifier, |_: Option<&openidconnect::Nonce>| Ok(())),
            }
            .map_err(|e| AuthError::Discovery {
                detail: format!("the ID token did not verify: {e}"),
            })?;
            identity.subject = claims.subject().to_string();
            identity.issuer = claims.issuer().to_string();
            identity.name = claims
                .name()
                .and_then(|n| n.get(None))
                .map(|n| n.to_string())
                .or_else(|| claims.preferred_username().map(|u| u.to_string()));
        }
        if let Some(claims) = jwt_claims(&access) {
            identity =
                identity.merged_with(Identity::from_claims(&claims, &self.profile.issuer_url));
        }
        if let Some(previous) = previous {
            identity = identity.merged_with(previous.identity.clone());
        }
        if identity.issuer.is_empty() {
            identity.issuer = self.profile.issuer_url.clone();
        }
        let tokens = StoredTokens {
            issuer: self.profile.issuer_url.clone(),
            client_id: self.profile.client_id.clone(),
            access_token: Some(access),
            expires_at: response
                .expires_in()
                .map(|d| now + i64::try_from(d.as_secs()).unwrap_or(3600)),
            refresh_token: response
                .refresh_token()
                .map(|t| t.secret().clone())
                .or_else(|| previous.and_then(|p| p.refresh_token.clone())),
            scope: response.scopes().map(|s| {
                s.iter()
                    .map(|s| s.to_string())
                    .collect::<Vec<_>>()
                    .join(" ")
            }),
            identity,
            obtained_at: now,
        };
        self.save(&tokens).await?;
        Ok(tokens)
    }

    /// Stores a fresh sign-in's tokens and makes them current.
    pub(crate) async fn accept(
        &self,
        metadata: &IssuerMetadata,
        response: &CoreTokenResponse,
        nonce: Option<&openidconnect::Nonce>,
    ) -> Result<Session, AuthError> {
        let tokens = self.store_response(metadata, response, nonce, None).await?;
        let session = tokens.session(&self.profile.name);
        *self.cache.lock().await = Some(tokens);
        tracing::info!(profile = %self.profile.name, sub = %session.identity.subject, "signed in");
        Ok(session)
    }

    /// The stored session, if any (no network).
    pub async fn session(&self) -> Result<Option<Session>, AuthError> {
        let mut cache = self.cache.lock().await;
        if cache.is_none() {
            *cache = self.load().await?;
        }
        Ok(cache.as_ref().map(|t| t.session(&self.profile.name)))
    }

    async fn refresh_locked(
        &self,
        cache: &mut Option<StoredTokens>,
    ) -> Result<AccessToken, AuthError> {
        let current = cache.clone().ok_or_else(|| AuthError::NotSignedIn {
            profile: self.profile.name.clone(),
        })?;
        let Some(refresh) = current.refresh_token.clone() else {
            return Err(AuthError::SessionExpired {
                profile: self.profile.name.clone(),
                reason: "the access token expired and the issuer gave no refresh token".into(),
            });
        };
        let metadata = self.metadata().await?;
        let client = self
            .oidc(&metadata)
            .set_token_uri(Self::token_url(&metadata)?);
        let refresh_token = RefreshToken::new(refresh);
        let result = client
            .exchange_refresh_token(&refresh_token)
            .request_async(&self.http)
            .await;
        let response = match result {
            Ok(response) => response,
            Err(error) => {
                let error = request_error(&error, &self.profile.name);
                if error.needs_sign_in() {
                    // The issuer refused the refresh token: it is useless, forget the session.
                    let _ = self.forget().await;
                    *cache = None;
                }
                return Err(error);
            }
        };
        let tokens = self
            .store_response(&metadata, &response, None, Some(&current))
            .await?;
        *cache = Some(tokens);
        tracing::debug!(profile = %self.profile.name, "refreshed the access token");
        Ok(AccessToken::new(response.access_token().secret().clone()))
    }

    /// Signs out: revokes the refresh token where the issuer supports RFC 7009, and always
    /// forgets the tokens locally.
    pub async fn logout(&self) -> Result<LogoutReport, AuthError> {
        let mut cache = self.cache.lock().await;
        let stored = match cache.take() {
            Some(tokens) => Some(tokens),
            None => self.load().await?,
        };
        let Some(stored) = stored else {
            return Ok(LogoutReport {
                was_signed_in: false,
                revoked: false,
                revocation_note: None,
            });
        };
        let (revoked, note) = self.revoke(&stored).await;
        self.forget().await?;
        tracing::info!(profile = %self.profile.name, revoked, "signed out");
        Ok(LogoutReport {
            was_signed_in: true,
            revoked,
            revocation_note: note,
        })
    }

    async fn revoke(&self, stored: &StoredTokens) -> (bool, Option<String>) {
        let token = match (&stored.refresh_token, &stored.access_token) {
            (Some(refresh), _) => CoreRevocableToken::from(RefreshToken::new(refresh.clone())),
            (None, Some(access)) => {
                CoreRevocableToken::from(openidconnect::AccessToken::new(access.clone()))
            }
            (None, None) => return (false, Some("no token to revoke".to_owned())),
        };
        let metadata = match tokio::time::timeout(Duration::from_secs(15), self.metadata()).await {
            Ok(Ok(metadata)) => metadata,
            Ok(Err(error)) => return (false, Some(error.to_string())),
            Err(_) => return (false, Some("the issuer did not answer in time".to_owned())),
        };
        let Some(url) = metadata.additional_metadata().revocation_endpoint.clone() else {
            return (
                false,
                Some("the issuer publishes no revocation endpoint".to_owned()),
            );
        };
        let client = self.oidc(&metadata).set_revocation_url(url);
        match client.revoke_token(token) {
            Ok(request) => match request.request_async(&self.http).await {
                Ok(()) => (true, None),
                Err(error) => (false, Some(revocation_error(&error))),
            },
            Err(error) => (false, Some(error.to_string())),
        }
    }
}

impl AuthClient {
    /// The API refused `rejected`: refresh, unless the current token is already another one
    /// (someone refreshed meanwhile).
    pub async fn refresh_if_current(&self, rejected: &str) -> Result<(), AuthError> {
        let mut cache = self.cache.lock().await;
        if cache.is_none() {
            *cache = self.load().await?;
        }
        let current = cache.as_ref().and_then(|t| t.access_token.as_deref());
        if current.is_some_and(|c| c != rejected) {
            return Ok(());
        }
        self.refresh_locked(&mut cache).await.map(|_| ())
    }
}

#[async_trait]
impl TokenSource for AuthClient {
    async fn access_token(&self) -> Result<AccessToken, AuthError> {
        let mut cache = self.cache.lock().await;
        if cache.is_none() {
            *cache = self.load().await?;
        }
        match cache.as_ref() {
            None => Err(AuthError::NotSignedIn {
                profile: self.profile.name.clone(),
            }),
            Some(tokens) if tokens.access_valid(now_unix(), REFRESH_MARGIN_S) => Ok(
                AccessToken::new(tokens.access_token.clone().unwrap_or_default()),
            ),
            Some(_) => self.refresh_locked(&mut cache).await,
        }
    }

    async fn on_unauthorized(&self) -> Result<AccessToken, AuthError> {
        let mut cache = self.cache.lock().await;
        if cache.is_none() {
            *cache = self.load().await?;
        }
        if let Some(tokens) = cache.as_ref()
            && now_unix() - tokens.obtained_at < RECENT_REFRESH_S
            && let Some(access) = &tokens.access_token
        {
            // Another caller refreshed a moment ago: use that token.
            return Ok(AccessToken::new(access.clone()));
        }
        self.refresh_locked(&mut cache).await
    }
}
