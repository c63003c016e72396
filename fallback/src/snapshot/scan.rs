//! Walking the whole snapshot, for `shouhu snapshot export` and `stats`: `SCAN` on every
//! master (a Cluster answers `SCAN` per node), then the records in pipelined `GET`s.

use std::time::Duration;

use redis::aio::MultiplexedConnection;
use shouhu_code::time::UnixTime;
use shouhu_code::{Colour, SubjectId};

use super::{Record, SnapshotError, SnapshotStore};
use crate::redis_link::LinkError;

/// Keys asked for per `SCAN` call.
const SCAN_COUNT: usize = 1000;

/// Counts over the whole snapshot.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct SnapshotStats {
    /// Records read.
    pub records: u64,
    /// Green records.
    pub green: u64,
    /// Yellow records.
    pub yellow: u64,
    /// Red records.
    pub red: u64,
    /// Records whose colour is unknown.
    pub unknown: u64,
    /// Keys that did not decode.
    pub corrupt: u64,
    /// The watermark, if set.
    pub watermark: Option<UnixTime>,
    /// The oldest record's as-of.
    pub oldest_as_of: Option<UnixTime>,
    /// The newest record's as-of.
    pub newest_as_of: Option<UnixTime>,
}

/// One item of a walk: a record, or a key that does not decode.
#[derive(Debug)]
pub enum Walked {
    /// A readable record.
    Record(SubjectId, Record),
    /// A key under the record prefix that is not a readable record.
    Corrupt {
        /// The key.
        key: String,
        /// Why.
        reason: String,
    },
}

impl SnapshotStore {
    /// Calls `visit` for every record key, in no particular order. Records written during
    /// the walk may or may not be seen (`SCAN` semantics).
    ///
    /// # Errors
    /// Redis errors.
    pub async fn walk(&self, mut visit: impl FnMut(Walked)) -> Result<(), SnapshotError> {
        let pattern = format!("{}:rec:*", self.keys.prefix);
        let limit = self.options.bulk_timeout;
        for mut conn in self.link.master_connections().await? {
            let mut cursor: u64 = 0;
            loop {
                let (next, keys): (u64, Vec<String>) = timed(
                    limit,
                    redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(&pattern)
                        .arg("COUNT")
                        .arg(SCAN_COUNT)
                        .query_async(&mut conn),
                )
                .await?;
                if !keys.is_empty() {
                    self.fetch(&mut conn, keys, &mut visit).await?;
                }
                if next == 0 {
                    break;
                }
                cursor = next;
            }
        }
        Ok(())
    }

    async fn fetch(
        &self,
        conn: &mut MultiplexedConnection,
        keys: Vec<String>,
        visit: &mut impl FnMut(Walked),
    ) -> Result<(), SnapshotError> {
        let mut pipe = redis::pipe();
        for key in &keys {
            pipe.cmd("GET").arg(key);
        }
        let values: Vec<Option<Vec<u8>>> =
            timed(self.options.bulk_timeout, pipe.query_async(conn)).await?;
        let prefix = format!("{}:rec:", self.keys.prefix);
        for (key, value) in keys.into_iter().zip(values) {
            // Deleted between SCAN and GET.
            let Some(bytes) = value else { continue };
            let subject = key
                .strip_prefix(&prefix)
                .and_then(|h| h.parse::<SubjectId>().ok());
            let walked = match (subject, Record::decode(&bytes)) {
                (Some(s), Ok(r)) => Walked::Record(s, r),
                (None, _) => Walked::Corrupt {
                    reason: "key does not end in a subject id".to_owned(),
                    key,
                },
                (_, Err(reason)) => Walked::Corrupt { key, reason },
            };
            visit(walked);
        }
        Ok(())
    }

    /// Counts records by colour, with the watermark.
    ///
    /// # Errors
    /// Redis errors.
    pub async fn stats(&self) -> Result<SnapshotStats, SnapshotError> {
        let mut stats = SnapshotStats {
            watermark: self.watermark().await?,
            ..SnapshotStats::default()
        };
        self.walk(|w| match w {
            Walked::Record(_, r) => {
                stats.records += 1;
                match r.colour {
                    Colour::Green => stats.green += 1,
                    Colour::Yellow => stats.yellow += 1,
                    Colour::Red => stats.red += 1,
                    Colour::Unknown => stats.unknown += 1,
                }
                stats.oldest_as_of = Some(stats.oldest_as_of.map_or(r.as_of, |o| o.min(r.as_of)));
                stats.newest_as_of = Some(stats.newest_as_of.map_or(r.as_of, |n| n.max(r.as_of)));
            }
            Walked::Corrupt { .. } => stats.corrupt += 1,
        })
        .await?;
        Ok(stats)
    }
}

async fn timed<T>(
    limit: Duration,
    fut: impl Future<Output = Result<T, redis::RedisError>>,
) -> Result<T, SnapshotError> {
    match tokio::time::timeout(limit, fut).await {
        Ok(r) => r.map_err(|e| LinkError::Redis(e).into()),
        Err(_) => Err(LinkError::Timeout(limit).into()),
    }
}
