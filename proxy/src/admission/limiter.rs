//! The adaptive concurrency limit: how many calls may be at the origin at once.
//!
//! A gradient controller of the Envoy / Netflix Gradient2 family, stepped once per window
//! (`[admission] window`, 100 ms) from the window's **median** latency of answered calls:
//!
//! ```text
//! ratio    = median / baseline                 (baseline: the origin's unloaded latency)
//! gradient = clamp(tolerance / ratio, 0.5, 2)  (tolerance: 1 + latency_buffer_percent/100)
//! limit    = limit/2 + limit·gradient/2        (no growth unless calls in flight reached limit/2)
//! ```
//!
//! The fixed point is `median = tolerance × baseline`. Throughput `n / latency(n)` peaks
//! where latency grows as fast as concurrency (elasticity 1); for a Universal Scalability
//! Law origin that is where latency has about doubled, hence the default tolerance 2. The
//! loop gain there is `1 − elasticity ≈ 0`, so it settles within a few windows and follows
//! the knee when the origin's contention changes.
//!
//! - **Baseline**: the lowest window median seen. A window near it (within 10 %) confirms
//!   it; when none has for `probe_interval` (±15 %), because load keeps latency up, the
//!   baseline is **probed**: the limit is pinned to `min_limit` until the calls in flight
//!   drain, the median of the next 10 calls becomes the baseline (up or down), and the old
//!   limit comes back. Five windows in a row at the floor with latency still above target
//!   probe at once (the origin may have become slower, not busier).
//! - **Losses** (timeouts, 5xx, failed calls): the limit × 0.75 at once, at most once per
//!   round: a loss from a call granted before the last back-off is already accounted for
//!   (TCP's once-per-RTT rule), so a burst of timeouts from one round backs off once.
//! - **Slow start** (at start and after [`Limiter::slow_start`]): from `initial_limit` the
//!   limit doubles per window while the median stays under half the tolerated rise; the
//!   baseline is learnt afresh, since a restarted origin may run at another speed.
//! - `min_limit` and `max_limit` bound it; with `adaptive = false` it stays at `max_limit`.
//!
//! Pure state, no clock: the caller passes `tokio::time::Instant`s.

use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

use tokio::time::Instant;

use super::{AdmissionConfig, CallOutcome};

/// Answered calls a window needs before it steps the limit, at most: a window needs as many
/// as the limit (at least [`FEWEST_WINDOW_SAMPLES`]), so a small limit on a slow origin still
/// steps every few hundred milliseconds rather than once a second.
const MIN_WINDOW_SAMPLES: usize = 10;
/// Answered calls a window needs, at least.
const FEWEST_WINDOW_SAMPLES: usize = 3;
/// A window with too few samples steps anyway once it has lasted this many windows.
const MAX_WINDOW_STRETCH: u32 = 10;
/// Share of the new value in each step: damps noise, still settles in a few windows.
const SMOOTHING: f64 = 0.5;
/// Bounds of the gradient per step (Envoy's 0.5 and 2).
const MIN_GRADIENT: f64 = 0.5;
/// See [`MIN_GRADIENT`].
const MAX_GRADIENT: f64 = 2.0;
/// The multiplicative decrease on a loss (between Netflix AIMD's 0.9 and TCP's 0.5).
const BACKOFF: f64 = 0.75;
/// A window median within this factor of the baseline confirms the baseline.
const BASELINE_CONFIRM: f64 = 1.1;
/// Windows at the floor with latency above target before the baseline is probed.
const FLOOR_WINDOWS_BEFORE_PROBE: u32 = 5;
/// Answered calls a probe measures.
const PROBE_SAMPLES: usize = 10;
/// A probe that has not measured within this many windows gives up (too little traffic).
const PROBE_MAX_WINDOWS: u32 = 20;
/// The probe interval varies by ± this share, so proxies started together do not probe
/// together.
const PROBE_JITTER: f64 = 0.15;
/// Share of a new window median in the latency estimate.
const LATENCY_SMOOTHING: f64 = 0.5;
/// The latency assumed for wait estimates before any call has been measured.
const UNKNOWN_LATENCY: Duration = Duration::from_millis(100);

/// What the limit is doing, for metrics and `/status`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LimitPhase {
    /// `adaptive = false`: fixed at the ceiling.
    Static,
    /// Growing fast from `initial_limit`.
    SlowStart,
    /// Following the latency gradient.
    Steady,
    /// Pinned to the floor while the baseline is measured.
    Probe,
}

impl LimitPhase {
    /// Every phase.
    pub const ALL: [Self; 4] = [Self::Static, Self::SlowStart, Self::Steady, Self::Probe];

    /// The metric label.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Static => "static",
            Self::SlowStart => "slow_start",
            Self::Steady => "steady",
            Self::Probe => "probe",
        }
    }
}

/// The limit's state.
#[derive(Debug)]
pub(crate) struct Limiter {
    adaptive: bool,
    min: usize,
    max: usize,
    initial: usize,
    tolerance: f64,
    latency_floor: Duration,
    window: Duration,
    probe_interval: Duration,
    limit: f64,
    phase: LimitPhase,
    baseline: Option<Duration>,
    next_probe_at: Instant,
    latency: Option<Duration>,
    win: Window,
    last_backoff: Option<Instant>,
    floor_windows: u32,
    probe: Option<Probe>,
    rng: u64,
    backoffs: u64,
    probes: u64,
}

#[derive(Debug)]
struct Window {
    start: Instant,
    samples: Vec<Duration>,
    peak_in_flight: usize,
    backed_off: bool,
}

#[derive(Debug)]
struct Probe {
    started: Instant,
    saved_limit: f64,
    saved_phase: LimitPhase,
    drained_at: Option<Instant>,
    samples: Vec<Duration>,
}

impl Limiter {
    /// A limit in slow start from `initial_limit` (or fixed at `max_limit`).
    pub(crate) fn new(cfg: &AdmissionConfig, now: Instant) -> Self {
        let seed = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish();
        let mut limiter = Self {
            adaptive: cfg.adaptive,
            min: cfg.min_limit,
            max: cfg.max_limit,
            initial: cfg.initial_limit,
            tolerance: cfg.latency_tolerance,
            latency_floor: cfg.latency_floor,
            window: cfg.window,
            probe_interval: cfg.probe_interval,
            limit: 0.0,
            phase: LimitPhase::Static,
            baseline: None,
            next_probe_at: now,
            latency: None,
            win: Window {
                start: now,
                samples: Vec::with_capacity(64),
                peak_in_flight: 0,
                backed_off: false,
            },
            last_backoff: None,
            floor_windows: 0,
            probe: None,
            rng: seed,
            backoffs: 0,
            probes: 0,
        };
        limiter.reset(now);
        limiter
    }

    /// Back to the start: slow start when adaptive, else the fixed ceiling.
    fn reset(&mut self, now: Instant) {
        self.probe = None;
        self.floor_windows = 0;
        self.last_backoff = None;
        self.baseline = None;
        self.reset_window(now);
        self.next_probe_at = now + self.jittered_interval();
        if self.adaptive {
            self.limit = self.initial as f64;
            self.phase = LimitPhase::SlowStart;
        } else {
            self.limit = self.max as f64;
            self.phase = LimitPhase::Static;
        }
    }

    /// Calls allowed in flight now.
    pub(crate) fn limit(&self) -> usize {
        if self.probe.is_some() {
            return self.min;
        }
        (self.limit.floor() as usize).clamp(self.min, self.max)
    }

    pub(crate) fn phase(&self) -> LimitPhase {
        if self.probe.is_some() {
            LimitPhase::Probe
        } else {
            self.phase
        }
    }

    /// The origin's unloaded latency, once measured.
    pub(crate) fn baseline(&self) -> Option<Duration> {
        self.baseline
    }

    /// The smoothed median latency of recent windows.
    pub(crate) fn latency(&self) -> Option<Duration> {
        self.latency
    }

    /// The latency to base wait estimates on: recent, else baseline, else a guess.
    pub(crate) fn latency_estimate(&self) -> Duration {
        self.latency.or(self.baseline).unwrap_or(UNKNOWN_LATENCY)
    }

    pub(crate) fn backoffs(&self) -> u64 {
        self.backoffs
    }

    pub(crate) fn probes(&self) -> u64 {
        self.probes
    }

    /// A call was granted; `in_flight` counts it.
    pub(crate) fn on_grant(&mut self, in_flight: usize) {
        self.win.peak_in_flight = self.win.peak_in_flight.max(in_flight);
    }

    /// A call granted at `granted_at` ended; `in_flight` no longer counts it. `sample` is
    /// its latency and outcome, `None` when the caller left without saying.
    pub(crate) fn on_release(
        &mut self,
        now: Instant,
        in_flight: usize,
        granted_at: Instant,
        sample: Option<(Duration, CallOutcome)>,
    ) {
        match sample {
            Some((_, outcome)) if outcome.is_loss() => self.loss(now, granted_at),
            Some((latency, CallOutcome::Ok)) => self.sample(granted_at, latency),
            _ => {}
        }
        if let Some(probe) = &mut self.probe {
            if probe.drained_at.is_none() && in_flight <= self.min {
                probe.drained_at = Some(now);
            }
            if probe.samples.len() >= PROBE_SAMPLES {
                self.finish_probe(now, true);
            } else if now.saturating_duration_since(probe.started)
                >= self.window * PROBE_MAX_WINDOWS
            {
                self.finish_probe(now, false);
            }
            return;
        }
        self.maybe_close_window(now, in_flight);
    }

    fn sample(&mut self, granted_at: Instant, latency: Duration) {
        match &mut self.probe {
            // Only calls that started once the origin had drained show its unloaded speed.
            Some(probe) => {
                if probe.drained_at.is_some_and(|d| granted_at >= d) {
                    probe.samples.push(latency);
                }
            }
            None => self.win.samples.push(latency),
        }
    }

    fn loss(&mut self, now: Instant, granted_at: Instant) {
        if !self.adaptive || self.last_backoff.is_some_and(|t| granted_at < t) {
            return;
        }
        self.last_backoff = Some(now);
        self.backoffs += 1;
        self.win.backed_off = true;
        let min = self.min as f64;
        let (limit, phase) = match &mut self.probe {
            Some(probe) => (&mut probe.saved_limit, &mut probe.saved_phase),
            None => (&mut self.limit, &mut self.phase),
        };
        *limit = (*limit * BACKOFF).max(min);
        if *phase == LimitPhase::SlowStart {
            *phase = LimitPhase::Steady;
        }
    }

    fn maybe_close_window(&mut self, now: Instant, in_flight: usize) {
        let elapsed = now.saturating_duration_since(self.win.start);
        if elapsed < self.window {
            return;
        }
        let n = self.win.samples.len();
        let stretched = elapsed >= self.window * MAX_WINDOW_STRETCH;
        if n == 0 {
            if stretched {
                // Idle or only losses: start afresh so the peak in flight is current.
                self.reset_window(now);
            }
            return;
        }
        let needed = self
            .limit()
            .clamp(FEWEST_WINDOW_SAMPLES, MIN_WINDOW_SAMPLES);
        if n < needed && !stretched {
            return;
        }
        let median = median(&mut self.win.samples);
        self.close_window(now, in_flight, median);
        self.reset_window(now);
    }

    fn close_window(&mut self, now: Instant, in_flight: usize, median: Duration) {
        self.latency = Some(match self.latency {
            None => median,
            Some(l) => l.mul_f64(1.0 - LATENCY_SMOOTHING) + median.mul_f64(LATENCY_SMOOTHING),
        });
        let baseline = match self.baseline {
            Some(b) if median >= b => {
                if median.as_secs_f64() <= b.as_secs_f64() * BASELINE_CONFIRM {
                    self.confirm_baseline(now);
                }
                b
            }
            _ => {
                self.baseline = Some(median);
                self.confirm_baseline(now);
                median
            }
        };
        if !self.adaptive {
            return;
        }
        // Below the floor a rise is the proxy's own scheduling, not the origin queueing.
        let baseline = baseline.max(self.latency_floor);
        let ratio = if baseline.is_zero() {
            1.0
        } else {
            median.as_secs_f64() / baseline.as_secs_f64()
        };
        let limited = self.win.peak_in_flight * 2 >= self.limit();
        if self.phase == LimitPhase::SlowStart {
            let exit = 1.0 + (self.tolerance - 1.0) / 2.0;
            if ratio > exit || self.win.backed_off {
                self.phase = LimitPhase::Steady;
            } else if limited {
                self.limit = (self.limit * 2.0).min(self.max as f64);
            }
        }
        if self.phase == LimitPhase::Steady {
            let gradient = (self.tolerance / ratio).clamp(MIN_GRADIENT, MAX_GRADIENT);
            let mut target = self.limit * gradient;
            if target > self.limit && (!limited || self.win.backed_off) {
                target = self.limit;
            }
            self.limit = self.limit * (1.0 - SMOOTHING) + target * SMOOTHING;
        }
        self.limit = self.limit.clamp(self.min as f64, self.max as f64);
        if self.phase != LimitPhase::Steady {
            return;
        }
        if self.limit() <= self.min && ratio > self.tolerance {
            self.floor_windows += 1;
        } else {
            self.floor_windows = 0;
        }
        if self.floor_windows >= FLOOR_WINDOWS_BEFORE_PROBE || now >= self.next_probe_at {
            self.start_probe(now, in_flight);
        }
    }

    fn confirm_baseline(&mut self, now: Instant) {
        self.next_probe_at = now + self.jittered_interval();
    }

    fn start_probe(&mut self, now: Instant, in_flight: usize) {
        self.probes += 1;
        self.floor_windows = 0;
        self.probe = Some(Probe {
            started: now,
            saved_limit: self.limit,
            saved_phase: self.phase,
            drained_at: (in_flight <= self.min).then_some(now),
            samples: Vec::with_capacity(PROBE_SAMPLES),
        });
    }

    fn finish_probe(&mut self, now: Instant, measured: bool) {
        let Some(mut probe) = self.probe.take() else {
            return;
        };
        if measured {
            self.baseline = Some(median(&mut probe.samples));
        }
        self.limit = probe.saved_limit;
        self.phase = probe.saved_phase;
        self.confirm_baseline(now);
        self.reset_window(now);
    }

    fn reset_window(&mut self, now: Instant) {
        self.win.start = now;
        self.win.samples.clear();
        self.win.peak_in_flight = 0;
        self.win.backed_off = false;
    }

    /// Slow start again from `initial_limit` and learn the baseline afresh: the origin is
    /// back from an outage or a restart.
    pub(crate) fn slow_start(&mut self, now: Instant) {
        if self.adaptive {
            self.reset(now);
        }
    }

    /// New settings (a reload); what was learnt is kept unless `adaptive` changed.
    pub(crate) fn reconfigure(&mut self, cfg: &AdmissionConfig, now: Instant) {
        let was_adaptive = self.adaptive;
        self.adaptive = cfg.adaptive;
        self.min = cfg.min_limit;
        self.max = cfg.max_limit;
        self.initial = cfg.initial_limit;
        self.tolerance = cfg.latency_tolerance;
        self.latency_floor = cfg.latency_floor;
        self.window = cfg.window;
        if cfg.probe_interval != self.probe_interval {
            self.probe_interval = cfg.probe_interval;
            self.next_probe_at = self.next_probe_at.min(now + self.jittered_interval());
        }
        if was_adaptive != self.adaptive {
            self.reset(now);
        } else if self.adaptive {
            self.limit = self.limit.clamp(self.min as f64, self.max as f64);
        } else {
            self.limit = self.max as f64;
        }
    }

    fn jittered_interval(&mut self) -> Duration {
        self.rng = self.rng.wrapping_add(1);
        let unit = super::unit(self.rng);
        self.probe_interval
            .mul_f64(1.0 + PROBE_JITTER * (2.0 * unit - 1.0))
    }
}

/// The median (upper middle of an even count) of non-empty `samples`; reorders them.
fn median(samples: &mut [Duration]) -> Duration {
    if samples.is_empty() {
        return Duration::ZERO;
    }
    let mid = samples.len() / 2;
    *samples.select_nth_unstable(mid).1
}

#[cfg(test)]
mod tests;
