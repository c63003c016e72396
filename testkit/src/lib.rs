//! shouhu-testkit: real components for tests, on ephemeral ports, ended by PID.
//!
//! - [`RedisServer`]: a private `redis-server` per test, which the test may kill and restart.
//! - [`RedisCluster`]: three masters forming a Redis Cluster.
//! - [`ChildProcess`]: any process (e.g. `shouhu origin`) killed on drop.
//! - [`free_port`] and [`wait_until`]: ports and polling with a deadline, never sleeps.
//!
//! Used only as a dev-dependency.

mod process;
mod redis;

pub use process::{ChildProcess, free_port, wait_for_tcp, wait_until};
pub use redis::{RedisCluster, RedisServer};
