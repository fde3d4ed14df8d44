//! `POST /v1/assignments`: place a device (or return its placement) and sign its ticket.

use axum::{extract::State, http::HeaderMap, response::Response};

use super::{
    ApiState, Caller, check_registration_id,
    dto::{AssignmentOutcome, AssignmentRequest, AssignmentResponse},
    extract::ApiJson,
    idempotency,
};
use crate::{
    auth::Role,
    clock::rfc3339_ms,
    error::{ApiError, ErrorBody},
    storage::{AssignError, AssignKind, AssignMode, AssignOutcome, AssignRequest},
    ticketing::issue_ticket,
};

/// Validates an optional region label.
pub(crate) fn check_region(region: Option<&str>) -> Result<(), ApiError> {
    match region {
        Some(r) if r.trim().is_empty() || r.len() > 64 => Err(ApiError::invalid_request(
            "region must be 1 to 64 characters when given",
        )),
        _ => Ok(()),
    }
}

/// Signs a ticket for `outcome` and builds the response.
pub(crate) async fn respond(
    state: &ApiState,
    outcome: AssignOutcome,
) -> Result<AssignmentResponse, ApiError> {
    let shared = &state.shared;
    let signer = shared.keyring.signer().await?;
    let now = shared.clock.now_unix();
    let (ticket, claims) = issue_ticket(&signer, &outcome.assignment, shared.config.ticket, now);
    let a = outcome.assignment;
    let (result, previous_instance) = match outcome.kind {
        AssignKind::Created => (AssignmentOutcome::Created, None),
        AssignKind::Existing => (AssignmentOutcome::Existing, None),
        AssignKind::Moved { from } => (AssignmentOutcome::Moved, Some(from)),
    };
    shared.metrics.assignment(match result {
        AssignmentOutcome::Created => "created",
        AssignmentOutcome::Existing => "existing",
        AssignmentOutcome::Moved => "moved",
    });
    Ok(AssignmentResponse {
        ticket: ticket.to_base64url(),
        ticket_key_id: claims.key_id.clone(),
        ticket_not_before: claims.not_before,
        ticket_expires_at: claims.expires_at,
        ticket_nonce: claims.nonce_hex(),
        assigned_at: rfc3339_ms(a.assigned_at_ms),
        registration_id: a.registration_id,
        tenant: a.tenant,
        dps_instance: a.dps_instance,
        id_scope: a.id_scope,
        global_endpoint: a.global_endpoint,
        region: a.region,
        generation: a.generation,
        outcome: result,
        previous_instance,
    })
}

/// Runs one assignment against storage and signs the ticket.
pub(crate) async fn assign(
    state: &ApiState,
    request: AssignRequest,
) -> Result<AssignmentResponse, ApiError> {
    let outcome = state
        .shared
        .storage
        .assign(request)
        .await
        .map_err(|error: AssignError| {
            let error = ApiError::from(error);
            state.shared.metrics.assignment(error.code);
            error
        })?;
    respond(state, outcome).await
}

/// Assign a device to a DPS instance and get its signed commissioning ticket.
///
/// One device gets one assignment: a repeat returns the same instance (sticky) with a fresh
/// ticket, unless `rebalance` is set (admin). With an `Idempotency-Key`, a repeat returns the
/// identical response, ticket included.
#[utoipa::path(
    post,
    path = "/v1/assignments",
    tag = "assignments",
    request_body = AssignmentRequest,
    params(("Idempotency-Key" = Option<String>, Header,
        description = "Makes retries safe: the same key and body return the same response")),
    responses(
        (status = 200, description = "Assignment and ticket", body = AssignmentResponse),
        (status = 400, description = "Invalid registration ID or body", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 403, description = "Device not on the allowlist, another tenant's, or role missing", body = ErrorBody),
        (status = 409, description = "A request with this Idempotency-Key is still running", body = ErrorBody),
        (status = 422, description = "No eligible instance, or Idempotency-Key reused", body = ErrorBody),
        (status = 429, description = "Pool at its per-minute rate (Retry-After)", body = ErrorBody),
        (status = 503, description = "Pool full or storage unavailable (Retry-After)", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn create(
    State(state): State<ApiState>,
    caller: Caller,
    headers: HeaderMap,
    ApiJson(body): ApiJson<AssignmentRequest>,
) -> Result<Response, ApiError> {
    caller.require(&[Role::Installer, Role::Admin])?;
    if body.rebalance {
        caller.require(&[Role::Admin])?;
    }
    check_registration_id(&body.registration_id)?;
    check_region(body.region.as_deref())?;
    let key = idempotency::idempotency_key(&headers)?;
    let fingerprint = idempotency::fingerprint("assign", &body);
    let tenant = caller.0.tenant.clone();
    let request = AssignRequest {
        tenant: tenant.clone(),
        registration_id: body.registration_id,
        region: body.region,
        mode: if body.rebalance {
            AssignMode::Rebalance
        } else {
            AssignMode::Sticky
        },
        require_allowlisted: state.shared.config.allowlist_enforced,
        now_ms: state.shared.clock.now_ms(),
    };
    idempotency::run_once(&state, &tenant, key, fingerprint, || {
        assign(&state, request)
    })
    .await
}
