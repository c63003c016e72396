//! The nginx variant: nginx 1.22 configured as a competent SRE would (overload.md §7.3), from
//! the template `loadtests/nginx/healthcode.conf.in`, with `shouhu issuer` as the backup
//! upstream for codes and scans.
//!
//! [`NginxParams::tuned`] derives the template's numbers from the origin's measured capacity
//! and knee ("How the numbers are derived"); [`render`] fills the template; [`NginxProc`]
//! runs `nginx -t`, then nginx in the foreground with everything in a prefix dir, and stops
//! master and its children when dropped.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};
use shouhu_testkit::{ChildProcess, free_port, wait_until};

use crate::stack::{create, log_tail};

/// The template, `loadtests/nginx/healthcode.conf.in`.
pub const TEMPLATE: &str = include_str!("../nginx/healthcode.conf.in");

/// Share of the origin's capacity the global budget admits; the rest covers background
/// refreshes and measurement error.
pub const BUDGET_SHARE: f64 = 0.9;
/// How long the global budget's FIFO queue may hold a request (burst = this x rate).
pub const QUEUE_SECS: f64 = 0.1;
/// Per-user cache TTL: a code is served fresh this long, then stale while refreshed.
pub const CACHE_TTL: Duration = Duration::from_secs(30);
/// Per-IP rate out of the benchmark's reach: its generator is one address.
pub const PER_IP_RATE_OUT_OF_REACH: u32 = 100_000;
/// Per-IP burst, in seconds of the per-IP rate (§7.3: 20 r/s, burst 40).
const PER_IP_BURST_SECS: u32 = 2;
/// How long nginx may take to listen.
const START_DEADLINE: Duration = Duration::from_secs(10);
/// How long nginx may take to stop on SIGTERM (master and children) before they are killed.
const STOP_DEADLINE: Duration = Duration::from_secs(5);
/// Where Debian installs nginx, outside a non-root user's PATH.
const DEBIAN_NGINX: &str = "/usr/sbin/nginx";
/// The rendered config's file name in the prefix dir.
const CONF_NAME: &str = "nginx.conf";
/// nginx's own log: startup errors before the config is read, and `error_log`.
const ERROR_LOG: &str = "error.log";
/// The master's standard error.
const STDERR_LOG: &str = "nginx.stderr";

/// What the nginx variant is tuned from, and where it listens.
#[derive(Clone, Debug, PartialEq)]
pub struct NginxParams {
    /// The edge tier: what the generator talks to.
    pub edge_port: u16,
    /// The shield tier: only the edge's misses and refreshes.
    pub shield_port: u16,
    /// The origin.
    pub origin: SocketAddr,
    /// The backup for codes and scans (`shouhu issuer`).
    pub backup: SocketAddr,
    /// The origin's measured peak throughput, requests per second (C).
    pub capacity_rps: f64,
    /// Requests in service at the peak (Little's law: C x latency at the knee).
    pub knee: f64,
    /// Per-user cache TTL for `/api/code`.
    pub cache_ttl: Duration,
    /// Per-IP request rate, per second.
    pub per_ip_rate: u32,
}

impl NginxParams {
    /// Free ports, and the SRE's defaults for an origin of capacity `capacity_rps` and knee
    /// `knee`: cache TTL [`CACHE_TTL`], per-IP rate [`PER_IP_RATE_OUT_OF_REACH`].
    #[must_use]
    pub fn tuned(origin: SocketAddr, backup: SocketAddr, capacity_rps: f64, knee: f64) -> Self {
        let edge_port = free_port();
        let mut shield_port = free_port();
        while shield_port == edge_port {
            shield_port = free_port();
        }
        Self {
            edge_port,
            shield_port,
            origin,
            backup,
            capacity_rps,
            knee,
            cache_ttl: CACHE_TTL,
            per_ip_rate: PER_IP_RATE_OUT_OF_REACH,
        }
    }

    /// The global origin budget, requests per second: 0.9 x capacity, at least 1.
    #[must_use]
    pub fn global_rate(&self) -> u32 {
        round_at_least_1(BUDGET_SHARE * self.capacity_rps)
    }

    /// The budget's queue: 0.1 s of the global rate, at least 1.
    #[must_use]
    pub fn global_burst(&self) -> u32 {
        round_at_least_1(QUEUE_SECS * f64::from(self.global_rate()))
    }

    /// The origin's concurrency cap: the knee, rounded, at least 1.
    #[must_use]
    pub fn max_conns(&self) -> u32 {
        round_at_least_1(self.knee)
    }

    /// The backup's concurrency cap: twice the origin's, as §7.3 (10 and 20).
    #[must_use]
    pub fn backup_max_conns(&self) -> u32 {
        self.max_conns().saturating_mul(2)
    }

    /// The per-IP burst: 2 s of the per-IP rate, as §7.3 (20 r/s, burst 40).
    #[must_use]
    pub fn per_ip_burst(&self) -> u32 {
        self.per_ip_rate.saturating_mul(PER_IP_BURST_SECS)
    }

    /// The edge's base URL, `http://127.0.0.1:EDGE`.
    #[must_use]
    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.edge_port)
    }

    /// Every bad value, as `name: rule (got value)`.
    fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.edge_port == 0 || self.shield_port == 0 || self.edge_port == self.shield_port {
            problems.push(format!(
                "edge_port, shield_port: must be distinct and non-zero (got {} and {})",
                self.edge_port, self.shield_port
            ));
        }
        if !(self.capacity_rps.is_finite() && self.capacity_rps > 0.0) {
            problems.push(format!(
                "capacity_rps: must be > 0 (got {})",
                self.capacity_rps
            ));
        }
        if !(self.knee.is_finite() && self.knee > 0.0) {
            problems.push(format!("knee: must be > 0 (got {})", self.knee));
        }
        if self.cache_ttl.is_zero() {
            problems.push("cache_ttl: must be > 0 (got 0s)".to_owned());
        }
        if self.per_ip_rate == 0 {
            problems.push("per_ip_rate: must be >= 1 (got 0)".to_owned());
        }
        problems
    }
}

/// `x` rounded, at least 1 (and at most `u32::MAX`).
fn round_at_least_1(x: f64) -> u32 {
    if x.is_nan() || x < 1.0 {
        1
    } else if x >= f64::from(u32::MAX) {
        u32::MAX
    } else {
        // In range: 1 <= x < u32::MAX.
        x.round() as u32
    }
}

/// A duration in nginx's syntax: whole seconds as `30s`, else milliseconds.
fn nginx_time(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// The template with every placeholder filled in for `p`, with every path below `prefix`.
///
/// # Errors
/// A bad parameter (each named with its value), a prefix nginx cannot quote, the current
/// user unknown (`id`), or a placeholder left unfilled (named).
pub fn render(template: &str, prefix: &Path, p: &NginxParams) -> anyhow::Result<String> {
    let mut problems = p.problems();
    let prefix_text = prefix.to_str().unwrap_or_default();
    if prefix_text.is_empty() || prefix_text.contains(['"', '\\', '$', '\n']) {
        problems.push(format!(
            "prefix: must be UTF-8 without '\"', '\\', '$' or newlines (got {})",
            prefix.display()
        ));
    }
    if !problems.is_empty() {
        bail!("nginx params: {}", problems.join("; "));
    }
    let (user, group) = current_user()?;
    let values: [(&str, String); 14] = [
        ("PREFIX", prefix_text.to_owned()),
        ("USER", user),
        ("GROUP", group),
        ("EDGE_PORT", p.edge_port.to_string()),
        ("SHIELD_PORT", p.shield_port.to_string()),
        ("ORIGIN", p.origin.to_string()),
        ("BACKUP", p.backup.to_string()),
        ("MAX_CONNS", p.max_conns().to_string()),
        ("BACKUP_MAX_CONNS", p.backup_max_conns().to_string()),
        ("GLOBAL_RATE", p.global_rate().to_string()),
        ("GLOBAL_BURST", p.global_burst().to_string()),
        ("CACHE_TTL", nginx_time(p.cache_ttl)),
        ("PER_IP_RATE", p.per_ip_rate.to_string()),
        ("PER_IP_BURST", p.per_ip_burst().to_string()),
    ];
    let mut text = template.to_owned();
    for (name, value) in &values {
        text = text.replace(&format!("@{name}@"), value);
    }
    let left = placeholders(&text);
    if !left.is_empty() {
        bail!(
            "nginx template: placeholders left unfilled: {}",
            left.join(", ")
        );
    }
    Ok(text)
}

/// Every `@NAME@` (capitals, digits, `_`) in `text`, once each, in order.
fn placeholders(text: &str) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find('@') {
        let after = &rest[start + 1..];
        let name_len = after
            .find(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
            .unwrap_or(after.len());
        if name_len > 0 && after[name_len..].starts_with('@') {
            let name = &after[..name_len];
            if !found.iter().any(|f| f == name) {
                found.push(name.to_owned());
            }
            rest = &after[name_len + 1..];
        } else {
            rest = after;
        }
    }
    found
}

/// The user and group nginx's workers run as: this process's, so they can write the cache
/// in the prefix dir (as root, nginx would otherwise switch to "nobody").
fn current_user() -> anyhow::Result<(String, String)> {
    let id = |flag: &str| -> anyhow::Result<String> {
        let out = Command::new("id")
            .arg(flag)
            .output()
            .with_context(|| format!("running `id {flag}`"))?;
        let name = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        if !out.status.success() || name.is_empty() {
            bail!(
                "`id {flag}` failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(name)
    };
    Ok((id("-un")?, id("-gn")?))
}

/// The nginx binary: `nginx` on `PATH`, else Debian's `/usr/sbin/nginx`.
///
/// # Errors
/// Neither exists.
pub fn find_nginx() -> anyhow::Result<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .map(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join("nginx"))
                .find(|p| p.is_file())
        })
        .unwrap_or_default();
    on_path
        .or_else(|| Some(PathBuf::from(DEBIAN_NGINX)).filter(|p| p.is_file()))
        .context("nginx not found: install Debian's nginx (apt-get install nginx)")
}

/// Creates the prefix dir's layout (temp dirs, cache) and writes the rendered config.
/// Returns the config's path.
///
/// # Errors
/// [`render`] fails, or a dir or the file cannot be written.
pub fn prepare(prefix: &Path, p: &NginxParams) -> anyhow::Result<PathBuf> {
    for dir in [
        "cache",
        "tmp/client_body",
        "tmp/proxy",
        "tmp/fastcgi",
        "tmp/uwsgi",
        "tmp/scgi",
    ] {
        let dir = prefix.join(dir);
        std::fs::create_dir_all(&dir).with_context(|| format!("{}: creating", dir.display()))?;
    }
    let conf = prefix.join(CONF_NAME);
    std::fs::write(&conf, render(TEMPLATE, prefix, p)?)
        .with_context(|| format!("{}: writing", conf.display()))?;
    Ok(conf)
}

/// Runs `nginx -t` on `conf` and returns what it printed (it reports on standard error).
///
/// # Errors
/// nginx cannot run, or refuses the config; the message carries its output.
pub fn check(nginx: &Path, prefix: &Path, conf: &Path) -> anyhow::Result<String> {
    let out = Command::new(nginx)
        .arg("-t")
        .args(prefix_args(prefix, conf))
        .output()
        .with_context(|| format!("{}: cannot run", nginx.display()))?;
    let said = String::from_utf8_lossy(&out.stderr).into_owned();
    if !out.status.success() {
        bail!("nginx -t refused {}:\n{said}", conf.display());
    }
    Ok(said)
}

/// `-p PREFIX -c CONF -e PREFIX/error.log`: `-e` keeps nginx's start-up log out of /var.
fn prefix_args(prefix: &Path, conf: &Path) -> [std::ffi::OsString; 6] {
    [
        "-p".into(),
        prefix.into(),
        "-c".into(),
        conf.into(),
        "-e".into(),
        prefix.join(ERROR_LOG).into(),
    ]
}

/// A running nginx (master, one worker, the cache manager and loader), stopped when dropped:
/// SIGTERM to the master, which stops its children; after a deadline SIGKILL to the master
/// and to the children it had.
#[derive(Debug)]
pub struct NginxProc {
    /// `http://127.0.0.1:EDGE`, where the generator sends its requests.
    pub base: String,
    process: ChildProcess,
    prefix: PathBuf,
}

impl NginxProc {
    /// Renders the config into `prefix`, checks it with `nginx -t`, starts nginx in the
    /// foreground and waits until the edge and the shield listen.
    ///
    /// # Errors
    /// nginx is missing, the config is refused (with `nginx -t`'s output), or nginx exits or
    /// does not listen within 10 s (with the end of its log).
    pub fn start(prefix: &Path, p: &NginxParams) -> anyhow::Result<Self> {
        let nginx = find_nginx()?;
        let conf = prepare(prefix, p)?;
        check(&nginx, prefix, &conf)?;
        let stderr = prefix.join(STDERR_LOG);
        let mut command = crate::stack::niced(&nginx);
        command
            .args(prefix_args(prefix, &conf))
            .args(["-g", "daemon off;"])
            .stdout(create(&prefix.join("nginx.stdout"))?)
            .stderr(create(&stderr)?);
        let mut process = ChildProcess::spawn("nginx", command)
            .with_context(|| format!("{}: cannot start", nginx.display()))?;
        let ports = [
            SocketAddr::from(([127, 0, 0, 1], p.edge_port)),
            SocketAddr::from(([127, 0, 0, 1], p.shield_port)),
        ];
        let mut exited = false;
        let listening = wait_until(START_DEADLINE, || {
            exited = !process.is_running();
            exited || ports.iter().all(|a| accepts(*a))
        });
        if exited || !listening {
            let why = if exited {
                "exited".to_owned()
            } else {
                format!("did not listen on {ports:?} within {START_DEADLINE:?}")
            };
            bail!(
                "nginx {why}; {}:\n{}\n{}:\n{}",
                stderr.display(),
                log_tail(&stderr),
                prefix.join(ERROR_LOG).display(),
                log_tail(&prefix.join(ERROR_LOG))
            );
        }
        Ok(Self {
            base: p.base(),
            process,
            prefix: prefix.to_owned(),
        })
    }

    /// The master's process id, while it runs.
    #[must_use]
    pub fn pid(&self) -> Option<u32> {
        self.process.pid()
    }

    /// The prefix dir: config, logs, cache.
    #[must_use]
    pub fn prefix(&self) -> &Path {
        &self.prefix
    }
}

impl Drop for NginxProc {
    fn drop(&mut self) {
        // Note the children first (worker, cache manager, cache loader): if the master has to
        // be killed, they would live on.
        let children = self.pid().map(children).unwrap_or_default();
        if self.process.terminate(STOP_DEADLINE).is_none() {
            for child in children {
                child.kill_if_same();
            }
        }
    }
}

/// A process noted by id and start time, so a recycled id is never signalled.
#[derive(Debug)]
struct Noted {
    pid: u32,
    started: String,
}

impl Noted {
    fn kill_if_same(&self) {
        if start_time(self.pid).is_some_and(|s| s == self.started) {
            let _ = Command::new("kill")
                .args(["-KILL", &self.pid.to_string()])
                .status();
        }
    }
}

/// The direct children of `parent` (nginx's worker and cache processes), from `/proc`.
fn children(parent: u32) -> Vec<Noted> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let fields = stat_fields(&stat)?;
            let ppid = fields.first()?.parse::<u32>().ok()?;
            let started = fields.get(18)?.to_string();
            (ppid == parent).then_some(Noted { pid, started })
        })
        .collect()
}

/// `/proc/PID/stat`'s start time (field 22).
fn start_time(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    Some(stat_fields(&stat)?.get(18)?.to_string())
}

/// The fields of `/proc/PID/stat` after the command name (which may hold spaces), from
/// field 4 (the parent's id) on.
fn stat_fields(stat: &str) -> Option<Vec<&str>> {
    let (_, after_comm) = stat.rsplit_once(')')?;
    Some(after_comm.split_whitespace().skip(1).collect())
}

fn accepts(addr: SocketAddr) -> bool {
    std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok()
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used, reason = "tests")]

    use std::collections::HashMap;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    fn params(capacity_rps: f64, knee: f64) -> NginxParams {
        NginxParams::tuned(
            "127.0.0.1:9001".parse().unwrap(),
            "127.0.0.1:9002".parse().unwrap(),
            capacity_rps,
            knee,
        )
    }

    #[test]
    fn tuned_derives_the_numbers_of_section_7_3() {
        // §7.3's own example: C = 500, knee 10 -> 450 r/s, burst 45, max_conns 10 (backup 20).
        let p = params(500.0, 10.0);
        assert_ne!(p.edge_port, p.shield_port);
        assert_eq!(
            (p.global_rate(), p.global_burst(), p.max_conns()),
            (450, 45, 10)
        );
        assert_eq!(p.backup_max_conns(), 20);
        assert_eq!(p.cache_ttl, Duration::from_secs(30));
        assert_eq!((p.per_ip_rate, p.per_ip_burst()), (100_000, 200_000));
        // Rounding, and the floors of 1.
        let p = params(333.0, 10.6);
        assert_eq!(
            (p.global_rate(), p.global_burst(), p.max_conns()),
            (300, 30, 11)
        );
        let p = params(3.0, 0.2);
        assert_eq!(
            (p.global_rate(), p.global_burst(), p.max_conns()),
            (3, 1, 1)
        );
    }

    #[test]
    fn render_fills_every_placeholder_with_the_derived_numbers() {
        let prefix = Path::new("/tmp/shouhu-nginx-prefix");
        let mut p = params(500.0, 10.4);
        p.cache_ttl = Duration::from_millis(1500);
        let text = render(TEMPLATE, prefix, &p).unwrap();
        assert!(placeholders(&text).is_empty(), "{:?}", placeholders(&text));
        assert!(!placeholders(TEMPLATE).is_empty());
        for line in [
            "pid \"/tmp/shouhu-nginx-prefix/nginx.pid\";".to_owned(),
            "limit_req_zone $hc_global_key zone=to_origin:1m rate=450r/s;".to_owned(),
            "limit_req zone=to_origin burst=45;".to_owned(),
            "server 127.0.0.1:9001 max_conns=10 max_fails=3 fail_timeout=5s;".to_owned(),
            "server 127.0.0.1:9002 backup max_conns=20;".to_owned(),
            "proxy_cache_valid 200 1500ms;".to_owned(),
            "limit_req_zone $binary_remote_addr zone=per_ip:32m rate=100000r/s;".to_owned(),
            "limit_req zone=per_ip burst=200000 nodelay;".to_owned(),
            format!("listen 127.0.0.1:{} backlog=4096;", p.edge_port),
            format!("listen 127.0.0.1:{} backlog=4096;", p.shield_port),
        ] {
            assert!(text.contains(&line), "no `{line}` in:\n{text}");
        }
        // Only the backed-up upstream has the issuer in it.
        assert_eq!(text.matches("127.0.0.1:9002").count(), 1);
    }

    #[test]
    fn render_names_what_is_wrong() {
        let prefix = Path::new("/tmp/x");
        let err = render(
            "listen @EDGE_PORT@; @NOPE@ @busy",
            prefix,
            &params(500.0, 10.0),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("unfilled: NOPE"), "{err}");
        let mut p = params(0.0, f64::NAN);
        p.cache_ttl = Duration::ZERO;
        let err = render(TEMPLATE, Path::new("/tmp/a\"b"), &p)
            .unwrap_err()
            .to_string();
        for part in [
            "capacity_rps",
            "knee: must be > 0 (got NaN)",
            "cache_ttl",
            "prefix",
        ] {
            assert!(err.contains(part), "no {part} in {err}");
        }
    }

    #[test]
    fn nginx_accepts_the_rendered_config() {
        let nginx = find_nginx().unwrap();
        let prefix = tempfile::tempdir().unwrap();
        let conf = prepare(prefix.path(), &params(500.0, 10.0)).unwrap();
        let said = check(&nginx, prefix.path(), &conf).unwrap();
        assert!(said.contains("test is successful"), "{said}");
        assert!(!said.contains("[emerg]"), "{said}");
    }

    /// A tiny HTTP/1.1 upstream that answers every request with its `Authorization` header
    /// and a serial number, or 500 while `failing`; it counts what it saw per token.
    struct Upstream {
        addr: SocketAddr,
        failing: Arc<AtomicBool>,
        seen: Arc<Mutex<HashMap<String, usize>>>,
    }

    impl Upstream {
        async fn start() -> Self {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let upstream = Self {
                addr: listener.local_addr().unwrap(),
                failing: Arc::new(AtomicBool::new(false)),
                seen: Arc::new(Mutex::new(HashMap::new())),
            };
            let (failing, seen) = (upstream.failing.clone(), upstream.seen.clone());
            tokio::spawn(async move {
                while let Ok((stream, _)) = listener.accept().await {
                    tokio::spawn(serve(stream, failing.clone(), seen.clone()));
                }
            });
            upstream
        }

        fn seen(&self, token: &str) -> usize {
            self.seen.lock().unwrap().get(token).copied().unwrap_or(0)
        }
    }

    async fn serve(
        mut stream: tokio::net::TcpStream,
        failing: Arc<AtomicBool>,
        seen: Arc<Mutex<HashMap<String, usize>>>,
    ) {
        let mut buf = Vec::new();
        loop {
            let head_end = loop {
                if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    break i + 4;
                }
                let mut chunk = [0u8; 4096];
                match stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            };
            let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
            let header = |name: &str| {
                head.lines()
                    .filter_map(|l| l.split_once(':'))
                    .find(|(n, _)| n.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v.trim().to_owned())
            };
            let body_len: usize = header("content-length")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            while buf.len() < head_end + body_len {
                let mut chunk = [0u8; 4096];
                match stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
            buf.drain(..head_end + body_len);
            let token = header("authorization").unwrap_or_default();
            let n = {
                let mut seen = seen.lock().unwrap();
                let n = seen.entry(token.clone()).or_default();
                *n += 1;
                *n
            };
            let (status, body) = if failing.load(Ordering::SeqCst) {
                (
                    "500 Internal Server Error",
                    r#"{"error":"boom"}"#.to_owned(),
                )
            } else {
                (
                    "200 OK",
                    serde_json::json!({ "token": token, "n": n }).to_string(),
                )
            };
            let answer = format!(
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\n\
                 Cache-Control: private, max-age=30\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            if stream.write_all(answer.as_bytes()).await.is_err() {
                return;
            }
        }
    }

    struct Answer {
        status: u16,
        x_cache: String,
        retry_after: String,
        body: String,
    }

    async fn get(client: &reqwest::Client, base: &str, token: Option<&str>) -> Answer {
        let mut request = client.get(format!("{base}/api/code"));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let r = request.send().await.unwrap();
        let header = |name: &str| {
            r.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        let (status, x_cache, retry_after) = (
            r.status().as_u16(),
            header("x-cache"),
            header("retry-after"),
        );
        Answer {
            status,
            x_cache,
            retry_after,
            body: r.text().await.unwrap(),
        }
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn codes_are_cached_per_user_and_served_stale_when_the_upstream_fails() {
        let upstream = Upstream::start().await;
        let prefix = tempfile::tempdir().unwrap();
        // The upstream is both origin and backup; a 1 s TTL so the entry goes stale quickly.
        let mut p = NginxParams::tuned(upstream.addr, upstream.addr, 1000.0, 10.0);
        p.cache_ttl = Duration::from_secs(1);
        let nginx = {
            let (prefix, p) = (prefix.path().to_owned(), p.clone());
            tokio::task::spawn_blocking(move || NginxProc::start(&prefix, &p))
                .await
                .unwrap()
                .unwrap()
        };
        assert!(nginx.pid().is_some());
        let client = reqwest::Client::new();
        let base = nginx.base.as_str();
        let (a, b) = ("Bearer token-a", "Bearer token-b");

        let first = get(&client, base, Some("token-a")).await;
        assert_eq!((first.status, first.x_cache.as_str()), (200, "MISS"));
        assert!(first.body.contains(a), "{}", first.body);
        let again = get(&client, base, Some("token-a")).await;
        assert_eq!((again.status, again.x_cache.as_str()), (200, "HIT"));
        assert_eq!(again.body, first.body);
        assert_eq!(upstream.seen(a), 1, "a hit reached the upstream");

        let other = get(&client, base, Some("token-b")).await;
        assert_eq!((other.status, other.x_cache.as_str()), (200, "MISS"));
        assert!(other.body.contains(b), "{}", other.body);
        assert_eq!(upstream.seen(b), 1);

        // No session, no cache: each one goes through.
        for n in 1..=2 {
            let anonymous = get(&client, base, None).await;
            assert_eq!(anonymous.x_cache, "BYPASS");
            assert_eq!(upstream.seen(""), n);
        }

        // The upstream fails: once the entry has expired, the cached code is served stale.
        upstream.failing.store(true, Ordering::SeqCst);
        let mut last = None;
        let stale = wait_until(Duration::from_secs(10), || {
            let answer = futures_block(get(&client, base, Some("token-a")));
            let is_stale = answer.status == 200 && answer.x_cache == "STALE";
            last = Some((answer.status, answer.x_cache, answer.body.clone()));
            is_stale && answer.body == first.body
        });
        assert!(stale, "never served stale; last answer {last:?}");
        // The refresh is a background subrequest: it may reach the upstream after the answer.
        assert!(
            wait_until(Duration::from_secs(5), || upstream.seen(a) > 1),
            "the expired entry was never refreshed"
        );

        // Nothing cached and the upstream failing: the JSON busy answer.
        let busy = get(&client, base, Some("token-c")).await;
        assert_eq!((busy.status, busy.retry_after.as_str()), (503, "5"));
        let busy: serde_json::Value = serde_json::from_str(&busy.body).unwrap();
        assert_eq!(busy["busy"], true);

        // The master's children: the worker, the cache manager and (for a minute) the
        // cache loader. None outlives the drop.
        let pid = nginx.pid().unwrap();
        let helpers = children(pid);
        assert!(helpers.len() >= 2, "{helpers:?}");
        drop(nginx);
        assert!(
            start_time(pid).is_none() && helpers.iter().all(|c| start_time(c.pid).is_none()),
            "nginx master or one of its children still running after drop"
        );
    }

    /// Runs `future` to completion from inside a polling closure on a multi-thread runtime.
    fn futures_block<F: Future>(future: F) -> F::Output {
        tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(future))
    }
}
