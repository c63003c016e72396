//! The answer to a venue scanner's `POST /api/verify {"code": "HZ1:..."}`, one shape wherever
//! it is verified (the origin, or the proxy at the edge): `{valid: true, colour, kid, claims}`
//! or `{valid: false, reason, message}`.

use serde::{Deserialize, Serialize};

use crate::claims::{Claims, Colour};
use crate::verify::{Verified, VerifyError};

/// A scanner's request body.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ScanRequest {
    /// The code text read from the QR.
    pub code: String,
}

/// What a scanner is told.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ScanAnswer {
    /// Whether the code is valid now.
    pub valid: bool,
    /// Why not, as a stable label ([`VerifyError::reason`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
    /// Why not, for people.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The colour, when valid.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub colour: Option<Colour>,
    /// Everything the code says, when valid.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub claims: Option<Claims>,
    /// The key that signed it, when valid.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
}

impl From<Result<Verified, VerifyError>> for ScanAnswer {
    fn from(result: Result<Verified, VerifyError>) -> Self {
        match result {
            Ok(v) => Self {
                valid: true,
                reason: None,
                message: None,
                colour: Some(v.claims.colour),
                kid: Some(v.key.kid.to_string()),
                claims: Some(v.claims),
            },
            Err(e) => Self {
                valid: false,
                reason: Some(e.reason()),
                message: Some(e.to_string()),
                colour: None,
                claims: None,
                kid: None,
            },
        }
    }
}
