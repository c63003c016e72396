//! The origin's side of the data sources: one HTTP client per source with a timeout and a
//! short per-person cache, and a follower of each source's change feed. A source that fails
//! or times out is [`Answer::Unavailable`], which the ruleset turns into "unknown" — never a
//! silent green.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use shouhu_code::SubjectId;
use tokio::sync::mpsc;

use crate::datasource::SourceKind;
use crate::facts::{Answer, CarrierFacts, Declaration, Facts, HealthFacts, PoliceFacts};

/// How often the change feeds are polled.
pub const CHANGE_POLL_INTERVAL: Duration = Duration::from_millis(200);
/// Most cached answers kept per source; the cache is cleared when it grows past this.
const MAX_CACHED: usize = 100_000;

/// A client of one data source.
#[derive(Debug)]
pub struct SourceClient {
    kind: SourceKind,
    base: String,
    http: reqwest::Client,
    cache_ttl: Duration,
    cache: Mutex<HashMap<SubjectId, (Instant, Value)>>,
}

impl SourceClient {
    /// A client of the source at `base` (e.g. `http://127.0.0.1:8101`).
    ///
    /// # Errors
    /// The HTTP client cannot be built.
    pub fn new(
        kind: SourceKind,
        base: &str,
        timeout: Duration,
        cache_ttl: Duration,
    ) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .build()?;
        Ok(Self {
            kind,
            base: base.trim_end_matches('/').to_owned(),
            http,
            cache_ttl,
            cache: Mutex::new(HashMap::new()),
        })
    }

    fn cached(&self, subject: SubjectId) -> Option<Value> {
        let cache = self.cache.lock().ok()?;
        let (at, value) = cache.get(&subject)?;
        (at.elapsed() < self.cache_ttl).then(|| value.clone())
    }

    fn remember(&self, subject: SubjectId, value: Value) {
        if self.cache_ttl.is_zero() {
            return;
        }
        if let Ok(mut cache) = self.cache.lock() {
            if cache.len() >= MAX_CACHED {
                cache.clear();
            }
            cache.insert(subject, (Instant::now(), value));
        }
    }

    /// Drops a person's cached answer.
    pub fn forget(&self, subject: SubjectId) {
        if let Ok(mut cache) = self.cache.lock() {
            cache.remove(&subject);
        }
    }

    /// The person's facts from this source, or `Unavailable`.
    pub async fn fetch<T: DeserializeOwned>(&self, subject: SubjectId) -> Answer<T> {
        let value = match self.cached(subject) {
            Some(v) => v,
            None => match self.get(subject).await {
                Ok(v) => {
                    self.remember(subject, v.clone());
                    v
                }
                Err(e) => {
                    tracing::debug!(source = %self.kind, error = %e, "data source failed");
                    return Answer::Unavailable;
                }
            },
        };
        match serde_json::from_value(value) {
            Ok(facts) => Answer::Known(facts),
            Err(e) => {
                tracing::warn!(source = %self.kind, error = %e, "data source answer does not parse");
                Answer::Unavailable
            }
        }
    }

    async fn get(&self, subject: SubjectId) -> Result<Value, reqwest::Error> {
        self.http
            .get(format!("{}/v1/subjects/{subject}", self.base))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await
    }
}

/// The three sources.
#[derive(Debug, Clone)]
pub struct Sources {
    /// Health commission.
    pub health: Arc<SourceClient>,
    /// Public security.
    pub police: Arc<SourceClient>,
    /// Carriers.
    pub carrier: Arc<SourceClient>,
}

impl Sources {
    /// All facts about a person, asking the three sources at once.
    pub async fn facts(&self, subject: SubjectId, declarations: Vec<Declaration>) -> Facts {
        let (health, police, carrier) = tokio::join!(
            self.health.fetch::<HealthFacts>(subject),
            self.police.fetch::<PoliceFacts>(subject),
            self.carrier.fetch::<CarrierFacts>(subject),
        );
        Facts {
            health,
            police,
            carrier,
            declarations,
        }
    }

    /// The clients, with their kinds.
    #[must_use]
    pub fn all(&self) -> [&Arc<SourceClient>; 3] {
        [&self.health, &self.police, &self.carrier]
    }
}

#[derive(Deserialize)]
struct Changes {
    next: u64,
    subjects: Vec<SubjectId>,
}

/// Follows a source's change feed until `changed` closes: drops changed people from the
/// cache and sends them for re-colouring. Starts from the feed's current end, because
/// everyone is coloured afresh at start anyway.
pub async fn follow_changes(client: Arc<SourceClient>, changed: mpsc::Sender<SubjectId>) {
    let mut after: Option<u64> = None;
    let mut ticker = tokio::time::interval(CHANGE_POLL_INTERVAL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        if changed.is_closed() {
            return;
        }
        let url = format!(
            "{}/v1/changes?after={}",
            client.base,
            after.unwrap_or(u64::MAX)
        );
        let answer = async {
            client
                .http
                .get(url)
                .send()
                .await?
                .error_for_status()?
                .json::<Changes>()
                .await
        }
        .await;
        match answer {
            Ok(c) => {
                if after.is_some_and(|a| c.next < a) {
                    // The source restarted and its sequence began again: read its whole feed.
                    after = Some(0);
                    continue;
                }
                if after.is_some() {
                    for s in c.subjects {
                        client.forget(s);
                        if changed.send(s).await.is_err() {
                            return;
                        }
                    }
                }
                after = Some(c.next);
            }
            Err(e) => tracing::debug!(source = %client.kind, error = %e, "change feed failed"),
        }
    }
}
