//! The benchmark's PNG plots, drawn with `plotters` from the first round of each variant.
//!
//! One PNG per kind, with one panel per variant stacked vertically on the same axes, so the
//! variants compare at a glance: `offered-served.png` (display attempts per second by outcome
//! against the offered attempts), `latency.png` (p50/p99/p99.9 per second, log scale) and
//! `origin.png` (requests in service against the knee, with the origin's down time shaded).
//! Phase starts are marked on every panel.
//!
//! Text is drawn with DejaVu Sans, registered from its file at the first call: `plotters`'
//! `ab_glyph` backend does no system font lookup.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::Context as _;
use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::register_font;

use crate::outcome::Outcome;
use crate::result::{Variant, VariantRun};

/// The font the plots use (Debian's `fonts-dejavu-core`).
pub const FONT_PATH: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

/// Width of every PNG, pixels.
pub const WIDTH: u32 = 1200;
/// Height of one variant's panel, pixels.
pub const PANEL_HEIGHT: u32 = 420;

/// The name the font is registered under; `plotters` looks fonts up by family name.
const FAMILY: &str = "sans-serif";
/// Width of the legend column right of each chart, pixels.
const LEGEND_WIDTH: u32 = 150;

type Area<'a> = DrawingArea<BitMapBackend<'a>, plotters::coord::Shift>;
type Chart<'c, 'b, Y> = ChartContext<'c, BitMapBackend<'b>, Cartesian2d<RangedCoordf64, Y>>;

/// Writes `offered-served.png`, `latency.png` and `origin.png` into `dir` (created if need
/// be), each with a panel per variant (its first round in `runs`), and returns their paths.
/// Nothing is written without runs.
///
/// # Errors
/// The font is missing (the message says to install `fonts-dejavu-core`), `dir` cannot be
/// created, or a PNG cannot be drawn or written.
pub fn write_plots(dir: &Path, runs: &[VariantRun]) -> anyhow::Result<Vec<PathBuf>> {
    register_dejavu()?;
    let firsts: Vec<&VariantRun> = Variant::ALL
        .iter()
        .filter_map(|v| runs.iter().find(|r| r.variant == *v))
        .collect();
    if firsts.is_empty() {
        return Ok(Vec::new());
    }
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    let axes = Axes::of(&firsts);
    let kinds: [(&str, PanelFn); 3] = [
        ("offered-served.png", offered_served),
        ("latency.png", latency),
        ("origin.png", origin),
    ];
    let mut written = Vec::new();
    for (name, draw) in kinds {
        let path = dir.join(name);
        draw_panels(&path, &firsts, &axes, draw)
            .with_context(|| format!("plot {}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}

/// Registers DejaVu Sans once per process; its bytes stay for the process's life, as
/// `plotters` keeps a `'static` reference.
fn register_dejavu() -> anyhow::Result<()> {
    static REGISTERED: OnceLock<Result<(), String>> = OnceLock::new();
    REGISTERED
        .get_or_init(|| {
            let bytes = std::fs::read(FONT_PATH)
                .map_err(|e| format!("plot font {FONT_PATH}: {e}; install fonts-dejavu-core"))?;
            let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            register_font(FAMILY, FontStyle::Normal, bytes).map_err(|_| {
                format!("plot font {FONT_PATH}: not a usable font; install fonts-dejavu-core")
            })
        })
        .clone()
        .map_err(anyhow::Error::msg)
}

/// The axes every panel of a kind shares.
struct Axes {
    /// End of the time axis, seconds.
    end_s: f64,
    /// Largest attempts per second (offered or answered).
    attempts: f64,
    /// Latency range, ms (log scale).
    latency_ms: (f64, f64),
    /// Requests in service range (log scale).
    in_service: (f64, f64),
}

/// Lowest value the log axes show; smaller values (zero) are drawn at it.
const IN_SERVICE_FLOOR: f64 = 0.5;

impl Axes {
    fn of(runs: &[&VariantRun]) -> Self {
        let end_s = runs
            .iter()
            .flat_map(|r| {
                let phases = r
                    .phases
                    .iter()
                    .map(|p| (p.start + p.duration).as_secs_f64());
                let seconds = r.seconds.iter().map(|s| f64::from(s.at) + 1.0);
                let samples = r.origin_samples.iter().map(|s| s.at);
                phases.chain(seconds).chain(samples)
            })
            .fold(1.0, f64::max);
        let attempts = runs
            .iter()
            .flat_map(|r| &r.seconds)
            .map(|s| s.offered.max(s.by_outcome.iter().sum()) as f64)
            .fold(1.0, f64::max);
        let latencies = || {
            runs.iter()
                .flat_map(|r| &r.seconds)
                .flat_map(|s| s.latency_ms)
                .filter(|v| *v > 0.0 && v.is_finite())
        };
        let lo = latencies().fold(f64::INFINITY, f64::min);
        let hi = latencies().fold(0.0, f64::max);
        let latency_ms = if lo.is_finite() {
            (decade_below(lo).max(1e-3), decade_above(hi.max(1000.0)))
        } else {
            (0.1, 10_000.0)
        };
        let in_service = runs
            .iter()
            .flat_map(|r| &r.origin_samples)
            .map(|s| (s.in_service as f64).max(1.5 * s.knee))
            .fold(1.0, f64::max);
        Self {
            end_s: end_s.ceil(),
            attempts: attempts * 1.15,
            latency_ms,
            in_service: (IN_SERVICE_FLOOR, decade_above(in_service * 1.2)),
        }
    }
}

fn decade_below(v: f64) -> f64 {
    10f64.powf(v.log10().floor())
}

fn decade_above(v: f64) -> f64 {
    10f64.powf(v.log10().ceil())
}

type PanelFn = fn(&Area<'_>, &VariantRun, &Axes) -> anyhow::Result<Vec<LegendEntry>>;

/// One PNG with a panel per run, each a chart with its legend to the right.
fn draw_panels(
    path: &Path,
    runs: &[&VariantRun],
    axes: &Axes,
    draw: PanelFn,
) -> anyhow::Result<()> {
    let height = PANEL_HEIGHT * u32::try_from(runs.len()).unwrap_or(1);
    let root = BitMapBackend::new(path, (WIDTH, height)).into_drawing_area();
    root.fill(&WHITE)?;
    for (panel, run) in root.split_evenly((runs.len(), 1)).iter().zip(runs) {
        let (chart, legend_area) = panel.split_horizontally(WIDTH - LEGEND_WIDTH);
        let entries = draw(&chart, run, axes)?;
        draw_legend(&legend_area, &entries)?;
    }
    root.present()?;
    Ok(())
}

/// How an entry of a legend looks.
#[derive(Debug, Clone, Copy)]
enum LegendEntry {
    Fill(&'static str, RGBAColor),
    Line(&'static str, RGBColor, u32),
    Dashed(&'static str, RGBColor),
}

fn draw_legend(area: &Area<'_>, entries: &[LegendEntry]) -> anyhow::Result<()> {
    let text = TextStyle::from((FAMILY, 14)).color(&BLACK);
    for (i, entry) in entries.iter().enumerate() {
        let y = 50 + 20 * i32::try_from(i).unwrap_or(0);
        let label = match *entry {
            LegendEntry::Fill(label, colour) => {
                area.draw(&Rectangle::new([(8, y - 6), (28, y + 6)], colour.filled()))?;
                label
            }
            LegendEntry::Line(label, colour, width) => {
                let style = colour.stroke_width(width);
                area.draw(&PathElement::new(vec![(8, y), (28, y)], style))?;
                label
            }
            LegendEntry::Dashed(label, colour) => {
                for x in [8, 18] {
                    let style = colour.stroke_width(2);
                    area.draw(&PathElement::new(vec![(x, y), (x + 6, y)], style))?;
                }
                label
            }
        };
        area.draw(&Text::new(label, (34, y - 8), text.clone()))?;
    }
    Ok(())
}

/// A chart on `area` with a caption, shared time axis and the given y axis.
fn chart<'c, 'b, Y: AsRangedCoord<Value = f64>>(
    area: &Area<'b>,
    title: String,
    end_s: f64,
    y: Y,
) -> anyhow::Result<Chart<'c, 'b, Y::CoordDescType>> {
    Ok(ChartBuilder::on(area)
        .caption(title, (FAMILY, 18))
        .margin(8)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..end_s, y)?)
}

fn mesh<Y: Ranged<ValueType = f64> + ValueFormatter<f64>>(
    chart: &mut Chart<'_, '_, Y>,
    y_desc: &str,
) -> anyhow::Result<()> {
    chart
        .configure_mesh()
        .x_desc("time since the start of the run (s)")
        .y_desc(y_desc)
        .x_label_formatter(&|v| format!("{v:.0}"))
        .y_label_formatter(&|v| axis_number(*v))
        .label_style((FAMILY, 13))
        .axis_desc_style((FAMILY, 14))
        .light_line_style(RGBColor(240, 240, 240))
        .bold_line_style(RGBColor(215, 215, 215))
        .draw()?;
    Ok(())
}

fn axis_number(v: f64) -> String {
    if v >= 1.0 || v == 0.0 {
        format!("{v:.0}")
    } else {
        // Small log-axis ticks: enough digits to tell 0.01 from 0.02.
        let digits = usize::try_from((-v.log10()).ceil() as i64).unwrap_or(3);
        format!("{v:.digits$}")
    }
}

const PHASE_LINE: RGBColor = RGBColor(90, 90, 90);

/// A dashed line at each phase start and its name at the top, staggered in three rows so
/// short phases stay readable.
fn phase_marks<Y: Ranged<ValueType = f64>>(
    chart: &mut Chart<'_, '_, Y>,
    run: &VariantRun,
    bottom: f64,
    top: f64,
) -> anyhow::Result<()> {
    let style = TextStyle::from((FAMILY, 12)).color(&PHASE_LINE);
    for (i, p) in run.phases.iter().enumerate() {
        let x = p.start.as_secs_f64();
        if x > 0.0 {
            chart.draw_series(DashedLineSeries::new(
                [(x, bottom), (x, top)],
                6,
                4,
                PHASE_LINE.stroke_width(1),
            ))?;
        }
        let row = 3 + 14 * i32::try_from(i % 3).unwrap_or(0);
        let label = EmptyElement::at((x, top)) + Text::new(p.name.clone(), (4, row), style.clone());
        chart.plotting_area().draw(&label)?;
    }
    Ok(())
}

fn outcome_colour(o: Outcome) -> RGBColor {
    match o {
        Outcome::Fresh => RGBColor(44, 160, 44),
        Outcome::StaleOk => RGBColor(152, 223, 138),
        Outcome::Fallback => RGBColor(31, 119, 180),
        Outcome::Unknown => RGBColor(190, 190, 190),
        Outcome::Busy => RGBColor(255, 160, 50),
        Outcome::Error => RGBColor(214, 39, 40),
        Outcome::Timeout => RGBColor(148, 103, 189),
        Outcome::Wrong => RGBColor(255, 0, 255),
    }
}

/// Display attempts per scheduled second, stacked by outcome, under the offered attempts.
fn offered_served(
    area: &Area<'_>,
    run: &VariantRun,
    axes: &Axes,
) -> anyhow::Result<Vec<LegendEntry>> {
    let title = format!(
        "{}: display attempts per second by outcome, and offered",
        run.variant
    );
    let mut c = chart(area, title, axes.end_s, 0.0..axes.attempts)?;
    mesh(&mut c, "attempts / s")?;
    // Draw the highest layer first: each lower one paints over it.
    for (k, o) in Outcome::ALL.iter().enumerate().rev() {
        let stacked = run.seconds.iter().map(|s| {
            let below: u64 = s.by_outcome.iter().take(k + 1).sum();
            (f64::from(s.at), below as f64)
        });
        c.draw_series(AreaSeries::new(stacked, 0.0, outcome_colour(*o).filled()))?;
    }
    let offered = run
        .seconds
        .iter()
        .map(|s| (f64::from(s.at), s.offered as f64));
    c.draw_series(LineSeries::new(offered, BLACK.stroke_width(2)))?;
    phase_marks(&mut c, run, 0.0, axes.attempts)?;
    let mut legend = vec![LegendEntry::Line("offered", BLACK, 2)];
    legend.extend(
        Outcome::ALL
            .iter()
            .map(|o| LegendEntry::Fill(o.as_str(), outcome_colour(*o).to_rgba())),
    );
    Ok(legend)
}

/// Splits points at gaps (seconds without samples) so a line does not bridge them.
fn segments(points: impl Iterator<Item = (f64, Option<f64>)>) -> Vec<Vec<(f64, f64)>> {
    let mut out: Vec<Vec<(f64, f64)>> = vec![Vec::new()];
    for (x, y) in points {
        match (y, out.last_mut()) {
            (Some(y), Some(current)) => current.push((x, y)),
            (None, Some(current)) if !current.is_empty() => out.push(Vec::new()),
            _ => {}
        }
    }
    out.retain(|s| !s.is_empty());
    out
}

const LATENCY_LINES: [(&str, RGBColor, u32); 3] = [
    ("p50", RGBColor(31, 119, 180), 2),
    ("p99", RGBColor(255, 127, 14), 2),
    ("p99.9", RGBColor(214, 39, 40), 1),
];

/// p50, p99 and p99.9 of the display attempts scheduled in each second, log scale.
fn latency(area: &Area<'_>, run: &VariantRun, axes: &Axes) -> anyhow::Result<Vec<LegendEntry>> {
    let (lo, hi) = axes.latency_ms;
    let title = format!(
        "{}: latency of display attempts by scheduled second",
        run.variant
    );
    let mut c = chart(area, title, axes.end_s, (lo..hi).log_scale())?;
    mesh(&mut c, "latency (ms, log)")?;
    let limit = [(0.0, 1000.0), (axes.end_s, 1000.0)];
    c.draw_series(DashedLineSeries::new(
        limit,
        8,
        5,
        PHASE_LINE.stroke_width(1),
    ))?;
    let mut legend = Vec::new();
    for (i, (label, colour, width)) in LATENCY_LINES.into_iter().enumerate() {
        let points = run.seconds.iter().map(|s| {
            let v = s.latency_ms.get(i).copied().filter(|v| *v > 0.0);
            (f64::from(s.at), v.map(|v| v.clamp(lo, hi)))
        });
        for segment in segments(points) {
            c.draw_series(LineSeries::new(segment, colour.stroke_width(width)))?;
        }
        legend.push(LegendEntry::Line(label, colour, width));
    }
    phase_marks(&mut c, run, lo, hi)?;
    legend.push(LegendEntry::Dashed("1 s (goodput)", PHASE_LINE));
    Ok(legend)
}

const IN_SERVICE: RGBColor = RGBColor(31, 119, 180);
const KNEE: RGBColor = RGBColor(44, 160, 44);
const OVER_KNEE: RGBColor = RGBColor(214, 39, 40);

/// Requests in service at the origin every 100 ms against its knee and 1.5 x the knee, with
/// the samples in which it was down shaded; log scale.
fn origin(area: &Area<'_>, run: &VariantRun, axes: &Axes) -> anyhow::Result<Vec<LegendEntry>> {
    let (lo, hi) = axes.in_service;
    let title = format!(
        "{}: requests in service at the origin (100 ms samples)",
        run.variant
    );
    let mut c = chart(area, title, axes.end_s, (lo..hi).log_scale())?;
    mesh(&mut c, "in service (log)")?;
    let down = RED.mix(0.18);
    let samples = &run.origin_samples;
    let mut i = 0;
    while i < samples.len() {
        if !samples[i].crashed {
            i += 1;
            continue;
        }
        let from = samples[i].at;
        while i < samples.len() && samples[i].crashed {
            i += 1;
        }
        // A down span lasts until the next sample (or 100 ms after the last).
        let to = samples.get(i).map_or(from + 0.1, |s| s.at);
        c.draw_series(std::iter::once(Rectangle::new(
            [(from, lo), (to, hi)],
            down.filled(),
        )))?;
    }
    let knee = |f: f64| {
        samples
            .iter()
            .map(move |s| (s.at, (s.knee * f).clamp(lo, hi)))
    };
    c.draw_series(LineSeries::new(knee(1.0), KNEE.stroke_width(2)))?;
    c.draw_series(DashedLineSeries::new(
        knee(1.5),
        8,
        5,
        OVER_KNEE.stroke_width(2),
    ))?;
    let n = samples
        .iter()
        .map(|s| (s.at, (s.in_service as f64).clamp(lo, hi)));
    c.draw_series(LineSeries::new(n, IN_SERVICE.stroke_width(1)))?;
    phase_marks(&mut c, run, lo, hi)?;
    Ok(vec![
        LegendEntry::Line("in service", IN_SERVICE, 1),
        LegendEntry::Line("knee", KNEE, 2),
        LegendEntry::Dashed("1.5 x knee", OVER_KNEE),
        LegendEntry::Fill("down", down),
    ])
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used, reason = "tests")]

    use super::*;
    use crate::report::testing::{phase, run};

    /// A 60 s run: warm-up, a 3x surge with the origin changed, cool-down. With `collapse` the
    /// origin is overrun, times out and is down from 25 s to 35 s.
    fn synthetic(variant: Variant, collapse: bool) -> VariantRun {
        let phases = vec![
            phase("warm-up", 0, 20, false, &[(Outcome::Fresh, 6000, 12)]),
            phase("surge 3x", 20, 20, true, &[(Outcome::Fresh, 9000, 40)]),
            phase("cool-down", 40, 20, true, &[(Outcome::Fresh, 8000, 15)]),
        ];
        let mut r = run(variant, phases);
        for s in &mut r.seconds {
            let t = u64::from(s.at);
            let base = match t {
                0..20 => 300,
                20..40 => 1500,
                _ => 400,
            };
            s.offered = base + (t * 37) % 50;
            let mut by = [0; 8];
            let surge = (20..40).contains(&t);
            if collapse && surge {
                by[Outcome::Fresh.index()] = 200 - 5 * (t - 20);
                by[Outcome::Error.index()] = 300;
                by[Outcome::Timeout.index()] = s.offered - by.iter().sum::<u64>();
                s.latency_ms = [800.0 + 50.0 * (t as f64), 9000.0, 10_000.0];
            } else if surge {
                by[Outcome::Fresh.index()] = 450;
                by[Outcome::StaleOk.index()] = 700;
                by[Outcome::Fallback.index()] = 100;
                by[Outcome::Unknown.index()] = 20;
                by[Outcome::Busy.index()] = s.offered - by.iter().sum::<u64>();
                s.latency_ms = [1.5, 45.0, 120.0];
            } else {
                by[Outcome::Fresh.index()] = s.offered;
                s.latency_ms = [12.0, 30.0, 60.0];
            }
            s.by_outcome = by;
            s.good = by.iter().take(3).sum();
        }
        // A gap: a second without samples.
        r.seconds[45].latency_ms = [0.0; 3];
        for o in &mut r.origin_samples {
            let t = o.at;
            o.in_service = match (collapse, t) {
                (true, 20.0..25.0) => 20 + ((t - 20.0) * 80.0) as u64,
                (true, 25.0..35.0) => 0,
                (false, 20.0..40.0) => 9 + ((t * 10.0) as u64 % 5),
                _ => 3 + ((t * 10.0) as u64 % 4),
            };
            o.crashed = collapse && (25.0..35.0).contains(&t);
        }
        r
    }

    fn png_size(bytes: &[u8]) -> (u32, u32) {
        let be = |at: usize| u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap());
        (be(16), be(20))
    }

    #[test]
    fn writes_a_png_per_kind_with_a_panel_per_variant() {
        let dir = tempfile::tempdir().unwrap();
        let runs = [
            synthetic(Variant::Direct, true),
            synthetic(Variant::Shouhu, false),
            // A second round is not drawn.
            synthetic(Variant::Shouhu, true),
        ];
        // The font missing fails here, with the install hint.
        let paths = write_plots(dir.path(), &runs).unwrap();
        let names: Vec<_> = paths
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["offered-served.png", "latency.png", "origin.png"]);
        for p in &paths {
            assert_eq!(p.parent(), Some(dir.path()));
            let bytes = std::fs::read(p).unwrap();
            assert!(
                bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
                "{} is not a PNG",
                p.display()
            );
            assert_eq!(
                png_size(&bytes),
                (WIDTH, 2 * PANEL_HEIGHT),
                "{}",
                p.display()
            );
            // A blank or text-less image compresses to a few KB.
            assert!(
                bytes.len() > 30_000,
                "{} is only {} bytes",
                p.display(),
                bytes.len()
            );
        }
    }

    #[test]
    fn no_runs_no_plots() {
        let dir = tempfile::tempdir().unwrap();
        assert!(
            write_plots(&dir.path().join("plots"), &[])
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn lines_break_at_gaps() {
        let points = [
            (0.0, Some(1.0)),
            (1.0, Some(2.0)),
            (2.0, None),
            (3.0, None),
            (4.0, Some(3.0)),
        ];
        assert_eq!(
            segments(points.into_iter()),
            vec![vec![(0.0, 1.0), (1.0, 2.0)], vec![(4.0, 3.0)]]
        );
        assert!(segments([(0.0, None)].into_iter()).is_empty());
    }
}
