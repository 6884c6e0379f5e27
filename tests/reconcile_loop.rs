//! The reconcile loop's own logic with a modelled mail engine: records, generations,
//! repeated failures becoming Stalled. (The loop against real Dovecot servers is in
//! tests/apply.rs.)

use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::{Result, bail};
use chrono::Utc;
use mailshift::accounts::{Account, Login};
use mailshift::plan::{self, Progress, Step};
use mailshift::reconcile::{LoginCheck, MailEngine, Reconciler, STALL_AFTER, Synced, Verified};
use mailshift::spec::{ConditionStatus, MailMigration, Secret};
use mailshift::store::StateDir;

/// A mail engine modelled in memory: logins succeed, syncs copy `messages`, verification
/// finds what `differences` says; syncs can be made to fail.
#[derive(Default)]
struct Model {
    fail_sync: bool,
    differences: u64,
    syncs: AtomicU32,
    synced: Mutex<Vec<String>>,
}

impl MailEngine for Model {
    async fn check_logins(&self, _: &Account) -> LoginCheck {
        (plan::Login::Ok, plan::Login::Ok)
    }

    async fn sync(&self, accounts: &[Account]) -> Result<Vec<(String, Synced)>> {
        self.syncs.fetch_add(1, Ordering::SeqCst);
        if self.fail_sync {
            bail!("destination unreachable");
        }
        let mut synced = self.synced.lock().unwrap();
        Ok(accounts
            .iter()
            .map(|a| {
                synced.push(a.address.clone());
                (
                    a.address.clone(),
                    Synced {
                        messages: 10,
                        bytes: 1000,
                        ..Synced::default()
                    },
                )
            })
            .collect())
    }

    async fn verify(&self, _: &Account) -> Result<Verified> {
        Ok(Verified {
            messages: 10,
            differences: self.differences,
        })
    }
}

fn migration(extra: &str) -> MailMigration {
    let text = format!(
        "apiVersion: mailshift.io/v1alpha1
kind: MailMigration
metadata: {{ name: model }}
spec:
  source: {{ imap: {{ host: 127.0.0.1, tls: none }} }}
  destination: {{ imap: {{ host: 127.0.0.1, tls: none }} }}
  mailboxes:
    - {{ address: a@example.com, sourcePassword: {{ env: X }}, destinationPassword: {{ env: Y }} }}
    - {{ address: b@example.com, sourcePassword: {{ env: X }}, destinationPassword: {{ env: Y }} }}
{extra}"
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

#[tokio::test]
async fn a_mailbox_only_migration_converges_and_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let mut r = reconciler(dir.path(), migration(""), Model::default());
    let mut steps = Vec::new();
    for _ in 0..20 {
        let pass = r.pass(Utc::now(), true).await.unwrap();
        match pass.plan.progress() {
            Progress::Converged => break,
            Progress::Ready => {
                let step = pass.plan.next().unwrap().step.clone();
                r.execute(&step, Utc::now()).await.unwrap();
                steps.push(step);
            }
            other => panic!("unexpected progress {other:?}"),
        }
    }
    assert!(
        matches!(steps.last(), Some(Step::MarkComplete)),
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
async fn a_step_failing_repeatedly_stalls_with_its_reason() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Model {
        fail_sync: true,
        ..Model::default()
    };
    let mut r = reconciler(dir.path(), migration(""), engine);
    for attempt in 1..=STALL_AFTER {
        let pass = r.pass(Utc::now(), true).await.unwrap();
        let step = pass.plan.next().expect("a step to try").step.clone();
        assert!(r.execute(&step, Utc::now()).await.is_err());
        let f = r.failure().unwrap();
        assert_eq!(f.count, attempt);
        assert_eq!(f.stalled, attempt >= STALL_AFTER);
    }
    let pass = r.pass(Utc::now(), true).await.unwrap();
    let stalled = pass
        .status
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
    // The stored status says so too (the CLI's `status` reads it).
    let stored = r.state.load_status().unwrap();
    assert!(stored.conditions.iter().any(|c| c.type_ == "Stalled"));
}

#[tokio::test]
async fn editing_the_spec_is_a_new_generation_that_verifies_again() {
    let dir = tempfile::tempdir().unwrap();
    let mut r = reconciler(dir.path(), migration(""), Model::default());
    loop {
        let pass = r.pass(Utc::now(), true).await.unwrap();
        let Some(next) = pass.plan.next() else { break };
        let step = next.step.clone();
        r.execute(&step, Utc::now()).await.unwrap();
    }
    let first = r.state.load_status().unwrap().observed_generation;
    let edited = migration("  folders: { exclude: [Junk] }\n");
    let mut r = reconciler(dir.path(), edited, Model::default());
    let pass = r.pass(Utc::now(), true).await.unwrap();
    assert_eq!(pass.status.observed_generation, first.map(|g| g + 1));
    let verifies = pass
        .plan
        .steps
        .iter()
        .filter(|s| matches!(s.step, Step::Verify { .. }))
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
