//! `mailshift sync` and `mailshift verify`: copy (or re-sync) mailboxes now, once; or
//! compare them. Both act on every MailMigration in the given manifests (or those named
//! with `--name`) and every mailbox in them (or those named with `--mailbox`).
//!
//! Exit status: 0 when the run was perfect (sync: nothing missing, refused or failed;
//! verify: every mailbox equal), 1 when not, 2 when nothing could be run (an invalid
//! manifest, an unknown `--mailbox`, a secret that cannot be read).

use crate::secrets::Resolver;
use crate::store::StateDir;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail};

use super::Output;
use super::logging::LogFormat;
use crate::imap::engine::{self, Observer, Options, Prepared};
use crate::imap::report::{Report, ReportKind};
use crate::manifest::{LoadOptions, Loaded, Severity, load_path, load_text};
use crate::spec::Policy;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Manifest file(s) or directories of them (`-` for standard input).
    #[arg(
        short = 'f',
        long = "filename",
        required_unless_present = "manifest_env",
        value_name = "MANIFEST"
    )]
    pub(super) files: Vec<String>,
    /// Read the manifest from this environment variable instead of a file. The controller's
    /// copy Jobs get theirs this way: a Job has no stdin and no API access to read the
    /// resource.
    #[arg(long, value_name = "VAR", conflicts_with = "files")]
    pub(super) manifest_env: Option<String>,
    /// Only this mailbox (by address; repeat for several).
    #[arg(long = "mailbox", value_name = "ADDR")]
    pub(super) mailboxes: Vec<String>,
    /// Only the MailMigration with this `metadata.name` (repeat for several).
    #[arg(long = "name", value_name = "NAME")]
    pub(super) names: Vec<String>,
    /// Where caches live: DIR/<name>/ (default: .mailshift/<name>/ next to the manifest).
    #[arg(long, value_name = "DIR")]
    pub(super) state: Option<PathBuf>,
    /// Output format of the report.
    #[arg(long, short, value_enum, default_value_t)]
    pub(super) output: Output,
}

pub fn run(args: &Args, kind: ReportKind, log_format: LogFormat) -> ExitCode {
    let (bars, observer) = super::progress::setup(log_format);
    let started = Instant::now();
    // JSON logs are for machines (a copy Job's, read by the controller): they carry the
    // copy's progress every few seconds.
    let tally = (kind == ReportKind::Sync && log_format == LogFormat::Json)
        .then(|| Arc::new(crate::reconcile::progress::Tally::new(observer.clone())));
    let observer = match &tally {
        Some(t) => t.clone() as Arc<dyn Observer>,
        None => observer,
    };
    let (prepared, runtime) = match prepare_to_run(args, kind, observer) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let progress_log = tally.clone().map(|t| {
        runtime.spawn(async move {
            let mut every = tokio::time::interval(crate::reconcile::progress::LOG_EVERY);
            every.tick().await;
            loop {
                every.tick().await;
                if let Some(p) = t.transfer(chrono::Utc::now()) {
                    crate::reconcile::progress::log(&p);
                }
            }
        })
    });
    let mailboxes = runtime.block_on(async {
        let mut all = Vec::new();
        for p in &prepared {
            tracing::info!(migration = %p.name, mailboxes = p.accounts.len(), concurrency = p.concurrency, "{}", match kind { ReportKind::Sync => "sync", ReportKind::Verify => "verify" });
            let reports = match kind {
                ReportKind::Sync => p.engine.sync_all(&p.accounts, p.concurrency).await,
                ReportKind::Verify => p.engine.verify_all(&p.accounts, p.concurrency).await,
            };
            all.extend(reports);
        }
        all
    });
    if let Some(b) = &bars {
        let _ = b.clear();
    }
    if let Some(task) = progress_log {
        task.abort();
    }
    if let Some(p) = tally.and_then(|t| t.transfer(chrono::Utc::now())) {
        crate::reconcile::progress::log(&p);
    }
    let report = Report::new(kind, mailboxes, started.elapsed());
    let t = &report.totals;
    tracing::info!(
        perfect = report.perfect,
        messages_transferred = t.messages_transferred,
        bytes_transferred = t.bytes_transferred,
        refused = t.refused,
        errors = t.errors,
        elapsed_seconds = t.elapsed_seconds,
        "done"
    );
    if print(&report, args.output).is_err() {
        return ExitCode::from(2);
    }
    if report.is_perfect() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn print(report: &Report, output: Output) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    match output {
        Output::Json => {
            serde_json::to_writer_pretty(&mut out, report)?;
            writeln!(out)
        }
        Output::Yaml => {
            let s = serde_yaml::to_string(report).map_err(std::io::Error::other)?;
            write!(out, "{s}")
        }
        Output::Text => writeln!(out, "{report}"),
    }
}

/// Loads every manifest, keeps the migrations and mailboxes asked for, and prepares them.
/// The manifests' engines and a runtime to drive them; when either cannot be had, the
/// reason is printed and the exit status is 2 (nothing could be run).
pub(super) fn prepare_to_run(
    args: &Args,
    kind: ReportKind,
    observer: Arc<dyn Observer>,
) -> Result<(Vec<Prepared>, tokio::runtime::Runtime), ExitCode> {
    let prepared = prepare_all(args, kind, observer).map_err(|e| {
        super::print_error(&e);
        ExitCode::from(2)
    })?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            super::print_error(&anyhow::Error::from(e).context("cannot start the runtime"));
            ExitCode::from(2)
        })?;
    Ok((prepared, runtime))
}

fn prepare_all(
    args: &Args,
    kind: ReportKind,
    observer: Arc<dyn Observer>,
) -> Result<Vec<Prepared>> {
    let mut prepared = Vec::new();
    let mut names_seen = vec![false; args.names.len()];
    let mut sources: Vec<Vec<Loaded>> = Vec::new();
    if let Some(var) = &args.manifest_env {
        let text = std::env::var(var)
            .with_context(|| format!("reading the manifest from environment variable {var}"))?;
        sources.push(vec![load_text(
            &format!("${var}"),
            &text,
            LoadOptions::default(),
        )]);
    }
    for file in &args.files {
        sources.push(load_path(file, LoadOptions::default()));
    }
    for loaded_files in sources {
        for loaded in loaded_files {
            for f in loaded
                .findings
                .iter()
                .filter(|f| f.severity == Severity::Warning)
            {
                tracing::warn!(finding = %f, "manifest");
            }
            let path = PathBuf::from(&loaded.file);
            let migrations = loaded.into_result()?;
            for m in migrations {
                let name = m.name().to_owned();
                if !args.names.is_empty() {
                    match args.names.iter().position(|n| *n == name) {
                        Some(i) => names_seen[i] = true,
                        None => continue,
                    }
                }
                if kind == ReportKind::Sync && m.spec.suspend {
                    bail!(
                        "{name}: spec.suspend is true, so nothing is written; set it to false to resume, or use `mailshift verify` to compare"
                    );
                }
                if kind == ReportKind::Sync && m.spec.policy == Policy::Observe {
                    bail!(
                        "{name}: policy is observe, which never writes; use `mailshift verify` to compare"
                    );
                }
                let manifest = manifest_path(&path);
                let store = StateDir::for_migration(manifest, args.state.as_deref(), m.name());
                let p = engine::prepare_with(
                    &m,
                    &Resolver::for_manifest(manifest),
                    Arc::new(store),
                    Options::default(),
                    observer.clone(),
                )
                .with_context(|| format!("{}", path.display()))?;
                prepared.push(p);
            }
        }
    }
    if let Some(i) = names_seen.iter().position(|seen| !seen) {
        bail!("no MailMigration named {} in the manifests", args.names[i]);
    }
    if !args.mailboxes.is_empty() {
        let mut found = vec![false; args.mailboxes.len()];
        for p in &mut prepared {
            p.accounts.retain(|a| {
                match args
                    .mailboxes
                    .iter()
                    .position(|m| m.eq_ignore_ascii_case(&a.address))
                {
                    Some(i) => {
                        found[i] = true;
                        true
                    }
                    None => false,
                }
            });
        }
        if let Some(i) = found.iter().position(|f| !f) {
            bail!("mailbox {} is not in the manifests", args.mailboxes[i]);
        }
        prepared.retain(|p| !p.accounts.is_empty());
    }
    if prepared.is_empty() {
        bail!("no MailMigration found");
    }
    Ok(prepared)
}

fn manifest_path(p: &Path) -> &Path {
    p
}
