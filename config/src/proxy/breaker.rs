//! `[breaker]`: the circuit breaker on the origin. It opens on failures in a row, on timeouts
//! in a row, or on the share of failures over a sliding window; after a cool-down a few probes
//! on a short timeout decide whether it closes again.

use std::num::NonZeroU32;

use serde::{Deserialize, Serialize};

use crate::duration::Duration;
use crate::validate::Validator;

const fn non_zero(n: u32) -> NonZeroU32 {
    match NonZeroU32::new(n) {
        Some(n) => n,
        // Evaluated at compile time: a zero here fails the build, never a run.
        None => panic!("zero"),
    }
}

/// Default `breaker.consecutive_failures`.
pub const DEFAULT_BREAKER_CONSECUTIVE_FAILURES: NonZeroU32 = non_zero(5);
/// Default `breaker.consecutive_timeouts`: fewer than failures, since each costs a caller a
/// whole timeout.
pub const DEFAULT_BREAKER_CONSECUTIVE_TIMEOUTS: NonZeroU32 = non_zero(3);
/// Default `breaker.error_percent`.
pub const DEFAULT_BREAKER_ERROR_PERCENT: u8 = 50;
/// Default `breaker.min_requests`.
pub const DEFAULT_BREAKER_MIN_REQUESTS: NonZeroU32 = non_zero(20);
/// Default `breaker.window`.
pub const DEFAULT_BREAKER_WINDOW: Duration = Duration::from_secs(10);
/// Default `breaker.open_for`.
pub const DEFAULT_BREAKER_OPEN_FOR: Duration = Duration::from_secs(5);
/// Default `breaker.probes`.
pub const DEFAULT_BREAKER_PROBES: NonZeroU32 = non_zero(1);
/// Default `breaker.probe_timeout`.
pub const DEFAULT_BREAKER_PROBE_TIMEOUT: Duration = Duration::from_millis(300);

/// `[breaker]` of the proxy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Breaker {
    /// Failures in a row that open it. Default [`DEFAULT_BREAKER_CONSECUTIVE_FAILURES`].
    #[serde(deserialize_with = "crate::number::at_least_one")]
    pub consecutive_failures: NonZeroU32,
    /// Timeouts in a row that open it. Default [`DEFAULT_BREAKER_CONSECUTIVE_TIMEOUTS`].
    #[serde(deserialize_with = "crate::number::at_least_one")]
    pub consecutive_timeouts: NonZeroU32,
    /// Share of failed requests over `window`, in percent (1 to 100), that opens it.
    /// Default [`DEFAULT_BREAKER_ERROR_PERCENT`].
    pub error_percent: u8,
    /// The share is judged only over at least this many requests. Default
    /// [`DEFAULT_BREAKER_MIN_REQUESTS`].
    #[serde(deserialize_with = "crate::number::at_least_one")]
    pub min_requests: NonZeroU32,
    /// The sliding window of the share. Default [`DEFAULT_BREAKER_WINDOW`].
    pub window: Duration,
    /// Cool-down before the first probe. Default [`DEFAULT_BREAKER_OPEN_FOR`].
    pub open_for: Duration,
    /// Probes in flight at once while half-open. Default [`DEFAULT_BREAKER_PROBES`].
    #[serde(deserialize_with = "crate::number::at_least_one")]
    pub probes: NonZeroU32,
    /// Timeout of a probe; at most `deadlines.display`. Default
    /// [`DEFAULT_BREAKER_PROBE_TIMEOUT`].
    pub probe_timeout: Duration,
}

impl Default for Breaker {
    fn default() -> Self {
        Self {
            consecutive_failures: DEFAULT_BREAKER_CONSECUTIVE_FAILURES,
            consecutive_timeouts: DEFAULT_BREAKER_CONSECUTIVE_TIMEOUTS,
            error_percent: DEFAULT_BREAKER_ERROR_PERCENT,
            min_requests: DEFAULT_BREAKER_MIN_REQUESTS,
            window: DEFAULT_BREAKER_WINDOW,
            open_for: DEFAULT_BREAKER_OPEN_FOR,
            probes: DEFAULT_BREAKER_PROBES,
            probe_timeout: DEFAULT_BREAKER_PROBE_TIMEOUT,
        }
    }
}

impl Breaker {
    pub(crate) fn check(&self, v: &mut Validator<'_>, display_deadline: Duration) {
        if !(1..=100).contains(&self.error_percent) {
            v.error(
                "breaker.error_percent",
                format_args!("must be in 1..=100 (got {})", self.error_percent),
            );
        }
        v.positive("breaker.window", self.window);
        v.positive("breaker.open_for", self.open_for);
        v.positive("breaker.probe_timeout", self.probe_timeout);
        if self.probe_timeout > display_deadline {
            v.error_related(
                "breaker.probe_timeout",
                &["deadlines.display"],
                format_args!(
                    "must be <= deadlines.display = {display_deadline} (got {})",
                    self.probe_timeout
                ),
            );
        }
    }
}
