//! A small ManageSieve client (RFC 5804): CAPABILITY, STARTTLS, AUTHENTICATE (PLAIN with an
//! optional authorization identity, XOAUTH2), LISTSCRIPTS, GETSCRIPT, PUTSCRIPT, SETACTIVE,
//! DELETESCRIPT, LOGOUT; quoted strings and literals both ways.
//!
//! Written here because the one ManageSieve crate on crates.io (`managesieve` 0.1.1, 2022)
//! only parses, on nom 6, and is not maintained.

use std::time::Duration;

use base64::Engine as _;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::accounts::Login;
use crate::imap::conn::Side;
use crate::spec::{Endpoint, TlsMode};

use super::RoutingError;

/// How long connecting or one command may take.
const TIMEOUT: Duration = Duration::from_secs(30);
/// The IANA port of ManageSieve.
pub const DEFAULT_PORT: u16 = 4190;
/// A response line longer than this is refused (literals are read separately).
const MAX_LINE: usize = 64 * 1024;
/// A literal larger than this is refused.
const MAX_LITERAL: usize = 16 * 1024 * 1024;

/// Anything a session can run over: plain TCP or TLS.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// One token of a response line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Token {
    Atom(String),
    /// A quoted string or a literal.
    Str(String),
    LParen,
    RParen,
}

/// How a response ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Ok,
    No,
    Bye,
}

/// A complete response: data lines, then the final `OK`/`NO`/`BYE` with its optional
/// response code and human-readable text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    pub lines: Vec<Vec<Token>>,
    pub status: Status,
    pub code: Vec<Token>,
    pub text: Option<String>,
}

impl Response {
    fn describe(&self) -> String {
        let code = self
            .code
            .iter()
            .map(|t| match t {
                Token::Atom(a) => a.clone(),
                Token::Str(s) => format!("{s:?}"),
                Token::LParen => "(".into(),
                Token::RParen => ")".into(),
            })
            .collect::<Vec<_>>()
            .join(" ");
        let text = self.text.clone().unwrap_or_default();
        let status = match self.status {
            Status::Ok => "OK",
            Status::No => "NO",
            Status::Bye => "BYE",
        };
        format!("{status} ({code}) {text}")
            .replace(" () ", " ")
            .trim()
            .to_owned()
    }
}

/// The server's capabilities (RFC 5804 section 1.7).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Capabilities {
    pub implementation: Option<String>,
    /// SASL mechanisms, upper-cased.
    pub sasl: Vec<String>,
    /// Sieve extensions, lower-cased.
    pub sieve: Vec<String>,
    pub starttls: bool,
}

impl Capabilities {
    fn from_lines(lines: &[Vec<Token>]) -> Self {
        let mut caps = Capabilities::default();
        for line in lines {
            let (Some(Token::Str(name)), value) = (line.first(), line.get(1)) else {
                continue;
            };
            let value = match value {
                Some(Token::Str(v)) => v.as_str(),
                _ => "",
            };
            match name.to_ascii_uppercase().as_str() {
                "IMPLEMENTATION" => caps.implementation = Some(value.to_owned()),
                "SASL" => {
                    caps.sasl = value
                        .split_whitespace()
                        .map(str::to_ascii_uppercase)
                        .collect()
                }
                "SIEVE" => {
                    caps.sieve = value
                        .split_whitespace()
                        .map(str::to_ascii_lowercase)
                        .collect()
                }
                "STARTTLS" => caps.starttls = true,
                _ => {}
            }
        }
        caps
    }

    /// Does the server's Sieve implementation have `extension` (e.g. "include", "copy")?
    pub fn has_extension(&self, extension: &str) -> bool {
        self.sieve.iter().any(|e| e.eq_ignore_ascii_case(extension))
    }
}

/// A script on the server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScriptInfo {
    pub name: String,
    pub active: bool,
}

/// A ManageSieve session.
pub struct Client {
    stream: BufReader<Box<dyn Io>>,
    addr: String,
    pub capabilities: Capabilities,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("addr", &self.addr).finish()
    }
}

impl Client {
    /// Connect (TLS per the endpoint; the default port is 4190) and read the greeting.
    pub async fn connect(
        endpoint: &Endpoint,
        ca_pem: Option<&[u8]>,
        side: Side,
    ) -> Result<Client, RoutingError> {
        let port = endpoint.port.unwrap_or(DEFAULT_PORT);
        let addr = format!("{}:{port}", endpoint.host);
        let tcp = tokio::time::timeout(TIMEOUT, TcpStream::connect((endpoint.host.as_str(), port)))
            .await
            .map_err(|_| sieve_err(&addr, "timed out connecting"))?
            .map_err(|e| sieve_err(&addr, format!("cannot connect: {e}")))?;
        let _ = tcp.set_nodelay(true);
        let tls = match endpoint.tls {
            TlsMode::None => None,
            TlsMode::Tls | TlsMode::Starttls => {
                Some(crate::imap::conn::tls_connector(side, ca_pem)?)
            }
        };
        let stream: Box<dyn Io> = match (endpoint.tls, &tls) {
            (TlsMode::Tls, Some(t)) => Box::new(handshake(t, &endpoint.host, &addr, tcp).await?),
            _ => Box::new(tcp),
        };
        let mut client = Client {
            stream: BufReader::new(stream),
            addr,
            capabilities: Capabilities::default(),
        };
        let greeting = client.response().await?;
        client.check(&greeting, "greeting")?;
        client.capabilities = Capabilities::from_lines(&greeting.lines);
        if endpoint.tls == TlsMode::Starttls {
            if !client.capabilities.starttls {
                return Err(sieve_err(
                    &client.addr,
                    "the server does not offer STARTTLS",
                ));
            }
            client.command("STARTTLS", &[]).await?;
            let Client { stream, addr, .. } = client;
            let tls = tls.as_ref().expect("starttls has a connector");
            let secured = handshake(tls, &endpoint.host, &addr, stream.into_inner()).await?;
            client = Client {
                stream: BufReader::new(Box::new(secured)),
                addr,
                capabilities: Capabilities::default(),
            };
            // The server repeats its capabilities over the secured connection.
            let caps = client.response().await?;
            client.check(&caps, "capabilities after STARTTLS")?;
            client.capabilities = Capabilities::from_lines(&caps.lines);
        }
        Ok(client)
    }

    /// Log in with a mailbox's IMAP credentials (the same SASL as IMAP).
    pub async fn login(&mut self, login: &Login) -> Result<(), RoutingError> {
        let b64 = |s: String| base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
        let (mechanism, initial) = match login {
            Login::Files { .. } => {
                return Err(sieve_err(
                    &self.addr,
                    "this mailbox has no login on the old server: its source is files",
                ));
            }
            Login::Password { user, password } => {
                ("PLAIN", b64(format!("\0{user}\0{}", password.expose())))
            }
            Login::Master {
                user,
                master_user,
                master_password,
            } => (
                "PLAIN",
                b64(format!(
                    "{user}\0{master_user}\0{}",
                    master_password.expose()
                )),
            ),
            Login::OAuth2 {
                user,
                token,
                mechanism,
            } => {
                let token = token
                    .token()
                    .await
                    .map_err(|e| sieve_err(&self.addr, e.to_string()))?;
                let (host, port) = self
                    .addr
                    .rsplit_once(':')
                    .map_or((self.addr.as_str(), 4190), |(h, p)| {
                        (h, p.parse().unwrap_or(4190))
                    });
                (
                    mechanism.name(),
                    b64(mechanism.initial_response(user, token.expose(), host, port)),
                )
            }
        };
        let initial = zeroize::Zeroizing::new(initial);
        if !self.capabilities.sasl.iter().any(|m| m == mechanism) {
            return Err(sieve_err(
                &self.addr,
                format!("the server does not offer SASL {mechanism}"),
            ));
        }
        let line = zeroize::Zeroizing::new(format!(
            "AUTHENTICATE {} {}\r\n",
            quote(mechanism),
            quote(&initial)
        ));
        self.send(line.as_bytes()).await?;
        let addr = self.addr.clone();
        let resp = loop {
            let line = tokio::time::timeout(TIMEOUT, read_logical_line(&mut self.stream))
                .await
                .map_err(|_| sieve_err(&addr, "timed out waiting for the server"))?
                .map_err(|e| sieve_err(&addr, e))?;
            if let Some(resp) = final_response(&line, Vec::new()) {
                break resp;
            }
            // A server challenge (e.g. the error of a refused XOAUTH2 token): answer empty
            // so that the server concludes with NO.
            self.send(b"\"\"\r\n").await?;
        };
        if resp.status != Status::Ok {
            return Err(sieve_err(
                &self.addr,
                format!("login as {} refused: {}", login.user(), resp.describe()),
            ));
        }
        Ok(())
    }

    pub async fn list_scripts(&mut self) -> Result<Vec<ScriptInfo>, RoutingError> {
        let resp = self.command("LISTSCRIPTS", &[]).await?;
        Ok(resp
            .lines
            .iter()
            .filter_map(|l| match l.as_slice() {
                [Token::Str(name)] => Some(ScriptInfo {
                    name: name.clone(),
                    active: false,
                }),
                [Token::Str(name), Token::Atom(a)] => Some(ScriptInfo {
                    name: name.clone(),
                    active: a.eq_ignore_ascii_case("ACTIVE"),
                }),
                _ => None,
            })
            .collect())
    }

    pub async fn get_script(&mut self, name: &str) -> Result<String, RoutingError> {
        let resp = self.command("GETSCRIPT", &[name]).await?;
        match resp.lines.first().and_then(|l| l.first()) {
            Some(Token::Str(s)) => Ok(s.clone()),
            _ => Err(sieve_err(
                &self.addr,
                format!("GETSCRIPT {name:?}: no script in the answer"),
            )),
        }
    }

    /// Upload (or replace) a script; the server checks it and refuses an invalid one.
    pub async fn put_script(&mut self, name: &str, content: &str) -> Result<(), RoutingError> {
        self.command("PUTSCRIPT", &[name, content]).await.map(drop)
    }

    /// Make `name` the active script; `""` deactivates every script.
    pub async fn set_active(&mut self, name: &str) -> Result<(), RoutingError> {
        self.command("SETACTIVE", &[name]).await.map(drop)
    }

    pub async fn delete_script(&mut self, name: &str) -> Result<(), RoutingError> {
        self.command("DELETESCRIPT", &[name]).await.map(drop)
    }

    pub async fn logout(mut self) -> Result<(), RoutingError> {
        self.send(b"LOGOUT\r\n").await?;
        let resp = self.response().await?;
        self.check(&resp, "LOGOUT")
    }

    /// Send `name` with string arguments and read the response; anything but OK fails.
    pub async fn command(&mut self, name: &str, args: &[&str]) -> Result<Response, RoutingError> {
        let resp = self.exchange(name, args).await?;
        self.check(&resp, name)?;
        Ok(resp)
    }

    /// Send `name` with string arguments and read the response, whatever its status.
    async fn exchange(&mut self, name: &str, args: &[&str]) -> Result<Response, RoutingError> {
        let mut line = name.to_owned();
        for a in args {
            line.push(' ');
            line.push_str(&encode_string(a));
        }
        line.push_str("\r\n");
        self.send(line.as_bytes()).await?;
        self.response().await
    }

    /// Run a command the server may refuse for the script's sake (CHECKSCRIPT, PUTSCRIPT):
    /// `Ok(Err(reason))` with the server's words when it answers NO; a BYE or a lost
    /// connection is an error of the session.
    async fn refusable(
        &mut self,
        name: &str,
        args: &[&str],
    ) -> Result<Result<(), String>, RoutingError> {
        let resp = self.exchange(name, args).await?;
        match resp.status {
            Status::Ok => Ok(Ok(())),
            Status::No => Ok(Err(resp.describe())),
            Status::Bye => Err(sieve_err(
                &self.addr,
                format!("{name}: {}", resp.describe()),
            )),
        }
    }

    /// Whether the server would take `content` (CHECKSCRIPT, RFC 5804 2.12); nothing is
    /// stored.
    pub async fn check_script(
        &mut self,
        content: &str,
    ) -> Result<Result<(), String>, RoutingError> {
        self.refusable("CHECKSCRIPT", &[content]).await
    }

    /// [`put_script`](Self::put_script) with a refusal (an invalid script, a quota) told
    /// apart from a failed session.
    pub async fn try_put_script(
        &mut self,
        name: &str,
        content: &str,
    ) -> Result<Result<(), String>, RoutingError> {
        self.refusable("PUTSCRIPT", &[name, content]).await
    }

    fn check(&self, resp: &Response, what: &str) -> Result<(), RoutingError> {
        if resp.status == Status::Ok {
            Ok(())
        } else {
            Err(sieve_err(
                &self.addr,
                format!("{what}: {}", resp.describe()),
            ))
        }
    }

    async fn send(&mut self, data: &[u8]) -> Result<(), RoutingError> {
        let w = self.stream.get_mut();
        tokio::time::timeout(TIMEOUT, async {
            w.write_all(data).await?;
            w.flush().await
        })
        .await
        .map_err(|_| sieve_err(&self.addr, "timed out sending"))?
        .map_err(|e| sieve_err(&self.addr, format!("sending: {e}")))
    }

    /// Read one complete response.
    pub async fn response(&mut self) -> Result<Response, RoutingError> {
        let addr = self.addr.clone();
        tokio::time::timeout(TIMEOUT, read_response(&mut self.stream))
            .await
            .map_err(|_| sieve_err(&addr, "timed out waiting for the server"))?
            .map_err(|e| sieve_err(&addr, e))
    }
}

/// Connect to `endpoint` (its private CA read through `resolver`) and log in as `login`.
pub async fn open(
    endpoint: &Endpoint,
    login: &Login,
    side: crate::imap::conn::Side,
    resolver: &crate::secrets::Resolver,
) -> Result<Client, RoutingError> {
    let ca = endpoint
        .ca_certificate
        .as_ref()
        .map(|r| resolver.resolve(r))
        .transpose()
        .map_err(|e| RoutingError::Secret {
            what: "managesieve caCertificate".into(),
            error: e.to_string(),
        })?;
    let mut client =
        Client::connect(endpoint, ca.as_ref().map(|c| c.expose().as_bytes()), side).await?;
    client.login(login).await?;
    Ok(client)
}

async fn handshake<S: Io + 'static>(
    tls: &tokio_rustls::TlsConnector,
    host: &str,
    addr: &str,
    stream: S,
) -> Result<tokio_rustls::client::TlsStream<S>, RoutingError> {
    let name = ServerName::try_from(host.to_owned())
        .map_err(|e| sieve_err(addr, format!("invalid server name: {e}")))?;
    tokio::time::timeout(TIMEOUT, tls.connect(name, stream))
        .await
        .map_err(|_| sieve_err(addr, "timed out in the TLS handshake"))?
        .map_err(|e| sieve_err(addr, format!("TLS: {e}")))
}

fn sieve_err(addr: &str, reason: impl Into<String>) -> RoutingError {
    RoutingError::Sieve {
        addr: addr.to_owned(),
        reason: reason.into(),
    }
}

/// A string as a quoted string when that is allowed (short, no CR/LF/NUL, no `{`-ambiguity),
/// else as a non-synchronizing literal `{n+}`, which RFC 5804 requires servers to accept.
pub fn encode_string(s: &str) -> String {
    let quotable = s.len() <= 1024 && !s.bytes().any(|b| matches!(b, b'\r' | b'\n' | 0));
    if quotable {
        quote(s)
    } else {
        format!("{{{}+}}\r\n{s}", s.len())
    }
}

fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Read logical lines (a line with literals spans several physical lines) until the final
/// `OK`, `NO` or `BYE`.
pub async fn read_response<R: tokio::io::AsyncBufRead + Unpin>(
    r: &mut R,
) -> Result<Response, String> {
    let mut lines = Vec::new();
    loop {
        let line = read_logical_line(r).await?;
        if let Some(resp) = final_response(&line, Vec::new()) {
            return Ok(Response { lines, ..resp });
        }
        lines.push(line);
    }
}

/// The response, when `line` is the final `OK`/`NO`/`BYE` line.
fn final_response(line: &[Token], lines: Vec<Vec<Token>>) -> Option<Response> {
    let Some(Token::Atom(a)) = line.first() else {
        return None;
    };
    let status = match a.to_ascii_uppercase().as_str() {
        "OK" => Status::Ok,
        "NO" => Status::No,
        "BYE" => Status::Bye,
        _ => return None,
    };
    let mut rest = line[1..].iter().cloned().peekable();
    let mut code = Vec::new();
    if rest.peek() == Some(&Token::LParen) {
        rest.next();
        let mut depth = 1;
        for t in rest.by_ref() {
            match t {
                Token::LParen => depth += 1,
                Token::RParen => {
                    depth -= 1;
                    if depth == 0 {
                        break;
                    }
                }
                _ => {}
            }
            code.push(t);
        }
    }
    let text = rest.find_map(|t| match t {
        Token::Str(s) => Some(s),
        _ => None,
    });
    Some(Response {
        lines,
        status,
        code,
        text,
    })
}

async fn read_logical_line<R: tokio::io::AsyncBufRead + Unpin>(
    r: &mut R,
) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    loop {
        let mut raw = Vec::new();
        let n = (&mut *r)
            .take(MAX_LINE as u64)
            .read_until(b'\n', &mut raw)
            .await
            .map_err(|e| format!("reading: {e}"))?;
        if n == 0 {
            return Err("the server closed the connection".into());
        }
        if raw.last() != Some(&b'\n') {
            return Err("response line too long".into());
        }
        while matches!(raw.last(), Some(b'\n' | b'\r')) {
            raw.pop();
        }
        match tokenize(&raw, &mut tokens)? {
            None => return Ok(tokens),
            Some(len) => {
                if len > MAX_LITERAL {
                    return Err(format!("literal of {len} bytes is too large"));
                }
                let mut buf = vec![0; len];
                r.read_exact(&mut buf)
                    .await
                    .map_err(|e| format!("reading a literal: {e}"))?;
                tokens.push(Token::Str(
                    String::from_utf8(buf).map_err(|_| "a literal is not UTF-8".to_owned())?,
                ));
            }
        }
    }
}

/// Tokenize one physical line into `out`; `Some(n)` when it ends with a literal of n bytes.
fn tokenize(line: &[u8], out: &mut Vec<Token>) -> Result<Option<usize>, String> {
    let mut i = 0;
    while i < line.len() {
        match line[i] {
            b' ' | b'\t' => i += 1,
            b'(' => {
                out.push(Token::LParen);
                i += 1;
            }
            b')' => {
                out.push(Token::RParen);
                i += 1;
            }
            b'"' => {
                let mut s = Vec::new();
                i += 1;
                loop {
                    match line.get(i) {
                        None => return Err("unterminated quoted string".into()),
                        Some(b'"') => {
                            i += 1;
                            break;
                        }
                        Some(b'\\') => {
                            let c = *line.get(i + 1).ok_or("unterminated quoted string")?;
                            s.push(c);
                            i += 2;
                        }
                        Some(&c) => {
                            s.push(c);
                            i += 1;
                        }
                    }
                }
                out.push(Token::Str(
                    String::from_utf8(s).map_err(|_| "a string is not UTF-8".to_owned())?,
                ));
            }
            b'{' => {
                let end = line[i..]
                    .iter()
                    .position(|&c| c == b'}')
                    .ok_or("unterminated literal length")?
                    + i;
                if end + 1 != line.len() {
                    return Err("a literal length must end its line".into());
                }
                let digits = std::str::from_utf8(&line[i + 1..end])
                    .map_err(|_| "bad literal length")?
                    .trim_end_matches('+');
                let n: usize = digits
                    .parse()
                    .map_err(|_| format!("bad literal length {digits:?}"))?;
                return Ok(Some(n));
            }
            _ => {
                let start = i;
                while i < line.len() && !matches!(line[i], b' ' | b'\t' | b'(' | b')') {
                    i += 1;
                }
                out.push(Token::Atom(
                    String::from_utf8_lossy(&line[start..i]).into_owned(),
                ));
            }
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn parse(text: &str) -> Result<Response, String> {
        read_response(&mut text.as_bytes()).await
    }

    #[tokio::test]
    async fn capabilities_and_ok() {
        let r = parse(
            "\"IMPLEMENTATION\" \"Dovecot Pigeonhole\"\r\n\"SIEVE\" \"fileinto copy include\"\r\n\
             \"SASL\" \"PLAIN LOGIN\"\r\n\"STARTTLS\"\r\nOK \"Ready.\"\r\n",
        )
        .await
        .unwrap();
        assert_eq!(r.status, Status::Ok);
        assert_eq!(r.text.as_deref(), Some("Ready."));
        let caps = Capabilities::from_lines(&r.lines);
        assert_eq!(caps.implementation.as_deref(), Some("Dovecot Pigeonhole"));
        assert!(caps.starttls && caps.has_extension("include") && caps.has_extension("COPY"));
        assert_eq!(caps.sasl, vec!["PLAIN", "LOGIN"]);
    }

    #[tokio::test]
    async fn literals_codes_and_escapes() {
        let r = parse("{12}\r\nkeep;\r\nstop;\r\nOK\r\n").await.unwrap();
        assert_eq!(r.lines, vec![vec![Token::Str("keep;\r\nstop;".into())]]);
        let r = parse("\"a \\\"b\\\\\" ACTIVE\r\n\"c\"\r\nOK\r\n")
            .await
            .unwrap();
        assert_eq!(
            r.lines,
            vec![
                vec![Token::Str("a \"b\\".into()), Token::Atom("ACTIVE".into())],
                vec![Token::Str("c".into())]
            ]
        );
        let r = parse("NO (QUOTA/MAXSIZE) {5}\r\nbig!!\r\n").await.unwrap();
        assert_eq!(r.status, Status::No);
        assert_eq!(r.code, vec![Token::Atom("QUOTA/MAXSIZE".into())]);
        assert_eq!(r.text.as_deref(), Some("big!!"));
        assert_eq!(r.describe(), "NO (QUOTA/MAXSIZE) big!!");
        assert!(parse("\"unterminated\r\n").await.is_err());
        assert!(parse("").await.is_err());
    }

    #[test]
    fn strings_are_quoted_or_literal() {
        assert_eq!(encode_string("my \"s\""), "\"my \\\"s\\\"\"");
        assert_eq!(encode_string("a\r\nb"), "{4+}\r\na\r\nb");
    }
}
