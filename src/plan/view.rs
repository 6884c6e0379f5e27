//! What the world means for one spec at one instant: which mailboxes are wanted and
//! verified, whether each domain's TTL is lowered and its MX switched, whether the relays
//! are as wanted, when the cutover happened. The planner and the status derivation read the
//! world only through this, so they never disagree about a fact.
//!
//! Where the world was not observed (this build has no adapter for it), the view falls back
//! on what mailshift recorded itself (the milestones). Where the world shows a change that
//! was not recorded (the record was lost, or a person made the change), the milestone is
//! taken to be `now`: time gates then count from the first sight of the change, which errs
//! on the side of waiting longer.

use crate::address::{Address, Domain};
use std::collections::BTreeSet;

use chrono::{DateTime, TimeDelta, Utc};

use super::gate::Waiting;
use super::milestones::Milestones;
use super::step::Side;
use super::window::CutoverWindow;
use super::world::{
    Login, MailboxList, MailboxState, NameState, ProbeState, Records, RelayState, SwitchState,
    Verification, World,
};
use crate::spec::{Dns, Finalize, MailMigrationSpec, MxRecord};

/// Facts of one spec and one world at one instant.
pub(crate) struct View<'a> {
    pub spec: &'a MailMigrationSpec,
    pub world: &'a World,
    pub now: DateTime<Utc>,
    /// Wanted mailboxes, as the spec (then `mailboxesFrom`) lists them, without duplicates.
    pub mailboxes: Vec<String>,
    pub finalize: Finalize,
    /// The recorded milestones, with observed-but-unrecorded changes filled in.
    pub milestones: Milestones,
    /// The cutover window, if one is declared.
    pub window: Option<Result<CutoverWindow, String>>,
    /// Per domain, when `dns` is declared.
    pub names: Vec<NameView<'a>>,
    /// The preflight over every mailbox, computed once: most steps wait for it, and asking
    /// each mailbox again for each step made planning quadratic in the mailboxes.
    preflight: Vec<Waiting>,
}

/// One domain's DNS, as far as it is known.
pub(crate) struct NameView<'a> {
    pub name: String,
    /// The primary's records, when observed.
    pub records: Option<&'a Records>,
    /// Why the records cannot be read, when observing failed.
    pub error: Option<String>,
    /// The MX TTL is at most `cutoverTTL`.
    pub lowered: bool,
    /// The MX set is the one the spec wants.
    pub switched: bool,
    /// Nameservers that do not answer what the primary holds yet.
    pub lagging: Vec<String>,
}

impl<'a> View<'a> {
    pub fn new(spec: &'a MailMigrationSpec, world: &'a World, now: DateTime<Utc>) -> Self {
        let finalize = spec.finalize.clone().unwrap_or_default();
        let window = spec
            .cutover
            .as_ref()
            .and_then(|c| c.window.as_ref())
            .map(CutoverWindow::parse);
        let names = match &spec.dns {
            Some(dns) => spec
                .domains
                .iter()
                .map(|d| name_view(dns, world, d))
                .collect(),
            None => Vec::new(),
        };
        let mut view = View {
            spec,
            world,
            now,
            mailboxes: wanted_mailboxes(spec, world),
            finalize,
            milestones: world.milestones.clone(),
            window,
            names,
            preflight: Vec::new(),
        };
        view.milestones = view.fill_milestones();
        view.preflight = view.compute_preflight();
        // Names not observed follow the (filled) record of what mailshift did.
        let (lowered, switched) = (
            view.milestones.ttl_lowered_at.is_some(),
            view.milestones.mx_switched_at.is_some(),
        );
        for n in view.names.iter_mut().filter(|n| n.records.is_none()) {
            n.lowered = lowered;
            n.switched = switched;
        }
        view
    }

    /// Observed-but-unrecorded changes get `now` as their instant.
    fn fill_milestones(&self) -> Milestones {
        let mut m = self.world.milestones.clone();
        let observed = !self.names.is_empty() && self.names.iter().all(|n| n.records.is_some());
        if observed {
            let all_switched = self.names.iter().all(|n| n.switched);
            // Every domain still to switch has its TTL lowered.
            let lowered = self.names.iter().all(|n| n.switched || n.lowered);
            if m.ttl_lowered_at.is_none() && lowered && !all_switched {
                // Lowered by hand, by another tool, or the record was lost: when and from
                // what, as `dns.alreadyLowered` says; otherwise it counts from first sight,
                // from the domain's usual TTL (`restoreTTL`), and the gate says so.
                let told = self
                    .spec
                    .dns
                    .as_ref()
                    .and_then(|d| d.already_lowered.clone())
                    .unwrap_or_default();
                m.ttl_lowered_at = Some(told.at.map_or(self.now, |at| at.min(self.now)));
                m.old_ttl = m
                    .old_ttl
                    .or(told.old_ttl)
                    .or(Some(self.finalize.restore_ttl));
                m.ttl_found_lowered = true;
            }
            if m.mx_switched_at.is_none() && all_switched {
                m.mx_switched_at = Some(self.now);
            }
        }
        if self.spec.gateway.is_some() && m.gateway_on_at.is_none() && self.gateway_observed_on() {
            m.gateway_on_at = Some(self.now);
        }
        m
    }

    pub fn state(&self, address: &str) -> Option<&'a MailboxState> {
        self.world.mailbox(address)
    }

    /// Copied and found equal. Mail that reached the source after the last sync does not
    /// hold a mailbox back while a sync of the cutover is still ahead to copy it (the final
    /// sync, once the gateway keeps new mail off the old server, then the delta sync): a
    /// mailbox receiving mail faster than it can be re-synced and verified would otherwise
    /// never get there. Without a cutover, or after the delta sync, nothing else will copy
    /// it, and only full equality counts.
    pub fn verified(&self, address: &str) -> bool {
        match self.state(address).map(|m| &m.verification) {
            Some(Verification::Equal { arrived: 0, .. }) => true,
            Some(Verification::Equal { .. }) => self.has_cutover() && !self.delta_synced(),
            _ => false,
        }
    }

    pub fn unverified(&self) -> Vec<String> {
        self.mailboxes
            .iter()
            .filter(|a| !self.verified(a))
            .cloned()
            .collect()
    }

    pub fn all_verified(&self) -> bool {
        self.mailboxes.iter().all(|a| self.verified(a))
    }

    /// Why this mailbox cannot be worked on: not checked, a login refused, no account.
    pub fn mailbox_problems(&self, address: &str) -> Vec<Waiting> {
        let Some(m) = self.state(address) else {
            return vec![Waiting::MailboxNotObserved {
                address: address.to_owned(),
            }];
        };
        let mut out = Vec::new();
        for (side, login) in [
            (Side::Source, &m.source_login),
            (Side::Destination, &m.destination_login),
        ] {
            if let Login::Failed { reason } = login {
                out.push(Waiting::LoginFailed {
                    address: address.to_owned(),
                    side,
                    reason: reason.clone(),
                });
            }
        }
        if m.destination_account == super::world::Account::Missing {
            out.push(Waiting::AccountMissing {
                address: address.to_owned(),
            });
        }
        if let super::world::DirectoryState::Observed { refused, .. } = &self.world.directory {
            let key = Address::of(address);
            out.extend(
                refused
                    .iter()
                    .filter(|r| Address::of(&r.address) == key)
                    .map(|r| Waiting::AccountNotCarried {
                        address: address.to_owned(),
                        reason: r.reason.clone(),
                    }),
            );
        }
        out
    }

    /// The preflight over every mailbox, and the mailbox list itself.
    pub fn preflight(&self) -> Vec<Waiting> {
        self.preflight.clone()
    }

    fn compute_preflight(&self) -> Vec<Waiting> {
        let mut out = Vec::new();
        if self.spec.lists_more_mailboxes() {
            match &self.world.mailboxes_from {
                None => out.push(Waiting::MailboxListUnread { reason: None }),
                Some(MailboxList::Failed { reason }) => out.push(Waiting::MailboxListUnread {
                    reason: Some(reason.clone()),
                }),
                Some(MailboxList::Loaded { .. }) => {}
            }
        }
        if self.spec.accounts.is_some() {
            match &self.world.directory {
                super::world::DirectoryState::Unknown => out.push(Waiting::AccountsUnreadable {
                    reason: "not read yet".into(),
                }),
                super::world::DirectoryState::Error { reason } => {
                    out.push(Waiting::AccountsUnreadable {
                        reason: reason.clone(),
                    })
                }
                super::world::DirectoryState::Observed { .. } => {}
            }
        }
        for a in &self.mailboxes {
            out.extend(self.mailbox_problems(a));
        }
        out
    }

    pub fn has_cutover(&self) -> bool {
        self.spec.dns.is_some() || self.spec.gateway.is_some()
    }

    /// MX moves first, covered by the fallback relay (see the planner's notes).
    pub fn mx_first(&self) -> bool {
        self.spec.fallback.is_some()
    }

    pub fn completed(&self) -> bool {
        self.milestones.completed_at.is_some()
    }

    pub fn approved(&self) -> bool {
        self.spec.cutover.as_ref().is_some_and(|c| c.approved)
    }

    pub fn all_switched(&self) -> bool {
        self.names.iter().all(|n| n.switched)
    }

    /// The cutover has happened: MX switched (with `dns`) or the gateway on (without).
    pub fn cutover_done(&self) -> bool {
        if self.spec.dns.is_some() {
            self.all_switched()
        } else if self.spec.gateway.is_some() {
            self.gateway_on()
        } else {
            false
        }
    }

    /// When the cutover happened, if it did.
    pub fn cutover_at(&self) -> Option<DateTime<Utc>> {
        if !self.cutover_done() {
            return None;
        }
        if self.spec.dns.is_some() {
            self.milestones.mx_switched_at
        } else {
            self.milestones.gateway_on_at
        }
    }

    pub fn delta_sync_due(&self) -> Option<DateTime<Utc>> {
        self.cutover_at()
            .map(|c| after(c, self.finalize.delta_sync_after.as_duration()))
    }

    pub fn keep_source_until(&self) -> Option<DateTime<Utc>> {
        self.cutover_at()
            .map(|c| after(c, self.finalize.keep_source_for.as_duration()))
    }

    /// The delta sync ran after it was due.
    pub fn delta_synced(&self) -> bool {
        match (self.delta_sync_due(), self.milestones.delta_synced_at) {
            (Some(due), Some(done)) => done >= due,
            _ => false,
        }
    }

    /// The gateway relays exactly the spec's domains to the spec's target.
    fn gateway_observed_on(&self) -> bool {
        let Some(g) = &self.spec.gateway else {
            return false;
        };
        match &self.world.gateway {
            RelayState::On { relay_to, entries } => {
                *relay_to == g.relay_to && *entries == self.gateway_domains()
            }
            _ => false,
        }
    }

    /// The gateway is on as wanted (as observed; as recorded when not observable).
    pub fn gateway_on(&self) -> bool {
        match self.world.gateway {
            RelayState::Unknown => self.milestones.gateway_on_at.is_some(),
            _ => self.gateway_observed_on(),
        }
    }

    pub fn gateway_domains(&self) -> BTreeSet<String> {
        self.spec
            .domains
            .iter()
            .map(|d| Domain::of(d).into())
            .collect()
    }

    /// A probe passed after the gateway was last switched on.
    pub fn probe_passed(&self) -> bool {
        match (&self.world.probe, self.milestones.gateway_on_at) {
            (ProbeState::Passed { at }, Some(on)) => *at >= on,
            _ => false,
        }
    }

    pub fn probe_failure(&self) -> Option<String> {
        match &self.world.probe {
            ProbeState::Failed { reason, .. } => Some(reason.clone()),
            _ => None,
        }
    }

    /// Addresses the fallback relays back right now (lower-cased). Without a `fallback`
    /// section there is no fallback Postfix to look at.
    pub fn fallback_entries(&self) -> BTreeSet<String> {
        if self.spec.fallback.is_none() {
            return BTreeSet::new();
        }
        self.world.fallback.entries().cloned().unwrap_or_default()
    }

    /// The old server relays to the new one, as wanted or not: adding an address to the
    /// fallback now would loop its mail.
    fn gateway_relaying(&self) -> bool {
        self.spec.gateway.is_some()
            && match self.world.gateway {
                RelayState::On { .. } => true,
                RelayState::Unknown => self.milestones.gateway_on_at.is_some(),
                // Unreadable: assume the worst.
                RelayState::Error { .. } => true,
                RelayState::Off => false,
            }
    }

    /// Addresses the fallback should relay: those not yet verified, but never one more
    /// while the gateway is on (old → new → old would loop).
    pub fn fallback_wanted(&self) -> BTreeSet<String> {
        let unverified: BTreeSet<String> = self
            .unverified()
            .iter()
            .map(|a| Address::of(a).into())
            .collect();
        if self.gateway_relaying() {
            unverified
                .intersection(&self.fallback_entries())
                .cloned()
                .collect()
        } else {
            unverified
        }
    }

    /// The fallback relays (or is about to relay) something: the gateway must wait.
    pub fn fallback_busy(&self) -> BTreeSet<String> {
        let mut busy = self.fallback_entries();
        if self.spec.fallback.is_some() {
            busy.extend(self.fallback_wanted());
        }
        busy
    }

    /// Temporary forwarding is wanted on: from the start until the delta sync (or, without
    /// a cutover, until every mailbox is verified).
    pub fn forwarding_wanted(&self) -> bool {
        self.spec.forwarding.is_some()
            && !self.completed()
            && if self.has_cutover() {
                !self.delta_synced()
            } else {
                !self.all_verified()
            }
    }

    /// The servers a mailbox's forwarding lives on.
    pub fn forwarding_sides(&self) -> Vec<Side> {
        match &self.spec.forwarding {
            None => Vec::new(),
            Some(f) if f.destination_managesieve.is_some() => {
                vec![Side::Source, Side::Destination]
            }
            Some(_) => vec![Side::Source],
        }
    }

    pub fn forwarding_state(&self, address: &str, side: Side) -> SwitchState {
        self.state(address)
            .map(|m| match side {
                Side::Source => m.forwarding.source.clone(),
                Side::Destination => m.forwarding.destination.clone(),
            })
            .unwrap_or_default()
    }

    /// The desired MX set.
    pub fn mx(&self) -> &'a [MxRecord] {
        self.spec.dns.as_ref().map_or(&[], |d| d.mx.as_slice())
    }
}

fn name_view<'a>(dns: &Dns, world: &'a World, domain: &str) -> NameView<'a> {
    let name: String = Domain::of(domain).into();
    let state: Option<&NameState> = world.dns.as_ref().and_then(|d| d.name(&name));
    let mut view = NameView {
        name,
        records: None,
        error: None,
        lowered: false,
        switched: false,
        lagging: Vec::new(),
    };
    if let Some(state) = state {
        match state.primary.records() {
            Some(r) => {
                view.records = Some(r);
                view.switched = same_mx(&r.mx, &dns.mx);
                view.lowered = r.ttl <= dns.cutover_ttl;
                view.lagging = state.lagging();
            }
            None => {
                if let super::world::Answer::Error { reason } = &state.primary {
                    view.error = Some(reason.clone());
                }
            }
        }
    }
    view
}

/// Two MX sets are the same when they hold the same (preference, host) pairs, hosts
/// compared as DNS does (case-insensitive, trailing dot optional).
pub(crate) fn same_mx(a: &[MxRecord], b: &[MxRecord]) -> bool {
    let set = |s: &[MxRecord]| -> BTreeSet<(u16, Domain)> {
        s.iter()
            .map(|r| (r.preference, Domain::of(&r.exchange)))
            .collect()
    };
    set(a) == set(b)
}

fn wanted_mailboxes(spec: &MailMigrationSpec, world: &World) -> Vec<String> {
    let mut seen = BTreeSet::new();
    let listed = match &world.mailboxes_from {
        Some(MailboxList::Loaded { addresses }) if spec.lists_more_mailboxes() => {
            addresses.as_slice()
        }
        _ => &[],
    };
    spec.mailboxes
        .iter()
        .map(|m| &m.address)
        .chain(listed)
        .filter(|a| seen.insert(Address::of(a)))
        .cloned()
        .collect()
}

/// `t + d`, saturating at the end of time: a manifest may ask for absurd durations, and
/// a gate that never opens is the honest answer to them, not a panic.
pub(crate) fn after(t: DateTime<Utc>, d: std::time::Duration) -> DateTime<Utc> {
    TimeDelta::from_std(d)
        .ok()
        .and_then(|d| t.checked_add_signed(d))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

impl Milestones {
    /// The milestones as the planner and the status use them: the recorded ones, with
    /// changes that the world shows but nobody recorded (lost state, a change by hand)
    /// dated `now`. What `derive_status` stores; observe may use it to keep the store
    /// current between plans. (Here, beside the view that works them out, so that the
    /// milestones themselves need nothing of the planner's.)
    pub fn reconciled(spec: &MailMigrationSpec, world: &World, now: DateTime<Utc>) -> Self {
        View::new(spec, world, now).milestones
    }
}
