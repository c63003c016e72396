//! The claims a code carries and their CBOR form (a CWT claims map with integer keys).
//!
//! ```text
//! { 1: iss (region), 4: exp, 6: iat, 7: cti (12 random bytes),
//!   -70001: { 1: body version (1), 2: colour, 3: subject (16 bytes), 4: masked name,
//!             5: last four ID characters, 6: source, 7: data as-of, 8: ruleset version } }
//! ```
//!
//! Decoding is strict: the map must be exactly what [`Claims::to_cbor`] writes for the decoded
//! values, byte for byte, so one code has one encoding. No reasons, test results or places are
//! ever carried.

use ciborium::Value;
use serde::{Deserialize, Serialize};

use crate::Region;
use crate::macros::{byte_id, text_enum};
use crate::time::{UnixTime, rfc3339};

/// The CWT private-use claim that holds the health-code body.
const HC_CLAIM: i64 = -70001;
/// The version of the body layout.
const BODY_VERSION: u64 = 1;
/// Longest masked name accepted, in bytes of UTF-8.
pub const MAX_MASKED_NAME_BYTES: usize = 48;

/// Something is wrong with claims: on signing, a value out of range; on decoding, a payload
/// that is not exactly our claims map.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ClaimsError(pub String);

text_enum!(
    /// The colour of a code. Only green opens a gate.
    Colour, "colour" {
        /// No known risk.
        Green = 0, "green";
        /// Restricted: home monitoring, symptoms declared, contact of a contact.
        Yellow = 1, "yellow";
        /// Isolation: confirmed or suspected case, close contact, high-risk area.
        Red = 2, "red";
        /// The issuer does not know this person's status; staff must check by hand.
        Unknown = 3, "unknown";
    }
);

text_enum!(
    /// Who issued a code: the origin itself, or the fallback issuer from the snapshot.
    Source, "source" {
        /// Issued by the origin from live data.
        Origin = 0, "origin";
        /// Issued by the fallback issuer from the snapshot.
        Fallback = 1, "fallback";
    }
);

impl Colour {
    /// How strict a colour is: green < unknown < yellow < red. Wherever two colours must be
    /// combined (rules that fire together, a snapshot record against a cached code of the same
    /// age) the stricter one wins. Unknown ranks below yellow: it sends a person to staff for a
    /// manual check, while yellow refuses entry outright.
    #[must_use]
    pub fn strictness(self) -> u8 {
        match self {
            Self::Green => 0,
            Self::Unknown => 1,
            Self::Yellow => 2,
            Self::Red => 3,
        }
    }
}

byte_id!(
    /// The pseudonymous subject id: a keyed hash of the ID number, never the number itself.
    SubjectId, 16, "subject id"
);

byte_id!(
    /// A random id per code, for audit and anti-passback.
    CodeId, 12, "code id"
);

impl CodeId {
    /// A fresh random code id from the operating system's generator.
    ///
    /// # Errors
    /// The operating system has no randomness to give.
    pub fn random() -> Result<Self, getrandom::Error> {
        let mut bytes = [0u8; 12];
        getrandom::fill(&mut bytes)?;
        Ok(Self(bytes))
    }
}

/// Everything a code says. Times are whole seconds since the epoch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Claims {
    /// The issuing region (CWT `iss`).
    pub issuer: Region,
    /// When the code was signed (CWT `iat`).
    #[serde(with = "rfc3339")]
    pub issued_at: UnixTime,
    /// When the code stops being valid (CWT `exp`); minutes after `issued_at`, so screenshots die.
    #[serde(with = "rfc3339")]
    pub expires_at: UnixTime,
    /// Random id of this code (CWT `cti`).
    pub code_id: CodeId,
    /// The colour.
    pub colour: Colour,
    /// The pseudonymous subject.
    pub subject: SubjectId,
    /// The masked name for staffed lanes, e.g. `张*`.
    pub masked_name: String,
    /// The last four characters of the ID number, e.g. `123X`, or empty.
    pub id_last4: String,
    /// Origin or fallback.
    pub source: Source,
    /// When the data behind the colour was current.
    #[serde(with = "rfc3339")]
    pub as_of: UnixTime,
    /// Version of the ruleset that produced the colour.
    pub ruleset_version: u32,
}

impl Claims {
    /// Checks the values a code may carry.
    ///
    /// # Errors
    /// Expiry not after issue, data as-of after issue, a masked name too long, or
    /// `id_last4` not four characters of `0-9X`.
    pub fn check(&self) -> Result<(), ClaimsError> {
        if self.expires_at <= self.issued_at {
            return Err(ClaimsError(format!(
                "expiry {} is not after issue time {}",
                self.expires_at, self.issued_at
            )));
        }
        if self.as_of > self.issued_at {
            return Err(ClaimsError(format!(
                "data as-of {} is after issue time {}",
                self.as_of, self.issued_at
            )));
        }
        if self.masked_name.len() > MAX_MASKED_NAME_BYTES {
            return Err(ClaimsError(format!(
                "masked name is {} bytes (at most {MAX_MASKED_NAME_BYTES})",
                self.masked_name.len()
            )));
        }
        let last4_ok = self.id_last4.is_empty()
            || (self.id_last4.len() == 4
                && self
                    .id_last4
                    .bytes()
                    .all(|b| b.is_ascii_digit() || b == b'X'));
        if !last4_ok {
            return Err(ClaimsError(format!(
                "id_last4 \"{}\" is not four characters of 0-9 and X",
                self.id_last4
            )));
        }
        Ok(())
    }

    /// The CBOR claims map, in the one canonical layout.
    #[must_use]
    pub fn to_cbor(&self) -> Vec<u8> {
        let body = Value::Map(vec![
            (int(1), Value::from(BODY_VERSION)),
            (int(2), Value::from(self.colour.to_wire())),
            (int(3), Value::Bytes(self.subject.0.to_vec())),
            (int(4), Value::Text(self.masked_name.clone())),
            (int(5), Value::Text(self.id_last4.clone())),
            (int(6), Value::from(self.source.to_wire())),
            (int(7), Value::from(self.as_of)),
            (int(8), Value::from(self.ruleset_version)),
        ]);
        let map = Value::Map(vec![
            (int(1), Value::Text(self.issuer.as_str().to_owned())),
            (int(4), Value::from(self.expires_at)),
            (int(6), Value::from(self.issued_at)),
            (int(7), Value::Bytes(self.code_id.0.to_vec())),
            (int(HC_CLAIM), body),
        ]);
        let mut out = Vec::with_capacity(128);
        // Writing a `Value` into a `Vec` cannot fail: there is no I/O and no serde error path.
        let _ = ciborium::into_writer(&map, &mut out);
        out
    }

    /// Reads a claims map written by [`Claims::to_cbor`].
    ///
    /// # Errors
    /// Not CBOR, a missing, extra or mistyped claim, or an encoding other than the canonical one.
    pub fn from_cbor(bytes: &[u8]) -> Result<Self, ClaimsError> {
        let value: Value = ciborium::from_reader(bytes)
            .map_err(|e| ClaimsError(format!("payload is not CBOR: {e}")))?;
        let mut top = Fields::new(value, "claims")?;
        let issuer = top.text(1)?;
        let issuer = issuer
            .parse()
            .map_err(|e| ClaimsError(format!("iss: {e}")))?;
        let expires_at = top.uint(4)?;
        let issued_at = top.uint(6)?;
        let code_id = CodeId(top.bytes(7)?);
        let mut body = Fields::new(top.take(HC_CLAIM)?, "health-code body")?;
        top.finish()?;
        let version = body.uint(1)?;
        if version != BODY_VERSION {
            return Err(ClaimsError(format!(
                "body version {version} (expected {BODY_VERSION})"
            )));
        }
        let colour = body.uint(2)?;
        let colour = Colour::from_wire(colour)
            .ok_or_else(|| ClaimsError(format!("unknown colour number {colour}")))?;
        let subject = SubjectId(body.bytes(3)?);
        let masked_name = body.text(4)?;
        let id_last4 = body.text(5)?;
        let source = body.uint(6)?;
        let source = Source::from_wire(source)
            .ok_or_else(|| ClaimsError(format!("unknown source number {source}")))?;
        let as_of = body.uint(7)?;
        let ruleset_version = u32::try_from(body.uint(8)?)
            .map_err(|_| ClaimsError("ruleset version out of range".to_owned()))?;
        body.finish()?;
        let claims = Self {
            issuer,
            issued_at,
            expires_at,
            code_id,
            colour,
            subject,
            masked_name,
            id_last4,
            source,
            as_of,
            ruleset_version,
        };
        claims.check()?;
        if claims.to_cbor() != bytes {
            return Err(ClaimsError(
                "claims are not in canonical encoding".to_owned(),
            ));
        }
        Ok(claims)
    }
}

fn int(n: i64) -> Value {
    Value::from(n)
}

/// A CBOR map read field by field; `finish` fails if anything is left over.
struct Fields {
    entries: Vec<(Value, Value)>,
    what: &'static str,
}

impl Fields {
    fn new(value: Value, what: &'static str) -> Result<Self, ClaimsError> {
        match value {
            Value::Map(entries) => Ok(Self { entries, what }),
            _ => Err(ClaimsError(format!("{what} is not a map"))),
        }
    }

    fn take(&mut self, key: i64) -> Result<Value, ClaimsError> {
        let at = self
            .entries
            .iter()
            .position(|(k, _)| k.as_integer().and_then(|i| i64::try_from(i).ok()) == Some(key));
        match at {
            Some(i) => Ok(self.entries.swap_remove(i).1),
            None => Err(ClaimsError(format!("{}: claim {key} missing", self.what))),
        }
    }

    fn uint(&mut self, key: i64) -> Result<u64, ClaimsError> {
        self.take(key)?
            .as_integer()
            .and_then(|i| u64::try_from(i).ok())
            .ok_or_else(|| {
                ClaimsError(format!(
                    "{}: claim {key} is not an unsigned integer",
                    self.what
                ))
            })
    }

    fn text(&mut self, key: i64) -> Result<String, ClaimsError> {
        match self.take(key)? {
            Value::Text(t) => Ok(t),
            _ => Err(ClaimsError(format!(
                "{}: claim {key} is not text",
                self.what
            ))),
        }
    }

    fn bytes<const N: usize>(&mut self, key: i64) -> Result<[u8; N], ClaimsError> {
        match self.take(key)? {
            Value::Bytes(b) => b.try_into().map_err(|b: Vec<u8>| {
                ClaimsError(format!(
                    "{}: claim {key} is {} bytes (expected {N})",
                    self.what,
                    b.len()
                ))
            }),
            _ => Err(ClaimsError(format!(
                "{}: claim {key} is not bytes",
                self.what
            ))),
        }
    }

    fn finish(self) -> Result<(), ClaimsError> {
        match self.entries.first() {
            None => Ok(()),
            Some((k, _)) => Err(ClaimsError(format!(
                "{}: unexpected claim {k:?}",
                self.what
            ))),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    #![expect(clippy::unwrap_used, reason = "tests")]
    use super::*;

    pub(crate) fn sample() -> Claims {
        Claims {
            issuer: "370000".parse().unwrap(),
            issued_at: 1_796_000_000,
            expires_at: 1_796_000_300,
            code_id: CodeId([7; 12]),
            colour: Colour::Green,
            subject: SubjectId([0xab; 16]),
            masked_name: "张*".to_owned(),
            id_last4: "123X".to_owned(),
            source: Source::Origin,
            as_of: 1_795_999_000,
            ruleset_version: 1,
        }
    }

    #[test]
    fn cbor_round_trips() {
        let c = sample();
        assert_eq!(Claims::from_cbor(&c.to_cbor()), Ok(c));
    }

    #[test]
    fn json_names_colour_source_and_subject() {
        let json = serde_json::to_value(sample()).unwrap();
        assert_eq!(json["colour"], "green");
        assert_eq!(json["source"], "origin");
        assert_eq!(json["subject"], "ab".repeat(16));
        assert_eq!(json["issued_at"], "2026-11-30T00:53:20Z");
        let back: Claims = serde_json::from_value(json).unwrap();
        assert_eq!(back, sample());
    }

    #[test]
    fn out_of_range_values_are_refused() {
        let mut c = sample();
        c.expires_at = c.issued_at;
        assert!(c.check().is_err());
        let mut c = sample();
        c.as_of = c.issued_at + 1;
        assert!(c.check().is_err());
        let mut c = sample();
        c.id_last4 = "12x4".to_owned();
        assert!(c.check().is_err());
        let mut c = sample();
        c.masked_name = "名".repeat(17);
        assert!(c.check().is_err());
    }

    #[test]
    fn extra_claims_are_refused() {
        let mut bytes = sample().to_cbor();
        // Turn the 5-entry top map into a 6-entry one with a trailing claim 8 => 0.
        bytes[0] = 0xa6;
        bytes.extend_from_slice(&[0x08, 0x00]);
        assert!(Claims::from_cbor(&bytes).is_err());
    }

    #[test]
    fn parse_errors_list_the_choices() {
        assert_eq!(
            "blue".parse::<Colour>().unwrap_err().to_string(),
            "unknown colour \"blue\" (expected one of green, yellow, red, unknown)"
        );
    }
}
