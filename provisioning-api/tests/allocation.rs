//! Allocation over HTTP, on SQLite and PostgreSQL: balance, caps, rate limits, stickiness,
//! rebalance, drain, reprovision and removal.

mod support;

use std::sync::Arc;

use fieldlink_protocol::ticket::{SignedTicket, TrustAnchors, decode_verifying_key};
use fieldlink_provisioning_api::clock::Clock;
use reqwest::StatusCode;
use serde_json::json;
use support::{TestApi, device_ids, instance_spec};

/// K instances, N devices assigned by 16 concurrent clients: every instance within 1% of the
/// mean, and the counters equal the assignments.
async fn balance_within_one_percent(api: &TestApi) {
    const K: usize = 4;
    const N: usize = 2_000;
    api.add_instances(K, "weu", 1_000_000, 1_000_000).await;
    let ids = device_ids("bal", N);
    api.allowlist("acme", &ids).await;
    let token = Arc::new(api.installer("acme"));
    let ids = Arc::new(ids);
    let mut workers = Vec::new();
    for worker in 0..16 {
        let (http, base, token, ids) = (
            api.http.clone(),
            api.base.clone(),
            token.clone(),
            ids.clone(),
        );
        workers.push(tokio::spawn(async move {
            let mut placed = Vec::new();
            for id in ids.iter().skip(worker).step_by(16) {
                let reply = http
                    .post(format!("{base}/v1/assignments"))
                    .bearer_auth(token.as_str())
                    .json(&json!({ "registration_id": id }))
                    .send()
                    .await
                    .expect("request");
                assert_eq!(reply.status(), StatusCode::OK);
                let body: serde_json::Value = reply.json().await.expect("json");
                placed.push(body["dps_instance"].as_str().expect("instance").to_owned());
            }
            placed
        }));
    }
    let mut by_instance = std::collections::HashMap::<String, u64>::new();
    for worker in workers {
        for name in worker.await.expect("worker") {
            *by_instance.entry(name).or_default() += 1;
        }
    }
    let counters = api.registrations().await;
    assert_eq!(counters.len(), K);
    let mean = (N / K) as f64;
    for (name, count) in &counters {
        assert_eq!(
            by_instance.get(name).copied().unwrap_or(0),
            *count,
            "{name}"
        );
        let deviation = (*count as f64 - mean).abs() / mean;
        assert!(
            deviation <= 0.01,
            "{name}: {count} vs mean {mean} ({counters:?})"
        );
    }
    assert_eq!(counters.iter().map(|(_, c)| c).sum::<u64>(), N as u64);
}

/// Caps are never exceeded; a full pool answers 503 with Retry-After.
async fn caps_are_never_exceeded(api: &TestApi) {
    api.add_instance(instance_spec("small-a", "weu", 3, 1_000, &[]))
        .await;
    api.add_instance(instance_spec("small-b", "weu", 5, 1_000, &[]))
        .await;
    let ids = device_ids("cap", 10);
    api.allowlist("acme", &ids).await;
    for id in &ids[..8] {
        assert_eq!(api.assign("acme", id).await.status, StatusCode::OK);
    }
    let full = api.assign("acme", &ids[8]).await;
    full.assert_error(StatusCode::SERVICE_UNAVAILABLE, "pool_capacity_exhausted");
    let counters = api.registrations().await;
    assert_eq!(
        counters,
        vec![("small-a".to_owned(), 3), ("small-b".to_owned(), 5)]
    );
    // A device that already has its slot still gets its (sticky) assignment.
    assert_eq!(api.assign("acme", &ids[0]).await.status, StatusCode::OK);
}

/// The per-minute limit answers 429 with Retry-After, and admits again once the window moves.
async fn rate_limit_answers_429(api: &TestApi) {
    api.add_instance(instance_spec("slow", "weu", 1_000, 3, &[]))
        .await;
    let ids = device_ids("rate", 5);
    api.allowlist("acme", &ids).await;
    for id in &ids[..3] {
        assert_eq!(api.assign("acme", id).await.status, StatusCode::OK);
    }
    let limited = api.assign("acme", &ids[3]).await;
    limited.assert_error(StatusCode::TOO_MANY_REQUESTS, "pool_rate_limited");
    assert_eq!(limited.body["retryable"], true);
    let pool = api
        .get("/v1/admin/dps-instances/slow", Some(&api.operator()))
        .await;
    assert_eq!(pool.body["registrations_last_minute"], 3);
    assert_eq!(pool.body["rate_limit_per_minute"], 3);
    api.clock.advance_ms(120_000);
    assert_eq!(api.assign("acme", &ids[3]).await.status, StatusCode::OK);
}

/// A repeat gets the same instance; a rebalance (admin) moves it to the least-loaded instance
/// and stays put when it already is there; installers cannot rebalance.
async fn sticky_unless_rebalanced(api: &TestApi) {
    api.add_instances(2, "weu", 1_000, 1_000).await;
    let ids = device_ids("sticky", 3);
    api.allowlist("acme", &ids).await;
    let operator = api.operator();
    api.post(
        "/v1/admin/dps-instances/dps-weu-1/drain",
        Some(&operator),
        json!({}),
    )
    .await;
    let first = api.assign("acme", &ids[0]).await;
    assert_eq!(first.body["outcome"], "created");
    assert_eq!(first.body["dps_instance"], "dps-weu-0");
    for id in &ids[1..] {
        assert_eq!(
            api.assign("acme", id).await.body["dps_instance"],
            "dps-weu-0"
        );
    }
    api.post(
        "/v1/admin/dps-instances/dps-weu-1/activate",
        Some(&operator),
        json!({}),
    )
    .await;
    for _ in 0..3 {
        let again = api.assign("acme", &ids[0]).await;
        assert_eq!(again.body["outcome"], "existing");
        assert_eq!(again.body["dps_instance"], "dps-weu-0");
        assert_eq!(again.body["id_scope"], first.body["id_scope"]);
        assert_ne!(again.body["ticket_nonce"], first.body["ticket_nonce"]);
    }
    let rebalance = json!({ "registration_id": ids[0], "rebalance": true });
    let denied = api
        .post(
            "/v1/assignments",
            Some(&api.installer("acme")),
            rebalance.clone(),
        )
        .await;
    denied.assert_error(StatusCode::FORBIDDEN, "forbidden");
    assert_eq!(denied.body["details"]["reason"], "missing_role");
    let moved = api
        .post(
            "/v1/assignments",
            Some(&api.admin("acme")),
            rebalance.clone(),
        )
        .await;
    assert_eq!(moved.status, StatusCode::OK, "{:?}", moved.body);
    assert_eq!(moved.body["outcome"], "moved");
    assert_eq!(moved.body["previous_instance"], "dps-weu-0");
    assert_eq!(moved.body["dps_instance"], "dps-weu-1");
    assert_eq!(moved.body["generation"], 2);
    let stays = api
        .post("/v1/assignments", Some(&api.admin("acme")), rebalance)
        .await;
    assert_eq!(stays.body["outcome"], "existing");
    assert_eq!(stays.body["dps_instance"], "dps-weu-1");
    assert_eq!(
        api.registrations().await,
        vec![("dps-weu-0".to_owned(), 2), ("dps-weu-1".to_owned(), 1)]
    );
}

/// A drained instance takes no new devices, keeps its own (sticky), and can be emptied by
/// reprovisioning, then removed.
async fn drain_reprovision_remove(api: &TestApi) {
    api.add_instances(2, "weu", 1_000, 1_000).await;
    let ids = device_ids("drain", 10);
    api.allowlist("acme", &ids).await;
    for id in &ids[..4] {
        assert_eq!(api.assign("acme", id).await.status, StatusCode::OK);
    }
    let operator = api.operator();
    let drained = api
        .post(
            "/v1/admin/dps-instances/dps-weu-0/drain",
            Some(&operator),
            json!({}),
        )
        .await;
    assert_eq!(drained.body["state"], "draining");
    for id in &ids[4..] {
        let reply = api.assign("acme", id).await;
        assert_eq!(reply.body["dps_instance"], "dps-weu-1", "{:?}", reply.body);
    }
    let on_drained: Vec<String> = {
        let mut found = Vec::new();
        for id in &ids[..4] {
            let reply = api.assign("acme", id).await;
            if reply.body["dps_instance"] == "dps-weu-0" {
                assert_eq!(reply.body["outcome"], "existing");
                found.push(id.clone());
            }
        }
        found
    };
    assert!(!on_drained.is_empty());
    let busy = api
        .delete("/v1/admin/dps-instances/dps-weu-0", Some(&operator))
        .await;
    busy.assert_error(StatusCode::CONFLICT, "instance_not_empty");
    for id in &on_drained {
        let moved = api
            .post(
                &format!("/v1/devices/{id}/reprovision"),
                Some(&api.admin("acme")),
                json!({}),
            )
            .await;
        assert_eq!(moved.status, StatusCode::OK, "{:?}", moved.body);
        assert_eq!(moved.body["outcome"], "moved");
        assert_eq!(moved.body["dps_instance"], "dps-weu-1");
        assert_eq!(moved.body["previous_instance"], "dps-weu-0");
    }
    let no_target = api
        .post(
            &format!("/v1/devices/{}/reprovision", ids[0]),
            Some(&api.admin("acme")),
            json!({}),
        )
        .await;
    no_target.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "no_eligible_instance");
    assert_eq!(
        api.registrations().await,
        vec![("dps-weu-0".to_owned(), 0), ("dps-weu-1".to_owned(), 10)]
    );
    let removed = api
        .delete("/v1/admin/dps-instances/dps-weu-0", Some(&operator))
        .await;
    assert_eq!(removed.status, StatusCode::NO_CONTENT);
    let gone = api
        .get("/v1/admin/dps-instances/dps-weu-0", Some(&operator))
        .await;
    gone.assert_error(StatusCode::NOT_FOUND, "instance_not_found");
}

/// Explicit reprovision targets, and deprovisioning releasing the slot.
async fn reprovision_target_and_deprovision(api: &TestApi) {
    api.add_instances(3, "weu", 1_000, 1_000).await;
    let ids = device_ids("move", 1);
    api.allowlist("acme", &ids).await;
    let first = api.assign("acme", &ids[0]).await;
    let from = first.body["dps_instance"]
        .as_str()
        .expect("instance")
        .to_owned();
    let admin = api.admin("acme");
    let path = format!("/v1/devices/{}/reprovision", ids[0]);
    let same = api
        .post(&path, Some(&admin), json!({ "target_instance": from }))
        .await;
    same.assert_error(StatusCode::CONFLICT, "target_unavailable");
    let unknown = api
        .post(&path, Some(&admin), json!({ "target_instance": "nope" }))
        .await;
    unknown.assert_error(StatusCode::CONFLICT, "target_unavailable");
    let target = if from == "dps-weu-2" {
        "dps-weu-1"
    } else {
        "dps-weu-2"
    };
    let moved = api
        .post(&path, Some(&admin), json!({ "target_instance": target }))
        .await;
    assert_eq!(moved.body["dps_instance"], target, "{:?}", moved.body);
    // The ticket names the new scope and verifies with the served keys.
    let keys = api.get("/v1/ticket-keys", None).await;
    let mut anchors = TrustAnchors::new();
    for key in keys.body["keys"].as_array().expect("keys") {
        anchors.insert(
            key["key_id"].as_str().expect("kid"),
            decode_verifying_key(key["public_key"].as_str().expect("key")).expect("valid key"),
        );
    }
    let ticket = SignedTicket::from_base64url(moved.body["ticket"].as_str().expect("ticket"))
        .expect("ticket decodes");
    let claims = anchors
        .verify(&ticket, api.clock.now_ms() / 1000, &ids[0])
        .expect("ticket verifies");
    assert_eq!(claims.dps_instance, target);
    assert_eq!(
        claims.id_scope,
        moved.body["id_scope"].as_str().expect("scope")
    );
    assert_eq!(claims.tenant, "acme");

    let installer_denied = api
        .delete(
            &format!("/v1/devices/{}", ids[0]),
            Some(&api.installer("acme")),
        )
        .await;
    installer_denied.assert_error(StatusCode::FORBIDDEN, "forbidden");
    let gone = api
        .delete(&format!("/v1/devices/{}", ids[0]), Some(&admin))
        .await;
    assert_eq!(gone.status, StatusCode::OK);
    assert_eq!(gone.body["status"], "deprovisioned");
    let again = api
        .delete(&format!("/v1/devices/{}", ids[0]), Some(&admin))
        .await;
    assert_eq!(again.body["status"], "deprovisioned");
    assert_eq!(
        api.registrations()
            .await
            .iter()
            .map(|(_, c)| c)
            .sum::<u64>(),
        0
    );
    let not_assigned = api.post(&path, Some(&admin), json!({})).await;
    not_assigned.assert_error(StatusCode::CONFLICT, "device_not_assigned");
    let back = api.assign("acme", &ids[0]).await;
    assert_eq!(back.body["outcome"], "created");
    assert_eq!(back.body["generation"], 3);
}

/// Tenant- and region-restricted instances.
async fn tenant_and_region_restrictions(api: &TestApi) {
    api.add_instance(instance_spec("acme-only", "weu", 1_000, 1_000, &["acme"]))
        .await;
    api.add_instance(instance_spec("shared-eus", "eus", 1_000, 1_000, &[]))
        .await;
    let acme = device_ids("acme", 3);
    let globex = device_ids("globex", 3);
    api.allowlist("acme", &acme).await;
    api.allowlist("globex", &globex).await;
    let in_weu = api
        .post(
            "/v1/assignments",
            Some(&api.installer("globex")),
            json!({ "registration_id": globex[0], "region": "weu" }),
        )
        .await;
    in_weu.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "no_eligible_instance");
    let anywhere = api.assign("globex", &globex[1]).await;
    assert_eq!(anywhere.body["dps_instance"], "shared-eus");
    let acme_weu = api
        .post(
            "/v1/assignments",
            Some(&api.installer("acme")),
            json!({ "registration_id": acme[0], "region": "weu" }),
        )
        .await;
    assert_eq!(acme_weu.body["dps_instance"], "acme-only");
    assert_eq!(acme_weu.body["region"], "weu");
    // A tenant admin sees only the instances its devices may use.
    let seen = api
        .get("/v1/admin/dps-instances", Some(&api.admin("globex")))
        .await;
    let names: Vec<&str> = seen.body["instances"]
        .as_array()
        .expect("list")
        .iter()
        .map(|i| i["name"].as_str().expect("name"))
        .collect();
    assert_eq!(names, ["shared-eus"]);
    let hidden = api
        .get(
            "/v1/admin/dps-instances/acme-only",
            Some(&api.admin("globex")),
        )
        .await;
    hidden.assert_error(StatusCode::NOT_FOUND, "instance_not_found");
    let not_operator = api
        .post(
            "/v1/admin/dps-instances/shared-eus/drain",
            Some(&api.admin("globex")),
            json!({}),
        )
        .await;
    not_operator.assert_error(StatusCode::FORBIDDEN, "forbidden");
}

on_both_backends!(
    balance_within_one_percent,
    caps_are_never_exceeded,
    rate_limit_answers_429,
    sticky_unless_rebalanced,
    drain_reprovision_remove,
    reprovision_target_and_deprovision,
    tenant_and_region_restrictions,
);
