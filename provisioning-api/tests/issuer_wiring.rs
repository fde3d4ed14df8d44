//! The API's configuration file wires both kinds of trust: the sandbox issuer
//! (`sandbox_issuer`: served on the API's own address, its tokens accepted) and an external
//! Entra-ID-style issuer (`issuers`: issuer URL → fixed tenant, accepted audience, role claim
//! values mapped to fieldlink roles).

mod issuer_common;

use fieldlink_provisioning_api::{ProvisioningApi, settings::FileConfig, test_tokens::TokenMinter};
use issuer_common::{PASSWORD, base_config, query_param};
use reqwest::{StatusCode, redirect::Policy};
use serde_json::json;
use sha2::{Digest, Sha256};

const ENTRA: &str = "https://login.microsoftonline.com/5f0c0000-0000-0000-0000-000000000001/v2.0";
const ENTRA_AUDIENCE: &str = "api://fieldlink-api";

#[tokio::test]
async fn the_config_file_serves_the_sandbox_issuer_and_trusts_an_external_one() {
    let dir = tempfile::tempdir().expect("tmp");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));

    let issuer_file = dir.path().join("issuer.json");
    std::fs::write(
        &issuer_file,
        serde_json::to_string(&base_config(&base)).expect("json"),
    )
    .expect("write");
    let entra = TokenMinter::from_seed([4; 32], ENTRA, ENTRA_AUDIENCE);
    let jwks_file = dir.path().join("entra-jwks.json");
    std::fs::write(&jwks_file, entra.jwks_json()).expect("write");
    let api_file = dir.path().join("api.json");
    std::fs::write(
        &api_file,
        json!({
            "storage": { "sqlite": { "path": dir.path().join("api.db") } },
            "sandbox_issuer": issuer_file,
            "issuers": [{
                "issuer": ENTRA,
                "audiences": [ENTRA_AUDIENCE],
                "jwks_file": jwks_file,
                "tenant": "acme",
                "role_values": { "Fieldlink.Installer": "installer", "Fieldlink.Admin": "admin" }
            }]
        })
        .to_string(),
    )
    .expect("write");

    // What the binary does with the file.
    let file = FileConfig::load(&api_file).expect("config");
    let issuers = file.trusted_issuers().await.expect("issuers");
    let storage = file.open_storage().await.expect("storage");
    let issuer_config = fieldlink_provisioning_api::issuer::IssuerConfig::from_file(
        file.sandbox_issuer.as_deref().expect("configured"),
    )
    .expect("issuer config");
    let api = ProvisioningApi::builder(file.api_config(issuers), storage)
        .issuer(fieldlink_provisioning_api::issuer::Issuer::new(issuer_config).expect("issuer"))
        .build()
        .await
        .expect("api");
    let running = api.serve(listener).await.expect("serve");
    let http = reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .expect("client");

    // The issuer is served on the API's address…
    let discovery: serde_json::Value = http
        .get(format!("{base}/.well-known/openid-configuration"))
        .send()
        .await
        .expect("discovery")
        .json()
        .await
        .expect("json");
    assert_eq!(discovery["issuer"], base.as_str());

    // …and its tokens are accepted (authorization code + PKCE through the sign-in page).
    let verifier = "wiring-test-verifier-0123456789-0123456789-abcdef";
    let challenge = base64::Engine::encode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        Sha256::digest(verifier.as_bytes()),
    );
    let redirect = "http://127.0.0.1:40000/callback";
    let page = http
        .get(format!("{base}/oauth2/authorize"))
        .query(&[
            ("response_type", "code"),
            ("client_id", "fieldlink-cli"),
            ("redirect_uri", redirect),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
        ])
        .send()
        .await
        .expect("authorize")
        .text()
        .await
        .expect("html");
    let request = issuer_common::hidden_value(&page, "request").expect("request");
    let response = http
        .post(format!("{base}/oauth2/authorize"))
        .form(&[
            ("request", request.as_str()),
            ("username", "alice"),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .expect("sign in");
    let code = query_param(&issuer_common::location(&response), "code").expect("code");
    let tokens: serde_json::Value = http
        .post(format!("{base}/oauth2/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", redirect),
            ("code_verifier", verifier),
            ("client_id", "fieldlink-cli"),
        ])
        .send()
        .await
        .expect("token")
        .json()
        .await
        .expect("json");
    let sandbox_token = tokens["access_token"].as_str().expect("access token");
    let device = format!("{base}/v1/devices/sensor-1");
    let status = |token: String| {
        let http = http.clone();
        let device = device.clone();
        async move {
            http.get(&device)
                .bearer_auth(token)
                .send()
                .await
                .expect("api")
                .status()
        }
    };
    assert_eq!(
        status(sandbox_token.to_owned()).await,
        StatusCode::NOT_FOUND
    );

    // The external issuer: Entra-style claims, tenant fixed by the issuer URL, app roles
    // mapped to fieldlink roles.
    let now = chrono::Utc::now().timestamp();
    let mut claims = json!({
        "iss": ENTRA, "aud": ENTRA_AUDIENCE, "sub": "oid-1",
        "tid": "5f0c0000-0000-0000-0000-000000000001",
        "roles": ["Fieldlink.Installer"], "exp": now + 600,
    });
    assert_eq!(status(entra.sign(&claims)).await, StatusCode::NOT_FOUND);
    claims["roles"] = json!(["Other.App.Role"]);
    assert_eq!(status(entra.sign(&claims)).await, StatusCode::UNAUTHORIZED);
    claims["roles"] = json!(["Fieldlink.Installer"]);
    claims["aud"] = json!("api://someone-else");
    assert_eq!(status(entra.sign(&claims)).await, StatusCode::UNAUTHORIZED);
    running.shutdown().await.expect("shutdown");
}
