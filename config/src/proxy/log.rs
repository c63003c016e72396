//! `[log]`: how the proxy writes its log lines (to stderr): plain text for a terminal, or one
//! JSON object per line for a log shipper. `RUST_LOG`, when set, replaces `level`.

use serde::{Deserialize, Serialize};

use crate::string_enum::string_enum;

string_enum! {
    /// The shape of each log line.
    #[derive(Default)]
    pub enum LogFormat as "log format" {
        /// Human-readable lines (the default).
        #[default]
        Text = "text",
        /// One JSON object per line, with the request span's fields (`request_id`).
        Json = "json",
    }
}

string_enum! {
    /// The least severe level written.
    #[derive(Default)]
    pub enum LogLevel as "log level" {
        /// Only errors.
        Error = "error",
        /// Errors and warnings.
        Warn = "warn",
        /// Also state changes (breaker, reloads, start and stop): the default.
        #[default]
        Info = "info",
        /// Also per-request diagnostics (refusals, origin failures). Verbose under load.
        Debug = "debug",
        /// Everything, including the libraries' internals.
        Trace = "trace",
    }
}

/// Default `log.format`.
pub const DEFAULT_LOG_FORMAT: LogFormat = LogFormat::Text;
/// Default `log.level`.
pub const DEFAULT_LOG_LEVEL: LogLevel = LogLevel::Info;

/// `[log]` of the proxy.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Log {
    /// Default [`DEFAULT_LOG_FORMAT`].
    pub format: LogFormat,
    /// Default [`DEFAULT_LOG_LEVEL`]; the `RUST_LOG` environment variable, when set, takes
    /// its place (and may set levels per module).
    pub level: LogLevel,
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn defaults_are_the_documented_consts() {
        let log = Log::default();
        assert_eq!(log.format, DEFAULT_LOG_FORMAT);
        assert_eq!(log.level, DEFAULT_LOG_LEVEL);
    }

    #[test]
    fn values_parse_and_typos_are_named() {
        assert_eq!("json".parse::<LogFormat>().unwrap(), LogFormat::Json);
        assert_eq!("debug".parse::<LogLevel>().unwrap(), LogLevel::Debug);
        let e = "jsno".parse::<LogFormat>().unwrap_err().to_string();
        assert_eq!(
            e,
            "unknown log format \"jsno\" (expected one of text, json)"
        );
    }
}
