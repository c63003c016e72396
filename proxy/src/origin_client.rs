//! The `display` path's client to the origin: `GET {origin}/api/code` with the citizen's own
//! bearer token, over a keep-alive pool, under a total timeout per request.
//!
//! Each answer is classified once: a code, a refusal of the session (any 4xx but 429: the
//! origin works, the citizen gets its status and body), or a failure the breaker counts
//! (timeout, refused connection, 5xx or 429, or a body that is not a code).

use std::time::Duration;

use bytes::Bytes;
use shouhu_code::CodeView;

use crate::breaker::FailureKind;

/// The path of the code JSON on the origin.
pub const CODE_PATH: &str = "/api/code";

/// The client cannot be built.
#[derive(Debug, thiserror::Error)]
#[error("origin client for {url}: {reason}")]
pub struct OriginClientError {
    /// The origin's URL.
    pub url: String,
    /// Why.
    pub reason: String,
}

/// What the origin said about one citizen's code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OriginAnswer {
    /// The code.
    Code(CodeView),
    /// It refused the request (4xx other than 429): passed on to the citizen as is.
    Denied {
        /// The origin's status.
        status: u16,
        /// The origin's body.
        body: Bytes,
        /// The origin's `Content-Type`, if it is one we pass on.
        json: bool,
    },
}

/// The origin client; cheap to clone (one shared pool).
#[derive(Clone, Debug)]
pub struct OriginClient {
    http: reqwest::Client,
    code_url: reqwest::Url,
}

impl OriginClient {
    /// A client for the origin at `base` (`http://host:port`, an optional path prefix).
    ///
    /// # Errors
    /// A URL reqwest cannot use, or no TLS-free client can be built.
    pub fn new(
        base: &str,
        connect_timeout: Duration,
        idle_timeout: Duration,
        keepalive_pool: usize,
    ) -> Result<Self, OriginClientError> {
        let err = |reason: String| OriginClientError {
            url: base.to_owned(),
            reason,
        };
        let code_url = reqwest::Url::parse(&format!("{}{CODE_PATH}", base.trim_end_matches('/')))
            .map_err(|e| err(e.to_string()))?;
        let http = reqwest::Client::builder()
            .connect_timeout(connect_timeout)
            .pool_idle_timeout(idle_timeout)
            .pool_max_idle_per_host(keepalive_pool)
            .tcp_nodelay(true)
            .no_proxy()
            .http1_only()
            .build()
            .map_err(|e| err(e.to_string()))?;
        Ok(Self { http, code_url })
    }

    /// From the `[origin]` section.
    ///
    /// # Errors
    /// As [`OriginClient::new`]; also when `origin.url` is unset (validation forbids it).
    pub fn from_config(origin: &shouhu_config::proxy::Upstream) -> Result<Self, OriginClientError> {
        let url = origin.url.as_ref().ok_or_else(|| OriginClientError {
            url: String::new(),
            reason: "origin.url is not set".to_owned(),
        })?;
        Self::new(
            url.as_str(),
            origin.connect_timeout.into(),
            origin.idle_timeout.into(),
            origin.keepalive_pool,
        )
    }

    /// The URL asked.
    #[must_use]
    pub fn code_url(&self) -> &reqwest::Url {
        &self.code_url
    }

    /// Asks the origin for the code of the token's holder, giving up after `timeout`.
    ///
    /// # Errors
    /// The [`FailureKind`] the breaker records.
    pub async fn fetch_code(
        &self,
        token: &str,
        timeout: Duration,
    ) -> Result<OriginAnswer, FailureKind> {
        let sent = self
            .http
            .get(self.code_url.clone())
            .bearer_auth(token)
            .timeout(timeout)
            .send();
        let response = sent.await.map_err(classify)?;
        let status = response.status().as_u16();
        match status {
            200 => {
                let body = response.bytes().await.map_err(classify)?;
                serde_json::from_slice::<CodeView>(&body)
                    .map(OriginAnswer::Code)
                    .map_err(|_| FailureKind::Io)
            }
            429 | 500..=599 => Err(FailureKind::Status5xx),
            400..=499 => {
                let json = response
                    .headers()
                    .get(reqwest::header::CONTENT_TYPE)
                    .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
                let body = response.bytes().await.map_err(classify)?;
                Ok(OriginAnswer::Denied { status, body, json })
            }
            // 1xx, other 2xx and 3xx: not what the code API answers.
            _ => Err(FailureKind::Io),
        }
    }
}

fn classify(e: reqwest::Error) -> FailureKind {
    if e.is_timeout() {
        FailureKind::Timeout
    } else if e.is_connect() {
        FailureKind::Refused
    } else {
        FailureKind::Io
    }
}
