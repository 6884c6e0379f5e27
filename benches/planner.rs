//! How long the pure planner takes for one migration of many mailboxes: `plan` and
//! `derive_status` for 10, 1,000 and 10,000 mailboxes, half of them copied and a quarter
//! verified, in the whole-domain example (DNS, gateway, forwarding) and in the mailbox-only
//! one. Run with `cargo bench --bench planner`; prints the median of repeated runs.

use std::time::Instant;

use chrono::{DateTime, Utc};
use mailshift::plan::{
    Adapter, DnsState, ForwardingSides, MailboxState, NameState, NameserverAnswer, Records,
    RelayState, SwitchState, SyncState, Verification, World, derive_status, plan,
};
use mailshift::spec::{MailMigrationSpec, Mailbox};

fn spec(example: &str, n: usize) -> MailMigrationSpec {
    let path = format!("{}/examples/{example}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(path).expect("the example exists");
    let loaded = mailshift::manifest::load_text("example.yaml", &text, Default::default());
    let mut spec = loaded
        .into_result()
        .expect("the example is valid")
        .remove(0)
        .spec;
    let first: Mailbox = spec.mailboxes[0].clone();
    let domain = first
        .address
        .split('@')
        .nth(1)
        .unwrap_or("example.com")
        .to_owned();
    spec.mailboxes = (0..n)
        .map(|i| {
            let mut m = first.clone();
            m.address = format!("user{i}@{domain}");
            m
        })
        .collect();
    spec
}

fn world(spec: &MailMigrationSpec, now: DateTime<Utc>) -> World {
    let mut w = World::new(Adapter::ALL);
    for (i, m) in spec.mailboxes.iter().enumerate() {
        let mut s = MailboxState::fresh(&m.address);
        s.forwarding = ForwardingSides {
            source: SwitchState::On,
            destination: SwitchState::Off,
        };
        s.observed_at = Some(now);
        if i % 2 == 0 {
            s.sync = SyncState::Synced {
                at: now,
                messages: 100,
                bytes: 1_000_000,
            };
        }
        if i % 4 == 0 {
            s.verification = Verification::Equal {
                at: now,
                messages: 100,
                arrived: 0,
            };
        }
        w.insert_mailbox(s);
    }
    let records = Records {
        mx: spec.dns.as_ref().map(|d| d.mx.clone()).unwrap_or_default(),
        ttl: 3600,
        ..Records::default()
    };
    let mut dns = DnsState::default();
    for d in &spec.domains {
        let answer = mailshift::plan::Answer::Records(records.clone());
        dns.names.insert(
            mailshift::address::Domain::of(d),
            NameState {
                primary: answer.clone(),
                nameservers: vec![NameserverAnswer {
                    server: "127.0.0.1:53".into(),
                    answer,
                }],
            },
        );
    }
    w.dns = Some(dns);
    w.gateway = RelayState::Off;
    w.fallback = RelayState::Off;
    w
}

fn main() {
    let now = Utc::now();
    println!("| example | mailboxes | plan (median) | plan + status (median) | steps |");
    println!("|---|--:|--:|--:|--:|");
    let examples = ["whole-domain-gateway.yaml", "imap-import-localized.yaml"];
    for (example, n) in examples
        .iter()
        .flat_map(|e| [10usize, 1_000, 10_000].map(|n| (*e, n)))
    {
        let spec = spec(example, n);
        let w = world(&spec, now);
        let runs = if n >= 10_000 { 15 } else { 51 };
        let mut plan_ms = Vec::new();
        let mut both_ms = Vec::new();
        let mut steps = 0;
        for _ in 0..runs {
            let t = Instant::now();
            let p = plan(&spec, &w, now);
            plan_ms.push(t.elapsed().as_secs_f64() * 1e3);
            let status = derive_status(&spec, &w, &p, &Default::default(), 1, now);
            both_ms.push(t.elapsed().as_secs_f64() * 1e3);
            steps = p.steps.len();
            std::hint::black_box(status);
        }
        let median = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        println!(
            "| {example} | {n} | {:.2} ms | {:.2} ms | {steps} |",
            median(&mut plan_ms),
            median(&mut both_ms)
        );
    }
}
