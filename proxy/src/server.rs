//! What `shouhu proxy` runs: start-up on a background runtime ([`bootstrap`]), the admin
//! listener, the journal's replayer and the `SIGHUP` reloader ([`reload`]) on that runtime,
//! and the Pingora server with its own worker runtime on the calling thread until `SIGTERM`
//! (graceful, within `server.grace_period` plus `server.graceful_shutdown_timeout`) or
//! `SIGINT` (at once).
//!
//! The listen address may have port 0: the port is reserved first with a bound, not
//! listening `SO_REUSEPORT` socket, and Pingora binds the same address with `SO_REUSEPORT`;
//! the caller learns the real address once a connection to it succeeds (a Pingora bind
//! failure only panics its service thread, so readiness is checked, not assumed).

mod bootstrap;
mod reload;

use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pingora::listeners::TcpSocketOptions;
use pingora::server::configuration::ServerConf;
use pingora::server::{RunArgs, Server};
use shouhu_config::ProxyConfig;
use socket2::{Domain, Socket, Type};

pub use self::reload::ConfigSource;
use crate::service::Gateway;

/// How long Pingora may take to start listening.
const READY_WITHIN: Duration = Duration::from_secs(30);
/// Retries of a request whose pooled origin connection turned out dead (idempotent only).
const MAX_RETRIES: usize = 2;
/// Worker threads of the background runtime (admin, Redis, change feed).
const BACKGROUND_THREADS: usize = 2;

/// The proxy could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The origin's address or its published keys.
    #[error("origin: {0}")]
    Origin(String),
    /// Session key, fallback keys or trust list.
    #[error("keys: {0}")]
    Keys(String),
    /// The snapshot's Redis.
    #[error("fallback.redis: {0}")]
    Redis(String),
    /// A listener.
    #[error("{field}: cannot listen on {addr}: {reason}")]
    Listen {
        /// `server.listen` or `server.admin_listen`.
        field: &'static str,
        /// The address.
        addr: SocketAddr,
        /// Why.
        reason: String,
    },
    /// Anything else (a runtime, the metrics registry).
    #[error("{0}")]
    Internal(String),
}

/// Where the proxy listens, once it does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Listening {
    /// Citizens' and scanners' traffic.
    pub listen: SocketAddr,
    /// The admin endpoints.
    pub admin: SocketAddr,
}

/// Runs the proxy until a shutdown signal. `on_ready` is called once, from another thread,
/// with the bound addresses or the reason the proxy did not come up. On `SIGHUP` the config
/// is loaded again from `reload` (and keys re-read) and applied (see [`reload`]).
///
/// # Errors
/// Start-up failed before the server ran.
pub fn run(
    config: &ProxyConfig,
    reload: ConfigSource,
    on_ready: impl FnOnce(Result<Listening, StartError>) + Send + 'static,
) -> Result<(), StartError> {
    let background = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(BACKGROUND_THREADS)
        .thread_name("shouhu-bg")
        .enable_all()
        .build()
        .map_err(|e| StartError::Internal(format!("background runtime: {e}")))?;
    let prepared = background.block_on(bootstrap::prepare(config))?;
    let mut hangup = {
        let _entered = background.enter();
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            .map_err(|e| StartError::Internal(format!("SIGHUP handler: {e}")))?
    };
    let reloader = prepared.reloader;
    background.spawn(async move {
        while hangup.recv().await.is_some() {
            tracing::info!("SIGHUP: reloading the config");
            reloader.reload(&reload).await;
        }
    });
    bootstrap::spawn_rate_limit_housekeeping(
        &background,
        Arc::clone(&prepared.gateway.rate_limits),
    );
    if let Some(room) = prepared.waiting_room {
        bootstrap::spawn_spare_feed(&background, room, Arc::clone(&prepared.gateway.admission));
    }
    if let Some(replayer) = prepared.replayer {
        bootstrap::spawn_replayer(&background, replayer, Arc::clone(&prepared.gateway.breaker));
    }

    let admin_addr = config.server.admin_listen;
    let admin_listener = background
        .block_on(tokio::net::TcpListener::bind(admin_addr))
        .map_err(|e| StartError::Listen {
            field: "server.admin_listen",
            addr: admin_addr,
            reason: e.to_string(),
        })?;
    let admin = admin_listener
        .local_addr()
        .map_err(|e| StartError::Internal(e.to_string()))?;
    let admin_router = crate::admin::router(prepared.admin);
    background.spawn(async move {
        if let Err(e) = axum::serve(admin_listener, admin_router).await {
            tracing::error!(error = %e, "admin listener stopped");
        }
    });

    let (reservation, listen) = reserve(config.server.listen)?;
    let mut server = Server::new_with_opt_and_conf(None, server_conf(config));
    server.bootstrap();
    let mut service = pingora::proxy::http_proxy_service_with_name(
        &server.configuration,
        Gateway::new(prepared.gateway),
        "shouhu proxy",
    );
    let mut options = TcpSocketOptions::default();
    options.so_reuseport = Some(true);
    service.add_tcp_with_settings(&listen.to_string(), options);
    server.add_service(service);

    std::thread::spawn(move || {
        let ready = wait_for_listener(listen);
        drop(reservation);
        on_ready(if ready {
            Ok(Listening { listen, admin })
        } else {
            Err(StartError::Listen {
                field: "server.listen",
                addr: listen,
                reason: format!("not accepting connections within {READY_WITHIN:?}"),
            })
        });
    });

    server.run(RunArgs::default());
    tracing::info!("proxy stopped");
    background.shutdown_timeout(Duration::from_secs(1));
    Ok(())
}

/// Pingora's settings from `[server]` and `[origin]`: its own defaults (1 thread, 300 s of
/// grace, 16 retries, pid file in /tmp) are all wrong here.
fn server_conf(config: &ProxyConfig) -> ServerConf {
    let threads = match config.server.threads {
        0 => std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get),
        n => n,
    };
    let grace: Duration = config.server.grace_period.into();
    let drain: Duration = config.server.graceful_shutdown_timeout.into();
    let state = config.data_dir.display();
    ServerConf {
        threads,
        work_stealing: true,
        grace_period_seconds: Some(grace.as_secs()),
        graceful_shutdown_timeout_seconds: Some(drain.as_secs().max(1)),
        upstream_keepalive_pool_size: config.origin.keepalive_pool,
        max_retries: MAX_RETRIES,
        pid_file: format!("{state}/shouhu-proxy.pid"),
        upgrade_sock: format!("{state}/shouhu-proxy-upgrade.sock"),
        ..ServerConf::default()
    }
}

/// Binds (without listening) a `SO_REUSEPORT` socket on `addr`, so a port 0 becomes a real
/// port nobody else takes before Pingora binds it.
fn reserve(addr: SocketAddr) -> Result<(Socket, SocketAddr), StartError> {
    let err = |e: std::io::Error| StartError::Listen {
        field: "server.listen",
        addr,
        reason: e.to_string(),
    };
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None).map_err(err)?;
    socket.set_reuse_address(true).map_err(err)?;
    socket.set_reuse_port(true).map_err(err)?;
    socket.bind(&addr.into()).map_err(err)?;
    let bound = socket
        .local_addr()
        .map_err(err)?
        .as_socket()
        .ok_or_else(|| err(std::io::Error::other("not an IP socket")))?;
    Ok((socket, bound))
}

/// Polls until `addr` accepts a connection, at most [`READY_WITHIN`].
fn wait_for_listener(addr: SocketAddr) -> bool {
    let target = if addr.ip().is_unspecified() {
        SocketAddr::new(
            match addr {
                SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
            },
            addr.port(),
        )
    } else {
        addr
    };
    let started = Instant::now();
    while started.elapsed() < READY_WITHIN {
        if TcpStream::connect_timeout(&target, Duration::from_millis(200)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}
