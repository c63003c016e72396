//! `shouhu journal replay|stats|dead-letters` as an operator runs them: declarations the
//! origin rejects end up visible in the dead letters.
#![expect(clippy::unwrap_used, reason = "tests")]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::Command;
use std::time::Duration;

use shouhu_code::SubjectId;
use shouhu_code::time::now;
use shouhu_fallback::journal::{Declaration, Journal, JournalOptions};
use shouhu_testkit::{ChildProcess, RedisServer, wait_until};

fn shouhu(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_shouhu"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// An origin that refuses every declaration with 422, on an ephemeral port.
fn refusing_origin() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut length = 0;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            let answer = "{\"error\":\"invalid_declaration\"}";
            let _ = write!(
                stream,
                "HTTP/1.1 422 Unprocessable Entity\r\ncontent-type: application/json\r\n\
                 content-length: {}\r\nconnection: close\r\n\r\n{answer}",
                answer.len()
            );
        }
    });
    format!("http://{addr}")
}

#[tokio::test(flavor = "multi_thread")]
async fn rejected_declarations_are_dead_lettered_and_shown() {
    let redis = RedisServer::start();
    let url = redis.url();
    let journal = Journal::connect(&url.parse().unwrap(), None, JournalOptions::default())
        .await
        .unwrap();
    for n in 0..3u8 {
        let d = Declaration {
            idempotency_key: format!("cli-key-{n}"),
            subject: SubjectId([n; 16]),
            authorization: "Bearer t".to_owned(),
            content_type: "application/json".to_owned(),
            body: format!("{{\"temperature\":{}}}", 90 + n).into_bytes(),
        };
        journal.append(&d, now()).await.unwrap();
    }
    assert!(shouhu(&["journal", "stats", "--redis", &url]).contains("waiting:      3"));

    let mut cmd = Command::new(env!("CARGO_BIN_EXE_shouhu"));
    cmd.args([
        "journal",
        "replay",
        "--redis",
        &url,
        "--origin",
        &refusing_origin(),
    ]);
    let mut replayer = ChildProcess::spawn("shouhu journal replay", cmd).unwrap();
    let drained = wait_until(Duration::from_secs(20), || {
        shouhu(&["journal", "stats", "--redis", &url]).contains("dead letters: 3")
    });
    replayer.kill();
    assert!(
        drained,
        "the replayer did not dead-letter the rejected declarations"
    );
    assert!(shouhu(&["journal", "stats", "--redis", &url]).contains("waiting:      0"));

    let listed = shouhu(&["journal", "dead-letters", "--redis", &url, "--json"]);
    let letters: Vec<serde_json::Value> = listed
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(letters.len(), 3);
    for (n, letter) in letters.iter().enumerate() {
        assert_eq!(letter["idempotency_key"], format!("cli-key-{n}"));
        assert_eq!(letter["status"], 422);
        assert!(
            letter["response"]
                .as_str()
                .unwrap()
                .contains("invalid_declaration")
        );
        assert!(
            letter["body"]
                .as_str()
                .unwrap()
                .contains(&format!("{}", 90 + n))
        );
        assert!(letter.get("authorization").is_none(), "no token is kept");
    }
}
