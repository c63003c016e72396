//! `[capacity]`: the origin's capacity model for benchmarks, a Universal Scalability Law
//! processor-sharing emulation. With `n` requests in service, each progresses at
//! `1 / (1 + sigma·(n−1) + kappa·n·(n−1))` of its base speed, so throughput
//! `X(n) = n / (S·(1 + sigma·(n−1) + kappa·n·(n−1)))` peaks at the knee
//! `n* = sqrt((1 − sigma) / kappa)` and falls beyond it. More than `crash_in_flight` requests
//! in service for `crash_after` crashes the origin: it refuses connections for
//! `restart_after`, then runs cold (service time × `cold_factor`) for `cold_for`.
//!
//! With the defaults (S = 10 ms, sigma = 0.02, kappa = 0.009) the knee is at n ≈ 10 with
//! X ≈ 500 requests/s; at n = 40, X ≈ 253/s.

use std::num::NonZeroU32;

use serde::{Deserialize, Serialize};

use crate::duration::Duration;
use crate::validate::Validator;

/// Default `capacity.enabled`: off, the origin runs as fast as it can.
pub const DEFAULT_CAPACITY_ENABLED: bool = false;
/// Default `capacity.service_time`: base service time of one request alone.
pub const DEFAULT_SERVICE_TIME: Duration = Duration::from_millis(10);
/// Default `capacity.sigma` (contention).
pub const DEFAULT_SIGMA: f64 = 0.02;
/// Default `capacity.kappa` (coherency).
pub const DEFAULT_KAPPA: f64 = 0.009;
/// Default `capacity.noise`: every request takes exactly the service time.
pub const DEFAULT_NOISE: f64 = 0.0;
/// Default `capacity.crash_in_flight`.
pub const DEFAULT_CRASH_IN_FLIGHT: NonZeroU32 = match NonZeroU32::new(200) {
    Some(n) => n,
    // Evaluated at compile time: a zero here fails the build, never a run.
    None => panic!("zero"),
};
/// Default `capacity.crash_after`.
pub const DEFAULT_CRASH_AFTER: Duration = Duration::from_secs(3);
/// Default `capacity.restart_after`.
pub const DEFAULT_RESTART_AFTER: Duration = Duration::from_secs(15);
/// Default `capacity.cold_factor`.
pub const DEFAULT_COLD_FACTOR: f64 = 2.0;
/// Default `capacity.cold_for`.
pub const DEFAULT_COLD_FOR: Duration = Duration::from_secs(30);

/// `[capacity]` of the origin.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Capacity {
    /// Whether the model limits the origin. Default [`DEFAULT_CAPACITY_ENABLED`].
    pub enabled: bool,
    /// Base service time S of one request with nothing else in service. Default
    /// [`DEFAULT_SERVICE_TIME`].
    pub service_time: Duration,
    /// USL contention coefficient, in `[0, 1)`. Default [`DEFAULT_SIGMA`].
    pub sigma: f64,
    /// USL coherency coefficient (how steeply throughput falls past the knee; 0 = it never
    /// falls), `>= 0`. Default [`DEFAULT_KAPPA`].
    pub kappa: f64,
    /// Spread of each request's service time: log-normal with this sigma (of the log) and
    /// the same mean; 0 = none, 0.3 = the surge benchmark's setting. `>= 0`. Default
    /// [`DEFAULT_NOISE`].
    pub noise: f64,
    /// More requests than this in service counts as overload. Default
    /// [`DEFAULT_CRASH_IN_FLIGHT`].
    #[serde(deserialize_with = "crate::number::at_least_one")]
    pub crash_in_flight: NonZeroU32,
    /// Overload lasting this long crashes the origin; `0s` = never. Default
    /// [`DEFAULT_CRASH_AFTER`].
    pub crash_after: Duration,
    /// A crashed origin refuses connections for this long, then restarts cold. Default
    /// [`DEFAULT_RESTART_AFTER`].
    pub restart_after: Duration,
    /// Service time multiplier while cold, `>= 1`. Default [`DEFAULT_COLD_FACTOR`].
    pub cold_factor: f64,
    /// How long a restarted origin stays cold. Default [`DEFAULT_COLD_FOR`].
    pub cold_for: Duration,
}

impl Default for Capacity {
    fn default() -> Self {
        Self {
            enabled: DEFAULT_CAPACITY_ENABLED,
            service_time: DEFAULT_SERVICE_TIME,
            sigma: DEFAULT_SIGMA,
            kappa: DEFAULT_KAPPA,
            noise: DEFAULT_NOISE,
            crash_in_flight: DEFAULT_CRASH_IN_FLIGHT,
            crash_after: DEFAULT_CRASH_AFTER,
            restart_after: DEFAULT_RESTART_AFTER,
            cold_factor: DEFAULT_COLD_FACTOR,
            cold_for: DEFAULT_COLD_FOR,
        }
    }
}

impl Capacity {
    pub(crate) fn check(&self, v: &mut Validator<'_>) {
        v.positive("capacity.service_time", self.service_time);
        if !self.sigma.is_finite() || !(0.0..1.0).contains(&self.sigma) {
            v.error(
                "capacity.sigma",
                format_args!("must be a number >= 0 and < 1 (got {})", self.sigma),
            );
        }
        if !self.kappa.is_finite() || self.kappa < 0.0 {
            v.error(
                "capacity.kappa",
                format_args!("must be a number >= 0 (got {})", self.kappa),
            );
        }
        if !self.noise.is_finite() || self.noise < 0.0 {
            v.error(
                "capacity.noise",
                format_args!("must be a number >= 0 (got {})", self.noise),
            );
        }
        v.positive("capacity.restart_after", self.restart_after);
        if !self.cold_factor.is_finite() || self.cold_factor < 1.0 {
            v.error(
                "capacity.cold_factor",
                format_args!("must be a number >= 1 (got {})", self.cold_factor),
            );
        }
    }
}
