use std::{
    collections::VecDeque,
    sync::atomic::{AtomicUsize, Ordering},
};

use async_trait::async_trait;

use super::*;
use crate::{
    clock::SystemClock, dps::DeviceRegistrationState, model::ServiceCredentials,
    secret::SecretString,
};

/// Answers from a script, counting calls.
struct ScriptedDps {
    script: Mutex<VecDeque<Result<RegistrationLookup, DpsServiceError>>>,
    calls: AtomicUsize,
    delay: Duration,
}

impl ScriptedDps {
    fn new(script: Vec<Result<RegistrationLookup, DpsServiceError>>, delay: Duration) -> Arc<Self> {
        Arc::new(Self {
            script: Mutex::new(script.into()),
            calls: AtomicUsize::new(0),
            delay,
        })
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl DpsServiceClient for ScriptedDps {
    async fn registration_state(
        &self,
        _target: &DpsServiceTarget,
        _registration_id: &str,
        _now_unix: i64,
    ) -> Result<RegistrationLookup, DpsServiceError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(self.delay).await;
        lock(&self.script)
            .pop_front()
            .unwrap_or(Err(DpsServiceError::Unexpected {
                message: "script exhausted".to_owned(),
            }))
    }
}

fn assigned() -> RegistrationLookup {
    RegistrationLookup::Found(Box::new(DeviceRegistrationState {
        registration_id: "dev-1".to_owned(),
        created_date_time_utc: None,
        assigned_hub: Some("hub-1".to_owned()),
        device_id: Some("dev-1".to_owned()),
        status: "assigned".to_owned(),
        substatus: Some("initialAssignment".to_owned()),
        error_code: None,
        error_message: None,
        last_updated_date_time_utc: None,
        etag: None,
    }))
}

fn target() -> DpsServiceTarget {
    DpsServiceTarget {
        instance: "dps-1".to_owned(),
        service_endpoint: "http://127.0.0.1:1".to_owned(),
        credentials: ServiceCredentials {
            policy_name: "owner".to_owned(),
            key: SecretString::new("a2V5"),
            resource_uri: None,
        },
    }
}

fn config() -> RegistrationStatusConfig {
    RegistrationStatusConfig {
        cache_ttl: Duration::from_millis(200),
        deadline: Duration::from_millis(500),
        max_attempts: 3,
        backoff: Backoff {
            base: Duration::from_millis(5),
            cap: Duration::from_millis(20),
        },
        max_cache_entries: 16,
    }
}

fn service(dps: Arc<ScriptedDps>) -> RegistrationStatus {
    RegistrationStatus::new(dps, Arc::new(SystemClock), config())
}

fn throttled(ms: u64) -> Result<RegistrationLookup, DpsServiceError> {
    Err(DpsServiceError::Throttled {
        retry_after: Some(Duration::from_millis(ms)),
    })
}

#[tokio::test]
async fn caches_answers_briefly() {
    let dps = ScriptedDps::new(
        vec![Ok(assigned()), Ok(RegistrationLookup::NotFound)],
        Duration::ZERO,
    );
    let status = service(dps.clone());
    let first = status.lookup(&target(), "dev-1").await.expect("answer");
    assert!(!first.cached);
    let second = status.lookup(&target(), "dev-1").await.expect("cached");
    assert!(second.cached);
    assert_eq!(second.lookup, assigned());
    assert_eq!(dps.calls(), 1);
    tokio::time::sleep(Duration::from_millis(250)).await;
    let third = status.lookup(&target(), "dev-1").await.expect("refetched");
    assert_eq!(third.lookup, RegistrationLookup::NotFound);
    assert_eq!(dps.calls(), 2);
}

#[tokio::test]
async fn retries_after_429_honouring_retry_after() {
    let dps = ScriptedDps::new(vec![throttled(60), Ok(assigned())], Duration::ZERO);
    let status = service(dps.clone());
    let started = Instant::now();
    let answer = status.lookup(&target(), "dev-1").await.expect("second try");
    assert!(started.elapsed() >= Duration::from_millis(60));
    assert_eq!(answer.lookup, assigned());
    assert_eq!(dps.calls(), 2);
}

#[tokio::test]
async fn long_retry_after_is_surfaced_and_remembered() {
    let dps = ScriptedDps::new(vec![throttled(2_000), Ok(assigned())], Duration::ZERO);
    let status = service(dps.clone());
    match status.lookup(&target(), "dev-1").await {
        Err(StatusError::Throttled { retry_after }) => {
            assert!(retry_after >= Duration::from_millis(2_000))
        }
        other => panic!("expected throttled, got {other:?}"),
    }
    // Another device on the same instance is not sent to DPS while it is throttling.
    match status.lookup(&target(), "dev-2").await {
        Err(StatusError::Throttled { retry_after }) => {
            assert!(retry_after > Duration::from_millis(1_000))
        }
        other => panic!("expected throttled, got {other:?}"),
    }
    assert_eq!(dps.calls(), 1);
}

#[tokio::test]
async fn gives_up_on_persistent_5xx_after_max_attempts() {
    let unavailable = || {
        Err(DpsServiceError::Unavailable {
            retry_after: None,
            message: "HTTP 503".to_owned(),
        })
    };
    let dps = ScriptedDps::new(
        vec![unavailable(), unavailable(), unavailable(), Ok(assigned())],
        Duration::ZERO,
    );
    let status = service(dps.clone());
    match status.lookup(&target(), "dev-1").await {
        Err(StatusError::Unavailable { message, .. }) => assert_eq!(message, "HTTP 503"),
        other => panic!("expected unavailable, got {other:?}"),
    }
    assert_eq!(dps.calls(), 3);
}

#[tokio::test]
async fn credentials_rejection_is_not_retried() {
    let dps = ScriptedDps::new(
        vec![
            Err(DpsServiceError::CredentialsRejected { status: 401 }),
            Ok(assigned()),
        ],
        Duration::ZERO,
    );
    let status = service(dps.clone());
    assert_eq!(
        status.lookup(&target(), "dev-1").await,
        Err(StatusError::CredentialsRejected)
    );
    assert_eq!(dps.calls(), 1);
}

#[tokio::test]
async fn a_slow_dps_hits_the_deadline() {
    let dps = ScriptedDps::new(vec![Ok(assigned())], Duration::from_secs(5));
    let status = service(dps);
    let started = Instant::now();
    assert!(matches!(
        status.lookup(&target(), "dev-1").await,
        Err(StatusError::Unavailable { .. })
    ));
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn concurrent_lookups_share_one_call() {
    let dps = ScriptedDps::new(
        vec![Ok(assigned()), Ok(assigned())],
        Duration::from_millis(50),
    );
    let status = Arc::new(service(dps.clone()));
    let lookups: Vec<_> = (0..20)
        .map(|_| {
            let status = status.clone();
            tokio::spawn(async move { status.lookup(&target(), "dev-1").await })
        })
        .collect();
    for lookup in lookups {
        assert_eq!(
            lookup.await.expect("task").expect("answer").lookup,
            assigned()
        );
    }
    assert_eq!(dps.calls(), 1);
    assert!(lock(&status.in_flight).is_empty());
}
