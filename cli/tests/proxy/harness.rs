//! Starting the real `shouhu proxy` in front of a real `shouhu origin` and a private
//! `redis-server`, on ephemeral ports; a citizen's calls through the proxy, with the headers
//! and timings the tests assert on. The proxy prints `listening http://ADDR admin http://ADDR`
//! on stdout; the harness sends stdout to a file and polls it.
#![allow(
    dead_code,
    reason = "each test file uses a different part of the harness"
)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use shouhu_code::{Claims, TrustList, VerifyPolicy};
use shouhu_testkit::{ChildProcess, RedisServer, wait_until};

use super::harness::{OriginProc, START, client, id_number};

/// A running proxy.
pub struct ProxyProc {
    pub process: ChildProcess,
    pub base: String,
    pub admin: String,
    pub dir: tempfile::TempDir,
}

/// The `listening http://A admin http://B` line of a stdout file.
fn listening(path: &Path, timeout: Duration) -> Option<(String, String)> {
    let mut found = None;
    wait_until(timeout, || {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let line = text.lines().find(|l| l.starts_with("listening "));
        if let Some(line) = line {
            let words: Vec<&str> = line.split_whitespace().collect();
            if let [_, base, "admin", admin] = words[..] {
                found = Some((base.to_owned(), admin.to_owned()));
            }
        }
        found.is_some()
    });
    found
}

impl ProxyProc {
    /// Starts `shouhu proxy --origin URL [--redis URL]` with a fresh data dir, an optional
    /// config file body and extra flags.
    pub fn start(origin: &str, redis: Option<&str>, config: Option<&str>) -> Self {
        Self::start_with_env(origin, redis, config, &[])
    }

    /// What the proxy logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr.txt")).unwrap_or_default()
    }

    /// The config file the proxy was started with (for tests that rewrite it).
    pub fn config_path(&self) -> std::path::PathBuf {
        self.dir.path().join("proxy.toml")
    }

    /// Sends `SIGHUP` (reload the config).
    pub fn hangup(&self) {
        let pid = self.process.pid().unwrap();
        let status = Command::new("kill")
            .args(["-HUP", &pid.to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// `GET {admin}/status`.
    pub async fn status(&self) -> Value {
        client()
            .get(format!("{}/status", self.admin))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// The trust list the proxy publishes (origin keys and its fallback keys).
    pub async fn trust_list(&self) -> TrustList {
        let text = client()
            .get(format!("{}/.well-known/shouhu/trust-list.json", self.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        TrustList::from_json("proxy trust list", &text).unwrap()
    }

    /// `/metrics` text.
    pub async fn metrics(&self) -> String {
        client()
            .get(format!("{}/metrics", self.admin))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }
}

/// Redis, the origin publishing to it, and the proxy in front.
pub struct Stack {
    pub redis: RedisServer,
    pub origin: OriginProc,
    pub proxy: ProxyProc,
}

impl Stack {
    pub fn start() -> Self {
        Self::start_with(None)
    }

    /// With a proxy config file.
    pub fn start_with(proxy_config: Option<&str>) -> Self {
        let redis = RedisServer::start();
        let origin = OriginProc::start(None, &["--redis", &redis.url()]);
        let proxy = ProxyProc::start(&origin.citizen, Some(&redis.url()), proxy_config);
        Self {
            redis,
            origin,
            proxy,
        }
    }
}

/// One answer seen by a citizen.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub source: String,
    pub retry_after: Option<String>,
    pub body: String,
    pub took: Duration,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

/// A citizen talking to the proxy.
#[derive(Clone)]
pub struct Person {
    pub http: reqwest::Client,
    pub base: String,
    pub token: String,
    pub subject: String,
}

/// A valid ID number and phone for person `n`.
pub fn identity_of(n: u32) -> (String, String) {
    (
        id_number("370102", "19900101", &format!("{:03}", n % 1000)),
        format!("139{:08}", n),
    )
}

/// Registers and logs in through the proxy (anonymous pass-through routes).
pub async fn sign_up(base: &str, n: u32) -> Person {
    let http = client();
    let (id, phone) = identity_of(n);
    let r = http
        .post(format!("{base}/api/register"))
        .json(&json!({"name": "张三", "id_number": id, "phone": phone, "address": "济南市历下区"}))
        .send()
        .await
        .unwrap();
    assert!(
        r.status() == 201 || r.status() == 200,
        "register: {}",
        r.status()
    );
    assert_eq!(r.headers()["x-shouhu-source"], "origin");
    let subject = r.json::<Value>().await.unwrap()["subject"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = http
        .post(format!("{base}/api/login"))
        .json(&json!({"id_number": id, "phone": phone}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let token = r.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    Person {
        http,
        base: base.to_owned(),
        token,
        subject,
    }
}

impl Person {
    /// `GET path` with the session token.
    pub async fn get(&self, path: &str) -> Answer {
        get_with(
            &self.http,
            &format!("{}{path}", self.base),
            Some(&self.token),
        )
        .await
    }
}

/// `GET url` with an optional bearer token; never panics on a status.
pub async fn get_with(http: &reqwest::Client, url: &str, token: Option<&str>) -> Answer {
    let started = Instant::now();
    let mut req = http.get(url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.send().await.unwrap();
    let header = |name: &str| {
        r.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let status = r.status().as_u16();
    let source = header("x-shouhu-source").unwrap_or_default();
    let retry_after = header("retry-after");
    let body = r.text().await.unwrap();
    Answer {
        status,
        source,
        retry_after,
        body,
        took: started.elapsed(),
    }
}

/// Verifies the `code` of a `/api/code` answer with `trust`; its claims.
pub fn verified_claims(answer: &Answer, trust: &TrustList) -> Claims {
    let code = answer.json()["code"].as_str().unwrap().to_owned();
    shouhu_code::verify(
        &code,
        trust,
        shouhu_code::time::now(),
        &VerifyPolicy::default(),
    )
    .unwrap_or_else(|e| panic!("code does not verify: {e}; answer {answer:?}"))
    .claims
}

/// `GET {admin}/readyz` of a proxy: status and body.
pub async fn readyz(proxy: &ProxyProc) -> (u16, Value) {
    let r = client()
        .get(format!("{}/readyz", proxy.admin))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// Polls the proxy's `/readyz` until its `redis` field says `state`; whether it did within
/// `timeout`.
pub async fn wait_for_redis_state(proxy: &ProxyProc, state: &str, timeout: Duration) -> bool {
    let started = Instant::now();
    loop {
        let (status, body) = readyz(proxy).await;
        if status == 200 && body["redis"] == state {
            return true;
        }
        if started.elapsed() > timeout {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The test's own connection to a stack's snapshot.
pub async fn snapshot_of(redis: &RedisServer) -> shouhu_fallback::SnapshotStore {
    let urls: shouhu_config::RedisUrls = redis.url().parse().unwrap();
    shouhu_fallback::SnapshotStore::connect(&urls, None, shouhu_fallback::StoreOptions::default())
        .await
        .unwrap()
}

/// Polls the snapshot until `subject`'s record shows `colour`; how long that took, or `None`
/// if it did not within `timeout`.
pub async fn wait_for_record(
    store: &shouhu_fallback::SnapshotStore,
    subject: &str,
    colour: shouhu_code::Colour,
    timeout: Duration,
) -> Option<Duration> {
    let subject: shouhu_code::SubjectId = subject.parse().unwrap();
    let started = Instant::now();
    while started.elapsed() < timeout {
        if let Ok(lookup) = store.get(&subject).await
            && lookup.record.as_ref().is_some_and(|r| r.colour == colour)
        {
            return Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    None
}

/// Signs up person `n` through the proxy, clears their facts at the three sources (seeded
/// data may hold a risk), and waits until the origin, asked directly so that the proxy's
/// cache stays empty, shows green and the green record is in the snapshot.
pub async fn green_in_snapshot(
    stack: &Stack,
    store: &shouhu_fallback::SnapshotStore,
    n: u32,
) -> Person {
    let person = sign_up(&stack.proxy.base, n).await;
    stack.origin.reset(&person.subject).await;
    let direct = super::harness::Citizen {
        http: client(),
        base: stack.origin.citizen.clone(),
        token: Some(person.token.clone()),
    };
    assert_eq!(
        direct.wait_colour("green", super::harness::RESET).await,
        "green",
        "person {n} is not green at the origin after a reset"
    );
    assert!(
        wait_for_record(
            store,
            &person.subject,
            shouhu_code::Colour::Green,
            Duration::from_secs(10)
        )
        .await
        .is_some(),
        "the green record of person {n} never reached Redis"
    );
    person
}

/// The `colour` field of a `/api/code` answer (`""` if it has none).
pub fn colour_of(answer: &Answer) -> String {
    answer.json()["colour"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// The `code` field of a `/api/code` answer (`""` if it has none).
pub fn code_of(answer: &Answer) -> String {
    answer.json()["code"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// Polls the proxy's `/status` until its cache holds at most `entries` codes; whether it did
/// within `timeout`.
pub async fn wait_for_cache_entries(proxy: &ProxyProc, entries: u64, timeout: Duration) -> bool {
    let started = Instant::now();
    loop {
        if proxy.status().await["cache_entries"]
            .as_u64()
            .is_some_and(|n| n <= entries)
        {
            return true;
        }
        if started.elapsed() > timeout {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

impl ProxyProc {
    /// Like [`ProxyProc::start`], with extra environment variables set after `RUST_LOG=warn`
    /// (so `RUST_LOG` may be replaced).
    pub fn start_with_env(
        origin: &str,
        redis: Option<&str>,
        config: Option<&str>,
        env: &[(&str, &str)],
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let stdout_path = dir.path().join("stdout.txt");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_shouhu"));
        cmd.arg("proxy")
            .args(["--origin", origin])
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
            .env("RUST_LOG", "warn")
            .envs(env.iter().copied())
            .stdout(Stdio::from(std::fs::File::create(&stdout_path).unwrap()))
            .stderr(Stdio::from(
                std::fs::File::create(dir.path().join("stderr.txt")).unwrap(),
            ));
        if let Some(redis) = redis {
            cmd.args(["--redis", redis]);
        }
        if let Some(text) = config {
            let path = dir.path().join("proxy.toml");
            std::fs::write(&path, text).unwrap();
            cmd.arg("--config").arg(path);
        }
        let process = ChildProcess::spawn("shouhu proxy", cmd).unwrap();
        let Some((base, admin)) = listening(&stdout_path, START) else {
            panic!("shouhu proxy printed no listening line within {START:?}");
        };
        Self {
            process,
            base,
            admin,
            dir,
        }
    }
}

/// The value of the sample `series` (name and labels exactly as exposed, e.g.
/// `shouhu_cache_hits_total` or `shouhu_requests_total{class="display",outcome="origin"}`) in a
/// Prometheus text exposition, if present.
pub fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

/// `GET url` as text (a `/metrics` of any process).
pub async fn scrape(url: &str) -> String {
    client()
        .get(url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// Headless Chromium for the page tests: no sandbox (root), no network beyond loopback, no
/// first-run or background work. Add `--user-data-dir`, a window size and the page.
pub const CHROMIUM_FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--no-proxy-server",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
];
