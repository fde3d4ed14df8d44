//! fieldlink's reference provisioning API.
//!
//! It assigns devices to DPS instances (least-loaded, capacity- and rate-aware, sticky,
//! idempotent), signs commissioning tickets, reports DPS registration state through the DPS
//! service API, keeps per-tenant device allowlists, and administers the DPS pool. Storage is
//! SQLite (embedded) or PostgreSQL (several replicas); callers authenticate with bearer JWTs
//! from a trusted issuer's JWKS.

pub mod allocation;
pub mod auth;
pub mod clock;
pub mod model;
pub mod secret;
pub mod storage;
pub mod test_tokens;
