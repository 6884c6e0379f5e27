//! `mailshift controller`: the reconcile loop hosted by a Kubernetes controller.
//!
//! kube-rs's runtime [`Controller`](kube::runtime::Controller) watches `MailMigration`
//! resources; each reconcile reads the Secrets the spec refers to (in the resource's
//! namespace only), observes, plans and carries out at most one step through the same
//! [`Reconciler`](crate::reconcile::Reconciler) as `mailshift apply`, writes the status
//! through the status subresource (server-side apply) and requeues for the instant the next
//! time gate opens. Every applied step and every failure is an Event; a finalizer leaves the
//! servers safe on deletion.

mod cleanup;
mod context;
mod engines;
mod events;
mod http;
pub mod jobs;
pub mod leader;
mod metrics;
mod reconcile;
mod requeue;
mod run;
mod secrets;
mod status;

pub use context::Context;
pub use engines::{EngineFactory, Imap};
pub use metrics::Metrics;
pub use reconcile::{error_policy, reconcile};
pub use requeue::{Error, requeue_for};
pub use run::{LeaderElection, Options, run};
pub use secrets::referenced_secrets;

/// The finalizer that holds a deleted MailMigration until the servers are left safe.
pub const FINALIZER: &str = "mailshift.io/cleanup";
/// Field manager of the status written with server-side apply, and the Events' reporter.
pub const MANAGER: &str = "mailshift-controller";
