//! `shouhu origin`: the reference code-issuing system (see `shouhu_origin`), and
//! `shouhu origin datasource --kind health|police|carrier`: one data-source simulator as a
//! process of its own.
//!
//! On start each prints one line to standard output with the bound addresses, so tests and
//! scripts can use `--listen 127.0.0.1:0`:
//!
//! ```text
//! listening citizen=http://127.0.0.1:41234 admin=http://127.0.0.1:41235 health=http://127.0.0.1:41236 police=http://… carrier=http://…
//! listening http://127.0.0.1:41237          (datasource)
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use shouhu_config::{Overrides, RedisUrls};
use shouhu_origin::Origin;
use shouhu_origin::datasource::{self, Knobs, Simulator, SourceKind};

use crate::signal::shutdown_signal;
use crate::startup::{config_or_exit, init_tracing};

/// How long background work may take to finish after the servers stopped.
const EXIT_GRACE: std::time::Duration = std::time::Duration::from_millis(200);

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub(crate) struct OriginArgs {
    #[command(subcommand)]
    command: Option<OriginCommand>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand)]
enum OriginCommand {
    /// Run one data-source simulator as its own process.
    Datasource(DatasourceArgs),
}

#[derive(Args)]
struct RunArgs {
    /// The origin config file (TOML); without it, defaults plus the flags.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Address of the citizen API (overrides `server.listen`).
    #[arg(long, value_parser = shouhu_config::parse_socket_addr)]
    listen: Option<SocketAddr>,
    /// Address of the admin API (overrides `server.admin_listen`).
    #[arg(long, value_parser = shouhu_config::parse_socket_addr)]
    admin_listen: Option<SocketAddr>,
    /// Redis to publish the snapshot to; comma-separated for Cluster seeds (overrides `redis`).
    #[arg(long)]
    redis: Option<RedisUrls>,
    /// Database and keys (overrides `data_dir`).
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

#[derive(Args)]
struct DatasourceArgs {
    /// Which source: health, police or carrier.
    #[arg(long)]
    kind: SourceKind,
    /// Address to listen on.
    #[arg(long, value_parser = shouhu_config::parse_socket_addr, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Seed of the synthetic data.
    #[arg(long, default_value_t = shouhu_config::origin::DEFAULT_SOURCE_SEED)]
    seed: u64,
    /// Latency added to every answer, milliseconds.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Share of answers that fail with 503, 0 to 1.
    #[arg(long, default_value_t = 0.0)]
    failure_rate: f64,
}

pub(crate) fn run(args: OriginArgs) -> anyhow::Result<ExitCode> {
    init_tracing();
    match args.command {
        Some(OriginCommand::Datasource(d)) => block_on(datasource(d)),
        None => {
            let r = args.run;
            let overrides = Overrides {
                listen: r.listen,
                admin_listen: r.admin_listen,
                redis: r.redis,
                data_dir: r.data_dir,
                ..Overrides::default()
            };
            let config = match config_or_exit(shouhu_config::load_origin_with(
                r.config.as_deref(),
                &overrides,
            )) {
                Ok(c) => c,
                Err(code) => return Ok(code),
            };
            block_on(origin(config))
        }
    }
}

/// Runs `main` on a fresh runtime. Leftover background work (the blocking pool) gets a short
/// grace period at exit instead of holding the process up.
fn block_on(main: impl Future<Output = anyhow::Result<ExitCode>>) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let result = runtime.block_on(main);
    runtime.shutdown_timeout(EXIT_GRACE);
    result
}

async fn origin(config: shouhu_config::OriginConfig) -> anyhow::Result<ExitCode> {
    let origin = Origin::build(&config).await?;
    let citizen = tokio::net::TcpListener::bind(config.server.listen)
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
    let mut line = format!(
        "listening citizen=http://{} admin=http://{}",
        citizen.local_addr()?,
        admin.local_addr()?
    );
    for (name, url) in origin.sources() {
        line.push_str(&format!(" {name}={url}"));
    }
    println!("{line}");
    use std::io::Write as _;
    std::io::stdout().flush()?;
    origin.serve(citizen, admin, shutdown_signal()).await?;
    tracing::info!("origin stopped");
    Ok(ExitCode::SUCCESS)
}

async fn datasource(args: DatasourceArgs) -> anyhow::Result<ExitCode> {
    if !(0.0..=1.0).contains(&args.failure_rate) {
        anyhow::bail!(
            "--failure-rate must be from 0 to 1 (got {})",
            args.failure_rate
        );
    }
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("--listen: cannot bind {}", args.listen))?;
    println!("listening http://{}", listener.local_addr()?);
    use std::io::Write as _;
    std::io::stdout().flush()?;
    let sim = Simulator::new(
        args.kind,
        args.seed,
        Knobs {
            latency_ms: args.latency_ms,
            failure_rate: args.failure_rate,
        },
    );
    tracing::info!(source = %args.kind, seed = args.seed, "data-source simulator started");
    datasource::serve(listener, sim, shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
}
