//! The publisher against a private `redis-server`.
#![expect(clippy::unwrap_used, reason = "tests")]

use std::time::{Duration, Instant};

use shouhu_code::Colour;
use shouhu_config::RedisUrls;
use shouhu_fallback::StoreOptions;
use shouhu_testkit::RedisServer;

use super::*;

fn record(colour: Colour, as_of: UnixTime) -> Record {
    Record {
        colour,
        as_of,
        ruleset_version: 1,
        masked_name: "张*".to_owned(),
        id_last4: "002X".to_owned(),
    }
}

async fn poll<T>(timeout: Duration, mut f: impl AsyncFnMut() -> Option<T>) -> Option<T> {
    let started = Instant::now();
    while started.elapsed() < timeout {
        if let Some(v) = f().await {
            return Some(v);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishes_the_newest_record_and_holds_the_watermark_behind_work_in_flight() {
    let redis = RedisServer::start();
    let urls: RedisUrls = redis.url().parse().unwrap();
    let snapshot = SnapshotStore::connect(&urls, None, StoreOptions::default())
        .await
        .unwrap();
    let (_stop, stop_rx) = tokio::sync::watch::channel(false);
    let publisher = Publisher::start(
        snapshot.clone(),
        Store::in_memory().unwrap(),
        Duration::from_millis(50),
        Duration::from_secs(3600),
        stop_rx,
    );
    let subject = SubjectId([3; 16]);
    let t0 = now();
    let guard = publisher.begin();
    publisher.publish(subject, record(Colour::Yellow, t0));
    publisher.publish(subject, record(Colour::Red, t0));
    let red = poll(Duration::from_secs(5), async || {
        let r = snapshot.get(&subject).await.ok()?.record?;
        (r.colour == Colour::Red).then_some(r)
    })
    .await;
    assert!(
        red.is_some(),
        "the newer of two changes in one second ends up in Redis"
    );

    // While a colour computed since t0 is in flight, the watermark stays before t0.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let wm = snapshot.watermark().await.unwrap();
    assert!(wm.is_none_or(|w| w < t0), "{wm:?} vs {t0}");
    drop(guard);
    let wm = poll(Duration::from_secs(5), async || {
        snapshot
            .watermark()
            .await
            .ok()
            .flatten()
            .filter(|w| *w >= t0)
    })
    .await;
    assert!(wm.is_some(), "the watermark advances once the work is done");
    assert!(publisher.status().published >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relaxation_in_the_same_second_still_reaches_the_snapshot() {
    let redis = RedisServer::start();
    let urls: RedisUrls = redis.url().parse().unwrap();
    let snapshot = SnapshotStore::connect(&urls, None, StoreOptions::default())
        .await
        .unwrap();
    let (_stop, stop_rx) = tokio::sync::watch::channel(false);
    let publisher = Publisher::start(
        snapshot.clone(),
        Store::in_memory().unwrap(),
        Duration::from_secs(1),
        Duration::from_secs(3600),
        stop_rx,
    );
    let subject = SubjectId([4; 16]);
    let t0 = now();
    publisher.publish(subject, record(Colour::Red, t0));
    poll(Duration::from_secs(5), async || {
        let r = snapshot.get(&subject).await.ok()?.record?;
        (r.colour == Colour::Red).then_some(())
    })
    .await
    .unwrap();
    // Green computed in the same second as the red: the snapshot would keep the stricter
    // red for an equal as-of, so it goes out as of the next second.
    publisher.publish(subject, record(Colour::Green, t0));
    let green = poll(Duration::from_secs(5), async || {
        let r = snapshot.get(&subject).await.ok()?.record?;
        (r.colour == Colour::Green).then_some(r)
    })
    .await;
    assert_eq!(green.map(|r| r.as_of), Some(t0 + 1));
}
