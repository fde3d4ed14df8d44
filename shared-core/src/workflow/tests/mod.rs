//! Workflow unit tests: the real machine and driver over the in-memory radio against a scripted
//! fake device, with paused time.

mod device_report;
mod fake_device;
mod scan_deadline;
mod service_retries;

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use async_trait::async_trait;
use ed25519_dalek::SigningKey;
use fieldlink_protocol::{
    message::{DpsStatus, ErrorCode, JoinFailureKind, NetworkConfig, NetworkResult},
    payload::PopSecret,
    session::SessionSecret,
    ticket::TicketSigner,
};
use tokio_util::sync::CancellationToken;

use self::fake_device::Script;
use super::*;
use crate::{
    CommissionError, Step,
    assignment::{
        Assignment, DpsTarget, LocalAssignmentSigner, RegistrationStatusSource, RegistrationView,
        ServiceError,
    },
    error::{NetworkFailureKind, TicketRejection},
    transport::memory::{Direction, Fault, FaultAction, FaultPoint, InMemoryRadio, LinkModel},
};

/// Answers with queued views, then repeats the last one.
struct ScriptedStatus(Mutex<Vec<RegistrationView>>);

#[async_trait]
impl RegistrationStatusSource for ScriptedStatus {
    async fn registration_status(
        &self,
        _registration_id: String,
        _assignment: Assignment,
    ) -> Result<RegistrationView, ServiceError> {
        let mut views = self.0.lock().unwrap();
        if views.len() > 1 {
            Ok(views.remove(0))
        } else {
            Ok(views[0].clone())
        }
    }
}

fn assigned_view(hub: &str) -> RegistrationView {
    RegistrationView {
        status: "assigned".into(),
        assigned_hub: Some(hub.into()),
        device_id: Some("dev-1".into()),
        substatus: Some("initialAssignment".into()),
        error_code: None,
    }
}

struct Rig {
    radio: InMemoryRadio,
    commissioner: Commissioner,
    pop: PopSecret,
    memory: Arc<Mutex<fake_device::Memory>>,
    peripheral: crate::transport::PeripheralId,
}

fn rig(mtu: u16, tweak: impl FnOnce(&mut Script), views: Vec<RegistrationView>) -> Rig {
    let radio = InMemoryRadio::new(LinkModel {
        mtu,
        ..LinkModel::default()
    });
    let pop = PopSecret::from_bytes([9; 11]);
    let mut script = Script::new(pop.clone());
    tweak(&mut script);
    let (peripheral, memory) = fake_device::register(&radio, script);
    let signer = LocalAssignmentSigner::new(
        TicketSigner::new("k1", SigningKey::from_bytes(&[3; 32])),
        DpsTarget {
            id_scope: "0ne000TEST".into(),
            global_endpoint: "127.0.0.1:1".into(),
            tenant: "acme".into(),
            dps_instance: "dps-1".into(),
        },
    );
    let config = CommissioningConfig {
        seed: Some(1),
        ..CommissioningConfig::default()
    };
    let commissioner = Commissioner::new(
        Arc::new(radio.clone()),
        Arc::new(signer),
        Arc::new(ScriptedStatus(Mutex::new(views))),
    )
    .with_config(config);
    Rig {
        radio,
        commissioner,
        pop,
        memory,
        peripheral,
    }
}

fn request(pop: &PopSecret, network: Option<NetworkConfig>) -> CommissionRequest {
    CommissionRequest {
        registration_id: Some("dev-1".into()),
        discriminator: DiscriminatorMatch::Full(0x5a5),
        secret: SessionSecret::Pop(pop.clone()),
        network,
    }
}

fn wifi() -> NetworkConfig {
    NetworkConfig::Wifi {
        ssid: "site".into(),
        passphrase: "hunter22".into(),
        hidden: false,
        bssid: None,
    }
}

async fn run(
    rig: &Rig,
    request: CommissionRequest,
) -> (
    Result<CommissioningReport, CommissionError>,
    Vec<ProgressEvent>,
) {
    let (listener, mut events) = progress_channel();
    let result = rig
        .commissioner
        .commission(request, &*listener, CancellationToken::new())
        .await;
    drop(listener);
    let mut collected = Vec::new();
    while let Some(event) = events.recv().await {
        collected.push(event);
    }
    (result, collected)
}

#[tokio::test(start_paused = true)]
async fn success_in_two_round_trips_with_counters_matching_the_radio() {
    for mtu in [23, 247] {
        let rig = rig(mtu, |_| {}, vec![assigned_view("hub-a.example")]);
        let (result, events) = run(&rig, request(&rig.pop, None)).await;
        let report = result.unwrap();
        assert_eq!(report.mtu, mtu);
        assert!(report.agreed);
        assert_eq!(report.device.assigned_hub.as_deref(), Some("hub-a.example"));
        assert_eq!(report.link.round_trips, 2);
        assert_eq!(report.resumes, 0);
        let stats = rig.radio.stats();
        assert_eq!(stats.round_trips, 2);
        assert_eq!(
            u64::from(stats.frames_to_peripheral),
            u64::from(report.link.frames_sent)
        );
        assert_eq!(stats.bytes_to_peripheral, report.link.bytes_sent);
        assert_eq!(stats.bytes_to_central, report.link.bytes_received);
        if mtu == 23 {
            assert!(
                report.link.frames_sent > 10,
                "small MTU fragments: {:?}",
                report.link
            );
        }
        let steps: Vec<_> = report.steps.iter().map(|t| t.step).collect();
        assert_eq!(
            steps,
            [
                Step::Scanning,
                Step::AwaitingAssignment,
                Step::Connecting,
                Step::Handshaking,
                Step::Provisioning,
                Step::Registering,
                Step::Confirming
            ]
        );
        assert!(events.windows(2).all(|w| w[0].at_ms <= w[1].at_ms));
        assert!(events.iter().any(|e| e.kind
            == ProgressKind::RegistrationStage {
                stage: "registering".into()
            }));
        assert_eq!(events.last().unwrap().step, Step::Confirming);
    }
}

#[tokio::test(start_paused = true)]
async fn network_config_rides_with_the_ticket() {
    let rig = rig(185, |_| {}, vec![assigned_view("hub-a.example")]);
    let (result, events) = run(&rig, request(&rig.pop, Some(wifi()))).await;
    let report = result.unwrap();
    assert!(report.network_configured);
    assert_eq!(report.link.round_trips, 2);
    assert!(report.step(Step::JoiningNetwork).is_some());
    let stages: Vec<_> = events
        .iter()
        .filter_map(|e| match &e.kind {
            ProgressKind::NetworkStage { stage } => Some(stage.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(stages, ["associating", "got_ip"]);
}

#[tokio::test(start_paused = true)]
async fn typed_failures_map_to_public_codes() {
    type Case = (
        Box<dyn Fn(&mut Script)>,
        Option<NetworkConfig>,
        CommissionError,
    );
    let cases: Vec<Case> = vec![
        (
            Box::new(|s: &mut Script| s.pop = PopSecret::from_bytes([1; 11])),
            None,
            CommissionError::WrongPop { attempt: 1, max: 5 },
        ),
        (
            Box::new(|s: &mut Script| s.refuse = Some(ErrorCode::DeviceLocked)),
            None,
            CommissionError::DeviceLocked {
                retry_after: Duration::from_secs(30),
            },
        ),
        (
            Box::new(|s: &mut Script| s.refuse = Some(ErrorCode::Busy)),
            None,
            CommissionError::DeviceBusy,
        ),
        (
            Box::new(|s: &mut Script| s.provision_error = Some(ErrorCode::TicketExpired)),
            None,
            CommissionError::TicketRejected {
                reason: TicketRejection::Expired,
            },
        ),
        (
            Box::new(|s: &mut Script| {
                s.network_result = NetworkResult::Failed {
                    kind: JoinFailureKind::WifiAuthFailed,
                    detail: None,
                }
            }),
            Some(wifi()),
            CommissionError::NetworkJoinFailed {
                kind: NetworkFailureKind::WifiAuthFailed,
            },
        ),
        (
            Box::new(|s: &mut Script| s.discriminator = 0x123),
            None,
            CommissionError::DeviceNotFound {
                discriminator: 0x5a5,
            },
        ),
        (
            Box::new(|s: &mut Script| s.silent = true),
            None,
            CommissionError::Timeout {
                step: Step::Handshaking,
            },
        ),
    ];
    for (tweak, network, expected) in cases {
        let rig = rig(247, tweak, vec![assigned_view("hub-a.example")]);
        let (result, _) = run(&rig, request(&rig.pop, network)).await;
        assert_eq!(result.unwrap_err(), expected);
    }
}

#[tokio::test(start_paused = true)]
async fn dps_failure_is_registration_failed_with_the_dps_error() {
    let rig = rig(
        247,
        |s| {
            s.dps.status = DpsStatus::Failed;
            s.dps.assigned_hub = None;
            s.dps.error_code = Some(401002);
            s.dps.error_message = Some("unauthorized".into());
        },
        vec![assigned_view("hub-a.example")],
    );
    let (result, _) = run(&rig, request(&rig.pop, None)).await;
    let error = result.unwrap_err();
    assert_eq!(error.code(), "registration_failed");
    assert!(error.to_string().contains("401002"), "{error}");
}

#[tokio::test(start_paused = true)]
async fn the_devices_typed_dps_failure_becomes_its_public_code_not_the_message() {
    // The message says one thing, the typed code another: the code wins.
    let cases = [
        (Some(ErrorCode::DpsUnreachable), "dps_unreachable"),
        (Some(ErrorCode::DpsUnauthorized), "dps_unauthorized"),
        (Some(ErrorCode::DpsNotFound), "dps_not_found"),
        (Some(ErrorCode::DpsThrottled), "dps_throttled"),
        (Some(ErrorCode::FailSafeExpired), "timeout"),
        // An older device: no typed code, the code it put in front of its message.
        (None, "dps_throttled"),
    ];
    for (failure, code) in cases {
        let rig = rig(
            247,
            |s| {
                s.dps.status = DpsStatus::Unassigned;
                s.dps.assigned_hub = None;
                s.dps.device_id = None;
                s.dps.error_message = Some("dps_throttled: DPS throttled register".into());
                s.dps.failure = failure;
            },
            vec![assigned_view("hub-a.example")],
        );
        let (result, _) = run(&rig, request(&rig.pop, None)).await;
        let error = result.unwrap_err();
        assert_eq!(error.code(), code, "{failure:?}: {error}");
    }
}

#[tokio::test(start_paused = true)]
async fn confirmation_waits_for_a_lagging_service_and_rejects_disagreement() {
    let pending = RegistrationView {
        status: "assigning".into(),
        assigned_hub: None,
        device_id: None,
        substatus: None,
        error_code: None,
    };
    let rig1 = rig(247, |_| {}, vec![pending, assigned_view("hub-a.example")]);
    let (result, events) = run(&rig1, request(&rig1.pop, None)).await;
    assert!(result.is_ok());
    assert!(
        events
            .iter()
            .any(|e| matches!(e.kind, ProgressKind::StatusPending { .. }))
    );

    let rig2 = rig(247, |_| {}, vec![assigned_view("hub-b.example")]);
    let (result, _) = run(&rig2, request(&rig2.pop, None)).await;
    let error = result.unwrap_err();
    assert_eq!(error.code(), "confirmation_mismatch");
    assert!(error.to_string().contains("hub-b.example"));
}

#[tokio::test(start_paused = true)]
async fn link_loss_after_the_ticket_resumes_without_re_pushing() {
    let rig = rig(247, |_| {}, vec![assigned_view("hub-a.example")]);
    // Device messages: 0 DeviceHello, 1 ProvisionAccepted, 2 registration stage, 3 result.
    rig.radio.arm_fault(
        &rig.peripheral,
        Fault {
            direction: Direction::ToCentral,
            at: FaultPoint::Message(2),
            action: FaultAction::Disconnect,
        },
    );
    let (result, events) = run(&rig, request(&rig.pop, None)).await;
    let report = result.unwrap();
    assert_eq!(report.resumes, 1);
    assert_eq!(report.link.connections, 2);
    assert_eq!(rig.memory.lock().unwrap().connections, 2);
    assert!(events.iter().any(|e| e.kind == ProgressKind::LinkLost));
    assert!(events.iter().any(|e| e.kind
        == ProgressKind::Resumed {
            device_state: "registered".into()
        }));
    assert_eq!(report.step(Step::Handshaking).unwrap().attempts, 2);

    // A shell folding the same events through `StepTimings` gets the report's timings,
    // resumed attempts included; every event's `attempt` is the count at that moment.
    let mut timings = crate::workflow::StepTimings::default();
    for event in &events {
        timings.record(event);
        assert_eq!(event.attempt, timings.attempt(event.step), "{event:?}");
    }
    assert_eq!(timings.as_slice(), report.steps.as_slice());
}

#[tokio::test(start_paused = true)]
async fn link_loss_before_the_ticket_is_a_retryable_error() {
    let rig = rig(247, |_| {}, vec![assigned_view("hub-a.example")]);
    rig.radio.arm_fault(
        &rig.peripheral,
        Fault {
            direction: Direction::ToCentral,
            at: FaultPoint::Message(0),
            action: FaultAction::Disconnect,
        },
    );
    let (result, _) = run(&rig, request(&rig.pop, None)).await;
    assert_eq!(
        result.unwrap_err(),
        CommissionError::LinkLost {
            step: Step::Handshaking,
            retryable: true
        }
    );
}

#[tokio::test(start_paused = true)]
async fn cancellation_stops_the_workflow() {
    let rig = rig(
        247,
        |s| s.silent = true,
        vec![assigned_view("hub-a.example")],
    );
    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(500)).await;
        trigger.cancel();
    });
    let result = rig
        .commissioner
        .commission(request(&rig.pop, None), &IgnoreProgress, cancel)
        .await;
    assert_eq!(result.unwrap_err(), CommissionError::Cancelled);
}

#[test]
fn discriminator_match_full_and_short() {
    assert!(DiscriminatorMatch::Full(0x5a5).matches(0x5a5));
    assert!(!DiscriminatorMatch::Full(0x5a5).matches(0x5a4));
    assert!(DiscriminatorMatch::Short(0x5).matches(0x5a5));
    assert!(!DiscriminatorMatch::Short(0x4).matches(0x5a5));
}

#[test]
fn machine_is_inert_before_start_and_after_finish() {
    let mut machine = Commissioning::new(
        request(&PopSecret::from_bytes([1; 11]), None),
        CommissioningConfig::default(),
    );
    assert!(machine.handle(0, Input::Tick).is_empty());
    let actions = machine.start(0);
    assert!(actions.iter().any(|a| matches!(a, Action::Scan { .. })));
    assert!(
        actions
            .iter()
            .any(|a| matches!(a, Action::FetchAssignment { .. }))
    );
    let actions = machine.handle(5, Input::Cancel);
    assert!(matches!(
        actions.last(),
        Some(Action::Finished(Err(CommissionError::Cancelled)))
    ));
    assert!(machine.is_finished());
    assert!(matches!(machine.state(), State::Failed { from, .. } if **from == State::Scanning));
    assert!(machine.handle(6, Input::Tick).is_empty());
    assert_eq!(machine.deadline(), None);
}

#[test]
fn overall_timeout_fires_from_any_state() {
    let config = CommissioningConfig {
        overall_timeout: Duration::from_secs(1),
        ..CommissioningConfig::default()
    };
    let mut machine = Commissioning::new(request(&PopSecret::from_bytes([1; 11]), None), config);
    machine.start(0);
    assert_eq!(machine.deadline(), Some(1000));
    let actions = machine.handle(1000, Input::Tick);
    assert!(matches!(
        actions.last(),
        Some(Action::Finished(Err(CommissionError::Timeout {
            step: Step::Scanning
        })))
    ));
}

struct FixPassphrase(Mutex<Vec<(NetworkFailureKind, u32)>>);

#[async_trait]
impl NetworkCorrection for FixPassphrase {
    async fn corrected_network(
        &self,
        kind: NetworkFailureKind,
        attempt: u32,
    ) -> Option<NetworkConfig> {
        self.0.lock().unwrap().push((kind, attempt));
        Some(wifi())
    }
}

#[tokio::test(start_paused = true)]
async fn wrong_passphrase_is_corrected_in_the_same_session_with_one_extra_round_trip() {
    let mut rig = rig(
        247,
        |s| {
            s.network_result = NetworkResult::Failed {
                kind: JoinFailureKind::WifiAuthFailed,
                detail: None,
            }
        },
        vec![assigned_view("hub-a.example")],
    );
    let asked = Arc::new(FixPassphrase(Mutex::new(Vec::new())));
    let config = CommissioningConfig {
        network_corrections: 1,
        ..*rig.commissioner.config()
    };
    rig.commissioner = rig
        .commissioner
        .clone()
        .with_config(config)
        .with_network_correction(asked.clone());
    let (result, _) = run(&rig, request(&rig.pop, Some(wifi()))).await;
    let report = result.unwrap();
    assert_eq!(report.link.round_trips, 3);
    assert_eq!(report.step(Step::JoiningNetwork).unwrap().attempts, 2);
    assert_eq!(
        *asked.0.lock().unwrap(),
        [(NetworkFailureKind::WifiAuthFailed, 1)]
    );
}

#[tokio::test(start_paused = true)]
async fn a_failure_after_the_ticket_was_accepted_rolls_the_device_back_at_once() {
    let rig = rig(
        247,
        |s| {
            s.network_result = NetworkResult::Failed {
                kind: JoinFailureKind::DhcpFailed,
                detail: None,
            }
        },
        vec![assigned_view("hub-a.example")],
    );
    let (result, _) = run(&rig, request(&rig.pop, Some(wifi()))).await;
    assert_eq!(
        result.unwrap_err(),
        CommissionError::NetworkJoinFailed {
            kind: NetworkFailureKind::DhcpFailed
        }
    );
    // The Cancel request reached the device before the link closed.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        rig.memory.lock().unwrap().state,
        Some(fieldlink_protocol::message::DeviceState::Commissionable)
    );
    assert_eq!(rig.radio.stats().round_trips, 3, "hello, finish, cancel");
}

#[test]
fn requests_never_show_secrets_in_debug() {
    let request = request(
        &PopSecret::from_bytes([0x42; 11]),
        Some(NetworkConfig::Wifi {
            ssid: "site".into(),
            passphrase: "very secret passphrase".into(),
            hidden: false,
            bssid: None,
        }),
    );
    let debug = format!("{request:?}");
    assert!(!debug.contains("very secret passphrase"), "{debug}");
    assert!(!debug.contains("42, 42"), "{debug}");
    assert!(debug.contains("<redacted>"), "{debug}");
    let machine = Commissioning::new(request, CommissioningConfig::default());
    assert!(!format!("{machine:?}").contains("very secret passphrase"));
}
