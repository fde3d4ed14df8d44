//! Per-device results (the `device` objects of `--json`) and the summary table.

use std::collections::BTreeMap;

use fieldlink_core::{
    journal::{ErrorRecord, StepRecord},
    workflow::LinkCounters,
};
use serde::Serialize;

use crate::exit::Exit;

/// How one device ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceStatus {
    /// Commissioned (confirmed or queued).
    Succeeded,
    /// Failed.
    Failed,
    /// Not touched (done earlier, or a failure a retry cannot fix).
    Skipped,
}

/// What happened on the network step.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct NetworkReport {
    /// The SSID finally pushed.
    pub ssid: Option<String>,
    /// Typed join failures seen before the final result, in order.
    pub failures: Vec<String>,
    /// Whether the device joined the network.
    pub configured: bool,
}

/// One device's result: the `device` object of `--json` (schema in `docs/cli.md`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeviceResult {
    /// DPS registration ID (empty if a manual-code attempt never learnt it).
    pub registration_id: String,
    /// Succeeded, failed or skipped.
    pub status: DeviceStatus,
    /// `confirmed`, `queued` (service unreachable, synced later) or null.
    pub confirmation: Option<String>,
    /// The DPS instance the provisioning service chose.
    pub dps_instance: Option<String>,
    /// The IoT hub DPS assigned.
    pub assigned_hub: Option<String>,
    /// The device ID in that hub.
    pub device_id: Option<String>,
    /// Wall time of the attempt, ms.
    pub total_ms: u64,
    /// ATT MTU of the last connection.
    pub mtu: Option<u16>,
    /// Client-initiated BLE round trips.
    pub round_trips: u32,
    /// Bytes written to the device (ATT payload).
    pub bytes_sent: u64,
    /// Bytes notified by the device (ATT payload).
    pub bytes_received: u64,
    /// Frames written.
    pub frames_sent: u32,
    /// Frames received.
    pub frames_received: u32,
    /// BLE connections opened.
    pub connections: u32,
    /// Reconnect-and-resume cycles.
    pub resumes: u32,
    /// Network step, when a network was pushed.
    pub network: Option<NetworkReport>,
    /// What a resume's re-check found, if this device was interrupted before.
    pub recheck: Option<String>,
    /// The journal's attempt id.
    pub attempt_id: Option<i64>,
    /// Per-step timings.
    pub steps: Vec<StepRecord>,
    /// The error, for failures.
    pub error: Option<ErrorRecord>,
}

impl DeviceResult {
    /// A device that was not touched.
    pub fn skipped(registration_id: &str, reason: &str) -> Self {
        Self {
            registration_id: registration_id.to_owned(),
            status: DeviceStatus::Skipped,
            confirmation: None,
            dps_instance: None,
            assigned_hub: None,
            device_id: None,
            total_ms: 0,
            mtu: None,
            round_trips: 0,
            bytes_sent: 0,
            bytes_received: 0,
            frames_sent: 0,
            frames_received: 0,
            connections: 0,
            resumes: 0,
            network: None,
            recheck: Some(reason.to_owned()),
            attempt_id: None,
            steps: Vec::new(),
            error: None,
        }
    }

    /// Copies link counters in.
    pub fn with_link(mut self, link: &LinkCounters) -> Self {
        self.round_trips = link.round_trips;
        self.bytes_sent = link.bytes_sent;
        self.bytes_received = link.bytes_received;
        self.frames_sent = link.frames_sent;
        self.frames_received = link.frames_received;
        self.connections = link.connections;
        self
    }
}

/// Counts over a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Devices in the run.
    pub total: usize,
    /// Succeeded.
    pub succeeded: usize,
    /// Of those, confirmation queued.
    pub queued: usize,
    /// Failed.
    pub failed: usize,
    /// Skipped.
    pub skipped: usize,
}

impl Counts {
    /// Counts `results`.
    pub fn of(results: &[DeviceResult]) -> Self {
        let mut counts = Counts {
            total: results.len(),
            ..Counts::default()
        };
        for result in results {
            match result.status {
                DeviceStatus::Succeeded => {
                    counts.succeeded += 1;
                    if result.confirmation.as_deref() == Some("queued") {
                        counts.queued += 1;
                    }
                }
                DeviceStatus::Failed => counts.failed += 1,
                DeviceStatus::Skipped => counts.skipped += 1,
            }
        }
        counts
    }

    /// The exit code of a run with these counts.
    pub fn exit(&self) -> Exit {
        match (self.succeeded, self.failed) {
            (_, 0) => Exit::Success,
            (0, _) => Exit::Failed,
            _ => Exit::Partial,
        }
    }
}

/// Percentile (nearest rank) of `values`, `p` in 0..=100.
pub fn percentile(values: &[u64], p: f64) -> Option<u64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len()) - 1).copied()
}

/// The summary table: device, DPS instance, hub, time, round trips, bytes, result.
pub fn table(results: &[DeviceResult]) -> String {
    let rows: Vec<[String; 7]> = results
        .iter()
        .map(|r| {
            let outcome = match (&r.status, &r.error) {
                (DeviceStatus::Failed, Some(error)) => error.code.clone(),
                (DeviceStatus::Skipped, _) => {
                    format!("skipped ({})", r.recheck.as_deref().unwrap_or("-"))
                }
                _ => r.confirmation.clone().unwrap_or_else(|| "ok".into()),
            };
            [
                r.registration_id.clone(),
                r.dps_instance.clone().unwrap_or_else(|| "-".into()),
                r.assigned_hub.clone().unwrap_or_else(|| "-".into()),
                format!("{:.2} s", r.total_ms as f64 / 1000.0),
                r.round_trips.to_string(),
                format!("{}/{}", r.bytes_sent, r.bytes_received),
                outcome,
            ]
        })
        .collect();
    let header = [
        "DEVICE",
        "DPS INSTANCE",
        "HUB",
        "TIME",
        "ROUND TRIPS",
        "BYTES OUT/IN",
        "RESULT",
    ];
    let mut widths = header.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut text = String::new();
    let mut push_row = |cells: [&str; 7]| {
        let line: Vec<String> = cells
            .iter()
            .zip(widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        text.push_str(line.join("  ").trim_end());
        text.push('\n');
    };
    push_row(header);
    for row in &rows {
        push_row(row.each_ref().map(String::as_str));
    }
    text
}

/// Devices per DPS instance among successes.
pub fn per_instance(results: &[DeviceResult]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for result in results {
        if result.status == DeviceStatus::Succeeded
            && let Some(instance) = &result.dps_instance
        {
            *counts.entry(instance.clone()).or_insert(0) += 1;
        }
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(id: &str, status: DeviceStatus, ms: u64) -> DeviceResult {
        DeviceResult {
            status,
            total_ms: ms,
            dps_instance: Some("dps-1".into()),
            confirmation: (status == DeviceStatus::Succeeded).then(|| "confirmed".into()),
            ..DeviceResult::skipped(id, "x")
        }
    }

    #[test]
    fn counts_give_the_documented_exit_codes() {
        let ok = result("a", DeviceStatus::Succeeded, 10);
        let bad = result("b", DeviceStatus::Failed, 10);
        assert_eq!(Counts::of(std::slice::from_ref(&ok)).exit(), Exit::Success);
        assert_eq!(Counts::of(std::slice::from_ref(&bad)).exit(), Exit::Failed);
        assert_eq!(Counts::of(&[ok.clone(), bad]).exit(), Exit::Partial);
        assert_eq!(Counts::of(&[]).exit(), Exit::Success);
        assert_eq!(per_instance(&[ok.clone(), ok])["dps-1"], 2);
    }

    #[test]
    fn percentiles_use_nearest_rank() {
        let values: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&values, 50.0), Some(50));
        assert_eq!(percentile(&values, 95.0), Some(95));
        assert_eq!(percentile(&[7], 95.0), Some(7));
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn the_table_aligns_columns() {
        let text = table(&[result("device-a", DeviceStatus::Succeeded, 1234)]);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("DEVICE    DPS INSTANCE"));
        assert!(lines[1].contains("1.23 s"));
        assert!(lines[1].ends_with("confirmed"));
    }
}
