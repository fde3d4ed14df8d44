//! `fieldlink sandbox emulator`: the DPS emulator alone, used over real HTTPS with the CA file it
//! writes, then stopped with SIGTERM.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::{
    io::{BufRead as _, BufReader},
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use fieldlink_dps_emulator::{API_VERSION, EnrollmentGroup};
use fieldlink_protocol::sas::{derive_group_device_key, device_sas_token, service_sas_token};
use serde_json::{Value, json};

/// The emulator child; killed on drop if a test assertion fails first.
struct Emulator(Child);

impl Drop for Emulator {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn https_client(ca_file: &str) -> reqwest::blocking::Client {
    let pem = std::fs::read(ca_file).unwrap();
    reqwest::blocking::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

#[test]
fn the_emulator_alone_serves_https_with_its_ca_and_stops_cleanly_on_sigterm() {
    let env = common::Env::new();
    let dir = env.path().join("emulator");
    let mut child = Emulator(
        env.std_command()
            .args(["--json", "sandbox", "emulator", "-k", "3", "--dir"])
            .arg(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("the emulator starts"),
    );
    let stdout = child.0.stdout.take().unwrap();
    let (lines_tx, lines) = mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let ready: Value = loop {
        let line = lines
            .recv_timeout(Duration::from_secs(60))
            .expect("an emulator_ready event within 60 s");
        seen.push(line.clone());
        let event: Value = serde_json::from_str(&line).unwrap();
        if event["type"] == "emulator_ready" {
            break event;
        }
    };

    let global = ready["global_endpoint"].as_str().unwrap().to_owned();
    assert!(global.starts_with("https://"), "{ready}");
    let ca_file = ready["ca_cert"].as_str().unwrap().to_owned();
    assert!(
        std::fs::read_to_string(&ca_file)
            .unwrap()
            .contains("BEGIN CERTIFICATE")
    );
    let instances = ready["instances"].as_array().unwrap().clone();
    assert_eq!(instances.len(), 3, "{ready}");
    assert_eq!(instances[1]["name"], "dps-2");
    assert_eq!(instances[1]["hub"], "hub-2.azure-devices.net");

    // The key is in the private policy file only.
    let policy_path = ready["policy_file"].as_str().unwrap().to_owned();
    let policy: Value =
        serde_json::from_str(&std::fs::read_to_string(&policy_path).unwrap()).unwrap();
    let key = policy["primary_key"].as_str().unwrap().to_owned();
    let policy_name = policy["policy_name"].as_str().unwrap().to_owned();
    assert_eq!(policy_name, ready["policy_name"]);
    assert!(key.len() >= 40, "a 32-byte base64 key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode =
            |path: &std::path::Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(policy_path.as_ref()), 0o600);
        assert_eq!(mode(ca_file.as_ref()), 0o600);
        assert_eq!(mode(&dir), 0o700);
    }

    let client = https_client(&ca_file);
    // The service API of dps-2: an enrollment group PUT with the policy's SAS, then read back.
    let instance = &instances[1];
    let resource = instance["service_resource_uri"].as_str().unwrap();
    let sas = service_sas_token(
        resource,
        &policy_name,
        &key,
        chrono::Utc::now().timestamp() + 600,
    )
    .unwrap();
    let group_key = "c2FuZGJveC1ncm91cC1rZXktc2FuZGJveC1ncm91cC0x";
    let group = EnrollmentGroup::symmetric_key("emulator-test-group", group_key, group_key);
    let url = format!(
        "{}/enrollmentGroups/emulator-test-group?api-version={API_VERSION}",
        instance["service_endpoint"].as_str().unwrap()
    );
    let put = client
        .put(&url)
        .header("Authorization", &sas)
        .json(&group)
        .send()
        .unwrap();
    assert_eq!(put.status().as_u16(), 200, "{}", put.text().unwrap());
    let got = client
        .get(&url)
        .header("Authorization", &sas)
        .send()
        .unwrap();
    assert_eq!(got.status().as_u16(), 200);
    let got: Value = got.json().unwrap();
    assert_eq!(got["enrollmentGroupId"], "emulator-test-group");
    let unauthenticated = client.get(&url).send().unwrap();
    assert_eq!(unauthenticated.status().as_u16(), 401);

    // The device API on the global endpoint, routed by the printed ID scope.
    let id_scope = instance["id_scope"].as_str().unwrap();
    let device_key = derive_group_device_key(group_key, "emulator-device-1").unwrap();
    let device_sas = device_sas_token(
        id_scope,
        "emulator-device-1",
        &device_key,
        chrono::Utc::now().timestamp() + 600,
    )
    .unwrap();
    let register = client
        .put(format!(
            "{global}/{id_scope}/registrations/emulator-device-1/register?api-version={API_VERSION}"
        ))
        .header("Authorization", &device_sas)
        .json(&json!({"registrationId": "emulator-device-1"}))
        .send()
        .unwrap();
    assert_eq!(
        register.status().as_u16(),
        202,
        "{}",
        register.text().unwrap()
    );

    // SIGTERM: a clean stop, exit 0, a final result, and the key file gone.
    let status = Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let started = Instant::now();
    let exit = loop {
        if let Some(exit) = child.0.try_wait().unwrap() {
            break exit;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the emulator did not stop within 20 s of SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(exit.code(), Some(0));
    reader.join().unwrap();
    seen.extend(lines.try_iter());
    let result: Value = serde_json::from_str(seen.last().unwrap()).unwrap();
    assert_eq!(result["type"], "result", "{seen:?}");
    assert_eq!(result["command"], "sandbox emulator");
    assert_eq!(result["ok"], true);
    assert_eq!(result["instances"].as_array().unwrap().len(), 3);
    for line in &seen {
        assert!(
            !line.contains(&key),
            "the policy key reached stdout: {line}"
        );
    }
    assert!(!std::path::Path::new(&policy_path).exists());
}

#[test]
fn a_busy_port_is_a_config_error() {
    let env = common::Env::new();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let output = env
        .command()
        .args(["--json", "sandbox", "emulator", "--bind", &address, "--dir"])
        .arg(env.path().join("emulator"))
        .timeout(Duration::from_secs(60))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(8));
    let result = common::result(&output.stdout);
    assert_eq!(result["error"]["code"], "emulator_start_failed");
}
