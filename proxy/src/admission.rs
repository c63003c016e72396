//! Admission toward the origin: the adaptive concurrency limit and the queue in front of it
//! (DESIGN.md, "Admission"). It keeps the origin at its best throughput without being told
//! its capacity, and refuses what the origin cannot take now quickly, with an honest
//! `Retry-After`, so the caller can answer from cache or fallback, journal, or send the
//! person to the waiting room.
//!
//! - `admission/limiter.rs`: the limit on calls in flight, a latency-gradient controller
//!   against the origin's unloaded baseline, with AIMD back-off on losses, a floor, a
//!   ceiling, slow start and periodic re-measurement of the baseline.
//! - `admission/queue.rs`: the waiters, one lane per [`Priority`], FIFO within a lane and
//!   LIFO while a standing queue exists.
//! - `admission/priority.rs`: the closed enums [`Priority`], [`ShedReason`] and
//!   [`CallOutcome`], each with its metric label; `admission/snapshot.rs`: the counters.
//! - this file: [`Admission`], which ties them together under one short mutex (taken once
//!   per arrival and once per release, never across an await), and hands out [`Slot`]s.
//!
//! An arrival takes a free call at once. Otherwise it may wait, bounded by time, never by
//! hope: by its priority's `max_wait`, by its own deadline and, while the queue is standing
//! (non-empty for `codel_interval`, and not yet empty as long since), by `codel_target`:
//! Fail at Scale's CoDel variant with N = 100 ms and M = 5 ms. If the estimated wait is
//! already longer than that, or the last waiter of its priority ran out of time while higher
//! priorities took the calls (and none of it has been granted one since), it is refused at
//! once; if the queue is
//! full (`max_waiters`), it
//! pushes out the oldest waiter of the lowest priority below its own, or is refused. A waiter
//! whose time runs out is taken out and refused: it never reaches the origin. A caller that
//! gives up (drops the future) frees its place, and a [`Slot`] dropped without
//! [`Slot::record`] frees its call without a latency sample.
//!
//! Time is `tokio::time::Instant` throughout, so the tests run on paused time, including a
//! simulated origin that follows the reference origin's capacity model (`admission/sim.rs`).

mod config;
mod limiter;
mod priority;
mod queue;
mod snapshot;

#[cfg(test)]
mod sim;
#[cfg(test)]
mod tests;

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::Instant;

pub use self::config::AdmissionConfig;
pub use self::limiter::LimitPhase;
pub use self::priority::{CallOutcome, Priority, ShedReason};
pub use self::snapshot::AdmissionSnapshot;

use self::limiter::Limiter;
use self::queue::{Decision, Queue, Waiter};
use self::snapshot::Stats;

/// Longest `Retry-After` [`Refused::retry_after_secs`] gives.
pub const MAX_RETRY_AFTER_SECS: u64 = 60;

/// Admission toward the origin; share it in an `Arc`.
#[derive(Debug)]
pub struct Admission {
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    cfg: AdmissionConfig,
    limiter: Limiter,
    queue: Queue,
    in_flight: usize,
    stats: Stats,
    last_roll: Instant,
    /// Per priority: its last waiter ran out of time while higher priorities were granted the
    /// calls, and none of it has been granted one since. Newcomers of that priority are then
    /// refused at once rather than wait out the same fate.
    overtaken: [bool; Priority::COUNT],
}

/// A request refused a call to the origin.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "origin admission refused ({reason}) after waiting {waited:?}; retry after {retry_after:?}"
)]
pub struct Refused {
    /// Why.
    pub reason: ShedReason,
    /// The estimated wait of a new arrival of the same priority at the moment of refusal
    /// (no jitter; see [`Refused::retry_after_secs`]).
    pub retry_after: Duration,
    /// How long it waited before being refused; zero when refused on arrival.
    pub waited: Duration,
}

impl Refused {
    /// `Retry-After` in whole seconds: the estimated wait rounded up, at least 1, stretched
    /// by a jitter of up to +50 % drawn from `salt` (say a request counter or a hash of the
    /// connection), so refused clients do not all come back in the same second; at most
    /// [`MAX_RETRY_AFTER_SECS`].
    #[must_use]
    pub fn retry_after_secs(&self, salt: u64) -> u64 {
        jittered_secs(self.retry_after, salt)
    }
}

/// A `Retry-After` in whole seconds for an estimated `wait`: rounded up, at least 1,
/// stretched by a jitter of up to +50 % drawn from `salt`, at most
/// [`MAX_RETRY_AFTER_SECS`]. Every refusal of the proxy uses it, so refused clients do not
/// all come back in the same second.
#[must_use]
pub fn jittered_secs(wait: Duration, salt: u64) -> u64 {
    let jitter = 1.0 + 0.5 * unit(salt);
    let secs = (wait.as_secs_f64() * jitter).ceil();
    if secs >= MAX_RETRY_AFTER_SECS as f64 {
        MAX_RETRY_AFTER_SECS
    } else {
        (secs as u64).max(1)
    }
}

/// A uniform number in [0, 1) from `salt`: splitmix64's mix, so consecutive salts give
/// unrelated numbers.
fn unit(salt: u64) -> f64 {
    let mut z = salt.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

/// One call to the origin. Report how it went with [`Slot::record`]; dropping it unrecorded
/// (the client went away) frees the call without a sample.
#[derive(Debug)]
#[must_use = "a slot holds a call to the origin until recorded or dropped"]
pub struct Slot {
    admission: Arc<Admission>,
    priority: Priority,
    granted_at: Instant,
    waited: Duration,
    done: bool,
}

impl Slot {
    /// The priority it was admitted at.
    pub fn priority(&self) -> Priority {
        self.priority
    }

    /// How long it queued before the call was granted (its sojourn time).
    pub fn waited(&self) -> Duration {
        self.waited
    }

    /// When the call was granted.
    pub fn granted_at(&self) -> Instant {
        self.granted_at
    }

    /// Time since the call was granted.
    pub fn elapsed(&self) -> Duration {
        self.granted_at.elapsed()
    }

    /// Frees the call and reports it: `latency` of the origin's answer (or how long it took
    /// to fail) and how it ended.
    pub fn record(mut self, latency: Duration, outcome: CallOutcome) {
        self.done = true;
        self.admission
            .release(self.granted_at, Some((latency, outcome)));
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if !self.done {
            self.admission.release(self.granted_at, None);
        }
    }
}

/// How an arrival went, decided under the lock.
enum Arrival {
    Granted,
    Refused(Refused),
    Queued {
        id: u64,
        rx: oneshot::Receiver<Decision>,
        expires: Instant,
    },
}

impl Admission {
    /// Admission with `cfg`, in slow start (or at the fixed limit when not adaptive).
    #[must_use]
    pub fn new(cfg: AdmissionConfig) -> Arc<Self> {
        let cfg = cfg.normalized();
        let now = Instant::now();
        Arc::new(Self {
            state: Mutex::new(State {
                limiter: Limiter::new(&cfg, now),
                queue: Queue::new(now, cfg.codel_interval),
                in_flight: 0,
                stats: Stats::default(),
                last_roll: now,
                overtaken: [false; Priority::COUNT],
                cfg,
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A call to the origin for a request of `priority`, waiting for one until `deadline`
    /// at most: pass the instant by which the call must have *started* for the answer to
    /// be of use (the request's deadline less the origin time it needs). The wait is also
    /// bounded by the priority's `max_wait`, or by `codel_target` at a standing queue; the
    /// request is refused at once when the estimated wait is longer than that.
    ///
    /// # Errors
    ///
    /// [`Refused`] with the reason and the estimated wait.
    pub async fn acquire(
        self: &Arc<Self>,
        priority: Priority,
        deadline: Instant,
    ) -> Result<Slot, Refused> {
        let now = Instant::now();
        let arrival = self.lock().arrive(now, priority, deadline);
        let (id, rx, expires) = match arrival {
            Arrival::Granted => return Ok(self.slot(priority, now, Duration::ZERO)),
            Arrival::Refused(refused) => return Err(refused),
            Arrival::Queued { id, rx, expires } => (id, rx, expires),
        };
        let mut wait = Wait {
            admission: self,
            priority,
            id,
            enqueued: now,
            rx,
            settled: false,
        };
        let decision = tokio::select! {
            biased;
            decision = &mut wait.rx => decision.ok(),
            () = tokio::time::sleep_until(expires) => None,
        };
        wait.settle(decision)
    }

    /// A call to the origin for `priority` if one is free now; never waits.
    ///
    /// # Errors
    ///
    /// [`Refused`] with [`ShedReason::Busy`] and the estimated wait.
    pub fn try_acquire(self: &Arc<Self>, priority: Priority) -> Result<Slot, Refused> {
        let now = Instant::now();
        let mut st = self.lock();
        if st.in_flight < st.limiter.limit() {
            st.grant(priority, Duration::ZERO);
            drop(st);
            return Ok(self.slot(priority, now, Duration::ZERO));
        }
        let refused = st.refuse(now, priority, ShedReason::Busy, Duration::ZERO);
        Err(refused)
    }

    /// The estimated wait for a call of a new arrival of `priority` now: zero when one is
    /// free, else the calls that must end before its turn times the origin's recent latency
    /// over the limit.
    #[must_use]
    pub fn estimated_wait(&self, priority: Priority) -> Duration {
        let now = Instant::now();
        self.lock().eta(now, priority)
    }

    /// Slow start again: the limit falls to `initial_limit`, doubles per window while the
    /// origin's latency stays near its baseline, and the baseline is learnt afresh. Call it
    /// when the breaker closes after an outage.
    pub fn slow_start(&self) {
        let now = Instant::now();
        let mut st = self.lock();
        st.limiter.slow_start(now);
        st.dispatch(now);
    }

    /// New settings (a config reload). The learnt limit and baseline are kept, clamped to the
    /// new bounds; waiters beyond a lowered `max_waiters` are refused, lowest priority first.
    pub fn reconfigure(&self, cfg: AdmissionConfig) {
        let cfg = cfg.normalized();
        let now = Instant::now();
        let mut st = self.lock();
        st.limiter.reconfigure(&cfg, now);
        st.queue.set_interval(cfg.codel_interval);
        st.cfg = cfg;
        while st.queue.len() > st.cfg.max_waiters {
            let Some((p, waiter)) = st.queue.evict_below(None, now) else {
                break;
            };
            st.refuse_waiter(now, p, waiter, ShedReason::QueueFull);
        }
        st.dispatch(now);
    }

    /// The gauges and counters now.
    #[must_use]
    pub fn snapshot(&self) -> AdmissionSnapshot {
        let now = Instant::now();
        let st = self.lock();
        let queued = st.queue.lens();
        AdmissionSnapshot {
            limit: st.limiter.limit(),
            in_flight: st.in_flight,
            phase: st.limiter.phase(),
            baseline: st.limiter.baseline(),
            latency: st.limiter.latency(),
            queued,
            queued_total: st.queue.len(),
            standing: st.queue.standing(now),
            admitted: st.stats.admitted,
            shed: st.stats.shed,
            abandoned: st.stats.abandoned,
            sojourn_count: st.stats.sojourn_count,
            sojourn_total: st.stats.sojourn_total,
            sojourn_recent_max: st.stats.recent_max(),
            backoffs: st.limiter.backoffs(),
            probes: st.limiter.probes(),
        }
    }

    /// Calls allowed in flight now.
    #[must_use]
    pub fn limit(&self) -> usize {
        self.lock().limiter.limit()
    }

    /// Calls in flight now.
    #[must_use]
    pub fn in_flight(&self) -> usize {
        self.lock().in_flight
    }

    fn slot(self: &Arc<Self>, priority: Priority, granted_at: Instant, waited: Duration) -> Slot {
        Slot {
            admission: Arc::clone(self),
            priority,
            granted_at,
            waited,
            done: false,
        }
    }

    fn release(&self, granted_at: Instant, sample: Option<(Duration, CallOutcome)>) {
        let now = Instant::now();
        self.lock().release(now, granted_at, sample);
    }
}

impl State {
    fn arrive(&mut self, now: Instant, priority: Priority, deadline: Instant) -> Arrival {
        if deadline <= now {
            return Arrival::Refused(self.refuse(
                now,
                priority,
                ShedReason::Deadline,
                Duration::ZERO,
            ));
        }
        if self.in_flight < self.limiter.limit() {
            self.grant(priority, Duration::ZERO);
            return Arrival::Granted;
        }
        let standing = self.queue.standing(now);
        let class_wait = self.cfg.max_wait(priority);
        let (wait, wait_reason) = if standing && self.cfg.codel_target < class_wait {
            (self.cfg.codel_target, ShedReason::Codel)
        } else {
            (class_wait, ShedReason::MaxWait)
        };
        let left = deadline.saturating_duration_since(now);
        let (budget, reason) = if left <= wait {
            (left, ShedReason::Deadline)
        } else {
            (wait, wait_reason)
        };
        if budget.is_zero() || self.overtaken[priority.index()] || self.eta(now, priority) > budget
        {
            return Arrival::Refused(self.refuse(now, priority, reason, Duration::ZERO));
        }
        if self.queue.len() >= self.cfg.max_waiters {
            match self.queue.evict_below(Some(priority), now) {
                Some((p, waiter)) => self.refuse_waiter(now, p, waiter, ShedReason::QueueFull),
                None => {
                    return Arrival::Refused(self.refuse(
                        now,
                        priority,
                        ShedReason::QueueFull,
                        Duration::ZERO,
                    ));
                }
            }
        }
        let (tx, rx) = oneshot::channel();
        let expires = now + budget;
        let id = self.queue.push(
            priority,
            Waiter {
                enqueued: now,
                expires,
                reason,
                higher_granted: self.granted_above(priority),
                tx,
            },
        );
        Arrival::Queued { id, rx, expires }
    }

    /// A call granted at `granted_at` ended; its place goes to the next waiter.
    fn release(
        &mut self,
        now: Instant,
        granted_at: Instant,
        sample: Option<(Duration, CallOutcome)>,
    ) {
        self.in_flight = self.in_flight.saturating_sub(1);
        self.limiter
            .on_release(now, self.in_flight, granted_at, sample);
        if now.saturating_duration_since(self.last_roll) >= self.cfg.window {
            self.last_roll = now;
            self.stats.roll();
        }
        self.dispatch(now);
    }

    /// Counts a granted call.
    fn grant(&mut self, priority: Priority, waited: Duration) {
        self.overtaken[priority.index()] = false;
        self.in_flight += 1;
        self.limiter.on_grant(self.in_flight);
        self.stats.admit(priority, waited);
    }

    /// Counts a refusal and describes it.
    fn refuse(
        &mut self,
        now: Instant,
        priority: Priority,
        reason: ShedReason,
        waited: Duration,
    ) -> Refused {
        self.stats.shed(priority, reason);
        Refused {
            reason,
            retry_after: self.eta(now, priority),
            waited,
        }
    }

    /// Refuses a waiter someone else took out of the queue.
    fn refuse_waiter(
        &mut self,
        now: Instant,
        priority: Priority,
        waiter: Waiter,
        reason: ShedReason,
    ) {
        let refused = self.refuse(now, priority, reason, Duration::ZERO);
        // The waiter may have just gone; then there is nobody to tell.
        let _ = waiter.tx.send(Decision::Refused {
            reason,
            retry_after: refused.retry_after,
        });
    }

    /// Calls granted so far to priorities above `priority`.
    fn granted_above(&self, priority: Priority) -> u64 {
        self.stats.admitted[..priority.index()].iter().sum()
    }

    /// A waiter of `priority` ran out of time: if higher priorities took calls meanwhile,
    /// newcomers of its priority are refused at once until one of them is granted a call.
    fn note_expired(&mut self, priority: Priority, waiter: &Waiter) {
        if self.granted_above(priority) > waiter.higher_granted {
            self.overtaken[priority.index()] = true;
        }
    }

    /// Hands free calls to waiters, highest priority first; refuses the expired ones met.
    fn dispatch(&mut self, now: Instant) {
        let lifo = self.queue.standing(now);
        while self.in_flight < self.limiter.limit() {
            let Some((priority, waiter)) = self.queue.pop(lifo, now) else {
                break;
            };
            if waiter.expires <= now {
                let reason = waiter.reason;
                self.note_expired(priority, &waiter);
                self.refuse_waiter(now, priority, waiter, reason);
                continue;
            }
            let waited = now.saturating_duration_since(waiter.enqueued);
            self.grant(priority, waited);
            if waiter.tx.send(Decision::Granted { at: now }).is_err() {
                // Its caller is gone (it removes itself under this lock, so this is only a
                // safety net): take the call back.
                self.in_flight -= 1;
                self.stats.admitted[priority.index()] -= 1;
            }
        }
    }

    /// The estimated wait of a new arrival of `priority`.
    fn eta(&self, now: Instant, priority: Priority) -> Duration {
        let limit = self.limiter.limit().max(1);
        let lifo = self.queue.standing(now);
        let ahead = self.queue.ahead(priority, lifo);
        let over = self.in_flight.saturating_sub(limit);
        let free = limit.saturating_sub(self.in_flight);
        let needed = (ahead + 1 + over).saturating_sub(free);
        if needed == 0 {
            return Duration::ZERO;
        }
        self.limiter
            .latency_estimate()
            .mul_f64(needed as f64 / limit as f64)
    }
}

/// A queued arrival; if dropped before settling (the caller gave up) it takes itself out
/// of the queue, or gives back the call it was granted meanwhile.
struct Wait<'a> {
    admission: &'a Arc<Admission>,
    priority: Priority,
    id: u64,
    enqueued: Instant,
    rx: oneshot::Receiver<Decision>,
    settled: bool,
}

impl Wait<'_> {
    /// The outcome: `decision` as received, or `None` when the waiter's own time ran out.
    fn settle(mut self, decision: Option<Decision>) -> Result<Slot, Refused> {
        let decision = match decision {
            Some(d) => d,
            None => {
                let now = Instant::now();
                let mut st = self.admission.lock();
                match st.queue.remove(self.priority, self.id, now) {
                    Some(waiter) => {
                        self.settled = true;
                        st.note_expired(self.priority, &waiter);
                        let waited = now.saturating_duration_since(self.enqueued);
                        return Err(st.refuse(now, self.priority, waiter.reason, waited));
                    }
                    // Decided just before the timer fired: the decision is in the channel.
                    None => match self.rx.try_recv() {
                        Ok(d) => d,
                        Err(_) => {
                            self.settled = true;
                            let waited = now.saturating_duration_since(self.enqueued);
                            return Err(st.refuse(
                                now,
                                self.priority,
                                ShedReason::Deadline,
                                waited,
                            ));
                        }
                    },
                }
            }
        };
        self.settled = true;
        match decision {
            Decision::Granted { at } => Ok(self.admission.slot(
                self.priority,
                at,
                at.saturating_duration_since(self.enqueued),
            )),
            Decision::Refused {
                reason,
                retry_after,
            } => Err(Refused {
                reason,
                retry_after,
                waited: Instant::now().saturating_duration_since(self.enqueued),
            }),
        }
    }
}

impl Drop for Wait<'_> {
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        let now = Instant::now();
        let mut st = self.admission.lock();
        if st.queue.remove(self.priority, self.id, now).is_some() {
            st.stats.abandoned[self.priority.index()] += 1;
            return;
        }
        if let Ok(Decision::Granted { at }) = self.rx.try_recv() {
            // Granted while the caller was leaving: the call goes to the next waiter.
            st.stats.abandoned[self.priority.index()] += 1;
            st.release(now, at, None);
        }
    }
}
