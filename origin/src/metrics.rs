//! The origin's Prometheus metrics, all named here and rendered as text on the admin port's
//! `/metrics`. Labels come only from matched route templates and status classes.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;

use crate::capacity::CapacityStatus;
use crate::publisher::PublisherStatus;

/// Every metric name the origin exports.
pub const NAMES: &[&str] = &[
    "shouhu_origin_requests_total",
    "shouhu_origin_in_service",
    "shouhu_origin_crashed",
    "shouhu_origin_crashes_total",
    "shouhu_origin_completed_total",
    "shouhu_origin_wasted_total",
    "shouhu_origin_snapshot_published_total",
    "shouhu_origin_snapshot_failures_total",
    "shouhu_origin_snapshot_pending",
    "shouhu_origin_snapshot_watermark_seconds",
];

/// Request counters by route template and status class.
#[derive(Debug, Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, &'static str), u64>>,
}

/// `2xx`, `4xx`, ...
#[must_use]
pub fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

impl Metrics {
    /// Counts one answered request.
    pub fn count(&self, route: &str, status: u16) {
        if let Ok(mut m) = self.requests.lock() {
            *m.entry((route.to_owned(), status_class(status)))
                .or_default() += 1;
        }
    }

    /// The Prometheus text exposition.
    #[must_use]
    pub fn render(&self, capacity: &CapacityStatus, publisher: &PublisherStatus) -> String {
        let mut out = String::new();
        out.push_str(
            "# HELP shouhu_origin_requests_total Requests answered, by route template and \
             status class.\n# TYPE shouhu_origin_requests_total counter\n",
        );
        if let Ok(m) = self.requests.lock() {
            for ((route, class), n) in m.iter() {
                let _ = writeln!(
                    out,
                    "shouhu_origin_requests_total{{route=\"{route}\",status=\"{class}\"}} {n}"
                );
            }
        }
        let rows: [(&str, &str, &str, u64); 9] = [
            (
                "shouhu_origin_in_service",
                "gauge",
                "Requests in the capacity model's service now.",
                u64::try_from(capacity.in_service).unwrap_or(u64::MAX),
            ),
            (
                "shouhu_origin_crashed",
                "gauge",
                "1 while the capacity model has crashed and refuses connections.",
                u64::from(capacity.crashed),
            ),
            (
                "shouhu_origin_crashes_total",
                "counter",
                "Crashes of the capacity model under sustained overload.",
                capacity.crashes,
            ),
            (
                "shouhu_origin_completed_total",
                "counter",
                "Requests the capacity model completed.",
                capacity.completed,
            ),
            (
                "shouhu_origin_wasted_total",
                "counter",
                "Requests completed after their client had gone.",
                capacity.wasted,
            ),
            (
                "shouhu_origin_snapshot_published_total",
                "counter",
                "Records published to the Redis snapshot.",
                publisher.published,
            ),
            (
                "shouhu_origin_snapshot_failures_total",
                "counter",
                "Snapshot publishing attempts that failed (retried).",
                publisher.failures,
            ),
            (
                "shouhu_origin_snapshot_pending",
                "gauge",
                "Changes waiting to be published to the snapshot.",
                publisher.pending,
            ),
            (
                "shouhu_origin_snapshot_watermark_seconds",
                "gauge",
                "The snapshot's watermark: complete up to this Unix time.",
                publisher.watermark,
            ),
        ];
        for (name, kind, help, value) in rows {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rendered_metric_is_named_and_follows_the_convention() {
        let m = Metrics::default();
        m.count("/api/code", 200);
        let cap = CapacityStatus {
            params: crate::capacity::Params::from_config(
                &shouhu_config::origin::Capacity::default(),
            ),
            in_service: 0,
            crashed: false,
            cold: false,
            crashes: 0,
            completed: 0,
            wasted: 0,
            knee: 10.0,
            peak_throughput: 500.0,
        };
        let publisher = crate::publisher::Publisher::disabled().status();
        let text = m.render(&cap, &publisher);
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let name = line.split(['{', ' ']).next().unwrap_or_default();
            assert!(NAMES.contains(&name), "{name} not in NAMES");
            assert!(name.starts_with("shouhu_"), "{name}");
        }
        for name in NAMES {
            assert!(text.contains(name), "{name} not rendered");
            if text.contains(&format!("# TYPE {name} counter")) {
                assert!(name.ends_with("_total"), "{name}");
            }
        }
        assert!(
            text.contains("shouhu_origin_requests_total{route=\"/api/code\",status=\"2xx\"} 1")
        );
    }
}
