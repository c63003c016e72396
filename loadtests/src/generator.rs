//! The open-loop generator and its users (overload.md §9.4).
//!
//! One OS thread dispatches: it sleeps until the next attempt is due and hands it to the
//! tokio runtime. First tries come from the seeded Poisson [`Schedule`], so every variant gets
//! the same intents at the same offsets for the same people; retries and re-displays depend
//! on the answers and come back to the dispatcher through a channel, each with its own
//! scheduled time. An attempt's latency is measured from its scheduled time and its schedule
//! lag is when its task actually began minus that time; a slow generator shows up as lag, and
//! a lag p99 over 1 ms makes the run invalid.
//!
//! Users: an intent is "show my code" (or a scan, a declaration, a registration). After a
//! BUSY, ERROR or TIMEOUT the user retries after `Retry-After` (2 s without one) times
//! U(0.5, 1.5), at most 5 attempts and 60 s, then gives up. After a valid code they show it
//! again with probability 0.2 after U(5, 30) s. The client waits at most 10 s for an answer.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};
use shouhu_code::Colour;
use shouhu_code::time::now as unix_now;

use crate::measure::{HistogramError, Recorder, Timing};
use crate::oracle::{Change, Oracle, Reply, Truth};
use crate::outcome::Outcome;
use crate::result::{ClassCounts, OtherClass, Second};
use crate::schedule::Schedule;
use crate::stack::{Person, registration};

/// How the simulated people behave.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct UserModel {
    /// Attempts per intent before giving up.
    pub max_attempts: u32,
    /// Time from the first attempt after which a user gives up.
    pub give_up_after: Duration,
    /// Retry delay without `Retry-After`.
    pub default_retry: Duration,
    /// Probability of showing the code again after a success.
    pub redisplay_probability: f64,
    /// When the second showing comes, uniform in this range.
    pub redisplay_after: (Duration, Duration),
    /// How long the client waits for an answer.
    pub client_timeout: Duration,
    /// An answer within this long counts towards goodput.
    pub good_within: Duration,
}

impl Default for UserModel {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            give_up_after: Duration::from_secs(60),
            default_retry: Duration::from_secs(2),
            redisplay_probability: 0.2,
            redisplay_after: (Duration::from_secs(5), Duration::from_secs(30)),
            client_timeout: Duration::from_secs(10),
            good_within: Duration::from_secs(1),
        }
    }
}

/// Shares of intents by class; the rest are code displays.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Mix {
    /// Venue scans.
    pub scan: f64,
    /// Health declarations.
    pub declare: f64,
    /// New registrations.
    pub register: f64,
}

impl Default for Mix {
    fn default() -> Self {
        Self {
            scan: 0.04,
            declare: 0.03,
            register: 0.01,
        }
    }
}

/// What the scenario knows about everyone's colour, changed as the run changes facts.
#[derive(Debug)]
pub struct TruthBook {
    truths: RwLock<Vec<Truth>>,
}

impl TruthBook {
    /// Everyone at the colour they had at setup.
    #[must_use]
    pub fn new(people: &[Person]) -> Self {
        Self {
            truths: RwLock::new(people.iter().map(|p| Truth::steady(p.colour)).collect()),
        }
    }

    /// The truth about person `i` now.
    #[must_use]
    pub fn get(&self, i: usize) -> Truth {
        self.truths
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(i)
            .copied()
            .unwrap_or(Truth::steady(Colour::Unknown))
    }

    /// Person `i` is `colour` from now on.
    pub fn change(&self, i: usize, colour: Colour) {
        let mut t = self.truths.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(truth) = t.get_mut(i) {
            let from = truth.colour;
            *truth = Truth {
                colour,
                changed: Some(Change {
                    at: unix_now(),
                    from,
                }),
            };
        }
    }
}

/// What kind of request an intent makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Display,
    Other(OtherClass),
}

/// One person's wish, carried from attempt to attempt.
#[derive(Debug, Clone, Copy)]
struct Intent {
    /// Unique in the run; seeds the intent's own random draws.
    id: u64,
    person: usize,
    class: Class,
    /// Scheduled time of the first attempt, from the start of the run.
    started: Duration,
    /// Attempts made so far.
    attempts: u32,
    /// A registration's person number.
    registration: u64,
}

/// One attempt due at `at`.
#[derive(Debug, Clone, Copy)]
struct Due {
    at: Duration,
    intent: Intent,
}

impl PartialEq for Due {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.intent.id, self.intent.attempts)
            == (other.at, other.intent.id, other.intent.attempts)
    }
}
impl Eq for Due {}
impl PartialOrd for Due {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Due {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.intent.id, self.intent.attempts).cmp(&(
            other.at,
            other.intent.id,
            other.intent.attempts,
        ))
    }
}

/// Per-phase accumulators.
#[derive(Debug, Clone)]
pub struct PhaseTally {
    /// Display attempts by outcome and the schedule lag of all attempts.
    pub recorder: Recorder,
    /// Display attempts with a valid code within [`UserModel::good_within`].
    pub good: u64,
    /// Display intents started.
    pub intents: u64,
    /// Display attempts of the intents started here.
    pub attempts: u64,
    /// Intents that ended with a valid code.
    pub served: u64,
    /// Intents that ended with UNKNOWN.
    pub unknown: u64,
    /// Intents that gave up.
    pub gave_up: u64,
    /// Non-display attempts.
    pub others: BTreeMap<OtherClass, ClassCounts>,
}

impl PhaseTally {
    fn new() -> Result<Self, HistogramError> {
        Ok(Self {
            recorder: Recorder::new()?,
            good: 0,
            intents: 0,
            attempts: 0,
            served: 0,
            unknown: 0,
            gave_up: 0,
            others: BTreeMap::new(),
        })
    }
}

struct SecondTally {
    offered: u64,
    by_outcome: [u64; 8],
    good: u64,
    latency: Histogram<u64>,
}

/// Everything one run records.
struct Tally {
    phases: Vec<PhaseTally>,
    seconds: Vec<SecondTally>,
    wrong: Vec<String>,
}

/// What the generator hands back.
#[derive(Debug)]
pub struct Generated {
    /// Per phase.
    pub phases: Vec<PhaseTally>,
    /// Per second.
    pub seconds: Vec<Second>,
    /// The first WRONG answers, with why.
    pub wrong_examples: Vec<String>,
    /// How late the dispatcher thread handed attempts to the runtime, p50/p99/max, µs (the
    /// schedule lag is this plus the wait for a runtime worker).
    pub dispatch_lag_us: [u64; 3],
}

/// Live counters for a progress display.
#[derive(Debug, Default)]
pub struct Live {
    /// Attempts answered.
    pub done: AtomicU64,
    /// Attempts in flight.
    pub in_flight: AtomicUsize,
    /// Valid codes.
    pub valid: AtomicU64,
    /// BUSY answers.
    pub busy: AtomicU64,
    /// WRONG answers.
    pub wrong: AtomicU64,
}

/// Everything an attempt needs.
struct Ctx {
    /// Clients by intent id: a connection pool each, so no pool's waiting list grows to the
    /// thousands when an origin hangs.
    http: Vec<reqwest::Client>,
    base: String,
    people: Arc<Vec<Person>>,
    truth: Arc<TruthBook>,
    oracle: Oracle,
    model: UserModel,
    seed: u64,
    /// Distinguishes this run's idempotency keys and registrations from other runs'.
    run_tag: String,
    start: Instant,
    phase_starts: Vec<Duration>,
    end: Duration,
    tally: Mutex<Tally>,
    live: Arc<Live>,
    retries: Mutex<mpsc::Sender<Due>>,
    /// Answers to judge; `None` once the run is over.
    judge: Mutex<Option<mpsc::Sender<Returned>>>,
}

/// The workload of one run.
pub struct Workload {
    /// Where requests go (origin, nginx or proxy), e.g. `http://127.0.0.1:8080`.
    pub base: String,
    /// The registered people.
    pub people: Arc<Vec<Person>>,
    /// Their colours.
    pub truth: Arc<TruthBook>,
    /// Judges every display.
    pub oracle: Oracle,
    /// How people behave.
    pub model: UserModel,
    /// The class mix.
    pub mix: Mix,
    /// The scenario's seed.
    pub seed: u64,
    /// Unique per run (variant and round), for idempotency keys.
    pub run_tag: String,
    /// First person number of this run's new registrations.
    pub first_registration: u64,
    /// Live counters.
    pub live: Arc<Live>,
}

/// A client that keeps connections open (a pool per host), talks to loopback only and gives
/// up after `timeout`.
///
/// # Errors
/// The TLS-less builder failed (not expected).
pub fn http_client(timeout: Duration) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(4096)
        .pool_idle_timeout(Duration::from_secs(90))
        .tcp_nodelay(true)
        .timeout(timeout)
        .build()?)
}

/// How long before an attempt is due the dispatcher stops sleeping and yields instead.
const SPIN: Duration = Duration::from_micros(1500);

/// Connection pools the attempts are spread over.
const CLIENT_POOLS: u64 = 32;

/// Which phase an offset falls in.
fn phase_of(starts: &[Duration], at: Duration) -> usize {
    starts.partition_point(|s| *s <= at).saturating_sub(1)
}

/// Runs `schedule` open-loop on `runtime`, blocking this thread until every attempt due
/// before the end of the schedule has been answered or timed out. `start` is the run's
/// time zero (the runner changes the origin at phase starts from the same zero).
///
/// # Errors
/// The histograms could not be made.
pub fn run(
    runtime: &tokio::runtime::Handle,
    schedule: &Schedule,
    workload: Workload,
    start: Instant,
) -> anyhow::Result<Generated> {
    let end = schedule.duration();
    let mut phase_starts = Vec::new();
    let mut at = Duration::ZERO;
    for p in schedule.phases() {
        phase_starts.push(at);
        at += p.duration;
    }
    let seconds = end.as_secs() as usize + 1;
    let tally = Tally {
        phases: (0..phase_starts.len().max(1))
            .map(|_| PhaseTally::new())
            .collect::<Result<_, _>>()?,
        seconds: (0..seconds)
            .map(|_| {
                Ok(SecondTally {
                    offered: 0,
                    by_outcome: [0; 8],
                    good: 0,
                    latency: Histogram::new_with_bounds(10, 60_000_000, 2)?,
                })
            })
            .collect::<Result<_, hdrhistogram::CreationError>>()?,
        wrong: Vec::new(),
    };
    let (tx, rx) = mpsc::channel::<Due>();
    let (judge_tx, judge_rx) = mpsc::channel::<Returned>();
    let ctx = Arc::new(Ctx {
        http: (0..CLIENT_POOLS)
            .map(|_| http_client(workload.model.client_timeout))
            .collect::<anyhow::Result<_>>()?,
        base: workload.base,
        people: workload.people,
        truth: workload.truth,
        oracle: workload.oracle,
        model: workload.model,
        seed: workload.seed,
        run_tag: workload.run_tag,
        start,
        phase_starts,
        end,
        tally: Mutex::new(tally),
        live: workload.live,
        retries: Mutex::new(tx),
        judge: Mutex::new(Some(judge_tx)),
    });
    let judge = {
        let ctx = Arc::clone(&ctx);
        std::thread::Builder::new()
            .name("judge".to_owned())
            .spawn(move || judge_loop(&ctx, &judge_rx))?
    };

    // The first tries: the same for every variant (schedule and draws from the seed).
    let mut draws = ChaCha8Rng::seed_from_u64(workload.seed ^ 0x5EED_1A7E);
    let population = ctx.people.len().max(1);
    let mix = workload.mix;
    let mut registrations = workload.first_registration;
    let mut firsts = schedule
        .arrivals(workload.seed)
        .enumerate()
        .map(move |(n, a)| {
            let roll: f64 = draws.random();
            let person = draws.random_range(0..population);
            let class = if roll < mix.scan {
                Class::Other(OtherClass::Scan)
            } else if roll < mix.scan + mix.declare {
                Class::Other(OtherClass::Declare)
            } else if roll < mix.scan + mix.declare + mix.register {
                Class::Other(OtherClass::Register)
            } else {
                Class::Display
            };
            let registration = if class == Class::Other(OtherClass::Register) {
                registrations += 1;
                registrations
            } else {
                0
            };
            Due {
                at: a.at,
                intent: Intent {
                    id: n as u64,
                    person,
                    class,
                    started: a.at,
                    attempts: 0,
                    registration,
                },
            }
        })
        .peekable();

    let mut later: BinaryHeap<Reverse<Due>> = BinaryHeap::new();
    let mut dispatch_lag = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    loop {
        while let Ok(d) = rx.try_recv() {
            if d.at < end {
                later.push(Reverse(d));
            }
        }
        let next_first = firsts.peek().map(|d| d.at);
        let next_later = later.peek().map(|Reverse(d)| d.at);
        let next = match (next_first, next_later) {
            // Attempts in flight may still ask for a retry before the end.
            (None, None)
                if ctx.live.in_flight.load(Ordering::Relaxed) > 0 && start.elapsed() < end =>
            {
                std::thread::sleep(Duration::from_millis(2));
                continue;
            }
            (None, None) => break,
            (Some(a), None) => a,
            (None, Some(b)) => b,
            (Some(a), Some(b)) => a.min(b),
        };
        let now = start.elapsed();
        if next > now {
            let wait = next - now;
            if wait > SPIN {
                // Retries arrive at least half a second ahead; waking every 2 ms picks
                // them up.
                std::thread::sleep((wait - SPIN).min(Duration::from_millis(2)));
            } else {
                // The last stretch is spent yielding, not sleeping: a virtual CPU that
                // idles is woken up to a millisecond late, which is the whole lag budget.
                std::thread::yield_now();
            }
            continue;
        }
        let due = if next_first == Some(next) {
            firsts.next()
        } else {
            later.pop().map(|Reverse(d)| d)
        };
        if let Some(due) = due {
            dispatch_lag
                .saturating_record(start.elapsed().saturating_sub(due.at).as_micros() as u64);
            let ctx = Arc::clone(&ctx);
            ctx.live.in_flight.fetch_add(1, Ordering::Relaxed);
            runtime.spawn(attempt(ctx, due));
        }
    }

    // Answers still on their way: at most the client timeout.
    let deadline = Instant::now() + ctx.model.client_timeout + Duration::from_secs(2);
    while ctx.live.in_flight.load(Ordering::Relaxed) > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    // The judge ends when its queue is closed and drained.
    drop(
        ctx.judge
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take(),
    );
    if judge.join().is_err() {
        anyhow::bail!("the judge thread panicked");
    }
    let tally = std::mem::replace(
        &mut *ctx.tally.lock().unwrap_or_else(PoisonError::into_inner),
        Tally {
            phases: Vec::new(),
            seconds: Vec::new(),
            wrong: Vec::new(),
        },
    );
    Ok(Generated {
        phases: tally.phases,
        seconds: tally
            .seconds
            .into_iter()
            .enumerate()
            .map(|(i, s)| {
                let q = |q: f64| {
                    if s.latency.is_empty() {
                        0.0
                    } else {
                        s.latency.value_at_quantile(q) as f64 / 1000.0
                    }
                };
                Second {
                    at: u32::try_from(i).unwrap_or(u32::MAX),
                    offered: s.offered,
                    by_outcome: s.by_outcome,
                    good: s.good,
                    latency_ms: [q(0.5), q(0.99), q(0.999)],
                }
            })
            .collect(),
        wrong_examples: tally.wrong,
        dispatch_lag_us: [
            dispatch_lag.value_at_quantile(0.5),
            dispatch_lag.value_at_quantile(0.99),
            dispatch_lag.max(),
        ],
    })
}

/// What one HTTP exchange gave.
struct Answer {
    status: u16,
    source: Option<String>,
    retry_after: Option<Duration>,
    body: Vec<u8>,
}

enum Exchange {
    Answer(Answer),
    TimedOut,
    Failed,
}

async fn exchange(req: reqwest::RequestBuilder) -> Exchange {
    let r = match req.send().await {
        Ok(r) => r,
        Err(e) if e.is_timeout() => return Exchange::TimedOut,
        Err(_) => return Exchange::Failed,
    };
    let status = r.status().as_u16();
    let header = |name: &str| {
        r.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let source = header("x-shouhu-source");
    let retry_after = header("retry-after")
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    match r.bytes().await {
        Ok(body) => Exchange::Answer(Answer {
            status,
            source,
            retry_after,
            body: body.to_vec(),
        }),
        Err(e) if e.is_timeout() => Exchange::TimedOut,
        Err(_) => Exchange::Failed,
    }
}

/// What an attempt brought back, for the judge.
struct Returned {
    due: Due,
    intent: Intent,
    sent: Duration,
    done: Duration,
    /// The truth and the Unix time when the answer came.
    truth: Truth,
    unix: shouhu_code::time::UnixTime,
    exchange: Exchange,
}

/// One attempt: send and wait for the answer; the judge does the rest.
async fn attempt(ctx: Arc<Ctx>, due: Due) {
    let sent = ctx.start.elapsed();
    let mut intent = due.intent;
    intent.attempts += 1;
    let person = &ctx.people[intent.person];
    let http = &ctx.http[(intent.id % ctx.http.len() as u64) as usize];
    let req = match intent.class {
        Class::Display => http
            .get(format!("{}/api/code", ctx.base))
            .bearer_auth(&person.token),
        Class::Other(OtherClass::Scan) => http
            .post(format!("{}/api/verify", ctx.base))
            .json(&json!({"code": person.code})),
        Class::Other(OtherClass::Declare) => http
            .post(format!("{}/api/declare", ctx.base))
            .bearer_auth(&person.token)
            .header(
                "Idempotency-Key",
                format!("lt-{}-{}", ctx.run_tag, intent.id),
            )
            .json(&json!({"temperature": 36.5, "symptoms": [], "travel": []})),
        Class::Other(OtherClass::Register) => http
            .post(format!("{}/api/register", ctx.base))
            .json(&registration(intent.registration)),
    };
    let exchange = exchange(req).await;
    let returned = Returned {
        due,
        intent,
        sent,
        done: ctx.start.elapsed(),
        truth: ctx.truth.get(intent.person),
        unix: unix_now(),
        exchange,
    };
    let sent_to_judge = ctx
        .judge
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .as_ref()
        .is_some_and(|judge| judge.send(returned).is_ok());
    if !sent_to_judge {
        ctx.live.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The judge's loop: verifies every answer, records it and schedules what the user does
/// next. It runs on its own thread at the lowest priority so that checking signatures
/// never delays a send; its queue only delays the bookkeeping.
fn judge_loop(ctx: &Ctx, rx: &mpsc::Receiver<Returned>) {
    lower_this_threads_priority("19");
    while let Ok(r) = rx.recv() {
        let person = &ctx.people[r.intent.person];
        let (outcome, retry_after, wrong) = match r.intent.class {
            Class::Display => judge_display(ctx, person, &r),
            Class::Other(_) => judge_other(&r.exchange),
        };
        let timing = Timing {
            scheduled: r.due.at,
            sent: r.sent.max(r.due.at),
            done: r.done,
        };
        let next = next_step(ctx, &r.intent, outcome, retry_after, r.done);
        record(ctx, &r.intent, r.due.at, outcome, timing, wrong, next);
        ctx.live.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// `renice` this thread to `niceness` (Linux threads are tasks with their own id, which
/// `/proc/thread-self` names); lowering a priority needs no privilege.
pub fn lower_this_threads_priority(niceness: &str) {
    let Ok(link) = std::fs::read_link("/proc/thread-self") else {
        return;
    };
    let Some(tid) = link.file_name().and_then(|n| n.to_str()).map(str::to_owned) else {
        return;
    };
    let _ = std::process::Command::new("renice")
        .args(["-n", niceness, "-p", &tid])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
}

/// Outcome of one attempt as the user sees it: the class (for displays the oracle's), the
/// server's `Retry-After`, and why it was WRONG.
type Judged = (
    Result<Outcome, ClassResult>,
    Option<Duration>,
    Option<String>,
);

/// How a non-display attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClassResult {
    Ok,
    Busy,
    Error,
    Timeout,
}

fn judge_display(ctx: &Ctx, person: &Person, r: &Returned) -> Judged {
    let (truth, now) = (&r.truth, r.unix);
    let (verdict, retry_after, status) = match &r.exchange {
        Exchange::TimedOut => (
            ctx.oracle
                .judge(&Reply::TimedOut, &person.subject, truth, now),
            None,
            0,
        ),
        Exchange::Failed => (
            ctx.oracle
                .judge(&Reply::ConnectionFailed, &person.subject, truth, now),
            None,
            0,
        ),
        Exchange::Answer(a) => {
            let json: Value = serde_json::from_slice(&a.body).unwrap_or(Value::Null);
            let reply = Reply::Http {
                status: a.status,
                source: a.source.as_deref(),
                code: json["code"].as_str(),
            };
            (
                ctx.oracle.judge(&reply, &person.subject, truth, now),
                a.retry_after,
                a.status,
            )
        }
    };
    let wrong = verdict.wrong.map(|w| {
        format!(
            "{:.3} s: status {status}, subject {}, truth {:?}: {w}",
            r.done.as_secs_f64(),
            person.subject.to_hex(),
            truth.colour
        )
    });
    (Ok(verdict.outcome), retry_after, wrong)
}

fn judge_other(exchange: &Exchange) -> Judged {
    let (result, retry_after) = match exchange {
        Exchange::TimedOut => (ClassResult::Timeout, None),
        Exchange::Failed => (ClassResult::Error, None),
        Exchange::Answer(a) if (200..300).contains(&a.status) => (ClassResult::Ok, None),
        Exchange::Answer(a) if a.status == 429 || a.status == 503 => {
            (ClassResult::Busy, a.retry_after)
        }
        Exchange::Answer(_) => (ClassResult::Error, None),
    };
    (Err(result), retry_after, None)
}

/// What the user does after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Next {
    /// Tries again at this offset.
    Retry(Duration),
    /// Shows the code again at this offset (a new intent).
    Redisplay(Duration),
    /// Has a code and is done.
    Served,
    /// Got "check manually" and is done.
    Unknown,
    /// Gives up.
    GaveUp,
    /// Done otherwise (a WRONG answer, or a non-display request that succeeded).
    Done,
}

fn next_step(
    ctx: &Ctx,
    intent: &Intent,
    outcome: Result<Outcome, ClassResult>,
    retry_after: Option<Duration>,
    now: Duration,
) -> Next {
    let mut rng = ChaCha8Rng::seed_from_u64(
        ctx.seed ^ intent.id.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ u64::from(intent.attempts),
    );
    match outcome {
        Ok(o) if o.is_valid_code() => {
            if rng.random_bool(ctx.model.redisplay_probability) {
                let (lo, hi) = ctx.model.redisplay_after;
                let after = lo + (hi - lo).mul_f64(rng.random::<f64>());
                return Next::Redisplay(now + after);
            }
            return Next::Served;
        }
        Ok(Outcome::Unknown) => return Next::Unknown,
        Ok(Outcome::Wrong) | Err(ClassResult::Ok) => return Next::Done,
        // BUSY, ERROR, TIMEOUT: retry or give up.
        Ok(_) | Err(_) => {}
    }
    if intent.attempts >= ctx.model.max_attempts
        || now.saturating_sub(intent.started) >= ctx.model.give_up_after
    {
        return Next::GaveUp;
    }
    let base = retry_after.unwrap_or(ctx.model.default_retry);
    Next::Retry(now + base.mul_f64(rng.random_range(0.5..1.5)))
}

fn record(
    ctx: &Ctx,
    intent: &Intent,
    scheduled: Duration,
    outcome: Result<Outcome, ClassResult>,
    timing: Timing,
    wrong: Option<String>,
    next: Next,
) {
    let phase = phase_of(&ctx.phase_starts, scheduled);
    let intent_phase = phase_of(&ctx.phase_starts, intent.started);
    {
        let mut t = ctx.tally.lock().unwrap_or_else(PoisonError::into_inner);
        let good = matches!(outcome, Ok(o) if o.is_valid_code())
            && timing.latency() <= ctx.model.good_within;
        match outcome {
            Ok(o) => {
                if let Some(p) = t.phases.get_mut(phase) {
                    p.recorder.record(o, timing);
                    p.good += u64::from(good);
                }
                if let Some(s) = t.seconds.get_mut(scheduled.as_secs() as usize) {
                    s.offered += 1;
                    s.by_outcome[o.index()] += 1;
                    s.good += u64::from(good);
                    s.latency
                        .saturating_record(timing.latency().as_micros() as u64);
                }
            }
            Err(r) => {
                if let Class::Other(class) = intent.class
                    && let Some(p) = t.phases.get_mut(phase)
                {
                    p.recorder.record_lag(timing);
                    let c = p.others.entry(class).or_default();
                    match r {
                        ClassResult::Ok => c.ok += 1,
                        ClassResult::Busy => c.busy += 1,
                        ClassResult::Error => c.error += 1,
                        ClassResult::Timeout => c.timeout += 1,
                    }
                }
            }
        }
        if intent.class == Class::Display
            && let Some(p) = t.phases.get_mut(intent_phase)
        {
            if intent.attempts == 1 {
                p.intents += 1;
            }
            p.attempts += 1;
            match next {
                Next::Served | Next::Redisplay(_) => p.served += 1,
                Next::Unknown => p.unknown += 1,
                Next::GaveUp => p.gave_up += 1,
                Next::Retry(_) | Next::Done => {}
            }
        }
        if let Some(w) = wrong
            && t.wrong.len() < 20
        {
            t.wrong.push(w);
        }
    }
    match outcome {
        Ok(o) if o.is_valid_code() => ctx.live.valid.fetch_add(1, Ordering::Relaxed),
        Ok(Outcome::Busy) | Err(ClassResult::Busy) => ctx.live.busy.fetch_add(1, Ordering::Relaxed),
        Ok(Outcome::Wrong) => ctx.live.wrong.fetch_add(1, Ordering::Relaxed),
        _ => 0,
    };
    ctx.live.done.fetch_add(1, Ordering::Relaxed);
    let again = match next {
        Next::Retry(at) => Some(Due {
            at,
            intent: *intent,
        }),
        Next::Redisplay(at) => Some(Due {
            at,
            intent: Intent {
                id: intent.id ^ (1 << 63) ^ (u64::from(intent.attempts) << 48),
                attempts: 0,
                started: at,
                class: Class::Display,
                ..*intent
            },
        }),
        _ => None,
    };
    if let Some(d) = again
        && d.at < ctx.end
    {
        let _ = ctx
            .retries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .send(d);
    }
}

/// People chosen by the seed: `share` of `population`, distinct, for colour change `n`.
#[must_use]
pub fn chosen(seed: u64, n: usize, share: f64, population: usize) -> Vec<usize> {
    let want = ((share * population as f64).round() as usize).clamp(1, population.max(1));
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xC0_10_0B ^ (n as u64) << 32);
    rand::seq::index::sample(&mut rng, population.max(1), want.min(population.max(1))).into_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_are_found_by_offset() {
        let starts = [
            Duration::ZERO,
            Duration::from_secs(10),
            Duration::from_secs(30),
        ];
        assert_eq!(phase_of(&starts, Duration::ZERO), 0);
        assert_eq!(phase_of(&starts, Duration::from_millis(9_999)), 0);
        assert_eq!(phase_of(&starts, Duration::from_secs(10)), 1);
        assert_eq!(phase_of(&starts, Duration::from_secs(99)), 2);
    }

    #[test]
    fn the_chosen_are_distinct_and_repeatable() {
        let a = chosen(1, 0, 0.01, 5000);
        assert_eq!(a.len(), 50);
        assert_eq!(a, chosen(1, 0, 0.01, 5000));
        assert_ne!(a, chosen(1, 1, 0.01, 5000));
        let mut d = a.clone();
        d.sort_unstable();
        d.dedup();
        assert_eq!(d.len(), a.len());
        assert!(a.iter().all(|i| *i < 5000));
    }
}
