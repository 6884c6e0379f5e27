//! `mailshift controller`: run the reconcile loop for MailMigration resources in a cluster.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Result;

use mailshift::controller::{LeaderElection, Options, run as run_controller};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Watch only this namespace (default: all namespaces).
    #[arg(long, env = "MAILSHIFT_NAMESPACE")]
    namespace: Option<String>,
    /// Only MailMigrations whose labels match this selector (e.g. `shard=a`), so that several
    /// controllers can share a cluster.
    #[arg(short = 'l', long, env = "MAILSHIFT_SELECTOR")]
    selector: Option<String>,
    /// Directory for the copy engine's per-folder caches (default: a temporary directory;
    /// they are only caches).
    #[arg(long, value_name = "DIR", env = "MAILSHIFT_CACHE_DIR")]
    cache_dir: Option<PathBuf>,
    /// Address serving /metrics, /healthz and /readyz.
    #[arg(long, value_name = "ADDR", default_value = "0.0.0.0:8080")]
    metrics_addr: SocketAddr,
    /// MailMigrations reconciled at once.
    #[arg(long, default_value_t = 4)]
    concurrency: u16,
    /// Image of the copy Jobs started for `spec.sync.parallelism` > 1 (they run
    /// `mailshift sync`): the controller's own image, at the same version.
    #[arg(long, value_name = "IMAGE", env = "MAILSHIFT_JOB_IMAGE", default_value = mailshift::controller::jobs::DEFAULT_IMAGE)]
    job_image: String,
    /// Act only while holding the leader Lease, so that of several replicas exactly one
    /// reconciles (the others stand by). On in deploy/.
    #[arg(long)]
    leader_election: bool,
    /// Name of the leader Lease.
    #[arg(long, value_name = "NAME", default_value = "mailshift-controller")]
    lease_name: String,
    /// Namespace of the leader Lease (default: the service account's, in a Pod).
    #[arg(long, value_name = "NS", env = "POD_NAMESPACE")]
    lease_namespace: Option<String>,
}

pub async fn run(args: &Args) -> Result<std::process::ExitCode> {
    run_controller(Options {
        namespace: args.namespace.clone(),
        selector: args.selector.clone(),
        cache_dir: args.cache_dir.clone(),
        metrics_addr: Some(args.metrics_addr),
        concurrency: args.concurrency,
        job_image: args.job_image.clone(),
        leader_election: args.leader_election.then(|| LeaderElection {
            lease_name: args.lease_name.clone(),
            lease_namespace: args.lease_namespace.clone(),
            identity: identity(),
        }),
    })
    .await?;
    Ok(std::process::ExitCode::SUCCESS)
}

/// This replica's name in the leader Lease: its Pod's name (a restarted container takes its
/// own Lease back at once), else the host name and process id.
fn identity() -> String {
    if let Ok(pod) = std::env::var("POD_NAME")
        && !pod.is_empty()
    {
        return pod;
    }
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "mailshift".into());
    format!("{host}_{}", std::process::id())
}
