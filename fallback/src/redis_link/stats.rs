//! What a [`RedisLink`](super::RedisLink) counts for metrics: [`LinkStats`], the latency of
//! every command in a [`LatencyHistogram`] over [`LATENCY_BUCKETS`] (the one bucket set of
//! every shouhu latency histogram) and the failures by [`LinkErrorKind`], in atomics that a
//! metrics layer reads when scraped.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::{LinkError, is_connection_error};

/// How a Redis command failed: a bounded metric label.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LinkErrorKind {
    /// No connection: the command was not sent.
    Down,
    /// No answer within the command's timeout.
    Timeout,
    /// The connection broke during the command (or Redis is unusable, e.g. `CLUSTERDOWN`).
    Connection,
    /// Redis answered with an error (wrong type, script error, no permission).
    Reply,
}

impl LinkErrorKind {
    /// Every value, in the order of [`LinkErrorKind::index`].
    pub const ALL: [Self; 4] = [Self::Down, Self::Timeout, Self::Connection, Self::Reply];

    /// A stable label.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Down => "down",
            Self::Timeout => "timeout",
            Self::Connection => "connection",
            Self::Reply => "reply",
        }
    }

    /// A dense index, `0..ALL.len()`.
    #[must_use]
    pub fn index(self) -> usize {
        self as usize
    }

    /// The kind of `e`.
    #[must_use]
    pub fn of(e: &LinkError) -> Self {
        match e {
            LinkError::Down => Self::Down,
            LinkError::Timeout(_) => Self::Timeout,
            LinkError::Redis(e) if is_connection_error(e) => Self::Connection,
            LinkError::Redis(_) => Self::Reply,
            // Not produced by commands: a client that cannot be built never connects.
            LinkError::Config(_) => Self::Connection,
        }
    }
}

/// Upper bounds, in seconds, of the buckets of every latency histogram shouhu exports
/// (`docs/METRICS.md`): from a cache hit or a Redis round trip on loopback to a display
/// deadline and beyond.
pub const LATENCY_BUCKETS: [f64; 13] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// A latency histogram over [`LATENCY_BUCKETS`] in atomics: recording is two relaxed
/// additions, with no lock and no allocation.
#[derive(Debug, Default)]
pub struct LatencyHistogram {
    /// Observations per bucket, not cumulative; the last one is `+Inf`.
    counts: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    sum_nanos: AtomicU64,
}

/// A [`LatencyHistogram`] read at one instant, in Prometheus form.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HistogramSnapshot {
    /// Observations at or below each bound of [`LATENCY_BUCKETS`] (cumulative).
    pub cumulative: [u64; LATENCY_BUCKETS.len()],
    /// Observations in all (the `+Inf` bucket).
    pub count: u64,
    /// Their sum, in seconds.
    pub sum: f64,
}

impl LatencyHistogram {
    /// Records one observation.
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let i = LATENCY_BUCKETS
            .iter()
            .position(|bound| secs <= *bound)
            .unwrap_or(LATENCY_BUCKETS.len());
        if let Some(c) = self.counts.get(i) {
            c.fetch_add(1, Ordering::Relaxed);
        }
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// The counts so far.
    #[must_use]
    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut out = HistogramSnapshot::default();
        let mut running = 0u64;
        for (i, c) in self.counts.iter().enumerate() {
            running = running.saturating_add(c.load(Ordering::Relaxed));
            if let Some(slot) = out.cumulative.get_mut(i) {
                *slot = running;
            }
        }
        out.count = running;
        // Beyond 2^53 ns (104 days of latency summed) the sum loses nanoseconds: harmless.
        out.sum = self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        out
    }
}

/// What a [`RedisLink`] counted since it was opened: the latency of every command or pipeline
/// sent (answered, refused or timed out) and the failures by kind.
#[derive(Debug, Default)]
pub struct LinkStats {
    latency: LatencyHistogram,
    errors: [AtomicU64; LinkErrorKind::ALL.len()],
}

impl LinkStats {
    /// Latency of the commands sent.
    #[must_use]
    pub fn latency(&self) -> HistogramSnapshot {
        self.latency.snapshot()
    }

    /// Failed commands of `kind` so far.
    #[must_use]
    pub fn errors(&self, kind: LinkErrorKind) -> u64 {
        self.errors
            .get(kind.index())
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }

    pub(super) fn failed(&self, kind: LinkErrorKind) {
        if let Some(c) = self.errors.get(kind.index()) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts one command sent at `started` and how it ended.
    pub(super) fn sent<T>(&self, started: std::time::Instant, result: &Result<T, LinkError>) {
        self.latency.observe(started.elapsed());
        if let Err(e) = result {
            self.failed(LinkErrorKind::of(e));
        }
    }
}

#[cfg(test)]
mod tests {
    use redis::RedisError;

    use super::*;

    #[test]
    fn latency_lands_in_cumulative_buckets() {
        let h = LatencyHistogram::default();
        h.observe(Duration::from_micros(100));
        h.observe(Duration::from_millis(30));
        h.observe(Duration::from_secs(60));
        let s = h.snapshot();
        assert_eq!(s.cumulative[0], 1, "0.1 ms <= 0.5 ms");
        assert_eq!(s.cumulative[5], 1, "30 ms > 25 ms");
        assert_eq!(s.cumulative[6], 2, "30 ms <= 50 ms");
        assert_eq!(s.cumulative[12], 2, "60 s is only in +Inf");
        assert_eq!(s.count, 3);
        assert!((s.sum - 60.0301).abs() < 1e-9, "{}", s.sum);
    }

    #[test]
    fn error_kinds_are_dense_and_labelled() {
        for (i, k) in LinkErrorKind::ALL.iter().enumerate() {
            assert_eq!(k.index(), i);
        }
        assert_eq!(LinkErrorKind::of(&LinkError::Down), LinkErrorKind::Down);
        assert_eq!(
            LinkErrorKind::of(&LinkError::Timeout(Duration::ZERO)).as_str(),
            "timeout"
        );
        let reply = RedisError::from((redis::ErrorKind::UnexpectedReturnType, "not an integer"));
        assert_eq!(
            LinkErrorKind::of(&LinkError::Redis(reply)),
            LinkErrorKind::Reply
        );
    }
}
