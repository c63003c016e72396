//! The surge benchmark's smoke run: `loadtests/scenarios/smoke.toml` (30 s: warm-up, 3x,
//! the origin hanging while people turn red, a crash and a cold return) against `shouhu
//! proxy` in front of the real origin, as `shouhu-loadtest run` does it. It must be valid
//! (the generator kept to its schedule; an invalid run is measured once more, and a host
//! that took over 1 % of the generator's CPU leaves the schedule unjudged) and WRONG must be
//! 0: no one got someone else's code, a forged one, or a colour greener than the truth.
#![expect(clippy::unwrap_used, reason = "tests")]

use std::path::Path;

use shouhu_loadtest::generator::{Mix, UserModel};
use shouhu_loadtest::outcome::Outcome;
use shouhu_loadtest::result::Variant;
use shouhu_loadtest::runner::{Options, bench};
use shouhu_loadtest::scenario::Scenario;

/// Runs: a run the generator could not keep to its schedule says the machine was busy, not
/// that shouhu failed, so it is measured once more; WRONG must be 0 in every run.
const RUNS: usize = 2;

/// Share of the generator's CPU the hypervisor may take (steal time, percent) before the
/// schedule lag says more about the host than about the generator. At 1 %, 0.3 s of a 30 s
/// run is gone in slices of milliseconds: enough by itself for a lag p99 over 1 ms.
const MAX_STEAL_PERCENT: f64 = 1.0;

#[test]
fn a_smoke_run_is_valid_and_never_wrong() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let scenario = Scenario::load(&root.join("loadtests/scenarios/smoke.toml")).unwrap();
    let mut attempt = 0;
    let (bench, _out) = loop {
        attempt += 1;
        let out = tempfile::tempdir().unwrap();
        let bench = bench(&Options {
            scenario: scenario.clone(),
            variants: vec![Variant::Shouhu],
            rounds: 1,
            population: 500,
            out: out.path().to_path_buf(),
            shouhu: env!("CARGO_BIN_EXE_shouhu").into(),
            mix: Mix::default(),
            model: UserModel::default(),
            progress: false,
            command: "cargo test -p shouhu --test loadtest_smoke".to_owned(),
        })
        .unwrap();
        eprintln!("{}", bench.summary);
        let run = &bench.runs[0];
        eprintln!(
            "run {attempt}: schedule lag p50/p99/max {:?} µs (dispatcher {:?} µs), {:.1} % of \
             the generator's CPU stolen by the hypervisor",
            run.lag_us, run.dispatch_lag_us, run.steal_percent
        );
        assert_eq!(run.wrong(), 0, "WRONG answers: {:?}", run.wrong_examples);
        if run.valid || attempt == RUNS {
            break (bench, out);
        }
    };
    let run = &bench.runs[0];
    if !run.valid && run.steal_percent >= MAX_STEAL_PERCENT {
        eprintln!(
            "NOT JUDGED: the generator's schedule: the hypervisor took {:.1} % of its CPU (lag \
             p99 {} µs); the other checks stand",
            run.steal_percent, run.lag_us[1]
        );
    } else {
        assert!(
            run.valid,
            "the generator fell behind in {RUNS} runs: schedule lag p50/p99/max {:?} µs (its \
             dispatcher {:?} µs), {:.1} % stolen",
            run.lag_us, run.dispatch_lag_us, run.steal_percent
        );
    }
    // It measured something: codes were shown in every phase, and the hanging origin's
    // phase was served by the cache and the fallback issuer.
    for p in &run.phases {
        let valid: u64 = Outcome::ALL
            .iter()
            .filter(|o| o.is_valid_code())
            .map(|o| p.recorder.count(*o))
            .sum();
        assert!(valid > 0, "phase {:?}: no valid code", p.name);
    }
    let hang = run
        .phases
        .iter()
        .find(|p| p.name == "origin hangs")
        .unwrap();
    assert!(hang.recorder.count(Outcome::Fallback) + hang.recorder.count(Outcome::StaleOk) > 0);
    assert_eq!(
        hang.recorder.count(Outcome::Timeout),
        0,
        "the proxy let users time out"
    );
    let summary = std::fs::read_to_string(&bench.report).unwrap();
    assert!(summary.contains("origin hangs"), "{summary}");
}
