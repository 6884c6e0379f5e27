//! `mailshift plan`/`apply`/`status` end to end against real servers: a migration of
//! several mailboxes converges through `apply`, also when `apply` is killed with SIGKILL at
//! random moments; editing the manifest converges to the new desired state; `observe`
//! changes nothing; and with DNS, a real BIND zone sees the MX TTL lowered, the MX kept for
//! at least the old TTL, then switched, then the TTL restored.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;
use mailshift_harness::Nameserver as _;
use mailshift_harness::{Bind, Dovecot, Zone, client::Imap};

const BOB: &str = "bob@example.com";
const BOB_PW: &str = "bob-pw";
const CAROL: &str = "carol@example.com";
const CAROL_PW: &str = "carol-pw";

fn run(dir: &Path, args: &[&str]) -> Output {
    mailshift(dir, args)
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn pair() -> (Dovecot, Dovecot) {
    let start = |name: &str| {
        dovecot(name)
            .user(BOB, BOB_PW)
            .user(CAROL, CAROL_PW)
            .start()
            .expect("dovecot starts")
    };
    (start("old"), start("new"))
}

fn mailbox_entry(address: &str, pw: &str) -> String {
    format!(
        "    - address: {address}\n      sourcePassword: {{ value: {pw} }}\n      destinationPassword: {{ value: {pw} }}\n"
    )
}

/// A manifest for `mailboxes` between the pair; `extra` is appended to `spec`.
fn manifest_for(src: &Dovecot, dst: &Dovecot, mailboxes: &[(&str, &str)], extra: &str) -> String {
    let list: String = mailboxes.iter().map(|(a, p)| mailbox_entry(a, p)).collect();
    format!(
        "apiVersion: mailshift.io/v1alpha1
kind: MailMigration
metadata:
  name: several
spec:
  domains: [example.com]
  source:
    imap: {{ host: 127.0.0.1, port: {}, tls: none }}
  destination:
    imap: {{ host: 127.0.0.1, port: {}, tls: none }}
  mailboxes:
{list}  sync: {{ concurrency: 2 }}
{extra}",
        src.imap_port(),
        dst.imap_port()
    )
}

fn fill(d: &Dovecot, user: &str, pw: &str, folder: &str, first: usize, n: usize) {
    let msgs: Vec<(&str, &str, Vec<u8>)> = (first..first + n)
        .map(|i| {
            let flags = if i % 3 == 0 { "\\Seen" } else { "" };
            let body = "line of text for the message body\r\n".repeat(1 + i % 40);
            (
                flags,
                "17-Aug-2020 18:00:00 +0200",
                message(
                    &format!("{user}-{folder}-{i}"),
                    &format!("Message {i}"),
                    &body,
                ),
            )
        })
        .collect();
    let mut imap = Imap::login(d.imap_port(), user, pw).unwrap();
    if folder != "INBOX" {
        let _ = imap.command_status(&format!("CREATE {}", quote(folder)));
    }
    let items: Vec<(&str, &str, &[u8])> = msgs
        .iter()
        .map(|(f, d, m)| (*f, *d, m.as_slice()))
        .collect();
    imap.append_many(folder, &items).unwrap();
    imap.logout();
}

/// Runs `apply`, killing it with SIGKILL after `after` if it is still running.
fn apply_killed_after(dir: &Path, after: Duration) -> bool {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mailshift"))
        .args(["apply", "-f", "m.yaml"])
        .current_dir(dir)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + after;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.success();
        }
        if Instant::now() >= deadline {
            child.kill().unwrap(); // SIGKILL
            child.wait().unwrap();
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn apply_converges_through_sigkills_and_follows_edits_of_the_manifest() {
    let (src, dst) = pair();
    fill(&src, USER, PASSWORD, "INBOX", 0, 300);
    fill(&src, USER, PASSWORD, "Archive", 0, 60);
    fill(&src, BOB, BOB_PW, "INBOX", 0, 200);
    fill(&src, CAROL, CAROL_PW, "INBOX", 0, 20);
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    std::fs::write(
        dir.join("m.yaml"),
        manifest_for(&src, &dst, &[(USER, PASSWORD), (BOB, BOB_PW)], ""),
    )
    .unwrap();

    let plan = run(dir, &["plan", "-f", "m.yaml"]);
    assert_eq!(
        code(&plan),
        2,
        "a fresh migration has changes pending: {}",
        text(&plan)
    );
    let json = run(dir, &["plan", "-f", "m.yaml", "-o", "json"]);
    let doc: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(doc[0]["plan"]["version"], 1);
    assert!(!dir.join(".mailshift").exists(), "plan writes nothing");

    // SIGKILL at moments spread over the copy; each run resumes where the last stopped.
    for ms in [120, 350, 700, 1100, 1600] {
        if apply_killed_after(dir, Duration::from_millis(ms)) {
            break;
        }
    }
    let apply = run(dir, &["apply", "-f", "m.yaml"]);
    assert_eq!(code(&apply), 0, "{}", text(&apply));

    let verify = run(dir, &["verify", "-f", "m.yaml"]);
    assert_eq!(
        code(&verify),
        0,
        "exact copy after the kills: {}",
        text(&verify)
    );
    assert_eq!(
        messages(&src, "INBOX").unwrap(),
        messages(&dst, "INBOX").unwrap()
    );
    assert_eq!(
        messages(&src, "Archive").unwrap(),
        messages(&dst, "Archive").unwrap()
    );
    let plan = run(dir, &["plan", "-f", "m.yaml"]);
    assert_eq!(code(&plan), 0, "{}", text(&plan));
    let status = run(dir, &["status", "-f", "m.yaml", "-o", "json"]);
    let st: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(st[0]["status"]["phase"], "Completed", "{st:#}");
    let generation = st[0]["status"]["observedGeneration"].as_i64().unwrap();

    // The manifest changes: a mailbox is added, a folder excluded; new mail arrived meanwhile.
    fill(&src, USER, PASSWORD, "INBOX", 300, 5);
    fill(&src, USER, PASSWORD, "Junk", 0, 7);
    std::fs::write(
        dir.join("m.yaml"),
        manifest_for(
            &src,
            &dst,
            &[(USER, PASSWORD), (BOB, BOB_PW), (CAROL, CAROL_PW)],
            "  folders: { exclude: [Junk] }\n",
        ),
    )
    .unwrap();
    let plan = run(dir, &["plan", "-f", "m.yaml"]);
    assert_eq!(code(&plan), 2, "the edit is pending: {}", text(&plan));
    let apply = run(dir, &["apply", "-f", "m.yaml"]);
    assert_eq!(code(&apply), 0, "{}", text(&apply));
    let verify = run(dir, &["verify", "-f", "m.yaml"]);
    assert_eq!(code(&verify), 0, "{}", text(&verify));
    assert_eq!(
        messages(&src, "INBOX").unwrap(),
        messages(&dst, "INBOX").unwrap()
    );
    assert!(
        !folders(&dst).unwrap().iter().any(|(n, _)| n == "Junk"),
        "the excluded folder is not copied"
    );
    let carol = Imap::login(dst.imap_port(), CAROL, CAROL_PW)
        .unwrap()
        .command("STATUS INBOX (MESSAGES)")
        .unwrap();
    assert!(carol[0].text.contains("MESSAGES 20"), "{:?}", carol[0].text);
    let status = run(dir, &["status", "-f", "m.yaml", "-o", "json"]);
    let st: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(
        st[0]["status"]["observedGeneration"].as_i64(),
        Some(generation + 1)
    );
    assert_eq!(code(&run(dir, &["plan", "-f", "m.yaml"])), 0);
}

#[test]
fn observe_policy_plans_but_changes_nothing_anywhere() {
    let (src, dst) = pair();
    fill(&src, USER, PASSWORD, "INBOX", 0, 30);
    fill(&src, USER, PASSWORD, "Projects", 0, 10);
    let before = messages(&src, "INBOX").unwrap();
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    std::fs::write(
        dir.join("m.yaml"),
        manifest_for(&src, &dst, &[(USER, PASSWORD)], "  policy: observe\n"),
    )
    .unwrap();
    assert_eq!(code(&run(dir, &["plan", "-f", "m.yaml"])), 2);
    let apply = run(dir, &["apply", "-f", "m.yaml"]);
    assert_eq!(
        code(&apply),
        3,
        "observe stops at its own gate: {}",
        text(&apply)
    );
    assert!(text(&apply).contains("observe"), "{}", text(&apply));
    let dst_folders: Vec<String> = folders(&dst).unwrap().into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        dst_folders,
        ["INBOX"],
        "no folder created on the destination"
    );
    assert!(
        messages(&dst, "INBOX").unwrap().is_empty(),
        "nothing copied"
    );
    assert_eq!(messages(&src, "INBOX").unwrap(), before, "source untouched");
}

#[test]
fn a_suspended_migration_writes_nothing_until_the_suspension_is_lifted() {
    let (src, dst) = pair();
    fill(&src, USER, PASSWORD, "INBOX", 0, 12);
    let before = messages(&src, "INBOX").unwrap();
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let suspended = manifest_for(&src, &dst, &[(USER, PASSWORD)], "  suspend: true\n");
    std::fs::write(dir.join("m.yaml"), &suspended).unwrap();

    let plan = run(dir, &["plan", "-f", "m.yaml"]);
    assert_eq!(code(&plan), 2, "plan still works: {}", text(&plan));
    assert!(
        text(&plan).contains("suspended (spec.suspend)"),
        "{}",
        text(&plan)
    );
    let apply = run(dir, &["apply", "-f", "m.yaml"]);
    assert_eq!(code(&apply), 3, "{}", text(&apply));
    assert!(
        text(&apply).contains("spec.suspend is true"),
        "{}",
        text(&apply)
    );
    let sync = run(dir, &["sync", "-f", "m.yaml"]);
    assert_eq!(code(&sync), 2, "{}", text(&sync));
    assert!(
        text(&sync).contains("spec.suspend is true"),
        "{}",
        text(&sync)
    );
    let status = run(dir, &["status", "-f", "m.yaml"]);
    assert!(text(&status).contains("Suspended"), "{}", text(&status));
    assert!(
        messages(&dst, "INBOX").unwrap().is_empty(),
        "nothing copied"
    );
    assert_eq!(messages(&src, "INBOX").unwrap(), before, "source untouched");

    // Lifted: the same state directory, on to convergence.
    std::fs::write(
        dir.join("m.yaml"),
        suspended.replace("  suspend: true\n", ""),
    )
    .unwrap();
    let apply = run(dir, &["apply", "-f", "m.yaml"]);
    assert_eq!(code(&apply), 0, "{}", text(&apply));
    assert_eq!(messages(&dst, "INBOX").unwrap().len(), 12);
    // The copy's progress, as status keeps it: all of what was planned.
    let status = run(dir, &["status", "-f", "m.yaml", "-o", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    let t = &v[0]["status"]["transfer"];
    assert_eq!(t["messages"], 12, "{v:#}");
    assert_eq!(t["ofMessages"], 12, "{v:#}");
    assert_eq!(t["percent"], 100, "{t:#}");
    assert_eq!(t["bytes"], t["ofBytes"], "{t:#}");
    assert_eq!(t["mailboxes"][0]["address"], USER, "{t:#}");
    let text = text(&run(dir, &["status", "-f", "m.yaml"]));
    assert!(text.contains("copied:         12 of 12 messages"), "{text}");
}

/// A message the destination refuses keeps the migration from completing until a reviewed
/// `acceptRefused` rule accepts its loss; then it converges, and status lists the loss.
#[test]
fn a_refused_message_blocks_until_its_loss_is_accepted_on_purpose() {
    let src = dovecot("accept-old").user(BOB, BOB_PW).start().unwrap();
    let dst = dovecot("accept-new")
        .user(BOB, BOB_PW)
        .max_message_size(6000)
        .start()
        .unwrap();
    fill(&src, USER, PASSWORD, "INBOX", 0, 5);
    let mut imap = Imap::login(src.imap_port(), USER, PASSWORD).unwrap();
    let big = message("big-one", "too big for the new server", &"x".repeat(10_000));
    imap.append("INBOX", "", &big).unwrap();
    imap.logout();
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let base = manifest_for(&src, &dst, &[(USER, PASSWORD)], "");
    std::fs::write(dir.join("m.yaml"), &base).unwrap();

    // Not accepted: the copy counts as incomplete, and the run does not converge.
    // With --no-wait it stops at the retry's time gate and says, on a line of its own,
    // when to come back.
    let apply = run(dir, &["apply", "-f", "m.yaml", "--no-wait", "-o", "json"]);
    assert_eq!(code(&apply), 3, "{}", text(&apply));
    let stdout = String::from_utf8_lossy(&apply.stdout).into_owned();
    let outcome: serde_json::Value = serde_json::from_str(stdout.trim()).expect("one JSON line");
    assert_eq!(outcome["migration"], "several", "{stdout}");
    assert_eq!(outcome["outcome"], "gate", "{stdout}");
    let opens = outcome["opensAt"].as_str().expect("opensAt");
    let opens = chrono::DateTime::parse_from_rfc3339(opens).expect("RFC 3339");
    assert!(
        opens > chrono::Utc::now() - chrono::TimeDelta::minutes(1),
        "{stdout}"
    );
    let status = text(&run(dir, &["status", "-f", "m.yaml"]));
    assert!(
        status.contains("1 message(s) refused by the destination"),
        "{status}"
    );
    let phase = status.lines().next().unwrap_or_default();
    assert!(!phase.ends_with("Completed"), "{status}");
    assert!(
        status.contains("1 difference(s)"),
        "not equal with mail left behind: {status}"
    );
    // The retry state: which step fails, how often in a row, why, and when it is tried next.
    let failing = status
        .lines()
        .skip_while(|l| !l.starts_with("  failing steps:"))
        .nth(1)
        .unwrap_or_else(|| panic!("no failing steps in {status}"));
    assert!(
        failing.contains("time(s) in a row: sync incomplete")
            && failing.contains("refused by the destination")
            && (failing.contains("next try at ") || failing.contains("stalled")),
        "{failing}"
    );

    // Accepted on purpose: on to completion, the loss on record.
    let accepted = format!(
        "{base}  acceptRefused:\n    - {{ largerThan: 6kB, mailbox: {USER}, reason: \"over the new server's 6 kB limit; the user has it\" }}\n"
    );
    std::fs::write(dir.join("m.yaml"), &accepted).unwrap();
    assert_eq!(code(&run(dir, &["validate", "m.yaml"])), 0);
    let apply = run(dir, &["apply", "-f", "m.yaml"]);
    assert_eq!(code(&apply), 0, "{}", text(&apply));
    assert!(text(&apply).contains("converged"), "{}", text(&apply));
    let status = text(&run(dir, &["status", "-f", "m.yaml"]));
    assert!(
        status.contains("accepted loss: <big-one@test> in INBOX")
            && status.contains("accepted by over the new server's 6 kB limit; the user has it"),
        "{status}"
    );
    assert_eq!(
        messages(&dst, "INBOX").unwrap().len(),
        5,
        "the others are copied"
    );
}

/// Headless Chromium from Debian's package, started as the tool library's probe found it
/// works here (no sandbox as root, no background networking on a closed network), with a
/// profile of its own.
fn chromium(profile: &Path, args: &[&str]) -> Output {
    Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .output()
        .expect("chromium runs (scripts/install-deps.sh installs it)")
}

/// Width, height and size of a PNG file.
fn png_facts(path: &Path) -> (u32, u32, usize) {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(
        &bytes[..8],
        b"\x89PNG\r\n\x1a\n",
        "{} is a PNG",
        path.display()
    );
    let be = |i: usize| u32::from_be_bytes(bytes[i..i + 4].try_into().unwrap());
    (be(16), be(20), bytes.len())
}

/// The HTML report of a real migration, opened in a real browser: what it shows (the
/// mailbox, its counts and verification, the accepted loss, the timeline) and that it
/// renders as a page with content.
#[test]
fn the_html_report_shows_each_mailbox_and_the_timeline_in_a_browser() {
    let src = dovecot("report-old").user(BOB, BOB_PW).start().unwrap();
    let dst = dovecot("report-new")
        .user(BOB, BOB_PW)
        .max_message_size(6000)
        .start()
        .unwrap();
    fill(&src, USER, PASSWORD, "INBOX", 0, 7);
    fill(&src, BOB, BOB_PW, "INBOX", 0, 3);
    let mut imap = Imap::login(src.imap_port(), USER, PASSWORD).unwrap();
    let big = message("too-big", "over the limit", &"x".repeat(10_000));
    imap.append("INBOX", "", &big).unwrap();
    imap.logout();
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let manifest = format!(
        "{}  acceptRefused:\n    - {{ largerThan: 6kB, reason: \"over the new server's limit\" }}\n",
        manifest_for(&src, &dst, &[(USER, PASSWORD), (BOB, BOB_PW)], "")
    );
    std::fs::write(dir.join("m.yaml"), manifest).unwrap();
    let apply = run(dir, &["apply", "-f", "m.yaml"]);
    assert_eq!(code(&apply), 0, "{}", text(&apply));

    let report = run(dir, &["report", "-f", "m.yaml", "-o", "json"]);
    assert_eq!(code(&report), 0, "{}", text(&report));
    let doc: serde_json::Value = serde_json::from_slice(&report.stdout).unwrap();
    assert_eq!(doc[0]["totals"]["mailboxes"], 2);
    assert_eq!(doc[0]["totals"]["verified"], 2);
    assert_eq!(doc[0]["totals"]["acceptedLosses"], 1);

    let html = run(dir, &["report", "-f", "m.yaml", "-o", "html"]);
    assert_eq!(code(&html), 0, "{}", text(&html));
    let page = dir.join("report.html");
    std::fs::write(&page, &html.stdout).unwrap();
    let url = format!("file://{}", page.display());
    let profile = tempfile::tempdir().unwrap();

    // What the browser made of it: the DOM after parsing and layout.
    let dom = chromium(profile.path(), &["--dump-dom", &url]);
    assert!(
        dom.status.success(),
        "{}",
        String::from_utf8_lossy(&dom.stderr)
    );
    let dom = String::from_utf8_lossy(&dom.stdout);
    for shown in [
        "MailMigration several",
        "phase <b>Completed</b>",
        USER,
        BOB,
        "accepted loss: &lt;too-big@test&gt; in INBOX",
        "over the new server's limit",
        "migration complete",
    ] {
        assert!(dom.contains(shown), "the page shows {shown:?}:\n{dom}");
    }
    let rows = dom.matches("<td class=\"ok t\">equal").count();
    assert_eq!(rows, 2, "both mailboxes verified equal:\n{dom}");

    // Drawn: a screenshot of the size asked for, holding far more than an empty page's.
    let shot = dir.join("report.png");
    let blank = dir.join("blank.html");
    std::fs::write(&blank, "<!DOCTYPE html><html><body></body></html>").unwrap();
    let blank_shot = dir.join("blank.png");
    for (url, png) in [
        (&url, &shot),
        (&format!("file://{}", blank.display()), &blank_shot),
    ] {
        let out = chromium(
            profile.path(),
            &[
                "--window-size=1000,700",
                &format!("--screenshot={}", png.display()),
                url,
            ],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let (w, h, size) = png_facts(&shot);
    let (_, _, blank_size) = png_facts(&blank_shot);
    assert_eq!((w, h), (1000, 700));
    assert!(
        size > 4 * blank_size,
        "the report draws content: {size} vs {blank_size} bytes"
    );
}

/// What an outside observer sees of the zone's MX set: its TTL and targets.
fn dig_mx(bind: &Bind) -> Option<(u32, String)> {
    let out = bind.dig(&["+noall", "+answer", "MX", "example.com"]).ok()?;
    let mut ttl = None;
    let mut targets = Vec::new();
    for line in out.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() >= 6 && f[3] == "MX" {
            ttl = f[1].parse().ok();
            targets.push(f[5].to_owned());
        }
    }
    targets.sort();
    Some((ttl?, targets.join(" ")))
}

#[test]
fn apply_moves_mx_through_a_real_bind_zone_waiting_out_the_old_ttl() {
    const OLD_TTL: u32 = 40;
    let (src, dst) = pair();
    fill(&src, USER, PASSWORD, "INBOX", 0, 20);
    let bind = Bind::builder()
        .zone(Zone::new("example.com").mx(10, "mail.old.example.net.", OLD_TTL))
        .start()
        .unwrap();
    let key = bind.tsig();
    let dns = format!(
        "  dns:
    zone: example.com
    provider:
      rfc2136:
        server: \"{server}\"
        tsig: {{ name: {name}, algorithm: {alg}, secret: {{ value: \"{secret}\" }} }}
    mx: [{{ preference: 10, exchange: mail.new.example.net. }}]
    cutoverTTL: 30
    checkNameservers: [\"{server}\"]
  cutover: {{ approved: true }}
  finalize: {{ deltaSyncAfter: 1s, keepSourceFor: 2s, restoreTTL: 60 }}
",
        server = bind.server(),
        name = key.name,
        alg = key.algorithm,
        secret = key.secret,
    );
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().to_path_buf();
    std::fs::write(
        dir.join("m.yaml"),
        manifest_for(&src, &dst, &[(USER, PASSWORD)], &dns),
    )
    .unwrap();

    // This thread is the outside observer: it polls the zone while apply runs.
    let started = Instant::now();
    let mut log = Vec::new();
    let child = {
        let dir = dir.clone();
        std::thread::spawn(move || {
            Command::new(env!("CARGO_BIN_EXE_mailshift"))
                .args(["apply", "-f", "m.yaml"])
                .current_dir(&dir)
                .env("RUST_LOG", "warn,mailshift=info")
                .output()
                .unwrap()
        })
    };
    while !child.is_finished() {
        if let Some((ttl, mx)) = dig_mx(&bind) {
            log.push((started.elapsed(), ttl, mx));
        }
        std::thread::sleep(Duration::from_millis(200));
        assert!(
            started.elapsed() < Duration::from_secs(180),
            "apply did not finish"
        );
    }
    let out = child.join().unwrap();
    assert_eq!(code(&out), 0, "{}", text(&out));

    let old = "mail.old.example.net.";
    let new = "mail.new.example.net.";
    let lowered = log
        .iter()
        .find(|(_, ttl, mx)| *ttl == 30 && mx == old)
        .expect("the TTL was lowered with the old targets kept")
        .0;
    let switched = log
        .iter()
        .find(|(_, _, mx)| mx == new)
        .expect("the MX set was switched")
        .0;
    assert!(
        switched >= lowered + Duration::from_secs(u64::from(OLD_TTL)) - Duration::from_millis(500),
        "the old TTL ({OLD_TTL}s) passed between lowering ({lowered:?}) and the switch ({switched:?})"
    );
    assert!(
        log.iter().all(|(t, _, mx)| *t >= switched || mx == old),
        "the old MX held until the switch"
    );
    assert_eq!(
        dig_mx(&bind),
        Some((60, new.to_owned())),
        "TTL restored on the new MX"
    );

    let status = run(&dir, &["status", "-f", "m.yaml", "-o", "json"]);
    let st: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    let s = &st[0]["status"];
    assert_eq!(s["phase"], "Completed", "{st:#}");
    assert_eq!(s["oldTTL"], OLD_TTL);
    let at = |k: &str| chrono::DateTime::parse_from_rfc3339(s[k].as_str().unwrap()).unwrap();
    assert!(
        at("mxSwitchedAt") - at("ttlLoweredAt") >= chrono::TimeDelta::seconds(i64::from(OLD_TTL))
    );
    assert_eq!(code(&run(&dir, &["plan", "-f", "m.yaml"])), 0);
}

/// Message-IDs in `user`'s INBOX, read-only.
fn inbox_ids(d: &Dovecot, user: &str, pw: &str) -> Vec<String> {
    let mut imap = Imap::login(d.imap_port(), user, pw).unwrap();
    imap.command_status("EXAMINE INBOX").unwrap();
    let out = imap
        .command("UID FETCH 1:* (BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
        .unwrap_or_default()
        .into_iter()
        .filter_map(|r| {
            r.literals
                .first()
                .map(|h| String::from_utf8_lossy(h).trim().to_owned())
        })
        .collect();
    imap.logout();
    out
}

/// An MTA in front of each server (delivering `example.com` to its Dovecot over LMTP) and
/// the manifest's `gateway` section relaying from the old to the new one.
fn mtas(
    prefix: &str,
    src: &Dovecot,
    dst: &Dovecot,
) -> (
    mailshift_harness::Postfix,
    mailshift_harness::Postfix,
    String,
) {
    let mta = |name: &str, to: &Dovecot| {
        mailshift_harness::Postfix::builder()
            .name(&format!("{prefix}{name}"))
            .lmtp_to("example.com", to.lmtp_port())
            .start()
            .unwrap()
    };
    let (old, new) = (mta("old-mta", src), mta("new-mta", dst));
    let gateway = format!(
        "  gateway:\n    postfix: {{ configDir: {} }}\n    relayTo: \"[127.0.0.1]:{}\"\n",
        old.config_dir().display(),
        new.smtp_port()
    );
    (old, new, gateway)
}

#[test]
fn apply_turns_the_gateway_on_and_proves_mail_flows_to_the_new_server() {
    use mailshift_harness::{client::smtp_send, wait};
    let (src, dst) = pair();
    fill(&src, USER, PASSWORD, "INBOX", 0, 15);
    let (old_mta, _new_mta, gateway) = mtas("", &src, &dst);
    let routing = format!(
        "{gateway}  probe:
    smtp: {{ host: 127.0.0.1, port: {}, tls: none }}
    mailbox: {USER}
    timeout: 60s
  cutover: {{ approved: true }}
  finalize: {{ deltaSyncAfter: 1s, keepSourceFor: 1s }}
",
        old_mta.smtp_port(),
    );
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    std::fs::write(
        dir.join("m.yaml"),
        manifest_for(&src, &dst, &[(USER, PASSWORD)], &routing),
    )
    .unwrap();

    // Before the cutover the old server delivers locally.
    let plan = run(dir, &["plan", "-f", "m.yaml"]);
    assert_eq!(code(&plan), 2, "{}", text(&plan));
    assert!(text(&plan).contains("gateway"), "{}", text(&plan));

    let apply = run(dir, &["apply", "-f", "m.yaml"]);
    assert_eq!(code(&apply), 0, "{}", text(&apply));
    let status = run(dir, &["status", "-f", "m.yaml", "-o", "json"]);
    let st: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(st[0]["status"]["phase"], "Completed", "{st:#}");
    assert!(st[0]["status"]["gatewayOnAt"].is_string(), "{st:#}");
    // Recorded when it took effect: after the relay's map was built (postmap, then reload),
    // not when the step began.
    let on_at =
        chrono::DateTime::parse_from_rfc3339(st[0]["status"]["gatewayOnAt"].as_str().unwrap())
            .unwrap();
    let built: chrono::DateTime<chrono::Utc> =
        std::fs::metadata(old_mta.config_dir().join("mailshift-gateway.db"))
            .and_then(|m| m.modified())
            .expect("the gateway's map was built")
            .into();
    assert!(
        on_at >= built,
        "gatewayOnAt {on_at} is before the map was built at {built}"
    );

    // Late mail reaching the old server now lands on the new one, and only there.
    let late = message("late-mail", "Sent to the old MX after the cutover", "hello");
    smtp_send(old_mta.smtp_port(), "someone@example.org", &[USER], &late).unwrap();
    wait::until_true(
        Duration::from_secs(30),
        "late mail relayed to the new server",
        || {
            Ok(inbox_ids(&dst, USER, PASSWORD)
                .iter()
                .any(|id| id.contains("late-mail")))
        },
    )
    .unwrap();
    assert!(
        !inbox_ids(&src, USER, PASSWORD)
            .iter()
            .any(|id| id.contains("late-mail")),
        "the old server relays instead of delivering"
    );
    // The probe's own message was cleaned up on the new server.
    assert!(
        !inbox_ids(&dst, USER, PASSWORD)
            .iter()
            .any(|id| id.contains("probe")),
        "{:?}",
        inbox_ids(&dst, USER, PASSWORD)
    );
    assert_eq!(code(&run(dir, &["plan", "-f", "m.yaml"])), 0);
}

/// Mail keeps arriving at the old server all through `apply`, faster than verification can
/// ever find the mailbox equal: verification counts that mail as arrived (for the final
/// sync), not as missing, so the cutover goes on. When the run stops at the
/// delta sync's time gate (long after the cutover), every message the old server accepted
/// is on the new one, once: what arrived before the gateway went on was copied by the final
/// sync (which runs after it, so nothing lands in the old mailboxes behind it), what came
/// after was relayed. The delta sync is not needed for any of it.
#[test]
fn mail_arriving_during_the_cutover_is_on_the_new_server_before_the_delta_sync() {
    use mailshift_harness::{client::smtp_send, wait};
    use std::sync::atomic::{AtomicBool, Ordering};
    let (src, dst) = pair();
    fill(&src, USER, PASSWORD, "INBOX", 0, 10);
    let (old_mta, _new_mta, gateway) = mtas("busy-", &src, &dst);
    let routing = format!(
        "{gateway}  cutover: {{ approved: true }}
  finalize: {{ deltaSyncAfter: 1h, keepSourceFor: 2h }}
"
    );
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    std::fs::write(
        dir.join("m.yaml"),
        manifest_for(&src, &dst, &[(USER, PASSWORD)], &routing),
    )
    .unwrap();

    // A sender behind the old MX, fifty messages a second (faster than a mailbox can be
    // re-synced and verified), from before apply to after it.
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let port = old_mta.smtp_port();
    let sender = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut sent = Vec::new();
            // Five more once apply has stopped: mail goes on arriving after the cutover.
            let mut after = 0;
            while after < 5 {
                if stop.load(Ordering::Relaxed) {
                    after += 1;
                }
                let id = format!("flow-{}", sent.len());
                let m = message(&id, "arriving during the cutover", "hello");
                if smtp_send(port, "someone@example.org", &[USER], &m).is_ok() {
                    sent.push(id);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            sent
        })
    };
    let apply = run(
        dir,
        &["apply", "-f", "m.yaml", "--no-wait", "--timeout", "60s"],
    );
    stop.store(true, Ordering::Relaxed);
    let sent = sender.join().unwrap();
    assert_eq!(code(&apply), 3, "{}", text(&apply));
    assert!(
        text(&apply).contains("deltaSyncAfter (1h) must pass"),
        "stopped at the delta sync's gate: {}",
        text(&apply)
    );
    // Mail arrived on both sides of the gateway: delivered into the old mailbox before it
    // (for the final sync to copy), relayed after it.
    let before_gateway = inbox_ids(&src, USER, PASSWORD)
        .iter()
        .filter(|h| h.contains("<flow-"))
        .count();
    assert!(
        before_gateway > 0 && sent.len() > before_gateway,
        "{before_gateway} of {} messages delivered to the old mailbox",
        sent.len()
    );

    // What is still in the old server's queue is relayed; then every message is there once.
    let count = |ids: &[String], id: &str| {
        ids.iter()
            .filter(|h| h.contains(&format!("<{id}@")))
            .count()
    };
    wait::until_true(
        Duration::from_secs(30),
        "every message on the new server",
        || {
            let on_new = inbox_ids(&dst, USER, PASSWORD);
            Ok(sent.iter().all(|id| count(&on_new, id) >= 1))
        },
    )
    .unwrap();
    let on_new = inbox_ids(&dst, USER, PASSWORD);
    for id in &sent {
        assert_eq!(count(&on_new, id), 1, "{id} on the new server once");
    }
    assert_eq!(on_new.len(), 10 + sent.len(), "nothing else, nothing twice");
}

/// Logins the Dovecot at `d` has accepted so far, from its log.
fn logins(d: &Dovecot) -> usize {
    std::fs::read_to_string(d.log_path())
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("imap-login: ") && l.contains(" Login: user=<"))
        .count()
}

/// A message count of `user`'s `folder` (0 when it does not exist).
fn count(d: &Dovecot, user: &str, pw: &str, folder: &str) -> usize {
    let mut imap = Imap::login(d.imap_port(), user, pw).unwrap();
    let (untagged, status) = imap
        .command_status(&format!("STATUS {} (MESSAGES)", quote(folder)))
        .unwrap();
    imap.logout();
    if !status.starts_with("OK") {
        return 0;
    }
    untagged
        .iter()
        .find_map(|u| u.text.split("MESSAGES ").nth(1))
        .and_then(|n| n.trim_end_matches(')').trim().parse().ok())
        .unwrap_or(0)
}

/// `apply` of a mailbox-only migration of `n` mailboxes (3 messages each) between two
/// fresh Dovecots; the logins each server saw.
fn logins_of_an_apply(n: usize) -> (usize, usize) {
    let users: Vec<(String, String)> = (0..n)
        .map(|i| (format!("user{i}@example.com"), format!("pw{i}")))
        .collect();
    let start = |name: &str| {
        let mut b = dovecot(name);
        for (u, p) in &users {
            b = b.user(u, p);
        }
        b.start().expect("dovecot starts")
    };
    let (src, dst) = (start("old"), start("new"));
    for (u, p) in &users {
        fill(&src, u, p, "INBOX", 0, 3);
    }
    let before = (logins(&src), logins(&dst));
    let work = tempfile::tempdir().unwrap();
    let list: Vec<(&str, &str)> = users
        .iter()
        .map(|(u, p)| (u.as_str(), p.as_str()))
        .collect();
    std::fs::write(
        work.path().join("m.yaml"),
        manifest_for(&src, &dst, &list, ""),
    )
    .unwrap();
    let apply = run(work.path(), &["apply", "-f", "m.yaml"]);
    assert_eq!(code(&apply), 0, "{}", text(&apply));
    for (u, p) in &users {
        assert_eq!(count(&dst, u, p, "INBOX"), 3, "{u}");
    }
    (logins(&src) - before.0, logins(&dst) - before.1)
}

#[test]
fn apply_logs_in_a_bounded_number_of_times_per_mailbox_whatever_their_number() {
    let (small, large) = (6, 24);
    let (src_small, dst_small) = logins_of_an_apply(small);
    let (src_large, dst_large) = logins_of_an_apply(large);
    for (n, src, dst) in [(small, src_small, dst_small), (large, src_large, dst_large)] {
        assert!(
            src <= 8 * n && dst <= 8 * n,
            "{n} mailboxes: {src} logins on the source, {dst} on the destination"
        );
    }
    // Four times the mailboxes may cost four times the logins, not sixteen.
    let ratio = |a: usize, b: usize| b as f64 / a as f64;
    assert!(
        ratio(src_small, src_large) <= 4.5 && ratio(dst_small, dst_large) <= 4.5,
        "logins grow faster than the mailboxes: source {src_small} -> {src_large}, destination {dst_small} -> {dst_large}"
    );
}

#[test]
fn a_destination_emptied_behind_the_records_is_copied_again_and_converges() {
    let (src, dst) = pair();
    fill(&src, BOB, BOB_PW, "INBOX", 0, 12);
    fill(&src, BOB, BOB_PW, "Projects", 0, 5);
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    std::fs::write(
        dir.join("m.yaml"),
        manifest_for(&src, &dst, &[(BOB, BOB_PW)], ""),
    )
    .unwrap();
    let apply = run(dir, &["apply", "-f", "m.yaml"]);
    assert_eq!(code(&apply), 0, "{}", text(&apply));
    assert_eq!(count(&dst, BOB, BOB_PW, "Projects"), 5);

    // Behind mailshift's back: a folder deleted on the destination, the inbox emptied.
    dst.doveadm(&["mailbox", "delete", "-u", BOB, "-s", "Projects"])
        .unwrap();
    dst.doveadm(&["expunge", "-u", BOB, "mailbox", "INBOX", "all"])
        .unwrap();
    assert_eq!(count(&dst, BOB, BOB_PW, "INBOX"), 0);
    // An edit of the manifest makes the records' verification void: verifying again must
    // find the messages missing and copy them, not fail and stall.
    std::fs::write(
        dir.join("m.yaml"),
        manifest_for(
            &src,
            &dst,
            &[(BOB, BOB_PW)],
            "  folders: { exclude: [Junk] }\n",
        ),
    )
    .unwrap();
    let apply = run(dir, &["apply", "-f", "m.yaml"]);
    assert_eq!(code(&apply), 0, "{}", text(&apply));
    assert_eq!(count(&dst, BOB, BOB_PW, "INBOX"), 12);
    assert_eq!(count(&dst, BOB, BOB_PW, "Projects"), 5);
    let verify = run(dir, &["verify", "-f", "m.yaml"]);
    assert_eq!(code(&verify), 0, "{}", text(&verify));
}

/// A DNS host's API end to end (PowerDNS's, on loopback): a wrong API key stops `apply` at
/// once as a person's problem (exit 3, the zone untouched, not five retries); with the right
/// key the migration lowers the TTL, waits it out, switches and restores through the API.
#[test]
fn apply_moves_mx_through_a_dns_api_and_stops_at_once_on_refused_credentials() {
    const OLD_TTL: u32 = 32;
    let (src, dst) = pair();
    fill(&src, USER, PASSWORD, "INBOX", 0, 5);
    let pdns = mailshift_harness::PowerDns::start("apply-api").unwrap();
    pdns.create_zone(
        "example.com",
        &[("example.com.", "MX", OLD_TTL, &["10 mail.old.example.net."])],
    )
    .unwrap();
    let dns = |key: &str| {
        format!(
            "  dns:
    zone: example.com
    provider:
      powerdns: {{ url: \"{url}\", apiKey: {{ value: \"{key}\" }} }}
    mx: [{{ preference: 10, exchange: mail.new.example.net. }}]
    cutoverTTL: 30
    checkNameservers: [\"127.0.0.1:{port}\"]
  cutover: {{ approved: true }}
  finalize: {{ deltaSyncAfter: 1s, keepSourceFor: 2s, restoreTTL: 60 }}
",
            url = pdns.api_url(),
            port = pdns.dns_port(),
        )
    };
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let write = |key: &str| {
        std::fs::write(
            dir.join("m.yaml"),
            manifest_for(&src, &dst, &[(USER, PASSWORD)], &dns(key)),
        )
        .unwrap()
    };

    write("wrong-key");
    let started = Instant::now();
    let out = run(dir, &["apply", "-f", "m.yaml"]);
    assert_eq!(code(&out), 3, "{}", text(&out));
    assert!(
        text(&out).contains("needs a person") && text(&out).contains("refused the credentials"),
        "{}",
        text(&out)
    );
    assert!(!text(&out).contains("wrong-key"), "{}", text(&out));
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        pdns.records("example.com", "example.com.", "MX").unwrap(),
        (OLD_TTL, vec!["10 mail.old.example.net.".to_owned()])
    );

    write(pdns.api_key());
    let out = run(dir, &["apply", "-f", "m.yaml"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert_eq!(
        pdns.records("example.com", "example.com.", "MX").unwrap(),
        (60, vec!["10 mail.new.example.net.".to_owned()])
    );
    let status = run(dir, &["status", "-f", "m.yaml", "-o", "json"]);
    let st: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    let s = &st[0]["status"];
    assert_eq!(s["phase"], "Completed", "{st:#}");
    let at = |k: &str| chrono::DateTime::parse_from_rfc3339(s[k].as_str().unwrap()).unwrap();
    assert!(
        at("mxSwitchedAt") - at("ttlLoweredAt") >= chrono::TimeDelta::seconds(i64::from(OLD_TTL))
    );
}
