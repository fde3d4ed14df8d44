//! Operations endpoints (no authentication): liveness, readiness, metrics, the OpenAPI
//! document, and the public ticket keys.

use axum::{
    Json,
    extract::State,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use utoipa::OpenApi;

use super::{
    ApiState,
    dto::{HealthView, TicketKeySet, TicketKeyView},
    openapi::ApiDoc,
};
use crate::error::{ApiError, ErrorBody};

/// Liveness: the process answers.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    responses((status = 200, description = "Alive", body = HealthView))
)]
pub(crate) async fn healthz() -> Json<HealthView> {
    Json(HealthView {
        status: "ok".to_owned(),
        storage: None,
    })
}

/// Readiness: storage answers.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    responses(
        (status = 200, description = "Ready", body = HealthView),
        (status = 503, description = "Storage unavailable (Retry-After)", body = ErrorBody),
    )
)]
pub(crate) async fn readyz(State(state): State<ApiState>) -> Result<Json<HealthView>, ApiError> {
    let storage = &state.shared.storage;
    tokio::time::timeout(std::time::Duration::from_secs(2), storage.ping())
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "storage_unavailable",
                "the database did not answer within 2 s",
            )
            .retry_after(1)
        })??;
    Ok(Json(HealthView {
        status: "ready".to_owned(),
        storage: Some(storage.backend().to_owned()),
    }))
}

/// Prometheus metrics (text format 0.0.4).
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    responses(
        (status = 200, description = "Prometheus text", body = String, content_type = "text/plain"),
        (status = 503, description = "Storage unavailable (Retry-After)", body = ErrorBody),
    )
)]
pub(crate) async fn metrics(State(state): State<ApiState>) -> Result<Response, ApiError> {
    let shared = &state.shared;
    let instances = shared.storage.list_instances().await?;
    let text = shared.metrics.render(&instances, shared.clock.now_ms());
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        text,
    )
        .into_response())
}

/// This document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "operations",
    responses((status = 200, description = "OpenAPI 3 document", content_type = "application/json"))
)]
pub(crate) async fn openapi() -> Response {
    match ApiDoc::openapi().to_json() {
        Ok(json) => (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            json,
        )
            .into_response(),
        Err(e) => {
            ApiError::internal(format!("cannot render the OpenAPI document: {e}")).into_response()
        }
    }
}

/// Every ticket key devices may trust (current and previous), with key ids. Public: these are
/// public keys.
#[utoipa::path(
    get,
    path = "/v1/ticket-keys",
    tag = "ticket-keys",
    responses(
        (status = 200, description = "The trusted keys", body = TicketKeySet),
        (status = 503, description = "Storage unavailable (Retry-After)", body = ErrorBody),
    )
)]
pub(crate) async fn ticket_keys(
    State(state): State<ApiState>,
) -> Result<Json<TicketKeySet>, ApiError> {
    let mut keys = state.shared.keyring.public_keys().await?;
    keys.sort_by_key(|k| {
        (
            k.state != crate::storage::TicketKeyState::Current,
            -k.created_at_ms,
        )
    });
    Ok(Json(TicketKeySet {
        keys: keys.iter().map(TicketKeyView::from).collect(),
    }))
}
