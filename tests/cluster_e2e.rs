//! End to end in a real Kubernetes cluster, when there is one: with `KUBECONFIG` set (a
//! disposable cluster: kind, k3d, minikube), the CRD is applied, a namespace, a Secret and a
//! MailMigration between two real Dovecot servers on this machine are created, and
//! `mailshift controller` runs here against that cluster until the migration reads
//! Completed/Ready in its status; the mail is then on the destination, Events were
//! published, and deleting the resource lets it go (the finalizer is released). Everything
//! it creates is deleted afterwards except the CRD, which it only applies.
//!
//! It is `#[ignore]`d, so a plain `cargo test` reports it as ignored, never as passed (no
//! API server can be installed on the machines CI runs on; tests/controller.rs covers the
//! reconciler against a mocked one); `scripts/test.sh` runs it with `--ignored` when
//! `KUBECONFIG` is set, and then it fails rather than pass without a cluster.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use common::*;
use k8s_openapi::api::core::v1::{Event as CoreEvent, Namespace, Secret};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, CustomResourceExt};
use mailshift::spec::{ConditionStatus, MailMigration};

const FIELD_MANAGER: &str = "mailshift-e2e";

/// Kills the controller and deletes the namespace whatever happens to the test.
struct Cleanup {
    controller: Option<Child>,
    client: Client,
    namespace: String,
    runtime: tokio::runtime::Handle,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(mut c) = self.controller.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let api: Api<Namespace> = Api::all(self.client.clone());
        let ns = self.namespace.clone();
        let _ = tokio::task::block_in_place(|| {
            self.runtime
                .block_on(async move { api.delete(&ns, &DeleteParams::default()).await })
        });
    }
}

async fn wait_until<T, F, Fut>(limit: Duration, what: &str, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>>>,
{
    let end = Instant::now() + limit;
    loop {
        if let Some(v) = check().await? {
            return Ok(v);
        }
        if Instant::now() > end {
            bail!("timed out after {limit:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a real cluster: set KUBECONFIG to a disposable one and run with --ignored (scripts/test.sh does)"]
async fn a_migration_completes_in_a_real_cluster() -> Result<()> {
    let Some(kubeconfig) = std::env::var_os("KUBECONFIG") else {
        bail!("KUBECONFIG is not set: this test needs a disposable cluster to run against");
    };
    let client = Client::try_default()
        .await
        .context("KUBECONFIG is set but names no usable cluster")?;

    // The CRD, as `mailshift crd` generates it.
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd = MailMigration::crd();
    let crd_name = crd.metadata.name.clone().context("CRD name")?;
    crds.patch(
        &crd_name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&crd),
    )
    .await
    .context("applying the CRD")?;
    wait_until(Duration::from_secs(60), "the CRD to be established", || {
        let crds = crds.clone();
        let name = crd_name.clone();
        async move {
            let c = crds.get(&name).await?;
            let established = c
                .status
                .and_then(|s| s.conditions)
                .unwrap_or_default()
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True");
            Ok(established.then_some(()))
        }
    })
    .await?;

    // Two real servers here; the controller runs here too, so loopback reaches them.
    let src = dovecot("e2e-src").start()?;
    let dst = dovecot("e2e-dst").start()?;
    load(
        &src,
        "INBOX",
        &[("\\Seen", "", message("e2e1", "e2e", "x"))],
    )?;

    let namespace = format!("mailshift-e2e-{}", std::process::id());
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(serde_json::json!({
                "apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": namespace}
            }))?,
        )
        .await
        .context("creating the test namespace")?;
    let mut cleanup = Cleanup {
        controller: None,
        client: client.clone(),
        namespace: namespace.clone(),
        runtime: tokio::runtime::Handle::current(),
    };
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &namespace);
    secrets
        .create(
            &PostParams::default(),
            &serde_json::from_value(serde_json::json!({
                "apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": "mail-passwords"},
                "stringData": {"src": PASSWORD, "dst": PASSWORD}
            }))?,
        )
        .await?;
    let manifest = format!(
        "apiVersion: mailshift.io/v1alpha1
kind: MailMigration
metadata: {{ name: e2e, namespace: {namespace} }}
spec:
  source:
    imap: {{ host: 127.0.0.1, port: {}, tls: none }}
  destination:
    imap: {{ host: 127.0.0.1, port: {}, tls: none }}
  mailboxes:
    - address: {USER}
      sourcePassword: {{ secretKeyRef: {{ name: mail-passwords, key: src }} }}
      destinationPassword: {{ secretKeyRef: {{ name: mail-passwords, key: dst }} }}
",
        src.imap_port(),
        dst.imap_port()
    );
    let mm: MailMigration = serde_yaml::from_str(&manifest)?;
    let migrations: Api<MailMigration> = Api::namespaced(client.clone(), &namespace);
    migrations.create(&PostParams::default(), &mm).await?;

    let dir = tempfile::tempdir()?;
    cleanup.controller = Some(
        Command::new(env!("CARGO_BIN_EXE_mailshift"))
            .args([
                "controller",
                "--namespace",
                &namespace,
                "--metrics-addr",
                "127.0.0.1:0",
                "--cache-dir",
            ])
            .arg(dir.path())
            .env("KUBECONFIG", &kubeconfig)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()?,
    );

    let status = wait_until(Duration::from_secs(180), "Ready=True", || {
        let migrations = migrations.clone();
        async move {
            let m = migrations.get("e2e").await?;
            let Some(status) = m.status else {
                return Ok(None);
            };
            let ready = status
                .conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == ConditionStatus::True);
            Ok((ready && status.observed_generation == m.metadata.generation).then_some(status))
        }
    })
    .await?;
    assert!(status.completed_at.is_some(), "{status:?}");
    assert_eq!(messages(&src, "INBOX")?, messages(&dst, "INBOX")?);

    let events: Api<CoreEvent> = Api::namespaced(client.clone(), &namespace);
    let reasons: Vec<String> = events
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter_map(|e| e.reason)
        .collect();
    assert!(reasons.iter().any(|r| r == "StepApplied"), "{reasons:?}");

    // Deletion: the finalizer is released and the resource goes away.
    migrations.delete("e2e", &DeleteParams::default()).await?;
    wait_until(Duration::from_secs(60), "the MailMigration to go", || {
        let migrations = migrations.clone();
        async move { Ok(migrations.get_opt("e2e").await?.is_none().then_some(())) }
    })
    .await?;
    drop(cleanup);
    Ok(())
}
