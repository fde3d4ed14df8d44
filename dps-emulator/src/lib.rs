//! fieldlink-dps-emulator.
