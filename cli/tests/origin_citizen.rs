//! End to end against the real `shouhu origin` process: a citizen registers, logs in,
//! declares, gets a code that verifies against the served trust list, sees the page and the
//! explanation; bad input and bad tokens are refused with clear errors; a replayed
//! declaration is applied once.
#![expect(clippy::unwrap_used, reason = "tests")]

#[path = "origin/harness.rs"]
mod harness;

use harness::{OriginProc, RESET, id_number};
use serde_json::json;
use shouhu_code::time::now;
use shouhu_code::{Colour, Source, TrustList, VerifyPolicy, verify};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_login_declare_gives_a_green_code_that_verifies() {
    let origin = OriginProc::start(None, &[]);
    let mut citizen = origin.citizen();
    let id = id_number("370102", "19900307", "123");
    let subject = citizen.sign_up(&id, "13800138000").await;
    assert_eq!(subject.len(), 32);
    origin.reset(&subject).await;
    assert_eq!(citizen.wait_colour("green", RESET).await, "green");

    // Registering again answers 200 with the same subject.
    let (status, body) = citizen
        .post(
            "/api/register",
            json!({"name": "张三", "id_number": id, "phone": "13800138000", "address": "济南"}),
        )
        .await;
    assert_eq!((status, body["subject"].as_str()), (200, Some(&*subject)));

    let (status, _) = citizen
        .declare(
            "day-1",
            json!({"temperature": 36.6, "symptoms": [], "travel": []}),
        )
        .await;
    assert_eq!(status, 200);

    let (status, code) = citizen.get("/api/code").await;
    assert_eq!(status, 200, "{code}");
    assert_eq!(code["colour"], "green");
    assert_eq!(code["source"], "origin");
    assert_eq!(code["masked_name"], "张*");
    assert_eq!(code["id_last4"], id[14..]);

    // The code verifies offline against the trust list the origin serves.
    let trust_text = harness::client()
        .get(format!(
            "{}/.well-known/shouhu/trust-list.json",
            origin.citizen
        ))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let trust = TrustList::from_json("served", &trust_text).unwrap();
    let verified = verify(
        code["code"].as_str().unwrap(),
        &trust,
        now(),
        &VerifyPolicy::default(),
    )
    .unwrap();
    assert_eq!(verified.claims.colour, Colour::Green);
    assert_eq!(verified.claims.source, Source::Origin);
    assert_eq!(verified.claims.subject.to_string(), subject);
    assert_eq!(verified.claims.ruleset_version, 1);

    // A scanner gets the same answer from the origin.
    let (status, scan) = citizen
        .post("/api/verify", json!({"code": code["code"]}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(scan["valid"], true);
    assert_eq!(scan["colour"], "green");
    let (_, forged) = citizen
        .post("/api/verify", json!({"code": "HZ1:NOTACODE"}))
        .await;
    assert_eq!(forged["valid"], false);
    assert!(forged["reason"].is_string());

    // The HTML page shows the colour and the QR.
    let page = harness::client()
        .get(format!("{}/code", origin.citizen))
        .header(
            "Cookie",
            format!("shouhu_session={}", citizen.token.as_deref().unwrap()),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("绿码") && html.contains("<svg"), "{html}");

    // The session key is published in the agreed shape.
    let key: serde_json::Value = harness::client()
        .get(format!("{}/.well-known/shouhu/session-key", origin.citizen))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(key["alg"], "EdDSA");
    assert_eq!(key["kid"].as_str().unwrap().len(), 16);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_and_bad_tokens_are_refused_with_clear_errors() {
    let origin = OriginProc::start(None, &[]);
    let mut citizen = origin.citizen();
    let good = id_number("370102", "19851120", "045");
    let register = |id: &str, phone: &str| json!({"name": "李四", "id_number": id, "phone": phone, "address": "青岛"});
    let mut wrong_check = good.clone();
    let last = wrong_check.pop().unwrap();
    wrong_check.push(if last == '0' { '1' } else { '0' });
    for (body, code, needle) in [
        (
            register(&wrong_check, "13800138000"),
            "invalid_id_number",
            "check digit",
        ),
        (
            register(&id_number("370102", "19850230", "045"), "13800138000"),
            "invalid_id_number",
            "birth date",
        ),
        (
            register(&id_number("990102", "19851120", "045"), "13800138000"),
            "invalid_id_number",
            "region",
        ),
        (register(&good, "12345"), "invalid_phone", "Phone"),
    ] {
        let (status, err) = citizen.post("/api/register", body).await;
        assert_eq!(status, 400, "{err}");
        assert_eq!(err["error"], code);
        assert!(err["message"].as_str().unwrap().contains(needle), "{err}");
        assert!(!err["message_zh"].as_str().unwrap().is_empty());
    }

    // No token, a forged token, an expired token.
    let (status, err) = citizen.get("/api/code").await;
    assert_eq!(
        (status, err["error"].as_str()),
        (401, Some("missing_token"))
    );
    let subject = citizen.sign_up(&good, "13900139000").await;
    let forger = shouhu_origin::identity::SessionKeys::from_seed([7; 32]);
    let (forged, _) = forger.issue(subject.parse().unwrap(), now(), 3600).unwrap();
    let mut other = origin.citizen();
    other.token = Some(forged);
    let (status, err) = other.get("/api/code").await;
    assert_eq!(
        (status, err["error"].as_str()),
        (401, Some("invalid_token"))
    );
    let seed_hex = std::fs::read_to_string(origin.data_dir().join("keys/session.key")).unwrap();
    let mut seed = [0u8; 32];
    hex::decode_to_slice(seed_hex.trim(), &mut seed).unwrap();
    let real = shouhu_origin::identity::SessionKeys::from_seed(seed);
    let (expired, _) = real
        .issue(subject.parse().unwrap(), now() - 7200, 3600)
        .unwrap();
    other.token = Some(expired);
    let (status, err) = other.get("/api/code").await;
    assert_eq!(
        (status, err["error"].as_str()),
        (401, Some("expired_token"))
    );

    // Login with the wrong phone is refused.
    let (status, err) = citizen
        .post(
            "/api/login",
            json!({"id_number": good, "phone": "13700137000"}),
        )
        .await;
    assert_eq!(
        (status, err["error"].as_str()),
        (401, Some("unknown_person"))
    );

    // An impossible declaration is 422; one without an Idempotency-Key is 400.
    let (status, text) = citizen.declare("k", json!({"temperature": 45.0})).await;
    assert_eq!(status, 422, "{text}");
    let r = harness::client()
        .post(format!("{}/api/declare", origin.citizen))
        .bearer_auth(citizen.token.as_deref().unwrap())
        .json(&json!({"temperature": 36.5}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_declaration_is_applied_once_and_fever_turns_the_code_yellow() {
    let origin = OriginProc::start(None, &[]);
    let mut citizen = origin.citizen();
    let subject = citizen
        .sign_up(&id_number("370202", "20000101", "007"), "13600136000")
        .await;
    origin.reset(&subject).await;
    assert_eq!(citizen.wait_colour("green", RESET).await, "green");
    let fever = json!({"temperature": 38.4, "symptoms": ["cough"], "travel": []});
    let (s1, first) = citizen.declare("replayed-key", fever.clone()).await;
    let (s2, second) = citizen.declare("replayed-key", fever.clone()).await;
    assert_eq!((s1, s2), (200, 200));
    assert_eq!(first, second, "a replay gets the same answer");
    let (s3, _) = citizen
        .declare("replayed-key", json!({"temperature": 36.5}))
        .await;
    assert_eq!(
        s3, 409,
        "the key reused for another declaration is a conflict"
    );

    let (status, why) = citizen.get("/api/code/explain").await;
    assert_eq!(status, 200);
    assert_eq!(why["declarations"], 1, "applied once: {why}");
    assert_eq!(why["colour"], "yellow");
    assert_eq!(why["reasons"][0]["rule"], "fever_with_symptoms");
    assert!(why["reasons"][0]["zh"].is_string());
    assert_eq!(citizen.colour().await, "yellow");
}

#[test]
fn a_bad_config_exits_64_naming_the_field_and_value() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("origin.toml");
    std::fs::write(&path, "[capacity]\nsigma = 2.0\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_shouhu"))
        .arg("origin")
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("capacity.sigma: must be a number >= 0 and < 1 (got 2)"),
        "{stderr}"
    );
}
