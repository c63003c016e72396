//! The issuer's counters, rendered in the Prometheus text format. Label values come only from
//! enums (colour, basis, reason).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use shouhu_code::Colour;

use super::AppState;
use crate::policy::Basis;

const COLOURS: [Colour; 4] = [Colour::Green, Colour::Yellow, Colour::Red, Colour::Unknown];
const BASES: [Basis; 4] = [Basis::Snapshot, Basis::Known, Basis::Missing, Basis::Stale];
const REFUSALS: [&str; 4] = ["missing", "invalid", "expired", "issue_failed"];

/// Counters since start.
#[derive(Debug, Default)]
pub struct Metrics {
    issued: [[AtomicU64; 4]; 4],
    snapshot_unavailable: AtomicU64,
    refused: [AtomicU64; 4],
    verified_valid: AtomicU64,
    verified_invalid: AtomicU64,
    ingested_records: AtomicU64,
}

fn index<T: PartialEq>(all: &[T], x: &T) -> usize {
    all.iter().position(|y| y == x).unwrap_or(0)
}

impl Metrics {
    pub(crate) fn issued(&self, colour: Colour, basis: Basis, snapshot_read: bool) {
        self.issued[index(&COLOURS, &colour)][index(&BASES, &basis)]
            .fetch_add(1, Ordering::Relaxed);
        if !snapshot_read {
            self.snapshot_unavailable.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(crate) fn refused(&self, reason: &'static str) {
        self.refused[index(&REFUSALS, &reason)].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn verified(&self, valid: bool) {
        let c = if valid {
            &self.verified_valid
        } else {
            &self.verified_invalid
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn ingested(&self, n: u64) {
        self.ingested_records.fetch_add(n, Ordering::Relaxed);
    }

    /// The Prometheus text exposition.
    #[must_use]
    pub fn text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP shouhu_fallback_codes_issued_total Fallback codes signed, by colour and basis.\n\
             # TYPE shouhu_fallback_codes_issued_total counter"
        );
        for (ci, c) in COLOURS.iter().enumerate() {
            for (bi, b) in BASES.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "shouhu_fallback_codes_issued_total{{colour=\"{}\",basis=\"{}\"}} {}",
                    c.as_str(),
                    b.as_str(),
                    self.issued[ci][bi].load(Ordering::Relaxed)
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP shouhu_fallback_snapshot_unavailable_total Codes issued while the snapshot could not be read.\n\
             # TYPE shouhu_fallback_snapshot_unavailable_total counter\n\
             shouhu_fallback_snapshot_unavailable_total {}",
            self.snapshot_unavailable.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP shouhu_fallback_requests_refused_total Code requests refused, by reason.\n\
             # TYPE shouhu_fallback_requests_refused_total counter"
        );
        for (i, r) in REFUSALS.iter().enumerate() {
            let _ = writeln!(
                out,
                "shouhu_fallback_requests_refused_total{{reason=\"{r}\"}} {}",
                self.refused[i].load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(
            out,
            "# HELP shouhu_fallback_verifications_total Codes verified, by result.\n\
             # TYPE shouhu_fallback_verifications_total counter\n\
             shouhu_fallback_verifications_total{{result=\"valid\"}} {}\n\
             shouhu_fallback_verifications_total{{result=\"invalid\"}} {}",
            self.verified_valid.load(Ordering::Relaxed),
            self.verified_invalid.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP shouhu_fallback_ingested_records_total Snapshot records received on the ingest endpoint.\n\
             # TYPE shouhu_fallback_ingested_records_total counter\n\
             shouhu_fallback_ingested_records_total {}",
            self.ingested_records.load(Ordering::Relaxed)
        );
        out
    }
}

pub(crate) async fn render(State(s): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        s.metrics().text(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_convention() {
        let m = Metrics::default();
        m.issued(Colour::Red, Basis::Snapshot, true);
        let text = m.text();
        assert!(
            text.contains(
                "shouhu_fallback_codes_issued_total{colour=\"red\",basis=\"snapshot\"} 1"
            )
        );
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let name = line.split(['{', ' ']).next().unwrap_or_default();
            assert!(
                name.starts_with("shouhu_") && name.ends_with("_total"),
                "{name}"
            );
        }
    }
}
