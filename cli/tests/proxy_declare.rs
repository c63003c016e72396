//! Declarations through `shouhu proxy` while the origin refuses every connection: the proxy
//! journals them in Redis and answers 202 with a receipt (after a few fast 503s while the
//! breaker learns the origin is down); once the origin is back, the replayer inside the proxy
//! drains the journal and the origin has applied every declaration exactly once, a client's
//! retry of an accepted declaration included. A declaration without an `Idempotency-Key` is
//! refused, never journalled.
#![expect(clippy::unwrap_used, reason = "tests")]

#[path = "origin/harness.rs"]
mod harness;
#[path = "proxy/harness.rs"]
mod proxy_harness;

use std::time::{Duration, Instant};

use harness::{Citizen, OriginProc, client};
use proxy_harness::{Person, ProxyProc, sign_up};
use reqwest::Method;
use serde_json::{Value, json};
use shouhu_testkit::RedisServer;

/// A short cool-down, so the replayer's first probe comes soon after the origin is back.
const CONFIG: &str = r#"
[breaker]
open_for = "1s"

[journal]
replay_rate = 200

# The test's app retries every 50 ms while the breaker learns the origin is down; a person's
# rate limit would (rightly) refuse that with 429.
[rate_limit]
per_subject = "off"
"#;
const PEOPLE: u32 = 3;
/// Declarations per person during the outage.
const PER_PERSON: usize = 5;
/// Bound on one answer from the proxy while the origin refuses.
const FAST: Duration = Duration::from_millis(1500);

struct Declared {
    status: u16,
    source: String,
    retry_after: Option<String>,
    body: Value,
    took: Duration,
}

async fn declare(p: &Person, key: Option<&str>, body: &Value) -> Declared {
    let started = Instant::now();
    let mut req = p
        .http
        .post(format!("{}/api/declare", p.base))
        .bearer_auth(&p.token)
        .json(body);
    if let Some(key) = key {
        req = req.header("Idempotency-Key", key);
    }
    let r = req.send().await.unwrap();
    let header = |n: &str| {
        r.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let (status, source, retry_after) = (
        r.status().as_u16(),
        header("x-shouhu-source").unwrap_or_default(),
        header("retry-after"),
    );
    let text = r.text().await.unwrap();
    Declared {
        status,
        source,
        retry_after,
        body: serde_json::from_str(&text).unwrap_or(Value::String(text)),
        took: started.elapsed(),
    }
}

/// Sends one declaration as an app would: on 503 it waits a little and sends it again with
/// the same key, until it is taken (200 by the origin or 202 by the journal).
async fn declare_until_taken(p: &Person, key: &str, body: &Value) -> Declared {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let d = declare(p, Some(key), body).await;
        assert!(d.took < FAST, "declaration took {:?}", d.took);
        match d.status {
            200 | 202 => return d,
            503 => {
                assert!(
                    d.retry_after.is_some(),
                    "503 without Retry-After: {:?}",
                    d.body
                );
                assert!(Instant::now() < deadline, "declaration {key} never taken");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            other => panic!("declaration {key}: {other} {:?}", d.body),
        }
    }
}

fn body(n: usize) -> Value {
    json!({"temperature": 36.5, "symptoms": [], "travel": [format!("济南 {n}")]})
}

/// Declarations the origin has applied for `p`, asked of the origin directly.
async fn applied(origin: &OriginProc, p: &Person) -> u64 {
    let direct = Citizen {
        http: client(),
        base: origin.citizen.clone(),
        token: Some(p.token.clone()),
    };
    let (status, explain) = direct.get("/api/code/explain").await;
    assert_eq!(status, 200, "{explain}");
    explain["declarations"].as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declarations_during_an_outage_are_journalled_and_applied_once() {
    let redis = RedisServer::start();
    let origin = OriginProc::start(None, &["--redis", &redis.url()]);
    let proxy = ProxyProc::start(&origin.citizen, Some(&redis.url()), Some(CONFIG));
    let mut people = Vec::new();
    for n in 0..PEOPLE {
        people.push(sign_up(&proxy.base, 700 + n).await);
    }

    // Healthy: passed through, applied by the origin.
    let d = declare(&people[0], Some("before-outage"), &body(0)).await;
    assert_eq!(
        (d.status, d.source.as_str()),
        (200, "origin"),
        "{:?}",
        d.body
    );

    origin
        .admin(Method::POST, "/admin/fault", json!({"mode": "refuse"}))
        .await;

    let mut journalled = 0;
    for round in 0..PER_PERSON {
        for (i, p) in people.iter().enumerate() {
            let key = format!("outage-{i}-{round}");
            let d = declare_until_taken(p, &key, &body(round)).await;
            assert_eq!(
                d.status, 202,
                "the origin refuses, so only the journal takes it"
            );
            assert_eq!(d.source, "journal");
            assert_eq!(d.body["accepted"], true);
            assert_eq!(d.body["idempotency_key"], key.as_str());
            assert!(!d.body["receipt"].as_str().unwrap().is_empty());
            journalled += 1;
        }
    }
    // An app that lost the 202 sends the same declaration again: journalled again, applied
    // once.
    let d = declare(&people[0], Some("outage-0-0"), &body(0)).await;
    assert_eq!(d.status, 202, "{:?}", d.body);
    journalled += 1;
    // No key: refused as the origin would, nothing journalled.
    let d = declare(&people[1], None, &body(0)).await;
    assert_eq!(d.status, 400, "{:?}", d.body);
    assert_eq!(d.body["error"], "missing_idempotency_key");

    let status = proxy.status().await;
    assert_eq!(status["breaker"], "open", "{status}");
    assert_eq!(status["journal_backlog"], journalled, "{status}");
    let metrics = proxy.metrics().await;
    assert!(
        metrics.contains(&format!(
            r#"shouhu_requests_total{{class="declare",outcome="journalled"}} {journalled}"#
        )),
        "{metrics}"
    );
    origin
        .admin(Method::POST, "/admin/fault", json!({"mode": "none"}))
        .await;
    let started = Instant::now();
    loop {
        let status = proxy.status().await;
        if status["journal_backlog"] == 0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "journal not drained: {status}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    for (i, p) in people.iter().enumerate() {
        let before = u64::from(i == 0);
        assert_eq!(
            applied(&origin, p).await,
            before + PER_PERSON as u64,
            "person {i}: every declaration applied exactly once"
        );
    }
    let metrics = proxy.metrics().await;
    assert!(
        metrics.contains(&format!("shouhu_journal_applied_total {journalled}")),
        "{metrics}"
    );
    assert!(
        metrics.contains("shouhu_journal_dead_letters_total 0"),
        "{metrics}"
    );
}
