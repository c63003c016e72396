//! The issuing region: a six-digit GB/T 2260 administrative division code, e.g. `370000`
//! (Shandong). It is the code's issuer claim and scopes what a key may sign.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A six-digit GB/T 2260 region code.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Region(String);

/// The text is not a six-digit region code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid region \"{0}\" (expected a six-digit GB/T 2260 code, e.g. \"370000\")")]
pub struct RegionError(pub String);

impl Region {
    /// The code as text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Region {
    type Err = RegionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() == 6 && s.bytes().all(|b| b.is_ascii_digit()) {
            Ok(Self(s.to_owned()))
        } else {
            Err(RegionError(s.to_owned()))
        }
    }
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Region({})", self.0)
    }
}

impl Serialize for Region {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Region {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_six_digits_are_regions() {
        assert!("370000".parse::<Region>().is_ok());
        for bad in ["", "37000", "3700000", "37000a", "３７００００"] {
            assert_eq!(bad.parse::<Region>(), Err(RegionError(bad.to_owned())));
        }
    }
}
