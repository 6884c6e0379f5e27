//! Writing status through the status subresource with server-side apply, and the status of
//! a migration that cannot be run at all (its secrets or mailboxes cannot be resolved).

use chrono::{DateTime, Utc};
use kube::Api;
use kube::api::{Patch, PatchParams};

use super::MANAGER;
use crate::plan::status::condition;
use crate::spec::{
    API_VERSION, Condition, ConditionStatus, KIND, MailMigration, MailMigrationStatus, Phase,
};

/// Apply `status` as the controller's field manager (forced: the controller owns status).
pub async fn apply(
    api: &Api<MailMigration>,
    name: &str,
    status: &MailMigrationStatus,
) -> Result<(), kube::Error> {
    let patch = serde_json::json!({
        "apiVersion": API_VERSION,
        "kind": KIND,
        "status": status,
    });
    api.patch_status(
        name,
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await?;
    Ok(())
}

/// The status of a migration that cannot be prepared (`reason`, `message`): Ready False
/// and Stalled True for `generation`; milestones and counts kept from `previous`.
pub fn unrunnable(
    previous: &MailMigrationStatus,
    generation: i64,
    reason: &str,
    message: &str,
    now: DateTime<Utc>,
) -> MailMigrationStatus {
    let condition = |type_: &str, status: ConditionStatus| {
        let since = previous
            .conditions
            .iter()
            .find(|c| c.type_ == type_ && c.status == status)
            .map_or(now, |c| c.last_transition_time);
        Condition {
            type_: type_.into(),
            status,
            reason: reason.into(),
            message: message.into(),
            last_transition_time: since,
            observed_generation: Some(generation),
        }
    };
    let mut status = previous.clone();
    status.observed_generation = Some(generation);
    status.phase = Some(Phase::Stalled);
    status.waiting_until = None;
    status.conditions.retain(|c| {
        ![condition::READY, condition::RECONCILING, condition::STALLED].contains(&c.type_.as_str())
    });
    status
        .conditions
        .insert(0, condition(condition::STALLED, ConditionStatus::True));
    status
        .conditions
        .insert(0, condition(condition::READY, ConditionStatus::False));
    status
}
