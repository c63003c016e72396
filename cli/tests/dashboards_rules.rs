//! The Prometheus rules and Grafana dashboards in `dashboards/`, checked with `promtool` (from
//! Debian's `prometheus` package; `scripts/ensure-deps.sh test` installs it):
//!
//! - `promtool check rules` accepts `rules.yml`, and `promtool test rules` passes
//!   `rules.test.yml`, where every alert is shown both firing and quiet;
//! - every alert has a severity and a `runbook_url` to a heading of `RUNBOOK.md`;
//! - every query of every dashboard is valid PromQL, and the dashboards are well-formed.
#![expect(clippy::unwrap_used, reason = "tests")]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../dashboards")
}

fn read(name: &str) -> String {
    std::fs::read_to_string(dir().join(name)).unwrap_or_else(|e| panic!("dashboards/{name}: {e}"))
}

/// Runs `promtool ARGS` in `dashboards/`; its output, or a failure naming what it said.
fn promtool(args: &[&str]) -> String {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(dir())
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "promtool: {e}; install Debian's prometheus package (scripts/ensure-deps.sh test)"
            )
        });
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "promtool {}: {}\n{text}",
        args.join(" "),
        out.status
    );
    text
}

/// GitHub's anchor of a Markdown heading.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// Each alert of `rules.yml` with the text of its rule.
fn alerts(rules: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut current: Option<(String, String)> = None;
    for line in rules.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with("- alert:") || trimmed.starts_with("- record:") {
            if let Some((name, body)) = current.take() {
                out.insert(name, body);
            }
            if let Some(name) = trimmed.strip_prefix("- alert:") {
                current = Some((name.trim().to_owned(), String::new()));
            }
        } else if let Some((_, body)) = &mut current {
            body.push_str(trimmed);
            body.push('\n');
        }
    }
    if let Some((name, body)) = current {
        out.insert(name, body);
    }
    out
}

#[test]
fn rules_pass_promtool_check_and_unit_tests() {
    let checked = promtool(&["check", "rules", "rules.yml"]);
    assert!(checked.contains("SUCCESS"), "{checked}");
    let tested = promtool(&["test", "rules", "rules.test.yml"]);
    assert!(tested.contains("SUCCESS"), "{tested}");
}

#[test]
fn every_alert_is_tested_firing_and_quiet_and_has_a_runbook_paragraph() {
    let rules = read("rules.yml");
    let alerts = alerts(&rules);
    for required in [
        "ShouhuOriginDown",
        "ShouhuFallbackShareHigh",
        "ShouhuSnapshotStale",
        "ShouhuRedisErrors",
        "ShouhuJournalBacklogGrowing",
        "ShouhuWaitingRoomLong",
        "ShouhuProxyNearSaturation",
    ] {
        assert!(alerts.contains_key(required), "rules.yml has no {required}");
    }

    let runbook = read("RUNBOOK.md");
    let anchors: BTreeSet<String> = runbook
        .lines()
        .filter_map(|l| l.strip_prefix("## "))
        .map(anchor)
        .collect();
    for (name, body) in &alerts {
        assert!(
            body.contains("severity: critical") || body.contains("severity: warning"),
            "{name}: no severity"
        );
        let url = body
            .lines()
            .find_map(|l| l.strip_prefix("runbook_url:"))
            .unwrap_or_else(|| panic!("{name}: no runbook_url"))
            .trim()
            .trim_matches('"');
        let target = url
            .strip_prefix("dashboards/RUNBOOK.md#")
            .unwrap_or_else(|| {
                panic!("{name}: runbook_url {url} is not dashboards/RUNBOOK.md#...")
            });
        assert!(
            anchors.contains(target),
            "{name}: RUNBOOK.md has no heading #{target}"
        );
    }

    // In rules.test.yml each alert is expected to fire somewhere and to stay quiet somewhere.
    let tests = read("rules.test.yml");
    let mut firing = BTreeSet::new();
    let mut quiet = BTreeSet::new();
    let mut current = None;
    for line in tests.lines().map(str::trim) {
        if let Some(name) = line.strip_prefix("alertname:") {
            current = Some(name.trim().to_owned());
        } else if let Some(expected) = line.strip_prefix("exp_alerts:")
            && let Some(name) = current.take()
        {
            if expected.trim() == "[]" {
                quiet.insert(name);
            } else {
                firing.insert(name);
            }
        }
    }
    for name in alerts.keys() {
        assert!(
            firing.contains(name),
            "rules.test.yml never expects {name} to fire"
        );
        assert!(
            quiet.contains(name),
            "rules.test.yml never expects {name} to stay quiet"
        );
    }
}

/// Every `expr` of a dashboard, with where it is.
fn exprs(v: &Value, at: &str, out: &mut Vec<(String, String)>) {
    match v {
        Value::Object(map) => {
            let title = map.get("title").and_then(Value::as_str).unwrap_or(at);
            for (k, v) in map {
                if k == "expr"
                    && let Some(e) = v.as_str()
                {
                    out.push((title.to_owned(), e.to_owned()));
                }
                exprs(v, title, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| exprs(v, at, out)),
        _ => {}
    }
}

#[test]
fn every_dashboard_query_is_valid_promql() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    let names: Vec<String> = files
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert!(names.contains(&"overview.json".to_owned()), "{names:?}");
    assert!(
        files.len() >= 5,
        "an overview and a board per component: {names:?}"
    );

    // Each query becomes a recording rule of a scratch file that `promtool check rules`
    // parses; Grafana's variables are replaced by what they expand to.
    let mut scratch = String::from("groups:\n  - name: dashboards\n    rules:\n");
    let mut uids = BTreeSet::new();
    let mut count = 0;
    for (path, name) in files.iter().zip(&names) {
        let board: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap())
            .unwrap_or_else(|e| panic!("{name}: not JSON: {e}"));
        let uid = board["uid"]
            .as_str()
            .unwrap_or_else(|| panic!("{name}: no uid"));
        assert!(uids.insert(uid.to_owned()), "{name}: uid {uid} used twice");
        assert!(
            board["title"].as_str().is_some_and(|t| !t.is_empty()),
            "{name}: no title"
        );
        let vars = board["templating"]["list"].as_array().unwrap();
        assert!(
            vars.iter().any(|v| v["type"] == "datasource"),
            "{name}: no data source variable"
        );
        for panel in board["panels"].as_array().unwrap() {
            let title = panel["title"].as_str().unwrap_or_default();
            assert!(
                panel["gridPos"]["w"].as_u64().is_some(),
                "{name}: {title}: no gridPos"
            );
            if panel["type"] != "row" && panel["targets"].is_array() {
                assert_eq!(
                    panel["datasource"]["uid"], "${datasource}",
                    "{name}: {title}"
                );
                assert!(
                    panel["description"].as_str().is_some_and(|d| !d.is_empty()),
                    "{name}: {title}: no description"
                );
            }
        }
        let mut found = Vec::new();
        exprs(&board, name, &mut found);
        assert!(!found.is_empty(), "{name}: no queries");
        for (title, expr) in found {
            let expr = expr
                .replace("$instance", ".*")
                .replace("$__rate_interval", "1m");
            scratch.push_str(&format!(
                "      # {name}: {title}\n      - record: dashboard:query{count}\n        expr: {}\n",
                serde_json::to_string(&expr).unwrap()
            ));
            count += 1;
        }
    }
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("dashboard-queries.yml");
    std::fs::write(&path, scratch).unwrap();
    let checked = promtool(&["check", "rules", path.to_str().unwrap()]);
    assert!(
        checked.contains(&format!("SUCCESS: {count} rules found")),
        "{checked}"
    );
}
