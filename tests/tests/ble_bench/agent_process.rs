//! A whole device agent as its own process on the bench: the `device-agent` command line
//! (`fieldlink_device_agent::gateway`, run through `fieldlink-ble-peripheral device-agent …`)
//! with its identity, trust anchors, DPS CA and state directory in files, serving over BlueZ on a
//! bench adapter. Killed (`SIGKILL`) on drop.

use std::io::BufRead as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use fieldlink_device_agent::store::{FileStore, PersistedState, StateStore as _};
use fieldlink_tests::world::World;

/// The files one agent runs from, in a directory removed on drop.
pub struct AgentFiles {
    dir: PathBuf,
}

impl Drop for AgentFiles {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl AgentFiles {
    /// Writes the identity and trust anchors of world device `index` (taken from its store), and
    /// the DPS emulator's CA. The in-process agent of that device is stopped: the process
    /// replaces it.
    pub async fn of_world_device(world: &World, index: usize) -> AgentFiles {
        let device = &world.devices[index];
        device.agent.shutdown().await;
        let state = device
            .store
            .load()
            .expect("the world store loads")
            .expect("the world device saved its factory state");
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "fieldlink-agent-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("agent files dir");
        let write = |name: &str, text: String| {
            std::fs::write(dir.join(name), text).expect("write agent file");
        };
        write(
            "identity.json",
            serde_json::to_string_pretty(&state.identity).expect("identity JSON"),
        );
        write(
            "trust-anchors.json",
            serde_json::to_string_pretty(&state.trust_anchors).expect("anchors JSON"),
        );
        write(
            "dps-ca.pem",
            world
                .emulator
                .ca_pem()
                .expect("the emulator has TLS")
                .to_owned(),
        );
        AgentFiles { dir }
    }

    /// The agent's state directory.
    pub fn state_dir(&self) -> PathBuf {
        self.dir.join("state")
    }

    /// What the agent persisted (read as a restarted agent would).
    pub fn persisted(&self) -> PersistedState {
        FileStore::open(self.state_dir())
            .expect("state dir opens")
            .load()
            .expect("the state file is intact")
            .expect("the agent saved a state")
    }

    fn arg(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }
}

/// A running agent process; killed on drop.
pub struct AgentProcess {
    child: Child,
    /// The adapter address centrals see.
    pub address: String,
}

impl AgentProcess {
    /// Starts `device-agent run --ble bluez --adapter <adapter> --network online` from `files`
    /// and waits until it advertises. Logs go to `<log_dir>/agent.log`.
    pub async fn start(
        log_dir: &Path,
        files: &AgentFiles,
        adapter: &str,
        fail_safe: Duration,
    ) -> AgentProcess {
        let log_path = log_dir.join("agent.log");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .expect("agent log");
        let mut child = Command::new(env!("CARGO_BIN_EXE_fieldlink-ble-peripheral"))
            .args(["device-agent", "run"])
            .args(["--identity", &files.arg("identity.json")])
            .args(["--trust-anchors", &files.arg("trust-anchors.json")])
            .args(["--state-dir", &files.state_dir().display().to_string()])
            .args(["--dps-ca", &files.arg("dps-ca.pem")])
            .args(["--fail-safe-secs", &fail_safe.as_secs().to_string()])
            .args([
                "--ble",
                "bluez",
                "--adapter",
                adapter,
                "--network",
                "online",
            ])
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("start the device agent process");
        let stdout = child.stdout.take().expect("piped stdout");
        // Read every line (so the agent never blocks on a full pipe); hand over the `ble:` one.
        let (ready_tx, ready_rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if line.starts_with("ble:") {
                    let _ = ready_tx.send(line);
                }
            }
        });
        let ready =
            tokio::task::spawn_blocking(move || ready_rx.recv_timeout(Duration::from_secs(20)))
                .await
                .expect("reader task");
        match ready {
            Ok(line) => {
                let address = line
                    .rsplit_once('(')
                    .and_then(|(_, rest)| rest.strip_suffix(')'))
                    .expect("`ble:` line names the address")
                    .to_owned();
                AgentProcess { child, address }
            }
            Err(error) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "the agent did not advertise ({error}):\n{}",
                    std::fs::read_to_string(&log_path).unwrap_or_default()
                );
            }
        }
    }

    /// `SIGKILL`, as a crash or a power cut would.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
