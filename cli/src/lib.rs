//! fieldlink-cli: the `fieldlink` command (see `docs/cli.md`).
//!
//! - [`args`]: the command line (clap derive; doc comments are the help text);
//! - [`commands`]: one module per command;
//! - [`runner`]: runs commissionings with journaling; [`progress`] shows them;
//! - [`stack`]: the in-process DPS emulator + virtual fleet behind `demo` and `sandbox up`;
//! - [`fleet`]: the loopback socket through which other processes reach a sandbox's fleet;
//! - [`config`], [`target`], [`auth`], [`network`]: configuration and where things are;
//! - [`output`], [`results`], [`exit`]: stdout, the `--json` schema and exit codes.

pub mod args;
pub mod auth;
pub mod bluez_sandbox;
pub mod commands;
pub mod config;
pub mod counting;
pub mod exit;
pub mod fleet;
pub mod labels;
pub mod manifest;
pub mod network;
pub mod output;
pub mod payloads;
pub mod progress;
pub mod results;
pub mod runner;
pub mod sources;
pub mod stack;
pub mod target;

use std::process::ExitCode;

use clap::Parser;
use tokio_util::sync::CancellationToken;

use crate::{args::Cli, output::Output};

/// Parses the command line, runs the command and returns its exit code.
pub fn run() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            // Help and version go to stdout with 0; usage errors to stderr with 2.
            let _ = error.print();
            return ExitCode::from(u8::try_from(error.exit_code()).unwrap_or(2));
        }
    };
    init_tracing(cli.global.verbose, cli.global.quiet);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!(%error, "cannot start the async runtime");
            return ExitCode::from(exit::Exit::Internal.code());
        }
    };
    let output = Output::stdout(cli.global.json, cli.global.quiet);
    let exit = runtime.block_on(async {
        let cancel = CancellationToken::new();
        tokio::spawn(cancel_on_signal(cancel.clone()));
        commands::dispatch(cli, &output, cancel).await
    });
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    ExitCode::from(exit.code())
}

/// Cancels `token` on Ctrl-C (and SIGTERM on Unix).
async fn cancel_on_signal(token: CancellationToken) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = terminate.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
    token.cancel();
}

/// Logs to stderr: `-q` errors only, default warnings, `-v` info, `-vv` debug, `-vvv` trace;
/// `FIELDLINK_LOG` (an `EnvFilter` directive) overrides.
fn init_tracing(verbose: u8, quiet: bool) {
    let level = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, 2) => "debug",
        (false, _) => "trace",
    };
    let filter = std::env::var("FIELDLINK_LOG")
        .ok()
        .and_then(|directive| tracing_subscriber::EnvFilter::try_new(directive).ok())
        .unwrap_or_else(|| tracing_subscriber::EnvFilter::new(level));
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter)
        .with_target(false)
        .try_init();
}
