//! [`AdmissionSnapshot`]: the gauges and running totals that metrics and `/status` export,
//! copied out under one short lock.

use std::time::Duration;

use super::{LimitPhase, Priority, ShedReason};

/// Admission's state at one instant. Counters are totals since start (Prometheus-style
/// monotonic); a metrics layer exports them as they are or adds the difference.
#[derive(Clone, Debug, PartialEq)]
pub struct AdmissionSnapshot {
    /// Calls allowed in flight now.
    pub limit: usize,
    /// Calls in flight now (may exceed `limit` just after it fell).
    pub in_flight: usize,
    /// What the limit is doing.
    pub phase: LimitPhase,
    /// The origin's unloaded latency, once measured.
    pub baseline: Option<Duration>,
    /// The smoothed median latency of recent windows.
    pub latency: Option<Duration>,
    /// Waiters by [`Priority::index`].
    pub queued: [usize; Priority::COUNT],
    /// Waiters in all.
    pub queued_total: usize,
    /// Whether the queue is standing (CoDel: not empty for `codel_interval`).
    pub standing: bool,
    /// Requests given a call, by priority.
    pub admitted: [u64; Priority::COUNT],
    /// Requests refused, by [`Priority::index`] then [`ShedReason::index`].
    pub shed: [[u64; ShedReason::COUNT]; Priority::COUNT],
    /// Waiters whose caller gave up (future dropped) before a decision, by priority.
    pub abandoned: [u64; Priority::COUNT],
    /// Admitted requests whose queueing time is summed in `sojourn_total` (all of them).
    pub sojourn_count: u64,
    /// Total time admitted requests spent queueing.
    pub sojourn_total: Duration,
    /// The largest queueing time of an admitted request since the previous window of the
    /// limit (about `[admission] window`).
    pub sojourn_recent_max: Duration,
    /// Times the limit backed off on a loss.
    pub backoffs: u64,
    /// Times the baseline was probed.
    pub probes: u64,
}

impl AdmissionSnapshot {
    /// Waiters of `priority`.
    #[must_use]
    pub fn queued(&self, priority: Priority) -> usize {
        self.queued[priority.index()]
    }

    /// Requests of `priority` given a call.
    #[must_use]
    pub fn admitted(&self, priority: Priority) -> u64 {
        self.admitted[priority.index()]
    }

    /// Requests of `priority` refused for `reason`.
    #[must_use]
    pub fn shed(&self, priority: Priority, reason: ShedReason) -> u64 {
        self.shed[priority.index()][reason.index()]
    }

    /// Requests refused for `reason`, all priorities.
    #[must_use]
    pub fn shed_for(&self, reason: ShedReason) -> u64 {
        self.shed.iter().map(|row| row[reason.index()]).sum()
    }

    /// Requests refused, all priorities and reasons.
    #[must_use]
    pub fn shed_total(&self) -> u64 {
        self.shed.iter().flatten().sum()
    }

    /// Requests given a call, all priorities.
    #[must_use]
    pub fn admitted_total(&self) -> u64 {
        self.admitted.iter().sum()
    }
}

/// The counters behind the snapshot.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    pub(crate) admitted: [u64; Priority::COUNT],
    pub(crate) shed: [[u64; ShedReason::COUNT]; Priority::COUNT],
    pub(crate) abandoned: [u64; Priority::COUNT],
    pub(crate) sojourn_count: u64,
    pub(crate) sojourn_total: Duration,
    pub(crate) sojourn_max: [Duration; 2],
}

impl Stats {
    pub(crate) fn admit(&mut self, priority: Priority, waited: Duration) {
        self.admitted[priority.index()] += 1;
        self.sojourn_count += 1;
        self.sojourn_total += waited;
        self.sojourn_max[1] = self.sojourn_max[1].max(waited);
    }

    pub(crate) fn shed(&mut self, priority: Priority, reason: ShedReason) {
        self.shed[priority.index()][reason.index()] += 1;
    }

    /// Starts a new period of the recent maximum (called once per window).
    pub(crate) fn roll(&mut self) {
        self.sojourn_max = [self.sojourn_max[1], Duration::ZERO];
    }

    pub(crate) fn recent_max(&self) -> Duration {
        self.sojourn_max[0].max(self.sojourn_max[1])
    }
}
