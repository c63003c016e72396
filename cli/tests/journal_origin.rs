//! The write journal replayed to the real `shouhu origin` process, through a private
//! `redis-server` that is killed and restarted mid-replay and a replayer that is aborted
//! mid-batch and replaced: the origin applies every accepted declaration exactly once, the
//! ones it rejects end up in the dead letters, and a declaration offered while Redis is down
//! is refused at once and never applied.
#![expect(clippy::unwrap_used, reason = "tests")]

#[path = "origin/harness.rs"]
mod harness;

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use harness::{Citizen, OriginProc, id_number};
use serde_json::{Value, json};
use shouhu_code::SubjectId;
use shouhu_code::time::now;
use shouhu_fallback::journal::replayer::{Replayer, ReplayerOptions};
use shouhu_fallback::journal::{
    Declaration, Journal, JournalError, JournalOptions, MAX_IDEMPOTENCY_KEY_CHARS,
};
use shouhu_testkit::RedisServer;

const CITIZENS: usize = 4;
/// Valid declarations journalled before the replay starts.
const VALID_BEFORE: usize = 60;
/// Valid declarations journalled after Redis came back.
const VALID_AFTER: usize = 3;
/// Positions (in the journal) of the declarations the origin rejects (temperature 80 °C).
const INVALID_AT: [usize; 3] = [5, 31, 52];
const ENTRIES_KEY: &str = "shouhu:{journal}:entries";
/// Bound on one append while Redis is dead.
const FAST_REFUSAL: Duration = Duration::from_millis(200);

struct Person {
    citizen: Citizen,
    subject: SubjectId,
}

/// One journalled declaration and what the origin must do with it.
struct Sent {
    person: usize,
    key: String,
    body: Value,
    valid: bool,
}

/// The key shapes clients send, each accepted by the origin: UUID-like, with spaces and
/// punctuation, and the longest allowed.
fn key(n: usize) -> String {
    match n % 4 {
        0 => format!("{n:08x}-7e2c-4b1a-9f3d-{n:012x}"),
        1 => format!("2026-11-29 morning #{n}"),
        2 => format!("decl:{n}/{{daily}}?a=b&c=~!\"'"),
        _ => format!("{n:0>width$}", width = MAX_IDEMPOTENCY_KEY_CHARS),
    }
}

fn body(n: usize, valid: bool) -> Value {
    let temperature = if valid {
        36.0 + (n % 10) as f64 / 10.0
    } else {
        80.0
    };
    json!({"temperature": temperature, "symptoms": [], "travel": [format!("济南 {n}")]})
}

/// What the proxy journals: the citizen's own key, `Authorization` and body.
fn declaration(people: &[Person], s: &Sent) -> Declaration {
    let p = &people[s.person];
    Declaration {
        idempotency_key: s.key.clone(),
        subject: p.subject,
        authorization: format!("Bearer {}", p.citizen.token.as_deref().unwrap()),
        content_type: "application/json".to_owned(),
        body: s.body.to_string().into_bytes(),
    }
}

fn replayer(journal: &Journal, origin: &str, consumer: &str) -> Replayer {
    Replayer::new(
        journal.clone(),
        ReplayerOptions {
            origin: origin.to_owned(),
            consumer: consumer.to_owned(),
            rate_per_sec: 200,
            // Larger than the journal: every disruption below lands inside a batch.
            batch: 100,
            request_timeout: Duration::from_secs(2),
            min_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(100),
            claim_idle: Duration::from_millis(300),
            idle_poll: Duration::from_millis(10),
        },
    )
    .unwrap()
}

/// Polls `check` until it holds, failing the test after `within`.
async fn eventually<F, Fut>(what: &str, within: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    while !check().await {
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn declarations_applied(p: &Person) -> u64 {
    let (status, explain) = p.citizen.get("/api/code/explain").await;
    assert_eq!(status, 200, "{explain}");
    explain["declarations"].as_u64().unwrap()
}

/// `POST /api/declare` answers by status class, from the origin's own metrics.
async fn declare_answers(origin: &OriginProc, class: &str) -> u64 {
    let text = harness::client()
        .get(format!("{}/metrics", origin.admin))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let series =
        format!("shouhu_origin_requests_total{{route=\"/api/declare\",status=\"{class}\"}}");
    text.lines()
        .find_map(|l| l.strip_prefix(&series))
        .map_or(0, |v| v.trim().parse().unwrap())
}

fn pending(redis: &RedisServer) -> u64 {
    let summary = redis.cli(&["XPENDING", ENTRIES_KEY, "replayers"]);
    summary
        .lines()
        .next()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_through_redis_and_replayer_crashes_applies_each_declaration_once() {
    let origin = OriginProc::start(None, &[]);
    let mut redis = RedisServer::start();
    let journal = Journal::connect(
        &redis.url().parse().unwrap(),
        None,
        JournalOptions::default(),
    )
    .await
    .unwrap();

    let mut people = Vec::new();
    for i in 0..CITIZENS {
        let mut citizen = origin.citizen();
        let subject = citizen
            .sign_up(
                &id_number(
                    "370102",
                    &format!("1990030{}", i + 1),
                    &format!("{:03}", i + 1),
                ),
                &format!("1380013800{i}"),
            )
            .await;
        let p = Person {
            citizen,
            subject: subject.parse().unwrap(),
        };
        assert_eq!(declarations_applied(&p).await, 0);
        people.push(p);
    }

    let total_before = VALID_BEFORE + INVALID_AT.len();
    let mut sent: Vec<Sent> = (0..total_before)
        .map(|n| {
            let valid = !INVALID_AT.contains(&n);
            Sent {
                person: n % CITIZENS,
                key: key(n),
                body: body(n, valid),
                valid,
            }
        })
        .collect();
    for s in &sent {
        let receipt = journal
            .append(&declaration(&people, s), now())
            .await
            .unwrap();
        assert!(!receipt.receipt.is_empty());
    }
    // The first one had reached the origin before the proxy gave up on it and journalled it
    // (a lost answer): its replay must not apply it again.
    let (status, text) = people[sent[0].person]
        .citizen
        .declare(&sent[0].key, sent[0].body.clone())
        .await;
    assert_eq!(status, 200, "{text}");

    let first = replayer(&journal, &origin.citizen, "replayer-a");
    let a = first.counters();
    let task = tokio::spawn(first.run(std::future::pending()));
    eventually("replayer-a applies 10", Duration::from_secs(20), || async {
        a.applied.load(Ordering::Relaxed) >= 10
    })
    .await;

    // Redis dies mid-replay. A declaration offered now is refused at once, not "accepted".
    redis.kill();
    let refused: Vec<Sent> = (0..2)
        .map(|i| Sent {
            person: i,
            key: format!("offered-while-redis-is-down-{i}"),
            body: body(i, true),
            valid: true,
        })
        .collect();
    for s in &refused {
        let started = Instant::now();
        let answer = journal.append(&declaration(&people, s), now()).await;
        let took = started.elapsed();
        assert!(
            matches!(answer, Err(JournalError::Unavailable(_))),
            "{answer:?}"
        );
        assert!(took < FAST_REFUSAL, "refusal took {took:?}");
    }
    eventually(
        "replayer-a notices the dead Redis",
        Duration::from_secs(5),
        || async { a.journal_errors.load(Ordering::Relaxed) >= 1 },
    )
    .await;
    let applied_at_kill = a.applied.load(Ordering::Relaxed);
    assert!(
        applied_at_kill < VALID_BEFORE as u64,
        "Redis died mid-replay"
    );
    redis.restart();

    // Redis is back: the journal accepts again, with no restart of anything.
    eventually("the journal answers", Duration::from_secs(10), || async {
        journal.backlog().await.is_ok()
    })
    .await;
    for n in total_before..total_before + VALID_AFTER {
        let s = Sent {
            person: n % CITIZENS,
            key: key(n),
            body: body(n, true),
            valid: true,
        };
        journal
            .append(&declaration(&people, &s), now())
            .await
            .unwrap();
        sent.push(s);
    }

    // The replayer is stopped in the middle of its batch and another takes over.
    eventually("replayer-a applies 25", Duration::from_secs(20), || async {
        a.applied.load(Ordering::Relaxed) >= 25
    })
    .await;
    task.abort();
    let _ = task.await;
    let left_pending = pending(&redis);
    assert!(left_pending > 0, "replayer-a was stopped mid-batch");
    let second = replayer(&journal, &origin.citizen, "replayer-b");
    let b = second.counters();
    let task = tokio::spawn(second.run(std::future::pending()));

    let valid = sent.iter().filter(|s| s.valid).count();
    let invalid = sent.len() - valid;
    eventually("the journal drains", Duration::from_secs(30), || async {
        journal.backlog().await.ok() == Some(0)
            && journal.dead_letter_count().await.ok() == Some(invalid as u64)
    })
    .await;
    task.abort();
    let _ = task.await;
    assert_eq!(pending(&redis), 0);

    // The origin applied every valid declaration once, for the right citizen, and nothing
    // else: not the invalid ones, not those offered while Redis was down.
    let mut total = 0;
    for (i, p) in people.iter().enumerate() {
        let expected = sent.iter().filter(|s| s.valid && s.person == i).count() as u64;
        let applied = declarations_applied(p).await;
        assert_eq!(applied, expected, "citizen {i}");
        total += applied;
    }
    assert_eq!(total, valid as u64);
    // It answered 2xx more often than it applied: re-deliveries were recognised by key.
    let ok_answers = declare_answers(&origin, "2xx").await;
    assert!(
        ok_answers > valid as u64,
        "{ok_answers} answers for {valid} declarations"
    );

    // The rejected ones are in the dead letters, with the origin's reason and no token.
    let dead = journal.dead_letters(100).await.unwrap();
    let dead_keys: BTreeSet<&str> = dead.iter().map(|d| d.idempotency_key.as_str()).collect();
    let invalid_keys: BTreeSet<&str> = sent
        .iter()
        .filter(|s| !s.valid)
        .map(|s| s.key.as_str())
        .collect();
    assert_eq!(dead_keys, invalid_keys);
    for d in &dead {
        assert_eq!(d.status, 422, "{d:?}");
        assert!(d.response.contains("invalid_declaration"), "{d:?}");
        assert!(d.body.contains("80"), "{d:?}");
    }
    eprintln!(
        "journalled {} ({valid} valid, {invalid} invalid), refused {} while Redis was down; \
         applied: replayer-a {} (Redis killed at {applied_at_kill}, aborted with {left_pending} \
         pending), replayer-b {}; origin applied {total}, answered 2xx {ok_answers} times \
         (incl. 1 direct); dead letters {}",
        sent.len(),
        refused.len(),
        a.applied.load(Ordering::Relaxed),
        b.applied.load(Ordering::Relaxed),
        dead.len(),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_journal_takes_exactly_the_idempotency_keys_the_origin_takes() {
    let origin = OriginProc::start(None, &[]);
    let redis = RedisServer::start();
    let journal = Journal::connect(
        &redis.url().parse().unwrap(),
        None,
        JournalOptions::default(),
    )
    .await
    .unwrap();
    let mut citizen = origin.citizen();
    let subject = citizen
        .sign_up(&id_number("370102", "19851212", "042"), "13900139000")
        .await;
    let person = Person {
        citizen,
        subject: subject.parse().unwrap(),
    };
    let too_long = "k".repeat(MAX_IDEMPOTENCY_KEY_CHARS + 1);
    let longest = "k".repeat(MAX_IDEMPOTENCY_KEY_CHARS);
    let cases = [
        ("", false),
        ("   ", false),
        ("键-1", false),
        (too_long.as_str(), false),
        (longest.as_str(), true),
        ("2026-11-29 morning", true),
        ("decl:1/{daily}?a=b&c=~!\"'", true),
    ];
    for (n, (key, takes)) in cases.into_iter().enumerate() {
        let s = Sent {
            person: 0,
            key: key.to_owned(),
            body: body(n, true),
            valid: true,
        };
        let journalled = journal
            .append(&declaration(std::slice::from_ref(&person), &s), now())
            .await;
        let (status, text) = person.citizen.declare(key, s.body.clone()).await;
        assert_eq!(
            (journalled.is_ok(), status == 200),
            (takes, takes),
            "key {key:?}: journal {journalled:?}, origin {status} {text}"
        );
        if !takes {
            assert!(matches!(journalled, Err(JournalError::Invalid(_))));
            assert_eq!(status, 400, "{text}");
        }
    }
    // A header value that cannot be sent would block the replay forever: refused up front.
    let mut d = declaration(
        std::slice::from_ref(&person),
        &Sent {
            person: 0,
            key: "k".to_owned(),
            body: body(0, true),
            valid: true,
        },
    );
    d.authorization.push('\n');
    assert!(matches!(
        journal.append(&d, now()).await,
        Err(JournalError::Invalid(_))
    ));
}
