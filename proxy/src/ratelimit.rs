//! Rate limits (`[rate_limit]`): per client address, per subject and, optionally, global;
//! GCRA token buckets from `governor`, with the keyed state bounded in memory.
//!
//! - **Per client address** ([`RateLimits::check_ip`]), generous because carrier-grade NAT
//!   puts thousands of people behind one IPv4 address. The address is the TCP peer, or
//!   behind `trusted_proxies` the right-most `X-Forwarded-For` address that is not a trusted
//!   proxy ([`RateLimits::client_ip`]). IPv6 clients are counted per /64: one subscriber.
//! - **Per subject** ([`RateLimits::check_subject`]): the verified session subject. The
//!   answer is only allowed or not; the caller serves a refused display its cached code, so
//!   a refresh storm never reaches the origin.
//! - **Global** ([`RateLimits::check_global`]), off by default.
//!
//! A refusal ([`Limited`]) carries how long until a request would be allowed, for
//! `Retry-After`. A check takes a shard read lock and one compare-and-swap: no allocation
//! unless the key is new (`benches/ratelimit.rs`).
//!
//! # Memory
//!
//! Each keyed limiter holds at most `max_keys` keys (`store.rs`); a key is 16 bytes plus 8
//! of state. [`RateLimits::housekeeping`] forgets every key whose bucket has refilled (idle for
//! at least burst / rate: ~3.3 s per address, 10 s per subject by default) and gives the
//! memory back, so in steady state a limiter holds the keys seen in the last refill time
//! plus one housekeeping interval. Call it every few seconds (10 s is plenty). When a
//! limiter is full, new keys pass it untracked until housekeeping frees room (counted by
//! [`RateLimits::untracked`]).

mod client;
mod store;

use std::hash::Hash;
use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{NotUntil, Quota, RateLimiter};
use shouhu_code::SubjectId;
use shouhu_config::proxy::{Cidr, Rate, RateLimit};

use self::store::BoundedStore;

type Keyed<K, C> = RateLimiter<K, BoundedStore<K>, C, NoOpMiddleware<<C as Clock>::Instant>>;
type Direct<C> = RateLimiter<NotKeyed, InMemoryState, C, NoOpMiddleware<<C as Clock>::Instant>>;

/// A keyed limiter and its count of checks passed untracked.
struct KeyedLimit<K: Hash + Eq + Clone, C: Clock> {
    limiter: Keyed<K, C>,
    untracked: Arc<AtomicU64>,
}

impl<K: Hash + Eq + Clone, C: Clock> KeyedLimit<K, C> {
    fn new(quota: Quota, max_keys: usize, clock: C) -> Self {
        let untracked = Arc::new(AtomicU64::new(0));
        let store = BoundedStore::new(max_keys, Arc::clone(&untracked));
        Self {
            limiter: RateLimiter::new(quota, store, clock),
            untracked,
        }
    }

    fn housekeeping(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }
}

/// A request refused by a rate limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limited {
    /// How long until the same check would allow a request (the proxy turns it into a
    /// `Retry-After` with [`crate::admission::jittered_secs`]).
    pub retry_after: Duration,
}

/// The proxy's rate limiters; share one in an `Arc`.
///
/// `C` is the clock: the default reads the CPU's time-stamp counter (`quanta`); tests pass
/// governor's `FakeRelativeClock` to [`RateLimits::with_clock`].
pub struct RateLimits<C: Clock = DefaultClock> {
    per_ip: Option<KeyedLimit<Ipv6Addr, C>>,
    per_subject: Option<KeyedLimit<SubjectId, C>>,
    global: Option<Direct<C>>,
    trusted_proxies: Box<[Cidr]>,
    clock: C,
}

impl<C: Clock> std::fmt::Debug for RateLimits<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimits")
            .field("per_ip", &self.per_ip.is_some())
            .field("per_subject", &self.per_subject.is_some())
            .field("global", &self.global.is_some())
            .field("trusted_proxies", &self.trusted_proxies.len())
            .finish_non_exhaustive()
    }
}

impl RateLimits {
    /// The limiters `cfg` describes, on the default clock.
    pub fn new(cfg: &RateLimit) -> Self {
        Self::with_clock(cfg, DefaultClock::default())
    }
}

impl<C: Clock + Clone> RateLimits<C> {
    /// The limiters `cfg` describes, on `clock`. A rate `"off"` means no limiter at all.
    pub fn with_clock(cfg: &RateLimit, clock: C) -> Self {
        let max_keys = cfg.max_keys.get();
        Self {
            per_ip: quota(cfg.per_ip, cfg.per_ip_burst)
                .map(|q| KeyedLimit::new(q, max_keys, clock.clone())),
            per_subject: quota(cfg.per_subject, cfg.per_subject_burst)
                .map(|q| KeyedLimit::new(q, max_keys, clock.clone())),
            global: quota(cfg.global, cfg.global_burst_or_default())
                .map(|q| RateLimiter::direct_with_clock(q, clock.clone())),
            trusted_proxies: cfg.trusted_proxies.clone().into_boxed_slice(),
            clock,
        }
    }

    /// The client address of a request from `peer` with these `X-Forwarded-For` header
    /// lines, in order (`headers.get_all("x-forwarded-for").iter().map(|v| v.as_bytes())`,
    /// or an `Option<&[u8]>` for a single line).
    ///
    /// `peer` unless it is one of `trusted_proxies`; then the right-most forwarded address
    /// that is not a trusted proxy (anything left of it was written by the client). If the
    /// header is malformed before that address, `peer`. IPv4-mapped IPv6 addresses come
    /// back as IPv4.
    pub fn client_ip<'a, I>(&self, peer: IpAddr, x_forwarded_for: I) -> IpAddr
    where
        I: IntoIterator<Item = &'a [u8]>,
        I::IntoIter: DoubleEndedIterator,
    {
        client::client_ip(&self.trusted_proxies, peer, x_forwarded_for)
    }

    /// Counts a request from client address `ip` (from [`RateLimits::client_ip`]); IPv6
    /// addresses share the bucket of their /64.
    ///
    /// # Errors
    ///
    /// [`Limited`] when the address is over `per_ip`.
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), Limited> {
        match &self.per_ip {
            Some(keyed) => keyed
                .limiter
                .check_key(&client::ip_key(ip))
                .map_err(|refusal| self.limited(&refusal)),
            None => Ok(()),
        }
    }

    /// Counts a request by `subject`.
    ///
    /// # Errors
    ///
    /// [`Limited`] when the subject is over `per_subject`; a display is then answered from
    /// the cache rather than refused.
    pub fn check_subject(&self, subject: &SubjectId) -> Result<(), Limited> {
        match &self.per_subject {
            Some(keyed) => keyed
                .limiter
                .check_key(subject)
                .map_err(|refusal| self.limited(&refusal)),
            None => Ok(()),
        }
    }

    /// Counts a request against the proxy's total.
    ///
    /// # Errors
    ///
    /// [`Limited`] when the proxy is over `global`.
    pub fn check_global(&self) -> Result<(), Limited> {
        match &self.global {
            Some(limiter) => limiter.check().map_err(|refusal| self.limited(&refusal)),
            None => Ok(()),
        }
    }

    /// Forgets the keys whose buckets have refilled (they would be decided the same without
    /// their state) and returns the freed memory. Call every few seconds from a background
    /// task; it walks every key, taking each shard's write lock in turn.
    pub fn housekeeping(&self) {
        if let Some(keyed) = &self.per_ip {
            keyed.housekeeping();
        }
        if let Some(keyed) = &self.per_subject {
            keyed.housekeeping();
        }
    }

    /// Keys held now: (client addresses, subjects), for metrics.
    pub fn tracked_keys(&self) -> (usize, usize) {
        (
            self.per_ip.as_ref().map_or(0, |k| k.limiter.len()),
            self.per_subject.as_ref().map_or(0, |k| k.limiter.len()),
        )
    }

    /// Checks so far that passed untracked because their limiter was full: (client
    /// addresses, subjects), for metrics (counters).
    pub fn untracked(&self) -> (u64, u64) {
        (
            self.per_ip
                .as_ref()
                .map_or(0, |k| k.untracked.load(Ordering::Relaxed)),
            self.per_subject
                .as_ref()
                .map_or(0, |k| k.untracked.load(Ordering::Relaxed)),
        )
    }

    fn limited(&self, refusal: &NotUntil<C::Instant>) -> Limited {
        Limited {
            retry_after: refusal.wait_time_from(self.clock.now()),
        }
    }
}

/// `rate` with `burst`, or `None` when off. A rate too fast to express (refused by config
/// validation) is clamped to one request per nanosecond, in effect no limit.
fn quota(rate: Rate, burst: NonZeroU32) -> Option<Quota> {
    if rate.is_off() {
        return None;
    }
    let interval = rate.interval().unwrap_or(Duration::from_nanos(1));
    Quota::with_period(interval).map(|q| q.allow_burst(burst))
}

#[cfg(test)]
mod tests;
