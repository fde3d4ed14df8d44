//! Extractors whose failures are the API's JSON errors: the authenticated caller, JSON bodies,
//! path and query parameters.

use axum::{
    extract::{FromRequest, FromRequestParts, Path, Query, Request, rejection::JsonRejection},
    http::{StatusCode, header, request::Parts},
};
use serde::de::DeserializeOwned;
use serde_json::json;

use super::ApiState;
use crate::{
    auth::{Authenticator, Principal, Role},
    error::ApiError,
};

/// The authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller(pub Principal);

impl Caller {
    /// Refuses callers holding none of `roles`.
    pub fn require(&self, roles: &[Role]) -> Result<(), ApiError> {
        if self.0.has_any(roles) {
            return Ok(());
        }
        let names: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
        Err(ApiError::forbidden(
            "missing_role",
            format!(
                "this operation needs one of the roles: {}",
                names.join(", ")
            ),
        )
        .with_details(json!({ "reason": "missing_role", "required_roles": names })))
    }

    /// Refuses anyone but admins of the operator tenant.
    pub fn require_operator(&self, state: &ApiState) -> Result<(), ApiError> {
        self.require(&[Role::Admin])?;
        if self.0.tenant != state.shared.config.operator_tenant {
            return Err(ApiError::forbidden(
                "operator_only",
                "only admins of the operator tenant administer the DPS pool and ticket keys",
            ));
        }
        Ok(())
    }

    /// Whether the caller is an operator admin.
    pub fn is_operator(&self, state: &ApiState) -> bool {
        self.0.roles.contains(&Role::Admin) && self.0.tenant == state.shared.config.operator_tenant
    }
}

impl FromRequestParts<ApiState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, ApiError> {
        let header = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        let token = Authenticator::bearer(header)?;
        let now = state.shared.clock.now_unix();
        Ok(Caller(state.shared.auth.authenticate(token, now).await?))
    }
}

/// A JSON body.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(json_rejection(&rejection)),
        }
    }
}

fn json_rejection(rejection: &JsonRejection) -> ApiError {
    match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "the request body is too large",
        ),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the body as application/json",
        ),
        _ => ApiError::invalid_request(format!("invalid JSON body: {}", rejection.body_text())),
    }
}

/// Path parameters.
#[derive(Debug)]
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(value)| Self(value))
            .map_err(|e| ApiError::invalid_request(format!("invalid path: {}", e.body_text())))
    }
}

/// Query parameters.
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(value)| Self(value))
            .map_err(|e| ApiError::invalid_request(format!("invalid query: {}", e.body_text())))
    }
}
