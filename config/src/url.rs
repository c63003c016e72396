//! URLs in config files: HTTP(S) endpoints and Redis servers, checked for scheme and host
//! when loaded so a typo fails at start-up, not on the first request.
//!
//! Hand-rolled rather than the `url` crate: we accept a narrow shape (scheme, host, port,
//! path; no query, fragment or HTTP user info), and the Redis rule that refuses inline
//! passwords must word its error without echoing the secret.

use std::fmt;
use std::net::Ipv6Addr;
use std::str::FromStr;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::ser::{SerializeSeq, Serializer};

/// An `http://` or `https://` URL: scheme, host, optional port and path.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct HttpUrl {
    text: String,
    https: bool,
    host: String,
    port: u16,
    path: String,
}

impl HttpUrl {
    /// The URL as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether the scheme is `https`.
    pub fn is_https(&self) -> bool {
        self.https
    }

    /// The host: a name, an IPv4 address, or an IPv6 address without brackets.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port, explicit or the scheme's default (80, 443).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The path, `/` when none is written.
    pub fn path(&self) -> &str {
        if self.path.is_empty() {
            "/"
        } else {
            &self.path
        }
    }

    /// `host:port`, with brackets around an IPv6 host, for connecting.
    pub fn authority(&self) -> String {
        authority(&self.host, self.port)
    }
}

impl fmt::Display for HttpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// A string that is not an acceptable URL; the message says why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidUrl(String);

impl fmt::Display for InvalidUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for InvalidUrl {}

impl FromStr for HttpUrl {
    type Err = InvalidUrl;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = |reason: &str| InvalidUrl(format!("invalid URL {text:?}: {reason}"));
        let parts = split(text).ok_or_else(|| {
            InvalidUrl(format!(
                r#"invalid URL {text:?} (expected e.g. "http://127.0.0.1:8000")"#
            ))
        })?;
        let (https, default_port) = match parts.scheme {
            "http" => (false, 80),
            "https" => (true, 443),
            _ => return Err(bad("scheme must be http or https")),
        };
        if parts.userinfo.is_some() {
            return Err(bad("user info (user@host) is not supported"));
        }
        let (host, port) = host_port(parts.authority, default_port).map_err(|r| bad(&r))?;
        if parts.path.contains(['?', '#']) {
            return Err(bad("a query or fragment is not supported"));
        }
        Ok(Self {
            text: text.to_owned(),
            https,
            host,
            port,
            path: parts.path.to_owned(),
        })
    }
}

crate::text::serde_via_str!(HttpUrl, r#"a URL such as "http://127.0.0.1:8000""#);

/// A Redis server: `redis://[user@]host[:port][/db]`, or `rediss://` for TLS.
///
/// A password in the URL is refused: Redis passwords are secrets and come from a file or
/// the environment (`redis_password = { file = "..." }`), never from the config text.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RedisUrl {
    text: String,
    tls: bool,
    username: Option<String>,
    host: String,
    port: u16,
    db: Option<u32>,
}

/// The port Redis listens on unless told otherwise.
pub const DEFAULT_REDIS_PORT: u16 = 6379;

impl RedisUrl {
    /// The URL as written (it never holds a password).
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether the scheme is `rediss` (TLS).
    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// The ACL user name, if one is given.
    pub fn username(&self) -> Option<&str> {
        self.username.as_deref()
    }

    /// The host: a name, an IPv4 address, or an IPv6 address without brackets.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port, explicit or [`DEFAULT_REDIS_PORT`].
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The database number, if one is given.
    pub fn db(&self) -> Option<u32> {
        self.db
    }

    /// `host:port`, with brackets around an IPv6 host, for connecting.
    pub fn authority(&self) -> String {
        authority(&self.host, self.port)
    }
}

impl fmt::Display for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl FromStr for RedisUrl {
    type Err = InvalidUrl;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let parts = split(text);
        // Checked before anything that would echo the text: it may hold a password.
        if parts
            .as_ref()
            .and_then(|p| p.userinfo)
            .is_some_and(|u| u.contains(':'))
        {
            return Err(InvalidUrl(
                r#"invalid Redis URL: it must not contain a password; set redis_password = { file = "..." } or { env = "..." }"#
                    .to_owned(),
            ));
        }
        let bad = |reason: &str| InvalidUrl(format!("invalid Redis URL {text:?}: {reason}"));
        let parts = parts.ok_or_else(|| {
            InvalidUrl(format!(
                r#"invalid Redis URL {text:?} (expected e.g. "redis://127.0.0.1:6379")"#
            ))
        })?;
        let tls = match parts.scheme {
            "redis" => false,
            "rediss" => true,
            _ => return Err(bad("scheme must be redis or rediss")),
        };
        let (host, port) = host_port(parts.authority, DEFAULT_REDIS_PORT).map_err(|r| bad(&r))?;
        let db = match parts.path.trim_start_matches('/') {
            "" => None,
            db => Some(
                db.parse()
                    .map_err(|_| bad(&format!("database must be a number (got {db:?})")))?,
            ),
        };
        Ok(Self {
            text: text.to_owned(),
            tls,
            username: parts.userinfo.map(str::to_owned),
            host,
            port,
            db,
        })
    }
}

crate::text::serde_via_str!(RedisUrl, r#"a Redis URL such as "redis://127.0.0.1:6379""#);

/// Where Redis is: one URL for a standalone server, or several (`redis = ["redis://a:6379",
/// "redis://b:6379"]`) for the seed nodes of a Redis Cluster. Never empty.
///
/// A single-node cluster cannot be told apart yet; a `redis+cluster://` scheme may be added
/// for it later.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RedisUrls(Vec<RedisUrl>);

impl RedisUrls {
    /// The URLs, in the order written; at least one.
    pub fn urls(&self) -> &[RedisUrl] {
        &self.0
    }

    /// Whether these are the seed nodes of a cluster (more than one URL).
    pub fn is_cluster(&self) -> bool {
        self.0.len() > 1
    }
}

impl From<RedisUrl> for RedisUrls {
    fn from(url: RedisUrl) -> Self {
        Self(vec![url])
    }
}

impl fmt::Display for RedisUrls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, url) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{url}")?;
        }
        Ok(())
    }
}

/// Comma-separated, as on a command line: `--redis redis://a:6379,redis://b:6379`.
impl FromStr for RedisUrls {
    type Err = InvalidUrl;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let urls = text
            .split(',')
            .map(|url| url.trim().parse())
            .collect::<Result<Vec<RedisUrl>, _>>()?;
        Ok(Self(urls))
    }
}

impl serde::Serialize for RedisUrls {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0.as_slice() {
            [one] => one.serialize(serializer),
            many => {
                let mut seq = serializer.serialize_seq(Some(many.len()))?;
                for url in many {
                    seq.serialize_element(url)?;
                }
                seq.end()
            }
        }
    }
}

impl<'de> serde::Deserialize<'de> for RedisUrls {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(RedisUrlsVisitor)
    }
}

struct RedisUrlsVisitor;

impl<'de> Visitor<'de> for RedisUrlsVisitor {
    type Value = RedisUrls;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a Redis URL or an array of them")
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<RedisUrls, E> {
        value
            .parse::<RedisUrl>()
            .map(RedisUrls::from)
            .map_err(E::custom)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RedisUrls, A::Error> {
        let mut urls = Vec::new();
        while let Some(url) = seq.next_element::<RedisUrl>()? {
            urls.push(url);
        }
        if urls.is_empty() {
            return Err(de::Error::custom("must list at least one Redis URL"));
        }
        Ok(RedisUrls(urls))
    }
}

struct Parts<'a> {
    scheme: &'a str,
    userinfo: Option<&'a str>,
    authority: &'a str,
    path: &'a str,
}

/// Splits `scheme://[userinfo@]authority[path]`; `None` without `scheme://`.
fn split(text: &str) -> Option<Parts<'_>> {
    let (scheme, rest) = text.split_once("://")?;
    if scheme.is_empty()
        || !scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
    {
        return None;
    }
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    let (userinfo, authority) = match authority.rsplit_once('@') {
        Some((userinfo, authority)) => (Some(userinfo), authority),
        None => (None, authority),
    };
    Some(Parts {
        scheme,
        userinfo,
        authority,
        path,
    })
}

/// Parses `host[:port]` or `[v6][:port]`.
fn host_port(authority: &str, default_port: u16) -> Result<(String, u16), String> {
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (v6, after) = rest
            .split_once(']')
            .ok_or_else(|| format!("invalid host {authority:?}"))?;
        v6.parse::<Ipv6Addr>()
            .map_err(|_| format!("invalid IPv6 host {v6:?}"))?;
        match after {
            "" => (v6, None),
            _ => (
                v6,
                Some(
                    after
                        .strip_prefix(':')
                        .ok_or_else(|| format!("invalid host {authority:?}"))?,
                ),
            ),
        }
    } else {
        match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err("missing host".to_owned());
    }
    let name_char = |c: char| c.is_ascii_alphanumeric() || "-._".contains(c);
    if !authority.starts_with('[') && (!host.chars().all(name_char) || host.starts_with(['-', '.']))
    {
        return Err(format!("invalid host {host:?}"));
    }
    let port = match port {
        None => default_port,
        Some(port) => port
            .parse::<u16>()
            .ok()
            .filter(|&p| p != 0)
            .ok_or_else(|| format!("invalid port {port:?} (expected 1 to 65535)"))?,
    };
    Ok((host.to_owned(), port))
}

fn authority(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err<T: FromStr<Err = InvalidUrl> + fmt::Debug>(text: &str) -> String {
        text.parse::<T>()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    }

    #[test]
    fn http_urls_parse_into_parts() {
        let url: HttpUrl = "http://127.0.0.1:8000"
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (url.host(), url.port(), url.path()),
            ("127.0.0.1", 8000, "/")
        );
        let url: HttpUrl = "https://[::1]/base"
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (url.is_https(), url.authority(), url.path()),
            (true, "[::1]:443".to_owned(), "/base")
        );
    }

    #[test]
    fn http_urls_say_what_is_wrong() {
        assert_eq!(
            err::<HttpUrl>("localhost:8000"),
            r#"invalid URL "localhost:8000" (expected e.g. "http://127.0.0.1:8000")"#
        );
        assert_eq!(
            err::<HttpUrl>("ftp://a"),
            r#"invalid URL "ftp://a": scheme must be http or https"#
        );
        assert_eq!(
            err::<HttpUrl>("http://:80"),
            r#"invalid URL "http://:80": missing host"#
        );
        assert_eq!(
            err::<HttpUrl>("http://a b"),
            r#"invalid URL "http://a b": invalid host "a b""#
        );
        assert_eq!(
            err::<HttpUrl>("http://a:99999"),
            r#"invalid URL "http://a:99999": invalid port "99999" (expected 1 to 65535)"#
        );
        assert_eq!(
            err::<HttpUrl>("http://a/?q"),
            r#"invalid URL "http://a/?q": a query or fragment is not supported"#
        );
    }

    #[test]
    fn redis_urls_parse_and_never_echo_passwords() {
        let url: RedisUrl = "rediss://app@r1:7000/2"
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (
                url.is_tls(),
                url.username(),
                url.host(),
                url.port(),
                url.db()
            ),
            (true, Some("app"), "r1", 7000, Some(2))
        );
        let message = err::<RedisUrl>("redis://app:hunter2@r1");
        assert!(!message.contains("hunter2"), "{message}");
        assert!(message.contains("must not contain a password"), "{message}");
        assert_eq!(
            err::<RedisUrl>("http://r1"),
            r#"invalid Redis URL "http://r1": scheme must be redis or rediss"#
        );
        assert_eq!(
            err::<RedisUrl>("redis://r1/x"),
            r#"invalid Redis URL "redis://r1/x": database must be a number (got "x")"#
        );
    }

    #[test]
    fn redis_url_lists_parse_from_commas() {
        let urls: RedisUrls = "redis://a, redis://b:7000"
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(urls.is_cluster());
        assert_eq!(urls.to_string(), "redis://a,redis://b:7000");
    }
}
