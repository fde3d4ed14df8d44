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

/// The exposition text being written.
struct Exposition<'a> {
    out: String,
    instances: &'a [InstanceSnapshot],
}

impl Exposition<'_> {
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

    /// A family with one `{instance}` sample per instance (none where `value` is `None`).
    fn per_instance(
        &mut self,
        (name, kind, help): (&str, &str, &str),
        value: impl Fn(&InstanceCounters, &Utilisation) -> Option<u64>,
    ) {
        self.header(name, kind, help);
        for (instance, counters, utilisation) in self.instances {
            if let Some(value) = value(counters, utilisation) {
                self.sample(name, &[("instance", instance)], value);
            }
        }
    }

    /// A counter family with one `{instance, label}` sample per instance and label value.
    fn per_instance_by<const N: usize>(
        &mut self,
        (name, help): (&str, &str),
        label: &str,
        values: impl Fn(&InstanceCounters) -> [(&'static str, u64); N],
    ) {
        self.header(name, "counter", help);
        for (instance, counters, _) in self.instances {
            for (label_value, value) in values(counters) {
                self.sample(name, &[("instance", instance), (label, label_value)], value);
            }
        }
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
    let mut f = Exposition {
        out: String::new(),
        instances: snapshots,
    };
    f.header(
        "dps_emulator_instances",
        "gauge",
        "DPS instances in this emulator.",
    );
    let _ = writeln!(f.out, "dps_emulator_instances {}", snapshots.len());

    let name = "dps_emulator_http_requests_total";
    f.header(
        name,
        "counter",
        "HTTP requests answered, by instance, operation and status.",
    );
    for ((instance, operation, status), count) in requests {
        let status = status.to_string();
        let labels = [
            ("instance", instance.as_str()),
            ("operation", operation),
            ("status", &status),
        ];
        f.sample(name, &labels, *count);
    }

    f.per_instance(
        (
            "dps_emulator_registrations_requested_total",
            "counter",
            "Register requests admitted (not throttled, not refused).",
        ),
        |c, _| Some(c.registrations_requested),
    );
    f.per_instance_by(
        (
            "dps_emulator_registrations_completed_total",
            "Registration operations finished, by final status.",
        ),
        "status",
        |c| {
            [
                ("assigned", c.assigned),
                ("failed", c.failed),
                ("disabled", c.disabled),
            ]
        },
    );
    f.per_instance_by(
        ("dps_emulator_throttled_total", "429 answers, by limit."),
        "limit",
        |c| {
            [
                ("registrations_per_minute", c.throttled_registration_rate),
                ("device_polls", c.throttled_poll_rate),
                ("capacity", c.throttled_capacity),
            ]
        },
    );
    f.per_instance_by(
        (
            "dps_emulator_injected_faults_total",
            "Injected faults, by kind.",
        ),
        "kind",
        |c| {
            [
                ("error", c.injected_errors),
                ("latency", c.injected_latency),
            ]
        },
    );
    f.per_instance(
        (
            "dps_emulator_operation_polls_total",
            "counter",
            "Operation-status polls admitted.",
        ),
        |c, _| Some(c.polls),
    );
    f.per_instance(
        (
            "dps_emulator_unauthorized_total",
            "counter",
            "Device requests refused with 401.",
        ),
        |c, _| Some(c.unauthorized),
    );
    f.per_instance(
        (
            "dps_emulator_registrations",
            "gauge",
            "Registration records held.",
        ),
        |_, u| Some(u.registrations),
    );
    f.per_instance(
        (
            "dps_emulator_registrations_capacity",
            "gauge",
            "Maximum registration records (absent when unlimited).",
        ),
        |_, u| u.max_registrations,
    );
    f.per_instance(
        (
            "dps_emulator_registrations_last_minute",
            "gauge",
            "Register requests admitted in the last 60 seconds.",
        ),
        |_, u| Some(u.registrations_last_minute),
    );
    f.per_instance(
        (
            "dps_emulator_registrations_per_minute_limit",
            "gauge",
            "The registrations-per-minute limit (absent when unlimited).",
        ),
        |_, u| u.registrations_per_minute_limit.map(u64::from),
    );
    f.per_instance(
        (
            "dps_emulator_operations_assigning",
            "gauge",
            "Operations still assigning.",
        ),
        |_, u| Some(u.assigning),
    );
    f.out
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
