//! Snapshot ingest for an existing origin that pushes: `POST /ingest/records` takes NDJSON
//! (one [`SubjectRecord`] per line, as `shouhu snapshot import` reads) and `POST
//! /ingest/watermark` takes `{"complete_up_to": <seconds>}`. Both need
//! `Authorization: Bearer <ingest_token>`.
//!
//! Records answer `{"received", "changed", "errors": [{"line", "error"}]}`: good lines are
//! written even when others are bad (writes are idempotent, so the origin may resend the
//! whole batch); 503 when Redis is down, so the origin retries.

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use shouhu_code::time::UnixTime;

use super::error::ApiError;
use super::{AppState, ingest_allowed};
use crate::snapshot::{SnapshotError, SubjectRecord};

/// Records written per `put_many`.
const CHUNK: usize = 1000;
/// Most line errors listed in an answer.
const MAX_ERRORS_LISTED: usize = 100;

/// One bad line.
#[derive(Serialize, Deserialize, Debug, PartialEq, Eq)]
pub struct LineError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub error: String,
}

/// The answer to `POST /ingest/records`.
#[derive(Serialize, Deserialize, Debug, PartialEq, Eq)]
pub struct IngestAnswer {
    /// Good lines received.
    pub received: usize,
    /// Records that changed the snapshot.
    pub changed: usize,
    /// Bad lines (at most 100 listed).
    pub errors: Vec<LineError>,
    /// Bad lines in all.
    pub bad_lines: usize,
}

/// `POST /ingest/watermark` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WatermarkRequest {
    complete_up_to: UnixTime,
}

fn unavailable(e: &SnapshotError) -> ApiError {
    tracing::warn!(error = %e, "ingest failed");
    match e {
        SnapshotError::Invalid { .. } => ApiError::BadRequest("invalid record"),
        _ => ApiError::Unavailable,
    }
}

pub(crate) async fn records(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: String,
) -> Response {
    if !ingest_allowed(&s, &headers) {
        return ApiError::Forbidden.into_response();
    }
    let mut good = Vec::new();
    let mut errors = Vec::new();
    let mut bad_lines = 0;
    for (i, line) in body.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match SubjectRecord::parse_line(line) {
            Ok(r) => good.push(r.into_parts()),
            Err(error) => {
                bad_lines += 1;
                if errors.len() < MAX_ERRORS_LISTED {
                    errors.push(LineError { line: i + 1, error });
                }
            }
        }
    }
    let mut changed = 0;
    for chunk in good.chunks(CHUNK) {
        match s.issuer().store().put_many_counted(chunk).await {
            Ok(n) => changed += n,
            Err(e) => return unavailable(&e).into_response(),
        }
    }
    s.metrics().ingested(good.len() as u64);
    Json(IngestAnswer {
        received: good.len(),
        changed,
        errors,
        bad_lines,
    })
    .into_response()
}

pub(crate) async fn watermark(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if !ingest_allowed(&s, &headers) {
        return ApiError::Forbidden.into_response();
    }
    let Ok(request) = serde_json::from_slice::<WatermarkRequest>(&body) else {
        return ApiError::BadRequest("body must be {\"complete_up_to\": <unix seconds>}")
            .into_response();
    };
    match s
        .issuer()
        .store()
        .set_watermark(request.complete_up_to)
        .await
    {
        Ok(()) => Json(serde_json::json!({ "ok": true })).into_response(),
        Err(e) => unavailable(&e).into_response(),
    }
}
