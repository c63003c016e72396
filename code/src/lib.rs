//! shouhu-code: the signed health code, shared by the origin, the fallback issuer, the proxy's
//! edge verification and the `shouhu code` commands.
//!
//! A code is `HZ1:` + Base45 of a tagged COSE_Sign1, signed with Ed25519, whose payload is a CWT
//! claims map ([`Claims`]). Anyone holding the trust list verifies it offline.
//!
//! - [`claims`]: what a code says and its canonical CBOR.
//! - [`key`]: key pairs, kids, roles and key files.
//! - [`trust`]: the trust list of public keys.
//! - [`sign`] and [`verify`]: the two directions; [`cose`] holds the wire layers they share.
//! - [`qr`]: the QR as SVG.
//! - [`scan`]: the answer to a venue scanner.
//! - [`page`]: the citizen-facing JSON view and HTML page, shared by origin and fallback.
//! - [`time`]: whole-second times and their RFC 3339 form.
//!
//! The issuing [`Region`] is the config crate's type, so a region that a config file accepts
//! is exactly one a key and a code accept.

mod macros;

pub mod claims;
pub mod cose;
pub mod key;
pub mod page;
pub mod qr;
pub mod scan;
pub mod sign;
pub mod time;
pub mod trust;
pub mod verify;

pub use claims::{Claims, CodeId, Colour, Source, SubjectId};
pub use key::{Algorithm, KeyError, KeyPair, KeyRefusal, KeyRole, Kid, PublicKey};
pub use macros::ParseError;
pub use page::{CodeView, render_page};
pub use qr::{QrError, qr_svg};
pub use shouhu_config::Region;
pub use sign::SignError;
pub use trust::{TrustList, TrustListError};
pub use verify::{DEFAULT_CLOCK_SKEW, Verified, VerifyError, VerifyPolicy, peek_claims, verify};
