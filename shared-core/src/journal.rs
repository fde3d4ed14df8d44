//! The commissioning journal: a local SQLite database (WAL) that records every attempt and
//! every batch, so that nothing is lost when the installer's process dies.
//!
//! What it records:
//! - **attempts** ([`AttemptRecord`]): who (installer identity and profile), when, which device
//!   (registration ID), which DPS instance, each step with its timing, round trips and bytes
//!   over the air, the result or the error code;
//! - **batches** ([`BatchRecord`], [`BatchItem`]): a batch id, its device list and each device's
//!   status (`pending`, `in_flight`, `succeeded`, `failed`);
//! - **queued confirmations** ([`PendingConfirmation`]): a device confirmed its registration over
//!   BLE but the registration-status source could not be reached; the confirmation is synced
//!   later ([`Journal::pending_confirmations`], [`Journal::confirm_pending`]).
//!
//! # The crash rules (`kill -9` loses nothing)
//! 1. **Started before touched.** [`Journal::begin_attempt`] commits the attempt and marks its
//!    batch item `in_flight` *before* the shell touches the device (scan, connect, ticket).
//! 2. **Done atomically after.** [`Journal::finish_attempt`] writes the outcome, the step timings,
//!    the batch item's new status and (if any) the queued confirmation in one transaction.
//! 3. **Resume never touches done devices.** [`Journal::resume_plan`] returns
//!    [`ResumeAction::Skip`] for `succeeded` items, [`ResumeAction::Commission`] for `pending`
//!    (and failed-but-retryable) items, and [`ResumeAction::Recheck`] for items that were
//!    `in_flight` when the process died: their open attempt is marked `interrupted`, and the
//!    shell must first ask what state the device is really in (the registration-status source
//!    with the recorded assignment, then a fresh handshake whose `DeviceInfo` tells whether the
//!    device already holds a ticket, in which case the workflow only resyncs with `GetStatus` and
//!    never pushes a second ticket). It must not blindly re-commission.
//!
//! Every write is one SQLite transaction with `synchronous = FULL`, so a committed step survives
//! a crash of the process and of the machine. The journal never stores secrets: no PoP, no
//! manual code, no Wi-Fi passphrase, no token. A batch records the *path and digest* of its
//! payload file; resuming re-reads that file.

mod attempts;
mod batches;
mod confirmations;
mod schema;
mod types;

use std::{
    path::{Path, PathBuf},
    sync::{Arc, Mutex, MutexGuard, PoisonError},
};

use rusqlite::Connection;

pub use self::types::{
    AssignmentRecord, AttemptId, AttemptOutcome, AttemptQuery, AttemptRecord, AttemptResult,
    BatchCounts, BatchItem, BatchItemRef, BatchRecord, Confirmation, ConfirmationDisagreement,
    DeviceSide, ErrorRecord, Installer, ItemStatus, NewAttempt, NewBatch, PendingConfirmation,
    ResumeAction, ResumeStep, ServiceVerdict, StepRecord,
};

/// Wall clock in unix milliseconds (injected so tests can control time).
pub type WallClockMs = Arc<dyn Fn() -> i64 + Send + Sync>;

/// The system clock as a [`WallClockMs`].
pub fn system_clock_ms() -> WallClockMs {
    Arc::new(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
    })
}

/// Failures of the journal.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JournalError {
    /// SQLite reported an error (disk full, locked for too long, corrupt file, ...).
    #[error("journal database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The journal file could not be opened or created.
    #[error("cannot open the journal at {path}: {detail}")]
    Open {
        /// The file.
        path: PathBuf,
        /// Why.
        detail: String,
    },
    /// The file was written by a newer fieldlink.
    #[error(
        "the journal uses schema version {found}, newer than this fieldlink supports \
         ({supported}); update fieldlink"
    )]
    NewerSchema {
        /// Version in the file.
        found: i64,
        /// Newest version this build knows.
        supported: i64,
    },
    /// No batch with this id.
    #[error("no batch with id {0}")]
    UnknownBatch(String),
    /// No attempt with this id.
    #[error("no attempt with id {0}")]
    UnknownAttempt(i64),
    /// Another live process is running this batch.
    #[error("batch {batch_id} is being run by process {pid}; wait for it to finish")]
    BatchBusy {
        /// The batch.
        batch_id: String,
        /// The process running it.
        pid: u32,
    },
    /// A stored value could not be read back (hand-edited or corrupt file).
    #[error("unreadable journal record: {0}")]
    Corrupt(String),
}

impl JournalError {
    /// Stable snake_case code.
    pub fn code(&self) -> &'static str {
        match self {
            JournalError::Sqlite(_) | JournalError::Corrupt(_) => "journal_error",
            JournalError::Open { .. } => "journal_unavailable",
            JournalError::NewerSchema { .. } => "journal_too_new",
            JournalError::UnknownBatch(_) => "unknown_batch",
            JournalError::UnknownAttempt(_) => "unknown_attempt",
            JournalError::BatchBusy { .. } => "batch_busy",
        }
    }
}

/// The commissioning journal. Cheap to share (`Arc<Journal>`); every method is one short
/// transaction, safe to call from many tasks.
pub struct Journal {
    conn: Mutex<Connection>,
    clock: WallClockMs,
    path: PathBuf,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Journal {
    /// Opens (or creates) the journal at `path`, creating missing parent directories, and
    /// migrates its schema.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, JournalError> {
        Self::open_with_clock(path, system_clock_ms())
    }

    /// [`open`](Self::open) with another clock.
    pub fn open_with_clock(
        path: impl AsRef<Path>,
        clock: WallClockMs,
    ) -> Result<Self, JournalError> {
        let path = path.as_ref().to_path_buf();
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|error| JournalError::Open {
                path: path.clone(),
                detail: error.to_string(),
            })?;
        }
        let mut conn = Connection::open(&path).map_err(|error| JournalError::Open {
            path: path.clone(),
            detail: error.to_string(),
        })?;
        schema::configure(&conn)?;
        schema::migrate(&mut conn)?;
        Ok(Self {
            conn: Mutex::new(conn),
            clock,
            path,
        })
    }

    /// Where the journal lives.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn now(&self) -> i64 {
        (self.clock)()
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave a half-written transaction behind: an
        // unfinished rusqlite transaction rolls back when dropped.
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests;
