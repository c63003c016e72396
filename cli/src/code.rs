//! `shouhu code issue|verify|qr`: signed codes by hand, for operators and tests.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use serde_json::json;
use shouhu_code::{
    Claims, CodeId, Colour, KeyPair, Source, SubjectId, TrustList, VerifyPolicy, time,
};

use crate::input;

#[derive(Subcommand)]
pub(crate) enum CodeCommand {
    /// Sign one code with a private key file and print it.
    Issue(IssueArgs),
    /// Verify a code against a trust list: print its claims (exit 0) or the reason (exit 1).
    Verify(VerifyArgs),
    /// Print the QR of a code as SVG.
    Qr {
        /// The code text, or `-` to read it from standard input.
        code: String,
    },
}

#[derive(Args)]
pub(crate) struct IssueArgs {
    /// The private key file (`*.key.json` from `shouhu keys generate`).
    #[arg(long)]
    key: PathBuf,
    /// The pseudonymous subject id: 32 hex digits.
    #[arg(long)]
    subject: SubjectId,
    /// `green`, `yellow`, `red` or `unknown`.
    #[arg(long)]
    colour: Colour,
    /// How long the code is valid.
    #[arg(long, default_value = "5m", value_parser = input::duration)]
    ttl: Duration,
    /// `origin` or `fallback` [default: what the key's role signs].
    #[arg(long)]
    source: Option<Source>,
    /// The masked name shown at staffed lanes, e.g. "张*".
    #[arg(long, default_value = "")]
    name: String,
    /// The last four characters of the ID number, e.g. 123X.
    #[arg(long, default_value = "")]
    id_last4: String,
    /// When the data behind the colour was current [default: now].
    #[arg(long, value_parser = input::rfc3339)]
    as_of: Option<u64>,
    /// Version of the ruleset that gave the colour.
    #[arg(long, default_value_t = 1)]
    ruleset_version: u32,
}

#[derive(Args)]
pub(crate) struct VerifyArgs {
    /// The trust list (JSON) to verify against.
    #[arg(long)]
    trust_list: PathBuf,
    /// Verify as of this time instead of now, e.g. 2026-11-29T08:00:00Z.
    #[arg(long, value_parser = input::rfc3339)]
    at: Option<u64>,
    /// Allowance for clocks that disagree.
    #[arg(long, default_value = "30s", value_parser = input::duration)]
    clock_skew: Duration,
    /// Refuse fallback codes whose data is older than this.
    #[arg(long, value_parser = input::duration)]
    max_fallback_age: Option<Duration>,
    /// The code text, or `-` to read it from standard input.
    code: String,
}

pub(crate) fn run(cmd: CodeCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        CodeCommand::Issue(args) => issue(args),
        CodeCommand::Verify(args) => verify(args),
        CodeCommand::Qr { code } => {
            print!("{}", shouhu_code::qr_svg(&input::arg_or_stdin(&code)?)?);
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn issue(args: IssueArgs) -> anyhow::Result<ExitCode> {
    let key = KeyPair::load(&args.key)?;
    let now = time::now();
    let claims = Claims {
        issuer: key.public().region.clone(),
        issued_at: now,
        expires_at: now.saturating_add(args.ttl.as_secs()),
        code_id: CodeId::random()?,
        colour: args.colour,
        subject: args.subject,
        masked_name: args.name,
        id_last4: args.id_last4,
        source: args.source.unwrap_or(key.public().role.source()),
        as_of: args.as_of.unwrap_or(now),
        ruleset_version: args.ruleset_version,
    };
    println!("{}", key.sign(&claims)?);
    Ok(ExitCode::SUCCESS)
}

fn verify(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let trust = TrustList::load(&args.trust_list)?;
    let text = input::arg_or_stdin(&args.code)?;
    let policy = VerifyPolicy {
        clock_skew: args.clock_skew,
        max_fallback_age: args.max_fallback_age,
    };
    let at = args.at.unwrap_or_else(time::now);
    match shouhu_code::verify(&text, &trust, at, &policy) {
        Ok(verified) => {
            let mut out = json!({ "valid": true, "kid": verified.key.kid });
            if let (Some(out), serde_json::Value::Object(claims)) =
                (out.as_object_mut(), serde_json::to_value(&verified.claims)?)
            {
                out.extend(claims);
            }
            println!("{}", serde_json::to_string_pretty(&out)?);
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            let out = json!({ "valid": false, "reason": e.reason(), "error": e.to_string() });
            println!("{}", serde_json::to_string_pretty(&out)?);
            eprintln!("shouhu: invalid code: {}: {e}", e.reason());
            Ok(ExitCode::FAILURE)
        }
    }
}
