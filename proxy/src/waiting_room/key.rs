//! The ticket-signing key: 32 bytes written as 64 hex digits in a file of mode 0600.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use shouhu_config::ProxyConfig;

/// The key file could not be read or created.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Reading or writing failed.
    #[error("waiting-room key {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file holds something else than 64 hex digits. Never contains the content.
    #[error(
        "waiting-room key {path}: expected 64 hex digits (32 bytes, e.g. from `openssl rand -hex 32`)"
    )]
    Invalid {
        /// The file.
        path: PathBuf,
    },
}

/// The key for `config`: `waiting_room.key_file`, which must exist (several proxies share
/// it, so none may invent its own), else `{data_dir}/waiting-room.key`, created on first
/// start.
///
/// # Errors
/// The file cannot be read or written, or is not a key.
pub fn load_key(config: &ProxyConfig) -> Result<[u8; 32], KeyError> {
    let path = config.waiting_room.key_path(&config.data_dir);
    if config.waiting_room.key_file.is_some() {
        read_key(&path)
    } else {
        load_or_create_key(&path)
    }
}

/// Reads the key at `path`.
///
/// # Errors
/// The file cannot be read or is not a key.
pub fn read_key(path: &Path) -> Result<[u8; 32], KeyError> {
    let text = std::fs::read_to_string(path).map_err(|source| KeyError::Io {
        path: path.to_owned(),
        source,
    })?;
    let invalid = || KeyError::Invalid {
        path: path.to_owned(),
    };
    let bytes = hex::decode(text.trim()).map_err(|_| invalid())?;
    bytes.try_into().map_err(|_| invalid())
}

/// Reads the key at `path`, or creates it (mode 0600, with its directory) if there is none.
/// Two processes creating it at once end up with the same key: the file appears whole or
/// not at all (written aside, then hard-linked into place, which never replaces a file).
///
/// # Errors
/// The file cannot be read or written, or is not a key.
pub fn load_or_create_key(path: &Path) -> Result<[u8; 32], KeyError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| KeyError::Io { path, source }
    };
    if path.exists() {
        return read_key(path);
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
    }
    let key: [u8; 32] = rand::random();
    let aside = path.with_extension(format!("tmp.{}", std::process::id()));
    let written = write_private(&aside, &format!("{}\n", hex::encode(key)));
    let linked = written.and_then(|()| std::fs::hard_link(&aside, path));
    let _ = std::fs::remove_file(&aside);
    match linked {
        Ok(()) => {
            tracing::info!(path = %path.display(), "created a new waiting-room key");
            Ok(key)
        }
        // Another process made it first: use theirs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => read_key(path),
        Err(e) => Err(io(path)(e)),
    }
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used, reason = "tests")]
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn created_once_private_and_then_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data/waiting-room.key");
        let first = load_or_create_key(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(load_or_create_key(&path).unwrap(), first);
        assert_eq!(read_key(&path).unwrap(), first);
        assert_eq!(
            std::fs::read_dir(path.parent().unwrap()).unwrap().count(),
            1
        );
    }

    #[test]
    fn a_configured_file_must_exist_and_hold_a_key() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = ProxyConfig {
            data_dir: dir.path().to_owned(),
            ..ProxyConfig::default()
        };
        let shared = dir.path().join("shared.key");
        config.waiting_room.key_file = Some(shared.clone());
        assert!(matches!(load_key(&config), Err(KeyError::Io { .. })));
        assert!(!shared.exists());
        std::fs::write(&shared, "zz\n").unwrap();
        let err = load_key(&config).unwrap_err().to_string();
        assert!(
            err.contains("expected 64 hex digits") && !err.contains("zz"),
            "{err}"
        );
        std::fs::write(&shared, format!("{}\n", "ab".repeat(32))).unwrap();
        assert_eq!(load_key(&config).unwrap(), [0xab; 32]);
        // Unset: created in the data dir.
        config.waiting_room.key_file = None;
        let own = load_key(&config).unwrap();
        assert_eq!(read_key(&dir.path().join("waiting-room.key")).unwrap(), own);
    }
}
