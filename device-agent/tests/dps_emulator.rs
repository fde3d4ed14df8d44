//! The DPS client against the real DPS emulator over HTTPS (its own CA): status lookup first,
//! `Retry-After` honoured on polls, 429 backoff, group-enrollment keys.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::request_count;
use fieldlink_device_agent::backoff::Backoff;
use fieldlink_device_agent::clock::{SharedClock, TokioClock};
use fieldlink_device_agent::dps::{
    DpsClient, DpsClientConfig, DpsProgress, DpsStep, OutcomeSource, RegistrationRequest,
    RegistrationStatus,
};
use fieldlink_device_agent::store::DpsCredential;
use fieldlink_dps_emulator::{
    DpsEmulator, EmulatorConfig, EnrollmentGroup, IndividualEnrollment, InstanceConfig,
    RunningEmulator,
};

const DEVICE_KEY: &str = "ZW11bGF0b3ItZGV2aWNlLWtleS0wMDAwMDAwMDAwMDA=";
const GROUP_KEY: &str = "ZW11bGF0b3ItZ3JvdXAta2V5LTAwMDAwMDAwMDAwMDA=";

async fn emulator(configure: impl FnOnce(&mut InstanceConfig)) -> (RunningEmulator, String) {
    let mut instance = InstanceConfig::new("dps-a", &["hub-a.azure-devices.net"]);
    instance.knobs.retry_after_secs = 1;
    configure(&mut instance);
    let emulator = DpsEmulator::start(EmulatorConfig::with_instances(vec![instance]).with_tls())
        .await
        .unwrap();
    let scope = emulator
        .control()
        .instance("dps-a")
        .unwrap()
        .id_scope
        .clone();
    emulator
        .control()
        .put_enrollment(
            "dps-a",
            IndividualEnrollment::symmetric_key("emu-device-1", DEVICE_KEY, DEVICE_KEY),
        )
        .unwrap();
    emulator
        .control()
        .put_enrollment_group(
            "dps-a",
            EnrollmentGroup::symmetric_key("fleet", GROUP_KEY, GROUP_KEY),
        )
        .unwrap();
    (emulator, scope)
}

fn client(emulator: &RunningEmulator) -> (DpsClient, SharedClock) {
    let clock: SharedClock = Arc::new(TokioClock::new());
    let client = DpsClient::new(
        DpsClientConfig {
            extra_ca_pem: Some(emulator.ca_pem().unwrap().as_bytes().to_vec()),
            // Far shorter than the emulator's Retry-After: the polls below prove which one is used.
            default_poll_interval: Duration::from_millis(50),
            backoff: Backoff {
                base: Duration::from_millis(100),
                max: Duration::from_secs(2),
            },
            ..DpsClientConfig::default()
        },
        clock.clone(),
    )
    .unwrap();
    (client, clock)
}

#[tokio::test]
async fn looks_up_then_registers_and_polls_at_the_retry_after_pace() {
    let (emulator, scope) = emulator(|i| i.knobs.assignment_delay_ms = 1_500).await;
    let (client, clock) = client(&emulator);
    let credential = DpsCredential::SymmetricKey {
        key: DEVICE_KEY.into(),
    };
    let endpoint = emulator.global_endpoint();
    let request = RegistrationRequest {
        global_endpoint: &endpoint,
        id_scope: &scope,
        registration_id: "emu-device-1",
        credential: &credential,
        payload: None,
    };
    let mut progress = Vec::new();
    let started = Instant::now();
    let outcome = client
        .register(&request, clock.now_ms() + 20_000, &mut |p| progress.push(p))
        .await
        .unwrap();
    assert_eq!(outcome.source, OutcomeSource::Registration);
    assert_eq!(outcome.state.status, RegistrationStatus::Assigned);
    assert_eq!(
        outcome.state.assigned_hub.as_deref(),
        Some("hub-a.azure-devices.net")
    );
    assert_eq!(outcome.state.device_id.as_deref(), Some("emu-device-1"));
    assert!(started.elapsed() >= Duration::from_millis(1_500));
    assert_eq!(progress[0], DpsProgress::LookingUp);
    let metrics = emulator.control().metrics_text();
    assert_eq!(request_count(&metrics, "status_lookup"), 1);
    assert_eq!(request_count(&metrics, "register"), 1);
    let polls = request_count(&metrics, "operation_status");
    assert!(
        (1..=3).contains(&polls),
        "{polls} polls in 1.5 s: the 1 s Retry-After sets the pace, not the 50 ms default"
    );

    // A second run finds the assignment in the (non-billable) lookup and does not register.
    let again = client
        .register(&request, clock.now_ms() + 10_000, &mut |_| {})
        .await
        .unwrap();
    assert_eq!(again.source, OutcomeSource::StatusLookup);
    assert_eq!(again.state.assigned_hub, outcome.state.assigned_hub);
    let metrics = emulator.control().metrics_text();
    assert_eq!(request_count(&metrics, "status_lookup"), 2);
    assert_eq!(request_count(&metrics, "register"), 1);
    emulator.shutdown().await;
}

#[tokio::test]
async fn group_enrollment_devices_derive_their_key() {
    let (emulator, scope) = emulator(|_| {}).await;
    let (client, clock) = client(&emulator);
    let endpoint = emulator.global_endpoint();
    for (id, credential) in [
        (
            "fleet-device-1",
            DpsCredential::GroupKey {
                group_key: GROUP_KEY.into(),
            },
        ),
        (
            "fleet-device-2",
            DpsCredential::SymmetricKey {
                key: fieldlink_protocol::sas::derive_group_device_key(GROUP_KEY, "fleet-device-2")
                    .unwrap()
                    .as_str()
                    .into(),
            },
        ),
    ] {
        let request = RegistrationRequest {
            global_endpoint: &endpoint,
            id_scope: &scope,
            registration_id: id,
            credential: &credential,
            payload: None,
        };
        let outcome = client
            .register(&request, clock.now_ms() + 20_000, &mut |_| {})
            .await
            .unwrap();
        assert_eq!(outcome.state.status, RegistrationStatus::Assigned, "{id}");
        assert_eq!(outcome.state.device_id.as_deref(), Some(id));
    }
    // The group key used as if it were the device's own key is refused.
    let wrong = DpsCredential::SymmetricKey {
        key: GROUP_KEY.into(),
    };
    let request = RegistrationRequest {
        global_endpoint: &endpoint,
        id_scope: &scope,
        registration_id: "fleet-device-3",
        credential: &wrong,
        payload: None,
    };
    let error = client
        .register(&request, clock.now_ms() + 10_000, &mut |_| {})
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            fieldlink_device_agent::dps::DpsError::Rejected {
                http_status: 401,
                ..
            }
        ),
        "{error:?}"
    );
    emulator.shutdown().await;
}

#[tokio::test]
async fn throttled_polls_back_off_and_still_finish() {
    let (emulator, scope) = emulator(|i| {
        i.knobs.assignment_delay_ms = 2_500;
        i.limits.device_polls_per_window = Some(1);
        i.limits.device_poll_window_secs = 2;
    })
    .await;
    let (client, clock) = client(&emulator);
    let credential = DpsCredential::SymmetricKey {
        key: DEVICE_KEY.into(),
    };
    let endpoint = emulator.global_endpoint();
    let request = RegistrationRequest {
        global_endpoint: &endpoint,
        id_scope: &scope,
        registration_id: "emu-device-1",
        credential: &credential,
        payload: None,
    };
    let mut retries = Vec::new();
    let outcome = client
        .register(&request, clock.now_ms() + 30_000, &mut |p| {
            if let DpsProgress::Retrying { step, delay, .. } = p {
                retries.push((step, delay));
            }
        })
        .await
        .unwrap();
    assert_eq!(outcome.state.status, RegistrationStatus::Assigned);
    let metrics = emulator.control().metrics_text();
    assert!(
        metrics.contains("operation=\"operation_status\",status=\"429\""),
        "the emulator throttled a poll:\n{metrics}"
    );
    assert!(!retries.is_empty());
    assert!(
        retries.iter().all(
            |(step, delay)| *step == DpsStep::PollOperation && *delay >= Duration::from_secs(1)
        )
    );
    emulator.shutdown().await;
}
