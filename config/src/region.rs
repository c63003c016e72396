//! The issuing region: a 6-digit GB/T 2260 administrative division code, as printed in
//! every code's claims and in the trust list.

use std::fmt;
use std::str::FromStr;

/// A GB/T 2260 code such as `"370000"` (Shandong province) or `"610100"` (Xi'an).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Region(String);

/// The region used when a file names none: Shandong, whose system fell over first.
/// Demo value only; production sets its own.
pub const DEFAULT_REGION: &str = "370000";

/// Province-level prefixes of GB/T 2260 (the first two digits).
const PROVINCES: &[u8] = &[
    11, 12, 13, 14, 15, 21, 22, 23, 31, 32, 33, 34, 35, 36, 37, 41, 42, 43, 44, 45, 46, 50, 51, 52,
    53, 54, 61, 62, 63, 64, 65, 71, 81, 82,
];

impl Region {
    /// The six digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for Region {
    fn default() -> Self {
        Self(DEFAULT_REGION.to_owned())
    }
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A string that is not a GB/T 2260 code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidRegion(String);

impl fmt::Display for InvalidRegion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            r#"invalid region {:?} (expected a 6-digit GB/T 2260 code such as "370000")"#,
            self.0
        )
    }
}

impl std::error::Error for InvalidRegion {}

impl FromStr for Region {
    type Err = InvalidRegion;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let province = s.get(..2).and_then(|p| p.parse::<u8>().ok());
        let valid = s.len() == 6
            && s.bytes().all(|b| b.is_ascii_digit())
            && province.is_some_and(|p| PROVINCES.contains(&p));
        if valid {
            Ok(Self(s.to_owned()))
        } else {
            Err(InvalidRegion(s.to_owned()))
        }
    }
}

crate::text::serde_via_str!(Region, r#"a region code such as "370000""#);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_division_codes_only() {
        for good in ["370000", "610100", "110101", "820000"] {
            assert!(good.parse::<Region>().is_ok(), "{good}");
        }
        for bad in ["37000", "3700000", "990000", "37000a", "", "+37000"] {
            assert!(bad.parse::<Region>().is_err(), "{bad}");
        }
        assert_eq!(Region::default().as_str(), DEFAULT_REGION);
    }
}
