//! Localized default folders on real Dovecot: mailboxes whose default folders are named in
//! Vietnamese, German, Japanese, Russian, French (spelt in NFD) and Greek (in capitals,
//! without accents), on a Courier-style source without SPECIAL-USE (`INBOX.` prefix, `.`
//! separator), each with its own folders beside the defaults, are first shown with
//! `mailshift folders` (which changes nothing on either side), then migrated with `mailshift
//! sync` into an English Dovecot whose default folders carry SPECIAL-USE: every localized
//! default lands in the destination's own Inbox, Sent, Drafts, Trash or Junk, every user
//! folder keeps its name and its messages, and nothing else changes on either side.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, Result, bail};
use common::{mailshift, message, quote};
use mailshift::imap::mutf7;
use mailshift_harness::Dovecot;
use mailshift_harness::client::Imap;
use unicode_normalization::UnicodeNormalization;

const PASSWORD: &str = "pw";
const DATE: &str = "15-Jun-2021 12:00:00 +0700";

/// One test mailbox: its language, and its source folders (full names on the Courier-style
/// source) with where each must land on the destination.
struct Mailbox {
    user: &'static str,
    lang: &'static str,
    /// (source folder, destination folder). `INBOX` is always there.
    folders: Vec<(String, String)>,
}

fn mailboxes() -> Vec<Mailbox> {
    let nfd = |s: &str| -> String { s.nfd().collect() };
    let f = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(s, d)| (format!("INBOX.{s}"), (*d).to_owned()))
            .collect()
    };
    let fr: Vec<(String, String)> = [
        ("Éléments envoyés", "Sent"),
        ("Brouillons", "Drafts"),
        ("Éléments supprimés", "Trash"),
        ("Courrier indésirable", "Junk"),
        ("Clients", "Clients"),
        ("Éléments envoyés anciens", "Éléments envoyés anciens"),
    ]
    .iter()
    // The server stores these names decomposed (e + COMBINING ACUTE ACCENT); a user folder
    // keeps its spelling.
    .map(|(s, d)| (format!("INBOX.{}", nfd(s)), nfd(d)))
    .collect();
    vec![
        Mailbox {
            user: "vi@example.com",
            lang: "vi",
            folders: f(&[
                ("Hộp thư đến", "INBOX"),
                ("Mục đã Gửi", "Sent"),
                ("Thư đã gửi", "Sent"),
                ("Bản nháp", "Drafts"),
                ("Mục đã xóa bỏ", "Trash"),
                ("Email Rác", "Junk"),
                ("Dự án", "Dự án"),
                ("Dự án.2024", "Dự án/2024"),
                ("Mục đã Gửi 2019", "Mục đã Gửi 2019"),
            ]),
        },
        Mailbox {
            user: "de@example.com",
            lang: "de",
            folders: f(&[
                ("Gesendet", "Sent"),
                ("Gesendete Elemente", "Sent"),
                ("Entwürfe", "Drafts"),
                ("Entwürfe.Alt", "Drafts/Alt"),
                ("Papierkorb", "Trash"),
                ("Spamverdacht", "Junk"),
                ("Projekte", "Projekte"),
                ("Gesendet alt", "Gesendet alt"),
                ("Rechnungen", "Rechnungen"),
            ]),
        },
        Mailbox {
            user: "ja@example.com",
            lang: "ja",
            folders: f(&[
                ("送信済みアイテム", "Sent"),
                ("下書き", "Drafts"),
                ("削除済みアイテム", "Trash"),
                ("迷惑メール", "Junk"),
                ("取引先", "取引先"),
                ("送信済み 2020", "送信済み 2020"),
                ("家族", "家族"),
            ]),
        },
        Mailbox {
            user: "ru@example.com",
            lang: "ru",
            folders: f(&[
                ("Отправленные", "Sent"),
                ("Черновики", "Drafts"),
                ("Удалённые", "Trash"),
                ("Спам", "Junk"),
                ("Исходящие", "Outbox"),
                ("Отчёты", "Отчёты"),
                ("Отправленные старые", "Отправленные старые"),
                ("Договоры", "Договоры"),
                ("Договоры.2023", "Договоры/2023"),
            ]),
        },
        Mailbox {
            user: "fr@example.com",
            lang: "fr",
            folders: fr,
        },
        Mailbox {
            user: "el@example.com",
            lang: "el",
            folders: f(&[
                ("ΑΠΕΣΤΑΛΜΕΝΑ", "Sent"),
                ("ΠΡΟΧΕΙΡΑ", "Drafts"),
                ("ΔΙΑΓΡΑΜΜΕΝΑ", "Trash"),
                ("ΑΝΕΠΙΘΥΜΗΤΑ EMAIL", "Junk"),
                ("ΛΟΓΑΡΙΑΣΜΟΙ", "ΛΟΓΑΡΙΑΣΜΟΙ"),
            ]),
        },
    ]
}

fn login(d: &Dovecot, user: &str) -> Result<Imap> {
    Imap::login(d.imap_port(), user, PASSWORD)
}

/// One message as read back: subject, exact bytes, flags (without `\Recent`), INTERNALDATE.
type Msg = (String, Vec<u8>, BTreeSet<String>, String);

fn between<'a>(text: &'a str, start: &str, end: &str) -> &'a str {
    text.split_once(start)
        .and_then(|(_, rest)| rest.split_once(end))
        .map_or("", |(v, _)| v)
}

/// Every message of `folder` (decoded name), read-only (EXAMINE, BODY.PEEK), sorted.
fn messages(d: &Dovecot, user: &str, folder: &str) -> Result<Vec<Msg>> {
    let mut imap = login(d, user)?;
    let wire = mutf7::encode(folder);
    let (_, status) = imap.command_status(&format!("EXAMINE {}", quote(&wire)))?;
    if !status.starts_with("OK") {
        bail!("EXAMINE {folder}: {status}");
    }
    let responses = imap.command("UID FETCH 1:* (FLAGS INTERNALDATE BODY.PEEK[])")?;
    imap.logout();
    let mut out = Vec::new();
    for r in responses {
        if !r.text.contains(" FETCH ") {
            continue;
        }
        let body = r.literals.into_iter().next().context("no body literal")?;
        let text = String::from_utf8_lossy(&body).into_owned();
        let subject = text
            .lines()
            .find_map(|l| l.strip_prefix("Subject: ").map(str::to_owned))
            .unwrap_or_default();
        let flags = between(&r.text, "FLAGS (", ")")
            .split_whitespace()
            .filter(|f| *f != "\\Recent")
            .map(str::to_owned)
            .collect();
        let date = between(&r.text, "INTERNALDATE \"", "\"").to_owned();
        out.push((subject, body, flags, date));
    }
    out.sort();
    Ok(out)
}

fn subjects(d: &Dovecot, user: &str, folder: &str) -> Result<BTreeSet<String>> {
    Ok(messages(d, user, folder)?
        .into_iter()
        .map(|(s, ..)| s)
        .collect())
}

/// Folder names (decoded) with their LIST attributes.
fn folders(d: &Dovecot, user: &str) -> Result<BTreeMap<String, String>> {
    let mut imap = login(d, user)?;
    let list = imap.command("LIST \"\" \"*\" RETURN (SPECIAL-USE)")?;
    imap.logout();
    let mut out = BTreeMap::new();
    for r in list {
        let attrs = between(&r.text, "(", ")").to_owned();
        let wire = if let Some(lit) = r.literals.first() {
            String::from_utf8_lossy(lit).into_owned()
        } else {
            let after = r.text.rsplit_once(") \"").map_or("", |(_, rest)| rest);
            let name = after.split_once("\" ").map_or("", |(_, n)| n);
            name.trim_matches('"')
                .replace("\\\"", "\"")
                .replace("\\\\", "\\")
        };
        let name = mutf7::decode(&wire).unwrap_or(wire);
        out.insert(name, attrs);
    }
    Ok(out)
}

/// Everything a user's mailbox holds: each folder with its messages.
fn snapshot(d: &Dovecot, user: &str) -> Result<BTreeMap<String, Vec<Msg>>> {
    let mut out = BTreeMap::new();
    for (name, attrs) in folders(d, user)? {
        if attrs.contains("\\Noselect") || attrs.contains("\\NonExistent") {
            continue;
        }
        let m = messages(d, user, &name)?;
        out.insert(name, m);
    }
    Ok(out)
}

/// The messages loaded into a source folder: two, named after the user and folder.
fn folder_messages(user: &str, folder: &str) -> Vec<(String, Vec<u8>)> {
    let lang = user.split('@').next().unwrap_or(user);
    (1..=2)
        .map(|i| {
            let subject = format!("{lang} {folder} {i}");
            let id: String = format!("{lang}-{}-{i}", mutf7::encode(folder))
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
                .collect();
            let flags = if i == 1 { "\\Seen" } else { "\\Flagged" };
            (
                flags.to_owned(),
                message(&id, &subject, "nội dung / Inhalt / 内容"),
            )
        })
        .collect()
}

#[test]
fn localized_sources_merge_into_an_english_destination() -> Result<()> {
    let boxes = mailboxes();
    let mut src = Dovecot::builder()
        .name("l10n-folders-src")
        .special_use(false)
        .namespace_prefix("INBOX.")
        .separator('.');
    let mut dst = Dovecot::builder()
        .name("l10n-folders-dst")
        .separator('/')
        .create_special_folders(true);
    for b in &boxes {
        src = src.user(b.user, PASSWORD);
        dst = dst.user(b.user, PASSWORD);
    }
    let src = src.start()?;
    let dst = dst.start()?;

    // The sources: INBOX and every folder with two messages.
    for b in &boxes {
        for (folder, _) in &b.folders {
            src.create_mailbox(b.user, folder)?;
        }
        let mut imap = login(&src, b.user)?;
        for folder in std::iter::once("INBOX").chain(b.folders.iter().map(|(f, _)| f.as_str())) {
            let msgs = folder_messages(b.user, folder);
            let items: Vec<(&str, &str, &[u8])> = msgs
                .iter()
                .map(|(flags, m)| (flags.as_str(), DATE, m.as_slice()))
                .collect();
            imap.append_many(&mutf7::encode(folder), &items)?;
        }
        imap.logout();
    }
    // The destination already holds a folder of its own, with a message, for one user.
    let keeper = boxes[0].user;
    {
        let mut imap = login(&dst, keeper)?;
        let (_, status) = imap.command_status("CREATE Keep")?;
        assert!(status.starts_with("OK"), "{status}");
        imap.append_many(
            "Keep",
            &[("\\Seen", DATE, &message("keep-1", "kept", "mine"))],
        )?;
        imap.logout();
    }

    let source_before: Vec<_> = boxes
        .iter()
        .map(|b| snapshot(&src, b.user))
        .collect::<Result<_>>()?;
    let dest_before: Vec<_> = boxes
        .iter()
        .map(|b| snapshot(&dst, b.user))
        .collect::<Result<_>>()?;
    // The source has no SPECIAL-USE: mapping must go by names.
    for b in &boxes {
        for attrs in folders(&src, b.user)?.values() {
            assert!(
                !["\\Sent", "\\Drafts", "\\Trash", "\\Junk"]
                    .iter()
                    .any(|a| attrs.contains(a)),
                "{attrs}"
            );
        }
    }

    let dir = tempfile::tempdir()?;
    let mut manifest = format!(
        "apiVersion: mailshift.io/v1alpha1
kind: MailMigration
metadata:
  name: l10n
spec:
  source:
    imap: {{ host: 127.0.0.1, port: {}, tls: none }}
  destination:
    imap: {{ host: 127.0.0.1, port: {}, tls: none }}
  folders:
    sourceLanguage: auto
  sync: {{ concurrency: 2 }}
  mailboxes:
",
        src.imap_port(),
        dst.imap_port()
    );
    for b in &boxes {
        manifest.push_str(&format!(
            "    - address: {}\n      sourcePassword: {{ value: {PASSWORD} }}\n      destinationPassword: {{ value: {PASSWORD} }}\n",
            b.user
        ));
    }
    std::fs::write(dir.path().join("m.yaml"), manifest)?;

    // 1. The mapping, before anything is copied.
    let out = mailshift(dir.path(), &["folders", "-f", "m.yaml", "-o", "json"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mapping: serde_json::Value = serde_json::from_str(&stdout)?;
    let mapping = mapping.as_array().context("an array of mailboxes")?;
    assert_eq!(mapping.len(), boxes.len());
    for (b, m) in boxes.iter().zip(mapping) {
        assert_eq!(m["mailbox"], b.user);
        assert_eq!(m["sourceLanguage"]["language"], b.lang, "{m:#}");
        assert_eq!(m["sourceLanguage"]["how"], "detected");
        assert_eq!(m["destinationLanguage"], "en");
        let plans = m["folders"].as_array().context("folders")?;
        for (source, dest) in &b.folders {
            let p = plans
                .iter()
                .find(|p| p["source"] == source.as_str())
                .with_context(|| format!("{source} not in {m:#}"))?;
            assert_eq!(p["destination"], dest.as_str(), "{source}: {p:#}");
            let (rule, role) = match dest.as_str() {
                "INBOX" => ("default-name", Some("Inbox")),
                "Sent" | "Drafts" | "Trash" | "Junk" | "Outbox" => {
                    ("default-name", Some(dest.as_str()))
                }
                d if d.starts_with("Drafts/") => ("under-default", None),
                _ => ("kept", None),
            };
            assert_eq!(p["rule"], rule, "{source}: {p:#}");
            match role {
                Some(r) => assert_eq!(p["role"], r, "{source}: {p:#}"),
                None if rule == "kept" => assert!(p.get("role").is_none(), "{source}: {p:#}"),
                None => {}
            }
        }
        // Localized Sent folders merge into the destination's \Sent, which exists.
        let sent: Vec<_> = plans
            .iter()
            .filter(|p| p["destination"] == "Sent")
            .collect();
        assert!(!sent.is_empty());
        for p in &sent {
            assert_eq!(p["rule"], "default-name", "{p:#}");
            assert_eq!(p["create"], false, "{p:#}");
            assert!(
                p["why"].as_str().unwrap_or("").contains("marked \\Sent"),
                "{p:#}"
            );
        }
    }
    let text = mailshift(
        dir.path(),
        &["folders", "-f", "m.yaml", "--mailbox", "de@example.com"],
    );
    let text_out = String::from_utf8_lossy(&text.stdout);
    assert!(text.status.success(), "{text_out}");
    assert!(
        text_out.contains("source language: de (detected from folder names)"),
        "{text_out}"
    );
    assert!(
        text_out.contains("INBOX.Gesendete Elemente → Sent: `de` default name for Sent"),
        "{text_out}"
    );
    assert!(
        text_out.contains("INBOX.Projekte → Projekte [create"),
        "{text_out}"
    );
    assert!(!text_out.contains("vi@example.com"), "{text_out}");
    // `folders` changed nothing on either side.
    for (i, b) in boxes.iter().enumerate() {
        assert_eq!(snapshot(&src, b.user)?, source_before[i], "{}", b.user);
        assert_eq!(snapshot(&dst, b.user)?, dest_before[i], "{}", b.user);
    }

    // 2. The migration.
    let out = mailshift(dir.path(), &["sync", "-f", "m.yaml", "-o", "json"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_str(&stdout)?;
    assert_eq!(report["perfect"], true);

    for (i, b) in boxes.iter().enumerate() {
        // The source is exactly as it was: folders, messages, flags.
        assert_eq!(snapshot(&src, b.user)?, source_before[i], "{}", b.user);

        // One Inbox, Sent, Drafts, Trash, Junk (and Dovecot's Archive), each the server's own
        // SPECIAL-USE folder; no localized default folder; every user folder.
        let dest_folders = folders(&dst, b.user)?;
        let mut expected: BTreeSet<String> =
            ["INBOX", "Sent", "Drafts", "Trash", "Junk", "Archive"]
                .iter()
                .map(|s| (*s).to_owned())
                .collect();
        expected.extend(b.folders.iter().map(|(_, d)| d.clone()));
        if b.user == keeper {
            expected.insert("Keep".into());
        }
        let got: BTreeSet<String> = dest_folders.keys().cloned().collect();
        assert_eq!(got, expected, "{}", b.user);
        for (name, attr) in [
            ("Sent", "\\Sent"),
            ("Drafts", "\\Drafts"),
            ("Trash", "\\Trash"),
            ("Junk", "\\Junk"),
        ] {
            assert!(dest_folders[name].contains(attr), "{}: {name}", b.user);
        }

        // Every source folder's messages are in its destination folder, byte for byte, with
        // their flags and dates; merged folders hold the messages of all their sources.
        let mut want: BTreeMap<&str, Vec<Msg>> = BTreeMap::new();
        want.entry("INBOX")
            .or_default()
            .extend(messages(&src, b.user, "INBOX")?);
        for (source, dest) in &b.folders {
            want.entry(dest.as_str())
                .or_default()
                .extend(messages(&src, b.user, source)?);
        }
        for (dest, mut msgs) in want {
            msgs.sort();
            assert_eq!(messages(&dst, b.user, dest)?, msgs, "{}: {dest}", b.user);
        }
        // Nothing else: Archive is still empty, the destination's own folder untouched.
        assert!(messages(&dst, b.user, "Archive")?.is_empty(), "{}", b.user);
        if b.user == keeper {
            assert_eq!(
                messages(&dst, b.user, "Keep")?,
                dest_before[i]["Keep"],
                "{}",
                b.user
            );
        }
    }
    // A few merges spelled out.
    assert_eq!(
        subjects(&dst, "vi@example.com", "INBOX")?,
        BTreeSet::from([
            "vi INBOX 1".into(),
            "vi INBOX 2".into(),
            "vi INBOX.Hộp thư đến 1".into(),
            "vi INBOX.Hộp thư đến 2".into(),
        ])
    );
    assert_eq!(subjects(&dst, "de@example.com", "Sent")?.len(), 4);
    assert_eq!(
        subjects(&dst, "de@example.com", "Drafts/Alt")?,
        BTreeSet::from([
            "de INBOX.Entwürfe.Alt 1".into(),
            "de INBOX.Entwürfe.Alt 2".into()
        ])
    );

    // verify agrees, and a second sync copies nothing.
    let out = mailshift(dir.path(), &["verify", "-f", "m.yaml"]);
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let out = mailshift(dir.path(), &["sync", "-f", "m.yaml", "-o", "json"]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(report["totals"]["messagesTransferred"], 0, "{report:#}");
    Ok(())
}

#[test]
fn folders_forced_language_and_unreachable_server() -> Result<()> {
    // A German-named mailbox with `sourceLanguage: nl`: German names are user folders then,
    // English ones still defaults. And a mailbox whose server is down: exit 1, the others
    // still printed.
    let src = Dovecot::builder()
        .name("l10n-forced-src")
        .user("de@example.com", PASSWORD)
        .special_use(false)
        .namespace_prefix("INBOX.")
        .separator('.')
        .start()?;
    let dst = Dovecot::builder()
        .name("l10n-forced-dst")
        .user("de@example.com", PASSWORD)
        .separator('/')
        .create_special_folders(true)
        .start()?;
    for f in ["INBOX.Gesendete Elemente", "INBOX.Entwürfe", "INBOX.Trash"] {
        src.create_mailbox("de@example.com", f)?;
    }
    let dir = tempfile::tempdir()?;
    let manifest = |port: u16, lang: &str| {
        format!(
            "apiVersion: mailshift.io/v1alpha1
kind: MailMigration
metadata:
  name: forced
spec:
  source:
    imap: {{ host: 127.0.0.1, port: {port}, tls: none }}
  destination:
    imap: {{ host: 127.0.0.1, port: {}, tls: none }}
  folders:
    sourceLanguage: {lang}
  mailboxes:
    - address: de@example.com
      sourcePassword: {{ value: {PASSWORD} }}
      destinationPassword: {{ value: {PASSWORD} }}
",
            dst.imap_port()
        )
    };
    std::fs::write(dir.path().join("m.yaml"), manifest(src.imap_port(), "nl"))?;
    let out = mailshift(dir.path(), &["folders", "-f", "m.yaml", "-o", "yaml"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    let v: serde_json::Value = serde_yaml::from_str(&stdout)?;
    let m = &v[0];
    assert_eq!(m["sourceLanguage"]["language"], "nl");
    assert_eq!(m["sourceLanguage"]["how"], "forced");
    let dest_of = |s: &str| {
        m["folders"]
            .as_array()
            .and_then(|f| f.iter().find(|p| p["source"] == s))
            .map(|p| p["destination"].clone())
    };
    assert_eq!(
        dest_of("INBOX.Gesendete Elemente"),
        Some("Gesendete Elemente".into())
    );
    assert_eq!(dest_of("INBOX.Entwürfe"), Some("Entwürfe".into()));
    assert_eq!(dest_of("INBOX.Trash"), Some("Trash".into()));

    // The source server is gone.
    let port = src.imap_port();
    src.stop()?;
    std::fs::write(dir.path().join("m.yaml"), manifest(port, "auto"))?;
    let out = mailshift(dir.path(), &["folders", "-f", "m.yaml", "-o", "json"]);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert!(v[0]["error"].is_string(), "{v:#}");
    Ok(())
}
