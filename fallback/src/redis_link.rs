//! A Redis connection that never makes a caller wait for Redis to come back.
//!
//! [`RedisLink`] holds one multiplexed connection (standalone) or one cluster connection, made
//! lazily. While there is none, a command fails at once with [`LinkError::Down`] and a single
//! background task reconnects with capped back-off. Every command runs under a timeout, so a
//! slow or black-holed Redis costs a caller at most that timeout. A standalone connection that
//! reports an I/O error is dropped and replaced in the background; a Cluster connection is
//! kept (the live nodes still answer through it) and a fresh one is built beside it.
//!
//! The redis crate's own `ConnectionManager` was not used: while reconnecting it makes every
//! command wait on the reconnect future, which is the multi-second stall we must avoid.
//!
//! Every command and pipeline is counted in the link's [`LinkStats`] (latency of each attempt,
//! failures by [`LinkErrorKind`]), in atomics, for a metrics layer to read when scraped.

mod stats;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{AsyncConnectionConfig, Client, Cmd, FromRedisValue, Pipeline, RedisError, Value};
use shouhu_config::{RedisUrls, Secret};

pub use self::stats::{
    HistogramSnapshot, LATENCY_BUCKETS, LatencyHistogram, LinkErrorKind, LinkStats,
};

/// First pause between reconnect attempts; doubles up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(20);
/// Longest pause between reconnect attempts, so recovery is noticed within about this long.
const MAX_BACKOFF: Duration = Duration::from_millis(500);
/// Least time between two background rebuilds of a Cluster connection after node errors.
const CLUSTER_REBUILD_EVERY: Duration = Duration::from_secs(1);

/// Why a Redis command did not give an answer.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// There is no connection now; one is being made in the background.
    #[error("redis is unreachable (reconnecting in the background)")]
    Down,
    /// The command did not finish within its timeout.
    #[error("redis did not answer within {0:?}")]
    Timeout(Duration),
    /// Redis answered with an error, or the connection broke during the command.
    #[error("redis: {0}")]
    Redis(#[from] RedisError),
    /// The URL or password cannot be used to build a client.
    #[error("redis client: {0}")]
    Config(String),
}

impl LinkError {
    /// Whether the error means Redis is unavailable (as opposed to a bad command or value).
    #[must_use]
    pub fn is_unavailable(&self) -> bool {
        match self {
            Self::Down | Self::Timeout(_) => true,
            Self::Redis(e) => is_connection_error(e),
            Self::Config(_) => false,
        }
    }
}

pub(crate) fn is_connection_error(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_timeout()
        || e.is_unrecoverable_error()
        || e.is_cluster_error()
}

/// Timeouts of a [`RedisLink`].
#[derive(Clone, Copy, Debug)]
pub struct LinkTimeouts {
    /// Limit on one command or one pipeline of point commands.
    pub command: Duration,
    /// Limit on establishing a connection.
    pub connect: Duration,
    /// Limit on a batch (a long pipeline); also the client's own response timeout, under the
    /// per-call timeouts we apply.
    pub bulk: Duration,
}

#[derive(Clone)]
enum Conn {
    Single(MultiplexedConnection),
    Cluster(ClusterConnection),
}

impl Conn {
    async fn query<T: FromRedisValue>(&mut self, cmd: &Cmd) -> Result<T, RedisError> {
        match self {
            Self::Single(c) => cmd.query_async(c).await,
            Self::Cluster(c) => cmd.query_async(c).await,
        }
    }

    async fn pipe(&mut self, pipe: &Pipeline) -> Result<Vec<Value>, RedisError> {
        match self {
            Self::Single(c) => c.req_packed_commands(pipe, 0, pipe.len()).await,
            Self::Cluster(c) => c.req_packed_commands(pipe, 0, pipe.len()).await,
        }
    }
}

enum Target {
    Single(Client),
    Cluster(Box<ClusterClient>),
}

struct Inner {
    target: Target,
    /// The first URL with the password: the template for direct connections to each node.
    seed: redis::ConnectionInfo,
    timeouts: LinkTimeouts,
    conn: RwLock<Option<Conn>>,
    reconnecting: AtomicBool,
    last_rebuild: std::sync::Mutex<Option<std::time::Instant>>,
    stats: Arc<LinkStats>,
}

/// A shared, self-healing Redis connection; cheap to clone.
#[derive(Clone)]
pub struct RedisLink {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for RedisLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisLink")
            .field("cluster", &self.is_cluster())
            .field("connected", &self.is_connected())
            .finish()
    }
}

impl RedisLink {
    /// A link to these servers (one URL: standalone; several: Cluster seed nodes). It tries to
    /// connect once, for at most the connect timeout, and otherwise returns a link that keeps
    /// trying in the background. Must be called inside a Tokio runtime.
    ///
    /// # Errors
    /// Only a URL or password the client cannot use ([`LinkError::Config`]); an unreachable
    /// Redis is not an error here.
    pub async fn open(
        urls: &RedisUrls,
        password: Option<&Secret>,
        timeouts: LinkTimeouts,
    ) -> Result<Self, LinkError> {
        let password = password
            .map(|s| {
                std::str::from_utf8(s.expose())
                    .map(|p| p.trim_end_matches(['\n', '\r']).to_owned())
                    .map_err(|_| LinkError::Config("redis password is not UTF-8".to_owned()))
            })
            .transpose()?;
        let first = urls
            .urls()
            .first()
            .ok_or_else(|| LinkError::Config("no redis url".to_owned()))?;
        let mut seed = redis::IntoConnectionInfo::into_connection_info(first.as_str())
            .map_err(|e| LinkError::Config(e.to_string()))?;
        if let Some(p) = &password {
            let settings = seed.redis_settings().clone().set_password(p);
            seed = seed.set_redis_settings(settings);
        }
        let target = if urls.is_cluster() {
            let mut builder = redis::cluster::ClusterClientBuilder::new(
                urls.urls().iter().map(|u| u.as_str().to_owned()),
            )
            .connection_timeout(timeouts.connect)
            .response_timeout(timeouts.bulk.max(timeouts.command))
            .retries(1)
            .min_retry_wait(5)
            .max_retry_wait(50);
            if let Some(p) = &password {
                builder = builder.password(p);
            }
            Target::Cluster(Box::new(
                builder
                    .build()
                    .map_err(|e| LinkError::Config(e.to_string()))?,
            ))
        } else {
            Target::Single(
                Client::open(seed.clone()).map_err(|e| LinkError::Config(e.to_string()))?,
            )
        };
        let link = Self {
            inner: Arc::new(Inner {
                target,
                seed,
                timeouts,
                conn: RwLock::new(None),
                reconnecting: AtomicBool::new(false),
                last_rebuild: std::sync::Mutex::new(None),
                stats: Arc::default(),
            }),
        };
        match connect(&link.inner).await {
            Ok(conn) => link.install(conn),
            Err(e) => {
                tracing::warn!(error = %e, "redis unreachable at start; reconnecting in the background");
                link.spawn_reconnect();
            }
        }
        Ok(link)
    }

    /// Whether the link points at a Redis Cluster.
    #[must_use]
    pub fn is_cluster(&self) -> bool {
        matches!(self.inner.target, Target::Cluster(_))
    }

    /// Whether a connection is up now.
    #[must_use]
    pub fn is_connected(&self) -> bool {
        self.inner.conn.read().map(|c| c.is_some()).unwrap_or(false)
    }

    /// The command timeout.
    #[must_use]
    pub fn command_timeout(&self) -> Duration {
        self.inner.timeouts.command
    }

    /// What the link counted (shared by its clones).
    #[must_use]
    pub fn stats(&self) -> Arc<LinkStats> {
        Arc::clone(&self.inner.stats)
    }

    /// Runs one command under the command timeout.
    ///
    /// # Errors
    /// See [`LinkError`].
    pub async fn query<T: FromRedisValue>(&self, cmd: &Cmd) -> Result<T, LinkError> {
        self.query_within(cmd, self.inner.timeouts.command).await
    }

    /// Runs one command under a given timeout (for bulk reads such as `SCAN`).
    ///
    /// # Errors
    /// See [`LinkError`].
    pub async fn query_within<T: FromRedisValue>(
        &self,
        cmd: &Cmd,
        limit: Duration,
    ) -> Result<T, LinkError> {
        let mut conn = self.current()?;
        let started = std::time::Instant::now();
        let result = match tokio::time::timeout(limit, conn.query(cmd)).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(self.failed(e)),
            Err(_) => Err(LinkError::Timeout(limit)),
        };
        self.inner.stats.sent(started, &result);
        result
    }

    /// Sends a pipeline (all its keys in one slot on a Cluster) and returns one value per
    /// command, under the given timeout.
    ///
    /// # Errors
    /// See [`LinkError`].
    pub async fn pipe(&self, pipe: &Pipeline, limit: Duration) -> Result<Vec<Value>, LinkError> {
        let mut conn = self.current()?;
        let started = std::time::Instant::now();
        let result = match tokio::time::timeout(limit, conn.pipe(pipe)).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(self.failed(e)),
            Err(_) => Err(LinkError::Timeout(limit)),
        };
        self.inner.stats.sent(started, &result);
        result
    }

    /// Direct connections to every master (the one server when standalone), for whole-keyspace
    /// walks with `SCAN`, which a Cluster answers per node.
    ///
    /// # Errors
    /// Redis errors; a TLS Cluster is not supported here ([`LinkError::Config`]).
    pub async fn master_connections(&self) -> Result<Vec<MultiplexedConnection>, LinkError> {
        let infos = match &self.inner.target {
            Target::Single(_) => vec![self.inner.seed.clone()],
            Target::Cluster(_) => {
                if !matches!(self.inner.seed.addr(), redis::ConnectionAddr::Tcp(..)) {
                    return Err(LinkError::Config(
                        "walking a TLS cluster is not supported".to_owned(),
                    ));
                }
                let nodes: String = self
                    .query(&redis::cmd("CLUSTER").arg("NODES").clone())
                    .await?;
                masters(&nodes)
                    .into_iter()
                    .map(|(host, port)| {
                        self.inner
                            .seed
                            .clone()
                            .set_addr(redis::ConnectionAddr::Tcp(host, port))
                    })
                    .collect()
            }
        };
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.inner.timeouts.connect))
            .set_response_timeout(None);
        let mut out = Vec::with_capacity(infos.len());
        for info in infos {
            let client = Client::open(info).map_err(|e| LinkError::Config(e.to_string()))?;
            out.push(
                client
                    .get_multiplexed_async_connection_with_config(&config)
                    .await?,
            );
        }
        Ok(out)
    }

    fn current(&self) -> Result<Conn, LinkError> {
        let conn = self.inner.conn.read().ok().and_then(|c| c.clone());
        match conn {
            Some(c) => Ok(c),
            None => {
                self.inner.stats.failed(LinkErrorKind::Down);
                self.spawn_reconnect();
                Err(LinkError::Down)
            }
        }
    }

    fn failed(&self, e: RedisError) -> LinkError {
        let broken = e.is_io_error()
            || e.is_connection_dropped()
            || e.is_connection_refusal()
            || e.is_unrecoverable_error();
        if !broken {
            return LinkError::Redis(e);
        }
        match self.inner.target {
            Target::Single(_) => {
                if let Ok(mut slot) = self.inner.conn.write() {
                    *slot = None;
                }
                self.spawn_reconnect();
            }
            // Keep the cluster connection: the live nodes' keys still work through it. Build
            // a fresh one in the background (at most once per interval) and swap it in, so a
            // restarted node is found even if the old connection has given up on it.
            Target::Cluster(_) => {
                let due = self.inner.last_rebuild.lock().is_ok_and(|mut last| {
                    let due = last.is_none_or(|t| t.elapsed() >= CLUSTER_REBUILD_EVERY);
                    if due {
                        *last = Some(std::time::Instant::now());
                    }
                    due
                });
                if due {
                    self.spawn_reconnect();
                }
            }
        }
        LinkError::Redis(e)
    }

    fn install(&self, conn: Conn) {
        if let Ok(mut slot) = self.inner.conn.write() {
            *slot = Some(conn);
        }
    }

    /// Starts the one reconnect task unless it is already running.
    fn spawn_reconnect(&self) {
        if self.inner.reconnecting.swap(true, Ordering::AcqRel) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            self.inner.reconnecting.store(false, Ordering::Release);
            return;
        };
        // Weak, so a dropped store stops its reconnect task.
        let weak = Arc::downgrade(&self.inner);
        runtime.spawn(async move {
            let mut backoff = MIN_BACKOFF;
            loop {
                let Some(inner) = weak.upgrade() else { return };
                match connect(&inner).await {
                    Ok(conn) => {
                        if let Ok(mut slot) = inner.conn.write() {
                            *slot = Some(conn);
                        }
                        inner.reconnecting.store(false, Ordering::Release);
                        tracing::info!("redis connection re-established");
                        return;
                    }
                    Err(e) => tracing::debug!(error = %e, "redis reconnect failed"),
                }
                drop(inner);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        });
    }
}

async fn connect(inner: &Inner) -> Result<Conn, LinkError> {
    let limit = inner.timeouts.connect;
    let attempt = async {
        match &inner.target {
            Target::Single(client) => {
                let config = AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(limit))
                    .set_response_timeout(Some(inner.timeouts.bulk.max(inner.timeouts.command)));
                let mut conn = client
                    .get_multiplexed_async_connection_with_config(&config)
                    .await?;
                // A server still loading its AOF answers LOADING; do not hand it out yet.
                redis::cmd("PING").query_async::<()>(&mut conn).await?;
                Ok(Conn::Single(conn))
            }
            Target::Cluster(client) => {
                let mut conn = client.get_async_connection().await?;
                redis::cmd("PING").query_async::<()>(&mut conn).await?;
                Ok(Conn::Cluster(conn))
            }
        }
    };
    match tokio::time::timeout(limit, attempt).await {
        Ok(r) => r.map_err(LinkError::Redis),
        Err(_) => Err(LinkError::Timeout(limit)),
    }
}

/// `(host, port)` of every master that is not failed, from `CLUSTER NODES` output.
fn masters(nodes: &str) -> Vec<(String, u16)> {
    nodes
        .lines()
        .filter_map(|line| {
            let mut parts = line.split_whitespace();
            let _id = parts.next()?;
            let addr = parts.next()?;
            let flags = parts.next()?;
            if !flags.split(',').any(|f| f == "master") || flags.contains("fail") {
                return None;
            }
            let addr = addr.split(['@', ',']).next()?;
            let (host, port) = addr.rsplit_once(':')?;
            Some((host.trim_matches(['[', ']']).to_owned(), port.parse().ok()?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masters_are_read_from_cluster_nodes() {
        let text = "a1 127.0.0.1:7000@17000 myself,master - 0 0 1 connected 0-5460\n\
                    b2 127.0.0.1:7001@17001 master - 0 0 2 connected 5461-10922\n\
                    c3 127.0.0.1:7002@17002 slave b2 0 0 2 connected\n\
                    d4 127.0.0.1:7003@17003 master,fail - 0 0 3 connected\n";
        assert_eq!(
            masters(text),
            vec![
                ("127.0.0.1".to_owned(), 7000),
                ("127.0.0.1".to_owned(), 7001)
            ]
        );
    }
}
