//! Start-up, before any request: the origin's address and published keys, the fallback
//! signing keys (generated on first start), the snapshot store, the display path and the
//! admin listener. Runs on the background runtime, which also carries Redis and the change
//! feed afterwards.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use shouhu_code::{KeyPair, KeyRole, PublicKey, TrustList, time};
use shouhu_config::ProxyConfig;
use shouhu_config::proxy::SESSION_KEY_WELL_KNOWN_PATH;
use shouhu_fallback::session::SessionVerifier;
use shouhu_fallback::snapshot::FeedFollower;
use shouhu_fallback::{Issuer, Keyring, KeyringError, Policy, SnapshotStore, StoreOptions};

use super::StartError;
use crate::admin::AdminState;
use crate::breaker::{Breaker, BreakerConfig};
use crate::cache::CacheLimits;
use crate::classify::Classifier;
use crate::display::{DEFAULT_FEED_POLL, Display, DisplayParts, FEED_BATCH};
use crate::identity::Identity;
use crate::metrics::Metrics;
use crate::origin_client::OriginClient;
use crate::service::{EdgeTrust, GatewayParts, OriginTimeouts, TRUST_LIST_PATH};

/// Validity of a fallback key generated on first start.
const GENERATED_KEY_VALIDITY: Duration = Duration::from_secs(365 * 24 * 3600);
/// How long start-up waits for the origin to publish its session key.
const ORIGIN_KEY_WAIT: Duration = Duration::from_secs(10);
/// Verified session tokens remembered at once.
const IDENTITY_ENTRIES: u64 = 1_000_000;

/// What start-up produced.
pub(super) struct Prepared {
    pub gateway: GatewayParts,
    pub admin: AdminState,
}

/// Builds everything the gateway and the admin listener need.
pub(super) async fn prepare(config: &ProxyConfig) -> Result<Prepared, StartError> {
    let url = config
        .origin
        .url
        .as_ref()
        .ok_or_else(|| StartError::Origin("origin.url is not set".to_owned()))?;
    let origin = resolve(&url.authority()).await?;
    let base = url.as_str().trim_end_matches('/').to_owned();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .no_proxy()
        .build()
        .map_err(|e| StartError::Origin(e.to_string()))?;

    let verifier = match &config.identity.session_key_file {
        Some(path) => SessionVerifier::load(path).map_err(|e| StartError::Keys(e.to_string()))?,
        None => fetch_session_key(&http, &base).await?,
    };
    let keyring = load_or_create_keys(&config.fallback_key_dir(), &config.fallback.region)?;
    // An existing origin may publish no trust list: edge verification then covers only
    // fallback codes until one is configured.
    let origin_trust = match fetch_text(&http, &format!("{base}{TRUST_LIST_PATH}"))
        .await
        .and_then(|text| {
            TrustList::from_json("origin trust list", &text).map_err(|e| e.to_string())
        }) {
        Ok(list) => list,
        Err(e) => {
            tracing::warn!(error = %e, "origin trust list unavailable: verifying with fallback keys only");
            TrustList::default()
        }
    };
    let trust = Arc::new(EdgeTrust::new(merge(&origin_trust, keyring.trust_list())?));

    let store = match &config.fallback.redis {
        None => None,
        Some(redis) => {
            let password = config
                .fallback
                .redis_password
                .as_ref()
                .map(shouhu_config::SecretRef::read)
                .transpose()
                .map_err(|e| StartError::Redis(e.to_string()))?;
            let store = SnapshotStore::connect(redis, password.as_ref(), StoreOptions::default())
                .await
                .map_err(|e| StartError::Redis(e.to_string()))?;
            if !store.is_connected() {
                tracing::warn!(
                    "redis unreachable at start: fallback codes are unknown until it is back"
                );
            }
            Some(store)
        }
    };
    let issuer = store.clone().map(|store| {
        Issuer::new(
            store,
            keyring.clone(),
            config.fallback.region.clone(),
            Policy {
                code_ttl: config.fallback.code_ttl.into(),
                max_snapshot_age: config.fallback.max_snapshot_age.into(),
            },
        )
    });

    let breaker = Arc::new(Breaker::new(BreakerConfig::from_config(&config.breaker)));
    let connect: Duration = config.origin.connect_timeout.into();
    let read: Duration = config.origin.read_timeout.into();
    let display = Arc::new(Display::new(DisplayParts {
        cache: CacheLimits::from_config(&config.cache),
        breaker: Arc::clone(&breaker),
        origin: OriginClient::from_config(&config.origin)
            .map_err(|e| StartError::Origin(e.to_string()))?,
        issuer,
        deadline: config.deadlines.display.into(),
        refresh_timeout: connect + read,
    }));
    if let Some(store) = &store {
        // Runs until the background runtime shuts down.
        display.spawn_feed_follower(
            FeedFollower::new(store.clone(), FEED_BATCH),
            DEFAULT_FEED_POLL,
            std::future::pending(),
        );
    }

    let metrics = Arc::new(Metrics::new().map_err(|e| StartError::Internal(e.to_string()))?);
    let idle = if config.origin.keepalive_pool == 0 {
        Duration::ZERO
    } else {
        config.origin.idle_timeout.into()
    };
    let gateway = GatewayParts {
        classifier: Classifier::new(config),
        identity: Arc::new(Identity::new(verifier, IDENTITY_ENTRIES)),
        cookie_name: config.identity.cookie_name.clone(),
        breaker: Arc::clone(&breaker),
        display: Some(Arc::clone(&display) as Arc<dyn crate::service::DisplayPath>),
        trust: Arc::clone(&trust),
        verify_always: config.scan.verify_at_edge == shouhu_config::proxy::VerifyAtEdge::Always,
        origin,
        origin_host: url.host().to_owned(),
        timeouts: OriginTimeouts {
            connect,
            read,
            idle,
        },
        metrics: Arc::clone(&metrics),
    };
    let admin = AdminState {
        metrics,
        breaker,
        cache: Some(Arc::clone(display.cache())),
        store,
        trust,
        fallback_keys: keyring.signer(time::now()).is_some(),
    };
    Ok(Prepared { gateway, admin })
}

/// The origin's socket address: resolved once here, because `HttpPeer::new` with a host
/// name resolves on the request path and panics when that fails.
async fn resolve(authority: &str) -> Result<SocketAddr, StartError> {
    tokio::net::lookup_host(authority)
        .await
        .map_err(|e| StartError::Origin(format!("{authority}: {e}")))?
        .next()
        .ok_or_else(|| StartError::Origin(format!("{authority}: no address")))
}

async fn fetch_text(http: &reqwest::Client, url: &str) -> Result<String, String> {
    let response = http.get(url).send().await.map_err(|e| e.to_string())?;
    if !response.status().is_success() {
        return Err(format!("{url}: {}", response.status()));
    }
    response.text().await.map_err(|e| e.to_string())
}

/// The origin's session key from its well-known URL, retried while the origin starts.
async fn fetch_session_key(
    http: &reqwest::Client,
    base: &str,
) -> Result<SessionVerifier, StartError> {
    let url = format!("{base}{SESSION_KEY_WELL_KNOWN_PATH}");
    let started = Instant::now();
    loop {
        match fetch_text(http, &url).await {
            Ok(text) => {
                return SessionVerifier::from_text(&text)
                    .map_err(|e| StartError::Keys(format!("{url}: {e}")));
            }
            Err(e) if started.elapsed() >= ORIGIN_KEY_WAIT => {
                return Err(StartError::Keys(format!(
                    "{url}: {e} (set identity.session_key_file to start without the origin)"
                )));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// The fallback keys of `region` in `dir`; a new key (valid a year) when there is none.
fn load_or_create_keys(dir: &Path, region: &shouhu_code::Region) -> Result<Keyring, StartError> {
    match Keyring::load(dir, region) {
        Err(KeyringError::NoKey { .. } | KeyringError::Folder { .. }) => {
            let now = time::now();
            let pair = KeyPair::generate(
                KeyRole::Fallback,
                region.clone(),
                now,
                now.saturating_add(GENERATED_KEY_VALIDITY.as_secs()),
            )
            .map_err(|e| StartError::Keys(e.to_string()))?;
            pair.write_to_dir(dir).map_err(|e| {
                StartError::Keys(format!(
                    "{}: writing a new fallback key: {e}",
                    dir.display()
                ))
            })?;
            tracing::warn!(kid = %pair.kid(), dir = %dir.display(),
                "no fallback signing key found: generated one; publish the trust list to verifiers");
            Keyring::load(dir, region).map_err(|e| StartError::Keys(e.to_string()))
        }
        other => other.map_err(|e| StartError::Keys(e.to_string())),
    }
}

/// The origin's keys and ours, each once.
fn merge(origin: &TrustList, ours: &TrustList) -> Result<TrustList, StartError> {
    let mut keys: Vec<PublicKey> = origin.keys().to_vec();
    for key in ours.keys() {
        if !keys.contains(key) {
            keys.push(key.clone());
        }
    }
    TrustList::new(keys).map_err(|e| StartError::Keys(e.to_string()))
}
