//! The device-side commissioning state machine (sans-I/O).

pub mod lockout;
pub mod staging;
