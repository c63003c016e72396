//! `shouhu proxy`: the gateway (see `shouhu_proxy::server`).
//!
//! On start it prints one line to standard output once it accepts connections,
//! `listening http://ADDR admin http://ADDR`, with the bound addresses (so `--listen
//! 127.0.0.1:0` can be used). With only `--origin URL` and `--data-dir DIR` it runs on
//! defaults: the origin's session key and trust list come from its well-known URLs, and a
//! fallback signing key is generated into `{data_dir}/keys` on first start.
//!
//! `SIGHUP` reloads the config file (same flags) and the keys; a config that does not load
//! is refused with a log line and the running one stays. `SIGTERM` drains within
//! `server.grace_period` + `server.graceful_shutdown_timeout`; `SIGINT` stops at once.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use shouhu_config::{HttpUrl, Overrides, RedisUrls};

use crate::startup::{config_or_exit, init_tracing_with};

#[derive(Args)]
pub(crate) struct ProxyArgs {
    /// The proxy config file (TOML); without it, defaults plus the flags.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Address for citizens' and scanners' traffic (overrides `server.listen`).
    #[arg(long, value_parser = shouhu_config::parse_socket_addr)]
    listen: Option<SocketAddr>,
    /// Address for /metrics and admin endpoints (overrides `server.admin_listen`).
    #[arg(long, value_parser = shouhu_config::parse_socket_addr)]
    admin_listen: Option<SocketAddr>,
    /// The origin's base URL (overrides `origin.url`).
    #[arg(long)]
    origin: Option<HttpUrl>,
    /// The snapshot's Redis URL, or comma-separated Cluster seeds (overrides
    /// `fallback.redis`).
    #[arg(long)]
    redis: Option<RedisUrls>,
    /// The proxy's data folder (overrides `data_dir`).
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

pub(crate) fn run(args: ProxyArgs) -> anyhow::Result<ExitCode> {
    let overrides = Overrides {
        listen: args.listen,
        admin_listen: args.admin_listen,
        origin: args.origin,
        redis: args.redis,
        data_dir: args.data_dir,
    };
    let config = match config_or_exit(shouhu_config::load_proxy_with(
        args.config.as_deref(),
        &overrides,
    )) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    init_tracing_with(config.log.format, config.log.level);
    let path = args.config.clone();
    let reload: shouhu_proxy::server::ConfigSource = Box::new(move || {
        shouhu_config::load_proxy_with(path.as_deref(), &overrides).map_err(|e| e.to_string())
    });
    shouhu_proxy::server::run(&config, reload, |ready| match ready {
        Ok(at) => {
            println!("listening http://{} admin http://{}", at.listen, at.admin);
            let _ = std::io::stdout().flush();
        }
        Err(e) => {
            eprintln!("shouhu: {e}");
            std::process::exit(1);
        }
    })?;
    Ok(ExitCode::SUCCESS)
}
