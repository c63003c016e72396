//! `[rate_limit]`: request rates per client address, per subject and (optionally) in total,
//! each a token bucket: a sustained [`Rate`] plus a burst that may be spent at once.
//!
//! The client address is the TCP peer, or the right-most `X-Forwarded-For` address that is
//! not itself a trusted proxy when the peer is one of `trusted_proxies` ([`Cidr`]). IPv6
//! clients are counted per /64, the block one subscriber is given.

mod cidr;
mod rate;

use std::num::{NonZeroU32, NonZeroUsize};

use serde::{Deserialize, Deserializer, Serialize};

pub use self::cidr::{Cidr, InvalidCidr};
pub use self::rate::{InvalidRate, Per, Rate};
use crate::validate::Validator;

const fn non_zero(n: u32) -> NonZeroU32 {
    match NonZeroU32::new(n) {
        Some(n) => n,
        // Evaluated at compile time: a zero here fails the build, never a run.
        None => panic!("zero"),
    }
}

/// Default `rate_limit.per_ip`: 300 requests a second. Carrier-grade NAT puts thousands of
/// people behind one IPv4 address; 300/s is ~9,000 people each refreshing a code every 30 s,
/// while one abusive host at that rate is a sliver of what one proxy serves from cache.
pub const DEFAULT_RATE_LIMIT_PER_IP: Rate = Rate::per_second(300);
/// Default `rate_limit.per_ip_burst`: about three seconds of [`DEFAULT_RATE_LIMIT_PER_IP`],
/// for a crowd behind one address that opens the app at once (a train at a station gate).
pub const DEFAULT_RATE_LIMIT_PER_IP_BURST: NonZeroU32 = non_zero(1000);
/// Default `rate_limit.per_subject`: one request a second per person, more than anyone
/// refreshing by hand needs; a refresh storm past it gets the cached code.
pub const DEFAULT_RATE_LIMIT_PER_SUBJECT: Rate = Rate::per_second(1);
/// Default `rate_limit.per_subject_burst`: a page load's worth of calls at once.
pub const DEFAULT_RATE_LIMIT_PER_SUBJECT_BURST: NonZeroU32 = non_zero(10);
/// Default `rate_limit.global`: off; the adaptive admission limit protects the origin, and
/// a fixed total only fits a proxy whose capacity is known.
pub const DEFAULT_RATE_LIMIT_GLOBAL: Rate = Rate::OFF;
/// Default `rate_limit.max_keys`: per keyed limiter (addresses, subjects). A key takes a
/// 25-byte slot (16-byte key, 8-byte state, a control byte) in a hash table 44% to 88% full,
/// so a full limiter holds 30 to 60 MB.
pub const DEFAULT_RATE_LIMIT_MAX_KEYS: NonZeroUsize = match NonZeroUsize::new(1_000_000) {
    Some(n) => n,
    // Evaluated at compile time: a zero here fails the build, never a run.
    None => panic!("zero"),
};

/// `[rate_limit]` of the proxy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimit {
    /// Sustained requests per client address (IPv6: per /64); `"off"` for none. Default
    /// [`DEFAULT_RATE_LIMIT_PER_IP`].
    pub per_ip: Rate,
    /// Requests one address may make at once. Default [`DEFAULT_RATE_LIMIT_PER_IP_BURST`].
    #[serde(deserialize_with = "crate::number::at_least_one")]
    pub per_ip_burst: NonZeroU32,
    /// Sustained requests per verified subject (one person); `"off"` for none. Default
    /// [`DEFAULT_RATE_LIMIT_PER_SUBJECT`].
    pub per_subject: Rate,
    /// Requests one subject may make at once. Default
    /// [`DEFAULT_RATE_LIMIT_PER_SUBJECT_BURST`].
    #[serde(deserialize_with = "crate::number::at_least_one")]
    pub per_subject_burst: NonZeroU32,
    /// Sustained requests through this proxy in total; `"off"` for none. Default
    /// [`DEFAULT_RATE_LIMIT_GLOBAL`].
    pub global: Rate,
    /// Requests through this proxy at once. Unset: one second's worth of `global`.
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "some_at_least_one"
    )]
    pub global_burst: Option<NonZeroU32>,
    /// Peers whose `X-Forwarded-For` is believed (load balancers, CDNs), as networks
    /// (`"10.0.0.0/8"`) or addresses. Default none: the TCP peer is the client.
    pub trusted_proxies: Vec<Cidr>,
    /// Addresses, and separately subjects, tracked at once. Past it a new key is not
    /// tracked (its request passes this limit) until idle keys are dropped. Default
    /// [`DEFAULT_RATE_LIMIT_MAX_KEYS`].
    #[serde(deserialize_with = "crate::number::at_least_one")]
    pub max_keys: NonZeroUsize,
}

fn some_at_least_one<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<NonZeroU32>, D::Error> {
    crate::number::at_least_one(deserializer).map(Some)
}

impl Default for RateLimit {
    fn default() -> Self {
        Self {
            per_ip: DEFAULT_RATE_LIMIT_PER_IP,
            per_ip_burst: DEFAULT_RATE_LIMIT_PER_IP_BURST,
            per_subject: DEFAULT_RATE_LIMIT_PER_SUBJECT,
            per_subject_burst: DEFAULT_RATE_LIMIT_PER_SUBJECT_BURST,
            global: DEFAULT_RATE_LIMIT_GLOBAL,
            global_burst: None,
            trusted_proxies: Vec::new(),
            max_keys: DEFAULT_RATE_LIMIT_MAX_KEYS,
        }
    }
}

impl RateLimit {
    /// The burst of the global limit: `global_burst`, else one second's worth of `global`
    /// (at least one).
    pub fn global_burst_or_default(&self) -> NonZeroU32 {
        self.global_burst.unwrap_or_else(|| {
            let per_second = u128::from(self.global.count())
                * std::time::Duration::from_secs(1).as_nanos()
                / self.global.per().duration().as_nanos();
            u32::try_from(per_second)
                .ok()
                .and_then(NonZeroU32::new)
                .unwrap_or(NonZeroU32::MIN)
        })
    }

    pub(crate) fn check(&self, v: &mut Validator<'_>) {
        for (path, rate) in [
            ("rate_limit.per_ip", self.per_ip),
            ("rate_limit.per_subject", self.per_subject),
            ("rate_limit.global", self.global),
        ] {
            if !rate.is_off() && rate.interval().is_none() {
                v.error(
                    path,
                    format_args!("must be at most {}/s (got {rate})", Rate::MAX_PER_SECOND),
                );
            }
        }
        for (i, network) in self.trusted_proxies.iter().enumerate() {
            if network.prefix() == 0 {
                v.error(
                    &format!("rate_limit.trusted_proxies[{i}]"),
                    format_args!(
                        "trusts every address, so any client could choose its own \
                         X-Forwarded-For (got {network})"
                    ),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn global_burst_defaults_to_one_second_of_the_rate() {
        let mut limits = RateLimit {
            global: Rate::per_second(20_000),
            ..RateLimit::default()
        };
        assert_eq!(limits.global_burst_or_default().get(), 20_000);
        limits.global = Rate::per_minute(30);
        assert_eq!(limits.global_burst_or_default().get(), 1);
        limits.global = Rate::per_minute(600);
        assert_eq!(limits.global_burst_or_default().get(), 10);
        limits.global_burst = NonZeroU32::new(5);
        assert_eq!(limits.global_burst_or_default().get(), 5);
    }
}
