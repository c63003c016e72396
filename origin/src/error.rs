//! The one closed set of refusals on the citizen API. Each maps, in one table
//! ([`ApiError::status`] and [`ApiError::code`]), to its HTTP status and stable error code,
//! and carries an English and a Chinese message. Bodies are
//! `{"error": "<code>", "message": "<English>", "message_zh": "<中文>"}`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// A refusal or failure on the citizen API.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// A request field is invalid: which field, and why in both languages.
    #[error("invalid {field}: {message}")]
    Invalid {
        /// Stable error code, e.g. `invalid_id_number`.
        code: &'static str,
        /// The field name.
        field: &'static str,
        /// English.
        message: String,
        /// Chinese.
        message_zh: String,
    },
    /// A declaration that cannot be true (e.g. temperature out of range): 422.
    #[error("unprocessable declaration: {message}")]
    Unprocessable {
        /// English.
        message: String,
        /// Chinese.
        message_zh: String,
    },
    /// No, a bad, or an expired session token.
    #[error("not logged in: {0}")]
    Unauthenticated(&'static str),
    /// Login with an ID number and phone that are not registered together.
    #[error("no registration matches this ID number and phone")]
    UnknownPerson,
    /// A token for a subject that is not registered here.
    #[error("subject not registered")]
    NotRegistered,
    /// The same idempotency key was used for a different request.
    #[error("idempotency key reused for a different declaration")]
    IdempotencyConflict,
    /// Something failed inside the origin.
    #[error("internal error: {0}")]
    Internal(String),
}

#[derive(Serialize)]
struct Body<'a> {
    error: &'a str,
    message: String,
    message_zh: String,
}

impl ApiError {
    /// The HTTP status.
    #[must_use]
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Invalid { .. } => StatusCode::BAD_REQUEST,
            Self::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Unauthenticated(_) | Self::UnknownPerson => StatusCode::UNAUTHORIZED,
            Self::NotRegistered => StatusCode::FORBIDDEN,
            Self::IdempotencyConflict => StatusCode::CONFLICT,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable error code in the body.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            Self::Invalid { code, .. } => code,
            Self::Unprocessable { .. } => "invalid_declaration",
            Self::Unauthenticated(reason) => reason,
            Self::UnknownPerson => "unknown_person",
            Self::NotRegistered => "not_registered",
            Self::IdempotencyConflict => "idempotency_conflict",
            Self::Internal(_) => "internal",
        }
    }

    fn messages(&self) -> (String, String) {
        match self {
            Self::Invalid {
                message,
                message_zh,
                ..
            }
            | Self::Unprocessable {
                message,
                message_zh,
            } => (message.clone(), message_zh.clone()),
            Self::Unauthenticated("expired_token") => (
                "Your session has expired; please log in again".to_owned(),
                "登录已过期，请重新登录".to_owned(),
            ),
            Self::Unauthenticated("missing_token") => {
                ("Please log in first".to_owned(), "请先登录".to_owned())
            }
            Self::Unauthenticated(_) => (
                "Your session is not valid; please log in again".to_owned(),
                "登录凭证无效，请重新登录".to_owned(),
            ),
            Self::UnknownPerson => (
                "No registration matches this ID number and phone".to_owned(),
                "未找到与该证件号码和手机号匹配的登记信息".to_owned(),
            ),
            Self::NotRegistered => (
                "This account is not registered".to_owned(),
                "该账户尚未登记".to_owned(),
            ),
            Self::IdempotencyConflict => (
                "This Idempotency-Key was already used for a different declaration".to_owned(),
                "该幂等键已用于另一份申报".to_owned(),
            ),
            Self::Internal(_) => (
                "The service failed; please try again later".to_owned(),
                "服务异常，请稍后重试".to_owned(),
            ),
        }
    }

    /// A bad request field.
    pub(crate) fn invalid(
        code: &'static str,
        field: &'static str,
        message: impl Into<String>,
        message_zh: impl Into<String>,
    ) -> Self {
        Self::Invalid {
            code,
            field,
            message: message.into(),
            message_zh: message_zh.into(),
        }
    }

    /// An internal failure, logged once here rather than by every caller.
    pub(crate) fn internal(what: impl std::fmt::Display) -> Self {
        tracing::error!(error = %what, "request failed");
        Self::Internal(what.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (message, message_zh) = self.messages();
        let body = Body {
            error: self.code(),
            message,
            message_zh,
        };
        (self.status(), Json(body)).into_response()
    }
}
