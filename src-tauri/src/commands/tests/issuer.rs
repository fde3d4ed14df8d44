//! The real provisioning API with its sandbox issuer on loopback HTTP, and a scripted browser
//! that fills in the issuer's HTML forms with a real HTTP client, as a person would.

use std::{sync::Arc, time::Duration};

use fieldlink_provisioning_api::{
    ApiConfig, ProvisioningApi,
    issuer::{ClientConfig, Issuer, IssuerConfig, UserConfig, hash_password},
    storage::SqliteStorage,
};
use reqwest::{StatusCode, redirect::Policy};

use crate::{
    auth::DEFAULT_CLIENT_ID,
    dto::settings::{Profile, SiteKind},
};

pub const PASSWORD: &str = "correct horse battery staple";

pub struct SandboxIssuer {
    pub base: String,
    pub browser: reqwest::Client,
    server: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl Drop for SandboxIssuer {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// The `value` attribute of the input named `name`.
fn input_value(html: &str, name: &str) -> Option<String> {
    let at = html.find(&format!("name=\"{name}\""))?;
    let start = html[..at].rfind('<')?;
    let end = at + html[at..].find('>')?;
    let value = html[start..end].split("value=\"").nth(1)?;
    Some(value[..value.find('"')?].replace("&amp;", "&"))
}

impl SandboxIssuer {
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let mut config = IssuerConfig::new(&base, "fieldlink-api");
        config.poll_interval_s = 1;
        config.clients = vec![ClientConfig {
            client_id: DEFAULT_CLIENT_ID.to_owned(),
            name: Some("fieldlink desktop".to_owned()),
            redirect_uris: vec!["http://127.0.0.1/callback".to_owned()],
        }];
        config.users = vec![UserConfig {
            username: "alice".to_owned(),
            subject: None,
            password_hash: hash_password(PASSWORD),
            tenant: "acme".to_owned(),
            roles: vec!["installer".to_owned()],
            name: Some("Alice Installer".to_owned()),
            disabled: false,
        }];
        let issuer = Issuer::new(config).unwrap();
        let storage = SqliteStorage::open(dir.path().join("api.db"))
            .await
            .unwrap();
        let api = ProvisioningApi::builder(
            ApiConfig {
                issuers: vec![issuer.trusted_issuer()],
                ..ApiConfig::default()
            },
            Arc::new(storage),
        )
        .build()
        .await
        .unwrap();
        let router = api.router().merge(issuer.router());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        let browser = reqwest::Client::builder()
            .redirect(Policy::none())
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        Self {
            base,
            browser,
            server,
            _dir: dir,
        }
    }

    /// A Settings profile for this issuer and its API.
    pub fn profile(&self, name: &str) -> Profile {
        Profile {
            name: name.to_owned(),
            organisation: "Acme Water".to_owned(),
            site: SiteKind::Bluetooth,
            api_url: Some(self.base.clone()),
            issuer: Some(self.base.clone()),
            client_id: None,
            ca_file: None,
            sandbox_manifest: None,
        }
    }

    /// Approves or denies a device code on the verification page.
    pub async fn decide_device(&self, verification_uri_complete: &str, decision: &str) {
        let page = self
            .browser
            .get(verification_uri_complete)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let user_code = input_value(&page, "user_code").expect("prefilled code");
        let consent = self
            .browser
            .post(format!("{}/device", self.base))
            .form(&[
                ("user_code", user_code.as_str()),
                ("username", "alice"),
                ("password", PASSWORD),
            ])
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let consent = input_value(&consent, "consent").expect("consent form");
        let done = self
            .browser
            .post(format!("{}/device/decision", self.base))
            .form(&[("consent", consent.as_str()), ("decision", decision)])
            .send()
            .await
            .unwrap();
        assert_eq!(done.status(), StatusCode::OK);
    }

    /// Signs in on the authorization page and follows the redirect to the app's loopback
    /// listener, as the system browser would.
    pub async fn browse(&self, authorize_url: &str) {
        let page = self.browser.get(authorize_url).send().await.unwrap();
        assert_eq!(page.status(), StatusCode::OK);
        let page = page.text().await.unwrap();
        let request = input_value(&page, "request").expect("request id");
        let response = self
            .browser
            .post(format!("{}/oauth2/authorize", self.base))
            .form(&[
                ("request", request.as_str()),
                ("username", "alice"),
                ("password", PASSWORD),
                ("decision", "approve"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        let location = response.headers()["location"].to_str().unwrap().to_owned();
        let landed = self.browser.get(location).send().await.unwrap();
        assert_eq!(landed.status(), StatusCode::OK);
    }
}
