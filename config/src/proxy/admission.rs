//! `[admission]` of the proxy.

use serde::{Deserialize, Serialize};

use crate::validate::Validator;

/// `[admission]` of the proxy.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Admission {}

impl Admission {
    pub(crate) fn check(&self, _v: &mut Validator<'_>) {}
}
