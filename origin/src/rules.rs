//! The colour rules engine: a declarative, versioned ruleset in TOML (see
//! `origin/rulesets/v1.toml` for the language), evaluated as a pure function of
//! (facts, ruleset, now). Each active rule is a [`Reason`]; the colour is the most severe of
//! them (green < unknown < yellow < red: `Colour::strictness`), green when none is active. The result also says when
//! the colour changes next on its own ([`Evaluation::next_change_at`]), so the origin can
//! re-colour people whose rule's duration runs out.

use std::collections::HashSet;
use std::path::Path;

use serde::{Deserialize, Serialize};
use shouhu_code::Colour;
use shouhu_code::time::{UnixTime, rfc3339};

use crate::facts::{Event, Facts};

/// The built-in ruleset, used when the config names none.
pub const BUILTIN_RULESET: &str = include_str!("../rulesets/v1.toml");

/// Event kinds a rule may name.
const EVENT_KINDS: [&str; 7] = [
    "case",
    "contact",
    "test",
    "visit",
    "identity",
    "declaration",
    "source",
];

/// A ruleset that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("ruleset {file}: {message}")]
pub struct RulesetError {
    /// The file (or `built-in`).
    pub file: String,
    /// What is wrong.
    pub message: String,
}

/// A versioned set of colour rules.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ruleset {
    /// Goes into every code (`ruleset_version`).
    pub version: u32,
    /// A name for people.
    pub name: String,
    /// The rules, in no particular order.
    #[serde(rename = "rule")]
    pub rules: Vec<Rule>,
}

/// One rule: which facts, which colour, for how long.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Stable reason code.
    pub id: String,
    /// Event kind.
    pub event: String,
    /// Matches if the event has any of these tags (empty: no condition).
    #[serde(default)]
    pub any: Vec<String>,
    /// Matches only if the event has all of these tags.
    #[serde(default)]
    pub all: Vec<String>,
    /// The colour while active.
    pub colour: Colour,
    /// Minimum (or, without `release`, exact) time active after the fact.
    #[serde(default, rename = "for")]
    pub hold: Option<shouhu_config::Duration>,
    /// Conditions that end the rule (after `for`).
    #[serde(default)]
    pub release: Option<Release>,
    /// Explanation, English.
    pub en: String,
    /// Explanation, Chinese.
    pub zh: String,
}

/// What ends a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Release {
    /// Consecutive days of only normal declarations after the fact.
    #[serde(default)]
    pub normal_days: u32,
    /// A negative test sampled after the fact.
    #[serde(default)]
    pub negative_test: bool,
}

/// One active rule behind a colour.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reason {
    /// The rule id (stable reason code).
    pub rule: String,
    /// Its colour.
    pub colour: Colour,
    /// The fact's time.
    #[serde(with = "rfc3339")]
    pub since: UnixTime,
    /// When it ends on its own, if known.
    #[serde(skip_serializing_if = "Option::is_none", with = "opt_rfc3339")]
    pub until: Option<UnixTime>,
    /// What still has to happen to end it, if anything.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pending: Option<String>,
    /// English explanation.
    pub en: String,
    /// Chinese explanation.
    pub zh: String,
}

/// The outcome for one person at one time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Evaluation {
    /// The colour.
    pub colour: Colour,
    /// Every active rule, most severe first.
    pub reasons: Vec<Reason>,
    /// The ruleset version.
    pub ruleset_version: u32,
    /// The next time the colour may change without a new fact.
    #[serde(skip_serializing_if = "Option::is_none", with = "opt_rfc3339")]
    pub next_change_at: Option<UnixTime>,
}

mod opt_rfc3339 {
    use serde::Serializer;
    use shouhu_code::time::{UnixTime, format_rfc3339};

    #[expect(clippy::ref_option, reason = "serde's `with` passes a reference")]
    pub(super) fn serialize<S: Serializer>(t: &Option<UnixTime>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_str(&format_rfc3339(*t)),
            None => s.serialize_none(),
        }
    }
}

impl Ruleset {
    /// The built-in ruleset.
    ///
    /// # Errors
    /// Never for the shipped file; its test proves that.
    pub fn builtin() -> Result<Self, RulesetError> {
        Self::parse("built-in", BUILTIN_RULESET)
    }

    /// Reads and checks a ruleset file.
    ///
    /// # Errors
    /// The file cannot be read, or [`Ruleset::parse`] fails.
    pub fn load(path: &Path) -> Result<Self, RulesetError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| RulesetError {
            file: file.clone(),
            message: e.to_string(),
        })?;
        Self::parse(&file, &text)
    }

    /// Parses and checks a ruleset.
    ///
    /// # Errors
    /// Bad TOML, unknown fields, version 0, duplicate rule ids, unknown event kinds, or a
    /// rule that matches everything of its kind with no condition.
    pub fn parse(file: &str, text: &str) -> Result<Self, RulesetError> {
        let err = |message: String| RulesetError {
            file: file.to_owned(),
            message,
        };
        let set: Self = toml::from_str(text).map_err(|e| err(e.to_string()))?;
        if set.version == 0 {
            return Err(err("version: must be >= 1 (got 0)".to_owned()));
        }
        let mut ids = HashSet::new();
        for (i, rule) in set.rules.iter().enumerate() {
            if !ids.insert(rule.id.as_str()) {
                return Err(err(format!("rule[{i}].id: duplicate \"{}\"", rule.id)));
            }
            if !EVENT_KINDS.contains(&rule.event.as_str()) {
                return Err(err(format!(
                    "rule[{i}].event: unknown \"{}\" (expected one of {})",
                    rule.event,
                    EVENT_KINDS.join(", ")
                )));
            }
            if rule.any.is_empty() && rule.all.is_empty() {
                return Err(err(format!(
                    "rule[{i}]: needs `any` or `all` tags, or it matches every {} fact",
                    rule.event
                )));
            }
        }
        Ok(set)
    }

    /// The colour of a person with these facts at `now`. Pure: same inputs, same answer.
    #[must_use]
    pub fn evaluate(&self, facts: &Facts, now: UnixTime) -> Evaluation {
        let events = facts.events(now);
        let mut reasons = Vec::new();
        let mut next_change_at: Option<UnixTime> = None;
        let mut note_change = |t: UnixTime| {
            if t > now {
                next_change_at = Some(next_change_at.map_or(t, |n| n.min(t)));
            }
        };
        for rule in &self.rules {
            let mut best: Option<Reason> = None;
            for event in events.iter().filter(|e| e.at <= now && rule.matches(e)) {
                let hold_end = rule.hold.map(|h| event.at + h.get().as_secs());
                let within_hold = hold_end.is_some_and(|end| now < end);
                let pending = rule.release.and_then(|r| pending(r, facts, event.at, now));
                let active = match (rule.hold, rule.release) {
                    (None, None) => true,
                    (Some(_), None) => within_hold,
                    (_, Some(_)) => within_hold || pending.is_some(),
                };
                if let Some(end) = hold_end {
                    // A timed rule may start or stop at its end: re-evaluate then.
                    note_change(end);
                }
                if !active {
                    continue;
                }
                let until = match (hold_end, &pending) {
                    (Some(end), None) => Some(end),
                    _ => None,
                };
                let reason = Reason {
                    rule: rule.id.clone(),
                    colour: rule.colour,
                    since: event.at,
                    until,
                    pending,
                    en: rule.en.clone(),
                    zh: rule.zh.clone(),
                };
                if best.as_ref().is_none_or(|b| b.since < reason.since) {
                    best = Some(reason);
                }
            }
            reasons.extend(best);
        }
        reasons.sort_by(|a, b| {
            b.colour
                .strictness()
                .cmp(&a.colour.strictness())
                .then(a.rule.cmp(&b.rule))
        });
        // Day boundaries move release counts ("consecutive days"); re-check at the next
        // midnight (China Standard Time) while any release is pending.
        if reasons.iter().any(|r| r.pending.is_some()) {
            let tz = 8 * 3600;
            note_change(((now + tz) / 86_400 + 1) * 86_400 - tz);
        }
        Evaluation {
            colour: reasons.first().map_or(Colour::Green, |r| r.colour),
            reasons,
            ruleset_version: self.version,
            next_change_at,
        }
    }
}

impl Rule {
    fn matches(&self, event: &Event) -> bool {
        event.kind == self.event
            && (self.any.is_empty() || self.any.iter().any(|t| event.tags.contains(t)))
            && self.all.iter().all(|t| event.tags.contains(t))
    }
}

/// What is still missing to release a rule for a fact at `since`, or `None` if released.
fn pending(release: Release, facts: &Facts, since: UnixTime, now: UnixTime) -> Option<String> {
    let mut missing = Vec::new();
    if release.normal_days > 0 {
        let have = facts.consecutive_normal_days(since, now);
        if have < release.normal_days {
            missing.push(format!(
                "{have} of {} consecutive normal daily declarations",
                release.normal_days
            ));
        }
    }
    if release.negative_test && !facts.negative_test_after(since, now) {
        missing.push("a negative nucleic-acid test".to_owned());
    }
    if missing.is_empty() {
        None
    } else {
        Some(missing.join("; "))
    }
}

#[cfg(test)]
#[path = "rules/tests.rs"]
mod tests;
