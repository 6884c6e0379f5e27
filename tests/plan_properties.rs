//! Properties of the planner over generated specs and worlds:
//! - MX is never switched before every mailbox is verified (or, MX first, relayed back by
//!   the fallback), the old TTL has passed, the cutover is approved and its window open;
//! - `observe` never yields a step to carry out; no step ever writes the source;
//!   `upsert-only` never removes; the gateway never loops mail with the fallback;
//! - a world that matches the spec yields an empty plan;
//! - from any starting world, the loop (carry out the next step, observe, wait for the
//!   earliest time gate, re-plan) ends within a bound: converged when nothing needs a person,
//!   otherwise blocked with a reason, never spinning.

mod plan_support;

use chrono::{DateTime, TimeDelta, Utc};
use mailshift::plan::{
    Account, Adapter, Answer, DnsState, Failure, ForwardingSides, Login, MailboxList, MailboxState,
    Milestones, NameState, NameserverAnswer, ProbeState, Records, RelayState, SwitchState,
    SyncState, Verification, World, derive_status, plan,
};
use mailshift::spec::{MailMigrationSpec, MailMigrationStatus, Policy};
use plan_support::{Ending, check_plan, converged_world, old_mx, simulate};
use proptest::prelude::*;
use serde_json::{Value, json};

const BASE: &str = "2026-11-18T09:30:00Z";

fn base() -> DateTime<Utc> {
    BASE.parse().unwrap()
}

/// The choices a generated spec is made of.
#[derive(Clone, Debug)]
struct SpecChoice {
    mailboxes: usize,
    csv: usize,
    policy: Policy,
    dns: Option<(usize, bool, bool, u32)>,
    gateway: bool,
    fallback: bool,
    forwarding: Option<bool>,
    probe: bool,
    approved: bool,
    window: Option<(u8, u32, u32, usize)>,
    finalize: Option<(u64, u64, u32)>,
}

const ZONES: [&str; 4] = ["UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata"];

fn spec_choice() -> impl Strategy<Value = SpecChoice> {
    (
        (1usize..=3, 0usize..=2, 0u8..3),
        proptest::option::weighted(
            0.7,
            (
                1usize..=2,
                any::<bool>(),
                any::<bool>(),
                prop_oneof![Just(60u32), Just(300), Just(600)],
            ),
        ),
        (
            any::<bool>(),
            any::<bool>(),
            proptest::option::of(any::<bool>()),
            any::<bool>(),
        ),
        prop_oneof![3 => Just(true), 1 => Just(false)],
        proptest::option::of((1u8..=127, 0u32..24, 1u32..12, 0usize..ZONES.len())),
        proptest::option::of((0u64..72, 0u64..400, prop_oneof![Just(3600u32), Just(86400)])),
    )
        .prop_map(
            |(
                (mailboxes, csv, policy),
                dns,
                (gateway, fallback, forwarding, probe),
                approved,
                window,
                finalize,
            )| {
                SpecChoice {
                    mailboxes,
                    csv,
                    policy: match policy {
                        0 => Policy::Sync,
                        1 => Policy::UpsertOnly,
                        _ => Policy::Observe,
                    },
                    dns,
                    gateway,
                    fallback,
                    forwarding,
                    probe,
                    approved,
                    window,
                    finalize,
                }
            },
        )
}

fn csv_addresses(c: &SpecChoice) -> Vec<String> {
    (0..c.csv).map(|i| format!("csv{i}@example.com")).collect()
}

fn build_spec(c: &SpecChoice) -> MailMigrationSpec {
    let endpoint = |port: u16| json!({ "host": "127.0.0.1", "port": port, "tls": "none" });
    let mut domains = vec!["example.com"];
    if matches!(c.dns, Some((2, ..))) {
        domains.push("shop.example.com");
    }
    let mailboxes: Vec<Value> = (0..c.mailboxes)
        .map(|i| {
            json!({
                "address": format!("user{i}@example.com"),
                "sourcePassword": { "env": format!("SRC{i}") },
                "destinationPassword": { "env": format!("DST{i}") },
            })
        })
        .collect();
    let mut spec = json!({
        "domains": domains,
        "policy": match c.policy { Policy::Sync => "sync", Policy::UpsertOnly => "upsert-only", Policy::Observe => "observe" },
        "source": { "imap": endpoint(14311) },
        "destination": { "imap": endpoint(14312) },
        "mailboxes": mailboxes,
        "cutover": { "approved": c.approved },
    });
    if c.csv > 0 {
        spec["mailboxesFrom"] = json!({ "file": "mailboxes.csv" });
    }
    let restore = c.finalize.map_or(3600, |f| f.2);
    if let Some((_, spf, srv, cutover_ttl)) = c.dns {
        spec["dns"] = json!({
            "zone": "example.com",
            "provider": { "rfc2136": { "server": "127.0.0.1:15353", "tsig": { "name": "k", "secret": { "env": "TSIG" } } } },
            "mx": [{ "preference": 10, "exchange": "mail.new.example.net." }, { "preference": 20, "exchange": "mx2.new.example.net." }],
            "cutoverTTL": cutover_ttl.min(restore - 1),
            "checkNameservers": ["127.0.0.1:15353", "127.0.0.1:15354"],
        });
        if spf {
            spec["dns"]["spf"] = json!({ "old": "ip4:192.0.2.10", "new": "ip4:198.51.100.20 include:_spf.new.example.net" });
        }
        if srv {
            spec["dns"]["srv"] = json!({ "imaps": "imap.new.example.net", "submission": "smtp.new.example.net:465" });
        }
    }
    let relay = |dir: &str, to: &str| json!({ "postfix": { "configDir": dir }, "relayTo": to });
    if c.gateway {
        spec["gateway"] = relay("/etc/postfix", "[127.0.0.1]:12526");
    }
    if c.fallback {
        spec["fallback"] = relay("/etc/postfix-new", "[127.0.0.1]:12525");
    }
    if let Some(dest) = c.forwarding {
        spec["forwarding"] = json!({ "to": "backup@example.org", "managesieve": endpoint(15311) });
        if dest {
            spec["forwarding"]["destinationManagesieve"] = endpoint(15312);
        }
    }
    if c.probe {
        spec["probe"] = json!({ "smtp": { "host": "127.0.0.1", "port": 12525, "tls": "none" }, "mailbox": "user0@example.com" });
    }
    if let Some((days, start, len, tz)) = c.window {
        let names = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
        let days: Vec<&str> = (0..7)
            .filter(|i| days & (1 << i) != 0)
            .map(|i| names[i])
            .collect();
        spec["cutover"]["window"] = json!({
            "days": days,
            "start": format!("{start:02}:00"),
            "end": format!("{:02}:00", (start + len) % 24),
            "timeZone": ZONES[tz],
        });
    }
    if let Some((delta, keep, restore)) = c.finalize {
        spec["finalize"] = json!({ "deltaSyncAfter": format!("{delta}h"), "keepSourceFor": format!("{keep}h"), "restoreTTL": restore });
    }
    let spec: MailMigrationSpec =
        serde_json::from_value(spec).expect("generated spec deserializes");
    let issues = mailshift::spec::semantic::check(&spec, &mailshift::manifest::Path::root(), false);
    let errors: Vec<_> = issues
        .iter()
        .filter(|i| i.severity == mailshift::manifest::Severity::Error)
        .collect();
    assert!(errors.is_empty(), "generated an invalid spec: {errors:?}");
    spec
}

/// The choices a generated world is made of, for a given spec.
#[derive(Clone, Debug)]
struct WorldChoice {
    all_adapters: bool,
    adapters: [bool; 4],
    mailboxes: Vec<MailboxChoice>,
    names: Vec<NameChoice>,
    gateway: u8,
    fallback: (u8, u8),
    probe: u8,
    milestones: [Option<i64>; 7],
    list_failed: bool,
    failure: Option<bool>,
    now_offset_min: i64,
    instant_dns: bool,
}

#[derive(Clone, Debug)]
struct MailboxChoice {
    sync: u8,
    verify: u8,
    source_login_ok: bool,
    destination_login_ok: bool,
    account_missing: bool,
    forwarding: (u8, u8),
    observed: bool,
}

#[derive(Clone, Debug)]
struct NameChoice {
    switched: bool,
    ttl: u8,
    spf: u8,
    lagging: bool,
    error: bool,
    srv: bool,
}

fn rarely() -> BoxedStrategy<bool> {
    prop_oneof![19 => Just(false), 1 => Just(true)].boxed()
}

fn mailbox_choice() -> impl Strategy<Value = MailboxChoice> {
    (
        0u8..3,
        0u8..4,
        prop_oneof![15 => Just(true), 1 => Just(false)],
        prop_oneof![15 => Just(true), 1 => Just(false)],
        rarely(),
        (0u8..8, 0u8..8),
        prop_oneof![15 => Just(true), 1 => Just(false)],
    )
        .prop_map(
            |(sync, verify, s, d, missing, forwarding, observed)| MailboxChoice {
                sync,
                verify,
                source_login_ok: s,
                destination_login_ok: d,
                account_missing: missing,
                forwarding,
                observed,
            },
        )
}

fn name_choice() -> impl Strategy<Value = NameChoice> {
    (
        any::<bool>(),
        0u8..3,
        0u8..4,
        any::<bool>(),
        rarely(),
        any::<bool>(),
    )
        .prop_map(|(switched, ttl, spf, lagging, error, srv)| NameChoice {
            switched,
            ttl,
            spf,
            lagging,
            error,
            srv,
        })
}

fn world_choice() -> impl Strategy<Value = WorldChoice> {
    (
        (
            prop_oneof![4 => Just(true), 1 => Just(false)],
            any::<[bool; 4]>(),
        ),
        proptest::collection::vec(mailbox_choice(), 5),
        proptest::collection::vec(name_choice(), 2),
        (0u8..8, (0u8..8, 0u8..4), 0u8..3),
        any::<[Option<i64>; 7]>().prop_map(|ms| ms.map(|m| m.map(|x| x.rem_euclid(60 * 24 * 30)))),
        (
            rarely(),
            proptest::option::weighted(0.1, any::<bool>()),
            0i64..(60 * 24 * 14),
            any::<bool>(),
        ),
    )
        .prop_map(
            |(
                (all_adapters, adapters),
                mailboxes,
                names,
                (gateway, fallback, probe),
                milestones,
                (list_failed, failure, now_offset_min, instant_dns),
            )| WorldChoice {
                all_adapters,
                adapters,
                mailboxes,
                names,
                gateway,
                fallback,
                probe,
                milestones,
                list_failed,
                failure,
                now_offset_min,
                instant_dns,
            },
        )
}

fn switch(choice: u8) -> SwitchState {
    match choice {
        0..=3 => SwitchState::Off,
        4..=6 => SwitchState::On,
        _ => SwitchState::Error {
            reason: "managesieve: connection refused".into(),
        },
    }
}

fn build_world(
    spec: &MailMigrationSpec,
    c: &SpecChoice,
    w: &WorldChoice,
) -> (World, DateTime<Utc>) {
    let now = base() + TimeDelta::minutes(w.now_offset_min);
    let past = |minutes: i64| now - TimeDelta::minutes(minutes + 1);
    let adapters: Vec<Adapter> = if w.all_adapters {
        Adapter::ALL.to_vec()
    } else {
        let optional = [
            Adapter::Dns,
            Adapter::Routing,
            Adapter::Forwarding,
            Adapter::Probe,
        ];
        std::iter::once(Adapter::Imap)
            .chain(
                optional
                    .into_iter()
                    .zip(w.adapters)
                    .filter(|(_, on)| *on)
                    .map(|(a, _)| a),
            )
            .collect()
    };
    let mut world = World::new(adapters);
    let listed = csv_addresses(c);
    if spec.mailboxes_from.is_some() {
        world.mailboxes_from = Some(if w.list_failed {
            MailboxList::Failed {
                reason: "mailboxes.csv: no such file".into(),
            }
        } else {
            MailboxList::Loaded {
                addresses: listed.clone(),
            }
        });
    }
    let addresses: Vec<String> = spec
        .mailboxes
        .iter()
        .map(|m| m.address.clone())
        .chain(listed)
        .collect();
    for (i, a) in addresses.iter().enumerate() {
        let m = &w.mailboxes[i % w.mailboxes.len()];
        if !m.observed {
            continue;
        }
        let synced_at = past(120);
        let sync = match m.sync {
            0 => SyncState::Never,
            _ => SyncState::Synced {
                at: synced_at,
                messages: 5,
                bytes: 500,
            },
        };
        let verification = match (m.sync, m.verify) {
            (0, _) | (_, 0) => Verification::NotVerified,
            (_, 1) => Verification::Equal {
                at: past(60),
                messages: 5,
                arrived: 0,
            },
            // Equal but for mail that reached the source after the last sync.
            (_, 3) => Verification::Equal {
                at: past(60),
                messages: 5,
                arrived: 4,
            },
            // Found different either after the last copy (copy again) or before it.
            (1, _) => Verification::Differs {
                at: past(60),
                differences: 2,
            },
            _ => Verification::Differs {
                at: past(180),
                differences: 2,
            },
        };
        let failed = |ok: bool| {
            if ok {
                Login::Ok
            } else {
                Login::Failed {
                    reason: "authentication failed".into(),
                }
            }
        };
        let forwarding = if world.has(Adapter::Forwarding) {
            ForwardingSides {
                source: switch(m.forwarding.0),
                destination: switch(m.forwarding.1),
            }
        } else {
            ForwardingSides::default()
        };
        world.insert_mailbox(MailboxState {
            address: a.clone(),
            source_login: failed(m.source_login_ok),
            destination_login: failed(m.destination_login_ok),
            destination_account: if m.account_missing {
                Account::Missing
            } else {
                Account::Exists
            },
            sync,
            verification,
            last_error: None,
            forwarding,
            sieve: Default::default(),
            dav: Default::default(),
            observed_at: None,
            paused: None,
        });
    }
    if let Some(dns) = &spec.dns
        && world.has(Adapter::Dns)
    {
        let restore = spec.finalize.clone().unwrap_or_default().restore_ttl;
        let mut state = DnsState::default();
        for (i, d) in spec.domains.iter().enumerate() {
            let n = &w.names[i % w.names.len()];
            let spf_old = dns.spf.as_ref().map(|s| s.old.clone()).unwrap_or_default();
            let spf_new = dns.spf.as_ref().map(|s| s.new.clone()).unwrap_or_default();
            let records = Records {
                mx: if n.switched { dns.mx.clone() } else { old_mx() },
                ttl: match n.ttl {
                    0 => dns.cutover_ttl,
                    1 => restore,
                    _ => 86400,
                },
                spf: dns.spf.as_ref().and(match n.spf {
                    0 => None,
                    1 => Some(format!("v=spf1 {spf_old} -all")),
                    2 => Some(format!("v=spf1 {spf_old} {spf_new} -all")),
                    _ => Some(format!("v=spf1 {spf_new} -all")),
                }),
                srv_imaps: n.srv.then(|| "imap.new.example.net:993".into()),
                srv_submission: n.srv.then(|| "smtp.new.example.net:465".into()),
            };
            let primary = if n.error {
                Answer::Error {
                    reason: "TSIG key rejected".into(),
                }
            } else {
                Answer::Records(records.clone())
            };
            let mut stale = records.clone();
            stale.mx = old_mx();
            stale.ttl = 86400;
            let nameservers = dns
                .check_nameservers
                .iter()
                .enumerate()
                .map(|(j, server)| NameserverAnswer {
                    server: server.clone(),
                    answer: Answer::Records(if n.lagging && j == 1 {
                        stale.clone()
                    } else {
                        records.clone()
                    }),
                })
                .collect();
            state.names.insert(
                mailshift::address::Domain::of(d),
                NameState {
                    primary,
                    nameservers,
                },
            );
        }
        world.dns = Some(state);
    }
    if world.has(Adapter::Routing) {
        let domains = spec
            .domains
            .iter()
            .map(|d| d.to_ascii_lowercase())
            .collect();
        world.gateway = if spec.gateway.is_none() {
            RelayState::Unknown
        } else {
            match w.gateway {
                0..=3 => RelayState::Off,
                4 | 5 => RelayState::On {
                    relay_to: "[127.0.0.1]:12526".into(),
                    entries: domains,
                },
                6 => RelayState::On {
                    relay_to: "[10.0.0.1]:25".into(),
                    entries: domains,
                },
                _ => RelayState::Error {
                    reason: "ssh: connection refused".into(),
                },
            }
        };
        world.fallback = if spec.fallback.is_none() {
            RelayState::Unknown
        } else {
            match w.fallback.0 {
                0..=3 => RelayState::Off,
                4..=6 => RelayState::On {
                    relay_to: "[127.0.0.1]:12525".into(),
                    entries: addresses
                        .iter()
                        .enumerate()
                        .filter(|(i, _)| (w.fallback.1 >> (i % 4)) & 1 == 1)
                        .map(|(_, a)| a.to_lowercase())
                        .collect(),
                },
                _ => RelayState::Error {
                    reason: "postconf: permission denied".into(),
                },
            }
        };
    }
    world.probe = match w.probe {
        0 => ProbeState::NotRun,
        1 => ProbeState::Passed { at: past(30) },
        _ => ProbeState::Failed {
            at: past(30),
            reason: "timed out after 300s".into(),
        },
    };
    let at = |i: usize| w.milestones[i].map(past);
    world.milestones = Milestones {
        ttl_lowered_at: at(0),
        old_ttl: at(0).map(|_| 3600),
        ttl_found_lowered: false,
        final_synced_at: at(1),
        gateway_on_at: at(2),
        mx_switched_at: at(3),
        delta_synced_at: at(4),
        completed_at: at(5),
    };
    world.failures = w
        .failure
        .map(|stalled| Failure {
            work: "InitialSync user0@example.com".into(),
            step: "copy user0@example.com to the new server".into(),
            count: if stalled { 8 } else { 2 },
            reason: "ConnectionRefused".into(),
            message: "127.0.0.1:14312: connection refused".into(),
            stalled,
            retry_at: None,
        })
        .into_iter()
        .collect();
    (world, now)
}

/// Nothing in the world needs a person: every adapter, every login, nothing unreadable,
/// the cutover approved (if there is one), and a policy that acts.
fn needs_nobody(spec: &MailMigrationSpec, world: &World) -> bool {
    let every_adapter = Adapter::ALL.iter().all(|a| world.has(*a));
    let logins = world.mailboxes.values().all(|m| m.preflight_ok());
    let readable = world.mailboxes.values().all(|m| {
        !matches!(m.forwarding.source, SwitchState::Error { .. })
            && !matches!(m.forwarding.destination, SwitchState::Error { .. })
    }) && !matches!(world.gateway, RelayState::Error { .. })
        && !matches!(world.fallback, RelayState::Error { .. })
        && world
            .dns
            .as_ref()
            .is_none_or(|d| d.names.values().all(|n| !n.primary.is_error()))
        && !matches!(world.mailboxes_from, Some(MailboxList::Failed { .. }));
    let approved = spec.cutover.as_ref().is_some_and(|c| c.approved)
        || (spec.dns.is_none() && spec.gateway.is_none());
    let stalled = world.failure().is_some_and(|f| f.stalled);
    every_adapter && logins && readable && approved && !stalled && spec.policy != Policy::Observe
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(400)
}

fn bound(spec: &MailMigrationSpec, listed: usize) -> usize {
    let mailboxes = spec.mailboxes.len() + listed;
    80 + 20 * mailboxes + 20 * spec.domains.len()
}

proptest! {
    // PROPTEST_CASES=20000 for a longer hunt.
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    /// Every plan over any world is safe (see `check_plan`), and its JSON is version 1 and
    /// reads back.
    #[test]
    fn every_plan_is_safe(c in spec_choice(), w in world_choice()) {
        let spec = build_spec(&c);
        let (world, now) = build_world(&spec, &c, &w);
        let p = plan(&spec, &world, now);
        check_plan(&spec, &world, &p, now);
        let doc = p.document();
        prop_assert_eq!(doc.version, 1);
        let json = serde_json::to_string(&doc).unwrap();
        let back: mailshift::plan::PlanDocument = serde_json::from_str(&json).unwrap();
        prop_assert_eq!(back, doc);
        // Text output never panics and names every pending step.
        let text = p.to_string();
        prop_assert!(!text.is_empty());
        let status = derive_status(&spec, &world, &p, &MailMigrationStatus::default(), 7, now);
        prop_assert_eq!(status.observed_generation, Some(7));
        prop_assert!(status.conditions.iter().any(|c| c.type_ == "Ready"));
    }

    /// A world that matches the spec yields an empty plan, whatever the policy.
    #[test]
    fn matching_world_yields_empty_plan(c in spec_choice(), offset in 0i64..100_000) {
        let spec = build_spec(&c);
        let now = base() + TimeDelta::minutes(offset);
        let world = converged_world(&spec, &csv_addresses(&c), now);
        let p = plan(&spec, &world, now);
        prop_assert!(p.is_empty(), "not empty:\n{}", p);
        prop_assert!(p.next().is_none());
        let status = derive_status(&spec, &world, &p, &MailMigrationStatus::default(), 1, now);
        prop_assert_eq!(status.phase, Some(mailshift::spec::Phase::Completed));
    }

    /// From any starting world the loop ends within a bound: converged when nothing needs a
    /// person, otherwise blocked with a reason (or observing only).
    #[test]
    fn loop_converges_from_any_world(c in spec_choice(), w in world_choice()) {
        let spec = build_spec(&c);
        let (world, now) = build_world(&spec, &c, &w);
        let clean = needs_nobody(&spec, &world);
        let run = simulate(&spec, world, now, bound(&spec, c.csv), w.instant_dns);
        match &run.ending {
            Ending::Converged => {}
            Ending::ObserveOnly => prop_assert_eq!(spec.policy, Policy::Observe),
            Ending::Suspended => prop_assert!(spec.suspend),
            Ending::Blocked(reasons) => {
                prop_assert!(!clean, "blocked though nothing needs a person: {:?}", reasons);
            }
        }
        if clean {
            prop_assert!(matches!(run.ending, Ending::Converged));
            prop_assert!(run.status.completed_at.is_some());
        }
    }

    /// Re-planning without acting gives the same plan (no hidden state), and a plan at a
    /// later instant never un-gates MX before its time.
    #[test]
    fn planning_is_deterministic(c in spec_choice(), w in world_choice()) {
        let spec = build_spec(&c);
        let (world, now) = build_world(&spec, &c, &w);
        prop_assert_eq!(plan(&spec, &world, now), plan(&spec, &world, now));
    }
}

/// The sample worlds hit the interesting corners, so the properties above mean something.
#[test]
fn generated_cases_cover_the_timeline() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let mut seen = std::collections::BTreeSet::new();
    let mut converged = 0;
    for _ in 0..300 {
        let c = spec_choice().new_tree(&mut runner).unwrap().current();
        let mut w = world_choice().new_tree(&mut runner).unwrap().current();
        w.all_adapters = true;
        w.failure = None;
        let spec = build_spec(&c);
        let (world, now) = build_world(&spec, &c, &w);
        let run = simulate(&spec, world, now, bound(&spec, c.csv), w.instant_dns);
        converged += usize::from(matches!(run.ending, Ending::Converged));
        for (_, s) in &run.steps {
            seen.insert(plan_support::kind(s));
        }
    }
    for kind in [
        "lowerTtl",
        "spfAuthorize",
        "forwardingOn",
        "initialSync",
        "resync",
        "verify",
        "fallbackRelay",
        "finalSync",
        "gatewayOn",
        "probe",
        "switchMx",
        "publishSrv",
        "deltaSync",
        "forwardingOff",
        "fallbackOff",
        "spfRevoke",
        "restoreTtl",
        "markComplete",
    ] {
        assert!(
            seen.contains(kind),
            "no simulation carried out {kind}: {seen:?}"
        );
    }
    assert!(
        converged > 50,
        "only {converged} of 300 simulations converged"
    );
}
