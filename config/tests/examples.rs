//! Every file under `config/examples/` is a valid config, and each shows the defaults.
#![expect(clippy::unwrap_used, reason = "tests")]

use std::path::{Path, PathBuf};

use shouhu_config::{
    HttpUrl, IssuerConfig, Kind, OriginConfig, ProxyConfig, RedisUrls, check, load_issuer,
    load_origin, load_proxy,
};

fn examples() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "toml"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_example_is_valid() {
    let files = examples();
    assert!(
        files.len() >= 3,
        "expected at least the three examples, found {files:?}"
    );
    for file in files {
        if let Err(errors) = check(&file, None) {
            panic!("{errors}");
        }
    }
}

#[test]
fn each_kind_has_an_example() {
    let kinds: Vec<Kind> = examples()
        .iter()
        .map(|file| check(file, None).unwrap())
        .collect();
    for kind in Kind::ALL {
        assert!(kinds.contains(kind), "no example for {kind}");
    }
}

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(name)
}

// The examples promise to show every default; these catch a const changed without them.

#[test]
fn proxy_example_shows_the_defaults() {
    let mut expected = ProxyConfig {
        kind: Some(Kind::Proxy),
        ..ProxyConfig::default()
    };
    expected.origin.url = Some("http://127.0.0.1:8000".parse::<HttpUrl>().unwrap());
    assert_eq!(load_proxy(&example("proxy.toml")).unwrap(), expected);
}

#[test]
fn issuer_example_shows_the_defaults() {
    let expected = IssuerConfig {
        kind: Some(Kind::Issuer),
        redis: Some("redis://127.0.0.1:6379".parse::<RedisUrls>().unwrap()),
        ..IssuerConfig::default()
    };
    assert_eq!(load_issuer(&example("issuer.toml")).unwrap(), expected);
}

#[test]
fn origin_example_shows_the_defaults() {
    let expected = OriginConfig {
        kind: Some(Kind::Origin),
        ..OriginConfig::default()
    };
    assert_eq!(load_origin(&example("origin.toml")).unwrap(), expected);
}
