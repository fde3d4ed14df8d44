//! fieldlink-tests: the in-process fieldlink world and the cross-crate scenarios.
//!
//! - [`world`]: virtual devices behind the in-memory radio, the DPS emulator, a ticket signer
//!   and a status source, assembled in one process.
//! - [`sources`]: assignment sources that misbehave on purpose (tampered, foreign tickets).
//! - [`status`]: a registration-status source over the DPS emulator.
//!
//! The scenarios live in `tests/`; the bench is the `protocol-bench` binary.

pub mod sources;
pub mod status;
pub mod world;
