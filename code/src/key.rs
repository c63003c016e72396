//! Signing keys and their public halves.
//!
//! A key is Ed25519. Its kid is the first 8 bytes of SHA-256 over the raw 32-byte public key.
//! Every key has a role (it signs only origin codes or only fallback codes), a region (it signs
//! only codes of that issuer) and a validity window (it signs only codes issued inside it).
//!
//! On disk a key pair is two JSON files in one folder, named after role, region and kid:
//! `origin-370000-<kid>.key.json` (the private key, mode 0600) and
//! `origin-370000-<kid>.pub.json` (the public entry, exactly as it appears in a trust list).

use std::fmt;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::{Signer as _, SigningKey};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};

use crate::Region;
use crate::claims::{Claims, Source};
use crate::macros::{byte_id, text_enum};
use crate::time::{UnixTime, format_rfc3339, rfc3339};

byte_id!(
    /// A key id: the first 8 bytes of SHA-256 of the raw public key.
    Kid, 8, "kid"
);

text_enum!(
    /// What a key may sign.
    KeyRole, "key role" {
        /// Codes with `source = origin`.
        Origin = 0, "origin";
        /// Codes with `source = fallback`.
        Fallback = 1, "fallback";
    }
);

impl KeyRole {
    /// The code source this role signs.
    #[must_use]
    pub fn source(self) -> Source {
        match self {
            Self::Origin => Source::Origin,
            Self::Fallback => Source::Fallback,
        }
    }
}

/// Signature algorithms. Only Ed25519 (COSE `EdDSA`, -8) for now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// Ed25519, COSE algorithm -8.
    EdDsa,
}

impl Algorithm {
    /// The name used in trust lists.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::EdDsa => "EdDSA",
        }
    }
}

impl Serialize for Algorithm {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Algorithm {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        match text.as_str() {
            "EdDSA" => Ok(Self::EdDsa),
            other => Err(serde::de::Error::custom(format!(
                "unsupported algorithm \"{other}\" (expected EdDSA)"
            ))),
        }
    }
}

/// The kid of a raw public key.
#[must_use]
pub fn kid_of(public_key: &[u8]) -> Kid {
    let digest = Sha256::digest(public_key);
    let mut kid = [0u8; 8];
    kid.copy_from_slice(&digest[..8]);
    Kid(kid)
}

/// The public half of a key with what it may sign: one entry of a trust list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublicKey {
    /// First 8 bytes of SHA-256 of `public_key`.
    pub kid: Kid,
    /// The signature algorithm.
    pub alg: Algorithm,
    /// The raw public key, base64url without padding in JSON.
    #[serde(with = "b64_key")]
    pub public_key: [u8; 32],
    /// What it may sign.
    pub role: KeyRole,
    /// The issuer it may sign for.
    pub region: Region,
    /// Codes issued before this time are not its.
    #[serde(with = "rfc3339")]
    pub not_before: UnixTime,
    /// Codes issued after this time are not its.
    #[serde(with = "rfc3339")]
    pub not_after: UnixTime,
}

/// Why a key may not sign, or did not sign, a code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyRefusal {
    /// The key's role does not match the code's source.
    #[error("key role {role} does not sign {code_source} codes")]
    Role {
        /// The key's role.
        role: KeyRole,
        /// The code's source.
        code_source: Source,
    },
    /// The key belongs to another region.
    #[error("key of region {key} does not sign codes of issuer {issuer}")]
    Region {
        /// The key's region.
        key: Region,
        /// The code's issuer.
        issuer: Region,
    },
    /// The code was issued outside the key's validity window.
    #[error(
        "code issued at {} is outside the key's window {} to {}",
        format_rfc3339(*issued_at),
        format_rfc3339(*not_before),
        format_rfc3339(*not_after)
    )]
    Window {
        /// The code's issue time.
        issued_at: UnixTime,
        /// Start of the key's window.
        not_before: UnixTime,
        /// End of the key's window.
        not_after: UnixTime,
    },
}

impl PublicKey {
    /// Checks that this key may sign these claims: role, region and validity window.
    ///
    /// # Errors
    /// The first of role, region and window that does not allow it.
    pub fn allows(&self, claims: &Claims) -> Result<(), KeyRefusal> {
        if self.role.source() != claims.source {
            return Err(KeyRefusal::Role {
                role: self.role,
                code_source: claims.source,
            });
        }
        if self.region != claims.issuer {
            return Err(KeyRefusal::Region {
                key: self.region.clone(),
                issuer: claims.issuer.clone(),
            });
        }
        if claims.issued_at < self.not_before || claims.issued_at > self.not_after {
            return Err(KeyRefusal::Window {
                issued_at: claims.issued_at,
                not_before: self.not_before,
                not_after: self.not_after,
            });
        }
        Ok(())
    }

    /// Checks the entry is consistent: the kid matches the key, the window is not empty, the
    /// key is a valid Ed25519 point.
    ///
    /// # Errors
    /// A message naming the inconsistency.
    pub fn check(&self) -> Result<(), String> {
        let expected = kid_of(&self.public_key);
        if self.kid != expected {
            return Err(format!(
                "kid {} does not match the public key (expected {expected})",
                self.kid
            ));
        }
        if self.not_after <= self.not_before {
            return Err("not_after is not after not_before".to_owned());
        }
        ed25519_dalek::VerifyingKey::from_bytes(&self.public_key)
            .map_err(|_| "public_key is not an Ed25519 public key".to_owned())?;
        Ok(())
    }

    /// The file name stem shared by the key's two files.
    #[must_use]
    pub fn file_stem(&self) -> String {
        format!("{}-{}-{}", self.role, self.region, self.kid)
    }
}

/// Errors reading or writing key files.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The file could not be read or written.
    #[error("{path}: {error}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        error: std::io::Error,
    },
    /// The file is not a key file of ours, or its contents do not agree.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The operating system has no randomness to give.
    #[error("no randomness for a new key: {0}")]
    Random(getrandom::Error),
}

/// A private signing key with its public entry.
#[derive(Clone)]
pub struct KeyPair {
    signing: SigningKey,
    public: PublicKey,
}

impl fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyPair")
            .field("public", &self.public)
            .field("signing", &"<redacted>")
            .finish()
    }
}

/// The private key file's contents.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PrivateFile {
    #[serde(flatten)]
    public: PublicKey,
    #[serde(with = "b64_key")]
    private_key: [u8; 32],
}

impl KeyPair {
    /// A new random key from the operating system's generator.
    ///
    /// # Errors
    /// The operating system has no randomness to give.
    pub fn generate(
        role: KeyRole,
        region: Region,
        not_before: UnixTime,
        not_after: UnixTime,
    ) -> Result<Self, KeyError> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(KeyError::Random)?;
        Ok(Self::from_seed(seed, role, region, not_before, not_after))
    }

    /// The key for a given 32-byte secret seed (for test vectors and imports).
    #[must_use]
    pub fn from_seed(
        seed: [u8; 32],
        role: KeyRole,
        region: Region,
        not_before: UnixTime,
        not_after: UnixTime,
    ) -> Self {
        let signing = SigningKey::from_bytes(&seed);
        let public_key = signing.verifying_key().to_bytes();
        Self {
            signing,
            public: PublicKey {
                kid: kid_of(&public_key),
                alg: Algorithm::EdDsa,
                public_key,
                role,
                region,
                not_before,
                not_after,
            },
        }
    }

    /// The public entry.
    #[must_use]
    pub fn public(&self) -> &PublicKey {
        &self.public
    }

    /// The key id.
    #[must_use]
    pub fn kid(&self) -> Kid {
        self.public.kid
    }

    /// Signs raw bytes (the COSE `Sig_structure`).
    pub(crate) fn sign_bytes(&self, data: &[u8]) -> Vec<u8> {
        self.signing.sign(data).to_bytes().to_vec()
    }

    /// Writes the private file (mode 0600, never overwriting) and the public file into `dir`,
    /// creating `dir` if needed. Returns both paths, private first.
    ///
    /// # Errors
    /// The folder or a file cannot be written, or a file of that name exists.
    pub fn write_to_dir(&self, dir: &Path) -> Result<(PathBuf, PathBuf), KeyError> {
        fs::create_dir_all(dir).map_err(|error| KeyError::Io {
            path: dir.to_owned(),
            error,
        })?;
        let stem = self.public.file_stem();
        let private_path = dir.join(format!("{stem}.key.json"));
        let public_path = dir.join(format!("{stem}.pub.json"));
        let private = PrivateFile {
            public: self.public.clone(),
            private_key: self.signing.to_bytes(),
        };
        write_new(&private_path, &to_json(&private), 0o600)?;
        write_new(&public_path, &to_json(&self.public), 0o644)?;
        Ok((private_path, public_path))
    }

    /// Reads a private key file written by [`KeyPair::write_to_dir`].
    ///
    /// # Errors
    /// The file cannot be read, is not a private key file, or its public entry does not
    /// belong to its private key.
    pub fn load(path: &Path) -> Result<Self, KeyError> {
        let text = fs::read_to_string(path).map_err(|error| KeyError::Io {
            path: path.to_owned(),
            error,
        })?;
        let invalid = |message: String| KeyError::Invalid {
            path: path.to_owned(),
            message,
        };
        let file: PrivateFile = serde_json::from_str(&text)
            .map_err(|e| invalid(format!("not a shouhu private key file: {e}")))?;
        let pair = Self::from_seed(
            file.private_key,
            file.public.role,
            file.public.region.clone(),
            file.public.not_before,
            file.public.not_after,
        );
        if pair.public != file.public {
            return Err(invalid(
                "the public entry does not belong to the private key".to_owned(),
            ));
        }
        Ok(pair)
    }
}

fn to_json<T: Serialize>(value: &T) -> String {
    // Our key types serialize to JSON without error: plain strings and numbers only.
    let mut text = serde_json::to_string_pretty(value).unwrap_or_default();
    text.push('\n');
    text
}

fn write_new(path: &Path, text: &str, mode: u32) -> Result<(), KeyError> {
    use std::os::unix::fs::OpenOptionsExt;
    let io = |error| KeyError::Io {
        path: path.to_owned(),
        error,
    };
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(io)?;
    file.write_all(text.as_bytes()).map_err(io)?;
    file.sync_all().map_err(io)
}

/// Serde for 32-byte keys as base64url without padding.
mod b64_key {
    use super::{Deserialize, Deserializer, Engine, Serializer, URL_SAFE_NO_PAD};

    pub(super) fn serialize<S: Serializer>(key: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&URL_SAFE_NO_PAD.encode(key))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let text = String::deserialize(d)?;
        let bytes = URL_SAFE_NO_PAD.decode(&text).map_err(|_| {
            serde::de::Error::custom(format!("key \"{text}\" is not base64url without padding"))
        })?;
        bytes.try_into().map_err(|b: Vec<u8>| {
            serde::de::Error::custom(format!("key is {} bytes (expected 32)", b.len()))
        })
    }
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used, reason = "tests")]
    use super::*;
    use crate::claims::tests::sample;

    fn pair(role: KeyRole) -> KeyPair {
        KeyPair::from_seed([1; 32], role, "370000".parse().unwrap(), 0, 2_000_000_000)
    }

    #[test]
    fn kid_is_sha256_prefix_of_public_key() {
        let p = pair(KeyRole::Origin);
        let digest = Sha256::digest(p.public().public_key);
        assert_eq!(p.kid().0, digest[..8]);
        assert!(p.public().check().is_ok());
    }

    #[test]
    fn key_refuses_other_role_region_and_window() {
        let origin = pair(KeyRole::Origin);
        assert_eq!(origin.public().allows(&sample()), Ok(()));
        let fallback = pair(KeyRole::Fallback);
        assert!(matches!(
            fallback.public().allows(&sample()),
            Err(KeyRefusal::Role { .. })
        ));
        let mut other = sample();
        other.issuer = "110000".parse().unwrap();
        assert!(matches!(
            origin.public().allows(&other),
            Err(KeyRefusal::Region { .. })
        ));
        let mut late = sample();
        late.issued_at = 2_000_000_001;
        assert!(matches!(
            origin.public().allows(&late),
            Err(KeyRefusal::Window { .. })
        ));
    }

    #[test]
    fn files_round_trip_with_private_mode_0600() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = pair(KeyRole::Fallback);
        let (private, public) = p.write_to_dir(dir.path()).unwrap();
        let mode = fs::metadata(&private).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(KeyPair::load(&private).unwrap().public(), p.public());
        let entry: PublicKey = serde_json::from_str(&fs::read_to_string(public).unwrap()).unwrap();
        assert_eq!(&entry, p.public());
        assert!(matches!(
            p.write_to_dir(dir.path()),
            Err(KeyError::Io { .. })
        ));
    }

    #[test]
    fn debug_hides_the_private_key() {
        let text = format!("{:?}", pair(KeyRole::Origin));
        assert!(text.contains("<redacted>"));
        assert!(!text.contains(&URL_SAFE_NO_PAD.encode([1u8; 32])));
    }
}
