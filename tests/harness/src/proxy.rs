//! A TCP proxy on loopback that can drop every connection through it, on demand or once a
//! number of bytes has passed: for testing that clients survive connections lost mid-way.
//!
//! ```no_run
//! # fn main() -> anyhow::Result<()> {
//! let proxy = mailshift_harness::Proxy::start(143)?;
//! // point the client at proxy.port() ...
//! proxy.cut_after(1_000_000); // drop everything once 1 MB more has been forwarded
//! proxy.cut_all();            // or now
//! # Ok(()) }
//! ```
//!
//! Connections are forwarded by two threads each; cutting shuts both sockets down, so both
//! ends see the connection end at once. The proxy keeps accepting new connections after a
//! cut. Dropping it stops the listener and cuts what is left.

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
        .spawn(move || pump(client, s2, &s));
    pump(server, c2, shared);
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
}
