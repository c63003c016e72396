//! The closed enums of admission: who is asking ([`Priority`]), why a request was refused
//! ([`ShedReason`]) and how a call to the origin ended ([`CallOutcome`]). Each has `ALL` and a
//! bounded `as_str` for metric labels.

use std::fmt;

use shouhu_config::proxy::RouteClass;

/// Who is asking for a call to the origin, highest priority first. A waiter of a higher
/// priority is always served before one of a lower priority, and pushes the lowest out of
/// a full queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Priority {
    /// A venue scanner with a queue of people behind it.
    Scan,
    /// `display` for a person who holds no valid code: they have nothing else to show.
    DisplayNoCode,
    /// A health declaration.
    Declare,
    /// Registration and login.
    Register,
    /// `display` for a person who still holds a valid code: the cache is as good an answer.
    DisplayRefresh,
    /// Everything else.
    Other,
}

impl Priority {
    /// How many there are.
    pub const COUNT: usize = 6;

    /// Every priority, highest first; a priority's position here is its [`Priority::index`].
    pub const ALL: [Self; Self::COUNT] = [
        Self::Scan,
        Self::DisplayNoCode,
        Self::Declare,
        Self::Register,
        Self::DisplayRefresh,
        Self::Other,
    ];

    /// The metric label (and the key in `[admission.max_wait]`).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Scan => "scan",
            Self::DisplayNoCode => "display_no_code",
            Self::Declare => "declare",
            Self::Register => "register",
            Self::DisplayRefresh => "display_refresh",
            Self::Other => "other",
        }
    }

    /// The position in [`Priority::ALL`]: 0 is the highest.
    #[must_use]
    pub fn index(self) -> usize {
        self as usize
    }

    /// The priority of a request of `class`; `holds_valid_code` matters for `display` only.
    /// Static assets that reach the origin count as `other`.
    #[must_use]
    pub fn for_request(class: RouteClass, holds_valid_code: bool) -> Self {
        match class {
            RouteClass::Scan => Self::Scan,
            RouteClass::Display if holds_valid_code => Self::DisplayRefresh,
            RouteClass::Display => Self::DisplayNoCode,
            RouteClass::Declare => Self::Declare,
            RouteClass::Register => Self::Register,
            RouteClass::Other | RouteClass::Static => Self::Other,
        }
    }
}

impl fmt::Display for Priority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a request got no call to the origin.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ShedReason {
    /// The queue was full of requests of the same or a higher priority, or a higher
    /// priority arrival pushed this one out of it.
    QueueFull,
    /// Its own deadline passed, or the estimated wait was longer than what is left of it.
    Deadline,
    /// It waited (or would have waited) longer than its priority's `max_wait`.
    MaxWait,
    /// It arrived at a standing queue and waited (or would have waited) longer than
    /// `codel_target`.
    Codel,
    /// No free call and the caller would not wait (`try_acquire`).
    Busy,
}

impl ShedReason {
    /// How many there are.
    pub const COUNT: usize = 5;

    /// Every reason; a reason's position here is its [`ShedReason::index`].
    pub const ALL: [Self; Self::COUNT] = [
        Self::QueueFull,
        Self::Deadline,
        Self::MaxWait,
        Self::Codel,
        Self::Busy,
    ];

    /// The metric label.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::QueueFull => "queue_full",
            Self::Deadline => "deadline",
            Self::MaxWait => "max_wait",
            Self::Codel => "codel",
            Self::Busy => "busy",
        }
    }

    /// The position in [`ShedReason::ALL`].
    #[must_use]
    pub fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for ShedReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a call to the origin ended, as [`Slot::record`](super::Slot::record) reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CallOutcome {
    /// The origin answered (any status the origin chose to give, 4xx included): the latency
    /// is a sample of how loaded it is.
    Ok,
    /// No answer in time: a loss; the limit backs off.
    Timeout,
    /// 5xx or 429: the origin says it is overloaded or broken; the limit backs off.
    Error,
    /// The call failed below HTTP (refused, reset, broken answer); the limit backs off.
    Failed,
    /// Finished, but says nothing about the origin (say the client left, or the call was
    /// cut short on purpose): frees the call, no sample.
    Ignored,
}

impl CallOutcome {
    /// Every outcome.
    pub const ALL: [Self; 5] = [
        Self::Ok,
        Self::Timeout,
        Self::Error,
        Self::Failed,
        Self::Ignored,
    ];

    /// The metric label.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Timeout => "timeout",
            Self::Error => "error",
            Self::Failed => "failed",
            Self::Ignored => "ignored",
        }
    }

    /// Whether this is a loss the limit backs off on.
    #[must_use]
    pub fn is_loss(self) -> bool {
        matches!(self, Self::Timeout | Self::Error | Self::Failed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexes_follow_all_and_labels_are_unique() {
        for (i, p) in Priority::ALL.iter().enumerate() {
            assert_eq!(p.index(), i);
        }
        for (i, r) in ShedReason::ALL.iter().enumerate() {
            assert_eq!(r.index(), i);
        }
        let mut labels: Vec<&str> = Priority::ALL.iter().map(|p| p.as_str()).collect();
        labels.extend(ShedReason::ALL.iter().map(|r| r.as_str()));
        let n = labels.len();
        labels.sort_unstable();
        labels.dedup();
        assert_eq!(labels.len(), n);
    }

    #[test]
    fn need_ranks_above_class_for_display() {
        let no_code = Priority::for_request(RouteClass::Display, false);
        let refresh = Priority::for_request(RouteClass::Display, true);
        assert_eq!(no_code, Priority::DisplayNoCode);
        assert_eq!(refresh, Priority::DisplayRefresh);
        assert!(Priority::Scan < no_code && no_code < Priority::Declare);
        assert!(Priority::Register < refresh && refresh < Priority::Other);
        assert_eq!(
            Priority::for_request(RouteClass::Static, false),
            Priority::Other
        );
    }
}
