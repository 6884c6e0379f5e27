//! Starting and stopping the controller: connect to the cluster (failing clearly when there
//! is none), serve metrics and health, run the kube-rs Controller until SIGTERM or Ctrl-C.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context as _, Result, anyhow, bail};
use futures::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use kube::api::{Api, ListParams};
use kube::runtime::{
    Controller, Predicate, PredicateConfig, WatchStreamExt, controller, predicates, reflector,
    watcher,
};
use kube::{Client, Config};
use tokio::sync::watch;

use super::jobs::LABEL_MANAGED_BY;
use super::leader::{Elector, LeaseTimes};
use super::{Context, Imap, MANAGER, Metrics, error_policy, http, reconcile};
use crate::spec::MailMigration;

/// How long to wait for the API server at start.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// What `mailshift controller` was asked to do.
#[derive(Clone, Debug)]
pub struct Options {
    /// Only this namespace; all when `None`.
    pub namespace: Option<String>,
    /// Label selector: only matching MailMigrations (sharding between controllers).
    pub selector: Option<String>,
    /// Engine caches; a temporary directory when `None`.
    pub cache_dir: Option<PathBuf>,
    /// Where `/metrics`, `/healthz`, `/readyz` are served; not at all when `None`.
    pub metrics_addr: Option<SocketAddr>,
    /// MailMigrations reconciled at once.
    pub concurrency: u16,
    /// The image of copy Jobs (`spec.sync.parallelism` > 1).
    pub job_image: String,
    /// Act only while holding this Lease; `None`: act at once, alone.
    pub leader_election: Option<LeaderElection>,
}

/// Which Lease the replicas of one controller compete for.
#[derive(Clone, Debug)]
pub struct LeaderElection {
    pub lease_name: String,
    /// Default: the client's namespace (in a Pod, its service account's).
    pub lease_namespace: Option<String>,
    /// Who this replica is in the Lease: the Pod's name, else host and process id.
    pub identity: String,
}

/// Run until SIGTERM or Ctrl-C.
pub async fn run(options: Options) -> Result<()> {
    let client = connect().await?;
    let api: Api<MailMigration> = match &options.namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    // The CRD must be installed, and listing it allowed.
    let mut lp = ListParams::default().limit(1);
    if let Some(sel) = &options.selector {
        lp = lp.labels(sel);
    }
    if let Err(e) = api.list(&lp).await {
        return Err(match &e {
            kube::Error::Api(s) if s.code == 404 => anyhow!(
                "the MailMigration CRD is not installed in this cluster (kubectl apply -f crds/mailmigration.yaml)"
            ),
            kube::Error::Api(s) if s.code == 403 => anyhow!(
                "not allowed to list MailMigrations{}: {} (see deploy/rbac.yaml)",
                options
                    .namespace
                    .as_deref()
                    .map(|n| format!(" in namespace {n}"))
                    .unwrap_or_default(),
                s.message
            ),
            _ => anyhow!(e).context("listing MailMigrations"),
        });
    }

    let temp;
    let cache_dir = match &options.cache_dir {
        Some(d) => d.clone(),
        None => {
            temp = tempfile::Builder::new()
                .prefix("mailshift-controller-")
                .tempdir()
                .context("creating a cache directory")?;
            temp.path().to_path_buf()
        }
    };
    std::fs::create_dir_all(&cache_dir)
        .with_context(|| format!("creating {}", cache_dir.display()))?;

    let metrics = Arc::new(Metrics::default());
    let ready = Arc::new(AtomicBool::new(false));
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutting down");
        let _ = stop_tx.send(true);
    });
    let server = options.metrics_addr.map(|addr| {
        tokio::spawn(http::serve(
            addr,
            metrics.clone(),
            ready.clone(),
            stop_rx.clone(),
        ))
    });

    let mut elector = options.leader_election.as_ref().map(|le| {
        let namespace = le
            .lease_namespace
            .clone()
            .unwrap_or_else(|| client.default_namespace().to_owned());
        tracing::info!(
            lease = le.lease_name,
            namespace,
            identity = le.identity,
            "leader election"
        );
        Elector::new(
            client.clone(),
            &namespace,
            &le.lease_name,
            &le.identity,
            LeaseTimes::default(),
        )
    });

    let jobs: Api<Job> = match &options.namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let ctx = Arc::new(
        Context::new(client, Imap, &cache_dir, metrics.clone()).with_job_image(&options.job_image),
    );
    let mut wc = watcher::Config::default();
    if let Some(sel) = &options.selector {
        wc = wc.labels(sel);
    }
    let mut stop = stop_rx.clone();
    // A replica standing by is healthy and ready: a rolling update must be able to start
    // the new replicas while the old leader still holds the Lease.
    ready.store(true, Ordering::Relaxed);
    if let Some(e) = &mut elector {
        let mut stop = stop_rx.clone();
        tokio::select! {
            _ = e.acquire() => {}
            _ = stop.wait_for(|s| *s) => {
                ready.store(false, Ordering::Relaxed);
                if let Some(server) = server {
                    let _ = server.await;
                }
                tracing::info!("stopped before leading");
                return Ok(());
            }
        }
    }
    metrics.set_leader(true);
    tracing::info!(
        namespace = options.namespace.as_deref().unwrap_or("(all)"),
        selector = options.selector.as_deref().unwrap_or(""),
        cache_dir = %cache_dir.display(),
        "controller started"
    );
    let (reader, writer) = reflector::store();
    let migrations = watcher(api, wc)
        .default_backoff()
        .reflect(writer)
        .applied_objects()
        .predicate_filter(trigger(), PredicateConfig::default());
    let controller = Controller::for_stream(migrations, reader)
        // A copy Job finishing brings its MailMigration back at once.
        .owns(
            jobs,
            watcher::Config::default().labels(&format!("{LABEL_MANAGED_BY}={MANAGER}")),
        )
        .with_config(controller::Config::default().concurrency(options.concurrency))
        .graceful_shutdown_on(async move {
            let _ = stop.wait_for(|s| *s).await;
        })
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            match result {
                Ok((obj, action)) => tracing::debug!(object = %obj, ?action, "reconciled"),
                Err(controller::Error::ReconcilerFailed(e, obj)) => {
                    tracing::debug!(object = %obj, error = %e, "reconcile failed")
                }
                Err(e) => tracing::warn!(error = %e, "controller"),
            }
        });
    let lost = async {
        match &mut elector {
            Some(e) => e.keep().await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        () = controller => {}
        lost = lost => {
            // Another replica may act from now on: stop at once rather than finish the
            // reconciles under way (every step is safe to interrupt), and let Kubernetes
            // restart this one as a follower.
            bail!("{lost}; stopping so that this replica restarts as a follower");
        }
    }
    ready.store(false, Ordering::Relaxed);
    metrics.set_leader(false);
    if let Some(e) = &mut elector {
        // Stopped on SIGTERM, reconciles finished: hand over at once.
        match e.release().await {
            Ok(()) => tracing::info!("released the leader Lease"),
            Err(err) => {
                tracing::warn!(error = %err, "cannot release the leader Lease; it expires by itself")
            }
        }
    }
    if let Some(server) = server {
        let _ = server.await;
    }
    tracing::info!("stopped");
    Ok(())
}

/// A client for the cluster of the environment (in-cluster service account, else
/// KUBECONFIG / ~/.kube/config), checked by asking the API server for its version.
async fn connect() -> Result<Client> {
    let mut config = Config::infer().await.map_err(|e| {
        anyhow!("no Kubernetes cluster configured: {e} (run in a cluster, or set KUBECONFIG)")
    })?;
    config.connect_timeout = Some(CONNECT_TIMEOUT);
    let url = config.cluster_url.to_string();
    let client = Client::try_from(config)
        .with_context(|| format!("cannot build a client for the Kubernetes API at {url}"))?;
    match tokio::time::timeout(CONNECT_TIMEOUT, client.apiserver_version()).await {
        Ok(Ok(v)) => {
            tracing::info!(server = %url, version = %v.git_version, "connected");
            Ok(client)
        }
        Ok(Err(e)) => bail!("cannot reach the Kubernetes API server at {url}: {e}"),
        Err(_) => bail!(
            "cannot reach the Kubernetes API server at {url}: no answer within {}s",
            CONNECT_TIMEOUT.as_secs()
        ),
    }
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// What brings a MailMigration back before its requeue time: a spec change or deletion
/// (both change `metadata.generation`) and its finalizers (adding ours is followed by the
/// first real reconcile). Not the status: every reconcile writes it, and reacting to our own
/// write would run the next reconcile at once, ignoring the requeue time of a time gate and
/// the backoff after a failed step.
fn trigger() -> impl Predicate<MailMigration> + Clone + 'static {
    predicates::generation.combine(predicates::finalizers)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn migration(generation: i64, finalizers: &[&str], status: Option<&str>) -> MailMigration {
        let mut m: MailMigration = serde_yaml::from_str(
            "apiVersion: mailshift.io/v1alpha1
kind: MailMigration
metadata: { name: m, namespace: mail }
spec:
  source: { imap: { host: old.example.net } }
  destination: { imap: { host: new.example.net } }
  mailboxes: [{ address: a@example.com }]
",
        )
        .unwrap();
        m.metadata.generation = Some(generation);
        m.metadata.finalizers = Some(finalizers.iter().map(|f| f.to_string()).collect());
        m.status = status.map(|s| crate::spec::MailMigrationStatus {
            next_step: Some(s.into()),
            ..Default::default()
        });
        m
    }

    #[test]
    fn only_spec_deletion_and_finalizer_changes_trigger_a_reconcile() {
        let t = trigger();
        let base = t.hash_property(&migration(3, &[], None));
        assert_eq!(
            t.hash_property(&migration(3, &[], Some("copy a@example.com"))),
            base,
            "our own status write must not bring the object back"
        );
        assert_ne!(t.hash_property(&migration(4, &[], None)), base, "spec edit");
        assert_ne!(
            t.hash_property(&migration(3, &[super::super::FINALIZER], None)),
            base,
            "finalizer added"
        );
    }
}
