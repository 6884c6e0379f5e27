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
    /// The TTL was found already lowered, not lowered by mailshift: `ttlLoweredAt` and
    /// `oldTTL` are then what `dns.alreadyLowered` says, or first sight and `restoreTTL`.
    #[serde(
        rename = "ttlFoundLowered",
        default,
        skip_serializing_if = "std::ops::Not::not"
    )]
    pub ttl_found_lowered: bool,
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
    /// The loop's own bookkeeping: each mailbox's last copy and verification, the last
    /// probe, the steps failing in a row. Kept with the resource so that a restarted or
    /// failed-over controller neither redoes them nor forgets a backoff (the CLI keeps the
    /// same records in its state directory).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "opaque_object")]
    pub records: Option<LoopRecords>,
    /// How far the copies of the current run have come (messages and bytes as the servers
    /// listed them), with a rate and an ETA; kept after they end until the next run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transfer: Option<Transfer>,
    /// When the facts the last plan stood on were observed on the servers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed: Option<Freshness>,
}

/// An object the API server stores as it is given: the loop's own records, read only by
/// mailshift (their tagged unions have no structural schema).
fn opaque_object(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true
    })
}

/// What the reconcile loop remembers between passes: records of what mailshift did and
/// saw, for what would be too costly to observe on every pass (a full verification) and
/// what no server can tell (failures in a row). They never decide what to copy: the engine
/// compares the servers for that.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LoopRecords {
    /// Hash of the spec the records were made for.
    #[serde(default)]
    pub spec_hash: String,
    /// Counts spec changes, standing in for `metadata.generation` outside a cluster.
    #[serde(default)]
    pub generation: i64,
    /// Per mailbox, keyed by the lower-cased address.
    #[serde(default)]
    pub mailboxes: std::collections::BTreeMap<crate::address::Address, MailboxRecord>,
    /// The last mail-flow probe: an action's result, not something that can be observed.
    #[serde(default)]
    pub probe: ProbeState,
    /// Steps whose last attempts failed, one entry per piece of work.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failures: Vec<Failure>,
    /// What mailshift wrote into the new server's user database and alias map.
    #[serde(default, skip_serializing_if = "Provisioned::is_empty")]
    pub provisioned: Provisioned,
}

/// The accounts and aliases mailshift wrote on the new server (`spec.accounts`): the only
/// ones it ever changes again, and never removes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Provisioned {
    #[serde(default, skip_serializing_if = "std::collections::BTreeSet::is_empty")]
    pub accounts: std::collections::BTreeSet<crate::address::Address>,
    /// Accounts given a generated temporary password (written to
    /// `accounts.temporaryPasswords`), not the old server's hash.
    #[serde(default, skip_serializing_if = "std::collections::BTreeSet::is_empty")]
    pub temporary: std::collections::BTreeSet<crate::address::Address>,
    #[serde(default, skip_serializing_if = "std::collections::BTreeSet::is_empty")]
    pub aliases: std::collections::BTreeSet<crate::address::Address>,
}

impl Provisioned {
    pub fn is_empty(&self) -> bool {
        self.accounts.is_empty() && self.temporary.is_empty() && self.aliases.is_empty()
    }
}

/// A daily budget is spent: copying waits until `until`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(rename_all = "camelCase")]
#[error("{what} is spent; copying resumes at {}", until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))]
pub struct Pause {
    pub until: DateTime<Utc>,
    /// Which budget, e.g. "the old server's daily budget of 2.50 GB for each mailbox".
    pub what: String,
}

/// One mailbox's record.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MailboxRecord {
    #[serde(default)]
    pub sync: SyncState,
    #[serde(default)]
    pub verification: Verification,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Messages the destination refused whose loss `spec.acceptRefused` accepts, as the
    /// last sync found them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub accepted_losses: Vec<AcceptedLoss>,
    /// Contacts and calendar resources the new server refused at the last copy; each holds
    /// nothing back until its content changes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dav_refused: Vec<DavRefusal>,
    /// The last copy stopped at a spent daily budget (`limits`): it goes on then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused: Option<Pause>,
}

/// A contact or calendar resource the new server refused.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DavRefusal {
    /// The source collection's name.
    pub collection: String,
    /// Its UID.
    pub key: String,
    /// A fingerprint of its content, to know it again.
    pub fingerprint: String,
    /// What the server answered.
    pub reason: String,
}

/// Copies under way or last done: copied of planned, overall and per mailbox.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Transfer {
    pub messages: u64,
    pub of_messages: u64,
    pub bytes: u64,
    pub of_bytes: u64,
    /// Bytes copied of bytes planned, 0 to 100.
    pub percent: u8,
    /// Since the first copy of this run began.
    pub bytes_per_second: u64,
    /// When the copies planned so far should be done at this rate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eta: Option<DateTime<Utc>>,
    pub since: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mailboxes: Vec<MailboxTransfer>,
    /// A server asked to slow down: copying waits until then (the latest of the mailboxes
    /// waiting).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throttled_until: Option<DateTime<Utc>>,
}

/// One mailbox's part of a [`Transfer`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MailboxTransfer {
    pub address: String,
    pub messages: u64,
    pub of_messages: u64,
    pub bytes: u64,
    pub of_bytes: u64,
    /// Waiting until then because a server asked to slow down.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throttled_until: Option<DateTime<Utc>>,
}

/// A refused message the migration goes on without, and the rule that allows it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AcceptedLoss {
    pub folder: String,
    /// Its identity (`<message-id>`, or a hash of its headers).
    pub message: String,
    pub size: u64,
    /// What the server said.
    pub refused: String,
    /// The `acceptRefused` rule that accepts it (its reason when it gives one).
    pub accepted_by: String,
}

/// When the facts a plan stood on were observed: the oldest mailbox login check, and the
/// relays and DNS, each as last seen.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Freshness {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oldest_login: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback: Option<DateTime<Utc>>,
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

/// What has been copied.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "state")]
pub enum SyncState {
    #[default]
    Never,
    /// The last copy pass finished at `at`, leaving this much on the destination.
    Synced {
        at: DateTime<Utc>,
        messages: u64,
        bytes: u64,
    },
}

impl SyncState {
    pub fn at(&self) -> Option<DateTime<Utc>> {
        match self {
            SyncState::Never => None,
            SyncState::Synced { at, .. } => Some(*at),
        }
    }
}

/// The last comparison of source and destination (message identities per folder).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "state")]
pub enum Verification {
    #[default]
    NotVerified,
    /// Every source message was found on the destination, but for `arrived` messages that
    /// reached the source after the last sync listed their folder: those are for the next
    /// sync. Before the cutover the final sync copies them, after the delta sync nothing
    /// will, and the mailbox counts as verified only with none (see `View::verified`).
    Equal {
        at: DateTime<Utc>,
        messages: u64,
        #[serde(default, skip_serializing_if = "is_zero")]
        arrived: u64,
    },
    /// This many source messages were missing or different on the destination.
    Differs { at: DateTime<Utc>, differences: u64 },
}

/// The last mail-flow probe.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "state")]
pub enum ProbeState {
    #[default]
    NotRun,
    Passed {
        at: DateTime<Utc>,
    },
    Failed {
        at: DateTime<Utc>,
        reason: String,
    },
}

/// The executor's report of a step that keeps failing. The executor decides when repeated
/// failures mean the step is stalled (after its backoff gives up); until then the step
/// waits for `retryAt`, and other work (other mailboxes) goes on meanwhile.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Failure {
    /// Which piece of work failed (`Step::work_key`): the same kind of step on the same
    /// mailbox or domain, whatever its changing details.
    #[serde(default)]
    pub work: String,
    /// The failing step, in plain words.
    pub step: String,
    /// Failures in a row.
    pub count: u32,
    /// CamelCase reason, e.g. `LoginRefused`, `TsigRejected`.
    pub reason: String,
    pub message: String,
    /// The executor gave up retrying on its own.
    pub stalled: bool,
    /// Not tried again before this instant (backoff).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_at: Option<DateTime<Utc>>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}
