//! Logging in the ways the manifest offers besides each mailbox's own password, against real
//! Dovecot servers: a master user (SASL PLAIN authorization identity) and OAuth 2.0 bearer
//! tokens (SASL XOAUTH2), checked by Dovecot itself from a signing key. A refused login is
//! reported at once and never retried, and neither the master password nor a token appears
//! in any output.

mod common;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Result;
use common::*;
use mailshift_harness::{Dovecot, jwt_hs256};

const MASTER: &str = "admin";
const MASTER_PASSWORD: &str = "Master-pw-7731";
const SIGNING_KEY: &[u8] = b"a signing key shared with the identity provider";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
}

/// An access token for `user`, valid from a minute ago until `expires`.
fn token(key: &[u8], user: &str, expires: u64) -> String {
    let issued = now() - 60;
    jwt_hs256(
        key,
        &format!(
            r#"{{"sub":"{user}","email":"{user}","iat":{issued},"nbf":{issued},"exp":{expires}}}"#
        ),
    )
}

/// Runs `mailshift sync` on `manifest` with every log event on and `env` set; returns the
/// exit code, the JSON report and everything printed.
fn sync(
    dir: &std::path::Path,
    manifest: &str,
    env: &[(&str, &str)],
) -> Result<(Option<i32>, serde_json::Value, String)> {
    std::fs::write(dir.join("m.yaml"), manifest)?;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mailshift"))
        .args(["sync", "-f", "m.yaml", "-o", "json"])
        .current_dir(dir)
        .env("RUST_LOG", "trace")
        .envs(env.iter().copied())
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let report = serde_json::from_str(&stdout).unwrap_or(serde_json::Value::Null);
    Ok((out.status.code(), report, format!("{stdout}\n{stderr}")))
}

fn mailbox_error(report: &serde_json::Value) -> String {
    report["mailboxes"][0]["error"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn a_master_user_logs_in_on_behalf_of_each_mailbox() -> Result<()> {
    let src = dovecot("master-src")
        .master_user(MASTER, MASTER_PASSWORD)
        .start()?;
    let dst = dovecot("master-dst").start()?;
    load(
        &src,
        "INBOX",
        &[("\\Seen", "", message("m1", "via master", "x"))],
    )?;
    let dir = tempfile::tempdir()?;
    // The mailbox's own source password is not needed, and a wrong one is not used.
    let manifest = manifest("master", src.imap_port(), dst.imap_port(), "")
        .replace(
            "tls: none }\n  destination:",
            &format!(
                "tls: none }}\n    auth: {{ method: master, user: {MASTER}, password: {{ env: MS_MASTER }} }}\n  destination:"
            ),
        )
        .replace(
            &format!("      sourcePassword: {{ value: {PASSWORD} }}\n"),
            "",
        );
    assert!(
        manifest.contains("method: master") && !manifest.contains("sourcePassword"),
        "{manifest}"
    );
    let (code, _, printed) = sync(dir.path(), &manifest, &[("MS_MASTER", MASTER_PASSWORD)])?;
    assert_eq!(code, Some(0), "{printed}");
    assert!(!printed.contains(MASTER_PASSWORD), "master password leaked");
    assert_eq!(messages(&src, "INBOX")?, messages(&dst, "INBOX")?);
    assert_eq!(messages(&dst, "INBOX")?.len(), 1);

    // A wrong master password: refused at once, not retried, not printed.
    let started = Instant::now();
    let (code, report, printed) = sync(dir.path(), &manifest, &[("MS_MASTER", "Wrong-master-pw")])?;
    assert_eq!(code, Some(1), "{printed}");
    assert!(started.elapsed() < Duration::from_secs(20), "retried");
    assert!(
        !printed.contains("Wrong-master-pw"),
        "master password leaked"
    );
    let error = mailbox_error(&report);
    assert!(
        error.contains("source") && error.contains("refused"),
        "{error}"
    );
    Ok(())
}

#[test]
fn xoauth2_tokens_are_accepted_and_bad_ones_refused_without_retry() -> Result<()> {
    let src: Dovecot = dovecot("oauth-src").oauth2_hs256_key(SIGNING_KEY).start()?;
    let dst = dovecot("oauth-dst").start()?;
    load(&src, "INBOX", &[("", "", message("o1", "via token", "x"))])?;
    let dir = tempfile::tempdir()?;
    let good = token(SIGNING_KEY, USER, now() + 3600);
    std::fs::write(dir.path().join("token"), format!("{good}\n"))?;
    let manifest = manifest("oauth", src.imap_port(), dst.imap_port(), "")
        .replace(
            "tls: none }\n  destination:",
            "tls: none }\n    auth: { method: xoauth2 }\n  destination:",
        )
        .replace(
            &format!("sourcePassword: {{ value: {PASSWORD} }}"),
            "sourcePassword: { file: token }",
        );
    assert!(manifest.contains("method: xoauth2") && manifest.contains("file: token"));

    let (code, report, printed) = sync(dir.path(), &manifest, &[])?;
    assert_eq!(code, Some(0), "{printed}");
    assert_eq!(report["perfect"], true);
    assert!(!printed.contains(&good), "token leaked");
    assert_eq!(messages(&src, "INBOX")?, messages(&dst, "INBOX")?);

    // A token signed by someone else, and an expired one: refused at once, never printed.
    for (what, bad) in [
        (
            "forged",
            token(b"not the provider's key", USER, now() + 3600),
        ),
        ("expired", token(SIGNING_KEY, USER, now() - 10)),
    ] {
        std::fs::write(dir.path().join("token"), &bad)?;
        let started = Instant::now();
        let (code, report, printed) = sync(dir.path(), &manifest, &[])?;
        assert_eq!(code, Some(1), "{what}: {printed}");
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{what}: a refused token was retried"
        );
        assert!(!printed.contains(&bad), "{what}: token leaked");
        let error = mailbox_error(&report);
        assert!(
            error.contains("source") && error.contains("refused"),
            "{what}: {error}"
        );
    }
    Ok(())
}
