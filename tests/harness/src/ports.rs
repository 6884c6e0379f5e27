//! Free loopback ports for the servers.
//!
//! A port is found by binding to port 0 on `127.0.0.1` and asking the kernel which port it
//! gave us; the socket is then closed and the number handed to a server. Another process
//! can grab the port in between, so every server start retries with fresh ports when it
//! sees "address in use". Within this process, a port is never handed out twice, so
//! parallel tests do not race each other for the same number.

use std::collections::HashSet;
use std::net::{TcpListener, UdpSocket};
use std::sync::{Mutex, OnceLock};

use anyhow::{Context, Result, bail};

fn handed_out() -> &'static Mutex<HashSet<u16>> {
    static PORTS: OnceLock<Mutex<HashSet<u16>>> = OnceLock::new();
    PORTS.get_or_init(|| Mutex::new(HashSet::new()))
}

/// A port on `127.0.0.1` that is currently free for both TCP and UDP and has not been
/// returned before by this process.
///
/// UDP is checked too because DNS servers listen on both.
pub fn free_port() -> Result<u16> {
    for _ in 0..200 {
        let listener = TcpListener::bind((crate::HOST, 0))
            .context("binding 127.0.0.1:0 to find a free port")?;
        let port = listener.local_addr()?.port();
        if UdpSocket::bind((crate::HOST, port)).is_err() {
            continue;
        }
        let mut seen = handed_out().lock().unwrap_or_else(|e| e.into_inner());
        if seen.insert(port) {
            return Ok(port);
        }
    }
    bail!("could not find a free loopback port after 200 attempts")
}

/// `n` distinct free ports (see [`free_port`]).
pub fn free_ports<const N: usize>() -> Result<[u16; N]> {
    let mut ports = [0u16; N];
    for p in &mut ports {
        *p = free_port()?;
    }
    Ok(ports)
}

/// Whether a TCP listener could bind `127.0.0.1:port` right now.
///
/// Used after stopping a server, before restarting it on the same ports.
pub fn is_bindable(port: u16) -> bool {
    TcpListener::bind((crate::HOST, port)).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_distinct_and_bindable() {
        let [a, b, c] = free_ports::<3>().unwrap();
        assert!(a != b && b != c && a != c);
        assert!(is_bindable(a));
    }
}
