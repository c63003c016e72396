//! How a request through the gateway ended: one closed enum, and one table mapping each
//! ending to its metric label (`outcome` of `shouhu_requests_total`).

use crate::outcome::Outcome;

/// How one request ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Ending {
    /// A `display` answer written by the display path, with how it ended.
    Display(Outcome),
    /// Passed through to the origin, which answered (with any status).
    Proxied,
    /// The origin failed (refused, reset, timed out): 503 + `Retry-After`.
    OriginFailed,
    /// The breaker refused to call the origin: 503 + `Retry-After`, at once.
    Shed,
    /// No valid session: 401 before any cache, issuer or origin.
    Unauthorized,
    /// A scanned code verified at the edge with the trust list.
    EdgeVerified,
    /// Answered by the proxy itself (the trust list).
    Local,
    /// A request the proxy could not read (a scan without a code).
    BadRequest,
    /// The client went away or the answer could not be written.
    Aborted,
    /// A declaration stored in the write journal while the origin could not take it: 202.
    Journalled,
    /// A `register` request sent to the waiting room (a page or JSON with its place).
    WaitingRoom,
    /// Past a rate limit (client address, subject or global): 429 + `Retry-After`.
    RateLimited,
}

impl Ending {
    /// Every ending that is not a `display` outcome, in label order after those.
    const OTHERS: [Self; 11] = [
        Self::Proxied,
        Self::OriginFailed,
        Self::Shed,
        Self::Unauthorized,
        Self::EdgeVerified,
        Self::Local,
        Self::BadRequest,
        Self::Aborted,
        Self::Journalled,
        Self::WaitingRoom,
        Self::RateLimited,
    ];

    /// Every ending, in label order.
    pub fn all() -> impl Iterator<Item = Self> {
        Outcome::ALL
            .iter()
            .map(|o| Self::Display(*o))
            .chain(Self::OTHERS)
    }

    /// Every label, for metric registration.
    pub fn labels() -> impl Iterator<Item = &'static str> {
        Self::all().map(Self::label)
    }

    /// Number of distinct labels.
    #[must_use]
    pub fn count() -> usize {
        Outcome::ALL.len() + Self::OTHERS.len()
    }

    /// A dense index, `0..Ending::count()`, in the order of [`Ending::labels`].
    #[must_use]
    pub fn index(self) -> usize {
        match self {
            Self::Display(outcome) => Outcome::ALL.iter().position(|o| *o == outcome).unwrap_or(0),
            other => {
                Outcome::ALL.len() + Self::OTHERS.iter().position(|e| *e == other).unwrap_or(0)
            }
        }
    }

    /// The bounded metric label.
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            Self::Display(outcome) => outcome.as_str(),
            Self::Proxied => "proxied",
            Self::OriginFailed => "origin_failed",
            Self::Shed => "shed",
            Self::Unauthorized => "unauthorized",
            Self::EdgeVerified => "edge_verified",
            Self::Local => "local",
            Self::BadRequest => "bad_request",
            Self::Aborted => "aborted",
            Self::Journalled => "journalled",
            Self::WaitingRoom => "waiting_room",
            Self::RateLimited => "rate_limited",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_unique() {
        let mut labels: Vec<&str> = Ending::labels().collect();
        let n = labels.len();
        labels.sort_unstable();
        labels.dedup();
        assert_eq!(labels.len(), n);
        assert_eq!(n, Ending::count());
    }

    #[test]
    fn indexes_follow_the_labels() {
        for (i, (ending, label)) in Ending::all().zip(Ending::labels()).enumerate() {
            assert_eq!(ending.index(), i);
            assert_eq!(ending.label(), label);
        }
    }
}
