//! `[origin]`: the code-issuing system the proxy guards.

use serde::{Deserialize, Serialize};

use crate::duration::Duration;
use crate::url::HttpUrl;
use crate::validate::Validator;

/// Default `origin.connect_timeout`: short, so a black-holed origin costs little.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_millis(250);
/// Default `origin.read_timeout`.
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(2);
/// Default `origin.idle_timeout`.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Default `origin.keepalive_pool`.
pub const DEFAULT_KEEPALIVE_POOL: usize = 128;
/// Default `origin.max_in_flight`.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 256;

/// `[origin]` of the proxy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Upstream {
    /// Base URL of the origin, `http://` only for now. Required, in the file or from
    /// `--origin`; `validate` guarantees it is set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<HttpUrl>,
    /// Time to open a connection. Default [`DEFAULT_CONNECT_TIMEOUT`].
    pub connect_timeout: Duration,
    /// Time to wait for response bytes. Default [`DEFAULT_READ_TIMEOUT`].
    pub read_timeout: Duration,
    /// An idle pooled connection is closed after this long. Default [`DEFAULT_IDLE_TIMEOUT`].
    pub idle_timeout: Duration,
    /// Idle connections kept per proxy; 0 disables keep-alive. Default
    /// [`DEFAULT_KEEPALIVE_POOL`].
    pub keepalive_pool: usize,
    /// Calls to the origin in flight at once, from pass-through and the display path; past
    /// it requests fail over or get a fast 503. 0: no limit. Default
    /// [`DEFAULT_MAX_IN_FLIGHT`].
    pub max_in_flight: usize,
}

impl Default for Upstream {
    fn default() -> Self {
        Self {
            url: None,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            read_timeout: DEFAULT_READ_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            keepalive_pool: DEFAULT_KEEPALIVE_POOL,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
        }
    }
}

impl Upstream {
    pub(crate) fn check(&self, v: &mut Validator<'_>) {
        match &self.url {
            None => v.error(
                "origin.url",
                "required (set it in the file or pass --origin)",
            ),
            Some(url) if url.is_https() => v.error(
                "origin.url",
                format_args!("only http:// is supported for now (got {:?})", url.as_str()),
            ),
            Some(_) => {}
        }
        v.positive("origin.connect_timeout", self.connect_timeout);
        v.positive("origin.read_timeout", self.read_timeout);
    }
}
