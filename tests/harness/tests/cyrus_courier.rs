//! The Cyrus and Courier harness servers start, authenticate, store mail, show the
//! namespaces they are configured for, log, and stop cleanly.

use std::time::Instant;

use anyhow::Result;
use mailshift_harness::client::Imap;
use mailshift_harness::{Courier, Cyrus, wait};

fn list(imap: &mut Imap) -> Result<Vec<String>> {
    let mut names: Vec<String> = imap
        .command("LIST \"\" \"*\"")?
        .into_iter()
        .map(|r| r.text + "\n")
        .collect();
    names.sort();
    Ok(names)
}

#[test]
fn cyrus_shows_own_other_users_and_shared_folders() -> Result<()> {
    let started = Instant::now();
    let cyrus = Cyrus::builder()
        .name("smoke")
        .user("alice", "alice-pw")
        .user("bob", "bob-pw")
        .altnamespace(true)
        .unixhierarchysep(true)
        .quota("alice", 1000)
        .start()?;
    let took = started.elapsed();
    cyrus.create_mailbox("alice", "Sent")?;
    cyrus.append(
        "alice",
        "Sent",
        &[(
            "\\Seen",
            "01-Nov-2021 10:00:00 +0000",
            b"Subject: x\r\n\r\nhi\r\n",
        )],
    )?;
    cyrus.create_admin_mailbox(&cyrus.user_mailbox("bob", "Projects"), &[("alice", "lr")])?;
    cyrus.create_admin_mailbox("announce", &[("alice", "lrs")])?;
    let mut imap = cyrus.imap("alice")?;
    let ns = imap.command("NAMESPACE")?;
    assert!(ns[0].text.contains("Other Users"), "{:?}", ns[0].text);
    let names = list(&mut imap)?.concat();
    assert!(names.contains("\"/\" Sent\n"), "{names}");
    assert!(names.contains("Other Users/bob/Projects"), "{names}");
    assert!(names.contains("Shared Folders/announce"), "{names}");
    imap.logout();
    assert_eq!(cyrus.quota("alice")?.map(|q| q.1), Some(1000));
    cyrus.set_quota("alice", Some(2000))?;
    assert_eq!(cyrus.quota("alice")?.map(|q| q.1), Some(2000));
    let t = Instant::now();
    assert!(Imap::login(cyrus.imap_port(), "alice", "wrong").is_err());
    eprintln!("bad login {:?}", t.elapsed());
    wait::until_true(wait::STOP_TIMEOUT, "Cyrus to log the login", || {
        Ok(std::fs::read_to_string(cyrus.log_path())?.contains("login:"))
    })?;
    let port = cyrus.imap_port();
    drop(cyrus);
    assert!(!wait::accepts(port), "stopped on drop");
    assert!(took.as_secs() < 10, "Cyrus took {took:?} to start");
    Ok(())
}

#[test]
fn cyrus_without_altnamespace_puts_folders_under_inbox() -> Result<()> {
    let cyrus = Cyrus::builder()
        .name("smoke-std")
        .user("alice", "alice-pw")
        .user("bob", "bob-pw")
        .start()?;
    cyrus.create_mailbox("alice", "Archive")?;
    cyrus.create_admin_mailbox(&cyrus.user_mailbox("bob", "Sent"), &[("alice", "lr")])?;
    let mut imap = cyrus.imap("alice")?;
    let names = list(&mut imap)?.concat();
    assert!(names.contains("\".\" INBOX.Archive\n"), "{names}");
    assert!(names.contains("user.bob.Sent"), "{names}");
    imap.logout();
    Ok(())
}

#[test]
fn courier_stores_mail_in_its_private_namespace() -> Result<()> {
    let started = Instant::now();
    let courier = Courier::builder()
        .name("smoke")
        .user("alice@example.com", "alice-pw")
        .start()?;
    let took = started.elapsed();
    courier.create_mailbox("alice@example.com", "INBOX.Sent")?;
    courier.append(
        "alice@example.com",
        "INBOX.Sent",
        &[(
            "\\Seen $Label1",
            "01-Nov-2021 10:00:00 +0000",
            b"Subject: x\r\n\r\nhi\r\n",
        )],
    )?;
    let mut imap = courier.imap("alice@example.com")?;
    let ns = imap.command("NAMESPACE")?;
    assert!(
        ns[0].text.contains("((\"INBOX.\" \".\"))"),
        "{:?}",
        ns[0].text
    );
    let names = list(&mut imap)?.concat();
    assert!(names.contains("INBOX.Sent"), "{names}");
    imap.command("EXAMINE INBOX.Sent")?;
    let fetch = imap.command("FETCH 1 (FLAGS INTERNALDATE)")?;
    assert!(fetch[0].text.contains("$Label1"), "{:?}", fetch[0].text);
    imap.logout();
    courier.add_user("bob@example.com", "bob-pw")?;
    Imap::login(courier.imap_port(), "bob@example.com", "bob-pw")?.logout();
    // Nothing of the instance is visible outside its namespace.
    assert!(
        !std::path::Path::new("/etc/courier/userdb.dat").exists()
            || std::fs::read_to_string("/etc/courier/userdb")
                .map_or(true, |u| !u.contains("alice@example.com"))
    );
    let port = courier.imap_port();
    drop(courier);
    assert!(!wait::accepts(port), "stopped on drop");
    assert!(took.as_secs() < 10, "Courier took {took:?} to start");
    Ok(())
}
