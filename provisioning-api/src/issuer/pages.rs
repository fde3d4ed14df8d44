//! The issuer's pages for people: device verification (sign in, then approve or deny) and the
//! authorization-code sign-in. A bad client or redirect URI is shown as an error page, never
//! redirected to (RFC 6749 §4.1.2.1).

use std::{collections::HashMap, sync::Arc};

use axum::{
    extract::{Form, Query, State, rejection::FormRejection, rejection::QueryRejection},
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use zeroize::Zeroizing;

use super::{
    IssuerState,
    grants::{AuthRequest, VerifyError},
    html, paths, redirect,
    users::SignInError,
};

type Params = HashMap<String, String>;

fn param<'a>(params: &'a Params, name: &str) -> &'a str {
    params.get(name).map_or("", String::as_str)
}

fn bad_form() -> Response {
    html::error(
        StatusCode::BAD_REQUEST,
        "Bad request",
        "The form could not be read. Start again from your device or app.",
    )
}

fn sign_in_message(error: SignInError) -> String {
    match error {
        SignInError::BadCredentials => "Wrong username or password.".to_owned(),
        SignInError::LockedOut(seconds) => format!(
            "Too many failed attempts. Try again in {} minute(s).",
            (seconds + 59) / 60
        ),
    }
}

/// `GET /device[?user_code=…]`.
pub async fn device_page(
    State(state): State<Arc<IssuerState>>,
    query: Result<Query<Params>, QueryRejection>,
) -> Response {
    let code = query
        .map(|Query(p)| super::grants::normalize_user_code(param(&p, "user_code")))
        .unwrap_or_default();
    html::device_sign_in(&state.local(paths::DEVICE), &code, None)
}

/// `POST /device`: the code and the credentials; answers with the consent page.
pub async fn device_sign_in(
    State(state): State<Arc<IssuerState>>,
    form: Result<Form<Params>, FormRejection>,
) -> Response {
    let Ok(Form(params)) = form else {
        return bad_form();
    };
    let action = state.local(paths::DEVICE);
    let user_code = param(&params, "user_code");
    let now = state.clock.now_unix();
    let Ok(request) = state.grants.device_request(user_code, now) else {
        return html::device_sign_in(
            &action,
            user_code,
            Some("Unknown or expired code. Check the code on your device."),
        );
    };
    let password = Zeroizing::new(param(&params, "password").to_owned());
    let user = match state
        .users
        .sign_in(param(&params, "username"), password, now)
        .await
    {
        Ok(user) => user,
        Err(error) => {
            return html::device_sign_in(
                &action,
                &request.user_code,
                Some(&sign_in_message(error)),
            );
        }
    };
    match state
        .grants
        .open_consent(&request.user_code, &user.username, now)
    {
        Ok(consent) => html::device_consent(
            &state.local(paths::DEVICE_DECISION),
            &html::ConsentView {
                client: state.client_name(&request.client_id),
                username: &user.username,
                tenant: &user.tenant,
                user_code: &request.user_code,
                scope: &request.scope,
            },
            &consent,
        ),
        Err(_) => html::device_sign_in(&action, user_code, Some("The code expired. Start again.")),
    }
}

/// `POST /device/decision`: approve or deny.
pub async fn device_decision(
    State(state): State<Arc<IssuerState>>,
    form: Result<Form<Params>, FormRejection>,
) -> Response {
    let Ok(Form(params)) = form else {
        return bad_form();
    };
    let approve = match param(&params, "decision") {
        "approve" => true,
        "deny" => false,
        _ => return bad_form(),
    };
    match state
        .grants
        .decide(param(&params, "consent"), approve, state.clock.now_unix())
    {
        Ok(request) => {
            tracing::info!(client_id = %request.client_id, approve, "device sign-in decided");
            html::device_done(approve)
        }
        Err(VerifyError::UnknownConsent) => html::error(
            StatusCode::BAD_REQUEST,
            "Form expired",
            "This approval form expired or was already used. Start again from your device.",
        ),
        Err(VerifyError::UnknownCode) => html::error(
            StatusCode::BAD_REQUEST,
            "Code expired",
            "The device's code expired. Start again from your device.",
        ),
    }
}

/// Redirects to the client with `extra` query parameters (and `iss`, RFC 9207).
fn back_to_client(
    state: &IssuerState,
    redirect_uri: &str,
    client_state: Option<&str>,
    extra: &[(&str, &str)],
    status: StatusCode,
) -> Response {
    let Ok(mut url) = url::Url::parse(redirect_uri) else {
        return html::error(
            StatusCode::BAD_REQUEST,
            "Bad redirect",
            "Invalid redirect URI.",
        );
    };
    {
        let mut query = url.query_pairs_mut();
        for (k, v) in extra {
            query.append_pair(k, v);
        }
        if let Some(s) = client_state {
            query.append_pair("state", s);
        }
        query.append_pair("iss", &state.config.issuer);
    }
    let mut response = status.into_response();
    if let Ok(location) = HeaderValue::from_str(url.as_str()) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// `GET /oauth2/authorize`: validates the request, then shows the sign-in page.
pub async fn authorize(
    State(state): State<Arc<IssuerState>>,
    query: Result<Query<Params>, QueryRejection>,
) -> Response {
    let Ok(Query(params)) = query else {
        return bad_form();
    };
    let client_id = param(&params, "client_id");
    let Some(client) = state.clients.get(client_id) else {
        return html::error(
            StatusCode::BAD_REQUEST,
            "Unknown application",
            "This application is not registered with the issuer.",
        );
    };
    let redirect_uri = param(&params, "redirect_uri");
    if !redirect::is_registered(&client.redirect_uris, redirect_uri) {
        return html::error(
            StatusCode::BAD_REQUEST,
            "Unregistered redirect",
            "The application asked to return to an address that is not registered for it.",
        );
    }
    let client_state = params.get("state").map(String::as_str);
    let fail = |error: &str, description: &str| {
        back_to_client(
            &state,
            redirect_uri,
            client_state,
            &[("error", error), ("error_description", description)],
            StatusCode::FOUND,
        )
    };
    if param(&params, "response_type") != "code" {
        return fail("unsupported_response_type", "only response_type=code");
    }
    let challenge = param(&params, "code_challenge");
    if challenge.is_empty() || param(&params, "code_challenge_method") != "S256" {
        return fail(
            "invalid_request",
            "PKCE with code_challenge_method=S256 is required",
        );
    }
    let request = AuthRequest {
        client_id: client_id.to_owned(),
        redirect_uri: redirect_uri.to_owned(),
        scope: super::tokens::granted_scope(param(&params, "scope")),
        state: client_state.map(str::to_owned),
        code_challenge: challenge.to_owned(),
        nonce: params.get("nonce").cloned(),
    };
    let now = state.clock.now_unix();
    let ttl = state.config.authorization_code_ttl_s;
    if let Some(user) = &state.config.auto_approve_as {
        return match state.grants.issue_code(request, user, now, ttl) {
            Ok(code) => back_to_client(
                &state,
                redirect_uri,
                client_state,
                &[("code", &code)],
                StatusCode::FOUND,
            ),
            Err(_) => fail("temporarily_unavailable", "retry later"),
        };
    }
    match state.grants.start_authorization(request, now) {
        Ok(id) => html::authorize_sign_in(
            &state.local(paths::AUTHORIZE),
            state.client_name(client_id),
            &id,
            None,
        ),
        Err(_) => fail("temporarily_unavailable", "retry later"),
    }
}

/// `POST /oauth2/authorize`: the sign-in form; redirects back with a code or an error.
pub async fn authorize_sign_in(
    State(state): State<Arc<IssuerState>>,
    form: Result<Form<Params>, FormRejection>,
) -> Response {
    let Ok(Form(params)) = form else {
        return bad_form();
    };
    let id = param(&params, "request");
    let now = state.clock.now_unix();
    let ttl = state.config.authorization_code_ttl_s;
    let Some(request) = state.grants.authorization(id, now) else {
        return html::error(
            StatusCode::BAD_REQUEST,
            "Sign-in expired",
            "This sign-in page expired. Start again from the application.",
        );
    };
    if param(&params, "decision") == "deny" {
        let _ = state.grants.finish_authorization(id, None, now, ttl);
        return back_to_client(
            &state,
            &request.redirect_uri,
            request.state.as_deref(),
            &[
                ("error", "access_denied"),
                ("error_description", "the user cancelled"),
            ],
            StatusCode::SEE_OTHER,
        );
    }
    let password = Zeroizing::new(param(&params, "password").to_owned());
    let user = match state
        .users
        .sign_in(param(&params, "username"), password, now)
        .await
    {
        Ok(user) => user,
        Err(error) => {
            return html::authorize_sign_in(
                &state.local(paths::AUTHORIZE),
                state.client_name(&request.client_id),
                id,
                Some(&sign_in_message(error)),
            );
        }
    };
    match state
        .grants
        .finish_authorization(id, Some(&user.username), now, ttl)
    {
        Some((request, Some(code))) => back_to_client(
            &state,
            &request.redirect_uri,
            request.state.as_deref(),
            &[("code", &code)],
            StatusCode::SEE_OTHER,
        ),
        _ => html::error(
            StatusCode::BAD_REQUEST,
            "Sign-in expired",
            "This sign-in page expired. Start again from the application.",
        ),
    }
}
