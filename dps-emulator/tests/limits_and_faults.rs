//! Limits (429 + Retry-After) and fault knobs (injected 5xx, latency), over real HTTP.
#![allow(clippy::unwrap_used)] // helpers shared by the tests below

mod common;

use common::*;
use fieldlink_dps_emulator::{Knobs, Limits};
use serde_json::Value;
use std::time::{Duration, Instant};

fn retry_after(response: &reqwest::Response) -> u64 {
    response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn registration_rate_limit_answers_429_with_retry_after() {
    let mut config = instance("dps-rate");
    config.limits.registrations_per_minute = Some(3);
    let sandbox = Sandbox::start(vec![config]).await;
    let scope = sandbox.scope("dps-rate");
    for i in 0..3 {
        let device = format!("burst-{i}");
        let token = device_token(&scope, &device, &group_device_key(&device));
        assert_eq!(
            sandbox.register(&scope, &device, &token).await.status(),
            202
        );
    }
    let device = "burst-3";
    let token = device_token(&scope, device, &group_device_key(device));
    let response = sandbox.register(&scope, device, &token).await;
    let wait = retry_after(&response);
    assert!((1..=60).contains(&wait), "{wait}");
    let body = assert_dps_error(response, 429, 429_001).await;
    insta::assert_json_snapshot!("error_registration_rate", redact(body));

    // Throttled requests are not counted as registrations, and the limit is per instance.
    let utilisation = sandbox.emulator.control().utilisation("dps-rate").unwrap();
    assert_eq!(utilisation.registrations_last_minute, 3);
    assert_eq!(utilisation.registrations, 3);
    let metrics = sandbox.emulator.control().metrics_text();
    assert!(metrics.contains(
        "dps_emulator_throttled_total{instance=\"dps-rate\",limit=\"registrations_per_minute\"} 1"
    ));

    // Raising the limit at run time lets the device in.
    sandbox
        .emulator
        .control()
        .set_limits(
            "dps-rate",
            Limits {
                registrations_per_minute: Some(4),
                ..Limits::default()
            },
        )
        .unwrap();
    assert_eq!(sandbox.register(&scope, device, &token).await.status(), 202);
}

#[tokio::test]
async fn poll_limit_answers_429_with_retry_after() {
    let mut config = instance("dps-polls");
    config.knobs.assignment_delay_ms = 60_000;
    let sandbox = Sandbox::start(vec![config]).await;
    let scope = sandbox.scope("dps-polls");
    let token = device_token(&scope, INDIVIDUAL_DEVICE, DEVICE_PRIMARY);
    let operation_id = sandbox
        .start_registration(&scope, INDIVIDUAL_DEVICE, &token)
        .await;
    for _ in 0..5 {
        assert_eq!(
            sandbox
                .poll(&scope, INDIVIDUAL_DEVICE, &operation_id, &token)
                .await
                .status(),
            202
        );
    }
    let response = sandbox
        .poll(&scope, INDIVIDUAL_DEVICE, &operation_id, &token)
        .await;
    let wait = retry_after(&response);
    assert!((1..=10).contains(&wait), "{wait}");
    let body = assert_dps_error(response, 429, 429_002).await;
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("5 polls per 10 s"),
        "{body}"
    );

    // The limit is per device: another device still polls.
    let other = "poller-2";
    let other_token = device_token(&scope, other, &group_device_key(other));
    let other_op: Value = sandbox
        .register(&scope, other, &other_token)
        .await
        .json()
        .await
        .unwrap();
    let response = sandbox
        .poll(
            &scope,
            other,
            other_op["operationId"].as_str().unwrap(),
            &other_token,
        )
        .await;
    assert_eq!(response.status(), 202);
}

#[tokio::test]
async fn capacity_cap_refuses_new_devices_but_not_known_ones() {
    let mut config = instance("dps-full");
    config.limits.max_registrations = Some(2);
    let sandbox = Sandbox::start(vec![config]).await;
    let scope = sandbox.scope("dps-full");
    for device in ["cap-1", "cap-2"] {
        sandbox
            .register_and_poll(&scope, device, &group_device_key(device))
            .await;
    }
    let token = device_token(&scope, "cap-3", &group_device_key("cap-3"));
    let response = sandbox.register(&scope, "cap-3", &token).await;
    assert!(retry_after(&response) >= 1);
    assert_dps_error(response, 429, 429_003).await;
    // A device that already has a registration may register again.
    let body = sandbox
        .register_and_poll(&scope, "cap-1", &group_device_key("cap-1"))
        .await;
    assert_eq!(body["status"], "assigned");
    let utilisation = sandbox.emulator.control().utilisation("dps-full").unwrap();
    assert_eq!(
        (utilisation.registrations, utilisation.max_registrations),
        (2, Some(2))
    );
}

async fn outcome_pattern(sandbox: &Sandbox, scope: &str, requests: usize) -> Vec<u16> {
    let token = device_token(scope, INDIVIDUAL_DEVICE, DEVICE_PRIMARY);
    let mut statuses = Vec::new();
    for _ in 0..requests {
        statuses.push(
            sandbox
                .register(scope, INDIVIDUAL_DEVICE, &token)
                .await
                .status()
                .as_u16(),
        );
    }
    statuses
}

#[tokio::test]
async fn injected_5xx_follow_the_rate_and_are_deterministic_when_seeded() {
    let knobs = Knobs {
        device_error_rate: 0.3,
        error_status: 503,
        retry_after_secs: 1,
        seed: Some(42),
        ..Knobs::default()
    };
    let mut first = instance("dps-faults-1");
    first.knobs = knobs.clone();
    first.limits = Limits::unlimited();
    let mut second = instance("dps-faults-2");
    second.knobs = knobs;
    second.limits = Limits::unlimited();
    let sandbox = Sandbox::start(vec![first, second]).await;
    let a = outcome_pattern(&sandbox, &sandbox.scope("dps-faults-1"), 200).await;
    let b = outcome_pattern(&sandbox, &sandbox.scope("dps-faults-2"), 200).await;
    assert_eq!(a, b, "same seed, same sequence");
    let failures = a.iter().filter(|s| **s == 503).count();
    assert!(
        (35..=85).contains(&failures),
        "{failures} of 200 at rate 0.3"
    );
    assert!(a.iter().all(|s| *s == 503 || *s == 202));

    let scope = sandbox.scope("dps-faults-1");
    let token = device_token(&scope, INDIVIDUAL_DEVICE, DEVICE_PRIMARY);
    let failed = loop {
        let response = sandbox.register(&scope, INDIVIDUAL_DEVICE, &token).await;
        if response.status() == 503 {
            break response;
        }
    };
    assert_eq!(retry_after(&failed), 1);
    assert_dps_error(failed, 503, 503_000).await;

    // A 500 knob answers 500 without Retry-After; the service API has its own rate.
    let control = sandbox.emulator.control();
    let knobs = Knobs {
        device_error_rate: 1.0,
        error_status: 500,
        ..Knobs::default()
    };
    control.set_knobs("dps-faults-2", knobs).unwrap();
    let scope2 = sandbox.scope("dps-faults-2");
    let response = sandbox
        .register(
            &scope2,
            INDIVIDUAL_DEVICE,
            &device_token(&scope2, INDIVIDUAL_DEVICE, DEVICE_PRIMARY),
        )
        .await;
    assert!(response.headers().get("retry-after").is_none());
    assert_dps_error(response, 500, 500_000).await;
    let service = sandbox
        .client
        .get(format!(
            "{}/dps/dps-faults-2/registrations/{INDIVIDUAL_DEVICE}?{API}",
            sandbox.base
        ))
        .header("Authorization", sandbox.service_token("dps-faults-2"))
        .send()
        .await
        .unwrap();
    assert_eq!(service.status(), 200);
    let metrics = control.metrics_text();
    assert!(
        metrics.contains(
            "dps_emulator_injected_faults_total{instance=\"dps-faults-2\",kind=\"error\"}"
        )
    );
    assert!(
        control
            .set_knobs(
                "dps-faults-2",
                Knobs {
                    device_error_rate: 1.5,
                    ..Knobs::default()
                }
            )
            .is_err()
    );
}

#[tokio::test]
async fn injected_latency_delays_answers() {
    let mut config = instance("dps-latency");
    config.knobs.latency_ms = 300;
    let sandbox = Sandbox::start(vec![config]).await;
    let scope = sandbox.scope("dps-latency");
    let token = device_token(&scope, INDIVIDUAL_DEVICE, DEVICE_PRIMARY);
    let started = Instant::now();
    assert_eq!(
        sandbox
            .register(&scope, INDIVIDUAL_DEVICE, &token)
            .await
            .status(),
        202
    );
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "{:?}",
        started.elapsed()
    );
}
