//! fieldlink-protocol.
