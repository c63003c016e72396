//! `shouhu snapshot import|export|stats` as an operator runs them, against a private
//! `redis-server` and a three-master Cluster.
#![expect(clippy::unwrap_used, reason = "tests")]

use std::io::Write;
use std::process::{Command, Output};

use shouhu_testkit::{RedisCluster, RedisServer};

fn shouhu(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_shouhu"))
        .args(args)
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).unwrap()
}

/// A record line as export writes it: times in RFC 3339.
fn line(subject: u32, colour: &str, as_of: u64) -> String {
    let as_of = shouhu_code::time::format_rfc3339(as_of);
    format!(
        r#"{{"subject":"{subject:032x}","colour":"{colour}","as_of":"{as_of}","ruleset_version":2,"masked_name":"王*","id_last4":"765X"}}"#
    )
}

/// The same record as another system might write it: whole seconds since 1970.
fn line_in_seconds(subject: u32, colour: &str, as_of: u64) -> String {
    format!(
        r#"{{"subject":"{subject:032x}","colour":"{colour}","as_of":{as_of},"ruleset_version":2,"masked_name":"王*","id_last4":"765X"}}"#
    )
}

/// 200 good lines with three bad ones among them.
fn file_with_bad_lines() -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    for n in 0..200u32 {
        let colour = ["green", "yellow", "red"][n as usize % 3];
        let as_of = 1_800_000_000 + u64::from(n);
        let text = if n % 2 == 0 {
            line(n, colour, as_of)
        } else {
            line_in_seconds(n, colour, as_of)
        };
        writeln!(f, "{text}").unwrap();
        match n {
            10 => writeln!(f, "{{not json").unwrap(),
            20 => writeln!(f, "{}", line(999, "blue", 1)).unwrap(),
            30 => writeln!(
                f,
                r#"{{"subject":"{:032x}","colour":"red","as_of":1,"ruleset_version":1,"masked_name":"x","id_last4":"12"}}"#,
                5
            )
            .unwrap(),
            _ => {}
        }
    }
    f
}

fn import_export_stats(redis: &str) {
    let file = file_with_bad_lines();
    let path = file.path().to_str().unwrap();
    let out = shouhu(&[
        "snapshot",
        "import",
        "--redis",
        redis,
        "--watermark",
        "now",
        path,
    ]);
    assert_eq!(out.status.code(), Some(1), "bad lines make the exit code 1");
    let err = text(&out.stderr);
    // Lines are numbered from 1: good line n is on line n+1 plus the bad lines before it.
    assert!(err.contains(&format!("{path}:12: ")), "{err}");
    assert!(
        err.contains(&format!("{path}:23: ")) && err.contains("blue"),
        "{err}"
    );
    assert!(
        err.contains(&format!("{path}:34: ")) && err.contains("id_last4"),
        "{err}"
    );
    assert!(
        text(&out.stdout).contains("imported 200 records (200 changed), 3 bad lines"),
        "{}",
        text(&out.stdout)
    );

    // With lines missing the snapshot is not complete: the watermark stays unset.
    assert!(err.contains("watermark not advanced: 3 bad lines"), "{err}");
    let out = shouhu(&["snapshot", "stats", "--redis", redis, "--json"]);
    let stats: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(stats["watermark_age_seconds"].is_null(), "{stats}");

    // Importing again changes nothing.
    let out = shouhu(&["snapshot", "import", "--redis", redis, path]);
    assert!(text(&out.stdout).contains("imported 200 records (0 changed), 3 bad lines"));

    // A clean file advances the watermark.
    let mut clean = tempfile::NamedTempFile::new().unwrap();
    writeln!(clean, "{}", line(0, "green", 1_800_000_000)).unwrap();
    let clean_path = clean.path().to_str().unwrap();
    let out = shouhu(&[
        "snapshot",
        "import",
        "--redis",
        redis,
        "--watermark",
        "now",
        clean_path,
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("watermark advanced to"));

    let out = shouhu(&["snapshot", "stats", "--redis", redis, "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stats: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(stats["records"], 200);
    assert_eq!(stats["green"], 67);
    assert_eq!(stats["yellow"], 67);
    assert_eq!(stats["red"], 66);
    assert!(stats["watermark_age_seconds"].as_u64().unwrap() < 60);
    let out = shouhu(&["snapshot", "stats", "--redis", redis]);
    assert!(text(&out.stdout).contains("records:   200"));

    let out = shouhu(&["snapshot", "export", "--redis", redis]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let mut exported: Vec<String> = text(&out.stdout).lines().map(str::to_owned).collect();
    exported.sort();
    let mut expected: Vec<String> = (0..200u32)
        .map(|n| {
            line(
                n,
                ["green", "yellow", "red"][n as usize % 3],
                1_800_000_000 + u64::from(n),
            )
        })
        .collect();
    expected.sort();
    assert_eq!(
        exported, expected,
        "export gives back exactly what was imported"
    );
}

#[test]
fn import_export_and_stats_on_a_single_redis() {
    let redis = RedisServer::start();
    import_export_stats(&redis.url());
}

#[test]
fn import_export_and_stats_on_a_cluster() {
    let cluster = RedisCluster::start();
    import_export_stats(&cluster.urls().join(","));
}

#[test]
fn an_unreachable_redis_is_a_clear_error() {
    let mut redis = RedisServer::start();
    redis.kill();
    let out = shouhu(&["snapshot", "stats", "--redis", &redis.url()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("cannot connect to Redis"),
        "{}",
        text(&out.stderr)
    );
}
