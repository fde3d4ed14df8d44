//! The file store survives `kill -9` at arbitrary points: a child process saves in a tight loop
//! and is killed with SIGKILL at random moments; every time, the committed state loads intact and
//! never goes backwards.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::process::{Command, Stdio};
use std::time::Duration;

use fieldlink_device_agent::secret::{SecretBytes, SecretString};
use fieldlink_device_agent::store::{
    DeviceIdentity, DpsCredential, FileStore, PersistedState, StateStore,
};
use rand::Rng;

const DIR_ENV: &str = "FIELDLINK_STORE_TORTURE_DIR";

fn initial_state() -> PersistedState {
    PersistedState::new(
        DeviceIdentity {
            registration_id: "kill-9-device".into(),
            pop: SecretBytes::new(vec![3; 11]),
            discriminator: 0x123,
            product_code: 1,
            dps_credential: DpsCredential::SymmetricKey {
                key: SecretString::new("a2V5"),
            },
        },
        Vec::new(),
    )
}

/// The child side: saves increasing generations forever, until killed. Only runs when the
/// parent sets the directory (it is `#[ignore]`d otherwise).
#[test]
#[ignore = "child process of killed_writer_never_corrupts_the_store"]
fn torture_writer_child() {
    let dir = std::env::var(DIR_ENV).expect("run by the parent test only");
    let store = FileStore::open(dir).unwrap();
    let mut state = store.load().unwrap().unwrap();
    loop {
        state.pop_attempts.lockouts += 1;
        // Vary the size so truncation points differ between generations.
        state.trust_anchors = (0..(state.pop_attempts.lockouts % 7))
            .map(|i| fieldlink_device_agent::store::TrustAnchorRecord {
                key_id: format!("key-{i}"),
                public_key: "ab".repeat(32),
            })
            .collect();
        store.save(&state).unwrap();
    }
}

#[test]
fn killed_writer_never_corrupts_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::open(dir.path()).unwrap();
    store.save(&initial_state()).unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut last_generation = 0;
    let mut rng = rand::thread_rng();
    for _ in 0..12 {
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "torture_writer_child",
                "--ignored",
                "--nocapture",
            ])
            .env(DIR_ENV, dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(rng.gen_range(20..120)));
        // `Child::kill` is SIGKILL on Unix.
        child.kill().unwrap();
        child.wait().unwrap();
        let loaded = FileStore::open(dir.path())
            .unwrap()
            .load()
            .expect("committed state must load after kill -9")
            .expect("state present");
        assert_eq!(loaded.identity.registration_id, "kill-9-device");
        assert!(loaded.pop_attempts.lockouts >= last_generation);
        last_generation = loaded.pop_attempts.lockouts;
    }
    assert!(last_generation > 0, "the child never managed to save");
}
