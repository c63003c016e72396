//! The trust list: every public key a verifier accepts, with what each may sign.
//!
//! ```json
//! { "version": 1,
//!   "keys": [ { "kid": "…16 hex…", "alg": "EdDSA", "public_key": "…base64url…",
//!               "role": "origin", "region": "370000",
//!               "not_before": "2026-01-01T00:00:00Z", "not_after": "2027-01-01T00:00:00Z" } ] }
//! ```
//!
//! Kids are truncated hashes, so two keys may share one: [`TrustList::keys_for`] yields all of
//! them and the verifier tries each.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::key::{Kid, PublicKey};

/// The trust-list format version this code reads and writes.
pub const TRUST_LIST_VERSION: u32 = 1;

/// A validated trust list.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustList {
    version: u32,
    keys: Vec<PublicKey>,
}

/// The trust list cannot be read or is not valid. Every problem found is listed.
#[derive(Debug, thiserror::Error)]
#[error("{}", .problems.join("\n"))]
pub struct TrustListError {
    /// One line per problem, each naming the file and the field.
    pub problems: Vec<String>,
}

impl TrustList {
    /// A trust list of these keys.
    ///
    /// # Errors
    /// A key whose entry is inconsistent (see [`PublicKey::check`]) or a key listed twice.
    pub fn new(keys: Vec<PublicKey>) -> Result<Self, TrustListError> {
        let list = Self {
            version: TRUST_LIST_VERSION,
            keys,
        };
        list.check("trust list")?;
        Ok(list)
    }

    /// Parses and validates a trust list; `name` prefixes every error (usually the file name).
    ///
    /// # Errors
    /// Not JSON of this shape, an unsupported version, or inconsistent entries.
    pub fn from_json(name: &str, text: &str) -> Result<Self, TrustListError> {
        let list: Self = serde_json::from_str(text).map_err(|e| TrustListError {
            problems: vec![format!("{name}: {e}")],
        })?;
        list.check(name)?;
        Ok(list)
    }

    /// Reads and validates a trust list file.
    ///
    /// # Errors
    /// The file cannot be read, or see [`TrustList::from_json`].
    pub fn load(path: &Path) -> Result<Self, TrustListError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| TrustListError {
            problems: vec![format!("{name}: {e}")],
        })?;
        Self::from_json(&name, &text)
    }

    fn check(&self, name: &str) -> Result<(), TrustListError> {
        let mut problems = Vec::new();
        if self.version != TRUST_LIST_VERSION {
            problems.push(format!(
                "{name}: version: unsupported version {} (expected {TRUST_LIST_VERSION})",
                self.version
            ));
        }
        for (i, key) in self.keys.iter().enumerate() {
            if let Err(e) = key.check() {
                problems.push(format!("{name}: keys[{i}]: {e}"));
            }
            if self.keys[..i]
                .iter()
                .any(|k| k.public_key == key.public_key)
            {
                problems.push(format!(
                    "{name}: keys[{i}]: public key {} is listed twice",
                    key.kid
                ));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(TrustListError { problems })
        }
    }

    /// A list that skips validation, for tests of truncated-kid collisions, which no real
    /// list can be made to hold on purpose.
    #[cfg(test)]
    pub(crate) fn unchecked(keys: Vec<PublicKey>) -> Self {
        Self {
            version: TRUST_LIST_VERSION,
            keys,
        }
    }

    /// Every key with this kid.
    pub fn keys_for(&self, kid: Kid) -> impl Iterator<Item = &PublicKey> {
        self.keys.iter().filter(move |k| k.kid == kid)
    }

    /// All keys.
    #[must_use]
    pub fn keys(&self) -> &[PublicKey] {
        &self.keys
    }

    /// The list as pretty JSON.
    #[must_use]
    pub fn to_json_pretty(&self) -> String {
        // Only strings and numbers inside: serializing cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used, reason = "tests")]
    use super::*;
    use crate::key::{KeyPair, KeyRole};

    fn key(seed: u8) -> PublicKey {
        KeyPair::from_seed(
            [seed; 32],
            KeyRole::Origin,
            "370000".parse().unwrap(),
            0,
            2_000_000_000,
        )
        .public()
        .clone()
    }

    #[test]
    fn json_round_trips_and_looks_up_by_kid() {
        let list = TrustList::new(vec![key(1), key(2)]).unwrap();
        let back = TrustList::from_json("t.json", &list.to_json_pretty()).unwrap();
        assert_eq!(back, list);
        let k2 = key(2);
        assert_eq!(back.keys_for(k2.kid).collect::<Vec<_>>(), vec![&k2]);
    }

    #[test]
    fn every_problem_is_named() {
        let mut bad_kid = key(1);
        bad_kid.kid = key(2).kid;
        let mut empty_window = key(3);
        empty_window.not_after = empty_window.not_before;
        let list = TrustList {
            version: 2,
            keys: vec![bad_kid, empty_window, key(3)],
        };
        let text = serde_json::to_string(&list).unwrap();
        let err = TrustList::from_json("t.json", &text).unwrap_err();
        assert_eq!(err.problems.len(), 4, "{err}");
        assert!(err.problems[0].starts_with("t.json: version: unsupported version 2"));
        assert!(err.problems[1].starts_with("t.json: keys[0]: kid "));
        assert_eq!(
            err.problems[2],
            "t.json: keys[1]: not_after is not after not_before"
        );
        assert!(err.problems[3].ends_with("is listed twice"));
    }

    #[test]
    fn unknown_fields_and_algorithms_are_refused() {
        let text = TrustList::new(vec![key(1)]).unwrap().to_json_pretty();
        let es256 = text.replace("\"EdDSA\"", "\"ES256\"");
        let err = TrustList::from_json("t.json", &es256)
            .unwrap_err()
            .to_string();
        assert!(err.contains("unsupported algorithm \"ES256\""), "{err}");
        let extra = text.replace("\"version\": 1", "\"version\": 1, \"deny\": []");
        assert!(TrustList::from_json("t.json", &extra).is_err());
    }
}
