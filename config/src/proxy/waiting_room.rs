//! `[waiting_room]`: new registrations and logins (the `register` class) wait their turn in a
//! waiting room when more people arrive than the origin has room for. Each person holds a
//! signed ticket cookie; tickets are admitted in the order they were issued, at the rate the
//! origin has spare (capped by `max_rate`), and an admitted person may finish registering
//! for `admitted_for` without queueing again.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::duration::Duration;
use crate::validate::Validator;

/// The ticket-signing key below `data_dir` when `waiting_room.key_file` is not set; created
/// (mode 0600) on first start.
pub const DEFAULT_WAITING_ROOM_KEY_FILE_NAME: &str = "waiting-room.key";
/// Default `waiting_room.admitted_for`: long enough to load the form, fill it in and log in.
pub const DEFAULT_WAITING_ROOM_ADMITTED_FOR: Duration = Duration::from_mins(10);
/// Largest `waiting_room.admitted_for`.
pub const MAX_WAITING_ROOM_ADMITTED_FOR: Duration = Duration::from_hours(2);
/// Default `waiting_room.refresh`: the waiting page reloads itself every 15 to 25 s (this
/// ±25 %), as Cloudflare's does every 20 s.
pub const DEFAULT_WAITING_ROOM_REFRESH: Duration = Duration::from_secs(20);
/// Shortest `waiting_room.refresh`.
pub const MIN_WAITING_ROOM_REFRESH: Duration = Duration::from_secs(1);
/// Longest `waiting_room.refresh`.
pub const MAX_WAITING_ROOM_REFRESH: Duration = Duration::from_mins(5);

/// `[waiting_room]` of the proxy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WaitingRoom {
    /// Queue `register` requests when the origin cannot take them all. Off: they pass
    /// through under admission like `other`. Default true.
    pub enabled: bool,
    /// The ticket-signing key: 32 bytes as 64 hex digits (`openssl rand -hex 32`). Give
    /// every proxy behind one balancer the same file, so each honours the others' tickets.
    /// Default `{data_dir}/`[`DEFAULT_WAITING_ROOM_KEY_FILE_NAME`], created on first start;
    /// a configured file must exist.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_file: Option<PathBuf>,
    /// Most people admitted per second, whatever the origin has spare. Default: none, only
    /// the origin's spare rate counts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_rate: Option<u32>,
    /// How long an admitted person may keep sending `register` requests without queueing
    /// again; at most [`MAX_WAITING_ROOM_ADMITTED_FOR`]. Default
    /// [`DEFAULT_WAITING_ROOM_ADMITTED_FOR`].
    pub admitted_for: Duration,
    /// How often a waiting page reloads itself and apps are told to ask again (at most; sooner
    /// when the turn is nearer), with ±25 % jitter; between [`MIN_WAITING_ROOM_REFRESH`] and
    /// [`MAX_WAITING_ROOM_REFRESH`]. Default [`DEFAULT_WAITING_ROOM_REFRESH`].
    pub refresh: Duration,
}

impl Default for WaitingRoom {
    fn default() -> Self {
        Self {
            enabled: true,
            key_file: None,
            max_rate: None,
            admitted_for: DEFAULT_WAITING_ROOM_ADMITTED_FOR,
            refresh: DEFAULT_WAITING_ROOM_REFRESH,
        }
    }
}

impl WaitingRoom {
    /// The ticket-signing key file: `key_file`, else
    /// `{data_dir}/`[`DEFAULT_WAITING_ROOM_KEY_FILE_NAME`].
    pub fn key_path(&self, data_dir: &Path) -> PathBuf {
        self.key_file
            .clone()
            .unwrap_or_else(|| data_dir.join(DEFAULT_WAITING_ROOM_KEY_FILE_NAME))
    }

    pub(crate) fn check(&self, v: &mut Validator<'_>) {
        if self
            .key_file
            .as_ref()
            .is_some_and(|p| p.as_os_str().is_empty())
        {
            v.error("waiting_room.key_file", "must not be empty");
        }
        if self.max_rate == Some(0) {
            v.error("waiting_room.max_rate", "must be >= 1 (got 0)");
        }
        v.positive_at_most(
            "waiting_room.admitted_for",
            self.admitted_for,
            MAX_WAITING_ROOM_ADMITTED_FOR,
        );
        if self.refresh < MIN_WAITING_ROOM_REFRESH || self.refresh > MAX_WAITING_ROOM_REFRESH {
            v.error(
                "waiting_room.refresh",
                format_args!(
                    "must be between {MIN_WAITING_ROOM_REFRESH} and {MAX_WAITING_ROOM_REFRESH} \
                     (got {})",
                    self.refresh
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used, reason = "tests")]

    use crate::load_proxy_from_str;

    #[test]
    fn defaults_and_key_path() {
        let c = load_proxy_from_str("t.toml", "[origin]\nurl = \"http://127.0.0.1:1\"\n").unwrap();
        let w = &c.waiting_room;
        assert!(w.enabled);
        assert_eq!(w.max_rate, None);
        assert_eq!(
            w.key_path(std::path::Path::new("/d")),
            std::path::Path::new("/d/waiting-room.key")
        );
    }

    #[test]
    fn reports_each_bad_field_with_its_value() {
        let text = "[origin]\nurl = \"http://127.0.0.1:1\"\n[waiting_room]\nmax_rate = 0\n\
                    admitted_for = \"0s\"\nrefresh = \"10m\"\nkey_file = \"\"\n";
        let errors = load_proxy_from_str("t.toml", text).unwrap_err().to_string();
        for expected in [
            "t.toml: waiting_room.max_rate: must be >= 1 (got 0)",
            "t.toml: waiting_room.admitted_for: must be > 0s (got 0s)",
            "t.toml: waiting_room.refresh: must be between 1s and 5m (got 10m)",
            "t.toml: waiting_room.key_file: must not be empty",
        ] {
            assert!(errors.contains(expected), "{expected} not in {errors}");
        }
    }
}
