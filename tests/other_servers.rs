//! mailshift against the other servers it meets in production: Cyrus IMAP 3.6 and
//! Courier-IMAP 5.0 (private harness instances), in both directions with Dovecot.
//!
//! Each case runs the CLI as a user would (`folders`, `sync`, `verify` on a manifest) and
//! checks: an exact copy (bytes, flags and keywords, INTERNALDATE as an instant: Cyrus
//! writes ` 1-Nov-2021` in its own zone, Dovecot `01-Nov-2021` in the sender's), a re-sync
//! that copies nothing, and a source left exactly as it was. Plus what is particular to
//! each server: Cyrus' two namespace modes, its other users' and shared folders (never the
//! user's own, never copied), its quota; Courier's `INBOX.` namespace without SPECIAL-USE,
//! CONDSTORE or LITERAL+ and its `\Noselect` parents.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Output;

use anyhow::{Context, Result, bail};
use common::{PASSWORD, USER, mailshift, message};
use mailshift_harness::client::{Imap, quote};
use mailshift_harness::{Courier, Cyrus, Dovecot};

/// A login on one of the harness servers.
#[derive(Clone, Copy)]
struct Login<'a> {
    port: u16,
    user: &'a str,
    password: &'a str,
}

fn dovecot_login(d: &Dovecot) -> Login<'static> {
    Login {
        port: d.imap_port(),
        user: USER,
        password: PASSWORD,
    }
}

/// Cyrus' user for the test account: plain login names there (no virtual domains).
const CYRUS_USER: &str = "alice";

fn cyrus_login(c: &Cyrus) -> Login<'static> {
    Login {
        port: c.imap_port(),
        user: CYRUS_USER,
        password: PASSWORD,
    }
}

fn courier_login(c: &Courier) -> Login<'static> {
    Login {
        port: c.imap_port(),
        user: USER,
        password: PASSWORD,
    }
}

/// One message as read back: exact bytes, flags (without `\Recent`), INTERNALDATE as
/// seconds since the epoch.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Msg {
    body: Vec<u8>,
    flags: BTreeSet<String>,
    date: i64,
}

/// Every message of `folder` (wire name), read-only (EXAMINE, BODY.PEEK), sorted.
fn messages(login: Login<'_>, folder: &str) -> Result<Vec<Msg>> {
    let mut imap = Imap::login(login.port, login.user, login.password)?;
    let (responses, status) = imap.command_status(&format!("EXAMINE {}", quote(folder)))?;
    if !status.starts_with("OK") {
        bail!("EXAMINE {folder}: {status}");
    }
    let exists = responses
        .iter()
        .find_map(|r| r.text.strip_suffix(" EXISTS"))
        .and_then(|t| t.trim_start_matches("* ").parse::<u32>().ok())
        .unwrap_or(0);
    let mut out = Vec::new();
    if exists > 0 {
        for r in imap.command("FETCH 1:* (FLAGS INTERNALDATE BODY.PEEK[])")? {
            if !r.text.contains(" FETCH ") {
                continue;
            }
            let body = r.literals.into_iter().next().context("no body literal")?;
            let flags = between(&r.text, "FLAGS (", ")")
                .split_whitespace()
                .filter(|f| !f.eq_ignore_ascii_case("\\Recent"))
                .map(str::to_owned)
                .collect();
            let date = internaldate(between(&r.text, "INTERNALDATE \"", "\""))?;
            out.push(Msg { body, flags, date });
        }
    }
    imap.logout();
    out.sort();
    Ok(out)
}

fn between<'a>(text: &'a str, start: &str, end: &str) -> &'a str {
    text.split_once(start)
        .and_then(|(_, rest)| rest.split_once(end))
        .map_or("", |(v, _)| v)
}

/// An IMAP date-time (`01-Nov-2021 10:00:00 +0100`, or ` 1-Nov-...` as Cyrus writes it)
/// as seconds since the epoch.
fn internaldate(text: &str) -> Result<i64> {
    chrono::DateTime::parse_from_str(text.trim(), "%d-%b-%Y %H:%M:%S %z")
        .map(|d| d.timestamp())
        .with_context(|| format!("INTERNALDATE {text:?}"))
}

/// Folder names as on the wire with their LIST attributes, sorted.
fn folders(login: Login<'_>) -> Result<Vec<(String, String)>> {
    let mut imap = Imap::login(login.port, login.user, login.password)?;
    let list = imap.command("LIST \"\" \"*\"")?;
    imap.logout();
    let mut out = Vec::new();
    for r in list {
        let attrs = between(&r.text, "(", ")").to_owned();
        // `* LIST (attrs) "sep" name`, the name an atom, a quoted string or a literal.
        let after = r.text.split_once(") ").map_or("", |(_, rest)| rest);
        let name = after
            .strip_prefix("NIL ")
            .or_else(|| {
                after
                    .strip_prefix('"')
                    .and_then(|s| s.split_once("\" ").map(|(_, n)| n))
            })
            .unwrap_or("");
        let name = if let Some(literal) = r.literals.first() {
            String::from_utf8_lossy(literal).into_owned()
        } else if let Some(quoted) = name.strip_prefix('"').and_then(|n| n.strip_suffix('"')) {
            quoted.replace("\\\"", "\"").replace("\\\\", "\\")
        } else {
            name.to_owned()
        };
        out.push((name, attrs));
    }
    out.sort();
    Ok(out)
}

fn names(login: Login<'_>) -> Result<Vec<String>> {
    Ok(folders(login)?.into_iter().map(|(n, _)| n).collect())
}

/// Everything a login sees: each selectable folder with its messages.
fn snapshot(login: Login<'_>) -> Result<BTreeMap<String, Vec<Msg>>> {
    let mut all = BTreeMap::new();
    for (name, attrs) in folders(login)? {
        if attrs.to_ascii_lowercase().contains("\\noselect") {
            continue;
        }
        all.insert(name.clone(), messages(login, &name)?);
    }
    Ok(all)
}

/// A manifest for the test account between two logins (`tls: none`, inline passwords).
fn manifest(name: &str, src: Login<'_>, dst: Login<'_>) -> String {
    format!(
        "apiVersion: mailshift.io/v1alpha1
kind: MailMigration
metadata:
  name: {name}
spec:
  source:
    imap: {{ host: 127.0.0.1, port: {sport}, tls: none }}
  destination:
    imap: {{ host: 127.0.0.1, port: {dport}, tls: none }}
  mailboxes:
    - address: {USER}
      sourceUser: {suser}
      destinationUser: {duser}
      sourcePassword: {{ value: {spw} }}
      destinationPassword: {{ value: {dpw} }}
",
        sport = src.port,
        dport = dst.port,
        suser = src.user,
        duser = dst.user,
        spw = src.password,
        dpw = dst.password,
    )
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `mailshift sync -o json`, its exit code and report.
fn sync(dir: &Path) -> Result<(Option<i32>, serde_json::Value, String)> {
    let out = mailshift(dir, &["sync", "-f", "m.yaml", "-o", "json"]);
    let report = serde_json::from_slice(&out.stdout)
        .with_context(|| format!("sync printed no JSON report:\n{}", text(&out)))?;
    Ok((out.status.code(), report, text(&out)))
}

/// `mailshift folders -o json`: the one mailbox's folder plans.
fn folder_plans(dir: &Path) -> Result<Vec<serde_json::Value>> {
    let out = mailshift(dir, &["folders", "-f", "m.yaml", "-o", "json"]);
    assert!(out.status.success(), "{}", text(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    json[0]["folders"]
        .as_array()
        .cloned()
        .with_context(|| format!("no folders in {json}"))
}

fn verify(dir: &Path) {
    let out = mailshift(dir, &["verify", "-f", "m.yaml"]);
    assert!(out.status.success(), "verify: {}", text(&out));
}

/// The whole check of one migration: `folders` maps every source folder to the expected
/// destination and lists `not_personal` as skipped (other users' and shared folders),
/// `sync` copies exactly, a second `sync` copies nothing, `verify` agrees, and the source
/// is unchanged. `pairs` maps source to destination folder (wire names).
fn migrate_and_check(
    name: &str,
    src: Login<'_>,
    dst: Login<'_>,
    pairs: &[(&str, &str)],
    not_personal: &[&str],
    expected_messages: u64,
) -> Result<()> {
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("m.yaml"), manifest(name, src, dst))?;
    let before = snapshot(src)?;

    let plans = folder_plans(dir.path())?;
    for (s, d) in pairs {
        let plan = plans
            .iter()
            .find(|p| p["source"] == *s)
            .unwrap_or_else(|| panic!("{s} is not in `folders`: {plans:#?}"));
        assert_eq!(plan["destination"], *d, "{s}: {plan}");
    }
    for s in not_personal {
        let plan = plans
            .iter()
            .find(|p| p["source"] == *s)
            .unwrap_or_else(|| panic!("{s} is not in `folders`: {plans:#?}"));
        assert_eq!(plan["rule"], "not-personal", "{s} is skipped: {plan}");
        assert!(plan["destination"].is_null(), "{s} is not copied: {plan}");
    }
    let skipped = plans.iter().filter(|p| p["rule"] == "not-personal").count();
    assert_eq!(skipped, not_personal.len(), "{plans:#?}");

    let (code, report, out) = sync(dir.path())?;
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(report["perfect"], true, "{report:#}");
    assert_eq!(
        report["totals"]["messagesTransferred"], expected_messages,
        "{report:#}"
    );
    for (s, d) in pairs {
        let a = messages(src, s)?;
        assert!(!a.is_empty(), "{s} has messages");
        assert_eq!(a, messages(dst, d)?, "{s} → {d} is not an exact copy");
    }

    let (code, again, out) = sync(dir.path())?;
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(again["totals"]["messagesTransferred"], 0, "{again:#}");
    assert_eq!(again["perfect"], true, "{again:#}");
    verify(dir.path());
    assert_eq!(snapshot(src)?, before, "the source changed");
    Ok(())
}

const DATES: [&str; 4] = [
    "01-Nov-2021 09:05:07 +0000",
    "07-Mar-2019 08:09:10 +0530",
    "31-Dec-2020 23:59:59 -0800",
    "02-Jan-2024 00:00:00 +0100",
];
const FLAGS: [&str; 5] = [
    "",
    "\\Seen",
    "\\Seen \\Answered $Label1",
    "\\Flagged Work",
    "\\Draft",
];

/// `n` messages with varied flags, keywords, dates and sizes; ids start with `prefix`.
fn corpus(prefix: &str, n: usize) -> Vec<(&'static str, &'static str, Vec<u8>)> {
    (0..n)
        .map(|i| {
            let body = format!("Body {i}\r\n{}", "a line of text\r\n".repeat(i * 5));
            (
                FLAGS[i % FLAGS.len()],
                DATES[i % DATES.len()],
                message(&format!("{prefix}{i}"), &format!("{prefix} {i}"), &body),
            )
        })
        .collect()
}

fn refs<'a>(
    messages: &'a [(&'static str, &'static str, Vec<u8>)],
) -> Vec<(&'a str, &'a str, &'a [u8])> {
    messages
        .iter()
        .map(|(f, d, m)| (*f, *d, m.as_slice()))
        .collect()
}

/// A Dovecot source holding the test account's mail in INBOX, Sent, Archive.2024.
fn dovecot_source(name: &str) -> Result<Dovecot> {
    let src = common::dovecot(name).start()?;
    for f in ["Sent", "Archive", "Archive.2024"] {
        src.create_mailbox(USER, f)?;
    }
    common::load(&src, "INBOX", &corpus("in", 12))?;
    common::load(&src, "Sent", &corpus("sent", 4))?;
    common::load(&src, "Archive.2024", &corpus("arch", 3))?;
    Ok(src)
}

#[test]
fn dovecot_to_cyrus_with_folders_under_inbox() -> Result<()> {
    let src = dovecot_source("cyrus-std-src")?;
    let dst = Cyrus::builder()
        .name("std-dst")
        .user(CYRUS_USER, PASSWORD)
        .start()?;
    migrate_and_check(
        "to-cyrus-std",
        dovecot_login(&src),
        cyrus_login(&dst),
        &[
            ("INBOX", "INBOX"),
            ("Sent", "INBOX.Sent"),
            ("Archive.2024", "INBOX.Archive.2024"),
        ],
        &[],
        19,
    )?;
    let got = names(cyrus_login(&dst))?;
    assert!(
        got.iter().all(|n| n == "INBOX" || n.starts_with("INBOX.")),
        "{got:?}"
    );
    Ok(())
}

#[test]
fn dovecot_to_cyrus_with_altnamespace_and_slash() -> Result<()> {
    let src = dovecot_source("cyrus-alt-src")?;
    let dst = Cyrus::builder()
        .name("alt-dst")
        .user(CYRUS_USER, PASSWORD)
        .altnamespace(true)
        .unixhierarchysep(true)
        .start()?;
    migrate_and_check(
        "to-cyrus-alt",
        dovecot_login(&src),
        cyrus_login(&dst),
        &[
            ("INBOX", "INBOX"),
            ("Sent", "Sent"),
            ("Archive.2024", "Archive/2024"),
        ],
        &[],
        19,
    )?;
    let got = names(cyrus_login(&dst))?;
    assert!(got.contains(&"Archive/2024".to_string()), "{got:?}");
    assert!(!got.iter().any(|n| n.starts_with("INBOX/")), "{got:?}");
    Ok(())
}

/// A Cyrus source where alice sees, besides her own folders, bob's `Projects` and
/// `Sent` (shared with her) and the shared folder `announce`, all with mail in them.
fn cyrus_with_foreign_folders(name: &str, altnamespace: bool) -> Result<Cyrus> {
    let src = Cyrus::builder()
        .name(name)
        .user(CYRUS_USER, PASSWORD)
        .user("bob", "bob-pw")
        .altnamespace(altnamespace)
        .start()?;
    src.create_mailbox(CYRUS_USER, "Sent")?;
    src.create_mailbox(CYRUS_USER, "Projects")?;
    src.append(CYRUS_USER, "INBOX", &refs(&corpus("own", 6)))?;
    src.append(
        CYRUS_USER,
        &src.personal_name("Sent"),
        &refs(&corpus("own-sent", 2)),
    )?;
    src.append(
        CYRUS_USER,
        &src.personal_name("Projects"),
        &refs(&corpus("own-proj", 2)),
    )?;
    for folder in ["Projects", "Sent"] {
        let mailbox = src.user_mailbox("bob", folder);
        src.create_admin_mailbox(&mailbox, &[(CYRUS_USER, "lrs")])?;
        src.append("bob", &src.personal_name(folder), &refs(&corpus("bob", 3)))?;
    }
    src.create_admin_mailbox("announce", &[(CYRUS_USER, "lrs"), ("bob", "lrsi")])?;
    src.append(
        "bob",
        &src.shared_name("announce"),
        &refs(&corpus("ann", 2)),
    )?;
    Ok(src)
}

/// `Other Users/bob/...` and `Shared Folders/announce` (altnamespace), each a namespace
/// of its own in NAMESPACE.
#[test]
fn cyrus_to_dovecot_skips_other_users_and_shared_folders_with_altnamespace() -> Result<()> {
    cyrus_to_dovecot_copies_only_the_users_own_folders(true)
}

/// `user.bob...` and `announce` (altnamespace off): Cyrus' shared namespace then has the
/// empty prefix, `(("INBOX." ".")) (("user." ".")) (("" "."))`, so a top-level folder
/// outside `INBOX.` and `user.` is a shared one.
#[test]
fn cyrus_to_dovecot_skips_other_users_and_shared_folders_in_the_standard_namespace() -> Result<()> {
    cyrus_to_dovecot_copies_only_the_users_own_folders(false)
}

fn cyrus_to_dovecot_copies_only_the_users_own_folders(altnamespace: bool) -> Result<()> {
    let label = if altnamespace { "alt" } else { "std" };
    let src = cyrus_with_foreign_folders(&format!("foreign-{label}"), altnamespace)?;
    let dst = common::dovecot(&format!("foreign-{label}-dst")).start()?;
    let foreign = [
        src.other_user_name("bob", "Projects"),
        src.other_user_name("bob", "Sent"),
        src.shared_name("announce"),
    ];
    let visible = names(cyrus_login(&src))?;
    for f in &foreign {
        assert!(visible.contains(f), "{f} visible: {visible:?}");
    }
    let own = |f: &str| src.personal_name(f);
    let foreign: Vec<&str> = foreign.iter().map(String::as_str).collect();
    migrate_and_check(
        &format!("from-cyrus-{label}"),
        cyrus_login(&src),
        dovecot_login(&dst),
        &[
            ("INBOX", "INBOX"),
            (own("Sent").as_str(), "Sent"),
            (own("Projects").as_str(), "Projects"),
        ],
        &foreign,
        10,
    )?;
    // Nothing of bob's or of the shared folder reached alice's destination.
    let got = names(dovecot_login(&dst))?;
    assert_eq!(got, ["INBOX", "Projects", "Sent"]);
    Ok(())
}

#[test]
fn courier_to_dovecot() -> Result<()> {
    let src = Courier::builder()
        .name("src")
        .user(USER, PASSWORD)
        .start()?;
    // Created deep: INBOX.Archive is a \Noselect parent on Courier.
    for f in ["INBOX.Sent", "INBOX.Archive.2024"] {
        src.create_mailbox(USER, f)?;
    }
    let parent = folders(courier_login(&src))?;
    assert!(
        parent
            .iter()
            .any(|(n, a)| n == "INBOX.Archive" && a.contains("\\Noselect")),
        "{parent:?}"
    );
    src.append(USER, "INBOX", &refs(&corpus("cin", 8)))?;
    src.append(USER, "INBOX.Sent", &refs(&corpus("csent", 3)))?;
    src.append(USER, "INBOX.Archive.2024", &refs(&corpus("carch", 2)))?;
    let dst = common::dovecot("courier-dst").start()?;
    migrate_and_check(
        "from-courier",
        courier_login(&src),
        dovecot_login(&dst),
        &[
            ("INBOX", "INBOX"),
            ("INBOX.Sent", "Sent"),
            ("INBOX.Archive.2024", "Archive.2024"),
        ],
        &[],
        13,
    )?;
    let got = names(dovecot_login(&dst))?;
    assert!(!got.iter().any(|n| n.starts_with("INBOX.")), "{got:?}");
    Ok(())
}

#[test]
fn dovecot_to_courier() -> Result<()> {
    let src = dovecot_source("courier-src")?;
    let dst = Courier::builder()
        .name("dst")
        .user(USER, PASSWORD)
        .start()?;
    migrate_and_check(
        "to-courier",
        dovecot_login(&src),
        courier_login(&dst),
        &[
            ("INBOX", "INBOX"),
            ("Sent", "INBOX.Sent"),
            ("Archive.2024", "INBOX.Archive.2024"),
        ],
        &[],
        19,
    )?;
    let got = names(courier_login(&dst))?;
    assert!(
        got.iter().all(|n| n == "INBOX" || n.starts_with("INBOX.")),
        "{got:?}"
    );
    Ok(())
}

#[test]
fn cyrus_over_quota_refuses_and_a_raised_quota_lets_the_rest_through() -> Result<()> {
    let src = common::dovecot("quota-src").start()?;
    // 30 messages of about 8 KiB each; the destination holds 100 KiB.
    let big: Vec<(&str, &str, Vec<u8>)> = (0..30)
        .map(|i| {
            let body = format!(
                "Quota {i}\r\n{}",
                "a line of about eighty characters, repeated to make the message big\r\n"
                    .repeat(110)
            );
            (
                FLAGS[i % FLAGS.len()],
                DATES[i % DATES.len()],
                message(&format!("q{i}"), &format!("Quota {i}"), &body),
            )
        })
        .collect();
    common::load(&src, "INBOX", &big)?;
    let dst = Cyrus::builder()
        .name("quota-dst")
        .user(CYRUS_USER, PASSWORD)
        .quota(CYRUS_USER, 100)
        .start()?;
    let dir = tempfile::tempdir()?;
    std::fs::write(
        dir.path().join("m.yaml"),
        manifest("quota", dovecot_login(&src), cyrus_login(&dst)),
    )?;
    let before = snapshot(dovecot_login(&src))?;

    let (code, report, out) = sync(dir.path())?;
    assert_eq!(code, Some(1), "over quota is not a success: {out}");
    let refused = report["totals"]["refused"].as_u64().unwrap_or(0);
    let copied = report["totals"]["messagesTransferred"]
        .as_u64()
        .unwrap_or(0);
    assert!(refused > 0 && copied > 0, "{report:#}");
    assert_eq!(refused + copied, 30, "{report:#}");
    let inbox = &report["mailboxes"][0]["folders"][0];
    let reasons = inbox["refused"].to_string().to_ascii_lowercase();
    assert!(
        reasons.contains("quota"),
        "the reason is reported: {inbox:#}"
    );
    assert_eq!(
        messages(cyrus_login(&dst), "INBOX")?.len() as u64,
        copied,
        "{}",
        dst.log_tail(20)
    );

    // The admin raises the quota: the next run copies what was refused.
    dst.set_quota(CYRUS_USER, Some(100_000))?;
    let (code, report, out) = sync(dir.path())?;
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(report["totals"]["refused"], 0, "{report:#}");
    assert_eq!(
        report["totals"]["messagesTransferred"], refused,
        "{report:#}"
    );
    assert_eq!(
        messages(dovecot_login(&src), "INBOX")?,
        messages(cyrus_login(&dst), "INBOX")?
    );
    let (code, again, out) = sync(dir.path())?;
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(again["totals"]["messagesTransferred"], 0, "{again:#}");
    verify(dir.path());
    assert_eq!(snapshot(dovecot_login(&src))?, before, "the source changed");
    Ok(())
}

/// `Release v1.2` on Cyrus (`/` separator, where `.` is an ordinary character) into a
/// Dovecot whose Maildir++ store refuses `.` in names under a `/` separator. The first
/// refusal of CREATE teaches the mapping to write `.` as `_`: the folder is created as
/// `Release v1_2` and copied, no folder fails, every folder is reported with its real
/// count, and `folders` shows the escape from then on.
#[test]
fn a_character_the_destination_refuses_in_names_is_escaped() -> Result<()> {
    let src = Cyrus::builder()
        .name("dot-src")
        .user(CYRUS_USER, PASSWORD)
        .altnamespace(true)
        .unixhierarchysep(true)
        .start()?;
    src.create_mailbox(CYRUS_USER, "Release v1.2")?;
    src.create_mailbox(CYRUS_USER, "Projects")?;
    src.create_mailbox(CYRUS_USER, "Projects/v2.0 plans")?;
    src.append(CYRUS_USER, "Release v1.2", &refs(&corpus("rel", 3)))?;
    src.append(CYRUS_USER, "Projects/v2.0 plans", &refs(&corpus("plan", 2)))?;
    // Maildir++ (no LAYOUT=fs) under a `/` separator: `.` is the store's own separator.
    let dst = common::dovecot("dot-dst")
        .separator('/')
        .extra_config("mail_location = maildir:~/Maildir")
        .start()?;
    let dir = tempfile::tempdir()?;
    std::fs::write(
        dir.path().join("m.yaml"),
        manifest("dot", cyrus_login(&src), dovecot_login(&dst)),
    )?;
    let before = snapshot(cyrus_login(&src))?;

    let (code, report, out) = sync(dir.path())?;
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(report["totals"]["messagesTransferred"], 5, "{report:#}");
    let folder = |name: &str| {
        report["mailboxes"][0]["folders"]
            .as_array()
            .and_then(|f| f.iter().find(|f| f["source"] == name).cloned())
            .unwrap_or_else(|| panic!("{name} reported: {report:#}"))
    };
    let release = folder("Release v1.2");
    assert_eq!(release["destination"], "Release v1_2", "{release:#}");
    assert_eq!(release["sourceMessages"], 3, "{release:#}");
    assert_eq!(
        folder("Projects/v2.0 plans")["destination"],
        "Projects/v2_0 plans"
    );
    assert_eq!(
        messages(dovecot_login(&dst), "Release v1_2")?,
        messages(cyrus_login(&src), "Release v1.2")?
    );

    // Known from now on: `folders` says so before anything more is copied.
    let plans = folder_plans(dir.path())?;
    let plan = plans
        .iter()
        .find(|p| p["source"] == "Release v1.2")
        .expect("planned");
    assert_eq!(plan["destination"], "Release v1_2", "{plan:#}");
    let out = mailshift(dir.path(), &["folders", "-f", "m.yaml"]);
    assert!(
        text(&out).contains(
            "`Release v1.2` contains `.`, which the destination refuses in names: written with `_`"
        ),
        "{}",
        text(&out)
    );
    let (code, report, out) = sync(dir.path())?;
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(report["totals"]["messagesTransferred"], 0, "{report:#}");
    verify(dir.path());
    assert_eq!(
        snapshot(cyrus_login(&src))?,
        before,
        "the source is unchanged"
    );
    Ok(())
}
