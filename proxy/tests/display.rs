//! The display path against a small real origin (an axum stub on an ephemeral port that signs
//! real codes, counts requests and can hang or fail), a private `redis-server` and the real
//! fallback issuer: single flight, stale-while-revalidate, the breaker, deadlines, the change
//! feed, and that nobody ever gets another person's code.
#![expect(clippy::unwrap_used, reason = "tests")]

use std::collections::HashMap;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use shouhu_code::time::now;
use shouhu_code::{
    Claims, CodeId, CodeView, Colour, KeyPair, KeyRole, Region, Source, SubjectId, TrustList,
    VerifyPolicy, verify,
};
use shouhu_config::RedisUrls;
use shouhu_fallback::session::{SessionSigner, SessionVerifier, token_from_headers};
use shouhu_fallback::snapshot::FeedFollower;
use shouhu_fallback::{Issuer, Keyring, Policy, Record, SnapshotStore, StoreOptions};
use shouhu_proxy::breaker::{Breaker, BreakerConfig, BreakerState};
use shouhu_proxy::cache::CacheLimits;
use shouhu_proxy::display::{Display, DisplayParts, DisplayRequest, DisplayResponse, Format};
use shouhu_proxy::origin_client::OriginClient;
use shouhu_proxy::outcome::{Outcome, ServedFrom};
use shouhu_testkit::RedisServer;
use tokio::time::Instant;

const DEADLINE: Duration = Duration::from_millis(500);

/// What the stub origin does with `/api/code`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
enum Mode {
    Normal = 0,
    /// Answers after 300 ms.
    Slow = 1,
    /// Never answers.
    Hang = 2,
    /// 500.
    Error = 3,
    /// A valid origin code, but for another subject: an origin that mixes up sessions.
    Mixup = 4,
}

struct OriginState {
    verifier: SessionVerifier,
    key: KeyPair,
    mode: AtomicU8,
    requests: AtomicUsize,
    colours: Mutex<HashMap<SubjectId, (Colour, u64)>>,
}

/// The stub origin: real session tokens, real signed codes.
struct Origin {
    state: Arc<OriginState>,
    url: String,
}

impl Origin {
    async fn start(signer: &SessionSigner) -> Self {
        let state = Arc::new(OriginState {
            verifier: SessionVerifier::from_text(&signer.key_json()).unwrap(),
            key: KeyPair::generate(KeyRole::Origin, region(), now() - 60, now() + 86_400).unwrap(),
            mode: AtomicU8::new(Mode::Normal as u8),
            requests: AtomicUsize::new(0),
            colours: Mutex::new(HashMap::new()),
        });
        let app = axum::Router::new()
            .route("/api/code", axum::routing::get(code))
            .with_state(Arc::clone(&state));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { state, url }
    }

    fn set_mode(&self, mode: Mode) {
        self.state.mode.store(mode as u8, Ordering::SeqCst);
    }

    fn requests(&self) -> usize {
        self.state.requests.load(Ordering::SeqCst)
    }

    fn set_colour(&self, subject: SubjectId, colour: Colour, as_of: u64) {
        self.state
            .colours
            .lock()
            .unwrap()
            .insert(subject, (colour, as_of));
    }
}

async fn code(State(s): State<Arc<OriginState>>, headers: HeaderMap) -> Response {
    s.requests.fetch_add(1, Ordering::SeqCst);
    match s.mode.load(Ordering::SeqCst) {
        1 => tokio::time::sleep(Duration::from_millis(300)).await,
        2 => std::future::pending::<()>().await,
        3 => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        _ => {}
    }
    let Some(subject) = token_from_headers(&headers).and_then(|t| s.verifier.verify(&t).ok())
    else {
        return (
            StatusCode::UNAUTHORIZED,
            [("content-type", "application/json")],
            r#"{"error":"invalid_token"}"#,
        )
            .into_response();
    };
    let subject = if s.mode.load(Ordering::SeqCst) == Mode::Mixup as u8 {
        let mut other = subject;
        other.0[0] ^= 0xff;
        other
    } else {
        subject
    };
    let t = now();
    let (colour, as_of) = s
        .colours
        .lock()
        .unwrap()
        .get(&subject)
        .copied()
        .unwrap_or((Colour::Green, t - 10));
    let claims = Claims {
        issuer: region(),
        issued_at: t,
        expires_at: t + 300,
        code_id: CodeId::random().unwrap(),
        colour,
        subject,
        masked_name: "张*".to_owned(),
        id_last4: "123X".to_owned(),
        source: Source::Origin,
        as_of,
        ruleset_version: 1,
    };
    let view = CodeView::new(&claims, &s.key.sign(&claims).unwrap());
    axum::Json(view).into_response()
}

fn region() -> Region {
    "370000".parse().unwrap()
}

fn subject(n: u32) -> SubjectId {
    let mut id = [0x5a; 16];
    id[..4].copy_from_slice(&n.to_be_bytes());
    SubjectId(id)
}

/// Origin, Redis, issuer and the display path, wired as the proxy wires them.
struct Rig {
    signer: SessionSigner,
    origin: Origin,
    redis: RedisServer,
    issuer: Issuer,
    display: Arc<Display>,
    trust: TrustList,
}

struct Options {
    ttl: Duration,
    breaker: BreakerConfig,
    with_issuer: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(30),
            breaker: BreakerConfig::default(),
            with_issuer: true,
        }
    }
}

impl Rig {
    async fn start(options: Options) -> Self {
        let signer = SessionSigner::from_seed([42; 32]);
        let origin = Origin::start(&signer).await;
        let redis = RedisServer::start();
        let urls: RedisUrls = redis.url().parse().unwrap();
        let store = SnapshotStore::connect(&urls, None, StoreOptions::default())
            .await
            .unwrap();
        store.set_watermark(now()).await.unwrap();
        let fallback_key =
            KeyPair::generate(KeyRole::Fallback, region(), now() - 60, now() + 86_400).unwrap();
        let keys = Keyring::from_parts(vec![fallback_key], vec![origin.state.key.public().clone()])
            .unwrap();
        let issuer = Issuer::new(
            store,
            keys,
            region(),
            Policy {
                code_ttl: Duration::from_secs(300),
                max_snapshot_age: Duration::from_secs(900),
            },
        );
        let trust = issuer.trust_list();
        let display = Arc::new(Display::new(DisplayParts {
            cache: CacheLimits {
                ttl: options.ttl,
                max_stale: Duration::from_secs(300),
                max_entries: 100_000,
                max_bytes: 1 << 30,
            },
            breaker: Arc::new(Breaker::new(options.breaker)),
            admission: shouhu_proxy::admission::Admission::new(
                shouhu_proxy::admission::AdmissionConfig {
                    adaptive: false,
                    ..shouhu_proxy::admission::AdmissionConfig::from_config(&Default::default(), 0)
                },
            ),
            origin: OriginClient::new(
                &origin.url,
                Duration::from_millis(250),
                Duration::from_secs(60),
                16,
            )
            .unwrap(),
            issuer: options.with_issuer.then(|| issuer.clone()),
            deadline: DEADLINE,
            refresh_timeout: Duration::from_secs(2),
        }));
        Self {
            signer,
            origin,
            redis,
            issuer,
            display,
            trust,
        }
    }

    fn token(&self, s: SubjectId) -> String {
        let t = now();
        self.signer.token(&s, t, t + 3600).unwrap()
    }

    async fn show(&self, s: SubjectId) -> DisplayResponse {
        let token = self.token(s);
        self.display
            .serve(DisplayRequest {
                subject: s,
                token: &token,
                format: Format::Json,
                deadline: None,
                may_fetch: true,
            })
            .await
    }

    /// The claims a scanner would read from the answer; the code must verify.
    fn scanned(&self, r: &DisplayResponse) -> Claims {
        assert_eq!(r.status, 200, "{:?}", String::from_utf8_lossy(&r.body));
        let view: CodeView = serde_json::from_slice(&r.body).unwrap();
        verify(&view.code, &self.trust, now(), &VerifyPolicy::default())
            .unwrap()
            .claims
    }
}

/// Polls `check` every 10 ms until it holds or `limit` passes.
async fn eventually(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if check() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    check()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_misses_make_one_origin_request_and_then_hit_the_cache() {
    let rig = Arc::new(Rig::start(Options::default()).await);
    rig.origin.set_mode(Mode::Slow);
    let s = subject(1);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..50 {
        let rig = Arc::clone(&rig);
        tasks.spawn(async move { rig.show(s).await });
    }
    while let Some(r) = tasks.join_next().await {
        let r = r.unwrap();
        assert_eq!(r.outcome, Outcome::Origin);
        assert_eq!(rig.scanned(&r).subject, s);
    }
    assert_eq!(rig.origin.requests(), 1);
    let again = rig.show(s).await;
    assert_eq!(again.outcome, Outcome::CacheFresh);
    assert_eq!(again.source, ServedFrom::Cache);
    assert_eq!(rig.origin.requests(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stale_code_is_served_at_once_and_refreshed_in_the_background() {
    let rig = Rig::start(Options {
        ttl: Duration::from_millis(100),
        ..Options::default()
    })
    .await;
    let s = subject(2);
    let first = rig.show(s).await;
    assert_eq!(first.outcome, Outcome::Origin);
    // Let the entry age past its TTL (the scenario, not synchronisation).
    tokio::time::sleep(Duration::from_millis(150)).await;
    rig.origin.set_mode(Mode::Slow);
    let started = Instant::now();
    let stale = rig.show(s).await;
    assert!(
        started.elapsed() < Duration::from_millis(100),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(stale.outcome, Outcome::CacheStale);
    assert_eq!(stale.body, first.body);
    // More stale hits start no second refresh.
    for _ in 0..20 {
        assert_eq!(rig.show(s).await.outcome, Outcome::CacheStale);
    }
    assert!(eventually(Duration::from_secs(3), || rig.origin.requests() == 2).await);
    assert!(
        eventually(Duration::from_secs(3), || {
            rig.display
                .cache()
                .get(&s)
                .is_some_and(|e| e.view().code != rig.scanned_code(&first))
        })
        .await
    );
    let fresh = rig.show(s).await;
    assert_eq!(fresh.outcome, Outcome::CacheFresh);
    assert_ne!(fresh.body, first.body);
    assert_eq!(rig.origin.requests(), 2);
}

impl Rig {
    fn scanned_code(&self, r: &DisplayResponse) -> String {
        serde_json::from_slice::<CodeView>(&r.body).unwrap().code
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hanging_origin_opens_the_breaker_and_then_nobody_waits() {
    let rig = Rig::start(Options::default()).await;
    rig.origin.set_mode(Mode::Hang);
    let mut n = 100;
    // Until the breaker opens, each request waits out the origin part of its deadline, and is
    // still answered (by fallback) within the deadline.
    while rig.display.breaker().state() == BreakerState::Closed {
        n += 1;
        assert!(n < 100 + 10, "the breaker never opened");
        let started = Instant::now();
        let r = rig.show(subject(n)).await;
        assert!(started.elapsed() < DEADLINE + Duration::from_millis(100));
        assert_eq!(
            r.source,
            ServedFrom::Unknown,
            "not in the snapshot: unknown"
        );
        assert_eq!(rig.scanned(&r).subject, subject(n));
        // The fetch records its timeout just after the citizen's wait ends.
        assert!(
            eventually(Duration::from_secs(2), || rig.display.fetches_in_flight()
                == 0)
            .await
        );
    }
    let asked = rig.origin.requests();
    assert_eq!(asked, 3, "consecutive timeouts open it");
    for i in 0..50 {
        let started = Instant::now();
        let r = rig.show(subject(1000 + i)).await;
        assert!(
            started.elapsed() < Duration::from_millis(100),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(r.status, 200);
    }
    assert_eq!(
        rig.origin.requests(),
        asked,
        "nobody asked the open breaker's origin"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_requests_to_a_hanging_origin_are_answered_within_the_deadline() {
    let rig = Arc::new(Rig::start(Options::default()).await);
    let t = now();
    for i in 0..40 {
        rig.issuer
            .store()
            .put(
                &subject(i),
                &Record {
                    colour: if i % 2 == 0 {
                        Colour::Green
                    } else {
                        Colour::Red
                    },
                    as_of: t - 60,
                    ruleset_version: 1,
                    masked_name: "王*".to_owned(),
                    id_last4: "0001".to_owned(),
                },
            )
            .await
            .unwrap();
    }
    rig.origin.set_mode(Mode::Hang);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..40 {
        let rig = Arc::clone(&rig);
        tasks.spawn(async move {
            let started = Instant::now();
            let r = rig.show(subject(i)).await;
            (i, started.elapsed(), r)
        });
    }
    while let Some(joined) = tasks.join_next().await {
        let (i, took, r) = joined.unwrap();
        assert!(took < DEADLINE + Duration::from_millis(100), "{took:?}");
        assert_eq!(r.outcome, Outcome::Fallback);
        let claims = rig.scanned(&r);
        assert_eq!(claims.subject, subject(i));
        assert_eq!(claims.source, Source::Fallback);
        let want = if i % 2 == 0 {
            Colour::Green
        } else {
            Colour::Red
        };
        assert_eq!(claims.colour, want);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_red_on_the_change_feed_replaces_a_cached_green() {
    let rig = Rig::start(Options::default()).await;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let follower = rig.display.spawn_feed_follower(
        FeedFollower::new(rig.issuer.store().clone(), 100),
        Duration::from_millis(20),
        async move {
            let _ = stopped.await;
        },
    );
    let s = subject(7);
    let green = rig.show(s).await;
    assert_eq!(rig.scanned(&green).colour, Colour::Green);
    // The follower's first poll resets the cache (it cannot know what it missed before).
    let end = Instant::now() + Duration::from_secs(3);
    while rig.show(s).await.outcome != Outcome::CacheFresh {
        assert!(Instant::now() < end, "the green was never cached");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // Marked a close contact; the origin's publisher writes the snapshot, then the origin
    // goes down before the citizen looks again.
    let t = now();
    rig.origin.set_colour(s, Colour::Red, t);
    rig.issuer.store().set_watermark(t).await.unwrap();
    rig.issuer
        .store()
        .put(
            &s,
            &Record {
                colour: Colour::Red,
                as_of: t,
                ruleset_version: 1,
                masked_name: "张*".to_owned(),
                id_last4: "123X".to_owned(),
            },
        )
        .await
        .unwrap();
    assert!(
        eventually(Duration::from_secs(3), || rig
            .display
            .cache()
            .get(&s)
            .is_none())
        .await,
        "the feed dropped the cached green"
    );
    rig.origin.set_mode(Mode::Error);
    let r = rig.show(s).await;
    assert_eq!(r.outcome, Outcome::Fallback);
    assert_eq!(rig.scanned(&r).colour, Colour::Red);

    // Origin back: it says red too, and that is what gets cached.
    rig.origin.set_mode(Mode::Normal);
    let r = rig.show(s).await;
    assert_eq!(r.outcome, Outcome::Origin);
    assert_eq!(rig.scanned(&r).colour, Colour::Red);
    stop.send(()).unwrap();
    follower.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_users_at_once_each_get_their_own_code() {
    let rig = Arc::new(
        Rig::start(Options {
            // Fail over often: mixes origin, cache and fallback answers.
            breaker: BreakerConfig {
                consecutive_failures: 1000,
                consecutive_timeouts: 1000,
                min_requests: 1_000_000,
                ..BreakerConfig::default()
            },
            ..Options::default()
        })
        .await,
    );
    let mut tasks = tokio::task::JoinSet::new();
    for round in 0..4 {
        rig.origin.set_mode(if round == 2 {
            Mode::Error
        } else {
            Mode::Normal
        });
        for u in 0..100 {
            for _ in 0..3 {
                let rig = Arc::clone(&rig);
                tasks.spawn(async move {
                    let r = rig.show(subject(u)).await;
                    (u, r)
                });
            }
        }
        let mut sources = HashMap::new();
        while let Some(joined) = tasks.join_next().await {
            let (u, r) = joined.unwrap();
            *sources.entry(r.source).or_insert(0) += 1;
            assert_eq!(rig.scanned(&r).subject, subject(u), "round {round}");
        }
        assert_eq!(sources.values().sum::<usize>(), 300, "{sources:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_origin_no_cache_no_issuer_is_a_fast_bilingual_503() {
    let rig = Rig::start(Options {
        with_issuer: false,
        ..Options::default()
    })
    .await;
    rig.origin.set_mode(Mode::Error);
    let r = rig.show(subject(9)).await;
    assert_eq!(r.status, 503);
    assert_eq!(r.source, ServedFrom::Unknown);
    assert_eq!(r.cache_control, "no-store");
    assert!(r.retry_after.is_some_and(|s| s >= 1));
    let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert!(body["message"].as_str().unwrap().contains("staff"));
    assert!(body["message_zh"].as_str().unwrap().contains("人工核验"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_origin_and_redis_down_a_cached_code_then_an_unknown_code() {
    let mut rig = Rig::start(Options::default()).await;
    let s = subject(11);
    let first = rig.show(s).await;
    assert_eq!(first.outcome, Outcome::Origin);
    rig.redis.kill();
    rig.origin.set_mode(Mode::Error);
    let cached = rig.show(s).await;
    // Fresh in the cache: served as is, nobody asked.
    assert_eq!(cached.outcome, Outcome::CacheFresh);
    let never_seen = rig.show(subject(12)).await;
    assert_eq!(never_seen.outcome, Outcome::FallbackUnknown);
    assert_eq!(never_seen.source, ServedFrom::Unknown);
    assert_eq!(rig.scanned(&never_seen).colour, Colour::Unknown);
    assert_eq!(never_seen.cache_control, "no-store");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_origin_code_naming_someone_else_is_never_served_or_cached() {
    let rig = Rig::start(Options::default()).await;
    rig.origin.set_mode(Mode::Mixup);
    let s = subject(14);
    let r = rig.show(s).await;
    assert_ne!(r.source, ServedFrom::Origin);
    assert_eq!(
        rig.scanned(&r).subject,
        s,
        "the fallback code is the requester's own"
    );
    assert!(rig.display.cache().get(&s).is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_origins_refusal_of_a_session_is_passed_on_and_is_no_failure() {
    let rig = Rig::start(Options::default()).await;
    // Signed by a key the origin does not know: the origin answers 401.
    let other = SessionSigner::from_seed([1; 32]);
    let s = subject(13);
    for _ in 0..10 {
        let token = other.token(&s, now(), now() + 600).unwrap();
        let r = rig
            .display
            .serve(DisplayRequest {
                subject: s,
                token: &token,
                format: Format::Html,
                deadline: None,
                may_fetch: true,
            })
            .await;
        assert_eq!(r.status, 401);
        assert_eq!(r.outcome, Outcome::OriginDenied);
    }
    assert_eq!(rig.display.breaker().state(), BreakerState::Closed);
    assert!(rig.display.cache().get(&s).is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn html_answers_are_the_origins_page() {
    let rig = Rig::start(Options::default()).await;
    let s = subject(14);
    let token = rig.token(s);
    let req = DisplayRequest {
        subject: s,
        token: &token,
        format: Format::Html,
        deadline: None,
        may_fetch: true,
    };
    let r = rig.display.serve(req).await;
    assert_eq!(r.content_type, "text/html; charset=utf-8");
    let cached = rig.display.serve(req).await;
    assert_eq!(cached.outcome, Outcome::CacheFresh);
    let view = rig.display.cache().get(&s).unwrap().view().clone();
    let at = now();
    let cached = rig.display.serve(req).await;
    assert!(
        (at..=now()).any(|t| cached.body == shouhu_code::render_page(&view, t).as_bytes()),
        "the cached page is the origin's page, reload time included"
    );
}
