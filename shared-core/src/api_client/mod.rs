//! The provisioning-API client: the installer side of `docs/provisioning-api.md`.
//!
//! [`ProvisioningApiClient`] implements [`AssignmentSource`](crate::assignment::AssignmentSource)
//! (`POST /v1/assignments` with an `Idempotency-Key` per commissioning attempt) and
//! [`RegistrationStatusSource`](crate::assignment::RegistrationStatusSource)
//! (`GET /v1/devices/{id}/registration`), and fetches the ticket keys devices trust
//! (`GET /v1/ticket-keys`).
//!
//! - Transport: reqwest with rustls (ring); system roots plus an optional CA PEM; plain HTTP only
//!   to a loopback host and only when explicitly allowed ([`ApiClientConfig`]); no redirects.
//! - Authentication: a bearer token from an [`AccessTokenSource`]; on 401 the source is asked
//!   to refresh once and the request is retried once.
//! - Patience: a deadline per request and an overall deadline per call; retries with
//!   exponential backoff and full jitter ([`crate::retry`]) that honour `Retry-After` (429,
//!   503, and the API's 409 "still running"); a [`CircuitBreaker`] that fails fast with
//!   `api_unavailable` after repeated failures.
//! - Errors: [`ApiClientError`], mapped to the core's [`ServiceError`](crate::assignment::ServiceError)
//!   and public codes in one place ([`ApiClientError::to_service_error`]).
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use fieldlink_core::api_client::{ApiClientConfig, ProvisioningApiClient, StaticAccessToken};
//! use fieldlink_core::assignment::AssignmentSource;
//!
//! let client = ProvisioningApiClient::new(
//!     ApiClientConfig::new("https://api.acme.example"),
//!     Arc::new(StaticAccessToken::new("eyJ...")),
//! )?;
//! let assignment = client.assignment("sensor-00042".into()).await?;
//! println!("DPS scope {}", assignment.id_scope);
//! # Ok(()) }
//! ```

mod breaker;
mod client;
mod clock;
mod config;
mod error;
mod idempotency;
mod token;
mod wire;

pub use breaker::{BreakerConfig, BreakerState, CircuitBreaker, Permit, Rejected};
pub use client::ProvisioningApiClient;
pub use clock::{ClientClock, TokioClock};
pub use config::{ApiClientConfig, ConfigError};
pub use error::{ApiClientError, ErrorReply, retry_after};
pub use idempotency::IdempotencyKey;
pub use token::{AccessToken, AccessTokenSource, StaticAccessToken, TokenError};
pub use wire::{IssuedAssignment, ServiceRegistration, TicketKey};
