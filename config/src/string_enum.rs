//! String enums (class, method, kind, ...): one macro so that each spells its values once and
//! rejects others the same way: `unknown class "dispaly" (expected one of display, scan, ...)`.

use std::fmt;

/// A string that names none of an enum's values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownVariant {
    what: &'static str,
    value: String,
    expected: &'static [&'static str],
}

impl UnknownVariant {
    pub(crate) fn new(what: &'static str, value: &str, expected: &'static [&'static str]) -> Self {
        Self {
            what,
            value: value.to_owned(),
            expected,
        }
    }
}

impl fmt::Display for UnknownVariant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown {} {:?} (expected one of {})",
            self.what,
            self.value,
            self.expected.join(", ")
        )
    }
}

impl std::error::Error for UnknownVariant {}

/// Declares a fieldless enum written in TOML as one of a fixed set of strings.
///
/// Generates `NAMES`, `ALL`, `as_str`, `Display`, `FromStr` (error [`UnknownVariant`]) and
/// serde impls. `$what` names the enum in messages (`"class"`).
macro_rules! string_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident as $what:literal {
            $( $(#[$vmeta:meta])* $variant:ident = $text:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        $vis enum $name {
            $( $(#[$vmeta])* $variant, )+
        }

        impl $name {
            /// Every value, in the order the docs list them.
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];
            /// Every value's spelling in TOML, in the order of [`Self::ALL`].
            pub const NAMES: &'static [&'static str] = &[$($text),+];

            /// The spelling in TOML.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text,)+
                }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = $crate::string_enum::UnknownVariant;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok(Self::$variant),)+
                    _ => Err($crate::string_enum::UnknownVariant::new($what, s, Self::NAMES)),
                }
            }
        }

        $crate::text::serde_via_str!($name, "a string");
    };
}
pub(crate) use string_enum;

#[cfg(test)]
mod tests {
    string_enum! {
        /// A colour for the test.
        enum Colour as "colour" {
            Green = "green",
            Dark = "dark-red",
        }
    }

    #[test]
    fn parses_and_displays() {
        assert_eq!("dark-red".parse::<Colour>(), Ok(Colour::Dark));
        assert_eq!(Colour::Green.to_string(), "green");
        assert_eq!(Colour::ALL, &[Colour::Green, Colour::Dark]);
    }

    #[test]
    fn rejects_unknown_with_the_list() {
        let err = "Green".parse::<Colour>().err().map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some(r#"unknown colour "Green" (expected one of green, dark-red)"#)
        );
    }
}
