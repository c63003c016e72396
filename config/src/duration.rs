//! Durations written as `"250ms"`, `"5s"`, `"2m"`, `"1h"` (humantime syntax).

use std::fmt;
use std::str::FromStr;

/// A duration in a config file; wraps [`std::time::Duration`].
///
/// Parses humantime strings (`"250ms"`, `"5s"`, `"2m"`, `"1h 30m"`) and displays (and so
/// serializes) in the same syntax, so a value round-trips through TOML unchanged.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Duration(std::time::Duration);

impl Duration {
    /// No time at all.
    pub const ZERO: Self = Self(std::time::Duration::ZERO);

    /// `millis` milliseconds.
    pub const fn from_millis(millis: u64) -> Self {
        Self(std::time::Duration::from_millis(millis))
    }

    /// `secs` seconds.
    pub const fn from_secs(secs: u64) -> Self {
        Self(std::time::Duration::from_secs(secs))
    }

    /// `mins` minutes.
    pub const fn from_mins(mins: u64) -> Self {
        Self(std::time::Duration::from_secs(mins * 60))
    }

    /// `hours` hours.
    pub const fn from_hours(hours: u64) -> Self {
        Self(std::time::Duration::from_secs(hours * 3600))
    }

    /// The standard library duration.
    pub const fn get(self) -> std::time::Duration {
        self.0
    }

    /// Whether this is zero.
    pub const fn is_zero(self) -> bool {
        self.0.is_zero()
    }
}

impl From<std::time::Duration> for Duration {
    fn from(duration: std::time::Duration) -> Self {
        Self(duration)
    }
}

impl From<Duration> for std::time::Duration {
    fn from(duration: Duration) -> Self {
        duration.0
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

/// A string that is not a duration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidDuration(String);

impl fmt::Display for InvalidDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            r#"invalid duration {:?} (expected e.g. "250ms", "5s", "2m")"#,
            self.0
        )
    }
}

impl std::error::Error for InvalidDuration {}

impl FromStr for Duration {
    type Err = InvalidDuration;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        humantime::parse_duration(s)
            .map(Self)
            .map_err(|_| InvalidDuration(s.to_owned()))
    }
}

crate::text::serde_via_str!(Duration, r#"a duration such as "5s""#);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_common_forms() {
        assert_eq!("250ms".parse(), Ok(Duration::from_millis(250)));
        assert_eq!("5s".parse(), Ok(Duration::from_secs(5)));
        assert_eq!("2m".parse(), Ok(Duration::from_mins(2)));
        assert_eq!("1h".parse(), Ok(Duration::from_hours(1)));
        assert_eq!("1h 30m".parse(), Ok(Duration::from_mins(90)));
        assert_eq!("0s".parse(), Ok(Duration::ZERO));
    }

    #[test]
    fn rejects_with_the_value_and_examples() {
        for bad in ["2x", "", "5", "-1s", "five seconds"] {
            let err = bad.parse::<Duration>().err().map(|e| e.to_string());
            assert_eq!(
                err,
                Some(format!(
                    r#"invalid duration {bad:?} (expected e.g. "250ms", "5s", "2m")"#
                )),
            );
        }
    }

    #[test]
    fn displays_as_it_parses() {
        for text in ["250ms", "5s", "2m", "1h", "1h 30m", "0s"] {
            let duration: Duration = text.parse().unwrap_or_default();
            assert_eq!(duration.to_string(), text);
        }
    }
}
