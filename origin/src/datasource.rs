//! The three data-source simulators — health commission, public security, carriers — each an
//! HTTP service of its own (in-process on a loopback port by default, or a separate process
//! via `shouhu origin datasource --kind ...`).
//!
//! Data is synthetic and deterministic: a person's facts come from a hash of (seed, source,
//! subject id), with event times fixed relative to the first time anyone asks. Admin calls
//! change a person's facts; every change goes to a change feed that the origin follows, so a
//! change at a source re-colours the person within a second.
//!
//! ```text
//! GET  /v1/subjects/{subject}      the person's facts (JSON), with the latency/failure knobs
//! GET  /v1/changes?after=N         {"next": M, "subjects": [...]}: changes after sequence N
//! POST /admin/subjects/{subject}   {"op": ...}: change facts (see `Op`)
//! PUT  /admin/knobs                {"latency_ms": N, "failure_rate": 0.0..1.0}
//! GET  /healthz
//! ```

mod seed;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use shouhu_code::SubjectId;
use shouhu_code::time::{UnixTime, now};
use tokio::net::TcpListener;

use crate::facts::{
    CarrierFacts, Case, Contact, HealthFacts, NatTest, PoliceFacts, Vaccination, Visit,
};

/// Longest change feed kept; a follower further behind re-reads everyone it cares about.
const MAX_CHANGES: usize = 100_000;

/// Which source a simulator plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SourceKind {
    /// Health commission.
    Health,
    /// Public security.
    Police,
    /// Carriers.
    Carrier,
}

impl SourceKind {
    /// All three.
    pub const ALL: [Self; 3] = [Self::Health, Self::Police, Self::Carrier];

    /// `health`, `police` or `carrier`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Health => "health",
            Self::Police => "police",
            Self::Carrier => "carrier",
        }
    }
}

impl std::fmt::Display for SourceKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for SourceKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "health" => Ok(Self::Health),
            "police" => Ok(Self::Police),
            "carrier" => Ok(Self::Carrier),
            _ => Err(format!(
                "unknown source kind \"{s}\" (expected one of health, police, carrier)"
            )),
        }
    }
}

/// Latency and failure knobs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Knobs {
    /// Added to every facts answer.
    #[serde(default)]
    pub latency_ms: u64,
    /// Share of facts answers that fail with 503, 0 to 1.
    #[serde(default)]
    pub failure_rate: f64,
}

/// A change to a person's facts.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Op {
    /// Clean facts: nothing on record (health), verified (police), no visits (carrier).
    Reset,
    /// Health: mark a close contact.
    CloseContact {
        /// Exposure time, default now.
        at: Option<UnixTime>,
    },
    /// Health: mark a secondary contact.
    SecondaryContact {
        /// Exposure time, default now.
        at: Option<UnixTime>,
    },
    /// Health: record a case status.
    Case {
        /// `confirmed`, `suspected`, `asymptomatic` or `cured`.
        status: String,
        /// Default now.
        at: Option<UnixTime>,
    },
    /// Health: add a test result.
    Test {
        /// `positive` or `negative`.
        result: String,
        /// Sample time, default now.
        at: Option<UnixTime>,
    },
    /// Health: add a vaccination dose.
    Vaccinate {
        /// Default now.
        at: Option<UnixTime>,
    },
    /// Carrier: add a stay in a city.
    Visit {
        /// City name.
        city: String,
        /// `low`, `medium` or `high`.
        risk: String,
        /// Default now.
        at: Option<UnixTime>,
    },
    /// Police: set the identity check result.
    Identity {
        /// Whether identity matches household registration.
        verified: bool,
    },
}

struct SimState {
    facts: HashMap<SubjectId, Value>,
    changes: VecDeque<(u64, SubjectId)>,
    next_seq: u64,
    knobs: Knobs,
}

/// One simulated data source.
pub struct Simulator {
    kind: SourceKind,
    seed: u64,
    state: Mutex<SimState>,
}

impl std::fmt::Debug for Simulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Simulator")
            .field("kind", &self.kind)
            .finish()
    }
}

/// A refusal from the simulator's API.
struct SimError(StatusCode, String);

impl IntoResponse for SimError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({"error": self.1}))).into_response()
    }
}

impl Simulator {
    /// A simulator of `kind` with synthetic data from `seed`.
    #[must_use]
    pub fn new(kind: SourceKind, seed: u64, knobs: Knobs) -> Arc<Self> {
        Arc::new(Self {
            kind,
            seed,
            state: Mutex::new(SimState {
                facts: HashMap::new(),
                changes: VecDeque::new(),
                next_seq: 1,
                knobs,
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, SimState> {
        // A panic while holding the lock leaves plain data behind; keep serving it.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The person's facts (generated from the seed on first use).
    #[must_use]
    pub fn facts(&self, subject: SubjectId) -> Value {
        let mut st = self.lock();
        st.facts
            .entry(subject)
            .or_insert_with(|| seed::generate(self.kind, self.seed, subject, now()))
            .clone()
    }

    /// Applies a change and records it in the change feed.
    ///
    /// # Errors
    /// The op does not belong to this source, or has a bad value.
    pub fn apply(&self, subject: SubjectId, op: Op) -> Result<Value, String> {
        let current = self.facts(subject);
        let t = now();
        let updated = match (self.kind, op) {
            (SourceKind::Health, Op::Reset) => to_value(&HealthFacts::default()),
            (SourceKind::Police, Op::Reset) => to_value(&PoliceFacts::default()),
            (SourceKind::Carrier, Op::Reset) => to_value(&CarrierFacts::default()),
            (SourceKind::Health, op) => {
                let mut h: HealthFacts = from_value(current)?;
                match op {
                    Op::CloseContact { at } => {
                        h.contact = Some(Contact {
                            kind: "close".to_owned(),
                            at: at.unwrap_or(t),
                        });
                    }
                    Op::SecondaryContact { at } => {
                        h.contact = Some(Contact {
                            kind: "secondary".to_owned(),
                            at: at.unwrap_or(t),
                        });
                    }
                    Op::Case { status, at } => {
                        one_of(
                            &status,
                            &["confirmed", "suspected", "asymptomatic", "cured"],
                        )?;
                        h.case = Some(Case {
                            status,
                            at: at.unwrap_or(t),
                        });
                    }
                    Op::Test { result, at } => {
                        one_of(&result, &["positive", "negative"])?;
                        h.tests.push(NatTest {
                            result,
                            sampled_at: at.unwrap_or(t),
                        });
                    }
                    Op::Vaccinate { at } => {
                        let dose = u32::try_from(h.vaccinations.len()).unwrap_or(0) + 1;
                        h.vaccinations.push(Vaccination {
                            dose,
                            at: at.unwrap_or(t),
                        });
                    }
                    _ => return Err(self.wrong_op()),
                }
                to_value(&h)
            }
            (SourceKind::Carrier, Op::Visit { city, risk, at }) => {
                one_of(&risk, &["low", "medium", "high"])?;
                let mut c: CarrierFacts = from_value(current)?;
                c.visits.push(Visit {
                    city,
                    risk,
                    at: at.unwrap_or(t),
                });
                to_value(&c)
            }
            (SourceKind::Police, Op::Identity { verified }) => {
                let mut p: PoliceFacts = from_value(current)?;
                p.identity_verified = verified;
                to_value(&p)
            }
            _ => return Err(self.wrong_op()),
        };
        let mut st = self.lock();
        st.facts.insert(subject, updated.clone());
        let seq = st.next_seq;
        st.next_seq += 1;
        st.changes.push_back((seq, subject));
        while st.changes.len() > MAX_CHANGES {
            st.changes.pop_front();
        }
        Ok(updated)
    }

    fn wrong_op(&self) -> String {
        let ops = match self.kind {
            SourceKind::Health => "reset, close_contact, secondary_contact, case, test, vaccinate",
            SourceKind::Police => "reset, identity",
            SourceKind::Carrier => "reset, visit",
        };
        format!("the {} source takes op one of {ops}", self.kind)
    }

    /// Changes after sequence `after`: the next sequence to ask from, and the subjects.
    #[must_use]
    pub fn changes_after(&self, after: u64) -> (u64, Vec<SubjectId>) {
        let st = self.lock();
        let subjects = st
            .changes
            .iter()
            .filter(|(seq, _)| *seq > after)
            .map(|(_, s)| *s)
            .collect();
        (st.next_seq - 1, subjects)
    }

    /// Replaces the knobs.
    pub fn set_knobs(&self, knobs: Knobs) {
        self.lock().knobs = knobs;
    }

    fn knobs(&self) -> Knobs {
        self.lock().knobs
    }
}

fn one_of(value: &str, allowed: &[&str]) -> Result<(), String> {
    if allowed.contains(&value) {
        Ok(())
    } else {
        Err(format!("\"{value}\" is not one of {}", allowed.join(", ")))
    }
}

fn to_value<T: Serialize>(facts: &T) -> Value {
    serde_json::to_value(facts).unwrap_or(Value::Null)
}

fn from_value<T: serde::de::DeserializeOwned>(value: Value) -> Result<T, String> {
    serde_json::from_value(value).map_err(|e| format!("stored facts do not parse: {e}"))
}

/// The simulator's HTTP routes.
pub fn router(sim: Arc<Simulator>) -> Router {
    Router::new()
        .route("/v1/subjects/{subject}", get(get_facts))
        .route("/v1/changes", get(get_changes))
        .route("/admin/subjects/{subject}", post(post_op))
        .route("/admin/knobs", put(put_knobs).get(get_knobs))
        .route("/healthz", get(|| async { "ok" }))
        .with_state(sim)
}

/// Serves a simulator on `listener` until `shutdown` resolves.
///
/// # Errors
/// The listener fails.
pub async fn serve(
    listener: TcpListener,
    sim: Arc<Simulator>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(sim))
        .with_graceful_shutdown(shutdown)
        .await
}

fn parse_subject(text: &str) -> Result<SubjectId, SimError> {
    text.parse()
        .map_err(|e: shouhu_code::ParseError| SimError(StatusCode::BAD_REQUEST, e.to_string()))
}

async fn get_facts(
    State(sim): State<Arc<Simulator>>,
    Path(subject): Path<String>,
) -> Result<Json<Value>, SimError> {
    let subject = parse_subject(&subject)?;
    let knobs = sim.knobs();
    if knobs.latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(knobs.latency_ms)).await;
    }
    if knobs.failure_rate > 0.0 && rand::random::<f64>() < knobs.failure_rate {
        return Err(SimError(
            StatusCode::SERVICE_UNAVAILABLE,
            "injected failure".to_owned(),
        ));
    }
    Ok(Json(sim.facts(subject)))
}

#[derive(Deserialize)]
struct After {
    #[serde(default)]
    after: u64,
}

async fn get_changes(State(sim): State<Arc<Simulator>>, Query(q): Query<After>) -> Json<Value> {
    let (next, subjects) = sim.changes_after(q.after);
    Json(json!({"next": next, "subjects": subjects}))
}

async fn post_op(
    State(sim): State<Arc<Simulator>>,
    Path(subject): Path<String>,
    Json(op): Json<Op>,
) -> Result<Json<Value>, SimError> {
    let subject = parse_subject(&subject)?;
    sim.apply(subject, op)
        .map(Json)
        .map_err(|e| SimError(StatusCode::BAD_REQUEST, e))
}

async fn put_knobs(
    State(sim): State<Arc<Simulator>>,
    Json(knobs): Json<Knobs>,
) -> Result<Json<Knobs>, SimError> {
    if !(0.0..=1.0).contains(&knobs.failure_rate) {
        return Err(SimError(
            StatusCode::BAD_REQUEST,
            format!(
                "failure_rate must be from 0 to 1 (got {})",
                knobs.failure_rate
            ),
        ));
    }
    sim.set_knobs(knobs);
    Ok(Json(knobs))
}

async fn get_knobs(State(sim): State<Arc<Simulator>>) -> Json<Knobs> {
    Json(sim.knobs())
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn seeded_data_is_deterministic_and_changes_are_fed() {
        let a = Simulator::new(
            SourceKind::Health,
            7,
            Knobs {
                latency_ms: 0,
                failure_rate: 0.0,
            },
        );
        let b = Simulator::new(
            SourceKind::Health,
            7,
            Knobs {
                latency_ms: 0,
                failure_rate: 0.0,
            },
        );
        let s = SubjectId([5; 16]);
        let fa: HealthFacts = serde_json::from_value(a.facts(s)).unwrap();
        let fb: HealthFacts = serde_json::from_value(b.facts(s)).unwrap();
        // Same seed, same person: the same kinds of facts (times are relative to first use).
        assert_eq!(fa.case.is_some(), fb.case.is_some());
        assert_eq!(fa.tests.len(), fb.tests.len());
        assert_eq!(a.changes_after(0), (0, vec![]));
        let v = a.apply(s, Op::CloseContact { at: Some(100) }).unwrap();
        assert_eq!(v["contact"]["kind"], "close");
        assert_eq!(a.changes_after(0), (1, vec![s]));
        assert_eq!(a.changes_after(1), (1, vec![]));
        assert!(a.apply(s, Op::Identity { verified: false }).is_err());
        assert!(
            a.apply(
                s,
                Op::Test {
                    result: "maybe".into(),
                    at: None
                }
            )
            .is_err()
        );
    }
}
