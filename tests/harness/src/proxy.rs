//! A TCP proxy on loopback that can drop every connection through it, on demand or once a
//! number of bytes has passed: for testing that clients survive connections lost mid-way.
//!
//! ```no_run
//! # fn main() -> anyhow::Result<()> {
//! let proxy = mailshift_harness::Proxy::start(143)?;
//! // point the client at proxy.port() ...
//! proxy.cut_after(1_000_000); // drop everything once 1 MB more has been forwarded
//! proxy.cut_all();            // or now
//! proxy.hold_next_append();    // keep the next IMAP APPEND from the server ...
//! proxy.release();             // ... until now (then the client's side is closed)
//! # Ok(()) }
//! ```
//!
//! Connections are forwarded by two threads each; cutting shuts both sockets down, so both
//! ends see the connection end at once. The proxy keeps accepting new connections after a
//! cut. Dropping it stops the listener and cuts what is left.
//!
//! A held APPEND is what a server meets when its client dies with a batch on the wire: the
//! whole command arrives, late, and the connection ends after it. The client's bytes are
//! read into the proxy from the next APPEND command on (found by following the IMAP
//! command grammar: lines, and literals `{n}`, `{n+}`, `~{n+}` inside them) and forwarded
//! only by [`Proxy::release`].

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result};

/// A running proxy from `127.0.0.1:port()` to `127.0.0.1:target`.
#[derive(Debug)]
pub struct Proxy {
    port: u16,
    shared: Arc<Shared>,
    listener: Option<JoinHandle<()>>,
}

#[derive(Debug)]
struct Shared {
    target: SocketAddr,
    /// Both sockets of every live connection.
    live: Mutex<Vec<TcpStream>>,
    /// Bytes forwarded so far, both directions.
    forwarded: AtomicU64,
    /// Cut everything once `forwarded` reaches this.
    cut_at: Mutex<Option<u64>>,
    cuts: AtomicU64,
    accepted: AtomicU64,
    stop: AtomicBool,
    /// Hold the next APPEND a client starts.
    hold_armed: AtomicBool,
    held: Mutex<Option<Held>>,
}

/// A client's bytes kept from the server, from the start of an APPEND command on.
#[derive(Debug)]
struct Held {
    server: TcpStream,
    bytes: Vec<u8>,
    /// The APPEND command is held whole (its last literal and line included).
    complete: bool,
    /// The client's side ended meanwhile: close the server's side after the release.
    client_gone: bool,
    released: bool,
}

impl Proxy {
    /// Listens on a free loopback port and forwards to `127.0.0.1:target`.
    pub fn start(target: u16) -> Result<Proxy> {
        let listener = TcpListener::bind((crate::HOST, 0)).context("binding the proxy")?;
        let port = listener.local_addr()?.port();
        let shared = Arc::new(Shared {
            target: SocketAddr::from(([127, 0, 0, 1], target)),
            live: Mutex::new(Vec::new()),
            forwarded: AtomicU64::new(0),
            cut_at: Mutex::new(None),
            cuts: AtomicU64::new(0),
            accepted: AtomicU64::new(0),
            stop: AtomicBool::new(false),
            hold_armed: AtomicBool::new(false),
            held: Mutex::new(None),
        });
        let s = Arc::clone(&shared);
        let handle = std::thread::Builder::new()
            .name(format!("proxy-{port}"))
            .spawn(move || accept_loop(&listener, &s))?;
        Ok(Proxy {
            port,
            shared,
            listener: Some(handle),
        })
    }

    /// The port clients connect to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Drops every connection now.
    pub fn cut_all(&self) {
        self.shared.cut();
    }

    /// Drops every connection once `bytes` more bytes have been forwarded (once).
    pub fn cut_after(&self, bytes: u64) {
        let now = self.shared.forwarded.load(Ordering::SeqCst);
        *lock(&self.shared.cut_at) = Some(now + bytes);
    }

    /// How many times connections were cut.
    pub fn cuts(&self) -> u64 {
        self.shared.cuts.load(Ordering::SeqCst)
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> u64 {
        self.shared.accepted.load(Ordering::SeqCst)
    }

    /// Bytes forwarded so far (both directions).
    pub fn forwarded(&self) -> u64 {
        self.shared.forwarded.load(Ordering::SeqCst)
    }

    /// Keeps the next APPEND command any client sends (and what that client sends after
    /// it) from the server until [`Proxy::release`].
    pub fn hold_next_append(&self) {
        self.shared.hold_armed.store(true, Ordering::SeqCst);
    }

    /// Whether a whole APPEND command is being held.
    pub fn holds_an_append(&self) -> bool {
        lock(&self.shared.held)
            .as_ref()
            .is_some_and(|h| h.complete && !h.released)
    }

    /// Sends what was held to the server and forwards that client's bytes from now on; if
    /// the client has gone meanwhile, the server then sees the connection end.
    pub fn release(&self) -> Result<()> {
        let mut held = lock(&self.shared.held);
        let Some(h) = held.as_mut().filter(|h| !h.released) else {
            anyhow::bail!("nothing is held");
        };
        h.released = true;
        let mut server = &h.server;
        server
            .write_all(&h.bytes)
            .context("releasing the held bytes")?;
        if h.client_gone {
            let _ = server.shutdown(Shutdown::Write);
        }
        Ok(())
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept.
        let _ = TcpStream::connect((crate::HOST, self.port));
        if let Some(h) = self.listener.take() {
            let _ = h.join();
        }
        self.shared.cut();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    fn cut(&self) {
        self.cuts.fetch_add(1, Ordering::SeqCst);
        let live = std::mem::take(&mut *lock(&self.live));
        for s in &live {
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    /// Counts forwarded bytes and cuts when armed and due.
    fn count(&self, n: usize) {
        let total = self.forwarded.fetch_add(n as u64, Ordering::SeqCst) + n as u64;
        let due = {
            let mut at = lock(&self.cut_at);
            match *at {
                Some(limit) if total >= limit => {
                    *at = None;
                    true
                }
                _ => false,
            }
        };
        if due {
            self.cut();
        }
    }
}

fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>) {
    for client in listener.incoming() {
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(client) = client else { continue };
        shared.accepted.fetch_add(1, Ordering::SeqCst);
        let s = Arc::clone(shared);
        // Connecting to the server happens off the accept loop: a server that is going
        // down may leave a connection hanging, and that must not hold up the next client.
        let _ = std::thread::Builder::new()
            .name("proxy-conn".into())
            .spawn(move || connect(client, &s));
    }
}

fn connect(client: TcpStream, shared: &Arc<Shared>) {
    // The server may be down (restarting): then the client sees its connection closed.
    let Ok(server) = TcpStream::connect_timeout(&shared.target, Duration::from_secs(5)) else {
        let _ = client.shutdown(Shutdown::Both);
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (Ok(c2), Ok(s2), Ok(c3), Ok(s3)) = (
        client.try_clone(),
        server.try_clone(),
        client.try_clone(),
        server.try_clone(),
    ) else {
        return;
    };
    {
        let mut live = lock(&shared.live);
        live.retain(|s| s.peer_addr().is_ok());
        live.push(c3);
        live.push(s3);
    }
    let s = Arc::clone(shared);
    let _ = std::thread::Builder::new()
        .name("proxy-pump".into())
        .spawn(move || pump_commands(client, s2, &s));
    pump(server, c2, shared);
}

/// Where the client's stream is, in the IMAP command grammar.
#[derive(Debug, Default)]
struct Commands {
    line: Vec<u8>,
    literal: u64,
    /// Inside a command (not at the start of the next one).
    inside: bool,
}

/// What one byte of the client's stream was.
#[derive(Debug, PartialEq, Eq)]
enum Step {
    /// A byte of a line or a literal.
    Byte,
    /// The end of a line announcing a literal: the command goes on after it.
    Literal,
    /// The end of the command's last line.
    End,
}

impl Commands {
    fn at_start(&self) -> bool {
        !self.inside
    }

    fn push(&mut self, b: u8) -> Step {
        self.inside = true;
        if self.literal > 0 {
            self.literal -= 1;
            return Step::Byte;
        }
        self.line.push(b);
        if !self.line.ends_with(b"\r\n") {
            return Step::Byte;
        }
        let text = &self.line[..self.line.len() - 2];
        let announced = text
            .strip_suffix(b"}")
            .and_then(|t| t.iter().rposition(|&c| c == b'{').map(|at| &t[at + 1..]))
            .map(|n| n.strip_suffix(b"+").unwrap_or(n))
            .and_then(|n| std::str::from_utf8(n).ok()?.parse::<u64>().ok());
        self.line.clear();
        match announced {
            Some(n) => {
                self.literal = n;
                Step::Literal
            }
            None => {
                self.inside = false;
                Step::End
            }
        }
    }
}

/// What the client-to-server pump does with the bytes it reads.
enum Mode {
    Forward,
    /// A command began while a hold was armed: its first line decides.
    Probe(Vec<u8>),
    Hold,
}

/// [`pump`] for the client's side, holding an APPEND when asked to.
fn pump_commands(mut from: TcpStream, mut to: TcpStream, shared: &Shared) {
    let mut buf = vec![0u8; 16 * 1024];
    let mut commands = Commands::default();
    let mut mode = Mode::Forward;
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let mut now = Vec::with_capacity(n);
        let mut held = lock(&shared.held);
        if matches!(mode, Mode::Hold) && held.as_ref().is_some_and(|h| h.released) {
            mode = Mode::Forward;
        }
        for &b in &buf[..n] {
            if matches!(mode, Mode::Forward)
                && commands.at_start()
                && shared.hold_armed.load(Ordering::SeqCst)
            {
                mode = Mode::Probe(Vec::new());
            }
            let step = commands.push(b);
            match &mut mode {
                Mode::Forward => now.push(b),
                Mode::Probe(first) => {
                    first.push(b);
                    if step == Step::Byte {
                        continue;
                    }
                    let verb = first.split(|&c| c == b' ').nth(1).unwrap_or_default();
                    let append = verb.eq_ignore_ascii_case(b"APPEND")
                        && shared
                            .hold_armed
                            .compare_exchange(true, false, Ordering::SeqCst, Ordering::SeqCst)
                            .is_ok();
                    let bytes = std::mem::take(first);
                    match (append, to.try_clone()) {
                        (true, Ok(server)) => {
                            *held = Some(Held {
                                server,
                                bytes,
                                complete: step == Step::End,
                                client_gone: false,
                                released: false,
                            });
                            mode = Mode::Hold;
                        }
                        _ => {
                            now.extend(bytes);
                            mode = Mode::Forward;
                        }
                    }
                }
                Mode::Hold => {
                    if let Some(h) = held.as_mut() {
                        h.bytes.push(b);
                        h.complete |= step == Step::End;
                    }
                }
            }
        }
        drop(held);
        if !now.is_empty() {
            if to.write_all(&now).is_err() {
                break;
            }
            shared.count(now.len());
        }
    }
    let mut held = lock(&shared.held);
    if let (Mode::Hold, Some(h)) = (&mode, held.as_mut())
        && !h.released
    {
        // The server hears of the end only after what is held.
        h.client_gone = true;
        let _ = from.shutdown(Shutdown::Read);
        return;
    }
    drop(held);
    let _ = to.shutdown(Shutdown::Write);
    let _ = from.shutdown(Shutdown::Read);
}

fn pump(mut from: TcpStream, mut to: TcpStream, shared: &Shared) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
                shared.count(n);
            }
        }
    }
    let _ = to.shutdown(Shutdown::Write);
    let _ = from.shutdown(Shutdown::Read);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::BufRead;

    #[test]
    fn forwards_and_cuts() -> Result<()> {
        let echo = TcpListener::bind((crate::HOST, 0))?;
        let echo_port = echo.local_addr()?.port();
        std::thread::spawn(move || {
            for s in echo.incoming().flatten() {
                std::thread::spawn(move || {
                    let mut r = std::io::BufReader::new(s.try_clone().unwrap());
                    let mut w = s;
                    let mut line = String::new();
                    while r.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
                        let _ = w.write_all(line.as_bytes());
                        line.clear();
                    }
                });
            }
        });
        let proxy = Proxy::start(echo_port)?;
        let mut c = TcpStream::connect((crate::HOST, proxy.port()))?;
        c.set_read_timeout(Some(std::time::Duration::from_secs(10)))?;
        c.write_all(b"hello\n")?;
        let mut r = std::io::BufReader::new(c.try_clone()?);
        let mut line = String::new();
        r.read_line(&mut line)?;
        assert_eq!(line, "hello\n");
        proxy.cut_after(10);
        c.write_all(b"0123456789abcdef\n")?;
        // The connection ends (possibly after part of the echo arrived).
        let mut rest = Vec::new();
        let _ = r.read_to_end(&mut rest);
        assert_eq!(proxy.cuts(), 1);
        // New connections still work.
        let mut c = TcpStream::connect((crate::HOST, proxy.port()))?;
        c.write_all(b"again\n")?;
        let mut r = std::io::BufReader::new(c);
        let mut line = String::new();
        r.read_line(&mut line)?;
        assert_eq!(line, "again\n");
        assert_eq!(proxy.accepted(), 2);
        Ok(())
    }

    #[test]
    fn holds_the_next_append_whole_until_released() -> Result<()> {
        let server = TcpListener::bind((crate::HOST, 0))?;
        let server_port = server.local_addr()?.port();
        let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
        std::thread::spawn(move || {
            if let Some(Ok(mut s)) = server.incoming().next() {
                let mut buf = [0u8; 4096];
                while let Ok(n) = s.read(&mut buf) {
                    if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                        break;
                    }
                }
                let _ = tx.send(Vec::new());
            }
        });
        let received = |upto: &[u8]| -> Vec<u8> {
            let mut got = Vec::new();
            while !got.ends_with(upto) {
                match rx.recv_timeout(std::time::Duration::from_secs(10)) {
                    Ok(chunk) if !chunk.is_empty() => got.extend(chunk),
                    _ => break,
                }
            }
            got
        };
        let proxy = Proxy::start(server_port)?;
        let mut c = TcpStream::connect((crate::HOST, proxy.port()))?;
        c.write_all(b"a1 NOOP\r\n")?;
        assert_eq!(received(b"NOOP\r\n"), b"a1 NOOP\r\n");
        proxy.hold_next_append();
        // Not an APPEND: forwarded, the hold stays armed.
        c.write_all(b"a2 SELECT INBOX\r\n")?;
        assert_eq!(received(b"INBOX\r\n"), b"a2 SELECT INBOX\r\n");
        // A MULTIAPPEND whose literal holds what looks like a line ending and a command.
        let append: &[u8] = b"a3 APPEND INBOX {12+}\r\nx\r\na9 NOOP\r\n (\\Seen) {2+}\r\nhi\r\n";
        c.write_all(&append[..20])?;
        assert!(!proxy.holds_an_append());
        c.write_all(&append[20..])?;
        wait_for(|| proxy.holds_an_append());
        drop(c);
        proxy.release()?;
        // All of it, then the end of the connection.
        let mut got = Vec::new();
        while let Ok(chunk) = rx.recv_timeout(std::time::Duration::from_secs(10)) {
            if chunk.is_empty() {
                break;
            }
            got.extend(chunk);
        }
        assert_eq!(got, append);
        assert!(proxy.release().is_err(), "released twice");
        Ok(())
    }

    fn wait_for(condition: impl Fn() -> bool) {
        crate::wait::until_true(std::time::Duration::from_secs(10), "the proxy", || {
            Ok(condition())
        })
        .unwrap();
    }
}
