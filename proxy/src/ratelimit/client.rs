//! Who the client is: the TCP peer, or, behind trusted proxies, the right-most
//! `X-Forwarded-For` address they did not add themselves; and the key a client is counted
//! under (IPv6 per /64).

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use shouhu_config::proxy::Cidr;

/// The client address of a request from `peer`.
///
/// `peer` itself unless it is in `trusted`. Then `X-Forwarded-For` is read from the right,
/// the order proxies append in, across header lines (`x_forwarded_for` yields them in
/// order): the first address not in `trusted` is the client; everything left of it was
/// written by that client and is not believed. A chain of trusted addresses only gives its
/// left-most. An entry that is not an address (`unknown`, an obfuscated name, garbage)
/// before the client is found means a proxy did not append as expected, so `peer` is used:
/// better one shared bucket than a client-chosen one. Entries may carry a port
/// (`192.0.2.1:5000`, `[2001:db8::1]:443`); empty entries are skipped.
pub(super) fn client_ip<'a, I>(trusted: &[Cidr], peer: IpAddr, x_forwarded_for: I) -> IpAddr
where
    I: IntoIterator<Item = &'a [u8]>,
    I::IntoIter: DoubleEndedIterator,
{
    let peer = peer.to_canonical();
    let is_trusted = |ip: IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(peer) {
        return peer;
    }
    let mut client = peer;
    for line in x_forwarded_for.into_iter().rev() {
        for entry in line.rsplit(|&b| b == b',') {
            let entry = entry.trim_ascii();
            if entry.is_empty() {
                continue;
            }
            let Some(ip) = parse_entry(entry) else {
                return peer;
            };
            if !is_trusted(ip) {
                return ip;
            }
            client = ip;
        }
    }
    client
}

/// One `X-Forwarded-For` entry: an address, with or without a port.
fn parse_entry(entry: &[u8]) -> Option<IpAddr> {
    let text = std::str::from_utf8(entry).ok()?;
    text.parse::<IpAddr>()
        .or_else(|_| text.parse::<SocketAddr>().map(|addr| addr.ip()))
        .ok()
        .map(|ip| ip.to_canonical())
}

/// The key a client is counted under: an IPv4 address as itself (IPv4-mapped), an IPv6
/// address by its /64, the block one subscriber line or phone is given, so that walking
/// through the 2^64 addresses of one's own block buys nothing.
pub(super) fn ip_key(ip: IpAddr) -> Ipv6Addr {
    match ip.to_canonical() {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => Ipv6Addr::from(u128::from(v6) & !u128::from(u64::MAX)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse()
            .unwrap_or_else(|e| panic!("{text} should parse: {e}"))
    }

    fn trusted() -> Vec<Cidr> {
        ["10.0.0.0/8", "2001:db8:ffff::/48"]
            .iter()
            .map(|t| t.parse().unwrap_or_else(|e| panic!("{t}: {e}")))
            .collect()
    }

    /// The client of a request from `peer` with these `X-Forwarded-For` lines.
    fn client(peer: &str, lines: &[&str]) -> IpAddr {
        client_ip(&trusted(), ip(peer), lines.iter().map(|l| l.as_bytes()))
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_forwards() {
        assert_eq!(client("198.51.100.1", &["203.0.113.7"]), ip("198.51.100.1"));
        assert_eq!(client("198.51.100.1", &[]), ip("198.51.100.1"));
        assert_eq!(
            client_ip(&[], ip("10.0.0.1"), Some(b"203.0.113.7".as_slice())),
            ip("10.0.0.1"),
            "nothing trusted: the header is never read"
        );
    }

    #[test]
    fn behind_trusted_proxies_the_right_most_untrusted_address_is_the_client() {
        assert_eq!(client("10.0.0.1", &["203.0.113.7"]), ip("203.0.113.7"));
        assert_eq!(
            client("10.0.0.1", &["203.0.113.7, 10.0.0.2"]),
            ip("203.0.113.7")
        );
        // The client wrote the left part itself to pose as someone else.
        assert_eq!(
            client("10.0.0.1", &["6.6.6.6, 10.9.9.9, 203.0.113.7, 10.0.0.2"]),
            ip("203.0.113.7")
        );
        // Header lines are one list, in order.
        assert_eq!(
            client("10.0.0.1", &["6.6.6.6", "203.0.113.7, 10.0.0.2"]),
            ip("203.0.113.7")
        );
        assert_eq!(
            client("10.0.0.1", &["203.0.113.7", "10.0.0.2"]),
            ip("203.0.113.7")
        );
        assert_eq!(
            client("2001:db8:ffff::1", &["2001:db8:1::7, 2001:db8:ffff::2"]),
            ip("2001:db8:1::7")
        );
        // An IPv4 peer seen on a dual-stack socket.
        assert_eq!(
            client("::ffff:10.0.0.1", &["203.0.113.7"]),
            ip("203.0.113.7")
        );
    }

    #[test]
    fn entries_may_carry_ports_and_be_empty() {
        assert_eq!(
            client("10.0.0.1", &["203.0.113.7:5000, 10.0.0.2:80"]),
            ip("203.0.113.7")
        );
        assert_eq!(
            client("10.0.0.1", &["[2001:db8:1::7]:443"]),
            ip("2001:db8:1::7")
        );
        assert_eq!(
            client("10.0.0.1", &["203.0.113.7,, 10.0.0.2 ,"]),
            ip("203.0.113.7")
        );
        assert_eq!(
            client("10.0.0.1", &["::ffff:203.0.113.7"]),
            ip("203.0.113.7")
        );
    }

    #[test]
    fn a_chain_of_trusted_addresses_gives_its_left_most() {
        assert_eq!(client("10.0.0.1", &["10.0.0.9, 10.0.0.2"]), ip("10.0.0.9"));
        assert_eq!(client("10.0.0.1", &[]), ip("10.0.0.1"));
        assert_eq!(client("10.0.0.1", &[""]), ip("10.0.0.1"));
    }

    #[test]
    fn a_malformed_header_gives_the_peer() {
        for line in [
            "unknown",
            "203.0.113.7, garbage",
            "203.0.113.7, _hidden, 10.0.0.2",
            "203.0.113.7 10.0.0.2",
            "203.0.113.999",
            "2001:db8::g",
        ] {
            assert_eq!(client("10.0.0.1", &[line]), ip("10.0.0.1"), "{line:?}");
        }
        let not_utf8: &[u8] = b"203.0.113.7, \xff\xfe";
        assert_eq!(
            client_ip(&trusted(), ip("10.0.0.1"), Some(not_utf8)),
            ip("10.0.0.1")
        );
        // Garbage left of the client is the client's own business.
        assert_eq!(
            client("10.0.0.1", &["garbage, 203.0.113.7"]),
            ip("203.0.113.7")
        );
    }

    #[test]
    fn ipv6_clients_are_keyed_by_their_64() {
        assert_eq!(
            ip_key(ip("2001:db8:1:2::1")),
            ip_key(ip("2001:db8:1:2:ffff:1:2:3"))
        );
        assert_ne!(ip_key(ip("2001:db8:1:2::1")), ip_key(ip("2001:db8:1:3::1")));
        assert_eq!(
            IpAddr::V6(ip_key(ip("2001:db8:1:2:3:4:5:6"))),
            ip("2001:db8:1:2::")
        );
        // IPv4 addresses are each their own key, whichever way they arrive.
        assert_ne!(ip_key(ip("192.0.2.1")), ip_key(ip("192.0.2.2")));
        assert_eq!(ip_key(ip("192.0.2.1")), ip_key(ip("::ffff:192.0.2.1")));
        // The /64 that holds the IPv4-mapped range is not any IPv4 address's key.
        assert_ne!(ip_key(ip("::1")), ip_key(ip("0.0.0.0")));
    }
}
