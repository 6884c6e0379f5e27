//! `mailshift report -f FILE -o html|json|yaml|text`: what a migration did, for a person
//! (a page to open in a browser, or to attach to the change ticket) or a program: each
//! mailbox with its counts, sizes, last sync and verification, errors and accepted losses,
//! and the cutover's timeline. Read from the stored state only; no server is contacted.

use std::process::ExitCode;

use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;

use super::target::Selection;
use mailshift::reconcile::records::Records;
use mailshift::spec::{AcceptedLoss, MailMigrationSpec, MailMigrationStatus, ProbeState};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    target: Selection,
    #[arg(long, short, value_enum, default_value_t)]
    output: Format,
}

/// How the report is written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Lines for a terminal.
    #[default]
    Text,
    /// One self-contained HTML page (no scripts, no outside resources).
    Html,
    Json,
    Yaml,
}

/// The report of one migration.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Document {
    pub migration: String,
    pub phase: String,
    pub generated_at: DateTime<Utc>,
    /// The Ready condition's message: where the migration stands, in words.
    pub summary: String,
    pub totals: Totals,
    pub mailboxes: Vec<MailboxRow>,
    /// What happened when, in order.
    pub timeline: Vec<Event>,
}

#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Totals {
    pub mailboxes: u64,
    pub verified: u64,
    pub messages: u64,
    pub bytes: u64,
    pub accepted_losses: u64,
    pub failing: u64,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MailboxRow {
    pub address: String,
    pub messages: Option<u64>,
    pub bytes: Option<u64>,
    pub synced_at: Option<DateTime<Utc>>,
    /// `equal`, `N differences` or `not verified`.
    pub verification: String,
    pub verified_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub accepted_losses: Vec<AcceptedLoss>,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    pub at: DateTime<Utc>,
    pub what: String,
}

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let mut docs = Vec::new();
    for t in args.target.resolve()? {
        let (m, state) = (&t.migration, &t.state);
        let status = state.load_status()?;
        let records = Records::load(state)?;
        docs.push(document(t.name(), &m.spec, &status, &records, Utc::now()));
    }
    match args.output {
        Format::Text => docs.iter().for_each(print_text),
        Format::Html => out!("{}", html(&docs)),
        Format::Json => outln!("{}", serde_json::to_string_pretty(&docs)?),
        Format::Yaml => out!("{}", serde_yaml::to_string(&docs)?),
    }
    Ok(ExitCode::SUCCESS)
}

/// The report of one migration from its stored status and records.
pub fn document(
    name: &str,
    spec: &MailMigrationSpec,
    status: &MailMigrationStatus,
    records: &Records,
    now: DateTime<Utc>,
) -> Document {
    let mut totals = Totals::default();
    let mailboxes: Vec<MailboxRow> =
        mailshift::reconcile::records::listed(spec, &records.mailboxes)
            .into_iter()
            .map(|address| {
                let r = records.mailboxes.get(&address).cloned().unwrap_or_default();
                let (messages, bytes, synced_at) = match r.sync {
                    mailshift::plan::SyncState::Never => (None, None, None),
                    mailshift::plan::SyncState::Synced {
                        at,
                        messages,
                        bytes,
                    } => (Some(messages), Some(bytes), Some(at)),
                };
                let (verification, verified_at) = match r.verification {
                    mailshift::plan::Verification::NotVerified => ("not verified".to_owned(), None),
                    mailshift::plan::Verification::Equal { at, .. } => {
                        ("equal".to_owned(), Some(at))
                    }
                    mailshift::plan::Verification::Differs { at, differences } => {
                        (format!("{differences} differences"), Some(at))
                    }
                };
                totals.mailboxes += 1;
                totals.verified += u64::from(verification == "equal");
                totals.messages += messages.unwrap_or(0);
                totals.bytes += bytes.unwrap_or(0);
                totals.accepted_losses += r.accepted_losses.len() as u64;
                totals.failing += u64::from(r.last_error.is_some());
                MailboxRow {
                    address: address.to_string(),
                    messages,
                    bytes,
                    synced_at,
                    verification,
                    verified_at,
                    last_error: r.last_error,
                    accepted_losses: r.accepted_losses,
                }
            })
            .collect();
    Document {
        migration: name.to_owned(),
        phase: status
            .phase
            .map_or_else(|| "not started".to_owned(), |p| format!("{p:?}")),
        generated_at: now,
        summary: status
            .conditions
            .iter()
            .find(|c| c.type_ == "Ready")
            .map(|c| c.message.clone())
            .unwrap_or_else(|| "not reconciled yet".to_owned()),
        totals,
        mailboxes,
        timeline: timeline(status, records),
    }
}

/// The cutover's milestones as they happened, oldest first.
fn timeline(status: &MailMigrationStatus, records: &Records) -> Vec<Event> {
    let mut events: Vec<Event> = Vec::new();
    let mut at = |t: Option<DateTime<Utc>>, what: String| {
        if let Some(at) = t {
            events.push(Event { at, what });
        }
    };
    at(status.ttl_lowered_at, "MX TTL lowered".to_owned());
    if let (Some(lowered), Some(ttl)) = (status.ttl_lowered_at, status.old_ttl) {
        at(
            Some(lowered + TimeDelta::seconds(i64::from(ttl))),
            format!("the old TTL ({ttl}s) waited out"),
        );
    }
    at(
        status.gateway_on_at,
        "gateway on: the old server relays the domain to the new one".to_owned(),
    );
    at(status.final_synced_at, "final sync finished".to_owned());
    if let ProbeState::Passed { at: t } = &records.probe {
        at(
            Some(*t),
            "mail-flow probe arrived on the new server".to_owned(),
        );
    }
    at(
        status.mx_switched_at,
        "MX switched to the new server".to_owned(),
    );
    at(status.delta_synced_at, "delta sync finished".to_owned());
    at(status.completed_at, "migration complete".to_owned());
    events.sort_by_key(|e| e.at);
    events
}

fn print_text(d: &Document) {
    outln!("MailMigration {}: {} ({})", d.migration, d.phase, d.summary);
    let t = &d.totals;
    outln!(
        "  {} mailboxes, {} verified equal, {} messages ({}), {} accepted losses, {} failing",
        t.mailboxes,
        t.verified,
        t.messages,
        mailshift::imap::report::human_bytes(t.bytes),
        t.accepted_losses,
        t.failing
    );
    for m in &d.mailboxes {
        outln!(
            "  {}: {} messages, {}; {}",
            m.address,
            m.messages.map_or("-".into(), |n| n.to_string()),
            m.bytes
                .map_or("-".into(), mailshift::imap::report::human_bytes),
            m.verification
        );
    }
    for e in &d.timeline {
        outln!("  {}  {}", e.at.to_rfc3339(), e.what);
    }
}

/// Text for HTML: the five characters that could end an element or an attribute, as
/// entities.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in mailshift::text::printable(s).chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn when(t: Option<DateTime<Utc>>) -> String {
    t.map_or_else(
        || "&ndash;".to_owned(),
        |t| esc(&t.format("%Y-%m-%d %H:%M:%S UTC").to_string()),
    )
}

const STYLE: &str = "body{font-family:sans-serif;margin:2em;color:#222}\
h1{font-size:1.6em;margin-bottom:.2em}h2{font-size:1.2em;margin-top:1.6em}\
.summary{color:#444}table{border-collapse:collapse;margin-top:.5em}\
th,td{border:1px solid #bbb;padding:.3em .7em;text-align:left;vertical-align:top}\
th{background:#eef}td.n{text-align:right;white-space:nowrap}td.t{white-space:nowrap}.ok{color:#070;font-weight:bold}\
.bad{color:#a00;font-weight:bold}.loss{color:#840}ol.timeline li{margin:.2em 0}";

/// One self-contained page for all `docs`: no script, no outside resource, so it opens
/// anywhere (a mail attachment, a ticket) and shows the same.
pub fn html(docs: &[Document]) -> String {
    let mut page = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>mailshift report</title><style>{STYLE}</style></head><body>\n"
    );
    for d in docs {
        let t = &d.totals;
        page.push_str(&format!(
            "<section><h1>MailMigration {}</h1><p class=\"summary\">phase <b>{}</b>: {}</p>\n<p>{} mailboxes, {} verified equal, {} messages ({}), accepted losses: {}, failing: {}. Generated {}.</p>\n",
            esc(&d.migration),
            esc(&d.phase),
            esc(&d.summary),
            t.mailboxes,
            t.verified,
            t.messages,
            esc(&mailshift::imap::report::human_bytes(t.bytes)),
            t.accepted_losses,
            t.failing,
            when(Some(d.generated_at)),
        ));
        page.push_str("<h2>Mailboxes</h2><table><tr><th>mailbox</th><th>messages</th><th>size</th><th>last sync</th><th>verification</th><th>errors and accepted losses</th></tr>\n");
        for m in &d.mailboxes {
            let class = if m.verification == "equal" {
                "ok"
            } else {
                "bad"
            };
            let mut notes = String::new();
            if let Some(e) = &m.last_error {
                notes.push_str(&format!("<div class=\"bad\">{}</div>", esc(e)));
            }
            for l in &m.accepted_losses {
                notes.push_str(&format!(
                    "<div class=\"loss\">accepted loss: {} in {} ({}), refused: {}; accepted by {}</div>",
                    esc(&l.message),
                    esc(&l.folder),
                    esc(&mailshift::imap::report::human_bytes(l.size)),
                    esc(&l.refused),
                    esc(&l.accepted_by)
                ));
            }
            page.push_str(&format!(
                "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"t\">{}</td><td class=\"{class} t\">{} {}</td><td>{notes}</td></tr>\n",
                esc(&m.address),
                m.messages.map_or("&ndash;".into(), |n| n.to_string()),
                m.bytes
                    .map_or("&ndash;".into(), |b| esc(&mailshift::imap::report::human_bytes(b))),
                when(m.synced_at),
                esc(&m.verification),
                m.verified_at.map_or(String::new(), |t| format!("({})", when(Some(t)))),
            ));
        }
        page.push_str("</table>\n<h2>Timeline</h2>\n");
        if d.timeline.is_empty() {
            page.push_str("<p>No cutover step has happened yet.</p>\n");
        } else {
            page.push_str("<ol class=\"timeline\">\n");
            for e in &d.timeline {
                page.push_str(&format!(
                    "<li><time>{}</time> &mdash; {}</li>\n",
                    when(Some(e.at)),
                    esc(&e.what)
                ));
            }
            page.push_str("</ol>\n");
        }
        page.push_str("</section>\n");
    }
    page.push_str("</body></html>\n");
    page
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_from_servers_cannot_become_markup() {
        assert_eq!(
            esc("<script>alert('x')</script> & \"q\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;"
        );
        let doc = Document {
            migration: "m".into(),
            phase: "Completed".into(),
            generated_at: DateTime::parse_from_rfc3339("2026-12-01T10:00:00Z")
                .unwrap()
                .into(),
            summary: "done".into(),
            totals: Totals::default(),
            mailboxes: vec![MailboxRow {
                address: "a@x".into(),
                messages: Some(3),
                bytes: Some(3000),
                synced_at: None,
                verification: "equal".into(),
                verified_at: None,
                last_error: Some("<img src=x onerror=alert(1)>".into()),
                accepted_losses: Vec::new(),
            }],
            timeline: Vec::new(),
        };
        let page = html(&[doc]);
        assert!(!page.contains("<img"), "{page}");
        assert!(page.contains("&lt;img src=x onerror=alert(1)&gt;"));
        assert!(!page.contains("<script"));
    }
}
