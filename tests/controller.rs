//! The Kubernetes controller's reconcile against a fake API server (tower-test, as kube-rs's
//! reference operator does: no API server can be installed here), with a modelled mail
//! engine. Plus the binary without a reachable cluster.

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
}

struct Model(Models);

impl MailEngine for Model {
    async fn check_logins(&self, _: &Account) -> LoginCheck {
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

/// The resource as the API server would hold it: namespaced, generation 3.
fn resource(extra: &str, finalizer: bool, status: Option<Value>) -> Value {
    let text = format!(
        "apiVersion: mailshift.io/v1alpha1
kind: MailMigration
metadata: {{ name: {NAME} }}
spec:
  source: {{ imap: {{ host: 127.0.0.1, tls: none }} }}
  destination: {{ imap: {{ host: 127.0.0.1, tls: none }} }}
  mailboxes:
    - {{ address: a@example.com, sourcePassword: {{ secretKeyRef: {{ name: pw, key: a-src }} }}, destinationPassword: {{ secretKeyRef: {{ name: pw, key: a-dst }} }} }}
{extra}"
    );
    let m = mailshift::manifest::load_text("model.yaml", &text, Default::default())
        .into_result()
        .unwrap()
        .remove(0);
    let mut v = serde_json::to_value(&m).unwrap();
    v["metadata"]["namespace"] = json!(NS);
    v["metadata"]["generation"] = json!(3);
    v["metadata"]["uid"] = json!("0b3c5f6e-0000-4000-8000-000000000001");
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
    object: Arc<Mutex<Value>>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Fake {
    fn start(object: Value, secrets: Vec<Value>) -> (Client, Fake) {
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let fake = Fake {
            object: Arc::new(Mutex::new(object)),
            seen: Arc::default(),
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
                let response = Response::builder()
                    .status(code)
                    .body(Body::from(serde_json::to_vec(&reply).unwrap()))
                    .unwrap();
                send.send_response(response);
            }
        });
        (Client::new(service, "default"), fake)
    }

    fn answer(&self, s: &Seen, secrets: &[Value]) -> (StatusCode, Value) {
        let object_path =
            format!("/apis/mailshift.io/v1alpha1/namespaces/{NS}/mailmigrations/{NAME}");
        let events = format!("/apis/events.k8s.io/v1/namespaces/{NS}/events");
        let mut obj = self.object.lock().unwrap();
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
        serde_json::from_value(self.object.lock().unwrap().clone()).unwrap()
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

fn not_found() -> (StatusCode, Value) {
    (
        StatusCode::NOT_FOUND,
        json!({"apiVersion": "v1", "kind": "Status", "status": "Failure",
               "reason": "NotFound", "code": 404, "message": "not found"}),
    )
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
async fn a_reconcile_applies_one_step_publishes_an_event_and_applies_status() {
    let dir = tempfile::tempdir().unwrap();
    let (client, fake) = Fake::start(resource("", true, None), vec![secret()]);
    let engines = Models::default();
    let ctx = context(client, engines.clone(), dir.path());
    let action = reconcile(Arc::new(fake.object()), ctx.clone())
        .await
        .unwrap();
    assert_eq!(
        engines.syncs.load(Ordering::SeqCst),
        1,
        "one step: the initial sync"
    );
    assert_eq!(
        action,
        Action::requeue(Duration::from_secs(1)),
        "the next step is ready"
    );

    let seen = fake.seen();
    assert!(
        seen[0].method == Method::GET && seen[0].path.ends_with("/secrets/pw"),
        "the referenced Secret is read by name: {seen:?}"
    );
    let events = fake.events();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["type"], "Normal");
    assert_eq!(events[0]["reason"], "StepApplied");
    assert_eq!(events[0]["action"], "InitialSync");
    assert_eq!(events[0]["regarding"]["name"], NAME);

    let patches = fake.status_patches();
    assert_eq!(patches.len(), 1);
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
    assert_eq!(ready.status, mailshift::spec::ConditionStatus::False);
    assert_eq!(ready.observed_generation, Some(3));
    assert_eq!(
        condition(&status, "Reconciling").unwrap().status,
        mailshift::spec::ConditionStatus::True
    );
    assert!(
        condition(&status, "Stalled").is_none(),
        "abnormal-true conditions only while true"
    );
    assert_eq!(status.mailboxes.unwrap().synced, 1);
    assert_eq!(ctx.metrics.reconciles(), 1);
}

#[tokio::test]
async fn reconciles_drive_a_migration_to_completion_then_requeue_for_drift() {
    let dir = tempfile::tempdir().unwrap();
    let (client, fake) = Fake::start(resource("", true, None), vec![secret()]);
    let ctx = context(client, Models::default(), dir.path());
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
        &mailshift::plan::Step::GatewayOn {
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
    let mut action = Action::await_change();
    for _ in 0..10 {
        action = reconcile(Arc::new(fake.object()), ctx.clone())
            .await
            .unwrap();
        if action != Action::requeue(Duration::from_secs(1)) {
            break;
        }
    }
    let status = fake.object().status.unwrap();
    assert_eq!(
        status.waiting_until,
        Some(gateway_on + chrono::Duration::minutes(30)),
        "{status:#?}"
    );
    assert_eq!(action, Action::requeue(Duration::from_secs(20 * 60)));
}

#[tokio::test]
async fn a_failing_step_is_a_warning_event_and_backs_off() {
    let dir = tempfile::tempdir().unwrap();
    let (client, fake) = Fake::start(resource("", true, None), vec![secret()]);
    let engines = Models {
        fail_sync: true,
        ..Models::default()
    };
    let ctx = context(client, engines, dir.path());
    for attempt in 1..=2u32 {
        let action = reconcile(Arc::new(fake.object()), ctx.clone())
            .await
            .unwrap();
        assert_eq!(
            action,
            Action::requeue(Reconciler::<Model>::backoff(attempt))
        );
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
    use mailshift::plan::{Side, Step, SwitchState};
    use mailshift::routing::forwarding;
    for side in [Side::Source, Side::Destination] {
        let on = Step::ForwardingOn {
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
