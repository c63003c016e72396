//! The `shouhu` command forms that scripts and docs rely on, run as a user runs them.
#![expect(clippy::unwrap_used, reason = "tests")]

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn shouhu(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_shouhu"))
        .args(args)
        .output()
        .unwrap()
}

fn shouhu_stdin(args: &[&str], input: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_shouhu"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).unwrap()
}

fn generate(dir: &Path, role: &str) -> String {
    let out = shouhu(&[
        "keys",
        "generate",
        "--role",
        role,
        "--region",
        "370000",
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let kid = stdout(&out).trim().to_owned();
    assert_eq!(kid.len(), 16, "kid {kid:?}");
    assert!(kid.bytes().all(|b| b.is_ascii_hexdigit()));
    kid
}

/// Keys for both roles and a trust list of them, in a fresh folder.
struct Setup {
    dir: tempfile::TempDir,
    origin_kid: String,
    fallback_kid: String,
}

impl Setup {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let keys = dir.path().join("keys");
        let origin_kid = generate(&keys, "origin");
        let fallback_kid = generate(&keys, "fallback");
        let out = shouhu(&["keys", "trust-list", keys.to_str().unwrap()]);
        assert!(out.status.success(), "{}", stderr(&out));
        std::fs::write(dir.path().join("trust.json"), out.stdout).unwrap();
        Self {
            dir,
            origin_kid,
            fallback_kid,
        }
    }

    fn key(&self, role: &str) -> String {
        let kid = if role == "origin" {
            &self.origin_kid
        } else {
            &self.fallback_kid
        };
        let path = self
            .dir
            .path()
            .join(format!("keys/{role}-370000-{kid}.key.json"));
        path.to_str().unwrap().to_owned()
    }

    fn trust(&self) -> String {
        self.dir
            .path()
            .join("trust.json")
            .to_str()
            .unwrap()
            .to_owned()
    }

    fn issue(&self, extra: &[&str]) -> String {
        let key = self.key("origin");
        let mut args = vec![
            "code",
            "issue",
            "--key",
            &key,
            "--subject",
            SUBJECT,
            "--colour",
            "red",
        ];
        args.extend_from_slice(extra);
        let out = shouhu(&args);
        assert!(out.status.success(), "{}", stderr(&out));
        stdout(&out).trim().to_owned()
    }
}

const SUBJECT: &str = "00112233445566778899aabbccddeeff";

#[test]
fn keys_generate_writes_a_private_file_only_its_owner_reads() {
    use std::os::unix::fs::PermissionsExt;
    let s = Setup::new();
    let mode = std::fs::metadata(s.key("origin"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    let trust: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(s.trust()).unwrap()).unwrap();
    let kids: Vec<_> = trust["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].clone())
        .collect();
    assert_eq!(kids.len(), 2);
    assert!(kids.contains(&s.origin_kid.clone().into()));
    assert!(kids.contains(&s.fallback_kid.clone().into()));
}

#[test]
fn issued_code_verifies_and_prints_its_claims() {
    let s = Setup::new();
    let code = s.issue(&["--name", "张*", "--id-last4", "123X", "--ttl", "2m"]);
    assert!(code.starts_with("HZ1:"));
    let out = shouhu(&["code", "verify", "--trust-list", &s.trust(), &code]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let claims: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(claims["valid"], true);
    assert_eq!(claims["subject"], SUBJECT);
    assert_eq!(claims["colour"], "red");
    assert_eq!(claims["source"], "origin");
    assert_eq!(claims["masked_name"], "张*");
    assert_eq!(claims["kid"], s.origin_kid.as_str());

    // The same through standard input.
    let out = shouhu_stdin(
        &["code", "verify", "--trust-list", &s.trust(), "-"],
        &format!("{code}\n"),
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn verify_exits_1_and_names_the_reason() {
    let s = Setup::new();
    let code = s.issue(&[]);
    let mut forged = code.clone().into_bytes();
    forged[60] = if forged[60] == b'A' { b'B' } else { b'A' };
    let forged = String::from_utf8(forged).unwrap();
    let cases = [
        (forged, None, "bad_signature"),
        (code.replacen("HZ1:", "HC1:", 1), None, "wrong_prefix"),
        (code.clone(), Some("2099-01-01T00:00:00Z"), "expired"),
        (code.clone(), Some("2000-01-01T00:00:00Z"), "not_yet_valid"),
    ];
    let trust = s.trust();
    for (text, at, reason) in cases {
        let mut args = vec!["code", "verify", "--trust-list", &trust];
        if let Some(at) = at {
            args.extend(["--at", at]);
        }
        args.push(&text);
        let out = shouhu(&args);
        assert_eq!(out.status.code(), Some(1), "{reason}: {}", stdout(&out));
        let answer: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
        assert_eq!(answer["valid"], false);
        assert_eq!(answer["reason"], reason);
        assert!(stderr(&out).contains(reason), "{}", stderr(&out));
    }
}

#[test]
fn fallback_source_and_stale_data() {
    let s = Setup::new();
    let key = s.key("fallback");
    let out = shouhu(&[
        "code",
        "issue",
        "--key",
        &key,
        "--subject",
        SUBJECT,
        "--colour",
        "yellow",
        "--as-of",
        "2099-01-01T00:00:00Z",
    ]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "data from the future must be refused"
    );
    assert!(
        stderr(&out).contains("is after issue time"),
        "{}",
        stderr(&out)
    );
    let as_of = shouhu_code::time::format_rfc3339(shouhu_code::time::now() - 1200);
    let out = shouhu(&[
        "code",
        "issue",
        "--key",
        &key,
        "--subject",
        SUBJECT,
        "--colour",
        "yellow",
        "--as-of",
        &as_of,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let code = stdout(&out).trim().to_owned();
    let out = shouhu(&["code", "verify", "--trust-list", &s.trust(), &code]);
    let claims: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(claims["source"], "fallback");
    let out = shouhu(&[
        "code",
        "verify",
        "--trust-list",
        &s.trust(),
        "--max-fallback-age",
        "15m",
        &code,
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("stale_fallback"));

    // An origin key cannot be made to sign a fallback code.
    let origin = s.key("origin");
    let out = shouhu(&[
        "code",
        "issue",
        "--key",
        &origin,
        "--subject",
        SUBJECT,
        "--colour",
        "green",
        "--source",
        "fallback",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("does not sign fallback codes"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn qr_is_an_svg() {
    let s = Setup::new();
    let code = s.issue(&[]);
    let out = shouhu(&["code", "qr", &code]);
    assert!(out.status.success());
    let svg = stdout(&out);
    assert!(svg.starts_with("<?xml") && svg.trim_end().ends_with("</svg>"));
    let out = shouhu_stdin(&["code", "qr", "-"], &code);
    assert_eq!(stdout(&out), svg);
}

#[test]
fn bad_arguments_are_named() {
    let s = Setup::new();
    let key = s.key("origin");
    let out = shouhu(&[
        "code",
        "issue",
        "--key",
        &key,
        "--subject",
        "xyz",
        "--colour",
        "green",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("invalid subject id \"xyz\""),
        "{}",
        stderr(&out)
    );
    let out = shouhu(&[
        "code",
        "issue",
        "--key",
        &key,
        "--subject",
        SUBJECT,
        "--colour",
        "blue",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("expected one of green, yellow, red, unknown"),
        "{}",
        stderr(&out)
    );
    let out = shouhu(&[
        "keys", "generate", "--role", "origin", "--region", "37", "--out", "x",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("6-digit GB/T 2260 code"),
        "{}",
        stderr(&out)
    );
    let out = shouhu(&[
        "code",
        "verify",
        "--trust-list",
        "/nonexistent.json",
        "HZ1:",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("/nonexistent.json"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn check_config_says_ok_or_lists_every_error_with_exit_64() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/examples");
    for kind in ["proxy", "issuer", "origin"] {
        let file = examples.join(format!("{kind}.toml"));
        let out = shouhu(&["check-config", file.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(0), "{kind}: {}", stderr(&out));
        assert_eq!(stdout(&out), "ok\n");
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("shouhu.toml");
    std::fs::write(
        &file,
        "kind = \"proxy\"\n[origin]\nurl = \"http://127.0.0.1:8000\"\n\
         [cache]\nmax_entries = 0\n[[routes]]\nmethod = \"GET\"\npath = \"/api/code\"\nclass = \"dispaly\"\n",
    )
    .unwrap();
    let out = shouhu(&["check-config", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(64));
    let err = stderr(&out);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 2, "{err}");
    assert!(err.contains("shouhu.toml: routes[0].class: unknown class \"dispaly\" (expected one of display, scan, declare, register, other, static)"), "{err}");
    assert!(
        err.contains("shouhu.toml: cache.max_entries: must be >= 1 (got 0)"),
        "{err}"
    );
    let out = shouhu(&["check-config", "--kind", "issuer", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(64));
}
