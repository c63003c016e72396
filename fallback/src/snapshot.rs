//! The snapshot: every subject's last-known colour in Redis (standalone or Cluster), the
//! watermark that says how complete it is, and the change feed that caches follow.
//!
//! Keys (`P` is [`StoreOptions::key_prefix`], default `shouhu`):
//!
//! | key | type | holds |
//! |---|---|---|
//! | `P:rec:<subject hex>` | string | the [`Record`] in its binary form (about 25 bytes) |
//! | `P:watermark` | string | decimal seconds: the snapshot is complete up to this time |
//! | `P:feed` | stream | one entry per record change: `s` subject hex, `c` colour, `a` as-of |
//!
//! Records are one key per subject so a Cluster spreads them over every slot; on a Cluster no
//! operation touches two keys atomically, so no hash tags are needed. A record write is conditional (a
//! script on the one key): it never replaces a newer as-of, and on an equal as-of only a
//! stricter or equal colour replaces the stored one ([`Colour::strictness`](shouhu_code::Colour::strictness)). On a single
//! Redis the same script appends the feed entry, so a record and its entry are written
//! together or not at all: a writer that dies right after a write (an origin crashing just
//! after it published a red) cannot leave a changed record that no cache ever hears of. On a
//! Cluster the two keys live on different nodes, so the entry is appended after the record is
//! written, and a writer that dies in between leaves that gap. If the append fails the caller
//! gets an error and retries. [`SnapshotStore::put`] appends an entry for an identical record
//! too, so such a retry still announces the change (a duplicate entry is harmless).
//! [`SnapshotStore::put_many`] skips identical records, so re-imports and sweeps are idempotent
//! and do not flood the feed; after a failed `put_many` retry the changed subjects with `put`
//! if followers must hear of them at once (the next sweep's watermark covers them otherwise).
//!
//! On a Cluster the record and the watermark live on different nodes; if only the
//! watermark's node is down, a lookup uses the newest watermark this store has read.
//!
//! Every call runs under [`StoreOptions::command_timeout`]; while Redis is down calls fail at
//! once with [`SnapshotError::Unavailable`] and the store reconnects in the background.
//!
//! **Persistence.** The snapshot can be rebuilt by the origin's sweep, so RDB snapshots are
//! enough for it; the watermark keeps a lost snapshot from being trusted (a restored, older
//! watermark only makes the issuer stricter). The write journal in the same Redis needs AOF
//! (see [`crate::journal`]).

pub mod feed;
pub mod record;
pub mod scan;

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use redis::Value;
use redis::cluster_routing::Slot;
use shouhu_code::SubjectId;
use shouhu_code::time::UnixTime;
use shouhu_config::{RedisUrls, Secret};

pub use self::feed::{FeedEntry, FeedEvent, FeedFollower, FeedId, FeedRead};
pub use self::record::{Record, SubjectRecord};
pub use self::scan::{SnapshotStats, Walked};
use crate::redis_link::{LinkError, LinkStats, LinkTimeouts, RedisLink};

/// Default [`StoreOptions::command_timeout`].
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_millis(50);
/// Default [`StoreOptions::connect_timeout`].
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
/// Default [`StoreOptions::bulk_timeout`].
pub const DEFAULT_BULK_TIMEOUT: Duration = Duration::from_secs(5);
/// Default [`StoreOptions::key_prefix`].
pub const DEFAULT_KEY_PREFIX: &str = "shouhu";
/// Default [`StoreOptions::feed_max_len`].
pub const DEFAULT_FEED_MAX_LEN: usize = 1_000_000;

/// Conditional record write: `KEYS[1]` record key, `ARGV[1]` new binary record. Returns 1 if
/// written, 2 if the stored record is identical, 0 if it is newer, or as new and stricter.
/// With `KEYS[2]`, the feed (single Redis only: one node must hold both keys), it also appends
/// the feed entry, atomically with the write: when written, or when identical and `ARGV[2]` is
/// `1`; `ARGV[3]` is the feed cap and `ARGV[4..6]` the entry's subject hex, colour and as-of.
const PUT_SCRIPT: &str = r"
local function put()
  local old = redis.call('GET', KEYS[1])
  local new = ARGV[1]
  if old then
    if old == new then return 2 end
    if string.byte(old, 1) == 1 and string.len(old) >= 10 then
      local function asof(s)
        local n = 0
        for i = 3, 10 do n = n * 256 + string.byte(s, i) end
        return n
      end
      local rank = {[0] = 0, [1] = 2, [2] = 3, [3] = 1}
      local oa, na = asof(old), asof(new)
      if oa > na then return 0 end
      if oa == na and (rank[string.byte(old, 2)] or 3) > (rank[string.byte(new, 2)] or 3) then
        return 0
      end
    end
  end
  redis.call('SET', KEYS[1], new)
  return 1
end
local written = put()
if #KEYS > 1 and (written == 1 or (written == 2 and ARGV[2] == '1')) then
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*',
    's', ARGV[4], 'c', ARGV[5], 'a', ARGV[6])
end
return written
";

/// Watermark advance: `KEYS[1]` watermark key, `ARGV[1]` seconds. Never moves it backwards.
const WATERMARK_SCRIPT: &str = r"
local cur = tonumber(redis.call('GET', KEYS[1]) or '-1')
local new = tonumber(ARGV[1])
if cur == nil or new > cur then
  redis.call('SET', KEYS[1], ARGV[1])
  return 1
end
return 0
";

/// Why a snapshot operation failed.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// Redis is down, slow or unreachable: the caller treats the snapshot as absent.
    #[error("snapshot unavailable: {0}")]
    Unavailable(String),
    /// Redis holds something this code cannot read.
    #[error("snapshot corrupt: {key}: {reason}")]
    Corrupt {
        /// The Redis key.
        key: String,
        /// What is wrong.
        reason: String,
    },
    /// A record that cannot be stored (a code could not carry it).
    #[error("invalid record for subject {subject}: {reason}")]
    Invalid {
        /// The subject, hex.
        subject: String,
        /// What is wrong.
        reason: String,
    },
    /// Redis refused a command for another reason (wrong type, no permission, ...).
    #[error("snapshot: redis refused: {0}")]
    Refused(String),
    /// The URL or password cannot be used.
    #[error("snapshot: {0}")]
    Config(String),
}

impl From<LinkError> for SnapshotError {
    fn from(e: LinkError) -> Self {
        if e.is_unavailable() {
            Self::Unavailable(e.to_string())
        } else if let LinkError::Config(c) = e {
            Self::Config(c)
        } else {
            Self::Refused(e.to_string())
        }
    }
}

/// How a [`SnapshotStore`] talks to Redis.
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// Limit on one point command (a lookup, one write). Default [`DEFAULT_COMMAND_TIMEOUT`].
    pub command_timeout: Duration,
    /// Limit on establishing a connection. Default [`DEFAULT_CONNECT_TIMEOUT`].
    pub connect_timeout: Duration,
    /// Prefix of every key, so tests and tenants can share a Redis. Default
    /// [`DEFAULT_KEY_PREFIX`].
    pub key_prefix: String,
    /// Limit on a batch ([`SnapshotStore::put_many`], one `SCAN` page). Default
    /// [`DEFAULT_BULK_TIMEOUT`].
    pub bulk_timeout: Duration,
    /// Approximate cap on the change feed's length (`XADD MAXLEN ~`). Default
    /// [`DEFAULT_FEED_MAX_LEN`].
    pub feed_max_len: usize,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            command_timeout: DEFAULT_COMMAND_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            key_prefix: DEFAULT_KEY_PREFIX.to_owned(),
            bulk_timeout: DEFAULT_BULK_TIMEOUT,
            feed_max_len: DEFAULT_FEED_MAX_LEN,
        }
    }
}

/// A record lookup and the watermark, read together.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lookup {
    /// The subject's record, if the snapshot has one.
    pub record: Option<Record>,
    /// The time the snapshot is complete up to, if ever set.
    pub watermark: Option<UnixTime>,
}

/// The snapshot in Redis; cheap to clone (one shared connection).
#[derive(Clone, Debug)]
pub struct SnapshotStore {
    link: RedisLink,
    options: std::sync::Arc<StoreOptions>,
    keys: std::sync::Arc<Keys>,
}

#[derive(Debug)]
struct Keys {
    prefix: String,
    watermark: String,
    feed: String,
    /// The newest watermark read, 0 for none: used when a Cluster's watermark node is down
    /// but the record's is up. An older watermark than the real one only makes us stricter.
    last_watermark: std::sync::atomic::AtomicU64,
}

impl SnapshotStore {
    /// A store on this Redis (one URL) or Cluster (several seed URLs). An unreachable Redis
    /// is not an error: the store answers [`SnapshotError::Unavailable`] until it is back.
    ///
    /// # Errors
    /// Only [`SnapshotError::Config`]: a URL or password the client cannot use.
    pub async fn connect(
        redis: &RedisUrls,
        password: Option<&Secret>,
        options: StoreOptions,
    ) -> Result<Self, SnapshotError> {
        let link = RedisLink::open(
            redis,
            password,
            LinkTimeouts {
                command: options.command_timeout,
                connect: options.connect_timeout,
                bulk: options.bulk_timeout,
            },
        )
        .await?;
        let prefix = options.key_prefix.clone();
        Ok(Self {
            link,
            keys: std::sync::Arc::new(Keys {
                watermark: format!("{prefix}:watermark"),
                feed: format!("{prefix}:feed"),
                prefix,
                last_watermark: std::sync::atomic::AtomicU64::new(0),
            }),
            options: std::sync::Arc::new(options),
        })
    }

    /// Whether a Redis connection is up now (for readiness endpoints).
    #[must_use]
    pub fn is_connected(&self) -> bool {
        self.link.is_connected()
    }

    /// The Redis commands this store (and its clones and feed followers) sent, for metrics.
    #[must_use]
    pub fn link_stats(&self) -> std::sync::Arc<LinkStats> {
        self.link.stats()
    }

    /// The Redis key of a subject's record.
    #[must_use]
    pub fn record_key(&self, subject: &SubjectId) -> String {
        format!("{}:rec:{}", self.keys.prefix, subject.to_hex())
    }

    /// Writes one record (unless the stored one is newer, see the module docs) and, if it
    /// changed, appends a change-feed entry.
    ///
    /// # Errors
    /// [`SnapshotError::Invalid`] for a record a code cannot carry; otherwise Redis errors.
    pub async fn put(&self, subject: &SubjectId, record: &Record) -> Result<(), SnapshotError> {
        check(subject, record)?;
        let written: i64 = self
            .link
            .query(&self.put_cmd(subject, record, true))
            .await?;
        if self.link.is_cluster() && (written == 1 || written == 2) {
            self.link
                .query::<Value>(&self.feed_append(subject, record))
                .await?;
        }
        Ok(())
    }

    /// Writes many records, pipelined (one pipeline per hash slot on a Cluster), with the feed
    /// entries of those that changed (on a Cluster appended afterwards). For sweeps and imports.
    ///
    /// # Errors
    /// [`SnapshotError::Invalid`] before anything is written if any record is invalid;
    /// otherwise Redis errors (some records may have been written: retrying is safe).
    pub async fn put_many(&self, items: &[(SubjectId, Record)]) -> Result<(), SnapshotError> {
        self.put_many_counted(items).await.map(|_| ())
    }

    /// [`SnapshotStore::put_many`], returning how many records changed (the rest were
    /// identical or older than what Redis holds).
    ///
    /// # Errors
    /// As [`SnapshotStore::put_many`].
    pub async fn put_many_counted(
        &self,
        items: &[(SubjectId, Record)],
    ) -> Result<usize, SnapshotError> {
        for (subject, record) in items {
            check(subject, record)?;
        }
        let groups: Vec<Vec<usize>> = if self.link.is_cluster() {
            let mut by_slot: HashMap<Slot, Vec<usize>> = HashMap::new();
            for (i, (subject, _)) in items.iter().enumerate() {
                by_slot
                    .entry(Slot::for_key(self.record_key(subject)))
                    .or_default()
                    .push(i);
            }
            by_slot.into_values().collect()
        } else {
            vec![(0..items.len()).collect()]
        };
        let mut tasks = tokio::task::JoinSet::new();
        for group in groups {
            let mut pipe = redis::pipe();
            for &i in &group {
                let (subject, record) = &items[i];
                pipe.add_command(self.put_cmd(subject, record, false));
            }
            let link = self.link.clone();
            let limit = self.options.bulk_timeout;
            tasks.spawn(async move { (group, link.pipe(&pipe, limit).await) });
        }
        let mut changed = Vec::new();
        let mut first_error = None;
        while let Some(joined) = tasks.join_next().await {
            let Ok((group, result)) = joined else {
                first_error.get_or_insert(SnapshotError::Unavailable(
                    "a write task was cancelled".to_owned(),
                ));
                continue;
            };
            match result {
                Ok(values) => {
                    for (i, v) in group.into_iter().zip(values) {
                        if matches!(v, Value::Int(1)) {
                            changed.push(i);
                        }
                    }
                }
                Err(e) => {
                    first_error.get_or_insert(e.into());
                }
            }
        }
        // On a Cluster, feed entries for what did change, even if another group failed: those
        // records are written and followers must hear of them. A single Redis has appended
        // them already, in the same scripts.
        if self.link.is_cluster() && !changed.is_empty() {
            changed.sort_unstable();
            let mut pipe = redis::pipe();
            for &i in &changed {
                let (subject, record) = &items[i];
                pipe.add_command(self.feed_append(subject, record));
            }
            self.link.pipe(&pipe, self.options.bulk_timeout).await?;
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(changed.len()),
        }
    }

    /// Advances the watermark to `complete_up_to`; an older value is ignored.
    ///
    /// # Errors
    /// Redis errors.
    pub async fn set_watermark(&self, complete_up_to: UnixTime) -> Result<(), SnapshotError> {
        self.link
            .query::<i64>(
                redis::cmd("EVAL")
                    .arg(WATERMARK_SCRIPT)
                    .arg(1)
                    .arg(&self.keys.watermark)
                    .arg(complete_up_to),
            )
            .await?;
        Ok(())
    }

    /// The subject's record and the watermark: one round trip on a single Redis, two
    /// concurrent ones on a Cluster.
    ///
    /// # Errors
    /// Redis errors, or [`SnapshotError::Corrupt`].
    pub async fn get(&self, subject: &SubjectId) -> Result<Lookup, SnapshotError> {
        let key = self.record_key(subject);
        let (record, watermark): (Option<Vec<u8>>, Option<String>) = if self.link.is_cluster() {
            let get_record = redis::cmd("GET").arg(&key).clone();
            let get_watermark = redis::cmd("GET").arg(&self.keys.watermark).clone();
            let (r, w) = tokio::join!(
                self.link.query(&get_record),
                self.link.query::<Option<String>>(&get_watermark)
            );
            let w = match w {
                Ok(w) => w,
                Err(e) => match self.keys.last_watermark.load(Ordering::Relaxed) {
                    0 => return Err(e.into()),
                    cached => Some(cached.to_string()),
                },
            };
            (r?, w)
        } else {
            let mut pipe = redis::pipe();
            pipe.cmd("GET")
                .arg(&key)
                .cmd("GET")
                .arg(&self.keys.watermark);
            let values = self.link.pipe(&pipe, self.link.command_timeout()).await?;
            let mut values = values.into_iter();
            let r = values.next().unwrap_or(Value::Nil);
            let w = values.next().unwrap_or(Value::Nil);
            (
                redis::from_redis_value(r).map_err(|e| corrupt(&key, e))?,
                redis::from_redis_value(w).map_err(|e| corrupt(&self.keys.watermark, e))?,
            )
        };
        let record = record
            .map(|bytes| Record::decode(&bytes).map_err(|reason| corrupt(&key, reason)))
            .transpose()?;
        Ok(Lookup {
            record,
            watermark: self.parse_watermark(watermark)?,
        })
    }

    /// The watermark alone.
    ///
    /// # Errors
    /// Redis errors, or [`SnapshotError::Corrupt`].
    pub async fn watermark(&self) -> Result<Option<UnixTime>, SnapshotError> {
        let text: Option<String> = self
            .link
            .query(redis::cmd("GET").arg(&self.keys.watermark))
            .await?;
        self.parse_watermark(text)
    }

    fn parse_watermark(&self, text: Option<String>) -> Result<Option<UnixTime>, SnapshotError> {
        let watermark = text
            .map(|t| {
                t.parse::<UnixTime>()
                    .map_err(|_| corrupt(&self.keys.watermark, format!("not seconds: {t:?}")))
            })
            .transpose()?;
        if let Some(w) = watermark {
            self.keys.last_watermark.fetch_max(w, Ordering::Relaxed);
        }
        Ok(watermark)
    }

    /// The conditional write of one record; on a single Redis with its feed entry (appended
    /// for an identical record too if `announce_identical`).
    fn put_cmd(
        &self,
        subject: &SubjectId,
        record: &Record,
        announce_identical: bool,
    ) -> redis::Cmd {
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(PUT_SCRIPT);
        if self.link.is_cluster() {
            cmd.arg(1)
                .arg(self.record_key(subject))
                .arg(record.encode());
        } else {
            cmd.arg(2)
                .arg(self.record_key(subject))
                .arg(&self.keys.feed)
                .arg(record.encode())
                .arg(if announce_identical { "1" } else { "0" })
                .arg(self.options.feed_max_len)
                .arg(subject.to_hex())
                .arg(record.colour.as_str())
                .arg(record.as_of);
        }
        cmd
    }

    fn feed_append(&self, subject: &SubjectId, record: &Record) -> redis::Cmd {
        let mut cmd = redis::cmd("XADD");
        cmd.arg(&self.keys.feed)
            .arg("MAXLEN")
            .arg("~")
            .arg(self.options.feed_max_len)
            .arg("*")
            .arg("s")
            .arg(subject.to_hex())
            .arg("c")
            .arg(record.colour.as_str())
            .arg("a")
            .arg(record.as_of);
        cmd
    }
}

fn check(subject: &SubjectId, record: &Record) -> Result<(), SnapshotError> {
    record.check().map_err(|reason| SnapshotError::Invalid {
        subject: subject.to_hex(),
        reason,
    })
}

fn corrupt(key: &str, reason: impl std::fmt::Display) -> SnapshotError {
    SnapshotError::Corrupt {
        key: key.to_owned(),
        reason: reason.to_string(),
    }
}
