//! shouhu-loadtest: the open-loop surge benchmark (issue 7, overload.md §8–9).
//!
//! The groundwork, as a library: [`scenario`] reads a scenario file (phases of offered load as
//! a multiple of the origin's capacity, origin faults and capacity changes, colour changes);
//! [`schedule`] turns its rates into seeded Poisson arrival offsets, decided before the run so
//! the load stays open-loop; [`oracle`] classifies every answer into an [`outcome::Outcome`]
//! by verifying the code, its subject and its colour against the scenario's truth; and
//! [`measure`] records latency from the scheduled send time per outcome, and the generator's
//! own schedule lag, which decides whether a run is valid.
//!
//! Still to come: the HTTP generator and user model, the variants (direct, nginx, shouhu),
//! the reports with plots, the binary `shouhu-loadtest` and `make bench`.

pub mod measure;
pub mod oracle;
pub mod outcome;
pub mod scenario;
pub mod schedule;
