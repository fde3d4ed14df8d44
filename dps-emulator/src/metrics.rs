//! Prometheus text exposition (format 0.0.4), written by hand.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use crate::instance::{Instance, InstanceCounters, Utilisation};

/// The content type of `/metrics`.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// HTTP request counts by (instance, operation, status).
#[derive(Debug, Default)]
pub struct HttpMetrics {
    requests: Mutex<BTreeMap<(String, &'static str, u16), u64>>,
}

impl HttpMetrics {
    /// Counts one answered request.
    pub fn record(&self, instance: &str, operation: &'static str, status: u16) {
        let mut requests = self
            .requests
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *requests
            .entry((instance.to_owned(), operation, status))
            .or_insert(0) += 1;
    }

    fn snapshot(&self) -> BTreeMap<(String, &'static str, u16), u64> {
        self.requests
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }
}

/// Escapes a label value (backslash, double quote, newline).
pub fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

struct Family<'a> {
    out: &'a mut String,
}

impl Family<'_> {
    fn header(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: u64) {
        let labels: Vec<String> = labels
            .iter()
            .map(|(k, v)| format!("{k}=\"{}\"", escape_label(v)))
            .collect();
        let _ = writeln!(self.out, "{name}{{{}}} {value}", labels.join(","));
    }
}

/// Renders every metric.
pub fn render(instances: &[Arc<Instance>], http: &HttpMetrics) -> String {
    let snapshots: Vec<_> = instances
        .iter()
        .map(|i| (i.name().to_owned(), i.counters(), i.utilisation()))
        .collect();
    render_snapshots(&snapshots, &http.snapshot())
}

/// One instance's name, counters and utilisation at render time.
type InstanceSnapshot = (String, InstanceCounters, Utilisation);

fn render_snapshots(
    snapshots: &[InstanceSnapshot],
    requests: &BTreeMap<(String, &'static str, u16), u64>,
) -> String {
    let mut out = String::new();
    let mut f = Family { out: &mut out };

    f.header(
        "dps_emulator_instances",
        "gauge",
        "DPS instances in this emulator.",
    );
    let _ = writeln!(f.out, "dps_emulator_instances {}", snapshots.len());

    f.header(
        "dps_emulator_http_requests_total",
        "counter",
        "HTTP requests answered, by instance, operation and status.",
    );
    for ((instance, operation, status), count) in requests {
        let status = status.to_string();
        f.sample(
            "dps_emulator_http_requests_total",
            &[
                ("instance", instance),
                ("operation", operation),
                ("status", &status),
            ],
            *count,
        );
    }

    f.header(
        "dps_emulator_registrations_requested_total",
        "counter",
        "Register requests admitted (not throttled, not refused).",
    );
    for (name, counters, _) in snapshots {
        f.sample(
            "dps_emulator_registrations_requested_total",
            &[("instance", name)],
            counters.registrations_requested,
        );
    }

    f.header(
        "dps_emulator_registrations_completed_total",
        "counter",
        "Registration operations finished, by final status.",
    );
    for (name, c, _) in snapshots {
        for (status, value) in [
            ("assigned", c.assigned),
            ("failed", c.failed),
            ("disabled", c.disabled),
        ] {
            f.sample(
                "dps_emulator_registrations_completed_total",
                &[("instance", name), ("status", status)],
                value,
            );
        }
    }

    f.header(
        "dps_emulator_throttled_total",
        "counter",
        "429 answers, by limit.",
    );
    for (name, c, _) in snapshots {
        for (limit, value) in [
            ("registrations_per_minute", c.throttled_registration_rate),
            ("device_polls", c.throttled_poll_rate),
            ("capacity", c.throttled_capacity),
        ] {
            f.sample(
                "dps_emulator_throttled_total",
                &[("instance", name), ("limit", limit)],
                value,
            );
        }
    }

    f.header(
        "dps_emulator_injected_faults_total",
        "counter",
        "Injected faults, by kind.",
    );
    for (name, c, _) in snapshots {
        for (kind, value) in [
            ("error", c.injected_errors),
            ("latency", c.injected_latency),
        ] {
            f.sample(
                "dps_emulator_injected_faults_total",
                &[("instance", name), ("kind", kind)],
                value,
            );
        }
    }

    f.header(
        "dps_emulator_operation_polls_total",
        "counter",
        "Operation-status polls admitted.",
    );
    for (name, c, _) in snapshots {
        f.sample(
            "dps_emulator_operation_polls_total",
            &[("instance", name)],
            c.polls,
        );
    }

    f.header(
        "dps_emulator_unauthorized_total",
        "counter",
        "Device requests refused with 401.",
    );
    for (name, c, _) in snapshots {
        f.sample(
            "dps_emulator_unauthorized_total",
            &[("instance", name)],
            c.unauthorized,
        );
    }

    f.header(
        "dps_emulator_registrations",
        "gauge",
        "Registration records held.",
    );
    for (name, _, u) in snapshots {
        f.sample(
            "dps_emulator_registrations",
            &[("instance", name)],
            u.registrations,
        );
    }

    f.header(
        "dps_emulator_registrations_capacity",
        "gauge",
        "Maximum registration records (absent when unlimited).",
    );
    for (name, _, u) in snapshots {
        if let Some(capacity) = u.max_registrations {
            f.sample(
                "dps_emulator_registrations_capacity",
                &[("instance", name)],
                capacity,
            );
        }
    }

    f.header(
        "dps_emulator_registrations_last_minute",
        "gauge",
        "Register requests admitted in the last 60 seconds.",
    );
    for (name, _, u) in snapshots {
        f.sample(
            "dps_emulator_registrations_last_minute",
            &[("instance", name)],
            u.registrations_last_minute,
        );
    }

    f.header(
        "dps_emulator_registrations_per_minute_limit",
        "gauge",
        "The registrations-per-minute limit (absent when unlimited).",
    );
    for (name, _, u) in snapshots {
        if let Some(limit) = u.registrations_per_minute_limit {
            f.sample(
                "dps_emulator_registrations_per_minute_limit",
                &[("instance", name)],
                u64::from(limit),
            );
        }
    }

    f.header(
        "dps_emulator_operations_assigning",
        "gauge",
        "Operations still assigning.",
    );
    for (name, _, u) in snapshots {
        f.sample(
            "dps_emulator_operations_assigning",
            &[("instance", name)],
            u.assigning,
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_escaped() {
        assert_eq!(escape_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

    #[test]
    fn renders_every_family_in_a_fixed_text() {
        let counters = |base: u64| InstanceCounters {
            registrations_requested: base + 1,
            assigned: base + 2,
            failed: base + 3,
            disabled: base + 4,
            throttled_registration_rate: base + 5,
            throttled_poll_rate: base + 6,
            throttled_capacity: base + 7,
            injected_errors: base + 8,
            injected_latency: base + 9,
            polls: base + 10,
            unauthorized: base + 11,
        };
        let limited = Utilisation {
            registrations: 21,
            max_registrations: Some(22),
            registrations_last_minute: 23,
            registrations_per_minute_limit: Some(24),
            assigned: 25,
            assigning: 26,
        };
        let unlimited = Utilisation {
            max_registrations: None,
            registrations_per_minute_limit: None,
            ..limited.clone()
        };
        let snapshots = [
            ("dps-a".to_owned(), counters(100), limited),
            ("dps-\"b\"".to_owned(), counters(200), unlimited),
        ];
        let http = HttpMetrics::default();
        http.record("dps-a", "register", 202);
        http.record("dps-a", "register", 202);
        http.record("dps-\"b\"", "enrollment_put", 412);
        insta::assert_snapshot!(render_snapshots(&snapshots, &http.snapshot()));
    }

    #[test]
    fn renders_request_counts() {
        let http = HttpMetrics::default();
        http.record("dps-a", "register", 202);
        http.record("dps-a", "register", 202);
        let text = render(&[], &http);
        assert!(text.contains(
            "dps_emulator_http_requests_total{instance=\"dps-a\",operation=\"register\",status=\"202\"} 2"
        ));
        assert!(text.contains("# TYPE dps_emulator_instances gauge\ndps_emulator_instances 0\n"));
    }
}
