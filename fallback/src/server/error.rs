//! The issuer's refusals, in the origin's error shape:
//! `{"error": "<code>", "message": "<English>", "message_zh": "<中文>"}`. One table maps each
//! to its status and code.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use serde::Serialize;

use crate::session::SessionError;

/// A refusal on the issuer's API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiError {
    /// No, a bad, or an expired session token.
    Unauthenticated(SessionError),
    /// Ingest without the right bearer token.
    Forbidden,
    /// A malformed request; the text says what is expected.
    BadRequest(&'static str),
    /// The snapshot could not be written (Redis down): retry later.
    Unavailable,
    /// The issuer failed (no valid key, no randomness).
    Internal,
}

#[derive(Serialize)]
struct Body {
    error: &'static str,
    message: String,
    message_zh: String,
}

impl ApiError {
    /// Status and stable code.
    #[must_use]
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Self::Unauthenticated(e) => (StatusCode::UNAUTHORIZED, e.code()),
            Self::Forbidden => (StatusCode::FORBIDDEN, "forbidden"),
            Self::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            Self::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            Self::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }

    fn messages(&self) -> (String, String) {
        let (en, zh) = match self {
            Self::Unauthenticated(SessionError::Missing) => ("Please log in first", "请先登录"),
            Self::Unauthenticated(SessionError::Expired) => (
                "Your session has expired; please log in again",
                "登录已过期，请重新登录",
            ),
            Self::Unauthenticated(SessionError::Invalid) => (
                "Your session is not valid; please log in again",
                "登录凭证无效，请重新登录",
            ),
            Self::Forbidden => ("Not allowed", "无权访问"),
            Self::BadRequest(what) => (*what, "请求格式错误"),
            Self::Unavailable => (
                "The service is busy; please try again shortly",
                "服务繁忙，请稍后重试",
            ),
            Self::Internal => (
                "The service failed; please try again later",
                "服务异常，请稍后重试",
            ),
        };
        (en.to_owned(), zh.to_owned())
    }

    /// The refusal as a small HTML page, for `GET /code`.
    #[must_use]
    pub fn into_page(self) -> Response {
        let (status, _) = self.status_and_code();
        let (en, zh) = self.messages();
        let html = format!(
            "<!doctype html><html lang=\"zh-CN\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <title>健康码 Health code</title></head><body><p>{}</p><p>{}</p></body></html>",
            shouhu_code::page::escape_html(&zh),
            shouhu_code::page::escape_html(&en)
        );
        (status, Html(html)).into_response()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let (message, message_zh) = self.messages();
        let body = Body {
            error: code,
            message,
            message_zh,
        };
        (status, Json(body)).into_response()
    }
}
