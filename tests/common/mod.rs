//! Shared helpers of the engine's integration tests: Dovecot pairs, manifests, running
//! mailshift (as a library with a Recorder, or as the binary), and reading mailboxes back
//! over IMAP to compare them.

#![allow(dead_code)]

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use mailshift::accounts::{Account, Login};
use mailshift::engine::{Engine, Options, RetryPolicy};
use mailshift::imap::conn::{Connector, Recorder, Side};
use mailshift::spec::{Endpoint, Folders, Secret, TlsMode};
use mailshift::store::CacheStore;
use mailshift_harness::Dovecot;
use mailshift_harness::client::Imap;

pub const USER: &str = "alice@example.com";
pub const PASSWORD: &str = "alice-pw";

/// A message with the usual headers; `id` becomes `<id@test>` (empty: no Message-ID).
pub fn message(id: &str, subject: &str, body: &str) -> Vec<u8> {
    let mid = if id.is_empty() {
        String::new()
    } else {
        format!("Message-ID: <{id}@test>\r\n")
    };
    format!(
        "From: Bob <bob@example.org>\r\nTo: Alice <alice@example.com>\r\nSubject: {subject}\r\n\
         {mid}Date: Sat, 21 Nov 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n"
    )
    .into_bytes()
}

/// Logs in to a harness Dovecot as the test user.
pub fn imap(d: &Dovecot) -> Result<Imap> {
    Imap::login(d.imap_port(), USER, PASSWORD)
}

/// One message as read back: exact bytes, flags (without `\Recent`), INTERNALDATE.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Msg {
    pub body: Vec<u8>,
    pub flags: BTreeSet<String>,
    pub date: String,
}

impl Msg {
    pub fn subject(&self) -> String {
        let text = String::from_utf8_lossy(&self.body);
        text.lines()
            .find_map(|l| l.strip_prefix("Subject: ").map(str::to_owned))
            .unwrap_or_default()
    }
}

/// Every message of `folder` (wire name), read-only (EXAMINE, BODY.PEEK), sorted.
pub fn messages(d: &Dovecot, folder: &str) -> Result<Vec<Msg>> {
    let mut imap = imap(d)?;
    let (_, status) = imap.command_status(&format!("EXAMINE {}", quote(folder)))?;
    if !status.starts_with("OK") {
        bail!("EXAMINE {folder}: {status}");
    }
    let responses = imap.command("UID FETCH 1:* (FLAGS INTERNALDATE BODY.PEEK[])")?;
    let mut out = Vec::new();
    for r in responses {
        if !r.text.contains(" FETCH ") {
            continue;
        }
        let body = r.literals.into_iter().next().context("no body literal")?;
        let flags = between(&r.text, "FLAGS (", ")")
            .split_whitespace()
            .filter(|f| *f != "\\Recent")
            .map(str::to_owned)
            .collect();
        let date = between(&r.text, "INTERNALDATE \"", "\"").to_owned();
        out.push(Msg { body, flags, date });
    }
    imap.logout();
    out.sort();
    Ok(out)
}

/// How many messages `folder` (wire name) holds, by STATUS; 0 when it cannot be asked.
pub fn count(d: &Dovecot, folder: &str) -> usize {
    let Ok(mut imap) = imap(d) else { return 0 };
    let n = imap
        .command(&format!("STATUS {} (MESSAGES)", quote(folder)))
        .ok()
        .and_then(|r| {
            r.iter().find_map(|u| {
                let rest = u.text.split("MESSAGES ").nth(1)?;
                rest.split(|c: char| !c.is_ascii_digit())
                    .next()?
                    .parse()
                    .ok()
            })
        })
        .unwrap_or(0);
    imap.logout();
    n
}

fn between<'a>(text: &'a str, start: &str, end: &str) -> &'a str {
    text.split_once(start)
        .and_then(|(_, rest)| rest.split_once(end))
        .map_or("", |(v, _)| v)
}

pub fn quote(s: &str) -> String {
    mailshift_harness::client::quote(s)
}

/// Folder names (as on the wire) with their LIST attributes.
pub fn folders(d: &Dovecot) -> Result<Vec<(String, String)>> {
    let mut imap = imap(d)?;
    let list = imap.command("LIST \"\" \"*\" RETURN (SPECIAL-USE SUBSCRIBED)")?;
    imap.logout();
    let mut out = Vec::new();
    for r in list {
        let attrs = between(&r.text, "(", ")").to_owned();
        // `* LIST (attrs) "sep" name`
        let after = r.text.rsplit_once(") \"").map_or("", |(_, rest)| rest);
        let name = after.split_once("\" ").map_or("", |(_, n)| n);
        let name = name
            .trim_matches('"')
            .replace("\\\"", "\"")
            .replace("\\\\", "\\");
        let name = if r.literals.is_empty() {
            name
        } else {
            String::from_utf8_lossy(&r.literals[0]).into_owned()
        };
        out.push((name, attrs));
    }
    out.sort();
    Ok(out)
}

/// Appends messages with flags and INTERNALDATE (pipelined).
pub fn load(d: &Dovecot, folder: &str, messages: &[(&str, &str, Vec<u8>)]) -> Result<()> {
    let mut imap = imap(d)?;
    let items: Vec<(&str, &str, &[u8])> = messages
        .iter()
        .map(|(f, date, m)| (*f, *date, m.as_slice()))
        .collect();
    imap.append_many(folder, &items)?;
    imap.logout();
    Ok(())
}

/// A Dovecot with the test user. Without fsync: the tests kill mailshift, never Dovecot
/// mid-write, and fixtures load several times faster.
pub fn dovecot(name: &str) -> mailshift_harness::DovecotBuilder {
    Dovecot::builder()
        .name(name)
        .user(USER, PASSWORD)
        .extra_config("mail_fsync = never")
}

/// The test user's logins on both sides.
pub fn account() -> Account {
    let login = || Login::Password {
        user: USER.into(),
        password: Secret::new(PASSWORD),
    };
    Account {
        address: USER.into(),
        source: login(),
        destination: login(),
    }
}

pub fn endpoint(port: u16) -> Endpoint {
    Endpoint {
        host: "127.0.0.1".into(),
        port: Some(port),
        tls: TlsMode::None,
        ca_certificate: None,
        max_connections: None,
        timeout: None,
    }
}

/// Options for tests: small batches (so that several are in flight) and quick retries.
pub fn test_options() -> Options {
    Options {
        batch_bytes: 64 * 1024,
        batch_messages: 25,
        // Two folders at once, as by default: the crash and retry tests run through it.
        folder_concurrency: 2,
        // Small windows: every first copy of a folder of more than 40 messages into an
        // empty one (the crash and retry tests' among them) goes window by window.
        list_window: 40,
        retry: RetryPolicy {
            initial: std::time::Duration::from_millis(100),
            max: std::time::Duration::from_secs(2),
            attempts: 12,
        },
    }
}

/// An engine between two ports, recording what is sent to the source.
pub fn engine(
    src_port: u16,
    dst_port: u16,
    folders: Option<Folders>,
    store: Arc<dyn CacheStore>,
    recorder: &Recorder,
) -> Arc<Engine> {
    let source = Connector::new(Side::Source, &endpoint(src_port), None)
        .expect("connector")
        .with_recorder(recorder.clone());
    let dest = Connector::new(Side::Destination, &endpoint(dst_port), None).expect("connector");
    Arc::new(Engine::new(source, dest, folders, store).with_options(test_options()))
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// A manifest for the test user between two ports (`tls: none`, inline passwords), with
/// `extra` appended to `spec` (indented by two spaces).
pub fn manifest(name: &str, src_port: u16, dst_port: u16, extra: &str) -> String {
    format!(
        "apiVersion: mailshift.io/v1alpha1
kind: MailMigration
metadata:
  name: {name}
spec:
  source:
    imap: {{ host: 127.0.0.1, port: {src_port}, tls: none }}
  destination:
    imap: {{ host: 127.0.0.1, port: {dst_port}, tls: none }}
  mailboxes:
    - address: {USER}
      sourcePassword: {{ value: {PASSWORD} }}
      destinationPassword: {{ value: {PASSWORD} }}
{extra}"
    )
}

/// `mailshift sync -f m.yaml -o json` in `dir`: its report, whatever the exit status.
pub fn sync_report(dir: &Path) -> serde_json::Value {
    let out = mailshift(dir, &["sync", "-f", "m.yaml", "-o", "json"]);
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// Runs the mailshift binary in `dir`.
pub fn mailshift(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mailshift"))
        .args(args)
        .current_dir(dir)
        .env("RUST_LOG", "warn,mailshift=info")
        .output()
        .expect("mailshift runs")
}

/// `mailshift sync -f m.yaml --state state -o json` in `dir`, which must succeed: its report.
pub fn sync_json(dir: &Path) -> Result<serde_json::Value> {
    let out = mailshift(
        dir,
        &["sync", "-f", "m.yaml", "--state", "state", "-o", "json"],
    );
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(serde_json::from_slice(&out.stdout)?)
}

/// Runs `mailshift sync -f m.yaml --state state` in `dir` and kills it (SIGKILL) as soon as
/// `copied()` reaches `target`, unless it ended first. True when it was killed midway.
pub fn sync_killed_at(dir: &Path, target: usize, copied: impl Fn() -> usize) -> Result<bool> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mailshift"))
        .args(["sync", "-f", "m.yaml", "--state", "state"])
        .current_dir(dir)
        .env("RUST_LOG", "error")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    mailshift_harness::wait::until_true(
        std::time::Duration::from_secs(60),
        "messages to arrive",
        || Ok(child.try_wait()?.is_some() || copied() >= target),
    )?;
    if child.try_wait()?.is_some() {
        return Ok(false);
    }
    child.kill()?;
    child.wait()?;
    Ok(true)
}

/// The commands (first word after the tag, upper-cased, `UID` joined to the next word)
/// in what a Recorder captured, with the full lines.
pub fn commands(sent: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for line in sent.split("\r\n") {
        let mut words = line.split_whitespace();
        let (Some(_tag), Some(verb)) = (words.next(), words.next()) else {
            continue;
        };
        let mut verb = verb.to_ascii_uppercase();
        if verb == "UID" {
            verb = format!("UID {}", words.next().unwrap_or("").to_ascii_uppercase());
        }
        // Literal data and continuation lines start with no tag-like word; keep only lines
        // that look like commands.
        if verb.chars().all(|c| c.is_ascii_uppercase() || c == ' ') {
            out.push((verb, line.to_owned()));
        }
    }
    out
}
