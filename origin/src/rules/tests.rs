//! The built-in ruleset, rule by rule, at fixed times.
#![expect(clippy::unwrap_used, reason = "tests")]

use super::*;
use crate::facts::{
    Answer, CarrierFacts, Case, Contact, Declaration, HealthFacts, NatTest, PoliceFacts, Visit,
};

const DAY: u64 = 86_400;
/// 2026-11-01T04:00:00Z = noon in China.
const T0: UnixTime = 1_793_505_600;

fn clean() -> Facts {
    Facts {
        health: Answer::Known(HealthFacts::default()),
        police: Answer::Known(PoliceFacts::default()),
        carrier: Answer::Known(CarrierFacts::default()),
        declarations: Vec::new(),
    }
}

fn health(f: &mut Facts) -> &mut HealthFacts {
    match &mut f.health {
        Answer::Known(h) => h,
        Answer::Unavailable => panic!("unavailable"),
    }
}

fn declare(f: &mut Facts, at: UnixTime, temperature: f64, symptoms: &[&str]) {
    f.declarations.push(Declaration {
        at,
        temperature,
        symptoms: symptoms.iter().map(|s| (*s).to_owned()).collect(),
        travel: Vec::new(),
    });
}

fn colour(f: &Facts, now: UnixTime) -> Colour {
    Ruleset::builtin().unwrap().evaluate(f, now).colour
}

#[test]
fn builtin_ruleset_parses_with_its_version() {
    let set = Ruleset::builtin().unwrap();
    assert_eq!(set.version, 1);
    assert_eq!(set.rules.len(), 9);
}

#[test]
fn no_facts_is_green() {
    let e = Ruleset::builtin().unwrap().evaluate(&clean(), T0);
    assert_eq!(e.colour, Colour::Green);
    assert!(e.reasons.is_empty());
    assert_eq!(e.ruleset_version, 1);
}

#[test]
fn close_contact_is_red_for_14_days_then_needs_a_negative_test() {
    let mut f = clean();
    health(&mut f).contact = Some(Contact {
        kind: "close".to_owned(),
        at: T0,
    });
    let e = Ruleset::builtin().unwrap().evaluate(&f, T0 + DAY);
    assert_eq!(e.colour, Colour::Red);
    assert_eq!(e.reasons[0].rule, "close_contact");
    assert_eq!(
        colour(&f, T0 + 15 * DAY),
        Colour::Red,
        "no negative test yet"
    );
    health(&mut f).tests.push(NatTest {
        result: "negative".to_owned(),
        sampled_at: T0 + 13 * DAY,
    });
    assert_eq!(colour(&f, T0 + 13 * DAY + 1), Colour::Red, "within 14 days");
    let e = Ruleset::builtin().unwrap().evaluate(&f, T0 + 13 * DAY + 1);
    assert_eq!(e.next_change_at, Some(T0 + 14 * DAY));
    assert_eq!(e.reasons[0].until, Some(T0 + 14 * DAY));
    assert_eq!(colour(&f, T0 + 14 * DAY), Colour::Green);
}

#[test]
fn a_fact_in_the_future_does_not_count_yet() {
    let mut f = clean();
    health(&mut f).contact = Some(Contact {
        kind: "close".to_owned(),
        at: T0 + DAY,
    });
    assert_eq!(colour(&f, T0), Colour::Green);
}

#[test]
fn secondary_contact_is_yellow_for_7_days() {
    let mut f = clean();
    health(&mut f).contact = Some(Contact {
        kind: "secondary".to_owned(),
        at: T0,
    });
    assert_eq!(colour(&f, T0 + 6 * DAY), Colour::Yellow);
    assert_eq!(colour(&f, T0 + 7 * DAY), Colour::Green);
}

#[test]
fn confirmed_case_needs_14_normal_days_and_a_negative_test() {
    let mut f = clean();
    health(&mut f).case = Some(Case {
        status: "confirmed".to_owned(),
        at: T0,
    });
    for day in 1..=14 {
        declare(&mut f, T0 + day * DAY, 36.5, &[]);
    }
    assert_eq!(
        colour(&f, T0 + 14 * DAY + 60),
        Colour::Red,
        "no negative test"
    );
    health(&mut f).tests.push(NatTest {
        result: "negative".to_owned(),
        sampled_at: T0 + 14 * DAY,
    });
    assert_eq!(colour(&f, T0 + 14 * DAY + 60), Colour::Green);
    // One abnormal day in the run restarts the count.
    declare(&mut f, T0 + 10 * DAY + 60, 38.0, &["cough"]);
    let e = Ruleset::builtin().unwrap().evaluate(&f, T0 + 14 * DAY + 60);
    assert_eq!(e.colour, Colour::Red);
    assert!(e.reasons[0].pending.as_deref().unwrap().contains("4 of 14"));
}

#[test]
fn positive_test_is_red() {
    let mut f = clean();
    health(&mut f).tests.push(NatTest {
        result: "positive".to_owned(),
        sampled_at: T0,
    });
    assert_eq!(colour(&f, T0 + 60), Colour::Red);
}

#[test]
fn risk_areas_high_red_14_days_medium_yellow_7_days() {
    let mut f = clean();
    f.carrier = Answer::Known(CarrierFacts {
        visits: vec![Visit {
            city: "A".to_owned(),
            risk: "medium".to_owned(),
            at: T0,
        }],
    });
    assert_eq!(colour(&f, T0 + 6 * DAY), Colour::Yellow);
    assert_eq!(colour(&f, T0 + 7 * DAY), Colour::Green);
    f.carrier = Answer::Known(CarrierFacts {
        visits: vec![Visit {
            city: "B".to_owned(),
            risk: "high".to_owned(),
            at: T0,
        }],
    });
    assert_eq!(colour(&f, T0 + 13 * DAY), Colour::Red);
    assert_eq!(colour(&f, T0 + 14 * DAY), Colour::Green);
}

#[test]
fn fever_with_symptoms_is_yellow_until_7_normal_days() {
    let mut f = clean();
    declare(&mut f, T0, 38.2, &["cough"]);
    assert_eq!(colour(&f, T0 + 60), Colour::Yellow);
    // Fever alone, or symptoms alone, is not this rule.
    let mut g = clean();
    declare(&mut g, T0, 38.2, &[]);
    declare(&mut g, T0 + 60, 36.5, &["cough"]);
    assert_eq!(colour(&g, T0 + 120), Colour::Green);
    for day in 1..=6 {
        declare(&mut f, T0 + day * DAY, 36.6, &[]);
    }
    assert_eq!(colour(&f, T0 + 6 * DAY + 60), Colour::Yellow);
    declare(&mut f, T0 + 7 * DAY, 36.6, &[]);
    assert_eq!(colour(&f, T0 + 7 * DAY + 60), Colour::Green);
}

#[test]
fn an_unreachable_source_is_unknown_never_green() {
    for which in ["health", "police", "carrier"] {
        let mut f = clean();
        match which {
            "health" => f.health = Answer::Unavailable,
            "police" => f.police = Answer::Unavailable,
            _ => f.carrier = Answer::Unavailable,
        }
        let e = Ruleset::builtin().unwrap().evaluate(&f, T0);
        assert_eq!(e.colour, Colour::Unknown, "{which}");
        assert_eq!(e.reasons[0].rule, "source_unavailable");
    }
}

#[test]
fn known_red_and_yellow_outrank_an_unavailable_source() {
    // Colour::strictness: green < unknown < yellow < red. A missing source adds no evidence;
    // what is known still shows, and only green is ever withheld.
    let mut f = clean();
    f.health = Answer::Unavailable;
    f.carrier = Answer::Known(CarrierFacts {
        visits: vec![Visit {
            city: "B".to_owned(),
            risk: "high".to_owned(),
            at: T0,
        }],
    });
    assert_eq!(colour(&f, T0 + 60), Colour::Red);
    let mut g = clean();
    g.health = Answer::Unavailable;
    declare(&mut g, T0, 38.5, &["cough"]);
    assert_eq!(colour(&g, T0 + 60), Colour::Yellow);
}

#[test]
fn unverified_identity_is_unknown() {
    let mut f = clean();
    f.police = Answer::Known(PoliceFacts {
        identity_verified: false,
        hukou_region: "370102".to_owned(),
    });
    assert_eq!(colour(&f, T0), Colour::Unknown);
}

#[test]
fn bad_rulesets_are_refused_with_the_reason() {
    let base = "version = 1\nname = \"x\"\n";
    for (text, needle) in [
        ("version = 0\nname = \"x\"\nrule = []", "version"),
        (
            &*format!(
                "{base}[[rule]]\nid = \"a\"\nevent = \"weather\"\nany = [\"x\"]\ncolour = \"red\"\nen = \"\"\nzh = \"\""
            ),
            "unknown \"weather\"",
        ),
        (
            &*format!(
                "{base}[[rule]]\nid = \"a\"\nevent = \"case\"\ncolour = \"red\"\nen = \"\"\nzh = \"\""
            ),
            "needs `any` or `all`",
        ),
        (
            &*format!(
                "{base}[[rule]]\nid = \"a\"\nevent = \"case\"\nany = [\"x\"]\ncolour = \"blue\"\nen = \"\"\nzh = \"\""
            ),
            "colour",
        ),
    ] {
        let err = Ruleset::parse("t.toml", text).unwrap_err().to_string();
        assert!(err.contains(needle), "{err}");
    }
}

#[test]
fn ruleset_v2_is_seven_plus_three_for_close_contacts() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("rulesets/v2.toml");
    let v2 = Ruleset::load(&path).unwrap();
    assert_eq!(v2.version, 2);
    let mut f = clean();
    health(&mut f).contact = Some(Contact {
        kind: "close".to_owned(),
        at: T0,
    });
    health(&mut f).tests.push(NatTest {
        result: "negative".to_owned(),
        sampled_at: T0 + 8 * DAY,
    });
    let at = |t| v2.evaluate(&f, t);
    assert_eq!(at(T0 + 6 * DAY).colour, Colour::Red);
    let e = at(T0 + 8 * DAY + 60);
    assert_eq!(e.colour, Colour::Yellow);
    assert_eq!(e.ruleset_version, 2);
    assert_eq!(e.reasons[0].rule, "close_contact_home_monitoring");
    assert_eq!(at(T0 + 10 * DAY).colour, Colour::Green);
    // Under v1 the same facts are still red on day 10.
    assert_eq!(colour(&f, T0 + 10 * DAY), Colour::Red);
}

#[test]
fn the_shipped_v1_file_is_the_builtin_ruleset() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("rulesets/v1.toml");
    assert_eq!(Ruleset::load(&path).unwrap(), Ruleset::builtin().unwrap());
}
