//! Daily health declarations, applied exactly once per `Idempotency-Key` (the gateway's write
//! journal replays them and relies on this).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use shouhu_code::time::{format_rfc3339, now};

use super::{Session, parse_json};
use crate::app::App;
use crate::error::ApiError;
use crate::facts::Declaration;
use crate::store::Applied;

/// Lowest believable body temperature, °C.
const MIN_TEMPERATURE: f64 = 34.0;
/// Highest believable body temperature, °C.
const MAX_TEMPERATURE: f64 = 43.0;
/// Most symptoms or places in one declaration.
const MAX_ITEMS: usize = 20;
/// Longest symptom or place, characters.
const MAX_ITEM_CHARS: usize = 64;
/// Longest idempotency key.
const MAX_KEY_CHARS: usize = 128;

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct DeclareRequest {
    temperature: f64,
    #[serde(default)]
    symptoms: Vec<String>,
    #[serde(default)]
    travel: Vec<String>,
}

#[derive(Serialize)]
struct DeclareResponse {
    accepted: bool,
    declared_at: String,
    idempotency_key: String,
}

fn unprocessable(message: String, message_zh: String) -> ApiError {
    ApiError::Unprocessable {
        message,
        message_zh,
    }
}

fn check(req: &DeclareRequest) -> Result<(), ApiError> {
    if !(req.temperature.is_finite()
        && (MIN_TEMPERATURE..=MAX_TEMPERATURE).contains(&req.temperature))
    {
        return Err(unprocessable(
            format!(
                "Temperature must be between {MIN_TEMPERATURE} and {MAX_TEMPERATURE} °C (got {})",
                req.temperature
            ),
            format!(
                "体温应在 {MIN_TEMPERATURE} 至 {MAX_TEMPERATURE} °C 之间（当前为 {}）",
                req.temperature
            ),
        ));
    }
    for (what, zh, items) in [
        ("symptoms", "症状", &req.symptoms),
        ("travel", "行程", &req.travel),
    ] {
        if items.len() > MAX_ITEMS
            || items
                .iter()
                .any(|i| i.trim().is_empty() || i.chars().count() > MAX_ITEM_CHARS)
        {
            return Err(unprocessable(
                format!("{what}: at most {MAX_ITEMS} entries of 1 to {MAX_ITEM_CHARS} characters"),
                format!("{zh}：最多{MAX_ITEMS}项，每项1至{MAX_ITEM_CHARS}个字符"),
            ));
        }
    }
    Ok(())
}

pub(super) async fn declare(
    State(app): State<Arc<App>>,
    Session(subject): Session,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|k| !k.is_empty() && k.chars().count() <= MAX_KEY_CHARS)
        .ok_or_else(|| {
            ApiError::invalid(
                "missing_idempotency_key",
                "Idempotency-Key",
                format!("An Idempotency-Key header of 1 to {MAX_KEY_CHARS} characters is required"),
                format!("请求需带有1至{MAX_KEY_CHARS}个字符的 Idempotency-Key 请求头"),
            )
        })?
        .to_owned();
    let req: DeclareRequest = parse_json(&body)?;
    check(&req)?;
    if app
        .store
        .person(subject)
        .await
        .map_err(ApiError::internal)?
        .is_none()
    {
        return Err(ApiError::NotRegistered);
    }
    let canonical = serde_json::to_vec(&req).map_err(ApiError::internal)?;
    let request_hash = hex::encode(Sha256::digest(&canonical));
    let at = now();
    let response = serde_json::to_string(&DeclareResponse {
        accepted: true,
        declared_at: format_rfc3339(at),
        idempotency_key: key.clone(),
    })
    .map_err(ApiError::internal)?;
    let declaration = Declaration {
        at,
        temperature: req.temperature,
        symptoms: req.symptoms,
        travel: req.travel,
    };
    let applied = app
        .store
        .declare(subject, key, request_hash, declaration, response.clone())
        .await
        .map_err(ApiError::internal)?;
    let body = match applied {
        Applied::New => {
            // Re-colour in the background; the next code request computes it live anyway.
            let _ = app.recolour.try_send(subject);
            response
        }
        Applied::Replay(stored) => stored,
        Applied::Conflict => return Err(ApiError::IdempotencyConflict),
    };
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response())
}
