//! Operations endpoints and the OpenAPI document, on SQLite and PostgreSQL.

mod support;

use reqwest::StatusCode;
use serde_json::{Value, json};
use support::TestApi;

/// Every route the router serves, as `(method, OpenAPI path)`.
const ROUTES: &[(&str, &str)] = &[
    ("post", "/v1/assignments"),
    ("get", "/v1/devices/{registrationId}"),
    ("delete", "/v1/devices/{registrationId}"),
    ("post", "/v1/devices/{registrationId}/reprovision"),
    ("get", "/v1/devices/{registrationId}/registration"),
    ("post", "/v1/allowlist"),
    ("get", "/v1/allowlist"),
    ("delete", "/v1/allowlist/{registrationId}"),
    ("get", "/v1/admin/dps-instances"),
    ("post", "/v1/admin/dps-instances"),
    ("get", "/v1/admin/dps-instances/{name}"),
    ("delete", "/v1/admin/dps-instances/{name}"),
    ("post", "/v1/admin/dps-instances/{name}/drain"),
    ("post", "/v1/admin/dps-instances/{name}/activate"),
    ("post", "/v1/admin/ticket-keys/rotate"),
    ("delete", "/v1/admin/ticket-keys/{keyId}"),
    ("get", "/v1/ticket-keys"),
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
    ("get", "/openapi.json"),
];

/// The document is valid JSON (OpenAPI 3), documents every route with its responses, and
/// declares the bearer scheme on protected routes.
async fn openapi_documents_every_route(api: &TestApi) {
    let reply = api.get("/openapi.json", None).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.headers["content-type"], "application/json");
    let doc = &reply.body;
    assert!(doc["openapi"].as_str().expect("version").starts_with("3."));
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    let paths = doc["paths"].as_object().expect("paths");
    let documented: usize = paths
        .values()
        .map(|p| p.as_object().map_or(0, |o| o.len()))
        .sum();
    assert_eq!(documented, ROUTES.len(), "undocumented or unknown routes");
    for (method, path) in ROUTES {
        let operation = &doc["paths"][path][method];
        assert!(operation.is_object(), "{method} {path} is not documented");
        assert!(
            operation["responses"]["200"].is_object()
                || operation["responses"]["201"].is_object()
                || operation["responses"]["204"].is_object(),
            "{method} {path}"
        );
        let public = matches!(
            *path,
            "/healthz" | "/readyz" | "/metrics" | "/openapi.json" | "/v1/ticket-keys"
        );
        assert_eq!(operation["security"].is_array(), !public, "{method} {path}");
        // Every documented route exists (a wrong method or path would be 404/405).
        let concrete = path
            .replace("{registrationId}", "some-device")
            .replace("{name}", "some-instance")
            .replace("{keyId}", "some-key");
        let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
        let probe = api.call(method, &concrete, None, None).await;
        assert_ne!(
            probe.status,
            StatusCode::NOT_FOUND,
            "{concrete} is not routed"
        );
        assert_ne!(probe.status, StatusCode::METHOD_NOT_ALLOWED, "{concrete}");
    }
    for schema in [
        "ErrorBody",
        "AssignmentRequest",
        "AssignmentResponse",
        "NewDpsInstance",
    ] {
        assert!(doc["components"]["schemas"][schema].is_object(), "{schema}");
    }
}

/// Health, readiness, metrics, unknown routes and ticket keys.
async fn operations_endpoints(api: &TestApi) {
    assert_eq!(
        api.get("/healthz", None).await.body,
        json!({"status": "ok", "storage": null})
    );
    let ready = api.get("/readyz", None).await;
    assert_eq!(ready.status, StatusCode::OK);
    let backend = match api.backend {
        support::Backend::Sqlite => "sqlite",
        support::Backend::Postgres => "postgres",
    };
    assert_eq!(ready.body["storage"], backend);
    api.add_instances(2, "weu", 1_000, 1_000).await;
    api.allowlist("acme", &["metric-dev-1".to_owned()]).await;
    api.assign("acme", "metric-dev-1").await;
    let metrics = api.get("/metrics", None).await;
    assert_eq!(metrics.status, StatusCode::OK);
    let text = metrics.body.as_str().expect("text");
    assert!(
        text.contains("fieldlink_api_assignments_total{outcome=\"created\"} 1"),
        "{text}"
    );
    assert!(text.contains(
        "fieldlink_api_http_requests_total{method=\"POST\",route=\"/v1/assignments\",status=\"200\"} 1"
    ));
    assert!(text.contains(
        "fieldlink_dps_instance_registration_cap{instance=\"dps-weu-0\",region=\"weu\"} 1000"
    ));
    let unknown = api.get("/v2/nothing", None).await;
    unknown.assert_error(StatusCode::NOT_FOUND, "not_found");
    let malformed = api
        .http
        .post(format!("{}/v1/assignments", api.base))
        .bearer_auth(api.installer("acme"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("request");
    support::Reply::from(malformed)
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    let unknown_field = api
        .post(
            "/v1/assignments",
            Some(&api.installer("acme")),
            json!({"registration_id": "x", "extra": 1}),
        )
        .await;
    unknown_field.assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    assert!(
        api.get("/healthz", None)
            .await
            .headers
            .contains_key("x-request-id")
    );
}

/// Ticket keys are served with key ids; rotation keeps the previous key; retiring works only
/// for previous keys.
async fn ticket_key_rotation(api: &TestApi) {
    let keys = |reply: support::Reply| -> Vec<Value> {
        reply.body["keys"].as_array().expect("keys").clone()
    };
    let initial = keys(api.get("/v1/ticket-keys", None).await);
    assert_eq!(initial.len(), 1);
    assert_eq!(initial[0]["state"], "current");
    assert_eq!(initial[0]["algorithm"], "Ed25519");
    let old_id = initial[0]["key_id"].as_str().expect("kid").to_owned();
    let operator = api.operator();
    let rotated = api
        .post("/v1/admin/ticket-keys/rotate", Some(&operator), json!({}))
        .await;
    assert_eq!(rotated.status, StatusCode::OK);
    let new_id = rotated.body["key_id"].as_str().expect("kid").to_owned();
    assert_ne!(new_id, old_id);
    let after = keys(api.get("/v1/ticket-keys", None).await);
    assert_eq!(after.len(), 2);
    assert_eq!(after[0]["key_id"], new_id.as_str());
    assert_eq!(after[1]["key_id"], old_id.as_str());
    assert_eq!(after[1]["state"], "previous");
    api.add_instances(1, "weu", 1_000, 1_000).await;
    api.allowlist("acme", &["key-dev-1".to_owned()]).await;
    let assignment = api.assign("acme", "key-dev-1").await;
    assert_eq!(assignment.body["ticket_key_id"], new_id.as_str());
    api.delete(&format!("/v1/admin/ticket-keys/{new_id}"), Some(&operator))
        .await
        .assert_error(StatusCode::NOT_FOUND, "ticket_key_not_found");
    let retired = api
        .delete(&format!("/v1/admin/ticket-keys/{old_id}"), Some(&operator))
        .await;
    assert_eq!(retired.status, StatusCode::NO_CONTENT);
    assert_eq!(keys(api.get("/v1/ticket-keys", None).await).len(), 1);
}

/// Ticket lifetime is configurable (default 15 min).
async fn ticket_lifetime_default(api: &TestApi) {
    api.add_instances(1, "weu", 1_000, 1_000).await;
    api.allowlist("acme", &["life-dev-1".to_owned()]).await;
    let reply = api.assign("acme", "life-dev-1").await;
    let not_before = reply.body["ticket_not_before"].as_i64().expect("nbf");
    let expires = reply.body["ticket_expires_at"].as_i64().expect("exp");
    assert_eq!(expires - not_before, 15 * 60 + 60);
    assert_eq!(
        reply.body["ticket_nonce"].as_str().expect("nonce").len(),
        32
    );
}

on_both_backends!(
    openapi_documents_every_route,
    operations_endpoints,
    ticket_key_rotation,
    ticket_lifetime_default,
);
