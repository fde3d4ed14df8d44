//! One module per command; [`dispatch`] runs one and turns its error into an exit code.

mod account;
mod batch;
mod commission;
mod demo;
mod history;
mod label;
mod resume;
mod sandbox;
pub mod sandbox_agent;
mod sandbox_bluez;
pub mod sandbox_emulator;
mod scan;
mod status;
mod sync;

use std::io::IsTerminal;

use clap::CommandFactory;
use tokio_util::sync::CancellationToken;

use crate::{
    args::{Cli, Command, GlobalArgs, SandboxCommand},
    config::Settings,
    exit::{CliError, Exit},
    output::Output,
};

/// What every command gets.
pub struct Context {
    /// Global flags.
    pub global: GlobalArgs,
    /// stdout.
    pub output: Output,
    /// Ctrl-C.
    pub cancel: CancellationToken,
}

impl Context {
    /// Resolves the configuration (lazily: `--help` and `demo` need none).
    pub fn settings(&self) -> Result<Settings, CliError> {
        Settings::resolve(
            self.global.config.clone(),
            self.global.profile.clone(),
            self.global.journal.clone(),
        )
    }

    /// Whether to draw progress bars (a terminal on stderr, no `--json`, no `-q`).
    pub fn bars(&self) -> bool {
        !self.global.json && !self.global.quiet && std::io::stderr().is_terminal()
    }
}

/// Runs the command; returns the process exit code.
pub async fn dispatch(cli: Cli, output: &Output, cancel: CancellationToken) -> Exit {
    let context = Context {
        global: cli.global,
        output: output.clone(),
        cancel,
    };
    let (name, outcome) = match cli.command {
        Command::Demo(args) => ("demo", demo::run(args, &context).await),
        Command::Sandbox(SandboxCommand::Up(args)) => {
            ("sandbox up", sandbox::up(args, &context).await)
        }
        Command::Sandbox(SandboxCommand::Agent(args)) => {
            ("sandbox agent", sandbox_agent::run(args, &context).await)
        }
        Command::Sandbox(SandboxCommand::Emulator(args)) => (
            "sandbox emulator",
            sandbox_emulator::run(args, &context).await,
        ),
        Command::Sandbox(SandboxCommand::Devices(args)) => {
            ("sandbox devices", sandbox::devices(args, &context).await)
        }
        Command::Sandbox(SandboxCommand::Fault(args)) => {
            ("sandbox fault", sandbox::fault(args, &context).await)
        }
        Command::Scan(args) => ("scan", scan::run(args, &context).await),
        Command::Commission(args) => ("commission", commission::run(args, &context).await),
        Command::Status(args) => ("status", status::run(args, &context).await),
        Command::Label(args) => ("label", label::run(args, &context)),
        Command::History(args) => ("history", history::run(args, &context).await),
        Command::Resume(args) => ("resume", resume::run(args, &context).await),
        Command::Login(args) => ("login", account::login(args, &context).await),
        Command::Logout => ("logout", account::logout(&context).await),
        Command::Whoami => ("whoami", account::whoami(&context).await),
        Command::Profile(command) => ("profile", account::profile(command, &context)),
        Command::Completions(args) => {
            let mut command = Cli::command();
            clap_complete::generate(
                args.shell,
                &mut command,
                "fieldlink",
                &mut std::io::stdout(),
            );
            ("completions", Ok(Exit::Success))
        }
    };
    match outcome {
        Ok(exit) => exit,
        Err(error) => {
            tracing::debug!(code = %error.code, "command failed");
            if context.global.json {
                output.error_result(name, &error);
            } else {
                eprintln!("error: {error}");
            }
            error.exit
        }
    }
}
