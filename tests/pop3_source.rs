//! A POP3 server as the source: Dovecot's own POP3 server (dovecot-pop3d) over STLS, its
//! INBOX copied with `mailshift sync` into a real Dovecot: every message byte for byte with
//! its INTERNALDATE from Received/Date, a second run that copies nothing, new mail copied
//! alone, a run killed midway that converges, and the old server's messages all still
//! there, none marked \Seen.

mod common;

use anyhow::Result;
use common::*;
use mailshift_harness::Dovecot;

/// `n` messages from `first`; every third with a Received field whose date differs from
/// its Date field.
fn corpus(first: usize, n: usize) -> Vec<(&'static str, &'static str, Vec<u8>)> {
    const FLAGS: [&str; 4] = ["", "\\Seen", "\\Flagged $Label1", "\\Answered \\Seen"];
    (first..first + n)
        .map(|i| {
            let mut m = message(&format!("pop{i}"), &format!("POP {i}"), &format!("body {i}\r\nFrom a line\r\n.a dot line\r\n"));
            if i % 3 == 0 {
                let received = format!(
                    "Received: from relay.example.org by mx.example.com; Tue, 3 Mar 2020 04:05:{:02} +0100 (CET)\r\n",
                    i % 60
                );
                m.splice(0..0, received.into_bytes());
            }
            (FLAGS[i % FLAGS.len()], "01-Feb-2022 10:00:00 +0000", m)
        })
        .collect()
}

/// What the old server's store says of INBOX, bypassing every protocol: UIDs and flags.
/// `\Recent` is left out: it belongs to sessions, not to messages (after the POP3 sessions
/// Dovecot lists every message \Recent again; no stored flag changes).
fn store_state(d: &Dovecot) -> Result<String> {
    let text = d.doveadm(&["fetch", "-u", USER, "uid flags", "mailbox", "INBOX", "all"])?;
    Ok(text
        .lines()
        .map(|line| match line.strip_prefix("flags:") {
            Some(flags) => flags
                .split_whitespace()
                .filter(|f| *f != "\\Recent")
                .fold("flags:".to_owned(), |acc, f| acc + " " + f),
            None => line.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\n"))
}

fn manifest_for(src: &Dovecot, dst: &Dovecot) -> String {
    format!(
        "apiVersion: mailshift.io/v1alpha1
kind: MailMigration
metadata:
  name: pop3
spec:
  source:
    pop3: {{ host: 127.0.0.1, port: {}, tls: starttls, caCertificate: {{ file: src-ca.pem }} }}
  destination:
    imap: {{ host: 127.0.0.1, port: {}, tls: none }}
  mailboxes:
    - address: {USER}
      sourcePassword: {{ value: {PASSWORD} }}
      destinationPassword: {{ value: {PASSWORD} }}
",
        src.pop3_port(),
        dst.imap_port()
    )
}

/// The destination's INBOX holds every source message once, byte for byte, without flags,
/// dated by its Received field, else its Date field.
fn assert_exact(src: &Dovecot, dst: &Dovecot) -> Result<()> {
    let want = messages(src, "INBOX")?;
    let got = messages(dst, "INBOX")?;
    assert_eq!(want.len(), got.len(), "message count");
    let mut bodies_want: Vec<&Vec<u8>> = want.iter().map(|m| &m.body).collect();
    let mut bodies_got: Vec<&Vec<u8>> = got.iter().map(|m| &m.body).collect();
    bodies_want.sort();
    bodies_got.sort();
    assert!(bodies_want == bodies_got, "bodies differ");
    for m in &got {
        assert!(m.flags.is_empty(), "POP3 has no flags: {:?}", m.flags);
        let date = chrono::DateTime::parse_from_str(&m.date, "%d-%b-%Y %H:%M:%S %z")?;
        let text = String::from_utf8_lossy(&m.body);
        let expected = match text.lines().find_map(|l| l.strip_prefix("Received: ")) {
            Some(r) => {
                let d = r.rsplit_once("; ").unwrap().1.trim_end_matches(" (CET)");
                chrono::DateTime::parse_from_rfc2822(d)?
            }
            None => chrono::DateTime::parse_from_rfc2822("Sat, 21 Nov 2026 10:00:00 +0000")?,
        };
        assert_eq!(date.timestamp(), expected.timestamp(), "{}", m.subject());
    }
    Ok(())
}

#[test]
fn a_pop3_inbox_is_copied_exactly_and_the_old_server_sees_nothing() -> Result<()> {
    let src = dovecot("pop3-src").pop3(true).start()?;
    let dst = dovecot("pop3-dst").start()?;
    load(&src, "INBOX", &corpus(0, 30))?;
    let before = store_state(&src)?;
    let dir = tempfile::tempdir()?;
    std::fs::copy(src.ca_path(), dir.path().join("src-ca.pem"))?;
    std::fs::write(dir.path().join("m.yaml"), manifest_for(&src, &dst))?;

    let first = sync_json(dir.path())?;
    assert_eq!(first["totals"]["messagesTransferred"], 30, "{first:#}");
    assert_exact(&src, &dst)?;
    let again = sync_json(dir.path())?;
    assert_eq!(again["totals"]["messagesTransferred"], 0, "{again:#}");

    // Nothing was read with RETR, deleted or marked: the store is as it was.
    assert_eq!(store_state(&src)?, before);

    // New mail: only it is copied.
    load(&src, "INBOX", &corpus(30, 5))?;
    let before = store_state(&src)?;
    let third = sync_json(dir.path())?;
    assert_eq!(third["totals"]["messagesTransferred"], 5, "{third:#}");
    assert_exact(&src, &dst)?;
    let out = mailshift(dir.path(), &["verify", "-f", "m.yaml", "--state", "state"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(store_state(&src)?, before);
    Ok(())
}

#[test]
fn a_pop3_copy_killed_midway_resumes_to_an_exact_copy() -> Result<()> {
    let src = dovecot("pop3-kill-src").pop3(true).start()?;
    let dst = dovecot("pop3-kill-dst").start()?;
    load(&src, "INBOX", &corpus(0, 900))?;
    let before = store_state(&src)?;
    let dir = tempfile::tempdir()?;
    std::fs::copy(src.ca_path(), dir.path().join("src-ca.pem"))?;
    std::fs::write(dir.path().join("m.yaml"), manifest_for(&src, &dst))?;
    let mut kills = 0;
    for target in [100, 400] {
        if sync_killed_at(dir.path(), target, || count(&dst, "INBOX"))? {
            kills += 1;
        }
    }
    assert!(
        kills > 0,
        "no run was killed midway: the test proves nothing"
    );
    sync_json(dir.path())?;
    assert_exact(&src, &dst)?;
    assert_eq!(store_state(&src)?, before);
    Ok(())
}
