//! Times in codes are whole seconds since the Unix epoch (CWT NumericDate). In JSON they are
//! RFC 3339 strings so that people and scripts read the same thing.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Deserializer, Serializer};

/// Whole seconds since the Unix epoch.
pub type UnixTime = u64;

/// The current time in whole seconds. A clock before 1970 reads as 0.
#[must_use]
pub fn now() -> UnixTime {
    to_unix(SystemTime::now())
}

/// Converts a `SystemTime` to whole seconds, clamping times before the epoch to 0.
#[must_use]
pub fn to_unix(t: SystemTime) -> UnixTime {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Formats whole seconds as RFC 3339 in UTC, e.g. `2026-11-29T08:00:00Z`.
#[must_use]
pub fn format_rfc3339(t: UnixTime) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(t)).to_string()
}

/// China Standard Time, which every health-code region uses, as an offset from UTC.
pub const CHINA_OFFSET_SECS: u64 = 8 * 3600;

/// Formats whole seconds as wall-clock time in China for people, e.g.
/// `2026-11-29 16:00:00 (UTC+8)`.
#[must_use]
pub fn format_china_time(t: UnixTime) -> String {
    let shifted = format_rfc3339(t.saturating_add(CHINA_OFFSET_SECS));
    format!(
        "{} (UTC+8)",
        shifted.trim_end_matches('Z').replacen('T', " ", 1)
    )
}

/// Parses an RFC 3339 time such as `2026-11-29T08:00:00Z`.
///
/// # Errors
/// The text is not an RFC 3339 UTC time after 1970.
pub fn parse_rfc3339(text: &str) -> Result<UnixTime, humantime::TimestampError> {
    humantime::parse_rfc3339_weak(text).map(to_unix)
}

/// Serde helpers for a `UnixTime` field written as RFC 3339.
pub mod rfc3339 {
    use super::{Deserialize, Deserializer, Serializer, UnixTime, format_rfc3339, parse_rfc3339};

    /// Writes the time as RFC 3339.
    ///
    /// # Errors
    /// Only those of the serializer.
    pub fn serialize<S: Serializer>(t: &UnixTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_rfc3339(*t))
    }

    /// Reads an RFC 3339 time.
    ///
    /// # Errors
    /// The value is not an RFC 3339 string.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<UnixTime, D::Error> {
        let text = String::deserialize(d)?;
        parse_rfc3339(&text)
            .map_err(|e| serde::de::Error::custom(format!("invalid time \"{text}\": {e}")))
    }
}

/// Serde helpers for a `UnixTime` field written as RFC 3339 and read from either RFC 3339 or
/// whole seconds since the epoch: for files that people and other systems write (snapshot
/// imports and ingest), where both forms are common.
pub mod rfc3339_or_seconds {
    use super::{Deserialize, Deserializer, Serializer, UnixTime, parse_rfc3339};

    /// Writes the time as RFC 3339.
    ///
    /// # Errors
    /// Only those of the serializer.
    pub fn serialize<S: Serializer>(t: &UnixTime, s: S) -> Result<S::Ok, S::Error> {
        super::rfc3339::serialize(t, s)
    }

    /// Reads an RFC 3339 string or a whole number of seconds.
    ///
    /// # Errors
    /// Neither form.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<UnixTime, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Either {
            Seconds(UnixTime),
            Text(String),
        }
        match Either::deserialize(d).map_err(|_| {
            serde::de::Error::custom(
                "expected an RFC 3339 time such as \"2026-11-29T08:00:00Z\" or whole seconds since 1970",
            )
        })? {
            Either::Seconds(t) => Ok(t),
            Either::Text(text) => parse_rfc3339(&text)
                .map_err(|e| serde::de::Error::custom(format!("invalid time \"{text}\": {e}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn rfc3339_round_trips() {
        let t = 1_796_000_000;
        assert_eq!(parse_rfc3339(&format_rfc3339(t)).ok(), Some(t));
        assert_eq!(format_rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_china_time(0), "1970-01-01 08:00:00 (UTC+8)");
    }

    #[test]
    fn files_may_write_times_either_way() {
        #[derive(serde::Deserialize, serde::Serialize)]
        struct Line {
            #[serde(with = "rfc3339_or_seconds")]
            at: UnixTime,
        }
        let text: Line = serde_json::from_str(r#"{"at":"1970-01-01T00:01:40Z"}"#).unwrap();
        let secs: Line = serde_json::from_str(r#"{"at":100}"#).unwrap();
        assert_eq!((text.at, secs.at), (100, 100));
        assert_eq!(
            serde_json::to_string(&secs).unwrap(),
            r#"{"at":"1970-01-01T00:01:40Z"}"#
        );
        let err = serde_json::from_str::<Line>(r#"{"at":"yesterday"}"#)
            .err()
            .unwrap();
        assert!(
            err.to_string().contains("invalid time \"yesterday\""),
            "{err}"
        );
    }
}
