//! Integer fields with a lower bound of one, written as plain TOML integers but reported as
//! rules (`must be >= 1 (got 0)`) rather than serde's `expected a nonzero u64`.

use std::num::{NonZeroU16, NonZeroU32, NonZeroU64, NonZeroUsize};

use serde::de::{Deserialize, Deserializer, Error as _};

/// A `NonZero*` integer type the config uses.
pub(crate) trait NonZeroInt: Sized {
    /// The largest value, for the upper-bound message.
    const MAX: u64;
    /// `value` if it is in range.
    fn from_u64(value: u64) -> Option<Self>;
}

macro_rules! non_zero_int {
    ($($nz:ty => $int:ty),+) => {$(
        impl NonZeroInt for $nz {
            const MAX: u64 = <$int>::MAX as u64;

            fn from_u64(value: u64) -> Option<Self> {
                <$int>::try_from(value).ok().and_then(<$nz>::new)
            }
        }
    )+};
}

non_zero_int!(NonZeroU16 => u16, NonZeroU32 => u32, NonZeroU64 => u64, NonZeroUsize => usize);

/// `deserialize_with` for `NonZero*` fields.
pub(crate) fn at_least_one<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: NonZeroInt,
{
    let value = i64::deserialize(deserializer)?;
    let positive = u64::try_from(value)
        .ok()
        .filter(|&v| v >= 1)
        .ok_or_else(|| D::Error::custom(format!("must be >= 1 (got {value})")))?;
    T::from_u64(positive)
        .ok_or_else(|| D::Error::custom(format!("must be <= {} (got {value})", T::MAX)))
}
