//! `mailshift status -f FILE`: the stored status — conditions, timestamps, per-mailbox
//! progress — without touching any server.

use std::process::ExitCode;

use serde::Serialize;

use super::Output;
use super::target::Selection;
use mailshift::reconcile::records::{MailboxRecord, Records};
use mailshift::spec::MailMigrationStatus;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    target: Selection,
    #[arg(long, short, value_enum, default_value_t)]
    output: Output,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Entry {
    name: String,
    status: MailMigrationStatus,
    mailboxes: std::collections::BTreeMap<mailshift::address::Address, MailboxRecord>,
    /// Steps failing now: attempts in a row, the last reason, the next try (or stalled).
    failures: Vec<mailshift::spec::Failure>,
}

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let mut entries = Vec::new();
    for t in args.target.resolve()? {
        let (m, state) = (&t.migration, &t.state);
        let status = state.load_status()?;
        let records = Records::load(state)?;
        let entry = Entry {
            name: t.name().to_owned(),
            status,
            mailboxes: records.mailboxes,
            failures: records.failures,
        };
        if args.output == Output::Text {
            print_text(&entry, &m.spec);
        } else {
            entries.push(entry);
        }
    }
    super::print_structured(args.output, &entries)?;
    Ok(ExitCode::SUCCESS)
}

fn print_text(e: &Entry, spec: &mailshift::spec::MailMigrationSpec) {
    let s = &e.status;
    let phase = s.phase.map_or("never run".to_owned(), |p| format!("{p:?}"));
    outln!("MailMigration {}: {phase}", e.name);
    if let Some(n) = &s.next_step {
        outln!("  next step:      {n}");
    }
    if let Some(w) = s.waiting_until {
        outln!("  waiting until:  {}", w.to_rfc3339());
    }
    for (label, t) in [
        ("TTL lowered", s.ttl_lowered_at),
        ("final sync", s.final_synced_at),
        ("gateway on", s.gateway_on_at),
        ("MX switched", s.mx_switched_at),
        ("delta sync", s.delta_synced_at),
        ("completed", s.completed_at),
    ] {
        if let Some(t) = t {
            outln!("  {label:<15} {}", t.to_rfc3339());
        }
    }
    if !s.conditions.is_empty() {
        outln!("  conditions:");
        for c in &s.conditions {
            outln!(
                "    {:<12} {:<7} {:<22} {}",
                c.type_,
                format!("{:?}", c.status),
                c.reason,
                c.message
            );
        }
    }
    if let Some(t) = &s.transfer {
        let eta = t.eta.map_or(String::new(), |at| {
            format!(", done about {}", at.to_rfc3339())
        });
        let eta = match t.throttled_until {
            Some(until) => format!("{eta}; throttled by a server until {}", until.to_rfc3339()),
            None => eta,
        };
        outln!(
            "  copied:         {} of {} messages, {} of {} ({}%), {}/s since {}{eta}",
            t.messages,
            t.of_messages,
            mailshift::imap::report::human_bytes(t.bytes),
            mailshift::imap::report::human_bytes(t.of_bytes),
            t.percent,
            mailshift::imap::report::human_bytes(t.bytes_per_second),
            t.since.to_rfc3339()
        );
    }
    if let Some(m) = &s.mailboxes {
        outln!(
            "  mailboxes: {} total, {} synced, {} verified, {} failed",
            m.total,
            m.synced,
            m.verified,
            m.failed
        );
    }
    for a in mailshift::reconcile::records::listed(spec, &e.mailboxes) {
        let r = e.mailboxes.get(&a).cloned().unwrap_or_default();
        let sync = match r.sync {
            mailshift::plan::SyncState::Never => "never synced".to_owned(),
            mailshift::plan::SyncState::Synced { at, messages, .. } => {
                format!("synced {messages} messages at {}", at.to_rfc3339())
            }
        };
        let verified = match r.verification {
            mailshift::plan::Verification::NotVerified => "not verified".to_owned(),
            mailshift::plan::Verification::Equal { at, arrived: 0, .. } => {
                format!("verified equal at {}", at.to_rfc3339())
            }
            mailshift::plan::Verification::Equal { at, arrived, .. } => format!(
                "verified equal at {} but for {arrived} message(s) that arrived since the last sync",
                at.to_rfc3339()
            ),
            mailshift::plan::Verification::Differs { differences, .. } => {
                format!("{differences} difference(s)")
            }
        };
        out!("    {a}: {sync}; {verified}");
        match &r.last_error {
            Some(e) => outln!("; last error: {}", mailshift::text::printable(e)),
            None => outln!(),
        }
        for loss in &r.accepted_losses {
            outln!(
                "      accepted loss: {} in {} ({} bytes), refused: {}; accepted by {}",
                mailshift::text::printable(&loss.message),
                mailshift::text::printable(&loss.folder),
                loss.size,
                mailshift::text::printable(&loss.refused),
                mailshift::text::printable(&loss.accepted_by)
            );
        }
    }
    if !e.failures.is_empty() {
        outln!("  failing steps:");
        for f in &e.failures {
            let next = match (f.stalled, f.retry_at) {
                (true, _) => {
                    "stalled: not tried again until `apply` is run again or the spec changes"
                        .to_owned()
                }
                (false, Some(at)) => format!("next try at {}", at.to_rfc3339()),
                (false, None) => "tried again at the next pass".to_owned(),
            };
            outln!(
                "    {}: failed {} time(s) in a row: {}; {next}",
                f.step,
                f.count,
                mailshift::text::printable(&f.message)
            );
        }
    }
}
