//! The RFC 2136 adapter against a real Knot DNS 3.2 from the harness: a second server
//! implementation beside BIND (tests/dns.rs). Change MX/TTL/SPF through TSIG-signed
//! UPDATE with compare-and-swap prerequisites, and fail cleanly (zone unchanged, serial
//! unchanged) on a set changed meanwhile or a wrong key.
//!
//! `dig` (the harness's, non-recursive, straight at the server) is the outside observer.
//! Nothing sleeps: Knot serves an update as soon as it has answered it.

mod dns_support;

use anyhow::Result;
use dns_support as cases;
use dns_support::*;
use mailshift::dns::Applied;
use mailshift::plan::DnsChange;
use mailshift_harness::Knot;
use mailshift_harness::Nameserver as _;

/// `spec.dns` for the zone on `knot`, checking `knot` itself.
fn knot_spec(knot: &Knot) -> mailshift::spec::Dns {
    dns_spec(knot, knot.tsig(), &[knot.server()])
}

#[tokio::test]
async fn knot_ttl_lowered_targets_unchanged_then_switched_then_restored() -> Result<()> {
    let knot = Knot::builder().name("knot-steps").zone(zone()).start()?;
    cases::ttl_lowered_targets_unchanged_then_switched_then_restored(&knot).await
}

#[tokio::test]
async fn knot_compare_and_swap_refuses_to_overwrite_a_change_made_meanwhile() -> Result<()> {
    let knot = Knot::builder().name("knot-cas").zone(zone()).start()?;
    cases::compare_and_swap_refuses_to_overwrite_a_change_made_meanwhile(&knot).await
}

#[tokio::test]
async fn knot_refuses_a_wrong_key_with_the_zone_unchanged() -> Result<()> {
    let knot = Knot::builder().name("knot-badkey").zone(zone()).start()?;
    cases::a_wrong_key_is_refused_with_the_zone_unchanged(&knot).await
}

#[tokio::test]
async fn knot_every_tsig_algorithm_signs_updates_and_verifies_answers() -> Result<()> {
    cases::every_tsig_algorithm_signs_updates_and_verifies_answers(|name| {
        Knot::builder()
            .name(&format!("knot-{name}"))
            .zone(zone())
            .tsig_algorithm(name)
            .start()
    })
    .await
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
    let mut dns = knot_spec(&knot);
    dns.spf = Some(mailshift::spec::Spf {
        old: "ip4:192.0.2.10".into(),
        new: "ip4:198.51.100.20".into(),
    });
    let serial = knot.serial("example.com")?;
    let authorize = DnsChange::SpfAuthorize {
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

    let revoke = DnsChange::SpfRevoke {
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
async fn knot_frozen_is_unreachable_and_nothing_changes() -> Result<()> {
    let knot = Knot::builder().name("knot-frozen").zone(zone()).start()?;
    let dns = knot_spec(&knot);
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
    let mut dns = knot_spec(&knot);
    dns.zone = "example.org".into();
    let step = DnsChange::SwitchMx {
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
