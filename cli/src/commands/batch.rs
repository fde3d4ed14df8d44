//! Running a batch (for `commission --from-file` and `resume`): claim it, commission its
//! devices, release it, print the summary.

use std::sync::Arc;

use fieldlink_core::journal::Journal;
use serde_json::json;

use super::Context;
use crate::{
    exit::{CliError, Exit},
    progress::ProgressBoard,
    results::{self, Counts, DeviceResult},
    runner::{Engine, Job},
};

/// A batch claim is stale after this long without a heartbeat.
const STALE_AFTER_MS: i64 = 30_000;

/// Whether process `pid` is alive (Linux: `/proc`, zombies count as dead; elsewhere the
/// heartbeat alone decides).
pub fn process_alive(pid: u32) -> bool {
    if cfg!(target_os = "linux") {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Ok(stat) => stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.trim_start().chars().next())
                .is_some_and(|state| state != 'Z' && state != 'X'),
            Err(_) => false,
        }
    } else {
        true
    }
}

/// One run of a batch.
pub struct BatchRun {
    /// The batch.
    pub batch_id: String,
    /// Devices to commission, with their batch positions.
    pub jobs: Vec<Job>,
    /// Devices left alone, by position.
    pub skipped: Vec<(u32, DeviceResult)>,
    /// Devices at once.
    pub parallel: usize,
}

/// Runs `run`; returns the exit code for its results.
pub async fn run_batch(
    engine: Arc<Engine>,
    journal: &Arc<Journal>,
    run: BatchRun,
    context: &Context,
    command: &str,
) -> Result<Exit, CliError> {
    let output = &context.output;
    journal.claim_batch(
        &run.batch_id,
        std::process::id(),
        &process_alive,
        STALE_AFTER_MS,
    )?;
    let positions: Vec<u32> = run
        .jobs
        .iter()
        .map(|job| job.batch_item.as_ref().map_or(0, |item| item.position))
        .collect();
    output.info(format!(
        "batch {}: {} to commission, {} left alone, {} at a time",
        run.batch_id,
        run.jobs.len(),
        run.skipped.len(),
        run.parallel
    ));
    output.event(
        "batch",
        &json!({
            "batch_id": run.batch_id,
            "to_commission": run.jobs.len(),
            "skipped": run.skipped.len(),
            "parallel": run.parallel,
        }),
    );
    let board = ProgressBoard::new(output, run.jobs.len(), context.bars());
    let outcome = engine
        .run_all(run.jobs, run.parallel, &board, &context.cancel)
        .await;
    board.finish();
    let released = journal.release_batch(&run.batch_id);
    let ran = outcome?;
    let journal_counts = released?;
    let mut all: Vec<(u32, DeviceResult)> = positions.into_iter().zip(ran).collect();
    all.extend(run.skipped);
    all.sort_by_key(|(position, _)| *position);
    let results: Vec<DeviceResult> = all.into_iter().map(|(_, result)| result).collect();
    let counts = Counts::of(&results);
    if !output.is_json() && !output.is_quiet() {
        output.line(results::table(&results).trim_end());
    }
    output.info(format!(
        "batch {}: {} succeeded ({} with confirmation queued), {} failed, {} left alone; \
         journal: {} of {} devices done",
        run.batch_id,
        counts.succeeded,
        counts.queued,
        counts.failed,
        counts.skipped,
        journal_counts.succeeded,
        journal_counts.total()
    ));
    if journal_counts.succeeded < journal_counts.total() && !context.cancel.is_cancelled() {
        output.info(format!(
            "devices not done can be retried with: fieldlink resume {}",
            run.batch_id
        ));
    }
    let exit = if context.cancel.is_cancelled() {
        Exit::Interrupted
    } else {
        counts.exit()
    };
    output.result(
        command,
        exit,
        json!({
            "batch_id": run.batch_id,
            "counts": counts,
            "batch": journal_counts,
            "devices": results,
        }),
    );
    Ok(exit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive() {
        assert!(process_alive(std::process::id()));
        if cfg!(target_os = "linux") {
            assert!(!process_alive(u32::MAX - 1));
        }
    }
}
