//! Device API (the global endpoint): register, operation status, status lookup.

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use fieldlink_protocol::registration_id::validate_registration_id;
use std::sync::Arc;
use std::time::Instant;

use super::{api_version, apply_faults, authorization, json_body, json_response, now_unix, tagged};
use crate::control::EmulatorControl;
use crate::error::DpsError;
use crate::instance::{Api, DeviceAuth, Instance};
use crate::model::DeviceRegistration;

/// A device request that passed [`admit`].
struct Admitted {
    instance: Arc<Instance>,
    auth: DeviceAuth,
    /// The `api-version` the device sent.
    version: String,
}

/// What every device request goes through: api-version, instance by ID scope, injected faults,
/// registration-ID rules, SAS.
async fn admit(
    control: &EmulatorControl,
    id_scope: &str,
    registration_id: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    instance_name: &mut Option<String>,
) -> Result<Admitted, DpsError> {
    let version = api_version(query)?;
    let instance = control.by_scope(id_scope)?;
    *instance_name = Some(instance.name().to_owned());
    apply_faults(&instance, Api::Device).await?;
    validate_registration_id(registration_id)
        .map_err(|err| DpsError::InvalidRegistrationId(err.to_string()))?;
    let auth = instance.authenticate_device(registration_id, authorization(headers), now_unix())?;
    Ok(Admitted {
        instance,
        auth,
        version,
    })
}

/// Admits the device request, answers with `respond`, and tags the response with `operation`
/// for metrics.
async fn serve(
    operation: &'static str,
    control: &EmulatorControl,
    (id_scope, registration_id): (&str, &str),
    query: Option<&str>,
    headers: &HeaderMap,
    respond: impl FnOnce(Admitted) -> Result<Response, DpsError>,
) -> Response {
    let mut instance_name = None;
    let admitted = admit(
        control,
        id_scope,
        registration_id,
        query,
        headers,
        &mut instance_name,
    )
    .await;
    tagged(operation, instance_name, admitted.and_then(respond))
}

/// Adds the instance's `Retry-After` (seconds) to a response that asks the device to poll.
fn with_retry_after(mut response: Response, instance: &Instance) -> Response {
    response.headers_mut().insert(
        header::RETRY_AFTER,
        HeaderValue::from(instance.knobs().retry_after_secs),
    );
    response
}

/// `PUT /{idScope}/registrations/{registrationId}/register` → 202 `{operationId, status}` with
/// `Retry-After` and `Location`.
pub(crate) async fn register(
    State(control): State<EmulatorControl>,
    Path((id_scope, registration_id)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    serve(
        "register",
        &control,
        (&id_scope, &registration_id),
        query.as_deref(),
        &headers,
        |Admitted {
             instance,
             auth,
             version,
         }| {
            let request: DeviceRegistration = json_body(&body)?;
            if let Some(body_id) = &request.registration_id
                && body_id != &registration_id
            {
                return Err(DpsError::BadRequest(format!(
                    "body registrationId {body_id:?} differs from the path's {registration_id:?}"
                )));
            }
            if request.tpm.is_some() {
                return Err(DpsError::BadRequest(
                    "TPM attestation is not emulated; use a symmetric key".to_owned(),
                ));
            }
            let status =
                instance.register(&registration_id, &auth, request.payload, Instant::now())?;
            let mut response = json_response(StatusCode::ACCEPTED, &status);
            let location = format!(
                "/{}/registrations/{registration_id}/operations/{}?api-version={version}",
                instance.id_scope(),
                status.operation_id
            );
            if let Ok(value) = HeaderValue::from_str(&location) {
                response.headers_mut().insert(header::LOCATION, value);
            }
            Ok(with_retry_after(response, &instance))
        },
    )
    .await
}

/// `GET /{idScope}/registrations/{registrationId}/operations/{operationId}` → 202 while
/// assigning (with `Retry-After`), 200 when final.
pub(crate) async fn operation_status(
    State(control): State<EmulatorControl>,
    Path((id_scope, registration_id, operation_id)): Path<(String, String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    serve(
        "operation_status",
        &control,
        (&id_scope, &registration_id),
        query.as_deref(),
        &headers,
        |Admitted { instance, .. }| {
            let poll = instance.poll_operation(&registration_id, &operation_id, Instant::now())?;
            if poll.finished {
                return Ok(json_response(StatusCode::OK, &poll.status));
            }
            let response = json_response(StatusCode::ACCEPTED, &poll.status);
            Ok(with_retry_after(response, &instance))
        },
    )
    .await
}

/// `POST /{idScope}/registrations/{registrationId}` → 200 `DeviceRegistrationResult`.
pub(crate) async fn status_lookup(
    State(control): State<EmulatorControl>,
    Path((id_scope, registration_id)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    serve(
        "status_lookup",
        &control,
        (&id_scope, &registration_id),
        query.as_deref(),
        &headers,
        |Admitted { instance, .. }| {
            let _request: DeviceRegistration = json_body(&body)?;
            let result = instance.status_lookup(&registration_id, Instant::now())?;
            Ok(json_response(StatusCode::OK, &result))
        },
    )
    .await
}
