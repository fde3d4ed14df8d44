//! Device Authorization Grant (RFC 8628): for the CLI and headless QA machines. The user opens
//! the verification URI (or scans its QR code) on any device; the client polls at the server's
//! interval, adds 5 s on every `slow_down`, and gives up at `expires_in`.

use std::{future::Future, sync::Arc, time::Duration};

use openidconnect::{Scope, core::CoreDeviceAuthorizationResponse};

use super::{
    AuthClient, AuthError, Session,
    client::{IssuerMetadata, now_unix},
    map::request_error,
    qr::terminal_qr,
};

/// What to show the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevicePrompt {
    /// The code to type on the verification page.
    pub user_code: String,
    /// Where to type it.
    pub verification_uri: String,
    /// The URI with the code filled in, when the issuer gives one (put this in the QR code).
    pub verification_uri_complete: Option<String>,
    /// The complete (or plain) verification URI as a terminal QR code.
    pub qr: Option<String>,
    /// When the code expires (unix seconds).
    pub expires_at: i64,
}

/// A started device sign-in: show [`DeviceSignIn::prompt`], then
/// [`AuthClient::finish_device_sign_in`].
pub struct DeviceSignIn {
    prompt: DevicePrompt,
    details: CoreDeviceAuthorizationResponse,
    metadata: Arc<IssuerMetadata>,
}

impl std::fmt::Debug for DeviceSignIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceSignIn")
            .field("prompt", &self.prompt)
            .finish_non_exhaustive()
    }
}

impl DeviceSignIn {
    /// What to show the user.
    pub fn prompt(&self) -> &DevicePrompt {
        &self.prompt
    }
}

pub(crate) fn extra_scopes(scopes: &[String]) -> impl Iterator<Item = Scope> + '_ {
    scopes
        .iter()
        .filter(|s| s.as_str() != "openid")
        .map(|s| Scope::new(s.clone()))
}

impl AuthClient {
    /// Starts a device sign-in: asks the issuer for a user code.
    pub async fn start_device_sign_in(&self) -> Result<DeviceSignIn, AuthError> {
        let metadata = self.metadata().await?;
        let endpoint = metadata
            .additional_metadata()
            .device_authorization_endpoint
            .clone()
            .ok_or_else(|| AuthError::Unsupported {
                what: "the device authorization grant (no device_authorization_endpoint); \
                       sign in with the browser instead"
                    .to_owned(),
            })?;
        let client = self.oidc(&metadata).set_device_authorization_url(endpoint);
        let details: CoreDeviceAuthorizationResponse = client
            .exchange_device_code()
            .add_scopes(extra_scopes(&self.profile.scopes))
            .request_async(&self.http)
            .await
            .map_err(|e| request_error(&e, &self.profile.name))?;
        let verification_uri = details.verification_uri().to_string();
        self.http.check(&verification_uri)?;
        let complete = details
            .verification_uri_complete()
            .map(|u| u.secret().clone());
        let qr = terminal_qr(complete.as_deref().unwrap_or(&verification_uri));
        let prompt = DevicePrompt {
            user_code: details.user_code().secret().clone(),
            verification_uri,
            verification_uri_complete: complete,
            qr,
            expires_at: now_unix() + i64::try_from(details.expires_in().as_secs()).unwrap_or(0),
        };
        Ok(DeviceSignIn {
            prompt,
            details,
            metadata,
        })
    }

    /// Polls until the user approves (→ the session, stored), denies (`access_denied`), or the
    /// code expires (`sign_in_expired`). Dropping the future cancels.
    pub async fn finish_device_sign_in(&self, sign_in: DeviceSignIn) -> Result<Session, AuthError> {
        self.finish_device_sign_in_with_sleep(sign_in, tokio::time::sleep)
            .await
    }

    /// [`AuthClient::finish_device_sign_in`] with the wait between polls supplied by the caller
    /// (`tokio::time::sleep` there). Polling follows RFC 8628 §3.5: the first poll at once, then
    /// `sleep(interval)` before each next one, starting from the server's `interval` and adding
    /// 5 s on every `slow_down` (kept for the rest of the sign-in). Tests pass a sleep that
    /// records the intervals and moves a simulated clock instead of waiting.
    pub async fn finish_device_sign_in_with_sleep<S, F>(
        &self,
        sign_in: DeviceSignIn,
        sleep: S,
    ) -> Result<Session, AuthError>
    where
        S: Fn(Duration) -> F,
        F: Future<Output = ()>,
    {
        let DeviceSignIn {
            details, metadata, ..
        } = sign_in;
        let client = self
            .oidc(&metadata)
            .set_token_uri(Self::token_url(&metadata)?);
        let response = client
            .exchange_device_access_token(&details)
            .request_async(&self.http, sleep, None)
            .await
            .map_err(|e| request_error(&e, &self.profile.name))?;
        self.accept(&metadata, &response, None).await
    }

    /// Both steps: `show` receives the prompt (print it, render the QR code), then polls.
    pub async fn sign_in_with_device_code(
        &self,
        show: impl FnOnce(&DevicePrompt) + Send,
    ) -> Result<Session, AuthError> {
        let sign_in = self.start_device_sign_in().await?;
        show(sign_in.prompt());
        self.finish_device_sign_in(sign_in).await
    }
}
