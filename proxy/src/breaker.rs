//! The circuit breaker on the origin, shared by `display` and pass-through.
//!
//! - **Closed**: every request goes to the origin. It opens on `consecutive_failures` failures
//!   in a row, on `consecutive_timeouts` timeouts in a row (a black-holing origin costs each
//!   caller a whole timeout, so fewer are tolerated), or when at least `min_requests` requests
//!   in the last `window` failed at `error_percent` % or more.
//! - **Open** for `open_for`: nobody calls the origin; callers answer from cache or fallback
//!   at once, or refuse fast.
//! - **Half-open**: up to `probes` requests at a time go to the origin on the short
//!   `probe_timeout`; the rest are rejected. One success closes the breaker, one failure
//!   opens it again. A probe whose caller vanished without recording anything frees its slot
//!   after `probe_timeout`, so a lost probe cannot keep the breaker half-open forever. While
//!   half-open any recorded answer counts as a probe's (a late answer to a call admitted
//!   before the breaker opened is as good evidence as a probe's); while open, none counts.
//!
//! `admit` while closed is one atomic load; the window and counters sit behind a mutex taken
//! once per origin answer. Time is `tokio::time::Instant`, so tests run on paused time.
//!
//! The breaker also counts what it sees for metrics ([`stats`]): every recorded call, the
//! failures by kind, the state changes, and the call latencies callers report with
//! [`Breaker::observe_latency`].

pub mod stats;

use std::sync::Mutex;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use tokio::time::Instant;

pub use self::stats::BreakerStats;

/// Default [`BreakerConfig::consecutive_failures`].
pub const DEFAULT_CONSECUTIVE_FAILURES: u32 = 5;
/// Default [`BreakerConfig::consecutive_timeouts`].
pub const DEFAULT_CONSECUTIVE_TIMEOUTS: u32 = 3;
/// Default [`BreakerConfig::error_percent`].
pub const DEFAULT_ERROR_PERCENT: u8 = 50;
/// Default [`BreakerConfig::min_requests`].
pub const DEFAULT_MIN_REQUESTS: u32 = 20;
/// Default [`BreakerConfig::window`].
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(10);
/// Default [`BreakerConfig::open_for`].
pub const DEFAULT_OPEN_FOR: Duration = Duration::from_secs(5);
/// Default [`BreakerConfig::probes`].
pub const DEFAULT_PROBES: u32 = 1;
/// Default [`BreakerConfig::probe_timeout`].
pub const DEFAULT_PROBE_TIMEOUT: Duration = Duration::from_millis(300);

/// Buckets of the error-share window: the window slides in steps of `window / BUCKETS`.
const BUCKETS: usize = 10;

/// The breaker's thresholds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Failures in a row that open it. Default [`DEFAULT_CONSECUTIVE_FAILURES`].
    pub consecutive_failures: u32,
    /// Timeouts in a row that open it. Default [`DEFAULT_CONSECUTIVE_TIMEOUTS`].
    pub consecutive_timeouts: u32,
    /// Share of failures, in percent, over `window` that opens it. Default
    /// [`DEFAULT_ERROR_PERCENT`].
    pub error_percent: u8,
    /// Requests in `window` below which the share is not judged. Default
    /// [`DEFAULT_MIN_REQUESTS`].
    pub min_requests: u32,
    /// The sliding window of the error share. Default [`DEFAULT_WINDOW`].
    pub window: Duration,
    /// Cool-down before the first probe. Default [`DEFAULT_OPEN_FOR`].
    pub open_for: Duration,
    /// Probes in flight at once while half-open. Default [`DEFAULT_PROBES`].
    pub probes: u32,
    /// Timeout of a probe. Default [`DEFAULT_PROBE_TIMEOUT`].
    pub probe_timeout: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            consecutive_failures: DEFAULT_CONSECUTIVE_FAILURES,
            consecutive_timeouts: DEFAULT_CONSECUTIVE_TIMEOUTS,
            error_percent: DEFAULT_ERROR_PERCENT,
            min_requests: DEFAULT_MIN_REQUESTS,
            window: DEFAULT_WINDOW,
            open_for: DEFAULT_OPEN_FOR,
            probes: DEFAULT_PROBES,
            probe_timeout: DEFAULT_PROBE_TIMEOUT,
        }
    }
}

impl BreakerConfig {
    /// From the `[breaker]` section.
    #[must_use]
    pub fn from_config(c: &shouhu_config::proxy::Breaker) -> Self {
        Self {
            consecutive_failures: c.consecutive_failures.get(),
            consecutive_timeouts: c.consecutive_timeouts.get(),
            error_percent: c.error_percent,
            min_requests: c.min_requests.get(),
            window: c.window.into(),
            open_for: c.open_for.into(),
            probes: c.probes.get(),
            probe_timeout: c.probe_timeout.into(),
        }
    }
}

/// The breaker's state, for metrics and `/status`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BreakerState {
    /// Requests go to the origin.
    Closed,
    /// Nobody calls the origin.
    Open,
    /// A few probes test the origin.
    HalfOpen,
}

impl BreakerState {
    /// Every value, for metric registration.
    pub const ALL: &'static [Self] = &[Self::Closed, Self::Open, Self::HalfOpen];

    /// A stable label.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half_open",
        }
    }

    /// The gauge value: 0 closed, 1 half-open, 2 open.
    #[must_use]
    pub fn as_gauge(self) -> u8 {
        match self {
            Self::Closed => 0,
            Self::HalfOpen => 1,
            Self::Open => 2,
        }
    }

    fn from_u8(v: u8) -> Self {
        match v {
            0 => Self::Closed,
            1 => Self::HalfOpen,
            _ => Self::Open,
        }
    }
}

/// May this request call the origin?
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admit {
    /// Yes, with the ordinary timeouts.
    Normal,
    /// Yes, as a probe of a half-open breaker: give up after `timeout`, and record the result.
    Probe {
        /// The probe's total timeout.
        timeout: Duration,
    },
    /// No: answer without the origin.
    Reject,
}

/// Why a call to the origin failed; also a bounded metric label.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FailureKind {
    /// No answer within the deadline (connect or read).
    Timeout,
    /// The connection was refused or reset before an answer.
    Refused,
    /// The origin answered 5xx.
    Status5xx,
    /// Any other transport error or an answer that is not a code.
    Io,
}

impl FailureKind {
    /// Every value, for metric registration.
    pub const ALL: &'static [Self] = &[Self::Timeout, Self::Refused, Self::Status5xx, Self::Io];

    /// A stable label.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::Refused => "refused",
            Self::Status5xx => "status_5xx",
            Self::Io => "io",
        }
    }
}

/// The result of one call to the origin, as the breaker sees it. A 4xx answer is a
/// [`OriginOutcome::Success`]: the origin is working.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OriginOutcome {
    /// The origin answered.
    Success,
    /// It did not.
    Failure(FailureKind),
}

struct CloseHook(Box<dyn Fn() + Send + Sync>);

impl std::fmt::Debug for CloseHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CloseHook")
    }
}

/// The circuit breaker; share it in an `Arc`.
#[derive(Debug)]
pub struct Breaker {
    /// Called when the breaker closes after an outage (admission's slow start).
    on_close: std::sync::OnceLock<CloseHook>,
    /// [`BreakerState`] as `as_gauge`, readable without the lock.
    state: AtomicU8,
    inner: Mutex<Inner>,
    stats: BreakerStats,
}

#[derive(Debug)]
struct Inner {
    /// The thresholds; replaced whole by [`Breaker::reconfigure`].
    cfg: BreakerConfig,
    consecutive_failures: u32,
    consecutive_timeouts: u32,
    /// (requests, failures) per bucket; `bucket_start` is the start of `buckets[head]`.
    buckets: [(u32, u32); BUCKETS],
    head: usize,
    bucket_start: Instant,
    /// While open: when half-open begins.
    open_until: Instant,
    /// While half-open: probes in flight and when the last one was let through.
    probes_in_flight: u32,
    last_probe_at: Instant,
}

impl Breaker {
    /// A closed breaker.
    #[must_use]
    pub fn new(cfg: BreakerConfig) -> Self {
        let now = Instant::now();
        Self {
            on_close: std::sync::OnceLock::new(),
            state: AtomicU8::new(BreakerState::Closed.as_gauge()),
            inner: Mutex::new(Inner {
                cfg,
                consecutive_failures: 0,
                consecutive_timeouts: 0,
                buckets: [(0, 0); BUCKETS],
                head: 0,
                bucket_start: now,
                open_until: now,
                probes_in_flight: 0,
                last_probe_at: now,
            }),
            stats: BreakerStats::default(),
        }
    }

    /// What the breaker has counted, for metrics.
    #[must_use]
    pub fn stats(&self) -> &BreakerStats {
        &self.stats
    }

    /// Records the latency of an origin call (its answer or how long it took to fail), for
    /// metrics only: the breaker's decisions do not depend on it.
    pub fn observe_latency(&self, latency: Duration) {
        self.stats.observe(latency);
    }

    /// The thresholds.
    #[must_use]
    pub fn config(&self) -> BreakerConfig {
        self.lock().cfg
    }

    /// Sets what runs when the breaker closes after being open (once; later calls are
    /// ignored). It runs under the breaker's lock: it must not call back into the breaker.
    pub fn on_close(&self, hook: impl Fn() + Send + Sync + 'static) {
        let _ = self.on_close.set(CloseHook(Box::new(hook)));
    }

    /// Replaces the thresholds (a config reload); the state and its counts stay.
    pub fn reconfigure(&self, cfg: BreakerConfig) {
        self.lock().cfg = cfg;
    }

    /// The state now (an open breaker whose cool-down is over reads as half-open).
    #[must_use]
    pub fn state(&self) -> BreakerState {
        let state = BreakerState::from_u8(self.state.load(Ordering::Acquire));
        if state == BreakerState::Open {
            let inner = self.lock();
            if Instant::now() >= inner.open_until {
                return BreakerState::HalfOpen;
            }
        }
        state
    }

    /// Whether a request may call the origin now. Every `Normal` or `Probe` must be followed
    /// by one [`Breaker::record`].
    pub fn admit(&self) -> Admit {
        if self.state.load(Ordering::Acquire) == BreakerState::Closed.as_gauge() {
            return Admit::Normal;
        }
        let now = Instant::now();
        let mut inner = self.lock();
        match BreakerState::from_u8(self.state.load(Ordering::Acquire)) {
            // Closed while we waited for the lock.
            BreakerState::Closed => Admit::Normal,
            BreakerState::Open if now < inner.open_until => Admit::Reject,
            BreakerState::Open | BreakerState::HalfOpen => {
                self.set_state(BreakerState::HalfOpen);
                // A probe that never recorded (its caller was dropped) has timed out by now.
                if inner.probes_in_flight > 0
                    && now >= inner.last_probe_at + inner.cfg.probe_timeout
                {
                    inner.probes_in_flight = 0;
                }
                if inner.probes_in_flight >= inner.cfg.probes.max(1) {
                    return Admit::Reject;
                }
                inner.probes_in_flight += 1;
                inner.last_probe_at = now;
                Admit::Probe {
                    timeout: inner.cfg.probe_timeout,
                }
            }
        }
    }

    /// Records the result of a call that [`Breaker::admit`] let through.
    pub fn record(&self, outcome: OriginOutcome) {
        self.stats.call(match outcome {
            OriginOutcome::Success => None,
            OriginOutcome::Failure(kind) => Some(kind),
        });
        let now = Instant::now();
        let mut inner = self.lock();
        match BreakerState::from_u8(self.state.load(Ordering::Acquire)) {
            // A late answer to a call admitted before the breaker opened: the cool-down
            // stands either way.
            BreakerState::Open => {}
            BreakerState::HalfOpen => {
                inner.probes_in_flight = inner.probes_in_flight.saturating_sub(1);
                match outcome {
                    OriginOutcome::Success => self.close(&mut inner, now),
                    OriginOutcome::Failure(_) => self.open(&mut inner, now),
                }
            }
            BreakerState::Closed => {
                let failed = matches!(outcome, OriginOutcome::Failure(_));
                let window = inner.cfg.window;
                inner.slide(now, window);
                let head = inner.head;
                inner.buckets[head].0 += 1;
                match outcome {
                    OriginOutcome::Success => {
                        inner.consecutive_failures = 0;
                        inner.consecutive_timeouts = 0;
                    }
                    OriginOutcome::Failure(kind) => {
                        inner.buckets[head].1 += 1;
                        inner.consecutive_failures += 1;
                        if kind == FailureKind::Timeout {
                            inner.consecutive_timeouts += 1;
                        } else {
                            inner.consecutive_timeouts = 0;
                        }
                    }
                }
                if failed && self.should_open(&inner) {
                    self.open(&mut inner, now);
                }
            }
        }
    }

    fn should_open(&self, inner: &Inner) -> bool {
        if inner.consecutive_failures >= inner.cfg.consecutive_failures.max(1)
            || inner.consecutive_timeouts >= inner.cfg.consecutive_timeouts.max(1)
        {
            return true;
        }
        let (requests, failures) = inner.buckets.iter().fold((0u64, 0u64), |(r, f), b| {
            (r + u64::from(b.0), f + u64::from(b.1))
        });
        requests >= u64::from(inner.cfg.min_requests.max(1))
            && failures * 100 >= requests * u64::from(inner.cfg.error_percent)
    }

    fn open(&self, inner: &mut Inner, now: Instant) {
        inner.open_until = now + inner.cfg.open_for;
        inner.probes_in_flight = 0;
        self.set_state(BreakerState::Open);
        tracing::warn!(open_for = ?inner.cfg.open_for, "origin circuit breaker opened");
    }

    fn close(&self, inner: &mut Inner, now: Instant) {
        inner.consecutive_failures = 0;
        inner.consecutive_timeouts = 0;
        inner.buckets = [(0, 0); BUCKETS];
        inner.bucket_start = now;
        inner.probes_in_flight = 0;
        self.set_state(BreakerState::Closed);
        tracing::info!("origin circuit breaker closed");
        if let Some(hook) = self.on_close.get() {
            (hook.0)();
        }
    }

    fn set_state(&self, state: BreakerState) {
        let was = self.state.swap(state.as_gauge(), Ordering::AcqRel);
        if was != state.as_gauge() {
            self.stats.moved(state);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // The counters stay consistent whatever panicked while holding them.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Inner {
    /// Moves the head to the bucket of `now`, clearing the buckets passed over.
    fn slide(&mut self, now: Instant, window: Duration) {
        let step = (window / BUCKETS as u32).max(Duration::from_millis(1));
        let elapsed = now.saturating_duration_since(self.bucket_start);
        let steps = (elapsed.as_nanos() / step.as_nanos()).min(BUCKETS as u128 + 1);
        if steps == 0 {
            return;
        }
        for _ in 0..steps.min(BUCKETS as u128) {
            self.head = (self.head + 1) % BUCKETS;
            self.buckets[self.head] = (0, 0);
        }
        if steps > BUCKETS as u128 {
            self.bucket_start = now;
        } else {
            // steps <= BUCKETS, so the cast cannot truncate.
            self.bucket_start += step * steps as u32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FAIL: OriginOutcome = OriginOutcome::Failure(FailureKind::Status5xx);
    const TIMEOUT: OriginOutcome = OriginOutcome::Failure(FailureKind::Timeout);

    fn breaker() -> Breaker {
        Breaker::new(BreakerConfig::default())
    }

    #[test]
    fn defaults_match_the_config_defaults() {
        let from_config = BreakerConfig::from_config(&shouhu_config::proxy::Breaker::default());
        assert_eq!(from_config, BreakerConfig::default());
    }

    fn call(b: &Breaker, outcome: OriginOutcome) -> Admit {
        let admit = b.admit();
        if admit != Admit::Reject {
            b.record(outcome);
        }
        admit
    }

    #[tokio::test(start_paused = true)]
    async fn opens_on_consecutive_failures_only() {
        let b = breaker();
        for _ in 0..DEFAULT_CONSECUTIVE_FAILURES - 1 {
            call(&b, FAIL);
        }
        call(&b, OriginOutcome::Success);
        for _ in 0..DEFAULT_CONSECUTIVE_FAILURES - 1 {
            assert_eq!(call(&b, FAIL), Admit::Normal);
        }
        assert_eq!(b.state(), BreakerState::Closed);
        call(&b, FAIL);
        assert_eq!(b.state(), BreakerState::Open);
        assert_eq!(b.admit(), Admit::Reject);
    }

    #[tokio::test(start_paused = true)]
    async fn timeouts_open_it_sooner() {
        let b = breaker();
        for _ in 0..DEFAULT_CONSECUTIVE_TIMEOUTS {
            call(&b, TIMEOUT);
        }
        assert_eq!(b.state(), BreakerState::Open);
    }

    #[tokio::test(start_paused = true)]
    async fn opens_on_error_share_over_the_window() {
        let b = breaker();
        // Alternating: never 2 failures in a row, but 50 % of 20 requests.
        for i in 0..DEFAULT_MIN_REQUESTS {
            assert_eq!(b.state(), BreakerState::Closed, "request {i}");
            call(
                &b,
                if i % 2 == 0 {
                    OriginOutcome::Success
                } else {
                    FAIL
                },
            );
        }
        assert_eq!(b.state(), BreakerState::Open);
    }

    #[tokio::test(start_paused = true)]
    async fn old_failures_slide_out_of_the_window() {
        let b = breaker();
        // 12 failures in 15 requests: too few requests to judge, never 5 in a row.
        for i in 0..15 {
            call(
                &b,
                if i % 5 == 4 {
                    OriginOutcome::Success
                } else {
                    FAIL
                },
            );
        }
        assert_eq!(b.state(), BreakerState::Closed);
        tokio::time::advance(DEFAULT_WINDOW + DEFAULT_WINDOW / 5).await;
        // 7 failures in 21: a third. Counted with the old ones it would be 19 of 36.
        for i in 0..21 {
            call(
                &b,
                if i % 3 == 0 {
                    FAIL
                } else {
                    OriginOutcome::Success
                },
            );
        }
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn failures_within_the_window_add_up() {
        let b = breaker();
        for i in 0..15 {
            call(
                &b,
                if i % 5 == 4 {
                    OriginOutcome::Success
                } else {
                    FAIL
                },
            );
        }
        tokio::time::advance(DEFAULT_WINDOW / 2).await;
        for i in 0..21 {
            call(
                &b,
                if i % 3 == 0 {
                    FAIL
                } else {
                    OriginOutcome::Success
                },
            );
        }
        assert_eq!(b.state(), BreakerState::Open);
    }

    #[tokio::test(start_paused = true)]
    async fn half_open_lets_limited_probes_and_closes_on_success() {
        let b = breaker();
        for _ in 0..DEFAULT_CONSECUTIVE_FAILURES {
            call(&b, FAIL);
        }
        tokio::time::advance(DEFAULT_OPEN_FOR - Duration::from_millis(1)).await;
        assert_eq!(b.admit(), Admit::Reject);
        tokio::time::advance(Duration::from_millis(1)).await;
        assert_eq!(b.state(), BreakerState::HalfOpen);
        assert_eq!(
            b.admit(),
            Admit::Probe {
                timeout: DEFAULT_PROBE_TIMEOUT
            }
        );
        assert_eq!(b.admit(), Admit::Reject, "one probe at a time");
        b.record(OriginOutcome::Success);
        assert_eq!(b.state(), BreakerState::Closed);
        assert_eq!(b.admit(), Admit::Normal);
        // The window starts empty: one failure does not reopen it.
        b.record(FAIL);
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn counts_calls_failures_and_each_state_change_once() {
        let b = breaker();
        for _ in 0..DEFAULT_CONSECUTIVE_FAILURES {
            call(&b, FAIL);
        }
        tokio::time::advance(DEFAULT_OPEN_FOR).await;
        assert!(matches!(b.admit(), Admit::Probe { .. }));
        // A second admit while half-open is no new transition.
        assert_eq!(b.admit(), Admit::Reject);
        b.record(OriginOutcome::Success);
        b.observe_latency(Duration::from_millis(3));
        let s = b.stats();
        assert_eq!(s.calls(), u64::from(DEFAULT_CONSECUTIVE_FAILURES) + 1);
        assert_eq!(
            s.failures(FailureKind::Status5xx),
            u64::from(DEFAULT_CONSECUTIVE_FAILURES)
        );
        assert_eq!(s.failures(FailureKind::Timeout), 0);
        for to in BreakerState::ALL {
            assert_eq!(s.transitions(*to), 1, "{to:?}");
        }
        assert_eq!(s.latency().count, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_probe_reopens_for_a_full_cool_down() {
        let b = breaker();
        for _ in 0..DEFAULT_CONSECUTIVE_TIMEOUTS {
            call(&b, TIMEOUT);
        }
        tokio::time::advance(DEFAULT_OPEN_FOR).await;
        assert!(matches!(call(&b, TIMEOUT), Admit::Probe { .. }));
        assert_eq!(b.state(), BreakerState::Open);
        tokio::time::advance(DEFAULT_OPEN_FOR - Duration::from_millis(1)).await;
        assert_eq!(b.admit(), Admit::Reject);
    }

    #[tokio::test(start_paused = true)]
    async fn a_lost_probe_frees_its_slot_after_the_probe_timeout() {
        let b = breaker();
        for _ in 0..DEFAULT_CONSECUTIVE_FAILURES {
            call(&b, FAIL);
        }
        tokio::time::advance(DEFAULT_OPEN_FOR).await;
        assert!(matches!(b.admit(), Admit::Probe { .. }));
        // Its caller vanished without recording.
        assert_eq!(b.admit(), Admit::Reject);
        tokio::time::advance(DEFAULT_PROBE_TIMEOUT).await;
        assert!(matches!(b.admit(), Admit::Probe { .. }));
    }

    #[tokio::test(start_paused = true)]
    async fn late_answers_do_not_shorten_the_cool_down() {
        let b = breaker();
        let late = b.admit();
        for _ in 0..DEFAULT_CONSECUTIVE_FAILURES {
            call(&b, FAIL);
        }
        assert_eq!(late, Admit::Normal);
        b.record(OriginOutcome::Success);
        assert_eq!(b.state(), BreakerState::Open);
    }
}
