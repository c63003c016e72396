//! Private `redis-server` processes for tests: never the machine's own Redis on 6379.

use std::net::{Ipv4Addr, SocketAddr};
use std::process::Command;
use std::time::Duration;

use crate::process::{ChildProcess, free_port, wait_for_tcp};

const START_TIMEOUT: Duration = Duration::from_secs(10);
const START_ATTEMPTS: usize = 5;

/// One `redis-server` on an ephemeral loopback port, in its own temporary folder, killed on
/// drop. AOF is on with `appendfsync no`: Redis then writes every change to the AOF file before
/// it answers (the kernel keeps it, so a killed Redis loses nothing acknowledged), without the
/// fsync per write of `always`, whose latency under a loaded CI machine broke command
/// timeouts. With `everysec`, Redis may postpone the write while a background fsync runs, and a
/// kill then loses acknowledged writes at random.
#[derive(Debug)]
pub struct RedisServer {
    process: ChildProcess,
    port: u16,
    dir: tempfile::TempDir,
    extra: Vec<String>,
}

impl RedisServer {
    /// Starts a standalone server.
    ///
    /// # Panics
    /// `redis-server` is not installed or does not start (tests only).
    #[must_use]
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// Starts a server with extra `redis-server` arguments, e.g. `["--cluster-enabled", "yes"]`.
    ///
    /// # Panics
    /// `redis-server` is not installed or does not start (tests only).
    #[must_use]
    pub fn start_with(extra: &[&str]) -> Self {
        #[expect(clippy::expect_used, reason = "test support")]
        let dir = tempfile::tempdir().expect("temporary folder for redis");
        let extra: Vec<String> = extra.iter().map(|s| (*s).to_owned()).collect();
        for _ in 0..START_ATTEMPTS {
            let port = free_port();
            if let Some(process) = spawn(port, dir.path(), &extra) {
                return Self {
                    process,
                    port,
                    dir,
                    extra,
                };
            }
        }
        panic!("redis-server did not start (is it installed? `apt-get install redis-server`)");
    }

    /// The port it listens on.
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:PORT`.
    #[must_use]
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills the server at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        self.process.kill();
    }

    /// Starts it again on the same port and folder (its AOF is replayed).
    ///
    /// # Panics
    /// It does not come back (tests only).
    pub fn restart(&mut self) {
        self.process.kill();
        for _ in 0..START_ATTEMPTS {
            if let Some(process) = spawn(self.port, self.dir.path(), &self.extra) {
                self.process = process;
                return;
            }
        }
        panic!("redis-server did not restart on port {}", self.port);
    }

    /// Runs `redis-cli` against this server and returns its standard output.
    #[must_use]
    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-p", &self.port.to_string()])
            .args(args)
            .output();
        out.map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    }
}

fn spawn(port: u16, dir: &std::path::Path, extra: &[String]) -> Option<ChildProcess> {
    let mut command = Command::new("redis-server");
    command
        .args(["--port", &port.to_string()])
        .args(["--bind", "127.0.0.1"])
        .arg("--dir")
        .arg(dir)
        .args(["--appendonly", "yes", "--appendfsync", "no"])
        .args(["--save", ""])
        .args(["--daemonize", "no", "--loglevel", "warning"])
        .args(["--logfile", "redis.log"])
        .args(extra)
        .stdout(std::process::Stdio::null());
    let mut process = ChildProcess::spawn("redis-server", command).ok()?;
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    if wait_for_tcp(addr, START_TIMEOUT) && process.is_running() {
        Some(process)
    } else {
        None
    }
}

/// Three masters forming a Redis Cluster (no replicas), each a [`RedisServer`].
#[derive(Debug)]
pub struct RedisCluster {
    /// The nodes, for killing one or asking it things.
    pub nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts three nodes and joins them with `redis-cli --cluster create`, then waits until
    /// the cluster reports `cluster_state:ok`.
    ///
    /// # Panics
    /// The cluster does not form (tests only).
    #[must_use]
    pub fn start() -> Self {
        let nodes: Vec<RedisServer> = (0..3)
            .map(|_| {
                RedisServer::start_with(&[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-node-timeout",
                    "2000",
                ])
            })
            .collect();
        let addrs: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port()))
            .collect();
        let status = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addrs)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdout(std::process::Stdio::null())
            .status();
        assert!(
            status.is_ok_and(|s| s.success()),
            "redis-cli --cluster create failed"
        );
        let ok = crate::wait_until(START_TIMEOUT, || {
            nodes
                .iter()
                .all(|n| n.cli(&["cluster", "info"]).contains("cluster_state:ok"))
        });
        assert!(ok, "the Redis Cluster did not reach cluster_state:ok");
        Self { nodes }
    }

    /// The nodes' URLs, as a client's seed list.
    #[must_use]
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_private_server_answers_survives_a_restart_and_dies_on_drop() {
        let mut redis = RedisServer::start();
        assert_ne!(redis.port(), 6379);
        assert_eq!(redis.cli(&["ping"]).trim(), "PONG");
        assert_eq!(redis.cli(&["set", "k", "v"]).trim(), "OK");
        redis.kill();
        assert_eq!(redis.cli(&["ping"]).trim(), "");
        redis.restart();
        assert_eq!(redis.cli(&["get", "k"]).trim(), "v");
        let port = redis.port();
        drop(redis);
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        assert!(std::net::TcpStream::connect(addr).is_err());
    }

    #[test]
    fn three_masters_form_a_cluster() {
        let cluster = RedisCluster::start();
        assert_eq!(cluster.urls().len(), 3);
        let info = cluster.nodes[0].cli(&["cluster", "info"]);
        assert!(info.contains("cluster_known_nodes:3"), "{info}");
    }
}
