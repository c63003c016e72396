//! `scan` at the edge: a venue scanner's `POST /api/verify {"code": "HZ1:..."}` verified with
//! the trust list (the origin's keys and this proxy's fallback keys) without the origin.
//! The answer has the origin's shape: `{valid, colour, kid, claims}` or
//! `{valid: false, reason, message}`.

use std::sync::{Arc, RwLock};

use bytes::Bytes;
use pingora::proxy::Session;
use shouhu_code::scan::{ScanAnswer, ScanRequest};
use shouhu_code::{TrustList, VerifyPolicy, time};

/// Largest scan body read at the edge, bytes (a code is well under 1 KiB).
pub const MAX_SCAN_BODY: usize = 16 * 1024;

struct Published {
    list: TrustList,
    json: Bytes,
}

/// The trust list the edge verifies with and publishes at
/// `/.well-known/shouhu/trust-list.json`; replaced whole when keys change.
pub struct EdgeTrust {
    current: RwLock<Arc<Published>>,
}

impl std::fmt::Debug for EdgeTrust {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EdgeTrust").finish_non_exhaustive()
    }
}

impl EdgeTrust {
    /// Verifies with `list`.
    #[must_use]
    pub fn new(list: TrustList) -> Self {
        Self {
            current: RwLock::new(Arc::new(Self::publish(list))),
        }
    }

    fn publish(list: TrustList) -> Published {
        let json = Bytes::from(list.to_json_pretty());
        Published { list, json }
    }

    /// Replaces the list (a key rotation).
    pub fn set(&self, list: TrustList) {
        let next = Arc::new(Self::publish(list));
        match self.current.write() {
            Ok(mut guard) => *guard = next,
            Err(poisoned) => *poisoned.into_inner() = next,
        }
    }

    fn get(&self) -> Arc<Published> {
        match self.current.read() {
            Ok(guard) => Arc::clone(&guard),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Number of keys.
    #[must_use]
    pub fn len(&self) -> usize {
        self.get().list.keys().len()
    }

    /// Whether no key is trusted.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The trust list as published JSON.
    #[must_use]
    pub fn json(&self) -> Bytes {
        self.get().json.clone()
    }

    /// The answer to a scan body, or `None` when it holds no code.
    #[must_use]
    pub fn answer(&self, body: &[u8]) -> Option<Bytes> {
        let request: ScanRequest = serde_json::from_slice(body).ok()?;
        let published = self.get();
        let response = ScanAnswer::from(shouhu_code::verify(
            request.code.trim(),
            &published.list,
            time::now(),
            &VerifyPolicy::default(),
        ));
        serde_json::to_vec(&response).ok().map(Bytes::from)
    }
}

/// Reads the whole request body, at most `max` bytes; `None` when larger.
///
/// # Errors
/// The client is gone.
pub async fn read_body(session: &mut Session, max: usize) -> pingora::Result<Option<Vec<u8>>> {
    let mut body = Vec::new();
    while let Some(chunk) = session.read_request_body().await? {
        if body.len() + chunk.len() > max {
            return Ok(None);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Some(body))
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used, reason = "tests")]
    use shouhu_code::{Claims, CodeId, Colour, KeyPair, KeyRole, Region, Source, SubjectId};

    use super::*;

    #[test]
    fn verifies_codes_of_listed_keys_only() {
        let now = time::now();
        let region: Region = "370000".parse().unwrap();
        let key = KeyPair::from_seed(
            [3; 32],
            KeyRole::Fallback,
            region.clone(),
            now - 10,
            now + 3600,
        );
        let claims = Claims {
            issuer: region,
            issued_at: now,
            expires_at: now + 300,
            code_id: CodeId::random().unwrap(),
            colour: Colour::Red,
            subject: SubjectId([1; 16]),
            masked_name: "张*".to_owned(),
            id_last4: "123X".to_owned(),
            source: Source::Fallback,
            as_of: now,
            ruleset_version: 1,
        };
        let code = key.sign(&claims).unwrap();
        let trust = EdgeTrust::new(TrustList::new(vec![key.public().clone()]).unwrap());
        let body = serde_json::json!({ "code": code }).to_string();
        let v: serde_json::Value =
            serde_json::from_slice(&trust.answer(body.as_bytes()).unwrap()).unwrap();
        assert_eq!(v["valid"], true, "{v}");
        assert_eq!(v["colour"], "red");
        trust.set(TrustList::new(vec![]).unwrap());
        let v: serde_json::Value =
            serde_json::from_slice(&trust.answer(body.as_bytes()).unwrap()).unwrap();
        assert_eq!(v["valid"], false);
        assert!(trust.answer(b"not json").is_none());
    }
}
