//! `mailshift sync` and `mailshift verify`: copy (or re-sync) mailboxes now, once; or
//! compare them. Both act on every MailMigration in the given manifests (or those named
//! with `--name`) and every mailbox in them (or those named with `--mailbox`).
//!
//! Exit status: 0 when the run was perfect (sync: nothing missing, refused or failed;
//! verify: every mailbox equal), 1 when not, 2 when nothing could be run (an invalid
//! manifest, an unknown `--mailbox`, a secret that cannot be read).

use mailshift::directory::Verdict;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use tracing::Instrument;

use super::logging::LogFormat;
use super::{Ended, Output};
use mailshift::engine::{self, Observer, Options, Prepared};
use mailshift::imap::report::{Report, ReportKind};
use mailshift::plan::{BesideMail as _, DavObserved, DavState, SieveState};
use mailshift::spec::Policy;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub(super) target: super::target::Selection,
    /// Only this mailbox (by address; repeat for several).
    #[arg(long = "mailbox", value_name = "ADDR")]
    pub(super) mailboxes: Vec<String>,
    /// Output format of the report.
    #[arg(long, short, value_enum, default_value_t)]
    pub(super) output: Output,
}

pub fn run(args: &Args, kind: ReportKind, log_format: LogFormat) -> Result<ExitCode, Ended> {
    let (bars, observer) = super::progress::setup(log_format);
    let started = Instant::now();
    // JSON logs are for machines (a copy Job's, read by the controller): they carry the
    // copy's progress every few seconds.
    let tally = (kind == ReportKind::Sync && log_format == LogFormat::Json)
        .then(|| Arc::new(mailshift::reconcile::progress::Tally::new(observer.clone())));
    let observer = match &tally {
        Some(t) => t.clone() as Arc<dyn Observer>,
        None => observer,
    };
    let (runs, runtime) = prepare_to_run(args, kind, observer)?;
    let prepared: Vec<&Prepared> = runs.iter().map(|r| &r.prepared).collect();
    let progress_log = tally.clone().map(|t| {
        runtime.spawn(async move {
            let mut every = tokio::time::interval(mailshift::reconcile::progress::LOG_EVERY);
            every.tick().await;
            loop {
                every.tick().await;
                if let Some(p) = t.transfer(chrono::Utc::now()) {
                    mailshift::reconcile::progress::log(&p);
                }
            }
        })
    });
    let mailboxes = runtime.block_on(async {
        let mut all = Vec::new();
        for p in prepared.iter().copied() {
            let span = tracing::info_span!("migration", migration = %p.name);
            let reports = async {
                tracing::info!(
                    mailboxes = p.accounts.len(),
                    concurrency = p.concurrency,
                    "{}",
                    match kind {
                        ReportKind::Sync => "sync",
                        ReportKind::Verify => "verify",
                    }
                );
                match kind {
                    ReportKind::Sync => p.engine.sync_all(&p.accounts, p.concurrency).await,
                    ReportKind::Verify => p.engine.verify_all(&p.accounts, p.concurrency).await,
                }
            }
            .instrument(span)
            .await;
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
        mailshift::reconcile::progress::log(&p);
    }
    let report = Report::new(kind, mailboxes, started.elapsed());
    let (sieve, dav, accounts) = if kind == ReportKind::Verify {
        runtime.block_on(async {
            (
                verify_sieve(&runs).await,
                verify_dav(&runs).await,
                verify_accounts(&runs).await,
            )
        })
    } else {
        (Vec::new(), Vec::new(), Vec::new())
    };
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
    // Equal but for what the new server refuses or keeps, which is listed; a source without
    // ManageSieve or DAV has nothing to compare.
    let sieve_equal = sieve.iter().all(|v| v.state.settled())
        && dav.iter().all(|v| v.state.settled())
        && accounts.iter().all(Verdict::ok);
    match args.output {
        Output::Text => {
            outln!("{report}");
            for v in &sieve {
                outln!("{v}");
            }
            for v in &dav {
                outln!("{v}");
            }
            for v in &accounts {
                outln!("{v}");
            }
        }
        other => super::print_structured(
            other,
            &Printed {
                report: &report,
                sieve: &sieve,
                dav: &dav,
                accounts: &accounts,
            },
        )?,
    }
    Ok(if report.is_perfect() && sieve_equal {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The report as printed with `-o json|yaml`: the mail report's fields, and for `verify` the
/// Sieve comparison of each mailbox whose migration has a `sieve` section.
#[derive(serde::Serialize)]
struct Printed<'a> {
    #[serde(flatten)]
    report: &'a Report,
    #[serde(skip_serializing_if = "<[SieveVerdict]>::is_empty")]
    sieve: &'a [SieveVerdict],
    #[serde(skip_serializing_if = "<[DavVerdict]>::is_empty")]
    dav: &'a [DavVerdict],
    /// `spec.accounts`: each account's login and each alias on the new server.
    #[serde(skip_serializing_if = "<[Verdict]>::is_empty")]
    accounts: &'a [Verdict],
}

/// One mailbox's address books and calendars compared on both servers.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct DavVerdict {
    mailbox: String,
    #[serde(flatten)]
    state: DavState,
}

impl std::fmt::Display for DavVerdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let m = &self.mailbox;
        match &self.state {
            DavState::Unknown => write!(f, "Contacts and calendars {m}: not compared"),
            DavState::NoSource => write!(
                f,
                "Contacts and calendars {m}: not compared (the old server has none)"
            ),
            DavState::Error { reason } => write!(
                f,
                "Contacts and calendars {m}: cannot compare: {}",
                mailshift::text::printable(reason)
            ),
            DavState::Compared {
                collections,
                items,
                pending,
                kept,
                refused,
            } => {
                if *pending == 0 {
                    write!(
                        f,
                        "Contacts and calendars {m}: equal ({items} resources in {collections} collections)"
                    )?;
                } else {
                    write!(
                        f,
                        "Contacts and calendars {m}: DIFFERENT: {pending} resources or collections missing on the new server"
                    )?;
                }
                for k in kept {
                    write!(
                        f,
                        "\n  kept on the new server, differs: {}",
                        mailshift::text::printable(k)
                    )?;
                }
                for r in refused {
                    write!(
                        f,
                        "\n  refused by the new server: {}/{}: {}",
                        mailshift::text::printable(&r.collection),
                        mailshift::text::printable(&r.key),
                        mailshift::text::printable(&r.reason)
                    )?;
                }
                Ok(())
            }
        }
    }
}

/// The contacts and calendars comparison of every mailbox whose migration has a `dav`
/// section (read-only on both servers). Resources the new server refused at the loop's last
/// copy (its records in the state directory), unchanged since, are listed as refused.
async fn verify_dav(runs: &[Run]) -> Vec<DavVerdict> {
    let mut out = Vec::new();
    for r in runs {
        let Some(dav) = &r.spec.dav else { continue };
        let records = mailshift::reconcile::records::Records::load(&r.state).unwrap_or_default();
        for a in &r.prepared.accounts {
            let observed = match mailshift::dav::observe(a, dav, &r.resolver, None).await {
                Ok(None) => DavObserved::NoSource,
                Ok(Some(c)) => DavObserved::Compared(c),
                Err(e) => DavObserved::Error {
                    reason: e.to_string(),
                },
            };
            out.push(DavVerdict {
                mailbox: a.address.clone(),
                state: DavState::of(&observed, &records.mailbox(&a.address).dav_refused),
            });
        }
    }
    out
}

/// One mailbox's Sieve scripts compared on both servers.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct SieveVerdict {
    mailbox: String,
    #[serde(flatten)]
    state: SieveState,
}

impl std::fmt::Display for SieveVerdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let m = &self.mailbox;
        match &self.state {
            SieveState::Unknown => write!(f, "Sieve {m}: not compared"),
            SieveState::NoSource => write!(
                f,
                "Sieve {m}: not compared (the old server has no ManageSieve)"
            ),
            SieveState::Error { reason } => write!(
                f,
                "Sieve {m}: cannot compare: {}",
                mailshift::text::printable(reason)
            ),
            SieveState::Compared {
                scripts,
                pending,
                kept,
                refused,
            } => {
                if *pending == 0 {
                    write!(
                        f,
                        "Sieve {m}: equal ({scripts} scripts, the same one active)"
                    )?;
                } else {
                    write!(
                        f,
                        "Sieve {m}: DIFFERENT: {pending} writes needed on the new server (scripts missing or the active one not active)"
                    )?;
                }
                for k in kept {
                    write!(f, "\n  kept on the new server, differs: {k}")?;
                }
                for r in refused {
                    write!(
                        f,
                        "\n  refused by the new server: {}: {}",
                        r.script,
                        mailshift::text::printable(&r.reason)
                    )?;
                }
                Ok(())
            }
        }
    }
}

/// The Sieve comparison of every mailbox whose migration has a `sieve` section (read-only
/// on both servers).
async fn verify_sieve(runs: &[Run]) -> Vec<SieveVerdict> {
    let mut out = Vec::new();
    for r in runs {
        let Some(sieve) = &r.spec.sieve else { continue };
        for a in &r.prepared.accounts {
            out.push(SieveVerdict {
                mailbox: a.address.clone(),
                state: mailshift::sieve::observe(a, sieve, &r.resolver).await,
            });
        }
    }
    out
}

/// Each account and alias of every migration with an `accounts` section: an account that
/// cannot be read counts as refused, with why.
async fn verify_accounts(runs: &[Run]) -> Vec<Verdict> {
    let mut out = Vec::new();
    for r in runs {
        if r.spec.accounts.is_none() {
            continue;
        }
        let (_, destination) = r.prepared.engine.connectors();
        match mailshift::directory::verify(&r.spec, &r.prepared.accounts, destination, &r.resolver)
            .await
        {
            Ok(v) => out.extend(v),
            Err(e) => out.push(Verdict::Refused {
                mailbox: r.prepared.name.clone(),
                reason: format!("the accounts cannot be read: {e}"),
            }),
        }
    }
    out
}

/// A prepared migration with what `verify` compares beside mail.
pub(super) struct Run {
    pub prepared: Prepared,
    pub spec: mailshift::spec::MailMigrationSpec,
    pub state: mailshift::store::StateDir,
    pub resolver: mailshift::secrets::Resolver,
}

/// Loads every manifest, keeps the migrations and mailboxes asked for, and prepares them.
/// The manifests' engines and a runtime to drive them; when either cannot be had, the
/// error is [`Ended::NothingRun`].
pub(super) fn prepare_to_run(
    args: &Args,
    kind: ReportKind,
    observer: Arc<dyn Observer>,
) -> Result<(Vec<Run>, tokio::runtime::Runtime), Ended> {
    let prepared = prepare_all(args, kind, observer).map_err(Ended::NothingRun)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            Ended::NothingRun(anyhow::Error::from(e).context("cannot start the runtime"))
        })?;
    Ok((prepared, runtime))
}

fn prepare_all(args: &Args, kind: ReportKind, observer: Arc<dyn Observer>) -> Result<Vec<Run>> {
    let mut prepared = Vec::new();
    for t in args.target.resolve()? {
        let name = t.name();
        if kind == ReportKind::Sync && t.migration.spec.suspend {
            bail!(
                "{name}: spec.suspend is true, so nothing is written; set it to false to resume, or use `mailshift verify` to compare"
            );
        }
        if kind == ReportKind::Sync && t.migration.spec.policy == Policy::Observe {
            bail!(
                "{name}: policy is observe, which never writes; use `mailshift verify` to compare"
            );
        }
        let p = engine::prepare_with(
            &t.migration,
            &t.resolver,
            Arc::new(t.state.clone()),
            Options::default(),
            observer.clone(),
        )
        .with_context(|| format!("{}", t.manifest.display()))?;
        prepared.push(Run {
            prepared: p,
            spec: t.migration.spec.clone(),
            state: t.state.clone(),
            resolver: t.resolver.clone(),
        });
    }
    if !args.mailboxes.is_empty() {
        let mut found = vec![false; args.mailboxes.len()];
        for p in &mut prepared {
            p.prepared.accounts.retain(|a| {
                match args.mailboxes.iter().position(|m| {
                    mailshift::address::Address::of(m)
                        == mailshift::address::Address::of(&a.address)
                }) {
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
        prepared.retain(|p| !p.prepared.accounts.is_empty());
    }
    Ok(prepared)
}
