//! Issuing from the snapshot end to end on one core, against a private local `redis-server`:
//! `cargo bench -p shouhu-fallback --bench issue`.
//!
//! Each iteration issues 1000 codes for random snapshot subjects from a single-threaded Tokio
//! runtime (one core for the issuer; Redis runs in its own process), 64 requests in flight, as
//! a server would see them. Three depths:
//!
//! - `lookup_sign`: Redis GET (record + watermark, one round trip) + policy + Ed25519 signing;
//! - `lookup_sign_json`: the same plus the JSON body of `GET /api/code`;
//! - `lookup_sign_page`: the same plus the HTML page of `GET /code` (QR as SVG), 100 codes.
#![expect(clippy::unwrap_used, reason = "benchmark setup")]

use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use shouhu_code::time::now;
use shouhu_code::{Colour, KeyPair, KeyRole, SubjectId, render_page};
use shouhu_config::RedisUrls;
use shouhu_fallback::{Issuer, Keyring, Policy, Record, SnapshotStore, StoreOptions};
use shouhu_testkit::RedisServer;

const SUBJECTS: u32 = 10_000;
const IN_FLIGHT: usize = 64;

fn subject(n: u32) -> SubjectId {
    let mut b = [0x11u8; 16];
    b[..4].copy_from_slice(&n.to_be_bytes());
    SubjectId(b)
}

async fn setup(url: &str) -> Issuer {
    let urls: RedisUrls = url.parse().unwrap();
    let store = SnapshotStore::connect(&urls, None, StoreOptions::default())
        .await
        .unwrap();
    let t = now();
    let items: Vec<_> = (0..SUBJECTS)
        .map(|n| {
            let colour = [Colour::Green, Colour::Yellow, Colour::Red][n as usize % 3];
            let record = Record {
                colour,
                as_of: t - 600,
                ruleset_version: 1,
                masked_name: "张*".to_owned(),
                id_last4: "123X".to_owned(),
            };
            (subject(n), record)
        })
        .collect();
    for chunk in items.chunks(1000) {
        store.put_many(chunk).await.unwrap();
    }
    store.set_watermark(t).await.unwrap();
    let key = KeyPair::generate(
        KeyRole::Fallback,
        "370000".parse().unwrap(),
        t - 60,
        t + 86_400,
    )
    .unwrap();
    Issuer::new(
        store,
        Keyring::from_parts(vec![key], vec![]).unwrap(),
        "370000".parse().unwrap(),
        Policy {
            code_ttl: Duration::from_secs(300),
            max_snapshot_age: Duration::from_secs(900),
        },
    )
}

#[derive(Clone, Copy)]
enum Depth {
    Sign,
    Json,
    Page,
}

async fn issue_many(issuer: &Issuer, count: u32, start: u32, depth: Depth) -> usize {
    let mut set = tokio::task::JoinSet::new();
    let mut bytes = 0;
    for i in 0..count {
        if set.len() >= IN_FLIGHT
            && let Some(r) = set.join_next().await
        {
            bytes += r.unwrap();
        }
        let issuer = issuer.clone();
        let s = subject((start + i) % SUBJECTS);
        set.spawn(async move {
            let issued = issuer.issue(&s, None, now()).await.unwrap();
            assert!(issued.snapshot_read);
            match depth {
                Depth::Sign => issued.text.len(),
                Depth::Json => serde_json::to_vec(&issued.view()).unwrap().len(),
                Depth::Page => render_page(&issued.view(), issued.claims.issued_at).len(),
            }
        });
    }
    while let Some(r) = set.join_next().await {
        bytes += r.unwrap();
    }
    bytes
}

fn bench(c: &mut Criterion) {
    let redis = RedisServer::start();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let issuer = runtime.block_on(setup(&redis.url()));
    let mut group = c.benchmark_group("issue_from_snapshot");
    group.sample_size(20);
    let mut start = 0u32;
    for (name, depth, count) in [
        ("lookup_sign", Depth::Sign, 1000),
        ("lookup_sign_json", Depth::Json, 1000),
        ("lookup_sign_page", Depth::Page, 100),
    ] {
        group.throughput(Throughput::Elements(u64::from(count)));
        group.bench_function(name, |b| {
            b.iter(|| {
                start = start.wrapping_add(7919);
                runtime.block_on(issue_many(&issuer, count, start, depth))
            });
        });
    }
    group.finish();
    drop(redis);
}

criterion_group!(benches, bench);
criterion_main!(benches);
