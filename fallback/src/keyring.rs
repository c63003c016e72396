//! The issuer's keys: every fallback signing key in `key_dir`, of which the newest active one
//! signs, and every public key there, all of which are published in the trust list.
//!
//! Rotation: generate a new fallback key into `key_dir` (`shouhu keys generate --role fallback
//! --out KEY_DIR`), with a `not_before` in the future if verifiers need time to fetch the new
//! trust list. The issuer picks it up on its next reload and signs with it from `not_before`
//! on. Keep the old key's files until its last code has expired, so its codes still verify.
//! Public key files of other issuers (the origin's `*.pub.json`) may be put in `key_dir` too,
//! so `/api/verify` and the published trust list cover origin codes.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use shouhu_code::time::UnixTime;
use shouhu_code::{KeyPair, KeyRole, PublicKey, Region, TrustList};

/// The keys cannot be loaded.
#[derive(Debug, thiserror::Error)]
pub enum KeyringError {
    /// The folder cannot be listed.
    #[error("{path}: cannot read the key folder: {source}")]
    Folder {
        /// The folder.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A key file is unreadable or invalid.
    #[error("{path}: {reason}")]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The public keys do not form a valid trust list (e.g. one listed twice, inconsistently).
    #[error("trust list: {0}")]
    TrustList(String),
    /// No fallback key for the region at all.
    #[error("{dir}: no fallback signing key (*.key.json, role fallback) for region {region}")]
    NoKey {
        /// The folder.
        dir: PathBuf,
        /// The region.
        region: String,
    },
}

/// Loaded keys; cheap to clone.
#[derive(Clone, Debug)]
pub struct Keyring {
    signers: Arc<Vec<KeyPair>>,
    trust: Arc<TrustList>,
}

impl Keyring {
    /// Loads `*.key.json` (fallback keys of `region` sign; others are only published) and
    /// `*.pub.json` from `dir`.
    ///
    /// # Errors
    /// An unreadable folder or file, an inconsistent trust list, or no fallback key for the
    /// region.
    pub fn load(dir: &Path, region: &Region) -> Result<Self, KeyringError> {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|source| KeyringError::Folder {
                path: dir.to_owned(),
                source,
            })?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        paths.sort();
        let mut signers = Vec::new();
        let mut public: Vec<PublicKey> = Vec::new();
        for path in paths {
            let name = path.to_string_lossy();
            if name.ends_with(".key.json") {
                let pair = KeyPair::load(&path).map_err(|e| KeyringError::File {
                    path: path.clone(),
                    reason: e.to_string(),
                })?;
                push_unique(&mut public, pair.public().clone());
                if pair.public().role == KeyRole::Fallback && &pair.public().region == region {
                    signers.push(pair);
                }
            } else if name.ends_with(".pub.json") {
                let text = std::fs::read_to_string(&path).map_err(|e| KeyringError::File {
                    path: path.clone(),
                    reason: e.to_string(),
                })?;
                let key: PublicKey =
                    serde_json::from_str(&text).map_err(|e| KeyringError::File {
                        path: path.clone(),
                        reason: format!("not a public key file: {e}"),
                    })?;
                push_unique(&mut public, key);
            }
        }
        if signers.is_empty() {
            return Err(KeyringError::NoKey {
                dir: dir.to_owned(),
                region: region.as_str().to_owned(),
            });
        }
        Self::from_parts(signers, public)
    }

    /// A keyring of these signing keys and extra published keys.
    ///
    /// # Errors
    /// The public keys do not form a valid trust list.
    pub fn from_parts(
        signers: Vec<KeyPair>,
        mut public: Vec<PublicKey>,
    ) -> Result<Self, KeyringError> {
        for pair in &signers {
            push_unique(&mut public, pair.public().clone());
        }
        let trust = TrustList::new(public).map_err(|e| KeyringError::TrustList(e.to_string()))?;
        Ok(Self {
            signers: Arc::new(signers),
            trust: Arc::new(trust),
        })
    }

    /// The key to sign with at `now`: of the keys whose window holds `now`, the one that
    /// became valid last (ties: the later-expiring one).
    #[must_use]
    pub fn signer(&self, now: UnixTime) -> Option<&KeyPair> {
        self.signers
            .iter()
            .filter(|k| k.public().not_before <= now && now < k.public().not_after)
            .max_by_key(|k| (k.public().not_before, k.public().not_after))
    }

    /// Every public key: the trust list to publish.
    #[must_use]
    pub fn trust_list(&self) -> &TrustList {
        &self.trust
    }
}

fn push_unique(keys: &mut Vec<PublicKey>, key: PublicKey) {
    if !keys.iter().any(|k| k == &key) {
        keys.push(key);
    }
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn newest_active_key_signs_and_all_are_published() {
        let region: Region = "370000".parse().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let old = KeyPair::generate(KeyRole::Fallback, region.clone(), 1000, 9000).unwrap();
        let new = KeyPair::generate(KeyRole::Fallback, region.clone(), 5000, 9000).unwrap();
        let origin = KeyPair::generate(KeyRole::Origin, region.clone(), 1000, 9000).unwrap();
        old.write_to_dir(dir.path()).unwrap();
        new.write_to_dir(dir.path()).unwrap();
        let other = tempfile::tempdir().unwrap();
        let (_, origin_pub) = origin.write_to_dir(other.path()).unwrap();
        std::fs::copy(&origin_pub, dir.path().join("origin.pub.json")).unwrap();

        let ring = Keyring::load(dir.path(), &region).unwrap();
        assert_eq!(ring.signer(2000).unwrap().kid(), old.kid());
        assert_eq!(ring.signer(6000).unwrap().kid(), new.kid());
        assert!(ring.signer(9000).is_none());
        assert_eq!(ring.trust_list().keys().len(), 3);
    }

    #[test]
    fn a_folder_without_a_fallback_key_is_refused() {
        let region: Region = "370000".parse().unwrap();
        let dir = tempfile::tempdir().unwrap();
        KeyPair::generate(KeyRole::Origin, region.clone(), 1000, 9000)
            .unwrap()
            .write_to_dir(dir.path())
            .unwrap();
        assert!(matches!(
            Keyring::load(dir.path(), &region),
            Err(KeyringError::NoKey { .. })
        ));
    }
}
