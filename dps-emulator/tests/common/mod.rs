//! Shared helpers for the emulator's integration tests: a running emulator on loopback, a
//! reqwest client, SAS tokens, and JSON redaction for snapshots.
#![allow(dead_code, clippy::unwrap_used)]

use fieldlink_dps_emulator::{
    DpsEmulator, EmulatorConfig, EnrollmentGroup, IndividualEnrollment, InstanceConfig,
    RunningEmulator, SharedAccessPolicy,
};
use fieldlink_protocol::sas;
use serde_json::Value;

pub const HUB_A: &str = "hub-a.azure-devices.net";
pub const HUB_B: &str = "hub-b.azure-devices.net";
pub const DEVICE_PRIMARY: &str = "ZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXp7fH1+f4CBgoM=";
pub const DEVICE_SECONDARY: &str = "yMnKy8zNzs/Q0dLT1NXW19jZ2tvc3d7f4OHi4+Tl5uc=";
pub const GROUP_PRIMARY: &str = "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=";
pub const GROUP_SECONDARY: &str = "MjM0NTY3ODk6Ozw9Pj9AQUJDREVGR0hJSktMTU5PUFE=";
pub const POLICY: &str = "provisioningserviceowner";
pub const POLICY_KEY: &str = "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=";
pub const API: &str = "api-version=2021-10-01";
pub const INDIVIDUAL_DEVICE: &str = "sensor-individual-1";
pub const GROUP_ID: &str = "fieldlink-group";

/// An instance with two hubs, one individual enrollment, one symmetric-key group, a known
/// service policy, no assignment delay and `Retry-After: 1`.
pub fn instance(name: &str) -> InstanceConfig {
    let mut config = InstanceConfig::new(name, &[HUB_A, HUB_B]);
    config.knobs.retry_after_secs = 1;
    config.shared_access_policies = vec![SharedAccessPolicy {
        key_name: POLICY.to_owned(),
        primary_key: POLICY_KEY.to_owned(),
        secondary_key: GROUP_SECONDARY.to_owned(),
    }];
    config.individual_enrollments = vec![IndividualEnrollment::symmetric_key(
        INDIVIDUAL_DEVICE,
        DEVICE_PRIMARY,
        DEVICE_SECONDARY,
    )];
    config.enrollment_groups = vec![EnrollmentGroup::symmetric_key(
        GROUP_ID,
        GROUP_PRIMARY,
        GROUP_SECONDARY,
    )];
    config
}

pub fn now_unix() -> i64 {
    chrono::Utc::now().timestamp()
}

pub fn device_token(id_scope: &str, registration_id: &str, key: &str) -> String {
    sas::device_sas_token(id_scope, registration_id, key, now_unix() + 3600).unwrap()
}

pub fn group_device_key(registration_id: &str) -> String {
    sas::derive_group_device_key(GROUP_PRIMARY, registration_id).unwrap()
}

pub struct Sandbox {
    pub emulator: RunningEmulator,
    pub client: reqwest::Client,
    pub base: String,
}

impl Sandbox {
    pub async fn start(instances: Vec<InstanceConfig>) -> Self {
        let emulator = DpsEmulator::start(EmulatorConfig::with_instances(instances))
            .await
            .unwrap();
        let base = emulator.http_base_url().unwrap();
        let client = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(20))
            .build()
            .unwrap();
        Self {
            emulator,
            client,
            base,
        }
    }

    pub fn scope(&self, instance: &str) -> String {
        self.emulator.control().instance(instance).unwrap().id_scope
    }

    pub fn service_token(&self, instance: &str) -> String {
        let host = self
            .emulator
            .control()
            .instance(instance)
            .unwrap()
            .service_host_name;
        sas::service_sas_token(&host, POLICY, POLICY_KEY, now_unix() + 3600).unwrap()
    }

    pub async fn register(
        &self,
        scope: &str,
        registration_id: &str,
        token: &str,
    ) -> reqwest::Response {
        self.client
            .put(format!(
                "{}/{scope}/registrations/{registration_id}/register?{API}",
                self.base
            ))
            .header("Authorization", token)
            .json(&serde_json::json!({ "registrationId": registration_id }))
            .send()
            .await
            .unwrap()
    }

    /// Registers and returns the operation ID (still `assigning` on an instance with an
    /// assignment delay).
    pub async fn start_registration(
        &self,
        scope: &str,
        registration_id: &str,
        token: &str,
    ) -> String {
        let response = self.register(scope, registration_id, token).await;
        assert_eq!(response.status(), 202, "{:?}", response.text().await);
        let operation: Value = response.json().await.unwrap();
        operation["operationId"].as_str().unwrap().to_owned()
    }

    /// A service-API request for `path` (`enrollments/{id}`, `enrollmentGroups/{id}`,
    /// `registrations/{id}`) of `instance`, with `api-version` and the instance's service SAS.
    pub fn service(
        &self,
        method: reqwest::Method,
        instance: &str,
        path: &str,
    ) -> reqwest::RequestBuilder {
        self.client
            .request(method, format!("{}/dps/{instance}/{path}?{API}", self.base))
            .header("Authorization", self.service_token(instance))
    }

    pub async fn poll(
        &self,
        scope: &str,
        registration_id: &str,
        operation_id: &str,
        token: &str,
    ) -> reqwest::Response {
        self.client
            .get(format!(
                "{}/{scope}/registrations/{registration_id}/operations/{operation_id}?{API}",
                self.base
            ))
            .header("Authorization", token)
            .send()
            .await
            .unwrap()
    }

    /// Registers and polls (without waiting: these instances have no assignment delay) until
    /// the operation is final; returns the final body.
    pub async fn register_and_poll(&self, scope: &str, registration_id: &str, key: &str) -> Value {
        let token = device_token(scope, registration_id, key);
        let operation_id = self
            .start_registration(scope, registration_id, &token)
            .await;
        for _ in 0..5 {
            let response = self
                .poll(scope, registration_id, &operation_id, &token)
                .await;
            if response.status() == 200 {
                return response.json().await.unwrap();
            }
            assert_eq!(response.status(), 202);
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("operation {operation_id} did not finish");
    }
}

/// Replaces values that change from run to run (ids, times, etags) by placeholders.
pub fn redact(mut value: Value) -> Value {
    redact_in_place(&mut value);
    value
}

fn redact_in_place(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, field) in map.iter_mut() {
                let placeholder = match key.as_str() {
                    "operationId" => Some("[operation-id]"),
                    "trackingId" => Some("[tracking-id]"),
                    "timestampUtc" | "createdDateTimeUtc" | "lastUpdatedDateTimeUtc" => {
                        Some("[timestamp]")
                    }
                    "etag" => Some("[etag]"),
                    _ => None,
                };
                match placeholder {
                    Some(text) if !field.is_null() => *field = Value::String(text.to_owned()),
                    _ => redact_in_place(field),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact_in_place),
        _ => {}
    }
}

/// Asserts a DPS error response: status, `x-ms-error-code`, and the body's fields.
pub async fn assert_dps_error(response: reqwest::Response, status: u16, error_code: i64) -> Value {
    assert_eq!(response.status(), status);
    assert_eq!(
        response.headers()["x-ms-error-code"].to_str().unwrap(),
        error_code.to_string()
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["errorCode"], error_code, "{body}");
    let mut keys: Vec<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        ["errorCode", "info", "message", "timestampUtc", "trackingId"],
        "{body}"
    );
    assert!(uuid::Uuid::parse_str(body["trackingId"].as_str().unwrap()).is_ok());
    chrono::DateTime::parse_from_rfc3339(body["timestampUtc"].as_str().unwrap()).unwrap();
    body
}
