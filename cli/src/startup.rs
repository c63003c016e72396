//! What every server command does before it starts: report config errors, start tracing.

use std::process::ExitCode;

use shouhu_config::ConfigErrors;
use shouhu_config::proxy::{LogFormat, LogLevel};

use crate::check_config::EXIT_CONFIG;

/// The config, or every error printed to stderr and the exit code for a bad config.
pub(crate) fn config_or_exit<T>(loaded: Result<T, ConfigErrors>) -> Result<T, ExitCode> {
    loaded.map_err(|errors| {
        for e in errors.iter() {
            eprintln!("{e}");
        }
        ExitCode::from(EXIT_CONFIG)
    })
}

/// Logs to stderr as text, filtered by `RUST_LOG` (default `info`).
pub(crate) fn init_tracing() {
    init_tracing_with(LogFormat::Text, LogLevel::Info);
}

/// Logs to stderr in `format`, filtered by `RUST_LOG`, else `level`. tracing-subscriber's
/// `tracing-log` feature (on by default) installs `LogTracer` in `try_init`, which makes this
/// also the sink of Pingora's `log` records, at the same filter.
pub(crate) fn init_tracing_with(format: LogFormat, level: LogLevel) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level.as_str()));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        // One object per line: the event's fields at the top level, and the fields of the
        // span it happened in (`request_id` of the request span) under `span`.
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
        // Colour codes only on a terminal, not in files and journald.
        LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .try_init(),
    };
}
