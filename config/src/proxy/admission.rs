//! `[admission]`: how many calls the proxy lets reach the origin at once, and how long a
//! request may wait for one. The limit adapts to the origin's latency against its unloaded
//! baseline (no capacity figure needed); a priority queue bounded by time sits in front of it.

use std::num::NonZeroUsize;

use serde::{Deserialize, Serialize};

use crate::duration::Duration;
use crate::validate::Validator;

const fn non_zero(n: usize) -> NonZeroUsize {
    match NonZeroUsize::new(n) {
        Some(n) => n,
        // Evaluated at compile time: a zero here fails the build, never a run.
        None => panic!("zero"),
    }
}

/// Default `admission.adaptive`.
pub const DEFAULT_ADMISSION_ADAPTIVE: bool = true;
/// Default `admission.min_limit`: two calls keep a slow origin busy while one is parsed.
pub const DEFAULT_ADMISSION_MIN_LIMIT: NonZeroUsize = non_zero(2);
/// Default `admission.initial_limit`: low, since nothing is known of the origin yet; slow
/// start doubles it per window while latency stays near the baseline.
pub const DEFAULT_ADMISSION_INITIAL_LIMIT: NonZeroUsize = non_zero(4);
/// Default `admission.max_limit`.
pub const DEFAULT_ADMISSION_MAX_LIMIT: NonZeroUsize = non_zero(200);
/// Default `admission.latency_buffer_percent`: latency may double over the baseline, which is
/// where a USL-shaped origin's throughput peaks.
pub const DEFAULT_ADMISSION_LATENCY_BUFFER_PERCENT: u32 = 100;
/// Default `admission.latency_floor`: below a few milliseconds a latency rise is the
/// proxy's own scheduling, not the origin queueing.
pub const DEFAULT_ADMISSION_LATENCY_FLOOR: Duration = Duration::from_millis(5);
/// Default `admission.window`.
pub const DEFAULT_ADMISSION_WINDOW: Duration = Duration::from_millis(100);
/// Default `admission.probe_interval`.
pub const DEFAULT_ADMISSION_PROBE_INTERVAL: Duration = Duration::from_secs(30);
/// Default `admission.max_waiters`.
pub const DEFAULT_ADMISSION_MAX_WAITERS: usize = 1000;
/// Default `admission.codel_target` (Fail at Scale's M).
pub const DEFAULT_ADMISSION_CODEL_TARGET: Duration = Duration::from_millis(5);
/// Default `admission.codel_interval` (Fail at Scale's N).
pub const DEFAULT_ADMISSION_CODEL_INTERVAL: Duration = Duration::from_millis(100);
/// Default `admission.max_wait.scan`: a scanner falls back to verifying at the edge.
pub const DEFAULT_ADMISSION_MAX_WAIT_SCAN: Duration = Duration::from_millis(200);
/// Default `admission.max_wait.display_no_code`: the citizen has nothing else to show.
pub const DEFAULT_ADMISSION_MAX_WAIT_DISPLAY_NO_CODE: Duration = Duration::from_millis(500);
/// Default `admission.max_wait.declare`: a refused declaration is journalled.
pub const DEFAULT_ADMISSION_MAX_WAIT_DECLARE: Duration = Duration::from_millis(500);
/// Default `admission.max_wait.register`.
pub const DEFAULT_ADMISSION_MAX_WAIT_REGISTER: Duration = Duration::from_secs(1);
/// Default `admission.max_wait.display_refresh`: the cached code is as good an answer.
pub const DEFAULT_ADMISSION_MAX_WAIT_DISPLAY_REFRESH: Duration = Duration::from_millis(100);
/// Default `admission.max_wait.other`.
pub const DEFAULT_ADMISSION_MAX_WAIT_OTHER: Duration = Duration::from_millis(250);

/// Largest `admission.max_waiters`: each waiter holds a request in memory.
pub const MAX_ADMISSION_WAITERS: usize = 100_000;
/// Largest `admission.max_wait.*`.
pub const MAX_ADMISSION_WAIT: Duration = Duration::from_mins(1);

/// `[admission]` of the proxy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Admission {
    /// Adapt the limit to the origin's latency. false: a fixed limit of `max_limit` (and
    /// `origin.max_in_flight`). Default [`DEFAULT_ADMISSION_ADAPTIVE`].
    pub adaptive: bool,
    /// The limit never goes below this. Default [`DEFAULT_ADMISSION_MIN_LIMIT`].
    #[serde(deserialize_with = "crate::number::at_least_one")]
    pub min_limit: NonZeroUsize,
    /// The limit at start-up and after the breaker closes. Default
    /// [`DEFAULT_ADMISSION_INITIAL_LIMIT`].
    #[serde(deserialize_with = "crate::number::at_least_one")]
    pub initial_limit: NonZeroUsize,
    /// The limit never goes above this, nor above `origin.max_in_flight` unless that is 0.
    /// Default [`DEFAULT_ADMISSION_MAX_LIMIT`].
    #[serde(deserialize_with = "crate::number::at_least_one")]
    pub max_limit: NonZeroUsize,
    /// How far, in percent, the origin's latency may rise over its unloaded baseline before
    /// the limit stops growing. Default [`DEFAULT_ADMISSION_LATENCY_BUFFER_PERCENT`].
    pub latency_buffer_percent: u32,
    /// The baseline is never taken as lower than this: an origin that answers in under a
    /// millisecond is not slowed by the proxy's own scheduling delay. Default
    /// [`DEFAULT_ADMISSION_LATENCY_FLOOR`].
    pub latency_floor: Duration,
    /// The limit is recomputed once per window from the window's median latency. Default
    /// [`DEFAULT_ADMISSION_WINDOW`].
    pub window: Duration,
    /// When load has hidden the unloaded baseline this long, it is measured again (the limit
    /// dips to `min_limit` for a few calls). Default [`DEFAULT_ADMISSION_PROBE_INTERVAL`].
    pub probe_interval: Duration,
    /// Requests waiting for a call at most; past it the lowest priority is refused first.
    /// 0: nobody waits. Default [`DEFAULT_ADMISSION_MAX_WAITERS`].
    pub max_waiters: usize,
    /// Once the queue has not been empty for `codel_interval`, a new waiter waits at most
    /// this long. Default [`DEFAULT_ADMISSION_CODEL_TARGET`].
    pub codel_target: Duration,
    /// See `codel_target`. Default [`DEFAULT_ADMISSION_CODEL_INTERVAL`].
    pub codel_interval: Duration,
    /// `[admission.max_wait]`: the longest wait per priority.
    pub max_wait: MaxWait,
}

impl Default for Admission {
    fn default() -> Self {
        Self {
            adaptive: DEFAULT_ADMISSION_ADAPTIVE,
            min_limit: DEFAULT_ADMISSION_MIN_LIMIT,
            initial_limit: DEFAULT_ADMISSION_INITIAL_LIMIT,
            max_limit: DEFAULT_ADMISSION_MAX_LIMIT,
            latency_buffer_percent: DEFAULT_ADMISSION_LATENCY_BUFFER_PERCENT,
            latency_floor: DEFAULT_ADMISSION_LATENCY_FLOOR,
            window: DEFAULT_ADMISSION_WINDOW,
            probe_interval: DEFAULT_ADMISSION_PROBE_INTERVAL,
            max_waiters: DEFAULT_ADMISSION_MAX_WAITERS,
            codel_target: DEFAULT_ADMISSION_CODEL_TARGET,
            codel_interval: DEFAULT_ADMISSION_CODEL_INTERVAL,
            max_wait: MaxWait::default(),
        }
    }
}

/// `[admission.max_wait]`: the longest a request of each priority waits for a call to the
/// origin (its own deadline may cut it shorter). 0: never waits.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MaxWait {
    /// A venue scanner. Default [`DEFAULT_ADMISSION_MAX_WAIT_SCAN`].
    pub scan: Duration,
    /// A citizen with no valid code. Default [`DEFAULT_ADMISSION_MAX_WAIT_DISPLAY_NO_CODE`].
    pub display_no_code: Duration,
    /// A health declaration. Default [`DEFAULT_ADMISSION_MAX_WAIT_DECLARE`].
    pub declare: Duration,
    /// Registration and login. Default [`DEFAULT_ADMISSION_MAX_WAIT_REGISTER`].
    pub register: Duration,
    /// A citizen who holds a valid code. Default
    /// [`DEFAULT_ADMISSION_MAX_WAIT_DISPLAY_REFRESH`].
    pub display_refresh: Duration,
    /// Everything else. Default [`DEFAULT_ADMISSION_MAX_WAIT_OTHER`].
    pub other: Duration,
}

impl Default for MaxWait {
    fn default() -> Self {
        Self {
            scan: DEFAULT_ADMISSION_MAX_WAIT_SCAN,
            display_no_code: DEFAULT_ADMISSION_MAX_WAIT_DISPLAY_NO_CODE,
            declare: DEFAULT_ADMISSION_MAX_WAIT_DECLARE,
            register: DEFAULT_ADMISSION_MAX_WAIT_REGISTER,
            display_refresh: DEFAULT_ADMISSION_MAX_WAIT_DISPLAY_REFRESH,
            other: DEFAULT_ADMISSION_MAX_WAIT_OTHER,
        }
    }
}

impl MaxWait {
    /// Every field with its name, highest priority first.
    pub fn fields(&self) -> [(&'static str, Duration); 6] {
        [
            ("scan", self.scan),
            ("display_no_code", self.display_no_code),
            ("declare", self.declare),
            ("register", self.register),
            ("display_refresh", self.display_refresh),
            ("other", self.other),
        ]
    }
}

impl Admission {
    pub(crate) fn check(&self, v: &mut Validator<'_>) {
        let (min, initial, max) = (
            self.min_limit.get(),
            self.initial_limit.get(),
            self.max_limit.get(),
        );
        if max < min {
            v.error_related(
                "admission.max_limit",
                &["admission.min_limit"],
                format_args!("must be >= admission.min_limit = {min} (got {max})"),
            );
        }
        if initial < min || initial > max {
            v.error_related(
                "admission.initial_limit",
                &["admission.min_limit", "admission.max_limit"],
                format_args!(
                    "must be between admission.min_limit = {min} and admission.max_limit = \
                     {max} (got {initial})"
                ),
            );
        }
        if !(1..=1000).contains(&self.latency_buffer_percent) {
            v.error(
                "admission.latency_buffer_percent",
                format_args!("must be in 1..=1000 (got {})", self.latency_buffer_percent),
            );
        }
        v.positive("admission.window", self.window);
        v.positive("admission.probe_interval", self.probe_interval);
        if !self.window.is_zero() && self.probe_interval <= self.window {
            v.error_related(
                "admission.probe_interval",
                &["admission.window"],
                format_args!(
                    "must be > admission.window = {} (got {})",
                    self.window, self.probe_interval
                ),
            );
        }
        if self.max_waiters > MAX_ADMISSION_WAITERS {
            v.error(
                "admission.max_waiters",
                format_args!(
                    "must be <= {MAX_ADMISSION_WAITERS} (got {})",
                    self.max_waiters
                ),
            );
        }
        v.positive("admission.codel_target", self.codel_target);
        v.positive("admission.codel_interval", self.codel_interval);
        if self.codel_target > self.codel_interval {
            v.error_related(
                "admission.codel_target",
                &["admission.codel_interval"],
                format_args!(
                    "must be <= admission.codel_interval = {} (got {})",
                    self.codel_interval, self.codel_target
                ),
            );
        }
        for (name, wait) in self.max_wait.fields() {
            if wait > MAX_ADMISSION_WAIT {
                v.error(
                    &format!("admission.max_wait.{name}"),
                    format_args!("must be <= {MAX_ADMISSION_WAIT} (got {wait})"),
                );
            }
        }
    }
}
