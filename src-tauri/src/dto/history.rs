//! The journal's records, as the History and Batch screens show them.

use fieldlink_core::journal::{
    AttemptRecord, BatchCounts, BatchItem, BatchRecord, ItemStatus, StepRecord,
};
use serde::{Deserialize, Serialize};
use ts_rs::TS;

use super::result::LinkTotals;

/// One step's timing as journalled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
pub struct StepEntry {
    /// Step name.
    pub step: String,
    /// Start, ms since the attempt started.
    #[ts(type = "number")]
    pub started_ms: u64,
    /// End.
    #[ts(type = "number")]
    pub finished_ms: u64,
    /// Starts.
    pub attempts: u32,
}

impl From<StepRecord> for StepEntry {
    fn from(record: StepRecord) -> Self {
        let StepRecord {
            step,
            started_ms,
            finished_ms,
            attempts,
        } = record;
        Self {
            step,
            started_ms,
            finished_ms,
            attempts,
        }
    }
}

/// One journalled attempt (the core's [`AttemptRecord`]).
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
pub struct AttemptEntry {
    /// Attempt id.
    #[ts(type = "number")]
    pub id: i64,
    /// The device.
    pub registration_id: String,
    /// Installer identity.
    pub installer: String,
    /// Profile.
    pub profile: String,
    /// Transport.
    pub transport: String,
    /// Batch, if any.
    pub batch_id: Option<String>,
    /// Position in the batch.
    pub batch_position: Option<u32>,
    /// Start, unix ms.
    #[ts(type = "number")]
    pub started_at_ms: i64,
    /// End, unix ms; `null` while open.
    #[ts(type = "number | null")]
    pub finished_at_ms: Option<i64>,
    /// `succeeded`, `failed`, `interrupted`, or `null` while open.
    pub outcome: Option<String>,
    /// `confirmed` or `queued`.
    pub confirmation: Option<String>,
    /// DPS instance.
    pub dps_instance: Option<String>,
    /// DPS ID scope.
    pub id_scope: Option<String>,
    /// Assigned hub.
    pub assigned_hub: Option<String>,
    /// Device ID.
    pub device_id: Option<String>,
    /// Error code.
    pub error_code: Option<String>,
    /// Error message.
    pub error_message: Option<String>,
    /// Whether the failure is retryable.
    pub retryable: Option<bool>,
    /// Duration, ms.
    #[ts(type = "number | null")]
    pub total_ms: Option<u64>,
    /// ATT MTU.
    pub mtu: Option<u16>,
    /// Resumes.
    pub resumes: Option<u32>,
    /// Link counters.
    pub link: Option<LinkTotals>,
    /// Re-check note.
    pub recheck: Option<String>,
    /// Step timings.
    pub steps: Vec<StepEntry>,
}

impl From<AttemptRecord> for AttemptEntry {
    fn from(record: AttemptRecord) -> Self {
        let AttemptRecord {
            id,
            registration_id,
            installer,
            profile,
            transport,
            batch_id,
            batch_position,
            started_at_ms,
            finished_at_ms,
            outcome,
            confirmation,
            dps_instance,
            id_scope,
            assigned_hub,
            device_id,
            error_code,
            error_message,
            retryable,
            total_ms,
            mtu,
            resumes,
            link,
            recheck,
            steps,
        } = record;
        Self {
            id,
            registration_id,
            installer,
            profile,
            transport,
            batch_id,
            batch_position,
            started_at_ms,
            finished_at_ms,
            outcome,
            confirmation,
            dps_instance,
            id_scope,
            assigned_hub,
            device_id,
            error_code,
            error_message,
            retryable,
            total_ms,
            mtu,
            resumes,
            link: link.map(LinkTotals::from),
            recheck,
            steps: steps.into_iter().map(StepEntry::from).collect(),
        }
    }
}

/// Which attempts to list, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, TS)]
pub struct HistoryQuery {
    /// Only this device.
    pub registration_id: Option<String>,
    /// Only this batch.
    pub batch_id: Option<String>,
    /// At most this many.
    pub limit: Option<u32>,
}

/// The format of an export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum ExportFormat {
    /// One row per attempt.
    Csv,
    /// The attempts as a JSON array.
    Json,
}

/// Where an export went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
pub struct ExportResult {
    /// The file written.
    pub path: String,
    /// Attempts in it.
    pub count: u32,
    /// Its size.
    #[ts(type = "number")]
    pub bytes: u64,
}

/// A batch device's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum BatchItemStatus {
    /// Not started.
    Pending,
    /// Started, not known to be finished.
    InFlight,
    /// Commissioned.
    Succeeded,
    /// The last attempt failed.
    Failed,
}

impl From<ItemStatus> for BatchItemStatus {
    fn from(status: ItemStatus) -> Self {
        match status {
            ItemStatus::Pending => BatchItemStatus::Pending,
            ItemStatus::InFlight => BatchItemStatus::InFlight,
            ItemStatus::Succeeded => BatchItemStatus::Succeeded,
            ItemStatus::Failed => BatchItemStatus::Failed,
        }
    }
}

/// Item counts of a batch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, TS)]
pub struct BatchTally {
    /// Not started.
    pub pending: u32,
    /// In flight.
    pub in_flight: u32,
    /// Commissioned.
    pub succeeded: u32,
    /// Failed.
    pub failed: u32,
}

impl From<BatchCounts> for BatchTally {
    fn from(counts: BatchCounts) -> Self {
        let BatchCounts {
            pending,
            in_flight,
            succeeded,
            failed,
        } = counts;
        Self {
            pending,
            in_flight,
            succeeded,
            failed,
        }
    }
}

/// One batch (the core's [`BatchRecord`]).
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
pub struct BatchEntry {
    /// Batch id.
    pub id: String,
    /// Creation, unix ms.
    #[ts(type = "number")]
    pub created_at_ms: i64,
    /// Installer identity.
    pub installer: String,
    /// Profile.
    pub profile: String,
    /// Where its labels came from.
    pub source: String,
    /// When its last run left nothing to do, unix ms.
    #[ts(type = "number | null")]
    pub closed_at_ms: Option<i64>,
    /// Item counts.
    pub counts: BatchTally,
}

impl From<BatchRecord> for BatchEntry {
    fn from(record: BatchRecord) -> Self {
        let BatchRecord {
            id,
            created_at_ms,
            installer,
            profile,
            source,
            source_digest: _,
            options: _,
            closed_at_ms,
            counts,
        } = record;
        Self {
            id,
            created_at_ms,
            installer,
            profile,
            source,
            closed_at_ms,
            counts: counts.into(),
        }
    }
}

/// One device of a batch (the core's [`BatchItem`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
pub struct BatchItemEntry {
    /// Position in the batch.
    pub position: u32,
    /// The device.
    pub registration_id: String,
    /// Status.
    pub status: BatchItemStatus,
    /// Attempts started.
    pub attempts: u32,
    /// Error code of the last failure.
    pub error_code: Option<String>,
    /// Whether that failure is retryable.
    pub retryable: Option<bool>,
    /// `confirmed`/`queued` once succeeded.
    pub confirmation: Option<String>,
}

impl From<BatchItem> for BatchItemEntry {
    fn from(item: BatchItem) -> Self {
        let BatchItem {
            batch_id: _,
            position,
            registration_id,
            status,
            attempts,
            last_attempt_id: _,
            error_code,
            retryable,
            confirmation,
        } = item;
        Self {
            position,
            registration_id,
            status: status.into(),
            attempts,
            error_code,
            retryable,
            confirmation,
        }
    }
}
