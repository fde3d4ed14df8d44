//! fieldlink-core.
