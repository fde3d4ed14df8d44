//! Prometheus text-format metrics: HTTP requests and latency per route, assignments by outcome,
//! DPS look-ups by result, and the pool's utilisation (read from storage at scrape time).

use std::{collections::BTreeMap, fmt::Write, sync::Mutex, time::Duration};

use crate::model::{DpsInstance, InstanceState};

const BUCKETS_S: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// Reads one gauge value of an instance at a time.
type Gauge = fn(&DpsInstance, i64) -> f64;

#[derive(Default)]
struct Histogram {
    buckets: [u64; BUCKETS_S.len()],
    count: u64,
    sum_s: f64,
}

#[derive(Default)]
struct Inner {
    requests: BTreeMap<(String, String, u16), u64>,
    latency: BTreeMap<String, Histogram>,
    assignments: BTreeMap<&'static str, u64>,
    dps_lookups: BTreeMap<&'static str, u64>,
}

/// The API's counters.
#[derive(Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl Metrics {
    fn with<R>(&self, f: impl FnOnce(&mut Inner) -> R) -> R {
        f(&mut self.inner.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Records one HTTP request (`route` is the matched route template).
    pub fn http_request(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        self.with(|m| {
            *m.requests
                .entry((method.to_owned(), route.to_owned(), status))
                .or_default() += 1;
            let histogram = m.latency.entry(route.to_owned()).or_default();
            let seconds = elapsed.as_secs_f64();
            for (bucket, bound) in histogram.buckets.iter_mut().zip(BUCKETS_S) {
                if seconds <= bound {
                    *bucket += 1;
                }
            }
            histogram.count += 1;
            histogram.sum_s += seconds;
        });
    }

    /// Records an assignment outcome (`created`, `existing`, `moved`, `replayed`, or an error
    /// code).
    pub fn assignment(&self, outcome: &'static str) {
        self.with(|m| *m.assignments.entry(outcome).or_default() += 1);
    }

    /// Records a registration-status look-up result.
    pub fn dps_lookup(&self, result: &'static str) {
        self.with(|m| *m.dps_lookups.entry(result).or_default() += 1);
    }

    /// The exposition text, with the pool's gauges.
    pub fn render(&self, instances: &[DpsInstance], now_ms: i64) -> String {
        let mut out = String::new();
        self.with(|m| {
            out.push_str("# HELP fieldlink_api_http_requests_total HTTP requests by route and status.\n");
            out.push_str("# TYPE fieldlink_api_http_requests_total counter\n");
            for ((method, route, status), count) in &m.requests {
                let _ = writeln!(
                    out,
                    "fieldlink_api_http_requests_total{{method=\"{}\",route=\"{}\",status=\"{status}\"}} {count}",
                    escape(method),
                    escape(route)
                );
            }
            out.push_str("# HELP fieldlink_api_http_request_duration_seconds HTTP request latency.\n");
            out.push_str("# TYPE fieldlink_api_http_request_duration_seconds histogram\n");
            for (route, h) in &m.latency {
                let route = escape(route);
                for (bound, count) in BUCKETS_S.iter().zip(h.buckets) {
                    let _ = writeln!(
                        out,
                        "fieldlink_api_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"{bound}\"}} {count}"
                    );
                }
                let _ = writeln!(
                    out,
                    "fieldlink_api_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {}\n\
                     fieldlink_api_http_request_duration_seconds_sum{{route=\"{route}\"}} {}\n\
                     fieldlink_api_http_request_duration_seconds_count{{route=\"{route}\"}} {}",
                    h.count, h.sum_s, h.count
                );
            }
            out.push_str("# HELP fieldlink_api_assignments_total Assignment requests by outcome.\n");
            out.push_str("# TYPE fieldlink_api_assignments_total counter\n");
            for (outcome, count) in &m.assignments {
                let _ = writeln!(
                    out,
                    "fieldlink_api_assignments_total{{outcome=\"{outcome}\"}} {count}"
                );
            }
            out.push_str("# HELP fieldlink_api_dps_lookups_total Registration-state look-ups by result.\n");
            out.push_str("# TYPE fieldlink_api_dps_lookups_total counter\n");
            for (result, count) in &m.dps_lookups {
                let _ = writeln!(
                    out,
                    "fieldlink_api_dps_lookups_total{{result=\"{result}\"}} {count}"
                );
            }
        });
        let gauges: [(&str, &str, Gauge); 5] = [
            (
                "fieldlink_dps_instance_registrations",
                "Devices assigned to the instance.",
                |i, _| i.registrations as f64,
            ),
            (
                "fieldlink_dps_instance_registration_cap",
                "The instance's registration cap.",
                |i, _| i.registration_cap as f64,
            ),
            (
                "fieldlink_dps_instance_registrations_last_minute",
                "Assignments to the instance in the last minute (sliding estimate).",
                |i, now| i.rate.estimate(now),
            ),
            (
                "fieldlink_dps_instance_rate_limit_per_minute",
                "The instance's registrations-per-minute limit.",
                |i, _| i.rate_limit_per_minute as f64,
            ),
            (
                "fieldlink_dps_instance_active",
                "1 if the instance takes new devices, 0 if draining.",
                |i, _| f64::from(u8::from(i.state == InstanceState::Active)),
            ),
        ];
        for (name, help, value) in gauges {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
            for instance in instances {
                let _ = writeln!(
                    out,
                    "{name}{{instance=\"{}\",region=\"{}\"}} {}",
                    escape(&instance.name),
                    escape(&instance.region),
                    value(instance, now_ms)
                );
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let metrics = Metrics::default();
        metrics.http_request("POST", "/v1/assignments", 200, Duration::from_millis(3));
        metrics.http_request("POST", "/v1/assignments", 200, Duration::from_millis(30));
        metrics.assignment("created");
        metrics.dps_lookup("found");
        let text = metrics.render(&[], 0);
        assert!(text.contains(
            "fieldlink_api_http_requests_total{method=\"POST\",route=\"/v1/assignments\",status=\"200\"} 2"
        ));
        assert!(text.contains(
            "fieldlink_api_http_request_duration_seconds_bucket{route=\"/v1/assignments\",le=\"0.005\"} 1"
        ));
        assert!(text.contains(
            "fieldlink_api_http_request_duration_seconds_count{route=\"/v1/assignments\"} 2"
        ));
        assert!(text.contains("fieldlink_api_assignments_total{outcome=\"created\"} 1"));
        assert!(text.contains("# TYPE fieldlink_dps_instance_registrations gauge"));
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let value = line.rsplit(' ').next().unwrap_or_default();
            assert!(value.parse::<f64>().is_ok(), "bad sample line {line:?}");
        }
    }
}
