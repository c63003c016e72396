//! Socket addresses in config files and on the command line, with one message for both.

use std::fmt;
use std::net::SocketAddr;

use serde::{Deserializer, Serializer};

/// A string that is not an `IP:port` socket address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidSocketAddr(String);

impl fmt::Display for InvalidSocketAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            r#"invalid socket address {:?} (expected e.g. "0.0.0.0:8080")"#,
            self.0
        )
    }
}

impl std::error::Error for InvalidSocketAddr {}

/// Parses `IP:port` (`0.0.0.0:8080`, `[::1]:9180`); host names are refused because a
/// listener binds an address, not a name. Usable as a clap `value_parser`.
///
/// # Errors
///
/// Returns [`InvalidSocketAddr`], naming the text, when it is not an `IP:port`.
pub fn parse_socket_addr(text: &str) -> Result<SocketAddr, InvalidSocketAddr> {
    text.parse().map_err(|_| InvalidSocketAddr(text.to_owned()))
}

/// Keeps [`SocketAddr`] as the field type while reporting our message.
struct Addr(SocketAddr);

impl std::str::FromStr for Addr {
    type Err = InvalidSocketAddr;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_socket_addr(s).map(Addr)
    }
}

/// `deserialize_with` for `SocketAddr` fields.
pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<SocketAddr, D::Error> {
    crate::text::deserialize(deserializer, r#"a socket address such as "0.0.0.0:8080""#)
        .map(|Addr(addr)| addr)
}

/// `serialize_with` for `SocketAddr` fields.
pub(crate) fn serialize<S: Serializer>(
    addr: &SocketAddr,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    crate::text::serialize(addr, serializer)
}

/// Whether two listeners would fight over a port: same port, and the same IP or either
/// on the unspecified address. Port 0 (the OS picks, as tests do) never conflicts.
pub(crate) fn conflicts(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() != 0
        && a.port() == b.port()
        && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_names_with_an_example() {
        assert_eq!(
            parse_socket_addr("localhost")
                .err()
                .map(|e| e.to_string())
                .as_deref(),
            Some(r#"invalid socket address "localhost" (expected e.g. "0.0.0.0:8080")"#)
        );
        assert!(parse_socket_addr("[::1]:9180").is_ok());
    }

    #[test]
    fn conflicts_on_shared_ports_only() {
        let addr =
            |s: &str| parse_socket_addr(s).unwrap_or_else(|_| SocketAddr::from(([1, 1, 1, 1], 1)));
        assert!(conflicts(addr("0.0.0.0:8080"), addr("127.0.0.1:8080")));
        assert!(conflicts(addr("127.0.0.1:8080"), addr("127.0.0.1:8080")));
        assert!(!conflicts(addr("127.0.0.1:8080"), addr("127.0.0.2:8080")));
        assert!(!conflicts(addr("127.0.0.1:8080"), addr("127.0.0.1:9180")));
        assert!(!conflicts(addr("127.0.0.1:0"), addr("127.0.0.1:0")));
    }
}
