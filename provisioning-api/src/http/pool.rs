//! DPS pool administration and ticket-key rotation. Reading the pool needs the admin role (a
//! tenant's admin sees the instances its devices may use); changing it needs an admin of the
//! operator tenant.

use axum::{Json, extract::State, http::StatusCode};
use base64::{Engine, engine::general_purpose::STANDARD};

use super::{
    ApiState, Caller,
    dto::{InstanceList, InstanceView, TicketKeyView},
    extract::{ApiJson, ApiPath},
};
use crate::{
    auth::Role,
    error::{ApiError, ErrorBody},
    model::{InstanceState, NewDpsInstance},
    storage::PoolError,
};

fn valid_name(name: &str) -> bool {
    (1..=63).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

fn check_spec(spec: &NewDpsInstance) -> Result<(), ApiError> {
    let problem = if !valid_name(&spec.name) {
        Some("name must be 1 to 63 characters of a-z, 0-9 and '-'")
    } else if spec.id_scope.trim().is_empty() || spec.id_scope.len() > 64 {
        Some("id_scope must be 1 to 64 characters")
    } else if spec.global_endpoint.trim().is_empty() {
        Some("global_endpoint must not be empty")
    } else if spec.region.trim().is_empty() || spec.region.len() > 64 {
        Some("region must be 1 to 64 characters")
    } else if spec.registration_cap == 0 {
        Some("registration_cap must be at least 1")
    } else if !url::Url::parse(&spec.service_endpoint)
        .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
    {
        Some("service_endpoint must be an http(s) URL")
    } else if spec
        .service_credentials
        .as_ref()
        .is_some_and(|c| c.policy_name.is_empty() || STANDARD.decode(c.key.expose()).is_err())
    {
        Some("service_credentials need a policy_name and a base64 key")
    } else {
        None
    };
    match problem {
        Some(message) => Err(ApiError::invalid_request(message)),
        None => Ok(()),
    }
}

async fn visible_instance(
    state: &ApiState,
    caller: &Caller,
    name: &str,
) -> Result<InstanceView, ApiError> {
    let instance = state
        .shared
        .storage
        .instance(name)
        .await?
        .filter(|i| caller.is_operator(state) || i.serves_tenant(&caller.0.tenant))
        .ok_or_else(|| ApiError::from(PoolError::NotFound(name.to_owned())))?;
    Ok(InstanceView::new(&instance, state.shared.clock.now_ms()))
}

/// List the DPS pool with utilisation (admin; tenants see the instances they may use).
#[utoipa::path(
    get,
    path = "/v1/admin/dps-instances",
    tag = "pool",
    responses(
        (status = 200, description = "The pool", body = InstanceList),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn list(
    State(state): State<ApiState>,
    caller: Caller,
) -> Result<Json<InstanceList>, ApiError> {
    caller.require(&[Role::Admin])?;
    let operator = caller.is_operator(&state);
    let now = state.shared.clock.now_ms();
    let instances = state.shared.storage.list_instances().await?;
    Ok(Json(InstanceList {
        instances: instances
            .iter()
            .filter(|i| operator || i.serves_tenant(&caller.0.tenant))
            .map(|i| InstanceView::new(i, now))
            .collect(),
    }))
}

/// Add a DPS instance to the pool (operator admin).
#[utoipa::path(
    post,
    path = "/v1/admin/dps-instances",
    tag = "pool",
    request_body = NewDpsInstance,
    responses(
        (status = 201, description = "Added, active", body = InstanceView),
        (status = 400, description = "Invalid instance", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 403, description = "Not an operator admin", body = ErrorBody),
        (status = 409, description = "Name or ID scope taken", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn add(
    State(state): State<ApiState>,
    caller: Caller,
    ApiJson(spec): ApiJson<NewDpsInstance>,
) -> Result<(StatusCode, Json<InstanceView>), ApiError> {
    caller.require_operator(&state)?;
    check_spec(&spec)?;
    let now = state.shared.clock.now_ms();
    let instance = state.shared.storage.add_instance(spec, now).await?;
    Ok((StatusCode::CREATED, Json(InstanceView::new(&instance, now))))
}

/// One DPS instance with utilisation (admin).
#[utoipa::path(
    get,
    path = "/v1/admin/dps-instances/{name}",
    tag = "pool",
    params(("name" = String, Path, description = "Instance name")),
    responses(
        (status = 200, description = "The instance", body = InstanceView),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 404, description = "No such instance", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn get_instance(
    State(state): State<ApiState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<InstanceView>, ApiError> {
    caller.require(&[Role::Admin])?;
    Ok(Json(visible_instance(&state, &caller, &name).await?))
}

async fn set_state(
    state: &ApiState,
    caller: &Caller,
    name: &str,
    new_state: InstanceState,
) -> Result<Json<InstanceView>, ApiError> {
    caller.require_operator(state)?;
    let instance = state
        .shared
        .storage
        .set_instance_state(name, new_state)
        .await?;
    Ok(Json(InstanceView::new(
        &instance,
        state.shared.clock.now_ms(),
    )))
}

/// Drain an instance: it keeps its devices but takes no new ones (operator admin).
#[utoipa::path(
    post,
    path = "/v1/admin/dps-instances/{name}/drain",
    tag = "pool",
    params(("name" = String, Path, description = "Instance name")),
    responses(
        (status = 200, description = "Now draining", body = InstanceView),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 403, description = "Not an operator admin", body = ErrorBody),
        (status = 404, description = "No such instance", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn drain(
    State(state): State<ApiState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<InstanceView>, ApiError> {
    set_state(&state, &caller, &name, InstanceState::Draining).await
}

/// Re-activate a drained instance (operator admin).
#[utoipa::path(
    post,
    path = "/v1/admin/dps-instances/{name}/activate",
    tag = "pool",
    params(("name" = String, Path, description = "Instance name")),
    responses(
        (status = 200, description = "Active again", body = InstanceView),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 403, description = "Not an operator admin", body = ErrorBody),
        (status = 404, description = "No such instance", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn activate(
    State(state): State<ApiState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<InstanceView>, ApiError> {
    set_state(&state, &caller, &name, InstanceState::Active).await
}

/// Remove an empty instance from the pool (operator admin).
#[utoipa::path(
    delete,
    path = "/v1/admin/dps-instances/{name}",
    tag = "pool",
    params(("name" = String, Path, description = "Instance name")),
    responses(
        (status = 204, description = "Removed"),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 403, description = "Not an operator admin", body = ErrorBody),
        (status = 404, description = "No such instance", body = ErrorBody),
        (status = 409, description = "Devices still assigned to it", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn remove(
    State(state): State<ApiState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    caller.require_operator(&state)?;
    state.shared.storage.remove_instance(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Rotate the ticket signing key: a new key signs from now on; the old one stays trusted
/// (operator admin).
#[utoipa::path(
    post,
    path = "/v1/admin/ticket-keys/rotate",
    tag = "ticket-keys",
    responses(
        (status = 200, description = "The new current key", body = TicketKeyView),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 403, description = "Not an operator admin", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn rotate_ticket_key(
    State(state): State<ApiState>,
    caller: Caller,
) -> Result<Json<TicketKeyView>, ApiError> {
    caller.require_operator(&state)?;
    let key = state.shared.keyring.rotate().await?;
    Ok(Json(TicketKeyView::from(&key)))
}

/// Retire a previous ticket key once no device needs it (operator admin).
#[utoipa::path(
    delete,
    path = "/v1/admin/ticket-keys/{keyId}",
    tag = "ticket-keys",
    params(("keyId" = String, Path, description = "Key id")),
    responses(
        (status = 204, description = "Retired"),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 403, description = "Not an operator admin", body = ErrorBody),
        (status = 404, description = "No such previous key (the current key cannot be retired)", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn retire_ticket_key(
    State(state): State<ApiState>,
    caller: Caller,
    ApiPath(key_id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    caller.require_operator(&state)?;
    if state.shared.keyring.retire(&key_id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "ticket_key_not_found",
            format!("no previous ticket key {key_id:?}; rotate before retiring the current key"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> NewDpsInstance {
        serde_json::from_value(serde_json::json!({
            "name": "dps-weu-1", "id_scope": "0ne0001", "region": "weu",
            "service_endpoint": "https://dps-weu-1.azure-devices-provisioning.net",
            "service_credentials": {"policy_name": "owner", "key": "a2V5"}
        }))
        .expect("spec")
    }

    #[test]
    fn validates_instance_specs() {
        assert!(check_spec(&spec()).is_ok());
        let mut bad = spec();
        bad.name = "DPS 1".to_owned();
        assert!(check_spec(&bad).is_err());
        let mut bad = spec();
        bad.service_endpoint = "ftp://x".to_owned();
        assert!(check_spec(&bad).is_err());
        let mut bad = spec();
        bad.registration_cap = 0;
        assert!(check_spec(&bad).is_err());
        let mut bad = spec();
        if let Some(c) = bad.service_credentials.as_mut() {
            c.key = crate::secret::SecretString::new("not base64!");
        }
        assert!(check_spec(&bad).is_err());
    }
}
