//! The origin's shared state and its pipeline: facts from the store and the sources, the
//! ruleset, the stored colour, the snapshot publisher, and signing codes.

use std::sync::Arc;
use std::time::Duration;

use shouhu_code::time::{UnixTime, now};
use shouhu_code::{Claims, CodeId, CodeView, KeyPair, Region, Source, SubjectId, TrustList};
use shouhu_fallback::Record;
use tokio::sync::{Semaphore, mpsc, watch};

use crate::capacity::CapacityModel;
use crate::error::ApiError;
use crate::facts::Facts;
use crate::fault::Fault;
use crate::identity::{SessionKeys, SubjectHasher};
use crate::publisher::Publisher;
use crate::rules::{Evaluation, Ruleset};
use crate::sources::Sources;
use crate::store::{ColourRow, Person, Store};

/// Declarations older than this never matter to a rule (the longest release is 14 days).
const DECLARATION_HORIZON_SECS: u64 = 30 * 86_400;
/// Colour recomputations running at once in the background.
const RECOLOUR_CONCURRENCY: usize = 16;
/// How often people whose colour changes on its own are looked for.
const DUE_CHECK_EVERY: Duration = Duration::from_secs(1);
/// Lock stripes that serialise colour computations of one person.
pub const COLOUR_LOCK_STRIPES: usize = 1024;

/// Everything a request handler needs. Shared behind an `Arc`.
#[derive(Debug)]
pub struct App {
    /// Region printed in codes.
    pub region: Region,
    /// Lifetime of a code, seconds.
    pub code_ttl: u64,
    /// Lifetime of a session token, seconds.
    pub session_ttl: u64,
    /// Storage.
    pub store: Store,
    /// ID number → subject id.
    pub hasher: SubjectHasher,
    /// Session tokens.
    pub sessions: SessionKeys,
    /// Signs codes.
    pub code_key: KeyPair,
    /// The origin's code keys.
    pub trust: TrustList,
    /// The data sources.
    pub sources: Sources,
    /// The colour rules.
    pub ruleset: Ruleset,
    /// The snapshot publisher.
    pub publisher: Publisher,
    /// The capacity model.
    pub capacity: CapacityModel,
    /// The fault setting.
    pub fault: watch::Sender<Fault>,
    /// Subjects to re-colour in the background.
    pub recolour: mpsc::Sender<SubjectId>,
    /// One computation per person at a time (striped), so an older computation can never
    /// store or publish its colour after a newer one: no stale green overwrites a red.
    pub colour_locks: Vec<tokio::sync::Mutex<()>>,
}

/// The stripes for [`App::colour_locks`].
#[must_use]
pub fn colour_locks() -> Vec<tokio::sync::Mutex<()>> {
    (0..COLOUR_LOCK_STRIPES)
        .map(|_| tokio::sync::Mutex::new(()))
        .collect()
}

/// A colour just computed for a person.
#[derive(Debug, Clone)]
pub struct Coloured {
    /// The person.
    pub person: Person,
    /// The facts it was computed from.
    pub facts: Facts,
    /// The result.
    pub evaluation: Evaluation,
    /// When.
    pub at: UnixTime,
}

impl App {
    /// Computes a person's colour now, stores it, and publishes it if it changed.
    ///
    /// # Errors
    /// [`ApiError::NotRegistered`], or storage failures.
    pub async fn colour(&self, subject: SubjectId) -> Result<Coloured, ApiError> {
        let stripe = usize::from(u16::from_le_bytes([subject.0[0], subject.0[1]]))
            % self.colour_locks.len().max(1);
        let _one_at_a_time = match self.colour_locks.get(stripe) {
            Some(lock) => Some(lock.lock().await),
            None => None,
        };
        let _in_flight = self.publisher.begin();
        let at = now();
        let (person, declarations) = self
            .store
            .person_with_declarations(subject, at.saturating_sub(DECLARATION_HORIZON_SECS))
            .await
            .map_err(ApiError::internal)?
            .ok_or(ApiError::NotRegistered)?;
        let facts = self.sources.facts(subject, declarations).await;
        let evaluation = self.ruleset.evaluate(&facts, at);
        let row = ColourRow {
            colour: evaluation.colour,
            ruleset_version: evaluation.ruleset_version,
            as_of: at,
            next_change_at: evaluation.next_change_at,
        };
        let changed = self
            .store
            .update_colour(subject, row)
            .await
            .map_err(ApiError::internal)?;
        if changed {
            tracing::debug!(%subject, colour = %row.colour, "colour changed");
            self.publisher.publish(
                subject,
                Record {
                    colour: row.colour,
                    as_of: at,
                    ruleset_version: row.ruleset_version,
                    masked_name: person.masked_name.clone(),
                    id_last4: person.id_last4.clone(),
                },
            );
        }
        Ok(Coloured {
            person,
            facts,
            evaluation,
            at,
        })
    }

    /// A freshly signed code for the person.
    ///
    /// # Errors
    /// As [`App::colour`], or signing fails.
    pub async fn issue(&self, subject: SubjectId) -> Result<CodeView, ApiError> {
        let c = self.colour(subject).await?;
        let claims = Claims {
            issuer: self.region.clone(),
            issued_at: c.at,
            expires_at: c.at + self.code_ttl,
            code_id: CodeId::random().map_err(ApiError::internal)?,
            colour: c.evaluation.colour,
            subject,
            masked_name: c.person.masked_name,
            id_last4: c.person.id_last4,
            source: Source::Origin,
            as_of: c.at,
            ruleset_version: c.evaluation.ruleset_version,
        };
        let text = self.code_key.sign(&claims).map_err(ApiError::internal)?;
        Ok(CodeView::new(&claims, &text))
    }
}

/// Re-colours subjects sent on `rx` (source changes, durations running out), a few at a
/// time, until the channel closes.
pub async fn recolour_worker(app: Arc<App>, mut rx: mpsc::Receiver<SubjectId>) {
    let permits = Arc::new(Semaphore::new(RECOLOUR_CONCURRENCY));
    while let Some(subject) = rx.recv().await {
        let Ok(permit) = Arc::clone(&permits).acquire_owned().await else {
            return;
        };
        let app = Arc::clone(&app);
        tokio::spawn(async move {
            match app.colour(subject).await {
                Ok(_) | Err(ApiError::NotRegistered) => {}
                Err(e) => tracing::warn!(%subject, error = %e, "re-colouring failed"),
            }
            drop(permit);
        });
    }
}

/// Sends everyone whose colour may have changed on its own to the re-colour queue, every
/// second, and everyone once at start.
pub async fn due_ticker(app: Arc<App>, mut shutdown: watch::Receiver<bool>) {
    match app.store.subjects().await {
        Ok(all) => {
            for s in all {
                if app.recolour.send(s).await.is_err() {
                    return;
                }
            }
        }
        Err(e) => tracing::warn!(error = %e, "could not list subjects for the start-up re-colour"),
    }
    let mut tick = tokio::time::interval(DUE_CHECK_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        match app.store.due(now()).await {
            Ok(due) => {
                for s in due {
                    if app.recolour.send(s).await.is_err() {
                        return;
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not read due colours"),
        }
    }
}
