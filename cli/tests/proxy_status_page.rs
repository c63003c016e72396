//! The `/status` page of a running `shouhu proxy`, as the person on call sees it in a browser:
//! headless Chromium renders it (a screenshot is taken) and the rendered page shows the
//! breaker state, the origin's limit and the requests just made, by outcome. Tools asking for
//! JSON, and `/status.json`, get the same figures as JSON.
#![expect(clippy::unwrap_used, reason = "tests")]

#[path = "origin/harness.rs"]
mod harness;
#[path = "proxy/harness.rs"]
mod proxy_harness;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use proxy_harness::{Stack, sign_up};
use serde_json::Value;
use tokio::process::Command;

/// A fixed limit, so the page and the JSON read a moment apart agree.
const CONFIG: &str = r#"
[admission]
adaptive = false
max_limit = 37

[rate_limit]
per_subject = "off"
"#;
const UNAUTHORIZED: usize = 4;
const CODES: usize = 3;
/// One Chromium run, start to exit.
const CHROMIUM: Duration = Duration::from_secs(60);

/// Runs headless Chromium with `args` and a fresh profile; its stdout.
async fn chromium(args: &[&str]) -> String {
    let program = std::env::var("CHROMIUM").unwrap_or_else(|_| "chromium".to_owned());
    let profile = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(&program);
    cmd.args(proxy_harness::CHROMIUM_FLAGS)
        .arg("--window-size=1280,900")
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let child = cmd.spawn().unwrap_or_else(|e| {
        panic!("cannot start {program} ({e}); install it: apt-get install chromium")
    });
    let out = tokio::time::timeout(CHROMIUM, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("chromium {args:?} did not finish within {CHROMIUM:?}"))
        .unwrap();
    assert!(
        out.status.success(),
        "chromium {args:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The text inside the element `id="{id}"` of `dom` (Chromium's serialisation), tags removed.
fn text_of(dom: &str, id: &str) -> String {
    let start = dom
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no element #{id} in the page:\n{dom}"));
    let open_end = start + dom[start..].find('>').unwrap() + 1;
    let close = open_end + dom[open_end..].find("</dd>").unwrap();
    strip_tags(&dom[open_end..close])
}

fn strip_tags(html: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The count in the row of `class` and `outcome` of the traffic table.
fn count_of(dom: &str, class: &str, outcome: &str) -> u64 {
    let row = format!("data-class=\"{class}\" data-outcome=\"{outcome}\"");
    let start = dom
        .find(&row)
        .unwrap_or_else(|| panic!("no row {class}/{outcome} in the page:\n{dom}"));
    let row_end = start + dom[start..].find("</tr>").unwrap();
    let cell = dom[start..row_end].find("count\">").unwrap() + start + "count\">".len();
    let end = cell + dom[cell..].find('<').unwrap();
    dom[cell..end].trim().parse().unwrap()
}

/// A PNG of the given size, with more in it than one flat colour.
fn assert_screenshot(path: &Path, width: u32, height: u32) {
    let png = std::fs::read(path).unwrap_or_else(|e| panic!("no screenshot at {path:?}: {e}"));
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
    let be = |at: usize| u32::from_be_bytes(png[at..at + 4].try_into().unwrap());
    assert_eq!(&png[12..16], b"IHDR");
    assert_eq!((be(16), be(20)), (width, height));
    // A blank 1280x900 page compresses to a few KB; text, tables and colours take more.
    assert!(png.len() > 20_000, "screenshot of {} bytes", png.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_renders_in_chromium_with_the_live_figures() {
    let stack = Stack::start_with(Some(CONFIG));
    let proxy = &stack.proxy;
    let person = sign_up(&proxy.base, 920).await;
    for _ in 0..CODES {
        let a = person.get("/api/code").await;
        assert_eq!(a.status, 200, "{a:?}");
    }
    let http = harness::client();
    for _ in 0..UNAUTHORIZED {
        let r = http
            .get(format!("{}/api/code", proxy.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
    }

    // The origin publishes its snapshot within seconds: wait for the watermark to be known.
    let started = std::time::Instant::now();
    while proxy.status().await["snapshot_watermark_age_seconds"].is_null() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no snapshot watermark within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The JSON forms.
    let json: Value = http
        .get(format!("{}/status.json", proxy.admin))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let asked: Value = http
        .get(format!("{}/status", proxy.admin))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for v in [&json, &asked] {
        assert_eq!(v["breaker"], "closed", "{v}");
        assert_eq!(v["redis"], "connected", "{v}");
        assert_eq!(v["origin_limit"], 37, "{v}");
        assert_eq!(
            v["requests"]["display"]["unauthorized"], UNAUTHORIZED as u64,
            "{v}"
        );
    }
    let display = json["requests"]["display"].as_object().unwrap();
    let codes: u64 = display
        .iter()
        .filter(|(outcome, _)| outcome.as_str() != "unauthorized")
        .map(|(_, n)| n.as_u64().unwrap())
        .sum();
    assert_eq!(codes, CODES as u64, "{json}");

    // The page, as a browser gets it.
    let url = format!("{}/status", proxy.admin);
    let dom = chromium(&["--dump-dom", &url]).await;
    assert!(dom.contains("http-equiv=\"refresh\""), "{dom}");
    let breaker = text_of(&dom, "breaker");
    assert!(
        breaker.contains("closed") && breaker.contains("正常"),
        "{breaker}"
    );
    assert!(text_of(&dom, "origin-limit").starts_with("37 "), "{dom}");
    assert!(text_of(&dom, "redis").contains("connected"), "{dom}");
    assert_eq!(
        count_of(&dom, "display", "unauthorized"),
        UNAUTHORIZED as u64
    );
    let page_codes: u64 = display
        .keys()
        .filter(|outcome| outcome.as_str() != "unauthorized")
        .map(|outcome| count_of(&dom, "display", outcome))
        .sum();
    assert_eq!(page_codes, CODES as u64);
    let age = text_of(&dom, "snapshot-age");
    assert!(age.ends_with(" s") || age.contains("min"), "{age}");

    let shot_dir = tempfile::tempdir().unwrap();
    let shot = shot_dir.path().join("status.png");
    chromium(&[
        &format!("--screenshot={}", shot.display()),
        "--hide-scrollbars",
        &url,
    ])
    .await;
    assert_screenshot(&shot, 1280, 900);
}
