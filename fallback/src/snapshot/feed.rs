//! The change feed: every record change, in order, in a capped Redis Stream, so that proxy
//! caches drop a cached code as soon as the subject's colour changes.
//!
//! A follower starts at [`SnapshotStore::feed_tail`] with an empty cache, then calls
//! [`SnapshotStore::read_feed`] with the last id it saw. The stream is trimmed to about
//! [`StoreOptions::feed_max_len`](super::StoreOptions::feed_max_len) entries, so a follower
//! that falls far enough behind (or a Redis that lost the stream) leaves a gap no read can
//! bridge; `read_feed` then answers [`FeedRead::Gap`] and the follower must drop its whole
//! cache and carry on from the id given.
//!
//! Gap detection: we never delete single entries, only trim from the head, so entries after
//! the follower's id were lost exactly when its id is older than the stream's first entry
//! (reported as a gap even in the rare case where only the follower's own entry went), or
//! when the stream's ids went backwards (Redis lost the stream). A follower at `0-0` (it
//! started on an empty stream) has missed entries when more were ever added than remain
//! (`entries-added`, Redis 7.0+; on older Redis: when the stream is at its cap).

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use redis::Value;
use redis::streams::StreamRangeReply;
use shouhu_code::time::UnixTime;
use shouhu_code::{Colour, SubjectId};

use super::{SnapshotError, SnapshotStore, corrupt};
use crate::redis_link::LinkError;

/// A stream entry id, `milliseconds-sequence`; ordered as Redis orders them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct FeedId {
    /// Milliseconds part.
    pub ms: u64,
    /// Sequence part.
    pub seq: u64,
}

impl FeedId {
    /// `0-0`: before every entry.
    pub const ZERO: Self = Self { ms: 0, seq: 0 };
}

impl fmt::Display for FeedId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

impl FromStr for FeedId {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (ms, seq) = s.split_once('-').unwrap_or((s, "0"));
        Ok(Self {
            ms: ms.parse().map_err(|_| format!("bad stream id {s:?}"))?,
            seq: seq.parse().map_err(|_| format!("bad stream id {s:?}"))?,
        })
    }
}

/// One record change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FeedEntry {
    /// The entry's id; pass the last one to the next read.
    pub id: FeedId,
    /// Whose record changed.
    pub subject: SubjectId,
    /// The new colour.
    pub colour: Colour,
    /// The new record's as-of.
    pub as_of: UnixTime,
}

/// What a follower learns from one read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FeedRead {
    /// The changes after the given id, oldest first (possibly none), and the id to pass next.
    Entries {
        /// The changes.
        entries: Vec<FeedEntry>,
        /// The id to resume from.
        next: FeedId,
    },
    /// Changes after the given id were trimmed or lost: drop every cached code, then resume
    /// from `resume_from`.
    Gap {
        /// The id to resume from (the stream's newest).
        resume_from: FeedId,
    },
}

/// What a cache following the feed must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FeedEvent {
    /// Drop the cached codes of these subjects (possibly none).
    Changes(Vec<FeedEntry>),
    /// Drop every cached code: changes may have been missed (first poll, or a gap).
    Reset,
}

/// A cursor on the change feed for one cache: call [`FeedFollower::poll`] every few hundred
/// milliseconds. While Redis is down it returns errors; the origin cannot write the snapshot
/// then either, so nothing is missed, and a Redis that lost the stream shows up as a gap.
#[derive(Clone, Debug)]
pub struct FeedFollower {
    store: SnapshotStore,
    last: Option<FeedId>,
    batch: usize,
}

impl FeedFollower {
    /// A follower reading up to `batch` entries per poll. Its first poll answers
    /// [`FeedEvent::Reset`] and positions it at the feed's end.
    #[must_use]
    pub fn new(store: SnapshotStore, batch: usize) -> Self {
        Self {
            store,
            last: None,
            batch: batch.max(1),
        }
    }

    /// The id of the last entry seen.
    #[must_use]
    pub fn position(&self) -> Option<FeedId> {
        self.last
    }

    /// The next changes, or a reset.
    ///
    /// # Errors
    /// Redis errors; the position is kept, so the next poll resumes where this one failed.
    pub async fn poll(&mut self) -> Result<FeedEvent, SnapshotError> {
        let Some(after) = self.last else {
            self.last = Some(self.store.feed_tail().await?);
            return Ok(FeedEvent::Reset);
        };
        match self.store.read_feed(after, self.batch).await? {
            FeedRead::Entries { entries, next } => {
                self.last = Some(next);
                Ok(FeedEvent::Changes(entries))
            }
            FeedRead::Gap { resume_from } => {
                self.last = Some(resume_from);
                Ok(FeedEvent::Reset)
            }
        }
    }
}

/// The parts of `XINFO STREAM` we use.
struct StreamInfo {
    length: u64,
    entries_added: Option<u64>,
    last_generated: FeedId,
    first_entry: Option<FeedId>,
}

impl SnapshotStore {
    /// The newest feed id (`0-0` for an empty or missing stream): where a new follower starts.
    ///
    /// # Errors
    /// Redis errors, or [`SnapshotError::Corrupt`].
    pub async fn feed_tail(&self) -> Result<FeedId, SnapshotError> {
        Ok(self
            .stream_info()
            .await?
            .map_or(FeedId::ZERO, |i| i.last_generated))
    }

    /// Up to `max` changes after `after`, or [`FeedRead::Gap`] if some were lost.
    ///
    /// # Errors
    /// Redis errors, or [`SnapshotError::Corrupt`].
    pub async fn read_feed(&self, after: FeedId, max: usize) -> Result<FeedRead, SnapshotError> {
        let Some(info) = self.stream_info().await? else {
            return Ok(if after == FeedId::ZERO {
                FeedRead::Entries {
                    entries: Vec::new(),
                    next: after,
                }
            } else {
                // The stream is gone (Redis lost it): nothing after `after` can be trusted.
                FeedRead::Gap {
                    resume_from: FeedId::ZERO,
                }
            });
        };
        let reset = after > info.last_generated;
        let trimmed = if after == FeedId::ZERO {
            match info.entries_added {
                Some(added) => added > info.length,
                None => info.length >= self.options.feed_max_len as u64,
            }
        } else {
            match info.first_entry {
                Some(first) => after < first,
                None => info.last_generated > after,
            }
        };
        if reset || trimmed {
            return Ok(FeedRead::Gap {
                resume_from: info.last_generated,
            });
        }
        let reply: StreamRangeReply = self
            .link
            .query(
                redis::cmd("XRANGE")
                    .arg(&self.keys.feed)
                    .arg(format!("({after}"))
                    .arg("+")
                    .arg("COUNT")
                    .arg(max.max(1)),
            )
            .await?;
        let mut entries = Vec::with_capacity(reply.ids.len());
        for item in reply.ids {
            let id: FeedId = item.id.parse().map_err(|e| corrupt(&self.keys.feed, e))?;
            let field = |name: &str| -> Result<String, SnapshotError> {
                item.map
                    .get(name)
                    .and_then(|v| redis::from_redis_value::<String>(v.clone()).ok())
                    .ok_or_else(|| corrupt(&self.keys.feed, format!("entry {id}: no field {name}")))
            };
            let bad = |e: String| corrupt(&self.keys.feed, format!("entry {id}: {e}"));
            entries.push(FeedEntry {
                id,
                subject: field("s")?.parse().map_err(|e| bad(format!("{e}")))?,
                colour: field("c")?.parse().map_err(|e| bad(format!("{e}")))?,
                as_of: field("a")?
                    .parse()
                    .map_err(|_| bad("as-of is not seconds".to_owned()))?,
            });
        }
        let next = entries.last().map_or(after, |e| e.id);
        Ok(FeedRead::Entries { entries, next })
    }

    async fn stream_info(&self) -> Result<Option<StreamInfo>, SnapshotError> {
        let value = match self
            .link
            .query::<Value>(redis::cmd("XINFO").arg("STREAM").arg(&self.keys.feed))
            .await
        {
            Ok(v) => v,
            Err(LinkError::Redis(e)) if e.to_string().contains("no such key") => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let fields = pairs(value);
        let id_of = |name: &str| -> Result<Option<FeedId>, SnapshotError> {
            match fields.get(name) {
                None | Some(Value::Nil) => Ok(None),
                Some(Value::Array(entry)) => match entry.first() {
                    Some(v) => id_value(v).map(Some),
                    None => Ok(None),
                },
                Some(v) => id_value(v).map(Some),
            }
            .map_err(|e| corrupt(&self.keys.feed, format!("XINFO {name}: {e}")))
        };
        let number = |name: &str| -> Option<u64> {
            fields
                .get(name)
                .and_then(|v| redis::from_redis_value::<u64>(v.clone()).ok())
        };
        Ok(Some(StreamInfo {
            length: number("length").unwrap_or(0),
            entries_added: number("entries-added"),
            last_generated: id_of("last-generated-id")?.unwrap_or(FeedId::ZERO),
            first_entry: id_of("first-entry")?,
        }))
    }
}

fn id_value(v: &Value) -> Result<FeedId, String> {
    let text: String = redis::from_redis_value(v.clone()).map_err(|e| e.to_string())?;
    text.parse()
}

/// `XINFO` answers a flat array (RESP2) or a map (RESP3) of name, value pairs.
fn pairs(value: Value) -> HashMap<String, Value> {
    let mut out = HashMap::new();
    match value {
        Value::Array(items) => {
            let mut it = items.into_iter();
            while let (Some(k), Some(v)) = (it.next(), it.next()) {
                if let Ok(k) = redis::from_redis_value::<String>(k) {
                    out.insert(k, v);
                }
            }
        }
        Value::Map(items) => {
            for (k, v) in items {
                if let Ok(k) = redis::from_redis_value::<String>(k) {
                    out.insert(k, v);
                }
            }
        }
        _ => {}
    }
    out
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn ids_order_like_redis() {
        let a: FeedId = "1700000000000-5".parse().unwrap();
        let b: FeedId = "1700000000001-0".parse().unwrap();
        assert!(a < b);
        assert!(FeedId::ZERO < a);
        assert_eq!(a.to_string(), "1700000000000-5");
        assert!("x-1".parse::<FeedId>().is_err());
    }
}
