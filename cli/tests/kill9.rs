//! The kill -9 test: a batch (`commission --from-file` in a child process against `sandbox
//! up`) is killed with SIGKILL at a random point, `resume` finishes it, and every device ends
//! up commissioned exactly once (one accepted ticket each), with the done ones untouched.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::{
    io::{BufRead, BufReader},
    process::Stdio,
    sync::mpsc,
    time::{Duration, Instant},
};

use rand::Rng;
use serde_json::Value;

const ROUNDS: usize = 3;
/// Three waves of three devices (each takes ~3 s: DPS answers `Retry-After: 3`), so a kill
/// after at most four finished devices plus 1.5 s always lands before the batch ends.
const PER_ROUND: usize = 9;

fn run_json(env: &common::Env, args: &[&str]) -> (i32, Value) {
    let output = env
        .command()
        .arg("--json")
        .args(args)
        .timeout(Duration::from_secs(300))
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        common::result(&output.stdout),
    )
}

#[test]
fn a_killed_batch_resumes_and_commissions_each_device_exactly_once() {
    let env = common::Env::new();
    let sandbox = common::Sandbox::start(&env, u32::try_from(ROUNDS * PER_ROUND).unwrap());
    let manifest = sandbox.manifest.to_str().unwrap().to_owned();
    let payloads = sandbox.payloads();
    let mut rng = rand::thread_rng();
    for round in 0..ROUNDS {
        let chunk = &payloads[round * PER_ROUND..(round + 1) * PER_ROUND];
        let file = env.path().join(format!("batch-{round}.txt"));
        std::fs::write(&file, format!("# round {round}\n{}\n", chunk.join("\n"))).unwrap();

        // Start the batch and kill it after a random number of finished devices plus a random
        // delay (so devices are caught in every step, including mid-registration).
        let mut child = env
            .std_command()
            .args([
                "--json",
                "commission",
                "-j",
                "3",
                "--sandbox",
                &manifest,
                "--from-file",
            ])
            .arg(&file)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let (lines_tx, lines) = mpsc::channel::<Value>();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(value) = serde_json::from_str::<Value>(&line) {
                    let _ = lines_tx.send(value);
                }
            }
        });
        let done_before_kill = rng.gen_range(0..=4);
        let extra_delay = Duration::from_millis(rng.gen_range(0..1_500));
        let started = Instant::now();
        let mut batch_seen = false;
        let mut finished = 0;
        while !(batch_seen && finished >= done_before_kill) {
            let line = lines
                .recv_timeout(Duration::from_secs(60))
                .expect("the batch makes progress");
            match line["type"].as_str() {
                Some("batch") => batch_seen = true,
                Some("device") => finished += 1,
                Some("result") => panic!("the batch ended before the kill: {line}"),
                _ => {}
            }
        }
        std::thread::sleep(extra_delay);
        child.kill().unwrap(); // SIGKILL
        let status = child.wait().unwrap();
        assert!(!status.success(), "the batch was killed, not finished");
        eprintln!(
            "round {round}: killed after {finished} devices + {extra_delay:?} ({:?} in)",
            started.elapsed()
        );

        // What the journal knew at the kill.
        let (_, batches) = run_json(&env, &["history", "--batches"]);
        let batch = batches["batches"][0].clone();
        let done_at_kill = batch["counts"]["succeeded"].as_u64().unwrap();
        assert!(done_at_kill >= u64::try_from(finished).unwrap().min(PER_ROUND as u64));

        // Resume finishes the rest without touching the done ones.
        let (code, resumed) = run_json(&env, &["resume", "--sandbox", &manifest]);
        assert_eq!(code, 0, "{resumed}");
        assert_eq!(resumed["batch_id"], batch["id"]);
        let results = resumed["devices"].as_array().unwrap();
        assert_eq!(results.len(), PER_ROUND);
        let skipped = results.iter().filter(|d| d["status"] == "skipped").count();
        assert_eq!(
            u64::try_from(skipped).unwrap(),
            done_at_kill,
            "done devices are left alone"
        );
        assert!(results.iter().all(|d| d["status"] != "failed"), "{resumed}");
        let (_, batches) = run_json(&env, &["history", "--batches"]);
        assert_eq!(batches["batches"][0]["counts"]["succeeded"], PER_ROUND);

        // A second resume has nothing left to do.
        let (code, again) = run_json(&env, &["resume", "--sandbox", &manifest]);
        assert_eq!(code, 0);
        assert_eq!(again["batch_id"], Value::Null, "{again}");
    }

    // Every device of every round: registered, exactly one ticket accepted.
    let (_, holdings) = run_json(&env, &["sandbox", "devices", "--manifest", &manifest]);
    for device in holdings["devices"].as_array().unwrap() {
        assert_eq!(device["state"], "registered", "{device}");
        assert_eq!(
            device["tickets_accepted"], 1,
            "commissioned exactly once: {device}"
        );
    }
}
