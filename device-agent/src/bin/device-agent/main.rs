//! `device-agent`: runs one fieldlink device agent from files (identity, trust anchors, a state
//! directory), over BlueZ on a named adapter (`--ble bluez --adapter hciN`, feature `bluez`) and
//! with NetworkManager for the network (`--network networkmanager`). The command line lives in
//! [`fieldlink_device_agent::gateway`]; see `docs/device-agent.md`.

use std::process::ExitCode;

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    fieldlink_device_agent::gateway::main(&argv)
}
