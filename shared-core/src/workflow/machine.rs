//! The transitions behind [`super::state::Commissioning`].

use rand::rngs::StdRng;

use super::{
    progress::{ProgressEvent, ProgressKind},
    report::{CommissioningReport, DeviceRegistration, LinkCounters, StepTimings},
    state::{Action, CommissionRequest, CommissioningConfig, DiscriminatorMatch, Input, State},
    wire::{
        ClientWire, DeviceMessage, DeviceSnapshot, OutgoingRequest, ReportedResult, SnapshotState,
    },
};
use crate::{
    assignment::{Assignment, RegistrationView},
    error::{CommissionError, Step},
    failure,
    retry::Backoff,
    transport::{DiscoveredDevice, PeripheralId, ScanFilter},
};

/// Whether the machine still runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    Running,
    Finished,
}

#[derive(Debug)]
pub(super) struct Machine {
    request: CommissionRequest,
    config: CommissioningConfig,
    rng: StdRng,
    state: State,
    phase: Phase,
    registration_id: Option<String>,
    started_ms: u64,
    overall_deadline: u64,
    step_deadline: Option<u64>,
    timer: Option<u64>,
    assignment: Option<Assignment>,
    wire: Option<ClientWire>,
    peripheral: Option<PeripheralId>,
    connected: bool,
    connect_in_flight: bool,
    mtu: u16,
    ticket_sent: bool,
    ticket_accepted: bool,
    network_sent: bool,
    network_joined: bool,
    device_result: Option<DeviceRegistration>,
    counters: LinkCounters,
    timings: StepTimings,
    resumes: u32,
    backoff: Backoff<StdRng>,
    reconnect_started: Option<u64>,
    corrections: u32,
    awaiting_correction: Option<crate::error::NetworkFailureKind>,
}

fn ms(duration: std::time::Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

impl Machine {
    pub(super) fn new(
        request: CommissionRequest,
        config: CommissioningConfig,
        mut rng: StdRng,
    ) -> Self {
        let backoff_rng = <StdRng as rand::SeedableRng>::from_rng(&mut rng)
            .unwrap_or_else(|_| <StdRng as rand::SeedableRng>::seed_from_u64(0));
        Self {
            registration_id: request.registration_id.clone(),
            backoff: config.reconnect.backoff_with_rng(backoff_rng),
            request,
            config,
            rng,
            state: State::Idle,
            phase: Phase::Running,
            started_ms: 0,
            overall_deadline: u64::MAX,
            step_deadline: None,
            timer: None,
            assignment: None,
            wire: None,
            peripheral: None,
            connected: false,
            connect_in_flight: false,
            mtu: 0,
            ticket_sent: false,
            ticket_accepted: false,
            network_sent: false,
            network_joined: false,
            device_result: None,
            counters: LinkCounters::default(),
            timings: StepTimings::default(),
            resumes: 0,
            reconnect_started: None,
            corrections: 0,
            awaiting_correction: None,
        }
    }

    pub(super) fn state(&self) -> &State {
        &self.state
    }

    pub(super) fn phase(&self) -> Phase {
        self.phase
    }

    pub(super) fn deadline(&self) -> Option<u64> {
        if self.phase == Phase::Finished {
            return None;
        }
        let reassembly = self.wire.as_ref().and_then(ClientWire::deadline);
        [
            Some(self.overall_deadline),
            self.step_deadline,
            self.timer,
            reassembly,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    pub(super) fn start(&mut self, now: u64) -> Vec<Action> {
        let mut actions = Vec::new();
        if self.state != State::Idle {
            return actions;
        }
        self.started_ms = now;
        self.overall_deadline = now.saturating_add(ms(self.config.overall_timeout));
        self.state = State::Scanning;
        self.enter(Step::Scanning, now, &mut actions);
        let discriminator = match self.request.discriminator {
            DiscriminatorMatch::Full(full) => Some(full),
            DiscriminatorMatch::Short(_) => None,
        };
        actions.push(Action::Scan {
            filter: ScanFilter {
                service_uuid: self.config.service_uuid,
                discriminator,
            },
            timeout: self.config.deadlines.scan_window(),
        });
        if let Some(registration_id) = self.registration_id.clone() {
            self.fetch_assignment(registration_id, now, &mut actions);
        }
        actions
    }

    pub(super) fn handle(&mut self, now: u64, input: Input) -> Vec<Action> {
        let mut actions = Vec::new();
        if self.phase == Phase::Finished || self.state == State::Idle {
            return actions;
        }
        match input {
            Input::Cancel => self.fail(CommissionError::Cancelled, &mut actions),
            Input::Tick => self.on_tick(now, &mut actions),
            Input::ScanCompleted(devices) if self.state == State::Scanning => {
                self.on_scan(devices, now, &mut actions);
            }
            Input::ScanFailed(error) if self.state == State::Scanning => {
                self.fail(failure::transport(&error, Step::Scanning), &mut actions);
            }
            Input::Connected { mtu } if self.connect_in_flight => {
                self.on_connected(mtu, now, &mut actions);
            }
            Input::ConnectFailed(error) if self.connect_in_flight => {
                self.connect_in_flight = false;
                if let State::Reconnecting { .. } = self.state {
                    self.schedule_reconnect(now, &mut actions);
                } else {
                    self.fail(failure::transport(&error, Step::Connecting), &mut actions);
                }
            }
            Input::Notification(frame) if self.connected => {
                self.on_frame(&frame, now, &mut actions)
            }
            Input::Disconnected if self.connected => self.on_link_lost(now, &mut actions),
            Input::AssignmentReady(assignment) => self.on_assignment(assignment, now, &mut actions),
            Input::AssignmentFailed(error) if !self.ticket_sent => {
                self.fail(failure::service(&error), &mut actions);
            }
            Input::NetworkCorrection(correction) if self.awaiting_correction.is_some() => {
                self.on_correction(correction, now, &mut actions);
            }
            Input::StatusReady(view) if self.state == State::Confirming => {
                self.on_status(view, now, &mut actions);
            }
            Input::StatusFailed(error) if self.state == State::Confirming => {
                self.fail(failure::service(&error), &mut actions);
            }
            Input::ServiceRetrying { step, retry } => {
                self.on_service_retry(step, retry, now, &mut actions);
            }
            // Late answers to operations that no longer matter.
            _ => {}
        }
        actions
    }

    fn current_step(&self) -> Step {
        match &self.state {
            State::Reconnecting { resume } => *resume,
            state => state.step().unwrap_or(Step::Scanning),
        }
    }

    fn progress(&self, step: Step, kind: ProgressKind, now: u64, actions: &mut Vec<Action>) {
        let attempt = self.timings.attempt(step);
        actions.push(Action::Progress(ProgressEvent {
            step,
            kind,
            at_ms: now.saturating_sub(self.started_ms),
            attempt,
        }));
    }

    /// Records the start of `step` and arms its deadline.
    fn enter(&mut self, step: Step, now: u64, actions: &mut Vec<Action>) {
        self.note_start(step, now, actions);
        self.step_deadline = Some(now.saturating_add(ms(self.config.deadlines.of(step))));
    }

    /// Records the start of `step` without arming a deadline (steps that run in parallel).
    fn note_start(&mut self, step: Step, now: u64, actions: &mut Vec<Action>) {
        self.timings
            .started(step, now.saturating_sub(self.started_ms));
        self.progress(step, ProgressKind::Started, now, actions);
    }

    fn complete(&mut self, step: Step, now: u64, actions: &mut Vec<Action>) {
        self.timings
            .completed(step, now.saturating_sub(self.started_ms));
        self.progress(step, ProgressKind::Completed, now, actions);
    }

    fn fail(&mut self, error: CommissionError, actions: &mut Vec<Action>) {
        if self.connected && self.ticket_accepted && self.device_result.is_none() {
            // Roll the staged ticket back now rather than at the device's fail-safe.
            if let Some(frames) = self
                .wire
                .as_mut()
                .and_then(|w| w.send(OutgoingRequest::Cancel).ok())
            {
                self.send(frames, actions);
            }
        }
        if self.connected {
            actions.push(Action::Disconnect);
            self.connected = false;
        }
        let from = std::mem::replace(&mut self.state, State::Idle);
        self.state = State::Failed {
            from: Box::new(from),
            error: error.clone(),
        };
        self.phase = Phase::Finished;
        self.wire = None;
        actions.push(Action::Finished(Err(error)));
    }

    fn send(&mut self, frames: Vec<Vec<u8>>, actions: &mut Vec<Action>) {
        self.counters.round_trips += 1;
        for frame in &frames {
            self.counters.frames_sent += 1;
            self.counters.bytes_sent += frame.len() as u64;
        }
        actions.push(Action::Write(frames));
    }

    fn fetch_assignment(&mut self, registration_id: String, now: u64, actions: &mut Vec<Action>) {
        self.note_start(Step::AwaitingAssignment, now, actions);
        // The fetch runs beside scanning and connecting: it gets the assignment step's
        // deadline from its own start, within the overall one.
        let step_end = now.saturating_add(ms(self.config.deadlines.awaiting_assignment));
        let budget = self.budget_until(step_end, now);
        actions.push(Action::FetchAssignment {
            registration_id,
            budget,
        });
    }

    /// Time from `now` to `until`, capped by the overall deadline.
    fn budget_until(&self, until: u64, now: u64) -> std::time::Duration {
        let end = until.min(self.overall_deadline);
        std::time::Duration::from_millis(end.saturating_sub(now))
    }

    fn on_service_retry(
        &mut self,
        step: Step,
        retry: super::service_call::ServiceRetry,
        now: u64,
        actions: &mut Vec<Action>,
    ) {
        let kind = ProgressKind::ServiceRetry {
            attempt: retry.next_attempt,
            max_attempts: retry.max_attempts,
            wait_ms: ms(retry.wait),
            retry_after_ms: retry.retry_after.map(ms),
            reason: retry.reason,
        };
        self.progress(step, kind, now, actions);
    }

    fn on_tick(&mut self, now: u64, actions: &mut Vec<Action>) {
        if now >= self.overall_deadline {
            let step = self.current_step();
            return self.fail(CommissionError::Timeout { step }, actions);
        }
        if self.timer.is_some_and(|t| now >= t) {
            self.timer = None;
            match self.state {
                State::Reconnecting { .. } => self.reconnect(now, actions),
                State::Confirming => self.query_status(now, actions),
                _ => {}
            }
        }
        if self.step_deadline.is_some_and(|d| now >= d) {
            let step = self.current_step();
            return self.fail(CommissionError::Timeout { step }, actions);
        }
        let reassembly = self.wire.as_mut().map(|wire| wire.check_deadline(now));
        if let Some(Err(error)) = reassembly {
            tracing::debug!(%error, "reassembly deadline passed");
            self.on_link_lost(now, actions);
        }
    }

    fn on_scan(&mut self, devices: Vec<DiscoveredDevice>, now: u64, actions: &mut Vec<Action>) {
        let wanted = self.request.discriminator;
        let best = devices
            .into_iter()
            .filter(|d| d.discriminator().is_some_and(|found| wanted.matches(found)))
            .max_by_key(|d| d.rssi.unwrap_or(i16::MIN));
        let Some(device) = best else {
            let discriminator = match wanted {
                DiscriminatorMatch::Full(full) => full,
                DiscriminatorMatch::Short(top) => u16::from(top) << 8,
            };
            return self.fail(CommissionError::DeviceNotFound { discriminator }, actions);
        };
        self.complete(Step::Scanning, now, actions);
        let found = ProgressKind::DeviceFound {
            peripheral: device.id.clone(),
            rssi: device.rssi,
        };
        self.progress(Step::Scanning, found, now, actions);
        self.peripheral = Some(device.id.clone());
        self.state = State::Connecting {
            peripheral: device.id.clone(),
        };
        self.enter(Step::Connecting, now, actions);
        self.connect_in_flight = true;
        actions.push(Action::Connect {
            peripheral: device.id,
            timeout: self.config.deadlines.connecting,
        });
    }

    fn on_connected(&mut self, mtu: u16, now: u64, actions: &mut Vec<Action>) {
        self.connect_in_flight = false;
        self.connected = true;
        self.mtu = mtu;
        self.counters.connections += 1;
        self.complete(Step::Connecting, now, actions);
        self.progress(
            Step::Connecting,
            ProgressKind::Connected { mtu },
            now,
            actions,
        );
        match ClientWire::start(&self.request.secret, mtu, &mut self.rng) {
            Ok((wire, frames)) => {
                self.wire = Some(wire);
                self.state = State::Handshaking;
                self.enter(Step::Handshaking, now, actions);
                self.send(frames, actions);
            }
            Err(error) => self.fail(failure::wire(&error, Step::Handshaking), actions),
        }
    }

    fn on_frame(&mut self, frame: &[u8], now: u64, actions: &mut Vec<Action>) {
        self.counters.frames_received += 1;
        self.counters.bytes_received += frame.len() as u64;
        let Some(wire) = self.wire.as_mut() else {
            return;
        };
        let message = match wire.push(frame, now) {
            Ok(Some(message)) => message,
            Ok(None) => return,
            Err(error) => {
                let step = self.current_step();
                return self.fail(failure::wire(&error, step), actions);
            }
        };
        self.on_message(message, now, actions);
    }

    fn on_message(&mut self, message: DeviceMessage, now: u64, actions: &mut Vec<Action>) {
        let step = self.current_step();
        match (message, &self.state) {
            (DeviceMessage::Hello(snapshot), State::Handshaking) => {
                self.on_hello(snapshot, now, actions)
            }
            (DeviceMessage::WrongSecret { attempts_left }, _) => {
                let max = self.config.max_pop_attempts;
                let attempt = max.saturating_sub(attempts_left).max(1);
                self.fail(CommissionError::WrongPop { attempt, max }, actions);
            }
            (
                DeviceMessage::Refused {
                    locked: true,
                    retry_after,
                },
                _,
            ) => {
                self.fail(CommissionError::DeviceLocked { retry_after }, actions);
            }
            (DeviceMessage::Refused { locked: false, .. }, _) => {
                self.fail(CommissionError::DeviceBusy, actions);
            }
            (DeviceMessage::ProvisionAccepted, State::Provisioning) => {
                self.ticket_accepted = true;
                self.complete(Step::Provisioning, now, actions);
                self.after_ticket(now, actions);
            }
            (DeviceMessage::Status(snapshot), State::Resyncing) => {
                self.on_resync(snapshot, now, actions)
            }
            (DeviceMessage::NetworkStage(stage), _) => {
                self.progress(
                    Step::JoiningNetwork,
                    ProgressKind::NetworkStage { stage },
                    now,
                    actions,
                );
            }
            (DeviceMessage::NetworkJoined, State::JoiningNetwork) => {
                self.network_joined = true;
                self.complete(Step::JoiningNetwork, now, actions);
                self.state = State::Registering;
                self.enter(Step::Registering, now, actions);
            }
            (DeviceMessage::NetworkFailed(kind), _) => self.on_network_failed(kind, now, actions),
            (DeviceMessage::NetworkAccepted, State::JoiningNetwork) => {}
            (DeviceMessage::RegistrationStage(stage), _) => {
                if self.state == State::JoiningNetwork {
                    // The device went on to DPS: it is online.
                    self.network_joined = true;
                    self.complete(Step::JoiningNetwork, now, actions);
                    self.state = State::Registering;
                    self.enter(Step::Registering, now, actions);
                }
                let kind = ProgressKind::RegistrationStage { stage };
                self.progress(Step::Registering, kind, now, actions);
            }
            (
                DeviceMessage::RegistrationResult(result),
                State::Registering | State::JoiningNetwork,
            ) => {
                self.on_registration_result(result, now, actions);
            }
            (DeviceMessage::DeviceError(code, retry_after), _) => {
                self.fail(failure::device(code, step, retry_after), actions);
            }
            (message, state) => {
                tracing::debug!(?message, ?state, "ignoring an unexpected device message");
            }
        }
    }

    fn on_network_failed(
        &mut self,
        kind: crate::error::NetworkFailureKind,
        now: u64,
        actions: &mut Vec<Action>,
    ) {
        let _ = now;
        if self.corrections < self.config.network_corrections && self.connected {
            self.corrections += 1;
            self.awaiting_correction = Some(kind);
            actions.push(Action::AskNetworkCorrection {
                kind,
                attempt: self.corrections,
            });
            return;
        }
        self.fail(CommissionError::NetworkJoinFailed { kind }, actions);
    }

    fn on_correction(
        &mut self,
        correction: Option<fieldlink_protocol::message::NetworkConfig>,
        now: u64,
        actions: &mut Vec<Action>,
    ) {
        let Some(kind) = self.awaiting_correction.take() else {
            return;
        };
        let Some(network) = correction else {
            return self.fail(CommissionError::NetworkJoinFailed { kind }, actions);
        };
        let sent = self
            .wire
            .as_mut()
            .map(|w| w.send(OutgoingRequest::ConfigureNetwork { network }));
        match sent {
            Some(Ok(frames)) => {
                self.enter(Step::JoiningNetwork, now, actions);
                self.send(frames, actions);
            }
            Some(Err(error)) => {
                let step = self.current_step();
                self.fail(failure::wire(&error, step), actions);
            }
            None => {
                let step = self.current_step();
                self.fail(
                    CommissionError::LinkLost {
                        step,
                        retryable: true,
                    },
                    actions,
                );
            }
        }
    }

    fn on_hello(&mut self, snapshot: DeviceSnapshot, now: u64, actions: &mut Vec<Action>) {
        self.complete(Step::Handshaking, now, actions);
        if self.registration_id.is_none() {
            self.registration_id = Some(snapshot.registration_id.clone());
            self.fetch_assignment(snapshot.registration_id.clone(), now, actions);
        }
        let device_has_ticket = snapshot.state.holds_ticket();
        if self.ticket_accepted && !device_has_ticket {
            // The device rolled the ticket back while the link was down.
            let step = self.current_step();
            return self.fail(
                CommissionError::LinkLost {
                    step,
                    retryable: true,
                },
                actions,
            );
        }
        if device_has_ticket {
            return self.finish_with(OutgoingRequest::GetStatus, State::Resyncing, actions);
        }
        match self.assignment.clone() {
            Some(assignment) => self.provision(assignment, now, actions),
            None => {
                self.state = State::AwaitingAssignment;
                self.step_deadline =
                    Some(now.saturating_add(ms(self.config.deadlines.awaiting_assignment)));
            }
        }
    }

    fn finish_with(&mut self, request: OutgoingRequest, next: State, actions: &mut Vec<Action>) {
        let Some(wire) = self.wire.as_mut() else {
            return;
        };
        match wire.finish(request) {
            Ok(frames) => {
                self.state = next;
                self.send(frames, actions);
            }
            Err(error) => {
                let step = self.current_step();
                self.fail(failure::wire(&error, step), actions);
            }
        }
    }

    fn provision(&mut self, assignment: Assignment, now: u64, actions: &mut Vec<Action>) {
        let network = self.request.network.clone();
        self.network_sent = network.is_some();
        self.ticket_sent = true;
        self.enter(Step::Provisioning, now, actions);
        let request = OutgoingRequest::Provision {
            ticket: assignment.ticket,
            network,
        };
        self.finish_with(request, State::Provisioning, actions);
    }

    fn on_assignment(&mut self, assignment: Assignment, now: u64, actions: &mut Vec<Action>) {
        if self.assignment.is_some() {
            return;
        }
        self.assignment = Some(assignment.clone());
        self.complete(Step::AwaitingAssignment, now, actions);
        if self.state == State::AwaitingAssignment {
            self.provision(assignment, now, actions);
        }
    }

    /// After `ProvisionAccepted` (or a resync that found the ticket accepted).
    fn after_ticket(&mut self, now: u64, actions: &mut Vec<Action>) {
        self.reconnect_started = None;
        self.backoff = self.config.reconnect.backoff_with_rng(
            <StdRng as rand::SeedableRng>::from_rng(&mut self.rng)
                .unwrap_or_else(|_| <StdRng as rand::SeedableRng>::seed_from_u64(0)),
        );
        if self.network_sent && !self.network_joined {
            self.state = State::JoiningNetwork;
            self.enter(Step::JoiningNetwork, now, actions);
        } else {
            self.state = State::Registering;
            self.enter(Step::Registering, now, actions);
        }
    }

    fn on_resync(&mut self, snapshot: DeviceSnapshot, now: u64, actions: &mut Vec<Action>) {
        let device_state = snapshot.state.as_str().to_owned();
        self.progress(
            self.current_step(),
            ProgressKind::Resumed { device_state },
            now,
            actions,
        );
        self.ticket_accepted = true;
        if snapshot.network_joined {
            self.network_joined = true;
        }
        match snapshot.state {
            SnapshotState::Registered => match snapshot.last_result {
                Some(result) => self.on_registration_result(result, now, actions),
                None => self.after_ticket(now, actions),
            },
            SnapshotState::Failed => {
                let error = match (snapshot.network_failure, snapshot.last_result) {
                    (Some(kind), _) => CommissionError::NetworkJoinFailed { kind },
                    (None, Some(result)) => failure::registration(&result.report, result.failure),
                    (None, None) => CommissionError::Internal {
                        detail: "device reports failure without a cause".into(),
                    },
                };
                self.fail(error, actions);
            }
            SnapshotState::TicketStaged | SnapshotState::Registering => {
                self.after_ticket(now, actions)
            }
            SnapshotState::Commissionable | SnapshotState::Other => {
                let step = self.current_step();
                self.fail(
                    CommissionError::LinkLost {
                        step,
                        retryable: true,
                    },
                    actions,
                );
            }
        }
    }

    fn on_registration_result(
        &mut self,
        reported: ReportedResult,
        now: u64,
        actions: &mut Vec<Action>,
    ) {
        let ReportedResult {
            report: result,
            failure: cause,
        } = reported;
        if result.status != "assigned" {
            return self.fail(failure::registration(&result, cause), actions);
        }
        if self.state == State::JoiningNetwork {
            self.complete(Step::JoiningNetwork, now, actions);
        }
        actions.push(Action::DeviceReported(result.clone()));
        self.device_result = Some(result);
        self.complete(Step::Registering, now, actions);
        if self.connected {
            actions.push(Action::Disconnect);
            self.connected = false;
        }
        self.wire = None;
        self.state = State::Confirming;
        self.enter(Step::Confirming, now, actions);
        self.query_status(now, actions);
    }

    fn query_status(&mut self, now: u64, actions: &mut Vec<Action>) {
        if let (Some(registration_id), Some(assignment)) =
            (self.registration_id.clone(), self.assignment.clone())
        {
            let budget = self.budget_until(self.step_deadline.unwrap_or(u64::MAX), now);
            actions.push(Action::QueryStatus {
                registration_id,
                assignment,
                budget,
            });
        }
    }

    fn on_status(&mut self, view: RegistrationView, now: u64, actions: &mut Vec<Action>) {
        let Some(device) = self.device_result.clone() else {
            return;
        };
        if matches!(view.status.as_str(), "unassigned" | "assigning") {
            let kind = ProgressKind::StatusPending {
                status: view.status,
            };
            self.progress(Step::Confirming, kind, now, actions);
            self.timer = Some(now.saturating_add(ms(self.config.status_poll_interval)));
            return;
        }
        if !device.agrees_with(&view) {
            let error = CommissionError::ConfirmationMismatch {
                device: device.summary(),
                service: super::report::summary(
                    &view.status,
                    view.assigned_hub.as_deref(),
                    view.device_id.as_deref(),
                ),
            };
            return self.fail(error, actions);
        }
        self.complete(Step::Confirming, now, actions);
        let report = CommissioningReport {
            registration_id: self.registration_id.clone().unwrap_or_default(),
            mtu: self.mtu,
            device,
            service: view,
            agreed: true,
            network_configured: self.network_sent && self.network_joined,
            steps: self.timings.as_slice().to_vec(),
            link: self.counters.clone(),
            resumes: self.resumes,
            total_ms: now.saturating_sub(self.started_ms),
        };
        self.state = State::Done;
        self.phase = Phase::Finished;
        actions.push(Action::Finished(Ok(report)));
    }

    fn on_link_lost(&mut self, now: u64, actions: &mut Vec<Action>) {
        self.connected = false;
        self.wire = None;
        let step = self.current_step();
        let resumable = self.ticket_sent
            && matches!(
                self.state,
                State::Handshaking
                    | State::Provisioning
                    | State::Resyncing
                    | State::JoiningNetwork
                    | State::Registering
            );
        if !resumable {
            return self.fail(
                CommissionError::LinkLost {
                    step,
                    retryable: true,
                },
                actions,
            );
        }
        self.progress(step, ProgressKind::LinkLost, now, actions);
        self.state = State::Reconnecting { resume: step };
        self.schedule_reconnect(now, actions);
    }

    fn schedule_reconnect(&mut self, now: u64, actions: &mut Vec<Action>) {
        let started = *self.reconnect_started.get_or_insert(now);
        let elapsed = std::time::Duration::from_millis(now.saturating_sub(started));
        match self.backoff.next_delay(Some(elapsed), None) {
            Some(delay) => {
                self.resumes += 1;
                self.step_deadline = None;
                self.timer = Some(now.saturating_add(ms(delay)));
            }
            None => {
                let step = self.current_step();
                self.fail(
                    CommissionError::LinkLost {
                        step,
                        retryable: true,
                    },
                    actions,
                );
            }
        }
    }

    fn reconnect(&mut self, now: u64, actions: &mut Vec<Action>) {
        let Some(peripheral) = self.peripheral.clone() else {
            return;
        };
        self.enter(Step::Connecting, now, actions);
        self.connect_in_flight = true;
        actions.push(Action::Connect {
            peripheral,
            timeout: self.config.deadlines.connecting,
        });
    }
}
