//! Service API of one instance: registration state, individual enrollments, enrollment groups.
//! Every call needs a service SAS (shared access policy) for the instance's host name.
//!
//! The three resource kinds share Azure's REST shapes (`GET`/`DELETE` of `{kind}/{id}`, `PUT`
//! of a JSON body naming the ID, the entity tag in `ETag`), so one generic handler per verb
//! serves them all, through [`ServiceResource`] and [`ReplaceableResource`].

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
use crate::model::{DeviceRegistrationState, EnrollmentGroup, IndividualEnrollment};

type ServicePath = Path<(String, String)>;

/// A resource kind of the service API that can be read and deleted by ID.
pub(crate) trait ServiceResource: serde::Serialize + Sized + Send + 'static {
    /// The metrics operation of `GET`.
    const GET_OPERATION: &'static str;
    /// The metrics operation of `DELETE`.
    const DELETE_OPERATION: &'static str;

    /// The stored resource.
    fn find(instance: &Instance, id: &str) -> Option<Self>;
    /// The error of a `GET` for an ID that is not there.
    fn not_found(id: &str) -> DpsError;
    /// Deletes the resource, honouring `If-Match` where the kind has an entity tag to match.
    fn delete(instance: &Instance, id: &str, if_match: Option<&str>) -> Result<(), DpsError>;
    /// The entity tag.
    fn etag(&self) -> Option<&str>;
}

/// A resource kind the service API also creates or replaces with `PUT`.
pub(crate) trait ReplaceableResource: ServiceResource + serde::de::DeserializeOwned {
    /// The metrics operation of `PUT`.
    const PUT_OPERATION: &'static str;
    /// The body field that carries the ID of the path.
    const ID_FIELD: &'static str;

    /// Stores the resource (`If-Match` must match the stored entity tag unless it is `*`).
    fn replace(
        instance: &Instance,
        resource: Self,
        if_match: Option<&str>,
    ) -> Result<Self, DpsError>;
}

impl ServiceResource for DeviceRegistrationState {
    const GET_OPERATION: &'static str = "registration_state_get";
    const DELETE_OPERATION: &'static str = "registration_state_delete";

    fn find(instance: &Instance, id: &str) -> Option<Self> {
        instance.registration_state(id)
    }

    fn not_found(id: &str) -> DpsError {
        DpsError::RegistrationNotFound(format!("registration {id}"))
    }

    /// Registration records are deleted unconditionally (`If-Match` is not checked).
    fn delete(instance: &Instance, id: &str, _if_match: Option<&str>) -> Result<(), DpsError> {
        if instance.delete_registration(id) {
            Ok(())
        } else {
            Err(Self::not_found(id))
        }
    }

    fn etag(&self) -> Option<&str> {
        self.etag.as_deref()
    }
}

impl ServiceResource for IndividualEnrollment {
    const GET_OPERATION: &'static str = "enrollment_get";
    const DELETE_OPERATION: &'static str = "enrollment_delete";

    fn find(instance: &Instance, id: &str) -> Option<Self> {
        instance.enrollment(id)
    }

    fn not_found(id: &str) -> DpsError {
        DpsError::EnrollmentNotFound(format!("individual enrollment {id}"))
    }

    fn delete(instance: &Instance, id: &str, if_match: Option<&str>) -> Result<(), DpsError> {
        instance.delete_enrollment(id, if_match)
    }

    fn etag(&self) -> Option<&str> {
        self.etag.as_deref()
    }
}

impl ReplaceableResource for IndividualEnrollment {
    const PUT_OPERATION: &'static str = "enrollment_put";
    const ID_FIELD: &'static str = "registrationId";

    fn replace(
        instance: &Instance,
        resource: Self,
        if_match: Option<&str>,
    ) -> Result<Self, DpsError> {
        instance.put_enrollment(resource, if_match)
    }
}

impl ServiceResource for EnrollmentGroup {
    const GET_OPERATION: &'static str = "enrollment_group_get";
    const DELETE_OPERATION: &'static str = "enrollment_group_delete";

    fn find(instance: &Instance, id: &str) -> Option<Self> {
        instance.enrollment_group(id)
    }

    fn not_found(id: &str) -> DpsError {
        DpsError::EnrollmentNotFound(format!("enrollment group {id}"))
    }

    fn delete(instance: &Instance, id: &str, if_match: Option<&str>) -> Result<(), DpsError> {
        instance.delete_enrollment_group(id, if_match)
    }

    fn etag(&self) -> Option<&str> {
        self.etag.as_deref()
    }
}

impl ReplaceableResource for EnrollmentGroup {
    const PUT_OPERATION: &'static str = "enrollment_group_put";
    const ID_FIELD: &'static str = "enrollmentGroupId";

    fn replace(
        instance: &Instance,
        resource: Self,
        if_match: Option<&str>,
    ) -> Result<Self, DpsError> {
        instance.put_enrollment_group(resource, if_match)
    }
}

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

/// Admits the request to instance `dps_name`, answers with `respond`, and tags the response
/// with `operation` for metrics.
async fn serve(
    operation: &'static str,
    control: &EmulatorControl,
    dps_name: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    respond: impl FnOnce(&Instance) -> Result<Response, DpsError>,
) -> Response {
    let mut instance_name = None;
    let admitted = admit(control, dps_name, query, headers, &mut instance_name).await;
    let result = admitted.and_then(|instance| respond(&instance));
    tagged(operation, instance_name, result)
}

/// 200 with the resource as JSON and its entity tag in `ETag`.
fn ok_with_etag<R: ServiceResource>(resource: &R) -> Response {
    with_etag(json_response(StatusCode::OK, resource), resource.etag())
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

/// `GET` of a registration state, individual enrollment or enrollment group.
pub(crate) async fn get<R: ServiceResource>(
    State(control): State<EmulatorControl>,
    Path((dps_name, id)): ServicePath,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    serve(
        R::GET_OPERATION,
        &control,
        &dps_name,
        query.as_deref(),
        &headers,
        |instance| {
            let resource = R::find(instance, &id).ok_or_else(|| R::not_found(&id))?;
            Ok(ok_with_etag(&resource))
        },
    )
    .await
}

/// `PUT` (create or update) of an individual enrollment or enrollment group.
pub(crate) async fn put<R: ReplaceableResource>(
    State(control): State<EmulatorControl>,
    Path((dps_name, id)): ServicePath,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    serve(
        R::PUT_OPERATION,
        &control,
        &dps_name,
        query.as_deref(),
        &headers,
        |instance| {
            let resource: R = body_with_id(&body, R::ID_FIELD, &id)?;
            let stored = R::replace(instance, resource, if_match(&headers))?;
            Ok(ok_with_etag(&stored))
        },
    )
    .await
}

/// `DELETE` of a registration state, individual enrollment or enrollment group: 204.
pub(crate) async fn delete<R: ServiceResource>(
    State(control): State<EmulatorControl>,
    Path((dps_name, id)): ServicePath,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    serve(
        R::DELETE_OPERATION,
        &control,
        &dps_name,
        query.as_deref(),
        &headers,
        |instance| {
            R::delete(instance, &id, if_match(&headers))?;
            Ok(StatusCode::NO_CONTENT.into_response())
        },
    )
    .await
}
