//! What `mailshift sync` and `mailshift verify` report: per mailbox and folder, the counts and
//! sizes on both sides, every message missing, surplus, extra or refused, and totals with
//! throughput. Serializable (`--output json`, status) and printable (the text summary).
//!
//! A report is **perfect** when no source message is missing from the destination, none is
//! there twice (surplus), none was refused and nothing failed. Extra messages (the
//! destination's own mail, e.g. delivered after the MX switch) are listed but are not a
//! fault.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::time::Duration;

use chrono::{DateTime, FixedOffset};
use serde::{Deserialize, Serialize};

use super::diff::{Entry, FolderDiff};
use super::identity::MessageKey;
use crate::text::Printable;

/// One message, as a report names it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageRef {
    /// UID in the folder it was listed from (source for missing, destination for extra).
    pub uid: u32,
    /// The message's identity (a digest: see [`MessageKey`]).
    pub key: MessageKey,
    /// Its Message-ID (normalized, without angle brackets), when it has one and it was read:
    /// what people search their mail by. Listings keep only the digest, so the ids of the
    /// messages a report names are fetched for it (see `engine::names`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// INTERNALDATE.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date: Option<DateTime<FixedOffset>>,
    pub size: u64,
}

impl MessageRef {
    /// A message of which the whole header (or the whole message) is at hand.
    pub fn of_message(
        uid: u32,
        header: &[u8],
        date: Option<DateTime<FixedOffset>>,
        size: u64,
    ) -> MessageRef {
        MessageRef {
            uid,
            key: MessageKey::from_header(header),
            message_id: super::identity::message_id(header),
            date,
            size,
        }
    }

    /// With the Message-ID read from `header`, the message's own.
    pub fn named_from(mut self, header: &[u8]) -> MessageRef {
        self.message_id = super::identity::message_id(header);
        self
    }

    /// How people see the message named: `<message-id>`, else its key.
    pub fn name(&self) -> String {
        match &self.message_id {
            Some(id) => format!("<{id}>"),
            None => self.key.to_string(),
        }
    }
}

impl From<&Entry> for MessageRef {
    fn from(e: &Entry) -> MessageRef {
        MessageRef {
            uid: e.uid,
            key: e.key,
            message_id: None,
            date: e.internal_date,
            size: u64::from(e.size),
        }
    }
}

/// A source message the destination would not take (too large, NO to APPEND): skipped,
/// counted, remembered so that it is not retried on every run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RefusedMessage {
    #[serde(flatten)]
    pub message: MessageRef,
    /// The server's words, or ours (`larger than APPENDLIMIT 26214400`).
    pub reason: String,
}

/// One source folder and where it went.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FolderReport {
    pub source: String,
    pub destination: String,
    pub source_messages: u64,
    pub source_bytes: u64,
    pub destination_messages: u64,
    pub destination_bytes: u64,
    /// On the source, not on the destination.
    pub missing: Vec<MessageRef>,
    /// On the destination more often than on the source.
    pub surplus: Vec<MessageRef>,
    /// On the destination only (its own mail): listed, not a fault.
    pub extra: Vec<MessageRef>,
    pub refused: Vec<RefusedMessage>,
    /// Messages and bytes copied by this run.
    pub copied: u64,
    pub copied_bytes: u64,
    /// Source messages not copied because the destination already had them.
    pub skipped: u64,
    pub flags_updated: u64,
    /// Copies whose flags differ from the source's (informational: after the MX switch the
    /// destination's user changes flags, and those changes are kept).
    #[serde(default)]
    pub flags_differ: u64,
    /// How the folder was compared (`no change`, `incremental`, `full: UIDVALIDITY changed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pass: Option<String>,
    /// What stopped this folder, if something did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Verification found no such folder on the destination: its source messages are all
    /// `missing`, to be copied, not a failure of the comparison.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub destination_missing: bool,
    /// Verification: source messages that arrived after the last sync listed the folder
    /// (UIDs from its UIDNEXT on), not on the destination yet. Not missing: the next sync
    /// copies them (in the loop, the final sync, once the gateway holds new mail back).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub arrived: u64,
    /// Copied by this run, but not byte for byte: the message holds NUL bytes and the
    /// destination does not offer BINARY (RFC 3516), so they were sent as 0x80, as
    /// `BODY[]` shows them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inexact: Vec<MessageRef>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl FolderReport {
    /// The verify view of a comparison: counts and sizes from the diff, missing, surplus and
    /// extra messages looked up in the entries it was computed from. Source messages listed
    /// in `refused` are reported as refused, not also as missing.
    pub fn from_diff(
        source: &str,
        destination: &str,
        diff: &FolderDiff,
        source_entries: &[Entry],
        dest_entries: &[Entry],
        refused: Vec<RefusedMessage>,
    ) -> FolderReport {
        let pick = |entries: &[Entry], uids: &[u32]| -> Vec<MessageRef> {
            let by_uid: HashMap<u32, &Entry> = entries.iter().map(|e| (e.uid, e)).collect();
            uids.iter()
                .filter_map(|u| by_uid.get(u).copied())
                .map(MessageRef::from)
                .collect()
        };
        let refused_uids: HashSet<u32> = refused.iter().map(|r| r.message.uid).collect();
        let missing = pick(source_entries, &diff.to_copy)
            .into_iter()
            .filter(|m| !refused_uids.contains(&m.uid))
            .collect();
        FolderReport {
            source: source.to_owned(),
            destination: destination.to_owned(),
            source_messages: diff.source.messages,
            source_bytes: diff.source.bytes,
            destination_messages: diff.dest.messages,
            destination_bytes: diff.dest.bytes,
            missing,
            surplus: pick(dest_entries, &diff.surplus),
            extra: pick(dest_entries, &diff.extra),
            refused,
            skipped: diff.pairs.len() as u64,
            flags_differ: diff.flags_differ as u64,
            ..FolderReport::default()
        }
    }

    pub fn is_perfect(&self) -> bool {
        self.missing.is_empty()
            && self.surplus.is_empty()
            && self.refused.is_empty()
            && self.error.is_none()
    }
}

/// One mailbox.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MailboxReport {
    pub address: String,
    pub folders: Vec<FolderReport>,
    /// What stopped the whole mailbox (login refused, connection lost for good), if anything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// A daily budget of `limits` ran out: the copy stopped there, and goes on then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused: Option<crate::limits::Pause>,
    /// What the source holds that is not mail and was not copied (a PST's contacts,
    /// calendars, tasks): told, not a fault.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_mail: Vec<NotMail>,
}

/// A source folder of what is not mail (or items that are not mail in a mail folder),
/// left out of the copy.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NotMail {
    /// The folder's path in the source, levels joined by `/`.
    pub folder: String,
    /// What it holds (`IPF.Contact`, `IPF.Appointment`, `IPM.Contact`, ...).
    pub class: String,
    pub items: u64,
}

impl MailboxReport {
    pub fn is_perfect(&self) -> bool {
        self.error.is_none()
            && self.paused.is_none()
            && self.folders.iter().all(FolderReport::is_perfect)
    }
}

/// Which command produced the report.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReportKind {
    Sync,
    Verify,
}

/// Sums over every mailbox and folder, and throughput.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Totals {
    pub mailboxes: u64,
    pub folders: u64,
    pub source_messages: u64,
    pub source_bytes: u64,
    pub messages_transferred: u64,
    pub bytes_transferred: u64,
    pub skipped: u64,
    pub flags_updated: u64,
    pub missing: u64,
    pub surplus: u64,
    pub extra: u64,
    pub refused: u64,
    /// Mailboxes and folders that failed.
    pub errors: u64,
    /// Mailboxes whose copy waits for a daily budget.
    #[serde(default)]
    pub paused: u64,
    pub elapsed_seconds: f64,
    pub messages_per_second: f64,
    /// Megabytes (10^6 bytes) per second.
    pub megabytes_per_second: f64,
}

/// The whole report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub kind: ReportKind,
    pub perfect: bool,
    pub totals: Totals,
    pub mailboxes: Vec<MailboxReport>,
}

impl Report {
    /// Computes totals and the verdict.
    pub fn new(kind: ReportKind, mailboxes: Vec<MailboxReport>, elapsed: Duration) -> Report {
        let mut t = Totals {
            mailboxes: mailboxes.len() as u64,
            elapsed_seconds: elapsed.as_secs_f64(),
            ..Totals::default()
        };
        for m in &mailboxes {
            t.errors += u64::from(m.error.is_some());
            t.paused += u64::from(m.paused.is_some());
            for f in &m.folders {
                t.folders += 1;
                t.source_messages += f.source_messages;
                t.source_bytes += f.source_bytes;
                t.messages_transferred += f.copied;
                t.bytes_transferred += f.copied_bytes;
                t.skipped += f.skipped;
                t.flags_updated += f.flags_updated;
                t.missing += f.missing.len() as u64;
                t.surplus += f.surplus.len() as u64;
                t.extra += f.extra.len() as u64;
                t.refused += f.refused.len() as u64;
                t.errors += u64::from(f.error.is_some());
            }
        }
        // Rates over a zero duration are meaningless: report 0 rather than infinity, which
        // JSON cannot carry.
        if t.elapsed_seconds > 0.0 {
            t.messages_per_second = t.messages_transferred as f64 / t.elapsed_seconds;
            t.megabytes_per_second = t.bytes_transferred as f64 / 1e6 / t.elapsed_seconds;
        }
        let perfect = mailboxes.iter().all(MailboxReport::is_perfect);
        Report {
            kind,
            perfect,
            totals: t,
            mailboxes,
        }
    }

    /// Every mailbox equal (sync: and nothing refused or failed). `verify` exits 0 only
    /// when this holds.
    pub fn is_perfect(&self) -> bool {
        self.perfect
    }
}

/// Extra messages listed per folder in the text summary; JSON has them all. Missing,
/// surplus and refused messages are always listed in full: each is a problem to look at.
const EXTRA_SHOWN: usize = 20;

pub use crate::text::human_bytes;

fn write_message(f: &mut fmt::Formatter<'_>, label: &str, m: &MessageRef) -> fmt::Result {
    let date = m
        .date
        .map(|d| d.format("%Y-%m-%d %H:%M:%S %z").to_string())
        .unwrap_or_else(|| "(no date)".into());
    write!(
        f,
        "      {label:<8} {}  {date}  {}  uid {}",
        Printable(&m.name()),
        human_bytes(m.size),
        m.uid
    )
}

impl fmt::Display for FolderReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "    {} → {}: source {} ({}), destination {} ({})",
            Printable(&self.source),
            Printable(&self.destination),
            self.source_messages,
            human_bytes(self.source_bytes),
            self.destination_messages,
            human_bytes(self.destination_bytes)
        )?;
        if self.copied > 0 {
            write!(
                f,
                "; copied {} ({})",
                self.copied,
                human_bytes(self.copied_bytes)
            )?;
        }
        if self.flags_updated > 0 {
            write!(f, "; flags updated on {}", self.flags_updated)?;
        }
        if self.flags_differ > 0 {
            write!(f, "; {} copies with other flags", self.flags_differ)?;
        }
        if let Some(pass) = &self.pass {
            write!(f, " [{pass}]")?;
        }
        if self.arrived > 0 {
            write!(
                f,
                "; {} arrived since the last sync (the next sync copies them)",
                self.arrived
            )?;
        }
        if let Some(e) = &self.error {
            write!(f, "\n      error: {}", Printable(e))?;
        }
        for m in &self.missing {
            f.write_str("\n")?;
            write_message(f, "missing", m)?;
        }
        for m in &self.surplus {
            f.write_str("\n")?;
            write_message(f, "twice", m)?;
        }
        for r in &self.refused {
            f.write_str("\n")?;
            write_message(f, "refused", &r.message)?;
            write!(f, "  {}", Printable(&r.reason))?;
        }
        for m in &self.inexact {
            f.write_str("\n")?;
            write_message(f, "inexact", m)?;
            f.write_str("  NUL bytes sent as 0x80: the destination does not offer BINARY")?;
        }
        for m in self.extra.iter().take(EXTRA_SHOWN) {
            f.write_str("\n")?;
            write_message(f, "extra", m)?;
        }
        if self.extra.len() > EXTRA_SHOWN {
            write!(
                f,
                "\n      ... and {} more extra (all in --output json)",
                self.extra.len() - EXTRA_SHOWN
            )?;
        }
        Ok(())
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = &self.totals;
        let what = match self.kind {
            ReportKind::Sync => "sync",
            ReportKind::Verify => "verify",
        };
        if self.perfect {
            writeln!(
                f,
                "{what}: perfect: {} mailboxes, {} folders",
                t.mailboxes, t.folders
            )?;
        } else {
            let mut problems = Vec::new();
            for (n, label) in [
                (t.missing, "missing"),
                (t.surplus, "on the destination twice"),
                (t.refused, "refused"),
                (t.errors, "errors"),
                (t.paused, "paused until a daily budget has room"),
            ] {
                if n > 0 {
                    problems.push(format!("{n} {label}"));
                }
            }
            writeln!(f, "{what}: NOT PERFECT: {}", problems.join(", "))?;
        }
        for m in &self.mailboxes {
            writeln!(
                f,
                "  {}{}",
                Printable(&m.address),
                if m.is_perfect() { "" } else { " (not perfect)" }
            )?;
            if let Some(e) = &m.error {
                writeln!(f, "    error: {}", Printable(e))?;
            }
            if let Some(p) = &m.paused {
                writeln!(f, "    paused: {p}")?;
            }
            for folder in &m.folders {
                writeln!(f, "{folder}")?;
            }
        }
        if self.kind == ReportKind::Verify {
            // Verify copies nothing: say what it compared and what it found.
            let mut found = Vec::new();
            for (n, label) in [
                (t.missing, "missing on the destination"),
                (t.surplus, "on the destination twice"),
                (t.refused, "refused by the destination"),
                (t.errors, "errors"),
            ] {
                if n > 0 {
                    found.push(format!("{n} {label}"));
                }
            }
            return write!(
                f,
                "verified {} messages ({}) in {} folders of {} mailboxes in {:.1} s: {}; extra on the destination {}",
                t.source_messages,
                human_bytes(t.source_bytes),
                t.folders,
                t.mailboxes,
                t.elapsed_seconds,
                if found.is_empty() {
                    "equal".to_owned()
                } else {
                    found.join(", ")
                },
                t.extra
            );
        }
        write!(
            f,
            "source {} messages ({}); transferred {} messages ({}) in {:.1} s: {:.1} messages/s, {:.2} MB/s; skipped {}, flags updated {}, extra {}, refused {}, errors {}",
            t.source_messages,
            human_bytes(t.source_bytes),
            t.messages_transferred,
            human_bytes(t.bytes_transferred),
            t.elapsed_seconds,
            t.messages_per_second,
            t.megabytes_per_second,
            t.skipped,
            t.flags_updated,
            t.extra,
            t.refused,
            t.errors
        )
    }
}

#[cfg(test)]
mod tests {
    use super::super::diff::{KnownPairs, Storable, diff};
    use super::*;
    use chrono::TimeZone;

    fn entry(uid: u32, id: &str, size: u32) -> Entry {
        Entry {
            uid,
            key: MessageKey::of_message_id(id),
            flags: Default::default(),
            internal_date: FixedOffset::east_opt(3600)
                .unwrap()
                .with_ymd_and_hms(2024, 1, 2, 10, 0, 0)
                .single(),
            size,
        }
    }

    fn folder(src: &[Entry], dst: &[Entry], refused: Vec<RefusedMessage>) -> FolderReport {
        let d = diff(src, dst, &KnownPairs::new(), &Storable::Any);
        FolderReport::from_diff("INBOX", "INBOX", &d, src, dst, refused)
    }

    #[test]
    fn verify_lists_missing_surplus_extra() {
        let src = [entry(1, "a@x", 100), entry(2, "b@x", 2_500_000)];
        let dst = [
            entry(10, "a@x", 100),
            entry(11, "a@x", 100),
            entry(12, "new@x", 5),
        ];
        let f = folder(&src, &dst, vec![]);
        assert_eq!(f.missing.len(), 1);
        assert_eq!(f.missing[0].uid, 2);
        assert_eq!(f.surplus.len(), 1);
        assert_eq!(f.extra.len(), 1);
        assert_eq!(f.extra[0].key, MessageKey::of_message_id("new@x"));
        assert_eq!((f.source_messages, f.source_bytes), (2, 2_500_100));
        assert_eq!((f.destination_messages, f.destination_bytes), (3, 205));
        assert_eq!(f.skipped, 1);
        assert!(!f.is_perfect());
        // Named by key until the Message-IDs are fetched for the report.
        assert!(
            f.to_string()
                .contains(&format!("extra    {}", f.extra[0].key))
        );
        let mut f = f;
        f.missing[0].message_id = Some("b@x".into());
        f.extra[0].message_id = Some("new@x".into());
        let text = f.to_string();
        assert!(
            text.contains("missing  <b@x>  2024-01-02 10:00:00 +0100  2.5 MB  uid 2"),
            "{text}"
        );
        assert!(text.contains("twice"), "{text}");
        assert!(text.contains("extra    <new@x>"), "{text}");
    }

    #[test]
    fn extra_mail_is_not_a_fault() {
        let src = [entry(1, "a@x", 100)];
        let dst = [entry(10, "a@x", 100), entry(12, "new@x", 5)];
        let f = folder(&src, &dst, vec![]);
        assert!(f.is_perfect());
        let r = Report::new(
            ReportKind::Verify,
            vec![MailboxReport {
                address: "alice@example.com".into(),
                folders: vec![f],
                error: None,
                paused: None,
                not_mail: Vec::new(),
            }],
            Duration::from_secs(2),
        );
        assert!(r.is_perfect());
        assert!(
            r.to_string()
                .starts_with("verify: perfect: 1 mailboxes, 1 folders")
        );
    }

    #[test]
    fn flag_differences_are_informational() {
        let src = [entry(1, "a@x", 100)];
        let mut copy = entry(10, "a@x", 100);
        copy.flags = super::super::diff::Flag::parse_all(["\\Seen"]);
        let f = folder(&src, &[copy], vec![]);
        assert_eq!(f.flags_differ, 1);
        assert!(f.is_perfect());
        assert!(f.to_string().contains("1 copies with other flags"), "{f}");
    }

    #[test]
    fn refused_is_counted_not_missing() {
        let src = [entry(1, "a@x", 100), entry(2, "big@x", 60_000_000)];
        let dst = [entry(10, "a@x", 100)];
        let refused = vec![RefusedMessage {
            message: MessageRef::from(&src[1]).named_from(b"Message-ID: <big@x>\r\n"),
            reason: "larger than APPENDLIMIT 52428800".into(),
        }];
        let f = folder(&src, &dst, refused);
        assert!(f.missing.is_empty());
        assert_eq!(f.refused.len(), 1);
        assert!(!f.is_perfect());
        let r = Report::new(
            ReportKind::Sync,
            vec![MailboxReport {
                address: "bob@example.com".into(),
                folders: vec![f],
                error: None,
                paused: None,
                not_mail: Vec::new(),
            }],
            Duration::ZERO,
        );
        assert!(!r.is_perfect());
        assert_eq!(r.totals.refused, 1);
        assert_eq!(r.totals.messages_per_second, 0.0);
        let text = r.to_string();
        assert!(text.starts_with("sync: NOT PERFECT: 1 refused"), "{text}");
        assert!(
            text.contains("refused  <big@x>") && text.contains("APPENDLIMIT"),
            "{text}"
        );
    }

    #[test]
    fn totals_and_rates() {
        let f = FolderReport {
            source: "INBOX".into(),
            destination: "INBOX".into(),
            copied: 100,
            copied_bytes: 5_000_000,
            skipped: 7,
            ..FolderReport::default()
        };
        let mut g = f.clone();
        g.error = Some("connection reset".into());
        let r = Report::new(
            ReportKind::Sync,
            vec![
                MailboxReport {
                    address: "a@x".into(),
                    folders: vec![f, g],
                    error: None,
                    paused: None,
                    not_mail: Vec::new(),
                },
                MailboxReport {
                    address: "b@x".into(),
                    folders: vec![],
                    error: Some("login refused".into()),
                    paused: None,
                    not_mail: Vec::new(),
                },
            ],
            Duration::from_secs(4),
        );
        let t = &r.totals;
        assert_eq!((t.mailboxes, t.folders), (2, 2));
        assert_eq!(
            (t.messages_transferred, t.bytes_transferred),
            (200, 10_000_000)
        );
        assert_eq!(t.skipped, 14);
        assert_eq!(t.errors, 2);
        assert_eq!(t.messages_per_second, 50.0);
        assert_eq!(t.megabytes_per_second, 2.5);
        assert!(!r.is_perfect());
        let text = r.to_string();
        assert!(text.contains("NOT PERFECT: 2 errors"), "{text}");
        assert!(text.contains("50.0 messages/s, 2.50 MB/s"), "{text}");
        assert!(text.contains("error: login refused"), "{text}");
    }

    #[test]
    fn verify_says_what_it_compared_not_what_it_transferred() {
        let src = [entry(1, "a@x", 100), entry(2, "b@x", 50)];
        let equal = folder(&src, &src, vec![]);
        let short = folder(&src, &src[..1], vec![]);
        let report = |f: FolderReport| {
            Report::new(
                ReportKind::Verify,
                vec![MailboxReport {
                    address: "a@x".into(),
                    folders: vec![f],
                    error: None,
                    paused: None,
                    not_mail: Vec::new(),
                }],
                Duration::from_secs(2),
            )
            .to_string()
        };
        let text = report(equal);
        let last = text.lines().last().unwrap();
        assert_eq!(
            last,
            "verified 2 messages (150 B) in 1 folders of 1 mailboxes in 2.0 s: equal; extra on the destination 0"
        );
        assert!(!text.contains("transferred"), "{text}");
        let text = report(short);
        assert!(
            text.lines()
                .last()
                .unwrap()
                .contains(": 1 missing on the destination;"),
            "{text}"
        );
    }

    #[test]
    fn json_round_trip() {
        let src = [entry(1, "a@x", 100)];
        let mut f = folder(&src, &[], vec![]);
        f.missing[0].message_id = Some("a@x".into());
        let r = Report::new(
            ReportKind::Verify,
            vec![MailboxReport {
                address: "a@x".into(),
                folders: vec![f],
                error: None,
                paused: None,
                not_mail: Vec::new(),
            }],
            Duration::from_millis(1500),
        );
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["perfect"], false);
        assert_eq!(json["totals"]["missing"], 1);
        assert_eq!(
            json["mailboxes"][0]["folders"][0]["missing"][0]["messageId"],
            "a@x"
        );
        assert_eq!(
            json["mailboxes"][0]["folders"][0]["missing"][0]["key"],
            MessageKey::of_message_id("a@x").to_string()
        );
        assert_eq!(
            json["mailboxes"][0]["folders"][0]["missing"][0]["date"],
            "2024-01-02T10:00:00+01:00"
        );
        let back: Report = serde_json::from_value(json).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn many_extras_are_summarized_in_text() {
        let src: Vec<Entry> = vec![];
        let dst: Vec<Entry> = (0..25).map(|i| entry(i, &format!("n{i}@x"), 1)).collect();
        let f = folder(&src, &dst, vec![]);
        assert_eq!(f.extra.len(), 25);
        let text = f.to_string();
        assert_eq!(text.matches("extra    ").count(), EXTRA_SHOWN);
        assert!(text.contains("and 5 more extra"), "{text}");
    }

    #[test]
    fn bytes_for_people() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(999), "999 B");
        assert_eq!(human_bytes(1000), "1.0 kB");
        assert_eq!(human_bytes(12_345), "12.3 kB");
        assert_eq!(human_bytes(4_500_000), "4.5 MB");
        assert_eq!(human_bytes(u64::MAX), "18446744.1 TB");
    }
}
