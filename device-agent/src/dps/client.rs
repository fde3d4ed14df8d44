//! The HTTP side of the DPS client.

use std::time::Duration;

use fieldlink_protocol::sas;
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use url::Url;

use super::wire::{DeviceRegistration, DeviceRegistrationResult, ErrorDetails, OperationStatus};
use super::{
    DpsError, DpsProgress, DpsStep, OutcomeSource, RegistrationOutcome, RegistrationState,
    RegistrationStatus,
};
use crate::backoff::Backoff;
use crate::clock::{SharedClock, duration_ms};
use crate::store::DpsCredential;

/// Largest DPS response body accepted (the DPS message limit is 96 KB).
const MAX_BODY: usize = 96 * 1024;

/// DPS client settings.
#[derive(Debug, Clone)]
pub struct DpsClientConfig {
    /// `api-version` query parameter.
    pub api_version: String,
    /// Extra trusted CA certificates (PEM), e.g. the DPS emulator's CA.
    pub extra_ca_pem: Option<Vec<u8>>,
    /// Deadline of one HTTP request.
    pub request_timeout: Duration,
    /// Deadline of a TCP/TLS connect.
    pub connect_timeout: Duration,
    /// Poll interval when DPS sends no `Retry-After`.
    pub default_poll_interval: Duration,
    /// Retry delays on 429/5xx/transport errors.
    pub backoff: Backoff,
    /// Lifetime of each SAS token.
    pub sas_lifetime: Duration,
}

impl Default for DpsClientConfig {
    fn default() -> Self {
        Self {
            api_version: "2021-10-01".into(),
            extra_ca_pem: None,
            request_timeout: Duration::from_secs(15),
            connect_timeout: Duration::from_secs(5),
            default_poll_interval: Duration::from_secs(2),
            backoff: Backoff::default(),
            sas_lifetime: Duration::from_secs(3600),
        }
    }
}

/// What to register.
#[derive(Debug, Clone, Copy)]
pub struct RegistrationRequest<'a> {
    /// DPS global endpoint: a host name (`global.azure-devices-provisioning.net`, HTTPS implied)
    /// or a base URL (`https://127.0.0.1:4443`).
    pub global_endpoint: &'a str,
    /// ID scope.
    pub id_scope: &'a str,
    /// Registration ID.
    pub registration_id: &'a str,
    /// The device's symmetric-key credential.
    pub credential: &'a DpsCredential,
    /// Optional custom-allocation payload.
    pub payload: Option<&'a serde_json::Value>,
}

/// Azure DPS device client.
#[derive(Clone)]
pub struct DpsClient {
    http: reqwest::Client,
    config: DpsClientConfig,
    clock: SharedClock,
}

impl std::fmt::Debug for DpsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DpsClient")
            .field("api_version", &self.config.api_version)
            .finish_non_exhaustive()
    }
}

/// A response worth interpreting (2xx or a non-retryable 4xx).
struct Answer {
    status: StatusCode,
    retry_after: Option<Duration>,
    body: Vec<u8>,
}

impl DpsClient {
    /// Builds a client (rustls, with the extra CA if any).
    pub fn new(config: DpsClientConfig, clock: SharedClock) -> Result<Self, DpsError> {
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .connect_timeout(config.connect_timeout)
            .user_agent(concat!(
                "fieldlink-device-agent/",
                env!("CARGO_PKG_VERSION")
            ));
        if let Some(pem) = &config.extra_ca_pem {
            let certificates = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|error| DpsError::ClientSetup(format!("extra CA PEM: {error}")))?;
            if certificates.is_empty() {
                return Err(DpsError::ClientSetup(
                    "extra CA PEM holds no certificate".into(),
                ));
            }
            for certificate in certificates {
                builder = builder.add_root_certificate(certificate);
            }
        }
        let http = builder
            .build()
            .map_err(|error| DpsError::ClientSetup(error.to_string()))?;
        Ok(Self {
            http,
            config,
            clock,
        })
    }

    /// Registers the device: status lookup first; `PUT …/register` and polling only if DPS has
    /// no final state. Returns the final state (assigned, failed or disabled), or an error if none
    /// was reached before `deadline_ms` (Unix ms of the injected clock).
    pub async fn register(
        &self,
        request: &RegistrationRequest<'_>,
        deadline_ms: u64,
        progress: &mut (dyn FnMut(DpsProgress) + Send),
    ) -> Result<RegistrationOutcome, DpsError> {
        progress(DpsProgress::LookingUp);
        if let Some(state) = self.status_lookup(request, deadline_ms, progress).await?
            && state.status == RegistrationStatus::Assigned
        {
            return Ok(RegistrationOutcome {
                state,
                source: OutcomeSource::StatusLookup,
                operation_id: None,
            });
        }
        progress(DpsProgress::Registering);
        let url = self.url(request, &["register"])?;
        let body = registration_body(request)?;
        let answer = self
            .send(
                DpsStep::Register,
                deadline_ms,
                progress,
                || self.http.put(url.clone()).body(body.clone()),
                request,
            )
            .await?;
        let mut status = parse_operation(DpsStep::Register, &answer)?;
        let operation_id = status
            .operation_id
            .clone()
            .ok_or(DpsError::InvalidResponse {
                step: DpsStep::Register,
                reason: "no operationId".into(),
            })?;
        progress(DpsProgress::Assigning {
            operation_id: operation_id.clone(),
        });
        let poll_url = self.url(request, &["operations", &operation_id])?;
        let mut wait = answer.retry_after;
        loop {
            if let Some(state) = final_state(&status, request.registration_id) {
                return Ok(RegistrationOutcome {
                    state,
                    source: OutcomeSource::Registration,
                    operation_id: Some(operation_id),
                });
            }
            let pause = wait.unwrap_or(self.config.default_poll_interval);
            let wake = self.clock.now_ms().saturating_add(duration_ms(pause));
            if wake >= deadline_ms {
                return Err(DpsError::DeadlineExceeded {
                    step: DpsStep::PollOperation,
                });
            }
            self.clock.sleep_until(wake).await;
            let answer = self
                .send(
                    DpsStep::PollOperation,
                    deadline_ms,
                    progress,
                    || self.http.get(poll_url.clone()),
                    request,
                )
                .await?;
            status = parse_operation(DpsStep::PollOperation, &answer)?;
            wait = answer.retry_after;
        }
    }

    /// Device Registration Status Lookup: the registration state DPS holds, or `None` when DPS
    /// has none (any 4xx: never registered, or not visible with this credential).
    pub async fn status_lookup(
        &self,
        request: &RegistrationRequest<'_>,
        deadline_ms: u64,
        progress: &mut (dyn FnMut(DpsProgress) + Send),
    ) -> Result<Option<RegistrationState>, DpsError> {
        let url = self.url(request, &[])?;
        let body = registration_body(request)?;
        let answer = self
            .send(
                DpsStep::StatusLookup,
                deadline_ms,
                progress,
                || self.http.post(url.clone()).body(body.clone()),
                request,
            )
            .await?;
        if !answer.status.is_success() {
            return Ok(None);
        }
        let result: DeviceRegistrationResult =
            serde_json::from_slice(&answer.body).map_err(|error| DpsError::InvalidResponse {
                step: DpsStep::StatusLookup,
                reason: error.to_string(),
            })?;
        Ok(result.into_state(request.registration_id))
    }

    fn url(&self, request: &RegistrationRequest<'_>, tail: &[&str]) -> Result<Url, DpsError> {
        let mut url = endpoint_base(request.global_endpoint)?;
        {
            let mut segments = url
                .path_segments_mut()
                .map_err(|()| DpsError::InvalidEndpoint {
                    endpoint: request.global_endpoint.to_owned(),
                    reason: "cannot be a base URL".into(),
                })?;
            segments
                .pop_if_empty()
                .extend([request.id_scope, "registrations", request.registration_id])
                .extend(tail);
        }
        url.query_pairs_mut()
            .append_pair("api-version", &self.config.api_version);
        Ok(url)
    }

    fn authorization(&self, request: &RegistrationRequest<'_>) -> Result<String, DpsError> {
        let key = match request.credential {
            DpsCredential::SymmetricKey { key } => key.clone(),
            DpsCredential::GroupKey { group_key } => crate::secret::SecretString::new(
                sas::derive_group_device_key(group_key.expose(), request.registration_id)
                    .map_err(|error| DpsError::Credential(error.to_string()))?,
            ),
        };
        let expiry_ms = self
            .clock
            .now_ms()
            .saturating_add(duration_ms(self.config.sas_lifetime));
        let expiry = i64::try_from(expiry_ms / 1000).unwrap_or(i64::MAX);
        sas::device_sas_token(
            request.id_scope,
            request.registration_id,
            key.expose(),
            expiry,
        )
        .map_err(|error| DpsError::Credential(error.to_string()))
    }

    /// Sends one request until it gets a non-retryable answer, retrying transport errors, 429
    /// and 5xx with backoff until `deadline_ms`.
    async fn send(
        &self,
        step: DpsStep,
        deadline_ms: u64,
        progress: &mut (dyn FnMut(DpsProgress) + Send),
        build: impl Fn() -> reqwest::RequestBuilder,
        request: &RegistrationRequest<'_>,
    ) -> Result<Answer, DpsError> {
        let mut retries: u32 = 0;
        loop {
            let remaining = deadline_ms.saturating_sub(self.clock.now_ms());
            if remaining == 0 {
                return Err(DpsError::DeadlineExceeded { step });
            }
            let timeout = self
                .config
                .request_timeout
                .min(Duration::from_millis(remaining));
            let sent = build()
                .header("Authorization", self.authorization(request)?)
                .header("Content-Type", "application/json; charset=utf-8")
                .header("Accept", "application/json")
                .timeout(timeout)
                .send()
                .await;
            let (failure, retry_after, throttled) = match sent {
                Ok(response) => {
                    let status = response.status();
                    let retry_after = parse_retry_after(response.headers());
                    if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
                        (
                            format!("HTTP {}", status.as_u16()),
                            retry_after,
                            status == 429,
                        )
                    } else {
                        let body = read_body(step, response).await?;
                        if status.is_success() || status.is_client_error() {
                            if status.is_client_error() && step != DpsStep::StatusLookup {
                                return Err(rejected(step, status, &body));
                            }
                            return Ok(Answer {
                                status,
                                retry_after,
                                body,
                            });
                        }
                        return Err(DpsError::InvalidResponse {
                            step,
                            reason: format!("unexpected HTTP {}", status.as_u16()),
                        });
                    }
                }
                Err(error) => (transport_summary(&error), None, false),
            };
            retries += 1;
            let delay =
                self.config
                    .backoff
                    .delay(retries - 1, retry_after, &mut rand::thread_rng());
            let wake = self.clock.now_ms().saturating_add(duration_ms(delay));
            if wake >= deadline_ms {
                return Err(if throttled {
                    DpsError::Throttled { step, retry_after }
                } else {
                    DpsError::Unreachable {
                        step,
                        last_error: failure,
                    }
                });
            }
            tracing::debug!(step = step.as_str(), retries, ?delay, reason = %failure, "DPS retry");
            progress(DpsProgress::Retrying {
                step,
                attempt: retries,
                delay,
                reason: failure,
            });
            self.clock.sleep_until(wake).await;
        }
    }
}

fn registration_body(request: &RegistrationRequest<'_>) -> Result<Vec<u8>, DpsError> {
    serde_json::to_vec(&DeviceRegistration {
        registration_id: request.registration_id,
        payload: request.payload,
    })
    .map_err(|error| DpsError::Credential(format!("cannot encode the request: {error}")))
}

/// The base URL of a DPS endpoint given as a host or a URL.
fn endpoint_base(endpoint: &str) -> Result<Url, DpsError> {
    let invalid = |reason: String| DpsError::InvalidEndpoint {
        endpoint: endpoint.to_owned(),
        reason,
    };
    let text = endpoint.trim();
    let url = if text.contains("://") {
        Url::parse(text)
    } else {
        Url::parse(&format!("https://{text}"))
    }
    .map_err(|error| invalid(error.to_string()))?;
    if !matches!(url.scheme(), "https" | "http") || url.host_str().is_none() {
        return Err(invalid("needs an http(s) URL with a host".into()));
    }
    Ok(url)
}

fn parse_retry_after(headers: &HeaderMap) -> Option<Duration> {
    let text = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    let seconds: f64 = text.parse().ok()?;
    (seconds.is_finite() && (0.0..=3600.0).contains(&seconds))
        .then(|| Duration::from_secs_f64(seconds))
}

async fn read_body(step: DpsStep, response: reqwest::Response) -> Result<Vec<u8>, DpsError> {
    if response
        .content_length()
        .is_some_and(|len| len > MAX_BODY as u64)
    {
        return Err(DpsError::InvalidResponse {
            step,
            reason: "response body too large".into(),
        });
    }
    let body = response
        .bytes()
        .await
        .map_err(|error| DpsError::Unreachable {
            step,
            last_error: transport_summary(&error),
        })?;
    if body.len() > MAX_BODY {
        return Err(DpsError::InvalidResponse {
            step,
            reason: "response body too large".into(),
        });
    }
    Ok(body.to_vec())
}

fn rejected(step: DpsStep, status: StatusCode, body: &[u8]) -> DpsError {
    let details: Option<ErrorDetails> = serde_json::from_slice(body).ok();
    let error_code = details.as_ref().and_then(|details| details.error_code);
    let message = details
        .and_then(|details| details.message)
        .unwrap_or_else(|| {
            status
                .canonical_reason()
                .unwrap_or("client error")
                .to_owned()
        });
    DpsError::Rejected {
        step,
        http_status: status.as_u16(),
        error_code,
        message,
    }
}

fn parse_operation(step: DpsStep, answer: &Answer) -> Result<OperationStatus, DpsError> {
    serde_json::from_slice(&answer.body).map_err(|error| DpsError::InvalidResponse {
        step,
        reason: error.to_string(),
    })
}

/// The final registration state in an operation status, if it is final.
fn final_state(status: &OperationStatus, registration_id: &str) -> Option<RegistrationState> {
    let operation_status = RegistrationStatus::parse(status.status.as_deref().unwrap_or(""));
    let state = status
        .registration_state
        .as_ref()
        .map(|state| DeviceRegistrationResult {
            registration_id: state.registration_id.clone(),
            status: state.status.clone().or_else(|| status.status.clone()),
            assigned_hub: state.assigned_hub.clone(),
            device_id: state.device_id.clone(),
            substatus: state.substatus.clone(),
            error_code: state.error_code,
            error_message: state.error_message.clone(),
        });
    match state.and_then(|state| state.into_state(registration_id)) {
        Some(state) if state.status.is_final() => Some(state),
        None if operation_status.is_final() => Some(RegistrationState {
            registration_id: registration_id.to_owned(),
            status: operation_status,
            assigned_hub: None,
            device_id: None,
            substatus: None,
            error_code: None,
            error_message: None,
        }),
        _ => None,
    }
}

/// A transport error summary without URLs (they carry no secret, but stay short).
fn transport_summary(error: &reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "timeout"
    } else if error.is_connect() {
        "connect failed"
    } else if error.is_body() || error.is_decode() {
        "body read failed"
    } else {
        "request failed"
    };
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(error);
    let mut detail = String::new();
    while let Some(cause) = source {
        detail = cause.to_string();
        source = cause.source();
    }
    if detail.is_empty() {
        kind.to_owned()
    } else {
        format!("{kind}: {detail}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_accept_hosts_and_urls() {
        assert_eq!(
            endpoint_base("global.azure-devices-provisioning.net")
                .unwrap()
                .as_str(),
            "https://global.azure-devices-provisioning.net/"
        );
        assert_eq!(
            endpoint_base("https://127.0.0.1:8443").unwrap().as_str(),
            "https://127.0.0.1:8443/"
        );
        assert!(endpoint_base("ftp://x").is_err());
        assert!(endpoint_base("").is_err());
    }

    #[test]
    fn urls_follow_the_dps_paths() {
        let client = DpsClient::new(
            DpsClientConfig::default(),
            std::sync::Arc::new(crate::clock::ManualClock::new(0)),
        )
        .unwrap();
        let credential = DpsCredential::SymmetricKey { key: "a2V5".into() };
        let request = RegistrationRequest {
            global_endpoint: "https://dps.example:8443/base/",
            id_scope: "0ne00ABC",
            registration_id: "dev:1",
            credential: &credential,
            payload: None,
        };
        assert_eq!(
            client.url(&request, &["register"]).unwrap().as_str(),
            "https://dps.example:8443/base/0ne00ABC/registrations/dev:1/register?api-version=2021-10-01"
        );
        assert_eq!(
            client
                .url(&request, &["operations", "5.abc"])
                .unwrap()
                .as_str(),
            "https://dps.example:8443/base/0ne00ABC/registrations/dev:1/operations/5.abc?api-version=2021-10-01"
        );
    }

    #[test]
    fn retry_after_parses_seconds_only() {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, "3".parse().unwrap());
        assert_eq!(parse_retry_after(&headers), Some(Duration::from_secs(3)));
        headers.insert(
            RETRY_AFTER,
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(parse_retry_after(&headers), None);
        headers.insert(RETRY_AFTER, "-1".parse().unwrap());
        assert_eq!(parse_retry_after(&headers), None);
    }

    #[test]
    fn final_state_needs_a_final_status() {
        let assigning: OperationStatus =
            serde_json::from_str(r#"{"operationId":"1","status":"assigning"}"#).unwrap();
        assert!(final_state(&assigning, "d").is_none());
        let assigned: OperationStatus = serde_json::from_str(
            r#"{"operationId":"1","status":"assigned","registrationState":{"registrationId":"d","status":"assigned","assignedHub":"hub","deviceId":"d","substatus":"initialAssignment"}}"#,
        )
        .unwrap();
        let state = final_state(&assigned, "d").unwrap();
        assert_eq!(state.status, RegistrationStatus::Assigned);
        assert_eq!(state.assigned_hub.as_deref(), Some("hub"));
        let failed: OperationStatus = serde_json::from_str(
            r#"{"operationId":"1","status":"failed","registrationState":{"registrationId":"d","status":"failed","errorCode":400209,"errorMessage":"Custom allocation failed"}}"#,
        )
        .unwrap();
        let state = final_state(&failed, "d").unwrap();
        assert_eq!(state.status, RegistrationStatus::Failed);
        assert_eq!(state.error_code, Some(400209));
    }
}
