//! `shouhu proxy` and its Redis. Redis killed with the origin up: `display` is untouched
//! (codes from the origin and the cache, fast, verifying, naming the requester). Redis and the
//! origin both down: a still-valid cached code is served, everyone else gets a clear signed
//! "unknown" code at once, the cached code stops being served when its usability ends, and no
//! answer ever hangs. Redis back: the fallback issuer signs from the snapshot again.
#![expect(clippy::unwrap_used, reason = "tests")]

#[path = "origin/harness.rs"]
mod harness;
#[path = "proxy/harness.rs"]
mod proxy_harness;

use std::time::{Duration, Instant};

use proxy_harness::{
    Answer, Person, Stack, code_of, colour_of, green_in_snapshot, sign_up, snapshot_of,
    verified_claims, wait_for_redis_state,
};
use shouhu_code::{Colour, Source, TrustList};

/// `deadlines.display`, the default.
const DISPLAY_DEADLINE: Duration = Duration::from_secs(1);
/// Slack for a loaded 2-core test machine on top of a deadline.
const SLACK: Duration = Duration::from_millis(500);
/// What "did not wait for anything" means here.
const FAST: Duration = Duration::from_millis(300);
/// `[cache] ttl` of these tests: short, so that the origin is asked again during the outage.
const CACHE_TTL: Duration = Duration::from_secs(2);
/// `[cache] max_stale`: short, so that a cached code's usability ends within the test.
const CACHE_MAX_STALE: Duration = Duration::from_secs(5);
const PROXY_CONFIG: &str = "[cache]\nttl = \"2s\"\nmax_stale = \"5s\"\n";

/// Asserts `a` is a signed `unknown` code for `person` from the fallback issuer: what a
/// citizen with no usable code sees while neither the origin nor the snapshot can answer.
fn assert_unknown(a: &Answer, person: &Person, trust: &TrustList) {
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(a.source, "unknown", "{a:?}");
    assert_eq!(colour_of(a), "unknown", "{a:?}");
    let claims = verified_claims(a, trust);
    assert_eq!(claims.subject.to_hex(), person.subject);
    assert_eq!(claims.colour, Colour::Unknown);
    assert_eq!(claims.source, Source::Fallback);
}

fn median(mut took: Vec<Duration>) -> Duration {
    took.sort_unstable();
    took[took.len() / 2]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_with_the_origin_up_leaves_display_untouched() {
    let mut stack = Stack::start_with(Some(PROXY_CONFIG));
    let cached = sign_up(&stack.proxy.base, 1).await;
    assert_eq!(cached.get("/api/code").await.source, "origin");
    let mut people = vec![cached];
    for n in 2..6 {
        people.push(sign_up(&stack.proxy.base, n).await);
    }
    let trust = stack.proxy.trust_list().await;

    stack.redis.kill();
    assert!(
        wait_for_redis_state(&stack.proxy, "unreachable", Duration::from_secs(5)).await,
        "/readyz never reported Redis unreachable"
    );
    // Still ready: Redis is needed only when the origin cannot answer.
    let (status, ready) = proxy_harness::readyz(&stack.proxy).await;
    assert_eq!(
        (status, &ready["degraded"]),
        (200, &serde_json::json!(true))
    );

    // Registration and login pass through as before, and a new person's first code comes
    // from the origin.
    people.push(sign_up(&stack.proxy.base, 6).await);

    // Everyone asks, again and again, until every cached code has gone stale at least once
    // (so the origin is asked again, in the background, while Redis is down).
    let mut took = Vec::new();
    let mut sources = std::collections::BTreeMap::<String, usize>::new();
    let started = Instant::now();
    let mut round = 0;
    while started.elapsed() < CACHE_TTL + Duration::from_secs(1) || round < 3 {
        for person in &people {
            let path = if round % 3 == 2 { "/code" } else { "/api/code" };
            let a = person.get(path).await;
            assert_eq!(a.status, 200, "{a:?}");
            assert!(
                ["origin", "cache"].contains(&a.source.as_str()),
                "answered by {} while the origin is up: {a:?}",
                a.source
            );
            assert!(a.took < DISPLAY_DEADLINE, "answered after {:?}", a.took);
            if path == "/api/code" {
                let claims = verified_claims(&a, &trust);
                assert_eq!(claims.subject.to_hex(), person.subject);
                assert_eq!(claims.source, Source::Origin);
            } else {
                assert!(a.body.contains("<svg"), "the page shows the QR");
            }
            took.push(a.took);
            *sources.entry(a.source.clone()).or_default() += 1;
        }
        round += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!(
        "Redis down, origin up: {} answers by source {sources:?}, median {:?}, max {:?}",
        took.len(),
        median(took.clone()),
        took.iter().max()
    );
    // Five people had never asked: their first codes came from the origin, with Redis down.
    assert!(
        sources.get("origin").copied().unwrap_or(0) >= 5,
        "{sources:?}"
    );
    assert!(
        sources.get("cache").copied().unwrap_or(0) > 0,
        "{sources:?}"
    );
    assert!(median(took) < FAST);

    let metrics = stack.proxy.metrics().await;
    for outcome in [
        "fallback",
        "fallback_unknown",
        "cache_failover",
        "unavailable",
    ] {
        assert!(
            metrics.contains(&format!(
                r#"shouhu_requests_total{{class="display",outcome="{outcome}"}} 0"#
            )),
            "no display failed over ({outcome}): {metrics}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_and_origin_down_serve_valid_cached_codes_then_unknown_never_a_hang() {
    let mut stack = Stack::start_with(Some(PROXY_CONFIG));
    let store = snapshot_of(&stack.redis).await;
    // In the snapshot, not yet cached by the proxy.
    let cached = green_in_snapshot(&stack, &store, 1).await;
    let later = green_in_snapshot(&stack, &store, 3).await;
    // Never asked for a code through the proxy.
    let uncached = sign_up(&stack.proxy.base, 2).await;
    let trust = stack.proxy.trust_list().await;

    stack.redis.kill();
    assert!(wait_for_redis_state(&stack.proxy, "unreachable", Duration::from_secs(5)).await);
    // The last code the origin gives before it dies; the proxy caches it.
    let fetched_from = Instant::now();
    let from_origin = cached.get("/api/code").await;
    assert_eq!(from_origin.source, "origin", "{from_origin:?}");
    assert_eq!(colour_of(&from_origin), "green");
    let the_code = code_of(&from_origin);

    stack.origin.process.kill();

    // Both down. The cached, still valid code is served.
    let a = cached.get("/api/code").await;
    assert_eq!((a.status, a.source.as_str()), (200, "cache"), "{a:?}");
    assert_eq!(code_of(&a), the_code);
    assert_eq!(verified_claims(&a, &trust).subject.to_hex(), cached.subject);
    assert!(
        a.took < DISPLAY_DEADLINE + SLACK,
        "answered after {:?}",
        a.took
    );

    // Someone with no cached code: a signed "unknown" code at once, and a page that tells
    // staff to check manually.
    let a = uncached.get("/api/code").await;
    assert_unknown(&a, &uncached, &trust);
    assert!(
        a.took < DISPLAY_DEADLINE + SLACK,
        "answered after {:?}",
        a.took
    );
    let page = uncached.get("/code").await;
    assert_eq!((page.status, page.source.as_str()), (200, "unknown"));
    assert!(
        page.body.contains("人工核验") && page.body.contains("staff please check manually"),
        "{}",
        page.body
    );
    assert!(page.took < DISPLAY_DEADLINE + SLACK);

    // The cached code is served while it is usable (max_stale after it was fetched), then
    // the cached person gets the same clear "unknown"; every answer is fast.
    let give_up = Instant::now() + CACHE_MAX_STALE + Duration::from_secs(10);
    let mut cache_answers = 0;
    let first_unknown = loop {
        let a = cached.get("/api/code").await;
        assert!(
            a.took < DISPLAY_DEADLINE + SLACK,
            "answered after {:?}",
            a.took
        );
        if a.source == "cache" {
            assert_eq!((a.status, code_of(&a)), (200, the_code.clone()), "{a:?}");
            cache_answers += 1;
        } else {
            assert_unknown(&a, &cached, &trust);
            break Instant::now();
        }
        assert!(
            Instant::now() < give_up,
            "the cached code was still served {:?} after it was fetched",
            fetched_from.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let served_for = first_unknown - fetched_from;
    eprintln!("cached code served {cache_answers} times, for {served_for:?} after its fetch");
    // The cache (moka) keeps its own monotonic clock: a few milliseconds of tolerance.
    assert!(
        served_for + Duration::from_millis(50) >= CACHE_MAX_STALE,
        "a usable cached code was dropped after {served_for:?}"
    );
    for _ in 0..3 {
        let a = cached.get("/api/code").await;
        assert_unknown(&a, &cached, &trust);
        assert!(
            a.took < DISPLAY_DEADLINE + SLACK,
            "answered after {:?}",
            a.took
        );
    }
    let page = cached.get("/code").await;
    assert_eq!((page.status, page.source.as_str()), (200, "unknown"));
    assert!(page.body.contains("人工核验"));

    // Redis back (its AOF replayed): the fallback issuer signs from the snapshot again.
    stack.redis.restart();
    let give_up = Instant::now() + Duration::from_secs(10);
    loop {
        let a = later.get("/api/code").await;
        assert!(
            a.took < DISPLAY_DEADLINE + SLACK,
            "answered after {:?}",
            a.took
        );
        if a.source == "fallback" {
            assert_eq!(colour_of(&a), "green", "{a:?}");
            let claims = verified_claims(&a, &trust);
            assert_eq!(claims.subject.to_hex(), later.subject);
            assert_eq!(
                (claims.source, claims.colour),
                (Source::Fallback, Colour::Green)
            );
            break;
        }
        assert_unknown(&a, &later, &trust);
        assert!(
            Instant::now() < give_up,
            "no fallback code after Redis came back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let a = cached.get("/api/code").await;
    assert_eq!(
        (a.source.as_str(), colour_of(&a).as_str()),
        ("fallback", "green"),
        "{a:?}"
    );
    assert_eq!(verified_claims(&a, &trust).subject.to_hex(), cached.subject);
    assert!(wait_for_redis_state(&stack.proxy, "connected", Duration::from_secs(5)).await);
}

/// How long the hung-Redis test holds every Redis command (`CLIENT PAUSE ... ALL`).
const HANG: Duration = Duration::from_secs(5);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_redis_costs_display_no_time_with_the_origin_up_or_down() {
    let mut stack = Stack::start_with(Some(PROXY_CONFIG));
    let store = snapshot_of(&stack.redis).await;
    let cached = green_in_snapshot(&stack, &store, 1).await;
    let asks_while_hung = green_in_snapshot(&stack, &store, 2).await;
    let uncached = green_in_snapshot(&stack, &store, 3).await;
    let trust = stack.proxy.trust_list().await;
    assert_eq!(cached.get("/api/code").await.source, "origin");

    // Redis accepts connections but answers nothing: the worst kind of down.
    let hung_from = Instant::now();
    assert_eq!(
        stack
            .redis
            .cli(&["CLIENT", "PAUSE", &HANG.as_millis().to_string(), "ALL"])
            .trim(),
        "OK"
    );
    let hung_until = hung_from + HANG;

    // Origin up: the origin answers, and neither it nor the proxy waits for Redis.
    let a = asks_while_hung.get("/api/code").await;
    assert_eq!((a.status, a.source.as_str()), (200, "origin"), "{a:?}");
    assert_eq!(
        verified_claims(&a, &trust).subject.to_hex(),
        asks_while_hung.subject
    );
    assert!(a.took < FAST, "answered after {:?}", a.took);

    // Origin down too: cached codes at once, everyone else a fast "unknown" while Redis
    // is hung, then fallback codes from the snapshot when it answers again.
    stack.origin.process.kill();
    for person in [&cached, &asks_while_hung] {
        let a = person.get("/api/code").await;
        assert_eq!((a.status, a.source.as_str()), (200, "cache"), "{a:?}");
        assert_eq!(verified_claims(&a, &trust).subject.to_hex(), person.subject);
        assert!(
            a.took < DISPLAY_DEADLINE + SLACK,
            "answered after {:?}",
            a.took
        );
    }
    let give_up = hung_until + Duration::from_secs(10);
    let mut unknowns = 0;
    let mut took = Vec::new();
    loop {
        let a = uncached.get("/api/code").await;
        assert!(
            a.took < DISPLAY_DEADLINE + SLACK,
            "answered after {:?}",
            a.took
        );
        if Instant::now() < hung_until {
            // Entirely inside the hang: the snapshot could not be read.
            assert_unknown(&a, &uncached, &trust);
            unknowns += 1;
            took.push(a.took);
        } else if a.source == "fallback" {
            let claims = verified_claims(&a, &trust);
            assert_eq!(claims.subject.to_hex(), uncached.subject);
            assert_eq!(
                (claims.source, claims.colour),
                (Source::Fallback, Colour::Green)
            );
            break;
        } else {
            assert_unknown(&a, &uncached, &trust);
        }
        assert!(
            Instant::now() < give_up,
            "no fallback code after Redis answered again"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "unknown codes while Redis hung: {unknowns}, slowest {:?}",
        took.iter().max()
    );
    assert!(
        unknowns > 0,
        "the machine was too slow to ask within the hang"
    );
}
