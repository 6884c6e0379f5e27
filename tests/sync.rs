//! The copy engine against real Dovecot pairs: exact copies (bytes, flags, keywords,
//! INTERNALDATE), a source that is never written to, idempotent re-syncs, folder mapping
//! between differently configured servers, and bad input.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;

use anyhow::Result;
use common::*;
use mailshift::imap::conn::Recorder;
use mailshift::imap::mutf7;
use mailshift::store::StateDir;
use mailshift_harness::Dovecot;

/// Flags of every message of every folder, straight from the mail store (doveadm), for
/// proving that nothing changed on the source.
fn store_flags(d: &Dovecot) -> Result<String> {
    d.doveadm(&["fetch", "-u", USER, "mailbox uid flags", "all"])
}

/// Commands that never change anything on a server.
const READ_ONLY: &[&str] = &[
    "CAPABILITY",
    "AUTHENTICATE",
    "LOGIN",
    "LIST",
    "LSUB",
    "STATUS",
    "EXAMINE",
    "UID FETCH",
    "LOGOUT",
    "NOOP",
];

fn assert_read_only(sent: &str) {
    for (verb, line) in commands(sent) {
        assert!(
            READ_ONLY.contains(&verb.as_str()),
            "a command that may write reached the source: {line}"
        );
        if verb == "UID FETCH" {
            let upper = line.to_ascii_uppercase();
            let unpeeked = upper.replace("BODY.PEEK[", "");
            assert!(
                !unpeeked.contains("BODY[") && !upper.contains("RFC822 ") && !upper.contains("RFC822)") && !upper.contains("RFC822.TEXT") && !upper.contains("RFC822.HEADER"),
                "a FETCH that sets \\Seen reached the source: {line}"
            );
        }
    }
}

#[test]
fn copies_exactly_and_never_writes_to_the_source() -> Result<()> {
    let src = dovecot("exact-src").start()?;
    let dst = dovecot("exact-dst").separator('/').start()?;
    for f in ["Sent", "Projekte.Übersicht", "日本語"] {
        src.create_mailbox(USER, f)?;
    }
    let dates = [
        "07-Mar-2019 08:09:10 +0530",
        "31-Dec-2020 23:59:59 -0800",
        "01-Jan-2024 00:00:00 +0000",
    ];
    let flags = ["", "\\Seen", "\\Seen \\Answered $Label1", "\\Flagged Work", "\\Draft", "\\Deleted \\Seen"];
    let mut inbox = Vec::new();
    for i in 0..40 {
        let body = format!("Body {i}\r\n{}", "line of text\r\n".repeat(i * 7));
        inbox.push((flags[i % flags.len()], dates[i % dates.len()], message(&format!("m{i}"), &format!("Message {i}"), &body)));
    }
    // A genuine duplicate: the same message twice.
    inbox.push(("", dates[0], message("dup", "Twice", "same")));
    inbox.push(("\\Seen", dates[0], message("dup", "Twice", "same")));
    load(&src, "INBOX", &inbox)?;
    load(&src, "Sent", &[("\\Seen", dates[1], message("s1", "Sent one", "hello"))])?;
    let deep = mutf7::encode("Projekte.Übersicht");
    load(&src, &deep, &[("$Label2", dates[2], message("p1", "Überschrift ✓", "Grüße"))])?;
    let cjk = mutf7::encode("日本語");
    load(&src, &cjk, &[("", dates[0], message("j1", "日本語の件名", "本文"))])?;
    let before = store_flags(&src)?;

    let state = tempfile::tempdir()?;
    let recorder = Recorder::default();
    let engine = engine(
        src.imap_port(),
        dst.imap_port(),
        None,
        Arc::new(StateDir::at(state.path())),
        &recorder,
    );
    let rt = runtime();
    let report = rt.block_on(engine.sync_mailbox(&account()));
    assert!(report.is_perfect(), "{report:#?}");
    let copied: u64 = report.folders.iter().map(|f| f.copied).sum();
    assert_eq!(copied, 45);

    // Every folder is an exact copy: bytes, flags and keywords, INTERNALDATE.
    for (s, d) in [
        ("INBOX", "INBOX"),
        ("Sent", "Sent"),
        (deep.as_str(), &mutf7::encode("Projekte/Übersicht")),
        (cjk.as_str(), cjk.as_str()),
    ] {
        let a = messages(&src, s)?;
        let b = messages(&dst, d)?;
        assert!(!a.is_empty());
        assert_eq!(a, b, "{s} → {d} differs");
    }
    let dst_folders = folders(&dst)?;
    let sent = dst_folders.iter().find(|(n, _)| n == "Sent").expect("Sent on the destination");
    assert!(sent.1.contains("\\Sent"), "{sent:?}");
    // Subscriptions are carried over (the source's INBOX is not subscribed, nor its copy).
    let subscribed: BTreeSet<&str> = dst_folders
        .iter()
        .filter(|(_, a)| a.contains("\\Subscribed"))
        .map(|(n, _)| n.as_str())
        .collect();
    let projekte = mutf7::encode("Projekte/Übersicht");
    assert_eq!(subscribed, BTreeSet::from(["Sent", projekte.as_str(), cjk.as_str()]));

    // The source is untouched: same flags (\Seen included), and only reading commands.
    assert_eq!(store_flags(&src)?, before);
    let sent_to_source = recorder.sent();
    assert!(sent_to_source.contains("BODY.PEEK[]"));
    assert_read_only(&sent_to_source);
    Ok(())
}
