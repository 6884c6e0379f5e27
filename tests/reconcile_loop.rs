//! The reconcile loop's own logic with a modelled mail engine: records, generations,
//! repeated failures backing off and becoming Stalled, observation proportional to change,
//! mailboxes side by side. (The loop against real Dovecot servers is in tests/apply.rs.)

use mailshift::plan::{MailStep, OwnStep};
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU32, Ordering};

use anyhow::{Result, bail};
use chrono::Utc;
use mailshift::accounts::{Account, Login};
use mailshift::plan::{self, Progress, Step};
use mailshift::reconcile::{LoginCheck, MailEngine, Reconciler, STALL_AFTER, Synced, Verified};
use mailshift::spec::{ConditionStatus, MailMigration, Secret};
use mailshift::store::StateDir;

/// A mail engine modelled in memory: logins succeed, syncs copy `messages`, verification
/// finds what `differences` says (the first `differences_times` times); syncs can be made
/// to fail, for every mailbox or for one; `together` makes each sync wait until that many
/// run at once.
#[derive(Default)]
struct Model {
    fail_sync: bool,
    fail_for: Option<String>,
    differences: u64,
    differences_times: AtomicU32,
    syncs: AtomicU32,
    logins: AtomicU32,
    /// Syncs under way now, and the most seen at once.
    running: AtomicU32,
    most_at_once: AtomicU32,
    synced: Mutex<Vec<String>>,
    together: Option<tokio::sync::Barrier>,
    /// This mailbox's syncs end without finishing (a folder's error in the report).
    incomplete_for: Option<String>,
    /// This mailbox's first syncs pause at a spent budget until this instant.
    paused_until: Option<chrono::DateTime<Utc>>,
}

impl MailEngine for Model {
    async fn check_logins(&self, _: &Account) -> LoginCheck {
        self.logins.fetch_add(1, Ordering::SeqCst);
        (plan::Login::Ok, plan::Login::Ok)
    }

    async fn sync(&self, accounts: &[Account]) -> Result<Vec<(String, Synced)>> {
        self.syncs.fetch_add(1, Ordering::SeqCst);
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.most_at_once.fetch_max(now, Ordering::SeqCst);
        if let Some(b) = &self.together {
            b.wait().await;
        }
        // Let the other tasks run, as a copy waiting on the network would.
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        self.running.fetch_sub(1, Ordering::SeqCst);
        if self.fail_sync
            || accounts
                .iter()
                .any(|a| Some(&a.address) == self.fail_for.as_ref())
        {
            bail!("destination unreachable");
        }
        let mut synced = self.synced.lock().unwrap();
        Ok(accounts
            .iter()
            .map(|a| {
                synced.push(a.address.clone());
                let mut s = Synced {
                    messages: 10,
                    bytes: 1000,
                    ..Synced::default()
                };
                if self.incomplete_for.as_ref() == Some(&a.address) {
                    s.errors = vec!["INBOX: connection lost for good".into()];
                }
                if let Some(until) = self.paused_until.filter(|u| *u > pause_clock()) {
                    s.paused = Some(mailshift::spec::Pause {
                        until,
                        what: "the old server's daily budget of 1 kB for each mailbox".into(),
                    });
                }
                (a.address.clone(), s)
            })
            .collect())
    }

    async fn probe(
        &self,
        _: &mailshift::spec::Probe,
        _: &Account,
        _: &mailshift::secrets::Resolver,
    ) -> plan::ProbeState {
        plan::ProbeState::Passed { at: Utc::now() }
    }

    async fn verify(&self, _: &Account) -> Result<Verified> {
        let left = self.differences_times.load(Ordering::SeqCst);
        let differences = if left > 0 {
            self.differences_times.fetch_sub(1, Ordering::SeqCst);
            self.differences
        } else {
            0
        };
        Ok(Verified {
            messages: 10,
            differences,
            ..Default::default()
        })
    }
}

fn migration(extra: &str) -> MailMigration {
    migration_of(&["a", "b"], extra)
}

/// A mailbox-only migration of `locals`@example.com.
fn migration_of(locals: &[&str], extra: &str) -> MailMigration {
    let mailboxes: String = locals
        .iter()
        .map(|l| format!("    - {{ address: {l}@example.com, sourcePassword: {{ env: X }}, destinationPassword: {{ env: Y }} }}\n"))
        .collect();
    let text = format!(
        "apiVersion: mailshift.io/v1alpha1
kind: MailMigration
metadata: {{ name: model }}
spec:
  source: {{ imap: {{ host: 127.0.0.1, tls: none }} }}
  destination: {{ imap: {{ host: 127.0.0.1, tls: none }} }}
  mailboxes:
{mailboxes}{extra}"
    );
    let loaded = mailshift::manifest::load_text("model.yaml", &text, Default::default());
    loaded.into_result().unwrap().remove(0)
}

fn accounts(m: &MailMigration) -> Vec<Account> {
    m.spec
        .mailboxes
        .iter()
        .map(|mb| Account {
            address: mb.address.clone(),
            source: Login::Password {
                user: mb.address.clone(),
                password: Secret::new("x"),
            },
            destination: Login::Password {
                user: mb.address.clone(),
                password: Secret::new("y"),
            },
        })
        .collect()
}

fn reconciler(dir: &std::path::Path, m: MailMigration, engine: Model) -> Reconciler<Model> {
    let accounts = accounts(&m);
    Reconciler::new(m, accounts, StateDir::at(dir), engine).unwrap()
}

/// Turns until nothing can run now; the last turn.
async fn until_at_rest(r: &mut Reconciler<Model>) -> mailshift::reconcile::Turn {
    for _ in 0..1000 {
        let turn = r.turn(|_| true).await.unwrap();
        if turn.done.is_empty() {
            return turn;
        }
    }
    panic!("the loop does not come to rest");
}

#[tokio::test]
async fn a_mailbox_only_migration_converges_and_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let mut r = reconciler(dir.path(), migration(""), Model::default());
    let mut steps = Vec::new();
    for _ in 0..20 {
        let turn = r.turn(|_| true).await.unwrap();
        steps.extend(turn.done.iter().map(|d| d.step.clone()));
        match turn.pass.plan.progress() {
            Progress::Converged => break,
            Progress::Ready => {}
            other => panic!("unexpected progress {other:?}"),
        }
    }
    assert!(
        matches!(steps.last(), Some(Step::Own(OwnStep::MarkComplete))),
        "{steps:?}"
    );
    assert_eq!(
        r.engine.synced.lock().unwrap().len(),
        2,
        "each mailbox copied once"
    );
    let status = r.state.load_status().unwrap();
    assert!(status.completed_at.is_some());
    let ready = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .unwrap();
    assert_eq!(ready.status, ConditionStatus::True);

    // A fresh loop over the same state directory finds nothing to do: the records persist.
    let mut again = reconciler(dir.path(), migration(""), Model::default());
    let pass = again.pass(Utc::now(), true).await.unwrap();
    assert!(pass.plan.is_empty(), "{}", pass.plan);
    assert_eq!(again.engine.syncs.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn logins_are_checked_once_per_mailbox_whatever_the_number_of_mailboxes() {
    for n in [10usize, 40] {
        let locals: Vec<String> = (0..n).map(|i| format!("user{i}")).collect();
        let locals: Vec<&str> = locals.iter().map(String::as_str).collect();
        let dir = tempfile::tempdir().unwrap();
        let mut r = reconciler(
            dir.path(),
            migration_of(&locals, "  sync: { concurrency: 4 }\n"),
            Model::default(),
        );
        let mut turns = 0;
        loop {
            let turn = r.turn(|_| true).await.unwrap();
            turns += 1;
            if turn.pass.plan.progress() == Progress::Converged {
                break;
            }
            assert!(turns < 10 * n, "no convergence");
        }
        // Copies and verifications prove the logins; only the first look checks them.
        assert_eq!(
            r.engine.logins.load(Ordering::SeqCst) as usize,
            n,
            "n = {n}"
        );
        assert_eq!(r.engine.syncs.load(Ordering::SeqCst) as usize, n);
        // One turn carries the whole migration (well within its 30 s), then one finds it done.
        assert!(turns <= 2, "n = {n}: {turns} turns");
    }
}

#[tokio::test]
async fn mailboxes_are_copied_side_by_side_up_to_the_concurrency() {
    let dir = tempfile::tempdir().unwrap();
    // Each sync waits until three run at once: carried out one after the other, they would
    // wait forever.
    let engine = Model {
        together: Some(tokio::sync::Barrier::new(3)),
        ..Model::default()
    };
    let mut r = reconciler(
        dir.path(),
        migration_of(&["a", "b", "c"], "  sync: { concurrency: 3 }\n"),
        engine,
    );
    let turn = tokio::time::timeout(std::time::Duration::from_secs(30), r.turn(|_| true))
        .await
        .expect("three copies run at once")
        .unwrap();
    let copied = turn
        .done
        .iter()
        .filter(|d| matches!(d.step, Step::Mail(MailStep::InitialSync { .. })))
        .count();
    assert_eq!(copied, 3);
    assert_eq!(
        turn.pass.plan.progress(),
        Progress::Converged,
        "{}",
        turn.pass.plan
    );
}

#[tokio::test]
async fn never_more_mailboxes_at_once_than_the_concurrency() {
    let dir = tempfile::tempdir().unwrap();
    let locals: Vec<String> = (0..12).map(|i| format!("u{i}")).collect();
    let locals: Vec<&str> = locals.iter().map(String::as_str).collect();
    let mut r = reconciler(
        dir.path(),
        migration_of(&locals, "  sync: { concurrency: 2 }\n"),
        Model::default(),
    );
    let turn = until_at_rest(&mut r).await;
    assert_eq!(turn.pass.plan.progress(), Progress::Converged);
    assert_eq!(r.engine.syncs.load(Ordering::SeqCst), 12);
    assert_eq!(r.engine.most_at_once.load(Ordering::SeqCst), 2);
}

static CLOCK: AtomicI64 = AtomicI64::new(0);

fn clock() -> chrono::DateTime<Utc> {
    "2026-06-01T12:00:00Z"
        .parse::<chrono::DateTime<Utc>>()
        .unwrap()
        + chrono::Duration::seconds(CLOCK.load(Ordering::SeqCst))
}

#[tokio::test]
async fn a_failing_mailbox_backs_off_and_stalls_alone() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Model {
        fail_for: Some("b@example.com".into()),
        ..Model::default()
    };
    let mut r =
        reconciler(dir.path(), migration_of(&["a", "b", "c"], ""), engine).with_clock(clock);
    let mut attempts = 0;
    for _ in 0..50 {
        let turn = r.turn(|_| true).await.unwrap();
        for d in &turn.done {
            if let Err(f) = &d.result {
                attempts += 1;
                assert_eq!(f.count, attempts);
                assert_eq!(f.stalled, attempts >= STALL_AFTER);
            }
        }
        match turn.pass.plan.progress() {
            Progress::Ready => {}
            // Backing off: the clock moves to the retry.
            Progress::WaitUntil { at } => {
                CLOCK.fetch_add((at - clock()).num_seconds(), Ordering::SeqCst);
            }
            Progress::Blocked { reasons } => {
                assert!(
                    reasons
                        .iter()
                        .any(|r| r.contains("destination unreachable")),
                    "{reasons:?}"
                );
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(attempts, STALL_AFTER);
    let status = r.state.load_status().unwrap();
    let counts = status.mailboxes.unwrap();
    assert_eq!((counts.verified, counts.total), (2, 3), "a and c went on");
    let stalled = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Stalled")
        .expect("a Stalled condition");
    assert_eq!(stalled.status, ConditionStatus::True);
    assert!(
        stalled.message.contains("destination unreachable"),
        "{}",
        stalled.message
    );
    // The failures are records: a new loop over the same state knows them ...
    let mut again = reconciler(
        dir.path(),
        migration_of(&["a", "b", "c"], ""),
        Model::default(),
    );
    assert!(again.failure().is_some_and(|f| f.stalled));
    // ... and a person running the loop again gives the step its attempts back.
    again.retry_stalled().unwrap();
    let turn = until_at_rest(&mut again).await;
    assert_eq!(turn.pass.plan.progress(), Progress::Converged);
}

#[tokio::test]
async fn a_verification_that_finds_messages_missing_copies_them_and_verifies_again() {
    // The records say copied; the destination was re-created meanwhile.
    let dir = tempfile::tempdir().unwrap();
    let engine = Model {
        differences: 7,
        differences_times: AtomicU32::new(1),
        ..Model::default()
    };
    let mut r = reconciler(dir.path(), migration_of(&["a"], ""), engine);
    let mut steps = Vec::new();
    for _ in 0..10 {
        let turn = r.turn(|_| true).await.unwrap();
        steps.extend(turn.done.iter().map(|d| d.step.to_string()));
        if turn.pass.plan.progress() == Progress::Converged {
            break;
        }
    }
    assert_eq!(
        steps,
        [
            "copy a@example.com to the new server",
            "verify a@example.com on both servers",
            "copy again what is missing of a@example.com (7 differences found)",
            "verify a@example.com on both servers",
            "mark the migration complete"
        ]
    );
}

#[tokio::test]
async fn editing_the_spec_is_a_new_generation_that_verifies_again() {
    let dir = tempfile::tempdir().unwrap();
    let mut r = reconciler(dir.path(), migration(""), Model::default());
    until_at_rest(&mut r).await;
    let first = r.state.load_status().unwrap().observed_generation;
    let edited = migration("  folders: { exclude: [Junk] }\n");
    let mut r = reconciler(dir.path(), edited, Model::default());
    let pass = r.pass(Utc::now(), true).await.unwrap();
    assert_eq!(pass.status.observed_generation, first.map(|g| g + 1));
    let verifies = pass
        .plan
        .steps
        .iter()
        .filter(|s| matches!(s.step, Step::Mail(MailStep::Verify { .. })))
        .count();
    assert_eq!(
        verifies, 2,
        "both mailboxes are verified again:\n{}",
        pass.plan
    );
}

#[tokio::test]
async fn plan_without_persist_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let mut r = reconciler(&state, migration(""), Model::default());
    let pass = r.pass(Utc::now(), false).await.unwrap();
    assert!(!pass.plan.is_empty());
    assert!(
        !state.exists(),
        "plan must not create or write the state directory"
    );
}

static PAUSE_CLOCK: AtomicI64 = AtomicI64::new(0);
static UNFINISHED_CLOCK: AtomicI64 = AtomicI64::new(0);

fn unfinished_clock() -> chrono::DateTime<Utc> {
    "2026-06-01T12:00:00Z"
        .parse::<chrono::DateTime<Utc>>()
        .unwrap()
        + chrono::Duration::seconds(UNFINISHED_CLOCK.load(Ordering::SeqCst))
}

fn pause_clock() -> chrono::DateTime<Utc> {
    "2026-06-01T12:00:00Z"
        .parse::<chrono::DateTime<Utc>>()
        .unwrap()
        + chrono::Duration::seconds(PAUSE_CLOCK.load(Ordering::SeqCst))
}

/// A sync that stopped with an error has not synced the mailbox: the loop copies again
/// (with backoff, then stalled with the reason) instead of verifying a copy never finished.
#[tokio::test]
async fn an_unfinished_copy_is_copied_again_not_verified() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Model {
        incomplete_for: Some("b@example.com".into()),
        ..Model::default()
    };
    let mut r =
        reconciler(dir.path(), migration_of(&["a", "b"], ""), engine).with_clock(unfinished_clock);
    let mut steps = Vec::new();
    for _ in 0..60 {
        let turn = r.turn(|_| true).await.unwrap();
        steps.extend(
            turn.done
                .iter()
                .filter(|d| d.step.address() == Some("b@example.com"))
                .map(|d| d.step.clone()),
        );
        match turn.pass.plan.progress() {
            Progress::Blocked { .. } => break,
            Progress::WaitUntil { at } => {
                UNFINISHED_CLOCK
                    .fetch_add((at - unfinished_clock()).num_seconds(), Ordering::SeqCst);
            }
            _ => {}
        }
    }
    assert_eq!(steps.len(), STALL_AFTER as usize, "{steps:?}");
    assert!(!steps.is_empty());
    assert!(
        steps
            .iter()
            .all(|s| matches!(s, Step::Mail(MailStep::InitialSync { .. }))),
        "b was only ever copied, never verified: {steps:?}"
    );
    let records = r.state.load_status().unwrap();
    let counts = records.mailboxes.unwrap();
    assert_eq!(counts.verified, 1, "a went on");
}

/// A copy paused at a spent daily budget is not a failure: its step waits behind the
/// budget's time gate, then copies again and the mailbox converges.
#[tokio::test]
async fn a_paused_copy_waits_for_its_budget_then_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let until = pause_clock() + chrono::Duration::hours(3);
    let engine = Model {
        paused_until: Some(until),
        ..Model::default()
    };
    let mut r = reconciler(dir.path(), migration_of(&["a"], ""), engine).with_clock(pause_clock);
    let turn = until_at_rest(&mut r).await;
    assert_eq!(turn.pass.plan.progress(), Progress::WaitUntil { at: until });
    let gate = turn
        .pass
        .plan
        .steps
        .iter()
        .flat_map(|s| s.gates.iter())
        .find_map(|g| match g {
            plan::Gate::Time {
                at,
                reason: plan::TimeReason::Budget { budget, .. },
            } => Some((*at, budget.clone())),
            _ => None,
        })
        .expect("a budget gate");
    assert_eq!(gate.0, until);
    assert!(gate.1.contains("daily budget"), "{}", gate.1);
    assert!(r.failure().is_none(), "a pause is not a failure");
    PAUSE_CLOCK.fetch_add(3 * 3600, Ordering::SeqCst);
    let turn = until_at_rest(&mut r).await;
    assert_eq!(turn.pass.plan.progress(), Progress::Converged);
    assert_eq!(r.engine.syncs.load(Ordering::SeqCst), 2);
}
