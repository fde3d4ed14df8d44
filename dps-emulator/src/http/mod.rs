//! The HTTP surface: device API, service API, emulator admin API and `/metrics`.
//!
//! URL space on one listener:
//! - device API (the global endpoint), routed by ID scope:
//!   `PUT /{idScope}/registrations/{registrationId}/register`,
//!   `GET /{idScope}/registrations/{registrationId}/operations/{operationId}`,
//!   `POST /{idScope}/registrations/{registrationId}`;
//! - service API of instance `{dpsName}`: `/dps/{dpsName}/registrations/{id}`,
//!   `/dps/{dpsName}/enrollments/{id}`, `/dps/{dpsName}/enrollmentGroups/{id}`. A request whose
//!   `Host` is `{dpsName}.azure-devices-provisioning.net` (Azure's service host) is routed there
//!   without the prefix, so `/registrations/{id}` works unchanged behind such a host name;
//! - emulator administration (not an Azure API): `/emulator/instances…`;
//! - `GET /metrics`.

mod admin;
mod device;
mod service;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use std::time::Duration;
use tower::Layer;
use tower::util::{MapRequest, MapRequestLayer};

use crate::config::DPS_HOST_SUFFIX;
use crate::control::EmulatorControl;
use crate::error::DpsError;
use crate::instance::{Api, Instance};
use crate::model::{
    DeviceRegistrationState, EnrollmentGroup, IndividualEnrollment, SUPPORTED_API_VERSIONS,
};

/// Path prefix of the service API of one instance.
pub const SERVICE_PREFIX: &str = "/dps";

/// The emulator's routes on `control`'s state (without the `Host` rewrite; see [`app`]).
pub fn router(control: EmulatorControl) -> Router {
    Router::new()
        .route(
            "/{id_scope}/registrations/{registration_id}/register",
            put(device::register),
        )
        .route(
            "/{id_scope}/registrations/{registration_id}/operations/{operation_id}",
            get(device::operation_status),
        )
        .route(
            "/{id_scope}/registrations/{registration_id}",
            post(device::status_lookup),
        )
        .route(
            "/dps/{dps_name}/registrations/{id}",
            get(service::get::<DeviceRegistrationState>)
                .delete(service::delete::<DeviceRegistrationState>),
        )
        .route(
            "/dps/{dps_name}/enrollments/{id}",
            get(service::get::<IndividualEnrollment>)
                .put(service::put::<IndividualEnrollment>)
                .delete(service::delete::<IndividualEnrollment>),
        )
        .route(
            "/dps/{dps_name}/enrollmentGroups/{id}",
            get(service::get::<EnrollmentGroup>)
                .put(service::put::<EnrollmentGroup>)
                .delete(service::delete::<EnrollmentGroup>),
        )
        .route("/emulator/instances", get(admin::list).post(admin::create))
        .route(
            "/emulator/instances/{name}",
            get(admin::get_one).delete(admin::remove),
        )
        .route(
            "/emulator/instances/{name}/linkedHubs",
            put(admin::set_linked_hubs),
        )
        .route("/emulator/instances/{name}/knobs", put(admin::set_knobs))
        .route("/emulator/instances/{name}/limits", put(admin::set_limits))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(
            control.clone(),
            count_request,
        ))
        .with_state(control)
}

/// The full HTTP service: [`router`] behind the `Host`-based service-API rewrite.
pub type App = MapRequest<Router, fn(Request) -> Request>;

/// Builds the [`App`] on `control`'s state.
pub fn app(control: EmulatorControl) -> App {
    MapRequestLayer::new(route_service_host as fn(Request) -> Request).layer(router(control))
}

/// Rewrites `https://{dpsName}.azure-devices-provisioning.net/registrations/x` to
/// `/dps/{dpsName}/registrations/x` (any host but `global`).
fn route_service_host(mut request: Request) -> Request {
    let host = request.uri().host().map(str::to_owned).or_else(|| {
        request
            .headers()
            .get(axum::http::header::HOST)?
            .to_str()
            .ok()
            .map(str::to_owned)
    });
    let Some(host) = host else { return request };
    let host = host
        .split(':')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    let Some(name) = host
        .strip_suffix(DPS_HOST_SUFFIX)
        .and_then(|h| h.strip_suffix('.'))
    else {
        return request;
    };
    if name == "global" || name.is_empty() || name.contains('.') {
        return request;
    }
    let path_and_query = request
        .uri()
        .path_and_query()
        .map(|pq| pq.as_str().to_owned())
        .unwrap_or_default();
    if path_and_query.starts_with("/dps/") || path_and_query.starts_with("/emulator/") {
        return request;
    }
    if let Ok(uri) = format!("{SERVICE_PREFIX}/{name}{path_and_query}").parse::<Uri>() {
        *request.uri_mut() = uri;
    }
    request
}

/// Which operation and instance a response belongs to (read by the metrics middleware).
#[derive(Debug, Clone)]
pub(crate) struct OperationTag {
    pub(crate) operation: &'static str,
    pub(crate) instance: Option<String>,
}

/// Renders a handler result and tags it for metrics.
pub(crate) fn tagged(
    operation: &'static str,
    instance: Option<String>,
    result: Result<Response, DpsError>,
) -> Response {
    let mut response = result.unwrap_or_else(IntoResponse::into_response);
    response.extensions_mut().insert(OperationTag {
        operation,
        instance,
    });
    response
}

async fn count_request(
    State(control): State<EmulatorControl>,
    request: Request,
    next: Next,
) -> Response {
    let response = next.run(request).await;
    let (operation, instance) = match response.extensions().get::<OperationTag>() {
        Some(tag) => (tag.operation, tag.instance.clone().unwrap_or_default()),
        None => ("unknown", String::new()),
    };
    control
        .http_metrics
        .record(&instance, operation, response.status().as_u16());
    response
}

async fn metrics(State(control): State<EmulatorControl>) -> Response {
    let body = control.metrics_text();
    let response = (
        [(
            axum::http::header::CONTENT_TYPE,
            crate::metrics::CONTENT_TYPE,
        )],
        body,
    )
        .into_response();
    tagged("metrics", None, Ok(response))
}

async fn not_found(uri: Uri) -> Response {
    tagged(
        "unknown",
        None,
        Err(DpsError::RegistrationNotFound(format!(
            "no route for {}",
            uri.path()
        ))),
    )
}

/// Checks the `api-version` query parameter; returns the version sent.
pub(crate) fn api_version(query: Option<&str>) -> Result<String, DpsError> {
    let version = query
        .unwrap_or_default()
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(name, _)| *name == "api-version")
        .map(|(_, value)| value.to_owned());
    match version {
        Some(v) if SUPPORTED_API_VERSIONS.contains(&v.as_str()) => Ok(v),
        Some(v) => Err(DpsError::ApiVersion(format!(
            "{v:?} is not supported; use one of {}",
            SUPPORTED_API_VERSIONS.join(", ")
        ))),
        None => Err(DpsError::ApiVersion(format!(
            "add ?api-version= (one of {})",
            SUPPORTED_API_VERSIONS.join(", ")
        ))),
    }
}

/// Sleeps for the injected latency, then fails if a fault was drawn.
pub(crate) async fn apply_faults(instance: &Instance, api: Api) -> Result<(), DpsError> {
    let (latency, fault) = instance.draw_fault(api);
    if latency > Duration::ZERO {
        tokio::time::sleep(latency).await;
    }
    fault.map_or(Ok(()), Err)
}

/// The `Authorization` header, if it is valid text.
pub(crate) fn authorization(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()
}

/// The `If-Match` header, if any.
pub(crate) fn if_match(headers: &HeaderMap) -> Option<&str> {
    headers.get(axum::http::header::IF_MATCH)?.to_str().ok()
}

/// Parses an optional JSON body (empty means `default`).
pub(crate) fn json_body<T: serde::de::DeserializeOwned + Default>(
    body: &Bytes,
) -> Result<T, DpsError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|err| DpsError::BadRequest(format!("request body: {err}")))
}

/// Unix seconds now.
pub(crate) fn now_unix() -> i64 {
    chrono::Utc::now().timestamp()
}

/// JSON with a status.
pub(crate) fn json_response<T: serde::Serialize>(status: StatusCode, value: &T) -> Response {
    (status, axum::Json(value)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_version_is_required_and_checked() {
        assert_eq!(
            api_version(Some("api-version=2021-10-01")).unwrap(),
            "2021-10-01"
        );
        assert_eq!(
            api_version(Some("forceRegistration=true&api-version=2019-03-31")).unwrap(),
            "2019-03-31"
        );
        assert!(api_version(None).is_err());
        assert!(api_version(Some("api-version=2099-01-01")).is_err());
    }

    #[test]
    fn service_hosts_are_rewritten_to_the_prefix() {
        let request = Request::builder()
            .uri("/registrations/dev-1?api-version=2021-10-01")
            .header("host", "dps-a.azure-devices-provisioning.net:443")
            .body(axum::body::Body::empty())
            .unwrap();
        assert_eq!(
            route_service_host(request).uri(),
            "/dps/dps-a/registrations/dev-1?api-version=2021-10-01"
        );
        let global = Request::builder()
            .uri("/0ne00000001/registrations/dev-1/register")
            .header("host", "global.azure-devices-provisioning.net")
            .body(axum::body::Body::empty())
            .unwrap();
        assert_eq!(
            route_service_host(global).uri(),
            "/0ne00000001/registrations/dev-1/register"
        );
    }
}
