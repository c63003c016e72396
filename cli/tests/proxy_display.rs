//! `shouhu proxy` in front of a healthy origin: codes come from the origin and then from the
//! per-user cache, verify against the trust list the proxy publishes, and under concurrent
//! load nobody ever gets another person's code. Identity is checked at the edge: missing,
//! forged, expired and `alg: none` tokens get 401 and never reach the origin.
#![expect(clippy::unwrap_used, reason = "tests")]

#[path = "origin/harness.rs"]
mod harness;
#[path = "proxy/harness.rs"]
mod proxy_harness;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use proxy_harness::{ProxyProc, Stack, get_with, sign_up, verified_claims};
use shouhu_code::{Source, SubjectId};
use shouhu_fallback::session::SessionSigner;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codes_come_from_the_origin_then_the_cache_and_verify() {
    let stack = Stack::start();
    let person = sign_up(&stack.proxy.base, 1).await;
    let trust = stack.proxy.trust_list().await;

    let first = person.get("/api/code").await;
    assert_eq!(first.status, 200, "{first:?}");
    assert_eq!(first.source, "origin");
    let claims = verified_claims(&first, &trust);
    assert_eq!(claims.subject.to_hex(), person.subject);
    assert_eq!(claims.source, Source::Origin);

    let second = person.get("/api/code").await;
    assert_eq!(second.status, 200);
    assert_eq!(second.source, "cache");
    assert_eq!(
        second.json()["code"],
        first.json()["code"],
        "the cached code is the origin's"
    );

    let page = person.get("/code").await;
    assert_eq!(page.status, 200);
    assert_eq!(page.source, "cache");
    assert!(page.body.contains("<svg"), "the page shows the QR");

    // The proxy's trust list holds the origin's keys and its own fallback key.
    let origin_trust = stack
        .origin
        .citizen()
        .get("/.well-known/shouhu/trust-list.json")
        .await
        .1;
    let origin_keys = origin_trust["keys"].as_array().unwrap().len();
    assert_eq!(trust.keys().len(), origin_keys + 1);

    let status = stack.proxy.status().await;
    assert_eq!(status["breaker"], "closed");
    assert_eq!(status["cache_entries"], 1, "{status}");
    let metrics = stack.proxy.metrics().await;
    assert!(metrics.contains(r#"shouhu_requests_total{class="display",outcome="origin"} 1"#));
    assert!(metrics.contains(r#"shouhu_requests_total{class="display",outcome="cache_fresh"} 2"#));
    assert!(metrics.contains(r#"shouhu_requests_total{class="register",outcome="proxied"} 2"#));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_citizens_never_get_another_persons_code() {
    const PEOPLE: u32 = 24;
    const ROUNDS: usize = 6;
    // Room for every first fetch at once: this test is about whose code comes back, not
    // about admission (a lower limit would answer some from fallback, still their own).
    let stack = Stack::start_with(Some("[admission]\ninitial_limit = 64\n"));
    let mut people = Vec::new();
    for n in 0..PEOPLE {
        people.push(sign_up(&stack.proxy.base, 100 + n).await);
    }
    let trust = stack.proxy.trust_list().await;
    let mut sources = std::collections::BTreeMap::<(usize, String), usize>::new();
    // Round 0: everyone's first codes, concurrently (cache misses); round 1: again (hits).
    for round in 0..2 {
        let mut tasks = tokio::task::JoinSet::new();
        for person in &people {
            for _ in 0..ROUNDS {
                let person = person.clone();
                tasks.spawn(async move { (person.subject.clone(), person.get("/api/code").await) });
            }
        }
        let mut answers = 0;
        while let Some(joined) = tasks.join_next().await {
            let (subject, answer) = joined.unwrap();
            assert_eq!(answer.status, 200, "{answer:?}");
            let claims = verified_claims(&answer, &trust);
            assert_eq!(claims.subject.to_hex(), subject, "a code of another person");
            *sources.entry((round, answer.source.clone())).or_default() += 1;
            answers += 1;
        }
        assert_eq!(answers, PEOPLE as usize * ROUNDS);
    }
    eprintln!("sources of concurrent answers by round: {sources:?}");
    assert_eq!(
        sources.get(&(1, "cache".to_owned())).copied(),
        Some(PEOPLE as usize * ROUNDS),
        "{sources:?}"
    );
}

fn b64(json: &serde_json::Value) -> String {
    URL_SAFE_NO_PAD.encode(json.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_forged_expired_and_alg_none_tokens_get_401_at_the_edge() {
    let stack = Stack::start();
    let person = sign_up(&stack.proxy.base, 7).await;
    let subject: SubjectId = person.subject.parse().unwrap();
    let now = shouhu_code::time::now();

    // The origin's own session key: an expired token is genuine but old.
    let seed_hex =
        std::fs::read_to_string(stack.origin.data_dir().join("keys/session.key")).unwrap();
    let seed: [u8; 32] = hex::decode(seed_hex.trim()).unwrap().try_into().unwrap();
    let origin_signer = SessionSigner::from_seed(seed);
    let genuine = origin_signer.token(&subject, now, now + 600).unwrap();
    let expired = origin_signer
        .token(&subject, now - 7200, now - 3600)
        .unwrap();
    let forged = SessionSigner::from_seed([9; 32])
        .token(&subject, now, now + 600)
        .unwrap();
    let claims = serde_json::json!({
        "sub": person.subject, "iat": now, "exp": now + 600, "iss": "shouhu-origin"
    });
    let alg_none = format!(
        "{}.{}.",
        b64(&serde_json::json!({"alg": "none", "typ": "JWT"})),
        b64(&claims)
    );
    let genuine_parts: Vec<&str> = genuine.split('.').collect();
    let alg_hs256 = format!(
        "{}.{}.{}",
        b64(&serde_json::json!({"alg": "HS256", "typ": "JWT"})),
        genuine_parts[1],
        genuine_parts[2]
    );

    let url = format!("{}/api/code", stack.proxy.base);
    let ok = get_with(&person.http, &url, Some(&genuine)).await;
    assert_eq!(ok.status, 200, "a genuine token passes: {ok:?}");
    for (name, token, reason) in [
        ("missing", None, "missing_token"),
        ("garbage", Some("not-a-token"), "invalid_token"),
        ("forged", Some(forged.as_str()), "invalid_token"),
        ("expired", Some(expired.as_str()), "expired_token"),
        ("alg none", Some(alg_none.as_str()), "invalid_token"),
        ("alg HS256", Some(alg_hs256.as_str()), "invalid_token"),
    ] {
        for path in ["/api/code", "/code", "/api/code/explain", "/api/declare"] {
            let a = get_with(&person.http, &format!("{}{path}", stack.proxy.base), token).await;
            assert_eq!(a.status, 401, "{name} token on {path}: {a:?}");
            assert_eq!(a.source, "proxy", "answered by the proxy, not the origin");
            if path.starts_with("/api/") {
                assert_eq!(a.json()["error"], reason, "{name}: {a:?}");
                assert!(a.json()["message_zh"].is_string());
            } else {
                assert!(a.body.contains("登录"), "a bilingual page: {}", a.body);
            }
        }
    }
    let metrics = stack.proxy.metrics().await;
    assert!(
        metrics.contains(r#"shouhu_auth_refusals_total{reason="expired"} 4"#),
        "{metrics}"
    );
    assert!(metrics.contains(r#"shouhu_auth_refusals_total{reason="missing"} 4"#));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_proxy_runs_without_redis_and_stops_on_sigterm() {
    let origin = harness::OriginProc::start(None, &[]);
    let mut proxy = ProxyProc::start(
        &origin.citizen,
        None,
        Some("[server]\ngrace_period = \"1s\"\ngraceful_shutdown_timeout = \"1s\"\n"),
    );
    let person = sign_up(&proxy.base, 3).await;
    assert_eq!(person.get("/api/code").await.status, 200);
    let ready = harness::client()
        .get(format!("{}/readyz", proxy.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    let ready: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(ready["redis"], "off");
    // Keys generated on first start.
    assert!(
        std::fs::read_dir(proxy.dir.path().join("data/keys"))
            .unwrap()
            .any(|e| e
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".key.json"))
    );
    let started = std::time::Instant::now();
    let exit = proxy
        .process
        .terminate(std::time::Duration::from_secs(10))
        .unwrap_or_else(|| panic!("the proxy did not exit after SIGTERM"));
    assert!(exit.success(), "{exit:?}");
    eprintln!("SIGTERM to exit: {:?}", started.elapsed());
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}
