//! When the controller reconciles a migration again, and why a reconcile failed: the
//! part of the controller that the reconcile function and the copy Jobs both use.

use std::time::Duration;

use chrono::{DateTime, Utc};
use kube::runtime::controller::Action;

use crate::plan::Progress;

/// Right after a step, the next one is taken up this soon.
pub const NEXT_STEP: Duration = Duration::from_secs(1);
/// Something outside mailshift's hands (propagation, a copy elsewhere) is re-checked this
/// often.
pub const RECHECK: Duration = Duration::from_secs(15);
/// A migration that is converged, blocked or only observed is observed again this often;
/// a time gate further away than this is re-observed meanwhile (the world may change).
pub const REOBSERVE: Duration = Duration::from_secs(3600);
/// A migration whose secrets or mailboxes cannot be resolved is tried again this often
/// (Secrets are not watched).
pub const UNRUNNABLE: Duration = Duration::from_secs(60);
/// After an error talking to the API server.
pub const API_RETRY: Duration = Duration::from_secs(30);

/// Why a reconcile failed (step failures are not errors: they are counted, reported and
/// retried with backoff).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("{0:#}")]
    Loop(anyhow::Error),
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
    #[error("a MailMigration must be namespaced")]
    NoNamespace,
}

impl Error {
    /// CamelCase reason for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::Kube(_) => "KubernetesApi",
            Error::Loop(_) => "ReconcileLoop",
            Error::Finalizer(_) => "Finalizer",
            Error::NoNamespace => "NoNamespace",
        }
    }
}

/// When to reconcile again, as of `now`, for a plan whose progress is `progress`.
pub fn requeue_for(progress: &Progress, now: DateTime<Utc>) -> Action {
    Action::requeue(requeue_after(progress, now))
}

pub(super) fn requeue_after(progress: &Progress, now: DateTime<Utc>) -> Duration {
    match progress {
        Progress::Ready => NEXT_STEP,
        Progress::Recheck => RECHECK,
        Progress::WaitUntil { at } => {
            let wait = (*at - now).to_std().unwrap_or(Duration::ZERO);
            wait.clamp(NEXT_STEP, REOBSERVE)
        }
        Progress::Converged
        | Progress::ObserveOnly
        | Progress::Suspended
        | Progress::Blocked { .. } => REOBSERVE,
    }
}
