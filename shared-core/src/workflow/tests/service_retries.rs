//! One layer retries the provisioning API's transient failures: the API client (full-jitter
//! backoff, `Retry-After`, a budget that fits the step); the workflow calls once. A real HTTP
//! API on loopback (axum) that fails on command, the fake device over the in-memory radio, real
//! time (no paused clock: the sockets are real).

use std::{
    collections::VecDeque,
    net::SocketAddr,
    time::{Duration, Instant},
};

use axum::{
    Json, Router,
    extract::State as AxumState,
    http::{HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use fieldlink_protocol::ticket::TicketClaims;

use super::*;
use crate::{
    api_client::{ApiClientConfig, BreakerConfig, ProvisioningApiClient, StaticAccessToken},
    retry::RetryPolicy,
};

/// How the fake API answers one request.
#[derive(Debug, Clone, Copy)]
enum Reply {
    Ok,
    Unavailable,
    Throttled { retry_after_s: u64 },
}

/// The API's script and what it saw.
#[derive(Clone, Default)]
struct Api {
    assignment_script: Arc<Mutex<VecDeque<Reply>>>,
    /// Answer to assignment requests once the script is used up.
    assignment_then: Arc<Mutex<Option<Reply>>>,
    status_always: Arc<Mutex<Option<Reply>>>,
    /// The DPS instance and ID scope the registration answers name (default: the ticket's).
    status_scope: Arc<Mutex<Option<(&'static str, &'static str)>>>,
    assignment_hits: Arc<Mutex<Vec<Instant>>>,
    status_hits: Arc<Mutex<Vec<Instant>>>,
}

impl Api {
    fn assignment_hits(&self) -> Vec<Instant> {
        self.assignment_hits.lock().unwrap().clone()
    }

    fn status_hits(&self) -> Vec<Instant> {
        self.status_hits.lock().unwrap().clone()
    }
}

fn failure(reply: Reply) -> Response {
    match reply {
        Reply::Ok | Reply::Unavailable => {
            (StatusCode::SERVICE_UNAVAILABLE, "upstream down").into_response()
        }
        Reply::Throttled { retry_after_s } => {
            let mut headers = HeaderMap::new();
            headers.insert(
                "retry-after",
                HeaderValue::from_str(&retry_after_s.to_string()).unwrap(),
            );
            (StatusCode::TOO_MANY_REQUESTS, headers, "slow down").into_response()
        }
    }
}

fn ticket() -> String {
    let signer = TicketSigner::new("k1", SigningKey::from_bytes(&[3; 32]));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    signer
        .sign(&TicketClaims {
            key_id: "k1".into(),
            registration_id: "dev-1".into(),
            id_scope: "0ne000TEST".into(),
            global_endpoint: "127.0.0.1:1".into(),
            tenant: "acme".into(),
            dps_instance: "dps-1".into(),
            not_before: now - 60,
            expires_at: now + 600,
            nonce: [7; 16],
        })
        .to_base64url()
}

async fn assign(AxumState(api): AxumState<Api>) -> Response {
    api.assignment_hits.lock().unwrap().push(Instant::now());
    let reply = api
        .assignment_script
        .lock()
        .unwrap()
        .pop_front()
        .or(*api.assignment_then.lock().unwrap())
        .unwrap_or(Reply::Ok);
    if !matches!(reply, Reply::Ok) {
        return failure(reply);
    }
    Json(serde_json::json!({
        "registration_id": "dev-1", "tenant": "acme", "dps_instance": "dps-1",
        "id_scope": "0ne000TEST", "global_endpoint": "127.0.0.1:1", "region": "local",
        "generation": 1, "outcome": "created", "ticket": ticket(),
    }))
    .into_response()
}

async fn registration(AxumState(api): AxumState<Api>) -> Response {
    api.status_hits.lock().unwrap().push(Instant::now());
    if let Some(reply) = *api.status_always.lock().unwrap() {
        return failure(reply);
    }
    let (dps_instance, id_scope) = api
        .status_scope
        .lock()
        .unwrap()
        .unwrap_or(("dps-1", "0ne000TEST"));
    Json(serde_json::json!({
        "registration_id": "dev-1", "dps_instance": dps_instance, "id_scope": id_scope,
        "registered": true, "status": "assigned", "substatus": "initialAssignment",
        "assigned_hub": "hub-a.example", "device_id": "dev-1",
    }))
    .into_response()
}

async fn serve(api: Api) -> SocketAddr {
    let app = Router::new()
        .route("/v1/assignments", post(assign))
        .route("/v1/devices/{id}/registration", get(registration))
        .with_state(api);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

struct Bench {
    api: Api,
    commissioner: Commissioner,
    pop: PopSecret,
}

async fn bench(api: Api, retry: RetryPolicy, confirming: Duration) -> Bench {
    let addr = serve(api.clone()).await;
    let mut config = ApiClientConfig::new(format!("http://{addr}")).allowing_insecure_loopback();
    config.retry = retry;
    config.request_timeout = Duration::from_secs(2);
    config.breaker = BreakerConfig {
        failure_threshold: 1_000,
        ..BreakerConfig::default()
    };
    let client =
        ProvisioningApiClient::new(config, Arc::new(StaticAccessToken::new("token"))).unwrap();
    let radio = InMemoryRadio::new(LinkModel::default());
    let pop = PopSecret::from_bytes([9; 11]);
    fake_device::register(&radio, Script::new(pop.clone()));
    let mut workflow = CommissioningConfig {
        seed: Some(1),
        ..CommissioningConfig::default()
    };
    workflow.deadlines.confirming = confirming;
    let client = Arc::new(client);
    let commissioner =
        Commissioner::new(Arc::new(radio), client.clone(), client).with_config(workflow);
    Bench {
        api,
        commissioner,
        pop,
    }
}

fn policy(max_attempts: u32) -> RetryPolicy {
    RetryPolicy {
        initial_delay: Duration::from_millis(50),
        max_delay: Duration::from_millis(200),
        max_attempts,
        deadline: Duration::from_secs(30),
    }
}

async fn commission(
    bench: &Bench,
) -> (
    Result<CommissioningReport, CommissionError>,
    Vec<ProgressEvent>,
) {
    let (listener, mut events) = progress_channel();
    let result = bench
        .commissioner
        .commission(
            request(&bench.pop, None),
            &*listener,
            CancellationToken::new(),
        )
        .await;
    drop(listener);
    let mut collected = Vec::new();
    while let Some(event) = events.recv().await {
        collected.push(event);
    }
    (result, collected)
}

/// `(attempt, max_attempts)` of the service-retry events of `step`.
fn retries(events: &[ProgressEvent], step: Step) -> Vec<(u32, u32)> {
    events
        .iter()
        .filter(|e| e.step == step)
        .filter_map(|e| match &e.kind {
            ProgressKind::ServiceRetry {
                attempt,
                max_attempts,
                ..
            } => Some((*attempt, *max_attempts)),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn k_failures_then_success_cost_k_plus_one_requests_and_the_events_count_them() {
    let api = Api::default();
    api.assignment_script
        .lock()
        .unwrap()
        .extend([Reply::Unavailable, Reply::Unavailable]);
    let bench = bench(api, policy(4), Duration::from_secs(30)).await;
    let (result, events) = commission(&bench).await;
    result.expect("commissioned after two 503s");
    assert_eq!(
        bench.api.assignment_hits().len(),
        3,
        "2 failures + 1 success"
    );
    assert_eq!(
        retries(&events, Step::AwaitingAssignment),
        [(2, 4), (3, 4)],
        "attempt N of M, as the client counts"
    );
    assert_eq!(bench.api.status_hits().len(), 1);
}

#[tokio::test]
async fn when_the_clients_budget_is_spent_the_workflow_does_not_retry_on_top() {
    // Five 503s against a client allowed three attempts: it gives up after three, and the
    // workflow does not start another round (it used to: 3 × 5 requests).
    let api = Api::default();
    *api.assignment_then.lock().unwrap() = Some(Reply::Unavailable);
    let bench = bench(api, policy(3), Duration::from_secs(30)).await;
    let (result, events) = commission(&bench).await;
    let error = result.unwrap_err();
    assert_eq!(error.code(), "api_unavailable", "{error}");
    assert_eq!(bench.api.assignment_hits().len(), 3);
    assert_eq!(retries(&events, Step::AwaitingAssignment), [(2, 3), (3, 3)]);
}

#[tokio::test]
async fn the_confirming_steps_deadline_bounds_the_clients_retries() {
    // The status endpoint is down; the client may try 100 times within 30 s, but the
    // confirming step has 1.5 s: its retries fit in that, and the step ends on time.
    let api = Api::default();
    *api.status_always.lock().unwrap() = Some(Reply::Unavailable);
    let deadline = Duration::from_millis(1_500);
    let bench = bench(api, policy(100), deadline).await;
    let started = Instant::now();
    let (result, events) = commission(&bench).await;
    let finished = Instant::now();
    let error = result.unwrap_err();
    assert!(
        matches!(error.code(), "api_unavailable" | "timeout"),
        "{error}"
    );
    let confirming = events
        .iter()
        .find(|e| e.step == Step::Confirming && e.kind == ProgressKind::Started)
        .expect("confirming started");
    let step_start = started + Duration::from_millis(confirming.at_ms);
    let hits = bench.api.status_hits();
    assert!(hits.len() >= 3, "it did retry: {}", hits.len());
    // `step_start` is read back from the events, a few ms early at most: allow for that.
    let slack = Duration::from_millis(50);
    assert!(
        hits.iter().all(|at| *at <= step_start + deadline + slack),
        "no request after the step's deadline"
    );
    let overrun = finished.saturating_duration_since(step_start + deadline);
    assert!(
        overrun < Duration::from_millis(500),
        "overran by {overrun:?}"
    );
    assert_eq!(
        retries(&events, Step::Confirming).len(),
        hits.len() - 1,
        "one event per retry"
    );
}

#[tokio::test]
async fn retry_after_is_honoured_once() {
    // One 429 with Retry-After: 2, then success: one wait of 2 s (plus at most the jitter
    // ceiling), not two stacked ones.
    let api = Api::default();
    api.assignment_script
        .lock()
        .unwrap()
        .push_back(Reply::Throttled { retry_after_s: 2 });
    let bench = bench(api, policy(4), Duration::from_secs(30)).await;
    let (result, events) = commission(&bench).await;
    result.expect("commissioned after one 429");
    let hits = bench.api.assignment_hits();
    assert_eq!(hits.len(), 2);
    let gap = hits[1] - hits[0];
    assert!(gap >= Duration::from_secs(2), "{gap:?}");
    assert!(gap < Duration::from_millis(3_500), "waited twice? {gap:?}");
    let waits: Vec<_> = events
        .iter()
        .filter_map(|e| match &e.kind {
            ProgressKind::ServiceRetry {
                wait_ms,
                retry_after_ms,
                reason,
                ..
            } => Some((*wait_ms, *retry_after_ms, reason.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(waits, [(2_000, Some(2_000), "http_429".to_owned())]);
}

#[tokio::test]
async fn a_persistent_429_is_waited_out_once_per_attempt_then_reported_as_throttled() {
    // Always 429 with Retry-After: 2 and a client allowed two attempts: two requests 2 s
    // apart, then `throttled` — no second round of the workflow waiting 2 s again.
    let api = Api::default();
    *api.assignment_then.lock().unwrap() = Some(Reply::Throttled { retry_after_s: 2 });
    let bench = bench(api, policy(2), Duration::from_secs(30)).await;
    let started = Instant::now();
    let (result, _) = commission(&bench).await;
    let error = result.unwrap_err();
    assert_eq!(error.code(), "throttled", "{error}");
    assert_eq!(bench.api.assignment_hits().len(), 2);
    // One 2 s wait (a second one would make it 4 s or more).
    assert!(
        started.elapsed() < Duration::from_millis(3_900),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn an_answer_about_another_id_scope_fails_the_confirmation_as_a_mismatch_once() {
    let api = Api::default();
    *api.status_scope.lock().unwrap() = Some(("dps-9", "0ne00OTHER"));
    let bench = bench(api, policy(4), Duration::from_secs(10)).await;
    let (result, events) = commission(&bench).await;
    let error = result.unwrap_err();
    // Before: a generic invalid answer, reported as `api_unavailable` (and queued by shells).
    assert_eq!(error.code(), "confirmation_mismatch", "{error}");
    let message = error.to_string();
    assert!(
        message.contains("id_scope 0ne000TEST (dps-1)")
            && message.contains("id_scope 0ne00OTHER (dps-9)"),
        "{message}"
    );
    assert!(!error.retryable());
    // A contradiction is not retried.
    assert_eq!(bench.api.status_hits().len(), 1);
    assert!(retries(&events, Step::Confirming).is_empty());
}
