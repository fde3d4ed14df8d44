//! The public error tier: every failure leaves the API as
//! `{"code", "message", "retryable", "details"}` with a stable snake_case `code`; 429 and 503
//! carry `Retry-After`, 401 carries `WWW-Authenticate`.

use axum::{
    Json,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;

use crate::{
    allocation::AllocationRefusal,
    auth::AuthError,
    storage::{AssignError, PoolError, StorageError},
};

/// The JSON body of every error response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// Stable snake_case code (see the table in `docs/provisioning-api.md`).
    #[schema(example = "device_not_allowlisted")]
    pub code: String,
    /// What happened and what to do about it, for people.
    pub message: String,
    /// Whether the same request may succeed later (honour `Retry-After`).
    pub retryable: bool,
    /// Machine-readable specifics (may be an empty object).
    #[schema(value_type = Object)]
    pub details: Value,
}

/// An error on its way to becoming a response.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable code.
    pub code: &'static str,
    /// Human-readable message.
    pub message: String,
    /// Whether a retry may succeed.
    pub retryable: bool,
    /// Specifics.
    pub details: Value,
    /// Seconds for `Retry-After`.
    pub retry_after_s: Option<u64>,
}

impl ApiError {
    /// An error with empty details and no `Retry-After`.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retryable: false,
            details: json!({}),
            retry_after_s: None,
        }
    }

    /// Sets the details object.
    pub fn with_details(mut self, details: Value) -> Self {
        self.details = details;
        self
    }

    /// Marks the error retryable after `seconds`.
    pub fn retry_after(mut self, seconds: u64) -> Self {
        self.retryable = true;
        self.retry_after_s = Some(seconds.max(1));
        self
    }

    /// 400 `invalid_request`.
    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }

    /// 403 `forbidden` with a reason.
    pub fn forbidden(reason: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
            .with_details(json!({ "reason": reason }))
    }

    /// 403 for a device that belongs to another tenant.
    pub fn cross_tenant() -> Self {
        Self::forbidden(
            "cross_tenant",
            "this device belongs to another tenant; sign in with an account of that tenant",
        )
    }

    /// 404 `device_not_found`.
    pub fn device_not_found(registration_id: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "device_not_found",
            format!(
                "device {registration_id:?} is neither on this tenant's allowlist nor assigned"
            ),
        )
        .with_details(json!({ "registration_id": registration_id }))
    }

    /// 503 `storage_unavailable` (retryable) when the database cannot be reached; otherwise a
    /// 500 with the storage error's own code (a corrupt record or a secrets-key problem, which
    /// retrying cannot fix and the operator must).
    pub fn storage(error: &StorageError) -> Self {
        tracing::error!(%error, code = error.code(), "storage failure");
        match error {
            StorageError::Unavailable(_) => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "storage_unavailable",
                "the API's database is unavailable; retry shortly",
            )
            .retry_after(1),
            other => Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                other.code(),
                format!(
                    "the API cannot read its stored records ({}); its operator must fix the \
                     database or its secrets key, retrying will not help",
                    other.code()
                ),
            ),
        }
    }

    /// 500 `internal`.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }

    /// The response body.
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            code: self.code.to_owned(),
            message: self.message.clone(),
            retryable: self.retryable,
            details: self.details.clone(),
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(error: AuthError) -> Self {
        if error == AuthError::KeysUnavailable {
            return Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "auth_unavailable",
                "the token issuer's signing keys cannot be fetched; retry shortly",
            )
            .retry_after(5);
        }
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            format!("{error}; sign in again"),
        )
        .with_details(json!({ "reason": error.reason() }))
    }
}

impl From<StorageError> for ApiError {
    fn from(error: StorageError) -> Self {
        Self::storage(&error)
    }
}

impl From<PoolError> for ApiError {
    fn from(error: PoolError) -> Self {
        match error {
            PoolError::NotFound(name) => Self::new(
                StatusCode::NOT_FOUND,
                "instance_not_found",
                format!("no DPS instance named {name:?}"),
            )
            .with_details(json!({ "instance": name })),
            PoolError::AlreadyExists => Self::new(
                StatusCode::CONFLICT,
                "instance_already_exists",
                "a DPS instance with this name or ID scope is already in the pool",
            ),
            PoolError::NotEmpty { registrations } => Self::new(
                StatusCode::CONFLICT,
                "instance_not_empty",
                format!(
                    "the instance still holds {registrations} devices; drain it and reprovision \
                     them first"
                ),
            )
            .with_details(json!({ "registrations": registrations })),
            PoolError::Storage(error) => Self::storage(&error),
        }
    }
}

/// Seconds, rounded up, at least 1.
pub(crate) fn ceil_seconds(ms: i64) -> u64 {
    u64::try_from(ms.max(1)).unwrap_or(1).div_ceil(1000)
}

impl From<AssignError> for ApiError {
    fn from(error: AssignError) -> Self {
        match error {
            AssignError::NotAllowlisted => Self::new(
                StatusCode::FORBIDDEN,
                "device_not_allowlisted",
                "this device is not on your organisation's allowlist; ask an admin to import it \
                 from the manufacturing partner's list",
            ),
            AssignError::OtherTenant => Self::cross_tenant(),
            AssignError::NotAssigned => Self::new(
                StatusCode::CONFLICT,
                "device_not_assigned",
                "the device has no current assignment; request one with POST /v1/assignments",
            ),
            AssignError::TargetUnavailable { name, reason } => Self::new(
                StatusCode::CONFLICT,
                "target_unavailable",
                format!("DPS instance {name:?} cannot take the device: {reason}"),
            )
            .with_details(json!({ "instance": name, "reason": reason })),
            AssignError::Refused(AllocationRefusal::NoEligibleInstance) => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "no_eligible_instance",
                "no active DPS instance serves this tenant and region; ask the operator to add \
                 one or request another region",
            ),
            AssignError::Refused(AllocationRefusal::CapacityExhausted) => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "pool_capacity_exhausted",
                "every eligible DPS instance is at its registration cap; the operator must add \
                 capacity",
            )
            .with_details(json!({}))
            .retry_after(300),
            AssignError::Refused(AllocationRefusal::RateLimited { retry_after_ms }) => {
                let seconds = ceil_seconds(retry_after_ms);
                Self::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "pool_rate_limited",
                    format!(
                        "every eligible DPS instance is at its registrations-per-minute limit; \
                         retry in {seconds} s"
                    ),
                )
                .with_details(json!({ "retry_after_s": seconds }))
                .retry_after(seconds)
            }
            AssignError::Storage(error) => Self::storage(&error),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body())).into_response();
        let headers = response.headers_mut();
        let retry_after = match (self.retry_after_s, self.status) {
            (Some(s), _) => Some(s),
            (None, StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE) => Some(1),
            _ => None,
        };
        if let Some(seconds) = retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer error=\"invalid_token\""),
            );
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limit_carries_retry_after() {
        let error: ApiError = AssignError::Refused(AllocationRefusal::RateLimited {
            retry_after_ms: 1_500,
        })
        .into();
        assert_eq!(error.status, StatusCode::TOO_MANY_REQUESTS);
        assert!(error.retryable);
        let response = error.into_response();
        assert_eq!(response.headers()[header::RETRY_AFTER], "2");
    }

    #[test]
    fn unauthorized_names_the_reason() {
        let error: ApiError = AuthError::Expired.into();
        assert_eq!(error.status, StatusCode::UNAUTHORIZED);
        assert_eq!(error.body().details["reason"], "expired");
        let response = error.into_response();
        assert!(response.headers().contains_key(header::WWW_AUTHENTICATE));
    }

    #[test]
    fn only_an_unreachable_database_is_retryable() {
        let down = ApiError::from(StorageError::Unavailable("connection refused".into()));
        assert_eq!(down.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(down.code, "storage_unavailable");
        assert!(down.retryable);

        let sealed = ApiError::from(StorageError::SealedSecretInvalid {
            location: "dps_instances.service_key of dps-1".into(),
        });
        assert_eq!(sealed.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(sealed.code, "sealed_secret_invalid");
        assert!(!sealed.retryable);
        assert!(
            !sealed.message.contains("dps-1"),
            "no storage internals to clients"
        );
        assert!(sealed.retry_after_s.is_none());
    }

    #[test]
    fn every_503_has_retry_after() {
        let error = ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "x", "y");
        assert_eq!(error.into_response().headers()[header::RETRY_AFTER], "1");
        assert_eq!(ceil_seconds(0), 1);
        assert_eq!(ceil_seconds(60_001), 61);
    }
}
