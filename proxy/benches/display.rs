//! The hot paths of a surge on one core: `cargo bench -p shouhu-proxy --bench display`.
//!
//! - `identity/remembered`: a session token already verified once (SHA-256 + cache lookup);
//!   `identity/first_sight`: the Ed25519 verification it saves.
//! - `display/cache_hit_json`, `display/cache_hit_html`: [`Display::serve`] answering a fresh
//!   cached code, 1000 subjects round robin, from a current-thread Tokio runtime. The origin
//!   is never asked (its URL is a closed port).
#![expect(clippy::unwrap_used, reason = "benchmark setup")]

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use shouhu_code::time::now;
use shouhu_code::{Claims, CodeId, CodeView, Colour, KeyPair, KeyRole, Source, SubjectId};
use shouhu_fallback::session::{SessionSigner, SessionVerifier};
use shouhu_proxy::breaker::{Breaker, BreakerConfig};
use shouhu_proxy::cache::{CacheLimits, Entry};
use shouhu_proxy::display::{Display, DisplayParts, DisplayRequest, Format};
use shouhu_proxy::identity::Identity;
use shouhu_proxy::origin_client::OriginClient;

const SUBJECTS: u32 = 1000;

fn subject(n: u32) -> SubjectId {
    let mut b = [0x22u8; 16];
    b[..4].copy_from_slice(&n.to_be_bytes());
    SubjectId(b)
}

fn identity(c: &mut Criterion) {
    let signer = SessionSigner::from_seed([5; 32]);
    let verifier = SessionVerifier::from_text(&signer.key_json()).unwrap();
    let identity = Identity::new(verifier.clone(), 10_000);
    let t = now();
    let token = signer.token(&subject(1), t, t + 3600).unwrap();
    identity.verify(&token).unwrap();
    let mut g = c.benchmark_group("identity");
    g.throughput(Throughput::Elements(1));
    g.bench_function("remembered", |b| {
        b.iter(|| identity.verify(black_box(&token)).unwrap());
    });
    g.bench_function("first_sight", |b| {
        b.iter(|| verifier.verify(black_box(&token)).unwrap());
    });
    g.finish();
}

fn display(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _guard = rt.enter();
    let display = Display::new(DisplayParts {
        cache: CacheLimits {
            ttl: Duration::from_secs(3600),
            max_stale: Duration::from_secs(3600),
            max_entries: 100_000,
            max_bytes: 1 << 30,
        },
        breaker: Arc::new(Breaker::new(BreakerConfig::default())),
        admission: shouhu_proxy::admission::Admission::new(
            shouhu_proxy::admission::AdmissionConfig {
                adaptive: false,
                ..shouhu_proxy::admission::AdmissionConfig::from_config(&Default::default(), 0)
            },
        ),
        origin: OriginClient::new(
            "http://127.0.0.1:9",
            Duration::from_millis(10),
            Duration::from_secs(1),
            1,
        )
        .unwrap(),
        issuer: None,
        deadline: Duration::from_secs(1),
        refresh_timeout: Duration::from_secs(1),
    });
    let region: shouhu_code::Region = "370000".parse().unwrap();
    let key = KeyPair::from_seed([6; 32], KeyRole::Origin, region.clone(), 0, u64::MAX / 2);
    let t = now();
    for n in 0..SUBJECTS {
        let claims = Claims {
            issuer: region.clone(),
            issued_at: t,
            expires_at: t + 3600,
            code_id: CodeId([7; 12]),
            colour: Colour::Green,
            subject: subject(n),
            masked_name: "张*".to_owned(),
            id_last4: "123X".to_owned(),
            source: Source::Origin,
            as_of: t,
            ruleset_version: 1,
        };
        let view = CodeView::new(&claims, &key.sign(&claims).unwrap());
        let entry = Arc::new(Entry::new(view, tokio::time::Instant::now()));
        assert!(
            display
                .cache()
                .insert(subject(n), entry, display.cache().epoch())
        );
    }
    let mut g = c.benchmark_group("display");
    g.throughput(Throughput::Elements(u64::from(SUBJECTS)));
    for (name, format) in [
        ("cache_hit_json", Format::Json),
        ("cache_hit_html", Format::Html),
    ] {
        g.bench_function(name, |b| {
            b.iter(|| {
                rt.block_on(async {
                    for n in 0..SUBJECTS {
                        let r = display
                            .serve(DisplayRequest {
                                subject: subject(n),
                                token: "unused on a hit",
                                format,
                                deadline: None,
                                may_fetch: true,
                            })
                            .await;
                        assert_eq!(r.status, 200);
                        black_box(r.body);
                    }
                });
            });
        });
    }
    g.finish();
}

criterion_group!(benches, identity, display);
criterion_main!(benches);
