//! `[capacity]`: the origin's capacity model for benchmarks. Throughput peaks at a knee and
//! falls beyond it, and sustained overload crashes the origin, as the real ones did. The
//! knobs are provisional: the capacity-model work will refine their exact meaning.

use std::num::NonZeroU32;

use serde::{Deserialize, Serialize};

use crate::duration::Duration;
use crate::validate::Validator;

/// Default `capacity.enabled`: off, the origin runs as fast as it can.
pub const DEFAULT_CAPACITY_ENABLED: bool = false;
/// Default `capacity.knee`, requests per second.
pub const DEFAULT_KNEE: NonZeroU32 = match NonZeroU32::new(2000) {
    Some(n) => n,
    // Evaluated at compile time: a zero here fails the build, never a run.
    None => panic!("zero"),
};
/// Default `capacity.kappa`.
pub const DEFAULT_KAPPA: f64 = 0.5;
/// Default `capacity.crash_after`.
pub const DEFAULT_CRASH_AFTER: Duration = Duration::from_secs(30);
/// Default `capacity.restart_after`.
pub const DEFAULT_RESTART_AFTER: Duration = Duration::from_secs(60);

/// `[capacity]` of the origin.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Capacity {
    /// Whether the model limits the origin. Default [`DEFAULT_CAPACITY_ENABLED`].
    pub enabled: bool,
    /// Offered load (requests/s) at which goodput peaks. Default [`DEFAULT_KNEE`].
    #[serde(deserialize_with = "crate::number::at_least_one")]
    pub knee: NonZeroU32,
    /// How steeply goodput falls past the knee (contention, USL-style; 0 = it stays flat):
    /// at offered load `L > knee`, goodput is about `knee / (1 + kappa * (L / knee - 1))`.
    /// Default [`DEFAULT_KAPPA`].
    pub kappa: f64,
    /// Load above the knee for this long crashes the origin; `0s` = never. Default
    /// [`DEFAULT_CRASH_AFTER`].
    pub crash_after: Duration,
    /// A crashed origin comes back after this long. Default [`DEFAULT_RESTART_AFTER`].
    pub restart_after: Duration,
}

impl Default for Capacity {
    fn default() -> Self {
        Self {
            enabled: DEFAULT_CAPACITY_ENABLED,
            knee: DEFAULT_KNEE,
            kappa: DEFAULT_KAPPA,
            crash_after: DEFAULT_CRASH_AFTER,
            restart_after: DEFAULT_RESTART_AFTER,
        }
    }
}

impl Capacity {
    pub(crate) fn check(&self, v: &mut Validator<'_>) {
        if !self.kappa.is_finite() || self.kappa < 0.0 {
            v.error(
                "capacity.kappa",
                format_args!("must be a number >= 0 (got {})", self.kappa),
            );
        }
        v.positive("capacity.restart_after", self.restart_after);
    }
}
