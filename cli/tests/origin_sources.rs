//! Data sources as separate processes (`shouhu origin datasource --kind ...`): a failing
//! source makes the colour unknown — never a silent green — and the colour recovers when the
//! source does.
#![expect(clippy::unwrap_used, reason = "tests")]

#[path = "origin/harness.rs"]
mod harness;

use harness::{OriginProc, RESET, id_number};
use serde_json::json;
use shouhu_testkit::{ChildProcess, wait_until};
use std::process::{Command, Stdio};

fn start_source(kind: &str, dir: &std::path::Path) -> (ChildProcess, String) {
    let out = dir.join(format!("{kind}.stdout"));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_shouhu"));
    cmd.args([
        "origin",
        "datasource",
        "--kind",
        kind,
        "--listen",
        "127.0.0.1:0",
    ])
    .env("RUST_LOG", "warn")
    .stdout(Stdio::from(std::fs::File::create(&out).unwrap()));
    let process = ChildProcess::spawn(kind, cmd).unwrap();
    // It prints `listening http://ADDR`.
    let mut url = None;
    wait_until(harness::START, || {
        let text = std::fs::read_to_string(&out).unwrap_or_default();
        url = text
            .lines()
            .find_map(|l| l.strip_prefix("listening "))
            .map(|u| u.trim().to_owned());
        url.is_some()
    });
    (process, url.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_source_makes_the_colour_unknown_until_it_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let (_health, health) = start_source("health", dir.path());
    let config = format!(
        "kind = \"origin\"\n[sources]\nhealth = \"{health}\"\ntimeout = \"300ms\"\ncache_ttl = \"0s\"\n"
    );
    let origin = OriginProc::start(Some(&config), &[]);
    assert_eq!(
        origin.health, health,
        "the origin uses the separate process"
    );
    let mut citizen = origin.citizen();
    let subject = citizen
        .sign_up(&id_number("370102", "19950815", "552"), "13500135000")
        .await;
    origin.reset(&subject).await;
    assert_eq!(citizen.wait_colour("green", RESET).await, "green");

    let knobs = |body| {
        let url = format!("{health}/admin/knobs");
        async move {
            let r = harness::client().put(url).json(&body).send().await.unwrap();
            assert_eq!(r.status(), 200);
        }
    };
    knobs(json!({"failure_rate": 1.0})).await;
    assert_eq!(citizen.colour().await, "unknown");
    let (_, why) = citizen.get("/api/code/explain").await;
    assert_eq!(why["sources"]["health"], "unavailable");
    assert_eq!(why["reasons"][0]["rule"], "source_unavailable");

    // A source slower than the timeout is unavailable too.
    knobs(json!({"failure_rate": 0.0, "latency_ms": 1000})).await;
    assert_eq!(citizen.colour().await, "unknown");

    knobs(json!({"failure_rate": 0.0, "latency_ms": 0})).await;
    assert_eq!(citizen.colour().await, "green");
}
