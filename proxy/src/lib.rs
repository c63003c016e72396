//! shouhu-proxy: the Pingora gateway in front of the origin (DESIGN.md, "A request's way
//! through the proxy"). It talks to the origin only over HTTP and never imports
//! `shouhu-origin`.
//!
//! The display path's core has no Pingora in it, so it is tested without a server:
//!
//! - [`identity`]: the session token verified at the edge (and remembered until it expires),
//!   giving the subject every per-user key contains.
//! - [`breaker`]: the circuit breaker on the origin (consecutive failures, error share,
//!   timeouts, half-open probes on a short timeout).
//! - [`cache`]: the per-user cache of origin codes, keyed by the verified subject, following
//!   the snapshot's change feed.
//! - [`origin_client`]: the display path's own HTTP client to the origin.
//! - [`display`]: cache, origin, fallback issuer, "unknown": the answer to a `display`
//!   request, with [`outcome`] saying how it ended.
//!
//! Around it, the Pingora side and operations:
//!
//! - [`classify`]: a request's class, deadline and whether it needs a session, from the
//!   route table.
//! - [`service`]: the `ProxyHttp` implementation: identity before anything else, `display`
//!   answered from [`display`], `scan` verified at the edge when the origin is unavailable,
//!   everything else passed through under the breaker, every failure answered fast.
//! - [`metrics`]: the one Prometheus registry and its pre-resolved handles.
//! - [`admin`]: the loopback admin listener: `/metrics`, `/healthz`, `/readyz`, `/status`.
//! - [`log_throttle`] (from shouhu-fallback, which the issuer shares): at most one log line
//!   per interval for events that can happen on every request.
//! - [`server`]: start-up (keys, trust list, session key, Redis), the Pingora server and its
//!   `ServerConf`, and the admin runtime; what `shouhu proxy` runs.

pub mod admin;
pub mod admission;
pub mod classify;
pub mod metrics;
pub mod server;
pub mod service;

pub mod breaker;
pub mod cache;
pub mod display;
pub mod identity;
pub use shouhu_fallback::log_throttle;
pub mod origin_client;
pub mod outcome;
pub mod ratelimit;
pub mod waiting_room;
