//! HTTPS with the emulator's own CA: trusted clients register, others are refused.

mod common;

use common::*;
use fieldlink_dps_emulator::{DpsEmulator, EmulatorConfig, TlsOptions};
use serde_json::Value;

#[tokio::test]
async fn https_with_the_emulator_ca_and_plain_http_serve_the_same_instances() {
    let emulator =
        DpsEmulator::start(EmulatorConfig::with_instances(vec![instance("dps-tls")]).with_tls())
            .await
            .unwrap();
    let https = emulator.https_base_url().unwrap();
    assert!(https.starts_with("https://localhost:"), "{https}");
    assert_eq!(emulator.base_url(), https);
    assert_eq!(
        emulator.global_endpoint(),
        https.trim_start_matches("https://")
    );

    let ca = reqwest::Certificate::from_pem(emulator.ca_pem().unwrap().as_bytes()).unwrap();
    let trusting = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(ca)
        .use_rustls_tls()
        .build()
        .unwrap();
    let scope = emulator.control().instance("dps-tls").unwrap().id_scope;
    let token = device_token(&scope, INDIVIDUAL_DEVICE, DEVICE_PRIMARY);
    let register = |client: &reqwest::Client, base: &str| {
        client
            .put(format!(
                "{base}/{scope}/registrations/{INDIVIDUAL_DEVICE}/register?{API}"
            ))
            .header("Authorization", &token)
            .json(&serde_json::json!({ "registrationId": INDIVIDUAL_DEVICE }))
            .send()
    };
    let response = register(&trusting, &https).await.unwrap();
    assert_eq!(response.status(), 202);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "assigning");

    // 127.0.0.1 is in the certificate too.
    let by_ip = https.replace("localhost", "127.0.0.1");
    assert_eq!(register(&trusting, &by_ip).await.unwrap().status(), 202);

    // A client that does not trust the CA cannot connect.
    let stranger = reqwest::Client::builder().use_rustls_tls().build().unwrap();
    assert!(register(&stranger, &https).await.is_err());

    // Plain HTTP on the same state sees the registration.
    let plain = emulator.http_base_url().unwrap();
    let response = register(&reqwest::Client::new(), &plain).await.unwrap();
    assert_eq!(response.status(), 202);
    assert_eq!(
        emulator
            .control()
            .utilisation("dps-tls")
            .unwrap()
            .registrations_last_minute,
        3
    );
    emulator.shutdown().await;
}

#[tokio::test]
async fn a_saved_ca_key_keeps_old_clients_trusting_a_new_run() {
    let first = DpsEmulator::start(EmulatorConfig {
        http_bind: None,
        tls: Some(TlsOptions::default()),
        instances: vec![instance("dps-ca-1")],
    })
    .await
    .unwrap();
    let old_ca = first.ca_pem().unwrap().to_owned();
    let key = first.https().unwrap().ca_key_pem().to_owned();
    first.shutdown().await;

    let second = DpsEmulator::start(EmulatorConfig {
        http_bind: None,
        tls: Some(TlsOptions {
            ca_key_pem: Some(key),
            ..TlsOptions::default()
        }),
        instances: vec![instance("dps-ca-1")],
    })
    .await
    .unwrap();
    let client = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(old_ca.as_bytes()).unwrap())
        .use_rustls_tls()
        .build()
        .unwrap();
    let response = client
        .get(format!("{}/metrics", second.https_base_url().unwrap()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    second.shutdown().await;
}

#[tokio::test]
async fn a_named_ca_shared_with_other_services_is_re_created_under_its_name() {
    use fieldlink_dps_emulator::tls::CertificateAuthority;
    let shared = CertificateAuthority::generate_named("fieldlink sandbox CA").unwrap();
    let trusting = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(shared.cert_pem().as_bytes()).unwrap())
        .use_rustls_tls()
        .build()
        .unwrap();
    let start = |ca_common_name: &str| {
        DpsEmulator::start(EmulatorConfig {
            http_bind: None,
            tls: Some(TlsOptions {
                ca_key_pem: Some(shared.key_pem()),
                ca_common_name: ca_common_name.to_owned(),
                ..TlsOptions::default()
            }),
            instances: vec![instance("dps-ca-named")],
        })
    };
    let named = start("fieldlink sandbox CA").await.unwrap();
    let response = trusting
        .get(format!("{}/metrics", named.https_base_url().unwrap()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    named.shutdown().await;

    // Under the emulator's default name the same key makes a CA the shared certificate does not
    // vouch for.
    let renamed = start(fieldlink_dps_emulator::tls::CA_COMMON_NAME)
        .await
        .unwrap();
    let refused = trusting
        .get(format!("{}/metrics", renamed.https_base_url().unwrap()))
        .send()
        .await;
    assert!(refused.is_err());
    renamed.shutdown().await;
}
