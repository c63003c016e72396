//! Admission's series, resolved once and copied from an [`AdmissionSnapshot`] when scraped.

use prometheus::{IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};

use super::{MetricsError, raise};
use crate::admission::{AdmissionSnapshot, Priority, ShedReason};

/// Admission's series.
#[derive(Clone, Debug)]
pub(super) struct AdmissionSeries {
    queued: Vec<IntGauge>,
    admitted: Vec<IntCounter>,
    /// `[priority * ShedReason::COUNT + reason]`.
    shed: Vec<IntCounter>,
    abandoned: Vec<IntCounter>,
    sojourn_total: prometheus::Counter,
    sojourn_recent_max: prometheus::Gauge,
    backoffs: IntCounter,
    baseline: prometheus::Gauge,
    latency: prometheus::Gauge,
    /// `shouhu_origin_in_flight`.
    in_flight: IntGauge,
    /// `shouhu_origin_concurrency_limit`.
    limit: IntGauge,
}

impl AdmissionSeries {
    pub(super) fn register(
        registry: &Registry,
        in_flight: IntGauge,
        limit: IntGauge,
    ) -> Result<Self, MetricsError> {
        let queued = IntGaugeVec::new(
            Opts::new(
                "shouhu_admission_queue_depth",
                "Requests waiting for a call to the origin, by priority.",
            ),
            &["priority"],
        )?;
        let admitted = IntCounterVec::new(
            Opts::new(
                "shouhu_admission_admitted_total",
                "Requests given a call to the origin, by priority.",
            ),
            &["priority"],
        )?;
        let shed = IntCounterVec::new(
            Opts::new(
                "shouhu_admission_shed_total",
                "Requests refused a call to the origin, by priority and reason.",
            ),
            &["priority", "reason"],
        )?;
        let abandoned = IntCounterVec::new(
            Opts::new(
                "shouhu_admission_abandoned_total",
                "Waiters whose client went away before a call was free, by priority.",
            ),
            &["priority"],
        )?;
        let sojourn_total = prometheus::Counter::new(
            "shouhu_admission_sojourn_seconds_total",
            "Time admitted requests spent queueing for a call, summed.",
        )?;
        let sojourn_recent_max = prometheus::Gauge::new(
            "shouhu_admission_sojourn_recent_max_seconds",
            "The longest queueing time of an admitted request in the last control window.",
        )?;
        let backoffs = IntCounter::new(
            "shouhu_admission_backoffs_total",
            "Times the concurrency limit backed off on a timeout, 5xx or failed call.",
        )?;
        let latency = prometheus::GaugeVec::new(
            Opts::new(
                "shouhu_origin_latency_seconds",
                "The origin's latency as admission sees it: its unloaded baseline and the \
                 smoothed recent median; -1 when unknown.",
            ),
            &["kind"],
        )?;
        registry.register(Box::new(queued.clone()))?;
        registry.register(Box::new(admitted.clone()))?;
        registry.register(Box::new(shed.clone()))?;
        registry.register(Box::new(abandoned.clone()))?;
        registry.register(Box::new(sojourn_total.clone()))?;
        registry.register(Box::new(sojourn_recent_max.clone()))?;
        registry.register(Box::new(backoffs.clone()))?;
        registry.register(Box::new(latency.clone()))?;
        let by_priority = |v: &IntCounterVec| {
            Priority::ALL
                .iter()
                .map(|p| v.with_label_values(&[p.as_str()]))
                .collect::<Vec<_>>()
        };
        let baseline = latency.with_label_values(&["baseline"]);
        let recent = latency.with_label_values(&["recent"]);
        baseline.set(-1.0);
        recent.set(-1.0);
        Ok(Self {
            queued: Priority::ALL
                .iter()
                .map(|p| queued.with_label_values(&[p.as_str()]))
                .collect(),
            admitted: by_priority(&admitted),
            shed: Priority::ALL
                .iter()
                .flat_map(|p| {
                    ShedReason::ALL
                        .iter()
                        .map(|r| shed.with_label_values(&[p.as_str(), r.as_str()]))
                        .collect::<Vec<_>>()
                })
                .collect(),
            abandoned: by_priority(&abandoned),
            sojourn_total,
            sojourn_recent_max,
            backoffs,
            baseline,
            latency: recent,
            in_flight,
            limit,
        })
    }

    /// Copies admission's gauges and totals.
    pub(super) fn sync(&self, snap: &AdmissionSnapshot) {
        let gauge = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        self.limit.set(gauge(snap.limit));
        self.in_flight.set(gauge(snap.in_flight));
        for p in Priority::ALL {
            let i = p.index();
            self.queued[i].set(gauge(snap.queued[i]));
            raise(&self.admitted[i], snap.admitted[i]);
            raise(&self.abandoned[i], snap.abandoned[i]);
            for r in ShedReason::ALL {
                raise(
                    &self.shed[i * ShedReason::COUNT + r.index()],
                    snap.shed[i][r.index()],
                );
            }
        }
        let sojourn = snap.sojourn_total.as_secs_f64();
        let counted = self.sojourn_total.get();
        if sojourn > counted {
            self.sojourn_total.inc_by(sojourn - counted);
        }
        self.sojourn_recent_max
            .set(snap.sojourn_recent_max.as_secs_f64());
        raise(&self.backoffs, snap.backoffs);
        self.baseline
            .set(snap.baseline.map_or(-1.0, |d| d.as_secs_f64()));
        self.latency
            .set(snap.latency.map_or(-1.0, |d| d.as_secs_f64()));
    }
}
