//! The planner: `plan(spec, world, now)`, a pure function from what is to the ordered steps
//! towards what the manifest declares, following the timeline of a careful admin:
//!
//! preflight (every mailbox logs in on both sides, destination accounts exist) → lower the
//! MX TTL (and authorize both servers in SPF) → temporary forwarding on → copy → verify →
//! wait until the old TTL has passed since it was lowered, the cutover is approved and its
//! window is open → gateway relay on → final sync (from here on nothing lands in the old
//! mailboxes: the gateway relays it to the new server) → probe → switch MX → propagation
//! confirmed → publish SRV → delta sync once `deltaSyncAfter` has passed (what senders with
//! stale DNS still handed to the old server) → forwarding off →
//! once `keepSourceFor` has passed: SPF without the old server, TTL restored → complete.
//!
//! Every remaining step is planned, not only the next one, so that `plan` shows the whole
//! road ahead; steps further on carry the gates they wait behind. Sections the spec leaves
//! out produce no steps. Without `dns` and `gateway` there is no cutover at all (a
//! mailbox-only import: copy, verify, complete). Without `dns` but with `gateway`, switching
//! the gateway on is the cutover, and the times after it count from `gatewayOnAt`.
//!
//! ## MX first (`fallback` declared)
//! With a fallback relay, MX may move before the mailboxes are copied: until a mailbox is
//! verified, the new server relays its mail back to the old one, so its mail keeps arriving
//! where its messages are. The order is then: TTL lowered → forwarding on → fallback on with
//! every address not yet verified → (gates: old TTL, approval, window) → final sync of the
//! mailboxes already verified, if any → switch MX → copy and verify each mailbox, each
//! leaving the fallback list as soon as it is verified → gateway on only once the fallback
//! relays nothing (a gateway relaying old → new while the fallback relays new → old would
//! loop that address's mail) → delta sync (after `deltaSyncAfter`, and after the last
//! address left the fallback, so that mail delivered to the old server in between is
//! copied) → forwarding and fallback off → complete. The MX switch then waits not for every
//! mailbox to be verified but for every unverified one to be covered by the fallback.
//!
//! ## Smaller decisions
//! - Before the cutover every step waits for the whole preflight (a careful admin changes
//!   nothing until every mailbox logs in on both sides); after it, a mailbox's steps wait
//!   only for its own logins, steps about no mailbox for none.
//! - A final sync counts only inside the window opening it ran in: if the switch missed
//!   that opening, the next one starts with a new final sync.
//! - The probe tests the gateway (SMTP in at the old server, IMAP out at the new); it is
//!   planned only with a `gateway`, right after it is switched on, and a pass counts only
//!   if it came after `gatewayOnAt`.
//! - Steps a world does not let us judge (a relay or a zone that cannot be read) are
//!   planned behind a gate naming the error, never carried out blind.
//! - A mailbox added to the manifest after the cutover is copied and verified on its own;
//!   the delta sync is not repeated for it.
//!
//! ## Policies
//! - `sync`: every step is carried out.
//! - `upsert-only`: steps that remove or switch off something ([`Step::removes`]: forwarding
//!   off, the fallback relay's configuration removed, the old server's SPF mechanisms
//!   removed) are held back: shown, never carried out, and not counted as pending, so the
//!   migration converges without them. Updates that carry the migration forward still
//!   happen: the fallback's address list follows verification down to empty (holding it
//!   would keep sending verified mailboxes' new mail to the old server), and the TTL is
//!   restored (an update of a value, not a removal).
//! - `observe`: the same plan, every step marked [`Execution::ObserveOnly`]; nothing is
//!   actionable, so no executor can carry anything out.

use crate::address::Address;
use crate::plan::{
    DavStep, DnsChange, ForwardingChange, MailStep, OwnStep, ProbeStep, RelayChange, SieveStep,
};
use std::collections::BTreeSet;

use chrono::{DateTime, Utc};

use super::gate::{Gate, TimeReason, Waiting};
use super::output::{Execution, Plan, PlannedStep};
use super::step::{AccountsStep, Step};
use super::view::{NameView, View};
use super::world::{
    BesideMail, DavState, DirectoryState, MailboxState, RelayState, SieveState, SwitchState, World,
};
use crate::spec::{MailMigrationSpec, Policy};

/// Plans the steps from `world` to what `spec` declares, as of `now`. Pure: reads nothing
/// but its arguments.
pub fn plan(spec: &MailMigrationSpec, world: &World, now: DateTime<Utc>) -> Plan {
    let view = View::new(spec, world, now);
    let mut p = Planner {
        v: &view,
        out: Vec::new(),
    };
    p.accounts();
    p.dns_preparation();
    p.forwarding_on();
    if view.mx_first() {
        p.fallback();
        p.final_sync();
        p.switch_mx();
        p.mailboxes();
        p.sieve();
        p.dav();
        p.gateway_on();
        p.probe();
    } else {
        p.mailboxes();
        p.sieve();
        p.dav();
        p.gateway_on();
        p.final_sync();
        p.probe();
        p.switch_mx();
    }
    p.publish_srv();
    p.delta_sync();
    p.forwarding_off();
    p.fallback_off();
    p.spf_revoke();
    p.restore_ttl();
    p.finish()
}

struct Planner<'v, 'a> {
    v: &'v View<'a>,
    out: Vec<(Step, Vec<Gate>)>,
}

fn facts(waiting: impl IntoIterator<Item = Waiting>) -> Vec<Gate> {
    waiting.into_iter().map(Gate::fact).collect()
}

impl<'a> Planner<'_, 'a> {
    fn push(&mut self, step: Step, gates: Vec<Gate>) {
        self.out.push((step, gates));
    }

    fn spec(&self) -> &'a MailMigrationSpec {
        self.v.spec
    }

    /// Before the cutover nothing is written until every mailbox passed the preflight;
    /// after it, steps that do not concern a mailbox no longer wait for any.
    fn global_pre(&self) -> Vec<Gate> {
        if self.v.cutover_done() {
            Vec::new()
        } else {
            facts(self.v.preflight())
        }
    }

    /// Before the cutover, the whole preflight; after it, the mailbox's own.
    fn mailbox_pre(&self, address: &str) -> Vec<Gate> {
        if self.v.cutover_done() {
            facts(self.v.mailbox_problems(address))
        } else {
            facts(self.v.preflight())
        }
    }

    /// The new server's accounts and aliases, before anything else: the preflight logins
    /// wait for the accounts, and the MX switch for the aliases.
    fn accounts(&mut self) {
        let v = self.v;
        if v.spec.accounts.is_none() {
            return;
        }
        if let DirectoryState::Observed {
            accounts, aliases, ..
        } = &v.world.directory
            && (!accounts.is_empty() || !aliases.is_empty())
        {
            self.push(
                Step::Accounts(AccountsStep::ProvisionAccounts {
                    accounts: accounts.clone(),
                    aliases: aliases.clone(),
                }),
                Vec::new(),
            );
        }
    }

    fn dns_error(n: &NameView<'_>) -> Option<Gate> {
        n.error.as_ref().map(|reason| {
            Gate::fact(Waiting::DnsUnreadable {
                name: n.name.clone(),
                reason: reason.clone(),
            })
        })
    }

    fn zone(&self) -> String {
        self.spec()
            .dns
            .as_ref()
            .map(|d| d.zone.clone())
            .unwrap_or_default()
    }

    /// The end is reached for this domain: its MX switched, and the migration complete or
    /// the delta sync done and the source kept as long as asked. Its SPF and TTL then get
    /// their final values; before, those are planned ahead behind [`Self::end_gates`].
    fn at_end(&self, n: &NameView<'_>) -> bool {
        let v = self.v;
        n.switched
            && (v.completed()
                || (v.cutover_done()
                    && v.delta_synced()
                    && v.keep_source_until().is_some_and(|t| t <= v.now)))
    }

    /// The gates of the cutover itself: preflight, old TTL passed (and the lowering
    /// propagated), approval, window.
    fn cutover_gates(&self) -> Vec<Gate> {
        let v = self.v;
        let mut g = facts(v.preflight());
        if let DirectoryState::Observed {
            missing_aliases, ..
        } = &v.world.directory
            && v.spec.accounts.is_some()
            && !missing_aliases.is_empty()
        {
            g.push(Gate::fact(Waiting::AliasesMissing {
                aliases: missing_aliases.clone(),
            }));
        }
        // With MX first, mail reaches the new server for a mailbox only once it is verified
        // and leaves the fallback; the scripts are copied on the way, not before the switch.
        let sieve = self.sieve_unsettled();
        if !sieve.is_empty() && !v.mx_first() {
            g.push(Gate::fact(Waiting::SieveNotCopied { addresses: sieve }));
        }
        let dav = self.dav_unsettled();
        if !dav.is_empty() && !v.mx_first() {
            g.push(Gate::fact(Waiting::DavNotCopied { addresses: dav }));
        }
        let pending: Vec<&NameView<'_>> = v.names.iter().filter(|n| !n.switched).collect();
        let mut ttl_expiry = None;
        g.extend(pending.iter().filter_map(|n| Self::dns_error(n)));
        let not_lowered: Vec<String> = pending
            .iter()
            .filter(|n| !n.lowered)
            .map(|n| n.name.clone())
            .collect();
        if !not_lowered.is_empty() {
            g.push(Gate::fact(Waiting::TtlNotLowered { names: not_lowered }));
        } else if !pending.is_empty() {
            match (
                v.milestones.old_ttl_expires_at(),
                v.milestones.ttl_lowered_at,
            ) {
                (Some(at), Some(lowered_at)) => {
                    ttl_expiry = Some(at);
                    if at > v.now {
                        g.push(Gate::Time {
                            at,
                            reason: TimeReason::OldTtl {
                                lowered_at,
                                old_ttl: v.milestones.old_ttl.unwrap_or(0),
                                found: v.milestones.ttl_found_lowered,
                            },
                        });
                    }
                }
                // Lowered as far as the records go, but not when (not observed, and not
                // recorded either): never switch on a guess. The instant is recorded once
                // every name is observed, so a name that cannot be read (even one already
                // switched) is what is waited for, and said.
                _ => {
                    g.push(Gate::fact(Waiting::TtlNotLowered {
                        names: pending.iter().map(|n| n.name.clone()).collect(),
                    }));
                    g.extend(
                        v.names
                            .iter()
                            .filter(|n| n.switched)
                            .filter_map(|n| Self::dns_error(n)),
                    );
                }
            }
            for n in &pending {
                if !n.lagging.is_empty() {
                    g.push(Gate::fact(Waiting::Propagation {
                        name: n.name.clone(),
                        nameservers: n.lagging.clone(),
                    }));
                }
            }
        }
        if !v.approved() {
            g.push(Gate::fact(Waiting::NotApproved));
        }
        match &v.window {
            None => {}
            Some(Err(reason)) => g.push(Gate::fact(Waiting::WindowInvalid {
                reason: reason.clone(),
            })),
            Some(Ok(w)) => {
                // The first opening at which the TTL gate is open too.
                let from = ttl_expiry.map_or(v.now, |t| t.max(v.now));
                let at = w.next_open(from);
                if at > v.now {
                    g.push(Gate::Time {
                        at,
                        reason: TimeReason::Window {
                            window: w.describe().to_owned(),
                        },
                    });
                }
            }
        }
        g
    }

    fn not_verified(&self) -> Option<Gate> {
        let unverified = self.v.unverified();
        (!unverified.is_empty()).then(|| {
            Gate::fact(Waiting::MailboxesNotVerified {
                addresses: unverified,
            })
        })
    }

    /// Mailboxes the final sync copies: all of them, or with MX first those already
    /// verified (the others are covered by the fallback and copied after the switch).
    fn final_sync_set(&self) -> Vec<String> {
        let v = self.v;
        if v.mx_first() {
            v.mailboxes
                .iter()
                .filter(|a| v.verified(a))
                .cloned()
                .collect()
        } else {
            v.mailboxes.clone()
        }
    }

    /// The final sync follows the gateway: from the moment it is on, new mail goes to the
    /// new server, so the final sync is the last copy anything needs (the delta sync only
    /// carries what senders with stale DNS still hand to the old server). With MX first
    /// there is no such order: the gateway comes on after the fallback relays nothing.
    fn gateway_first(&self) -> bool {
        self.spec().gateway.is_some() && !self.v.mx_first()
    }

    /// A final sync is still due. With `dns`, before the switch, and one from an earlier
    /// opening of the window (the switch did not happen in it) no longer counts; without,
    /// the gateway is the cutover and the final sync is due once after it. A final sync from
    /// before the gateway went on never counts.
    fn final_sync_pending(&self) -> bool {
        let v = self.v;
        if !v.has_cutover() || self.final_sync_set().is_empty() {
            return false;
        }
        let done = v.milestones.final_synced_at;
        if self.gateway_first()
            && let (Some(done), Some(on)) = (done, v.milestones.gateway_on_at)
            && done < on
        {
            return !(self.spec().dns.is_some() && v.cutover_done());
        }
        if self.spec().dns.is_none() {
            // The gateway alone: the final sync is the first after it.
            return done.is_none();
        }
        if v.cutover_done() {
            return false;
        }
        match done {
            None => true,
            Some(done) => match &v.window {
                Some(Ok(w)) => w.opening_containing(v.now).is_none_or(|open| done < open),
                _ => false,
            },
        }
    }

    fn dns_preparation(&mut self) {
        let v = self.v;
        let Some(dns) = &self.spec().dns else { return };
        // Also after completion, should MX have been put back: it moves again the same way.
        for n in v.names.iter().filter(|n| !n.switched && !n.lowered) {
            let mut gates = self.global_pre();
            gates.extend(Self::dns_error(n));
            self.push(
                Step::Dns(DnsChange::LowerTtl {
                    zone: dns.zone.clone(),
                    name: n.name.clone(),
                    from_ttl: n.records.map(|r| r.ttl),
                    to_ttl: dns.cutover_ttl,
                }),
                gates,
            );
        }
        if let Some(spf) = &dns.spf {
            for n in &v.names {
                // Until the end both servers are authorized; at the end only the new one.
                let want = if self.at_end(n) {
                    tokens(&spf.new)
                } else {
                    tokens(&spf.old).union(&tokens(&spf.new)).cloned().collect()
                };
                let have = n.records.map_or_else(BTreeSet::new, spf_tokens);
                let missing: Vec<String> = want.difference(&have).cloned().collect();
                if missing.is_empty() {
                    continue;
                }
                let mut gates = self.global_pre();
                gates.extend(Self::dns_error(n));
                self.push(
                    Step::Dns(DnsChange::SpfAuthorize {
                        zone: dns.zone.clone(),
                        name: n.name.clone(),
                        mechanisms: missing,
                    }),
                    gates,
                );
            }
        }
    }

    fn forwarding_on(&mut self) {
        let v = self.v;
        let Some(f) = &self.spec().forwarding else {
            return;
        };
        if !v.forwarding_wanted() {
            return;
        }
        for a in &v.mailboxes {
            for side in v.forwarding_sides() {
                let state = v.forwarding_state(a, side);
                if state == SwitchState::On {
                    continue;
                }
                let mut gates = self.mailbox_pre(a);
                if let SwitchState::Error { reason } = state {
                    gates.push(Gate::fact(Waiting::ForwardingUnreadable {
                        address: a.clone(),
                        side,
                        reason,
                    }));
                }
                self.push(
                    Step::Forwarding(ForwardingChange::On {
                        address: a.clone(),
                        side,
                        to: f.to.clone(),
                    }),
                    gates,
                );
            }
        }
    }

    /// Per mailbox: its Sieve scripts copied while they differ (but for those the new server
    /// refuses or keeps, which the comparison reports).
    fn sieve(&mut self) {
        if self.spec().sieve.is_some() {
            self.beside_mail(
                |m| &m.sieve,
                |address| Step::Sieve(SieveStep::CopySieve { address }),
                |address, reason| Waiting::SieveUnreadable { address, reason },
            );
        }
    }

    /// Per mailbox: its address books and calendars copied while the new server lacks
    /// something (but for what it refused before, unchanged since, or keeps).
    fn dav(&mut self) {
        if self.spec().dav.is_some() {
            self.beside_mail(
                |m| &m.dav,
                |address| Step::Dav(DavStep::CopyDav { address }),
                |address, reason| Waiting::DavUnreadable { address, reason },
            );
        }
    }

    /// A copy of something beside mail, one step per mailbox while it is pending; one that
    /// cannot be compared waits on the reason.
    fn beside_mail<S: BesideMail>(
        &mut self,
        state: impl Fn(&MailboxState) -> &S,
        step: impl Fn(String) -> Step,
        unreadable: impl Fn(String, String) -> Waiting,
    ) {
        let v = self.v;
        for a in &v.mailboxes {
            let Some(m) = v.state(a) else { continue };
            let mut gates = self.mailbox_pre(a);
            let s = state(m);
            if let Some(reason) = s.unreadable() {
                gates.push(Gate::fact(unreadable(a.clone(), reason.to_owned())));
            } else if !s.pending() {
                continue;
            }
            self.push(step(a.clone()), gates);
        }
    }

    /// Mailboxes whose copy beside mail is not yet settled (compared with nothing pending,
    /// or nothing to compare).
    fn unsettled<S: BesideMail>(&self, state: impl Fn(&MailboxState) -> &S) -> Vec<String> {
        let v = self.v;
        v.mailboxes
            .iter()
            .filter(|a| !v.state(a).is_some_and(|m| state(m).settled()))
            .cloned()
            .collect()
    }

    fn sieve_unsettled(&self) -> Vec<String> {
        match self.spec().sieve {
            Some(_) => self.unsettled(|m| &m.sieve),
            None => Vec::new(),
        }
    }

    fn dav_unsettled(&self) -> Vec<String> {
        match self.spec().dav {
            Some(_) => self.unsettled(|m| &m.dav),
            None => Vec::new(),
        }
    }

    /// Per mailbox: copy (or copy again what verification found missing), then verify.
    fn mailboxes(&mut self) {
        use super::world::{SyncState, Verification};
        let v = self.v;
        for a in &v.mailboxes {
            let pre = self.mailbox_pre(a);
            let mut copy_gates = pre.clone();
            let forwarding_off = v.forwarding_wanted()
                && v.forwarding_sides()
                    .into_iter()
                    .any(|side| v.forwarding_state(a, side) != SwitchState::On);
            if forwarding_off {
                copy_gates.push(Gate::fact(Waiting::ForwardingNotOn { address: a.clone() }));
            }
            let mut verify_after_copy = pre.clone();
            verify_after_copy.push(Gate::fact(Waiting::MailboxNotSynced { address: a.clone() }));
            let address = a.clone();
            let Some(m) = v.state(a) else {
                self.push(Step::Mail(MailStep::InitialSync { address }), copy_gates);
                self.push(
                    Step::Mail(MailStep::Verify { address: a.clone() }),
                    verify_after_copy,
                );
                continue;
            };
            // Equal but for mail that arrived since: copied by the next sync of the cutover
            // if one is ahead ([`View::verified`]), otherwise by a re-sync of its own.
            let left = match m.verification {
                Verification::Equal { at, arrived, .. } if !v.verified(a) => Some((at, arrived)),
                Verification::Differs { at, differences } => Some((at, differences)),
                _ => None,
            };
            match (&m.sync, &m.verification) {
                (_, Verification::Equal { .. }) if left.is_none() => {}
                (SyncState::Never, _) => {
                    self.push(Step::Mail(MailStep::InitialSync { address }), copy_gates);
                    self.push(
                        Step::Mail(MailStep::Verify { address: a.clone() }),
                        verify_after_copy,
                    );
                }
                (SyncState::Synced { at, .. }, _)
                    if left.is_some_and(|(checked, _)| *at <= checked) =>
                {
                    let differences = left.map_or(0, |(_, n)| n);
                    self.push(
                        Step::Mail(MailStep::Resync {
                            address,
                            differences,
                        }),
                        copy_gates,
                    );
                    self.push(
                        Step::Mail(MailStep::Verify { address: a.clone() }),
                        verify_after_copy,
                    );
                }
                (SyncState::Synced { .. }, _) => {
                    self.push(Step::Mail(MailStep::Verify { address }), pre)
                }
            }
        }
    }

    /// The fallback relays exactly the addresses not yet verified.
    fn fallback(&mut self) {
        let v = self.v;
        let Some(fb) = &self.spec().fallback else {
            return;
        };
        let wanted = v.fallback_wanted();
        let in_place = match &v.world.fallback {
            RelayState::On { relay_to, entries } => {
                (*relay_to == fb.relay_to && *entries == wanted)
                    || (wanted.is_empty() && entries.is_empty())
            }
            RelayState::Off | RelayState::Unknown => wanted.is_empty(),
            // Unreadable and nothing to relay: only the removal (gated) is planned.
            RelayState::Error { .. } => wanted.is_empty(),
        };
        if in_place {
            return;
        }
        let mut gates = self.global_pre();
        if let RelayState::Error { reason } = &v.world.fallback {
            gates.push(Gate::fact(Waiting::RelayUnreadable {
                relay: "fallback".into(),
                reason: reason.clone(),
            }));
        }
        let addresses = v
            .mailboxes
            .iter()
            .filter(|a| wanted.contains(Address::of(a).as_str()))
            .cloned()
            .collect();
        self.push(
            Step::Relay(RelayChange::FallbackRelay {
                relay_to: fb.relay_to.clone(),
                addresses,
            }),
            gates,
        );
    }

    fn final_sync(&mut self) {
        if !self.final_sync_pending() {
            return;
        }
        let v = self.v;
        // Without `dns` the gateway was the cutover: once it is on, nothing else is waited
        // for. Otherwise the switch's own gates (approval, old TTL, window) hold it too, so
        // that it runs right before the switch.
        let mut gates = if self.gateway_first() && self.spec().dns.is_none() && v.gateway_on() {
            facts(v.preflight())
        } else {
            self.cutover_gates()
        };
        if !v.mx_first() {
            gates.extend(self.not_verified());
        }
        if self.gateway_first() && !v.gateway_on() {
            gates.push(Gate::fact(Waiting::GatewayNotOn));
        }
        self.push(
            Step::Mail(MailStep::FinalSync {
                addresses: self.final_sync_set(),
            }),
            gates,
        );
    }

    fn gateway_on(&mut self) {
        let v = self.v;
        let Some(gw) = &self.spec().gateway else {
            return;
        };
        let need_gateway = !v.gateway_on();
        if need_gateway {
            let mut gates = self.cutover_gates();
            if !v.cutover_done() && !v.mx_first() {
                gates.extend(self.not_verified());
            }
            if !self.gateway_first() && self.final_sync_pending() {
                gates.push(Gate::fact(Waiting::FinalSyncPending));
            }
            let busy = v.fallback_busy();
            if !busy.is_empty() {
                gates.push(Gate::fact(Waiting::FallbackStillRelaying {
                    addresses: busy.into_iter().collect(),
                }));
            }
            if let RelayState::Error { reason } = &v.world.gateway {
                gates.push(Gate::fact(Waiting::RelayUnreadable {
                    relay: "gateway".into(),
                    reason: reason.clone(),
                }));
            }
            self.push(
                Step::Relay(RelayChange::GatewayOn {
                    relay_to: gw.relay_to.clone(),
                    domains: v.gateway_domains().into_iter().collect(),
                }),
                gates,
            );
        }
    }

    /// The mail-flow probe through the gateway, once it is on.
    fn probe(&mut self) {
        let v = self.v;
        if self.spec().gateway.is_none() {
            return;
        }
        let need_gateway = !v.gateway_on();
        if let Some(probe) = &self.spec().probe
            && !v.probe_passed()
        {
            let mut gates = facts(v.mailbox_problems(&probe.mailbox));
            if need_gateway {
                gates.push(Gate::fact(Waiting::GatewayNotOn));
            }
            self.push(
                Step::Probe(ProbeStep {
                    mailbox: probe.mailbox.clone(),
                }),
                gates,
            );
        }
    }

    fn switch_mx(&mut self) {
        let v = self.v;
        let Some(dns) = &self.spec().dns else { return };
        for n in v.names.iter().filter(|n| !n.switched) {
            let mut gates = self.cutover_gates();
            if v.mx_first() {
                let covered = v.fallback_entries();
                let uncovered: Vec<String> = v
                    .unverified()
                    .into_iter()
                    .filter(|a| !covered.contains(Address::of(a).as_str()))
                    .collect();
                if !uncovered.is_empty() {
                    gates.push(Gate::fact(Waiting::FallbackNotCovering {
                        addresses: uncovered,
                    }));
                }
            } else {
                gates.extend(self.not_verified());
            }
            if self.final_sync_pending() {
                gates.push(Gate::fact(Waiting::FinalSyncPending));
            }
            // The gateway goes on before the switch, unless MX moves first: then it waits
            // until the fallback relays nothing.
            if self.spec().gateway.is_some() && v.fallback_busy().is_empty() {
                if !v.gateway_on() {
                    gates.push(Gate::fact(Waiting::GatewayNotOn));
                } else if self.spec().probe.is_some() && !v.probe_passed() {
                    gates.push(Gate::fact(Waiting::ProbeNotPassed {
                        last_failure: v.probe_failure(),
                    }));
                }
            }
            gates.extend(Self::dns_error(n));
            self.push(
                Step::Dns(DnsChange::SwitchMx {
                    zone: dns.zone.clone(),
                    name: n.name.clone(),
                    from: n.records.map(|r| r.mx.clone()),
                    to: dns.mx.clone(),
                    ttl: if v.completed() {
                        self.v.finalize.restore_ttl
                    } else {
                        dns.cutover_ttl
                    },
                }),
                gates,
            );
        }
    }

    fn publish_srv(&mut self) {
        let v = self.v;
        let Some(srv) = self.spec().dns.as_ref().and_then(|d| d.srv.as_ref()) else {
            return;
        };
        let want_imaps = srv.imaps.as_deref().map(|t| srv_target(t, 993));
        let want_submission = srv.submission.as_deref().map(|t| srv_target(t, 587));
        for n in &v.names {
            let (imaps, submission) = match n.records {
                Some(r) => (
                    differs(&want_imaps, &r.srv_imaps, 993),
                    differs(&want_submission, &r.srv_submission, 587),
                ),
                None if v.completed() => (None, None),
                None => (want_imaps.clone(), want_submission.clone()),
            };
            if imaps.is_none() && submission.is_none() {
                continue;
            }
            let mut gates = Vec::new();
            if !n.switched {
                gates.push(Gate::fact(Waiting::MxNotSwitched {
                    names: vec![n.name.clone()],
                }));
            }
            gates.extend(Self::dns_error(n));
            self.push(
                Step::Dns(DnsChange::PublishSrv {
                    zone: self.zone(),
                    name: n.name.clone(),
                    imaps,
                    submission,
                }),
                gates,
            );
        }
    }

    fn delta_sync(&mut self) {
        let v = self.v;
        if !v.has_cutover() || v.delta_synced() {
            return;
        }
        let mut gates = facts(v.preflight());
        if self.final_sync_pending() {
            gates.push(Gate::fact(Waiting::FinalSyncPending));
        }
        let not_switched: Vec<String> = v
            .names
            .iter()
            .filter(|n| !n.switched)
            .map(|n| n.name.clone())
            .collect();
        if !not_switched.is_empty() {
            gates.push(Gate::fact(Waiting::MxNotSwitched {
                names: not_switched,
            }));
        }
        for n in v
            .names
            .iter()
            .filter(|n| n.switched && !n.lagging.is_empty())
        {
            gates.push(Gate::fact(Waiting::Propagation {
                name: n.name.clone(),
                nameservers: n.lagging.clone(),
            }));
        }
        if self.spec().gateway.is_some() && !v.gateway_on() {
            gates.push(Gate::fact(Waiting::GatewayNotOn));
        }
        if let (Some(at), Some(cutover_at)) = (v.delta_sync_due(), v.cutover_at())
            && at > v.now
        {
            gates.push(Gate::Time {
                at,
                reason: TimeReason::DeltaSyncAfter {
                    cutover_at,
                    after: v.finalize.delta_sync_after.to_string(),
                },
            });
        }
        gates.extend(self.not_verified());
        let busy = v.fallback_busy();
        if !busy.is_empty() {
            gates.push(Gate::fact(Waiting::FallbackStillRelaying {
                addresses: busy.into_iter().collect(),
            }));
        }
        self.push(
            Step::Mail(MailStep::DeltaSync {
                addresses: v.mailboxes.clone(),
            }),
            gates,
        );
    }

    fn forwarding_off(&mut self) {
        let v = self.v;
        if self.spec().forwarding.is_none() {
            return;
        }
        let wanted = v.forwarding_wanted();
        for a in &v.mailboxes {
            for side in v.forwarding_sides() {
                let state = v.forwarding_state(a, side);
                let on_or_unknown = matches!(state, SwitchState::On | SwitchState::Error { .. });
                // While forwarding is wanted, its removal is shown ahead, behind its gate.
                if !wanted && !on_or_unknown {
                    continue;
                }
                let mut gates = self.mailbox_pre(a);
                if wanted {
                    if v.has_cutover() {
                        gates.push(Gate::fact(Waiting::DeltaSyncPending));
                    } else {
                        gates.extend(self.not_verified());
                    }
                }
                if let SwitchState::Error { reason } = state {
                    gates.push(Gate::fact(Waiting::ForwardingUnreadable {
                        address: a.clone(),
                        side,
                        reason,
                    }));
                }
                self.push(
                    Step::Forwarding(ForwardingChange::Off {
                        address: a.clone(),
                        side,
                    }),
                    gates,
                );
            }
        }
    }

    fn fallback_off(&mut self) {
        let v = self.v;
        let Some(fb) = &self.spec().fallback else {
            return;
        };
        let wanted = v.fallback_wanted();
        let configured = matches!(
            v.world.fallback,
            RelayState::On { .. } | RelayState::Error { .. }
        );
        if wanted.is_empty() && !configured {
            return;
        }
        let mut gates = Vec::new();
        if !wanted.is_empty() {
            gates.push(Gate::fact(Waiting::MailboxesNotVerified {
                addresses: v
                    .mailboxes
                    .iter()
                    .filter(|a| wanted.contains(Address::of(a).as_str()))
                    .cloned()
                    .collect(),
            }));
        }
        if let RelayState::Error { reason } = &v.world.fallback {
            gates.push(Gate::fact(Waiting::RelayUnreadable {
                relay: "fallback".into(),
                reason: reason.clone(),
            }));
        }
        self.push(
            Step::Relay(RelayChange::FallbackOff {
                relay_to: fb.relay_to.clone(),
            }),
            gates,
        );
    }

    /// Gates of the end: MX switched and settled, delta sync done, the source kept as
    /// long as asked.
    fn end_gates(&self, n: &NameView<'_>) -> Vec<Gate> {
        let v = self.v;
        let mut g = Vec::new();
        if !n.switched {
            g.push(Gate::fact(Waiting::MxNotSwitched {
                names: vec![n.name.clone()],
            }));
        } else if !n.lagging.is_empty() {
            g.push(Gate::fact(Waiting::Propagation {
                name: n.name.clone(),
                nameservers: n.lagging.clone(),
            }));
        }
        if !v.completed() {
            if !v.delta_synced() {
                g.push(Gate::fact(Waiting::DeltaSyncPending));
            }
            g.extend(self.keep_gate());
        }
        g.extend(Self::dns_error(n));
        g
    }

    fn keep_gate(&self) -> Option<Gate> {
        let v = self.v;
        let (at, cutover_at) = (v.keep_source_until()?, v.cutover_at()?);
        (at > v.now).then(|| Gate::Time {
            at,
            reason: TimeReason::KeepSource {
                cutover_at,
                keep: v.finalize.keep_source_for.to_string(),
            },
        })
    }

    fn spf_revoke(&mut self) {
        let v = self.v;
        let Some(spf) = self.spec().dns.as_ref().and_then(|d| d.spf.as_ref()) else {
            return;
        };
        // Mechanisms both servers share stay.
        let old: BTreeSet<String> = tokens(&spf.old)
            .difference(&tokens(&spf.new))
            .cloned()
            .collect();
        for n in &v.names {
            let present: Vec<String> = match n.records {
                // Before the end the record holds the old server (it is authorized above).
                _ if !self.at_end(n) => old.iter().cloned().collect(),
                Some(r) => old.intersection(&spf_tokens(r)).cloned().collect(),
                None if v.completed() => Vec::new(),
                None => old.iter().cloned().collect(),
            };
            if present.is_empty() {
                continue;
            }
            let gates = self.end_gates(n);
            self.push(
                Step::Dns(DnsChange::SpfRevoke {
                    zone: self.zone(),
                    name: n.name.clone(),
                    mechanisms: present,
                }),
                gates,
            );
        }
    }

    fn restore_ttl(&mut self) {
        let v = self.v;
        if self.spec().dns.is_none() {
            return;
        }
        let ttl = v.finalize.restore_ttl;
        for n in &v.names {
            // Before the end the TTL is (or will be) lowered: its restoring lies ahead.
            let needed = !self.at_end(n)
                || match n.records {
                    Some(r) => r.ttl != ttl,
                    None => !v.completed(),
                };
            if !needed {
                continue;
            }
            let gates = self.end_gates(n);
            self.push(
                Step::Dns(DnsChange::RestoreTtl {
                    zone: self.zone(),
                    name: n.name.clone(),
                    ttl,
                }),
                gates,
            );
        }
    }

    /// Marks each step's execution, adds completion, removes repeated gates.
    fn finish(self) -> Plan {
        let v = self.v;
        let spec = v.spec;
        let execution = |step: &Step| -> Execution {
            if spec.suspend {
                Execution::Suspended
            } else if spec.policy == Policy::Observe {
                Execution::ObserveOnly
            } else if spec.policy == Policy::UpsertOnly && step.removes() {
                Execution::HeldByPolicy
            } else {
                match step.adapter() {
                    Some(a) if !v.world.has(a) => Execution::NotAvailableYet { adapter: a },
                    _ => Execution::Execute,
                }
            }
        };
        let available = |step: &Step| step.adapter().is_none_or(|a| v.world.has(a));
        let mut steps: Vec<PlannedStep> = self
            .out
            .into_iter()
            .map(|(step, mut gates)| {
                // A step that failed waits for its backoff or, stalled, for a person;
                // the others go on meanwhile.
                if let Some(f) = v.world.failure_of(&step) {
                    if f.stalled {
                        gates.push(Gate::fact(Waiting::StepStalled {
                            step: f.step.clone(),
                            count: f.count,
                            message: f.message.clone(),
                        }));
                    } else if let Some(at) = f.retry_at.filter(|at| *at > v.now) {
                        gates.push(Gate::Time {
                            at,
                            reason: TimeReason::Retry {
                                attempt: f.count,
                                error: f.message.clone(),
                            },
                        });
                    }
                }
                // A copy stopped at a spent daily budget goes on when it has room again.
                for (address, pause) in v.world.paused_copies(&step) {
                    if pause.until > v.now {
                        gates.push(Gate::Time {
                            at: pause.until,
                            reason: TimeReason::Budget {
                                address: address.to_owned(),
                                budget: pause.what.clone(),
                            },
                        });
                    }
                }
                // Work under way elsewhere is not started twice.
                gates.extend(
                    v.world
                        .in_flight
                        .iter()
                        .filter(|f| f.step.same_work(&step))
                        .map(|f| {
                            Gate::fact(Waiting::Running {
                                by: f.by.clone(),
                                since: f.since,
                            })
                        }),
                );
                PlannedStep {
                    touches: step.touches(spec),
                    execution: execution(&step),
                    available: available(&step),
                    gates: dedup(gates),
                    step,
                }
            })
            .collect();
        if !v.completed() {
            let before = steps.iter().filter(|s| s.is_pending()).count();
            let mut gates = Vec::new();
            if before > 0 {
                gates.push(Gate::fact(Waiting::EarlierSteps { count: before }));
            }
            // DNS steps are done only once every nameserver answers the new data.
            for n in v.names.iter().filter(|n| !n.lagging.is_empty()) {
                gates.push(Gate::fact(Waiting::Propagation {
                    name: n.name.clone(),
                    nameservers: n.lagging.clone(),
                }));
            }
            if v.has_cutover() {
                let planner = Planner { v, out: Vec::new() };
                gates.extend(planner.keep_gate());
            }
            let step = Step::Own(OwnStep::MarkComplete);
            steps.push(PlannedStep {
                touches: step.touches(spec),
                execution: execution(&step),
                available: true,
                gates,
                step,
            });
        }
        Plan {
            computed_at: v.now,
            policy: spec.policy,
            suspended: spec.suspend,
            steps,
            notes: notes(v),
        }
    }
}

/// What the migration goes on without: Sieve scripts the new server refuses, conflicts
/// kept, a source without ManageSieve.
fn notes(v: &View<'_>) -> Vec<String> {
    let mut notes = dav_notes(v);
    let Some(sieve) = &v.spec.sieve else {
        return notes;
    };
    if sieve.managesieve.is_none() {
        notes.push(
            "Sieve: the old server has no ManageSieve (sieve.managesieve is not given): filters and vacation replies are not copied".into(),
        );
        return notes;
    }
    for a in &v.mailboxes {
        let Some(SieveState::Compared { kept, refused, .. }) = v.state(a).map(|m| &m.sieve) else {
            continue;
        };
        for r in refused {
            notes.push(format!(
                "Sieve: the new server refuses {a}'s script `{}`, so it is not copied: {}",
                r.script,
                crate::text::printable(&r.reason)
            ));
        }
        for k in kept {
            notes.push(format!(
                "Sieve: {a}'s script `{k}` differs on the new server and is kept there (sieve.conflicts: keep)"
            ));
        }
    }
    notes
}

/// Contacts and calendar resources the new server refused or keeps.
fn dav_notes(v: &View<'_>) -> Vec<String> {
    let mut notes = Vec::new();
    let Some(dav) = &v.spec.dav else {
        return notes;
    };
    if dav.source.is_none() {
        notes.push("Contacts and calendars: the old server has none (dav.source is not given): nothing is copied".into());
        return notes;
    }
    for a in &v.mailboxes {
        let Some(DavState::Compared { kept, refused, .. }) = v.state(a).map(|m| &m.dav) else {
            continue;
        };
        for r in refused {
            notes.push(format!(
                "Contacts and calendars: the new server refused {a}'s `{}` in `{}` ({}); not copied until it changes",
                crate::text::printable(&r.key),
                crate::text::printable(&r.collection),
                crate::text::printable(&r.reason)
            ));
        }
        for k in kept {
            notes.push(format!(
                "Contacts and calendars: {a}'s `{}` differs on the new server and is kept there",
                crate::text::printable(k)
            ));
        }
    }
    notes
}

fn dedup(gates: Vec<Gate>) -> Vec<Gate> {
    let mut out: Vec<Gate> = Vec::with_capacity(gates.len());
    for g in gates {
        if !out.contains(&g) {
            out.push(g);
        }
    }
    out
}

/// SPF mechanisms, compared case-insensitively.
fn tokens(s: &str) -> BTreeSet<String> {
    s.split_whitespace().map(str::to_ascii_lowercase).collect()
}

fn spf_tokens(r: &super::world::Records) -> BTreeSet<String> {
    r.spf.as_deref().map(tokens).unwrap_or_default()
}

/// `host` or `host:port` as `host:port`, host compared as DNS does.
fn srv_target(t: &str, default_port: u16) -> String {
    match t.rsplit_once(':') {
        Some((host, port)) => format!("{}:{port}", crate::address::Domain::of(host)),
        None => format!("{}:{default_port}", crate::address::Domain::of(t)),
    }
}

/// The wanted target, when the observed one is not it.
fn differs(want: &Option<String>, have: &Option<String>, default_port: u16) -> Option<String> {
    let want = want.as_ref()?;
    let have = have.as_deref().map(|h| srv_target(h, default_port));
    (have.as_ref() != Some(want)).then(|| want.clone())
}
