//! The series copied from the proxy's components when `/metrics` is scraped: the breaker
//! (state changes, origin calls, failures, latency), the cache (hits, misses, coalesced
//! waits), the Redis links (latency, errors) and the process itself. The components count in
//! their own atomics, so the request path never touches the registry for these.

use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts, Registry};
use shouhu_fallback::SnapshotStore;
use shouhu_fallback::journal::Journal;
use shouhu_fallback::redis_link::{LinkErrorKind, LinkStats};

use super::copied::CopiedHistograms;
use super::process::ProcessStats;
use super::{MetricsError, raise};
use crate::breaker::{Breaker, BreakerState, FailureKind};
use crate::cache::CodeCache;

/// The `client` label of the Redis series: which link sent the command.
pub const REDIS_CLIENTS: &[&str] = &["snapshot", "journal"];

/// What [`super::Metrics::sync_components`] reads.
#[derive(Clone, Copy, Debug)]
pub struct Components<'a> {
    /// The breaker on the origin.
    pub breaker: &'a Breaker,
    /// The display path's cache, if it runs.
    pub cache: Option<&'a CodeCache>,
    /// The snapshot store (its link also serves the change feed and the fallback issuer).
    pub store: Option<&'a SnapshotStore>,
    /// The write journal (its link also serves the replayer).
    pub journal: Option<&'a Journal>,
}

#[derive(Clone, Debug)]
pub(super) struct ComponentSeries {
    transitions: Vec<(BreakerState, IntCounter)>,
    origin_calls: IntCounter,
    origin_failures: Vec<(FailureKind, IntCounter)>,
    origin_duration: CopiedHistograms,
    cache_hits: IntCounter,
    cache_misses: IntCounter,
    cache_coalesced: IntCounter,
    redis_duration: CopiedHistograms,
    /// `[client][kind]`.
    redis_errors: Vec<Vec<IntCounter>>,
    cpu_seconds: prometheus::Counter,
    resident: IntGauge,
    open_fds: IntGauge,
    max_fds: IntGauge,
}

fn counter(registry: &Registry, name: &str, help: &str) -> Result<IntCounter, MetricsError> {
    let c = IntCounter::new(name, help)?;
    registry.register(Box::new(c.clone()))?;
    Ok(c)
}

fn gauge(registry: &Registry, name: &str, help: &str) -> Result<IntGauge, MetricsError> {
    let g = IntGauge::new(name, help)?;
    registry.register(Box::new(g.clone()))?;
    Ok(g)
}

impl ComponentSeries {
    /// Registers them; `origin_failures` is `shouhu_origin_failures_total`, registered by the
    /// caller.
    pub(super) fn register(
        registry: &Registry,
        origin_failures: &IntCounterVec,
    ) -> Result<Self, MetricsError> {
        let transitions = IntCounterVec::new(
            Opts::new(
                "shouhu_breaker_transitions_total",
                "Times the origin circuit breaker changed state, by the state it entered.",
            ),
            &["to"],
        )?;
        registry.register(Box::new(transitions.clone()))?;
        let origin_duration = CopiedHistograms::new(
            "shouhu_origin_call_duration_seconds",
            "Time from a call's grant to the origin's answer, or to its failure.",
            None,
        )?;
        registry.register(Box::new(origin_duration.clone()))?;
        let redis_duration = CopiedHistograms::new(
            "shouhu_redis_command_duration_seconds",
            "Time of each Redis command or pipeline sent, answered or not, by client.",
            Some(("client", REDIS_CLIENTS)),
        )?;
        registry.register(Box::new(redis_duration.clone()))?;
        let redis_errors = IntCounterVec::new(
            Opts::new(
                "shouhu_redis_errors_total",
                "Redis commands that failed, by client and kind (down: not sent, no connection).",
            ),
            &["client", "kind"],
        )?;
        registry.register(Box::new(redis_errors.clone()))?;
        let cpu_seconds = prometheus::Counter::new(
            "shouhu_process_cpu_seconds_total",
            "User and system CPU time the proxy process used.",
        )?;
        registry.register(Box::new(cpu_seconds.clone()))?;
        let cpus = gauge(
            registry,
            "shouhu_process_cpus",
            "CPUs the proxy process may run on.",
        )?;
        cpus.set(
            std::thread::available_parallelism()
                .map_or(0, |n| i64::try_from(n.get()).unwrap_or(i64::MAX)),
        );
        Ok(Self {
            transitions: BreakerState::ALL
                .iter()
                .map(|s| (*s, transitions.with_label_values(&[s.as_str()])))
                .collect(),
            origin_calls: counter(
                registry,
                "shouhu_origin_calls_total",
                "Calls to the origin whose end the breaker recorded, failed or not.",
            )?,
            origin_failures: FailureKind::ALL
                .iter()
                .map(|k| (*k, origin_failures.with_label_values(&[k.as_str()])))
                .collect(),
            origin_duration,
            cache_hits: counter(
                registry,
                "shouhu_cache_hits_total",
                "Display lookups that found a code to serve (fresh or stale).",
            )?,
            cache_misses: counter(
                registry,
                "shouhu_cache_misses_total",
                "Display lookups that found no code to serve (absent or unusable).",
            )?,
            cache_coalesced: counter(
                registry,
                "shouhu_cache_coalesced_waits_total",
                "Display requests that waited on an origin fetch another request had started \
                 for the same citizen.",
            )?,
            redis_duration,
            redis_errors: REDIS_CLIENTS
                .iter()
                .map(|c| {
                    LinkErrorKind::ALL
                        .iter()
                        .map(|k| redis_errors.with_label_values(&[c, k.as_str()]))
                        .collect()
                })
                .collect(),
            cpu_seconds,
            resident: gauge(
                registry,
                "shouhu_process_resident_memory_bytes",
                "Resident memory of the proxy process.",
            )?,
            open_fds: gauge(
                registry,
                "shouhu_process_open_fds",
                "File descriptors the proxy process holds open (connections among them).",
            )?,
            max_fds: gauge(
                registry,
                "shouhu_process_max_fds",
                "The proxy process's limit on open file descriptors.",
            )?,
        })
    }

    pub(super) fn sync(&self, c: &Components<'_>) {
        let stats = c.breaker.stats();
        for (state, counter) in &self.transitions {
            raise(counter, stats.transitions(*state));
        }
        raise(&self.origin_calls, stats.calls());
        for (kind, counter) in &self.origin_failures {
            raise(counter, stats.failures(*kind));
        }
        self.origin_duration.set(0, stats.latency());
        if let Some(cache) = c.cache {
            let s = cache.stats();
            raise(&self.cache_hits, s.hits());
            raise(&self.cache_misses, s.misses());
            raise(&self.cache_coalesced, s.coalesced_waits());
        }
        let links = [
            c.store.map(SnapshotStore::link_stats),
            c.journal.map(Journal::link_stats),
        ];
        for (i, link) in links.iter().enumerate() {
            if let Some(link) = link {
                self.sync_link(i, link);
            }
        }
        let p = ProcessStats::read();
        let counted = self.cpu_seconds.get();
        if p.cpu_seconds > counted {
            self.cpu_seconds.inc_by(p.cpu_seconds - counted);
        }
        let g = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        self.resident.set(g(p.resident_bytes));
        self.open_fds.set(g(p.open_fds));
        self.max_fds.set(g(p.max_fds));
    }

    fn sync_link(&self, client: usize, link: &LinkStats) {
        self.redis_duration.set(client, link.latency());
        if let Some(counters) = self.redis_errors.get(client) {
            for (kind, counter) in LinkErrorKind::ALL.iter().zip(counters) {
                raise(counter, link.errors(*kind));
            }
        }
    }
}
