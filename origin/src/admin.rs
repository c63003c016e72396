//! The admin port: status, metrics, fault injection and the capacity model's knobs.
//!
//! ```text
//! GET  /healthz
//! GET  /metrics                   Prometheus text
//! GET  /admin/status              publisher, capacity, fault, sources, ruleset
//! GET  /admin/fault               the current fault
//! POST /admin/fault               {"mode": "none"|"hang"|"error"|"slow"|"refuse", "latency_ms"?: N}
//! GET  /admin/capacity            parameters and state of the capacity model
//! PUT  /admin/capacity            any subset of the parameters, e.g. {"enabled": true, "kappa": 0.036}
//! POST /admin/crash               crash the origin now (as sustained overload would)
//! ```

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::app::App;
use crate::capacity::Params;
use crate::fault::Fault;
use crate::metrics::Metrics;

/// State of the admin routes.
#[derive(Debug, Clone)]
pub struct Admin {
    /// The app.
    pub app: Arc<App>,
    /// Request metrics of the citizen port.
    pub metrics: Arc<Metrics>,
    /// Where each data source is.
    pub sources: Vec<(String, String)>,
}

/// The admin routes.
pub fn router(admin: Admin) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/metrics", get(metrics))
        .route("/admin/status", get(status))
        .route("/admin/fault", get(get_fault).post(set_fault))
        .route("/admin/capacity", get(get_capacity).put(set_capacity))
        .route("/admin/crash", post(crash))
        .with_state(admin)
}

fn bad(message: String) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"error": "invalid", "message": message})),
    )
        .into_response()
}

async fn metrics(State(a): State<Admin>) -> Response {
    let text = a
        .metrics
        .render(&a.app.capacity.status(), &a.app.publisher.status());
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        text,
    )
        .into_response()
}

async fn status(State(a): State<Admin>) -> Json<Value> {
    let sources: serde_json::Map<String, Value> = a
        .sources
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    Json(json!({
        "publisher": a.app.publisher.status(),
        "capacity": a.app.capacity.status(),
        "fault": *a.app.fault.borrow(),
        "sources": sources,
        "ruleset": {"version": a.app.ruleset.version, "name": a.app.ruleset.name},
    }))
}

async fn get_fault(State(a): State<Admin>) -> Json<Fault> {
    Json(*a.app.fault.borrow())
}

async fn set_fault(State(a): State<Admin>, body: axum::body::Bytes) -> Response {
    match serde_json::from_slice::<Fault>(&body) {
        Ok(fault) => {
            tracing::info!(mode = ?fault.mode, latency_ms = ?fault.latency_ms, "fault injection set");
            a.app.fault.send_replace(fault);
            Json(fault).into_response()
        }
        Err(e) => bad(format!(
            "expected {{\"mode\": \"none\"|\"hang\"|\"error\"|\"slow\"|\"refuse\", \"latency_ms\"?: N}}: {e}"
        )),
    }
}

async fn get_capacity(State(a): State<Admin>) -> Response {
    Json(a.app.capacity.status()).into_response()
}

/// Any subset of [`Params`].
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ParamsPatch {
    enabled: Option<bool>,
    service_time_ms: Option<f64>,
    sigma: Option<f64>,
    kappa: Option<f64>,
    noise: Option<f64>,
    crash_in_flight: Option<u32>,
    crash_after_ms: Option<u64>,
    restart_after_ms: Option<u64>,
    cold_factor: Option<f64>,
    cold_for_ms: Option<u64>,
}

async fn set_capacity(State(a): State<Admin>, body: axum::body::Bytes) -> Response {
    let patch: ParamsPatch = match serde_json::from_slice(&body) {
        Ok(p) => p,
        Err(e) => return bad(e.to_string()),
    };
    let p = a.app.capacity.status().params;
    let params = Params {
        enabled: patch.enabled.unwrap_or(p.enabled),
        service_time_ms: patch.service_time_ms.unwrap_or(p.service_time_ms),
        sigma: patch.sigma.unwrap_or(p.sigma),
        kappa: patch.kappa.unwrap_or(p.kappa),
        noise: patch.noise.unwrap_or(p.noise),
        crash_in_flight: patch.crash_in_flight.unwrap_or(p.crash_in_flight),
        crash_after_ms: patch.crash_after_ms.unwrap_or(p.crash_after_ms),
        restart_after_ms: patch.restart_after_ms.unwrap_or(p.restart_after_ms),
        cold_factor: patch.cold_factor.unwrap_or(p.cold_factor),
        cold_for_ms: patch.cold_for_ms.unwrap_or(p.cold_for_ms),
    };
    match a.app.capacity.set_params(params) {
        Ok(()) => {
            tracing::info!(?params, "capacity model changed");
            Json(a.app.capacity.status()).into_response()
        }
        Err(e) => bad(e),
    }
}

async fn crash(State(a): State<Admin>) -> Response {
    a.app.capacity.crash_now();
    Json(a.app.capacity.status()).into_response()
}
