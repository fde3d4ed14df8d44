//! The issuer's HTML pages (sign-in, device verification, consent, results): self-contained,
//! no scripts, every interpolated value escaped, framing forbidden.

use axum::{
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};

/// Escapes text for HTML element content and quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:28rem;margin:3rem auto;\
padding:0 1rem;color:#1b1b1b}h1{font-size:1.4rem}label{display:block;margin:.8rem 0 .2rem}\
input{width:100%;padding:.5rem;font-size:1rem;box-sizing:border-box}\
.code{font-family:monospace;font-size:1.3rem;letter-spacing:.15rem}\
button{margin:1rem .5rem 0 0;padding:.5rem 1.2rem;font-size:1rem}\
.error{color:#a40000;background:#fde8e8;padding:.5rem}.muted{color:#555;font-size:.9rem}";

/// A complete page with the issuer's security headers.
pub fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
<title>{title}</title><style>{STYLE}</style></head><body><h1>{title}</h1>{body}\
<p class=\"muted\">fieldlink sandbox sign-in</p></body></html>",
        title = escape(title),
    );
    let mut response = (status, html).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

fn error_banner(error: Option<&str>) -> String {
    error.map_or_else(String::new, |e| {
        format!("<p class=\"error\" role=\"alert\">{}</p>", escape(e))
    })
}

/// Step 1 of device verification: the code (prefilled from `verification_uri_complete`) and
/// the user's credentials.
pub fn device_sign_in(action: &str, user_code: &str, error: Option<&str>) -> Response {
    let body = format!(
        "{banner}<p>Enter the code shown on your device, then sign in.</p>\
<form method=\"post\" action=\"{action}\">\
<label for=\"user_code\">Code</label>\
<input id=\"user_code\" name=\"user_code\" class=\"code\" value=\"{code}\" autocomplete=\"off\" \
autocapitalize=\"characters\" required>\
<label for=\"username\">Username</label>\
<input id=\"username\" name=\"username\" autocomplete=\"username\" required>\
<label for=\"password\">Password</label>\
<input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\" required>\
<button type=\"submit\">Sign in</button></form>",
        banner = error_banner(error),
        action = escape(action),
        code = escape(user_code),
    );
    let status = if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    page(status, "Sign in a device", &body)
}

/// What a consent page describes.
#[derive(Debug)]
pub struct ConsentView<'a> {
    /// The requesting client's display name.
    pub client: &'a str,
    /// Signed-in user.
    pub username: &'a str,
    /// Their tenant.
    pub tenant: &'a str,
    /// The device's user code.
    pub user_code: &'a str,
    /// Requested scope.
    pub scope: &'a str,
}

/// Step 2: approve or deny, carrying the one-time consent id.
pub fn device_consent(action: &str, view: &ConsentView<'_>, consent: &str) -> Response {
    let body = format!(
        "<p><strong>{client}</strong> on the device showing <span class=\"code\">{code}</span> \
asks to act as <strong>{user}</strong> (tenant <strong>{tenant}</strong>).</p>\
<p class=\"muted\">Scope: {scope}. Approve only if you started this sign-in yourself and the \
code matches your device.</p>\
<form method=\"post\" action=\"{action}\"><input type=\"hidden\" name=\"consent\" value=\"{consent}\">\
<button type=\"submit\" name=\"decision\" value=\"approve\">Approve</button>\
<button type=\"submit\" name=\"decision\" value=\"deny\">Deny</button></form>",
        client = escape(view.client),
        code = escape(view.user_code),
        user = escape(view.username),
        tenant = escape(view.tenant),
        scope = escape(if view.scope.is_empty() {
            "(none)"
        } else {
            view.scope
        }),
        action = escape(action),
        consent = escape(consent),
    );
    page(StatusCode::OK, "Approve this device?", &body)
}

/// Step 3: the outcome.
pub fn device_done(approved: bool) -> Response {
    if approved {
        page(
            StatusCode::OK,
            "Device approved",
            "<p>You are signed in on your device. You can close this window.</p>",
        )
    } else {
        page(
            StatusCode::OK,
            "Request denied",
            "<p>The device was not signed in. You can close this window.</p>",
        )
    }
}

/// The authorization-code sign-in page.
pub fn authorize_sign_in(
    action: &str,
    client: &str,
    request_id: &str,
    error: Option<&str>,
) -> Response {
    let body = format!(
        "{banner}<p><strong>{client}</strong> asks you to sign in.</p>\
<form method=\"post\" action=\"{action}\"><input type=\"hidden\" name=\"request\" value=\"{request}\">\
<label for=\"username\">Username</label>\
<input id=\"username\" name=\"username\" autocomplete=\"username\">\
<label for=\"password\">Password</label>\
<input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\">\
<button type=\"submit\" name=\"decision\" value=\"approve\">Sign in</button>\
<button type=\"submit\" name=\"decision\" value=\"deny\">Cancel</button></form>",
        banner = error_banner(error),
        client = escape(client),
        action = escape(action),
        request = escape(request_id),
    );
    let status = if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    page(status, "Sign in", &body)
}

/// An error page (used when the client cannot be redirected to safely).
pub fn error(status: StatusCode, title: &str, message: &str) -> Response {
    page(
        status,
        title,
        &format!("<p class=\"error\">{}</p>", escape(message)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(escape("<script>\"'&"), "&lt;script&gt;&quot;&#39;&amp;");
    }

    #[tokio::test]
    async fn pages_carry_security_headers_and_escape_input() {
        let response = device_sign_in("/device", "\"><script>", Some("<b>bad</b>"));
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            response.headers().get(header::X_FRAME_OPTIONS),
            Some(&HeaderValue::from_static("DENY"))
        );
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .expect("body");
        let body = String::from_utf8(body.to_vec()).expect("utf8");
        assert!(!body.contains("<script>"));
        assert!(!body.contains("<b>bad"));
        assert!(body.contains("&lt;b&gt;bad"));
    }
}
