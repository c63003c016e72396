//! shouhu-loadtest: the open-loop surge benchmark (issue 7, overload.md §8–9).
//!
//! [`scenario`] reads a scenario file (phases of offered load as a multiple of the origin's
//! capacity, origin faults and capacity changes, colour changes); [`schedule`] turns its
//! rates into seeded Poisson arrival offsets, decided before the run so the load stays
//! open-loop; [`stack`] starts a private Redis, the reference origin and its population;
//! [`nginx`], [`issuer`] and the proxy are the variants put in front of it; [`generator`]
//! plays the users (retries after `Retry-After`, re-displays, a mix of classes); [`oracle`]
//! classifies every answer into an [`outcome::Outcome`] by verifying the code, its subject and
//! its colour against the scenario's truth; [`measure`] records latency from the scheduled
//! send time and the generator's own schedule lag; [`runner`] drives the phases and collects
//! a [`result::VariantRun`]; [`report`] and [`plot`] write the markdown summary and the PNGs.

pub mod generator;
pub mod issuer;
pub mod measure;
pub mod nginx;
pub mod oracle;
pub mod outcome;
pub mod plot;
pub mod report;
pub mod result;
pub mod runner;
pub mod scenario;
pub mod schedule;
pub mod stack;
