//! `fieldlink`, the headless installer shell.

fn main() {}
