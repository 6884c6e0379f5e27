//! `mailshift-bench loop`: the reconcile loop at the size of real domains. For each number
//! of mailboxes N (a few small messages each), a mailbox-only migration between two private
//! Dovecots is carried out twice into fresh destinations: once by `mailshift sync` then
//! `mailshift verify` (the engine alone), once by `mailshift apply` (the loop: login checks,
//! copies, verifications, completion). Reported per N: wall times and their ratio, peak
//! RSS, and the logins per mailbox each server accepted during `apply` (from its log).

use std::fmt::Write as _;
use std::fs;
use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};
use mailshift_harness::Dovecot;
use mailshift_harness::client::Imap;

use super::Opts;
use super::measure::{self, Measured};

pub fn loop_cmd(o: &Opts) -> Result<()> {
    let sizes: Vec<usize> = o
        .list("mailboxes", "10,100,1000")
        .iter()
        .map(|s| s.parse().with_context(|| format!("--mailboxes {s}")))
        .collect::<Result<_>>()?;
    let per = o.num("messages-per", 3)? as usize;
    let concurrency = o.num("concurrency", 4)?;
    let timeout = o.num("timeout", 1800)?;
    let bin = fs::canonicalize(o.str("mailshift", "target/release/mailshift"))?;
    let out = std::path::PathBuf::from(o.str("out", "target/bench-loop"));
    fs::create_dir_all(&out)?;
    let out = fs::canonicalize(&out)?;
    let mut table = String::new();
    writeln!(
        table,
        "| mailboxes | `sync` + `verify` | `apply` | apply / (sync + verify) | apply peak RSS | logins per mailbox, source | logins per mailbox, destination |"
    )?;
    writeln!(table, "|--:|--:|--:|--:|--:|--:|--:|")?;
    for n in sizes {
        let row = one(
            n,
            per,
            concurrency,
            timeout,
            &bin,
            &out.join(format!("n{n}")),
        )?;
        println!("{row}");
        writeln!(table, "{row}")?;
    }
    fs::write(out.join("results.md"), &table)?;
    print!("\n{table}");
    Ok(())
}

fn users(n: usize) -> Vec<(String, String)> {
    (0..n)
        .map(|i| (format!("user{i}@example.com"), format!("pw-{i}")))
        .collect()
}

fn server(name: &str, users: &[(String, String)]) -> Result<Dovecot> {
    let mut b = Dovecot::builder().name(name);
    for (u, p) in users {
        b = b.user(u, p);
    }
    b.start()
}

fn logins(d: &Dovecot) -> usize {
    fs::read_to_string(d.log_path())
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("imap-login: ") && l.contains(" Login: user=<"))
        .count()
}

fn manifest(src: &Dovecot, dst: &Dovecot, users: &[(String, String)], concurrency: u64) -> String {
    let mut s = format!(
        "apiVersion: mailshift.io/v1alpha1\nkind: MailMigration\nmetadata: {{ name: bench-loop }}\nspec:\n  source: {{ imap: {{ host: 127.0.0.1, port: {}, tls: none }} }}\n  destination: {{ imap: {{ host: 127.0.0.1, port: {}, tls: none }} }}\n  sync: {{ concurrency: {concurrency} }}\n  mailboxes:\n",
        src.imap_port(),
        dst.imap_port()
    );
    for (u, p) in users {
        let _ = writeln!(
            s,
            "    - {{ address: {u}, sourcePassword: {{ value: {p} }}, destinationPassword: {{ value: {p} }} }}"
        );
    }
    s
}

fn run(bin: &Path, dir: &Path, args: &[&str], log: &str, timeout: u64) -> Result<Measured> {
    let mut cmd = Command::new(bin);
    cmd.args(args).current_dir(dir).env(
        "RUST_LOG",
        std::env::var("BENCH_RUST_LOG").unwrap_or_else(|_| "warn".into()),
    );
    let m = measure::run(cmd, &dir.join(log), timeout)?;
    if !m.success {
        bail!(
            "mailshift {args:?} failed ({}); see {}",
            m.status,
            dir.join(log).display()
        );
    }
    Ok(m)
}

fn one(
    n: usize,
    per: usize,
    concurrency: u64,
    timeout: u64,
    bin: &Path,
    dir: &Path,
) -> Result<String> {
    let _ = fs::remove_dir_all(dir);
    fs::create_dir_all(dir)?;
    let users = users(n);
    let src = server("loop-src", &users)?;
    for (u, p) in &users {
        let msgs: Vec<Vec<u8>> = (0..per)
            .map(|i| {
                format!(
                    "Message-ID: <{i}.{u}>\r\nFrom: a@example.org\r\nTo: {u}\r\nSubject: {i}\r\nDate: Mon, 1 Jun 2026 12:00:00 +0000\r\n\r\nbody {i}\r\n"
                )
                .into_bytes()
            })
            .collect();
        let items: Vec<(&str, &str, &[u8])> = msgs
            .iter()
            .map(|m| ("", "01-Jun-2026 12:00:00 +0000", m.as_slice()))
            .collect();
        let mut imap = Imap::login(src.imap_port(), u, p)?;
        imap.append_many("INBOX", &items)?;
        imap.logout();
    }

    // The engine alone.
    let dst = server("loop-dst-a", &users)?;
    let engine_dir = dir.join("engine");
    fs::create_dir_all(&engine_dir)?;
    fs::write(
        engine_dir.join("m.yaml"),
        manifest(&src, &dst, &users, concurrency),
    )?;
    let sync = run(
        bin,
        &engine_dir,
        &["sync", "-f", "m.yaml"],
        "sync.log",
        timeout,
    )?;
    let verify = run(
        bin,
        &engine_dir,
        &["verify", "-f", "m.yaml"],
        "verify.log",
        timeout,
    )?;
    drop(dst);

    // The loop.
    let dst = server("loop-dst-b", &users)?;
    let loop_dir = dir.join("apply");
    fs::create_dir_all(&loop_dir)?;
    fs::write(
        loop_dir.join("m.yaml"),
        manifest(&src, &dst, &users, concurrency),
    )?;
    let (src0, dst0) = (logins(&src), logins(&dst));
    let apply = run(
        bin,
        &loop_dir,
        &["apply", "-f", "m.yaml"],
        "apply.log",
        timeout,
    )?;
    let (src_logins, dst_logins) = (logins(&src) - src0, logins(&dst) - dst0);
    let engine = sync.wall + verify.wall;
    Ok(format!(
        "| {n} | {engine:.2} s | {:.2} s | {:.2}× | {:.1} MB | {:.1} | {:.1} |",
        apply.wall,
        apply.wall / engine,
        apply.max_rss_kb as f64 / 1024.0,
        src_logins as f64 / n as f64,
        dst_logins as f64 / n as f64,
    ))
}
