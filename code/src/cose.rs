//! The wire layers of a code: `HZ1:` + Base45 of a tagged COSE_Sign1 with the claims as payload.
//!
//! Signing and parsing share [`encode`], so a parsed code is accepted only if re-encoding its
//! parts gives back exactly the bytes that came in: one code, one encoding.

use coset::{
    AsCborValue, CoseSign1, CoseSign1Builder, HeaderBuilder, TaggedCborSerializable, iana,
};

use crate::key::Kid;

/// The text prefix of every code. A format change that old verifiers cannot read becomes `HZ2:`.
pub const PREFIX: &str = "HZ1:";
/// External additional data in every signature, so a key that signs other COSE objects cannot
/// have them taken for codes.
pub const EXTERNAL_AAD: &[u8] = b"HZ1";
/// Longest code text accepted, in characters. Real codes are about 300.
pub const MAX_CODE_CHARS: usize = 600;
/// CBOR tag of COSE_Sign1.
const COSE_SIGN1_TAG: u64 = 18;

/// The parts of a code as parsed from its text, before any key or claim is trusted.
#[derive(Debug, Clone)]
pub(crate) struct Parsed {
    pub(crate) alg: Option<coset::Algorithm>,
    pub(crate) kid: Vec<u8>,
    pub(crate) cose: CoseSign1,
}

/// Why a text is not a well-formed code. Mapped one to one onto `VerifyError`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ParseFailure {
    WrongPrefix,
    TooLong(usize),
    Base45,
    NotCoseSign1(String),
    ExtraTags,
    Header(&'static str),
}

/// The protected header, unprotected header and signature wrapping of a payload.
pub(crate) fn builder(kid: Kid, payload: Vec<u8>) -> CoseSign1Builder {
    CoseSign1Builder::new()
        .protected(
            HeaderBuilder::new()
                .algorithm(iana::Algorithm::EdDSA)
                .key_id(kid.0.to_vec())
                .build(),
        )
        .payload(payload)
}

/// The text of a signed COSE_Sign1.
pub(crate) fn encode(cose: CoseSign1) -> Result<String, coset::CoseError> {
    let bytes = cose.to_tagged_vec()?;
    Ok(format!("{PREFIX}{}", base45::encode(bytes)))
}

/// Parses a code's text down to its COSE structure, strictly.
pub(crate) fn parse(text: &str) -> Result<Parsed, ParseFailure> {
    let body = text.strip_prefix(PREFIX).ok_or(ParseFailure::WrongPrefix)?;
    if text.len() > MAX_CODE_CHARS {
        return Err(ParseFailure::TooLong(text.len()));
    }
    let bytes = base45::decode(body).map_err(|_| ParseFailure::Base45)?;
    // The base45 crate accepts a final pair that overflows a byte; re-encoding catches that
    // and any other second spelling of the same bytes.
    if base45::encode(&bytes) != body {
        return Err(ParseFailure::Base45);
    }
    let value = read_one_item(&bytes)?;
    let inner = match value {
        ciborium::Value::Tag(COSE_SIGN1_TAG, inner) => match *inner {
            ciborium::Value::Tag(..) => return Err(ParseFailure::ExtraTags),
            inner => inner,
        },
        ciborium::Value::Tag(tag, inner) => {
            return Err(if matches!(*inner, ciborium::Value::Tag(..)) {
                ParseFailure::ExtraTags
            } else {
                ParseFailure::NotCoseSign1(format!("tag {tag} is not COSE_Sign1 (18)"))
            });
        }
        _ => {
            return Err(ParseFailure::NotCoseSign1(
                "missing the COSE_Sign1 tag (18)".to_owned(),
            ));
        }
    };
    let cose =
        CoseSign1::from_cbor_value(inner).map_err(|e| ParseFailure::NotCoseSign1(e.to_string()))?;
    let Some(payload) = cose.payload.clone() else {
        return Err(ParseFailure::NotCoseSign1("payload is detached".to_owned()));
    };
    let header = &cose.protected.header;
    if !cose.unprotected.is_empty() {
        return Err(ParseFailure::Header("unprotected header is not empty"));
    }
    if header.key_id.len() != Kid::LEN {
        return Err(ParseFailure::Header(
            "kid is not 8 bytes in the protected header",
        ));
    }
    let only_alg_and_kid = header.crit.is_empty()
        && header.content_type.is_none()
        && header.iv.is_empty()
        && header.partial_iv.is_empty()
        && header.counter_signatures.is_empty()
        && header.rest.is_empty();
    if !only_alg_and_kid {
        return Err(ParseFailure::Header(
            "protected header holds more than alg and kid",
        ));
    }
    let alg = header.alg.clone();
    let kid = header.key_id.clone();
    if alg == Some(coset::Algorithm::Assigned(iana::Algorithm::EdDSA)) {
        // Our own encoding of these parts must reproduce the input exactly.
        let mut kid_bytes = [0u8; 8];
        kid_bytes.copy_from_slice(&kid);
        let again = builder(Kid(kid_bytes), payload)
            .signature(cose.signature.clone())
            .build()
            .to_tagged_vec()
            .map_err(|e| ParseFailure::NotCoseSign1(e.to_string()))?;
        if again != bytes {
            return Err(ParseFailure::NotCoseSign1(
                "not in canonical encoding".to_owned(),
            ));
        }
    }
    Ok(Parsed { alg, kid, cose })
}

fn read_one_item(bytes: &[u8]) -> Result<ciborium::Value, ParseFailure> {
    let mut rest = bytes;
    let value: ciborium::Value = ciborium::from_reader(&mut rest)
        .map_err(|e| ParseFailure::NotCoseSign1(format!("not CBOR: {e}")))?;
    if !rest.is_empty() {
        return Err(ParseFailure::NotCoseSign1(format!(
            "{} bytes after the COSE_Sign1",
            rest.len()
        )));
    }
    Ok(value)
}

/// Whether the protected header's algorithm is ours.
pub(crate) fn is_eddsa(alg: Option<&coset::Algorithm>) -> bool {
    alg == Some(&coset::Algorithm::Assigned(iana::Algorithm::EdDSA))
}
