//! Deliberately tiny protocol helpers for smoke tests and test fixtures.
//!
//! These speak just enough plaintext IMAP and SMTP to prove a harness server works and to
//! put fixture data in place. They are not mailshift's clients and make no attempt at
//! completeness (no TLS, no pipelining, minimal parsing): the real tests exercise
//! mailshift's own code against the servers.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::{Context, Result, bail};

/// A TCP connection to a loopback port read line by line (CRLF kept) with a timeout.
#[derive(Debug)]
pub struct LineConn {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl LineConn {
    /// Connects to `127.0.0.1:port`; reads time out after 30 seconds.
    pub fn connect(port: u16) -> Result<LineConn> {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
            .with_context(|| format!("connecting to {addr}"))?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        stream.set_write_timeout(Some(Duration::from_secs(30)))?;
        Ok(LineConn {
            writer: stream.try_clone()?,
            reader: BufReader::new(stream),
        })
    }

    /// Reads one line including its CRLF; fails on EOF.
    pub fn read_line(&mut self) -> Result<Vec<u8>> {
        let mut line = Vec::new();
        self.reader.read_until(b'\n', &mut line)?;
        if line.is_empty() {
            bail!("connection closed by server");
        }
        Ok(line)
    }

    /// Reads one line as (lossy) text without the line ending.
    pub fn read_text_line(&mut self) -> Result<String> {
        let line = self.read_line()?;
        Ok(String::from_utf8_lossy(&line)
            .trim_end_matches(['\r', '\n'])
            .to_string())
    }

    /// Reads exactly `n` bytes.
    pub fn read_exact(&mut self, n: usize) -> Result<Vec<u8>> {
        let mut buf = vec![0; n];
        self.reader.read_exact(&mut buf)?;
        Ok(buf)
    }

    /// Sends bytes as they are.
    pub fn send(&mut self, data: &[u8]) -> Result<()> {
        self.writer.write_all(data)?;
        Ok(())
    }

    /// Sends `line` followed by CRLF.
    pub fn send_line(&mut self, line: &str) -> Result<()> {
        self.send(format!("{line}\r\n").as_bytes())
    }
}

/// One untagged IMAP response (`* ...`), with any literals it carried.
#[derive(Debug, Clone, Default)]
pub struct Untagged {
    /// The response text; each literal is left as its `{n}` marker.
    pub text: String,
    /// The literal payloads, in order.
    pub literals: Vec<Vec<u8>>,
}

/// A minimal plaintext IMAP session (LITERAL+ is used for APPEND, which Dovecot supports).
#[derive(Debug)]
pub struct Imap {
    conn: LineConn,
    next_tag: u32,
    /// The server greeting line.
    pub greeting: String,
}

impl Imap {
    /// Connects and reads the greeting (fails unless it is `* OK`).
    pub fn connect(port: u16) -> Result<Imap> {
        let mut conn = LineConn::connect(port)?;
        let greeting = conn.read_text_line()?;
        if !greeting.starts_with("* OK") {
            bail!("unexpected IMAP greeting: {greeting}");
        }
        Ok(Imap {
            conn,
            next_tag: 1,
            greeting,
        })
    }

    /// Connects and logs in with LOGIN.
    pub fn login(port: u16, user: &str, password: &str) -> Result<Imap> {
        let mut imap = Imap::connect(port)?;
        imap.command(&format!("LOGIN {} {}", quote(user), quote(password)))?;
        Ok(imap)
    }

    /// Runs one command; returns its untagged responses if it completes with OK, fails
    /// with the tagged status line otherwise.
    pub fn command(&mut self, command: &str) -> Result<Vec<Untagged>> {
        let (responses, status) = self.command_status(command)?;
        if !status.starts_with("OK") {
            bail!("IMAP `{}` failed: {status}", redact(command));
        }
        Ok(responses)
    }

    /// Runs one command and returns its untagged responses and the tagged status
    /// (`OK ...`, `NO ...` or `BAD ...`, without the tag) whatever it was.
    pub fn command_status(&mut self, command: &str) -> Result<(Vec<Untagged>, String)> {
        let tag = self.tag();
        self.conn.send_line(&format!("{tag} {command}"))?;
        self.read_until_tagged(&tag)
    }

    /// `AUTHENTICATE PLAIN` with an initial response (SASL-IR): `authzid` is the user to act
    /// as (empty for oneself), `authcid` who authenticates (e.g. a master user).
    pub fn authenticate_plain(
        &mut self,
        authzid: &str,
        authcid: &str,
        password: &str,
    ) -> Result<()> {
        let response = crate::base64(format!("{authzid}\0{authcid}\0{password}").as_bytes());
        let tag = self.tag();
        self.conn
            .send_line(&format!("{tag} AUTHENTICATE PLAIN {response}"))?;
        let (_, status) = self.read_until_tagged(&tag)?;
        if !status.starts_with("OK") {
            bail!("AUTHENTICATE PLAIN as {authcid} for {authzid:?} failed: {status}");
        }
        Ok(())
    }

    /// Appends `message` to `mailbox` (using a non-synchronizing literal); returns the
    /// tagged status text (with `[APPENDUID ...]`).
    pub fn append(&mut self, mailbox: &str, flags: &str, message: &[u8]) -> Result<String> {
        let tag = self.tag();
        self.conn.send(
            format!(
                "{tag} APPEND {} ({flags}) {{{}+}}\r\n",
                quote(mailbox),
                message.len()
            )
            .as_bytes(),
        )?;
        self.conn.send(message)?;
        self.conn.send(b"\r\n")?;
        let (_, status) = self.read_until_tagged(&tag)?;
        if !status.starts_with("OK") {
            bail!("APPEND to {mailbox} failed: {status}");
        }
        Ok(status)
    }

    /// Appends many messages to `mailbox` at once (MULTIAPPEND, non-synchronizing literals):
    /// each with its flags (e.g. `\\Seen $Label1`) and INTERNALDATE (e.g.
    /// `"07-Mar-2019 08:09:10 +0530"`, or empty for now). Fails on the first refusal.
    pub fn append_many(&mut self, mailbox: &str, messages: &[(&str, &str, &[u8])]) -> Result<()> {
        // In chunks, so that unread answers never fill the socket buffers.
        for chunk in messages.chunks(100) {
            self.append_chunk(mailbox, chunk)?;
        }
        Ok(())
    }

    /// One MULTIAPPEND (RFC 3502) command: all messages in one transaction, which is
    /// many times faster for Dovecot than one APPEND each.
    fn append_chunk(&mut self, mailbox: &str, messages: &[(&str, &str, &[u8])]) -> Result<()> {
        let tag = self.tag();
        let mut data = format!("{tag} APPEND {}", quote(mailbox)).into_bytes();
        for (flags, date, message) in messages {
            let date = if date.is_empty() {
                String::new()
            } else {
                format!(" {}", quote(date))
            };
            data.extend_from_slice(
                format!(" ({flags}){date} {{{}+}}\r\n", message.len()).as_bytes(),
            );
            data.extend_from_slice(message);
        }
        data.extend_from_slice(b"\r\n");
        self.conn.send(&data)?;
        let (_, status) = self.read_until_tagged(&tag)?;
        if !status.starts_with("OK") {
            bail!("APPEND to {mailbox} failed: {status}");
        }
        Ok(())
    }

    /// `SELECT`s `mailbox` and fetches the full raw message with UID `uid` (BODY.PEEK[]).
    pub fn fetch_raw(&mut self, mailbox: &str, uid: u32) -> Result<Vec<u8>> {
        self.command(&format!("SELECT {}", quote(mailbox)))?;
        let responses = self.command(&format!("UID FETCH {uid} BODY.PEEK[]"))?;
        responses
            .into_iter()
            .find(|r| r.text.contains("FETCH") && r.text.contains("BODY[]"))
            .and_then(|r| r.literals.into_iter().next())
            .with_context(|| format!("no message with UID {uid} in {mailbox}"))
    }

    /// Logs out (errors ignored: the session is over either way).
    pub fn logout(mut self) {
        let _ = self.command("LOGOUT");
    }

    fn tag(&mut self) -> String {
        let tag = format!("h{}", self.next_tag);
        self.next_tag += 1;
        tag
    }

    fn read_until_tagged(&mut self, tag: &str) -> Result<(Vec<Untagged>, String)> {
        let mut responses = Vec::new();
        loop {
            let mut resp = Untagged::default();
            let mut line = self.conn.read_text_line()?;
            // A line ending in {n} is followed by an n-byte literal and more of the line.
            while let Some(n) = literal_len(&line) {
                resp.text.push_str(&line);
                resp.literals.push(self.conn.read_exact(n)?);
                line = self.conn.read_text_line()?;
            }
            resp.text.push_str(&line);
            if let Some(status) = resp.text.strip_prefix(&format!("{tag} ")) {
                return Ok((responses, status.to_string()));
            }
            if resp.text.starts_with("* ") {
                responses.push(resp);
            }
            // Continuation requests ("+ ...") are not expected with LITERAL+; ignore.
        }
    }
}

fn literal_len(line: &str) -> Option<usize> {
    let inner = line.strip_suffix('}')?;
    let start = inner.rfind('{')?;
    inner[start + 1..].trim_end_matches('+').parse().ok()
}

/// An IMAP quoted string.
pub fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

fn redact(command: &str) -> String {
    if command.to_ascii_uppercase().starts_with("LOGIN ") {
        "LOGIN ...".to_string()
    } else {
        command.to_string()
    }
}

/// Sends one message over plain SMTP to `127.0.0.1:port` (EHLO, MAIL, RCPT, DATA) and
/// returns the server's reply to the final `.` (e.g. `250 2.0.0 Ok: queued as ...`).
///
/// `message` is the raw message; lines starting with `.` are dot-stuffed here.
pub fn smtp_send(port: u16, from: &str, to: &[&str], message: &[u8]) -> Result<String> {
    let mut conn = LineConn::connect(port)?;
    expect_smtp(&mut conn, "220", "greeting")?;
    conn.send_line("EHLO harness.localhost")?;
    expect_smtp(&mut conn, "250", "EHLO")?;
    conn.send_line(&format!("MAIL FROM:<{from}>"))?;
    expect_smtp(&mut conn, "250", "MAIL FROM")?;
    for rcpt in to {
        conn.send_line(&format!("RCPT TO:<{rcpt}>"))?;
        expect_smtp(&mut conn, "250", "RCPT TO")?;
    }
    conn.send_line("DATA")?;
    expect_smtp(&mut conn, "354", "DATA")?;
    let mut data = Vec::with_capacity(message.len() + 16);
    for line in message.split_inclusive(|&b| b == b'\n') {
        if line.starts_with(b".") {
            data.push(b'.');
        }
        data.extend_from_slice(line);
    }
    if !data.ends_with(b"\r\n") {
        data.extend_from_slice(b"\r\n");
    }
    data.extend_from_slice(b".\r\n");
    conn.send(&data)?;
    let reply = expect_smtp(&mut conn, "250", "end of DATA")?;
    conn.send_line("QUIT")?;
    Ok(reply)
}

/// Reads a (possibly multi-line) SMTP reply and checks its code.
fn expect_smtp(conn: &mut LineConn, code: &str, stage: &str) -> Result<String> {
    let mut reply = String::new();
    loop {
        let line = conn.read_text_line()?;
        reply.push_str(&line);
        // "250-..." continues, "250 ..." ends.
        if line.as_bytes().get(3) != Some(&b'-') {
            break;
        }
        reply.push('\n');
    }
    if !reply.starts_with(code) {
        bail!("SMTP {stage}: expected {code}, got: {reply}");
    }
    Ok(reply)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_lengths() {
        assert_eq!(literal_len("* 1 FETCH (UID 1 BODY[] {42}"), Some(42));
        assert_eq!(literal_len("a APPEND x {7+}"), Some(7));
        assert_eq!(literal_len("* OK done"), None);
        assert_eq!(literal_len("* OK {weird}"), None);
    }

    #[test]
    fn quoting() {
        assert_eq!(quote(r#"a"b\c"#), r#""a\"b\\c""#);
    }
}
