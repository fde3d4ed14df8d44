//! The `provisioning-api` binary and the secrets key: no key, no start (with the documented
//! message); `gen-secrets-key` writes a private key file; a readable-by-others key file is
//! refused; a start seals the ticket key in the database, and a restart with another key
//! stops with `secrets_key_mismatch`.

use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::{Command, Output, Stdio},
    sync::mpsc,
    time::Duration,
};

const BINARY: &str = env!("CARGO_BIN_EXE_provisioning-api");

fn api(args: &[&str]) -> Command {
    let mut command = Command::new(BINARY);
    command
        .args(args)
        .env_remove("FIELDLINK_API_SECRETS_KEY")
        .env_remove("FIELDLINK_API_PREVIOUS_SECRETS_KEY")
        .env_remove("FIELDLINK_API_CONFIG")
        .env("RUST_LOG", "info");
    command
}

fn run(args: &[&str]) -> Output {
    api(args).output().expect("run provisioning-api")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn write_config(dir: &Path, key_file: Option<&Path>) -> String {
    let mut config = serde_json::json!({
        "listen": "127.0.0.1:0",
        "storage": { "sqlite": { "path": dir.join("api.db") } },
    });
    if let Some(key_file) = key_file {
        config["secrets_key_file"] = serde_json::json!(key_file);
    }
    let path = dir.join("api.json");
    std::fs::write(&path, config.to_string()).expect("write config");
    path.display().to_string()
}

#[test]
fn refuses_to_start_without_a_secrets_key() {
    let dir = tempfile::tempdir().expect("dir");
    let config = write_config(dir.path(), None);
    let output = run(&["--config", &config]);
    assert!(!output.status.success(), "started without a key");
    let message = stderr(&output);
    assert!(
        message.contains("provisioning-api: secrets_key_required: no secrets key is configured"),
        "{message}"
    );
    assert!(
        message.contains("provisioning-api gen-secrets-key"),
        "{message}"
    );
    assert!(message.contains("FIELDLINK_API_SECRETS_KEY"), "{message}");
    assert!(
        !dir.path().join("api.db").exists(),
        "the database is not even created without a key"
    );
}

#[test]
fn gen_secrets_key_writes_a_private_file_and_never_overwrites() {
    let dir = tempfile::tempdir().expect("dir");
    let key_file = dir.path().join("secrets.key");
    let key_arg = key_file.display().to_string();
    let output = run(&["gen-secrets-key", &key_arg]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = std::fs::read_to_string(&key_file).expect("key file");
    assert_eq!(text.trim().len(), 44, "base64 of 32 bytes");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_file)
            .expect("meta")
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
    }
    let again = run(&["gen-secrets-key", &key_arg]);
    assert!(!again.status.success(), "overwrote a key file");
    assert_eq!(std::fs::read_to_string(&key_file).expect("kept"), text);
}

#[cfg(unix)]
#[test]
fn refuses_a_key_file_others_can_read() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("dir");
    let key_file = dir.path().join("secrets.key");
    let output = run(&["gen-secrets-key", &key_file.display().to_string()]);
    assert!(output.status.success(), "{}", stderr(&output));
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let config = write_config(dir.path(), Some(&key_file));
    let refused = run(&["--config", &config]);
    assert!(!refused.status.success());
    let message = stderr(&refused);
    assert!(message.contains("secrets_key_file_insecure"), "{message}");
    assert!(message.contains("chmod 600"), "{message}");
}

/// Starts the server, waits for its "listening" line, then stops it.
fn start_and_stop(config: &str) {
    let mut child = api(&["--config", config])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let stdout = child.stdout.take().expect("stdout");
    let (lines, received) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut seen = Vec::new();
    let listening = loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match received.recv_timeout(left) {
            Ok(line) if line.contains("provisioning API listening") => break true,
            Ok(line) => seen.push(line),
            Err(_) => break false,
        }
    };
    child.kill().expect("stop the server");
    let output = child.wait_with_output().expect("wait");
    assert!(
        listening,
        "the server did not start: {seen:?} {}",
        stderr(&output)
    );
}

#[test]
fn a_started_server_seals_its_ticket_key_and_a_restart_with_another_key_stops() {
    let dir = tempfile::tempdir().expect("dir");
    let key_file = dir.path().join("secrets.key");
    let output = run(&["gen-secrets-key", &key_file.display().to_string()]);
    assert!(output.status.success(), "{}", stderr(&output));
    let config = write_config(dir.path(), Some(&key_file));
    start_and_stop(&config);

    let conn = rusqlite::Connection::open(dir.path().join("api.db")).expect("open db");
    let stored: String = conn
        .query_row("SELECT private_pkcs8_pem FROM ticket_keys", [], |r| {
            r.get(0)
        })
        .expect("one ticket key");
    assert!(stored.starts_with("sealed:v1:"), "{stored}");
    assert!(!stored.contains("PRIVATE KEY"), "{stored}");
    drop(conn);

    // Same key: starts again.
    start_and_stop(&config);

    // Another key: refused, with the typed code, and the stored key is untouched.
    let other = dir.path().join("other.key");
    let output = run(&["gen-secrets-key", &other.display().to_string()]);
    assert!(output.status.success(), "{}", stderr(&output));
    let config = write_config(dir.path(), Some(&other));
    let refused = run(&["--config", &config]);
    assert!(!refused.status.success(), "started with the wrong key");
    let message = stderr(&refused);
    assert!(
        message.contains("provisioning-api: secrets_key_mismatch:"),
        "{message}"
    );
    let conn = rusqlite::Connection::open(dir.path().join("api.db")).expect("open db");
    let after: String = conn
        .query_row("SELECT private_pkcs8_pem FROM ticket_keys", [], |r| {
            r.get(0)
        })
        .expect("one ticket key");
    assert_eq!(after, stored);
}
