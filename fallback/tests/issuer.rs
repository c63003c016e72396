//! The fallback issuer end to end against real `redis-server` processes (single and Cluster):
//! what a citizen's code and a venue scanner would show.
#![expect(clippy::unwrap_used, reason = "tests")]

use std::time::{Duration, Instant};

use shouhu_code::time::now;
use shouhu_code::{Colour, KeyPair, KeyRole, Region, Source, SubjectId, VerifyPolicy, verify};
use shouhu_config::RedisUrls;
use shouhu_fallback::policy::Basis;
use shouhu_fallback::{Issuer, Keyring, Known, Policy, Record, SnapshotStore, StoreOptions};
use shouhu_testkit::{RedisCluster, RedisServer};

const MAX_AGE: Duration = Duration::from_secs(900);

fn region() -> Region {
    "370000".parse().unwrap()
}

fn subject(n: u8) -> SubjectId {
    SubjectId([n; 16])
}

fn record(colour: Colour, as_of: u64) -> Record {
    Record {
        colour,
        as_of,
        ruleset_version: 4,
        masked_name: "李*".to_owned(),
        id_last4: "0012".to_owned(),
    }
}

fn fallback_key(not_before: u64) -> KeyPair {
    KeyPair::generate(KeyRole::Fallback, region(), not_before, not_before + 86_400).unwrap()
}

async fn issuer_on(urls: &[String]) -> Issuer {
    let urls: RedisUrls = urls.join(",").parse().unwrap();
    let store = SnapshotStore::connect(&urls, None, StoreOptions::default())
        .await
        .unwrap();
    let keys = Keyring::from_parts(vec![fallback_key(now() - 60)], vec![]).unwrap();
    Issuer::new(
        store,
        keys,
        region(),
        Policy {
            code_ttl: Duration::from_secs(300),
            max_snapshot_age: MAX_AGE,
        },
    )
}

/// The colour a scanner sees: the code must verify against the issuer's trust list.
fn scanned(issuer: &Issuer, text: &str) -> shouhu_code::Claims {
    verify(text, &issuer.trust_list(), now(), &VerifyPolicy::default())
        .unwrap()
        .claims
}

async fn policy_holds(issuer: &Issuer) {
    let store = issuer.store();
    let t = now();
    store.set_watermark(t - 30).await.unwrap();
    store
        .put(&subject(1), &record(Colour::Green, t - 3600))
        .await
        .unwrap();
    store
        .put(&subject(2), &record(Colour::Red, t - 3600))
        .await
        .unwrap();
    store
        .put(&subject(3), &record(Colour::Yellow, t - 3600))
        .await
        .unwrap();

    // Exactly the snapshot colour, source fallback, display fields, and as-of the watermark
    // (the snapshot is complete up to it, so the hour-old record still held then).
    for (n, colour) in [(1, Colour::Green), (2, Colour::Red), (3, Colour::Yellow)] {
        let issued = issuer.issue(&subject(n), None, now()).await.unwrap();
        let claims = scanned(issuer, &issued.text);
        assert_eq!(claims.colour, colour);
        assert_eq!(claims.source, Source::Fallback);
        assert_eq!(claims.subject, subject(n));
        assert_eq!(claims.as_of, t - 30);
        assert_eq!(
            (claims.masked_name.as_str(), claims.id_last4.as_str()),
            ("李*", "0012")
        );
        assert_eq!(claims.ruleset_version, 4);
        assert!(claims.expires_at <= now() + 300);
    }

    // Missing subject: unknown, still a valid signed code.
    let issued = issuer.issue(&subject(9), None, now()).await.unwrap();
    assert_eq!(scanned(issuer, &issued.text).colour, Colour::Unknown);
    assert_eq!(issued.basis, Basis::Missing);

    // A newer colour the caller knows wins; an older one does not; a tie goes to the stricter.
    let red_later = Known {
        colour: Colour::Red,
        as_of: t - 60,
    };
    let issued = issuer
        .issue(&subject(1), Some(red_later), now())
        .await
        .unwrap();
    assert_eq!(scanned(issuer, &issued.text).colour, Colour::Red);
    let green_tie = Known {
        colour: Colour::Green,
        as_of: t - 3600,
    };
    let issued = issuer
        .issue(&subject(2), Some(green_tie), now())
        .await
        .unwrap();
    assert_eq!(scanned(issuer, &issued.text).colour, Colour::Red);
    let red_older = Known {
        colour: Colour::Red,
        as_of: t - 7200,
    };
    let issued = issuer
        .issue(&subject(1), Some(red_older), now())
        .await
        .unwrap();
    assert_eq!(scanned(issuer, &issued.text).colour, Colour::Green);

    // Stale watermark: green becomes unknown, red and yellow still show. The watermark
    // never moves back, so test staleness with a fresh prefix-free view: time moves on.
    let later = now() + MAX_AGE.as_secs();
    let lookup = store.get(&subject(1)).await.unwrap();
    let stale = issuer
        .issue_from(&subject(1), Ok(&lookup), None, later)
        .unwrap();
    assert_eq!(stale.claims.colour, Colour::Unknown);
    assert_eq!(stale.basis, Basis::Stale);
    let lookup = store.get(&subject(2)).await.unwrap();
    let red = issuer
        .issue_from(&subject(2), Ok(&lookup), None, later)
        .unwrap();
    assert_eq!(red.claims.colour, Colour::Red);
}

#[tokio::test(flavor = "multi_thread")]
async fn codes_follow_the_policy_on_a_single_redis() {
    let redis = RedisServer::start();
    policy_holds(&issuer_on(&[redis.url()]).await).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn codes_follow_the_policy_on_a_cluster() {
    let cluster = RedisCluster::start();
    policy_holds(&issuer_on(&cluster.urls()).await).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_snapshot_never_declared_complete_issues_no_green() {
    let redis = RedisServer::start();
    let issuer = issuer_on(&[redis.url()]).await;
    let t = now();
    issuer
        .store()
        .put(&subject(1), &record(Colour::Green, t - 10))
        .await
        .unwrap();
    let issued = issuer.issue(&subject(1), None, now()).await.unwrap();
    assert_eq!(scanned(&issuer, &issued.text).colour, Colour::Unknown);
    // An old watermark is as bad as none.
    issuer
        .store()
        .set_watermark(t - MAX_AGE.as_secs() - 1)
        .await
        .unwrap();
    let issued = issuer.issue(&subject(1), None, now()).await.unwrap();
    assert_eq!(scanned(&issuer, &issued.text).colour, Colour::Unknown);
    assert_eq!(issued.basis, Basis::Stale);
    // Once the feed says it is complete, green shows.
    issuer.store().set_watermark(now()).await.unwrap();
    let issued = issuer.issue(&subject(1), None, now()).await.unwrap();
    assert_eq!(scanned(&issuer, &issued.text).colour, Colour::Green);
}

#[tokio::test(flavor = "multi_thread")]
async fn rotated_keys_sign_new_codes_and_old_codes_still_verify() {
    let redis = RedisServer::start();
    let issuer = issuer_on(&[redis.url()]).await;
    let t = now();
    issuer.store().set_watermark(t).await.unwrap();
    issuer
        .store()
        .put(&subject(1), &record(Colour::Green, t - 10))
        .await
        .unwrap();

    // The key folder as an operator keeps it: the first key...
    let dir = tempfile::tempdir().unwrap();
    let old = fallback_key(t - 600);
    old.write_to_dir(dir.path()).unwrap();
    issuer.set_keys(Keyring::load(dir.path(), &region()).unwrap());
    let old_code = issuer.issue(&subject(1), None, now()).await.unwrap();

    // ...then a new key beside it; the old one stays for its codes' lifetime.
    let new = fallback_key(t - 5);
    new.write_to_dir(dir.path()).unwrap();
    issuer.set_keys(Keyring::load(dir.path(), &region()).unwrap());
    let new_code = issuer.issue(&subject(1), None, now()).await.unwrap();

    let list = issuer.trust_list();
    assert_eq!(list.keys().len(), 2, "both keys are published");
    let verified_new = verify(&new_code.text, &list, now(), &VerifyPolicy::default()).unwrap();
    assert_eq!(
        verified_new.key.kid,
        new.kid(),
        "the newest active key signs"
    );
    let verified_old = verify(&old_code.text, &list, now(), &VerifyPolicy::default()).unwrap();
    assert_eq!(
        verified_old.key.kid,
        old.kid(),
        "codes of the old key still verify"
    );
    assert_eq!(verified_old.claims.colour, Colour::Green);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dead_redis_gives_fast_unknown_codes_and_recovery_needs_no_restart() {
    let mut redis = RedisServer::start();
    let issuer = issuer_on(&[redis.url()]).await;
    let t = now();
    issuer.store().set_watermark(t).await.unwrap();
    issuer
        .store()
        .put(&subject(1), &record(Colour::Red, t - 10))
        .await
        .unwrap();

    redis.kill();
    for _ in 0..20 {
        let started = Instant::now();
        let issued = issuer.issue(&subject(1), None, now()).await.unwrap();
        assert!(
            started.elapsed() < Duration::from_millis(200),
            "{:?}",
            started.elapsed()
        );
        assert!(!issued.snapshot_read);
        assert_eq!(scanned(&issuer, &issued.text).colour, Colour::Unknown);
    }
    // A colour the caller knows still shows while Redis is down.
    let known = Known {
        colour: Colour::Red,
        as_of: t - 10,
    };
    let issued = issuer.issue(&subject(1), Some(known), now()).await.unwrap();
    assert_eq!(scanned(&issuer, &issued.text).colour, Colour::Red);

    redis.restart();
    let colour = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let issued = issuer.issue(&subject(1), None, now()).await.unwrap();
            if issued.snapshot_read {
                return issued.claims.colour;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap();
    assert_eq!(colour, Colour::Red);
}
