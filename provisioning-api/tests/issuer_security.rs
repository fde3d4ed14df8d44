//! Issuer-minted tokens at the API: forged variants (`alg: none`, HS256 keyed with the issuer's
//! public key, wrong `kid`), expired, wrong audience → 401; key rotation keeps valid tokens
//! valid; tenant A's installer cannot read or assign tenant B's device → 403.

mod issuer_common;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use issuer_common::{Sandbox, claims};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use serde_json::{Value, json};

const DEVICE_PATH: &str = "/v1/devices/sensor-0001";

async fn assert_401(sandbox: &Sandbox, token: &str, why: &str) {
    let (status, body) = sandbox.api_get(DEVICE_PATH, token).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{why}: {body}");
}

fn b64(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).expect("json"))
}

#[tokio::test]
async fn forged_tokens_are_401() {
    let sandbox = Sandbox::start().await;
    let good = sandbox.sign_in("alice").await.access_token;
    let (status, _) = sandbox.api_get(DEVICE_PATH, &good).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "the genuine token works");
    let kid = sandbox.issuer.current_key_id();
    let payload = claims(&good);

    // alg: none, with the issuer's kid and genuine claims.
    let none = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "kid": kid})),
        b64(&payload)
    );
    assert_401(&sandbox, &none, "alg none").await;

    // HS256 keyed with the issuer's published public key bytes (algorithm confusion).
    let jwks: Value = sandbox
        .http
        .get(sandbox.url("/oauth2/jwks"))
        .send()
        .await
        .expect("jwks")
        .json()
        .await
        .expect("json");
    let x = jwks["keys"][0]["x"].as_str().expect("x");
    let public = URL_SAFE_NO_PAD.decode(x).expect("b64");
    for secret in [public.as_slice(), x.as_bytes()] {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(kid.clone());
        let forged =
            jsonwebtoken::encode(&header, &payload, &EncodingKey::from_secret(secret)).expect("hs");
        assert_401(&sandbox, &forged, "HS256 with the public key").await;
    }

    // Genuine signature, but the header names a kid the issuer never published.
    let mut parts: Vec<String> = good.split('.').map(str::to_owned).collect();
    let mut header: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&parts[0]).expect("b64")).expect("json");
    header["kid"] = json!("sbx-not-a-key");
    parts[0] = b64(&header);
    assert_401(&sandbox, &parts.join("."), "wrong kid").await;

    // Claims changed after signing (tenant escalation).
    let mut parts: Vec<String> = good.split('.').map(str::to_owned).collect();
    let mut escalated = payload.clone();
    escalated["tenant"] = json!("globex");
    escalated["roles"] = json!(["admin"]);
    parts[1] = b64(&escalated);
    assert_401(&sandbox, &parts.join("."), "tampered claims").await;
}

#[tokio::test]
async fn expired_tokens_are_401() {
    let sandbox = Sandbox::start().await;
    // Sign in two hours ago (the issuer's clock); the 10-minute token is long expired for the
    // API, which runs on the system clock.
    sandbox.clock.advance_ms(-2 * 3600 * 1000);
    let old = sandbox.sign_in("alice").await.access_token;
    assert!(claims(&old)["exp"].as_i64().expect("exp") < chrono_now() - 3000);
    assert_401(&sandbox, &old, "expired").await;
}

fn chrono_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[tokio::test]
async fn tokens_for_another_audience_are_401() {
    let sandbox = Sandbox::start_with(
        |config| config.audience = "some-other-api".into(),
        |trusted| trusted.audiences = vec!["fieldlink-api".into()],
    )
    .await;
    let token = sandbox.sign_in("alice").await.access_token;
    assert_eq!(claims(&token)["aud"], "some-other-api");
    assert_401(&sandbox, &token, "wrong audience").await;
}

#[tokio::test]
async fn key_rotation_keeps_issued_tokens_valid() {
    let sandbox = Sandbox::start().await;
    let before = sandbox.sign_in("alice").await.access_token;
    let old_kid = sandbox.issuer.current_key_id();
    let new_kid = sandbox.issuer.rotate_keys();
    assert_ne!(old_kid, new_kid);
    let after = sandbox.sign_in("alice").await.access_token;
    let header = jsonwebtoken::decode_header(&after).expect("header");
    assert_eq!(header.kid.as_deref(), Some(new_kid.as_str()));
    for token in [&before, &after] {
        let (status, _) = sandbox.api_get(DEVICE_PATH, token).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "still accepted");
    }
    let jwks: Value = sandbox
        .http
        .get(sandbox.url("/oauth2/jwks"))
        .send()
        .await
        .expect("jwks")
        .json()
        .await
        .expect("json");
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .filter_map(|k| k["kid"].as_str())
        .collect();
    assert!(kids.contains(&old_kid.as_str()) && kids.contains(&new_kid.as_str()));
}

#[tokio::test]
async fn tenant_a_installer_cannot_touch_tenant_b_devices() {
    let sandbox = Sandbox::start().await;
    let gina = sandbox.sign_in("gina").await.access_token; // globex admin
    let (status, body) = sandbox
        .api_post("/v1/allowlist", &gina, json!(["globex-sensor-7"]))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let bob = sandbox.sign_in("bob").await.access_token; // globex installer
    let (status, body) = sandbox.api_get("/v1/devices/globex-sensor-7", &bob).await;
    assert_eq!(status, StatusCode::OK, "own tenant: {body}");

    let alice = sandbox.sign_in("alice").await.access_token; // acme installer
    for (status, body) in [
        sandbox.api_get("/v1/devices/globex-sensor-7", &alice).await,
        sandbox
            .api_get("/v1/devices/globex-sensor-7/registration", &alice)
            .await,
        sandbox
            .api_post(
                "/v1/assignments",
                &alice,
                json!({ "registration_id": "globex-sensor-7" }),
            )
            .await,
    ] {
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        assert_eq!(body["code"], "forbidden", "{body}");
    }
}
