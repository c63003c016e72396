//! Putting the origin together: [`Origin::build`] loads keys, opens the database, reads the
//! ruleset, starts the in-process data-source simulators and the snapshot publisher;
//! [`Origin::serve`] runs the citizen and admin listeners (bound by the caller, so tests pass
//! `127.0.0.1:0` listeners) until the shutdown future resolves.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use shouhu_code::SubjectId;
use shouhu_config::OriginConfig;
use shouhu_fallback::{SnapshotStore, StoreOptions};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

use crate::admin::{self, Admin};
use crate::app::{self, App};
use crate::capacity::{CapacityModel, Params};
use crate::datasource::{self, Knobs, Simulator, SourceKind};
use crate::fault::{Fault, FaultMode, Gate, GatedListener};
use crate::identity::SubjectHasher;
use crate::keys::{self, KeysError};
use crate::metrics::Metrics;
use crate::publisher::Publisher;
use crate::rules::{Ruleset, RulesetError};
use crate::sources::{self, SourceClient, Sources};
use crate::store::{Store, StoreError};

/// The database file below `data_dir`.
pub const DATABASE_FILE: &str = "origin.sqlite";
/// Capacity of the background re-colour queue.
const RECOLOUR_QUEUE: usize = 10_000;

/// Why the origin cannot start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Keys or secrets.
    #[error(transparent)]
    Keys(#[from] KeysError),
    /// The database.
    #[error("database: {0}")]
    Store(#[from] StoreError),
    /// The ruleset.
    #[error(transparent)]
    Ruleset(#[from] RulesetError),
    /// A listener or folder.
    #[error("{what}: {error}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        error: std::io::Error,
    },
    /// An HTTP client.
    #[error("http client: {0}")]
    Http(#[from] reqwest::Error),
    /// The snapshot's Redis settings.
    #[error("snapshot: {0}")]
    Snapshot(#[from] shouhu_fallback::SnapshotError),
    /// The Redis password.
    #[error(transparent)]
    Secret(#[from] shouhu_config::SecretError),
}

/// A built origin, ready to serve.
#[derive(Debug)]
pub struct Origin {
    app: Arc<App>,
    sources: Vec<(String, String)>,
    recolour_rx: mpsc::Receiver<SubjectId>,
    shutdown_tx: watch::Sender<bool>,
    fault_rx: watch::Receiver<Fault>,
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> StartError {
    let what = what.into();
    move |error| StartError::Io { what, error }
}

impl Origin {
    /// Builds everything but the two listeners.
    ///
    /// # Errors
    /// Any start-up failure, named.
    pub async fn build(config: &OriginConfig) -> Result<Self, StartError> {
        std::fs::create_dir_all(&config.data_dir)
            .map_err(io(format!("creating {}", config.data_dir.display())))?;
        let keys = keys::load_or_create(config)?;
        let store = Store::open(&config.data_dir.join(DATABASE_FILE))?;
        let ruleset = match &config.ruleset {
            Some(path) => Ruleset::load(path)?,
            None => Ruleset::builtin()?,
        };
        tracing::info!(version = ruleset.version, name = %ruleset.name, "ruleset loaded");
        let (shutdown_tx, shutdown_rx) = watch::channel(false);

        let s = &config.sources;
        let mut urls = Vec::new();
        for kind in SourceKind::ALL {
            let configured = match kind {
                SourceKind::Health => s.health.as_ref(),
                SourceKind::Police => s.police.as_ref(),
                SourceKind::Carrier => s.carrier.as_ref(),
            };
            let url = match configured {
                Some(url) => url.as_str().trim_end_matches('/').to_owned(),
                None => {
                    start_simulator(
                        kind,
                        s.seed,
                        Knobs {
                            latency_ms: u64::try_from(s.latency.get().as_millis())
                                .unwrap_or(u64::MAX),
                            failure_rate: s.failure_rate,
                        },
                        shutdown_rx.clone(),
                    )
                    .await?
                }
            };
            urls.push((kind.as_str().to_owned(), url));
        }
        let client = |i: usize, kind| {
            SourceClient::new(kind, &urls[i].1, s.timeout.get(), s.cache_ttl.get()).map(Arc::new)
        };
        let sources = Sources {
            health: client(0, SourceKind::Health)?,
            police: client(1, SourceKind::Police)?,
            carrier: client(2, SourceKind::Carrier)?,
        };

        let publisher = match &config.redis {
            Some(redis) => {
                let password = config
                    .redis_password
                    .as_ref()
                    .map(shouhu_config::SecretRef::read)
                    .transpose()?;
                let snapshot =
                    SnapshotStore::connect(redis, password.as_ref(), StoreOptions::default())
                        .await?;
                tracing::info!(redis = %redis, "publishing the snapshot");
                Publisher::start(
                    snapshot,
                    store.clone(),
                    config.snapshot.heartbeat.get(),
                    config.snapshot.sweep_every.get(),
                    shutdown_rx.clone(),
                )
            }
            None => {
                tracing::info!("no redis configured: the snapshot is not published");
                Publisher::disabled()
            }
        };
        let capacity =
            CapacityModel::start(Params::from_config(&config.capacity), shutdown_rx.clone());
        let (fault, fault_rx) = watch::channel(Fault::default());
        let (recolour, recolour_rx) = mpsc::channel(RECOLOUR_QUEUE);
        let app = Arc::new(App {
            region: config.region.clone(),
            code_ttl: config.code_ttl.get().as_secs(),
            session_ttl: config.session_ttl.get().as_secs(),
            store,
            hasher: SubjectHasher::new(&keys.hmac_secret),
            sessions: keys.sessions,
            code_key: keys.code_key,
            trust: keys.trust,
            sources,
            ruleset,
            publisher,
            capacity,
            fault,
            recolour,
            colour_locks: app::colour_locks(),
        });
        Ok(Self {
            app,
            sources: urls,
            recolour_rx,
            shutdown_tx,
            fault_rx,
        })
    }

    /// Where each data source is (name, base URL).
    #[must_use]
    pub fn sources(&self) -> &[(String, String)] {
        &self.sources
    }

    /// Serves until `shutdown` resolves, then stops every background task.
    ///
    /// # Errors
    /// A listener fails.
    pub async fn serve(
        self,
        citizen: TcpListener,
        admin: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), StartError> {
        let Self {
            app,
            sources,
            recolour_rx,
            shutdown_tx,
            fault_rx,
        } = self;
        let stop = shutdown_tx.subscribe();
        for client in app.sources.all() {
            tokio::spawn(sources::follow_changes(
                Arc::clone(client),
                app.recolour.clone(),
            ));
        }
        tokio::spawn(app::recolour_worker(Arc::clone(&app), recolour_rx));
        tokio::spawn(app::due_ticker(Arc::clone(&app), stop.clone()));

        let metrics = Arc::new(Metrics::default());
        let gate = Gate::new(fault_rx, app.capacity.clone());
        let citizen_router = crate::api::router(Arc::clone(&app))
            .route_layer(middleware::from_fn_with_state(Arc::clone(&metrics), count))
            .layer(middleware::from_fn_with_state(
                (Arc::clone(&app), gate.clone()),
                guard,
            ));
        let admin_router: Router = admin::router(Admin {
            app: Arc::clone(&app),
            metrics,
            sources,
        });

        let (done_tx, done_rx) = watch::channel(false);
        let app_for_stop = Arc::clone(&app);
        tokio::spawn(async move {
            shutdown.await;
            // Release hung requests so graceful shutdown can finish.
            app_for_stop.fault.send_replace(Fault::default());
            let _ = shutdown_tx.send(true);
            let _ = done_tx.send(true);
        });
        let until = |mut rx: watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|d| *d).await;
        };
        let citizen_server = axum::serve(GatedListener::new(citizen, gate), citizen_router)
            .with_graceful_shutdown(until(done_rx.clone()));
        let admin_server =
            axum::serve(admin, admin_router).with_graceful_shutdown(until(done_rx.clone()));
        let (a, b) = tokio::join!(citizen_server.into_future(), admin_server.into_future());
        a.map_err(io("citizen listener"))?;
        b.map_err(io("admin listener"))?;
        drop(stop);
        Ok(())
    }
}

async fn start_simulator(
    kind: SourceKind,
    seed: u64,
    knobs: Knobs,
    mut shutdown: watch::Receiver<bool>,
) -> Result<String, StartError> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(io(format!("binding the {kind} simulator")))?;
    let addr: SocketAddr = listener
        .local_addr()
        .map_err(io(format!("the {kind} simulator's address")))?;
    let sim = Simulator::new(kind, seed, knobs);
    tokio::spawn(async move {
        let stop = async move {
            let _ = shutdown.wait_for(|d| *d).await;
        };
        if let Err(e) = datasource::serve(listener, sim, stop).await {
            tracing::error!(source = %kind, error = %e, "simulator stopped");
        }
    });
    tracing::info!(source = %kind, %addr, "in-process data-source simulator started");
    Ok(format!("http://{addr}"))
}

/// Counts answered requests by route template.
async fn count(State(metrics): State<Arc<Metrics>>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "other".to_owned(), |m| m.as_str().to_owned());
    let response = next.run(req).await;
    metrics.count(&route, response.status().as_u16());
    response
}

fn fault_body(status: StatusCode, code: &str, en: &str, zh: &str) -> Response {
    (
        status,
        Json(json!({"error": code, "message": en, "message_zh": zh})),
    )
        .into_response()
}

/// Fault injection, then the capacity model, then the handler.
async fn guard(State((app, gate)): State<(Arc<App>, Gate)>, req: Request, next: Next) -> Response {
    match gate.fault().mode {
        FaultMode::None => {}
        FaultMode::Hang => {
            gate.hang_ended().await;
            return fault_body(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "The service is unavailable",
                "服务暂不可用",
            );
        }
        FaultMode::Error => {
            return fault_body(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "The service failed; please try again later",
                "服务异常，请稍后重试",
            );
        }
        FaultMode::Slow => tokio::time::sleep(gate.slow_latency()).await,
        FaultMode::Refuse => {
            // Connections are reset by the listener; a request already read gets this.
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                [(header::CONNECTION, "close")],
            )
                .into_response();
        }
    }
    if app.capacity.serve().await.is_err() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::CONNECTION, "close")],
        )
            .into_response();
    }
    next.run(req).await
}
