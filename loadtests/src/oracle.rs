//! The oracle: decides the [`Outcome`] of each answer by checking it the way a gate scanner
//! and the person in front of it would. Every code is verified against the trust list, must
//! name the subject who asked, and may not be greener than the colour the scenario knows that
//! subject has. A load test that only counts 200s would reward a proxy that hands out someone
//! else's cached code; this is what makes `WRONG = 0` a claim worth reporting.

use std::time::Duration;

use shouhu_code::time::UnixTime;
use shouhu_code::{Colour, Source, SubjectId, TrustList, VerifyPolicy, verify};

use crate::outcome::Outcome;

/// Age up to which an origin code counts as fresh (the origin's `max-age=30`).
pub const DEFAULT_FRESH_FOR: Duration = Duration::from_secs(30);
/// How long after a colour change the old colour is still accepted: the time a change takes
/// to reach the origin's answers and the proxy's cache (its change feed).
pub const DEFAULT_CHANGE_TOLERANCE: Duration = Duration::from_secs(10);
/// Oldest data a fallback code may carry and still count (overload.md §9.6: 15 min).
pub const DEFAULT_MAX_FALLBACK_AGE: Duration = Duration::from_secs(15 * 60);

/// The `X-Shouhu-Source` value of the proxy's no-code "check manually" answers.
pub const SOURCE_UNKNOWN: &str = "unknown";

/// What came back for one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply<'a> {
    /// An HTTP answer.
    Http {
        /// The status code.
        status: u16,
        /// `X-Shouhu-Source`, when present (only shouhu sends it).
        source: Option<&'a str>,
        /// The body's `code` (HZ1 text), when present.
        code: Option<&'a str>,
    },
    /// The connection failed or broke before a full answer.
    ConnectionFailed,
    /// Nothing within the client timeout.
    TimedOut,
}

/// What the scenario knows about the subject's colour at the time of the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Truth {
    /// The colour now.
    pub colour: Colour,
    /// The most recent change, if the scenario made one.
    pub changed: Option<Change>,
}

impl Truth {
    /// A colour that never changed.
    #[must_use]
    pub fn steady(colour: Colour) -> Self {
        Self {
            colour,
            changed: None,
        }
    }
}

/// A colour change the scenario made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Change {
    /// When it was made.
    pub at: UnixTime,
    /// The colour before.
    pub from: Colour,
}

/// Why an answer is [`Outcome::Wrong`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Wrong {
    /// A success without a code in it.
    #[error("status {0} without a code")]
    NoCode(u16),
    /// The code does not verify; the label is [`shouhu_code::VerifyError::reason`].
    #[error("code does not verify: {0}")]
    DoesNotVerify(&'static str),
    /// The code names someone else.
    #[error("code of another subject")]
    OtherSubject,
    /// The colour is greener than the truth allows.
    #[error("colour {got} is greener than the truth {truth}")]
    Greener {
        /// The code's colour.
        got: Colour,
        /// The least strict colour the truth allowed.
        truth: Colour,
    },
}

/// The oracle's answer: the class, and for `WRONG` why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// The class.
    pub outcome: Outcome,
    /// Set exactly when the class is [`Outcome::Wrong`].
    pub wrong: Option<Wrong>,
}

impl Verdict {
    fn of(outcome: Outcome) -> Self {
        Self {
            outcome,
            wrong: None,
        }
    }

    fn wrong(why: Wrong) -> Self {
        Self {
            outcome: Outcome::Wrong,
            wrong: Some(why),
        }
    }
}

/// Checks answers against a trust list.
#[derive(Debug, Clone)]
pub struct Oracle {
    trust: TrustList,
    /// Age up to which an origin code is fresh; default [`DEFAULT_FRESH_FOR`].
    pub fresh_for: Duration,
    /// Grace after a colour change; default [`DEFAULT_CHANGE_TOLERANCE`].
    pub change_tolerance: Duration,
    /// Verification rules; by default a fallback code's data may be at most
    /// [`DEFAULT_MAX_FALLBACK_AGE`] old.
    pub policy: VerifyPolicy,
}

impl Oracle {
    /// An oracle with the default ages.
    #[must_use]
    pub fn new(trust: TrustList) -> Self {
        Self {
            trust,
            fresh_for: DEFAULT_FRESH_FOR,
            change_tolerance: DEFAULT_CHANGE_TOLERANCE,
            policy: VerifyPolicy {
                max_fallback_age: Some(DEFAULT_MAX_FALLBACK_AGE),
                ..VerifyPolicy::default()
            },
        }
    }

    /// Classifies what `subject` got at `now`, given the truth about them.
    ///
    /// Order: no answer, then any code (verified, checked for subject and colour, so a bad
    /// code is `WRONG` whatever the status), then the status and the source header.
    #[must_use]
    pub fn judge(
        &self,
        reply: &Reply<'_>,
        subject: &SubjectId,
        truth: &Truth,
        now: UnixTime,
    ) -> Verdict {
        let (status, source, code) = match *reply {
            Reply::TimedOut => return Verdict::of(Outcome::Timeout),
            Reply::ConnectionFailed => return Verdict::of(Outcome::Error),
            Reply::Http {
                status,
                source,
                code,
            } => (status, source, code),
        };
        let Some(code) = code else {
            return match status {
                200 => Verdict::wrong(Wrong::NoCode(status)),
                _ if source == Some(SOURCE_UNKNOWN) => Verdict::of(Outcome::Unknown),
                429 | 503 => Verdict::of(Outcome::Busy),
                _ => Verdict::of(Outcome::Error),
            };
        };
        let claims = match verify(code, &self.trust, now, &self.policy) {
            Ok(verified) => verified.claims,
            Err(e) => return Verdict::wrong(Wrong::DoesNotVerify(e.reason())),
        };
        if claims.subject != *subject {
            return Verdict::wrong(Wrong::OtherSubject);
        }
        // `unknown` sends the person to a manual check whatever their colour: it lets no one
        // through, so it is never greener than the truth.
        let floor = self.least_strict_allowed(truth, now);
        if claims.colour != Colour::Unknown && claims.colour.strictness() < floor.strictness() {
            return Verdict::wrong(Wrong::Greener {
                got: claims.colour,
                truth: floor,
            });
        }
        if status != 200 {
            // A valid code of the right person under an error status: the user still has it,
            // but the answer is not a success.
            return Verdict::of(Outcome::Error);
        }
        let outcome = match (claims.colour, claims.source) {
            (Colour::Unknown, _) => Outcome::Unknown,
            (_, Source::Fallback) => Outcome::Fallback,
            (_, Source::Origin) => {
                if now.saturating_sub(claims.issued_at) <= self.fresh_for.as_secs() {
                    Outcome::Fresh
                } else {
                    Outcome::StaleOk
                }
            }
        };
        Verdict::of(outcome)
    }

    /// The greenest colour that is not a lie: the truth, or during the grace after a change
    /// the less strict of the old and the new colour.
    fn least_strict_allowed(&self, truth: &Truth, now: UnixTime) -> Colour {
        match truth.changed {
            Some(change)
                if now.saturating_sub(change.at) <= self.change_tolerance.as_secs()
                    && change.from.strictness() < truth.colour.strictness() =>
            {
                change.from
            }
            _ => truth.colour,
        }
    }
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used, reason = "tests")]
    use super::*;
    use shouhu_code::{Claims, CodeId, KeyPair, KeyRole, Region};

    const NOW: UnixTime = 1_796_000_000;
    const ME: SubjectId = SubjectId([0xab; 16]);
    const OTHER: SubjectId = SubjectId([0xcd; 16]);

    fn region() -> Region {
        "370000".parse().unwrap()
    }

    fn key(seed: u8, role: KeyRole) -> KeyPair {
        KeyPair::from_seed([seed; 32], role, region(), 0, 2_000_000_000)
    }

    fn oracle() -> Oracle {
        let trust = TrustList::new(vec![
            key(1, KeyRole::Origin).public().clone(),
            key(2, KeyRole::Fallback).public().clone(),
        ])
        .unwrap();
        Oracle::new(trust)
    }

    fn claims(subject: SubjectId, colour: Colour, source: Source, age: u64) -> Claims {
        Claims {
            issuer: region(),
            issued_at: NOW - age,
            expires_at: NOW - age + 600,
            code_id: CodeId([7; 12]),
            colour,
            subject,
            masked_name: "张*".to_owned(),
            id_last4: "123X".to_owned(),
            source,
            as_of: NOW - age - 60,
            ruleset_version: 1,
        }
    }

    fn origin_code(colour: Colour, age: u64) -> String {
        key(1, KeyRole::Origin)
            .sign(&claims(ME, colour, Source::Origin, age))
            .unwrap()
    }

    fn fallback_code(colour: Colour) -> String {
        key(2, KeyRole::Fallback)
            .sign(&claims(ME, colour, Source::Fallback, 0))
            .unwrap()
    }

    fn ok<'a>(source: &'a str, code: &'a str) -> Reply<'a> {
        Reply::Http {
            status: 200,
            source: Some(source),
            code: Some(code),
        }
    }

    fn judge(reply: &Reply<'_>, truth: Colour) -> Verdict {
        oracle().judge(reply, &ME, &Truth::steady(truth), NOW)
    }

    #[test]
    fn fresh_origin_code() {
        let code = origin_code(Colour::Green, 5);
        assert_eq!(
            judge(&ok("origin", &code), Colour::Green).outcome,
            Outcome::Fresh
        );
        // Direct to the origin or through nginx there is no source header.
        let bare = Reply::Http {
            status: 200,
            source: None,
            code: Some(&code),
        };
        assert_eq!(judge(&bare, Colour::Green).outcome, Outcome::Fresh);
    }

    #[test]
    fn stale_cached_code() {
        let code = origin_code(Colour::Yellow, 120);
        assert_eq!(
            judge(&ok("cache", &code), Colour::Yellow).outcome,
            Outcome::StaleOk
        );
    }

    #[test]
    fn fallback_code_with_a_colour() {
        let code = fallback_code(Colour::Red);
        assert_eq!(
            judge(&ok("fallback", &code), Colour::Red).outcome,
            Outcome::Fallback
        );
    }

    #[test]
    fn unknown_colour_and_no_code_check_manually() {
        let code = fallback_code(Colour::Unknown);
        assert_eq!(
            judge(&ok("unknown", &code), Colour::Green).outcome,
            Outcome::Unknown
        );
        let refusal = Reply::Http {
            status: 503,
            source: Some(SOURCE_UNKNOWN),
            code: None,
        };
        assert_eq!(judge(&refusal, Colour::Green).outcome, Outcome::Unknown);
    }

    #[test]
    fn busy_refusals() {
        for status in [429, 503] {
            let r = Reply::Http {
                status,
                source: None,
                code: None,
            };
            assert_eq!(judge(&r, Colour::Green).outcome, Outcome::Busy);
        }
    }

    #[test]
    fn errors() {
        for status in [500, 502, 401, 404] {
            let r = Reply::Http {
                status,
                source: None,
                code: None,
            };
            assert_eq!(judge(&r, Colour::Green).outcome, Outcome::Error, "{status}");
        }
        assert_eq!(
            judge(&Reply::ConnectionFailed, Colour::Green).outcome,
            Outcome::Error
        );
    }

    #[test]
    fn timeout() {
        assert_eq!(
            judge(&Reply::TimedOut, Colour::Red).outcome,
            Outcome::Timeout
        );
    }

    #[test]
    fn another_persons_code_is_wrong() {
        let code = key(1, KeyRole::Origin)
            .sign(&claims(OTHER, Colour::Green, Source::Origin, 0))
            .unwrap();
        let v = judge(&ok("cache", &code), Colour::Green);
        assert_eq!(v.outcome, Outcome::Wrong);
        assert_eq!(v.wrong, Some(Wrong::OtherSubject));
    }

    #[test]
    fn a_code_that_does_not_verify_is_wrong() {
        // Signed by a key nobody trusts.
        let code = key(9, KeyRole::Origin)
            .sign(&claims(ME, Colour::Green, Source::Origin, 0))
            .unwrap();
        let v = judge(&ok("origin", &code), Colour::Green);
        assert_eq!(v.wrong, Some(Wrong::DoesNotVerify("unknown_kid")));
        // Tampered text.
        let mut text = origin_code(Colour::Green, 0);
        text.truncate(text.len() - 3);
        assert_eq!(
            judge(&ok("origin", &text), Colour::Green).outcome,
            Outcome::Wrong
        );
        // Expired.
        let old = origin_code(Colour::Green, 3600);
        let v = judge(&ok("cache", &old), Colour::Green);
        assert_eq!(v.wrong, Some(Wrong::DoesNotVerify("expired")));
        // A 200 that says nothing.
        let empty = Reply::Http {
            status: 200,
            source: Some("origin"),
            code: None,
        };
        assert_eq!(judge(&empty, Colour::Green).wrong, Some(Wrong::NoCode(200)));
    }

    #[test]
    fn greener_than_the_truth_is_wrong_stricter_is_not() {
        let green = origin_code(Colour::Green, 0);
        let v = judge(&ok("origin", &green), Colour::Red);
        assert_eq!(
            v.wrong,
            Some(Wrong::Greener {
                got: Colour::Green,
                truth: Colour::Red
            })
        );
        // `unknown` sends a yellow or red person to a manual check: not a lie.
        let unknown = fallback_code(Colour::Unknown);
        for truth in [Colour::Yellow, Colour::Red] {
            assert_eq!(
                judge(&ok("unknown", &unknown), truth).outcome,
                Outcome::Unknown
            );
        }
        // Stricter than the truth is safe, not a lie.
        let red = origin_code(Colour::Red, 0);
        assert_eq!(
            judge(&ok("origin", &red), Colour::Green).outcome,
            Outcome::Fresh
        );
    }

    #[test]
    fn the_old_colour_is_accepted_only_within_the_change_tolerance() {
        let o = oracle();
        let green = origin_code(Colour::Green, 0);
        let reply = ok("cache", &green);
        let changed = |secs_ago: u64| Truth {
            colour: Colour::Red,
            changed: Some(Change {
                at: NOW - secs_ago,
                from: Colour::Green,
            }),
        };
        let within = o.change_tolerance.as_secs();
        assert_eq!(
            o.judge(&reply, &ME, &changed(within), NOW).outcome,
            Outcome::Fresh
        );
        assert_eq!(
            o.judge(&reply, &ME, &changed(within + 1), NOW).outcome,
            Outcome::Wrong
        );
    }

    #[test]
    fn a_bad_code_is_wrong_whatever_the_status() {
        let code = key(1, KeyRole::Origin)
            .sign(&claims(OTHER, Colour::Green, Source::Origin, 0))
            .unwrap();
        let r = Reply::Http {
            status: 503,
            source: None,
            code: Some(&code),
        };
        assert_eq!(judge(&r, Colour::Green).outcome, Outcome::Wrong);
    }
}
