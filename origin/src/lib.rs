//! shouhu-origin: the reference code-issuing system that shouhu protects — the full issuance
//! pipeline of a provincial health-code system, including how such systems fail.
//!
//! - [`server`]: [`Origin::build`](server::Origin::build) assembles everything;
//!   [`Origin::serve`](server::Origin::serve) runs the citizen and admin listeners it is
//!   given until a shutdown future resolves.
//! - [`api`]: the citizen and scanner API (register, login, declare, code JSON and page,
//!   explain, verify, trust list, session key); [`admin`]: status, metrics, fault injection,
//!   capacity knobs.
//! - [`app`]: the pipeline — facts from [`store`] and [`sources`], colour from [`rules`],
//!   codes signed with the keys from [`keys`], changes handed to the [`publisher`].
//! - [`validate`] (GB 11643 ID numbers, phones) and [`identity`] (subject ids, session
//!   JWTs); [`error`] is the one closed set of API refusals.
//! - [`facts`] and [`rules`]: the facts the sources hold and the declarative, versioned
//!   ruleset evaluated as a pure function of (facts, ruleset, now).
//! - [`datasource`]: the three data-source simulators (health, police, carrier) as HTTP
//!   services; [`sources`]: the origin's clients of them (timeouts, short cache, change feed).
//! - [`publisher`]: the snapshot publisher, writing through `shouhu_fallback::snapshot`.
//! - [`capacity`] (USL processor sharing, crash, cold restart) and [`fault`] (hang, error,
//!   slow, refuse): the failure behaviour benchmarks need; [`metrics`]: Prometheus text.
//!
//! It uses `shouhu-config`, `shouhu-code` and the fallback crate's snapshot module; it never
//! imports the proxy.

pub mod admin;
pub mod api;
pub mod app;
pub mod capacity;
pub mod datasource;
pub mod error;
pub mod facts;
pub mod fault;
pub mod identity;
pub mod keys;
pub mod metrics;
pub mod publisher;
pub mod rules;
pub mod server;
pub mod sources;
pub mod store;
pub mod validate;

pub use server::{Origin, StartError};
