//! Harness of the issuer tests: the provisioning API and the sandbox issuer on one loopback
//! listener (the API trusting the issuer's live key set), a real HTTP client that fills in the
//! issuer's HTML forms, and helpers for each grant.
#![allow(dead_code)]

use std::{sync::Arc, time::Duration};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use fieldlink_provisioning_api::{
    ApiConfig, ProvisioningApi,
    auth::TrustedIssuer,
    clock::{Clock, ManualClock, SystemClock},
    issuer::{ClientConfig, Issuer, IssuerConfig, UserConfig, hash_password},
    storage::SqliteStorage,
};
use reqwest::{StatusCode, redirect::Policy};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::{net::TcpListener, task::JoinHandle};

pub const AUDIENCE: &str = "fieldlink-api";
pub const CLIENT: &str = "fieldlink-cli";
pub const MOBILE_REDIRECT: &str = "com.example.fieldlink:/oauth2redirect";
pub const PASSWORD: &str = "correct horse battery staple";
pub const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

fn user(username: &str, tenant: &str, roles: &[&str], hash: &str) -> UserConfig {
    UserConfig {
        username: username.to_owned(),
        subject: None,
        password_hash: hash.to_owned(),
        tenant: tenant.to_owned(),
        roles: roles.iter().map(|r| (*r).to_owned()).collect(),
        name: Some(format!("{username} (test)")),
        disabled: false,
    }
}

/// The issuer configuration every test starts from (issuer URL filled in later).
pub fn base_config(issuer: &str) -> IssuerConfig {
    let hash = hash_password(PASSWORD);
    let mut config = IssuerConfig::new(issuer, AUDIENCE);
    config.poll_interval_s = 1;
    config.device_code_ttl_s = 120;
    config.clients = vec![ClientConfig {
        client_id: CLIENT.to_owned(),
        name: Some("fieldlink CLI".to_owned()),
        redirect_uris: vec![
            "http://127.0.0.1/callback".to_owned(),
            MOBILE_REDIRECT.to_owned(),
        ],
    }];
    config.users = vec![
        user("alice", "acme", &["installer"], &hash),
        user("arthur", "acme", &["admin"], &hash),
        user("bob", "globex", &["installer"], &hash),
        user("gina", "globex", &["admin"], &hash),
    ];
    config
}

/// The API and the issuer on loopback.
pub struct Sandbox {
    pub base: String,
    pub issuer: Issuer,
    pub clock: ManualClock,
    pub http: reqwest::Client,
    server: JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.server.abort();
    }
}

pub struct Tokens {
    pub access_token: String,
    pub refresh_token: String,
    pub id_token: Option<String>,
    pub body: Value,
}

impl Sandbox {
    pub async fn start() -> Self {
        Self::start_with(|_| {}, |_| {}).await
    }

    /// `tweak` edits the issuer configuration; `trust` edits the API's trust entry.
    pub async fn start_with(
        tweak: impl FnOnce(&mut IssuerConfig),
        trust: impl FnOnce(&mut TrustedIssuer),
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let mut config = base_config(&base);
        tweak(&mut config);
        let clock = ManualClock::new(SystemClock.now_ms());
        let issuer = Issuer::with_clock(config, Arc::new(clock.clone())).expect("issuer");
        let mut trusted = issuer.trusted_issuer();
        trust(&mut trusted);
        let dir = tempfile::tempdir().expect("tmp");
        let storage = SqliteStorage::open(dir.path().join("api.db"))
            .await
            .expect("sqlite");
        let api_config = ApiConfig {
            issuers: vec![trusted],
            operator_tenant: "operator".to_owned(),
            ..ApiConfig::default()
        };
        let api = ProvisioningApi::builder(api_config, Arc::new(storage))
            .build()
            .await
            .expect("api");
        let router = api.router().merge(issuer.router());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Self {
            base,
            issuer,
            clock,
            http: reqwest::Client::builder()
                .redirect(Policy::none())
                .timeout(Duration::from_secs(30))
                .build()
                .expect("client"),
            server,
            _dir: dir,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Moves the issuer's clock (the API keeps the system clock).
    pub fn advance(&self, seconds: i64) {
        self.clock.advance_ms(seconds * 1000);
    }

    pub async fn discovery(&self) -> Value {
        self.http
            .get(self.url("/.well-known/openid-configuration"))
            .send()
            .await
            .expect("discovery")
            .json()
            .await
            .expect("json")
    }

    /// POSTs a form; returns status and JSON body.
    pub async fn form(&self, path: &str, params: &[(&str, &str)]) -> (StatusCode, Value) {
        let response = self
            .http
            .post(self.url(path))
            .form(params)
            .send()
            .await
            .expect("post");
        let status = response.status();
        let text = response.text().await.expect("body");
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub async fn start_device(&self, scope: &str) -> Value {
        let (status, body) = self
            .form(
                "/oauth2/device_authorization",
                &[("client_id", CLIENT), ("scope", scope)],
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    pub async fn poll(&self, device_code: &str) -> (StatusCode, Value) {
        self.form(
            "/oauth2/token",
            &[
                ("grant_type", DEVICE_GRANT),
                ("device_code", device_code),
                ("client_id", CLIENT),
            ],
        )
        .await
    }

    /// Opens `verification_uri_complete`, signs in and approves or denies, as a browser
    /// would; returns the final page.
    pub async fn verify_on_page(
        &self,
        verification_uri_complete: &str,
        username: &str,
        password: &str,
        decision: &str,
    ) -> (StatusCode, String) {
        let page = self
            .http
            .get(verification_uri_complete)
            .send()
            .await
            .expect("verification page")
            .text()
            .await
            .expect("html");
        let user_code = hidden_value(&page, "user_code").expect("the page prefills the code");
        let consent_page = self
            .http
            .post(self.url("/device"))
            .form(&[
                ("user_code", user_code.as_str()),
                ("username", username),
                ("password", password),
            ])
            .send()
            .await
            .expect("sign in");
        let status = consent_page.status();
        let consent_page = consent_page.text().await.expect("html");
        let Some(consent) = hidden_value(&consent_page, "consent") else {
            return (status, consent_page);
        };
        let done = self
            .http
            .post(self.url("/device/decision"))
            .form(&[("consent", consent.as_str()), ("decision", decision)])
            .send()
            .await
            .expect("decision");
        (done.status(), done.text().await.expect("html"))
    }

    /// Authorization code + PKCE through the sign-in page; returns the redirect `Location`.
    pub async fn authorize(
        &self,
        redirect_uri: &str,
        challenge: &str,
        username: &str,
        password: &str,
    ) -> String {
        let page = self
            .http
            .get(self.url("/oauth2/authorize"))
            .query(&[
                ("response_type", "code"),
                ("client_id", CLIENT),
                ("redirect_uri", redirect_uri),
                ("scope", "openid profile offline_access"),
                ("state", "st-123"),
                ("nonce", "n-456"),
                ("code_challenge", challenge),
                ("code_challenge_method", "S256"),
            ])
            .send()
            .await
            .expect("authorize");
        assert_eq!(page.status(), StatusCode::OK);
        let page = page.text().await.expect("html");
        let request = hidden_value(&page, "request").expect("request id");
        let response = self
            .http
            .post(self.url("/oauth2/authorize"))
            .form(&[
                ("request", request.as_str()),
                ("username", username),
                ("password", password),
                ("decision", "approve"),
            ])
            .send()
            .await
            .expect("sign in");
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        location(&response)
    }

    /// Signs `username` in through authorization code + PKCE; returns the tokens.
    pub async fn sign_in(&self, username: &str) -> Tokens {
        let verifier = "v".repeat(20) + &"w".repeat(30);
        let redirect = "http://127.0.0.1:40123/callback";
        let location = self
            .authorize(redirect, &challenge(&verifier), username, PASSWORD)
            .await;
        let code = query_param(&location, "code").expect("code");
        let (status, body) = self
            .form(
                "/oauth2/token",
                &[
                    ("grant_type", "authorization_code"),
                    ("code", &code),
                    ("redirect_uri", redirect),
                    ("code_verifier", &verifier),
                    ("client_id", CLIENT),
                ],
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        tokens(body)
    }

    /// `GET path` on the API with `token`.
    pub async fn api_get(&self, path: &str, token: &str) -> (StatusCode, Value) {
        let response = self
            .http
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("api");
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// `POST path` on the API with `token` and a JSON body.
    pub async fn api_post(&self, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
        let response = self
            .http
            .post(self.url(path))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .expect("api");
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }
}

pub fn tokens(body: Value) -> Tokens {
    Tokens {
        access_token: body["access_token"].as_str().expect("access").to_owned(),
        refresh_token: body["refresh_token"].as_str().expect("refresh").to_owned(),
        id_token: body["id_token"].as_str().map(str::to_owned),
        body,
    }
}

pub fn challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

pub fn location(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .expect("Location")
        .to_owned()
}

pub fn query_param(url: &str, name: &str) -> Option<String> {
    url::Url::parse(url)
        .ok()?
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// The `value` of the input named `name` in `html`.
pub fn hidden_value(html: &str, name: &str) -> Option<String> {
    let at = html.find(&format!("name=\"{name}\""))?;
    let tag_start = html[..at].rfind('<')?;
    let tag_end = at + html[at..].find('>')?;
    let tag = &html[tag_start..tag_end];
    let value = tag.split("value=\"").nth(1)?;
    Some(value[..value.find('"')?].replace("&amp;", "&"))
}

/// The payload of a JWT (unverified; for assertions).
pub fn claims(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).expect("payload");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("b64")).expect("json")
}
