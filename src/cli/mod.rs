//! The `mailshift` command line.

/// `println!` for standard output that ends the program quietly when the reader went away
/// (`mailshift crd | head -1`), as a program killed by SIGPIPE would (exit 141), instead of
/// panicking.
macro_rules! outln {
    () => {
        $crate::cli::out(format_args!("\n"))
    };
    ($($t:tt)*) => {
        $crate::cli::out(format_args!("{}\n", format_args!($($t)*)))
    };
}

/// `print!` with [`outln!`]'s handling of a closed standard output.
macro_rules! out {
    ($($t:tt)*) => {
        $crate::cli::out(format_args!($($t)*))
    };
}

mod apply;
mod controller;
mod folders;
mod logging;
mod plan;
mod progress;
mod report;
mod status;
mod sync;
mod target;
mod validate;

use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use mailshift::imap::report::ReportKind;

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
    /// What a migration did, for a person or a program: each mailbox (counts, sizes, last
    /// sync and verification, errors, accepted losses) and the cutover's timeline, as text,
    /// one self-contained HTML page (-o html), JSON or YAML. Read from the stored state; no
    /// server is contacted.
    Report(report::Args),
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
    /// Show where every source folder would go on the destination, and why, before anything
    /// is copied: the detected (or forced) source language, localized default folders merged
    /// into the destination's own, SPECIAL-USE, renames, excludes, folders to create.
    ///
    /// Logs in to both servers and lists their folders; opens and writes nothing. Exit
    /// status 0 when every mailbox was mapped, 1 when one could not be, 2 when nothing could
    /// be run.
    Folders(sync::Args),
    /// Run as a Kubernetes controller: reconcile every MailMigration resource (or those of
    /// one namespace, or matching a label selector), status in the status subresource,
    /// Events for every step and failure, secrets from the resource's namespace.
    ///
    /// Serves /metrics, /healthz and /readyz; stops cleanly on SIGTERM. Exits 1 with a clear
    /// message when no cluster is reachable.
    Controller(controller::Args),
}

/// Run the command line; the exit code follows each command's documented convention.
pub fn run() -> ExitCode {
    let cli = Cli::parse();
    let ended = match cli.command {
        Command::Validate(args) => Ok(validate::run(&args)),
        Command::Sync(args) => sync::run(&args, ReportKind::Sync, cli.log_format),
        Command::Verify(args) => sync::run(&args, ReportKind::Verify, cli.log_format),
        Command::Folders(args) => folders::run(&args, cli.log_format),
        Command::Crd => {
            out!("{}", mailshift::crd::crd_yaml());
            Ok(ExitCode::SUCCESS)
        }
        Command::Plan(args) => {
            logging::init(cli.log_format, None);
            block_on(plan::run(&args))
        }
        Command::Apply(args) => block_on(apply::run(&args, cli.log_format)),
        Command::Status(args) => status::run(&args).map_err(Ended::from),
        Command::Report(args) => report::run(&args).map_err(Ended::from),
        Command::Controller(args) => {
            logging::init(cli.log_format, None);
            block_on(controller::run(&args))
        }
    };
    exit_code(ended)
}

/// How a command ends without doing its work.
#[derive(Debug)]
pub(crate) enum Ended {
    /// It failed while running: exit status 1.
    Failed(anyhow::Error),
    /// Nothing could be run (an invalid manifest, an unknown mailbox, a secret that cannot
    /// be read): exit status 2 where a command documents it (`sync`, `verify`, `folders`),
    /// so that a script tells "not even started" from "ran and found differences".
    NothingRun(anyhow::Error),
}

impl From<anyhow::Error> for Ended {
    fn from(e: anyhow::Error) -> Self {
        Ended::Failed(e)
    }
}

/// Run an async command on a multi-threaded runtime.
fn block_on(fut: impl Future<Output = anyhow::Result<ExitCode>>) -> Result<ExitCode, Ended> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Ended::Failed(anyhow::Error::from(e).context("cannot start the runtime")))?;
    Ok(rt.block_on(fut)?)
}

/// The one place a command's end becomes an exit status: errors are printed with their
/// whole context chain.
fn exit_code(ended: Result<ExitCode, Ended>) -> ExitCode {
    match ended {
        Ok(code) => code,
        Err(Ended::Failed(e)) => {
            print_error(&e);
            ExitCode::FAILURE
        }
        Err(Ended::NothingRun(e)) => {
            print_error(&e);
            ExitCode::from(2)
        }
    }
}

/// The one way every command prints an error that ends it: `mailshift: error: ...` on
/// standard error, the whole context chain, control characters from servers escaped.
fn print_error(e: &anyhow::Error) {
    eprintln!(
        "mailshift: error: {}",
        mailshift::text::printable(&format!("{e:#}"))
    );
}

/// Write to standard output; a closed pipe ends the program quietly (see [`outln!`]).
pub(crate) fn out(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout.write_fmt(args).and_then(|()| stdout.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(141);
        }
        eprintln!("mailshift: error: cannot write to standard output: {e}");
        std::process::exit(1);
    }
}

/// Print `value` as JSON or YAML (text output is printed by each command).
pub(crate) fn print_structured<T: serde::Serialize>(
    output: Output,
    value: &T,
) -> anyhow::Result<()> {
    match output {
        Output::Text => {}
        Output::Json => outln!("{}", serde_json::to_string_pretty(value)?),
        Output::Yaml => out!("{}", serde_yaml::to_string(value)?),
    }
    Ok(())
}
