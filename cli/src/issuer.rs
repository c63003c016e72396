//! `shouhu issuer`: the standalone fallback issuer (see `shouhu_fallback::server`).
//!
//! On start it prints one line to standard output, `listening http://ADDR admin http://ADDR`,
//! with the bound addresses (so `--listen 127.0.0.1:0` can be used). If `key_dir` holds no
//! fallback key for the region it generates one (valid a year) and says so. Keys are re-read
//! every 30 s and on SIGHUP, so a rotation needs no restart.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use shouhu_code::{KeyPair, KeyRole, time};
use shouhu_config::{IssuerConfig, Overrides, RedisUrls};
use shouhu_fallback::server::{AppState, admin_router, router, serve};
use shouhu_fallback::session::SessionVerifier;
use shouhu_fallback::{Issuer, Keyring, KeyringError, Policy, SnapshotStore, StoreOptions};

use crate::signal::shutdown_signal;
use crate::startup::{config_or_exit, init_tracing};

/// How often `key_dir` is re-read, so a rotated key is picked up without a restart.
const KEY_RELOAD_EVERY: Duration = Duration::from_secs(30);
/// Validity of a key generated on first start.
const GENERATED_KEY_VALIDITY: Duration = Duration::from_secs(365 * 24 * 3600);

#[derive(Args)]
pub(crate) struct IssuerArgs {
    /// The issuer config file (TOML); without it, defaults plus the flags.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Address for code requests (overrides `server.listen`).
    #[arg(long, value_parser = shouhu_config::parse_socket_addr)]
    listen: Option<std::net::SocketAddr>,
    /// Address for /metrics and health (overrides `server.admin_listen`).
    #[arg(long, value_parser = shouhu_config::parse_socket_addr)]
    admin_listen: Option<std::net::SocketAddr>,
    /// Redis URL, or comma-separated Cluster seeds (overrides `redis`).
    #[arg(long)]
    redis: Option<RedisUrls>,
    /// The issuer's data folder (overrides `data_dir`).
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

pub(crate) fn run(args: IssuerArgs) -> anyhow::Result<ExitCode> {
    let overrides = Overrides {
        listen: args.listen,
        admin_listen: args.admin_listen,
        redis: args.redis,
        data_dir: args.data_dir,
        ..Overrides::default()
    };
    let config = match config_or_exit(shouhu_config::load_issuer_with(
        args.config.as_deref(),
        &overrides,
    )) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    init_tracing();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(start(config))?;
    Ok(ExitCode::SUCCESS)
}

fn load_or_create_keys(config: &IssuerConfig) -> anyhow::Result<Keyring> {
    let dir = config.key_dir();
    match Keyring::load(&dir, &config.region) {
        Err(KeyringError::NoKey { .. }) | Err(KeyringError::Folder { .. }) => {
            let t = time::now();
            let pair = KeyPair::generate(
                KeyRole::Fallback,
                config.region.clone(),
                t,
                t.saturating_add(GENERATED_KEY_VALIDITY.as_secs()),
            )?;
            pair.write_to_dir(&dir)
                .with_context(|| format!("{}: writing a new fallback key", dir.display()))?;
            tracing::warn!(kid = %pair.kid(), dir = %dir.display(),
                "no fallback signing key found: generated one; publish the trust list to verifiers");
            Ok(Keyring::load(&dir, &config.region)?)
        }
        other => Ok(other?),
    }
}

async fn start(config: IssuerConfig) -> anyhow::Result<()> {
    let redis = config
        .redis
        .clone()
        .context("redis: required (set it in the file or pass --redis)")?;
    let password = config
        .redis_password
        .as_ref()
        .map(shouhu_config::SecretRef::read)
        .transpose()
        .context("redis_password")?;
    let ingest_token = config
        .ingest_token
        .as_ref()
        .map(shouhu_config::SecretRef::read)
        .transpose()
        .context("ingest_token")?;
    let sessions = SessionVerifier::load(&config.session_key_file())
        .context("session_key_file (the origin's session public key)")?;
    let keys = load_or_create_keys(&config)?;
    let store = SnapshotStore::connect(&redis, password.as_ref(), StoreOptions::default()).await?;
    if !store.is_connected() {
        tracing::warn!("redis unreachable at start: serving unknown codes until it is back");
    }
    let issuer = Issuer::new(
        store,
        keys,
        config.region.clone(),
        Policy {
            code_ttl: config.code_ttl.into(),
            max_snapshot_age: config.max_snapshot_age.into(),
        },
    );
    let state = AppState::new(issuer.clone(), sessions, ingest_token);
    let listener = tokio::net::TcpListener::bind(config.server.listen)
        .await
        .with_context(|| format!("server.listen: cannot bind {}", config.server.listen))?;
    let admin = tokio::net::TcpListener::bind(config.server.admin_listen)
        .await
        .with_context(|| {
            format!(
                "server.admin_listen: cannot bind {}",
                config.server.admin_listen
            )
        })?;
    println!(
        "listening http://{} admin http://{}",
        listener.local_addr()?,
        admin.local_addr()?
    );
    use std::io::Write as _;
    std::io::stdout().flush()?;

    let reload_config = config.clone();
    let reloader = issuer.clone();
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .context("installing the SIGHUP handler")?;
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(KEY_RELOAD_EVERY);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = tick.tick() => {},
                _ = hangup.recv() => tracing::info!("SIGHUP: reloading keys"),
            }
            match Keyring::load(&reload_config.key_dir(), &reload_config.region) {
                Ok(k) => reloader.set_keys(k),
                Err(e) => tracing::warn!(error = %e, "key reload failed; keeping the old keys"),
            }
        }
    });
    let admin_task = tokio::spawn(serve(admin, admin_router(state.clone()), shutdown_signal()));
    serve(listener, router(state), shutdown_signal()).await?;
    admin_task.abort();
    Ok(())
}
