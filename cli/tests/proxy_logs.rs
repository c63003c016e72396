//! What `shouhu proxy` writes to its log, with `[log] format = "json"` at `RUST_LOG=info`:
//! every line is one JSON object; Pingora's own `log` records come out the same way; a
//! request's `X-Request-Id` (the client's, or one made by the proxy) reaches the origin, comes
//! back on every answer (passed through or made by the proxy) and is the `request_id` of the
//! request's log lines; and 10,000 refused requests during an outage of the origin and of
//! Redis (401s, 503s of the journal, of the breaker and of the display path) are counted, not
//! logged: a bounded number of lines.
#![expect(clippy::unwrap_used, reason = "tests")]

#[path = "origin/harness.rs"]
mod harness;
#[path = "proxy/harness.rs"]
mod proxy_harness;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use harness::OriginProc;
use proxy_harness::{ProxyProc, sample, sign_up};
use serde_json::{Value, json};
use shouhu_testkit::RedisServer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// JSON lines; no rate limits (the refusals below are the origin's and Redis's outage); the
/// breaker, once open, stays open through the burst.
const CONFIG: &str = r#"
[log]
format = "json"

[rate_limit]
per_ip = "off"
per_subject = "off"

[breaker]
open_for = "60s"
"#;
const REFUSED: usize = 10_000;
const CONCURRENCY: usize = 32;
/// Log lines the burst may add: a few per kind of event and 10 s, far below one per request.
const MAX_LINES: usize = 50;

/// A TCP relay in front of the origin that keeps every byte the proxy sends through it.
struct Tap {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<u8>>>,
    accept: JoinHandle<()>,
}

impl Tap {
    async fn start(origin: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let kept = Arc::clone(&seen);
        let accept = tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let kept = Arc::clone(&kept);
                tokio::spawn(async move {
                    let Ok(outbound) = TcpStream::connect(origin).await else {
                        return;
                    };
                    let (mut from_proxy, mut to_proxy) = inbound.into_split();
                    let (mut from_origin, mut to_origin) = outbound.into_split();
                    let up = async {
                        let mut buf = vec![0u8; 16 * 1024];
                        while let Ok(n @ 1..) = from_proxy.read(&mut buf).await {
                            kept.lock().unwrap().extend_from_slice(&buf[..n]);
                            if to_origin.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                        }
                        let _ = to_origin.shutdown().await;
                    };
                    let down = async {
                        let _ = tokio::io::copy(&mut from_origin, &mut to_proxy).await;
                        let _ = to_proxy.shutdown().await;
                    };
                    tokio::join!(up, down);
                });
            }
        });
        Self { addr, seen, accept }
    }

    /// Whether the proxy sent `x-request-id: {id}` to the origin.
    fn saw_request_id(&self, id: &str) -> bool {
        let seen = String::from_utf8_lossy(&self.seen.lock().unwrap()).to_ascii_lowercase();
        seen.contains(&format!("x-request-id: {}\r\n", id.to_ascii_lowercase()))
    }

    /// Stops accepting: new connections are refused.
    fn stop(&self) {
        self.accept.abort();
    }
}

/// A request id the proxy made: 8 hex digits, `-`, a hex counter.
fn is_made_id(id: &str) -> bool {
    id.split_once('-').is_some_and(|(prefix, n)| {
        prefix.len() == 8
            && prefix.bytes().all(|b| b.is_ascii_hexdigit())
            && !n.is_empty()
            && n.bytes().all(|b| b.is_ascii_hexdigit())
    })
}

fn request_id(r: &reqwest::Response) -> String {
    r.headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// Polls `check` on the log until it holds.
async fn wait_for_log(proxy: &ProxyProc, what: &str, check: impl Fn(&str) -> bool) {
    let started = Instant::now();
    while !check(&proxy.log()) {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{what} not in the log within 10 s:\n{}",
            proxy.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_are_counted_not_logged_and_log_lines_are_json_with_request_ids() {
    let mut redis = RedisServer::start();
    let mut origin = OriginProc::start(None, &["--redis", &redis.url()]);
    let origin_addr: SocketAddr = origin
        .citizen
        .trim_start_matches("http://")
        .parse()
        .unwrap();
    let tap = Tap::start(origin_addr).await;
    let proxy = ProxyProc::start_with_env(
        &format!("http://{}", tap.addr),
        Some(&redis.url()),
        Some(CONFIG),
        &[("RUST_LOG", "info")],
    );
    let person = sign_up(&proxy.base, 910).await;
    let http = harness::client();
    let explain = format!("{}/api/code/explain", proxy.base);

    // The client's id: to the origin and back.
    let r = http
        .get(&explain)
        .bearer_auth(&person.token)
        .header("x-request-id", "it-explain-1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(request_id(&r), "it-explain-1");
    assert!(tap.saw_request_id("it-explain-1"));
    // None sent, or one that is not fit for a log line: a new one, also sent to the origin.
    let mut made = Vec::new();
    for sent in [None, Some("has spaces in it"), Some(&*"x".repeat(65))] {
        let mut req = http.get(&explain).bearer_auth(&person.token);
        if let Some(sent) = sent {
            req = req.header("x-request-id", sent);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 200);
        let id = request_id(&r);
        assert!(is_made_id(&id), "{sent:?} -> {id:?}");
        assert!(tap.saw_request_id(&id), "{id} not sent to the origin");
        made.push(id);
    }
    made.sort();
    made.dedup();
    assert_eq!(made.len(), 3, "made ids repeat: {made:?}");
    // An answer the proxy makes itself carries it too.
    let r = http
        .get(format!("{}/api/code", proxy.base))
        .header("x-request-id", "it-401")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(request_id(&r), "it-401");

    // Pingora's own `log` records are in the log, as JSON like the rest.
    wait_for_log(&proxy, "a line from Pingora", |log| {
        log.lines().any(|l| {
            serde_json::from_str::<Value>(l).is_ok_and(|v| {
                v["target"]
                    .as_str()
                    .is_some_and(|t| t.starts_with("pingora"))
            })
        })
    })
    .await;

    // The origin and Redis go away.
    tap.stop();
    origin.process.kill();
    redis.kill();
    let before = proxy.log().lines().count();

    let next = Arc::new(AtomicUsize::new(0));
    let statuses = Arc::new(Mutex::new(BTreeMap::<(usize, u16), usize>::new()));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..CONCURRENCY {
        let (next, statuses, http) = (Arc::clone(&next), Arc::clone(&statuses), http.clone());
        let (base, token) = (proxy.base.clone(), person.token.clone());
        workers.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= REFUSED {
                    break;
                }
                let id = format!("burst-{i}");
                let kind = i % 4;
                let req = match kind {
                    // No session: 401 at the edge.
                    0 => http.get(format!("{base}/api/code")),
                    // A declaration: the journal is down, 503.
                    1 => http
                        .post(format!("{base}/api/declare"))
                        .bearer_auth(&token)
                        .header("idempotency-key", format!("log-test-{i}"))
                        .json(&json!({"temperature": 36.6, "symptoms": [], "travel": []})),
                    // Passed through: the origin is down, 503.
                    2 => http
                        .get(format!("{base}/api/code/explain"))
                        .bearer_auth(&token),
                    // A code: neither origin nor snapshot, the display path's last resort.
                    _ => http.get(format!("{base}/api/code")).bearer_auth(&token),
                };
                let r = req.header("x-request-id", &id).send().await.unwrap();
                assert_eq!(request_id(&r), id, "answer {} lost its id", r.status());
                let status = r.status().as_u16();
                let _ = r.bytes().await;
                *statuses.lock().unwrap().entry((kind, status)).or_default() += 1;
            }
        }));
    }
    for w in workers {
        w.await.unwrap();
    }
    let took = started.elapsed();
    let statuses = statuses.lock().unwrap().clone();
    let count = |kind: usize, status: u16| statuses.get(&(kind, status)).copied().unwrap_or(0);
    let per_kind = REFUSED / 4;
    assert_eq!(count(0, 401), per_kind, "{statuses:?}");
    assert_eq!(count(1, 503), per_kind, "{statuses:?}");
    assert_eq!(count(2, 503), per_kind, "{statuses:?}");
    let display: usize = statuses
        .iter()
        .filter(|((kind, _), _)| *kind == 3)
        .map(|(_, n)| n)
        .sum();
    assert_eq!(display, per_kind, "{statuses:?}");
    // Counted: the metrics saw every one.
    let metrics = proxy.metrics().await;
    let unauthorized = sample(
        &metrics,
        "shouhu_requests_total{class=\"display\",outcome=\"unauthorized\"}",
    )
    .unwrap();
    assert!(unauthorized >= per_kind as f64, "{unauthorized}");

    // Not logged: a bounded number of lines, each JSON.
    let log = proxy.log();
    let lines: Vec<&str> = log.lines().collect();
    let added = lines.len() - before;
    eprintln!("{REFUSED} refused requests in {took:?}: {added} log lines");
    assert!(
        added < MAX_LINES,
        "{REFUSED} refused requests wrote {added} log lines:\n{}",
        lines[before..].join("\n")
    );
    let parsed: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}")))
        .collect();
    // The journal's refusals were logged once in a while, each line in its request's span.
    let journal: Vec<&Value> = parsed
        .iter()
        .filter(|v| {
            v["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("journal unavailable"))
        })
        .collect();
    assert!(!journal.is_empty(), "no journal line:\n{log}");
    for line in journal {
        let id = line["span"]["request_id"].as_str().unwrap_or_default();
        let i: usize = id
            .strip_prefix("burst-")
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("journal line without a burst request id: {line}"));
        assert_eq!(
            i % 4,
            1,
            "the line names a request that was no declaration: {line}"
        );
        assert!(line["suppressed"].is_u64(), "{line}");
    }
}
