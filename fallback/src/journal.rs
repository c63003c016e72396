//! The write journal: declarations the origin cannot take now, stored in a Redis Stream and
//! replayed to it later, each applied exactly once through the origin's `Idempotency-Key`.
//!
//! Keys (`P` is the prefix; one hash tag so a Cluster keeps them in one slot and the
//! dead-letter move is one `MULTI`):
//!
//! | key | type | holds |
//! |---|---|---|
//! | `P:{journal}:entries` | stream + consumer group `replayers` | accepted, not yet applied |
//! | `P:{journal}:dead` | stream | what the origin rejected as invalid, with status and body |
//!
//! Entry fields: `k` idempotency key, `s` subject hex, `a` the original `Authorization`
//! header, `ct` content type, `b` the body, `t` accepted-at seconds.
//!
//! **Exactly once.** [`Journal::append`] answers only after Redis has the entry (the receipt id
//! is the stream id); with Redis down it fails, and the caller answers 503: it never pretends
//! to accept. The [`replayer`] acknowledges and deletes an entry only after the origin
//! answered 2xx, so an entry is replayed until the origin has it; the origin's idempotency key
//! makes the second application a no-op (it must answer a repeated key with the original 2xx).
//! A replayer killed mid-batch leaves its entries pending in the group; it (same consumer name)
//! or another (after `claim_idle`) takes them over.
//!
//! **Credential.** The entry keeps the citizen's own `Authorization` header and replays with
//! it, so the origin applies the declaration as that citizen with no new trust. Trade-offs:
//! Redis now holds bearer tokens until replay (protect it like the session store; entries are
//! deleted once applied), and a declaration that waits longer than the token's lifetime is
//! refused by the origin with 401 and dead-lettered (visible, re-playable by hand) rather than
//! applied. The alternative — a replay service credential plus a subject header — needs the
//! origin to trust the gateway to speak for any subject, which we chose not to require.
//!
//! **Persistence (required).** Redis must run with AOF, `appendonly yes` and `appendfsync
//! everysec` at least (`always` to lose nothing on a power cut): with `everysec` a crash of the
//! whole machine can lose the last second of accepted declarations; a Redis process crash
//! loses nothing. RDB alone loses minutes. The test harness runs exactly this setting.

pub mod replayer;

use std::time::Duration;

use redis::Value;
use redis::streams::StreamRangeReply;
use shouhu_code::SubjectId;
use shouhu_code::time::UnixTime;
use shouhu_config::{RedisUrls, Secret};

use crate::redis_link::{LinkError, LinkStats, LinkTimeouts, RedisLink};

/// The consumer group replayers share.
pub const GROUP: &str = "replayers";
/// Default [`JournalOptions::command_timeout`].
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_millis(100);
/// Default [`JournalOptions::max_body_bytes`].
pub const DEFAULT_MAX_BODY_BYTES: usize = 16 * 1024;

/// Longest `Idempotency-Key`, as the origin's `POST /api/declare` allows.
pub const MAX_IDEMPOTENCY_KEY_CHARS: usize = 128;

/// The key the origin dedups on, or `None` when the origin would refuse it with 400.
///
/// This is the origin's rule: the header's text (printable ASCII, space and tab) without
/// surrounding spaces and tabs, 1 to [`MAX_IDEMPOTENCY_KEY_CHARS`] characters. The journal
/// applies the same rule so that it neither journals a key the origin will refuse (the
/// declaration would only reach the dead letters) nor refuses, while the origin is down, a
/// key the origin takes (`2026-11-29 morning`).
#[must_use]
pub fn idempotency_key(raw: &str) -> Option<&str> {
    let key = raw.trim_matches([' ', '\t']);
    let printable = key
        .bytes()
        .all(|b| b == b'\t' || (b' '..=b'~').contains(&b));
    (printable && (1..=MAX_IDEMPOTENCY_KEY_CHARS).contains(&key.len())).then_some(key)
}

/// Why the journal did not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// Redis is down or slow: nothing was accepted (the caller answers 503).
    #[error("journal unavailable: {0}")]
    Unavailable(String),
    /// The declaration cannot be journalled (missing key, body too large).
    #[error("declaration refused: {0}")]
    Invalid(String),
    /// Redis refused a command or holds something unreadable.
    #[error("journal: {0}")]
    Redis(String),
    /// The URL or password cannot be used.
    #[error("journal: {0}")]
    Config(String),
}

impl From<LinkError> for JournalError {
    fn from(e: LinkError) -> Self {
        if e.is_unavailable() {
            Self::Unavailable(e.to_string())
        } else if let LinkError::Config(c) = e {
            Self::Config(c)
        } else {
            Self::Redis(e.to_string())
        }
    }
}

/// How the journal talks to Redis.
#[derive(Clone, Debug)]
pub struct JournalOptions {
    /// Limit on one command. Default [`DEFAULT_COMMAND_TIMEOUT`].
    pub command_timeout: Duration,
    /// Limit on establishing a connection.
    pub connect_timeout: Duration,
    /// Key prefix, as for the snapshot. Default `shouhu`.
    pub key_prefix: String,
    /// Largest body accepted. Default [`DEFAULT_MAX_BODY_BYTES`].
    pub max_body_bytes: usize,
}

impl Default for JournalOptions {
    fn default() -> Self {
        Self {
            command_timeout: DEFAULT_COMMAND_TIMEOUT,
            connect_timeout: crate::snapshot::DEFAULT_CONNECT_TIMEOUT,
            key_prefix: crate::snapshot::DEFAULT_KEY_PREFIX.to_owned(),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
        }
    }
}

/// A declaration to store and forward.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Declaration {
    /// The `Idempotency-Key` the origin dedups on (client-chosen; see [`idempotency_key`]).
    pub idempotency_key: String,
    /// The verified subject (for inspection and metrics; the origin re-derives it).
    pub subject: SubjectId,
    /// The request's `Authorization` header, replayed as is.
    pub authorization: String,
    /// The request's `Content-Type`.
    pub content_type: String,
    /// The request body.
    pub body: Vec<u8>,
}

/// Proof that a declaration was journalled.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Receipt {
    /// The journal entry id.
    pub receipt: String,
    /// When it was accepted.
    pub accepted_at: UnixTime,
}

/// A journalled declaration as read back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Stream id (the receipt).
    pub id: String,
    /// The declaration.
    pub declaration: Declaration,
    /// When it was accepted.
    pub accepted_at: UnixTime,
}

/// A declaration the origin rejected.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct DeadLetter {
    /// Dead-letter stream id.
    pub id: String,
    /// The original receipt.
    pub receipt: String,
    /// The idempotency key.
    pub idempotency_key: String,
    /// The subject, hex.
    pub subject: String,
    /// The origin's HTTP status.
    pub status: u16,
    /// The origin's answer (truncated).
    pub response: String,
    /// The declaration body (lossy UTF-8).
    pub body: String,
    /// When it was accepted.
    pub accepted_at: UnixTime,
}

/// The journal; cheap to clone.
#[derive(Clone, Debug)]
pub struct Journal {
    pub(crate) link: RedisLink,
    pub(crate) entries_key: String,
    pub(crate) dead_key: String,
    max_body_bytes: usize,
}

impl Journal {
    /// A journal on this Redis or Cluster. An unreachable Redis is not an error here.
    ///
    /// # Errors
    /// [`JournalError::Config`].
    pub async fn connect(
        redis: &RedisUrls,
        password: Option<&Secret>,
        options: JournalOptions,
    ) -> Result<Self, JournalError> {
        let link = RedisLink::open(
            redis,
            password,
            LinkTimeouts {
                command: options.command_timeout,
                connect: options.connect_timeout,
                bulk: options.command_timeout.max(Duration::from_secs(5)),
            },
        )
        .await?;
        let prefix = &options.key_prefix;
        Ok(Self {
            link,
            entries_key: format!("{prefix}:{{journal}}:entries"),
            dead_key: format!("{prefix}:{{journal}}:dead"),
            max_body_bytes: options.max_body_bytes,
        })
    }

    /// Stores a declaration; the receipt means Redis has it.
    ///
    /// # Errors
    /// [`JournalError::Unavailable`] when Redis is down or slow (answer 503),
    /// [`JournalError::Invalid`] for a key the origin would refuse (see [`idempotency_key`]),
    /// a header value with a control character, or an oversized body. The key is stored
    /// trimmed, as the origin reads it.
    pub async fn append(&self, d: &Declaration, now: UnixTime) -> Result<Receipt, JournalError> {
        let Some(key) = idempotency_key(&d.idempotency_key) else {
            return Err(JournalError::Invalid(format!(
                "Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY_CHARS} printable ASCII characters"
            )));
        };
        // A value that cannot be sent as a header would make the replayer retry it forever.
        for (name, value) in [
            ("Authorization", &d.authorization),
            ("Content-Type", &d.content_type),
        ] {
            if value.bytes().any(|b| b.is_ascii_control() && b != b'\t') {
                return Err(JournalError::Invalid(format!(
                    "{name} holds a control character"
                )));
            }
        }
        if d.body.len() > self.max_body_bytes {
            return Err(JournalError::Invalid(format!(
                "body is {} bytes (at most {})",
                d.body.len(),
                self.max_body_bytes
            )));
        }
        let id: String = self
            .link
            .query(
                redis::cmd("XADD")
                    .arg(&self.entries_key)
                    .arg("*")
                    .arg("k")
                    .arg(key)
                    .arg("s")
                    .arg(d.subject.to_hex())
                    .arg("a")
                    .arg(&d.authorization)
                    .arg("ct")
                    .arg(&d.content_type)
                    .arg("b")
                    .arg(&d.body)
                    .arg("t")
                    .arg(now),
            )
            .await?;
        Ok(Receipt {
            receipt: id,
            accepted_at: now,
        })
    }

    /// The Redis commands this journal (and its clones, the replayer's) sent, for metrics.
    #[must_use]
    pub fn link_stats(&self) -> std::sync::Arc<LinkStats> {
        self.link.stats()
    }

    /// Entries not yet applied (in the stream: pending or not yet read).
    ///
    /// # Errors
    /// Redis errors.
    pub async fn backlog(&self) -> Result<u64, JournalError> {
        Ok(self
            .link
            .query(redis::cmd("XLEN").arg(&self.entries_key))
            .await?)
    }

    /// How many declarations were dead-lettered and are still kept.
    ///
    /// # Errors
    /// Redis errors.
    pub async fn dead_letter_count(&self) -> Result<u64, JournalError> {
        Ok(self
            .link
            .query(redis::cmd("XLEN").arg(&self.dead_key))
            .await?)
    }

    /// Up to `max` dead letters, oldest first.
    ///
    /// # Errors
    /// Redis errors.
    pub async fn dead_letters(&self, max: usize) -> Result<Vec<DeadLetter>, JournalError> {
        let reply: StreamRangeReply = self
            .link
            .query(
                redis::cmd("XRANGE")
                    .arg(&self.dead_key)
                    .arg("-")
                    .arg("+")
                    .arg("COUNT")
                    .arg(max.max(1)),
            )
            .await?;
        Ok(reply
            .ids
            .into_iter()
            .map(|item| {
                let text = |name: &str| field_text(&item.map, name);
                DeadLetter {
                    receipt: text("r"),
                    idempotency_key: text("k"),
                    subject: text("s"),
                    status: text("status").parse().unwrap_or(0),
                    response: text("response"),
                    body: text("b"),
                    accepted_at: text("t").parse().unwrap_or(0),
                    id: item.id,
                }
            })
            .collect())
    }

    /// Creates the consumer group if it does not exist.
    pub(crate) async fn ensure_group(&self) -> Result<(), JournalError> {
        let created = self
            .link
            .query::<Value>(
                redis::cmd("XGROUP")
                    .arg("CREATE")
                    .arg(&self.entries_key)
                    .arg(GROUP)
                    .arg("0")
                    .arg("MKSTREAM"),
            )
            .await;
        match created {
            Ok(_) => Ok(()),
            Err(LinkError::Redis(e)) if e.to_string().contains("BUSYGROUP") => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

pub(crate) fn field_text(map: &std::collections::HashMap<String, Value>, name: &str) -> String {
    map.get(name)
        .and_then(|v| redis::from_redis_value::<Vec<u8>>(v.clone()).ok())
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

pub(crate) fn field_bytes(map: &std::collections::HashMap<String, Value>, name: &str) -> Vec<u8> {
    map.get(name)
        .and_then(|v| redis::from_redis_value::<Vec<u8>>(v.clone()).ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idempotency_keys_follow_the_origins_rule() {
        let longest = "k".repeat(MAX_IDEMPOTENCY_KEY_CHARS);
        for (raw, key) in [
            ("a", "a"),
            ("2026-11-29 morning", "2026-11-29 morning"),
            (" \tpadded\t ", "padded"),
            ("3f2c:7e#{x}!", "3f2c:7e#{x}!"),
            (longest.as_str(), longest.as_str()),
        ] {
            assert_eq!(idempotency_key(raw), Some(key), "{raw:?}");
        }
        let too_long = "k".repeat(MAX_IDEMPOTENCY_KEY_CHARS + 1);
        for raw in ["", " \t ", "键", "a\nb", "a\u{7f}", too_long.as_str()] {
            assert_eq!(idempotency_key(raw), None, "{raw:?}");
        }
    }
}
