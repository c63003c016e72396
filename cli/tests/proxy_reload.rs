//! `SIGHUP` to a running `shouhu proxy`: a valid new config takes effect without a restart
//! (the same process, serving throughout); a broken one is refused with a log line naming the
//! fields, and the old config stays in force.
#![expect(clippy::unwrap_used, reason = "tests")]

#[path = "origin/harness.rs"]
mod harness;
#[path = "proxy/harness.rs"]
mod proxy_harness;

use std::time::{Duration, Instant};

use harness::OriginProc;
use proxy_harness::{ProxyProc, sign_up};
use serde_json::{Value, json};
use shouhu_testkit::RedisServer;

/// Scans go to the origin while it is healthy.
const AT_ORIGIN: &str = r#"
[scan]
verify_at_edge = "when-origin-unavailable"
"#;
/// Every scan is verified at the edge; the display deadline is shorter.
const AT_EDGE: &str = r#"
[scan]
verify_at_edge = "always"

[deadlines]
display = "800ms"
"#;
/// Broken: an unknown mode and a zero deadline.
const BROKEN: &str = r#"
[scan]
verify_at_edge = "sometimes"

[deadlines]
display = "0s"
"#;

/// Who answered a scan: `origin` or `edge`.
async fn scan(http: &reqwest::Client, base: &str, code: &Value) -> String {
    let r = http
        .post(format!("{base}/api/verify"))
        .json(&json!({"code": code}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let source = r.headers()["x-shouhu-source"].to_str().unwrap().to_owned();
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["valid"], true, "{v}");
    source
}

fn reloads(metrics: &str, result: &str) -> u64 {
    let prefix = format!("shouhu_config_reloads_total{{result=\"{result}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap()
        .parse()
        .unwrap()
}

/// Polls `/metrics` until `result` reloads reach `n`.
async fn wait_reloads(proxy: &ProxyProc, result: &str, n: u64) {
    let started = Instant::now();
    while reloads(&proxy.metrics().await, result) < n {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no {result} reload within 10 s; log:\n{}",
            proxy.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_applies_a_valid_config_and_keeps_the_old_one_when_broken() {
    let redis = RedisServer::start();
    let origin = OriginProc::start(None, &["--redis", &redis.url()]);
    let proxy = ProxyProc::start(&origin.citizen, Some(&redis.url()), Some(AT_ORIGIN));
    let person = sign_up(&proxy.base, 800).await;
    let code = person.get("/api/code").await.json()["code"].clone();
    let scanner = harness::client();
    assert_eq!(scan(&scanner, &proxy.base, &code).await, "origin");

    std::fs::write(proxy.config_path(), AT_EDGE).unwrap();
    proxy.hangup();
    wait_reloads(&proxy, "applied", 1).await;
    assert_eq!(scan(&scanner, &proxy.base, &code).await, "edge");

    std::fs::write(proxy.config_path(), BROKEN).unwrap();
    proxy.hangup();
    wait_reloads(&proxy, "refused", 1).await;
    let log = proxy.log();
    assert!(log.contains("config reload refused"), "{log}");
    assert!(log.contains("scan.verify_at_edge"), "{log}");
    assert!(log.contains("deadlines.display"), "{log}");
    // The previous config is still in force, and the proxy still serves.
    assert_eq!(scan(&scanner, &proxy.base, &code).await, "edge");
    let again = person.get("/api/code").await;
    assert_eq!(again.status, 200, "{again:?}");
    let metrics = proxy.metrics().await;
    assert_eq!(reloads(&metrics, "applied"), 1);

    std::fs::write(proxy.config_path(), AT_ORIGIN).unwrap();
    proxy.hangup();
    wait_reloads(&proxy, "applied", 2).await;
    assert_eq!(scan(&scanner, &proxy.base, &code).await, "origin");
}
