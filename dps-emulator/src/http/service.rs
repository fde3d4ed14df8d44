//! Service API of one instance: registration state, individual enrollments, enrollment groups.
//! Every call needs a service SAS (shared access policy) for the instance's host name.

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use std::sync::Arc;

use super::{api_version, apply_faults, authorization, if_match, json_response, now_unix, tagged};
use crate::control::EmulatorControl;
use crate::error::DpsError;
use crate::instance::{Api, Instance};
use crate::model::{EnrollmentGroup, IndividualEnrollment};

type ServicePath = Path<(String, String)>;

async fn admit(
    control: &EmulatorControl,
    dps_name: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    instance_name: &mut Option<String>,
) -> Result<Arc<Instance>, DpsError> {
    api_version(query)?;
    let instance = control.by_name(dps_name)?;
    *instance_name = Some(instance.name().to_owned());
    apply_faults(&instance, Api::Service).await?;
    instance.authenticate_service(authorization(headers), now_unix())?;
    Ok(instance)
}

fn with_etag(mut response: Response, etag: Option<&str>) -> Response {
    if let Some(value) = etag.and_then(|etag| HeaderValue::from_str(etag).ok()) {
        response.headers_mut().insert(header::ETAG, value);
    }
    response
}

/// Parses a JSON object body, filling `id_field` from the path when absent and refusing a
/// different value.
fn body_with_id<T: serde::de::DeserializeOwned>(
    body: &Bytes,
    id_field: &str,
    id: &str,
) -> Result<T, DpsError> {
    let mut value: Value = serde_json::from_slice(body)
        .map_err(|err| DpsError::BadRequest(format!("request body: {err}")))?;
    let object = value
        .as_object_mut()
        .ok_or_else(|| DpsError::BadRequest("the request body must be a JSON object".to_owned()))?;
    match object.get(id_field) {
        Some(Value::String(given)) if given != id => {
            return Err(DpsError::BadRequest(format!(
                "{id_field} {given:?} in the body differs from {id:?} in the path"
            )));
        }
        Some(Value::String(_)) => {}
        Some(_) => return Err(DpsError::BadRequest(format!("{id_field} must be a string"))),
        None => {
            object.insert(id_field.to_owned(), Value::String(id.to_owned()));
        }
    }
    serde_json::from_value(value)
        .map_err(|err| DpsError::BadRequest(format!("request body: {err}")))
}

/// Device Registration State – Get.
pub(crate) async fn get_registration(
    State(control): State<EmulatorControl>,
    Path((dps_name, id)): ServicePath,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let mut instance_name = None;
    let result = async {
        let instance = admit(
            &control,
            &dps_name,
            query.as_deref(),
            &headers,
            &mut instance_name,
        )
        .await?;
        let state = instance
            .registration_state(&id)
            .ok_or_else(|| DpsError::RegistrationNotFound(format!("registration {id}")))?;
        Ok(with_etag(
            json_response(StatusCode::OK, &state),
            state.etag.as_deref(),
        ))
    }
    .await;
    tagged("registration_state_get", instance_name, result)
}

/// Device Registration State – Delete.
pub(crate) async fn delete_registration(
    State(control): State<EmulatorControl>,
    Path((dps_name, id)): ServicePath,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let mut instance_name = None;
    let result = async {
        let instance = admit(
            &control,
            &dps_name,
            query.as_deref(),
            &headers,
            &mut instance_name,
        )
        .await?;
        if !instance.delete_registration(&id) {
            return Err(DpsError::RegistrationNotFound(format!("registration {id}")));
        }
        Ok(StatusCode::NO_CONTENT.into_response())
    }
    .await;
    tagged("registration_state_delete", instance_name, result)
}

/// Individual Enrollment – Get.
pub(crate) async fn get_enrollment(
    State(control): State<EmulatorControl>,
    Path((dps_name, id)): ServicePath,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let mut instance_name = None;
    let result = async {
        let instance = admit(
            &control,
            &dps_name,
            query.as_deref(),
            &headers,
            &mut instance_name,
        )
        .await?;
        let enrollment = instance
            .enrollment(&id)
            .ok_or_else(|| DpsError::EnrollmentNotFound(format!("individual enrollment {id}")))?;
        Ok(with_etag(
            json_response(StatusCode::OK, &enrollment),
            enrollment.etag.as_deref(),
        ))
    }
    .await;
    tagged("enrollment_get", instance_name, result)
}

/// Individual Enrollment – Create Or Update.
pub(crate) async fn put_enrollment(
    State(control): State<EmulatorControl>,
    Path((dps_name, id)): ServicePath,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut instance_name = None;
    let result = async {
        let instance = admit(
            &control,
            &dps_name,
            query.as_deref(),
            &headers,
            &mut instance_name,
        )
        .await?;
        let enrollment: IndividualEnrollment = body_with_id(&body, "registrationId", &id)?;
        let stored = instance.put_enrollment(enrollment, if_match(&headers))?;
        Ok(with_etag(
            json_response(StatusCode::OK, &stored),
            stored.etag.as_deref(),
        ))
    }
    .await;
    tagged("enrollment_put", instance_name, result)
}

/// Individual Enrollment – Delete.
pub(crate) async fn delete_enrollment(
    State(control): State<EmulatorControl>,
    Path((dps_name, id)): ServicePath,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let mut instance_name = None;
    let result = async {
        let instance = admit(
            &control,
            &dps_name,
            query.as_deref(),
            &headers,
            &mut instance_name,
        )
        .await?;
        instance.delete_enrollment(&id, if_match(&headers))?;
        Ok(StatusCode::NO_CONTENT.into_response())
    }
    .await;
    tagged("enrollment_delete", instance_name, result)
}

/// Enrollment Group – Get.
pub(crate) async fn get_group(
    State(control): State<EmulatorControl>,
    Path((dps_name, id)): ServicePath,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let mut instance_name = None;
    let result = async {
        let instance = admit(
            &control,
            &dps_name,
            query.as_deref(),
            &headers,
            &mut instance_name,
        )
        .await?;
        let group = instance
            .enrollment_group(&id)
            .ok_or_else(|| DpsError::EnrollmentNotFound(format!("enrollment group {id}")))?;
        Ok(with_etag(
            json_response(StatusCode::OK, &group),
            group.etag.as_deref(),
        ))
    }
    .await;
    tagged("enrollment_group_get", instance_name, result)
}

/// Enrollment Group – Create Or Update.
pub(crate) async fn put_group(
    State(control): State<EmulatorControl>,
    Path((dps_name, id)): ServicePath,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut instance_name = None;
    let result = async {
        let instance = admit(
            &control,
            &dps_name,
            query.as_deref(),
            &headers,
            &mut instance_name,
        )
        .await?;
        let group: EnrollmentGroup = body_with_id(&body, "enrollmentGroupId", &id)?;
        let stored = instance.put_enrollment_group(group, if_match(&headers))?;
        Ok(with_etag(
            json_response(StatusCode::OK, &stored),
            stored.etag.as_deref(),
        ))
    }
    .await;
    tagged("enrollment_group_put", instance_name, result)
}

/// Enrollment Group – Delete.
pub(crate) async fn delete_group(
    State(control): State<EmulatorControl>,
    Path((dps_name, id)): ServicePath,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let mut instance_name = None;
    let result = async {
        let instance = admit(
            &control,
            &dps_name,
            query.as_deref(),
            &headers,
            &mut instance_name,
        )
        .await?;
        instance.delete_enrollment_group(&id, if_match(&headers))?;
        Ok(StatusCode::NO_CONTENT.into_response())
    }
    .await;
    tagged("enrollment_group_delete", instance_name, result)
}
