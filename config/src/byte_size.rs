//! Sizes written as `"256MiB"`, `"64KiB"`, `"1GB"` or a plain integer of bytes.
//!
//! Hand-rolled (~100 lines) rather than the `bytesize` crate: that one accepts fractions
//! ("1.5 GB", rounded) and displays `"256.0 MiB"`, so a value would not round-trip exactly and
//! its errors would not read like ours.

use std::fmt;
use std::str::FromStr;

use serde::de::{self, Deserializer, Visitor};

/// A number of bytes in a config file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ByteSize(u64);

/// Units, largest first so that `Display` picks the largest exact one. Binary units display;
/// decimal ones (KB = 1000) are accepted too because people write them.
const UNITS: &[(&str, u64)] = &[
    ("TiB", 1 << 40),
    ("GiB", 1 << 30),
    ("MiB", 1 << 20),
    ("KiB", 1 << 10),
    ("TB", 1_000_000_000_000),
    ("GB", 1_000_000_000),
    ("MB", 1_000_000),
    ("KB", 1_000),
    ("kB", 1_000),
    ("B", 1),
];

impl ByteSize {
    /// `bytes` bytes.
    pub const fn b(bytes: u64) -> Self {
        Self(bytes)
    }

    /// `n` kibibytes.
    pub const fn kib(n: u64) -> Self {
        Self(n << 10)
    }

    /// `n` mebibytes.
    pub const fn mib(n: u64) -> Self {
        Self(n << 20)
    }

    /// `n` gibibytes.
    pub const fn gib(n: u64) -> Self {
        Self(n << 30)
    }

    /// The number of bytes.
    pub const fn bytes(self) -> u64 {
        self.0
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for &(unit, size) in UNITS.iter().filter(|(unit, _)| unit.ends_with("iB")) {
            if self.0 != 0 && self.0.is_multiple_of(size) {
                return write!(f, "{}{unit}", self.0 / size);
            }
        }
        write!(f, "{}B", self.0)
    }
}

/// A string that is not a size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidByteSize(String);

impl fmt::Display for InvalidByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            r#"invalid size {:?} (expected e.g. "64KiB", "256MiB", "1GiB")"#,
            self.0
        )
    }
}

impl std::error::Error for InvalidByteSize {}

impl FromStr for ByteSize {
    type Err = InvalidByteSize;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = || InvalidByteSize(s.to_owned());
        let digits_end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (number, unit) = s.split_at(digits_end);
        let number: u64 = number.parse().map_err(|_| invalid())?;
        let unit = unit.trim_start();
        let multiplier = if unit.is_empty() {
            1
        } else {
            UNITS
                .iter()
                .find(|(name, _)| *name == unit)
                .map(|&(_, size)| size)
                .ok_or_else(invalid)?
        };
        number.checked_mul(multiplier).map(Self).ok_or_else(invalid)
    }
}

impl serde::Serialize for ByteSize {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        crate::text::serialize(self, serializer)
    }
}

impl<'de> serde::Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ByteSizeVisitor)
    }
}

struct ByteSizeVisitor;

impl Visitor<'_> for ByteSizeVisitor {
    type Value = ByteSize;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(r#"a size such as "256MiB""#)
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<ByteSize, E> {
        value.parse().map_err(E::custom)
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<ByteSize, E> {
        Ok(ByteSize(value))
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<ByteSize, E> {
        u64::try_from(value)
            .map(ByteSize)
            .map_err(|_| E::custom(format!("must be >= 0 (got {value})")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units() {
        assert_eq!("256MiB".parse(), Ok(ByteSize::mib(256)));
        assert_eq!("256 MiB".parse(), Ok(ByteSize::mib(256)));
        assert_eq!("64KiB".parse(), Ok(ByteSize::kib(64)));
        assert_eq!("1GB".parse(), Ok(ByteSize::b(1_000_000_000)));
        assert_eq!("12".parse(), Ok(ByteSize::b(12)));
        assert_eq!("12B".parse(), Ok(ByteSize::b(12)));
    }

    #[test]
    fn rejects_with_the_value() {
        for bad in ["", "MiB", "1.5GiB", "12XB", "-1B", "99999999999TiB"] {
            assert_eq!(
                bad.parse::<ByteSize>().err().map(|e| e.to_string()),
                Some(format!(
                    r#"invalid size {bad:?} (expected e.g. "64KiB", "256MiB", "1GiB")"#
                ))
            );
        }
    }

    #[test]
    fn displays_largest_exact_binary_unit() {
        assert_eq!(ByteSize::mib(256).to_string(), "256MiB");
        assert_eq!(ByteSize::kib(1536).to_string(), "1536KiB");
        assert_eq!(ByteSize::b(1000).to_string(), "1000B");
        assert_eq!(ByteSize::b(0).to_string(), "0B");
        for size in [ByteSize::gib(3), ByteSize::b(1000), ByteSize::kib(1536)] {
            assert_eq!(size.to_string().parse(), Ok(size));
        }
    }
}
