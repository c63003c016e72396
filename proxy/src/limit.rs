//! A static limit on calls in flight to the origin (`origin.max_in_flight`), shared by
//! pass-through and the display path's fetches. Past it, `display` fails over at once, `scan`
//! is verified at the edge, `declare` is journalled and the other classes get a fast 503 with
//! `Retry-After`. The admission work replaces this with an adaptive limit.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The limit; share it in an `Arc`.
#[derive(Debug)]
pub struct OriginLimit {
    max: AtomicUsize,
    in_flight: AtomicUsize,
}

/// One call in flight; frees its place when dropped.
#[derive(Debug)]
pub struct Permit {
    limit: Arc<OriginLimit>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.limit.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

impl OriginLimit {
    /// At most `max` calls in flight; 0 means no limit.
    #[must_use]
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(Self {
            max: AtomicUsize::new(max),
            in_flight: AtomicUsize::new(0),
        })
    }

    /// A place for one call, or `None` when the limit is reached.
    #[must_use]
    pub fn try_acquire(self: &Arc<Self>) -> Option<Permit> {
        let max = self.max.load(Ordering::Acquire);
        let taken = self
            .in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (max == 0 || n < max).then_some(n + 1)
            });
        taken.ok().map(|_| Permit {
            limit: Arc::clone(self),
        })
    }

    /// Calls in flight now.
    #[must_use]
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    /// The limit (0: none).
    #[must_use]
    pub fn max(&self) -> usize {
        self.max.load(Ordering::Acquire)
    }

    /// Changes the limit (a config reload); calls in flight above a lowered limit finish.
    pub fn set_max(&self, max: usize) {
        self.max.store(max, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_past_the_limit_and_frees_on_drop() {
        let limit = OriginLimit::new(2);
        let a = limit.try_acquire();
        let b = limit.try_acquire();
        assert!(a.is_some() && b.is_some());
        assert!(limit.try_acquire().is_none());
        assert_eq!(limit.in_flight(), 2);
        drop(a);
        assert!(limit.try_acquire().is_some());
        limit.set_max(0);
        let many: Vec<_> = (0..100).filter_map(|_| limit.try_acquire()).collect();
        assert_eq!(many.len(), 100);
        limit.set_max(1);
        assert!(limit.try_acquire().is_none());
        drop(many);
        drop(b);
        assert_eq!(limit.in_flight(), 0);
    }
}
