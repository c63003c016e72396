//! shouhu-origin: the reference code-issuing system that shouhu protects.
//!
//! It will own the full issuance pipeline: registration, login and session tokens, daily
//! declarations, the three data-source simulators, the colour rules engine, code display and
//! scan verification, SQLite storage, the snapshot publisher, and the capacity model and fault
//! injection used by benchmarks. It uses `shouhu-config` and `shouhu-code` only.
//!
//! Built by the origin issue; empty until then.
