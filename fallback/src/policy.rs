//! The fallback colour rule: which colour a fallback code may show, from the snapshot and
//! whatever newer colour the caller knows. It never evaluates health rules and never makes
//! anyone greener than the newest thing known.
//!
//! Inputs: the snapshot record and watermark (if Redis answered), and optionally a colour the
//! caller knows with its as-of (e.g. the colour of a code the origin issued and the proxy
//! cached). Steps, in order:
//!
//! 1. **Newest wins.** Of the snapshot record and the caller's colour, take the one with the
//!    newer as-of. On equal as-of take the stricter colour (green < unknown < yellow < red).
//! 2. **Missing is unknown.** With neither (subject not in the snapshot, or Redis down and
//!    nothing known) the code is `unknown`: "please ask staff to check".
//! 3. **Stale is not green.** Green needs fresh evidence: for a snapshot record, the watermark
//!    (the snapshot is complete up to it) must be younger than `max_snapshot_age`; for the
//!    caller's colour, its own as-of must be. Otherwise green becomes `unknown`. Yellow and
//!    red always show: showing them never lets anyone through a gate.
//! 4. **Expiry.** `now + code_ttl`, and for green also no later than the evidence time plus
//!    `max_snapshot_age`, so a green code never outlives the freshness it was issued on.
//!
//! | snapshot record | watermark age | caller's colour | code shows |
//! |---|---|---|---|
//! | green @t | < max | none | green |
//! | green @t | ≥ max or none | none | unknown (stale), even if t itself is recent |
//! | yellow/red @t | any | none | yellow/red |
//! | none | any | none | unknown (missing) |
//! | green @t1 | < max | red @t2 > t1 | red |
//! | red @t1 | any | green @t2 > t1, t2 fresh | green |
//! | red @t | any | green @t (tie) | red (stricter) |
//! | Redis down | — | red @t | red |
//! | Redis down | — | green @t, fresh | green |
//! | Redis down | — | none | unknown (missing) |
//!
//! The code's as-of is the time its colour is known to have been current. For a snapshot
//! record that is the watermark: the snapshot is complete up to it, so the record still held
//! then (and never earlier than the record's own as-of). For the caller's colour it is that
//! colour's as-of. An unknown code for a missing subject carries the watermark (or the issue
//! time). Scanners that refuse old fallback data (`max_fallback_age`) therefore judge the
//! snapshot's freshness, not how long ago a person's colour last changed.

use std::time::Duration;

use shouhu_code::Colour;
use shouhu_code::time::UnixTime;

use crate::snapshot::Lookup;

/// The issuer's limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    /// Lifetime of a code.
    pub code_ttl: Duration,
    /// Age of evidence beyond which no green is issued.
    pub max_snapshot_age: Duration,
}

/// A colour the caller knows from elsewhere (e.g. a cached origin code), with its as-of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Known {
    /// The colour.
    pub colour: Colour,
    /// When it was computed.
    pub as_of: UnixTime,
}

/// Why the code shows the colour it shows; also a bounded metric label.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Basis {
    /// The snapshot record's colour.
    Snapshot,
    /// The caller's newer (or as new and stricter) colour.
    Known,
    /// Unknown: the subject is not in the snapshot and nothing else is known.
    Missing,
    /// Unknown: the evidence for green is older than `max_snapshot_age`.
    Stale,
}

impl Basis {
    /// A stable snake_case label.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Snapshot => "snapshot",
            Self::Known => "known",
            Self::Missing => "missing",
            Self::Stale => "stale",
        }
    }
}

/// The colour a fallback code shows, and what else goes into it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// The colour.
    pub colour: Colour,
    /// Why.
    pub basis: Basis,
    /// The code's as-of.
    pub as_of: UnixTime,
    /// The code's expiry.
    pub expires_at: UnixTime,
}

/// Applies the rule of the module docs. `lookup` is `None` when the snapshot could not be
/// read. The result's `as_of` is never after `now`, and its expiry is after `now`.
#[must_use]
pub fn decide(
    lookup: Option<&Lookup>,
    known: Option<Known>,
    now: UnixTime,
    policy: &Policy,
) -> Decision {
    let ttl_end = now.saturating_add(policy.code_ttl.as_secs().max(1));
    let max_age = policy.max_snapshot_age.as_secs();
    let watermark = lookup.and_then(|l| l.watermark);
    // Each candidate: colour, as-of, the time its evidence is fresh as of, and its basis.
    let from_snapshot = lookup.and_then(|l| l.record.as_ref()).map(|r| {
        // Only the watermark proves freshness: a lone recent record shows the publisher
        // reached this subject, not that it is delivering every change.
        (r.colour, r.as_of, watermark, Basis::Snapshot)
    });
    let from_caller = known.map(|k| (k.colour, k.as_of, Some(k.as_of), Basis::Known));
    let chosen = match (from_snapshot, from_caller) {
        (Some(s), Some(k)) => {
            let caller_wins = k.1 > s.1 || (k.1 == s.1 && k.0.strictness() > s.0.strictness());
            Some(if caller_wins { k } else { s })
        }
        (s, k) => s.or(k),
    };
    let Some((colour, as_of, fresh_as_of, basis)) = chosen else {
        return Decision {
            colour: Colour::Unknown,
            basis: Basis::Missing,
            as_of: watermark.unwrap_or(now).min(now),
            expires_at: ttl_end,
        };
    };
    let as_of = fresh_as_of.map_or(as_of, |f| f.max(as_of)).min(now);
    if colour != Colour::Green {
        return Decision {
            colour,
            basis,
            as_of,
            expires_at: ttl_end,
        };
    }
    let fresh_until = fresh_as_of.map(|t| t.saturating_add(max_age));
    match fresh_until {
        Some(until) if until > now => Decision {
            colour,
            basis,
            as_of,
            expires_at: ttl_end.min(until),
        },
        _ => Decision {
            colour: Colour::Unknown,
            basis: Basis::Stale,
            as_of,
            expires_at: ttl_end,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::Record;

    const NOW: UnixTime = 1_800_000_000;

    fn policy() -> Policy {
        Policy {
            code_ttl: Duration::from_secs(300),
            max_snapshot_age: Duration::from_secs(900),
        }
    }

    fn lookup(colour: Option<(Colour, UnixTime)>, watermark: Option<UnixTime>) -> Lookup {
        Lookup {
            record: colour.map(|(colour, as_of)| Record {
                colour,
                as_of,
                ruleset_version: 1,
                masked_name: String::new(),
                id_last4: String::new(),
            }),
            watermark,
        }
    }

    fn colour_of(l: Option<&Lookup>, known: Option<(Colour, UnixTime)>) -> (Colour, Basis) {
        let known = known.map(|(colour, as_of)| Known { colour, as_of });
        let d = decide(l, known, NOW, &policy());
        assert!(d.expires_at > NOW && d.as_of <= NOW);
        (d.colour, d.basis)
    }

    #[test]
    fn a_snapshot_code_is_as_of_the_watermark() {
        let l = lookup(Some((Colour::Green, NOW - 5000)), Some(NOW - 60));
        assert_eq!(decide(Some(&l), None, NOW, &policy()).as_of, NOW - 60);
        let red = lookup(Some((Colour::Red, NOW - 5000)), Some(NOW - 3600));
        assert_eq!(decide(Some(&red), None, NOW, &policy()).as_of, NOW - 3600);
        let known = Known {
            colour: Colour::Yellow,
            as_of: NOW - 10,
        };
        assert_eq!(
            decide(Some(&l), Some(known), NOW, &policy()).as_of,
            NOW - 10
        );
    }

    #[test]
    fn fresh_snapshot_colour_is_issued_exactly() {
        for c in [Colour::Green, Colour::Yellow, Colour::Red, Colour::Unknown] {
            let l = lookup(Some((c, NOW - 5000)), Some(NOW - 60));
            assert_eq!(colour_of(Some(&l), None), (c, Basis::Snapshot));
        }
    }

    #[test]
    fn stale_or_missing_watermark_turns_green_to_unknown_only() {
        for wm in [Some(NOW - 900), Some(NOW - 10_000), None] {
            let l = lookup(Some((Colour::Green, NOW - 5000)), wm);
            assert_eq!(colour_of(Some(&l), None), (Colour::Unknown, Basis::Stale));
            let l = lookup(Some((Colour::Red, NOW - 5000)), wm);
            assert_eq!(colour_of(Some(&l), None), (Colour::Red, Basis::Snapshot));
            let l = lookup(Some((Colour::Yellow, NOW - 5000)), wm);
            assert_eq!(colour_of(Some(&l), None), (Colour::Yellow, Basis::Snapshot));
        }
    }

    #[test]
    fn missing_subject_or_unreadable_snapshot_is_unknown() {
        let l = lookup(None, Some(NOW - 1));
        assert_eq!(colour_of(Some(&l), None), (Colour::Unknown, Basis::Missing));
        assert_eq!(colour_of(None, None), (Colour::Unknown, Basis::Missing));
    }

    #[test]
    fn newer_colour_wins_and_ties_go_to_the_stricter() {
        let l = lookup(Some((Colour::Green, NOW - 100)), Some(NOW - 10));
        assert_eq!(
            colour_of(Some(&l), Some((Colour::Red, NOW - 50))),
            (Colour::Red, Basis::Known)
        );
        assert_eq!(
            colour_of(Some(&l), Some((Colour::Red, NOW - 200))),
            (Colour::Green, Basis::Snapshot)
        );
        let l = lookup(Some((Colour::Red, NOW - 100)), Some(NOW - 10));
        assert_eq!(
            colour_of(Some(&l), Some((Colour::Green, NOW - 100))),
            (Colour::Red, Basis::Snapshot)
        );
        assert_eq!(
            colour_of(Some(&l), Some((Colour::Green, NOW - 20))),
            (Colour::Green, Basis::Known)
        );
        let l = lookup(Some((Colour::Green, NOW - 100)), Some(NOW - 10));
        assert_eq!(
            colour_of(Some(&l), Some((Colour::Yellow, NOW - 100))),
            (Colour::Yellow, Basis::Known)
        );
    }

    #[test]
    fn a_known_green_needs_its_own_freshness() {
        assert_eq!(
            colour_of(None, Some((Colour::Green, NOW - 60))),
            (Colour::Green, Basis::Known)
        );
        assert_eq!(
            colour_of(None, Some((Colour::Green, NOW - 5000))),
            (Colour::Unknown, Basis::Stale)
        );
        assert_eq!(
            colour_of(None, Some((Colour::Red, NOW - 50_000))),
            (Colour::Red, Basis::Known)
        );
    }

    #[test]
    fn green_never_outlives_its_evidence() {
        let l = lookup(Some((Colour::Green, NOW - 5000)), Some(NOW - 800));
        let d = decide(Some(&l), None, NOW, &policy());
        assert_eq!(d.colour, Colour::Green);
        assert_eq!(d.expires_at, NOW - 800 + 900);
        let l = lookup(Some((Colour::Red, NOW - 5000)), Some(NOW - 800));
        assert_eq!(decide(Some(&l), None, NOW, &policy()).expires_at, NOW + 300);
    }
}
