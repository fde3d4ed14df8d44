//! Emulator administration (not an Azure API): instances, linked hubs, knobs, limits.
//! Unauthenticated: the emulator is a loopback sandbox.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;

use super::{json_response, tagged};
use crate::config::InstanceConfig;
use crate::control::EmulatorControl;
use crate::error::DpsError;
use crate::instance::InstanceError;

fn from_instance_error(err: InstanceError) -> DpsError {
    match err {
        InstanceError::NotFound(name) => DpsError::InstanceNotFound(format!("named {name}")),
        InstanceError::DuplicateName(_) | InstanceError::DuplicateIdScope(_) => {
            DpsError::Conflict(err.to_string())
        }
        other => DpsError::BadRequest(other.to_string()),
    }
}

fn parse<T: DeserializeOwned>(body: &Bytes) -> Result<T, DpsError> {
    serde_json::from_slice(body).map_err(|err| DpsError::BadRequest(format!("request body: {err}")))
}

fn info_or_404(control: &EmulatorControl, name: &str) -> Result<Response, DpsError> {
    let info = control
        .instance(name)
        .ok_or_else(|| DpsError::InstanceNotFound(format!("named {name}")))?;
    Ok(json_response(StatusCode::OK, &info))
}

/// `GET /emulator/instances`.
pub(crate) async fn list(State(control): State<EmulatorControl>) -> Response {
    tagged(
        "admin",
        None,
        Ok(json_response(StatusCode::OK, &control.instances())),
    )
}

/// `POST /emulator/instances` with an [`InstanceConfig`] → 201 with the instance.
pub(crate) async fn create(State(control): State<EmulatorControl>, body: Bytes) -> Response {
    let result = parse::<InstanceConfig>(&body).and_then(|config| {
        let info = control.add_instance(config).map_err(from_instance_error)?;
        Ok(json_response(StatusCode::CREATED, &info))
    });
    tagged("admin", None, result)
}

/// `GET /emulator/instances/{name}`.
pub(crate) async fn get_one(
    State(control): State<EmulatorControl>,
    Path(name): Path<String>,
) -> Response {
    tagged("admin", Some(name.clone()), info_or_404(&control, &name))
}

/// `DELETE /emulator/instances/{name}`.
pub(crate) async fn remove(
    State(control): State<EmulatorControl>,
    Path(name): Path<String>,
) -> Response {
    let result = control
        .remove_instance(&name)
        .map(|()| StatusCode::NO_CONTENT.into_response())
        .map_err(from_instance_error);
    tagged("admin", Some(name), result)
}

/// Parses a setting from the body, applies it to instance `name` with `apply`, and answers
/// with the instance.
fn update_instance<T: DeserializeOwned>(
    control: &EmulatorControl,
    name: String,
    body: &Bytes,
    apply: impl FnOnce(&EmulatorControl, &str, T) -> Result<(), InstanceError>,
) -> Response {
    let result = parse::<T>(body).and_then(|setting| {
        apply(control, &name, setting).map_err(from_instance_error)?;
        info_or_404(control, &name)
    });
    tagged("admin", Some(name), result)
}

/// `PUT /emulator/instances/{name}/linkedHubs` with `[LinkedHub]`.
pub(crate) async fn set_linked_hubs(
    State(control): State<EmulatorControl>,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    update_instance(&control, name, &body, EmulatorControl::set_linked_hubs)
}

/// `PUT /emulator/instances/{name}/knobs` with [`Knobs`](crate::config::Knobs).
pub(crate) async fn set_knobs(
    State(control): State<EmulatorControl>,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    update_instance(&control, name, &body, EmulatorControl::set_knobs)
}

/// `PUT /emulator/instances/{name}/limits` with [`Limits`](crate::config::Limits).
pub(crate) async fn set_limits(
    State(control): State<EmulatorControl>,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    update_instance(&control, name, &body, EmulatorControl::set_limits)
}
