//! Shared by the planner's table and property tests: worlds at the start and at the end of
//! a migration, a model of what each step does to the world, and a simulation of the loop
//! (plan, derive the status and store its milestones, carry out the next step or wait).
#![allow(dead_code)]

use mailshift::address::Domain;
use mailshift::plan::{
    DavState, DavStep, DnsChange, ForwardingChange, MailStep, OwnStep, ProbeStep, RelayChange,
    SieveState, SieveStep,
};
use std::collections::BTreeSet;

use chrono::{DateTime, TimeDelta, Utc};
use mailshift::plan::{
    Access, Account, Adapter, Answer, DnsState, Execution, ForwardingSides, Gate, Login,
    MailboxList, MailboxState, Milestones, NameState, NameserverAnswer, Plan, ProbeState, Progress,
    Records, RelayState, Resource, Side, Step, SwitchState, SyncState, Verification, World,
    derive_status, plan,
};
use mailshift::spec::{MailMigrationSpec, MailMigrationStatus, MxRecord, Policy};

pub const OLD_MX: &str = "mail.old.example.net.";

pub fn t(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

/// The spec of one of the manifests in `examples/`.
pub fn example(name: &str) -> MailMigrationSpec {
    let path = format!("{}/examples/{name}", env!("CARGO_MANIFEST_DIR"));
    let loaded = mailshift::manifest::load_file(&path, Default::default());
    let mut migrations = loaded.into_result().expect("examples are valid");
    migrations.remove(0).spec
}

/// Addresses of a `mailboxesFrom` CSV in `examples/`.
pub fn csv_addresses(name: &str) -> Vec<String> {
    let path = format!("{}/examples/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .skip(1)
        .filter_map(|l| l.split(',').next())
        .map(str::to_owned)
        .collect()
}

pub fn old_mx() -> Vec<MxRecord> {
    vec![MxRecord {
        preference: 10,
        exchange: OLD_MX.into(),
    }]
}

pub fn nameservers(spec: &MailMigrationSpec) -> Vec<String> {
    match &spec.dns {
        Some(d) if !d.check_nameservers.is_empty() => d.check_nameservers.clone(),
        _ => vec!["ns1.test:53".into(), "ns2.test:53".into()],
    }
}

fn name_state(spec: &MailMigrationSpec, records: Records) -> NameState {
    NameState {
        nameservers: nameservers(spec)
            .into_iter()
            .map(|server| NameserverAnswer {
                server,
                answer: Answer::Records(records.clone()),
            })
            .collect(),
        primary: Answer::Records(records),
    }
}

/// Before anything happened: mailboxes log in and are not copied, MX points at the old
/// server with a TTL of an hour, the old server alone in SPF, nothing relayed or forwarded.
pub fn fresh_world(
    spec: &MailMigrationSpec,
    listed: &[String],
    adapters: impl IntoIterator<Item = Adapter>,
) -> World {
    let mut w = World::new(adapters);
    if spec.mailboxes_from.is_some() {
        w.mailboxes_from = Some(MailboxList::Loaded {
            addresses: listed.to_vec(),
        });
    }
    for a in spec.mailboxes.iter().map(|m| &m.address).chain(listed) {
        let mut m = MailboxState::fresh(a);
        m.forwarding = ForwardingSides {
            source: SwitchState::Off,
            destination: SwitchState::Off,
        };
        w.insert_mailbox(m);
    }
    if let Some(dns) = &spec.dns
        && w.has(Adapter::Dns)
    {
        let spf = dns.spf.as_ref().map(|s| format!("v=spf1 {} -all", s.old));
        let mut state = DnsState::default();
        for d in &spec.domains {
            let records = Records {
                mx: old_mx(),
                ttl: 3600,
                spf: spf.clone(),
                ..Records::default()
            };
            state.names.insert(Domain::of(d), name_state(spec, records));
        }
        w.dns = Some(state);
    }
    if w.has(Adapter::Routing) {
        w.gateway = RelayState::Off;
        w.fallback = RelayState::Off;
    }
    if !w.has(Adapter::Forwarding) {
        for m in w.mailboxes.values_mut() {
            m.forwarding = ForwardingSides::default();
        }
    }
    w
}

/// The end state the spec declares, reached well before `now`.
pub fn converged_world(spec: &MailMigrationSpec, listed: &[String], now: DateTime<Utc>) -> World {
    let mut w = fresh_world(spec, listed, Adapter::ALL);
    let long_ago = now - TimeDelta::days(60);
    for m in w.mailboxes.values_mut() {
        m.sync = SyncState::Synced {
            at: long_ago,
            messages: 10,
            bytes: 1000,
        };
        m.verification = Verification::Equal {
            at: long_ago,
            messages: 10,
            arrived: 0,
        };
    }
    let restore = spec.finalize.clone().unwrap_or_default().restore_ttl;
    if let (Some(dns), Some(state)) = (&spec.dns, w.dns.as_mut()) {
        for d in &spec.domains {
            let mut r = Records {
                mx: dns.mx.clone(),
                ttl: restore,
                spf: dns.spf.as_ref().map(|s| format!("v=spf1 {} -all", s.new)),
                ..Records::default()
            };
            if let Some(srv) = &dns.srv {
                r.srv_imaps = srv.imaps.as_deref().map(|t| with_port(t, 993));
                r.srv_submission = srv.submission.as_deref().map(|t| with_port(t, 587));
            }
            state.names.insert(Domain::of(d), name_state(spec, r));
        }
    }
    if let Some(g) = &spec.gateway {
        w.gateway = RelayState::On {
            relay_to: g.relay_to.clone(),
            entries: spec
                .domains
                .iter()
                .map(|d| d.to_ascii_lowercase())
                .collect(),
        };
    }
    w.probe = ProbeState::Passed { at: long_ago };
    let ms = &mut w.milestones;
    ms.ttl_lowered_at = Some(long_ago);
    ms.old_ttl = Some(3600);
    ms.final_synced_at = Some(long_ago);
    ms.gateway_on_at = spec.gateway.as_ref().map(|_| long_ago);
    ms.mx_switched_at = Some(long_ago);
    ms.delta_synced_at = Some(now - TimeDelta::days(30));
    ms.completed_at = Some(now - TimeDelta::days(1));
    w
}

fn with_port(t: &str, port: u16) -> String {
    if t.contains(':') {
        t.to_owned()
    } else {
        format!("{t}:{port}")
    }
}

fn primary_mut<'w>(w: &'w mut World, spec: &MailMigrationSpec, name: &str) -> &'w mut Records {
    let state = w.dns.get_or_insert_with(DnsState::default);
    let entry = state.names.entry(Domain::of(name)).or_insert_with(|| {
        name_state(
            spec,
            Records {
                mx: old_mx(),
                ttl: 3600,
                ..Records::default()
            },
        )
    });
    if entry.primary.is_error() {
        entry.primary = Answer::Records(Records::default());
    }
    match &mut entry.primary {
        Answer::Records(r) => r,
        Answer::Error { .. } => unreachable!(),
    }
}

/// A model of what each step does to the world. DNS changes reach only the primary;
/// nameservers catch up in [`observe_again`] (or at once with `instant_dns`).
pub fn apply(
    w: &mut World,
    spec: &MailMigrationSpec,
    step: &Step,
    now: DateTime<Utc>,
    instant_dns: bool,
) {
    match step {
        Step::Dns(DnsChange::LowerTtl { name, to_ttl, .. }) => {
            primary_mut(w, spec, name).ttl = *to_ttl
        }
        Step::Dns(DnsChange::SpfAuthorize {
            name, mechanisms, ..
        }) => {
            let r = primary_mut(w, spec, name);
            let mut spf = r.spf.clone().unwrap_or_else(|| "v=spf1 -all".into());
            for m in mechanisms {
                spf = spf.replacen("v=spf1", &format!("v=spf1 {m}"), 1);
            }
            r.spf = Some(spf);
        }
        Step::Dns(DnsChange::SpfRevoke {
            name, mechanisms, ..
        }) => {
            let r = primary_mut(w, spec, name);
            if let Some(spf) = &r.spf {
                let kept: Vec<&str> = spf
                    .split_whitespace()
                    .filter(|t| !mechanisms.iter().any(|m| m.eq_ignore_ascii_case(t)))
                    .collect();
                r.spf = Some(kept.join(" "));
            }
        }
        Step::Forwarding(ForwardingChange::On { address, side, .. })
        | Step::Forwarding(ForwardingChange::Off { address, side }) => {
            let on = matches!(step, Step::Forwarding(ForwardingChange::On { .. }));
            let m = w.mailbox_mut(address).unwrap();
            let s = match side {
                Side::Source => &mut m.forwarding.source,
                Side::Destination => &mut m.forwarding.destination,
            };
            *s = if on {
                SwitchState::On
            } else {
                SwitchState::Off
            };
        }
        Step::Mail(MailStep::InitialSync { address })
        | Step::Mail(MailStep::Resync { address, .. }) => {
            w.mailbox_mut(address).unwrap().sync = SyncState::Synced {
                at: now,
                messages: 10,
                bytes: 1000,
            };
        }
        Step::Mail(MailStep::Verify { address }) => {
            w.mailbox_mut(address).unwrap().verification = Verification::Equal {
                at: now,
                messages: 10,
                arrived: 0,
            };
        }
        Step::Relay(RelayChange::FallbackRelay {
            relay_to,
            addresses,
        }) => {
            // What the relay holds afterwards: the map as the Postfix adapter writes it,
            // read back as it reads it.
            let written = mailshift::routing::postfix::render_map(
                mailshift::routing::postfix::Role::Fallback,
                relay_to,
                &addresses.iter().cloned().collect(),
            );
            w.fallback = RelayState::On {
                relay_to: relay_to.clone(),
                entries: mailshift::routing::postfix::parse_map(&written)
                    .into_iter()
                    .map(|(k, _)| k)
                    .collect(),
            };
        }
        Step::Relay(RelayChange::FallbackOff { .. }) => w.fallback = RelayState::Off,
        Step::Relay(RelayChange::GatewayOn { relay_to, domains }) => {
            w.gateway = RelayState::On {
                relay_to: relay_to.clone(),
                entries: domains.iter().cloned().collect(),
            };
        }
        Step::Probe(ProbeStep { .. }) => w.probe = ProbeState::Passed { at: now },
        Step::Accounts(_) => {
            // Every account and alias written; the mailboxes' logins now work.
            if let mailshift::plan::DirectoryState::Observed {
                accounts,
                aliases,
                missing_accounts,
                missing_aliases,
                ..
            } = &mut w.directory
            {
                for a in accounts.drain(..) {
                    if let Some(m) = w.mailboxes.get_mut(&mailshift::address::Address::of(&a)) {
                        m.destination_login = Login::Ok;
                        m.destination_account = mailshift::plan::Account::Exists;
                    }
                }
                aliases.clear();
                missing_accounts.clear();
                missing_aliases.clear();
            }
        }
        Step::Dav(DavStep::CopyDav { address }) => {
            w.mailbox_mut(address).unwrap().dav = DavState::Compared {
                collections: 1,
                items: 1,
                pending: 0,
                kept: Vec::new(),
                refused: Vec::new(),
            }
        }
        Step::Sieve(SieveStep::CopySieve { address }) => {
            w.mailbox_mut(address).unwrap().sieve = SieveState::Compared {
                scripts: 1,
                pending: 0,
                kept: Vec::new(),
                refused: Vec::new(),
            }
        }
        Step::Dns(DnsChange::SwitchMx { name, to, ttl, .. }) => {
            let r = primary_mut(w, spec, name);
            r.mx = to.clone();
            r.ttl = *ttl;
        }
        Step::Dns(DnsChange::PublishSrv {
            name,
            imaps,
            submission,
            ..
        }) => {
            let r = primary_mut(w, spec, name);
            if imaps.is_some() {
                r.srv_imaps = imaps.clone();
            }
            if submission.is_some() {
                r.srv_submission = submission.clone();
            }
        }
        Step::Dns(DnsChange::RestoreTtl { name, ttl, .. }) => primary_mut(w, spec, name).ttl = *ttl,
        Step::Mail(MailStep::FinalSync { .. })
        | Step::Mail(MailStep::DeltaSync { .. })
        | Step::Own(OwnStep::MarkComplete) => {}
    }
    w.milestones.record(step, now);
    if instant_dns {
        propagate(w);
    }
}

/// Every nameserver answers what the primary holds.
pub fn propagate(w: &mut World) {
    if let Some(dns) = w.dns.as_mut() {
        for n in dns.names.values_mut() {
            for ns in &mut n.nameservers {
                ns.answer = n.primary.clone();
            }
        }
    }
}

/// Observing again: DNS has propagated, unobserved mailboxes are found as they are.
pub fn observe_again(w: &mut World, spec: &MailMigrationSpec) {
    propagate(w);
    let listed = match &w.mailboxes_from {
        Some(MailboxList::Loaded { addresses }) => addresses.clone(),
        _ => Vec::new(),
    };
    for a in spec.mailboxes.iter().map(|m| &m.address).chain(&listed) {
        if w.mailbox(a).is_none() {
            w.insert_mailbox(MailboxState::fresh(a));
        }
    }
}

/// How a simulation ended.
#[derive(Debug)]
pub enum Ending {
    Converged,
    ObserveOnly,
    Suspended,
    Blocked(Vec<String>),
}

/// One simulation: the steps carried out, in order, with the instant of each.
#[derive(Debug)]
pub struct Run {
    pub ending: Ending,
    pub steps: Vec<(DateTime<Utc>, Step)>,
    pub world: World,
    pub status: MailMigrationStatus,
    pub iterations: usize,
    pub now: DateTime<Utc>,
}

/// Runs the loop from `world` at `start`: plan, store the status's milestones, then carry
/// out the next step (a minute each), observe again, or wait for the earliest time gate.
/// Every plan is checked with [`check_plan`]. Panics after `bound` iterations.
pub fn simulate(
    spec: &MailMigrationSpec,
    world: World,
    start: DateTime<Utc>,
    bound: usize,
    instant_dns: bool,
) -> Run {
    simulate_with(spec, world, start, bound, instant_dns, |_| {
        TimeDelta::minutes(1)
    })
}

/// [`simulate`], with each step taking as long as `takes` says.
pub fn simulate_with(
    spec: &MailMigrationSpec,
    mut world: World,
    start: DateTime<Utc>,
    bound: usize,
    instant_dns: bool,
    takes: impl Fn(&Step) -> TimeDelta,
) -> Run {
    let mut now = start;
    let mut status = MailMigrationStatus::default();
    let mut steps = Vec::new();
    // DNS changes reach the nameservers one observation later (unless `instant_dns`).
    let mut lagging = false;
    for iterations in 0..bound {
        if std::mem::take(&mut lagging) {
            propagate(&mut world);
        }
        let p = plan(spec, &world, now);
        check_plan(spec, &world, &p, now);
        status = derive_status(spec, &world, &p, &status, 1, now);
        world.milestones = Milestones::from_status(&status);
        let ending = match p.progress() {
            Progress::Converged => Some(Ending::Converged),
            Progress::ObserveOnly => Some(Ending::ObserveOnly),
            Progress::Suspended => Some(Ending::Suspended),
            Progress::Blocked { reasons } => {
                assert!(
                    !reasons.is_empty(),
                    "blocked without a reason (a deadlock):\n{p}\nworld: {world:#?}"
                );
                Some(Ending::Blocked(reasons))
            }
            Progress::Ready => {
                let step = p.next().unwrap().step.clone();
                // The step's effect is there when it ends; milestones record its end.
                now += takes(&step);
                apply(&mut world, spec, &step, now, instant_dns);
                lagging = step.adapter() == Some(Adapter::Dns);
                steps.push((now, step));
                None
            }
            Progress::Recheck => {
                observe_again(&mut world, spec);
                now += TimeDelta::minutes(1);
                None
            }
            Progress::WaitUntil { at } => {
                assert!(at > now, "waits for an instant already past: {at}\n{p}");
                now = at;
                None
            }
        };
        if let Some(ending) = ending {
            return Run {
                ending,
                steps,
                world,
                status,
                iterations,
                now,
            };
        }
    }
    panic!(
        "no convergence within {bound} iterations; last plan:\n{}\nsteps: {:#?}",
        plan(spec, &world, now),
        steps.iter().map(|(_, s)| s.to_string()).collect::<Vec<_>>()
    );
}

/// Safety properties every plan must have, whatever the world.
pub fn check_plan(spec: &MailMigrationSpec, world: &World, p: &Plan, now: DateTime<Utc>) {
    for s in &p.steps {
        // The source is only ever read.
        assert!(
            !s.touches
                .iter()
                .any(|t| t.resource == Resource::SourceImap && t.access == Access::Write),
            "writes the source: {}",
            s.step
        );
        if spec.policy == Policy::Observe {
            assert_eq!(s.execution, Execution::ObserveOnly, "{}", s.step);
        }
        if s.execution == Execution::Execute
            && let Some(a) = s.step.adapter()
        {
            assert!(world.has(a), "runs {} without its adapter", s.step);
        }
    }
    if spec.policy == Policy::Observe {
        assert!(p.next().is_none());
        assert!(p.actionable().next().is_none());
    }
    for s in p.actionable() {
        match &s.step {
            Step::Dns(DnsChange::SwitchMx { .. }) => check_switch(spec, world, now),
            // Nothing copies mail that arrived after the last sync once the migration is
            // complete: completion needs every mailbox fully equal.
            Step::Own(OwnStep::MarkComplete) => {
                for a in wanted(spec, world) {
                    let m = world.mailbox(a);
                    assert!(
                        !m.is_some_and(|m| matches!(
                            m.verification,
                            Verification::Equal { arrived: 1.., .. }
                        )),
                        "complete with mail arrived at {a} since its last sync"
                    );
                }
            }
            Step::Relay(RelayChange::GatewayOn { .. }) => {
                let relayed_back = world.fallback.entries().cloned().unwrap_or_default();
                assert!(
                    relayed_back.is_empty(),
                    "gateway on while the fallback relays {relayed_back:?} back: a loop"
                );
            }
            Step::Relay(RelayChange::FallbackRelay { addresses, .. }) => {
                let before = world.fallback.entries().cloned().unwrap_or_default();
                let adds = addresses
                    .iter()
                    .any(|a| !before.contains(&a.to_lowercase()));
                assert!(
                    !(adds && matches!(world.gateway, RelayState::On { .. })),
                    "adds to the fallback while the gateway is on: a loop"
                );
            }
            _ => {}
        }
        assert!(
            !(spec.policy == Policy::UpsertOnly && s.step.removes()),
            "upsert-only removes: {}",
            s.step
        );
    }
}

/// MX moves only once every mailbox is verified (or, MX first, relayed back by the
/// fallback), the old TTL has passed since it was lowered, the cutover is approved and its
/// window is open.
/// The mailboxes the spec asks for: its own and the loaded list's.
fn wanted<'a>(spec: &'a MailMigrationSpec, world: &'a World) -> Vec<&'a String> {
    spec.mailboxes
        .iter()
        .map(|m| &m.address)
        .chain(match &world.mailboxes_from {
            Some(MailboxList::Loaded { addresses }) => addresses.iter().collect::<Vec<_>>(),
            _ => Vec::new(),
        })
        .collect()
}

fn check_switch(spec: &MailMigrationSpec, world: &World, now: DateTime<Utc>) {
    let wanted = wanted(spec, world);
    let covered: BTreeSet<String> = world.fallback.entries().cloned().unwrap_or_default();
    for a in wanted {
        let verified = world.mailbox(a).is_some_and(MailboxState::is_verified);
        let relayed_back = spec.fallback.is_some() && covered.contains(&a.to_lowercase());
        assert!(
            verified || relayed_back,
            "MX switch with {a} neither verified nor relayed back"
        );
    }
    let expiry = world
        .milestones
        .old_ttl_expires_at()
        .expect("MX switch without a recorded TTL lowering");
    assert!(
        expiry <= now,
        "MX switch before the old TTL passed ({expiry})"
    );
    let cutover = spec.cutover.clone().unwrap_or_default();
    assert!(cutover.approved, "MX switch without approval");
    if let Some(w) = &cutover.window {
        let w = mailshift::plan::CutoverWindow::parse(w).expect("valid window");
        assert!(w.is_open(now), "MX switch outside the window at {now}");
    }
}

/// A plan's steps, as plain words.
pub fn summaries(p: &Plan) -> Vec<String> {
    p.steps.iter().map(|s| s.step.to_string()).collect()
}

/// The kinds of steps carried out, in order, consecutive repeats folded.
pub fn kinds(steps: &[(DateTime<Utc>, Step)]) -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for (_, s) in steps {
        let k = kind(s);
        if out.last() != Some(&k) {
            out.push(k);
        }
    }
    out
}

pub fn kind(s: &Step) -> &'static str {
    match s {
        Step::Dns(DnsChange::LowerTtl { .. }) => "lowerTtl",
        Step::Dns(DnsChange::SpfAuthorize { .. }) => "spfAuthorize",
        Step::Forwarding(ForwardingChange::On { .. }) => "forwardingOn",
        Step::Mail(MailStep::InitialSync { .. }) => "initialSync",
        Step::Mail(MailStep::Resync { .. }) => "resync",
        Step::Mail(MailStep::Verify { .. }) => "verify",
        Step::Relay(RelayChange::FallbackRelay { .. }) => "fallbackRelay",
        Step::Mail(MailStep::FinalSync { .. }) => "finalSync",
        Step::Relay(RelayChange::GatewayOn { .. }) => "gatewayOn",
        Step::Probe(ProbeStep { .. }) => "probe",
        Step::Dns(DnsChange::SwitchMx { .. }) => "switchMx",
        Step::Dns(DnsChange::PublishSrv { .. }) => "publishSrv",
        Step::Mail(MailStep::DeltaSync { .. }) => "deltaSync",
        Step::Forwarding(ForwardingChange::Off { .. }) => "forwardingOff",
        Step::Relay(RelayChange::FallbackOff { .. }) => "fallbackOff",
        Step::Dns(DnsChange::SpfRevoke { .. }) => "spfRevoke",
        Step::Dns(DnsChange::RestoreTtl { .. }) => "restoreTtl",
        Step::Sieve(SieveStep::CopySieve { .. }) => "copySieve",
        Step::Dav(DavStep::CopyDav { .. }) => "copyDav",
        Step::Accounts(_) => "provisionAccounts",
        Step::Own(OwnStep::MarkComplete) => "markComplete",
    }
}

/// Whether a gate waits on this fact.
pub fn waits_on(
    s: &mailshift::plan::PlannedStep,
    f: impl Fn(&mailshift::plan::Waiting) -> bool,
) -> bool {
    s.gates
        .iter()
        .any(|g| matches!(g, Gate::Fact { waiting } if f(waiting)))
}

pub fn login_failed(reason: &str) -> Login {
    Login::Failed {
        reason: reason.into(),
    }
}

pub fn missing_account() -> Account {
    Account::Missing
}
