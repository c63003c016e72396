//! What one run of a scenario against one variant produced: per phase, per second and the
//! origin's 100 ms samples. The runner fills it; the report and the plots read it; it is
//! written as `run-<variant>.json` next to the report.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use crate::measure::Recorder;
use crate::outcome::Outcome;

/// What sits between the generator and the origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Variant {
    /// No proxy: the generator talks to the origin.
    Direct,
    /// Debian's nginx, configured from `loadtests/nginx/healthcode.conf.in`, with `shouhu
    /// issuer` as its backup upstream.
    Nginx,
    /// `shouhu proxy`.
    Shouhu,
}

impl Variant {
    /// Every variant, in report order.
    pub const ALL: [Self; 3] = [Self::Direct, Self::Nginx, Self::Shouhu];

    /// The name on the command line and in reports.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Direct => "direct",
            Self::Nginx => "nginx",
            Self::Shouhu => "shouhu",
        }
    }
}

impl std::fmt::Display for Variant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Variant {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| format!("unknown variant {s:?} (expected direct, nginx or shouhu)"))
    }
}

/// Requests that are not code displays: scans, declarations, registrations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OtherClass {
    /// A venue scanner verifying a code: `POST /api/verify`.
    Scan,
    /// A health declaration: `POST /api/declare` with an `Idempotency-Key`.
    Declare,
    /// A new person registering: `POST /api/register`.
    Register,
}

impl OtherClass {
    /// Every class, in report order.
    pub const ALL: [Self; 3] = [Self::Scan, Self::Declare, Self::Register];

    /// The label in reports.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Scan => "scan",
            Self::Declare => "declare",
            Self::Register => "register",
        }
    }
}

/// How the attempts of one non-display class ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ClassCounts {
    /// 2xx (a journalled declaration's 202 included).
    pub ok: u64,
    /// 429 or 503.
    pub busy: u64,
    /// Any other status or a connection error.
    pub error: u64,
    /// No answer within the client timeout.
    pub timeout: u64,
}

/// The origin over a phase, from its admin API (`GET /admin/status`, `capacity`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct OriginWindow {
    /// Requests it completed.
    pub completed: u64,
    /// Of those, completed after the client had gone (wasted work).
    pub wasted: u64,
    /// Crashes.
    pub crashes: u64,
    /// Its model's peak throughput (X_max), requests/s, averaged over the samples.
    pub peak_throughput: f64,
    /// Its model's knee (requests in service at peak), averaged over the samples.
    pub knee: f64,
    /// Requests in service, mean of the samples.
    pub mean_in_service: f64,
    /// Requests in service, most in one sample.
    pub max_in_service: u64,
    /// Share of samples with at most 1.5 x the knee in service (overload.md T2).
    pub within_knee_share: f64,
    /// Share of samples in which it was down (crashed).
    pub down_share: f64,
}

/// One phase of one run.
#[derive(Debug, Clone, Serialize)]
pub struct PhaseResult {
    /// The scenario's name for it.
    pub name: String,
    /// Offset of its start from the start of the run.
    pub start: Duration,
    /// How long it lasted.
    pub duration: Duration,
    /// Offered load as a multiple of the scenario's capacity.
    pub load: f64,
    /// Whether the phase changed the origin (fault, crash or capacity) at its start.
    pub origin_changed: bool,
    /// Display attempts by outcome with latency from the scheduled send time, and the
    /// generator's schedule lag (attempts of every class).
    #[serde(skip)]
    pub recorder: Recorder,
    /// Display attempts by outcome (the recorder's counts, for the JSON).
    pub outcomes: BTreeMap<Outcome, u64>,
    /// Display attempts that got a valid code within 1 s of their scheduled time (goodput).
    pub good: u64,
    /// Display intents that started in the phase.
    pub intents: u64,
    /// Display attempts made for them (first tries and retries; re-displays count as intents).
    pub attempts: u64,
    /// Intents that ended with a valid code.
    pub intents_served: u64,
    /// Intents that ended with `UNKNOWN` ("check manually").
    pub intents_unknown: u64,
    /// Intents that gave up (5 attempts or 60 s without a code).
    pub intents_gave_up: u64,
    /// Non-display attempts by class.
    pub others: BTreeMap<OtherClass, ClassCounts>,
    /// The origin over the phase.
    pub origin: OriginWindow,
}

impl PhaseResult {
    /// Valid codes within 1 s per second.
    #[must_use]
    pub fn goodput(&self) -> f64 {
        self.good as f64 / self.duration.as_secs_f64().max(1e-9)
    }

    /// Share of display attempts answered with a valid code.
    #[must_use]
    pub fn valid_share(&self) -> f64 {
        let valid: u64 = Outcome::ALL
            .iter()
            .filter(|o| o.is_valid_code())
            .map(|o| self.recorder.count(*o))
            .sum();
        valid as f64 / self.recorder.total().max(1) as f64
    }

    /// Display attempts per intent.
    #[must_use]
    pub fn amplification(&self) -> f64 {
        self.attempts as f64 / self.intents.max(1) as f64
    }

    /// Origin goodput (completed minus wasted, per second) over its peak throughput.
    #[must_use]
    pub fn origin_utilisation(&self) -> f64 {
        let good = self.origin.completed.saturating_sub(self.origin.wasted) as f64;
        good / self.duration.as_secs_f64().max(1e-9) / self.origin.peak_throughput.max(1e-9)
    }
}

/// One second of one run; attempts are counted in the second they were scheduled in.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Second {
    /// Seconds from the start of the run.
    pub at: u32,
    /// Display attempts scheduled (first tries, retries and re-displays).
    pub offered: u64,
    /// Of those, by outcome (index: [`Outcome::index`]).
    pub by_outcome: [u64; 8],
    /// Of those, a valid code within 1 s.
    pub good: u64,
    /// Latency of all display attempts, milliseconds: p50, p99, p99.9 (0 without samples).
    pub latency_ms: [f64; 3],
}

/// One 100 ms sample of the origin's capacity model.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct OriginSample {
    /// Seconds from the start of the run.
    pub at: f64,
    /// Requests in service.
    pub in_service: u64,
    /// The knee now.
    pub knee: f64,
    /// Peak throughput now.
    pub peak_throughput: f64,
    /// Completed since the origin started (a counter).
    pub completed: u64,
    /// Wasted since the origin started (a counter).
    pub wasted: u64,
    /// Crashes since the origin started (a counter).
    pub crashes: u64,
    /// Down now.
    pub crashed: bool,
}

/// A whole run of one variant.
#[derive(Debug, Clone, Serialize)]
pub struct VariantRun {
    /// What was in front of the origin.
    pub variant: Variant,
    /// The scenario's name.
    pub scenario: String,
    /// The workload seed.
    pub seed: u64,
    /// The scenario's capacity figure, requests/s.
    pub capacity_rps: f64,
    /// People registered before the run.
    pub population: usize,
    /// The phases in order.
    pub phases: Vec<PhaseResult>,
    /// Every second of the run.
    pub seconds: Vec<Second>,
    /// The origin every 100 ms.
    pub origin_samples: Vec<OriginSample>,
    /// Schedule lag of the generator, p50/p99/max, microseconds.
    pub lag_us: [u64; 3],
    /// Of that, the dispatcher thread's own lateness, p50/p99/max, microseconds.
    pub dispatch_lag_us: [u64; 3],
    /// Whether the run counts: the generator kept to its schedule (lag p99 within 1 ms) and
    /// every change the scenario asked for was made.
    pub valid: bool,
    /// Changes the scenario asked for that could not be made (an origin too busy to take an
    /// admin call): the run went on without them and is invalid.
    pub problems: Vec<String>,
    /// Share of the generator's CPU time the hypervisor took away during the run, percent:
    /// a run invalid with much stolen says more about the machine than the generator.
    pub steal_percent: f64,
    /// CPU seconds the variant's own processes (proxy, nginx, issuer) used during the run.
    pub front_cpu_seconds: f64,
    /// CPU seconds the generator itself used during the run (overload.md §9.2: it should stay
    /// below 80 % of its CPU).
    pub generator_cpu_seconds: f64,
    /// WRONG answers, with why, at most 20 kept.
    pub wrong_examples: Vec<String>,
}

impl VariantRun {
    /// WRONG answers over the whole run.
    #[must_use]
    pub fn wrong(&self) -> u64 {
        self.phases
            .iter()
            .map(|p| p.recorder.count(Outcome::Wrong))
            .sum()
    }
}
