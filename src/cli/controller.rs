//! `mailshift controller`: run the reconcile loop for MailMigration resources in a cluster.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Result;

use crate::controller::{Options, run as run_controller};

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
    #[arg(long, value_name = "IMAGE", env = "MAILSHIFT_JOB_IMAGE", default_value = crate::controller::jobs::DEFAULT_IMAGE)]
    job_image: String,
}

pub async fn run(args: &Args) -> Result<std::process::ExitCode> {
    run_controller(Options {
        namespace: args.namespace.clone(),
        selector: args.selector.clone(),
        cache_dir: args.cache_dir.clone(),
        metrics_addr: Some(args.metrics_addr),
        concurrency: args.concurrency,
        job_image: args.job_image.clone(),
    })
    .await?;
    Ok(std::process::ExitCode::SUCCESS)
}
