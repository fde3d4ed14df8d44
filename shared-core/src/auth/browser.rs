//! Authorization Code with PKCE (RFC 7636) in the system browser: a loopback redirect listener
//! on `127.0.0.1` and an ephemeral port (RFC 8252 §7.3) for desktops, or a custom-scheme
//! redirect that the mobile shell hands back. The core opens nothing itself: the caller supplies
//! the "open this URL" callback.

use std::{sync::Arc, time::Duration};

use openidconnect::{
    AuthorizationCode, CsrfToken, Nonce, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl,
    core::CoreAuthenticationFlow,
};
use subtle::ConstantTimeEq;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
};
use url::Url;

use super::{
    AuthClient, AuthError, Session, client::IssuerMetadata, device::extra_scopes,
    map::request_error,
};

/// Path of the loopback redirect.
pub const LOOPBACK_PATH: &str = "/callback";

/// A started authorization: open [`PendingAuthorization::authorize_url`] in a browser, then
/// pass the redirect URL it lands on to [`AuthClient::complete_authorization`].
pub struct PendingAuthorization {
    authorize_url: String,
    redirect_uri: String,
    state: CsrfToken,
    nonce: Nonce,
    verifier: PkceCodeVerifier,
    metadata: Arc<IssuerMetadata>,
}

impl std::fmt::Debug for PendingAuthorization {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingAuthorization")
            .field("redirect_uri", &self.redirect_uri)
            .finish_non_exhaustive()
    }
}

impl PendingAuthorization {
    /// The URL to open in the browser.
    pub fn authorize_url(&self) -> &str {
        &self.authorize_url
    }

    /// The redirect URI the issuer will send the browser to.
    pub fn redirect_uri(&self) -> &str {
        &self.redirect_uri
    }
}

fn invalid(detail: impl Into<String>) -> AuthError {
    AuthError::InvalidRedirect {
        detail: detail.into(),
    }
}

fn same_endpoint(expected: &Url, actual: &Url) -> bool {
    expected.scheme() == actual.scheme()
        && expected.host() == actual.host()
        && expected.port_or_known_default() == actual.port_or_known_default()
        && expected.path() == actual.path()
}

impl AuthClient {
    /// Prepares an authorization request (fresh state, nonce and PKCE S256 verifier) for
    /// `redirect_uri`: a loopback URI or the shell's registered custom scheme.
    pub async fn begin_authorization(
        &self,
        redirect_uri: &str,
    ) -> Result<PendingAuthorization, AuthError> {
        let metadata = self.metadata().await?;
        let redirect = RedirectUrl::new(redirect_uri.to_owned())
            .map_err(|e| invalid(format!("redirect URI {redirect_uri:?}: {e}")))?;
        self.http
            .check(metadata.authorization_endpoint().as_str())?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let (url, state, nonce) = self
            .oidc(&metadata)
            .set_redirect_uri(redirect)
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .add_scopes(extra_scopes(&self.profile.scopes))
            .set_pkce_challenge(challenge)
            .url();
        Ok(PendingAuthorization {
            authorize_url: url.to_string(),
            redirect_uri: redirect_uri.to_owned(),
            state,
            nonce,
            verifier,
            metadata,
        })
    }

    /// Completes an authorization from the URL the browser was redirected to: checks it is the
    /// expected redirect, the `state` and the `iss` (RFC 9207), then redeems the code with the
    /// PKCE verifier and stores the tokens.
    pub async fn complete_authorization(
        &self,
        pending: PendingAuthorization,
        redirect_url: &str,
    ) -> Result<Session, AuthError> {
        let expected = Url::parse(&pending.redirect_uri).map_err(|e| invalid(e.to_string()))?;
        let actual = Url::parse(redirect_url).map_err(|e| invalid(e.to_string()))?;
        if !same_endpoint(&expected, &actual) {
            return Err(invalid(
                "the redirect is not the one this sign-in registered",
            ));
        }
        let param = |name: &str| {
            actual
                .query_pairs()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.into_owned())
        };
        let state = param("state").unwrap_or_default();
        if !bool::from(state.as_bytes().ct_eq(pending.state.secret().as_bytes())) {
            return Err(invalid(
                "the state does not match (possible forged redirect)",
            ));
        }
        if let Some(iss) = param("iss")
            && iss != pending.metadata.issuer().as_str()
        {
            return Err(invalid("the redirect comes from another issuer"));
        }
        if let Some(error) = param("error") {
            return Err(match error.as_str() {
                "access_denied" => AuthError::AccessDenied,
                _ => AuthError::IssuerRejected {
                    error,
                    description: param("error_description").unwrap_or_default(),
                },
            });
        }
        let code = param("code").ok_or_else(|| invalid("the redirect carries no code"))?;
        let redirect =
            RedirectUrl::new(pending.redirect_uri.clone()).map_err(|e| invalid(e.to_string()))?;
        let client = self
            .oidc(&pending.metadata)
            .set_redirect_uri(redirect)
            .set_token_uri(Self::token_url(&pending.metadata)?);
        let response = client
            .exchange_code(AuthorizationCode::new(code))
            .set_pkce_verifier(pending.verifier)
            .request_async(&self.http)
            .await
            .map_err(|e| request_error(&e, &self.profile.name))?;
        self.accept(&pending.metadata, &response, Some(&pending.nonce))
            .await
    }

    /// Desktop sign-in: listens on `127.0.0.1` (ephemeral port), asks `open_browser` to open
    /// the authorization URL, waits for the redirect until `deadline`, and completes.
    pub async fn sign_in_with_browser(
        &self,
        open_browser: impl FnOnce(&str) -> Result<(), String> + Send,
        deadline: Duration,
    ) -> Result<Session, AuthError> {
        let listener =
            TcpListener::bind(("127.0.0.1", 0))
                .await
                .map_err(|e| AuthError::Browser {
                    detail: format!("cannot listen on loopback: {e}"),
                })?;
        let port = listener
            .local_addr()
            .map_err(|e| AuthError::Browser {
                detail: e.to_string(),
            })?
            .port();
        let redirect_uri = format!("http://127.0.0.1:{port}{LOOPBACK_PATH}");
        let pending = self.begin_authorization(&redirect_uri).await?;
        open_browser(pending.authorize_url()).map_err(|detail| AuthError::Browser { detail })?;
        let redirected = tokio::time::timeout(deadline, wait_for_redirect(&listener, port))
            .await
            .map_err(|_| AuthError::SignInExpired)??;
        self.complete_authorization(pending, &redirected).await
    }
}

const DONE_PAGE: &str = "<!doctype html><html><head><meta charset=\"utf-8\"><title>fieldlink\
</title></head><body style=\"font-family:sans-serif\"><h1>Signed in</h1><p>You can close this \
window and return to fieldlink.</p></body></html>";

/// Serves the loopback listener until a request for [`LOOPBACK_PATH`] arrives; returns its
/// full URL. Other requests (favicon, probes) get 404.
async fn wait_for_redirect(listener: &TcpListener, port: u16) -> Result<String, AuthError> {
    loop {
        let (mut stream, _) = listener.accept().await.map_err(|e| AuthError::Browser {
            detail: format!("loopback listener: {e}"),
        })?;
        let mut head = Vec::with_capacity(1024);
        let read = tokio::time::timeout(Duration::from_secs(10), async {
            let mut buf = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 8192 {
                let n = stream.read(&mut buf).await?;
                if n == 0 {
                    break;
                }
                head.extend_from_slice(&buf[..n]);
            }
            Ok::<_, std::io::Error>(())
        })
        .await;
        if !matches!(read, Ok(Ok(()))) {
            continue;
        }
        let text = String::from_utf8_lossy(&head);
        let mut first = text.lines().next().unwrap_or_default().split(' ');
        let (method, target) = (first.next(), first.next().unwrap_or_default());
        let is_callback = method == Some("GET")
            && (target == LOOPBACK_PATH || target.starts_with(&format!("{LOOPBACK_PATH}?")));
        let (status, body) = if is_callback {
            ("200 OK", DONE_PAGE)
        } else {
            ("404 Not Found", "not found")
        };
        let response = format!(
            "HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\n\
             Cache-Control: no-store\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = stream.write_all(response.as_bytes()).await;
        let _ = stream.shutdown().await;
        if is_callback {
            return Ok(format!("http://127.0.0.1:{port}{target}"));
        }
    }
}
