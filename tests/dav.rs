//! Address books and calendars copied between two different real CardDAV/CalDAV servers,
//! Radicale and Xandikos, in both directions, through `mailshift plan` and `mailshift apply`:
//! contacts (one with a photo), a recurring event with an exception, a task, a calendar that
//! is not a default one, a resource the destination refuses (Radicale with an upload limit)
//! and one it already holds with other content (kept).

mod common;

use std::collections::BTreeMap;

use anyhow::Result;
use common::{PASSWORD, USER, mailshift};
use mailshift_harness::{DavHttp, Radicale, Xandikos};

const ANA: &str = "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:ana-0001\r\nFN:Ana Lima\r\nN:Lima;Ana;;;\r\nEMAIL;TYPE=INTERNET:ana@example.org\r\nTEL;TYPE=CELL:+1 555 0100\r\nEND:VCARD\r\n";

const STANDUP: &str = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//mailshift tests//EN\r\nBEGIN:VEVENT\r\nUID:standup-0001\r\nDTSTAMP:20261101T090000Z\r\nDTSTART:20261102T090000Z\r\nDURATION:PT15M\r\nRRULE:FREQ=WEEKLY;BYDAY=MO\r\nSUMMARY:Stand-up\r\nEND:VEVENT\r\nBEGIN:VEVENT\r\nUID:standup-0001\r\nDTSTAMP:20261101T090000Z\r\nRECURRENCE-ID:20261109T090000Z\r\nDTSTART:20261109T100000Z\r\nDURATION:PT15M\r\nSUMMARY:Stand-up (moved)\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";

const TASK: &str = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//mailshift tests//EN\r\nBEGIN:VTODO\r\nUID:task-0001\r\nDTSTAMP:20261101T090000Z\r\nDUE:20261120T170000Z\r\nSUMMARY:Renew the domain\r\nSTATUS:NEEDS-ACTION\r\nEND:VTODO\r\nEND:VCALENDAR\r\n";

const OFFSITE: &str = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//mailshift tests//EN\r\nBEGIN:VEVENT\r\nUID:offsite-0001\r\nDTSTAMP:20261101T090000Z\r\nDTSTART;VALUE=DATE:20261204\r\nDTEND;VALUE=DATE:20261205\r\nSUMMARY:Offsite\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";

/// A contact with a photo of about `bytes` bytes of base64, folded at 75 octets.
fn with_photo(bytes: usize) -> String {
    let photo: String = (0..bytes)
        .map(|i| {
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"[i % 64] as char
        })
        .collect();
    let line = format!("PHOTO;ENCODING=b;TYPE=JPEG:{photo}");
    let mut folded = String::new();
    let mut rest = line.as_str();
    let mut first = true;
    while !rest.is_empty() {
        let take = rest.len().min(if first { 75 } else { 74 });
        if !first {
            folded.push(' ');
        }
        folded.push_str(&rest[..take]);
        folded.push_str("\r\n");
        rest = &rest[take..];
        first = false;
    }
    format!(
        "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:ben-0002\r\nFN:Ben Okafor\r\nN:Okafor;Ben;;;\r\n{folded}END:VCARD\r\n"
    )
}

/// The collections of one side as the test sets them up.
struct Layout {
    addressbook: String,
    calendar: String,
    work: String,
}

enum Server {
    Radicale(Radicale),
    Xandikos(Xandikos),
}

impl Server {
    fn url(&self) -> String {
        match self {
            Server::Radicale(r) => r.url(),
            Server::Xandikos(x) => x.url(),
        }
    }

    fn client(&self) -> DavHttp {
        match self {
            Server::Radicale(r) => DavHttp::new(r.port(), Some((USER, PASSWORD))),
            Server::Xandikos(x) => DavHttp::new(x.port(), None),
        }
    }

    fn home(&self) -> String {
        match self {
            Server::Radicale(r) => r.principal(USER),
            Server::Xandikos(_) => "/user/calendars/".into(),
        }
    }

    /// The address book and calendars the source holds: Xandikos's defaults plus `work`;
    /// on Radicale (which starts with none) `contacts`, `calendar` and `work`.
    fn source_layout(&self) -> Result<Layout> {
        let c = self.client();
        Ok(match self {
            Server::Xandikos(x) => {
                c.mkcalendar("/user/calendars/work/", "Work", "#FF8800FF")?;
                Layout {
                    addressbook: x.addressbook().into(),
                    calendar: x.calendar().into(),
                    work: "/user/calendars/work/".into(),
                }
            }
            Server::Radicale(r) => {
                let home = r.principal(USER);
                // Its principal collection appears with the first authenticated request.
                c.list(&home)?;
                c.mkaddressbook(&format!("{home}contacts/"), "Contacts")?;
                c.mkcalendar(&format!("{home}calendar/"), "Calendar", "#3A429CFF")?;
                c.mkcalendar(&format!("{home}work/"), "Work", "#FF8800FF")?;
                Layout {
                    addressbook: format!("{home}contacts/"),
                    calendar: format!("{home}calendar/"),
                    work: format!("{home}work/"),
                }
            }
        })
    }
}

/// Every resource under the collections of `client` below `home`, by UID, unfolded.
fn by_uid(client: &DavHttp, collections: &[String]) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for c in collections {
        for (_, body) in client.contents(c)? {
            let unfolded = body.replace("\r\n ", "").replace("\n ", "");
            let uid = unfolded
                .lines()
                .find_map(|l| l.strip_prefix("UID:"))
                .unwrap_or("?")
                .trim()
                .to_owned();
            out.insert(uid, unfolded);
        }
    }
    Ok(out)
}

fn manifest(name: &str, imap_src: u16, imap_dst: u16, src: &Server, dst: &Server) -> String {
    common::manifest(
        name,
        imap_src,
        imap_dst,
        &format!(
            "  dav:\n    source: {{ url: \"{}\" }}\n    destination: {{ url: \"{}\" }}\n",
            src.url(),
            dst.url()
        ),
    )
}

fn text(out: &std::process::Output) -> String {
    format!(
        "exit {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Loads the source, runs `plan` and `apply`, and checks the destination, the source and
/// a second run. `refused` and `kept` are the UIDs expected to be reported.
fn migrate(
    name: &str,
    src: Server,
    dst: Server,
    destination_collections: impl Fn(&Server) -> Vec<String>,
    refused: &[&str],
    kept: &[&str],
) -> Result<()> {
    let src_imap = common::dovecot(&format!("{name}-src")).start()?;
    let dst_imap = common::dovecot(&format!("{name}-dst")).start()?;
    let layout = src.source_layout()?;
    let sc = src.client();
    let big = with_photo(3000);
    for (collection, file, body, kind) in [
        (&layout.addressbook, "ana.vcf", ANA.to_owned(), "text/vcard"),
        (&layout.addressbook, "ben.vcf", big.clone(), "text/vcard"),
        (
            &layout.calendar,
            "standup.ics",
            STANDUP.into(),
            "text/calendar",
        ),
        (&layout.calendar, "task.ics", TASK.into(), "text/calendar"),
        (&layout.work, "offsite.ics", OFFSITE.into(), "text/calendar"),
    ] {
        let status = sc.put(&format!("{collection}{file}"), kind, &body)?;
        assert!(matches!(status, 200 | 201 | 204), "PUT {file}: {status}");
    }
    let source_collections = vec![layout.addressbook, layout.calendar, layout.work];
    let source_before = by_uid(&sc, &source_collections)?;
    assert_eq!(source_before.len(), 5, "{source_before:#?}");

    let dir = tempfile::tempdir()?;
    std::fs::write(
        dir.path().join("m.yaml"),
        manifest(name, src_imap.imap_port(), dst_imap.imap_port(), &src, &dst),
    )?;
    let out = mailshift(dir.path(), &["plan", "-f", "m.yaml", "-o", "json"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert!(
        plan[0]["plan"]["steps"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["step"]["kind"] == "copyDav"),
        "{plan:#}"
    );

    let out = mailshift(dir.path(), &["apply", "-f", "m.yaml"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let log = text(&out);
    for uid in refused {
        assert!(
            log.contains(uid) && log.contains("refuses"),
            "{uid} reported: {log}"
        );
    }

    let copied = by_uid(&dst.client(), &destination_collections(&dst))?;
    for (uid, body) in &source_before {
        if refused.contains(&uid.as_str()) {
            assert!(!copied.contains_key(uid), "{uid} was refused: {copied:#?}");
            continue;
        }
        let theirs = copied
            .get(uid)
            .unwrap_or_else(|| panic!("{uid} is on the destination: {copied:#?}"));
        if kept.contains(&uid.as_str()) {
            continue;
        }
        for line in body.lines().filter(|l| {
            ["SUMMARY", "FN", "PHOTO", "RRULE", "RECURRENCE-ID", "DUE"]
                .iter()
                .any(|p| l.starts_with(p))
        }) {
            let value = line.split_once(':').map_or("", |(_, v)| v);
            assert!(theirs.contains(value), "{uid}: `{line}` kept:\n{theirs}");
        }
    }
    assert_eq!(
        by_uid(&sc, &source_collections)?,
        source_before,
        "the old server is only read"
    );

    // Nothing left to do; the plan names what was left out and why.
    let out = mailshift(dir.path(), &["plan", "-f", "m.yaml", "-o", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let notes = plan[0]["plan"]["notes"].to_string();
    for uid in refused.iter().chain(kept) {
        assert!(notes.contains(uid), "{uid} in the notes: {plan:#}");
    }
    // `verify` compares them too, refusals and kept resources listed apart.
    let out = mailshift(dir.path(), &["verify", "-f", "m.yaml", "-o", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(report["dav"][0]["state"], "compared", "{report:#}");
    assert_eq!(report["dav"][0]["pending"], 0, "{report:#}");
    assert_eq!(report["dav"][0]["items"], 5, "{report:#}");
    let out = mailshift(dir.path(), &["apply", "-f", "m.yaml"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        !text(&out).contains("contacts and calendars copied"),
        "a second run copies nothing: {}",
        text(&out)
    );
    Ok(())
}

#[test]
fn xandikos_to_radicale_with_an_upload_limit() -> Result<()> {
    let src = Server::Xandikos(Xandikos::start()?);
    // The contact with the photo is larger than the new server takes.
    let dst = Server::Radicale(
        Radicale::builder()
            .user(USER, PASSWORD)
            .max_content_length(2500)
            .start()?,
    );
    migrate(
        "dav-x2r",
        src,
        dst,
        |d| {
            let home = d.home();
            ["addressbook/", "calendar/", "work/"]
                .iter()
                .map(|c| format!("{home}{c}"))
                .collect()
        },
        &["ben-0002"],
        &[],
    )
}

#[test]
fn radicale_to_xandikos_default_onto_default_a_conflict_kept_and_a_name_taken() -> Result<()> {
    let src = Server::Radicale(Radicale::builder().user(USER, PASSWORD).start()?);
    let x = Xandikos::start()?;
    // The new server already has Ana, with another phone number: kept there.
    let other = ANA.replace("+1 555 0100", "+1 555 0199");
    assert!(matches!(
        DavHttp::new(x.port(), None).put(
            &format!("{}ana.vcf", x.addressbook()),
            "text/vcard",
            &other
        )?,
        200 | 201 | 204
    ));
    // Another event already holds the name the stand-up has on the old server.
    let squatter = OFFSITE.replace("offsite-0001", "other-0009");
    assert!(matches!(
        DavHttp::new(x.port(), None).put(
            &format!("{}standup.ics", x.calendar()),
            "text/calendar",
            &squatter
        )?,
        200 | 201 | 204
    ));
    let dst = Server::Xandikos(x);
    migrate(
        "dav-r2x",
        src,
        dst,
        |_| {
            vec![
                "/user/contacts/addressbook/".into(),
                "/user/calendars/calendar/".into(),
                "/user/calendars/work/".into(),
            ]
        },
        &[],
        &["ana-0001"],
    )
}

/// The loop compares every few minutes: while no ETag changes on either side, the last
/// comparison stands and no resource is read again (Radicale's log shows no REPORT); a
/// changed resource is seen at once.
#[test]
fn an_unchanged_mailbox_is_not_read_again() -> Result<()> {
    use mailshift::accounts::{Account, Login};
    use mailshift::spec::{Dav, DavEndpoint, Secret};

    let r = Radicale::builder().user(USER, PASSWORD).start()?;
    let src = Server::Radicale(r);
    let layout = src.source_layout()?;
    let sc = src.client();
    sc.put(&format!("{}ana.vcf", layout.addressbook), "text/vcard", ANA)?;
    sc.put(
        &format!("{}task.ics", layout.calendar),
        "text/calendar",
        TASK,
    )?;
    let x = Xandikos::start()?;
    let login = || Login::Password {
        user: USER.into(),
        password: Secret::new(PASSWORD),
    };
    let account = Account {
        address: USER.into(),
        source: login(),
        destination: login(),
    };
    let endpoint = |url: String| DavEndpoint {
        url,
        ca_certificate: None,
    };
    // The new server behind a proxy that counts connections.
    let proxy = mailshift_harness::Proxy::start(x.port())?;
    let dav = Dav {
        source: Some(endpoint(src.url())),
        destination: endpoint(format!("http://127.0.0.1:{}/", proxy.port())),
    };
    let resolver = mailshift::secrets::Resolver::default();
    let Server::Radicale(r) = &src else {
        unreachable!()
    };
    let reports = || -> Result<usize> {
        Ok(std::fs::read_to_string(r.log_path())?
            .matches("REPORT")
            .count())
    };
    common::runtime().block_on(async {
        let first = mailshift::dav::observe(&account, &dav, &resolver, None)
            .await?
            .expect("the source has DAV");
        assert_eq!(first.items, 2, "{first:#?}");
        assert_eq!(
            proxy.accepted(),
            1,
            "every request of a comparison goes over one kept-alive connection"
        );
        assert_eq!(first.missing.len(), 2, "{first:#?}");
        let read = reports()?;
        assert!(read > 0, "the first comparison reads the resources");
        let again = mailshift::dav::observe(&account, &dav, &resolver, Some(&first))
            .await?
            .unwrap();
        assert_eq!(again, first);
        assert_eq!(reports()?, read, "nothing read again");
        // A changed contact changes the ETags: compared in full.
        sc.put(
            &format!("{}ana.vcf", layout.addressbook),
            "text/vcard",
            &ANA.replace("Ana Lima", "Ana Lima Souza"),
        )?;
        let changed = mailshift::dav::observe(&account, &dav, &resolver, Some(&first))
            .await?
            .unwrap();
        assert_ne!(changed.version, first.version);
        assert!(reports()? > read);
        Ok::<_, anyhow::Error>(())
    })
}

/// `mailshift` run in `dir` with `HTTP_PROXY` set to `proxy` (nothing bypassed).
fn through_proxy(dir: &std::path::Path, proxy: &str, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_mailshift"))
        .args(args)
        .current_dir(dir)
        .env("RUST_LOG", "warn,mailshift=info")
        .env("HTTP_PROXY", proxy)
        .env("HTTPS_PROXY", proxy)
        .env_remove("http_proxy")
        .env_remove("https_proxy")
        .env_remove("ALL_PROXY")
        .env_remove("all_proxy")
        .env_remove("NO_PROXY")
        .env_remove("no_proxy")
        .output()
        .expect("mailshift runs")
}

#[test]
fn contacts_and_calendars_go_through_an_egress_proxy_that_asks_for_credentials() -> Result<()> {
    use mailshift_harness::Tinyproxy;
    const PROXY_PASSWORD: &str = "pr0xy-s3cret-41";
    const WRONG_PASSWORD: &str = "n0t-the-pr0xy-pa55";
    let src_imap = common::dovecot("dav-proxy-src").start()?;
    let dst_imap = common::dovecot("dav-proxy-dst").start()?;
    let x = Xandikos::start()?;
    let status = DavHttp::new(x.port(), None).put(
        &format!("{}ana.vcf", x.addressbook()),
        "text/vcard",
        ANA,
    )?;
    assert!(matches!(status, 200 | 201 | 204), "PUT: {status}");
    let r = Radicale::builder().user(USER, PASSWORD).start()?;
    let (src, dst) = (Server::Xandikos(x), Server::Radicale(r));
    let proxy = Tinyproxy::start_with_user("egress", PROXY_PASSWORD)?;
    let dir = tempfile::tempdir()?;
    std::fs::write(
        dir.path().join("m.yaml"),
        manifest(
            "dav-proxy",
            src_imap.imap_port(),
            dst_imap.imap_port(),
            &src,
            &dst,
        ),
    )?;
    let wanted = |s: &Server| {
        format!(
            "127.0.0.1:{}",
            s.url()
                .trim_end_matches('/')
                .rsplit(':')
                .next()
                .unwrap_or("")
        )
    };

    // Refused by the proxy: said so, with neither password.
    let out = through_proxy(
        dir.path(),
        &proxy.url(Some(("egress", WRONG_PASSWORD))),
        &["apply", "-f", "m.yaml", "--timeout", "20s"],
    );
    let log = text(&out);
    assert!(!out.status.success(), "{log}");
    assert!(log.contains("the proxy refused the tunnel"), "{log}");
    assert!(
        !log.contains(WRONG_PASSWORD) && !log.contains(PASSWORD),
        "{log}"
    );
    assert!(
        proxy.tunnels().contains(&wanted(&src)),
        "{:?}",
        proxy.tunnels()
    );

    // Let through: the copy lands, and went through the proxy both ways.
    let before = proxy.tunnels().len();
    let out = through_proxy(
        dir.path(),
        &proxy.url(Some(("egress", PROXY_PASSWORD))),
        &["apply", "-f", "m.yaml"],
    );
    let log = text(&out);
    assert_eq!(out.status.code(), Some(0), "{log}");
    assert!(!log.contains(PROXY_PASSWORD), "{log}");
    let tunnels = proxy.tunnels()[before..].to_vec();
    assert!(
        tunnels.contains(&wanted(&src)) && tunnels.contains(&wanted(&dst)),
        "{tunnels:?} has {} and {}",
        wanted(&src),
        wanted(&dst)
    );
    let copied = by_uid(&dst.client(), &[format!("{}addressbook/", dst.home())])?;
    assert!(copied.contains_key("ana-0001"), "{copied:#?}");
    Ok(())
}
