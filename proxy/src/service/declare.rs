//! `declare` while the origin cannot take it (breaker open, limit reached, connection
//! refused): the declaration is stored in the write journal and answered 202 with the
//! receipt; the replayer sends it to the origin, with the citizen's own session and
//! `Idempotency-Key`, once the origin is healthy again, so it is applied exactly once (see
//! `shouhu_fallback::journal`). A declaration the journal cannot take is refused with the
//! origin's own error codes (400, 413) or 503 + `Retry-After` when Redis is down: nothing is
//! ever accepted that is not stored.

use bytes::Bytes;
use pingora::proxy::Session;
use shouhu_code::SubjectId;
use shouhu_code::time::{format_rfc3339, now};
use shouhu_fallback::journal::{Declaration, Journal, JournalError, idempotency_key};

use super::respond::{JSON, Local, NO_STORE};
use crate::log_throttle::LogThrottle;

/// `X-Shouhu-Source` of a journalled declaration.
pub const SOURCE_JOURNAL: &str = "journal";

/// How a journalling attempt ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Journalled {
    /// Stored: 202.
    Accepted,
    /// The request cannot be journalled as sent (400, 413).
    Refused,
    /// Redis cannot take it now: 503.
    Unavailable,
}

/// Reads the declaration, journals it and returns the answer to write.
///
/// # Errors
/// The client went away while sending the body.
pub async fn journal(
    session: &mut Session,
    journal: &Journal,
    max_body: usize,
    subject: SubjectId,
    token: &str,
    retry_after: u32,
) -> pingora::Result<(Local, Journalled)> {
    let req = session.req_header();
    let header = |name: &str| {
        req.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let key = header("idempotency-key");
    // A session from the cookie is replayed as a bearer token: the origin takes either.
    let authorization = header("authorization").unwrap_or_else(|| format!("Bearer {token}"));
    let content_type = header("content-type").unwrap_or_else(|| "application/json".to_owned());
    let Some(key) = key.as_deref().and_then(idempotency_key).map(str::to_owned) else {
        return Ok((missing_key(), Journalled::Refused));
    };
    let Some(body) = super::scan::read_body(session, max_body).await? else {
        return Ok((too_large(max_body), Journalled::Refused));
    };
    let declaration = Declaration {
        idempotency_key: key.clone(),
        subject,
        authorization,
        content_type,
        body,
    };
    Ok(match journal.append(&declaration, now()).await {
        Ok(receipt) => {
            let body = serde_json::json!({
                "accepted": true,
                "journalled": true,
                "receipt": receipt.receipt,
                "accepted_at": format_rfc3339(receipt.accepted_at),
                "idempotency_key": key,
                "message": "Your declaration is saved and will be submitted as soon as the \
                            service recovers. There is no need to send it again.",
                "message_zh": "您的申报已保存，系统恢复后将自动提交，无需重复提交。",
            });
            (
                Local {
                    status: 202,
                    content_type: JSON,
                    body: Bytes::from(body.to_string()),
                    source: SOURCE_JOURNAL,
                    cache_control: NO_STORE,
                    retry_after: None,
                },
                Journalled::Accepted,
            )
        }
        Err(JournalError::Invalid(why)) => (
            error(
                400,
                "invalid_declaration",
                None,
                &why,
                "申报内容无法保存。",
                None,
            ),
            Journalled::Refused,
        ),
        Err(e) => {
            // Per request while Redis is down: counted as `shed`, logged once in a while.
            static UNAVAILABLE: LogThrottle = LogThrottle::every_default();
            if let Some(suppressed) = UNAVAILABLE.admit() {
                tracing::warn!(
                    error = %e,
                    suppressed,
                    "journal unavailable: declaration refused with 503"
                );
            }
            (
                error(
                    503,
                    "unavailable",
                    None,
                    "The service is busy. Please try again shortly.",
                    "系统繁忙，请稍后再试。",
                    Some(retry_after),
                ),
                Journalled::Unavailable,
            )
        }
    })
}

/// The origin's answer to a declaration without a usable `Idempotency-Key`.
fn missing_key() -> Local {
    let max = shouhu_fallback::journal::MAX_IDEMPOTENCY_KEY_CHARS;
    error(
        400,
        "missing_idempotency_key",
        Some("Idempotency-Key"),
        &format!("An Idempotency-Key header of 1 to {max} characters is required"),
        &format!("请求需带有1至{max}个字符的 Idempotency-Key 请求头"),
        None,
    )
}

fn too_large(max: usize) -> Local {
    error(
        413,
        "body_too_large",
        None,
        &format!("A declaration may be at most {max} bytes"),
        &format!("申报内容不能超过{max}字节"),
        None,
    )
}

fn error(
    status: u16,
    code: &str,
    field: Option<&str>,
    message: &str,
    message_zh: &str,
    retry_after: Option<u32>,
) -> Local {
    let mut body = serde_json::json!({
        "error": code,
        "message": message,
        "message_zh": message_zh,
    });
    if let Some(field) = field {
        body["field"] = field.into();
    }
    Local {
        status,
        content_type: JSON,
        body: Bytes::from(body.to_string()),
        source: super::SOURCE_PROXY,
        cache_control: NO_STORE,
        retry_after,
    }
}
