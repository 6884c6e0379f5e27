//! The servers of the README's demonstration: an "old" Dovecot filled with sample
//! mailboxes in three languages (no SPECIAL-USE, so localized default folders must be
//! recognised by name) and an empty "new" Dovecot, each behind its own Postfix; a BIND
//! server holding the domain's zone (MX pointing at the old server, TTL 45 s); and a
//! manifest that moves the mailboxes, turns the old server into a gateway to the new one,
//! proves mail flows, and switches MX.
//!
//! Usage: `mailshift-demo-servers DIR`. Writes `DIR/migration.yaml` and `DIR/servers.env`
//! (ports for the demo script), prints `ready`, and keeps the servers running until its
//! standard input closes; then stops them and removes their files.

use std::io::{Read, Write};
use std::path::PathBuf;

use anyhow::{Context, Result};
use mailshift_harness::Nameserver as _;
use mailshift_harness::{Bind, Dovecot, Postfix, Zone};

/// The MX TTL before the migration: `apply` waits this long after lowering it.
const OLD_MX_TTL: u32 = 45;

/// A sample mailbox: user, password, and (folder, number of messages).
type Sample = (&'static str, &'static str, &'static [(&'static str, usize)]);

/// The mailboxes of the old server.
const MAILBOXES: &[Sample] = &[
    (
        "alice@example.com",
        "alice-old-pw",
        &[
            ("INBOX", 40),
            ("Sent", 12),
            ("Drafts", 2),
            ("Projects.2026", 9),
        ],
    ),
    (
        "bob@example.com",
        "bob-old-pw",
        &[
            ("INBOX", 25),
            ("Gesendete Elemente", 10),
            ("Entwürfe", 3),
            ("Gelöschte Elemente", 4),
            ("Projekte", 7),
        ],
    ),
    (
        "minh@example.com",
        "minh-old-pw",
        &[
            ("INBOX", 30),
            ("Thư đã gửi", 8),
            ("Thư nháp", 2),
            ("Dự án", 6),
        ],
    ),
];

fn main() -> Result<()> {
    let dir = PathBuf::from(
        std::env::args()
            .nth(1)
            .context("usage: mailshift-demo-servers DIR")?,
    );
    std::fs::create_dir_all(&dir)?;

    let mut old = Dovecot::builder().name("old").special_use(false);
    let mut new = Dovecot::builder().name("new");
    for (user, pw, _) in MAILBOXES {
        old = old.user(user, pw);
        new = new.user(user, &pw.replace("-old-", "-new-"));
    }
    let old = old.start()?;
    let new = new.start()?;

    for (user, _, folders) in MAILBOXES {
        for (folder, count) in *folders {
            if *folder != "INBOX" {
                old.create_mailbox(user, folder)?;
            }
            for n in 0..*count {
                old.save(user, folder, &sample(user, folder, n))?;
            }
            // Some read, some flagged: flags must arrive as they are.
            old.doveadm(&[
                "flags", "add", "-u", user, "\\Seen", "mailbox", folder, "uid", "1:*",
            ])?;
            old.doveadm(&[
                "flags", "remove", "-u", user, "\\Seen", "mailbox", folder, "uid", "1:3",
            ])?;
            old.doveadm(&[
                "flags",
                "add",
                "-u",
                user,
                "\\Flagged",
                "mailbox",
                folder,
                "uid",
                "2",
            ])?;
        }
    }

    let old_mta = Postfix::builder()
        .name("old-mta")
        .lmtp_to("example.com", old.lmtp_port())
        .start()?;
    let new_mta = Postfix::builder()
        .name("new-mta")
        .lmtp_to("example.com", new.lmtp_port())
        .start()?;
    let dns = Bind::builder()
        .zone(Zone::new("example.com").mx(10, "mail.old.example.net.", OLD_MX_TTL))
        .start()?;

    let manifest = dir.join("migration.yaml");
    std::fs::write(
        &manifest,
        manifest_text(&old, &new, &old_mta, &new_mta, &dns),
    )?;
    std::fs::write(
        dir.join("servers.env"),
        format!(
            "DNS_PORT={}\nOLD_SMTP_PORT={}\n",
            dns.port(),
            old_mta.smtp_port()
        ),
    )?;
    println!("ready");
    std::io::stdout().flush()?;

    // Keep running until whoever started us closes our standard input.
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
    Ok(())
}

fn sample(user: &str, folder: &str, n: usize) -> Vec<u8> {
    let day = 1 + (n % 28);
    format!(
        "Message-ID: <demo-{n}-{}@example.com>\r\n\
         Date: Mon, {day:02} Jun 2025 10:{:02}:00 +0000\r\n\
         From: Someone <someone@example.org>\r\n\
         To: {user}\r\n\
         Subject: =?UTF-8?Q?Message_{n}_in_{}?=\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\
         \r\n\
         Hello from {folder}, message {n}.\r\n",
        folder.len() * 1000 + n + user.len(),
        n % 60,
        folder
            .replace(' ', "_")
            .replace(|c: char| !c.is_ascii_alphanumeric() && c != '_', "X"),
    )
    .into_bytes()
}

fn manifest_text(
    old: &Dovecot,
    new: &Dovecot,
    old_mta: &Postfix,
    new_mta: &Postfix,
    dns: &Bind,
) -> String {
    let mut mailboxes = String::new();
    for (user, pw, _) in MAILBOXES {
        mailboxes.push_str(&format!(
            "    - address: {user}\n      sourcePassword: {{ value: {pw} }}\n      destinationPassword: {{ value: {} }}\n",
            pw.replace("-old-", "-new-")
        ));
    }
    format!(
        "# Written by mailshift-demo-servers: a whole domain moved between private servers on
# loopback. Inline passwords and keys are for this demonstration only.
apiVersion: mailshift.io/v1alpha1
kind: MailMigration
metadata:
  name: demo
spec:
  domains: [example.com]
  source:
    imap: {{ host: 127.0.0.1, port: {}, tls: starttls, caCertificate: {{ file: {} }} }}
  destination:
    imap: {{ host: 127.0.0.1, port: {}, tls: starttls, caCertificate: {{ file: {} }} }}
  mailboxes:
{mailboxes}  folders:
    sourceLanguage: auto
  sync: {{ concurrency: 3 }}
  dns:
    zone: example.com
    provider:
      rfc2136:
        server: \"{dns}\"
        tsig: {{ name: {key}, algorithm: {alg}, secret: {{ value: \"{secret}\" }} }}
    mx: [{{ preference: 10, exchange: mail.new.example.net. }}]
    cutoverTTL: 30
    checkNameservers: [\"{dns}\"]
  gateway:
    postfix: {{ configDir: {old_mta_dir} }}
    relayTo: \"[127.0.0.1]:{new_smtp}\"
  probe:
    smtp: {{ host: 127.0.0.1, port: {old_smtp}, tls: none }}
    mailbox: alice@example.com
    timeout: 60s
  cutover:
    approved: true
  finalize: {{ deltaSyncAfter: 5s, keepSourceFor: 5s, restoreTTL: 3600 }}
",
        old.imap_port(),
        old.ca_path().display(),
        new.imap_port(),
        new.ca_path().display(),
        dns = dns.server(),
        key = dns.tsig().name,
        alg = dns.tsig().algorithm,
        secret = dns.tsig().secret,
        old_mta_dir = old_mta.config_dir().display(),
        new_smtp = new_mta.smtp_port(),
        old_smtp = old_mta.smtp_port(),
    )
}
