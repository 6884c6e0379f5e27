//! The planner's timeline for each manifest in `examples/`, and table tests for its gates,
//! policies, status and output.

mod plan_support;

use chrono::TimeDelta;
use mailshift::plan::{
    Account, Adapter, Answer, Execution, Failure, Gate, Login, MailboxList, Milestones,
    PLAN_FORMAT_VERSION, PlanDocument, Progress, RelayState, Step, SwitchState, SyncState,
    TimeReason, Verification, Waiting, World, derive_status, plan,
};
use mailshift::plan::{MailStep, RelayChange};
use mailshift::spec::{
    ConditionStatus, MailMigrationSpec, MailMigrationStatus, Phase, Policy, Window,
};
use plan_support::*;

const NOW: &str = "2026-11-18T09:30:00Z"; // a Wednesday

fn condition<'s>(
    s: &'s MailMigrationStatus,
    type_: &str,
) -> Option<&'s mailshift::spec::Condition> {
    s.conditions.iter().find(|c| c.type_ == type_)
}

fn is(s: &MailMigrationStatus, type_: &str, status: ConditionStatus, reason: &str) -> bool {
    condition(s, type_).is_some_and(|c| c.status == status && c.reason == reason)
}

fn step_kinds(p: &mailshift::plan::Plan) -> Vec<&'static str> {
    p.steps.iter().map(|s| kind(&s.step)).collect()
}

fn approved(mut spec: MailMigrationSpec) -> MailMigrationSpec {
    spec.cutover.get_or_insert_default().approved = true;
    spec
}

// ---- whole-domain-gateway.yaml ------------------------------------------------------

#[test]
fn whole_domain_fresh_plan_shows_the_whole_road() {
    let spec = example("whole-domain-gateway.yaml");
    let world = fresh_world(&spec, &[], Adapter::ALL);
    let p = plan(&spec, &world, t(NOW));
    assert_eq!(
        step_kinds(&p),
        [
            "lowerTtl",
            "spfAuthorize",
            "initialSync",
            "verify",
            "initialSync",
            "verify",
            // The gateway first: from the final sync on, nothing lands in the old mailboxes.
            "gatewayOn",
            "finalSync",
            "probe",
            "switchMx",
            "deltaSync",
            "spfRevoke",
            "restoreTtl",
            "markComplete",
        ]
    );
    assert_eq!(p.next().map(|s| &s.step), Some(&p.steps[0].step));
    let switch = p
        .steps
        .iter()
        .find(|s| kind(&s.step) == "switchMx")
        .unwrap();
    assert!(switch.gates.contains(&Gate::fact(Waiting::NotApproved)));
    assert!(switch.gates.contains(&Gate::fact(Waiting::TtlNotLowered {
        names: vec!["example.com".into()]
    })));
    // Saturday 01:00 in Berlin is Friday 24:00 UTC.
    assert!(switch.gates.iter().any(|g| matches!(g,
        Gate::Time { at, reason: TimeReason::Window { .. } } if *at == t("2026-11-21T00:00:00Z"))));
    let text = p.to_string();
    assert!(text.contains("14 steps left at 2026-11-18T09:30:00Z (policy sync); next: step 1."));
    assert!(text.contains("switch MX of example.com to mail.new.example.net."));
    assert!(text.contains("old IMAP mail.old.example.net:993 (read-only)"));
    assert!(text.contains("waits until 2026-11-21T00:00:00Z: the cutover window (Sat, Sun 01:00–05:00 Europe/Berlin) opens"));
}

#[test]
fn whole_domain_waits_for_approval_then_runs_to_completion() {
    let spec = example("whole-domain-gateway.yaml");
    let world = fresh_world(&spec, &[], Adapter::ALL);
    let first = simulate(&spec, world, t(NOW), 100, false);
    // Everything that needs no approval is done; then it waits for a person.
    assert_eq!(
        kinds(&first.steps),
        [
            "lowerTtl",
            "spfAuthorize",
            "initialSync",
            "verify",
            "initialSync",
            "verify"
        ]
    );
    let Ending::Blocked(reasons) = &first.ending else {
        panic!("{:?}", first.ending)
    };
    assert_eq!(reasons.len(), 1);
    assert!(reasons[0].contains("not approved"), "{reasons:?}");
    let s = &first.status;
    assert!(is(s, "Ready", ConditionStatus::False, "AwaitingApproval"));
    assert!(condition(s, "Stalled").is_none() && condition(s, "Reconciling").is_none());
    assert_eq!(s.phase, Some(Phase::WaitingForCutover));
    assert!(is(s, "Verified", ConditionStatus::True, "AllVerified"));
    assert!(is(s, "TTLLowered", ConditionStatus::True, "Lowered"));

    // The approval is committed; the loop goes on from the same world.
    let spec = approved(spec);
    let second = simulate(&spec, first.world, first.now, 100, false);
    assert!(
        matches!(second.ending, Ending::Converged),
        "{:?}",
        second.ending
    );
    assert_eq!(
        kinds(&second.steps),
        [
            "gatewayOn",
            "finalSync",
            "probe",
            "switchMx",
            "deltaSync",
            "spfRevoke",
            "restoreTtl",
            "markComplete"
        ]
    );
    let at = |k: &str| second.steps.iter().find(|(_, s)| kind(s) == k).unwrap().0;
    let switched = at("switchMx");
    // Inside the first window after approval: Saturday 01:00–05:00 Berlin.
    assert!(switched >= t("2026-11-21T00:00:00Z") && switched < t("2026-11-21T04:00:00Z"));
    assert!(at("deltaSync") >= switched + TimeDelta::hours(48));
    assert!(at("restoreTtl") >= switched + TimeDelta::hours(168));
    let s = &second.status;
    assert_eq!(s.phase, Some(Phase::Completed));
    assert!(is(s, "Ready", ConditionStatus::True, "Completed"));
    // What is left on purpose is said, and whose call removing it is.
    let ready = condition(s, "Ready").unwrap();
    assert!(
        ready.message.contains("left in place: the source mailboxes (never modified) and the old server's gateway relay to")
            && ready.message.ends_with("removing them is the admin's call"),
        "{}",
        ready.message
    );
    assert!(is(s, "MXSwitched", ConditionStatus::True, "Switched"));
    assert!(is(s, "Gateway", ConditionStatus::True, "ProbePassed"));
    assert!(is(s, "DeltaSynced", ConditionStatus::True, "DeltaSynced"));
    assert!(is(s, "TTLLowered", ConditionStatus::False, "Restored"));
    assert_eq!(s.mx_switched_at, Some(switched));
    assert!(s.completed_at.is_some() && s.gateway_on_at.is_some());
    assert!(plan(&spec, &second.world, second.now).is_empty());
}

#[test]
fn whole_domain_in_a_build_with_only_imap() {
    let spec = approved(example("whole-domain-gateway.yaml"));
    let world = fresh_world(&spec, &[], [Adapter::Imap]);
    let p = plan(&spec, &world, t(NOW));
    // Steps needing a missing adapter are planned and marked, never skipped.
    assert_eq!(
        p.steps[0].execution,
        Execution::NotAvailableYet {
            adapter: Adapter::Dns
        }
    );
    assert_eq!(kind(&p.next().unwrap().step), "initialSync");
    assert!(
        p.to_string()
            .contains("not available yet: this build has no DNS (RFC 2136) adapter")
    );
    let run = simulate(&spec, world, t(NOW), 100, false);
    assert_eq!(
        kinds(&run.steps),
        ["initialSync", "verify", "initialSync", "verify"]
    );
    let Ending::Blocked(reasons) = &run.ending else {
        panic!("{:?}", run.ending)
    };
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("no DNS (RFC 2136) adapter")),
        "{reasons:?}"
    );
    assert!(is(
        &run.status,
        "Stalled",
        ConditionStatus::True,
        "AdapterNotAvailable"
    ));
    assert_eq!(run.status.phase, Some(Phase::Stalled));
}

// ---- mx-first-fallback.yaml ---------------------------------------------------------

#[test]
fn mx_first_switches_before_the_copy_under_the_fallback() {
    let spec = example("mx-first-fallback.yaml");
    let listed = csv_addresses("shop-mailboxes.csv");
    let world = fresh_world(&spec, &listed, Adapter::ALL);
    let p = plan(&spec, &world, t(NOW));
    assert_eq!(
        step_kinds(&p),
        [
            "lowerTtl",
            "fallbackRelay",
            "switchMx",
            "initialSync",
            "verify",
            "initialSync",
            "verify",
            "deltaSync",
            "fallbackOff",
            "restoreTtl",
            "markComplete"
        ]
    );
    // Copying takes hours: MX moves as soon as the old TTL has passed, not after.
    let slow = |s: &Step| match s {
        Step::Mail(MailStep::InitialSync { .. }) => TimeDelta::hours(3),
        _ => TimeDelta::minutes(1),
    };
    let run = simulate_with(&spec, world, t(NOW), 100, false, slow);
    assert!(matches!(run.ending, Ending::Converged), "{:?}", run.ending);
    assert_eq!(
        kinds(&run.steps),
        [
            "lowerTtl",
            "fallbackRelay",
            "initialSync",
            "switchMx",
            "verify",
            "fallbackRelay",
            "initialSync",
            "verify",
            "fallbackRelay",
            "fallbackOff",
            "deltaSync",
            "restoreTtl",
            "markComplete"
        ]
    );
    let steps = &run.steps;
    let switched = steps
        .iter()
        .position(|(_, s)| kind(s) == "switchMx")
        .unwrap();
    let lowered = steps[0].0;
    assert!(
        steps[switched].0 >= lowered + TimeDelta::hours(1),
        "old TTL of 3600s"
    );
    // Each address leaves the fallback as soon as it is verified.
    let lists: Vec<Vec<String>> = steps
        .iter()
        .filter_map(|(_, s)| match s {
            Step::Relay(RelayChange::FallbackRelay { addresses, .. }) => Some(addresses.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        lists,
        [
            listed.clone(),
            vec!["support@shop.example.org".to_owned()],
            vec![]
        ]
    );
    // The delta sync runs only after the last address left the fallback.
    let delta = steps
        .iter()
        .position(|(_, s)| kind(s) == "deltaSync")
        .unwrap();
    let fallback_off = steps
        .iter()
        .position(|(_, s)| kind(s) == "fallbackOff")
        .unwrap();
    assert!(delta > fallback_off);
    assert!(steps[delta].0 >= steps[switched].0 + TimeDelta::hours(24));
}

/// `JÖRG@…` in the mailbox list: the fallback the relay is given and the one it reads back
/// are the planner's own set, so the migration converges (the planner and the relay once
/// lowered case differently, Unicode against ASCII).
#[test]
fn an_address_with_non_ascii_capitals_converges_through_the_fallback() {
    let spec = example("mx-first-fallback.yaml");
    let mut listed = csv_addresses("shop-mailboxes.csv");
    listed[0] = "JÖRG.ÅSTRÖM@SHOP.EXAMPLE.ORG".into();
    let world = fresh_world(&spec, &listed, Adapter::ALL);
    let run = simulate_with(&spec, world, t(NOW), 100, false, |_| TimeDelta::minutes(1));
    assert!(matches!(run.ending, Ending::Converged), "{:?}", run.ending);
    let relayed = run
        .steps
        .iter()
        .filter(|(_, s)| matches!(s, Step::Relay(RelayChange::FallbackRelay { .. })))
        .count();
    assert!(
        relayed <= 3,
        "the fallback is rewritten {relayed} times: {:?}",
        kinds(&run.steps)
    );
}

#[test]
fn mx_first_does_not_switch_while_an_unverified_address_is_not_covered() {
    let spec = example("mx-first-fallback.yaml");
    let listed = csv_addresses("shop-mailboxes.csv");
    let mut world = fresh_world(&spec, &listed, Adapter::ALL);
    let now = t(NOW);
    // TTL lowered long ago; the fallback covers only one of the two addresses.
    lower_ttl(&mut world, &spec, now - TimeDelta::days(1));
    world.fallback = RelayState::On {
        relay_to: spec.fallback.as_ref().unwrap().relay_to.clone(),
        entries: ["orders@shop.example.org".to_owned()].into(),
    };
    let p = plan(&spec, &world, now);
    let switch = p
        .steps
        .iter()
        .find(|s| kind(&s.step) == "switchMx")
        .unwrap();
    assert_eq!(
        switch.gates,
        [Gate::fact(Waiting::FallbackNotCovering {
            addresses: vec!["support@shop.example.org".into()]
        })]
    );
    assert_eq!(kind(&p.next().unwrap().step), "fallbackRelay");
}

#[test]
fn gateway_waits_until_the_fallback_relays_nothing() {
    // MX first with a gateway too: old → new and new → old for one address would loop.
    let mut spec = example("mx-first-fallback.yaml");
    spec.gateway = example("whole-domain-gateway.yaml").gateway;
    let listed = csv_addresses("shop-mailboxes.csv");
    let world = fresh_world(&spec, &listed, Adapter::ALL);
    let p = plan(&spec, &world, t(NOW));
    let gw = p
        .steps
        .iter()
        .find(|s| kind(&s.step) == "gatewayOn")
        .unwrap();
    assert!(gw.gates.iter().any(|g| matches!(
        g,
        Gate::Fact {
            waiting: Waiting::FallbackStillRelaying { .. }
        }
    )));
    let run = simulate(&spec, world, t(NOW), 120, false);
    assert!(matches!(run.ending, Ending::Converged), "{:?}", run.ending);
    let order = kinds(&run.steps);
    let pos = |k: &str| order.iter().rposition(|x| *x == k).unwrap();
    assert!(pos("gatewayOn") > pos("fallbackRelay"));
}

/// `spec.suspend`: the same road, every step shown as suspended and none carried out;
/// status says so; lifting it resumes where the migration stood.
#[test]
fn a_suspended_migration_plans_but_carries_out_nothing_until_lifted() {
    let mut spec = approved(example("whole-domain-gateway.yaml"));
    let listed = csv_addresses("shop-mailboxes.csv");
    let world = fresh_world(&spec, &listed, Adapter::ALL);
    spec.suspend = true;
    let p = plan(&spec, &world, t(NOW));
    assert!(!p.steps.is_empty());
    assert!(
        p.steps.iter().all(|s| s.execution == Execution::Suspended),
        "{p}"
    );
    assert_eq!(p.progress(), Progress::Suspended);
    assert!(p.next().is_none());
    assert!(p.to_string().contains("suspended (spec.suspend)"), "{p}");
    let status = derive_status(
        &spec,
        &world,
        &p,
        &MailMigrationStatus::default(),
        1,
        t(NOW),
    );
    assert!(
        is(&status, "Ready", ConditionStatus::False, "Suspended"),
        "{status:#?}"
    );
    assert!(
        condition(&status, "Reconciling").is_none(),
        "nothing is reconciling while suspended: {status:#?}"
    );
    let run = simulate(&spec, world.clone(), t(NOW), 10, false);
    assert!(matches!(run.ending, Ending::Suspended), "{:?}", run.ending);
    assert!(run.steps.is_empty(), "{:?}", run.steps);

    // Lifted: the same road, to the end.
    spec.suspend = false;
    let run = simulate(&spec, world, t(NOW), 200, false);
    assert!(matches!(run.ending, Ending::Converged), "{:?}", run.ending);
}

// ---- imap-import-localized.yaml -----------------------------------------------------

#[test]
fn mailbox_only_import_is_copy_verify_done() {
    let spec = example("imap-import-localized.yaml");
    let world = fresh_world(&spec, &[], [Adapter::Imap]);
    let p = plan(&spec, &world, t(NOW));
    assert_eq!(step_kinds(&p), ["initialSync", "verify", "markComplete"]);
    // No DNS: no TTL steps and no TTL gate anywhere.
    assert!(p.steps.iter().all(|s| s.gates.iter().all(|g| !matches!(
        g,
        Gate::Time {
            reason: TimeReason::OldTtl { .. },
            ..
        } | Gate::Fact {
            waiting: Waiting::TtlNotLowered { .. }
        }
    ))));
    let run = simulate(&spec, world, t(NOW), 20, false);
    assert!(matches!(run.ending, Ending::Converged));
    assert_eq!(kinds(&run.steps), ["initialSync", "verify", "markComplete"]);
    let types: Vec<&str> = run
        .status
        .conditions
        .iter()
        .map(|c| c.type_.as_str())
        .collect();
    assert_eq!(types, ["Ready", "Synced", "Verified", "Completed"]);
}

#[test]
fn a_failed_verification_copies_again_then_verifies() {
    let spec = example("imap-import-localized.yaml");
    let mut world = fresh_world(&spec, &[], [Adapter::Imap]);
    let now = t(NOW);
    let m = world.mailbox_mut("minh@example.vn").unwrap();
    m.sync = SyncState::Synced {
        at: now - TimeDelta::hours(2),
        messages: 100,
        bytes: 1 << 20,
    };
    m.verification = Verification::Differs {
        at: now - TimeDelta::hours(1),
        differences: 3,
    };
    let p = plan(&spec, &world, now);
    assert_eq!(step_kinds(&p), ["resync", "verify", "markComplete"]);
    assert_eq!(
        p.steps[0].step.to_string(),
        "copy again what is missing of minh@example.vn (3 differences found)"
    );
    let status = derive_status(&spec, &world, &p, &Default::default(), 1, now);
    assert!(is(
        &status,
        "Verified",
        ConditionStatus::False,
        "Differences"
    ));
}

/// A mailbox receiving mail faster than it can be re-synced and verified is equal but for
/// what arrived since its last sync. Before the cutover that holds nothing back (the final
/// sync, after the gateway, copies it); where no sync of a cutover is ahead (a
/// mailbox-only import, or after the delta sync) it is copied again and verified.
#[test]
fn mail_arrived_since_the_last_sync_waits_for_the_final_sync_only_where_one_is_ahead() {
    let now = t(NOW);
    let busy = |world: &mut World| {
        for m in world.mailboxes.values_mut() {
            m.sync = SyncState::Synced {
                at: now - TimeDelta::hours(2),
                messages: 100,
                bytes: 1 << 20,
            };
            m.verification = Verification::Equal {
                at: now - TimeDelta::hours(1),
                messages: 100,
                arrived: 7,
            };
        }
    };

    let spec = approved(example("whole-domain-gateway.yaml"));
    let mut world = fresh_world(&spec, &[], Adapter::ALL);
    lower_ttl(&mut world, &spec, now - TimeDelta::days(3));
    busy(&mut world);
    let p = plan(&spec, &world, now);
    let kinds = step_kinds(&p);
    assert!(
        !kinds.contains(&"resync") && !kinds.contains(&"verify"),
        "{kinds:?}"
    );
    assert!(
        p.steps.iter().all(|s| s.gates.iter().all(|g| !matches!(
            g,
            Gate::Fact {
                waiting: Waiting::MailboxesNotVerified { .. }
            }
        ))),
        "{p}"
    );
    assert!(kinds.starts_with(&["gatewayOn", "finalSync"]), "{kinds:?}");
    let status = derive_status(&spec, &world, &p, &Default::default(), 1, now);
    assert!(is(
        &status,
        "Verified",
        ConditionStatus::True,
        "AllVerified"
    ));
    // Once the delta sync has run, nothing else would copy it.
    let run = simulate(&spec, world.clone(), now, 100, false);
    assert!(matches!(run.ending, Ending::Converged), "{:?}", run.ending);
    let mut after = run.world.clone();
    after.milestones.completed_at = None;
    busy(&mut after);
    let p = plan(&spec, &after, run.now);
    let kinds = step_kinds(&p);
    assert!(
        kinds.contains(&"resync") && kinds.contains(&"verify"),
        "{kinds:?}"
    );

    let spec = example("imap-import-localized.yaml");
    let mut world = fresh_world(&spec, &[], [Adapter::Imap]);
    busy(&mut world);
    let p = plan(&spec, &world, now);
    assert_eq!(step_kinds(&p), ["resync", "verify", "markComplete"]);
    assert_eq!(
        p.steps[0].step.to_string(),
        "copy again what is missing of minh@example.vn (7 differences found)"
    );
}

// ---- gates --------------------------------------------------------------------------

/// The TTL was lowered at `at` (recorded, from 86400s) and SPF authorizes both servers, as
/// every nameserver shows.
fn lower_ttl(world: &mut World, spec: &MailMigrationSpec, at: chrono::DateTime<chrono::Utc>) {
    let dns = spec.dns.as_ref().unwrap();
    for n in world.dns.as_mut().unwrap().names.values_mut() {
        if let Answer::Records(r) = &mut n.primary {
            r.ttl = dns.cutover_ttl;
            r.spf = dns
                .spf
                .as_ref()
                .map(|s| format!("v=spf1 {} {} -all", s.old, s.new));
        }
    }
    propagate(world);
    world.milestones.ttl_lowered_at = Some(at);
    world.milestones.old_ttl = Some(86400);
}

fn verified(world: &mut World, at: chrono::DateTime<chrono::Utc>) {
    for m in world.mailboxes.values_mut() {
        m.sync = SyncState::Synced {
            at,
            messages: 1,
            bytes: 1,
        };
        m.verification = Verification::Equal {
            at,
            messages: 1,
            arrived: 0,
        };
    }
}

#[test]
fn the_switch_waits_for_the_old_ttl_then_the_next_window() {
    let spec = approved(example("whole-domain-gateway.yaml"));
    let mut world = fresh_world(&spec, &[], Adapter::ALL);
    let now = t(NOW);
    // Lowered Friday 12:00 UTC from a day: expires Saturday 12:00 UTC, after Saturday's
    // window (01:00–05:00 Berlin) closed: the switch waits for Sunday's.
    lower_ttl(&mut world, &spec, t("2026-11-20T12:00:00Z"));
    verified(&mut world, now);
    let at = t("2026-11-21T02:00:00Z");
    let p = plan(&spec, &world, at);
    let gateway = p
        .steps
        .iter()
        .find(|s| kind(&s.step) == "gatewayOn")
        .unwrap();
    assert_eq!(
        gateway.gates,
        [
            Gate::Time {
                at: t("2026-11-21T12:00:00Z"),
                reason: TimeReason::OldTtl {
                    lowered_at: t("2026-11-20T12:00:00Z"),
                    old_ttl: 86400,
                    found: false,
                }
            },
            Gate::Time {
                at: t("2026-11-22T00:00:00Z"),
                reason: TimeReason::Window {
                    window: "Sat, Sun 01:00–05:00 Europe/Berlin".into()
                }
            }
        ]
    );
    assert_eq!(
        p.progress(),
        Progress::WaitUntil {
            at: t("2026-11-22T00:00:00Z")
        }
    );
    let status = derive_status(&spec, &world, &p, &Default::default(), 3, at);
    assert_eq!(status.waiting_until, Some(t("2026-11-22T00:00:00Z")));
    assert_eq!(status.phase, Some(Phase::WaitingForCutover));
    assert!(is(&status, "Reconciling", ConditionStatus::True, "Waiting"));
    assert!(
        status
            .next_step
            .unwrap()
            .starts_with("relay mail for example.com from the old server")
    );
    // At the opening, the gateway goes on, and the final sync follows it.
    let p = plan(&spec, &world, t("2026-11-22T00:00:00Z"));
    assert_eq!(kind(&p.next().unwrap().step), "gatewayOn");
    let final_sync = p
        .steps
        .iter()
        .find(|s| kind(&s.step) == "finalSync")
        .unwrap();
    assert_eq!(final_sync.gates, [Gate::fact(Waiting::GatewayNotOn)]);
}

#[test]
fn a_window_across_midnight_opens_on_its_day() {
    let mut spec = approved(example("whole-domain-gateway.yaml"));
    spec.cutover.as_mut().unwrap().window = Some(Window {
        days: vec![mailshift::spec::Weekday::Fri],
        start: "22:00".into(),
        end: "02:00".into(),
        time_zone: "UTC".into(),
    });
    let mut world = fresh_world(&spec, &[], Adapter::ALL);
    lower_ttl(&mut world, &spec, t("2026-11-01T00:00:00Z"));
    verified(&mut world, t(NOW));
    // Saturday 01:00 is inside Friday's window; Saturday 03:00 waits for next Friday.
    let inside = plan(&spec, &world, t("2026-11-21T01:00:00Z"));
    assert_eq!(kind(&inside.next().unwrap().step), "gatewayOn");
    let after = plan(&spec, &world, t("2026-11-21T03:00:00Z"));
    assert_eq!(after.waiting_until(), Some(t("2026-11-27T22:00:00Z")));
}

#[test]
fn a_lowering_nobody_recorded_counts_from_now_with_the_usual_ttl() {
    let spec = approved(example("mx-first-fallback.yaml"));
    let listed = csv_addresses("shop-mailboxes.csv");
    let mut world = fresh_world(&spec, &listed, Adapter::ALL);
    lower_ttl(&mut world, &spec, t(NOW));
    world.milestones = Milestones::default();
    let now = t(NOW);
    let p = plan(&spec, &world, now);
    let switch = p
        .steps
        .iter()
        .find(|s| kind(&s.step) == "switchMx")
        .unwrap();
    let gate = Gate::Time {
        at: now + TimeDelta::seconds(3600),
        reason: TimeReason::OldTtl {
            lowered_at: now,
            old_ttl: 3600,
            found: true,
        },
    };
    assert!(switch.gates.contains(&gate));
    // What is known is said: found low, the old TTL assumed, and how to say better.
    let said = gate.to_string();
    assert!(
        said.contains("already low when first seen") && said.contains("dns.alreadyLowered"),
        "{said}"
    );
    let status = derive_status(&spec, &world, &p, &Default::default(), 1, now);
    assert_eq!(status.ttl_lowered_at, Some(now));
    assert_eq!(status.old_ttl, Some(3600));
    assert!(status.ttl_found_lowered);
    assert_eq!(
        Milestones::reconciled(&spec, &world, now),
        Milestones::from_status(&status)
    );

    // The person who lowered it says when and from what: the switch waits only that long.
    let mut told = spec.clone();
    told.dns.as_mut().unwrap().already_lowered = Some(mailshift::spec::AlreadyLowered {
        at: Some(now - TimeDelta::hours(2)),
        old_ttl: Some(600),
    });
    let p = plan(&told, &world, now);
    let switch = p
        .steps
        .iter()
        .find(|s| kind(&s.step) == "switchMx")
        .unwrap();
    assert!(
        switch.gates.iter().all(|g| !matches!(
            g,
            Gate::Time {
                reason: TimeReason::OldTtl { .. },
                ..
            }
        )),
        "600 s passed two hours ago: {:?}",
        switch.gates
    );
    let status = derive_status(&told, &world, &p, &Default::default(), 1, now);
    assert_eq!(status.ttl_lowered_at, Some(now - TimeDelta::hours(2)));
    assert_eq!(status.old_ttl, Some(600));
}

#[test]
fn delta_sync_and_keep_source_count_from_the_switch() {
    let spec = approved(example("whole-domain-gateway.yaml"));
    let mut world = converged_world(&spec, &[], t(NOW));
    let switched = t("2026-11-21T00:03:00Z");
    world.milestones.mx_switched_at = Some(switched);
    world.milestones.delta_synced_at = None;
    world.milestones.completed_at = None;
    for n in world.dns.as_mut().unwrap().names.values_mut() {
        if let Answer::Records(r) = &mut n.primary {
            r.ttl = 300;
            r.spf = Some("v=spf1 ip4:192.0.2.10 ip4:198.51.100.20 -all".into());
        }
    }
    propagate(&mut world);
    let p = plan(&spec, &world, t("2026-11-22T00:00:00Z"));
    let delta = p
        .steps
        .iter()
        .find(|s| kind(&s.step) == "deltaSync")
        .unwrap();
    assert_eq!(
        delta.gates,
        [Gate::Time {
            at: switched + TimeDelta::hours(48),
            reason: TimeReason::DeltaSyncAfter {
                cutover_at: switched,
                after: "48h".into()
            }
        }]
    );
    let restore = p
        .steps
        .iter()
        .find(|s| kind(&s.step) == "restoreTtl")
        .unwrap();
    assert!(restore.gates.contains(&Gate::Time {
        at: switched + TimeDelta::hours(168),
        reason: TimeReason::KeepSource {
            cutover_at: switched,
            keep: "168h".into()
        }
    }));
}

#[test]
fn propagation_is_waited_for_and_rechecked() {
    let spec = approved(example("whole-domain-gateway.yaml"));
    let mut world = converged_world(&spec, &[], t(NOW));
    world.milestones.delta_synced_at = None;
    world.milestones.completed_at = None;
    world.milestones.mx_switched_at = Some(t("2026-11-10T00:00:00Z"));
    // The second nameserver still answers the old MX.
    let n = world
        .dns
        .as_mut()
        .unwrap()
        .names
        .get_mut(&mailshift::address::Domain::of("example.com"))
        .unwrap();
    if let Answer::Records(r) = &mut n.primary {
        r.ttl = 300;
        r.spf = Some("v=spf1 ip4:192.0.2.10 ip4:198.51.100.20 -all".into());
    }
    let mut stale = n.primary.records().unwrap().clone();
    stale.mx = old_mx();
    propagate(&mut world);
    let n = world
        .dns
        .as_mut()
        .unwrap()
        .names
        .get_mut(&mailshift::address::Domain::of("example.com"))
        .unwrap();
    n.nameservers[1].answer = Answer::Records(stale);
    let lagging = n.nameservers[1].server.clone();
    let p = plan(&spec, &world, t(NOW));
    let delta = p
        .steps
        .iter()
        .find(|s| kind(&s.step) == "deltaSync")
        .unwrap();
    assert_eq!(
        delta.gates,
        [Gate::fact(Waiting::Propagation {
            name: "example.com".into(),
            nameservers: vec![lagging.clone()]
        })]
    );
    assert_eq!(p.progress(), Progress::Recheck);
    assert!(delta.gates[0].to_string().contains(&format!(
        "waiting for DNS propagation of example.com on nameservers {lagging}"
    )));
    let status = derive_status(&spec, &world, &p, &Default::default(), 1, t(NOW));
    assert!(is(
        &status,
        "MXSwitched",
        ConditionStatus::False,
        "Propagating"
    ));
}

#[test]
fn preflight_holds_everything_and_names_the_mailbox() {
    let spec = approved(example("whole-domain-gateway.yaml"));
    let mut world = fresh_world(&spec, &[], Adapter::ALL);
    world.mailbox_mut("bob@example.com").unwrap().source_login = Login::Failed {
        reason: "AUTHENTICATIONFAILED".into(),
    };
    world
        .mailbox_mut("alice@example.com")
        .unwrap()
        .destination_account = Account::Missing;
    let p = plan(&spec, &world, t(NOW));
    assert!(
        p.next().is_none(),
        "nothing is written before the preflight passes"
    );
    let lower = &p.steps[0];
    assert!(lower.gates.contains(&Gate::fact(Waiting::LoginFailed {
        address: "bob@example.com".into(),
        side: mailshift::plan::Side::Source,
        reason: "AUTHENTICATIONFAILED".into()
    })));
    assert!(lower.gates.contains(&Gate::fact(Waiting::AccountMissing {
        address: "alice@example.com".into()
    })));
    let text = p.to_string();
    assert!(
        text.contains(
            "mailbox bob@example.com cannot log in on the old server: AUTHENTICATIONFAILED"
        )
    );
    let status = derive_status(&spec, &world, &p, &Default::default(), 1, t(NOW));
    assert!(is(
        &status,
        "Stalled",
        ConditionStatus::True,
        "AccountMissing"
    ));
    assert_eq!(status.phase, Some(Phase::Stalled));
    assert_eq!(status.mailboxes.as_ref().unwrap().failed, 2);
}

#[test]
fn an_unread_mailbox_list_holds_the_start() {
    let spec = example("mx-first-fallback.yaml");
    let mut world = fresh_world(&spec, &csv_addresses("shop-mailboxes.csv"), Adapter::ALL);
    world.mailboxes_from = None;
    let p = plan(&spec, &world, t(NOW));
    assert!(
        p.steps[0]
            .gates
            .contains(&Gate::fact(Waiting::MailboxListUnread { reason: None }))
    );
    assert_eq!(p.progress(), Progress::Recheck);
    world.mailboxes_from = Some(MailboxList::Failed {
        reason: "shop-mailboxes.csv: permission denied".into(),
    });
    let p = plan(&spec, &world, t(NOW));
    let Progress::Blocked { reasons } = p.progress() else {
        panic!()
    };
    assert!(reasons[0].contains("permission denied"));
}

// ---- policies -----------------------------------------------------------------------

#[test]
fn observe_plans_everything_and_carries_out_nothing() {
    let mut spec = approved(example("whole-domain-gateway.yaml"));
    spec.policy = Policy::Observe;
    let world = fresh_world(&spec, &[], Adapter::ALL);
    let p = plan(&spec, &world, t(NOW));
    assert_eq!(p.steps.len(), 14);
    assert!(
        p.steps
            .iter()
            .all(|s| s.execution == Execution::ObserveOnly)
    );
    assert!(p.next().is_none() && !p.is_empty());
    assert_eq!(p.progress(), Progress::ObserveOnly);
    assert!(
        p.to_string()
            .contains("observe only: none of this will be carried out")
    );
    let run = simulate(&spec, world, t(NOW), 5, false);
    assert!(matches!(run.ending, Ending::ObserveOnly) && run.steps.is_empty());
    assert!(is(
        &run.status,
        "Ready",
        ConditionStatus::False,
        "ObserveOnly"
    ));
    // A world that already matches: nothing to observe either.
    let done = converged_world(&spec, &[], t(NOW));
    assert!(plan(&spec, &done, t(NOW)).is_empty());
}

#[test]
fn upsert_only_leaves_forwarding_and_old_spf_in_place() {
    let mut spec = approved(example("whole-domain-gateway.yaml"));
    spec.policy = Policy::UpsertOnly;
    spec.forwarding = Some(
        serde_json::from_value(serde_json::json!({
            "to": "backup@example.org",
            "managesieve": { "host": "mail.old.example.net", "port": 4190 },
            "destinationManagesieve": { "host": "mail.new.example.net", "port": 4190 }
        }))
        .unwrap(),
    );
    let world = fresh_world(&spec, &[], Adapter::ALL);
    let run = simulate(&spec, world, t(NOW), 100, false);
    assert!(matches!(run.ending, Ending::Converged), "{:?}", run.ending);
    let order = kinds(&run.steps);
    assert!(order.contains(&"forwardingOn") && order.contains(&"restoreTtl"));
    assert!(!order.contains(&"forwardingOff") && !order.contains(&"spfRevoke"));
    let p = plan(&spec, &run.world, run.now);
    assert!(p.is_empty());
    let held: Vec<&str> = p.held().map(|s| kind(&s.step)).collect();
    assert_eq!(
        held,
        [
            "forwardingOff",
            "forwardingOff",
            "forwardingOff",
            "forwardingOff",
            "spfRevoke"
        ]
    );
    assert!(
        p.to_string()
            .contains("Left in place by policy upsert-only")
    );
    let m = run.world.mailbox("alice@example.com").unwrap();
    assert_eq!(m.forwarding.source, SwitchState::On);
}

#[test]
fn upsert_only_still_moves_verified_mailboxes_out_of_the_fallback() {
    let mut spec = example("mx-first-fallback.yaml");
    spec.policy = Policy::UpsertOnly;
    let listed = csv_addresses("shop-mailboxes.csv");
    let world = fresh_world(&spec, &listed, Adapter::ALL);
    let run = simulate(&spec, world, t(NOW), 100, false);
    assert!(matches!(run.ending, Ending::Converged), "{:?}", run.ending);
    // The list shrinks to empty (forward motion); removing its configuration is held.
    assert_eq!(
        run.world.fallback,
        RelayState::On {
            relay_to: "[mx.oldhost.example.net]:25".into(),
            entries: Default::default()
        }
    );
    let p = plan(&spec, &run.world, run.now);
    assert_eq!(
        p.held().map(|s| kind(&s.step)).collect::<Vec<_>>(),
        ["fallbackOff"]
    );
}

// ---- status -------------------------------------------------------------------------

#[test]
fn transition_times_are_kept_while_status_does_not_change() {
    let spec = example("imap-import-localized.yaml");
    let world = fresh_world(&spec, &[], [Adapter::Imap]);
    let t0 = t(NOW);
    let p = plan(&spec, &world, t0);
    let first = derive_status(&spec, &world, &p, &Default::default(), 1, t0);
    assert_eq!(first.observed_generation, Some(1));
    assert!(
        first
            .conditions
            .iter()
            .all(|c| c.last_transition_time == t0)
    );
    assert!(
        first
            .conditions
            .iter()
            .all(|c| c.observed_generation == Some(1))
    );
    assert_eq!(first.phase, Some(Phase::Syncing));
    assert_eq!(
        first.next_step.as_deref(),
        Some("copy minh@example.vn to the new server")
    );

    let mut world2 = world.clone();
    let m = world2.mailbox_mut("minh@example.vn").unwrap();
    m.sync = SyncState::Synced {
        at: t0,
        messages: 1,
        bytes: 1,
    };
    let t1 = t0 + TimeDelta::minutes(5);
    let p2 = plan(&spec, &world2, t1);
    let second = derive_status(&spec, &world2, &p2, &first, 2, t1);
    let time = |s: &MailMigrationStatus, ty: &str| condition(s, ty).unwrap().last_transition_time;
    assert_eq!(time(&second, "Verified"), t0, "still False");
    assert_eq!(time(&second, "Ready"), t0, "still False");
    assert_eq!(time(&second, "Synced"), t1, "became True");
    assert_eq!(second.phase, Some(Phase::Verifying));
    assert_eq!(second.observed_generation, Some(2));
}

#[test]
fn the_executor_reports_failures_as_retrying_then_stalled() {
    let spec = example("imap-import-localized.yaml");
    let mut world = fresh_world(&spec, &[], [Adapter::Imap]);
    let now = t(NOW);
    let mut failure = Failure {
        work: "InitialSync minh@example.vn".into(),
        step: "copy minh@example.vn to the new server".into(),
        count: 2,
        reason: "ConnectionRefused".into(),
        message: "mail.internal.example:993: connection refused".into(),
        stalled: false,
        retry_at: Some(now + TimeDelta::seconds(4)),
    };
    world.failures = vec![failure.clone()];
    let p = plan(&spec, &world, now);
    let s = derive_status(&spec, &world, &p, &Default::default(), 1, now);
    assert!(is(&s, "Reconciling", ConditionStatus::True, "Retrying"));
    assert!(condition(&s, "Stalled").is_none());
    assert_eq!(
        p.progress(),
        Progress::WaitUntil {
            at: now + TimeDelta::seconds(4)
        },
        "the failed copy waits for its backoff:\n{p}"
    );
    failure.stalled = true;
    failure.count = 6;
    world.failures = vec![failure];
    let p = plan(&spec, &world, now);
    let s = derive_status(&spec, &world, &p, &Default::default(), 1, now);
    let stalled = condition(&s, "Stalled").unwrap();
    assert_eq!(
        (stalled.status, stalled.reason.as_str()),
        (ConditionStatus::True, "ConnectionRefused")
    );
    assert!(
        stalled
            .message
            .contains("failed 6 times in a row: mail.internal.example:993: connection refused")
    );
    assert!(condition(&s, "Reconciling").is_none());
    assert_eq!(s.phase, Some(Phase::Stalled));
    assert!(matches!(p.progress(), Progress::Blocked { .. }), "{p}");
}

#[test]
fn a_failing_mailbox_backs_off_alone_while_the_others_go_on() {
    let mut spec = example("imap-import-localized.yaml");
    spec.domains = vec!["example.com".into()];
    let first = spec.mailboxes[0].clone();
    spec.mailboxes = ["a@example.com", "b@example.com", "c@example.com"]
        .iter()
        .map(|a| {
            let mut m = first.clone();
            m.address = (*a).into();
            m
        })
        .collect();
    let mut world = fresh_world(&spec, &[], [Adapter::Imap]);
    let now = t(NOW);
    world.failures = vec![Failure {
        work: "InitialSync b@example.com".into(),
        step: "copy b@example.com to the new server".into(),
        count: 1,
        reason: "StepFailed".into(),
        message: "refused".into(),
        stalled: false,
        retry_at: Some(now + TimeDelta::seconds(2)),
    }];
    let p = plan(&spec, &world, now);
    let batch: Vec<String> = p
        .batch(4, |_| true)
        .iter()
        .map(|s| s.step.to_string())
        .collect();
    assert_eq!(
        batch,
        [
            "copy a@example.com to the new server",
            "copy c@example.com to the new server"
        ],
        "{p}"
    );
    // At most `limit` mailboxes at once, one step each.
    assert_eq!(p.batch(1, |_| true).len(), 1);
    // Once its backoff is over, b is copied too.
    let later = plan(&spec, &world, now + TimeDelta::seconds(2));
    assert_eq!(later.batch(4, |_| true).len(), 3, "{later}");
}

// ---- output -------------------------------------------------------------------------

#[test]
fn json_is_versioned_and_reads_back() {
    let spec = example("whole-domain-gateway.yaml");
    let world = fresh_world(&spec, &[], [Adapter::Imap]);
    let p = plan(&spec, &world, t(NOW));
    let json = serde_json::to_value(p.document()).unwrap();
    assert_eq!(json["version"], PLAN_FORMAT_VERSION);
    assert_eq!(json["version"], 1);
    assert_eq!(json["converged"], false);
    assert_eq!(json["next"], 2);
    assert_eq!(json["steps"][0]["step"]["kind"], "lowerTtl");
    assert_eq!(json["steps"][0]["execution"]["state"], "notAvailableYet");
    assert_eq!(json["steps"][0]["execution"]["adapter"], "dns");
    assert_eq!(json["steps"][2]["touches"][0]["resource"], "sourceImap");
    assert_eq!(json["steps"][2]["touches"][0]["access"], "read");
    let back: PlanDocument = serde_json::from_value(json).unwrap();
    assert_eq!(back, p.document());
}

#[test]
fn long_mailbox_lists_are_summed_up_in_text() {
    let mut spec = example("imap-import-localized.yaml");
    let template = spec.mailboxes[0].clone();
    spec.mailboxes = (0..40)
        .map(|i| {
            let mut m = template.clone();
            m.address = format!("user{i}@example.vn");
            m
        })
        .collect();
    let world = fresh_world(&spec, &[], [Adapter::Imap]);
    let p = plan(&spec, &world, t(NOW));
    assert_eq!(p.steps.len(), 81);
    let text = p.to_string();
    assert!(
        text.contains("… and 72 more per-mailbox steps like these (36 may run now)"),
        "{text}"
    );
    assert!(text.contains("81. mark the migration complete"));
    assert!(text.lines().count() < 60);
}

#[test]
fn a_world_that_matches_each_example_yields_an_empty_plan() {
    for (name, listed) in [
        ("whole-domain-gateway.yaml", vec![]),
        (
            "mx-first-fallback.yaml",
            csv_addresses("shop-mailboxes.csv"),
        ),
        ("imap-import-localized.yaml", vec![]),
    ] {
        let spec = example(name);
        let world = converged_world(&spec, &listed, t(NOW));
        let p = plan(&spec, &world, t(NOW));
        assert!(p.is_empty(), "{name}:\n{p}");
        assert_eq!(p.progress(), Progress::Converged);
        assert!(
            p.to_string()
                .starts_with("Nothing to do at 2026-11-18T09:30:00Z")
        );
    }
}

#[test]
fn work_under_way_elsewhere_is_not_started_twice() {
    let spec = example("whole-domain-gateway.yaml");
    let mut world = fresh_world(&spec, &[], [Adapter::Imap]);
    let since = t(NOW) - TimeDelta::minutes(10);
    world.in_flight.push(mailshift::plan::InFlight {
        step: Step::Mail(MailStep::InitialSync {
            address: "alice@example.com".into(),
        }),
        by: "job/mailshift-sync-example-com-0".into(),
        since,
    });
    let p = plan(&spec, &world, t(NOW));
    let alice = p
        .steps
        .iter()
        .find(|s| {
            s.step
                == Step::Mail(MailStep::InitialSync {
                    address: "alice@example.com".into(),
                })
        })
        .unwrap();
    assert_eq!(
        alice.gates,
        [Gate::fact(Waiting::Running {
            by: "job/mailshift-sync-example-com-0".into(),
            since
        })]
    );
    assert_eq!(
        p.next().unwrap().step,
        Step::Mail(MailStep::InitialSync {
            address: "bob@example.com".into()
        })
    );
    // With bob under way too, the loop looks again soon instead of giving up.
    world.in_flight.push(mailshift::plan::InFlight {
        step: Step::Mail(MailStep::InitialSync {
            address: "bob@example.com".into(),
        }),
        by: "job/mailshift-sync-example-com-1".into(),
        since,
    });
    assert_eq!(plan(&spec, &world, t(NOW)).progress(), Progress::Recheck);
}

#[test]
fn observe_still_tells_which_adapters_are_missing() {
    let mut spec = example("whole-domain-gateway.yaml");
    spec.policy = Policy::Observe;
    let world = fresh_world(&spec, &[], [Adapter::Imap]);
    let p = plan(&spec, &world, t(NOW));
    assert!(!p.steps[0].available && p.steps[2].available);
    assert!(p.to_string().contains(
        "not carried out: policy observe (and this build has no DNS (RFC 2136) adapter)"
    ));
}

#[test]
fn the_final_sync_follows_the_gateway_once_also_without_dns() {
    for with_dns in [true, false] {
        let mut spec = approved(example("whole-domain-gateway.yaml"));
        if !with_dns {
            spec.dns = None;
        }
        let world = fresh_world(&spec, &[], Adapter::ALL);
        let run = simulate(&spec, world, t(NOW), 100, false);
        assert!(
            matches!(run.ending, Ending::Converged),
            "dns {with_dns}: {:?}",
            run.ending
        );
        let k = kinds(&run.steps);
        let at = |x: &str| k.iter().position(|s| *s == x).unwrap();
        assert!(
            at("gatewayOn") < at("finalSync") && at("finalSync") < at("deltaSync"),
            "dns {with_dns}: {k:?}"
        );
        assert_eq!(
            run.steps
                .iter()
                .filter(|(_, s)| matches!(s, Step::Mail(MailStep::FinalSync { .. })))
                .count(),
            1,
            "dns {with_dns}: {k:?}"
        );
        if with_dns {
            assert!(at("finalSync") < at("switchMx"), "{k:?}");
        }
    }
}

// ---- sieve ----------------------------------------------------------------------------

fn with_sieve(mut spec: MailMigrationSpec) -> MailMigrationSpec {
    let endpoint = |host: &str| mailshift::spec::Endpoint {
        host: host.into(),
        port: Some(4190),
        tls: mailshift::spec::TlsMode::Starttls,
        ca_certificate: None,
        max_connections: None,
        timeout: None,
    };
    spec.sieve = Some(mailshift::spec::Sieve {
        managesieve: Some(endpoint("mail.old.example.net")),
        destination_managesieve: endpoint("mail.new.example.net"),
        conflicts: Default::default(),
    });
    spec
}

fn sieve_pending(world: &mut World, spec: &MailMigrationSpec) {
    for m in &spec.mailboxes {
        world.mailbox_mut(&m.address).unwrap().sieve = mailshift::plan::SieveState::Compared {
            scripts: 2,
            pending: 2,
            kept: vec![],
            refused: vec![],
        };
    }
}

#[test]
fn every_mailboxs_sieve_scripts_are_copied_before_the_cutover() {
    let spec = approved(with_sieve(example("whole-domain-gateway.yaml")));
    let mut world = fresh_world(&spec, &[], Adapter::ALL);
    sieve_pending(&mut world, &spec);
    let p = plan(&spec, &world, t(NOW));
    let switch = p
        .steps
        .iter()
        .find(|s| kind(&s.step) == "switchMx")
        .unwrap();
    assert!(
        waits_on(
            switch,
            |w| matches!(w, Waiting::SieveNotCopied { addresses } if addresses.len() == spec.mailboxes.len())
        ),
        "{p}"
    );
    let run = simulate(&spec, world, t(NOW), 200, false);
    assert!(matches!(run.ending, Ending::Converged), "{:?}", run.ending);
    let order: Vec<&str> = run.steps.iter().map(|(_, s)| kind(s)).collect();
    let copies: Vec<usize> = order
        .iter()
        .enumerate()
        .filter(|(_, k)| **k == "copySieve")
        .map(|(i, _)| i)
        .collect();
    assert_eq!(copies.len(), spec.mailboxes.len(), "{order:?}");
    let first_cutover = order
        .iter()
        .position(|k| *k == "gatewayOn" || *k == "finalSync" || *k == "switchMx")
        .unwrap();
    assert!(copies.iter().all(|i| *i < first_cutover), "{order:?}");
}

#[test]
fn scripts_that_cannot_be_compared_hold_the_cutover_with_the_reason() {
    let spec = approved(with_sieve(example("whole-domain-gateway.yaml")));
    let mut world = fresh_world(&spec, &[], Adapter::ALL);
    sieve_pending(&mut world, &spec);
    let first = &spec.mailboxes[0].address;
    world.mailbox_mut(first).unwrap().sieve = mailshift::plan::SieveState::Error {
        reason: "ManageSieve 127.0.0.1:4190: connection refused".into(),
    };
    let run = simulate(&spec, world, t(NOW), 200, false);
    let Ending::Blocked(reasons) = &run.ending else {
        panic!("{:?}", run.ending)
    };
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("Sieve scripts of") && r.contains("connection refused")),
        "{reasons:?}"
    );
    assert!(!kinds(&run.steps).contains(&"switchMx"));
}

/// A new server without the accounts: they are written first, the copies wait for them,
/// and the MX switch waits for the aliases (mail to them would bounce there).
#[test]
fn accounts_are_written_first_and_the_switch_waits_for_the_aliases() {
    let mut spec = approved(example("whole-domain-gateway.yaml"));
    spec.accounts = example("accounts-and-aliases.yaml").accounts;
    let mut world = fresh_world(&spec, &[], Adapter::ALL);
    let addresses: Vec<String> = spec.mailboxes.iter().map(|m| m.address.clone()).collect();
    for a in &addresses {
        let m = world.mailbox_mut(a).unwrap();
        m.destination_login = login_failed("authentication failed");
        m.destination_account = Account::Missing;
    }
    world.directory = mailshift::plan::DirectoryState::Observed {
        accounts: addresses.clone(),
        aliases: vec!["sales@example.com".into()],
        missing_accounts: addresses.clone(),
        missing_aliases: vec!["sales@example.com".into()],
        refused: vec![],
    };
    let p = plan(&spec, &world, t(NOW));
    assert_eq!(kind(&p.steps[0].step), "provisionAccounts");
    assert!(p.steps[0].is_actionable(), "{:?}", p.steps[0]);
    let copy = p
        .steps
        .iter()
        .find(|s| kind(&s.step) == "initialSync")
        .unwrap();
    assert!(
        waits_on(copy, |w| matches!(w, Waiting::AccountMissing { .. })),
        "{copy:?}"
    );
    let switch = p
        .steps
        .iter()
        .find(|s| kind(&s.step) == "switchMx")
        .unwrap();
    assert!(
        waits_on(
            switch,
            |w| matches!(w, Waiting::AliasesMissing { aliases } if aliases == &["sales@example.com".to_owned()])
        ),
        "{switch:?}"
    );
    // Carried out once, then the migration runs to its end.
    let run = simulate(&spec, world, t(NOW), 200, false);
    assert!(matches!(run.ending, Ending::Converged), "{:?}", run.ending);
    assert_eq!(kinds(&run.steps)[0], "provisionAccounts");
    assert_eq!(
        run.steps
            .iter()
            .filter(|(_, s)| kind(s) == "provisionAccounts")
            .count(),
        1
    );
}

/// An account that cannot be carried over (`unknownScheme: stop`) holds the mailbox, named,
/// and under `observe` nothing is written.
#[test]
fn an_account_not_carried_holds_its_mailbox_and_observe_writes_nothing() {
    let mut spec = example("whole-domain-gateway.yaml");
    spec.accounts = example("accounts-and-aliases.yaml").accounts;
    let mut world = fresh_world(&spec, &[], Adapter::ALL);
    world.directory = mailshift::plan::DirectoryState::Observed {
        accounts: vec!["alice@example.com".into()],
        aliases: vec![],
        missing_accounts: vec!["alice@example.com".into(), "bob@example.com".into()],
        missing_aliases: vec![],
        refused: vec![mailshift::plan::AccountRefusal {
            address: "bob@example.com".into(),
            reason: "its password is stored as NTLM".into(),
        }],
    };
    let p = plan(&spec, &world, t(NOW));
    assert!(p.steps.iter().any(|s| waits_on(s, |w| matches!(
        w,
        Waiting::AccountNotCarried { address, reason } if address == "bob@example.com" && reason.contains("NTLM")
    ))));
    spec.policy = Policy::Observe;
    let p = plan(&spec, &world, t(NOW));
    assert_eq!(kind(&p.steps[0].step), "provisionAccounts");
    assert_eq!(p.steps[0].execution, Execution::ObserveOnly);
}
