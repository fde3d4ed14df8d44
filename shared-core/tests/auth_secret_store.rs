//! The OS keyring store for real: Linux keyutils under a session keyring (CI runs the test suite
//! under `keyctl session -`; with `CI` set, a missing session keyring fails this test instead of
//! skipping it), plus the refusal paths.

use fieldlink_core::secrets::{
    KeyringBackend, KeyringStore, MemoryStore, Secret, SecretError, SecretStore,
};

fn keyutils_or_skip() -> Option<KeyringStore> {
    match KeyringStore::with_backend(KeyringBackend::LinuxKeyutils) {
        Ok(store) => Some(store),
        Err(error) => {
            assert_eq!(error.code(), "keyring_unavailable", "{error}");
            if cfg!(target_os = "linux") {
                assert!(
                    error.to_string().contains("keyctl session -"),
                    "the message says how to fix it: {error}"
                );
            }
            assert!(
                std::env::var_os("CI").is_none() || !cfg!(target_os = "linux"),
                "CI must run the tests under `keyctl session -` so the keyring is tested for \
                 real: {error}"
            );
            eprintln!("skipping the real keyutils test: {error}");
            None
        }
    }
}

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{:x}",
        std::process::id(),
        rand::random::<u64>()
    )
}

#[test]
fn keyutils_round_trip_for_real() {
    let Some(store) = keyutils_or_skip() else {
        return;
    };
    assert_eq!(store.backend(), KeyringBackend::LinuxKeyutils);
    assert_eq!(store.describe(), "linux keyutils");
    let service = unique("fieldlink-test");
    let token = Secret::from_text("eyJhbGciOiJFZERTQSJ9.payload.signature");
    store.set(&service, "acme", &token).expect("set");

    // A separate store object reads it back (the keyring crate's mock would not).
    let other = KeyringStore::with_backend(KeyringBackend::LinuxKeyutils).expect("second handle");
    assert_eq!(other.get(&service, "acme"), Ok(token.clone()));
    assert_eq!(
        other.get(&service, "globex").map_err(|e| e.code()),
        Err("not_found")
    );

    // Replace, binary values, delete.
    let binary = Secret::new(vec![0u8, 1, 2, 255, 254]);
    store.set(&service, "acme", &binary).expect("replace");
    assert_eq!(other.get(&service, "acme"), Ok(binary));
    store.delete(&service, "acme").expect("delete");
    // keyutils invalidation is asynchronous in the kernel: give it a moment.
    let mut gone = false;
    for _ in 0..50 {
        if matches!(
            other.get(&service, "acme"),
            Err(SecretError::NotFound { .. })
        ) {
            gone = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(gone, "deleted entry is gone");
    assert!(format!("{store:?}").contains("LinuxKeyutils"));
}

#[test]
fn auto_open_finds_a_store_or_says_why() {
    match KeyringStore::open() {
        Ok(store) => {
            let service = unique("fieldlink-auto");
            store
                .set(&service, "a", &Secret::from_text("v"))
                .expect("a usable store stores");
            assert_eq!(store.get(&service, "a"), Ok(Secret::from_text("v")));
            store.delete(&service, "a").expect("delete");
        }
        Err(error) => {
            assert_eq!(error.code(), "keyring_unavailable");
            assert!(
                std::env::var_os("CI").is_none(),
                "CI has a keyring: {error}"
            );
        }
    }
}

#[test]
fn empty_secrets_are_refused_not_stored() {
    let Some(store) = keyutils_or_skip() else {
        return;
    };
    let error = store
        .set(&unique("fieldlink-empty"), "a", &Secret::new(Vec::new()))
        .expect_err("keyutils cannot store empty values");
    assert_eq!(error.code(), "platform");
}

#[test]
fn a_backend_missing_on_this_platform_is_an_error_never_a_fallback() {
    let missing = if cfg!(target_os = "linux") {
        KeyringBackend::PlatformNative
    } else {
        KeyringBackend::LinuxKeyutils
    };
    let error = KeyringStore::with_backend(missing).expect_err("unavailable");
    assert_eq!(error.code(), "keyring_unavailable");
}

#[test]
fn errors_and_debug_never_carry_the_secret() {
    let store = MemoryStore::new();
    let secret = Secret::from_text("pop-AAAABBBBCCCC");
    store.set("svc", "acct", &secret).expect("set");
    let dumped = format!("{store:?} {secret:?} {:?}", store.get("svc", "acct"));
    assert!(!dumped.contains("pop-AAAABBBBCCCC"), "{dumped}");
    let error = store.get("svc", "nope").expect_err("missing");
    assert!(!format!("{error} {error:?}").contains("pop-AAAABBBBCCCC"));
}
