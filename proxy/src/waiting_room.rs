//! The waiting room for the `register` class (registration and login): signed FIFO tickets,
//! admitted at the rate the origin has spare. No Pingora here; the service calls
//! [`WaitingRoom::check`] for each `register` request and sends what it says.
//!
//! # How it behaves
//!
//! - **Not needed, not seen.** While nobody waits and arrivals stay under the admission rate,
//!   every request passes at once; a person without a cookie gets an *admitted* cookie on
//!   the way, so a queue that forms a moment later does not catch them between loading the
//!   form and posting it.
//! - **Queueing.** Once more people arrive than the rate lets in, each newcomer gets a
//!   *waiting* ticket and a page with their place and estimated wait (or JSON, for apps).
//!   Tickets are let in in the order they were issued, at `min(spare, max_rate)` per second
//!   ([`WaitingRoom::note_spare`] is fed by the admission controller; before the first call
//!   only `max_rate` limits, and without it the room never queues). A let-in ticket becomes
//!   an admitted cookie valid for `admitted_for`, during which the person's `register`
//!   requests all pass. The details of the arithmetic are in `queue`.
//! - **Signed.** The cookie is HMAC-SHA256-signed ([`ticket`]); a forged or altered cookie,
//!   or a ticket older than [`TICKET_MAX_AGE`] or from more than [`MAX_CLOCK_SKEW`] in the
//!   future, counts as no cookie: its holder gets a new ticket at the back.
//! - **Restarts and several proxies.** A ticket carries its issue time, the issuing
//!   process's random `epoch` and its number there. The issuing process places it exactly.
//!   Any other process with the same key (a restarted proxy, or a peer behind the same
//!   balancer) places it by issue time: behind its own tickets issued earlier, in front of
//!   those issued later. After a restart nobody of the old queue is behind anyone: old
//!   tickets are let in as soon as their pages next refresh (within `refresh` × 1.25), on
//!   credit of up to one refresh interval's worth of admissions; past that credit they are
//!   first in line and go in as the rate allows, before anyone who arrived after the
//!   restart. So an old ticket gets in earlier than it would have, never later, and the
//!   origin sees at most `rate × refresh` extra admissions. Among old tickets the order is
//!   who refreshes first, not issue time.
//! - **Abandonment.** A ticket whose holder stopped asking for four refresh intervals (at
//!   least two minutes) is skipped at the front without using a slot; if the holder comes
//!   back they are let in (their turn passed). So people who gave up do not slow the queue.
//! - **Answers.** Browsers get a **200** page: it is not an error, every browser shows it,
//!   no intermediary replaces it with its own 5xx page, and `<meta http-equiv="refresh">`
//!   reloads it (no script needed). Apps (`Accept: application/json` or an `/api/` path,
//!   see [`wants_json`]) get **503** with JSON: the server, not the client, is short of
//!   capacity (429 would say the client sent too much), and HTTP clients and retry
//!   libraries treat 503 + `Retry-After` as "come back later". Every wait answer carries
//!   `Retry-After` = the estimated wait plus up to 25 %, at most the `refresh` interval
//!   ±25 %, at least 1 s (the same value the page reloads after), and `Cache-Control:
//!   no-store`.
//!
//! # Limits
//!
//! Cookies are bearer tokens: a person who copies their admitted cookie to others lets them
//! skip the queue for `admitted_for` (the admission controller behind the room still
//! protects the origin). Each proxy runs its own queue at the rate it is fed; with several
//! proxies the order across them is by issue time, to within one proxy's queue.

mod key;
mod page;
mod queue;
mod ticket;

use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;

pub use self::key::{KeyError, load_key, load_or_create_key, read_key};
use self::page::View;
use self::queue::{Place, Queue};
pub use self::ticket::COOKIE_NAME;
use self::ticket::{Kind, Signer, Ticket};

/// A waiting ticket older than this is no ticket (its holder starts again at the back).
pub const TICKET_MAX_AGE: Duration = Duration::from_secs(24 * 3600);
/// How far in the future a ticket's issue time may be (clocks of proxies sharing a key).
pub const MAX_CLOCK_SKEW: Duration = Duration::from_secs(300);
/// The longest estimated wait reported; longer ones, and "nobody is being let in", are
/// reported as this.
pub const MAX_ESTIMATED_WAIT: Duration = queue::MAX_ESTIMATE;

/// Why a request passes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PassReason {
    /// The room is off or not needed now.
    NotNeeded,
    /// The ticket's turn came just now.
    Admitted,
    /// The request carries a valid admitted cookie.
    AlreadyAdmitted,
}

impl PassReason {
    /// Metric label.
    pub fn label(self) -> &'static str {
        match self {
            Self::NotNeeded => "not_needed",
            Self::Admitted => "admitted",
            Self::AlreadyAdmitted => "already_admitted",
        }
    }
}

/// A "please wait" answer, ready to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Wait {
    /// 200 for the page, 503 for JSON.
    pub status: u16,
    /// `Content-Type`.
    pub content_type: &'static str,
    /// The page or the JSON.
    pub body: Bytes,
    /// `Retry-After`, seconds (the page reloads after as long).
    pub retry_after: u32,
    /// `Set-Cookie`: the ticket (re-sent on every answer, so it never expires while used).
    pub set_cookie: String,
    /// Tickets ahead of this one.
    pub ahead: u64,
    /// Estimated wait; `None` if nobody is being let in now.
    pub estimated_wait: Option<Duration>,
}

impl Wait {
    /// Every header of the answer.
    pub fn headers(&self) -> [(&'static str, String); 4] {
        [
            ("content-type", self.content_type.to_owned()),
            ("retry-after", self.retry_after.to_string()),
            ("set-cookie", self.set_cookie.clone()),
            ("cache-control", "no-store".to_owned()),
        ]
    }
}

/// What to do with one `register` request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Forward it; add `set_cookie` (an admitted cookie) to the response if present.
    Pass {
        /// Why.
        reason: PassReason,
        /// `Set-Cookie` value for the response.
        set_cookie: Option<String>,
    },
    /// Answer with this instead.
    Wait(Wait),
}

/// Depth, wait and rate at one moment.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Stats {
    /// Tickets issued here and not yet admitted.
    pub depth: u64,
    /// The wait of someone arriving now (zero when the room is not needed; `None` when
    /// people wait and nobody is being let in).
    pub estimated_wait: Option<Duration>,
    /// Admissions per second now (infinite: no limit known).
    pub rate: f64,
}

#[derive(Clone, Copy, Debug)]
struct Settings {
    enabled: bool,
    admitted_for: Duration,
    refresh: Duration,
}

impl Settings {
    fn of(cfg: &shouhu_config::proxy::WaitingRoom) -> Self {
        Self {
            enabled: cfg.enabled,
            admitted_for: cfg.admitted_for.get(),
            refresh: cfg.refresh.get(),
        }
    }
}

#[derive(Debug)]
struct State {
    settings: Settings,
    queue: Queue,
}

/// The waiting room of one proxy process; share it behind an `Arc`.
#[derive(Debug)]
pub struct WaitingRoom {
    signer: Signer,
    /// This process's tickets carry it; random, so a restart or a peer never claims them.
    epoch: u64,
    state: Mutex<State>,
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Whether a `register` request should be answered with JSON rather than the page: an
/// `/api/` path, or an `Accept` header that names `application/json`.
pub fn wants_json(path: &str, accept: Option<&[u8]>) -> bool {
    path.starts_with("/api/")
        || accept.is_some_and(|a| {
            a.windows(16)
                .any(|w| w.eq_ignore_ascii_case(b"application/json"))
        })
}

impl WaitingRoom {
    /// A room with `cfg`'s settings, signing with `key` (see [`load_key`]).
    pub fn new(cfg: &shouhu_config::proxy::WaitingRoom, key: &[u8; 32]) -> Self {
        let settings = Settings::of(cfg);
        Self {
            signer: Signer::new(key),
            epoch: rand::random(),
            state: Mutex::new(State {
                settings,
                queue: Queue::new(cfg.max_rate, settings.refresh),
            }),
        }
    }

    /// Applies new settings (a config reload), keeping the queue. The key is not reloaded.
    pub fn reconfigure(&self, cfg: &shouhu_config::proxy::WaitingRoom) {
        let mut state = self.lock();
        state.settings = Settings::of(cfg);
        state.queue.configure(cfg.max_rate, cfg.refresh.get());
    }

    /// What the origin has room for, in people let in per second (the admission controller's
    /// spare `register` rate divided by the requests one registration takes); capped by
    /// `waiting_room.max_rate`. Negative or NaN counts as 0.
    pub fn note_spare(&self, per_second: f64) {
        self.lock().queue.set_spare(per_second);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain numbers behind, still usable.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Depth, estimated wait and rate as of `now`.
    pub fn stats_at(&self, now: SystemTime) -> Stats {
        let mut state = self.lock();
        state.queue.advance(unix_ms(now));
        Stats {
            depth: state.queue.depth(),
            estimated_wait: state.queue.newcomer_wait(),
            rate: state.queue.rate(),
        }
    }

    /// Tickets issued here and not yet admitted (the depth gauge).
    pub fn depth(&self) -> u64 {
        self.stats_at(SystemTime::now()).depth
    }

    /// How long someone arriving now would wait (the wait gauge); [`MAX_ESTIMATED_WAIT`]
    /// when nobody is being let in.
    pub fn estimated_wait(&self) -> Duration {
        self.stats_at(SystemTime::now())
            .estimated_wait
            .unwrap_or(MAX_ESTIMATED_WAIT)
    }

    /// Decides one `register` request. `cookie` is its `Cookie` header (several joined with
    /// `"; "`), `json` whether to answer JSON (see [`wants_json`]).
    pub fn check(&self, cookie: Option<&[u8]>, json: bool, now: SystemTime) -> Decision {
        let now_ms = unix_ms(now);
        // Verified before taking the lock: the HMAC is the costly part.
        let presented = self.best_ticket(cookie, now_ms);
        let mut state = self.lock();
        let settings = state.settings;
        if !settings.enabled {
            return Decision::Pass {
                reason: PassReason::NotNeeded,
                set_cookie: None,
            };
        }
        let (ticket, place) = match presented {
            Some(Ticket {
                kind: Kind::Admitted { .. },
                ..
            }) => {
                return Decision::Pass {
                    reason: PassReason::AlreadyAdmitted,
                    set_cookie: None,
                };
            }
            Some(t) => {
                let own = (t.epoch == self.epoch)
                    .then(|| state.queue.place_own(t.seq, now_ms))
                    .flatten();
                let place = own.unwrap_or_else(|| state.queue.place_foreign(t.issued_ms, now_ms));
                (t, place)
            }
            None => match state.queue.arrive(now_ms) {
                None => {
                    return Decision::Pass {
                        reason: PassReason::NotNeeded,
                        set_cookie: Some(self.admitted_cookie(0, now_ms, now_ms, settings)),
                    };
                }
                Some((seq, place)) => (
                    Ticket {
                        kind: Kind::Waiting,
                        epoch: self.epoch,
                        seq,
                        issued_ms: now_ms,
                    },
                    place,
                ),
            },
        };
        drop(state);
        match place {
            Place::Admitted => Decision::Pass {
                reason: PassReason::Admitted,
                set_cookie: Some(self.admitted_cookie(
                    ticket.seq,
                    ticket.issued_ms,
                    now_ms,
                    settings,
                )),
            },
            Place::Waiting { ahead, wait } => {
                let view = View {
                    ahead,
                    wait,
                    retry_after: page::retry_after(
                        wait,
                        settings.refresh,
                        rand::random(),
                        rand::random(),
                    ),
                };
                let (status, content_type, body) = if json {
                    (503, "application/json", page::json(&view))
                } else {
                    (200, "text/html; charset=utf-8", page::html(&view))
                };
                Decision::Wait(Wait {
                    status,
                    content_type,
                    body: Bytes::from(body),
                    retry_after: view.retry_after,
                    set_cookie: cookie_header(&self.signer.encode(&ticket), TICKET_MAX_AGE),
                    ahead,
                    estimated_wait: wait,
                })
            }
        }
    }

    /// The best valid ticket among the request's cookies: an admitted one if any, else the
    /// oldest waiting one.
    fn best_ticket(&self, cookie: Option<&[u8]>, now_ms: u64) -> Option<Ticket> {
        let max_age = millis(TICKET_MAX_AGE);
        let skew = millis(MAX_CLOCK_SKEW);
        ticket::cookie_values(cookie?)
            .filter_map(|v| self.signer.decode(v))
            .filter(|t| t.issued_ms <= now_ms.saturating_add(skew))
            .filter(|t| match t.kind {
                Kind::Admitted { until_ms } => until_ms > now_ms,
                Kind::Waiting => now_ms.saturating_sub(t.issued_ms) <= max_age,
            })
            .min_by_key(|t| (matches!(t.kind, Kind::Waiting), t.issued_ms))
    }

    fn admitted_cookie(&self, seq: u64, issued_ms: u64, now_ms: u64, settings: Settings) -> String {
        let ticket = Ticket {
            kind: Kind::Admitted {
                until_ms: now_ms.saturating_add(millis(settings.admitted_for)),
            },
            epoch: self.epoch,
            seq,
            issued_ms,
        };
        cookie_header(&self.signer.encode(&ticket), settings.admitted_for)
    }
}

fn cookie_header(value: &str, max_age: Duration) -> String {
    format!(
        "{COOKIE_NAME}={value}; Path=/; Max-Age={}; HttpOnly; SameSite=Lax",
        max_age.as_secs()
    )
}

#[cfg(test)]
mod tests;
