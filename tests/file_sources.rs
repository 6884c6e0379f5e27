//! Sources that are files: a Maildir (Maildir++ and Dovecot's `LAYOUT=fs`) and mbox files
//! written by a real Dovecot (messages appended over IMAP with flags, keywords and dates,
//! then the server stopped), each copied with `mailshift sync` into a real Dovecot: an
//! exact copy of what the old Dovecot served over IMAP, a second run that copies nothing,
//! runs killed midway that converge, and files left byte for byte as they were, mtimes
//! included.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::Result;
use common::*;
use mailshift::imap::mutf7;
use mailshift_harness::{Dovecot, DovecotBuilder};

const FLAGS: [&str; 7] = [
    "",
    "\\Seen",
    "\\Seen \\Answered $Label1",
    "\\Flagged Work",
    "\\Draft",
    "\\Deleted \\Seen",
    "$Forwarded Work \\Seen",
];
const DATES: [&str; 3] = [
    "07-Mar-2019 08:09:10 +0530",
    "31-Dec-2020 23:59:59 -0800",
    "01-Jan-2024 00:00:00 +0000",
];

/// A folder of the corpus: its name (decoded, `/` between levels) and its messages.
struct Folder {
    name: &'static str,
    count: usize,
}

const CORPUS: [Folder; 5] = [
    Folder {
        name: "INBOX",
        count: 40,
    },
    Folder {
        name: "Sent",
        count: 5,
    },
    Folder {
        name: "Drafts",
        count: 2,
    },
    Folder {
        name: "Archive/2019",
        count: 7,
    },
    Folder {
        name: "Projekte/Übersicht",
        count: 3,
    },
];

/// `name` (levels split by `/`) as `d` spells it on the wire.
fn wire(d: &Dovecot, name: &str) -> String {
    mutf7::encode(&name.replace('/', &d.separator().to_string()))
}

/// A message whose body has lines that mbox must quote (`From `, `>From `).
fn corpus_message(folder: &str, i: usize) -> Vec<u8> {
    let body = format!(
        "Body {i} of {folder}\r\nFrom the start of a line\r\n>From quoted already\r\n{}",
        "line of text\r\n".repeat(i * 5)
    );
    message(&format!("{folder}-{i}"), &format!("{folder} {i}"), &body)
}

/// The corpus folder not subscribed on the source.
const UNSUBSCRIBED: &str = "Projekte/Übersicht";

/// Fills `d` with the corpus (and `extra` more INBOX messages), returns what it serves
/// over IMAP per folder, then stops it: its files are the source.
fn written_by_dovecot(d: &Dovecot, extra: usize) -> Result<BTreeMap<String, Vec<Msg>>> {
    for f in &CORPUS[1..] {
        d.create_mailbox(USER, &f.name.replace('/', &d.separator().to_string()))?;
    }
    for f in &CORPUS {
        let count = if f.name == "INBOX" {
            f.count + extra
        } else {
            f.count
        };
        let mut messages: Vec<(&str, &str, Vec<u8>)> = (0..count)
            .map(|i| {
                (
                    FLAGS[i % FLAGS.len()],
                    DATES[i % DATES.len()],
                    corpus_message(f.name, i),
                )
            })
            .collect();
        if f.name == "INBOX" {
            // A genuine duplicate: the same message twice.
            messages.push(("", DATES[0], message("dup", "Twice", "same")));
            messages.push(("\\Seen", DATES[1], message("dup", "Twice", "same")));
        }
        load(d, &wire(d, f.name), &messages)?;
    }
    // One folder the user unsubscribed: Dovecot's subscription file leaves it out.
    let mut imap = imap(d)?;
    let unsubscribe = format!("UNSUBSCRIBE {}", quote(&wire(d, UNSUBSCRIBED)));
    let (_, status) = imap.command_status(&unsubscribe)?;
    assert!(status.starts_with("OK"), "{status}");
    imap.logout();
    let mut served = BTreeMap::new();
    for f in &CORPUS {
        served.insert(
            f.name.to_owned(),
            comparable(messages(d, &wire(d, f.name))?),
        );
    }
    d.stop()?;
    Ok(served)
}

/// Messages with their INTERNALDATE as an instant: a Maildir keeps the date as an mtime,
/// without the zone it was appended with.
fn comparable(mut messages: Vec<Msg>) -> Vec<Msg> {
    for m in &mut messages {
        if let Ok(d) = chrono::DateTime::parse_from_str(&m.date, "%d-%b-%Y %H:%M:%S %z") {
            m.date = d.timestamp().to_string();
        }
    }
    messages.sort();
    messages
}

/// Every file and directory under `root` with its bytes and modification time.
fn tree(root: &Path) -> Result<BTreeMap<PathBuf, (Vec<u8>, SystemTime)>> {
    let mut out = BTreeMap::new();
    let mut dirs = vec![root.to_owned()];
    while let Some(dir) = dirs.pop() {
        out.insert(
            dir.clone(),
            (Vec::new(), std::fs::metadata(&dir)?.modified()?),
        );
        for e in std::fs::read_dir(&dir)? {
            let e = e?;
            let meta = std::fs::symlink_metadata(e.path())?;
            if meta.is_dir() {
                dirs.push(e.path());
            } else {
                out.insert(e.path(), (std::fs::read(e.path())?, meta.modified()?));
            }
        }
    }
    Ok(out)
}

/// A manifest reading `source` (a YAML flow mapping under `spec.source`) into `dst`.
fn file_manifest(name: &str, source: &str, dst: &Dovecot) -> String {
    format!(
        "apiVersion: mailshift.io/v1alpha1
kind: MailMigration
metadata:
  name: {name}
spec:
  source:
    {source}
  destination:
    imap: {{ host: 127.0.0.1, port: {port}, tls: none }}
  mailboxes:
    - address: {USER}
      destinationPassword: {{ value: {PASSWORD} }}
",
        port = dst.imap_port()
    )
}

/// The destination holds exactly what the old Dovecot served.
fn assert_exact(served: &BTreeMap<String, Vec<Msg>>, dst: &Dovecot) -> Result<()> {
    for (name, want) in served {
        let got = comparable(messages(dst, &wire(dst, name))?);
        assert_eq!(want.len(), got.len(), "{name}: message count");
        if let Some((w, g)) = want.iter().zip(&got).find(|(w, g)| w != g) {
            panic!(
                "{name}: the destination differs from what the old server served:\nserved: {:?} {:?}\n{}\ncopied: {:?} {:?}\n{}",
                w.flags,
                w.date,
                String::from_utf8_lossy(&w.body).escape_debug(),
                g.flags,
                g.date,
                String::from_utf8_lossy(&g.body).escape_debug()
            );
        }
    }
    Ok(())
}

/// The whole story for one kind of files: copy, compare, copy again, verify, untouched.
fn copies_files_exactly(
    name: &str,
    source: DovecotBuilder,
    files: impl Fn(&Dovecot) -> PathBuf,
    section: &str,
) -> Result<()> {
    copies_files_exactly_with(name, source, files, section, "", |_| Ok(()))
}

/// [`copies_files_exactly`] with `extra` fields in the source's section, and files `setup`
/// writes next to the manifest.
fn copies_files_exactly_with(
    name: &str,
    source: DovecotBuilder,
    files: impl Fn(&Dovecot) -> PathBuf,
    section: &str,
    extra: &str,
    setup: impl Fn(&Path) -> Result<()>,
) -> Result<()> {
    let src = source.start()?;
    let dst = dovecot(&format!("{name}-dst")).separator('/').start()?;
    let served = written_by_dovecot(&src, 0)?;
    let root = files(&src);
    let before = tree(&root)?;
    let path = root.to_str().unwrap().replace(USER, "{user}");

    let dir = tempfile::tempdir()?;
    setup(dir.path())?;
    std::fs::write(
        dir.path().join("m.yaml"),
        file_manifest(
            name,
            &format!("{section}: {{ path: \"{path}\"{extra} }}"),
            &dst,
        ),
    )?;
    let first = sync_json(dir.path())?;
    let total: usize = served.values().map(Vec::len).sum();
    assert_eq!(
        first["totals"]["messagesTransferred"], total as u64,
        "{first:#}"
    );
    assert_exact(&served, &dst)?;
    let dst_folders = folders(&dst)?;
    let sent = dst_folders.iter().find(|(n, _)| n == "Sent").expect("Sent");
    assert!(
        sent.1.contains("\\Sent"),
        "Sent lands in the destination's Sent: {sent:?}"
    );
    // Subscriptions follow Dovecot's subscription file.
    let subscribed = |name: &str| {
        dst_folders
            .iter()
            .any(|(n, attrs)| *n == wire(&dst, name) && attrs.contains("\\Subscribed"))
    };
    assert!(subscribed("Archive/2019"), "{dst_folders:?}");
    assert!(!subscribed(UNSUBSCRIBED), "{dst_folders:?}");

    let again = sync_json(dir.path())?;
    assert_eq!(again["totals"]["messagesTransferred"], 0, "{again:#}");
    let out = mailshift(dir.path(), &["verify", "-f", "m.yaml", "--state", "state"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // The reconcile loop drives the same source: plan names the files as the old server,
    // apply copies, verifies and completes the mailbox-only import.
    let plan = mailshift(
        dir.path(),
        &["plan", "-f", "m.yaml", "--state", "state", "-o", "json"],
    );
    assert_eq!(
        plan.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&plan.stderr)
    );
    let plan: serde_json::Value = serde_json::from_slice(&plan.stdout)?;
    let step = &plan[0]["plan"]["steps"][0];
    assert_eq!(step["step"]["kind"], "initialSync", "{plan:#}");
    let server = step["touches"][0]["server"].as_str().unwrap_or_default();
    assert!(server.starts_with(&format!("{section} files ")), "{server}");
    let apply = mailshift(
        dir.path(),
        &[
            "apply",
            "-f",
            "m.yaml",
            "--state",
            "state",
            "--no-wait",
            "-o",
            "json",
        ],
    );
    assert_eq!(
        apply.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&apply.stderr)
    );
    let outcome: serde_json::Value = serde_json::from_slice(&apply.stdout)?;
    assert_eq!(outcome["outcome"], "converged", "{outcome:#}");
    let plan = mailshift(dir.path(), &["plan", "-f", "m.yaml", "--state", "state"]);
    assert_eq!(
        plan.status.code(),
        Some(0),
        "nothing left to do: {}",
        String::from_utf8_lossy(&plan.stdout)
    );
    assert_exact(&served, &dst)?;
    assert!(
        tree(&root)? == before,
        "the source files changed (bytes, names or mtimes)"
    );
    Ok(())
}

#[test]
fn a_maildir_written_by_dovecot_is_copied_exactly_and_left_untouched() -> Result<()> {
    copies_files_exactly(
        "maildir",
        dovecot("maildir-src"),
        |d| d.mail_dir().join(USER).join("Maildir"),
        "maildir",
    )
}

#[test]
fn a_maildir_in_dovecots_fs_layout_is_copied_exactly() -> Result<()> {
    copies_files_exactly(
        "maildir-fs",
        dovecot("maildir-fs-src").separator('/'),
        |d| d.mail_dir().join(USER).join("Maildir"),
        "maildir",
    )
}

/// The same Maildir read on the "old server" over ssh (a real sshd on loopback, the real
/// OpenSSH client, host key checked): `find`, `stat`, `head`, `cat` there, nothing written.
#[test]
fn a_maildir_read_over_ssh_is_copied_exactly_and_left_untouched() -> Result<()> {
    let sshd = mailshift_harness::Sshd::start()?;
    let extra = format!(
        ", ssh: {{ host: 127.0.0.1, port: {}, user: root, identity: {{ file: id }}, knownHosts: {{ file: kh }} }}",
        sshd.port()
    );
    copies_files_exactly_with(
        "maildir-ssh",
        dovecot("maildir-ssh-src"),
        |d| d.mail_dir().join(USER).join("Maildir"),
        "maildir",
        &extra,
        |dir| {
            std::fs::write(dir.join("id"), sshd.client_private_key()?)?;
            std::fs::write(dir.join("kh"), sshd.known_hosts_line())?;
            Ok(())
        },
    )?;
    assert!(
        sshd.log().contains("Accepted publickey for root"),
        "the files were not read over ssh: {}",
        sshd.log()
    );
    Ok(())
}

/// mbox files over ssh: the file streamed once with `cat`, messages read by range.
#[test]
fn mbox_files_read_over_ssh_are_copied_exactly() -> Result<()> {
    let sshd = mailshift_harness::Sshd::start()?;
    let extra = format!(
        ", ssh: {{ host: 127.0.0.1, port: {}, user: root, identity: {{ file: id }}, knownHosts: {{ file: kh }} }}",
        sshd.port()
    );
    copies_files_exactly_with(
        "mbox-ssh",
        dovecot("mbox-ssh-src").mbox(true),
        |d| d.mail_dir().join(USER).join("mail"),
        "mbox",
        &extra,
        |dir| {
            std::fs::write(dir.join("id"), sshd.client_private_key()?)?;
            std::fs::write(dir.join("kh"), sshd.known_hosts_line())?;
            Ok(())
        },
    )
}

#[test]
fn mbox_files_written_by_dovecot_are_copied_exactly_and_left_untouched() -> Result<()> {
    copies_files_exactly(
        "mbox",
        dovecot("mbox-src").mbox(true),
        |d| d.mail_dir().join(USER).join("mail"),
        "mbox",
    )
}

/// `mailshift sync` killed while it copies from the files, started again each time: the
/// destination never holds anything twice and ends as an exact copy.
fn killed_and_resumed(
    name: &str,
    source: DovecotBuilder,
    files: impl Fn(&Dovecot) -> PathBuf,
    section: &str,
) -> Result<()> {
    let src = source.start()?;
    let dst = dovecot(&format!("{name}-dst")).separator('/').start()?;
    let served = written_by_dovecot(&src, 1200)?;
    let root = files(&src);
    let before = tree(&root)?;
    let path = root.to_str().unwrap().replace(USER, "{user}");
    let dir = tempfile::tempdir()?;
    std::fs::write(
        dir.path().join("m.yaml"),
        file_manifest(name, &format!("{section}: {{ path: \"{path}\" }}"), &dst),
    )?;
    let mut kills = 0;
    for target in [150, 500, 900] {
        if sync_killed_at(dir.path(), target, || count(&dst, "INBOX"))? {
            kills += 1;
        }
        let got = messages(&dst, "INBOX")?;
        let want = &served["INBOX"];
        for m in &got {
            let on_dst = got.iter().filter(|o| o.body == m.body).count();
            let on_src = want.iter().filter(|o| o.body == m.body).count();
            assert!(
                on_dst <= on_src,
                "copied twice after a kill: {}",
                m.subject()
            );
        }
    }
    assert!(
        kills > 0,
        "no run was killed midway: the test proves nothing"
    );
    sync_json(dir.path())?;
    assert_exact(&served, &dst)?;
    let again = sync_json(dir.path())?;
    assert_eq!(again["totals"]["messagesTransferred"], 0, "{again:#}");
    assert!(tree(&root)? == before, "the source files changed");
    Ok(())
}

#[test]
fn a_maildir_copy_killed_midway_resumes_to_an_exact_copy() -> Result<()> {
    killed_and_resumed(
        "maildir-kill",
        dovecot("maildir-kill-src"),
        |d| d.mail_dir().join(USER).join("Maildir"),
        "maildir",
    )
}

#[test]
fn an_mbox_copy_killed_midway_resumes_to_an_exact_copy() -> Result<()> {
    killed_and_resumed(
        "mbox-kill",
        dovecot("mbox-kill-src").mbox(true),
        |d| d.mail_dir().join(USER).join("mail"),
        "mbox",
    )
}

/// Between two runs the files change as a live old server changes them: a flag set (a
/// Maildir file renamed, an mbox Status header rewritten), a message delivered (a file in
/// `new/`, a message appended to the mbox). The next run copies the new message alone and
/// carries the flag over, and the copy stays exact.
fn changes_between_runs(
    name: &str,
    source: DovecotBuilder,
    files: impl Fn(&Dovecot) -> PathBuf,
    section: &str,
    change: impl Fn(&Path) -> Result<()>,
    expect: impl Fn(&[Msg]) -> bool,
) -> Result<()> {
    let src = source.start()?;
    let dst = dovecot(&format!("{name}-dst")).separator('/').start()?;
    written_by_dovecot(&src, 0)?;
    let root = files(&src);
    let path = root.to_str().unwrap().replace(USER, "{user}");
    let dir = tempfile::tempdir()?;
    std::fs::write(
        dir.path().join("m.yaml"),
        file_manifest(name, &format!("{section}: {{ path: \"{path}\" }}"), &dst),
    )?;
    sync_json(dir.path())?;
    let before = count(&dst, "INBOX");
    change(&root)?;
    let next = sync_json(dir.path())?;
    assert_eq!(next["totals"]["messagesTransferred"], 1, "{next:#}");
    assert_eq!(next["totals"]["flagsUpdated"], 1, "{next:#}");
    assert_eq!(count(&dst, "INBOX"), before + 1);
    let got = messages(&dst, "INBOX")?;
    assert!(expect(&got), "the change did not reach the destination");
    let again = sync_json(dir.path())?;
    assert_eq!(again["totals"]["messagesTransferred"], 0, "{again:#}");
    assert_eq!(again["totals"]["flagsUpdated"], 0, "{again:#}");
    // Nothing changed since: each folder is one read of its files (STATUS), as with a
    // CONDSTORE server, thanks to mailshift's own MODSEQ.
    for f in again["mailboxes"][0]["folders"]
        .as_array()
        .expect("folders")
    {
        assert_eq!(f["pass"], "no change", "{f:#}");
    }
    let out = mailshift(dir.path(), &["verify", "-f", "m.yaml", "--state", "state"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    Ok(())
}

/// The delivered message and the flagged one are on the destination as the files say.
fn delivered_and_flagged(got: &[Msg]) -> bool {
    let delivered = got.iter().any(|m| m.subject() == "Delivered later");
    let flagged = got
        .iter()
        .any(|m| m.subject() == "INBOX 0" && m.flags.contains("\\Flagged"));
    delivered && flagged
}

#[test]
fn maildir_changes_between_runs_are_carried_over() -> Result<()> {
    changes_between_runs(
        "maildir-change",
        dovecot("maildir-change-src"),
        |d| d.mail_dir().join(USER).join("Maildir"),
        "maildir",
        |root| {
            // INBOX 0 was appended without flags: find its file and flag it, as an MDA or
            // IMAP server renames it.
            let mut flagged = false;
            for sub in ["cur", "new"] {
                for e in std::fs::read_dir(root.join(sub))? {
                    let p = e?.path();
                    if String::from_utf8_lossy(&std::fs::read(&p)?).contains("Subject: INBOX 0\r\n")
                        || String::from_utf8_lossy(&std::fs::read(&p)?)
                            .contains("Subject: INBOX 0\n")
                    {
                        let name = p.file_name().unwrap().to_str().unwrap().to_owned();
                        let base = name.split(':').next().unwrap().to_owned();
                        std::fs::rename(&p, root.join("cur").join(format!("{base}:2,F")))?;
                        flagged = true;
                    }
                }
            }
            assert!(flagged, "INBOX 0 found");
            std::fs::write(
                root.join("new").join("1700000000.M1P1.delivered"),
                message("later", "Delivered later", "new mail"),
            )?;
            Ok(())
        },
        delivered_and_flagged,
    )
}

#[test]
fn mbox_changes_between_runs_are_carried_over() -> Result<()> {
    changes_between_runs(
        "mbox-change",
        dovecot("mbox-change-src").mbox(true),
        |d| d.mail_dir().join(USER).join("mail"),
        "mbox",
        |root| {
            let inbox = root.join("inbox");
            let text = std::fs::read(&inbox)?;
            // The message of INBOX 0: an X-Status: F goes before its Subject field, as an
            // mbox server rewrites a message's status headers.
            let at = text
                .windows(b"Subject: INBOX 0\n".len())
                .position(|w| w == b"Subject: INBOX 0\n")
                .expect("INBOX 0 in the mbox");
            let mut changed = text[..at].to_vec();
            changed.extend_from_slice(b"X-Status: F\n");
            changed.extend_from_slice(&text[at..]);
            changed.extend_from_slice(b"From MAILER-DAEMON Tue Dec  1 10:00:00 2026\n");
            changed.extend_from_slice(&message("later", "Delivered later", "new mail"));
            changed.extend_from_slice(b"\n");
            std::fs::write(&inbox, changed)?;
            Ok(())
        },
        delivered_and_flagged,
    )
}

/// A German Maildir (folders named as a German client names them, no SPECIAL-USE in files)
/// lands in the destination's own Sent, Drafts and Trash: the folder mapping is the IMAP
/// one, localized names included.
#[test]
fn localized_maildir_folders_map_to_the_destinations_own() -> Result<()> {
    let src = dovecot("maildir-de-src").start()?;
    let dst = dovecot("maildir-de-dst").separator('/').start()?;
    for (i, f) in ["Gesendet", "Entwürfe", "Papierkorb", "Rechnungen"]
        .iter()
        .enumerate()
    {
        src.create_mailbox(USER, f)?;
        load(
            &src,
            &mutf7::encode(f),
            &[("\\Seen", DATES[0], message(&format!("de{i}"), f, "Grüße"))],
        )?;
    }
    src.stop()?;
    let path = src
        .mail_dir()
        .join("{user}")
        .join("Maildir")
        .display()
        .to_string();
    let dir = tempfile::tempdir()?;
    std::fs::write(
        dir.path().join("m.yaml"),
        file_manifest(
            "maildir-de",
            &format!("maildir: {{ path: \"{path}\" }}"),
            &dst,
        ),
    )?;
    let out = sync_json(dir.path())?;
    assert_eq!(out["totals"]["messagesTransferred"], 4, "{out:#}");
    for (folder, subject) in [
        ("Sent", "Gesendet"),
        ("Drafts", "Entwürfe"),
        ("Trash", "Papierkorb"),
        ("Rechnungen", "Rechnungen"),
    ] {
        let got = messages(&dst, folder)?;
        assert_eq!(got.len(), 1, "{folder}");
        assert_eq!(got[0].subject(), subject, "{folder}");
    }
    Ok(())
}
