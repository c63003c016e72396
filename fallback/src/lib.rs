//! shouhu-fallback: what keeps codes showing when the origin cannot answer.
//!
//! It will own the Redis snapshot store (standalone and Cluster), snapshot ingest (bulk import,
//! deltas, the watermark and the change feed), the stateless fallback issuer, and the write
//! journal (Redis Streams) with its replayer. It has no Pingora dependency, so the standalone
//! `shouhu issuer` server and the proxy share it.
//!
//! Built by the fallback issue; empty until then.
