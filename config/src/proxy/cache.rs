//! `[cache]`: the per-user cache of code pages (keyed by verified subject).

use std::num::NonZeroU64;

use serde::{Deserialize, Serialize};

use crate::byte_size::ByteSize;
use crate::duration::Duration;
use crate::validate::Validator;

/// Default `cache.ttl`.
pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(30);
/// Default `cache.max_stale`.
pub const DEFAULT_CACHE_MAX_STALE: Duration = Duration::from_mins(5);
/// Default `cache.max_entries`.
pub const DEFAULT_CACHE_MAX_ENTRIES: NonZeroU64 = match NonZeroU64::new(1_000_000) {
    Some(n) => n,
    // Evaluated at compile time: a zero here fails the build, never a run.
    None => panic!("zero"),
};
/// Default `cache.max_bytes`.
pub const DEFAULT_CACHE_MAX_BYTES: ByteSize = ByteSize::mib(256);
/// Smallest `cache.max_bytes` accepted: less cannot hold one page.
pub const MIN_CACHE_MAX_BYTES: ByteSize = ByteSize::kib(1);

/// `[cache]` of the proxy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Cache {
    /// A cached page is fresh, served without asking the origin, this long. Default
    /// [`DEFAULT_CACHE_TTL`].
    pub ttl: Duration,
    /// When the origin cannot answer, a stale page is still served up to this age (and
    /// never past its code's expiry). At least `ttl`. Default [`DEFAULT_CACHE_MAX_STALE`].
    pub max_stale: Duration,
    /// Entries kept. Default [`DEFAULT_CACHE_MAX_ENTRIES`].
    #[serde(deserialize_with = "crate::number::at_least_one")]
    pub max_entries: NonZeroU64,
    /// Memory for entries. Default [`DEFAULT_CACHE_MAX_BYTES`].
    pub max_bytes: ByteSize,
}

impl Default for Cache {
    fn default() -> Self {
        Self {
            ttl: DEFAULT_CACHE_TTL,
            max_stale: DEFAULT_CACHE_MAX_STALE,
            max_entries: DEFAULT_CACHE_MAX_ENTRIES,
            max_bytes: DEFAULT_CACHE_MAX_BYTES,
        }
    }
}

impl Cache {
    pub(crate) fn check(&self, v: &mut Validator<'_>) {
        v.positive("cache.ttl", self.ttl);
        if self.max_stale < self.ttl {
            v.error_related(
                "cache.max_stale",
                &["cache.ttl"],
                format_args!(
                    "must be >= cache.ttl = {} (got {})",
                    self.ttl, self.max_stale
                ),
            );
        }
        if self.max_bytes < MIN_CACHE_MAX_BYTES {
            v.error(
                "cache.max_bytes",
                format_args!("must be >= {MIN_CACHE_MAX_BYTES} (got {})", self.max_bytes),
            );
        }
    }
}
