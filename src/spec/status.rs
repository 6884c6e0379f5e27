//! What mailshift reports about a migration. Shaped by the Kubernetes API conventions
//! (conditions, observedGeneration) so that the local store and the status subresource hold
//! the same object.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Observed state of a migration, written by mailshift only.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MailMigrationStatus {
    /// The `metadata.generation` this status was computed for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// One-word summary for printer columns; conditions are the real record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// Ready, Reconciling, Stalled, and the migration's own: TTLLowered, Synced, Verified,
    /// Gateway, MXSwitched, DeltaSynced, Completed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Progress over all mailboxes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mailboxes: Option<MailboxCounts>,
    /// The next step of the plan, in plain words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_step: Option<String>,
    /// When the gate in front of the next step opens, if it waits on time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting_until: Option<DateTime<Utc>>,
    /// When the MX TTL was lowered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_lowered_at: Option<DateTime<Utc>>,
    /// The MX TTL before it was lowered: the switch waits this long after `ttlLoweredAt`.
    #[serde(rename = "oldTTL", default, skip_serializing_if = "Option::is_none")]
    pub old_ttl: Option<u32>,
    /// When the final sync before the switch finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub final_synced_at: Option<DateTime<Utc>>,
    /// When the gateway relay on the old server was switched on. A mail-flow probe counts
    /// only if it passed after this; without `dns`, times after the cutover count from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway_on_at: Option<DateTime<Utc>>,
    /// When the MX set was switched to the new server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mx_switched_at: Option<DateTime<Utc>>,
    /// When the delta sync after the switch finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delta_synced_at: Option<DateTime<Utc>>,
    /// When the migration completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<DateTime<Utc>>,
    /// The controller's own bookkeeping: each mailbox's last copy and verification and the
    /// last probe. Kept with the resource so that a restarted or failed-over controller does
    /// not redo them (the CLI keeps the same records in its state directory).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "opaque_object")]
    pub records: Option<serde_json::Value>,
}

/// An object the API server stores as it is given.
fn opaque_object(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true
    })
}

/// Summary phase for `kubectl get`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum Phase {
    Pending,
    Preparing,
    Syncing,
    Verifying,
    WaitingForCutover,
    CuttingOver,
    Finalizing,
    Completed,
    Stalled,
}

/// A condition, as in the Kubernetes API conventions.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// Condition type, in CamelCase.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: ConditionStatus,
    /// Machine-readable reason, in CamelCase.
    #[serde(default)]
    pub reason: String,
    /// Human-readable details.
    #[serde(default)]
    pub message: String,
    /// When `status` last changed.
    pub last_transition_time: DateTime<Utc>,
    /// The generation this condition was set for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// Status of a condition.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ConditionStatus {
    True,
    False,
    Unknown,
}

/// Mailbox progress counts.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MailboxCounts {
    pub total: u32,
    pub synced: u32,
    pub verified: u32,
    pub failed: u32,
}
