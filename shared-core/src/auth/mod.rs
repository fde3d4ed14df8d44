//! Signing installers in: an OpenID Connect client built on the `openidconnect`/`oauth2`
//! crates (no hand-written OAuth).
//!
//! - [`Profile`] / [`Profiles`]: one per organisation (API URL, issuer URL, client id, optional
//!   CA file); several can be signed in at once.
//! - [`AuthClient`]: discovery; the device authorization grant (RFC 8628, with a terminal QR
//!   code) — [`AuthClient::sign_in_with_device_code`]; authorization code + PKCE with a
//!   loopback redirect (RFC 8252) — [`AuthClient::sign_in_with_browser`] — or a custom-scheme
//!   redirect the shell hands back — [`AuthClient::begin_authorization`] /
//!   [`AuthClient::complete_authorization`]; sign-out with revocation (RFC 7009) —
//!   [`AuthClient::logout`].
//! - [`TokenSource`] (implemented by [`AuthClient`]): what the API client calls for a bearer
//!   token; refreshes a minute before expiry and on a 401.
//! - Tokens live only in a [`crate::secrets::SecretStore`] (one entry per profile) and never
//!   in logs or `Debug` output.
//! - Transport: rustls with the system roots plus the profile's CA file; plain HTTP only with
//!   `allow_insecure_loopback`, and then only to loopback addresses — checked on every request,
//!   discovered endpoints included.

mod api_tokens;
mod browser;
mod client;
mod device;
mod error;
pub mod http;
mod map;
mod profile;
mod qr;
mod session;

pub use browser::{LOOPBACK_PATH, PendingAuthorization};
pub use client::{
    AuthClient, ExtraProviderMetadata, IssuerMetadata, LogoutReport, REFRESH_MARGIN_S, TokenSource,
};
pub use device::{DevicePrompt, DeviceSignIn};
pub use error::AuthError;
pub use profile::{Profile, Profiles, TOKEN_SERVICE};
pub use qr::terminal_qr;
pub use session::{AccessToken, Identity, Session};
