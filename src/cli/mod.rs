//! The `mailshift` command line.

mod logging;
mod progress;
mod sync;
mod validate;

use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use crate::imap::report::ReportKind;

/// Move a domain's email between servers as declared state: a MailMigration manifest and a
/// reconcile loop that applies the smallest next step until the servers match it.
#[derive(Debug, Parser)]
#[command(name = "mailshift", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log format on standard error (filter with RUST_LOG, e.g. RUST_LOG=mailshift=debug).
    #[arg(long, global = true, value_enum, default_value_t)]
    log_format: logging::LogFormat,
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
    /// Print the MailMigration CustomResourceDefinition (YAML), as checked in at
    /// crds/mailmigration.yaml.
    Crd,
    /// Copy or re-sync mailboxes now, once: create missing folders, copy missing messages
    /// with their flags and dates, carry flag changes over. The source is only read.
    ///
    /// Prints a report (copied, skipped, refused, errors, throughput). Exit status 0 when
    /// the run was perfect, 1 when something was refused or failed, 2 when nothing could
    /// be run.
    Sync(sync::Args),
    /// Compare mailboxes folder by folder: counts, sizes, message identities; list every
    /// missing or extra message. Writes nothing. Exit status 0 only when every mailbox is
    /// equal.
    Verify(sync::Args),
}

/// Run the command line; the exit code follows each command's documented convention.
pub fn run() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Validate(args) => validate::run(&args),
        Command::Sync(args) => sync::run(&args, ReportKind::Sync, cli.log_format),
        Command::Verify(args) => sync::run(&args, ReportKind::Verify, cli.log_format),
        Command::Crd => {
            print!("{}", crate::crd::crd_yaml());
            ExitCode::SUCCESS
        }
    }
}
