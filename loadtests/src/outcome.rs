//! The closed set of ways one attempt can end, as the user (and the oracle) sees it: one enum,
//! one table of labels, so every report, histogram and metric uses the same classes
//! (overload.md §9.7, issue 7).

/// How one attempt ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Outcome {
    /// A valid code of the origin, at most the fresh age old.
    Fresh,
    /// A valid code of the origin, older than the fresh age (served from a cache).
    StaleOk,
    /// A valid code signed by the fallback issuer, with a real colour.
    Fallback,
    /// "Ask staff to check manually": an `unknown` colour, or the proxy's no-code answer.
    Unknown,
    /// Refused for load: 429 or 503.
    Busy,
    /// Any other failure: another status, a connection error, a broken body.
    Error,
    /// No answer within the client timeout.
    Timeout,
    /// A lie: another person's code, a code that does not verify, or greener than the truth.
    /// Must be 0.
    Wrong,
}

impl Outcome {
    /// Every class, in report order.
    pub const ALL: [Self; 8] = [
        Self::Fresh,
        Self::StaleOk,
        Self::Fallback,
        Self::Unknown,
        Self::Busy,
        Self::Error,
        Self::Timeout,
        Self::Wrong,
    ];

    /// The label in reports and metrics.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Fresh => "FRESH",
            Self::StaleOk => "STALE_OK",
            Self::Fallback => "FALLBACK",
            Self::Unknown => "UNKNOWN",
            Self::Busy => "BUSY",
            Self::Error => "ERROR",
            Self::Timeout => "TIMEOUT",
            Self::Wrong => "WRONG",
        }
    }

    /// The position in [`Outcome::ALL`], for per-class arrays.
    #[must_use]
    pub fn index(self) -> usize {
        self as usize
    }

    /// Whether the user holds a valid code they can show (goodput counts these).
    #[must_use]
    pub fn is_valid_code(self) -> bool {
        matches!(self, Self::Fresh | Self::StaleOk | Self::Fallback)
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_distinct_and_indices_match_all() {
        for (i, o) in Outcome::ALL.iter().enumerate() {
            assert_eq!(o.index(), i);
            assert_eq!(o.to_string(), o.as_str());
        }
        let mut labels: Vec<_> = Outcome::ALL.iter().map(|o| o.as_str()).collect();
        labels.sort_unstable();
        labels.dedup();
        assert_eq!(labels.len(), Outcome::ALL.len());
    }
}
