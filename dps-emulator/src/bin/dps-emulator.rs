//! Runs the DPS emulator.
//!
//! ```text
//! dps-emulator [--config FILE.json] [--http ADDR | --no-http] [--https ADDR]
//!              [--tls-name NAME]... [--ca-key FILE] [--ca-out FILE]
//! ```
//!
//! `--config` takes an `EmulatorConfig` JSON document (camelCase; see docs/dps-emulator.md).
//! `--ca-key` reuses a CA private key (created on first use) so devices keep trusting the CA
//! across restarts; `--ca-out` writes the CA certificate PEM for clients to trust.

use fieldlink_dps_emulator::{DpsEmulator, EmulatorConfig, TlsOptions};
use std::io::Write as _;
use std::net::SocketAddr;
use std::process::ExitCode;

const USAGE: &str = "usage: dps-emulator [--config FILE.json] [--http ADDR | --no-http] \
[--https ADDR] [--tls-name NAME]... [--ca-key FILE] [--ca-out FILE]";

#[derive(Default)]
struct Args {
    config: Option<String>,
    http: Option<SocketAddr>,
    no_http: bool,
    https: Option<SocketAddr>,
    tls_names: Vec<String>,
    ca_key: Option<String>,
    ca_out: Option<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args::default();
    let mut iter = std::env::args().skip(1);
    while let Some(flag) = iter.next() {
        let mut value = || {
            iter.next()
                .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))
        };
        match flag.as_str() {
            "--config" => args.config = Some(value()?),
            "--http" => args.http = Some(value()?.parse().map_err(|e| format!("--http: {e}"))?),
            "--no-http" => args.no_http = true,
            "--https" => args.https = Some(value()?.parse().map_err(|e| format!("--https: {e}"))?),
            "--tls-name" => args.tls_names.push(value()?),
            "--ca-key" => args.ca_key = Some(value()?),
            "--ca-out" => args.ca_out = Some(value()?),
            "-h" | "--help" => return Err(USAGE.to_owned()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    Ok(args)
}

fn build_config(args: &Args) -> Result<EmulatorConfig, String> {
    let mut config = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
            serde_json::from_str(&text).map_err(|e| format!("{path}: {e}"))?
        }
        None => EmulatorConfig::default(),
    };
    if let Some(addr) = args.http {
        config.http_bind = Some(addr);
    }
    if args.no_http {
        config.http_bind = None;
    }
    if args.https.is_some() || !args.tls_names.is_empty() || args.ca_key.is_some() {
        let mut tls = config.tls.take().unwrap_or_default();
        if let Some(addr) = args.https {
            tls.bind = addr;
        }
        if !args.tls_names.is_empty() {
            tls.names = args.tls_names.clone();
        }
        config.tls = Some(tls);
    }
    Ok(config)
}

/// Reads the CA key at `path`, or leaves it unset so a new CA is made (and saved after start).
fn load_ca_key(tls: &mut TlsOptions, path: &str) -> Result<bool, String> {
    match std::fs::read_to_string(path) {
        Ok(key) => {
            tls.ca_key_pem = Some(key);
            Ok(false)
        }
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(true),
        Err(err) => Err(format!("{path}: {err}")),
    }
}

/// Writes a secret file readable by its owner only (on Unix).
fn write_secret(path: &str, contents: &str) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(contents.as_bytes())
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            let _ = writeln!(std::io::stderr(), "dps-emulator: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), String> {
    let args = parse_args()?;
    let mut config = build_config(&args)?;
    let mut save_ca_key = false;
    if let (Some(path), Some(tls)) = (&args.ca_key, config.tls.as_mut()) {
        save_ca_key = load_ca_key(tls, path)?;
    }
    let emulator = DpsEmulator::start(config)
        .await
        .map_err(|e| e.to_string())?;
    if let (Some(https), Some(path)) = (emulator.https(), &args.ca_key)
        && save_ca_key
    {
        write_secret(path, https.ca_key_pem()).map_err(|e| format!("{path}: {e}"))?;
    }
    if let (Some(ca), Some(path)) = (emulator.ca_pem(), &args.ca_out) {
        std::fs::write(path, ca).map_err(|e| format!("{path}: {e}"))?;
    }
    let mut out = std::io::stdout().lock();
    let summary = serde_json::json!({
        "http": emulator.http_base_url(),
        "https": emulator.https_base_url(),
        "instances": emulator.control().instances(),
    });
    let _ = writeln!(
        out,
        "{}",
        serde_json::to_string_pretty(&summary).unwrap_or_default()
    );
    drop(out);
    tokio::signal::ctrl_c()
        .await
        .map_err(|e| format!("waiting for Ctrl-C: {e}"))?;
    emulator.shutdown().await;
    Ok(())
}
