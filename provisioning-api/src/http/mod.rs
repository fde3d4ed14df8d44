//! The HTTP surface: routes, middleware (metrics, deadline, request ids, body limits), and the
//! shared state handlers see.

mod allowlist;
mod assignments;
mod devices;
pub mod dto;
mod extract;
mod idempotency;
pub mod openapi;
mod ops;
mod pool;

use std::{sync::Arc, time::Instant};

use axum::{
    Router,
    extract::{DefaultBodyLimit, MatchedPath, Request, State},
    handler::Handler,
    http::{HeaderName, StatusCode},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::{delete, get, post},
};
use fieldlink_protocol::registration_id::validate_registration_id;
use serde_json::json;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};

use crate::{
    auth::Authenticator,
    clock::Clock,
    config::ApiConfig,
    dps::status::RegistrationStatus,
    error::ApiError,
    metrics::Metrics,
    storage::{DeviceLookup, Storage},
    ticketing::TicketKeyring,
};

pub use extract::Caller;

/// Everything a handler needs.
pub(crate) struct Shared {
    pub storage: Arc<dyn Storage>,
    pub auth: Authenticator,
    pub clock: Arc<dyn Clock>,
    pub keyring: TicketKeyring,
    pub status: RegistrationStatus,
    pub metrics: Metrics,
    pub config: ApiConfig,
}

/// The router's state (cheap to clone).
#[derive(Clone)]
pub struct ApiState {
    pub(crate) shared: Arc<Shared>,
}

impl std::fmt::Debug for ApiState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiState")
            .field("storage", &self.shared.storage.backend())
            .finish_non_exhaustive()
    }
}

/// Refuses identifiers DPS would refuse.
pub(crate) fn check_registration_id(registration_id: &str) -> Result<(), ApiError> {
    validate_registration_id(registration_id).map_err(|error| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_registration_id",
            format!("{error}"),
        )
        .with_details(json!({ "reason": error.code() }))
    })
}

/// The caller's device, or 403 (another tenant's) / 404 (unknown).
pub(crate) async fn owned_device(
    state: &ApiState,
    caller: &Caller,
    registration_id: &str,
) -> Result<(bool, Option<crate::model::Assignment>), ApiError> {
    check_registration_id(registration_id)?;
    match state
        .shared
        .storage
        .device(&caller.0.tenant, registration_id)
        .await?
    {
        DeviceLookup::Owned {
            allowlisted,
            assignment,
        } => Ok((allowlisted, assignment)),
        DeviceLookup::OtherTenant => Err(ApiError::cross_tenant()),
        DeviceLookup::Unknown => Err(ApiError::device_not_found(registration_id)),
    }
}

async fn record_metrics(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = request.method().as_str().to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    state.shared.metrics.http_request(
        &method,
        &route,
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}

async fn deadline(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    match tokio::time::timeout(state.shared.config.request_timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "request_timeout",
            "the request did not complete in time; retry",
        )
        .retry_after(1)
        .into_response(),
    }
}

async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "no such endpoint; see /openapi.json",
    )
}

/// The API's routes.
pub fn router(state: ApiState) -> Router {
    let config = &state.shared.config;
    let request_id = HeaderName::from_static("x-request-id");
    Router::new()
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .route("/openapi.json", get(ops::openapi))
        .route("/v1/ticket-keys", get(ops::ticket_keys))
        .route("/v1/assignments", post(assignments::create))
        .route(
            "/v1/devices/{registrationId}",
            get(devices::get_device).delete(devices::deprovision),
        )
        .route(
            "/v1/devices/{registrationId}/reprovision",
            post(devices::reprovision),
        )
        .route(
            "/v1/devices/{registrationId}/registration",
            get(devices::registration),
        )
        .route(
            "/v1/allowlist",
            get(allowlist::list)
                .post(allowlist::import.layer(DefaultBodyLimit::max(config.max_allowlist_bytes))),
        )
        .route("/v1/allowlist/{registrationId}", delete(allowlist::remove))
        .route("/v1/admin/dps-instances", get(pool::list).post(pool::add))
        .route(
            "/v1/admin/dps-instances/{name}",
            get(pool::get_instance).delete(pool::remove),
        )
        .route("/v1/admin/dps-instances/{name}/drain", post(pool::drain))
        .route(
            "/v1/admin/dps-instances/{name}/activate",
            post(pool::activate),
        )
        .route(
            "/v1/admin/ticket-keys/rotate",
            post(pool::rotate_ticket_key),
        )
        .route(
            "/v1/admin/ticket-keys/{keyId}",
            delete(pool::retire_ticket_key),
        )
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            record_metrics,
        ))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(config.max_body_bytes))
        .layer(middleware::from_fn_with_state(state.clone(), deadline))
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state)
}
