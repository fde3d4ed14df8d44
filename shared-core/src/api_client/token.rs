//! Bearer tokens for the provisioning API: the [`AccessTokenSource`] trait the client asks
//! before each request (and tells about a 401), and [`StaticAccessToken`] for tests and
//! service accounts.

use std::fmt;

use async_trait::async_trait;
use zeroize::Zeroizing;

/// An OAuth access token. `Debug` prints `"<redacted>"`; the memory is zeroed on drop.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessToken(Zeroizing<String>);

impl AccessToken {
    /// Wraps a token.
    pub fn new(token: impl Into<String>) -> Self {
        Self(Zeroizing::new(token.into()))
    }

    /// The token text. Call this only where it goes on the wire.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(crate::secrets::REDACTED)
    }
}

/// Why no token could be had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Nobody is signed in, or the session cannot be refreshed: sign in again.
    #[error("sign-in required: {detail}")]
    SignInRequired {
        /// Secret-free description.
        detail: String,
    },
    /// The issuer could not be reached to refresh the token.
    #[error("the sign-in service is unavailable: {detail}")]
    Unavailable {
        /// Secret-free description.
        detail: String,
    },
}

/// Where the client gets bearer tokens (the sign-in session implements it).
#[async_trait]
pub trait AccessTokenSource: Send + Sync {
    /// A token to send now (cached by the source; refreshed by it when close to expiry).
    async fn access_token(&self) -> Result<AccessToken, TokenError>;

    /// The API answered 401 to the current token: refresh it now and return the new one
    /// (deduplicating concurrent reports is the source's business). The client calls this at
    /// most once per request, then retries once with the returned token.
    ///
    /// The same shape as the sign-in session's `TokenSource`, so it adapts one to one.
    async fn on_unauthorized(&self) -> Result<AccessToken, TokenError>;
}

/// One fixed token (tests, CI service accounts). A 401 cannot be repaired.
#[derive(Clone)]
pub struct StaticAccessToken(AccessToken);

impl StaticAccessToken {
    /// Always hands out `token`.
    pub fn new(token: impl Into<String>) -> Self {
        Self(AccessToken::new(token))
    }
}

impl fmt::Debug for StaticAccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("StaticAccessToken").field(&self.0).finish()
    }
}

#[async_trait]
impl AccessTokenSource for StaticAccessToken {
    async fn access_token(&self) -> Result<AccessToken, TokenError> {
        Ok(self.0.clone())
    }

    async fn on_unauthorized(&self) -> Result<AccessToken, TokenError> {
        Err(TokenError::SignInRequired {
            detail: "the configured token was refused and cannot be refreshed".to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn static_token_is_redacted_and_cannot_refresh() {
        let source = StaticAccessToken::new("eyJ.secret.token");
        let token = source.access_token().await.unwrap();
        assert_eq!(token.expose(), "eyJ.secret.token");
        assert!(!format!("{token:?}{source:?}").contains("secret"));
        assert!(matches!(
            source.on_unauthorized().await,
            Err(TokenError::SignInRequired { .. })
        ));
    }
}
