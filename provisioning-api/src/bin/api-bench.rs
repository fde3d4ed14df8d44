//! Load bench of the provisioning API (a command, not a test): assignment requests per second
//! with p50 and p99 latency at 64 concurrent clients, over loopback HTTP, on SQLite and on
//! PostgreSQL.
//!
//! ```text
//! cargo run --release -p fieldlink-provisioning-api --bin api-bench -- \
//!     [--backend sqlite|postgres|both] [--requests 20000] [--concurrency 64] [--instances 8]
//! ```
//!
//! PostgreSQL comes from `FIELDLINK_BENCH_POSTGRES_URL` (or `FIELDLINK_TEST_POSTGRES_URL`); the
//! bench works in a fresh schema and drops it afterwards. Bounded: at most `--requests` per
//! phase and 120 s per phase; it binds 127.0.0.1 only.
#![allow(clippy::print_stdout)]

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use fieldlink_provisioning_api::{
    ApiConfig, ProvisioningApi,
    auth::Role,
    clock::{Clock, SystemClock},
    model::{AllowlistEntry, NewDpsInstance},
    storage::{PostgresOptions, PostgresStorage, SqliteStorage, Storage},
    test_tokens::TokenMinter,
};
use serde_json::json;

const PHASE_LIMIT: Duration = Duration::from_secs(120);

struct Options {
    backends: Vec<&'static str>,
    requests: usize,
    concurrency: usize,
    instances: usize,
}

fn postgres_url() -> Option<String> {
    [
        "FIELDLINK_BENCH_POSTGRES_URL",
        "FIELDLINK_TEST_POSTGRES_URL",
    ]
    .iter()
    .find_map(|var| std::env::var(var).ok().filter(|v| !v.is_empty()))
}

fn options() -> Result<Options, String> {
    let mut options = Options {
        backends: if postgres_url().is_some() {
            vec!["sqlite", "postgres"]
        } else {
            vec!["sqlite"]
        },
        requests: 20_000,
        concurrency: 64,
        instances: 8,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--backend" => {
                options.backends = match value()?.as_str() {
                    "sqlite" => vec!["sqlite"],
                    "postgres" => vec!["postgres"],
                    "both" => vec!["sqlite", "postgres"],
                    other => return Err(format!("unknown backend {other:?}")),
                }
            }
            "--requests" => {
                options.requests = value()?.parse().map_err(|e| format!("--requests: {e}"))?;
            }
            "--concurrency" => {
                options.concurrency = value()?
                    .parse()
                    .map_err(|e| format!("--concurrency: {e}"))?;
            }
            "--instances" => {
                options.instances = value()?.parse().map_err(|e| format!("--instances: {e}"))?;
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if options.requests == 0 || options.requests > 1_000_000 || options.concurrency == 0 {
        return Err("--requests must be 1..=1000000 and --concurrency at least 1".to_owned());
    }
    Ok(options)
}

struct Phase {
    completed: usize,
    failed: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl Phase {
    fn percentile(&self, p: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let rank =
            ((self.latencies.len() as f64 * p).ceil() as usize).clamp(1, self.latencies.len());
        self.latencies[rank - 1]
    }

    fn report(&self, backend: &str, phase: &str, concurrency: usize) {
        println!(
            "{backend:<9} {phase:<22} clients={concurrency:<3} requests={:<6} failed={:<4} {:>8.0} req/s  p50={:>6.2} ms  p99={:>6.2} ms",
            self.completed,
            self.failed,
            self.completed as f64 / self.elapsed.as_secs_f64(),
            self.percentile(0.50).as_secs_f64() * 1e3,
            self.percentile(0.99).as_secs_f64() * 1e3,
        );
    }
}

async fn run_phase(base: &str, token: &str, ids: Arc<Vec<String>>, concurrency: usize) -> Phase {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .timeout(Duration::from_secs(30))
        .build()
        .expect("an HTTP client builds");
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (client, next, ids) = (client.clone(), next.clone(), ids.clone());
            let url = format!("{base}/v1/assignments");
            let token = token.to_owned();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut failed = 0;
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    if index >= ids.len() || started.elapsed() > PHASE_LIMIT {
                        break;
                    }
                    let sent = Instant::now();
                    let ok = client
                        .post(&url)
                        .bearer_auth(&token)
                        .json(&json!({ "registration_id": ids[index] }))
                        .send()
                        .await
                        .map(|r| r.status().is_success());
                    match ok {
                        Ok(true) => latencies.push(sent.elapsed()),
                        _ => failed += 1,
                    }
                }
                (latencies, failed)
            })
        })
        .collect();
    let mut phase = Phase {
        completed: 0,
        failed: 0,
        elapsed: Duration::ZERO,
        latencies: Vec::new(),
    };
    for worker in workers {
        if let Ok((latencies, failed)) = worker.await {
            phase.completed += latencies.len();
            phase.failed += failed;
            phase.latencies.extend(latencies);
        }
    }
    phase.elapsed = started.elapsed();
    phase.latencies.sort();
    phase
}

async fn bench(
    backend: &'static str,
    storage: Arc<dyn Storage>,
    options: &Options,
) -> Result<(), String> {
    let now = SystemClock.now_ms();
    for i in 0..options.instances {
        let spec: NewDpsInstance = serde_json::from_value(json!({
            "name": format!("bench-{i}"),
            "id_scope": format!("0ne{i:08X}"),
            "service_endpoint": format!("https://bench-{i}.azure-devices-provisioning.net"),
            "region": "bench",
            "registration_cap": 10_000_000u64,
            "rate_limit_per_minute": 100_000_000u64,
        }))
        .map_err(|e| e.to_string())?;
        storage
            .add_instance(spec, now)
            .await
            .map_err(|e| e.to_string())?;
    }
    let warmup: Vec<String> = (0..256).map(|i| format!("warm-{i:06}")).collect();
    let ids: Vec<String> = (0..options.requests)
        .map(|i| format!("bench-{i:07}"))
        .collect();
    let entries = warmup
        .iter()
        .chain(&ids)
        .map(|id| AllowlistEntry {
            registration_id: id.clone(),
            label: None,
        })
        .collect();
    storage
        .import_allowlist("bench", entries, now)
        .await
        .map_err(|e| e.to_string())?;
    let minter = TokenMinter::new("https://bench.fieldlink.test", "fieldlink-bench");
    let config = ApiConfig {
        issuers: vec![minter.trusted_issuer()],
        ..ApiConfig::default()
    };
    let api = ProvisioningApi::builder(config, storage)
        .build()
        .await
        .map_err(|e| e.to_string())?;
    let running = api
        .bind("127.0.0.1:0".parse().map_err(|e| format!("{e}"))?)
        .await
        .map_err(|e| e.to_string())?;
    let base = running.base_url();
    let token = minter.token("bench", &[Role::Installer], SystemClock.now_unix());
    run_phase(&base, &token, Arc::new(warmup), options.concurrency).await;
    let ids = Arc::new(ids);
    let created = run_phase(&base, &token, ids.clone(), options.concurrency).await;
    created.report(backend, "new devices (write)", options.concurrency);
    let repeat = run_phase(&base, &token, ids, options.concurrency).await;
    repeat.report(backend, "repeats (sticky read)", options.concurrency);
    running.shutdown().await.map_err(|e| e.to_string())?;
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), String> {
    let options = options()?;
    println!(
        "api-bench: {} requests per phase, {} clients, {} DPS instances, loopback HTTP, {} CPUs",
        options.requests,
        options.concurrency,
        options.instances,
        std::thread::available_parallelism().map_or(0, usize::from)
    );
    for backend in options.backends.clone() {
        match backend {
            "sqlite" => {
                let dir = tempfile_dir()?;
                let storage = SqliteStorage::open(dir.join("bench.db"))
                    .await
                    .map_err(|e| e.to_string())?;
                let result = bench(backend, Arc::new(storage), &options).await;
                let _ = std::fs::remove_dir_all(&dir);
                result?;
            }
            _ => {
                let url = postgres_url().ok_or("set FIELDLINK_BENCH_POSTGRES_URL")?;
                let schema = format!("bench_{}", uuid::Uuid::new_v4().simple());
                let storage = PostgresStorage::connect(
                    &url,
                    PostgresOptions {
                        schema: Some(schema),
                        max_connections: 32,
                        ..PostgresOptions::default()
                    },
                )
                .await
                .map_err(|e| e.to_string())?;
                let result = bench(backend, Arc::new(storage.clone()), &options).await;
                storage.drop_schema().await.map_err(|e| e.to_string())?;
                result?;
            }
        }
    }
    Ok(())
}

fn tempfile_dir() -> Result<std::path::PathBuf, String> {
    let dir = std::env::temp_dir().join(format!(
        "fieldlink-api-bench-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    Ok(dir)
}
