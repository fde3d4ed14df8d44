//! fieldlink-tests.
