//! Device allowlists over HTTP, on SQLite and PostgreSQL.

mod support;

use reqwest::StatusCode;
use serde_json::json;
use support::{Reply, TestApi};

async fn import_raw(api: &TestApi, tenant: &str, content_type: &str, body: &str) -> Reply {
    let response = api
        .http
        .post(format!("{}/v1/allowlist", api.base))
        .bearer_auth(api.admin(tenant))
        .header("content-type", content_type)
        .body(body.to_owned())
        .send()
        .await
        .expect("request");
    Reply::from(response).await
}

/// Only listed devices are assigned; an unlisted one gets a clear typed refusal.
async fn unlisted_devices_are_refused(api: &TestApi) {
    api.add_instances(1, "weu", 1_000, 1_000).await;
    let refused = api.assign("acme", "never-listed-1").await;
    refused.assert_error(StatusCode::FORBIDDEN, "device_not_allowlisted");
    assert_eq!(refused.body["retryable"], false);
    assert!(
        refused.body["message"]
            .as_str()
            .expect("message")
            .contains("allowlist")
    );
    assert_eq!(api.registrations().await[0].1, 0);
    api.allowlist("acme", &["never-listed-1".to_owned()]).await;
    assert_eq!(
        api.assign("acme", "never-listed-1").await.status,
        StatusCode::OK
    );
    // Removing it from the list stops new tickets; the assignment itself stays.
    let removed = api
        .delete("/v1/allowlist/never-listed-1", Some(&api.admin("acme")))
        .await;
    assert_eq!(removed.status, StatusCode::NO_CONTENT);
    api.assign("acme", "never-listed-1")
        .await
        .assert_error(StatusCode::FORBIDDEN, "device_not_allowlisted");
    let device = api
        .get("/v1/devices/never-listed-1", Some(&api.installer("acme")))
        .await;
    assert_eq!(device.body["allowlisted"], false);
    assert_eq!(device.body["status"], "assigned");
    api.delete("/v1/allowlist/never-listed-1", Some(&api.admin("acme")))
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_allowlisted");
}

/// CSV and JSON imports, duplicates, pagination, and all-or-nothing validation.
async fn csv_and_json_imports(api: &TestApi) {
    let csv = "registration_id,label\n# partner batch 12\ncsv-001,line A\ncsv-002,\"line B, bay 2\"\ncsv-003\n";
    let report = import_raw(api, "acme", "text/csv", csv).await;
    assert_eq!(report.status, StatusCode::OK, "{:?}", report.body);
    assert_eq!(report.body["received"], 3);
    assert_eq!(report.body["added"], 3);
    let json_body = json!({"devices": [{"registration_id": "csv-003"}, "json-001", {"registration_id": "json-002", "label": "x"}]});
    let report = import_raw(api, "acme", "application/json", &json_body.to_string()).await;
    assert_eq!(report.body["added"], 2);
    assert_eq!(report.body["already_listed"], 1);
    let bad = import_raw(api, "acme", "text/csv", "ok-1\nNOT_OK\nok-2.\n").await;
    bad.assert_error(StatusCode::BAD_REQUEST, "invalid_allowlist");
    assert_eq!(bad.body["details"]["invalid_rows"], 2);
    assert_eq!(bad.body["details"]["rows"][0]["row"], 2);
    assert_eq!(bad.body["details"]["rows"][1]["reason"], "bad_last_char");
    let page = api
        .get("/v1/allowlist?limit=2", Some(&api.admin("acme")))
        .await;
    assert_eq!(page.body["entries"][0]["registration_id"], "csv-001");
    assert_eq!(page.body["entries"][0]["label"], "line A");
    assert_eq!(page.body["next_after"], "csv-002");
    let rest = api
        .get(
            "/v1/allowlist?limit=10&after=csv-002",
            Some(&api.admin("acme")),
        )
        .await;
    let ids: Vec<&str> = rest.body["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| e["registration_id"].as_str().expect("id"))
        .collect();
    assert_eq!(ids, ["csv-003", "json-001", "json-002"]);
    assert_eq!(rest.body["next_after"], json!(null));
    import_raw(api, "acme", "application/xml", "<x/>")
        .await
        .assert_error(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type");
    import_raw(api, "acme", "application/json", "{\"nope\": 1}")
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_allowlist");
    api.get("/v1/allowlist?limit=many", Some(&api.admin("acme")))
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_request");
}

/// A large list imports in one request.
async fn large_import(api: &TestApi) {
    let ids: Vec<String> = support::device_ids("bulk", 20_000);
    let csv = ids.join("\n");
    let report = import_raw(api, "acme", "text/csv", &csv).await;
    assert_eq!(report.status, StatusCode::OK, "{:?}", report.body);
    assert_eq!(report.body["added"], 20_000);
    let again = import_raw(api, "acme", "text/csv", &csv).await;
    assert_eq!(again.body["already_listed"], 20_000);
    let other = import_raw(api, "globex", "text/csv", &ids[..150].join("\n")).await;
    assert_eq!(other.body["owned_by_other_tenant"], 150);
    assert_eq!(
        other.body["owned_by_other_tenant_ids"]
            .as_array()
            .expect("ids")
            .len(),
        100
    );
}

on_both_backends!(
    unlisted_devices_are_refused,
    csv_and_json_imports,
    large_import
);
