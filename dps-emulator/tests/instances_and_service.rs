//! Several instances behind one endpoint, the service and admin APIs, and `/metrics`.

mod common;

use common::*;
use fieldlink_dps_emulator::{AllocationPolicy, InstanceConfig};
use reqwest::Method;
use serde_json::{Value, json};
use std::collections::HashMap;

#[tokio::test]
async fn the_global_endpoint_routes_by_id_scope() {
    let sandbox = Sandbox::start(vec![
        instance("dps-route-1"),
        instance("dps-route-2"),
        instance("dps-route-3"),
    ])
    .await;
    let control = sandbox.emulator.control();
    for (n, name) in ["dps-route-1", "dps-route-2", "dps-route-3"]
        .iter()
        .enumerate()
    {
        let scope = sandbox.scope(name);
        let device = format!("router-{n}");
        let body = sandbox
            .register_and_poll(&scope, &device, &group_device_key(&device))
            .await;
        assert_eq!(body["status"], "assigned");
        let (found_in, _) = control.find_registration(&device).unwrap();
        assert_eq!(&found_in, name);
        // The same token is refused by another instance: its ID scope is in the resource.
        let other = sandbox.scope(if *name == "dps-route-1" {
            "dps-route-2"
        } else {
            "dps-route-1"
        });
        let token = device_token(&scope, &device, &group_device_key(&device));
        let response = sandbox.register(&other, &device, &token).await;
        assert_dps_error(response, 401, 401_002).await;
    }
    // ID scopes are matched case-insensitively.
    let scope = sandbox.scope("dps-route-1").to_ascii_lowercase();
    let token = device_token(&scope, "lower-1", &group_device_key("lower-1"));
    assert_eq!(
        sandbox.register(&scope, "lower-1", &token).await.status(),
        202
    );
}

#[tokio::test]
async fn allocation_spreads_over_linked_hubs_per_policy() {
    let mut hashed = instance("dps-hashed");
    hashed.linked_hubs[0].allocation_weight = 3;
    let mut even = instance("dps-even");
    even.allocation_policy = AllocationPolicy::EvenlyWeighted;
    even.knobs.seed = Some(9);
    even.limits.registrations_per_minute = None;
    hashed.limits.registrations_per_minute = None;
    let sandbox = Sandbox::start(vec![hashed, even]).await;
    for name in ["dps-hashed", "dps-even"] {
        let scope = sandbox.scope(name);
        let mut per_hub: HashMap<String, usize> = HashMap::new();
        for i in 0..200 {
            let device = format!("spread-{i}");
            let body = sandbox
                .register_and_poll(&scope, &device, &group_device_key(&device))
                .await;
            let hub = body["registrationState"]["assignedHub"]
                .as_str()
                .unwrap()
                .to_owned();
            *per_hub.entry(hub).or_default() += 1;
        }
        let a = per_hub.get(HUB_A).copied().unwrap_or(0);
        let b = per_hub.get(HUB_B).copied().unwrap_or(0);
        assert_eq!(a + b, 200, "{name}: {per_hub:?}");
        if name == "dps-hashed" {
            assert!(
                (120..=180).contains(&a),
                "weight 3:1 gives about 150: {per_hub:?}"
            );
        } else {
            assert!((70..=130).contains(&a), "even gives about 100: {per_hub:?}");
        }
    }
}

#[tokio::test]
async fn service_api_manages_enrollments_and_reads_states() {
    let sandbox = Sandbox::start(vec![instance("dps-svc")]).await;
    let service = |method: Method, path: &str| sandbox.service(method, "dps-svc", path);

    // Create an individual enrollment pinned to hub B; keys are generated.
    let response = service(Method::PUT, "enrollments/pinned-1")
        .json(&json!({
            "attestation": { "type": "symmetricKey" },
            "iotHubs": [HUB_B],
            "allocationPolicy": "static",
            "deviceId": "pinned-device"
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let etag = response.headers()["etag"].to_str().unwrap().to_owned();
    let enrollment: Value = response.json().await.unwrap();
    let key = enrollment["attestation"]["symmetricKey"]["primaryKey"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        data_encoding::BASE64.decode(key.as_bytes()).unwrap().len(),
        64
    );
    let mut shown = redact(enrollment.clone());
    shown["attestation"]["symmetricKey"] = json!("[keys]");
    insta::assert_json_snapshot!("service_enrollment_put", shown);

    // A stale If-Match is refused; the current one is accepted.
    for (if_match, expected) in [("\"stale\"", 412), (etag.as_str(), 200)] {
        let response = service(Method::PUT, "enrollments/pinned-1")
            .header("If-Match", if_match)
            .json(&enrollment)
            .send()
            .await
            .unwrap();
        if expected == 412 {
            assert_dps_error(response, 412, 412_001).await;
        } else {
            assert_eq!(response.status(), expected);
            assert!(response.headers().contains_key("etag"));
        }
    }

    // The device registers to the pinned hub with the enrollment's device ID.
    let scope = sandbox.scope("dps-svc");
    let body = sandbox.register_and_poll(&scope, "pinned-1", &key).await;
    assert_eq!(body["registrationState"]["assignedHub"], HUB_B);
    assert_eq!(body["registrationState"]["deviceId"], "pinned-device");

    // GET enrollment includes the registration state; GET registration state is 200.
    let enrollment: Value = service(Method::GET, "enrollments/pinned-1")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(enrollment["registrationState"]["status"], "assigned");

    // Path/body mismatch and unsupported attestation are 400.
    let bad_bodies = [
        (
            "enrollments/pinned-2",
            json!({ "registrationId": "other", "attestation": { "type": "symmetricKey" } }),
        ),
        (
            "enrollmentGroups/x509-group",
            json!({ "attestation": { "type": "x509" } }),
        ),
    ];
    for (path, body) in bad_bodies {
        let response = service(Method::PUT, path).json(&body).send().await.unwrap();
        assert_dps_error(response, 400, 400_003).await;
    }

    // Groups: create, get, delete; deleting twice is 404.
    let response = service(Method::PUT, "enrollmentGroups/line-2")
        .json(&json!({ "attestation": { "type": "symmetricKey", "symmetricKey": { "primaryKey": GROUP_SECONDARY, "secondaryKey": GROUP_PRIMARY } } }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let group: Value = response.json().await.unwrap();
    assert_eq!(group["enrollmentGroupId"], "line-2");
    let response = service(Method::GET, "enrollmentGroups/line-2")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["etag"].to_str().unwrap(),
        group["etag"].as_str().unwrap()
    );
    for expected in [204, 404] {
        let response = service(Method::DELETE, "enrollmentGroups/line-2")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), expected);
    }

    // Delete the registration state; then it is 404.
    for expected in [204, 404] {
        let response = service(Method::DELETE, "registrations/pinned-1")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), expected);
    }
    let response = service(Method::GET, "registrations/pinned-1")
        .send()
        .await
        .unwrap();
    assert_dps_error(response, 404, 404_002).await;

    // Unknown instance name.
    let response = sandbox
        .client
        .get(format!(
            "{}/dps/dps-nowhere/registrations/pinned-1?{API}",
            sandbox.base
        ))
        .header("Authorization", sandbox.service_token("dps-svc"))
        .send()
        .await
        .unwrap();
    assert_dps_error(response, 404, 404_001).await;

    // Each resource kind and verb is its own metrics operation.
    let metrics = sandbox.emulator.control().metrics_text();
    for (operation, status, count) in [
        ("enrollment_put", 200, 2),
        ("enrollment_put", 412, 1),
        ("enrollment_put", 400, 1),
        ("enrollment_get", 200, 1),
        ("enrollment_group_put", 200, 1),
        ("enrollment_group_put", 400, 1),
        ("enrollment_group_get", 200, 1),
        ("enrollment_group_delete", 204, 1),
        ("enrollment_group_delete", 404, 1),
        ("registration_state_delete", 204, 1),
        ("registration_state_delete", 404, 1),
        ("registration_state_get", 404, 1),
    ] {
        let line = format!(
            "dps_emulator_http_requests_total{{instance=\"dps-svc\",operation=\"{operation}\",status=\"{status}\"}} {count}"
        );
        assert!(
            metrics.lines().any(|l| l == line),
            "missing {line:?} in\n{metrics}"
        );
    }
}

#[tokio::test]
async fn service_api_is_reachable_by_azure_host_name() {
    let sandbox = Sandbox::start(vec![instance("dps-host")]).await;
    let scope = sandbox.scope("dps-host");
    sandbox
        .register_and_poll(&scope, INDIVIDUAL_DEVICE, DEVICE_PRIMARY)
        .await;
    let response = sandbox
        .client
        .get(format!(
            "{}/registrations/{INDIVIDUAL_DEVICE}?{API}",
            sandbox.base
        ))
        .header("Host", "dps-host.azure-devices-provisioning.net")
        .header("Authorization", sandbox.service_token("dps-host"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["registrationId"], INDIVIDUAL_DEVICE);
}

#[tokio::test]
async fn admin_api_configures_instances() {
    let sandbox = Sandbox::start(Vec::new()).await;
    let admin = format!("{}/emulator/instances", sandbox.base);
    let config = InstanceConfig::new("dps-admin", &[HUB_A]).with_id_scope("0ne0000AD01");
    let response = sandbox
        .client
        .post(&admin)
        .json(&config)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let created: Value = response.json().await.unwrap();
    assert_eq!(created["idScope"], "0ne0000AD01");
    assert_eq!(
        created["serviceHostName"],
        "dps-admin.azure-devices-provisioning.net"
    );
    assert_eq!(created["utilisation"]["maxRegistrations"], 1_000_000);
    assert_eq!(created["limits"]["registrationsPerMinute"], 1000);
    assert_eq!(
        created["sharedAccessPolicies"][0]["keyName"],
        "provisioningserviceowner"
    );

    let response = sandbox
        .client
        .post(&admin)
        .json(&config)
        .send()
        .await
        .unwrap();
    assert_dps_error(response, 409, 409_001).await;
    let bad = json!({ "name": "Bad Name" });
    assert_dps_error(
        sandbox.client.post(&admin).json(&bad).send().await.unwrap(),
        400,
        400_003,
    )
    .await;

    let response = sandbox
        .client
        .put(format!("{admin}/dps-admin/linkedHubs"))
        .json(&json!([{ "name": HUB_B, "allocationWeight": 2 }]))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let updated: Value = response.json().await.unwrap();
    assert_eq!(
        updated["linkedHubs"],
        json!([{ "name": HUB_B, "allocationWeight": 2, "applyAllocationPolicy": true }])
    );

    let response = sandbox
        .client
        .put(format!("{admin}/dps-admin/knobs"))
        .json(&json!({ "assignmentDelayMs": 1500, "deviceErrorRate": 0.1 }))
        .send()
        .await
        .unwrap();
    let updated: Value = response.json().await.unwrap();
    assert_eq!(updated["knobs"]["assignmentDelayMs"], 1500);
    let response = sandbox
        .client
        .put(format!("{admin}/dps-admin/limits"))
        .json(&json!({ "registrationsPerMinute": null }))
        .send()
        .await
        .unwrap();
    let updated: Value = response.json().await.unwrap();
    assert_eq!(updated["limits"]["registrationsPerMinute"], Value::Null);

    let listed: Value = sandbox
        .client
        .get(&admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(
        sandbox
            .client
            .delete(format!("{admin}/dps-admin"))
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    let missing = sandbox
        .client
        .get(format!("{admin}/dps-admin"))
        .send()
        .await
        .unwrap();
    assert_dps_error(missing, 404, 404_001).await;
}

#[tokio::test]
async fn metrics_are_prometheus_text() {
    let sandbox = Sandbox::start(vec![instance("dps-metrics")]).await;
    let scope = sandbox.scope("dps-metrics");
    sandbox
        .register_and_poll(&scope, INDIVIDUAL_DEVICE, DEVICE_PRIMARY)
        .await;
    let response = sandbox
        .client
        .get(format!("{}/metrics", sandbox.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let text = response.text().await.unwrap();
    for line in [
        "dps_emulator_instances 1",
        "dps_emulator_http_requests_total{instance=\"dps-metrics\",operation=\"register\",status=\"202\"} 1",
        "dps_emulator_http_requests_total{instance=\"dps-metrics\",operation=\"operation_status\",status=\"200\"} 1",
        "dps_emulator_registrations_requested_total{instance=\"dps-metrics\"} 1",
        "dps_emulator_registrations_completed_total{instance=\"dps-metrics\",status=\"assigned\"} 1",
        "dps_emulator_registrations{instance=\"dps-metrics\"} 1",
        "dps_emulator_registrations_capacity{instance=\"dps-metrics\"} 1000000",
        "dps_emulator_registrations_last_minute{instance=\"dps-metrics\"} 1",
        "dps_emulator_registrations_per_minute_limit{instance=\"dps-metrics\"} 1000",
        "dps_emulator_operation_polls_total{instance=\"dps-metrics\"} 1",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in\n{text}"
        );
    }
    // Every sample line belongs to a declared family.
    let families: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .collect();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let name = line.split(['{', ' ']).next().unwrap();
        assert!(families.contains(&name), "{line}");
        let value = line.rsplit(' ').next().unwrap();
        assert!(value.parse::<f64>().is_ok(), "{line}");
    }
}
