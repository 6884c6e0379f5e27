//! A slow link on loopback: a TCP proxy that delivers every chunk it forwards a one-way
//! delay after it would have left a rate-limited link, for measuring tools across a WAN.
//!
//! This machine's kernel has no `netem`, so the delay is made here, in user space: each
//! direction of a connection has a reader thread that stamps every chunk with the time its
//! last byte would leave a link of the given rate plus the one-way delay, and a writer
//! thread that sends the chunk when that time comes. The rate is the link's, not a
//! connection's: all connections through it queue behind each other in each direction, as
//! at one bottleneck. The bottleneck's queue is bounded ([`QUEUE`]): a sender that keeps
//! ahead of the rate is held back by TCP, as on a real link, so the proxy never buffers
//! more than the rate allows over the delay and the queue.
//!
//! ```no_run
//! # fn main() -> anyhow::Result<()> {
//! use std::time::Duration;
//! // 50 ms round trip, 100 Mbit/s each way, in front of a server on port 143.
//! let link = mailshift_harness::SlowLink::start(143, Duration::from_millis(25), 12_500_000)?;
//! // point the client at link.port() ...
//! # Ok(()) }
//! ```

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

/// The longest a chunk waits at the bottleneck before the sender is held back: 20 ms is
/// 250 KB at 100 Mbit/s, a modest router buffer.
pub const QUEUE: Duration = Duration::from_millis(20);

/// Bytes read at once: at 100 Mbit/s, 1.3 ms of link time, fine enough for pacing.
const CHUNK: usize = 16 * 1024;

/// A running link from `127.0.0.1:port()` to `127.0.0.1:target`.
#[derive(Debug)]
pub struct SlowLink {
    port: u16,
    shared: Arc<Shared>,
    listener: Option<JoinHandle<()>>,
}

#[derive(Debug)]
struct Shared {
    target: SocketAddr,
    one_way: Duration,
    /// Bytes per second each way; 0 for no limit.
    rate: u64,
    live: Mutex<Vec<TcpStream>>,
    stop: AtomicBool,
    /// When the link is next free, towards the server and towards the client.
    up: Mutex<Instant>,
    down: Mutex<Instant>,
}

impl SlowLink {
    /// Listens on a free loopback port; forwards to `127.0.0.1:target`, each direction
    /// delayed by `one_way` and limited to `rate` bytes per second (0: unlimited).
    pub fn start(target: u16, one_way: Duration, rate: u64) -> Result<SlowLink> {
        let listener = TcpListener::bind((crate::HOST, 0)).context("binding the link")?;
        let port = listener.local_addr()?.port();
        let shared = Arc::new(Shared {
            target: SocketAddr::from(([127, 0, 0, 1], target)),
            one_way,
            rate,
            live: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
            up: Mutex::new(Instant::now()),
            down: Mutex::new(Instant::now()),
        });
        let s = Arc::clone(&shared);
        let handle = std::thread::Builder::new()
            .name(format!("link-{port}"))
            .spawn(move || accept_loop(&listener, &s))?;
        Ok(SlowLink {
            port,
            shared,
            listener: Some(handle),
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for SlowLink {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect((crate::HOST, self.port));
        if let Some(h) = self.listener.take() {
            let _ = h.join();
        }
        for s in std::mem::take(&mut *lock(&self.shared.live)) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>) {
    for client in listener.incoming() {
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(client) = client else { continue };
        let s = Arc::clone(shared);
        let _ = std::thread::Builder::new()
            .name("link-conn".into())
            .spawn(move || connect(client, &s));
    }
}

fn connect(client: TcpStream, shared: &Arc<Shared>) {
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
        .name("link-up".into())
        .spawn(move || direction(client, s2, &s, &s.up));
    direction(server, c2, shared, &shared.down);
}

/// One direction of one connection: `from` is read as fast as the link (`free`: when it is
/// next free in this direction) takes it, `to` gets each chunk when it is due.
fn direction(mut from: TcpStream, mut to: TcpStream, shared: &Shared, free: &Mutex<Instant>) {
    let (one_way, rate) = (shared.one_way, shared.rate);
    let (tx, rx) = mpsc::channel::<(Instant, Vec<u8>)>();
    let writer = std::thread::Builder::new()
        .name("link-deliver".into())
        .spawn(move || {
            for (due, chunk) in rx {
                let now = Instant::now();
                if due > now {
                    std::thread::sleep(due - now);
                }
                if to.write_all(&chunk).is_err() {
                    break;
                }
            }
            let _ = to.shutdown(Shutdown::Write);
        });
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let on_link = if rate == 0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(n as f64 / rate as f64)
        };
        // Chunks leave one after the other at `rate`, whichever connection sent them.
        let left = {
            let mut free = lock(free);
            *free = (*free).max(Instant::now()) + on_link;
            *free
        };
        if tx.send((left + one_way, buf[..n].to_vec())).is_err() {
            break;
        }
        // A full bottleneck holds the sender back (TCP does the rest).
        let queued = left.saturating_duration_since(Instant::now());
        if queued > QUEUE {
            std::thread::sleep(queued - QUEUE);
        }
    }
    drop(tx);
    if let Ok(w) = writer {
        let _ = w.join();
    }
    let _ = from.shutdown(Shutdown::Read);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::BufRead;

    #[test]
    fn delays_each_way_and_limits_the_rate() -> Result<()> {
        let echo = TcpListener::bind((crate::HOST, 0))?;
        let echo_port = echo.local_addr()?.port();
        std::thread::spawn(move || {
            for s in echo.incoming().flatten() {
                std::thread::spawn(move || {
                    let mut r = std::io::BufReader::new(s.try_clone().unwrap());
                    let mut w = s;
                    let mut line = Vec::new();
                    while r
                        .read_until(b'\n', &mut line)
                        .map(|n| n > 0)
                        .unwrap_or(false)
                    {
                        let _ = w.write_all(&line);
                        line.clear();
                    }
                });
            }
        });
        // 2 × 30 ms, 1 MB/s.
        let link = SlowLink::start(echo_port, Duration::from_millis(30), 1_000_000)?;
        let mut c = TcpStream::connect((crate::HOST, link.port()))?;
        c.set_nodelay(true)?;
        let mut r = std::io::BufReader::new(c.try_clone()?);
        let started = Instant::now();
        c.write_all(b"ping\n")?;
        let mut line = Vec::new();
        r.read_until(b'\n', &mut line)?;
        assert_eq!(line, b"ping\n");
        assert!(started.elapsed() >= Duration::from_millis(60));
        // 200 KB each way at 1 MB/s: at least 0.2 s on the link.
        let mut big = vec![b'x'; 200_000];
        big.push(b'\n');
        let started = Instant::now();
        c.write_all(&big)?;
        line.clear();
        r.read_until(b'\n', &mut line)?;
        assert_eq!(line.len(), big.len());
        assert!(started.elapsed() >= Duration::from_millis(200));
        // Two connections share the link: 2 × 100 KB each way take 0.2 s at least too.
        let mut half = vec![b'y'; 100_000];
        half.push(b'\n');
        let started = Instant::now();
        let other = {
            let port = link.port();
            let half = half.clone();
            std::thread::spawn(move || -> Result<usize> {
                let mut c = TcpStream::connect((crate::HOST, port))?;
                let mut r = std::io::BufReader::new(c.try_clone()?);
                c.write_all(&half)?;
                let mut line = Vec::new();
                r.read_until(b'\n', &mut line)?;
                Ok(line.len())
            })
        };
        c.write_all(&half)?;
        line.clear();
        r.read_until(b'\n', &mut line)?;
        let theirs = other.join().expect("no panic")?;
        assert_eq!((line.len(), theirs), (half.len(), half.len()));
        assert!(started.elapsed() >= Duration::from_millis(200));
        Ok(())
    }
}
