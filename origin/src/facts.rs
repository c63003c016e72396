//! The facts colour is computed from: what each data source says about a person (the JSON the
//! simulators serve and the origin reads) and the person's own declarations. Each fact becomes
//! an [`Event`] (a kind, tags and a time) that the ruleset matches.

use serde::{Deserialize, Serialize};
use shouhu_code::time::UnixTime;

/// Temperature at or above which a declaration counts as fever, in °C.
pub const FEVER_CELSIUS: f64 = 37.3;

/// Health commission facts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthFacts {
    /// Case status, if the person is or was a case.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub case: Option<Case>,
    /// Contact status, if traced as a contact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact: Option<Contact>,
    /// Nucleic-acid tests.
    #[serde(default)]
    pub tests: Vec<NatTest>,
    /// Vaccination doses.
    #[serde(default)]
    pub vaccinations: Vec<Vaccination>,
}

/// A case record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    /// `confirmed`, `suspected`, `asymptomatic` or `cured`.
    pub status: String,
    /// When recorded.
    pub at: UnixTime,
}

/// A contact record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Contact {
    /// `close` or `secondary`.
    pub kind: String,
    /// Time of exposure.
    pub at: UnixTime,
}

/// A nucleic-acid test.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatTest {
    /// `positive` or `negative`.
    pub result: String,
    /// When the sample was taken.
    pub sampled_at: UnixTime,
}

/// A vaccination dose.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Vaccination {
    /// Dose number.
    pub dose: u32,
    /// When given.
    pub at: UnixTime,
}

/// Public security facts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoliceFacts {
    /// Identity checked against household registration.
    pub identity_verified: bool,
    /// Six-digit region of household registration.
    pub hukou_region: String,
}

impl Default for PoliceFacts {
    fn default() -> Self {
        Self {
            identity_verified: true,
            hukou_region: "370102".to_owned(),
        }
    }
}

/// Carrier facts: where the phone has been in the last 14 days.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CarrierFacts {
    /// Cities visited.
    #[serde(default)]
    pub visits: Vec<Visit>,
}

/// A stay in a city.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Visit {
    /// City name.
    pub city: String,
    /// `low`, `medium` or `high`.
    pub risk: String,
    /// Last seen there.
    pub at: UnixTime,
}

/// A daily health declaration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Declaration {
    /// When declared.
    pub at: UnixTime,
    /// Body temperature, °C.
    pub temperature: f64,
    /// Symptoms, free text tags.
    pub symptoms: Vec<String>,
    /// Places travelled, free text.
    pub travel: Vec<String>,
}

impl Declaration {
    /// No fever and no symptoms.
    #[must_use]
    pub fn is_normal(&self) -> bool {
        self.temperature < FEVER_CELSIUS && self.symptoms.is_empty()
    }
}

/// A source's answer: its facts, or that it could not be asked.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer<T> {
    /// The source answered.
    Known(T),
    /// The source failed or timed out.
    Unavailable,
}

/// Everything known about one person at evaluation time.
#[derive(Debug, Clone, PartialEq)]
pub struct Facts {
    /// Health commission.
    pub health: Answer<HealthFacts>,
    /// Public security.
    pub police: Answer<PoliceFacts>,
    /// Carriers.
    pub carrier: Answer<CarrierFacts>,
    /// The person's declarations, any order.
    pub declarations: Vec<Declaration>,
}

/// One fact as the ruleset sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// `case`, `contact`, `test`, `visit`, `declaration`, `identity` or `source`.
    pub kind: &'static str,
    /// Values to match, e.g. `confirmed`, `close`, `positive`, `high`, `fever`.
    pub tags: Vec<String>,
    /// When it happened.
    pub at: UnixTime,
}

impl Facts {
    /// Every fact as an event; an unavailable source is a `source` event tagged
    /// `{name}_unavailable` at `now`.
    #[must_use]
    pub fn events(&self, now: UnixTime) -> Vec<Event> {
        let mut out = Vec::new();
        let unavailable = |name: &str| Event {
            kind: "source",
            tags: vec![format!("{name}_unavailable"), "unavailable".to_owned()],
            at: now,
        };
        match &self.health {
            Answer::Known(h) => {
                if let Some(c) = &h.case {
                    out.push(Event {
                        kind: "case",
                        tags: vec![c.status.clone()],
                        at: c.at,
                    });
                }
                if let Some(c) = &h.contact {
                    out.push(Event {
                        kind: "contact",
                        tags: vec![c.kind.clone()],
                        at: c.at,
                    });
                }
                for t in &h.tests {
                    out.push(Event {
                        kind: "test",
                        tags: vec![t.result.clone()],
                        at: t.sampled_at,
                    });
                }
            }
            Answer::Unavailable => out.push(unavailable("health")),
        }
        match &self.police {
            Answer::Known(p) => out.push(Event {
                kind: "identity",
                tags: vec![
                    if p.identity_verified {
                        "verified"
                    } else {
                        "unverified"
                    }
                    .to_owned(),
                ],
                at: now,
            }),
            Answer::Unavailable => out.push(unavailable("police")),
        }
        match &self.carrier {
            Answer::Known(c) => {
                for v in &c.visits {
                    out.push(Event {
                        kind: "visit",
                        tags: vec![v.risk.clone()],
                        at: v.at,
                    });
                }
            }
            Answer::Unavailable => out.push(unavailable("carrier")),
        }
        for d in &self.declarations {
            let mut tags = Vec::new();
            if d.temperature >= FEVER_CELSIUS {
                tags.push("fever".to_owned());
            }
            if !d.symptoms.is_empty() {
                tags.push("symptoms".to_owned());
            }
            if !d.travel.is_empty() {
                tags.push("travel".to_owned());
            }
            if tags.is_empty() {
                tags.push("normal".to_owned());
            }
            out.push(Event {
                kind: "declaration",
                tags,
                at: d.at,
            });
        }
        out
    }

    /// Whether a negative test was sampled after `after` (and not after `now`).
    #[must_use]
    pub fn negative_test_after(&self, after: UnixTime, now: UnixTime) -> bool {
        match &self.health {
            Answer::Known(h) => h
                .tests
                .iter()
                .any(|t| t.result == "negative" && t.sampled_at > after && t.sampled_at <= now),
            Answer::Unavailable => false,
        }
    }

    /// Consecutive days, ending today or yesterday (China Standard Time days), each with at
    /// least one declaration and only normal ones, all after the day of `after`.
    #[must_use]
    pub fn consecutive_normal_days(&self, after: UnixTime, now: UnixTime) -> u32 {
        let day = |t: UnixTime| (t + 8 * 3600) / 86_400;
        let first_allowed = day(after) + 1;
        let mut by_day = std::collections::BTreeMap::<u64, bool>::new();
        for d in self.declarations.iter().filter(|d| d.at <= now) {
            let normal = by_day.entry(day(d.at)).or_insert(true);
            *normal &= d.is_normal();
        }
        let today = day(now);
        let mut cursor = if by_day.contains_key(&today) {
            today
        } else {
            today.saturating_sub(1)
        };
        let mut count = 0;
        while cursor >= first_allowed && by_day.get(&cursor) == Some(&true) {
            count += 1;
            if cursor == 0 {
                break;
            }
            cursor -= 1;
        }
        count
    }
}
