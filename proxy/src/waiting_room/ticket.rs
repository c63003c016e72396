//! The ticket cookie: what a proxy needs to place a person, signed so that nobody can move
//! their own place.
//!
//! Binary, then base64url without padding:
//!
//! ```text
//! version u8 = 1 | kind u8 (0 waiting, 1 admitted) | epoch u64 | seq u64
//! | issued_ms u64 | until_ms u64 | tag [16]
//! ```
//!
//! `epoch` names the proxy process that issued the ticket (random at its start) and `seq` is
//! that process's ticket number, so the issuing process places its own tickets exactly;
//! `issued_ms` (Unix milliseconds) places a ticket anywhere else. `until_ms` is when an
//! admitted pass expires (0 for a waiting ticket). The tag is HMAC-SHA256 over every byte
//! before it, keyed with the shared key and truncated to 128 bits.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// The cookie that carries a ticket or a pass.
pub const COOKIE_NAME: &str = "shouhu_waiting_room";

const VERSION: u8 = 1;
const BODY_LEN: usize = 2 + 4 * 8;
const TAG_LEN: usize = 16;
/// Decoded length of a ticket.
const LEN: usize = BODY_LEN + TAG_LEN;
/// Longest cookie value looked at (base64 of [`LEN`] bytes, with room to spare).
const MAX_ENCODED: usize = 2 * LEN;

/// Waiting, or admitted until a time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// In the queue.
    Waiting,
    /// Let in; may pass until `until_ms`.
    Admitted {
        /// Unix milliseconds.
        until_ms: u64,
    },
}

/// A ticket's contents.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Ticket {
    pub(crate) kind: Kind,
    /// The issuing process.
    pub(crate) epoch: u64,
    /// That process's ticket number.
    pub(crate) seq: u64,
    /// When it was issued, Unix milliseconds.
    pub(crate) issued_ms: u64,
}

/// Signs and verifies tickets with one key.
#[derive(Clone)]
pub(crate) struct Signer {
    /// Keyed once; cloned per use (the key schedule is not redone).
    mac: Hmac<Sha256>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signer(<key redacted>)")
    }
}

impl Signer {
    pub(crate) fn new(key: &[u8; 32]) -> Self {
        // HMAC pads a key shorter than the hash's block to the block with zeros, so this is
        // HMAC keyed with `key` itself, and needs no fallible `new_from_slice`.
        let mut block = [0u8; 64];
        block[..32].copy_from_slice(key);
        Self {
            mac: Hmac::<Sha256>::new(&block.into()),
        }
    }

    /// The cookie value of `ticket`.
    pub(crate) fn encode(&self, ticket: &Ticket) -> String {
        let mut bytes = [0u8; LEN];
        bytes[0] = VERSION;
        let until_ms = match ticket.kind {
            Kind::Waiting => 0,
            Kind::Admitted { until_ms } => until_ms,
        };
        bytes[1] = u8::from(matches!(ticket.kind, Kind::Admitted { .. }));
        bytes[2..10].copy_from_slice(&ticket.epoch.to_be_bytes());
        bytes[10..18].copy_from_slice(&ticket.seq.to_be_bytes());
        bytes[18..26].copy_from_slice(&ticket.issued_ms.to_be_bytes());
        bytes[26..34].copy_from_slice(&until_ms.to_be_bytes());
        let mut mac = self.mac.clone();
        mac.update(&bytes[..BODY_LEN]);
        let tag = mac.finalize().into_bytes();
        bytes[BODY_LEN..].copy_from_slice(&tag[..TAG_LEN]);
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// The ticket in a cookie value, if it is one of ours, unaltered; anything else (wrong
    /// length, version or tag) is `None`.
    pub(crate) fn decode(&self, value: &[u8]) -> Option<Ticket> {
        if value.len() > MAX_ENCODED {
            return None;
        }
        let bytes: [u8; LEN] = URL_SAFE_NO_PAD.decode(value).ok()?.try_into().ok()?;
        let mut mac = self.mac.clone();
        mac.update(&bytes[..BODY_LEN]);
        mac.verify_truncated_left(&bytes[BODY_LEN..]).ok()?;
        if bytes[0] != VERSION {
            return None;
        }
        let word = |at: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&bytes[at..at + 8]);
            u64::from_be_bytes(w)
        };
        let until_ms = word(26);
        let kind = match bytes[1] {
            0 if until_ms == 0 => Kind::Waiting,
            1 => Kind::Admitted { until_ms },
            _ => return None,
        };
        Some(Ticket {
            kind,
            epoch: word(2),
            seq: word(10),
            issued_ms: word(18),
        })
    }
}

/// The values of every [`COOKIE_NAME`] cookie in a `Cookie` header, in order.
pub(crate) fn cookie_values(header: &[u8]) -> impl Iterator<Item = &[u8]> {
    header.split(|&b| b == b';').filter_map(|pair| {
        let pair = pair.trim_ascii();
        let eq = pair.iter().position(|&b| b == b'=')?;
        let (name, value) = (&pair[..eq], &pair[eq + 1..]);
        (name.trim_ascii() == COOKIE_NAME.as_bytes()).then(|| {
            let value = value.trim_ascii();
            value
                .strip_prefix(b"\"")
                .and_then(|v| v.strip_suffix(b"\""))
                .unwrap_or(value)
        })
    })
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used, reason = "tests")]
    use super::*;

    fn ticket(kind: Kind) -> Ticket {
        Ticket {
            kind,
            epoch: 0x0123_4567_89ab_cdef,
            seq: 42,
            issued_ms: 1_700_000_000_123,
        }
    }

    #[test]
    fn round_trips_both_kinds() {
        let s = Signer::new(&[7; 32]);
        for kind in [
            Kind::Waiting,
            Kind::Admitted {
                until_ms: 1_700_000_600_000,
            },
        ] {
            let t = ticket(kind);
            let text = s.encode(&t);
            assert!(text.len() < 80, "{text}");
            assert!(
                text.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b))
            );
            assert_eq!(s.decode(text.as_bytes()), Some(t));
        }
    }

    #[test]
    fn another_key_or_any_changed_bit_is_refused() {
        let s = Signer::new(&[7; 32]);
        let text = s.encode(&ticket(Kind::Waiting));
        assert_eq!(Signer::new(&[8; 32]).decode(text.as_bytes()), None);
        let bytes = URL_SAFE_NO_PAD.decode(&text).unwrap();
        for i in 0..bytes.len() {
            for bit in 0..8 {
                let mut altered = bytes.clone();
                altered[i] ^= 1 << bit;
                let altered = URL_SAFE_NO_PAD.encode(&altered);
                assert_eq!(s.decode(altered.as_bytes()), None, "byte {i} bit {bit}");
            }
        }
        // Truncated, extended, garbage.
        assert_eq!(s.decode(&text.as_bytes()[..text.len() - 2]), None);
        assert_eq!(s.decode(format!("{text}AA").as_bytes()), None);
        assert_eq!(s.decode(b"not a ticket"), None);
        assert_eq!(s.decode(&[b'A'; 4096]), None);
    }

    #[test]
    fn finds_our_cookie_among_others() {
        let header = b"a=b; shouhu_waiting_room=one;x=\"y\"; shouhu_waiting_room=\"two\" ;  \
                       shouhu_waiting_roomx=no; bare";
        let found: Vec<&[u8]> = cookie_values(header).collect();
        assert_eq!(found, vec![&b"one"[..], &b"two"[..]]);
        assert_eq!(cookie_values(b"").count(), 0);
    }
}
