//! A close contact and the proxy's cache: once the snapshot says red, the proxy never shows
//! the older cached green. Marked just before the origin dies, the person gets red codes from
//! the fallback issuer; marked while their cached green is still fresh, the change feed drops
//! it within the snapshot lag, and after the first red no phone of theirs sees green again,
//! while a bystander's codes stay green.
#![expect(clippy::unwrap_used, reason = "tests")]

#[path = "origin/harness.rs"]
mod harness;
#[path = "proxy/harness.rs"]
mod proxy_harness;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use proxy_harness::{
    Answer, Person, Stack, colour_of, green_in_snapshot, snapshot_of, verified_claims,
    wait_for_cache_entries, wait_for_record,
};
use serde_json::json;
use shouhu_code::{Colour, Source, TrustList};

/// `deadlines.display`, the default.
const DISPLAY_DEADLINE: Duration = Duration::from_secs(1);
/// Slack for a loaded 2-core test machine on top of a deadline.
const SLACK: Duration = Duration::from_millis(500);
/// From a change in the snapshot to the proxy's cache letting go of the old code: the feed is
/// polled every 200 ms; the rest is slack for a loaded machine.
const FEED_LAG: Duration = Duration::from_secs(3);
/// How long a change at a source may take to reach the snapshot (the bound is 2 s).
const SNAPSHOT_LAG: Duration = Duration::from_secs(10);

/// Asserts `a` is a red code of `person`, signed and verifiable, with the claims the JSON says.
fn assert_red(a: &Answer, person: &Person, trust: &TrustList) -> Source {
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(colour_of(a), "red", "{a:?}");
    let claims = verified_claims(a, trust);
    assert_eq!(claims.subject.to_hex(), person.subject);
    assert_eq!(claims.colour, Colour::Red);
    claims.source
}

/// Displays through the proxy until a green origin code is cached. The first
/// answer comes from the origin; the cache may let go of it once while the proxy's feed
/// follower catches up with an older, stricter entry of the same person (the seeded colour
/// before the reset), so this asks until the cache answers.
async fn cached_green(person: &Person, trust: &TrustList) {
    let first = person.get("/api/code").await;
    assert_eq!(
        (first.status, first.source.as_str()),
        (200, "origin"),
        "{first:?}"
    );
    assert_eq!(colour_of(&first), "green");
    assert_eq!(
        verified_claims(&first, trust).subject.to_hex(),
        person.subject
    );
    let started = Instant::now();
    loop {
        let again = person.get("/api/code").await;
        assert_eq!((again.status, colour_of(&again).as_str()), (200, "green"));
        if again.source == "cache" {
            return;
        }
        assert!(
            started.elapsed() < FEED_LAG,
            "the code was never cached: {again:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_close_contact_marked_before_the_outage_shows_red_from_fallback_never_cached_green() {
    let mut stack = Stack::start();
    let store = snapshot_of(&stack.redis).await;
    let person = green_in_snapshot(&stack, &store, 1).await;
    let trust = stack.proxy.trust_list().await;
    cached_green(&person, &trust).await;
    assert_eq!(stack.proxy.status().await["cache_entries"], 1);

    // The health commission marks a close contact; the origin publishes red to the snapshot
    // and dies at once.
    stack
        .origin
        .source_op("health", &person.subject, json!({"op": "close_contact"}))
        .await;
    let lag = wait_for_record(&store, &person.subject, Colour::Red, SNAPSHOT_LAG).await;
    assert!(lag.is_some(), "the red record never reached the snapshot");
    stack.origin.process.kill();

    // The proxy follows the snapshot's change feed and lets go of the green within the feed
    // lag. Waiting for that, rather than racing it, is what "marked before the outage" means;
    // a code still fresh when the change lands is the next test.
    assert!(
        wait_for_cache_entries(&stack.proxy, 0, FEED_LAG).await,
        "the cached green outlived the red record by {FEED_LAG:?}: {}",
        stack.proxy.status().await
    );

    for _ in 0..5 {
        let a = person.get("/api/code").await;
        assert_eq!(a.source, "fallback", "{a:?}");
        assert_eq!(assert_red(&a, &person, &trust), Source::Fallback);
        assert!(
            a.took < DISPLAY_DEADLINE + SLACK,
            "answered after {:?}",
            a.took
        );
    }
    let page = person.get("/code").await;
    assert_eq!((page.status, page.source.as_str()), (200, "fallback"));
    assert!(page.body.contains("红码") && !page.body.contains("绿码"));
}

/// One display seen by a poller.
#[derive(Debug)]
struct Seen {
    /// Whose display: the person marked a contact, or a bystander.
    marked: bool,
    started: Instant,
    ended: Instant,
    answer: Answer,
}

/// Polls what the pollers have seen until `check` holds; panics after [`SNAPSHOT_LAG`].
async fn wait_for(seen: &Mutex<Vec<Seen>>, what: &str, check: impl Fn(&[Seen]) -> bool) {
    let started = Instant::now();
    while !check(&seen.lock().unwrap()) {
        assert!(
            started.elapsed() < SNAPSHOT_LAG,
            "no {what} within {SNAPSHOT_LAG:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_cached_green_is_dropped_within_the_lag_and_never_served_after_the_first_red() {
    const POLLERS: usize = 3;
    const AFTER_EACH_STEP: usize = 30;
    // The pollers ask far faster than a person: without this the subject's rate limit would
    // (rightly) answer them from cache or fallback instead of the origin.
    let mut stack = Stack::start_with(Some("[rate_limit]\nper_subject = \"off\"\n"));
    let store = snapshot_of(&stack.redis).await;
    let person = green_in_snapshot(&stack, &store, 1).await;
    let bystander = green_in_snapshot(&stack, &store, 2).await;
    let trust = stack.proxy.trust_list().await;
    // Fresh for `[cache] ttl` (30 s by default): only the change feed can drop them.
    cached_green(&person, &trust).await;
    cached_green(&bystander, &trust).await;

    // Several phones of this person keep asking, concurrently, and so does a bystander.
    let seen = Arc::new(Mutex::new(Vec::<Seen>::new()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut pollers = tokio::task::JoinSet::new();
    for n in 0..=POLLERS {
        let marked = n < POLLERS;
        let who = if marked { &person } else { &bystander };
        let (person, seen, stop) = (who.clone(), Arc::clone(&seen), Arc::clone(&stop));
        pollers.spawn(async move {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let started = Instant::now();
                let answer = person.get("/api/code").await;
                let ended = Instant::now();
                seen.lock().unwrap().push(Seen {
                    marked,
                    started,
                    ended,
                    answer,
                });
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
    }
    wait_for(&seen, "answers before the change", |s| s.len() > POLLERS).await;

    stack
        .origin
        .source_op("health", &person.subject, json!({"op": "close_contact"}))
        .await;
    let lag = wait_for_record(&store, &person.subject, Colour::Red, SNAPSHOT_LAG).await;
    let in_snapshot = Instant::now();
    assert!(lag.is_some(), "the red record never reached the snapshot");
    let first_red = |s: &[Seen]| {
        s.iter()
            .filter(|x| x.marked && colour_of(&x.answer) == "red")
            .map(|x| x.ended)
            .min()
    };
    wait_for(&seen, "a red answer", |s| first_red(s).is_some()).await;
    let red_at = first_red(&seen.lock().unwrap()).unwrap();
    wait_for(&seen, "answers after the first red", |s| {
        s.iter().filter(|x| x.marked && x.started > red_at).count() >= AFTER_EACH_STEP
    })
    .await;

    // The origin dies: red still, from the cache (the origin's red code) or the fallback.
    stack.origin.process.kill();
    let killed = Instant::now();
    wait_for(&seen, "answers after the origin died", |s| {
        s.iter().filter(|x| x.marked && x.started > killed).count() >= AFTER_EACH_STEP
    })
    .await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    while let Some(joined) = pollers.join_next().await {
        joined.unwrap();
    }

    let seen = std::mem::take(&mut *seen.lock().unwrap());
    let mut by = std::collections::BTreeMap::<(bool, bool, String, String), usize>::new();
    for s in &seen {
        let a = &s.answer;
        assert!(
            a.took < DISPLAY_DEADLINE + SLACK,
            "answered after {:?}",
            a.took
        );
        let colour = colour_of(a);
        *by.entry((
            s.marked,
            s.started > killed,
            colour.clone(),
            a.source.clone(),
        ))
        .or_default() += 1;
        if !s.marked {
            // The bystander stays green throughout, with their own codes.
            assert_eq!((a.status, colour.as_str()), (200, "green"), "{a:?}");
            let claims = verified_claims(a, &trust);
            assert_eq!(claims.subject.to_hex(), bystander.subject);
            continue;
        }
        if colour == "green" {
            // An origin code (cached or not), and only before the first red.
            assert_eq!(a.status, 200, "{a:?}");
            let claims = verified_claims(a, &trust);
            assert_eq!(claims.subject.to_hex(), person.subject);
            assert_eq!(
                (claims.colour, claims.source),
                (Colour::Green, Source::Origin)
            );
            assert!(
                s.started <= red_at,
                "green served {:?} after the first red: {a:?}",
                s.started - red_at
            );
        } else {
            let source = assert_red(a, &person, &trust);
            if s.started > killed {
                assert!(["cache", "fallback"].contains(&a.source.as_str()), "{a:?}");
            } else {
                assert_eq!(source, Source::Origin, "{a:?}");
            }
        }
    }
    let lag = red_at.saturating_duration_since(in_snapshot);
    eprintln!(
        "red record in the snapshot -> first red answer: {lag:?}; answers by (marked, origin \
         dead, colour, source): {by:?}"
    );
    assert!(
        lag < FEED_LAG,
        "the cached green was served {lag:?} after the red record"
    );
}
