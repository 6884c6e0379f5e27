//! Outlook PST and OST files as a source (`source.pst`), each copied with `mailshift sync`
//! into a real Dovecot. The files are the ones the npm package pst-extractor ships
//! (unpacked by `scripts/install-deps.sh`): an Enron PST, an Outlook.com OST with an
//! Inbox, Sent Items, a calendar and contacts, the files attached to its messages, and
//! pst-extractor's own listing of both (`output.txt`), written by another PST reader than
//! the one mailshift uses, which is what the copies are checked against: every mail folder
//! with the subjects of its messages, attachments byte for byte, Outlook's default folders
//! in the destination's own, what is not mail reported and left out, a second run that
//! copies nothing, a run killed midway that converges, and the file left as it was.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{Context, Result};
use base64::Engine as _;
use common::*;
use mailshift_harness::Dovecot;

fn testdata() -> PathBuf {
    std::env::var_os("MAILSHIFT_TEST_SERVERS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/mailshift-test-servers"))
        .join("pst-extractor/package/example/testdata")
}

/// A copy of test file `name` in `dir` (so that the test can watch it for changes), with
/// its bytes and modification time.
fn copied(dir: &Path, name: &str) -> Result<(PathBuf, Vec<u8>, SystemTime)> {
    let from = testdata().join(name);
    let to = dir.join(name.replace('@', "-at-"));
    std::fs::copy(&from, &to).with_context(|| {
        format!(
            "{}: the PST test files are installed by scripts/install-deps.sh",
            from.display()
        )
    })?;
    let bytes = std::fs::read(&to)?;
    let mtime = std::fs::metadata(&to)?.modified()?;
    Ok((to, bytes, mtime))
}

/// pst-extractor's listing of `file`: every folder below the IPM subtree (path joined by
/// `/`) with the subjects of its messages, sorted.
fn listing(file: &str) -> Result<BTreeMap<String, Vec<String>>> {
    let text = std::fs::read_to_string(testdata().join("output.txt"))?.replace("\r\n", "\n");
    let start = text
        .find(&format!("./testdata/{file}\n"))
        .context("file not in output.txt")?;
    let section = &text[start..];
    let end = section.find(" processed in ").unwrap_or(section.len());
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut path: Vec<String> = Vec::new();
    for line in section[..end].lines().skip(1) {
        let Some(at) = line.find("|- ") else { continue };
        let depth = line[..at].matches('|').count();
        let item = &line[at + 3..];
        path.truncate(depth);
        if let Some(rest) = item.strip_prefix("Sender: ") {
            let subject = rest.split_once(", Subject: ").map_or("", |(_, s)| s);
            if let Some(folder) = below_subtree(&path) {
                out.entry(folder)
                    .or_default()
                    .push(subject.trim().to_owned());
            }
        } else {
            path.push(item.to_owned());
            if let Some(folder) = below_subtree(&path) {
                out.entry(folder).or_default();
            }
        }
    }
    for subjects in out.values_mut() {
        subjects.sort();
    }
    Ok(out)
}

/// A folder path relative to the IPM subtree (Outlook's "Top of Personal Folders", an
/// OST's IPM_SUBTREE), `None` for the subtree itself and what is outside it.
fn below_subtree(path: &[String]) -> Option<String> {
    let at = path
        .iter()
        .position(|p| p == "Top of Personal Folders" || p == "IPM_SUBTREE")?;
    (path.len() > at + 1).then(|| path[at + 1..].join("/"))
}

/// A header field's value, unfolded, RFC 2047 words decoded (as pst-extractor shows it).
fn field(message: &[u8], name: &str) -> Option<String> {
    let text = String::from_utf8_lossy(message);
    let head = text.split("\r\n\r\n").next()?;
    let unfolded = head.replace("\r\n ", " ").replace("\r\n\t", " ");
    let value = unfolded.lines().find_map(|l| {
        l.split_once(':')
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim().to_owned())
    })?;
    Some(decode_words(&value))
}

fn decode_words(value: &str) -> String {
    let mut out = String::new();
    let mut rest = value;
    let mut after_word = false;
    while let Some(start) = rest.find("=?") {
        // =?charset?encoding?data?=
        let parts: Vec<&str> = rest[start + 2..].splitn(4, '?').collect();
        if parts.len() < 4 || !parts[3].starts_with('=') {
            break;
        }
        let len = 2 + parts[0].len() + 1 + parts[1].len() + 1 + parts[2].len() + 2;
        let between = &rest[..start];
        // Space between two encoded words is not part of the text (RFC 2047 6.2).
        if !(after_word && between.trim().is_empty()) {
            out.push_str(between);
        }
        let bytes = if parts[1].eq_ignore_ascii_case("B") {
            base64::engine::general_purpose::STANDARD
                .decode(parts[2])
                .unwrap_or_default()
        } else {
            q_decode(parts[2])
        };
        out.push_str(&String::from_utf8_lossy(&bytes));
        rest = &rest[start + len..];
        after_word = true;
    }
    out.push_str(rest);
    out
}

fn q_decode(data: &str) -> Vec<u8> {
    let b = data.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'_' => out.push(b' '),
            b'=' if i + 2 < b.len() + 1 && data.get(i + 1..i + 3).is_some() => {
                match u8::from_str_radix(&data[i + 1..i + 3], 16) {
                    Ok(v) => {
                        out.push(v);
                        i += 2;
                    }
                    Err(_) => out.push(b'='),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    out
}

/// The base64 parts of a message named `filename`, decoded.
fn attachment(message: &[u8], filename: &str) -> Option<Vec<u8>> {
    let text = String::from_utf8_lossy(message);
    let needle = format!("filename=\"{filename}\"");
    let at = text.find(&needle)?;
    let body_start = text[at..].find("\r\n\r\n")? + at + 4;
    let body_end = text[body_start..].find("\r\n--")? + body_start;
    let data: String = text[body_start..body_end]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    base64::engine::general_purpose::STANDARD.decode(data).ok()
}

fn pst_manifest(name: &str, file: &Path, dst: &Dovecot, destination_extra: &str) -> String {
    format!(
        "apiVersion: mailshift.io/v1alpha1
kind: MailMigration
metadata:
  name: {name}
spec:
  source:
    pst: {{ file: \"{file}\" }}
  destination:
    imap: {{ host: 127.0.0.1, port: {port}, tls: none }}{destination_extra}
  mailboxes:
    - address: {USER}
      destinationPassword: {{ value: {PASSWORD} }}
",
        file = file.display(),
        port = dst.imap_port()
    )
}

/// The destination folder holding the given SPECIAL-USE attribute.
fn special(dst: &Dovecot, attr: &str) -> Result<String> {
    let all = folders(dst)?;
    all.iter()
        .find(|(_, a)| a.split_whitespace().any(|x| x == attr))
        .map(|(n, _)| n.clone())
        .with_context(|| format!("no {attr} folder on the destination: {all:?}"))
}

/// The subjects of a destination folder, sorted.
fn subjects(dst: &Dovecot, folder: &str) -> Result<Vec<String>> {
    let mut s: Vec<String> = messages(dst, folder)?
        .iter()
        .map(|m| {
            field(&m.body, "Subject")
                .unwrap_or_default()
                .trim()
                .to_owned()
        })
        .collect();
    s.sort();
    Ok(s)
}

/// Every mail folder of the listing is on the destination with the same messages, where
/// `place` puts it; every other folder is reported as not mail (and is not there).
fn assert_as_listed(
    listed: &BTreeMap<String, Vec<String>>,
    report: &serde_json::Value,
    dst: &Dovecot,
    place: impl Fn(&str) -> Result<String>,
) -> Result<usize> {
    let not_mail: Vec<&str> = report["mailboxes"][0]["notMail"]
        .as_array()
        .map(|a| a.iter().filter_map(|n| n["folder"].as_str()).collect())
        .unwrap_or_default();
    let on_dst: Vec<String> = folders(dst)?.into_iter().map(|(n, _)| n).collect();
    let mut copied = 0;
    for (folder, want) in listed {
        if not_mail.contains(&folder.as_str()) {
            let dest = place(folder)?;
            assert!(
                !on_dst.contains(&dest),
                "{folder} is not mail but was created as {dest}"
            );
            continue;
        }
        let dest = place(folder)?;
        assert!(
            on_dst.contains(&dest),
            "{folder} → {dest} missing: {on_dst:?}"
        );
        assert_eq!(&subjects(dst, &dest)?, want, "{folder} → {dest}");
        copied += want.len();
    }
    Ok(copied)
}

#[test]
fn an_outlook_mailbox_lands_in_the_destinations_own_folders_with_its_attachments() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (file, bytes, mtime) = copied(dir.path(), "pstextractortest@outlook.com.ost")?;
    let dst = dovecot("pst-ost-dst").separator('/').start()?;
    std::fs::write(
        dir.path().join("m.yaml"),
        pst_manifest("pst-ost", &file, &dst, ""),
    )?;
    let first = sync_json(dir.path())?;
    let listed = listing("pstextractortest@outlook.com.ost")?;
    assert!(listed["Inbox"].len() >= 5, "{listed:?}");
    // Outlook's default folders land in the destination's own.
    let copied = assert_as_listed(&listed, &first, &dst, |folder| {
        Ok(match folder {
            "Inbox" => "INBOX".to_owned(),
            "Sent Items" => special(&dst, "\\Sent")?,
            "Deleted Items" => special(&dst, "\\Trash")?,
            "Junk Email" => special(&dst, "\\Junk")?,
            "Drafts" => special(&dst, "\\Drafts")?,
            other => other.to_owned(),
        })
    })?;
    assert_eq!(
        first["totals"]["messagesTransferred"], copied as u64,
        "{first:#}"
    );
    // What is not mail is told, with what it holds.
    let not_mail = &first["mailboxes"][0]["notMail"];
    let class_of = |folder: &str| {
        not_mail
            .as_array()
            .and_then(|a| a.iter().find(|n| n["folder"] == folder))
            .and_then(|n| n["class"].as_str())
            .map(str::to_owned)
    };
    assert_eq!(
        class_of("Calendar").as_deref(),
        Some("IPF.Appointment"),
        "{not_mail:#}"
    );
    assert_eq!(
        class_of("Contacts").as_deref(),
        Some("IPF.Contact"),
        "{not_mail:#}"
    );
    // Attachments arrive byte for byte as the files that were attached.
    let inbox = messages(&dst, "INBOX")?;
    for (subject, name) in [
        ("text file attachment", "text.txt"),
        (
            "jpg attachment",
            "primoz-roglic-of-slovenia-and-team-jumbo-visma-red-leader-news-photo-1628610563.jpg",
        ),
        ("pdf attachment", "Clinometer Usage.pdf"),
    ] {
        let m = inbox
            .iter()
            .find(|m| field(&m.body, "Subject").as_deref() == Some(subject))
            .with_context(|| format!("no message {subject:?} in INBOX"))?;
        let want = std::fs::read(testdata().join("attachments").join(name))?;
        let got = attachment(&m.body, name)
            .with_context(|| format!("{subject}: no attachment {name}"))?;
        assert!(
            got == want,
            "{subject}: {name} differs ({} vs {} bytes)",
            got.len(),
            want.len()
        );
    }
    // Read mail is \Seen, unread is not, and the delivery time is the INTERNALDATE.
    assert!(
        inbox.iter().any(|m| m.flags.contains("\\Seen")),
        "{inbox:?}"
    );
    assert!(
        inbox.iter().all(|m| m.date.contains("2021")),
        "{:?}",
        inbox.iter().map(|m| &m.date).collect::<Vec<_>>()
    );

    let again = sync_json(dir.path())?;
    assert_eq!(again["totals"]["messagesTransferred"], 0, "{again:#}");
    let out = mailshift(dir.path(), &["verify", "-f", "m.yaml", "--state", "state"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(std::fs::read(&file)? == bytes, "the OST changed");
    assert_eq!(std::fs::metadata(&file)?.modified()?, mtime);
    Ok(())
}

#[test]
fn the_enron_pst_is_copied_folder_for_folder_as_another_reader_lists_it() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (file, bytes, _) = copied(dir.path(), "enron.pst")?;
    let dst = dovecot("pst-enron-dst").separator('/').start()?;
    std::fs::write(
        dir.path().join("m.yaml"),
        pst_manifest("pst-enron", &file, &dst, ""),
    )?;
    let first = sync_json(dir.path())?;
    let listed = listing("enron.pst")?;
    let total: usize = listed.values().map(Vec::len).sum();
    assert!(total >= 60, "{listed:?}");
    let trash = special(&dst, "\\Trash")?;
    let copied = assert_as_listed(&listed, &first, &dst, |folder| {
        Ok(match folder {
            "Deleted Items" => trash.clone(),
            other => other.to_owned(),
        })
    })?;
    assert_eq!(copied, total, "every message of the PST is mail");
    assert_eq!(first["totals"]["messagesTransferred"], total as u64);
    // Messages that arrived by SMTP keep the headers they arrived with.
    let systems = messages(&dst, "lokay-m/MLOKAY (Non-Privileged)/Systems")?;
    assert!(
        systems
            .iter()
            .all(|m| field(&m.body, "Message-ID").is_some() && field(&m.body, "From").is_some()),
        "headers lost"
    );
    assert!(systems.iter().all(|m| m.flags.contains("\\Seen")));
    let again = sync_json(dir.path())?;
    assert_eq!(again["totals"]["messagesTransferred"], 0, "{again:#}");
    assert!(std::fs::read(&file)? == bytes, "the PST changed");
    Ok(())
}

#[test]
fn a_pst_copy_killed_midway_resumes_to_an_exact_copy() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (file, _, _) = copied(dir.path(), "enron.pst")?;
    let dst = dovecot("pst-kill-dst").separator('/').start()?;
    // Slowed to 20 messages a second, so that a run can be killed while it copies.
    std::fs::write(
        dir.path().join("m.yaml"),
        pst_manifest(
            "pst-kill",
            &file,
            &dst,
            "\n    limits: { messagesPerSecond: 20 }",
        ),
    )?;
    let listed = listing("enron.pst")?;
    let total: usize = listed.values().map(Vec::len).sum();
    let on_dst = |dst: &Dovecot| -> usize {
        folders(dst)
            .unwrap_or_default()
            .iter()
            .map(|(n, _)| count(dst, n))
            .sum()
    };
    let mut kills = 0;
    for target in [10, 35] {
        if sync_killed_at(dir.path(), target, || on_dst(&dst))? {
            kills += 1;
        }
        assert!(on_dst(&dst) <= total, "more messages than the PST holds");
    }
    assert!(
        kills > 0,
        "no run was killed midway: the test proves nothing"
    );
    let last = sync_json(dir.path())?;
    assert_eq!(on_dst(&dst), total, "{last:#}");
    let trash = special(&dst, "\\Trash")?;
    assert_as_listed(&listed, &last, &dst, |folder| {
        Ok(match folder {
            "Deleted Items" => trash.clone(),
            other => other.to_owned(),
        })
    })?;
    let again = sync_json(dir.path())?;
    assert_eq!(again["totals"]["messagesTransferred"], 0, "{again:#}");
    Ok(())
}
