//! The `mailshift` command line.

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
    }
}
