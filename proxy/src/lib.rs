//! shouhu-proxy: the Pingora gateway in front of the origin.
//!
//! It will own identity (session tokens verified at the edge), request classes, admission, the
//! per-user cache, the circuit breaker, failover to the in-process fallback issuer, edge
//! verification of codes, metrics and the admin endpoints. It talks to the origin only over
//! HTTP and never imports `shouhu-origin`.
//!
//! Built by the proxy and admission issues; empty until then.
