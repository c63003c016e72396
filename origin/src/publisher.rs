//! The snapshot publisher: keeps everyone's last-known colour in Redis, through the fallback
//! crate's snapshot module (which owns the record layout, the keys and the change feed).
//!
//! Citizen requests never wait for Redis: a colour change is handed to [`Publisher::publish`]
//! (a non-blocking channel send) and a background task writes it, coalescing several changes
//! of one person into the newest, batching, and retrying with back-off while Redis is down.
//! A periodic full sweep re-publishes everyone (and once at start).
//!
//! The watermark ("the snapshot is complete up to T") advances on a heartbeat, only to just
//! before the oldest change not yet in Redis — counting changes still being computed
//! ([`Publisher::begin`] hands out a guard for those) — so a reader never trusts a snapshot
//! that is missing a change.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use shouhu_code::time::{UnixTime, now};
use shouhu_code::{Colour, SubjectId};
use shouhu_fallback::{Record, SnapshotStore};
use tokio::sync::mpsc;

use crate::store::Store;

/// Longest pause between retries while Redis is down.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Most records in one write.
const BATCH: usize = 1000;
/// How often records held back for the next second are looked at again.
const HELD_RETRY: Duration = Duration::from_millis(100);

/// Counters for the admin status page and metrics.
#[derive(Debug, Default)]
pub struct PublisherStats {
    /// Records written.
    pub published: AtomicU64,
    /// Failed writes (each retried).
    pub failures: AtomicU64,
    /// Records waiting.
    pub pending: AtomicU64,
    /// Last watermark written.
    pub watermark: AtomicU64,
}

/// A snapshot of [`PublisherStats`].
#[derive(Debug, Clone, Copy, Serialize)]
pub struct PublisherStatus {
    /// Whether a Redis is configured.
    pub enabled: bool,
    /// Records written.
    pub published: u64,
    /// Failed writes.
    pub failures: u64,
    /// Records waiting.
    pub pending: u64,
    /// Last watermark written (0 = none).
    pub watermark: UnixTime,
}

struct Item {
    subject: SubjectId,
    record: Record,
    /// The watermark must stay before this until the record is out.
    since: UnixTime,
}

/// Hands colour changes to the background writer. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Publisher {
    tx: Option<mpsc::UnboundedSender<Item>>,
    in_flight: Arc<InFlight>,
    stats: Arc<PublisherStats>,
}

impl std::fmt::Debug for Item {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Item")
            .field("subject", &self.subject)
            .finish()
    }
}

/// Colour computations in progress, by start time, so the watermark waits for them.
#[derive(Debug, Default)]
struct InFlight {
    next: AtomicU64,
    started: Mutex<BTreeMap<u64, UnixTime>>,
}

/// Held while a colour is being computed; the watermark stays before its start.
#[derive(Debug)]
pub struct InFlightGuard {
    id: u64,
    in_flight: Arc<InFlight>,
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        if let Ok(mut m) = self.in_flight.started.lock() {
            m.remove(&self.id);
        }
    }
}

impl InFlight {
    fn oldest(&self) -> Option<UnixTime> {
        self.started
            .lock()
            .ok()
            .and_then(|m| m.values().min().copied())
    }
}

impl Publisher {
    /// A publisher that drops everything (no Redis configured).
    #[must_use]
    pub fn disabled() -> Self {
        Self {
            tx: None,
            in_flight: Arc::default(),
            stats: Arc::default(),
        }
    }

    /// Starts the background writer on `snapshot`; it ends when every `Publisher` clone is
    /// dropped or `shutdown` fires.
    pub fn start(
        snapshot: SnapshotStore,
        store: Store,
        heartbeat: Duration,
        sweep_every: Duration,
        shutdown: tokio::sync::watch::Receiver<bool>,
    ) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let publisher = Self {
            tx: Some(tx),
            in_flight: Arc::default(),
            stats: Arc::default(),
        };
        let writer = Writer {
            snapshot,
            store,
            rx,
            pending: HashMap::new(),
            in_flight: Arc::clone(&publisher.in_flight),
            stats: Arc::clone(&publisher.stats),
            last_watermark: 0,
            recent: HashMap::new(),
        };
        tokio::spawn(writer.run(heartbeat, sweep_every, shutdown));
        publisher
    }

    /// Marks the start of a colour computation whose result may be published.
    #[must_use]
    pub fn begin(&self) -> InFlightGuard {
        let id = self.in_flight.next.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut m) = self.in_flight.started.lock() {
            m.insert(id, now());
        }
        InFlightGuard {
            id,
            in_flight: Arc::clone(&self.in_flight),
        }
    }

    /// Queues a subject's new record; never blocks.
    pub fn publish(&self, subject: SubjectId, record: Record) {
        if let Some(tx) = &self.tx {
            let since = record.as_of;
            self.stats.pending.fetch_add(1, Ordering::Relaxed);
            if tx
                .send(Item {
                    subject,
                    record,
                    since,
                })
                .is_err()
            {
                self.stats.pending.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }

    /// Counters.
    #[must_use]
    pub fn status(&self) -> PublisherStatus {
        PublisherStatus {
            enabled: self.tx.is_some(),
            published: self.stats.published.load(Ordering::Relaxed),
            failures: self.stats.failures.load(Ordering::Relaxed),
            pending: self.stats.pending.load(Ordering::Relaxed),
            watermark: self.stats.watermark.load(Ordering::Relaxed),
        }
    }
}

struct Writer {
    snapshot: SnapshotStore,
    store: Store,
    rx: mpsc::UnboundedReceiver<Item>,
    /// Newest record per subject not yet written, with the oldest `since` among the changes
    /// it stands for.
    pending: HashMap<SubjectId, (Record, UnixTime)>,
    in_flight: Arc<InFlight>,
    stats: Arc<PublisherStats>,
    last_watermark: UnixTime,
    /// What was written in the last seconds, per subject: as-of and colour.
    recent: HashMap<SubjectId, (UnixTime, Colour)>,
}

impl Writer {
    async fn run(
        mut self,
        heartbeat: Duration,
        sweep_every: Duration,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        let mut beat = tokio::time::interval(heartbeat);
        beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut sweep = tokio::time::interval(sweep_every);
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut backoff = Duration::ZERO;
        let mut held = false;
        loop {
            if backoff.is_zero() {
                tokio::select! {
                    item = self.rx.recv() => match item {
                        Some(item) => self.take(item),
                        None => return,
                    },
                    _ = beat.tick() => {}
                    _ = sweep.tick() => self.sweep().await,
                    () = tokio::time::sleep(HELD_RETRY), if held => {}
                    _ = shutdown.changed() => return,
                }
            } else {
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    _ = shutdown.changed() => return,
                }
            }
            while let Ok(item) = self.rx.try_recv() {
                self.take(item);
            }
            match self.flush().await {
                Ok(still_held) => {
                    held = still_held;
                    backoff = Duration::ZERO;
                    self.advance_watermark().await;
                }
                Err(e) => {
                    self.stats.failures.fetch_add(1, Ordering::Relaxed);
                    backoff = (backoff * 2).clamp(Duration::from_millis(100), MAX_BACKOFF);
                    tracing::debug!(error = %e, retry_in = ?backoff, "snapshot publish failed");
                }
            }
        }
    }

    fn take(&mut self, item: Item) {
        self.stats.pending.fetch_sub(1, Ordering::Relaxed);
        self.pending
            .entry(item.subject)
            .and_modify(|(record, since)| {
                *since = (*since).min(item.since);
                if item.record.as_of >= record.as_of {
                    *record = item.record.clone();
                }
            })
            .or_insert((item.record, item.since));
    }

    async fn sweep(&mut self) {
        let started = now();
        match self.store.all_colours().await {
            Ok(rows) => {
                let count = rows.len();
                for (person, row) in rows {
                    let record = Record {
                        colour: row.colour,
                        as_of: row.as_of,
                        ruleset_version: row.ruleset_version,
                        masked_name: person.masked_name,
                        id_last4: person.id_last4,
                    };
                    self.stats.pending.fetch_add(1, Ordering::Relaxed);
                    self.take(Item {
                        subject: person.subject,
                        record,
                        since: started,
                    });
                }
                tracing::info!(records = count, "snapshot sweep queued");
            }
            Err(e) => tracing::warn!(error = %e, "snapshot sweep could not read the database"),
        }
    }

    /// The record to write for a subject now, or `None` to hold it back.
    ///
    /// The snapshot keeps the stricter colour when two records carry the same as-of second,
    /// so a relaxation computed in the same second as the stricter record it replaces would
    /// be dropped. It is written one second later instead, as of that second: still true
    /// then, unless a newer change (which replaces it here) came in between.
    fn ready(&self, subject: SubjectId, record: &Record, t: UnixTime) -> Option<Record> {
        match self.recent.get(&subject) {
            Some((as_of, colour))
                if *as_of >= record.as_of && record.colour.strictness() < colour.strictness() =>
            {
                let later = as_of + 1;
                (t >= later).then(|| Record {
                    as_of: later,
                    ..record.clone()
                })
            }
            _ => Some(record.clone()),
        }
    }

    /// Writes every record that is ready; `true` if some are held back.
    async fn flush(&mut self) -> Result<bool, shouhu_fallback::SnapshotError> {
        let t = now();
        self.recent.retain(|_, (as_of, _)| *as_of + 2 >= t);
        let mut ready = Vec::new();
        let mut held = false;
        for (subject, (record, _)) in &self.pending {
            match self.ready(*subject, record, t) {
                Some(r) => ready.push((*subject, record.clone(), r)),
                None => held = true,
            }
        }
        for chunk in ready.chunks(BATCH) {
            let batch: Vec<(SubjectId, Record)> =
                chunk.iter().map(|(s, _, r)| (*s, r.clone())).collect();
            let result = if batch.len() == 1 {
                self.snapshot.put(&batch[0].0, &batch[0].1).await
            } else {
                self.snapshot.put_many(&batch).await
            };
            match result {
                Ok(()) => {}
                Err(shouhu_fallback::SnapshotError::Invalid { subject, reason }) => {
                    // A record no code could carry; retrying cannot help.
                    tracing::error!(%subject, %reason, "snapshot record refused");
                }
                Err(e) => return Err(e),
            }
            for (subject, queued, written) in chunk {
                if self.pending.get(subject).is_some_and(|(r, _)| r == queued) {
                    self.pending.remove(subject);
                }
                self.recent
                    .insert(*subject, (written.as_of, written.colour));
                self.stats.published.fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(held)
    }

    async fn advance_watermark(&mut self) {
        let mut bound = now();
        if let Some(t) = self.pending.values().map(|(_, since)| *since).min() {
            bound = bound.min(t);
        }
        if let Some(t) = self.in_flight.oldest() {
            bound = bound.min(t);
        }
        let wm = bound.saturating_sub(1);
        if wm <= self.last_watermark {
            return;
        }
        match self.snapshot.set_watermark(wm).await {
            Ok(()) => {
                self.last_watermark = wm;
                self.stats.watermark.store(wm, Ordering::Relaxed);
            }
            Err(e) => {
                self.stats.failures.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(error = %e, "snapshot watermark failed");
            }
        }
    }
}

#[cfg(test)]
#[path = "publisher/tests.rs"]
mod tests;
