//! The RFC 2136 adapter against a real Knot DNS 3.2 from the harness: a second server
//! implementation beside BIND (tests/dns.rs). Change MX/TTL/SPF through TSIG-signed
//! UPDATE with compare-and-swap prerequisites, and fail cleanly (zone unchanged, serial
//! unchanged) on a set changed meanwhile or a wrong key.
//!
//! `dig` (the harness's, non-recursive, straight at the server) is the outside observer.
//! Nothing sleeps: Knot serves an update as soon as it has answered it.

use std::time::Duration;

use anyhow::Result;
use mailshift::dns::{self, Applied, DnsError, Timeouts};
use mailshift::plan::{Answer, DnsState, Records, Step};
use mailshift::secrets::Resolver;
use mailshift::spec::{Dns, DnsProvider, MxRecord, Rfc2136, SecretRef, Tsig, TsigAlgorithm};
use mailshift_harness::{Knot, TsigKey, Zone};

const OLD_MX: &str = "mail.old.example.net.";
const NEW_MX: &str = "mail.new.example.net.";
/// Long enough for a loaded machine, short enough that the failure tests stay fast.
const FAST: Timeouts = Timeouts {
    query: Duration::from_secs(1),
    query_tries: 2,
    update: Duration::from_secs(3),
};

fn zone() -> Zone {
    Zone::new("example.com")
        .mx(10, OLD_MX, 3600)
        .a("www", "192.0.2.80")
}

fn mx(preference: u16, exchange: &str) -> MxRecord {
    MxRecord {
        preference,
        exchange: exchange.into(),
    }
}

fn algorithm(name: &str) -> TsigAlgorithm {
    serde_json::from_value(serde_json::Value::String(name.into())).unwrap()
}

/// `spec.dns` for the zone on `knot`, signed with `key`, checking `knot` itself.
fn dns_spec(knot: &Knot, key: &TsigKey) -> Dns {
    Dns {
        zone: "example.com".into(),
        provider: DnsProvider::Rfc2136(Rfc2136 {
            server: knot.server(),
            tsig: Tsig {
                name: key.name.clone(),
                algorithm: algorithm(&key.algorithm),
                secret: SecretRef::Value(key.secret.clone()),
            },
        }),
        mx: vec![mx(10, NEW_MX)],
        cutover_ttl: 300,
        check_nameservers: vec![knot.server()],
        spf: None,
        srv: None,
        already_lowered: None,
    }
}

async fn observe(dns: &Dns) -> DnsState {
    dns::observe_with(dns, &["example.com".into()], FAST).await
}

async fn apply(step: &Step, dns: &Dns) -> Result<Applied, DnsError> {
    dns::apply_with(step, dns, &Resolver::default(), FAST).await
}

fn primary_records(state: &DnsState) -> Records {
    match &state.name("example.com").expect("observed").primary {
        Answer::Records(r) => r.clone(),
        Answer::Error { reason } => panic!("primary not readable: {reason}"),
    }
}

/// The MX answer as an outside observer sees it: `TTL PREF HOST` lines, sorted.
fn dig_mx(knot: &Knot) -> Result<Vec<String>> {
    let out = knot.dig(&["+noall", "+answer", "example.com", "MX"])?;
    let mut lines: Vec<String> = out
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            format!("{} {} {}", f[1], f[4], f[5])
        })
        .collect();
    lines.sort();
    Ok(lines)
}

/// The TXT strings at the apex, sorted.
fn dig_txt(knot: &Knot) -> Result<Vec<String>> {
    let mut txt: Vec<String> = knot
        .dig(&["+short", "example.com", "TXT"])?
        .lines()
        .map(str::to_owned)
        .collect();
    txt.sort();
    Ok(txt)
}

fn lower(from_ttl: Option<u32>) -> Step {
    Step::LowerTtl {
        zone: "example.com".into(),
        name: "example.com".into(),
        from_ttl,
        to_ttl: 300,
    }
}

fn switch(from: Option<Vec<MxRecord>>) -> Step {
    Step::SwitchMx {
        zone: "example.com".into(),
        name: "example.com".into(),
        from,
        to: vec![mx(10, NEW_MX)],
        ttl: 300,
    }
}

#[tokio::test]
async fn knot_ttl_lowered_targets_unchanged_then_switched_then_restored() -> Result<()> {
    let knot = Knot::builder().name("knot-steps").zone(zone()).start()?;
    let dns = dns_spec(&knot, knot.tsig());

    let before = observe(&dns).await;
    let r = primary_records(&before);
    assert_eq!((r.mx.clone(), r.ttl), (vec![mx(10, OLD_MX)], 3600));
    assert!(before.name("example.com").unwrap().agree());
    assert_eq!(dig_mx(&knot)?, ["3600 10 mail.old.example.net."]);
    let serial = knot.serial("example.com")?;

    // Lower: same targets, TTL 300; one UPDATE, one new serial.
    assert_eq!(apply(&lower(Some(3600)), &dns).await?, Applied::Updated);
    assert_eq!(
        dig_mx(&knot)?,
        ["300 10 mail.old.example.net."],
        "{}",
        knot.log_tail()
    );
    assert_eq!(knot.serial("example.com")?, serial + 1);
    let r = primary_records(&observe(&dns).await);
    assert_eq!((r.mx.clone(), r.ttl), (vec![mx(10, OLD_MX)], 300));
    // Again: nothing left to do, nothing sent.
    assert_eq!(apply(&lower(Some(3600)), &dns).await?, Applied::AlreadyDone);
    // Lowering never raises a TTL.
    let raise = Step::LowerTtl {
        zone: "example.com".into(),
        name: "example.com".into(),
        from_ttl: None,
        to_ttl: 600,
    };
    assert_eq!(apply(&raise, &dns).await?, Applied::AlreadyDone);
    assert_eq!(knot.serial("example.com")?, serial + 1);

    // Switch against the set it was planned against.
    assert_eq!(
        apply(&switch(Some(r.mx.clone())), &dns).await?,
        Applied::Updated
    );
    assert_eq!(dig_mx(&knot)?, ["300 10 mail.new.example.net."]);
    let r = primary_records(&observe(&dns).await);
    assert_eq!((r.mx.clone(), r.ttl), (vec![mx(10, NEW_MX)], 300));

    // Restore the long TTL.
    let restore = Step::RestoreTtl {
        zone: "example.com".into(),
        name: "example.com".into(),
        ttl: 3600,
    };
    assert_eq!(apply(&restore, &dns).await?, Applied::Updated);
    assert_eq!(dig_mx(&knot)?, ["3600 10 mail.new.example.net."]);
    assert_eq!(knot.serial("example.com")?, serial + 3);
    // Other records were never touched.
    assert_eq!(
        knot.dig(&["+short", "www.example.com", "A"])?.trim(),
        "192.0.2.80"
    );
    Ok(())
}

#[tokio::test]
async fn knot_compare_and_swap_refuses_to_overwrite_a_change_made_meanwhile() -> Result<()> {
    let knot = Knot::builder().name("knot-cas").zone(zone()).start()?;
    let dns = dns_spec(&knot, knot.tsig());
    let planned = primary_records(&observe(&dns).await);

    // Someone else changes the MX set between plan and apply.
    knot.nsupdate(
        "zone example.com\nupdate delete example.com. MX\nupdate add example.com. 3600 MX 5 someone.example.org.\n",
    )?;
    assert_eq!(dig_mx(&knot)?, ["3600 5 someone.example.org."]);
    let serial = knot.serial("example.com")?;

    let err = apply(&switch(Some(planned.mx.clone())), &dns)
        .await
        .unwrap_err();
    assert_eq!(err.reason(), "ZoneChanged", "{err}");
    assert!(err.replan());
    let msg = err.to_string();
    for part in [
        knot.server().as_str(),
        "MX example.com",
        "10 mail.old.example.net.",
        "5 someone.example.org.",
        "nothing was written",
    ] {
        assert!(msg.contains(part), "{part:?} missing in: {msg}");
    }
    assert_eq!(dig_mx(&knot)?, ["3600 5 someone.example.org."]);
    assert_eq!(knot.serial("example.com")?, serial);

    // A TTL changed meanwhile (same hosts) is caught against `from_ttl`.
    knot.nsupdate(
        "zone example.com\nupdate delete example.com. MX\nupdate add example.com. 7200 MX 5 someone.example.org.\n",
    )?;
    assert_eq!(dig_mx(&knot)?, ["7200 5 someone.example.org."]);
    let serial = knot.serial("example.com")?;
    let err = apply(&lower(Some(3600)), &dns).await.unwrap_err();
    assert_eq!(err.reason(), "ZoneChanged", "{err}");
    assert!(err.to_string().contains("TTL 7200"), "{err}");
    assert_eq!(dig_mx(&knot)?, ["7200 5 someone.example.org."]);

    // Planned against "no MX at all": refused while one exists.
    let err = apply(&switch(Some(vec![])), &dns).await.unwrap_err();
    assert_eq!(err.reason(), "ZoneChanged", "{err}");
    assert_eq!(dig_mx(&knot)?, ["7200 5 someone.example.org."]);
    assert_eq!(knot.serial("example.com")?, serial);
    Ok(())
}

#[tokio::test]
async fn knot_refuses_a_wrong_key_with_the_zone_unchanged() -> Result<()> {
    let knot = Knot::builder().name("knot-badkey").zone(zone()).start()?;
    let serial = knot.serial("example.com")?;
    let wrong_secret = TsigKey {
        secret: mailshift_harness::base64(&[7u8; 32]),
        ..knot.tsig().clone()
    };
    let unknown_name = TsigKey {
        name: "nobody-key".into(),
        ..knot.tsig().clone()
    };
    for (key, code) in [(&wrong_secret, "BADSIG"), (&unknown_name, "BADKEY")] {
        let dns = dns_spec(&knot, key);
        let err = apply(&switch(Some(vec![mx(10, OLD_MX)])), &dns)
            .await
            .unwrap_err();
        assert_eq!(err.reason(), "TsigRejected", "{err}");
        let msg = err.to_string();
        for part in [knot.server().as_str(), "MX example.com", &key.name, code] {
            assert!(msg.contains(part), "{part:?} missing in: {msg}");
        }
        // The secret never shows.
        assert!(!msg.contains(&key.secret), "{msg}");
    }
    assert_eq!(dig_mx(&knot)?, ["3600 10 mail.old.example.net."]);
    assert_eq!(knot.serial("example.com")?, serial);

    // The right key still works afterwards.
    let dns = dns_spec(&knot, knot.tsig());
    assert_eq!(apply(&lower(Some(3600)), &dns).await?, Applied::Updated);
    assert_eq!(knot.serial("example.com")?, serial + 1);
    Ok(())
}

#[tokio::test]
async fn knot_spf_authorize_keeps_other_txt_records() -> Result<()> {
    let knot = Knot::builder()
        .name("knot-spf")
        .zone(
            zone()
                .txt("@", "v=spf1 ip4:192.0.2.10 -all")
                .txt("@", "google-site-verification=abc123"),
        )
        .start()?;
    let mut dns = dns_spec(&knot, knot.tsig());
    dns.spf = Some(mailshift::spec::Spf {
        old: "ip4:192.0.2.10".into(),
        new: "ip4:198.51.100.20".into(),
    });
    let serial = knot.serial("example.com")?;
    let authorize = Step::SpfAuthorize {
        zone: "example.com".into(),
        name: "example.com".into(),
        mechanisms: vec!["ip4:198.51.100.20".into()],
    };
    assert_eq!(apply(&authorize, &dns).await?, Applied::Updated);
    assert_eq!(
        dig_txt(&knot)?,
        [
            "\"google-site-verification=abc123\"",
            "\"v=spf1 ip4:192.0.2.10 ip4:198.51.100.20 -all\""
        ]
    );
    assert_eq!(
        primary_records(&observe(&dns).await).spf.as_deref(),
        Some("v=spf1 ip4:192.0.2.10 ip4:198.51.100.20 -all")
    );
    assert_eq!(knot.serial("example.com")?, serial + 1);
    assert_eq!(apply(&authorize, &dns).await?, Applied::AlreadyDone);
    assert_eq!(knot.serial("example.com")?, serial + 1);

    let revoke = Step::SpfRevoke {
        zone: "example.com".into(),
        name: "example.com".into(),
        mechanisms: vec!["ip4:192.0.2.10".into()],
    };
    assert_eq!(apply(&revoke, &dns).await?, Applied::Updated);
    assert_eq!(
        dig_txt(&knot)?,
        [
            "\"google-site-verification=abc123\"",
            "\"v=spf1 ip4:198.51.100.20 -all\""
        ]
    );
    // The MX was never touched.
    assert_eq!(dig_mx(&knot)?, ["3600 10 mail.old.example.net."]);
    Ok(())
}

#[tokio::test]
async fn knot_every_tsig_algorithm_signs_updates_and_verifies_answers() -> Result<()> {
    for name in [
        "hmac-sha1",
        "hmac-sha224",
        "hmac-sha256",
        "hmac-sha384",
        "hmac-sha512",
    ] {
        let knot = Knot::builder()
            .name(&format!("knot-{name}"))
            .zone(zone())
            .tsig_algorithm(name)
            .start()?;
        let dns = dns_spec(&knot, knot.tsig());
        assert_eq!(
            apply(&lower(Some(3600)), &dns)
                .await
                .map_err(anyhow::Error::from)?,
            Applied::Updated,
            "{name}"
        );
        assert_eq!(dig_mx(&knot)?, ["300 10 mail.old.example.net."], "{name}");
    }
    Ok(())
}

#[tokio::test]
async fn knot_frozen_is_unreachable_and_nothing_changes() -> Result<()> {
    let knot = Knot::builder().name("knot-frozen").zone(zone()).start()?;
    let dns = dns_spec(&knot, knot.tsig());
    let serial = knot.serial("example.com")?;
    knot.pause()?;
    let result = apply(&lower(Some(3600)), &dns).await;
    knot.resume()?;
    let err = result.unwrap_err();
    assert_eq!(err.reason(), "ServerUnreachable", "{err}");
    assert!(err.to_string().contains("no answer within"), "{err}");
    assert_eq!(dig_mx(&knot)?, ["3600 10 mail.old.example.net."]);
    assert_eq!(knot.serial("example.com")?, serial);
    Ok(())
}

/// Knot answers an update for a zone it does not serve with an *unsigned* NOTAUTH (no TSIG
/// record at all), where BIND signs its NOTAUTH: RFC 2136's "not authoritative", not a key
/// refused (that comes with a TSIG error code). Nothing is written and the error names the
/// server and the record.
#[tokio::test]
async fn knot_refuses_an_update_for_a_zone_it_does_not_serve() -> Result<()> {
    let knot = Knot::builder().name("knot-notzone").zone(zone()).start()?;
    let serial = knot.serial("example.com")?;
    let mut dns = dns_spec(&knot, knot.tsig());
    dns.zone = "example.org".into();
    let step = Step::SwitchMx {
        zone: "example.org".into(),
        name: "example.org".into(),
        from: Some(vec![]),
        to: vec![mx(10, NEW_MX)],
        ttl: 300,
    };
    let err = apply(&step, &dns).await.unwrap_err();
    assert_eq!(err.reason(), "NotAuthoritative", "{err}");
    let msg = err.to_string();
    for part in [knot.server().as_str(), "MX example.org", "NOTAUTH"] {
        assert!(msg.contains(part), "{part:?} missing in: {msg}");
    }
    assert_eq!(knot.serial("example.com")?, serial);
    assert_eq!(dig_mx(&knot)?, ["3600 10 mail.old.example.net."]);
    Ok(())
}
