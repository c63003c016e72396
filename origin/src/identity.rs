//! Pseudonymous subject ids and session tokens.
//!
//! - The subject id is the first 16 bytes of HMAC-SHA256(secret, normalised ID number): stable,
//!   not reversible without the secret. The raw ID number is never stored or logged.
//! - A session token is a JWT signed with EdDSA (Ed25519): `sub` (32 lowercase hex), `iat`,
//!   `exp`, `iss = "shouhu-origin"`. Its public key is served as JSON at
//!   [`SESSION_KEY_WELL_KNOWN_PATH`](shouhu_config::proxy::SESSION_KEY_WELL_KNOWN_PATH).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use shouhu_code::SubjectId;
use shouhu_code::time::UnixTime;

use crate::error::ApiError;
use crate::validate::IdNumber;

/// The `iss` of every session token.
pub const SESSION_ISSUER: &str = "shouhu-origin";

/// Turns ID numbers into subject ids with a secret key.
#[derive(Clone)]
pub struct SubjectHasher {
    secret: Vec<u8>,
}

impl std::fmt::Debug for SubjectHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SubjectHasher(<redacted>)")
    }
}

impl SubjectHasher {
    /// A hasher with this secret.
    #[must_use]
    pub fn new(secret: &[u8]) -> Self {
        Self {
            secret: secret.to_vec(),
        }
    }

    /// The subject id of a checked ID number.
    #[must_use]
    pub fn subject(&self, id: &IdNumber) -> SubjectId {
        // HMAC accepts keys of any length, so this cannot fail.
        let Ok(mut mac) = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.secret) else {
            return SubjectId([0; 16]);
        };
        mac.update(id.as_str().as_bytes());
        let digest = mac.finalize().into_bytes();
        let mut out = [0u8; 16];
        out.copy_from_slice(&digest[..16]);
        SubjectId(out)
    }

    /// A keyed hash of a phone number, so the phone is not stored in clear either.
    #[must_use]
    pub fn phone_hash(&self, phone: &str) -> String {
        let Ok(mut mac) = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.secret) else {
            return String::new();
        };
        mac.update(b"phone:");
        mac.update(phone.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }
}

/// The claims of a session token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionClaims {
    /// Subject id, 32 lowercase hex characters.
    pub sub: String,
    /// Issued at.
    pub iat: UnixTime,
    /// Expires at.
    pub exp: UnixTime,
    /// Always [`SESSION_ISSUER`].
    pub iss: String,
}

/// The JSON served at the session-key well-known path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionKeyJson {
    /// Always `EdDSA`.
    pub alg: String,
    /// 16 hex characters: the first 8 bytes of SHA-256 of the public key.
    pub kid: String,
    /// The raw 32-byte Ed25519 public key, base64url without padding.
    pub public_key: String,
}

/// Signs and checks session tokens.
#[derive(Clone)]
pub struct SessionKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    public: [u8; 32],
    kid: String,
}

impl std::fmt::Debug for SessionKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionKeys")
            .field("kid", &self.kid)
            .finish()
    }
}

/// PKCS#8 v1 prefix of an Ed25519 private key; the 32-byte seed follows it.
const PKCS8_ED25519_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

impl SessionKeys {
    /// Keys from a 32-byte Ed25519 seed.
    #[must_use]
    pub fn from_seed(seed: [u8; 32]) -> Self {
        let signing = ed25519_public(&seed);
        let mut der = PKCS8_ED25519_PREFIX.to_vec();
        der.extend_from_slice(&seed);
        let kid = hex::encode(&Sha256::digest(signing)[..8]);
        Self {
            encoding: EncodingKey::from_ed_der(&der),
            decoding: DecodingKey::from_ed_der(&signing),
            public: signing,
            kid,
        }
    }

    /// The well-known JSON of the public key.
    #[must_use]
    pub fn public_json(&self) -> SessionKeyJson {
        SessionKeyJson {
            alg: "EdDSA".to_owned(),
            kid: self.kid.clone(),
            public_key: URL_SAFE_NO_PAD.encode(self.public),
        }
    }

    /// A token for `subject`, valid from `now` for `ttl_secs`.
    ///
    /// # Errors
    /// Signing failed (a broken key).
    pub fn issue(
        &self,
        subject: SubjectId,
        now: UnixTime,
        ttl_secs: u64,
    ) -> Result<(String, UnixTime), ApiError> {
        let claims = SessionClaims {
            sub: subject.to_string(),
            iat: now,
            exp: now + ttl_secs,
            iss: SESSION_ISSUER.to_owned(),
        };
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        let token = jsonwebtoken::encode(&header, &claims, &self.encoding)
            .map_err(|e| ApiError::internal(format!("signing a session token: {e}")))?;
        Ok((token, claims.exp))
    }

    /// The subject of a valid token.
    ///
    /// # Errors
    /// [`ApiError::Unauthenticated`] with `expired_token` or `invalid_token`.
    pub fn check(&self, token: &str) -> Result<SubjectId, ApiError> {
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[SESSION_ISSUER]);
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        validation.leeway = 0;
        let data = jsonwebtoken::decode::<SessionClaims>(token, &self.decoding, &validation)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => {
                    ApiError::Unauthenticated("expired_token")
                }
                _ => ApiError::Unauthenticated("invalid_token"),
            })?;
        data.claims
            .sub
            .parse()
            .map_err(|_| ApiError::Unauthenticated("invalid_token"))
    }
}

fn ed25519_public(seed: &[u8; 32]) -> [u8; 32] {
    // The code crate owns Ed25519; derive the public key through it rather than a second
    // dependency.
    let pair = shouhu_code::KeyPair::from_seed(
        *seed,
        shouhu_code::KeyRole::Origin,
        shouhu_code::Region::default(),
        0,
        1,
    );
    pair.public().public_key
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn subject_is_a_keyed_hash() {
        let id = crate::validate::id_number("11010519491231002X").unwrap();
        let a = SubjectHasher::new(b"one").subject(&id);
        let b = SubjectHasher::new(b"two").subject(&id);
        assert_ne!(a, b);
        assert_eq!(a, SubjectHasher::new(b"one").subject(&id));
        assert_eq!(a.to_string().len(), 32);
    }

    #[test]
    fn tokens_round_trip_and_fail_closed() {
        let keys = SessionKeys::from_seed([9; 32]);
        let subject = SubjectId([0xab; 16]);
        let now = shouhu_code::time::now();
        let (token, exp) = keys.issue(subject, now, 60).unwrap();
        assert_eq!(exp, now + 60);
        assert_eq!(keys.check(&token).unwrap(), subject);
        let other = SessionKeys::from_seed([8; 32]);
        assert_eq!(other.check(&token).unwrap_err().code(), "invalid_token");
        let (old, _) = keys.issue(subject, now - 120, 60).unwrap();
        assert_eq!(keys.check(&old).unwrap_err().code(), "expired_token");
        let json = keys.public_json();
        assert_eq!(json.kid.len(), 16);
        assert_eq!(URL_SAFE_NO_PAD.decode(json.public_key).unwrap().len(), 32);
    }
}
