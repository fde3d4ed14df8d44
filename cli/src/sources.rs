//! Where one invocation gets its radio, tickets and registration status ([`Backend`]), plus two
//! per-attempt wrappers: [`RecordingAssignments`] journals the assignment *before* the ticket
//! can reach the device, and [`ObservedStatus`] notices an unreachable status source (for
//! queued confirmations).
//!
//! Today a backend is the in-process stack (`demo`) or a running sandbox (fleet socket +
//! bridge). The provisioning-API client plugs in as one more [`Backend`] constructor: an HTTP
//! `AssignmentSource` + `RegistrationStatusSource` next to the btleplug transport.

use std::sync::{
    Arc, Mutex, PoisonError,
    atomic::{AtomicU32, Ordering},
};

use async_trait::async_trait;
use fieldlink_core::{
    assignment::{
        Assignment, AssignmentSource, RegistrationStatusSource, RegistrationView, ServiceError,
    },
    journal::{AssignmentRecord, AttemptId, Journal},
    transport::BleTransport,
};

/// Radio, ticket source and status source of one invocation.
#[derive(Clone)]
pub struct Backend {
    /// Short name recorded in the journal (`memory`, `sandbox`, `bluez`).
    pub name: String,
    /// The radio.
    pub transport: Arc<dyn BleTransport>,
    /// Tickets.
    pub assignments: Arc<dyn AssignmentSource>,
    /// Registration status.
    pub status: Arc<dyn RegistrationStatusSource>,
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backend")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// Journals each assignment before handing it to the workflow, and remembers it.
pub struct RecordingAssignments {
    inner: Arc<dyn AssignmentSource>,
    journal: Option<(Arc<Journal>, AttemptId)>,
    known_registration_id: bool,
    captured: Mutex<Option<Assignment>>,
}

impl RecordingAssignments {
    /// Wraps `inner` for one attempt. `known_registration_id` is false for manual codes (the
    /// registration ID is then learnt from the device and written to the journal here).
    pub fn new(
        inner: Arc<dyn AssignmentSource>,
        journal: Option<(Arc<Journal>, AttemptId)>,
        known_registration_id: bool,
    ) -> Self {
        Self {
            inner,
            journal,
            known_registration_id,
            captured: Mutex::new(None),
        }
    }

    /// The assignment obtained, if any.
    pub fn captured(&self) -> Option<Assignment> {
        self.captured
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

#[async_trait]
impl AssignmentSource for RecordingAssignments {
    async fn assignment(&self, registration_id: String) -> Result<Assignment, ServiceError> {
        let assignment = self.inner.assignment(registration_id.clone()).await?;
        if let Some((journal, attempt)) = &self.journal {
            // The ticket must not reach the device unless the journal knows about it: a resume
            // needs the assignment to ask the status source what became of the device.
            let recorded = if self.known_registration_id {
                Ok(())
            } else {
                journal.set_registration_id(*attempt, &registration_id)
            }
            .and_then(|()| journal.record_assignment(*attempt, &AssignmentRecord::of(&assignment)));
            if let Err(error) = recorded {
                return Err(ServiceError::Unavailable {
                    detail: format!("the journal cannot record the assignment: {error}"),
                });
            }
        }
        *self.captured.lock().unwrap_or_else(PoisonError::into_inner) = Some(assignment.clone());
        Ok(assignment)
    }
}

/// Counts the status source's "unreachable" answers.
pub struct ObservedStatus {
    inner: Arc<dyn RegistrationStatusSource>,
    unreachable: AtomicU32,
}

impl ObservedStatus {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn RegistrationStatusSource>) -> Self {
        Self {
            inner,
            unreachable: AtomicU32::new(0),
        }
    }

    /// How many answers were "unavailable" or "throttled".
    pub fn unreachable_answers(&self) -> u32 {
        self.unreachable.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl RegistrationStatusSource for ObservedStatus {
    async fn registration_status(
        &self,
        registration_id: String,
        assignment: Assignment,
    ) -> Result<RegistrationView, ServiceError> {
        let answer = self
            .inner
            .registration_status(registration_id, assignment)
            .await;
        if let Err(ServiceError::Unavailable { .. } | ServiceError::Throttled { .. }) = &answer {
            self.unreachable.fetch_add(1, Ordering::SeqCst);
        }
        answer
    }
}
