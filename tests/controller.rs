//! The Kubernetes controller's reconcile against a fake API server (tower-test, as kube-rs's
//! reference operator does: no API server can be installed here), with a modelled mail
//! engine. Plus the binary without a reachable cluster.

use mailshift::plan::{ForwardingChange, RelayChange};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Result, bail};
use chrono::{DateTime, Utc};
use http::{Method, Request, Response, StatusCode};
use kube::Client;
use kube::client::Body;
use kube::runtime::controller::Action;
use mailshift::accounts::{self, Account};
use mailshift::controller::{Context, EngineFactory, FINALIZER, Metrics, reconcile};
use mailshift::plan;
use mailshift::reconcile::{LoginCheck, MailEngine, Reconciler, Synced, Verified};
use mailshift::secrets::Resolver;
use mailshift::spec::{MailMigration, MailMigrationStatus};
use mailshift::store::StateDir;
use serde_json::{Value, json};

const NS: &str = "mail";
const NAME: &str = "model";

/// A mail engine modelled in memory (as in tests/reconcile_loop.rs).
#[derive(Clone, Default)]
struct Models {
    fail_sync: bool,
    syncs: Arc<AtomicU32>,
    logins: Arc<AtomicU32>,
}

struct Model(Models);

impl MailEngine for Model {
    async fn check_logins(&self, _: &Account) -> LoginCheck {
        self.0.logins.fetch_add(1, Ordering::SeqCst);
        (plan::Login::Ok, plan::Login::Ok)
    }

    async fn sync(&self, accounts: &[Account]) -> Result<Vec<(String, Synced)>> {
        self.0.syncs.fetch_add(1, Ordering::SeqCst);
        if self.0.fail_sync {
            bail!("destination unreachable");
        }
        Ok(accounts
            .iter()
            .map(|a| {
                let s = Synced {
                    messages: 10,
                    bytes: 1000,
                    ..Synced::default()
                };
                (a.address.clone(), s)
            })
            .collect())
    }

    async fn probe(
        &self,
        _: &mailshift::spec::Probe,
        _: &mailshift::accounts::Account,
        _: &mailshift::secrets::Resolver,
    ) -> mailshift::plan::ProbeState {
        mailshift::plan::ProbeState::Passed {
            at: chrono::Utc::now(),
        }
    }

    async fn verify(&self, _: &Account) -> Result<Verified> {
        Ok(Verified {
            messages: 10,
            differences: 0,
            ..Default::default()
        })
    }
}

impl EngineFactory for Models {
    type Engine = Model;

    fn prepare(
        &self,
        m: &MailMigration,
        resolver: &Resolver,
        _: StateDir,
    ) -> Result<(Model, Vec<Account>)> {
        // The real resolution: passwords come from the namespace's Secret.
        let accounts = accounts::resolve(&m.spec, resolver)?;
        Ok((Model(self.clone()), accounts))
    }
}

fn t0() -> DateTime<Utc> {
    "2026-03-07T12:00:00Z".parse().unwrap()
}

/// The resource as the API server would hold it: namespaced, generation 3, mailbox
/// a@example.com.
fn resource(extra: &str, finalizer: bool, status: Option<Value>) -> Value {
    migration(&["a"], extra, finalizer, status)
}

/// A migration of `mailboxes` (local parts at example.com, passwords in Secret `pw`) with
/// `extra` appended to the spec, as the API server would hold it: namespaced, generation 3.
fn migration(mailboxes: &[&str], extra: &str, finalizer: bool, status: Option<Value>) -> Value {
    let list: String = mailboxes
        .iter()
        .map(|m| {
            format!(
                "    - {{ address: {m}@example.com, sourcePassword: {{ secretKeyRef: {{ name: pw, key: {m}-src }} }}, destinationPassword: {{ secretKeyRef: {{ name: pw, key: {m}-dst }} }} }}\n"
            )
        })
        .collect();
    let text = format!(
        "apiVersion: mailshift.io/v1alpha1
kind: MailMigration
metadata: {{ name: {NAME} }}
spec:
  source: {{ imap: {{ host: 127.0.0.1, tls: none }} }}
  destination: {{ imap: {{ host: 127.0.0.1, tls: none }} }}
  mailboxes:
{list}{extra}"
    );
    let m = mailshift::manifest::load_text("model.yaml", &text, Default::default())
        .into_result()
        .unwrap()
        .remove(0);
    let mut v = serde_json::to_value(&m).unwrap();
    v["metadata"]["namespace"] = json!(NS);
    v["metadata"]["generation"] = json!(3);
    v["metadata"]["uid"] = json!(UID);
    v["metadata"]["resourceVersion"] = json!("1");
    if finalizer {
        v["metadata"]["finalizers"] = json!([FINALIZER]);
    }
    if let Some(s) = status {
        v["status"] = s;
    }
    v
}

fn secret() -> Value {
    // base64 of "s", "d".
    json!({"apiVersion": "v1", "kind": "Secret",
           "metadata": {"name": "pw", "namespace": NS},
           "data": {"a-src": "cw==", "a-dst": "ZA=="}})
}

/// One request the fake API server received.
#[derive(Clone, Debug)]
struct Seen {
    method: Method,
    path: String,
    query: String,
    body: Value,
}

/// A fake API server holding one MailMigration and some Secrets; it answers the calls the
/// controller makes and records them.
#[derive(Clone)]
struct Fake {
    /// The MailMigrations it holds, the first one being the tests' usual `NAME`.
    objects: Arc<Mutex<Vec<Value>>>,
    seen: Arc<Mutex<Vec<Seen>>>,
    /// batch/v1 Jobs in the namespace.
    jobs: Arc<Mutex<Vec<Value>>>,
    /// The log of each Job's one Pod (named `<job>-pod`), by Job name: a Job without one
    /// has no Pod yet.
    logs: Arc<Mutex<std::collections::HashMap<String, String>>>,
    /// Secrets the controller created, kept with a resourceVersion each.
    written: Arc<Mutex<Vec<Value>>>,
}

impl Fake {
    fn start(object: Value, secrets: Vec<Value>) -> (Client, Fake) {
        Fake::start_many(vec![object], secrets)
    }

    /// A stand-in holding several MailMigrations (distinct names) in the namespace.
    fn start_many(objects: Vec<Value>, secrets: Vec<Value>) -> (Client, Fake) {
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let fake = Fake {
            objects: Arc::new(Mutex::new(objects)),
            seen: Arc::default(),
            jobs: Arc::default(),
            logs: Arc::default(),
            written: Arc::default(),
        };
        let f = fake.clone();
        tokio::spawn(async move {
            while let Some((req, send)) = handle.next_request().await {
                let (parts, body) = req.into_parts();
                let bytes = body.collect_bytes().await.unwrap();
                let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                let seen = Seen {
                    method: parts.method.clone(),
                    path: parts.uri.path().to_owned(),
                    query: parts.uri.query().unwrap_or("").to_owned(),
                    body,
                };
                f.seen.lock().unwrap().push(seen.clone());
                let (code, reply) = f.answer(&seen, &secrets);
                // A Pod's log is plain text, everything else JSON.
                let bytes = match reply {
                    Value::String(text) if seen.path.ends_with("/log") => text.into_bytes(),
                    reply => serde_json::to_vec(&reply).unwrap(),
                };
                let response = Response::builder()
                    .status(code)
                    .body(Body::from(bytes))
                    .unwrap();
                send.send_response(response);
            }
        });
        (Client::new(service, "default"), fake)
    }

    fn answer(&self, s: &Seen, secrets: &[Value]) -> (StatusCode, Value) {
        if s.path.starts_with("/apis/batch/v1/") {
            return self.answer_jobs(s);
        }
        if s.path.starts_with(&format!("/api/v1/namespaces/{NS}/pods")) {
            return self.answer_pods(s);
        }
        if s.path
            .starts_with(&format!("/api/v1/namespaces/{NS}/secrets"))
            && let Some(answer) = self.answer_written_secrets(s)
        {
            return answer;
        }
        let collection = format!("/apis/mailshift.io/v1alpha1/namespaces/{NS}/mailmigrations/");
        let events = format!("/apis/events.k8s.io/v1/namespaces/{NS}/events");
        let mut objects = self.objects.lock().unwrap();
        let named = s
            .path
            .strip_prefix(&collection)
            .map(|rest| rest.trim_end_matches("/status"))
            .unwrap_or(NAME);
        let object_path = format!("{collection}{named}");
        let mut none = Value::Null;
        let obj = match objects.iter_mut().find(|o| o["metadata"]["name"] == named) {
            Some(o) => o,
            None if s.path.starts_with(&collection) => return not_found(),
            // Not about a MailMigration (a Secret, an Event).
            None => &mut none,
        };
        match (&s.method, s.path.as_str()) {
            (&Method::PATCH, p) if p == format!("{object_path}/status") => {
                obj["status"] = s.body["status"].clone();
                (StatusCode::OK, obj.clone())
            }
            (&Method::PATCH, p) if p == object_path => {
                // The finalizer helper's JSON patches.
                for op in s.body.as_array().unwrap() {
                    match (op["op"].as_str().unwrap(), op["path"].as_str().unwrap()) {
                        ("add", "/metadata/finalizers") => {
                            obj["metadata"]["finalizers"] = op["value"].clone()
                        }
                        ("remove", path) if path.starts_with("/metadata/finalizers/") => {
                            let i: usize = path.rsplit('/').next().unwrap().parse().unwrap();
                            obj["metadata"]["finalizers"]
                                .as_array_mut()
                                .unwrap()
                                .remove(i);
                        }
                        _ => {}
                    }
                }
                (StatusCode::OK, obj.clone())
            }
            (&Method::GET, p) if p.starts_with(&format!("/api/v1/namespaces/{NS}/secrets/")) => {
                let name = p.rsplit('/').next().unwrap();
                match secrets.iter().find(|s| s["metadata"]["name"] == name) {
                    Some(s) => (StatusCode::OK, s.clone()),
                    None => not_found(),
                }
            }
            (&Method::POST, p) if p == format!("{events}/") || p == events => {
                (StatusCode::CREATED, s.body.clone())
            }
            (&Method::PATCH, p) if p.starts_with(&format!("{events}/")) => {
                (StatusCode::OK, s.body.clone())
            }
            _ => not_found(),
        }
    }

    fn object(&self) -> MailMigration {
        self.object_named(NAME)
    }

    fn object_named(&self, name: &str) -> MailMigration {
        let objects = self.objects.lock().unwrap();
        let o = objects.iter().find(|o| o["metadata"]["name"] == name);
        serde_json::from_value(o.expect("an object of that name").clone()).unwrap()
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    fn events(&self) -> Vec<Value> {
        self.seen()
            .into_iter()
            .filter(|s| s.method == Method::POST && s.path.ends_with("/events"))
            .map(|s| s.body)
            .collect()
    }

    fn status_patches(&self) -> Vec<Seen> {
        self.seen()
            .into_iter()
            .filter(|s| s.path.ends_with("/status"))
            .collect()
    }
}

impl Fake {
    /// Creating and replacing Secrets, as the API server does: a replace must carry the
    /// resourceVersion it read (409 otherwise). `None` for a read of one it did not write.
    fn answer_written_secrets(&self, s: &Seen) -> Option<(StatusCode, Value)> {
        let mut written = self.written.lock().unwrap();
        let collection = format!("/api/v1/namespaces/{NS}/secrets");
        let name = s.path.strip_prefix(&format!("{collection}/"));
        let i = name.and_then(|n| written.iter().position(|w| w["metadata"]["name"] == n));
        match (&s.method, i) {
            (&Method::POST, _) if s.path == collection => {
                let n = &s.body["metadata"]["name"];
                if written.iter().any(|w| &w["metadata"]["name"] == n) {
                    return Some((
                        StatusCode::CONFLICT,
                        json!({"kind": "Status", "code": 409, "reason": "AlreadyExists", "status": "Failure", "message": "exists"}),
                    ));
                }
                let mut secret = s.body.clone();
                secret["metadata"]["resourceVersion"] = json!("1");
                written.push(secret.clone());
                Some((StatusCode::CREATED, secret))
            }
            (&Method::PUT, Some(i)) => {
                let stored = written[i]["metadata"]["resourceVersion"].clone();
                if s.body["metadata"]["resourceVersion"] != stored {
                    return Some((
                        StatusCode::CONFLICT,
                        json!({"kind": "Status", "code": 409, "reason": "Conflict", "status": "Failure", "message": "changed"}),
                    ));
                }
                let next = stored.as_str().unwrap().parse::<u64>().unwrap() + 1;
                let mut secret = s.body.clone();
                secret["metadata"]["resourceVersion"] = json!(next.to_string());
                written[i] = secret.clone();
                Some((StatusCode::OK, secret))
            }
            (&Method::GET, Some(i)) => Some((StatusCode::OK, written[i].clone())),
            _ => None,
        }
    }
}

fn not_found() -> (StatusCode, Value) {
    (
        StatusCode::NOT_FOUND,
        json!({"apiVersion": "v1", "kind": "Status", "status": "Failure",
               "reason": "NotFound", "code": 404, "message": "not found"}),
    )
}

/// Reconciles until the controller would not come straight back (at most 10 times); the
/// actions, in order.
async fn until_at_rest(fake: &Fake, ctx: &Arc<Context<Models>>) -> Vec<Action> {
    let mut actions = Vec::new();
    for _ in 0..10 {
        let action = reconcile(Arc::new(fake.object()), ctx.clone())
            .await
            .unwrap();
        let done = action != Action::requeue(Duration::from_secs(1));
        actions.push(action);
        if done {
            break;
        }
    }
    actions
}

fn context(client: Client, engines: Models, dir: &std::path::Path) -> Arc<Context<Models>> {
    Arc::new(Context::new(client, engines, dir, Arc::new(Metrics::default())).with_clock(t0))
}

fn condition<'a>(
    s: &'a MailMigrationStatus,
    type_: &str,
) -> Option<&'a mailshift::spec::Condition> {
    s.conditions.iter().find(|c| c.type_ == type_)
}

#[tokio::test]
async fn the_first_reconcile_adds_the_finalizer_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let (client, fake) = Fake::start(resource("", false, None), vec![secret()]);
    let ctx = context(client, Models::default(), dir.path());
    let action = reconcile(Arc::new(fake.object()), ctx).await.unwrap();
    assert_eq!(action, Action::await_change());
    let seen = fake.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].method, Method::PATCH);
    assert_eq!(
        fake.object().metadata.finalizers,
        Some(vec![FINALIZER.to_owned()])
    );
}

#[tokio::test]
async fn a_reconcile_carries_out_a_turn_publishes_events_and_applies_status_once() {
    let dir = tempfile::tempdir().unwrap();
    let (client, fake) = Fake::start(resource("", true, None), vec![secret()]);
    let engines = Models::default();
    let ctx = context(client, engines.clone(), dir.path());
    let action = reconcile(Arc::new(fake.object()), ctx.clone())
        .await
        .unwrap();
    // One turn: every step that can run now, each as soon as the one before allows.
    assert_eq!(engines.syncs.load(Ordering::SeqCst), 1, "one copy");
    assert_eq!(
        action,
        Action::requeue(Duration::from_secs(3600)),
        "converged: come back for drift"
    );

    let seen = fake.seen();
    assert!(
        seen[0].method == Method::GET && seen[0].path.ends_with("/secrets/pw"),
        "the referenced Secret is read by name: {seen:?}"
    );
    let events = fake.events();
    let actions: Vec<&str> = events
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        ["InitialSync", "Verify", "MarkComplete"],
        "one Event per step"
    );
    for e in &events {
        assert_eq!(e["type"], "Normal");
        assert_eq!(e["reason"], "StepApplied");
        assert_eq!(e["regarding"]["name"], NAME);
    }

    let patches = fake.status_patches();
    assert_eq!(patches.len(), 1, "the status is applied once per reconcile");
    assert!(
        patches[0]
            .query
            .contains("fieldManager=mailshift-controller"),
        "{}",
        patches[0].query
    );
    assert!(
        patches[0].query.contains("force=true"),
        "server-side apply, forced"
    );
    assert_eq!(patches[0].body["apiVersion"], "mailshift.io/v1alpha1");
    let status = fake.object().status.unwrap();
    assert_eq!(status.observed_generation, Some(3), "metadata.generation");
    let ready = condition(&status, "Ready").unwrap();
    assert_eq!(ready.status, mailshift::spec::ConditionStatus::True);
    assert_eq!(ready.observed_generation, Some(3));
    assert!(
        condition(&status, "Reconciling").is_none() && condition(&status, "Stalled").is_none(),
        "abnormal-true conditions only while true"
    );
    assert_eq!(status.mailboxes.unwrap().verified, 1);
    assert_eq!(ctx.metrics.reconciles(), 1);
}

#[tokio::test]
async fn reconciles_drive_a_migration_to_completion_then_requeue_for_drift() {
    let dir = tempfile::tempdir().unwrap();
    let (client, fake) = Fake::start(resource("", true, None), vec![secret()]);
    let ctx = context(client, Models::default(), dir.path());
    let actions = until_at_rest(&fake, &ctx).await;
    let status = fake.object().status.unwrap();
    assert!(status.completed_at.is_some(), "{status:?}");
    assert_eq!(
        condition(&status, "Ready").unwrap().status,
        mailshift::spec::ConditionStatus::True
    );
    assert_eq!(
        actions.last(),
        Some(&Action::requeue(Duration::from_secs(3600)))
    );
    let reasons: Vec<String> = fake
        .events()
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        reasons,
        ["InitialSync", "Verify", "MarkComplete"],
        "one event per step"
    );
}

#[tokio::test]
async fn a_restarted_controller_resumes_from_the_status_not_from_scratch() {
    // The first controller drives the migration to completion; its cache directory is then
    // lost (a pod restart, a failover to the other replica).
    let first = tempfile::tempdir().unwrap();
    let (client, fake) = Fake::start(resource("", true, None), vec![secret()]);
    let engines = Models::default();
    let ctx = context(client.clone(), engines.clone(), first.path());
    until_at_rest(&fake, &ctx).await;
    let status = fake.object().status.unwrap();
    assert!(status.completed_at.is_some(), "{status:?}");
    let records = status.records.clone().expect("records kept in the status");
    assert!(
        matches!(
            records.mailboxes[&mailshift::address::Address::of("a@example.com")].verification,
            mailshift::plan::Verification::Equal { .. }
        ),
        "{records:?}"
    );
    assert_eq!(engines.syncs.load(Ordering::SeqCst), 1);
    let events_before = fake.events().len();
    drop(ctx);
    drop(first);

    let second = tempfile::tempdir().unwrap();
    let ctx = context(client, engines.clone(), second.path());
    let action = reconcile(Arc::new(fake.object()), ctx).await.unwrap();
    assert_eq!(action, Action::requeue(Duration::from_secs(3600)));
    assert_eq!(
        engines.syncs.load(Ordering::SeqCst),
        1,
        "nothing copied again after the restart"
    );
    assert_eq!(fake.events().len(), events_before, "no step taken again");
    let status = fake.object().status.unwrap();
    assert_eq!(
        condition(&status, "Ready").unwrap().status,
        mailshift::spec::ConditionStatus::True
    );
}

#[tokio::test]
async fn the_requeue_is_the_instant_the_gate_opens() {
    // A gateway cutover 10 minutes ago, a delta sync due 30 minutes after it: the loop must
    // come back in exactly 20 minutes.
    let gateway_on = t0() - chrono::Duration::minutes(10);
    // The gateway is observed on a real Postfix, where it was switched on back then.
    let postfix = mailshift_harness::Postfix::builder().start().unwrap();
    let extra = format!(
        "  domains: [example.com]
  gateway: {{ postfix: {{ configDir: {} }}, relayTo: \"[127.0.0.1]:2526\" }}
  finalize: {{ deltaSyncAfter: 30m }}
",
        postfix.config_dir().display()
    );
    let status = json!({ "gatewayOnAt": gateway_on.to_rfc3339() });
    let obj = resource(&extra, true, Some(status));
    mailshift::routing::apply(
        &RelayChange::GatewayOn {
            relay_to: "[127.0.0.1]:2526".into(),
            domains: vec!["example.com".into()],
        },
        &serde_json::from_value(obj["spec"].clone()).unwrap(),
        &mailshift::secrets::Resolver::default(),
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (client, fake) = Fake::start(obj, vec![secret()]);
    let ctx = context(client, Models::default(), dir.path());
    let action = until_at_rest(&fake, &ctx).await.pop().unwrap();
    let status = fake.object().status.unwrap();
    assert_eq!(
        status.waiting_until,
        Some(gateway_on + chrono::Duration::minutes(30)),
        "{status:#?}"
    );
    assert_eq!(action, Action::requeue(Duration::from_secs(20 * 60)));
}

static BACKOFF_CLOCK: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);

fn backoff_clock() -> DateTime<Utc> {
    t0() + chrono::Duration::seconds(BACKOFF_CLOCK.load(Ordering::SeqCst))
}

#[tokio::test]
async fn a_failing_step_is_a_warning_event_and_backs_off() {
    let dir = tempfile::tempdir().unwrap();
    let (client, fake) = Fake::start(resource("", true, None), vec![secret()]);
    let engines = Models {
        fail_sync: true,
        ..Models::default()
    };
    let ctx = Arc::new(
        Context::new(client, engines, dir.path(), Arc::new(Metrics::default()))
            .with_clock(backoff_clock),
    );
    for attempt in 1..=2u32 {
        let action = reconcile(Arc::new(fake.object()), ctx.clone())
            .await
            .unwrap();
        let wait = Reconciler::<Model>::backoff(attempt);
        assert_eq!(action, Action::requeue(wait));
        // Before the backoff is over, the step is not tried again.
        let early = reconcile(Arc::new(fake.object()), ctx.clone())
            .await
            .unwrap();
        assert_eq!(early, Action::requeue(wait));
        BACKOFF_CLOCK.fetch_add(wait.as_secs() as i64, Ordering::SeqCst);
    }
    let events = fake.events();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["type"], "Warning");
    assert_eq!(events[0]["reason"], "StepFailed");
    let note = events[0]["note"].as_str().unwrap();
    assert!(
        note.contains("attempt 1") && note.contains("destination unreachable"),
        "{note}"
    );
    // The same failure again is recorded as a series of that Event (kube's recorder).
    let series: Vec<Seen> = fake
        .seen()
        .into_iter()
        .filter(|s| s.method == Method::PATCH && s.path.contains("/events/"))
        .collect();
    assert_eq!(series.len(), 1, "{series:?}");
    assert_eq!(ctx.metrics.failures("StepFailed"), 2);
}

#[tokio::test]
async fn a_missing_secret_is_reported_in_status_and_an_event() {
    let dir = tempfile::tempdir().unwrap();
    let (client, fake) = Fake::start(resource("", true, None), vec![]);
    let engines = Models::default();
    let ctx = context(client, engines.clone(), dir.path());
    let action = reconcile(Arc::new(fake.object()), ctx).await.unwrap();
    assert_eq!(action, Action::requeue(Duration::from_secs(60)));
    assert_eq!(engines.syncs.load(Ordering::SeqCst), 0);
    let status = fake.object().status.unwrap();
    let stalled = condition(&status, "Stalled").unwrap();
    assert_eq!(stalled.reason, "InvalidConfiguration");
    assert!(stalled.message.contains("Secret pw"), "{}", stalled.message);
    assert_eq!(status.observed_generation, Some(3));
    assert_eq!(fake.events()[0]["type"], "Warning");
}

#[tokio::test]
async fn deletion_says_what_is_left_and_removes_the_finalizer() {
    let dir = tempfile::tempdir().unwrap();
    let extra = "  domains: [example.com]
  gateway: { postfix: { configDir: /etc/postfix }, relayTo: \"[127.0.0.1]:2526\" }
";
    let mut obj = resource(extra, true, None);
    obj["metadata"]["deletionTimestamp"] = json!("2026-03-07T11:00:00Z");
    let (client, fake) = Fake::start(obj, vec![secret()]);
    let engines = Models::default();
    let ctx = context(client, engines.clone(), dir.path());
    let action = reconcile(Arc::new(fake.object()), ctx).await.unwrap();
    assert_eq!(action, Action::await_change());
    assert_eq!(
        engines.syncs.load(Ordering::SeqCst),
        0,
        "nothing is copied on deletion"
    );
    let events = fake.events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["reason"], "Deleted");
    let note = events[0]["note"].as_str().unwrap();
    assert!(
        note.contains("gateway relay") && note.contains("MX"),
        "{note}"
    );
    assert_eq!(fake.object().metadata.finalizers, Some(vec![]));
    assert!(fake.status_patches().is_empty());
}

/// The forwarding spec for a ManageSieve service on each of two real Dovecot servers.
fn forwarding_extra(old: &mailshift_harness::Dovecot, new: &mailshift_harness::Dovecot) -> String {
    format!(
        "  forwarding:
    to: backup@example.org
    managesieve: {{ host: 127.0.0.1, port: {}, tls: none }}
    destinationManagesieve: {{ host: 127.0.0.1, port: {}, tls: none }}
",
        old.managesieve_port(),
        new.managesieve_port()
    )
}

#[tokio::test]
async fn deletion_removes_temporary_forwarding_from_both_servers() {
    // The mailbox's logins are the Secret's: "s" on the old server, "d" on the new.
    let old = mailshift_harness::Dovecot::builder()
        .name("fin-old")
        .user("a@example.com", "s")
        .start()
        .unwrap();
    let new = mailshift_harness::Dovecot::builder()
        .name("fin-new")
        .user("a@example.com", "d")
        .start()
        .unwrap();
    let extra = forwarding_extra(&old, &new);
    let m: MailMigration = serde_json::from_value(resource(&extra, true, None)).unwrap();
    let store = {
        let mut s = mailshift::secrets::SecretStore::default();
        s.insert("pw", "a-src", mailshift::spec::Secret::new("s"));
        s.insert("pw", "a-dst", mailshift::spec::Secret::new("d"));
        s
    };
    let resolver = Resolver::cluster_only(store);
    let accounts = accounts::resolve(&m.spec, &resolver).unwrap();
    let fwd = m.spec.forwarding.clone().unwrap();
    use mailshift::plan::{Side, SwitchState};
    use mailshift::routing::forwarding;
    for side in [Side::Source, Side::Destination] {
        let on = ForwardingChange::On {
            address: "a@example.com".into(),
            side,
            to: fwd.to.clone(),
        };
        forwarding::apply(&on, &m.spec, &accounts, &resolver)
            .await
            .unwrap();
        assert_eq!(
            forwarding::observe(&accounts[0], side, &fwd, &resolver).await,
            SwitchState::On
        );
    }

    let dir = tempfile::tempdir().unwrap();
    let mut obj = resource(&extra, true, None);
    obj["metadata"]["deletionTimestamp"] = json!("2026-03-07T11:00:00Z");
    let (client, fake) = Fake::start(obj, vec![secret()]);
    let ctx = context(client, Models::default(), dir.path());
    let action = reconcile(Arc::new(fake.object()), ctx).await.unwrap();
    assert_eq!(action, Action::await_change());
    for side in [Side::Source, Side::Destination] {
        assert_eq!(
            forwarding::observe(&accounts[0], side, &fwd, &resolver).await,
            SwitchState::Off,
            "forwarding left on the {side} server"
        );
    }
    let events = fake.events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["type"], "Normal");
    let note = events[0]["note"].as_str().unwrap();
    assert!(
        note.contains("forwarding to backup@example.org removed"),
        "{note}"
    );
    assert_eq!(fake.object().metadata.finalizers, Some(vec![]));
}

#[tokio::test]
async fn deletion_keeps_the_finalizer_while_a_forwarding_server_is_down() {
    let old = mailshift_harness::Dovecot::builder()
        .name("fin-down")
        .user("a@example.com", "s")
        .start()
        .unwrap();
    let mut extra = forwarding_extra(&old, &old);
    // Nothing listens on port 9 of loopback: the new server's ManageSieve is "down".
    extra = extra.replace(
        &format!("port: {}, tls: none }}\n", old.managesieve_port()),
        "port: 9, tls: none }\n",
    );
    assert!(extra.contains("port: 9"));
    let dir = tempfile::tempdir().unwrap();
    let mut obj = resource(&extra, true, None);
    obj["metadata"]["deletionTimestamp"] = json!("2026-03-07T11:00:00Z");
    let (client, fake) = Fake::start(obj, vec![secret()]);
    let ctx = context(client, Models::default(), dir.path());
    assert!(reconcile(Arc::new(fake.object()), ctx).await.is_err());
    let events = fake.events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["type"], "Warning");
    assert_eq!(events[0]["reason"], "CleanupFailed");
    let note = events[0]["note"].as_str().unwrap();
    assert!(
        note.contains("new server") && note.contains(FINALIZER),
        "{note}"
    );
    assert_eq!(
        fake.object().metadata.finalizers,
        Some(vec![FINALIZER.to_string()]),
        "the finalizer stays until forwarding is gone"
    );
}

#[tokio::test]
async fn deletion_without_the_secret_reports_forwarding_it_cannot_remove() {
    let dir = tempfile::tempdir().unwrap();
    let extra = "  forwarding:
    to: backup@example.org
    managesieve: { host: 127.0.0.1, port: 9, tls: none }
";
    let mut obj = resource(extra, true, None);
    obj["metadata"]["deletionTimestamp"] = json!("2026-03-07T11:00:00Z");
    // The namespace is being deleted: its Secrets are already gone.
    let (client, fake) = Fake::start(obj, vec![]);
    let ctx = context(client, Models::default(), dir.path());
    let action = reconcile(Arc::new(fake.object()), ctx).await.unwrap();
    assert_eq!(action, Action::await_change());
    let events = fake.events();
    assert_eq!(events[0]["type"], "Warning");
    let note = events[0]["note"].as_str().unwrap();
    assert!(
        note.contains("could NOT be removed") && note.contains("mailshift-forward"),
        "{note}"
    );
    assert_eq!(fake.object().metadata.finalizers, Some(vec![]));
}

#[test]
fn without_a_reachable_cluster_the_controller_exits_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("config");
    // Port 9 on loopback: nothing listens there.
    std::fs::write(
        &kubeconfig,
        "apiVersion: v1
kind: Config
clusters: [{ name: c, cluster: { server: \"https://127.0.0.1:9\" } }]
users: [{ name: u, user: { token: t } }]
contexts: [{ name: x, context: { cluster: c, user: u } }]
current-context: x
",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mailshift"))
        .args(["controller", "--metrics-addr", "127.0.0.1:0"])
        .env("KUBECONFIG", &kubeconfig)
        .env_remove("KUBERNETES_SERVICE_HOST")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("error: cannot reach the Kubernetes API server at https://127.0.0.1:9"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn deploy_holds_the_generated_crd_and_rbac_without_wildcards() {
    let root = env!("CARGO_MANIFEST_DIR");
    let deployed = std::fs::read_to_string(format!("{root}/deploy/crd.yaml")).unwrap();
    assert_eq!(
        deployed,
        mailshift::crd::crd_yaml(),
        "deploy/crd.yaml is stale: copy `mailshift crd`"
    );
    let rbac = std::fs::read_to_string(format!("{root}/deploy/rbac.yaml")).unwrap();
    assert!(!rbac.contains("\"*\""), "no wildcard verbs or resources");
    assert!(rbac.contains("mailmigrations/status"));
}

// ---- Copy Jobs (spec.sync.parallelism > 1) ----

const JOBS: &str = "/apis/batch/v1/namespaces/mail/jobs";
const UID: &str = "0b3c5f6e-0000-4000-8000-000000000001";

impl Fake {
    /// The Jobs part of the fake API server: list, create (409 when the name exists),
    /// delete.
    fn answer_jobs(&self, s: &Seen) -> (StatusCode, Value) {
        let mut jobs = self.jobs.lock().unwrap();
        match s.method {
            Method::GET if s.path == JOBS => (
                StatusCode::OK,
                json!({"apiVersion": "batch/v1", "kind": "JobList",
                       "metadata": {"resourceVersion": "1"}, "items": *jobs}),
            ),
            Method::POST if s.path == JOBS => {
                let name = s.body["metadata"]["name"].clone();
                if jobs.iter().any(|j| j["metadata"]["name"] == name) {
                    return (
                        StatusCode::CONFLICT,
                        json!({"apiVersion": "v1", "kind": "Status", "status": "Failure",
                               "reason": "AlreadyExists", "code": 409, "message": "exists"}),
                    );
                }
                let mut job = s.body.clone();
                // Every object its own uid, also a Job created again under the same name.
                let n = self.count(Method::POST, JOBS);
                job["metadata"]["uid"] = json!(format!("job-{}-{n}", name.as_str().unwrap()));
                job["metadata"]["creationTimestamp"] = json!("2026-03-07T12:00:00Z");
                jobs.push(job.clone());
                (StatusCode::CREATED, job)
            }
            Method::DELETE => {
                let name = s.path.rsplit('/').next().unwrap();
                match jobs.iter().position(|j| j["metadata"]["name"] == name) {
                    Some(i) => (StatusCode::OK, jobs.remove(i)),
                    None => not_found(),
                }
            }
            _ => not_found(),
        }
    }

    /// The Pods part: list by `job-name` label, and a Pod's log.
    fn answer_pods(&self, s: &Seen) -> (StatusCode, Value) {
        let logs = self.logs.lock().unwrap();
        let pods = format!("/api/v1/namespaces/{NS}/pods");
        if s.path == pods {
            // The controller asks for its migration's Pods by uid and generation label.
            let query = s
                .query
                .replace("%3D", "=")
                .replace("%2C", ",")
                .replace("%2F", "/");
            assert!(
                query.contains(&format!("mailshift.io/migration-uid={UID}"))
                    && query.contains("mailshift.io/generation=3"),
                "{query}"
            );
            let items: Vec<Value> = logs
                .keys()
                .map(|job| {
                    json!({"metadata": {"name": format!("{job}-pod"), "namespace": NS,
                                        "labels": {"job-name": job,
                                                   "mailshift.io/migration-uid": UID,
                                                   "mailshift.io/generation": "3"},
                                        "creationTimestamp": "2026-03-07T12:00:01Z"}})
                })
                .collect();
            return (
                StatusCode::OK,
                json!({"apiVersion": "v1", "kind": "PodList",
                       "metadata": {"resourceVersion": "1"}, "items": items}),
            );
        }
        let pod = s
            .path
            .strip_prefix(&format!("{pods}/"))
            .and_then(|p| p.strip_suffix("/log"))
            .and_then(|p| p.strip_suffix("-pod"));
        match pod.and_then(|job| logs.get(job)) {
            Some(log) if s.query.contains("container=sync") => {
                (StatusCode::OK, Value::String(log.clone()))
            }
            _ => not_found(),
        }
    }

    /// Gives the Job `name` a Pod whose log has a progress event for `mailboxes`
    /// (address, bytes copied, bytes planned), as `sync --log-format json` writes it.
    fn log_progress(&self, name: &str, rate: u64, mailboxes: &[(&str, u64, u64)]) {
        let transfer = mailshift::spec::Transfer {
            since: t0(),
            bytes_per_second: rate,
            mailboxes: mailboxes
                .iter()
                .map(|(a, bytes, of)| mailshift::spec::MailboxTransfer {
                    address: format!("{a}@example.com"),
                    messages: bytes / 100,
                    of_messages: of / 100,
                    bytes: *bytes,
                    of_bytes: *of,
                    throttled_until: None,
                })
                .collect(),
            ..Default::default()
        };
        let event = json!({
            "timestamp": "2026-03-07T12:00:10Z", "level": "INFO",
            "fields": {"message": "progress", "transfer": serde_json::to_string(&transfer).unwrap()},
            "target": mailshift::reconcile::progress::LOG_TARGET,
        });
        let other =
            r#"{"level":"INFO","fields":{"message":"folder synced"},"target":"mailshift::engine"}"#;
        let mut logs = self.logs.lock().unwrap();
        let log = logs.entry(name.to_owned()).or_default();
        log.push_str(&format!("{event}\n{other}\n"));
    }

    fn job_names(&self) -> Vec<String> {
        let jobs = self.jobs.lock().unwrap();
        jobs.iter()
            .map(|j| j["metadata"]["name"].as_str().unwrap().to_owned())
            .collect()
    }

    fn job(&self, name: &str) -> Value {
        let jobs = self.jobs.lock().unwrap();
        jobs.iter()
            .find(|j| j["metadata"]["name"] == name)
            .unwrap()
            .clone()
    }

    /// What the Job controller would write when the Job ends.
    fn finish_job(&self, name: &str, ok: bool) {
        let mut jobs = self.jobs.lock().unwrap();
        let job = jobs
            .iter_mut()
            .find(|j| j["metadata"]["name"] == name)
            .unwrap();
        job["status"] = if ok {
            json!({"startTime": "2026-03-07T12:00:00Z", "completionTime": "2026-03-07T12:05:00Z",
                   "succeeded": 1,
                   "conditions": [{"type": "SuccessCriteriaMet", "status": "True"},
                                  {"type": "Complete", "status": "True"}]})
        } else {
            json!({"startTime": "2026-03-07T12:00:00Z", "failed": 3,
                   "conditions": [{"type": "FailureTarget", "status": "True"},
                                  {"type": "Failed", "status": "True",
                                   "reason": "BackoffLimitExceeded",
                                   "message": "Job has reached the specified backoff limit"}]})
        };
    }

    fn count(&self, method: Method, path: &str) -> usize {
        self.seen()
            .iter()
            .filter(|s| s.method == method && s.path.starts_with(path))
            .count()
    }
}

/// A migration of `mailboxes` with `extra`, the finalizer already added.
fn fanned(mailboxes: &[&str], extra: &str) -> Value {
    migration(mailboxes, extra, true, None)
}

fn passwords(mailboxes: &[&str]) -> Value {
    let mut data = serde_json::Map::new();
    for m in mailboxes {
        data.insert(format!("{m}-src"), json!("cw=="));
        data.insert(format!("{m}-dst"), json!("ZA=="));
    }
    json!({"apiVersion": "v1", "kind": "Secret",
           "metadata": {"name": "pw", "namespace": NS}, "data": data})
}

fn addresses(mailboxes: &[&str]) -> Vec<String> {
    mailboxes
        .iter()
        .map(|m| format!("{m}@example.com"))
        .collect()
}

fn job_name(kind: mailshift::controller::jobs::CopyKind, mailboxes: &[&str]) -> String {
    mailshift::controller::jobs::job_name(NAME, 3, kind, &addresses(mailboxes))
}

const ABC: [&str; 3] = ["a", "b", "c"];
const PARALLEL: &str = "  sync: { parallelism: 2 }\n";

#[tokio::test]
async fn parallelism_creates_owned_jobs_that_run_mailshift_sync_with_secret_refs() {
    use mailshift::controller::jobs::CopyKind::InitialSync;
    let dir = tempfile::tempdir().unwrap();
    let (client, fake) = Fake::start(fanned(&ABC, PARALLEL), vec![passwords(&ABC)]);
    let engines = Models::default();
    let ctx = Arc::new(
        Context::new(
            client,
            engines.clone(),
            dir.path(),
            Arc::new(Metrics::default()),
        )
        .with_clock(t0)
        .with_job_image("registry.example/mailshift:test"),
    );
    let action = reconcile(Arc::new(fake.object()), ctx.clone())
        .await
        .unwrap();
    assert_eq!(
        engines.syncs.load(Ordering::SeqCst),
        0,
        "the controller copies nothing itself"
    );
    // Three mailboxes over two lanes: [a, b] and [c].
    let ab = job_name(InitialSync, &["a", "b"]);
    let c = job_name(InitialSync, &["c"]);
    assert_eq!(fake.job_names(), [ab.clone(), c.clone()]);
    assert!(ab.starts_with("model-g3-") && ab.len() <= 63, "{ab}");
    assert_eq!(
        action,
        Action::requeue(mailshift::controller::jobs::JOB_RECHECK),
        "nothing else to do until a Job finishes"
    );

    let job = fake.job(&ab);
    let owner = &job["metadata"]["ownerReferences"][0];
    assert_eq!(owner["apiVersion"], "mailshift.io/v1alpha1");
    assert_eq!(owner["kind"], "MailMigration");
    assert_eq!(owner["name"], NAME);
    assert_eq!(owner["uid"], UID);
    assert_eq!(owner["controller"], true);
    let labels = &job["metadata"]["labels"];
    assert_eq!(labels["mailshift.io/migration-uid"], UID);
    assert_eq!(labels["mailshift.io/migration"], NAME);
    assert_eq!(labels["mailshift.io/generation"], "3");
    assert_eq!(labels["mailshift.io/step"], "InitialSync");
    assert_eq!(
        labels["app.kubernetes.io/managed-by"],
        "mailshift-controller"
    );
    assert_eq!(
        job["metadata"]["annotations"]["mailshift.io/mailboxes"],
        "a@example.com,b@example.com"
    );
    let pod = &job["spec"]["template"]["spec"];
    assert_eq!(pod["restartPolicy"], "Never");
    assert_eq!(
        pod["automountServiceAccountToken"], false,
        "the Job needs no API access"
    );
    let container = &pod["containers"][0];
    assert_eq!(container["image"], "registry.example/mailshift:test");
    let args: Vec<&str> = container["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(
        args,
        [
            "--log-format",
            "json",
            "sync",
            "--manifest-env",
            "MAILSHIFT_MANIFEST",
            "--state",
            "/var/cache/mailshift",
            "--output",
            "json",
            "--mailbox",
            "a@example.com",
            "--mailbox",
            "b@example.com"
        ]
    );
    // The manifest travels in the environment, its secretKeyRefs turned into env refs whose
    // variables the kubelet fills from the same Secret keys.
    let env = container["env"].as_array().unwrap();
    let var = |name: &str| env.iter().find(|e| e["name"] == name).unwrap().clone();
    let manifest = var("MAILSHIFT_MANIFEST")["value"]
        .as_str()
        .unwrap()
        .to_owned();
    let m = mailshift::manifest::load_text("job", &manifest, Default::default())
        .into_result()
        .unwrap()
        .remove(0);
    assert_eq!(m.name(), NAME);
    let inline: Vec<&str> = m
        .spec
        .mailboxes
        .iter()
        .map(|m| m.address.as_str())
        .collect();
    assert_eq!(
        inline,
        ["a@example.com", "b@example.com"],
        "only the Job's mailboxes"
    );
    assert!(!manifest.contains("secretKeyRef"), "{manifest}");
    for mb in &m.spec.mailboxes {
        let local = mb.address.split('@').next().unwrap();
        for (r, side) in [
            (&mb.source_password, "src"),
            (&mb.destination_password, "dst"),
        ] {
            let Some(mailshift::spec::SecretRef::Env(name)) = r else {
                panic!("{r:?}")
            };
            assert!(name.starts_with("MAILSHIFT_SECRET_"), "{name}");
            assert_eq!(
                var(name)["valueFrom"]["secretKeyRef"],
                json!({"name": "pw", "key": format!("{local}-{side}")})
            );
        }
    }
    assert_eq!(
        env.len(),
        1 + 4,
        "the manifest and the Job's four passwords"
    );

    let created: Vec<Value> = fake
        .events()
        .into_iter()
        .filter(|e| e["reason"] == "JobCreated")
        .collect();
    assert_eq!(created.len(), 2, "{created:?}");
    let status = fake.object().status.unwrap();
    assert!(
        status
            .next_step
            .as_deref()
            .is_some_and(|n| n.contains("job/")),
        "the status says the copy is under way in a Job: {status:#?}"
    );

    // Again: the Jobs exist and run, nothing is created twice.
    reconcile(Arc::new(fake.object()), ctx.clone())
        .await
        .unwrap();
    assert_eq!(fake.count(Method::POST, JOBS), 2);
    assert_eq!(fake.job_names().len(), 2);
}

#[tokio::test]
async fn finished_jobs_are_not_proof_their_mailboxes_are_verified_next() {
    use mailshift::controller::jobs::CopyKind::InitialSync;
    let dir = tempfile::tempdir().unwrap();
    let (client, fake) = Fake::start(fanned(&ABC, PARALLEL), vec![passwords(&ABC)]);
    let engines = Models::default();
    let ctx = context(client, engines.clone(), dir.path());
    reconcile(Arc::new(fake.object()), ctx.clone())
        .await
        .unwrap();
    let ab = job_name(InitialSync, &["a", "b"]);
    let c = job_name(InitialSync, &["c"]);
    fake.finish_job(&ab, true);
    let action = reconcile(Arc::new(fake.object()), ctx.clone())
        .await
        .unwrap();
    assert_eq!(
        action,
        Action::requeue(mailshift::controller::jobs::JOB_RECHECK),
        "a and b verified at once; only c's Job is left to wait for"
    );
    assert_eq!(
        fake.job_names(),
        std::slice::from_ref(&c),
        "the consumed Job is deleted"
    );
    let actions: Vec<(String, String)> = fake
        .events()
        .iter()
        .map(|e| {
            (
                e["reason"].as_str().unwrap().to_owned(),
                e["action"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        actions[2..],
        // b's Verify Event joins a's series: kube's recorder keys Events on reason and
        // action.
        [
            ("StepApplied".into(), "InitialSync".into()),
            ("StepApplied".into(), "Verify".into())
        ],
        "{actions:?}"
    );
    let note = fake.events()[2]["note"].as_str().unwrap().to_owned();
    assert!(note.contains(&ab) && note.contains("verifying"), "{note}");

    // To the end: c's Job finishes, every mailbox is verified, the migration completes.
    fake.finish_job(&c, true);
    until_at_rest(&fake, &ctx).await;
    let status = fake.object().status.unwrap();
    assert!(status.completed_at.is_some(), "{status:#?}");
    assert_eq!(status.mailboxes.unwrap().verified, 3);
    assert_eq!(engines.syncs.load(Ordering::SeqCst), 0);
    assert!(fake.job_names().is_empty());
    assert_eq!(fake.count(Method::POST, JOBS), 2);
}

/// The copy Jobs' progress reaches the status from their Pods' logs (the Jobs have no API
/// access): Jobs side by side add up, and a mailbox whose Job is gone stays counted.
#[tokio::test]
async fn the_progress_of_copy_jobs_is_read_from_their_logs_into_status() {
    use mailshift::controller::jobs::CopyKind::InitialSync;
    let dir = tempfile::tempdir().unwrap();
    let (client, fake) = Fake::start(fanned(&ABC, PARALLEL), vec![passwords(&ABC)]);
    let ctx = context(client, Models::default(), dir.path());
    reconcile(Arc::new(fake.object()), ctx.clone())
        .await
        .unwrap();
    let ab = job_name(InitialSync, &["a", "b"]);
    let c = job_name(InitialSync, &["c"]);
    let transfer = |fake: &Fake| fake.object().status.unwrap().transfer.unwrap();

    fake.log_progress(&ab, 100, &[("a", 500, 1000), ("b", 0, 1000)]);
    fake.log_progress(&c, 50, &[("c", 1500, 3000)]);
    reconcile(Arc::new(fake.object()), ctx.clone())
        .await
        .unwrap();
    let t = transfer(&fake);
    assert_eq!((t.bytes, t.of_bytes, t.percent), (2000, 5000, 40), "{t:#?}");
    assert_eq!(t.bytes_per_second, 150, "two Jobs side by side");
    assert_eq!(t.mailboxes.len(), 3);
    assert!(t.eta.is_some());

    // The later event of a log counts; a finished Job's last one says where it ended.
    fake.log_progress(&ab, 100, &[("a", 1000, 1000), ("b", 1000, 1000)]);
    fake.finish_job(&ab, true);
    reconcile(Arc::new(fake.object()), ctx.clone())
        .await
        .unwrap();
    assert_eq!(fake.job_names(), std::slice::from_ref(&c), "ab consumed");
    let t = transfer(&fake);
    assert_eq!((t.bytes, t.of_bytes), (3500, 5000), "{t:#?}");
    // Gone with its Job, a and b stay counted from the status.
    fake.log_progress(&c, 50, &[("c", 3000, 3000)]);
    reconcile(Arc::new(fake.object()), ctx.clone())
        .await
        .unwrap();
    let t = transfer(&fake);
    assert_eq!(
        (t.bytes, t.of_bytes, t.percent),
        (5000, 5000, 100),
        "{t:#?}"
    );
    assert_eq!(t.bytes_per_second, 50);
}

static STALL_CLOCK: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);

fn stall_clock() -> DateTime<Utc> {
    t0() + chrono::Duration::seconds(STALL_CLOCK.load(Ordering::SeqCst))
}

#[tokio::test]
async fn a_failed_job_is_a_warning_backs_off_and_stalls_instead_of_looping() {
    use mailshift::controller::jobs::CopyKind::InitialSync;
    let dir = tempfile::tempdir().unwrap();
    let (client, fake) = Fake::start(fanned(&["a"], PARALLEL), vec![passwords(&["a"])]);
    let ctx = Arc::new(
        Context::new(
            client,
            Models::default(),
            dir.path(),
            Arc::new(Metrics::default()),
        )
        .with_clock(stall_clock),
    );
    let a = job_name(InitialSync, &["a"]);
    reconcile(Arc::new(fake.object()), ctx.clone())
        .await
        .unwrap();
    for attempt in 1..=5u32 {
        assert_eq!(
            fake.job_names(),
            std::slice::from_ref(&a),
            "attempt {attempt}"
        );
        fake.finish_job(&a, false);
        let action = reconcile(Arc::new(fake.object()), ctx.clone())
            .await
            .unwrap();
        // Each Job its own Event (a Job created again is a new object).
        let warnings: Vec<Value> = fake
            .events()
            .into_iter()
            .filter(|e| e["type"] == "Warning")
            .collect();
        let last = warnings.last().unwrap();
        let note = last["note"].as_str().unwrap();
        assert!(
            note.contains(&a) && note.contains("BackoffLimitExceeded"),
            "{note}"
        );
        if attempt < 5 {
            assert_eq!(warnings.len(), attempt as usize);
            assert_eq!(last["reason"], "CopyJobFailed");
            assert!(note.contains(&format!("attempt {attempt}")), "{note}");
            assert!(
                fake.job_names().is_empty(),
                "deleted, and no new Job before the backoff"
            );
            assert_eq!(
                action,
                Action::requeue(Reconciler::<Model>::backoff(attempt))
            );
            // A wake-up before the backoff ends (a watch event) creates nothing.
            reconcile(Arc::new(fake.object()), ctx.clone())
                .await
                .unwrap();
            assert!(fake.job_names().is_empty());
            STALL_CLOCK.fetch_add(600, Ordering::SeqCst);
            reconcile(Arc::new(fake.object()), ctx.clone())
                .await
                .unwrap();
        } else {
            assert_eq!(warnings.len(), 5);
            assert_eq!(last["reason"], "Stalled");
            assert!(note.contains("delete the Job to retry"), "{note}");
        }
    }
    // Stalled: the failed Job is kept for its logs, and nothing new is started.
    let posts = fake.count(Method::POST, JOBS);
    STALL_CLOCK.fetch_add(3600, Ordering::SeqCst);
    let action = reconcile(Arc::new(fake.object()), ctx.clone())
        .await
        .unwrap();
    assert_eq!(action, Action::requeue(Duration::from_secs(3600)));
    assert_eq!(fake.job_names(), std::slice::from_ref(&a));
    assert_eq!(fake.count(Method::POST, JOBS), posts);
    let status = fake.object().status.unwrap();
    let stalled = condition(&status, "Stalled").unwrap();
    assert_eq!(stalled.status, mailshift::spec::ConditionStatus::True);
    assert!(stalled.message.contains("5 times"), "{}", stalled.message);
    let writes = fake.count(Method::POST, "/apis/events.k8s.io/")
        + fake.count(Method::PATCH, "/apis/events.k8s.io/");
    assert_eq!(writes, 5 + 5, "five creations, five failures");

    // Deleting the failed Job asks for one more attempt.
    fake.jobs.lock().unwrap().clear();
    reconcile(Arc::new(fake.object()), ctx.clone())
        .await
        .unwrap();
    assert_eq!(fake.job_names(), [a]);
}

#[tokio::test]
async fn jobs_of_an_older_generation_are_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let (client, fake) = Fake::start(fanned(&["a"], PARALLEL), vec![passwords(&["a"])]);
    let old = json!({"apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": "model-g2-0123456789", "namespace": NS, "uid": "old",
            "labels": {"mailshift.io/migration-uid": UID, "mailshift.io/generation": "2",
                       "mailshift.io/step": "InitialSync"},
            "annotations": {"mailshift.io/mailboxes": "a@example.com"},
            "ownerReferences": [{"apiVersion": "mailshift.io/v1alpha1", "kind": "MailMigration",
                                 "name": NAME, "uid": UID, "controller": true}]},
        "spec": {"template": {"spec": {"containers": []}}}});
    fake.jobs.lock().unwrap().push(old);
    let ctx = context(client, Models::default(), dir.path());
    reconcile(Arc::new(fake.object()), ctx).await.unwrap();
    assert_eq!(
        fake.count(Method::DELETE, &format!("{JOBS}/model-g2-0123456789")),
        1
    );
    assert_eq!(
        fake.job_names(),
        [job_name(
            mailshift::controller::jobs::CopyKind::InitialSync,
            &["a"]
        )]
    );
}

#[tokio::test]
async fn parallelism_one_copies_in_process_and_creates_no_jobs() {
    let dir = tempfile::tempdir().unwrap();
    let (client, fake) = Fake::start(fanned(&ABC, ""), vec![passwords(&ABC)]);
    let engines = Models::default();
    let ctx = context(client, engines.clone(), dir.path());
    reconcile(Arc::new(fake.object()), ctx).await.unwrap();
    assert_eq!(
        engines.syncs.load(Ordering::SeqCst),
        3,
        "the three mailboxes are copied at once (sync.concurrency)"
    );
    assert!(
        !fake.seen().iter().any(|s| s.path.contains("/jobs")),
        "no Job API call at all"
    );
}

#[tokio::test]
async fn a_suspended_migration_is_planned_and_reported_but_nothing_is_run() {
    let dir = tempfile::tempdir().unwrap();
    for extra in [
        "  suspend: true\n",
        "  suspend: true\n  sync: { parallelism: 2 }\n",
    ] {
        let (client, fake) = Fake::start(fanned(&ABC, extra), vec![passwords(&ABC)]);
        let engines = Models::default();
        let ctx = context(client, engines.clone(), dir.path());
        reconcile(Arc::new(fake.object()), ctx).await.unwrap();
        assert_eq!(
            engines.syncs.load(Ordering::SeqCst),
            0,
            "{extra}: nothing copied"
        );
        assert!(
            !fake
                .seen()
                .iter()
                .any(|s| s.path.contains("/jobs") && s.method == Method::POST),
            "{extra}: no Job created"
        );
        assert!(fake.events().is_empty(), "{extra}: no step applied");
        let status = fake.object().status.unwrap();
        let ready = condition(&status, "Ready").unwrap();
        assert_eq!(ready.status, mailshift::spec::ConditionStatus::False);
        assert_eq!(ready.reason, "Suspended", "{extra}: {ready:?}");
    }
}

#[test]
fn mailshift_sync_reads_its_manifest_from_the_environment() {
    // Invalid on purpose: the error shows that the variable, not a file, was read.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mailshift"))
        .args(["sync", "--manifest-env", "MAILSHIFT_MANIFEST"])
        .env("MAILSHIFT_MANIFEST", "apiVersion: mailshift.io/v1alpha1\nkind: MailMigration\nmetadata: { name: x }\nspec: {}\n")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("$MAILSHIFT_MANIFEST"), "{stderr}");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mailshift"))
        .args(["sync", "--manifest-env", "MAILSHIFT_TEST_SURELY_UNSET"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("MAILSHIFT_TEST_SURELY_UNSET"), "{stderr}");
}

#[test]
fn rbac_allows_the_job_verbs_the_controller_uses_and_no_more() {
    let root = env!("CARGO_MANIFEST_DIR");
    let rbac = std::fs::read_to_string(format!("{root}/deploy/rbac.yaml")).unwrap();
    let rule = rbac
        .lines()
        .skip_while(|l| !l.contains("apiGroups: [\"batch\"]"))
        .take(3)
        .collect::<Vec<_>>()
        .join("\n");
    assert!(rule.contains("resources: [\"jobs\"]"), "{rule}");
    assert!(
        rule.contains("verbs: [\"list\", \"watch\", \"create\", \"delete\"]"),
        "{rule}"
    );
    assert!(rbac.contains("mailmigrations/finalizers"));
}

#[test]
fn deploy_runs_two_replicas_under_leader_election_on_one_lease() {
    let root = env!("CARGO_MANIFEST_DIR");
    let deployment = std::fs::read_to_string(format!("{root}/deploy/deployment.yaml")).unwrap();
    assert!(deployment.contains("replicas: 2"));
    assert!(deployment.contains("\"--leader-election\""));
    assert!(deployment.contains("fieldPath: metadata.namespace"));
    let rbac = std::fs::read_to_string(format!("{root}/deploy/rbac.yaml")).unwrap();
    let leases: Vec<&str> = rbac
        .lines()
        .skip_while(|l| !l.contains("kind: Role"))
        .take_while(|l| !l.starts_with("---"))
        .collect();
    let leases = leases.join("\n");
    assert!(
        leases.contains("resourceNames: [\"mailshift-controller\"]")
            && leases.contains("verbs: [\"get\", \"update\"]")
            && leases.contains("verbs: [\"create\"]"),
        "{leases}"
    );
}

#[tokio::test]
async fn reconciles_check_each_login_once_not_once_per_reconcile() {
    // A modelled engine counts login checks (the login bound on real servers is measured
    // for `apply` in tests/apply.rs; the controller runs the same loop).
    let locals: Vec<String> = (0..100).map(|i| format!("u{i}")).collect();
    let locals: Vec<&str> = locals.iter().map(String::as_str).collect();
    let dir = tempfile::tempdir().unwrap();
    let (client, fake) = Fake::start(fanned(&locals, ""), vec![passwords(&locals)]);
    let engines = Models::default();
    let ctx = context(client.clone(), engines.clone(), dir.path());
    until_at_rest(&fake, &ctx).await;
    let status = fake.object().status.unwrap();
    assert!(status.completed_at.is_some(), "{status:#?}");
    assert_eq!(status.mailboxes.unwrap().verified, 100);
    assert_eq!(engines.syncs.load(Ordering::SeqCst), 100);
    // Requeued for drift: the facts the controller holds are fresh, nothing is logged into.
    for _ in 0..3 {
        reconcile(Arc::new(fake.object()), ctx.clone())
            .await
            .unwrap();
    }
    assert_eq!(
        engines.logins.load(Ordering::SeqCst),
        100,
        "one check per mailbox"
    );
    // A restarted controller observes everything once, from the servers.
    let restarted = context(client, engines.clone(), dir.path());
    reconcile(Arc::new(fake.object()), restarted).await.unwrap();
    assert_eq!(engines.logins.load(Ordering::SeqCst), 200);
    assert_eq!(
        engines.syncs.load(Ordering::SeqCst),
        100,
        "nothing copied again"
    );
}

#[tokio::test]
async fn a_hundred_resources_cost_one_login_check_per_mailbox_each() {
    // The same loop per resource, its facts kept apart by namespace and name.
    let locals = ["a", "b", "c"];
    let objects: Vec<Value> = (0..100)
        .map(|i| {
            let mut o = migration(&locals, "", true, None);
            o["metadata"]["name"] = json!(format!("m{i}"));
            o["metadata"]["uid"] = json!(format!("uid-{i}"));
            o
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let (client, fake) = Fake::start_many(objects, vec![passwords(&locals)]);
    let engines = Models::default();
    let ctx = context(client, engines.clone(), dir.path());
    let started = std::time::Instant::now();
    for round in 0..3 {
        for i in 0..100 {
            let obj = fake.object_named(&format!("m{i}"));
            reconcile(Arc::new(obj), ctx.clone()).await.unwrap();
        }
        if round == 0 {
            eprintln!(
                "100 resources of 3 mailboxes reconciled to completion in {:?}",
                started.elapsed()
            );
        }
    }
    for i in 0..100 {
        let status = fake.object_named(&format!("m{i}")).status.unwrap();
        assert!(status.completed_at.is_some(), "m{i}: {status:#?}");
    }
    assert_eq!(engines.syncs.load(Ordering::SeqCst), 300);
    assert_eq!(
        engines.logins.load(Ordering::SeqCst),
        300,
        "one check per mailbox over three rounds of reconciles"
    );
}

#[tokio::test]
async fn temporary_passwords_go_to_a_secret_of_the_namespace_not_a_file_in_the_pod() {
    use base64::Engine as _;
    let dir = tempfile::tempdir().unwrap();
    // The old server's hash is in a scheme the new one cannot check (not listed).
    let old_db = dir.path().join("old.passwd");
    let new_db = dir.path().join("new.passwd");
    std::fs::write(&old_db, "a@example.com:{LANMAN}0123456789abcdef::::::\n").unwrap();
    std::fs::write(&new_db, "").unwrap();
    let accounts = |place: &str| {
        format!(
            "  accounts:\n    source: {{ passwdFile: {{ path: {} }} }}\n    destination: {{ passwdFile: {{ path: {} }} }}\n    schemes: [SHA512-CRYPT]\n    unknownScheme: temporaryPassword\n    {place}\n",
            old_db.display(),
            new_db.display()
        )
    };

    // A file would live in the controller's pod: refused, and nothing is written.
    let in_pod = accounts(&format!(
        "temporaryPasswords: {}",
        dir.path().join("pw").display()
    ));
    let (client, fake) = Fake::start(resource(&in_pod, true, None), vec![secret()]);
    let ctx = context(client, Models::default(), dir.path());
    until_at_rest(&fake, &ctx).await;
    assert!(!dir.path().join("pw").exists());
    assert_eq!(std::fs::read_to_string(&new_db).unwrap(), "");
    let status = fake.object().status.unwrap();
    assert!(
        format!("{status:?}").contains("temporaryPasswordsSecret"),
        "the reason says what to set: {status:?}"
    );

    let state = tempfile::tempdir().unwrap();
    let extra = accounts("temporaryPasswordsSecret: new-passwords");
    let (client, fake) = Fake::start(resource(&extra, true, None), vec![secret()]);
    let ctx = context(client, Models::default(), state.path());
    until_at_rest(&fake, &ctx).await;
    let written = fake.written.lock().unwrap().clone();
    assert_eq!(written.len(), 1, "{written:?}");
    let s = &written[0];
    assert_eq!(s["metadata"]["name"], "new-passwords");
    assert_eq!(
        s["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "mailshift"
    );
    assert!(
        s["metadata"]["ownerReferences"].is_null(),
        "outlives the migration"
    );
    let text = base64::engine::general_purpose::STANDARD
        .decode(s["data"]["passwords"].as_str().unwrap())
        .unwrap();
    let text = String::from_utf8(text).unwrap();
    let (address, password) = text.trim_end().split_once(':').unwrap();
    assert_eq!(address, "a@example.com");
    assert_eq!(password.len(), 20, "{text}");
    // The new server holds a hash of that password, and nothing else holds the password.
    let db = std::fs::read_to_string(&new_db).unwrap();
    let hash = db
        .lines()
        .find_map(|l| l.strip_prefix("a@example.com:{SHA512-CRYPT}"))
        .unwrap_or_else(|| panic!("{db}"));
    let hash = hash.split(':').next().unwrap();
    use sha_crypt::PasswordVerifier as _;
    sha_crypt::ShaCrypt::default()
        .verify_password(password.as_bytes(), hash)
        .unwrap_or_else(|e| panic!("{e}: {db}"));
    let status = serde_json::to_string(&fake.object().status).unwrap();
    assert!(!status.contains(password));
    for seen in fake.seen() {
        if !seen.path.contains("/secrets") {
            assert!(!seen.body.to_string().contains(password), "{}", seen.path);
        }
    }
}
