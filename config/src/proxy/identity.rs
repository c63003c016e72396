//! `[identity]`: how the proxy learns who is asking, before any cache, issuer or origin.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::routes::{RoutePattern, default_anonymous};
use crate::validate::Validator;

/// Default `identity.cookie_name`.
pub const DEFAULT_COOKIE_NAME: &str = "shouhu_session";
/// Where the origin publishes its session-token public key, relative to `origin.url`; the
/// proxy fetches it from there when `identity.session_key_file` is not set.
pub const SESSION_KEY_WELL_KNOWN_PATH: &str = "/.well-known/shouhu/session-key";

/// `[identity]` of the proxy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Identity {
    /// The origin's session-token public key (PEM or raw Ed25519). Default: fetched from
    /// `origin.url` + [`SESSION_KEY_WELL_KNOWN_PATH`] at start-up.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_key_file: Option<PathBuf>,
    /// The cookie that carries the session token. Default [`DEFAULT_COOKIE_NAME`].
    pub cookie_name: String,
    /// Paths that need no session token. Default
    /// [`DEFAULT_ANONYMOUS`](super::routes::DEFAULT_ANONYMOUS).
    pub anonymous: Vec<RoutePattern>,
}

impl Default for Identity {
    fn default() -> Self {
        Self {
            session_key_file: None,
            cookie_name: DEFAULT_COOKIE_NAME.to_owned(),
            anonymous: default_anonymous(),
        }
    }
}

/// RFC 6265 cookie-name characters (an RFC 7230 token).
fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)
}

impl Identity {
    pub(crate) fn check(&self, v: &mut Validator<'_>) {
        if self.cookie_name.is_empty() || !self.cookie_name.chars().all(is_token_char) {
            v.error(
                "identity.cookie_name",
                format_args!(
                    "invalid cookie name {:?} (expected letters, digits and !#$%&'*+-.^_`|~)",
                    self.cookie_name
                ),
            );
        }
    }
}
