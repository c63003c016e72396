//! shouhu-loadtest: the open-loop surge benchmark.
//!
//! It will own the generator (Poisson arrivals, latency from the scheduled send time), the user
//! model, the oracle that checks every returned code, the scenarios, the nginx comparison and
//! the reports with plots. The binary `shouhu-loadtest` and `make bench` run it.
//!
//! Built by the load-test issue; empty until then.
