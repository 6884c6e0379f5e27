//! Mail routing against real Postfix and Dovecot: the gateway and fallback relays, temporary
//! forwarding over ManageSieve, and the mail-flow probe.

use mailshift::plan::{ForwardingChange, RelayChange};
use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use mailshift::accounts::{Account, Login};
use mailshift::imap::conn::{Connector, Side as ConnSide};
use mailshift::plan::{ProbeState, RelayState, Side, SwitchState};
use mailshift::routing::{self, forwarding, managesieve::Client, probe};
use mailshift::secrets::Resolver;
use mailshift::spec::{
    Endpoint, Forwarding, ManifestDuration, PostfixTarget, Probe, Relay, Secret, SmtpEndpoint,
    TlsMode,
};
use mailshift_harness::client::smtp_send;
use mailshift_harness::{Dovecot, Postfix, ports, wait};

const DELIVERY: Duration = Duration::from_secs(30);

fn endpoint(port: u16) -> Endpoint {
    Endpoint {
        host: "127.0.0.1".into(),
        port: Some(port),
        tls: TlsMode::None,
        ca_certificate: None,
        max_connections: None,
        timeout: None,
    }
}

fn relay(postfix: &Postfix, to_port: u16) -> Relay {
    Relay {
        postfix: PostfixTarget {
            config_dir: postfix.config_dir().display().to_string(),
            ssh: None,
        },
        relay_to: format!("[127.0.0.1]:{to_port}"),
    }
}

fn spec_with(
    gateway: Option<Relay>,
    fallback: Option<Relay>,
) -> mailshift::spec::MailMigrationSpec {
    let yaml = r#"
domains: [example.com]
source: { imap: { host: 127.0.0.1, port: 1, tls: none } }
destination: { imap: { host: 127.0.0.1, port: 2, tls: none } }
mailboxes: [{ address: alice@example.com }]
"#;
    let mut spec: mailshift::spec::MailMigrationSpec = serde_yaml::from_str(yaml).unwrap();
    spec.gateway = gateway;
    spec.fallback = fallback;
    spec
}

fn message(id: &str, to: &str) -> Vec<u8> {
    format!(
        "From: Bob <bob@example.org>\r\nTo: {to}\r\nSubject: {id}\r\nMessage-ID: <{id}@routing.test>\r\n\
         Date: Sat, 21 Nov 2026 10:00:00 +0000\r\n\r\nbody of {id}\r\n"
    )
    .into_bytes()
}

/// Messages with Message-ID `<id@routing.test>` in `mailbox` of `user`.
fn count(dovecot: &Dovecot, user: &str, mailbox: &str, id: &str) -> Result<usize> {
    let out = match dovecot.doveadm(&[
        "search",
        "-u",
        user,
        "mailbox",
        mailbox,
        "header",
        "Message-ID",
        &format!("{id}@routing.test"),
    ]) {
        Ok(out) => out,
        // A folder a Sieve script creates on first delivery (`fileinto`) is not there yet.
        Err(e) if format!("{e:#}").contains("exist") => String::new(),
        Err(e) => return Err(e),
    };
    Ok(out.lines().count())
}

fn wait_for(
    dovecot: &Dovecot,
    user: &str,
    mailbox: &str,
    id: &str,
    logs: &[&Postfix],
) -> Result<()> {
    wait::until_true(DELIVERY, &format!("{id} in {user}'s {mailbox}"), || {
        Ok(count(dovecot, user, mailbox, id)? == 1)
    })
    .with_context(|| {
        logs.iter()
            .map(|p| std::fs::read_to_string(p.log_path()).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n----\n")
    })
}

fn wait_queue_empty(postfix: &Postfix) -> Result<()> {
    wait::until_true(DELIVERY, "the Postfix queue to empty", || {
        Ok(postfix.postqueue(&["-p"])?.contains("Mail queue is empty"))
    })
}

/// Old and new server pairs: each Postfix delivers example.com into its own Dovecot.
struct Servers {
    old_dovecot: Dovecot,
    new_dovecot: Dovecot,
    old: Postfix,
    new: Postfix,
}

fn servers(name: &str, users: &[&str]) -> Result<Servers> {
    let mut o = Dovecot::builder().name(&format!("{name}-old"));
    let mut n = Dovecot::builder().name(&format!("{name}-new"));
    for u in users {
        o = o.user(u, "pw");
        n = n.user(u, "pw");
    }
    let (old_dovecot, new_dovecot) = (o.start()?, n.start()?);
    let old = Postfix::builder()
        .name(&format!("{name}-old-mta"))
        .lmtp_to("example.com", old_dovecot.lmtp_port())
        // Someone else's entry, which mailshift must never touch.
        .transport("other.test", "discard:")
        .start()?;
    let new = Postfix::builder()
        .name(&format!("{name}-new-mta"))
        .lmtp_to("example.com", new_dovecot.lmtp_port())
        .start()?;
    Ok(Servers {
        old_dovecot,
        new_dovecot,
        old,
        new,
    })
}

fn account(address: &str) -> Account {
    let login = Login::Password {
        user: address.into(),
        password: Secret::new("pw"),
    };
    Account {
        address: address.into(),
        source: login.clone(),
        destination: login,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_relays_the_domain_and_the_probe_sees_it() -> Result<()> {
    let s = servers("gw", &["alice@example.com"])?;
    let resolver = Resolver::default();
    let gateway = relay(&s.old, s.new.smtp_port());
    let spec = spec_with(Some(gateway.clone()), None);
    let transport_before = std::fs::read(s.old.transport_path())?;
    let maps_before = s.old.postconf(&["-h", "transport_maps"])?;

    assert_eq!(
        routing::observe_gateway(&gateway, &resolver).await,
        RelayState::Off
    );

    // The probe while the old server still delivers locally: found on the wrong server.
    let src = Connector::new(ConnSide::Source, &endpoint(s.old_dovecot.imap_port()), None)?;
    let dst = Connector::new(
        ConnSide::Destination,
        &endpoint(s.new_dovecot.imap_port()),
        None,
    )?;
    let alice = account("alice@example.com");
    // Implicit TLS to a plain SMTP port: said at once, with what to set.
    let mut p = Probe {
        smtp: SmtpEndpoint {
            host: "127.0.0.1".into(),
            port: Some(s.old.smtp_port()),
            tls: TlsMode::Tls,
            ca_certificate: None,
        },
        mailbox: "alice@example.com".into(),
        timeout: ManifestDuration(DELIVERY),
    };
    match probe::run(&p, &alice, Some(&src), &dst, &resolver).await {
        ProbeState::Failed { reason, .. } => assert!(
            reason.contains("it looks like plain SMTP, so set probe.smtp.tls to starttls"),
            "{reason}"
        ),
        other => panic!("expected a failed probe, got {other:?}"),
    }
    p.smtp.tls = TlsMode::None;
    let state = probe::run(&p, &alice, Some(&src), &dst, &resolver).await;
    match &state {
        ProbeState::Failed { reason, .. } => {
            assert!(
                reason.starts_with("delivered to the wrong server"),
                "{reason}"
            )
        }
        other => panic!("expected a failed probe, got {other:?}"),
    }

    // Gateway on.
    routing::apply(
        &RelayChange::GatewayOn {
            relay_to: gateway.relay_to.clone(),
            domains: vec!["Example.com".into()],
        },
        &spec,
        &resolver,
    )
    .await?;
    assert_eq!(
        routing::observe_gateway(&gateway, &resolver).await,
        RelayState::On {
            relay_to: gateway.relay_to.clone(),
            entries: BTreeSet::from(["example.com".to_owned()]),
        }
    );
    // Applying again changes nothing.
    routing::apply(
        &RelayChange::GatewayOn {
            relay_to: gateway.relay_to.clone(),
            domains: vec!["example.com".into()],
        },
        &spec,
        &resolver,
    )
    .await?;

    smtp_send(
        s.old.smtp_port(),
        "bob@example.org",
        &["alice@example.com"],
        &message("gw1", "alice@example.com"),
    )?;
    wait_for(
        &s.new_dovecot,
        "alice@example.com",
        "INBOX",
        "gw1",
        &[&s.old, &s.new],
    )?;
    assert_eq!(
        count(&s.old_dovecot, "alice@example.com", "INBOX", "gw1")?,
        0
    );

    // The probe now passes and leaves nothing behind.
    let state = probe::run(&p, &alice, Some(&src), &dst, &resolver).await;
    assert!(matches!(state, ProbeState::Passed { .. }), "{state:?}");
    let left = s.new_dovecot.doveadm(&[
        "search",
        "-u",
        "alice@example.com",
        "mailbox",
        "INBOX",
        "header",
        "Message-ID",
        "mailshift-probe",
    ])?;
    assert_eq!(left.trim(), "", "the probe left a message behind");

    // Someone else's transport entry and map list are untouched.
    assert_eq!(std::fs::read(s.old.transport_path())?, transport_before);
    let maps = s.old.postconf(&["-h", "transport_maps"])?;
    assert!(maps.trim().ends_with(maps_before.trim()), "{maps}");

    // A broken relay (nothing listens on the port): the probe times out.
    let dead = ports::free_port()?;
    let broken = relay(&s.old, dead);
    routing::apply(
        &RelayChange::GatewayOn {
            relay_to: broken.relay_to.clone(),
            domains: vec!["example.com".into()],
        },
        &spec_with(Some(broken.clone()), None),
        &resolver,
    )
    .await?;
    p.timeout = ManifestDuration(Duration::from_secs(3));
    let state = probe::run(&p, &alice, Some(&src), &dst, &resolver).await;
    match &state {
        ProbeState::Failed { reason, .. } => assert!(reason.starts_with("timed out"), "{reason}"),
        other => panic!("expected a timed-out probe, got {other:?}"),
    }

    // SMTP refusing the probe.
    p.smtp.port = Some(dead);
    let state = probe::run(&p, &alice, Some(&src), &dst, &resolver).await;
    match &state {
        ProbeState::Failed { reason, .. } => assert!(reason.starts_with("refused"), "{reason}"),
        other => panic!("expected a refused probe, got {other:?}"),
    }

    // Removal restores transport_maps exactly and deletes mailshift's map.
    routing::remove(&gateway, &resolver, routing::Role::Gateway).await?;
    assert_eq!(s.old.postconf(&["-h", "transport_maps"])?, maps_before);
    assert!(!s.old.config_dir().join("mailshift-gateway").exists());
    assert!(!s.old.config_dir().join("mailshift-gateway.db").exists());
    assert_eq!(std::fs::read(s.old.transport_path())?, transport_before);
    assert_eq!(
        routing::observe_gateway(&gateway, &resolver).await,
        RelayState::Off
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fallback_relays_exactly_the_listed_addresses_shrinks_and_is_removed() -> Result<()> {
    let users = ["alice@example.com", "bob@example.com", "carol@example.com"];
    let s = servers("fb", &users)?;
    let resolver = Resolver::default();
    let fallback = relay(&s.new, s.old.smtp_port());
    let spec = spec_with(None, Some(fallback.clone()));
    let maps_before = s.new.postconf(&["-h", "transport_maps"])?;
    let transport_before = std::fs::read(s.new.transport_path())?;
    let relay_step = |addresses: &[&str]| RelayChange::FallbackRelay {
        relay_to: fallback.relay_to.clone(),
        addresses: addresses.iter().map(|a| (*a).to_owned()).collect(),
    };

    routing::apply(
        &relay_step(&["bob@example.com", "Carol@example.com"]),
        &spec,
        &resolver,
    )
    .await?;
    let on = |entries: &[&str]| RelayState::On {
        relay_to: fallback.relay_to.clone(),
        entries: entries.iter().map(|e| (*e).to_owned()).collect(),
    };
    assert_eq!(
        routing::observe_fallback(&fallback, &resolver).await,
        on(&["bob@example.com", "carol@example.com"])
    );
    // Listed: back to the old server. Not listed: delivered on the new one.
    for (id, to) in [("fb-a1", "alice@example.com"), ("fb-b1", "bob@example.com")] {
        smtp_send(s.new.smtp_port(), "x@example.org", &[to], &message(id, to))?;
    }
    wait_for(
        &s.new_dovecot,
        "alice@example.com",
        "INBOX",
        "fb-a1",
        &[&s.new],
    )?;
    wait_for(
        &s.old_dovecot,
        "bob@example.com",
        "INBOX",
        "fb-b1",
        &[&s.new, &s.old],
    )?;
    assert_eq!(
        count(&s.old_dovecot, "alice@example.com", "INBOX", "fb-a1")?,
        0
    );
    assert_eq!(
        count(&s.new_dovecot, "bob@example.com", "INBOX", "fb-b1")?,
        0
    );

    // carol verified: the list shrinks to bob.
    routing::apply(&relay_step(&["bob@example.com"]), &spec, &resolver).await?;
    assert_eq!(
        routing::observe_fallback(&fallback, &resolver).await,
        on(&["bob@example.com"])
    );
    smtp_send(
        s.new.smtp_port(),
        "x@example.org",
        &["carol@example.com"],
        &message("fb-c2", "carol@example.com"),
    )?;
    wait_for(
        &s.new_dovecot,
        "carol@example.com",
        "INBOX",
        "fb-c2",
        &[&s.new],
    )?;

    // None left: removed; everything as before.
    routing::apply(
        &RelayChange::FallbackOff {
            relay_to: fallback.relay_to.clone(),
        },
        &spec,
        &resolver,
    )
    .await?;
    assert_eq!(
        routing::observe_fallback(&fallback, &resolver).await,
        RelayState::Off
    );
    assert_eq!(s.new.postconf(&["-h", "transport_maps"])?, maps_before);
    assert_eq!(std::fs::read(s.new.transport_path())?, transport_before);
    smtp_send(
        s.new.smtp_port(),
        "x@example.org",
        &["bob@example.com"],
        &message("fb-b3", "bob@example.com"),
    )?;
    wait_for(
        &s.new_dovecot,
        "bob@example.com",
        "INBOX",
        "fb-b3",
        &[&s.new],
    )?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarding_keeps_the_users_script_and_restores_it() -> Result<()> {
    // Sieve redirects go to a Postfix that delivers example.org back into the Dovecot.
    let smtp_port = ports::free_port()?;
    let dovecot = Dovecot::builder()
        .name("fwd")
        .user("alice", "pw")
        .user("backup", "pw")
        .lmtp_strip_domain(true)
        .submission_host(&format!("127.0.0.1:{smtp_port}"))
        .start()?;
    let postfix = Postfix::builder()
        .name("fwd-mta")
        .smtp_port(smtp_port)
        .lmtp_to("example.org", dovecot.lmtp_port())
        .start()?;
    let resolver = Resolver::default();
    let fwd = Forwarding {
        to: "backup@example.org".into(),
        managesieve: endpoint(dovecot.managesieve_port()),
        destination_managesieve: None,
    };
    let mut spec = spec_with(None, None);
    spec.forwarding = Some(fwd.clone());
    let alice = Account {
        address: "alice@example.org".into(),
        ..account("alice")
    };

    // The user's own script, active: file everything into "Filed".
    let user_script = "require [\"fileinto\"];\r\nfileinto \"Filed\";\r\n";
    let mut c = Client::connect(&fwd.managesieve, None, ConnSide::Source).await?;
    assert!(c.capabilities.has_extension("include"));
    c.login(&alice.source).await?;
    c.put_script("rules", user_script).await?;
    c.set_active("rules").await?;
    c.logout().await?;

    assert_eq!(
        forwarding::observe(&alice, Side::Source, &fwd, &resolver).await,
        SwitchState::Off
    );
    let on = ForwardingChange::On {
        address: "alice@example.org".into(),
        side: Side::Source,
        to: fwd.to.clone(),
    };
    forwarding::apply(&on, &spec, std::slice::from_ref(&alice), &resolver).await?;
    forwarding::apply(&on, &spec, std::slice::from_ref(&alice), &resolver).await?;
    assert_eq!(
        forwarding::observe(&alice, Side::Source, &fwd, &resolver).await,
        SwitchState::On
    );

    smtp_send(
        smtp_port,
        "bob@example.net",
        &["alice@example.org"],
        &message("fw1", "alice@example.org"),
    )?;
    wait_for(&dovecot, "alice", "Filed", "fw1", &[&postfix])?;
    wait_for(&dovecot, "backup", "INBOX", "fw1", &[&postfix])?;
    assert_eq!(
        count(&dovecot, "alice", "INBOX", "fw1")?,
        0,
        "the user's fileinto still decides"
    );

    let off = ForwardingChange::Off {
        address: "alice@example.org".into(),
        side: Side::Source,
    };
    forwarding::apply(&off, &spec, std::slice::from_ref(&alice), &resolver).await?;
    forwarding::apply(&off, &spec, std::slice::from_ref(&alice), &resolver).await?;
    assert_eq!(
        forwarding::observe(&alice, Side::Source, &fwd, &resolver).await,
        SwitchState::Off
    );
    let mut c = Client::connect(&fwd.managesieve, None, ConnSide::Source).await?;
    c.login(&alice.source).await?;
    let scripts = c.list_scripts().await?;
    ensure!(
        scripts.len() == 1 && scripts[0].name == "rules" && scripts[0].active,
        "{scripts:?}"
    );
    assert_eq!(c.get_script("rules").await?, user_script);
    c.logout().await?;

    smtp_send(
        smtp_port,
        "bob@example.net",
        &["alice@example.org"],
        &message("fw2", "alice@example.org"),
    )?;
    wait_for(&dovecot, "alice", "Filed", "fw2", &[&postfix])?;
    wait_queue_empty(&postfix)?;
    assert_eq!(
        count(&dovecot, "backup", "INBOX", "fw2")?,
        0,
        "forwarding stopped"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarding_without_a_user_script_keeps_in_inbox_and_deactivates_on_removal() -> Result<()>
{
    let smtp_port = ports::free_port()?;
    let dovecot = Dovecot::builder()
        .name("fwd2")
        .user("alice", "pw")
        .user("backup", "pw")
        .lmtp_strip_domain(true)
        .submission_host(&format!("127.0.0.1:{smtp_port}"))
        .start()?;
    let postfix = Postfix::builder()
        .name("fwd2-mta")
        .smtp_port(smtp_port)
        .lmtp_to("example.org", dovecot.lmtp_port())
        .start()?;
    let fwd = Forwarding {
        to: "backup@example.org".into(),
        managesieve: endpoint(dovecot.managesieve_port()),
        destination_managesieve: None,
    };
    let alice = account("alice");
    // Over STARTTLS, the certificate checked against the test CA.
    let ca = std::fs::read(dovecot.ca_path())?;
    let secured = Endpoint {
        tls: TlsMode::Starttls,
        ..endpoint(dovecot.managesieve_port())
    };
    let mut c = Client::connect(&secured, Some(&ca), ConnSide::Source).await?;
    assert!(
        c.capabilities.sasl.iter().any(|m| m == "PLAIN"),
        "{:?}",
        c.capabilities
    );
    c.login(&alice.source).await?;
    forwarding::enable(&mut c, &fwd.to).await?;
    c.logout().await?;
    smtp_send(
        smtp_port,
        "bob@example.net",
        &["alice@example.org"],
        &message("fx1", "alice@example.org"),
    )?;
    wait_for(&dovecot, "alice", "INBOX", "fx1", &[&postfix])?;
    wait_for(&dovecot, "backup", "INBOX", "fx1", &[&postfix])?;
    let mut c = Client::connect(&fwd.managesieve, None, ConnSide::Source).await?;
    c.login(&alice.source).await?;
    forwarding::disable(&mut c).await?;
    assert!(c.list_scripts().await?.is_empty());
    c.logout().await?;
    Ok(())
}

/// The Postfix provider through the ssh runner, with a stand-in `ssh` that runs the remote
/// command line in a local shell: the same commands, quoted for a remote shell, on a real
/// Postfix.
#[test]
fn postfix_provider_over_the_ssh_runner() -> Result<()> {
    use mailshift::routing::{PostfixProvider, Role, RoutingProvider, SshRunner};
    use mailshift::spec::{SecretRef, Ssh};
    use std::os::unix::fs::PermissionsExt;

    let postfix = Postfix::builder()
        .name("ssh-mta")
        .transport("other.test", "discard:")
        .start()?;
    let dir = tempfile::tempdir()?;
    let fake = dir.path().join("fake-ssh");
    std::fs::write(
        &fake,
        "#!/bin/sh\nwhile [ \"$1\" != \"--\" ]; do shift; done\nshift; shift\nexec sh -c \"$1\"\n",
    )?;
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755))?;
    let ssh = Ssh {
        host: "old.example.net".into(),
        port: None,
        user: "root".into(),
        identity: Some(SecretRef::Value("key".into())),
        known_hosts: Some(SecretRef::Value("old.example.net ssh-ed25519 AAAA".into())),
    };
    let runner =
        SshRunner::new(&ssh, &Resolver::default())?.with_program(&fake.display().to_string());
    let config_dir = postfix.config_dir().display().to_string();
    let provider = PostfixProvider::new(&runner, &config_dir, Role::Gateway);
    let maps_before = postfix.postconf(&["-h", "transport_maps"])?;
    let entries = BTreeSet::from(["example.com".to_owned(), "example.net".to_owned()]);
    provider.apply("[127.0.0.1]:2526", &entries)?;
    assert_eq!(
        provider.observe()?,
        RelayState::On {
            relay_to: "[127.0.0.1]:2526".into(),
            entries
        }
    );
    assert_eq!(
        postfix.postconf(&["-h", "transport_maps"])?.trim(),
        format!("{}, {}", provider.map_ref(), maps_before.trim())
    );
    provider.remove()?;
    assert_eq!(provider.observe()?, RelayState::Off);
    assert_eq!(postfix.postconf(&["-h", "transport_maps"])?, maps_before);
    Ok(())
}

/// The Postfix provider through the real OpenSSH client and a real sshd: key login, host key
/// checked against `knownHosts`, the remote commands quoted for the remote shell. A wrong
/// host key or an unauthorized client key is refused by ssh, and said so.
#[test]
fn postfix_provider_over_real_ssh() -> Result<()> {
    use mailshift::routing::{PostfixProvider, Role, RoutingProvider, SshRunner};
    use mailshift::spec::{SecretRef, Ssh};

    let sshd = mailshift_harness::Sshd::start()?;
    let postfix = Postfix::builder()
        .name("real-ssh-mta")
        .transport("other.test", "discard:")
        .start()?;
    let ssh = |identity: String, known_hosts: String| Ssh {
        host: "127.0.0.1".into(),
        port: Some(sshd.port()),
        user: "root".into(),
        identity: Some(SecretRef::Value(identity)),
        known_hosts: Some(SecretRef::Value(known_hosts)),
    };
    let good = ssh(sshd.client_private_key()?, sshd.known_hosts_line());
    let runner = SshRunner::new(&good, &Resolver::default())?;
    let config_dir = postfix.config_dir().display().to_string();
    let provider = PostfixProvider::new(&runner, &config_dir, Role::Gateway);
    assert_eq!(provider.observe()?, RelayState::Off);
    let entries = BTreeSet::from(["example.com".to_owned(), "example.net".to_owned()]);
    provider.apply("[127.0.0.1]:2526", &entries)?;
    assert_eq!(
        provider.observe()?,
        RelayState::On {
            relay_to: "[127.0.0.1]:2526".into(),
            entries
        }
    );
    provider.remove()?;
    assert_eq!(provider.observe()?, RelayState::Off);
    assert!(
        sshd.log().contains("Accepted publickey for root"),
        "{}",
        sshd.log()
    );

    // Someone else's host key at that address: ssh refuses before logging in.
    let other = tempfile::tempdir()?;
    let other_key = other.path().join("k");
    let keygen = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&other_key)
        .status()?;
    assert!(keygen.success());
    let other_pub = std::fs::read_to_string(other_key.with_extension("pub"))?;
    let mut parts = other_pub.split_whitespace();
    let forged = format!(
        "[127.0.0.1]:{} {} {}",
        sshd.port(),
        parts.next().unwrap(),
        parts.next().unwrap()
    );
    let runner = SshRunner::new(
        &ssh(sshd.client_private_key()?, forged),
        &Resolver::default(),
    )?;
    let err = PostfixProvider::new(&runner, &config_dir, Role::Gateway)
        .observe()
        .unwrap_err()
        .to_string();
    assert!(err.to_lowercase().contains("host key"), "{err}");

    // A key sshd does not know: refused.
    let runner = SshRunner::new(
        &ssh(
            std::fs::read_to_string(&other_key)?,
            sshd.known_hosts_line(),
        ),
        &Resolver::default(),
    )?;
    let err = PostfixProvider::new(&runner, &config_dir, Role::Gateway)
        .observe()
        .unwrap_err()
        .to_string();
    assert!(err.contains("Permission denied"), "{err}");
    assert!(
        !err.contains("PRIVATE KEY"),
        "the key must never be in an error: {err}"
    );
    Ok(())
}
