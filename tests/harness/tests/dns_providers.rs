//! Self-test of the servers for DNS providers reached over an HTTP API: a private PowerDNS
//! (zones through its API, answers on its DNS port) and a private moto (Route 53).
//!
//! Run with `cargo test -p mailshift-harness --test dns_providers` (as root, after
//! `scripts/install-deps.sh`).

use mailshift_harness::{Moto, PowerDns};

#[test]
fn servers_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<PowerDns>();
    check::<Moto>();
}

#[test]
fn powerdns_serves_zones_created_through_its_api() {
    let pdns = PowerDns::start("pdns-selftest").unwrap();
    assert!(pdns.api_url().starts_with("http://127.0.0.1:"));
    assert_eq!(pdns.server_id(), "localhost");
    assert!(!pdns.api_key().is_empty());
    let dir = pdns.dir().to_path_buf();

    pdns.create_zone(
        "example.com",
        &[
            (
                "example.com.",
                "SOA",
                3600,
                &["ns1.example.com. hostmaster.example.com. 2024010101 3600 600 86400 300"],
            ),
            ("example.com.", "NS", 3600, &["ns1.example.com."]),
            ("ns1.example.com.", "A", 3600, &["127.0.0.1"]),
            ("example.com.", "MX", 3600, &["10 mail.old.example.net."]),
        ],
    )
    .unwrap();

    // Read back through the API.
    assert_eq!(
        pdns.records("example.com", "example.com.", "MX").unwrap(),
        (3600, vec!["10 mail.old.example.net.".to_string()])
    );
    // The given SOA, but PowerDNS sets the serial (soa_edit_api DEFAULT: YYYYMMDDnn).
    let (_, soa) = pdns.records("example.com.", "@", "SOA").unwrap();
    assert!(
        soa[0].starts_with("ns1.example.com. hostmaster.example.com. ")
            && soa[0].ends_with(" 3600 600 86400 300"),
        "{soa:?}"
    );
    let serial = |soa: &str| -> u32 { soa.split_whitespace().nth(2).unwrap().parse().unwrap() };
    let serial_before = serial(&soa[0]);
    assert!(pdns.rrset("example.com", "www", "A").unwrap().is_none());
    assert!(pdns.records("example.com", "www", "A").is_err());

    // Served on the DNS port, authoritatively and with the TTL.
    let mx = pdns.dig(&["+short", "example.com", "MX"]).unwrap();
    assert_eq!(
        mx.trim(),
        "10 mail.old.example.net.",
        "{}",
        pdns.log_tail(20)
    );
    let full = pdns
        .dig(&["+noall", "+answer", "+comments", "example.com", "MX"])
        .unwrap();
    assert!(full.contains(" aa"), "not authoritative: {full}");
    assert!(
        full.contains("example.com.\t\t3600\tIN\tMX\t10 mail.old.example.net."),
        "{full}"
    );

    // A change through the API is answered at once (no caches).
    pdns.set_records(
        "example.com",
        "example.com",
        "MX",
        300,
        &["10 mail.new.example.org.", "20 backup.example.org."],
    )
    .unwrap();
    assert_eq!(
        pdns.records("example.com", "example.com", "MX").unwrap(),
        (
            300,
            vec![
                "10 mail.new.example.org.".to_string(),
                "20 backup.example.org.".to_string()
            ]
        )
    );
    let (_, soa) = pdns.records("example.com.", "@", "SOA").unwrap();
    assert!(
        serial(&soa[0]) > serial_before,
        "serial not bumped: {soa:?}"
    );
    let mut served: Vec<String> = pdns
        .dig(&["+short", "example.com", "MX"])
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    served.sort();
    assert_eq!(
        served,
        ["10 mail.new.example.org.", "20 backup.example.org."]
    );

    // The API key is required.
    let (status, _) = api_status_without_key(&pdns);
    assert_eq!(status, 401);

    // A zone without its own SOA/NS gets generated ones and is served too.
    pdns.create_zone("example.org", &[("@", "TXT", 600, &["\"v=spf1 -all\""])])
        .unwrap();
    assert_eq!(
        pdns.records("example.org", "example.org.", "NS").unwrap().1,
        ["ns1.example.org."]
    );
    assert_eq!(
        pdns.dig(&["+short", "example.org", "TXT"]).unwrap().trim(),
        "\"v=spf1 -all\""
    );

    assert!(pdns.is_running());
    drop(pdns);
    assert!(!dir.exists(), "temp dir {} left behind", dir.display());
}

/// GET of the server resource without the API key: status only.
fn api_status_without_key(pdns: &PowerDns) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", pdns.api_port())).unwrap();
    write!(
        s,
        "GET /api/v1/servers/localhost HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let status = resp
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, resp)
}

#[test]
fn moto_keeps_route53_record_sets() {
    let moto = Moto::start().unwrap();
    assert!(moto.endpoint().starts_with("http://127.0.0.1:"));
    assert_eq!(moto.access_key_id(), "testing");
    assert_eq!(moto.secret_access_key(), "testing");
    let dir = moto.dir().to_path_buf();

    let zone = moto.create_hosted_zone("example.com").unwrap();
    assert!(!zone.is_empty() && !zone.contains('/'), "{zone}");
    // moto gives a new zone NS records, as Route 53 does.
    let (ns_ttl, ns) = moto.records(&zone, "example.com.", "NS").unwrap();
    assert!(ns_ttl > 0 && !ns.is_empty(), "{ns_ttl} {ns:?}");
    assert!(moto.rrset(&zone, "example.com.", "MX").unwrap().is_none());

    moto.set_records(
        &zone,
        "example.com.",
        "MX",
        3600,
        &["10 mail.old.example.net."],
    )
    .unwrap();
    assert_eq!(
        moto.records(&zone, "example.com", "MX").unwrap(),
        (3600, vec!["10 mail.old.example.net.".to_string()])
    );
    // UPSERT replaces the set.
    moto.set_records(
        &zone,
        "example.com.",
        "MX",
        300,
        &["10 mail.new.example.org.", "20 backup.example.org."],
    )
    .unwrap();
    assert_eq!(
        moto.records(&zone, "example.com.", "MX").unwrap(),
        (
            300,
            vec![
                "10 mail.new.example.org.".to_string(),
                "20 backup.example.org.".to_string()
            ]
        ),
        "{}",
        moto.log_tail(20)
    );
    // Zones are separate.
    let other = moto.create_hosted_zone("example.org.").unwrap();
    assert_ne!(other, zone);
    assert!(moto.rrset(&other, "example.com.", "MX").unwrap().is_none());

    assert!(moto.is_running());
    drop(moto);
    assert!(!dir.exists(), "temp dir {} left behind", dir.display());
}
