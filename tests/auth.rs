//! Logging in the ways the manifest offers besides each mailbox's own password, against real
//! Dovecot servers: a master user (SASL PLAIN authorization identity) and OAuth 2.0 bearer
//! tokens (SASL XOAUTH2), checked by Dovecot itself from a signing key. A refused login is
//! reported at once and never retried, and neither the master password nor a token appears
//! in any output. Tokens that renew themselves come from a stand-in token endpoint.

mod common;

use std::collections::BTreeMap;
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

/// A stand-in OAuth2 token endpoint (no Google or Microsoft endpoint can run here), answering
/// as RFC 6749 5.1/5.2 and the providers' documentation describe: `200` with
/// `{"access_token", "token_type": "Bearer", "expires_in"}`, or `400` with `{"error"}`. It
/// hands out the tokens of `answers` in turn and records every request's form.
struct TokenEndpoint {
    port: u16,
    seen: std::sync::Arc<std::sync::Mutex<Vec<BTreeMap<String, String>>>>,
}

impl TokenEndpoint {
    fn start(answers: Vec<(u16, String)>) -> Result<TokenEndpoint> {
        use std::io::{BufRead, BufReader, Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = seen.clone();
        std::thread::spawn(move || {
            let mut answers = answers.into_iter();
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let mut reader = BufReader::new(stream.try_clone().expect("clone"));
                let mut length = 0;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        break;
                    }
                    let line = line.trim_end();
                    if line.is_empty() {
                        break;
                    }
                    if let Some((name, value)) = line.split_once(':')
                        && name.eq_ignore_ascii_case("content-length")
                    {
                        length = value.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0; length];
                let _ = reader.read_exact(&mut body);
                let form: BTreeMap<String, String> = String::from_utf8_lossy(&body)
                    .split('&')
                    .filter_map(|kv| kv.split_once('='))
                    .map(|(k, v)| (decode(k), decode(v)))
                    .collect();
                log.lock().unwrap().push(form);
                let (status, json) = answers
                    .next()
                    .unwrap_or((400, r#"{"error":"invalid_grant"}"#.into()));
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{json}",
                    json.len()
                );
            }
        });
        Ok(TokenEndpoint { port, seen })
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/token", self.port)
    }

    fn seen(&self) -> Vec<BTreeMap<String, String>> {
        self.seen.lock().unwrap().clone()
    }
}

fn decode(s: &str) -> String {
    let s = s.replace('+', " ");
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn granted(token: &str, expires_in: u64) -> (u16, String) {
    (
        200,
        format!(r#"{{"access_token":"{token}","token_type":"Bearer","expires_in":{expires_in}}}"#),
    )
}

/// A source that takes only XOAUTH2 tokens, with `token_source` in its auth.
fn oauth_manifest(
    name: &str,
    src: &Dovecot,
    dst: &Dovecot,
    token_source: &str,
    password: &str,
) -> String {
    let m = manifest(name, src.imap_port(), dst.imap_port(), "")
        .replace(
            "tls: none }\n  destination:",
            &format!("tls: none }}\n    auth: {{ method: xoauth2, tokenSource: {token_source} }}\n  destination:"),
        )
        .replace(
            &format!("sourcePassword: {{ value: {PASSWORD} }}"),
            &format!("sourcePassword: {{ value: {password} }}"),
        );
    assert!(m.contains("tokenSource"), "{m}");
    m
}

#[test]
fn a_refused_token_is_renewed_once_through_the_refresh_token() -> Result<()> {
    let src: Dovecot = dovecot("oauth-refresh-src")
        .oauth2_hs256_key(SIGNING_KEY)
        .start()?;
    let dst = dovecot("oauth-refresh-dst").start()?;
    load(&src, "INBOX", &[("", "", message("r1", "renewed", "x"))])?;
    // The first token the endpoint hands out has expired already (as one revoked or expired
    // early would be): the server refuses it, mailshift asks for another.
    let stale = token(SIGNING_KEY, USER, now() - 10);
    let fresh = token(SIGNING_KEY, USER, now() + 3600);
    let endpoint = TokenEndpoint::start(vec![granted(&stale, 3600), granted(&fresh, 3600)])?;
    let dir = tempfile::tempdir()?;
    let manifest = oauth_manifest(
        "oauth-refresh",
        &src,
        &dst,
        &format!(
            "{{ refreshToken: {{ tokenUrl: \"{}\", clientId: mailshift-test, clientSecret: {{ value: client-secret-93 }} }} }}",
            endpoint.url()
        ),
        "refresh-token-alice-41",
    );
    let (code, report, printed) = sync(dir.path(), &manifest, &[])?;
    assert_eq!(code, Some(0), "{printed}");
    assert_eq!(report["perfect"], true, "{report:#}");
    assert_eq!(messages(&src, "INBOX")?, messages(&dst, "INBOX")?);
    let seen = endpoint.seen();
    // Once for the first token, once after it was refused; the fresh one served every
    // later login (the copy opens several connections).
    assert_eq!(seen.len(), 2, "{seen:#?}");
    for form in &seen {
        assert_eq!(form["grant_type"], "refresh_token");
        assert_eq!(form["refresh_token"], "refresh-token-alice-41");
        assert_eq!(form["client_id"], "mailshift-test");
        assert_eq!(form["client_secret"], "client-secret-93");
    }
    for secret in [&stale, &fresh, "refresh-token-alice-41", "client-secret-93"] {
        assert!(!printed.contains(secret), "a secret was printed");
    }
    Ok(())
}

#[test]
fn a_refused_grant_is_a_persons_problem_reported_at_once() -> Result<()> {
    let src: Dovecot = dovecot("oauth-grant-src")
        .oauth2_hs256_key(SIGNING_KEY)
        .start()?;
    let dst = dovecot("oauth-grant-dst").start()?;
    let endpoint = TokenEndpoint::start(vec![(
        400,
        r#"{"error":"invalid_grant","error_description":"Token has been expired or revoked for refresh-token-bob"}"#.into(),
    )])?;
    let dir = tempfile::tempdir()?;
    let manifest = oauth_manifest(
        "oauth-grant",
        &src,
        &dst,
        &format!(
            "{{ refreshToken: {{ tokenUrl: \"{}\", clientId: mailshift-test }} }}",
            endpoint.url()
        ),
        "refresh-token-bob",
    );
    let started = Instant::now();
    let (code, report, printed) = sync(dir.path(), &manifest, &[])?;
    assert_eq!(code, Some(1), "{printed}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "retried: {printed}"
    );
    let error = mailbox_error(&report);
    assert!(error.contains("invalid_grant"), "{error}");
    assert!(
        !printed.contains("refresh-token-bob"),
        "the description quoting it was printed"
    );
    assert_eq!(endpoint.seen().len(), 1, "asked once");
    Ok(())
}

#[test]
fn client_credentials_fetch_one_token_for_every_login() -> Result<()> {
    let src: Dovecot = dovecot("oauth-cc-src")
        .oauth2_hs256_key(SIGNING_KEY)
        .start()?;
    let dst = dovecot("oauth-cc-dst").start()?;
    load(&src, "INBOX", &[("", "", message("c1", "app-only", "x"))])?;
    let good = token(SIGNING_KEY, USER, now() + 3600);
    let endpoint = TokenEndpoint::start(vec![granted(&good, 3599)])?;
    let dir = tempfile::tempdir()?;
    let manifest = oauth_manifest(
        "oauth-cc",
        &src,
        &dst,
        &format!(
            "{{ clientCredentials: {{ tokenUrl: \"{}\", clientId: app-7, clientSecret: {{ value: app-secret-7 }}, scope: \"https://outlook.office365.com/.default\" }} }}",
            endpoint.url()
        ),
        "unused",
    );
    let (code, report, printed) = sync(dir.path(), &manifest, &[])?;
    assert_eq!(code, Some(0), "{printed}");
    assert_eq!(report["perfect"], true, "{report:#}");
    let seen = endpoint.seen();
    assert_eq!(seen.len(), 1, "one token, reused: {seen:#?}");
    assert_eq!(seen[0]["grant_type"], "client_credentials");
    assert_eq!(seen[0]["scope"], "https://outlook.office365.com/.default");
    assert!(!printed.contains(&good) && !printed.contains("app-secret-7"));
    Ok(())
}

#[test]
fn a_service_account_signs_an_assertion_for_each_mailbox() -> Result<()> {
    use base64::Engine as _;
    let src: Dovecot = dovecot("oauth-sa-src")
        .oauth2_hs256_key(SIGNING_KEY)
        .start()?;
    let dst = dovecot("oauth-sa-dst").start()?;
    let dir = tempfile::tempdir()?;
    // A key as the Google console exports it, made here with openssl.
    let pem = dir.path().join("key.pem");
    let made = std::process::Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
        ])
        .arg(&pem)
        .stderr(std::process::Stdio::null())
        .status()?;
    assert!(made.success());
    let public = std::process::Command::new("openssl")
        .args(["rsa", "-in"])
        .arg(&pem)
        .args(["-RSAPublicKey_out", "-outform", "DER"])
        .output()?;
    assert!(public.status.success());
    let good = token(SIGNING_KEY, USER, now() + 3600);
    let endpoint = TokenEndpoint::start(vec![granted(&good, 3600)])?;
    let key = serde_json::json!({
        "type": "service_account",
        "client_email": "migrator@project.iam.gserviceaccount.com",
        "private_key": std::fs::read_to_string(&pem)?,
        "token_uri": endpoint.url(),
    });
    std::fs::write(dir.path().join("sa.json"), key.to_string())?;
    let manifest = oauth_manifest(
        "oauth-sa",
        &src,
        &dst,
        "{ serviceAccount: { key: { file: sa.json }, scope: \"https://mail.google.com/\" } }",
        "unused",
    );
    let (code, report, printed) = sync(dir.path(), &manifest, &[])?;
    assert_eq!(code, Some(0), "{printed}");
    assert_eq!(report["perfect"], true, "{report:#}");
    let seen = endpoint.seen();
    assert_eq!(seen.len(), 1, "{seen:#?}");
    assert_eq!(
        seen[0]["grant_type"],
        "urn:ietf:params:oauth:grant-type:jwt-bearer"
    );
    // The assertion: signed with the account's key, for this mailbox, as RFC 7523 asks.
    let parts: Vec<&str> = seen[0]["assertion"].split('.').collect();
    assert_eq!(parts.len(), 3);
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let claims: serde_json::Value = serde_json::from_slice(&b64.decode(parts[1])?)?;
    assert_eq!(claims["iss"], "migrator@project.iam.gserviceaccount.com");
    assert_eq!(claims["sub"], USER);
    assert_eq!(claims["aud"], endpoint.url());
    assert_eq!(claims["scope"], "https://mail.google.com/");
    let signature = b64.decode(parts[2])?;
    ring::signature::UnparsedPublicKey::new(
        &ring::signature::RSA_PKCS1_2048_8192_SHA256,
        &public.stdout,
    )
    .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &signature)
    .expect("signed with the service account's key");
    assert!(!printed.contains("PRIVATE KEY") && !printed.contains(&good));
    Ok(())
}

#[test]
fn oauthbearer_carries_the_token_and_a_refused_one_ends_at_once() -> Result<()> {
    let src: Dovecot = dovecot("oauthbearer-src")
        .oauth2_hs256_key(SIGNING_KEY)
        .start()?;
    let dst = dovecot("oauthbearer-dst").start()?;
    load(&src, "INBOX", &[("", "", message("b1", "bearer", "x"))])?;
    let dir = tempfile::tempdir()?;
    let manifest = |token: &str| {
        manifest("oauthbearer", src.imap_port(), dst.imap_port(), "")
            .replace(
                "tls: none }\n  destination:",
                "tls: none }\n    auth: { method: oauthbearer }\n  destination:",
            )
            .replace(
                &format!("sourcePassword: {{ value: {PASSWORD} }}"),
                &format!("sourcePassword: {{ value: \"{token}\" }}"),
            )
    };
    let good = token(SIGNING_KEY, USER, now() + 3600);
    let (code, report, printed) = sync(dir.path(), &manifest(&good), &[])?;
    assert_eq!(code, Some(0), "{printed}");
    assert_eq!(report["perfect"], true, "{report:#}");
    assert!(!printed.contains(&good), "token leaked");
    assert_eq!(messages(&src, "INBOX")?, messages(&dst, "INBOX")?);
    // The server's error challenge is answered as RFC 7628 asks; its NO ends the login.
    let expired = token(SIGNING_KEY, USER, now() - 10);
    let started = Instant::now();
    let (code, report, printed) = sync(dir.path(), &manifest(&expired), &[])?;
    assert_eq!(code, Some(1), "{printed}");
    assert!(started.elapsed() < Duration::from_secs(20), "{printed}");
    assert!(mailbox_error(&report).contains("refused"), "{report:#}");
    assert!(!printed.contains(&expired) && !printed.contains(&good));
    Ok(())
}
