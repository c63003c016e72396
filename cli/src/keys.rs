//! `shouhu keys generate` and `shouhu keys trust-list`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use shouhu_code::{KeyPair, KeyRole, PublicKey, Region, TrustList, time};

use crate::input;

#[derive(Subcommand)]
pub(crate) enum KeysCommand {
    /// Write a new Ed25519 key pair into DIR (private file mode 0600) and print its kid.
    Generate(GenerateArgs),
    /// Print a trust list (JSON) of every public key (*.pub.json) in the folders.
    TrustList {
        /// Folders holding `*.pub.json` files.
        #[arg(required = true)]
        dirs: Vec<PathBuf>,
    },
}

#[derive(Args)]
pub(crate) struct GenerateArgs {
    /// What the key signs: `origin` or `fallback` codes.
    #[arg(long)]
    role: KeyRole,
    /// The 6-digit GB/T 2260 region code the key issues for, e.g. 370000.
    #[arg(long)]
    region: Region,
    /// The folder to write the two key files into (created if missing).
    #[arg(long)]
    out: PathBuf,
    /// Start of the key's validity window [default: now].
    #[arg(long, value_parser = input::rfc3339)]
    not_before: Option<u64>,
    /// Length of the key's validity window.
    #[arg(long, default_value = "365d", value_parser = input::duration)]
    valid_for: Duration,
}

pub(crate) fn run(cmd: KeysCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        KeysCommand::Generate(args) => generate(args),
        KeysCommand::TrustList { dirs } => trust_list(&dirs),
    }
}

fn generate(args: GenerateArgs) -> anyhow::Result<ExitCode> {
    let not_before = args.not_before.unwrap_or_else(time::now);
    let not_after = not_before.saturating_add(args.valid_for.as_secs());
    let pair = KeyPair::generate(args.role, args.region, not_before, not_after)?;
    let (private, public) = pair.write_to_dir(&args.out)?;
    eprintln!(
        "wrote {} (private, mode 0600) and {}",
        private.display(),
        public.display()
    );
    println!("{}", pair.kid());
    Ok(ExitCode::SUCCESS)
}

fn trust_list(dirs: &[PathBuf]) -> anyhow::Result<ExitCode> {
    let mut keys = Vec::new();
    for dir in dirs {
        let found = public_keys_in(dir)?;
        if found.is_empty() {
            bail!("{}: no public key files (*.pub.json)", dir.display());
        }
        keys.extend(found);
    }
    let list = TrustList::new(keys)?;
    println!("{}", list.to_json_pretty());
    Ok(ExitCode::SUCCESS)
}

/// Every `*.pub.json` in `dir`, in file-name order so the output is stable.
fn public_keys_in(dir: &Path) -> anyhow::Result<Vec<PublicKey>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("{}: cannot read the folder", dir.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with(".pub.json"))
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|path| {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("{}: cannot read", path.display()))?;
            serde_json::from_str(&text)
                .with_context(|| format!("{}: not a public key file", path.display()))
        })
        .collect()
}
