//! `fieldlink demo`: the whole system in one process.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use fieldlink_core::{journal::Installer, transport::memory::LinkModel};
use fieldlink_device_agent::network::{NetworkFault, SimulatedNetwork};
use fieldlink_protocol::{message::NetworkConfig, secret::Secret};
use serde_json::json;

use super::Context;
use crate::{
    args::DemoArgs,
    exit::{CliError, Exit},
    payloads::request_for_payload,
    progress::ProgressBoard,
    results::{self, Counts, DeviceResult, DeviceStatus},
    runner::{CorrectionSupplier, Engine, Job},
    stack::{LocalStack, StackConfig},
};

const SITE_SSID: &str = "fieldlink-site";
const SITE_PASSPHRASE: &str = "correct-horse-battery";
const GUEST_SSID: &str = "fieldlink-guest";
const ANNEX_SSID: &str = "fieldlink-annex";

/// The demo site: one good network, a guest network behind a captive portal, and an annex
/// network out of range.
fn site_networks() -> Vec<SimulatedNetwork> {
    vec![
        SimulatedNetwork::wpa2(SITE_SSID, SITE_PASSPHRASE),
        SimulatedNetwork::wpa2(GUEST_SSID, "guest-pass").with_fault(NetworkFault::CaptivePortal),
        SimulatedNetwork::wpa2(ANNEX_SSID, "annex-pass").with_fault(NetworkFault::OutOfRange),
    ]
}

fn wifi(ssid: &str, passphrase: &str) -> NetworkConfig {
    NetworkConfig::Wifi {
        ssid: ssid.to_owned(),
        passphrase: Secret::new(passphrase),
        hidden: false,
        bssid: None,
    }
}

/// The first settings device `index` gets: the first three get a wrong passphrase, an
/// out-of-range SSID and the captive portal; every correction is the good site network.
fn first_network(index: usize) -> NetworkConfig {
    match index {
        0 => wifi(SITE_SSID, "wrong-passphrase"),
        1 => wifi(ANNEX_SSID, "annex-pass"),
        2 => wifi(GUEST_SSID, "guest-pass"),
        _ => wifi(SITE_SSID, SITE_PASSPHRASE),
    }
}

/// Raises the soft open-file limit to the hard limit: every virtual device keeps its own HTTPS
/// connection pool to the emulator, and both ends live in this process.
pub(super) fn raise_open_file_limit() {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => tracing::debug!(limit, "open-file limit"),
        Err(error) => tracing::debug!(%error, "cannot raise the open-file limit"),
    }
}

/// Runs the demo.
pub async fn run(args: DemoArgs, context: &Context) -> Result<Exit, CliError> {
    raise_open_file_limit();
    let output = &context.output;
    let devices = usize::try_from(args.devices).unwrap_or(1);
    let interval = Duration::from_secs_f64((args.interval_ms / 1000.0).clamp(0.0, 4.0));
    let stack = LocalStack::start(StackConfig {
        devices,
        dps_instances: usize::try_from(args.dps_instances).unwrap_or(1),
        link: LinkModel {
            mtu: args.mtu,
            connection_interval: interval,
            scan_latency: Duration::from_millis(20),
            rssi: -60,
        },
        networks: if args.network_faults {
            site_networks()
        } else {
            Vec::new()
        },
        prefix: "demo-device".into(),
        seed: args.seed,
        fail_safe_window: Duration::from_secs(60),
        api: !args.local_signer,
        auto_approve: true,
    })
    .await?;
    output.info(format!(
        "fieldlink demo: {devices} virtual devices, {} DPS instances (emulator at {}), BLE MTU {}, \
         connection interval {:.1} ms{}",
        stack.instances.len(),
        stack.emulator.base_url(),
        args.mtu,
        args.interval_ms,
        if args.network_faults {
            ", Wi-Fi with faults"
        } else {
            ""
        }
    ));
    let signed_in = stack.api.as_ref().map(|api| &api.sign_in.session);
    if let (Some(api), Some(issuer)) = (&stack.api, &stack.issuer) {
        let identity = &api.sign_in.session.identity;
        output.info(format!(
            "provisioning API: {} (HTTPS, SQLite in a temporary directory)\nsigned in as {}{} via \
             {} (device code, auto-approved by the sandbox issuer: demo only)",
            api.running.base_url(),
            identity.subject,
            identity
                .tenant
                .as_deref()
                .map(|tenant| format!(" (tenant {tenant})"))
                .unwrap_or_default(),
            issuer.url,
        ));
        output.event("signed_in", &sign_in_summary(&stack));
    } else {
        output.info("tickets signed in-process (--local-signer); no sign-in needed");
    }
    let engine = Arc::new(Engine {
        backend: stack.backend(),
        config: stack.commissioning_config(),
        journal: None,
        installer: Installer {
            identity: signed_in.map_or_else(|| "demo".to_owned(), |s| s.identity.subject.clone()),
            profile: "demo".into(),
        },
    });
    let correction: CorrectionSupplier = Arc::new(|_, _| Some(wifi(SITE_SSID, SITE_PASSPHRASE)));
    let jobs: Vec<Job> = stack
        .devices
        .iter()
        .enumerate()
        .map(|(index, device)| Job {
            label: device.payload.registration_id.clone(),
            request: request_for_payload(
                &device.payload,
                args.network_faults.then(|| first_network(index)),
            ),
            batch_item: None,
            recheck: None,
            correction: args.network_faults.then(|| Arc::clone(&correction)),
        })
        .collect();
    let board = ProgressBoard::new(output, jobs.len(), context.bars());
    let started = Instant::now();
    let outcome = engine
        .run_all(
            jobs,
            usize::try_from(args.parallel).unwrap_or(1),
            &board,
            &context.cancel,
        )
        .await;
    board.finish();
    let elapsed = started.elapsed();
    let results = match outcome {
        Ok(results) => results,
        Err(error) => {
            stack.shutdown().await;
            return Err(error);
        }
    };
    let summary = summarise(&stack, &results, elapsed);
    if !output.is_json() && !output.is_quiet() {
        output.line("");
        output.line(results::table(&results).trim_end());
        let network: Vec<String> = results
            .iter()
            .filter_map(|r| {
                let report = r.network.as_ref()?;
                (!report.failures.is_empty()).then(|| {
                    format!(
                        "  {}: {} -> {}",
                        r.registration_id,
                        report.failures.join(", "),
                        if r.status == DeviceStatus::Succeeded {
                            "corrected in the same session, joined"
                        } else {
                            "gave up"
                        }
                    )
                })
            })
            .collect();
        if !network.is_empty() {
            output.line("");
            output.line("network faults (typed failures, then the corrected retry):");
            for line in network {
                output.line(line);
            }
        }
        output.line("");
        output.line("DPS utilisation:");
        for line in &summary.utilisation_lines {
            output.line(format!("  {line}"));
        }
    }
    let counts = Counts::of(&results);
    output.line("");
    output.line(format!(
        "{} of {} devices commissioned in {:.2} s ({:.1} devices/s; per device p50 {} ms, p95 {} ms)",
        counts.succeeded,
        counts.total,
        elapsed.as_secs_f64(),
        summary.devices_per_second,
        summary.p50_ms.unwrap_or(0),
        summary.p95_ms.unwrap_or(0),
    ));
    let exit = if context.cancel.is_cancelled() {
        Exit::Interrupted
    } else {
        counts.exit()
    };
    output.result(
        "demo",
        exit,
        json!({
            "counts": counts,
            "elapsed_ms": u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
            "devices_per_second": summary.devices_per_second,
            "p50_ms": summary.p50_ms,
            "p95_ms": summary.p95_ms,
            "dps_instances": summary.instances,
            "signed_in": sign_in_summary(&stack),
            "devices": results,
        }),
    );
    stack.shutdown().await;
    Ok(exit)
}

/// Who the demo signed in as, through which issuer (`null` with the local signer).
fn sign_in_summary(stack: &LocalStack) -> serde_json::Value {
    match (&stack.api, &stack.issuer) {
        (Some(api), Some(issuer)) => {
            let identity = &api.sign_in.session.identity;
            json!({
                "subject": identity.subject,
                "tenant": identity.tenant,
                "roles": identity.roles,
                "issuer": issuer.url,
                "flow": "device_code",
                "auto_approved": api.sign_in.auto_approved,
            })
        }
        _ => serde_json::Value::Null,
    }
}

struct Summary {
    devices_per_second: f64,
    p50_ms: Option<u64>,
    p95_ms: Option<u64>,
    instances: Vec<serde_json::Value>,
    utilisation_lines: Vec<String>,
}

fn summarise(stack: &LocalStack, results: &[DeviceResult], elapsed: Duration) -> Summary {
    let times: Vec<u64> = results
        .iter()
        .filter(|r| r.status == DeviceStatus::Succeeded)
        .map(|r| r.total_ms)
        .collect();
    let per_instance = results::per_instance(results);
    let mut instances = Vec::new();
    let mut lines = Vec::new();
    for instance in &stack.instances {
        let devices = per_instance.get(&instance.name).copied().unwrap_or(0);
        let utilisation = stack.utilisation(&instance.name);
        let line = match &utilisation {
            Some(u) => format!(
                "{:<8} {:<24} {:>5} devices  {} registrations ({} assigned)  {}/{} per min  cap {}",
                instance.name,
                instance.hub,
                devices,
                u.registrations,
                u.assigned,
                u.registrations_last_minute,
                u.registrations_per_minute_limit
                    .map_or_else(|| "unlimited".to_owned(), |l| l.to_string()),
                u.max_registrations
                    .map_or_else(|| "unlimited".to_owned(), |m| m.to_string()),
            ),
            None => format!("{:<8} {devices} devices", instance.name),
        };
        lines.push(line);
        instances.push(json!({
            "name": instance.name,
            "id_scope": instance.id_scope,
            "hub": instance.hub,
            "devices": devices,
            "registrations": utilisation.as_ref().map(|u| u.registrations),
            "assigned": utilisation.as_ref().map(|u| u.assigned),
            "registrations_last_minute": utilisation.as_ref().map(|u| u.registrations_last_minute),
            "registrations_per_minute_limit": utilisation.as_ref().and_then(|u| u.registrations_per_minute_limit),
            "max_registrations": utilisation.as_ref().and_then(|u| u.max_registrations),
        }));
    }
    let seconds = elapsed.as_secs_f64().max(1e-9);
    Summary {
        devices_per_second: (times.len() as f64 / seconds * 10.0).round() / 10.0,
        p50_ms: results::percentile(&times, 50.0),
        p95_ms: results::percentile(&times, 95.0),
        instances,
        utilisation_lines: lines,
    }
}
