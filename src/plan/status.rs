//! The status mailshift reports, derived (purely) from the spec, the world and the plan:
//! Kubernetes-style conditions that kstatus and GitOps tools read, progress counts, the next
//! step in plain words and the instant the loop waits for.
//!
//! Conditions follow the API conventions and kstatus: `Ready` is always present; the
//! abnormal-true `Reconciling` and `Stalled` are present only while true (as Flux does), so
//! a converged or merely waiting-for-approval migration reads as current. The migration's own
//! conditions (`TTLLowered`, `Synced`, `Verified`, `Gateway`, `MXSwitched`, `DeltaSynced`,
//! `Completed`) appear only for the sections the spec declares. A condition keeps its
//! `lastTransitionTime` while its status stays the same.

use crate::plan::{DnsChange, ForwardingChange, MailStep, OwnStep, ProbeStep, RelayChange};
use chrono::{DateTime, Utc};

use super::gate::{Gate, Waiting, instant};
use super::output::{Execution, Plan, PlannedStep, Progress};
use super::step::Step;
use super::view::View;
use super::world::{Verification, World};
use crate::spec::{
    Condition, ConditionStatus, MailMigrationSpec, MailMigrationStatus, MailboxCounts, Phase,
};

/// Condition types, as written in `status.conditions`.
pub mod condition {
    pub const READY: &str = "Ready";
    pub const RECONCILING: &str = "Reconciling";
    pub const STALLED: &str = "Stalled";
    pub const TTL_LOWERED: &str = "TTLLowered";
    pub const SYNCED: &str = "Synced";
    pub const VERIFIED: &str = "Verified";
    pub const GATEWAY: &str = "Gateway";
    pub const MX_SWITCHED: &str = "MXSwitched";
    pub const DELTA_SYNCED: &str = "DeltaSynced";
    pub const COMPLETED: &str = "Completed";
}

/// The status for `generation` of the spec, given the world, the plan computed from them
/// and the status stored before (whose transition times are kept where nothing changed).
/// The milestones come from `world` (the executor records them there), with changes that
/// were observed but not recorded dated `now`.
pub fn derive_status(
    spec: &MailMigrationSpec,
    world: &World,
    plan: &Plan,
    previous: &MailMigrationStatus,
    generation: i64,
    now: DateTime<Utc>,
) -> MailMigrationStatus {
    let v = View::new(spec, world, now);
    let mut status = MailMigrationStatus {
        observed_generation: Some(generation),
        ..MailMigrationStatus::default()
    };
    v.milestones.write_to(&mut status);
    status.mailboxes = Some(counts(&v));
    let observed = crate::spec::Freshness {
        oldest_login: world.oldest_login(),
        ..world.observed.clone()
    };
    status.observed = (observed != crate::spec::Freshness::default()).then_some(observed);

    let progress = plan.progress();
    let focus = plan.next().or_else(|| plan.pending().next());
    status.next_step = focus.map(describe_focus);
    status.waiting_until = match progress {
        Progress::WaitUntil { at } => Some(at),
        _ => None,
    };

    let mut conds = Conditions {
        out: Vec::new(),
        previous,
        generation,
        now,
    };
    let stalled = health(&mut conds, &v, plan, &progress, focus);
    migration_conditions(&mut conds, &v);
    status.conditions = conds.out;
    status.phase = Some(phase(&v, plan, focus, stalled));
    status
}

struct Conditions<'p> {
    out: Vec<Condition>,
    previous: &'p MailMigrationStatus,
    generation: i64,
    now: DateTime<Utc>,
}

impl Conditions<'_> {
    fn set(&mut self, type_: &str, status: ConditionStatus, reason: &str, message: String) {
        let last_transition_time = self
            .previous
            .conditions
            .iter()
            .find(|c| c.type_ == type_ && c.status == status)
            .map_or(self.now, |c| c.last_transition_time);
        self.out.push(Condition {
            type_: type_.to_owned(),
            status,
            reason: reason.to_owned(),
            message,
            last_transition_time,
            observed_generation: Some(self.generation),
        });
    }

    fn set_bool(&mut self, type_: &str, value: bool, reason: &str, message: String) {
        let status = if value {
            ConditionStatus::True
        } else {
            ConditionStatus::False
        };
        self.set(type_, status, reason, message);
    }
}

fn counts(v: &View<'_>) -> MailboxCounts {
    let mut c = MailboxCounts::default();
    for a in &v.mailboxes {
        c.total += 1;
        let Some(m) = v.state(a) else { continue };
        c.synced += u32::from(m.is_synced());
        c.verified += u32::from(m.is_verified());
        c.failed += u32::from(!m.preflight_ok() || m.last_error.is_some());
    }
    c
}

fn describe_focus(s: &PlannedStep) -> String {
    if s.is_actionable() {
        return s.step.to_string();
    }
    match (s.execution, s.gates.first()) {
        (Execution::NotAvailableYet { adapter }, _) => format!(
            "{} (not available yet: no {} adapter)",
            s.step,
            adapter.describe()
        ),
        (_, Some(g)) => format!("{} — waiting {}", s.step, waiting_words(g)),
        (Execution::ObserveOnly, None) => format!("{} (policy observe)", s.step),
        (Execution::Suspended, None) => format!("{} (suspended)", s.step),
        _ => s.step.to_string(),
    }
}

fn waiting_words(g: &Gate) -> String {
    match g {
        Gate::Time { .. } => g.to_string(),
        Gate::Fact { waiting } => format!("for: {waiting}"),
    }
}

/// What a complete migration leaves on the servers on purpose, for the admin to remove when
/// they see fit (mailshift never deletes the source's mail, and the gateway keeps carrying
/// mail from senders that still use the old MX).
fn left_in_place(spec: &crate::spec::MailMigrationSpec) -> String {
    let mut kept = vec!["the source mailboxes (never modified)".to_owned()];
    if let Some(g) = &spec.gateway {
        kept.push(format!(
            "the old server's gateway relay to {} for {}",
            g.relay_to,
            spec.domains.join(", ")
        ));
    }
    format!(
        "; left in place: {}; removing them is the admin's call",
        kept.join(" and ")
    )
}

/// Ready, Reconciling, Stalled. Returns whether the migration is stalled.
fn health(
    c: &mut Conditions<'_>,
    v: &View<'_>,
    plan: &Plan,
    progress: &Progress,
    focus: Option<&PlannedStep>,
) -> bool {
    use ConditionStatus::{False, True};
    use condition::{READY, RECONCILING, STALLED};
    if let Some(f) = v.world.failure().filter(|f| f.stalled) {
        let msg = format!(
            "{} failed {} times in a row: {}",
            f.step, f.count, f.message
        );
        c.set(READY, False, &f.reason, msg.clone());
        c.set(STALLED, True, &f.reason, msg);
        return true;
    }
    match progress {
        Progress::Converged => {
            let msg = match v.milestones.completed_at {
                Some(at) => format!(
                    "the migration is complete (since {}); the servers match the manifest{}",
                    instant(at),
                    left_in_place(v.spec)
                ),
                None => "the servers match the manifest".to_owned(),
            };
            c.set(READY, True, "Completed", msg);
            false
        }
        Progress::Suspended => {
            let n = plan.pending().count();
            c.set(
                READY,
                False,
                "Suspended",
                format!("{n} steps pending; spec.suspend is true, so nothing is written until it is lifted"),
            );
            false
        }
        Progress::ObserveOnly => {
            let n = plan.pending().count();
            c.set(
                READY,
                False,
                "ObserveOnly",
                format!("{n} steps pending; policy observe never carries them out"),
            );
            false
        }
        Progress::Blocked { reasons } => {
            let problem = plan.pending().flat_map(|s| &s.gates).find_map(|g| match g {
                Gate::Fact { waiting } if waiting.is_problem() => Some(waiting.reason()),
                _ => None,
            });
            let unavailable = plan
                .pending()
                .any(|s| matches!(s.execution, Execution::NotAvailableYet { .. }));
            let message = reasons.join("; ");
            match (problem, unavailable) {
                (Some(reason), _) => {
                    c.set(READY, False, reason, message.clone());
                    c.set(STALLED, True, reason, message);
                    true
                }
                (None, true) => {
                    c.set(READY, False, "AdapterNotAvailable", message.clone());
                    c.set(STALLED, True, "AdapterNotAvailable", message);
                    true
                }
                (None, false) => {
                    c.set(READY, False, Waiting::NotApproved.reason(), message);
                    false
                }
            }
        }
        Progress::Ready | Progress::Recheck | Progress::WaitUntil { .. } => {
            let (reason, message) = match v.world.failure() {
                Some(f) => (
                    "Retrying".to_owned(),
                    format!(
                        "{} failed {} times: {}; retrying",
                        f.step, f.count, f.message
                    ),
                ),
                None => {
                    let reason = match progress {
                        Progress::Ready => "Progressing",
                        Progress::Recheck => "WaitingForServers",
                        _ => "Waiting",
                    };
                    (
                        reason.to_owned(),
                        focus.map(describe_focus).unwrap_or_default(),
                    )
                }
            };
            c.set(READY, False, &reason, message.clone());
            c.set(RECONCILING, True, &reason, message);
            false
        }
    }
}

/// The migration's own conditions, for the sections the spec declares.
fn migration_conditions(c: &mut Conditions<'_>, v: &View<'_>) {
    use condition::*;
    let total = v.mailboxes.len();
    let m = &v.milestones;

    if v.spec.dns.is_some() {
        let lowered = v.names.iter().all(|n| n.lowered || n.switched);
        let cutover_ttl = v.spec.dns.as_ref().map_or(0, |d| d.cutover_ttl);
        if v.completed() {
            c.set_bool(
                TTL_LOWERED,
                false,
                "Restored",
                format!(
                    "the migration is complete; the MX TTL goes back to {}s",
                    v.finalize.restore_ttl
                ),
            );
        } else if lowered {
            let expiry = m
                .old_ttl_expires_at()
                .map(|t| format!("; the old TTL has passed at {}", instant(t)))
                .unwrap_or_default();
            let since = m
                .ttl_lowered_at
                .map(|t| format!(" at {}", instant(t)))
                .unwrap_or_default();
            c.set_bool(
                TTL_LOWERED,
                true,
                "Lowered",
                format!("MX TTL lowered to {cutover_ttl}s{since}{expiry}"),
            );
        } else {
            c.set_bool(
                TTL_LOWERED,
                false,
                "NotLowered",
                format!("the MX TTL is not lowered to {cutover_ttl}s yet"),
            );
        }
    }

    let synced = v
        .mailboxes
        .iter()
        .filter(|a| v.state(a).is_some_and(|m| m.is_synced()))
        .count();
    c.set_bool(
        SYNCED,
        synced == total,
        if synced == total {
            "AllCopied"
        } else {
            "Copying"
        },
        format!("{synced} of {total} mailboxes copied"),
    );

    let verified = v.mailboxes.iter().filter(|a| v.verified(a)).count();
    let differing: Vec<String> = v
        .mailboxes
        .iter()
        .filter_map(|a| match v.state(a).map(|m| &m.verification) {
            Some(Verification::Differs { differences, .. }) => {
                Some(format!("{a} ({differences} differences)"))
            }
            _ => None,
        })
        .collect();
    let (reason, message) = if verified == total {
        (
            "AllVerified",
            format!("{verified} of {total} mailboxes verified"),
        )
    } else if !differing.is_empty() {
        (
            "Differences",
            format!(
                "{verified} of {total} mailboxes verified; differences found in {}",
                super::step::list(&differing)
            ),
        )
    } else {
        (
            "Verifying",
            format!("{verified} of {total} mailboxes verified"),
        )
    };
    c.set_bool(VERIFIED, verified == total, reason, message);

    if v.spec.gateway.is_some() {
        let (ok, reason, message) = if !v.gateway_on() {
            (
                false,
                "NotOn",
                "the old server does not relay to the new one yet".to_owned(),
            )
        } else if v.spec.probe.is_none() {
            (
                true,
                "Relaying",
                "the old server relays the domains' mail to the new one".to_owned(),
            )
        } else if v.probe_passed() {
            (
                true,
                "ProbePassed",
                "a probe message went through the gateway".to_owned(),
            )
        } else if let Some(why) = v.probe_failure() {
            (
                false,
                "ProbeFailed",
                format!("the mail-flow probe failed: {why}"),
            )
        } else {
            (
                false,
                "ProbePending",
                "no probe has gone through the gateway yet".to_owned(),
            )
        };
        c.set_bool(GATEWAY, ok, reason, message);
    }

    if v.spec.dns.is_some() {
        let lagging: Vec<String> = v
            .names
            .iter()
            .flat_map(|n| n.lagging.iter().cloned())
            .collect();
        let targets: Vec<String> = v.mx().iter().map(|r| r.exchange.clone()).collect();
        let (ok, reason, message) = if !v.all_switched() {
            (
                false,
                "NotSwitched",
                "MX still points at the old server".to_owned(),
            )
        } else if !lagging.is_empty() {
            (
                false,
                "Propagating",
                format!("waiting for nameservers {}", super::step::list(&lagging)),
            )
        } else {
            let since = m
                .mx_switched_at
                .map(|t| format!(" since {}", instant(t)))
                .unwrap_or_default();
            (
                true,
                "Switched",
                format!("MX points at {}{since}", super::step::list(&targets)),
            )
        };
        c.set_bool(MX_SWITCHED, ok, reason, message);
    }

    if v.has_cutover() {
        let (ok, reason, message) = if v.delta_synced() {
            let at = m.delta_synced_at.map(instant).unwrap_or_default();
            (true, "DeltaSynced", format!("delta sync done at {at}"))
        } else if let Some(due) = v.delta_sync_due() {
            (
                false,
                "Pending",
                format!("delta sync due at {}", instant(due)),
            )
        } else {
            (
                false,
                "Pending",
                "delta sync runs after the cutover".to_owned(),
            )
        };
        c.set_bool(DELTA_SYNCED, ok, reason, message);
    }

    match m.completed_at {
        Some(at) => c.set_bool(
            COMPLETED,
            true,
            "Completed",
            format!("complete since {}", instant(at)),
        ),
        None => c.set_bool(
            COMPLETED,
            false,
            "InProgress",
            "the migration is not complete yet".to_owned(),
        ),
    }
}

fn phase(v: &View<'_>, plan: &Plan, focus: Option<&PlannedStep>, stalled: bool) -> Phase {
    if v.completed() && plan.is_empty() {
        return Phase::Completed;
    }
    if stalled {
        return Phase::Stalled;
    }
    let Some(focus) = focus else {
        return Phase::Completed;
    };
    let nothing_done = v.milestones == Default::default()
        && !v
            .mailboxes
            .iter()
            .any(|a| v.state(a).is_some_and(|m| m.is_synced()));
    if nothing_done && !focus.is_actionable() {
        return Phase::Pending;
    }
    let cutover_gated = focus.gates.iter().any(|g| match g {
        Gate::Time { reason, .. } => matches!(
            reason,
            super::gate::TimeReason::OldTtl { .. } | super::gate::TimeReason::Window { .. }
        ),
        Gate::Fact { waiting } => *waiting == Waiting::NotApproved,
    });
    match &focus.step {
        Step::Dns(DnsChange::LowerTtl { .. })
        | Step::Dns(DnsChange::SpfAuthorize { .. })
        | Step::Forwarding(ForwardingChange::On { .. })
        | Step::Accounts(_) => Phase::Preparing,
        Step::Relay(RelayChange::FallbackRelay { .. }) if !v.cutover_done() => Phase::Preparing,
        Step::Relay(RelayChange::FallbackRelay { .. })
        | Step::Mail(MailStep::InitialSync { .. })
        | Step::Mail(MailStep::Resync { .. })
        | Step::Sieve(_)
        | Step::Dav(_) => Phase::Syncing,
        Step::Mail(MailStep::Verify { .. }) => Phase::Verifying,
        Step::Mail(MailStep::FinalSync { .. })
        | Step::Relay(RelayChange::GatewayOn { .. })
        | Step::Probe(ProbeStep { .. })
        | Step::Dns(DnsChange::SwitchMx { .. })
            if cutover_gated =>
        {
            Phase::WaitingForCutover
        }
        Step::Mail(MailStep::FinalSync { .. })
        | Step::Relay(RelayChange::GatewayOn { .. })
        | Step::Probe(ProbeStep { .. })
        | Step::Dns(DnsChange::SwitchMx { .. }) => Phase::CuttingOver,
        Step::Dns(DnsChange::PublishSrv { .. })
        | Step::Mail(MailStep::DeltaSync { .. })
        | Step::Forwarding(ForwardingChange::Off { .. })
        | Step::Relay(RelayChange::FallbackOff { .. })
        | Step::Dns(DnsChange::SpfRevoke { .. })
        | Step::Dns(DnsChange::RestoreTtl { .. })
        | Step::Own(OwnStep::MarkComplete) => Phase::Finalizing,
    }
}
