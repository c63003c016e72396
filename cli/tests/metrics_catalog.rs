//! The metrics a running `shouhu proxy` (in front of a real origin, with a private Redis)
//! exposes, against what the dashboards, the alert rules and `docs/METRICS.md` say:
//!
//! - every metric a dashboard or a rule names exists (in the proxy's, the origin's or the
//!   issuer's exposition), and every recorded series a dashboard uses is recorded by a rule;
//! - every exposed name follows the conventions: `shouhu_` prefix, counter iff `_total`,
//!   histograms in `_seconds`, no non-base units;
//! - `docs/METRICS.md` lists every exposed metric, and names none that does not exist;
//! - the series the issue asks for move when a citizen uses the proxy.
#![expect(clippy::unwrap_used, reason = "tests")]

#[path = "origin/harness.rs"]
mod harness;
#[path = "proxy/harness.rs"]
mod proxy_harness;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use proxy_harness::{Stack, sample, scrape, sign_up};
use serde_json::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Every `shouhu_...` metric name in `text`; with `recorded`, the `shouhu:...` recorded names
/// instead.
fn names_in(text: &str, recorded: bool) -> BTreeSet<String> {
    let prefix = if recorded { "shouhu:" } else { "shouhu_" };
    let mut out = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut at = 0;
    while let Some(i) = text[at..].find(prefix).map(|i| i + at) {
        let before = i.checked_sub(1).map(|j| bytes[j]);
        let end = text[i..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
            .map_or(text.len(), |n| i + n);
        let word = bytes_ok(before).then(|| &text[i..end]);
        if let Some(word) = word.filter(|w| w.len() > prefix.len()) {
            // A recorded name holds colons; a metric name does not.
            if recorded == word.contains(':') {
                out.insert(word.to_owned());
            }
        }
        at = end.max(i + 1);
    }
    out
}

/// A name starts a word: not after a letter, digit, `_`, `:`, `-` or `$`.
fn bytes_ok(before: Option<u8>) -> bool {
    before.is_none_or(|b| !(b.is_ascii_alphanumeric() || b"_:-$".contains(&b)))
}

/// Every string of every `expr` and `query` field of a dashboard, and its descriptions.
fn dashboard_text(v: &Value, out: &mut String) {
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                if let (Some(s), true) = (
                    v.as_str(),
                    ["expr", "query", "definition"].contains(&k.as_str()),
                ) {
                    out.push_str(s);
                    out.push('\n');
                }
                dashboard_text(v, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| dashboard_text(v, out)),
        _ => {}
    }
}

fn dashboards() -> Vec<(String, Value)> {
    let mut out: Vec<(String, Value)> = std::fs::read_dir(repo().join("dashboards"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            let v = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{}: not JSON: {e}", p.display()));
            (p.file_name().unwrap().to_string_lossy().into_owned(), v)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// `(family, type)` of every `# TYPE` line, and every sample name.
fn exposed(text: &str) -> (Vec<(String, String)>, BTreeSet<String>) {
    let families = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .map(|l| {
            let mut w = l.split_whitespace();
            (w.next().unwrap().to_owned(), w.next().unwrap().to_owned())
        })
        .collect();
    let samples = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| l.split(['{', ' ']).next().unwrap().to_owned())
        .collect();
    (families, samples)
}

/// What breaks the naming conventions of STYLE.md in one family.
fn convention_errors(name: &str, kind: &str) -> Vec<String> {
    let mut errors = Vec::new();
    if !name.starts_with("shouhu_") {
        errors.push(format!("{name}: no shouhu_ prefix"));
    }
    if (kind == "counter") != name.ends_with("_total") {
        errors.push(format!(
            "{name}: a {kind}; counters and only counters end in _total"
        ));
    }
    if kind == "histogram" && !(name.ends_with("_seconds") || name.ends_with("_bytes")) {
        errors.push(format!("{name}: a histogram not in _seconds or _bytes"));
    }
    for unit in [
        "_ms", "_millis", "_micros", "_nanos", "_minutes", "_hours", "_kb", "_mb", "_kib", "_mib",
    ] {
        if name.contains(&format!("{unit}_")) || name.ends_with(unit) {
            errors.push(format!("{name}: {unit} is not a base unit"));
        }
    }
    errors
}

/// Polls the proxy's `/metrics` until `series` reaches `at_least`.
async fn wait_for_sample(admin: &str, series: &str, at_least: f64) -> String {
    let started = Instant::now();
    loop {
        let text = scrape(&format!("{admin}/metrics")).await;
        if sample(&text, series).is_some_and(|v| v >= at_least) {
            return text;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{series} did not reach {at_least} within 10 s; it is {:?}",
            sample(&text, series)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboards_rules_and_catalog_match_what_the_processes_expose() {
    let stack = Stack::start();
    // A citizen signs up and looks at their code three times: once from the origin, then from
    // the cache, with snapshot lookups and feed polls on Redis in the background.
    let person = sign_up(&stack.proxy.base, 7).await;
    for _ in 0..3 {
        let a = person.get("/api/code").await;
        assert_eq!(a.status, 200, "{a:?}");
    }
    let proxy = wait_for_sample(
        &stack.proxy.admin,
        r#"shouhu_redis_command_duration_seconds_count{client="snapshot"}"#,
        1.0,
    )
    .await;
    let origin = scrape(&format!("{}/metrics", stack.origin.admin)).await;
    let issuer = shouhu_fallback::server::metrics::Metrics::default().text();

    // Conventions, in every process.
    let mut errors = Vec::new();
    let mut families = Vec::new();
    let mut samples = BTreeSet::new();
    for (process, text) in [("proxy", &proxy), ("origin", &origin), ("issuer", &issuer)] {
        let (f, s) = exposed(text);
        assert!(!f.is_empty(), "{process} exposes no metric families");
        for (name, kind) in &f {
            errors.extend(
                convention_errors(name, kind)
                    .into_iter()
                    .map(|e| format!("{process}: {e}")),
            );
        }
        families.extend(f.into_iter().map(|(name, _)| (process, name)));
        samples.extend(s);
    }
    let family_names: BTreeSet<&str> = families.iter().map(|(_, n)| n.as_str()).collect();

    // Every metric the dashboards and the rules name exists; every recorded series they use
    // is recorded.
    let rules = read("dashboards/rules.yml");
    let recorded: BTreeSet<String> = rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- record: "))
        .map(|r| r.trim().to_owned())
        .collect();
    assert!(
        recorded.len() >= 5,
        "rules.yml records too little: {recorded:?}"
    );
    let boards = dashboards();
    assert!(
        boards.len() >= 5,
        "expected an overview and a board per component"
    );
    let mut sources = vec![("dashboards/rules.yml".to_owned(), rules.clone())];
    for (file, board) in &boards {
        let mut text = String::new();
        dashboard_text(board, &mut text);
        assert!(!text.is_empty(), "{file}: no queries");
        sources.push((format!("dashboards/{file}"), text));
    }
    for (file, text) in &sources {
        let used = names_in(text, false);
        assert!(!used.is_empty(), "{file} names no metric");
        for name in used {
            if !samples.contains(&name) && !family_names.contains(name.as_str()) {
                errors.push(format!(
                    "{file}: {name} is not exposed by the proxy, origin or issuer"
                ));
            }
        }
        for name in names_in(text, true) {
            if !recorded.contains(&name) {
                errors.push(format!(
                    "{file}: {name} is recorded by no rule in rules.yml"
                ));
            }
        }
    }

    // The catalog lists every metric, and no metric that does not exist.
    let catalog = read("docs/METRICS.md");
    for (process, name) in &families {
        if !catalog.contains(&format!("`{name}`")) {
            errors.push(format!(
                "docs/METRICS.md: {process} metric {name} is not listed"
            ));
        }
    }
    for name in names_in(&catalog, false) {
        if !samples.contains(&name) && !family_names.contains(name.as_str()) {
            errors.push(format!(
                "docs/METRICS.md: lists {name}, which nothing exposes"
            ));
        }
    }
    for name in names_in(&catalog, true) {
        if !recorded.contains(&name) {
            errors.push(format!(
                "docs/METRICS.md: lists {name}, which no rule records"
            ));
        }
    }
    assert!(errors.is_empty(), "{}", errors.join("\n"));

    // The series move.
    let display = |outcome: &str| {
        sample(
            &proxy,
            &format!(
                r#"shouhu_request_duration_seconds_count{{class="display",outcome="{outcome}"}}"#
            ),
        )
        .unwrap()
    };
    assert_eq!(display("origin"), 1.0, "latency is recorded by outcome");
    assert_eq!(display("cache_fresh"), 2.0);
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(
        sample(
            &proxy,
            &format!(r#"shouhu_build_info{{version="{version}"}}"#)
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(&proxy, "shouhu_cache_hits_total"),
        Some(2.0),
        "two answers from cache"
    );
    assert_eq!(sample(&proxy, "shouhu_cache_misses_total"), Some(1.0));
    assert!(sample(&proxy, "shouhu_origin_calls_total").unwrap() >= 1.0);
    assert!(sample(&proxy, "shouhu_origin_call_duration_seconds_count").unwrap() >= 1.0);
    assert_eq!(
        sample(&proxy, r#"shouhu_breaker_transitions_total{to="open"}"#),
        Some(0.0)
    );
    assert_eq!(
        sample(
            &proxy,
            r#"shouhu_redis_errors_total{client="snapshot",kind="down"}"#
        ),
        Some(0.0)
    );
    assert!(sample(&proxy, "shouhu_snapshot_watermark_age_seconds").unwrap() >= 0.0);
    assert!(sample(&proxy, "shouhu_process_cpu_seconds_total").unwrap() > 0.0);
    assert!(sample(&proxy, "shouhu_process_open_fds").unwrap() > 0.0);
}
