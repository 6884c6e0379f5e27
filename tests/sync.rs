//! The copy engine against real Dovecot pairs: exact copies (bytes, flags, keywords,
//! INTERNALDATE), a source that is never written to, idempotent re-syncs, folder mapping
//! between differently configured servers, and bad input.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;

use anyhow::Result;
use common::*;
use mailshift::engine::{Engine, Options};
use mailshift::imap::conn::{Connector, Recorder, Side};
use mailshift::imap::mutf7;
use mailshift::spec::{Endpoint, Folders};
use mailshift::store::StateDir;
use mailshift_harness::Dovecot;
use mailshift_harness::client::Imap;

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
    "NAMESPACE",
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
                !unpeeked.contains("BODY[")
                    && !upper.contains("RFC822 ")
                    && !upper.contains("RFC822)")
                    && !upper.contains("RFC822.TEXT")
                    && !upper.contains("RFC822.HEADER"),
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
    let flags = [
        "",
        "\\Seen",
        "\\Seen \\Answered $Label1",
        "\\Flagged Work",
        "\\Draft",
        "\\Deleted \\Seen",
    ];
    let mut inbox = Vec::new();
    for i in 0..40 {
        let body = format!("Body {i}\r\n{}", "line of text\r\n".repeat(i * 7));
        inbox.push((
            flags[i % flags.len()],
            dates[i % dates.len()],
            message(&format!("m{i}"), &format!("Message {i}"), &body),
        ));
    }
    // A genuine duplicate: the same message twice.
    inbox.push(("", dates[0], message("dup", "Twice", "same")));
    inbox.push(("\\Seen", dates[0], message("dup", "Twice", "same")));
    load(&src, "INBOX", &inbox)?;
    load(
        &src,
        "Sent",
        &[("\\Seen", dates[1], message("s1", "Sent one", "hello"))],
    )?;
    let deep = mutf7::encode("Projekte.Übersicht");
    load(
        &src,
        &deep,
        &[("$Label2", dates[2], message("p1", "Überschrift ✓", "Grüße"))],
    )?;
    let cjk = mutf7::encode("日本語");
    load(
        &src,
        &cjk,
        &[("", dates[0], message("j1", "日本語の件名", "本文"))],
    )?;
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
    let sent = dst_folders
        .iter()
        .find(|(n, _)| n == "Sent")
        .expect("Sent on the destination");
    assert!(sent.1.contains("\\Sent"), "{sent:?}");
    // Subscriptions are carried over (the source's INBOX is not subscribed, nor its copy).
    let subscribed: BTreeSet<&str> = dst_folders
        .iter()
        .filter(|(_, a)| a.contains("\\Subscribed"))
        .map(|(n, _)| n.as_str())
        .collect();
    let projekte = mutf7::encode("Projekte/Übersicht");
    assert_eq!(
        subscribed,
        BTreeSet::from(["Sent", projekte.as_str(), cjk.as_str()])
    );

    // The source is untouched: same flags (\Seen included), and only reading commands.
    assert_eq!(store_flags(&src)?, before);
    let sent_to_source = recorder.sent();
    assert!(sent_to_source.contains("BODY.PEEK[]"));
    assert_read_only(&sent_to_source);
    Ok(())
}

/// A fresh Courier-style destination (every folder under `INBOX.`) holds only INBOX, so its
/// LIST gives no hint where folders go: the prefix comes from NAMESPACE.
#[test]
fn a_fresh_destination_gets_folders_under_its_namespace_prefix() -> Result<()> {
    let src = dovecot("ns-src").start()?;
    let dst = dovecot("ns-dst")
        .namespace_prefix("INBOX.")
        .separator('.')
        .start()?;
    let before: Vec<String> = folders(&dst)?.into_iter().map(|(n, _)| n).collect();
    assert_eq!(before, ["INBOX"], "the destination starts empty");
    for f in ["Sent", "Projekte", "Projekte.2024", "Пример"] {
        src.create_mailbox(USER, f)?;
    }
    let date = "01-Feb-2022 10:00:00 +0100";
    for (i, f) in ["INBOX", "Sent", "Projekte.2024", "Пример"]
        .iter()
        .enumerate()
    {
        load(
            &src,
            &mutf7::encode(f),
            &[("\\Seen", date, message(&format!("ns{i}"), f, "text"))],
        )?;
    }

    let dir = tempfile::tempdir()?;
    let text = manifest("ns", src.imap_port(), dst.imap_port(), "");
    std::fs::write(dir.path().join("m.yaml"), text)?;
    let out = mailshift(dir.path(), &["sync", "-f", "m.yaml", "-o", "json"]);
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    let names: Vec<String> = folders(&dst)?.into_iter().map(|(n, _)| n).collect();
    let mut expected: Vec<String> = [
        "INBOX",
        "INBOX.Sent",
        "INBOX.Projekte",
        "INBOX.Projekte.2024",
        "INBOX.Пример",
    ]
    .iter()
    .map(|s| mutf7::encode(s))
    .collect();
    expected.sort();
    assert_eq!(names, expected);
    for (s, d) in [
        ("INBOX", "INBOX"),
        ("Sent", "INBOX.Sent"),
        ("Projekte.2024", "INBOX.Projekte.2024"),
        ("Пример", "INBOX.Пример"),
    ] {
        let a = messages(&src, &mutf7::encode(s))?;
        assert_eq!(a.len(), 1);
        assert_eq!(a, messages(&dst, &mutf7::encode(d))?, "{s} → {d}");
    }
    let out = mailshift(dir.path(), &["verify", "-f", "m.yaml"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    Ok(())
}

/// Runs `imap` commands on a server as the test user (for changes the tests make).
fn on(d: &Dovecot, commands: &[&str]) -> Result<()> {
    let mut imap = imap(d)?;
    for c in commands {
        imap.command(c)?;
    }
    imap.logout();
    Ok(())
}

#[test]
fn resyncs_incrementally_and_idempotently() -> Result<()> {
    let src = dovecot("resync-src").start()?;
    let dst = dovecot("resync-dst").start()?;
    src.create_mailbox(USER, "Archive")?;
    let batch = |from: usize, to: usize| -> Vec<(&'static str, &'static str, Vec<u8>)> {
        (from..to)
            .map(|i| {
                (
                    "",
                    "01-Feb-2022 10:00:00 +0100",
                    message(&format!("r{i}"), &format!("Resync {i}"), "text"),
                )
            })
            .collect()
    };
    load(&src, "INBOX", &batch(0, 20))?;
    load(&src, "Archive", &batch(100, 110))?;
    let state = tempfile::tempdir()?;
    let rt = runtime();
    let run = || -> Result<(mailshift::imap::report::MailboxReport, String)> {
        let recorder = Recorder::default();
        let engine = engine(
            src.imap_port(),
            dst.imap_port(),
            None,
            Arc::new(StateDir::at(state.path())),
            &recorder,
        );
        let report = rt.block_on(engine.sync_mailbox(&account()));
        assert_read_only(&recorder.sent());
        Ok((report, recorder.sent()))
    };
    let same = |f: &str| -> Result<()> {
        assert_eq!(messages(&src, f)?, messages(&dst, f)?, "{f}");
        Ok(())
    };
    let copied = |r: &mailshift::imap::report::MailboxReport| {
        r.folders.iter().map(|f| f.copied).sum::<u64>()
    };

    let (first, _) = run()?;
    assert!(first.is_perfect(), "{first:#?}");
    assert_eq!(copied(&first), 30);

    // Unchanged: nothing copied, and the source sees one STATUS per folder and no FETCH.
    let (again, sent) = run()?;
    assert!(again.is_perfect(), "{again:#?}");
    assert_eq!(copied(&again), 0);
    let verbs: Vec<String> = commands(&sent).into_iter().map(|(v, _)| v).collect();
    assert_eq!(
        verbs.iter().filter(|v| *v == "STATUS").count(),
        2,
        "{verbs:?}"
    );
    assert!(
        !verbs.iter().any(|v| v == "UID FETCH" || v == "EXAMINE"),
        "{verbs:?}"
    );
    assert!(
        again
            .folders
            .iter()
            .all(|f| f.pass.as_deref() == Some("no change")),
        "{again:#?}"
    );

    // New messages and flag changes on the source reach the copy.
    load(&src, "INBOX", &batch(20, 25))?;
    on(
        &src,
        &[
            "SELECT INBOX",
            "STORE 1:3 +FLAGS (\\Seen $Important)",
            "SELECT Archive",
            "STORE 2 +FLAGS (\\Flagged)",
        ],
    )?;
    let (third, _) = run()?;
    assert!(third.is_perfect(), "{third:#?}");
    assert_eq!(copied(&third), 5);
    let pass = |r: &mailshift::imap::report::MailboxReport, f: &str| {
        r.folders
            .iter()
            .find(|x| x.source == f)
            .and_then(|x| x.pass.clone())
            .unwrap_or_default()
    };
    // Only the new messages and the changed flags were looked at (CONDSTORE).
    assert!(
        pass(&third, "INBOX")
            .starts_with("incremental, new from UID 21, flags changed since MODSEQ"),
        "{third:#?}"
    );
    assert!(
        pass(&third, "Archive").starts_with("incremental, flags changed since MODSEQ"),
        "{third:#?}"
    );
    same("INBOX")?;
    same("Archive")?;
    // The destination's counts and sizes are what it holds: the first pass's copies, above
    // the UIDNEXT it saw before copying, are not counted a second time.
    let sizes_match = |r: &mailshift::imap::report::MailboxReport| {
        for f in &r.folders {
            assert_eq!(
                (f.destination_messages, f.destination_bytes),
                (f.source_messages, f.source_bytes),
                "{} in {r:#?}",
                f.source
            );
        }
    };
    sizes_match(&third);

    // A flag removed on the source is removed from the copy; a flag the destination's user
    // set meanwhile stays (three-way merge).
    on(&src, &["SELECT INBOX", "STORE 1 -FLAGS (\\Seen)"])?;
    on(&dst, &["SELECT INBOX", "STORE 10 +FLAGS (\\Answered)"])?;
    let (fourth, _) = run()?;
    assert!(fourth.is_perfect(), "{fourth:#?}");
    assert_eq!(copied(&fourth), 0);
    sizes_match(&fourth);
    assert!(
        pass(&fourth, "INBOX").starts_with("incremental"),
        "{fourth:#?}"
    );
    let s = messages(&src, "INBOX")?;
    let d = messages(&dst, "INBOX")?;
    let unseen = |m: &[Msg]| m.iter().filter(|m| !m.flags.contains("\\Seen")).count();
    assert_eq!(unseen(&s), unseen(&d));
    assert_eq!(
        d.iter().filter(|m| m.flags.contains("\\Answered")).count(),
        1
    );

    // The source folder recreated (new UIDVALIDITY, same messages): a full comparison,
    // nothing copied twice.
    src.doveadm(&["mailbox", "delete", "-u", USER, "Archive"])?;
    src.create_mailbox(USER, "Archive")?;
    load(&src, "Archive", &batch(100, 110))?;
    let (fifth, _) = run()?;
    assert!(fifth.is_perfect(), "{fifth:#?}");
    assert_eq!(copied(&fifth), 0);
    let archive = fifth
        .folders
        .iter()
        .find(|f| f.source == "Archive")
        .unwrap();
    assert!(
        archive
            .pass
            .as_deref()
            .unwrap_or("")
            .contains("UIDVALIDITY"),
        "{archive:#?}"
    );
    assert_eq!(messages(&dst, "Archive")?.len(), 10);
    Ok(())
}

#[test]
fn localized_courier_style_sources_merge_into_english_default_folders() -> Result<()> {
    const BOB: &str = "bob@example.com";
    let src = Dovecot::builder()
        .name("l10n-src")
        .user(USER, PASSWORD)
        .user(BOB, PASSWORD)
        .special_use(false)
        .namespace_prefix("INBOX.")
        .start()?;
    let dst = Dovecot::builder()
        .name("l10n-dst")
        .user(USER, PASSWORD)
        .user(BOB, PASSWORD)
        .separator('/')
        .create_special_folders(true)
        .start()?;
    let vi = [
        "INBOX.Hộp thư đến",
        "INBOX.Thư đã gửi",
        "INBOX.Sent",
        "INBOX.Thư nháp",
        "INBOX.Dự án",
        "INBOX.Dự án.2024",
    ];
    for f in vi {
        src.create_mailbox(USER, f)?;
    }
    let de = [
        "INBOX.Gesendete Elemente",
        "INBOX.Entwürfe",
        "INBOX.Gelöschte Elemente",
        "INBOX.Projekte",
    ];
    for f in de {
        src.create_mailbox(BOB, f)?;
    }
    let date = "15-Jun-2021 12:00:00 +0700";
    let m = |id: &str| ("\\Seen", date, message(id, id, "nội dung"));
    load(&src, "INBOX", &[m("in1"), m("in2")])?;
    load(&src, &mutf7::encode("INBOX.Hộp thư đến"), &[m("in3")])?;
    // The same message in both Sent folders: copied once.
    load(
        &src,
        &mutf7::encode("INBOX.Thư đã gửi"),
        &[m("sent1"), m("shared")],
    )?;
    load(&src, "INBOX.Sent", &[m("sent2"), m("shared")])?;
    load(&src, &mutf7::encode("INBOX.Thư nháp"), &[m("draft1")])?;
    load(&src, &mutf7::encode("INBOX.Dự án"), &[m("proj1")])?;
    load(&src, &mutf7::encode("INBOX.Dự án.2024"), &[m("proj2")])?;
    let mut bob = Imap::login(src.imap_port(), BOB, PASSWORD)?;
    for (i, f) in de.iter().enumerate() {
        let msg = message(&format!("bob{i}"), "Grüße", "Text");
        bob.append_many(&mutf7::encode(f), &[("", date, &msg)])?;
    }
    bob.logout();

    let dir = tempfile::tempdir()?;
    let mut text = manifest("l10n", src.imap_port(), dst.imap_port(), "");
    text.push_str(&format!(
        "    - address: {BOB}\n      sourcePassword: {{ value: {PASSWORD} }}\n      destinationPassword: {{ value: {PASSWORD} }}\n  sync: {{ concurrency: 2 }}\n"
    ));
    // Two mailboxes at once, but one connection at a time to the source: they take turns.
    let text = text.replace(
        &format!("port: {}, tls: none }}", src.imap_port()),
        &format!("port: {}, tls: none, maxConnections: 1 }}", src.imap_port()),
    );
    assert!(text.contains("maxConnections: 1"));
    std::fs::write(dir.path().join("m.yaml"), text)?;
    let out = mailshift(dir.path(), &["sync", "-f", "m.yaml", "-o", "json"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_str(&stdout)?;
    assert_eq!(report["perfect"], true);
    assert_eq!(report["totals"]["messagesTransferred"], 13);

    // One Sent, one Drafts: the localized defaults went into the destination's own.
    let names: Vec<String> = folders(&dst)?.into_iter().map(|(n, _)| n).collect();
    let expected: Vec<String> = [
        "Archive",
        "Drafts",
        "INBOX",
        "Junk",
        "Sent",
        "Trash",
        "Dự án",
        "Dự án/2024",
    ]
    .iter()
    .map(|s| mutf7::encode(s))
    .collect();
    let mut expected_sorted = expected.clone();
    expected_sorted.sort();
    assert_eq!(names, expected_sorted, "{names:?}");
    let subjects = |folder: &str| -> Result<BTreeSet<String>> {
        Ok(messages(&dst, folder)?.iter().map(Msg::subject).collect())
    };
    assert_eq!(
        subjects("INBOX")?,
        BTreeSet::from(["in1".into(), "in2".into(), "in3".into()])
    );
    assert_eq!(
        messages(&dst, "Sent")?.len(),
        3,
        "sent1, sent2 and shared once"
    );
    assert_eq!(subjects("Drafts")?, BTreeSet::from(["draft1".into()]));
    assert_eq!(
        subjects(&mutf7::encode("Dự án/2024"))?,
        BTreeSet::from(["proj2".into()])
    );
    let bob_folders: Vec<String> = {
        let mut imap = Imap::login(dst.imap_port(), BOB, PASSWORD)?;
        let l = imap.command("LIST \"\" \"*\"")?;
        imap.logout();
        l.into_iter().map(|r| r.text).collect()
    };
    assert!(
        bob_folders.iter().any(|l| l.ends_with("\"/\" Projekte")),
        "{bob_folders:?}"
    );
    assert!(
        !bob_folders.iter().any(|l| l.contains("Gesendete")),
        "{bob_folders:?}"
    );

    // verify agrees: merged folders are not reported as surplus or missing.
    let out = mailshift(dir.path(), &["verify", "-f", "m.yaml"]);
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// Messages real mailboxes hold that a careless copier mangles or chokes on.
fn awkward_messages() -> Vec<(&'static str, &'static str, Vec<u8>)> {
    let date = "03-Apr-2018 09:30:00 +0200";
    vec![
        // No Message-ID at all.
        ("\\Seen", date, b"From: a@example.org\r\nSubject: no id\r\nDate: Tue, 3 Apr 2018 09:30:00 +0200\r\n\r\nwithout id\r\n".to_vec()),
        // Two different messages sharing a Message-ID.
        ("", date, message("shared-id", "first of two", "one")),
        ("", date, message("shared-id", "second of two", "two")),
        // Raw UTF-8 (8-bit) in headers.
        ("", date, "From: Jürgen Müller <j@example.de>\r\nSubject: Grüße ✓ 日本語\r\nMessage-ID: <8bit@test>\r\n\r\nKörper\r\n".as_bytes().to_vec()),
        // Bare LF line ends.
        ("\\Flagged", date, b"From: lf@example.org\nSubject: bare LF\nMessage-ID: <lf@test>\n\nline one\nline two\n".to_vec()),
        // An empty body, and a message that is only a header.
        ("", date, b"From: e@example.org\r\nSubject: empty body\r\nMessage-ID: <empty@test>\r\n\r\n".to_vec()),
        ("", date, b"From: h@example.org\r\nSubject: header only\r\n".to_vec()),
    ]
}

#[test]
fn awkward_messages_are_copied_and_an_oversized_one_is_reported_and_tried_again() -> Result<()> {
    let src = dovecot("bad-src").start()?;
    let dst = dovecot("bad-dst").max_message_size(6000).start()?;
    let mut msgs = awkward_messages();
    let big = message("big", "too big", &"x".repeat(10_000));
    msgs.push(("", "05-May-2019 05:05:05 +0000", big));
    load(&src, "INBOX", &msgs)?;

    let dir = tempfile::tempdir()?;
    std::fs::write(
        dir.path().join("m.yaml"),
        manifest("bad", src.imap_port(), dst.imap_port(), ""),
    )?;
    let out = mailshift(dir.path(), &["sync", "-f", "m.yaml", "-o", "json"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_str(&stdout)?;
    assert_eq!(report["perfect"], false);
    assert_eq!(report["totals"]["messagesTransferred"], 7);
    assert_eq!(report["totals"]["refused"], 1);
    let folder = &report["mailboxes"][0]["folders"][0];
    assert_eq!(folder["source"], "INBOX");
    let refused = &folder["refused"][0];
    assert_eq!(refused["messageId"], "big@test");
    assert!(refused["size"].as_u64().unwrap() > 10_000);
    // The date as an instant (the server may show it in another time zone).
    let when = chrono::DateTime::parse_from_rfc3339(refused["date"].as_str().unwrap())?;
    assert_eq!(
        when,
        chrono::DateTime::parse_from_rfc3339("2019-05-05T05:05:05Z")?
    );
    assert!(
        refused["reason"].as_str().unwrap().contains("APPENDLIMIT"),
        "{refused}"
    );
    // Everything else is an exact copy.
    let mut expected = messages(&src, "INBOX")?;
    expected.retain(|m| m.body.len() < 10_000);
    assert_eq!(messages(&dst, "INBOX")?, expected);

    // Again: the refused message is tried again (its cause may be gone; here it is not),
    // and still reported (exit status 1); the text report names folder, message, date,
    // size and reason.
    let out = mailshift(dir.path(), &["sync", "-f", "m.yaml"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("NOT PERFECT: 1 refused"), "{text}");
    assert!(
        text.contains("INBOX → INBOX") && text.contains("messages refused before are tried again"),
        "{text}"
    );
    let line = text
        .lines()
        .find(|l| l.contains("refused  <big@test>"))
        .expect("refused line");
    assert!(
        line.contains("  2019-05-0") && line.contains("10.2 kB") && line.contains("APPENDLIMIT"),
        "{line}"
    );
    assert!(text.contains("transferred 0 messages"), "{text}");

    // verify: equal except the refused message.
    let out = mailshift(dir.path(), &["verify", "-f", "m.yaml", "-o", "json"]);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(v["totals"]["missing"], 0);
    assert_eq!(v["totals"]["refused"], 1);
    Ok(())
}

/// Dovecot's capabilities without LITERAL+, UIDPLUS, LIST-EXTENDED and CREATE-SPECIAL-USE
/// (and without APPENDLIMIT: an oversized message is refused by a NO).
const PLAIN_CAPABILITIES: &str = "imap_capability = IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE SORT THREAD=REFERENCES MULTIAPPEND UNSELECT CHILDREN NAMESPACE CONDSTORE QRESYNC ESEARCH SEARCHRES WITHIN CONTEXT=SEARCH BINARY MOVE SPECIAL-USE";

/// Dovecot's capabilities without CONDSTORE (and QRESYNC).
const PLAIN_SOURCE: &str =
    "imap_capability = IMAP4rev1 SASL-IR LITERAL+ ID ENABLE IDLE UIDPLUS LIST-EXTENDED SPECIAL-USE";

#[test]
fn servers_without_literal_plus_or_uidplus_get_exact_copies_too() -> Result<()> {
    // A source without CONDSTORE: flag changes are found by fetching every message's flags.
    let src = dovecot("plain-src").extra_config(PLAIN_SOURCE).start()?;
    let dst = dovecot("plain-dst")
        .max_message_size(6000)
        .extra_config(PLAIN_CAPABILITIES)
        .start()?;
    let mut probe = imap(&dst)?;
    let caps = probe.command("CAPABILITY")?.remove(0).text;
    probe.logout();
    for missing in [
        "LITERAL+",
        "UIDPLUS",
        "LIST-EXTENDED",
        "CREATE-SPECIAL-USE",
        "APPENDLIMIT",
    ] {
        assert!(!caps.contains(missing), "{missing} in {caps}");
    }
    src.create_mailbox(USER, "Sent")?;
    let mut msgs = awkward_messages();
    msgs.push((
        "",
        "05-May-2019 05:05:05 +0000",
        message("big", "too big", &"x".repeat(10_000)),
    ));
    load(&src, "INBOX", &msgs)?;
    load(&src, "Sent", &[("\\Seen", "", message("s", "sent", "x"))])?;
    let state = tempfile::tempdir()?;
    let rt = runtime();
    let run = || {
        let engine = engine(
            src.imap_port(),
            dst.imap_port(),
            None,
            Arc::new(StateDir::at(state.path())),
            &Recorder::default(),
        );
        rt.block_on(engine.sync_mailbox(&account()))
    };
    let copied = |r: &mailshift::imap::report::MailboxReport| {
        r.folders.iter().map(|f| f.copied).sum::<u64>()
    };
    let first = run();
    assert_eq!(copied(&first), 8, "{first:#?}");
    let refused: Vec<_> = first
        .folders
        .iter()
        .flat_map(|f| f.refused.clone())
        .collect();
    assert_eq!(refused.len(), 1, "{first:#?}");
    assert!(refused[0].reason.contains("LIMIT"), "{refused:?}");
    let mut expected = messages(&src, "INBOX")?;
    expected.retain(|m| m.body.len() < 10_000);
    assert_eq!(messages(&dst, "INBOX")?, expected);
    assert_eq!(messages(&dst, "Sent")?, messages(&src, "Sent")?);

    // The destination was listed again to learn the copies' UIDs: the cache holds (without
    // CONDSTORE on the source, a pass still fetches every message's flags).
    // The folder with a refusal is compared in full, to try the refused message again.
    let second = run();
    assert_eq!(copied(&second), 0);
    assert!(
        second.folders.iter().all(|f| f.pass.as_deref()
            == Some(if f.refused.is_empty() {
                "incremental, all flags (no CONDSTORE)"
            } else {
                "full: messages refused before are tried again"
            })
            && f.flags_updated == 0),
        "{second:#?}"
    );
    assert_eq!(
        second
            .folders
            .iter()
            .map(|f| f.refused.len())
            .sum::<usize>(),
        1
    );

    // New messages: copied once, even though no UID came back and no cache was written.
    load(
        &src,
        "INBOX",
        &[
            ("", "", message("new1", "new", "x")),
            ("", "", message("new2", "new", "y")),
        ],
    )?;
    let mut imap = imap(&src)?;
    imap.command("SELECT INBOX")?;
    imap.command("STORE 1:2 +FLAGS (\\Answered)")?;
    imap.command("STORE 1 -FLAGS (\\Seen)")?;
    imap.logout();
    let third = run();
    assert_eq!(copied(&third), 2, "{third:#?}");
    let inbox = third.folders.iter().find(|f| f.source == "INBOX").unwrap();
    // INBOX holds the refused message: compared in full each run, which copies the new
    // messages once all the same.
    assert_eq!(
        inbox.pass.as_deref(),
        Some("full: messages refused before are tried again")
    );
    assert_eq!(inbox.flags_updated, 2, "{third:#?}");
    let fourth = run();
    assert_eq!(copied(&fourth), 0, "{fourth:#?}");
    let mut expected = messages(&src, "INBOX")?;
    expected.retain(|m| m.body.len() < 10_000);
    assert_eq!(messages(&dst, "INBOX")?, expected);
    Ok(())
}

/// LITERAL+, MULTIAPPEND and UIDPLUS, but no APPENDLIMIT: an oversized message makes the
/// batch's MULTIAPPEND fail as a whole.
const NO_APPENDLIMIT: &str = "imap_capability = IMAP4rev1 SASL-IR LITERAL+ ID ENABLE IDLE MULTIAPPEND UNSELECT CHILDREN UIDPLUS CONDSTORE QRESYNC LIST-EXTENDED SPECIAL-USE CREATE-SPECIAL-USE";

#[test]
fn a_refused_multiappend_is_retried_message_by_message() -> Result<()> {
    let src = dovecot("multi-src").start()?;
    let dst = dovecot("multi-dst")
        .max_message_size(6000)
        .extra_config(NO_APPENDLIMIT)
        .start()?;
    let mut msgs: Vec<_> = (0..10)
        .map(|i| {
            (
                "\\Seen",
                "09-Sep-2019 09:09:09 +0900",
                message(&format!("ma{i}"), "batch", "small"),
            )
        })
        .collect();
    msgs.insert(
        4,
        (
            "",
            "09-Sep-2019 09:09:09 +0900",
            message("ma-big", "big", &"y".repeat(9000)),
        ),
    );
    load(&src, "INBOX", &msgs)?;
    let state = tempfile::tempdir()?;
    let rt = runtime();
    let run = || {
        let engine = engine(
            src.imap_port(),
            dst.imap_port(),
            None,
            Arc::new(StateDir::at(state.path())),
            &Recorder::default(),
        );
        rt.block_on(engine.sync_mailbox(&account()))
    };
    let first = run();
    let inbox = &first.folders[0];
    assert_eq!(inbox.copied, 10, "{first:#?}");
    assert_eq!(inbox.refused.len(), 1, "{first:#?}");
    assert!(inbox.refused[0].reason.contains("LIMIT"), "{first:#?}");
    let mut expected = messages(&src, "INBOX")?;
    expected.retain(|m| m.body.len() < 9000);
    assert_eq!(messages(&dst, "INBOX")?, expected);
    // Every copy's UID was learnt from APPENDUID; the next run compares the folder again
    // only to try the refused message once more, and copies nothing twice.
    let second = run();
    assert_eq!(
        second.folders[0].pass.as_deref(),
        Some("full: messages refused before are tried again"),
        "{second:#?}"
    );
    assert_eq!(second.folders[0].copied, 0, "{second:#?}");
    assert_eq!(second.folders[0].refused.len(), 1);
    Ok(())
}

#[test]
fn cli_refuses_bad_input_and_never_prints_passwords() -> Result<()> {
    let src = dovecot("cli-src").start()?;
    let dst = dovecot("cli-dst").start()?;
    load(&src, "INBOX", &[("", "", message("cli1", "cli", "x"))])?;
    let dir = tempfile::tempdir()?;
    let good = manifest("cli", src.imap_port(), dst.imap_port(), "");
    std::fs::write(dir.path().join("m.yaml"), &good)?;

    // Nothing to run: exit status 2.
    let out = mailshift(dir.path(), &["sync", "-f", "missing.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    let out = mailshift(
        dir.path(),
        &["sync", "-f", "m.yaml", "--mailbox", "nobody@example.com"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nobody@example.com"));
    // One prefix for every command's error, whatever its exit status.
    for (args, status) in [
        (
            &["sync", "-f", "m.yaml", "--mailbox", "nobody@example.com"][..],
            2,
        ),
        (&["status", "-f", "missing.yaml"][..], 1),
        (&["folders", "-f", "missing.yaml"][..], 2),
    ] {
        let out = mailshift(dir.path(), args);
        assert_eq!(out.status.code(), Some(status), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let last = stderr.lines().last().unwrap_or_default();
        assert!(last.starts_with("mailshift: error: "), "{args:?}: {stderr}");
    }
    let out = mailshift(dir.path(), &["sync", "-f", "m.yaml", "--name", "other"]);
    assert_eq!(out.status.code(), Some(2));
    let observe = good.replace("spec:\n", "spec:\n  policy: observe\n");
    std::fs::write(dir.path().join("observe.yaml"), observe)?;
    let out = mailshift(dir.path(), &["sync", "-f", "observe.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("observe"));

    // A refused login is reported at once, not retried; no password anywhere, even with
    // every log event on.
    let secret = "s3cr3t-Wrong-pw";
    let bad = good.replacen(
        &format!("destinationPassword: {{ value: {PASSWORD} }}"),
        &format!("destinationPassword: {{ value: {secret} }}"),
        1,
    );
    std::fs::write(dir.path().join("bad.yaml"), bad)?;
    let started = std::time::Instant::now();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mailshift"))
        .args([
            "sync",
            "-f",
            "bad.yaml",
            "-o",
            "json",
            "--log-format",
            "json",
        ])
        .current_dir(dir.path())
        .env("RUST_LOG", "trace")
        .output()?;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "a refused login was retried"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stdout.contains(secret) && !stderr.contains(secret),
        "password leaked"
    );
    assert!(
        !stdout.contains(PASSWORD) && !stderr.contains(PASSWORD),
        "password leaked"
    );
    let report: serde_json::Value = serde_json::from_str(&stdout)?;
    let error = report["mailboxes"][0]["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("login") && error.contains("refused"),
        "{error}"
    );
    assert_eq!(report["totals"]["errors"], 1);
    // Log lines are JSON objects.
    for line in stderr.lines() {
        let v: serde_json::Value = serde_json::from_str(line)?;
        assert!(v.get("level").is_some(), "{line}");
    }

    // The good manifest: perfect, exit 0; the text summary has the throughput figures.
    let out = mailshift(dir.path(), &["sync", "-f", "m.yaml"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.starts_with("sync: perfect: 1 mailboxes"), "{text}");
    assert!(
        text.contains("transferred 1 messages")
            && text.contains("messages/s")
            && text.contains("MB/s"),
        "{text}"
    );
    let out = mailshift(dir.path(), &["verify", "-f", "m.yaml", "-o", "yaml"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("kind: verify"));

    // Implicit TLS to the source, STARTTLS to the destination, both verified against the
    // harness CA named in the manifest (a file next to it).
    std::fs::copy(src.ca_path(), dir.path().join("src-ca.pem"))?;
    std::fs::copy(dst.ca_path(), dir.path().join("dst-ca.pem"))?;
    let tls = good
        .replace(
            &format!("{{ host: 127.0.0.1, port: {}, tls: none }}", src.imap_port()),
            &format!("{{ host: 127.0.0.1, port: {}, tls: tls, caCertificate: {{ file: src-ca.pem }} }}", src.imaps_port()),
        )
        .replace(
            &format!("{{ host: 127.0.0.1, port: {}, tls: none }}", dst.imap_port()),
            &format!("{{ host: 127.0.0.1, port: {}, tls: starttls, caCertificate: {{ file: dst-ca.pem }} }}", dst.imap_port()),
        );
    assert!(
        tls.contains("tls: tls") && tls.contains("tls: starttls"),
        "{tls}"
    );
    std::fs::write(dir.path().join("tls.yaml"), &tls)?;
    let out = mailshift(dir.path(), &["verify", "-f", "tls.yaml"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Without the CA the certificate is not trusted, and that is not retried.
    std::fs::write(dir.path().join("src-ca.pem"), std::fs::read(dst.ca_path())?)?;
    let out = mailshift(dir.path(), &["verify", "-f", "tls.yaml", "-o", "json"]);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let error = v["mailboxes"][0]["error"].as_str().unwrap_or_default();
    assert!(error.contains("TLS"), "{error}");

    // Two MailMigrations in one file: both run (the second finds nothing to copy), or only
    // the one named.
    load(&src, "INBOX", &[("", "", message("cli2", "cli", "y"))])?;
    let two = format!(
        "{good}---\n{}",
        manifest("cli-second", src.imap_port(), dst.imap_port(), "")
    );
    std::fs::write(dir.path().join("two.yaml"), two)?;
    let out = mailshift(
        dir.path(),
        &[
            "sync",
            "-f",
            "two.yaml",
            "--name",
            "cli-second",
            "-o",
            "json",
        ],
    );
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(v["totals"]["mailboxes"], 1);
    assert_eq!(v["totals"]["messagesTransferred"], 1);
    let out = mailshift(dir.path(), &["sync", "-f", "two.yaml", "-o", "json"]);
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(v["totals"]["mailboxes"], 2);
    assert_eq!(v["totals"]["messagesTransferred"], 0);
    Ok(())
}

#[test]
fn verify_lists_every_difference() -> Result<()> {
    let src = dovecot("verify-src").start()?;
    let dst = dovecot("verify-dst").start()?;
    src.create_mailbox(USER, "Work")?;
    let date = "11-Nov-2011 11:11:11 +0100";
    load(
        &src,
        "INBOX",
        &[
            ("", date, message("v1", "one", "1")),
            ("", date, message("v2", "two", "2")),
        ],
    )?;
    load(&src, "Work", &[("", date, message("w1", "work", "w"))])?;
    let dir = tempfile::tempdir()?;
    std::fs::write(
        dir.path().join("m.yaml"),
        manifest("verify", src.imap_port(), dst.imap_port(), ""),
    )?;
    let out = mailshift(dir.path(), &["sync", "-f", "m.yaml"]);
    assert_eq!(out.status.code(), Some(0));
    let out = mailshift(dir.path(), &["verify", "-f", "m.yaml"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // On the destination: one message gone, one twice, one of its own.
    let mut d = imap(&dst)?;
    d.command("SELECT INBOX")?;
    d.command("UID STORE 1 +FLAGS.SILENT (\\Deleted)")?;
    d.command("EXPUNGE")?;
    d.logout();
    load(
        &dst,
        "INBOX",
        &[
            ("", date, message("v2", "two", "2")),
            ("", date, message("own", "own mail", "o")),
        ],
    )?;
    let out = mailshift(dir.path(), &["verify", "-f", "m.yaml", "-o", "json"]);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(v["kind"], "verify");
    assert_eq!(v["perfect"], false);
    let inbox = &v["mailboxes"][0]["folders"][0];
    assert_eq!(inbox["source"], "INBOX");
    assert_eq!(inbox["sourceMessages"], 2);
    assert_eq!(inbox["destinationMessages"], 3);
    assert_eq!(inbox["missing"][0]["messageId"], "v1@test");
    // The date as an instant (the server may show it in another time zone).
    let when = chrono::DateTime::parse_from_rfc3339(inbox["missing"][0]["date"].as_str().unwrap())?;
    assert_eq!(
        when,
        chrono::DateTime::parse_from_rfc3339("2011-11-11T11:11:11+01:00")?
    );
    assert!(inbox["missing"][0]["size"].as_u64().unwrap() > 100);
    assert_eq!(inbox["surplus"][0]["messageId"], "v2@test");
    assert_eq!(inbox["extra"][0]["messageId"], "own@test");
    let work = &v["mailboxes"][0]["folders"][1];
    assert_eq!(
        (
            work["source"].as_str(),
            work["missing"].as_array().map(Vec::len)
        ),
        (Some("Work"), Some(0))
    );
    let out = mailshift(dir.path(), &["verify", "-f", "m.yaml"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("NOT PERFECT: 1 missing, 1 on the destination twice"),
        "{text}"
    );
    assert!(text.contains("missing  <v1@test>  2011-11-11 "), "{text}");
    assert!(text.contains("extra    <own@test>"), "{text}");

    // sync copies the missing one back (and deletes nothing).
    let out = mailshift(dir.path(), &["sync", "-f", "m.yaml", "-o", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(v["totals"]["messagesTransferred"], 1);
    assert_eq!(messages(&dst, "INBOX")?.len(), 4);
    Ok(())
}

/// Several folders of one mailbox are copied at once over extra connection pairs; the
/// copy is as exact as one folder at a time, folders merged into one destination folder
/// (`Gesendete Elemente` and `Sent`, sharing a message) still get each message once, the
/// source sees only reading commands on every connection, and with `maxConnections: 1`
/// on a server the engine stays on one connection per server and gives the same copy.
#[test]
fn folders_copied_at_once_are_exact_and_respect_max_connections() -> Result<()> {
    let src = dovecot("conc-src").start()?;
    let folders_src = ["Sent", "Gesendete Elemente", "Drafts", "A", "B", "C"];
    for f in folders_src {
        src.create_mailbox(USER, f)?;
    }
    let date = "02-Feb-2022 10:00:00 +0100";
    type Loaded = Vec<(&'static str, &'static str, Vec<u8>)>;
    let mut by_folder: Vec<(&str, Loaded)> = Vec::new();
    for (n, f) in ["INBOX", "Drafts", "A", "B", "C"].into_iter().enumerate() {
        let msgs = (0..30 + n * 7)
            .map(|i| {
                let body = format!("{f} {i}\r\n{}", "text\r\n".repeat(i * 40));
                let flags = if i % 3 == 0 { "\\Seen $Label1" } else { "" };
                (
                    flags,
                    date,
                    message(&format!("{f}-{i}"), &format!("{f} {i}"), &body),
                )
            })
            .collect();
        by_folder.push((f, msgs));
    }
    let shared = || {
        (
            "\\Seen",
            date,
            message("shared", "shared", "in both Sent folders"),
        )
    };
    by_folder.push((
        "Sent",
        vec![("\\Seen", date, message("s1", "s1", "x")), shared()],
    ));
    by_folder.push((
        "Gesendete Elemente",
        vec![("\\Seen", date, message("g1", "g1", "y")), shared()],
    ));
    for (f, msgs) in &by_folder {
        load(&src, f, msgs)?;
    }
    let before = store_flags(&src)?;
    let sent_subjects = BTreeSet::from(["s1".to_owned(), "g1".to_owned(), "shared".to_owned()]);

    for max_connections in [None, Some(1)] {
        let name = format!("conc-dst-{}", max_connections.unwrap_or(0));
        let dst = dovecot(&name).start()?;
        let state = tempfile::tempdir()?;
        let recorder = Recorder::default();
        let limited = |port| Endpoint {
            max_connections,
            ..endpoint(port)
        };
        let source = Connector::new(Side::Source, &limited(src.imap_port()), None)?
            .with_recorder(recorder.clone());
        let dest = Connector::new(Side::Destination, &limited(dst.imap_port()), None)?;
        let options = Options {
            folder_concurrency: 3,
            ..test_options()
        };
        let engine = Arc::new(
            Engine::new(
                source,
                dest,
                // German defaults: "Gesendete Elemente" merges into Sent with "Sent".
                Some(Folders {
                    exclude: Vec::new(),
                    rename: Vec::new(),
                    source_language: "de".into(),
                    gmail_labels: Default::default(),
                }),
                Arc::new(StateDir::at(state.path())),
            )
            .with_options(options),
        );
        let rt = runtime();
        let report = rt.block_on(engine.sync_mailbox(&account()));
        assert!(report.is_perfect(), "{max_connections:?}: {report:#?}");
        // Reports stay in table order whatever finished first.
        let order: Vec<&str> = report.folders.iter().map(|f| f.source.as_str()).collect();
        assert_eq!(order.len(), folders_src.len() + 1, "{order:?}");
        let copied: u64 = report.folders.iter().map(|f| f.copied).sum();
        let total: usize = by_folder.iter().map(|(_, m)| m.len()).sum();
        assert_eq!(
            copied as usize,
            total - 1,
            "the shared Sent message once: {report:#?}"
        );
        for f in ["INBOX", "Drafts", "A", "B", "C"] {
            assert_eq!(messages(&src, f)?, messages(&dst, f)?, "{f} differs");
        }
        let sent: BTreeSet<String> = messages(&dst, "Sent")?.iter().map(Msg::subject).collect();
        assert_eq!(sent, sent_subjects);
        assert_eq!(messages(&dst, "Sent")?.len(), 3);
        assert!(
            !folders(&dst)?.iter().any(|(n, _)| n.contains("Gesendete")),
            "merged into Sent"
        );
        match max_connections {
            // One pair to list and start, up to two more as folders turn out to need work.
            None => assert!(
                (2..=3).contains(&recorder.connections()),
                "{} source connections",
                recorder.connections()
            ),
            Some(_) => assert_eq!(recorder.connections(), 1),
        }
        assert_read_only(&recorder.sent());
        assert_eq!(store_flags(&src)?, before);

        // A re-sync copies nothing, and verify finds nothing missing, surplus or extra
        // (the merged folders included).
        let again = rt.block_on(engine.sync_mailbox(&account()));
        assert!(again.is_perfect(), "{again:#?}");
        assert_eq!(again.folders.iter().map(|f| f.copied).sum::<u64>(), 0);
        let verified = rt.block_on(engine.verify_mailbox(&account()));
        assert!(verified.is_perfect(), "{verified:#?}");
        let order_again: Vec<&str> = verified.folders.iter().map(|f| f.source.as_str()).collect();
        assert_eq!(order_again, order, "deterministic report order");
        assert_read_only(&recorder.sent());
    }
    Ok(())
}

#[test]
fn shared_folders_the_user_can_see_are_never_copied_into_the_mailbox() -> Result<()> {
    // A public namespace (NAMESPACE's shared namespaces) that every user of the old server
    // sees and may write to: an announcement folder that is nobody's own mail.
    let public = tempfile::tempdir()?;
    std::process::Command::new("chown")
        .args(["-R", "dovecot:dovecot"])
        .arg(public.path())
        .status()?;
    let src = dovecot("pub-src")
        .extra_config(&format!(
            "namespace public {{\n  type = public\n  separator = .\n  prefix = Public.\n  location = maildir:{}\n  subscriptions = no\n  list = yes\n}}",
            public.path().display()
        ))
        .start()?;
    let dst = dovecot("pub-dst").start()?;
    on(&src, &["CREATE Projects", "CREATE Public.announce"])?;
    let date = "01-Feb-2022 10:00:00 +0100";
    load(
        &src,
        "INBOX",
        &[("", date, message("own1", "mine", "text"))],
    )?;
    load(
        &src,
        "Projects",
        &[("", date, message("own2", "mine", "text"))],
    )?;
    load(
        &src,
        "Public.announce",
        &[("", date, message("pub1", "for everyone", "text"))],
    )?;
    let dir = tempfile::tempdir()?;
    std::fs::write(
        dir.path().join("m.yaml"),
        manifest("pub", src.imap_port(), dst.imap_port(), ""),
    )?;

    let out = mailshift(dir.path(), &["folders", "-f", "m.yaml", "-o", "json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let listed = json.to_string();
    let announce = json[0]["folders"]
        .as_array()
        .and_then(|f| f.iter().find(|f| f["source"] == "Public.announce"))
        .unwrap_or_else(|| panic!("the shared folder is listed: {listed}"));
    assert_eq!(announce["rule"], "not-personal", "{announce}");
    assert!(announce["destination"].is_null(), "{announce}");

    let out = mailshift(dir.path(), &["sync", "-f", "m.yaml"]);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let names: Vec<String> = folders(&dst)?.into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["INBOX", "Projects"], "only the user's own folders");
    assert_eq!(messages(&dst, "Projects")?, messages(&src, "Projects")?);
    let out = mailshift(dir.path(), &["verify", "-f", "m.yaml"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    Ok(())
}

#[test]
fn a_message_refused_over_quota_is_copied_once_the_quota_is_raised() -> Result<()> {
    let limits = tempfile::tempdir()?;
    let quota = limits.path().join("quota.conf");
    let set_quota = |messages: u32| {
        std::fs::write(
            &quota,
            format!("plugin {{\n  quota_rule = *:messages={messages}\n}}\n"),
        )
    };
    set_quota(3)?;
    let src = dovecot("quota-src").start()?;
    let dst = dovecot("quota-dst")
        .extra_config(&format!(
            "mail_plugins = $mail_plugins quota\nprotocol imap {{\n  mail_plugins = $mail_plugins imap_quota\n}}\nplugin {{\n  quota = count:User quota\n  quota_vsizes = yes\n}}\n!include_try {}",
            quota.display()
        ))
        .start()?;
    let date = "01-Feb-2022 10:00:00 +0100";
    let msgs: Vec<(&str, &str, Vec<u8>)> = (0..5)
        .map(|i| ("", date, message(&format!("q{i}"), "quota", "text")))
        .collect();
    load(&src, "INBOX", &msgs)?;
    let dir = tempfile::tempdir()?;
    std::fs::write(
        dir.path().join("m.yaml"),
        manifest("quota", src.imap_port(), dst.imap_port(), ""),
    )?;
    let report = |out: &std::process::Output| -> Result<serde_json::Value> {
        Ok(serde_json::from_slice(&out.stdout)?)
    };
    let out = mailshift(dir.path(), &["sync", "-f", "m.yaml", "-o", "json"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let r = report(&out)?;
    assert_eq!(r["totals"]["refused"], 2, "{r:#}");
    assert_eq!(messages(&dst, "INBOX")?.len(), 3);

    // The admin raises the quota: the next run copies what was refused.
    set_quota(100)?;
    dst.restart()?;
    let out = mailshift(dir.path(), &["sync", "-f", "m.yaml", "-o", "json"]);
    let r = report(&out)?;
    assert_eq!(out.status.code(), Some(0), "{r:#}");
    assert_eq!(r["totals"]["refused"], 0, "{r:#}");
    assert_eq!(messages(&dst, "INBOX")?, messages(&src, "INBOX")?);
    let out = mailshift(dir.path(), &["verify", "-f", "m.yaml"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    Ok(())
}

/// The certificate most self-hosted servers have: `openssl req -x509` (CA:TRUE under
/// OpenSSL 3), given as caCertificate, is trusted as exactly that server's certificate; a
/// different self-signed certificate is still refused, with advice; and TLS spoken to a
/// plain-text port is told apart from a certificate problem.
#[test]
fn a_self_signed_certificate_given_as_ca_certificate_is_pinned() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let self_signed = |name: &str| -> Result<(std::path::PathBuf, std::path::PathBuf)> {
        let (cert, key) = (
            dir.path().join(format!("{name}.pem")),
            dir.path().join(format!("{name}.key")),
        );
        let out = std::process::Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
            ])
            .args(["-nodes", "-days", "2", "-subj", "/CN=mail.example.org"])
            // What OpenSSL 3's default configuration adds (`v3_ca`), written out so that no
            // machine's openssl.cnf changes it.
            .args(["-addext", "basicConstraints=critical,CA:TRUE"])
            .args(["-addext", "subjectKeyIdentifier=hash"])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .env("OPENSSL_CONF", "/dev/null")
            .output()?;
        anyhow::ensure!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok((cert, key))
    };
    let (cert, key) = self_signed("server")?;
    let (other, _) = self_signed("other")?;
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o644))?;
    let src = dovecot("pin-src")
        .extra_config(&format!(
            "ssl_cert = <{}\nssl_key = <{}",
            cert.display(),
            key.display()
        ))
        .start()?;
    let dst = dovecot("pin-dst").start()?;
    load(&src, "INBOX", &[("", "", message("pin", "pinned", "x"))])?;
    std::fs::copy(&cert, dir.path().join("pin.pem"))?;
    assert_eq!(other, dir.path().join("other.pem"));
    let base = manifest("pin", src.imap_port(), dst.imap_port(), "");
    let with = |port: u16, tls: &str, file: &str| {
        base.replace(
            &format!(
                "{{ host: 127.0.0.1, port: {}, tls: none }}",
                src.imap_port()
            ),
            &format!(
                "{{ host: 127.0.0.1, port: {port}, tls: {tls}, caCertificate: {{ file: {file} }} }}"
            ),
        )
    };
    for (name, text) in [
        ("pinned.yaml", with(src.imaps_port(), "tls", "pin.pem")),
        (
            "starttls.yaml",
            with(src.imap_port(), "starttls", "pin.pem"),
        ),
        ("other.yaml", with(src.imaps_port(), "tls", "other.pem")),
        ("plain-port.yaml", with(src.imap_port(), "tls", "pin.pem")),
    ] {
        std::fs::write(dir.path().join(name), text)?;
    }
    for pinned in ["pinned.yaml", "starttls.yaml"] {
        let out = mailshift(dir.path(), &["sync", "-f", pinned]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{pinned}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(messages(&dst, "INBOX")?.len(), 1);

    let error = |file: &str| -> Result<String> {
        let out = mailshift(dir.path(), &["verify", "-f", file, "-o", "json"]);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{file}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
        Ok(v["mailboxes"][0]["error"]
            .as_str()
            .unwrap_or_default()
            .to_owned())
    };
    let e = error("other.yaml")?;
    assert!(
        e.contains("CaUsedAsEndEntity") && e.contains("give exactly that certificate"),
        "{e}"
    );
    let e = error("plain-port.yaml")?;
    assert!(
        e.contains("did not answer in TLS") && e.contains("starttls"),
        "{e}"
    );

    // The other way round: plain text to the implicit-TLS port gets no greeting; that is
    // recognised and said within seconds, not retried as a stalled server for minutes.
    std::fs::write(
        dir.path().join("implicit-port.yaml"),
        base.replace(
            &format!("port: {}, tls: none", src.imap_port()),
            &format!("port: {}, tls: none", src.imaps_port()),
        ),
    )?;
    let started = std::time::Instant::now();
    let e = error("implicit-port.yaml")?;
    assert!(
        e.contains(&format!(
            "port {} expects TLS from the first byte",
            src.imaps_port()
        )) && e.contains("set `tls: tls`"),
        "{e}"
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    Ok(())
}

/// Mail that reaches the source after a sync is not a copy gone wrong: verify counts it
/// apart (and stays perfect), the next sync copies it, and a message deleted from the
/// destination by hand is still missing.
#[test]
fn verify_counts_mail_arrived_since_the_last_sync_apart() -> Result<()> {
    let src = dovecot("arrived-src").start()?;
    let dst = dovecot("arrived-dst").start()?;
    load(&src, "INBOX", &[("", "", message("a1", "before", "x"))])?;
    let dir = tempfile::tempdir()?;
    std::fs::write(
        dir.path().join("m.yaml"),
        manifest("arrived", src.imap_port(), dst.imap_port(), ""),
    )?;
    assert_eq!(
        mailshift(dir.path(), &["sync", "-f", "m.yaml"])
            .status
            .code(),
        Some(0)
    );
    load(
        &src,
        "INBOX",
        &[
            ("", "", message("a2", "after", "y")),
            ("", "", message("a3", "after", "z")),
        ],
    )?;
    let out = mailshift(dir.path(), &["verify", "-f", "m.yaml", "-o", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(out.status.code(), Some(0), "{v:#}");
    let inbox = &v["mailboxes"][0]["folders"][0];
    assert_eq!(inbox["arrived"], 2, "{inbox:#}");
    assert_eq!(
        inbox["missing"].as_array().map(Vec::len),
        Some(0),
        "{inbox:#}"
    );
    let text = String::from_utf8_lossy(&mailshift(dir.path(), &["verify", "-f", "m.yaml"]).stdout)
        .into_owned();
    assert!(
        text.contains("2 arrived since the last sync (the next sync copies them)"),
        "{text}"
    );

    // A copy lost on the destination is missing whatever arrived since.
    on(
        &dst,
        &["SELECT INBOX", "STORE 1 +FLAGS (\\Deleted)", "EXPUNGE"],
    )?;
    let out = mailshift(dir.path(), &["verify", "-f", "m.yaml", "-o", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(out.status.code(), Some(1), "{v:#}");
    assert_eq!(v["totals"]["missing"], 1, "{v:#}");

    // The next sync copies both kinds; then equal, nothing arrived.
    assert_eq!(
        mailshift(dir.path(), &["sync", "-f", "m.yaml"])
            .status
            .code(),
        Some(0)
    );
    let out = mailshift(dir.path(), &["verify", "-f", "m.yaml", "-o", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(out.status.code(), Some(0), "{v:#}");
    assert!(
        v["mailboxes"][0]["folders"][0]["arrived"].is_null(),
        "{v:#}"
    );
    assert_eq!(messages(&dst, "INBOX")?.len(), 3);
    Ok(())
}

/// The stored bytes of every message of `folder`, as BINARY (RFC 3516) gives them.
fn stored(d: &Dovecot, folder: &str) -> Result<Vec<Vec<u8>>> {
    let mut imap = imap(d)?;
    imap.command(&format!("EXAMINE {}", quote(folder)))?;
    let mut out: Vec<Vec<u8>> = imap
        .command("UID FETCH 1:* (BINARY.PEEK[])")?
        .into_iter()
        .filter_map(|r| r.literals.into_iter().next())
        .collect();
    imap.logout();
    out.sort();
    Ok(out)
}

/// A message holding NUL bytes (which `BODY[]` shows as 0x80 on Dovecot) reaches a
/// destination with BINARY byte for byte; one without BINARY gets the 0x80 form, and the
/// report says which message is not exact. UTF-8 text with 0x80 continuation bytes is
/// copied as it is either way.
#[test]
fn messages_with_nul_bytes_are_copied_exactly_where_the_destination_takes_binary() -> Result<()> {
    let src = dovecot("nul-src").start()?;
    let dst = dovecot("nul-dst").start()?;
    let plain = dovecot("nul-plain")
        .extra_config("imap_capability = IMAP4rev1 LITERAL+ UIDPLUS MULTIAPPEND NAMESPACE CONDSTORE SPECIAL-USE")
        .start()?;
    let mut nul = message("nul", "with NULs", "a\0b");
    nul.extend_from_slice(b"\0\0 end\r\n");
    let utf8 = message("utf8", "wait", "wait\u{2026} \u{c0} \u{2019}");
    src.save(USER, "INBOX", &nul)?;
    src.save(USER, "INBOX", &utf8)?;
    assert!(
        messages(&src, "INBOX")?
            .iter()
            .any(|m| m.body.contains(&0x80) && !m.body.contains(&0)),
        "the source's BODY[] shows the NULs as 0x80"
    );

    let dir = tempfile::tempdir()?;
    for (name, d) in [("binary", &dst), ("plain", &plain)] {
        std::fs::write(
            dir.path().join(format!("{name}.yaml")),
            manifest(name, src.imap_port(), d.imap_port(), ""),
        )?;
    }
    let out = mailshift(dir.path(), &["sync", "-f", "binary.yaml", "-o", "json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let inbox = &report["mailboxes"][0]["folders"][0];
    assert!(inbox.get("inexact").is_none(), "{inbox}");
    assert_eq!(stored(&dst, "INBOX")?, stored(&src, "INBOX")?);
    assert!(stored(&dst, "INBOX")?.contains(&nul));
    assert_eq!(messages(&dst, "INBOX")?, messages(&src, "INBOX")?);

    let out = mailshift(dir.path(), &["sync", "-f", "plain.yaml"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("inexact") && text.contains("<nul@test>") && !text.contains("<utf8@test>"),
        "{text}"
    );
    // What BODY[] showed of the NULs, and the rest exact.
    assert_eq!(messages(&plain, "INBOX")?, messages(&src, "INBOX")?);
    Ok(())
}

/// With JSON logs (a copy Job's), `sync` logs its progress in the event the controller
/// reads back from the Job's log: the last one says every message was copied.
#[test]
fn json_logs_carry_progress_events_the_controller_reads() -> Result<()> {
    let src = dovecot("progress-src").start()?;
    let dst = dovecot("progress-dst").start()?;
    load(
        &src,
        "INBOX",
        &[
            ("", "", message("p1", "one", "x")),
            ("", "", message("p2", "two", "y")),
        ],
    )?;
    let dir = tempfile::tempdir()?;
    std::fs::write(
        dir.path().join("m.yaml"),
        manifest("jsonlog", src.imap_port(), dst.imap_port(), ""),
    )?;
    let out = mailshift(
        dir.path(),
        &["--log-format", "json", "sync", "-f", "m.yaml"],
    );
    let log = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{log}");
    let t = mailshift::reconcile::progress::from_log(&log).expect("a progress event");
    assert_eq!(
        (t.messages, t.of_messages, t.percent),
        (2, 2, 100),
        "{t:#?}"
    );
    assert_eq!(t.mailboxes.len(), 1);
    // Text logs stay as they were: no progress events for people reading them.
    let out = mailshift(dir.path(), &["sync", "-f", "m.yaml"]);
    assert!(!String::from_utf8_lossy(&out.stderr).contains("progress"));
    Ok(())
}

/// Bodies are read ahead of the appends, several batches asked for at once on one source
/// connection (Dovecot answers such pipelined FETCHes interleaved): a folder of many batches
/// still arrives exact, every message once. The no-change re-sync that follows takes each
/// folder's STATUS once (the snapshots taken for all folders before the passes are the
/// passes' own, not taken again) and opens nothing.
#[test]
fn many_batches_read_ahead_arrive_exact_and_a_resync_only_takes_status() -> Result<()> {
    let src = dovecot("ahead-src").start()?;
    let dst = dovecot("ahead-dst").start()?;
    let folders_src = ["Archive", "Lists", "Sent"];
    for f in folders_src {
        src.create_mailbox(USER, f)?;
    }
    let date = "03-Mar-2023 12:00:00 +0000";
    // Sizes from a few hundred bytes to ~40 KB: with the tests' 64 KB budget, batches of a
    // few messages each, and some messages alone in theirs.
    let mut inbox = Vec::new();
    for i in 0..240usize {
        let lines = (i * 37) % 700 + 1;
        let body = format!("{i}\r\n{}", "some text of a line\r\n".repeat(lines));
        let flags = ["", "\\Seen", "\\Flagged $Work"][i % 3];
        inbox.push((
            flags,
            date,
            message(&format!("a{i}"), &format!("A {i}"), &body),
        ));
    }
    load(&src, "INBOX", &inbox)?;
    for (n, f) in folders_src.iter().enumerate() {
        let msgs: Vec<_> = (0..20 + n * 15)
            .map(|i| {
                let body = format!("{f} {i}\r\n{}", "x\r\n".repeat(i * 90));
                ("\\Seen", date, message(&format!("{f}-{i}"), f, &body))
            })
            .collect();
        load(&src, f, &msgs)?;
    }
    let before = store_flags(&src)?;
    let state = tempfile::tempdir()?;
    let store = Arc::new(StateDir::at(state.path()));
    let recorder = Recorder::default();
    let engine = engine(
        src.imap_port(),
        dst.imap_port(),
        None,
        store.clone(),
        &recorder,
    );
    let rt = runtime();
    let report = rt.block_on(engine.sync_mailbox(&account()));
    assert!(report.is_perfect(), "{report:#?}");
    let total = inbox.len() + (0..folders_src.len()).map(|n| 20 + n * 15).sum::<usize>();
    assert_eq!(
        report.folders.iter().map(|f| f.copied).sum::<u64>() as usize,
        total
    );
    for f in ["INBOX", "Archive", "Lists", "Sent"] {
        assert_eq!(messages(&src, f)?, messages(&dst, f)?, "{f} differs");
    }
    assert_read_only(&recorder.sent());
    assert_eq!(store_flags(&src)?, before);

    let again = Recorder::default();
    let engine = self::engine(src.imap_port(), dst.imap_port(), None, store, &again);
    let report = rt.block_on(engine.sync_mailbox(&account()));
    assert!(report.is_perfect(), "{report:#?}");
    assert_eq!(report.folders.iter().map(|f| f.copied).sum::<u64>(), 0);
    let sent = commands(&again.sent());
    let verbs: Vec<&str> = sent.iter().map(|(v, _)| v.as_str()).collect();
    assert!(
        !verbs
            .iter()
            .any(|v| *v == "EXAMINE" || v.starts_with("UID")),
        "{sent:?}"
    );
    let status = verbs.iter().filter(|v| **v == "STATUS").count();
    assert_eq!(
        status,
        report.folders.len(),
        "one STATUS per folder: {sent:?}"
    );
    Ok(())
}

#[test]
fn a_first_copy_in_windows_is_exact_with_sparse_uids_duplicates_and_a_refusal() -> Result<()> {
    // The tests' window is 40 messages: 100 messages over UIDs 1..150 are listed in three
    // windows of 60 UIDs, the last open-ended.
    let src = dovecot("win-src").start()?;
    let dst = dovecot("win-dst").max_message_size(6000).start()?;
    let date = "07-Jul-2021 07:07:07 +0000";
    let dup = message("dup", "the same message", "three times in the source\r\n");
    let inbox: Vec<(&str, &str, Vec<u8>)> = (1..=150u32)
        .map(|uid| {
            let m = match uid {
                5 | 6 | 130 => dup.clone(),
                100 => message("big", "too big", &"x".repeat(10_000)),
                _ => message(
                    &format!("w{uid}"),
                    &format!("W {uid}"),
                    &format!("{uid}\r\n"),
                ),
            };
            (["", "\\Seen", "\\Flagged $Work"][uid as usize % 3], date, m)
        })
        .collect();
    load(&src, "INBOX", &inbox)?;
    on(
        &src,
        &[
            "SELECT INBOX",
            "UID STORE 41:90 +FLAGS.SILENT (\\Deleted)",
            "EXPUNGE",
        ],
    )?;
    let before = store_flags(&src)?;
    let state = tempfile::tempdir()?;
    let store = Arc::new(StateDir::at(state.path()));
    let recorder = Recorder::default();
    let engine = engine(
        src.imap_port(),
        dst.imap_port(),
        None,
        store.clone(),
        &recorder,
    );
    let rt = runtime();
    let report = rt.block_on(engine.sync_mailbox(&account()));
    let inbox_report = &report.folders[0];
    assert_eq!(inbox_report.source, "INBOX");
    assert_eq!(inbox_report.source_messages, 100, "{report:#?}");
    assert_eq!(inbox_report.copied, 99, "{report:#?}");
    assert_eq!(inbox_report.refused.len(), 1, "{report:#?}");
    assert_eq!(
        inbox_report.refused[0].message.message_id.as_deref(),
        Some("big@test")
    );
    assert!(inbox_report.missing.is_empty(), "{report:#?}");
    // The destination holds the source's messages (the duplicate three times), all but the
    // refused one.
    let by_body = |mut v: Vec<Msg>| {
        v.sort_by(|a, b| a.body.cmp(&b.body));
        v
    };
    let mut expected = messages(&src, "INBOX")?;
    expected.retain(|m| m.body.len() < 10_000);
    assert_eq!(expected.len(), 99);
    let copied = messages(&dst, "INBOX")?;
    assert_eq!(copied.iter().filter(|m| m.body == dup).count(), 3);
    assert_eq!(by_body(copied), by_body(expected));
    // Listed window by window, never whole.
    let sent = recorder.sent();
    for window in ["UID FETCH 1:60 ", "UID FETCH 61:120 ", "UID FETCH 121:* "] {
        assert!(sent.contains(window), "{window}: {sent}");
    }
    assert!(!sent.contains("UID FETCH 1:* "), "{sent}");
    assert_read_only(&sent);
    assert_eq!(store_flags(&src)?, before);

    // The cache the windows wrote pairs every copy: a re-sync copies nothing and compares
    // nothing but the refused message, which is tried again.
    let again = Recorder::default();
    let engine = self::engine(src.imap_port(), dst.imap_port(), None, store, &again);
    let report = rt.block_on(engine.sync_mailbox(&account()));
    assert_eq!(report.folders[0].copied, 0, "{report:#?}");
    assert_eq!(report.folders[0].refused.len(), 1, "{report:#?}");
    assert_eq!(report.folders[0].skipped, 99, "{report:#?}");
    assert_eq!(messages(&dst, "INBOX")?.len(), 99);
    assert_read_only(&again.sent());
    Ok(())
}

/// A first copy in windows whose destination connection is cut after a few windows, the
/// run given up: the next run resumes from the copy's record (the window it was in on the
/// source, what arrived since the record's last window on the destination), not by
/// listing both folders whole, and ends with the exact copy and the cache an uninterrupted
/// copy leaves. The record is made two windows behind, its last line torn (as a crash
/// while writing it leaves it): the copies of both windows are found, not made twice.
#[test]
fn a_first_copy_in_windows_cut_midway_resumes_from_its_record() -> Result<()> {
    use mailshift_harness::Proxy;
    let src = dovecot("resume-src").start()?;
    let dst = dovecot("resume-dst").start()?;
    let date = "08-Aug-2022 08:08:08 +0000";
    let dup = message("dup", "twice", "in two windows\r\n");
    let inbox: Vec<(&str, &str, Vec<u8>)> = (1..=320u32)
        .map(|uid| {
            let m = match uid {
                30 | 250 => dup.clone(),
                _ => message(
                    &format!("r{uid}"),
                    &format!("R {uid}"),
                    &format!("{}\r\n", "resume ".repeat(100)),
                ),
            };
            (["", "\\Seen", "\\Flagged"][uid as usize % 3], date, m)
        })
        .collect();
    load(&src, "INBOX", &inbox)?;
    let state = tempfile::tempdir()?;
    let store = Arc::new(StateDir::at(state.path()));
    let rt = runtime();
    let run = |port: u16,
               attempts: u32|
     -> Result<(mailshift::imap::report::MailboxReport, String)> {
        let to_dest = Recorder::default();
        let source = Connector::new(Side::Source, &endpoint(src.imap_port()), None)?;
        let dest = Connector::new(Side::Destination, &endpoint(port), None)?
            .with_recorder(to_dest.clone());
        let mut options = test_options();
        options.retry.attempts = attempts;
        let engine = Arc::new(Engine::new(source, dest, None, store.clone()).with_options(options));
        let report = rt.block_on(engine.sync_mailbox(&account()));
        Ok((report, to_dest.sent()))
    };
    // What the destination was asked to list, in order (the sets of the listings).
    let listings = |sent: &str| -> Vec<String> {
        commands(sent)
            .into_iter()
            .filter(|(verb, line)| verb == "UID FETCH" && line.contains("RFC822.SIZE"))
            .map(|(_, line)| line.split_whitespace().nth(3).unwrap_or("").to_owned())
            .collect()
    };

    // Cut after about half of the folder (eight windows of 40), the proxy then gone: the
    // run gives up.
    let proxy = Proxy::start(dst.imap_port())?;
    proxy.cut_after(150_000);
    let port = proxy.port();
    let first = std::thread::scope(|scope| -> Result<_> {
        let first = scope.spawn(|| run(port, 1));
        mailshift_harness::wait::until_true(std::time::Duration::from_secs(60), "the cut", || {
            Ok(proxy.cuts() > 0 || first.is_finished())
        })?;
        drop(proxy);
        first.join().expect("the first run")
    })?
    .0;
    assert!(!first.is_perfect(), "{first:#?}");
    let records = files_below(&state.path().join("windows"));
    assert_eq!(records.len(), 1, "the copy's record: {records:?}");
    let record = &records[0];
    let text = std::fs::read_to_string(record)?;
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines.len() >= 4,
        "a start and three windows at least: {text}"
    );
    // Two windows behind, the second of them half written: the copies of both are on the
    // destination past the record's last line.
    let torn = lines[lines.len() - 2];
    let behind = format!(
        "{}\n{}",
        lines[..lines.len() - 2].join("\n"),
        &torn[..torn.len() / 2]
    );
    std::fs::write(record, behind)?;

    let (second, sent) = run(dst.imap_port(), 12)?;
    assert!(second.is_perfect(), "{second:#?}");
    assert!(messages(&src, "INBOX")? == messages(&dst, "INBOX")?);
    let listed = listings(&sent);
    let tail = listed.first().unwrap_or_else(|| panic!("{listed:?}"));
    let from: u32 = tail
        .strip_suffix(":*")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("a tail listing, not {tail}"));
    assert!(
        from > 1,
        "what came after the record's last window: {listed:?}"
    );
    assert!(
        !record.exists(),
        "the record is gone once the cache is written"
    );

    // The cache is whole: nothing to do, and a flag changed on the source in an early
    // window is carried over by the next pass.
    let (again, _) = run(dst.imap_port(), 12)?;
    assert_eq!(again.folders[0].copied, 0, "{again:#?}");
    on(
        &src,
        &["SELECT INBOX", "UID STORE 3 +FLAGS.SILENT ($Later)"],
    )?;
    let (flagged, _) = run(dst.imap_port(), 12)?;
    assert_eq!(flagged.folders[0].flags_updated, 1, "{flagged:#?}");
    assert!(messages(&src, "INBOX")? == messages(&dst, "INBOX")?);
    Ok(())
}

/// Every file below `dir`.
fn files_below(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.path().is_dir() {
            out.extend(files_below(&e.path()));
        } else {
            out.push(e.path());
        }
    }
    out
}
