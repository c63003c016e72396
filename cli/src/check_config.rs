//! `shouhu check-config FILE`: every error of a config file, or `ok`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use shouhu_config::Kind;

/// Exit code for an invalid configuration (sysexits' EX_USAGE: the input needs fixing).
pub(crate) const EXIT_CONFIG: u8 = 64;

#[derive(Args)]
pub(crate) struct CheckConfigArgs {
    /// Which file this is: `proxy`, `issuer` or `origin` [default: its `kind` key, else its
    /// file name].
    #[arg(long)]
    kind: Option<Kind>,
    /// The TOML file to check.
    file: PathBuf,
}

pub(crate) fn run(args: &CheckConfigArgs) -> anyhow::Result<ExitCode> {
    match shouhu_config::check(&args.file, args.kind) {
        Ok(_) => {
            println!("ok");
            Ok(ExitCode::SUCCESS)
        }
        Err(errors) => {
            for e in errors.iter() {
                eprintln!("{e}");
            }
            Ok(ExitCode::from(EXIT_CONFIG))
        }
    }
}
