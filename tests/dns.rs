//! The DNS adapter against real BIND 9 servers from the harness: observe every
//! authoritative server directly, change MX/TTL/SPF/SRV through TSIG-signed RFC 2136
//! UPDATE with compare-and-swap prerequisites, and fail cleanly (zone unchanged) on a
//! wrong key, a refused update, an unreachable server, a name outside the zone.
//!
//! `dig` (the harness's, non-recursive, straight at the server) is the outside observer.
//! Nothing sleeps for a fixed time: waits poll a condition under a deadline.

mod dns_support;

use mailshift::plan::DnsChange;
use std::future::Future;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use chrono::{DateTime, Utc};
use dns_support as cases;
use dns_support::*;
use mailshift::dns::{self, Applied};
use mailshift::plan::{
    self, Adapter, Answer, Execution, Gate, Milestones, Step, TimeReason, Waiting, World,
};
use mailshift::secrets::Resolver;
use mailshift::spec::MailMigrationSpec;
use mailshift_harness::Bind;
use mailshift_harness::Nameserver as _;

/// How long a condition polled by [`until`] may take.
const DEADLINE: Duration = Duration::from_secs(20);

/// Polls `check` until it yields a value or `DEADLINE` passes.
async fn until<T, F: Future<Output = Result<Option<T>>>>(
    what: &str,
    mut check: impl FnMut() -> F,
) -> Result<T> {
    let deadline = Instant::now() + DEADLINE;
    let mut interval = Duration::from_millis(10);
    loop {
        if let Some(v) = check().await? {
            return Ok(v);
        }
        if Instant::now() >= deadline {
            bail!("timed out after {DEADLINE:?} waiting for {what}");
        }
        tokio::time::sleep(interval).await;
        interval = (interval * 2).min(Duration::from_millis(200));
    }
}

#[tokio::test]
async fn ttl_lowered_targets_unchanged_then_switched_then_restored() -> Result<()> {
    let bind = Bind::builder().name("dns-steps").zone(zone()).start()?;
    cases::ttl_lowered_targets_unchanged_then_switched_then_restored(&bind).await
}

#[tokio::test]
async fn compare_and_swap_refuses_to_overwrite_a_change_made_meanwhile() -> Result<()> {
    let bind = Bind::builder().name("dns-cas").zone(zone()).start()?;
    cases::compare_and_swap_refuses_to_overwrite_a_change_made_meanwhile(&bind).await
}

#[tokio::test]
async fn a_wrong_key_is_refused_with_the_zone_unchanged() -> Result<()> {
    let bind = Bind::builder().name("dns-badkey").zone(zone()).start()?;
    cases::a_wrong_key_is_refused_with_the_zone_unchanged(&bind).await
}

#[tokio::test]
async fn every_tsig_algorithm_signs_updates_and_verifies_answers() -> Result<()> {
    cases::every_tsig_algorithm_signs_updates_and_verifies_answers(|name| {
        Bind::builder()
            .name(&format!("dns-{name}"))
            .zone(zone())
            .tsig_algorithm(name)
            .start()
    })
    .await
}

#[tokio::test]
async fn refused_unreachable_and_outside_the_zone_are_typed_errors() -> Result<()> {
    let primary = Bind::builder().name("dns-errors").zone(zone()).start()?;
    let secondary = Bind::secondary_of(&primary).start()?;
    let serial = primary.serial("example.com")?;

    // A secondary does not take updates: REFUSED.
    let to_secondary = dns_spec(&secondary, primary.tsig(), &[]);
    let err = apply(&lower(Some(3600)), &to_secondary).await.unwrap_err();
    assert_eq!(err.reason(), "UpdateRefused", "{err}");
    assert!(err.to_string().contains(&secondary.server()), "{err}");
    assert!(err.to_string().contains("MX example.com"), "{err}");

    // Outside the zone: refused before anything is sent.
    let dns = dns_spec(&primary, primary.tsig(), &[]);
    let outside = DnsChange::SwitchMx {
        zone: "example.com".into(),
        name: "example.org".into(),
        from: Some(vec![]),
        to: vec![mx(10, NEW_MX)],
        ttl: 300,
    };
    let err = apply(&outside, &dns).await.unwrap_err();
    assert_eq!(err.reason(), "NotInZone", "{err}");
    assert!(err.to_string().contains("MX example.org"), "{err}");
    assert!(err.to_string().contains("zone example.com"), "{err}");

    // Nothing listening: unreachable, at once. The port is held by a socket bound but not
    // listening, so no parallel test can start listening there meanwhile.
    let holder = tokio::net::TcpSocket::new_v4()?;
    holder.bind("127.0.0.1:0".parse()?)?;
    let closed = holder.local_addr()?;
    let mut nowhere = dns.clone();
    rfc2136(&mut nowhere).server = closed.to_string();
    let started = Instant::now();
    let err = apply(&lower(Some(3600)), &nowhere).await.unwrap_err();
    assert_eq!(err.reason(), "ServerUnreachable", "{err}");
    assert!(err.to_string().contains(&closed.to_string()), "{err}");
    assert!(started.elapsed() < Duration::from_secs(2));

    // A frozen server: unreachable after the timeout, and nothing changed once it wakes.
    primary.pause()?;
    let result = apply(&lower(Some(3600)), &dns).await;
    primary.resume()?;
    let err = result.unwrap_err();
    assert_eq!(err.reason(), "ServerUnreachable", "{err}");
    assert!(err.to_string().contains("no answer within"), "{err}");

    assert_eq!(dig_mx(&primary)?, ["3600 10 mail.old.example.net."]);
    assert_eq!(primary.serial("example.com")?, serial);
    Ok(())
}

#[tokio::test]
async fn propagation_a_late_secondary_lags_until_refreshed() -> Result<()> {
    let primary = Bind::builder().name("dns-prop").zone(zone()).start()?;
    let secondary = Bind::secondary_of(&primary).start()?;
    let dns = dns_spec(
        &primary,
        primary.tsig(),
        &[primary.server(), secondary.server()],
    );

    let state = observe(&dns).await;
    let name = state.name("example.com").unwrap();
    assert_eq!(name.nameservers.len(), 2);
    assert!(name.agree(), "{name:?}");

    assert_eq!(
        apply(&switch(Some(vec![mx(10, OLD_MX)])), &dns).await?,
        Applied::Updated
    );
    // The secondary is not notified: it keeps answering the old set with the old TTL.
    let state = observe(&dns).await;
    let name = state.name("example.com").unwrap();
    assert_eq!(name.lagging(), vec![secondary.server()]);
    let late = name
        .nameservers
        .iter()
        .find(|n| n.server == secondary.server())
        .unwrap();
    let late = late.answer.records().expect("the secondary answers");
    assert_eq!((late.mx.clone(), late.ttl), (vec![mx(10, OLD_MX)], 3600));
    assert_eq!(primary_records(&state).mx, vec![mx(10, NEW_MX)]);

    // Frozen, it answers nothing in time: lagging too, with the reason.
    secondary.pause()?;
    let state = observe(&dns).await;
    secondary.resume()?;
    let name = state.name("example.com").unwrap();
    assert_eq!(name.lagging(), vec![secondary.server()]);
    let frozen = &name
        .nameservers
        .iter()
        .find(|n| n.server == secondary.server())
        .unwrap()
        .answer;
    match frozen {
        Answer::Error { reason } => {
            assert!(reason.contains(&secondary.server()), "{reason}");
            assert!(reason.contains("no answer within"), "{reason}");
        }
        other => panic!("a frozen server answered: {other:?}"),
    }

    // Refreshed, it agrees.
    secondary.refresh_zone("example.com")?;
    until("the secondary to agree with the primary", || async {
        let state = observe(&dns).await;
        Ok(state.name("example.com").unwrap().agree().then_some(()))
    })
    .await?;
    Ok(())
}

#[tokio::test]
async fn spf_authorizes_both_then_revokes_the_old_and_srv_is_published() -> Result<()> {
    let bind = Bind::builder()
        .name("dns-spf")
        .zone(
            zone()
                .txt("@", "v=spf1 ip4:192.0.2.10 -all")
                .txt("@", "google-site-verification=abc123"),
        )
        .start()?;
    let mut dns = dns_spec(&bind, bind.tsig(), &[bind.server()]);
    dns.spf = Some(mailshift::spec::Spf {
        old: "ip4:192.0.2.10".into(),
        new: "ip4:198.51.100.20".into(),
    });
    dns.srv = Some(mailshift::spec::SrvRecords {
        imaps: Some("imap.new.example.net".into()),
        submission: Some("smtp.new.example.net:2587".into()),
    });
    let spf = |bind: &Bind| -> Result<Vec<String>> {
        let mut txt: Vec<String> = bind
            .dig(&["+short", "example.com", "TXT"])?
            .lines()
            .map(str::to_owned)
            .collect();
        txt.sort();
        Ok(txt)
    };
    let authorize = DnsChange::SpfAuthorize {
        zone: "example.com".into(),
        name: "example.com".into(),
        mechanisms: vec!["ip4:198.51.100.20".into()],
    };
    assert_eq!(apply(&authorize, &dns).await?, Applied::Updated);
    assert_eq!(
        spf(&bind)?,
        [
            "\"google-site-verification=abc123\"",
            "\"v=spf1 ip4:192.0.2.10 ip4:198.51.100.20 -all\""
        ]
    );
    assert_eq!(
        primary_records(&observe(&dns).await).spf.as_deref(),
        Some("v=spf1 ip4:192.0.2.10 ip4:198.51.100.20 -all")
    );
    assert_eq!(apply(&authorize, &dns).await?, Applied::AlreadyDone);

    let revoke = DnsChange::SpfRevoke {
        zone: "example.com".into(),
        name: "example.com".into(),
        mechanisms: vec!["ip4:192.0.2.10".into()],
    };
    assert_eq!(apply(&revoke, &dns).await?, Applied::Updated);
    assert_eq!(
        spf(&bind)?,
        [
            "\"google-site-verification=abc123\"",
            "\"v=spf1 ip4:198.51.100.20 -all\""
        ]
    );

    let publish = DnsChange::PublishSrv {
        zone: "example.com".into(),
        name: "example.com".into(),
        imaps: Some("imap.new.example.net:993".into()),
        submission: Some("smtp.new.example.net:2587".into()),
    };
    assert_eq!(apply(&publish, &dns).await?, Applied::Updated);
    assert_eq!(
        bind.dig(&["+short", "_imaps._tcp.example.com", "SRV"])?
            .trim(),
        "0 1 993 imap.new.example.net."
    );
    let r = primary_records(&observe(&dns).await);
    assert_eq!(r.srv_imaps.as_deref(), Some("imap.new.example.net:993"));
    assert_eq!(
        r.srv_submission.as_deref(),
        Some("smtp.new.example.net:2587")
    );
    assert_eq!(apply(&publish, &dns).await?, Applied::AlreadyDone);
    Ok(())
}

#[tokio::test]
async fn without_check_nameservers_the_zones_ns_records_are_asked() -> Result<()> {
    let bind = Bind::builder().name("dns-ns").zone(zone()).start()?;
    let dns = dns_spec(&bind, bind.tsig(), &[]);
    let state = observe(&dns).await;
    let name = state.name("example.com").unwrap();
    // The harness's zone has `NS ns1.example.com.` with glue 127.0.0.1 (port 53, where
    // no test server listens): it is asked, whatever it answers.
    let servers: Vec<&str> = name.nameservers.iter().map(|n| n.server.as_str()).collect();
    assert_eq!(servers, ["ns1.example.com (127.0.0.1:53)"]);
    Ok(())
}

/// The adapter in a loop with the real planner: observe, plan, carry out the first step
/// whose gates are open, record it, and jump the clock to time gates. An outside
/// observer sees the TTL lowered with the MX unchanged, the switch only after the old
/// TTL has passed since the lowering, then the TTL restored; the plan ends empty.
#[tokio::test]
async fn planner_and_adapter_carry_a_migration_through_real_bind() -> Result<()> {
    let primary = Bind::builder()
        .name("dns-loop")
        .zone(zone().txt("@", "v=spf1 ip4:192.0.2.10 -all"))
        .start()?;
    let secondary = Bind::secondary_of(&primary).start()?;
    primary.add_also_notify(secondary.port())?;
    let key = primary.tsig();
    let manifest = format!(
        r#"
domains: [example.com]
source: {{ imap: {{ host: 127.0.0.1, port: 1, tls: none }}, auth: {{ method: password }} }}
destination: {{ imap: {{ host: 127.0.0.1, port: 2, tls: none }}, auth: {{ method: password }} }}
dns:
  zone: example.com
  provider:
    rfc2136:
      server: "{server}"
      tsig: {{ name: {name}, algorithm: {alg}, secret: {{ value: "{secret}" }} }}
  mx: [{{ preference: 10, exchange: {NEW_MX} }}]
  cutoverTTL: 300
  checkNameservers: ["{server}", "{secondary}"]
  spf: {{ old: "ip4:192.0.2.10", new: "ip4:198.51.100.20" }}
cutover: {{ approved: true }}
finalize: {{ deltaSyncAfter: 1h, keepSourceFor: 2h, restoreTTL: 3600 }}
"#,
        server = primary.server(),
        secondary = secondary.server(),
        name = key.name,
        alg = key.algorithm,
        secret = key.secret,
    );
    // Through JSON, as the manifest loader does (serde_yaml wants `!tags` for enums).
    let spec: MailMigrationSpec =
        serde_json::from_value(serde_yaml::from_str::<serde_json::Value>(&manifest)?)?;
    let dns = spec.dns.clone().unwrap();
    let resolver = Resolver::default();

    let mut now: DateTime<Utc> = Utc::now();
    let mut milestones = Milestones::default();
    let mut seen = vec![dig_mx(&primary)?];
    let mut done = Vec::new();
    let mut lowered_at = None;
    for _ in 0..40 {
        // IMAP steps (the delta sync of no mailboxes) are only recorded here.
        let mut world = World::new([Adapter::Dns, Adapter::Imap]);
        world.dns = Some(dns::observe_with(&dns, &spec.domains, FAST).await);
        world.milestones = milestones.clone();
        let p = plan::plan(&spec, &world, now);
        if p.steps.is_empty() {
            break;
        }
        if let Some(s) = p
            .steps
            .iter()
            .find(|s| s.gates.is_empty() && s.execution == Execution::Execute)
        {
            let step = s.step.clone();
            if let Step::Dns(change) = &step {
                dns::apply_with(change, &dns, &resolver, FAST).await?;
                let outside = dig_mx(&primary)?;
                if seen.last() != Some(&outside) {
                    seen.push(outside);
                }
            }
            match &step {
                Step::Dns(DnsChange::LowerTtl { .. }) => lowered_at = Some(now),
                Step::Dns(DnsChange::SwitchMx { .. }) => {
                    // The switch waited the whole old TTL since the lowering.
                    let since = now - lowered_at.expect("lowered first");
                    assert!(since.num_seconds() >= 3600, "switched after {since}");
                }
                _ => {}
            }
            milestones.record(&step, now);
            done.push(step.kind());
            continue;
        }
        // Nothing may run: jump to the earliest time gate, or wait for propagation.
        let gates: Vec<&Gate> = p.steps.iter().flat_map(|s| &s.gates).collect();
        let old_ttl_gate = gates.iter().any(|g| {
            matches!(
                g,
                Gate::Time {
                    reason: TimeReason::OldTtl { old_ttl: 3600, .. },
                    ..
                }
            )
        });
        if old_ttl_gate {
            // While the switch waits for the old TTL, the outside world sees the old MX.
            assert_eq!(dig_mx(&primary)?, ["300 10 mail.old.example.net."]);
        }
        if let Some(at) = gates.iter().filter_map(|g| g.opens_at()).min() {
            now = at;
        } else if gates.iter().any(|g| {
            matches!(
                g,
                Gate::Fact {
                    waiting: Waiting::Propagation { .. },
                    ..
                }
            )
        }) {
            until("the secondary to be notified", || async {
                let state = dns::observe_with(&dns, &spec.domains, FAST).await;
                Ok(state.name("example.com").unwrap().agree().then_some(()))
            })
            .await?;
        } else {
            bail!("stuck: {:#?}", p.steps);
        }
    }
    assert_eq!(
        seen,
        [
            vec!["3600 10 mail.old.example.net.".to_string()],
            vec!["300 10 mail.old.example.net.".to_string()],
            vec!["300 10 mail.new.example.net.".to_string()],
            vec!["3600 10 mail.new.example.net.".to_string()],
        ]
    );
    for kind in [
        "LowerTtl",
        "SpfAuthorize",
        "SwitchMx",
        "SpfRevoke",
        "RestoreTtl",
    ] {
        assert!(done.contains(&kind), "{kind} not done: {done:?}");
    }
    assert_eq!(
        secondary.dig(&["+short", "example.com", "TXT"])?.trim(),
        "\"v=spf1 ip4:198.51.100.20 -all\""
    );
    Ok(())
}
