//! `[server]`: where the proxy listens and how it shuts down.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

use serde::{Deserialize, Serialize};

use crate::duration::Duration;
use crate::validate::Validator;

/// Default `server.listen`: citizens' traffic, all interfaces.
pub const DEFAULT_LISTEN: SocketAddr =
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 8080));
/// Default `server.admin_listen`: metrics and admin endpoints, loopback only.
pub const DEFAULT_ADMIN_LISTEN: SocketAddr =
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 9180));
/// Default `server.threads`: 0 means one worker thread per core.
pub const DEFAULT_THREADS: usize = 0;
/// Upper bound for `server.threads`; more is a typo, not a machine.
pub const MAX_THREADS: usize = 1024;
/// Default `server.grace_period`.
pub const DEFAULT_GRACE_PERIOD: Duration = Duration::from_secs(5);
/// Default `server.graceful_shutdown_timeout`.
pub const DEFAULT_GRACEFUL_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// `[server]` of the proxy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Server {
    /// Address for citizens' and scanners' traffic. Default [`DEFAULT_LISTEN`].
    #[serde(with = "crate::net")]
    pub listen: SocketAddr,
    /// Address for `/metrics` and admin endpoints. Default [`DEFAULT_ADMIN_LISTEN`].
    #[serde(with = "crate::net")]
    pub admin_listen: SocketAddr,
    /// Worker threads; 0 = number of cores. Default [`DEFAULT_THREADS`].
    pub threads: usize,
    /// After a shutdown signal, keep accepting this long so the balancer can take the proxy
    /// out of rotation. Default [`DEFAULT_GRACE_PERIOD`].
    pub grace_period: Duration,
    /// Then wait at most this long for requests in flight. Default
    /// [`DEFAULT_GRACEFUL_SHUTDOWN_TIMEOUT`].
    pub graceful_shutdown_timeout: Duration,
}

impl Default for Server {
    fn default() -> Self {
        Self {
            listen: DEFAULT_LISTEN,
            admin_listen: DEFAULT_ADMIN_LISTEN,
            threads: DEFAULT_THREADS,
            grace_period: DEFAULT_GRACE_PERIOD,
            graceful_shutdown_timeout: DEFAULT_GRACEFUL_SHUTDOWN_TIMEOUT,
        }
    }
}

impl Server {
    pub(crate) fn check(&self, v: &mut Validator<'_>) {
        v.listeners(self.listen, self.admin_listen);
        if self.threads > MAX_THREADS {
            v.error(
                "server.threads",
                format_args!("must be <= {MAX_THREADS} (got {})", self.threads),
            );
        }
    }
}
