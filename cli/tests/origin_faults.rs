//! Fault injection on the admin port, each mode observed from a client: error answers 500
//! fast, slow adds the latency, hang never answers, refuse resets connections, a crash
//! refuses until the restart, and none restores service.
#![expect(clippy::unwrap_used, reason = "tests")]

#[path = "origin/harness.rs"]
mod harness;

use std::time::{Duration, Instant};

use harness::OriginProc;
use reqwest::Method;
use serde_json::json;

async fn get_healthz(base: &str, timeout: Duration) -> (Result<u16, reqwest::Error>, Duration) {
    // A fresh client per call: no pooled connection hides a refused one.
    let client = reqwest::Client::builder().timeout(timeout).build().unwrap();
    let started = Instant::now();
    let result = client
        .get(format!("{base}/healthz"))
        .send()
        .await
        .map(|r| r.status().as_u16());
    (result, started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_fault_mode_is_observable_from_a_client() {
    let origin = OriginProc::start(None, &[]);
    let base = origin.citizen.clone();
    let second = Duration::from_secs(1);
    assert_eq!(get_healthz(&base, second).await.0.unwrap(), 200);

    origin
        .admin(Method::POST, "/admin/fault", json!({"mode": "error"}))
        .await;
    let (status, took) = get_healthz(&base, second).await;
    assert_eq!(status.unwrap(), 500);
    assert!(took < Duration::from_millis(200), "fast: {took:?}");

    origin
        .admin(
            Method::POST,
            "/admin/fault",
            json!({"mode": "slow", "latency_ms": 300}),
        )
        .await;
    let (status, took) = get_healthz(&base, Duration::from_secs(5)).await;
    assert_eq!(status.unwrap(), 200);
    assert!(took >= Duration::from_millis(300), "slow: {took:?}");

    origin
        .admin(Method::POST, "/admin/fault", json!({"mode": "hang"}))
        .await;
    let (status, took) = get_healthz(&base, Duration::from_millis(500)).await;
    assert!(status.unwrap_err().is_timeout(), "hang never answers");
    assert!(took >= Duration::from_millis(500));

    origin
        .admin(Method::POST, "/admin/fault", json!({"mode": "refuse"}))
        .await;
    let (status, took) = get_healthz(&base, second).await;
    let err = status.unwrap_err();
    assert!(!err.is_timeout() && err.is_request(), "refused: {err:?}");
    assert!(
        took < Duration::from_millis(500),
        "refused at once: {took:?}"
    );

    origin
        .admin(Method::POST, "/admin/fault", json!({"mode": "none"}))
        .await;
    assert_eq!(get_healthz(&base, second).await.0.unwrap(), 200);

    // A bad mode is refused with the choices.
    let r = harness::client()
        .post(format!("{}/admin/fault", origin.admin))
        .json(&json!({"mode": "explode"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    // A crash refuses connections until the restart, then the origin serves again.
    origin
        .admin(
            Method::PUT,
            "/admin/capacity",
            json!({"restart_after_ms": 400, "cold_for_ms": 100}),
        )
        .await;
    origin
        .admin(Method::POST, "/admin/crash", json!(null))
        .await;
    assert!(
        get_healthz(&base, second).await.0.is_err(),
        "down after a crash"
    );
    let mut back = false;
    for _ in 0..100 {
        if get_healthz(&base, second).await.0.is_ok_and(|s| s == 200) {
            back = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(back, "restarted");
}
