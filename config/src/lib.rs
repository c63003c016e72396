//! shouhu-config: every config file of shouhu, its defaults, and its validation.
//!
//! Three kinds of file, one per long-running subcommand: [`ProxyConfig`] (`shouhu proxy`),
//! [`IssuerConfig`] (`shouhu issuer`) and [`OriginConfig`] (`shouhu origin`). Each field's
//! default is a documented `pub const` in the kind's module ([`proxy`], [`issuer`],
//! [`origin`]); `Default::default()` of each config is the program run with no file.
//!
//! Loading reports **every** mistake in a file at once, each as
//! `{file}: {field path}: {rule and offending value}` ([`ConfigError`], collected in
//! [`ConfigErrors`]):
//!
//! 1. `load` reads the file and parses TOML syntax, refusing a file whose top-level `kind`
//!    names another program;
//! 2. `collect` deserializes it into the schema, removing each bad value and retrying so
//!    that every unknown field and bad value is reported, not just the first;
//! 3. command-line [`Overrides`] replace file values;
//! 4. `validate` runs the rules (required values, ranges, cross-field rules), skipping fields
//!    that already failed in step 2.
//!
//! Leaf modules hold the value types the schemas share, each parsed from a string with a
//! message that names the value: [`Duration`] (`"250ms"`), [`ByteSize`] (`"256MiB"`),
//! [`HttpUrl`], [`RedisUrl`] and [`RedisUrls`], [`Region`], socket addresses
//! ([`parse_socket_addr`]), string enums (`string_enum`, [`UnknownVariant`]) and
//! [`SecretRef`], which points at a secret in a file or the environment and never holds one.
//!
//! This crate has no runtime dependencies: it reads files and checks values, nothing more.

mod byte_size;
mod collect;
mod duration;
mod error;
pub mod issuer;
mod kind;
mod load;
mod net;
mod number;
pub mod origin;
mod overrides;
pub mod proxy;
mod region;
mod secret;
mod string_enum;
mod text;
mod url;
mod validate;

pub use crate::byte_size::{ByteSize, InvalidByteSize};
pub use crate::duration::{Duration, InvalidDuration};
pub use crate::error::{ConfigError, ConfigErrors};
pub use crate::issuer::IssuerConfig;
pub use crate::kind::Kind;
pub use crate::load::{
    NO_FILE, check, check_str, load_issuer, load_issuer_from_str, load_issuer_with, load_origin,
    load_origin_from_str, load_origin_with, load_proxy, load_proxy_from_str, load_proxy_with,
};
pub use crate::net::{InvalidSocketAddr, parse_socket_addr};
pub use crate::origin::OriginConfig;
pub use crate::overrides::Overrides;
pub use crate::proxy::ProxyConfig;
pub use crate::region::{DEFAULT_REGION, InvalidRegion, Region};
pub use crate::secret::{Secret, SecretError, SecretRef};
pub use crate::string_enum::UnknownVariant;
pub use crate::url::{DEFAULT_REDIS_PORT, HttpUrl, InvalidUrl, RedisUrl, RedisUrls};
