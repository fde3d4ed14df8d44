//! Harness of the core's sign-in tests: the real provisioning API and its sandbox issuer on one
//! loopback listener — over HTTPS with an rcgen CA (the profile trusts it through `ca_file`) or
//! plain HTTP (`allow_insecure_loopback`) — plus a scripted "browser" that fills in the
//! issuer's HTML forms with a real HTTP client.
#![allow(dead_code)]

use std::{sync::Arc, time::Duration};

use fieldlink_core::auth::Profile;
use fieldlink_dps_emulator::tls::CertificateAuthority;
use fieldlink_provisioning_api::{
    ApiConfig, ProvisioningApi,
    clock::{Clock, SystemClock},
    issuer::{ClientConfig, Issuer, IssuerConfig, UserConfig, hash_password},
    storage::SqliteStorage,
};
use reqwest::{StatusCode, redirect::Policy};

pub const AUDIENCE: &str = "fieldlink-api";
pub const CLIENT: &str = "fieldlink-cli";
pub const MOBILE_REDIRECT: &str = "com.example.fieldlink:/oauth2redirect";
pub const PASSWORD: &str = "correct horse battery staple";

pub struct Sandbox {
    pub base: String,
    pub issuer: Issuer,
    pub browser: reqwest::Client,
    pub ca_file: Option<std::path::PathBuf>,
    server: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn user(username: &str, tenant: &str, role: &str, hash: &str) -> UserConfig {
    UserConfig {
        username: username.to_owned(),
        subject: None,
        password_hash: hash.to_owned(),
        tenant: tenant.to_owned(),
        roles: vec![role.to_owned()],
        name: Some(format!("{username} example")),
        disabled: false,
    }
}

impl Sandbox {
    /// Over HTTPS (`tls`) or plain loopback HTTP; `tweak` edits the issuer configuration.
    pub async fn start(tls: bool, tweak: impl FnOnce(&mut IssuerConfig)) -> Self {
        Self::start_with_clock(tls, Arc::new(SystemClock), tweak).await
    }

    /// [`Sandbox::start`] with the issuer on `clock` (device-code polling tests move it).
    pub async fn start_with_clock(
        tls: bool,
        clock: Arc<dyn Clock>,
        tweak: impl FnOnce(&mut IssuerConfig),
    ) -> Self {
        let dir = tempfile::tempdir().expect("tmp");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("addr");
        let scheme = if tls { "https" } else { "http" };
        let base = format!("{scheme}://{addr}");

        let hash = hash_password(PASSWORD);
        let mut config = IssuerConfig::new(&base, AUDIENCE);
        config.poll_interval_s = 1;
        config.clients = vec![ClientConfig {
            client_id: CLIENT.to_owned(),
            name: Some("fieldlink".to_owned()),
            redirect_uris: vec![
                "http://127.0.0.1/callback".to_owned(),
                MOBILE_REDIRECT.to_owned(),
            ],
        }];
        config.users = vec![
            user("alice", "acme", "installer", &hash),
            user("bob", "globex", "installer", &hash),
        ];
        tweak(&mut config);
        let issuer = Issuer::with_clock(config, clock).expect("issuer");
        let storage = SqliteStorage::open(dir.path().join("api.db"))
            .await
            .expect("sqlite");
        let api = ProvisioningApi::builder(
            ApiConfig {
                issuers: vec![issuer.trusted_issuer()],
                ..ApiConfig::default()
            },
            Arc::new(storage),
        )
        .build()
        .await
        .expect("api");
        let router = api.router().merge(issuer.router());

        let mut browser = reqwest::Client::builder()
            .redirect(Policy::none())
            .timeout(Duration::from_secs(30));
        let (server, ca_file) = if tls {
            let ca = CertificateAuthority::generate().expect("ca");
            let cert = ca
                .issue_server_certificate(&["127.0.0.1".to_owned()])
                .expect("cert");
            let ca_file = dir.path().join("sandbox-ca.pem");
            std::fs::write(&ca_file, ca.cert_pem()).expect("ca file");
            browser = browser.add_root_certificate(
                reqwest::Certificate::from_pem(ca.cert_pem().as_bytes()).expect("pem"),
            );
            let config = axum_server::tls_rustls::RustlsConfig::from_config(
                cert.rustls_config().expect("rustls"),
            );
            let server = tokio::spawn(async move {
                let _ = axum_server::from_tcp_rustls(listener, config)
                    .serve(router.into_make_service())
                    .await;
            });
            (server, Some(ca_file))
        } else {
            let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
            let server = tokio::spawn(async move {
                let _ = axum::serve(listener, router).await;
            });
            (server, None)
        };
        Self {
            base,
            issuer,
            browser: browser.build().expect("browser"),
            ca_file,
            server,
            _dir: dir,
        }
    }

    /// A profile for this sandbox.
    pub fn profile(&self, name: &str) -> Profile {
        let mut profile = Profile::new(name, &self.base, &self.base, CLIENT);
        profile.ca_file = self.ca_file.clone();
        profile.allow_insecure_loopback = self.ca_file.is_none();
        profile
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Approves (or denies) a device code on the verification page, as a person would.
    pub async fn approve_device(
        &self,
        verification_uri_complete: &str,
        username: &str,
        decision: &str,
    ) {
        let page = self
            .browser
            .get(verification_uri_complete)
            .send()
            .await
            .expect("page")
            .text()
            .await
            .expect("html");
        let user_code = input_value(&page, "user_code").expect("prefilled code");
        let consent = self
            .browser
            .post(self.url("/device"))
            .form(&[
                ("user_code", user_code.as_str()),
                ("username", username),
                ("password", PASSWORD),
            ])
            .send()
            .await
            .expect("sign in")
            .text()
            .await
            .expect("html");
        let consent = input_value(&consent, "consent").expect("consent form");
        let done = self
            .browser
            .post(self.url("/device/decision"))
            .form(&[("consent", consent.as_str()), ("decision", decision)])
            .send()
            .await
            .expect("decision");
        assert_eq!(done.status(), StatusCode::OK);
    }

    /// Opens an authorization URL, signs in, and returns where the issuer redirects to.
    pub async fn browse_authorization(&self, authorize_url: &str, username: &str) -> String {
        let page = self
            .browser
            .get(authorize_url)
            .send()
            .await
            .expect("authorize");
        assert_eq!(page.status(), StatusCode::OK);
        let page = page.text().await.expect("html");
        let request = input_value(&page, "request").expect("request id");
        let response = self
            .browser
            .post(self.url("/oauth2/authorize"))
            .form(&[
                ("request", request.as_str()),
                ("username", username),
                ("password", PASSWORD),
                ("decision", "approve"),
            ])
            .send()
            .await
            .expect("sign in");
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        response
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .expect("location")
            .to_owned()
    }

    /// `GET path` on the API with a bearer token.
    pub async fn api_get(&self, path: &str, token: &str) -> StatusCode {
        self.browser
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("api")
            .status()
    }

    /// A raw refresh-token grant (to replay old refresh tokens).
    pub async fn raw_refresh(&self, refresh_token: &str) -> (StatusCode, serde_json::Value) {
        let response = self
            .browser
            .post(self.url("/oauth2/token"))
            .form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token),
                ("client_id", CLIENT),
            ])
            .send()
            .await
            .expect("token");
        let status = response.status();
        (status, response.json().await.unwrap_or_default())
    }
}

/// The `value` attribute of the input named `name`.
pub fn input_value(html: &str, name: &str) -> Option<String> {
    let at = html.find(&format!("name=\"{name}\""))?;
    let start = html[..at].rfind('<')?;
    let end = at + html[at..].find('>')?;
    let value = html[start..end].split("value=\"").nth(1)?;
    Some(value[..value.find('"')?].replace("&amp;", "&"))
}
