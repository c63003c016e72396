//! The queue's arithmetic, without cookies or pages: a token bucket filled at the admission
//! rate, the tickets this process issued and has not yet admitted, and where a ticket from
//! elsewhere (another proxy, or this proxy before a restart) stands among them.
//!
//! - A token is one admission. The bucket fills at `rate` per second and holds at most one
//!   second's worth (at least 1), so an idle room admits a burst of at most that.
//! - The process's own tickets are numbered `0, 1, 2, ...` (`seq`); those below `cursor`
//!   are admitted. Whenever the bucket holds a whole token and tickets wait, the oldest is
//!   admitted. A ticket at the front whose holder has not asked for `abandon_after` is
//!   skipped without spending a token (they left; if they come back they are let in, since
//!   their turn has passed), so people who gave up do not slow the queue down.
//! - A ticket from elsewhere stands behind this process's tickets issued before it (by
//!   issue time). Once none of those wait, it is let in at once on credit: the bucket may go
//!   down to `-debt_limit` (one refresh interval's worth), and this process's own waiting
//!   tickets wait until it is paid back. So such a ticket never waits behind tickets issued
//!   after it, and the origin sees at most one refresh interval's worth of extra admissions.
//!
//! Time is Unix milliseconds passed in by the caller (never read here), so tests are exact.
//! The per-ticket state is 8 bytes (issue and last-seen time in deciseconds since the
//! room's first use).

use std::collections::VecDeque;
use std::time::Duration;

/// Tickets tracked at most; past it, new tickets are placed by issue time like a foreign one
/// (so memory stays bounded under a flood of clients that never come back).
pub(crate) const MAX_TRACKED: usize = 1 << 22;
/// Longest wait reported; a longer one is reported as this.
pub(crate) const MAX_ESTIMATE: Duration = Duration::from_secs(24 * 3600);
/// Longest step the bucket is filled for at once. Waiting pages ask at least every half
/// minute, so a longer gap means nobody is waiting actively, or the wall clock jumped
/// forward, which must not let a whole queue in at once.
const MAX_STEP_MS: u64 = 60_000;

#[derive(Clone, Copy, Debug)]
struct Slot {
    /// Deciseconds since `base_ms`.
    issued: u32,
    /// Deciseconds since `base_ms`.
    seen: u32,
}

/// Where a ticket stands.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Place {
    /// Its turn has come.
    Admitted,
    /// Waiting behind `ahead` tickets; its turn in about `wait` (`None`: nothing is being
    /// admitted, so no estimate).
    Waiting { ahead: u64, wait: Option<Duration> },
}

/// The queue state of one process.
#[derive(Debug)]
pub(crate) struct Queue {
    /// What the origin has spare, admissions per second (infinite until told).
    spare: f64,
    /// `waiting_room.max_rate`.
    cap: Option<f64>,
    /// Admissions per second: `min(spare, cap)`.
    rate: f64,
    /// Credit for admitting a foreign ticket at the front, in tokens.
    refresh_secs: f64,
    abandon_after_ms: u64,
    tokens: f64,
    /// When `tokens` was last brought up to date; `None` before first use.
    last_ms: Option<u64>,
    /// Origin of the slot clock: the first time seen.
    base_ms: Option<u64>,
    /// Next ticket number.
    issued: u64,
    /// Tickets numbered below this are admitted.
    cursor: u64,
    /// Tickets `cursor..issued`, oldest first.
    waiting: VecDeque<Slot>,
    /// [`MAX_TRACKED`], smaller in tests.
    max_tracked: usize,
}

fn finite_or_zero(x: f64) -> f64 {
    if x.is_nan() { 0.0 } else { x.max(0.0) }
}

impl Queue {
    /// An empty queue; `refresh` is how often waiting clients come back (at most).
    pub(crate) fn new(cap: Option<u32>, refresh: Duration) -> Self {
        let mut q = Self {
            spare: f64::INFINITY,
            cap: None,
            rate: f64::INFINITY,
            refresh_secs: 1.0,
            abandon_after_ms: 0,
            tokens: 0.0,
            last_ms: None,
            base_ms: None,
            issued: 0,
            cursor: 0,
            waiting: VecDeque::new(),
            max_tracked: MAX_TRACKED,
        };
        q.configure(cap, refresh);
        q.tokens = q.burst();
        q
    }

    /// New settings (a config reload); the queue itself is kept.
    pub(crate) fn configure(&mut self, cap: Option<u32>, refresh: Duration) {
        self.cap = cap.map(f64::from);
        self.refresh_secs = refresh.as_secs_f64().max(0.001);
        // Four refresh intervals (a page refreshes at most 1.25 intervals apart), and at
        // least two minutes: browsers slow the timers of background tabs to one a minute.
        let four = refresh.saturating_mul(4).max(Duration::from_secs(120));
        self.abandon_after_ms = u64::try_from(four.as_millis()).unwrap_or(u64::MAX);
        self.update_rate();
    }

    /// What the origin has spare, admissions per second.
    pub(crate) fn set_spare(&mut self, per_second: f64) {
        self.spare = finite_or_zero(per_second);
        self.update_rate();
    }

    fn update_rate(&mut self) {
        self.rate = match self.cap {
            Some(cap) => self.spare.min(cap),
            None => self.spare,
        };
        self.tokens = self.tokens.min(self.burst());
    }

    /// The admission rate, per second.
    pub(crate) fn rate(&self) -> f64 {
        self.rate
    }

    /// Most tokens held: one second's worth, at least one.
    fn burst(&self) -> f64 {
        self.rate.max(1.0)
    }

    /// Most credit given to foreign tickets: one refresh interval's worth, at least one.
    fn debt_limit(&self) -> f64 {
        if self.rate.is_finite() {
            (self.rate * self.refresh_secs).max(1.0)
        } else {
            f64::INFINITY
        }
    }

    fn ds(&mut self, now_ms: u64) -> u32 {
        let base = *self.base_ms.get_or_insert(now_ms);
        u32::try_from(now_ms.saturating_sub(base) / 100).unwrap_or(u32::MAX)
    }

    /// Brings the bucket up to `now_ms` and admits whom it can. A clock that went back is
    /// treated as standing still.
    pub(crate) fn advance(&mut self, now_ms: u64) {
        let last = *self.last_ms.get_or_insert(now_ms);
        if now_ms > last {
            let dt = (now_ms - last).min(MAX_STEP_MS) as f64 / 1000.0;
            if self.rate.is_finite() {
                self.tokens += dt * self.rate;
            } else {
                self.tokens = f64::INFINITY;
            }
            self.last_ms = Some(now_ms);
        }
        let now = self.ds(now_ms);
        let abandon_ds = u32::try_from(self.abandon_after_ms / 100).unwrap_or(u32::MAX);
        while let Some(front) = self.waiting.front() {
            if now.saturating_sub(front.seen) > abandon_ds {
                // Gone: skipped for free.
            } else if self.tokens >= 1.0 {
                self.tokens -= 1.0;
            } else {
                break;
            }
            self.waiting.pop_front();
            self.cursor += 1;
        }
        self.tokens = self.tokens.min(self.burst());
    }

    /// A person without a ticket arrives: `None` if they may pass at once (the room is not
    /// needed: nobody waits and the bucket has a token), else their new ticket number and
    /// place (`u64::MAX` when the queue is full and the ticket is placed by time).
    pub(crate) fn arrive(&mut self, now_ms: u64) -> Option<(u64, Place)> {
        self.advance(now_ms);
        if self.waiting.is_empty() && self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return None;
        }
        if self.waiting.len() >= self.max_tracked {
            return Some((u64::MAX, self.place_foreign(now_ms, now_ms)));
        }
        let now = self.ds(now_ms);
        let issued = self.waiting.back().map_or(now, |s| s.issued.max(now));
        self.waiting.push_back(Slot { issued, seen: now });
        let seq = self.issued;
        self.issued += 1;
        let ahead = self.waiting.len() as u64 - 1;
        Some((seq, self.waiting_place(ahead)))
    }

    /// Where this process's ticket `seq` stands (it was seen now); `None` if this process
    /// never issued it.
    pub(crate) fn place_own(&mut self, seq: u64, now_ms: u64) -> Option<Place> {
        self.advance(now_ms);
        if seq < self.cursor {
            return Some(Place::Admitted);
        }
        let index = usize::try_from(seq - self.cursor).ok()?;
        let now = self.ds(now_ms);
        let slot = self.waiting.get_mut(index)?;
        slot.seen = now;
        Some(self.waiting_place(index as u64))
    }

    /// Where a ticket issued at `issued_ms` by another process stands.
    pub(crate) fn place_foreign(&mut self, issued_ms: u64, now_ms: u64) -> Place {
        self.advance(now_ms);
        let base = self.base_ms.unwrap_or(now_ms);
        let issued = u32::try_from(issued_ms.saturating_sub(base) / 100).unwrap_or(u32::MAX);
        let ahead = if issued_ms < base {
            0
        } else {
            self.waiting.partition_point(|s| s.issued <= issued)
        };
        if ahead > 0 {
            return self.waiting_place(ahead as u64);
        }
        let limit = self.debt_limit();
        if self.tokens - 1.0 >= -limit {
            self.tokens -= 1.0;
            return Place::Admitted;
        }
        // Credit used up: first in line, once the bucket is back above the limit.
        let wait =
            (self.rate > 0.0).then(|| secs((1.0 - limit - self.tokens).max(0.0) / self.rate));
        Place::Waiting { ahead: 0, wait }
    }

    /// The place of a ticket with `ahead` tickets before it: its turn comes once the bucket
    /// has paid for them and for it.
    fn waiting_place(&self, ahead: u64) -> Place {
        Place::Waiting {
            ahead,
            wait: self.wait_for(ahead),
        }
    }

    fn wait_for(&self, ahead: u64) -> Option<Duration> {
        if self.rate <= 0.0 {
            return None;
        }
        let needed = (ahead as f64 + 1.0 - self.tokens).max(0.0);
        Some(secs(needed / self.rate))
    }

    /// Tickets issued here and not yet admitted.
    pub(crate) fn depth(&self) -> u64 {
        self.waiting.len() as u64
    }

    /// The wait of someone arriving now (zero when the room is not needed; `None` when
    /// nothing is being admitted and people wait).
    pub(crate) fn newcomer_wait(&self) -> Option<Duration> {
        if self.waiting.is_empty() && self.tokens >= 1.0 {
            return Some(Duration::ZERO);
        }
        self.wait_for(self.depth())
    }
}

fn secs(s: f64) -> Duration {
    if s.is_finite() {
        Duration::from_secs_f64(s.min(MAX_ESTIMATE.as_secs_f64()))
    } else {
        MAX_ESTIMATE
    }
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used, reason = "tests")]
    use super::*;

    const T0: u64 = 1_700_000_000_000;
    const REFRESH: Duration = Duration::from_secs(20);

    fn at(secs: f64) -> u64 {
        T0 + (secs * 1000.0) as u64
    }

    fn queue(rate: u32) -> Queue {
        Queue::new(Some(rate), REFRESH)
    }

    fn ahead(p: Place) -> u64 {
        match p {
            Place::Waiting { ahead, .. } => ahead,
            Place::Admitted => panic!("admitted"),
        }
    }

    #[test]
    fn passes_straight_through_while_arrivals_stay_under_the_rate() {
        let mut q = queue(2);
        for i in 0..100 {
            assert_eq!(q.arrive(at(f64::from(i) * 0.5)), None, "arrival {i}");
        }
        assert_eq!(q.depth(), 0);
        assert_eq!(q.newcomer_wait(), Some(Duration::ZERO));
    }

    #[test]
    fn no_rate_known_and_no_cap_means_no_room() {
        let mut q = Queue::new(None, REFRESH);
        for _ in 0..10_000 {
            assert_eq!(q.arrive(T0), None);
        }
        q.set_spare(1.0);
        assert_eq!(q.arrive(T0), None, "the bucket still holds one token");
        assert!(q.arrive(T0).is_some(), "now the room is needed");
    }

    #[test]
    fn admits_in_order_of_issue_at_the_rate() {
        let mut q = queue(2);
        // The bucket starts with 2 tokens: two pass, the next five get tickets 0..5.
        assert_eq!(q.arrive(T0), None);
        assert_eq!(q.arrive(T0), None);
        let tickets: Vec<u64> = (0..5).map(|_| q.arrive(T0).unwrap().0).collect();
        assert_eq!(tickets, vec![0, 1, 2, 3, 4]);
        assert_eq!(q.depth(), 5);
        // Positions and waits: ticket k has k ahead and waits (k + 1) / 2 s.
        for k in 0..5u64 {
            match q.place_own(k, T0).unwrap() {
                Place::Waiting { ahead, wait } => {
                    assert_eq!(ahead, k);
                    assert_eq!(wait, Some(Duration::from_secs_f64((k as f64 + 1.0) / 2.0)));
                }
                Place::Admitted => panic!("{k} admitted early"),
            }
        }
        // After 1 s exactly two more are in, the oldest first.
        assert_eq!(q.place_own(0, at(1.0)), Some(Place::Admitted));
        assert_eq!(q.place_own(1, at(1.0)), Some(Place::Admitted));
        assert_eq!(ahead(q.place_own(2, at(1.0)).unwrap()), 0);
        assert_eq!(ahead(q.place_own(4, at(1.0)).unwrap()), 2);
        // Newcomers queue behind, even though tokens come in.
        let (seq, place) = q.arrive(at(1.4)).unwrap();
        assert_eq!((seq, ahead(place)), (5, 3));
        // 0.8 tokens at 1.4 s, 2 at 2 s: #2 and #3 go in.
        assert_eq!(q.place_own(3, at(2.0)), Some(Place::Admitted));
        assert_eq!(ahead(q.place_own(4, at(2.0)).unwrap()), 0);
        assert_eq!(q.place_own(4, at(2.5)), Some(Place::Admitted));
        assert_eq!(ahead(q.place_own(5, at(2.5)).unwrap()), 0);
        assert_eq!(q.place_own(5, at(3.0)), Some(Place::Admitted));
        assert_eq!(q.depth(), 0);
        // Unknown numbers of this process are not ours.
        assert_eq!(q.place_own(99, at(2.5)), None);
    }

    #[test]
    fn a_lazy_update_over_a_long_gap_admits_everyone_due() {
        let mut q = queue(1);
        assert_eq!(q.arrive(T0), None);
        for _ in 0..10 {
            q.arrive(T0).unwrap();
        }
        q.advance(at(6.0));
        assert_eq!(q.depth(), 4, "six seconds at 1/s admit six");
    }

    #[test]
    fn the_rate_follows_the_spare_and_is_capped() {
        let mut q = queue(5);
        q.set_spare(100.0);
        assert_eq!(q.rate(), 5.0);
        q.set_spare(2.0);
        assert_eq!(q.rate(), 2.0);
        q.set_spare(f64::NAN);
        assert_eq!(q.rate(), 0.0);
        q.set_spare(-3.0);
        assert_eq!(q.rate(), 0.0);
        // Nothing admitted at rate 0: waits are unknown, not zero.
        assert_eq!(q.arrive(T0), None, "the token from before");
        let (_, place) = q.arrive(T0).unwrap();
        assert_eq!(
            place,
            Place::Waiting {
                ahead: 0,
                wait: None
            }
        );
        q.advance(at(100.0));
        assert_eq!(q.depth(), 1);
        assert_eq!(q.newcomer_wait(), None);
    }

    #[test]
    fn abandoned_tickets_are_skipped_for_free_and_let_in_if_they_return() {
        let mut q = queue(1);
        assert_eq!(q.arrive(T0), None);
        let gone = q.arrive(T0).unwrap().0;
        let stays = q.arrive(T0).unwrap().0;
        q.set_spare(0.0);
        // The one who stays keeps asking; the other never comes back.
        let mut t = 0.0;
        while t < 130.0 {
            t += 20.0;
            assert!(matches!(
                q.place_own(stays, at(t)),
                Some(Place::Waiting { .. })
            ));
        }
        assert_eq!(q.depth(), 1, "the abandoned ticket is gone from the queue");
        assert_eq!(ahead(q.place_own(stays, at(t)).unwrap()), 0);
        q.set_spare(1.0);
        assert_eq!(q.place_own(stays, at(t + 1.0)), Some(Place::Admitted));
        assert_eq!(q.place_own(gone, at(t + 1.0)), Some(Place::Admitted));
    }

    #[test]
    fn a_foreign_ticket_stands_behind_tickets_issued_before_it_only() {
        let mut q = queue(1);
        assert_eq!(q.arrive(T0), None);
        q.arrive(at(0.0)).unwrap();
        q.arrive(at(1.0)).unwrap(); // the token of 1.0 s admits #0 first
        // Tickets #1 (issued at 1.0) and #2 (issued at 1.5) wait.
        q.arrive(at(1.5)).unwrap();
        assert_eq!(q.depth(), 2);
        // A ticket from elsewhere issued at 1.2 stands behind #1 only.
        let p = q.place_foreign(at(1.2), at(1.5));
        assert_eq!(ahead(p), 1);
        // One issued before all of them stands first and, on credit, is let in at once;
        // this process's next ticket then waits for the credit to be paid back.
        assert_eq!(q.place_foreign(at(0.5), at(1.5)), Place::Admitted);
        assert_eq!(q.place_foreign(T0 - 3_600_000, at(1.5)), Place::Admitted);
        q.advance(at(2.0));
        assert_eq!(q.depth(), 2, "paying back the credit");
    }

    #[test]
    fn after_a_restart_old_tickets_go_first_then_newcomers_within_bounded_credit() {
        // The old process had issued tickets at T0..; the new one starts at T0 + 60 s with
        // nobody in its queue. Rate 2/s, refresh 20 s: credit 40 admissions.
        let mut q = queue(2);
        let restart = at(60.0);
        q.advance(restart);
        let mut admitted = 0;
        let mut waiting = 0;
        for i in 0..100u64 {
            match q.place_foreign(T0 + i * 100, restart) {
                Place::Admitted => admitted += 1,
                Place::Waiting { ahead, wait } => {
                    assert_eq!(ahead, 0, "an old ticket is never behind anyone");
                    assert!(wait.is_some());
                    waiting += 1;
                }
            }
        }
        // Two tokens in the bucket plus forty on credit.
        assert_eq!(admitted, 42);
        assert_eq!(waiting, 58);
        // A newcomer after the restart waits behind the credit.
        let (_, place) = q.arrive(restart).unwrap();
        match place {
            Place::Waiting { ahead, wait } => {
                assert_eq!(ahead, 0);
                assert_eq!(wait, Some(Duration::from_secs_f64(41.0 / 2.0)));
            }
            Place::Admitted => panic!(),
        }
        // Old tickets still beat it: one second later two more old ones go in first.
        assert_eq!(q.place_foreign(T0, at(61.0)), Place::Admitted);
        assert_eq!(q.place_foreign(T0, at(61.0)), Place::Admitted);
        assert!(matches!(
            q.place_foreign(T0, at(61.0)),
            Place::Waiting { .. }
        ));
    }

    #[test]
    fn a_clock_jumping_forward_lets_in_at_most_a_minute_s_worth() {
        // Refresh 1 h: nobody counts as gone within the jump.
        let mut q = Queue::new(Some(1), Duration::from_secs(3600));
        assert_eq!(q.arrive(T0), None);
        for _ in 0..500 {
            q.arrive(T0).unwrap();
        }
        q.advance(at(3600.0));
        assert_eq!(q.depth(), 440);
    }

    #[test]
    fn past_the_tracking_limit_tickets_are_placed_by_time() {
        let mut q = queue(1);
        q.max_tracked = 3;
        assert_eq!(q.arrive(T0), None);
        for _ in 0..3 {
            q.arrive(T0).unwrap();
        }
        let (seq, place) = q.arrive(at(0.5)).unwrap();
        assert_eq!((seq, ahead(place)), (u64::MAX, 3));
        assert_eq!(q.depth(), 3, "not tracked");
        // It goes in once the tracked ones before it did (on credit, like a foreign one).
        assert_eq!(q.place_own(seq, at(0.5)), None);
        assert!(matches!(
            q.place_foreign(at(0.5), at(2.0)),
            Place::Waiting { ahead: 1, .. }
        ));
        assert_eq!(q.place_foreign(at(0.5), at(3.0)), Place::Admitted);
    }

    #[test]
    fn a_clock_going_back_stands_still() {
        let mut q = queue(1);
        assert_eq!(q.arrive(at(10.0)), None);
        let (seq, _) = q.arrive(at(10.0)).unwrap();
        assert!(matches!(
            q.place_own(seq, at(5.0)),
            Some(Place::Waiting { .. })
        ));
        assert_eq!(q.place_own(seq, at(11.0)), Some(Place::Admitted));
    }
}
