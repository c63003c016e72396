//! `shouhu-loadtest`: runs a surge scenario against the origin directly, behind nginx and
//! behind `shouhu proxy`, and writes a report (see `loadtests/README.md`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use shouhu_loadtest::generator::{Mix, UserModel};
use shouhu_loadtest::result::Variant;
use shouhu_loadtest::runner::{self, Options};
use shouhu_loadtest::scenario::Scenario;
use shouhu_loadtest::stack::find_shouhu;

#[derive(Parser)]
#[command(name = "shouhu-loadtest", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a scenario against each variant and write a report.
    Run(RunArgs),
    /// Check scenario files and print what they offer.
    Check {
        /// Scenario files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

#[derive(clap::Args)]
struct RunArgs {
    /// The scenario file.
    #[arg(long, default_value = "loadtests/scenarios/standard.toml")]
    scenario: PathBuf,
    /// Variants, comma-separated, in the order of the first round.
    #[arg(long, value_delimiter = ',', default_value = "direct,nginx,shouhu")]
    variants: Vec<Variant>,
    /// Rounds; the order of the variants rotates each round.
    #[arg(long, default_value_t = 1)]
    rounds: usize,
    /// People registered before the runs.
    #[arg(long, default_value_t = 20_000)]
    population: usize,
    /// Report folder (default: target/bench/SCENARIO-UNIXTIME).
    #[arg(long)]
    out: Option<PathBuf>,
    /// The `shouhu` binary (default: next to this one, else target/release/shouhu).
    #[arg(long)]
    shouhu: Option<PathBuf>,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { files } => {
            let mut ok = true;
            for f in files {
                match Scenario::load(&f) {
                    Ok(s) => println!(
                        "{}: {} phases, {:?}, {:.0} intents expected",
                        f.display(),
                        s.phases.len(),
                        s.duration(),
                        s.schedule().map_or(0.0, |s| s.expected_arrivals())
                    ),
                    Err(e) => {
                        eprintln!("{e}");
                        ok = false;
                    }
                }
            }
            if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Command::Run(args) => match run(args) {
            Ok(code) => code,
            Err(e) => {
                eprintln!("shouhu-loadtest: {e:#}");
                ExitCode::FAILURE
            }
        },
    }
}

fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let scenario = match Scenario::load(&args.scenario) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let shouhu = find_shouhu(args.shouhu.as_deref())?;
    let out = args.out.unwrap_or_else(|| {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        PathBuf::from(format!("target/bench/{}-{secs}", scenario.name))
    });
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let bench = runner::bench(&Options {
        scenario,
        variants: args.variants,
        rounds: args.rounds,
        population: args.population,
        out,
        shouhu,
        mix: Mix::default(),
        model: UserModel::default(),
        progress: !args.quiet,
        command,
    })?;
    println!("{}", bench.summary);
    println!("report: {}", bench.report.display());
    // WRONG = 0 is shouhu's promise; the peers' WRONG answers are findings, reported.
    let wrong: u64 = bench
        .runs
        .iter()
        .filter(|r| r.variant == Variant::Shouhu)
        .map(|r| r.wrong())
        .sum();
    // Likewise validity: a peer's run may be invalid because the peer makes the generator
    // work harder (a retry storm against a collapsed origin); that is reported, not fatal.
    let invalid = bench
        .runs
        .iter()
        .filter(|r| r.variant == Variant::Shouhu && !r.valid)
        .count();
    if wrong > 0 {
        eprintln!("shouhu-loadtest: shouhu gave {wrong} WRONG answers (must be 0)");
        return Ok(ExitCode::FAILURE);
    }
    if invalid > 0 {
        eprintln!(
            "shouhu-loadtest: {invalid} shouhu run(s) invalid: the generator fell behind its \
             schedule"
        );
        return Ok(ExitCode::from(2));
    }
    Ok(ExitCode::SUCCESS)
}
