//! Registrations per second of the DPS emulator, measured over loopback.
//!
//! ```text
//! dps-bench [--devices N] [--concurrency C] [--instances K] [--max-seconds S] [--tls]
//! ```
//!
//! Starts the emulator in this process with K instances whose limits are removed and whose
//! assignment delay is 0, then C concurrent clients each run full device registrations
//! (`PUT …/register`, then `GET …/operations/{id}` until final) with group-derived SAS keys,
//! until N devices are assigned or S seconds pass. Prints registrations per second and the
//! p50/p99 of one registration (PUT + polls). Bounded: N ≤ 1,000,000, C ≤ 1,024, S ≤ 600.

use fieldlink_dps_emulator::{
    DpsEmulator, EmulatorConfig, EnrollmentGroup, InstanceConfig, Limits, RunningEmulator,
};
use fieldlink_protocol::sas;
use std::io::Write as _;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const GROUP_KEY: &str = "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=";
const API: &str = "api-version=2021-10-01";

struct Args {
    devices: usize,
    concurrency: usize,
    instances: usize,
    max_seconds: u64,
    tls: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        devices: 20_000,
        concurrency: 64,
        instances: 4,
        max_seconds: 120,
        tls: false,
    };
    let mut iter = std::env::args().skip(1);
    while let Some(flag) = iter.next() {
        let mut number = |max: u64| -> Result<u64, String> {
            let value = iter.next().ok_or_else(|| format!("{flag} needs a value"))?;
            let n: u64 = value.parse().map_err(|e| format!("{flag}: {e}"))?;
            if n == 0 || n > max {
                return Err(format!("{flag} must be within 1..={max}"));
            }
            Ok(n)
        };
        match flag.as_str() {
            "--devices" => args.devices = number(1_000_000)? as usize,
            "--concurrency" => args.concurrency = number(1_024)? as usize,
            "--instances" => args.instances = number(50)? as usize,
            "--max-seconds" => args.max_seconds = number(600)?,
            "--tls" => args.tls = true,
            other => {
                return Err(format!(
                    "unknown argument {other:?}; usage: dps-bench [--devices N] \
                     [--concurrency C] [--instances K] [--max-seconds S] [--tls]"
                ));
            }
        }
    }
    Ok(args)
}

fn instance(n: usize) -> InstanceConfig {
    let mut config = InstanceConfig::new(
        &format!("bench-dps-{n}"),
        &["hub-1.azure-devices.net", "hub-2.azure-devices.net"],
    );
    config.limits = Limits::unlimited();
    config.knobs.retry_after_secs = 0;
    config.enrollment_groups = vec![EnrollmentGroup::symmetric_key(
        "bench", GROUP_KEY, GROUP_KEY,
    )];
    config
}

fn client(emulator: &RunningEmulator) -> Result<reqwest::Client, String> {
    let mut builder = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(1_024)
        .use_rustls_tls();
    if let Some(ca) = emulator.ca_pem() {
        let ca = reqwest::Certificate::from_pem(ca.as_bytes()).map_err(|e| e.to_string())?;
        builder = builder
            .tls_built_in_root_certs(false)
            .add_root_certificate(ca);
    }
    builder.build().map_err(|e| e.to_string())
}

/// One device registration: PUT, then polls until final. Returns its duration.
async fn register_one(
    client: &reqwest::Client,
    base: &str,
    scope: &str,
    device: &str,
) -> Result<Duration, String> {
    let started = Instant::now();
    let key = sas::derive_group_device_key(GROUP_KEY, device).map_err(|e| e.to_string())?;
    let expiry = chrono::Utc::now().timestamp() + 3600;
    let token = sas::device_sas_token(scope, device, &key, expiry).map_err(|e| e.to_string())?;
    let response = client
        .put(format!(
            "{base}/{scope}/registrations/{device}/register?{API}"
        ))
        .header("Authorization", &token)
        .json(&serde_json::json!({ "registrationId": device }))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if response.status() != 202 {
        return Err(format!("register {device}: HTTP {}", response.status()));
    }
    let operation: serde_json::Value = response.json().await.map_err(|e| e.to_string())?;
    let operation_id = operation["operationId"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    for _ in 0..5 {
        let response = client
            .get(format!(
                "{base}/{scope}/registrations/{device}/operations/{operation_id}?{API}"
            ))
            .header("Authorization", &token)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        match response.status().as_u16() {
            200 => return Ok(started.elapsed()),
            202 => tokio::time::sleep(Duration::from_millis(5)).await,
            other => return Err(format!("poll {device}: HTTP {other}")),
        }
    }
    Err(format!("{device}: still assigning after 5 polls"))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

async fn run(args: Args) -> Result<(), String> {
    let mut config = EmulatorConfig::with_instances((0..args.instances).map(instance).collect());
    if args.tls {
        config = config.with_tls();
        config.http_bind = None;
    }
    let emulator = DpsEmulator::start(config)
        .await
        .map_err(|e| e.to_string())?;
    let base = emulator.base_url();
    let scopes: Arc<Vec<String>> = Arc::new(
        emulator
            .control()
            .instances()
            .into_iter()
            .map(|i| i.id_scope)
            .collect(),
    );
    let client = client(&emulator)?;
    let next = Arc::new(AtomicUsize::new(0));
    let deadline = Instant::now() + Duration::from_secs(args.max_seconds);
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..args.concurrency {
        let (client, base, scopes, next) =
            (client.clone(), base.clone(), scopes.clone(), next.clone());
        let devices = args.devices;
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0usize;
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= devices || Instant::now() >= deadline {
                    break;
                }
                let scope = &scopes[n % scopes.len()];
                match register_one(&client, &base, scope, &format!("bench-device-{n}")).await {
                    Ok(latency) => latencies.push(latency),
                    Err(_) => errors += 1,
                }
            }
            (latencies, errors)
        }));
    }
    let mut latencies = Vec::new();
    let mut errors = 0;
    for worker in workers {
        let (mut worker_latencies, worker_errors) = worker.await.map_err(|e| e.to_string())?;
        latencies.append(&mut worker_latencies);
        errors += worker_errors;
    }
    let elapsed = started.elapsed();
    latencies.sort_unstable();
    let assigned: u64 = emulator
        .control()
        .instances()
        .iter()
        .map(|i| i.utilisation.assigned)
        .sum();
    let rate = latencies.len() as f64 / elapsed.as_secs_f64();
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "dps-bench: {} registrations ({} errors) over {} instances, {} clients, {}, in {:.2} s",
        latencies.len(),
        errors,
        args.instances,
        args.concurrency,
        if args.tls { "HTTPS" } else { "HTTP" },
        elapsed.as_secs_f64()
    );
    let _ = writeln!(out, "registrations/s: {rate:.0}");
    let _ = writeln!(
        out,
        "per registration (PUT + poll): p50 {:.2} ms, p99 {:.2} ms",
        percentile(&latencies, 0.50).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3
    );
    let _ = writeln!(out, "assigned in the emulator: {assigned}");
    drop(out);
    emulator.shutdown().await;
    if assigned != latencies.len() as u64 {
        return Err(format!(
            "emulator shows {assigned} assigned, clients saw {}",
            latencies.len()
        ));
    }
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    let result = match parse_args() {
        Ok(args) => run(args).await,
        Err(message) => Err(message),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            let _ = writeln!(std::io::stderr(), "dps-bench: {message}");
            ExitCode::FAILURE
        }
    }
}
