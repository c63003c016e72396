//! Deterministic synthetic facts: every number comes from SHA-256 of (seed, source, subject),
//! so the same seed gives the same population. About 0.3 % are cases, 1.5 % close contacts
//! (some already past their 14 days), 0.2 % fail the identity check, 1 % were in a high-risk
//! and 4 % in a medium-risk city recently.

use serde_json::Value;
use sha2::{Digest, Sha256};
use shouhu_code::SubjectId;
use shouhu_code::time::UnixTime;

use super::SourceKind;
use crate::facts::{
    CarrierFacts, Case, Contact, HealthFacts, NatTest, PoliceFacts, Vaccination, Visit,
};

const HOUR: u64 = 3600;
const DAY: u64 = 24 * HOUR;
const CITIES: [&str; 8] = [
    "济南 Jinan",
    "青岛 Qingdao",
    "烟台 Yantai",
    "北京 Beijing",
    "上海 Shanghai",
    "西安 Xi'an",
    "广州 Guangzhou",
    "福州 Fuzhou",
];
const HUKOU: [&str; 4] = ["370102", "370202", "370602", "110105"];

/// A stream of pseudo-random numbers from the hash of (seed, kind, subject).
struct Draws {
    bytes: Vec<u8>,
    at: usize,
}

impl Draws {
    fn new(kind: SourceKind, seed: u64, subject: SubjectId) -> Self {
        let mut bytes = Vec::with_capacity(64);
        for block in 0u8..2 {
            let mut h = Sha256::new();
            h.update(seed.to_le_bytes());
            h.update(kind.as_str().as_bytes());
            h.update(subject.0);
            h.update([block]);
            bytes.extend_from_slice(&h.finalize());
        }
        Self { bytes, at: 0 }
    }

    /// A number in `0..n`.
    fn below(&mut self, n: u64) -> u64 {
        let mut word = [0u8; 4];
        for b in &mut word {
            *b = self.bytes[self.at % self.bytes.len()];
            self.at += 1;
        }
        u64::from(u32::from_le_bytes(word)) % n.max(1)
    }
}

/// The facts `kind` holds about `subject`, with times relative to `now`.
pub(super) fn generate(kind: SourceKind, seed: u64, subject: SubjectId, now: UnixTime) -> Value {
    let mut d = Draws::new(kind, seed, subject);
    let value = match kind {
        SourceKind::Health => {
            let mut h = HealthFacts::default();
            let roll = d.below(1000);
            if roll < 3 {
                h.case = Some(Case {
                    status: "confirmed".to_owned(),
                    at: now - d.below(10) * DAY - HOUR,
                });
            } else if roll < 18 {
                h.contact = Some(Contact {
                    kind: "close".to_owned(),
                    at: now - d.below(20) * DAY - HOUR,
                });
            }
            for _ in 0..=d.below(3) {
                h.tests.push(NatTest {
                    result: "negative".to_owned(),
                    sampled_at: now - d.below(72) * HOUR - HOUR,
                });
            }
            h.tests.sort_by_key(|t| t.sampled_at);
            for dose in 0..d.below(4) {
                h.vaccinations.push(Vaccination {
                    dose: u32::try_from(dose).unwrap_or(0) + 1,
                    at: now - (300 - dose * 60) * DAY,
                });
            }
            serde_json::to_value(h)
        }
        SourceKind::Police => serde_json::to_value(PoliceFacts {
            identity_verified: d.below(1000) >= 2,
            hukou_region: HUKOU[usize::try_from(d.below(4)).unwrap_or(0)].to_owned(),
        }),
        SourceKind::Carrier => {
            let mut c = CarrierFacts::default();
            for _ in 0..d.below(4) {
                let roll = d.below(1000);
                let risk = if roll < 3 {
                    "high"
                } else if roll < 14 {
                    "medium"
                } else {
                    "low"
                };
                c.visits.push(Visit {
                    city: CITIES[usize::try_from(d.below(8)).unwrap_or(0)].to_owned(),
                    risk: risk.to_owned(),
                    at: now - d.below(14) * DAY - HOUR,
                });
            }
            serde_json::to_value(c)
        }
    };
    value.unwrap_or(Value::Null)
}
