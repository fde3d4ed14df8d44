//! Device lifecycle: read, deprovision, reprovision to another instance, and DPS registration
//! status.

use axum::{
    Json,
    extract::State,
    http::{HeaderMap, StatusCode},
    response::Response,
};
use serde_json::json;
use std::time::Duration;

use super::{
    ApiState, Caller,
    assignments::{assign, check_region},
    check_registration_id,
    dto::{AssignmentResponse, DeviceView, RegistrationStatusView, ReprovisionRequest},
    extract::{ApiJson, ApiPath},
    idempotency, owned_device,
};
use crate::{
    auth::Role,
    dps::{DpsServiceTarget, RegistrationLookup, status::StatusError},
    error::{ApiError, ErrorBody, ceil_seconds},
    model::AssignmentStatus,
    storage::{AssignMode, AssignRequest},
};

/// Read a device: allowlist membership and placement.
#[utoipa::path(
    get,
    path = "/v1/devices/{registrationId}",
    tag = "devices",
    params(("registrationId" = String, Path, description = "DPS registration ID")),
    responses(
        (status = 200, description = "The device", body = DeviceView),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 403, description = "Another tenant's device, or role missing", body = ErrorBody),
        (status = 404, description = "Unknown device", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn get_device(
    State(state): State<ApiState>,
    caller: Caller,
    ApiPath(registration_id): ApiPath<String>,
) -> Result<Json<DeviceView>, ApiError> {
    caller.require(&[Role::Installer, Role::Admin, Role::Qa])?;
    let (allowlisted, assignment) = owned_device(&state, &caller, &registration_id).await?;
    Ok(Json(DeviceView::new(
        registration_id,
        caller.0.tenant,
        allowlisted,
        assignment.as_ref(),
    )))
}

/// Deprovision a device: release its slot on its DPS instance (admin). Idempotent.
#[utoipa::path(
    delete,
    path = "/v1/devices/{registrationId}",
    tag = "devices",
    params(("registrationId" = String, Path, description = "DPS registration ID")),
    responses(
        (status = 200, description = "The device, now deprovisioned", body = DeviceView),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 403, description = "Another tenant's device, or not an admin", body = ErrorBody),
        (status = 404, description = "Unknown device", body = ErrorBody),
        (status = 409, description = "The device was never assigned", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn deprovision(
    State(state): State<ApiState>,
    caller: Caller,
    ApiPath(registration_id): ApiPath<String>,
) -> Result<Json<DeviceView>, ApiError> {
    caller.require(&[Role::Admin])?;
    let (allowlisted, _) = owned_device(&state, &caller, &registration_id).await?;
    let now = state.shared.clock.now_ms();
    let assignment = state
        .shared
        .storage
        .deprovision(&caller.0.tenant, &registration_id, now)
        .await?;
    Ok(Json(DeviceView::new(
        registration_id,
        caller.0.tenant,
        allowlisted,
        Some(&assignment),
    )))
}

/// Move an assigned device to another DPS instance (admin) and get a new ticket.
#[utoipa::path(
    post,
    path = "/v1/devices/{registrationId}/reprovision",
    tag = "devices",
    params(
        ("registrationId" = String, Path, description = "DPS registration ID"),
        ("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe"),
    ),
    request_body = ReprovisionRequest,
    responses(
        (status = 200, description = "The new assignment and ticket", body = AssignmentResponse),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 403, description = "Another tenant's device, or not an admin", body = ErrorBody),
        (status = 404, description = "Unknown device", body = ErrorBody),
        (status = 409, description = "Not assigned, or the target cannot take it", body = ErrorBody),
        (status = 422, description = "No other eligible instance", body = ErrorBody),
        (status = 429, description = "Pool at its per-minute rate (Retry-After)", body = ErrorBody),
        (status = 503, description = "Pool full or storage unavailable (Retry-After)", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn reprovision(
    State(state): State<ApiState>,
    caller: Caller,
    headers: HeaderMap,
    ApiPath(registration_id): ApiPath<String>,
    ApiJson(body): ApiJson<ReprovisionRequest>,
) -> Result<Response, ApiError> {
    caller.require(&[Role::Admin])?;
    owned_device(&state, &caller, &registration_id).await?;
    check_region(body.region.as_deref())?;
    let key = idempotency::idempotency_key(&headers)?;
    let fingerprint = idempotency::fingerprint("reprovision", &json!([registration_id, body]));
    let tenant = caller.0.tenant.clone();
    let request = AssignRequest {
        tenant: tenant.clone(),
        registration_id,
        region: body.region,
        mode: AssignMode::MoveToAnother {
            target: body.target_instance,
        },
        require_allowlisted: state.shared.config.allowlist_enforced,
        now_ms: state.shared.clock.now_ms(),
    };
    idempotency::run_once(&state, &tenant, key, fingerprint, || {
        assign(&state, request)
    })
    .await
}

/// Whole seconds to wait (rounded up) before retrying after `retry_after`.
fn retry_seconds(retry_after: Duration) -> u64 {
    ceil_seconds(i64::try_from(retry_after.as_millis()).unwrap_or(i64::MAX))
}

fn status_error(error: StatusError) -> ApiError {
    match error {
        StatusError::Throttled { retry_after } => {
            let seconds = retry_seconds(retry_after);
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "dps_throttled",
                format!("DPS is throttling status look-ups; retry in {seconds} s"),
            )
            .retry_after(seconds)
        }
        StatusError::Unavailable {
            retry_after,
            message,
        } => {
            let seconds = retry_seconds(retry_after);
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "dps_unavailable",
                format!("DPS did not answer: {message}; retry in {seconds} s"),
            )
            .retry_after(seconds)
        }
        StatusError::CredentialsRejected => ApiError::new(
            StatusCode::BAD_GATEWAY,
            "dps_credentials_rejected",
            "DPS refused the API's service credentials for this instance; the operator must fix \
             them",
        ),
        StatusError::Unexpected(message) => ApiError::new(
            StatusCode::BAD_GATEWAY,
            "dps_bad_response",
            format!("DPS answered unexpectedly: {message}"),
        ),
    }
}

/// DPS's registration state of a device, via the DPS service API (cached briefly).
#[utoipa::path(
    get,
    path = "/v1/devices/{registrationId}/registration",
    tag = "devices",
    params(("registrationId" = String, Path, description = "DPS registration ID")),
    responses(
        (status = 200, description = "DPS's registration record", body = RegistrationStatusView),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 403, description = "Another tenant's device, or role missing", body = ErrorBody),
        (status = 404, description = "Unknown device", body = ErrorBody),
        (status = 409, description = "The device was never assigned", body = ErrorBody),
        (status = 502, description = "DPS refused our credentials or answered unexpectedly", body = ErrorBody),
        (status = 503, description = "DPS throttled or unavailable (Retry-After)", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn registration(
    State(state): State<ApiState>,
    caller: Caller,
    ApiPath(registration_id): ApiPath<String>,
) -> Result<Json<RegistrationStatusView>, ApiError> {
    caller.require(&[Role::Installer, Role::Admin, Role::Qa])?;
    check_registration_id(&registration_id)?;
    let (_, assignment) = owned_device(&state, &caller, &registration_id).await?;
    let assignment = assignment
        .filter(|a| a.status == AssignmentStatus::Assigned)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::CONFLICT,
                "device_not_assigned",
                "the device has no current assignment, so no DPS instance to ask",
            )
        })?;
    let shared = &state.shared;
    let instance = shared
        .storage
        .instance(&assignment.dps_instance)
        .await?
        .ok_or_else(|| ApiError::internal("the device's DPS instance left the pool"))?;
    let target = DpsServiceTarget::of(&instance).ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_GATEWAY,
            "dps_credentials_missing",
            format!(
                "DPS instance {:?} has no service credentials; the operator must add them",
                instance.name
            ),
        )
    })?;
    let answer = match shared.status.lookup(&target, &registration_id).await {
        Ok(answer) => answer,
        Err(error) => {
            let error = status_error(error);
            shared.metrics.dps_lookup(error.code);
            return Err(error);
        }
    };
    shared
        .metrics
        .dps_lookup(match (&answer.lookup, answer.cached) {
            (_, true) => "cached",
            (RegistrationLookup::Found(_), false) => "found",
            (RegistrationLookup::NotFound, false) => "not_found",
        });
    if let RegistrationLookup::Found(found) = &answer.lookup
        && found.registration_id != registration_id
    {
        return Err(status_error(StatusError::Unexpected(
            "DPS answered for another registration ID".to_owned(),
        )));
    }
    Ok(Json(RegistrationStatusView::new(
        &assignment,
        &answer.lookup,
        answer.fetched_at_ms,
        answer.cached,
    )))
}
