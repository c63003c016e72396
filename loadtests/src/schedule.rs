//! Open-loop arrivals: when each request is due, decided before the run and never by how fast
//! the system under test answers (overload.md §8.2). A schedule is a list of piecewise-constant
//! phases; within a phase arrivals are a Poisson process (exponential gaps), drawn from a
//! seeded, portable RNG so every variant of a comparison gets exactly the same offsets.

use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// One stretch of constant offered load.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RatePhase {
    /// How long the phase lasts.
    pub duration: Duration,
    /// Mean arrivals per second; 0 means none.
    pub rate: f64,
}

/// A rate that is not a finite number of at least 0.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("phase {index}: rate must be a finite number >= 0 (got {rate})")]
pub struct InvalidRate {
    /// The phase's position.
    pub index: usize,
    /// The offending value.
    pub rate: f64,
}

/// The rate over time: phases back to back from offset 0.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    phases: Vec<RatePhase>,
}

impl Schedule {
    /// A schedule of these phases, in order.
    ///
    /// # Errors
    /// A phase's rate is negative, infinite or NaN.
    pub fn new(phases: Vec<RatePhase>) -> Result<Self, InvalidRate> {
        if let Some((index, p)) = phases
            .iter()
            .enumerate()
            .find(|(_, p)| !(p.rate.is_finite() && p.rate >= 0.0))
        {
            return Err(InvalidRate {
                index,
                rate: p.rate,
            });
        }
        Ok(Self { phases })
    }

    /// The phases.
    #[must_use]
    pub fn phases(&self) -> &[RatePhase] {
        &self.phases
    }

    /// The length of the whole schedule.
    #[must_use]
    pub fn duration(&self) -> Duration {
        self.phases.iter().map(|p| p.duration).sum()
    }

    /// The expected number of arrivals over the whole schedule.
    #[must_use]
    pub fn expected_arrivals(&self) -> f64 {
        self.phases
            .iter()
            .map(|p| p.rate * p.duration.as_secs_f64())
            .sum()
    }

    /// The arrivals for `seed`, in time order. The same seed always gives the same offsets.
    #[must_use]
    pub fn arrivals(&self, seed: u64) -> Arrivals<'_> {
        Arrivals {
            phases: &self.phases,
            rng: ChaCha8Rng::seed_from_u64(seed),
            index: 0,
            phase_start: 0.0,
            now: 0.0,
        }
    }
}

/// One scheduled request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arrival {
    /// When it is due, from the start of the run.
    pub at: Duration,
    /// The phase it falls in.
    pub phase: usize,
}

/// The iterator of [`Schedule::arrivals`].
#[derive(Debug, Clone)]
pub struct Arrivals<'a> {
    phases: &'a [RatePhase],
    rng: ChaCha8Rng,
    index: usize,
    /// Offsets in seconds: f64 keeps sub-nanosecond precision over hours.
    phase_start: f64,
    now: f64,
}

impl Iterator for Arrivals<'_> {
    type Item = Arrival;

    fn next(&mut self) -> Option<Arrival> {
        loop {
            let phase = self.phases.get(self.index)?;
            let end = self.phase_start + phase.duration.as_secs_f64();
            if phase.rate > 0.0 {
                // 1 - u lies in (0, 1], so the logarithm is finite.
                let u: f64 = self.rng.random();
                let gap = -(1.0 - u).ln() / phase.rate;
                let at = self.now + gap;
                if at < end {
                    self.now = at;
                    return Some(Arrival {
                        at: Duration::from_secs_f64(at),
                        phase: self.index,
                    });
                }
            }
            // Poisson arrivals are memoryless: restarting the draw at the boundary with the
            // next phase's rate is exact, not an approximation.
            self.index += 1;
            self.phase_start = end;
            self.now = end;
        }
    }
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used, reason = "tests")]
    use super::*;

    fn phase(secs: u64, rate: f64) -> RatePhase {
        RatePhase {
            duration: Duration::from_secs(secs),
            rate,
        }
    }

    #[test]
    fn count_in_a_phase_is_within_statistical_bounds() {
        // 100 s at 500/s: mean 50,000, sd ~224; 5 sd either side.
        let s = Schedule::new(vec![phase(100, 500.0)]).unwrap();
        for seed in 0..5 {
            let n = s.arrivals(seed).count() as f64;
            assert!(
                (n - 50_000.0).abs() < 5.0 * 50_000f64.sqrt(),
                "seed {seed}: {n}"
            );
        }
    }

    #[test]
    fn gaps_are_exponential() {
        // Mean gap 1/rate and coefficient of variation ~1 (a constant-rate pacer would give 0).
        let s = Schedule::new(vec![phase(200, 100.0)]).unwrap();
        let at: Vec<f64> = s.arrivals(7).map(|a| a.at.as_secs_f64()).collect();
        let gaps: Vec<f64> = at.windows(2).map(|w| w[1] - w[0]).collect();
        let n = gaps.len() as f64;
        let mean = gaps.iter().sum::<f64>() / n;
        let var = gaps.iter().map(|g| (g - mean).powi(2)).sum::<f64>() / n;
        assert!((mean - 0.01).abs() < 0.0005, "mean gap {mean}");
        assert!(
            (var.sqrt() / mean - 1.0).abs() < 0.05,
            "cv {}",
            var.sqrt() / mean
        );
    }

    #[test]
    fn same_seed_same_schedule_other_seed_other_schedule() {
        let s = Schedule::new(vec![phase(2, 300.0), phase(1, 1000.0)]).unwrap();
        let a: Vec<_> = s.arrivals(42).collect();
        let b: Vec<_> = s.arrivals(42).collect();
        let c: Vec<_> = s.arrivals(43).collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn rate_zero_phases_have_no_arrivals() {
        let s = Schedule::new(vec![phase(5, 200.0), phase(10, 0.0), phase(5, 200.0)]).unwrap();
        let all: Vec<_> = s.arrivals(1).collect();
        assert!(all.iter().all(|a| a.phase != 1));
        assert!(
            all.iter()
                .all(|a| a.at < Duration::from_secs(5) || a.at >= Duration::from_secs(15))
        );
        assert!(all.iter().any(|a| a.phase == 2));
        assert_eq!(
            Schedule::new(vec![phase(10, 0.0)])
                .unwrap()
                .arrivals(1)
                .count(),
            0
        );
    }

    #[test]
    fn arrivals_respect_phase_boundaries_and_order() {
        let s = Schedule::new(vec![phase(3, 50.0), phase(2, 5000.0), phase(4, 20.0)]).unwrap();
        let all: Vec<_> = s.arrivals(9).collect();
        let bounds = [(0.0, 3.0), (3.0, 5.0), (5.0, 9.0)];
        for a in &all {
            let (lo, hi) = bounds[a.phase];
            let t = a.at.as_secs_f64();
            assert!(lo <= t && t < hi, "{a:?}");
        }
        assert!(all.windows(2).all(|w| w[0].at <= w[1].at));
        // The 2 s at 5000/s dominate: ~10,000 of ~10,230.
        let spike = all.iter().filter(|a| a.phase == 1).count() as f64;
        assert!((spike - 10_000.0).abs() < 500.0, "{spike}");
        assert_eq!(s.duration(), Duration::from_secs(9));
        assert!((s.expected_arrivals() - 10_230.0).abs() < 1e-9);
    }

    #[test]
    fn bad_rates_are_refused() {
        let e = Schedule::new(vec![phase(1, 1.0), phase(1, -1.0)]).unwrap_err();
        assert_eq!(e.index, 1);
        assert!(Schedule::new(vec![phase(1, f64::NAN)]).is_err());
        assert!(Schedule::new(vec![phase(1, f64::INFINITY)]).is_err());
    }
}
