//! Crash safety and lost connections: `mailshift sync` killed with SIGKILL at many random
//! (seeded) moments while it copies a couple of thousand messages, restarted each time;
//! connections cut mid-transfer by a proxy and the destination server restarted mid-run.
//! Whatever happens, the destination ends as an exact copy: nothing missing, nothing twice.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use common::*;
use mailshift::imap::conn::Recorder;
use mailshift::imap::mutf7;
use mailshift::store::StateDir;
use mailshift_harness::{Dovecot, Proxy, wait};

/// xorshift64*: deterministic test randomness.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

const FLAGS: [&str; 5] = [
    "",
    "\\Seen",
    "\\Seen \\Flagged",
    "$Label1",
    "\\Answered \\Seen",
];
const DATES: [&str; 3] = [
    "02-Jan-2015 03:04:05 +0000",
    "17-Aug-2020 18:00:00 +0200",
    "29-Feb-2024 12:34:56 -0500",
];

/// `n` messages numbered from `first`, of mixed sizes; every 97th is sent twice (a genuine
/// duplicate).
fn corpus(rng: &mut Rng, first: usize, n: usize) -> Vec<(&'static str, &'static str, Vec<u8>)> {
    let mut out = Vec::new();
    for i in first..first + n {
        let size = if rng.below(40) == 0 {
            20_000 + rng.below(60_000) as usize
        } else {
            200 + rng.below(3_000) as usize
        };
        let body = "abcdefghij0123456789 ".repeat(size / 21 + 1);
        let m = message(&format!("c{i}"), &format!("Corpus {i}"), &body);
        let flags = FLAGS[rng.below(FLAGS.len() as u64) as usize];
        let date = DATES[i % DATES.len()];
        if i % 97 == 0 {
            out.push((flags, date, m.clone()));
        }
        out.push((flags, date, m));
    }
    out
}

/// Message-ID → count, per folder, read over IMAP (headers only).
fn ids(d: &Dovecot, folder: &str) -> Result<BTreeMap<String, u32>> {
    let mut imap = imap(d)?;
    let mut out = BTreeMap::new();
    let (_, status) = imap.command_status(&format!("EXAMINE {}", quote(folder)))?;
    if status.starts_with("OK") {
        for r in imap.command("UID FETCH 1:* (BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")? {
            if let Some(h) = r.literals.first() {
                *out.entry(String::from_utf8_lossy(h).trim().to_owned())
                    .or_default() += 1;
            }
        }
    }
    imap.logout();
    Ok(out)
}

/// Nothing on the destination more often than on the source.
fn nothing_twice(src: &Dovecot, dst: &Dovecot, folders: &[String]) -> Result<u32> {
    let mut total = 0;
    for f in folders {
        let s = ids(src, f)?;
        let d = ids(dst, f)?;
        for (id, n) in &d {
            let have = s.get(id).copied().unwrap_or(0);
            ensure!(
                *n <= have,
                "{id} is {n} times in {f} on the destination, {have} on the source"
            );
            total += n;
        }
    }
    Ok(total)
}

fn count_messages(d: &Dovecot, folders: &[String]) -> u64 {
    let Ok(mut imap) = imap(d) else { return 0 };
    let mut n = 0;
    for f in folders {
        if let Ok((r, status)) = imap.command_status(&format!("STATUS {} (MESSAGES)", quote(f)))
            && status.starts_with("OK")
            && let Some(v) = r.first().and_then(|r| r.text.split("MESSAGES ").nth(1))
        {
            n += v.trim_end_matches(')').trim().parse::<u64>().unwrap_or(0);
        }
    }
    imap.logout();
    n
}

/// Changes whenever a cache file is written (count, sizes, modification times).
fn cache_signature(dir: &Path) -> u128 {
    fn walk(p: &Path, sig: &mut u128) {
        if let Ok(rd) = std::fs::read_dir(p) {
            for e in rd.flatten() {
                let path = e.path();
                if path.is_dir() {
                    walk(&path, sig);
                } else if let Ok(m) = e.metadata() {
                    let mtime = m
                        .modified()
                        .ok()
                        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                        .map_or(0, |d| d.as_nanos());
                    *sig = sig
                        .wrapping_mul(31)
                        .wrapping_add(mtime ^ u128::from(m.len()));
                }
            }
        }
    }
    let mut sig = 0;
    walk(dir, &mut sig);
    sig
}

#[test]
fn sigkill_at_random_moments_then_restart_converges_to_an_exact_copy() -> Result<()> {
    let started = Instant::now();
    let mut rng = Rng(0x5eed_2026);
    let src = dovecot("crash-src").start()?;
    let dst = dovecot("crash-dst").separator('/').start()?;
    let folders = ["INBOX", "Archive", "Bücher"];
    for f in &folders[1..] {
        src.create_mailbox(USER, f)?;
    }
    let wire: Vec<String> = folders.iter().map(|f| mutf7::encode(f)).collect();
    let mut next = 0;
    for (w, n) in wire.iter().zip([1000, 600, 300]) {
        load(&src, w, &corpus(&mut rng, next, n))?;
        next += n;
    }

    let dir = tempfile::tempdir()?;
    std::fs::write(
        dir.path().join("m.yaml"),
        manifest("crash", src.imap_port(), dst.imap_port(), ""),
    )?;
    let state = dir.path().join("state");
    let spawn = || {
        Command::new(env!("CARGO_BIN_EXE_mailshift"))
            .args(["sync", "-f", "m.yaml", "--state"])
            .arg(&state)
            .current_dir(dir.path())
            .env("RUST_LOG", "error")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
    };

    let mut kills = 0;
    let mut completed = 0;
    let mut round = 0;
    while kills < 15 {
        round += 1;
        let mut child = spawn()?;
        let before = count_messages(&dst, &wire);
        let files = cache_signature(&state);
        let how = rng.below(3);
        let deadline = Instant::now() + Duration::from_millis(rng.below(400));
        let target = before + 1 + rng.below(150);
        wait::until_true(Duration::from_secs(60), "the moment to kill", || {
            if child.try_wait()?.is_some() {
                return Ok(true);
            }
            Ok(match how {
                // While messages are being appended.
                0 => count_messages(&dst, &wire) >= target,
                // Right after a cache was written (or on the way to it).
                1 => cache_signature(&state) != files,
                // At a random instant: logging in, listing, comparing, anything.
                _ => Instant::now() >= deadline,
            })
        })?;
        if child.try_wait()?.is_none() {
            child.kill()?;
            child.wait()?;
            kills += 1;
        } else {
            completed += 1;
            // Done before the kill: give the next round more to do.
            load(&src, "INBOX", &corpus(&mut rng, next, 300))?;
            next += 300;
        }
        // Never anything twice, at any stage.
        nothing_twice(&src, &dst, &wire)?;
        if round == 6 {
            // Flag changes on the source between crashes.
            let mut imap = imap(&src)?;
            imap.command("SELECT INBOX")?;
            imap.command("STORE 1:200 +FLAGS (\\Seen $Crash)")?;
            imap.command("STORE 201:300 -FLAGS (\\Seen)")?;
            imap.logout();
        }
    }

    // Let it finish.
    let out = mailshift(
        dir.path(),
        &[
            "sync",
            "-f",
            "m.yaml",
            "--state",
            state.to_str().unwrap(),
            "-o",
            "json",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    for w in &wire {
        let a = messages(&src, w)?;
        let b = messages(&dst, w)?;
        assert_eq!(a.len(), b.len(), "{w}");
        assert!(a == b, "{w}: destination differs from source");
    }
    let out = mailshift(
        dir.path(),
        &["verify", "-f", "m.yaml", "--state", state.to_str().unwrap()],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = mailshift(
        dir.path(),
        &[
            "sync",
            "-f",
            "m.yaml",
            "--state",
            state.to_str().unwrap(),
            "-o",
            "json",
        ],
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(v["totals"]["messagesTransferred"], 0);
    eprintln!(
        "{kills} kills, {completed} completed runs, {} messages, {:.1} s",
        next,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

#[test]
fn dropped_connections_and_a_restarted_server_are_survived() -> Result<()> {
    let mut rng = Rng(0xc0ffee);
    let src = dovecot("net-src").start()?;
    let dst = dovecot("net-dst").start()?;
    src.create_mailbox(USER, "Archive")?;
    // Large enough that the run is still going when the server is stopped.
    load(&src, "INBOX", &corpus(&mut rng, 0, 1200))?;
    load(&src, "Archive", &corpus(&mut rng, 1200, 600))?;
    let src_proxy = Proxy::start(src.imap_port())?;
    let dst_proxy = Proxy::start(dst.imap_port())?;
    let state = tempfile::tempdir()?;
    let engine = engine(
        src_proxy.port(),
        dst_proxy.port(),
        None,
        Arc::new(StateDir::at(state.path())),
        &Recorder::default(),
    );
    let folders = vec!["INBOX".to_owned(), "Archive".to_owned()];
    let report = std::thread::scope(|s| -> Result<_> {
        let run = s.spawn(|| runtime().block_on(engine.sync_mailbox(&account())));
        // Cut the source's connections mid-transfer, then the destination's, then restart
        // the destination server.
        src_proxy.cut_after(300_000);
        wait::until_true(
            Duration::from_secs(60),
            "the source connections to be cut",
            || Ok(src_proxy.cuts() >= 1 || run.is_finished()),
        )?;
        let reached = count_messages(&dst, &folders);
        dst_proxy.cut_after(200_000);
        wait::until_true(
            Duration::from_secs(60),
            "the destination connections to be cut",
            || Ok(dst_proxy.cuts() >= 1 || run.is_finished()),
        )?;
        wait::until_true(Duration::from_secs(60), "more messages copied", || {
            Ok(count_messages(&dst, &folders) > reached + 20 || run.is_finished())
        })?;
        // The destination server goes away mid-run and comes back once mailshift has tried
        // (and failed) to reconnect.
        assert!(
            !run.is_finished(),
            "the sync finished too early for this test"
        );
        let tried = dst_proxy.accepted();
        dst.stop()?;
        wait::until_true(Duration::from_secs(120), "a reconnection attempt", || {
            Ok(dst_proxy.accepted() > tried + 1 || run.is_finished())
        })?;
        dst.restart()?;
        Ok(run.join().expect("the sync thread"))
    })?;
    assert!(report.is_perfect(), "{report:#?}");
    assert!(src_proxy.cuts() >= 1 && dst_proxy.cuts() >= 1);
    assert!(
        src_proxy.accepted() >= 2 && dst_proxy.accepted() >= 3,
        "reconnected"
    );
    for f in &folders {
        assert!(messages(&src, f)? == messages(&dst, f)?, "{f} differs");
    }
    Ok(())
}

/// The race a kill can leave: a batch sent in full, killed before its answer, committed by
/// the destination only after the next run has listed the folder. The proxy holds the
/// batch (as a slow server would sit on it) until the next run is up; released, it lands,
/// and the next run must not have copied it again.
#[test]
fn a_batch_killed_on_the_wire_and_committed_late_is_not_copied_twice() -> Result<()> {
    use std::io::BufRead;
    let mut rng = Rng(0x1a7e);
    let src = dovecot("late-src").start()?;
    let dst = dovecot("late-dst").start()?;
    // Small messages: several MULTIAPPEND batches of 200.
    let corpus: Vec<_> = corpus(&mut rng, 0, 900)
        .into_iter()
        .filter(|(_, _, m)| m.len() < 10_000)
        .collect();
    load(&src, "INBOX", &corpus)?;
    let wire = vec!["INBOX".to_owned()];
    let proxy = Proxy::start(dst.imap_port())?;
    let dir = tempfile::tempdir()?;
    std::fs::write(
        dir.path().join("m.yaml"),
        manifest("late", src.imap_port(), proxy.port(), ""),
    )?;
    let run = |log: &str| {
        Command::new(env!("CARGO_BIN_EXE_mailshift"))
            .args(["sync", "-f", "m.yaml", "--state", "state"])
            .current_dir(dir.path())
            .env("RUST_LOG", log)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
    };

    let mut first = run("error")?;
    wait::until_true(Duration::from_secs(60), "the first batch", || {
        Ok(first.try_wait()?.is_some() || count_messages(&dst, &wire) > 0)
    })?;
    proxy.hold_next_append();
    wait::until_true(Duration::from_secs(60), "a batch to hold", || {
        Ok(first.try_wait()?.is_some() || proxy.holds_an_append())
    })?;
    ensure!(
        first.try_wait()?.is_none(),
        "the first run finished before a batch could be held"
    );
    first.kill()?;
    first.wait()?;
    let landed_before = count_messages(&dst, &wire);

    // The next run, up while the batch is still on its way.
    let mut second = run("mailshift=info")?;
    let (tx, rx) = std::sync::mpsc::channel();
    let stderr = second.stderr.take().expect("piped");
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let waiting = line.contains("waiting for it to land");
            if tx.send((line, waiting)).is_err() {
                break;
            }
        }
    });
    let mut log = Vec::new();
    wait::until_true(
        Duration::from_secs(60),
        "the next run to wait or end",
        || {
            while let Ok((line, waiting)) = rx.try_recv() {
                log.push(line);
                if waiting {
                    return Ok(true);
                }
            }
            Ok(second.try_wait()?.is_some())
        },
    )?;
    proxy.release()?;
    let status = second.wait()?;
    log.extend(rx.try_iter().map(|(line, _)| line));
    ensure!(status.success(), "the next run failed:\n{}", log.join("\n"));

    let total = nothing_twice(&src, &dst, &wire)?;
    assert_eq!(total as usize, corpus.len(), "{}", log.join("\n"));
    assert!(messages(&src, "INBOX")? == messages(&dst, "INBOX")?);
    assert!(
        log.iter()
            .any(|l| l.contains("unanswered batch settled") && l.contains("Landed")),
        "the held batch was seen to land ({landed_before} messages before it):\n{}",
        log.join("\n")
    );
    Ok(())
}
