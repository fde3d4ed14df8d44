//! The `fieldlink` binary over real BLE without a radio: `fieldlink sandbox up --ble bluez`
//! starts a private dbus-daemon, BlueZoo (an emulated BlueZ) with one adapter per device plus
//! installer adapters, and one `fieldlink sandbox agent` process per device (bluer GATT server);
//! separate `fieldlink` processes then scan and commission through btleplug → D-Bus → BlueZoo →
//! bluer → device agent, with the sandbox's DPS emulator and HTTPS provisioning API behind it,
//! signed in with the device code as the manifest's test user.
//!
//! When `dbus-daemon` or `bluezoo` is missing the test fails in CI (`CI` set) and is skipped
//! loudly elsewhere.
#![cfg(target_os = "linux")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::{
    io::{BufRead, BufReader},
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use serde_json::Value;

const INSTALL_HINT: &str = "install the BLE bench tools: `apt-get install dbus-daemon systemd` \
     and `pip install bluezoo==1.0.2` (or run tests/ble-bench/install.sh)";

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(tool).is_file()))
}

/// Whether the bench can run; in CI a missing tool fails the test.
fn bench_available(test: &str) -> bool {
    let missing: Vec<_> = ["dbus-daemon", "bluezoo", "busctl"]
        .into_iter()
        .filter(|tool| !on_path(tool))
        .collect();
    if missing.is_empty() {
        return true;
    }
    let message = format!("BLE bench: {} missing; {INSTALL_HINT}", missing.join(", "));
    assert!(std::env::var_os("CI").is_none(), "{message}");
    eprintln!("\n!!!!! SKIPPED {test}: {message} !!!!!\n");
    false
}

/// A running `fieldlink sandbox up --ble bluez`; SIGTERM on drop (it stops its agents and
/// bench), SIGKILL if it does not exit.
struct BluezSandbox {
    child: Child,
    manifest: PathBuf,
}

impl BluezSandbox {
    fn start(env: &common::Env, devices: u32) -> Self {
        let manifest = env.path().join("sandbox").join("manifest.json");
        let log = std::fs::File::create(env.path().join("sandbox-up.log")).unwrap();
        let child = env
            .std_command()
            .args(["sandbox", "up", "--ble", "bluez", "--no-labels", "-k", "1"])
            .args(["-n", &devices.to_string()])
            .arg("--manifest")
            .arg(&manifest)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("sandbox starts");
        let mut sandbox = Self { child, manifest };
        let started = Instant::now();
        // The manifest is written once without, then with the agents' pids.
        loop {
            if let Ok(text) = std::fs::read_to_string(&sandbox.manifest)
                && let Ok(json) = serde_json::from_str::<Value>(&text)
                && json["bluez"]["devices"]
                    .as_array()
                    .is_some_and(|d| d.iter().all(|d| d["pid"].is_u64()))
            {
                return sandbox;
            }
            if let Ok(Some(status)) = sandbox.child.try_wait() {
                panic!("sandbox up exited ({status}): {}", env_log(env));
            }
            assert!(
                started.elapsed() < Duration::from_secs(90),
                "the BlueZ sandbox did not come up: {}",
                env_log(env)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn manifest_json(&self) -> Value {
        serde_json::from_str(&std::fs::read_to_string(&self.manifest).unwrap()).unwrap()
    }
}

fn env_log(env: &common::Env) -> String {
    std::fs::read_to_string(env.path().join("sandbox-up.log")).unwrap_or_default()
}

impl Drop for BluezSandbox {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(20) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `fieldlink` process whose NDJSON lines arrive on a channel.
struct Streaming {
    child: Child,
    lines: mpsc::Receiver<Value>,
}

impl Streaming {
    fn spawn(command: &mut Command) -> Self {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let (lines_in, lines) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Ok(value) = serde_json::from_str::<Value>(&line) {
                    let _ = lines_in.send(value);
                }
            }
        });
        Self { child, lines }
    }

    /// The next line within `timeout`.
    fn next(&self, timeout: Duration) -> Value {
        self.lines
            .recv_timeout(timeout)
            .unwrap_or_else(|error| panic!("no line from fieldlink: {error}"))
    }

    /// Lines until the `result` one; returns it and the exit code.
    fn finish(mut self, timeout: Duration) -> (i32, Value) {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self.next(left);
            if line["type"] == "result" {
                let status = self.child.wait().unwrap();
                return (status.code().unwrap_or(-1), line);
            }
        }
    }
}

impl Drop for Streaming {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A child killed when the test ends, passed or not.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Approves the device request on the issuer's verification page over HTTPS, trusting only the
/// sandbox's CA (the page, the sign-in form, then "approve": `common::approve_on_page`).
fn approve_on_page(ca: &str, issuer: &str, page: &str, user: &Value) {
    let pem = std::fs::read(ca).unwrap();
    let http = reqwest::blocking::Client::builder()
        .use_rustls_tls()
        .tls_built_in_native_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    common::approve_on_page(&http, issuer, page, user);
}

fn str_at<'a>(value: &'a Value, pointer: &str) -> &'a str {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no {pointer} in {value}"))
}

/// `fieldlink --json ARGS` on the sandbox's bus (what the manifest tells an installer process
/// to do: `DBUS_SYSTEM_BUS_ADDRESS` = `bluez.bus_address`).
fn fieldlink(env: &common::Env, bus: &str, args: &[&str]) -> Command {
    let mut command = env.std_command();
    command
        .env("DBUS_SYSTEM_BUS_ADDRESS", bus)
        .arg("--json")
        .args(args);
    command
}

fn run_json(mut command: Command) -> (i32, Value) {
    let output = command.stderr(Stdio::null()).output().unwrap();
    (
        output.status.code().unwrap_or(-1),
        common::result(&output.stdout),
    )
}

/// Kills `pid` with SIGKILL, as a crash or a power cut would.
fn kill_hard(pid: u64) {
    let status = Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -KILL {pid}");
}

/// The same payload with another PoP (the label's text form, re-encoded).
fn with_wrong_pop(payload: &str) -> String {
    let mut parsed = fieldlink_protocol::payload::OnboardingPayload::parse(payload).unwrap();
    parsed.pop = fieldlink_protocol::payload::PopSecret::from_bytes([0x5a; 11]);
    parsed.encode()
}

#[test]
fn fieldlink_scans_and_commissions_bluez_agents_and_reports_a_killed_one_as_link_lost() {
    let test = "fieldlink_scans_and_commissions_bluez_agents_and_reports_a_killed_one_as_link_lost";
    if !bench_available(test) || !common::keyring_usable("the BLE CLI test") {
        return;
    }
    let env = common::Env::new();
    let sandbox = BluezSandbox::start(&env, 2);
    let manifest = sandbox.manifest_json();
    let manifest_path = sandbox.manifest.to_str().unwrap().to_owned();
    let bluez = &manifest["bluez"];
    let bus = str_at(bluez, "/bus_address").to_owned();
    let installer = str_at(bluez, "/installer_adapter").to_owned();
    // BlueZoo connects a central to a device only once per agent run (see docs/cli.md): each
    // connection to the first device comes from another installer adapter.
    let spare = str_at(bluez, "/spare_installer_adapters/0").to_owned();
    let spare2 = str_at(bluez, "/spare_installer_adapters/1").to_owned();
    let devices: Vec<Value> = manifest["devices"].as_array().unwrap().clone();
    assert_eq!(devices.len(), 2);
    assert_eq!(bluez["devices"].as_array().unwrap().len(), 2);

    // 1. A separate `fieldlink scan` on the installer adapter sees both agents.
    let (code, scanned) = run_json(fieldlink(
        &env,
        &bus,
        &["scan", "--adapter", &installer, "--timeout", "4"],
    ));
    assert_eq!(code, 0, "{scanned}");
    let mut seen: Vec<u64> = scanned["devices"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|d| d["discriminator"].as_u64())
        .collect();
    seen.sort_unstable();
    let mut expected: Vec<u64> = devices
        .iter()
        .map(|d| d["discriminator"].as_u64().unwrap())
        .collect();
    expected.sort_unstable();
    assert_eq!(seen, expected, "{scanned}");
    for (device, agent) in devices.iter().zip(bluez["devices"].as_array().unwrap()) {
        let row = scanned["devices"]
            .as_array()
            .unwrap()
            .iter()
            .find(|row| row["discriminator"] == device["discriminator"])
            .unwrap();
        assert_eq!(row["peripheral"], agent["peripheral"], "{row}");
    }

    // 2. Sign in: a profile from the manifest, `login` approved on the issuer's page.
    let profile = format!("ble-{}", std::process::id());
    let mut add = env.std_command();
    add.args([
        "--json",
        "profile",
        "add",
        &profile,
        "--from-sandbox",
        &manifest_path,
    ]);
    let (code, added) = run_json(add);
    assert_eq!(code, 0, "{added}");
    let login =
        Streaming::spawn(
            env.std_command()
                .args(["--json", "--profile", &profile, "login"]),
        );
    let prompt = login.next(Duration::from_secs(60));
    assert_eq!(prompt["type"], "sign_in_prompt", "{prompt}");
    approve_on_page(
        str_at(&manifest, "/ca_cert"),
        str_at(&manifest, "/issuer/url"),
        str_at(&prompt, "/verification_uri_complete"),
        &manifest["users"][0],
    );
    let (code, signed_in) = login.finish(Duration::from_secs(60));
    assert_eq!(code, 0, "{signed_in}");

    let commission = |payload: &str, adapter: &str| {
        fieldlink(
            &env,
            &bus,
            &[
                "--profile",
                &profile,
                "commission",
                payload,
                "--adapter",
                adapter,
                "--timeout",
                "90",
            ],
        )
    };
    let first = &devices[0];
    let second = &devices[1];
    let first_id = str_at(first, "/registration_id").to_owned();

    // 3. The wrong PoP over real BLE: the typed error with its attempt count.
    let started = Instant::now();
    let (code, refused) = run_json(commission(
        &with_wrong_pop(str_at(first, "/payload")),
        &installer,
    ));
    eprintln!("BLE CLI wrong PoP after {:?}", started.elapsed());
    assert_eq!(code, 1, "{refused}");
    assert_eq!(refused["device"]["error"]["code"], "wrong_pop", "{refused}");
    let message = str_at(&refused, "/device/error/message");
    assert!(message.contains("attempt 1 of 5"), "{message}");

    // 4. Two agents advertise; the label's discriminator picks the second one.
    let started = Instant::now();
    let (code, done) = run_json(commission(str_at(second, "/payload"), &installer));
    eprintln!("BLE CLI commission after {:?}", started.elapsed());
    assert_eq!(code, 0, "{done}");
    assert_eq!(done["device"]["registration_id"], second["registration_id"]);
    assert_eq!(done["device"]["status"], "succeeded");
    assert_eq!(done["device"]["confirmation"], "confirmed", "{done}");
    assert_eq!(done["device"]["round_trips"], 2);
    assert_eq!(done["device"]["mtu"], 512);

    // 5. The first agent is killed while it registers with DPS: `link_lost` with the step.
    let agent_pid = manifest["bluez"]["devices"][0]["pid"].as_u64().unwrap();
    let running = Streaming::spawn(&mut commission(str_at(first, "/payload"), &spare));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let line = running.next(deadline.saturating_duration_since(Instant::now()));
        assert_ne!(line["type"], "result", "finished before the kill: {line}");
        if line["type"] == "progress" && line["step"] == "registering" {
            break;
        }
    }
    kill_hard(agent_pid);
    let killed = Instant::now();
    let (code, lost) = running.finish(Duration::from_secs(60));
    let waited = killed.elapsed();
    eprintln!("BLE CLI kill while registering: {lost} after {waited:?}");
    assert_eq!(code, 1, "{lost}");
    let error = &lost["device"]["error"];
    assert_eq!(error["code"], "link_lost", "{lost}");
    assert_eq!(error["retryable"], true, "{lost}");
    assert_eq!(error["details"]["step"], "registering", "{lost}");
    assert!(str_at(error, "/message").contains("registering"), "{error}");
    // The liveness probe's deadline (3 s) plus the workflow's reconnect attempts.
    assert!(waited < Duration::from_secs(30), "{waited:?}");

    // 6. The agent restarts from its state directory; the next commissioning works (from an
    // adapter that never saw the dead agent's GATT objects: BlueZoo keeps them).
    let mut restarted = KillOnDrop(
        env.std_command()
            .args([
                "sandbox",
                "agent",
                "--manifest",
                &manifest_path,
                "--device",
                &first_id,
                // Exits when this test process goes away, even if it is killed.
                "--tether",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let stdout = restarted.0.stdout.take().unwrap();
    let (lines_in, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let _ = lines_in.send(line);
        }
    });
    let mut boot_state = None;
    loop {
        let line = lines.recv_timeout(Duration::from_secs(30)).unwrap();
        if let Some(state) = line.strip_prefix("state:") {
            boot_state.get_or_insert_with(|| state.trim().to_owned());
        }
        if line.starts_with("ble:") {
            break;
        }
    }
    // It kept what the killed agent persisted: the staged ticket (it resumes registering), not
    // a factory-fresh commissionable device.
    let boot_state = boot_state.expect("the agent prints its state at start");
    assert_ne!(boot_state, "commissionable", "the state directory was lost");
    let started = Instant::now();
    let (code, again) = run_json(commission(str_at(first, "/payload"), &spare2));
    eprintln!("BLE CLI commission after restart: {:?}", started.elapsed());
    drop(restarted);
    assert_eq!(code, 0, "{again}");
    assert_eq!(again["device"]["registration_id"], first_id.as_str());
    assert_eq!(again["device"]["confirmation"], "confirmed", "{again}");
}
