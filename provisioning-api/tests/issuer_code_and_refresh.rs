//! Authorization code + PKCE (RFC 7636, RFC 8252 loopback and custom-scheme redirects), refresh
//! rotation with reuse detection, and revocation (RFC 7009) over real HTTP.

mod issuer_common;

use issuer_common::{
    CLIENT, MOBILE_REDIRECT, PASSWORD, Sandbox, challenge, claims, location, query_param, tokens,
};
use reqwest::StatusCode;

const VERIFIER: &str = "a-verifier-that-is-long-enough-0123456789-abcdefghij";

async fn code_for(sandbox: &Sandbox, redirect: &str) -> String {
    let location = sandbox
        .authorize(redirect, &challenge(VERIFIER), "alice", PASSWORD)
        .await;
    assert!(location.starts_with(redirect), "{location}");
    assert_eq!(query_param(&location, "state").as_deref(), Some("st-123"));
    assert_eq!(
        query_param(&location, "iss").as_deref(),
        Some(sandbox.base.as_str())
    );
    query_param(&location, "code").expect("code")
}

async fn redeem(
    sandbox: &Sandbox,
    code: &str,
    redirect: &str,
    verifier: &str,
) -> (StatusCode, serde_json::Value) {
    sandbox
        .form(
            "/oauth2/token",
            &[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", redirect),
                ("code_verifier", verifier),
                ("client_id", CLIENT),
            ],
        )
        .await
}

#[tokio::test]
async fn loopback_any_port_and_custom_scheme_redirects_work() {
    let sandbox = Sandbox::start().await;
    for redirect in ["http://127.0.0.1:51234/callback", MOBILE_REDIRECT] {
        let code = code_for(&sandbox, redirect).await;
        let (status, body) = redeem(&sandbox, &code, redirect, VERIFIER).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let id = claims(body["id_token"].as_str().expect("id token"));
        assert_eq!(id["nonce"], "n-456");
        assert_eq!(id["sub"], "alice");
        let (status, _) = sandbox
            .api_get(
                "/v1/devices/sensor-0001",
                body["access_token"].as_str().expect("at"),
            )
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "authenticated");
    }
}

#[tokio::test]
async fn a_wrong_verifier_is_rejected_and_burns_the_code() {
    let sandbox = Sandbox::start().await;
    let redirect = "http://127.0.0.1:51234/callback";
    let code = code_for(&sandbox, redirect).await;
    let wrong = "another-verifier-that-is-long-enough-0123456789-xyz";
    let (status, body) = redeem(&sandbox, &code, redirect, wrong).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");
    assert_eq!(body["error_description"], "PKCE verification failed");
    let (status, body) = redeem(&sandbox, &code, redirect, VERIFIER).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    // No verifier at all.
    let code = code_for(&sandbox, redirect).await;
    let (status, body) = sandbox
        .form(
            "/oauth2/token",
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", redirect),
                ("client_id", CLIENT),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_request");
}

#[tokio::test]
async fn unregistered_redirects_are_refused_without_redirecting() {
    let sandbox = Sandbox::start().await;
    for redirect in [
        "http://127.0.0.1:51234/other",
        "http://localhost:51234/callback",
        "https://evil.example/callback",
        "com.evil.app:/oauth2redirect",
    ] {
        let response = sandbox
            .http
            .get(sandbox.url("/oauth2/authorize"))
            .query(&[
                ("response_type", "code"),
                ("client_id", CLIENT),
                ("redirect_uri", redirect),
                ("code_challenge", &challenge(VERIFIER)),
                ("code_challenge_method", "S256"),
            ])
            .send()
            .await
            .expect("authorize");
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{redirect}");
        assert!(response.headers().get("location").is_none(), "{redirect}");
        assert!(
            response
                .text()
                .await
                .expect("html")
                .contains("Unregistered redirect")
        );
    }
}

#[tokio::test]
async fn pkce_is_mandatory_and_plain_is_refused() {
    let sandbox = Sandbox::start().await;
    let redirect = "http://127.0.0.1:51234/callback";
    for (challenge_value, method) in [("", ""), ("abc", "plain")] {
        let response = sandbox
            .http
            .get(sandbox.url("/oauth2/authorize"))
            .query(&[
                ("response_type", "code"),
                ("client_id", CLIENT),
                ("redirect_uri", redirect),
                ("state", "s"),
                ("code_challenge", challenge_value),
                ("code_challenge_method", method),
            ])
            .send()
            .await
            .expect("authorize");
        assert_eq!(response.status(), StatusCode::FOUND);
        let location = location(&response);
        assert_eq!(
            query_param(&location, "error").as_deref(),
            Some("invalid_request")
        );
        assert_eq!(query_param(&location, "state").as_deref(), Some("s"));
    }
}

#[tokio::test]
async fn the_code_must_come_back_to_the_same_redirect() {
    let sandbox = Sandbox::start().await;
    let code = code_for(&sandbox, "http://127.0.0.1:51234/callback").await;
    let (status, body) = redeem(&sandbox, &code, "http://127.0.0.1:51235/callback", VERIFIER).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");
}

#[tokio::test]
async fn refresh_rotates_and_reuse_revokes_the_family() {
    let sandbox = Sandbox::start().await;
    let first = sandbox.sign_in("alice").await;
    let refresh = |token: String| {
        let sandbox = &sandbox;
        async move {
            sandbox
                .form(
                    "/oauth2/token",
                    &[
                        ("grant_type", "refresh_token"),
                        ("refresh_token", &token),
                        ("client_id", CLIENT),
                    ],
                )
                .await
        }
    };
    sandbox.advance(5);
    let (status, body) = refresh(first.refresh_token.clone()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let second = tokens(body);
    assert_ne!(second.refresh_token, first.refresh_token);
    assert_ne!(second.access_token, first.access_token);
    assert_eq!(claims(&second.access_token)["tenant"], "acme");

    // Replaying the rotated-out token: rejected, and the legitimate successor dies too.
    let (status, body) = refresh(first.refresh_token.clone()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");
    assert!(
        body["error_description"]
            .as_str()
            .expect("description")
            .contains("reuse detected")
    );
    let (status, body) = refresh(second.refresh_token.clone()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");
}

#[tokio::test]
async fn revocation_kills_the_refresh_token() {
    let sandbox = Sandbox::start().await;
    let session = sandbox.sign_in("alice").await;
    let (status, _) = sandbox
        .form(
            "/oauth2/revoke",
            &[
                ("token", session.refresh_token.as_str()),
                ("token_type_hint", "refresh_token"),
                ("client_id", CLIENT),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    // Unknown tokens (and JWT access tokens) are accepted silently (RFC 7009 §2.2).
    let (status, _) = sandbox
        .form(
            "/oauth2/revoke",
            &[
                ("token", session.access_token.as_str()),
                ("client_id", CLIENT),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = sandbox
        .form(
            "/oauth2/token",
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", &session.refresh_token),
                ("client_id", CLIENT),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");
}
