//! [`BreakerStats`]: what the breaker has seen of the origin, in atomics, for metrics to copy
//! when scraped: calls recorded, failures by kind, state changes by target state, and the
//! latency of calls.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use shouhu_fallback::redis_link::{HistogramSnapshot, LatencyHistogram};

use super::{BreakerState, FailureKind};

/// Totals since start; read them with the accessors.
#[derive(Debug, Default)]
pub struct BreakerStats {
    calls: AtomicU64,
    /// By position in [`FailureKind::ALL`].
    failures: [AtomicU64; FailureKind::ALL.len()],
    /// By [`BreakerState::as_gauge`].
    transitions: [AtomicU64; BreakerState::ALL.len()],
    latency: LatencyHistogram,
}

impl BreakerStats {
    /// Origin calls whose end was recorded, failed or not.
    #[must_use]
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// Origin calls that failed with `kind`.
    #[must_use]
    pub fn failures(&self, kind: FailureKind) -> u64 {
        self.failures
            .get(failure_index(kind))
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }

    /// Times the breaker moved to `state`.
    #[must_use]
    pub fn transitions(&self, to: BreakerState) -> u64 {
        self.transitions
            .get(usize::from(to.as_gauge()))
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }

    /// Latency of origin calls, as the callers measured it.
    #[must_use]
    pub fn latency(&self) -> HistogramSnapshot {
        self.latency.snapshot()
    }

    pub(super) fn call(&self, failure: Option<FailureKind>) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        if let Some(c) = failure.and_then(|k| self.failures.get(failure_index(k))) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(super) fn moved(&self, to: BreakerState) {
        if let Some(c) = self.transitions.get(usize::from(to.as_gauge())) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(super) fn observe(&self, latency: Duration) {
        self.latency.observe(latency);
    }
}

fn failure_index(kind: FailureKind) -> usize {
    FailureKind::ALL
        .iter()
        .position(|k| *k == kind)
        .unwrap_or(0)
}
