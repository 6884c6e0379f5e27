//! Waiting for conditions with a deadline instead of sleeping.
//!
//! A fixed sleep is either too short on a loaded machine (flaky tests) or too long on an
//! idle one (slow tests). [`until`] polls a condition with a short, growing interval and
//! returns as soon as it holds, or fails with a message saying what was awaited.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};

/// Default deadline for a server to become ready. Generous because the test machine may be
/// busy compiling; polling makes the happy path fast regardless.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// Default deadline for a server to stop.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(20);

/// Polls `check` until it returns `Ok(Some(value))`, then returns the value.
///
/// `Ok(None)` means "not yet"; `Err` aborts the wait at once (e.g. the server process
/// died). After `timeout`, fails with `what` in the message.
pub fn until<T>(
    timeout: Duration,
    what: &str,
    mut check: impl FnMut() -> Result<Option<T>>,
) -> Result<T> {
    let deadline = Instant::now() + timeout;
    let mut interval = Duration::from_millis(5);
    loop {
        if let Some(value) = check()? {
            return Ok(value);
        }
        let now = Instant::now();
        if now >= deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(interval.min(deadline - now));
        interval = (interval * 2).min(Duration::from_millis(200));
    }
}

/// Like [`until`] for a boolean condition.
pub fn until_true(
    timeout: Duration,
    what: &str,
    mut check: impl FnMut() -> Result<bool>,
) -> Result<()> {
    until(timeout, what, || Ok(check()?.then_some(())))
}

/// Whether `127.0.0.1:port` accepts a TCP connection.
pub fn accepts(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok()
}

/// Whether `127.0.0.1:port` accepts a connection and its first line starts with `prefix`
/// (e.g. `"* OK"` for IMAP, `"220 "` for SMTP/LMTP).
pub fn greets(port: u16, prefix: &str) -> bool {
    first_line(port).is_some_and(|line| line.starts_with(prefix))
}

/// The first line a server sends on `127.0.0.1:port`, if it sends one within a second.
pub fn first_line(port: u16) -> Option<String> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(1))).ok()?;
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line).ok()?;
    Some(line)
}
