//! Batches: many labels commissioned in parallel, journalled as one batch, resumable.
//!
//! The journal's batch rules (create with every device `pending`, claim the batch for this
//! process, `in_flight` before a device is touched, the resume plan) are the core's; this module
//! only schedules the devices with a concurrency limit and streams what happens.

use std::{sync::Arc, time::Instant};

use fieldlink_core::{
    CommissionError,
    journal::{AttemptOutcome, BatchItemRef, JournalError, NewAttempt, NewBatch, ResumeAction},
};
use serde_json::json;
use sha2::{Digest, Sha256};
use tauri::{State, ipc::Channel};
use tokio::{sync::Semaphore, task::JoinSet};
use tokio_util::sync::CancellationToken;

use super::commission::run_context;
use crate::{
    dto::batch::{BatchEvent, BatchRequest, BatchSummary},
    error::{CommandError, CommandResult, ShellError},
    label::OnboardingCode,
    run::Run,
    state::DesktopState,
};

/// A batch whose runner was not heard from for this long may be taken over.
const STALE_RUNNER_MS: i64 = 60_000;
/// What a batch of pasted labels records as its source.
const PASTED_SOURCE: &str = "desktop:pasted";

/// The labels of a request, trimmed; blank lines and `#` comments dropped.
fn clean(labels: &[String]) -> Vec<String> {
    labels
        .iter()
        .map(|label| label.trim().to_owned())
        .filter(|label| !label.is_empty() && !label.starts_with('#'))
        .collect()
}

/// SHA-256 (hex) of the labels, one per line: recorded with the batch, checked on resume.
fn digest(labels: &[String]) -> String {
    let mut hasher = Sha256::new();
    for label in labels {
        hasher.update(label.as_bytes());
        hasher.update(b"\n");
    }
    hex::encode(hasher.finalize())
}

/// Whether process `pid` is alive (Linux: `/proc`; elsewhere trust the heartbeat).
fn runner_alive(pid: u32) -> bool {
    if cfg!(target_os = "linux") {
        std::path::Path::new(&format!("/proc/{pid}")).exists()
    } else {
        true
    }
}

/// Runs `items` (position, parsed code) at most `concurrency` at a time.
async fn run_items(
    run: Run,
    batch_id: &str,
    items: Vec<(u32, Result<OnboardingCode, CommissionError>)>,
    concurrency: u32,
    events: Channel<BatchEvent>,
    cancel: CancellationToken,
) {
    let permits = Arc::new(Semaphore::new(concurrency.clamp(1, 32) as usize));
    let mut tasks = JoinSet::new();
    for (position, code) in items {
        let run = run.clone();
        let events = events.clone();
        let cancel = cancel.clone();
        let permits = Arc::clone(&permits);
        let item = BatchItemRef {
            batch_id: batch_id.to_owned(),
            position,
        };
        tasks.spawn(async move {
            let _permit = tokio::select! {
                biased;
                () = cancel.cancelled() => return,
                permit = permits.acquire_owned() => match permit {
                    Ok(permit) => permit,
                    Err(_) => return,
                },
            };
            let _ = events.send(BatchEvent::Started { position });
            let outcome = match code {
                Ok(code) => {
                    let progress = events.clone();
                    let sink = Arc::new(move |update| {
                        let _ = progress.send(BatchEvent::Progress { position, update });
                    });
                    run.commission(code, Some(item), sink, cancel.child_token())
                        .await
                }
                Err(error) => Err(journal_invalid(&run, item, &error)),
            };
            let event = match outcome {
                Ok(result) => BatchEvent::Succeeded {
                    position,
                    result: Box::new(result),
                },
                Err(error) => BatchEvent::Failed { position, error },
            };
            let _ = events.send(event);
        });
    }
    while tasks.join_next().await.is_some() {}
}

/// An item whose label does not parse: journalled as a failed attempt, so the batch's record
/// is complete. Returns the error to report (the journal's, if it could not record it).
fn journal_invalid(run: &Run, item: BatchItemRef, error: &CommissionError) -> CommandError {
    let recorded = run
        .journal
        .begin_attempt(&NewAttempt {
            registration_id: String::new(),
            installer: run.installer.clone(),
            batch_item: Some(item),
            transport: run.site.transport_name().to_owned(),
        })
        .and_then(|attempt| {
            run.journal
                .finish_attempt(attempt, &AttemptOutcome::failed(error, Vec::new(), 0))
        });
    match recorded {
        Ok(()) => error.into(),
        Err(journal) => journal.into(),
    }
}

async fn finish(
    run: &Run,
    batch_id: String,
    cancel: &CancellationToken,
    started: Instant,
) -> CommandResult<BatchSummary> {
    let counts = run.journal.release_batch(&batch_id)?;
    Ok(BatchSummary {
        batch_id,
        counts: counts.into(),
        cancelled: cancel.is_cancelled(),
        total_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
    })
}

/// Starts a batch of `request.labels`, `request.concurrency` devices at a time, streaming
/// [`BatchEvent`]s. Labels that do not parse fail their row with `invalid_payload`.
#[tauri::command]
pub async fn commission_batch(
    state: State<'_, DesktopState>,
    request: BatchRequest,
    operation_id: String,
    on_event: Channel<BatchEvent>,
) -> CommandResult<BatchSummary> {
    let labels = clean(&request.labels);
    if labels.is_empty() {
        return Err(CommissionError::InvalidPayload {
            field: "labels".to_owned(),
            reason: "the list is empty; paste one label or manual code per line".to_owned(),
        }
        .into());
    }
    let guard = state.operations().start(&operation_id)?;
    let run = run_context(&state).await?;
    run.site.services()?;
    let started = Instant::now();
    let codes: Vec<Result<OnboardingCode, CommissionError>> = labels
        .iter()
        .map(|label| OnboardingCode::parse(label))
        .collect();
    let registration_ids: Vec<Option<String>> = codes
        .iter()
        .map(|code| {
            code.as_ref()
                .ok()
                .and_then(|code| code.registration_id().map(str::to_owned))
        })
        .collect();
    let batch_id = run.journal.create_batch(&NewBatch {
        installer: run.installer.clone(),
        source: request
            .source_path
            .clone()
            .unwrap_or_else(|| PASTED_SOURCE.to_owned()),
        source_digest: digest(&labels),
        options: json!({"concurrency": request.concurrency, "shell": "desktop"}),
        registration_ids: registration_ids
            .iter()
            .map(|id| id.clone().unwrap_or_default())
            .collect(),
    })?;
    run.journal.claim_batch(
        &batch_id,
        std::process::id(),
        &runner_alive,
        STALE_RUNNER_MS,
    )?;
    let _ = on_event.send(BatchEvent::Planned {
        batch_id: batch_id.clone(),
        registration_ids,
    });
    let items = codes
        .into_iter()
        .enumerate()
        .map(|(position, code)| (u32::try_from(position).unwrap_or(u32::MAX), code))
        .collect();
    let cancel = guard.token();
    run_items(
        run.clone(),
        &batch_id,
        items,
        request.concurrency,
        on_event,
        cancel.clone(),
    )
    .await;
    finish(&run, batch_id, &cancel, started).await
}

/// Resumes batch `batch_id` with the same labels it started with (pasted again, or re-read
/// from its source file when `labels` is empty): devices already done are skipped, interrupted
/// ones are re-checked by a fresh handshake (the core never pushes a second ticket), the rest
/// are commissioned. Failed devices are retried if retryable, or all of them with
/// `retry_failed`.
#[tauri::command]
pub async fn resume_batch(
    state: State<'_, DesktopState>,
    batch_id: String,
    labels: Vec<String>,
    retry_failed: bool,
    concurrency: u32,
    operation_id: String,
    on_event: Channel<BatchEvent>,
) -> CommandResult<BatchSummary> {
    let guard = state.operations().start(&operation_id)?;
    let run = run_context(&state).await?;
    run.site.services()?;
    let started = Instant::now();
    let record = run
        .journal
        .batch(&batch_id)?
        .ok_or_else(|| JournalError::UnknownBatch(batch_id.clone()))?;
    let mut labels = clean(&labels);
    if labels.is_empty() && record.source != PASTED_SOURCE {
        let text = std::fs::read_to_string(&record.source).map_err(|error| ShellError::File {
            path: record.source.clone(),
            detail: error.to_string(),
        })?;
        labels = text.lines().map(str::to_owned).collect();
        labels = clean(&labels);
    }
    if digest(&labels) != record.source_digest {
        return Err(ShellError::BatchSourceChanged { batch_id }.into());
    }
    run.journal.claim_batch(
        &batch_id,
        std::process::id(),
        &runner_alive,
        STALE_RUNNER_MS,
    )?;
    let plan = run.journal.resume_plan(&batch_id, retry_failed)?;
    let _ = on_event.send(BatchEvent::Planned {
        batch_id: batch_id.clone(),
        registration_ids: plan
            .iter()
            .map(|step| Some(step.item.registration_id.clone()).filter(|id| !id.is_empty()))
            .collect(),
    });
    let mut items = Vec::new();
    for step in plan {
        let position = step.item.position;
        match step.action {
            ResumeAction::Skip => {
                let _ = on_event.send(BatchEvent::Skipped { position });
            }
            ResumeAction::Commission | ResumeAction::Recheck { .. } => {
                let label = labels
                    .get(position as usize)
                    .map(String::as_str)
                    .unwrap_or("");
                items.push((position, OnboardingCode::parse(label)));
            }
        }
    }
    let cancel = guard.token();
    run_items(
        run.clone(),
        &batch_id,
        items,
        concurrency,
        on_event,
        cancel.clone(),
    )
    .await;
    finish(&run, batch_id, &cancel, started).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_ignore_blank_lines_and_surrounding_space() {
        let a = clean(&[
            "  FL1/A/B ".into(),
            "".into(),
            "# site 7".into(),
            "123".into(),
        ]);
        let b = clean(&["FL1/A/B".into(), "123".into(), "   ".into()]);
        assert_eq!(digest(&a), digest(&b));
        assert_ne!(
            digest(&a),
            digest(&clean(&["123".into(), "FL1/A/B".into()]))
        );
    }
}
