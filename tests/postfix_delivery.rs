//! Mail as a hosting server's Postfix leaves it on disk: delivered over SMTP into a real
//! Postfix whose `virtual(8)` agent writes an mbox file for one mailbox and a Maildir for
//! another (with its `Delivered-To:` and `Return-Path:` headers and its `>From ` quoting),
//! then read by mailshift as `mbox` and `maildir` sources into a real Dovecot: every
//! delivered message arrives once, as Postfix wrote it (quoting undone), and a second run
//! copies nothing.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use mailshift_harness::client::smtp_send;
use mailshift_harness::{Dovecot, Postfix, wait};

/// Messages with lines an mbox writer must quote.
fn sent(i: usize) -> Vec<u8> {
    message(
        &format!("delivered-{i}"),
        &format!("delivered {i}"),
        &format!("Body {i}\r\nFrom the start of a line\r\nand more\r\n"),
    )
}

const COUNT: usize = 6;

/// A Postfix delivering example.com with `virtual(8)` under `base`: alice into an mbox
/// file, bob into a Maildir.
fn postfix(base: &Path, maps: &Path) -> Postfix {
    std::fs::write(
        maps,
        "alice@example.com example.com/alice\nbob@example.com example.com/bob/\n",
    )
    .unwrap();
    std::fs::create_dir_all(base.join("example.com")).unwrap();
    std::process::Command::new("chown")
        .args(["-R", "65534:65534", base.to_str().unwrap()])
        .status()
        .unwrap();
    Postfix::builder()
        .name("delivery")
        .transport("example.com", "virtual:")
        .setting("virtual_mailbox_domains", "example.com")
        .setting("virtual_mailbox_base", base.to_str().unwrap())
        .setting(
            "virtual_mailbox_maps",
            &format!("texthash:{}", maps.display()),
        )
        .setting("virtual_uid_maps", "static:65534")
        .setting("virtual_gid_maps", "static:65534")
        .setting("virtual_minimum_uid", "100")
        .start()
        .expect("postfix starts")
}

fn manifest_for(source: &str, address: &str, dst: &Dovecot) -> String {
    format!(
        "apiVersion: mailshift.io/v1alpha1
kind: MailMigration
metadata:
  name: delivered
spec:
  source:
    {source}
  destination:
    imap: {{ host: 127.0.0.1, port: {}, tls: none }}
  mailboxes:
    - address: {address}
      destinationUser: {USER}
      destinationPassword: {{ value: {PASSWORD} }}
",
        dst.imap_port()
    )
}

/// Each delivered message once on the destination, its body as sent (quoting undone),
/// with the headers Postfix added.
fn assert_delivered(dst: &Dovecot, to: &str) {
    let got = messages(dst, "INBOX").unwrap();
    let mut subjects: Vec<String> = got.iter().map(Msg::subject).collect();
    subjects.sort();
    let mut want: Vec<String> = (0..COUNT).map(|i| format!("delivered {i}")).collect();
    want.sort();
    assert_eq!(subjects, want);
    for m in &got {
        let text = String::from_utf8_lossy(&m.body);
        assert!(text.contains(&format!("Delivered-To: {to}")), "{text}");
        assert!(text.contains("\r\nFrom the start of a line\r\n"), "{text}");
        assert!(!text.contains(">From the start"), "quoting undone: {text}");
    }
}

#[test]
fn mail_postfix_delivered_to_an_mbox_and_a_maildir_is_copied_once_each() {
    let base = tempfile::tempdir().unwrap();
    let maps = base.path().join("vmailbox");
    let vmail = base.path().join("vmail");
    let postfix = postfix(&vmail, &maps);
    for to in ["alice@example.com", "bob@example.com"] {
        for i in 0..COUNT {
            smtp_send(
                postfix.smtp_port(),
                "sender@elsewhere.test",
                &[to],
                &sent(i),
            )
            .expect("Postfix takes the message");
        }
    }
    let mbox = vmail.join("example.com/alice");
    let maildir = vmail.join("example.com/bob");
    let delivered = || {
        let in_mbox = std::fs::read_to_string(&mbox)
            .map(|t| t.matches("\nFrom the start").count() + t.matches(">From the start").count())
            .unwrap_or(0);
        let in_maildir = std::fs::read_dir(maildir.join("new"))
            .map(|d| d.count())
            .unwrap_or(0);
        Ok((in_mbox >= COUNT && in_maildir >= COUNT).then_some(()))
    };
    if let Err(e) = wait::until(Duration::from_secs(60), "Postfix's deliveries", delivered) {
        let log = std::fs::read_to_string(postfix.log_path()).unwrap_or_default();
        panic!("{e}: {log}");
    }
    let mbox_text = std::fs::read_to_string(&mbox).unwrap();
    assert!(
        mbox_text.contains("\n>From the start of a line"),
        "Postfix quotes body lines starting with `From `: {mbox_text}"
    );

    for (name, source, address) in [
        (
            "mbox",
            format!("mbox: {{ path: \"{}\", quoting: mboxo }}", mbox.display()),
            "alice@example.com",
        ),
        (
            "maildir",
            format!("maildir: {{ path: \"{}\" }}", maildir.display()),
            "bob@example.com",
        ),
    ] {
        let dst = dovecot(&format!("delivered-{name}")).start().unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("m.yaml"),
            manifest_for(&source, address, &dst),
        )
        .unwrap();
        let first = sync_report(dir.path());
        assert_eq!(first["perfect"], true, "{name}: {first:#}");
        assert_eq!(
            first["totals"]["messagesTransferred"], COUNT as u64,
            "{name}: {first:#}"
        );
        assert_delivered(&dst, address);
        let again = sync_report(dir.path());
        assert_eq!(
            again["totals"]["messagesTransferred"], 0,
            "{name}: {again:#}"
        );
    }
}
