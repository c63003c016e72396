//! One rate-limit check of each kind on one core: `cargo bench -p shouhu-proxy --bench
//! ratelimit`.
//!
//! - `client_ip/direct`: the peer is not a trusted proxy (the header is not read);
//!   `client_ip/forwarded`: behind two trusted proxies, `client, lb, cdn`.
//! - `check/ip`, `check/subject`: an allowed check, round robin over 100,000 known keys
//!   (warm tables bigger than the caches, as under a surge); `check/ip_one_key`: one key,
//!   always in cache; `check/ip_refused`: a refusal with its `Retry-After` wait;
//!   `check/global`: the direct limiter.
//! - `check/ip_new_key`: a first sight (insertion), then forgotten by housekeeping outside
//!   the timing.
#![expect(clippy::unwrap_used, reason = "benchmark setup")]

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::num::NonZeroU32;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use shouhu_code::SubjectId;
use shouhu_config::proxy::{Rate, RateLimit};
use shouhu_proxy::ratelimit::RateLimits;

const KEYS: u32 = 100_000;

fn subject(n: u32) -> SubjectId {
    let mut b = [0x22u8; 16];
    b[..4].copy_from_slice(&n.to_be_bytes());
    SubjectId(b)
}

fn address(n: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | n))
}

/// Limits no benchmark reaches, so every check is allowed.
fn open() -> RateLimit {
    RateLimit {
        per_ip: Rate::per_second(Rate::MAX_PER_SECOND),
        per_ip_burst: NonZeroU32::MAX,
        per_subject: Rate::per_second(Rate::MAX_PER_SECOND),
        per_subject_burst: NonZeroU32::MAX,
        global: Rate::per_second(Rate::MAX_PER_SECOND),
        global_burst: Some(NonZeroU32::MAX),
        trusted_proxies: vec![
            "10.0.0.0/8".parse().unwrap(),
            "192.0.2.0/24".parse().unwrap(),
        ],
        ..RateLimit::default()
    }
}

fn client_ip(c: &mut Criterion) {
    let limits = RateLimits::new(&open());
    let peer: IpAddr = "192.0.2.10".parse().unwrap();
    let xff = b"203.0.113.7, 10.1.2.3".as_slice();
    let mut g = c.benchmark_group("client_ip");
    g.throughput(Throughput::Elements(1));
    g.bench_function("direct", |b| {
        let peer: IpAddr = "198.51.100.1".parse().unwrap();
        b.iter(|| limits.client_ip(black_box(peer), black_box(Some(xff))));
    });
    g.bench_function("forwarded", |b| {
        b.iter(|| limits.client_ip(black_box(peer), black_box(Some(xff))));
    });
    g.finish();
}

fn check(c: &mut Criterion) {
    let limits = RateLimits::new(&open());
    for n in 0..KEYS {
        limits.check_ip(address(n)).unwrap();
        limits.check_subject(&subject(n)).unwrap();
    }
    let mut g = c.benchmark_group("check");
    g.throughput(Throughput::Elements(1));
    g.bench_function("ip", |b| {
        let mut n = 0;
        b.iter(|| {
            n = (n + 1) % KEYS;
            limits.check_ip(black_box(address(n))).unwrap();
        });
    });
    g.bench_function("ip_one_key", |b| {
        b.iter(|| limits.check_ip(black_box(address(7))).unwrap());
    });
    g.bench_function("subject", |b| {
        let mut n = 0;
        b.iter(|| {
            n = (n + 1) % KEYS;
            limits.check_subject(black_box(&subject(n))).unwrap();
        });
    });
    g.bench_function("global", |b| {
        b.iter(|| limits.check_global().unwrap());
    });
    g.bench_function("ip_new_key", |b| {
        let fresh = RateLimits::new(&RateLimit {
            per_ip: Rate::per_second(1_000_000),
            ..open()
        });
        let mut n = 0;
        b.iter_batched(
            || {
                n += 1;
                if n % 100_000 == 0 {
                    fresh.housekeeping();
                }
                IpAddr::V4(Ipv4Addr::from(0x6400_0000 | n))
            },
            |ip| fresh.check_ip(ip).unwrap(),
            BatchSize::SmallInput,
        );
    });
    g.finish();

    let tight = RateLimits::new(&RateLimit {
        per_ip: Rate::per_minute(1),
        per_ip_burst: NonZeroU32::MIN,
        ..RateLimit::default()
    });
    let ip = address(1);
    tight.check_ip(ip).unwrap();
    c.benchmark_group("check")
        .throughput(Throughput::Elements(1))
        .bench_function("ip_refused", |b| {
            b.iter(|| tight.check_ip(black_box(ip)).unwrap_err());
        });
}

criterion_group!(benches, client_ip, check);
criterion_main!(benches);
