//! The write journal against real `redis-server` processes and a stub origin that counts
//! what it applied. (The stub stands in for the reference origin, built in parallel; it
//! dedups by `Idempotency-Key` as the origin's `POST /api/declare` does.)
#![expect(clippy::unwrap_used, reason = "tests")]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use shouhu_code::SubjectId;
use shouhu_code::time::now;
use shouhu_config::RedisUrls;
use shouhu_fallback::journal::replayer::{Replayer, ReplayerOptions};
use shouhu_fallback::journal::{Declaration, Journal, JournalError, JournalOptions};
use shouhu_testkit::{RedisCluster, RedisServer};

#[derive(Default)]
struct Origin {
    /// Idempotency key -> the declaration id in the body it applied.
    by_key: HashMap<String, String>,
    /// Declaration id -> how many times its effect was applied.
    effects: HashMap<String, u32>,
    requests: u64,
    unauthorised: u64,
}

type Shared = Arc<Mutex<Origin>>;

async fn declare(State(o): State<Shared>, headers: HeaderMap, body: String) -> StatusCode {
    // A little work per request, so a replayer can be killed in the middle of a batch.
    tokio::time::sleep(Duration::from_millis(2)).await;
    let mut o = o.lock().unwrap();
    o.requests += 1;
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !auth.starts_with("Bearer citizen-") {
        o.unauthorised += 1;
        return StatusCode::UNAUTHORIZED;
    }
    let Some(key) = headers.get("idempotency-key").and_then(|v| v.to_str().ok()) else {
        return StatusCode::BAD_REQUEST;
    };
    let value: serde_json::Value = serde_json::from_str(&body).unwrap();
    if value["temperature"].as_f64().unwrap() > 45.0 {
        return StatusCode::UNPROCESSABLE_ENTITY;
    }
    let id = value["id"].as_str().unwrap().to_owned();
    if let Some(seen) = o.by_key.get(key) {
        return if *seen == id {
            StatusCode::OK
        } else {
            StatusCode::CONFLICT
        };
    }
    o.by_key.insert(key.to_owned(), id.clone());
    *o.effects.entry(id).or_default() += 1;
    StatusCode::OK
}

async fn stub_origin() -> (String, Shared) {
    let shared: Shared = Arc::default();
    let app = axum::Router::new()
        .route("/api/declare", post(declare))
        .with_state(Arc::clone(&shared));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), shared)
}

fn declaration(n: u32) -> Declaration {
    let temperature = if n % 37 == 5 { 99.0 } else { 36.6 };
    Declaration {
        idempotency_key: format!("key-{n}"),
        subject: SubjectId([u8::try_from(n % 200).unwrap(); 16]),
        authorization: format!("Bearer citizen-{n}"),
        content_type: "application/json".to_owned(),
        body: serde_json::json!({ "id": format!("decl-{n}"), "temperature": temperature })
            .to_string()
            .into_bytes(),
    }
}

fn is_invalid(n: u32) -> bool {
    n % 37 == 5
}

async fn journal_on(urls: &[String]) -> Journal {
    let urls: RedisUrls = urls.join(",").parse().unwrap();
    Journal::connect(&urls, None, JournalOptions::default())
        .await
        .unwrap()
}

fn replayer(journal: &Journal, origin: &str) -> Replayer {
    Replayer::new(
        journal.clone(),
        ReplayerOptions {
            origin: origin.to_owned(),
            consumer: "replayer-test".to_owned(),
            rate_per_sec: 5000,
            batch: 16,
            min_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(200),
            idle_poll: Duration::from_millis(10),
            ..ReplayerOptions::default()
        },
    )
    .unwrap()
}

fn applied(origin: &Shared) -> usize {
    origin.lock().unwrap().effects.len()
}

async fn until(within: Duration, mut check: impl FnMut() -> bool) {
    tokio::time::timeout(within, async {
        while !check() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap();
}

/// Every accepted valid declaration applied exactly once; every invalid one dead-lettered.
async fn assert_exactly_once(journal: &Journal, origin: &Shared, accepted: &[u32]) {
    let valid: Vec<u32> = accepted
        .iter()
        .copied()
        .filter(|&n| !is_invalid(n))
        .collect();
    let invalid = accepted.len() - valid.len();
    {
        let o = origin.lock().unwrap();
        for n in &valid {
            assert_eq!(
                o.effects.get(&format!("decl-{n}")),
                Some(&1),
                "declaration {n} applied once"
            );
        }
        assert_eq!(o.effects.len(), valid.len(), "nothing else was applied");
        assert_eq!(o.unauthorised, 0, "the citizen's own token was replayed");
        assert!(
            o.requests as usize >= accepted.len(),
            "every declaration was sent"
        );
    }
    assert_eq!(journal.backlog().await.unwrap(), 0);
    assert_eq!(journal.dead_letter_count().await.unwrap(), invalid as u64);
    let dead = journal.dead_letters(1000).await.unwrap();
    assert!(
        dead.iter()
            .all(|d| d.status == 422 && d.body.contains("99"))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn replay_survives_redis_and_replayer_crashes_exactly_once() {
    let mut redis = RedisServer::start();
    let journal = journal_on(&[redis.url()]).await;
    let (origin_url, origin) = stub_origin().await;

    let mut accepted = Vec::new();
    for n in 0..300 {
        let r = journal.append(&declaration(n), now()).await.unwrap();
        assert!(!r.receipt.is_empty());
        accepted.push(n);
    }

    let task = tokio::spawn(replayer(&journal, &origin_url).run(std::future::pending()));
    until(Duration::from_secs(20), || applied(&origin) >= 80).await;

    // Redis crashes mid-replay. The journal refuses new declarations at once...
    redis.kill();
    for n in 300..310 {
        let started = Instant::now();
        let refused = journal.append(&declaration(n), now()).await;
        assert!(
            matches!(refused, Err(JournalError::Unavailable(_))),
            "{refused:?}"
        );
        assert!(started.elapsed() < Duration::from_millis(300));
    }
    redis.restart();
    // ...and accepts again once Redis is back, without a restart of anything.
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if journal.append(&declaration(300), now()).await.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap();
    accepted.push(300);

    // The replayer is killed in the middle of a batch and started again.
    let before = applied(&origin);
    until(Duration::from_secs(20), || applied(&origin) >= before + 40).await;
    task.abort();
    let _ = task.await;
    let task = tokio::spawn(replayer(&journal, &origin_url).run(std::future::pending()));

    let valid = accepted.iter().filter(|&&n| !is_invalid(n)).count();
    until(Duration::from_secs(30), || applied(&origin) >= valid).await;
    tokio::time::timeout(Duration::from_secs(10), async {
        while journal.backlog().await.unwrap_or(1) > 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap();
    task.abort();
    assert_exactly_once(&journal, &origin, &accepted).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn replay_on_a_cluster_is_exactly_once_across_a_replayer_crash() {
    let cluster = RedisCluster::start();
    let journal = journal_on(&cluster.urls()).await;
    let (origin_url, origin) = stub_origin().await;
    let accepted: Vec<u32> = (0..150).collect();
    for &n in &accepted {
        journal.append(&declaration(n), now()).await.unwrap();
    }
    let task = tokio::spawn(replayer(&journal, &origin_url).run(std::future::pending()));
    until(Duration::from_secs(20), || applied(&origin) >= 50).await;
    task.abort();
    let _ = task.await;
    let task = tokio::spawn(replayer(&journal, &origin_url).run(std::future::pending()));
    let valid = accepted.iter().filter(|&&n| !is_invalid(n)).count();
    until(Duration::from_secs(30), || applied(&origin) >= valid).await;
    tokio::time::timeout(Duration::from_secs(10), async {
        while journal.backlog().await.unwrap_or(1) > 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap();
    task.abort();
    assert_exactly_once(&journal, &origin, &accepted).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_journal_without_redis_refuses_rather_than_pretends() {
    let mut redis = RedisServer::start();
    redis.kill();
    let journal = journal_on(&[redis.url()]).await;
    let started = Instant::now();
    assert!(matches!(
        journal.append(&declaration(1), now()).await,
        Err(JournalError::Unavailable(_))
    ));
    assert!(started.elapsed() < Duration::from_millis(300));
    // A bad idempotency key is refused before Redis is asked.
    let mut d = declaration(2);
    d.idempotency_key = String::new();
    assert!(matches!(
        journal.append(&d, now()).await,
        Err(JournalError::Invalid(_))
    ));
}
