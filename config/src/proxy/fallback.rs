//! `[fallback]`: the in-process fallback issuer, which signs codes from the Redis snapshot
//! when neither the origin nor the cache can answer. The standalone `shouhu issuer` takes the
//! same settings at the top level of its file.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::duration::Duration;
use crate::region::Region;
use crate::secret::SecretRef;
use crate::url::RedisUrls;
use crate::validate::Validator;

/// Default `max_snapshot_age`: past it, the fallback issues no green.
pub const DEFAULT_MAX_SNAPSHOT_AGE: Duration = Duration::from_mins(15);
/// Default `code_ttl`: codes expire in minutes so that screenshots die.
pub const DEFAULT_CODE_TTL: Duration = Duration::from_mins(5);
/// Upper bound for `code_ttl`.
pub const MAX_CODE_TTL: Duration = Duration::from_hours(1);
/// Key directory below `data_dir` when `key_dir` is not set.
pub const DEFAULT_KEY_DIR_NAME: &str = "keys";

/// `[fallback]` of the proxy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Fallback {
    /// The snapshot's Redis: one URL, or several for Cluster seed nodes. Default: none, and
    /// the fallback issuer is off (display falls back to cache, then the "unknown" page).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis: Option<RedisUrls>,
    /// The Redis password, from a file or the environment. Default: none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis_password: Option<SecretRef>,
    /// Directory of the fallback signing keys. Default: `{data_dir}/keys`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_dir: Option<PathBuf>,
    /// Region in the claims of fallback codes. Default
    /// [`DEFAULT_REGION`](crate::DEFAULT_REGION).
    pub region: Region,
    /// Snapshot watermark age beyond which no green is issued. Default
    /// [`DEFAULT_MAX_SNAPSHOT_AGE`].
    pub max_snapshot_age: Duration,
    /// Lifetime of a fallback code, at most [`MAX_CODE_TTL`]. Default [`DEFAULT_CODE_TTL`].
    pub code_ttl: Duration,
}

impl Default for Fallback {
    fn default() -> Self {
        Self {
            redis: None,
            redis_password: None,
            key_dir: None,
            region: Region::default(),
            max_snapshot_age: DEFAULT_MAX_SNAPSHOT_AGE,
            code_ttl: DEFAULT_CODE_TTL,
        }
    }
}

impl Fallback {
    pub(crate) fn check(&self, v: &mut Validator<'_>) {
        check_issuing(v, "fallback.", self.code_ttl, self.max_snapshot_age);
        if self.redis.is_none() && self.redis_password.is_some() {
            v.error_related(
                "fallback.redis_password",
                &["fallback.redis"],
                "has no effect without fallback.redis",
            );
        }
    }
}

/// Rules shared with the standalone issuer; `prefix` is `"fallback."` or `""`.
pub(crate) fn check_issuing(
    v: &mut Validator<'_>,
    prefix: &str,
    code_ttl: Duration,
    max_snapshot_age: Duration,
) {
    v.positive_at_most(&format!("{prefix}code_ttl"), code_ttl, MAX_CODE_TTL);
    v.positive(&format!("{prefix}max_snapshot_age"), max_snapshot_age);
}
