//! The waiters for a call to the origin: one lane per [`Priority`], each ordered by arrival
//! (a `BTreeMap` by sequence number, so a waiter that leaves is removed in O(log n) and the
//! oldest and newest are both at hand).
//!
//! Served highest lane first; within a lane FIFO, or LIFO while the queue is **standing**:
//! then the newest waiter, whose client is still listening, goes first, and the oldest time
//! out (Fail at Scale's adaptive LIFO). The queue becomes standing once it has not been
//! empty for `codel_interval` (Fail at Scale's rule) and stays so until it has been empty
//! for `codel_interval`: under sustained overload it empties for moments between arrivals,
//! and without this hysteresis each moment would let a burst of long waits in again. Every
//! waiter carries its own expiry, set on arrival; nothing here waits or wakes.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::Instant;

use super::{Priority, ShedReason};

/// What a waiter is told.
#[derive(Debug)]
pub(crate) enum Decision {
    /// A call is reserved for it from `at`.
    Granted { at: Instant },
    /// Refused, with the estimated wait of a new arrival of its priority.
    Refused {
        reason: ShedReason,
        retry_after: Duration,
    },
}

/// One request waiting.
#[derive(Debug)]
pub(crate) struct Waiter {
    pub(crate) enqueued: Instant,
    /// It is refused at this instant if still waiting.
    pub(crate) expires: Instant,
    /// Why, if it expires.
    pub(crate) reason: ShedReason,
    /// Calls granted to higher priorities before it arrived (to tell, when it expires,
    /// whether they overtook it).
    pub(crate) higher_granted: u64,
    pub(crate) tx: oneshot::Sender<Decision>,
}

/// The lanes.
#[derive(Debug)]
pub(crate) struct Queue {
    lanes: [BTreeMap<u64, Waiter>; Priority::COUNT],
    len: usize,
    next_id: u64,
    /// When it last became empty or non-empty.
    since: Instant,
    /// Whether it was standing at that change.
    was_standing: bool,
    interval: Duration,
}

impl Queue {
    /// An empty queue that counts as standing after `interval` (`codel_interval`).
    pub(crate) fn new(now: Instant, interval: Duration) -> Self {
        Self {
            lanes: Default::default(),
            len: 0,
            next_id: 0,
            since: now,
            was_standing: false,
            interval,
        }
    }

    /// A new `codel_interval` (a reload).
    pub(crate) fn set_interval(&mut self, interval: Duration) {
        self.interval = interval;
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Waiters per priority, by [`Priority::index`].
    pub(crate) fn lens(&self) -> [usize; Priority::COUNT] {
        std::array::from_fn(|i| self.lanes[i].len())
    }

    /// Whether the queue is standing: not empty for `interval`, and not empty for
    /// `interval` since.
    pub(crate) fn standing(&self, now: Instant) -> bool {
        let held = now.saturating_duration_since(self.since) >= self.interval;
        if self.len > 0 {
            self.was_standing || held
        } else {
            self.was_standing && !held
        }
    }

    /// Called just before the queue turns empty or non-empty.
    fn flip(&mut self, now: Instant) {
        self.was_standing = self.standing(now);
        self.since = now;
    }

    /// Waiters a new arrival of `priority` would have ahead of it: every higher lane, and
    /// its own lane unless the queue is served LIFO.
    pub(crate) fn ahead(&self, priority: Priority, lifo: bool) -> usize {
        let higher: usize = self.lanes[..priority.index()]
            .iter()
            .map(BTreeMap::len)
            .sum();
        if lifo {
            higher
        } else {
            higher + self.lanes[priority.index()].len()
        }
    }

    /// Adds a waiter; returns its id.
    pub(crate) fn push(&mut self, priority: Priority, waiter: Waiter) -> u64 {
        if self.len == 0 {
            self.flip(waiter.enqueued);
        }
        let id = self.next_id;
        self.next_id += 1;
        self.lanes[priority.index()].insert(id, waiter);
        self.len += 1;
        id
    }

    /// Takes out the waiter `id` of `priority`, if it is still there.
    pub(crate) fn remove(&mut self, priority: Priority, id: u64, now: Instant) -> Option<Waiter> {
        let waiter = self.lanes[priority.index()].remove(&id)?;
        self.taken(now);
        Some(waiter)
    }

    /// Takes out the next waiter to serve: the highest lane, oldest first or (`lifo`)
    /// newest first.
    pub(crate) fn pop(&mut self, lifo: bool, now: Instant) -> Option<(Priority, Waiter)> {
        let (i, lane) = self
            .lanes
            .iter_mut()
            .enumerate()
            .find(|(_, lane)| !lane.is_empty())?;
        let (_, waiter) = if lifo {
            lane.pop_last()?
        } else {
            lane.pop_first()?
        };
        self.taken(now);
        Some((Priority::ALL[i], waiter))
    }

    /// Takes out the oldest waiter of the lowest lane below `above` (any lane when `None`),
    /// to make room.
    pub(crate) fn evict_below(
        &mut self,
        above: Option<Priority>,
        now: Instant,
    ) -> Option<(Priority, Waiter)> {
        let first = above.map_or(0, |p| p.index() + 1);
        let i = (first..Priority::COUNT)
            .rev()
            .find(|&i| !self.lanes[i].is_empty())?;
        let (_, waiter) = self.lanes[i].pop_first()?;
        self.taken(now);
        Some((Priority::ALL[i], waiter))
    }

    fn taken(&mut self, now: Instant) {
        if self.len == 1 {
            self.flip(now);
        }
        self.len -= 1;
    }
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used, reason = "tests")]
    use super::*;

    fn waiter(now: Instant) -> Waiter {
        let (tx, _rx) = oneshot::channel();
        Waiter {
            enqueued: now,
            expires: now + Duration::from_secs(1),
            reason: ShedReason::MaxWait,
            higher_granted: 0,
            tx,
        }
    }

    #[test]
    fn serves_the_highest_lane_first_fifo_or_lifo() {
        let now = Instant::now();
        let mut q = Queue::new(now, Duration::from_millis(100));
        let a = q.push(Priority::Other, waiter(now));
        let b = q.push(Priority::Declare, waiter(now));
        let c = q.push(Priority::Declare, waiter(now));
        let d = q.push(Priority::Scan, waiter(now));
        assert_eq!(q.ahead(Priority::Declare, false), 3);
        assert_eq!(q.ahead(Priority::Declare, true), 1);
        assert_eq!(q.lens(), [1, 0, 2, 0, 0, 1]);
        let order: Vec<Priority> = std::iter::from_fn(|| q.pop(false, now).map(|(p, _)| p))
            .take(2)
            .collect();
        assert_eq!(order, [Priority::Scan, Priority::Declare]);
        assert!(
            q.remove(Priority::Declare, b, now).is_none(),
            "b was popped"
        );
        q.push(Priority::Declare, waiter(now));
        // LIFO takes the newest declare, leaving c.
        q.pop(true, now).unwrap();
        assert!(q.remove(Priority::Declare, c, now).is_some());
        assert!(q.remove(Priority::Other, a, now).is_some());
        assert_eq!(q.len(), 0);
        let _ = d;
    }

    #[test]
    fn evicts_the_oldest_of_the_lowest_lane_below_the_arrival() {
        let now = Instant::now();
        let mut q = Queue::new(now, Duration::from_millis(100));
        let old = q.push(Priority::DisplayRefresh, waiter(now));
        q.push(Priority::DisplayRefresh, waiter(now));
        q.push(Priority::Register, waiter(now));
        assert!(q.evict_below(Some(Priority::DisplayRefresh), now).is_none());
        let (p, _) = q.evict_below(Some(Priority::Scan), now).unwrap();
        assert_eq!(p, Priority::DisplayRefresh);
        assert!(
            q.remove(Priority::DisplayRefresh, old, now).is_none(),
            "oldest went"
        );
        assert_eq!(
            q.evict_below(None, now).unwrap().0,
            Priority::DisplayRefresh
        );
        assert_eq!(q.evict_below(None, now).unwrap().0, Priority::Register);
        assert!(q.evict_below(None, now).is_none());
    }

    #[test]
    fn standing_once_not_empty_for_the_interval_until_empty_as_long() {
        let ms = Duration::from_millis;
        let t0 = Instant::now();
        let mut q = Queue::new(t0, ms(100));
        let t1 = t0 + ms(500);
        q.push(Priority::Other, waiter(t1));
        assert!(!q.standing(t1 + ms(99)));
        assert!(q.standing(t1 + ms(100)));
        // Empty for moments between arrivals: still standing.
        let t2 = t1 + ms(150);
        q.pop(false, t2).unwrap();
        assert!(q.standing(t2 + ms(99)));
        q.push(Priority::Other, waiter(t2 + ms(99)));
        assert!(q.standing(t2 + ms(99)));
        // Empty for a whole interval: over.
        let t3 = t2 + ms(200);
        q.pop(false, t3).unwrap();
        assert!(q.standing(t3 + ms(99)));
        assert!(!q.standing(t3 + ms(100)));
        q.push(Priority::Other, waiter(t3 + ms(100)));
        assert!(!q.standing(t3 + ms(150)));
    }
}
