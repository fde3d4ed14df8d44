//! Live progress: indicatif bars on stderr (an overall bar plus one per device in flight, up
//! to [`MAX_DEVICE_BARS`]), or NDJSON `progress` events on stdout with `--json`.

use std::sync::{
    Arc, Mutex, PoisonError,
    atomic::{AtomicUsize, Ordering},
};

use fieldlink_core::{
    Step,
    journal::StepRecord,
    workflow::{DeviceRegistration, ProgressEvent, ProgressKind, ProgressListener, StepTimings},
};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::json;

use crate::{
    output::Output,
    results::{DeviceResult, DeviceStatus},
};

/// At most this many per-device bars are drawn at once.
pub const MAX_DEVICE_BARS: usize = 10;

const STEPS: [Step; 8] = [
    Step::Scanning,
    Step::Connecting,
    Step::Handshaking,
    Step::AwaitingAssignment,
    Step::Provisioning,
    Step::JoiningNetwork,
    Step::Registering,
    Step::Confirming,
];

fn step_index(step: Step) -> u64 {
    STEPS
        .iter()
        .position(|s| *s == step)
        .map_or(0, |i| u64::try_from(i + 1).unwrap_or(0))
}

/// The progress display of one run.
pub struct ProgressBoard {
    output: Output,
    multi: Option<MultiProgress>,
    overall: Option<ProgressBar>,
    device_bars: AtomicUsize,
    failed: AtomicUsize,
}

impl ProgressBoard {
    /// A board for `total` devices; bars only when `bars` (a terminal, no `--json`, no `-q`).
    pub fn new(output: &Output, total: usize, bars: bool) -> Arc<Self> {
        let (multi, overall) = if bars {
            let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
            let overall = multi.add(ProgressBar::new(u64::try_from(total).unwrap_or(0)));
            overall.set_style(
                ProgressStyle::with_template(
                    "{prefix:.bold} [{wide_bar:.cyan/blue}] {pos}/{len} {msg} ({elapsed})",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            overall.set_prefix("commissioning");
            (Some(multi), Some(overall))
        } else {
            (None, None)
        };
        Arc::new(Self {
            output: output.clone(),
            multi,
            overall,
            device_bars: AtomicUsize::new(0),
            failed: AtomicUsize::new(0),
        })
    }

    /// The listener for one device.
    pub fn device(self: &Arc<Self>, label: &str) -> DeviceProgress {
        let bar = self.multi.as_ref().and_then(|multi| {
            if self.device_bars.fetch_add(1, Ordering::SeqCst) >= MAX_DEVICE_BARS {
                self.device_bars.fetch_sub(1, Ordering::SeqCst);
                return None;
            }
            let bar = multi.add(ProgressBar::new(u64::try_from(STEPS.len()).unwrap_or(8)));
            bar.set_style(
                ProgressStyle::with_template("  {prefix:<24} [{bar:16}] {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("#- "),
            );
            bar.set_prefix(label.to_owned());
            Some(bar)
        });
        DeviceProgress {
            board: Arc::clone(self),
            label: Mutex::new(label.to_owned()),
            bar,
            log: Mutex::new(StepLog::default()),
        }
    }

    /// A device finished: bumps the overall bar and emits the `device` event.
    pub fn device_done(&self, result: &DeviceResult) {
        if result.status == DeviceStatus::Failed {
            self.failed.fetch_add(1, Ordering::SeqCst);
        }
        if let Some(overall) = &self.overall {
            overall.inc(1);
            let failed = self.failed.load(Ordering::SeqCst);
            if failed > 0 {
                overall.set_message(format!("{failed} failed"));
            }
        }
        self.output.event("device", result);
    }

    /// Prints a line above the bars (or plainly without bars).
    pub fn println(&self, line: &str) {
        if self.output.is_json() || self.output.is_quiet() {
            return;
        }
        match &self.multi {
            Some(multi) if !multi.is_hidden() => {
                let _ = multi.println(line);
            }
            _ => self.output.line(line),
        }
    }

    /// Removes the bars.
    pub fn finish(&self) {
        if let Some(overall) = &self.overall {
            overall.finish_and_clear();
        }
        if let Some(multi) = &self.multi {
            let _ = multi.clear();
        }
    }
}

/// The human progress line of one event (a device bar's message).
fn progress_line(event: &ProgressEvent) -> String {
    let step = event.step;
    match &event.kind {
        ProgressKind::NetworkStage { stage } | ProgressKind::RegistrationStage { stage } => {
            format!("{step} ({stage})")
        }
        ProgressKind::LinkLost => format!("{step}: link lost, reconnecting"),
        ProgressKind::Resumed { device_state } => format!("resumed: device {device_state}"),
        ProgressKind::ServiceRetry {
            attempt,
            max_attempts,
            wait_ms,
            reason,
            ..
        } => format!(
            "{step}: attempt {attempt} of {max_attempts}, next in {} s ({reason})",
            seconds(*wait_ms)
        ),
        _ => step.to_string(),
    }
}

/// `wait_ms` as seconds for people: `2.4`, `0.1`, `30`.
fn seconds(wait_ms: u64) -> String {
    let tenths = wait_ms.div_ceil(100);
    if tenths.is_multiple_of(10) {
        (tenths / 10).to_string()
    } else {
        format!("{}.{}", tenths / 10, tenths % 10)
    }
}

/// The NDJSON `progress` event of one device: the core's event (its `attempt` is the step's;
/// a `service_retry` carries its own as `retry_attempt`, with `max_attempts`, `wait_ms`,
/// `retry_after_ms` (`null` without `Retry-After`) and `reason`) plus `device`.
fn progress_json(event: &ProgressEvent, device: &str) -> serde_json::Value {
    let kind = serde_json::to_value(&event.kind).unwrap_or_else(|_| json!({}));
    // The core's field order: step, the kind's fields, at_ms, attempt; then device.
    let mut body = serde_json::Map::new();
    body.insert("step".into(), json!(event.step));
    if let serde_json::Value::Object(kind) = kind {
        body.extend(kind);
    }
    body.insert("at_ms".into(), json!(event.at_ms));
    body.insert("attempt".into(), json!(event.attempt));
    body.insert("device".into(), json!(device));
    serde_json::Value::Object(body)
}

/// What one device's progress events said, for the result and the journal.
#[derive(Debug, Clone, Default)]
pub struct StepLog {
    /// Step timings built from `started`/`completed` events (by [`StepTimings`]).
    pub steps: Vec<StepRecord>,
    /// The accumulator behind `steps`.
    timings: StepTimings,
    /// The device reported its DPS registration done (`registering` completed).
    pub registered_over_ble: bool,
    /// The device state a resume found (`registered`, `ticket_staged`, ...).
    pub resumed_from: Option<String>,
    /// The ATT MTU of the last connection.
    pub mtu: Option<u16>,
    /// The DPS registration the device reported over BLE (journaled with a queued
    /// confirmation, so the later sync compares all of it).
    pub device_report: Option<DeviceRegistration>,
}

impl StepLog {
    fn record(&mut self, event: &ProgressEvent) {
        // The core's own accumulator: the same timings its report would carry.
        if self.timings.record(event) {
            self.steps = self
                .timings
                .as_slice()
                .iter()
                .map(StepRecord::from)
                .collect();
        }
        match &event.kind {
            ProgressKind::Completed if event.step == Step::Registering => {
                self.registered_over_ble = true;
            }
            ProgressKind::Resumed { device_state } => {
                self.resumed_from = Some(device_state.clone());
            }
            ProgressKind::Connected { mtu } => self.mtu = Some(*mtu),
            _ => {}
        }
    }
}

/// The [`ProgressListener`] of one device.
pub struct DeviceProgress {
    board: Arc<ProgressBoard>,
    label: Mutex<String>,
    bar: Option<ProgressBar>,
    log: Mutex<StepLog>,
}

impl DeviceProgress {
    /// Renames the device (a manual code learns its registration ID late).
    pub fn set_label(&self, label: &str) {
        *self.label.lock().unwrap_or_else(PoisonError::into_inner) = label.to_owned();
        if let Some(bar) = &self.bar {
            bar.set_prefix(label.to_owned());
        }
    }

    /// What the events said so far.
    pub fn log(&self) -> StepLog {
        self.log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Removes this device's bar.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
            if let Some(multi) = &self.board.multi {
                multi.remove(bar);
            }
            self.board.device_bars.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

impl ProgressListener for DeviceProgress {
    fn on_device_report(&self, report: &DeviceRegistration) {
        self.log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .device_report = Some(report.clone());
    }

    fn on_progress(&self, event: ProgressEvent) {
        self.log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .record(&event);
        if let Some(bar) = &self.bar {
            bar.set_position(step_index(event.step));
            bar.set_message(progress_line(&event));
        }
        if self.board.output.is_json() {
            let label = self
                .label
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone();
            self.board
                .output
                .event("progress", &progress_json(&event, &label));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: ProgressKind) -> ProgressEvent {
        ProgressEvent {
            step: Step::AwaitingAssignment,
            kind,
            at_ms: 1_250,
            attempt: 1,
        }
    }

    fn retry(wait_ms: u64, retry_after_ms: Option<u64>) -> ProgressEvent {
        event(ProgressKind::ServiceRetry {
            attempt: 3,
            max_attempts: 5,
            wait_ms,
            retry_after_ms,
            reason: "http_503".into(),
        })
    }

    #[test]
    fn service_retries_say_attempt_of_max_wait_and_reason() {
        assert_eq!(
            progress_line(&retry(2_400, None)),
            "awaiting_assignment: attempt 3 of 5, next in 2.4 s (http_503)"
        );
        assert_eq!(
            progress_line(&retry(2_000, Some(2_000))),
            "awaiting_assignment: attempt 3 of 5, next in 2 s (http_503)"
        );
        assert_eq!(
            progress_line(&retry(40, None)),
            "awaiting_assignment: attempt 3 of 5, next in 0.1 s (http_503)"
        );
        assert_eq!(
            progress_line(&event(ProgressKind::Started)),
            "awaiting_assignment"
        );
    }

    #[test]
    fn service_retry_json_keeps_the_step_attempt_and_every_retry_field() {
        let body = progress_json(&retry(2_400, Some(2_000)), "sensor-1");
        assert_eq!(
            body,
            json!({
                "step": "awaiting_assignment", "kind": "service_retry", "at_ms": 1_250,
                "attempt": 1, "device": "sensor-1", "retry_attempt": 3, "max_attempts": 5,
                "wait_ms": 2_400, "retry_after_ms": 2_000, "reason": "http_503",
            })
        );
        assert_eq!(
            progress_json(&retry(100, None), "sensor-1")["retry_after_ms"],
            serde_json::Value::Null
        );
    }

    #[test]
    fn other_events_keep_the_cores_flat_shape() {
        let connected = ProgressEvent {
            step: Step::Connecting,
            kind: ProgressKind::Connected { mtu: 247 },
            at_ms: 120,
            attempt: 2,
        };
        let mut expected = serde_json::to_value(&connected).unwrap();
        expected["device"] = json!("sensor-1");
        assert_eq!(progress_json(&connected, "sensor-1"), expected);
    }

    #[test]
    fn the_step_log_keeps_the_cores_timings_and_what_the_device_said() {
        let at = |step, kind, at_ms| ProgressEvent {
            step,
            kind,
            at_ms,
            attempt: 1,
        };
        let events = [
            at(Step::Handshaking, ProgressKind::Started, 10),
            at(Step::Handshaking, ProgressKind::Connected { mtu: 185 }, 12),
            at(Step::Handshaking, ProgressKind::Completed, 40),
            at(Step::Registering, ProgressKind::Started, 50),
            at(Step::Registering, ProgressKind::LinkLost, 60),
            at(Step::Handshaking, ProgressKind::Started, 70),
            at(Step::Handshaking, ProgressKind::Completed, 90),
            at(Step::Registering, ProgressKind::Completed, 120),
        ];
        let mut log = StepLog::default();
        let mut core = StepTimings::default();
        for event in &events {
            log.record(event);
            core.record(event);
        }
        let expected: Vec<StepRecord> = core.as_slice().iter().map(StepRecord::from).collect();
        assert_eq!(log.steps, expected);
        assert_eq!(
            (log.steps[0].step.as_str(), log.steps[0].attempts),
            ("handshaking", 2)
        );
        assert_eq!(
            (log.steps[0].started_ms, log.steps[0].finished_ms),
            (10, 90)
        );
        assert!(log.registered_over_ble);
        assert_eq!(log.mtu, Some(185));
    }
}
