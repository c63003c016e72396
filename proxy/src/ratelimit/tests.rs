//! The limiters on governor's fake clock: every wait is exact and nothing sleeps.
#![expect(clippy::unwrap_used, reason = "tests")]

use std::net::IpAddr;
use std::num::{NonZeroU32, NonZeroUsize};
use std::time::Duration;

use governor::clock::FakeRelativeClock;
use shouhu_code::SubjectId;
use shouhu_config::proxy::{Rate, RateLimit};

use super::{Limited, RateLimits};

fn nz(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap()
}

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Only the limit under test is on.
fn none() -> RateLimit {
    RateLimit {
        per_ip: Rate::OFF,
        per_subject: Rate::OFF,
        global: Rate::OFF,
        ..RateLimit::default()
    }
}

/// 10 a second per address, 3 at once.
fn per_ip() -> RateLimit {
    RateLimit {
        per_ip: Rate::per_second(10),
        per_ip_burst: nz(3),
        ..none()
    }
}

fn on_fake_clock(cfg: &RateLimit) -> (RateLimits<FakeRelativeClock>, FakeRelativeClock) {
    let clock = FakeRelativeClock::default();
    (RateLimits::with_clock(cfg, clock.clone()), clock)
}

/// How many checks pass in a row, and the refusal that ends the run (at most 1000).
fn run(mut check: impl FnMut() -> Result<(), Limited>) -> (usize, Option<Limited>) {
    for passed in 0..1000 {
        if let Err(limited) = check() {
            return (passed, Some(limited));
        }
    }
    (1000, None)
}

fn refused_after(ms_: u64) -> Option<Limited> {
    Some(Limited {
        retry_after: ms(ms_),
    })
}

#[test]
fn limits_each_address_to_its_burst_then_its_rate() {
    let (limits, clock) = on_fake_clock(&per_ip());
    let a = ip("203.0.113.1");
    assert_eq!(run(|| limits.check_ip(a)), (3, refused_after(100)));
    assert_eq!(run(|| limits.check_ip(ip("203.0.113.2"))).0, 3);

    clock.advance(ms(40));
    assert_eq!(
        limits.check_ip(a),
        Err(Limited {
            retry_after: ms(60)
        })
    );
    clock.advance(ms(60));
    assert_eq!(run(|| limits.check_ip(a)), (1, refused_after(100)));
    // A full second earns the rate back, never more than the burst.
    clock.advance(Duration::from_secs(10));
    assert_eq!(run(|| limits.check_ip(a)).0, 3);
}

#[test]
fn an_ipv6_64_is_one_client() {
    let (limits, _clock) = on_fake_clock(&per_ip());
    assert_eq!(run(|| limits.check_ip(ip("2001:db8:1:2::1"))).0, 3);
    assert_eq!(
        limits.check_ip(ip("2001:db8:1:2:ffff:ffff:ffff:ffff")),
        Err(Limited {
            retry_after: ms(100)
        }),
        "same /64, same bucket"
    );
    assert_eq!(run(|| limits.check_ip(ip("2001:db8:1:3::1"))).0, 3);
    assert_eq!(limits.tracked_keys(), (2, 0));
    // IPv4 addresses are each their own client.
    assert_eq!(run(|| limits.check_ip(ip("192.0.2.1"))).0, 3);
    assert_eq!(run(|| limits.check_ip(ip("::ffff:192.0.2.2"))).0, 3);
    assert!(limits.check_ip(ip("192.0.2.2")).is_err());
}

#[test]
fn forwarded_addresses_count_only_behind_trusted_proxies() {
    let cfg = RateLimit {
        trusted_proxies: vec!["10.0.0.0/8".parse().unwrap()],
        ..per_ip()
    };
    let (limits, _clock) = on_fake_clock(&cfg);
    let xff = Some(b"6.6.6.6, 203.0.113.7, 10.0.0.2".as_slice());
    assert_eq!(limits.client_ip(ip("10.0.0.1"), xff), ip("203.0.113.7"));
    assert_eq!(
        limits.client_ip(ip("198.51.100.1"), xff),
        ip("198.51.100.1")
    );
    assert_eq!(
        limits.client_ip(ip("10.0.0.1"), Some(b"203.0.113.7, oops".as_slice())),
        ip("10.0.0.1")
    );

    // Two people behind one balancer do not share a bucket.
    let behind = |client: &str| limits.client_ip(ip("10.0.0.1"), Some(client.as_bytes()));
    assert_eq!(run(|| limits.check_ip(behind("203.0.113.7"))).0, 3);
    assert_eq!(run(|| limits.check_ip(behind("203.0.113.8"))).0, 3);
}

#[test]
fn limits_each_subject_and_says_when_to_come_back() {
    // The defaults: 1 a second, 10 at once.
    let cfg = RateLimit {
        per_subject: RateLimit::default().per_subject,
        per_subject_burst: RateLimit::default().per_subject_burst,
        ..none()
    };
    let (limits, clock) = on_fake_clock(&cfg);
    let storm = SubjectId([7; 16]);
    assert_eq!(
        run(|| limits.check_subject(&storm)),
        (10, refused_after(1000))
    );
    assert_eq!(run(|| limits.check_subject(&SubjectId([8; 16]))).0, 10);

    clock.advance(ms(250));
    assert_eq!(
        limits.check_subject(&storm),
        Err(Limited {
            retry_after: ms(750)
        })
    );
    clock.advance(ms(750));
    assert_eq!(
        run(|| limits.check_subject(&storm)),
        (1, refused_after(1000))
    );
    assert_eq!(limits.tracked_keys(), (0, 2));
}

#[test]
fn the_global_limit_counts_everyone_and_is_off_by_default() {
    let (limits, _clock) = on_fake_clock(&RateLimit::default());
    assert_eq!(run(|| limits.check_global()), (1000, None));

    let cfg = RateLimit {
        global: Rate::per_second(2),
        ..none()
    };
    let (limits, clock) = on_fake_clock(&cfg);
    assert_eq!(run(|| limits.check_global()), (2, refused_after(500)));
    clock.advance(ms(500));
    assert_eq!(run(|| limits.check_global()), (1, refused_after(500)));
}

#[test]
fn a_limit_that_is_off_passes_everything_and_holds_nothing() {
    let (limits, _clock) = on_fake_clock(&none());
    assert_eq!(run(|| limits.check_ip(ip("203.0.113.1"))), (1000, None));
    assert_eq!(
        run(|| limits.check_subject(&SubjectId([1; 16]))),
        (1000, None)
    );
    assert_eq!(limits.tracked_keys(), (0, 0));
}

#[test]
fn housekeeping_forgets_idle_keys_only() {
    let (limits, clock) = on_fake_clock(&per_ip());
    let (quiet, busy) = (ip("203.0.113.1"), ip("203.0.113.2"));
    limits.check_ip(quiet).unwrap();
    assert_eq!(run(|| limits.check_ip(busy)).0, 3);
    limits.housekeeping();
    assert_eq!(limits.tracked_keys(), (2, 0));

    // `quiet` refilled 100 ms in; `busy` needs 300 ms.
    clock.advance(ms(250));
    limits.housekeeping();
    assert_eq!(limits.tracked_keys(), (1, 0));
    assert_eq!(
        run(|| limits.check_ip(busy)),
        (2, refused_after(50)),
        "a kept key keeps its state: two of three refilled"
    );
    clock.advance(ms(1000));
    limits.housekeeping();
    assert_eq!(limits.tracked_keys(), (0, 0));
    // A forgotten key starts over with a full bucket, as it would have by now anyway.
    assert_eq!(run(|| limits.check_ip(busy)).0, 3);
}

#[test]
fn a_full_limiter_lets_new_keys_pass_untracked_until_housekeeping() {
    let cfg = RateLimit {
        max_keys: NonZeroUsize::new(2).unwrap(),
        ..per_ip()
    };
    let (limits, clock) = on_fake_clock(&cfg);
    let (a, b, c) = (ip("203.0.113.1"), ip("203.0.113.2"), ip("203.0.113.3"));
    limits.check_ip(a).unwrap();
    limits.check_ip(b).unwrap();
    for _ in 0..5 {
        assert_eq!(limits.check_ip(c), Ok(()));
    }
    assert_eq!(limits.tracked_keys(), (2, 0));
    assert_eq!(limits.untracked(), (5, 0));
    // Known keys are still limited.
    assert_eq!(run(|| limits.check_ip(a)).0, 2);

    clock.advance(Duration::from_secs(1));
    limits.housekeeping();
    assert_eq!(run(|| limits.check_ip(c)).0, 3);
    assert_eq!(limits.tracked_keys(), (1, 0));
    assert_eq!(limits.untracked(), (5, 0));
}

#[test]
fn the_defaults_run_on_the_real_clock() {
    let limits = RateLimits::new(&RateLimit::default());
    let subject = SubjectId([3; 16]);
    let (passed, refusal) = run(|| limits.check_subject(&subject));
    assert_eq!(passed, 10);
    let wait = refusal.unwrap().retry_after;
    assert!(
        wait > Duration::ZERO && wait <= Duration::from_secs(1),
        "{wait:?}"
    );
    assert_eq!(run(|| limits.check_ip(ip("203.0.113.1"))).0, 1000);
    assert_eq!(limits.check_global(), Ok(()));
}
