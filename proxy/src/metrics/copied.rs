//! [`CopiedHistograms`]: a histogram family whose counts live elsewhere (in atomics of the
//! breaker or a Redis link, see [`LatencyHistogram`](shouhu_fallback::redis_link::LatencyHistogram))
//! and are copied in when `/metrics` is scraped, so the hot path never touches the registry.

use std::sync::{Arc, Mutex, PoisonError};

use prometheus::core::{Collector, Desc};
use prometheus::proto::{Bucket, Histogram, LabelPair, Metric, MetricFamily, MetricType};
use shouhu_fallback::redis_link::{HistogramSnapshot, LATENCY_BUCKETS};

/// One family over [`LATENCY_BUCKETS`]: no label, or one label with a fixed set of values,
/// every series present from the start (at zero).
#[derive(Clone, Debug)]
pub struct CopiedHistograms {
    desc: Desc,
    /// The label name and its values, in series order.
    label: Option<(&'static str, &'static [&'static str])>,
    series: Arc<Mutex<Vec<HistogramSnapshot>>>,
}

impl CopiedHistograms {
    /// A family named `name`.
    ///
    /// # Errors
    /// A name or label the Prometheus client refuses.
    pub fn new(
        name: &str,
        help: &str,
        label: Option<(&'static str, &'static [&'static str])>,
    ) -> prometheus::Result<Self> {
        let labels = label.map(|(l, _)| vec![l.to_owned()]).unwrap_or_default();
        let n = label.map_or(1, |(_, values)| values.len());
        Ok(Self {
            desc: Desc::new(name.to_owned(), help.to_owned(), labels, Default::default())?,
            label,
            series: Arc::new(Mutex::new(vec![HistogramSnapshot::default(); n])),
        })
    }

    /// Replaces series `i` (the `i`-th label value; 0 without a label).
    pub fn set(&self, i: usize, snapshot: HistogramSnapshot) {
        let mut series = self.series.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(slot) = series.get_mut(i) {
            *slot = snapshot;
        }
    }
}

impl Collector for CopiedHistograms {
    fn desc(&self) -> Vec<&Desc> {
        vec![&self.desc]
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let series = self.series.lock().unwrap_or_else(PoisonError::into_inner);
        let metrics = series
            .iter()
            .enumerate()
            .map(|(i, snap)| {
                let mut h = Histogram::default();
                h.set_sample_count(snap.count);
                h.set_sample_sum(snap.sum);
                h.set_bucket(
                    LATENCY_BUCKETS
                        .iter()
                        .zip(snap.cumulative)
                        .map(|(bound, n)| {
                            let mut b = Bucket::default();
                            b.set_upper_bound(*bound);
                            b.set_cumulative_count(n);
                            b
                        })
                        .collect(),
                );
                let mut m = Metric::default();
                if let Some((name, values)) = self.label {
                    let mut pair = LabelPair::default();
                    pair.set_name(name.to_owned());
                    pair.set_value(values.get(i).copied().unwrap_or_default().to_owned());
                    m.set_label(vec![pair]);
                }
                m.set_histogram(h);
                m
            })
            .collect();
        let mut family = MetricFamily::default();
        family.set_name(self.desc.fq_name.clone());
        family.set_help(self.desc.help.clone());
        family.set_field_type(MetricType::HISTOGRAM);
        family.set_metric(metrics);
        vec![family]
    }
}
