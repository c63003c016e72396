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
}

impl Ending {
    /// Every label, for metric registration.
    pub fn labels() -> impl Iterator<Item = &'static str> {
        Outcome::ALL
            .iter()
            .map(|o| Self::Display(*o).label())
            .chain(
                [
                    Self::Proxied,
                    Self::OriginFailed,
                    Self::Shed,
                    Self::Unauthorized,
                    Self::EdgeVerified,
                    Self::Local,
                    Self::BadRequest,
                    Self::Aborted,
                ]
                .map(Self::label),
            )
    }

    /// Number of distinct labels.
    #[must_use]
    pub fn count() -> usize {
        Outcome::ALL.len() + 8
    }

    /// A dense index, `0..Ending::count()`, in the order of [`Ending::labels`].
    #[must_use]
    pub fn index(self) -> usize {
        let d = Outcome::ALL.len();
        match self {
            Self::Display(outcome) => Outcome::ALL.iter().position(|o| *o == outcome).unwrap_or(0),
            Self::Proxied => d,
            Self::OriginFailed => d + 1,
            Self::Shed => d + 2,
            Self::Unauthorized => d + 3,
            Self::EdgeVerified => d + 4,
            Self::Local => d + 5,
            Self::BadRequest => d + 6,
            Self::Aborted => d + 7,
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
        let all = Outcome::ALL.iter().map(|o| Ending::Display(*o)).chain([
            Ending::Proxied,
            Ending::OriginFailed,
            Ending::Shed,
            Ending::Unauthorized,
            Ending::EdgeVerified,
            Ending::Local,
            Ending::BadRequest,
            Ending::Aborted,
        ]);
        for (i, (ending, label)) in all.zip(Ending::labels()).enumerate() {
            assert_eq!(ending.index(), i);
            assert_eq!(ending.label(), label);
        }
    }
}
