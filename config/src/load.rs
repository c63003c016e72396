//! Reading files: TOML syntax, the `kind` guard, collecting parse errors, applying command-line
//! overrides and running the rules, so each loader returns every mistake at once.

use std::path::Path;

use serde::de::DeserializeOwned;
use toml::Table;

use crate::collect::deserialize_all;
use crate::error::{ConfigError, ConfigErrors};
use crate::issuer::IssuerConfig;
use crate::kind::Kind;
use crate::origin::OriginConfig;
use crate::overrides::Overrides;
use crate::proxy::ProxyConfig;
use crate::validate::{Validator, kind_mismatch};

/// The file name in errors when a program runs on defaults and flags alone.
pub const NO_FILE: &str = "(no config file)";

/// What the loaders need from a config type.
pub(crate) trait Schema: DeserializeOwned + Default {
    /// The program that reads it.
    const KIND: Kind;
    /// Applies command-line overrides.
    fn apply(&mut self, overrides: &Overrides);
    /// Reports every rule violation.
    fn rules(&self, v: &mut Validator<'_>);
}

/// Runs the rules alone, for the public `validate` methods.
pub(crate) fn validate<C: Schema>(config: &C, file: &str) -> Result<(), ConfigErrors> {
    let mut v = Validator::new(file, Vec::new());
    config.rules(&mut v);
    ConfigErrors::from(v.finish()).into_result()
}

/// Loads a config of type `C` from `file` (or defaults alone), applies `overrides` and
/// validates.
pub(crate) fn load<C: Schema>(
    file: Option<&Path>,
    overrides: &Overrides,
) -> Result<C, ConfigErrors> {
    match file {
        None => from_table(NO_FILE, Table::new(), overrides),
        Some(path) => {
            let name = path.display().to_string();
            let text = read(path, &name)?;
            from_table(&name, parse(&name, &text)?, overrides)
        }
    }
}

/// Like [`load`] on text already read; `name` is the file name for messages.
pub(crate) fn load_str<C: Schema>(
    name: &str,
    text: &str,
    overrides: &Overrides,
) -> Result<C, ConfigErrors> {
    from_table(name, parse(name, text)?, overrides)
}

fn read(path: &Path, name: &str) -> Result<String, ConfigErrors> {
    std::fs::read_to_string(path)
        .map_err(|e| ConfigError::new(name, "", format!("cannot read: {e}")).into())
}

/// Parses TOML syntax; an error says where (line and column, 1-based).
fn parse(name: &str, text: &str) -> Result<Table, ConfigErrors> {
    text.parse::<Table>().map_err(|e| {
        let at = match e.span() {
            Some(span) => {
                let before = text.get(..span.start).unwrap_or(text);
                let line = before.matches('\n').count() + 1;
                let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
                format!(" at line {line}, column {column}")
            }
            None => String::new(),
        };
        ConfigError::new(
            name,
            "",
            format!("invalid TOML{at}: {}", e.message().trim_end()),
        )
        .into()
    })
}

fn from_table<C: Schema>(
    name: &str,
    table: Table,
    overrides: &Overrides,
) -> Result<C, ConfigErrors> {
    // A file for another program would otherwise produce a screen of unknown fields.
    if let Some(found) = kind_key(&table).filter(|&k| k != C::KIND) {
        return Err(ConfigError::new(name, "kind", kind_mismatch(found, C::KIND)).into());
    }
    let (mut config, mut errors) = deserialize_all::<C>(name, table);
    config.apply(overrides);
    let mut v = Validator::new(name, errors.iter().map(|e| e.path.clone()).collect());
    config.rules(&mut v);
    errors.extend(v.finish());
    ConfigErrors::from(errors).into_result().map(|()| config)
}

/// The `kind` key if it names a kind; anything else is left to the schema to report.
fn kind_key(table: &Table) -> Option<Kind> {
    table.get("kind")?.as_str()?.parse().ok()
}

/// Checks a config file for `shouhu check-config FILE [--kind K]` and returns its kind.
///
/// The kind comes from `kind`, else from the file's top-level `kind` key, else from its
/// name (a stem containing exactly one of `proxy`, `issuer`, `origin`). The file is checked
/// as if run without command-line overrides, so required values (such as the proxy's
/// `origin.url`) must be in it.
///
/// # Errors
///
/// Every mistake in the file, or a single error if it cannot be read, is not TOML, or its
/// kind cannot be told.
pub fn check(path: &Path, kind: Option<Kind>) -> Result<Kind, ConfigErrors> {
    let name = path.display().to_string();
    let text = read(path, &name)?;
    check_str(&name, &text, kind)
}

/// [`check`] on text already read; `name` stands for the file name (its stem may tell the
/// kind).
///
/// # Errors
///
/// As for [`check`].
pub fn check_str(name: &str, text: &str, kind: Option<Kind>) -> Result<Kind, ConfigErrors> {
    let table = parse(name, text)?;
    let stem = Path::new(name)
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default();
    let kind = kind
        .or_else(|| kind_key(&table))
        .or_else(|| Kind::from_file_stem(stem))
        .ok_or_else(|| {
            ConfigError::new(
                name,
                "",
                r#"cannot tell which program this config is for: add kind = "proxy", "issuer" or "origin" at the top, name the file like proxy.toml, or pass --kind"#,
            )
        })?;
    let none = Overrides::default();
    match kind {
        Kind::Proxy => from_table::<ProxyConfig>(name, table, &none).map(drop),
        Kind::Issuer => from_table::<IssuerConfig>(name, table, &none).map(drop),
        Kind::Origin => from_table::<OriginConfig>(name, table, &none).map(drop),
    }?;
    Ok(kind)
}

macro_rules! loaders {
    ($config:ty, $kind:literal, $load:ident, $from_str:ident, $with:ident) => {
        #[doc = concat!("Loads and validates a `shouhu ", $kind, "` config file.")]
        ///
        /// # Errors
        ///
        /// Every mistake in the file: unreadable, TOML syntax, unknown fields, bad values and
        /// rule violations, each with its field path.
        pub fn $load(path: &Path) -> Result<$config, ConfigErrors> {
            load(Some(path), &Overrides::default())
        }

        #[doc = concat!("Loads and validates a `shouhu ", $kind, "` config from text; `name` stands")]
        /// for the file name in messages.
        ///
        /// # Errors
        ///
        /// Every mistake in the text, as for the file loader.
        pub fn $from_str(name: &str, text: &str) -> Result<$config, ConfigErrors> {
            load_str(name, text, &Overrides::default())
        }

        #[doc = concat!("Loads a `shouhu ", $kind, "` config from `path`, or from defaults alone when")]
        /// `None`, applies command-line `overrides`, then validates.
        ///
        /// # Errors
        ///
        /// Every mistake in the file and in the result of the overrides (e.g. a required URL
        /// that neither gave).
        pub fn $with(path: Option<&Path>, overrides: &Overrides) -> Result<$config, ConfigErrors> {
            load(path, overrides)
        }
    };
}

loaders!(
    ProxyConfig,
    "proxy",
    load_proxy,
    load_proxy_from_str,
    load_proxy_with
);
loaders!(
    IssuerConfig,
    "issuer",
    load_issuer,
    load_issuer_from_str,
    load_issuer_with
);
loaders!(
    OriginConfig,
    "origin",
    load_origin,
    load_origin_from_str,
    load_origin_with
);
