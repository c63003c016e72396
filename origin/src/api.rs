//! The citizen and scanner API (the listener the gateway fronts).
//!
//! ```text
//! GET  /register            the registration page (posts to /api/register)
//! POST /api/register        {name, id_number, phone, address} → 201 {subject, ...}; again → 200
//! POST /api/login           {id_number, phone} → {token, expires_at, subject} + cookie
//! POST /api/declare         Idempotency-Key; {temperature, symptoms[], travel[]} → 200, once
//! GET  /api/code            CodeView JSON (token required)
//! GET  /code                the HTML page (token required)
//! GET  /api/code/explain    the reasons behind the colour (token required)
//! POST /api/verify          {code} → {valid, colour, ...} or {valid: false, reason}
//! GET  /.well-known/shouhu/trust-list.json
//! GET  /.well-known/shouhu/session-key
//! GET  /healthz
//! ```
//!
//! Requests pass the fault injection and the capacity model first ([`crate::server`]).

mod account;
mod code;
mod declare;
mod register_page;

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use axum::routing::{get, post};
use serde::de::DeserializeOwned;
use shouhu_code::SubjectId;

use crate::app::App;
use crate::error::ApiError;

/// The session cookie (the proxy config's default `identity.cookie_name`).
pub const SESSION_COOKIE: &str = "shouhu_session";
/// Largest request body read, bytes.
const MAX_BODY: usize = 16 * 1024;

/// The citizen routes.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/api/register", post(account::register))
        .route("/register", get(register_page::register_page))
        .route("/api/login", post(account::login))
        .route("/api/declare", post(declare::declare))
        .route("/api/code", get(code::code_json))
        .route("/code", get(code::code_page))
        .route("/api/code/explain", get(code::explain))
        .route("/api/verify", post(code::verify))
        .route("/.well-known/shouhu/trust-list.json", get(code::trust_list))
        .route(
            shouhu_config::proxy::SESSION_KEY_WELL_KNOWN_PATH,
            get(code::session_key),
        )
        .route("/healthz", get(|| async { "ok" }))
        .with_state(app)
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
}

/// Parses a JSON body into `T`, with our error body on failure.
fn parse_json<T: DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::invalid(
            "invalid_body",
            "body",
            format!("Request body is not valid JSON for this endpoint: {e}"),
            "请求内容格式错误",
        )
    })
}

/// The verified subject of the request's session token.
#[derive(Debug, Clone, Copy)]
pub struct Session(pub SubjectId);

impl FromRequestParts<Arc<App>> for Session {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, ApiError> {
        let token = token(&parts.headers).ok_or(ApiError::Unauthenticated("missing_token"))?;
        app.sessions.check(&token).map(Session)
    }
}

/// The token from `Authorization: Bearer` or the session cookie.
fn token(headers: &HeaderMap) -> Option<String> {
    if let Some(auth) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        && let Some(t) = auth.strip_prefix("Bearer ")
    {
        return Some(t.trim().to_owned());
    }
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn token_from_bearer_or_cookie() {
        let mut h = HeaderMap::new();
        assert_eq!(token(&h), None);
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=b; shouhu_session=tok; c=d"),
        );
        assert_eq!(token(&h).as_deref(), Some("tok"));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer bear"),
        );
        assert_eq!(token(&h).as_deref(), Some("bear"));
    }
}
