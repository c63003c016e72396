//! The Pingora `ProxyHttp` implementation: what happens to each request.
//!
//! 1. `request_filter` takes the request's `X-Request-Id` (or makes one) and opens the
//!    request's span, whose `request_id` is on the request's log lines; the id goes to the
//!    origin and back on every answer. It classifies the request by route. The merged trust
//!    list is answered locally. Unless the path is anonymous, the session token must verify,
//!    or the answer is 401 before any cache, issuer or origin sees the request.
//! 2. `display` is answered by the [`DisplayPath`] (cache, origin, fallback, "unknown") and
//!    written here; `scan` is verified at the edge with the trust list when the breaker is not
//!    closed (or always, if configured).
//! 3. Everything else passes through to the origin under the breaker and admission (the
//!    adaptive limit and its queue, at the class's priority): when either refuses, `scan` is
//!    verified at the edge, `declare` is journalled (202 + receipt) and the rest get 503 +
//!    `Retry-After` (admission's estimated wait, with jitter) at once. `upstream_peer` returns a pre-resolved peer with a timeout on
//!    every phase, capped by what is left of the request's deadline (and the probe timeout
//!    when the breaker is half-open); an answer still streaming past the deadline is cut.
//! 4. `fail_to_connect` / `error_while_proxy` note why the origin failed; `fail_to_proxy`
//!    writes our own 503 (or, when the connection never opened, verifies a scan at the edge
//!    or journals a declaration);
//!    `logging` records the origin's outcome in the breaker and the request in the metrics.
//!
//! What a config reload may change (routes, deadlines, identity, timeouts) is one [`Live`]
//! value swapped whole; a request reads it once.
//!
//! Errors become `pingora::Error` only here, at the hook boundary.

mod declare;
mod display_path;
mod ending;
mod request_id;
mod respond;
mod scan;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use async_trait::async_trait;
use axum::http::HeaderValue;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::HttpPeer;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::{Error, ErrorSource, ErrorType};
use shouhu_config::proxy::RouteClass;
use tracing::Instrument as _;

use self::declare::Journalled;
pub use self::declare::SOURCE_JOURNAL;
pub use self::display_path::DisplayPath;
pub use self::ending::Ending;
pub use self::request_id::REQUEST_ID_HEADER;
pub use self::respond::SOURCE_HEADER;
use self::respond::{Local, Refusal};
pub use self::scan::EdgeTrust;
use crate::admission::{Admission, CallOutcome, Priority, Slot};
use crate::breaker::{Admit, Breaker, BreakerState, FailureKind, OriginOutcome};
use crate::classify::Classifier;
use crate::display::{DisplayRequest, Format};
use crate::identity::{AuthError, Identity, token_str};
use crate::metrics::Metrics;
use crate::outcome::Outcome;
use crate::ratelimit::{Limited, RateLimits};
use crate::waiting_room::{self, WaitingRoom};
use shouhu_fallback::journal::Journal;

/// Where the proxy publishes the trust list it verifies with (the origin's keys and its own
/// fallback keys), answered locally.
pub const TRUST_LIST_PATH: &str = "/.well-known/shouhu/trust-list.json";
/// Idle time after which a client's kept-alive connection is closed, seconds.
pub const DOWNSTREAM_KEEPALIVE_SECS: u64 = 60;
/// `X-Shouhu-Source` of answers that are not codes (refusals, edge scans, pass-through).
const SOURCE_PROXY: &str = "proxy";
const SOURCE_EDGE: &str = "edge";
const SOURCE_ORIGIN: &str = "origin";

/// Timeouts toward the origin.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OriginTimeouts {
    /// To open a connection.
    pub connect: Duration,
    /// For each read and write.
    pub read: Duration,
    /// A pooled idle connection is closed after this; zero disables pooling.
    pub idle: Duration,
}

/// What a config reload replaces: read once per request.
#[derive(Debug)]
pub struct Live {
    /// The route table.
    pub classifier: Classifier,
    /// Session verification.
    pub identity: Arc<Identity>,
    /// `identity.cookie_name`.
    pub cookie_name: String,
    /// `scan.verify_at_edge = "always"`.
    pub verify_always: bool,
    /// Timeouts toward the origin.
    pub timeouts: OriginTimeouts,
    /// `journal.max_body`, bytes.
    pub journal_max_body: usize,
}

/// The journal a `declare` goes to when the origin cannot take it.
#[derive(Clone, Debug)]
pub struct DeclareJournal {
    /// The write journal.
    pub journal: Journal,
}

/// Everything the service is built from.
pub struct GatewayParts {
    /// What reloads replace; shared with the reloader.
    pub live: Arc<ArcSwap<Live>>,
    /// The breaker on the origin, shared with the display path.
    pub breaker: Arc<Breaker>,
    /// Admission toward the origin, shared with the display path.
    pub admission: Arc<Admission>,
    /// The display path; `None` passes `display` through like `other`.
    pub display: Option<Arc<dyn DisplayPath>>,
    /// The trust list of edge verification.
    pub trust: Arc<EdgeTrust>,
    /// The write journal; `None` without `fallback.redis` or with `journal.enabled = false`.
    pub journal: Option<DeclareJournal>,
    /// The origin's resolved address.
    pub origin: SocketAddr,
    /// The origin's host, sent as SNI-equivalent peer name (plain HTTP: informational).
    pub origin_host: String,
    /// The metrics.
    pub metrics: Arc<Metrics>,
    /// The waiting room of `register`; `None` with `waiting_room.enabled = false`.
    pub waiting_room: Option<Arc<WaitingRoom>>,
    /// Rate limits per client address, per subject and global.
    pub rate_limits: Arc<RateLimits>,
}

/// The gateway: a `ProxyHttp`.
pub struct Gateway {
    parts: GatewayParts,
    /// Counts refusals, for the jitter of their `Retry-After`.
    salt: AtomicU64,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("origin", &self.parts.origin)
            .finish_non_exhaustive()
    }
}

/// Whether this request may call the origin, and how.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Upstream {
    /// Not (yet) admitted.
    No,
    /// Admitted with the ordinary timeouts.
    Normal,
    /// A half-open probe with its short timeout.
    Probe(Duration),
}

/// Per-request state.
#[derive(Debug)]
pub struct Ctx {
    started: Instant,
    live: Option<Arc<Live>>,
    class: RouteClass,
    json: bool,
    deadline: Duration,
    upstream: Upstream,
    /// The call admission granted, held until the request ends.
    call: Option<Slot>,
    /// Time from the call's grant to the origin's response header.
    origin_latency: Option<Duration>,
    went_upstream: bool,
    failure: Option<FailureKind>,
    connect_failed: bool,
    status: u16,
    /// The status of an answer the proxy wrote itself.
    answered: u16,
    ending: Option<Ending>,
    /// The verified session of a request that went upstream (a `declare` whose connection
    /// fails is journalled with it).
    verified: Option<(shouhu_code::SubjectId, String)>,
    /// `Set-Cookie` of the waiting room for a request it let through.
    room_cookie: Option<String>,
    /// `X-Request-Id`: the client's or made here; to the origin and back to the client.
    request_id: HeaderValue,
    /// The request's span (`request_id`), entered where the request's work may log.
    span: tracing::Span,
}

impl Gateway {
    /// The gateway of `parts`.
    #[must_use]
    pub fn new(parts: GatewayParts) -> Self {
        Self {
            parts,
            salt: AtomicU64::new(0),
        }
    }

    /// 429 + `Retry-After`: past a rate limit.
    async fn rate_limited(
        &self,
        session: &mut Session,
        ctx: &mut Ctx,
        limited: Limited,
    ) -> pingora::Result<bool> {
        let salt = self.salt.fetch_add(1, Ordering::Relaxed);
        let secs = crate::admission::jittered_secs(limited.retry_after, salt);
        let secs = u32::try_from(secs).unwrap_or(u32::MAX);
        let answer = respond::too_many(secs).answer(ctx.json, SOURCE_PROXY);
        self.answer(session, ctx, answer, Ending::RateLimited).await
    }

    /// The waiting room's answer: a page or JSON with the person's place and wait.
    async fn wait(
        &self,
        session: &mut Session,
        ctx: &mut Ctx,
        wait: waiting_room::Wait,
    ) -> pingora::Result<bool> {
        if !session.is_body_empty() {
            session.set_keepalive(None);
        }
        let mut header = ResponseHeader::build(wait.status, Some(7))?;
        for (name, value) in wait.headers() {
            header.append_header(name, value)?;
        }
        header.insert_header("content-length", wait.body.len().to_string())?;
        header.insert_header(SOURCE_HEADER, SOURCE_PROXY)?;
        header.insert_header(REQUEST_ID_HEADER, &ctx.request_id)?;
        ctx.answered = wait.status;
        ctx.ending = Some(Ending::WaitingRoom);
        let head_only = session.req_header().method == pingora::http::Method::HEAD;
        session
            .write_response_header(Box::new(header), head_only)
            .await?;
        if !head_only {
            session.write_response_body(Some(wait.body), true).await?;
        }
        Ok(true)
    }

    /// A request that may not call the origin now (breaker open, admission refused): a scan
    /// is verified at the edge, a declaration journalled, anything else refused fast.
    async fn cannot_call(
        &self,
        session: &mut Session,
        ctx: &mut Ctx,
        verified: Option<(shouhu_code::SubjectId, String)>,
        retry_after: u32,
    ) -> pingora::Result<bool> {
        match ctx.class {
            RouteClass::Scan => self.scan_at_edge(session, ctx).await,
            RouteClass::Declare => self.declare_to_journal(session, ctx, verified).await,
            _ => {
                let refusal = respond::unavailable(retry_after);
                self.refuse(session, ctx, refusal, Ending::Shed).await
            }
        }
    }

    /// `Retry-After` of refusals: when the breaker next lets a probe through.
    fn retry_after(&self) -> u32 {
        let open_for = self.parts.breaker.config().open_for.as_secs();
        u32::try_from(open_for).unwrap_or(u32::MAX).max(1)
    }

    /// A `declare` the origin cannot take now: journalled, or refused fast without a journal.
    async fn declare_to_journal(
        &self,
        session: &mut Session,
        ctx: &mut Ctx,
        verified: Option<(shouhu_code::SubjectId, String)>,
    ) -> pingora::Result<bool> {
        let (Some(journal), Some((subject, token)), Some(live)) =
            (&self.parts.journal, verified, ctx.live.clone())
        else {
            return self
                .refuse(
                    session,
                    ctx,
                    respond::unavailable(self.retry_after()),
                    Ending::Shed,
                )
                .await;
        };
        let (answer, how) = declare::journal(
            session,
            &journal.journal,
            live.journal_max_body,
            subject,
            &token,
            self.retry_after(),
        )
        .instrument(ctx.span.clone())
        .await?;
        let ending = match how {
            Journalled::Accepted => Ending::Journalled,
            Journalled::Refused => Ending::BadRequest,
            Journalled::Unavailable => Ending::Shed,
        };
        self.answer(session, ctx, answer, ending).await
    }

    /// Writes a proxy-made answer and notes how the request ended.
    async fn answer(
        &self,
        session: &mut Session,
        ctx: &mut Ctx,
        answer: Local,
        ending: Ending,
    ) -> pingora::Result<bool> {
        // An early answer leaves an unread body on the connection: close it after.
        if !session.is_body_empty() {
            session.set_keepalive(None);
        }
        ctx.ending = Some(ending);
        ctx.answered = answer.status;
        respond::write(session, answer, &ctx.request_id).await?;
        Ok(true)
    }

    async fn refuse(
        &self,
        session: &mut Session,
        ctx: &mut Ctx,
        refusal: Refusal,
        ending: Ending,
    ) -> pingora::Result<bool> {
        let answer = refusal.answer(ctx.json, SOURCE_PROXY);
        self.answer(session, ctx, answer, ending).await
    }

    /// Verifies a scan at the edge and answers it.
    async fn scan_at_edge(&self, session: &mut Session, ctx: &mut Ctx) -> pingora::Result<bool> {
        let body = scan::read_body(session, scan::MAX_SCAN_BODY).await?;
        match body.and_then(|b| self.parts.trust.answer(&b)) {
            Some(json) => {
                let answer = Local {
                    status: 200,
                    content_type: respond::JSON,
                    body: json,
                    source: SOURCE_EDGE,
                    cache_control: respond::NO_STORE,
                    retry_after: None,
                };
                self.answer(session, ctx, answer, Ending::EdgeVerified)
                    .await
            }
            None => {
                self.refuse(session, ctx, respond::bad_request(), Ending::BadRequest)
                    .await
            }
        }
    }

    /// The `display` answer for a verified subject.
    async fn display(
        &self,
        session: &mut Session,
        ctx: &mut Ctx,
        display: &dyn DisplayPath,
        subject: shouhu_code::SubjectId,
        token: &str,
        may_fetch: bool,
    ) -> pingora::Result<bool> {
        let format = if ctx.json { Format::Json } else { Format::Html };
        let answer = display
            .serve(DisplayRequest {
                subject,
                token,
                format,
                deadline: Some(ctx.deadline.saturating_sub(ctx.started.elapsed())),
                may_fetch,
            })
            .instrument(ctx.span.clone())
            .await;
        if answer.outcome == Outcome::Fallback
            && let Some(colour) = answer.colour
        {
            self.parts.metrics.fallback_code(colour);
        }
        let local = Local {
            status: answer.status,
            content_type: answer.content_type,
            body: answer.body,
            source: answer.source.as_str(),
            cache_control: answer.cache_control,
            retry_after: answer.retry_after,
        };
        self.answer(session, ctx, local, Ending::Display(answer.outcome))
            .await
    }
}

/// The failure kind of a Pingora error toward the origin.
fn failure_kind(e: &Error) -> FailureKind {
    match e.etype() {
        ErrorType::ConnectTimedout | ErrorType::ReadTimedout | ErrorType::WriteTimedout => {
            FailureKind::Timeout
        }
        ErrorType::ConnectRefused | ErrorType::ConnectNoRoute | ErrorType::ConnectionClosed => {
            FailureKind::Refused
        }
        _ => FailureKind::Io,
    }
}

fn is_connect_error(e: &Error) -> bool {
    matches!(
        e.etype(),
        ErrorType::ConnectTimedout
            | ErrorType::ConnectRefused
            | ErrorType::ConnectNoRoute
            | ErrorType::ConnectError
    )
}

#[async_trait]
impl ProxyHttp for Gateway {
    type CTX = Ctx;

    fn new_ctx(&self) -> Ctx {
        Ctx {
            started: Instant::now(),
            live: None,
            class: RouteClass::Other,
            json: true,
            deadline: Duration::ZERO,
            upstream: Upstream::No,
            call: None,
            origin_latency: None,
            went_upstream: false,
            failure: None,
            connect_failed: false,
            status: 0,
            answered: 0,
            ending: None,
            verified: None,
            room_cookie: None,
            request_id: HeaderValue::from_static(""),
            span: tracing::Span::none(),
        }
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut Ctx) -> pingora::Result<bool> {
        session.set_keepalive(Some(DOWNSTREAM_KEEPALIVE_SECS));
        let req = session.req_header();
        ctx.request_id = request_id::of(req.headers.get(REQUEST_ID_HEADER));
        // At error level so that the id is on the request's lines whatever level they are
        // written at; disabled (and nearly free) only when nothing of the proxy is logged.
        ctx.span = tracing::error_span!(
            "request",
            request_id = ctx.request_id.to_str().unwrap_or_default()
        );
        let live = self.parts.live.load_full();
        let path = req.uri.path();
        let classified = live.classifier.classify(req.method.as_str(), path);
        ctx.class = classified.class;
        ctx.json = classified.json;
        ctx.deadline = classified.deadline;

        let limits = &self.parts.rate_limits;
        let peer = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(std::net::SocketAddr::ip);
        if let Some(peer) = peer {
            let forwarded = req.headers.get_all("x-forwarded-for");
            let client = limits.client_ip(peer, forwarded.iter().map(|v| v.as_bytes()));
            if let Err(limited) = limits.check_ip(client) {
                return self.rate_limited(session, ctx, limited).await;
            }
        }
        if let Err(limited) = limits.check_global() {
            return self.rate_limited(session, ctx, limited).await;
        }
        let req = session.req_header();
        let path = req.uri.path();

        if classified.anonymous
            && path == TRUST_LIST_PATH
            && matches!(
                req.method,
                pingora::http::Method::GET | pingora::http::Method::HEAD
            )
        {
            let answer = Local {
                status: 200,
                content_type: respond::JSON,
                body: self.parts.trust.json(),
                source: SOURCE_PROXY,
                cache_control: "public, max-age=300",
                retry_after: None,
            };
            return self.answer(session, ctx, answer, Ending::Local).await;
        }

        let mut verified = None;
        if !classified.anonymous {
            let token = token_str(
                req.headers.get("authorization").map(|v| v.as_bytes()),
                req.headers.get("cookie").map(|v| v.as_bytes()),
                &live.cookie_name,
            );
            let result = match token {
                None => Err(AuthError::Missing),
                Some(t) => live.identity.verify(t).map(|s| (s, t.to_owned())),
            };
            match result {
                Ok(pair) => verified = Some(pair),
                Err(e) => {
                    self.parts.metrics.auth_refused(e.reason());
                    return self
                        .refuse(session, ctx, respond::unauthorized(e), Ending::Unauthorized)
                        .await;
                }
            }
        }
        let verify_always = live.verify_always;
        ctx.live = Some(live);
        // Past the subject's limit a display is served from cache or failover; anything else
        // is refused.
        let subject_ok = match &verified {
            Some((subject, _)) => match self.parts.rate_limits.check_subject(subject) {
                Ok(()) => true,
                Err(_) if ctx.class == RouteClass::Display => false,
                Err(limited) => return self.rate_limited(session, ctx, limited).await,
            },
            None => true,
        };

        if ctx.class == RouteClass::Register
            && let Some(room) = &self.parts.waiting_room
        {
            let req = session.req_header();
            let json = waiting_room::wants_json(
                req.uri.path(),
                req.headers.get("accept").map(|v| v.as_bytes()),
            );
            let cookie = req.headers.get("cookie").map(|v| v.as_bytes());
            match room.check(cookie, json, std::time::SystemTime::now()) {
                waiting_room::Decision::Pass { set_cookie, .. } => ctx.room_cookie = set_cookie,
                waiting_room::Decision::Wait(wait) => return self.wait(session, ctx, wait).await,
            }
        }

        match ctx.class {
            RouteClass::Display => {
                if let (Some(display), Some((subject, token))) = (&self.parts.display, &verified) {
                    let display = Arc::clone(display);
                    return self
                        .display(session, ctx, display.as_ref(), *subject, token, subject_ok)
                        .await;
                }
            }
            RouteClass::Scan
                if verify_always || self.parts.breaker.state() != BreakerState::Closed =>
            {
                return self.scan_at_edge(session, ctx).await;
            }
            _ => {}
        }

        // Nobody queues for an origin the breaker has given up on.
        if self.parts.breaker.state() == BreakerState::Open {
            return self
                .cannot_call(session, ctx, verified, self.retry_after())
                .await;
        }
        let priority = Priority::for_request(ctx.class, false);
        // A call that has not started within half the budget would not end within it.
        let start_by = tokio::time::Instant::from_std(ctx.started) + ctx.deadline / 2;
        let call = match self.parts.admission.acquire(priority, start_by).await {
            Ok(call) => call,
            Err(refused) => {
                let salt = self.salt.fetch_add(1, Ordering::Relaxed);
                let retry_after = u32::try_from(refused.retry_after_secs(salt)).unwrap_or(1);
                return self.cannot_call(session, ctx, verified, retry_after).await;
            }
        };
        match self.parts.breaker.admit() {
            Admit::Reject => {
                drop(call);
                self.cannot_call(session, ctx, verified, self.retry_after())
                    .await
            }
            Admit::Normal => {
                ctx.upstream = Upstream::Normal;
                ctx.call = Some(call);
                ctx.verified = verified;
                Ok(false)
            }
            Admit::Probe { timeout } => {
                ctx.upstream = Upstream::Probe(timeout);
                ctx.call = Some(call);
                ctx.verified = verified;
                Ok(false)
            }
        }
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        ctx: &mut Ctx,
    ) -> pingora::Result<Box<HttpPeer>> {
        // What is left of the request's deadline caps every phase; a retry after it passed
        // does not start.
        let left = ctx.deadline.saturating_sub(ctx.started.elapsed());
        if left.is_zero() {
            return Err(Error::explain(
                ErrorType::ConnectTimedout,
                "the request's deadline passed before the origin was called",
            ));
        }
        let cap = match ctx.upstream {
            Upstream::Probe(timeout) => timeout.min(left),
            Upstream::Normal | Upstream::No => left,
        };
        let t = self.parts.live.load().timeouts;
        let mut peer = Box::new(HttpPeer::new(
            self.parts.origin,
            false,
            self.parts.origin_host.clone(),
        ));
        peer.options.connection_timeout = Some(t.connect.min(cap));
        peer.options.total_connection_timeout = Some(t.connect.min(cap));
        peer.options.read_timeout = Some(t.read.min(cap));
        peer.options.write_timeout = Some(t.read.min(cap));
        peer.options.idle_timeout = Some(t.idle);
        ctx.went_upstream = true;
        Ok(peer)
    }

    fn upstream_response_body_filter(
        &self,
        _session: &mut Session,
        _body: &mut Option<bytes::Bytes>,
        end_of_stream: bool,
        ctx: &mut Ctx,
    ) -> pingora::Result<Option<Duration>> {
        // The total deadline: an answer still arriving after it is cut off (each read is
        // already bounded by what was left when the call started).
        if !end_of_stream && ctx.started.elapsed() > ctx.deadline {
            ctx.failure = Some(FailureKind::Timeout);
            return Err(Error::explain(
                ErrorType::ReadTimedout,
                "the origin's answer ran past the request's deadline",
            ));
        }
        Ok(None)
    }

    async fn upstream_request_filter(
        &self,
        _session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut Ctx,
    ) -> pingora::Result<()> {
        upstream_request.insert_header(REQUEST_ID_HEADER, &ctx.request_id)?;
        Ok(())
    }

    async fn response_filter(
        &self,
        _session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> pingora::Result<()> {
        ctx.status = upstream_response.status.as_u16();
        ctx.origin_latency = ctx.call.as_ref().map(Slot::elapsed);
        upstream_response.insert_header(SOURCE_HEADER, SOURCE_ORIGIN)?;
        upstream_response.insert_header(REQUEST_ID_HEADER, &ctx.request_id)?;
        if let Some(cookie) = ctx.room_cookie.take() {
            upstream_response.append_header("set-cookie", cookie)?;
        }
        Ok(())
    }

    fn fail_to_connect(
        &self,
        _session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut Ctx,
        e: Box<Error>,
    ) -> Box<Error> {
        ctx.failure = Some(failure_kind(&e));
        ctx.connect_failed = true;
        e
    }

    fn error_while_proxy(
        &self,
        _peer: &HttpPeer,
        session: &mut Session,
        mut e: Box<Error>,
        ctx: &mut Ctx,
        client_reused: bool,
    ) -> Box<Error> {
        if e.esource() == &ErrorSource::Upstream {
            ctx.failure = Some(failure_kind(&e));
        }
        // Pingora's default: retry only idempotent requests on a reused connection.
        if !session.req_header().method.is_idempotent() || session.as_ref().retry_buffer_truncated()
        {
            e.set_retry(false);
        } else {
            e.retry.decide_reuse(client_reused);
        }
        e
    }

    async fn fail_to_proxy(&self, session: &mut Session, e: &Error, ctx: &mut Ctx) -> FailToProxy {
        let closed = FailToProxy {
            error_code: 0,
            can_reuse_downstream: false,
        };
        if let Some(written) = session.response_written() {
            // Headers are out: nothing can be rewritten, only the connection closed.
            return FailToProxy {
                error_code: written.status.as_u16(),
                can_reuse_downstream: false,
            };
        }
        if e.esource() == &ErrorSource::Downstream {
            ctx.ending = Some(Ending::Aborted);
            return closed;
        }
        // A scan or declaration whose connection never opened still has its body: verify it
        // at the edge, or journal it.
        if ctx.connect_failed && is_connect_error(e) && ctx.class == RouteClass::Declare {
            let verified = ctx.verified.take();
            return match self.declare_to_journal(session, ctx, verified).await {
                Ok(_) => FailToProxy {
                    error_code: ctx.answered,
                    can_reuse_downstream: false,
                },
                Err(_) => {
                    ctx.ending = Some(Ending::Aborted);
                    closed
                }
            };
        }
        if ctx.class == RouteClass::Scan && ctx.connect_failed && is_connect_error(e) {
            return match self.scan_at_edge(session, ctx).await {
                Ok(_) => FailToProxy {
                    error_code: 200,
                    can_reuse_downstream: false,
                },
                Err(_) => {
                    ctx.ending = Some(Ending::Aborted);
                    closed
                }
            };
        }
        session.set_keepalive(None);
        let answer = respond::unavailable(self.retry_after()).answer(ctx.json, SOURCE_PROXY);
        ctx.ending = Some(Ending::OriginFailed);
        match respond::write(session, answer, &ctx.request_id).await {
            Ok(()) => FailToProxy {
                error_code: 503,
                can_reuse_downstream: false,
            },
            Err(_) => closed,
        }
    }

    fn suppress_error_log(&self, _session: &Session, _ctx: &Ctx, _error: &Error) -> bool {
        // Failures are counted (shouhu_origin_failures_total) and answered; not logged per
        // request at error level.
        true
    }

    async fn logging(&self, _session: &mut Session, e: Option<&Error>, ctx: &mut Ctx) {
        if ctx.went_upstream {
            let failure = ctx.failure.or_else(|| match e {
                Some(e) if e.esource() == &ErrorSource::Upstream => Some(failure_kind(e)),
                _ if ctx.status >= 500 => Some(FailureKind::Status5xx),
                _ => None,
            });
            let call = ctx.call.take();
            match failure {
                Some(kind) => {
                    self.parts.breaker.record(OriginOutcome::Failure(kind));
                    ctx.span.in_scope(|| {
                        tracing::debug!(kind = kind.as_str(), "origin call failed");
                    });
                    if let Some(call) = call {
                        let outcome = match kind {
                            FailureKind::Timeout => CallOutcome::Timeout,
                            FailureKind::Status5xx => CallOutcome::Error,
                            FailureKind::Refused | FailureKind::Io => CallOutcome::Failed,
                        };
                        let latency = call.elapsed();
                        self.parts.breaker.observe_latency(latency);
                        call.record(latency, outcome);
                    }
                }
                // A client that left before the origin answered says nothing about it (the
                // call is dropped unrecorded).
                None if ctx.status == 0 => {}
                None => {
                    self.parts.breaker.record(OriginOutcome::Success);
                    if let Some(call) = call {
                        let latency = ctx.origin_latency.unwrap_or_else(|| call.elapsed());
                        self.parts.breaker.observe_latency(latency);
                        call.record(latency, CallOutcome::Ok);
                    }
                }
            }
        }
        let ending = ctx.ending.unwrap_or(match e {
            Some(_) if ctx.status == 0 => Ending::Aborted,
            _ => Ending::Proxied,
        });
        self.parts
            .metrics
            .request(ctx.class, ending, ctx.started.elapsed().as_secs_f64());
    }
}
