//! `device-agent`: runs one fieldlink device agent from files.

fn main() {}
