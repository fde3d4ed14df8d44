//! `fieldlink sandbox agent`: (re)starts one device agent of a `sandbox up --ble bluez` sandbox,
//! in the foreground, from the files and state directory its manifest names (so a restarted
//! agent keeps what the killed one persisted). It is what `sandbox up` itself runs per device.

use std::path::PathBuf;

use clap::Args;
use serde_json::json;

use super::Context;
use crate::{
    bluez_sandbox::{self, BUS_ENV, agent_argv},
    config::default_sandbox_dir,
    exit::{CliError, Exit},
    manifest::Manifest,
};

/// `sandbox agent` options.
#[derive(Debug, Clone, Args)]
pub struct SandboxAgentArgs {
    /// The sandbox manifest [default: $XDG_STATE_HOME/fieldlink/sandbox/manifest.json].
    #[arg(long, env = "FIELDLINK_SANDBOX", value_name = "FILE")]
    pub manifest: Option<PathBuf>,
    /// The device: its registration ID (or its discriminator, `0xA42`).
    #[arg(long, value_name = "ID")]
    pub device: String,
    /// Serve on this adapter instead of the one in the manifest.
    #[arg(long, value_name = "NAME")]
    pub adapter: Option<String>,
    /// Stop when stdin reaches end of file (how `sandbox up` ties its agents to itself).
    #[arg(long, hide = true)]
    pub tether: bool,
}

fn parse_discriminator(text: &str) -> Option<u16> {
    let hex = text
        .strip_prefix("0x")
        .or_else(|| text.strip_prefix("0X"))?;
    u16::from_str_radix(hex, 16).ok()
}

/// Runs the agent until Ctrl-C or SIGTERM (or until it is killed).
pub async fn run(args: SandboxAgentArgs, context: &Context) -> Result<Exit, CliError> {
    let path = args
        .manifest
        .clone()
        .unwrap_or_else(|| default_sandbox_dir().join("manifest.json"));
    let manifest = Manifest::load(&path)?;
    let Some(fleet) = manifest.bluez.as_ref() else {
        return Err(CliError::new(
            Exit::Config,
            "not_a_bluez_sandbox",
            format!(
                "{} is not a `sandbox up --ble bluez` sandbox: its devices are not BlueZ agents",
                path.display()
            ),
        ));
    };
    let wanted = parse_discriminator(&args.device);
    let Some(device) = fleet.devices.iter().find(|device| {
        device.registration_id == args.device || Some(device.discriminator) == wanted
    }) else {
        return Err(CliError::config(format!(
            "the sandbox has no device {} (registration IDs: {})",
            args.device,
            fleet
                .devices
                .iter()
                .map(|device| device.registration_id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    };
    // libdbus reads the bus address from the environment once: run on the sandbox's bus by
    // replacing this process with itself under that environment (same pid, so killing it kills
    // the agent).
    #[cfg(unix)]
    if let Some(bus) = &fleet.bus_address
        && std::env::var(BUS_ENV).ok().as_deref() != Some(bus.as_str())
    {
        use std::os::unix::process::CommandExt as _;
        let exe = std::env::current_exe()
            .map_err(|error| CliError::internal(format!("cannot find fieldlink: {error}")))?;
        let error = std::process::Command::new(exe)
            .args(std::env::args_os().skip(1))
            .env(BUS_ENV, bus)
            .exec();
        return Err(CliError::internal(format!(
            "cannot restart on the sandbox's bus: {error}"
        )));
    }
    if args.tether {
        bluez_sandbox::exit_when_stdin_closes();
    }
    let adapter = args
        .adapter
        .clone()
        .unwrap_or_else(|| device.adapter.clone());
    let argv = agent_argv(device, &adapter, &manifest.ca_cert);
    context.output.info(format!(
        "device agent {} on {adapter} (state {})",
        device.registration_id,
        device.state_dir.display()
    ));
    // The agent builds its own runtime, so it runs on a thread of its own.
    let agent = std::thread::Builder::new()
        .name("device-agent".into())
        .spawn(move || fieldlink_device_agent::gateway::main(&argv))
        .map_err(|error| CliError::internal(format!("cannot start the agent: {error}")))?;
    let code = tokio::task::spawn_blocking(move || agent.join())
        .await
        .map_err(|error| CliError::internal(error.to_string()))?
        .map_err(|_| CliError::internal("the device agent panicked"))?;
    if code == std::process::ExitCode::SUCCESS {
        context.output.result(
            "sandbox agent",
            Exit::Success,
            json!({"device": device.registration_id, "adapter": adapter}),
        );
        Ok(Exit::Success)
    } else {
        Err(CliError::new(
            Exit::TransportUnavailable,
            "device_agent_failed",
            format!(
                "the device agent {} stopped with an error (see its messages above)",
                device.registration_id
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_device_is_named_by_registration_id_or_hex_discriminator() {
        assert_eq!(parse_discriminator("0xA42"), Some(0xa42));
        assert_eq!(parse_discriminator("0x0a42"), Some(0xa42));
        assert_eq!(parse_discriminator("sandbox-device-0001"), None);
        assert_eq!(parse_discriminator("0xZZ"), None);
    }
}
