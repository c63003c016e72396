//! Rate limits of the real `shouhu proxy`: a citizen's refresh storm gets their cached code
//! (200, not an error) and never reaches the origin; past the per-address limit a client gets
//! 429 with `Retry-After`, while another client address (named by a trusted proxy in
//! `X-Forwarded-For`) is not affected, and an untrusted `X-Forwarded-For` changes nothing.
#![expect(clippy::unwrap_used, reason = "tests")]

#[path = "origin/harness.rs"]
mod harness;
#[path = "proxy/harness.rs"]
mod proxy_harness;

use harness::client;
use proxy_harness::{Stack, sign_up, verified_claims};

/// The cache is fresh for a millisecond only, so without the subject limit every request of
/// the storm would go to the origin.
const CONFIG: &str = r#"
[cache]
ttl = "1ms"
max_stale = "10m"

[rate_limit]
per_subject = "1/m"
per_subject_burst = 2
per_ip = "5/m"
per_ip_burst = 40
trusted_proxies = ["127.0.0.1/32"]
"#;

/// `shouhu_requests_total` of the proxy for `class` and `outcome`.
fn requests(metrics: &str, class: &str, outcome: &str) -> u64 {
    let prefix = format!("shouhu_requests_total{{class=\"{class}\",outcome=\"{outcome}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map_or(0, |v| v.parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_storm_gets_the_cached_code_and_a_busy_address_gets_429() {
    let stack = Stack::start_with(Some(CONFIG));
    // Sign-up and the first code come "from" one address behind the trusted proxy.
    let person = sign_up(&stack.proxy.base, 300).await;
    let trust = stack.proxy.trust_list().await;
    let http = client();
    let get = |from: &'static str| {
        http.get(format!("{}/api/code", stack.proxy.base))
            .bearer_auth(&person.token)
            .header("x-forwarded-for", from)
    };
    let first = get("203.0.113.7").send().await.unwrap();
    assert_eq!(first.headers()["x-shouhu-source"], "origin");
    let before = stack.proxy.metrics().await;

    // The storm: 20 refreshes at once. Past the burst of 2 none reaches the origin; every
    // one is a 200 with the person's own code.
    let mut sources = std::collections::BTreeMap::<String, usize>::new();
    for _ in 0..20 {
        let r = get("203.0.113.7").send().await.unwrap();
        assert_eq!(r.status(), 200);
        let source = r.headers()["x-shouhu-source"].to_str().unwrap().to_owned();
        let answer = proxy_harness::Answer {
            status: 200,
            source: source.clone(),
            retry_after: None,
            body: r.text().await.unwrap(),
            took: std::time::Duration::ZERO,
        };
        assert_eq!(
            verified_claims(&answer, &trust).subject.to_hex(),
            person.subject
        );
        *sources.entry(source).or_default() += 1;
    }
    let after = stack.proxy.metrics().await;
    let origin_calls =
        requests(&after, "display", "origin") - requests(&before, "display", "origin");
    assert!(
        origin_calls <= 2,
        "{origin_calls} refreshes reached the origin: {sources:?}"
    );
    assert!(
        sources.get("cache").copied().unwrap_or(0) >= 18,
        "{sources:?}"
    );

    // Another address behind the trusted proxy exhausts its own allowance: 429 with
    // Retry-After; the first address is untouched.
    let mut limited = None;
    for _ in 0..60 {
        let r = get("198.51.100.9").send().await.unwrap();
        if r.status() == 429 {
            limited = Some(r);
            break;
        }
    }
    let Some(limited) = limited else {
        panic!("the per-address limit never applied")
    };
    let retry: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    let body: serde_json::Value = limited.json().await.unwrap();
    assert_eq!(body["error"], "rate_limited");
    assert_eq!(get("203.0.113.7").send().await.unwrap().status(), 200);
    assert!(requests(&stack.proxy.metrics().await, "display", "rate_limited") >= 1);

    // From an address that is not a trusted proxy, X-Forwarded-For is ignored: naming the
    // limited address does not get this client refused.
    let untrusted = reqwest::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
        .no_proxy()
        .build()
        .unwrap();
    let r = untrusted
        .get(format!("{}/api/code", stack.proxy.base))
        .bearer_auth(&person.token)
        .header("x-forwarded-for", "198.51.100.9")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}
