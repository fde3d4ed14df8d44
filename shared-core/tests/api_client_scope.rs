//! The API client's answer when the provisioning API reports a device's registration in
//! another DPS scope than the device's ticket names: a typed [`ServiceError::ScopeMismatch`]
//! (a contradiction the workflow and the queued-confirmation sync settle as
//! `confirmation_mismatch`), not a generic error.
//!
//! The server is a real axum router on loopback HTTP answering `GET
//! /v1/devices/{id}/registration` the way the provisioning API does for a device whose record
//! moved to another DPS instance (the real API cannot be made to report a scope other than
//! its own assignment's).

use std::sync::Arc;

use axum::{Json, Router, extract::Path, routing::get};
use fieldlink_core::{
    api_client::{ApiClientConfig, ProvisioningApiClient, StaticAccessToken},
    assignment::{
        AssignmentSource, DpsScope, DpsTarget, LocalAssignmentSigner, RegistrationStatusSource,
        ServiceError,
    },
};
use fieldlink_protocol::ticket::TicketSigner;
use serde_json::{Value, json};

async fn registration(Path(registration_id): Path<String>) -> Json<Value> {
    Json(json!({
        "registration_id": registration_id,
        "dps_instance": "dps-9",
        "id_scope": "0ne00OTHER",
        "registered": true,
        "status": "assigned",
        "substatus": "initialAssignment",
        "assigned_hub": "hub-1.example",
        "device_id": registration_id,
        "cached": false,
    }))
}

#[tokio::test]
async fn an_answer_about_another_id_scope_is_a_typed_scope_mismatch() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let router = Router::new().route("/v1/devices/{id}/registration", get(registration));
    let server = tokio::spawn(async move {
        axum::serve(listener, router).await.expect("serve");
    });

    let signer = LocalAssignmentSigner::new(
        TicketSigner::new("k1", ed25519_dalek::SigningKey::from_bytes(&[5; 32])),
        DpsTarget {
            id_scope: "0ne00SCOPE".into(),
            global_endpoint: "127.0.0.1:1".into(),
            tenant: "acme".into(),
            dps_instance: "dps-1".into(),
        },
    );
    let assignment = signer.assignment("sensor-1".into()).await.expect("ticket");
    let config = ApiClientConfig::new(format!("http://{addr}")).allowing_insecure_loopback();
    let client = ProvisioningApiClient::new(config, Arc::new(StaticAccessToken::new("token")))
        .expect("client");

    let error = client
        .registration_status("sensor-1".into(), assignment)
        .await
        .expect_err("another scope is refused");
    let ServiceError::ScopeMismatch {
        expected,
        reported,
        view,
    } = &error
    else {
        panic!("{error:?}")
    };
    assert_eq!(
        (expected, reported),
        (
            &DpsScope {
                id_scope: "0ne00SCOPE".into(),
                dps_instance: "dps-1".into()
            },
            &DpsScope {
                id_scope: "0ne00OTHER".into(),
                dps_instance: "dps-9".into()
            }
        )
    );
    assert_eq!(view.assigned_hub.as_deref(), Some("hub-1.example"));
    assert_eq!(error.retry_hint(), None, "a contradiction is not retried");
    let public = error.to_commission_error();
    assert_eq!(public.code(), "confirmation_mismatch");
    let message = public.to_string();
    assert!(
        message.contains("id_scope 0ne00SCOPE (dps-1)")
            && message.contains("id_scope 0ne00OTHER (dps-9)"),
        "{message}"
    );
    server.abort();
}
