//! Loaders, defaults, overrides, `check` and serialization, through the public API.
#![expect(clippy::unwrap_used, reason = "tests")]

use std::path::{Path, PathBuf};

use shouhu_config::proxy::{Method, Route, RouteClass, VerifyAtEdge};
use shouhu_config::{
    Duration, HttpUrl, IssuerConfig, Kind, NO_FILE, OriginConfig, Overrides, ProxyConfig,
    RedisUrls, SecretRef, check, check_str, load_issuer_from_str, load_issuer_with,
    load_origin_from_str, load_proxy_from_str, load_proxy_with, parse_socket_addr,
};

fn messages<T: std::fmt::Debug>(result: Result<T, shouhu_config::ConfigErrors>) -> Vec<String> {
    result
        .unwrap_err()
        .iter()
        .map(ToString::to_string)
        .collect()
}

fn origin_url() -> HttpUrl {
    "http://127.0.0.1:8000".parse().unwrap()
}

#[test]
fn default_proxy_needs_only_an_origin_url() {
    let mut config = ProxyConfig::default();
    assert_eq!(
        messages(config.validate("p.toml")),
        ["p.toml: origin.url: required (set it in the file or pass --origin)"]
    );
    config.origin.url = Some(origin_url());
    config.validate("p.toml").unwrap();
}

#[test]
fn default_issuer_needs_only_redis_and_default_origin_nothing() {
    let mut issuer = IssuerConfig::default();
    assert_eq!(
        messages(issuer.validate("i.toml")),
        ["i.toml: redis: required (set it in the file or pass --redis)"]
    );
    issuer.redis = Some("redis://127.0.0.1:6379".parse().unwrap());
    issuer.validate("i.toml").unwrap();
    OriginConfig::default().validate("o.toml").unwrap();
}

#[test]
fn flags_alone_run_the_proxy_without_a_file() {
    let overrides = Overrides {
        origin: Some(origin_url()),
        data_dir: Some(PathBuf::from("/var/lib/shouhu")),
        ..Overrides::default()
    };
    let config = load_proxy_with(None, &overrides).unwrap();
    assert_eq!(config.origin.url, Some(origin_url()));
    assert_eq!(config.fallback_key_dir(), Path::new("/var/lib/shouhu/keys"));
    assert_eq!(
        messages(load_proxy_with(None, &Overrides::default())),
        [format!(
            "{NO_FILE}: origin.url: required (set it in the file or pass --origin)"
        )]
    );
}

#[test]
fn flags_fill_in_and_replace_file_values_before_validation() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("edge.toml");
    std::fs::write(&file, "[server]\nlisten = \"0.0.0.0:80\"\n").unwrap();
    let overrides = Overrides {
        listen: Some(parse_socket_addr("127.0.0.1:0").unwrap()),
        origin: Some(origin_url()),
        ..Overrides::default()
    };
    let config = load_proxy_with(Some(&file), &overrides).unwrap();
    assert_eq!(
        config.server.listen,
        parse_socket_addr("127.0.0.1:0").unwrap()
    );

    // A flag can break a rule too; it is reported against the field it set.
    let clash = Overrides {
        admin_listen: Some(parse_socket_addr("127.0.0.1:80").unwrap()),
        origin: Some(origin_url()),
        ..Overrides::default()
    };
    assert_eq!(
        messages(load_proxy_with(Some(&file), &clash)),
        [format!(
            "{}: server.admin_listen: 127.0.0.1:80 conflicts with server.listen = 0.0.0.0:80 (same port)",
            file.display()
        )]
    );
}

#[test]
fn issuer_takes_redis_from_a_flag() {
    let overrides = Overrides {
        redis: Some("redis://a:6379,redis://b:6379".parse().unwrap()),
        ..Overrides::default()
    };
    let issuer = load_issuer_with(None, &overrides).unwrap();
    assert!(issuer.redis.unwrap().is_cluster());
}

#[test]
fn check_tells_the_kind_by_flag_then_key_then_name() {
    assert_eq!(
        check_str("x.toml", "kind = \"origin\"", None).unwrap(),
        Kind::Origin
    );
    assert_eq!(
        check_str("conf/origin.prod.toml", "", None).unwrap(),
        Kind::Origin
    );
    assert_eq!(
        check_str("x.toml", "", Some(Kind::Origin)).unwrap(),
        Kind::Origin
    );
    // The key wins over the name.
    assert_eq!(
        check_str(
            "origin.toml",
            "kind = \"issuer\"\nredis = \"redis://r\"",
            None
        )
        .unwrap(),
        Kind::Issuer
    );
    assert_eq!(
        messages(check_str("shouhu.toml", "", None)),
        [
            r#"shouhu.toml: cannot tell which program this config is for: add kind = "proxy", "issuer" or "origin" at the top, name the file like proxy.toml, or pass --kind"#
        ]
    );
    assert_eq!(
        messages(check_str("x.toml", "kind = \"issuer\"", Some(Kind::Origin))),
        [r#"x.toml: kind: this is an issuer config; shouhu origin needs kind = "origin""#]
    );
}

#[test]
fn check_reports_an_unreadable_file_with_the_os_error() {
    let errors = messages(check(Path::new("no/such/proxy.toml"), None));
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0].starts_with("no/such/proxy.toml: cannot read: "),
        "{}",
        errors[0]
    );
}

#[test]
fn routes_classify_requests_first_match_wins() {
    let config = ProxyConfig::default();
    assert_eq!(
        config.classify("GET", "/api/code"),
        (RouteClass::Display, Duration::from_secs(1))
    );
    assert_eq!(config.classify("POST", "/api/code").0, RouteClass::Other);
    assert_eq!(
        config.classify("GET", "/static/app.js").0,
        RouteClass::Static
    );
    assert_eq!(
        config.classify("POST", "/api/verify").1,
        Duration::from_millis(500)
    );

    let config = load_proxy_from_str(
        "p.toml",
        r#"
        [origin]
        url = "http://o:8000"
        [[routes]]
        path = "/api/code"
        class = "display"
        deadline = "800ms"
        "#,
    )
    .unwrap();
    assert_eq!(
        config.classify("HEAD", "/api/code"),
        (RouteClass::Display, Duration::from_millis(800))
    );
    assert_eq!(config.classify("GET", "/code").0, RouteClass::Other);
}

/// Each config written back as TOML reads back the same, options and all.
#[test]
fn configs_round_trip_through_toml() {
    let mut proxy = ProxyConfig {
        kind: Some(Kind::Proxy),
        ..ProxyConfig::default()
    };
    proxy.origin.url = Some(origin_url());
    proxy.fallback.redis = Some(
        "redis://a:6379,rediss://user@b:7000/2"
            .parse::<RedisUrls>()
            .unwrap(),
    );
    proxy.fallback.redis_password = Some(SecretRef::Env("SHOUHU_REDIS_PASSWORD".to_owned()));
    proxy.routes.push(Route {
        method: Method::Put,
        path: Some("/api/profile".parse().unwrap()),
        class: Some(RouteClass::Other),
        deadline: Some(Duration::from_millis(1500)),
    });
    proxy.scan.verify_at_edge = VerifyAtEdge::Always;
    let text = toml::to_string(&proxy).unwrap();
    assert_eq!(
        load_proxy_from_str("p.toml", &text).unwrap(),
        proxy,
        "{text}"
    );

    let issuer = IssuerConfig {
        redis: Some("redis://127.0.0.1:6379".parse().unwrap()),
        ingest_token: Some(SecretRef::File(PathBuf::from("/etc/shouhu/ingest.token"))),
        ..IssuerConfig::default()
    };
    let text = toml::to_string(&issuer).unwrap();
    assert_eq!(
        load_issuer_from_str("i.toml", &text).unwrap(),
        issuer,
        "{text}"
    );

    let mut origin = OriginConfig {
        hmac_secret: Some(SecretRef::File(PathBuf::from("/etc/shouhu/hmac.secret"))),
        ..OriginConfig::default()
    };
    origin.sources.health = Some("http://127.0.0.1:8101".parse().unwrap());
    origin.capacity.enabled = true;
    let text = toml::to_string(&origin).unwrap();
    assert_eq!(
        load_origin_from_str("o.toml", &text).unwrap(),
        origin,
        "{text}"
    );
}
