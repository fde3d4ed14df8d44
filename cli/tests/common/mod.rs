//! Helpers for the CLI integration tests: an isolated environment (config, journal and state
//! in a temp dir) and a `fieldlink sandbox up` child process.

#![allow(dead_code)]

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;

/// The `fieldlink` binary under test.
pub fn binary() -> PathBuf {
    assert_cmd::cargo::cargo_bin("fieldlink")
}

/// A temp home: XDG dirs and the journal live inside it.
pub struct Env {
    pub dir: tempfile::TempDir,
}

impl Env {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn journal(&self) -> PathBuf {
        self.path().join("journal.sqlite3")
    }

    /// `fieldlink` with the environment isolated.
    pub fn command(&self) -> assert_cmd::Command {
        let mut command = assert_cmd::Command::new(binary());
        self.isolate_assert(&mut command);
        command
    }

    /// A plain `std::process::Command` with the environment isolated.
    pub fn std_command(&self) -> Command {
        let mut command = Command::new(binary());
        for (key, value) in self.vars() {
            command.env(key, value);
        }
        for key in REMOVED {
            command.env_remove(key);
        }
        command
    }

    fn isolate_assert(&self, command: &mut assert_cmd::Command) {
        for (key, value) in self.vars() {
            command.env(key, value);
        }
        for key in REMOVED {
            command.env_remove(key);
        }
    }

    fn vars(&self) -> Vec<(&'static str, PathBuf)> {
        vec![
            ("HOME", self.path().to_path_buf()),
            ("XDG_CONFIG_HOME", self.path().join("config")),
            ("XDG_DATA_HOME", self.path().join("data")),
            ("XDG_STATE_HOME", self.path().join("state")),
            ("FIELDLINK_JOURNAL", self.journal()),
        ]
    }
}

const REMOVED: [&str; 9] = [
    "FIELDLINK_CONFIG",
    "FIELDLINK_PROFILE",
    "FIELDLINK_SANDBOX",
    "FIELDLINK_API_URL",
    "FIELDLINK_CA_FILE",
    "FIELDLINK_WIFI_SSID",
    "FIELDLINK_WIFI_PASS",
    "FIELDLINK_JOBS",
    "FIELDLINK_LOG",
];

/// Every NDJSON line of `stdout` as JSON.
pub fn ndjson(stdout: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

/// The final `result` object.
pub fn result(stdout: &[u8]) -> Value {
    let lines = ndjson(stdout);
    let last = lines.last().expect("some output").clone();
    assert_eq!(
        last["type"], "result",
        "the last line is the result: {last}"
    );
    last
}

/// A running `fieldlink sandbox up`; stopped with SIGTERM (then SIGKILL) on drop.
pub struct Sandbox {
    pub child: Child,
    pub manifest: PathBuf,
}

impl Sandbox {
    pub fn start(env: &Env, devices: u32) -> Self {
        Self::start_with(env, devices, &[])
    }

    /// With more `sandbox up` arguments.
    pub fn start_with(env: &Env, devices: u32, extra: &[&str]) -> Self {
        let manifest = env.path().join("sandbox").join("manifest.json");
        let child = env
            .std_command()
            .args(["sandbox", "up", "--no-labels", "-n", &devices.to_string()])
            .args(extra)
            .arg("--manifest")
            .arg(&manifest)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("sandbox starts");
        let started = Instant::now();
        while !manifest.exists() {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the sandbox wrote no manifest"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Self { child, manifest }
    }

    pub fn manifest_json(&self) -> Value {
        let text = std::fs::read_to_string(&self.manifest).expect("manifest");
        serde_json::from_str(&text).expect("manifest JSON")
    }

    pub fn payloads(&self) -> Vec<String> {
        self.manifest_json()["devices"]
            .as_array()
            .expect("devices")
            .iter()
            .map(|d| d["payload"].as_str().expect("payload").to_owned())
            .collect()
    }

    /// Stops it with SIGTERM and waits; `true` if it exited by itself in time.
    pub fn stop(&mut self) -> bool {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(20) {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Replaces run-dependent values (timings, ids, ports, sizes that depend on randomness) so the
/// snapshot shows the schema and the stable values.
pub fn redact(value: &mut Value) {
    const VOLATILE: [&str; 20] = [
        "issuer",
        "frames_sent",
        "frames_received",
        "dps_instance",
        "assigned_hub",
        "total_ms",
        "elapsed_ms",
        "at_ms",
        "started_ms",
        "finished_ms",
        "p50_ms",
        "p95_ms",
        "devices_per_second",
        "attempt_id",
        "batch_id",
        "id_scope",
        "peripheral",
        "registrations_last_minute",
        "bytes_sent",
        "bytes_received",
    ];
    match value {
        Value::Object(map) => {
            for (key, field) in map.iter_mut() {
                if VOLATILE.contains(&key.as_str()) && !field.is_null() {
                    *field = Value::String(format!("[{key}]"));
                } else {
                    redact(field);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact),
        _ => {}
    }
}

/// The shape of a JSON value: objects keep their keys, leaves become their type name.
pub fn shape(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            Value::Object(map.iter().map(|(k, v)| (k.clone(), shape(v))).collect())
        }
        Value::Array(items) => Value::Array(items.first().map(shape).into_iter().collect()),
        Value::String(_) => Value::String("string".into()),
        Value::Number(_) => Value::String("number".into()),
        Value::Bool(_) => Value::String("bool".into()),
        Value::Null => Value::String("null".into()),
    }
}

/// Approves the device request on the issuer's verification page over HTTPS, as a person would
/// in a browser: the page, the sign-in form, then "approve".
pub fn approve_on_page(http: &reqwest::blocking::Client, issuer: &str, page: &str, user: &Value) {
    let form = http.get(page).send().unwrap().text().unwrap();
    let user_code = hidden_value(&form, "user_code").expect("the page prefills the code");
    let consent_page = http
        .post(format!("{issuer}/device"))
        .form(&[
            ("user_code", user_code.as_str()),
            ("username", user["username"].as_str().unwrap()),
            ("password", user["password"].as_str().unwrap()),
        ])
        .send()
        .unwrap()
        .text()
        .unwrap();
    let consent = hidden_value(&consent_page, "consent")
        .unwrap_or_else(|| panic!("the test user is accepted: {consent_page}"));
    let done = http
        .post(format!("{issuer}/device/decision"))
        .form(&[("consent", consent.as_str()), ("decision", "approve")])
        .send()
        .unwrap();
    assert!(done.status().is_success());
    assert!(done.text().unwrap().contains("approved"));
}

/// The `value` of the `<input name="{name}">` tag in `html` (the stack's own reader).
pub use fieldlink_cli::stack::sign_in::hidden_value;

/// Whether the OS keyring is usable for `what` (the sign-in tests store tokens in it). In CI it
/// must be: the suite runs under `keyctl session -`.
pub fn keyring_usable(what: &str) -> bool {
    match fieldlink_core::secrets::KeyringStore::open() {
        Ok(_) => true,
        Err(error) => {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI runs the CLI tests under `keyctl session -`: {error}"
            );
            eprintln!("\n*** SKIPPING {what}: no usable keyring ({error}) ***\n");
            false
        }
    }
}
