//! `fieldlink`, the headless installer shell. Everything lives in the `fieldlink_cli` library.

fn main() -> std::process::ExitCode {
    fieldlink_cli::run()
}
