//! shouhu-fallback: what keeps codes showing when the origin cannot answer.
//!
//! - [`snapshot`]: every subject's last-known colour in Redis (standalone or Cluster), the
//!   watermark that says how complete it is, and the change feed caches follow.
//! - [`policy`]: the colour rule of fallback codes (never greener, stale is not green,
//!   missing is unknown), with its table.
//! - [`keyring`]: the fallback signing keys (newest active signs, all are published).
//! - [`issuer`]: snapshot + policy + key = a signed fallback code.
//! - [`session`]: the origin's session tokens, verified with its public key.
//! - [`journal`]: store-and-forward of declarations (Redis Stream) and its replayer.
//! - [`server`]: the standalone issuer's HTTP server (`shouhu issuer`).
//! - [`redis_link`]: the Redis connection under it all, which fails fast while Redis is down
//!   and reconnects in the background.
//!
//! It has no Pingora dependency, so the standalone `shouhu issuer` server and the proxy
//! share it.
//!
//! # Running Redis for it
//!
//! - **Persistence: AOF, `appendonly yes`, `appendfsync everysec` at least** (`always` to
//!   lose nothing on a power cut). The journal needs it: a declaration is acknowledged to the
//!   citizen once Redis has it. The snapshot alone would survive on RDB (the origin's sweep
//!   rebuilds it, and a restored older watermark only makes the issuer stricter).
//! - On a Cluster, set `cluster-require-full-coverage no`: otherwise one dead master makes
//!   every node refuse (`CLUSTERDOWN`) and every code falls back to unknown.
//! - Keys are prefixed (default `shouhu`), so several deployments or tests can share a Redis.

pub mod issuer;
pub mod journal;
pub mod keyring;
pub mod log_throttle;
pub mod policy;
pub mod redis_link;
pub mod server;
pub mod session;
pub mod snapshot;

pub use issuer::{IssueError, Issued, Issuer};
pub use keyring::{Keyring, KeyringError};
pub use policy::{Basis, Known, Policy};
pub use snapshot::{Lookup, Record, SnapshotError, SnapshotStore, StoreOptions};
