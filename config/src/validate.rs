//! The rule pass: every config checks its cross-field and range rules into a [`Validator`],
//! which collects all violations and drops those on fields that already failed to parse (a
//! field that failed holds its default, so a rule about it would be noise).

use std::fmt;
use std::net::SocketAddr;
use std::path::Path;

use crate::collect::is_within;
use crate::duration::Duration;
use crate::error::ConfigError;
use crate::kind::Kind;

/// Collects rule violations for one file.
pub(crate) struct Validator<'a> {
    file: &'a str,
    broken: Vec<String>,
    errors: Vec<ConfigError>,
}

impl<'a> Validator<'a> {
    /// A validator for `file`, where the field paths in `broken` already failed to parse.
    pub(crate) fn new(file: &'a str, broken: Vec<String>) -> Self {
        Self {
            file,
            broken,
            errors: Vec::new(),
        }
    }

    /// Reports `message` at `path`.
    pub(crate) fn error(&mut self, path: &str, message: impl fmt::Display) {
        self.error_related(path, &[], message);
    }

    /// Reports `message` at `path`, a rule that also reads the fields at `related`; dropped
    /// if any of them failed to parse.
    pub(crate) fn error_related(
        &mut self,
        path: &str,
        related: &[&str],
        message: impl fmt::Display,
    ) {
        let touches_broken = std::iter::once(path)
            .chain(related.iter().copied())
            .any(|p| {
                self.broken
                    .iter()
                    .any(|b| b == p || is_within(p, b) || is_within(b, p))
            });
        if !touches_broken {
            self.errors
                .push(ConfigError::new(self.file, path, message.to_string()));
        }
    }

    /// The violations found.
    pub(crate) fn finish(self) -> Vec<ConfigError> {
        self.errors
    }

    /// A `kind` key, if present, must name the program reading the file.
    pub(crate) fn kind(&mut self, found: Option<Kind>, expected: Kind) {
        if let Some(found) = found.filter(|&k| k != expected) {
            self.error("kind", kind_mismatch(found, expected));
        }
    }

    /// The admin listener must not take the service listener's port.
    pub(crate) fn listeners(&mut self, listen: SocketAddr, admin_listen: SocketAddr) {
        if crate::net::conflicts(listen, admin_listen) {
            self.error_related(
                "server.admin_listen",
                &["server.listen"],
                format_args!("{admin_listen} conflicts with server.listen = {listen} (same port)"),
            );
        }
    }

    /// `data_dir` must name a directory.
    pub(crate) fn data_dir(&mut self, dir: &Path) {
        if dir.as_os_str().is_empty() {
            self.error("data_dir", "must not be empty");
        }
    }

    /// A duration that must not be zero.
    pub(crate) fn positive(&mut self, path: &str, value: Duration) {
        if value.is_zero() {
            self.error(path, "must be > 0s (got 0s)");
        }
    }

    /// A duration in `1..=max`.
    pub(crate) fn positive_at_most(&mut self, path: &str, value: Duration, max: Duration) {
        self.positive(path, value);
        if value > max {
            self.error(path, format_args!("must be <= {max} (got {value})"));
        }
    }
}

/// `this is an issuer config; shouhu proxy needs kind = "proxy"`.
pub(crate) fn kind_mismatch(found: Kind, expected: Kind) -> String {
    format!(
        "this is {} config; shouhu {expected} needs kind = \"{expected}\"",
        found.with_article()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_rules_on_broken_fields_and_their_relatives() {
        let mut v = Validator::new("f", vec!["cache.ttl".to_owned(), "routes[1]".to_owned()]);
        v.error("cache.ttl", "a");
        v.error_related("cache.max_stale", &["cache.ttl"], "b");
        v.error("routes[1].path", "c");
        v.error("routes[2].path", "d");
        let kept: Vec<String> = v.finish().iter().map(ToString::to_string).collect();
        assert_eq!(kept, ["f: routes[2].path: d"]);
    }
}
