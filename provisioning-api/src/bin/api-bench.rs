//! Load bench for the provisioning API.

fn main() {}
