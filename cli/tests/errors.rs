//! Bad payloads, bad manual codes, bad files and missing configuration give the documented
//! error codes and exit codes, before anything is touched.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use predicates::prelude::*;
use serde_json::Value;

fn json_error(env: &common::Env, args: &[&str]) -> (i32, Value) {
    let output = env.command().arg("--json").args(args).output().unwrap();
    let result = common::result(&output.stdout);
    let code = output.status.code().unwrap();
    assert_eq!(result["exit_code"], code, "{result}");
    assert_eq!(result["ok"], false);
    (code, result["error"].clone())
}

#[test]
fn a_damaged_payload_is_exit_4_naming_the_field() {
    let env = common::Env::new();
    let (code, error) = json_error(
        &env,
        &[
            "commission",
            "FL1/SENSOR-1/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        ],
    );
    assert_eq!(code, 4);
    assert_eq!(error["code"], "invalid_payload");
    assert!(error["details"]["field"].is_string(), "{error}");
    let (code, error) = json_error(&env, &["commission", "HELLO"]);
    assert_eq!(code, 4);
    assert_eq!(error["details"]["field"], "prefix");
    // Human mode: the message on stderr, nothing on stdout.
    env.command()
        .args(["commission", "HELLO"])
        .assert()
        .code(4)
        .stdout(predicate::str::is_empty())
        .stderr(predicate::str::contains("invalid onboarding code: prefix"));
}

#[test]
fn error_result_snapshot() {
    let env = common::Env::new();
    let output = env
        .command()
        .args(["--json", "commission", "HELLO"])
        .output()
        .unwrap();
    insta::assert_json_snapshot!("invalid_payload_result", common::result(&output.stdout));
}

#[test]
fn a_bad_manual_code_is_exit_4() {
    let env = common::Env::new();
    for code_text in ["1234", "12345678901", "1234567890a"] {
        let (code, error) = json_error(&env, &["commission", "--manual-code", code_text]);
        assert_eq!(code, 4, "{code_text}");
        assert_eq!(error["code"], "invalid_payload");
        assert_eq!(error["details"]["field"], "manual_code");
    }
}

#[test]
fn a_bad_batch_file_names_its_line() {
    let env = common::Env::new();
    let file = env.path().join("payloads.txt");
    std::fs::write(&file, "# site\nFL1/NOT-A-PAYLOAD\n").unwrap();
    let (code, error) = json_error(&env, &["commission", "--from-file", file.to_str().unwrap()]);
    assert_eq!(code, 4);
    assert_eq!(error["details"]["line"], 2);
    let (code, error) = json_error(&env, &["commission", "--from-file", "/nonexistent/file"]);
    assert_eq!(code, 4);
    assert_eq!(error["code"], "payload_file_unreadable");
}

#[test]
fn a_missing_api_or_sandbox_is_a_configuration_or_transport_error() {
    let env = common::Env::new();
    let payload = generated_payload(&env);
    let (code, error) = json_error(&env, &["commission", &payload]);
    assert_eq!(code, 8);
    assert_eq!(error["code"], "config_error");
    let (code, error) = json_error(
        &env,
        &[
            "commission",
            &payload,
            "--sandbox",
            "/nonexistent/manifest.json",
        ],
    );
    assert_eq!(code, 7);
    assert_eq!(error["code"], "sandbox_unavailable");
}

#[test]
fn sign_in_errors_are_typed() {
    let env = common::Env::new();
    // No API/issuer in the profile: a configuration error, before any network or keyring.
    let (code, error) = json_error(&env, &["login"]);
    assert_eq!(code, 8);
    assert_eq!(error["code"], "profile_incomplete");
    env.command().arg("logout").assert().success();
    let output = env.command().args(["--json", "whoami"]).output().unwrap();
    let result = common::result(&output.stdout);
    assert_eq!(result["signed_in"], Value::Null);
    assert!(result["installer"].as_str().unwrap().starts_with("local:"));
    // A configured issuer that cannot be used here: no keyring in this process (exit 5), or
    // the issuer unreachable (exit 6). Never a panic, never plaintext tokens.
    env.command()
        .args([
            "profile",
            "add",
            "dead",
            "--api-url",
            "https://127.0.0.1:9/",
            "--issuer-url",
            "https://127.0.0.1:9/issuer",
        ])
        .assert()
        .success();
    let (code, error) = json_error(&env, &["--profile", "dead", "login"]);
    assert!(matches!(code, 5 | 6), "{code} {error}");
    let known = [
        "keyring_unavailable",
        "issuer_unavailable",
        "discovery_failed",
    ];
    assert!(known.contains(&error["code"].as_str().unwrap()), "{error}");
}

#[test]
fn profiles_are_saved_and_selected() {
    let env = common::Env::new();
    env.command()
        .args([
            "profile",
            "add",
            "acme",
            "--api-url",
            "https://api.acme.example",
            "--issuer-url",
            "https://login.acme.example",
        ])
        .assert()
        .success();
    env.command()
        .args(["profile", "add", "lab", "--sandbox", "/tmp/lab.json"])
        .assert()
        .success();
    env.command()
        .args(["profile", "list"])
        .assert()
        .success()
        .stdout(predicate::str::contains("* acme"))
        .stdout(predicate::str::contains("lab"));
    env.command()
        .args(["profile", "use", "lab"])
        .assert()
        .success();
    let output = env.command().args(["--json", "whoami"]).output().unwrap();
    assert_eq!(common::result(&output.stdout)["profile"], "lab");
    // Environment beats the file.
    let output = env
        .command()
        .env("FIELDLINK_PROFILE", "acme")
        .args(["--json", "whoami"])
        .output()
        .unwrap();
    assert_eq!(common::result(&output.stdout)["profile"], "acme");
    // A configured API: the provisioning-API client needs the profile's sign-in (exit 5
    // without a usable keyring here), then Bluetooth (exit 7 without an adapter).
    let payload = generated_payload(&env);
    let (code, error) = json_error(&env, &["--profile", "acme", "commission", &payload]);
    assert!(matches!(code, 5 | 7), "{code} {error}");
    let known = ["keyring_unavailable", "bluetooth_unavailable"];
    assert!(known.contains(&error["code"].as_str().unwrap()), "{error}");
    env.command()
        .args(["profile", "use", "nope"])
        .assert()
        .code(8);
}

#[test]
fn labels_render_as_svg_and_png() {
    let env = common::Env::new();
    let out = env.path().join("labels");
    let output = env
        .command()
        .args([
            "--json",
            "label",
            "--generate",
            "2",
            "--format",
            "png",
            "--out",
        ])
        .arg(&out)
        .output()
        .unwrap();
    assert!(output.status.success());
    let result = common::result(&output.stdout);
    let labels = result["labels"].as_array().unwrap();
    assert_eq!(labels.len(), 2);
    for label in labels {
        assert!(label["qr_version"].as_i64().unwrap() <= 6);
        let png = std::fs::read(label["file"].as_str().unwrap()).unwrap();
        assert_eq!(&png[1..4], b"PNG");
    }
    let payload = labels[0]["payload"].as_str().unwrap();
    env.command()
        .args(["label", "--format", "svg", "--out"])
        .arg(&out)
        .arg(payload)
        .assert()
        .success();
    let registration_id = labels[0]["registration_id"].as_str().unwrap();
    let svg = std::fs::read_to_string(out.join(format!("{registration_id}.svg"))).unwrap();
    assert!(svg.contains("<svg"));
    env.command()
        .args(["label", payload])
        .assert()
        .success()
        .stdout(predicate::str::contains(payload));
}

fn generated_payload(env: &common::Env) -> String {
    let output = env
        .command()
        .args(["--json", "label", "--generate", "1", "--format", "terminal"])
        .output()
        .unwrap();
    common::result(&output.stdout)["labels"][0]["payload"]
        .as_str()
        .unwrap()
        .to_owned()
}
