//! No token ever reaches a log line: every event at TRACE level (the core, reqwest, hyper, the
//! API and the issuer in the same process) is captured across a sign-in, a refresh and a
//! sign-out, then searched for the tokens.

mod auth_support;

use std::{
    io::Write,
    sync::{Arc, Mutex},
};

use auth_support::{MOBILE_REDIRECT, Sandbox};
use fieldlink_core::{
    auth::{AuthClient, Profile, TOKEN_SERVICE, TokenSource},
    secrets::{MemoryStore, SecretStore},
};

async fn signed_in(
    sandbox: &Sandbox,
    store: Arc<MemoryStore>,
    profile: Profile,
) -> Arc<AuthClient> {
    let client = AuthClient::new(profile, store).expect("client");
    let pending = client
        .begin_authorization(MOBILE_REDIRECT)
        .await
        .expect("begin");
    let location = sandbox
        .browse_authorization(pending.authorize_url(), "alice")
        .await;
    client
        .complete_authorization(pending, &location)
        .await
        .expect("signed in");
    client
}

fn stored_refresh_token(store: &MemoryStore, profile: &Profile) -> String {
    let secret = store
        .get(TOKEN_SERVICE, &profile.token_account())
        .expect("stored");
    let value: serde_json::Value = serde_json::from_slice(secret.expose()).expect("json");
    value["refresh_token"].as_str().expect("refresh").to_owned()
}

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A process-wide subscriber (this file holds one test, so nothing else logs into it) captures
/// every line at TRACE level, dependencies included, across sign-in, refresh and sign-out.
#[tokio::test]
async fn no_token_appears_in_any_log_line() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::set_global_default(subscriber).expect("first subscriber");

    let sandbox = Sandbox::start(false, |c| c.access_token_ttl_s = 30).await;
    let store = Arc::new(MemoryStore::new());
    let profile = sandbox.profile("acme");
    let client = signed_in(&sandbox, store.clone(), profile.clone()).await;
    let refresh = stored_refresh_token(&store, &profile);
    let token = client.access_token().await.expect("refreshed");
    let new_refresh = stored_refresh_token(&store, &profile);
    tracing::debug!(?token, ?client, session = ?client.session().await, "state");
    client.logout().await.expect("logout");

    let logs = String::from_utf8(captured.0.lock().expect("lock").clone()).expect("utf8");
    assert!(logs.contains("signed in"), "logging is captured: {logs}");
    for secret in [token.expose(), refresh.as_str(), new_refresh.as_str()] {
        assert!(!logs.contains(secret), "a token leaked into the logs");
        // Not even its signature part.
        let tail = &secret[secret.len().saturating_sub(20)..];
        assert!(
            !logs.contains(tail),
            "a token fragment leaked into the logs"
        );
    }
}
