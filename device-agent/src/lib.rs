//! fieldlink-device-agent: the device side of fieldlink commissioning.
//!
//! - [`store`]: the persistent state, stored atomically.
//! - [`clock`]: injectable time.
//! - [`secret`]: redacted secret wrappers.

pub mod clock;
pub mod secret;
pub mod store;
