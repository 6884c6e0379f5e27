//! The `mailshift` command line.

mod apply;
mod plan;
mod status;
mod target;
mod validate;

use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

/// Move a domain's email between servers as declared state: a MailMigration manifest and a
/// reconcile loop that applies the smallest next step until the servers match it.
#[derive(Debug, Parser)]
#[command(name = "mailshift", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// How results are printed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Output {
    #[default]
    Text,
    Json,
    Yaml,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check manifests for schema and semantic errors, offline (no network, no cluster).
    ///
    /// Each finding is printed as FILE:LINE:COLUMN: FIELD: MESSAGE. Exit status 0 when every
    /// MailMigration is valid, 1 when not. Documents of other kinds are skipped with a note.
    Validate(validate::Args),
    /// Show what would happen next: the ordered steps and the gates in front of them.
    ///
    /// Logs in to the servers to observe them (read-only) and writes nothing. Exit status 0
    /// when nothing is left to do, 2 when changes are pending, 1 on error.
    Plan(plan::Args),
    /// Run the reconcile loop until the servers match the manifest.
    ///
    /// Waits at time gates with a countdown (exit 3 with --no-wait), retries failing steps
    /// with backoff, stops as Stalled after repeated failures (exit 1). Ctrl-C stops
    /// cleanly; a re-run resumes.
    Apply(apply::Args),
    /// Show the stored status: conditions, timestamps, per-mailbox progress (no network).
    Status(status::Args),
    /// Print the MailMigration CustomResourceDefinition (YAML), as checked in at
    /// crds/mailmigration.yaml.
    Crd,
}

/// Run the command line; the exit code follows each command's documented convention.
pub fn run() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Validate(args) => validate::run(&args),
        Command::Crd => {
            print!("{}", crate::crd::crd_yaml());
            ExitCode::SUCCESS
        }
        Command::Plan(args) => block_on(plan::run(&args)),
        Command::Apply(args) => block_on(apply::run(&args)),
        Command::Status(args) => report(status::run(&args)),
    }
}

/// Run an async command on a multi-threaded runtime.
fn block_on(fut: impl Future<Output = anyhow::Result<ExitCode>>) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return report(Err(e.into())),
    };
    report(rt.block_on(fut))
}

/// Errors end the command with their whole context chain and exit status 1.
fn report(result: anyhow::Result<ExitCode>) -> ExitCode {
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Print `value` as JSON or YAML (text output is printed by each command).
pub(crate) fn print_structured<T: serde::Serialize>(
    output: Output,
    value: &T,
) -> anyhow::Result<()> {
    match output {
        Output::Text => {}
        Output::Json => println!("{}", serde_json::to_string_pretty(value)?),
        Output::Yaml => print!("{}", serde_yaml::to_string(value)?),
    }
    Ok(())
}
