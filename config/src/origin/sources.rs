//! `[sources]`: the three external data sources the colour rules read, how the origin calls
//! them, and how the in-process simulators behave.

use serde::{Deserialize, Serialize};

use crate::duration::Duration;
use crate::url::HttpUrl;
use crate::validate::Validator;

/// Default `sources.timeout`.
pub const DEFAULT_SOURCE_TIMEOUT: Duration = Duration::from_millis(500);
/// Default `sources.cache_ttl`.
pub const DEFAULT_SOURCE_CACHE_TTL: Duration = Duration::from_secs(2);
/// Default `sources.seed`.
pub const DEFAULT_SOURCE_SEED: u64 = 2020;
/// Default `sources.latency`.
pub const DEFAULT_SOURCE_LATENCY: Duration = Duration::from_millis(0);
/// Default `sources.failure_rate`.
pub const DEFAULT_SOURCE_FAILURE_RATE: f64 = 0.0;

/// `[sources]` of the origin. Each absent URL means: run that simulator in-process.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Sources {
    /// Health commission: cases, close contacts, nucleic-acid tests, vaccination.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health: Option<HttpUrl>,
    /// Public security: identity and household registration.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub police: Option<HttpUrl>,
    /// Carriers: where the phone has been in the last 14 days.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub carrier: Option<HttpUrl>,
    /// Each call to a source gives up after this. Default [`DEFAULT_SOURCE_TIMEOUT`].
    pub timeout: Duration,
    /// A source's answer is reused for this long; `0s` = never. Default
    /// [`DEFAULT_SOURCE_CACHE_TTL`].
    pub cache_ttl: Duration,
    /// Seed of the in-process simulators' synthetic data. Default [`DEFAULT_SOURCE_SEED`].
    pub seed: u64,
    /// Added latency of the in-process simulators. Default [`DEFAULT_SOURCE_LATENCY`].
    pub latency: Duration,
    /// Share of calls the in-process simulators fail with 503, in `[0, 1]`. Default
    /// [`DEFAULT_SOURCE_FAILURE_RATE`].
    pub failure_rate: f64,
}

impl Default for Sources {
    fn default() -> Self {
        Self {
            health: None,
            police: None,
            carrier: None,
            timeout: DEFAULT_SOURCE_TIMEOUT,
            cache_ttl: DEFAULT_SOURCE_CACHE_TTL,
            seed: DEFAULT_SOURCE_SEED,
            latency: DEFAULT_SOURCE_LATENCY,
            failure_rate: DEFAULT_SOURCE_FAILURE_RATE,
        }
    }
}

impl Sources {
    pub(crate) fn check(&self, v: &mut Validator<'_>) {
        v.positive("sources.timeout", self.timeout);
        if !self.failure_rate.is_finite() || !(0.0..=1.0).contains(&self.failure_rate) {
            v.error(
                "sources.failure_rate",
                format_args!("must be a number from 0 to 1 (got {})", self.failure_rate),
            );
        }
    }
}
