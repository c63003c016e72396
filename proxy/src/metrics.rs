//! Every metric of the proxy, registered in one [`Registry`] (not Prometheus's global one, so
//! several proxies can live in one test process), with label values only from enums. The
//! catalog, with meanings and the one bucket set of every latency histogram
//! ([`LATENCY_BUCKETS`]), is `docs/METRICS.md`; a test checks it lists every name registered
//! here, and another that every metric the dashboards and alert rules use exists.
//!
//! Three ways a series gets its value:
//!
//! - **On the request path**, through handles resolved once in [`Metrics::new`]
//!   (`shouhu_requests_total`, `shouhu_request_duration_seconds`, by class and outcome): one
//!   array index and an atomic addition, no lookup, no allocation.
//! - **Copied when `/metrics` is scraped** from totals the components keep in their own
//!   atomics: admission ([`Metrics::sync_admission`]), the rate limits, the replayer, and the
//!   breaker, cache, Redis links and process ([`Metrics::sync_components`]). A copied
//!   counter is raised to the component's total, so it stays monotonic.
//! - **Gauges set when scraped** by the admin endpoint (breaker state, cache entries,
//!   watermark age, journal backlog, waiting room).
//!
//! Every series of the counters exists from the start (at zero), so dashboards and alerts see
//! them before the first event.

mod admission;
mod components;
mod copied;
mod process;

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};
use std::sync::atomic::Ordering;

use shouhu_code::Colour;
use shouhu_fallback::journal::replayer::ReplayCounters;
pub use shouhu_fallback::redis_link::LATENCY_BUCKETS;

use self::admission::AdmissionSeries;
use self::components::ComponentSeries;
pub use self::components::{Components, REDIS_CLIENTS};
use crate::admission::AdmissionSnapshot;
use crate::breaker::FailureKind;
use crate::classify::{CLASSES, class_index};
use crate::service::Ending;
use shouhu_config::proxy::RouteClass;

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
    /// `shouhu_request_duration_seconds`, indexed as `request_series`.
    durations: Vec<Histogram>,
    auth_refusals: IntCounterVec,
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
    components: ComponentSeries,
    replay: [IntCounter; 4],
    /// `shouhu_rate_limit_keys` for ip, subject.
    rate_keys: [IntGauge; 2],
    /// `shouhu_rate_limit_untracked_total` for ip, subject.
    rate_untracked: [IntCounter; 2],
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
                "Time from the request's arrival to the end of its answer, by class and outcome.",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["class", "outcome"],
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
        let admission =
            AdmissionSeries::register(&registry, origin_in_flight.clone(), origin_limit.clone())?;
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
        let components = ComponentSeries::register(&registry, &origin_failures)?;
        let build_info = IntGaugeVec::new(
            Opts::new(
                "shouhu_build_info",
                "Always 1; the version of the running proxy is in the label.",
            ),
            &["version"],
        )?;
        registry.register(Box::new(build_info.clone()))?;
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);

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
            .flat_map(|class| {
                Ending::labels()
                    .map(|ending| duration_vec.with_label_values(&[class.as_str(), ending]))
            })
            .collect();
        Ok(Self {
            registry,
            requests,
            request_series,
            durations,
            auth_refusals,
            fallback_codes,
            breaker_state,
            cache_entries,
            watermark_age,
            origin_in_flight,
            origin_limit,
            journal_backlog,
            reloads,
            admission,
            components,
            replay,
            waiting_room_depth,
            waiting_room_wait,
            rate_keys,
            rate_untracked,
        })
    }

    /// Copies admission's gauges and totals into the registry.
    pub fn sync_admission(&self, snap: &AdmissionSnapshot) {
        self.admission.sync(snap);
    }

    /// Copies what the breaker, the cache, the Redis links and the process counted into the
    /// registry (call when `/metrics` is scraped).
    pub fn sync_components(&self, components: &Components<'_>) {
        self.components.sync(components);
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
        if let Some(h) = self.durations.get(series) {
            h.observe(seconds);
        }
    }

    /// Counts a 401 at the edge; `reason` is one of [`AUTH_REASONS`].
    pub fn auth_refused(&self, reason: &'static str) {
        self.auth_refusals.with_label_values(&[reason]).inc();
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

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used, reason = "tests")]
    use std::time::Duration;

    use super::*;
    use crate::breaker::{Breaker, BreakerConfig, OriginOutcome};
    use crate::cache::{CacheLimits, CodeCache};

    /// The value of the first sample line starting with `series `.
    fn value(text: &str, series: &str) -> f64 {
        let prefix = format!("{series} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .unwrap_or_else(|| panic!("no {series} in\n{text}"))
            .parse()
            .unwrap()
    }

    #[test]
    fn names_follow_the_convention() {
        let m = Metrics::new().unwrap();
        let families = m.registry().gather();
        assert!(families.len() >= 8);
        for f in families {
            let name = f.name();
            assert!(name.starts_with("shouhu_"), "{name}");
            let kind = f.get_field_type();
            let counter = kind == prometheus::proto::MetricType::COUNTER;
            assert_eq!(counter, name.ends_with("_total"), "{name}");
            if kind == prometheus::proto::MetricType::HISTOGRAM {
                assert!(
                    name.ends_with("_seconds"),
                    "{name}: a latency in base units"
                );
            }
            for unit in ["_ms", "_milliseconds", "_micros", "_kb", "_mb", "_minutes"] {
                assert!(!name.contains(unit), "{name}: not a base unit");
            }
        }
    }

    #[test]
    fn the_catalog_lists_every_metric() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/METRICS.md");
        let catalog = std::fs::read_to_string(path).unwrap();
        for f in Metrics::new().unwrap().registry().gather() {
            assert!(
                catalog.contains(&format!("`{}`", f.name())),
                "{} is not in docs/METRICS.md",
                f.name()
            );
        }
    }

    #[test]
    fn requests_are_counted_by_class_and_outcome() {
        let m = Metrics::new().unwrap();
        m.request(RouteClass::Display, Ending::Shed, 0.001);
        assert_eq!(m.requests_of(RouteClass::Display, "shed").get(), 1);
        let text = String::from_utf8(m.render()).unwrap();
        assert!(text.contains(r#"shouhu_requests_total{class="display",outcome="shed"} 1"#));
        let bucket =
            r#"shouhu_request_duration_seconds_bucket{class="display",outcome="shed",le="0.001"}"#;
        assert_eq!(value(&text, bucket), 1.0);
        let other = r#"shouhu_request_duration_seconds_count{class="display",outcome="origin"}"#;
        assert_eq!(value(&text, other), 0.0);
        assert_eq!(
            value(
                &text,
                &format!(
                    "shouhu_build_info{{version=\"{}\"}}",
                    env!("CARGO_PKG_VERSION")
                )
            ),
            1.0
        );
    }

    #[tokio::test]
    async fn components_are_copied_when_scraped() {
        let m = Metrics::new().unwrap();
        let breaker = Breaker::new(BreakerConfig::default());
        let cache = CodeCache::new(CacheLimits {
            ttl: Duration::from_secs(30),
            max_stale: Duration::from_secs(300),
            max_entries: 10,
            max_bytes: 1 << 20,
        });
        let sync = || {
            m.sync_components(&Components {
                breaker: &breaker,
                cache: Some(&cache),
                store: None,
                journal: None,
            });
            String::from_utf8(m.render()).unwrap()
        };
        let text = sync();
        assert_eq!(
            value(
                &text,
                r#"shouhu_redis_errors_total{client="journal",kind="down"}"#
            ),
            0.0
        );
        assert_eq!(
            value(
                &text,
                r#"shouhu_redis_command_duration_seconds_count{client="snapshot"}"#
            ),
            0.0
        );
        for _ in 0..5 {
            breaker.record(OriginOutcome::Failure(FailureKind::Refused));
        }
        breaker.record(OriginOutcome::Success);
        breaker.observe_latency(Duration::from_millis(7));
        cache.stats().hit();
        cache.stats().hit();
        cache.stats().miss();
        cache.stats().coalesced();
        let text = sync();
        assert_eq!(
            value(&text, r#"shouhu_breaker_transitions_total{to="open"}"#),
            1.0
        );
        assert_eq!(
            value(&text, r#"shouhu_breaker_transitions_total{to="closed"}"#),
            0.0
        );
        assert_eq!(value(&text, "shouhu_origin_calls_total"), 6.0);
        assert_eq!(
            value(&text, r#"shouhu_origin_failures_total{kind="refused"}"#),
            5.0
        );
        assert_eq!(
            value(
                &text,
                r#"shouhu_origin_call_duration_seconds_bucket{le="0.005"}"#
            ),
            0.0
        );
        assert_eq!(
            value(
                &text,
                r#"shouhu_origin_call_duration_seconds_bucket{le="0.01"}"#
            ),
            1.0
        );
        assert_eq!(
            value(
                &text,
                r#"shouhu_origin_call_duration_seconds_bucket{le="+Inf"}"#
            ),
            1.0
        );
        assert_eq!(value(&text, "shouhu_cache_hits_total"), 2.0);
        assert_eq!(value(&text, "shouhu_cache_misses_total"), 1.0);
        assert_eq!(value(&text, "shouhu_cache_coalesced_waits_total"), 1.0);
        assert!(value(&text, "shouhu_process_max_fds") > 0.0);
        assert!(value(&text, "shouhu_process_cpus") >= 1.0);
        // A second scrape with nothing new changes nothing.
        assert_eq!(value(&sync(), "shouhu_origin_calls_total"), 6.0);
    }
}
