//! The replayer: drains the journal to the origin's `POST /api/declare` at a bounded rate.
//!
//! Each round it takes, in order: its own pending entries (delivered before a crash or an
//! error, never acknowledged), entries another replayer left pending longer than
//! `claim_idle`, then new entries. Per entry the origin's answer decides:
//!
//! | origin answers | replayer does |
//! |---|---|
//! | 2xx | acknowledge and delete the entry (applied) |
//! | 408, 425, 429, 5xx, timeout, no connection | keep it, back off, retry (the origin is busy) |
//! | any other 4xx (400, 401, 403, 409, 422, ...) | move it to the dead letters, count it |
//!
//! Acknowledging and dead-lettering are single `MULTI`s in the journal's one hash slot.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use redis::Value;
use redis::streams::{StreamAutoClaimReply, StreamId, StreamReadReply};
use shouhu_code::SubjectId;

use super::{Declaration, Entry, GROUP, Journal, JournalError, field_bytes, field_text};

/// Longest origin answer kept in a dead letter.
const MAX_RESPONSE_KEPT: usize = 2048;

/// How the replayer runs.
#[derive(Clone, Debug)]
pub struct ReplayerOptions {
    /// The origin's base URL, e.g. `http://origin:8080`; declarations go to `{origin}/api/declare`.
    pub origin: String,
    /// This replayer's consumer name; keep it stable across restarts so it resumes its own
    /// pending entries at once.
    pub consumer: String,
    /// Most declarations sent per second.
    pub rate_per_sec: u32,
    /// Entries taken per round.
    pub batch: usize,
    /// Limit on one origin request.
    pub request_timeout: Duration,
    /// First back-off after a failure; doubles up to `max_backoff`.
    pub min_backoff: Duration,
    /// Longest back-off.
    pub max_backoff: Duration,
    /// Entries pending this long at another consumer are taken over.
    pub claim_idle: Duration,
    /// Pause when the journal is empty.
    pub idle_poll: Duration,
}

impl Default for ReplayerOptions {
    fn default() -> Self {
        Self {
            origin: "http://127.0.0.1:8080".to_owned(),
            consumer: "replayer-1".to_owned(),
            rate_per_sec: 100,
            batch: 32,
            request_timeout: Duration::from_secs(2),
            min_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(10),
            claim_idle: Duration::from_secs(30),
            idle_poll: Duration::from_millis(100),
        }
    }
}

/// Counters since start (the proxy exports them as `shouhu_journal_*_total`).
#[derive(Debug, Default)]
pub struct ReplayCounters {
    /// Declarations the origin accepted.
    pub applied: AtomicU64,
    /// Declarations moved to the dead letters.
    pub dead_lettered: AtomicU64,
    /// Attempts that will be retried (origin busy or unreachable).
    pub retries: AtomicU64,
    /// Journal (Redis) errors.
    pub journal_errors: AtomicU64,
}

/// What one origin request said.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Applied,
    Retry(String),
    Rejected { status: u16, response: String },
}

/// Replays the journal to the origin.
#[derive(Clone, Debug)]
pub struct Replayer {
    journal: Journal,
    http: reqwest::Client,
    options: Arc<ReplayerOptions>,
    counters: Arc<ReplayCounters>,
}

impl Replayer {
    /// A replayer of `journal` to the origin in `options`.
    ///
    /// # Errors
    /// The HTTP client cannot be built.
    pub fn new(journal: Journal, options: ReplayerOptions) -> Result<Self, JournalError> {
        let http = reqwest::Client::builder()
            .timeout(options.request_timeout)
            .connect_timeout(options.request_timeout)
            .build()
            .map_err(|e| JournalError::Config(format!("http client: {e}")))?;
        Ok(Self {
            journal,
            http,
            options: Arc::new(options),
            counters: Arc::new(ReplayCounters::default()),
        })
    }

    /// The counters.
    #[must_use]
    pub fn counters(&self) -> Arc<ReplayCounters> {
        Arc::clone(&self.counters)
    }

    /// Replays until `shutdown` completes, backing off on failures.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        self.run_when(shutdown, || true).await;
    }

    /// Like [`Replayer::run`], but a round starts only while `origin_ok()` says the origin
    /// may be called (the proxy's breaker is closed); otherwise it waits `idle_poll`.
    pub async fn run_when(self, shutdown: impl Future<Output = ()>, origin_ok: impl Fn() -> bool) {
        tokio::pin!(shutdown);
        let mut backoff = self.options.min_backoff;
        loop {
            if !origin_ok() {
                tokio::select! {
                    () = &mut shutdown => return,
                    () = tokio::time::sleep(self.options.idle_poll) => continue,
                }
            }
            let pause = match self.round().await {
                Ok(Round::Busy) => {
                    backoff = self.options.min_backoff;
                    Duration::ZERO
                }
                Ok(Round::Idle) => {
                    backoff = self.options.min_backoff;
                    self.options.idle_poll
                }
                Ok(Round::OriginBusy) => next_backoff(&mut backoff, self.options.max_backoff),
                Err(e) => {
                    self.counters.journal_errors.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(error = %e, "journal replay round failed");
                    next_backoff(&mut backoff, self.options.max_backoff)
                }
            };
            tokio::select! {
                () = &mut shutdown => return,
                () = tokio::time::sleep(pause) => {}
            }
        }
    }

    /// One round: take a batch and send it. Public for tests and one-shot drains.
    ///
    /// # Errors
    /// Journal (Redis) errors; the round's unacknowledged entries stay pending.
    pub async fn round(&self) -> Result<Round, JournalError> {
        self.journal.ensure_group().await?;
        let entries = self.take().await?;
        if entries.is_empty() {
            return Ok(Round::Idle);
        }
        let gap = Duration::from_secs_f64(1.0 / f64::from(self.options.rate_per_sec.max(1)));
        let mut next_send = tokio::time::Instant::now();
        for entry in entries {
            tokio::time::sleep_until(next_send).await;
            next_send = tokio::time::Instant::now() + gap;
            match self.send(&entry.declaration).await {
                Outcome::Applied => {
                    self.finish(&entry.id, None).await?;
                    self.counters.applied.fetch_add(1, Ordering::Relaxed);
                }
                Outcome::Rejected { status, response } => {
                    tracing::warn!(status, receipt = %entry.id, "origin rejected a journalled declaration; dead-lettered");
                    self.finish(&entry.id, Some((&entry, status, &response)))
                        .await?;
                    self.counters.dead_lettered.fetch_add(1, Ordering::Relaxed);
                }
                Outcome::Retry(why) => {
                    tracing::debug!(reason = %why, "origin busy; replay backs off");
                    self.counters.retries.fetch_add(1, Ordering::Relaxed);
                    return Ok(Round::OriginBusy);
                }
            }
        }
        Ok(Round::Busy)
    }

    async fn take(&self) -> Result<Vec<Entry>, JournalError> {
        let j = &self.journal;
        let batch = self.options.batch.max(1);
        // Our own pending entries first (a previous run of ours died or erred mid-batch).
        let own: Option<StreamReadReply> = j
            .link
            .query(
                redis::cmd("XREADGROUP")
                    .arg("GROUP")
                    .arg(GROUP)
                    .arg(&self.options.consumer)
                    .arg("COUNT")
                    .arg(batch)
                    .arg("STREAMS")
                    .arg(&j.entries_key)
                    .arg("0"),
            )
            .await?;
        let own = entries_of(own);
        if !own.is_empty() {
            return Ok(own);
        }
        let claimed: StreamAutoClaimReply = j
            .link
            .query(
                redis::cmd("XAUTOCLAIM")
                    .arg(&j.entries_key)
                    .arg(GROUP)
                    .arg(&self.options.consumer)
                    .arg(u64::try_from(self.options.claim_idle.as_millis()).unwrap_or(u64::MAX))
                    .arg("0-0")
                    .arg("COUNT")
                    .arg(batch),
            )
            .await?;
        let claimed: Vec<Entry> = claimed.claimed.into_iter().filter_map(entry_of).collect();
        if !claimed.is_empty() {
            return Ok(claimed);
        }
        let new: Option<StreamReadReply> = j
            .link
            .query(
                redis::cmd("XREADGROUP")
                    .arg("GROUP")
                    .arg(GROUP)
                    .arg(&self.options.consumer)
                    .arg("COUNT")
                    .arg(batch)
                    .arg("STREAMS")
                    .arg(&j.entries_key)
                    .arg(">"),
            )
            .await?;
        Ok(entries_of(new))
    }

    async fn send(&self, d: &Declaration) -> Outcome {
        let url = format!("{}/api/declare", self.options.origin.trim_end_matches('/'));
        let mut request = self
            .http
            .post(url)
            .header("Idempotency-Key", &d.idempotency_key)
            .header(reqwest::header::CONTENT_TYPE, &d.content_type)
            .body(d.body.clone());
        if !d.authorization.is_empty() {
            request = request.header(reqwest::header::AUTHORIZATION, &d.authorization);
        }
        let response = match request.send().await {
            Ok(r) => r,
            Err(e) => return Outcome::Retry(format!("origin unreachable: {e}")),
        };
        let status = response.status().as_u16();
        if response.status().is_success() {
            return Outcome::Applied;
        }
        if matches!(status, 408 | 425 | 429) || response.status().is_server_error() {
            return Outcome::Retry(format!("origin answered {status}"));
        }
        let mut text = response.text().await.unwrap_or_default();
        if text.len() > MAX_RESPONSE_KEPT {
            let mut cut = MAX_RESPONSE_KEPT;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            text.truncate(cut);
        }
        Outcome::Rejected {
            status,
            response: text,
        }
    }

    /// Acknowledges and deletes an entry, first copying it to the dead letters if rejected.
    async fn finish(
        &self,
        id: &str,
        dead: Option<(&Entry, u16, &str)>,
    ) -> Result<(), JournalError> {
        let j = &self.journal;
        let mut pipe = redis::pipe();
        pipe.atomic();
        if let Some((entry, status, response)) = dead {
            let d = &entry.declaration;
            // The bearer token is not kept: a dead letter is for people to read.
            pipe.cmd("XADD")
                .arg(&j.dead_key)
                .arg("*")
                .arg("r")
                .arg(id)
                .arg("k")
                .arg(&d.idempotency_key)
                .arg("s")
                .arg(d.subject.to_hex())
                .arg("status")
                .arg(status)
                .arg("response")
                .arg(response)
                .arg("ct")
                .arg(&d.content_type)
                .arg("b")
                .arg(&d.body)
                .arg("t")
                .arg(entry.accepted_at)
                .ignore();
        }
        pipe.cmd("XACK")
            .arg(&j.entries_key)
            .arg(GROUP)
            .arg(id)
            .ignore();
        pipe.cmd("XDEL").arg(&j.entries_key).arg(id).ignore();
        let _: Vec<Value> = j.link.pipe(&pipe, j.link.command_timeout()).await?;
        Ok(())
    }
}

/// What a round found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Round {
    /// It sent a batch; there may be more.
    Busy,
    /// The journal was empty.
    Idle,
    /// The origin was busy or unreachable; the rest waits.
    OriginBusy,
}

fn next_backoff(backoff: &mut Duration, max: Duration) -> Duration {
    let now = *backoff;
    *backoff = (*backoff * 2).min(max);
    now
}

fn entries_of(reply: Option<StreamReadReply>) -> Vec<Entry> {
    reply
        .map(|r| {
            r.keys
                .into_iter()
                .flat_map(|k| k.ids)
                .filter_map(entry_of)
                .collect()
        })
        .unwrap_or_default()
}

fn entry_of(item: StreamId) -> Option<Entry> {
    // An entry deleted while pending comes back without fields; nothing to replay.
    if item.map.is_empty() {
        return None;
    }
    let subject = field_text(&item.map, "s")
        .parse::<SubjectId>()
        .unwrap_or(SubjectId([0; 16]));
    Some(Entry {
        declaration: Declaration {
            idempotency_key: field_text(&item.map, "k"),
            subject,
            authorization: field_text(&item.map, "a"),
            content_type: field_text(&item.map, "ct"),
            body: field_bytes(&item.map, "b"),
        },
        accepted_at: field_text(&item.map, "t").parse().unwrap_or(0),
        id: item.id,
    })
}
