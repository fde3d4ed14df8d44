//! The provisioning API server.

fn main() {}
