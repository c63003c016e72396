//! Command-line flags that replace file values before validation, so that
//! `shouhu proxy --origin URL` works with or without a file.

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::url::{HttpUrl, RedisUrls};

/// Values from command-line flags. `None` leaves the file's (or the default) value.
///
/// | field | proxy | issuer | origin |
/// |---|---|---|---|
/// | `listen` | `server.listen` | `server.listen` | `server.listen` |
/// | `admin_listen` | `server.admin_listen` | `server.admin_listen` | `server.admin_listen` |
/// | `origin` | `origin.url` | ignored | ignored |
/// | `redis` | `fallback.redis` | `redis` | `redis` |
/// | `data_dir` | `data_dir` | `data_dir` | `data_dir` |
///
/// Parse flags with the types' `FromStr` (e.g. clap's `value_parser!(HttpUrl)` and
/// [`crate::parse_socket_addr`]) so flag errors read like file errors.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Overrides {
    /// `--listen ADDR`.
    pub listen: Option<SocketAddr>,
    /// `--admin-listen ADDR`.
    pub admin_listen: Option<SocketAddr>,
    /// `--origin URL` (proxy only).
    pub origin: Option<HttpUrl>,
    /// `--redis URL[,URL...]`.
    pub redis: Option<RedisUrls>,
    /// `--data-dir DIR`.
    pub data_dir: Option<PathBuf>,
}

impl Overrides {
    /// Applies the flags every server has: listen addresses, Redis and data folder. The
    /// proxy also takes `origin` itself.
    pub(crate) fn apply_common(
        &self,
        listen: &mut SocketAddr,
        admin_listen: &mut SocketAddr,
        redis: &mut Option<RedisUrls>,
        data_dir: &mut PathBuf,
    ) {
        set(listen, self.listen.as_ref());
        set(admin_listen, self.admin_listen.as_ref());
        if let Some(urls) = &self.redis {
            *redis = Some(urls.clone());
        }
        set(data_dir, self.data_dir.as_ref());
    }
}

/// Replaces `slot` with the override, if any.
pub(crate) fn set<T: Clone>(slot: &mut T, value: Option<&T>) {
    if let Some(value) = value {
        slot.clone_from(value);
    }
}
