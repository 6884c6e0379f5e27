//! `Gate`: a closed condition in front of a step. Either an instant (the gate opens by
//! itself then; `apply` waits, the controller requeues) or a fact about the world that only
//! a change in the world opens (an approval, a login fixed, another step done).

use std::fmt;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use super::step::{Side, list};

/// A condition in front of a step. Plans list only closed gates: a step without gates may
/// run now.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "gate",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum Gate {
    /// Opens at `at`.
    Time {
        at: DateTime<Utc>,
        reason: TimeReason,
    },
    /// Opens when the world changes.
    Fact { waiting: Waiting },
}

impl Gate {
    pub fn fact(waiting: Waiting) -> Self {
        Gate::Fact { waiting }
    }

    /// The instant a time gate opens.
    pub fn opens_at(&self) -> Option<DateTime<Utc>> {
        match self {
            Gate::Time { at, .. } => Some(*at),
            Gate::Fact { .. } => None,
        }
    }
}

/// Why a step waits for an instant.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "kind",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum TimeReason {
    /// Resolvers may hold the MX answer with its old TTL until then.
    OldTtl {
        lowered_at: DateTime<Utc>,
        old_ttl: u32,
        /// Found lowered, not lowered by mailshift (see `dns.alreadyLowered`).
        found: bool,
    },
    /// The cutover window opens next then.
    Window { window: String },
    /// `finalize.deltaSyncAfter` after the cutover.
    DeltaSyncAfter {
        cutover_at: DateTime<Utc>,
        after: String,
    },
    /// `finalize.keepSourceFor` after the cutover.
    KeepSource {
        cutover_at: DateTime<Utc>,
        keep: String,
    },
    /// The step failed `attempt` times in a row and backs off until then.
    Retry { attempt: u32, error: String },
    /// A daily budget of `limits` is spent; it has room for the copy again then.
    Budget { address: String, budget: String },
}

/// A fact a step waits on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "fact",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum Waiting {
    /// `spec.cutover.approved` is false.
    NotApproved,
    /// The `mailboxesFrom` list has not been read (`reason: None`) or could not be.
    MailboxListUnread {
        reason: Option<String>,
    },
    /// The mailbox has not been checked on the servers yet.
    MailboxNotObserved {
        address: String,
    },
    LoginFailed {
        address: String,
        side: Side,
        reason: String,
    },
    /// The account does not exist on the new server (without `spec.accounts` mailshift
    /// does not create accounts).
    AccountMissing {
        address: String,
    },
    /// `spec.accounts` cannot carry this mailbox's account over (not in the old server's
    /// user database, a password scheme the new server does not check).
    AccountNotCarried {
        address: String,
        reason: String,
    },
    /// A user database or alias map of `spec.accounts` cannot be read.
    AccountsUnreadable {
        reason: String,
    },
    /// Mail to these aliases would bounce on the new server: they are written first.
    AliasesMissing {
        aliases: Vec<String>,
    },
    /// `cutover.window` cannot be read (validation normally catches this first).
    WindowInvalid {
        reason: String,
    },
    /// The zone cannot be read, so nothing is written blind.
    DnsUnreadable {
        name: String,
        reason: String,
    },
    /// A relay's configuration cannot be read, so nothing is written blind.
    RelayUnreadable {
        relay: String,
        reason: String,
    },
    /// A mailbox's forwarding script cannot be read.
    ForwardingUnreadable {
        address: String,
        side: Side,
        reason: String,
    },
    /// A mailbox's Sieve scripts cannot be compared.
    SieveUnreadable {
        address: String,
        reason: String,
    },
    MailboxesNotVerified {
        addresses: Vec<String>,
    },
    /// The cutover waits until these mailboxes' Sieve scripts are on the new server (but for
    /// those it refuses or keeps, which are reported).
    SieveNotCopied {
        addresses: Vec<String>,
    },
    /// A mailbox's address books and calendars cannot be compared.
    DavUnreadable {
        address: String,
        reason: String,
    },
    /// The cutover waits until these mailboxes' contacts and calendars are on the new server
    /// (but for what it refuses or keeps, which is reported).
    DavNotCopied {
        addresses: Vec<String>,
    },
    /// Verify waits for the first copy.
    MailboxNotSynced {
        address: String,
    },
    /// The copy starts only once the temporary forwarding is on.
    ForwardingNotOn {
        address: String,
    },
    /// The MX TTL has not been lowered (or not for all domains).
    TtlNotLowered {
        names: Vec<String>,
    },
    /// Not every authoritative nameserver answers what the primary holds yet.
    Propagation {
        name: String,
        nameservers: Vec<String>,
    },
    FinalSyncPending,
    GatewayNotOn,
    /// The gateway counts as working only after a probe passed through it.
    ProbeNotPassed {
        last_failure: Option<String>,
    },
    /// MX may move first only while the fallback relays every address not yet verified.
    FallbackNotCovering {
        addresses: Vec<String>,
    },
    /// The fallback still relays addresses back: a gateway now would loop their mail, and
    /// a delta sync now would miss what still arrives at the old server.
    FallbackStillRelaying {
        addresses: Vec<String>,
    },
    MxNotSwitched {
        names: Vec<String>,
    },
    DeltaSyncPending,
    /// Completion waits for the other steps.
    EarlierSteps {
        count: usize,
    },
    /// The same step is already being carried out elsewhere.
    Running {
        by: String,
        since: DateTime<Utc>,
    },
    /// The step failed too often in a row: it is not tried again until a person acts (a
    /// new `apply`, a changed spec).
    StepStalled {
        step: String,
        count: u32,
        message: String,
    },
}

impl Waiting {
    /// Something is wrong and only a person (or the server coming back) can fix it, as
    /// opposed to waiting for an approval or for mailshift's own progress.
    pub fn is_problem(&self) -> bool {
        matches!(
            self,
            Waiting::MailboxListUnread { reason: Some(_) }
                | Waiting::LoginFailed { .. }
                | Waiting::AccountMissing { .. }
                | Waiting::AccountNotCarried { .. }
                | Waiting::AccountsUnreadable { .. }
                | Waiting::WindowInvalid { .. }
                | Waiting::DnsUnreadable { .. }
                | Waiting::RelayUnreadable { .. }
                | Waiting::ForwardingUnreadable { .. }
                | Waiting::SieveUnreadable { .. }
                | Waiting::DavUnreadable { .. }
                | Waiting::StepStalled { .. }
        )
    }

    /// A CamelCase reason for conditions.
    pub fn reason(&self) -> &'static str {
        match self {
            Waiting::NotApproved => "AwaitingApproval",
            Waiting::MailboxListUnread { .. } => "MailboxListUnread",
            Waiting::MailboxNotObserved { .. } => "NotObserved",
            Waiting::LoginFailed { .. } => "LoginFailed",
            Waiting::AccountMissing { .. } => "AccountMissing",
            Waiting::AccountNotCarried { .. } => "AccountNotCarried",
            Waiting::AccountsUnreadable { .. } => "AccountsUnreadable",
            Waiting::AliasesMissing { .. } => "WaitingForAliases",
            Waiting::WindowInvalid { .. } => "WindowInvalid",
            Waiting::DnsUnreadable { .. } => "DnsUnreadable",
            Waiting::RelayUnreadable { .. } => "RelayUnreadable",
            Waiting::ForwardingUnreadable { .. } => "ForwardingUnreadable",
            Waiting::SieveUnreadable { .. } => "SieveUnreadable",
            Waiting::MailboxesNotVerified { .. } => "WaitingForVerification",
            Waiting::SieveNotCopied { .. } => "WaitingForSieve",
            Waiting::DavUnreadable { .. } => "DavUnreadable",
            Waiting::DavNotCopied { .. } => "WaitingForContactsAndCalendars",
            Waiting::MailboxNotSynced { .. } => "WaitingForSync",
            Waiting::ForwardingNotOn { .. } => "WaitingForForwarding",
            Waiting::TtlNotLowered { .. } => "WaitingForTTL",
            Waiting::Propagation { .. } => "WaitingForPropagation",
            Waiting::FinalSyncPending => "WaitingForFinalSync",
            Waiting::GatewayNotOn => "WaitingForGateway",
            Waiting::ProbeNotPassed { .. } => "WaitingForProbe",
            Waiting::FallbackNotCovering { .. } => "WaitingForFallback",
            Waiting::FallbackStillRelaying { .. } => "WaitingForFallback",
            Waiting::MxNotSwitched { .. } => "WaitingForMXSwitch",
            Waiting::DeltaSyncPending => "WaitingForDeltaSync",
            Waiting::EarlierSteps { .. } => "WaitingForEarlierSteps",
            Waiting::Running { .. } => "Running",
            Waiting::StepStalled { .. } => "Stalled",
        }
    }
}

impl fmt::Display for Gate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Gate::Time { at, reason } => write!(f, "until {}: {reason}", instant(*at)),
            Gate::Fact { waiting } => write!(f, "{waiting}"),
        }
    }
}

impl fmt::Display for TimeReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TimeReason::OldTtl {
                lowered_at,
                old_ttl,
                found: false,
            } => write!(
                f,
                "the old MX TTL ({old_ttl}s) must pass since it was lowered at {}",
                instant(*lowered_at)
            ),
            TimeReason::OldTtl {
                lowered_at,
                old_ttl,
                found: true,
            } => write!(
                f,
                "the MX TTL was already low when first seen (at {}); resolvers may hold an older answer for as long as the old TTL, taken as {old_ttl}s: it must pass (say when and from what it was lowered in dns.alreadyLowered to wait only as long as needed)",
                instant(*lowered_at)
            ),
            TimeReason::Window { window } => {
                write!(f, "the cutover window ({window}) opens")
            }
            TimeReason::DeltaSyncAfter { cutover_at, after } => write!(
                f,
                "deltaSyncAfter ({after}) must pass since the cutover at {}",
                instant(*cutover_at)
            ),
            TimeReason::KeepSource { cutover_at, keep } => write!(
                f,
                "the old server is kept for keepSourceFor ({keep}) after the cutover at {}",
                instant(*cutover_at)
            ),
            TimeReason::Budget { address, budget } => {
                write!(f, "{budget} is spent for {address}: the copy goes on then")
            }
            TimeReason::Retry { attempt, error } => {
                write!(f, "backing off after failure {attempt} in a row ({error})")
            }
        }
    }
}

impl fmt::Display for Waiting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use Waiting::*;
        match self {
            NotApproved => f.write_str(
                "the cutover is not approved (set spec.cutover.approved: true in a reviewed commit)",
            ),
            MailboxListUnread { reason: None } => {
                f.write_str("the mailbox list (mailboxesFrom) has not been read yet")
            }
            MailboxListUnread {
                reason: Some(reason),
            } => write!(f, "the mailbox list (mailboxesFrom) cannot be read: {reason}"),
            MailboxNotObserved { address } => {
                write!(f, "{address} has not been checked on the servers yet")
            }
            LoginFailed {
                address,
                side,
                reason,
            } => write!(
                f,
                "mailbox {address} cannot log in on the {side} server: {reason}"
            ),
            AccountMissing { address } => write!(
                f,
                "the account {address} does not exist on the new server (create it there, or let spec.accounts carry it over)"
            ),
            AccountNotCarried { address, reason } => write!(
                f,
                "the account {address} cannot be carried to the new server: {reason}"
            ),
            AccountsUnreadable { reason } => {
                write!(f, "the accounts and aliases cannot be read: {reason}")
            }
            AliasesMissing { aliases } => write!(
                f,
                "the new server lacks the aliases {} (mail to them would bounce there)",
                aliases.join(", ")
            ),
            WindowInvalid { reason } => write!(f, "the cutover window cannot be read: {reason}"),
            DnsUnreadable { name, reason } => {
                write!(f, "the DNS records of {name} cannot be read: {reason}")
            }
            RelayUnreadable { relay, reason } => {
                write!(f, "the {relay} relay's configuration cannot be read: {reason}")
            }
            ForwardingUnreadable {
                address,
                side,
                reason,
            } => write!(
                f,
                "the forwarding of {address} on the {side} server cannot be read: {reason}"
            ),
            SieveUnreadable { address, reason } => write!(
                f,
                "the Sieve scripts of {address} cannot be compared: {reason}"
            ),
            SieveNotCopied { addresses } => write!(
                f,
                "the Sieve scripts of {} are not on the new server yet",
                list(addresses)
            ),
            DavUnreadable { address, reason } => write!(
                f,
                "the address books and calendars of {address} cannot be compared: {reason}"
            ),
            DavNotCopied { addresses } => write!(
                f,
                "the address books and calendars of {} are not on the new server yet",
                list(addresses)
            ),
            MailboxesNotVerified { addresses } => write!(
                f,
                "{} not verified yet: {}",
                plural(addresses.len(), "mailbox is", "mailboxes are"),
                list(addresses)
            ),
            MailboxNotSynced { address } => write!(f, "{address} has not been copied yet"),
            ForwardingNotOn { address } => {
                write!(f, "the temporary forwarding of {address} is not on yet")
            }
            TtlNotLowered { names } => write!(f, "the MX TTL of {} is not lowered yet", list(names)),
            Propagation { name, nameservers } => write!(
                f,
                "waiting for DNS propagation of {name} on nameservers {}",
                list(nameservers)
            ),
            FinalSyncPending => f.write_str("the final sync has not run yet"),
            GatewayNotOn => f.write_str("the gateway relay on the old server is not on yet"),
            ProbeNotPassed { last_failure: None } => {
                f.write_str("no mail-flow probe has passed through the gateway yet")
            }
            ProbeNotPassed {
                last_failure: Some(why),
            } => write!(f, "the last mail-flow probe failed: {why}"),
            FallbackNotCovering { addresses } => write!(
                f,
                "the fallback relay does not yet cover {} not verified: {}",
                plural(addresses.len(), "address", "addresses"),
                list(addresses)
            ),
            FallbackStillRelaying { addresses } => write!(
                f,
                "the fallback relay still sends mail for {} back to the old server",
                list(addresses)
            ),
            MxNotSwitched { names } => write!(f, "MX of {} is not switched yet", list(names)),
            DeltaSyncPending => f.write_str("the delta sync has not run yet"),
            Running { by, since } => {
                write!(f, "already under way by {by} since {}", instant(*since))
            }
            StepStalled {
                step,
                count,
                message,
            } => write!(f, "`{step}` failed {count} times in a row: {message}"),
            EarlierSteps { count } => {
                write!(f, "{} before it", plural(*count, "step is left", "steps are left"))
            }
        }
    }
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// An instant as plans print it: RFC 3339, UTC, seconds.
pub(crate) fn instant(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}
