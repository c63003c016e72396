//! Pass-through under `origin.max_in_flight` (the ceiling of admission's limit) and the class
//! deadline, against a slow `shouhu origin`: past the limit a request waits at most its
//! class's `max_wait` and is then refused with 503 + `Retry-After`, never left waiting behind
//! the slow ones; a request the origin does not answer within its deadline is answered 503 at
//! the deadline, not at the origin's read timeout.
#![expect(clippy::unwrap_used, reason = "tests")]

#[path = "origin/harness.rs"]
mod harness;
#[path = "proxy/harness.rs"]
mod proxy_harness;

use std::time::Duration;

use harness::OriginProc;
use proxy_harness::{ProxyProc, sign_up};
use reqwest::Method;
use serde_json::json;
use shouhu_testkit::RedisServer;

const CONFIG: &str = r#"
[origin]
max_in_flight = 2
read_timeout = "5s"

[deadlines]
other = "1s"

[admission.max_wait]
other = "100ms"

[breaker]
consecutive_timeouts = 100
consecutive_failures = 100
min_requests = 1000
"#;
/// Slack for a loaded 2-core machine.
const SLACK: Duration = Duration::from_millis(400);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_limit_refused_at_once_and_slow_answers_cut_at_the_deadline() {
    let redis = RedisServer::start();
    let origin = OriginProc::start(None, &["--redis", &redis.url()]);
    let proxy = ProxyProc::start(&origin.citizen, Some(&redis.url()), Some(CONFIG));
    let person = sign_up(&proxy.base, 900).await;
    assert_eq!(person.get("/api/code/explain").await.status, 200);

    // Each origin answer takes 600 ms: two fit in flight, the other four are refused.
    origin
        .admin(
            Method::POST,
            "/admin/fault",
            json!({"mode": "slow", "latency_ms": 600}),
        )
        .await;
    let calls: Vec<_> = (0..6)
        .map(|_| {
            let p = person.clone();
            tokio::spawn(async move { p.get("/api/code/explain").await })
        })
        .collect();
    let mut answers = Vec::new();
    for call in calls {
        answers.push(call.await.unwrap());
    }
    let served: Vec<_> = answers.iter().filter(|a| a.status == 200).collect();
    let refused: Vec<_> = answers.iter().filter(|a| a.status == 503).collect();
    assert_eq!((served.len(), refused.len()), (2, 4), "{answers:#?}");
    for a in &served {
        assert_eq!(a.source, "origin");
        assert!(a.took >= Duration::from_millis(600), "{a:?}");
    }
    for a in &refused {
        assert_eq!(a.source, "proxy", "{a:?}");
        assert!(a.retry_after.is_some(), "{a:?}");
        assert!(
            a.took < Duration::from_millis(100) + SLACK,
            "refused slowly: {a:?}"
        );
    }
    let status = proxy.status().await;
    assert_eq!(status["origin_limit"], 2, "{status}");
    assert_eq!(status["origin_in_flight"], 0, "{status}");

    // Slower than the deadline: answered at the 1 s deadline, not after the origin's 3 s.
    origin
        .admin(
            Method::POST,
            "/admin/fault",
            json!({"mode": "slow", "latency_ms": 3000}),
        )
        .await;
    let a = person.get("/api/code/explain").await;
    assert_eq!(a.status, 503, "{a:?}");
    assert!(a.retry_after.is_some(), "{a:?}");
    assert!(
        a.took >= Duration::from_millis(900) && a.took < Duration::from_secs(1) + SLACK,
        "{a:?}"
    );
}
