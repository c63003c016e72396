//! One subject's snapshot record and its compact binary form in Redis.
//!
//! ```text
//! byte 0      layout version (1)
//! byte 1      colour (the code's wire number: 0 green, 1 yellow, 2 red, 3 unknown)
//! bytes 2..10 as-of, seconds since the epoch, big-endian u64
//! bytes 10..14 ruleset version, big-endian u32
//! byte 14     length n of the masked name, then n bytes of UTF-8
//! next byte   length m of the last ID characters (0 or 4), then m bytes
//! ```
//!
//! The as-of sits at a fixed offset so the conditional-write script in Redis can compare it
//! without a CBOR or JSON parser. About 25 bytes per subject with a short name.

use serde::{Deserialize, Serialize};
use shouhu_code::claims::MAX_MASKED_NAME_BYTES;
use shouhu_code::time::UnixTime;
use shouhu_code::{Colour, SubjectId};

/// Layout version in byte 0.
const LAYOUT: u8 = 1;

/// What the snapshot knows about one subject: never a raw ID number or full name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    /// The colour the origin last computed.
    pub colour: Colour,
    /// When that colour was computed (seconds since the epoch).
    pub as_of: UnixTime,
    /// The ruleset version that produced it.
    pub ruleset_version: u32,
    /// Masked name for staffed lanes, e.g. `张*`.
    pub masked_name: String,
    /// Last four ID characters (`0-9X`), or empty.
    pub id_last4: String,
}

impl Record {
    /// Checks that a code can carry these display fields.
    ///
    /// # Errors
    /// A masked name over [`MAX_MASKED_NAME_BYTES`] or `id_last4` not empty or four of `0-9X`.
    pub fn check(&self) -> Result<(), String> {
        if self.masked_name.len() > MAX_MASKED_NAME_BYTES {
            return Err(format!(
                "masked_name is {} bytes (at most {MAX_MASKED_NAME_BYTES})",
                self.masked_name.len()
            ));
        }
        let last4_ok = self.id_last4.is_empty()
            || (self.id_last4.len() == 4
                && self
                    .id_last4
                    .bytes()
                    .all(|b| b.is_ascii_digit() || b == b'X'));
        if !last4_ok {
            return Err(format!(
                "id_last4 \"{}\" is not empty or four characters of 0-9 and X",
                self.id_last4
            ));
        }
        Ok(())
    }

    /// The binary form stored in Redis. Call [`Record::check`] first: lengths are one byte.
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        let name = self.masked_name.as_bytes();
        let last4 = self.id_last4.as_bytes();
        let mut out = Vec::with_capacity(16 + name.len() + last4.len());
        out.push(LAYOUT);
        // Colour numbers are 0..=3; the cast cannot truncate.
        out.push(u8::try_from(self.colour.to_wire()).unwrap_or(u8::MAX));
        out.extend_from_slice(&self.as_of.to_be_bytes());
        out.extend_from_slice(&self.ruleset_version.to_be_bytes());
        out.push(u8::try_from(name.len()).unwrap_or(u8::MAX));
        out.extend_from_slice(name);
        out.push(u8::try_from(last4.len()).unwrap_or(u8::MAX));
        out.extend_from_slice(last4);
        out
    }

    /// Reads the binary form.
    ///
    /// # Errors
    /// Wrong layout version, truncated or trailing bytes, an unknown colour, bad UTF-8, or
    /// fields that fail [`Record::check`].
    pub fn decode(bytes: &[u8]) -> Result<Self, String> {
        let mut r = Reader { bytes, at: 0 };
        let layout = r.take(1)?[0];
        if layout != LAYOUT {
            return Err(format!("record layout {layout} (expected {LAYOUT})"));
        }
        let colour = r.take(1)?[0];
        let colour = Colour::from_wire(u64::from(colour))
            .ok_or_else(|| format!("unknown colour number {colour}"))?;
        let as_of = u64::from_be_bytes(r.array()?);
        let ruleset_version = u32::from_be_bytes(r.array()?);
        let masked_name = r.text()?;
        let id_last4 = r.text()?;
        if r.at != bytes.len() {
            return Err(format!("{} trailing bytes", bytes.len() - r.at));
        }
        let record = Self {
            colour,
            as_of,
            ruleset_version,
            masked_name,
            id_last4,
        };
        record.check()?;
        Ok(record)
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.bytes.len());
        match end {
            Some(end) => {
                let s = &self.bytes[self.at..end];
                self.at = end;
                Ok(s)
            }
            None => Err(format!("truncated at byte {}", self.at)),
        }
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let s = self.take(N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    fn text(&mut self) -> Result<String, String> {
        let n = usize::from(self.take(1)?[0]);
        let s = self.take(n)?;
        String::from_utf8(s.to_vec()).map_err(|_| "text is not UTF-8".to_owned())
    }
}

/// One line of the NDJSON snapshot format used by `shouhu snapshot import/export` and the
/// ingest endpoint: the subject and its record's fields.
///
/// ```json
/// {"subject":"<32 hex>","colour":"red","as_of":1796000000,"ruleset_version":3,
///  "masked_name":"张*","id_last4":"123X"}
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubjectRecord {
    /// The pseudonymous subject id, 32 hex characters.
    pub subject: SubjectId,
    /// See [`Record::colour`].
    pub colour: Colour,
    /// See [`Record::as_of`]. RFC 3339 in files; whole seconds are accepted too.
    #[serde(with = "shouhu_code::time::rfc3339_or_seconds")]
    pub as_of: UnixTime,
    /// See [`Record::ruleset_version`].
    pub ruleset_version: u32,
    /// See [`Record::masked_name`].
    #[serde(default)]
    pub masked_name: String,
    /// See [`Record::id_last4`].
    #[serde(default)]
    pub id_last4: String,
}

impl SubjectRecord {
    /// A line for this subject and record.
    #[must_use]
    pub fn new(subject: SubjectId, record: Record) -> Self {
        Self {
            subject,
            colour: record.colour,
            as_of: record.as_of,
            ruleset_version: record.ruleset_version,
            masked_name: record.masked_name,
            id_last4: record.id_last4,
        }
    }

    /// Parses and checks one NDJSON line.
    ///
    /// # Errors
    /// Not JSON of this shape, or a record a code could not carry; the message says which.
    pub fn parse_line(line: &str) -> Result<Self, String> {
        let parsed: Self = serde_json::from_str(line).map_err(|e| e.to_string())?;
        let (subject, record) = parsed.into_parts();
        record.check()?;
        Ok(Self::new(subject, record))
    }

    /// The subject and the record apart.
    #[must_use]
    pub fn into_parts(self) -> (SubjectId, Record) {
        (
            self.subject,
            Record {
                colour: self.colour,
                as_of: self.as_of,
                ruleset_version: self.ruleset_version,
                masked_name: self.masked_name,
                id_last4: self.id_last4,
            },
        )
    }
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used, reason = "tests")]
    use super::*;

    fn sample() -> Record {
        Record {
            colour: Colour::Yellow,
            as_of: 1_796_000_000,
            ruleset_version: 7,
            masked_name: "张*".to_owned(),
            id_last4: "123X".to_owned(),
        }
    }

    #[test]
    fn binary_form_round_trips_and_is_small() {
        let bytes = sample().encode();
        assert_eq!(Record::decode(&bytes).unwrap(), sample());
        assert!(bytes.len() < 30, "{} bytes", bytes.len());
    }

    #[test]
    fn damaged_bytes_are_refused() {
        let bytes = sample().encode();
        assert!(Record::decode(&bytes[..bytes.len() - 1]).is_err());
        let mut extra = bytes.clone();
        extra.push(0);
        assert!(Record::decode(&extra).is_err());
        let mut colour = bytes.clone();
        colour[1] = 9;
        assert!(Record::decode(&colour).is_err());
        let mut layout = bytes;
        layout[0] = 2;
        assert!(Record::decode(&layout).is_err());
    }

    #[test]
    fn ndjson_line_names_every_field() {
        let line = SubjectRecord::new(SubjectId([0xab; 16]), sample());
        let json = serde_json::to_value(&line).unwrap();
        assert_eq!(json["subject"], "ab".repeat(16));
        assert_eq!(json["colour"], "yellow");
        assert_eq!(json["as_of"], "2026-11-30T00:53:20Z");
        let back: SubjectRecord = serde_json::from_value(json).unwrap();
        assert_eq!(back, line);
        let bad = r#"{"subject":"abab","colour":"green","as_of":1,"ruleset_version":1,"masked_name":"","id_last4":""}"#;
        assert!(serde_json::from_str::<SubjectRecord>(bad).is_err());
    }

    #[test]
    fn unknown_ranks_between_green_and_yellow() {
        assert!(Colour::Green.strictness() < Colour::Unknown.strictness());
        assert!(Colour::Unknown.strictness() < Colour::Yellow.strictness());
        assert!(Colour::Yellow.strictness() < Colour::Red.strictness());
    }
}
