//! Signing a code: claims in, `HZ1:` text out.

use crate::claims::{Claims, ClaimsError};
use crate::cose::{self, EXTERNAL_AAD};
use crate::key::{KeyPair, KeyRefusal};

/// Why a code was not signed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignError {
    /// A claim is out of range.
    #[error("claims: {0}")]
    Claims(#[from] ClaimsError),
    /// The key may not sign these claims (role, region or window).
    #[error("key {kid}: {refusal}")]
    Key {
        /// The key's id.
        kid: crate::key::Kid,
        /// What it may not do.
        refusal: KeyRefusal,
    },
    /// The COSE layer failed to serialize.
    #[error("cose: {0}")]
    Cose(String),
}

impl KeyPair {
    /// Signs the claims into a code. The key must be allowed to sign them, so a key never
    /// produces a code that its own trust-list entry would refuse.
    ///
    /// # Errors
    /// Claims out of range, or a key whose role, region or window does not allow them.
    pub fn sign(&self, claims: &Claims) -> Result<String, SignError> {
        claims.check()?;
        self.public()
            .allows(claims)
            .map_err(|refusal| SignError::Key {
                kid: self.kid(),
                refusal,
            })?;
        let cose = cose::builder(self.kid(), claims.to_cbor())
            .create_signature(EXTERNAL_AAD, |data| self.sign_bytes(data))
            .build();
        cose::encode(cose).map_err(|e| SignError::Cose(e.to_string()))
    }
}
