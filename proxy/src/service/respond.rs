//! Answers the proxy writes itself: the headers every local answer carries, and the bilingual
//! refusals (`{"error","message","message_zh"}` for the API, a small page for browsers).
//!
//! `response_filter` does not run for these (Pingora by design), so the common headers are
//! added here.

use axum::http::HeaderValue;
use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora::proxy::Session;

use super::request_id::REQUEST_ID_HEADER;
use crate::identity::AuthError;

/// `X-Shouhu-Source`.
pub const SOURCE_HEADER: &str = "x-shouhu-source";
/// `Cache-Control` of refusals and of anything computed per request.
pub const NO_STORE: &str = "no-store";
/// `application/json`.
pub const JSON: &str = "application/json";
/// HTML pages.
pub const HTML: &str = "text/html; charset=utf-8";

/// One answer written by the proxy.
#[derive(Clone, Debug)]
pub struct Local {
    /// HTTP status.
    pub status: u16,
    /// `Content-Type`.
    pub content_type: &'static str,
    /// The body.
    pub body: Bytes,
    /// `X-Shouhu-Source`.
    pub source: &'static str,
    /// `Cache-Control`.
    pub cache_control: &'static str,
    /// `Retry-After`, seconds.
    pub retry_after: Option<u32>,
}

/// Writes `answer` as the whole response, with the request's `X-Request-Id`.
///
/// # Errors
/// The client is gone or the headers are invalid (they are not: all are fixed strings).
pub async fn write(
    session: &mut Session,
    answer: Local,
    request_id: &HeaderValue,
) -> pingora::Result<()> {
    let mut header = ResponseHeader::build(answer.status, Some(7))?;
    // Empty only when the request never reached `request_filter`.
    if !request_id.is_empty() {
        header.insert_header(REQUEST_ID_HEADER, request_id)?;
    }
    header.insert_header("content-type", answer.content_type)?;
    header.insert_header("content-length", answer.body.len().to_string())?;
    header.insert_header("cache-control", answer.cache_control)?;
    header.insert_header(SOURCE_HEADER, answer.source)?;
    if let Some(secs) = answer.retry_after {
        header.insert_header("retry-after", secs.to_string())?;
    }
    let head_only = session.req_header().method == pingora::http::Method::HEAD;
    session
        .write_response_header(Box::new(header), head_only)
        .await?;
    if !head_only {
        session.write_response_body(Some(answer.body), true).await?;
    }
    Ok(())
}

/// A refusal: what went wrong, in English and Chinese.
#[derive(Clone, Copy, Debug)]
pub struct Refusal {
    /// HTTP status.
    pub status: u16,
    /// The machine-readable error.
    pub error: &'static str,
    /// English.
    pub message: &'static str,
    /// Chinese.
    pub message_zh: &'static str,
    /// `Retry-After`, seconds.
    pub retry_after: Option<u32>,
}

/// No valid session. The `error` code is the origin's for the same case.
pub fn unauthorized(e: AuthError) -> Refusal {
    let (message, message_zh) = match e {
        AuthError::Expired => (
            "Your session has expired. Please log in again.",
            "登录已过期，请重新登录。",
        ),
        AuthError::Missing => ("Please log in to see your code.", "请先登录后查看健康码。"),
        AuthError::Invalid => (
            "Your session is not valid. Please log in again.",
            "登录信息无效，请重新登录。",
        ),
    };
    Refusal {
        status: 401,
        error: e.code(),
        message,
        message_zh,
        retry_after: None,
    }
}

/// The origin cannot take the request now (breaker open, failure or timeout).
pub fn unavailable(retry_after: u32) -> Refusal {
    Refusal {
        status: 503,
        error: "unavailable",
        message: "The service is busy. Please try again shortly.",
        message_zh: "系统繁忙，请稍后再试。",
        retry_after: Some(retry_after),
    }
}

/// Past a rate limit.
pub fn too_many(retry_after: u32) -> Refusal {
    Refusal {
        status: 429,
        error: "rate_limited",
        message: "Too many requests. Please wait a moment and try again.",
        message_zh: "请求过于频繁，请稍候再试。",
        retry_after: Some(retry_after),
    }
}

/// The request cannot be read.
pub fn bad_request() -> Refusal {
    Refusal {
        status: 400,
        error: "bad_request",
        message: "The request could not be read.",
        message_zh: "请求无法识别。",
        retry_after: None,
    }
}

impl Refusal {
    /// The refusal as an answer: JSON for API paths, a page otherwise.
    #[must_use]
    pub fn answer(self, json: bool, source: &'static str) -> Local {
        let (content_type, body) = if json {
            let body = serde_json::json!({
                "error": self.error,
                "message": self.message,
                "message_zh": self.message_zh,
            });
            (JSON, Bytes::from(body.to_string()))
        } else {
            let page = format!(
                "<!doctype html><html lang=\"zh-CN\"><head><meta charset=\"utf-8\">\
                 <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
                 <title>{zh}</title></head><body style=\"font-family:sans-serif;\
                 text-align:center;padding:2em\"><h1>{zh}</h1><p>{en}</p></body></html>",
                zh = self.message_zh,
                en = self.message,
            );
            (HTML, Bytes::from(page))
        };
        Local {
            status: self.status,
            content_type,
            body,
            source,
            cache_control: NO_STORE,
            retry_after: self.retry_after,
        }
    }
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn refusals_are_bilingual_json_or_a_page() {
        let a = unavailable(3).answer(true, "proxy");
        assert_eq!(a.status, 503);
        assert_eq!(a.retry_after, Some(3));
        let v: serde_json::Value = serde_json::from_slice(&a.body).unwrap();
        assert_eq!(v["error"], "unavailable");
        assert!(v["message_zh"].as_str().unwrap().contains("繁忙"));
        let page = unauthorized(AuthError::Expired).answer(false, "proxy");
        assert_eq!(page.content_type, HTML);
        assert!(
            String::from_utf8(page.body.to_vec())
                .unwrap()
                .contains("登录已过期")
        );
    }
}
