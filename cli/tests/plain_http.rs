//! Plain HTTP is refused unless a profile explicitly allows it, and then only to loopback: for
//! sign-in (the core's OIDC client) and for the provisioning API (the core's API client),
//! before any network or keyring access.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use serde_json::Value;

fn add(env: &common::Env, name: &str, api: &str, issuer: &str, allow: bool) {
    let mut command = env.command();
    command.args([
        "profile",
        "add",
        name,
        "--api-url",
        api,
        "--issuer-url",
        issuer,
    ]);
    if allow {
        command.arg("--allow-insecure-loopback");
    }
    command.assert().success();
}

fn error_of(env: &common::Env, args: &[&str]) -> (i32, Value) {
    let output = env.command().arg("--json").args(args).output().unwrap();
    let result = common::result(&output.stdout);
    (output.status.code().unwrap(), result["error"].clone())
}

#[test]
fn plain_http_needs_the_flag_and_loopback() {
    let env = common::Env::new();
    add(
        &env,
        "plain",
        "http://127.0.0.1:9",
        "http://127.0.0.1:9/issuer",
        false,
    );
    add(
        &env,
        "mixed",
        "http://127.0.0.1:9",
        "https://127.0.0.1:9/issuer",
        false,
    );
    add(
        &env,
        "remote",
        "http://192.0.2.1:80",
        "http://192.0.2.1/issuer",
        true,
    );
    add(
        &env,
        "local",
        "http://127.0.0.1:9",
        "http://127.0.0.1:9/issuer",
        true,
    );

    for profile in ["plain", "mixed"] {
        for command in [&["login"][..], &["status", "sandbox-device-0001"][..]] {
            let mut args = vec!["--profile", profile];
            args.extend_from_slice(command);
            let (code, error) = error_of(&env, &args);
            assert_eq!(code, 8, "{profile} {command:?}: {error}");
            assert_eq!(error["code"], "insecure_url", "{profile} {command:?}");
            assert!(
                error["message"]
                    .as_str()
                    .unwrap()
                    .contains("allow_insecure_loopback"),
                "the message says how: {error}"
            );
        }
    }
    // The flag does not open plain HTTP to anything but loopback.
    let (code, error) = error_of(&env, &["--profile", "remote", "login"]);
    assert_eq!(code, 8, "{error}");
    assert_eq!(error["code"], "insecure_url");
    assert!(error["message"].as_str().unwrap().contains("loopback"));
    // With the flag, loopback HTTP passes the policy: the failure is now the closed port (or
    // the missing keyring), not the URL.
    let (code, error) = error_of(&env, &["--profile", "local", "login"]);
    assert!(matches!(code, 5 | 6), "{code} {error}");
    assert_ne!(error["code"], "insecure_url");
}
