//! The `shouhu origin` config: the reference code-issuing system (registration, declarations,
//! data sources, colour rules, codes), plus the capacity model that makes it fall over like
//! the real ones for benchmarks.

mod capacity;
mod snapshot;
mod sources;

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use self::capacity::{
    Capacity, DEFAULT_CAPACITY_ENABLED, DEFAULT_COLD_FACTOR, DEFAULT_COLD_FOR, DEFAULT_CRASH_AFTER,
    DEFAULT_CRASH_IN_FLIGHT, DEFAULT_KAPPA, DEFAULT_NOISE, DEFAULT_RESTART_AFTER,
    DEFAULT_SERVICE_TIME, DEFAULT_SIGMA,
};
pub use self::snapshot::{DEFAULT_SNAPSHOT_HEARTBEAT, DEFAULT_SNAPSHOT_SWEEP_EVERY, Snapshot};
pub use self::sources::{
    DEFAULT_SOURCE_CACHE_TTL, DEFAULT_SOURCE_FAILURE_RATE, DEFAULT_SOURCE_LATENCY,
    DEFAULT_SOURCE_SEED, DEFAULT_SOURCE_TIMEOUT, Sources,
};
use crate::duration::Duration;
use crate::error::ConfigErrors;
use crate::kind::Kind;
use crate::load::Schema;
use crate::overrides::Overrides;
use crate::proxy::{DEFAULT_CODE_TTL, DEFAULT_KEY_DIR_NAME, MAX_CODE_TTL};
use crate::region::Region;
use crate::secret::SecretRef;
use crate::url::RedisUrls;
use crate::validate::Validator;

/// Default `data_dir`: the SQLite database and keys.
pub const DEFAULT_DATA_DIR: &str = "./shouhu-origin-data";
/// Default `server.listen`.
pub const DEFAULT_LISTEN: SocketAddr =
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 8000));
/// Default `server.admin_listen`.
pub const DEFAULT_ADMIN_LISTEN: SocketAddr =
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 9100));
/// Default `session_ttl`.
pub const DEFAULT_SESSION_TTL: Duration = Duration::from_hours(12);
/// Upper bound for `session_ttl`.
pub const MAX_SESSION_TTL: Duration = Duration::from_hours(30 * 24);
/// HMAC-secret file below `data_dir`, generated on first start, when `hmac_secret` is not set.
pub const DEFAULT_HMAC_SECRET_FILE_NAME: &str = "hmac.secret";

/// A `shouhu origin` config file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OriginConfig {
    /// Optional guard, `kind = "origin"`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<Kind>,
    /// Database and keys. Default [`DEFAULT_DATA_DIR`].
    pub data_dir: PathBuf,
    /// Region in the claims of issued codes. Default [`DEFAULT_REGION`](crate::DEFAULT_REGION).
    pub region: Region,
    /// Lifetime of an issued code, at most [`MAX_CODE_TTL`]. Default [`DEFAULT_CODE_TTL`].
    pub code_ttl: Duration,
    /// Lifetime of a session token, at most [`MAX_SESSION_TTL`]. Default
    /// [`DEFAULT_SESSION_TTL`].
    pub session_ttl: Duration,
    /// Directory of the code- and session-signing keys. Default `{data_dir}/keys`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_dir: Option<PathBuf>,
    /// Key of the keyed hash that turns an ID number into a pseudonymous subject id. Default:
    /// `{data_dir}/hmac.secret`, generated on first start.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hmac_secret: Option<SecretRef>,
    /// Redis to publish the snapshot to: one URL, or several for Cluster seed nodes.
    /// Default: none, and no snapshot is published.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis: Option<RedisUrls>,
    /// The Redis password, from a file or the environment. Default: none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis_password: Option<SecretRef>,
    /// A colour ruleset file (TOML). Default: none, the built-in ruleset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ruleset: Option<PathBuf>,
    /// `[server]`.
    pub server: Server,
    /// `[capacity]`.
    pub capacity: Capacity,
    /// `[sources]`.
    pub sources: Sources,
    /// `[snapshot]`.
    pub snapshot: Snapshot,
}

/// `[server]` of the origin.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Server {
    /// Address for the citizen and scanner API. Default [`DEFAULT_LISTEN`].
    #[serde(with = "crate::net")]
    pub listen: SocketAddr,
    /// Address for `/metrics`, admin and fault-injection endpoints. Default
    /// [`DEFAULT_ADMIN_LISTEN`].
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

impl Default for OriginConfig {
    fn default() -> Self {
        Self {
            kind: None,
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            region: Region::default(),
            code_ttl: DEFAULT_CODE_TTL,
            session_ttl: DEFAULT_SESSION_TTL,
            key_dir: None,
            hmac_secret: None,
            redis: None,
            redis_password: None,
            ruleset: None,
            server: Server::default(),
            capacity: Capacity::default(),
            sources: Sources::default(),
            snapshot: Snapshot::default(),
        }
    }
}

impl OriginConfig {
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

    /// `hmac_secret`, else the file `{data_dir}/hmac.secret` (which the origin creates on
    /// first start if missing).
    pub fn hmac_secret(&self) -> SecretRef {
        self.hmac_secret
            .clone()
            .unwrap_or_else(|| SecretRef::File(self.data_dir.join(DEFAULT_HMAC_SECRET_FILE_NAME)))
    }
}

impl Schema for OriginConfig {
    const KIND: Kind = Kind::Origin;

    fn apply(&mut self, overrides: &Overrides) {
        OriginConfig::apply(self, overrides);
    }

    fn rules(&self, v: &mut Validator<'_>) {
        v.kind(self.kind, Kind::Origin);
        v.data_dir(&self.data_dir);
        v.positive_at_most("code_ttl", self.code_ttl, MAX_CODE_TTL);
        v.positive_at_most("session_ttl", self.session_ttl, MAX_SESSION_TTL);
        if self.redis.is_none() && self.redis_password.is_some() {
            v.error_related("redis_password", &["redis"], "has no effect without redis");
        }
        v.listeners(self.server.listen, self.server.admin_listen);
        if self
            .ruleset
            .as_ref()
            .is_some_and(|p| p.as_os_str().is_empty())
        {
            v.error("ruleset", "must not be empty");
        }
        self.capacity.check(v);
        self.sources.check(v);
        self.snapshot.check(v);
    }
}
