//! Runs commissionings: one device ([`Engine::run`]) or many in parallel ([`Engine::run_all`]),
//! journaling each attempt by the crash rules of `fieldlink_core::journal`.

use std::{
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

use fieldlink_core::{
    CommissionError, Step,
    error::NetworkFailureKind,
    journal::{
        AssignmentRecord, AttemptOutcome, BatchItemRef, Confirmation, ErrorRecord, Installer,
        Journal, NewAttempt,
    },
    workflow::{CommissionRequest, Commissioner, CommissioningConfig, NetworkCorrection},
};
use fieldlink_protocol::message::NetworkConfig;
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::{
    counting::CountingTransport,
    exit::CliError,
    progress::ProgressBoard,
    results::{DeviceResult, DeviceStatus, NetworkReport},
    sources::{Backend, ObservedStatus, RecordingAssignments},
};

/// Supplies corrected network settings after a failed join (the demo's scripted site, or a
/// prompt). Called with the typed failure and the attempt number.
pub type CorrectionSupplier =
    Arc<dyn Fn(NetworkFailureKind, u32) -> Option<NetworkConfig> + Send + Sync>;

/// One device to commission.
#[derive(Clone)]
pub struct Job {
    /// Display name (the registration ID, or `manual:<first digits>`).
    pub label: String,
    /// The request.
    pub request: CommissionRequest,
    /// Its batch item, in a batch.
    pub batch_item: Option<BatchItemRef>,
    /// Set when resuming an item that was in flight when its process died.
    pub recheck: Option<Recheck>,
    /// Corrections after a failed network join.
    pub correction: Option<CorrectionSupplier>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("label", &self.label)
            .field("request", &self.request)
            .field("batch_item", &self.batch_item)
            .field("recheck", &self.recheck)
            .field("correction", &self.correction.is_some())
            .finish()
    }
}

/// What the interrupted attempt of a resumed item had obtained.
#[derive(Debug, Clone, Default)]
pub struct Recheck {
    /// Its assignment, if it got that far.
    pub assignment: Option<AssignmentRecord>,
}

/// Runs commissionings over one backend.
pub struct Engine {
    /// Radio and sources.
    pub backend: Backend,
    /// Workflow settings.
    pub config: CommissioningConfig,
    /// The journal (`None` for the demo).
    pub journal: Option<Arc<Journal>>,
    /// Who.
    pub installer: Installer,
}

struct RecordingCorrection {
    supplier: CorrectionSupplier,
    failures: Mutex<Vec<String>>,
}

#[async_trait::async_trait]
impl NetworkCorrection for RecordingCorrection {
    async fn corrected_network(
        &self,
        kind: NetworkFailureKind,
        attempt: u32,
    ) -> Option<NetworkConfig> {
        self.failures
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(kind.as_str().to_owned());
        (self.supplier)(kind, attempt)
    }
}

fn ssid_of(network: Option<&NetworkConfig>) -> Option<String> {
    match network {
        Some(NetworkConfig::Wifi { ssid, .. }) => Some(ssid.clone()),
        _ => None,
    }
}

/// Whether a failed attempt is really "the device is done, the status service is away": the
/// device reported its DPS registration over BLE, and the status source answered "unavailable".
fn confirmation_deferred(
    error: &CommissionError,
    registered_over_ble: bool,
    unreachable: u32,
) -> bool {
    registered_over_ble
        && unreachable > 0
        && matches!(
            error,
            CommissionError::ApiUnavailable { .. }
                | CommissionError::Throttled { .. }
                | CommissionError::Timeout {
                    step: Step::Confirming
                }
        )
}

impl Engine {
    /// Commissions one device. Errors are journal failures only (the run must stop: without
    /// the journal, a crash could lose work); a failed commissioning is a result.
    pub async fn run(
        &self,
        job: Job,
        board: &Arc<ProgressBoard>,
        cancel: CancellationToken,
    ) -> Result<DeviceResult, CliError> {
        let started = Instant::now();
        let known_id = job.request.registration_id.clone();
        // Rule 1: recorded before the device is touched.
        let attempt = match &self.journal {
            Some(journal) => Some(journal.begin_attempt(&NewAttempt {
                registration_id: known_id.clone().unwrap_or_default(),
                installer: self.installer.clone(),
                batch_item: job.batch_item.clone(),
                transport: self.backend.name.clone(),
            })?),
            None => None,
        };
        let service_view = match &job.recheck {
            Some(recheck) => Some(self.ask_service(known_id.as_deref(), recheck).await),
            None => None,
        };

        let counting = CountingTransport::new(Arc::clone(&self.backend.transport));
        let assignments = Arc::new(RecordingAssignments::new(
            Arc::clone(&self.backend.assignments),
            self.journal.clone().zip(attempt),
            known_id.is_some(),
        ));
        let status = Arc::new(ObservedStatus::new(Arc::clone(&self.backend.status)));
        let mut commissioner = Commissioner::new(
            Arc::new(counting.clone()),
            assignments.clone(),
            status.clone(),
        )
        .with_config(self.config);
        let correction = job.correction.map(|supplier| {
            Arc::new(RecordingCorrection {
                supplier,
                failures: Mutex::new(Vec::new()),
            })
        });
        if let Some(correction) = &correction {
            let mut config = self.config;
            config.network_corrections = config.network_corrections.max(2);
            commissioner = commissioner
                .with_config(config)
                .with_network_correction(correction.clone());
        }
        let first_ssid = ssid_of(job.request.network.as_ref());
        let progress = board.device(&job.label);
        let outcome = commissioner
            .commission(job.request, &progress, cancel)
            .await;
        progress.finish();
        let log = progress.log();
        let total_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let captured = assignments.captured();
        let registration_id = known_id
            .clone()
            .or_else(|| outcome.as_ref().ok().map(|r| r.registration_id.clone()))
            .unwrap_or_default();

        let recheck = service_view.map(|service| {
            let device = log.resumed_from.as_deref().unwrap_or("commissionable");
            format!("service {service}, device {device}")
        });
        let failures = correction
            .map(|c| {
                c.failures
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .clone()
            })
            .unwrap_or_default();
        let network = first_ssid.map(|ssid| NetworkReport {
            ssid: Some(ssid),
            failures,
            configured: outcome.as_ref().is_ok_and(|r| r.network_configured),
        });

        let (journaled, mut result) = match outcome {
            Ok(report) => {
                let mut journaled = AttemptOutcome::confirmed(&report);
                journaled.recheck = recheck.clone();
                let result = DeviceResult {
                    registration_id: report.registration_id.clone(),
                    status: DeviceStatus::Succeeded,
                    confirmation: Some(Confirmation::Confirmed.as_str().to_owned()),
                    dps_instance: captured.as_ref().map(|a| a.dps_instance.clone()),
                    assigned_hub: report.device.assigned_hub.clone(),
                    device_id: report.device.device_id.clone(),
                    total_ms,
                    mtu: Some(report.mtu),
                    resumes: report.resumes,
                    steps: journaled.steps.clone(),
                    ..DeviceResult::skipped(&report.registration_id, "")
                }
                .with_link(&report.link);
                (journaled, result)
            }
            Err(error)
                if captured.is_some()
                    && confirmation_deferred(
                        &error,
                        log.registered_over_ble,
                        status.unreachable_answers(),
                    ) =>
            {
                let mut journaled = AttemptOutcome::queued(log.steps.clone(), total_ms)
                    .with_link(counting.counters());
                if let Some(report) = &log.device_report {
                    journaled = journaled.with_device_report(report);
                }
                journaled.mtu = log.mtu;
                journaled.recheck = recheck.clone();
                let result = DeviceResult {
                    status: DeviceStatus::Succeeded,
                    confirmation: Some(Confirmation::Queued.as_str().to_owned()),
                    dps_instance: captured.as_ref().map(|a| a.dps_instance.clone()),
                    assigned_hub: journaled.assigned_hub.clone(),
                    device_id: journaled.device_id.clone(),
                    total_ms,
                    mtu: log.mtu,
                    steps: log.steps.clone(),
                    ..DeviceResult::skipped(&registration_id, "")
                }
                .with_link(&counting.counters());
                (journaled, result)
            }
            Err(error) => {
                let mut journaled = AttemptOutcome::failed(&error, log.steps.clone(), total_ms)
                    .with_link(counting.counters());
                journaled.mtu = log.mtu;
                journaled.recheck = recheck.clone();
                let result = DeviceResult {
                    status: DeviceStatus::Failed,
                    dps_instance: captured.as_ref().map(|a| a.dps_instance.clone()),
                    total_ms,
                    mtu: log.mtu,
                    steps: log.steps.clone(),
                    error: Some(ErrorRecord::from(&error)),
                    ..DeviceResult::skipped(&registration_id, "")
                }
                .with_link(&counting.counters());
                (journaled, result)
            }
        };
        result.recheck = recheck;
        result.network = network;
        result.attempt_id = attempt.map(|a| a.0);
        // Rule 2: done, atomically, after.
        if let (Some(journal), Some(attempt)) = (&self.journal, attempt) {
            journal.finish_attempt(attempt, &journaled)?;
        }
        board.device_done(&result);
        Ok(result)
    }

    /// What the status source says about an interrupted device (before touching it again).
    async fn ask_service(&self, registration_id: Option<&str>, recheck: &Recheck) -> String {
        let Some(assignment) = recheck.assignment.as_ref().and_then(|a| a.to_assignment()) else {
            return "not asked (no assignment was obtained)".into();
        };
        let Some(registration_id) = registration_id else {
            return "not asked (registration ID unknown)".into();
        };
        let asked = self
            .backend
            .status
            .registration_status(registration_id.to_owned(), assignment);
        match tokio::time::timeout(Duration::from_secs(10), asked).await {
            Ok(Ok(view)) => view.status,
            Ok(Err(error)) => format!("unreachable ({error})"),
            Err(_) => "unreachable (no answer in time)".into(),
        }
    }

    /// Commissions `jobs` with at most `parallel` at once; results in job order. Stops
    /// starting devices after Ctrl-C (they are reported skipped) or a journal failure (the
    /// error is returned once the running ones are done).
    pub async fn run_all(
        self: &Arc<Self>,
        jobs: Vec<Job>,
        parallel: usize,
        board: &Arc<ProgressBoard>,
        cancel: &CancellationToken,
    ) -> Result<Vec<DeviceResult>, CliError> {
        let abort = CancellationToken::new();
        let outcomes: Vec<(usize, Result<DeviceResult, CliError>)> =
            futures::stream::iter(jobs.into_iter().enumerate())
                .map(|(index, job)| {
                    let engine = Arc::clone(self);
                    let board = Arc::clone(board);
                    let cancel = cancel.clone();
                    let abort = abort.clone();
                    async move {
                        if cancel.is_cancelled() || abort.is_cancelled() {
                            let label = job.request.registration_id.unwrap_or(job.label);
                            return (index, Ok(DeviceResult::skipped(&label, "run stopped")));
                        }
                        let running =
                            tokio::spawn(async move { engine.run(job, &board, cancel).await });
                        let outcome = running.await.unwrap_or_else(|error| {
                            Err(CliError::internal(format!(
                                "a commissioning task failed: {error}"
                            )))
                        });
                        if outcome.is_err() {
                            abort.cancel();
                        }
                        (index, outcome)
                    }
                })
                .buffer_unordered(parallel.max(1))
                .collect()
                .await;
        let mut ordered: Vec<Option<DeviceResult>> = Vec::new();
        ordered.resize_with(outcomes.len(), || None);
        let mut failure = None;
        for (index, outcome) in outcomes {
            match outcome {
                Ok(result) => ordered[index] = Some(result),
                Err(error) => failure = failure.or(Some(error)),
            }
        }
        if let Some(error) = failure {
            return Err(error);
        }
        Ok(ordered.into_iter().flatten().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_service_outage_after_the_device_registered_defers_confirmation() {
        let outage = CommissionError::ApiUnavailable {
            detail: "connection refused".into(),
        };
        assert!(confirmation_deferred(&outage, true, 3));
        assert!(!confirmation_deferred(&outage, false, 3), "device not done");
        assert!(
            !confirmation_deferred(&outage, true, 0),
            "the ticket fetch failed"
        );
        let mismatch = CommissionError::ConfirmationMismatch {
            device: "a".into(),
            service: "b".into(),
        };
        assert!(!confirmation_deferred(&mismatch, true, 3));
        let slow = CommissionError::Timeout {
            step: Step::Confirming,
        };
        assert!(confirmation_deferred(&slow, true, 1));
    }
}
