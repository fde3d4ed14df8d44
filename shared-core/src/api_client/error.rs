//! The client's failures (internal tier) and the one place they become the core's
//! [`ServiceError`] — and, through [`crate::failure`], public [`CommissionError`] codes.
//!
//! | answer | retried | breaker | `ServiceError` | public code |
//! |---|---|---|---|---|
//! | connect / TLS / I/O error, per-request deadline | yes | failure | `Unavailable` | `api_unavailable` |
//! | breaker open | no (fails fast) | — | `Unavailable` | `api_unavailable` |
//! | 401 (after one token refresh) | once | success | `Unauthorized` | `unauthorized` |
//! | 403 (`forbidden`, `device_not_allowlisted`, cross-tenant) | no | success | `Forbidden` | `forbidden` |
//! | 400 `invalid_registration_id`, 404 `device_not_found` | no | success | `UnknownRegistration` | `invalid_payload{registration_id}` |
//! | 409 / 429 with `Retry-After` (`idempotency_key_in_progress`, `pool_rate_limited`) | yes, honouring it | success | `Throttled{retry_after}` | `throttled{retry_after}` |
//! | other 4xx (`no_eligible_instance`, `device_not_assigned`, ...) | no | success | `Invalid` | `api_unavailable` (with the API's message) |
//! | 5xx marked retryable or with `Retry-After` (503 honours it), or a proxy's 5xx | yes | failure | `Unavailable` | `api_unavailable` |
//! | 5xx the API marks permanent (`dps_credentials_missing`, `internal`) | no | success | `Unavailable` | `api_unavailable` |
//! | token source: sign-in required / issuer down | no | — | `Unauthorized` / `Unavailable` | `unauthorized` / `api_unavailable` |

use std::time::Duration;

use reqwest::{StatusCode, header::HeaderMap};
use serde::Deserialize;
use serde_json::Value;

use super::token::TokenError;
use crate::{assignment::ServiceError, error::CommissionError};

/// The API's error body, `{code, message, retryable, details}`, plus its `Retry-After`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorReply {
    /// HTTP status.
    pub status: u16,
    /// The API's stable code (`http_<status>` when the body was not the API's JSON).
    pub code: String,
    /// The API's message (secret-free by the API's contract; truncated).
    pub message: String,
    /// The API's `retryable` flag.
    pub retryable: bool,
    /// The API's `details` object.
    pub details: Value,
    /// `Retry-After`, when sent.
    pub retry_after: Option<Duration>,
    /// The body was the API's error JSON (`false`: something in between answered, e.g. a
    /// proxy or load balancer).
    pub from_api: bool,
}

#[derive(Deserialize)]
struct ErrorBody {
    code: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    retryable: bool,
    #[serde(default)]
    details: Value,
}

/// Longest message kept from an error body.
const MAX_MESSAGE: usize = 300;
/// Largest `Retry-After` honoured; a longer one is clamped.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3_600);

impl ErrorReply {
    /// Reads a non-2xx answer (a body that is not the API's JSON, e.g. from a proxy, is
    /// summarised).
    pub fn parse(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> Self {
        let retry_after = retry_after(headers);
        match serde_json::from_slice::<ErrorBody>(body) {
            Ok(parsed) => Self {
                status: status.as_u16(),
                code: parsed.code,
                message: truncate(&parsed.message),
                retryable: parsed.retryable,
                details: parsed.details,
                retry_after,
                from_api: true,
            },
            Err(_) => Self {
                status: status.as_u16(),
                code: format!("http_{}", status.as_u16()),
                message: truncate(&format!(
                    "{}: {}",
                    status.canonical_reason().unwrap_or("unexpected status"),
                    String::from_utf8_lossy(body).trim()
                )),
                retryable: false,
                details: Value::Null,
                retry_after,
                from_api: false,
            },
        }
    }
}

impl ErrorReply {
    /// A 5xx that may go away: the API marked it retryable or sent `Retry-After`, or the
    /// answer did not come from the API at all.
    fn transient(&self) -> bool {
        !self.from_api || self.retryable || self.retry_after.is_some()
    }
}

fn truncate(text: &str) -> String {
    let clean: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_MESSAGE)
        .collect();
    clean.trim().to_owned()
}

/// `Retry-After` in delta-seconds (integer or decimal), clamped to an hour. An HTTP-date is
/// not honoured (the API and DPS send seconds); the backoff applies instead.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let seconds: f64 = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    if !seconds.is_finite() || seconds < 0.0 {
        return None;
    }
    Some(Duration::from_secs_f64(
        seconds.min(MAX_RETRY_AFTER.as_secs_f64()),
    ))
}

/// A failed call to the provisioning API.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiClientError {
    /// No HTTP answer: DNS, connect, TLS (e.g. an untrusted certificate) or I/O failure.
    #[error("cannot reach the provisioning API: {detail}")]
    Unreachable {
        /// The HTTP stack's account (secret-free).
        detail: String,
    },
    /// No complete answer within the per-request deadline (or the remaining overall budget).
    #[error("the provisioning API did not answer within {} ms", after.as_millis())]
    TimedOut {
        /// The deadline that expired.
        after: Duration,
    },
    /// The circuit breaker is open: the API failed repeatedly and is not called for a while.
    #[error(
        "the provisioning API failed {failures} times in a row; not calling it for another {} ms",
        retry_in.as_millis()
    )]
    CircuitOpen {
        /// When a request may go through again.
        retry_in: Duration,
        /// Consecutive failures behind it.
        failures: u32,
    },
    /// The token source could not provide a token.
    #[error("no access token: {0}")]
    Token(TokenError),
    /// The API answered with an error.
    #[error("the provisioning API answered {} {}: {}", reply.status, reply.code, reply.message)]
    Status {
        /// The answer.
        reply: ErrorReply,
    },
    /// The registration ID is not one DPS accepts (nothing was sent).
    #[error("invalid registration ID {registration_id:?}: {reason}")]
    InvalidRegistrationId {
        /// The ID given.
        registration_id: String,
        /// Why it is invalid.
        reason: String,
    },
    /// A 2xx answer that could not be used (bad JSON, unreadable ticket, wrong device).
    #[error("unusable answer from the provisioning API: {detail}")]
    InvalidAnswer {
        /// What was wrong.
        detail: String,
    },
}

impl ApiClientError {
    /// Whether another attempt may succeed, with the server's `Retry-After` (`Some(None)`:
    /// retry with plain backoff). 401 is handled separately (one refresh, one retry).
    pub fn retry_hint(&self) -> Option<Option<Duration>> {
        match self {
            ApiClientError::Unreachable { .. } | ApiClientError::TimedOut { .. } => Some(None),
            ApiClientError::Status { reply } => match reply.status {
                408 => Some(reply.retry_after),
                409 | 425 | 429 if reply.retryable || reply.retry_after.is_some() => {
                    Some(reply.retry_after)
                }
                // The API says whether its own 5xx is transient (a missing DPS credential is
                // not); a proxy's 5xx is presumed transient.
                500..=599 if reply.transient() => Some(reply.retry_after),
                _ => None,
            },
            ApiClientError::CircuitOpen { .. }
            | ApiClientError::Token(_)
            | ApiClientError::InvalidRegistrationId { .. }
            | ApiClientError::InvalidAnswer { .. } => None,
        }
    }

    /// Why a retryable attempt failed, as a stable snake_case word for progress events:
    /// `unreachable`, `timed_out`, or `http_<status>`.
    pub fn retry_reason(&self) -> String {
        match self {
            ApiClientError::Unreachable { .. } => "unreachable".to_owned(),
            ApiClientError::TimedOut { .. } => "timed_out".to_owned(),
            ApiClientError::Status { reply } => format!("http_{}", reply.status),
            ApiClientError::CircuitOpen { .. } => "circuit_open".to_owned(),
            ApiClientError::Token(_) => "sign_in".to_owned(),
            ApiClientError::InvalidRegistrationId { .. } => "invalid_registration_id".to_owned(),
            ApiClientError::InvalidAnswer { .. } => "invalid_answer".to_owned(),
        }
    }

    /// Whether this counts against the API's health (opens the breaker when repeated).
    pub fn is_api_failure(&self) -> bool {
        match self {
            ApiClientError::Unreachable { .. } | ApiClientError::TimedOut { .. } => true,
            ApiClientError::Status { reply } => reply.status >= 500 && reply.transient(),
            _ => false,
        }
    }

    /// The API refused the request for good: retrying the same request cannot succeed (the
    /// API released its `Idempotency-Key`, so a new attempt may start).
    pub fn is_definitive_refusal(&self) -> bool {
        matches!(self, ApiClientError::Status { reply }
            if (400..500).contains(&reply.status) && self.retry_hint().is_none())
            || matches!(self, ApiClientError::InvalidRegistrationId { .. })
    }

    /// A 401 from the API.
    pub fn is_unauthorized(&self) -> bool {
        matches!(self, ApiClientError::Status { reply } if reply.status == 401)
    }

    /// The core's internal tier: **the** mapping from HTTP outcomes to
    /// [`ServiceError`] (see the table in the module docs). `registration_id` names the
    /// device the request was about.
    pub fn to_service_error(&self, registration_id: &str) -> ServiceError {
        match self {
            ApiClientError::Unreachable { .. }
            | ApiClientError::TimedOut { .. }
            | ApiClientError::CircuitOpen { .. } => ServiceError::Unavailable {
                detail: self.to_string(),
            },
            ApiClientError::Token(TokenError::SignInRequired { .. }) => ServiceError::Unauthorized,
            ApiClientError::Token(TokenError::Unavailable { detail }) => {
                ServiceError::Unavailable {
                    detail: format!("sign-in service: {detail}"),
                }
            }
            ApiClientError::InvalidRegistrationId { .. } => ServiceError::UnknownRegistration {
                registration_id: registration_id.to_owned(),
            },
            ApiClientError::InvalidAnswer { detail } => ServiceError::Invalid {
                detail: detail.clone(),
            },
            ApiClientError::Status { reply } => match (reply.status, reply.code.as_str()) {
                (401, _) => ServiceError::Unauthorized,
                (403, _) => ServiceError::Forbidden,
                (404, "device_not_found") | (400, "invalid_registration_id") => {
                    ServiceError::UnknownRegistration {
                        registration_id: registration_id.to_owned(),
                    }
                }
                (409 | 425 | 429, _) if self.retry_hint().is_some() => ServiceError::Throttled {
                    retry_after: reply.retry_after,
                },
                (500..=599, _) => ServiceError::Unavailable {
                    detail: format!("{} {}: {}", reply.status, reply.code, reply.message),
                },
                _ => ServiceError::Invalid {
                    detail: format!("{} {}: {}", reply.status, reply.code, reply.message),
                },
            },
        }
    }

    /// The public error an installer sees (via the core's single mapping of
    /// [`ServiceError`]s).
    pub fn to_commission_error(&self, registration_id: &str) -> CommissionError {
        crate::failure::service(&self.to_service_error(registration_id))
    }
}

#[cfg(test)]
mod tests {
    use reqwest::header::{HeaderValue, RETRY_AFTER};
    use serde_json::json;

    use super::*;

    fn reply(status: u16, body: Value, retry_after: Option<&str>) -> ApiClientError {
        let mut headers = HeaderMap::new();
        if let Some(value) = retry_after {
            headers.insert(RETRY_AFTER, HeaderValue::from_str(value).unwrap());
        }
        let status = StatusCode::from_u16(status).unwrap();
        ApiClientError::Status {
            reply: ErrorReply::parse(status, &headers, body.to_string().as_bytes()),
        }
    }

    fn api(status: u16, code: &str, retryable: bool, retry_after: Option<&str>) -> ApiClientError {
        reply(
            status,
            json!({"code": code, "message": "m", "retryable": retryable, "details": {}}),
            retry_after,
        )
    }

    fn public(error: &ApiClientError) -> CommissionError {
        error.to_commission_error("sensor-1")
    }

    #[test]
    fn auth_failures_map_to_unauthorized_and_forbidden() {
        let unauthorized = api(401, "unauthorized", false, None);
        assert!(unauthorized.is_unauthorized());
        assert_eq!(public(&unauthorized).code(), "unauthorized");
        assert_eq!(unauthorized.retry_hint(), None);
        for code in ["forbidden", "device_not_allowlisted"] {
            let error = api(403, code, false, None);
            assert_eq!(public(&error).code(), "forbidden", "{code}");
            assert!(error.is_definitive_refusal());
            assert!(!error.is_api_failure());
        }
        let no_sign_in = ApiClientError::Token(TokenError::SignInRequired { detail: "x".into() });
        assert_eq!(public(&no_sign_in).code(), "unauthorized");
        let issuer_down = ApiClientError::Token(TokenError::Unavailable { detail: "x".into() });
        assert_eq!(public(&issuer_down).code(), "api_unavailable");
    }

    #[test]
    fn unknown_devices_map_to_the_registration_id_field() {
        for error in [
            api(404, "device_not_found", false, None),
            api(400, "invalid_registration_id", false, None),
            ApiClientError::InvalidRegistrationId {
                registration_id: "BAD".into(),
                reason: "upper case".into(),
            },
        ] {
            let public = public(&error);
            assert_eq!(public.code(), "invalid_payload", "{error}");
            assert_eq!(public.view().details["field"], "registration_id");
            assert!(error.is_definitive_refusal());
        }
        // A 404 for the endpoint itself (wrong base URL) is not about the device.
        assert_eq!(
            public(&api(404, "not_found", false, None)).code(),
            "api_unavailable"
        );
    }

    #[test]
    fn throttling_maps_to_throttled_with_retry_after() {
        let limited = api(429, "pool_rate_limited", true, Some("7"));
        assert_eq!(limited.retry_hint(), Some(Some(Duration::from_secs(7))));
        let public = public(&limited);
        assert_eq!(public.code(), "throttled");
        assert_eq!(public.retry_after(), Some(Duration::from_secs(7)));
        assert!(!limited.is_api_failure(), "a throttling API is up");
        assert!(!limited.is_definitive_refusal());
        let in_progress = api(409, "idempotency_key_in_progress", true, Some("1"));
        assert_eq!(in_progress.retry_hint(), Some(Some(Duration::from_secs(1))));
        assert_eq!(self::public(&in_progress).code(), "throttled");
        // A plain 409 conflict is a refusal, not a throttle.
        let not_assigned = api(409, "device_not_assigned", false, None);
        assert_eq!(not_assigned.retry_hint(), None);
        assert!(not_assigned.is_definitive_refusal());
        let public = self::public(&not_assigned);
        assert_eq!(public.code(), "api_unavailable");
        assert!(public.to_string().contains("device_not_assigned"));
    }

    #[test]
    fn server_and_transport_failures_map_to_api_unavailable_and_count_for_the_breaker() {
        let unavailable = api(503, "storage_unavailable", true, Some("2"));
        assert_eq!(unavailable.retry_hint(), Some(Some(Duration::from_secs(2))));
        assert!(unavailable.is_api_failure());
        assert_eq!(public(&unavailable).code(), "api_unavailable");
        let gateway = reply(502, json!("<html>bad gateway</html>"), None);
        assert_eq!(
            gateway.retry_hint(),
            Some(None),
            "a proxy's 5xx is transient"
        );
        assert!(gateway.is_api_failure());
        // The API answered deliberately that retrying will not help; it is up.
        let misconfigured = api(502, "dps_credentials_missing", false, None);
        assert_eq!(misconfigured.retry_hint(), None);
        assert!(!misconfigured.is_api_failure());
        assert_eq!(public(&misconfigured).code(), "api_unavailable");
        for error in [
            ApiClientError::Unreachable {
                detail: "connection refused".into(),
            },
            ApiClientError::TimedOut {
                after: Duration::from_secs(1),
            },
        ] {
            assert!(error.is_api_failure());
            assert_eq!(error.retry_hint(), Some(None));
            assert_eq!(public(&error).code(), "api_unavailable");
        }
        let open = ApiClientError::CircuitOpen {
            retry_in: Duration::from_secs(3),
            failures: 5,
        };
        assert_eq!(open.retry_hint(), None, "fails fast");
        assert!(!open.is_api_failure());
        assert_eq!(public(&open).code(), "api_unavailable");
        assert!(public(&open).retryable());
    }

    #[test]
    fn other_refusals_keep_the_apis_message() {
        let none = api(422, "no_eligible_instance", false, None);
        assert_eq!(none.retry_hint(), None);
        let public = public(&none);
        assert_eq!(public.code(), "api_unavailable");
        assert!(public.to_string().contains("no_eligible_instance"));
    }

    #[test]
    fn a_non_json_error_body_is_summarised() {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_static("1.5"));
        let html = format!("<html>{}\n</html>", "x".repeat(1_000));
        let reply = ErrorReply::parse(StatusCode::BAD_GATEWAY, &headers, html.as_bytes());
        assert_eq!(reply.code, "http_502");
        assert!(reply.message.starts_with("Bad Gateway: <html>"));
        assert!(reply.message.chars().count() <= MAX_MESSAGE);
        assert!(!reply.message.contains('\n'));
        assert_eq!(reply.retry_after, Some(Duration::from_millis(1_500)));
    }

    #[test]
    fn retry_after_accepts_seconds_only_and_clamps() {
        let parse = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(RETRY_AFTER, HeaderValue::from_str(value).unwrap());
            retry_after(&headers)
        };
        assert_eq!(parse("0"), Some(Duration::ZERO));
        assert_eq!(parse(" 12 "), Some(Duration::from_secs(12)));
        assert_eq!(parse("999999"), Some(MAX_RETRY_AFTER));
        assert_eq!(parse("-1"), None);
        assert_eq!(parse("NaN"), None);
        assert_eq!(parse("Wed, 21 Oct 2015 07:28:00 GMT"), None);
        assert_eq!(retry_after(&HeaderMap::new()), None);
    }
}
