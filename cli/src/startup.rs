//! What every server command does before it starts: report config errors, start tracing.

use std::process::ExitCode;

use shouhu_config::ConfigErrors;

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

/// Logs to stderr, filtered by `RUST_LOG` (default `info`). tracing-subscriber's `tracing-log`
/// feature makes this also the sink of Pingora's `log` records.
pub(crate) fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        // Colour codes only on a terminal, not in files and journald.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}
