//! Scenario files: what a benchmark run offers and what it does to the origin, phase by phase.
//!
//! A scenario is TOML in `loadtests/scenarios/`. Load is written as a multiple of the origin's
//! nominal capacity, so one file describes the same surge whatever the capacity model is set
//! to; origin changes are the bodies of the origin's admin API (`POST /admin/fault`,
//! `PUT /admin/capacity`, `POST /admin/crash`), applied at the start of a phase; colour changes
//! tell the oracle's truth what changed and when.
//!
//! ```toml
//! name = "smoke"
//! capacity_rps = 500          # the origin's nominal capacity C
//! seed = 1                    # workload seed, the same for every variant
//!
//! [[phase]]
//! name = "warm-up"
//! duration = "10s"
//! load = 0.6                  # offered intents per second = load x capacity_rps
//! origin = { fault = "none", capacity = { kappa = 0.009 } }
//!
//! [[phase.colours]]
//! at = "5s"                   # offset into the phase
//! share = 0.01                # of the population, chosen by the seed
//! colour = "red"
//! ```
//!
//! Errors name the file, the field and the value: `smoke.toml: phase[1].load: must be a
//! finite number >= 0 (got -1)`.

use std::path::Path;

use serde::{Deserialize, Serialize};
use shouhu_code::Colour;
use shouhu_config::{ConfigError, ConfigErrors, Duration};

use crate::schedule::{InvalidRate, RatePhase, Schedule};

/// A whole scenario.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// A short name for reports.
    pub name: String,
    /// The origin's nominal capacity in requests per second: what `load = 1` means.
    pub capacity_rps: f64,
    /// The workload seed.
    #[serde(default)]
    pub seed: u64,
    /// The phases, back to back.
    #[serde(rename = "phase")]
    pub phases: Vec<Phase>,
}

/// One phase.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Phase {
    /// A short name for reports.
    pub name: String,
    /// How long it lasts.
    pub duration: Duration,
    /// Offered load as a multiple of the nominal capacity.
    pub load: f64,
    /// Changes to the origin at the start of the phase.
    #[serde(default)]
    pub origin: OriginChange,
    /// What happens to the snapshot's Redis at the start of the phase.
    #[serde(default)]
    pub redis: Option<RedisAction>,
    /// Colour changes during the phase.
    #[serde(default)]
    pub colours: Vec<ColourChange>,
}

/// A change to the snapshot's Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RedisAction {
    /// Kill it (SIGKILL): the snapshot, the journal and the fallback lose their store.
    Kill,
    /// Start it again on the same port (empty: it keeps nothing on disk).
    Restart,
}

/// What to tell the origin's admin API at the start of a phase; absent fields stay as they are.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OriginChange {
    /// `POST /admin/fault`.
    pub fault: Option<FaultMode>,
    /// Added latency of the `slow` fault.
    pub latency: Option<Duration>,
    /// `POST /admin/crash`: the origin goes down and restarts cold.
    #[serde(default)]
    pub crash: bool,
    /// `PUT /admin/capacity`: the parameters to change.
    pub capacity: Option<CapacityChange>,
}

/// The origin's fault modes (`origin/src/fault.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FaultMode {
    /// Normal service.
    None,
    /// Accept, never answer.
    Hang,
    /// Fast 500.
    Error,
    /// Added latency.
    Slow,
    /// Reset connections.
    Refuse,
}

/// A subset of the origin's capacity parameters, named as its admin API names them.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CapacityChange {
    /// Whether requests go through the model.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Base service time, milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_time_ms: Option<f64>,
    /// Contention.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sigma: Option<f64>,
    /// Coherency: x4 moves the knee from n ~ 10 to n ~ 5.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kappa: Option<f64>,
    /// Log-normal noise of service times.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub noise: Option<f64>,
    /// Overload threshold (requests in service).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub crash_in_flight: Option<u32>,
    /// Overload for this long crashes, milliseconds; 0 = never.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub crash_after_ms: Option<u64>,
    /// Down for this long after a crash, milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restart_after_ms: Option<u64>,
    /// Service time multiplier while cold.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cold_factor: Option<f64>,
    /// Cold for this long after a restart, milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cold_for_ms: Option<u64>,
}

/// Some subjects change colour.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColourChange {
    /// Offset into the phase.
    pub at: Duration,
    /// Share of the population, in (0, 1].
    pub share: f64,
    /// The new colour.
    pub colour: Colour,
}

impl Scenario {
    /// Reads and checks a scenario file.
    ///
    /// # Errors
    /// The file cannot be read, is not TOML, does not match the format, or breaks a rule;
    /// every rule violation is reported, each with file, field and value.
    pub fn load(path: &Path) -> Result<Self, ConfigErrors> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| one(ConfigError::new(&file, "", format!("cannot read: {e}"))))?;
        Self::from_toml(&file, &text)
    }

    /// Parses and checks scenario text; `file` names it in errors.
    ///
    /// # Errors
    /// As [`Scenario::load`], without the reading.
    pub fn from_toml(file: &str, text: &str) -> Result<Self, ConfigErrors> {
        let table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| one(ConfigError::new(file, "", syntax(text, &e))))?;
        let scenario: Self =
            serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
                let path = e.path().to_string();
                let path = if path == "." { String::new() } else { path };
                one(ConfigError::new(file, path, e.inner().message()))
            })?;
        let mut errors = ConfigErrors::default();
        scenario.check(file, &mut errors);
        errors.into_result().map(|()| scenario)
    }

    /// The length of the whole run.
    #[must_use]
    pub fn duration(&self) -> std::time::Duration {
        self.phases.iter().map(|p| p.duration.get()).sum()
    }

    /// When each phase starts, from the start of the run.
    #[must_use]
    pub fn phase_starts(&self) -> Vec<std::time::Duration> {
        self.phases
            .iter()
            .scan(std::time::Duration::ZERO, |t, p| {
                let start = *t;
                *t += p.duration.get();
                Some(start)
            })
            .collect()
    }

    /// The intent arrival schedule: each phase's load times the capacity.
    ///
    /// # Errors
    /// Only for a scenario that was not checked (built by hand with a bad load).
    pub fn schedule(&self) -> Result<Schedule, InvalidRate> {
        Schedule::new(
            self.phases
                .iter()
                .map(|p| RatePhase {
                    duration: p.duration.get(),
                    rate: p.load * self.capacity_rps,
                })
                .collect(),
        )
    }

    fn check(&self, file: &str, errors: &mut ConfigErrors) {
        let mut bad = |path: String, message: String| {
            errors.push(ConfigError::new(file, path, message));
        };
        if self.name.trim().is_empty() {
            bad("name".into(), "must not be empty".into());
        }
        if !(self.capacity_rps.is_finite() && self.capacity_rps > 0.0) {
            bad(
                "capacity_rps".into(),
                format!("must be a finite number > 0 (got {})", self.capacity_rps),
            );
        }
        if self.phases.is_empty() {
            bad("phase".into(), "needs at least one [[phase]]".into());
        }
        for (i, p) in self.phases.iter().enumerate() {
            let at = |field: &str| format!("phase[{i}].{field}");
            if p.name.trim().is_empty() {
                bad(at("name"), "must not be empty".into());
            }
            if p.duration.get().is_zero() {
                bad(at("duration"), format!("must be > 0 (got {})", p.duration));
            }
            if !(p.load.is_finite() && p.load >= 0.0) {
                bad(
                    at("load"),
                    format!("must be a finite number >= 0 (got {})", p.load),
                );
            }
            if p.origin.latency.is_some() && p.origin.fault != Some(FaultMode::Slow) {
                bad(
                    at("origin.latency"),
                    "only applies with fault = \"slow\"".into(),
                );
            }
            if let Some(c) = &p.origin.capacity {
                let floats = [
                    ("service_time_ms", c.service_time_ms, true),
                    ("sigma", c.sigma, false),
                    ("kappa", c.kappa, false),
                    ("noise", c.noise, false),
                    ("cold_factor", c.cold_factor, true),
                ];
                for (name, value, positive) in floats {
                    let Some(v) = value else { continue };
                    let ok = v.is_finite() && if positive { v > 0.0 } else { v >= 0.0 };
                    if !ok {
                        let rule = if positive { "> 0" } else { ">= 0" };
                        bad(
                            at(&format!("origin.capacity.{name}")),
                            format!("must be a finite number {rule} (got {v})"),
                        );
                    }
                }
            }
            for (j, c) in p.colours.iter().enumerate() {
                let at = |field: &str| format!("phase[{i}].colours[{j}].{field}");
                if c.at.get() >= p.duration.get() {
                    bad(
                        at("at"),
                        format!("must be within the phase's {} (got {})", p.duration, c.at),
                    );
                }
                if !(c.share > 0.0 && c.share <= 1.0) {
                    bad(at("share"), format!("must be in (0, 1] (got {})", c.share));
                }
                if !matches!(c.colour, Colour::Red | Colour::Yellow) {
                    bad(
                        at("colour"),
                        format!(
                            "must be \"red\" or \"yellow\": a fact that makes the colour \
                             stricter (got {:?})",
                            c.colour
                        ),
                    );
                }
            }
        }
    }
}

/// A TOML syntax error with the line it is on.
fn syntax(text: &str, e: &toml::de::Error) -> String {
    match e.span().and_then(|span| text.get(..span.start)) {
        Some(before) => format!(
            "line {}: {}",
            before.matches('\n').count() + 1,
            e.message().trim()
        ),
        None => e.message().trim().to_owned(),
    }
}

fn one(error: ConfigError) -> ConfigErrors {
    let mut errors = ConfigErrors::default();
    errors.push(error);
    errors
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used, reason = "tests")]
    use super::*;

    const MINIMAL: &str = r#"
name = "t"
capacity_rps = 500
[[phase]]
name = "a"
duration = "10s"
load = 2
"#;

    fn errors(text: &str) -> Vec<String> {
        Scenario::from_toml("t.toml", text)
            .unwrap_err()
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn every_file_in_scenarios_loads() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
        let mut names = Vec::new();
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                let s = Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
                assert!(s.schedule().is_ok());
                names.push(s.name);
            }
        }
        names.sort();
        assert_eq!(
            names,
            [
                "crash",
                "outage-colours",
                "ramp",
                "redis-killed",
                "smoke",
                "standard",
                "surge"
            ]
        );
    }

    #[test]
    fn example_scenarios_have_the_promised_shape() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
        let standard = Scenario::load(&dir.join("standard.toml")).unwrap();
        // Three variants of it in `make bench` take under 10 minutes.
        assert!(standard.duration() <= std::time::Duration::from_secs(150));
        let loads: Vec<f64> = standard.phases.iter().map(|p| p.load).collect();
        assert!(loads.contains(&3.0) && loads.contains(&10.0));
        assert!(
            standard
                .phases
                .iter()
                .any(|p| p.origin.fault == Some(FaultMode::Hang))
        );
        assert!(standard.phases.iter().any(|p| p.origin.crash));
        assert!(standard.phases.iter().any(|p| {
            p.origin
                .capacity
                .as_ref()
                .and_then(|c| c.kappa)
                .is_some_and(|k| (k - 0.036).abs() < 1e-12)
        }));
        let smoke = Scenario::load(&dir.join("smoke.toml")).unwrap();
        assert_eq!(smoke.duration(), std::time::Duration::from_secs(30));
    }

    #[test]
    fn load_is_a_multiple_of_capacity() {
        let s = Scenario::from_toml("t.toml", MINIMAL).unwrap();
        let schedule = s.schedule().unwrap();
        assert_eq!(schedule.phases()[0].rate, 1000.0);
        assert_eq!(s.duration(), std::time::Duration::from_secs(10));
        assert_eq!(s.phase_starts(), [std::time::Duration::ZERO]);
    }

    #[test]
    fn type_errors_name_file_field_and_value() {
        let e = errors(&MINIMAL.replace("load = 2", "load = \"lots\""));
        assert_eq!(e.len(), 1);
        assert!(e[0].starts_with("t.toml: phase[0].load: "), "{e:?}");
        assert!(e[0].contains("lots"), "{e:?}");
        let e = errors(&MINIMAL.replace("\"10s\"", "\"ten\""));
        assert!(e[0].starts_with("t.toml: phase[0].duration: "), "{e:?}");
        let e = errors(&format!("{MINIMAL}origin = {{ fault = \"melt\" }}\n"));
        assert!(e[0].starts_with("t.toml: phase[0].origin.fault: "), "{e:?}");
        assert!(e[0].contains("melt"), "{e:?}");
        let e = errors(&format!("{MINIMAL}speed = 3\n"));
        assert!(e[0].contains("speed"), "{e:?}");
        let e = errors("name = \"t\"\ncapacity_rps = \n");
        assert!(e[0].starts_with("t.toml: line 2: "), "{e:?}");
    }

    #[test]
    fn rule_errors_are_all_reported() {
        let text = r#"
name = "t"
capacity_rps = 0
[[phase]]
name = "a"
duration = "0s"
load = -1
origin = { latency = "1s", capacity = { kappa = -0.5 } }
[[phase.colours]]
at = "5s"
share = 1.5
colour = "red"
"#;
        let e = errors(text);
        let expect = [
            "t.toml: capacity_rps: must be a finite number > 0 (got 0)",
            "t.toml: phase[0].duration: must be > 0 (got 0s)",
            "t.toml: phase[0].load: must be a finite number >= 0 (got -1)",
            "t.toml: phase[0].origin.latency: only applies with fault = \"slow\"",
            "t.toml: phase[0].origin.capacity.kappa: must be a finite number >= 0 (got -0.5)",
            "t.toml: phase[0].colours[0].at: must be within the phase's 0s (got 5s)",
            "t.toml: phase[0].colours[0].share: must be in (0, 1] (got 1.5)",
        ];
        assert_eq!(e, expect);
    }

    #[test]
    fn a_missing_file_is_reported_by_name() {
        let e = Scenario::load(Path::new("/nonexistent/x.toml")).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("/nonexistent/x.toml: cannot read")
        );
    }
}
