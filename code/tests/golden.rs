//! The committed golden vector pins the wire format: a fixed key, fixed claims and a fixed time
//! must give exactly the committed code, byte for byte, and it must verify. If this test fails,
//! the format drifted: either revert, or bump the prefix to `HZ2:` (old scanners cannot read the
//! new codes) and regenerate with `SHOUHU_BLESS=1 cargo test -p shouhu-code --test golden`.
#![expect(clippy::unwrap_used, reason = "tests")]

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use shouhu_code::{Claims, KeyPair, KeyRole, PublicKey, TrustList, VerifyPolicy, time, verify};

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Vector {
    description: String,
    /// The Ed25519 secret seed, hex. A test key: never use it for anything else.
    seed: String,
    key: PublicKey,
    claims: Claims,
    validation_time: String,
    /// The tagged COSE_Sign1, hex.
    cose: String,
    /// The QR text.
    code: String,
}

fn path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/golden.json")
}

fn build() -> Vector {
    let seed = [0x42; 32];
    let key = KeyPair::from_seed(
        seed,
        KeyRole::Fallback,
        "370000".parse().unwrap(),
        time::parse_rfc3339("2026-01-01T00:00:00Z").unwrap(),
        time::parse_rfc3339("2027-01-01T00:00:00Z").unwrap(),
    );
    let claims: Claims = serde_json::from_value(serde_json::json!({
        "issuer": "370000",
        "issued_at": "2026-11-29T08:00:00Z",
        "expires_at": "2026-11-29T08:05:00Z",
        "code_id": "000102030405060708090a0b",
        "colour": "yellow",
        "subject": "00112233445566778899aabbccddeeff",
        "masked_name": "张*",
        "id_last4": "123X",
        "source": "fallback",
        "as_of": "2026-11-29T07:45:00Z",
        "ruleset_version": 1
    }))
    .unwrap();
    let code = key.sign(&claims).unwrap();
    Vector {
        description: "fallback key, yellow code, verified at issue time plus one minute".to_owned(),
        seed: hex::encode(seed),
        key: key.public().clone(),
        claims,
        validation_time: "2026-11-29T08:01:00Z".to_owned(),
        cose: hex::encode(base45::decode(&code[4..]).unwrap()),
        code,
    }
}

#[test]
fn golden_vector_is_reproduced_and_verifies() {
    let fresh = build();
    if std::env::var_os("SHOUHU_BLESS").is_some() {
        let text = serde_json::to_string_pretty(&fresh).unwrap() + "\n";
        std::fs::write(path(), text).unwrap();
    }
    let committed: Vector =
        serde_json::from_str(&std::fs::read_to_string(path()).unwrap()).unwrap();
    assert_eq!(
        fresh, committed,
        "the code format drifted from the golden vector"
    );

    let trust = TrustList::new(vec![committed.key.clone()]).unwrap();
    let at = time::parse_rfc3339(&committed.validation_time).unwrap();
    let verified = verify(&committed.code, &trust, at, &VerifyPolicy::default()).unwrap();
    assert_eq!(verified.claims, committed.claims);
}
