//! `X-Request-Id`: the client's own when it sends a well-formed one, else one made here; sent
//! to the origin, returned to the client and named in every log line of the request.
//!
//! A made id is `{prefix}-{n}`: a random 8-hex-digit prefix per process (so two proxies, or
//! one restarted, do not repeat each other) and a counter in hex. No UUID per request.

use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::http::HeaderValue;
use bytes::Bytes;

/// The header, in requests and responses.
pub const REQUEST_ID_HEADER: &str = "x-request-id";
/// Longest id taken from a client; a longer one is replaced.
pub const MAX_REQUEST_ID_LEN: usize = 64;

/// Whether a client's id may be used as is: 1 to [`MAX_REQUEST_ID_LEN`] visible ASCII
/// characters (no spaces, no control characters: it goes into log lines).
#[must_use]
pub fn is_well_formed(id: &[u8]) -> bool {
    (1..=MAX_REQUEST_ID_LEN).contains(&id.len()) && id.iter().all(u8::is_ascii_graphic)
}

/// The request's id: `sent` when well-formed, else a new one.
#[must_use]
pub fn of(sent: Option<&HeaderValue>) -> HeaderValue {
    match sent {
        Some(v) if is_well_formed(v.as_bytes()) => v.clone(),
        _ => make(),
    }
}

/// A new id, unique in this process: one small allocation.
#[must_use]
pub fn make() -> HeaderValue {
    static PREFIX: LazyLock<u32> = LazyLock::new(rand::random);
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let id = Bytes::from(format!("{:08x}-{n:x}", *PREFIX));
    // Hex digits and `-` are always a valid header value.
    HeaderValue::from_maybe_shared(id).unwrap_or_else(|_| HeaderValue::from_static("-"))
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn a_well_formed_id_is_kept() {
        let sent = HeaderValue::from_static("abc-123_XYZ.9");
        assert_eq!(of(Some(&sent)), sent);
    }

    #[test]
    fn a_bad_or_missing_id_is_replaced() {
        let long = "a".repeat(MAX_REQUEST_ID_LEN + 1);
        for bad in [
            HeaderValue::from_static(""),
            HeaderValue::from_static("has space"),
            HeaderValue::from_str(&long).unwrap(),
            HeaderValue::from_bytes("日志".as_bytes()).unwrap(),
        ] {
            let id = of(Some(&bad));
            assert_ne!(id, bad);
            assert!(is_well_formed(id.as_bytes()));
        }
        assert!(is_well_formed(of(None).as_bytes()));
    }

    #[test]
    fn made_ids_share_a_prefix_and_never_repeat() {
        let a = make();
        let b = make();
        assert_ne!(a, b);
        let (pa, na) = a.to_str().unwrap().split_once('-').unwrap();
        let (pb, nb) = b.to_str().unwrap().split_once('-').unwrap();
        assert_eq!(pa, pb);
        assert_eq!(pa.len(), 8);
        assert!(u64::from_str_radix(nb, 16).unwrap() > u64::from_str_radix(na, 16).unwrap());
    }
}
