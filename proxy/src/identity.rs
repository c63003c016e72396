//! Who is asking: the origin's session token, verified once at the edge and then remembered.
//!
//! An Ed25519 verification costs more than a whole cache hit, so a verified token's subject is
//! kept in a bounded cache keyed by the SHA-256 of the token, until the token's `exp`. Only
//! successes are cached: a forged token is verified (and refused) every time, and its hash
//! never displaces a real session. The key is a hash, so the cache holds no bearer secrets.

use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use shouhu_code::SubjectId;
use shouhu_code::time::UnixTime;
use shouhu_fallback::session::{LEEWAY_SECS, SessionVerifier};

/// Why a request has no verified subject: missing, invalid or expired token.
/// [`AuthError::reason`] gives the metric label.
pub use shouhu_fallback::session::SessionError as AuthError;

/// Verified tokens kept at most this long, whatever their `exp` says (a bound on how long a
/// session-key rotation takes to bite).
pub const MAX_CACHED_FOR: Duration = Duration::from_secs(3600);

#[derive(Clone, Copy, Debug)]
struct Verified {
    subject: SubjectId,
    /// The token's `exp`, plus the verifier's leeway.
    valid_until: UnixTime,
}

/// Expires each entry when its token does.
struct UntilExp;

impl moka::Expiry<[u8; 32], Verified> for UntilExp {
    fn expire_after_create(
        &self,
        _key: &[u8; 32],
        value: &Verified,
        _created_at: Instant,
    ) -> Option<Duration> {
        let left = value.valid_until.saturating_sub(shouhu_code::time::now());
        Some(Duration::from_secs(left).min(MAX_CACHED_FOR))
    }
}

/// Session verification with a cache of verified tokens; cheap to share behind an `Arc`.
pub struct Identity {
    verifier: SessionVerifier,
    verified: moka::sync::Cache<[u8; 32], Verified>,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("cached", &self.verified.entry_count())
            .finish_non_exhaustive()
    }
}

impl Identity {
    /// Verifies with `verifier`, remembering up to `max_entries` verified tokens.
    #[must_use]
    pub fn new(verifier: SessionVerifier, max_entries: u64) -> Self {
        Self {
            verifier,
            verified: moka::sync::Cache::builder()
                .max_capacity(max_entries.max(1))
                .expire_after(UntilExp)
                .build(),
        }
    }

    /// The subject of a valid token.
    ///
    /// # Errors
    /// [`AuthError::Invalid`] or [`AuthError::Expired`] (and [`AuthError::Missing`] for an
    /// empty token).
    pub fn verify(&self, token: &str) -> Result<SubjectId, AuthError> {
        if token.is_empty() {
            return Err(AuthError::Missing);
        }
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let now = shouhu_code::time::now();
        if let Some(v) = self.verified.get(&key) {
            // moka expires lazily; the check here is exact.
            if now < v.valid_until {
                return Ok(v.subject);
            }
            self.verified.invalidate(&key);
            return Err(AuthError::Expired);
        }
        let subject = self.verifier.verify(token)?;
        // The signature is good, so the payload is the JSON the verifier just accepted.
        if let Some(exp) = token_exp(token) {
            self.verified.insert(
                key,
                Verified {
                    subject,
                    valid_until: exp.saturating_add(LEEWAY_SECS),
                },
            );
        }
        Ok(subject)
    }

    /// Tokens remembered now (approximate).
    #[must_use]
    pub fn cached(&self) -> u64 {
        self.verified.entry_count()
    }
}

/// `exp` of a JWT whose signature has been checked.
fn token_exp(token: &str) -> Option<UnixTime> {
    #[derive(serde::Deserialize)]
    struct Exp {
        exp: UnixTime,
    }
    let payload = token.split('.').nth(1)?;
    let json = URL_SAFE_NO_PAD.decode(payload).ok()?;
    serde_json::from_slice::<Exp>(&json).ok().map(|e| e.exp)
}

/// The session token of a request: `Authorization: Bearer <token>`, else the cookie
/// `cookie_name`. Borrows from the header values, so the hot path copies nothing.
#[must_use]
pub fn token_str<'a>(
    authorization: Option<&'a [u8]>,
    cookie: Option<&'a [u8]>,
    cookie_name: &str,
) -> Option<&'a str> {
    if let Some(auth) = authorization.and_then(|a| std::str::from_utf8(a).ok())
        && let Some((scheme, token)) = auth.trim().split_once(' ')
        && scheme.eq_ignore_ascii_case("bearer")
    {
        let token = token.trim();
        if !token.is_empty() {
            return Some(token);
        }
    }
    std::str::from_utf8(cookie?)
        .ok()?
        .split(';')
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == cookie_name)
        .map(|(_, value)| value.trim())
        .filter(|value| !value.is_empty())
}

/// [`token_str`], owned.
#[must_use]
pub fn token_from(
    authorization: Option<&[u8]>,
    cookie: Option<&[u8]>,
    cookie_name: &str,
) -> Option<String> {
    token_str(authorization, cookie, cookie_name).map(str::to_owned)
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used, reason = "tests")]
    use shouhu_fallback::session::SessionSigner;

    use super::*;

    fn setup() -> (SessionSigner, Identity) {
        let signer = SessionSigner::from_seed([7; 32]);
        let verifier = SessionVerifier::from_text(&signer.key_json()).unwrap();
        (signer, Identity::new(verifier, 100))
    }

    #[test]
    fn good_tokens_verify_and_are_remembered() {
        let (signer, identity) = setup();
        let subject = SubjectId([0xab; 16]);
        let now = shouhu_code::time::now();
        let token = signer.token(&subject, now, now + 600).unwrap();
        assert_eq!(identity.verify(&token), Ok(subject));
        identity.verified.run_pending_tasks();
        assert_eq!(identity.cached(), 1);
        assert_eq!(identity.verify(&token), Ok(subject));
        assert_eq!(token_exp(&token), Some(now + 600));
    }

    #[test]
    fn bad_tokens_are_refused_and_not_remembered() {
        let (signer, identity) = setup();
        let subject = SubjectId([0xab; 16]);
        let now = shouhu_code::time::now();
        let expired = signer.token(&subject, now - 7200, now - 3600).unwrap();
        assert_eq!(identity.verify(&expired), Err(AuthError::Expired));
        let forged = SessionSigner::from_seed([8; 32])
            .token(&subject, now, now + 600)
            .unwrap();
        assert_eq!(identity.verify(&forged), Err(AuthError::Invalid));
        assert_eq!(identity.verify(""), Err(AuthError::Missing));
        // alg "none": header {"alg":"none"}, the same claims, no signature.
        let good = signer.token(&subject, now, now + 600).unwrap();
        let payload = good.split('.').nth(1).unwrap();
        let none = format!(
            "{}.{payload}.",
            URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#)
        );
        assert_eq!(identity.verify(&none), Err(AuthError::Invalid));
        identity.verified.run_pending_tasks();
        assert_eq!(identity.cached(), 0);
    }

    #[test]
    fn a_remembered_token_still_expires() {
        let (signer, identity) = setup();
        let subject = SubjectId([1; 16]);
        let now = shouhu_code::time::now();
        let token = signer.token(&subject, now - 100, now + 5).unwrap();
        assert_eq!(identity.verify(&token), Ok(subject));
        // Pretend the entry outlived its token (moka expiry is lazy).
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        identity.verified.insert(
            key,
            Verified {
                subject,
                valid_until: now - 1,
            },
        );
        assert_eq!(identity.verify(&token), Err(AuthError::Expired));
    }

    #[test]
    fn bearer_header_wins_over_the_cookie() {
        let name = "shouhu_session";
        assert_eq!(token_str(None, None, name), None);
        let cookie = Some(&b"a=b; shouhu_session=tok1; c=d"[..]);
        assert_eq!(token_str(None, cookie, name), Some("tok1"));
        assert_eq!(token_str(Some(b"Bearer tok2"), cookie, name), Some("tok2"));
        assert_eq!(token_str(Some(b"bearer  tok3 "), None, name), Some("tok3"));
        assert_eq!(token_str(Some(b"Basic xyz"), cookie, name), Some("tok1"));
        assert_eq!(token_str(None, Some(b"shouhu_session="), name), None);
        assert_eq!(token_str(None, Some(b"other_session=x"), name), None);
        assert_eq!(
            token_from(Some(b"Bearer t"), None, name).as_deref(),
            Some("t")
        );
    }
}
