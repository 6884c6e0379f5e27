//! A POP3 server as a source (RFC 1939, CAPA RFC 2449, STLS RFC 2595, AUTH RFC 5034): one
//! folder, INBOX, read without a trace a user of the old server would see.
//!
//! - **Read only.** DELE is never sent. Bodies are read with `TOP n 999999999`, which gives
//!   the whole message on the servers seen (Dovecot included) without RETR's side effect:
//!   Dovecot sets `\Seen` on a message retrieved with RETR, not with TOP. A server whose
//!   CAPA lacks TOP is refused before the password is sent, and the reason is the mailbox's
//!   login check in `plan` and `status`: it is never read with RETR.
//! - **UIDs** are mailshift's own, by UIDL (see [`super::uids`]), in the order of the
//!   messages' numbers: a re-sync lists the UIDLs (one round trip), and the engine's cache
//!   then fetches only what is new.
//! - **Identity** as for IMAP, from the header (`TOP n 0`); the size is LIST's.
//! - **INTERNALDATE** is the date of the first (newest) `Received:` field, else the `Date:`
//!   field, else none (the destination's arrival time). POP3 has no flags: copies have none.
//! - **Logins**: SASL PLAIN when offered (also for a master user, whose authorization
//!   identity is the mailbox), else USER/PASS; XOAUTH2/OAUTHBEARER with a token. A password
//!   is never logged or put in an error.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use chrono::{DateTime, FixedOffset};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_rustls::TlsConnector;

use super::files::UidMaps;
use super::uids::Seen;
use crate::accounts::{Account, Login};
use crate::imap::cache::{CacheStore, FolderCacheKey};
use crate::imap::conn::{ConnectError, Side};
use crate::imap::diff::{Entry, FlagSet};
use crate::imap::folders::ListedFolder;
use crate::imap::identity::{self, MessageKey};
use crate::imap::proto::ImapError;
use crate::imap::session::{Listing, MailboxStatus, Outgoing, Selected};
use crate::spec::{Endpoint, TlsMode};

/// The line count of a TOP that asks for the whole message.
const WHOLE: u32 = 999_999_999;
/// Longest single-line answer or header line accepted.
const MAX_LINE: u64 = 256 * 1024;
/// Commands sent before their answers are read (RFC 2449 PIPELINING, else one).
const PIPELINE: usize = 50;

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// Opens POP3 sessions, at most `maxConnections` at a time.
#[derive(Clone)]
pub struct Pop3Connector {
    host: String,
    port: u16,
    mode: TlsMode,
    tls: Option<TlsConnector>,
    timeout: Duration,
    limit: Arc<Semaphore>,
    uids: Arc<UidMaps>,
    governor: Arc<crate::limits::Governor>,
}

impl std::fmt::Debug for Pop3Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Pop3Connector({})", self.addr())
    }
}

impl Pop3Connector {
    pub fn new(
        endpoint: &Endpoint,
        ca_pem: Option<&[u8]>,
        store: Arc<dyn CacheStore>,
    ) -> Result<Self, ConnectError> {
        let port = endpoint.port.unwrap_or(match endpoint.tls {
            TlsMode::Tls => 995,
            _ => 110,
        });
        let tls = match endpoint.tls {
            TlsMode::None => None,
            _ => {
                Some(crate::tls::connector(ca_pem).map_err(|e| ConnectError::Ca(e, Side::Source))?)
            }
        };
        Ok(Pop3Connector {
            host: endpoint.host.clone(),
            port,
            mode: endpoint.tls,
            tls,
            timeout: endpoint
                .timeout
                .map_or(crate::imap::conn::RESPONSE_TIMEOUT, |t| t.0),
            limit: Arc::new(Semaphore::new(
                endpoint.max_connections.map_or(16, usize::from),
            )),
            uids: Arc::new(UidMaps::new(store)),
            governor: crate::limits::Governor::unlimited(crate::spec::Direction::Download),
        })
    }

    /// The server's `limits` (see [`crate::imap::conn::Connector::governed`]).
    pub fn governed(mut self, governor: Arc<crate::limits::Governor>) -> Self {
        let slots = governor.connection_slots(self.limit.available_permits());
        self.limit = Arc::new(Semaphore::new(slots));
        self.governor = governor;
        self
    }

    pub fn governor(&self) -> &Arc<crate::limits::Governor> {
        &self.governor
    }

    fn addr(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    pub async fn slot(&self) -> OwnedSemaphorePermit {
        self.limit
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed")
    }

    pub fn try_slot(&self) -> Option<OwnedSemaphorePermit> {
        self.limit.clone().try_acquire_owned().ok()
    }

    /// Connects and logs in as `account`.
    pub async fn connect_in(
        &self,
        permit: OwnedSemaphorePermit,
        account: &Account,
    ) -> Result<Pop3Session, ConnectError> {
        self.governor.login().await;
        let addr = self.addr();
        let network = |error: std::io::Error| ConnectError::Network {
            side: Side::Source,
            addr: addr.clone(),
            error,
        };
        let timed_out = |during: &'static str| ConnectError::Timeout {
            side: Side::Source,
            addr: addr.clone(),
            during,
            after: self.timeout,
            hint: "",
        };
        let phase = self.timeout.min(Duration::from_secs(30));
        let tcp = tokio::time::timeout(phase, TcpStream::connect((self.host.as_str(), self.port)))
            .await
            .map_err(|_| timed_out("connecting"))?
            .map_err(network)?;
        let _ = tcp.set_nodelay(true);
        let protocol = |reason: String| ConnectError::Protocol {
            side: Side::Source,
            addr: addr.clone(),
            reason,
        };
        let lost = |e: ImapError| match e {
            ImapError::Io { error, .. } if error.kind() == std::io::ErrorKind::TimedOut => {
                timed_out("waiting for the server")
            }
            ImapError::Io { error, .. } => network(error),
            other => protocol(other.to_string()),
        };
        let (mut conn, caps): (Conn<Box<dyn Stream>>, Vec<String>) = match self.mode {
            TlsMode::Starttls => {
                let mut plain = Conn::new(tcp, phase, &addr);
                plain.status_line("greeting").await.map_err(lost)?;
                let caps = plain.capabilities().await.map_err(lost)?;
                if !caps.iter().any(|c| c == "STLS") {
                    return Err(ConnectError::Unsupported {
                        side: Side::Source,
                        addr,
                        reason: "the server does not offer STLS (tls: starttls)".into(),
                    });
                }
                plain.command("STLS", "STLS").await.map_err(lost)?;
                let tcp = plain.into_inner().map_err(protocol)?;
                let stream: Box<dyn Stream> = Box::new(self.handshake(tcp).await?);
                let mut conn = Conn::new(stream, phase, &addr);
                let caps = conn.capabilities().await.map_err(lost)?;
                (conn, caps)
            }
            mode => {
                let stream: Box<dyn Stream> = if mode == TlsMode::Tls {
                    Box::new(self.handshake(tcp).await?)
                } else {
                    Box::new(tcp)
                };
                let mut conn = Conn::new(stream, phase, &addr);
                conn.status_line("greeting").await.map_err(lost)?;
                let caps = conn.capabilities().await.map_err(lost)?;
                (conn, caps)
            }
        };
        // Checked before the password is sent: without TOP the only way to a body is RETR,
        // which marks the message read on the old server. Refused here, the reason reaches
        // `plan` and `status` as the mailbox's login check.
        if !caps.iter().any(|c| c == "TOP") {
            return Err(ConnectError::Unsupported {
                side: Side::Source,
                addr,
                reason: "the POP3 server does not offer TOP: reading messages with RETR would mark them read there, so they are not read".into(),
            });
        }
        conn.login(&account.source, &caps, &self.host, self.port)
            .await
            .map_err(|e| match e {
                LoginError::Refused(reason) => ConnectError::AuthFailed {
                    side: Side::Source,
                    addr: addr.clone(),
                    user: account.source.user().to_owned(),
                    reason,
                },
                LoginError::Busy(reason) => ConnectError::Unavailable {
                    side: Side::Source,
                    addr: addr.clone(),
                    reason,
                },
                LoginError::Unsupported(reason) => ConnectError::Unsupported {
                    side: Side::Source,
                    addr: addr.clone(),
                    reason,
                },
                LoginError::Wire(e) => lost(e),
            })?;
        conn.timeout = self.timeout;
        Ok(Pop3Session {
            conn,
            pipelining: caps.iter().any(|c| c == "PIPELINING"),
            mailbox: account.address.clone(),
            uids: Arc::clone(&self.uids),
            listed: None,
            _permit: permit,
        })
    }

    async fn handshake(
        &self,
        tcp: TcpStream,
    ) -> Result<tokio_rustls::client::TlsStream<TcpStream>, ConnectError> {
        let tls_err = |reason: String| ConnectError::Tls {
            side: Side::Source,
            addr: self.addr(),
            reason,
        };
        let connector = self
            .tls
            .clone()
            .ok_or_else(|| tls_err("no TLS configuration".into()))?;
        let name = ServerName::try_from(self.host.clone()).map_err(|e| tls_err(e.to_string()))?;
        tokio::time::timeout(
            self.timeout.min(Duration::from_secs(30)),
            connector.connect(name, tcp),
        )
        .await
        .map_err(|_| tls_err("timed out in the TLS handshake".into()))?
        .map_err(|e| tls_err(e.to_string()))
    }
}

enum LoginError {
    Refused(String),
    Busy(String),
    Unsupported(String),
    Wire(ImapError),
}

impl From<ImapError> for LoginError {
    fn from(e: ImapError) -> Self {
        LoginError::Wire(e)
    }
}

/// One POP3 connection: lines in, commands out, every wait bounded.
struct Conn<S> {
    stream: BufReader<S>,
    timeout: Duration,
    addr: String,
}

impl<S: Stream> Conn<S> {
    fn new(stream: S, timeout: Duration, addr: &str) -> Conn<S> {
        Conn {
            stream: BufReader::new(stream),
            timeout,
            addr: addr.to_owned(),
        }
    }

    /// The stream again, for STLS. Anything the server sent ahead of the handshake is a
    /// protocol violation (it could have been injected in plain text).
    fn into_inner(self) -> Result<S, String> {
        if !self.stream.buffer().is_empty() {
            return Err("the server sent data after its STLS answer".into());
        }
        Ok(self.stream.into_inner())
    }

    fn io(&self, what: &str, error: std::io::Error) -> ImapError {
        ImapError::Io {
            what: format!("{what} ({})", self.addr),
            error,
        }
    }

    async fn send(&mut self, line: &str, what: &str) -> Result<(), ImapError> {
        let mut bytes = zeroize::Zeroizing::new(line.as_bytes().to_vec());
        bytes.extend_from_slice(b"\r\n");
        let stream = self.stream.get_mut();
        match tokio::time::timeout(self.timeout, stream.write_all(&bytes)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(self.io(what, e)),
            Err(_) => Err(self.io(what, std::io::ErrorKind::TimedOut.into())),
        }
    }

    async fn line(&mut self, what: &str) -> Result<Vec<u8>, ImapError> {
        let mut line = Vec::new();
        let mut limited = (&mut self.stream).take(MAX_LINE);
        let read = limited.read_until(b'\n', &mut line);
        match tokio::time::timeout(self.timeout, read).await {
            Err(_) => return Err(self.io(what, std::io::ErrorKind::TimedOut.into())),
            Ok(Err(e)) => return Err(self.io(what, e)),
            Ok(Ok(0)) => {
                return Err(self.io(what, std::io::ErrorKind::UnexpectedEof.into()));
            }
            Ok(Ok(_)) => {}
        }
        if !line.ends_with(b"\n") {
            return Err(ImapError::Protocol {
                what: what.to_owned(),
                reason: format!("a line longer than {MAX_LINE} bytes"),
            });
        }
        Ok(line)
    }

    /// `+OK ...` as text; `-ERR ...` as a refusal.
    async fn status_line(&mut self, what: &str) -> Result<String, ImapError> {
        let line = self.line(what).await?;
        let text = String::from_utf8_lossy(&line).trim_end().to_owned();
        if let Some(rest) = text.strip_prefix("+OK") {
            Ok(rest.trim().to_owned())
        } else if let Some(rest) = text.strip_prefix("-ERR") {
            Err(ImapError::Refused {
                what: what.to_owned(),
                reason: crate::text::excerpt(rest.trim(), 200),
            })
        } else {
            Err(ImapError::Protocol {
                what: what.to_owned(),
                reason: format!("not a POP3 answer: {}", crate::text::excerpt(&text, 100)),
            })
        }
    }

    async fn command(&mut self, line: &str, what: &str) -> Result<String, ImapError> {
        self.send(line, what).await?;
        self.status_line(what).await
    }

    /// The lines of a multi-line answer up to the final `.`, dot-stuffing undone, at most
    /// `limit` bytes.
    async fn lines(&mut self, what: &str, limit: u64) -> Result<Vec<u8>, ImapError> {
        let mut out = Vec::new();
        loop {
            let line = self.line(what).await?;
            if line == b".\r\n" || line == b".\n" {
                return Ok(out);
            }
            let line = line.strip_prefix(b".").unwrap_or(&line);
            out.extend_from_slice(line);
            if out.len() as u64 > limit {
                return Err(ImapError::Protocol {
                    what: what.to_owned(),
                    reason: format!("an answer longer than {limit} bytes"),
                });
            }
        }
    }

    async fn capabilities(&mut self) -> Result<Vec<String>, ImapError> {
        match self.command("CAPA", "CAPA").await {
            Ok(_) => {}
            // A server from before RFC 2449: assume the basics.
            Err(ImapError::Refused { .. }) => return Ok(vec!["TOP".into(), "UIDL".into()]),
            Err(e) => return Err(e),
        }
        let text = self.lines("CAPA", 64 * 1024).await?;
        let mut caps = Vec::new();
        for line in String::from_utf8_lossy(&text).lines() {
            let mut words = line.split_whitespace();
            let Some(first) = words.next() else { continue };
            let first = first.to_ascii_uppercase();
            if first == "SASL" {
                caps.extend(words.map(|m| format!("SASL {}", m.to_ascii_uppercase())));
            }
            caps.push(first);
        }
        Ok(caps)
    }

    async fn login(
        &mut self,
        login: &Login,
        caps: &[String],
        host: &str,
        port: u16,
    ) -> Result<(), LoginError> {
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
        let plain = caps.iter().any(|c| c == "SASL PLAIN");
        let answer = match login {
            Login::Password { user, password } if plain => {
                let line = zeroize::Zeroizing::new(format!(
                    "AUTH PLAIN {}",
                    b64(&format!("\0{user}\0{}", password.expose()))
                ));
                self.command(&line, "AUTH PLAIN").await
            }
            Login::Password { user, password } => {
                self.command(&format!("USER {user}"), "USER").await?;
                let line = zeroize::Zeroizing::new(format!("PASS {}", password.expose()));
                self.command(&line, "PASS").await
            }
            Login::Master {
                user,
                master_user,
                master_password,
            } => {
                if !plain {
                    return Err(LoginError::Unsupported(
                        "a master-user login needs SASL PLAIN, which the server does not offer"
                            .into(),
                    ));
                }
                let line = zeroize::Zeroizing::new(format!(
                    "AUTH PLAIN {}",
                    b64(&format!(
                        "{user}\0{master_user}\0{}",
                        master_password.expose()
                    ))
                ));
                self.command(&line, "AUTH PLAIN").await
            }
            Login::OAuth2 {
                user,
                token,
                mechanism,
            } => {
                if !caps
                    .iter()
                    .any(|c| *c == format!("SASL {}", mechanism.name()))
                {
                    return Err(LoginError::Unsupported(format!(
                        "the server does not offer SASL {}",
                        mechanism.name()
                    )));
                }
                let token = token
                    .token()
                    .await
                    .map_err(|e| LoginError::Refused(e.to_string()))?;
                let line = zeroize::Zeroizing::new(format!(
                    "AUTH {} {}",
                    mechanism.name(),
                    b64(&mechanism.initial_response(user, token.expose(), host, port))
                ));
                self.command(&line, "AUTH").await
            }
            Login::Files { .. } => {
                return Err(LoginError::Unsupported(
                    "this mailbox has no login: its source is files".into(),
                ));
            }
        };
        match answer {
            Ok(_) => Ok(()),
            // RFC 3206: the maildrop is busy or the server has trouble: try again later.
            Err(ImapError::Refused { reason, .. })
                if reason.starts_with("[IN-USE]") || reason.starts_with("[SYS/TEMP]") =>
            {
                Err(LoginError::Busy(reason))
            }
            Err(ImapError::Refused { reason, .. }) => Err(LoginError::Refused(reason)),
            Err(e) => Err(LoginError::Wire(e)),
        }
    }
}

/// A message of the maildrop.
#[derive(Clone, Debug)]
struct Listed {
    uid: u32,
    number: u32,
    size: u64,
    /// From its header, once read.
    date: Option<DateTime<FixedOffset>>,
}

/// One POP3 session: INBOX as a read-only IMAP folder.
pub struct Pop3Session {
    conn: Conn<Box<dyn Stream>>,
    pipelining: bool,
    mailbox: String,
    uids: Arc<UidMaps>,
    /// The maildrop as listed, ascending UIDs, with its UIDVALIDITY, next UID and MODSEQ.
    listed: Option<(Vec<Listed>, u32, u32, u64)>,
    _permit: OwnedSemaphorePermit,
}

impl std::fmt::Debug for Pop3Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Pop3Session({}, {})", self.conn.addr, self.mailbox)
    }
}

fn not_inbox(wire: &str) -> ImapError {
    ImapError::Refused {
        what: format!("open {wire}"),
        reason: "a POP3 server has no folder but INBOX".into(),
    }
}

impl Pop3Session {
    pub async fn list(&mut self) -> Result<Listing, ImapError> {
        let mut listing = Listing::default();
        listing.prefix = Some(String::new());
        listing.push_folder(ListedFolder::new("INBOX", &[], true), "INBOX".into());
        Ok(listing)
    }

    /// UIDL and LIST: the maildrop's messages with their UIDs (a POP3 session sees the
    /// maildrop as it was at login, so once is enough).
    async fn listing(&mut self) -> Result<&(Vec<Listed>, u32, u32, u64), ImapError> {
        if self.listed.is_none() {
            self.conn.command("UIDL", "UIDL").await?;
            let uidl = self.conn.lines("UIDL", 64 * 1024 * 1024).await?;
            self.conn.command("LIST", "LIST").await?;
            let list = self.conn.lines("LIST", 64 * 1024 * 1024).await?;
            let pairs = |text: &[u8]| -> Vec<(u32, String)> {
                String::from_utf8_lossy(text)
                    .lines()
                    .filter_map(|l| {
                        let (n, rest) = l.trim().split_once(' ')?;
                        Some((n.parse().ok()?, rest.trim().to_owned()))
                    })
                    .collect()
            };
            let sizes: std::collections::HashMap<u32, u64> = pairs(&list)
                .into_iter()
                .filter_map(|(n, s)| Some((n, s.split_whitespace().next()?.parse().ok()?)))
                .collect();
            let found: Vec<(u32, String)> = pairs(&uidl);
            // POP3 has no flags: MODSEQ moves with new messages only.
            let names: Vec<Seen<'_>> = found
                .iter()
                .map(|(n, u)| Seen {
                    name: u.as_str(),
                    order: i64::from(*n),
                    flags: 0,
                })
                .collect();
            let key = FolderCacheKey::new(&self.mailbox, "INBOX");
            let id = format!("pop3://{}/{}", self.conn.addr, self.mailbox);
            let assigned = self
                .uids
                .assign(&key, &id, &names)
                .map_err(|e| ImapError::Refused {
                    what: "UIDs of INBOX".into(),
                    reason: format!("cannot keep them in the state directory: {e:#}"),
                })?;
            let mut listed: Vec<Listed> = assigned
                .uids
                .into_iter()
                .zip(&found)
                .map(|(uid, (number, _))| Listed {
                    uid,
                    number: *number,
                    size: sizes.get(number).copied().unwrap_or(0),
                    date: None,
                })
                .collect();
            listed.sort_by_key(|m| m.uid);
            listed.dedup_by_key(|m| m.uid);
            self.listed = Some((listed, assigned.uidvalidity, assigned.next, assigned.modseq));
        }
        Ok(self.listed.as_ref().expect("set above"))
    }

    pub async fn status(&mut self, wire: &str) -> Result<MailboxStatus, ImapError> {
        if !wire.eq_ignore_ascii_case("INBOX") {
            return Err(not_inbox(wire));
        }
        let (listed, validity, next, modseq) = self.listing().await?;
        Ok(MailboxStatus {
            messages: listed.len() as u32,
            uid_next: Some(*next),
            uid_validity: Some(*validity),
            highest_modseq: Some(*modseq),
        })
    }

    pub async fn examine(&mut self, wire: &str) -> Result<Selected, ImapError> {
        let st = self.status(wire).await?;
        Ok(Selected {
            exists: st.messages,
            uid_validity: st.uid_validity,
            uid_next: st.uid_next,
            highest_modseq: st.highest_modseq,
            permanent_flags: None,
        })
    }

    fn pick(&self, set: &str) -> Result<Vec<Listed>, ImapError> {
        let ranges = super::files::parse_uid_set(set).ok_or_else(|| ImapError::Protocol {
            what: format!("FETCH {set}"),
            reason: "not a UID set".into(),
        })?;
        Ok(self
            .listed
            .as_ref()
            .map(|(l, _, _, _)| {
                l.iter()
                    .filter(|m| ranges.iter().any(|&(a, b)| a <= m.uid && m.uid <= b))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default())
    }

    /// `TOP n lines` for each of `messages`, pipelined where the server allows it.
    async fn tops(&mut self, messages: &[Listed], lines: u32) -> Result<Vec<Vec<u8>>, ImapError> {
        let at_once = if self.pipelining { PIPELINE } else { 1 };
        let mut out = Vec::with_capacity(messages.len());
        for chunk in messages.chunks(at_once) {
            for m in chunk {
                self.conn
                    .send(&format!("TOP {} {lines}", m.number), "TOP")
                    .await?;
            }
            for m in chunk {
                let what = format!("TOP {}", m.number);
                self.conn.status_line(&what).await?;
                let limit = crate::imap::guard::literal_limit_for(m.size).max(MAX_LINE);
                out.push(self.conn.lines(&what, limit).await?);
            }
        }
        Ok(out)
    }

    pub async fn fetch_meta(&mut self, set: &str) -> Result<Vec<Entry>, ImapError> {
        self.listing().await?;
        let picked = self.pick(set)?;
        let headers = self.tops(&picked, 0).await?;
        let mut out = Vec::with_capacity(picked.len());
        for (m, header) in picked.iter().zip(headers) {
            let date = arrival(&header);
            if let Some((listed, _, _, _)) = self.listed.as_mut()
                && let Ok(i) = listed.binary_search_by_key(&m.uid, |l| l.uid)
                && let Some(l) = listed.get_mut(i)
            {
                l.date = date;
            }
            out.push(Entry {
                uid: m.uid,
                key: MessageKey::from_header(&header),
                flags: FlagSet::new(),
                internal_date: date,
                size: u32::try_from(m.size).unwrap_or(u32::MAX),
            });
        }
        Ok(out)
    }

    pub async fn fetch_flags(&mut self, set: &str) -> Result<Vec<(u32, FlagSet)>, ImapError> {
        self.listing().await?;
        Ok(self
            .pick(set)?
            .into_iter()
            .map(|m| (m.uid, FlagSet::new()))
            .collect())
    }

    pub async fn read_bodies(&mut self, uids: &[u32]) -> Result<Vec<Outgoing>, ImapError> {
        self.listing().await?;
        let wanted: BTreeSet<u32> = uids.iter().copied().collect();
        let picked: Vec<Listed> = self
            .pick("1:*")?
            .into_iter()
            .filter(|m| wanted.contains(&m.uid))
            .collect();
        let bodies = self.tops(&picked, WHOLE).await?;
        Ok(picked
            .into_iter()
            .zip(bodies)
            .map(|(m, body)| Outgoing {
                uid: m.uid,
                flags: FlagSet::new(),
                internal_date: m.date.or_else(|| arrival(&body)),
                body,
            })
            .collect())
    }

    pub async fn logout(mut self) {
        let _ =
            tokio::time::timeout(Duration::from_secs(5), self.conn.command("QUIT", "QUIT")).await;
    }
}

/// When the message arrived: the date of its first `Received:` field (after the last `;`),
/// else its `Date:`.
pub fn arrival(header: &[u8]) -> Option<DateTime<FixedOffset>> {
    let received = identity::header_text(header, "received").and_then(|r| {
        let (_, date) = r.rsplit_once(';')?;
        parse_date(date)
    });
    received.or_else(|| identity::header_text(header, "date").and_then(|d| parse_date(&d)))
}

/// An RFC 5322 date, comments such as `(UTC)` left out.
fn parse_date(text: &str) -> Option<DateTime<FixedOffset>> {
    let without_comment = match text.find('(') {
        Some(i) => &text[..i],
        None => text,
    };
    let t = without_comment
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    DateTime::parse_from_rfc2822(&t).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrival_is_the_first_received_then_the_date() {
        let h = b"Received: from a by b; Tue, 3 Mar 2020 04:05:06 +0100 (CET)\r\nReceived: from c by a; Tue, 3 Mar 2020 04:05:00 +0100\r\nDate: Mon, 2 Mar 2020 00:00:00 +0000\r\n\r\n";
        assert_eq!(
            arrival(h).unwrap().to_rfc3339(),
            "2020-03-03T04:05:06+01:00"
        );
        let d = b"Date: Sat, 21 Nov 2026 10:00:00 +0000\r\n\r\n";
        assert_eq!(
            arrival(d).unwrap().to_rfc3339(),
            "2026-11-21T10:00:00+00:00"
        );
        assert_eq!(arrival(b"Subject: x\r\n\r\n"), None);
    }
}
