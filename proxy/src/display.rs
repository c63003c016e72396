//! The `display` class, whole and Pingora-free: a verified subject in, a code page out.
//!
//! 1. A **fresh** cached code is served at once.
//! 2. A **stale** but still valid cached code is served at once, and one background fetch
//!    refreshes it (stale-while-revalidate) at the lowest display priority: the origin's time
//!    is never the citizen's.
//! 3. Otherwise, if admission grants a call within half the budget (at the priority of a
//!    citizen with no valid code) and the breaker admits it, the origin is asked (one request
//!    per subject however many ask, see [`flight`]) for at most the display deadline less
//!    [`FAILOVER_RESERVE`].
//! 4. If the origin fails, times out, admission refuses or the breaker is open, **failover**:
//!    the newer of the cached code (while still valid) and a fallback code the in-process
//!    issuer signs from the snapshot, told the cached colour so it never answers greener than
//!    that. 200 either way.
//! 5. With neither a valid cached code nor an issuer: 503, `Retry-After`, and a bilingual
//!    "please ask staff to check manually".
//!
//! The change feed keeps the cache honest ([`Display::spawn_feed_follower`]).

pub mod body;
pub mod flight;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use shouhu_code::time::UnixTime;
use shouhu_code::{CodeView, Colour, SubjectId};
use shouhu_fallback::Issuer;
use shouhu_fallback::policy::Basis;
use shouhu_fallback::snapshot::{FeedEvent, FeedFollower};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use self::body::{CONTENT_TYPE_HTML, CONTENT_TYPE_JSON, UNAVAILABLE};
use self::flight::{FetchPlan, Flights, Landed, NoAnswer};
use crate::admission::{Admission, Priority};
use crate::breaker::Breaker;
use crate::cache::{CacheLimits, CodeCache, Entry, Freshness};
use crate::log_throttle::LogThrottle;
use crate::origin_client::OriginClient;
use crate::outcome::{Outcome, ServedFrom};

/// Of the display deadline, this much (at most half) is kept for failover after an origin
/// that did not answer: a snapshot read (Redis' own timeout is 50 ms) and a signature.
pub const FAILOVER_RESERVE: Duration = Duration::from_millis(150);
/// `Retry-After` of a 503 when the breaker gives no better estimate.
pub const DEFAULT_RETRY_AFTER_SECS: u32 = 5;
/// Default poll interval of the change feed.
pub const DEFAULT_FEED_POLL: Duration = Duration::from_millis(200);
/// Feed entries read per poll.
pub const FEED_BATCH: usize = 1000;

/// The answer format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `GET /api/code`: the [`CodeView`] JSON.
    Json,
    /// `GET /code`: the HTML page.
    Html,
}

/// One `display` request, its subject already verified.
#[derive(Clone, Copy, Debug)]
pub struct DisplayRequest<'a> {
    /// The verified subject.
    pub subject: SubjectId,
    /// The citizen's session token, passed to the origin as `Authorization: Bearer`.
    pub token: &'a str,
    /// JSON or HTML.
    pub format: Format,
    /// The route's deadline; `None` is the display default (`deadlines.display`).
    pub deadline: Option<Duration>,
    /// Whether the origin may be asked (false past the subject's rate limit: a refresh
    /// storm gets the cached code, or failover, and never reaches the origin).
    pub may_fetch: bool,
}

/// The answer; the caller writes the headers (`X-Shouhu-Source: source.as_str()`).
#[derive(Clone, Debug)]
pub struct DisplayResponse {
    /// HTTP status.
    pub status: u16,
    /// `Content-Type`.
    pub content_type: &'static str,
    /// The body.
    pub body: Bytes,
    /// `X-Shouhu-Source`.
    pub source: ServedFrom,
    /// `Retry-After` seconds, for 503s.
    pub retry_after: Option<u32>,
    /// `Cache-Control`.
    pub cache_control: &'static str,
    /// How it ended (metric label via [`Outcome::as_str`]).
    pub outcome: Outcome,
    /// The colour shown, if a code is shown (metric label).
    pub colour: Option<Colour>,
}

/// What [`Display`] is built from.
#[derive(Debug)]
pub struct DisplayParts {
    /// Cache limits (`[cache]`).
    pub cache: CacheLimits,
    /// The breaker, shared with pass-through.
    pub breaker: Arc<Breaker>,
    /// Admission toward the origin, shared with pass-through.
    pub admission: Arc<Admission>,
    /// The origin client.
    pub origin: OriginClient,
    /// The fallback issuer, if `[fallback] redis` is set and keys loaded.
    pub issuer: Option<Issuer>,
    /// `deadlines.display` (or the display route's own).
    pub deadline: Duration,
    /// Limit on a background refresh: `origin.connect_timeout + origin.read_timeout`.
    pub refresh_timeout: Duration,
}

impl DisplayParts {
    /// From the proxy config, with the breaker shared with pass-through and the issuer built
    /// at start-up (`None` without `[fallback] redis`).
    ///
    /// # Errors
    /// The origin client cannot be built.
    pub fn from_config(
        config: &shouhu_config::ProxyConfig,
        breaker: Arc<Breaker>,
        admission: Arc<Admission>,
        issuer: Option<Issuer>,
    ) -> Result<Self, crate::origin_client::OriginClientError> {
        let (_, deadline) = config.classify("GET", "/api/code");
        Ok(Self {
            cache: CacheLimits::from_config(&config.cache),
            breaker,
            admission,
            origin: OriginClient::from_config(&config.origin)?,
            issuer,
            deadline: deadline.into(),
            refresh_timeout: std::time::Duration::from(config.origin.connect_timeout)
                + std::time::Duration::from(config.origin.read_timeout),
        })
    }
}

/// The display path; share it in an `Arc`.
#[derive(Debug)]
pub struct Display {
    cache: Arc<CodeCache>,
    breaker: Arc<Breaker>,
    flights: Arc<Flights>,
    issuer: Option<Issuer>,
    deadline: Duration,
    refresh_timeout: Duration,
}

impl Display {
    /// Builds it; spawns nothing (see [`Display::spawn_feed_follower`]).
    #[must_use]
    pub fn new(parts: DisplayParts) -> Self {
        let cache = Arc::new(CodeCache::new(parts.cache));
        Self {
            flights: Arc::new(Flights::new(
                parts.origin,
                Arc::clone(&parts.breaker),
                parts.admission,
                Arc::clone(&cache),
            )),
            cache,
            breaker: parts.breaker,
            issuer: parts.issuer,
            deadline: parts.deadline,
            refresh_timeout: parts.refresh_timeout,
        }
    }

    /// The cache (for `/status` and metrics).
    #[must_use]
    pub fn cache(&self) -> &Arc<CodeCache> {
        &self.cache
    }

    /// The breaker.
    #[must_use]
    pub fn breaker(&self) -> &Arc<Breaker> {
        &self.breaker
    }

    /// Origin fetches in flight now (one per subject at most).
    #[must_use]
    pub fn fetches_in_flight(&self) -> usize {
        self.flights.len()
    }

    /// The fallback issuer, if any.
    #[must_use]
    pub fn issuer(&self) -> Option<&Issuer> {
        self.issuer.as_ref()
    }

    /// Answers one request within the display deadline.
    pub async fn serve(&self, req: DisplayRequest<'_>) -> DisplayResponse {
        let started = Instant::now();
        let deadline = req.deadline.unwrap_or(self.deadline);
        let now = shouhu_code::time::now();
        let cached = self.cache.get(&req.subject);
        let freshness = cached
            .as_ref()
            .map(|e| e.freshness(self.cache.limits(), started, now));
        match freshness {
            Some(Freshness::Fresh | Freshness::Stale) => self.cache.stats().hit(),
            Some(Freshness::Unusable) | None => self.cache.stats().miss(),
        }
        if let (Some(entry), Some(freshness)) = (&cached, freshness) {
            match freshness {
                Freshness::Fresh => {
                    return cached_code(entry, req.format, now, Outcome::CacheFresh);
                }
                Freshness::Stale => {
                    if req.may_fetch && entry.claim_refresh(started, self.refresh_timeout) {
                        let plan = FetchPlan {
                            priority: Priority::DisplayRefresh,
                            start_by: started + self.refresh_timeout / 2,
                            timeout: self.refresh_timeout,
                        };
                        self.flights.refresh(req.subject, req.token, plan);
                    }
                    return cached_code(entry, req.format, now, Outcome::CacheStale);
                }
                Freshness::Unusable => {}
            }
        }
        if !req.may_fetch {
            return self
                .failover(req, cached.as_deref(), started + deadline)
                .await;
        }
        let reserve = FAILOVER_RESERVE.min(deadline / 2);
        let origin_deadline = started + deadline - reserve;
        // A call that has not started within half the budget would not end within it.
        let plan = FetchPlan {
            priority: Priority::DisplayNoCode,
            start_by: started + (deadline - reserve) / 2,
            timeout: deadline - reserve,
        };
        let fetched = self
            .flights
            .fetch(req.subject, req.token, plan, origin_deadline)
            .await;
        match fetched {
            Ok(Landed::Code(entry)) => cached_code(
                &entry,
                req.format,
                shouhu_code::time::now(),
                Outcome::Origin,
            ),
            Ok(Landed::Denied(status, body, json)) => DisplayResponse {
                status,
                content_type: if json {
                    CONTENT_TYPE_JSON
                } else {
                    "text/plain; charset=utf-8"
                },
                body,
                source: Outcome::OriginDenied.served_from(),
                retry_after: None,
                cache_control: Outcome::OriginDenied.cache_control(),
                outcome: Outcome::OriginDenied,
                colour: None,
            },
            Ok(Landed::Failed(_) | Landed::Shed)
            | Err(NoAnswer::Rejected | NoAnswer::Failed(_) | NoAnswer::Deadline) => {
                // Re-read: a fetch that landed after our deadline may have filled it.
                let cached = self.cache.get(&req.subject).or(cached);
                self.failover(req, cached.as_deref(), started + deadline)
                    .await
            }
        }
    }

    async fn failover(
        &self,
        req: DisplayRequest<'_>,
        cached: Option<&Entry>,
        deadline: Instant,
    ) -> DisplayResponse {
        let now = shouhu_code::time::now();
        let valid = cached.filter(|e| e.valid_at(now));
        if let Some(issuer) = &self.issuer {
            let known = cached.map(Entry::known);
            let until = deadline.max(Instant::now() + FAILOVER_RESERVE / 2);
            let issued =
                tokio::time::timeout_at(until, issuer.issue(&req.subject, known, now)).await;
            match issued {
                Ok(Ok(issued)) => {
                    // The cached origin code stands unless the snapshot knows something newer.
                    if let Some(entry) = valid
                        && issued.basis != Basis::Snapshot
                    {
                        return cached_code(entry, req.format, now, Outcome::CacheFailover);
                    }
                    let outcome = if issued.claims.colour == Colour::Unknown {
                        Outcome::FallbackUnknown
                    } else {
                        Outcome::Fallback
                    };
                    return fresh_code(&issued.view(), req.format, now, outcome);
                }
                Ok(Err(e)) => {
                    // Per request while Redis is down: counted as `unavailable`, logged once
                    // in a while.
                    static FAILED: LogThrottle = LogThrottle::every_default();
                    if let Some(suppressed) = FAILED.admit() {
                        tracing::warn!(error = %e, suppressed, "fallback issuer failed");
                    }
                }
                Err(_) => tracing::debug!("fallback issuer missed the display deadline"),
            }
        }
        match valid {
            Some(entry) => cached_code(entry, req.format, now, Outcome::CacheFailover),
            None => self.unavailable(req.format),
        }
    }

    fn unavailable(&self, format: Format) -> DisplayResponse {
        let (content_type, body) = match format {
            Format::Json => (CONTENT_TYPE_JSON, body::refusal_json(&UNAVAILABLE)),
            Format::Html => (CONTENT_TYPE_HTML, body::refusal_html(&UNAVAILABLE)),
        };
        let retry = u32::try_from(self.breaker.config().open_for.as_secs())
            .unwrap_or(DEFAULT_RETRY_AFTER_SECS)
            .max(1);
        DisplayResponse {
            status: 503,
            content_type,
            body,
            source: Outcome::Unavailable.served_from(),
            retry_after: Some(retry),
            cache_control: Outcome::Unavailable.cache_control(),
            outcome: Outcome::Unavailable,
            colour: None,
        }
    }

    /// Follows the snapshot's change feed until `shutdown` completes: every `poll_every`
    /// (at once again while a full batch came back), dropping cached codes that changed.
    pub fn spawn_feed_follower(
        &self,
        mut follower: FeedFollower,
        poll_every: Duration,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> JoinHandle<()> {
        let cache = Arc::clone(&self.cache);
        tokio::spawn(async move {
            tokio::pin!(shutdown);
            let mut failing = false;
            loop {
                let mut again = false;
                match follower.poll().await {
                    Ok(event) => {
                        if failing {
                            tracing::info!("change feed readable again");
                            failing = false;
                        }
                        if let FeedEvent::Changes(changes) = &event {
                            again = changes.len() >= FEED_BATCH;
                        }
                        cache.apply(&event);
                    }
                    Err(e) => {
                        if !failing {
                            tracing::warn!(error = %e, "change feed unreadable");
                            failing = true;
                        }
                    }
                }
                if again {
                    continue;
                }
                tokio::select! {
                    () = &mut shutdown => break,
                    () = tokio::time::sleep(poll_every) => {}
                }
            }
        })
    }
}

fn cached_code(entry: &Entry, format: Format, now: UnixTime, outcome: Outcome) -> DisplayResponse {
    let (content_type, body) = match format {
        Format::Json => (CONTENT_TYPE_JSON, entry.json()),
        Format::Html => (CONTENT_TYPE_HTML, entry.html(now)),
    };
    code_response(content_type, body, entry.view().colour, outcome)
}

fn fresh_code(view: &CodeView, format: Format, now: UnixTime, outcome: Outcome) -> DisplayResponse {
    let (content_type, body) = match format {
        Format::Json => (CONTENT_TYPE_JSON, body::view_json(view)),
        Format::Html => (CONTENT_TYPE_HTML, body::view_html(view, now)),
    };
    code_response(content_type, body, view.colour, outcome)
}

fn code_response(
    content_type: &'static str,
    body: Bytes,
    colour: Colour,
    outcome: Outcome,
) -> DisplayResponse {
    DisplayResponse {
        status: 200,
        content_type,
        body,
        source: outcome.served_from(),
        retry_after: None,
        cache_control: outcome.cache_control(),
        outcome,
        colour: Some(colour),
    }
}
