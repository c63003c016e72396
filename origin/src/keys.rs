//! The origin's secrets on disk, created on first start when missing (each with a log line):
//!
//! - the code-signing key pair, `{key_dir}/origin-<region>-<kid>.key.json` (+ `.pub.json`);
//!   every origin public key in the folder goes into the served trust list, so an old key
//!   keeps verifying the codes it signed after a new one is added;
//! - the session-signing seed, `{key_dir}/session.key` (hex, mode 0600), and its public
//!   half as the well-known JSON in `{key_dir}/session-key.pub` (what `shouhu issuer` reads);
//! - the subject-hash secret, `{data_dir}/hmac.secret` unless the config names another.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use shouhu_code::time::{UnixTime, now};
use shouhu_code::{KeyPair, KeyRole, PublicKey, Region, TrustList};
use shouhu_config::{OriginConfig, SecretRef};

use crate::identity::SessionKeys;

/// Validity of a generated code key.
const CODE_KEY_DAYS: u64 = 365;
/// Session seed file below `key_dir`.
pub const SESSION_SEED_FILE: &str = "session.key";
/// Public session-key JSON below `key_dir`.
pub const SESSION_PUBLIC_FILE: &str = "session-key.pub";

/// A secret or key that cannot be read or created.
#[derive(Debug, thiserror::Error)]
pub enum KeysError {
    /// File I/O.
    #[error("{path}: {error}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        error: std::io::Error,
    },
    /// A key file is invalid.
    #[error(transparent)]
    Key(#[from] shouhu_code::KeyError),
    /// A secret cannot be read.
    #[error(transparent)]
    Secret(#[from] shouhu_config::SecretError),
    /// A file holds something unusable.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The trust list cannot be built.
    #[error(transparent)]
    Trust(#[from] shouhu_code::TrustListError),
}

/// Everything the origin signs with.
#[derive(Debug)]
pub struct OriginKeys {
    /// Signs codes.
    pub code_key: KeyPair,
    /// Every origin code key's public half.
    pub trust: TrustList,
    /// Signs session tokens.
    pub sessions: SessionKeys,
    /// Key of the subject hash.
    pub hmac_secret: Vec<u8>,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> KeysError + '_ {
    move |error| KeysError::Io {
        path: path.to_owned(),
        error,
    }
}

fn random32() -> [u8; 32] {
    rand::random()
}

fn write_private(path: &Path, text: &str) -> Result<(), KeysError> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(io(path))?;
    file.write_all(text.as_bytes()).map_err(io(path))
}

/// Loads the origin's keys and secrets, creating what is missing.
///
/// # Errors
/// A file cannot be read, written or parsed, or a configured secret is missing.
pub fn load_or_create(config: &OriginConfig) -> Result<OriginKeys, KeysError> {
    let key_dir = config.key_dir();
    fs::create_dir_all(&key_dir).map_err(io(&key_dir))?;
    let t = now();
    let (code_key, publics) = code_keys(&key_dir, &config.region, t)?;
    let trust = TrustList::new(publics)?;
    let sessions = session_keys(&key_dir)?;
    let hmac_secret = hmac_secret(config)?;
    Ok(OriginKeys {
        code_key,
        trust,
        sessions,
        hmac_secret,
    })
}

fn code_keys(
    dir: &Path,
    region: &Region,
    t: UnixTime,
) -> Result<(KeyPair, Vec<PublicKey>), KeysError> {
    let mut pairs = Vec::new();
    for entry in fs::read_dir(dir).map_err(io(dir))? {
        let path = entry.map_err(io(dir))?.path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if name.starts_with("origin-") && name.ends_with(".key.json") {
            pairs.push(KeyPair::load(&path)?);
        }
    }
    let usable = pairs
        .iter()
        .filter(|p| {
            let pk = p.public();
            pk.role == KeyRole::Origin
                && &pk.region == region
                && pk.not_before <= t
                && t < pk.not_after
        })
        .max_by_key(|p| p.public().not_after)
        .cloned();
    let signer = match usable {
        Some(p) => p,
        None => {
            let pair = KeyPair::generate(
                KeyRole::Origin,
                region.clone(),
                t.saturating_sub(3600),
                t + CODE_KEY_DAYS * 86_400,
            )?;
            let (private, _) = pair.write_to_dir(dir)?;
            tracing::info!(kid = %pair.kid(), path = %private.display(), "generated a new code-signing key");
            pairs.push(pair.clone());
            pair
        }
    };
    let publics = pairs.iter().map(|p| p.public().clone()).collect();
    Ok((signer, publics))
}

fn session_keys(dir: &Path) -> Result<SessionKeys, KeysError> {
    let path = dir.join(SESSION_SEED_FILE);
    let seed = if path.exists() {
        let text = fs::read_to_string(&path).map_err(io(&path))?;
        let mut seed = [0u8; 32];
        hex::decode_to_slice(text.trim(), &mut seed).map_err(|_| KeysError::Invalid {
            path: path.clone(),
            message: "expected 64 hex digits".to_owned(),
        })?;
        seed
    } else {
        let seed = random32();
        write_private(&path, &format!("{}\n", hex::encode(seed)))?;
        tracing::info!(path = %path.display(), "generated a new session-signing key");
        seed
    };
    let keys = SessionKeys::from_seed(seed);
    let public_path = dir.join(SESSION_PUBLIC_FILE);
    let json = serde_json::to_string_pretty(&keys.public_json()).unwrap_or_default();
    fs::write(&public_path, format!("{json}\n")).map_err(io(&public_path))?;
    Ok(keys)
}

fn hmac_secret(config: &OriginConfig) -> Result<Vec<u8>, KeysError> {
    let secret_ref = config.hmac_secret();
    if let SecretRef::File(path) = &secret_ref
        && config.hmac_secret.is_none()
        && !path.exists()
    {
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(io(parent))?;
        }
        write_private(path, &format!("{}\n", hex::encode(random32())))?;
        tracing::info!(path = %path.display(), "generated a new subject-hash secret");
    }
    Ok(secret_ref.read()?.expose().to_vec())
}
