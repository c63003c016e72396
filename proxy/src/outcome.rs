//! How a `display` request ended: one closed enum, and one table that maps each outcome to
//! its HTTP status, its `X-Shouhu-Source`, its `Cache-Control` and its metric label.

/// Where the code a citizen got came from: the value of `X-Shouhu-Source`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ServedFrom {
    /// Fetched from the origin for this request.
    Origin,
    /// An origin code from the per-user cache.
    Cache,
    /// Signed by the in-process fallback issuer from the snapshot.
    Fallback,
    /// No code: the "please ask staff to check manually" answer.
    Unknown,
}

impl ServedFrom {
    /// Every value, for metric registration.
    pub const ALL: &'static [Self] = &[Self::Origin, Self::Cache, Self::Fallback, Self::Unknown];

    /// The header value and metric label.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Origin => "origin",
            Self::Cache => "cache",
            Self::Fallback => "fallback",
            Self::Unknown => "unknown",
        }
    }
}

/// `Cache-Control` of codes the citizen's browser may keep briefly (the origin's own value).
pub const CACHE_CONTROL_CODE: &str = "private, max-age=30";
/// `Cache-Control` of fallback codes and refusals: never kept anywhere.
pub const CACHE_CONTROL_NO_STORE: &str = "no-store";

/// How one `display` request ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The origin answered this request (a miss, or an unusable cached code).
    Origin,
    /// A fresh cached code.
    CacheFresh,
    /// A stale but still valid cached code, while a background refresh runs.
    CacheStale,
    /// A still-valid cached code because the origin failed or the breaker is open.
    CacheFailover,
    /// A fallback code signed from the snapshot: green, yellow or red.
    Fallback,
    /// A signed fallback code whose colour is `unknown` (subject not in the snapshot, Redis
    /// down, or evidence too old for green): the page asks staff to check manually.
    FallbackUnknown,
    /// The origin refused the session (401/403): passed through, not an origin failure.
    OriginDenied,
    /// No origin, no usable cache, no fallback issuer: 503, ask staff to check manually.
    Unavailable,
}

impl Outcome {
    /// Every value, for metric registration.
    pub const ALL: &'static [Self] = &[
        Self::Origin,
        Self::CacheFresh,
        Self::CacheStale,
        Self::CacheFailover,
        Self::Fallback,
        Self::FallbackUnknown,
        Self::OriginDenied,
        Self::Unavailable,
    ];

    /// The bounded metric label.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        self.row().label
    }

    /// Where the answer came from.
    #[must_use]
    pub fn served_from(self) -> ServedFrom {
        self.row().source
    }

    /// `Cache-Control` of the answer.
    #[must_use]
    pub fn cache_control(self) -> &'static str {
        self.row().cache_control
    }

    /// The table: one row per outcome.
    fn row(self) -> Row {
        use ServedFrom as S;
        let (label, source, cache_control) = match self {
            Self::Origin => ("origin", S::Origin, CACHE_CONTROL_CODE),
            Self::CacheFresh => ("cache_fresh", S::Cache, CACHE_CONTROL_CODE),
            Self::CacheStale => ("cache_stale", S::Cache, CACHE_CONTROL_CODE),
            Self::CacheFailover => ("cache_failover", S::Cache, CACHE_CONTROL_NO_STORE),
            Self::Fallback => ("fallback", S::Fallback, CACHE_CONTROL_NO_STORE),
            Self::FallbackUnknown => ("fallback_unknown", S::Unknown, CACHE_CONTROL_NO_STORE),
            Self::OriginDenied => ("origin_denied", S::Origin, CACHE_CONTROL_NO_STORE),
            Self::Unavailable => ("unavailable", S::Unknown, CACHE_CONTROL_NO_STORE),
        };
        Row {
            label,
            source,
            cache_control,
        }
    }
}

struct Row {
    label: &'static str,
    source: ServedFrom,
    cache_control: &'static str,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_unique_and_only_codes_we_may_share_are_cacheable() {
        let mut labels: Vec<&str> = Outcome::ALL.iter().map(|o| o.as_str()).collect();
        labels.sort_unstable();
        labels.dedup();
        assert_eq!(labels.len(), Outcome::ALL.len());
        for o in Outcome::ALL {
            let cacheable = o.cache_control() != CACHE_CONTROL_NO_STORE;
            let from_origin_now = matches!(
                o,
                Outcome::Origin | Outcome::CacheFresh | Outcome::CacheStale
            );
            assert_eq!(cacheable, from_origin_now, "{o:?}");
        }
    }
}
