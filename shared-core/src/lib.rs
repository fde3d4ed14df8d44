//! fieldlink-core: the installer engine shared by every shell (CLI, desktop, mobile).
//!
//! - [`error`]: the public error tier ([`CommissionError`]) with stable codes.
//! - [`retry`]: exponential backoff with full jitter that honours `Retry-After`.

pub mod error;
mod failure;
pub mod retry;

pub use error::{CommissionError, ErrorView, Step};
pub mod api_client;
pub mod assignment;
pub mod auth;
pub mod journal;
pub mod secrets;
pub mod transport;
pub mod workflow;
