//! The snapshot store against real `redis-server` processes: a single server and a
//! three-master Cluster.
#![expect(clippy::unwrap_used, reason = "tests")]

use std::time::{Duration, Instant};

use shouhu_code::{Colour, SubjectId};
use shouhu_config::RedisUrls;
use shouhu_fallback::snapshot::{FeedEvent, FeedFollower, FeedId, FeedRead};
use shouhu_fallback::{Record, SnapshotError, SnapshotStore, StoreOptions};
use shouhu_testkit::{RedisCluster, RedisServer};

fn subject(n: u32) -> SubjectId {
    let mut b = [0u8; 16];
    b[..4].copy_from_slice(&n.to_be_bytes());
    b[15] = 0x5a;
    SubjectId(b)
}

fn record(colour: Colour, as_of: u64) -> Record {
    Record {
        colour,
        as_of,
        ruleset_version: 3,
        masked_name: "张*".to_owned(),
        id_last4: "123X".to_owned(),
    }
}

async fn store(urls: &[String], options: StoreOptions) -> SnapshotStore {
    let urls: RedisUrls = urls.join(",").parse().unwrap();
    SnapshotStore::connect(&urls, None, options).await.unwrap()
}

async fn round_trip(store: &SnapshotStore) {
    let lookup = store.get(&subject(1)).await.unwrap();
    assert_eq!((lookup.record, lookup.watermark), (None, None));

    store
        .put(&subject(1), &record(Colour::Red, 1000))
        .await
        .unwrap();
    store.set_watermark(2000).await.unwrap();
    let lookup = store.get(&subject(1)).await.unwrap();
    assert_eq!(lookup.record, Some(record(Colour::Red, 1000)));
    assert_eq!(lookup.watermark, Some(2000));

    // An older write never replaces a newer one; on a tie the stricter colour stays.
    store
        .put(&subject(1), &record(Colour::Green, 999))
        .await
        .unwrap();
    store
        .put(&subject(1), &record(Colour::Green, 1000))
        .await
        .unwrap();
    assert_eq!(
        store.get(&subject(1)).await.unwrap().record,
        Some(record(Colour::Red, 1000))
    );
    store
        .put(&subject(1), &record(Colour::Green, 1001))
        .await
        .unwrap();
    assert_eq!(
        store.get(&subject(1)).await.unwrap().record,
        Some(record(Colour::Green, 1001))
    );

    // The watermark never moves backwards.
    store.set_watermark(1500).await.unwrap();
    assert_eq!(store.watermark().await.unwrap(), Some(2000));

    // Many records across every slot; re-writing them changes nothing.
    let items: Vec<_> = (100..600)
        .map(|n| (subject(n), record(Colour::Yellow, u64::from(n))))
        .collect();
    assert_eq!(store.put_many_counted(&items).await.unwrap(), 500);
    assert_eq!(store.put_many_counted(&items).await.unwrap(), 0);
    for (s, r) in items.iter().step_by(37) {
        assert_eq!(store.get(s).await.unwrap().record.as_ref(), Some(r));
    }
    let stats = store.stats().await.unwrap();
    assert_eq!((stats.records, stats.yellow, stats.green), (501, 500, 1));
    assert_eq!(stats.watermark, Some(2000));

    // Invalid display fields are refused before anything is written.
    let mut bad = record(Colour::Red, 5);
    bad.id_last4 = "12".to_owned();
    assert!(matches!(
        store.put(&subject(9), &bad).await,
        Err(SnapshotError::Invalid { .. })
    ));
}

#[tokio::test(flavor = "multi_thread")]
async fn records_and_watermark_round_trip_on_a_single_redis() {
    let redis = RedisServer::start();
    round_trip(&store(&[redis.url()], StoreOptions::default()).await).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn records_and_watermark_round_trip_on_a_cluster() {
    let cluster = RedisCluster::start();
    round_trip(&store(&cluster.urls(), StoreOptions::default()).await).await;
}

async fn feed_follows_and_reports_gaps(store: &SnapshotStore) {
    let mut follower = FeedFollower::new(store.clone(), 100);
    assert_eq!(follower.poll().await.unwrap(), FeedEvent::Reset);
    let start = store.feed_tail().await.unwrap();
    assert_eq!(start, FeedId::ZERO);
    store
        .put(&subject(1), &record(Colour::Green, 10))
        .await
        .unwrap();
    store
        .put(&subject(1), &record(Colour::Red, 20))
        .await
        .unwrap();
    // An older record changes nothing and adds no entry.
    store
        .put(&subject(1), &record(Colour::Green, 15))
        .await
        .unwrap();
    let FeedRead::Entries { entries, next } = store.read_feed(start, 100).await.unwrap() else {
        panic!("unexpected gap");
    };
    let seen: Vec<_> = entries
        .iter()
        .map(|e| (e.subject, e.colour, e.as_of))
        .collect();
    assert_eq!(
        seen,
        vec![
            (subject(1), Colour::Green, 10),
            (subject(1), Colour::Red, 20)
        ]
    );
    // Resuming from the last id gives only what came after.
    store
        .put(&subject(2), &record(Colour::Yellow, 30))
        .await
        .unwrap();
    let FeedRead::Entries { entries, next } = store.read_feed(next, 100).await.unwrap() else {
        panic!("unexpected gap");
    };
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].subject, subject(2));
    let FeedEvent::Changes(changes) = follower.poll().await.unwrap() else {
        panic!("unexpected reset");
    };
    assert_eq!(changes.len(), 3);
    // A re-sent identical record (a retry after a failed feed append) is announced again;
    // identical records in bulk are not.
    store
        .put(&subject(2), &record(Colour::Yellow, 30))
        .await
        .unwrap();
    store
        .put_many(&[(subject(2), record(Colour::Yellow, 30))])
        .await
        .unwrap();
    let FeedEvent::Changes(changes) = follower.poll().await.unwrap() else {
        panic!("unexpected reset");
    };
    assert_eq!(changes.len(), 1);

    // A follower that falls behind the cap is told it missed changes.
    let items: Vec<_> = (1000..1600)
        .map(|n| (subject(n), record(Colour::Red, u64::from(n))))
        .collect();
    store.put_many(&items).await.unwrap();
    let FeedRead::Gap { resume_from } = store.read_feed(next, 100).await.unwrap() else {
        panic!("a trimmed feed must report a gap");
    };
    assert!(resume_from > next);
    // The follower, 600 changes behind a feed capped at about 50, must drop its cache.
    assert_eq!(follower.poll().await.unwrap(), FeedEvent::Reset);
    // From the resume point it reads on normally.
    store
        .put(&subject(3), &record(Colour::Red, 40))
        .await
        .unwrap();
    let FeedRead::Entries { entries, .. } = store.read_feed(resume_from, 100).await.unwrap() else {
        panic!("unexpected gap");
    };
    assert_eq!(entries.len(), 1);
    // An id from a stream Redis has since lost (ids went backwards) is a gap too.
    let future = FeedId {
        ms: u64::MAX / 2,
        seq: 0,
    };
    assert!(matches!(
        store.read_feed(future, 10).await.unwrap(),
        FeedRead::Gap { .. }
    ));
}

fn small_feed() -> StoreOptions {
    StoreOptions {
        feed_max_len: 50,
        ..StoreOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn change_feed_on_a_single_redis() {
    let redis = RedisServer::start();
    feed_follows_and_reports_gaps(&store(&[redis.url()], small_feed()).await).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn change_feed_on_a_cluster() {
    let cluster = RedisCluster::start();
    feed_follows_and_reports_gaps(&store(&cluster.urls(), small_feed()).await).await;
}

/// Polls until the store answers again, with a deadline.
async fn until_answers(store: &SnapshotStore, within: Duration) -> Record {
    tokio::time::timeout(within, async {
        loop {
            if let Ok(l) = store.get(&subject(1)).await
                && let Some(r) = l.record
            {
                return r;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dead_redis_costs_milliseconds_and_recovery_needs_no_restart() {
    let mut redis = RedisServer::start();
    let store = store(&[redis.url()], StoreOptions::default()).await;
    store
        .put(&subject(1), &record(Colour::Red, 7))
        .await
        .unwrap();

    redis.kill();
    for _ in 0..50 {
        let t = Instant::now();
        let result = store.get(&subject(1)).await;
        assert!(
            matches!(result, Err(SnapshotError::Unavailable(_))),
            "{result:?}"
        );
        assert!(
            t.elapsed() < Duration::from_millis(200),
            "{:?}",
            t.elapsed()
        );
    }

    redis.restart();
    assert_eq!(
        until_answers(&store, Duration::from_secs(10)).await,
        record(Colour::Red, 7)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_store_made_while_redis_is_down_starts_and_recovers() {
    let mut redis = RedisServer::start();
    redis.kill();
    let t = Instant::now();
    let store = store(&[redis.url()], StoreOptions::default()).await;
    assert!(t.elapsed() < Duration::from_secs(1));
    assert!(matches!(
        store.get(&subject(1)).await,
        Err(SnapshotError::Unavailable(_))
    ));
    redis.restart();
    tokio::time::timeout(Duration::from_secs(10), async {
        while store
            .put(&subject(1), &record(Colour::Yellow, 1))
            .await
            .is_err()
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap();
    assert_eq!(
        until_answers(&store, Duration::from_secs(5)).await.colour,
        Colour::Yellow
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dead_cluster_node_costs_milliseconds_and_recovers() {
    let mut cluster = RedisCluster::start();
    let store = store(&cluster.urls(), StoreOptions::default()).await;
    let items: Vec<_> = (0..60)
        .map(|n| (subject(n), record(Colour::Red, 1)))
        .collect();
    store.put_many(&items).await.unwrap();
    store.set_watermark(1).await.unwrap();
    assert_eq!(store.get(&items[0].0).await.unwrap().watermark, Some(1));

    cluster.nodes[0].kill();
    let mut failures = 0;
    let mut on_live_nodes = Vec::new();
    for (s, r) in &items {
        let t = Instant::now();
        match store.get(s).await {
            Ok(_) => on_live_nodes.push((s, r)),
            Err(_) => failures += 1,
        }
        assert!(
            t.elapsed() < Duration::from_millis(300),
            "{:?}",
            t.elapsed()
        );
    }
    assert!(failures > 0, "some subjects live on the dead node");
    assert!(
        !on_live_nodes.is_empty(),
        "subjects on the live nodes still answer (all {failures} failed)"
    );

    cluster.nodes[0].restart();
    // Every lookup answers again, with no restart of the store.
    tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let mut answered = 0;
            for (s, _) in &items {
                if store.get(s).await.is_ok() {
                    answered += 1;
                }
            }
            if answered == items.len() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .unwrap();
    // Nothing was lost: the nodes that stayed up kept their keys, and the killed node came
    // back with every key it had acknowledged (testkit runs AOF with `appendfsync always`).
    let mut lost = Vec::new();
    for (n, (s, r)) in items.iter().enumerate() {
        let lookup = store.get(s).await.unwrap();
        if lookup.record.as_ref() != Some(r) {
            let node = if on_live_nodes.iter().any(|(l, _)| *l == s) {
                "surviving"
            } else {
                "restarted"
            };
            lost.push(format!(
                "subject {n} on the {node} node: {:?}",
                lookup.record
            ));
        }
        assert_eq!(lookup.watermark, Some(1));
    }
    assert!(lost.is_empty(), "records lost after the restart: {lost:#?}");
}
