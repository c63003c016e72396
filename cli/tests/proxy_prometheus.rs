//! A real Prometheus (Debian's `prometheus` package) scraping a running `shouhu proxy`'s admin
//! port: the requests the test made come back through Prometheus's query API with their
//! labels, as a dashboard would read them.
#![expect(clippy::unwrap_used, reason = "tests")]

#[path = "origin/harness.rs"]
mod harness;
#[path = "proxy/harness.rs"]
mod proxy_harness;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use harness::OriginProc;
use proxy_harness::ProxyProc;
use serde_json::Value;
use shouhu_testkit::{ChildProcess, free_port};

const UNAUTHORIZED: usize = 7;
/// Start-up, a first scrape and the query: seconds on a quiet machine.
const DEADLINE: Duration = Duration::from_secs(90);
const QUERY: &str =
    r#"shouhu_requests_total{job="shouhu-proxy",class="display",outcome="unauthorized"}"#;

/// `prometheus` with a config scraping `target` every second, on a free loopback port; the
/// process, its base URL and its folder.
fn start_prometheus(target: &str) -> (ChildProcess, String, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: shouhu-proxy\n    metrics_path: /metrics\n    \
             static_configs:\n      - targets: ['{target}']\n"
        ),
    )
    .unwrap();
    let port = free_port();
    let mut cmd = Command::new("prometheus");
    cmd.arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--log.level=warn")
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(
            std::fs::File::create(dir.path().join("stderr.txt")).unwrap(),
        ));
    let process = ChildProcess::spawn("prometheus", cmd).unwrap_or_else(|e| {
        panic!("cannot start prometheus ({e}); install it: scripts/ensure-deps.sh test")
    });
    (process, format!("http://127.0.0.1:{port}"), dir)
}

/// The value of the one series `query` returns, if Prometheus has it yet.
async fn query(http: &reqwest::Client, base: &str, query: &str) -> Option<f64> {
    let r = http
        .get(format!("{base}/api/v1/query"))
        .query(&[("query", query)])
        .send()
        .await
        .ok()?;
    let v: Value = r.json().await.ok()?;
    assert_eq!(v["status"], "success", "{query}: {v}");
    let result = v["data"]["result"].as_array()?;
    assert!(result.len() <= 1, "{query}: {v}");
    result.first()?["value"][1].as_str()?.parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_the_proxy_and_answers_with_its_counts() {
    let origin = OriginProc::start(None, &[]);
    let proxy = ProxyProc::start(&origin.citizen, None, None);
    let http = harness::client();
    for _ in 0..UNAUTHORIZED {
        let r = http
            .get(format!("{}/api/code", proxy.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
    }
    let target = proxy.admin.trim_start_matches("http://").to_owned();
    let (mut prometheus, base, dir) = start_prometheus(&target);

    let started = Instant::now();
    let mut last = None;
    while last != Some(UNAUTHORIZED as f64) {
        assert!(
            started.elapsed() < DEADLINE,
            "Prometheus did not return {QUERY} = {UNAUTHORIZED} within {DEADLINE:?} (last {last:?}); \
             running: {}; its log:\n{}",
            prometheus.is_running(),
            std::fs::read_to_string(dir.path().join("stderr.txt")).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
        last = query(&http, &base, QUERY).await;
    }
    // The scrape itself is healthy, and a gauge the dashboards use is there too.
    let up = format!(r#"up{{job="shouhu-proxy",instance="{target}"}}"#);
    assert_eq!(query(&http, &base, &up).await, Some(1.0));
    assert_eq!(
        query(&http, &base, "shouhu_breaker_state{job=\"shouhu-proxy\"}").await,
        Some(0.0)
    );
}
