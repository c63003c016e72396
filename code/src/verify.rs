//! Verifying a code, offline, against a trust list.
//!
//! The checks run in this order, and each failure has its own [`VerifyError`] with a stable
//! [`VerifyError::reason`] label: prefix, length, Base45, COSE_Sign1 structure and tags,
//! header (alg and kid, nothing else), key lookup by kid, signature (every key with that kid is
//! tried), claims, what the key may sign (role, region, window), issue and expiry time with a
//! clock-skew allowance, and for fallback codes the age of their data.

use std::time::Duration;

use ed25519_dalek::{Signature, VerifyingKey};

use crate::claims::{Claims, ClaimsError, Source};
use crate::cose::{self, EXTERNAL_AAD, MAX_CODE_CHARS, ParseFailure};
use crate::key::{KeyRefusal, Kid, PublicKey};
use crate::time::{UnixTime, format_rfc3339};
use crate::trust::TrustList;

/// Default allowance for clocks that disagree, on both issue and expiry time.
pub const DEFAULT_CLOCK_SKEW: Duration = Duration::from_secs(30);

/// What the verifier accepts beyond a good signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerifyPolicy {
    /// Allowance for clock differences. Default [`DEFAULT_CLOCK_SKEW`].
    pub clock_skew: Duration,
    /// Oldest data a fallback code may carry, or `None` for no limit. Default `None`.
    pub max_fallback_age: Option<Duration>,
}

impl Default for VerifyPolicy {
    fn default() -> Self {
        Self {
            clock_skew: DEFAULT_CLOCK_SKEW,
            max_fallback_age: None,
        }
    }
}

/// Why a code is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The text does not start with `HZ1:`.
    #[error("not a health code: it does not start with \"HZ1:\"")]
    WrongPrefix,
    /// The text is longer than any real code.
    #[error("code is {0} characters long (at most {MAX_CODE_CHARS})")]
    TooLong(usize),
    /// The text after the prefix is not canonical Base45.
    #[error("bad Base45 after the prefix")]
    BadBase45,
    /// The bytes are not one tagged COSE_Sign1.
    #[error("not a COSE_Sign1: {0}")]
    NotCoseSign1(String),
    /// The COSE_Sign1 is wrapped in, or wraps, another tag.
    #[error("extra CBOR tags around the COSE_Sign1")]
    ExtraTags,
    /// The algorithm in the protected header is not EdDSA.
    #[error("unsupported algorithm {0}")]
    UnsupportedAlgorithm(String),
    /// The headers are not exactly alg and an 8-byte kid, protected.
    #[error("bad header: {0}")]
    BadHeader(&'static str),
    /// No key in the trust list has this kid.
    #[error("unknown kid {0}")]
    UnknownKid(Kid),
    /// No key with this kid verifies the signature.
    #[error("bad signature")]
    BadSignature,
    /// The signed payload is not our claims.
    #[error("bad claims: {0}")]
    BadClaims(String),
    /// The key may not sign codes from this source.
    #[error("{0}")]
    KeyRole(KeyRefusal),
    /// The key may not sign codes of this issuer.
    #[error("{0}")]
    KeyRegion(KeyRefusal),
    /// The code was issued outside the key's validity window.
    #[error("{0}")]
    KeyWindow(KeyRefusal),
    /// Issued in the future, beyond the clock-skew allowance.
    #[error("not yet valid: issued at {}, now {}", format_rfc3339(*issued_at), format_rfc3339(*now))]
    NotYetValid {
        /// The code's issue time.
        issued_at: UnixTime,
        /// The verifier's time.
        now: UnixTime,
    },
    /// Past its expiry, beyond the clock-skew allowance.
    #[error("expired at {}, now {}", format_rfc3339(*expires_at), format_rfc3339(*now))]
    Expired {
        /// The code's expiry.
        expires_at: UnixTime,
        /// The verifier's time.
        now: UnixTime,
    },
    /// A fallback code whose data is older than the policy allows.
    #[error("fallback data is {age_secs} s old (at most {max_secs} s)")]
    StaleFallback {
        /// Age of the data at verification.
        age_secs: u64,
        /// The policy's maximum.
        max_secs: u64,
    },
}

impl VerifyError {
    /// A stable snake_case label: for metrics, scanner answers and scripts.
    #[must_use]
    pub fn reason(&self) -> &'static str {
        match self {
            Self::WrongPrefix => "wrong_prefix",
            Self::TooLong(_) => "too_long",
            Self::BadBase45 => "bad_base45",
            Self::NotCoseSign1(_) => "not_cose_sign1",
            Self::ExtraTags => "extra_tags",
            Self::UnsupportedAlgorithm(_) => "unsupported_algorithm",
            Self::BadHeader(_) => "bad_header",
            Self::UnknownKid(_) => "unknown_kid",
            Self::BadSignature => "bad_signature",
            Self::BadClaims(_) => "bad_claims",
            Self::KeyRole(_) => "key_role",
            Self::KeyRegion(_) => "key_region",
            Self::KeyWindow(_) => "key_window",
            Self::NotYetValid { .. } => "not_yet_valid",
            Self::Expired { .. } => "expired",
            Self::StaleFallback { .. } => "stale_fallback",
        }
    }
}

impl From<ParseFailure> for VerifyError {
    fn from(f: ParseFailure) -> Self {
        match f {
            ParseFailure::WrongPrefix => Self::WrongPrefix,
            ParseFailure::TooLong(n) => Self::TooLong(n),
            ParseFailure::Base45 => Self::BadBase45,
            ParseFailure::NotCoseSign1(m) => Self::NotCoseSign1(m),
            ParseFailure::ExtraTags => Self::ExtraTags,
            ParseFailure::Header(m) => Self::BadHeader(m),
        }
    }
}

impl From<KeyRefusal> for VerifyError {
    fn from(r: KeyRefusal) -> Self {
        match r {
            KeyRefusal::Role { .. } => Self::KeyRole(r),
            KeyRefusal::Region { .. } => Self::KeyRegion(r),
            KeyRefusal::Window { .. } => Self::KeyWindow(r),
        }
    }
}

/// A code that passed every check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// What it says.
    pub claims: Claims,
    /// The trust-list key that signed it.
    pub key: PublicKey,
}

/// Reads a code's claims WITHOUT checking its signature, key or times: for consistency checks on
/// codes from a source already trusted (e.g. that a code the origin returned names the subject
/// it was asked for), never to decide whether a code is valid.
///
/// # Errors
/// The text is not a well-formed code or its payload is not our claims.
pub fn peek_claims(text: &str) -> Result<Claims, VerifyError> {
    let parsed = cose::parse(text)?;
    let payload = parsed.cose.payload.as_deref().unwrap_or_default();
    Claims::from_cbor(payload).map_err(|ClaimsError(m)| VerifyError::BadClaims(m))
}

/// Verifies a code's text at time `now` against the trust list.
///
/// # Errors
/// The first check that fails, in the order of the module docs.
pub fn verify(
    text: &str,
    trust: &TrustList,
    now: UnixTime,
    policy: &VerifyPolicy,
) -> Result<Verified, VerifyError> {
    let parsed = cose::parse(text)?;
    if !cose::is_eddsa(parsed.alg.as_ref()) {
        return Err(match parsed.alg {
            None => VerifyError::BadHeader("no algorithm in the protected header"),
            Some(alg) => VerifyError::UnsupportedAlgorithm(format!("{alg:?}")),
        });
    }
    let mut kid = [0u8; 8];
    kid.copy_from_slice(&parsed.kid);
    let kid = Kid(kid);
    let mut candidates = trust.keys_for(kid).peekable();
    if candidates.peek().is_none() {
        return Err(VerifyError::UnknownKid(kid));
    }
    let signature =
        Signature::from_slice(&parsed.cose.signature).map_err(|_| VerifyError::BadSignature)?;
    let key = candidates
        .find(|key| {
            VerifyingKey::from_bytes(&key.public_key).is_ok_and(|vk| {
                parsed
                    .cose
                    .verify_signature(EXTERNAL_AAD, |_, data| vk.verify_strict(data, &signature))
                    .is_ok()
            })
        })
        .ok_or(VerifyError::BadSignature)?;
    let payload = parsed.cose.payload.as_deref().unwrap_or_default();
    let claims = Claims::from_cbor(payload).map_err(|ClaimsError(m)| VerifyError::BadClaims(m))?;
    key.allows(&claims)?;
    let skew = policy.clock_skew.as_secs();
    if claims.issued_at > now.saturating_add(skew) {
        return Err(VerifyError::NotYetValid {
            issued_at: claims.issued_at,
            now,
        });
    }
    if now > claims.expires_at.saturating_add(skew) {
        return Err(VerifyError::Expired {
            expires_at: claims.expires_at,
            now,
        });
    }
    if let (Source::Fallback, Some(max)) = (claims.source, policy.max_fallback_age) {
        let age_secs = now.saturating_sub(claims.as_of);
        if age_secs > max.as_secs() {
            return Err(VerifyError::StaleFallback {
                age_secs,
                max_secs: max.as_secs(),
            });
        }
    }
    Ok(Verified {
        claims,
        key: key.clone(),
    })
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used, reason = "tests")]
    use super::*;
    use crate::claims::tests::sample;
    use crate::key::{KeyPair, KeyRole};

    #[test]
    fn peeking_reads_claims_without_a_trust_list() {
        let key = KeyPair::from_seed([5; 32], KeyRole::Origin, sample().issuer, 0, 2_000_000_000);
        let text = key.sign(&sample()).unwrap();
        assert_eq!(peek_claims(&text).unwrap(), sample());
        assert_eq!(peek_claims("HC1:x"), Err(VerifyError::WrongPrefix));
    }

    #[test]
    fn every_key_sharing_a_kid_is_tried() {
        let region = "370000".parse().unwrap();
        let real = KeyPair::from_seed([1; 32], KeyRole::Origin, region, 0, 2_000_000_000);
        let mut impostor =
            KeyPair::from_seed([2; 32], KeyRole::Origin, sample().issuer, 0, 2_000_000_000)
                .public()
                .clone();
        impostor.kid = real.kid();
        let text = real.sign(&sample()).unwrap();
        let policy = VerifyPolicy::default();
        let now = sample().issued_at;
        let both = TrustList::unchecked(vec![impostor.clone(), real.public().clone()]);
        assert_eq!(
            verify(&text, &both, now, &policy).unwrap().key,
            *real.public()
        );
        let only_impostor = TrustList::unchecked(vec![impostor]);
        assert_eq!(
            verify(&text, &only_impostor, now, &policy),
            Err(VerifyError::BadSignature)
        );
    }
}
