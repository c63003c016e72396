//! Single-flight fetches from the origin: at most one request per subject at a time, whoever
//! asks. The first caller spawns the fetch as its own task, so a citizen who gives up (or a
//! deadline that passes) never cancels it: its answer still fills the cache, and the breaker
//! and admission always hear how it ended. Later callers for the same subject wait on the
//! same answer, each under its own deadline.
//!
//! The task first waits for a call from [`Admission`] at the fetch's priority (a citizen with
//! no valid code before one refreshing a code they hold), at most until its start-by time;
//! refused, it ends at once as [`Landed::Shed`] and the caller fails over. Only then does it
//! ask the breaker.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use shouhu_code::SubjectId;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::admission::{Admission, CallOutcome, Priority};
use crate::breaker::{Admit, Breaker, BreakerState, FailureKind, OriginOutcome};
use crate::cache::{CodeCache, Entry};
use crate::log_throttle::LogThrottle;
use crate::origin_client::{OriginAnswer, OriginClient};

/// How one fetch ended.
#[derive(Clone, Debug)]
pub enum Landed {
    /// A code (cached unless the feed said something newer meanwhile).
    Code(Arc<Entry>),
    /// The origin refused the session: status, body, and whether the body is JSON.
    Denied(u16, Bytes, bool),
    /// The origin failed.
    Failed(FailureKind),
    /// Admission or the breaker refused the call: the origin was not asked.
    Shed,
}

/// Why a caller has no answer from the origin.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoAnswer {
    /// The breaker is open or admission refused: nobody asked the origin.
    Rejected,
    /// The origin failed.
    Failed(FailureKind),
    /// This caller's deadline passed first (the fetch goes on and may still fill the cache).
    Deadline,
}

type Slot = watch::Receiver<Option<Landed>>;

/// The fetches in flight.
#[derive(Debug)]
pub struct Flights {
    in_flight: Mutex<HashMap<SubjectId, Slot>>,
    origin: OriginClient,
    breaker: Arc<Breaker>,
    admission: Arc<Admission>,
    cache: Arc<CodeCache>,
}

/// What one fetch is for.
#[derive(Clone, Copy, Debug)]
pub struct FetchPlan {
    /// Its priority at admission.
    pub priority: Priority,
    /// The call must have started by then to be of use.
    pub start_by: Instant,
    /// Limit on the origin call itself.
    pub timeout: Duration,
}

impl Flights {
    /// No fetches yet.
    #[must_use]
    pub fn new(
        origin: OriginClient,
        breaker: Arc<Breaker>,
        admission: Arc<Admission>,
        cache: Arc<CodeCache>,
    ) -> Self {
        Self {
            in_flight: Mutex::new(HashMap::new()),
            origin,
            breaker,
            admission,
            cache,
        }
    }

    /// The origin's answer for `subject`, joining a fetch in flight or starting one with
    /// `plan` (a probe's shorter timeout if the breaker is half-open); this caller waits
    /// until `deadline` at most.
    pub async fn fetch(
        self: &Arc<Self>,
        subject: SubjectId,
        token: &str,
        plan: FetchPlan,
        deadline: Instant,
    ) -> Result<Landed, NoAnswer> {
        let (mut slot, joined) = self.join_or_start(subject, token, plan)?;
        if joined {
            self.cache.stats().coalesced();
        }
        let waited = tokio::time::timeout_at(deadline, slot.wait_for(Option::is_some)).await;
        match waited {
            Ok(Ok(landed)) => match landed.as_ref() {
                Some(Landed::Failed(kind)) => Err(NoAnswer::Failed(*kind)),
                Some(Landed::Shed) => Err(NoAnswer::Rejected),
                Some(l) => Ok(l.clone()),
                None => Err(NoAnswer::Deadline),
            },
            // The fetch task died without an answer (it panicked).
            Ok(Err(_)) => Err(NoAnswer::Failed(FailureKind::Io)),
            Err(_) => Err(NoAnswer::Deadline),
        }
    }

    /// Starts a background fetch unless one is in flight or the breaker is open.
    pub fn refresh(self: &Arc<Self>, subject: SubjectId, token: &str, plan: FetchPlan) {
        let _ = self.join_or_start(subject, token, plan);
    }

    /// Fetches in flight now.
    #[must_use]
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether none is in flight.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The subject's fetch in flight (and `true`: joined), or a new one (`false`).
    fn join_or_start(
        self: &Arc<Self>,
        subject: SubjectId,
        token: &str,
        plan: FetchPlan,
    ) -> Result<(Slot, bool), NoAnswer> {
        let mut map = self.lock();
        if let Some(slot) = map.get(&subject) {
            return Ok((slot.clone(), true));
        }
        // Nobody queues for an origin the breaker has given up on.
        if self.breaker.state() == BreakerState::Open {
            return Err(NoAnswer::Rejected);
        }
        let (tx, rx) = watch::channel(None);
        map.insert(subject, rx.clone());
        drop(map);
        let this = Arc::clone(self);
        let token = token.to_owned();
        let epoch = self.cache.epoch();
        tokio::spawn(async move {
            // Removes the slot however the task ends, so a panic cannot wedge the subject.
            let done = Done {
                flights: &this,
                subject,
            };
            let landed = this.admitted_run(subject, &token, plan, epoch).await;
            // Out of the map before the answer is out: a request that comes after it must
            // start a fetch of its own, not join one that has already ended.
            drop(done);
            let _ = tx.send(Some(landed));
        });
        Ok((rx, false))
    }

    /// Waits for a call from admission, then asks the breaker, then the origin.
    async fn admitted_run(
        &self,
        subject: SubjectId,
        token: &str,
        plan: FetchPlan,
        epoch: u64,
    ) -> Landed {
        let Ok(call) = self.admission.acquire(plan.priority, plan.start_by).await else {
            return Landed::Shed;
        };
        let timeout = match self.breaker.admit() {
            Admit::Reject => return Landed::Shed,
            Admit::Normal => plan.timeout,
            Admit::Probe { timeout: probe } => probe.min(plan.timeout),
        };
        let started = Instant::now();
        let landed = self.run(subject, token, timeout, epoch).await;
        let latency = started.elapsed();
        self.breaker.observe_latency(latency);
        let outcome = match &landed {
            Landed::Code(_) | Landed::Denied(..) => CallOutcome::Ok,
            Landed::Failed(FailureKind::Timeout) => CallOutcome::Timeout,
            Landed::Failed(FailureKind::Status5xx) => CallOutcome::Error,
            Landed::Failed(_) | Landed::Shed => CallOutcome::Failed,
        };
        call.record(latency, outcome);
        landed
    }

    async fn run(&self, subject: SubjectId, token: &str, timeout: Duration, epoch: u64) -> Landed {
        let answer = self.origin.fetch_code(token, timeout).await;
        self.breaker.record(match &answer {
            Ok(_) => OriginOutcome::Success,
            Err(kind) => OriginOutcome::Failure(*kind),
        });
        match answer {
            Ok(OriginAnswer::Code(view))
                if view.source == shouhu_code::Source::Origin && names(&view, &subject) =>
            {
                let entry = Arc::new(Entry::new(view, Instant::now()));
                self.cache.insert(subject, Arc::clone(&entry), epoch);
                Landed::Code(entry)
            }
            // A "code" that is not the origin's own, or names someone else, is not one we may
            // cache or show as this citizen's.
            Ok(OriginAnswer::Code(_)) => Landed::Failed(FailureKind::Io),
            Ok(OriginAnswer::Denied { status, body, json }) => {
                // The session is no longer good at the origin: do not keep serving its code.
                self.cache.invalidate(&subject);
                Landed::Denied(status, body, json)
            }
            Err(kind) => Landed::Failed(kind),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SubjectId, Slot>> {
        self.in_flight
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

struct Done<'a> {
    flights: &'a Flights,
    subject: SubjectId,
}

impl Drop for Done<'_> {
    fn drop(&mut self) {
        self.flights.lock().remove(&self.subject);
    }
}

/// Whether the code inside a view is the origin's code for `subject`. An origin that mixes up
/// sessions must not make the cache hand one person's code to another.
fn names(view: &shouhu_code::CodeView, subject: &SubjectId) -> bool {
    let ok = shouhu_code::peek_claims(&view.code).is_ok_and(|c| c.subject == *subject);
    if !ok {
        static MIXED_UP: LogThrottle = LogThrottle::every_default();
        if let Some(suppressed) = MIXED_UP.admit() {
            tracing::warn!(
                suppressed,
                "origin returned a code that is not the requester's; not served"
            );
        }
    }
    ok
}
