//! fieldlink uniffi bindings: a thin shell over `fieldlink-core` for the Android and iOS apps
//! (and Python/Kotlin tests). Newtypes, conversions and runtime glue only; every behaviour lives
//! in the core. See `docs/mobile.md`.

uniffi::setup_scaffolding!();

pub mod ble_link;
pub mod client;
mod convert;
pub mod error;
pub mod history;
pub mod label;
pub mod progress;
pub mod report;
mod runtime;
pub mod secrets;
pub mod sign_in;
#[cfg(feature = "testing")]
pub mod testing;
mod uuid;
