//! `limits` on real Dovecot servers: a byte rate on the old server and a message rate on
//! the new one hold the copy under them, and a spent daily budget pauses the copy behind a
//! time gate that opens at the instant the spent bytes leave the 24-hour window, after
//! which the copy goes on and ends exact.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use common::*;
use mailshift_harness::Dovecot;

fn pair(name: &str) -> (Dovecot, Dovecot) {
    let start = |side: &str| dovecot(&format!("{name}-{side}")).start().expect("dovecot");
    (start("old"), start("new"))
}

/// `n` messages of about `size` bytes each in the source's INBOX; their total size.
fn fill(d: &Dovecot, n: usize, size: usize) -> u64 {
    let msgs: Vec<(&str, &str, Vec<u8>)> = (0..n)
        .map(|i| {
            let body = "x".repeat(70) + "\r\n";
            let body = body.repeat(size / 72 + 1);
            (
                "",
                "17-Aug-2020 18:00:00 +0200",
                message(&format!("limits-{i}"), &format!("message {i}"), &body),
            )
        })
        .collect();
    let total = msgs.iter().map(|(_, _, m)| m.len() as u64).sum();
    load(d, "INBOX", &msgs).expect("messages loaded");
    total
}

/// A manifest for the test user with `source` and `destination` limits (YAML flow maps,
/// or empty).
fn manifest_with(src: &Dovecot, dst: &Dovecot, source: &str, destination: &str) -> String {
    let limits = |l: &str| {
        if l.is_empty() {
            String::new()
        } else {
            format!("\n    limits: {l}")
        }
    };
    format!(
        "apiVersion: mailshift.io/v1alpha1
kind: MailMigration
metadata:
  name: limited
spec:
  source:
    imap: {{ host: 127.0.0.1, port: {}, tls: none }}{}
  destination:
    imap: {{ host: 127.0.0.1, port: {}, tls: none }}{}
  mailboxes:
    - address: {USER}
      sourcePassword: {{ value: {PASSWORD} }}
      destinationPassword: {{ value: {PASSWORD} }}
",
        src.imap_port(),
        limits(source),
        dst.imap_port(),
        limits(destination),
    )
}

fn write(dir: &Path, manifest: &str) {
    std::fs::write(dir.join("m.yaml"), manifest).expect("manifest written");
}

fn text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A sync through the command line; how long it took. It must end perfect.
fn timed_sync(dir: &Path) -> Duration {
    let start = Instant::now();
    let out = mailshift(dir, &["sync", "-f", "m.yaml"]);
    let took = start.elapsed();
    assert!(out.status.success(), "{}", text(&out));
    took
}

#[test]
fn a_byte_rate_on_the_old_server_holds_the_copy_under_it() {
    let (src, dst) = pair("byte-rate");
    let total = fill(&src, 24, 40_000);
    let rate = 250_000u64;
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        &manifest_with(&src, &dst, &format!("{{ bytesPerSecond: {rate} }}"), ""),
    );
    let took = timed_sync(dir.path());
    // Over any interval t the pacer lets at most rate·(t + 1 s) bytes start, plus the last
    // batch (at most a second's worth): the copy cannot have been faster than that.
    let floor = Duration::from_secs_f64(total as f64 / rate as f64 - 2.0);
    assert!(
        took >= floor,
        "{total} bytes at {rate} B/s took {took:?}, under the {floor:?} the rate allows"
    );
    assert_eq!(count(&dst, "INBOX"), 24);
    // Nothing was lost to the pacing: a second sync finds nothing to copy.
    let again = mailshift(dir.path(), &["sync", "-f", "m.yaml", "-o", "json"]);
    let report: serde_json::Value = serde_json::from_slice(&again.stdout).expect("json report");
    assert_eq!(report["totals"]["messagesTransferred"], 0, "{report}");
    assert_eq!(report["perfect"], true, "{report}");
}

#[test]
fn a_message_rate_on_the_new_server_holds_the_appends_under_it() {
    let (src, dst) = pair("message-rate");
    fill(&src, 40, 500);
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        &manifest_with(&src, &dst, "", "{ messagesPerSecond: 8 }"),
    );
    let took = timed_sync(dir.path());
    // 40 messages at 8 per second, less the second that may run ahead and the last batch
    // (8 messages, a second's worth).
    let floor = Duration::from_secs_f64(40.0 / 8.0 - 2.0);
    assert!(took >= floor, "40 messages at 8/s took {took:?}");
    assert_eq!(count(&dst, "INBOX"), 40);
}

/// The budget's record, as mailshift keeps it in the state directory.
fn budgets(dir: &Path) -> serde_json::Value {
    let path = dir.join(".mailshift/limited/budgets.json");
    serde_json::from_slice(&std::fs::read(path).expect("budgets.json")).expect("json")
}

fn at(v: &serde_json::Value) -> DateTime<Utc> {
    v.as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(|| panic!("not an instant: {v}"))
}

#[test]
fn a_spent_daily_budget_pauses_the_copy_until_the_instant_it_has_room_again() {
    let (src, dst) = pair("budget");
    let total = fill(&src, 10, 8_000);
    let budget = 100_000u64;
    assert!(
        total < budget,
        "the whole mailbox fits the day's budget: {total}"
    );
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        &manifest_with(
            &src,
            &dst,
            &format!("{{ perMailbox: {{ bytesPerDay: {budget} }} }}"),
            "",
        ),
    );
    // The whole budget was spent by an earlier run 24 hours less 12 seconds ago.
    let spent = Utc::now() - TimeDelta::hours(24) + TimeDelta::seconds(12);
    let spent = DateTime::from_timestamp(spent.timestamp(), 0).unwrap();
    let state = dir.path().join(".mailshift/limited");
    std::fs::create_dir_all(&state).unwrap();
    std::fs::write(
        state.join("budgets.json"),
        serde_json::json!({ "source": { USER: [{ "at": spent, "bytes": budget }] } }).to_string(),
    )
    .unwrap();
    let opens = spent + TimeDelta::hours(24);

    // apply stops at the budget's gate, which opens when the spent bytes are 24 hours old.
    let first = mailshift(
        dir.path(),
        &["apply", "-f", "m.yaml", "--no-wait", "-o", "json"],
    );
    let out: serde_json::Value =
        serde_json::from_slice(&first.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&first)));
    assert_eq!(out["outcome"], "gate", "{out}");
    assert_eq!(at(&out["opensAt"]), opens, "{out}");
    assert_eq!(
        count(&dst, "INBOX"),
        0,
        "nothing copied while the budget is spent"
    );
    let plan = mailshift(dir.path(), &["plan", "-f", "m.yaml", "-o", "json"]);
    let plan_text = String::from_utf8_lossy(&plan.stdout).to_string();
    let plan: serde_json::Value =
        serde_json::from_str(&plan_text).unwrap_or_else(|e| panic!("{e}: {plan_text}"));
    assert_eq!(at(&plan[0]["plan"]["waitingUntil"]), opens, "{plan_text}");
    let gate = plan[0]["plan"]["steps"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|s| s["gates"].as_array().cloned().unwrap_or_default())
        .find(|g| g["reason"]["kind"] == "budget")
        .unwrap_or_else(|| panic!("no budget gate in the plan: {plan_text}"));
    assert_eq!(at(&gate["at"]), opens, "{gate}");
    assert!(
        gate["reason"]["budget"]
            .as_str()
            .is_some_and(|b| b.contains("for each mailbox")),
        "{gate}"
    );

    // apply waits for it, then copies everything.
    let done = mailshift(dir.path(), &["apply", "-f", "m.yaml", "-o", "json"]);
    let finished = Utc::now();
    assert!(done.status.success(), "{}", text(&done));
    assert!(
        finished >= opens,
        "finished at {finished}, before the gate opened at {opens}"
    );
    assert_eq!(count(&dst, "INBOX"), 10);
    // What was copied was charged after the gate opened; the old spending is gone.
    let ledger = budgets(dir.path());
    let entries = ledger["source"][USER]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let charged: u64 = entries.iter().map(|e| e["bytes"].as_u64().unwrap()).sum();
    assert_eq!(charged, total, "{ledger}");
    assert!(entries.iter().all(|e| at(&e["at"]) >= opens), "{ledger}");
}
