//! The provisioning-API client against the real provisioning API (`fieldlink-provisioning-api`,
//! in-process, SQLite in a temp dir), served over HTTPS on loopback with a certificate from an
//! rcgen CA (the DPS emulator's `CertificateAuthority`) that only the client's extra-CA setting
//! makes trusted.
//!
//! Faults the real API cannot produce are injected around it, and only those:
//! - a lost answer: a layer around the real router that holds back the first assignment
//!   answer (after the API has done the work) beyond the client's request deadline;
//! - a server that accepts connections and never answers: a bare TCP listener;
//! - an outage: the real API's listener is shut down and later restarted on the same port.
//!
//! Throttling is the API's own: an instance limited to one registration per minute answers
//! 429 `pool_rate_limited` with `Retry-After`; the client runs on a virtual clock whose waits
//! move the API's clock, so a one-minute `Retry-After` is honoured without waiting a minute.

use std::{
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use async_trait::async_trait;
use axum::{body::Body, extract::Request, middleware::Next, response::Response};
use axum_server::{Handle, tls_rustls::RustlsConfig};
use fieldlink_core::{
    api_client::{
        AccessToken, AccessTokenSource, ApiClientConfig, ApiClientError, BreakerConfig,
        BreakerState, ClientClock, ConfigError, IdempotencyKey, ProvisioningApiClient,
        StaticAccessToken, TokenError,
    },
    assignment::{AssignmentSource, RegistrationStatusSource, ServiceError},
    retry::RetryPolicy,
};
use fieldlink_dps_emulator::tls::{CertificateAuthority, ServerCertificate};
use fieldlink_protocol::ticket::TicketError;
use fieldlink_provisioning_api::{
    ApiConfig, ProvisioningApi,
    auth::Role,
    clock::{Clock, ManualClock, SystemClock},
    model::{AllowlistEntry, NewDpsInstance},
    storage::SqliteStorage,
    test_tokens::TokenMinter,
};
use futures::future::BoxFuture;
use serde_json::{Value, json};

const ISSUER: &str = "https://issuer.fieldlink.test";
const AUDIENCE: &str = "fieldlink-provisioning-api";
const TENANT: &str = "acme";

/// Holds back the first `POST /v1/assignments` answer for `delay` (after the API did the
/// work) and records what every assignment request carried and got.
#[derive(Clone, Default)]
struct LostAnswer {
    delay: Duration,
    seen: Arc<Mutex<Vec<Exchange>>>,
}

#[derive(Debug, Clone)]
struct Exchange {
    idempotency_key: Option<String>,
    status: u16,
    replayed: bool,
    body: Value,
}

/// The real API on loopback HTTPS.
struct TestApi {
    api: ProvisioningApi,
    clock: ManualClock,
    minter: TokenMinter,
    ca_pem: String,
    certificate: ServerCertificate,
    addr: SocketAddr,
    handle: Option<(Handle, tokio::task::JoinHandle<()>)>,
    lost_answer: Option<LostAnswer>,
    _dir: tempfile::TempDir,
}

fn instance(name: &str, rate_limit_per_minute: u64) -> NewDpsInstance {
    serde_json::from_value(json!({
        "name": name,
        "id_scope": format!("0ne{}", name.replace('-', "")),
        "global_endpoint": "global.azure-devices-provisioning.net",
        "service_endpoint": format!("https://{name}.azure-devices-provisioning.net"),
        "region": "weu",
        "rate_limit_per_minute": rate_limit_per_minute,
    }))
    .expect("instance spec")
}

fn devices(count: usize) -> Vec<String> {
    (0..count).map(|i| format!("sensor-{i:04}")).collect()
}

impl TestApi {
    async fn start(instances: Vec<NewDpsInstance>, allowlist: &[String]) -> Self {
        Self::start_with(instances, allowlist, None).await
    }

    async fn start_with(
        instances: Vec<NewDpsInstance>,
        allowlist: &[String],
        lost_answer: Option<LostAnswer>,
    ) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let storage = Arc::new(
            SqliteStorage::open(dir.path().join("api.db"))
                .await
                .expect("SQLite"),
        );
        let clock = ManualClock::new(SystemClock.now_ms());
        let minter = TokenMinter::new(ISSUER, AUDIENCE);
        let config = ApiConfig {
            issuers: vec![minter.trusted_issuer()],
            dps_pool: instances,
            ..ApiConfig::default()
        };
        let api = ProvisioningApi::builder(config, storage.clone())
            .clock(Arc::new(clock.clone()))
            .build()
            .await
            .expect("the API builds");
        let entries = allowlist
            .iter()
            .map(|id| AllowlistEntry {
                registration_id: id.clone(),
                label: None,
            })
            .collect();
        api.storage()
            .import_allowlist(TENANT, entries, clock.now_ms())
            .await
            .expect("allowlist");
        let ca = CertificateAuthority::generate().expect("CA");
        let certificate = ca
            .issue_server_certificate(&["localhost".to_owned(), "127.0.0.1".to_owned()])
            .expect("server certificate");
        let mut api = Self {
            api,
            clock,
            minter,
            ca_pem: ca.cert_pem(),
            certificate,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            handle: None,
            lost_answer,
            _dir: dir,
        };
        api.serve();
        api
    }

    /// (Re)starts serving on `self.addr` (the same port after a [`stop`](Self::stop)).
    fn serve(&mut self) {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket.set_reuseaddr(true).expect("SO_REUSEADDR");
        socket.bind(self.addr).expect("bind");
        let listener = socket.listen(128).expect("listen").into_std().expect("std");
        self.addr = listener.local_addr().expect("addr");
        let tls = RustlsConfig::from_config(self.certificate.rustls_config().expect("TLS"));
        let handle = Handle::new();
        let server = axum_server::from_tcp_rustls(listener, tls).handle(handle.clone());
        let mut router = self.api.router();
        if let Some(lost) = self.lost_answer.clone() {
            router = router.layer(axum::middleware::from_fn(move |request, next| {
                hold_back(lost.clone(), request, next)
            }));
        }
        let task = tokio::spawn(async move {
            let _ = server.serve(router.into_make_service()).await;
        });
        self.handle = Some((handle, task));
    }

    /// An outage: the listener and every open connection go away.
    async fn stop(&mut self) {
        if let Some((handle, task)) = self.handle.take() {
            handle.shutdown();
            tokio::time::timeout(Duration::from_secs(5), task)
                .await
                .expect("the server stops")
                .expect("the server task");
            // Open keep-alive connections close asynchronously; wait for the last one.
            for _ in 0..500 {
                if handle.connection_count() == 0 {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            panic!("connections still open after the shutdown");
        }
    }

    fn stop_now(&mut self) {
        if let Some((handle, _)) = self.handle.take() {
            handle.shutdown();
        }
    }

    fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.addr.port())
    }

    fn token(&self) -> String {
        self.minter
            .token(TENANT, &[Role::Installer], self.clock.now_unix())
    }

    /// Client settings for tests: trust the CA, quick retries.
    fn config(&self) -> ApiClientConfig {
        let mut config = ApiClientConfig::new(self.url()).with_ca_pem(self.ca_pem.clone());
        config.request_timeout = Duration::from_secs(5);
        config.retry = RetryPolicy {
            initial_delay: Duration::from_millis(20),
            max_delay: Duration::from_millis(200),
            max_attempts: 4,
            deadline: Duration::from_secs(20),
        };
        config
    }

    fn client(&self) -> ProvisioningApiClient {
        self.client_with(self.config())
    }

    fn client_with(&self, config: ApiClientConfig) -> ProvisioningApiClient {
        ProvisioningApiClient::new(config, Arc::new(StaticAccessToken::new(self.token())))
            .expect("client")
    }

    async fn registrations(&self) -> u64 {
        self.api
            .storage()
            .list_instances()
            .await
            .expect("instances")
            .iter()
            .map(|i| i.registrations)
            .sum()
    }
}

impl Drop for TestApi {
    fn drop(&mut self) {
        self.stop_now();
    }
}

async fn hold_back(lost: LostAnswer, request: Request, next: Next) -> Response {
    let is_assignment = request.uri().path() == "/v1/assignments";
    let idempotency_key = request
        .headers()
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let response = next.run(request).await;
    if !is_assignment {
        return response;
    }
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, 1 << 20).await.expect("body");
    let first = {
        let mut seen = lost.seen.lock().expect("lock");
        seen.push(Exchange {
            idempotency_key,
            status: parts.status.as_u16(),
            replayed: parts.headers.contains_key("idempotent-replayed"),
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        });
        seen.len() == 1
    };
    if first {
        // The API has answered; the answer is "lost" past the client's deadline.
        tokio::time::sleep(lost.delay).await;
    }
    Response::from_parts(parts, Body::from(bytes))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn assigns_over_https_and_the_same_key_gets_the_same_ticket() {
    let ids = devices(2);
    let api = TestApi::start(vec![instance("dps-a", 1_000)], &ids[..1]).await;
    let client = api.client();
    let key = IdempotencyKey::for_attempt("attempt-1", &ids[0]);
    let first = client.assign(&ids[0], &key).await.expect("assigned");
    assert_eq!(first.outcome, "created");
    assert!(!first.replayed);
    assert_eq!(first.assignment.dps_instance, "dps-a");
    assert_eq!(first.tenant, TENANT);
    let again = client.assign(&ids[0], &key).await.expect("replayed");
    assert!(again.replayed, "the API replayed the stored answer");
    assert_eq!(
        again.assignment, first.assignment,
        "same ticket, byte for byte"
    );

    // A new attempt (new key) is sticky: same instance, a fresh ticket.
    let other = IdempotencyKey::for_attempt("attempt-2", &ids[0]);
    let sticky = client.assign(&ids[0], &other).await.expect("sticky");
    assert_eq!(sticky.outcome, "existing");
    assert_eq!(sticky.assignment.id_scope, first.assignment.id_scope);
    assert_ne!(sticky.assignment.ticket, first.assignment.ticket);
    assert_eq!(api.registrations().await, 1);

    // Through the workflow's trait: each successful call starts a new attempt.
    let a = client.assignment(ids[0].clone()).await.expect("trait");
    let b = client
        .assignment(ids[0].clone())
        .await
        .expect("trait again");
    assert_eq!(a.dps_instance, "dps-a");
    assert_ne!(
        a.ticket, b.ticket,
        "a new attempt after a handed-out ticket"
    );

    // The ticket verifies with the keys the API publishes, and only for its device.
    let anchors = client.ticket_trust_anchors().await.expect("ticket keys");
    let now = api.clock.now_unix();
    let claims = anchors.verify(&a.ticket, now, &ids[0]).expect("verifies");
    assert_eq!(claims.tenant, TENANT);
    assert!(matches!(
        anchors.verify(&a.ticket, now, &ids[1]),
        Err(TicketError::WrongDevice { .. })
    ));

    // Off the allowlist: forbidden, and no registration was made.
    let refused = client.assignment(ids[1].clone()).await.unwrap_err();
    assert_eq!(refused, ServiceError::Forbidden);
    let issued = client
        .assign(&ids[1], &IdempotencyKey::new_attempt(&ids[1]))
        .await
        .unwrap_err();
    let ApiClientError::Status { reply } = &issued else {
        panic!("{issued:?}")
    };
    assert_eq!(reply.code, "device_not_allowlisted");
    assert_eq!(issued.to_commission_error(&ids[1]).code(), "forbidden");
    assert_eq!(api.registrations().await, 1);

    // A label with an impossible registration ID never reaches the API.
    let invalid = client
        .assignment("Not A Valid ID".into())
        .await
        .unwrap_err();
    assert!(matches!(invalid, ServiceError::UnknownRegistration { .. }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_answer_is_retried_with_the_same_key_and_gets_the_same_ticket() {
    let ids = devices(1);
    let lost = LostAnswer {
        delay: Duration::from_millis(1_500),
        ..LostAnswer::default()
    };
    let api = TestApi::start_with(vec![instance("dps-a", 1_000)], &ids, Some(lost.clone())).await;
    let mut config = api.config();
    config.request_timeout = Duration::from_millis(400);
    let client = api.client_with(config);
    let assignment = client.assignment(ids[0].clone()).await.expect("assigned");
    let seen = lost.seen.lock().expect("lock").clone();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert!(seen.iter().all(|e| e.status == 200));
    assert!(seen[0].idempotency_key.is_some());
    assert_eq!(seen[0].idempotency_key, seen[1].idempotency_key, "same key");
    assert!(!seen[0].replayed);
    assert!(seen[1].replayed, "the API replayed the first answer");
    assert_eq!(
        seen[0].body["ticket"].as_str(),
        Some(assignment.ticket.to_base64url().as_str()),
        "the ticket of the lost answer is the ticket the installer got"
    );
    assert_eq!(api.registrations().await, 1, "one assignment");
}

/// A virtual clock: waits return at once and move the API's clock by as much.
struct VirtualClock {
    origin: Instant,
    skipped: Mutex<Duration>,
    api: ManualClock,
    sleeps: Mutex<Vec<Duration>>,
}

impl VirtualClock {
    fn new(api: ManualClock) -> Self {
        Self {
            origin: Instant::now(),
            skipped: Mutex::new(Duration::ZERO),
            api,
            sleeps: Mutex::new(Vec::new()),
        }
    }
}

impl ClientClock for VirtualClock {
    fn now(&self) -> Duration {
        self.origin.elapsed() + *self.skipped.lock().expect("lock")
    }

    fn sleep(&self, delay: Duration) -> BoxFuture<'static, ()> {
        self.sleeps.lock().expect("lock").push(delay);
        *self.skipped.lock().expect("lock") += delay;
        self.api
            .advance_ms(i64::try_from(delay.as_millis()).expect("ms"));
        Box::pin(async {})
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_apis_429_retry_after_is_honoured() {
    let ids = devices(3);
    let api = TestApi::start(vec![instance("dps-slow", 1)], &ids).await;
    let client = api.client();
    client.assignment(ids[0].clone()).await.expect("first");

    // What the API tells a client now about a second device.
    let raw = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(api.ca_pem.as_bytes()).unwrap())
        .build()
        .unwrap()
        .post(format!("{}/v1/assignments", api.url()))
        .bearer_auth(api.token())
        .json(&json!({"registration_id": ids[1]}))
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), 429);
    let retry_after: u64 = raw.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry_after >= 30, "about a minute: {retry_after}");
    let body: Value = raw.json().await.unwrap();
    assert_eq!(body["code"], "pool_rate_limited");

    // The client waits exactly that long (the server's hint beats the 20 ms jitter), then
    // succeeds.
    let clock = Arc::new(VirtualClock::new(api.clock.clone()));
    let mut config = api.config();
    config.retry.deadline = Duration::from_secs(300);
    let patient = ProvisioningApiClient::with_clock(
        config,
        Arc::new(StaticAccessToken::new(api.token())),
        clock.clone(),
    )
    .unwrap();
    let started = api.clock.now_ms();
    let second = patient
        .assignment(ids[1].clone())
        .await
        .expect("after the wait");
    assert_eq!(second.dps_instance, "dps-slow");
    assert_eq!(
        *clock.sleeps.lock().unwrap(),
        vec![Duration::from_secs(retry_after)]
    );
    assert_eq!(api.clock.now_ms() - started, 1_000 * retry_after as i64);

    // With less patience than the API asks for, the client does not wait at all: it reports
    // `throttled` with the server's Retry-After.
    let clock = Arc::new(VirtualClock::new(api.clock.clone()));
    let mut config = api.config();
    config.retry.deadline = Duration::from_secs(10);
    let hasty = ProvisioningApiClient::with_clock(
        config,
        Arc::new(StaticAccessToken::new(api.token())),
        clock.clone(),
    )
    .unwrap();
    let error = hasty.assignment(ids[2].clone()).await.unwrap_err();
    let ServiceError::Throttled {
        retry_after: Some(hint),
    } = error
    else {
        panic!("{error:?}")
    };
    assert!(hint > Duration::from_secs(10), "{hint:?}");
    assert!(clock.sleeps.lock().unwrap().is_empty());
    let public = hasty
        .assign(&ids[2], &IdempotencyKey::new_attempt(&ids[2]))
        .await
        .unwrap_err()
        .to_commission_error(&ids[2]);
    assert_eq!(public.code(), "throttled");
    assert_eq!(public.retry_after(), Some(hint));
}

/// Hands out tokens in order; a 401 moves to the next.
struct RotatingTokens {
    tokens: Vec<String>,
    current: AtomicUsize,
    refreshes: AtomicUsize,
}

impl RotatingTokens {
    fn new(tokens: Vec<String>) -> Arc<Self> {
        Arc::new(Self {
            tokens,
            current: AtomicUsize::new(0),
            refreshes: AtomicUsize::new(0),
        })
    }
}

#[async_trait]
impl AccessTokenSource for RotatingTokens {
    async fn access_token(&self) -> Result<AccessToken, TokenError> {
        let index = self.current.load(Ordering::SeqCst);
        self.tokens
            .get(index)
            .map(AccessToken::new)
            .ok_or(TokenError::SignInRequired {
                detail: "no more tokens".into(),
            })
    }

    async fn on_unauthorized(&self) -> Result<AccessToken, TokenError> {
        self.refreshes.fetch_add(1, Ordering::SeqCst);
        self.current.fetch_add(1, Ordering::SeqCst);
        self.access_token().await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_401_refreshes_the_token_once_and_retries() {
    let ids = devices(1);
    let api = TestApi::start(vec![instance("dps-a", 1_000)], &ids).await;
    let now = api.clock.now_unix();
    let expired = api
        .minter
        .sign(&api.minter.claims(TENANT, &[Role::Installer], now - 7_200));
    let wrong_audience = {
        let mut claims = api.minter.claims(TENANT, &[Role::Installer], now);
        claims["aud"] = json!("someone-else");
        api.minter.sign(&claims)
    };

    let tokens = RotatingTokens::new(vec![expired.clone(), api.token()]);
    let client = ProvisioningApiClient::new(api.config(), tokens.clone()).unwrap();
    client
        .assignment(ids[0].clone())
        .await
        .expect("after refresh");
    assert_eq!(tokens.refreshes.load(Ordering::SeqCst), 1);

    // A refreshed token that is refused too: no second refresh, `unauthorized`.
    let tokens = RotatingTokens::new(vec![expired, wrong_audience, api.token()]);
    let client = ProvisioningApiClient::new(api.config(), tokens.clone()).unwrap();
    let error = client
        .assign(&ids[0], &IdempotencyKey::new_attempt(&ids[0]))
        .await
        .unwrap_err();
    assert!(error.is_unauthorized(), "{error:?}");
    assert_eq!(error.to_commission_error(&ids[0]).code(), "unauthorized");
    assert_eq!(tokens.refreshes.load(Ordering::SeqCst), 1, "refreshed once");

    // A token that cannot be refreshed at all.
    let client = api.client_with(api.config());
    let stale =
        ProvisioningApiClient::new(api.config(), Arc::new(StaticAccessToken::new("not-a-jwt")))
            .unwrap();
    assert_eq!(
        stale.assignment(ids[0].clone()).await.unwrap_err(),
        ServiceError::Unauthorized
    );
    client
        .assignment(ids[0].clone())
        .await
        .expect("a good token still works");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_is_refused_unless_allowed_for_loopback() {
    let ids = devices(1);
    let api = TestApi::start(vec![instance("dps-a", 1_000)], &ids).await;
    let plain = api
        .api
        .clone()
        .bind("127.0.0.1:0".parse().unwrap())
        .await
        .expect("plain HTTP listener");
    let http_url = plain.base_url();
    let tokens = Arc::new(StaticAccessToken::new(api.token()));

    let refused =
        ProvisioningApiClient::new(ApiClientConfig::new(&http_url), tokens.clone()).unwrap_err();
    assert!(
        matches!(refused, ConfigError::InsecureUrl { .. }),
        "{refused}"
    );
    assert_eq!(refused.code(), "insecure_api_url");
    let remote = ProvisioningApiClient::new(
        ApiClientConfig::new("http://api.fieldlink.test").allowing_insecure_loopback(),
        tokens.clone(),
    )
    .unwrap_err();
    assert!(matches!(remote, ConfigError::InsecureNotLoopback { .. }));

    let allowed = ProvisioningApiClient::new(
        ApiClientConfig::new(&http_url).allowing_insecure_loopback(),
        tokens.clone(),
    )
    .unwrap();
    let assignment = allowed.assignment(ids[0].clone()).await.expect("over HTTP");
    assert_eq!(assignment.dps_instance, "dps-a");

    // HTTPS without the site's CA: the certificate is not trusted, nothing is sent.
    let mut untrusting = api.config();
    untrusting.extra_ca_pem = None;
    untrusting.retry.max_attempts = 1;
    let client = ProvisioningApiClient::new(untrusting, tokens.clone()).unwrap();
    let error = client.ticket_keys().await.unwrap_err();
    assert!(
        matches!(&error, ApiClientError::Unreachable { detail } if detail.contains("certificate")),
        "{error:?}"
    );
    assert_eq!(error.to_commission_error("x").code(), "api_unavailable");
    // A CA file without a certificate is a setup error.
    let bad = ProvisioningApiClient::new(api.config().with_ca_pem("garbage"), tokens).unwrap_err();
    assert_eq!(bad.code(), "invalid_ca_certificate");
    plain.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_breaker_opens_fails_fast_half_opens_and_closes() {
    let ids = devices(1);
    let mut api = TestApi::start(vec![instance("dps-a", 1_000)], &ids).await;
    let mut config = api.config();
    config.retry.max_attempts = 1;
    config.request_timeout = Duration::from_secs(3);
    config.breaker = BreakerConfig {
        failure_threshold: 3,
        cool_down: Duration::from_millis(600),
        probe_timeout: Duration::from_secs(5),
    };
    let client = api.client_with(config);
    client.ticket_keys().await.expect("up");
    assert_eq!(client.breaker_state(), BreakerState::Closed);

    api.stop().await;
    for attempt in 1..=3 {
        let error = client.ticket_keys().await.unwrap_err();
        assert!(
            matches!(error, ApiClientError::Unreachable { .. }),
            "attempt {attempt}: {error:?}"
        );
    }
    assert_eq!(client.breaker_state(), BreakerState::Open);

    // The API comes back, but the breaker keeps failing fast until the cool-down is over.
    api.serve();
    let started = Instant::now();
    let error = client.assignment(ids[0].clone()).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_millis(100), "fails fast");
    let ServiceError::Unavailable { detail } = &error else {
        panic!("{error:?}")
    };
    assert!(detail.contains("3 times in a row"), "{detail}");
    assert_eq!(api.registrations().await, 0, "nothing reached the API");

    tokio::time::sleep(Duration::from_millis(650)).await;
    assert_eq!(client.breaker_state(), BreakerState::HalfOpen);
    client
        .assignment(ids[0].clone())
        .await
        .expect("the probe succeeds");
    assert_eq!(client.breaker_state(), BreakerState::Closed);

    // A failed probe opens it again for another cool-down.
    api.stop().await;
    for _ in 0..3 {
        client.ticket_keys().await.unwrap_err();
    }
    tokio::time::sleep(Duration::from_millis(650)).await;
    assert_eq!(client.breaker_state(), BreakerState::HalfOpen);
    let probe = client.ticket_keys().await.unwrap_err();
    assert!(
        matches!(probe, ApiClientError::Unreachable { .. }),
        "{probe:?}"
    );
    assert_eq!(client.breaker_state(), BreakerState::Open);
    assert!(matches!(
        client.ticket_keys().await.unwrap_err(),
        ApiClientError::CircuitOpen { .. }
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_wait_has_a_deadline() {
    // Accepts connections and never answers (not even the TLS handshake).
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let held = Arc::new(Mutex::new(Vec::new()));
    let holder = held.clone();
    let black_hole = tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            holder.lock().unwrap().push(socket);
        }
    });
    let config = |request_timeout: Duration, deadline: Duration| {
        let mut config = ApiClientConfig::new(format!("https://127.0.0.1:{}", addr.port()));
        config.request_timeout = request_timeout;
        config.retry = RetryPolicy {
            initial_delay: Duration::from_millis(20),
            max_delay: Duration::from_millis(50),
            max_attempts: 3,
            deadline,
        };
        config.breaker.failure_threshold = 100;
        config
    };
    let tokens = Arc::new(StaticAccessToken::new("t"));

    // Per request: three attempts of 300 ms each.
    let client = ProvisioningApiClient::new(
        config(Duration::from_millis(300), Duration::from_secs(20)),
        tokens.clone(),
    )
    .unwrap();
    let started = Instant::now();
    let error = client.ticket_keys().await.unwrap_err();
    let elapsed = started.elapsed();
    assert_eq!(
        error,
        ApiClientError::TimedOut {
            after: Duration::from_millis(300)
        }
    );
    assert!(
        elapsed >= Duration::from_millis(900) && elapsed < Duration::from_secs(3),
        "{elapsed:?}"
    );
    assert_eq!(held.lock().unwrap().len(), 3, "three connection attempts");

    // Overall: a 10 s request deadline is cut to what is left of the 700 ms budget.
    let client = ProvisioningApiClient::new(
        config(Duration::from_secs(10), Duration::from_millis(700)),
        tokens,
    )
    .unwrap();
    let started = Instant::now();
    let error = client.assignment("sensor-0001".into()).await.unwrap_err();
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(650) && elapsed < Duration::from_millis(1_500),
        "{elapsed:?}"
    );
    assert!(
        matches!(error, ServiceError::Unavailable { .. }),
        "{error:?}"
    );
    black_hole.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_status_errors_are_typed() {
    let ids = devices(2);
    let api = TestApi::start(vec![instance("dps-a", 1_000)], &ids).await;
    let client = api.client();
    let unknown = client.registration("sensor-9999").await.unwrap_err();
    assert_eq!(
        unknown.to_service_error("sensor-9999"),
        ServiceError::UnknownRegistration {
            registration_id: "sensor-9999".into()
        }
    );
    assert_eq!(
        unknown.to_commission_error("sensor-9999").code(),
        "invalid_payload"
    );
    // Allowlisted but never assigned: a conflict the API explains.
    let unassigned = client.registration(&ids[1]).await.unwrap_err();
    let ApiClientError::Status { reply } = &unassigned else {
        panic!("{unassigned:?}")
    };
    assert_eq!(
        (reply.status, reply.code.as_str()),
        (409, "device_not_assigned")
    );
    // Assigned, but the instance has no DPS service credentials: the API says it is
    // permanent, so the client neither retries nor holds it against the API's health.
    let assignment = client.assignment(ids[0].clone()).await.unwrap();
    let started = Instant::now();
    let error = client
        .registration_status(ids[0].clone(), assignment)
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(2));
    let ServiceError::Unavailable { detail } = &error else {
        panic!("{error:?}")
    };
    assert!(detail.contains("dps_credentials_missing"), "{detail}");
    assert_eq!(client.breaker_state(), BreakerState::Closed);
}
