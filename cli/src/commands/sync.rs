//! Syncing queued confirmations with the registration-status source (`history --sync`, and
//! automatically at the start of `commission` and `resume`).

use std::{sync::Arc, time::Duration};

use fieldlink_core::{
    CommissionError,
    assignment::RegistrationStatusSource,
    journal::{AttemptId, ErrorRecord, Journal, ServiceVerdict},
};
use serde::Serialize;

use crate::{exit::CliError, output::Output};

/// What a sync did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SyncSummary {
    /// Confirmed now.
    pub confirmed: usize,
    /// The service disagreed: now failed with `confirmation_mismatch`.
    pub rejected: usize,
    /// Still queued (service unreachable or lagging).
    pub pending: usize,
}

/// Asks the status source about every queued confirmation, `per_try` at most each.
pub async fn sync_pending(
    journal: &Journal,
    status: &Arc<dyn RegistrationStatusSource>,
    per_try: Duration,
) -> Result<SyncSummary, CliError> {
    let mut summary = SyncSummary::default();
    for pending in journal.pending_confirmations()? {
        let attempt = AttemptId(pending.attempt_id);
        let Some(assignment) = pending.assignment.to_assignment() else {
            journal.note_sync_failure(attempt, "the recorded ticket is unreadable")?;
            summary.pending += 1;
            continue;
        };
        let asked = status.registration_status(pending.registration_id.clone(), assignment);
        match tokio::time::timeout(per_try, asked).await {
            Ok(Ok(view)) => match pending.judge(&view) {
                ServiceVerdict::Agrees => {
                    journal.confirm_pending(attempt, &view)?;
                    summary.confirmed += 1;
                }
                ServiceVerdict::Lagging => {
                    journal.note_sync_failure(attempt, &format!("service says {}", view.status))?;
                    summary.pending += 1;
                }
                ServiceVerdict::Disagrees { service } => {
                    let mismatch = CommissionError::ConfirmationMismatch {
                        device: format!(
                            "{} {}/{}",
                            pending.device_status,
                            pending.device_hub.as_deref().unwrap_or("-"),
                            pending.device_id.as_deref().unwrap_or("-")
                        ),
                        service,
                    };
                    journal.reject_pending(attempt, &ErrorRecord::from(&mismatch))?;
                    summary.rejected += 1;
                }
            },
            Ok(Err(error)) => {
                journal.note_sync_failure(attempt, &error.to_string())?;
                summary.pending += 1;
            }
            Err(_) => {
                journal.note_sync_failure(attempt, "no answer in time")?;
                summary.pending += 1;
            }
        }
    }
    Ok(summary)
}

/// Best-effort sync before a run; reports what changed on stdout (human mode).
pub async fn auto_sync(
    journal: &Journal,
    status: &Arc<dyn RegistrationStatusSource>,
    output: &Output,
) -> Result<(), CliError> {
    if journal.pending_confirmations()?.is_empty() {
        return Ok(());
    }
    let summary = sync_pending(journal, status, Duration::from_secs(5)).await?;
    if summary.confirmed + summary.rejected > 0 {
        output.info(format!(
            "queued confirmations synced: {} confirmed, {} rejected, {} still queued",
            summary.confirmed, summary.rejected, summary.pending
        ));
    }
    output.event("sync", &summary);
    Ok(())
}
