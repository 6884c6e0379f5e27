//! Gmail on one side, real Dovecot on the other. No Gmail can run here: the Gmail side is
//! the harness's stand-in (`mailshift_harness::Gmail`), written from Google's published
//! documentation of its IMAP extensions (labels as folders, `[Gmail]/All Mail`,
//! X-GM-LABELS, APPEND deduplicated by Message-ID). The tests check that labels become
//! folders (or keywords), that All Mail, Starred and Important are read as views (each
//! message copied where its labels say, archived mail into Archive, Starred as `\Flagged`),
//! and that a Gmail destination ends without duplicates.

mod common;

use std::collections::BTreeSet;

use common::*;
use mailshift_harness::{Dovecot, Gmail, GmailMessage};

/// Six messages as Gmail labels them, plus one in Spam.
fn mailbox() -> Vec<GmailMessage> {
    let m = |id: &str| message(id, id, &format!("body of {id}\r\n"));
    vec![
        GmailMessage::new(m("inbox-work"))
            .labels(&["\\Inbox", "Work"])
            .flags(&["\\Seen"]),
        GmailMessage::new(m("inbox-starred"))
            .labels(&["\\Inbox", "\\Starred"])
            .flags(&["\\Flagged"]),
        GmailMessage::new(m("archived")).flags(&["\\Seen"]),
        GmailMessage::new(m("sent"))
            .labels(&["\\Sent"])
            .flags(&["\\Seen"]),
        GmailMessage::new(m("projects")).labels(&["Work/Projects", "\\Important"]),
        GmailMessage::new(m("archived-important")).labels(&["\\Important"]),
        GmailMessage::new(m("spam")).labels(&["\\Spam"]),
    ]
}

fn gmail_source() -> Gmail {
    let mut b = Gmail::builder().user(USER, PASSWORD);
    for m in mailbox() {
        b = b.message(m);
    }
    b.start().expect("the Gmail stand-in starts")
}

fn manifest_for(src_port: u16, dst_port: u16, folders: &str) -> String {
    manifest("gmail", src_port, dst_port, folders)
}

/// The subjects in each of the destination's folders (empty folders left out), and the
/// flags of each message.
/// Folder → its subjects.
type Folders = Vec<(String, Vec<String>)>;
/// Subject → its flags.
type Flags = Vec<(String, BTreeSet<String>)>;

fn destination(d: &Dovecot) -> (Folders, Flags) {
    let mut folders = Vec::new();
    let mut flags = Vec::new();
    for (name, _) in common::folders(d).unwrap() {
        let msgs = messages(d, &name).unwrap_or_default();
        if msgs.is_empty() {
            continue;
        }
        let mut subjects: Vec<String> = msgs.iter().map(Msg::subject).collect();
        subjects.sort();
        for m in &msgs {
            flags.push((m.subject(), m.flags.clone()));
        }
        folders.push((name, subjects));
    }
    flags.sort();
    (folders, flags)
}

fn names(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

#[test]
fn gmail_labels_become_folders_and_its_views_are_not_copied_again() {
    let src = gmail_source();
    let dst = dovecot("gmail-folders").start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("m.yaml"),
        manifest_for(src.port(), dst.imap_port(), ""),
    )
    .unwrap();
    // `folders` says what becomes of each label and view before anything is copied.
    let mapping = mailshift(dir.path(), &["folders", "-f", "m.yaml"]);
    let mapping = String::from_utf8_lossy(&mapping.stdout).to_string();
    for line in [
        "[Gmail]/All Mail → Archive",
        "only its archived messages",
        "[Gmail]/Starred → (not copied): Gmail's view (\\Flagged)",
        "[Gmail]/Important → (not copied): Gmail's view (\\Important)",
        "Work/Projects → Work.Projects",
    ] {
        assert!(mapping.contains(line), "{line:?} in:\n{mapping}");
    }
    let report = sync_report(dir.path());
    assert_eq!(report["perfect"], true, "{report:#}");
    let (folders, flags) = destination(&dst);
    assert_eq!(
        folders,
        vec![
            (
                "Archive".to_owned(),
                names(&["archived", "archived-important"])
            ),
            ("INBOX".to_owned(), names(&["inbox-starred", "inbox-work"])),
            ("Junk".to_owned(), names(&["spam"])),
            ("Sent".to_owned(), names(&["sent"])),
            ("Work".to_owned(), names(&["inbox-work"])),
            ("Work.Projects".to_owned(), names(&["projects"])),
        ],
        "one folder per label, archived mail in Archive, no All Mail, Starred or Important"
    );
    // Starred is the \Flagged flag, kept on the message.
    assert!(
        flags
            .iter()
            .any(|(s, f)| s == "inbox-starred" && f.contains("\\Flagged")),
        "{flags:?}"
    );
    // The views were not read for bodies at all.
    let sent = src.commands();
    for view in ["[Gmail]/All Mail", "[Gmail]/Starred", "[Gmail]/Important"] {
        let examined = sent
            .iter()
            .any(|c| c.contains("EXAMINE") && c.contains(view));
        assert_eq!(examined, view == "[Gmail]/All Mail", "{view}: {sent:#?}");
    }
    // Nothing changed on Gmail, and a second sync copies nothing.
    assert_eq!(src.messages(USER).len(), 7);
    let again = sync_report(dir.path());
    assert_eq!(again["totals"]["messagesTransferred"], 0, "{again:#}");
    assert_eq!(again["perfect"], true, "{again:#}");
    let verify = mailshift(dir.path(), &["verify", "-f", "m.yaml"]);
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );
}

#[test]
fn gmail_labels_as_keywords_copy_each_message_once() {
    let src = gmail_source();
    let dst = dovecot("gmail-keywords").start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("m.yaml"),
        manifest_for(
            src.port(),
            dst.imap_port(),
            "  folders:\n    gmailLabels: keywords\n",
        ),
    )
    .unwrap();
    let report = sync_report(dir.path());
    assert_eq!(report["perfect"], true, "{report:#}");
    assert_eq!(report["totals"]["messagesTransferred"], 7, "{report:#}");
    let (folders, flags) = destination(&dst);
    assert_eq!(
        folders,
        vec![
            (
                "Archive".to_owned(),
                names(&["archived", "archived-important", "projects"])
            ),
            ("INBOX".to_owned(), names(&["inbox-starred", "inbox-work"])),
            ("Junk".to_owned(), names(&["spam"])),
            ("Sent".to_owned(), names(&["sent"])),
        ],
        "each message once, in its system folder or Archive"
    );
    let of = |subject: &str| {
        flags
            .iter()
            .find(|(s, _)| s == subject)
            .map(|(_, f)| f.clone())
            .unwrap_or_default()
    };
    assert!(of("inbox-work").contains("Work"), "{flags:?}");
    assert!(of("projects").contains("Work/Projects"), "{flags:?}");
    assert!(of("inbox-starred").contains("\\Flagged"), "{flags:?}");
    assert!(
        !of("archived").iter().any(|f| !f.starts_with('\\')),
        "{flags:?}"
    );
    let again = sync_report(dir.path());
    assert_eq!(again["totals"]["messagesTransferred"], 0, "{again:#}");
    assert_eq!(again["totals"]["flagsUpdated"], 0, "{again:#}");
}

#[test]
fn a_gmail_destination_gets_each_message_once_whatever_its_folders() {
    let src = dovecot("to-gmail").start().unwrap();
    let shared = message("shared", "shared", "in two folders\r\n");
    load(
        &src,
        "INBOX",
        &[
            ("\\Seen", "17-Aug-2020 18:00:00 +0200", shared.clone()),
            ("", "17-Aug-2020 18:00:00 +0200", message("a", "a", "a\r\n")),
        ],
    )
    .unwrap();
    let mut imap = imap(&src).unwrap();
    imap.command_status("CREATE Work").unwrap();
    imap.logout();
    load(
        &src,
        "Work",
        &[
            ("\\Seen", "17-Aug-2020 18:00:00 +0200", shared),
            ("", "17-Aug-2020 18:00:00 +0200", message("b", "b", "b\r\n")),
        ],
    )
    .unwrap();
    let dst = Gmail::builder().user(USER, PASSWORD).start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("m.yaml"),
        manifest_for(src.imap_port(), dst.port(), ""),
    )
    .unwrap();
    let report = sync_report(dir.path());
    assert_eq!(report["perfect"], true, "{report:#}");
    let stored = dst.messages(USER);
    assert_eq!(stored.len(), 3, "one message per Message-ID: {stored:#?}");
    let shared = stored
        .iter()
        .find(|m| String::from_utf8_lossy(&m.raw).contains("Subject: shared"))
        .expect("the shared message");
    let labels: BTreeSet<&str> = shared.labels.iter().map(String::as_str).collect();
    assert!(
        labels.contains("\\Inbox") && labels.contains("Work"),
        "{labels:?}"
    );
    // Again: nothing new, and nothing appended twice.
    let again = sync_report(dir.path());
    assert_eq!(again["totals"]["messagesTransferred"], 0, "{again:#}");
    assert_eq!(dst.messages(USER).len(), 3);
    let appends = dst
        .commands()
        .iter()
        .filter(|c| c.contains("APPEND"))
        .count();
    assert_eq!(appends, 4, "one APPEND per source message, none again");
}

#[test]
fn gmails_own_bandwidth_limit_pauses_the_copy_instead_of_failing_it() {
    let mut b = Gmail::builder().user(USER, PASSWORD).download_limit(2_000);
    for m in mailbox() {
        b = b.message(m);
    }
    let src = b.start().unwrap();
    let dst = dovecot("gmail-bandwidth").start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("m.yaml"),
        manifest_for(src.port(), dst.imap_port(), ""),
    )
    .unwrap();
    let report = sync_report(dir.path());
    let mailbox = &report["mailboxes"][0];
    let paused = mailbox["paused"]["what"].as_str().unwrap_or_default();
    assert!(paused.contains("transfer limit"), "{report:#}");
    assert!(mailbox["paused"]["until"].is_string(), "{report:#}");
    assert_eq!(report["totals"]["refused"], 0, "not refusals: {report:#}");
    assert_eq!(report["totals"]["errors"], 0, "not failures: {report:#}");
    assert_eq!(report["totals"]["paused"], 1, "{report:#}");
    assert_eq!(report["perfect"], false, "{report:#}");
    let copied = report["totals"]["messagesTransferred"].as_u64().unwrap();
    assert!(
        copied >= 1,
        "what fit was copied before the limit: {report:#}"
    );
    let (folders, _) = destination(&dst);
    let on_destination: usize = folders.iter().map(|(_, s)| s.len()).sum();
    assert_eq!(on_destination as u64, copied, "{folders:?}");
}
