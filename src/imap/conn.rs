//! Connecting and logging in to an IMAP server: implicit TLS or STARTTLS with certificate
//! verification (rustls), LOGIN / AUTHENTICATE PLAIN, a master user through the PLAIN
//! authorization identity, XOAUTH2; and a per-server limit on simultaneous connections.

use std::fmt;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use std::collections::BTreeSet;

use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, BufWriter, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::accounts::Login;
use crate::spec::{Endpoint, TlsMode};

/// How long one phase of a connection (TCP connect, TLS handshake, greeting, STARTTLS,
/// capabilities, login, NAMESPACE) may take at most.
const PHASE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a server may stay silent by default (`timeout` of the endpoint).
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(180);
/// A command's whole exchange may take this many times the response timeout: a server that
/// keeps sending untagged responses without ever completing is given up too.
const EXCHANGE_FACTOR: u32 = 20;

/// The bounds on waiting for one server, from its endpoint's `timeout`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// Silence between two responses.
    pub response: Duration,
    /// One phase of connecting and logging in.
    pub phase: Duration,
    /// One command, from sending it to its tagged completion.
    pub exchange: Duration,
}

impl Timeouts {
    pub fn from_response(response: Duration) -> Self {
        Timeouts {
            response,
            phase: PHASE_TIMEOUT.min(response),
            exchange: response.saturating_mul(EXCHANGE_FACTOR),
        }
    }
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts::from_response(RESPONSE_TIMEOUT)
    }
}
/// Connections per server when the manifest sets no limit.
const DEFAULT_MAX_CONNECTIONS: usize = 16;

/// Which server a connection goes to; the source is only ever read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Source,
    Destination,
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Side::Source => "source",
            Side::Destination => "destination",
        })
    }
}

/// Why a connection failed. Callers branch on it: a refused login is not retried, a network
/// error is.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("{side} {addr}: cannot connect: {error}")]
    Network {
        side: Side,
        addr: String,
        error: std::io::Error,
    },
    #[error("{side} {addr}: timed out after {after:?} while {during}{hint}")]
    Timeout {
        side: Side,
        addr: String,
        during: &'static str,
        after: Duration,
        /// What may be wrong, when the phase suggests it (empty or starting with "; ").
        hint: &'static str,
    },
    /// The server closed the connection right after it was sent the credentials. Retried,
    /// but not often: a server that counts such logins as failures may lock the account.
    #[error("{side} {addr}: the server closed the connection during login as {user}")]
    LoginCut {
        side: Side,
        addr: String,
        user: String,
    },
    #[error("{side} {addr}: TLS: {reason}")]
    Tls {
        side: Side,
        addr: String,
        reason: String,
    },
    #[error("{side} {addr}: {reason}")]
    Protocol {
        side: Side,
        addr: String,
        reason: String,
    },
    #[error("{side} {addr}: login as {user} refused: {reason}")]
    AuthFailed {
        side: Side,
        addr: String,
        user: String,
        reason: String,
    },
    #[error("{side}: CA certificate: {0}", side = .1)]
    Ca(String, Side),
    /// The server does not offer what the manifest asks for (STARTTLS, passwords in clear).
    #[error("{side} {addr}: {reason}")]
    Unsupported {
        side: Side,
        addr: String,
        reason: String,
    },
    /// The server cannot serve logins right now (`NO [UNAVAILABLE]`, RFC 5530).
    #[error("{side} {addr}: temporarily unavailable: {reason}")]
    Unavailable {
        side: Side,
        addr: String,
        reason: String,
    },
}

impl ConnectError {
    /// Worth retrying later (the network or the server may come back, e.g. a greeting cut
    /// short by a restarting server); a refused login or a TLS verification failure is not.
    /// A server that answers what cannot be parsed or breaks the limits would answer the
    /// same again: not transient.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            ConnectError::Network { .. }
                | ConnectError::Timeout { .. }
                | ConnectError::LoginCut { .. }
                | ConnectError::Unavailable { .. }
        )
    }

    pub fn is_timeout(&self) -> bool {
        matches!(self, ConnectError::Timeout { .. })
    }
}

/// An I/O error while talking to a server: the connection's (lost, reset) or the server's
/// answer's ([`super::guard::Violation`], or what the parser could not read). The parser's
/// error holds its whole buffer in Debug form, mail content included: only the start of it
/// is kept, escaped.
pub(crate) enum IoFault {
    Network(std::io::Error),
    Violation(String),
}

pub(crate) fn io_fault(e: std::io::Error) -> IoFault {
    if let Some(v) = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<super::guard::Violation>())
    {
        return IoFault::Violation(v.0.clone());
    }
    let text = e.to_string();
    if let Some((_, input)) = text.split_once(" during parsing of ") {
        return IoFault::Violation(format!(
            "the server sent a response that cannot be parsed: {}",
            crate::text::excerpt(input, 160)
        ));
    }
    IoFault::Network(e)
}

/// The byte stream under an IMAP session: plain TCP or TLS, optionally recording what the
/// client sends (tests use it to prove which commands reached the source).
///
/// Writes are buffered ([`WRITE_BUFFER`]) until a flush: async-imap writes every command as
/// four pieces (tag, space, command, CRLF) and a MULTIAPPEND adds two per message, each of
/// which would otherwise be a `sendto` of its own on a `TCP_NODELAY` socket (and a read
/// on the server's side). Every path that waits for an answer flushes first: async-imap's
/// commands do, and so do ours (`proto::flush`, the pre-login CAPABILITY, NAMESPACE).
pub struct ImapStream {
    io: BufWriter<Inner>,
    recorder: Option<Transcript>,
    guard: super::guard::Guard,
}

/// Bytes collected before they are written. Large enough for a command line plus typical
/// small messages of a MULTIAPPEND; a larger write (a big message) goes out directly after
/// what is buffered, so memory does not grow with the messages.
const WRITE_BUFFER: usize = 64 * 1024;

enum Inner {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl fmt::Debug for ImapStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.io.get_ref() {
            Inner::Plain(_) => "ImapStream(plain)",
            Inner::Tls(_) => "ImapStream(tls)",
        })
    }
}

impl ImapStream {
    /// The largest literal the server may send from now on (see [`super::guard`]).
    pub fn set_literal_limit(&mut self, limit: u64) {
        self.guard.set_literal_limit(limit);
    }

    pub fn literal_limit(&self) -> u64 {
        self.guard.literal_limit()
    }

    /// The connection under the buffer. Only for STARTTLS, right after a command (which
    /// flushed), so nothing buffered is lost.
    fn into_inner(self) -> Inner {
        self.io.into_inner()
    }
}

impl AsyncRead for ImapStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let start = buf.filled().len();
        let res = Pin::new(&mut this.io).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = res
            && let Err(v) = this.guard.scan(&buf.filled()[start..])
        {
            return Poll::Ready(Err(std::io::Error::new(std::io::ErrorKind::InvalidData, v)));
        }
        res
    }
}

impl AsyncWrite for ImapStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let res = Pin::new(&mut this.io).poll_write(cx, buf);
        if let (Poll::Ready(Ok(n)), Some(rec)) = (&res, &this.recorder) {
            rec.record(&buf[..*n]);
        }
        res
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

impl AsyncRead for Inner {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Inner::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Inner::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Inner {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Inner::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Inner::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Inner::Plain(s) => Pin::new(s).poll_flush(cx),
            Inner::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Inner::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Inner::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// Everything a client sent on the connections it is attached to, for tests that must prove
/// what reached a server. Kept in memory only; never logged. Each connection has its own
/// transcript: a mailbox may use several connections at once, and one shared buffer would
/// interleave their commands mid-line.
#[derive(Clone, Default)]
pub struct Recorder(Arc<Mutex<Vec<Vec<u8>>>>);

impl fmt::Debug for Recorder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Recorder")
    }
}

impl Recorder {
    /// A new, empty transcript for one connection.
    fn transcript(&self) -> Transcript {
        let index = self
            .0
            .lock()
            .map(|mut v| {
                v.push(Vec::new());
                v.len() - 1
            })
            .unwrap_or(0);
        Transcript {
            recorder: self.clone(),
            index,
        }
    }

    /// How many connections were opened under this recorder.
    pub fn connections(&self) -> usize {
        self.0.lock().map(|v| v.len()).unwrap_or(0)
    }

    /// The command lines sent so far (literal data included as it was sent), one
    /// connection's after the other's, in the order the connections were opened.
    pub fn sent(&self) -> String {
        self.0
            .lock()
            .map(|v| String::from_utf8_lossy(&v.concat()).into_owned())
            .unwrap_or_default()
    }
}

/// One connection's part of a [`Recorder`].
#[derive(Clone)]
struct Transcript {
    recorder: Recorder,
    index: usize,
}

impl Transcript {
    fn record(&self, bytes: &[u8]) {
        if let Ok(mut v) = self.recorder.0.lock()
            && let Some(t) = v.get_mut(self.index)
        {
            t.extend_from_slice(bytes);
        }
    }
}

/// An authenticated IMAP session with the capabilities it was granted.
pub struct Connection {
    pub session: async_imap::Session<ImapStream>,
    /// Upper-cased capability names, as granted after login.
    pub capabilities: BTreeSet<String>,
    /// The personal namespace (RFC 2342), when the server offers NAMESPACE and named one.
    pub personal_namespace: Option<super::namespace::Personal>,
    /// The other users' and shared namespaces NAMESPACE named: never the user's own mail.
    pub foreign_namespaces: Vec<super::folders::ForeignNamespace>,
    pub side: Side,
    pub addr: String,
    pub timeouts: Timeouts,
    _permit: OwnedSemaphorePermit,
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("side", &self.side)
            .field("addr", &self.addr)
            .finish()
    }
}

impl Connection {
    /// Does the server offer `cap` (case-insensitive, e.g. "LITERAL+", "CONDSTORE")?
    pub fn has(&self, cap: &str) -> bool {
        self.capabilities.contains(&cap.to_ascii_uppercase())
    }
}

/// One of a server's `maxConnections` slots, held by a connection for its lifetime.
#[derive(Debug)]
pub struct Slot(OwnedSemaphorePermit);

/// Opens connections to one server, at most `maxConnections` at a time.
#[derive(Clone)]
pub struct Connector {
    side: Side,
    host: String,
    port: u16,
    mode: TlsMode,
    tls: Option<TlsConnector>,
    limit: Arc<Semaphore>,
    recorder: Option<Recorder>,
    timeouts: Timeouts,
    governor: Arc<crate::limits::Governor>,
}

/// Holds a speculative connection's login until the connection it accompanies has logged
/// in to the same server with the same credentials: a password the server refuses is then
/// sent once, not once per connection (servers count refusals toward locking an account).
#[derive(Debug)]
pub struct LoginGate(tokio::sync::watch::Receiver<Option<bool>>);

/// The other end of a [`LoginGate`]: says how the accompanied login went.
#[derive(Debug)]
pub struct LoginSaid(tokio::sync::watch::Sender<Option<bool>>);

impl LoginGate {
    pub fn new() -> (LoginSaid, LoginGate) {
        let (tx, rx) = tokio::sync::watch::channel(None);
        (LoginSaid(tx), LoginGate(rx))
    }

    /// Whether the accompanied login succeeded (false, too, when it was given up).
    async fn passed(mut self) -> bool {
        self.0
            .wait_for(Option::is_some)
            .await
            .is_ok_and(|said| *said == Some(true))
    }
}

impl LoginSaid {
    pub fn said(&self, logged_in: bool) {
        self.0.send_replace(Some(logged_in));
    }
}

impl Connector {
    /// A connector for `endpoint`, its private CA (if any) read through `resolver`.
    pub fn resolved(
        side: Side,
        endpoint: &Endpoint,
        resolver: &crate::secrets::Resolver,
    ) -> anyhow::Result<Connector> {
        use anyhow::Context as _;
        let ca = endpoint
            .ca_certificate
            .as_ref()
            .map(|r| {
                resolver
                    .resolve(r)
                    .with_context(|| format!("caCertificate {r}"))
            })
            .transpose()?;
        Ok(Connector::new(
            side,
            endpoint,
            ca.as_ref().map(|s| s.expose().as_bytes()),
        )?)
    }
}

impl fmt::Debug for Connector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connector")
            .field("side", &self.side)
            .field("addr", &self.addr())
            .field("tls", &self.mode)
            .finish()
    }
}

impl Connector {
    /// `ca_pem` adds trusted CA certificates (PEM) to the system's roots.
    pub fn new(
        side: Side,
        endpoint: &Endpoint,
        ca_pem: Option<&[u8]>,
    ) -> Result<Self, ConnectError> {
        let port = endpoint.port.unwrap_or(match endpoint.tls {
            TlsMode::Tls => 993,
            TlsMode::Starttls | TlsMode::None => 143,
        });
        let tls = match endpoint.tls {
            TlsMode::None => None,
            TlsMode::Tls | TlsMode::Starttls => Some(tls_connector(side, ca_pem)?),
        };
        let max = endpoint
            .max_connections
            .map_or(DEFAULT_MAX_CONNECTIONS, usize::from);
        Ok(Connector {
            side,
            host: endpoint.host.clone(),
            port,
            mode: endpoint.tls,
            tls,
            limit: Arc::new(Semaphore::new(max)),
            recorder: None,
            governor: crate::limits::Governor::unlimited(match side {
                Side::Source => crate::spec::Direction::Download,
                Side::Destination => crate::spec::Direction::Upload,
            }),
            timeouts: endpoint
                .timeout
                .map_or_else(Timeouts::default, |t| Timeouts::from_response(t.0)),
        })
    }

    /// The server's `limits`: its connections (the smaller of these and `maxConnections`
    /// hold), its logins per minute, and what the copies ask of it. Set before any
    /// connection is made.
    pub fn governed(mut self, governor: Arc<crate::limits::Governor>) -> Self {
        let slots = governor.connection_slots(self.limit.available_permits());
        self.limit = Arc::new(Semaphore::new(slots));
        self.governor = governor;
        self
    }

    /// The server's limits in force.
    pub fn governor(&self) -> &Arc<crate::limits::Governor> {
        &self.governor
    }

    /// Record every byte sent on this connector's connections (tests only).
    pub fn with_recorder(mut self, recorder: Recorder) -> Self {
        self.recorder = Some(recorder);
        self
    }

    pub fn side(&self) -> Side {
        self.side
    }

    pub fn addr(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// Connect, secure and log in. Waits for a free slot under the server's connection limit.
    pub async fn connect(&self, login: &Login) -> Result<Connection, ConnectError> {
        let slot = self.slot().await;
        self.connect_in(slot, login).await
    }

    /// Waits for a free slot under the server's connection limit. Taking the slots of both
    /// servers first, always in the same order, and only then logging in to both at once
    /// keeps the logins concurrent without letting two mailboxes each hold one side's last
    /// slot while waiting for the other's.
    pub async fn slot(&self) -> Slot {
        Slot(
            self.limit
                .clone()
                .acquire_owned()
                .await
                .expect("the connection semaphore is never closed"),
        )
    }

    /// A free slot if there is one now, without waiting: for optional extra connections,
    /// which must never hold up (or deadlock with) a mailbox waiting for its first ones.
    pub fn try_slot(&self) -> Option<Slot> {
        self.limit.clone().try_acquire_owned().ok().map(Slot)
    }

    /// Connect, secure and log in within `slot` (from [`Connector::slot`] or
    /// [`Connector::try_slot`] of this connector), which the connection keeps until dropped.
    pub async fn connect_in(&self, slot: Slot, login: &Login) -> Result<Connection, ConnectError> {
        self.connect_gated(slot, login, None).await
    }

    /// [`Connector::connect_in`], the login held back (once connected and greeted) until
    /// `gate` says another connection's login succeeded; given up when it failed.
    pub async fn connect_gated(
        &self,
        slot: Slot,
        login: &Login,
        gate: Option<LoginGate>,
    ) -> Result<Connection, ConnectError> {
        let permit = slot.0;
        // Before the connection is opened, so that no server waits on an idle one.
        self.governor.login().await;
        let addr = self.addr();
        let tcp = self
            .phase(
                "connecting",
                TcpStream::connect((self.host.as_str(), self.port)),
            )
            .await?
            .map_err(|error| ConnectError::Network {
                side: self.side,
                addr: addr.clone(),
                error,
            })?;
        let _ = tcp.set_nodelay(true);
        let stream = match self.mode {
            TlsMode::Tls => self.handshake(tcp).await?,
            TlsMode::Starttls | TlsMode::None => self.wrap(Inner::Plain(tcp)),
        };
        let mut client = async_imap::Client::new(stream);
        self.phase("waiting for the greeting", self.greeting(&mut client))
            .await??
            .map_err(|e| self.io_error("reading the greeting", e))?
            .then_some(())
            .ok_or_else(|| self.cut("the server closed the connection before its greeting"))?;
        if self.mode == TlsMode::Starttls {
            self.phase(
                "waiting for the answer to STARTTLS",
                client.run_command_and_check_ok("STARTTLS", None),
            )
            .await?
            .map_err(|e| match e {
                async_imap::error::Error::No(r) | async_imap::error::Error::Bad(r) => {
                    ConnectError::Unsupported {
                        side: self.side,
                        addr: self.addr(),
                        reason: format!("STARTTLS refused: {}", crate::text::excerpt(&r, 200)),
                    }
                }
                e => self.imap_error("STARTTLS", e),
            })?;
            let tcp = match client.into_inner().into_inner() {
                Inner::Plain(tcp) => tcp,
                Inner::Tls(_) => unreachable!("STARTTLS starts on a plain connection"),
            };
            client = async_imap::Client::new(self.handshake(tcp).await?);
        }
        if let Some(gate) = gate
            && !gate.passed().await
        {
            return Err(self.cut("not logging in: the first connection's login did not succeed"));
        }
        let session = self.authenticate(client, login).await?;
        let mut conn = Connection {
            session,
            capabilities: BTreeSet::new(),
            personal_namespace: None,
            foreign_namespaces: Vec::new(),
            side: self.side,
            addr,
            timeouts: self.timeouts,
            _permit: permit,
        };
        conn.capabilities = self
            .phase(
                "waiting for the capabilities after login",
                conn.session.capabilities(),
            )
            .await?
            .map_err(|e| self.imap_error("CAPABILITY", e))?
            .iter()
            .map(|c| match c {
                async_imap::types::Capability::Imap4rev1 => "IMAP4REV1".to_owned(),
                async_imap::types::Capability::Auth(m) => {
                    format!("AUTH={}", m.to_ascii_uppercase())
                }
                async_imap::types::Capability::Atom(a) => a.to_ascii_uppercase(),
            })
            .collect();
        if conn.has("NAMESPACE") {
            // Right after CAPABILITY's completion nothing is in flight, so the raw stream
            // is where async-imap left off.
            let answer = self
                .phase(
                    "waiting for the answer to NAMESPACE",
                    super::namespace::query(conn.session.get_mut(), self.timeouts.phase),
                )
                .await?
                .map_err(|e| self.io_error("NAMESPACE", e))?;
            conn.personal_namespace = answer.personal;
            conn.foreign_namespaces = answer.foreign;
        }
        Ok(conn)
    }

    /// Whether the server greeted (false: it closed the connection). On a plain connection that has none after a moment, the port
    /// is asked whether it expects TLS instead: if so, that is said at once (and not retried
    /// as a timeout would be), since waiting longer cannot help.
    async fn greeting(
        &self,
        client: &mut async_imap::Client<ImapStream>,
    ) -> Result<std::io::Result<bool>, ConnectError> {
        let read = async { client.read_response().await.map(|r| r.is_some()) };
        if self.mode == TlsMode::Tls {
            return Ok(read.await);
        }
        tokio::pin!(read);
        tokio::select! {
            greeted = &mut read => return Ok(greeted),
            () = tokio::time::sleep(super::tls_sniff::SNIFF_AFTER) => {}
        }
        if super::tls_sniff::expects_tls(&self.host, self.port, self.timeouts.phase).await {
            return Err(ConnectError::Tls {
                side: self.side,
                addr: self.addr(),
                reason: format!(
                    "port {} expects TLS from the first byte (it answered a TLS hello and sent no greeting in plain text): set `tls: tls` for it, or use the server's STARTTLS port (usually 143) with `tls: starttls`",
                    self.port
                ),
            });
        }
        Ok(read.await)
    }

    /// `fut` within the phase timeout, or [`ConnectError::Timeout`] naming the phase.
    async fn phase<T>(
        &self,
        during: &'static str,
        fut: impl std::future::Future<Output = T>,
    ) -> Result<T, ConnectError> {
        tokio::time::timeout(self.timeouts.phase, fut)
            .await
            .map_err(|_| ConnectError::Timeout {
                side: self.side,
                addr: self.addr(),
                during,
                after: self.timeouts.phase,
                hint: match (during, self.mode) {
                    ("waiting for the greeting", TlsMode::None | TlsMode::Starttls) => {
                        "; a server that expects TLS from the first byte (as on port 993) waits silently like this: if that is the case, set `tls: tls`"
                    }
                    _ => "",
                },
            })
    }

    /// The connection ended where the protocol promised more.
    fn cut(&self, what: &str) -> ConnectError {
        ConnectError::Network {
            side: self.side,
            addr: self.addr(),
            error: std::io::Error::new(std::io::ErrorKind::ConnectionAborted, what.to_owned()),
        }
    }

    fn io_error(&self, what: &str, e: std::io::Error) -> ConnectError {
        match io_fault(e) {
            IoFault::Violation(reason) => self.protocol(format!("{what}: {reason}")),
            IoFault::Network(error) => ConnectError::Network {
                side: self.side,
                addr: self.addr(),
                error,
            },
        }
    }

    fn imap_error(&self, what: &str, e: async_imap::error::Error) -> ConnectError {
        match e {
            async_imap::error::Error::Io(e) => self.io_error(what, e),
            async_imap::error::Error::ConnectionLost => {
                self.cut(&format!("the server closed the connection during {what}"))
            }
            other => self.protocol(format!(
                "{what}: {}",
                crate::text::excerpt(&other.to_string(), 200)
            )),
        }
    }

    fn wrap(&self, inner: Inner) -> ImapStream {
        ImapStream {
            io: BufWriter::with_capacity(WRITE_BUFFER, inner),
            recorder: self.recorder.as_ref().map(Recorder::transcript),
            guard: Default::default(),
        }
    }

    fn protocol(&self, reason: String) -> ConnectError {
        ConnectError::Protocol {
            side: self.side,
            addr: self.addr(),
            reason,
        }
    }

    async fn handshake(&self, tcp: TcpStream) -> Result<ImapStream, ConnectError> {
        let tls = self.tls.as_ref().expect("TLS modes have a connector");
        let name = ServerName::try_from(self.host.clone()).map_err(|e| ConnectError::Tls {
            side: self.side,
            addr: self.addr(),
            reason: format!("invalid server name: {e}"),
        })?;
        let s = self
            .phase("in the TLS handshake", tls.connect(name, tcp))
            .await?
            .map_err(|e| {
                let text = e.to_string();
                let advice = crate::tls::pinned::advice(&text);
                ConnectError::Tls {
                    side: self.side,
                    addr: self.addr(),
                    reason: if advice.is_empty() {
                        text
                    } else {
                        format!("{text}: {advice}")
                    },
                }
            })?;
        Ok(self.wrap(Inner::Tls(Box::new(s))))
    }

    async fn authenticate(
        &self,
        client: async_imap::Client<ImapStream>,
        login: &Login,
    ) -> Result<async_imap::Session<ImapStream>, ConnectError> {
        let refused = |reason: String| ConnectError::AuthFailed {
            side: self.side,
            addr: self.addr(),
            user: login.user().to_owned(),
            reason,
        };
        let result = match login {
            Login::Files { .. } => {
                return Err(ConnectError::Unsupported {
                    side: self.side,
                    addr: self.addr(),
                    reason: "this mailbox has no login: its source is files".into(),
                });
            }
            // AUTHENTICATE PLAIN carries any byte of a password; LOGIN is for servers without
            // it. Choosing by capability (rather than trying one then the other) spends a
            // single attempt on a wrong password, which matters where failures lock accounts.
            Login::Password { user, password } => {
                let mut client = client;
                let caps = self
                    .phase(
                        "waiting for the capabilities before login",
                        self.pre_auth_capabilities(&mut client),
                    )
                    .await??;
                if caps.iter().any(|c| c == "AUTH=PLAIN") {
                    self.phase(
                        LOGGING_IN,
                        client.authenticate(
                            "PLAIN",
                            Plain {
                                authzid: String::new(),
                                authcid: user.clone(),
                                password: password.expose().to_owned(),
                            },
                        ),
                    )
                    .await?
                } else if caps.iter().any(|c| c == "LOGINDISABLED") {
                    return Err(ConnectError::Unsupported {
                        side: self.side,
                        addr: self.addr(),
                        reason: "the server refuses passwords on this connection (LOGINDISABLED): use tls or starttls".into(),
                    });
                } else {
                    self.phase(LOGGING_IN, client.login(user, password.expose()))
                        .await?
                }
            }
            Login::Master {
                user,
                master_user,
                master_password,
            } => {
                self.phase(
                    LOGGING_IN,
                    client.authenticate(
                        "PLAIN",
                        Plain {
                            authzid: user.clone(),
                            authcid: master_user.clone(),
                            password: master_password.expose().to_owned(),
                        },
                    ),
                )
                .await?
            }
            Login::OAuth2 {
                user,
                token,
                mechanism,
            } => {
                let oauth = |e: crate::oauth::OAuthError| match e {
                    // The endpoint could not be reached: another attempt may work.
                    crate::oauth::OAuthError::Endpoint { .. } => ConnectError::Unavailable {
                        side: self.side,
                        addr: self.addr(),
                        reason: e.to_string(),
                    },
                    // A refused grant needs new credentials from a person.
                    _ => refused(e.to_string()),
                };
                let first = token.token().await.map_err(oauth)?;
                let sasl = |t: &crate::spec::Secret| OAuthSasl {
                    initial: mechanism.initial_response(user, t.expose(), &self.host, self.port),
                    error: mechanism.error_response(),
                };
                let name = mechanism.name();
                match self
                    .phase(LOGGING_IN, client.authenticate(name, sasl(&first)))
                    .await?
                {
                    // An expired or revoked token: renewed once, on the same connection.
                    Err((async_imap::error::Error::No(text), client))
                        if token.renewable() && !super::throttle::login_hint(&text) =>
                    {
                        tracing::info!(user = %user, "the access token was refused; renewing it once");
                        let fresh = token.renew().await.map_err(oauth)?;
                        self.phase(LOGGING_IN, client.authenticate(name, sasl(&fresh)))
                            .await?
                    }
                    other => other,
                }
            }
        };
        let cut = || ConnectError::LoginCut {
            side: self.side,
            addr: self.addr(),
            user: login.user().to_owned(),
        };
        result.map_err(|(e, _)| match e {
            // Also a connection limit or a throttled login: the password was right.
            async_imap::error::Error::No(text) if super::throttle::login_hint(&text) => {
                ConnectError::Unavailable {
                    side: self.side,
                    addr: self.addr(),
                    reason: server_text(&text),
                }
            }
            async_imap::error::Error::No(text) | async_imap::error::Error::Bad(text) => {
                refused(server_text(&text))
            }
            // A connection cut during login says nothing about the credentials: retried, a
            // few times (see [`ConnectError::LoginCut`]).
            async_imap::error::Error::Io(error) => match io_fault(error) {
                IoFault::Violation(reason) => self.protocol(format!("login: {reason}")),
                IoFault::Network(_) => cut(),
            },
            async_imap::error::Error::ConnectionLost => cut(),
            other => self.protocol(format!(
                "login: {}",
                crate::text::excerpt(&other.to_string(), 200)
            )),
        })
    }
}

/// The phase of sending credentials and waiting for the verdict.
const LOGGING_IN: &str = "logging in";

/// The text of a NO or BAD as async-imap hands it over (`code: Some(X), info: Some("...")`),
/// as a person reads it: `[X] ...`; capped and escaped.
fn server_text(raw: &str) -> String {
    let parsed = raw.strip_prefix("code: ").and_then(|rest| {
        let (code, info) = rest.split_once(", info: ")?;
        let code = code
            .strip_prefix("Some(")
            .and_then(|c| c.strip_suffix(')'))
            .map(|c| c.split(['(', ' ']).next().unwrap_or(c).to_ascii_uppercase());
        let info = info
            .strip_prefix("Some(\"")
            .and_then(|i| i.strip_suffix("\")"))
            .map(|i| i.replace("\\\"", "\"").replace("\\\\", "\\"));
        Some(match (code, info) {
            (Some(c), Some(i)) => format!("[{c}] {i}"),
            (Some(c), None) => format!("[{c}]"),
            (None, Some(i)) => i,
            (None, None) => String::new(),
        })
    });
    crate::text::excerpt(parsed.as_deref().unwrap_or(raw).trim(), 300)
}

impl Connector {
    /// CAPABILITY before login, upper-cased (`AUTH=PLAIN`, `LOGINDISABLED`, `STARTTLS`).
    async fn pre_auth_capabilities(
        &self,
        client: &mut async_imap::Client<ImapStream>,
    ) -> Result<Vec<String>, ConnectError> {
        use super::command::Command;
        use imap_proto::{Capability, Response};
        use tokio::io::AsyncWriteExt;
        // async-imap keeps tagged commands to itself before login; a tag of our own cannot
        // collide with its numbered ones.
        const TAG: &str = "mscap";
        let stream = client.get_mut();
        stream
            .write_all(format!("{TAG} {}\r\n", Command::Capability.line()).as_bytes())
            .await
            .and(stream.flush().await)
            .map_err(|e| self.io_error("CAPABILITY", e))?;
        let mut caps = Vec::new();
        loop {
            let resp = client
                .read_response()
                .await
                .map_err(|e| self.io_error("CAPABILITY", e))?
                .ok_or_else(|| self.cut("the server closed the connection during CAPABILITY"))?;
            match resp.parsed() {
                Response::Capabilities(list) => caps.extend(list.iter().map(|c| match c {
                    Capability::Imap4rev1 => "IMAP4REV1".to_owned(),
                    Capability::Auth(m) => format!("AUTH={}", m.to_ascii_uppercase()),
                    Capability::Atom(a) => a.to_ascii_uppercase(),
                })),
                Response::Done { tag, .. } if tag.0 == TAG => return Ok(caps),
                _ => {}
            }
        }
    }
}

/// SASL PLAIN (RFC 4616): `authzid NUL authcid NUL password`.
struct Plain {
    authzid: String,
    authcid: String,
    password: String,
}

impl async_imap::Authenticator for Plain {
    type Response = Vec<u8>;

    fn process(&mut self, _challenge: &[u8]) -> Vec<u8> {
        format!("{}\0{}\0{}", self.authzid, self.authcid, self.password).into_bytes()
    }
}

/// XOAUTH2 or OAUTHBEARER ([`crate::accounts::OAuthMechanism`]): the token in the initial
/// response. A second challenge is an error report, answered as the mechanism asks so that
/// the server sends its NO.
struct OAuthSasl {
    initial: String,
    error: &'static [u8],
}

impl async_imap::Authenticator for OAuthSasl {
    type Response = Vec<u8>;

    fn process(&mut self, challenge: &[u8]) -> Vec<u8> {
        if !challenge.is_empty() {
            return self.error.to_vec();
        }
        self.initial.as_bytes().to_vec()
    }
}

impl Drop for Plain {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.password);
    }
}

impl Drop for OAuthSasl {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.initial);
    }
}

/// A rustls client trusting the system's roots plus `ca_pem`. Verification is never off.
pub(crate) fn tls_connector(
    side: Side,
    ca_pem: Option<&[u8]>,
) -> Result<TlsConnector, ConnectError> {
    crate::tls::connector(ca_pem).map_err(|e| ConnectError::Ca(e, side))
}
