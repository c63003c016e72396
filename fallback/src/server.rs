//! The standalone fallback issuer's HTTP server (`shouhu issuer`): the citizen endpoints the
//! origin also serves, answered from the snapshot, plus snapshot ingest for origins that push.
//!
//! | route | who | what |
//! |---|---|---|
//! | `GET /api/code` | citizen (session token) | the code as JSON, the same shape as the origin's |
//! | `GET /code` | citizen (session token) | the code as the same HTML page as the origin's |
//! | `POST /api/verify` `{code}` | venue scanner | `{valid, colour, ...}` or `{valid: false, reason}` |
//! | `GET /.well-known/shouhu/trust-list.json` | anyone | every key the issuer knows |
//! | `POST /ingest/records` | origin (ingest token) | NDJSON records, see [`ingest`] |
//! | `POST /ingest/watermark` | origin (ingest token) | `{"complete_up_to": seconds}` |
//!
//! The admin listener has `/healthz`, `/readyz` (Redis connected) and `/metrics`.
//! Code answers carry `Cache-Control: no-store`: a code is personal.

pub mod error;
pub mod ingest;
pub mod metrics;

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use shouhu_code::time::{UnixTime, now};
use shouhu_code::{Colour, Source, VerifyPolicy, render_page, verify};
use shouhu_config::Secret;

use self::error::ApiError;
use self::metrics::Metrics;
use crate::issuer::Issuer;
use crate::log_throttle::LogThrottle;
use crate::session::SessionVerifier;

/// The well-known path of the trust list.
pub const TRUST_LIST_PATH: &str = "/.well-known/shouhu/trust-list.json";

/// What the handlers share.
#[derive(Clone, Debug)]
pub struct AppState {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    issuer: Issuer,
    sessions: SessionVerifier,
    ingest_token: Option<Secret>,
    metrics: Metrics,
    clock: fn() -> UnixTime,
}

impl AppState {
    /// State for the routers. Without an ingest token the ingest routes answer 404.
    #[must_use]
    pub fn new(issuer: Issuer, sessions: SessionVerifier, ingest_token: Option<Secret>) -> Self {
        Self {
            inner: Arc::new(Inner {
                issuer,
                sessions,
                ingest_token,
                metrics: Metrics::default(),
                clock: now,
            }),
        }
    }

    /// The issuer.
    #[must_use]
    pub fn issuer(&self) -> &Issuer {
        &self.inner.issuer
    }

    /// The counters.
    #[must_use]
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }
}

/// The public router.
pub fn router(state: AppState) -> Router {
    let mut r = Router::new()
        .route("/api/code", get(api_code))
        .route("/code", get(page))
        .route("/api/verify", post(api_verify))
        .route(TRUST_LIST_PATH, get(trust_list));
    if state.inner.ingest_token.is_some() {
        r = r
            .route("/ingest/records", post(ingest::records))
            .route("/ingest/watermark", post(ingest::watermark));
    }
    r.with_state(state)
}

/// The admin router: health, readiness and metrics.
pub fn admin_router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics::render))
        .with_state(state)
}

async fn readyz(State(s): State<AppState>) -> Response {
    if s.inner.issuer.store().is_connected() {
        (StatusCode::OK, "ready").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "redis unreachable").into_response()
    }
}

async fn issue_for(s: &AppState, headers: &HeaderMap) -> Result<crate::Issued, ApiError> {
    let subject = s.inner.sessions.verify_headers(headers).map_err(|e| {
        s.inner.metrics.refused(e.reason());
        ApiError::Unauthenticated(e)
    })?;
    let issued = s
        .inner
        .issuer
        .issue(&subject, None, (s.inner.clock)())
        .await
        .map_err(|e| {
            // Counted per request; logged at most once per interval.
            static ISSUE_FAILED: LogThrottle = LogThrottle::every_default();
            if let Some(suppressed) = ISSUE_FAILED.admit() {
                tracing::error!(error = %e, suppressed, "fallback issue failed");
            }
            s.inner.metrics.refused("issue_failed");
            ApiError::Internal
        })?;
    s.inner
        .metrics
        .issued(issued.claims.colour, issued.basis, issued.snapshot_read);
    Ok(issued)
}

fn no_store(mut r: Response) -> Response {
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

async fn api_code(State(s): State<AppState>, headers: HeaderMap) -> Response {
    match issue_for(&s, &headers).await {
        Ok(issued) => no_store(Json(issued.view()).into_response()),
        Err(e) => no_store(e.into_response()),
    }
}

async fn page(State(s): State<AppState>, headers: HeaderMap) -> Response {
    match issue_for(&s, &headers).await {
        Ok(issued) => {
            let now = issued.claims.issued_at;
            no_store(Html(render_page(&issued.view(), now)).into_response())
        }
        Err(e) => no_store(e.into_page()),
    }
}

async fn trust_list(State(s): State<AppState>) -> Response {
    let body = s.inner.issuer.trust_list().to_json_pretty();
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        body,
    )
        .into_response()
}

/// `POST /api/verify` body.
#[derive(Deserialize)]
struct VerifyRequest {
    code: String,
}

/// `POST /api/verify` answer.
#[derive(Serialize, Deserialize, Debug, PartialEq, Eq)]
pub struct VerifyAnswer {
    /// Whether the code is valid now.
    pub valid: bool,
    /// Why not, as a stable label.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub reason: Option<String>,
    /// The colour, when valid.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub colour: Option<Colour>,
    /// Origin or fallback, when valid.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub source: Option<Source>,
    /// Masked name, when valid.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub masked_name: Option<String>,
    /// Last ID characters, when valid.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub id_last4: Option<String>,
    /// Data as-of (seconds), when valid.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub as_of: Option<UnixTime>,
    /// Expiry (seconds), when valid.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub expires_at: Option<UnixTime>,
}

async fn api_verify(State(s): State<AppState>, body: axum::body::Bytes) -> Response {
    let Ok(request) = serde_json::from_slice::<VerifyRequest>(&body) else {
        return ApiError::BadRequest("body must be {\"code\": \"HZ1:...\"}").into_response();
    };
    let list = s.inner.issuer.trust_list();
    let answer = match verify(
        request.code.trim(),
        &list,
        (s.inner.clock)(),
        &VerifyPolicy::default(),
    ) {
        Ok(v) => VerifyAnswer {
            valid: true,
            reason: None,
            colour: Some(v.claims.colour),
            source: Some(v.claims.source),
            masked_name: Some(v.claims.masked_name),
            id_last4: Some(v.claims.id_last4),
            as_of: Some(v.claims.as_of),
            expires_at: Some(v.claims.expires_at),
        },
        Err(e) => VerifyAnswer {
            valid: false,
            reason: Some(e.reason().to_owned()),
            colour: None,
            source: None,
            masked_name: None,
            id_last4: None,
            as_of: None,
            expires_at: None,
        },
    };
    s.inner.metrics.verified(answer.valid);
    Json(answer).into_response()
}

/// Serves the public router on `listener` until `shutdown` completes.
///
/// # Errors
/// The server fails.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}

/// Whether the request carries the ingest bearer token (compared in constant time).
fn ingest_allowed(s: &AppState, headers: &HeaderMap) -> bool {
    let Some(expected) = &s.inner.ingest_token else {
        return false;
    };
    let expected = expected.expose();
    let expected = std::str::from_utf8(expected)
        .map(|t| t.trim_end_matches(['\n', '\r']).as_bytes())
        .unwrap_or(expected);
    let Some(given) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "))
    else {
        return false;
    };
    given.len() == expected.len()
        && given
            .iter()
            .zip(expected)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}
