//! Network join, DPS registration, the fail-safe and rollback.

use fieldlink_protocol::message::{
    ErrorCode, Event, NetworkProgress, NetworkResult, ProtocolError, RegistrationProgress,
    RegistrationStage, Response, SecureMessage, WifiNetwork,
};

use super::{DeviceMachine, Job, JobId, Output, Work, convert, staging};
use crate::dps::{DpsError, DpsProgress, RegistrationOutcome, RegistrationStatus};
use crate::network::{JoinFailure, JoinStage, NetworkError};

impl DeviceMachine {
    /// Starts (or resumes) the work for the staged ticket: the candidate network first, if any,
    /// then DPS.
    pub(super) fn begin_work(&mut self, now_ms: u64, out: &mut Vec<Output>) {
        let Some(staged) = self.state.staged.clone() else {
            return;
        };
        if now_ms >= staged.fail_safe_deadline_ms {
            self.fail_safe_expired(out);
            return;
        }
        match staged.network {
            Some(network) => {
                let id = self.new_job();
                self.work = Work::Joining(id);
                out.push(Output::Start(Job::JoinNetwork {
                    id,
                    network,
                    dps_host: convert::endpoint_host(&staged.global_endpoint),
                    deadline_ms: staged.fail_safe_deadline_ms,
                }));
            }
            None => self.start_registration(out),
        }
    }

    fn start_registration(&mut self, out: &mut Vec<Output>) {
        let Some(staged) = &self.state.staged else {
            return;
        };
        let job = Job::Register {
            id: self.next_job,
            global_endpoint: staged.global_endpoint.clone(),
            id_scope: staged.id_scope.clone(),
            deadline_ms: staged.fail_safe_deadline_ms,
        };
        let id = self.new_job();
        self.work = Work::Registering(id);
        out.push(Output::Start(job));
    }

    pub(super) fn on_network_stage(&mut self, job: JobId, stage: JoinStage, out: &mut Vec<Output>) {
        if self.work != Work::Joining(job) {
            return;
        }
        self.send_event(Event::Network(NetworkProgress { stage }), out);
    }

    pub(super) fn on_network_done(
        &mut self,
        job: JobId,
        result: Result<(), JoinFailure>,
        _now_ms: u64,
        out: &mut Vec<Output>,
    ) {
        if self.work != Work::Joining(job) {
            return;
        }
        self.work = Work::Idle;
        match result {
            Ok(()) => {
                let joined = NetworkResult::Joined { address: None };
                self.last_network = Some(joined.clone());
                self.send_event(Event::NetworkResult(joined), out);
                self.start_registration(out);
            }
            Err(failure) => {
                tracing::info!(
                    code = failure.code(),
                    "network join failed; previous network restored"
                );
                let failed = NetworkResult::Failed {
                    kind: failure.kind(),
                    detail: Some(failure.to_string()),
                };
                self.last_network = Some(failed.clone());
                // The proven config comes back; the ticket stays staged under the fail-safe so a
                // corrected network (ConfigureNetwork or a new Provision) needs no reset.
                out.push(Output::RestoreNetwork(self.state.network.current.clone()));
                self.send_event(Event::NetworkResult(failed), out);
            }
        }
    }

    pub(super) fn on_dps_progress(
        &mut self,
        job: JobId,
        progress: DpsProgress,
        out: &mut Vec<Output>,
    ) {
        if self.work != Work::Registering(job) {
            return;
        }
        let report = match progress {
            DpsProgress::LookingUp => stage(RegistrationStage::StatusLookup, 1, None),
            DpsProgress::Registering => stage(RegistrationStage::Registering, 1, None),
            DpsProgress::Assigning { operation_id } => {
                if let Some(staged) = self.state.staged.as_mut() {
                    staged.operation_id = Some(operation_id);
                    out.push(self.persist());
                }
                stage(RegistrationStage::Assigning, 1, None)
            }
            DpsProgress::Retrying { attempt, delay, .. } => stage(
                RegistrationStage::WaitingToRetry,
                u16::try_from(attempt.saturating_add(1)).unwrap_or(u16::MAX),
                Some(convert::ceil_secs(crate::clock::duration_ms(delay))),
            ),
        };
        self.send_event(Event::Registration(report), out);
    }

    pub(super) fn on_dps_done(
        &mut self,
        job: JobId,
        result: Result<RegistrationOutcome, DpsError>,
        now_ms: u64,
        out: &mut Vec<Output>,
    ) {
        if self.work != Work::Registering(job) {
            return;
        }
        self.work = Work::Idle;
        match result {
            Ok(outcome) => {
                let report = convert::dps_result(&outcome.state);
                match (
                    &outcome.state.status,
                    &outcome.state.assigned_hub,
                    &outcome.state.device_id,
                ) {
                    (RegistrationStatus::Assigned, Some(hub), Some(device_id)) => {
                        self.send_event(
                            Event::Registration(stage(RegistrationStage::Committing, 1, None)),
                            out,
                        );
                        staging::commit(
                            &mut self.state,
                            staging::Assignment {
                                assigned_hub: hub.clone(),
                                device_id: device_id.clone(),
                                substatus: outcome.state.substatus.clone(),
                            },
                            now_ms,
                        );
                        out.push(self.persist());
                        tracing::info!(assigned_hub = %hub, device_id = %device_id, "registered; assignment committed");
                        self.last_attempt_failed = false;
                        self.last_registration = Some(report.clone());
                    }
                    _ => {
                        tracing::info!(
                            status = outcome.state.status.as_str(),
                            "DPS did not assign the device; rolling back"
                        );
                        self.roll_back_now(out);
                        self.last_attempt_failed = true;
                        self.last_registration = Some(report.clone());
                    }
                }
                self.send_event(Event::RegistrationResult(report), out);
            }
            Err(error)
                if matches!(error, DpsError::DeadlineExceeded { .. })
                    || self
                        .state
                        .staged
                        .as_ref()
                        .is_some_and(|staged| now_ms >= staged.fail_safe_deadline_ms) =>
            {
                // The registration's deadline is the fail-safe deadline.
                self.fail_safe_expired(out);
            }
            Err(error) => {
                tracing::info!(%error, "DPS registration did not finish; rolling back");
                let report =
                    convert::unassigned_result(convert::dps_error_code(&error), &error.to_string());
                self.roll_back_now(out);
                self.last_attempt_failed = true;
                self.last_registration = Some(report.clone());
                self.send_event(Event::RegistrationResult(report), out);
            }
        }
    }

    pub(super) fn on_scan_done(
        &mut self,
        job: JobId,
        result: Result<Vec<WifiNetwork>, NetworkError>,
        _now_ms: u64,
        out: &mut Vec<Output>,
    ) {
        let answer = match result {
            Ok(networks) => {
                self.scan_cache = Some(networks.clone());
                Response::Networks(networks)
            }
            Err(error) => Response::Error(ProtocolError::with_message(
                ErrorCode::Internal,
                format!("Wi-Fi scan failed: {error}"),
            )),
        };
        if self.pending_scan == Some(job) {
            self.pending_scan = None;
            self.respond(answer, out);
        }
    }

    pub(super) fn on_tick(&mut self, now_ms: u64, out: &mut Vec<Output>) {
        let expired = self
            .state
            .staged
            .as_ref()
            .is_some_and(|staged| now_ms >= staged.fail_safe_deadline_ms);
        if expired {
            self.fail_safe_expired(out);
        }
    }

    fn fail_safe_expired(&mut self, out: &mut Vec<Output>) {
        let window = self.config.fail_safe_window.as_secs();
        tracing::warn!(
            window_s = window,
            "fail-safe expired; rolling the staged ticket back"
        );
        self.roll_back_now(out);
        self.last_attempt_failed = true;
        let report = convert::unassigned_result(
            ErrorCode::FailSafeExpired,
            &format!(
                "no DPS assignment within the {window} s fail-safe window; the staged ticket was rolled back"
            ),
        );
        self.last_registration = Some(report.clone());
        self.send_event(Event::RegistrationResult(report), out);
    }

    /// Cancels running work and rolls the staging back in one save; restores the proven network
    /// if a candidate was staged.
    pub(super) fn roll_back_now(&mut self, out: &mut Vec<Output>) {
        match self.work {
            Work::Joining(id) | Work::Registering(id) => out.push(Output::Cancel(id)),
            Work::Idle => {}
        }
        self.work = Work::Idle;
        if let Some(staged) = staging::roll_back(&mut self.state) {
            out.push(self.persist());
            if staged.network.is_some() {
                out.push(Output::RestoreNetwork(self.state.network.current.clone()));
            }
        }
    }

    fn send_event(&mut self, event: Event, out: &mut Vec<Output>) {
        self.send_secure(SecureMessage::Event(event), out);
    }
}

fn stage(
    stage: RegistrationStage,
    attempt: u16,
    retry_after_s: Option<u32>,
) -> RegistrationProgress {
    RegistrationProgress {
        stage,
        attempt,
        retry_after_s,
    }
}
