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
