//! Idempotency and one-device-one-assignment under concurrency, on SQLite and PostgreSQL.

mod support;

use std::{collections::HashSet, sync::Arc};

use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{TestApi, device_ids};

async fn send(api: &TestApi, token: &str, key: Option<&str>, body: &Value) -> support::Reply {
    let mut request = api
        .http
        .post(format!("{}/v1/assignments", api.base))
        .bearer_auth(token)
        .json(body);
    if let Some(key) = key {
        request = request.header("Idempotency-Key", key);
    }
    support::Reply::from(request.send().await.expect("request")).await
}

/// 100 concurrent duplicates with one Idempotency-Key: one assignment, 100 identical
/// responses (ticket included).
async fn hundred_concurrent_duplicates_make_one_assignment(api: &TestApi) {
    api.add_instances(3, "weu", 1_000, 1_000).await;
    let ids = device_ids("idem", 1);
    api.allowlist("acme", &ids).await;
    let token = Arc::new(api.installer("acme"));
    let body = Arc::new(json!({ "registration_id": ids[0] }));
    let barrier = Arc::new(tokio::sync::Barrier::new(100));
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let (http, base, token, body, barrier) = (
            api.http.clone(),
            api.base.clone(),
            token.clone(),
            body.clone(),
            barrier.clone(),
        );
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            let response = http
                .post(format!("{base}/v1/assignments"))
                .bearer_auth(token.as_str())
                .header("Idempotency-Key", "install-42")
                .json(body.as_ref())
                .send()
                .await
                .expect("request");
            support::Reply::from(response).await
        }));
    }
    let mut bodies = HashSet::new();
    let mut replayed = 0;
    for task in tasks {
        let reply = task.await.expect("task");
        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
        if reply.headers.get("idempotent-replayed").is_some() {
            replayed += 1;
        }
        bodies.insert(reply.body.to_string());
    }
    assert_eq!(
        bodies.len(),
        1,
        "every duplicate gets the identical response"
    );
    assert_eq!(replayed, 99);
    let body: Value = serde_json::from_str(bodies.iter().next().expect("one")).expect("json");
    assert_eq!(body["outcome"], "created");
    let total: u64 = api.registrations().await.iter().map(|(_, c)| c).sum();
    assert_eq!(total, 1);
}

/// 100 concurrent requests for one device without a key: one placement, every answer names the
/// same instance (with its own fresh ticket).
async fn concurrent_requests_without_key_share_one_assignment(api: &TestApi) {
    api.add_instances(4, "weu", 1_000, 1_000).await;
    let ids = device_ids("race", 1);
    api.allowlist("acme", &ids).await;
    let token = api.installer("acme");
    let body = json!({ "registration_id": ids[0] });
    let replies = futures::future::join_all((0..100).map(|_| send(api, &token, None, &body))).await;
    let instances: HashSet<String> = replies
        .iter()
        .map(|r| {
            assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
            r.body["dps_instance"]
                .as_str()
                .expect("instance")
                .to_owned()
        })
        .collect();
    assert_eq!(instances.len(), 1);
    let created = replies
        .iter()
        .filter(|r| r.body["outcome"] == "created")
        .count();
    assert_eq!(created, 1);
    let nonces: HashSet<String> = replies
        .iter()
        .map(|r| r.body["ticket_nonce"].as_str().expect("nonce").to_owned())
        .collect();
    assert_eq!(nonces.len(), 100);
    let total: u64 = api.registrations().await.iter().map(|(_, c)| c).sum();
    assert_eq!(total, 1);
}

/// A key reused for another request is refused; a failed request releases its key.
async fn key_reuse_and_release(api: &TestApi) {
    api.add_instances(1, "weu", 1_000, 1_000).await;
    let ids = device_ids("reuse", 2);
    api.allowlist("acme", &ids[..1]).await;
    let token = api.installer("acme");
    let first = send(
        api,
        &token,
        Some("k-1"),
        &json!({ "registration_id": ids[0] }),
    )
    .await;
    assert_eq!(first.status, StatusCode::OK);
    let replay = send(
        api,
        &token,
        Some("k-1"),
        &json!({ "registration_id": ids[0] }),
    )
    .await;
    assert_eq!(replay.body, first.body);
    assert_eq!(replay.headers["idempotent-replayed"], "true");
    send(
        api,
        &token,
        Some("k-1"),
        &json!({ "registration_id": ids[1] }),
    )
    .await
    .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "idempotency_key_reused");
    // Keys are per tenant: another tenant's identical key is independent.
    api.allowlist("globex", &["globex-dev-1".to_owned()]).await;
    let other = send(
        api,
        &api.installer("globex"),
        Some("k-1"),
        &json!({ "registration_id": "globex-dev-1" }),
    )
    .await;
    assert_eq!(other.status, StatusCode::OK, "{:?}", other.body);
    // A refused request (not allowlisted) does not burn its key.
    send(
        api,
        &token,
        Some("k-2"),
        &json!({ "registration_id": ids[1] }),
    )
    .await
    .assert_error(StatusCode::FORBIDDEN, "device_not_allowlisted");
    api.allowlist("acme", &ids[1..]).await;
    let retried = send(
        api,
        &token,
        Some("k-2"),
        &json!({ "registration_id": ids[1] }),
    )
    .await;
    assert_eq!(retried.status, StatusCode::OK, "{:?}", retried.body);
    assert!(retried.headers.get("idempotent-replayed").is_none());
    send(api, &token, Some(""), &json!({ "registration_id": ids[1] }))
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_request");
}

on_both_backends!(
    hundred_concurrent_duplicates_make_one_assignment,
    concurrent_requests_without_key_share_one_assignment,
    key_reuse_and_release,
);
