//! The `shouhu issuer` binary as a citizen, a venue scanner and an origin pushing snapshot
//! deltas see it, with a private `redis-server` that the test kills and restarts.
#![expect(clippy::unwrap_used, reason = "tests")]

use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use shouhu_code::time::now;
use shouhu_code::{CodeView, Colour, Source, SubjectId, TrustList, VerifyPolicy, verify};
use shouhu_fallback::session::SessionSigner;
use shouhu_testkit::{ChildProcess, RedisServer, free_port, wait_for_tcp, wait_until};

const INGEST_TOKEN: &str = "ingest-secret-1";

struct Issuer {
    process: ChildProcess,
    base: String,
    admin: String,
    signer: SessionSigner,
    data_dir: tempfile::TempDir,
}

fn start_issuer(redis: &str) -> Issuer {
    let data_dir = tempfile::tempdir().unwrap();
    let signer = SessionSigner::from_seed([42; 32]);
    std::fs::write(data_dir.path().join("session-key.pub"), signer.key_json()).unwrap();
    let token_file = data_dir.path().join("ingest.token");
    std::fs::write(&token_file, format!("{INGEST_TOKEN}\n")).unwrap();
    let (port, admin_port) = (free_port(), free_port());
    let config = data_dir.path().join("issuer.toml");
    std::fs::write(
        &config,
        format!(
            "kind = \"issuer\"\n\
             data_dir = \"{dir}\"\n\
             redis = \"{redis}\"\n\
             region = \"370000\"\n\
             code_ttl = \"5m\"\n\
             max_snapshot_age = \"15m\"\n\
             ingest_token = {{ file = \"{token}\" }}\n\
             [server]\n\
             listen = \"127.0.0.1:{port}\"\n\
             admin_listen = \"127.0.0.1:{admin_port}\"\n",
            dir = data_dir.path().display(),
            token = token_file.display(),
        ),
    )
    .unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_shouhu"));
    cmd.args(["issuer", "--config", config.to_str().unwrap()]);
    let process = ChildProcess::spawn("shouhu issuer", cmd).unwrap();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    assert!(
        wait_for_tcp(addr, Duration::from_secs(20)),
        "issuer did not start"
    );
    // Ready means Redis is reachable: the issuer starts before its Redis connection does.
    let admin: SocketAddr = format!("127.0.0.1:{admin_port}").parse().unwrap();
    assert!(
        wait_until(Duration::from_secs(20), || is_ready(admin)),
        "issuer never became ready"
    );
    Issuer {
        process,
        base: format!("http://{addr}"),
        admin: format!("http://127.0.0.1:{admin_port}"),
        signer,
        data_dir,
    }
}

fn subject(n: u8) -> SubjectId {
    SubjectId([n; 16])
}

impl Issuer {
    fn token(&self, n: u8) -> String {
        self.signer.token(&subject(n), now(), now() + 600).unwrap()
    }

    async fn code(&self, client: &reqwest::Client, n: u8) -> CodeView {
        let r = client
            .get(format!("{}/api/code", self.base))
            .bearer_auth(self.token(n))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["cache-control"], "no-store");
        r.json().await.unwrap()
    }

    async fn trust_list(&self, client: &reqwest::Client) -> TrustList {
        let text = client
            .get(format!("{}/.well-known/shouhu/trust-list.json", self.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        TrustList::from_json("trust-list.json", &text).unwrap()
    }
}

async fn push(client: &reqwest::Client, issuer: &Issuer, body: String) -> reqwest::Response {
    client
        .post(format!("{}/ingest/records", issuer.base))
        .bearer_auth(INGEST_TOKEN)
        .body(body)
        .send()
        .await
        .unwrap()
}

/// `GET /readyz` answers 200, asked over a plain socket (callers run inside a runtime).
fn is_ready(admin: SocketAddr) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect_timeout(&admin, Duration::from_millis(200))
    else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    let mut answer = String::new();
    stream
        .write_all(b"GET /readyz HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .and_then(|()| stream.read_to_string(&mut answer))
        .is_ok()
        && answer
            .lines()
            .next()
            .is_some_and(|status| status.contains(" 200 "))
}

fn record_line(n: u8, colour: &str, as_of: u64) -> String {
    format!(
        r#"{{"subject":"{}","colour":"{colour}","as_of":{as_of},"ruleset_version":5,"masked_name":"赵*","id_last4":"4321"}}"#,
        subject(n).to_hex()
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn citizens_scanners_and_the_origin_use_the_standalone_issuer() {
    let mut redis = RedisServer::start();
    let issuer = start_issuer(&redis.url());
    let client = reqwest::Client::new();
    let t = now();

    // The origin pushes deltas (one bad line among them) and advances the watermark.
    let body = [
        record_line(1, "green", t - 100),
        record_line(2, "red", t - 100),
        "{\"subject\":\"zz\"}".to_owned(),
        record_line(3, "yellow", t - 100),
    ]
    .join("\n");
    let r = push(&client, &issuer, body.clone()).await;
    assert_eq!(r.status(), 200);
    let answer: serde_json::Value = r.json().await.unwrap();
    assert_eq!(answer["received"], 3);
    assert_eq!(answer["bad_lines"], 1);
    assert_eq!(answer["errors"][0]["line"], 3);
    let r = client
        .post(format!("{}/ingest/watermark", issuer.base))
        .bearer_auth(INGEST_TOKEN)
        .json(&serde_json::json!({ "complete_up_to": t - 5 }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Ingest needs the token.
    let r = client
        .post(format!("{}/ingest/records", issuer.base))
        .bearer_auth("wrong")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);

    // Each citizen sees exactly their snapshot colour, as a fallback code that verifies.
    let list = issuer.trust_list(&client).await;
    for (n, colour) in [
        (1, Colour::Green),
        (2, Colour::Red),
        (3, Colour::Yellow),
        (4, Colour::Unknown),
    ] {
        let view = issuer.code(&client, n).await;
        assert_eq!((view.colour, view.source), (colour, Source::Fallback));
        let claims = verify(&view.code, &list, now(), &VerifyPolicy::default())
            .unwrap()
            .claims;
        assert_eq!((claims.colour, claims.subject), (colour, subject(n)));
    }

    // A venue scanner asks the issuer.
    let green = issuer.code(&client, 1).await;
    let verdict: serde_json::Value = client
        .post(format!("{}/api/verify", issuer.base))
        .json(&serde_json::json!({ "code": green.code }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(verdict["valid"], true);
    assert_eq!(verdict["colour"], "green");
    assert_eq!(verdict["source"], "fallback");
    let mut forged = green.code.clone();
    forged.pop();
    let verdict: serde_json::Value = client
        .post(format!("{}/api/verify", issuer.base))
        .json(&serde_json::json!({ "code": forged }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(verdict["valid"], false);

    // The HTML page, with the session in the cookie, is the shared citizen page.
    let page = client
        .get(format!("{}/code", issuer.base))
        .header("cookie", format!("shouhu_session={}", issuer.token(2)))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("红码") && html.contains("<svg"), "{html}");

    // No, forged and expired sessions are refused.
    let r = client
        .get(format!("{}/api/code", issuer.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["error"],
        "missing_token"
    );
    let forged = SessionSigner::from_seed([1; 32])
        .token(&subject(1), now(), now() + 600)
        .unwrap();
    let r = client
        .get(format!("{}/api/code", issuer.base))
        .bearer_auth(forged)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["error"],
        "invalid_token"
    );
    let expired = issuer
        .signer
        .token(&subject(1), t - 7200, t - 3600)
        .unwrap();
    let r = client
        .get(format!("{}/api/code", issuer.base))
        .bearer_auth(expired)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["error"],
        "expired_token"
    );

    // Redis dies: codes are unknown, fast; it comes back: green again, no issuer restart.
    redis.kill();
    for _ in 0..10 {
        let started = Instant::now();
        let view = issuer.code(&client, 1).await;
        assert_eq!(view.colour, Colour::Unknown);
        assert!(
            started.elapsed() < Duration::from_millis(300),
            "{:?}",
            started.elapsed()
        );
    }
    let ready = client
        .get(format!("{}/readyz", issuer.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);
    redis.restart();
    tokio::time::timeout(Duration::from_secs(15), async {
        while issuer.code(&client, 1).await.colour != Colour::Green {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .unwrap();
    let metrics = client
        .get(format!("{}/metrics", issuer.admin))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("shouhu_fallback_snapshot_unavailable_total"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rotated_key_is_picked_up_on_sighup_and_old_codes_still_verify() {
    let redis = RedisServer::start();
    let issuer = start_issuer(&redis.url());
    let client = reqwest::Client::new();
    let old_list = issuer.trust_list(&client).await;
    assert_eq!(
        old_list.keys().len(),
        1,
        "a key was generated on first start"
    );
    let old_code = issuer.code(&client, 7).await;

    // Two keys made in the same second tie on not_before; a later one must win the tie-break
    // by expiry, so make the new key valid a little longer.
    let key_dir = issuer.data_dir.path().join("keys");
    let out = Command::new(env!("CARGO_BIN_EXE_shouhu"))
        .args([
            "keys",
            "generate",
            "--role",
            "fallback",
            "--region",
            "370000",
            "--valid-for",
            "400d",
            "--out",
        ])
        .arg(&key_dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pid = issuer.process.pid().unwrap();
    let hup = Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()
        .unwrap();
    assert!(hup.success());

    let mut new_list = old_list.clone();
    let reloaded = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            new_list = issuer.trust_list(&client).await;
            if new_list.keys().len() == 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(reloaded.is_ok(), "the new key was not published");
    let new_code = issuer.code(&client, 7).await;
    let new_kid = verify(&new_code.code, &new_list, now(), &VerifyPolicy::default())
        .unwrap()
        .key
        .kid;
    assert_ne!(new_kid, old_list.keys()[0].kid, "the newest key signs");
    assert!(verify(&old_code.code, &new_list, now(), &VerifyPolicy::default()).is_ok());
}
