//! Issuer-minted tokens at the API: forged variants (`alg: none`, HS256 keyed with the issuer's
//! public key, wrong `kid`), expired, wrong audience → 401, for the EdDSA access tokens and for
//! RS256 tokens (the RSA-signed ID token, accepted by an API that trusts the client id as an
//! audience): wrong `kid`, tampered signature and claims, RS256→HS256 with the RSA public key in
//! every usual encoding; key rotation keeps valid tokens valid; tenant A's installer cannot read
//! or assign tenant B's device → 403.

mod issuer_common;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use fieldlink_provisioning_api::issuer::SigningAlgorithm;
use issuer_common::{CLIENT, Sandbox, claims};
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
    let ed = jwks["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .find(|k| k["kid"] == kid.as_str())
        .expect("the access-token key is published");
    let x = ed["x"].as_str().expect("x");
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

async fn jwks(sandbox: &Sandbox) -> Value {
    sandbox
        .http
        .get(sandbox.url("/oauth2/jwks"))
        .send()
        .await
        .expect("jwks")
        .json()
        .await
        .expect("json")
}

#[tokio::test]
async fn key_rotation_keeps_issued_tokens_valid() {
    // The API also trusts the client id as an audience, so the RS256 ID token is usable there.
    let sandbox = Sandbox::start_with(|_| {}, |t| t.audiences.push(CLIENT.into())).await;
    let before = sandbox.sign_in("alice").await;
    let old_kid = sandbox.issuer.current_key_id();
    let old_rsa = sandbox.issuer.current_key_id_for(SigningAlgorithm::Rs256);
    let rotated = sandbox.issuer.rotate_keys().expect("rotated");
    assert_ne!(old_kid, rotated.eddsa);
    assert_ne!(old_rsa, rotated.rs256);
    let after = sandbox.sign_in("alice").await;
    let header = jsonwebtoken::decode_header(&after.access_token).expect("header");
    assert_eq!(header.kid.as_deref(), Some(rotated.eddsa.as_str()));
    let id_header =
        jsonwebtoken::decode_header(after.id_token.as_deref().expect("id token")).expect("header");
    assert_eq!(id_header.kid.as_deref(), Some(rotated.rs256.as_str()));
    assert_eq!(id_header.alg, Algorithm::RS256);
    for token in [
        &before.access_token,
        &after.access_token,
        before.id_token.as_ref().expect("id token"),
        after.id_token.as_ref().expect("id token"),
    ] {
        let (status, _) = sandbox.api_get(DEVICE_PATH, token).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "still accepted");
    }
    let jwks = jwks(&sandbox).await;
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .filter_map(|k| k["kid"].as_str())
        .collect();
    for kid in [&old_kid, &old_rsa, &rotated.eddsa, &rotated.rs256] {
        assert!(kids.contains(&kid.as_str()), "{kid} in {kids:?}");
    }
}

#[tokio::test]
async fn id_tokens_are_rs256_and_both_keys_are_published() {
    let sandbox = Sandbox::start().await;
    let discovery = sandbox.discovery().await;
    assert_eq!(
        discovery["id_token_signing_alg_values_supported"],
        json!(["RS256", "EdDSA"])
    );
    let tokens = sandbox.sign_in("alice").await;
    let id_token = tokens.id_token.expect("openid was granted");
    let header = jsonwebtoken::decode_header(&id_token).expect("header");
    assert_eq!(header.alg, Algorithm::RS256);
    let rsa_kid = sandbox.issuer.current_key_id_for(SigningAlgorithm::Rs256);
    assert_eq!(header.kid.as_deref(), Some(rsa_kid.as_str()));
    assert_eq!(claims(&id_token)["aud"], CLIENT);
    let access = jsonwebtoken::decode_header(&tokens.access_token).expect("header");
    assert_eq!(access.alg, Algorithm::EdDSA);

    let jwks = jwks(&sandbox).await;
    let keys = jwks["keys"].as_array().expect("keys");
    assert_eq!(keys.len(), 2);
    let rsa = keys.iter().find(|k| k["kty"] == "RSA").expect("RSA key");
    let ed = keys
        .iter()
        .find(|k| k["kty"] == "OKP")
        .expect("Ed25519 key");
    assert_eq!(rsa["kid"], rsa_kid.as_str());
    assert_eq!(
        (rsa["alg"].as_str(), rsa["use"].as_str()),
        (Some("RS256"), Some("sig"))
    );
    assert_eq!(
        (ed["alg"].as_str(), ed["use"].as_str()),
        (Some("EdDSA"), Some("sig"))
    );
    assert_ne!(rsa["kid"], ed["kid"]);
    assert!(rsa["n"].is_string() && rsa["e"] == "AQAB" && rsa.get("d").is_none());

    // The ID token verifies with the published RSA key (n, e) and nothing else.
    let key = jsonwebtoken::DecodingKey::from_rsa_components(
        rsa["n"].as_str().expect("n"),
        rsa["e"].as_str().expect("e"),
    )
    .expect("rsa key");
    let mut validation = jsonwebtoken::Validation::new(Algorithm::RS256);
    validation.set_audience(&[CLIENT]);
    validation.set_issuer(&[sandbox.base.as_str()]);
    let verified = jsonwebtoken::decode::<Value>(&id_token, &key, &validation).expect("verifies");
    assert_eq!(verified.claims["sub"], "alice");
}

#[tokio::test]
async fn a_client_registered_for_eddsa_gets_eddsa_id_tokens() {
    let sandbox = Sandbox::start_with(
        |config| {
            config
                .id_token_signed_response_alg
                .insert(CLIENT.to_owned(), SigningAlgorithm::EdDsa);
        },
        |_| {},
    )
    .await;
    let id_token = sandbox.sign_in("alice").await.id_token.expect("id token");
    let header = jsonwebtoken::decode_header(&id_token).expect("header");
    assert_eq!(header.alg, Algorithm::EdDSA);
    assert_eq!(header.kid, Some(sandbox.issuer.current_key_id()));
}

/// The RSA public key as the byte strings an attacker would try as an HMAC secret.
fn rsa_public_key_encodings(n_b64: &str, e_b64: &str) -> Vec<Vec<u8>> {
    use rsa::{
        BigUint, RsaPublicKey,
        pkcs1::{EncodeRsaPublicKey, LineEnding},
        pkcs8::EncodePublicKey,
    };
    let n = URL_SAFE_NO_PAD.decode(n_b64).expect("n");
    let e = URL_SAFE_NO_PAD.decode(e_b64).expect("e");
    let public =
        RsaPublicKey::new(BigUint::from_bytes_be(&n), BigUint::from_bytes_be(&e)).expect("key");
    vec![
        public
            .to_public_key_pem(LineEnding::LF)
            .expect("spki pem")
            .into_bytes(),
        public
            .to_pkcs1_pem(LineEnding::LF)
            .expect("pkcs1 pem")
            .into_bytes(),
        public.to_pkcs1_der().expect("pkcs1 der").into_vec(),
        public.to_public_key_der().expect("spki der").into_vec(),
        n.clone(),
        n_b64.as_bytes().to_vec(),
    ]
}

#[tokio::test]
async fn forged_rs256_tokens_are_401() {
    // The API trusts the client id as an audience, so the genuine RS256 ID token is accepted
    // and every forgery differs from an accepted token in exactly one way.
    let sandbox = Sandbox::start_with(|_| {}, |t| t.audiences.push(CLIENT.into())).await;
    let good = sandbox.sign_in("alice").await.id_token.expect("id token");
    let header = jsonwebtoken::decode_header(&good).expect("header");
    assert_eq!(header.alg, Algorithm::RS256);
    let (status, body) = sandbox.api_get(DEVICE_PATH, &good).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "the genuine RS256 token works: {body}"
    );
    let rsa_kid = header.kid.clone().expect("kid");
    let payload = claims(&good);
    let parts: Vec<String> = good.split('.').map(str::to_owned).collect();
    let with_header = |edit: &dyn Fn(&mut Value)| {
        let mut head: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&parts[0]).expect("b64")).expect("json");
        edit(&mut head);
        format!("{}.{}.{}", b64(&head), parts[1], parts[2])
    };

    // Wrong kid: one the issuer never published, and the Ed25519 key's (RS256 is not an
    // algorithm of that key).
    assert_401(
        &sandbox,
        &with_header(&|h| h["kid"] = json!("sbx-rsa-not-a-key")),
        "unknown kid",
    )
    .await;
    let ed_kid = sandbox.issuer.current_key_id();
    assert_401(
        &sandbox,
        &with_header(&|h| h["kid"] = json!(ed_kid)),
        "the Ed25519 kid",
    )
    .await;
    // No kid at all.
    let no_kid = with_header(&|h| {
        h.as_object_mut().expect("object").remove("kid");
    });
    assert_401(&sandbox, &no_kid, "no kid").await;
    // Same key, another RSA algorithm (PS256): the key is bound to RS256.
    assert_401(
        &sandbox,
        &with_header(&|h| h["alg"] = json!("PS256")),
        "PS256 header",
    )
    .await;
    // alg none with the RSA kid.
    let none = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "kid": rsa_kid})),
        parts[1]
    );
    assert_401(&sandbox, &none, "alg none").await;

    // Tampered signature: one bit flipped, and truncated.
    let mut signature = URL_SAFE_NO_PAD.decode(&parts[2]).expect("b64");
    assert_eq!(signature.len(), 256, "RSA 2048 signature");
    signature[100] ^= 0x01;
    let flipped = format!(
        "{}.{}.{}",
        parts[0],
        parts[1],
        URL_SAFE_NO_PAD.encode(&signature)
    );
    assert_401(&sandbox, &flipped, "flipped signature bit").await;
    let truncated = format!(
        "{}.{}.{}",
        parts[0],
        parts[1],
        &parts[2][..parts[2].len() / 2]
    );
    assert_401(&sandbox, &truncated, "truncated signature").await;

    // Tampered claims under the genuine signature.
    let mut escalated = payload.clone();
    escalated["roles"] = json!(["admin"]);
    let forged = format!("{}.{}.{}", parts[0], b64(&escalated), parts[2]);
    assert_401(&sandbox, &forged, "tampered claims").await;

    // Algorithm confusion RS256 → HS256, keyed with the RSA public key as published (n, e)
    // in every encoding a library might feed an HMAC with.
    let jwks = jwks(&sandbox).await;
    let rsa = jwks["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .find(|k| k["kid"] == rsa_kid.as_str())
        .expect("the RSA key is published")
        .clone();
    let encodings =
        rsa_public_key_encodings(rsa["n"].as_str().expect("n"), rsa["e"].as_str().expect("e"));
    for secret in &encodings {
        for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
            let mut header = Header::new(alg);
            header.kid = Some(rsa_kid.clone());
            let forged = jsonwebtoken::encode(&header, &payload, &EncodingKey::from_secret(secret))
                .expect("hmac");
            assert_401(&sandbox, &forged, "HMAC keyed with the RSA public key").await;
        }
    }
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
