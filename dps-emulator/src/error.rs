//! DPS error responses: `ProvisioningServiceErrorDetails` plus the `x-ms-error-code` header.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::model::{ErrorDetails, timestamp_utc};

/// An error answered to a DPS client. The numeric `errorCode` is `HTTP status × 1000 + detail`,
/// the way DPS numbers them (`401002` is what Azure answers for a refused SAS token).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DpsError {
    /// `api-version` is missing or not one this emulator speaks.
    #[error("the api-version query parameter is missing or unsupported: {0}")]
    ApiVersion(String),
    /// The registration ID breaks DPS's rules.
    #[error("invalid registration ID: {0}")]
    InvalidRegistrationId(String),
    /// The request body or a field in it is invalid.
    #[error("invalid request: {0}")]
    BadRequest(String),
    /// SAS token missing, malformed, expired, for another resource, or not signed by a known key.
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// No DPS instance has this ID scope or name.
    #[error("no DPS instance {0}")]
    InstanceNotFound(String),
    /// No registration record (or operation) matches.
    #[error("not found: {0}")]
    RegistrationNotFound(String),
    /// No enrollment or enrollment group with this ID.
    #[error("enrollment not found: {0}")]
    EnrollmentNotFound(String),
    /// The request conflicts with existing state (e.g. a duplicate instance name).
    #[error("conflict: {0}")]
    Conflict(String),
    /// An `If-Match` etag does not match the stored one.
    #[error("etag mismatch: {0}")]
    PreconditionFailed(String),
    /// The instance's registrations-per-minute limit was hit.
    #[error("registration rate limit: {limit} registrations per minute")]
    RegistrationRate {
        /// The configured limit.
        limit: u32,
        /// Seconds until a registration would be accepted.
        retry_after_secs: u64,
    },
    /// The per-device operation-poll limit was hit.
    #[error("poll rate limit: {limit} polls per {window_secs} s per device")]
    PollRate {
        /// The configured number of polls per window.
        limit: u32,
        /// The window length in seconds.
        window_secs: u64,
        /// Seconds until a poll would be accepted.
        retry_after_secs: u64,
    },
    /// The instance holds its maximum number of registrations.
    #[error("registration capacity reached: {capacity} registrations")]
    Capacity {
        /// The configured capacity.
        capacity: u64,
        /// Seconds the client is told to wait.
        retry_after_secs: u64,
    },
    /// A fault injected by the instance's error-rate knob.
    #[error("injected fault (HTTP {status})")]
    Injected {
        /// The 5xx status to answer.
        status: u16,
    },
}

impl DpsError {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::ApiVersion(_) | Self::InvalidRegistrationId(_) | Self::BadRequest(_) => {
                StatusCode::BAD_REQUEST
            }
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::InstanceNotFound(_)
            | Self::RegistrationNotFound(_)
            | Self::EnrollmentNotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::PreconditionFailed(_) => StatusCode::PRECONDITION_FAILED,
            Self::RegistrationRate { .. } | Self::PollRate { .. } | Self::Capacity { .. } => {
                StatusCode::TOO_MANY_REQUESTS
            }
            Self::Injected { status } => {
                StatusCode::from_u16(*status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE)
            }
        }
    }

    /// The DPS `errorCode`.
    pub fn error_code(&self) -> i32 {
        match self {
            Self::ApiVersion(_) => 400_001,
            Self::InvalidRegistrationId(_) => 400_002,
            Self::BadRequest(_) => 400_003,
            Self::Unauthorized(_) => 401_002,
            Self::InstanceNotFound(_) => 404_001,
            Self::RegistrationNotFound(_) => 404_002,
            Self::EnrollmentNotFound(_) => 404_003,
            Self::Conflict(_) => 409_001,
            Self::PreconditionFailed(_) => 412_001,
            Self::RegistrationRate { .. } => 429_001,
            Self::PollRate { .. } => 429_002,
            Self::Capacity { .. } => 429_003,
            Self::Injected { .. } => i32::from(self.status().as_u16()) * 1000,
        }
    }

    /// Seconds for the `Retry-After` header, for throttling and injected 503s.
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            Self::RegistrationRate {
                retry_after_secs, ..
            }
            | Self::PollRate {
                retry_after_secs, ..
            }
            | Self::Capacity {
                retry_after_secs, ..
            } => Some(*retry_after_secs),
            Self::Injected { status: 503 } => Some(1),
            _ => None,
        }
    }

    /// The `message` field: what happened and what to do.
    pub fn message(&self) -> String {
        match self {
            Self::Unauthorized(_) => "Unauthorized".to_owned(),
            Self::RegistrationRate { .. } | Self::PollRate { .. } | Self::Capacity { .. } => {
                format!(
                    "Operations are being throttled: {self}. Retry after the Retry-After delay."
                )
            }
            _ => self.to_string(),
        }
    }

    fn info(&self) -> Value {
        match self {
            // Azure's message for a refused token is a bare "Unauthorized"; the reason goes in
            // `info` so emulator users can see why without weakening the message.
            Self::Unauthorized(reason) => serde_json::json!({ "reason": reason }),
            _ => Value::Null,
        }
    }

    /// The error body.
    pub fn details(&self) -> ErrorDetails {
        ErrorDetails {
            error_code: self.error_code(),
            tracking_id: uuid::Uuid::new_v4().to_string(),
            message: self.message(),
            timestamp_utc: timestamp_utc(chrono::Utc::now()),
            info: self.info(),
        }
    }
}

impl IntoResponse for DpsError {
    fn into_response(self) -> Response {
        let details = self.details();
        let mut response = (self.status(), axum::Json(&details)).into_response();
        let headers = response.headers_mut();
        headers.insert("x-ms-error-code", HeaderValue::from(details.error_code));
        if let Some(secs) = self.retry_after_secs() {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttling_errors_carry_retry_after() {
        let err = DpsError::PollRate {
            limit: 5,
            window_secs: 10,
            retry_after_secs: 4,
        };
        assert_eq!(err.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(err.error_code(), 429_002);
        assert_eq!(err.retry_after_secs(), Some(4));
        let response = err.into_response();
        assert_eq!(response.headers()[header::RETRY_AFTER], "4");
        assert_eq!(response.headers()["x-ms-error-code"], "429002");
    }

    #[test]
    fn injected_status_is_kept() {
        let err = DpsError::Injected { status: 500 };
        assert_eq!(err.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(err.error_code(), 500_000);
        assert_eq!(err.retry_after_secs(), None);
    }
}
