//! The system under test minus its front: a private `redis-server`, the reference origin
//! (`shouhu origin`, publishing its snapshot to that Redis) and the registered population;
//! and `shouhu proxy` as one of the fronts. Every process is started here on ephemeral
//! loopback ports and stopped by PID when its handle is dropped.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::{Value, json};
use shouhu_code::{Colour, SubjectId, TrustList};
use shouhu_testkit::{ChildProcess, wait_until};
use tokio::time::Instant;

/// How long a process may take to print its listening line.
const START: Duration = Duration::from_secs(30);
/// Requests in flight while the population registers.
const SETUP_CONCURRENCY: usize = 32;
/// Region and birth date of the synthetic population's ID numbers.
const REGION: &str = "370102";

/// The `shouhu` binary: `--shouhu`, else next to this executable, else `target/release/shouhu`.
///
/// # Errors
/// None of them exists.
pub fn find_shouhu(given: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(p) = given {
        if p.is_file() {
            return Ok(p.to_path_buf());
        }
        bail!("--shouhu {}: no such file", p.display());
    }
    let mut tried = Vec::new();
    if let Ok(me) = std::env::current_exe()
        && let Some(dir) = me.parent()
    {
        tried.push(dir.join("shouhu"));
    }
    tried.push(PathBuf::from("target/release/shouhu"));
    for p in &tried {
        if p.is_file() {
            return Ok(p.clone());
        }
    }
    bail!(
        "the shouhu binary was not found (tried {}); build it with `cargo build --release -p \
         shouhu` or pass --shouhu PATH",
        tried
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// Niceness of every process the benchmark starts, so that the generator is not kept waiting
/// by them where they share a CPU; the same for every variant.
pub const SERVER_NICENESS: &str = "10";

/// Which CPUs the generator and the servers run on (overload.md §9.2 pins them apart: the
/// generator's lag decides whether a run counts, and on two cores the system under test
/// would otherwise keep it from sending on time).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuLayout {
    /// `taskset -c` list of the generator: CPUs `0..generator_count`.
    pub generator: String,
    /// How many CPUs the generator has.
    pub generator_count: usize,
    /// `taskset -c` list of the servers (origin, fronts).
    pub servers: String,
}

/// Half the CPUs (at least one) for the generator, the rest for the servers; `None` with a
/// single CPU or without `taskset`.
#[must_use]
pub fn cpu_layout() -> Option<CpuLayout> {
    static LAYOUT: std::sync::OnceLock<Option<CpuLayout>> = std::sync::OnceLock::new();
    LAYOUT
        .get_or_init(|| {
            let n = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
            let has_taskset = Command::new("taskset")
                .arg("--version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if n < 2 || !has_taskset {
                return None;
            }
            let g = (n / 2).max(1);
            let list = |a: usize, b: usize| {
                if a == b {
                    a.to_string()
                } else {
                    format!("{a}-{b}")
                }
            };
            Some(CpuLayout {
                generator: list(0, g - 1),
                generator_count: g,
                servers: list(g, n - 1),
            })
        })
        .clone()
}

/// How many CPUs the generator has: its share of the layout, or all of them without one.
#[must_use]
pub fn generator_cpus() -> usize {
    cpu_layout().map_or_else(
        || std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
        |l| l.generator_count,
    )
}

/// Pins this process (every thread it has and will start) to the generator's CPUs; false
/// when there is no layout or `taskset` failed.
#[must_use]
pub fn pin_generator() -> bool {
    let Some(layout) = cpu_layout() else {
        return false;
    };
    Command::new("taskset")
        .args(["-a", "-p", "-c", &layout.generator])
        .arg(std::process::id().to_string())
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A command that runs `program` on the servers' CPUs at [`SERVER_NICENESS`] (`taskset` and
/// `nice` exec it: the PID is the program's).
#[must_use]
pub fn niced(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut cmd = match cpu_layout() {
        Some(layout) => {
            let mut c = Command::new("taskset");
            c.args(["-c", &layout.servers, "nice"]);
            c
        }
        None => Command::new("nice"),
    };
    cmd.args(["-n", SERVER_NICENESS]).arg(program);
    cmd
}

/// The words after `listening` on the first line that starts with it, once `process` printed
/// one; `None` if it exits first or `timeout` passes.
fn listening_line(
    process: &mut ChildProcess,
    path: &Path,
    timeout: Duration,
) -> Option<Vec<String>> {
    let mut found = None;
    wait_until(timeout, || {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        found = text
            .lines()
            .find(|l| l.starts_with("listening "))
            .map(|l| l.split_whitespace().skip(1).map(str::to_owned).collect());
        found.is_some() || !process.is_running()
    });
    found
}

/// Creates (truncates) a log file, naming it in the error.
pub(crate) fn create(path: &Path) -> anyhow::Result<std::fs::File> {
    std::fs::File::create(path).with_context(|| format!("{}: creating", path.display()))
}

/// The last 20 lines of a log, for an error message.
pub(crate) fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// Starts `cmd` with stdout and stderr in `dir/{name}.stdout|.stderr` and waits for its
/// `listening` line.
fn spawn_listening(
    name: &str,
    mut cmd: Command,
    dir: &Path,
) -> anyhow::Result<(ChildProcess, Vec<String>)> {
    let stdout = dir.join(format!("{name}.stdout"));
    let stderr = dir.join(format!("{name}.stderr"));
    cmd.stdout(create(&stdout)?).stderr(create(&stderr)?);
    let mut process =
        ChildProcess::spawn(name, cmd).with_context(|| format!("cannot start {name}"))?;
    let Some(words) = listening_line(&mut process, &stdout, START) else {
        let running = process.is_running();
        bail!(
            "{name} printed no listening line within {START:?} (running: {running}); its \
             log ends:\n{}",
            log_tail(&stderr)
        );
    };
    Ok((process, words))
}

/// A running reference origin.
pub struct Origin {
    process: ChildProcess,
    /// Citizen API base URL.
    pub citizen: String,
    /// Admin API base URL.
    pub admin: String,
    /// Data-source simulators: health, police, carrier.
    pub health: String,
    /// The police source.
    pub police: String,
    /// The carrier source.
    pub carrier: String,
}

impl Origin {
    /// Starts `shouhu origin` with its data in `dir/origin`, publishing to `redis`.
    ///
    /// # Errors
    /// It does not start.
    pub fn start(shouhu: &Path, dir: &Path, redis: &str) -> anyhow::Result<Self> {
        let data = dir.join("origin");
        std::fs::create_dir_all(&data)?;
        let config = data.join("origin.toml");
        // The surge benchmark's model (overload.md §9.3): log-normal noise 0.3; the model is
        // switched on by the runner once the population is registered.
        std::fs::write(&config, "[capacity]\nenabled = false\nnoise = 0.3\n")?;
        let mut cmd = niced(shouhu);
        cmd.arg("origin")
            .arg("--config")
            .arg(&config)
            .arg("--data-dir")
            .arg(data.join("data"))
            .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
            .args(["--redis", redis])
            .env("RUST_LOG", "warn");
        let (process, words) = spawn_listening("origin", cmd, dir)?;
        let get = |k: &str| -> anyhow::Result<String> {
            words
                .iter()
                .find_map(|w| w.strip_prefix(&format!("{k}=")).map(str::to_owned))
                .with_context(|| format!("origin's listening line has no {k}="))
        };
        Ok(Self {
            citizen: get("citizen")?,
            admin: get("admin")?,
            health: get("health")?,
            police: get("police")?,
            carrier: get("carrier")?,
            process,
        })
    }

    /// The process id.
    #[must_use]
    pub fn pid(&self) -> Option<u32> {
        self.process.pid()
    }

    /// Sends `body` to the admin API and returns its JSON answer.
    ///
    /// # Errors
    /// Not reachable, or not a 200.
    pub async fn admin(
        &self,
        http: &reqwest::Client,
        method: reqwest::Method,
        path: &str,
        body: &Value,
    ) -> anyhow::Result<Value> {
        let mut req = http.request(method.clone(), format!("{}{path}", self.admin));
        if !body.is_null() {
            req = req.json(body);
        }
        let r = req
            .send()
            .await
            .with_context(|| format!("origin admin {method} {path}"))?;
        let status = r.status();
        let text = r.text().await.unwrap_or_default();
        if !status.is_success() {
            bail!("origin admin {method} {path}: {status}: {text}");
        }
        serde_json::from_str(&text).with_context(|| format!("origin admin {path}: not JSON"))
    }

    /// `GET /admin/status`'s `capacity`.
    ///
    /// # Errors
    /// Not reachable.
    pub async fn capacity(&self, http: &reqwest::Client) -> anyhow::Result<Value> {
        Ok(self
            .admin(http, reqwest::Method::GET, "/admin/status", &Value::Null)
            .await?["capacity"]
            .take())
    }

    /// Applies a data-source op (`{"op": "reset"}`, ...) to `subject` at the health source.
    ///
    /// # Errors
    /// Not a 200.
    pub async fn health_op(
        &self,
        http: &reqwest::Client,
        subject: &SubjectId,
        op: &Value,
    ) -> anyhow::Result<()> {
        let r = http
            .post(format!(
                "{}/admin/subjects/{}",
                self.health,
                subject.to_hex()
            ))
            .json(op)
            .send()
            .await?;
        if !r.status().is_success() {
            bail!("health source op {op}: {}", r.status());
        }
        Ok(())
    }

    /// The origin's trust list and its session key JSON.
    ///
    /// # Errors
    /// Not reachable or not valid.
    pub async fn keys(&self, http: &reqwest::Client) -> anyhow::Result<(TrustList, String)> {
        let trust = trust_list(http, &self.citizen).await?;
        let session = http
            .get(format!("{}/.well-known/shouhu/session-key", self.citizen))
            .send()
            .await?
            .error_for_status()?
            .text()
            .await?;
        Ok((trust, session))
    }
}

/// `GET {base}/.well-known/shouhu/trust-list.json`.
///
/// # Errors
/// Not reachable or not a trust list.
pub async fn trust_list(http: &reqwest::Client, base: &str) -> anyhow::Result<TrustList> {
    let url = format!("{base}/.well-known/shouhu/trust-list.json");
    let text = http
        .get(&url)
        .send()
        .await
        .with_context(|| format!("GET {url}"))?
        .error_for_status()?
        .text()
        .await?;
    TrustList::from_json(&url, &text).map_err(|e| anyhow::anyhow!("{e}"))
}

/// The keys of both lists, each once.
///
/// # Errors
/// The union is not a valid trust list (the same kid with different keys).
pub fn merge_trust(a: &TrustList, b: &TrustList) -> anyhow::Result<TrustList> {
    let mut keys = a.keys().to_vec();
    for k in b.keys() {
        if !keys.contains(k) {
            keys.push(k.clone());
        }
    }
    TrustList::new(keys).map_err(|e| anyhow::anyhow!("merging trust lists: {e}"))
}

/// One registered, logged-in person.
#[derive(Debug, Clone)]
pub struct Person {
    /// Their subject id.
    pub subject: SubjectId,
    /// Their session token (sent as `Authorization: Bearer`).
    pub token: String,
    /// The colour the origin gave them at setup.
    pub colour: Colour,
    /// A code of theirs, for venue scans.
    pub code: String,
}

/// GB 11643: a valid ID number from a region, a birth date and a sequence number.
#[must_use]
pub fn id_number(region: &str, birth: &str, seq: &str) -> String {
    const W: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    let body = format!("{region}{birth}{seq}");
    let sum: u32 = body
        .chars()
        .zip(W)
        .map(|(c, w)| c.to_digit(10).unwrap_or(0) * w)
        .sum();
    let check = char::from(b"10X98765432"[(sum % 11) as usize]);
    format!("{body}{check}")
}

/// The registration body of person `n` (distinct ID numbers and phones for n < 36,500,000).
#[must_use]
pub fn registration(n: u64) -> Value {
    // A birth date per 1000 people from 1950-01-01 on, 365 x 100 distinct dates.
    let day = n / 1000;
    let (year, rest) = (1950 + day / 365, day % 365);
    let (month, dom) = (1 + rest / 28 % 12, 1 + rest % 28);
    let id = id_number(
        REGION,
        &format!("{year:04}{month:02}{dom:02}"),
        &format!("{:03}", n % 1000),
    );
    json!({
        "name": "张三",
        "id_number": id,
        "phone": format!("13{:09}", n),
        "address": "济南市历下区",
    })
}

/// Registers and logs in person `n` at `base`; returns their subject and token.
///
/// # Errors
/// The origin refuses.
pub async fn sign_up(
    http: &reqwest::Client,
    base: &str,
    n: u64,
) -> anyhow::Result<(SubjectId, String)> {
    let body = registration(n);
    let r = http
        .post(format!("{base}/api/register"))
        .json(&body)
        .send()
        .await?;
    let status = r.status();
    let v: Value = r.json().await.unwrap_or_default();
    if !status.is_success() {
        bail!("register person {n}: {status}: {v}");
    }
    let subject: SubjectId = v["subject"]
        .as_str()
        .context("register: no subject")?
        .parse()
        .map_err(|e| anyhow::anyhow!("register: subject: {e}"))?;
    let r = http
        .post(format!("{base}/api/login"))
        .json(&json!({"id_number": body["id_number"], "phone": body["phone"]}))
        .send()
        .await?;
    let status = r.status();
    let v: Value = r.json().await.unwrap_or_default();
    if !status.is_success() {
        bail!("login person {n}: {status}: {v}");
    }
    let token = v["token"].as_str().context("login: no token")?.to_owned();
    Ok((subject, token))
}

/// `GET /api/code` as `token`: the colour and the code.
///
/// # Errors
/// Not a 200 with a code.
pub async fn code_of(
    http: &reqwest::Client,
    base: &str,
    token: &str,
) -> anyhow::Result<(Colour, String)> {
    let r = http
        .get(format!("{base}/api/code"))
        .bearer_auth(token)
        .send()
        .await?;
    let status = r.status();
    let v: Value = r.json().await.unwrap_or_default();
    if !status.is_success() {
        bail!("GET /api/code: {status}: {v}");
    }
    let colour: Colour = serde_json::from_value(v["colour"].clone())
        .with_context(|| format!("GET /api/code: colour in {v}"))?;
    let code = v["code"].as_str().context("GET /api/code: no code")?;
    Ok((colour, code.to_owned()))
}

/// [`code_of`], asked again while the colour is `unknown` because a source did not answer
/// in time (a busy machine): the truth at setup must be the colour the person's facts give.
/// `GET /api/code/explain` tells the two apart; a person whose identity the police source
/// has not verified is `unknown` with every source answering, and stays so.
///
/// # Errors
/// A request fails, or a source still does not answer after [`SETTLE_TIMEOUT`].
async fn settled_code_of(
    http: &reqwest::Client,
    base: &str,
    token: &str,
) -> anyhow::Result<(Colour, String)> {
    let start = Instant::now();
    loop {
        let (colour, code) = code_of(http, base, token).await?;
        if colour != Colour::Unknown {
            return Ok((colour, code));
        }
        let explained: Value = http
            .get(format!("{base}/api/code/explain"))
            .bearer_auth(token)
            .send()
            .await?
            .json()
            .await
            .unwrap_or_default();
        let sources = &explained["sources"];
        let all_answered = ["health", "police", "carrier"]
            .iter()
            .all(|s| sources[*s].as_str() == Some("ok"));
        if all_answered && explained["colour"].as_str() == Some("unknown") {
            return Ok((colour, code));
        }
        if start.elapsed() > SETTLE_TIMEOUT {
            bail!(
                "GET /api/code: `unknown` for {SETTLE_TIMEOUT:?} because a source does not \
                 answer ({sources}); see origin.log"
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// How long [`settled_code_of`] waits for the sources.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Registers people `0..n` at the origin and reads everyone's colour and a code.
///
/// # Errors
/// A registration, login or code request fails.
pub async fn populate(
    http: &reqwest::Client,
    origin: &Origin,
    n: usize,
    mut progress: impl FnMut(usize),
) -> anyhow::Result<Vec<Person>> {
    let mut people: Vec<Option<(SubjectId, String)>> = vec![None; n];
    let mut next = 0usize;
    let mut tasks = tokio::task::JoinSet::new();
    let mut done = 0usize;
    while done < n {
        while next < n && tasks.len() < SETUP_CONCURRENCY {
            let (http, base, i) = (http.clone(), origin.citizen.clone(), next);
            tasks.spawn(async move { (i, sign_up(&http, &base, i as u64).await) });
            next += 1;
        }
        if let Some(joined) = tasks.join_next().await {
            let (i, r) = joined?;
            people[i] = Some(r?);
            done += 1;
            progress(done);
        }
    }
    let people: Vec<(SubjectId, String)> = people.into_iter().flatten().collect();
    let mut out = Vec::with_capacity(people.len());
    for batch in people.chunks(SETUP_CONCURRENCY) {
        let mut tasks = tokio::task::JoinSet::new();
        for (i, (subject, token)) in batch.iter().enumerate() {
            let (http, base, token, subject) = (
                http.clone(),
                origin.citizen.clone(),
                token.clone(),
                *subject,
            );
            tasks.spawn(async move {
                (
                    i,
                    subject,
                    token.clone(),
                    settled_code_of(&http, &base, &token).await,
                )
            });
        }
        let mut got: Vec<Option<Person>> = vec![None; batch.len()];
        while let Some(joined) = tasks.join_next().await {
            let (i, subject, token, r) = joined?;
            let (colour, code) = r?;
            got[i] = Some(Person {
                subject,
                token,
                colour,
                code,
            });
        }
        out.extend(got.into_iter().flatten());
    }
    Ok(out)
}

/// Waits until the origin has written every colour to the snapshot (nothing pending and at
/// least `n` records published).
///
/// # Errors
/// Not within `timeout`.
pub async fn wait_published(
    http: &reqwest::Client,
    origin: &Origin,
    n: usize,
    timeout: Duration,
) -> anyhow::Result<()> {
    let start = Instant::now();
    loop {
        let status = origin
            .admin(http, reqwest::Method::GET, "/admin/status", &Value::Null)
            .await?;
        let p = &status["publisher"];
        let published = p["published"].as_u64().unwrap_or(0);
        if p["pending"].as_u64() == Some(0) && published >= n as u64 {
            return Ok(());
        }
        if start.elapsed() > timeout {
            bail!(
                "the origin published {published} of {n} records to the snapshot in {timeout:?}: {p}"
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A running `shouhu proxy`.
pub struct Proxy {
    process: ChildProcess,
    /// Citizen base URL.
    pub base: String,
    /// Admin base URL.
    pub admin: String,
}

/// The proxy's config in the benchmark: one worker thread (nginx runs one worker), the same
/// cache ages as nginx (30 s, stale up to 15 min), no capacity figure (adaptive admission),
/// and the per-address limit out of reach: the generator is one address.
pub const PROXY_CONFIG: &str = r#"[server]
threads = 1

[cache]
ttl = "30s"
max_stale = "15m"

[rate_limit]
per_ip = "off"

[log]
level = "warn"
"#;

impl Proxy {
    /// Starts `shouhu proxy` in front of `origin` with [`PROXY_CONFIG`], its data in
    /// `dir/proxy`.
    ///
    /// # Errors
    /// It does not start.
    pub fn start(shouhu: &Path, dir: &Path, origin: &str, redis: &str) -> anyhow::Result<Self> {
        let data = dir.join("proxy");
        std::fs::create_dir_all(&data)?;
        let config = data.join("proxy.toml");
        std::fs::write(&config, PROXY_CONFIG)?;
        let mut cmd = niced(shouhu);
        cmd.arg("proxy")
            .arg("--config")
            .arg(&config)
            .args(["--origin", origin, "--redis", redis])
            .arg("--data-dir")
            .arg(data.join("data"))
            .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
            .env("RUST_LOG", "warn");
        let (process, words) = spawn_listening("proxy", cmd, dir)?;
        let (Some(base), Some(admin)) = (words.first(), words.get(2)) else {
            bail!("proxy's listening line is not `listening URL admin URL`: {words:?}");
        };
        Ok(Self {
            base: base.clone(),
            admin: admin.clone(),
            process,
        })
    }

    /// The process id.
    #[must_use]
    pub fn pid(&self) -> Option<u32> {
        self.process.pid()
    }
}

/// Open files wanted: a hanging origin holds every waiting citizen's connection (3x load
/// times a 10 s client timeout is 15,000), in the generator and in each server.
pub const WANTED_FILES: u64 = 1_048_576;

/// Raises this process's open-file limit (inherited by every process it starts) with
/// util-linux `prlimit`, as overload.md §9.2 asks; returns the limit now in force and a
/// warning when it is below [`WANTED_FILES`] (raising the hard limit needs root).
#[must_use]
pub fn raise_fd_limit() -> (u64, Option<String>) {
    let me = std::process::id().to_string();
    let wanted = format!("--nofile={WANTED_FILES}:{WANTED_FILES}");
    let raised = Command::new("prlimit")
        .args(["--pid", &me, &wanted])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !raised {
        // Not root: the soft limit can still go up to the hard one.
        let _ = Command::new("sh")
            .args([
                "-c",
                &format!(
                    "prlimit --pid {me} --nofile=$(prlimit --pid {me} --nofile --noheadings \
                     --output HARD):"
                ),
            ])
            .stderr(Stdio::null())
            .status();
    }
    let now = Command::new("prlimit")
        .args(["--pid", &me, "--nofile", "--noheadings", "--output", "SOFT"])
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .trim()
                .parse::<u64>()
                .ok()
        })
        .unwrap_or(0);
    let warning = (now < WANTED_FILES).then(|| {
        format!(
            "open-file limit {now} (wanted {WANTED_FILES}; raising the hard limit needs \
             CAP_SYS_RESOURCE): keep capacity x load x 10 s well below it, or a hanging origin \
             runs out of descriptors"
        )
    });
    (now, warning)
}

/// CPU seconds (user + system) used so far by `pid` and its direct children (nginx's
/// workers), from `/proc`.
#[must_use]
pub fn cpu_seconds(pid: u32) -> f64 {
    let mut ticks = proc_ticks(pid);
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for e in entries.flatten() {
            let Some(child) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            if proc_parent(child) == Some(pid) {
                ticks += proc_ticks(child);
            }
        }
    }
    // USER_HZ is 100 on Linux.
    ticks as f64 / 100.0
}

/// CPU seconds (user + system) this process has used so far, without its children.
#[must_use]
pub fn own_cpu_seconds() -> f64 {
    proc_ticks(std::process::id()) as f64 / 100.0
}

/// Time the hypervisor ran something else while the generator's CPUs wanted to run
/// ("steal") and all their time, in ticks, from `/proc/stat`. A virtual CPU that is taken
/// away for milliseconds delays sends whatever the generator does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuTime {
    /// Stolen ticks.
    pub steal: u64,
    /// All ticks.
    pub total: u64,
}

impl CpuTime {
    /// The generator's CPUs (all of them without a layout) now.
    #[must_use]
    pub fn of_generator() -> Self {
        let text = std::fs::read_to_string("/proc/stat").unwrap_or_default();
        let names: Vec<String> = match cpu_layout() {
            Some(l) => (0..l.generator_count).map(|i| format!("cpu{i}")).collect(),
            None => vec!["cpu".to_owned()],
        };
        Self::parse(&text, &names)
    }

    /// The sum over the lines of `/proc/stat` named in `cpus`.
    fn parse(text: &str, cpus: &[String]) -> Self {
        let mut t = Self::default();
        for line in text.lines() {
            let mut fields = line.split_whitespace();
            if !fields.next().is_some_and(|n| cpus.iter().any(|c| c == n)) {
                continue;
            }
            // user nice system idle iowait irq softirq steal (guest time is inside user).
            let ticks: Vec<u64> = fields.take(8).filter_map(|f| f.parse().ok()).collect();
            t.total += ticks.iter().sum::<u64>();
            t.steal += ticks.get(7).copied().unwrap_or(0);
        }
        t
    }

    /// The share of `self - before` that was stolen, percent.
    #[must_use]
    pub fn steal_percent_since(self, before: Self) -> f64 {
        let total = self.total.saturating_sub(before.total);
        100.0 * self.steal.saturating_sub(before.steal) as f64 / total.max(1) as f64
    }
}

/// The fields of `/proc/PID/stat` after the command name.
fn proc_stat(pid: u32) -> Option<Vec<String>> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 2..];
    Some(rest.split_whitespace().map(str::to_owned).collect())
}

fn proc_ticks(pid: u32) -> u64 {
    // After the name: state(0) ppid(1) ... utime(11) stime(12).
    proc_stat(pid).map_or(0, |f| {
        let n = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        n(11) + n(12)
    })
}

fn proc_parent(pid: u32) -> Option<u32> {
    proc_stat(pid)?.get(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registrations_are_distinct_and_valid() {
        let mut ids = std::collections::HashSet::new();
        for n in [0u64, 1, 999, 1000, 364_999, 365_000, 1_000_000] {
            let r = registration(n);
            let id = r["id_number"].as_str().unwrap_or_default().to_owned();
            assert_eq!(id.len(), 18, "{id}");
            assert!(ids.insert(id), "person {n} repeats an ID number");
        }
        // The check digit of a known example (GB 11643).
        assert_eq!(id_number("110105", "19491231", "002"), "11010519491231002X");
    }

    #[test]
    fn stolen_time_is_read_for_the_named_cpus() {
        let text = "cpu  10 0 10 70 0 0 0 10 0 0\ncpu0 5 0 5 30 0 0 0 10 0 0\n\
                    cpu1 5 0 5 40 0 0 0 0 0 0\nintr 1 2 3\n";
        let cpu0 = CpuTime::parse(text, &["cpu0".to_owned()]);
        assert_eq!(
            cpu0,
            CpuTime {
                steal: 10,
                total: 50
            }
        );
        let all = CpuTime::parse(text, &["cpu".to_owned()]);
        assert_eq!(
            all,
            CpuTime {
                steal: 10,
                total: 100
            }
        );
        let later = CpuTime {
            steal: 13,
            total: 110,
        };
        assert!((later.steal_percent_since(all) - 30.0).abs() < 1e-9);
        assert!(CpuTime::of_generator().total > 0);
    }

    #[test]
    fn own_cpu_time_is_read() {
        let me = std::process::id();
        let start = std::time::Instant::now();
        let mut x = 0u64;
        while start.elapsed() < Duration::from_millis(200) {
            x = x.wrapping_add(1);
        }
        assert!(x > 0);
        assert!(cpu_seconds(me) > 0.0);
    }
}
