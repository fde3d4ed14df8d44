//! The core's OIDC client against the real sandbox issuer and API on loopback: device code over
//! HTTPS with a CA file, authorization code + PKCE through the loopback listener and through a
//! custom-scheme redirect, refresh (rotation, 401, reuse), logout with revocation, profiles,
//! the URL policy and the keyring-unavailable path. (No-token-in-logs is `auth_log_redaction`.)

mod auth_support;

use std::{sync::Arc, time::Duration};

use auth_support::{MOBILE_REDIRECT, Sandbox};
use fieldlink_core::{
    auth::{AuthClient, AuthError, Profile, TOKEN_SERVICE, TokenSource},
    secrets::{MemoryStore, SecretError, SecretStore},
};
use reqwest::StatusCode;

fn stored_refresh_token(store: &MemoryStore, profile: &Profile) -> String {
    let secret = store
        .get(TOKEN_SERVICE, &profile.token_account())
        .expect("stored");
    let value: serde_json::Value = serde_json::from_slice(secret.expose()).expect("json");
    value["refresh_token"].as_str().expect("refresh").to_owned()
}

#[tokio::test]
async fn device_code_over_https_with_a_ca_file() {
    let sandbox = Sandbox::start(true, |_| {}).await;
    let store = Arc::new(MemoryStore::new());
    let profile = sandbox.profile("acme");
    assert!(!profile.allow_insecure_loopback);
    let client = AuthClient::new(profile, store.clone()).expect("client");

    let sign_in = client.start_device_sign_in().await.expect("device code");
    let prompt = sign_in.prompt().clone();
    assert_eq!(prompt.verification_uri, sandbox.url("/device"));
    assert_eq!(prompt.user_code.len(), 9);
    assert!(prompt.qr.as_deref().is_some_and(|q| q.lines().count() > 10));
    let complete = prompt
        .verification_uri_complete
        .clone()
        .expect("complete uri");
    let approve = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        sandbox.approve_device(&complete, "alice", "approve").await;
    };
    let (session, ()) = tokio::join!(client.finish_device_sign_in(sign_in), approve);
    let session = session.expect("signed in");
    assert_eq!(session.identity.subject, "alice");
    assert_eq!(session.identity.tenant.as_deref(), Some("acme"));
    assert_eq!(session.identity.roles, vec!["installer".to_owned()]);
    assert_eq!(session.identity.name.as_deref(), Some("alice example"));
    assert!(session.can_refresh);
    assert_eq!(store.len(), 1, "tokens are in the secret store");

    let token = client.access_token().await.expect("token");
    assert_eq!(
        sandbox
            .api_get("/v1/devices/sensor-1", token.expose())
            .await,
        StatusCode::NOT_FOUND,
        "the API accepts the token"
    );
    // A new client for the same profile and store finds the session (no sign-in needed).
    let again = AuthClient::new(sandbox.profile("acme"), store.clone()).expect("client");
    assert_eq!(
        again
            .session()
            .await
            .expect("session")
            .map(|s| s.identity.subject),
        Some("alice".to_owned())
    );
}

#[tokio::test]
async fn a_denied_device_code_is_access_denied() {
    let sandbox = Sandbox::start(false, |_| {}).await;
    let store = Arc::new(MemoryStore::new());
    let client = AuthClient::new(sandbox.profile("acme"), store.clone()).expect("client");
    let sign_in = client.start_device_sign_in().await.expect("device code");
    let complete = sign_in
        .prompt()
        .verification_uri_complete
        .clone()
        .expect("uri");
    let deny = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        sandbox.approve_device(&complete, "alice", "deny").await;
    };
    let (result, ()) = tokio::join!(client.finish_device_sign_in(sign_in), deny);
    assert_eq!(result.map(|_| ()), Err(AuthError::AccessDenied));
    assert!(store.is_empty());
}

#[tokio::test]
async fn an_unapproved_device_code_expires_at_expires_in() {
    let sandbox = Sandbox::start(false, |c| c.device_code_ttl_s = 2).await;
    let client =
        AuthClient::new(sandbox.profile("acme"), Arc::new(MemoryStore::new())).expect("client");
    let started = std::time::Instant::now();
    let result = client.sign_in_with_device_code(|_| {}).await;
    assert_eq!(result.map(|_| ()), Err(AuthError::SignInExpired));
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
async fn browser_sign_in_through_the_loopback_listener() {
    let sandbox = Arc::new(Sandbox::start(true, |_| {}).await);
    let client =
        AuthClient::new(sandbox.profile("acme"), Arc::new(MemoryStore::new())).expect("client");
    let browser = sandbox.clone();
    let session = client
        .sign_in_with_browser(
            move |url| {
                let url = url.to_owned();
                let browser = browser.clone();
                tokio::spawn(async move {
                    assert!(url.contains("code_challenge_method=S256"), "{url}");
                    let location = browser.browse_authorization(&url, "bob").await;
                    assert!(location.starts_with("http://127.0.0.1:"), "{location}");
                    // The browser follows the redirect to the loopback listener.
                    let page = reqwest::get(&location).await.expect("loopback");
                    assert_eq!(page.status(), StatusCode::OK);
                });
                Ok(())
            },
            Duration::from_secs(30),
        )
        .await
        .expect("signed in");
    assert_eq!(session.identity.tenant.as_deref(), Some("globex"));
    let token = client.access_token().await.expect("token");
    assert_eq!(
        sandbox.api_get("/v1/devices/x-1", token.expose()).await,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn custom_scheme_redirect_completed_by_the_shell() {
    let sandbox = Sandbox::start(false, |_| {}).await;
    let client =
        AuthClient::new(sandbox.profile("acme"), Arc::new(MemoryStore::new())).expect("client");

    // A forged redirect (wrong state) is refused.
    let pending = client
        .begin_authorization(MOBILE_REDIRECT)
        .await
        .expect("begin");
    let location = sandbox
        .browse_authorization(pending.authorize_url(), "alice")
        .await;
    let forged = location.replace("state=", "state=x");
    assert_eq!(
        client
            .complete_authorization(pending, &forged)
            .await
            .map_err(|e| e.code()),
        Err("invalid_redirect")
    );

    let pending = client
        .begin_authorization(MOBILE_REDIRECT)
        .await
        .expect("begin");
    let location = sandbox
        .browse_authorization(pending.authorize_url(), "alice")
        .await;
    assert!(location.starts_with(MOBILE_REDIRECT), "{location}");
    let session = client
        .complete_authorization(pending, &location)
        .await
        .expect("completed");
    assert_eq!(session.identity.subject, "alice");

    // A redirect to another endpoint is refused.
    let pending = client
        .begin_authorization(MOBILE_REDIRECT)
        .await
        .expect("begin");
    assert_eq!(
        client
            .complete_authorization(pending, "com.evil:/oauth2redirect?code=x&state=y")
            .await
            .map_err(|e| e.code()),
        Err("invalid_redirect")
    );
}

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
    let username = if client.profile().name == "globex" {
        "bob"
    } else {
        "alice"
    };
    let location = sandbox
        .browse_authorization(pending.authorize_url(), username)
        .await;
    client
        .complete_authorization(pending, &location)
        .await
        .expect("signed in");
    client
}

#[tokio::test]
async fn refresh_before_expiry_on_401_and_reuse_ends_the_session() {
    // 30-second access tokens are always inside the one-minute refresh margin.
    let sandbox = Sandbox::start(false, |c| c.access_token_ttl_s = 30).await;
    let store = Arc::new(MemoryStore::new());
    let profile = sandbox.profile("acme");
    let client = signed_in(&sandbox, store.clone(), profile.clone()).await;
    let first_refresh = stored_refresh_token(&store, &profile);

    let token = client.access_token().await.expect("refreshed");
    let second_refresh = stored_refresh_token(&store, &profile);
    assert_ne!(first_refresh, second_refresh, "rotated and stored");
    assert_eq!(
        sandbox.api_get("/v1/devices/x-1", token.expose()).await,
        StatusCode::NOT_FOUND
    );
    // Right after a refresh, a 401 reuses the fresh token instead of refreshing again.
    let after_401 = client.on_unauthorized().await.expect("token");
    assert_eq!(after_401, token);
    assert_eq!(stored_refresh_token(&store, &profile), second_refresh);

    // Someone replays the rotated-out refresh token: the issuer revokes the family, and the
    // client's next refresh ends the session locally too.
    let (status, body) = sandbox.raw_refresh(&first_refresh).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");
    let error = client.access_token().await.expect_err("session revoked");
    assert_eq!(error.code(), "session_expired");
    assert!(error.needs_sign_in());
    assert!(store.is_empty(), "the dead session is forgotten");
    assert_eq!(
        client.access_token().await.map_err(|e| e.code()),
        Err("not_signed_in")
    );
}

#[tokio::test]
async fn logout_revokes_and_forgets_and_profiles_are_separate() {
    // Over HTTPS: the oauth2 crate sends revocation requests to https endpoints only.
    let sandbox = Sandbox::start(true, |_| {}).await;
    let store = Arc::new(MemoryStore::new());
    let acme = sandbox.profile("acme");
    let globex = sandbox.profile("globex");
    let acme_client = signed_in(&sandbox, store.clone(), acme.clone()).await;
    let globex_client = signed_in(&sandbox, store.clone(), globex.clone()).await;
    assert_eq!(store.len(), 2);
    let acme_refresh = stored_refresh_token(&store, &acme);

    let report = acme_client.logout().await.expect("logout");
    assert!(report.was_signed_in && report.revoked, "{report:?}");
    assert_eq!(store.len(), 1);
    assert_eq!(
        sandbox.raw_refresh(&acme_refresh).await.1["error"],
        "invalid_grant"
    );
    assert_eq!(
        acme_client.access_token().await.map_err(|e| e.code()),
        Err("not_signed_in")
    );
    let globex_session = globex_client
        .session()
        .await
        .expect("ok")
        .expect("still in");
    assert_eq!(globex_session.identity.tenant.as_deref(), Some("globex"));
    let again = acme_client.logout().await.expect("idempotent");
    assert!(!again.was_signed_in);
}

#[tokio::test]
async fn logout_forgets_locally_even_when_the_issuer_is_gone() {
    let store = Arc::new(MemoryStore::new());
    let profile;
    {
        let sandbox = Sandbox::start(false, |_| {}).await;
        profile = sandbox.profile("acme");
        signed_in(&sandbox, store.clone(), profile.clone()).await;
    }
    let client = AuthClient::new(profile, store.clone()).expect("client");
    let report = client.logout().await.expect("logout");
    assert!(report.was_signed_in && !report.revoked);
    assert!(report.revocation_note.is_some());
    assert!(store.is_empty());
}

#[tokio::test]
async fn plain_http_is_refused_without_the_flag_and_off_loopback() {
    let sandbox = Sandbox::start(false, |_| {}).await;
    let mut profile = sandbox.profile("acme");
    profile.allow_insecure_loopback = false;
    assert_eq!(
        AuthClient::new(profile, Arc::new(MemoryStore::new()))
            .map(|_| ())
            .map_err(|e| e.code()),
        Err("insecure_url")
    );
    let mut remote = Profile::new("x", "http://192.0.2.1", "http://192.0.2.1", "c");
    remote.allow_insecure_loopback = true;
    assert_eq!(
        AuthClient::new(remote, Arc::new(MemoryStore::new()))
            .map(|_| ())
            .map_err(|e| e.code()),
        Err("insecure_url")
    );
    // An HTTPS profile without the sandbox CA does not trust the sandbox.
    let tls = Sandbox::start(true, |_| {}).await;
    let mut untrusted = tls.profile("acme");
    untrusted.ca_file = None;
    let client = AuthClient::new(untrusted, Arc::new(MemoryStore::new())).expect("client");
    assert_eq!(
        client
            .start_device_sign_in()
            .await
            .map(|_| ())
            .map_err(|e| e.code()),
        Err("issuer_unavailable")
    );
}

#[tokio::test]
async fn no_usable_keyring_fails_the_sign_in_and_writes_nothing() {
    let sandbox = Sandbox::start(false, |_| {}).await;
    let store = Arc::new(MemoryStore::new());
    store.fail_with(Some(SecretError::KeyringUnavailable {
        backend: "linux keyutils".into(),
        reason: "no session keyring: run under `keyctl session -`".into(),
    }));
    let client = AuthClient::new(sandbox.profile("acme"), store.clone()).expect("client");
    let pending = client
        .begin_authorization(MOBILE_REDIRECT)
        .await
        .expect("begin");
    let location = sandbox
        .browse_authorization(pending.authorize_url(), "alice")
        .await;
    let error = client
        .complete_authorization(pending, &location)
        .await
        .expect_err("nowhere to keep the tokens");
    assert_eq!(error.code(), "keyring_unavailable");
    assert!(error.to_string().contains("keyctl session -"));
    store.fail_with(None);
    assert!(store.is_empty());
}

#[tokio::test]
async fn the_api_clients_token_seam_refreshes_on_401() {
    use fieldlink_core::api_client::AccessTokenSource;
    let sandbox = Sandbox::start(false, |_| {}).await;
    let store = Arc::new(MemoryStore::new());
    let profile = sandbox.profile("acme");
    let client = signed_in(&sandbox, store.clone(), profile.clone()).await;
    let refresh = stored_refresh_token(&store, &profile);

    // `refresh_if_current` ignores a 401 for a token that is no longer current.
    client
        .refresh_if_current("an-older-token")
        .await
        .expect("no-op");
    assert_eq!(stored_refresh_token(&store, &profile), refresh);

    // Through the API client's trait: after the "recent refresh" window a 401 refreshes.
    let source: Arc<dyn AccessTokenSource> = client.clone();
    let token = source.access_token().await.expect("token");
    tokio::time::sleep(Duration::from_millis(5_100)).await;
    let next = source.on_unauthorized().await.expect("refreshed");
    assert_ne!(next, token);
    assert_ne!(stored_refresh_token(&store, &profile), refresh);
    assert_eq!(
        sandbox.api_get("/v1/devices/x-1", next.expose()).await,
        StatusCode::NOT_FOUND
    );
    client
        .refresh_if_current(next.expose())
        .await
        .expect("current token refreshes");
    assert_ne!(
        source.access_token().await.expect("token"),
        next,
        "rotated again"
    );
}

/// The header of a JWT (unverified; for assertions).
fn jwt_header(jwt: &str) -> serde_json::Value {
    use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
    let header = jwt.split('.').next().expect("header");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).expect("b64")).expect("json")
}

#[tokio::test]
async fn the_core_verifies_the_issuers_rs256_id_tokens() {
    let sandbox = Sandbox::start(false, |_| {}).await;
    let store = Arc::new(MemoryStore::new());
    let profile = sandbox.profile("acme");
    let client = AuthClient::new(profile.clone(), store.clone()).expect("client");
    let sign_in = client.start_device_sign_in().await.expect("device code");
    let complete = sign_in
        .prompt()
        .verification_uri_complete
        .clone()
        .expect("complete uri");
    let approve = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        sandbox.approve_device(&complete, "alice", "approve").await;
    };
    let (session, ()) = tokio::join!(client.finish_device_sign_in(sign_in), approve);
    // The name comes from the ID token's claims only: the core verified it (openidconnect,
    // with the algorithms discovery advertises).
    let session = session.expect("signed in");
    assert_eq!(session.identity.name.as_deref(), Some("alice example"));

    // What the issuer signs ID tokens with: RS256, under the RSA key of its JWKS.
    let (status, body) = sandbox
        .raw_refresh(&stored_refresh_token(&store, &profile))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let header = jwt_header(body["id_token"].as_str().expect("an ID token"));
    assert_eq!(header["alg"], "RS256");
    let jwks: serde_json::Value = sandbox
        .browser
        .get(sandbox.url("/oauth2/jwks"))
        .send()
        .await
        .expect("jwks")
        .json()
        .await
        .expect("json");
    let key = jwks["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .find(|k| k["kid"] == header["kid"])
        .expect("the ID token's key is published");
    assert_eq!(
        (key["kty"].as_str(), key["alg"].as_str()),
        (Some("RSA"), Some("RS256"))
    );
}
