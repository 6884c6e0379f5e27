//! `World`: everything mailshift knows about the servers at one instant, as `observe` gathers
//! it (and as the executor's records complete it). The planner reads nothing else: no socket,
//! no clock, no file. Each part is shaped after the adapter that fills it, so that the DNS,
//! routing and Kubernetes parts plug in without changing the planner's inputs.
//!
//! "Not observed" is always representable and never confused with "off": a build without a
//! DNS adapter leaves [`World::dns`] empty, a relay it cannot read is
//! [`RelayState::Unknown`]. The planner then falls back on what mailshift itself recorded
//! ([`Milestones`]) and marks the steps that need the missing adapter.

use crate::address::Address;
use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::milestones::Milestones;
use super::step::{Adapter, MailStep, Step};
use crate::spec::MxRecord;
// The parts of the world that the loop also records live with the status types (the
// resource's status holds them); the planner sees them here.
use crate::spec::Freshness;
pub use crate::spec::{Failure, ProbeState, SyncState, Verification};

/// What is, as observed (or recorded) at one instant.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct World {
    /// Adapters this build has. Steps needing another one are planned and shown as "not
    /// available yet", never skipped.
    pub available: BTreeSet<Adapter>,
    /// The mailboxes beyond `spec.mailboxes`: read from `spec.mailboxesFrom` or discovered
    /// in the old user database (`accounts.discover`); `None` when not read (or not used).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mailboxes_from: Option<MailboxList>,
    /// Per mailbox, keyed by the lower-cased address (see [`World::mailbox`]).
    #[serde(default)]
    pub mailboxes: BTreeMap<crate::address::Address, MailboxState>,
    /// The domains' DNS records; `None` when not observed (no DNS adapter, or no `dns`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<DnsState>,
    /// The old server's relay to the new one (`spec.gateway`).
    #[serde(default)]
    pub gateway: RelayState,
    /// The new server's relay back to the old one (`spec.fallback`).
    #[serde(default)]
    pub fallback: RelayState,
    /// The new server's accounts and aliases against `spec.accounts`.
    #[serde(default)]
    pub directory: DirectoryState,
    /// The last end-to-end mail-flow probe (`spec.probe`), as the executor recorded it.
    #[serde(default)]
    pub probe: ProbeState,
    /// Facts only mailshift can know, from the stored status: when things happened.
    #[serde(default)]
    pub milestones: Milestones,
    /// Steps being carried out elsewhere right now (a copy Job in the cluster, another
    /// executor task): planned again, but behind a gate, so they are not started twice.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub in_flight: Vec<InFlight>,
    /// The executor's reports of steps whose last attempts failed: each such step waits
    /// for its backoff, or stays stalled, without holding the others.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failures: Vec<Failure>,
    /// When the relays and DNS were last observed (the mailboxes' logins carry their own
    /// instants; `oldest_login` is left to [`World::oldest_login`]).
    #[serde(default)]
    pub observed: Freshness,
}

impl World {
    /// An empty world for a build with these adapters: nothing observed yet.
    pub fn new(available: impl IntoIterator<Item = Adapter>) -> Self {
        World {
            available: available.into_iter().collect(),
            ..World::default()
        }
    }

    /// The mailbox with this address (compared case-insensitively).
    pub fn mailbox(&self, address: &str) -> Option<&MailboxState> {
        self.mailboxes.get(&Address::of(address))
    }

    /// The mailboxes of a copy step whose last copy stopped at a spent daily budget.
    pub fn paused_copies<'a>(
        &'a self,
        step: &'a Step,
    ) -> impl Iterator<Item = (&'a str, &'a crate::spec::Pause)> + 'a {
        let addresses: Vec<&str> = match step {
            Step::Mail(MailStep::InitialSync { address } | MailStep::Resync { address, .. }) => {
                vec![address.as_str()]
            }
            Step::Mail(MailStep::FinalSync { addresses } | MailStep::DeltaSync { addresses }) => {
                addresses.iter().map(String::as_str).collect()
            }
            _ => Vec::new(),
        };
        addresses.into_iter().filter_map(|a| {
            self.mailbox(a)
                .and_then(|m| m.paused.as_ref())
                .map(|p| (a, p))
        })
    }

    /// Mutable access to the mailbox with this address.
    pub fn mailbox_mut(&mut self, address: &str) -> Option<&mut MailboxState> {
        self.mailboxes.get_mut(&Address::of(address))
    }

    /// Adds or replaces a mailbox, keyed by its lower-cased address.
    pub fn insert_mailbox(&mut self, state: MailboxState) {
        self.mailboxes.insert(Address::of(&state.address), state);
    }

    /// Whether this build can act through `adapter`.
    pub fn has(&self, adapter: Adapter) -> bool {
        self.available.contains(&adapter)
    }

    /// The failure the status leads with: a stalled step first, else the one that failed
    /// most often in a row.
    pub fn failure(&self) -> Option<&Failure> {
        self.failures.iter().max_by_key(|f| (f.stalled, f.count))
    }

    /// The failure recorded for `step`'s piece of work.
    pub fn failure_of(&self, step: &Step) -> Option<&Failure> {
        let key = step.work_key();
        self.failures.iter().find(|f| f.work == key)
    }

    /// The oldest login check of any mailbox.
    pub fn oldest_login(&self) -> Option<DateTime<Utc>> {
        self.mailboxes.values().filter_map(|m| m.observed_at).min()
    }
}

/// The addresses listed by `spec.mailboxesFrom`, or why they could not be read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "state")]
pub enum MailboxList {
    Loaded { addresses: Vec<String> },
    Failed { reason: String },
}

/// The new server's user database and alias map as `spec.accounts` wants them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    rename_all = "camelCase",
    tag = "state",
    rename_all_fields = "camelCase"
)]
pub enum DirectoryState {
    /// Not observed (no `spec.accounts`, or not yet).
    #[default]
    Unknown,
    Observed {
        /// Mailbox addresses whose accounts are to be written (missing, or created by
        /// mailshift with a hash the old server has since changed).
        accounts: Vec<String>,
        /// Alias addresses to be written.
        aliases: Vec<String>,
        /// Mailboxes with no account on the new server.
        missing_accounts: Vec<String>,
        /// Aliases the new server does not have yet.
        missing_aliases: Vec<String>,
        /// Accounts that cannot be carried over, with why.
        refused: Vec<AccountRefusal>,
    },
    Error {
        reason: String,
    },
}

/// A mailbox whose account cannot be carried over to the new server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccountRefusal {
    pub address: String,
    pub reason: String,
}

/// One mailbox on both servers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MailboxState {
    pub address: String,
    /// Whether the mailbox's login works on the old server.
    pub source_login: Login,
    /// Whether the mailbox's login works on the new server.
    pub destination_login: Login,
    /// Whether the account exists on the new server (mailshift never creates accounts).
    #[serde(default)]
    pub destination_account: Account,
    /// What has been copied, as the engine last found it.
    #[serde(default)]
    pub sync: SyncState,
    /// The last comparison of source and destination.
    #[serde(default)]
    pub verification: Verification,
    /// The last error the engine met for this mailbox, for status; the planner does not
    /// act on it (the executor's [`Failure`] decides about retries and stalling).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Temporary forwarding (ManageSieve) for this mailbox on each server.
    #[serde(default)]
    pub forwarding: ForwardingSides,
    /// The mailbox's Sieve scripts (`spec.sieve`).
    #[serde(default)]
    pub sieve: SieveState,
    /// The mailbox's address books and calendars (`spec.dav`).
    #[serde(default)]
    pub dav: DavState,
    /// When the logins were last checked (or proven by a copy or a verification).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_at: Option<DateTime<Utc>>,
    /// The last copy stopped at a spent daily budget (`limits`): copies wait until then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused: Option<crate::spec::Pause>,
}

impl MailboxState {
    /// A mailbox that logs in on both sides and has not been copied yet.
    pub fn fresh(address: &str) -> Self {
        MailboxState {
            address: address.to_owned(),
            source_login: Login::Ok,
            destination_login: Login::Ok,
            destination_account: Account::Exists,
            sync: SyncState::Never,
            verification: Verification::NotVerified,
            last_error: None,
            forwarding: ForwardingSides::default(),
            sieve: SieveState::default(),
            dav: DavState::default(),
            observed_at: None,
            paused: None,
        }
    }

    /// Copied and found equal (perhaps but for mail that arrived since the last sync: see
    /// [`super::view::View::verified`], which decides whether the mailbox may move).
    pub fn is_verified(&self) -> bool {
        matches!(self.verification, Verification::Equal { .. })
    }

    /// Copied at least once.
    pub fn is_synced(&self) -> bool {
        matches!(self.sync, SyncState::Synced { .. })
    }

    /// Logs in on both sides and its account on the new server is not known to be missing.
    pub fn preflight_ok(&self) -> bool {
        self.source_login == Login::Ok
            && self.destination_login == Login::Ok
            && self.destination_account != Account::Missing
    }
}

/// Result of trying a mailbox's login.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "state")]
pub enum Login {
    #[default]
    Ok,
    Failed {
        reason: String,
    },
}

/// Whether an account exists on the new server.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Account {
    Exists,
    Missing,
    /// Not told apart (e.g. a failed password login); the login result speaks instead.
    #[default]
    Unknown,
}

/// Forwarding on the source's and the destination's ManageSieve.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ForwardingSides {
    #[serde(default)]
    pub source: SwitchState,
    #[serde(default)]
    pub destination: SwitchState,
}

/// A mailbox's Sieve scripts on the old server against the new one, as last compared.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "state",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum SieveState {
    /// Not compared yet.
    #[default]
    Unknown,
    /// The manifest says the old server has no ManageSieve: nothing is copied.
    NoSource,
    Compared {
        /// The user's scripts on the old server.
        scripts: usize,
        /// Writes still needed on the new server (scripts to put, the active one to set),
        /// not counting those it refuses.
        pending: usize,
        /// Scripts of the same name and other content on the new server, kept there
        /// (`conflicts: keep`).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        kept: Vec<String>,
        /// Scripts the new server refuses (CHECKSCRIPT), with its reason.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        refused: Vec<SieveRefusal>,
    },
    /// Comparing failed.
    Error { reason: String },
}

/// A mailbox's address books and calendars compared on both servers, as observed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "state",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum DavObserved {
    #[default]
    Unknown,
    /// The manifest says the old server has no CardDAV/CalDAV.
    NoSource,
    Compared(DavCompared),
    Error {
        reason: String,
    },
}

/// What a comparison found.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DavCompared {
    /// Address books and calendars on the old server.
    pub collections: usize,
    /// Contacts and calendar resources in them.
    pub items: usize,
    /// Resources the new server lacks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing: Vec<DavMissing>,
    /// Collections to create on the new server.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub to_create: Vec<String>,
    /// `collection/UID` of resources on both servers with other content, kept on the new one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kept: Vec<String>,
    /// A fingerprint of every resource's ETag on both sides: while it stays the same, the
    /// comparison stands without reading a single resource again.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub version: String,
}

/// A resource the new server lacks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DavMissing {
    pub collection: String,
    pub key: String,
    pub fingerprint: String,
}

/// A mailbox's contacts and calendars as the planner sees them: the comparison less what
/// the new server refused before (unchanged since).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "state",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum DavState {
    #[default]
    Unknown,
    NoSource,
    Compared {
        collections: usize,
        items: usize,
        /// Writes still needed: resources to put, collections to create.
        pending: usize,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        kept: Vec<String>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        refused: Vec<crate::spec::DavRefusal>,
    },
    Error {
        reason: String,
    },
}

impl DavState {
    /// The planner's view of `observed`, given the refusals recorded at the last copy.
    pub fn of(observed: &DavObserved, refused: &[crate::spec::DavRefusal]) -> DavState {
        match observed {
            DavObserved::Unknown => DavState::Unknown,
            DavObserved::NoSource => DavState::NoSource,
            DavObserved::Error { reason } => DavState::Error {
                reason: reason.clone(),
            },
            DavObserved::Compared(c) => {
                let known = |m: &DavMissing| {
                    refused.iter().find(|r| {
                        r.collection == m.collection
                            && r.key == m.key
                            && r.fingerprint == m.fingerprint
                    })
                };
                let still: Vec<crate::spec::DavRefusal> =
                    c.missing.iter().filter_map(known).cloned().collect();
                DavState::Compared {
                    collections: c.collections,
                    items: c.items,
                    pending: c.missing.len() - still.len() + c.to_create.len(),
                    kept: c.kept.clone(),
                    refused: still,
                }
            }
        }
    }
}

/// What the planner asks of a copy beside mail (Sieve scripts, contacts and calendars).
pub trait BesideMail {
    /// Compared, and writes are still needed.
    fn pending(&self) -> bool;
    /// Nothing left to write (what the new server refuses or keeps is reported), or
    /// nothing to compare.
    fn settled(&self) -> bool;
    /// Why it could not be compared.
    fn unreadable(&self) -> Option<&str>;
}

impl BesideMail for SieveState {
    fn pending(&self) -> bool {
        matches!(self, SieveState::Compared { pending, .. } if *pending > 0)
    }
    fn settled(&self) -> bool {
        matches!(
            self,
            SieveState::NoSource | SieveState::Compared { pending: 0, .. }
        )
    }
    fn unreadable(&self) -> Option<&str> {
        match self {
            SieveState::Error { reason } => Some(reason),
            _ => None,
        }
    }
}

impl BesideMail for DavState {
    fn pending(&self) -> bool {
        matches!(self, DavState::Compared { pending, .. } if *pending > 0)
    }
    fn settled(&self) -> bool {
        matches!(
            self,
            DavState::NoSource | DavState::Compared { pending: 0, .. }
        )
    }
    fn unreadable(&self) -> Option<&str> {
        match self {
            DavState::Error { reason } => Some(reason),
            _ => None,
        }
    }
}

/// A script the new server will not take.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SieveRefusal {
    pub script: String,
    pub reason: String,
}

/// Something mailshift switches on and off, as observed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "state")]
pub enum SwitchState {
    Off,
    On,
    /// Not observed (no adapter for it in this build).
    #[default]
    Unknown,
    /// Observing failed.
    Error {
        reason: String,
    },
}

/// A Postfix relay (transport-map entries mailshift wrote), as observed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "state")]
pub enum RelayState {
    /// No entries of mailshift's.
    Off,
    /// Relaying `entries` (domains for the gateway, addresses for the fallback) to
    /// `relay_to`.
    On {
        relay_to: String,
        entries: BTreeSet<String>,
    },
    /// Not observed (no routing adapter in this build).
    #[default]
    Unknown,
    /// Observing failed (e.g. ssh to the old server refused).
    Error { reason: String },
}

impl RelayState {
    /// The entries it relays, if it is known to be on.
    pub fn entries(&self) -> Option<&BTreeSet<String>> {
        match self {
            RelayState::On { entries, .. } => Some(entries),
            _ => None,
        }
    }
}

/// The domains' DNS: what the primary (the RFC 2136 server) holds and what each
/// authoritative nameserver answers.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DnsState {
    /// Per domain of `spec.domains`, keyed by the lower-cased name without a trailing dot.
    pub names: BTreeMap<crate::address::Domain, NameState>,
}

impl DnsState {
    pub fn name(&self, domain: &str) -> Option<&NameState> {
        self.names.get(&crate::address::Domain::of(domain))
    }
}

/// One domain's records.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NameState {
    /// What the update server holds: the truth that changes are compared and swapped
    /// against.
    pub primary: Answer,
    /// What each authoritative nameserver answers (`checkNameservers`, or the zone's NS).
    #[serde(default)]
    pub nameservers: Vec<NameserverAnswer>,
}

impl NameState {
    /// The nameservers that do not (yet) answer what the primary holds.
    pub fn lagging(&self) -> Vec<String> {
        self.nameservers
            .iter()
            .filter(|ns| ns.answer != self.primary || ns.answer.is_error())
            .map(|ns| ns.server.clone())
            .collect()
    }

    /// Every nameserver answers what the primary holds.
    pub fn agree(&self) -> bool {
        !self.primary.is_error() && self.lagging().is_empty()
    }
}

/// One nameserver's answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NameserverAnswer {
    /// `host:port` asked.
    pub server: String,
    pub answer: Answer,
}

/// Records of one name as one server answers them, or why it did not.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "state")]
pub enum Answer {
    Records(Records),
    Error { reason: String },
}

impl Answer {
    pub fn records(&self) -> Option<&Records> {
        match self {
            Answer::Records(r) => Some(r),
            Answer::Error { .. } => None,
        }
    }

    pub fn is_error(&self) -> bool {
        matches!(self, Answer::Error { .. })
    }
}

/// The records mailshift manages at one name.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Records {
    /// The MX set.
    pub mx: Vec<MxRecord>,
    /// Its TTL, in seconds.
    pub ttl: u32,
    /// The `v=spf1` TXT record, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spf: Option<String>,
    /// Target of `_imaps._tcp`, as `host:port`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub srv_imaps: Option<String>,
    /// Target of `_submission._tcp`, as `host:port`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub srv_submission: Option<String>,
}

/// A step under way outside this plan's executor.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InFlight {
    pub step: Step,
    /// Who carries it out, e.g. `job/mailshift-sync-example-com-3`.
    pub by: String,
    pub since: DateTime<Utc>,
}

#[cfg(test)]
mod dav_tests {
    use super::*;

    #[test]
    fn a_resource_refused_before_holds_nothing_back_until_it_changes() {
        let missing = |fingerprint: &str| DavMissing {
            collection: "contacts".into(),
            key: "ben".into(),
            fingerprint: fingerprint.into(),
        };
        let refused = crate::spec::DavRefusal {
            collection: "contacts".into(),
            key: "ben".into(),
            fingerprint: "aa".into(),
            reason: "HTTP 413".into(),
        };
        let observed = |m: DavMissing| {
            DavObserved::Compared(DavCompared {
                collections: 1,
                items: 2,
                missing: vec![m],
                to_create: vec![],
                kept: vec![],
                version: String::new(),
            })
        };
        let DavState::Compared {
            pending,
            refused: r,
            ..
        } = DavState::of(&observed(missing("aa")), std::slice::from_ref(&refused))
        else {
            panic!()
        };
        assert_eq!((pending, r.len()), (0, 1));
        // Changed since: tried again.
        let DavState::Compared { pending, .. } =
            DavState::of(&observed(missing("bb")), std::slice::from_ref(&refused))
        else {
            panic!()
        };
        assert_eq!(pending, 1);
    }
}
