//! `shouhu`: the one binary. It parses arguments and calls into the crates; the commands'
//! bodies live in the modules below, one per command group.
//!
//! Exit codes: 0 success; 1 failure (an invalid code, a start-up error); 2 bad arguments;
//! 64 invalid configuration.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

// jemalloc: glibc malloc costs Pingora about 16 % more instructions per proxied request
// (see loadtests/README.md). MSVC targets keep the system allocator, as the crate advises.
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

mod check_config;
mod code;
mod input;
mod issuer;
mod journal;
mod keys;
mod origin;
mod proxy;
mod signal;
mod snapshot;
mod startup;

/// shouhu (守护): a load-resilience gateway that keeps health codes showing through surges
/// and origin outages.
#[derive(Parser)]
#[command(name = "shouhu", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Generate signing keys and build trust lists.
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Issue, verify and render signed health codes.
    #[command(subcommand)]
    Code(code::CodeCommand),
    /// Check a configuration file; prints `ok` or every error (exit 64).
    CheckConfig(check_config::CheckConfigArgs),
    /// Run the standalone fallback issuer (codes from the Redis snapshot).
    Issuer(issuer::IssuerArgs),
    /// Import, export and inspect the Redis snapshot.
    #[command(subcommand)]
    Snapshot(snapshot::SnapshotCommand),
    /// Inspect the write journal and replay it to the origin.
    #[command(subcommand)]
    Journal(journal::JournalCommand),
    /// Run the reference origin (the code-issuing system shouhu protects), or one of its
    /// data-source simulators (`shouhu origin datasource --kind ...`).
    Origin(origin::OriginArgs),
    /// Run the gateway in front of the origin.
    Proxy(proxy::ProxyArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Keys(cmd) => keys::run(cmd),
        Command::Code(cmd) => code::run(cmd),
        Command::CheckConfig(args) => check_config::run(&args),
        Command::Issuer(args) => issuer::run(args),
        Command::Snapshot(cmd) => snapshot::run(cmd),
        Command::Journal(cmd) => journal::run(cmd),
        Command::Origin(args) => origin::run(args),
        Command::Proxy(args) => proxy::run(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("shouhu: {e:#}");
            ExitCode::FAILURE
        }
    }
}
