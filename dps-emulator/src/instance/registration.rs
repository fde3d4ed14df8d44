//! Register, poll, look up: the registration life cycle.

use rand::RngCore;
use serde_json::Value;
use std::cmp::Reverse;
use std::time::{Duration, Instant};

use super::{
    DeviceAuth, Instance, InstanceState, MINUTE, OPERATION_RETENTION, Operation, Planned,
    Registration,
};
use crate::allocation::{EnrollmentScope, choose_hub};
use crate::error::DpsError;
use crate::model::{
    DeviceRegistrationResult, DeviceRegistrationState, RegistrationOperationStatus,
    RegistrationStatus, Substatus, SymmetricKeyRegistrationResult, timestamp_utc,
};
use crate::window::retry_after_secs;

/// `errorCode` in a `failed` registration when no linked hub can take the device.
pub const FAILED_NO_HUB: i32 = 400_209;

/// What the poll of an operation found.
#[derive(Debug, Clone, PartialEq)]
pub struct OperationPoll {
    /// The body.
    pub status: RegistrationOperationStatus,
    /// `true` once the operation is final (HTTP 200), `false` while assigning (HTTP 202).
    pub finished: bool,
}

impl Instance {
    /// `PUT …/register` for an authenticated device: checks capacity and the per-minute limit,
    /// plans the assignment and starts an operation that stays `assigning` for the
    /// configured assignment delay.
    pub fn register(
        &self,
        registration_id: &str,
        auth: &DeviceAuth,
        payload: Option<Value>,
        now: Instant,
    ) -> Result<RegistrationOperationStatus, DpsError> {
        let enabled = self.enrollment_enabled(registration_id, auth);
        let mut state = self.lock();
        state.settle(now);
        if let Some(capacity) = state.limits.max_registrations {
            let held = state.registrations.len() as u64;
            if !state.registrations.contains_key(registration_id) && held >= capacity {
                state.counters.throttled_capacity += 1;
                return Err(DpsError::Capacity {
                    capacity,
                    retry_after_secs: 60,
                });
            }
        }
        if let Some(limit) = state.limits.registrations_per_minute
            && let Err(wait) = state.registration_window.try_admit(now, limit, MINUTE)
        {
            state.counters.throttled_registration_rate += 1;
            return Err(DpsError::RegistrationRate {
                limit,
                retry_after_secs: retry_after_secs(wait),
            });
        }
        state.minute_window.record(now, MINUTE);
        state.counters.registrations_requested += 1;

        let group = match auth {
            DeviceAuth::Individual => None,
            DeviceAuth::Group(id) => Some(id.clone()),
        };
        let planned = if enabled {
            state.plan(registration_id, auth)
        } else {
            Planned::Disabled
        };
        state.seq += 1;
        let operation_id = format!(
            "5.{:016x}.{}",
            state.rng.next_u64(),
            uuid::Uuid::from_u128(u128::from(state.rng.next_u64()) << 64 | u128::from(state.seq))
        );
        let wall = timestamp_utc(chrono::Utc::now());
        let record = state
            .registrations
            .entry(registration_id.to_owned())
            .or_insert_with(|| Registration {
                result: DeviceRegistrationResult {
                    state: DeviceRegistrationState {
                        created_date_time_utc: Some(wall.clone()),
                        ..DeviceRegistrationState::new(
                            registration_id,
                            RegistrationStatus::Assigning,
                        )
                    },
                    symmetric_key: None,
                },
                first_hub: None,
                current_operation: None,
            });
        record.result.state.status = RegistrationStatus::Assigning;
        record.result.state.last_updated_date_time_utc = Some(wall);
        record.current_operation = Some(operation_id.clone());
        let ready_at = now + Duration::from_millis(state.knobs.assignment_delay_ms);
        let seq = state.seq;
        state.operations.insert(
            operation_id.clone(),
            Operation {
                registration_id: registration_id.to_owned(),
                group,
                payload,
                planned: Some(planned),
                done: None,
            },
        );
        state
            .pending
            .push(Reverse((ready_at, seq, operation_id.clone())));
        Ok(RegistrationOperationStatus {
            operation_id,
            status: RegistrationStatus::Assigning,
            registration_state: None,
        })
    }

    /// `GET …/operations/{operationId}` for an authenticated device, counted against the
    /// per-device poll limit.
    pub fn poll_operation(
        &self,
        registration_id: &str,
        operation_id: &str,
        now: Instant,
    ) -> Result<OperationPoll, DpsError> {
        let mut state = self.lock();
        if let Some(limit) = state.limits.device_polls_per_window {
            let window_secs = state.limits.device_poll_window_secs;
            let window = Duration::from_secs(window_secs);
            state.prune_polls(now, window);
            let admitted = state
                .polls
                .entry(registration_id.to_owned())
                .or_default()
                .try_admit(now, limit, window);
            if let Err(wait) = admitted {
                state.counters.throttled_poll_rate += 1;
                return Err(DpsError::PollRate {
                    limit,
                    window_secs,
                    retry_after_secs: retry_after_secs(wait),
                });
            }
        }
        state.counters.polls += 1;
        state.settle(now);
        let operation = state
            .operations
            .get(operation_id)
            .filter(|op| op.registration_id == registration_id)
            .ok_or_else(|| {
                DpsError::RegistrationNotFound(format!(
                    "operation {operation_id} of registration {registration_id}"
                ))
            })?;
        Ok(match &operation.done {
            Some(result) => OperationPoll {
                status: RegistrationOperationStatus {
                    operation_id: operation_id.to_owned(),
                    status: result.state.status,
                    registration_state: Some(result.clone()),
                },
                finished: true,
            },
            None => OperationPoll {
                status: RegistrationOperationStatus {
                    operation_id: operation_id.to_owned(),
                    status: RegistrationStatus::Assigning,
                    registration_state: Some(assigning_stub(registration_id)),
                },
                finished: false,
            },
        })
    }

    /// `POST …/registrations/{registrationId}`: the device's current registration.
    pub fn status_lookup(
        &self,
        registration_id: &str,
        now: Instant,
    ) -> Result<DeviceRegistrationResult, DpsError> {
        let mut state = self.lock();
        state.settle(now);
        state
            .registrations
            .get(registration_id)
            .map(|record| record.result.clone())
            .ok_or_else(|| {
                DpsError::RegistrationNotFound(format!("registration {registration_id}"))
            })
    }

    /// Service view of one registration.
    pub fn registration_state(&self, registration_id: &str) -> Option<DeviceRegistrationState> {
        let mut state = self.lock();
        state.settle(Instant::now());
        state
            .registrations
            .get(registration_id)
            .map(|record| record.result.to_state())
    }

    /// Service view of every registration, sorted by registration ID.
    pub fn registration_states(&self) -> Vec<DeviceRegistrationState> {
        let mut state = self.lock();
        state.settle(Instant::now());
        let mut all: Vec<_> = state
            .registrations
            .values()
            .map(|r| r.result.to_state())
            .collect();
        all.sort_by(|a, b| a.registration_id.cmp(&b.registration_id));
        all
    }

    /// Deletes a registration record; `false` if there was none.
    pub fn delete_registration(&self, registration_id: &str) -> bool {
        let mut state = self.lock();
        state.settle(Instant::now());
        state.registrations.remove(registration_id).is_some()
    }
}

fn assigning_stub(registration_id: &str) -> DeviceRegistrationResult {
    DeviceRegistrationResult {
        state: DeviceRegistrationState::new(registration_id, RegistrationStatus::Assigning),
        symmetric_key: None,
    }
}

impl InstanceState {
    fn plan(&mut self, registration_id: &str, auth: &DeviceAuth) -> Planned {
        let (hubs, policy, device_id) = match auth {
            DeviceAuth::Individual => match self.enrollments.get(registration_id) {
                Some(e) => (
                    e.iot_hubs
                        .clone()
                        .or_else(|| e.iot_hub_host_name.clone().map(|h| vec![h])),
                    e.allocation_policy,
                    e.device_id.clone(),
                ),
                None => (None, None, None),
            },
            DeviceAuth::Group(id) => match self.groups.get(id) {
                Some(g) => (
                    g.iot_hubs
                        .clone()
                        .or_else(|| g.iot_hub_host_name.clone().map(|h| vec![h])),
                    g.allocation_policy,
                    None,
                ),
                None => (None, None, None),
            },
        };
        let scope = EnrollmentScope {
            hubs: hubs.as_deref(),
            policy,
        };
        let policy = self.allocation_policy;
        match choose_hub(
            &self.linked_hubs,
            policy,
            &scope,
            registration_id,
            &mut self.rng,
        ) {
            Ok(hub) => Planned::Assign {
                hub,
                device_id: device_id.unwrap_or_else(|| registration_id.to_owned()),
            },
            Err(err) => Planned::Failed {
                code: FAILED_NO_HUB,
                message: err.to_string(),
            },
        }
    }

    /// Finishes every operation whose assignment delay has passed and forgets old ones.
    pub(crate) fn settle(&mut self, now: Instant) {
        while let Some(Reverse((ready_at, _, _))) = self.pending.peek() {
            if *ready_at > now {
                break;
            }
            let Some(Reverse((_, _, operation_id))) = self.pending.pop() else {
                break;
            };
            self.finish(&operation_id, now);
        }
        while let Some((finished_at, _)) = self.finished.front() {
            if now.saturating_duration_since(*finished_at) < OPERATION_RETENTION {
                break;
            }
            if let Some((_, operation_id)) = self.finished.pop_front() {
                self.operations.remove(&operation_id);
            }
        }
    }

    fn finish(&mut self, operation_id: &str, now: Instant) {
        let Some(operation) = self.operations.get_mut(operation_id) else {
            return;
        };
        let Some(planned) = operation.planned.take() else {
            return;
        };
        let registration_id = operation.registration_id.clone();
        let group = operation.group.clone();
        let payload = operation.payload.take();
        let wall = timestamp_utc(chrono::Utc::now());
        let etag = data_encoding::BASE64.encode(format!("\"{}\"", uuid::Uuid::new_v4()).as_bytes());
        let record = self.registrations.get_mut(&registration_id);
        let (previous_hub, first_hub, previous_substatus, created) = match &record {
            Some(r) => (
                r.result.state.assigned_hub.clone(),
                r.first_hub.clone(),
                r.result.state.substatus,
                r.result.state.created_date_time_utc.clone(),
            ),
            None => (None, None, None, Some(wall.clone())),
        };
        let mut result = DeviceRegistrationResult {
            state: DeviceRegistrationState {
                created_date_time_utc: created,
                last_updated_date_time_utc: Some(wall),
                etag: Some(etag),
                payload,
                ..DeviceRegistrationState::new(&registration_id, RegistrationStatus::Assigned)
            },
            symmetric_key: Some(SymmetricKeyRegistrationResult {
                enrollment_group_id: group,
            }),
        };
        match planned {
            Planned::Assign { hub, device_id } => {
                result.state.substatus = Some(match (&previous_hub, &first_hub) {
                    (None, _) => Substatus::InitialAssignment,
                    (Some(prev), _) if prev.eq_ignore_ascii_case(&hub) => {
                        previous_substatus.unwrap_or(Substatus::InitialAssignment)
                    }
                    (Some(_), Some(first)) if first.eq_ignore_ascii_case(&hub) => {
                        Substatus::ReprovisionedToInitialAssignment
                    }
                    (Some(_), _) => Substatus::DeviceDataMigrated,
                });
                result.state.assigned_hub = Some(hub);
                result.state.device_id = Some(device_id);
                self.counters.assigned += 1;
            }
            Planned::Disabled => {
                result.state.status = RegistrationStatus::Disabled;
                result.symmetric_key = None;
                self.counters.disabled += 1;
            }
            Planned::Failed { code, message } => {
                result.state.status = RegistrationStatus::Failed;
                result.state.error_code = Some(code);
                result.state.error_message = Some(message);
                self.counters.failed += 1;
            }
        }
        if let Some(record) = self.registrations.get_mut(&registration_id)
            && record.current_operation.as_deref() == Some(operation_id)
        {
            if record.first_hub.is_none() {
                record.first_hub = result.state.assigned_hub.clone();
            }
            record.result = result.clone();
            record.current_operation = None;
        }
        if let Some(operation) = self.operations.get_mut(operation_id) {
            operation.done = Some(result);
        }
        self.finished.push_back((now, operation_id.to_owned()));
    }

    fn prune_polls(&mut self, now: Instant, window: Duration) {
        if self.polls.len() < self.polls_prune_at {
            return;
        }
        self.polls
            .retain(|_, limiter| !limiter.is_idle(now, window));
        self.polls_prune_at = (self.polls.len() * 2).max(10_000);
    }
}
