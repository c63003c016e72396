//! The capacity model: a Universal Scalability Law processor-sharing emulation of a fragile
//! origin (see `[capacity]` in the origin config). With `n` requests in service, each
//! progresses at `1 / (1 + σ(n−1) + κ·n(n−1))` of its base speed; a request needs
//! `service_time` (× `cold_factor` while cold) of work. Sustained overload (more than
//! `crash_in_flight` in service for `crash_after`) crashes it: every request in service is
//! dropped and connections are refused for `restart_after`, then it runs cold for `cold_for`.
//!
//! Event driven, not ticked: a scheduler task sleeps until the next completion or arrival.
//! A request whose client gives up stays in service (wasted work), as in a real server.
//! Parameters change at run time ([`CapacityModel::set_params`]).

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use shouhu_config::origin::Capacity;
use tokio::sync::{Notify, oneshot};

/// How often the scheduler wakes with nothing to do, to check the crash rule.
const IDLE_WAKE: Duration = Duration::from_millis(100);

/// The model's parameters, as the admin API shows and takes them.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// Whether requests go through the model at all.
    pub enabled: bool,
    /// Base service time, milliseconds.
    pub service_time_ms: f64,
    /// Contention.
    pub sigma: f64,
    /// Coherency.
    pub kappa: f64,
    /// Log-normal sigma of each request's service time (mean kept); 0 = none.
    #[serde(default)]
    pub noise: f64,
    /// Overload threshold (requests in service).
    pub crash_in_flight: u32,
    /// Overload for this long crashes; 0 = never. Milliseconds.
    pub crash_after_ms: u64,
    /// Down for this long after a crash. Milliseconds.
    pub restart_after_ms: u64,
    /// Service time multiplier while cold.
    pub cold_factor: f64,
    /// Cold for this long after a restart. Milliseconds.
    pub cold_for_ms: u64,
}

impl Params {
    /// From the config section.
    #[must_use]
    pub fn from_config(c: &Capacity) -> Self {
        Self {
            enabled: c.enabled,
            service_time_ms: millis(c.service_time.get()),
            sigma: c.sigma,
            kappa: c.kappa,
            noise: c.noise,
            crash_in_flight: c.crash_in_flight.get(),
            crash_after_ms: u64::try_from(c.crash_after.get().as_millis()).unwrap_or(u64::MAX),
            restart_after_ms: u64::try_from(c.restart_after.get().as_millis()).unwrap_or(u64::MAX),
            cold_factor: c.cold_factor,
            cold_for_ms: u64::try_from(c.cold_for.get().as_millis()).unwrap_or(u64::MAX),
        }
    }

    /// Checks ranges, as the config does.
    ///
    /// # Errors
    /// The first value out of range, named.
    pub fn check(&self) -> Result<(), String> {
        if !(self.service_time_ms.is_finite() && self.service_time_ms > 0.0) {
            return Err(format!(
                "service_time_ms must be > 0 (got {})",
                self.service_time_ms
            ));
        }
        if !(self.sigma.is_finite() && (0.0..1.0).contains(&self.sigma)) {
            return Err(format!("sigma must be >= 0 and < 1 (got {})", self.sigma));
        }
        if !(self.kappa.is_finite() && self.kappa >= 0.0) {
            return Err(format!("kappa must be >= 0 (got {})", self.kappa));
        }
        if !(self.noise.is_finite() && self.noise >= 0.0) {
            return Err(format!("noise must be >= 0 (got {})", self.noise));
        }
        if !(self.cold_factor.is_finite() && self.cold_factor >= 1.0) {
            return Err(format!(
                "cold_factor must be >= 1 (got {})",
                self.cold_factor
            ));
        }
        if self.crash_in_flight == 0 {
            return Err("crash_in_flight must be >= 1 (got 0)".to_owned());
        }
        Ok(())
    }

    /// Each request's speed with `n` in service, as a share of its base speed.
    #[must_use]
    pub fn rate(&self, n: usize) -> f64 {
        let n = f64::from(u32::try_from(n).unwrap_or(u32::MAX));
        if n <= 1.0 {
            return 1.0;
        }
        1.0 / (1.0 + self.sigma * (n - 1.0) + self.kappa * n * (n - 1.0))
    }

    /// Steady-state throughput (requests/s) with `n` always in service.
    #[must_use]
    pub fn throughput(&self, n: usize) -> f64 {
        let nf = f64::from(u32::try_from(n).unwrap_or(u32::MAX));
        nf * self.rate(n) / (self.service_time_ms / 1000.0)
    }

    /// The concurrency of peak throughput, `sqrt((1 − σ)/κ)`.
    #[must_use]
    pub fn knee(&self) -> f64 {
        if self.kappa <= 0.0 {
            f64::INFINITY
        } else {
            ((1.0 - self.sigma) / self.kappa).sqrt()
        }
    }
}

/// A mean-one log-normal factor with log-sigma `sigma` (1 when `sigma` is 0).
fn spread(sigma: f64) -> f64 {
    if sigma <= 0.0 {
        return 1.0;
    }
    // Box-Muller: one standard normal from two uniforms in (0, 1].
    let u1: f64 = 1.0 - rand::random::<f64>();
    let u2: f64 = rand::random::<f64>();
    let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
    (sigma * z - sigma * sigma / 2.0).exp()
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The request was dropped because the origin crashed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("origin crashed")]
pub struct Crashed;

/// What the admin API shows.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct CapacityStatus {
    /// Parameters.
    pub params: Params,
    /// Requests in service now.
    pub in_service: usize,
    /// Crashed (refusing) now.
    pub crashed: bool,
    /// Cold now.
    pub cold: bool,
    /// Crashes since start.
    pub crashes: u64,
    /// Requests completed since start.
    pub completed: u64,
    /// Requests completed after their client had gone.
    pub wasted: u64,
    /// Concurrency of peak throughput.
    pub knee: f64,
    /// Model throughput at the knee, requests/s.
    pub peak_throughput: f64,
}

struct Job {
    remaining: f64,
    done: oneshot::Sender<()>,
}

struct State {
    params: Params,
    jobs: Vec<Job>,
    last: Instant,
    overloaded_since: Option<Instant>,
    down_until: Option<Instant>,
    cold_until: Option<Instant>,
    crashes: u64,
    completed: u64,
    wasted: u64,
}

impl State {
    /// Moves every job forward to `now` and completes the finished ones.
    fn advance(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        if self.jobs.is_empty() || elapsed <= 0.0 {
            return;
        }
        let progress = elapsed * self.params.rate(self.jobs.len());
        for job in &mut self.jobs {
            job.remaining -= progress;
        }
        let mut i = 0;
        while i < self.jobs.len() {
            if self.jobs[i].remaining <= 1e-9 {
                let job = self.jobs.swap_remove(i);
                self.completed += 1;
                if job.done.send(()).is_err() {
                    self.wasted += 1;
                }
            } else {
                i += 1;
            }
        }
    }

    fn is_down(&self, now: Instant) -> bool {
        self.down_until.is_some_and(|t| now < t)
    }

    fn is_cold(&self, now: Instant) -> bool {
        self.cold_until.is_some_and(|t| now < t)
    }

    /// Applies the crash rule.
    fn check_crash(&mut self, now: Instant) {
        let p = self.params;
        if p.crash_after_ms == 0 || self.jobs.len() <= p.crash_in_flight as usize {
            self.overloaded_since = None;
            return;
        }
        let since = *self.overloaded_since.get_or_insert(now);
        if now.saturating_duration_since(since) >= Duration::from_millis(p.crash_after_ms) {
            self.crash(now, "sustained overload");
        }
    }

    fn crash(&mut self, now: Instant, why: &str) {
        let p = self.params;
        let restart = now + Duration::from_millis(p.restart_after_ms);
        self.down_until = Some(restart);
        self.cold_until = Some(restart + Duration::from_millis(p.cold_for_ms));
        self.overloaded_since = None;
        self.crashes += 1;
        // Dropping the senders fails every request in service.
        self.jobs.clear();
        tracing::warn!(
            restart_in_ms = p.restart_after_ms,
            cause = why,
            "capacity model: origin crashed"
        );
    }

    /// Time until the next job finishes at the current rate.
    fn next_completion(&self) -> Option<Duration> {
        let min = self
            .jobs
            .iter()
            .map(|j| j.remaining)
            .fold(f64::INFINITY, f64::min);
        if !min.is_finite() {
            return None;
        }
        let secs = (min / self.params.rate(self.jobs.len())).max(0.0);
        Some(Duration::from_secs_f64(secs.min(3600.0)))
    }
}

/// The shared model. Cheap to clone.
#[derive(Clone)]
pub struct CapacityModel {
    state: Arc<Mutex<State>>,
    wake: Arc<Notify>,
}

impl std::fmt::Debug for CapacityModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CapacityModel")
    }
}

impl CapacityModel {
    /// A model with these parameters; starts its scheduler task, which ends with `shutdown`.
    #[must_use]
    pub fn start(params: Params, mut shutdown: tokio::sync::watch::Receiver<bool>) -> Self {
        let model = Self {
            state: Arc::new(Mutex::new(State {
                params,
                jobs: Vec::new(),
                last: Instant::now(),
                overloaded_since: None,
                down_until: None,
                cold_until: None,
                crashes: 0,
                completed: 0,
                wasted: 0,
            })),
            wake: Arc::new(Notify::new()),
        };
        let m = model.clone();
        tokio::spawn(async move {
            loop {
                let sleep_for = {
                    let mut st = m.lock();
                    let now = Instant::now();
                    st.advance(now);
                    st.check_crash(now);
                    st.next_completion().map_or(IDLE_WAKE, |d| d.min(IDLE_WAKE))
                };
                tokio::select! {
                    () = tokio::time::sleep(sleep_for) => {}
                    () = m.wake.notified() => {}
                    _ = shutdown.changed() => return,
                }
            }
        });
        model
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether the model is on.
    #[must_use]
    pub fn enabled(&self) -> bool {
        self.lock().params.enabled
    }

    /// Whether the origin is down (crashed, not yet restarted): connections are refused.
    #[must_use]
    pub fn is_down(&self) -> bool {
        self.lock().is_down(Instant::now())
    }

    /// Waits for one request's service. Returns at once when the model is off.
    ///
    /// # Errors
    /// [`Crashed`] if the origin is down or crashes while the request is in service.
    pub async fn serve(&self) -> Result<(), Crashed> {
        let rx = {
            let mut st = self.lock();
            if !st.params.enabled {
                return Ok(());
            }
            let now = Instant::now();
            if st.is_down(now) {
                return Err(Crashed);
            }
            st.advance(now);
            let factor = if st.is_cold(now) {
                st.params.cold_factor
            } else {
                1.0
            };
            let (tx, rx) = oneshot::channel();
            let remaining = st.params.service_time_ms / 1000.0 * factor * spread(st.params.noise);
            st.jobs.push(Job {
                remaining,
                done: tx,
            });
            st.check_crash(now);
            rx
        };
        self.wake.notify_one();
        rx.await.map_err(|_| Crashed)
    }

    /// Replaces the parameters (jobs in service keep their remaining work).
    ///
    /// # Errors
    /// A value out of range.
    pub fn set_params(&self, params: Params) -> Result<(), String> {
        params.check()?;
        let mut st = self.lock();
        st.advance(Instant::now());
        st.params = params;
        if !params.enabled {
            st.down_until = None;
            st.cold_until = None;
            for job in st.jobs.drain(..) {
                let _ = job.done.send(());
            }
        }
        drop(st);
        self.wake.notify_one();
        Ok(())
    }

    /// Crashes the origin now (fault injection), as the overload rule would. Works with the
    /// model off too: connections are refused for `restart_after`.
    pub fn crash_now(&self) {
        let mut st = self.lock();
        st.crash(Instant::now(), "injected");
    }

    /// Current parameters and state.
    #[must_use]
    pub fn status(&self) -> CapacityStatus {
        let st = self.lock();
        let now = Instant::now();
        CapacityStatus {
            params: st.params,
            in_service: st.jobs.len(),
            crashed: st.is_down(now),
            cold: st.is_cold(now),
            crashes: st.crashes,
            completed: st.completed,
            wasted: st.wasted,
            knee: st.params.knee(),
            peak_throughput: st
                .params
                .throughput(st.params.knee().round().max(1.0) as usize),
        }
    }
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used, reason = "tests")]
    use super::*;

    fn defaults() -> Params {
        let mut p = Params::from_config(&Capacity::default());
        p.enabled = true;
        p
    }

    #[test]
    fn the_default_curve_peaks_near_ten_at_about_500_per_second() {
        let p = defaults();
        assert!((p.knee() - 10.4).abs() < 0.1, "{}", p.knee());
        assert!(
            (p.throughput(10) - 500.0).abs() < 10.0,
            "{}",
            p.throughput(10)
        );
        assert!((p.throughput(5) - 397.0).abs() < 5.0);
        assert!((p.throughput(20) - 417.0).abs() < 5.0);
        assert!((p.throughput(40) - 253.0).abs() < 5.0);
        assert!((p.throughput(100) - 108.0).abs() < 5.0);
    }

    #[test]
    fn noise_keeps_the_mean_service_time() {
        let n = 20_000;
        let mean = (0..n).map(|_| spread(0.3)).sum::<f64>() / f64::from(n);
        assert!((mean - 1.0).abs() < 0.03, "{mean}");
        assert!((spread(0.0) - 1.0).abs() < f64::EPSILON);
    }

    #[tokio::test]
    async fn requests_take_the_service_time_and_the_model_can_be_switched_off() {
        let (_tx, rx) = tokio::sync::watch::channel(false);
        let model = CapacityModel::start(defaults(), rx);
        let started = Instant::now();
        model.serve().await.unwrap();
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(9), "{took:?}");
        let mut off = defaults();
        off.enabled = false;
        model.set_params(off).unwrap();
        let started = Instant::now();
        model.serve().await.unwrap();
        assert!(started.elapsed() < Duration::from_millis(5));
        assert!(model.set_params(Params { sigma: 2.0, ..off }).is_err());
    }

    #[tokio::test]
    async fn sustained_overload_crashes_then_restarts_cold() {
        let (_tx, rx) = tokio::sync::watch::channel(false);
        let params = Params {
            crash_in_flight: 5,
            crash_after_ms: 50,
            restart_after_ms: 100,
            service_time_ms: 1000.0,
            ..defaults()
        };
        let model = CapacityModel::start(params, rx);
        let waiting: Vec<_> = (0..10)
            .map(|_| {
                let m = model.clone();
                tokio::spawn(async move { m.serve().await })
            })
            .collect();
        for w in waiting {
            assert_eq!(w.await.unwrap(), Err(Crashed));
        }
        let status = model.status();
        assert!(status.crashed && status.cold);
        assert_eq!(status.crashes, 1);
        assert_eq!(model.serve().await, Err(Crashed), "refuses while down");
    }
}
