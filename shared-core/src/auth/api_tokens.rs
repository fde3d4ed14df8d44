//! The provisioning-API client's token seam: [`AuthClient`] as an
//! [`crate::api_client::AccessTokenSource`].

use async_trait::async_trait;

use super::{AuthClient, AuthError, TokenSource};
use crate::api_client::{AccessToken, AccessTokenSource, TokenError};

fn token_error(error: AuthError) -> TokenError {
    if error.is_retryable() {
        TokenError::Unavailable {
            detail: error.to_string(),
        }
    } else {
        TokenError::SignInRequired {
            detail: error.to_string(),
        }
    }
}

#[async_trait]
impl AccessTokenSource for AuthClient {
    async fn access_token(&self) -> Result<AccessToken, TokenError> {
        TokenSource::access_token(self)
            .await
            .map(|t| AccessToken::new(t.expose()))
            .map_err(token_error)
    }

    async fn on_unauthorized(&self) -> Result<AccessToken, TokenError> {
        TokenSource::on_unauthorized(self)
            .await
            .map(|t| AccessToken::new(t.expose()))
            .map_err(token_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_map_to_the_clients_two_cases() {
        assert!(matches!(
            token_error(AuthError::IssuerUnavailable {
                detail: "down".into()
            }),
            TokenError::Unavailable { .. }
        ));
        assert!(matches!(
            token_error(AuthError::NotSignedIn {
                profile: "acme".into()
            }),
            TokenError::SignInRequired { .. }
        ));
    }
}
