//! SAS authentication of devices and services: what is accepted and what is refused.
#![allow(clippy::unwrap_used)] // helpers shared by the tests below

mod common;

use common::*;
use fieldlink_protocol::sas;
use serde_json::Value;

async fn register_with(
    sandbox: &Sandbox,
    scope: &str,
    device: &str,
    token: Option<&str>,
) -> reqwest::Response {
    let mut request = sandbox
        .client
        .put(format!(
            "{}/{scope}/registrations/{device}/register?{API}",
            sandbox.base
        ))
        .json(&serde_json::json!({ "registrationId": device }));
    if let Some(token) = token {
        request = request.header("Authorization", token);
    }
    request.send().await.unwrap()
}

fn raw_signature(string_to_sign: &str, key_b64: &str) -> String {
    use hmac::Mac;
    let key = data_encoding::BASE64.decode(key_b64.as_bytes()).unwrap();
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
    mac.update(string_to_sign.as_bytes());
    data_encoding::BASE64.encode(&mac.finalize().into_bytes())
}

async fn reason(response: reqwest::Response) -> String {
    let body = assert_dps_error(response, 401, 401_002).await;
    assert_eq!(body["message"], "Unauthorized");
    body["info"]["reason"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn device_tokens_are_accepted_with_either_enrollment_key() {
    let sandbox = Sandbox::start(vec![instance("dps-sas-ok")]).await;
    let scope = sandbox.scope("dps-sas-ok");
    for key in [DEVICE_PRIMARY, DEVICE_SECONDARY] {
        let token = device_token(&scope, INDIVIDUAL_DEVICE, key);
        assert_eq!(
            register_with(&sandbox, &scope, INDIVIDUAL_DEVICE, Some(&token))
                .await
                .status(),
            202
        );
    }
    // The Node.js SDK's form: sr not percent-encoded and signed as is, skn before se.
    let expiry = now_unix() + 600;
    let resource = format!("{scope}/registrations/{INDIVIDUAL_DEVICE}");
    let token = format!(
        "SharedAccessSignature sr={resource}&sig={}&skn=registration&se={expiry}",
        sas::percent_encode(&raw_signature(
            &format!("{resource}\n{expiry}"),
            DEVICE_PRIMARY
        ))
    );
    assert_eq!(
        register_with(&sandbox, &scope, INDIVIDUAL_DEVICE, Some(&token))
            .await
            .status(),
        202
    );
}

#[tokio::test]
async fn device_tokens_are_refused_for_each_defect() {
    let sandbox = Sandbox::start(vec![instance("dps-sas-bad")]).await;
    let scope = sandbox.scope("dps-sas-bad");
    let device = INDIVIDUAL_DEVICE;
    let resource = sas::device_resource(&scope, device);

    // Missing header.
    let why = reason(register_with(&sandbox, &scope, device, None).await).await;
    assert!(why.contains("missing Authorization"), "{why}");

    // Not a SAS token.
    let why = reason(register_with(&sandbox, &scope, device, Some("Bearer abc")).await).await;
    assert!(why.contains("malformed"), "{why}");

    // Bad signature: signed with a key the enrollment does not have.
    let token = device_token(&scope, device, GROUP_PRIMARY);
    let why = reason(register_with(&sandbox, &scope, device, Some(&token)).await).await;
    assert!(why.contains("signature"), "{why}");

    // Tampered signature bytes.
    let good = device_token(&scope, device, DEVICE_PRIMARY);
    let tampered = good.replacen("sig=", "sig=AAAA", 1);
    let why = reason(register_with(&sandbox, &scope, device, Some(&tampered)).await).await;
    assert!(
        why.contains("malformed") || why.contains("signature"),
        "{why}"
    );

    // Expired.
    let expired = sas::device_sas_token(&scope, device, DEVICE_PRIMARY, now_unix() - 1).unwrap();
    let why = reason(register_with(&sandbox, &scope, device, Some(&expired)).await).await;
    assert!(why.contains("expired"), "{why}");

    // Wrong resource: a valid token for another device, and for another ID scope.
    let other =
        sas::device_sas_token(&scope, "sensor-other", DEVICE_PRIMARY, now_unix() + 60).unwrap();
    let why = reason(register_with(&sandbox, &scope, device, Some(&other)).await).await;
    assert!(why.contains("resource"), "{why}");
    let other_scope =
        sas::device_sas_token("0ne00000001", device, DEVICE_PRIMARY, now_unix() + 60).unwrap();
    let why = reason(register_with(&sandbox, &scope, device, Some(&other_scope)).await).await;
    assert!(why.contains("resource"), "{why}");

    // Wrong key name, and none at all.
    let wrong_name =
        sas::sas_token(&resource, Some("device"), DEVICE_PRIMARY, now_unix() + 60).unwrap();
    let why = reason(register_with(&sandbox, &scope, device, Some(&wrong_name)).await).await;
    assert!(why.contains("skn"), "{why}");
    let no_name = sas::sas_token(&resource, None, DEVICE_PRIMARY, now_unix() + 60).unwrap();
    let why = reason(register_with(&sandbox, &scope, device, Some(&no_name)).await).await;
    assert!(why.contains("skn"), "{why}");

    // A device with neither an individual enrollment nor a group-derived key.
    let stranger = "stranger-1";
    let token = device_token(&scope, stranger, DEVICE_PRIMARY);
    let why = reason(register_with(&sandbox, &scope, stranger, Some(&token)).await).await;
    assert!(why.contains("no enrollment"), "{why}");

    // Polls need the token too.
    let response = sandbox
        .client
        .get(format!(
            "{}/{scope}/registrations/{device}/operations/x?{API}",
            sandbox.base
        ))
        .send()
        .await
        .unwrap();
    assert_dps_error(response, 401, 401_002).await;

    let unauthorized = sandbox.emulator.control().metrics_text();
    assert!(unauthorized.contains("dps_emulator_unauthorized_total{instance=\"dps-sas-bad\"} 11"));
}

#[tokio::test]
async fn group_key_derivation_matches_the_emulator() {
    let sandbox = Sandbox::start(vec![instance("dps-derive")]).await;
    let scope = sandbox.scope("dps-derive");
    // Known answer computed independently (Python hmac/hashlib) for this group key and ID.
    assert_eq!(
        sas::derive_group_device_key(GROUP_PRIMARY, "group-member-1").unwrap(),
        "NDfC5ofIS2966z9RBfEu1XL7Q19q7WH/RABdtT5NWjk="
    );
    let token = device_token(
        &scope,
        "group-member-1",
        "NDfC5ofIS2966z9RBfEu1XL7Q19q7WH/RABdtT5NWjk=",
    );
    assert_eq!(
        register_with(&sandbox, &scope, "group-member-1", Some(&token))
            .await
            .status(),
        202
    );
    // The key of one member does not work for another.
    let token = device_token(
        &scope,
        "group-member-2",
        "NDfC5ofIS2966z9RBfEu1XL7Q19q7WH/RABdtT5NWjk=",
    );
    reason(register_with(&sandbox, &scope, "group-member-2", Some(&token)).await).await;
}

#[tokio::test]
async fn service_api_requires_a_policy_token_for_the_instance_host() {
    let sandbox = Sandbox::start(vec![instance("dps-svc-a"), instance("dps-svc-b")]).await;
    let scope = sandbox.scope("dps-svc-a");
    sandbox
        .register_and_poll(&scope, INDIVIDUAL_DEVICE, DEVICE_PRIMARY)
        .await;
    let url = format!(
        "{}/dps/dps-svc-a/registrations/{INDIVIDUAL_DEVICE}?{API}",
        sandbox.base
    );
    let get = |token: Option<String>| {
        let mut request = sandbox.client.get(url.clone());
        if let Some(token) = token {
            request = request.header("Authorization", token);
        }
        request.send()
    };

    let response = get(Some(sandbox.service_token("dps-svc-a"))).await.unwrap();
    assert_eq!(response.status(), 200);
    let etag = response.headers()["etag"].to_str().unwrap().to_owned();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["etag"], etag.as_str());
    let mut shown = redact(body);
    shown["assignedHub"] = serde_json::json!("[hub]");
    insta::assert_json_snapshot!("service_registration_state", shown);

    let host_a = "dps-svc-a.azure-devices-provisioning.net";
    let expiry = now_unix() + 60;
    // Secondary key works.
    let secondary = sas::service_sas_token(host_a, POLICY, GROUP_SECONDARY, expiry).unwrap();
    assert_eq!(get(Some(secondary)).await.unwrap().status(), 200);
    // Missing, other instance's host, unknown policy, wrong key, expired.
    assert_dps_error(get(None).await.unwrap(), 401, 401_002).await;
    let wrong_host = sandbox.service_token("dps-svc-b");
    assert_dps_error(get(Some(wrong_host)).await.unwrap(), 401, 401_002).await;
    let unknown_policy = sas::service_sas_token(host_a, "reader", POLICY_KEY, expiry).unwrap();
    assert_dps_error(get(Some(unknown_policy)).await.unwrap(), 401, 401_002).await;
    let wrong_key = sas::service_sas_token(host_a, POLICY, DEVICE_PRIMARY, expiry).unwrap();
    assert_dps_error(get(Some(wrong_key)).await.unwrap(), 401, 401_002).await;
    let expired = sas::service_sas_token(host_a, POLICY, POLICY_KEY, now_unix() - 5).unwrap();
    assert_dps_error(get(Some(expired)).await.unwrap(), 401, 401_002).await;
    // A device token is not a service token.
    let device = device_token(&scope, INDIVIDUAL_DEVICE, DEVICE_PRIMARY);
    assert_dps_error(get(Some(device)).await.unwrap(), 401, 401_002).await;
}
