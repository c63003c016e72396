//! The controller on synthetic origins: time is passed in, so every step is exact.

use super::*;

const WINDOW: Duration = Duration::from_millis(100);
const PER_WINDOW: u32 = 20;

fn config(initial: usize, max: usize) -> AdmissionConfig {
    AdmissionConfig {
        min_limit: 2,
        initial_limit: initial,
        max_limit: max,
        window: WINDOW,
        probe_interval: Duration::from_secs(30),
        ..AdmissionConfig::default()
    }
    .normalized()
}

fn ms(x: f64) -> Duration {
    Duration::from_secs_f64(x / 1000.0)
}

/// The reference origin's latency with `n` in service (USL, 10 ms, σ 0.02, κ `kappa`).
fn usl(kappa: f64) -> impl Fn(usize) -> Duration {
    move |n| {
        let n = n as f64;
        ms(10.0 * (1.0 + 0.02 * (n - 1.0).max(0.0) + kappa * n * (n - 1.0).max(0.0)))
    }
}

/// One window at full load: `limit` calls in flight, each answered after `latency(limit)`.
/// Returns the limit in force during the window.
fn window(l: &mut Limiter, t: &mut Instant, latency: &dyn Fn(usize) -> Duration) -> usize {
    let n = l.limit();
    let lat = latency(n);
    l.on_grant(n);
    for _ in 0..PER_WINDOW {
        *t += WINDOW / PER_WINDOW;
        l.on_grant(n);
        l.on_release(*t, n - 1, *t - lat, Some((lat, CallOutcome::Ok)));
    }
    n
}

fn windows(
    l: &mut Limiter,
    t: &mut Instant,
    count: usize,
    latency: &dyn Fn(usize) -> Duration,
) -> Vec<usize> {
    (0..count).map(|_| window(l, t, latency)).collect()
}

#[test]
fn slow_start_doubles_per_window_up_to_the_ceiling_and_restarts_on_demand() {
    let mut t = Instant::now();
    let mut l = Limiter::new(&config(4, 100), t);
    assert_eq!(l.phase(), LimitPhase::SlowStart);
    let flat = |_| ms(10.0);
    let limits = windows(&mut l, &mut t, 7, &flat);
    assert_eq!(limits, [4, 8, 16, 32, 64, 100, 100]);
    l.slow_start(t);
    assert_eq!(l.limit(), 4);
    assert_eq!(l.phase(), LimitPhase::SlowStart);
    assert_eq!(l.baseline(), None, "the baseline is learnt afresh");
    assert_eq!(windows(&mut l, &mut t, 3, &flat), [4, 8, 16]);
}

#[test]
fn slow_start_ends_when_latency_rises_and_the_gradient_settles_at_the_knee() {
    let mut t = Instant::now();
    let mut l = Limiter::new(&config(2, 200), t);
    let origin = usl(0.009);
    let limits = windows(&mut l, &mut t, 30, &origin);
    // 2, 4, 8 while latency stays within 1.5x the baseline, then the gradient.
    assert_eq!(limits[..3], [2, 4, 8]);
    assert_eq!(l.phase(), LimitPhase::Steady);
    let settled = &limits[10..];
    // The knee is sqrt((1 - 0.02) / 0.009) = 10.4; latency doubles at about 10.
    assert!(settled.iter().all(|&n| (9..=11).contains(&n)), "{limits:?}");
    // Contention x4 moves the knee to 5.2: followed within a few windows.
    let origin = usl(0.036);
    let limits = windows(&mut l, &mut t, 10, &origin);
    assert!(
        limits[5..].iter().all(|&n| (4..=6).contains(&n)),
        "{limits:?}"
    );
}

#[test]
fn losses_back_off_once_per_round_down_to_the_floor() {
    let mut t = Instant::now();
    let mut l = Limiter::new(&config(100, 200), t);
    let before = t;
    t += Duration::from_millis(5);
    // A burst of timeouts from calls all granted before any back-off: one back-off.
    for _ in 0..10 {
        l.on_release(
            t,
            50,
            before,
            Some((Duration::from_secs(2), CallOutcome::Timeout)),
        );
    }
    assert_eq!(l.limit(), 75);
    assert_eq!(l.backoffs(), 1);
    assert_eq!(l.phase(), LimitPhase::Steady, "a loss ends slow start");
    // A call granted after the back-off fails: the next round backs off again.
    t += Duration::from_millis(5);
    let granted = t;
    t += Duration::from_millis(5);
    l.on_release(t, 50, granted, Some((Duration::ZERO, CallOutcome::Error)));
    assert_eq!(l.limit(), 56);
    t += Duration::from_millis(5);
    l.on_release(t, 50, t, Some((Duration::ZERO, CallOutcome::Failed)));
    assert_eq!(l.limit(), 42);
    // An ignored call or one whose caller left says nothing.
    l.on_release(t, 50, t, Some((Duration::ZERO, CallOutcome::Ignored)));
    l.on_release(t, 50, t, None);
    assert_eq!(l.limit(), 42);
    for _ in 0..50 {
        t += Duration::from_millis(1);
        l.on_release(t, 0, t, Some((Duration::ZERO, CallOutcome::Timeout)));
    }
    assert_eq!(l.limit(), 2, "the floor holds");
}

#[test]
fn no_growth_while_the_limit_is_not_used() {
    let mut t = Instant::now();
    let mut l = Limiter::new(&config(8, 200), t);
    for _ in 0..10 {
        for _ in 0..PER_WINDOW {
            t += WINDOW / PER_WINDOW;
            l.on_grant(1);
            l.on_release(t, 0, t - ms(10.0), Some((ms(10.0), CallOutcome::Ok)));
        }
    }
    assert_eq!(l.limit(), 8);
}

#[test]
fn the_ceiling_holds_and_a_static_limit_never_moves() {
    let mut t = Instant::now();
    let mut l = Limiter::new(&config(4, 12), t);
    let limits = windows(&mut l, &mut t, 10, &|_| ms(10.0));
    assert_eq!(limits.iter().max(), Some(&12));
    let fixed = AdmissionConfig {
        adaptive: false,
        ..config(4, 12)
    };
    let mut l = Limiter::new(&fixed, t);
    assert_eq!((l.limit(), l.phase()), (12, LimitPhase::Static));
    windows(&mut l, &mut t, 5, &usl(0.5));
    l.on_release(t, 0, t, Some((Duration::ZERO, CallOutcome::Timeout)));
    l.slow_start(t);
    assert_eq!(l.limit(), 12);
    assert!(
        l.latency().is_some(),
        "latency is still measured for wait estimates"
    );
    // A reload to adaptive starts slowly; back to static goes to the ceiling.
    l.reconfigure(&config(4, 12), t);
    assert_eq!((l.limit(), l.phase()), (4, LimitPhase::SlowStart));
    l.reconfigure(&fixed, t);
    assert_eq!(l.limit(), 12);
}

#[test]
fn the_baseline_is_probed_again_so_it_cannot_drift() {
    let mut t = Instant::now();
    let mut l = Limiter::new(&config(2, 200), t);
    windows(&mut l, &mut t, 20, &usl(0.009));
    let baseline = l.baseline().unwrap_or_default();
    assert!(baseline <= ms(10.5), "{baseline:?}");
    // Held at the knee, no window confirms the baseline: within 30 s +15 % it is probed,
    // at the floor, and the limit comes back.
    let mut saw_probe = false;
    for _ in 0..360 {
        let n = window(&mut l, &mut t, &usl(0.009));
        saw_probe |= n == 2;
    }
    assert!(saw_probe);
    assert!(l.probes() >= 1, "{}", l.probes());
    assert!((9..=11).contains(&l.limit()), "{}", l.limit());
    // The origin becomes three times slower for good: the limit drops to the floor, the
    // floor probes, the new baseline is learnt and the limit grows back to the knee.
    let slower = |n| usl(0.009)(n) * 3;
    let limits = windows(&mut l, &mut t, 60, &slower);
    assert!(limits.contains(&2), "{limits:?}");
    assert!(
        limits[40..].iter().all(|&n| (8..=12).contains(&n)),
        "{limits:?}"
    );
    assert!(l.baseline().unwrap_or_default() >= ms(30.0));
}
