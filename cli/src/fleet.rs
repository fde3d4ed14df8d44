//! The fleet socket: how a separate `fieldlink` process reaches a sandbox's virtual devices.
//!
//! `fieldlink sandbox up` listens on a loopback TCP port (written to its manifest with a random
//! token). Each TCP connection carries one operation as newline-delimited JSON; the first line
//! is a [`wire::Hello`] (the token plus a [`wire::Request`]) and the server answers with one
//! [`wire::Reply`]:
//!
//! - `scan`: the in-memory radio's scan; `connect`: opens a link to a virtual device and turns
//!   the TCP connection into that BLE link: the client sends `write` frames (each one ATT write,
//!   acknowledged in order once the device has it), the server sends `notify` frames and a
//!   final `disconnected`. Closing the TCP connection is a disconnect, so a killed installer
//!   process drops its links exactly like a real central going away;
//! - `assignment` / `status`: the sandbox's ticket signer and registration-status source (the
//!   *bridge*, standing in for the provisioning API until its client is in the core);
//! - `devices`: what each virtual device holds (tickets accepted, state) for QA and tests;
//! - `fault`: switches sandbox faults (the status service going offline).
//!
//! The client side is [`client::FleetClient`]: a [`BleTransport`] plus an
//! [`AssignmentSource`] and a [`RegistrationStatusSource`].
//!
//! [`BleTransport`]: fieldlink_core::transport::BleTransport
//! [`AssignmentSource`]: fieldlink_core::assignment::AssignmentSource
//! [`RegistrationStatusSource`]: fieldlink_core::assignment::RegistrationStatusSource

pub mod client;
pub mod server;
pub mod wire;
