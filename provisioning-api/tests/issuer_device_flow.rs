//! RFC 8628 against the sandbox issuer over real HTTP: discovery, the verification page filled
//! in by a real HTTP client, pending / slow_down / denied / expired, and the API accepting the
//! resulting token.

mod issuer_common;

use issuer_common::{PASSWORD, Sandbox, claims};
use reqwest::StatusCode;

#[tokio::test]
async fn discovery_lists_every_endpoint() {
    let sandbox = Sandbox::start().await;
    let metadata = sandbox.discovery().await;
    assert_eq!(metadata["issuer"], sandbox.base.as_str());
    for (field, path) in [
        ("authorization_endpoint", "/oauth2/authorize"),
        ("token_endpoint", "/oauth2/token"),
        (
            "device_authorization_endpoint",
            "/oauth2/device_authorization",
        ),
        ("revocation_endpoint", "/oauth2/revoke"),
        ("jwks_uri", "/oauth2/jwks"),
    ] {
        assert_eq!(metadata[field], sandbox.url(path).as_str(), "{field}");
    }
    assert_eq!(metadata["code_challenge_methods_supported"][0], "S256");
    let jwks: serde_json::Value = sandbox
        .http
        .get(sandbox.url("/oauth2/jwks"))
        .send()
        .await
        .expect("jwks")
        .json()
        .await
        .expect("json");
    let keys = jwks["keys"].as_array().expect("keys");
    let access_kid = sandbox.issuer.current_key_id();
    let ed = keys
        .iter()
        .find(|k| k["kid"] == access_kid.as_str())
        .expect("the access-token key is published");
    assert_eq!(ed["crv"], "Ed25519");
    assert!(ed.get("d").is_none(), "no private part");
    let rsa_kid = sandbox
        .issuer
        .current_key_id_for(fieldlink_provisioning_api::issuer::SigningAlgorithm::Rs256);
    let rsa = keys
        .iter()
        .find(|k| k["kid"] == rsa_kid.as_str())
        .expect("the ID-token key is published");
    assert_eq!(rsa["kty"], "RSA");
    assert!(
        rsa.get("d").is_none() && rsa.get("p").is_none(),
        "no private part"
    );
}

#[tokio::test]
async fn device_flow_end_to_end_and_the_api_accepts_the_token() {
    let sandbox = Sandbox::start().await;
    let started = sandbox.start_device("openid profile").await;
    let device_code = started["device_code"].as_str().expect("device_code");
    assert_eq!(started["interval"], 1);
    assert_eq!(started["expires_in"], 120);
    assert_eq!(started["verification_uri"], sandbox.url("/device").as_str());

    let (status, body) = sandbox.poll(device_code).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "authorization_pending");

    let complete = started["verification_uri_complete"]
        .as_str()
        .expect("complete");
    let (status, page) = sandbox
        .verify_on_page(complete, "alice", PASSWORD, "approve")
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("Device approved"), "{page}");

    sandbox.advance(1);
    let (status, body) = sandbox.poll(device_code).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    let access = body["access_token"].as_str().expect("access token");
    let at = claims(access);
    assert_eq!(at["iss"], sandbox.base.as_str());
    assert_eq!(at["aud"], "fieldlink-api");
    assert_eq!(at["sub"], "alice");
    assert_eq!(at["tenant"], "acme");
    assert_eq!(at["roles"][0], "installer");
    let id = claims(body["id_token"].as_str().expect("openid → id token"));
    assert_eq!(id["aud"], "fieldlink-cli");
    assert_eq!(id["preferred_username"], "alice");

    // The API accepts it: an unknown device is a 404 for an authenticated installer, not 401.
    let (status, body) = sandbox.api_get("/v1/devices/sensor-0001", access).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["code"], "device_not_found");

    // The device code is single-use.
    sandbox.advance(1);
    let (status, body) = sandbox.poll(device_code).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");
}

#[tokio::test]
async fn polling_too_fast_is_slow_down_and_the_interval_grows() {
    let sandbox = Sandbox::start().await;
    let started = sandbox.start_device("").await;
    let device_code = started["device_code"].as_str().expect("device_code");
    assert_eq!(
        sandbox.poll(device_code).await.1["error"],
        "authorization_pending"
    );
    assert_eq!(sandbox.poll(device_code).await.1["error"], "slow_down");
    // Interval now 1 + 5 = 6 s.
    sandbox.advance(2);
    assert_eq!(sandbox.poll(device_code).await.1["error"], "slow_down");
    sandbox.advance(11);
    assert_eq!(
        sandbox.poll(device_code).await.1["error"],
        "authorization_pending"
    );
}

#[tokio::test]
async fn denied_requests_are_access_denied() {
    let sandbox = Sandbox::start().await;
    let started = sandbox.start_device("").await;
    let complete = started["verification_uri_complete"].as_str().expect("uri");
    let (status, page) = sandbox
        .verify_on_page(complete, "alice", PASSWORD, "deny")
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("Request denied"));
    let (status, body) = sandbox
        .poll(started["device_code"].as_str().expect("code"))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "access_denied");
}

#[tokio::test]
async fn expired_codes_are_expired_token_and_unknown_on_the_page() {
    let sandbox = Sandbox::start().await;
    let started = sandbox.start_device("").await;
    sandbox.advance(121);
    let (status, body) = sandbox
        .poll(started["device_code"].as_str().expect("code"))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "expired_token");
    let complete = started["verification_uri_complete"].as_str().expect("uri");
    let (status, page) = sandbox
        .verify_on_page(complete, "alice", PASSWORD, "approve")
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(page.contains("Unknown or expired code"), "{page}");
}

#[tokio::test]
async fn wrong_password_does_not_reach_consent_and_locks_out() {
    let sandbox = Sandbox::start().await;
    let started = sandbox.start_device("").await;
    let complete = started["verification_uri_complete"].as_str().expect("uri");
    let (status, page) = sandbox
        .verify_on_page(complete, "alice", "wrong", "approve")
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(page.contains("Wrong username or password"));
    assert!(!page.contains("wrong\""), "the password is not echoed");
    for _ in 0..5 {
        sandbox
            .verify_on_page(complete, "alice", "wrong", "approve")
            .await;
    }
    let (_, page) = sandbox
        .verify_on_page(complete, "alice", PASSWORD, "approve")
        .await;
    assert!(page.contains("Too many failed attempts"), "{page}");
    assert_eq!(
        sandbox
            .poll(started["device_code"].as_str().expect("code"))
            .await
            .1["error"],
        "authorization_pending"
    );
}

#[tokio::test]
async fn unknown_clients_are_invalid_client() {
    let sandbox = Sandbox::start().await;
    let (status, body) = sandbox
        .form("/oauth2/device_authorization", &[("client_id", "nobody")])
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "invalid_client");
    let (status, body) = sandbox
        .form(
            "/oauth2/token",
            &[("grant_type", "password"), ("client_id", "fieldlink-cli")],
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "unsupported_grant_type");
}

#[tokio::test]
async fn auto_approve_is_a_demo_switch() {
    let sandbox = Sandbox::start_with(|c| c.auto_approve_as = Some("bob".into()), |_| {}).await;
    let started = sandbox.start_device("").await;
    let (status, body) = sandbox
        .poll(started["device_code"].as_str().expect("code"))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        claims(body["access_token"].as_str().expect("at"))["tenant"],
        "globex"
    );
}
