//! Every metric of the proxy, registered in one [`Registry`] (not Prometheus's global one, so
//! several proxies can live in one test process), with label values only from enums:
//!
//! | name | type | labels |
//! |---|---|---|
//! | `shouhu_requests_total` | counter | `class`, `outcome` ([`crate::service::Ending`]) |
//! | `shouhu_request_duration_seconds` | histogram | `class` |
//! | `shouhu_auth_refusals_total` | counter | `reason` (missing, invalid, expired) |
//! | `shouhu_origin_failures_total` | counter | `kind` (timeout, refused, status_5xx, io) |
//! | `shouhu_fallback_codes_total` | counter | `colour` |
//! | `shouhu_breaker_state` | gauge | none: 0 closed, 1 half-open, 2 open |
//! | `shouhu_cache_entries` | gauge | none |
//! | `shouhu_snapshot_watermark_age_seconds` | gauge | none; -1 when unknown |
//! | `shouhu_origin_in_flight` | gauge | none |
//! | `shouhu_origin_concurrency_limit` | gauge | none; 0 when unlimited |
//! | `shouhu_journal_backlog` | gauge | none; -1 when unknown |
//! | `shouhu_config_reloads_total` | counter | `result` (applied, refused) |
//! | `shouhu_admission_queue_depth` | gauge | `priority` |
//! | `shouhu_admission_admitted_total` | counter | `priority` |
//! | `shouhu_admission_shed_total` | counter | `priority`, `reason` |
//! | `shouhu_admission_abandoned_total` | counter | `priority` |
//! | `shouhu_admission_sojourn_seconds_total` | counter | none: queueing time of admitted calls |
//! | `shouhu_admission_sojourn_recent_max_seconds` | gauge | none |
//! | `shouhu_admission_backoffs_total` | counter | none |
//! | `shouhu_origin_latency_seconds` | gauge | `kind` (baseline, recent); -1 when unknown |
//! | `shouhu_rate_limit_keys` | gauge | `kind` (ip, subject): keys tracked |
//! | `shouhu_rate_limit_untracked_total` | counter | `kind`: checks passed untracked because the key table was full |
//! | `shouhu_waiting_room_depth` | gauge | none: tickets issued, not yet admitted |
//! | `shouhu_waiting_room_wait_seconds` | gauge | none: a newcomer's estimated wait; -1 when nobody is let in |
//! | `shouhu_journal_applied_total`, `_dead_letters_total`, `_retries_total`, `_errors_total` | counter | none |
//!
//! Admission and the replayer keep their own totals; [`Metrics::sync_admission`] and
//! [`Metrics::sync_replay`] copy them into the registry when `/metrics` is scraped.
//!
//! Every series of the counters exists from the start (at zero), so dashboards and alerts see
//! them before the first event. Gauges are set when `/metrics` is scraped.

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};
use std::sync::atomic::Ordering;

use shouhu_code::Colour;
use shouhu_fallback::journal::replayer::ReplayCounters;

use crate::admission::{AdmissionSnapshot, Priority, ShedReason};
use crate::breaker::FailureKind;
use crate::classify::{CLASSES, class_index};
use crate::service::Ending;
use shouhu_config::proxy::RouteClass;

/// Request duration buckets, seconds: from a cache hit to a display deadline and beyond.
const DURATION_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// Session refusal reasons, the labels of `shouhu_auth_refusals_total`.
pub const AUTH_REASONS: &[&str] = &["missing", "invalid", "expired"];

/// A metric could not be created or registered (a programming error: names clash).
#[derive(Debug, thiserror::Error)]
#[error("metrics: {0}")]
pub struct MetricsError(#[from] prometheus::Error);

/// The registry and handles to every series the request path touches.
#[derive(Clone, Debug)]
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    /// `requests` per class and ending, resolved once: `[class * Ending::count() + ending]`.
    request_series: Vec<IntCounter>,
    durations: Vec<Histogram>,
    auth_refusals: IntCounterVec,
    origin_failures: IntCounterVec,
    fallback_codes: IntCounterVec,
    /// `shouhu_breaker_state`.
    pub breaker_state: IntGauge,
    /// `shouhu_cache_entries`.
    pub cache_entries: IntGauge,
    /// `shouhu_snapshot_watermark_age_seconds`.
    pub watermark_age: IntGauge,
    /// `shouhu_origin_in_flight`.
    pub origin_in_flight: IntGauge,
    /// `shouhu_origin_concurrency_limit`.
    pub origin_limit: IntGauge,
    /// `shouhu_journal_backlog`.
    pub journal_backlog: IntGauge,
    /// `shouhu_waiting_room_depth`.
    pub waiting_room_depth: IntGauge,
    /// `shouhu_waiting_room_wait_seconds`.
    pub waiting_room_wait: prometheus::Gauge,
    reloads: IntCounterVec,
    admission: AdmissionSeries,
    replay: [IntCounter; 4],
    /// `shouhu_rate_limit_keys` for ip, subject.
    rate_keys: [IntGauge; 2],
    /// `shouhu_rate_limit_untracked_total` for ip, subject.
    rate_untracked: [IntCounter; 2],
}

/// Admission's series, resolved once.
#[derive(Clone, Debug)]
struct AdmissionSeries {
    queued: Vec<IntGauge>,
    admitted: Vec<IntCounter>,
    /// `[priority * ShedReason::COUNT + reason]`.
    shed: Vec<IntCounter>,
    abandoned: Vec<IntCounter>,
    sojourn_total: prometheus::Counter,
    sojourn_recent_max: prometheus::Gauge,
    backoffs: IntCounter,
    baseline: prometheus::Gauge,
    latency: prometheus::Gauge,
}

/// Raises `counter` to `total` (totals kept elsewhere only grow).
fn raise(counter: &IntCounter, total: u64) {
    let now = counter.get();
    if total > now {
        counter.inc_by(total - now);
    }
}

impl Metrics {
    /// Creates and registers every metric.
    ///
    /// # Errors
    /// A name clash (a programming error).
    pub fn new() -> Result<Self, MetricsError> {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "shouhu_requests_total",
                "Requests answered, by class and how they ended.",
            ),
            &["class", "outcome"],
        )?;
        let duration_vec = HistogramVec::new(
            HistogramOpts::new(
                "shouhu_request_duration_seconds",
                "Time from the request's arrival to the end of its answer, by class.",
            )
            .buckets(DURATION_BUCKETS.to_vec()),
            &["class"],
        )?;
        let auth_refusals = IntCounterVec::new(
            Opts::new(
                "shouhu_auth_refusals_total",
                "Requests refused with 401 at the edge, by reason.",
            ),
            &["reason"],
        )?;
        let origin_failures = IntCounterVec::new(
            Opts::new(
                "shouhu_origin_failures_total",
                "Origin calls that failed, by kind; each is recorded in the breaker.",
            ),
            &["kind"],
        )?;
        let fallback_codes = IntCounterVec::new(
            Opts::new(
                "shouhu_fallback_codes_total",
                "Codes signed by the in-process fallback issuer, by colour.",
            ),
            &["colour"],
        )?;
        let breaker_state = IntGauge::new(
            "shouhu_breaker_state",
            "The origin circuit breaker: 0 closed, 1 half-open, 2 open.",
        )?;
        let cache_entries =
            IntGauge::new("shouhu_cache_entries", "Codes held in the per-user cache.")?;
        let watermark_age = IntGauge::new(
            "shouhu_snapshot_watermark_age_seconds",
            "Age of the snapshot watermark (complete up to); -1 when unknown.",
        )?;
        let origin_in_flight = IntGauge::new(
            "shouhu_origin_in_flight",
            "Calls to the origin in flight now (pass-through and code fetches).",
        )?;
        let origin_limit = IntGauge::new(
            "shouhu_origin_concurrency_limit",
            "The limit on calls to the origin in flight; 0 when unlimited.",
        )?;
        let journal_backlog = IntGauge::new(
            "shouhu_journal_backlog",
            "Journalled declarations not yet applied by the origin; -1 when unknown.",
        )?;
        let reloads = IntCounterVec::new(
            Opts::new(
                "shouhu_config_reloads_total",
                "Config reloads on SIGHUP, by result (applied, refused).",
            ),
            &["result"],
        )?;
        let admission = AdmissionSeries::register(&registry)?;
        let waiting_room_depth = IntGauge::new(
            "shouhu_waiting_room_depth",
            "People in the waiting room: tickets issued and not yet admitted.",
        )?;
        let waiting_room_wait = prometheus::Gauge::new(
            "shouhu_waiting_room_wait_seconds",
            "Estimated wait of someone entering the waiting room now; -1 when nobody is let in.",
        )?;
        let rate_keys_vec = IntGaugeVec::new(
            Opts::new(
                "shouhu_rate_limit_keys",
                "Client addresses and subjects the rate limits track now.",
            ),
            &["kind"],
        )?;
        let rate_untracked_vec = IntCounterVec::new(
            Opts::new(
                "shouhu_rate_limit_untracked_total",
                "Rate-limit checks passed without tracking because the key table was full.",
            ),
            &["kind"],
        )?;
        registry.register(Box::new(rate_keys_vec.clone()))?;
        registry.register(Box::new(rate_untracked_vec.clone()))?;
        let rate_keys = ["ip", "subject"].map(|k| rate_keys_vec.with_label_values(&[k]));
        let rate_untracked = ["ip", "subject"].map(|k| rate_untracked_vec.with_label_values(&[k]));
        registry.register(Box::new(waiting_room_depth.clone()))?;
        registry.register(Box::new(waiting_room_wait.clone()))?;
        let replay = [
            (
                "shouhu_journal_applied_total",
                "Journalled declarations the origin accepted.",
            ),
            (
                "shouhu_journal_dead_letters_total",
                "Journalled declarations the origin rejected, moved to the dead letters.",
            ),
            (
                "shouhu_journal_retries_total",
                "Replay attempts put off because the origin was busy or unreachable.",
            ),
            (
                "shouhu_journal_errors_total",
                "Replay rounds that failed on the journal (Redis).",
            ),
        ]
        .map(|(name, help)| IntCounter::new(name, help));
        let [a, b, c, d] = replay;
        let replay = [a?, b?, c?, d?];
        for counter in &replay {
            registry.register(Box::new(counter.clone()))?;
        }
        registry.register(Box::new(origin_in_flight.clone()))?;
        registry.register(Box::new(origin_limit.clone()))?;
        registry.register(Box::new(journal_backlog.clone()))?;
        registry.register(Box::new(reloads.clone()))?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(duration_vec.clone()))?;
        registry.register(Box::new(auth_refusals.clone()))?;
        registry.register(Box::new(origin_failures.clone()))?;
        registry.register(Box::new(fallback_codes.clone()))?;
        registry.register(Box::new(breaker_state.clone()))?;
        registry.register(Box::new(cache_entries.clone()))?;
        registry.register(Box::new(watermark_age.clone()))?;

        let request_series = CLASSES
            .iter()
            .flat_map(|class| {
                Ending::labels().map(|ending| requests.with_label_values(&[class.as_str(), ending]))
            })
            .collect();
        for reason in AUTH_REASONS {
            auth_refusals.with_label_values(&[reason]);
        }
        for kind in FailureKind::ALL {
            origin_failures.with_label_values(&[kind.as_str()]);
        }
        for colour in Colour::ALL {
            fallback_codes.with_label_values(&[colour.as_str()]);
        }
        watermark_age.set(-1);
        journal_backlog.set(-1);
        for result in ["applied", "refused"] {
            reloads.with_label_values(&[result]);
        }
        let durations = CLASSES
            .iter()
            .map(|c| duration_vec.with_label_values(&[c.as_str()]))
            .collect();
        Ok(Self {
            registry,
            requests,
            request_series,
            durations,
            auth_refusals,
            origin_failures,
            fallback_codes,
            breaker_state,
            cache_entries,
            watermark_age,
            origin_in_flight,
            origin_limit,
            journal_backlog,
            reloads,
            admission,
            replay,
            waiting_room_depth,
            waiting_room_wait,
            rate_keys,
            rate_untracked,
        })
    }

    /// Copies admission's gauges and totals into the registry.
    pub fn sync_admission(&self, snap: &AdmissionSnapshot) {
        let a = &self.admission;
        let gauge = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        self.origin_limit.set(gauge(snap.limit));
        self.origin_in_flight.set(gauge(snap.in_flight));
        for p in Priority::ALL {
            let i = p.index();
            a.queued[i].set(gauge(snap.queued[i]));
            raise(&a.admitted[i], snap.admitted[i]);
            raise(&a.abandoned[i], snap.abandoned[i]);
            for r in ShedReason::ALL {
                raise(
                    &a.shed[i * ShedReason::COUNT + r.index()],
                    snap.shed[i][r.index()],
                );
            }
        }
        let sojourn = snap.sojourn_total.as_secs_f64();
        let counted = a.sojourn_total.get();
        if sojourn > counted {
            a.sojourn_total.inc_by(sojourn - counted);
        }
        a.sojourn_recent_max
            .set(snap.sojourn_recent_max.as_secs_f64());
        raise(&a.backoffs, snap.backoffs);
        a.baseline
            .set(snap.baseline.map_or(-1.0, |d| d.as_secs_f64()));
        a.latency
            .set(snap.latency.map_or(-1.0, |d| d.as_secs_f64()));
    }

    /// Copies the rate limits' key counts into the registry.
    pub fn sync_rate_limits(&self, limits: &crate::ratelimit::RateLimits) {
        let (ips, subjects) = limits.tracked_keys();
        let (ips_untracked, subjects_untracked) = limits.untracked();
        for (gauge, n) in self.rate_keys.iter().zip([ips, subjects]) {
            gauge.set(i64::try_from(n).unwrap_or(i64::MAX));
        }
        for (counter, n) in self
            .rate_untracked
            .iter()
            .zip([ips_untracked, subjects_untracked])
        {
            raise(counter, n);
        }
    }

    /// Copies the replayer's totals into the registry.
    pub fn sync_replay(&self, c: &ReplayCounters) {
        let totals = [&c.applied, &c.dead_lettered, &c.retries, &c.journal_errors];
        for (counter, total) in self.replay.iter().zip(totals) {
            raise(counter, total.load(Ordering::Relaxed));
        }
    }

    /// Counts a config reload.
    pub fn config_reload(&self, applied: bool) {
        let result = if applied { "applied" } else { "refused" };
        self.reloads.with_label_values(&[result]).inc();
    }

    /// Counts one answered request and its duration.
    pub fn request(&self, class: RouteClass, ending: Ending, seconds: f64) {
        let series = class_index(class) * Ending::count() + ending.index();
        if let Some(counter) = self.request_series.get(series) {
            counter.inc();
        }
        if let Some(h) = self.durations.get(class_index(class)) {
            h.observe(seconds);
        }
    }

    /// Counts a 401 at the edge; `reason` is one of [`AUTH_REASONS`].
    pub fn auth_refused(&self, reason: &'static str) {
        self.auth_refusals.with_label_values(&[reason]).inc();
    }

    /// Counts a failed origin call.
    pub fn origin_failed(&self, kind: FailureKind) {
        self.origin_failures
            .with_label_values(&[kind.as_str()])
            .inc();
    }

    /// Counts a fallback code of `colour`.
    pub fn fallback_code(&self, colour: Colour) {
        self.fallback_codes
            .with_label_values(&[colour.as_str()])
            .inc();
    }

    /// The counter of one series, for tests and `/status`.
    #[must_use]
    pub fn requests_of(&self, class: RouteClass, ending: &str) -> IntCounter {
        self.requests.with_label_values(&[class.as_str(), ending])
    }

    /// The registry, for tests that walk it.
    #[must_use]
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The Prometheus text exposition of every metric.
    #[must_use]
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 * 1024);
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::warn!(error = %e, "encoding metrics failed");
        }
        out
    }
}

impl AdmissionSeries {
    fn register(registry: &Registry) -> Result<Self, MetricsError> {
        let queued = IntGaugeVec::new(
            Opts::new(
                "shouhu_admission_queue_depth",
                "Requests waiting for a call to the origin, by priority.",
            ),
            &["priority"],
        )?;
        let admitted = IntCounterVec::new(
            Opts::new(
                "shouhu_admission_admitted_total",
                "Requests given a call to the origin, by priority.",
            ),
            &["priority"],
        )?;
        let shed = IntCounterVec::new(
            Opts::new(
                "shouhu_admission_shed_total",
                "Requests refused a call to the origin, by priority and reason.",
            ),
            &["priority", "reason"],
        )?;
        let abandoned = IntCounterVec::new(
            Opts::new(
                "shouhu_admission_abandoned_total",
                "Waiters whose client went away before a call was free, by priority.",
            ),
            &["priority"],
        )?;
        let sojourn_total = prometheus::Counter::new(
            "shouhu_admission_sojourn_seconds_total",
            "Time admitted requests spent queueing for a call, summed.",
        )?;
        let sojourn_recent_max = prometheus::Gauge::new(
            "shouhu_admission_sojourn_recent_max_seconds",
            "The longest queueing time of an admitted request in the last control window.",
        )?;
        let backoffs = IntCounter::new(
            "shouhu_admission_backoffs_total",
            "Times the concurrency limit backed off on a timeout, 5xx or failed call.",
        )?;
        let latency = prometheus::GaugeVec::new(
            Opts::new(
                "shouhu_origin_latency_seconds",
                "The origin's latency as admission sees it: its unloaded baseline and the \
                 smoothed recent median; -1 when unknown.",
            ),
            &["kind"],
        )?;
        registry.register(Box::new(queued.clone()))?;
        registry.register(Box::new(admitted.clone()))?;
        registry.register(Box::new(shed.clone()))?;
        registry.register(Box::new(abandoned.clone()))?;
        registry.register(Box::new(sojourn_total.clone()))?;
        registry.register(Box::new(sojourn_recent_max.clone()))?;
        registry.register(Box::new(backoffs.clone()))?;
        registry.register(Box::new(latency.clone()))?;
        let by_priority = |v: &IntCounterVec| {
            Priority::ALL
                .iter()
                .map(|p| v.with_label_values(&[p.as_str()]))
                .collect::<Vec<_>>()
        };
        let baseline = latency.with_label_values(&["baseline"]);
        let recent = latency.with_label_values(&["recent"]);
        baseline.set(-1.0);
        recent.set(-1.0);
        Ok(Self {
            queued: Priority::ALL
                .iter()
                .map(|p| queued.with_label_values(&[p.as_str()]))
                .collect(),
            admitted: by_priority(&admitted),
            shed: Priority::ALL
                .iter()
                .flat_map(|p| {
                    ShedReason::ALL
                        .iter()
                        .map(|r| shed.with_label_values(&[p.as_str(), r.as_str()]))
                        .collect::<Vec<_>>()
                })
                .collect(),
            abandoned: by_priority(&abandoned),
            sojourn_total,
            sojourn_recent_max,
            backoffs,
            baseline,
            latency: recent,
        })
    }
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn names_follow_the_convention() {
        let m = Metrics::new().unwrap();
        let families = m.registry().gather();
        assert!(families.len() >= 8);
        for f in families {
            let name = f.name();
            assert!(name.starts_with("shouhu_"), "{name}");
            let counter = f.get_field_type() == prometheus::proto::MetricType::COUNTER;
            assert_eq!(counter, name.ends_with("_total"), "{name}");
        }
    }

    #[test]
    fn requests_are_counted_by_class_and_outcome() {
        let m = Metrics::new().unwrap();
        m.request(RouteClass::Display, Ending::Shed, 0.001);
        assert_eq!(m.requests_of(RouteClass::Display, "shed").get(), 1);
        let text = String::from_utf8(m.render()).unwrap();
        assert!(text.contains(r#"shouhu_requests_total{class="display",outcome="shed"} 1"#));
        assert!(text.contains("shouhu_request_duration_seconds_bucket"));
    }
}
