//! A request rate written the way an operator says it: `"300/s"`, `"20/m"`, `"1000/h"`, or
//! `"off"`.

use std::fmt;
use std::str::FromStr;

/// The unit of a [`Rate`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Per {
    /// `/s`.
    Second,
    /// `/m`.
    Minute,
    /// `/h`.
    Hour,
}

impl Per {
    /// The unit as a duration.
    pub const fn duration(self) -> std::time::Duration {
        std::time::Duration::from_secs(match self {
            Self::Second => 1,
            Self::Minute => 60,
            Self::Hour => 3600,
        })
    }

    const fn suffix(self) -> &'static str {
        match self {
            Self::Second => "s",
            Self::Minute => "m",
            Self::Hour => "h",
        }
    }
}

/// Requests per second, minute or hour; zero is "off".
///
/// Parses `"300/s"`, `"20/m"`, `"1000/h"`, and `"off"` (or any `"0/…"`), and displays the
/// same way, so a value round-trips through TOML unchanged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Rate {
    count: u32,
    per: Per,
}

impl Rate {
    /// No limit.
    pub const OFF: Self = Self {
        count: 0,
        per: Per::Second,
    };
    /// The fastest rate the limiters can express: one request per nanosecond.
    pub const MAX_PER_SECOND: u32 = 1_000_000_000;

    /// `count` per second (`0` is [`Rate::OFF`]).
    pub const fn per_second(count: u32) -> Self {
        Self::new(count, Per::Second)
    }

    /// `count` per minute (`0` is [`Rate::OFF`]).
    pub const fn per_minute(count: u32) -> Self {
        Self::new(count, Per::Minute)
    }

    /// `count` per hour (`0` is [`Rate::OFF`]).
    pub const fn per_hour(count: u32) -> Self {
        Self::new(count, Per::Hour)
    }

    /// `count` per `per` (`0` is [`Rate::OFF`]).
    pub const fn new(count: u32, per: Per) -> Self {
        if count == 0 {
            Self::OFF
        } else {
            Self { count, per }
        }
    }

    /// Whether this is no limit at all.
    pub const fn is_off(self) -> bool {
        self.count == 0
    }

    /// Requests per [`Rate::per`].
    pub const fn count(self) -> u32 {
        self.count
    }

    /// The unit.
    pub const fn per(self) -> Per {
        self.per
    }

    /// The time one request earns back: `per / count`. `None` when off, or when faster than
    /// [`Rate::MAX_PER_SECOND`] (the interval would round to zero).
    pub fn interval(self) -> Option<std::time::Duration> {
        if self.is_off() {
            return None;
        }
        Some(self.per.duration() / self.count).filter(|d| !d.is_zero())
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_off() {
            f.write_str("off")
        } else {
            write!(f, "{}/{}", self.count, self.per.suffix())
        }
    }
}

/// A string that is not a rate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidRate(String);

impl fmt::Display for InvalidRate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            r#"invalid rate {:?} (expected e.g. "300/s", "20/m", "1000/h" or "off")"#,
            self.0
        )
    }
}

impl std::error::Error for InvalidRate {}

impl FromStr for Rate {
    type Err = InvalidRate;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = || InvalidRate(s.to_owned());
        let text = s.trim();
        if text == "off" {
            return Ok(Self::OFF);
        }
        let (count, unit) = text.split_once('/').ok_or_else(invalid)?;
        // Digits only: `u32::from_str` would also take a leading `+`.
        let count = count.trim();
        if count.is_empty() || !count.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid());
        }
        let count: u32 = count.parse().map_err(|_| invalid())?;
        let per = match unit.trim() {
            "s" => Per::Second,
            "m" => Per::Minute,
            "h" => Per::Hour,
            _ => return Err(invalid()),
        };
        Ok(Self::new(count, per))
    }
}

crate::text::serde_via_str!(Rate, r#"a rate such as "300/s""#);

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn parses_and_displays_the_same() {
        for text in ["300/s", "20/m", "1000/h", "off", "4294967295/s"] {
            let rate: Rate = text.parse().unwrap_or(Rate::per_hour(7));
            assert_eq!(rate.to_string(), text);
        }
        assert_eq!(" 300 / s ".parse(), Ok(Rate::per_second(300)));
        assert_eq!("0/m".parse(), Ok(Rate::OFF));
    }

    #[test]
    fn rejects_with_the_value_and_examples() {
        for bad in [
            "300",
            "300/d",
            "/s",
            "-1/s",
            "+1/s",
            "1.5/s",
            "4294967296/s",
            "",
            "on",
        ] {
            assert_eq!(
                bad.parse::<Rate>().err().map(|e| e.to_string()),
                Some(format!(
                    r#"invalid rate {bad:?} (expected e.g. "300/s", "20/m", "1000/h" or "off")"#
                )),
            );
        }
    }

    #[test]
    fn interval_is_the_time_one_request_earns_back() {
        assert_eq!(
            Rate::per_second(300).interval(),
            Some(Duration::from_nanos(3_333_333))
        );
        assert_eq!(
            Rate::per_minute(20).interval(),
            Some(Duration::from_secs(3))
        );
        assert_eq!(Rate::OFF.interval(), None);
        assert_eq!(
            Rate::per_second(Rate::MAX_PER_SECOND).interval(),
            Some(Duration::from_nanos(1))
        );
        assert_eq!(Rate::per_second(Rate::MAX_PER_SECOND + 1).interval(), None);
    }
}
