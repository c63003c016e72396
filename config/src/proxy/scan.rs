//! `[scan]`: when venue scans are verified at the edge with the trust list rather than by
//! the origin.

use serde::{Deserialize, Serialize};

use crate::string_enum::string_enum;

string_enum! {
    /// When the proxy verifies a scanned code itself.
    #[derive(Default)]
    pub enum VerifyAtEdge as "verify_at_edge value" {
        /// Only when the origin cannot answer in time (the default).
        #[default]
        WhenOriginUnavailable = "when-origin-unavailable",
        /// Always; the origin never sees scans.
        Always = "always",
    }
}

/// Default `scan.verify_at_edge`.
pub const DEFAULT_VERIFY_AT_EDGE: VerifyAtEdge = VerifyAtEdge::WhenOriginUnavailable;

/// `[scan]` of the proxy.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Scan {
    /// Default [`DEFAULT_VERIFY_AT_EDGE`].
    pub verify_at_edge: VerifyAtEdge,
}
