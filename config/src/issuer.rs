//! The `shouhu issuer` config: the standalone fallback issuer, which signs codes from the
//! Redis snapshot for any number of stateless front ends. Its settings are those of the
//! proxy's `[fallback]`, at the top level, plus where it listens.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::duration::Duration;
use crate::error::ConfigErrors;
use crate::kind::Kind;
use crate::load::Schema;
use crate::overrides::Overrides;
use crate::proxy::{
    DEFAULT_CODE_TTL, DEFAULT_KEY_DIR_NAME, DEFAULT_MAX_SNAPSHOT_AGE, check_issuing,
};
use crate::region::Region;
use crate::secret::SecretRef;
use crate::url::RedisUrls;
use crate::validate::Validator;

/// Default `data_dir`.
pub const DEFAULT_DATA_DIR: &str = "./shouhu-issuer-data";
/// Default `server.listen`.
pub const DEFAULT_LISTEN: SocketAddr =
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 8090));
/// Default `server.admin_listen`.
pub const DEFAULT_ADMIN_LISTEN: SocketAddr =
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 9190));
/// Session-key file below `data_dir` when `session_key_file` is not set.
pub const DEFAULT_SESSION_KEY_FILE_NAME: &str = "session-key.pub";

/// A `shouhu issuer` config file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IssuerConfig {
    /// Optional guard, `kind = "issuer"`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<Kind>,
    /// The issuer's own state (signing keys). Default [`DEFAULT_DATA_DIR`].
    pub data_dir: PathBuf,
    /// The snapshot's Redis: one URL, or several for Cluster seed nodes. Required, in the
    /// file or from `--redis`; `validate` guarantees it is set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis: Option<RedisUrls>,
    /// The Redis password, from a file or the environment. Default: none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis_password: Option<SecretRef>,
    /// Region in the claims of issued codes. Default [`DEFAULT_REGION`](crate::DEFAULT_REGION).
    pub region: Region,
    /// Directory of the signing keys. Default `{data_dir}/keys`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_dir: Option<PathBuf>,
    /// Lifetime of an issued code, at most [`MAX_CODE_TTL`](crate::proxy::MAX_CODE_TTL).
    /// Default [`DEFAULT_CODE_TTL`].
    pub code_ttl: Duration,
    /// Snapshot watermark age beyond which no green is issued. Default
    /// [`DEFAULT_MAX_SNAPSHOT_AGE`].
    pub max_snapshot_age: Duration,
    /// The origin's session-token public key, to identify citizens. Default
    /// `{data_dir}/session-key.pub`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_key_file: Option<PathBuf>,
    /// Bearer token that snapshot ingest requests must carry. Default: none, and the ingest
    /// endpoints are off.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ingest_token: Option<SecretRef>,
    /// `[server]`.
    pub server: Server,
}

/// `[server]` of the issuer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Server {
    /// Address for code requests. Default [`DEFAULT_LISTEN`].
    #[serde(with = "crate::net")]
    pub listen: SocketAddr,
    /// Address for `/metrics` and admin endpoints. Default [`DEFAULT_ADMIN_LISTEN`].
    #[serde(with = "crate::net")]
    pub admin_listen: SocketAddr,
}

impl Default for Server {
    fn default() -> Self {
        Self {
            listen: DEFAULT_LISTEN,
            admin_listen: DEFAULT_ADMIN_LISTEN,
        }
    }
}

impl Default for IssuerConfig {
    fn default() -> Self {
        Self {
            kind: None,
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            redis: None,
            redis_password: None,
            region: Region::default(),
            key_dir: None,
            code_ttl: DEFAULT_CODE_TTL,
            max_snapshot_age: DEFAULT_MAX_SNAPSHOT_AGE,
            session_key_file: None,
            ingest_token: None,
            server: Server::default(),
        }
    }
}

impl IssuerConfig {
    /// Checks every rule; `file` names the config in messages.
    ///
    /// # Errors
    ///
    /// Every violation, each with its field path.
    pub fn validate(&self, file: &str) -> Result<(), ConfigErrors> {
        crate::load::validate(self, file)
    }

    /// Replaces file values with command-line ones (see [`Overrides`]; `origin` is ignored).
    pub fn apply(&mut self, overrides: &Overrides) {
        overrides.apply_common(
            &mut self.server.listen,
            &mut self.server.admin_listen,
            &mut self.redis,
            &mut self.data_dir,
        );
    }

    /// `key_dir`, else `{data_dir}/keys`.
    pub fn key_dir(&self) -> PathBuf {
        self.key_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join(DEFAULT_KEY_DIR_NAME))
    }

    /// `session_key_file`, else `{data_dir}/session-key.pub`.
    pub fn session_key_file(&self) -> PathBuf {
        self.session_key_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join(DEFAULT_SESSION_KEY_FILE_NAME))
    }
}

impl Schema for IssuerConfig {
    const KIND: Kind = Kind::Issuer;

    fn apply(&mut self, overrides: &Overrides) {
        IssuerConfig::apply(self, overrides);
    }

    fn rules(&self, v: &mut Validator<'_>) {
        v.kind(self.kind, Kind::Issuer);
        v.data_dir(&self.data_dir);
        if self.redis.is_none() {
            v.error("redis", "required (set it in the file or pass --redis)");
        }
        check_issuing(v, "", self.code_ttl, self.max_snapshot_age);
        v.listeners(self.server.listen, self.server.admin_listen);
    }
}
