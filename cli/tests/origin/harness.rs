//! Starting the real `shouhu origin` process on ephemeral ports, and a citizen's HTTP calls.
//! The process prints `listening citizen=URL admin=URL health=URL police=URL carrier=URL` on
//! stdout; the harness sends stdout to a file in the data dir and polls it.
#![allow(
    dead_code,
    reason = "each test file uses a different part of the harness"
)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use shouhu_testkit::{ChildProcess, wait_until};

/// How long start-up may take.
pub const START: Duration = Duration::from_secs(20);
/// How long a change at a source may take to reach the code (the bound is 2 s).
pub const RESET: Duration = Duration::from_secs(5);

/// A running origin.
pub struct OriginProc {
    pub process: ChildProcess,
    pub citizen: String,
    pub admin: String,
    pub health: String,
    pub police: String,
    pub carrier: String,
    pub dir: tempfile::TempDir,
}

/// Reads `key=value` pairs from the `listening` line of a stdout file.
pub fn listening(path: &Path, timeout: Duration) -> Option<Vec<(String, String)>> {
    let mut found = None;
    wait_until(timeout, || {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if let Some(line) = text.lines().find(|l| l.starts_with("listening ")) {
            found = Some(
                line.split_whitespace()
                    .skip(1)
                    .filter_map(|kv| kv.split_once('='))
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect(),
            );
            true
        } else {
            false
        }
    });
    found
}

impl OriginProc {
    /// Starts `shouhu origin` with a fresh data dir, an optional config file body and extra
    /// flags.
    pub fn start(config: Option<&str>, extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let stdout_path = dir.path().join("stdout.txt");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_shouhu"));
        cmd.arg("origin")
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::from(std::fs::File::create(&stdout_path).unwrap()));
        if let Some(text) = config {
            let path = dir.path().join("origin.toml");
            std::fs::write(&path, text).unwrap();
            cmd.arg("--config").arg(path);
        }
        let process = ChildProcess::spawn("shouhu origin", cmd).unwrap();
        let Some(pairs) = listening(&stdout_path, START) else {
            panic!("shouhu origin printed no listening line within {START:?}");
        };
        let get = |k: &str| {
            pairs
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.clone())
                .unwrap()
        };
        Self {
            citizen: get("citizen"),
            admin: get("admin"),
            health: get("health"),
            police: get("police"),
            carrier: get("carrier"),
            process,
            dir,
        }
    }

    /// The data dir.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// A citizen client of this origin.
    pub fn citizen(&self) -> Citizen {
        Citizen {
            http: client(),
            base: self.citizen.clone(),
            token: None,
        }
    }

    /// Clears a person's facts at all three sources (seeded data may hold a risk).
    pub async fn reset(&self, subject: &str) {
        for source in [&self.health, &self.police, &self.carrier] {
            let status = client()
                .post(format!("{source}/admin/subjects/{subject}"))
                .json(&json!({"op": "reset"}))
                .send()
                .await
                .unwrap()
                .status();
            assert_eq!(status, 200);
        }
    }

    /// Applies an op at a source (`health`, `police`, `carrier`).
    pub async fn source_op(&self, source: &str, subject: &str, op: Value) {
        let base = match source {
            "health" => &self.health,
            "police" => &self.police,
            _ => &self.carrier,
        };
        let response = client()
            .post(format!("{base}/admin/subjects/{subject}"))
            .json(&op)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    }

    /// POSTs JSON to the admin port.
    pub async fn admin(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let response = client()
            .request(method, format!("{}{path}", self.admin))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// GB 11643: a valid ID number from a region, a birth date and a sequence number.
pub fn id_number(region: &str, birth: &str, seq: &str) -> String {
    shouhu_loadtest::stack::id_number(region, birth, seq)
}

/// A citizen's calls.
pub struct Citizen {
    pub http: reqwest::Client,
    pub base: String,
    pub token: Option<String>,
}

impl Citizen {
    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let mut req = self.http.post(format!("{}{path}", self.base)).json(&body);
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let mut req = self.http.get(format!("{}{path}", self.base));
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Registers and logs in; returns the subject.
    pub async fn sign_up(&mut self, id: &str, phone: &str) -> String {
        let (status, body) = self
            .post(
                "/api/register",
                json!({"name": "张三", "id_number": id, "phone": phone, "address": "济南市历下区"}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        let subject = body["subject"].as_str().unwrap().to_owned();
        let (status, body) = self
            .post("/api/login", json!({"id_number": id, "phone": phone}))
            .await;
        assert_eq!(status, 200, "{body}");
        self.token = Some(body["token"].as_str().unwrap().to_owned());
        subject
    }

    pub async fn declare(&self, key: &str, body: Value) -> (u16, String) {
        let mut req = self
            .http
            .post(format!("{}/api/declare", self.base))
            .header("Idempotency-Key", key)
            .json(&body);
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        let r = req.send().await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    /// Polls the code until it has `expected` colour (a change at a source reaches the origin
    /// through its change feed, within a second); the last colour seen.
    pub async fn wait_colour(&self, expected: &str, timeout: Duration) -> String {
        let started = std::time::Instant::now();
        loop {
            let colour = self.colour().await;
            if colour == expected || started.elapsed() > timeout {
                return colour;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn colour(&self) -> String {
        let (status, body) = self.get("/api/code").await;
        assert_eq!(status, 200, "{body}");
        body["colour"].as_str().unwrap().to_owned()
    }
}
