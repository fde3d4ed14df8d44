//! The async driver: runs a [`Commissioning`] machine over a [`BleTransport`], an
//! [`AssignmentSource`] and a [`RegistrationStatusSource`].

use std::{collections::VecDeque, sync::Arc, time::Duration};

use futures::{FutureExt, StreamExt, future::BoxFuture, stream::FuturesUnordered};
use tokio::{sync::mpsc, time::Instant};
use tokio_util::sync::CancellationToken;

use super::{
    progress::ProgressListener,
    report::CommissioningReport,
    service_call::{ServiceCallScope, ServiceRetry},
    state::{Action, CommissionRequest, Commissioning, CommissioningConfig, Input},
};
use fieldlink_protocol::message::NetworkConfig;

use crate::{
    assignment::{AssignmentSource, RegistrationStatusSource, ServiceError},
    error::{CommissionError, NetworkFailureKind, Step},
    transport::{BleConnection, BleTransport, LinkEvent, TransportError},
};

/// Asked for corrected network settings after a failed join (a shell prompts the installer;
/// `None` gives up). Enabled by `CommissioningConfig::network_corrections`.
#[async_trait::async_trait]
pub trait NetworkCorrection: Send + Sync {
    /// Corrected settings after the join failed with `kind` (`attempt` counts from 1).
    async fn corrected_network(
        &self,
        kind: NetworkFailureKind,
        attempt: u32,
    ) -> Option<NetworkConfig>;
}

/// Runs commissionings. Cheap to clone; one instance can run many commissionings at once.
///
/// The assignment and registration-status sources are called once per need, each call bounded
/// by its step's deadline; retrying transient failures is the sources' job (see
/// [`super::service_call`]), and their retries show up as
/// [`ProgressKind::ServiceRetry`](super::ProgressKind::ServiceRetry) events.
#[derive(Clone)]
pub struct Commissioner {
    transport: Arc<dyn BleTransport>,
    assignments: Arc<dyn AssignmentSource>,
    status: Arc<dyn RegistrationStatusSource>,
    config: CommissioningConfig,
    correction: Option<Arc<dyn NetworkCorrection>>,
}

impl std::fmt::Debug for Commissioner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Commissioner")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

enum Completion {
    Input(Input),
    Connected(Arc<dyn BleConnection>),
}

/// Reports of retries scheduled by service sources, tagged with the step they serve.
type RetryReports = mpsc::UnboundedSender<(Step, ServiceRetry)>;

/// Runs one service call within `budget`, reporting the source's retries. A source that
/// overruns its budget is cut off: the step's deadline is the workflow's, not the source's.
async fn service_call<T>(
    step: Step,
    budget: Duration,
    reports: RetryReports,
    call: impl std::future::Future<Output = Result<T, ServiceError>>,
) -> Result<T, ServiceError> {
    let scope = ServiceCallScope::new(budget, move |retry| {
        let _ = reports.send((step, retry));
    });
    match tokio::time::timeout(budget, scope.run(call)).await {
        Ok(outcome) => outcome,
        Err(_) => Err(ServiceError::Unavailable {
            detail: format!("no answer within the {step} step's {budget:?}"),
        }),
    }
}

async fn next_event(connection: Option<Arc<dyn BleConnection>>) -> LinkEvent {
    match connection {
        Some(connection) => connection.next_event().await,
        None => futures::future::pending().await,
    }
}

impl Commissioner {
    /// A commissioner with default deadlines and retry policies.
    pub fn new(
        transport: Arc<dyn BleTransport>,
        assignments: Arc<dyn AssignmentSource>,
        status: Arc<dyn RegistrationStatusSource>,
    ) -> Self {
        Self {
            transport,
            assignments,
            status,
            config: CommissioningConfig::default(),
            correction: None,
        }
    }

    /// Replaces the workflow configuration (deadlines, reconnect policy, ...).
    pub fn with_config(mut self, config: CommissioningConfig) -> Self {
        self.config = config;
        self
    }

    /// Asks `correction` for new network settings after a failed join.
    pub fn with_network_correction(mut self, correction: Arc<dyn NetworkCorrection>) -> Self {
        self.correction = Some(correction);
        self
    }

    /// The workflow configuration.
    pub fn config(&self) -> &CommissioningConfig {
        &self.config
    }

    /// Commissions one device. Progress goes to `progress`; `cancel` stops it (the device's
    /// fail-safe rolls a staged ticket back).
    pub async fn commission(
        &self,
        request: CommissionRequest,
        progress: &dyn ProgressListener,
        cancel: CancellationToken,
    ) -> Result<CommissioningReport, CommissionError> {
        let started = Instant::now();
        let now_ms = || u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let mut machine = Commissioning::new(request, self.config);
        let mut connection: Option<Arc<dyn BleConnection>> = None;
        let mut pending: FuturesUnordered<BoxFuture<'static, Completion>> = FuturesUnordered::new();
        let (retry_reports, mut retries) = mpsc::unbounded_channel();
        let mut actions: VecDeque<Action> = machine.start(now_ms()).into();
        loop {
            while let Some(action) = actions.pop_front() {
                match action {
                    Action::Write(frames) => {
                        let Some(link) = connection.clone() else {
                            continue;
                        };
                        // Last words (the `Cancel` that rolls the device back) go out even
                        // after the user cancelled; only the per-frame deadline bounds them.
                        let finishing = actions.iter().any(|a| matches!(a, Action::Finished(_)));
                        let interrupt = (!finishing).then_some(&cancel);
                        if !self.write_all(&*link, frames, interrupt).await {
                            connection = None;
                            link.disconnect().await;
                            let input = if cancel.is_cancelled() {
                                Input::Cancel
                            } else {
                                Input::Disconnected
                            };
                            actions.extend(machine.handle(now_ms(), input));
                        }
                    }
                    Action::Disconnect => {
                        if let Some(link) = connection.take() {
                            link.disconnect().await;
                        }
                    }
                    Action::Progress(event) => progress.on_progress(event),
                    Action::DeviceReported(report) => progress.on_device_report(&report),
                    Action::Finished(result) => {
                        if let Some(link) = connection.take() {
                            link.disconnect().await;
                        }
                        return result;
                    }
                    other => pending.push(self.operation(other, &retry_reports)),
                }
            }
            let deadline = machine
                .deadline()
                .map(|ms| started + Duration::from_millis(ms));
            let link = connection.clone();
            let input = tokio::select! {
                biased;
                () = cancel.cancelled() => Input::Cancel,
                event = next_event(link) => match event {
                    LinkEvent::Notification(frame) => Input::Notification(frame),
                    LinkEvent::Disconnected { reason } => {
                        tracing::debug!(?reason, "link down");
                        connection = None;
                        Input::Disconnected
                    }
                },
                Some((step, retry)) = retries.recv() => Input::ServiceRetrying { step, retry },
                Some(done) = pending.next(), if !pending.is_empty() => match done {
                    Completion::Input(input) => input,
                    Completion::Connected(link) => {
                        let mtu = link.mtu();
                        connection = Some(link);
                        Input::Connected { mtu }
                    }
                },
                () = async {
                    match deadline {
                        Some(at) => tokio::time::sleep_until(at).await,
                        None => futures::future::pending().await,
                    }
                } => Input::Tick,
            };
            actions.extend(machine.handle(now_ms(), input));
        }
    }

    /// Writes frames in order; `false` if the link failed or `cancel` fired.
    async fn write_all(
        &self,
        link: &dyn BleConnection,
        frames: Vec<Vec<u8>>,
        cancel: Option<&CancellationToken>,
    ) -> bool {
        let never = CancellationToken::new();
        let cancel = cancel.unwrap_or(&never);
        let per_frame = self.config.deadlines.connecting;
        for frame in frames {
            let written = tokio::select! {
                biased;
                () = cancel.cancelled() => return false,
                written = tokio::time::timeout(per_frame, link.write(frame)) => written,
            };
            match written {
                Ok(Ok(())) => {}
                Ok(Err(error)) => {
                    tracing::debug!(%error, "write failed");
                    return false;
                }
                Err(_) => {
                    tracing::debug!("write timed out");
                    return false;
                }
            }
        }
        true
    }

    /// Starts a background operation for `action`.
    fn operation(&self, action: Action, reports: &RetryReports) -> BoxFuture<'static, Completion> {
        match action {
            Action::Scan { filter, timeout } => {
                let transport = Arc::clone(&self.transport);
                // No timeout of its own: the scanning step's deadline (in the machine) governs,
                // and the scan is dropped with the workflow when it fires.
                async move {
                    Completion::Input(match transport.scan(filter, timeout).await {
                        Ok(devices) => Input::ScanCompleted(devices),
                        Err(error) => Input::ScanFailed(error),
                    })
                }
                .boxed()
            }
            Action::Connect {
                peripheral,
                timeout,
            } => {
                let transport = Arc::clone(&self.transport);
                async move {
                    match tokio::time::timeout(timeout, transport.connect(peripheral, timeout))
                        .await
                    {
                        Ok(Ok(link)) => Completion::Connected(link),
                        Ok(Err(error)) => Completion::Input(Input::ConnectFailed(error)),
                        Err(_) => Completion::Input(Input::ConnectFailed(TransportError::Timeout)),
                    }
                }
                .boxed()
            }
            Action::FetchAssignment {
                registration_id,
                budget,
            } => {
                let source = Arc::clone(&self.assignments);
                let reports = reports.clone();
                async move {
                    let fetch = source.assignment(registration_id);
                    let step = Step::AwaitingAssignment;
                    Completion::Input(match service_call(step, budget, reports, fetch).await {
                        Ok(assignment) => Input::AssignmentReady(assignment),
                        Err(error) => Input::AssignmentFailed(error),
                    })
                }
                .boxed()
            }
            Action::QueryStatus {
                registration_id,
                assignment,
                budget,
            } => {
                let source = Arc::clone(&self.status);
                let reports = reports.clone();
                async move {
                    let query = source.registration_status(registration_id, assignment);
                    Completion::Input(
                        match service_call(Step::Confirming, budget, reports, query).await {
                            Ok(view) => Input::StatusReady(view),
                            Err(error) => Input::StatusFailed(error),
                        },
                    )
                }
                .boxed()
            }
            Action::AskNetworkCorrection { kind, attempt } => {
                let correction = self.correction.clone();
                async move {
                    let network = match correction {
                        Some(correction) => correction.corrected_network(kind, attempt).await,
                        None => None,
                    };
                    Completion::Input(Input::NetworkCorrection(network))
                }
                .boxed()
            }
            Action::Write(_)
            | Action::Disconnect
            | Action::Progress(_)
            | Action::DeviceReported(_)
            | Action::Finished(_) => futures::future::pending().boxed(),
        }
    }
}
