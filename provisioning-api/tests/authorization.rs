//! Authentication and authorization over HTTP, on SQLite and PostgreSQL: 401 for missing or
//! bad tokens, 403 across tenants and roles, on every protected endpoint.

mod support;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use fieldlink_provisioning_api::{auth::Role, clock::Clock, test_tokens::TokenMinter};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use support::{AUDIENCE, ISSUER, TestApi, device_ids};

/// Every protected route, with a body where it takes one.
fn protected_routes(device: &str) -> Vec<(Method, String, Option<Value>)> {
    vec![
        (
            Method::POST,
            "/v1/assignments".into(),
            Some(json!({ "registration_id": device })),
        ),
        (Method::GET, format!("/v1/devices/{device}"), None),
        (Method::DELETE, format!("/v1/devices/{device}"), None),
        (
            Method::POST,
            format!("/v1/devices/{device}/reprovision"),
            Some(json!({})),
        ),
        (
            Method::GET,
            format!("/v1/devices/{device}/registration"),
            None,
        ),
        (Method::POST, "/v1/allowlist".into(), Some(json!([device]))),
        (Method::GET, "/v1/allowlist".into(), None),
        (Method::DELETE, format!("/v1/allowlist/{device}"), None),
        (Method::GET, "/v1/admin/dps-instances".into(), None),
        (
            Method::POST,
            "/v1/admin/dps-instances".into(),
            Some(json!({})),
        ),
        (
            Method::GET,
            "/v1/admin/dps-instances/dps-weu-0".into(),
            None,
        ),
        (
            Method::DELETE,
            "/v1/admin/dps-instances/dps-weu-0".into(),
            None,
        ),
        (
            Method::POST,
            "/v1/admin/dps-instances/dps-weu-0/drain".into(),
            Some(json!({})),
        ),
        (
            Method::POST,
            "/v1/admin/dps-instances/dps-weu-0/activate".into(),
            Some(json!({})),
        ),
        (
            Method::POST,
            "/v1/admin/ticket-keys/rotate".into(),
            Some(json!({})),
        ),
        (Method::DELETE, "/v1/admin/ticket-keys/tk-0".into(), None),
    ]
}

/// No token, or any defective token, is 401 on every protected route.
async fn bad_tokens_are_401_everywhere(api: &TestApi) {
    let now = api.clock.now_unix();
    let claims = api.minter.claims("acme", &[Role::Admin], now);
    let mut expired = claims.clone();
    expired["exp"] = json!(now - 3_600);
    let mut wrong_audience = claims.clone();
    wrong_audience["aud"] = json!("another-api");
    let mut wrong_issuer = claims.clone();
    wrong_issuer["iss"] = json!("https://evil.test");
    let impostor = TokenMinter::new(ISSUER, AUDIENCE);
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some(api.minter.key_id().to_owned());
    let bad_signature = impostor.sign_with_header(&header, &claims);
    header.kid = Some("no-such-key".to_owned());
    let unknown_kid = api.minter.sign_with_header(&header, &claims);
    let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).expect("json"));
    let none_header = URL_SAFE_NO_PAD.encode(
        serde_json::to_vec(&json!({"alg": "none", "kid": api.minter.key_id()})).expect("json"),
    );
    let alg_none = format!("{none_header}.{body}.");
    let mut hmac_header = Header::new(Algorithm::HS256);
    hmac_header.kid = Some(api.minter.key_id().to_owned());
    let hs256_with_public_key = jsonwebtoken::encode(
        &hmac_header,
        &claims,
        &EncodingKey::from_secret(&api.minter.public_key()),
    )
    .expect("hmac");
    let cases: Vec<(&str, Option<String>, &str)> = vec![
        ("no token", None, "missing_token"),
        ("expired", Some(api.minter.sign(&expired)), "expired"),
        (
            "wrong audience",
            Some(api.minter.sign(&wrong_audience)),
            "wrong_audience",
        ),
        (
            "wrong issuer",
            Some(api.minter.sign(&wrong_issuer)),
            "unknown_issuer",
        ),
        ("bad signature", Some(bad_signature), "bad_signature"),
        ("unknown kid", Some(unknown_kid), "unknown_key"),
        ("alg none", Some(alg_none), "algorithm_rejected"),
        (
            "HS256 with the public key",
            Some(hs256_with_public_key),
            "algorithm_rejected",
        ),
        ("garbage", Some("not.a.jwt".to_owned()), "malformed_token"),
    ];
    for (method, path, body) in protected_routes("acme-dev-00000") {
        for (case, token, reason) in &cases {
            let reply = api
                .call(method.clone(), &path, token.as_deref(), body.clone())
                .await;
            assert_eq!(
                reply.status,
                StatusCode::UNAUTHORIZED,
                "{case}: {method} {path}"
            );
            reply.assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
            assert_eq!(
                reply.body["details"]["reason"], *reason,
                "{case}: {method} {path}"
            );
            assert!(reply.headers.contains_key("www-authenticate"));
        }
    }
}

/// Tenant B's users can neither read nor assign nor change tenant A's devices: 403.
async fn cross_tenant_is_403_everywhere(api: &TestApi) {
    api.add_instances(2, "weu", 1_000, 1_000).await;
    let acme = device_ids("acme-dev", 2);
    api.allowlist("acme", &acme).await;
    assert_eq!(api.assign("acme", &acme[0]).await.status, StatusCode::OK);
    for roles in [
        vec![Role::Installer],
        vec![Role::Admin],
        vec![Role::Qa],
        vec![Role::Admin, Role::Installer],
    ] {
        let token = api.token("globex", &roles);
        for device in &acme {
            let checks = vec![
                (
                    Method::POST,
                    "/v1/assignments".to_owned(),
                    Some(json!({ "registration_id": device })),
                ),
                (Method::GET, format!("/v1/devices/{device}"), None),
                (Method::DELETE, format!("/v1/devices/{device}"), None),
                (
                    Method::POST,
                    format!("/v1/devices/{device}/reprovision"),
                    Some(json!({})),
                ),
                (
                    Method::GET,
                    format!("/v1/devices/{device}/registration"),
                    None,
                ),
                (Method::DELETE, format!("/v1/allowlist/{device}"), None),
            ];
            for (method, path, body) in checks {
                let reply = api.call(method.clone(), &path, Some(&token), body).await;
                reply.assert_error(StatusCode::FORBIDDEN, "forbidden");
                let reason = reply.body["details"]["reason"].as_str().unwrap_or_default();
                assert!(
                    reason == "cross_tenant" || reason == "missing_role",
                    "{roles:?} {method} {path}: {reason}"
                );
            }
        }
    }
    // Importing another tenant's device does not take it over.
    let import = api
        .post(
            "/v1/allowlist",
            Some(&api.admin("globex")),
            json!([acme[1]]),
        )
        .await;
    assert_eq!(import.body["added"], 0);
    assert_eq!(import.body["owned_by_other_tenant"], 1);
    // Nothing changed for tenant A.
    let device = api
        .get(
            &format!("/v1/devices/{}", acme[0]),
            Some(&api.installer("acme")),
        )
        .await;
    assert_eq!(device.body["status"], "assigned");
    assert_eq!(device.body["tenant"], "acme");
    let page = api.get("/v1/allowlist", Some(&api.admin("globex"))).await;
    assert_eq!(page.body["entries"], json!([]));
}

/// Roles: QA reads only; installers cannot administer; tenant admins cannot change the pool.
async fn roles_are_enforced(api: &TestApi) {
    api.add_instances(1, "weu", 1_000, 1_000).await;
    let ids = device_ids("role", 2);
    api.allowlist("acme", &ids).await;
    let qa = api.token("acme", &[Role::Qa]);
    let installer = api.installer("acme");
    let admin = api.admin("acme");
    let denied = |reply: support::Reply| {
        reply.assert_error(StatusCode::FORBIDDEN, "forbidden");
        assert_eq!(
            reply.body["details"]["reason"], "missing_role",
            "{:?}",
            reply.body
        );
    };
    denied(
        api.post(
            "/v1/assignments",
            Some(&qa),
            json!({ "registration_id": ids[0] }),
        )
        .await,
    );
    assert_eq!(api.assign("acme", &ids[0]).await.status, StatusCode::OK);
    assert_eq!(
        api.get(&format!("/v1/devices/{}", ids[0]), Some(&qa))
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        api.get("/v1/allowlist", Some(&qa)).await.status,
        StatusCode::OK
    );
    denied(api.get("/v1/allowlist", Some(&installer)).await);
    denied(
        api.post("/v1/allowlist", Some(&installer), json!(["x-1"]))
            .await,
    );
    denied(
        api.delete(&format!("/v1/devices/{}", ids[0]), Some(&installer))
            .await,
    );
    denied(
        api.delete(&format!("/v1/devices/{}", ids[0]), Some(&qa))
            .await,
    );
    denied(api.get("/v1/admin/dps-instances", Some(&installer)).await);
    let tenant_admin = api
        .post(
            "/v1/admin/dps-instances/dps-weu-0/drain",
            Some(&admin),
            json!({}),
        )
        .await;
    tenant_admin.assert_error(StatusCode::FORBIDDEN, "forbidden");
    assert_eq!(tenant_admin.body["details"]["reason"], "operator_only");
    api.post("/v1/admin/ticket-keys/rotate", Some(&admin), json!({}))
        .await
        .assert_error(StatusCode::FORBIDDEN, "forbidden");
    // A token without any known role is refused at authentication.
    let mut claims = api.minter.claims("acme", &[], api.clock.now_unix());
    claims["roles"] = json!(["superuser"]);
    let reply = api
        .get("/v1/allowlist", Some(&api.minter.sign(&claims)))
        .await;
    reply.assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
    assert_eq!(reply.body["details"]["reason"], "no_role");
    // Unknown devices are 404 for their own tenant, not 403.
    api.get("/v1/devices/nobody-knows-me", Some(&installer))
        .await
        .assert_error(StatusCode::NOT_FOUND, "device_not_found");
    api.get("/v1/devices/Bad_ID!", Some(&installer))
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_registration_id");
}

on_both_backends!(
    bad_tokens_are_401_everywhere,
    cross_tenant_is_403_everywhere,
    roles_are_enforced,
);
