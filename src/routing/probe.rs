//! The end-to-end mail-flow probe: a uniquely tagged message goes into the old server's SMTP
//! (lettre), and must show up in the probe mailbox's INBOX on the new server within the
//! timeout (polled with `UID SEARCH HEADER Message-ID`); there it is deleted again. The old
//! server is only looked at (EXAMINE, SEARCH): a probe found there means the old server
//! still delivers locally, which fails the probe at once.

use std::time::{Duration, Instant};

use chrono::Utc;
use futures::TryStreamExt;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::accounts::Account;
use crate::imap::conn::{Connection, Connector};
use crate::plan::ProbeState;
use crate::secrets::Resolver;
use crate::spec::{Probe, TlsMode};

/// How often the mailboxes are searched while waiting.
const POLL: Duration = Duration::from_millis(250);

/// Why the probe failed. The `Display` text starts with the reason's name, which status
/// messages and tests match on.
#[derive(Debug, thiserror::Error)]
pub enum ProbeFailure {
    #[error("refused: {server} did not accept the probe message: {error}")]
    Refused { server: String, error: String },
    #[error(
        "timed out: the probe message did not arrive in {mailbox} on the new server within {:?}",
        timeout
    )]
    TimedOut { mailbox: String, timeout: Duration },
    #[error(
        "delivered to the wrong server: the probe message arrived in {mailbox} on the old server"
    )]
    WrongServer { mailbox: String },
    #[error("could not check the probe: {0}")]
    Check(String),
}

/// What a passed probe found.
#[derive(Clone, Debug)]
pub struct Passed {
    /// The Message-ID the probe carried (without angle brackets).
    pub message_id: String,
    /// From sending to finding it.
    pub elapsed: Duration,
}

/// Run the probe and turn the outcome into the planner's [`ProbeState`].
///
/// `account` is the probe mailbox; `destination` connects to the new server; `source`, if
/// given, to the old one (only read), to tell "delivered to the wrong server" from "timed
/// out".
pub async fn run(
    probe: &Probe,
    account: &Account,
    source: Option<&Connector>,
    destination: &Connector,
    resolver: &Resolver,
) -> ProbeState {
    match check(probe, account, source, destination, resolver).await {
        Ok(_) => ProbeState::Passed { at: Utc::now() },
        Err(e) => ProbeState::Failed {
            at: Utc::now(),
            reason: e.to_string(),
        },
    }
}

/// Run the probe: send, wait for it on the new server, delete it there.
pub async fn check(
    probe: &Probe,
    account: &Account,
    source: Option<&Connector>,
    destination: &Connector,
    resolver: &Resolver,
) -> Result<Passed, ProbeFailure> {
    let check_err = |e: &dyn std::fmt::Display| ProbeFailure::Check(e.to_string());
    // Log in first: a refused login is a configuration error, not a failed mail flow.
    let mut dst = destination
        .connect(&account.destination)
        .await
        .map_err(|e| check_err(&e))?;
    dst.session
        .select("INBOX")
        .await
        .map_err(|e| check_err(&e))?;
    let mut src = match source {
        Some(c) => {
            let mut conn = c
                .connect(&account.source)
                .await
                .map_err(|e| check_err(&e))?;
            conn.session
                .examine("INBOX")
                .await
                .map_err(|e| check_err(&e))?;
            Some(conn)
        }
        None => None,
    };

    let message_id = new_message_id();
    send(probe, &account.address, &message_id, resolver).await?;
    let started = Instant::now();
    let timeout = probe.timeout.0;
    let query = format!("HEADER Message-ID \"{message_id}\"");
    loop {
        let found = search(&mut dst, &query).await.map_err(|e| check_err(&e))?;
        if !found.is_empty() {
            delete(&mut dst, &found).await.map_err(|e| check_err(&e))?;
            let _ = dst.session.logout().await;
            if let Some(mut s) = src {
                let _ = s.session.logout().await;
            }
            return Ok(Passed {
                message_id,
                elapsed: started.elapsed(),
            });
        }
        if let Some(s) = src.as_mut()
            && !search(s, &query)
                .await
                .map_err(|e| check_err(&e))?
                .is_empty()
        {
            return Err(ProbeFailure::WrongServer {
                mailbox: account.address.clone(),
            });
        }
        if started.elapsed() >= timeout {
            return Err(ProbeFailure::TimedOut {
                mailbox: account.address.clone(),
                timeout,
            });
        }
        tokio::time::sleep(POLL.min(timeout.saturating_sub(started.elapsed()))).await;
    }
}

/// A Message-ID no other message has: time, process and random bits.
fn new_message_id() -> String {
    let mut random = [0u8; 8];
    let _ = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut random));
    let hex: String = random.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "mailshift-probe-{}-{}-{hex}@mailshift.invalid",
        Utc::now().timestamp_millis(),
        std::process::id()
    )
}

async fn send(
    probe: &Probe,
    mailbox: &str,
    message_id: &str,
    resolver: &Resolver,
) -> Result<(), ProbeFailure> {
    let ep = &probe.smtp;
    let server = format!("{}:{}", ep.host, ep.port());
    let refused = |e: &dyn std::fmt::Display| {
        let error = e.to_string();
        let advice = match ep.tls {
            TlsMode::Tls if crate::tls::pinned::answered_in_plain_text(&error) => {
                "; the server did not answer TLS: it looks like plain SMTP, so set probe.smtp.tls to starttls (or none)"
            }
            _ => "",
        };
        ProbeFailure::Refused {
            server: server.clone(),
            error: format!("{error}{advice}"),
        }
    };
    let domain = mailbox
        .rsplit_once('@')
        .map_or("mailshift.invalid", |(_, d)| d);
    let message = Message::builder()
        .from(
            format!("mailshift probe <postmaster@{domain}>")
                .parse()
                .map_err(|e| ProbeFailure::Check(format!("sender: {e}")))?,
        )
        .to(mailbox
            .parse()
            .map_err(|e| ProbeFailure::Check(format!("probe mailbox {mailbox:?}: {e}")))?)
        .subject(format!("mailshift mail-flow probe {message_id}"))
        .message_id(Some(format!("<{message_id}>")))
        .date_now()
        .body(format!(
            "This message checks that mail for {domain} reaches its new server.\r\n\
             mailshift deletes it as soon as it arrives.\r\n"
        ))
        .map_err(|e| ProbeFailure::Check(format!("building the message: {e}")))?;
    let tls = match ep.tls {
        TlsMode::None => Tls::None,
        mode => {
            let mut params = TlsParameters::builder(ep.host.clone());
            if let Some(r) = &ep.ca_certificate {
                let pem = resolver
                    .resolve(r)
                    .map_err(|e| ProbeFailure::Check(format!("probe.smtp.caCertificate: {e}")))?;
                params = params.add_root_certificate(
                    Certificate::from_pem(pem.expose().as_bytes()).map_err(|e| {
                        ProbeFailure::Check(format!("probe.smtp.caCertificate: {e}"))
                    })?,
                );
            }
            let params = params.build_rustls().map_err(|e| refused(&e))?;
            if mode == TlsMode::Tls {
                Tls::Wrapper(params)
            } else {
                Tls::Required(params)
            }
        }
    };
    let transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(ep.host.as_str())
        .port(ep.port())
        .tls(tls)
        .timeout(Some(Duration::from_secs(30)))
        .build();
    transport.send(message).await.map_err(|e| refused(&e))?;
    Ok(())
}

async fn search(conn: &mut Connection, query: &str) -> Result<Vec<u32>, async_imap::error::Error> {
    // NOOP first: the server reports new messages, and SEARCH then sees them.
    conn.session.noop().await?;
    let mut uids: Vec<u32> = conn.session.uid_search(query).await?.into_iter().collect();
    uids.sort_unstable();
    Ok(uids)
}

/// Delete exactly the probe's messages: UID EXPUNGE (UIDPLUS) never expunges a message the
/// user had marked deleted.
async fn delete(conn: &mut Connection, uids: &[u32]) -> Result<(), String> {
    let set = uids
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let stored: Vec<_> = conn
        .session
        .uid_store(&set, "+FLAGS.SILENT (\\Deleted)")
        .await
        .map_err(|e| e.to_string())?
        .try_collect()
        .await
        .map_err(|e| e.to_string())?;
    drop(stored);
    if !conn.has("UIDPLUS") {
        return Err(
            "the new server lacks UIDPLUS: the probe is flagged \\Deleted but not expunged".into(),
        );
    }
    let expunged: Vec<_> = conn
        .session
        .uid_expunge(&set)
        .await
        .map_err(|e| e.to_string())?
        .try_collect()
        .await
        .map_err(|e| e.to_string())?;
    drop(expunged);
    Ok(())
}
