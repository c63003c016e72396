//! `shouhu journal stats|dead-letters|replay`: inspect the write journal and run a replayer
//! outside the proxy (see `shouhu_fallback::journal`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use shouhu_code::time::format_rfc3339;
use shouhu_config::{RedisUrls, SecretRef};
use shouhu_fallback::journal::replayer::{Replayer, ReplayerOptions};
use shouhu_fallback::journal::{Journal, JournalOptions};

use crate::startup::init_tracing;

#[derive(Subcommand)]
pub(crate) enum JournalCommand {
    /// Entries waiting for replay and dead letters kept.
    Stats(JournalArgs),
    /// The declarations the origin rejected (oldest first), with its answer.
    DeadLetters {
        #[command(flatten)]
        journal: JournalArgs,
        /// Most entries shown.
        #[arg(long, default_value_t = 100)]
        max: usize,
        /// Print JSON lines instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Replay journalled declarations to the origin until interrupted.
    Replay {
        #[command(flatten)]
        journal: JournalArgs,
        /// The origin's base URL.
        #[arg(long)]
        origin: String,
        /// Most declarations per second.
        #[arg(long, default_value_t = 100)]
        rate: u32,
        /// Consumer name; keep it stable across restarts.
        #[arg(long, default_value = "replayer-1")]
        consumer: String,
    },
}

#[derive(Args)]
pub(crate) struct JournalArgs {
    /// Redis URL, or comma-separated Cluster seed URLs.
    #[arg(long)]
    redis: RedisUrls,
    /// File holding the Redis password.
    #[arg(long)]
    redis_password_file: Option<PathBuf>,
    /// Key prefix.
    #[arg(long, default_value = shouhu_fallback::snapshot::DEFAULT_KEY_PREFIX)]
    prefix: String,
}

pub(crate) fn run(cmd: JournalCommand) -> anyhow::Result<ExitCode> {
    init_tracing();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        match cmd {
            JournalCommand::Stats(args) => {
                let j = open(&args).await?;
                println!("waiting:      {}", j.backlog().await?);
                println!("dead letters: {}", j.dead_letter_count().await?);
                Ok(ExitCode::SUCCESS)
            }
            JournalCommand::DeadLetters { journal, max, json } => {
                let j = open(&journal).await?;
                for d in j.dead_letters(max).await? {
                    if json {
                        println!("{}", serde_json::to_string(&d)?);
                    } else {
                        println!(
                            "{} receipt {} key {} subject {} accepted {}: origin {}: {}\n  body: {}",
                            d.id,
                            d.receipt,
                            d.idempotency_key,
                            d.subject,
                            format_rfc3339(d.accepted_at),
                            d.status,
                            d.response,
                            d.body
                        );
                    }
                }
                Ok(ExitCode::SUCCESS)
            }
            JournalCommand::Replay {
                journal,
                origin,
                rate,
                consumer,
            } => {
                let j = open(&journal).await?;
                let replayer = Replayer::new(
                    j,
                    ReplayerOptions {
                        origin,
                        rate_per_sec: rate,
                        consumer,
                        ..ReplayerOptions::default()
                    },
                )?;
                let counters = replayer.counters();
                replayer
                    .run(async {
                        let _ = tokio::signal::ctrl_c().await;
                    })
                    .await;
                eprintln!(
                    "applied {}, dead-lettered {}",
                    counters.applied.load(Ordering::Relaxed),
                    counters.dead_lettered.load(Ordering::Relaxed)
                );
                Ok(ExitCode::SUCCESS)
            }
        }
    })
}

async fn open(args: &JournalArgs) -> anyhow::Result<Journal> {
    let password = args
        .redis_password_file
        .as_ref()
        .map(|p| SecretRef::File(p.clone()).read())
        .transpose()
        .context("reading the Redis password")?;
    let options = JournalOptions {
        command_timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(5),
        key_prefix: args.prefix.clone(),
        ..JournalOptions::default()
    };
    Ok(Journal::connect(&args.redis, password.as_ref(), options).await?)
}
