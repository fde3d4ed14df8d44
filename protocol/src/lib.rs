//! The fieldlink wire protocol, shared by the installer and the device.
//!
//! Sans-I/O: nothing here touches sockets, radios, clocks or async runtimes. Callers pass time in
//! and move bytes themselves. Randomness is passed in as a [`rand_core::CryptoRngCore`] so tests
//! can be deterministic.

pub mod framing;
pub mod gatt;
pub mod message;
pub mod payload;
pub mod registration_id;
pub mod sas;
pub mod secret;
pub mod session;
pub mod ticket;

#[cfg(test)]
mod docs_examples;

pub use rand_core;

/// The protocol version this crate speaks (in the QR label, the advertisement and the hellos).
pub const PROTOCOL_VERSION: u8 = 1;
