//! One benchmark invocation: the stack is set up once (Redis, the origin, the population),
//! then the scenario runs against each variant in turn, round after round with the order
//! rotated each round, the same seed every time. Before each run the origin is restarted
//! (cold caches, no crash or cold state left from the run before) and the people whose
//! colours the scenario changes are set back; after it the front is stopped. The report, the
//! plots and each run's raw figures are written to the output folder.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};
use shouhu_code::{Colour, TrustList};
use shouhu_testkit::RedisServer;

use crate::generator::{self, Live, Mix, TruthBook, UserModel, Workload};
use crate::issuer::IssuerProc;
use crate::nginx::{NginxParams, NginxProc};
use crate::oracle::Oracle;
use crate::outcome::Outcome;
use crate::result::{OriginSample, OriginWindow, PhaseResult, Variant, VariantRun};
use crate::scenario::{RedisAction, Scenario};
use crate::stack::{self, Origin, Person, Proxy};

/// The origin's base service time at which its model peaks at 500 requests/s.
const BASE_SERVICE_TIME_MS: f64 = 10.0;
/// How often the origin is sampled.
const SAMPLE_EVERY: Duration = Duration::from_millis(100);
/// How long the origin may take to publish everyone to the snapshot.
const PUBLISH: Duration = Duration::from_secs(120);

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// The scenario.
    pub scenario: Scenario,
    /// Variants, in the order of the first round.
    pub variants: Vec<Variant>,
    /// Rounds; the variant order rotates by one each round.
    pub rounds: usize,
    /// People registered before the runs.
    pub population: usize,
    /// Where the report goes.
    pub out: PathBuf,
    /// The `shouhu` binary.
    pub shouhu: PathBuf,
    /// The class mix.
    pub mix: Mix,
    /// How people behave.
    pub model: UserModel,
    /// Draw a progress bar on standard error.
    pub progress: bool,
    /// The command line, for the report.
    pub command: String,
}

/// What an invocation produced.
#[derive(Debug)]
pub struct Bench {
    /// Every run, in run order.
    pub runs: Vec<VariantRun>,
    /// The summary table (markdown).
    pub summary: String,
    /// `summary.md`.
    pub report: PathBuf,
}

/// One colour change, with the people it applies to.
#[derive(Debug, Clone)]
struct ColourEvent {
    at: Duration,
    colour: Colour,
    people: Vec<usize>,
}

/// The colour changes of `scenario`, each for people drawn by the seed from those who were
/// green at set-up: a health-source reset then sets them back to green after the run.
fn colour_events(scenario: &Scenario, people: &[Person]) -> Vec<ColourEvent> {
    let green: Vec<usize> = (0..people.len())
        .filter(|i| people[*i].colour == Colour::Green)
        .collect();
    let starts = scenario.phase_starts();
    let mut n = 0;
    let mut events = Vec::new();
    for (phase, start) in scenario.phases.iter().zip(starts) {
        for c in &phase.colours {
            events.push(ColourEvent {
                at: start + c.at.get(),
                colour: c.colour,
                people: if green.is_empty() {
                    Vec::new()
                } else {
                    generator::chosen(scenario.seed, n, c.share, green.len())
                        .into_iter()
                        .map(|k| green[k])
                        .collect()
                },
            });
            n += 1;
        }
    }
    events
}

/// The health-source op that makes someone `colour`.
fn op_for(colour: Colour) -> Value {
    match colour {
        Colour::Red => json!({"op": "case", "status": "confirmed"}),
        _ => json!({"op": "secondary_contact"}),
    }
}

/// The shared part of the stack.
struct Stack {
    dir: PathBuf,
    shouhu: PathBuf,
    redis: RedisServer,
    origin: Option<Origin>,
    people: Arc<Vec<Person>>,
    changed: Vec<usize>,
    http: reqwest::Client,
}

impl Stack {
    fn origin(&self) -> anyhow::Result<&Origin> {
        self.origin.as_ref().context("the origin is not running")
    }

    /// Stops the origin and starts it again on the same data; sets the people whose colour
    /// changed back to green and waits until the origin says so and everyone is in the
    /// snapshot again.
    async fn restart_origin(&mut self) -> anyhow::Result<()> {
        self.origin = None;
        let origin = Origin::start(&self.shouhu, &self.dir, &self.redis.url())?;
        let people = Arc::clone(&self.people);
        for &i in &self.changed {
            origin
                .health_op(&self.http, &people[i].subject, &json!({"op": "reset"}))
                .await?;
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        for &i in &self.changed {
            let p = &people[i];
            loop {
                let (colour, _) = stack::code_of(&self.http, &origin.citizen, &p.token).await?;
                if colour == p.colour {
                    break;
                }
                if Instant::now() > deadline {
                    bail!(
                        "person {i} did not return to {:?} after a reset (still {colour:?})",
                        p.colour
                    );
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        stack::wait_published(&self.http, &origin, people.len(), PUBLISH).await?;
        self.origin = Some(origin);
        Ok(())
    }

    /// Switches the capacity model on with the scenario's capacity; returns (peak, knee).
    async fn configure_origin(&self, capacity_rps: f64) -> anyhow::Result<(f64, f64)> {
        let origin = self.origin()?;
        let mut params = json!({
            "enabled": true,
            "service_time_ms": BASE_SERVICE_TIME_MS,
            "sigma": 0.02,
            "kappa": 0.009,
            "noise": 0.3,
            "crash_in_flight": 200,
            "crash_after_ms": 3000,
            "restart_after_ms": 15000,
            "cold_factor": 2.0,
            "cold_for_ms": 30000,
        });
        let put = reqwest::Method::PUT;
        let at_base = origin
            .admin(&self.http, put.clone(), "/admin/capacity", &params)
            .await?;
        let peak = at_base["peak_throughput"]
            .as_f64()
            .context("no peak_throughput")?;
        // Throughput scales with 1 / service time.
        params["service_time_ms"] = json!(BASE_SERVICE_TIME_MS * peak / capacity_rps);
        let set = origin
            .admin(&self.http, put, "/admin/capacity", &params)
            .await?;
        origin
            .admin(
                &self.http,
                reqwest::Method::POST,
                "/admin/fault",
                &json!({"mode": "none"}),
            )
            .await?;
        Ok((
            set["peak_throughput"].as_f64().unwrap_or(capacity_rps),
            set["knee"].as_f64().unwrap_or(10.0),
        ))
    }
}

/// A front started for one run.
enum Front {
    Direct,
    Nginx {
        nginx: NginxProc,
        issuer: IssuerProc,
    },
    Shouhu(Proxy),
}

impl Front {
    fn pids(&self) -> Vec<u32> {
        match self {
            Self::Direct => Vec::new(),
            Self::Nginx { nginx, issuer } => nginx.pid().into_iter().chain(issuer.pid()).collect(),
            Self::Shouhu(p) => p.pid().into_iter().collect(),
        }
    }

    fn cpu_seconds(&self) -> f64 {
        self.pids().into_iter().map(stack::cpu_seconds).sum()
    }
}

fn addr_of(url: &str) -> anyhow::Result<SocketAddr> {
    url.trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .with_context(|| format!("not http://ADDR: {url}"))
}

/// Starts `variant`'s front; its base URL and the trust list of everything that may sign.
async fn start_front(
    stack: &Stack,
    variant: Variant,
    run_dir: &Path,
    peak: f64,
    knee: f64,
) -> anyhow::Result<(Front, String, TrustList)> {
    let origin = stack.origin()?;
    let (origin_trust, session_key) = origin.keys(&stack.http).await?;
    match variant {
        Variant::Direct => Ok((Front::Direct, origin.citizen.clone(), origin_trust)),
        Variant::Shouhu => {
            let proxy = Proxy::start(&stack.shouhu, run_dir, &origin.citizen, &stack.redis.url())?;
            let trust = stack::merge_trust(
                &origin_trust,
                &stack::trust_list(&stack.http, &proxy.base).await?,
            )?;
            let base = proxy.base.clone();
            Ok((Front::Shouhu(proxy), base, trust))
        }
        Variant::Nginx => {
            let issuer = IssuerProc::start(
                &stack.shouhu,
                &run_dir.join("issuer"),
                &stack.redis.url(),
                &session_key,
            )?;
            let text = stack
                .http
                .get(issuer.trust_list_url())
                .send()
                .await?
                .error_for_status()?
                .text()
                .await?;
            let issuer_trust = TrustList::from_json("issuer trust list", &text)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let params = NginxParams::tuned(addr_of(&origin.citizen)?, issuer.addr, peak, knee);
            let nginx = NginxProc::start(&run_dir.join("nginx"), &params)?;
            let base = nginx.base.clone();
            Ok((
                Front::Nginx { nginx, issuer },
                base,
                stack::merge_trust(&origin_trust, &issuer_trust)?,
            ))
        }
    }
}

/// Sets up the stack, runs every variant for every round, writes the report.
///
/// # Errors
/// A process does not start, the origin misbehaves during set-up, or the report cannot be
/// written. A run whose generator fell behind is not an error: it is marked invalid.
pub fn bench(opts: &Options) -> anyhow::Result<Bench> {
    if opts.population == 0 {
        bail!("--population must be at least 1");
    }
    std::fs::create_dir_all(&opts.out)
        .with_context(|| format!("cannot create {}", opts.out.display()))?;
    // Absolute: nginx takes paths relative to its prefix.
    let out = opts
        .out
        .canonicalize()
        .with_context(|| format!("cannot resolve {}", opts.out.display()))?;
    let opts = &Options {
        out,
        ..opts.clone()
    };
    // Before the runtime starts its threads: they inherit the generator's CPUs.
    if !stack::pin_generator() && opts.progress {
        eprintln!(
            "shouhu-loadtest: the generator shares its CPUs with the servers (one CPU, or no \
             taskset): its schedule lag may make runs invalid"
        );
    }
    let (_, fd_warning) = stack::raise_fd_limit();
    if let Some(w) = &fd_warning {
        eprintln!("shouhu-loadtest: {w}");
    }
    // The dispatcher thread (niceness 0) must wake on time; the runtime's workers run at 5
    // so that it preempts them at once, and they look at the global queue, where new
    // attempts arrive, every other task poll rather than every 61st.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(stack::generator_cpus().max(2))
        .global_queue_interval(2)
        .on_thread_start(|| generator::lower_this_threads_priority("5"))
        .enable_all()
        .build()?;
    let work = opts.out.join("work");
    std::fs::create_dir_all(&work)?;
    let http = generator::http_client(Duration::from_secs(10))?;
    // A private Redis for the snapshot, never the machine's own on 6379.
    // It starts on the generator's CPU and stays there: moved to the servers' CPU at their
    // niceness, the smoke run's schedule lag p99 rose from 0.9 ms to 1.4-2.2 ms (invalid).
    let redis = RedisServer::start();
    let origin = Origin::start(&opts.shouhu, &work, &redis.url())?;
    let bar = bar(opts.progress, opts.population as u64, "registering");
    let people = runtime.block_on(stack::populate(&http, &origin, opts.population, |n| {
        bar.set_position(n as u64)
    }))?;
    bar.finish_and_clear();
    let events = colour_events(&opts.scenario, &people);
    let mut changed: Vec<usize> = events.iter().flat_map(|e| e.people.clone()).collect();
    changed.sort_unstable();
    changed.dedup();
    runtime.block_on(stack::wait_published(&http, &origin, people.len(), PUBLISH))?;
    let mut stack = Stack {
        dir: work.clone(),
        shouhu: opts.shouhu.clone(),
        redis,
        origin: Some(origin),
        people: Arc::new(people),
        changed,
        http,
    };

    let mut runs = Vec::new();
    let mut n = 0u64;
    for round in 0..opts.rounds.max(1) {
        let mut order = opts.variants.clone();
        if !order.is_empty() {
            let k = round % order.len();
            order.rotate_left(k);
        }
        for variant in order {
            if n > 0 {
                runtime.block_on(stack.restart_origin())?;
            }
            let run = run_variant(&runtime, &mut stack, opts, &events, variant, round, n)?;
            let json = serde_json::to_string_pretty(&run)?;
            std::fs::write(
                opts.out.join(format!("run-{}-{}.json", variant, round + 1)),
                json,
            )?;
            if opts.progress {
                eprintln!(
                    "{variant} round {}: WRONG {}, {}",
                    round + 1,
                    run.wrong(),
                    if run.valid {
                        "valid".to_owned()
                    } else {
                        crate::report::invalid_reason(&run)
                    }
                );
            }
            runs.push(run);
            n += 1;
        }
    }
    drop(stack);

    let (report, summary) = write_report(opts, &runs)?;
    Ok(Bench {
        runs,
        summary,
        report,
    })
}

/// Writes the plots and `summary.md`; returns its path and the summary table.
fn write_report(opts: &Options, runs: &[VariantRun]) -> anyhow::Result<(PathBuf, String)> {
    let plots = crate::plot::write_plots(&opts.out, runs)?;
    let rel: Vec<PathBuf> = plots
        .iter()
        .map(|p| p.strip_prefix(&opts.out).unwrap_or(p).to_path_buf())
        .collect();
    let report = opts.out.join("summary.md");
    std::fs::write(
        &report,
        crate::report::markdown(&opts.scenario, runs, &rel, &opts.command),
    )
    .with_context(|| format!("cannot write {}", report.display()))?;
    Ok((report, crate::report::summary_table(runs)))
}

fn bar(visible: bool, len: u64, prefix: &str) -> ProgressBar {
    if !visible {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template("{prefix:>12} [{bar:32}] {pos}/{len} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_prefix(prefix.to_owned());
    bar
}

fn run_variant(
    runtime: &tokio::runtime::Runtime,
    stack: &mut Stack,
    opts: &Options,
    events: &[ColourEvent],
    variant: Variant,
    round: usize,
    n: u64,
) -> anyhow::Result<VariantRun> {
    let scenario = &opts.scenario;
    let run_dir = stack.dir.join(format!("{variant}-{}", round + 1));
    std::fs::create_dir_all(&run_dir)?;
    let (peak, knee) = runtime.block_on(stack.configure_origin(scenario.capacity_rps))?;
    let (front, base, trust) =
        runtime.block_on(start_front(stack, variant, &run_dir, peak, knee))?;
    let truth = Arc::new(TruthBook::new(&stack.people));
    let live = Arc::new(Live::default());
    let workload = Workload {
        base,
        people: Arc::clone(&stack.people),
        truth: Arc::clone(&truth),
        oracle: Oracle::new(trust),
        model: opts.model,
        mix: opts.mix,
        seed: scenario.seed,
        run_tag: format!("{variant}-{}-{}", round + 1, std::process::id()),
        first_registration: 1_000_000 * (n + 1),
        live: Arc::clone(&live),
    };
    let schedule = scenario.schedule().map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let bar = bar(
        opts.progress,
        scenario.duration().as_secs(),
        &format!("{variant} {}", round + 1),
    );
    let cpu_before = front.cpu_seconds();
    let own_before = stack::own_cpu_seconds();
    let stolen_before = stack::CpuTime::of_generator();
    let samples = Arc::new(Mutex::new(Vec::<OriginSample>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let sampler = runtime.spawn(sample_origin(
        stack.http.clone(),
        stack.origin()?.admin.clone(),
        start,
        Arc::clone(&samples),
        Arc::clone(&stop),
    ));
    let (generated, problems) = std::thread::scope(|s| -> anyhow::Result<_> {
        let driver = s.spawn(|| {
            drive(
                runtime.handle(),
                stack,
                scenario,
                events,
                &truth,
                start,
                &stop,
                &bar,
                &live,
            )
        });
        let generated = generator::run(runtime.handle(), &schedule, workload, start);
        stop.store(true, Ordering::Relaxed);
        let problems = match driver.join() {
            Ok(r) => r?,
            Err(_) => bail!("the phase driver panicked"),
        };
        Ok((generated?, problems))
    })?;
    stop.store(true, Ordering::Relaxed);
    let _ = runtime.block_on(sampler);
    bar.finish_and_clear();
    let front_cpu_seconds = front.cpu_seconds() - cpu_before;
    let generator_cpu_seconds = stack::own_cpu_seconds() - own_before;
    let steal_percent = stack::CpuTime::of_generator().steal_percent_since(stolen_before);
    drop(front);
    if let Some(RedisAction::Kill) = scenario.phases.iter().rev().find_map(|p| p.redis) {
        stack.redis.restart();
    }

    let samples = std::mem::take(&mut *samples.lock().unwrap_or_else(PoisonError::into_inner));
    let starts = scenario.phase_starts();
    let mut all = crate::measure::Recorder::new()?;
    let mut phases = Vec::new();
    for (i, (p, tally)) in scenario.phases.iter().zip(generated.phases).enumerate() {
        all.merge(&tally.recorder)
            .map_err(|e| anyhow::anyhow!("merging histograms: {e}"))?;
        let from = starts[i];
        let to = from + p.duration.get();
        phases.push(PhaseResult {
            name: p.name.clone(),
            start: from,
            duration: p.duration.get(),
            load: p.load,
            origin_changed: p.origin.fault.is_some()
                || p.origin.crash
                || p.origin.capacity.is_some()
                || p.redis.is_some(),
            outcomes: Outcome::ALL
                .iter()
                .map(|o| (*o, tally.recorder.count(*o)))
                .collect(),
            recorder: tally.recorder,
            good: tally.good,
            intents: tally.intents,
            attempts: tally.attempts,
            intents_served: tally.served,
            intents_unknown: tally.unknown,
            intents_gave_up: tally.gave_up,
            others: tally.others,
            origin: window(&samples, from, to),
        });
    }
    let lag = all.lag_histogram();
    Ok(VariantRun {
        variant,
        scenario: scenario.name.clone(),
        seed: scenario.seed,
        capacity_rps: scenario.capacity_rps,
        population: stack.people.len(),
        phases,
        seconds: generated.seconds,
        origin_samples: samples,
        lag_us: [
            lag.value_at_quantile(0.5),
            lag.value_at_quantile(0.99),
            lag.max(),
        ],
        dispatch_lag_us: generated.dispatch_lag_us,
        valid: all.validity() == crate::measure::Validity::Valid && problems.is_empty(),
        problems,
        front_cpu_seconds,
        generator_cpu_seconds,
        steal_percent,
        wrong_examples: generated.wrong_examples,
    })
}

/// The origin over `[from, to)`, from its samples.
fn window(samples: &[OriginSample], from: Duration, to: Duration) -> OriginWindow {
    let (from, to) = (from.as_secs_f64(), to.as_secs_f64());
    let inside: Vec<&OriginSample> = samples
        .iter()
        .filter(|s| s.at >= from && s.at < to)
        .collect();
    let (Some(first), Some(last)) = (inside.first(), inside.last()) else {
        return OriginWindow::default();
    };
    // Counters: from the last sample before the window, if there is one.
    let before = samples.iter().rev().find(|s| s.at < from).unwrap_or(first);
    let n = inside.len() as f64;
    OriginWindow {
        completed: last.completed.saturating_sub(before.completed),
        wasted: last.wasted.saturating_sub(before.wasted),
        crashes: last.crashes.saturating_sub(before.crashes),
        peak_throughput: inside.iter().map(|s| s.peak_throughput).sum::<f64>() / n,
        knee: inside.iter().map(|s| s.knee).sum::<f64>() / n,
        mean_in_service: inside.iter().map(|s| s.in_service as f64).sum::<f64>() / n,
        max_in_service: inside.iter().map(|s| s.in_service).max().unwrap_or(0),
        within_knee_share: inside
            .iter()
            .filter(|s| s.in_service as f64 <= 1.5 * s.knee)
            .count() as f64
            / n,
        down_share: inside.iter().filter(|s| s.crashed).count() as f64 / n,
    }
}

/// Samples the origin's capacity model every 100 ms until `stop`.
async fn sample_origin(
    http: reqwest::Client,
    admin: String,
    start: Instant,
    samples: Arc<Mutex<Vec<OriginSample>>>,
    stop: Arc<AtomicBool>,
) {
    let mut tick = tokio::time::interval(SAMPLE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    while !stop.load(Ordering::Relaxed) {
        tick.tick().await;
        let at = start.elapsed().as_secs_f64();
        let Ok(r) = http
            .get(format!("{admin}/admin/capacity"))
            .timeout(Duration::from_secs(1))
            .send()
            .await
        else {
            continue;
        };
        let Ok(v) = r.json::<Value>().await else {
            continue;
        };
        let u = |k: &str| v[k].as_u64().unwrap_or(0);
        samples
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(OriginSample {
                at,
                in_service: u("in_service"),
                knee: v["knee"].as_f64().unwrap_or(0.0),
                peak_throughput: v["peak_throughput"].as_f64().unwrap_or(0.0),
                completed: u("completed"),
                wasted: u("wasted"),
                crashes: u("crashes"),
                crashed: v["crashed"].as_bool().unwrap_or(false),
            });
    }
}

/// Applies each phase's origin and Redis changes at its start and each colour change at its
/// time; moves the progress bar. Returns the changes that could not be made: an origin
/// drowning without protection may not take an admin call, and the other variants' runs
/// are still worth having.
#[expect(
    clippy::too_many_arguments,
    reason = "one call site, all borrowed for the run"
)]
fn drive(
    rt: &tokio::runtime::Handle,
    stack: &mut Stack,
    scenario: &Scenario,
    events: &[ColourEvent],
    truth: &TruthBook,
    start: Instant,
    stop: &AtomicBool,
    bar: &ProgressBar,
    live: &Live,
) -> anyhow::Result<Vec<String>> {
    let mut problems = Vec::new();
    let starts = scenario.phase_starts();
    let mut next_phase = 0usize;
    let mut next_event = 0usize;
    let mut last = (0u64, 0u64, Instant::now());
    while !stop.load(Ordering::Relaxed) {
        let now = start.elapsed();
        if next_phase < starts.len() && starts[next_phase] <= now {
            let phase = &scenario.phases[next_phase];
            if let Err(e) = apply_phase(rt, stack, phase) {
                if bar.is_hidden() {
                    eprintln!("shouhu-loadtest: {e:#}");
                } else {
                    bar.println(format!("shouhu-loadtest: {e:#}"));
                }
                problems.push(format!("{e:#}"));
            }
            bar.set_message(phase.name.clone());
            next_phase += 1;
            continue;
        }
        if next_event < events.len() && events[next_event].at <= now {
            let e = &events[next_event];
            let origin = stack.origin()?;
            for &i in &e.people {
                truth.change(i, e.colour);
            }
            let op = op_for(e.colour);
            rt.block_on(async {
                for &i in &e.people {
                    // A down origin's sources still take ops: they run in its process, so
                    // only a crashed-and-refusing origin fails here, which the truth ignores.
                    let _ = origin
                        .health_op(&stack.http, &stack.people[i].subject, &op)
                        .await;
                }
            });
            next_event += 1;
            continue;
        }
        bar.set_position(now.as_secs());
        let (valid, wrong) = (
            live.valid.load(Ordering::Relaxed),
            live.wrong.load(Ordering::Relaxed),
        );
        if last.2.elapsed() >= Duration::from_secs(1) {
            let secs = last.2.elapsed().as_secs_f64();
            let phase = next_phase
                .checked_sub(1)
                .and_then(|i| scenario.phases.get(i))
                .map_or("", |p| p.name.as_str());
            bar.set_message(format!(
                "{phase}: {:.0} codes/s, {} in flight, WRONG {wrong}",
                (valid - last.0) as f64 / secs,
                live.in_flight.load(Ordering::Relaxed),
            ));
            last = (valid, wrong, Instant::now());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(problems)
}

fn apply_phase(
    rt: &tokio::runtime::Handle,
    stack: &mut Stack,
    phase: &crate::scenario::Phase,
) -> anyhow::Result<()> {
    match phase.redis {
        Some(RedisAction::Kill) => stack.redis.kill(),
        Some(RedisAction::Restart) => stack.redis.restart(),
        None => {}
    }
    let origin = stack.origin()?;
    let http = &stack.http;
    let change = &phase.origin;
    let mut calls: Vec<(reqwest::Method, &str, Value)> = Vec::new();
    if let Some(c) = &change.capacity {
        calls.push((
            reqwest::Method::PUT,
            "/admin/capacity",
            serde_json::to_value(c)?,
        ));
    }
    if let Some(mode) = change.fault {
        let mut body = json!({"mode": mode});
        if let Some(l) = change.latency {
            body["latency_ms"] = json!(l.get().as_millis() as u64);
        }
        calls.push((reqwest::Method::POST, "/admin/fault", body));
    }
    if change.crash {
        calls.push((reqwest::Method::POST, "/admin/crash", Value::Null));
    }
    rt.block_on(async {
        for (method, path, body) in calls {
            admin_with_retries(origin, http, method, path, &body).await?;
        }
        anyhow::Ok(())
    })
    .with_context(|| format!("phase {:?}: changing the origin", phase.name))
}

/// An admin call to an origin that may be drowning in connections: up to 10 tries a second
/// apart, each given 2 s.
async fn admin_with_retries(
    origin: &Origin,
    http: &reqwest::Client,
    method: reqwest::Method,
    path: &str,
    body: &Value,
) -> anyhow::Result<Value> {
    let mut last = None;
    for _ in 0..10 {
        match tokio::time::timeout(
            Duration::from_secs(2),
            origin.admin(http, method.clone(), path, body),
        )
        .await
        {
            Ok(Ok(v)) => return Ok(v),
            Ok(Err(e)) => last = Some(e),
            Err(_) => last = Some(anyhow::anyhow!("{method} {path}: no answer within 2 s")),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    Err(last
        .unwrap_or_else(|| anyhow::anyhow!("{method} {path} failed"))
        .context("10 tries, a second apart, all failed"))
}
