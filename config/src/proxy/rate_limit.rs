//! `[rate_limit]` of the proxy.

use serde::{Deserialize, Serialize};

use crate::validate::Validator;

/// `[rate_limit]` of the proxy.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimit {}

impl RateLimit {
    pub(crate) fn check(&self, _v: &mut Validator<'_>) {}
}
