//! Secrets (HMAC keys, tokens, Redis passwords) are never written in a config file: the file
//! names where to find them, a file or an environment variable, and [`Secret`] keeps the
//! value out of `Debug` output and logs.

use std::fmt;
use std::path::PathBuf;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::ser::{SerializeMap, Serializer};

/// Where a secret comes from: `{ file = "/etc/shouhu/hmac.key" }` or
/// `{ env = "SHOUHU_HMAC_SECRET" }`. Holds no secret itself.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum SecretRef {
    /// Read from this file; one trailing newline is dropped.
    File(PathBuf),
    /// Read from this environment variable.
    Env(String),
}

/// A secret's value, redacted in `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl Secret {
    /// The bytes of the secret. Call only where they are used, never to log them.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// A secret that could not be read. Never contains the secret's value.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The file could not be read.
    #[error("secret file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The environment variable is not set (or not UTF-8).
    #[error("secret environment variable {name} is not set")]
    EnvMissing {
        /// The variable.
        name: String,
    },
    /// The source exists but holds nothing.
    #[error("secret {source_name} is empty")]
    Empty {
        /// The file or variable, as `file /path` or `env NAME`.
        source_name: String,
    },
}

impl SecretRef {
    /// Reads the secret now.
    ///
    /// # Errors
    ///
    /// [`SecretError`] if the file cannot be read, the variable is unset, or the value is
    /// empty after dropping one trailing newline.
    pub fn read(&self) -> Result<Secret, SecretError> {
        let (mut bytes, source_name) = match self {
            Self::File(path) => {
                let bytes = std::fs::read(path).map_err(|source| SecretError::Read {
                    path: path.clone(),
                    source,
                })?;
                (bytes, format!("file {}", path.display()))
            }
            Self::Env(name) => {
                let value = std::env::var(name)
                    .map_err(|_| SecretError::EnvMissing { name: name.clone() })?;
                (value.into_bytes(), format!("env {name}"))
            }
        };
        // Editors and `echo` add a newline that nobody means as part of a key.
        if bytes.ends_with(b"\n") {
            bytes.pop();
            if bytes.ends_with(b"\r") {
                bytes.pop();
            }
        }
        if bytes.is_empty() {
            return Err(SecretError::Empty { source_name });
        }
        Ok(Secret(bytes))
    }
}

impl serde::Serialize for SecretRef {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(1))?;
        match self {
            Self::File(path) => map.serialize_entry("file", path)?,
            Self::Env(name) => map.serialize_entry("env", name)?,
        }
        map.end()
    }
}

impl<'de> serde::Deserialize<'de> for SecretRef {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(SecretRefVisitor)
    }
}

const FIELDS: &[&str] = &["file", "env"];

struct SecretRefVisitor;

impl<'de> Visitor<'de> for SecretRefVisitor {
    type Value = SecretRef;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(r#"{ file = "/path" } or { env = "VAR" }"#)
    }

    // The inline value is deliberately not echoed: it is probably the secret.
    fn visit_str<E: de::Error>(self, _value: &str) -> Result<SecretRef, E> {
        Err(E::custom(
            r#"secrets are never written inline; use { file = "/path/to/secret" } or { env = "VAR_NAME" }"#,
        ))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<SecretRef, A::Error> {
        let mut found = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "file" => found.push(SecretRef::File(map.next_value()?)),
                "env" => {
                    let name: String = map.next_value()?;
                    if name.is_empty() || name.contains(['=', '\0']) {
                        return Err(de::Error::custom(format!(
                            "invalid environment variable name {name:?}"
                        )));
                    }
                    found.push(SecretRef::Env(name));
                }
                other => return Err(de::Error::unknown_field(other, FIELDS)),
            }
        }
        match (found.pop(), found.pop()) {
            (Some(one), None) => Ok(one),
            (None, _) => Err(de::Error::custom(r#"set file = "/path" or env = "VAR""#)),
            (Some(_), Some(_)) => Err(de::Error::custom("set file or env, not both")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_file_without_its_trailing_newline() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("key");
        std::fs::write(&path, "s3cret\n").unwrap_or_else(|e| panic!("{e}"));
        let secret = SecretRef::File(path)
            .read()
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(secret.expose(), b"s3cret");
        assert_eq!(format!("{secret:?}"), "Secret(<redacted>)");
    }

    #[test]
    fn reports_missing_sources_without_values() {
        let err = SecretRef::Env("SHOUHU_TEST_SURELY_UNSET_VAR".to_owned()).read();
        assert_eq!(
            err.err().map(|e| e.to_string()).as_deref(),
            Some("secret environment variable SHOUHU_TEST_SURELY_UNSET_VAR is not set")
        );
    }
}
