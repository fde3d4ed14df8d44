//! The fieldlink wire protocol, shared by the installer and the device.
//!
//! Sans-I/O: nothing here touches sockets, radios, clocks or async runtimes. Callers pass time in
//! and move bytes themselves.

pub mod sas;
