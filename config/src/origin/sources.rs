//! `[sources]`: the three external data sources the colour rules read.

use serde::{Deserialize, Serialize};

use crate::url::HttpUrl;

/// `[sources]` of the origin. Each absent URL means: run that simulator in-process.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
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
}
