//! The DNS adapter against DNS hosts' HTTP APIs, through real servers: PowerDNS 4.7's API
//! (records served on its DNS port as well) and moto's Route 53 emulation (an API only, no
//! DNS: moto stands in for AWS, which cannot run here).

use mailshift::plan::DnsChange;
use std::time::Duration;

use anyhow::Result;
use mailshift::dns::{self, Applied, DnsError, Timeouts};
use mailshift::plan::Answer;
use mailshift::secrets::Resolver;
use mailshift::spec::{Dns, DnsProvider, MxRecord, Powerdns, Route53, SecretRef, Spf};
use mailshift_harness::http_front::{HttpFront, Verdict};
use mailshift_harness::{Moto, PowerDns};

const OLD_MX: &str = "mail.old.example.net.";
const NEW_MX: &str = "mail.new.example.net.";
const FAST: Timeouts = Timeouts {
    query: Duration::from_secs(1),
    query_tries: 2,
    update: Duration::from_secs(10),
};

fn mx(preference: u16, exchange: &str) -> MxRecord {
    MxRecord {
        preference,
        exchange: exchange.into(),
    }
}

fn spec(provider: DnsProvider, nameservers: Vec<String>) -> Dns {
    Dns {
        zone: "example.com".into(),
        provider,
        mx: vec![mx(10, NEW_MX)],
        cutover_ttl: 300,
        check_nameservers: nameservers,
        spf: Some(Spf {
            old: "ip4:192.0.2.1".into(),
            new: "include:spf.new.example.net".into(),
        }),
        srv: None,
        already_lowered: None,
    }
}

fn powerdns(pdns: &PowerDns, key: &str) -> Dns {
    spec(
        DnsProvider::Powerdns(Powerdns {
            url: pdns.api_url(),
            api_key: SecretRef::Value(key.into()),
            server_id: None,
        }),
        vec![format!("127.0.0.1:{}", pdns.dns_port())],
    )
}

async fn apply(change: &DnsChange, dns: &Dns) -> Result<Applied, DnsError> {
    dns::apply_with(change, dns, &Resolver::default(), FAST).await
}

fn lower() -> DnsChange {
    DnsChange::LowerTtl {
        zone: "example.com".into(),
        name: "example.com".into(),
        from_ttl: Some(3600),
        to_ttl: 300,
    }
}

fn switch(from: &str) -> DnsChange {
    DnsChange::SwitchMx {
        zone: "example.com".into(),
        name: "example.com".into(),
        from: Some(vec![mx(10, from)]),
        to: vec![mx(10, NEW_MX)],
        ttl: 300,
    }
}

fn authorize() -> DnsChange {
    DnsChange::SpfAuthorize {
        zone: "example.com".into(),
        name: "example.com".into(),
        mechanisms: vec!["include:spf.new.example.net".into()],
    }
}

#[tokio::test]
async fn powerdns_api_lowers_switches_and_authorizes_with_checks() -> Result<()> {
    let pdns = PowerDns::start("providers")?;
    pdns.create_zone(
        "example.com",
        &[
            ("example.com.", "MX", 3600, &["10 mail.old.example.net."]),
            (
                "example.com.",
                "TXT",
                3600,
                &[
                    "\"v=spf1 ip4:192.0.2.1 -all\"",
                    "\"google-site-verification=x\"",
                ],
            ),
        ],
    )?;
    let dns = powerdns(&pdns, pdns.api_key());

    // Observed where resolvers read it: the nameserver, TTLs included.
    let seen = dns::observe_with(&dns, &["example.com".into()], FAST).await;
    let Answer::Records(r) = &seen.name("example.com").unwrap().primary else {
        panic!("{seen:?}")
    };
    assert_eq!((r.ttl, r.mx.clone()), (3600, vec![mx(10, OLD_MX)]));

    // A wrong API key is refused at once and changes nothing.
    let wrong = powerdns(&pdns, "not-the-key");
    let err = apply(&lower(), &wrong).await.unwrap_err();
    assert_eq!(err.reason(), "CredentialsRejected", "{err}");
    assert!(!err.to_string().contains("not-the-key"), "{err}");
    assert_eq!(pdns.records("example.com", "example.com.", "MX")?.0, 3600);

    // Lower the TTL (targets unchanged), then again: nothing to do.
    assert_eq!(apply(&lower(), &dns).await?, Applied::Updated);
    assert_eq!(
        pdns.records("example.com", "example.com.", "MX")?,
        (300, vec![format!("10 {OLD_MX}")])
    );
    assert_eq!(apply(&lower(), &dns).await?, Applied::AlreadyDone);

    // SPF: the new server authorized, the other TXT record kept.
    assert_eq!(apply(&authorize(), &dns).await?, Applied::Updated);
    let (_, txt) = pdns.records("example.com", "example.com.", "TXT")?;
    assert!(
        txt.iter().any(|t| t.contains("google-site-verification")),
        "{txt:?}"
    );
    assert!(
        txt.iter()
            .any(|t| t.contains("ip4:192.0.2.1") && t.contains("include:spf.new.example.net")),
        "{txt:?}"
    );

    // Changed by someone else since it was planned: refused, nothing written.
    pdns.set_records(
        "example.com",
        "example.com.",
        "MX",
        300,
        &["20 mail.other.example.net."],
    )?;
    let err = apply(&switch(OLD_MX), &dns).await.unwrap_err();
    assert_eq!(err.reason(), "ZoneChanged", "{err}");
    assert!(err.to_string().contains("mail.other.example.net"), "{err}");
    assert_eq!(
        pdns.records("example.com", "example.com.", "MX")?.1,
        ["20 mail.other.example.net."]
    );

    // Planned against what is there: switched, and served so on the DNS port.
    pdns.set_records(
        "example.com",
        "example.com.",
        "MX",
        300,
        &["10 mail.old.example.net."],
    )?;
    assert_eq!(apply(&switch(OLD_MX), &dns).await?, Applied::Updated);
    assert_eq!(
        pdns.records("example.com", "example.com.", "MX")?,
        (300, vec![format!("10 {NEW_MX}")])
    );
    let seen = dns::observe_with(&dns, &["example.com".into()], FAST).await;
    let Answer::Records(r) = &seen.name("example.com").unwrap().primary else {
        panic!("{seen:?}")
    };
    assert_eq!(r.mx, [mx(10, NEW_MX)]);

    // A zone the provider does not hold for these credentials, and a name outside the zone.
    let mut elsewhere = powerdns(&pdns, pdns.api_key());
    elsewhere.zone = "example.org".into();
    let step = DnsChange::SwitchMx {
        zone: "example.org".into(),
        name: "example.org".into(),
        from: Some(vec![]),
        to: vec![mx(10, NEW_MX)],
        ttl: 300,
    };
    let err = apply(&step, &elsewhere).await.unwrap_err();
    assert!(
        matches!(err.reason(), "UpdateRefused" | "UpdateFailed"),
        "{}: {err}",
        err.reason()
    );
    assert!(err.to_string().contains("MX example.org"), "{err}");
    let outside = DnsChange::SwitchMx {
        zone: "example.com".into(),
        name: "example.org".into(),
        from: Some(vec![]),
        to: vec![mx(10, NEW_MX)],
        ttl: 300,
    };
    let err = apply(&outside, &dns).await.unwrap_err();
    assert_eq!(err.reason(), "NotInZone", "{err}");
    assert_eq!(
        pdns.records("example.com", "example.com.", "MX")?.1,
        [format!("10 {NEW_MX}")]
    );
    Ok(())
}

#[tokio::test]
async fn route53_api_switches_mx_and_refuses_a_set_changed_meanwhile() -> Result<()> {
    let moto = Moto::start()?;
    let zone = moto.create_hosted_zone("example.com")?;
    moto.set_records(
        &zone,
        "example.com.",
        "MX",
        3600,
        &["10 mail.old.example.net."],
    )?;
    let dns = spec(
        DnsProvider::Route53(Route53 {
            hosted_zone_id: Some(zone.clone()),
            region: Some(moto.region().into()),
            access_key_id: SecretRef::Value(moto.access_key_id().into()),
            secret_access_key: SecretRef::Value(moto.secret_access_key().into()),
            session_token: None,
            endpoint: Some(moto.endpoint()),
        }),
        Vec::new(),
    );
    let err = apply(&switch("mail.elsewhere.example.net."), &dns)
        .await
        .unwrap_err();
    assert_eq!(err.reason(), "ZoneChanged", "{err}");
    assert_eq!(
        moto.records(&zone, "example.com.", "MX")?,
        (3600, vec![format!("10 {OLD_MX}")])
    );
    assert_eq!(apply(&switch(OLD_MX), &dns).await?, Applied::Updated);
    assert_eq!(
        moto.records(&zone, "example.com.", "MX")?,
        (300, vec![format!("10 {NEW_MX}")])
    );
    // Without a nameserver there is no TTL to read: said, not guessed.
    let err = apply(&lower(), &dns).await.unwrap_err();
    assert!(err.to_string().contains("checkNameservers"), "{err}");
    Ok(())
}

fn route53(moto: &Moto, zone: &str, endpoint: String) -> Dns {
    spec(
        DnsProvider::Route53(Route53 {
            hosted_zone_id: Some(zone.into()),
            region: Some(moto.region().into()),
            access_key_id: SecretRef::Value(moto.access_key_id().into()),
            secret_access_key: SecretRef::Value(moto.secret_access_key().into()),
            session_token: None,
            endpoint: Some(endpoint),
        }),
        Vec::new(),
    )
}

/// The change batches mailshift sent (POSTs to `.../rrset`).
fn batches(front: &HttpFront) -> Vec<String> {
    front
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/rrset"))
        .map(|r| r.body)
        .collect()
}

#[tokio::test]
async fn route53_change_batch_deletes_exactly_the_set_read_and_adds_the_new_one() -> Result<()> {
    let moto = Moto::start()?;
    let zone = moto.create_hosted_zone("example.com")?;
    moto.set_records(
        &zone,
        "example.com.",
        "MX",
        3600,
        &[&format!("10 {OLD_MX}")],
    )?;
    let front = HttpFront::start(moto.port(), |_, _| Verdict::Forward)?;
    let mut dns = route53(&moto, &zone, front.url());
    // Found by its name when no id is given.
    if let DnsProvider::Route53(r) = &mut dns.provider {
        r.hosted_zone_id = None;
    }
    assert_eq!(apply(&switch(OLD_MX), &dns).await?, Applied::Updated);
    assert_eq!(
        moto.records(&zone, "example.com.", "MX")?,
        (300, vec![format!("10 {NEW_MX}")])
    );
    let sent = batches(&front);
    assert_eq!(sent.len(), 1, "one batch: {sent:?}");
    let batch = &sent[0];
    let delete = batch.find("<Action>DELETE</Action>").expect(batch);
    let create = batch.find("<Action>CREATE</Action>").expect(batch);
    assert!(delete < create, "{batch}");
    assert!(!batch.contains("UPSERT"), "{batch}");
    let (old, new) = batch.split_at(create);
    assert!(
        old.contains("<TTL>3600</TTL>") && old.contains(&format!("<Value>10 {OLD_MX}</Value>")),
        "the DELETE names the stored TTL and value: {old}"
    );
    assert!(
        new.contains("<TTL>300</TTL>") && new.contains(&format!("<Value>10 {NEW_MX}</Value>")),
        "{new}"
    );
    // Done already: read, nothing sent.
    let step = DnsChange::SwitchMx {
        zone: "example.com".into(),
        name: "example.com".into(),
        from: Some(vec![mx(10, NEW_MX)]),
        to: vec![mx(10, NEW_MX)],
        ttl: 300,
    };
    apply(&step, &dns).await?;
    assert_eq!(batches(&front).len(), 1);
    Ok(())
}

#[tokio::test]
async fn route53_refusing_the_batch_because_the_set_changed_is_zone_changed() -> Result<()> {
    let moto = std::sync::Arc::new(Moto::start()?);
    let zone = moto.create_hosted_zone("example.com")?;
    moto.set_records(
        &zone,
        "example.com.",
        "MX",
        3600,
        &[&format!("10 {OLD_MX}")],
    )?;
    // Someone changes the set between mailshift's read and its batch. moto checks a
    // DELETE only against its own journal of past changes, not the set as it is now, so
    // the front plays Route 53's documented refusal (InvalidChangeBatch) for that batch,
    // after making the change through moto. A stand-in for that one answer only.
    let (m, z) = (moto.clone(), zone.clone());
    let front = HttpFront::start(moto.port(), move |_, r| {
        if r.method == "POST" && r.path.ends_with("/rrset") {
            m.set_records(
                &z,
                "example.com.",
                "MX",
                300,
                &["20 mail.other.example.net."],
            )
            .unwrap();
            return Verdict::answer(
                400,
                &[("Content-Type", "text/xml")],
                "<?xml version=\"1.0\"?>\n<InvalidChangeBatch xmlns=\"https://route53.amazonaws.com/doc/2013-04-01/\"><Messages><Message>[Tried to delete resource record set [name='example.com.', type='MX'] but the values provided do not match the current values]</Message></Messages><RequestId>b25f48e8-84fd-11e6-80d9-574e0c4664cb</RequestId></InvalidChangeBatch>",
            );
        }
        Verdict::Forward
    })?;
    let dns = route53(&moto, &zone, front.url());
    let err = apply(&switch(OLD_MX), &dns).await.unwrap_err();
    assert_eq!(err.reason(), "ZoneChanged", "{err}");
    assert!(err.to_string().contains("mail.other.example.net"), "{err}");
    assert_eq!(batches(&front).len(), 1, "not sent again");
    assert_eq!(
        moto.records(&zone, "example.com.", "MX")?,
        (300, vec!["20 mail.other.example.net.".to_owned()])
    );
    Ok(())
}

#[tokio::test]
async fn route53_refused_credentials_stop_at_once_and_throttling_waits_as_told() -> Result<()> {
    let moto = Moto::start()?;
    let zone = moto.create_hosted_zone("example.com")?;
    moto.set_records(
        &zone,
        "example.com.",
        "MX",
        3600,
        &[&format!("10 {OLD_MX}")],
    )?;

    // moto accepts any key, so the refusal is Route 53's documented answer from the front.
    let denied = HttpFront::start(moto.port(), |_, _| {
        Verdict::answer(
            403,
            &[("Content-Type", "text/xml")],
            "<ErrorResponse xmlns=\"https://route53.amazonaws.com/doc/2013-04-01/\"><Error><Type>Sender</Type><Code>InvalidClientTokenId</Code><Message>The security token included in the request is invalid.</Message></Error><RequestId>x</RequestId></ErrorResponse>",
        )
    })?;
    let err = apply(&switch(OLD_MX), &route53(&moto, &zone, denied.url()))
        .await
        .unwrap_err();
    assert_eq!(err.reason(), "CredentialsRejected", "{err}");
    assert_eq!(denied.requests().len(), 1, "asked once, not retried");

    // Throttled with Retry-After: waited as long as it says, then done.
    let throttled = HttpFront::start(moto.port(), |n, _| {
        if n == 0 {
            Verdict::answer(429, &[("Retry-After", "2")], "")
        } else {
            Verdict::Forward
        }
    })?;
    let start = std::time::Instant::now();
    let applied = apply(&switch(OLD_MX), &route53(&moto, &zone, throttled.url())).await?;
    assert_eq!(applied, Applied::Updated);
    assert!(
        start.elapsed() >= Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    let seen = throttled.requests();
    assert!(seen[0].answered && !seen[1].answered, "{seen:?}");
    assert_eq!(seen[0].path, seen[1].path, "the same request again");
    assert_eq!(
        moto.records(&zone, "example.com.", "MX")?,
        (300, vec![format!("10 {NEW_MX}")])
    );
    Ok(())
}

#[tokio::test]
async fn powerdns_api_throttling_waits_as_long_as_retry_after_says() -> Result<()> {
    let pdns = PowerDns::start("throttled")?;
    pdns.create_zone(
        "example.com",
        &[("example.com.", "MX", 3600, &["10 mail.old.example.net."])],
    )?;
    let front = HttpFront::start(pdns.api_port(), |n, _| {
        if n == 0 {
            Verdict::answer(429, &[("Retry-After", "2")], "")
        } else {
            Verdict::Forward
        }
    })?;
    let mut dns = powerdns(&pdns, pdns.api_key());
    if let DnsProvider::Powerdns(p) = &mut dns.provider {
        p.url = front.url();
    }
    let start = std::time::Instant::now();
    assert_eq!(apply(&lower(), &dns).await?, Applied::Updated);
    assert!(
        start.elapsed() >= Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    let seen = front.requests();
    assert!(seen[0].answered && !seen[1].answered, "{seen:?}");
    assert_eq!(seen[0].path, seen[1].path);
    assert_eq!(pdns.records("example.com", "example.com.", "MX")?.0, 300);
    Ok(())
}
