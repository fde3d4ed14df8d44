//! One journalled commissioning: the glue between the core's [`Commissioner`], its
//! [`Journal`] and a progress sink. The workflow itself is entirely the core's.
//!
//! The journal's rules are followed as `docs` and `journal.rs` state them: the attempt is
//! recorded before the device is touched, the assignment before its ticket is pushed (the
//! [`JournalledAssignments`] wrapper), and the outcome in one transaction afterwards.

use std::{
    sync::{Arc, Mutex, PoisonError},
    time::Instant,
};

use async_trait::async_trait;
use fieldlink_core::{
    assignment::{Assignment, AssignmentSource, ServiceError},
    journal::{
        AssignmentRecord, AttemptId, AttemptOutcome, BatchItemRef, Installer, Journal, NewAttempt,
        StepRecord,
    },
    workflow::{Commissioner, ProgressEvent, ProgressKind},
};
use tokio_util::sync::CancellationToken;

use crate::{
    dto::{
        progress::ProgressUpdate,
        result::{AssignmentSummary, CommissionResult},
    },
    error::CommandError,
    label::OnboardingCode,
    site::Site,
};

/// Records the assignment in the journal before the workflow can push its ticket, and keeps it
/// for the result (the core's report does not carry the DPS instance and ID scope).
struct JournalledAssignments {
    inner: Arc<dyn AssignmentSource>,
    journal: Arc<Journal>,
    attempt: AttemptId,
    last: Mutex<Option<Assignment>>,
}

#[async_trait]
impl AssignmentSource for JournalledAssignments {
    async fn assignment(&self, registration_id: String) -> Result<Assignment, ServiceError> {
        let assignment = self.inner.assignment(registration_id).await?;
        self.journal
            .record_assignment(self.attempt, &AssignmentRecord::of(&assignment))
            .map_err(|error| ServiceError::Unavailable {
                detail: format!("the journal could not record the assignment: {error}"),
            })?;
        *self.last.lock().unwrap_or_else(PoisonError::into_inner) = Some(assignment.clone());
        Ok(assignment)
    }
}

/// Step timings collected from progress events, for the journal's record of a failure (the
/// core's error carries none).
#[derive(Default)]
struct StepLog {
    steps: Vec<StepRecord>,
}

impl StepLog {
    fn note(&mut self, event: &ProgressEvent) {
        let name = event.step.as_str();
        let index = match self.steps.iter().position(|step| step.step == name) {
            Some(index) => index,
            None => {
                self.steps.push(StepRecord {
                    step: name.to_owned(),
                    started_ms: event.at_ms,
                    finished_ms: event.at_ms,
                    attempts: 0,
                });
                self.steps.len() - 1
            }
        };
        let step = &mut self.steps[index];
        step.finished_ms = event.at_ms;
        if event.kind == ProgressKind::Started {
            step.attempts += 1;
        }
    }
}

/// Where one commissioning runs and who runs it.
#[derive(Clone)]
pub struct Run {
    /// The site.
    pub site: Arc<Site>,
    /// The journal.
    pub journal: Arc<Journal>,
    /// Who.
    pub installer: Installer,
}

impl Run {
    /// Commissions the device `code` names, journalled (as `batch_item` of a batch, if given),
    /// sending every progress event to `on_progress`.
    pub async fn commission(
        &self,
        code: OnboardingCode,
        batch_item: Option<BatchItemRef>,
        on_progress: Arc<dyn Fn(ProgressUpdate) + Send + Sync>,
        cancel: CancellationToken,
    ) -> Result<CommissionResult, CommandError> {
        let services = self.site.services()?;
        let transport = self.site.transport().await?;
        let manual = code.registration_id().is_none();
        let attempt = self.journal.begin_attempt(&NewAttempt {
            registration_id: code.registration_id().unwrap_or_default().to_owned(),
            installer: self.installer.clone(),
            batch_item,
            transport: self.site.transport_name().to_owned(),
        })?;
        let assignments = Arc::new(JournalledAssignments {
            inner: services.assignments,
            journal: Arc::clone(&self.journal),
            attempt,
            last: Mutex::new(None),
        });
        let commissioner = Commissioner::new(transport, assignments.clone(), services.status)
            .with_config(self.site.config());
        let log = Arc::new(Mutex::new(StepLog::default()));
        let listener = {
            let log = Arc::clone(&log);
            move |event: ProgressEvent| {
                log.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .note(&event);
                on_progress(event.into());
            }
        };
        let started = Instant::now();
        let outcome = commissioner
            .commission(code.into_request(), &listener, cancel)
            .await;
        let elapsed = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let journalled = match &outcome {
            Ok(report) => {
                if manual {
                    self.note(
                        self.journal
                            .set_registration_id(attempt, &report.registration_id),
                    );
                }
                self.journal
                    .finish_attempt(attempt, &AttemptOutcome::confirmed(report))
            }
            Err(error) => {
                let steps =
                    std::mem::take(&mut log.lock().unwrap_or_else(PoisonError::into_inner).steps);
                self.journal
                    .finish_attempt(attempt, &AttemptOutcome::failed(error, steps, elapsed))
            }
        };
        self.note(journalled);
        let assignment = assignments
            .last
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map(AssignmentSummary::from);
        match outcome {
            Ok(report) => Ok(CommissionResult::new(attempt.0, report, assignment)),
            Err(error) => Err(error.into()),
        }
    }

    /// A journal write that failed after the device was touched: the outcome the UI gets is
    /// still the device's real one, so report the journal problem without hiding it.
    fn note<E: std::fmt::Display>(&self, result: Result<(), E>) {
        if let Err(error) = result {
            tracing::error!(%error, "the journal could not record a commissioning outcome");
        }
    }
}
