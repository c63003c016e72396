//! `[journal]`: declarations the origin cannot take now are stored in Redis (the
//! `[fallback] redis`), answered 202 with a receipt, and replayed to the origin by a replayer
//! inside the proxy once the origin is healthy again.

use serde::{Deserialize, Serialize};

use crate::byte_size::ByteSize;
use crate::validate::Validator;

/// Default `journal.replay_rate`, declarations per second.
pub const DEFAULT_REPLAY_RATE: u32 = 50;
/// Default `journal.max_body`.
pub const DEFAULT_JOURNAL_MAX_BODY: ByteSize = ByteSize::kib(16);
/// Default `journal.consumer`.
pub const DEFAULT_JOURNAL_CONSUMER: &str = "shouhu-proxy";
/// Largest `journal.max_body`.
pub const MAX_JOURNAL_BODY: ByteSize = ByteSize::mib(1);

/// `[journal]` of the proxy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Journal {
    /// Journal declarations while the origin is down (needs `fallback.redis`). Default true.
    pub enabled: bool,
    /// Most declarations replayed per second, so a backlog does not knock the origin over
    /// again. Default [`DEFAULT_REPLAY_RATE`].
    pub replay_rate: u32,
    /// Largest declaration body journalled. Default [`DEFAULT_JOURNAL_MAX_BODY`].
    pub max_body: ByteSize,
    /// This proxy's replayer name; give each proxy its own and keep it across restarts, so
    /// a restarted proxy resumes what it had taken. Default [`DEFAULT_JOURNAL_CONSUMER`].
    pub consumer: String,
}

impl Default for Journal {
    fn default() -> Self {
        Self {
            enabled: true,
            replay_rate: DEFAULT_REPLAY_RATE,
            max_body: DEFAULT_JOURNAL_MAX_BODY,
            consumer: DEFAULT_JOURNAL_CONSUMER.to_owned(),
        }
    }
}

impl Journal {
    pub(crate) fn check(&self, v: &mut Validator<'_>) {
        if self.replay_rate == 0 {
            v.error("journal.replay_rate", "must be at least 1 (got 0)");
        }
        if self.max_body.bytes() == 0 || self.max_body > MAX_JOURNAL_BODY {
            v.error(
                "journal.max_body",
                format_args!(
                    "must be between 1B and {MAX_JOURNAL_BODY} (got {})",
                    self.max_body
                ),
            );
        }
        let name = self.consumer.trim();
        if name.is_empty() || name.len() > 64 || !name.bytes().all(|b| b.is_ascii_graphic()) {
            v.error(
                "journal.consumer",
                format_args!(
                    "must be 1 to 64 printable characters without spaces (got {:?})",
                    self.consumer
                ),
            );
        }
    }
}
