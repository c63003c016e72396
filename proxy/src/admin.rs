//! The admin listener (loopback by default), an axum server on the proxy's background
//! runtime, apart from the Pingora workers:
//!
//! ```text
//! GET /metrics   Prometheus text (see crate::metrics)
//! GET /healthz   200 "ok" while the process serves
//! GET /readyz    200 {"ready":true,"redis":"connected|unreachable|off",...}; 503 without keys
//! GET /status    a small bilingual page for a browser (Accept: text/html; see status_page),
//!                else the same as /status.json
//! GET /status.json {"breaker","cache_entries","snapshot_watermark_age_seconds","redis",
//!                 "origin_in_flight","origin_limit","journal_backlog","requests",...}
//! ```

mod status_page;

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;
use shouhu_fallback::SnapshotStore;
use shouhu_fallback::journal::Journal;
use shouhu_fallback::journal::replayer::ReplayCounters;

use crate::admission::Admission;
use crate::breaker::Breaker;
use crate::cache::CodeCache;
use crate::metrics::Metrics;
use crate::ratelimit::RateLimits;
use crate::service::EdgeTrust;
use crate::waiting_room::WaitingRoom;

/// What the admin endpoints look at.
#[derive(Clone, Debug)]
pub struct AdminState {
    /// The metrics registry.
    pub metrics: Arc<Metrics>,
    /// The breaker on the origin.
    pub breaker: Arc<Breaker>,
    /// Admission toward the origin.
    pub admission: Arc<Admission>,
    /// The per-user cache, when the display path runs.
    pub cache: Option<Arc<CodeCache>>,
    /// The snapshot store, when `[fallback] redis` is set.
    pub store: Option<SnapshotStore>,
    /// The write journal, when declarations are journalled.
    pub journal: Option<Journal>,
    /// The replayer's counters.
    pub replay: Option<Arc<ReplayCounters>>,
    /// The edge trust list.
    pub trust: Arc<EdgeTrust>,
    /// Whether the fallback issuer has a signing key.
    pub fallback_keys: bool,
    /// The waiting room of `register`.
    pub waiting_room: Option<Arc<WaitingRoom>>,
    /// The rate limits.
    pub rate_limits: Arc<RateLimits>,
}

impl AdminState {
    fn redis(&self) -> &'static str {
        match &self.store {
            None => "off",
            Some(s) if s.is_connected() => "connected",
            Some(_) => "unreachable",
        }
    }

    /// Seconds since the snapshot watermark, if known.
    async fn watermark_age(&self) -> Option<i64> {
        let store = self.store.as_ref()?;
        let watermark = store.watermark().await.ok()??;
        let now = shouhu_code::time::now();
        i64::try_from(now.saturating_sub(watermark)).ok()
    }

    fn cache_entries(&self) -> u64 {
        self.cache.as_ref().map_or(0, |c| {
            // moka counts lazily: settle pending inserts so the figure is current.
            c.run_pending_tasks();
            c.entry_count()
        })
    }

    /// Journalled declarations not yet applied, if known.
    async fn journal_backlog(&self) -> Option<u64> {
        self.journal.as_ref()?.backlog().await.ok()
    }

    async fn refresh_gauges(&self) -> (Option<i64>, Option<u64>) {
        let age = self.watermark_age().await;
        let backlog = self.journal_backlog().await;
        let m = &self.metrics;
        m.sync_admission(&self.admission.snapshot());
        m.sync_rate_limits(&self.rate_limits);
        m.sync_components(&crate::metrics::Components {
            breaker: &self.breaker,
            cache: self.cache.as_deref(),
            store: self.store.as_ref(),
            journal: self.journal.as_ref(),
        });
        if let Some(room) = &self.waiting_room {
            let stats = room.stats_at(std::time::SystemTime::now());
            m.waiting_room_depth
                .set(i64::try_from(stats.depth).unwrap_or(i64::MAX));
            m.waiting_room_wait
                .set(stats.estimated_wait.map_or(-1.0, |d| d.as_secs_f64()));
        }
        if let Some(replay) = &self.replay {
            m.sync_replay(replay);
        }
        m.journal_backlog
            .set(backlog.map_or(-1, |n| i64::try_from(n).unwrap_or(i64::MAX)));
        m.breaker_state
            .set(i64::from(self.breaker.state().as_gauge()));
        m.cache_entries
            .set(i64::try_from(self.cache_entries()).unwrap_or(i64::MAX));
        m.watermark_age.set(age.unwrap_or(-1));
        (age, backlog)
    }
}

/// The admin routes.
pub fn router(state: AdminState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/status", get(status_page::status))
        .route("/status.json", get(status_page::status_json))
        .with_state(Arc::new(state))
}

async fn metrics(State(state): State<Arc<AdminState>>) -> Response {
    state.refresh_gauges().await;
    let body = state.metrics.render();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}

async fn readyz(State(state): State<Arc<AdminState>>) -> Response {
    let ready = !state.trust.is_empty();
    let redis = state.redis();
    let body = json!({
        "ready": ready,
        "degraded": redis == "unreachable",
        "redis": redis,
        "trust_keys": state.trust.len(),
        "fallback_keys": state.fallback_keys,
    });
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(body)).into_response()
}
