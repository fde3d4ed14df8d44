//! Work the actor runs outside itself: network joins, scans, DPS registrations.

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::task::AbortHandle;

use crate::dps::{DpsClient, RegistrationRequest};
use crate::machine::{DeviceMachine, Input, Job, JobId};
use crate::network::NetworkConfigurator;

/// Spawns `job`; its progress and result come back on `inputs`.
pub(super) fn spawn(
    job: Job,
    machine: &DeviceMachine,
    network: Arc<dyn NetworkConfigurator>,
    dps: DpsClient,
    inputs: mpsc::UnboundedSender<Input>,
) -> (JobId, AbortHandle) {
    match job {
        Job::JoinNetwork {
            id,
            network: config,
            dps_host,
            deadline_ms,
        } => {
            let handle = tokio::spawn(async move {
                let progress_inputs = inputs.clone();
                let result = network
                    .join(&config, &dps_host, deadline_ms, &mut |stage| {
                        let _ = progress_inputs.send(Input::NetworkStage { job: id, stage });
                    })
                    .await;
                let _ = inputs.send(Input::NetworkDone { job: id, result });
            });
            (id, handle.abort_handle())
        }
        Job::Register {
            id,
            global_endpoint,
            id_scope,
            deadline_ms,
        } => {
            let identity = machine.persisted().identity.clone();
            let handle = tokio::spawn(async move {
                let request = RegistrationRequest {
                    global_endpoint: &global_endpoint,
                    id_scope: &id_scope,
                    registration_id: &identity.registration_id,
                    credential: &identity.dps_credential,
                    payload: None,
                };
                let progress_inputs = inputs.clone();
                let result = dps
                    .register(&request, deadline_ms, &mut |progress| {
                        let _ = progress_inputs.send(Input::DpsProgress { job: id, progress });
                    })
                    .await;
                let _ = inputs.send(Input::DpsDone { job: id, result });
            });
            (id, handle.abort_handle())
        }
        Job::Scan { id } => (id, spawn_scan(id, network, inputs)),
    }
}

/// Spawns a Wi-Fi scan.
pub(super) fn spawn_scan(
    id: JobId,
    network: Arc<dyn NetworkConfigurator>,
    inputs: mpsc::UnboundedSender<Input>,
) -> AbortHandle {
    tokio::spawn(async move {
        let result = network.scan().await;
        let _ = inputs.send(Input::ScanDone { job: id, result });
    })
    .abort_handle()
}
