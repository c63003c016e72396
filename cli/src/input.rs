//! Argument values shared by several commands.

use std::io::Read;

use anyhow::Context;

/// The argument itself, or standard input when it is `-` (trailing whitespace trimmed).
pub(crate) fn arg_or_stdin(arg: &str) -> anyhow::Result<String> {
    if arg != "-" {
        return Ok(arg.to_owned());
    }
    let mut text = String::new();
    std::io::stdin()
        .read_to_string(&mut text)
        .context("reading standard input")?;
    Ok(text.trim().to_owned())
}

/// A duration such as `5m`, `30s` or `365d`.
pub(crate) fn duration(text: &str) -> Result<std::time::Duration, String> {
    humantime::parse_duration(text)
        .map_err(|e| format!("invalid duration \"{text}\": {e} (expected e.g. \"30s\", \"5m\")"))
}

/// An RFC 3339 time such as `2026-11-29T08:00:00Z`, as whole seconds.
pub(crate) fn rfc3339(text: &str) -> Result<u64, String> {
    shouhu_code::time::parse_rfc3339(text)
        .map_err(|e| format!("invalid time \"{text}\": {e} (expected e.g. 2026-11-29T08:00:00Z)"))
}
