//! `shouhu proxy` when the origin fails: killed, `display` still answers 200 with valid codes
//! (cached, or signed by the fallback issuer from the Redis snapshot), scans verify at the
//! edge and other classes get a fast 503 + `Retry-After`; hanging, every `display` answers
//! within its deadline and, once the breaker is open, without waiting for the origin at all.
#![expect(clippy::unwrap_used, reason = "tests")]

#[path = "origin/harness.rs"]
mod harness;
#[path = "proxy/harness.rs"]
mod proxy_harness;

use std::time::{Duration, Instant};

use harness::{Citizen, client};
use proxy_harness::{Person, Stack, sign_up, verified_claims};
use reqwest::Method;
use serde_json::json;
use shouhu_code::{Source, SubjectId};
use shouhu_config::RedisUrls;
use shouhu_fallback::{SnapshotStore, StoreOptions};

/// `deadlines.display`, the default.
const DISPLAY_DEADLINE: Duration = Duration::from_secs(1);
/// Slack for a loaded 2-core test machine on top of a deadline.
const SLACK: Duration = Duration::from_millis(500);
/// What "did not wait for the origin" means here.
const FAST: Duration = Duration::from_millis(300);

/// Signs up `n` people through the proxy and makes sure the origin has published each one's
/// record to the snapshot (asking the origin directly, so the proxy's cache stays empty).
async fn people_in_the_snapshot(stack: &Stack, first: u32, n: u32) -> Vec<Person> {
    let urls: RedisUrls = stack.redis.url().parse().unwrap();
    let store = SnapshotStore::connect(&urls, None, StoreOptions::default())
        .await
        .unwrap();
    let mut people = Vec::new();
    for i in first..first + n {
        let person = sign_up(&stack.proxy.base, i).await;
        let direct = Citizen {
            http: client(),
            base: stack.origin.citizen.clone(),
            token: Some(person.token.clone()),
        };
        direct.colour().await;
        let subject: SubjectId = person.subject.parse().unwrap();
        let started = Instant::now();
        loop {
            if store.get(&subject).await.is_ok_and(|l| l.record.is_some()) {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "the record of {} never reached Redis",
                person.subject
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        people.push(person);
    }
    people
}

async fn post_json(url: &str, body: serde_json::Value) -> (u16, Option<String>, String, String) {
    let r = client().post(url).json(&body).send().await.unwrap();
    let header = |n: &str| {
        r.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let (status, retry, source) = (
        r.status().as_u16(),
        header("retry-after"),
        header("x-shouhu-source").unwrap_or_default(),
    );
    (status, retry, source, r.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn origin_killed_display_answers_from_cache_and_fallback_with_valid_codes() {
    let mut stack = Stack::start();
    let cached = sign_up(&stack.proxy.base, 1).await;
    let first = cached.get("/api/code").await;
    assert_eq!(first.source, "origin");
    let people = people_in_the_snapshot(&stack, 10, 6).await;
    let trust = stack.proxy.trust_list().await;

    stack.origin.process.kill();

    // The first scan after the crash: the breaker is still closed, so it is passed through,
    // the connection is refused, and the scan is verified at the edge instead.
    assert_eq!(stack.proxy.status().await["breaker"], "closed");
    let (status, _, source, body) = post_json(
        &format!("{}/api/verify", stack.proxy.base),
        json!({"code": first.json()["code"]}),
    )
    .await;
    assert_eq!((status, source.as_str()), (200, "edge"), "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["valid"], true, "{v}");
    assert_eq!(v["claims"]["subject"], cached.subject);

    let again = cached.get("/api/code").await;
    assert_eq!(again.status, 200, "{again:?}");
    // The cached code, or a fallback code when the change feed has dropped the cached one
    // (either is a valid code of this person; which one is the display path's choice).
    assert!(
        ["cache", "fallback"].contains(&again.source.as_str()),
        "{again:?}"
    );
    assert_eq!(
        verified_claims(&again, &trust).subject.to_hex(),
        cached.subject
    );

    let mut fallback_codes = Vec::new();
    for person in &people {
        let a = person.get("/api/code").await;
        assert_eq!(a.status, 200, "{a:?}");
        assert_eq!(a.source, "fallback", "{a:?}");
        let claims = verified_claims(&a, &trust);
        assert_eq!(claims.subject.to_hex(), person.subject);
        assert_eq!(claims.source, Source::Fallback);
        assert!(a.took < DISPLAY_DEADLINE + SLACK, "{:?}", a.took);
        fallback_codes.push(a.json()["code"].as_str().unwrap().to_owned());
    }
    let page = people[0].get("/code").await;
    assert_eq!(page.status, 200);
    assert_eq!(page.source, "fallback");
    assert!(page.body.contains("<svg"));

    // A venue scanner's check is verified at the edge with the trust list.
    let (status, _, source, body) = post_json(
        &format!("{}/api/verify", stack.proxy.base),
        json!({"code": fallback_codes[0]}),
    )
    .await;
    assert_eq!((status, source.as_str()), (200, "edge"), "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["valid"], true, "{v}");
    assert_eq!(v["claims"]["subject"], people[0].subject);

    // Classes that cannot degrade are refused fast, with Retry-After, in both languages.
    let started = Instant::now();
    let (status, retry, _, body) = post_json(
        &format!("{}/api/register", stack.proxy.base),
        json!({"name": "李四"}),
    )
    .await;
    assert_eq!(status, 503, "{body}");
    assert!(retry.is_some_and(|r| r.parse::<u32>().unwrap() >= 1));
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(
        v["message_zh"].is_string() && v["message"].is_string(),
        "{v}"
    );
    assert!(started.elapsed() < FAST, "{:?}", started.elapsed());

    let status = stack.proxy.status().await;
    assert_ne!(status["breaker"], "closed", "{status}");
    let metrics = stack.proxy.metrics().await;
    assert!(
        metrics.contains(r#"shouhu_requests_total{class="display",outcome="fallback"} 7"#)
            || metrics.contains(r#"shouhu_requests_total{class="display",outcome="fallback"} 8"#),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn origin_hanging_display_answers_within_the_deadline_then_without_waiting() {
    let stack = Stack::start();
    let people = people_in_the_snapshot(&stack, 20, 10).await;
    let trust = stack.proxy.trust_list().await;

    stack
        .origin
        .admin(Method::POST, "/admin/fault", json!({"mode": "hang"}))
        .await;

    let mut took = Vec::new();
    for person in &people {
        let a = person.get("/api/code").await;
        assert_eq!(a.status, 200, "{a:?}");
        assert_eq!(a.source, "fallback", "{a:?}");
        assert_eq!(verified_claims(&a, &trust).subject.to_hex(), person.subject);
        assert!(
            a.took < DISPLAY_DEADLINE + SLACK,
            "answered after {:?}",
            a.took
        );
        took.push(a.took);
    }
    eprintln!("display answers while the origin hangs: {took:?}");
    let status = stack.proxy.status().await;
    assert_eq!(status["breaker"], "open", "{status}");
    // Once open, nobody waits for the origin.
    let tail = &took[took.len() - 5..];
    assert!(tail.iter().all(|t| *t < FAST), "{tail:?}");

    // Pass-through while open: a fast 503 with Retry-After, not a hang.
    let a = people[0].get("/api/code/explain").await;
    assert_eq!(a.status, 503, "{a:?}");
    assert!(a.retry_after.is_some());
    assert!(a.took < FAST, "{:?}", a.took);
}
