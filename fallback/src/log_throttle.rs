//! At most one log line per interval for an event that can happen on every request (the
//! fallback issuer failing, the journal unreachable): under load such events are counted in
//! the metrics, and the log says once in a while that they go on, and how often.
//!
//! ```
//! use shouhu_fallback::log_throttle::LogThrottle;
//!
//! static ISSUER_FAILED: LogThrottle = LogThrottle::every_default();
//! if let Some(suppressed) = ISSUER_FAILED.admit() {
//!     // tracing::warn!(suppressed, "fallback issuer failed");
//! }
//! ```

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The interval of [`LogThrottle::every_default`].
pub const DEFAULT_LOG_EVERY: Duration = Duration::from_secs(10);

/// One kind of event's gate: lets a line through, then counts the ones it holds back until
/// the interval has passed.
#[derive(Debug)]
pub struct LogThrottle {
    every_ms: u64,
    /// When the next line may be written, milliseconds since [`clock`]'s origin.
    next_ms: AtomicU64,
    suppressed: AtomicU64,
}

impl LogThrottle {
    /// A gate that lets one line through per `every`.
    #[must_use]
    pub const fn new(every: Duration) -> Self {
        // `as_millis` is u128; an interval of more than 584 million years is not a concern.
        #[expect(
            clippy::cast_possible_truncation,
            reason = "const fn: no try_from; intervals are seconds to minutes"
        )]
        let every_ms = every.as_millis() as u64;
        Self {
            every_ms,
            next_ms: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    /// A gate of [`DEFAULT_LOG_EVERY`].
    #[must_use]
    pub const fn every_default() -> Self {
        Self::new(DEFAULT_LOG_EVERY)
    }

    /// `Some(n)` when a line may be written now, `n` being the lines held back since the
    /// last one; `None` (and the event counted) otherwise.
    pub fn admit(&self) -> Option<u64> {
        self.admit_at(clock())
    }

    fn admit_at(&self, now_ms: u64) -> Option<u64> {
        let next = self.next_ms.load(Ordering::Relaxed);
        if now_ms >= next
            && self
                .next_ms
                .compare_exchange(
                    next,
                    now_ms.saturating_add(self.every_ms),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
        {
            return Some(self.suppressed.swap(0, Ordering::Relaxed));
        }
        self.suppressed.fetch_add(1, Ordering::Relaxed);
        None
    }
}

/// Milliseconds since the first call in this process (monotonic).
fn clock() -> u64 {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    let elapsed = ORIGIN.get_or_init(Instant::now).elapsed().as_millis();
    u64::try_from(elapsed).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_interval_with_the_count_held_back() {
        let gate = LogThrottle::new(Duration::from_secs(10));
        assert_eq!(gate.admit_at(0), Some(0));
        for t in 1..1000 {
            assert_eq!(gate.admit_at(t), None);
        }
        assert_eq!(gate.admit_at(9_999), None);
        assert_eq!(gate.admit_at(10_000), Some(1000));
        assert_eq!(gate.admit_at(10_001), None);
        assert_eq!(gate.admit_at(25_000), Some(1));
    }

    #[test]
    fn ten_thousand_events_in_a_burst_make_one_line() {
        let gate = LogThrottle::every_default();
        let lines = (0..10_000).filter(|_| gate.admit().is_some()).count();
        assert_eq!(lines, 1);
    }
}
