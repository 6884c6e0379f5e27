//! A small scripted IMAP server that misbehaves in one chosen way at a time, for tests of
//! how mailshift bears a broken or hostile source: stalls at each phase, floods, huge
//! literals, endless lines, answers that do not match the question, folder names that
//! collide or carry control characters.
//!
//! Nothing like it exists as a real server (a real server misbehaves by accident, not on
//! demand), so this is the one stand-in among the harness's servers. It serves one user's
//! INBOX (and, for the naming cases, extra folders) correctly except for its
//! [`Misbehaviour`], enough of IMAP4rev1 for a read-only client: CAPABILITY, LOGIN,
//! AUTHENTICATE PLAIN, LIST, LSUB, STATUS, EXAMINE/SELECT, UID FETCH, NOOP, LOGOUT. It
//! never advertises an extension, so the client takes its plainest path.

use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use anyhow::Result;

/// The one thing the server does wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Misbehaviour {
    /// Nothing: a correct server (the control case).
    None,
    /// Accepts the connection and never greets.
    SilentGreeting,
    /// Never answers the CAPABILITY sent before login.
    SilentPreLoginCapability,
    /// Never answers the credentials (AUTHENTICATE or LOGIN).
    SilentLogin,
    /// Closes the connection as soon as the credentials arrive.
    DropAtLogin,
    /// Never answers the CAPABILITY sent after login.
    SilentPostLoginCapability,
    /// Never answers LIST.
    SilentList,
    /// After EXAMINE's first responses, sends `* 1 EXISTS` forever.
    FloodAfterExamine,
    /// Announces a literal of this many bytes for a body, then sends it slowly.
    HugeLiteral(u64),
    /// Answers LIST with a line that never ends.
    EndlessLine,
    /// Answers LIST with bytes no IMAP parser accepts.
    Garbage,
    /// Sends every body under UID + 100.
    WrongUids,
    /// Sends one extra message, with a UID nobody asked for.
    ExtraUid,
    /// Sends each body twice, the second time different.
    DuplicateUid,
    /// Sends bodies shorter than their RFC822.SIZE.
    ShortBodies,
    /// Sends bodies whose Message-ID is not the one listed (at the listed size).
    WrongMessageIds,
    /// Lists two folders whose names decode to the same text: `&AOk-t&AOk-` (modified
    /// UTF-7) and `été` (raw UTF-8), each holding its own messages.
    CollidingNames,
    /// Lists a folder whose name holds CR, LF and ESC (sent as a literal).
    ControlCharacterName,
    /// Answers each body fetch in a way drawn from this seed, message by message: right,
    /// under another UID, twice with different bodies, short, with another Message-ID,
    /// left out, or with an extra message after it. A quarter of the seeds answer
    /// everything right, a quarter only ever leave messages out.
    Random(u64),
    /// Answers the first `times` body fetches (over all connections) with Office 365's
    /// throttling refusal, suggesting `backoff_ms`; then serves them.
    Throttled { times: usize, backoff_ms: u64 },
}

/// One message of a folder.
#[derive(Clone, Debug)]
pub struct Message {
    pub uid: u32,
    pub body: Vec<u8>,
}

/// A running scripted server, stopped on drop.
pub struct Hostile {
    port: u16,
    stop: Arc<AtomicBool>,
    commands: Arc<Mutex<Vec<String>>>,
    connections: Arc<AtomicUsize>,
    logins: Arc<AtomicUsize>,
}

type Folders = Vec<(String, Vec<Message>)>;

impl Hostile {
    /// Starts a server on a free loopback port, for `user`/`password`, holding `messages`
    /// in INBOX.
    pub fn start(
        misbehaviour: Misbehaviour,
        user: &str,
        password: &str,
        messages: Vec<Message>,
    ) -> Result<Hostile> {
        let listener = TcpListener::bind((crate::HOST, 0))?;
        let port = listener.local_addr()?.port();
        listener.set_nonblocking(true)?;
        let mut folders: Folders = vec![("INBOX".into(), messages.clone())];
        match misbehaviour {
            Misbehaviour::CollidingNames => {
                folders.push(("&AOk-t&AOk-".into(), renumbered(&messages, "utf7")));
                folders.push(("été".into(), renumbered(&messages, "utf8")));
            }
            Misbehaviour::ControlCharacterName => {
                folders.push(("evil\r\nsync: perfect\u{1b}[2J".into(), messages.clone()));
            }
            _ => {}
        }
        let server = Arc::new(Server {
            misbehaviour,
            user: user.to_owned(),
            password: password.to_owned(),
            folders,
            body_fetches: AtomicUsize::new(0),
        });
        let stop = Arc::new(AtomicBool::new(false));
        let commands = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(AtomicUsize::new(0));
        let logins = Arc::new(AtomicUsize::new(0));
        {
            let (stop, commands, connections, logins) = (
                stop.clone(),
                commands.clone(),
                connections.clone(),
                logins.clone(),
            );
            thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            connections.fetch_add(1, Ordering::Relaxed);
                            let (server, stop, commands, logins) = (
                                server.clone(),
                                stop.clone(),
                                commands.clone(),
                                logins.clone(),
                            );
                            thread::spawn(move || {
                                let _ = stream.set_nonblocking(false);
                                let conn = Conn {
                                    server: &server,
                                    stop: &stop,
                                    commands: &commands,
                                    logins: &logins,
                                    selected: None,
                                };
                                let _ = conn.serve(stream);
                            });
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                            thread::sleep(Duration::from_millis(5));
                        }
                        Err(_) => break,
                    }
                }
            });
        }
        Ok(Hostile {
            port,
            stop,
            commands,
            connections,
            logins,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Every command line received so far, tag included, on all connections.
    pub fn commands(&self) -> Vec<String> {
        self.commands.lock().map(|c| c.clone()).unwrap_or_default()
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::Relaxed)
    }

    /// Times credentials were received (each a password sent).
    pub fn logins(&self) -> usize {
        self.logins.load(Ordering::Relaxed)
    }
}

impl Drop for Hostile {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The same messages under other Message-IDs, so two folders' copies are told apart.
fn renumbered(messages: &[Message], tag: &str) -> Vec<Message> {
    messages
        .iter()
        .map(|m| Message {
            uid: m.uid,
            body: String::from_utf8_lossy(&m.body)
                .replacen("Message-ID: <", &format!("Message-ID: <{tag}-"), 1)
                .into_bytes(),
        })
        .collect()
}

struct Server {
    misbehaviour: Misbehaviour,
    user: String,
    password: String,
    folders: Folders,
    /// Body fetches answered so far (for [`Misbehaviour::Throttled`]).
    body_fetches: AtomicUsize,
}

struct Conn<'a> {
    server: &'a Server,
    stop: &'a AtomicBool,
    commands: &'a Mutex<Vec<String>>,
    logins: &'a AtomicUsize,
    selected: Option<usize>,
}

const CAPS: &str = "IMAP4rev1 AUTH=PLAIN";
const DATE: &str = "01-Jan-2024 10:00:00 +0000";

impl Conn<'_> {
    fn serve(mut self, stream: TcpStream) -> std::io::Result<()> {
        stream.set_read_timeout(Some(Duration::from_millis(200)))?;
        let mut out = stream.try_clone()?;
        let mut input = BufReader::new(stream);
        let m = self.server.misbehaviour.clone();
        if m == Misbehaviour::SilentGreeting {
            return self.hang();
        }
        write!(
            out,
            "* OK [CAPABILITY {CAPS}] hostile test server ready\r\n"
        )?;
        let mut authed = false;
        loop {
            let Some(line) = self.read_line(&mut input)? else {
                return Ok(());
            };
            self.commands.lock().unwrap().push(line.clone());
            let (tag, rest) = line.split_once(' ').unwrap_or((&line, ""));
            let (verb, args) = rest.split_once(' ').unwrap_or((rest, ""));
            let verb = verb.to_ascii_uppercase();
            match verb.as_str() {
                "CAPABILITY" => {
                    if (!authed && m == Misbehaviour::SilentPreLoginCapability)
                        || (authed && m == Misbehaviour::SilentPostLoginCapability)
                    {
                        return self.hang();
                    }
                    write!(out, "* CAPABILITY {CAPS}\r\n{tag} OK done\r\n")?;
                }
                "LOGIN" | "AUTHENTICATE" => {
                    let credentials = if verb == "LOGIN" {
                        args.to_owned()
                    } else {
                        write!(out, "+ \r\n")?;
                        let Some(answer) = self.read_line(&mut input)? else {
                            return Ok(());
                        };
                        answer
                    };
                    self.logins.fetch_add(1, Ordering::Relaxed);
                    match m {
                        Misbehaviour::SilentLogin => return self.hang(),
                        Misbehaviour::DropAtLogin => {
                            let _ = out.shutdown(Shutdown::Both);
                            return Ok(());
                        }
                        _ => {}
                    }
                    if self.credentials_ok(&verb, &credentials) {
                        authed = true;
                        write!(out, "{tag} OK logged in\r\n")?;
                    } else {
                        write!(out, "{tag} NO [AUTHENTICATIONFAILED] wrong\r\n")?;
                    }
                }
                "LIST" | "LSUB" => {
                    if verb == "LIST" {
                        match m {
                            Misbehaviour::SilentList => return self.hang(),
                            Misbehaviour::EndlessLine => {
                                out.write_all(b"* LIST () \"/\" \"")?;
                                let chunk = vec![b'x'; 64 * 1024];
                                while out.write_all(&chunk).is_ok() {
                                    if self.stop.load(Ordering::Relaxed) {
                                        break;
                                    }
                                }
                                return Ok(());
                            }
                            Misbehaviour::Garbage => {
                                write!(out, "* LIST ((( \u{1}\u{2} ]]] garbage\r\n{tag} OK\r\n")?;
                                continue;
                            }
                            _ => {}
                        }
                    }
                    for (name, _) in &self.server.folders {
                        if name.bytes().any(|b| b < 0x20) {
                            write!(out, "* {verb} () \"/\" {{{}}}\r\n{name}\r\n", name.len())?;
                        } else {
                            write!(out, "* {verb} () \"/\" \"{name}\"\r\n")?;
                        }
                    }
                    write!(out, "{tag} OK done\r\n")?;
                }
                "STATUS" => {
                    let Some(i) = self.folder(args) else {
                        write!(out, "{tag} NO no such folder\r\n")?;
                        continue;
                    };
                    let msgs = &self.server.folders[i].1;
                    write!(
                        out,
                        "* STATUS \"{}\" (MESSAGES {} UIDNEXT {} UIDVALIDITY 7)\r\n{tag} OK done\r\n",
                        self.server.folders[i].0.replace(['\r', '\n'], ""),
                        msgs.len(),
                        uid_next(msgs)
                    )?;
                }
                "EXAMINE" | "SELECT" => {
                    let Some(i) = self.folder(args) else {
                        write!(out, "{tag} NO no such folder\r\n")?;
                        continue;
                    };
                    self.selected = Some(i);
                    let msgs = &self.server.folders[i].1;
                    write!(
                        out,
                        "* FLAGS (\\Seen \\Answered \\Flagged \\Deleted \\Draft)\r\n* {} EXISTS\r\n* 0 RECENT\r\n* OK [UIDVALIDITY 7] ok\r\n* OK [UIDNEXT {}] ok\r\n",
                        msgs.len(),
                        uid_next(msgs)
                    )?;
                    if m == Misbehaviour::FloodAfterExamine {
                        let flood = b"* 1 EXISTS\r\n".repeat(4096);
                        while out.write_all(&flood).is_ok() {
                            if self.stop.load(Ordering::Relaxed) {
                                break;
                            }
                        }
                        return Ok(());
                    }
                    write!(out, "{tag} OK [READ-ONLY] done\r\n")?;
                }
                "UID" => self.uid_command(&mut out, tag, args)?,
                "NOOP" => write!(out, "{tag} OK done\r\n")?,
                "LOGOUT" => {
                    write!(out, "* BYE bye\r\n{tag} OK done\r\n")?;
                    return Ok(());
                }
                _ => write!(out, "{tag} BAD unknown command\r\n")?,
            }
        }
    }

    /// Blocks until the server is dropped, saying nothing.
    fn hang(&self) -> std::io::Result<()> {
        while !self.stop.load(Ordering::Relaxed) {
            thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// The next line without CRLF, or `None` when the client left or the server stops.
    fn read_line(&self, input: &mut BufReader<TcpStream>) -> std::io::Result<Option<String>> {
        let mut line = Vec::new();
        loop {
            match input.read_until(b'\n', &mut line) {
                Ok(0) => return Ok(None),
                Ok(_) if line.ends_with(b"\n") => {
                    let s = String::from_utf8_lossy(&line);
                    return Ok(Some(s.trim_end_matches(['\r', '\n']).to_owned()));
                }
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    if self.stop.load(Ordering::Relaxed) {
                        return Ok(None);
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn credentials_ok(&self, verb: &str, credentials: &str) -> bool {
        if verb == "LOGIN" {
            let unquote = |s: &str| s.trim_matches('"').to_owned();
            let mut parts = credentials.splitn(2, ' ');
            let (u, p) = (
                unquote(parts.next().unwrap_or("")),
                unquote(parts.next().unwrap_or("")),
            );
            return u == self.server.user && p == self.server.password;
        }
        use base64::Engine as _;
        let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(credentials.trim()) else {
            return false;
        };
        let parts: Vec<&[u8]> = raw.split(|&b| b == 0).collect();
        parts.len() == 3
            && parts[1] == self.server.user.as_bytes()
            && parts[2] == self.server.password.as_bytes()
    }

    fn folder(&self, args: &str) -> Option<usize> {
        let name = args.split(" (").next()?.trim().trim_matches('"');
        self.server
            .folders
            .iter()
            .position(|(n, _)| n == name || (n.bytes().any(|b| b < 0x20) && name.starts_with('{')))
    }

    fn uid_command(&self, out: &mut TcpStream, tag: &str, args: &str) -> std::io::Result<()> {
        let Some(rest) = args
            .strip_prefix("FETCH ")
            .or_else(|| args.strip_prefix("fetch "))
        else {
            return write!(out, "{tag} BAD only UID FETCH here\r\n");
        };
        let Some(i) = self.selected else {
            return write!(out, "{tag} BAD nothing selected\r\n");
        };
        let (set, items) = rest.split_once(' ').unwrap_or((rest, ""));
        let msgs = &self.server.folders[i].1;
        let wanted: Vec<(usize, &Message)> = msgs
            .iter()
            .enumerate()
            .filter(|(_, m)| in_set(set, m.uid, uid_next(msgs)))
            .collect();
        let bodies = items.contains("BODY.PEEK[]");
        let headers = items.contains("HEADER.FIELDS");
        let m = &self.server.misbehaviour;
        if let Misbehaviour::Throttled { times, backoff_ms } = m
            && bodies
            && self.server.body_fetches.fetch_add(1, Ordering::SeqCst) < *times
        {
            return write!(
                out,
                "{tag} NO Request is throttled. Suggested Backoff Time: {backoff_ms} milliseconds\r\n"
            );
        }
        for (seq, msg) in &wanted {
            let seq = seq + 1;
            if !bodies {
                let size = msg.body.len();
                if headers {
                    let h = header_fields(&msg.body);
                    write!(
                        out,
                        "* {seq} FETCH (UID {} FLAGS (\\Seen) INTERNALDATE \"{DATE}\" RFC822.SIZE {size} BODY[HEADER.FIELDS (MESSAGE-ID DATE FROM TO SUBJECT)] {{{}}}\r\n",
                        msg.uid,
                        h.len()
                    )?;
                    out.write_all(&h)?;
                    out.write_all(b")\r\n")?;
                } else {
                    write!(out, "* {seq} FETCH (UID {} FLAGS (\\Seen))\r\n", msg.uid)?;
                }
                continue;
            }
            let mut send = |uid: u32, body: &[u8]| -> std::io::Result<()> {
                write!(
                    out,
                    "* {seq} FETCH (UID {uid} FLAGS (\\Seen) INTERNALDATE \"{DATE}\" BODY[] {{{}}}\r\n",
                    body.len()
                )?;
                out.write_all(body)?;
                out.write_all(b")\r\n")
            };
            let drawn;
            let m = match m {
                Misbehaviour::Random(seed) => match draw(*seed, msg.uid) {
                    Some(d) => {
                        drawn = d;
                        &drawn
                    }
                    // Left out of the answer.
                    None => continue,
                },
                m => m,
            };
            match m {
                Misbehaviour::HugeLiteral(n) => {
                    write!(
                        out,
                        "* {seq} FETCH (UID {} FLAGS (\\Seen) BODY[] {{{n}}}\r\n",
                        msg.uid
                    )?;
                    // A trickle, so a client that waits for it all would wait long.
                    for _ in 0..100 {
                        if out.write_all(&[b'a'; 1024]).is_err()
                            || self.stop.load(Ordering::Relaxed)
                        {
                            return Ok(());
                        }
                        thread::sleep(Duration::from_millis(50));
                    }
                    return Ok(());
                }
                Misbehaviour::WrongUids => send(msg.uid + 100, &msg.body)?,
                Misbehaviour::DuplicateUid => {
                    send(msg.uid, &msg.body)?;
                    let mut other = msg.body.clone();
                    if let Some(last) = other.last_mut() {
                        *last = b'!';
                    }
                    send(msg.uid, &other)?;
                }
                Misbehaviour::ShortBodies => send(msg.uid, &msg.body[..msg.body.len() / 2])?,
                Misbehaviour::WrongMessageIds => {
                    // Another identity at the same size: the first character of the id
                    // changed.
                    let mut body = msg.body.clone();
                    let at = body
                        .windows(13)
                        .position(|w| w.eq_ignore_ascii_case(b"Message-ID: <"));
                    if let Some(i) = at.map(|i| i + 13).filter(|&i| i < body.len()) {
                        body[i] = if body[i] == b'x' { b'y' } else { b'x' };
                    }
                    send(msg.uid, &body)?
                }
                Misbehaviour::ExtraUid => {
                    send(msg.uid, &msg.body)?;
                    send(
                        msg.uid + 1000,
                        b"Message-ID: <intruder@hostile>\r\n\r\nx\r\n",
                    )?;
                }
                _ => send(msg.uid, &msg.body)?,
            }
        }
        if bodies && *m == Misbehaviour::ExtraUid {
            let extra = b"Message-ID: <extra@hostile>\r\nSubject: not asked for\r\n\r\nx\r\n";
            write!(
                out,
                "* 99 FETCH (UID 9999 FLAGS () INTERNALDATE \"{DATE}\" BODY[] {{{}}}\r\n",
                extra.len()
            )?;
            out.write_all(extra)?;
            out.write_all(b")\r\n")?;
        }
        write!(out, "{tag} OK done\r\n")
    }
}

/// How one message is answered under [`Misbehaviour::Random`] (`None`: left out).
fn draw(seed: u64, uid: u32) -> Option<Misbehaviour> {
    let mut x = seed ^ (u64::from(uid).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    // The seed's last two bits choose how bad the server is: always right, only ever
    // leaving messages out, or anything.
    match seed % 4 {
        0 => return Some(Misbehaviour::None),
        1 => return (!x.is_multiple_of(6)).then_some(Misbehaviour::None),
        _ => {}
    }
    Some(match x % 12 {
        0 => Misbehaviour::WrongUids,
        1 => Misbehaviour::DuplicateUid,
        2 => Misbehaviour::ShortBodies,
        3 => Misbehaviour::WrongMessageIds,
        4 => return None,
        5 => Misbehaviour::ExtraUid,
        _ => Misbehaviour::None,
    })
}

fn uid_next(msgs: &[Message]) -> u32 {
    msgs.iter().map(|m| m.uid).max().unwrap_or(0) + 1
}

/// Whether `uid` is in a UID set like `1:3,5,7:*`.
fn in_set(set: &str, uid: u32, uid_next: u32) -> bool {
    let num = |s: &str| {
        if s == "*" {
            Some(uid_next.saturating_sub(1).max(1))
        } else {
            s.parse::<u32>().ok()
        }
    };
    set.split(',').any(|part| match part.split_once(':') {
        Some((a, b)) => match (num(a), num(b)) {
            (Some(a), Some(b)) => (a.min(b)..=a.max(b)).contains(&uid),
            _ => false,
        },
        None => num(part) == Some(uid),
    })
}

/// The header fields the listing asks for, as a server returns them (with the blank line).
fn header_fields(body: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(body);
    let head = text.split("\r\n\r\n").next().unwrap_or("");
    let mut out = String::new();
    for line in head.split("\r\n") {
        let name = line.split(':').next().unwrap_or("").to_ascii_lowercase();
        if ["message-id", "date", "from", "to", "subject"].contains(&name.as_str()) {
            out.push_str(line);
            out.push_str("\r\n");
        }
    }
    out.push_str("\r\n");
    out.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uid_sets_cover_ranges_and_star() {
        assert!(in_set("1:3,5", 2, 10));
        assert!(in_set("1:3,5", 5, 10));
        assert!(!in_set("1:3,5", 4, 10));
        assert!(in_set("4:*", 9, 10));
        assert!(!in_set("4:*", 3, 10));
    }
}
