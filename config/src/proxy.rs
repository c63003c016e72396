//! The `shouhu proxy` config: one section per concern, each in its own file with its
//! defaults as documented constants.

mod admission;
mod breaker;
mod cache;
mod deadlines;
mod fallback;
mod identity;
mod journal;
mod log;
mod rate_limit;
mod routes;
mod scan;
mod server;
mod upstream;
mod waiting_room;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use self::admission::{
    Admission, DEFAULT_ADMISSION_ADAPTIVE, DEFAULT_ADMISSION_CODEL_INTERVAL,
    DEFAULT_ADMISSION_CODEL_TARGET, DEFAULT_ADMISSION_INITIAL_LIMIT,
    DEFAULT_ADMISSION_LATENCY_BUFFER_PERCENT, DEFAULT_ADMISSION_LATENCY_FLOOR,
    DEFAULT_ADMISSION_MAX_LIMIT, DEFAULT_ADMISSION_MAX_WAIT_DECLARE,
    DEFAULT_ADMISSION_MAX_WAIT_DISPLAY_NO_CODE, DEFAULT_ADMISSION_MAX_WAIT_DISPLAY_REFRESH,
    DEFAULT_ADMISSION_MAX_WAIT_OTHER, DEFAULT_ADMISSION_MAX_WAIT_REGISTER,
    DEFAULT_ADMISSION_MAX_WAIT_SCAN, DEFAULT_ADMISSION_MAX_WAITERS, DEFAULT_ADMISSION_MIN_LIMIT,
    DEFAULT_ADMISSION_PROBE_INTERVAL, DEFAULT_ADMISSION_WINDOW, MAX_ADMISSION_WAIT,
    MAX_ADMISSION_WAITERS, MaxWait,
};
pub use self::breaker::{
    Breaker, DEFAULT_BREAKER_CONSECUTIVE_FAILURES, DEFAULT_BREAKER_CONSECUTIVE_TIMEOUTS,
    DEFAULT_BREAKER_ERROR_PERCENT, DEFAULT_BREAKER_MIN_REQUESTS, DEFAULT_BREAKER_OPEN_FOR,
    DEFAULT_BREAKER_PROBE_TIMEOUT, DEFAULT_BREAKER_PROBES, DEFAULT_BREAKER_WINDOW,
};
pub use self::cache::{
    Cache, DEFAULT_CACHE_MAX_BYTES, DEFAULT_CACHE_MAX_ENTRIES, DEFAULT_CACHE_MAX_STALE,
    DEFAULT_CACHE_TTL, MIN_CACHE_MAX_BYTES,
};
pub use self::deadlines::{
    DEFAULT_DEADLINE_DECLARE, DEFAULT_DEADLINE_DISPLAY, DEFAULT_DEADLINE_OTHER,
    DEFAULT_DEADLINE_REGISTER, DEFAULT_DEADLINE_SCAN, DEFAULT_DEADLINE_STATIC, Deadlines,
};
pub(crate) use self::fallback::check_issuing;
pub use self::fallback::{
    DEFAULT_CODE_TTL, DEFAULT_KEY_DIR_NAME, DEFAULT_MAX_SNAPSHOT_AGE, Fallback, MAX_CODE_TTL,
};
pub use self::identity::{DEFAULT_COOKIE_NAME, Identity, SESSION_KEY_WELL_KNOWN_PATH};
pub use self::journal::{
    DEFAULT_JOURNAL_CONSUMER, DEFAULT_JOURNAL_MAX_BODY, DEFAULT_REPLAY_RATE, Journal,
    MAX_JOURNAL_BODY,
};
pub use self::log::{DEFAULT_LOG_FORMAT, DEFAULT_LOG_LEVEL, Log, LogFormat, LogLevel};
pub use self::rate_limit::{
    Cidr, DEFAULT_RATE_LIMIT_GLOBAL, DEFAULT_RATE_LIMIT_MAX_KEYS, DEFAULT_RATE_LIMIT_PER_IP,
    DEFAULT_RATE_LIMIT_PER_IP_BURST, DEFAULT_RATE_LIMIT_PER_SUBJECT,
    DEFAULT_RATE_LIMIT_PER_SUBJECT_BURST, InvalidCidr, InvalidRate, Per, Rate, RateLimit,
};
pub use self::routes::{
    DEFAULT_ANONYMOUS, DEFAULT_ROUTES, InvalidRoutePattern, Method, Route, RouteClass,
    RoutePattern, default_anonymous, default_routes,
};
pub use self::scan::{DEFAULT_VERIFY_AT_EDGE, Scan, VerifyAtEdge};
pub use self::server::{
    DEFAULT_ADMIN_LISTEN, DEFAULT_GRACE_PERIOD, DEFAULT_GRACEFUL_SHUTDOWN_TIMEOUT, DEFAULT_LISTEN,
    DEFAULT_THREADS, MAX_THREADS, Server,
};
pub use self::upstream::{
    DEFAULT_CONNECT_TIMEOUT, DEFAULT_IDLE_TIMEOUT, DEFAULT_KEEPALIVE_POOL, DEFAULT_MAX_IN_FLIGHT,
    DEFAULT_READ_TIMEOUT, Upstream,
};
pub use self::waiting_room::{
    DEFAULT_WAITING_ROOM_ADMITTED_FOR, DEFAULT_WAITING_ROOM_KEY_FILE_NAME,
    DEFAULT_WAITING_ROOM_REFRESH, MAX_WAITING_ROOM_ADMITTED_FOR, MAX_WAITING_ROOM_REFRESH,
    MIN_WAITING_ROOM_REFRESH, WaitingRoom,
};
use crate::error::ConfigErrors;
use crate::kind::Kind;
use crate::load::Schema;
use crate::overrides::Overrides;
use crate::validate::Validator;

/// Default `data_dir`.
pub const DEFAULT_DATA_DIR: &str = "./shouhu-proxy-data";

/// A `shouhu proxy` config file.
///
/// `ProxyConfig::default()` is the config with no file at all; only `origin.url` must then
/// come from `--origin`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProxyConfig {
    /// Optional guard, `kind = "proxy"`: a file for another program is refused whole.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<Kind>,
    /// The proxy's own state (fallback signing keys). Default [`DEFAULT_DATA_DIR`].
    pub data_dir: PathBuf,
    /// `[server]`.
    pub server: Server,
    /// `[origin]`: the system the proxy guards.
    pub origin: Upstream,
    /// `[identity]`.
    pub identity: Identity,
    /// `[[routes]]`, tried in order; default [`DEFAULT_ROUTES`]. A file's routes replace the
    /// default table whole.
    pub routes: Vec<Route>,
    /// `[deadlines]`.
    pub deadlines: Deadlines,
    /// `[cache]`.
    pub cache: Cache,
    /// `[breaker]`: the circuit breaker on the origin.
    pub breaker: Breaker,
    /// `[fallback]`.
    pub fallback: Fallback,
    /// `[scan]`.
    pub scan: Scan,
    /// `[journal]`: declarations kept while the origin is down.
    pub journal: Journal,
    /// `[admission]`: the adaptive limit and queue toward the origin.
    pub admission: Admission,
    /// `[rate_limit]`: per client address, per subject and global.
    pub rate_limit: RateLimit,
    /// `[waiting_room]`: fair admission of new registrations.
    pub waiting_room: WaitingRoom,
    /// `[log]`: text or JSON lines, and the level.
    pub log: Log,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        Self {
            kind: None,
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            server: Server::default(),
            origin: Upstream::default(),
            identity: Identity::default(),
            routes: default_routes(),
            deadlines: Deadlines::default(),
            cache: Cache::default(),
            breaker: Breaker::default(),
            fallback: Fallback::default(),
            scan: Scan::default(),
            journal: Journal::default(),
            admission: Admission::default(),
            rate_limit: RateLimit::default(),
            waiting_room: WaitingRoom::default(),
            log: Log::default(),
        }
    }
}

impl ProxyConfig {
    /// Checks every rule (required values, ranges, cross-field rules); `file` names the
    /// config in messages.
    ///
    /// # Errors
    ///
    /// Every violation, each with its field path.
    pub fn validate(&self, file: &str) -> Result<(), ConfigErrors> {
        crate::load::validate(self, file)
    }

    /// Replaces file values with command-line ones (see [`Overrides`]).
    pub fn apply(&mut self, overrides: &Overrides) {
        overrides.apply_common(
            &mut self.server.listen,
            &mut self.server.admin_listen,
            &mut self.fallback.redis,
            &mut self.data_dir,
        );
        if let Some(url) = &overrides.origin {
            self.origin.url = Some(url.clone());
        }
    }

    /// The fallback signing-key directory: `fallback.key_dir`, else `{data_dir}/keys`.
    pub fn fallback_key_dir(&self) -> PathBuf {
        self.fallback
            .key_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join(DEFAULT_KEY_DIR_NAME))
    }

    /// The class and deadline for a request, by the first matching route; `other` when none
    /// matches.
    pub fn classify(&self, method: &str, path: &str) -> (RouteClass, crate::Duration) {
        let route = self
            .routes
            .iter()
            .find(|r| r.method.matches(method) && r.path.as_ref().is_some_and(|p| p.matches(path)));
        let class = route.and_then(|r| r.class).unwrap_or(RouteClass::Other);
        let deadline = route
            .and_then(|r| r.deadline)
            .unwrap_or_else(|| self.deadlines.for_class(class));
        (class, deadline)
    }
}

impl Schema for ProxyConfig {
    const KIND: Kind = Kind::Proxy;

    fn apply(&mut self, overrides: &Overrides) {
        ProxyConfig::apply(self, overrides);
    }

    fn rules(&self, v: &mut Validator<'_>) {
        v.kind(self.kind, Kind::Proxy);
        v.data_dir(&self.data_dir);
        self.server.check(v);
        self.origin.check(v);
        self.identity.check(v);
        routes::check_routes(&self.routes, v);
        self.deadlines.check(v);
        self.cache.check(v);
        self.breaker.check(v, self.deadlines.display);
        self.fallback.check(v);
        self.journal.check(v);
        self.admission.check(v);
        self.rate_limit.check(v);
        self.waiting_room.check(v);
    }
}
