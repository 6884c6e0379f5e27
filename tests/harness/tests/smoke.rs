//! Smoke tests: every harness server really starts, answers and is cleaned up.
//!
//! They talk to the servers over the wire (raw IMAP/SMTP/LMTP conversations, `dig`,
//! `nsupdate`, `openssl s_client`) and wait for asynchronous effects by polling with a
//! deadline, never by sleeping.

use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use mailshift_harness::Nameserver as _;
use mailshift_harness::client::{Imap, LineConn, smtp_send};
use mailshift_harness::{Bind, Certificates, Dovecot, Postfix, TsigKey, Zone, ports, wait};

const DELIVERY_TIMEOUT: Duration = Duration::from_secs(60);

fn message(subject: &str, body: &str) -> Vec<u8> {
    format!(
        "From: Bob <bob@example.org>\r\nTo: Alice <alice@example.com>\r\nSubject: {subject}\r\n\
         Message-ID: <{subject}@harness.test>\r\nDate: Sat, 21 Nov 2026 10:00:00 +0000\r\n\
         MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n"
    )
    .into_bytes()
}

/// The UID in an `OK [APPENDUID <validity> <uid>] ...` status.
fn appenduid(status: &str) -> Result<u32> {
    let rest = status.split("[APPENDUID ").nth(1).context("no APPENDUID")?;
    let uid = rest
        .split_whitespace()
        .nth(1)
        .context("no uid")?
        .trim_end_matches(']');
    Ok(uid.parse()?)
}

#[test]
fn dovecot_imap_append_and_fetch_back_byte_for_byte() -> Result<()> {
    let dovecot = Dovecot::builder()
        .name("smoke-imap")
        .user("alice", "alice-pw")
        .start()?;
    let mut imap = Imap::login(dovecot.imap_port(), "alice", "alice-pw")?;
    let caps = imap.command("CAPABILITY")?;
    let caps = &caps[0].text;
    for cap in ["CONDSTORE", "QRESYNC", "SPECIAL-USE", "UIDPLUS", "LITERAL+"] {
        ensure!(
            caps.split_whitespace().any(|c| c == cap),
            "{cap} missing from {caps}"
        );
    }

    let msg = message("roundtrip", "Héllo, wörld.\r\n.leading dot\r\nlast line");
    let status = imap.append("INBOX", "\\Seen", &msg)?;
    let uid = appenduid(&status)?;
    assert_eq!(
        imap.fetch_raw("INBOX", uid)?,
        msg,
        "FETCH BODY[] differs from what was appended"
    );
    imap.logout();

    // The same message seen directly through doveadm.
    let out = dovecot.doveadm(&[
        "fetch",
        "-u",
        "alice",
        "uid flags",
        "mailbox",
        "INBOX",
        "all",
    ])?;
    assert!(
        out.contains(&format!("uid: {uid}")) && out.contains("\\Seen"),
        "doveadm fetch: {out}"
    );
    Ok(())
}

#[test]
fn dovecot_master_user_runtime_users_and_restart() -> Result<()> {
    let dovecot = Dovecot::builder()
        .name("smoke-master")
        .user("alice@example.com", "alice-pw")
        .master_user("admin", "master-pw")
        .start()?;
    dovecot.save(
        "alice@example.com",
        "INBOX",
        &message("saved", "via doveadm save"),
    )?;

    // SASL PLAIN: authorization identity = target user, authentication identity = master.
    let mut imap = Imap::connect(dovecot.imap_port())?;
    imap.authenticate_plain("alice@example.com", "admin", "master-pw")?;
    let status = imap.command("STATUS INBOX (MESSAGES)")?;
    assert!(
        status[0].text.contains("MESSAGES 1"),
        "{:?}",
        status[0].text
    );
    imap.logout();

    // user*master LOGIN.
    Imap::login(dovecot.imap_port(), "alice@example.com*admin", "master-pw")?.logout();
    // The master may only become users that exist, and needs its own password.
    assert!(Imap::login(dovecot.imap_port(), "nobody@example.com*admin", "master-pw").is_err());
    let mut imap = Imap::connect(dovecot.imap_port())?;
    assert!(
        imap.authenticate_plain("alice@example.com", "admin", "wrong")
            .is_err()
    );
    assert!(Imap::login(dovecot.imap_port(), "alice@example.com", "wrong").is_err());

    // Users added while running can log in at once; changed passwords take effect.
    dovecot.add_user("bob@example.com", "bob-pw")?;
    Imap::login(dovecot.imap_port(), "bob@example.com", "bob-pw")?.logout();
    dovecot.add_user("bob@example.com", "bob-p2")?; // same length, same second
    Imap::login(dovecot.imap_port(), "bob@example.com", "bob-p2")?.logout();
    assert!(Imap::login(dovecot.imap_port(), "bob@example.com", "bob-pw").is_err());

    // Restart keeps ports and mail.
    let ports = dovecot.ports();
    dovecot.restart()?;
    assert_eq!(dovecot.ports(), ports);
    let mut imap = Imap::login(dovecot.imap_port(), "alice@example.com", "alice-pw")?;
    let status = imap.command("STATUS INBOX (MESSAGES)")?;
    assert!(
        status[0].text.contains("MESSAGES 1"),
        "{:?}",
        status[0].text
    );
    imap.logout();

    // stop() really stops; drop cleans the directory.
    let dir = dovecot.dir().to_owned();
    dovecot.stop()?;
    assert!(!dovecot.is_running());
    assert!(!wait::accepts(ports.imap));
    drop(dovecot);
    assert!(!dir.exists(), "{} left behind", dir.display());
    Ok(())
}

#[test]
fn dovecot_folder_layout_options() -> Result<()> {
    // A Courier-like source: no SPECIAL-USE, '.' separator, everything under "INBOX.".
    let old = Dovecot::builder()
        .name("smoke-courier")
        .user("alice", "pw")
        .special_use(false)
        .namespace_prefix("INBOX.")
        .start()?;
    old.create_mailbox("alice", "INBOX.Sent")?;
    old.create_mailbox("alice", "INBOX.Archives.2024")?;
    let mut imap = Imap::login(old.imap_port(), "alice", "pw")?;
    let list: Vec<String> = imap
        .command("LIST \"\" \"*\"")?
        .into_iter()
        .map(|r| r.text)
        .collect();
    let all = list.join("\n");
    assert!(all.contains("\".\" INBOX.Archives.2024"), "{all}");
    assert!(!all.contains("\\Sent"), "no SPECIAL-USE expected: {all}");
    imap.logout();

    // A modern destination: '/' separator, SPECIAL-USE folders created, a size limit.
    let new = Dovecot::builder()
        .name("smoke-modern")
        .user("alice@example.com", "pw")
        .separator('/')
        .create_special_folders(true)
        .max_message_size(4096)
        .start()?;
    new.create_mailbox("alice@example.com", "Archive/2024")?;
    let mut imap = Imap::login(new.imap_port(), "alice@example.com", "pw")?;
    let caps = imap.command("CAPABILITY")?.remove(0).text;
    assert!(caps.contains("APPENDLIMIT=4096"), "{caps}");
    let all: Vec<String> = imap
        .command("LIST \"\" \"*\"")?
        .into_iter()
        .map(|r| r.text)
        .collect();
    let all = all.join("\n");
    assert!(
        all.lines()
            .any(|l| l.contains("\\Sent") && l.ends_with("\"/\" Sent")),
        "Sent with \\Sent expected: {all}"
    );
    assert!(all.contains("\"/\" Archive/2024"), "{all}");
    let big = message("big", &"x".repeat(8000));
    let err = imap.append("INBOX", "", &big).unwrap_err().to_string();
    assert!(err.contains("[LIMIT]"), "oversized APPEND: {err}");
    imap.append("INBOX", "", &message("small", "fits"))?;
    imap.logout();
    Ok(())
}

#[test]
fn dovecot_tls_verifies_against_the_harness_ca_only() -> Result<()> {
    let dovecot = Dovecot::builder()
        .name("smoke-tls")
        .user("alice", "pw")
        .start()?;
    let other_ca = tempfile::tempdir()?;
    let other = Certificates::generate(other_ca.path())?;
    let s_client =
        |extra: &[&str], ca: &std::path::Path, port: u16| -> Result<std::process::Output> {
            Ok(Command::new("openssl")
                .args([
                    "s_client",
                    "-brief",
                    "-verify_return_error",
                    "-verify_ip",
                    "127.0.0.1",
                    "-connect",
                ])
                .arg(format!("127.0.0.1:{port}"))
                .arg("-CAfile")
                .arg(ca)
                .args(extra)
                .stdin(std::process::Stdio::null())
                .output()?)
        };
    for (extra, port) in [
        (&[][..], dovecot.imaps_port()),
        (&["-starttls", "imap"][..], dovecot.imap_port()),
    ] {
        let good = s_client(extra, dovecot.ca_path(), port)?;
        let text = String::from_utf8_lossy(&good.stderr).into_owned()
            + &String::from_utf8_lossy(&good.stdout);
        assert!(
            good.status.success() && text.contains("Verification: OK"),
            "{extra:?}: {text}"
        );
        let bad = s_client(extra, &other.ca_cert, port)?;
        assert!(
            !bad.status.success(),
            "{extra:?}: verified against an unrelated CA"
        );
    }
    Ok(())
}

#[test]
fn postfix_relays_through_transport_maps_into_dovecot_lmtp() -> Result<()> {
    let dovecot = Dovecot::builder()
        .name("smoke-mda")
        .user("alice@example.com", "pw")
        .start()?;
    // new MTA: example.com by LMTP into Dovecot; old MTA: example.com relayed to the new one.
    let new = Postfix::builder()
        .name("smoke-new")
        .lmtp_to("example.com", dovecot.lmtp_port())
        .start()?;
    let old = Postfix::builder()
        .name("smoke-old")
        .relay_to("example.com", new.smtp_port())
        .start()?;
    assert_eq!(old.postconf(&["-h", "mydestination"])?.trim(), "");
    assert!(
        std::fs::read_to_string(old.transport_path())?
            .contains(&format!("[127.0.0.1]:{}", new.smtp_port()))
    );

    let msg = message("via-postfix", "through two MTAs and LMTP");
    let reply = smtp_send(
        old.smtp_port(),
        "bob@example.org",
        &["alice@example.com"],
        &msg,
    )?;
    assert!(reply.starts_with("250"), "{reply}");

    let mut imap = Imap::login(dovecot.imap_port(), "alice@example.com", "pw")?;
    wait::until_true(DELIVERY_TIMEOUT, "the message to arrive in INBOX", || {
        let status = imap.command("STATUS INBOX (MESSAGES)")?;
        Ok(status.iter().any(|r| r.text.contains("MESSAGES 1")))
    })
    .with_context(|| {
        format!(
            "old log:\n{}",
            std::fs::read_to_string(old.log_path()).unwrap_or_default()
        )
    })?;
    let raw = imap.fetch_raw("INBOX", 1)?;
    let text = String::from_utf8_lossy(&raw);
    assert!(
        text.contains("Message-ID: <via-postfix@harness.test>"),
        "{text}"
    );
    assert!(text.contains("through two MTAs and LMTP"), "{text}");
    assert!(
        text.matches("Received: ").count() >= 2,
        "expected both hops in:\n{text}"
    );
    imap.logout();

    // The routing provider's workflow: rewrite the map, postmap, reload.
    old.set_transports(&[
        ("example.com", "lmtp:inet:127.0.0.1:9"),
        ("example.net", "discard:"),
    ])?;
    old.reload()?;
    assert!(old.postqueue(&["-p"])?.contains("Mail queue is empty"));
    Ok(())
}

#[test]
fn postfix_startup_failure_reports_the_log() -> Result<()> {
    let busy = std::net::TcpListener::bind("127.0.0.1:0")?;
    let port = busy.local_addr()?.port();
    let err = Postfix::builder()
        .name("smoke-busy")
        .smtp_port(port)
        .start()
        .unwrap_err();
    let err = format!("{err:#}");
    assert!(err.contains("Address already in use"), "{err}");
    assert!(err.contains("log tail"), "{err}");
    Ok(())
}

/// Reads one (possibly multi-line) SMTP/LMTP reply after sending `send`, checking its code.
fn expect_reply(conn: &mut LineConn, send: Option<&str>, code: &str) -> Result<()> {
    if let Some(line) = send {
        conn.send_line(line)?;
    }
    loop {
        let line = conn.read_text_line()?;
        ensure!(line.starts_with(code), "expected {code}, got {line}");
        if line.as_bytes().get(3) != Some(&b'-') {
            return Ok(());
        }
    }
}

/// Reads ManageSieve response lines up to the final `OK`/`NO`/`BYE` and requires `OK`.
fn sieve_ok(conn: &mut LineConn, what: &str) -> Result<()> {
    loop {
        let line = conn.read_text_line()?;
        if line.starts_with("OK") {
            return Ok(());
        }
        ensure!(
            !line.starts_with("NO") && !line.starts_with("BYE"),
            "{what}: {line}"
        );
    }
}

#[test]
fn managesieve_script_runs_on_lmtp_delivery_and_redirects_via_postfix() -> Result<()> {
    // Dovecot sends Sieve redirects to a Postfix that must know Dovecot's LMTP port, so
    // Postfix's SMTP port is picked first.
    let smtp_port = ports::free_port()?;
    let dovecot = Dovecot::builder()
        .name("smoke-sieve")
        .user("alice", "pw")
        .user("backup", "pw")
        .lmtp_strip_domain(true)
        .submission_host(&format!("127.0.0.1:{smtp_port}"))
        .start()?;
    let _postfix = Postfix::builder()
        .name("smoke-sieve-mta")
        .smtp_port(smtp_port)
        .lmtp_to("example.org", dovecot.lmtp_port())
        .start()?;

    // ManageSieve: log in, upload a script and activate it.
    let mut sieve = LineConn::connect(dovecot.managesieve_port())?;
    sieve_ok(&mut sieve, "greeting")?;
    let auth = mailshift_harness::base64(b"\0alice\0pw");
    sieve.send_line(&format!("AUTHENTICATE \"PLAIN\" \"{auth}\""))?;
    sieve_ok(&mut sieve, "AUTHENTICATE")?;
    let script = "require [\"copy\", \"fileinto\"];\r\n\
                  redirect :copy \"backup@example.org\";\r\n\
                  fileinto \"Sieved\";\r\n";
    sieve.send_line(&format!(
        "PUTSCRIPT \"forward\" {{{}+}}\r\n{script}",
        script.len()
    ))?;
    sieve_ok(&mut sieve, "PUTSCRIPT")?;
    sieve.send_line("SETACTIVE \"forward\"")?;
    sieve_ok(&mut sieve, "SETACTIVE")?;
    sieve.send_line("LOGOUT")?;

    // LMTP delivery (domain stripped: alice@example.com is user alice).
    let mut lmtp = LineConn::connect(dovecot.lmtp_port())?;
    expect_reply(&mut lmtp, None, "220")?;
    expect_reply(&mut lmtp, Some("LHLO harness"), "250")?;
    expect_reply(&mut lmtp, Some("MAIL FROM:<bob@example.net>"), "250")?;
    expect_reply(&mut lmtp, Some("RCPT TO:<alice@example.com>"), "250")?;
    expect_reply(&mut lmtp, Some("RCPT TO:<nobody@example.com>"), "550")?;
    expect_reply(&mut lmtp, Some("DATA"), "354")?;
    lmtp.send(&message("sieved", "filed and forwarded"))?;
    expect_reply(&mut lmtp, Some("."), "250")?;
    expect_reply(&mut lmtp, Some("QUIT"), "221")?;

    // The script filed it (not in INBOX)...
    let sieved = dovecot.doveadm(&["search", "-u", "alice", "mailbox", "Sieved", "all"])?;
    assert_eq!(sieved.lines().count(), 1, "{sieved}");
    let inbox = dovecot.doveadm(&["search", "-u", "alice", "mailbox", "INBOX", "all"])?;
    assert_eq!(inbox.lines().count(), 0, "{inbox}");
    // ...and the copy went out through Postfix back into Dovecot for backup@.
    wait::until_true(
        DELIVERY_TIMEOUT,
        "the redirected copy to reach backup",
        || {
            let found = dovecot.doveadm(&[
                "search",
                "-u",
                "backup",
                "mailbox",
                "INBOX",
                "header",
                "Message-ID",
                "sieved@harness.test",
            ])?;
            Ok(found.lines().count() == 1)
        },
    )?;
    Ok(())
}

#[test]
fn bind_accepts_tsig_updates_and_refuses_bad_keys() -> Result<()> {
    let zone = Zone::new("example.com")
        .mx(10, "mail.example.com.", 3600)
        .a("mail", "192.0.2.10")
        .txt("@", "v=spf1 ip4:192.0.2.10 -all");
    let bind = Bind::builder().name("smoke-ns1").zone(zone).start()?;
    assert_eq!(bind.tsig().algorithm, "hmac-sha256");
    let mx = bind.dig(&["+noall", "+answer", "example.com", "MX"])?;
    assert!(
        mx.contains("3600") && mx.contains("10 mail.example.com."),
        "{mx}"
    );

    // Signed update, then a query sees it.
    bind.nsupdate("zone example.com\nupdate add new.example.com. 300 A 192.0.2.99\n")?;
    assert_eq!(
        bind.dig(&["+short", "new.example.com", "A"])?.trim(),
        "192.0.2.99"
    );

    // Same key name, wrong secret: BADSIG. No key: REFUSED. Nothing changes.
    let wrong = TsigKey {
        secret: mailshift_harness::base64(&[7u8; 32]),
        ..bind.tsig().clone()
    };
    let bad = bind.nsupdate_with_key(
        Some(&wrong),
        "zone example.com\nupdate add bad.example.com. 300 A 192.0.2.98\n",
    )?;
    assert!(!bad.success && bad.stderr.contains("NOTAUTH"), "{bad:?}");
    let unsigned = bind.nsupdate_with_key(
        None,
        "zone example.com\nupdate add bad.example.com. 300 A 192.0.2.98\n",
    )?;
    assert!(
        !unsigned.success && unsigned.stderr.contains("REFUSED"),
        "{unsigned:?}"
    );
    assert_eq!(bind.dig(&["+short", "bad.example.com", "A"])?.trim(), "");
    Ok(())
}

#[test]
fn bind_secondary_lags_until_refreshed_or_notified() -> Result<()> {
    let primary = Bind::builder()
        .name("smoke-primary")
        .zone(Zone::new("example.com").mx(10, "old.example.net.", 3600))
        .start()?;
    let secondary = Bind::secondary_of(&primary).start()?;
    assert!(secondary.is_secondary());
    assert_eq!(secondary.tsig(), primary.tsig());
    assert_eq!(secondary.serial("example.com")?, 1);

    // No NOTIFY: the secondary keeps the old answer...
    primary.nsupdate("zone example.com\nupdate delete example.com. MX\nupdate add example.com. 300 MX 10 new.example.net.\n")?;
    assert_eq!(primary.serial("example.com")?, 2);
    assert_eq!(
        secondary.dig(&["+short", "example.com", "MX"])?.trim(),
        "10 old.example.net."
    );
    // ...until told to refresh.
    secondary.refresh_zone("example.com")?;
    wait::until_true(
        DELIVERY_TIMEOUT,
        "the secondary to transfer serial 2",
        || Ok(secondary.serial("example.com")? == 2),
    )?;
    assert_eq!(
        secondary.dig(&["+short", "example.com", "MX"])?.trim(),
        "10 new.example.net."
    );

    // With NOTIFY the secondary follows by itself.
    primary.add_also_notify(secondary.port())?;
    primary.nsupdate("zone example.com\nupdate add spf.example.com. 300 TXT \"v=spf1 -all\"\n")?;
    wait::until_true(
        DELIVERY_TIMEOUT,
        "the secondary to be notified of serial 3",
        || Ok(secondary.serial("example.com")? == 3),
    )?;

    // A paused server does not answer; resumed, it does.
    secondary.pause()?;
    assert!(
        secondary
            .dig(&["+short", "+time=1", "+tries=1", "example.com", "SOA"])
            .is_err()
    );
    secondary.resume()?;
    assert_eq!(secondary.serial("example.com")?, 3);
    Ok(())
}

#[test]
fn free_ports_are_distinct() -> Result<()> {
    let ports: Vec<u16> = (0..50).map(|_| ports::free_port()).collect::<Result<_>>()?;
    let mut sorted = ports.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), ports.len());
    Ok(())
}
