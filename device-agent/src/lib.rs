//! fieldlink-device-agent: the device side of fieldlink commissioning.
//!
//! - [`store`]: the persistent state, stored atomically.
//! - [`clock`]: injectable time.
//! - [`secret`]: redacted secret wrappers.

pub mod agent;
pub mod backoff;
#[cfg(all(target_os = "linux", feature = "bluez"))]
pub mod bluez;
pub mod clock;
pub mod dps;
pub mod fleet;
pub mod gateway;
pub mod link;
pub mod machine;
pub mod network;
pub mod secret;
pub mod store;
