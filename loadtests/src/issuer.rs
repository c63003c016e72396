//! `shouhu issuer`, the stateless fallback issuer, as the nginx variant's backup upstream: it
//! signs codes from the Redis snapshot the origin publishes, and reads the citizen's session
//! token from `Authorization: Bearer` as the origin does (`shouhu_fallback::session`), so
//! nginx forwards the request unchanged.
//!
//! [`IssuerProc::start`] writes the origin's session public key and a config into a data dir,
//! starts the binary with its output in files there, and returns once `/readyz` answers 200
//! (Redis connected). On first start the issuer generates its own fallback signing key in
//! `{dir}/keys`; its trust list ([`IssuerProc::trust_list_url`]) is how a verifier learns it.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use shouhu_config::IssuerConfig;
use shouhu_testkit::{ChildProcess, free_port, wait_until};

use crate::stack::{create, log_tail};

/// Region in the claims of the issued codes; the reference origin's default.
const REGION: &str = "370000";
/// Lifetime of a fallback code.
const CODE_TTL: &str = "5m";
/// Snapshot watermark age beyond which the issuer issues no green.
const MAX_SNAPSHOT_AGE: &str = "15m";
/// How long the issuer may take to connect to Redis and answer `/readyz`.
const READY_DEADLINE: Duration = Duration::from_secs(20);
/// How long it gets to exit on SIGTERM before it is killed.
const STOP_DEADLINE: Duration = Duration::from_secs(5);
/// The trust list's path on the public listener.
const TRUST_LIST_PATH: &str = "/.well-known/shouhu/trust-list.json";

/// A running `shouhu issuer`, stopped (SIGTERM, then SIGKILL) when dropped.
#[derive(Debug)]
pub struct IssuerProc {
    /// `http://127.0.0.1:PORT`, the public listener (`/api/code`, `/api/verify`, trust list).
    pub base: String,
    /// `http://127.0.0.1:PORT`, the admin listener (`/readyz`, `/metrics`).
    pub admin: String,
    /// The public listener's address, for nginx's `upstream` block.
    pub addr: SocketAddr,
    process: ChildProcess,
    dir: PathBuf,
}

impl IssuerProc {
    /// Starts `shouhu` (the binary at `shouhu`) as `shouhu issuer` with `dir` as its data dir,
    /// reading the snapshot from `redis_url` and identifying citizens with
    /// `session_key_json`, the JSON the origin serves at `/.well-known/shouhu/session-key`.
    ///
    /// # Errors
    /// The files cannot be written, the config is refused, the binary does not start, or the
    /// issuer exits or is not ready (Redis connected) within 20 s; the message then carries
    /// the end of its log.
    pub fn start(
        shouhu: &Path,
        dir: &Path,
        redis_url: &str,
        session_key_json: &str,
    ) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir).with_context(|| format!("{}: creating", dir.display()))?;
        let key_file = dir.join(shouhu_config::issuer::DEFAULT_SESSION_KEY_FILE_NAME);
        std::fs::write(&key_file, session_key_json)
            .with_context(|| format!("{}: writing", key_file.display()))?;
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()));
        let admin_addr = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()));
        let config_file = dir.join("issuer.toml");
        let text = config_text(dir, redis_url, addr, admin_addr)?;
        std::fs::write(&config_file, text)
            .with_context(|| format!("{}: writing", config_file.display()))?;

        let stdout = dir.join("issuer.out");
        let stderr = dir.join("issuer.err");
        let mut command = crate::stack::niced(shouhu);
        command
            .arg("issuer")
            .arg("--config")
            .arg(&config_file)
            .env("RUST_LOG", "warn")
            .stdout(create(&stdout)?)
            .stderr(create(&stderr)?);
        let mut process = ChildProcess::spawn("shouhu issuer", command)
            .with_context(|| format!("{}: cannot start", shouhu.display()))?;

        let mut exited = false;
        let ready = wait_until(READY_DEADLINE, || {
            exited = !process.is_running();
            exited || is_ready(admin_addr)
        });
        if exited || !ready {
            let why = if exited {
                "exited".to_owned()
            } else {
                format!("not ready (GET /readyz on {admin_addr}) within {READY_DEADLINE:?}")
            };
            bail!(
                "shouhu issuer {why}; {}:\n{}",
                stderr.display(),
                log_tail(&stderr)
            );
        }
        Ok(Self {
            base: format!("http://{addr}"),
            admin: format!("http://{admin_addr}"),
            addr,
            process,
            dir: dir.to_owned(),
        })
    }

    /// The process id, while it runs.
    #[must_use]
    pub fn pid(&self) -> Option<u32> {
        self.process.pid()
    }

    /// Where the issuer serves its trust list (its own fallback key among them).
    #[must_use]
    pub fn trust_list_url(&self) -> String {
        format!("{}{TRUST_LIST_PATH}", self.base)
    }

    /// The data dir: config, session key, generated keys and the logs
    /// (`issuer.out`, `issuer.err`).
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for IssuerProc {
    fn drop(&mut self) {
        // SIGTERM lets it finish its requests; the handle kills it after the deadline.
        self.process.terminate(STOP_DEADLINE);
    }
}

/// The issuer config, built as the typed struct and checked with the issuer's own rules, so
/// a bad value fails here with its field path rather than in the child's log.
fn config_text(
    dir: &Path,
    redis_url: &str,
    listen: SocketAddr,
    admin_listen: SocketAddr,
) -> anyhow::Result<String> {
    let mut config = IssuerConfig {
        data_dir: dir.to_owned(),
        redis: Some(
            redis_url
                .parse()
                .with_context(|| format!("redis: {redis_url:?}"))?,
        ),
        region: REGION.parse().context("region")?,
        code_ttl: CODE_TTL.parse().context("code_ttl")?,
        max_snapshot_age: MAX_SNAPSHOT_AGE.parse().context("max_snapshot_age")?,
        ..IssuerConfig::default()
    };
    config.server.listen = listen;
    config.server.admin_listen = admin_listen;
    config.validate("issuer.toml")?;
    toml::to_string(&config).context("issuer.toml: serialising")
}

/// `GET /readyz` answers 200. A plain socket: callers may be inside a runtime.
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

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

    use super::*;

    /// RFC 8032 test vector 1's public key, as the origin's well-known JSON: the issuer only
    /// needs a valid key to start; no token in this test is signed with it.
    const SESSION_KEY_JSON: &str =
        r#"{"alg":"EdDSA","public_key":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}"#;

    /// The `shouhu` binary: `SHOUHU_BIN`, else next to this test's own target dir
    /// (`target/debug/shouhu`, wherever `CARGO_TARGET_DIR` put it), else the workspace's.
    /// Another package's binary is not built for this crate's tests.
    fn shouhu_bin() -> PathBuf {
        if let Some(bin) = std::env::var_os("SHOUHU_BIN") {
            return PathBuf::from(bin);
        }
        let exe = std::env::current_exe().unwrap();
        // target/debug/deps/shouhu_loadtest-HASH -> target/debug/shouhu
        let beside = exe
            .parent()
            .and_then(Path::parent)
            .map(|profile| profile.join("shouhu"));
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/debug/shouhu");
        let found = beside.into_iter().chain([workspace]).find(|p| p.is_file());
        found.expect(
            "no shouhu binary next to this test or in target/debug: run `cargo build -p shouhu` \
             first (with the same CARGO_TARGET_DIR), or set SHOUHU_BIN",
        )
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn the_issuer_starts_serves_its_trust_list_and_reads_bearer_tokens() {
        let shouhu = shouhu_bin();
        let redis = shouhu_testkit::RedisServer::start();
        let dir = tempfile::tempdir().unwrap();
        let issuer = {
            let (shouhu, dir, url) = (shouhu.clone(), dir.path().to_owned(), redis.url());
            tokio::task::spawn_blocking(move || {
                IssuerProc::start(&shouhu, &dir, &url, SESSION_KEY_JSON)
            })
            .await
            .unwrap()
            .unwrap()
        };
        assert!(issuer.pid().is_some());
        let client = reqwest::Client::new();

        let ready = client
            .get(format!("{}/readyz", issuer.admin))
            .send()
            .await
            .unwrap();
        assert_eq!(ready.status(), 200);

        // Its trust list holds the fallback key it generated for the region.
        let text = client
            .get(issuer.trust_list_url())
            .send()
            .await
            .unwrap()
            .error_for_status()
            .unwrap()
            .text()
            .await
            .unwrap();
        let list = shouhu_code::TrustList::from_json("trust-list.json", &text).unwrap();
        assert!(!list.keys().is_empty(), "empty trust list: {text}");
        assert!(
            text.contains(REGION),
            "trust list without region {REGION}: {text}"
        );

        // It reads the session token from `Authorization: Bearer`: none is "missing", a
        // forged one is "invalid" (a distinct refusal means the header was read).
        let code = format!("{}/api/code", issuer.base);
        let missing = client.get(&code).send().await.unwrap();
        assert_eq!(missing.status(), 401);
        let missing: serde_json::Value = missing.json().await.unwrap();
        let forged = client
            .get(&code)
            .bearer_auth("not.a.token")
            .send()
            .await
            .unwrap();
        assert_eq!(forged.status(), 401);
        let forged: serde_json::Value = forged.json().await.unwrap();
        assert_eq!(missing["error"], "missing_token", "{missing}");
        assert_eq!(forged["error"], "invalid_token", "{forged}");
        drop(issuer);
    }
}
