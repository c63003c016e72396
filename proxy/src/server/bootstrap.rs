//! Start-up, before any request: the origin's address and published keys, the fallback
//! signing keys (generated on first start), the snapshot store, the journal and its
//! replayer, the display path and the admin listener. Runs on the background runtime, which
//! also carries Redis, the change feed and the replayer afterwards.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use shouhu_code::{KeyPair, KeyRole, PublicKey, TrustList, time};
use shouhu_config::ProxyConfig;
use shouhu_config::proxy::SESSION_KEY_WELL_KNOWN_PATH;
use shouhu_fallback::journal::replayer::{Replayer, ReplayerOptions};
use shouhu_fallback::journal::{Journal, JournalOptions};
use shouhu_fallback::session::SessionVerifier;
use shouhu_fallback::snapshot::FeedFollower;
use shouhu_fallback::{Issuer, Keyring, KeyringError, Policy, SnapshotStore, StoreOptions};

use super::StartError;
use super::reload::Reloader;
use crate::admin::AdminState;
use crate::admission::{Admission, AdmissionConfig};
use crate::breaker::{Breaker, BreakerConfig, BreakerState};
use crate::classify::Classifier;
use crate::display::{DEFAULT_FEED_POLL, Display, DisplayParts, FEED_BATCH};
use crate::identity::Identity;
use crate::metrics::Metrics;
use crate::ratelimit::RateLimits;
use crate::service::{
    DeclareJournal, EdgeTrust, GatewayParts, Live, OriginTimeouts, TRUST_LIST_PATH,
};
use crate::waiting_room::WaitingRoom;

/// Validity of a fallback key generated on first start.
const GENERATED_KEY_VALIDITY: Duration = Duration::from_secs(365 * 24 * 3600);
/// How long start-up waits for the origin to publish its session key.
const ORIGIN_KEY_WAIT: Duration = Duration::from_secs(10);
/// Verified session tokens remembered at once.
pub(super) const IDENTITY_ENTRIES: u64 = 1_000_000;
/// Limit on one replayed declaration.
const REPLAY_TIMEOUT: Duration = Duration::from_secs(2);
/// How often idle rate-limit keys are dropped.
const RATE_LIMIT_HOUSEKEEPING: Duration = Duration::from_secs(10);
/// How often the waiting room hears what the origin has room for.
const SPARE_EVERY: Duration = Duration::from_millis(500);
/// Origin calls one registration takes (the page, register, login).
const CALLS_PER_REGISTRATION: f64 = 3.0;
/// Share of the origin's calls the waiting room may always use, however busy it is, so
/// registrations trickle on under a surge of code displays.
const REGISTRATION_FLOOR_SHARE: f64 = 0.1;

/// What start-up produced.
pub(super) struct Prepared {
    pub gateway: GatewayParts,
    pub admin: AdminState,
    pub reloader: Reloader,
    /// The journal's replayer, to run on the background runtime while the breaker is closed.
    pub replayer: Option<Replayer>,
    /// The waiting room, to be told what the origin has room for.
    pub waiting_room: Option<Arc<WaitingRoom>>,
}

/// The session key as published (or in its file) and its verifier.
pub(super) struct SessionKey {
    pub text: String,
    pub verifier: SessionVerifier,
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

    let session_key = session_key(config, &http, &base, ORIGIN_KEY_WAIT).await?;
    let keyring = load_or_create_keys(&config.fallback_key_dir(), &config.fallback.region)?;
    // An existing origin may publish no trust list: edge verification then covers only
    // fallback codes until one is configured.
    let origin_trust = origin_trust_list(&http, &base).await.unwrap_or_else(|e| {
        tracing::warn!(error = %e, "origin trust list unavailable: verifying with fallback keys only");
        TrustList::default()
    });
    let trust = Arc::new(EdgeTrust::new(merge(&origin_trust, keyring.trust_list())?));

    let store = match &config.fallback.redis {
        None => None,
        Some(redis) => {
            let password = redis_password(config)?;
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

    let journal = match (&config.fallback.redis, config.journal.enabled) {
        (Some(redis), true) => Some(open_journal(config, redis).await?),
        (None, true) => {
            tracing::warn!(
                "no fallback.redis: declarations made while the origin is down get 503, not a receipt"
            );
            None
        }
        (_, false) => None,
    };

    let breaker = Arc::new(Breaker::new(BreakerConfig::from_config(&config.breaker)));
    let admission = Admission::new(AdmissionConfig::from_config(
        &config.admission,
        config.origin.max_in_flight,
    ));
    {
        // The origin comes back cold: find its capacity again from a low limit.
        let admission = Arc::clone(&admission);
        breaker.on_close(move || admission.slow_start());
    }
    let display = Arc::new(Display::new(
        DisplayParts::from_config(
            config,
            Arc::clone(&breaker),
            Arc::clone(&admission),
            issuer.clone(),
        )
        .map_err(|e| StartError::Origin(e.to_string()))?,
    ));
    if let Some(store) = &store {
        // Runs until the background runtime shuts down.
        display.spawn_feed_follower(
            FeedFollower::new(store.clone(), FEED_BATCH),
            DEFAULT_FEED_POLL,
            std::future::pending(),
        );
    }

    let replayer = journal
        .as_ref()
        .map(|journal| {
            Replayer::new(
                journal.clone(),
                ReplayerOptions {
                    origin: base.clone(),
                    consumer: config.journal.consumer.clone(),
                    rate_per_sec: config.journal.replay_rate,
                    request_timeout: REPLAY_TIMEOUT,
                    ..ReplayerOptions::default()
                },
            )
        })
        .transpose()
        .map_err(|e| StartError::Redis(e.to_string()))?;

    let metrics = Arc::new(Metrics::new().map_err(|e| StartError::Internal(e.to_string()))?);
    let rate_limits = Arc::new(RateLimits::new(&config.rate_limit));
    let identity = Arc::new(Identity::new(session_key.verifier, IDENTITY_ENTRIES));
    let live = Arc::new(ArcSwap::from_pointee(live(config, Arc::clone(&identity))));
    let mut gateway = GatewayParts {
        live: Arc::clone(&live),
        breaker: Arc::clone(&breaker),
        admission: Arc::clone(&admission),
        display: Some(Arc::clone(&display) as Arc<dyn crate::service::DisplayPath>),
        trust: Arc::clone(&trust),
        journal: journal.clone().map(|journal| DeclareJournal { journal }),
        origin,
        origin_host: url.host().to_owned(),
        metrics: Arc::clone(&metrics),
        waiting_room: None,
        rate_limits: Arc::clone(&rate_limits),
    };
    let waiting_room = if config.waiting_room.enabled {
        let key = crate::waiting_room::load_key(config)
            .map_err(|e| StartError::Keys(format!("waiting room: {e}")))?;
        Some(Arc::new(WaitingRoom::new(&config.waiting_room, &key)))
    } else {
        None
    };
    gateway.waiting_room = waiting_room.clone();
    let admin = AdminState {
        metrics: Arc::clone(&metrics),
        breaker: Arc::clone(&breaker),
        admission: Arc::clone(&admission),
        cache: Some(Arc::clone(display.cache())),
        store,
        journal,
        replay: replayer.as_ref().map(Replayer::counters),
        trust: Arc::clone(&trust),
        fallback_keys: keyring.signer(time::now()).is_some(),
        waiting_room: waiting_room.clone(),
        rate_limits: Arc::clone(&rate_limits),
    };
    let reloader = Reloader {
        waiting_room: waiting_room.clone(),
        running: std::sync::Mutex::new(config.clone()),
        live,
        identity: std::sync::Mutex::new((session_key.text, identity)),
        breaker,
        admission,
        trust,
        origin_trust: std::sync::Mutex::new(origin_trust),
        issuer,
        http,
        base,
        metrics,
    };
    Ok(Prepared {
        gateway,
        admin,
        reloader,
        replayer,
        waiting_room,
    })
}

/// What a reload replaces as one value.
pub(super) fn live(config: &ProxyConfig, identity: Arc<Identity>) -> Live {
    let idle = if config.origin.keepalive_pool == 0 {
        Duration::ZERO
    } else {
        config.origin.idle_timeout.into()
    };
    Live {
        classifier: Classifier::new(config),
        identity,
        cookie_name: config.identity.cookie_name.clone(),
        verify_always: config.scan.verify_at_edge == shouhu_config::proxy::VerifyAtEdge::Always,
        timeouts: OriginTimeouts {
            connect: config.origin.connect_timeout.into(),
            read: config.origin.read_timeout.into(),
            idle,
        },
        journal_max_body: usize::try_from(config.journal.max_body.bytes()).unwrap_or(usize::MAX),
    }
}

/// Tells the waiting room, every [`SPARE_EVERY`], how many people per second the origin has
/// room for: the calls admission has free (at least [`REGISTRATION_FLOOR_SHARE`] of its
/// limit; only that share while a queue stands) over the origin's recent latency, divided by
/// [`CALLS_PER_REGISTRATION`]. Before any latency is measured there is no limit.
pub(super) fn spawn_spare_feed(
    runtime: &tokio::runtime::Runtime,
    room: Arc<WaitingRoom>,
    admission: Arc<Admission>,
) {
    runtime.spawn(async move {
        let mut tick = tokio::time::interval(SPARE_EVERY);
        loop {
            tick.tick().await;
            let snap = admission.snapshot();
            #[expect(clippy::cast_precision_loss, reason = "a limit is far below 2^52")]
            let (limit, in_flight) = (snap.limit as f64, snap.in_flight as f64);
            let floor = limit * REGISTRATION_FLOOR_SHARE;
            let free = if snap.standing {
                floor
            } else {
                (limit - in_flight).max(floor)
            };
            let spare = match snap.latency.or(snap.baseline) {
                Some(latency) => {
                    let latency = latency.max(Duration::from_millis(1)).as_secs_f64();
                    free / latency / CALLS_PER_REGISTRATION
                }
                None => f64::INFINITY,
            };
            room.note_spare(spare);
        }
    });
}

/// Drops idle rate-limit keys every [`RATE_LIMIT_HOUSEKEEPING`].
pub(super) fn spawn_rate_limit_housekeeping(
    runtime: &tokio::runtime::Runtime,
    limits: Arc<RateLimits>,
) {
    runtime.spawn(async move {
        let mut tick = tokio::time::interval(RATE_LIMIT_HOUSEKEEPING);
        loop {
            tick.tick().await;
            limits.housekeeping();
        }
    });
}

/// Runs the replayer while the breaker is not open (closed, or half-open after its
/// cool-down: the replayer's first request is then a probe of its own, backed off on
/// failure), until the runtime shuts down.
pub(super) fn spawn_replayer(
    runtime: &tokio::runtime::Runtime,
    replayer: Replayer,
    breaker: Arc<Breaker>,
) {
    runtime.spawn(replayer.run_when(std::future::pending(), move || {
        breaker.state() != BreakerState::Open
    }));
}

/// `fallback.redis_password`, read from its file or variable.
fn redis_password(config: &ProxyConfig) -> Result<Option<shouhu_config::Secret>, StartError> {
    config
        .fallback
        .redis_password
        .as_ref()
        .map(shouhu_config::SecretRef::read)
        .transpose()
        .map_err(|e| StartError::Redis(e.to_string()))
}

async fn open_journal(
    config: &ProxyConfig,
    redis: &shouhu_config::RedisUrls,
) -> Result<Journal, StartError> {
    let password = redis_password(config)?;
    Journal::connect(
        redis,
        password.as_ref(),
        JournalOptions {
            max_body_bytes: usize::try_from(config.journal.max_body.bytes()).unwrap_or(usize::MAX),
            ..JournalOptions::default()
        },
    )
    .await
    .map_err(|e| StartError::Redis(e.to_string()))
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

/// The session key from `identity.session_key_file`, or else from the origin's well-known
/// URL, retried for up to `wait` while the origin starts.
pub(super) async fn session_key(
    config: &ProxyConfig,
    http: &reqwest::Client,
    base: &str,
    wait: Duration,
) -> Result<SessionKey, StartError> {
    if let Some(path) = &config.identity.session_key_file {
        let text = std::fs::read_to_string(path).map_err(|e| {
            StartError::Keys(format!("identity.session_key_file {}: {e}", path.display()))
        })?;
        let verifier = SessionVerifier::from_text(&text).map_err(|e| {
            StartError::Keys(format!("identity.session_key_file {}: {e}", path.display()))
        })?;
        return Ok(SessionKey {
            text: text.trim().to_owned(),
            verifier,
        });
    }
    let url = format!("{base}{SESSION_KEY_WELL_KNOWN_PATH}");
    let started = Instant::now();
    loop {
        match fetch_text(http, &url).await {
            Ok(text) => {
                let verifier = SessionVerifier::from_text(&text)
                    .map_err(|e| StartError::Keys(format!("{url}: {e}")))?;
                return Ok(SessionKey {
                    text: text.trim().to_owned(),
                    verifier,
                });
            }
            Err(e) if started.elapsed() >= wait => {
                return Err(StartError::Keys(format!(
                    "{url}: {e} (set identity.session_key_file to start without the origin)"
                )));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// The trust list the origin publishes.
pub(super) async fn origin_trust_list(
    http: &reqwest::Client,
    base: &str,
) -> Result<TrustList, String> {
    let text = fetch_text(http, &format!("{base}{TRUST_LIST_PATH}")).await?;
    TrustList::from_json("origin trust list", &text).map_err(|e| e.to_string())
}

/// The fallback keys of `region` in `dir`; a new key (valid a year) when there is none.
pub(super) fn load_or_create_keys(
    dir: &Path,
    region: &shouhu_code::Region,
) -> Result<Keyring, StartError> {
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
pub(super) fn merge(origin: &TrustList, ours: &TrustList) -> Result<TrustList, StartError> {
    let mut keys: Vec<PublicKey> = origin.keys().to_vec();
    for key in ours.keys() {
        if !keys.contains(key) {
            keys.push(key.clone());
        }
    }
    TrustList::new(keys).map_err(|e| StartError::Keys(e.to_string()))
}
