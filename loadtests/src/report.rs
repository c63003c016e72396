//! The benchmark's written report (overload.md §9.7–9.8): [`summary_table`] is printed at the
//! end of `make bench` and pasted into notes; [`markdown`] is the run's `summary.md`, the same
//! tables followed by per-run and per-phase details; [`recovery`] is the recovery time both show.
//!
//! Several rounds of one variant appear as their median with the min–max range in brackets; a
//! ratio between variants is the ratio of their medians. Latencies count from the scheduled
//! send time and are in ms, shares are percentages, and "–" marks a figure without samples.

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::path::PathBuf;
use std::time::Duration;

use hdrhistogram::Histogram;

use crate::measure::MAX_LAG_P99;
use crate::outcome::Outcome;
use crate::result::{OtherClass, PhaseResult, Second, Variant, VariantRun};
use crate::scenario::Scenario;

/// A second has recovered when at least this percentage of the display attempts scheduled in it
/// got a valid code within 1 s.
pub const RECOVERED_PERCENT: u64 = 95;
/// Recovered seconds in a row that end a recovery.
pub const RECOVERED_FOR: u32 = 5;

/// The cell of a figure without samples.
const NO_SAMPLE: &str = "–";

/// How long after the start of phase `phase` the run recovered: the start of the first
/// [`RECOVERED_FOR`] seconds in a row, all inside the phase, in which at least
/// [`RECOVERED_PERCENT`] % of the display attempts scheduled in the second got a valid code
/// within 1 s. A second without attempts (or without a [`Second`] entry) counts as recovered.
/// `None` if that never happens within the phase, or there is no such phase.
#[must_use]
pub fn recovery(run: &VariantRun, phase: usize) -> Option<Duration> {
    let p = run.phases.get(phase)?;
    let (first, end) = (secs_ceil(p.start), secs_floor(p.start + p.duration));
    let seconds: BTreeMap<u32, &Second> = run
        .seconds
        .iter()
        .filter(|s| (first..end).contains(&s.at))
        .map(|s| (s.at, s))
        .collect();
    let mut streak = 0;
    for at in first..end {
        if seconds.get(&at).is_none_or(|s| recovered(s)) {
            streak += 1;
            if streak == RECOVERED_FOR {
                let since = Duration::from_secs(u64::from(at + 1 - RECOVERED_FOR));
                return Some(since.saturating_sub(p.start));
            }
        } else {
            streak = 0;
        }
    }
    None
}

fn recovered(s: &Second) -> bool {
    u128::from(s.good) * 100 >= u128::from(s.offered) * u128::from(RECOVERED_PERCENT)
}

fn secs_floor(d: Duration) -> u32 {
    u32::try_from(d.as_secs()).unwrap_or(u32::MAX)
}

fn secs_ceil(d: Duration) -> u32 {
    secs_floor(d).saturating_add(u32::from(d.subsec_nanos() > 0))
}

/// The headline tables: per variant whether its runs are valid and its WRONG total, then one
/// table per metric with a row per phase and one for the whole run, and a column per variant
/// (median over rounds, min–max in brackets). Goodput and p99 also get the ratios
/// shouhu/nginx and shouhu/direct.
#[must_use]
pub fn summary_table(runs: &[VariantRun]) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = write_summary(&mut out, runs);
    out
}

/// The report's `summary.md`: what was run, validity, the [`summary_table`], links to the
/// `plots` (by file name, so they sit next to it), then per phase and variant (first round)
/// the detailed counts, latencies, intents, other classes, origin and recovery.
#[must_use]
pub fn markdown(
    scenario: &Scenario,
    runs: &[VariantRun],
    plots: &[PathBuf],
    command: &str,
) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = write_markdown(&mut out, scenario, runs, plots, command);
    out
}

/// Runs grouped by variant in report order; rounds in run order.
fn by_variant(runs: &[VariantRun]) -> Vec<(Variant, Vec<&VariantRun>)> {
    Variant::ALL
        .into_iter()
        .map(|v| {
            (
                v,
                runs.iter().filter(|r| r.variant == v).collect::<Vec<_>>(),
            )
        })
        .filter(|(_, rounds)| !rounds.is_empty())
        .collect()
}

/// The headline figures of one round over one phase or several.
#[derive(Debug, Clone, Default)]
struct Figures {
    goodput: f64,
    valid_share: Option<f64>,
    utilisation: Option<f64>,
    crashes: f64,
    valid_p99_ms: Option<f64>,
    busy_share: Option<f64>,
    timeouts: f64,
    wrong: f64,
    amplification: Option<f64>,
    /// Seconds; infinite when it never recovered; `None` where it does not apply.
    recovery_s: Option<f64>,
}

impl Figures {
    fn of(phases: &[&PhaseResult]) -> Self {
        let sum = |f: fn(&PhaseResult) -> u64| -> u64 { phases.iter().map(|p| f(p)).sum() };
        let count = |o: Outcome| -> u64 { phases.iter().map(|p| p.recorder.count(o)).sum() };
        let display: u64 = Outcome::ALL.into_iter().map(count).sum();
        let valid: u64 = valid_outcomes().map(count).sum();
        let seconds: f64 = phases.iter().map(|p| p.duration.as_secs_f64()).sum();
        let origin_capacity: f64 = phases
            .iter()
            .map(|p| p.duration.as_secs_f64() * p.origin.peak_throughput)
            .sum();
        let origin_good = sum(|p| p.origin.completed.saturating_sub(p.origin.wasted));
        Self {
            goodput: ratio(sum(|p| p.good) as f64, seconds).unwrap_or(0.0),
            valid_share: ratio(valid as f64, display as f64),
            utilisation: ratio(origin_good as f64, origin_capacity),
            crashes: sum(|p| p.origin.crashes) as f64,
            valid_p99_ms: valid_latency(phases, 0.99).map(as_ms),
            busy_share: ratio(count(Outcome::Busy) as f64, display as f64),
            timeouts: count(Outcome::Timeout) as f64,
            wrong: count(Outcome::Wrong) as f64,
            amplification: ratio(sum(|p| p.attempts) as f64, sum(|p| p.intents) as f64),
            recovery_s: None,
        }
    }

    /// Per phase (recovery where the origin changed), then the whole run.
    fn of_run(run: &VariantRun, phases: usize) -> Vec<Option<Self>> {
        let mut rows: Vec<Option<Self>> = (0..phases)
            .map(|i| {
                let p = run.phases.get(i)?;
                let mut f = Self::of(&[p]);
                if p.origin_changed {
                    f.recovery_s =
                        Some(recovery(run, i).map_or(f64::INFINITY, |d| d.as_secs_f64()));
                }
                Some(f)
            })
            .collect();
        rows.push(Some(Self::of(&run.phases.iter().collect::<Vec<_>>())));
        rows
    }
}

fn valid_outcomes() -> impl Iterator<Item = Outcome> {
    Outcome::ALL.into_iter().filter(|o| o.is_valid_code())
}

fn ratio(a: f64, b: f64) -> Option<f64> {
    (b > 0.0).then(|| a / b)
}

/// Latency at `q` of all valid codes (FRESH, STALE_OK, FALLBACK) of `phases`, merged.
fn valid_latency(phases: &[&PhaseResult], q: f64) -> Option<Duration> {
    let mut merged: Option<Histogram<u64>> = None;
    for p in phases {
        for o in valid_outcomes() {
            let Some(h) = p.recorder.latency_histogram(o) else {
                continue;
            };
            merged
                .get_or_insert_with(|| Histogram::new_from(h))
                .add(h)
                .ok()?;
        }
    }
    merged
        .filter(|h| !h.is_empty())
        .map(|h| Duration::from_micros(h.value_at_quantile(q)))
}

/// One table of the summary.
struct Metric {
    title: String,
    value: fn(&Figures) -> Option<f64>,
    format: fn(f64) -> String,
    /// Add shouhu/nginx and shouhu/direct.
    ratios: bool,
    /// Leave out rows without a value in any variant (recovery applies to some phases only).
    sparse: bool,
}

fn metrics() -> [Metric; 10] {
    let plain =
        |title: &str, value: fn(&Figures) -> Option<f64>, format: fn(f64) -> String| Metric {
            title: title.to_owned(),
            value,
            format,
            ratios: false,
            sparse: false,
        };
    [
        Metric {
            ratios: true,
            ..plain(
                "Goodput: valid codes within 1 s (/s)",
                |f| Some(f.goodput),
                fixed1,
            )
        },
        plain(
            "Valid-code share of display attempts (%)",
            |f| f.valid_share,
            pct,
        ),
        plain(
            "Origin utilisation: origin goodput / X_max (%)",
            |f| f.utilisation,
            pct,
        ),
        plain("Origin crashes", |f| Some(f.crashes), count),
        Metric {
            ratios: true,
            ..plain(
                "p99 latency of valid codes (ms)",
                |f| f.valid_p99_ms,
                fmt_ms,
            )
        },
        plain("BUSY share of display attempts (%)", |f| f.busy_share, pct),
        plain("TIMEOUT (count)", |f| Some(f.timeouts), count),
        plain("WRONG (count, must be 0)", |f| Some(f.wrong), count),
        plain(
            "Amplification: display attempts per intent",
            |f| f.amplification,
            fixed2,
        ),
        Metric {
            sparse: true,
            ..plain(
                &format!(
                    "Recovery after an origin change (s): {RECOVERED_PERCENT} % valid within 1 s \
                     for {RECOVERED_FOR} s"
                ),
                |f| f.recovery_s,
                seconds,
            )
        },
    ]
}

/// Median, range and number of values, NaN left out.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Spread {
    median: f64,
    min: f64,
    max: f64,
    n: usize,
}

fn spread(mut values: Vec<f64>) -> Option<Spread> {
    values.retain(|v| !v.is_nan());
    values.sort_by(f64::total_cmp);
    let n = values.len();
    let (&min, &max) = (values.first()?, values.last()?);
    let median = if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    };
    Some(Spread {
        median,
        min,
        max,
        n,
    })
}

fn cell(s: Option<Spread>, format: fn(f64) -> String) -> String {
    match s {
        None => NO_SAMPLE.to_owned(),
        Some(s) if s.n == 1 || s.min.total_cmp(&s.max).is_eq() => format(s.median),
        Some(s) => format!("{} [{}–{}]", format(s.median), format(s.min), format(s.max)),
    }
}

fn write_summary(out: &mut String, runs: &[VariantRun]) -> fmt::Result {
    let groups = by_variant(runs);
    let Some(reference) = runs.first() else {
        return writeln!(out, "No runs.");
    };
    let phases = reference.phases.len();
    let mut labels: Vec<String> = reference.phases.iter().map(|p| p.name.clone()).collect();
    labels.push("**whole run**".to_owned());
    let figures: Vec<(Variant, Vec<Vec<Option<Figures>>>)> = groups
        .iter()
        .map(|(v, rounds)| {
            (
                *v,
                rounds.iter().map(|r| Figures::of_run(r, phases)).collect(),
            )
        })
        .collect();

    let rounds = groups
        .iter()
        .map(|(v, r)| format!("{v} {}", r.len()))
        .collect::<Vec<_>>()
        .join(", ");
    writeln!(
        out,
        "Scenario {} (seed {}); rounds: {rounds}. Cells are medians over rounds, [min–max] \
         when they differ; ratios are of medians.\n",
        reference.scenario, reference.seed
    )?;
    for (v, rounds) in &groups {
        writeln!(out, "- **{v}**: {}", validity_line(rounds))?;
    }

    let variants: Vec<Variant> = figures.iter().map(|(v, _)| *v).collect();
    let shouhu = variants.iter().position(|v| *v == Variant::Shouhu);
    let others: Vec<usize> = [Variant::Nginx, Variant::Direct]
        .into_iter()
        .filter_map(|v| variants.iter().position(|x| *x == v))
        .collect();
    for m in metrics() {
        let ratio_columns: &[usize] = match (m.ratios, shouhu) {
            (true, Some(_)) => &others,
            _ => &[],
        };
        let mut table = String::new();
        for (row, label) in labels.iter().enumerate() {
            let spreads: Vec<Option<Spread>> = figures
                .iter()
                .map(|(_, rounds)| {
                    spread(
                        rounds
                            .iter()
                            .filter_map(|r| r.get(row)?.as_ref().and_then(m.value))
                            .collect(),
                    )
                })
                .collect();
            if m.sparse && spreads.iter().all(Option::is_none) {
                continue;
            }
            let mut cells: Vec<String> = spreads.iter().map(|s| cell(*s, m.format)).collect();
            for &other in ratio_columns {
                let median = |i: Option<usize>| spreads.get(i?)?.map(|s| s.median);
                let r = median(shouhu)
                    .zip(median(Some(other)))
                    .and_then(|(a, b)| ratio(a, b).filter(|r| r.is_finite()));
                cells.push(r.map_or_else(|| NO_SAMPLE.to_owned(), fixed2));
            }
            writeln!(table, "| {label} | {} |", cells.join(" | "))?;
        }
        if table.is_empty() {
            continue;
        }
        let mut header: Vec<String> = variants.iter().map(ToString::to_string).collect();
        header.extend(
            ratio_columns
                .iter()
                .map(|&i| format!("shouhu/{}", variants[i])),
        );
        writeln!(out, "\n**{}**\n", m.title)?;
        writeln!(out, "| phase | {} |", header.join(" | "))?;
        writeln!(out, "|---|{}", "---:|".repeat(header.len()))?;
        out.push_str(&table);
    }
    Ok(())
}

/// `valid` or why not, then the WRONG total, for the rounds of one variant.
fn validity_line(rounds: &[&VariantRun]) -> String {
    let invalid: Vec<String> = rounds
        .iter()
        .enumerate()
        .filter(|(_, r)| !r.valid)
        .map(|(i, r)| {
            let mut why = invalid_reason(r);
            if rounds.len() > 1 {
                why.push_str(&format!(" (round {} of {})", i + 1, rounds.len()));
            }
            why
        })
        .collect();
    let validity = if invalid.is_empty() {
        "valid".to_owned()
    } else {
        invalid.join("; ")
    };
    let wrong: u64 = rounds.iter().map(|r| r.wrong()).sum();
    let must = if wrong == 0 { "" } else { " (must be 0)" };
    let n = rounds.len();
    let s = if n == 1 { "" } else { "s" };
    format!("{validity}; WRONG total {wrong}{must} ({n} round{s})")
}

/// Why `run` is invalid, starting with `INVALID: `.
pub(crate) fn invalid_reason(run: &VariantRun) -> String {
    let lag_p99 = Duration::from_micros(run.lag_us[1]);
    if !run.problems.is_empty() {
        let mut why = format!("INVALID: {}", run.problems.join("; "));
        if lag_p99 > MAX_LAG_P99 {
            why.push_str(&format!("; schedule lag p99 {} ms", ms_short(lag_p99)));
        }
        why
    } else if lag_p99 > MAX_LAG_P99 {
        let mut why = format!(
            "INVALID: schedule lag p99 {} ms > {} ms",
            ms_short(lag_p99),
            ms_short(MAX_LAG_P99)
        );
        if run.steal_percent >= 0.5 {
            why.push_str(&format!(
                " (the hypervisor took {:.1} % of the generator's CPU)",
                run.steal_percent
            ));
        }
        why
    } else {
        format!(
            "INVALID: the generator fell behind (schedule lag p99 {} ms)",
            ms_short(lag_p99)
        )
    }
}

fn write_markdown(
    out: &mut String,
    scenario: &Scenario,
    runs: &[VariantRun],
    plots: &[PathBuf],
    command: &str,
) -> fmt::Result {
    let groups = by_variant(runs);
    writeln!(out, "# Surge benchmark: {}\n", scenario.name)?;
    let mut populations: Vec<usize> = runs.iter().map(|r| r.population).collect();
    populations.sort_unstable();
    populations.dedup();
    let population = if populations.is_empty() {
        NO_SAMPLE.to_owned()
    } else {
        populations
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    writeln!(out, "| | |\n|---|---|")?;
    writeln!(
        out,
        "| scenario | {}: {} phases, {} s |",
        scenario.name,
        scenario.phases.len(),
        scenario.duration().as_secs()
    )?;
    writeln!(out, "| seed | {} |", scenario.seed)?;
    writeln!(out, "| capacity C | {} req/s |", scenario.capacity_rps)?;
    writeln!(out, "| population | {population} people |")?;
    writeln!(out, "\nCommand:\n\n```sh\n{}\n```\n", command.trim_end())?;

    writeln!(out, "## Runs\n")?;
    writeln!(
        out,
        "| variant | round | validity | schedule lag p50 / p99 / max (ms) | front CPU (s) | generator CPU (s) | WRONG |"
    )?;
    writeln!(out, "|---|---:|---|---:|---:|---:|---:|")?;
    for (v, rounds) in &groups {
        for (i, r) in rounds.iter().enumerate() {
            let validity = if r.valid {
                "valid".to_owned()
            } else {
                invalid_reason(r)
            };
            let [p50, p99, max] = r.lag_us.map(|us| ms(Duration::from_micros(us)));
            writeln!(
                out,
                "| {v} | {} | {validity} | {p50} / {p99} / {max} | {:.1} | {:.1} | {} |",
                i + 1,
                r.front_cpu_seconds,
                r.generator_cpu_seconds,
                r.wrong()
            )?;
        }
    }
    for (v, rounds) in &groups {
        for (i, r) in rounds.iter().enumerate() {
            if r.wrong_examples.is_empty() {
                continue;
            }
            writeln!(out, "\nWRONG examples, {v} round {}:\n\n```", i + 1)?;
            for e in r.wrong_examples.iter().take(20) {
                writeln!(out, "{e}")?;
            }
            writeln!(out, "```")?;
        }
    }

    writeln!(out, "\n## Summary\n")?;
    write_summary(out, runs)?;

    if !plots.is_empty() {
        writeln!(out, "\n## Plots (first round of each variant)\n")?;
        for p in plots {
            let name = p.file_name().map_or_else(
                || p.display().to_string(),
                |n| n.to_string_lossy().into_owned(),
            );
            let alt = name.trim_end_matches(".png");
            writeln!(out, "![{alt}]({name})\n")?;
        }
    }

    let Some(reference) = runs.first() else {
        return Ok(());
    };
    writeln!(out, "## Phases (first round of each variant)")?;
    for (i, phase) in reference.phases.iter().enumerate() {
        let start = phase.start.as_secs_f64();
        writeln!(
            out,
            "\n### {}. {} ({start:.0}–{:.0} s, load {} × C{})",
            i + 1,
            phase.name,
            start + phase.duration.as_secs_f64(),
            phase.load,
            if phase.origin_changed {
                ", origin changed"
            } else {
                ""
            }
        )?;
        for (v, rounds) in &groups {
            let Some(run) = rounds.first() else { continue };
            let Some(p) = run.phases.get(i) else { continue };
            writeln!(out, "\n#### {v} (round 1 of {})\n", rounds.len())?;
            write_phase(out, run, i, p)?;
        }
    }
    Ok(())
}

fn write_phase(out: &mut String, run: &VariantRun, index: usize, p: &PhaseResult) -> fmt::Result {
    let display: u64 = Outcome::ALL.into_iter().map(|o| p.recorder.count(o)).sum();
    writeln!(
        out,
        "Goodput {} /s (valid code within 1 s), {} display attempts scheduled in the phase.\n",
        fixed1(p.goodput()),
        display
    )?;
    writeln!(
        out,
        "| outcome | count | share (%) | p50 (ms) | p99 (ms) | p99.9 (ms) | max (ms) |"
    )?;
    writeln!(out, "|---|---:|---:|---:|---:|---:|---:|")?;
    let share = |n: u64| ratio(n as f64, display as f64).map_or_else(|| NO_SAMPLE.to_owned(), pct);
    let latency = |at: &dyn Fn(f64) -> Option<Duration>| {
        [0.5, 0.99, 0.999, 1.0]
            .map(|q| at(q).map_or_else(|| NO_SAMPLE.to_owned(), ms))
            .join(" | ")
    };
    for o in Outcome::ALL {
        let n = p.recorder.count(o);
        let l = latency(&|q| p.recorder.latency(o, q));
        writeln!(out, "| {o} | {n} | {} | {l} |", share(n))?;
    }
    let valid: u64 = valid_outcomes().map(|o| p.recorder.count(o)).sum();
    let l = latency(&|q| valid_latency(&[p], q));
    writeln!(out, "| valid codes | {valid} | {} | {l} |", share(valid))?;

    let of_intents = |n: u64| {
        let s = ratio(n as f64, p.intents as f64).map_or_else(|| NO_SAMPLE.to_owned(), pct);
        format!("{n} ({s} %)")
    };
    writeln!(
        out,
        "\n| intents | served | unknown | gave up | attempts | attempts / intent |"
    )?;
    writeln!(out, "|---:|---:|---:|---:|---:|---:|")?;
    writeln!(
        out,
        "| {} | {} | {} | {} | {} | {} |",
        p.intents,
        of_intents(p.intents_served),
        of_intents(p.intents_unknown),
        of_intents(p.intents_gave_up),
        p.attempts,
        fixed2(p.amplification())
    )?;

    if !p.others.is_empty() {
        writeln!(out, "\n| other requests | ok | busy | error | timeout |")?;
        writeln!(out, "|---|---:|---:|---:|---:|")?;
        for class in OtherClass::ALL {
            let Some(c) = p.others.get(&class) else {
                continue;
            };
            writeln!(
                out,
                "| {} | {} | {} | {} | {} |",
                class.as_str(),
                c.ok,
                c.busy,
                c.error,
                c.timeout
            )?;
        }
    }

    let o = &p.origin;
    let of_knee = |n: f64| ratio(n, o.knee).map_or_else(|| NO_SAMPLE.to_owned(), fixed2);
    let utilisation = (o.peak_throughput > 0.0).then(|| p.origin_utilisation());
    writeln!(
        out,
        "\n| origin: completed | wasted | crashes | X_max (/s) | knee | mean in service (× knee) \
         | max in service (× knee) | ≤ 1.5 × knee (% of samples) | down (% of samples) \
         | utilisation (%) |"
    )?;
    writeln!(out, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")?;
    writeln!(
        out,
        "| {} | {} | {} | {} | {} | {} ({}) | {} ({}) | {} | {} | {} |",
        o.completed,
        o.wasted,
        o.crashes,
        fixed1(o.peak_throughput),
        fixed1(o.knee),
        fixed1(o.mean_in_service),
        of_knee(o.mean_in_service),
        o.max_in_service,
        of_knee(o.max_in_service as f64),
        pct(o.within_knee_share),
        pct(o.down_share),
        utilisation.map_or_else(|| NO_SAMPLE.to_owned(), pct)
    )?;

    writeln!(out)?;
    if p.origin_changed {
        let rec = recovery(run, index).map_or_else(
            || "not within the phase".to_owned(),
            |d| format!("{} s after the phase start", d.as_secs_f64()),
        );
        writeln!(
            out,
            "Recovery ({RECOVERED_PERCENT} % of attempts a valid code within 1 s, \
             {RECOVERED_FOR} s in a row): {rec}.  "
        )?;
    }
    let [p50, p99, max] = [0.5, 0.99, 1.0].map(|q| ms(p.recorder.lag(q)));
    writeln!(
        out,
        "Schedule lag p50 / p99 / max: {p50} / {p99} / {max} ms."
    )
}

fn as_ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// A duration in ms, with three significant digits below 100 ms.
fn ms(d: Duration) -> String {
    fmt_ms(as_ms(d))
}

fn fmt_ms(v: f64) -> String {
    if v < 1.0 {
        format!("{v:.3}")
    } else if v < 10.0 {
        format!("{v:.2}")
    } else if v < 100.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.0}")
    }
}

/// [`ms`] without trailing zeros, for prose.
fn ms_short(d: Duration) -> String {
    let s = ms(d);
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        s
    }
}

/// A share as a percentage with one decimal.
fn pct(share: f64) -> String {
    format!("{:.1}", share * 100.0)
}

fn fixed1(v: f64) -> String {
    format!("{v:.1}")
}

fn fixed2(v: f64) -> String {
    format!("{v:.2}")
}

/// A count; a median of an even number of rounds may end in .5.
fn count(v: f64) -> String {
    if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

fn seconds(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.0}")
    } else {
        "never".to_owned()
    }
}

/// Hand-built runs for the tests of this module and of `plot`.
#[cfg(test)]
pub(crate) mod testing {
    #![expect(clippy::unwrap_used, reason = "tests")]

    use std::collections::BTreeMap;
    use std::time::Duration;

    use crate::measure::{Recorder, Timing};
    use crate::outcome::Outcome;
    use crate::result::{OriginSample, OriginWindow, PhaseResult, Second, Variant, VariantRun};

    /// A phase of `secs` seconds from `start`, with `n` attempts of each `(outcome, n,
    /// latency_ms)` spread over it; `good` counts the valid ones within 1 s.
    pub(crate) fn phase(
        name: &str,
        start: u64,
        secs: u64,
        origin_changed: bool,
        attempts: &[(Outcome, u64, u64)],
    ) -> PhaseResult {
        let mut recorder = Recorder::new().unwrap();
        let mut outcomes = BTreeMap::new();
        let mut good = 0;
        for &(o, n, latency_ms) in attempts {
            for i in 0..n {
                let at = Duration::from_secs(start) + Duration::from_millis(i * 1000 * secs / n);
                let done = at + Duration::from_millis(latency_ms);
                recorder.record(
                    o,
                    Timing {
                        scheduled: at,
                        sent: at,
                        done,
                    },
                );
            }
            *outcomes.entry(o).or_insert(0) += n;
            if o.is_valid_code() && latency_ms <= 1000 {
                good += n;
            }
        }
        let total: u64 = attempts.iter().map(|a| a.1).sum();
        PhaseResult {
            name: name.to_owned(),
            start: Duration::from_secs(start),
            duration: Duration::from_secs(secs),
            load: 1.0,
            origin_changed,
            recorder,
            outcomes,
            good,
            intents: total,
            attempts: total,
            intents_served: good,
            intents_unknown: 0,
            intents_gave_up: total - good,
            others: BTreeMap::new(),
            origin: OriginWindow {
                completed: 400 * secs,
                wasted: 0,
                crashes: 0,
                peak_throughput: 500.0,
                knee: 10.0,
                mean_in_service: 8.0,
                max_in_service: 14,
                within_knee_share: 1.0,
                down_share: 0.0,
            },
        }
    }

    /// A valid run of `phases`, with a [`Second`] per second whose counts are the phase's
    /// averages and 100 ms origin samples at the knee.
    pub(crate) fn run(variant: Variant, phases: Vec<PhaseResult>) -> VariantRun {
        let mut seconds = Vec::new();
        for p in &phases {
            let secs = p.duration.as_secs().max(1);
            for at in p.start.as_secs()..p.start.as_secs() + secs {
                let mut by_outcome = [0; 8];
                for o in Outcome::ALL {
                    by_outcome[o.index()] = p.recorder.count(o) / secs;
                }
                seconds.push(Second {
                    at: u32::try_from(at).unwrap(),
                    offered: by_outcome.iter().sum(),
                    by_outcome,
                    good: p.good / secs,
                    latency_ms: [5.0, 50.0, 200.0],
                });
            }
        }
        let end = phases
            .last()
            .map_or(0, |p| (p.start + p.duration).as_secs());
        let origin_samples = (0..end * 10)
            .map(|i| OriginSample {
                at: i as f64 / 10.0,
                in_service: 10,
                knee: 10.0,
                peak_throughput: 500.0,
                completed: i * 40,
                wasted: 0,
                crashes: 0,
                crashed: false,
            })
            .collect();
        VariantRun {
            variant,
            scenario: "test".to_owned(),
            seed: 7,
            capacity_rps: 500.0,
            population: 1000,
            phases,
            seconds,
            origin_samples,
            dispatch_lag_us: [0; 3],
            lag_us: [50, 200, 900],
            valid: true,
            problems: Vec::new(),
            front_cpu_seconds: 1.5,
            generator_cpu_seconds: 2.5,
            steal_percent: 0.0,
            wrong_examples: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used, reason = "tests")]

    use super::testing::{phase, run};
    use super::*;

    /// Two phases of 10 s: the second changed the origin.
    fn two_phases(good_per_s: u64) -> Vec<PhaseResult> {
        vec![
            phase(
                "calm",
                0,
                10,
                false,
                &[(Outcome::Fresh, good_per_s * 10, 10)],
            ),
            phase(
                "storm",
                10,
                10,
                true,
                &[(Outcome::Fresh, good_per_s * 10, 10)],
            ),
        ]
    }

    fn set_good(run: &mut VariantRun, at: u32, good: u64, offered: u64) {
        let s = run.seconds.iter_mut().find(|s| s.at == at).unwrap();
        s.good = good;
        s.offered = offered;
    }

    #[test]
    fn recovery_is_the_start_of_the_first_five_good_seconds() {
        let mut r = run(Variant::Shouhu, two_phases(100));
        // Phase "storm" is seconds 10..20. Bad at 10 and 11, good at 12 and 13, bad at 14
        // (94 %), then good from 15 to its end: recovered 5 s after its start.
        for (at, good) in [(10, 0), (11, 50), (14, 94)] {
            set_good(&mut r, at, good, 100);
        }
        // A second without attempts counts as recovered.
        set_good(&mut r, 17, 0, 0);
        // Exactly 95 % is recovered.
        set_good(&mut r, 18, 95, 100);
        assert_eq!(recovery(&r, 1), Some(Duration::from_secs(5)));
        // The first phase is all good from its start.
        assert_eq!(recovery(&r, 0), Some(Duration::ZERO));
        assert_eq!(recovery(&r, 2), None);
    }

    #[test]
    fn recovery_is_none_when_the_good_run_is_too_short_or_outside_the_phase() {
        let mut r = run(Variant::Shouhu, two_phases(100));
        // Good only in 16..20: four seconds left in the phase; the next phase does not count.
        for at in 10..16 {
            set_good(&mut r, at, 10, 100);
        }
        assert_eq!(recovery(&r, 1), None);
        // Every second bad.
        for at in 16..20 {
            set_good(&mut r, at, 94, 100);
        }
        assert_eq!(recovery(&r, 1), None);
        let text = summary_table(&[r]);
        assert!(text.contains("| storm | never |"), "{text}");
    }

    /// The line of the table under `title` whose first cell is `row`.
    fn row<'a>(text: &'a str, title: &str, row: &str) -> &'a str {
        let table = text.split(&format!("**{title}")).nth(1).unwrap();
        table
            .lines()
            .find(|l| l.starts_with(&format!("| {row} |")))
            .unwrap_or_else(|| panic!("no row {row} under {title}: {text}"))
    }

    #[test]
    fn the_table_shows_the_goodput_put_in_and_the_ratios() {
        let mut direct = run(Variant::Direct, two_phases(50));
        direct.phases[0].good = 1234;
        let nginx = run(Variant::Nginx, two_phases(100));
        let shouhu = run(Variant::Shouhu, two_phases(200));
        let text = summary_table(&[shouhu, direct, nginx]);
        let header = text.lines().find(|l| l.starts_with("| phase |")).unwrap();
        assert_eq!(
            header,
            "| phase | direct | nginx | shouhu | shouhu/nginx | shouhu/direct |"
        );
        // 1234 good in 10 s.
        assert_eq!(
            row(&text, "Goodput", "calm"),
            "| calm | 123.4 | 100.0 | 200.0 | 2.00 | 1.62 |"
        );
        assert_eq!(
            row(&text, "Goodput", "storm"),
            "| storm | 50.0 | 100.0 | 200.0 | 2.00 | 4.00 |"
        );
        // Whole run: (1234 + 500) / 20 s.
        assert_eq!(
            row(&text, "Goodput", "**whole run**"),
            "| **whole run** | 86.7 | 100.0 | 200.0 | 2.00 | 2.31 |"
        );
        // All attempts were FRESH in 10 ms: p99 ratio 1, valid share 100 %.
        assert!(row(&text, "p99 latency", "calm").ends_with("| 1.00 | 1.00 |"));
        assert_eq!(
            row(&text, "Valid-code share", "calm"),
            "| calm | 100.0 | 100.0 | 100.0 |"
        );
        // Recovery only where the origin changed.
        let recovery = text.split("**Recovery").nth(1).unwrap();
        assert!(!recovery.contains("| calm |"), "{text}");
        assert!(recovery.contains("| storm | 0 | 0 | 0 |"), "{text}");
    }

    #[test]
    fn the_median_over_three_rounds_is_the_middle_one() {
        let rounds: Vec<VariantRun> = [100, 300, 200]
            .into_iter()
            .map(|g| run(Variant::Shouhu, two_phases(g)))
            .chain([run(Variant::Nginx, two_phases(100))])
            .collect();
        let text = summary_table(&rounds);
        assert_eq!(
            row(&text, "Goodput", "calm"),
            "| calm | 100.0 | 200.0 [100.0–300.0] | 2.00 |"
        );
        assert!(
            text.contains("- **shouhu**: valid; WRONG total 0 (3 rounds)"),
            "{text}"
        );
    }

    #[test]
    fn p99_merges_the_valid_classes() {
        // 98 FRESH at 10 ms and 2 STALE_OK at 500 ms: neither class alone has a p99 of 500 ms.
        let p = phase(
            "mixed",
            0,
            10,
            false,
            &[
                (Outcome::Fresh, 98, 10),
                (Outcome::StaleOk, 2, 500),
                (Outcome::Busy, 100, 1),
            ],
        );
        let text = summary_table(&[run(Variant::Shouhu, vec![p])]);
        assert_eq!(row(&text, "p99 latency", "mixed"), "| mixed | 500 |");
        assert_eq!(row(&text, "BUSY share", "mixed"), "| mixed | 50.0 |");
        assert_eq!(row(&text, "Valid-code share", "mixed"), "| mixed | 50.0 |");
    }

    #[test]
    fn a_change_that_was_not_made_makes_the_run_invalid() {
        let mut r = run(Variant::Direct, two_phases(10));
        r.valid = false;
        r.problems = vec![
            "phase \"origin hangs\": changing the origin: 10 tries, a second apart, all failed: \
             POST /admin/fault: no answer within 2 s"
                .to_owned(),
        ];
        let text = summary_table(&[r.clone()]);
        assert!(
            text.contains(
                "- **direct**: INVALID: phase \"origin hangs\": changing the origin: 10 tries"
            ),
            "{text}"
        );
        r.lag_us = [300, 2500, 9000];
        assert!(
            invalid_reason(&r).ends_with("no answer within 2 s; schedule lag p99 2.5 ms"),
            "{}",
            invalid_reason(&r)
        );
    }

    #[test]
    fn wrong_answers_and_invalid_runs_are_flagged() {
        let p = phase(
            "p",
            0,
            10,
            false,
            &[(Outcome::Fresh, 100, 10), (Outcome::Wrong, 3, 10)],
        );
        let mut bad = run(Variant::Nginx, vec![p]);
        bad.valid = false;
        bad.lag_us = [300, 2500, 9000];
        bad.wrong_examples = vec!["subject 17 got the code of subject 18".to_owned()];
        let good = run(Variant::Shouhu, two_phases(10));
        let runs = [bad, good];
        let text = summary_table(&runs);
        assert!(
            text.contains(
                "- **nginx**: INVALID: schedule lag p99 2.5 ms > 1 ms; WRONG total 3 (must be 0)"
            ),
            "{text}"
        );
        assert!(
            text.contains("- **shouhu**: valid; WRONG total 0"),
            "{text}"
        );
        assert_eq!(row(&text, "WRONG", "p"), "| p | 3 | 0 |");

        let scenario = Scenario::from_toml(
            "t.toml",
            "name = \"t\"\ncapacity_rps = 500\nseed = 7\n[[phase]]\nname = \"p\"\n\
             duration = \"10s\"\nload = 1\n",
        )
        .unwrap();
        let md = markdown(
            &scenario,
            &runs,
            &[PathBuf::from("/tmp/x/latency.png")],
            "make bench ROUNDS=1",
        );
        for expected in [
            "# Surge benchmark: t",
            "| seed | 7 |",
            "| capacity C | 500 req/s |",
            "| population | 1000 people |",
            "make bench ROUNDS=1",
            "| nginx | 1 | INVALID: schedule lag p99 2.5 ms > 1 ms | 0.300 / 2.50 / 9.00 | 1.5 | 2.5 | 3 |",
            "subject 17 got the code of subject 18",
            "![latency](latency.png)",
            "### 1. p (0–10 s, load 1 × C)",
            "#### nginx (round 1 of 1)",
            "| WRONG | 3 | 2.9 |",
            "Goodput 10.0 /s",
        ] {
            assert!(md.contains(expected), "{expected:?} missing from:\n{md}");
        }
    }

    #[test]
    fn the_details_show_recovery_and_the_origin() {
        let mut r = run(Variant::Shouhu, two_phases(100));
        set_good(&mut r, 10, 0, 100);
        r.phases[1].origin.max_in_service = 15;
        let scenario = Scenario::from_toml(
            "t.toml",
            "name = \"t\"\ncapacity_rps = 500\n[[phase]]\nname = \"calm\"\nduration = \"10s\"\n\
             load = 1\n[[phase]]\nname = \"storm\"\nduration = \"10s\"\nload = 1\n\
             origin = { fault = \"hang\" }\n",
        )
        .unwrap();
        let md = markdown(&scenario, &[r], &[], "cmd");
        let storm = md.split("### 2. storm").nth(1).unwrap();
        assert!(
            storm.contains("5 s in a row): 1 s after the phase start."),
            "{storm}"
        );
        // 400 completed per s of 500: 80 %; max 15 in service is 1.5 x the knee.
        assert!(
            storm.contains(
                "| 4000 | 0 | 0 | 500.0 | 10.0 | 8.0 (0.80) | 15 (1.50) | 100.0 | 0.0 | 80.0 |"
            ),
            "{storm}"
        );
        let calm = md
            .split("### 1. calm")
            .nth(1)
            .unwrap()
            .split("### 2.")
            .next()
            .unwrap();
        assert!(!calm.contains("Recovery"), "{calm}");
    }

    #[test]
    fn formats() {
        assert_eq!(ms(Duration::from_micros(123)), "0.123");
        assert_eq!(ms(Duration::from_micros(4_560)), "4.56");
        assert_eq!(ms(Duration::from_micros(45_600)), "45.6");
        assert_eq!(ms(Duration::from_micros(4_560_000)), "4560");
        assert_eq!(ms_short(Duration::from_millis(1)), "1");
        assert_eq!(pct(0.123_45), "12.3");
        assert_eq!(count(2.5), "2.5");
        assert_eq!(count(3.0), "3");
        assert_eq!(seconds(f64::INFINITY), "never");
        assert_eq!(cell(None, fixed1), "–");
    }
}
