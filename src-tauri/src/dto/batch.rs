//! Batch commissioning: many labels, in parallel, journalled as one batch.

use serde::{Deserialize, Serialize};
use ts_rs::TS;

use super::{history::BatchTally, progress::ProgressUpdate, result::CommissionResult};
use crate::error::CommandError;

/// A batch to start.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, TS)]
pub struct BatchRequest {
    /// The onboarding codes (QR label text or manual codes), one per device. Blank entries and
    /// `#` comments are ignored.
    pub labels: Vec<String>,
    /// How many devices to commission at once (1..=32).
    pub concurrency: u32,
    /// The file the labels were read from, if any (recorded so a resume can name it).
    pub source_path: Option<String>,
}

/// What happened to one device of a running batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum BatchEvent {
    /// The batch was created; `positions` devices will be reported on.
    Planned {
        /// The journal's batch id.
        batch_id: String,
        /// The devices, in order (registration ID, or `null` for a manual code).
        registration_ids: Vec<Option<String>>,
    },
    /// This device's commissioning started.
    Started {
        /// Position in the batch.
        position: u32,
    },
    /// Progress of this device.
    Progress {
        /// Position in the batch.
        position: u32,
        /// The event.
        update: ProgressUpdate,
    },
    /// This device is commissioned.
    Succeeded {
        /// Position in the batch.
        position: u32,
        /// The result.
        result: Box<CommissionResult>,
    },
    /// This device failed.
    Failed {
        /// Position in the batch.
        position: u32,
        /// Why.
        error: CommandError,
    },
    /// Not touched: already done (resume) or not retryable.
    Skipped {
        /// Position in the batch.
        position: u32,
    },
}

/// How a batch run ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
pub struct BatchSummary {
    /// The journal's batch id.
    pub batch_id: String,
    /// Item counts after the run.
    pub counts: BatchTally,
    /// Whether the run was cancelled.
    pub cancelled: bool,
    /// Wall time of the run, ms.
    #[ts(type = "number")]
    pub total_ms: u64,
}
