//! The DPS client against a small in-test DPS (axum over HTTPS on loopback, its own CA): status
//! lookup first, `Retry-After` honoured, 429 backoff, group-key SAS, deadlines, rejections.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use fieldlink_device_agent::clock::{SharedClock, TokioClock};
use fieldlink_device_agent::dps::{
    DpsClient, DpsClientConfig, DpsError, DpsProgress, DpsStep, OutcomeSource, RegistrationRequest,
    RegistrationStatus,
};
use fieldlink_device_agent::store::DpsCredential;
use fieldlink_protocol::sas;
use serde_json::json;

const SCOPE: &str = "0ne00MOCK";
const DEVICE_KEY: &str = "ZGV2aWNlLWtleS1kZXZpY2Uta2V5LWRldmljZS1rZXk=";
const GROUP_KEY: &str = "Z3JvdXAta2V5LWdyb3VwLWtleS1ncm91cC1rZXktZ3I=";

#[derive(Default)]
struct Script {
    /// Key the server checks SAS tokens with (per registration ID if group).
    group: bool,
    already_assigned: bool,
    throttle_register: u32,
    polls_before_assigned: u32,
    fail_with: Option<(i64, String)>,
    never_assign: bool,
    log: Vec<(&'static str, Instant)>,
}

type Shared = Arc<Mutex<Script>>;

fn key_for(script: &Script, registration_id: &str) -> String {
    if script.group {
        sas::derive_group_device_key(GROUP_KEY, registration_id).unwrap()
    } else {
        DEVICE_KEY.to_owned()
    }
}

fn authorised(script: &Script, headers: &HeaderMap, scope: &str, reg: &str) -> bool {
    let Some(token) = headers.get("authorization").and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    sas::verify_sas(
        token,
        &sas::device_resource(scope, reg),
        &key_for(script, reg),
        now,
    )
    .is_ok()
}

fn unauthorised() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        axum::Json(json!({"errorCode": 401002, "message": "Unauthorized", "trackingId": "t"})),
    )
        .into_response()
}

fn assigned_state(reg: &str) -> serde_json::Value {
    json!({"registrationId": reg, "status": "assigned", "assignedHub": "hub-7.mock.net",
           "deviceId": reg, "substatus": "initialAssignment"})
}

async fn lookup(
    State(script): State<Shared>,
    Path((scope, reg)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let mut script = script.lock().unwrap();
    script.log.push(("lookup", Instant::now()));
    if !authorised(&script, &headers, &scope, &reg) {
        return unauthorised();
    }
    if script.already_assigned {
        return axum::Json(assigned_state(&reg)).into_response();
    }
    (
        StatusCode::NOT_FOUND,
        axum::Json(json!({"errorCode": 404201, "message": "not found"})),
    )
        .into_response()
}

async fn register(
    State(script): State<Shared>,
    Path((scope, reg)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let mut script = script.lock().unwrap();
    script.log.push(("register", Instant::now()));
    if !authorised(&script, &headers, &scope, &reg) {
        return unauthorised();
    }
    if script.throttle_register > 0 {
        script.throttle_register -= 1;
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [("retry-after", "1")],
            axum::Json(json!({"errorCode": 429001, "message": "throttled"})),
        )
            .into_response();
    }
    (
        StatusCode::ACCEPTED,
        [("retry-after", "1")],
        axum::Json(json!({"operationId": "5.op-1", "status": "assigning"})),
    )
        .into_response()
}

async fn operation(
    State(script): State<Shared>,
    Path((scope, reg, op)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    let mut script = script.lock().unwrap();
    script.log.push(("poll", Instant::now()));
    if !authorised(&script, &headers, &scope, &reg) || op != "5.op-1" {
        return unauthorised();
    }
    if script.never_assign || script.polls_before_assigned > 0 {
        script.polls_before_assigned = script.polls_before_assigned.saturating_sub(1);
        return (
            StatusCode::ACCEPTED,
            [("retry-after", "1")],
            axum::Json(json!({"operationId": op, "status": "assigning"})),
        )
            .into_response();
    }
    if let Some((code, message)) = script.fail_with.clone() {
        return axum::Json(json!({"operationId": op, "status": "failed", "registrationState":
            {"registrationId": reg, "status": "failed", "errorCode": code, "errorMessage": message}}))
        .into_response();
    }
    axum::Json(
        json!({"operationId": op, "status": "assigned", "registrationState": assigned_state(&reg)}),
    )
    .into_response()
}

struct MockDps {
    url: String,
    ca_pem: String,
    script: Shared,
}

async fn start(script: Script) -> MockDps {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let mut leaf_params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    leaf_params
        .subject_alt_names
        .push(rcgen::SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
    let leaf = leaf_params.signed_by(&leaf_key, &ca, &ca_key).unwrap();
    let tls = axum_server::tls_rustls::RustlsConfig::from_pem(
        leaf.pem().into_bytes(),
        leaf_key.serialize_pem().into_bytes(),
    )
    .await
    .unwrap();
    let script = Arc::new(Mutex::new(script));
    let app = Router::new()
        .route("/{scope}/registrations/{reg}", post(lookup))
        .route("/{scope}/registrations/{reg}/register", put(register))
        .route(
            "/{scope}/registrations/{reg}/operations/{op}",
            get(operation),
        )
        .with_state(script.clone());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = axum_server::from_tcp_rustls(listener, tls);
    tokio::spawn(async move { server.serve(app.into_make_service()).await });
    MockDps {
        url: format!("https://127.0.0.1:{port}"),
        ca_pem: ca.pem(),
        script,
    }
}

fn client(mock: &MockDps, clock: SharedClock) -> DpsClient {
    DpsClient::new(
        DpsClientConfig {
            extra_ca_pem: Some(mock.ca_pem.clone().into_bytes()),
            backoff: fieldlink_device_agent::backoff::Backoff {
                base: Duration::from_millis(100),
                max: Duration::from_secs(2),
            },
            ..DpsClientConfig::default()
        },
        clock,
    )
    .unwrap()
}

fn individual() -> DpsCredential {
    DpsCredential::SymmetricKey {
        key: DEVICE_KEY.into(),
    }
}

fn kinds(mock: &MockDps) -> Vec<&'static str> {
    mock.script
        .lock()
        .unwrap()
        .log
        .iter()
        .map(|(k, _)| *k)
        .collect()
}

async fn run(
    mock: &MockDps,
    credential: &DpsCredential,
    deadline: Duration,
) -> (
    Result<fieldlink_device_agent::dps::RegistrationOutcome, DpsError>,
    Vec<DpsProgress>,
) {
    let clock: SharedClock = Arc::new(TokioClock::new());
    let client = client(mock, clock.clone());
    let request = RegistrationRequest {
        global_endpoint: &mock.url,
        id_scope: SCOPE,
        registration_id: "mock-device-1",
        credential,
        payload: None,
    };
    let mut events = Vec::new();
    let deadline_ms = clock.now_ms() + deadline.as_millis() as u64;
    let outcome = client
        .register(&request, deadline_ms, &mut |event| events.push(event))
        .await;
    (outcome, events)
}

#[tokio::test]
async fn looks_up_first_then_registers_and_honours_retry_after() {
    let mock = start(Script {
        polls_before_assigned: 1,
        ..Script::default()
    })
    .await;
    let (outcome, events) = run(&mock, &individual(), Duration::from_secs(20)).await;
    let outcome = outcome.unwrap();
    assert_eq!(outcome.source, OutcomeSource::Registration);
    assert_eq!(outcome.state.status, RegistrationStatus::Assigned);
    assert_eq!(
        outcome.state.assigned_hub.as_deref(),
        Some("hub-7.mock.net")
    );
    assert_eq!(outcome.operation_id.as_deref(), Some("5.op-1"));
    assert_eq!(kinds(&mock), ["lookup", "register", "poll", "poll"]);
    let log = mock.script.lock().unwrap().log.clone();
    for pair in log[1..].windows(2) {
        assert!(
            pair[1].1 - pair[0].1 >= Duration::from_millis(990),
            "each poll waits the Retry-After of the answer before it"
        );
    }
    assert_eq!(events[0], DpsProgress::LookingUp);
    assert_eq!(events[1], DpsProgress::Registering);
    assert!(
        matches!(&events[2], DpsProgress::Assigning { operation_id } if operation_id == "5.op-1")
    );
}

#[tokio::test]
async fn an_assignment_found_by_the_lookup_is_not_registered_again() {
    let mock = start(Script {
        already_assigned: true,
        ..Script::default()
    })
    .await;
    let (outcome, _) = run(&mock, &individual(), Duration::from_secs(10)).await;
    let outcome = outcome.unwrap();
    assert_eq!(outcome.source, OutcomeSource::StatusLookup);
    assert_eq!(outcome.state.device_id.as_deref(), Some("mock-device-1"));
    assert_eq!(kinds(&mock), ["lookup"]);
}

#[tokio::test]
async fn throttled_register_backs_off_at_least_retry_after() {
    let mock = start(Script {
        throttle_register: 2,
        ..Script::default()
    })
    .await;
    let (outcome, events) = run(&mock, &individual(), Duration::from_secs(30)).await;
    assert_eq!(outcome.unwrap().state.status, RegistrationStatus::Assigned);
    assert_eq!(
        kinds(&mock),
        ["lookup", "register", "register", "register", "poll"]
    );
    let log = mock.script.lock().unwrap().log.clone();
    assert!(log[2].1 - log[1].1 >= Duration::from_millis(990));
    assert!(log[3].1 - log[2].1 >= Duration::from_millis(990));
    let retries: Vec<_> = events
        .iter()
        .filter_map(|event| match event {
            DpsProgress::Retrying {
                step,
                attempt,
                delay,
                reason,
            } => Some((*step, *attempt, *delay, reason.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(retries.len(), 2);
    assert_eq!(retries[0].0, DpsStep::Register);
    assert_eq!(retries[1].1, 2);
    assert!(
        retries
            .iter()
            .all(|r| r.2 >= Duration::from_secs(1) && r.3 == "HTTP 429")
    );
}

#[tokio::test]
async fn group_enrollment_keys_are_derived_per_device() {
    let mock = start(Script {
        group: true,
        ..Script::default()
    })
    .await;
    let group = DpsCredential::GroupKey {
        group_key: GROUP_KEY.into(),
    };
    let (outcome, _) = run(&mock, &group, Duration::from_secs(10)).await;
    assert_eq!(outcome.unwrap().state.status, RegistrationStatus::Assigned);
    // The group key itself is not a device key: DPS rejects it.
    let (outcome, _) = run(&mock, &individual(), Duration::from_secs(10)).await;
    match outcome.unwrap_err() {
        DpsError::Rejected {
            step,
            http_status,
            error_code,
            ..
        } => {
            assert_eq!(step, DpsStep::Register);
            assert_eq!(http_status, 401);
            assert_eq!(error_code, Some(401002));
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn dps_failures_are_typed_results() {
    let mock = start(Script {
        fail_with: Some((400209, "Custom allocation failed".into())),
        ..Script::default()
    })
    .await;
    let (outcome, _) = run(&mock, &individual(), Duration::from_secs(10)).await;
    let state = outcome.unwrap().state;
    assert_eq!(state.status, RegistrationStatus::Failed);
    assert_eq!(state.error_code, Some(400209));
    assert_eq!(
        state.error_message.as_deref(),
        Some("Custom allocation failed")
    );
}

#[tokio::test]
async fn the_deadline_bounds_a_registration_that_never_completes() {
    let mock = start(Script {
        never_assign: true,
        ..Script::default()
    })
    .await;
    let started = Instant::now();
    let (outcome, _) = run(&mock, &individual(), Duration::from_millis(2500)).await;
    assert!(matches!(
        outcome.unwrap_err(),
        DpsError::DeadlineExceeded {
            step: DpsStep::PollOperation
        }
    ));
    assert!(started.elapsed() < Duration::from_secs(4));
}

#[tokio::test]
async fn an_unreachable_dps_is_retried_until_the_deadline() {
    // A port with nothing listening.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let clock: SharedClock = Arc::new(TokioClock::new());
    let client = DpsClient::new(DpsClientConfig::default(), clock.clone()).unwrap();
    let credential = individual();
    let url = format!("https://127.0.0.1:{port}");
    let request = RegistrationRequest {
        global_endpoint: &url,
        id_scope: SCOPE,
        registration_id: "mock-device-1",
        credential: &credential,
        payload: None,
    };
    let mut retries = 0;
    let outcome = client
        .register(&request, clock.now_ms() + 2_000, &mut |event| {
            if matches!(event, DpsProgress::Retrying { .. }) {
                retries += 1;
            }
        })
        .await;
    match outcome.unwrap_err() {
        DpsError::Unreachable { step, .. } => assert_eq!(step, DpsStep::StatusLookup),
        DpsError::DeadlineExceeded { step } => assert_eq!(step, DpsStep::StatusLookup),
        other => panic!("unexpected {other:?}"),
    }
    assert!(retries >= 1);
}

#[tokio::test]
async fn a_server_certificate_from_an_unknown_ca_is_refused() {
    let mock = start(Script::default()).await;
    let clock: SharedClock = Arc::new(TokioClock::new());
    let client = DpsClient::new(DpsClientConfig::default(), clock.clone()).unwrap();
    let credential = individual();
    let request = RegistrationRequest {
        global_endpoint: &mock.url,
        id_scope: SCOPE,
        registration_id: "mock-device-1",
        credential: &credential,
        payload: None,
    };
    let outcome = client
        .register(&request, clock.now_ms() + 1_500, &mut |_| {})
        .await;
    assert!(matches!(
        outcome.unwrap_err(),
        DpsError::Unreachable { .. } | DpsError::DeadlineExceeded { .. }
    ));
    assert!(kinds(&mock).is_empty(), "no request reached the handler");
}
