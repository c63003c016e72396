//! Address ranges in CIDR notation (`"10.0.0.0/8"`, `"2001:db8::/32"`, or one address), for
//! the proxies whose `X-Forwarded-For` is believed.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// An IPv4 or IPv6 network: an address with its host bits clear, and a prefix length.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// The network `network/prefix`, or `None` if the prefix is too long for the family or
    /// `network` has host bits set. An IPv4-mapped IPv6 network (`::ffff:10.0.0.0/104`) is
    /// kept as its IPv4 network (`10.0.0.0/8`), as addresses are compared.
    pub fn new(network: IpAddr, prefix: u8) -> Option<Self> {
        if let IpAddr::V6(v6) = network
            && let Some(v4) = v6.to_ipv4_mapped()
            && prefix >= 96
        {
            return Self::new(IpAddr::V4(v4), prefix - 96);
        }
        (prefix <= max_prefix(network) && masked(network, prefix) == network)
            .then_some(Self { network, prefix })
    }

    /// The first address.
    pub const fn network(&self) -> IpAddr {
        self.network
    }

    /// The prefix length.
    pub const fn prefix(&self) -> u8 {
        self.prefix
    }

    /// Whether `ip` is in this network. An IPv4-mapped IPv6 address (`::ffff:10.0.0.1`)
    /// counts as its IPv4 address.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        ip.is_ipv4() == self.network.is_ipv4() && masked(ip, self.prefix) == self.network
    }
}

fn max_prefix(ip: IpAddr) -> u8 {
    if ip.is_ipv4() { 32 } else { 128 }
}

/// `ip` with all but its first `prefix` bits cleared.
fn masked(ip: IpAddr, prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let mask = u32::MAX
                .checked_shl(32 - u32::from(prefix.min(32)))
                .unwrap_or(0);
            IpAddr::V4((u32::from(v4) & mask).into())
        }
        IpAddr::V6(v6) => {
            let mask = u128::MAX
                .checked_shl(128 - u32::from(prefix.min(128)))
                .unwrap_or(0);
            IpAddr::V6((u128::from(v6) & mask).into())
        }
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// A string that is not a network.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidCidr {
    text: String,
    /// The network meant, when only host bits were wrong.
    did_you_mean: Option<Cidr>,
}

impl fmt::Display for InvalidCidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.did_you_mean {
            Some(network) => write!(
                f,
                r#"invalid network {:?}: host bits set (did you mean "{network}"?)"#,
                self.text
            ),
            None => write!(
                f,
                r#"invalid network {:?} (expected e.g. "10.0.0.0/8", "2001:db8::/32" or one address)"#,
                self.text
            ),
        }
    }
}

impl std::error::Error for InvalidCidr {}

impl FromStr for Cidr {
    type Err = InvalidCidr;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = |did_you_mean| InvalidCidr {
            text: s.to_owned(),
            did_you_mean,
        };
        let (address, prefix) = match s.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (s, None),
        };
        let address: IpAddr = address.parse().map_err(|_| invalid(None))?;
        let prefix = match prefix {
            None => max_prefix(address),
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
                p.parse().map_err(|_| invalid(None))?
            }
            Some(_) => return Err(invalid(None)),
        };
        if prefix > max_prefix(address) {
            return Err(invalid(None));
        }
        Self::new(address, prefix).ok_or_else(|| {
            invalid(Some(Self {
                network: masked(address, prefix),
                prefix,
            }))
        })
    }
}

crate::text::serde_via_str!(Cidr, r#"a network such as "10.0.0.0/8""#);

#[cfg(test)]
mod tests {
    use super::*;

    fn cidr(text: &str) -> Cidr {
        text.parse()
            .unwrap_or_else(|e| panic!("{text} should parse: {e}"))
    }

    fn ip(text: &str) -> IpAddr {
        text.parse()
            .unwrap_or_else(|e| panic!("{text} should parse: {e}"))
    }

    #[test]
    fn parses_and_displays_the_same() {
        for text in [
            "10.0.0.0/8",
            "2001:db8::/32",
            "0.0.0.0/0",
            "::/0",
            "192.0.2.1/32",
        ] {
            assert_eq!(cidr(text).to_string(), text);
        }
        assert_eq!(cidr("192.0.2.1").to_string(), "192.0.2.1/32");
        assert_eq!(cidr("2001:db8::1").to_string(), "2001:db8::1/128");
    }

    #[test]
    fn contains_by_prefix_and_family() {
        let net = cidr("10.0.0.0/8");
        assert!(net.contains(ip("10.255.1.2")));
        assert!(net.contains(ip("::ffff:10.1.2.3")));
        assert!(!net.contains(ip("11.0.0.1")));
        assert!(!net.contains(ip("::a00:1")));
        let net = cidr("2001:db8::/32");
        assert!(net.contains(ip("2001:db8:ffff::1")));
        assert!(!net.contains(ip("2001:db9::1")));
        assert!(!net.contains(ip("10.0.0.1")));
        assert!(cidr("0.0.0.0/0").contains(ip("203.0.113.9")));
        assert!(cidr("::/0").contains(ip("2001:db8::1")));
        assert!(cidr("192.0.2.1").contains(ip("192.0.2.1")));
        assert!(!cidr("192.0.2.1").contains(ip("192.0.2.2")));
        assert_eq!(cidr("::ffff:10.0.0.0/104"), cidr("10.0.0.0/8"));
    }

    #[test]
    fn rejects_with_the_value() {
        for bad in [
            "10.0.0.0/33",
            "::/129",
            "10.0.0/8",
            "10.0.0.0/",
            "10.0.0.0/+8",
            "host/8",
            "",
        ] {
            assert_eq!(
                bad.parse::<Cidr>().err().map(|e| e.to_string()),
                Some(format!(
                    r#"invalid network {bad:?} (expected e.g. "10.0.0.0/8", "2001:db8::/32" or one address)"#
                )),
            );
        }
        assert_eq!(
            "10.1.2.3/8".parse::<Cidr>().err().map(|e| e.to_string()),
            Some(
                r#"invalid network "10.1.2.3/8": host bits set (did you mean "10.0.0.0/8"?)"#
                    .to_owned()
            )
        );
    }
}
