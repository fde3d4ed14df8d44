//! The tenant's device allowlist: import a manufacturing partner's list, page through it,
//! remove an entry.

use axum::{
    Json,
    body::Bytes,
    extract::{State, rejection::BytesRejection},
    http::{HeaderMap, StatusCode, header},
};
use serde::Deserialize;
use serde_json::json;
use utoipa::IntoParams;

use super::{
    ApiState, Caller, check_registration_id,
    dto::{AllowlistItem, AllowlistPage, ImportReport},
    extract::{ApiPath, ApiQuery},
};
use crate::{
    allowlist_import::{ImportError, ListFormat, parse_device_list},
    auth::Role,
    error::{ApiError, ErrorBody},
};

const MAX_PAGE: u32 = 1_000;
const MAX_REPORTED: usize = 100;

fn import_error(error: ImportError) -> ApiError {
    let details = match &error {
        ImportError::InvalidRows { rows, total } => json!({
            "invalid_rows": total,
            "rows": rows.iter().map(|r| json!({
                "row": r.row, "value": r.value, "reason": r.reason
            })).collect::<Vec<_>>(),
        }),
        _ => json!({}),
    };
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "invalid_allowlist",
        format!("{error}; nothing was imported"),
    )
    .with_details(details)
}

/// Import hardware identifiers from the manufacturing partner (admin).
///
/// `text/csv`: one `registration_id[,label]` per line, optional header, `#` comments.
/// `application/json`: `["id", …]` or `{"devices": [{"registration_id": "…", "label": "…"}]}`.
/// All-or-nothing: one invalid identifier rejects the import and lists the rows to fix.
#[utoipa::path(
    post,
    path = "/v1/allowlist",
    tag = "allowlist",
    request_body(content = String, description = "The device list",
        content_type = "text/csv"),
    responses(
        (status = 200, description = "What was imported", body = ImportReport),
        (status = 400, description = "Invalid list (rows listed in details)", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 413, description = "List too large", body = ErrorBody),
        (status = 415, description = "Neither CSV nor JSON", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn import(
    State(state): State<ApiState>,
    caller: Caller,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<ImportReport>, ApiError> {
    caller.require(&[Role::Admin])?;
    let body = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "the list is too large; split it into several imports",
            )
        } else {
            ApiError::invalid_request(rejection.body_text())
        }
    })?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let format = if content_type.starts_with("application/json") {
        ListFormat::Json
    } else if content_type.starts_with("text/csv") || content_type.starts_with("text/plain") {
        ListFormat::Csv
    } else {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the list as text/csv or application/json",
        ));
    };
    let text = std::str::from_utf8(&body)
        .map_err(|_| ApiError::invalid_request("the list is not UTF-8 text"))?;
    let entries = parse_device_list(format, text).map_err(import_error)?;
    let received = entries.len() as u64;
    let now = state.shared.clock.now_ms();
    let outcome = state
        .shared
        .storage
        .import_allowlist(&caller.0.tenant, entries, now)
        .await?;
    let refused = outcome.owned_by_other_tenant.len() as u64;
    Ok(Json(ImportReport {
        received,
        added: outcome.added,
        already_listed: outcome.already_listed,
        owned_by_other_tenant: refused,
        owned_by_other_tenant_ids: outcome
            .owned_by_other_tenant
            .into_iter()
            .take(MAX_REPORTED)
            .collect(),
    }))
}

/// Paging through the allowlist.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct PageQuery {
    /// Return entries after this registration ID.
    after: Option<String>,
    /// Page size (1 to 1000, default 100).
    limit: Option<u32>,
}

/// Page through the tenant's allowlist (admin, qa).
#[utoipa::path(
    get,
    path = "/v1/allowlist",
    tag = "allowlist",
    params(PageQuery),
    responses(
        (status = 200, description = "One page", body = AllowlistPage),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 403, description = "Role missing", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn list(
    State(state): State<ApiState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<Json<AllowlistPage>, ApiError> {
    caller.require(&[Role::Admin, Role::Qa])?;
    let limit = query.limit.unwrap_or(100).clamp(1, MAX_PAGE);
    let entries = state
        .shared
        .storage
        .allowlist_page(&caller.0.tenant, query.after, limit)
        .await?;
    let next_after = (entries.len() == limit as usize)
        .then(|| entries.last().map(|e| e.registration_id.clone()))
        .flatten();
    Ok(Json(AllowlistPage {
        entries: entries
            .into_iter()
            .map(|e| AllowlistItem {
                registration_id: e.registration_id,
                label: e.label,
            })
            .collect(),
        next_after,
    }))
}

/// Remove one identifier from the tenant's allowlist (admin). Assigned devices keep their
/// assignment but get no new tickets.
#[utoipa::path(
    delete,
    path = "/v1/allowlist/{registrationId}",
    tag = "allowlist",
    params(("registrationId" = String, Path, description = "DPS registration ID")),
    responses(
        (status = 204, description = "Removed"),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 403, description = "Not an admin, or another tenant's device", body = ErrorBody),
        (status = 404, description = "Not on the list", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn remove(
    State(state): State<ApiState>,
    caller: Caller,
    ApiPath(registration_id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    caller.require(&[Role::Admin])?;
    check_registration_id(&registration_id)?;
    if state
        .shared
        .storage
        .remove_from_allowlist(&caller.0.tenant, &registration_id)
        .await?
    {
        return Ok(StatusCode::NO_CONTENT);
    }
    match super::owned_device(&state, &caller, &registration_id).await {
        Err(error) => Err(error),
        Ok(_) => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_allowlisted",
            format!("{registration_id:?} is not on this tenant's allowlist"),
        )),
    }
}
