//! Signing and verifying codes: the round trip, one test per failure, and property tests.
#![expect(clippy::unwrap_used, reason = "tests")]

use std::time::Duration;

use coset::{CoseSign1Builder, HeaderBuilder, TaggedCborSerializable, iana};
use proptest::prelude::*;
use shouhu_code::cose::{EXTERNAL_AAD, PREFIX};
use shouhu_code::{
    Claims, CodeId, Colour, KeyPair, KeyRole, PublicKey, Source, SubjectId, TrustList, VerifyError,
    VerifyPolicy, verify,
};

const T0: u64 = 1_796_000_000;

fn key(seed: u8, role: KeyRole) -> KeyPair {
    KeyPair::from_seed(
        [seed; 32],
        role,
        "370000".parse().unwrap(),
        T0 - 86_400,
        T0 + 86_400,
    )
}

fn claims(source: Source) -> Claims {
    Claims {
        issuer: "370000".parse().unwrap(),
        issued_at: T0,
        expires_at: T0 + 300,
        code_id: CodeId([9; 12]),
        colour: Colour::Yellow,
        subject: SubjectId([0x5a; 16]),
        masked_name: "李*".to_owned(),
        id_last4: "0021".to_owned(),
        source,
        as_of: T0 - 600,
        ruleset_version: 2,
    }
}

fn trust(keys: &[&PublicKey]) -> TrustList {
    TrustList::new(keys.iter().map(|k| (*k).clone()).collect()).unwrap()
}

fn check(text: &str, list: &TrustList) -> Result<Claims, VerifyError> {
    verify(text, list, T0 + 10, &VerifyPolicy::default()).map(|v| v.claims)
}

/// A code built by hand from a COSE_Sign1, for structures our signer never writes.
fn raw_code(cose: coset::CoseSign1) -> String {
    format!("{PREFIX}{}", base45::encode(cose.to_tagged_vec().unwrap()))
}

fn signed_by_hand(
    k: &KeyPair,
    protected: coset::Header,
    unprotected: coset::Header,
    payload: Vec<u8>,
) -> coset::CoseSign1 {
    let signer = ed25519_dalek::SigningKey::from_bytes(&[1; 32]);
    assert_eq!(signer.verifying_key().to_bytes(), k.public().public_key);
    CoseSign1Builder::new()
        .protected(protected)
        .unprotected(unprotected)
        .payload(payload)
        .create_signature(EXTERNAL_AAD, |d| {
            use ed25519_dalek::Signer;
            signer.sign(d).to_bytes().to_vec()
        })
        .build()
}

fn our_header(k: &KeyPair) -> coset::Header {
    HeaderBuilder::new()
        .algorithm(iana::Algorithm::EdDSA)
        .key_id(k.kid().0.to_vec())
        .build()
}

#[test]
fn round_trip_gives_back_the_claims_and_the_key() {
    let k = key(1, KeyRole::Origin);
    let c = claims(Source::Origin);
    let text = k.sign(&c).unwrap();
    assert!(text.starts_with("HZ1:"));
    assert!(text.len() < 320, "code is {} chars", text.len());
    let v = verify(
        &text,
        &trust(&[k.public()]),
        T0 + 10,
        &VerifyPolicy::default(),
    )
    .unwrap();
    assert_eq!(v.claims, c);
    assert_eq!(&v.key, k.public());
}

#[test]
fn hand_built_code_in_our_layout_verifies() {
    // Guards the failure tests below: the hand-built path alone does not cause the failures.
    let k = key(1, KeyRole::Origin);
    let cose = signed_by_hand(
        &k,
        our_header(&k),
        coset::Header::default(),
        claims(Source::Origin).to_cbor(),
    );
    assert_eq!(
        check(&raw_code(cose), &trust(&[k.public()])),
        Ok(claims(Source::Origin))
    );
}

#[test]
fn wrong_prefix() {
    let k = key(1, KeyRole::Origin);
    let text = k.sign(&claims(Source::Origin)).unwrap();
    for bad in [
        text.replacen("HZ1:", "HC1:", 1),
        text.replacen("HZ1:", "hz1:", 1),
        text[4..].to_owned(),
    ] {
        assert_eq!(
            check(&bad, &trust(&[k.public()])),
            Err(VerifyError::WrongPrefix)
        );
    }
}

#[test]
fn too_long() {
    let text = format!("HZ1:{}", "0".repeat(700));
    assert_eq!(
        check(&text, &TrustList::default()),
        Err(VerifyError::TooLong(704))
    );
}

#[test]
fn bad_base45() {
    let k = key(1, KeyRole::Origin);
    let text = k.sign(&claims(Source::Origin)).unwrap();
    let list = trust(&[k.public()]);
    assert_eq!(
        check(&format!("{text}a"), &list),
        Err(VerifyError::BadBase45)
    );
    // ":::" is 3 valid characters whose value exceeds 0xFFFF.
    assert_eq!(check("HZ1::::", &list), Err(VerifyError::BadBase45));
    // A dangling single character.
    assert_eq!(
        check(&format!("{text}0"), &list),
        Err(VerifyError::BadBase45)
    );
    // A final pair that overflows a byte: "ZZ" is 35 + 35*45 = 1610.
    assert_eq!(check("HZ1:ZZ", &list), Err(VerifyError::BadBase45));
}

#[test]
fn not_a_cose_sign1() {
    let list = TrustList::default();
    let untagged = {
        let k = key(1, KeyRole::Origin);
        let cose = signed_by_hand(&k, our_header(&k), coset::Header::default(), vec![1]);
        use coset::CborSerializable;
        format!("{PREFIX}{}", base45::encode(cose.to_vec().unwrap()))
    };
    let not_cbor = format!("{PREFIX}{}", base45::encode([0xff, 0x00]));
    let other_tag = format!("{PREFIX}{}", base45::encode([0xd8, 0x3d, 0x01]));
    let trailing = {
        let k = key(1, KeyRole::Origin);
        let mut bytes = base45::decode(&k.sign(&claims(Source::Origin)).unwrap()[4..]).unwrap();
        bytes.push(0);
        format!("{PREFIX}{}", base45::encode(bytes))
    };
    for text in [untagged, not_cbor, other_tag, trailing] {
        let err = check(&text, &list).unwrap_err();
        assert!(
            matches!(err, VerifyError::NotCoseSign1(_)),
            "{text}: {err:?}"
        );
    }
}

#[test]
fn extra_tags() {
    let k = key(1, KeyRole::Origin);
    let bytes = base45::decode(&k.sign(&claims(Source::Origin)).unwrap()[4..]).unwrap();
    // CWT tag 61 around tag 18, as DCC vector CO28 has it.
    let mut cwt = vec![0xd8, 0x3d];
    cwt.extend_from_slice(&bytes);
    let text = format!("{PREFIX}{}", base45::encode(&cwt));
    assert_eq!(
        check(&text, &trust(&[k.public()])),
        Err(VerifyError::ExtraTags)
    );
    // A tag inside tag 18.
    let mut inner = vec![0xd2, 0xd8, 0x3d];
    inner.extend_from_slice(&bytes[1..]);
    let text = format!("{PREFIX}{}", base45::encode(&inner));
    assert_eq!(
        check(&text, &trust(&[k.public()])),
        Err(VerifyError::ExtraTags)
    );
}

#[test]
fn unsupported_algorithm() {
    let k = key(1, KeyRole::Origin);
    let header = HeaderBuilder::new()
        .algorithm(iana::Algorithm::ES256)
        .key_id(k.kid().0.to_vec())
        .build();
    let cose = signed_by_hand(
        &k,
        header,
        coset::Header::default(),
        claims(Source::Origin).to_cbor(),
    );
    let err = check(&raw_code(cose), &trust(&[k.public()])).unwrap_err();
    assert!(
        matches!(err, VerifyError::UnsupportedAlgorithm(_)),
        "{err:?}"
    );
}

#[test]
fn bad_header() {
    let k = key(1, KeyRole::Origin);
    let payload = claims(Source::Origin).to_cbor();
    let kid_unprotected = signed_by_hand(
        &k,
        HeaderBuilder::new()
            .algorithm(iana::Algorithm::EdDSA)
            .build(),
        HeaderBuilder::new().key_id(k.kid().0.to_vec()).build(),
        payload.clone(),
    );
    let short_kid = signed_by_hand(
        &k,
        HeaderBuilder::new()
            .algorithm(iana::Algorithm::EdDSA)
            .key_id(vec![1, 2, 3])
            .build(),
        coset::Header::default(),
        payload.clone(),
    );
    let extra_field = signed_by_hand(
        &k,
        HeaderBuilder::new()
            .algorithm(iana::Algorithm::EdDSA)
            .key_id(k.kid().0.to_vec())
            .content_type("text/plain".to_owned())
            .build(),
        coset::Header::default(),
        payload.clone(),
    );
    let no_alg = signed_by_hand(
        &k,
        HeaderBuilder::new().key_id(k.kid().0.to_vec()).build(),
        coset::Header::default(),
        payload,
    );
    for cose in [kid_unprotected, short_kid, extra_field, no_alg] {
        let err = check(&raw_code(cose), &trust(&[k.public()])).unwrap_err();
        assert!(matches!(err, VerifyError::BadHeader(_)), "{err:?}");
    }
}

#[test]
fn unknown_kid() {
    let k = key(1, KeyRole::Origin);
    let other = key(2, KeyRole::Origin);
    let text = k.sign(&claims(Source::Origin)).unwrap();
    assert_eq!(
        check(&text, &trust(&[other.public()])),
        Err(VerifyError::UnknownKid(k.kid()))
    );
}

#[test]
fn bad_signature() {
    let k = key(1, KeyRole::Origin);
    let text = k.sign(&claims(Source::Origin)).unwrap();
    let mut bytes = base45::decode(&text[4..]).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    let forged = format!("{PREFIX}{}", base45::encode(&bytes));
    assert_eq!(
        check(&forged, &trust(&[k.public()])),
        Err(VerifyError::BadSignature)
    );
}

#[test]
fn key_role_region_and_window() {
    let k = key(1, KeyRole::Origin);
    let text = k.sign(&claims(Source::Origin)).unwrap();
    let mut as_fallback = k.public().clone();
    as_fallback.role = KeyRole::Fallback;
    assert!(matches!(
        check(&text, &trust(&[&as_fallback])),
        Err(VerifyError::KeyRole(_))
    ));
    let mut other_region = k.public().clone();
    other_region.region = "110000".parse().unwrap();
    assert!(matches!(
        check(&text, &trust(&[&other_region])),
        Err(VerifyError::KeyRegion(_))
    ));
    let mut retired = k.public().clone();
    retired.not_after = T0 - 1;
    assert!(matches!(
        check(&text, &trust(&[&retired])),
        Err(VerifyError::KeyWindow(_))
    ));
}

#[test]
fn signer_refuses_what_its_key_may_not_sign() {
    let origin = key(1, KeyRole::Origin);
    assert!(origin.sign(&claims(Source::Fallback)).is_err());
    let mut other = claims(Source::Origin);
    other.issuer = "110000".parse().unwrap();
    assert!(origin.sign(&other).is_err());
}

#[test]
fn not_yet_valid_and_expired_with_skew() {
    let k = key(1, KeyRole::Origin);
    let c = claims(Source::Origin);
    let text = k.sign(&c).unwrap();
    let list = trust(&[k.public()]);
    let policy = VerifyPolicy::default();
    assert!(verify(&text, &list, T0 - 30, &policy).is_ok());
    assert_eq!(
        verify(&text, &list, T0 - 31, &policy).map(|_| ()),
        Err(VerifyError::NotYetValid {
            issued_at: T0,
            now: T0 - 31
        })
    );
    assert!(verify(&text, &list, T0 + 330, &policy).is_ok());
    assert_eq!(
        verify(&text, &list, T0 + 331, &policy).map(|_| ()),
        Err(VerifyError::Expired {
            expires_at: T0 + 300,
            now: T0 + 331
        })
    );
    let strict = VerifyPolicy {
        clock_skew: Duration::ZERO,
        ..policy
    };
    assert!(verify(&text, &list, T0 + 301, &strict).is_err());
}

#[test]
fn stale_fallback_only_for_fallback_codes() {
    let f = key(4, KeyRole::Fallback);
    let o = key(1, KeyRole::Origin);
    let list = trust(&[f.public(), o.public()]);
    let policy = VerifyPolicy {
        max_fallback_age: Some(Duration::from_secs(900)),
        ..VerifyPolicy::default()
    };
    let mut c = claims(Source::Fallback);
    c.as_of = T0 - 1000;
    let text = f.sign(&c).unwrap();
    assert_eq!(
        verify(&text, &list, T0 + 10, &policy).map(|_| ()),
        Err(VerifyError::StaleFallback {
            age_secs: 1010,
            max_secs: 900
        })
    );
    assert!(verify(&text, &list, T0 + 10, &VerifyPolicy::default()).is_ok());
    let mut c = claims(Source::Origin);
    c.as_of = T0 - 1000;
    assert!(verify(&o.sign(&c).unwrap(), &list, T0 + 10, &policy).is_ok());
}

#[test]
fn every_failure_has_its_own_reason() {
    use std::collections::HashSet;
    let k = key(1, KeyRole::Origin);
    let refusal = |r| VerifyError::from(r);
    let errors = [
        VerifyError::WrongPrefix,
        VerifyError::TooLong(1),
        VerifyError::BadBase45,
        VerifyError::NotCoseSign1(String::new()),
        VerifyError::ExtraTags,
        VerifyError::UnsupportedAlgorithm(String::new()),
        VerifyError::BadHeader(""),
        VerifyError::UnknownKid(k.kid()),
        VerifyError::BadSignature,
        VerifyError::BadClaims(String::new()),
        refusal(shouhu_code::KeyRefusal::Role {
            role: KeyRole::Origin,
            code_source: Source::Fallback,
        }),
        refusal(shouhu_code::KeyRefusal::Region {
            key: "370000".parse().unwrap(),
            issuer: "110000".parse().unwrap(),
        }),
        refusal(shouhu_code::KeyRefusal::Window {
            issued_at: 0,
            not_before: 1,
            not_after: 2,
        }),
        VerifyError::NotYetValid {
            issued_at: 0,
            now: 0,
        },
        VerifyError::Expired {
            expires_at: 0,
            now: 0,
        },
        VerifyError::StaleFallback {
            age_secs: 0,
            max_secs: 0,
        },
    ];
    let reasons: HashSet<_> = errors.iter().map(VerifyError::reason).collect();
    assert_eq!(reasons.len(), errors.len());
}

#[test]
fn replacing_any_character_breaks_the_code() {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:";
    let k = key(1, KeyRole::Origin);
    let text = k.sign(&claims(Source::Origin)).unwrap();
    let list = trust(&[k.public()]);
    let mut bytes = text.clone().into_bytes();
    for i in 0..bytes.len() {
        let original = bytes[i];
        for &c in ALPHABET.iter().chain(b"az\x00") {
            if c == original {
                continue;
            }
            bytes[i] = c;
            let mutated = String::from_utf8(bytes.clone()).unwrap();
            assert!(
                check(&mutated, &list).is_err(),
                "position {i} -> {}",
                c as char
            );
        }
        bytes[i] = original;
    }
}

fn arb_claims() -> impl Strategy<Value = Claims> {
    (
        (0u64..100_000, 1u64..86_400, any::<[u8; 12]>(), 0usize..4),
        (
            any::<[u8; 16]>(),
            "\\PC{0,8}",
            "([0-9]{3}[0-9X])?",
            0u64..1_000_000,
            any::<u32>(),
        ),
    )
        .prop_map(
            |((iat, ttl, cti, colour), (sub, name, last4, age, rv))| Claims {
                issuer: "370000".parse().unwrap(),
                issued_at: T0 - 50_000 + iat,
                expires_at: T0 - 50_000 + iat + ttl,
                code_id: CodeId(cti),
                colour: Colour::ALL[colour],
                subject: SubjectId(sub),
                masked_name: name,
                id_last4: last4,
                source: Source::Origin,
                as_of: (T0 - 50_000 + iat).saturating_sub(age),
                ruleset_version: rv,
            },
        )
}

proptest! {
    #[test]
    fn random_claims_round_trip(c in arb_claims()) {
        let k = key(1, KeyRole::Origin);
        let text = k.sign(&c).unwrap();
        let v = verify(&text, &trust(&[k.public()]), c.issued_at, &VerifyPolicy::default()).unwrap();
        prop_assert_eq!(v.claims, c);
    }

    #[test]
    fn random_byte_mutations_never_verify(
        c in arb_claims(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..4),
    ) {
        let k = key(1, KeyRole::Origin);
        let text = k.sign(&c).unwrap();
        let mut bytes = base45::decode(&text[4..]).unwrap();
        for (at, xor) in edits {
            let i = at.index(bytes.len());
            bytes[i] ^= xor;
        }
        let mutated = format!("{PREFIX}{}", base45::encode(&bytes));
        prop_assume!(mutated != text);
        prop_assert!(verify(&mutated, &trust(&[k.public()]), c.issued_at, &VerifyPolicy::default()).is_err());
    }

    #[test]
    fn random_text_never_verifies(s in "HZ1:[0-9A-Z $%*+./:-]{0,400}") {
        let k = key(1, KeyRole::Origin);
        prop_assert!(check(&s, &trust(&[k.public()])).is_err());
    }
}
