//! Profiles and sign-in: the local user on the simulator, and the core's OIDC flows (device code,
//! browser with PKCE and a loopback redirect) through the commands against the real sandbox
//! issuer.

use std::sync::Arc;

use serde_json::{Value, json};
use tauri::ipc::{Channel, InvokeResponseBody};

use super::{TestApp, capture, issuer::SandboxIssuer};
use crate::{
    commands::session,
    dto::settings::{Profile, SessionInfo, Settings, SignInEvent, SignInMethod, SiteKind},
    error::CommandError,
};

fn profile(name: &str, site: SiteKind, issuer: Option<&str>) -> Profile {
    Profile {
        name: name.into(),
        organisation: format!("{name} org"),
        site,
        api_url: None,
        issuer: issuer.map(Into::into),
        client_id: None,
        ca_file: None,
        sandbox_manifest: None,
    }
}

async fn with_profiles(test: &TestApp, profiles: Vec<Profile>) {
    test.state()
        .save_settings(Settings {
            profiles,
            ..Settings::default()
        })
        .await
        .unwrap();
}

/// A sign-in channel that forwards its events.
fn events() -> (
    Channel<SignInEvent>,
    tokio::sync::mpsc::UnboundedReceiver<Value>,
) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let channel = Channel::new(move |body| {
        if let InvokeResponseBody::Json(text) = body {
            let _ = tx.send(serde_json::from_str(&text).unwrap());
        }
        Ok(())
    });
    (channel, rx)
}

async fn sign_in(
    test: &TestApp,
    profile: &str,
    method: SignInMethod,
    channel: Channel<SignInEvent>,
) -> Result<SessionInfo, CommandError> {
    session::sign_in(
        test.state(),
        profile.into(),
        method,
        "sign-in".into(),
        channel,
    )
    .await
}

#[tokio::test]
async fn the_simulator_signs_in_as_the_local_user() {
    let test = TestApp::new();
    with_profiles(
        &test,
        vec![
            profile("sim", SiteKind::Simulator, None),
            profile("bare", SiteKind::Bluetooth, None),
            profile(
                "half",
                SiteKind::Bluetooth,
                Some("https://login.acme.example"),
            ),
        ],
    )
    .await;
    let session = sign_in(&test, "sim", SignInMethod::Browser, capture::<Value, _>().0)
        .await
        .unwrap();
    assert_eq!(session.method, SignInMethod::Local);
    assert!(session.identity.starts_with("local:"));
    assert_eq!(
        test.state().settings().active_profile.as_deref(),
        Some("sim")
    );
    assert_eq!(
        test.invoke("get_session", json!({})).unwrap()["profile"],
        "sim"
    );

    let bare = sign_in(
        &test,
        "bare",
        SignInMethod::DeviceCode,
        capture::<Value, _>().0,
    )
    .await
    .unwrap_err();
    assert_eq!(bare.code, "sign_in_unavailable");
    let half = sign_in(
        &test,
        "half",
        SignInMethod::DeviceCode,
        capture::<Value, _>().0,
    )
    .await
    .unwrap_err();
    assert_eq!(half.code, "invalid_setting", "an issuer needs an API URL");

    test.invoke("sign_out", json!({})).unwrap();
    assert_eq!(test.invoke("get_session", json!({})).unwrap(), Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_code_sign_in_approved_over_http_then_restored_and_signed_out() {
    let issuer = SandboxIssuer::start().await;
    let test = TestApp::new();
    with_profiles(&test, vec![issuer.profile("acme")]).await;
    let (channel, mut rx) = events();
    let approve = async {
        let event = rx.recv().await.unwrap();
        assert_eq!(event["kind"], "device_code");
        assert!(event["user_code"].as_str().is_some_and(|c| !c.is_empty()));
        issuer
            .decide_device(
                event["verification_uri_complete"].as_str().unwrap(),
                "approve",
            )
            .await;
    };
    let (session, ()) = tokio::join!(
        sign_in(&test, "acme", SignInMethod::DeviceCode, channel),
        approve
    );
    let session = session.unwrap();
    assert_eq!(session.identity, "Alice Installer");
    assert_eq!(session.organisation, "Acme Water");
    assert_eq!(session.method, SignInMethod::DeviceCode);
    assert!(session.expires_at_ms.is_some());

    // A new run of the app finds the session in the secret store.
    test.state().set_session(None);
    let restored = session::get_session(test.state()).await.unwrap().unwrap();
    assert_eq!(restored.method, SignInMethod::Restored);
    assert_eq!(restored.identity, "Alice Installer");

    session::sign_out(test.state()).await.unwrap();
    assert_eq!(session::get_session(test.state()).await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_sign_in_with_pkce_through_the_loopback_redirect() {
    let issuer = Arc::new(SandboxIssuer::start().await);
    let test = TestApp::new();
    with_profiles(&test, vec![issuer.profile("acme")]).await;
    let browser = Arc::clone(&issuer);
    let runtime = tokio::runtime::Handle::current();
    test.state().set_browser(Arc::new(move |url| {
        let browser = Arc::clone(&browser);
        runtime.spawn(async move { browser.browse(&url).await });
        Ok(())
    }));
    let (channel, mut rx) = events();
    let session = sign_in(&test, "acme", SignInMethod::Browser, channel)
        .await
        .unwrap();
    assert_eq!(session.method, SignInMethod::Browser);
    assert_eq!(session.identity, "Alice Installer");
    let opened = rx.recv().await.unwrap();
    assert_eq!(opened["kind"], "browser_opened");
    let url = opened["url"].as_str().unwrap();
    assert!(url.contains("code_challenge_method=S256"), "PKCE: {url}");
    assert!(
        url.contains("redirect_uri=http%3A%2F%2F127.0.0.1%3A"),
        "loopback: {url}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_denied_or_cancelled_sign_in_says_so() {
    let issuer = SandboxIssuer::start().await;
    let test = TestApp::new();
    with_profiles(&test, vec![issuer.profile("acme")]).await;
    let (channel, mut rx) = events();
    let deny = async {
        let event = rx.recv().await.unwrap();
        issuer
            .decide_device(event["verification_uri_complete"].as_str().unwrap(), "deny")
            .await;
    };
    let (denied, ()) = tokio::join!(
        sign_in(&test, "acme", SignInMethod::DeviceCode, channel),
        deny
    );
    assert_eq!(denied.unwrap_err().code, "access_denied");

    let (channel, mut rx) = events();
    let cancel = async {
        rx.recv().await.unwrap();
        test.invoke("cancel_operation", json!({"operationId": "sign-in"}))
            .unwrap();
    };
    let (cancelled, ()) = tokio::join!(
        sign_in(&test, "acme", SignInMethod::DeviceCode, channel),
        cancel
    );
    assert_eq!(cancelled.unwrap_err().code, "cancelled");
    assert_eq!(test.state().session(), None);
}
