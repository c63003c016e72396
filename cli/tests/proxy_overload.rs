//! Overload: the real `shouhu origin` with its capacity model on (USL, knee at 10 in service,
//! crash after 3 s above 200), behind the real `shouhu proxy` with no capacity figure in its
//! config, under open-loop arrivals of code displays at 3x and then 10x the origin's peak
//! throughput. The cache is made useless (codes stale after 10 ms), so every request needs
//! the origin or the fallback issuer.
//!
//! Asserted: the origin never crashes; its goodput stays at or above 0.9 of its peak; every
//! display gets a valid code naming its subject or a fast 503 with `Retry-After`, every
//! `other` request (a tenth of the load, no fallback) the origin's answer or a fast 503 with
//! `Retry-After`, and nothing waits past the display deadline; when κ is multiplied by 4 through the origin's admin
//! API, the proxy's concurrency limit follows the new knee within 5 s. The figures are
//! printed (`cargo test -p shouhu --test proxy_overload -- --nocapture`).
//!
//! The origin's service time is 250 ms (peak ≈ 20 requests/s) so that 10x fits a loaded
//! 2-core test machine in a debug build, and the proxy's own latency stays small beside the
//! origin's; the ratios are what the test is about.
#![expect(clippy::unwrap_used, reason = "tests")]

#[path = "origin/harness.rs"]
mod harness;
#[path = "proxy/harness.rs"]
mod proxy_harness;

use std::sync::Arc;
use std::time::Duration;

use harness::{Citizen, OriginProc, client};
use proxy_harness::{Person, ProxyProc, sign_up, snapshot_of};
use reqwest::Method;
use serde_json::{Value, json};
use shouhu_code::{TrustList, VerifyPolicy};
use shouhu_testkit::RedisServer;
use tokio::time::Instant;

const USERS: u32 = 120;
const SERVICE_TIME_MS: f64 = 250.0;
const KAPPA: f64 = 0.009;
/// `deadlines.display`, the default.
const DEADLINE: Duration = Duration::from_secs(1);
/// Slack for a loaded 2-core machine.
const SLACK: Duration = Duration::from_millis(500);
/// One request in this many is a `other` request.
const EXPLAIN_EVERY: usize = 10;
/// What a "fast" refusal is.
const FAST: Duration = Duration::from_millis(250);

/// The cache made useless; the load comes from one address, which the per-address limit
/// would rightly cut (it is for one household or NAT, not for a whole surge).
const PROXY_CONFIG: &str = r#"
[cache]
ttl = "10ms"
max_stale = "10ms"

[rate_limit]
per_ip = "off"
"#;

/// One display as the citizen saw it.
struct Seen {
    user: usize,
    /// `GET /api/code/explain` (class `other`: cannot degrade) rather than a display.
    explain: bool,
    status: u16,
    source: String,
    retry_after: bool,
    body: String,
    /// From the scheduled send time (no coordinated omission).
    took: Duration,
}

/// Sends GET /api/code at `rate` per second for `length`, open loop, round robin over
/// `people`, and every [`EXPLAIN_EVERY`]th request GET /api/code/explain instead (class
/// `other`, which has no fallback: served by the origin or refused); the answers once all
/// are in.
async fn open_loop(people: &Arc<Vec<Person>>, rate: f64, length: Duration) -> Vec<Seen> {
    let http = client();
    let start = Instant::now();
    let total = (rate * length.as_secs_f64()) as usize;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..total {
        let at = start + Duration::from_secs_f64(i as f64 / rate);
        tokio::time::sleep_until(at).await;
        let people = Arc::clone(people);
        let http = http.clone();
        tasks.spawn(async move {
            let user = i % people.len();
            let p = &people[user];
            let explain = i % EXPLAIN_EVERY == 0;
            let path = if explain {
                "/api/code/explain"
            } else {
                "/api/code"
            };
            let r = http
                .get(format!("{}{path}", p.base))
                .bearer_auth(&p.token)
                .timeout(DEADLINE * 5)
                .send()
                .await;
            match r {
                Ok(r) => {
                    let status = r.status().as_u16();
                    let source = r
                        .headers()
                        .get("x-shouhu-source")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned();
                    let retry_after = r.headers().contains_key("retry-after");
                    let body = r.text().await.unwrap_or_default();
                    Seen {
                        user,
                        explain,
                        status,
                        source,
                        retry_after,
                        body,
                        took: at.elapsed(),
                    }
                }
                Err(e) => Seen {
                    user,
                    explain,
                    status: 0,
                    source: String::new(),
                    retry_after: false,
                    body: e.to_string(),
                    took: at.elapsed(),
                },
            }
        });
    }
    let mut seen = Vec::with_capacity(total);
    while let Some(s) = tasks.join_next().await {
        seen.push(s.unwrap());
    }
    seen
}

/// Checks every answer and prints a summary; `phase` names it.
fn check(phase: &str, seen: &[Seen], people: &[Person], trust: &TrustList) {
    let mut by_source = std::collections::BTreeMap::<String, usize>::new();
    let mut took: Vec<Duration> = seen.iter().map(|s| s.took).collect();
    took.sort_unstable();
    let mut refusal_took = Vec::new();
    for s in seen {
        assert!(
            s.took < DEADLINE + SLACK,
            "{phase}: an answer took {:?}: {} {}",
            s.took,
            s.status,
            s.body
        );
        match s.status {
            200 if s.explain => assert_eq!(s.source, "origin", "{phase}: {}", s.body),
            200 => {
                let v: Value = serde_json::from_str(&s.body).unwrap();
                let code = v["code"].as_str().unwrap();
                let claims = shouhu_code::verify(
                    code,
                    trust,
                    shouhu_code::time::now(),
                    &VerifyPolicy::default(),
                )
                .unwrap_or_else(|e| panic!("{phase}: a code that does not verify: {e}"))
                .claims;
                assert_eq!(
                    claims.subject.to_hex(),
                    people[s.user].subject,
                    "{phase}: another person's code"
                );
            }
            503 => {
                assert!(s.retry_after, "{phase}: 503 without Retry-After");
                refusal_took.push(s.took);
            }
            other => panic!("{phase}: status {other}: {}", s.body),
        }
        let what = if s.explain { "explain" } else { "code" };
        *by_source
            .entry(format!("{what} {} {}", s.status, s.source))
            .or_default() += 1;
    }
    refusal_took.sort_unstable();
    let pct = |v: &[Duration], q: f64| {
        v.get(((v.len() as f64 * q) as usize).min(v.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    eprintln!(
        "{phase}: {} answers {by_source:?}; latency p50 {:?} p99 {:?} max {:?}; refusals p50 \
         {:?} p90 {:?} p99 {:?}",
        seen.len(),
        pct(&took, 0.5),
        pct(&took, 0.99),
        took.last().copied().unwrap_or_default(),
        pct(&refusal_took, 0.5),
        pct(&refusal_took, 0.9),
        pct(&refusal_took, 0.99),
    );
    assert!(
        pct(&refusal_took, 0.99) < FAST + SLACK,
        "{phase}: refusals are slow"
    );
}

async fn capacity(origin: &OriginProc) -> Value {
    origin
        .admin(Method::GET, "/admin/status", Value::Null)
        .await["capacity"]
        .clone()
}

/// Origin goodput (requests completed for a client still waiting, per second) and crashes
/// while `length` of open-loop load at `rate` runs, measured over its steady part (after the
/// first second, until a second before its end), sampling how many requests the origin has
/// in service every 10 ms; the answers.
async fn goodput(
    origin: &OriginProc,
    people: &Arc<Vec<Person>>,
    rate: f64,
    length: Duration,
) -> (f64, u64, Vec<Seen>) {
    let load = {
        let people = Arc::clone(people);
        tokio::spawn(async move { open_loop(&people, rate, length).await })
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = capacity(origin).await;
    let started = Instant::now();
    let mut samples = Vec::new();
    while started.elapsed() < length - Duration::from_secs(2) {
        samples.push(capacity(origin).await["in_service"].as_u64().unwrap());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mean = samples.iter().sum::<u64>() as f64 / samples.len().max(1) as f64;
    let most = samples.iter().max().copied().unwrap_or(0);
    eprintln!("origin in service: mean {mean:.1}, most {most}");
    let after = capacity(origin).await;
    let secs = started.elapsed().as_secs_f64();
    let seen = load.await.unwrap();
    let n = |v: &Value, k: &str| v[k].as_u64().unwrap();
    let good = (n(&after, "completed") - n(&before, "completed"))
        - (n(&after, "wasted") - n(&before, "wasted"));
    eprintln!(
        "DEBUG completed {} wasted {} secs {secs}",
        n(&after, "completed") - n(&before, "completed"),
        n(&after, "wasted") - n(&before, "wasted")
    );
    (
        good as f64 / secs,
        n(&after, "crashes") - n(&before, "crashes"),
        seen,
    )
}

async fn limit(proxy: &ProxyProc) -> u64 {
    proxy.status().await["origin_limit"].as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn surges_keep_the_origin_at_its_knee_and_every_citizen_gets_an_answer() {
    let redis = RedisServer::start();
    let origin = OriginProc::start(None, &["--redis", &redis.url()]);
    let proxy = ProxyProc::start(&origin.citizen, Some(&redis.url()), Some(PROXY_CONFIG));
    let mut people = Vec::new();
    for n in 0..USERS {
        let p = sign_up(&proxy.base, 2000 + n).await;
        // A code from the origin directly publishes the person's record to the snapshot.
        let direct = Citizen {
            http: client(),
            base: origin.citizen.clone(),
            token: Some(p.token.clone()),
        };
        direct.colour().await;
        people.push(p);
    }
    let store = snapshot_of(&redis).await;
    let published = Instant::now();
    for p in &people {
        let subject: shouhu_code::SubjectId = p.subject.parse().unwrap();
        while !store.get(&subject).await.is_ok_and(|l| l.record.is_some()) {
            assert!(
                published.elapsed() < Duration::from_secs(30),
                "{} never reached the snapshot",
                p.subject
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let people = Arc::new(people);
    let trust = proxy.trust_list().await;

    let model = origin
        .admin(
            Method::PUT,
            "/admin/capacity",
            json!({"enabled": true, "service_time_ms": SERVICE_TIME_MS, "kappa": KAPPA}),
        )
        .await;
    let peak = model["peak_throughput"].as_f64().unwrap();
    let knee = model["knee"].as_f64().unwrap();
    eprintln!("origin model: knee {knee:.1} in service, peak {peak:.1} requests/s");

    // Warm-up at the peak. The proxy learnt the origin's latency while it answered in a
    // millisecond; with the model on it takes 100 ms, so the limit sits at its floor until a
    // probe measures the new baseline, then climbs to the knee.
    open_loop(&people, peak, Duration::from_secs(5)).await;

    for multiple in [3.0, 10.0] {
        let phase = format!("{multiple}x");
        let (good, crashes, seen) =
            goodput(&origin, &people, peak * multiple, Duration::from_secs(6)).await;
        eprintln!(
            "{phase}: origin goodput {good:.1}/s = {:.2} of peak; limit now {}",
            good / peak,
            limit(&proxy).await
        );
        assert_eq!(crashes, 0, "{phase}: the origin crashed");
        assert!(
            good >= 0.9 * peak,
            "{phase}: goodput {good:.1} < 0.9 x {peak:.1}"
        );
        check(&phase, &seen, &people, &trust);
    }

    // The knee moves: κ × 4 under 3x load; the limit must follow within 5 s.
    let load = {
        let people = Arc::clone(&people);
        tokio::spawn(async move { open_loop(&people, peak * 3.0, Duration::from_secs(8)).await })
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = limit(&proxy).await;
    let moved = origin
        .admin(
            Method::PUT,
            "/admin/capacity",
            json!({"kappa": KAPPA * 4.0}),
        )
        .await;
    let new_knee = moved["knee"].as_f64().unwrap();
    let changed = Instant::now();
    let followed = loop {
        let now = limit(&proxy).await;
        if (now as f64) <= new_knee * 1.6 {
            break changed.elapsed();
        }
        assert!(
            changed.elapsed() < Duration::from_secs(5),
            "limit {now} did not follow the knee {new_knee:.1} within 5 s (was {before})"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    eprintln!(
        "knee {knee:.1} -> {new_knee:.1}: limit {before} -> {} in {followed:?}",
        limit(&proxy).await
    );
    let seen = load.await.unwrap();
    check("knee moved", &seen, &people, &trust);
    assert_eq!(capacity(&origin).await["crashes"], 0);
}
