//! Every command's `--help` works, `--version` and completions too.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use predicates::prelude::*;

const COMMANDS: [&[&str]; 21] = [
    &[],
    &["demo"],
    &["sandbox"],
    &["sandbox", "up"],
    &["sandbox", "agent"],
    &["sandbox", "emulator"],
    &["sandbox", "devices"],
    &["sandbox", "fault"],
    &["scan"],
    &["commission"],
    &["status"],
    &["label"],
    &["history"],
    &["resume"],
    &["login"],
    &["logout"],
    &["whoami"],
    &["profile"],
    &["profile", "add"],
    &["profile", "use"],
    &["completions"],
];

#[test]
fn every_command_has_help() {
    let env = common::Env::new();
    for command in COMMANDS {
        let assert = env
            .command()
            .args(command)
            .arg("--help")
            .assert()
            .success()
            .stdout(predicate::str::contains("Usage: fieldlink"));
        let text = String::from_utf8_lossy(&assert.get_output().stdout).to_string();
        assert!(text.len() > 80, "help for {command:?} is too short: {text}");
    }
}

#[test]
fn help_text_comes_from_doc_comments() {
    let env = common::Env::new();
    env.command()
        .args(["commission", "--help"])
        .assert()
        .success()
        .stdout(predicate::str::contains("--manual-code <CODE>"))
        .stdout(predicate::str::contains("--wifi-pass <PASSPHRASE>"))
        .stdout(predicate::str::contains("The 11-digit manual code"));
    env.command()
        .arg("--help")
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "Run the whole system in this process",
        ));
}

#[test]
fn version_and_completions() {
    let env = common::Env::new();
    env.command()
        .arg("--version")
        .assert()
        .success()
        .stdout(predicate::str::starts_with("fieldlink "));
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        env.command()
            .args(["completions", shell])
            .assert()
            .success()
            .stdout(predicate::str::contains("fieldlink"));
    }
}

#[test]
fn usage_errors_exit_2() {
    let env = common::Env::new();
    env.command().arg("no-such-command").assert().code(2);
    env.command().arg("commission").assert().code(2);
    env.command()
        .args(["demo", "--devices", "0"])
        .assert()
        .code(2);
}
