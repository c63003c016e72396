//! [`AdmissionConfig`]: the `[admission]` section in the units the code uses, with the
//! ceiling from `origin.max_in_flight` already folded in.

use std::time::Duration;

use super::Priority;

/// Admission's settings; see `[admission]` in `config/examples/proxy.toml`.
#[derive(Clone, Debug, PartialEq)]
pub struct AdmissionConfig {
    /// Adapt the limit to the origin's latency; false: the limit is `max_limit`.
    pub adaptive: bool,
    /// The floor of the limit (at least 1).
    pub min_limit: usize,
    /// The limit at start and after [`Admission::slow_start`](super::Admission::slow_start).
    pub initial_limit: usize,
    /// The ceiling of the limit: `[admission] max_limit`, lowered to `origin.max_in_flight`
    /// when that is set.
    pub max_limit: usize,
    /// The median latency over the baseline at which the limit stops growing: 2.0 lets it
    /// double.
    pub latency_tolerance: f64,
    /// The baseline is never taken as lower than this.
    pub latency_floor: Duration,
    /// The control window.
    pub window: Duration,
    /// How long the baseline may go unseen before it is measured again.
    pub probe_interval: Duration,
    /// Waiters at most; 0: nobody waits.
    pub max_waiters: usize,
    /// The wait of a new arrival at a standing queue.
    pub codel_target: Duration,
    /// How long the queue must have stayed non-empty to count as standing.
    pub codel_interval: Duration,
    /// The longest wait, by [`Priority::index`].
    pub max_wait: [Duration; Priority::COUNT],
}

impl AdmissionConfig {
    /// From the `[admission]` section and `ceiling` = `origin.max_in_flight` (0: none beyond
    /// `max_limit`).
    #[must_use]
    pub fn from_config(c: &shouhu_config::proxy::Admission, ceiling: usize) -> Self {
        let max_limit = match ceiling {
            0 => c.max_limit.get(),
            n => n.min(c.max_limit.get()),
        };
        let min_limit = c.min_limit.get().min(max_limit);
        let w = &c.max_wait;
        Self {
            adaptive: c.adaptive,
            min_limit,
            initial_limit: c.initial_limit.get().clamp(min_limit, max_limit),
            max_limit,
            latency_tolerance: 1.0 + f64::from(c.latency_buffer_percent) / 100.0,
            latency_floor: c.latency_floor.into(),
            window: c.window.into(),
            probe_interval: c.probe_interval.into(),
            max_waiters: c.max_waiters,
            codel_target: c.codel_target.into(),
            codel_interval: c.codel_interval.into(),
            max_wait: [
                w.scan.into(),
                w.display_no_code.into(),
                w.declare.into(),
                w.register.into(),
                w.display_refresh.into(),
                w.other.into(),
            ],
        }
    }

    /// The longest wait of `priority`.
    #[must_use]
    pub fn max_wait(&self, priority: Priority) -> Duration {
        self.max_wait[priority.index()]
    }

    /// The same settings made consistent: floor at least 1, floor <= initial <= ceiling,
    /// positive windows. `from_config` output already is; hand-built configs (tests, tools)
    /// may not be.
    pub(crate) fn normalized(mut self) -> Self {
        self.max_limit = self.max_limit.max(1);
        self.min_limit = self.min_limit.clamp(1, self.max_limit);
        self.initial_limit = self.initial_limit.clamp(self.min_limit, self.max_limit);
        if !(self.latency_tolerance.is_finite() && self.latency_tolerance > 1.0) {
            self.latency_tolerance = 2.0;
        }
        self.window = self.window.max(Duration::from_millis(1));
        self.probe_interval = self.probe_interval.max(self.window * 2);
        self.codel_interval = self.codel_interval.max(Duration::from_millis(1));
        self
    }
}

impl Default for AdmissionConfig {
    /// The defaults of `[admission]`, with no ceiling from `origin.max_in_flight`.
    fn default() -> Self {
        Self::from_config(&shouhu_config::proxy::Admission::default(), 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ceiling_lowers_the_maximum_and_zero_means_none() {
        let section = shouhu_config::proxy::Admission::default();
        let open = AdmissionConfig::from_config(&section, 0);
        assert_eq!(open.max_limit, 200);
        assert_eq!(open.min_limit, 2);
        assert_eq!(open.initial_limit, 4);
        assert!((open.latency_tolerance - 2.0).abs() < 1e-9);
        assert_eq!(open.max_wait(Priority::Scan), Duration::from_millis(200));
        let capped = AdmissionConfig::from_config(&section, 3);
        assert_eq!(capped.max_limit, 3);
        assert_eq!(capped.initial_limit, 3);
        let tiny = AdmissionConfig::from_config(&section, 1);
        assert_eq!(
            (tiny.min_limit, tiny.initial_limit, tiny.max_limit),
            (1, 1, 1)
        );
    }
}
