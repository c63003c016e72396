//! The Pingora `ProxyHttp` implementation: what happens to each request.
//!
//! 1. `request_filter` classifies the request by route. The merged trust list is answered
//!    locally. Unless the path is anonymous, the session token must verify, or the answer is
//!    401 before any cache, issuer or origin sees the request.
//! 2. `display` is answered by the [`DisplayPath`] (cache, origin, fallback, "unknown") and
//!    written here; `scan` is verified at the edge with the trust list when the breaker is not
//!    closed (or always, if configured).
//! 3. Everything else passes through to the origin under the breaker: when it rejects, the
//!    answer is 503 + `Retry-After` at once. `upstream_peer` returns a pre-resolved peer with
//!    a timeout on every phase, capped by the class deadline (and the probe timeout when the
//!    breaker is half-open).
//! 4. `fail_to_connect` / `error_while_proxy` note why the origin failed; `fail_to_proxy`
//!    writes our own 503 (or verifies a scan at the edge when the connection never opened);
//!    `logging` records the origin's outcome in the breaker and the request in the metrics.
//!
//! Errors become `pingora::Error` only here, at the hook boundary.

mod display_path;
mod ending;
mod respond;
mod scan;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use pingora::http::ResponseHeader;
use pingora::prelude::HttpPeer;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::{Error, ErrorSource, ErrorType};
use shouhu_config::proxy::RouteClass;

pub use self::display_path::DisplayPath;
pub use self::ending::Ending;
pub use self::respond::SOURCE_HEADER;
use self::respond::{Local, Refusal};
pub use self::scan::EdgeTrust;
use crate::breaker::{Admit, Breaker, BreakerState, FailureKind, OriginOutcome};
use crate::classify::Classifier;
use crate::display::{DisplayRequest, Format};
use crate::identity::{AuthError, Identity, token_str};
use crate::metrics::Metrics;
use crate::outcome::Outcome;

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

/// Everything the service is built from.
pub struct GatewayParts {
    /// The route table.
    pub classifier: Classifier,
    /// Session verification.
    pub identity: Arc<Identity>,
    /// `identity.cookie_name`.
    pub cookie_name: String,
    /// The breaker on the origin, shared with the display path.
    pub breaker: Arc<Breaker>,
    /// The display path; `None` passes `display` through like `other`.
    pub display: Option<Arc<dyn DisplayPath>>,
    /// The trust list of edge verification.
    pub trust: Arc<EdgeTrust>,
    /// `scan.verify_at_edge = "always"`.
    pub verify_always: bool,
    /// The origin's resolved address.
    pub origin: SocketAddr,
    /// The origin's host, sent as SNI-equivalent peer name (plain HTTP: informational).
    pub origin_host: String,
    /// Timeouts toward the origin.
    pub timeouts: OriginTimeouts,
    /// The metrics.
    pub metrics: Arc<Metrics>,
}

/// The gateway: a `ProxyHttp`.
pub struct Gateway {
    parts: GatewayParts,
    peer: HttpPeer,
    retry_after: u32,
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
    class: RouteClass,
    json: bool,
    deadline: Duration,
    upstream: Upstream,
    went_upstream: bool,
    failure: Option<FailureKind>,
    connect_failed: bool,
    status: u16,
    ending: Option<Ending>,
}

impl Gateway {
    /// The gateway of `parts`.
    #[must_use]
    pub fn new(parts: GatewayParts) -> Self {
        let mut peer = HttpPeer::new(parts.origin, false, parts.origin_host.clone());
        peer.options.connection_timeout = Some(parts.timeouts.connect);
        peer.options.total_connection_timeout = Some(parts.timeouts.connect);
        peer.options.read_timeout = Some(parts.timeouts.read);
        peer.options.write_timeout = Some(parts.timeouts.read);
        peer.options.idle_timeout = Some(parts.timeouts.idle);
        let open_for = parts.breaker.config().open_for.as_secs();
        let retry_after = u32::try_from(open_for).unwrap_or(u32::MAX).max(1);
        Self {
            parts,
            peer,
            retry_after,
        }
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
        respond::write(session, answer).await?;
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
        let body = scan::read_body(session).await?;
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
    ) -> pingora::Result<bool> {
        let format = if ctx.json { Format::Json } else { Format::Html };
        let answer = display
            .serve(DisplayRequest {
                subject,
                token,
                format,
            })
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
            class: RouteClass::Other,
            json: true,
            deadline: Duration::ZERO,
            upstream: Upstream::No,
            went_upstream: false,
            failure: None,
            connect_failed: false,
            status: 0,
            ending: None,
        }
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut Ctx) -> pingora::Result<bool> {
        session.set_keepalive(Some(DOWNSTREAM_KEEPALIVE_SECS));
        let req = session.req_header();
        let path = req.uri.path();
        let classified = self.parts.classifier.classify(req.method.as_str(), path);
        ctx.class = classified.class;
        ctx.json = classified.json;
        ctx.deadline = classified.deadline;

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
                &self.parts.cookie_name,
            );
            let result = match token {
                None => Err(AuthError::Missing),
                Some(t) => self.parts.identity.verify(t).map(|s| (s, t.to_owned())),
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

        match ctx.class {
            RouteClass::Display => {
                if let (Some(display), Some((subject, token))) = (&self.parts.display, verified) {
                    let display = Arc::clone(display);
                    return self
                        .display(session, ctx, display.as_ref(), subject, &token)
                        .await;
                }
            }
            RouteClass::Scan
                if self.parts.verify_always
                    || self.parts.breaker.state() != BreakerState::Closed =>
            {
                return self.scan_at_edge(session, ctx).await;
            }
            _ => {}
        }

        match self.parts.breaker.admit() {
            Admit::Reject => {
                self.refuse(
                    session,
                    ctx,
                    respond::unavailable(self.retry_after),
                    Ending::Shed,
                )
                .await
            }
            Admit::Normal => {
                ctx.upstream = Upstream::Normal;
                Ok(false)
            }
            Admit::Probe { timeout } => {
                ctx.upstream = Upstream::Probe(timeout);
                Ok(false)
            }
        }
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        ctx: &mut Ctx,
    ) -> pingora::Result<Box<HttpPeer>> {
        let cap = match ctx.upstream {
            Upstream::Probe(timeout) => timeout.min(ctx.deadline),
            Upstream::Normal | Upstream::No => ctx.deadline,
        };
        let mut peer = Box::new(self.peer.clone());
        let t = self.parts.timeouts;
        peer.options.connection_timeout = Some(t.connect.min(cap));
        peer.options.total_connection_timeout = Some(t.connect.min(cap));
        peer.options.read_timeout = Some(t.read.min(cap));
        peer.options.write_timeout = Some(t.read.min(cap));
        ctx.went_upstream = true;
        Ok(peer)
    }

    async fn response_filter(
        &self,
        _session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> pingora::Result<()> {
        ctx.status = upstream_response.status.as_u16();
        upstream_response.insert_header(SOURCE_HEADER, SOURCE_ORIGIN)?;
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
        // A scan whose connection never opened still has its body: verify it here.
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
        let answer = respond::unavailable(self.retry_after).answer(ctx.json, SOURCE_PROXY);
        ctx.ending = Some(Ending::OriginFailed);
        match respond::write(session, answer).await {
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
            match failure {
                Some(kind) => {
                    self.parts.breaker.record(OriginOutcome::Failure(kind));
                    self.parts.metrics.origin_failed(kind);
                    tracing::debug!(kind = kind.as_str(), "origin call failed");
                }
                // A client that left before the origin answered says nothing about it.
                None if ctx.status == 0 => {}
                None => self.parts.breaker.record(OriginOutcome::Success),
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
