//! The waiting room in a real browser (Debian's headless Chromium): the page shows a place
//! and a wait, refreshes itself, and eventually lets the person register with the origin's
//! `/register` form. Also the form on its own, straight against the origin.
//!
//! Chromium is driven over the DevTools protocol on a pipe (`--remote-debugging-pipe`: JSON
//! messages ended by NUL on fds 3 and 4, which `sh` wires to our stdin and stdout), so the
//! test needs no WebSocket client and no debugging port. One browser process keeps its
//! cookies for the whole test, and the page's own `<meta http-equiv="refresh">` moves it
//! along; the test only reads the DOM and, once the form shows, fills it in and clicks.
//! Chromium reaches nothing but loopback (`--host-resolver-rules`, no background
//! networking).
#![expect(clippy::unwrap_used, clippy::panic, reason = "tests")]

#[path = "origin/harness.rs"]
mod harness;
#[path = "proxy/harness.rs"]
mod proxy_harness;

use std::process::Stdio;
use std::time::{Duration, Instant};

use harness::{OriginProc, id_number};
use proxy_harness::ProxyProc;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;

/// How long one DevTools command may take.
const CALL: Duration = Duration::from_secs(20);

/// A headless Chromium with one tab, killed when dropped.
struct Browser {
    child: Child,
    stdin: ChildStdin,
    messages: mpsc::UnboundedReceiver<Value>,
    next_id: u64,
    /// The tab's DevTools session.
    session: String,
    profile: tempfile::TempDir,
}

impl Browser {
    /// Starts Chromium (`$CHROMIUM`, else `chromium` on the `PATH`) with a fresh profile and
    /// opens a blank tab.
    async fn start() -> Self {
        let program = std::env::var("CHROMIUM").unwrap_or_else(|_| "chromium".to_owned());
        let profile = tempfile::tempdir().unwrap();
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(r#"exec "$0" "$@" 3<&0 4>&1 0</dev/null 1>/dev/null"#)
            .arg(&program)
            .args(proxy_harness::CHROMIUM_FLAGS)
            .args(["--window-size=412,915", "--remote-debugging-pipe"])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(
                std::fs::File::create(profile.path().join("stderr.txt")).unwrap(),
            ))
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start {program} ({e}); install it: apt-get install chromium")
            });
        let stdin = child.stdin.take().unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let (tx, messages) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut pending = Vec::new();
            let mut chunk = vec![0u8; 64 * 1024];
            while let Ok(n @ 1..) = stdout.read(&mut chunk).await {
                pending.extend_from_slice(&chunk[..n]);
                while let Some(end) = pending.iter().position(|&b| b == 0) {
                    let message: Vec<u8> = pending.drain(..=end).collect();
                    if let Ok(v) = serde_json::from_slice::<Value>(&message[..end])
                        && tx.send(v).is_err()
                    {
                        return;
                    }
                }
            }
        });
        let mut browser = Self {
            child,
            stdin,
            messages,
            next_id: 0,
            session: String::new(),
            profile,
        };
        let target = browser
            .call("Target.createTarget", json!({"url": "about:blank"}), false)
            .await;
        let target = target["targetId"].as_str().unwrap().to_owned();
        let attached = browser
            .call(
                "Target.attachToTarget",
                json!({"targetId": target, "flatten": true}),
                false,
            )
            .await;
        browser.session = attached["sessionId"].as_str().unwrap().to_owned();
        browser
    }

    /// Sends a command (to the tab if `tab`) and waits for its answer: the `result`, or
    /// the `error` object as `{"error": ...}`.
    async fn call(&mut self, method: &str, params: Value, tab: bool) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut message = json!({"id": id, "method": method, "params": params});
        if tab {
            message["sessionId"] = json!(self.session);
        }
        let mut bytes = serde_json::to_vec(&message).unwrap();
        bytes.push(0);
        self.stdin.write_all(&bytes).await.unwrap();
        self.stdin.flush().await.unwrap();
        let deadline = tokio::time::Instant::now() + CALL;
        loop {
            let message = tokio::time::timeout_at(deadline, self.messages.recv())
                .await
                .unwrap_or_else(|_| panic!("chromium: no answer to {method} in {CALL:?}"))
                .unwrap_or_else(|| panic!("chromium exited; stderr:\n{}", self.stderr()));
            if message["id"] == id {
                return match message.get("error") {
                    Some(error) => json!({ "error": error }),
                    None => message["result"].clone(),
                };
            }
        }
    }

    /// Opens `url` in the tab.
    async fn navigate(&mut self, url: &str) {
        let answer = self.call("Page.navigate", json!({"url": url}), true).await;
        assert!(
            answer.get("errorText").is_none(),
            "navigate {url}: {answer}"
        );
    }

    /// The value of a JavaScript expression in the page; `Null` while the page is being
    /// replaced (a refresh) or if it threw.
    async fn eval(&mut self, expression: &str) -> Value {
        let answer = self
            .call(
                "Runtime.evaluate",
                json!({"expression": expression, "returnByValue": true}),
                true,
            )
            .await;
        if answer.get("error").is_some() || answer.get("exceptionDetails").is_some() {
            return Value::Null;
        }
        answer["result"]["value"].clone()
    }

    /// What the tab shows: `{"page": "wait", ahead, wait, seconds, loaded}`,
    /// `{"page": "form", loaded}`, `{"page": "other", text}`, or `Null` between pages.
    async fn state(&mut self) -> Value {
        self.eval(STATE_JS).await
    }

    /// Polls [`Browser::state`] until `done` accepts it or `timeout` passes; every state seen
    /// on the way, in order, the last one the accepted one.
    async fn until(&mut self, timeout: Duration, done: impl Fn(&Value) -> bool) -> Vec<Value> {
        let started = Instant::now();
        let mut seen = Vec::new();
        loop {
            let state = self.state().await;
            if !state.is_null() {
                let accepted = done(&state);
                seen.push(state);
                if accepted {
                    return seen;
                }
            }
            assert!(
                started.elapsed() < timeout,
                "not there within {timeout:?}; states seen: {seen:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Fills the registration form and clicks the button, as a person would.
    async fn register(&mut self, name: &str, id: &str, phone: &str, address: &str) {
        let fields = json!({"name": name, "id_number": id, "phone": phone, "address": address});
        let script = format!(
            "(() => {{ const f = document.getElementById('register'); const v = {fields}; \
             for (const k in v) {{ const i = f.elements[k]; i.focus(); i.value = v[k]; \
             i.dispatchEvent(new Event('input', {{bubbles: true}})); }} \
             document.getElementById('submit').click(); return true; }})()"
        );
        assert_eq!(
            self.eval(&script).await,
            json!(true),
            "the form is not shown"
        );
    }

    /// The result line once the form's answer came: `{"class", "text", "subject"}`.
    async fn result(&mut self) -> Value {
        let started = Instant::now();
        loop {
            let r = self.eval(RESULT_JS).await;
            if r["class"] == "ok" || r["class"] == "err" {
                return r;
            }
            assert!(started.elapsed() < CALL, "no result shown: {r}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(self.profile.path().join("stderr.txt")).unwrap_or_default()
    }

    /// Closes the browser and waits for it to exit (killed if it does not).
    async fn close(mut self) {
        let _ = self.call("Browser.close", json!({}), false).await;
        if tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

const STATE_JS: &str = r"(() => {
  const loaded = performance.timeOrigin;
  const p = document.getElementById('position');
  if (p) {
    const w = document.getElementById('wait');
    return {page: 'wait', ahead: Number(p.dataset.ahead), position: Number(p.dataset.position),
            wait: w.textContent, seconds: w.dataset.seconds, loaded};
  }
  if (document.getElementById('register')) return {page: 'form', loaded};
  if (document.readyState !== 'complete') return null;
  return {page: 'other', text: document.body ? document.body.innerText.slice(0, 300) : ''};
})()";

const RESULT_JS: &str = r"(() => {
  const r = document.getElementById('result');
  return {class: r.className, text: r.textContent, subject: r.dataset.subject || null};
})()";

/// Logs in at the origin directly with `id` and `phone`; the subject.
async fn login_subject(origin: &OriginProc, id: &str, phone: &str) -> String {
    let r = harness::client()
        .post(format!("{}/api/login", origin.citizen))
        .json(&json!({"id_number": id, "phone": phone}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json::<Value>().await.unwrap()["subject"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_registers_with_the_origin_form() {
    let origin = OriginProc::start(None, &[]);
    let mut browser = Browser::start().await;
    browser
        .navigate(&format!("{}/register", origin.citizen))
        .await;
    browser
        .until(Duration::from_secs(20), |s| s["page"] == "form")
        .await;

    // A mistyped ID number: the origin's message, Chinese first, and the form stays usable.
    let id = id_number("370102", "19900101", "321");
    let mut wrong = id.clone();
    let last = if wrong.ends_with('0') { "1" } else { "0" };
    wrong.replace_range(17.., last);
    browser
        .register("李四", &wrong, "13912345678", "济南市历下区")
        .await;
    let r = browser.result().await;
    assert_eq!(r["class"], "err", "{r}");
    let text = r["text"].as_str().unwrap();
    assert!(text.contains("身份证号码校验位错误"), "{text}");
    assert!(text.contains("check digit is wrong"), "{text}");
    assert!(text.find("身份证").unwrap() < text.find("check digit").unwrap());

    browser
        .register("李四", &id, "13912345678", "济南市历下区")
        .await;
    let r = browser.result().await;
    assert_eq!(r["class"], "ok", "{r}");
    let subject = r["subject"].as_str().unwrap().to_owned();
    assert!(r["text"].as_str().unwrap().contains("登记成功"), "{r}");
    assert_eq!(login_subject(&origin, &id, "13912345678").await, subject);
    browser.close().await;
}

/// The proxy config: the room lets one person in per second and pages refresh every ~2 s;
/// the default routes plus `GET /register`, which needs no session.
const ROOM: &str = r#"
[identity]
anonymous = ["/api/login", "/api/register", "/register", "/api/verify", "/static/*", "/.well-known/*"]

[[routes]]
method = "GET"
path = "/api/code"
class = "display"

[[routes]]
method = "GET"
path = "/code"
class = "display"

[[routes]]
method = "POST"
path = "/api/verify"
class = "scan"

[[routes]]
method = "POST"
path = "/api/declare"
class = "declare"

[[routes]]
method = "POST"
path = "/api/register"
class = "register"

[[routes]]
method = "POST"
path = "/api/login"
class = "register"

[[routes]]
method = "GET"
path = "/register"
class = "register"

[[routes]]
method = "ANY"
path = "/static/*"
class = "static"

[waiting_room]
max_rate = 1
refresh = "2s"
"#;

/// People ahead of the browser: more than arrive per second, so the room opens.
const CROWD: usize = 8;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_waiting_room_in_a_browser_shows_place_and_wait_then_lets_the_person_register() {
    let origin = OriginProc::start(None, &[]);
    let proxy = ProxyProc::start(&origin.citizen, None, Some(ROOM));

    // A crowd arrives at once (clients without cookies, who never come back): one goes in,
    // the others get tickets and a waiting page.
    let crowd = harness::client();
    let mut waiting = 0;
    for _ in 0..CROWD {
        let r = crowd
            .get(format!("{}/register", proxy.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let retry = r
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_owned());
        if r.text().await.unwrap().contains("data-ahead") {
            let retry: u32 = retry.unwrap().parse().unwrap();
            assert!((1..=3).contains(&retry), "Retry-After {retry}");
            waiting += 1;
        }
    }
    assert!(waiting >= CROWD - 2, "only {waiting} of {CROWD} wait");

    // An app gets JSON: 503, Retry-After, its place and wait.
    let r = crowd
        .post(format!("{}/api/register", proxy.base))
        .header("accept", "application/json")
        .json(&json!({"name": "王五", "id_number": "x", "phone": "x", "address": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    let retry: u32 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        r.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .starts_with("shouhu_waiting_room=")
    );
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"], "waiting_room", "{v}");
    assert!(v["position"].as_u64().unwrap() >= 2, "{v}");
    assert!(v["estimated_wait_seconds"].as_u64().unwrap() >= 1, "{v}");
    assert_eq!(v["retry_after_seconds"], retry);
    assert!(v["message_zh"].as_str().unwrap().contains("排队"), "{v}");

    // The browser joins the queue: it is shown its place and a wait ...
    let mut browser = Browser::start().await;
    browser.navigate(&format!("{}/register", proxy.base)).await;
    let first = browser
        .until(Duration::from_secs(20), |s| s["page"] != "other")
        .await;
    let first = first.last().unwrap().clone();
    assert_eq!(
        first["page"], "wait",
        "the room did not hold the browser: {first}"
    );
    assert!(first["ahead"].as_u64().unwrap() >= 1, "{first}");
    let wait = first["wait"].as_str().unwrap();
    assert!(
        wait.contains("预计等待") && wait.contains("Estimated wait"),
        "{wait}"
    );
    assert!(
        first["seconds"].as_str().unwrap().parse::<u64>().unwrap() >= 1,
        "{first}"
    );

    // ... the page refreshes itself, the place moves forward, and the form opens.
    let seen = browser
        .until(Duration::from_secs(60), |s| {
            assert_ne!(s["page"], "other", "an unexpected page: {s}");
            s["page"] == "form"
        })
        .await;
    let waits: Vec<&Value> = seen.iter().filter(|s| s["page"] == "wait").collect();
    let loads: std::collections::BTreeSet<String> =
        waits.iter().map(|s| s["loaded"].to_string()).collect();
    assert!(
        loads.len() >= 2,
        "the waiting page never refreshed itself: {seen:?}"
    );
    let places: Vec<u64> = waits.iter().map(|s| s["ahead"].as_u64().unwrap()).collect();
    assert!(
        places.windows(2).all(|w| w[1] <= w[0]),
        "the place went back: {places:?}"
    );

    // Admitted: the person registers through the proxy without queueing again.
    let id = id_number("370102", "19900101", "654");
    browser
        .register("赵六", &id, "13712345678", "济南市市中区")
        .await;
    let r = browser.result().await;
    assert_eq!(r["class"], "ok", "{r}; proxy log:\n{}", proxy.log());
    let subject = r["subject"].as_str().unwrap().to_owned();
    assert_eq!(login_subject(&origin, &id, "13712345678").await, subject);
    browser.close().await;
}
