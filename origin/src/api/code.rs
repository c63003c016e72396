//! Codes: the JSON and the HTML page, the explanation, scan verification and the published
//! keys.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::header;
use axum::response::{Html, IntoResponse, Response};
use serde::Serialize;
use shouhu_code::scan::{ScanAnswer, ScanRequest};
use shouhu_code::time::{format_rfc3339, now};
use shouhu_code::{Colour, VerifyPolicy, render_page};

use super::{Session, parse_json};
use crate::app::App;
use crate::error::ApiError;
use crate::facts::Answer;
use crate::identity::SessionKeyJson;
use crate::rules::Reason;

/// Per-user caches may keep a code this long (it stays valid for minutes).
const CODE_CACHE_CONTROL: &str = "private, max-age=30";

pub(super) async fn code_json(
    State(app): State<Arc<App>>,
    Session(subject): Session,
) -> Result<Response, ApiError> {
    let view = app.issue(subject).await?;
    Ok(([(header::CACHE_CONTROL, CODE_CACHE_CONTROL)], Json(view)).into_response())
}

pub(super) async fn code_page(
    State(app): State<Arc<App>>,
    Session(subject): Session,
) -> Result<Response, ApiError> {
    let view = app.issue(subject).await?;
    Ok((
        [(header::CACHE_CONTROL, CODE_CACHE_CONTROL)],
        Html(render_page(&view, shouhu_code::time::now())),
    )
        .into_response())
}

#[derive(Serialize)]
struct SourceState {
    health: &'static str,
    police: &'static str,
    carrier: &'static str,
}

#[derive(Serialize)]
struct Explanation {
    colour: Colour,
    ruleset_version: u32,
    ruleset_name: String,
    as_of: String,
    reasons: Vec<Reason>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_change_at: Option<String>,
    sources: SourceState,
    /// Declarations in the last 30 days.
    declarations: usize,
}

fn state<T>(a: &Answer<T>) -> &'static str {
    match a {
        Answer::Known(_) => "ok",
        Answer::Unavailable => "unavailable",
    }
}

pub(super) async fn explain(
    State(app): State<Arc<App>>,
    Session(subject): Session,
) -> Result<Json<impl Serialize>, ApiError> {
    let c = app.colour(subject).await?;
    Ok(Json(Explanation {
        colour: c.evaluation.colour,
        ruleset_version: c.evaluation.ruleset_version,
        ruleset_name: app.ruleset.name.clone(),
        as_of: format_rfc3339(c.at),
        reasons: c.evaluation.reasons,
        next_change_at: c.evaluation.next_change_at.map(format_rfc3339),
        sources: SourceState {
            health: state(&c.facts.health),
            police: state(&c.facts.police),
            carrier: state(&c.facts.carrier),
        },
        declarations: c.facts.declarations.len(),
    }))
}

pub(super) async fn verify(
    State(app): State<Arc<App>>,
    body: Bytes,
) -> Result<Json<impl Serialize>, ApiError> {
    let req: ScanRequest = parse_json(&body)?;
    let answer = ScanAnswer::from(shouhu_code::verify(
        req.code.trim(),
        &app.trust,
        now(),
        &VerifyPolicy::default(),
    ));
    Ok(Json(answer))
}

pub(super) async fn trust_list(State(app): State<Arc<App>>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        app.trust.to_json_pretty(),
    )
        .into_response()
}

pub(super) async fn session_key(State(app): State<Arc<App>>) -> Json<SessionKeyJson> {
    Json(app.sessions.public_json())
}
