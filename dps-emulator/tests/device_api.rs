//! Device API over real HTTP on loopback: exact JSON shapes, status codes and headers.

mod common;

use common::*;
use fieldlink_dps_emulator::{ProvisioningStatus, RegistrationStatus};
use reqwest::Method;
use serde_json::{Value, json};

#[tokio::test]
async fn register_answers_202_with_operation_retry_after_and_location() {
    let sandbox = Sandbox::start(vec![instance("dps-shapes")]).await;
    let scope = sandbox.scope("dps-shapes");
    let token = device_token(&scope, INDIVIDUAL_DEVICE, DEVICE_PRIMARY);
    let response = sandbox.register(&scope, INDIVIDUAL_DEVICE, &token).await;
    assert_eq!(response.status(), 202);
    assert_eq!(response.headers()["retry-after"], "1");
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let body: Value = response.json().await.unwrap();
    let operation_id = body["operationId"].as_str().unwrap();
    assert_eq!(
        location,
        format!("/{scope}/registrations/{INDIVIDUAL_DEVICE}/operations/{operation_id}?{API}")
    );
    assert!(operation_id.starts_with("5."), "{operation_id}");
    insta::assert_json_snapshot!("register_202", redact(body));
}

#[tokio::test]
async fn operation_becomes_assigned_with_the_full_registration_state() {
    let sandbox = Sandbox::start(vec![instance("dps-assigned")]).await;
    let scope = sandbox.scope("dps-assigned");
    let body = sandbox
        .register_and_poll(&scope, INDIVIDUAL_DEVICE, DEVICE_PRIMARY)
        .await;
    let hub = body["registrationState"]["assignedHub"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(hub == HUB_A || hub == HUB_B);
    let mut shown = redact(body);
    shown["registrationState"]["assignedHub"] = json!("[hub]");
    insta::assert_json_snapshot!("operation_assigned_individual", shown);

    // The status lookup returns the same registration; the service view agrees.
    let token = device_token(&scope, INDIVIDUAL_DEVICE, DEVICE_PRIMARY);
    let lookup = sandbox
        .client
        .post(format!(
            "{}/{scope}/registrations/{INDIVIDUAL_DEVICE}?{API}",
            sandbox.base
        ))
        .header("Authorization", &token)
        .json(&json!({ "registrationId": INDIVIDUAL_DEVICE }))
        .send()
        .await
        .unwrap();
    assert_eq!(lookup.status(), 200);
    let lookup: Value = lookup.json().await.unwrap();
    assert_eq!(lookup["status"], "assigned");
    assert_eq!(lookup["assignedHub"], hub.as_str());
    assert_eq!(lookup["deviceId"], INDIVIDUAL_DEVICE);
    let state = sandbox
        .emulator
        .control()
        .registration_state("dps-assigned", INDIVIDUAL_DEVICE);
    let state = state.unwrap();
    assert_eq!(state.status, RegistrationStatus::Assigned);
    assert_eq!(state.assigned_hub.as_deref(), Some(hub.as_str()));
}

#[tokio::test]
async fn group_device_registers_with_derived_key_and_reports_its_group() {
    let sandbox = Sandbox::start(vec![instance("dps-group")]).await;
    let scope = sandbox.scope("dps-group");
    let device = "group-member-7";
    let body = sandbox
        .register_and_poll(&scope, device, &group_device_key(device))
        .await;
    assert_eq!(body["status"], "assigned");
    assert_eq!(
        body["registrationState"]["symmetricKey"]["enrollmentGroupId"],
        GROUP_ID
    );
    assert_eq!(body["registrationState"]["deviceId"], device);
    assert_eq!(body["registrationState"]["substatus"], "initialAssignment");

    // The group key itself is not a device key.
    let token = device_token(&scope, device, GROUP_PRIMARY);
    let response = sandbox.register(&scope, device, &token).await;
    assert_dps_error(response, 401, 401_002).await;

    // A key derived from the secondary group key works too.
    let secondary =
        fieldlink_protocol::sas::derive_group_device_key(GROUP_SECONDARY, "group-member-8")
            .unwrap();
    let body = sandbox
        .register_and_poll(&scope, "group-member-8", &secondary)
        .await;
    assert_eq!(body["status"], "assigned");
}

#[tokio::test]
async fn poll_is_202_while_assigning() {
    let mut config = instance("dps-slow");
    config.knobs.assignment_delay_ms = 60_000;
    let sandbox = Sandbox::start(vec![config]).await;
    let scope = sandbox.scope("dps-slow");
    let token = device_token(&scope, INDIVIDUAL_DEVICE, DEVICE_PRIMARY);
    let operation_id = sandbox
        .start_registration(&scope, INDIVIDUAL_DEVICE, &token)
        .await;
    let response = sandbox
        .poll(&scope, INDIVIDUAL_DEVICE, &operation_id, &token)
        .await;
    assert_eq!(response.status(), 202);
    assert_eq!(response.headers()["retry-after"], "1");
    let body: Value = response.json().await.unwrap();
    insta::assert_json_snapshot!("operation_assigning", redact(body));
    let state = sandbox
        .emulator
        .control()
        .registration_state("dps-slow", INDIVIDUAL_DEVICE);
    assert_eq!(state.unwrap().status, RegistrationStatus::Assigning);
}

#[tokio::test]
async fn request_errors_use_dps_error_bodies() {
    let sandbox = Sandbox::start(vec![instance("dps-errors")]).await;
    let scope = sandbox.scope("dps-errors");
    let token = device_token(&scope, INDIVIDUAL_DEVICE, DEVICE_PRIMARY);
    // A device-API request for `{scope}/registrations/{path}` with the device's SAS.
    let device = |method: Method, path: &str| {
        sandbox
            .client
            .request(
                method,
                format!("{}/{scope}/registrations/{path}", sandbox.base),
            )
            .header("Authorization", &token)
    };
    let register = format!("{INDIVIDUAL_DEVICE}/register?{API}");

    // No api-version.
    let response = device(Method::PUT, &format!("{INDIVIDUAL_DEVICE}/register"))
        .send()
        .await
        .unwrap();
    let body = assert_dps_error(response, 400, 400_001).await;
    insta::assert_json_snapshot!("error_missing_api_version", redact(body));

    // Registration ID with upper case and a bad last character.
    for bad in ["Sensor-1", "sensor_", "a%2Fb"] {
        let response = device(Method::PUT, &format!("{bad}/register?{API}"))
            .send()
            .await
            .unwrap();
        assert_dps_error(response, 400, 400_002).await;
    }

    // Body registrationId differs from the path; body is not JSON.
    let mismatched =
        device(Method::PUT, &register).json(&json!({ "registrationId": "someone-else" }));
    let not_json = device(Method::PUT, &register).body("{not json");
    for request in [mismatched, not_json] {
        assert_dps_error(request.send().await.unwrap(), 400, 400_003).await;
    }

    // Unknown ID scope.
    let response = sandbox
        .client
        .put(format!(
            "{}/0ne00000000/registrations/{register}",
            sandbox.base
        ))
        .header("Authorization", &token)
        .send()
        .await
        .unwrap();
    assert_dps_error(response, 404, 404_001).await;

    // Unknown operation, and status lookup before any registration.
    let response = sandbox
        .poll(&scope, INDIVIDUAL_DEVICE, "5.0.nope", &token)
        .await;
    assert_dps_error(response, 404, 404_002).await;
    let response = device(Method::POST, &format!("{INDIVIDUAL_DEVICE}?{API}"))
        .send()
        .await
        .unwrap();
    assert_dps_error(response, 404, 404_002).await;
}

#[tokio::test]
async fn an_operation_belongs_to_its_registration() {
    let sandbox = Sandbox::start(vec![instance("dps-ownership")]).await;
    let scope = sandbox.scope("dps-ownership");
    let token = device_token(&scope, INDIVIDUAL_DEVICE, DEVICE_PRIMARY);
    let operation_id = sandbox
        .start_registration(&scope, INDIVIDUAL_DEVICE, &token)
        .await;
    let other = "group-member-1";
    let other_token = device_token(&scope, other, &group_device_key(other));
    let response = sandbox
        .poll(&scope, other, &operation_id, &other_token)
        .await;
    assert_dps_error(response, 404, 404_002).await;
}

#[tokio::test]
async fn disabled_enrollment_ends_disabled_and_no_hub_ends_failed() {
    let mut config = instance("dps-outcomes");
    config.individual_enrollments[0].provisioning_status = ProvisioningStatus::Disabled;
    let sandbox = Sandbox::start(vec![config]).await;
    let scope = sandbox.scope("dps-outcomes");
    let body = sandbox
        .register_and_poll(&scope, INDIVIDUAL_DEVICE, DEVICE_PRIMARY)
        .await;
    assert_eq!(body["status"], "disabled");
    assert_eq!(body["registrationState"]["status"], "disabled");
    assert!(body["registrationState"].get("assignedHub").is_none());

    sandbox
        .emulator
        .control()
        .set_linked_hubs("dps-outcomes", Vec::new())
        .unwrap();
    let device = "orphan-1";
    let body = sandbox
        .register_and_poll(&scope, device, &group_device_key(device))
        .await;
    let mut shown = redact(body);
    shown["registrationState"]["errorMessage"] = json!("[message]");
    insta::assert_json_snapshot!("operation_failed_no_hub", shown);
}

#[tokio::test]
async fn re_registration_keeps_creation_time_and_hub() {
    let sandbox = Sandbox::start(vec![instance("dps-again")]).await;
    let scope = sandbox.scope("dps-again");
    let device = "repeat-1";
    let key = group_device_key(device);
    let first = sandbox.register_and_poll(&scope, device, &key).await;
    let second = sandbox.register_and_poll(&scope, device, &key).await;
    assert_ne!(first["operationId"], second["operationId"]);
    let (a, b) = (&first["registrationState"], &second["registrationState"]);
    assert_eq!(a["createdDateTimeUtc"], b["createdDateTimeUtc"]);
    assert_eq!(a["assignedHub"], b["assignedHub"]);
    assert_eq!(b["substatus"], "initialAssignment");
    assert_ne!(a["etag"], b["etag"]);
    assert_eq!(
        sandbox
            .emulator
            .control()
            .utilisation("dps-again")
            .unwrap()
            .registrations,
        1
    );
}
