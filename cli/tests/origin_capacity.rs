//! The capacity model through the real process: throughput at the knee is far above
//! throughput well past it, and sustained overload crashes the origin, which then restarts
//! cold. Closed-loop clients, a second or so per level.
#![expect(clippy::unwrap_used, reason = "tests")]

#[path = "origin/harness.rs"]
mod harness;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use harness::OriginProc;
use reqwest::Method;
use serde_json::json;

/// Completed requests per second with `n` clients in a closed loop for `run`.
async fn throughput(base: &str, n: usize, run: Duration) -> (f64, u64) {
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .pool_max_idle_per_host(n)
        .build()
        .unwrap();
    let deadline = Instant::now() + run;
    let workers: Vec<_> = (0..n)
        .map(|_| {
            let (ok, failed, client) = (Arc::clone(&ok), Arc::clone(&failed), client.clone());
            let url = format!("{base}/healthz");
            tokio::spawn(async move {
                while Instant::now() < deadline {
                    match client.get(&url).send().await {
                        Ok(r) if r.status() == 200 => ok.fetch_add(1, Ordering::Relaxed),
                        _ => failed.fetch_add(1, Ordering::Relaxed),
                    };
                }
            })
        })
        .collect();
    for w in workers {
        w.await.unwrap();
    }
    let done = ok.load(Ordering::Relaxed);
    (
        done as f64 / run.as_secs_f64(),
        failed.load(Ordering::Relaxed),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throughput_falls_past_the_knee_and_sustained_overload_crashes() {
    let origin = OriginProc::start(None, &[]);
    let base = origin.citizen.clone();
    // Defaults: S = 10 ms, sigma = 0.02, kappa = 0.009: knee n ≈ 10 at ≈ 500/s; at n = 60 the
    // model gives ≈ 176/s.
    let status = origin
        .admin(Method::PUT, "/admin/capacity", json!({"enabled": true}))
        .await;
    assert!((status["knee"].as_f64().unwrap() - 10.4).abs() < 0.1);
    let run = Duration::from_millis(1500);
    let (at_knee, _) = throughput(&base, 10, run).await;
    let (past_knee, _) = throughput(&base, 60, run).await;
    eprintln!("capacity model: n=10 -> {at_knee:.0}/s, n=60 -> {past_knee:.0}/s");
    assert!(at_knee > 300.0, "near the knee: {at_knee:.0}/s (model 500)");
    assert!(
        at_knee > 1.8 * past_knee,
        "retrograde: {at_knee:.0}/s at n=10 vs {past_knee:.0}/s at n=60 (model 500 vs 176)"
    );

    // Sustained overload: more than 30 in service for 300 ms crashes it.
    origin
        .admin(
            Method::PUT,
            "/admin/capacity",
            json!({"crash_in_flight": 30, "crash_after_ms": 300, "restart_after_ms": 500, "cold_for_ms": 60000}),
        )
        .await;
    let (_, failed) = throughput(&base, 80, Duration::from_millis(1200)).await;
    assert!(failed > 0, "requests failed while it was down");
    let status = origin
        .admin(Method::GET, "/admin/capacity", json!(null))
        .await;
    assert!(status["crashes"].as_u64().unwrap() >= 1, "{status}");

    // After the restart it is cold: one request alone takes twice the service time.
    let mut cold = false;
    for _ in 0..100 {
        let s = origin
            .admin(Method::GET, "/admin/capacity", json!(null))
            .await;
        if !s["crashed"].as_bool().unwrap() && s["cold"].as_bool().unwrap() {
            cold = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(cold, "restarted cold");
    let client = harness::client();
    let started = Instant::now();
    let r = client.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        started.elapsed() >= Duration::from_millis(19),
        "{:?}",
        started.elapsed()
    );
}
