//! Admission in front of a simulated origin that follows the reference origin's capacity
//! model (`origin/src/capacity.rs`): Universal Scalability Law processor sharing, where each
//! of `n` requests in service progresses at `1 / (1 + σ(n−1) + κ·n(n−1))` of its base speed.
//! Defaults 10 ms, σ = 0.02, κ = 0.009: the knee is at n ≈ 10.4, about 500 requests/s.
//!
//! Open-loop Poisson load at 3x and 10x that capacity, on paused tokio time (timers tick in
//! whole milliseconds, so completions are seen up to 1 ms late, as a real timer would). The
//! runs print their figures: time for the limit to settle near the knee, origin goodput as a
//! share of its peak, requests in service, and the time to follow the knee when κ × 4.
#![expect(clippy::unwrap_used, reason = "tests")]

use std::sync::Mutex as StdMutex;

use tokio::sync::Notify;
use tokio::time::sleep_until;

use super::*;

/// The USL capacity model.
#[derive(Clone, Copy, Debug)]
struct Usl {
    service: f64,
    sigma: f64,
    kappa: f64,
    /// Log-normal sigma of each request's work (mean kept), as the reference's `noise`.
    noise: f64,
}

impl Usl {
    const REFERENCE: Self = Self {
        service: 0.010,
        sigma: 0.02,
        kappa: 0.009,
        noise: 0.0,
    };

    fn rate(self, n: usize) -> f64 {
        if n <= 1 {
            return 1.0;
        }
        let n = n as f64;
        1.0 / (1.0 + self.sigma * (n - 1.0) + self.kappa * n * (n - 1.0))
    }

    fn throughput(self, n: usize) -> f64 {
        n as f64 * self.rate(n) / self.service
    }

    fn knee(self) -> f64 {
        ((1.0 - self.sigma) / self.kappa).sqrt()
    }

    /// The best throughput at any whole concurrency.
    fn peak(self) -> f64 {
        (1..=200).map(|n| self.throughput(n)).fold(0.0, f64::max)
    }
}

struct Job {
    remaining: f64,
    done: oneshot::Sender<()>,
}

struct OriginState {
    model: Usl,
    /// Refusing every call (crashed or restarting).
    down: bool,
    jobs: Vec<Job>,
    last: Instant,
    rng: Rng,
}

impl OriginState {
    fn advance(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        if self.jobs.is_empty() || elapsed <= 0.0 {
            return;
        }
        let progress = elapsed * self.model.rate(self.jobs.len());
        for job in &mut self.jobs {
            job.remaining -= progress;
        }
        let mut i = 0;
        while i < self.jobs.len() {
            if self.jobs[i].remaining <= 1e-9 {
                let job = self.jobs.swap_remove(i);
                let _ = job.done.send(());
            } else {
                i += 1;
            }
        }
    }

    fn next_completion(&self) -> Option<Duration> {
        let min = self
            .jobs
            .iter()
            .map(|j| j.remaining)
            .fold(f64::INFINITY, f64::min);
        min.is_finite()
            .then(|| Duration::from_secs_f64((min / self.model.rate(self.jobs.len())).max(0.0)))
    }
}

/// The simulated origin, event driven like the real one.
struct Origin {
    state: StdMutex<OriginState>,
    wake: Notify,
}

impl Origin {
    fn start(model: Usl, seed: u64) -> Arc<Self> {
        let origin = Arc::new(Self {
            state: StdMutex::new(OriginState {
                model,
                down: false,
                jobs: Vec::new(),
                last: Instant::now(),
                rng: Rng(seed),
            }),
            wake: Notify::new(),
        });
        let o = Arc::clone(&origin);
        tokio::spawn(async move {
            loop {
                let sleep_for = {
                    let mut st = o.state.lock().unwrap();
                    st.advance(Instant::now());
                    st.next_completion()
                        .map_or(Duration::from_millis(100), |d| {
                            d.min(Duration::from_millis(100))
                        })
                };
                tokio::select! {
                    () = tokio::time::sleep(sleep_for) => {}
                    () = o.wake.notified() => {}
                }
            }
        });
        origin
    }

    /// One request's service; `Err` at once while down.
    async fn serve(&self) -> Result<(), ()> {
        let rx = {
            let mut st = self.state.lock().unwrap();
            if st.down {
                return Err(());
            }
            st.advance(Instant::now());
            let (tx, rx) = oneshot::channel();
            let noise = st.model.noise;
            let remaining = st.model.service * st.rng.log_normal(noise);
            st.jobs.push(Job {
                remaining,
                done: tx,
            });
            rx
        };
        self.wake.notify_one();
        rx.await.map_err(drop)
    }

    fn set(&self, model: Usl, down: bool) {
        let mut st = self.state.lock().unwrap();
        st.advance(Instant::now());
        st.model = model;
        st.down = down;
        if down {
            // Crashed: every request in service is dropped.
            st.jobs.clear();
        }
        drop(st);
        self.wake.notify_one();
    }

    fn in_service(&self) -> usize {
        self.state.lock().unwrap().jobs.len()
    }
}

/// xorshift64*: deterministic arrivals and request mix.
struct Rng(u64);

impl Rng {
    fn unit(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let x = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d);
        ((x >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    fn exp(&mut self, rate: f64) -> Duration {
        Duration::from_secs_f64(-self.unit().ln() / rate)
    }

    /// A mean-one log-normal factor (1 when `sigma` is 0), as the reference origin's.
    fn log_normal(&mut self, sigma: f64) -> f64 {
        if sigma <= 0.0 {
            return 1.0;
        }
        let z = (-2.0 * self.unit().ln()).sqrt() * (std::f64::consts::TAU * self.unit()).cos();
        (sigma * z - sigma * sigma / 2.0).exp()
    }
}

/// Share of arrivals by priority, in [`Priority::ALL`] order: mostly people showing codes.
const MIX: [f64; Priority::COUNT] = [0.15, 0.15, 0.10, 0.10, 0.40, 0.10];

/// A request's whole deadline by priority (the `[deadlines]` defaults).
fn deadline(p: Priority) -> Duration {
    match p {
        Priority::Scan => Duration::from_millis(500),
        Priority::DisplayNoCode | Priority::DisplayRefresh => Duration::from_secs(1),
        Priority::Declare => Duration::from_secs(2),
        Priority::Register | Priority::Other => Duration::from_secs(3),
    }
}

/// One stretch of a run: offered load and the origin's state.
#[derive(Clone, Copy)]
struct Phase {
    length: Duration,
    rate: f64,
    model: Usl,
    /// The origin refuses every call.
    down: bool,
    /// At the start, call `slow_start` (as the service does when the breaker closes).
    slow_start: bool,
}

/// A sample of the run, every [`TICK`].
#[derive(Clone, Copy, Debug)]
struct Sample {
    at: Duration,
    limit: usize,
    in_service: usize,
    good: u64,
}

#[derive(Default)]
struct Tally {
    arrived: [u64; Priority::COUNT],
    admitted: [u64; Priority::COUNT],
    good: u64,
    late: u64,
    latencies: Vec<Duration>,
}

struct Run {
    samples: Vec<Sample>,
    tally: Tally,
    snapshot: AdmissionSnapshot,
}

const TICK: Duration = Duration::from_millis(10);

async fn run(cfg: AdmissionConfig, phases: &[Phase], seed: u64) -> Run {
    let adm = Admission::new(cfg);
    let origin = Origin::start(phases[0].model, seed ^ 0x5eed);
    let tally = Arc::new(StdMutex::new(Tally::default()));
    let samples = Arc::new(StdMutex::new(Vec::new()));
    let t0 = Instant::now();
    let total: Duration = phases.iter().map(|p| p.length).sum();

    let monitor = {
        let (adm, origin, tally, samples) = (
            Arc::clone(&adm),
            Arc::clone(&origin),
            Arc::clone(&tally),
            Arc::clone(&samples),
        );
        tokio::spawn(async move {
            let mut at = t0;
            while at < t0 + total {
                at += TICK;
                sleep_until(at).await;
                let good = tally.lock().unwrap().good;
                samples.lock().unwrap().push(Sample {
                    at: at - t0,
                    limit: adm.limit(),
                    in_service: origin.in_service(),
                    good,
                });
            }
        })
    };

    let mut rng = Rng(seed);
    let mut next = t0;
    let mut phase_end = t0;
    for phase in phases {
        origin.set(phase.model, phase.down);
        if phase.slow_start {
            adm.slow_start();
        }
        phase_end += phase.length;
        loop {
            next += rng.exp(phase.rate);
            if next >= phase_end {
                next = phase_end;
                break;
            }
            sleep_until(next).await;
            let pick = rng.unit();
            let mut acc = 0.0;
            let p = Priority::ALL
                .into_iter()
                .zip(MIX)
                .find(|(_, share)| {
                    acc += share;
                    pick < acc
                })
                .map_or(Priority::Other, |(p, _)| p);
            let (adm, origin, tally) = (Arc::clone(&adm), Arc::clone(&origin), Arc::clone(&tally));
            tokio::spawn(async move {
                let arrived = Instant::now();
                tally.lock().unwrap().arrived[p.index()] += 1;
                // The call must start with half the deadline left for the origin.
                let Ok(slot) = adm.acquire(p, arrived + deadline(p) / 2).await else {
                    return;
                };
                let started = Instant::now();
                if origin.serve().await.is_err() {
                    slot.record(started.elapsed(), CallOutcome::Failed);
                    return;
                }
                slot.record(started.elapsed(), CallOutcome::Ok);
                let took = arrived.elapsed();
                let mut t = tally.lock().unwrap();
                t.admitted[p.index()] += 1;
                if took <= deadline(p) {
                    t.good += 1;
                    t.latencies.push(took);
                } else {
                    t.late += 1;
                }
            });
        }
    }
    monitor.await.unwrap();
    let samples = std::mem::take(&mut *samples.lock().unwrap());
    let tally = std::mem::take(&mut *tally.lock().unwrap());
    Run {
        samples,
        tally,
        snapshot: adm.snapshot(),
    }
}

/// Figures of one phase of a run.
#[derive(Debug)]
struct Figures {
    /// From the phase's start until the limit entered [0.6, 1.6] x knee for good.
    converged_after: Option<Duration>,
    /// Good completions per second over the settled part, over the model's peak.
    goodput_share: f64,
    /// The most requests in service at a sample.
    max_in_service: usize,
    /// Share of settled samples with at most 1.5 x knee in service.
    within_1_5_knee: f64,
    /// Limits seen over the settled part.
    limit_range: (usize, usize),
    /// Share of settled samples with the limit in [0.6, 1.6] x knee.
    in_band: f64,
}

fn figures(run: &Run, from: Duration, to: Duration, settle: Duration, model: Usl) -> Figures {
    let knee = model.knee();
    let phase: Vec<&Sample> = run
        .samples
        .iter()
        .filter(|s| s.at > from && s.at <= to)
        .collect();
    let in_band = |s: &&Sample| {
        let l = s.limit as f64;
        l >= 0.6 * knee && l <= 1.6 * knee
    };
    let converged_after = match phase.iter().rposition(|s| !in_band(s)) {
        None => Some(Duration::ZERO),
        Some(i) if i + 1 < phase.len() => Some(phase[i].at - from),
        Some(_) => None,
    };
    let settled: Vec<&&Sample> = phase.iter().filter(|s| s.at > from + settle).collect();
    let (first, last) = (settled[0], settled[settled.len() - 1]);
    let seconds = (last.at - first.at).as_secs_f64();
    let goodput = (last.good - first.good) as f64 / seconds;
    let share = |pred: &dyn Fn(&Sample) -> bool| {
        settled.iter().filter(|s| pred(s)).count() as f64 / settled.len() as f64
    };
    let within = share(&|s| s.in_service as f64 <= 1.5 * knee);
    let in_band_share = share(&|s| in_band(&s));
    Figures {
        converged_after,
        goodput_share: goodput / model.peak(),
        max_in_service: phase.iter().map(|s| s.in_service).max().unwrap_or(0),
        within_1_5_knee: within,
        limit_range: (
            settled.iter().map(|s| s.limit).min().unwrap_or(0),
            settled.iter().map(|s| s.limit).max().unwrap_or(0),
        ),
        in_band: in_band_share,
    }
}

fn percentile(latencies: &mut [Duration], q: f64) -> Duration {
    if latencies.is_empty() {
        return Duration::ZERO;
    }
    latencies.sort_unstable();
    let i = ((latencies.len() - 1) as f64 * q).round() as usize;
    latencies[i]
}

/// Prints the figures; returns the p99 of requests served within their deadline.
fn report(name: &str, run: &mut Run, f: &Figures) -> Duration {
    let t = &mut run.tally;
    let p50 = percentile(&mut t.latencies, 0.5);
    let p99 = percentile(&mut t.latencies, 0.99);
    let share: Vec<String> = Priority::ALL
        .iter()
        .map(|p| {
            let i = p.index();
            format!(
                "{}={:.0}%",
                p.as_str(),
                100.0 * t.admitted[i] as f64 / t.arrived[i].max(1) as f64
            )
        })
        .collect();
    let s = &run.snapshot;
    println!(
        "{name}: converged after {:?}; goodput {:.1}% of peak; limit {:?} once settled, \
         {:.1}% of samples in [0.6, 1.6] x knee; \
         max in service {}; {:.1}% of samples <= 1.5x knee; good p50 {p50:?} p99 {p99:?}; \
         late {}; admitted by priority {}; shed {} (codel {}, deadline {}, max_wait {}, \
         queue_full {}); probes {}",
        f.converged_after,
        100.0 * f.goodput_share,
        f.limit_range,
        100.0 * f.in_band,
        f.max_in_service,
        100.0 * f.within_1_5_knee,
        t.late,
        share.join(" "),
        s.shed_total(),
        s.shed_for(ShedReason::Codel),
        s.shed_for(ShedReason::Deadline),
        s.shed_for(ShedReason::MaxWait),
        s.shed_for(ShedReason::QueueFull),
        s.probes,
    );
    p99
}

fn overload(multiple: f64, length: Duration) -> Phase {
    Phase {
        length,
        rate: multiple * Usl::REFERENCE.peak(),
        model: Usl::REFERENCE,
        down: false,
        slow_start: false,
    }
}

#[tokio::test(start_paused = true)]
async fn the_limit_finds_the_knee_at_3x_and_10x_capacity() {
    let length = Duration::from_secs(10);
    let settle = Duration::from_secs(3);
    for (multiple, seed) in [(3.0, 1), (10.0, 2)] {
        let mut run = run(
            AdmissionConfig::default(),
            &[overload(multiple, length)],
            seed,
        )
        .await;
        let f = figures(&run, Duration::ZERO, length, settle, Usl::REFERENCE);
        let p99 = report(&format!("{multiple}x capacity"), &mut run, &f);
        // The reference's target for origin-served answers: p99 <= 4x the knee latency.
        assert!(p99 <= Duration::from_millis(80), "{p99:?}");
        let converged = f.converged_after.unwrap();
        assert!(converged <= settle, "{f:?}");
        assert!(f.goodput_share >= 0.9, "{f:?}");
        assert!(
            f.max_in_service <= 30,
            "never near the crash threshold: {f:?}"
        );
        assert!(f.within_1_5_knee >= 0.95, "{f:?}");
        let t = &run.tally;
        let admitted = |p: Priority| t.admitted[p.index()] as f64 / t.arrived[p.index()] as f64;
        assert!(admitted(Priority::Scan) > admitted(Priority::Other));
        assert!(admitted(Priority::DisplayNoCode) > admitted(Priority::DisplayRefresh));
    }
}

#[tokio::test(start_paused = true)]
async fn the_limit_follows_the_knee_when_contention_quadruples() {
    let before = overload(3.0, Duration::from_secs(10));
    let shifted = Usl {
        kappa: Usl::REFERENCE.kappa * 4.0,
        ..Usl::REFERENCE
    };
    let after = Phase {
        model: shifted,
        ..before
    };
    let mut run = run(AdmissionConfig::default(), &[before, after], 3).await;
    let (shift, end) = (before.length, before.length + after.length);
    let f = figures(&run, shift, end, Duration::from_secs(5), shifted);
    report("knee 10.4 -> 5.2 at 3x", &mut run, &f);
    let trace: Vec<usize> = run
        .samples
        .iter()
        .filter(|s| s.at >= shift - TICK * 20 && s.at <= shift + TICK * 100)
        .step_by(10)
        .map(|s| s.limit)
        .collect();
    println!("limit every 100 ms from 200 ms before the shift: {trace:?}");
    assert!(
        f.converged_after.unwrap() <= Duration::from_secs(5),
        "{f:?}"
    );
    assert!(f.goodput_share >= 0.9, "{f:?}");
    assert!(f.max_in_service <= 30, "{f:?}");
}

#[tokio::test(start_paused = true)]
async fn a_static_limit_past_the_knee_loses_goodput() {
    // The old proxy: origin.max_in_flight = 256, no adaptation. For contrast, and to check
    // the simulation itself: the origin collapses toward its crash threshold.
    let length = Duration::from_secs(5);
    let fixed = AdmissionConfig {
        adaptive: false,
        max_limit: 256,
        ..AdmissionConfig::default()
    };
    let mut run = run(fixed, &[overload(3.0, length)], 4).await;
    let f = figures(
        &run,
        Duration::ZERO,
        length,
        Duration::from_secs(2),
        Usl::REFERENCE,
    );
    report("static 256 at 3x", &mut run, &f);
    assert!(f.goodput_share < 0.5, "{f:?}");
    assert!(f.max_in_service > 150, "{f:?}");
}

#[tokio::test(start_paused = true)]
async fn after_an_outage_slow_start_finds_the_cold_origin_knee() {
    // Up, then down (refusing calls) for 3 s, then back cold (twice as slow, as the
    // reference origin after a restart); the breaker would call slow_start on closing.
    let up = overload(3.0, Duration::from_secs(5));
    let down = Phase {
        length: Duration::from_secs(3),
        down: true,
        ..up
    };
    let cold = Usl {
        service: Usl::REFERENCE.service * 2.0,
        ..Usl::REFERENCE
    };
    let back = Phase {
        model: cold,
        slow_start: true,
        ..up
    };
    let mut run = run(AdmissionConfig::default(), &[up, down, back], 5).await;
    let from = up.length + down.length;
    let f = figures(&run, from, from + back.length, Duration::from_secs(2), cold);
    report("back cold after 3 s down, 3x", &mut run, &f);
    let during_outage: Vec<usize> = run
        .samples
        .iter()
        .filter(|s| s.at > up.length + Duration::from_secs(1) && s.at < from)
        .map(|s| s.limit)
        .collect();
    assert!(
        during_outage.iter().all(|&l| l == 2),
        "the floor: {during_outage:?}"
    );
    assert!(
        f.converged_after.unwrap() <= Duration::from_secs(2),
        "{f:?}"
    );
    assert!(f.goodput_share >= 0.9, "{f:?}");
    assert!(f.max_in_service <= 30, "{f:?}");
}

#[tokio::test(start_paused = true)]
async fn probing_the_baseline_under_load_and_noise_costs_little() {
    // Probes every 5 s instead of 30 s to see several; each request's work varies
    // log-normally (sigma 0.3), so window medians are noisy.
    let cfg = AdmissionConfig {
        probe_interval: Duration::from_secs(5),
        ..AdmissionConfig::default()
    };
    let noisy = Phase {
        model: Usl {
            noise: 0.3,
            ..Usl::REFERENCE
        },
        ..overload(3.0, Duration::from_secs(20))
    };
    let mut run = run(cfg, &[noisy], 6).await;
    let f = figures(
        &run,
        Duration::ZERO,
        noisy.length,
        Duration::from_secs(3),
        noisy.model,
    );
    report("3x, noise 0.3, probe every 5 s", &mut run, &f);
    assert!(run.snapshot.probes >= 3, "{}", run.snapshot.probes);
    assert!(f.goodput_share >= 0.9, "{f:?}");
    assert!(f.in_band >= 0.95, "{f:?}");
    assert!(f.max_in_service <= 30, "{f:?}");
}
