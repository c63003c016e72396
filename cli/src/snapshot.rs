//! `shouhu snapshot import|export|stats`: the Redis snapshot of everyone's last-known colour,
//! as NDJSON (one subject per line, see `shouhu_fallback::snapshot::SubjectRecord`).

use std::io::{BufRead, BufReader, BufWriter, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use shouhu_code::time::{format_rfc3339, now};
use shouhu_config::{RedisUrls, SecretRef};
use shouhu_fallback::snapshot::{SubjectRecord, Walked};
use shouhu_fallback::{SnapshotStore, StoreOptions};

use crate::input;

/// Records written per pipelined batch.
const BATCH: usize = 1000;
/// Progress is printed every this many lines.
const PROGRESS_EVERY: usize = 100_000;

#[derive(Subcommand)]
pub(crate) enum SnapshotCommand {
    /// Import NDJSON records: every line is checked, each bad line is reported with its
    /// number, the rest are imported (idempotent: re-importing changes nothing). Exit 1 if
    /// any line was bad.
    Import(ImportArgs),
    /// Write every record as NDJSON to standard output (or --out).
    Export(ExportArgs),
    /// Count records by colour and show the watermark's age.
    Stats(StatsArgs),
}

#[derive(Args)]
pub(crate) struct RedisArgs {
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

#[derive(Args)]
pub(crate) struct ImportArgs {
    #[command(flatten)]
    redis: RedisArgs,
    /// After importing, advance the watermark to this time (RFC 3339, or `now`).
    #[arg(long)]
    watermark: Option<String>,
    /// The NDJSON file, or `-` for standard input.
    file: PathBuf,
}

#[derive(Args)]
pub(crate) struct ExportArgs {
    #[command(flatten)]
    redis: RedisArgs,
    /// Write here instead of standard output.
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Args)]
pub(crate) struct StatsArgs {
    #[command(flatten)]
    redis: RedisArgs,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(cmd: SnapshotCommand) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        match cmd {
            SnapshotCommand::Import(args) => import(args).await,
            SnapshotCommand::Export(args) => export(args).await,
            SnapshotCommand::Stats(args) => stats(args).await,
        }
    })
}

pub(crate) async fn open(args: &RedisArgs) -> anyhow::Result<SnapshotStore> {
    let password = args
        .redis_password_file
        .as_ref()
        .map(|p| SecretRef::File(p.clone()).read())
        .transpose()
        .context("reading the Redis password")?;
    let options = StoreOptions {
        // An operator command, not the request path: allow a slow Redis.
        command_timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(5),
        key_prefix: args.prefix.clone(),
        ..StoreOptions::default()
    };
    let store = SnapshotStore::connect(&args.redis, password.as_ref(), options).await?;
    if !store.is_connected() {
        anyhow::bail!("{}: cannot connect to Redis", args.redis);
    }
    Ok(store)
}

async fn import(args: ImportArgs) -> anyhow::Result<ExitCode> {
    let watermark = args
        .watermark
        .as_deref()
        .map(|w| {
            if w == "now" {
                Ok(now())
            } else {
                input::rfc3339(w)
            }
        })
        .transpose()
        .map_err(anyhow::Error::msg)?;
    let store = open(&args.redis).await?;
    let name = args.file.display().to_string();
    let reader: Box<dyn BufRead> = if name == "-" {
        Box::new(BufReader::new(std::io::stdin()))
    } else {
        Box::new(BufReader::new(
            std::fs::File::open(&args.file).with_context(|| format!("{name}: cannot open"))?,
        ))
    };
    let show_progress = std::io::stderr().is_terminal();
    let (mut good, mut changed, mut bad) = (0usize, 0usize, 0usize);
    let mut batch = Vec::with_capacity(BATCH);
    for (i, line) in reader.lines().enumerate() {
        let number = i + 1;
        let line = line.with_context(|| format!("{name}:{number}: cannot read"))?;
        if line.trim().is_empty() {
            continue;
        }
        match SubjectRecord::parse_line(&line) {
            Ok(r) => batch.push(r.into_parts()),
            Err(e) => {
                bad += 1;
                eprintln!("{name}:{number}: {e}");
            }
        }
        if batch.len() >= BATCH {
            changed += store.put_many_counted(&batch).await?;
            good += batch.len();
            batch.clear();
        }
        if number % PROGRESS_EVERY == 0 {
            let line = format!("{name}: {number} lines read, {good} imported, {bad} bad");
            if show_progress {
                eprint!("\r{line}");
            } else {
                eprintln!("{line}");
            }
        }
    }
    if !batch.is_empty() {
        changed += store.put_many_counted(&batch).await?;
        good += batch.len();
    }
    if show_progress && good + bad >= PROGRESS_EVERY {
        eprintln!();
    }
    // The watermark promises the snapshot is complete up to it: with lines missing it is not.
    match watermark {
        Some(w) if bad == 0 => {
            store.set_watermark(w).await?;
            eprintln!("watermark advanced to {}", format_rfc3339(w));
        }
        Some(_) => eprintln!(
            "watermark not advanced: {bad} bad lines are missing from the snapshot; fix them and import again"
        ),
        None => {}
    }
    println!("imported {good} records ({changed} changed), {bad} bad lines");
    Ok(if bad == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

async fn export(args: ExportArgs) -> anyhow::Result<ExitCode> {
    let store = open(&args.redis).await?;
    let out: Box<dyn Write> = match &args.out {
        Some(p) => Box::new(
            std::fs::File::create(p).with_context(|| format!("{}: cannot create", p.display()))?,
        ),
        None => Box::new(std::io::stdout().lock()),
    };
    let mut out = BufWriter::new(out);
    let mut write_error = None;
    let mut corrupt = 0u64;
    store
        .walk(|w| match w {
            Walked::Record(subject, record) => {
                if write_error.is_none() {
                    let line = SubjectRecord::new(subject, record);
                    if let Err(e) = serde_json::to_writer(&mut out, &line)
                        .map_err(std::io::Error::other)
                        .and_then(|()| out.write_all(b"\n"))
                    {
                        write_error = Some(e);
                    }
                }
            }
            Walked::Corrupt { key, reason } => {
                corrupt += 1;
                eprintln!("{key}: skipped: {reason}");
            }
        })
        .await?;
    if let Some(e) = write_error {
        return Err(e).context("writing the export");
    }
    out.flush().context("writing the export")?;
    if corrupt > 0 {
        eprintln!("{corrupt} unreadable records skipped");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

async fn stats(args: StatsArgs) -> anyhow::Result<ExitCode> {
    let store = open(&args.redis).await?;
    let stats = store.stats().await?;
    let t = now();
    if args.json {
        let mut value = serde_json::to_value(&stats)?;
        value["watermark_age_seconds"] = stats
            .watermark
            .map_or(serde_json::Value::Null, |w| t.saturating_sub(w).into());
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("records:   {}", stats.records);
    println!("green:     {}", stats.green);
    println!("yellow:    {}", stats.yellow);
    println!("red:       {}", stats.red);
    println!("unknown:   {}", stats.unknown);
    if stats.corrupt > 0 {
        println!("corrupt:   {}", stats.corrupt);
    }
    match stats.watermark {
        Some(w) => println!(
            "watermark: {} ({} ago)",
            format_rfc3339(w),
            humantime::format_duration(Duration::from_secs(t.saturating_sub(w)))
        ),
        None => println!("watermark: never set (no green will be issued)"),
    }
    Ok(ExitCode::SUCCESS)
}
