//! What the RFC 2136 tests share, whichever server they run against (BIND in dns.rs, Knot
//! in dns_knot.rs): the spec, the steps, the outside observer (`dig`), and the cases that
//! must hold on every server.
#![allow(dead_code)]

use mailshift::plan::DnsChange;
use std::time::Duration;

use anyhow::Result;
use mailshift::dns::{self, Applied, DnsError, Timeouts};
use mailshift::plan::{Answer, DnsState, Records};
use mailshift::secrets::Resolver;
use mailshift::spec::{Dns, DnsProvider, MxRecord, Rfc2136, SecretRef, Tsig, TsigAlgorithm};
use mailshift_harness::{Nameserver, TsigKey, Zone};

pub const OLD_MX: &str = "mail.old.example.net.";
pub const NEW_MX: &str = "mail.new.example.net.";
/// Long enough for a loaded machine, short enough that the failure tests stay fast.
pub const FAST: Timeouts = Timeouts {
    query: Duration::from_secs(1),
    query_tries: 2,
    update: Duration::from_secs(3),
};

pub fn zone() -> Zone {
    Zone::new("example.com")
        .mx(10, OLD_MX, 3600)
        .a("www", "192.0.2.80")
}

pub fn mx(preference: u16, exchange: &str) -> MxRecord {
    MxRecord {
        preference,
        exchange: exchange.into(),
    }
}

pub fn algorithm(name: &str) -> TsigAlgorithm {
    serde_json::from_value(serde_json::Value::String(name.into())).unwrap()
}

/// The RFC 2136 section of `dns`.
pub fn rfc2136(dns: &mut Dns) -> &mut Rfc2136 {
    match &mut dns.provider {
        DnsProvider::Rfc2136(r) => r,
        other => panic!("not RFC 2136: {}", other.kind()),
    }
}

/// `spec.dns` for a zone on `primary`, checking `nameservers`.
pub fn dns_spec(primary: &impl Nameserver, key: &TsigKey, nameservers: &[String]) -> Dns {
    Dns {
        zone: "example.com".into(),
        provider: DnsProvider::Rfc2136(Rfc2136 {
            server: primary.server(),
            tsig: Tsig {
                name: key.name.clone(),
                algorithm: algorithm(&key.algorithm),
                secret: SecretRef::Value(key.secret.clone()),
            },
        }),
        mx: vec![mx(10, NEW_MX)],
        cutover_ttl: 300,
        check_nameservers: nameservers.to_vec(),
        spf: None,
        srv: None,
        already_lowered: None,
    }
}

pub fn domains() -> Vec<String> {
    vec!["example.com".into()]
}

pub async fn observe(dns: &Dns) -> DnsState {
    dns::observe_with(dns, &domains(), FAST).await
}

pub async fn apply(change: &DnsChange, dns: &Dns) -> Result<Applied, DnsError> {
    dns::apply_with(change, dns, &Resolver::default(), FAST).await
}

pub fn primary_records(state: &DnsState) -> Records {
    match &state.name("example.com").expect("observed").primary {
        Answer::Records(r) => r.clone(),
        Answer::Error { reason } => panic!("primary not readable: {reason}"),
    }
}

/// The MX answer as an outside observer sees it: `TTL PREF HOST` lines, sorted.
pub fn dig_mx(ns: &impl Nameserver) -> Result<Vec<String>> {
    let out = ns.dig(&["+noall", "+answer", "example.com", "MX"])?;
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

pub fn lower(from_ttl: Option<u32>) -> DnsChange {
    DnsChange::LowerTtl {
        zone: "example.com".into(),
        name: "example.com".into(),
        from_ttl,
        to_ttl: 300,
    }
}

pub fn switch(from: Option<Vec<MxRecord>>) -> DnsChange {
    DnsChange::SwitchMx {
        zone: "example.com".into(),
        name: "example.com".into(),
        from,
        to: vec![mx(10, NEW_MX)],
        ttl: 300,
    }
}

/// The TXT strings at the apex, sorted.
pub fn dig_txt(ns: &impl Nameserver) -> Result<Vec<String>> {
    let mut txt: Vec<String> = ns
        .dig(&["+short", "example.com", "TXT"])?
        .lines()
        .map(str::to_owned)
        .collect();
    txt.sort();
    Ok(txt)
}

/// Lower the TTL (targets unchanged), switch, restore; each once.
pub async fn ttl_lowered_targets_unchanged_then_switched_then_restored(
    bind: &impl Nameserver,
) -> Result<()> {
    let dns = dns_spec(bind, bind.tsig(), &[bind.server()]);

    let before = observe(&dns).await;
    let r = primary_records(&before);
    assert_eq!((r.mx.clone(), r.ttl), (vec![mx(10, OLD_MX)], 3600));
    assert!(before.name("example.com").unwrap().agree());
    assert_eq!(dig_mx(bind)?, ["3600 10 mail.old.example.net."]);
    let serial = bind.serial("example.com")?;

    // Lower: same targets, TTL 300; one UPDATE, one new serial.
    assert_eq!(apply(&lower(Some(3600)), &dns).await?, Applied::Updated);
    assert_eq!(dig_mx(bind)?, ["300 10 mail.old.example.net."]);
    assert_eq!(bind.serial("example.com")?, serial + 1);
    let r = primary_records(&observe(&dns).await);
    assert_eq!((r.mx.clone(), r.ttl), (vec![mx(10, OLD_MX)], 300));
    // Again: nothing left to do, nothing sent.
    assert_eq!(apply(&lower(Some(3600)), &dns).await?, Applied::AlreadyDone);
    // Lowering never raises a TTL.
    let raise = DnsChange::LowerTtl {
        zone: "example.com".into(),
        name: "example.com".into(),
        from_ttl: None,
        to_ttl: 600,
    };
    assert_eq!(apply(&raise, &dns).await?, Applied::AlreadyDone);
    assert_eq!(bind.serial("example.com")?, serial + 1);

    // Switch against the set it was planned against.
    assert_eq!(
        apply(&switch(Some(r.mx.clone())), &dns).await?,
        Applied::Updated
    );
    assert_eq!(dig_mx(bind)?, ["300 10 mail.new.example.net."]);
    let r = primary_records(&observe(&dns).await);
    assert_eq!((r.mx.clone(), r.ttl), (vec![mx(10, NEW_MX)], 300));

    // Restore the long TTL.
    let restore = DnsChange::RestoreTtl {
        zone: "example.com".into(),
        name: "example.com".into(),
        ttl: 3600,
    };
    assert_eq!(apply(&restore, &dns).await?, Applied::Updated);
    assert_eq!(dig_mx(bind)?, ["3600 10 mail.new.example.net."]);
    assert_eq!(bind.serial("example.com")?, serial + 3);
    // Other records were never touched.
    assert_eq!(
        bind.dig(&["+short", "www.example.com", "A"])?.trim(),
        "192.0.2.80"
    );
    Ok(())
}

/// A set changed between plan and apply is not overwritten.
pub async fn compare_and_swap_refuses_to_overwrite_a_change_made_meanwhile(
    bind: &impl Nameserver,
) -> Result<()> {
    let dns = dns_spec(bind, bind.tsig(), &[bind.server()]);
    let planned = primary_records(&observe(&dns).await);

    // Someone else changes the MX set between plan and apply.
    bind.nsupdate(
        "zone example.com\nupdate delete example.com. MX\nupdate add example.com. 3600 MX 5 someone.example.org.\n",
    )?;
    let serial = bind.serial("example.com")?;

    let err = apply(&switch(Some(planned.mx.clone())), &dns)
        .await
        .unwrap_err();
    assert_eq!(err.reason(), "ZoneChanged", "{err}");
    assert!(err.replan());
    let msg = err.to_string();
    for part in [
        bind.server().as_str(),
        "MX example.com",
        "10 mail.old.example.net.",
        "5 someone.example.org.",
        "nothing was written",
    ] {
        assert!(msg.contains(part), "{part:?} missing in: {msg}");
    }
    assert_eq!(dig_mx(bind)?, ["3600 5 someone.example.org."]);
    assert_eq!(bind.serial("example.com")?, serial);

    // A TTL changed meanwhile (same hosts) is caught against `from_ttl`.
    bind.nsupdate(
        "zone example.com\nupdate delete example.com. MX\nupdate add example.com. 7200 MX 5 someone.example.org.\n",
    )?;
    let err = apply(&lower(Some(3600)), &dns).await.unwrap_err();
    assert_eq!(err.reason(), "ZoneChanged", "{err}");
    assert!(err.to_string().contains("TTL 7200"), "{err}");
    assert_eq!(dig_mx(bind)?, ["7200 5 someone.example.org."]);

    // Planned against "no MX at all": refused while one exists.
    let err = apply(&switch(Some(vec![])), &dns).await.unwrap_err();
    assert_eq!(err.reason(), "ZoneChanged", "{err}");
    assert_eq!(dig_mx(bind)?, ["7200 5 someone.example.org."]);
    Ok(())
}

/// A wrong secret or key name is refused, nothing written, the secret never shown.
pub async fn a_wrong_key_is_refused_with_the_zone_unchanged(bind: &impl Nameserver) -> Result<()> {
    let serial = bind.serial("example.com")?;
    let wrong_secret = TsigKey {
        secret: mailshift_harness::base64(&[7u8; 32]),
        ..bind.tsig().clone()
    };
    let unknown_name = TsigKey {
        name: "nobody-key".into(),
        ..bind.tsig().clone()
    };
    for (key, code) in [(&wrong_secret, "BADSIG"), (&unknown_name, "BADKEY")] {
        let dns = dns_spec(bind, key, &[bind.server()]);
        let err = apply(&switch(Some(vec![mx(10, OLD_MX)])), &dns)
            .await
            .unwrap_err();
        assert_eq!(err.reason(), "TsigRejected", "{err}");
        let msg = err.to_string();
        for part in [bind.server().as_str(), "MX example.com", &key.name, code] {
            assert!(msg.contains(part), "{part:?} missing in: {msg}");
        }
        // The secret never shows.
        assert!(!msg.contains(&key.secret), "{msg}");
    }
    assert_eq!(dig_mx(bind)?, ["3600 10 mail.old.example.net."]);
    assert_eq!(bind.serial("example.com")?, serial);

    // An unusable secret fails before anything is sent.
    let mut dns = dns_spec(bind, bind.tsig(), &[bind.server()]);
    rfc2136(&mut dns).tsig.secret = SecretRef::Value("not base64!".into());
    let err = apply(&lower(Some(3600)), &dns).await.unwrap_err();
    assert_eq!(err.reason(), "TsigKeyInvalid", "{err}");
    rfc2136(&mut dns).tsig.secret = SecretRef::Env("MAILSHIFT_TEST_NO_SUCH_VARIABLE".into());
    let err = apply(&lower(Some(3600)), &dns).await.unwrap_err();
    assert_eq!(err.reason(), "SecretUnavailable", "{err}");
    assert!(err.to_string().contains("MAILSHIFT_TEST_NO_SUCH_VARIABLE"));
    assert_eq!(bind.serial("example.com")?, serial);
    Ok(())
}

/// Every HMAC signs updates and verifies answers: `start` gives a server using it.
pub async fn every_tsig_algorithm_signs_updates_and_verifies_answers<S: Nameserver>(
    start: impl Fn(&str) -> Result<S>,
) -> Result<()> {
    for name in [
        "hmac-sha1",
        "hmac-sha224",
        "hmac-sha256",
        "hmac-sha384",
        "hmac-sha512",
    ] {
        let bind = start(name)?;
        let dns = dns_spec(&bind, bind.tsig(), &[bind.server()]);
        assert_eq!(
            apply(&lower(Some(3600)), &dns)
                .await
                .map_err(anyhow::Error::from)?,
            Applied::Updated,
            "{name}"
        );
        assert_eq!(dig_mx(&bind)?, ["300 10 mail.old.example.net."], "{name}");
    }
    Ok(())
}
