//! HTTPS: `serve_tls`/`bind_tls` with a rustls configuration, the binary's `tls` settings, and
//! its refusal to serve plain HTTP anywhere but loopback. Real listeners, a real client that
//! trusts only the test CA.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    process::{Command, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use fieldlink_dps_emulator::tls::CertificateAuthority;
use fieldlink_provisioning_api::{
    ApiConfig, ProvisioningApi,
    server::serve_router_tls,
    settings::{TlsSettings, write_new_secrets_key_file},
    storage::{SecretsKey, SecretsKeyring, SqliteStorage},
};

fn client(ca: Option<&str>) -> reqwest::Client {
    let mut builder = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_native_certs(false)
        .timeout(Duration::from_secs(10));
    if let Some(pem) = ca {
        builder =
            builder.add_root_certificate(reqwest::Certificate::from_pem(pem.as_bytes()).unwrap());
    }
    builder.build().unwrap()
}

async fn api(dir: &tempfile::TempDir) -> ProvisioningApi {
    let secrets = SecretsKeyring::new(SecretsKey::generate());
    let storage = SqliteStorage::open_sealed(dir.path().join("api.db"), secrets)
        .await
        .unwrap();
    ProvisioningApi::builder(ApiConfig::default(), Arc::new(storage))
        .build()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_api_serves_https_and_only_https_on_its_port() {
    let dir = tempfile::tempdir().unwrap();
    let ca = CertificateAuthority::generate().unwrap();
    let tls = ca
        .issue_server_certificate(&["127.0.0.1".to_owned()])
        .unwrap()
        .rustls_config()
        .unwrap();
    let running = api(&dir)
        .await
        .bind_tls("127.0.0.1:0".parse().unwrap(), tls)
        .await
        .unwrap();
    assert!(running.is_tls());
    let base = running.base_url();
    assert_eq!(base, format!("https://{}", running.addr()));

    let health = client(Some(&ca.cert_pem()))
        .get(format!("{base}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);

    let untrusted = client(None)
        .get(format!("{base}/healthz"))
        .send()
        .await
        .unwrap_err();
    assert!(untrusted.is_connect(), "{untrusted:?}");
    let stranger = CertificateAuthority::generate().unwrap();
    let wrong_ca = client(Some(&stranger.cert_pem()))
        .get(format!("{base}/healthz"))
        .send()
        .await;
    assert!(wrong_ca.is_err(), "another CA's trust is not enough");

    let plain = reqwest::Client::new()
        .get(format!("http://{}/healthz", running.addr()))
        .timeout(Duration::from_secs(10))
        .send()
        .await;
    assert!(plain.is_err(), "plain HTTP to the TLS port: {plain:?}");

    running.shutdown().await.unwrap();
    assert!(
        client(Some(&ca.cert_pem()))
            .get(format!("{base}/healthz"))
            .send()
            .await
            .is_err(),
        "stopped"
    );
}

#[tokio::test]
async fn plain_bind_still_says_http_and_a_router_can_be_served_alone() {
    let dir = tempfile::tempdir().unwrap();
    let running = api(&dir)
        .await
        .bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    assert!(!running.is_tls());
    assert!(running.base_url().starts_with("http://127.0.0.1:"));
    running.shutdown().await.unwrap();

    let ca = CertificateAuthority::generate().unwrap();
    let tls = ca
        .issue_server_certificate(&["localhost".to_owned()])
        .unwrap()
        .rustls_config()
        .unwrap();
    let router = axum::Router::new().route("/hello", axum::routing::get(|| async { "hi" }));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let alone = serve_router_tls(router, listener, tls).unwrap();
    let url = format!("https://localhost:{}/hello", alone.addr().port());
    let body = client(Some(&ca.cert_pem()))
        .get(&url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(body, "hi");
    // The certificate names localhost, not 127.0.0.1.
    let by_ip = client(Some(&ca.cert_pem()))
        .get(format!("https://{}/hello", alone.addr()))
        .send()
        .await;
    assert!(by_ip.is_err());
    alone.shutdown().await.unwrap();
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn the_binary_serves_tls_from_its_settings_and_refuses_public_plain_http() {
    let dir = tempfile::tempdir().unwrap();
    let ca = CertificateAuthority::generate().unwrap();
    let server = ca
        .issue_server_certificate(&["127.0.0.1".to_owned()])
        .unwrap();
    let cert = dir.path().join("api.crt");
    let key = dir.path().join("api.key");
    std::fs::write(&cert, &server.cert_pem).unwrap();
    std::fs::write(&key, server.key_pem()).unwrap();
    let settings = TlsSettings {
        cert_file: cert.clone(),
        key_file: key.clone(),
    };
    settings.rustls_config().unwrap();

    let binary = env!("CARGO_BIN_EXE_provisioning-api");
    let config = dir.path().join("api.json");
    std::fs::write(
        &config,
        serde_json::json!({
            "listen": "0.0.0.0:0",
            "storage": {"sqlite": {"path": dir.path().join("refused.db")}}
        })
        .to_string(),
    )
    .unwrap();
    let refused = Command::new(binary)
        .args(["--config"])
        .arg(&config)
        .env_remove("FIELDLINK_API_CONFIG")
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("loopback"), "{stderr}");

    let port = free_port();
    let secrets_key = dir.path().join("secrets.key");
    write_new_secrets_key_file(&secrets_key).unwrap();
    std::fs::write(
        &config,
        serde_json::json!({
            "listen": format!("127.0.0.1:{port}"),
            "tls": {"cert_file": cert, "key_file": key},
            "storage": {"sqlite": {"path": dir.path().join("api.db")}},
            "secrets_key_file": secrets_key
        })
        .to_string(),
    )
    .unwrap();
    let mut child = Command::new(binary)
        .args(["--config"])
        .arg(&config)
        .env_remove("FIELDLINK_API_CONFIG")
        .env_remove("FIELDLINK_API_SECRETS_KEY")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let http = client(Some(&ca.cert_pem()));
    let url = format!("https://127.0.0.1:{port}/healthz");
    let started = Instant::now();
    let status = loop {
        if let Ok(response) = http.get(&url).send().await {
            break response.status();
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the server exited before answering"
        );
        assert!(started.elapsed() < Duration::from_secs(30), "no answer");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let plain = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}/healthz"))
        .timeout(Duration::from_secs(10))
        .send()
        .await;
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(status, 200);
    assert!(plain.is_err(), "no plain HTTP on the TLS port");
}
