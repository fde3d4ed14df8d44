//! The commissioning history: the core's journal records as records, and the small glue that
//! journals the assignment an attempt obtains.

use std::sync::Arc;

use async_trait::async_trait;
use fieldlink_core::{
    assignment::{Assignment, AssignmentSource, ServiceError},
    journal::{AssignmentRecord, AttemptId, AttemptRecord, Journal, StepRecord},
};

use crate::{error::FieldlinkError, report::LinkCounters};

/// One step of a journaled attempt.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct HistoryStep {
    /// Stable step name (`scanning`, `connecting`, ...).
    pub step: String,
    /// Start, ms since the attempt started.
    pub started_ms: u64,
    /// End, ms since the attempt started.
    pub finished_ms: u64,
    /// How many times it started.
    pub attempts: u32,
}

impl From<StepRecord> for HistoryStep {
    fn from(step: StepRecord) -> Self {
        Self {
            step: step.step,
            started_ms: step.started_ms,
            finished_ms: step.finished_ms,
            attempts: step.attempts,
        }
    }
}

/// One journaled commissioning attempt.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct HistoryEntry {
    /// Attempt id.
    pub id: i64,
    /// The device.
    pub registration_id: String,
    /// Installer identity.
    pub installer: String,
    /// Profile name.
    pub profile: String,
    /// Start (unix ms).
    pub started_at_ms: i64,
    /// End (unix ms); `None` while open or when the app died mid-attempt.
    pub finished_at_ms: Option<i64>,
    /// `succeeded`, `failed`, `interrupted`, or `None` while open.
    pub outcome: Option<String>,
    /// `confirmed` or `queued` for successes.
    pub confirmation: Option<String>,
    /// DPS instance of the assignment.
    pub dps_instance: Option<String>,
    /// Assigned IoT hub.
    pub assigned_hub: Option<String>,
    /// Device ID in the hub.
    pub device_id: Option<String>,
    /// Stable error code for failures.
    pub error_code: Option<String>,
    /// Error message for failures.
    pub error_message: Option<String>,
    /// Whether the failure is retryable.
    pub retryable: Option<bool>,
    /// Duration, ms.
    pub total_ms: Option<u64>,
    /// ATT MTU.
    pub mtu: Option<u16>,
    /// Reconnect-and-resume cycles.
    pub resumes: Option<u32>,
    /// Link counters.
    pub link: Option<LinkCounters>,
    /// Step timings.
    pub steps: Vec<HistoryStep>,
}

impl From<AttemptRecord> for HistoryEntry {
    fn from(record: AttemptRecord) -> Self {
        Self {
            id: record.id,
            registration_id: record.registration_id,
            installer: record.installer,
            profile: record.profile,
            started_at_ms: record.started_at_ms,
            finished_at_ms: record.finished_at_ms,
            outcome: record.outcome,
            confirmation: record.confirmation,
            dps_instance: record.dps_instance,
            assigned_hub: record.assigned_hub,
            device_id: record.device_id,
            error_code: record.error_code,
            error_message: record.error_message,
            retryable: record.retryable,
            total_ms: record.total_ms,
            mtu: record.mtu,
            resumes: record.resumes,
            link: record.link.map(Into::into),
            steps: record.steps.into_iter().map(Into::into).collect(),
        }
    }
}

/// Journals every assignment the core fetches for one attempt (the journal's "record the
/// assignment before the ticket is pushed" rule), then hands it on unchanged.
pub(crate) struct RecordingAssignments {
    inner: Arc<dyn AssignmentSource>,
    journal: Arc<Journal>,
    attempt: AttemptId,
}

impl RecordingAssignments {
    pub(crate) fn new(
        inner: Arc<dyn AssignmentSource>,
        journal: Arc<Journal>,
        attempt: AttemptId,
    ) -> Self {
        Self {
            inner,
            journal,
            attempt,
        }
    }
}

#[async_trait]
impl AssignmentSource for RecordingAssignments {
    async fn assignment(&self, registration_id: String) -> Result<Assignment, ServiceError> {
        let assignment = self.inner.assignment(registration_id.clone()).await?;
        let journaled = self
            .journal
            .set_registration_id(self.attempt, &registration_id)
            .and_then(|()| {
                self.journal
                    .record_assignment(self.attempt, &AssignmentRecord::of(&assignment))
            });
        if let Err(error) = journaled {
            // The history loses this attempt's assignment; the commissioning goes on.
            tracing::warn!(code = error.code(), "cannot journal the assignment");
        }
        Ok(assignment)
    }
}

/// The assignment of the newest journaled attempt for `registration_id` that has one.
pub(crate) fn latest_assignment(
    journal: &Journal,
    registration_id: &str,
) -> Result<Assignment, FieldlinkError> {
    journal.latest_assignment(registration_id)?.ok_or_else(|| {
        FieldlinkError::invalid_argument(format!(
            "no journaled assignment for {registration_id}: commission it from this app first"
        ))
    })
}
