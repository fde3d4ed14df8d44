//! Registration status through the DPS service API, on SQLite and PostgreSQL.
//!
//! The happy path, DPS faults and credential errors run against the real DPS emulator
//! (`fieldlink-dps-emulator`, in-process, plain HTTP on loopback). The emulator does not
//! throttle its service API, so the 429 case uses a minimal stand-in server defined below that
//! answers DPS's documented 429 with `Retry-After`.

mod support;

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use axum::{Router, http::StatusCode as AxumStatus, response::IntoResponse, routing::get};
use fieldlink_dps_emulator::{
    DpsEmulator, EmulatorConfig, EnrollmentGroup, InstanceConfig, Knobs, RunningEmulator,
    SharedAccessPolicy,
};
use fieldlink_protocol::sas;
use fieldlink_provisioning_api::dps::status::RegistrationStatusConfig;
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{Options, TestApi};

const DPS: &str = "dps-status-a";
const HUB: &str = "hub-status-a.azure-devices.net";
const POLICY: &str = "provisioningserviceowner";
const POLICY_KEY: &str = "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=";
const GROUP_KEY: &str = "MjM0NTY3ODk6Ozw9Pj9AQUJDREVGR0hJSktMTU5PUFE=";
const DEVICE: &str = "sensor-status-0001";

fn options() -> Options {
    let mut options = Options::default();
    options.config.registration_status = RegistrationStatusConfig {
        cache_ttl: Duration::from_millis(300),
        deadline: Duration::from_secs(3),
        ..RegistrationStatusConfig::default()
    };
    options
}

async fn emulator() -> RunningEmulator {
    let mut instance = InstanceConfig::new(DPS, &[HUB]);
    instance.shared_access_policies = vec![SharedAccessPolicy {
        key_name: POLICY.to_owned(),
        primary_key: POLICY_KEY.to_owned(),
        secondary_key: GROUP_KEY.to_owned(),
    }];
    instance.enrollment_groups = vec![EnrollmentGroup::symmetric_key(
        "fieldlink-devices",
        GROUP_KEY,
        GROUP_KEY,
    )];
    DpsEmulator::start(EmulatorConfig::with_instances(vec![instance]))
        .await
        .expect("emulator starts")
}

/// Adds the emulator's instance to the API's pool, with `key` as the service key.
async fn add_emulated_instance(api: &TestApi, emulator: &RunningEmulator, key: Option<&str>) {
    let info = emulator.control().instance(DPS).expect("instance");
    let base = emulator.http_base_url().expect("http listener");
    let mut spec = json!({
        "name": DPS,
        "id_scope": info.id_scope,
        "global_endpoint": base.trim_start_matches("http://"),
        "service_endpoint": format!("{base}/dps/{DPS}"),
        "region": "weu",
    });
    if let Some(key) = key {
        spec["service_credentials"] = json!({
            "policy_name": POLICY,
            "key": key,
            "resource_uri": info.service_host_name,
        });
    }
    api.add_instance(spec).await;
}

/// The device registers with the emulator the way a device does (group-derived SAS key).
async fn register_device(emulator: &RunningEmulator, id_scope: &str) -> Value {
    let base = emulator.http_base_url().expect("http listener");
    let key = sas::derive_group_device_key(GROUP_KEY, DEVICE).expect("derived key");
    let token = sas::device_sas_token(id_scope, DEVICE, &key, chrono::Utc::now().timestamp() + 600)
        .expect("token");
    let client = reqwest::Client::new();
    let api = "api-version=2021-10-01";
    let operation: Value = client
        .put(format!(
            "{base}/{id_scope}/registrations/{DEVICE}/register?{api}"
        ))
        .header("Authorization", &token)
        .json(&json!({ "registrationId": DEVICE }))
        .send()
        .await
        .expect("register")
        .json()
        .await
        .expect("operation");
    let operation_id = operation["operationId"].as_str().expect("operation id");
    for _ in 0..50 {
        let reply = client
            .get(format!(
                "{base}/{id_scope}/registrations/{DEVICE}/operations/{operation_id}?{api}"
            ))
            .header("Authorization", &token)
            .send()
            .await
            .expect("poll");
        if reply.status() == StatusCode::OK {
            return reply.json().await.expect("result");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the emulator did not finish the registration");
}

async fn status(api: &TestApi, tenant: &str) -> support::Reply {
    api.get(
        &format!("/v1/devices/{DEVICE}/registration"),
        Some(&api.installer(tenant)),
    )
    .await
}

/// Before registration the API reports `unassigned`; after it, DPS's record (hub, device id),
/// served briefly from cache.
async fn reports_the_emulators_registration_state(api: &TestApi) {
    let emulator = emulator().await;
    add_emulated_instance(api, &emulator, Some(POLICY_KEY)).await;
    api.allowlist("acme", &[DEVICE.to_owned()]).await;
    let unassigned = status(api, "acme").await;
    unassigned.assert_error(StatusCode::CONFLICT, "device_not_assigned");
    let assignment = api.assign("acme", DEVICE).await;
    assert_eq!(assignment.status, StatusCode::OK);
    let before = status(api, "acme").await;
    assert_eq!(before.status, StatusCode::OK, "{:?}", before.body);
    assert_eq!(before.body["registered"], false);
    assert_eq!(before.body["status"], "unassigned");
    assert_eq!(before.body["dps_instance"], DPS);
    let id_scope = assignment.body["id_scope"].as_str().expect("scope");
    let result = register_device(&emulator, id_scope).await;
    assert_eq!(result["status"], "assigned");
    tokio::time::sleep(Duration::from_millis(400)).await;
    let after = status(api, "acme").await;
    assert_eq!(after.status, StatusCode::OK, "{:?}", after.body);
    assert_eq!(after.body["registered"], true);
    assert_eq!(after.body["status"], "assigned");
    assert_eq!(after.body["assigned_hub"], HUB);
    assert_eq!(after.body["device_id"], DEVICE);
    assert_eq!(after.body["substatus"], "initialAssignment");
    assert_eq!(after.body["cached"], false);
    assert_eq!(
        after.body["assigned_hub"],
        result["registrationState"]["assignedHub"]
    );
    let again = status(api, "acme").await;
    assert_eq!(again.body["cached"], true);
    // QA may read it too; another tenant may not.
    let qa = api
        .get(
            &format!("/v1/devices/{DEVICE}/registration"),
            Some(&api.token("acme", &[fieldlink_provisioning_api::auth::Role::Qa])),
        )
        .await;
    assert_eq!(qa.status, StatusCode::OK);
    status(api, "globex")
        .await
        .assert_error(StatusCode::FORBIDDEN, "forbidden");
    emulator.shutdown().await;
}

/// DPS 5xx → 503 `dps_unavailable` with Retry-After; refused credentials → 502; no
/// credentials → 502 `dps_credentials_missing`.
async fn dps_failures_are_typed(api: &TestApi) {
    let emulator = emulator().await;
    add_emulated_instance(api, &emulator, Some(GROUP_KEY)).await; // the secondary key
    api.allowlist("acme", &[DEVICE.to_owned()]).await;
    api.assign("acme", DEVICE).await;
    assert_eq!(status(api, "acme").await.status, StatusCode::OK);
    let knobs = Knobs {
        service_error_rate: 1.0,
        error_status: 503,
        ..Knobs::default()
    };
    emulator.control().set_knobs(DPS, knobs).expect("knobs");
    tokio::time::sleep(Duration::from_millis(400)).await;
    let down = status(api, "acme").await;
    down.assert_error(StatusCode::SERVICE_UNAVAILABLE, "dps_unavailable");
    assert_eq!(down.body["retryable"], true);
    emulator
        .control()
        .set_knobs(DPS, Knobs::default())
        .expect("knobs");
    // Wrong key: DPS answers 401, the API reports its credentials were refused.
    let operator = api.operator();
    api.post(
        &format!("/v1/admin/dps-instances/{DPS}/drain"),
        Some(&operator),
        json!({}),
    )
    .await;
    let wrong = json!({
        "name": "dps-status-wrong",
        "id_scope": "0ne00000BAD",
        "service_endpoint": format!("{}/dps/{DPS}", emulator.http_base_url().expect("http")),
        "region": "weu",
        "service_credentials": {"policy_name": POLICY, "key": "d3Jvbmcta2V5",
            "resource_uri": format!("{DPS}.azure-devices-provisioning.net")},
    });
    api.add_instance(wrong).await;
    let other = "sensor-status-0002";
    api.allowlist("acme", &[other.to_owned()]).await;
    assert_eq!(
        api.assign("acme", other).await.body["dps_instance"],
        "dps-status-wrong"
    );
    let refused = api
        .get(
            &format!("/v1/devices/{other}/registration"),
            Some(&api.installer("acme")),
        )
        .await;
    refused.assert_error(StatusCode::BAD_GATEWAY, "dps_credentials_rejected");
    // No credentials at all.
    api.post(
        "/v1/admin/dps-instances/dps-status-wrong/drain",
        Some(&operator),
        json!({}),
    )
    .await;
    api.add_instance(json!({
        "name": "dps-status-bare", "id_scope": "0ne00000BA2", "region": "weu",
        "service_endpoint": "https://dps-status-bare.azure-devices-provisioning.net",
    }))
    .await;
    let third = "sensor-status-0003";
    api.allowlist("acme", &[third.to_owned()]).await;
    api.assign("acme", third).await;
    api.get(
        &format!("/v1/devices/{third}/registration"),
        Some(&api.installer("acme")),
    )
    .await
    .assert_error(StatusCode::BAD_GATEWAY, "dps_credentials_missing");
    emulator.shutdown().await;
}

/// A stand-in for DPS's service API that always answers 429 with `Retry-After: 30`, counting
/// the requests it gets.
async fn throttling_dps() -> (String, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let app = Router::new().route(
        "/registrations/{id}",
        get(move || {
            let counter = counter.clone();
            async move {
                counter.fetch_add(1, Ordering::SeqCst);
                (
                    AxumStatus::TOO_MANY_REQUESTS,
                    [("retry-after", "30")],
                    axum::Json(json!({
                        "errorCode": 429001,
                        "trackingId": "stand-in",
                        "message": "Operations are being throttled for this tenant.",
                        "timestampUtc": "2024-01-01T00:00:00.0000000Z"
                    })),
                )
                    .into_response()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (base, hits)
}

/// DPS's 429 is surfaced as 503 `dps_throttled` with DPS's Retry-After, and later callers are
/// answered from the remembered throttle without another DPS call.
async fn dps_throttling_becomes_503_with_retry_after(api: &TestApi) {
    let (base, hits) = throttling_dps().await;
    api.add_instance(json!({
        "name": "dps-throttled", "id_scope": "0ne00000777", "region": "weu",
        "service_endpoint": base,
        "service_credentials": {"policy_name": POLICY, "key": POLICY_KEY},
    }))
    .await;
    let ids = support::device_ids("throttled", 2);
    api.allowlist("acme", &ids).await;
    for id in &ids {
        api.assign("acme", id).await;
    }
    for id in &ids {
        let reply = api
            .get(
                &format!("/v1/devices/{id}/registration"),
                Some(&api.installer("acme")),
            )
            .await;
        reply.assert_error(StatusCode::SERVICE_UNAVAILABLE, "dps_throttled");
        let retry_after: u64 = reply.headers["retry-after"]
            .to_str()
            .expect("ascii")
            .parse()
            .expect("seconds");
        assert!((25..=31).contains(&retry_after), "{retry_after}");
    }
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}

on_both_backends_with!(
    options;
    reports_the_emulators_registration_state,
    dps_failures_are_typed,
    dps_throttling_becomes_503_with_retry_after,
);
