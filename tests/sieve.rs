//! Sieve scripts copied over ManageSieve between two real Dovecot Pigeonhole servers, through
//! `mailshift plan` and `mailshift apply`: several scripts with one active, a vacation
//! script, a script using an extension the new server does not enable (`editheader`), and a
//! name that exists on both with other content.

mod common;

use std::collections::BTreeMap;

use anyhow::Result;
use common::{PASSWORD, USER, endpoint, mailshift};
use mailshift::accounts::Login;
use mailshift::imap::conn::Side;
use mailshift::routing::managesieve::Client;
use mailshift::spec::Secret;
use mailshift_harness::Dovecot;

const RULES: &str = "require [\"fileinto\"];\r\nif header :contains \"subject\" \"invoice\" {\r\n  fileinto \"Invoices\";\r\n}\r\n";
const VACATION: &str = "require [\"vacation\"];\r\nvacation :days 3 :subject \"Away\" \"I am away until Monday.\";\r\n";
const HEADERS: &str = "require [\"editheader\"];\r\naddheader \"X-Filtered\" \"yes\";\r\n";
const OURS: &str = "keep;\r\n";
const THEIRS: &str = "discard;\r\n";

fn login() -> Login {
    Login::Password {
        user: USER.into(),
        password: Secret::new(PASSWORD),
    }
}

async fn client(d: &Dovecot) -> Result<Client> {
    let mut c = Client::connect(&endpoint(d.managesieve_port()), None, Side::Source).await?;
    c.login(&login()).await?;
    Ok(c)
}

/// Every script with its content, and the active one.
async fn scripts(d: &Dovecot) -> Result<(BTreeMap<String, String>, Option<String>)> {
    let mut c = client(d).await?;
    let mut all = BTreeMap::new();
    let mut active = None;
    for s in c.list_scripts().await? {
        if s.active {
            active = Some(s.name.clone());
        }
        all.insert(s.name.clone(), c.get_script(&s.name).await?);
    }
    c.logout().await?;
    Ok((all, active))
}

async fn put(d: &Dovecot, scripts: &[(&str, &str)], active: Option<&str>) -> Result<()> {
    let mut c = client(d).await?;
    for (name, content) in scripts {
        c.put_script(name, content).await?;
    }
    if let Some(a) = active {
        c.set_active(a).await?;
    }
    c.logout().await?;
    Ok(())
}

fn manifest(name: &str, src: &Dovecot, dst: &Dovecot, conflicts: &str) -> String {
    common::manifest(
        name,
        src.imap_port(),
        dst.imap_port(),
        &format!(
            "  sieve:\n    managesieve: {{ host: 127.0.0.1, port: {}, tls: none }}\n    destinationManagesieve: {{ host: 127.0.0.1, port: {}, tls: none }}\n    conflicts: {conflicts}\n",
            src.managesieve_port(),
            dst.managesieve_port()
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

#[test]
fn scripts_are_copied_with_the_active_one_refusals_and_conflicts_reported() -> Result<()> {
    // The old server enables `editheader`; the new one has Pigeonhole's defaults, without it.
    let src = common::dovecot("sieve-src")
        .extra_config("plugin {\n  sieve_extensions = +editheader\n}")
        .start()?;
    let dst = common::dovecot("sieve-dst").start()?;
    let rt = common::runtime();
    rt.block_on(async {
        put(
            &src,
            &[
                ("rules", RULES),
                ("vacation", VACATION),
                ("headers", HEADERS),
                ("same-name", OURS),
            ],
            Some("rules"),
        )
        .await?;
        put(&dst, &[("same-name", THEIRS)], None).await
    })?;
    let source_before = rt.block_on(scripts(&src))?;

    let dir = tempfile::tempdir()?;
    std::fs::write(
        dir.path().join("m.yaml"),
        manifest("sieve-keep", &src, &dst, "keep"),
    )?;

    let out = mailshift(dir.path(), &["plan", "-f", "m.yaml", "-o", "json"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let kinds: Vec<&str> = plan[0]["plan"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["step"]["kind"].as_str())
        .collect();
    assert!(kinds.contains(&"copySieve"), "{plan:#}");

    let out = mailshift(dir.path(), &["apply", "-f", "m.yaml"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let log = text(&out);
    assert!(
        log.contains("headers") && log.contains("refuses"),
        "the refused script is reported: {log}"
    );
    assert!(
        log.contains("same-name") && log.contains("kept"),
        "the kept conflict is reported: {log}"
    );

    let (copied, active) = rt.block_on(scripts(&dst))?;
    assert_eq!(copied.get("rules").map(String::as_str), Some(RULES));
    assert_eq!(copied.get("vacation").map(String::as_str), Some(VACATION));
    assert!(!copied.contains_key("headers"), "{copied:?}");
    assert_eq!(
        copied.get("same-name").map(String::as_str),
        Some(THEIRS),
        "kept"
    );
    assert_eq!(active.as_deref(), Some("rules"));
    assert_eq!(
        rt.block_on(scripts(&src))?,
        source_before,
        "the old server is only read"
    );

    // Nothing left to do, and the plan says what was left out and why.
    let out = mailshift(dir.path(), &["plan", "-f", "m.yaml", "-o", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let notes = plan[0]["plan"]["notes"].to_string();
    assert!(
        notes.contains("`headers`") && notes.contains("editheader"),
        "{plan:#}"
    );
    assert!(
        notes.contains("`same-name`") && notes.contains("kept"),
        "{plan:#}"
    );

    // `verify` compares the scripts and which one is active, beside the mail.
    let out = mailshift(dir.path(), &["verify", "-f", "m.yaml", "-o", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let sieve = &report["sieve"][0];
    assert_eq!(sieve["mailbox"], USER, "{report:#}");
    assert_eq!(sieve["state"], "compared", "{report:#}");
    assert_eq!(sieve["pending"], 0, "{report:#}");
    assert_eq!(sieve["refused"][0]["script"], "headers", "{report:#}");
    rt.block_on(async {
        let mut c = client(&dst).await?;
        c.set_active("vacation").await?;
        c.logout().await?;
        Ok::<_, anyhow::Error>(())
    })?;
    let out = mailshift(dir.path(), &["verify", "-f", "m.yaml"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains(&format!("Sieve {USER}: DIFFERENT")),
        "another active script is a difference: {}",
        text(&out)
    );

    // `conflicts: replace` overwrites the destination's script of the same name (and the
    // active script is set again).
    std::fs::write(
        dir.path().join("m.yaml"),
        manifest("sieve-replace", &src, &dst, "replace"),
    )?;
    let out = mailshift(dir.path(), &["apply", "-f", "m.yaml"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let (copied, active) = rt.block_on(scripts(&dst))?;
    assert_eq!(copied.get("same-name").map(String::as_str), Some(OURS));
    assert_eq!(active.as_deref(), Some("rules"));
    assert_eq!(rt.block_on(scripts(&src))?, source_before);
    Ok(())
}

#[test]
fn a_source_without_managesieve_is_said_in_the_plan_and_skipped() -> Result<()> {
    let src = common::dovecot("sieve-none-src").start()?;
    let dst = common::dovecot("sieve-none-dst").start()?;
    let dir = tempfile::tempdir()?;
    let m = common::manifest(
        "sieve-none",
        src.imap_port(),
        dst.imap_port(),
        &format!(
            "  sieve:\n    destinationManagesieve: {{ host: 127.0.0.1, port: {}, tls: none }}\n",
            dst.managesieve_port()
        ),
    );
    std::fs::write(dir.path().join("m.yaml"), m)?;
    let out = mailshift(dir.path(), &["plan", "-f", "m.yaml"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let plan = String::from_utf8_lossy(&out.stdout);
    assert!(plan.contains("the old server has no ManageSieve"), "{plan}");
    assert!(!plan.contains("Sieve scripts to the new server"), "{plan}");
    let out = mailshift(dir.path(), &["apply", "-f", "m.yaml"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    Ok(())
}

/// mailshift's temporary forwarding is on on both servers: its script is not copied, the
/// user's active script is found through it on the old server, and on the new one the
/// forwarding stays on and runs the migrated script, which becomes the active one when
/// forwarding ends.
#[test]
fn forwarding_stays_on_and_runs_the_migrated_script() -> Result<()> {
    use mailshift::accounts::Account;
    use mailshift::routing::forwarding::{self, SCRIPT_NAME};
    use mailshift::spec::{Sieve, SieveConflicts};

    let src = common::dovecot("sieve-fwd-src").start()?;
    let dst = common::dovecot("sieve-fwd-dst").start()?;
    let rt = common::runtime();
    let account = Account {
        address: USER.into(),
        source: login(),
        destination: login(),
    };
    let sieve = Sieve {
        managesieve: Some(endpoint(src.managesieve_port())),
        destination_managesieve: endpoint(dst.managesieve_port()),
        conflicts: SieveConflicts::Keep,
    };
    let resolver = mailshift::secrets::Resolver::default();
    rt.block_on(async {
        put(&src, &[("rules", RULES)], Some("rules")).await?;
        // Forwarding on, on both sides: on the old server it wraps the user's script.
        for d in [&src, &dst] {
            let mut c = client(d).await?;
            forwarding::enable(&mut c, "backup@example.org").await?;
            c.logout().await?;
        }
        let state = mailshift::sieve::observe(&account, &sieve, &resolver).await;
        assert!(
            matches!(
                state,
                mailshift::plan::SieveState::Compared {
                    scripts: 1,
                    pending: 2,
                    ..
                }
            ),
            "one script to put and its activation: {state:?}"
        );
        let copied = mailshift::sieve::copy(&account, &sieve, &resolver).await?;
        assert_eq!(copied.put, vec!["rules".to_owned()]);
        assert_eq!(copied.activated.as_deref(), Some("rules"));
        assert_eq!(
            mailshift::sieve::observe(&account, &sieve, &resolver).await,
            mailshift::plan::SieveState::Compared {
                scripts: 1,
                pending: 0,
                kept: vec![],
                refused: vec![],
            }
        );
        let (on_dst, active) = scripts(&dst).await?;
        assert_eq!(active.as_deref(), Some(SCRIPT_NAME), "forwarding stays on");
        let wrapper = forwarding::parse_wrapper(&on_dst[SCRIPT_NAME]).unwrap();
        assert_eq!(wrapper.to, "backup@example.org");
        assert_eq!(wrapper.previous.as_deref(), Some("rules"));
        assert_eq!(on_dst.get("rules").map(String::as_str), Some(RULES));
        // Forwarding ends: the migrated script is the active one.
        let mut c = client(&dst).await?;
        forwarding::disable(&mut c).await?;
        c.logout().await?;
        let (on_dst, active) = scripts(&dst).await?;
        assert_eq!(active.as_deref(), Some("rules"));
        assert!(!on_dst.contains_key(SCRIPT_NAME));
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(())
}
