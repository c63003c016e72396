//! Who is asking: the origin's session token (a JWT, EdDSA) verified with the origin's session
//! public key, giving the subject id. Claims: `sub` (32 hex characters), `iat`, `exp`,
//! `iss = "shouhu-origin"`.
//!
//! The key file is either a PEM public key (`-----BEGIN PUBLIC KEY-----`) or the JSON the
//! origin serves at `/.well-known/shouhu/session-key`:
//! `{"alg":"EdDSA","public_key":"<raw 32-byte Ed25519 key, base64url>"}` (other fields such as
//! `kid` are ignored).
//!
//! The token comes from `Authorization: Bearer <jwt>` or, for browser pages, the cookie
//! [`COOKIE_NAME`] (the proxy's default `identity.cookie_name`).

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use shouhu_code::SubjectId;

/// The `iss` of every session token.
pub const SESSION_ISSUER: &str = "shouhu-origin";
/// The cookie that carries the session token for pages.
pub const COOKIE_NAME: &str = shouhu_config::proxy::DEFAULT_COOKIE_NAME;
/// Allowance for clocks that disagree, on `exp`.
pub const LEEWAY_SECS: u64 = 30;

/// The session key file cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct SessionKeyError {
    /// The file.
    pub path: String,
    /// Why.
    pub reason: String,
}

/// Why a request carries no valid session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// No token in the header or cookie.
    #[error("no session token")]
    Missing,
    /// Signature, algorithm, issuer or shape is wrong.
    #[error("invalid session token")]
    Invalid,
    /// Past its `exp`.
    #[error("session token expired")]
    Expired,
}

impl SessionError {
    /// The `error` code of a 401 answer, the same the origin uses, so an app sees one set
    /// whoever answered.
    #[must_use]
    pub fn code(self) -> &'static str {
        match self {
            Self::Missing => "missing_token",
            Self::Invalid => "invalid_token",
            Self::Expired => "expired_token",
        }
    }

    /// A stable label for metrics and logs.
    #[must_use]
    pub fn reason(self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::Invalid => "invalid",
            Self::Expired => "expired",
        }
    }
}

#[derive(Deserialize)]
struct KeyJson {
    alg: String,
    public_key: String,
}

#[derive(Deserialize)]
struct SessionClaims {
    sub: String,
}

/// Verifies session tokens.
#[derive(Clone)]
pub struct SessionVerifier {
    key: DecodingKey,
    validation: Validation,
}

impl std::fmt::Debug for SessionVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionVerifier").finish_non_exhaustive()
    }
}

impl SessionVerifier {
    /// Reads the key file (PEM or JSON, see the module docs).
    ///
    /// # Errors
    /// The file cannot be read or holds no Ed25519 public key.
    pub fn load(path: &Path) -> Result<Self, SessionKeyError> {
        let err = |reason: String| SessionKeyError {
            path: path.display().to_string(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        Self::from_text(&text).map_err(err)
    }

    /// Parses a PEM public key or the well-known JSON.
    ///
    /// # Errors
    /// Neither form, or not an Ed25519 key.
    pub fn from_text(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let key = if text.starts_with('{') {
            let json: KeyJson =
                serde_json::from_str(text).map_err(|e| format!("not session-key JSON: {e}"))?;
            if json.alg != "EdDSA" {
                return Err(format!("alg \"{}\" (expected EdDSA)", json.alg));
            }
            let raw = URL_SAFE_NO_PAD
                .decode(json.public_key.trim_end_matches('='))
                .map_err(|e| format!("public_key is not base64url: {e}"))?;
            if raw.len() != 32 {
                return Err(format!("public_key is {} bytes (expected 32)", raw.len()));
            }
            DecodingKey::from_ed_der(&raw)
        } else if text.starts_with("-----BEGIN") {
            DecodingKey::from_ed_pem(text.as_bytes())
                .map_err(|e| format!("not an Ed25519 PEM public key: {e}"))?
        } else {
            return Err("neither a PEM public key nor session-key JSON".to_owned());
        };
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[SESSION_ISSUER]);
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        validation.leeway = LEEWAY_SECS;
        Ok(Self { key, validation })
    }

    /// The subject of a valid token.
    ///
    /// # Errors
    /// [`SessionError::Invalid`] or [`SessionError::Expired`].
    pub fn verify(&self, token: &str) -> Result<SubjectId, SessionError> {
        let data = jsonwebtoken::decode::<SessionClaims>(token, &self.key, &self.validation)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => SessionError::Expired,
                _ => SessionError::Invalid,
            })?;
        data.claims
            .sub
            .parse::<SubjectId>()
            .map_err(|_| SessionError::Invalid)
    }

    /// The subject from request headers: `Authorization: Bearer`, else the session cookie.
    ///
    /// # Errors
    /// See [`SessionError`].
    pub fn verify_headers(
        &self,
        headers: &axum::http::HeaderMap,
    ) -> Result<SubjectId, SessionError> {
        let token = token_from_headers(headers).ok_or(SessionError::Missing)?;
        self.verify(&token)
    }
}

/// The bearer token, else the session cookie's value.
#[must_use]
pub fn token_from_headers(headers: &axum::http::HeaderMap) -> Option<String> {
    if let Some(auth) = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        && let Some(token) = auth.strip_prefix("Bearer ")
    {
        return Some(token.trim().to_owned());
    }
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE_NAME)
        .map(|(_, value)| value.to_owned())
}

/// Signs session tokens the way the origin does: for tests, demos and load generators that
/// run the issuer without an origin. Never used on the request path.
pub struct SessionSigner {
    key: jsonwebtoken::EncodingKey,
    public: [u8; 32],
}

impl std::fmt::Debug for SessionSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionSigner").finish_non_exhaustive()
    }
}

/// PKCS#8 v1 prefix of an Ed25519 private key (RFC 8410), followed by the 32-byte seed.
const PKCS8_ED25519_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

impl SessionSigner {
    /// The signer for a 32-byte Ed25519 seed.
    #[must_use]
    pub fn from_seed(seed: [u8; 32]) -> Self {
        let public = ed25519_dalek::SigningKey::from_bytes(&seed)
            .verifying_key()
            .to_bytes();
        let mut der = PKCS8_ED25519_PREFIX.to_vec();
        der.extend_from_slice(&seed);
        Self {
            key: jsonwebtoken::EncodingKey::from_ed_der(&der),
            public,
        }
    }

    /// The public key as the origin's well-known JSON (what `session_key_file` may hold).
    #[must_use]
    pub fn key_json(&self) -> String {
        serde_json::json!({
            "alg": "EdDSA",
            "public_key": URL_SAFE_NO_PAD.encode(self.public),
        })
        .to_string()
    }

    /// A token for `subject`, issued at `iat`, valid until `exp`.
    ///
    /// # Errors
    /// Signing fails (it does not for a valid seed).
    pub fn token(
        &self,
        subject: &SubjectId,
        iat: u64,
        exp: u64,
    ) -> Result<String, jsonwebtoken::errors::Error> {
        let claims = serde_json::json!({
            "sub": subject.to_hex(),
            "iat": iat,
            "exp": exp,
            "iss": SESSION_ISSUER,
        });
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(Algorithm::EdDSA),
            &claims,
            &self.key,
        )
    }
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn tokens_verify_with_the_published_key_only() {
        let signer = SessionSigner::from_seed([7; 32]);
        let verifier = SessionVerifier::from_text(&signer.key_json()).unwrap();
        let subject = SubjectId([0xab; 16]);
        let now = shouhu_code::time::now();
        let token = signer.token(&subject, now, now + 600).unwrap();
        assert_eq!(verifier.verify(&token), Ok(subject));

        let expired = signer.token(&subject, now - 7200, now - 3600).unwrap();
        assert_eq!(verifier.verify(&expired), Err(SessionError::Expired));

        let other = SessionSigner::from_seed([8; 32]);
        let forged = other.token(&subject, now, now + 600).unwrap();
        assert_eq!(verifier.verify(&forged), Err(SessionError::Invalid));
        assert_eq!(verifier.verify("not.a.jwt"), Err(SessionError::Invalid));
    }

    #[test]
    fn header_or_cookie_carries_the_token() {
        let mut h = axum::http::HeaderMap::new();
        assert_eq!(token_from_headers(&h), None);
        h.insert("cookie", "a=b; shouhu_session=tok1".parse().unwrap());
        assert_eq!(token_from_headers(&h).as_deref(), Some("tok1"));
        h.insert("authorization", "Bearer tok2".parse().unwrap());
        assert_eq!(token_from_headers(&h).as_deref(), Some("tok2"));
    }

    #[test]
    fn key_files_in_pem_or_json() {
        assert!(SessionVerifier::from_text("hello").is_err());
        assert!(SessionVerifier::from_text(r#"{"alg":"ES256","public_key":"AAAA"}"#).is_err());
        let pem = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=\n-----END PUBLIC KEY-----\n";
        assert!(SessionVerifier::from_text(pem).is_ok());
    }
}
