//! [`ProvisioningApiClient`]: HTTPS calls to the provisioning API with deadlines, retries
//! (exponential backoff with full jitter, `Retry-After` honoured), one token refresh on 401 and
//! a circuit breaker; it is the workflow's [`AssignmentSource`] and
//! [`RegistrationStatusSource`].

use std::{
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use async_trait::async_trait;
use fieldlink_protocol::{registration_id::validate_registration_id, ticket::TrustAnchors};
use reqwest::{
    Method,
    header::{ACCEPT, CONTENT_TYPE, HeaderMap},
};
use serde::de::DeserializeOwned;
use url::Url;

use super::{
    breaker::{BreakerState, CircuitBreaker},
    clock::{ClientClock, TokioClock},
    config::{ApiClientConfig, ConfigError},
    error::{ApiClientError, ErrorReply},
    idempotency::{AttemptKeys, IdempotencyKey},
    token::{AccessToken, AccessTokenSource},
    wire::{
        AssignmentBody, AssignmentRequest, IssuedAssignment, RegistrationBody, ServiceRegistration,
        TicketKey, TicketKeySetBody,
    },
};
use crate::{
    assignment::{
        Assignment, AssignmentSource, DpsScope, RegistrationStatusSource, RegistrationView,
        ServiceError,
    },
    retry::RetryPolicy,
    workflow::service_call::{self, ServiceRetry},
};

/// Largest answer body read.
const MAX_BODY: usize = 1024 * 1024;
/// The request header carrying the idempotency key.
const IDEMPOTENCY_KEY: &str = "idempotency-key";
/// The answer header marking a replayed idempotent answer.
const IDEMPOTENT_REPLAYED: &str = "idempotent-replayed";

/// The provisioning API's client. Cheap to clone; clones share the connection pool, the
/// breaker and the attempt keys.
#[derive(Clone)]
pub struct ProvisioningApiClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    base: Url,
    request_timeout: Duration,
    retry: RetryPolicy,
    tokens: Arc<dyn AccessTokenSource>,
    breaker: Mutex<CircuitBreaker>,
    attempts: AttemptKeys,
    clock: Arc<dyn ClientClock>,
}

impl std::fmt::Debug for ProvisioningApiClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProvisioningApiClient")
            .field("base", &self.inner.base.as_str())
            .field("request_timeout", &self.inner.request_timeout)
            .field("retry", &self.inner.retry)
            .finish_non_exhaustive()
    }
}

/// One logical request (retried as a whole).
struct Request<'a> {
    method: Method,
    url: Url,
    body: Option<Vec<u8>>,
    idempotency_key: Option<&'a IdempotencyKey>,
    authenticated: bool,
}

/// A 2xx answer.
struct Answer {
    headers: HeaderMap,
    body: Vec<u8>,
}

impl ProvisioningApiClient {
    /// A client for `config`, authenticating with `tokens`.
    pub fn new(
        config: ApiClientConfig,
        tokens: Arc<dyn AccessTokenSource>,
    ) -> Result<Self, ConfigError> {
        Self::with_clock(config, tokens, Arc::new(TokioClock::new()))
    }

    /// Like [`new`](Self::new), with another clock for deadlines, the breaker and the waits
    /// between retries.
    pub fn with_clock(
        config: ApiClientConfig,
        tokens: Arc<dyn AccessTokenSource>,
        clock: Arc<dyn ClientClock>,
    ) -> Result<Self, ConfigError> {
        let base = config.checked_base_url()?;
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_native_certs(true)
            .min_tls_version(reqwest::tls::Version::TLS_1_2)
            .https_only(base.scheme() == "https")
            .connect_timeout(config.connect_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("fieldlink-core/", env!("CARGO_PKG_VERSION")));
        if let Some(pem) = &config.extra_ca_pem {
            let certificates =
                reqwest::Certificate::from_pem_bundle(pem.as_bytes()).map_err(|error| {
                    ConfigError::InvalidCaPem {
                        detail: error_chain(&error),
                    }
                })?;
            if certificates.is_empty() {
                return Err(ConfigError::InvalidCaPem {
                    detail: "no PEM certificate found".to_owned(),
                });
            }
            for certificate in certificates {
                builder = builder.add_root_certificate(certificate);
            }
        }
        let http = builder.build().map_err(|error| ConfigError::HttpClient {
            detail: error_chain(&error),
        })?;
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                base,
                request_timeout: config.request_timeout,
                retry: config.retry,
                tokens,
                breaker: Mutex::new(CircuitBreaker::new(config.breaker)),
                attempts: AttemptKeys::new(config.attempt_key_ttl),
                clock,
            }),
        })
    }

    /// The API's base URL.
    pub fn base_url(&self) -> &Url {
        &self.inner.base
    }

    /// The circuit breaker's state now.
    pub fn breaker_state(&self) -> BreakerState {
        self.breaker().state(self.inner.clock.now())
    }

    /// `POST /v1/assignments` for `registration_id` with `key` as its `Idempotency-Key`: the
    /// same key always gets the same answer (ticket included) while the API remembers it.
    pub async fn assign(
        &self,
        registration_id: &str,
        key: &IdempotencyKey,
    ) -> Result<IssuedAssignment, ApiClientError> {
        check_registration_id(registration_id)?;
        let body = serde_json::to_vec(&AssignmentRequest {
            registration_id,
            region: None,
        })
        .map_err(|error| ApiClientError::InvalidRegistrationId {
            registration_id: registration_id.to_owned(),
            reason: error.to_string(),
        })?;
        let answer = self
            .execute(Request {
                method: Method::POST,
                url: self.url(&["v1", "assignments"]),
                body: Some(body),
                idempotency_key: Some(key),
                authenticated: true,
            })
            .await?;
        let replayed = answer
            .headers
            .get(IDEMPOTENT_REPLAYED)
            .is_some_and(|value| value.as_bytes().eq_ignore_ascii_case(b"true"));
        decode::<AssignmentBody>(&answer.body)?.into_issued(registration_id, replayed)
    }

    /// `GET /v1/devices/{registration_id}/registration`: DPS's record, via the API.
    pub async fn registration(
        &self,
        registration_id: &str,
    ) -> Result<ServiceRegistration, ApiClientError> {
        check_registration_id(registration_id)?;
        let answer = self
            .execute(Request {
                method: Method::GET,
                url: self.url(&["v1", "devices", registration_id, "registration"]),
                body: None,
                idempotency_key: None,
                authenticated: true,
            })
            .await?;
        decode::<RegistrationBody>(&answer.body)?.into_registration(registration_id)
    }

    /// `GET /v1/ticket-keys`: the keys the API signs tickets with (current first).
    pub async fn ticket_keys(&self) -> Result<Vec<TicketKey>, ApiClientError> {
        let answer = self
            .execute(Request {
                method: Method::GET,
                url: self.url(&["v1", "ticket-keys"]),
                body: None,
                idempotency_key: None,
                authenticated: false,
            })
            .await?;
        decode::<TicketKeySetBody>(&answer.body)?.into_keys()
    }

    /// The API's ticket keys as trust anchors (what devices are provisioned with).
    pub async fn ticket_trust_anchors(&self) -> Result<TrustAnchors, ApiClientError> {
        let mut anchors = TrustAnchors::new();
        for key in self.ticket_keys().await? {
            anchors.insert(key.key_id, key.public_key);
        }
        Ok(anchors)
    }

    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.inner.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }

    fn breaker(&self) -> MutexGuard<'_, CircuitBreaker> {
        self.inner
            .breaker
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Runs `request` under the retry policy, the overall deadline and the breaker.
    ///
    /// This is the one layer that retries the API's transient failures (transport errors and
    /// timeouts, retryable 5xx, 408, 429 with `Retry-After`): the workflow calls once and does
    /// not retry what comes back. Inside a workflow call the budget is the smaller of the
    /// policy's deadline and what the step leaves
    /// ([`service_call::budget`](crate::workflow::service_call::budget)), and every scheduled
    /// retry is reported to it ([`service_call::report_retry`]) with the true attempt counts.
    async fn execute(&self, request: Request<'_>) -> Result<Answer, ApiClientError> {
        let inner = &*self.inner;
        let started = inner.clock.now();
        let deadline = service_call::budget()
            .map_or(inner.retry.deadline, |step| step.min(inner.retry.deadline));
        let policy = RetryPolicy {
            deadline,
            ..inner.retry
        };
        let mut backoff = policy.backoff();
        let mut refreshed: Option<AccessToken> = None;
        let mut last_error = None;
        loop {
            let elapsed = inner.clock.now().saturating_sub(started);
            let remaining = deadline.saturating_sub(elapsed);
            if remaining.is_zero() {
                return Err(last_error.unwrap_or(ApiClientError::TimedOut { after: deadline }));
            }
            self.fail_fast_if_open()?;
            let token = match (request.authenticated, refreshed.clone()) {
                (false, _) => None,
                (true, Some(fresh)) => Some(fresh),
                (true, None) => Some(
                    inner
                        .tokens
                        .access_token()
                        .await
                        .map_err(ApiClientError::Token)?,
                ),
            };
            let permit = self.breaker().try_acquire(inner.clock.now());
            if let Err(rejected) = permit {
                return Err(ApiClientError::CircuitOpen {
                    retry_in: rejected.retry_in,
                    failures: rejected.failures,
                });
            }
            let timeout = inner.request_timeout.min(remaining);
            let outcome = self.send_once(&request, token.as_ref(), timeout).await;
            self.record(&outcome);
            let error = match outcome {
                Ok(answer) => return Ok(answer),
                Err(error) => error,
            };
            if error.is_unauthorized() && refreshed.is_none() && token.is_some() {
                tracing::debug!(url = %request.url, "401: refreshing the access token once");
                let fresh = inner
                    .tokens
                    .on_unauthorized()
                    .await
                    .map_err(ApiClientError::Token)?;
                refreshed = Some(fresh);
                last_error = Some(error);
                continue;
            }
            let Some(retry_after) = error.retry_hint() else {
                return Err(error);
            };
            let elapsed = inner.clock.now().saturating_sub(started);
            match backoff.next_delay(Some(elapsed), retry_after) {
                Some(delay) => {
                    tracing::debug!(
                        url = %request.url,
                        attempt = backoff.attempts_made() - 1,
                        %error,
                        delay_ms = delay.as_millis(),
                        "retrying the provisioning API"
                    );
                    service_call::report_retry(ServiceRetry {
                        next_attempt: backoff.attempts_made(),
                        max_attempts: policy.max_attempts,
                        wait: delay,
                        retry_after,
                        reason: error.retry_reason(),
                    });
                    last_error = Some(error);
                    inner.clock.sleep(delay).await;
                }
                None => return Err(error),
            }
        }
    }

    fn fail_fast_if_open(&self) -> Result<(), ApiClientError> {
        let now = self.inner.clock.now();
        let mut breaker = self.breaker();
        if breaker.state(now) == BreakerState::Open
            && let Err(rejected) = breaker.try_acquire(now)
        {
            return Err(ApiClientError::CircuitOpen {
                retry_in: rejected.retry_in,
                failures: rejected.failures,
            });
        }
        Ok(())
    }

    fn record(&self, outcome: &Result<Answer, ApiClientError>) {
        let now = self.inner.clock.now();
        let mut breaker = self.breaker();
        match outcome {
            Err(error) if error.is_api_failure() => breaker.on_failure(now),
            _ => breaker.on_success(),
        }
    }

    /// One HTTP exchange within `timeout`.
    async fn send_once(
        &self,
        request: &Request<'_>,
        token: Option<&AccessToken>,
        timeout: Duration,
    ) -> Result<Answer, ApiClientError> {
        let exchange = async {
            let mut builder = self
                .inner
                .http
                .request(request.method.clone(), request.url.clone())
                .timeout(timeout)
                .header(ACCEPT, "application/json");
            if let Some(token) = token {
                builder = builder.bearer_auth(token.expose());
            }
            if let Some(key) = request.idempotency_key {
                builder = builder.header(IDEMPOTENCY_KEY, key.as_str());
            }
            if let Some(body) = &request.body {
                builder = builder
                    .header(CONTENT_TYPE, "application/json")
                    .body(body.clone());
            }
            let response = builder
                .send()
                .await
                .map_err(|error| transport_error(&error, timeout))?;
            let status = response.status();
            let headers = response.headers().clone();
            let body = read_capped(response, timeout).await?;
            if status.is_success() {
                Ok(Answer { headers, body })
            } else {
                Err(ApiClientError::Status {
                    reply: ErrorReply::parse(status, &headers, &body),
                })
            }
        };
        // reqwest's own timeout covers the whole exchange; this one is the backstop.
        match tokio::time::timeout(timeout + Duration::from_millis(50), exchange).await {
            Ok(outcome) => outcome,
            Err(_) => Err(ApiClientError::TimedOut { after: timeout }),
        }
    }
}

/// Reads at most [`MAX_BODY`] bytes of `response`.
async fn read_capped(
    mut response: reqwest::Response,
    timeout: Duration,
) -> Result<Vec<u8>, ApiClientError> {
    let too_large = || ApiClientError::InvalidAnswer {
        detail: format!("the answer is larger than {MAX_BODY} bytes"),
    };
    if response
        .content_length()
        .is_some_and(|length| length > MAX_BODY as u64)
    {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|error| transport_error(&error, timeout))?
    {
        if body.len() + chunk.len() > MAX_BODY {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiClientError> {
    serde_json::from_slice(body).map_err(|error| ApiClientError::InvalidAnswer {
        detail: format!("unexpected JSON: {error}"),
    })
}

fn check_registration_id(registration_id: &str) -> Result<(), ApiClientError> {
    validate_registration_id(registration_id).map_err(|error| {
        ApiClientError::InvalidRegistrationId {
            registration_id: registration_id.chars().take(140).collect(),
            reason: error.to_string(),
        }
    })
}

fn transport_error(error: &reqwest::Error, timeout: Duration) -> ApiClientError {
    if error.is_timeout() {
        ApiClientError::TimedOut { after: timeout }
    } else {
        ApiClientError::Unreachable {
            detail: error_chain(error),
        }
    }
}

/// An error and its sources, `": "`-joined (reqwest hides the cause of a connect failure in
/// the chain).
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let message = cause.to_string();
        if !text.contains(&message) {
            text.push_str(": ");
            text.push_str(&message);
        }
        source = cause.source();
    }
    text
}

#[async_trait]
impl AssignmentSource for ProvisioningApiClient {
    /// Reuses the device's unfinished attempt's `Idempotency-Key` (so a retry after a lost
    /// answer gets the same ticket), and starts a new attempt once an assignment was handed
    /// out or the API refused for good.
    async fn assignment(&self, registration_id: String) -> Result<Assignment, ServiceError> {
        let attempts = &self.inner.attempts;
        let key = attempts.current(&registration_id, self.inner.clock.now());
        match self.assign(&registration_id, &key).await {
            Ok(issued) => {
                attempts.finish(&registration_id, &key);
                Ok(issued.assignment)
            }
            Err(error) => {
                if error.is_definitive_refusal() {
                    attempts.finish(&registration_id, &key);
                }
                Err(error.to_service_error(&registration_id))
            }
        }
    }
}

#[async_trait]
impl RegistrationStatusSource for ProvisioningApiClient {
    /// The API's view of DPS; an answer about another DPS scope than the ticket's is a
    /// [`ServiceError::ScopeMismatch`].
    async fn registration_status(
        &self,
        registration_id: String,
        assignment: Assignment,
    ) -> Result<RegistrationView, ServiceError> {
        let registration = self
            .registration(&registration_id)
            .await
            .map_err(|error| error.to_service_error(&registration_id))?;
        if registration.id_scope != assignment.id_scope {
            return Err(ServiceError::ScopeMismatch {
                expected: DpsScope::of(&assignment),
                reported: DpsScope {
                    id_scope: registration.id_scope,
                    dps_instance: registration.dps_instance,
                },
                view: Box::new(registration.view),
            });
        }
        Ok(registration.view)
    }
}
