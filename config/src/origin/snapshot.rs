//! `[snapshot]`: how the origin publishes everyone's last-known colour to Redis.

use serde::{Deserialize, Serialize};

use crate::duration::Duration;
use crate::validate::Validator;

/// Default `snapshot.heartbeat`.
pub const DEFAULT_SNAPSHOT_HEARTBEAT: Duration = Duration::from_secs(1);
/// Default `snapshot.sweep_every`.
pub const DEFAULT_SNAPSHOT_SWEEP_EVERY: Duration = Duration::from_mins(10);

/// `[snapshot]` of the origin. Used only when `redis` is set.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Snapshot {
    /// How often the watermark ("complete up to") advances when everything before it has been
    /// published. Default [`DEFAULT_SNAPSHOT_HEARTBEAT`].
    pub heartbeat: Duration,
    /// How often everyone's record is re-published (also once at start). Default
    /// [`DEFAULT_SNAPSHOT_SWEEP_EVERY`].
    pub sweep_every: Duration,
}

impl Default for Snapshot {
    fn default() -> Self {
        Self {
            heartbeat: DEFAULT_SNAPSHOT_HEARTBEAT,
            sweep_every: DEFAULT_SNAPSHOT_SWEEP_EVERY,
        }
    }
}

impl Snapshot {
    pub(crate) fn check(&self, v: &mut Validator<'_>) {
        v.positive("snapshot.heartbeat", self.heartbeat);
        v.positive("snapshot.sweep_every", self.sweep_every);
    }
}
