//! The issuer's machine endpoints: discovery, JWKS, device authorization, token, revocation.
//! Errors are RFC 6749 §5.2 JSON (`error`, `error_description`), never cached.

use std::{collections::HashMap, sync::Arc};

use axum::{
    Json,
    extract::{Form, State, rejection::FormRejection},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use base64::{Engine, engine::general_purpose::STANDARD};
use serde_json::{Value, json};

use super::{
    IssuerState, SigningAlgorithm, config::ClientConfig, grants::Approval, grants::CodeHandle,
    grants::GrantError, paths, tokens,
};

/// The RFC 8628 grant type.
pub const DEVICE_CODE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// An OAuth error response.
#[derive(Debug)]
pub struct OAuthError {
    status: StatusCode,
    error: &'static str,
    description: String,
}

impl OAuthError {
    fn new(status: StatusCode, error: &'static str, description: impl Into<String>) -> Self {
        Self {
            status,
            error,
            description: description.into(),
        }
    }

    fn invalid_request(description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", description)
    }

    fn invalid_client(description: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "invalid_client", description)
    }
}

impl From<GrantError> for OAuthError {
    fn from(error: GrantError) -> Self {
        let status = match error {
            GrantError::TemporarilyUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_REQUEST,
        };
        Self::new(status, error.code(), error.description())
    }
}

fn no_store(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let mut response = no_store(
            (
                self.status,
                Json(json!({ "error": self.error, "error_description": self.description })),
            )
                .into_response(),
        );
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"fieldlink\""),
            );
        }
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        }
        response
    }
}

type Params = HashMap<String, String>;

fn params(form: Result<Form<Params>, FormRejection>) -> Result<Params, OAuthError> {
    form.map(|Form(p)| p).map_err(|_| {
        OAuthError::invalid_request("send the parameters as application/x-www-form-urlencoded")
    })
}

fn required<'a>(params: &'a Params, name: &str) -> Result<&'a str, OAuthError> {
    params
        .get(name)
        .map(String::as_str)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| OAuthError::invalid_request(format!("missing parameter {name}")))
}

/// Identifies the (public) client: `client_id` in the body, or HTTP Basic with an empty secret.
fn client<'s>(
    state: &'s IssuerState,
    headers: &HeaderMap,
    params: &Params,
) -> Result<&'s ClientConfig, OAuthError> {
    let from_basic = match headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        Some(value) => {
            let encoded = value
                .strip_prefix("Basic ")
                .ok_or_else(|| OAuthError::invalid_client("unsupported client authentication"))?;
            let decoded = STANDARD
                .decode(encoded.trim())
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| OAuthError::invalid_client("malformed Basic credentials"))?;
            let (id, secret) = decoded
                .split_once(':')
                .ok_or_else(|| OAuthError::invalid_client("malformed Basic credentials"))?;
            if !secret.is_empty() {
                return Err(OAuthError::invalid_client(
                    "clients of this issuer are public; send no client secret",
                ));
            }
            Some(id.to_owned())
        }
        None => None,
    };
    let id = match (from_basic, params.get("client_id")) {
        (Some(a), Some(b)) if &a != b => {
            return Err(OAuthError::invalid_request("conflicting client_id values"));
        }
        (Some(a), _) => a,
        (None, Some(b)) => b.clone(),
        (None, None) => return Err(OAuthError::invalid_client("missing client_id")),
    };
    if params.contains_key("client_secret") {
        return Err(OAuthError::invalid_client(
            "clients of this issuer are public; send no client secret",
        ));
    }
    state
        .clients
        .get(&id)
        .ok_or_else(|| OAuthError::invalid_client("unknown client"))
}

/// `GET /.well-known/openid-configuration`.
pub async fn discovery(State(state): State<Arc<IssuerState>>) -> Response {
    let metadata = json!({
        "issuer": state.config.issuer,
        "authorization_endpoint": state.url(paths::AUTHORIZE),
        "token_endpoint": state.url(paths::TOKEN),
        "device_authorization_endpoint": state.url(paths::DEVICE_AUTHORIZATION),
        "revocation_endpoint": state.url(paths::REVOKE),
        "jwks_uri": state.url(paths::JWKS),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token", DEVICE_CODE_GRANT],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": SigningAlgorithm::ALL.map(SigningAlgorithm::as_str),
        "token_endpoint_auth_methods_supported": ["none"],
        "revocation_endpoint_auth_methods_supported": ["none"],
        "code_challenge_methods_supported": ["S256"],
        "scopes_supported": tokens::SCOPES,
        "claims_supported": ["iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "name",
            "preferred_username", "tenant", "roles"],
        "authorization_response_iss_parameter_supported": true,
    });
    Json(metadata).into_response()
}

/// `GET /oauth2/jwks`.
pub async fn jwks(State(state): State<Arc<IssuerState>>) -> Response {
    let mut response = Json(state.keys.jwks(state.clock.now_unix())).into_response();
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    response
}

/// `POST /oauth2/device_authorization` (RFC 8628 §3.1–3.2).
pub async fn device_authorization(
    State(state): State<Arc<IssuerState>>,
    headers: HeaderMap,
    form: Result<Form<Params>, FormRejection>,
) -> Result<Response, OAuthError> {
    let params = params(form)?;
    let client = client(&state, &headers, &params)?;
    let scope = tokens::granted_scope(params.get("scope").map_or("", String::as_str));
    let config = &state.config;
    let (device_code, user_code) = state.grants.start_device(
        &client.client_id,
        &scope,
        state.clock.now_unix(),
        config.device_code_ttl_s,
        config.poll_interval_s,
        config.auto_approve_as.as_deref(),
    )?;
    let verification_uri = state.url(paths::DEVICE);
    let complete = format!("{verification_uri}?user_code={user_code}");
    Ok(no_store(
        Json(json!({
            "device_code": device_code,
            "user_code": user_code,
            "verification_uri": verification_uri,
            "verification_uri_complete": complete,
            "expires_in": config.device_code_ttl_s,
            "interval": config.poll_interval_s,
        }))
        .into_response(),
    ))
}

fn issue(
    state: &IssuerState,
    approval: &Approval,
    refresh: Result<String, Option<CodeHandle>>,
    now: i64,
) -> Result<Response, OAuthError> {
    let user = state.users.user(&approval.username).ok_or_else(|| {
        OAuthError::from(GrantError::InvalidGrant("the user is disabled or removed"))
    })?;
    let refresh_token = match refresh {
        Ok(next) => next,
        Err(code) => {
            state
                .grants
                .start_family(approval, code, now, state.config.refresh_token_ttl_s)
        }
    };
    let body: Value = json!(state.mint(approval, &user, refresh_token, now));
    tracing::info!(
        client_id = %approval.client_id,
        sub = %user.subject(),
        tenant = %user.tenant,
        "issued tokens"
    );
    Ok(no_store(Json(body).into_response()))
}

/// `POST /oauth2/token`.
pub async fn token(
    State(state): State<Arc<IssuerState>>,
    headers: HeaderMap,
    form: Result<Form<Params>, FormRejection>,
) -> Result<Response, OAuthError> {
    let params = params(form)?;
    let client = client(&state, &headers, &params)?;
    let now_ms = state.clock.now_ms();
    let now = now_ms.div_euclid(1000);
    match required(&params, "grant_type")? {
        DEVICE_CODE_GRANT => {
            let device_code = required(&params, "device_code")?;
            let approval = state
                .grants
                .poll_device(device_code, &client.client_id, now_ms)?;
            issue(&state, &approval, Err(None), now)
        }
        "authorization_code" => {
            let code = required(&params, "code")?;
            let redirect_uri = required(&params, "redirect_uri")?;
            let verifier = required(&params, "code_verifier")?;
            let (approval, handle) =
                state
                    .grants
                    .redeem_code(code, &client.client_id, redirect_uri, verifier, now)?;
            issue(&state, &approval, Err(Some(handle)), now)
        }
        "refresh_token" => {
            let refresh = required(&params, "refresh_token")?;
            let (approval, next) = state.grants.refresh(refresh, &client.client_id, now)?;
            issue(&state, &approval, Ok(next), now)
        }
        _ => Err(OAuthError::new(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "supported: authorization_code, refresh_token, device_code",
        )),
    }
}

/// `POST /oauth2/revoke` (RFC 7009).
pub async fn revoke(
    State(state): State<Arc<IssuerState>>,
    headers: HeaderMap,
    form: Result<Form<Params>, FormRejection>,
) -> Result<Response, OAuthError> {
    let params = params(form)?;
    let client = client(&state, &headers, &params)?;
    let token = required(&params, "token")?;
    state
        .grants
        .revoke(token, &client.client_id, state.clock.now_unix())?;
    Ok(no_store(StatusCode::OK.into_response()))
}
