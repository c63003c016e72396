//! Latency and schedule-lag recording, safe from coordinated omission.
//!
//! Latency is taken from the *scheduled* send time, not from when the generator got round to
//! sending: a stalled system then shows its stall in the tail instead of hiding it (overload.md
//! §8.2). The generator's own delay (actual send minus scheduled) goes into a separate
//! histogram; when its p99 exceeds [`MAX_LAG_P99`] the generator, not the system under test,
//! shaped the numbers, and the run is invalid (§9.8). Histograms are HdrHistogram, 1 µs to
//! 60 s at 3 significant digits, one per [`Outcome`].

use std::time::Duration;

use hdrhistogram::Histogram;

use crate::outcome::Outcome;

/// Largest schedule-lag p99 of a valid run.
pub const MAX_LAG_P99: Duration = Duration::from_millis(1);
/// Largest value a histogram tracks, in µs; longer values are recorded as this.
pub const MAX_TRACKED_MICROS: u64 = 60_000_000;
/// Significant decimal digits the histograms keep.
pub const SIGNIFICANT_DIGITS: u8 = 3;

/// The histograms could not be made (their fixed bounds are wrong: a bug, not an input error).
#[derive(Debug, thiserror::Error)]
#[error("histogram: {0}")]
pub struct HistogramError(#[from] hdrhistogram::CreationError);

/// The timings of one attempt, as offsets from the start of the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// When the schedule said to send.
    pub scheduled: Duration,
    /// When it was actually sent.
    pub sent: Duration,
    /// When the answer was complete (or the attempt gave up).
    pub done: Duration,
}

impl Timing {
    /// Latency as the user sees it: from the scheduled time.
    #[must_use]
    pub fn latency(&self) -> Duration {
        self.done.saturating_sub(self.scheduled)
    }

    /// How late the generator sent.
    #[must_use]
    pub fn lag(&self) -> Duration {
        self.sent.saturating_sub(self.scheduled)
    }
}

/// Whether a run's numbers can be trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Validity {
    /// The generator kept to its schedule.
    Valid,
    /// The generator fell behind: lag p99 above [`MAX_LAG_P99`].
    LagTooHigh {
        /// The measured lag p99.
        lag_p99: Duration,
    },
}

/// Latency per outcome class and schedule lag, for one phase or one run.
#[derive(Debug, Clone)]
pub struct Recorder {
    latency: Vec<Histogram<u64>>,
    lag: Histogram<u64>,
}

impl Recorder {
    /// Empty histograms.
    ///
    /// # Errors
    /// Only if the fixed bounds were invalid.
    pub fn new() -> Result<Self, HistogramError> {
        let latency = Outcome::ALL
            .iter()
            .map(|_| histogram())
            .collect::<Result<_, _>>()?;
        Ok(Self {
            latency,
            lag: histogram()?,
        })
    }

    /// Records one attempt.
    pub fn record(&mut self, outcome: Outcome, timing: Timing) {
        if let Some(h) = self.latency.get_mut(outcome.index()) {
            h.saturating_record(micros(timing.latency()));
        }
        self.lag.saturating_record(micros(timing.lag()));
    }

    /// Records only the schedule lag of an attempt whose latency is kept elsewhere (requests
    /// other than code displays).
    pub fn record_lag(&mut self, timing: Timing) {
        self.lag.saturating_record(micros(timing.lag()));
    }

    /// Adds another recorder's values (from another worker or phase).
    ///
    /// # Errors
    /// Only if the other recorder's histograms had different bounds.
    pub fn merge(&mut self, other: &Self) -> Result<(), hdrhistogram::AdditionError> {
        for (mine, theirs) in self.latency.iter_mut().zip(&other.latency) {
            mine.add(theirs)?;
        }
        self.lag.add(&other.lag)
    }

    /// How many attempts ended as `outcome`.
    #[must_use]
    pub fn count(&self, outcome: Outcome) -> u64 {
        self.latency.get(outcome.index()).map_or(0, Histogram::len)
    }

    /// How many attempts were recorded with an outcome (those recorded with
    /// [`Recorder::record_lag`] only are not counted).
    #[must_use]
    pub fn total(&self) -> u64 {
        self.latency.iter().map(Histogram::len).sum()
    }

    /// The latency at quantile `q` (0..=1) of `outcome`, or `None` without samples.
    #[must_use]
    pub fn latency(&self, outcome: Outcome, q: f64) -> Option<Duration> {
        self.latency
            .get(outcome.index())
            .filter(|h| !h.is_empty())
            .map(|h| Duration::from_micros(h.value_at_quantile(q)))
    }

    /// The latency histogram of `outcome` (µs), for reports and raw HDR logs.
    #[must_use]
    pub fn latency_histogram(&self, outcome: Outcome) -> Option<&Histogram<u64>> {
        self.latency.get(outcome.index())
    }

    /// The schedule-lag histogram (µs).
    #[must_use]
    pub fn lag_histogram(&self) -> &Histogram<u64> {
        &self.lag
    }

    /// The schedule lag at quantile `q`; zero without samples.
    #[must_use]
    pub fn lag(&self, q: f64) -> Duration {
        Duration::from_micros(self.lag.value_at_quantile(q))
    }

    /// Whether the generator kept up (§9.8).
    #[must_use]
    pub fn validity(&self) -> Validity {
        let lag_p99 = self.lag(0.99);
        // HdrHistogram reports the highest value equivalent to the sample's bucket; compare
        // bucket to bucket so a sample of exactly 1 ms counts as within the limit.
        if self.lag.equivalent(micros(lag_p99), micros(MAX_LAG_P99)) || lag_p99 <= MAX_LAG_P99 {
            Validity::Valid
        } else {
            Validity::LagTooHigh { lag_p99 }
        }
    }
}

fn histogram() -> Result<Histogram<u64>, HistogramError> {
    Ok(Histogram::new_with_bounds(
        1,
        MAX_TRACKED_MICROS,
        SIGNIFICANT_DIGITS,
    )?)
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used, reason = "tests")]
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn us(n: u64) -> Duration {
        Duration::from_micros(n)
    }

    #[test]
    fn latency_counts_from_the_scheduled_time() {
        // Coordinated omission: a 2 s stall delays the send of a request due at 0 s; its
        // latency is 2.01 s, not the 10 ms between send and answer.
        let mut r = Recorder::new().unwrap();
        let t = Timing {
            scheduled: ms(0),
            sent: ms(2000),
            done: ms(2010),
        };
        r.record(Outcome::Fresh, t);
        let p50 = r.latency(Outcome::Fresh, 0.5).unwrap();
        assert!(p50 >= ms(2009) && p50 <= ms(2012), "{p50:?}");
        assert!(r.lag(0.5) >= ms(1999));
    }

    #[test]
    fn classes_have_their_own_histograms() {
        let mut r = Recorder::new().unwrap();
        for i in 0..100 {
            let at = ms(i);
            r.record(
                Outcome::Fresh,
                Timing {
                    scheduled: at,
                    sent: at,
                    done: at + ms(5),
                },
            );
            r.record(
                Outcome::Busy,
                Timing {
                    scheduled: at,
                    sent: at,
                    done: at + us(300),
                },
            );
        }
        assert_eq!(r.count(Outcome::Fresh), 100);
        assert_eq!(r.count(Outcome::Busy), 100);
        assert_eq!(r.count(Outcome::Wrong), 0);
        assert_eq!(r.total(), 200);
        let fresh = r.latency(Outcome::Fresh, 0.99).unwrap();
        let busy = r.latency(Outcome::Busy, 0.99).unwrap();
        assert!(fresh.abs_diff(ms(5)) < us(10), "{fresh:?}");
        assert!(busy.abs_diff(us(300)) < us(2), "{busy:?}");
        assert_eq!(r.latency(Outcome::Timeout, 0.5), None);
    }

    #[test]
    fn lag_p99_above_one_ms_makes_the_run_invalid() {
        let timing = |lag: Duration| Timing {
            scheduled: ms(10),
            sent: ms(10) + lag,
            done: ms(20) + lag,
        };
        let mut r = Recorder::new().unwrap();
        assert_eq!(r.validity(), Validity::Valid);
        for _ in 0..990 {
            r.record(Outcome::Fresh, timing(us(50)));
        }
        // 1 % late by 5 ms: p99 still in the fast bucket.
        for _ in 0..10 {
            r.record(Outcome::Fresh, timing(ms(5)));
        }
        assert_eq!(r.validity(), Validity::Valid);
        // Exactly at the limit is still valid.
        let mut edge = Recorder::new().unwrap();
        edge.record(Outcome::Fresh, timing(MAX_LAG_P99));
        assert_eq!(edge.validity(), Validity::Valid);
        // 2 % late: p99 is 5 ms.
        for _ in 0..20 {
            r.record(Outcome::Fresh, timing(ms(5)));
        }
        match r.validity() {
            Validity::LagTooHigh { lag_p99 } => assert!(lag_p99 >= ms(4), "{lag_p99:?}"),
            Validity::Valid => panic!("a 5 ms lag p99 passed"),
        }
    }

    #[test]
    fn sending_early_is_no_lag_and_huge_values_saturate() {
        let mut r = Recorder::new().unwrap();
        r.record(
            Outcome::Timeout,
            Timing {
                scheduled: ms(100),
                sent: ms(99),
                done: Duration::from_secs(600),
            },
        );
        assert_eq!(r.lag(1.0), Duration::ZERO);
        let max = r.latency(Outcome::Timeout, 1.0).unwrap();
        assert!(max >= Duration::from_secs(59), "{max:?}");
    }

    #[test]
    fn recorders_merge() {
        let mut a = Recorder::new().unwrap();
        let mut b = Recorder::new().unwrap();
        let t = Timing {
            scheduled: ms(0),
            sent: ms(0),
            done: ms(1),
        };
        a.record(Outcome::Fresh, t);
        b.record(Outcome::Fresh, t);
        b.record(Outcome::Wrong, t);
        a.merge(&b).unwrap();
        assert_eq!(a.count(Outcome::Fresh), 2);
        assert_eq!(a.count(Outcome::Wrong), 1);
        assert_eq!(a.total(), 3);
    }
}
