//! Sending one DNS message to one server and reading its answer, as raw bytes: over UDP
//! (retransmitted, TCP when the answer is truncated) for queries, over TCP for updates (no
//! retransmission, so an update is never sent twice).
//!
//! mailshift talks to one named server at a time on purpose (no recursion, no cache, no
//! server selection), and needs the exact bytes of each answer to verify its TSIG: a
//! small transport of its own does both, hickory-proto encodes and decodes the messages.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::{Instant, timeout, timeout_at};

/// Largest answer we ask for over UDP (EDNS payload size; the DNS flag day 2020 value).
pub(crate) const UDP_PAYLOAD: u16 = 1232;

/// Why no answer came.
#[derive(Debug)]
pub(crate) enum NetError {
    /// No answer within this time.
    Timeout(Duration),
    /// The socket failed (e.g. connection refused: nothing listens there).
    Io(io::Error),
}

impl std::fmt::Display for NetError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NetError::Timeout(d) => {
                write!(f, "no answer within {}", humantime::format_duration(*d))
            }
            NetError::Io(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                f.write_str("connection refused (nothing listens there)")
            }
            NetError::Io(e) => write!(f, "{e}"),
        }
    }
}

impl From<io::Error> for NetError {
    fn from(e: io::Error) -> Self {
        NetError::Io(e)
    }
}

/// Sends `message` (with id `id`) over UDP and returns the first answer carrying that id,
/// retransmitting after each `per_try` without one, `tries` times in all.
pub(crate) async fn udp(
    server: SocketAddr,
    message: &[u8],
    id: u16,
    per_try: Duration,
    tries: u32,
) -> Result<Vec<u8>, NetError> {
    let local: SocketAddr = if server.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        ([0u16; 8], 0).into()
    };
    let socket = UdpSocket::bind(local).await?;
    socket.connect(server).await?;
    let mut buf = vec![0u8; 65535];
    for _ in 0..tries.max(1) {
        socket.send(message).await?;
        let deadline = Instant::now() + per_try;
        loop {
            match timeout_at(deadline, socket.recv(&mut buf)).await {
                Err(_) => break,
                Ok(Err(e)) => return Err(e.into()),
                // Stray or late answers to an earlier try carry other ids (or are junk).
                Ok(Ok(n)) if n >= 12 && buf[..2] == id.to_be_bytes() => {
                    return Ok(buf[..n].to_vec());
                }
                Ok(Ok(_)) => continue,
            }
        }
    }
    Err(NetError::Timeout(per_try * tries.max(1)))
}

/// Sends `message` over a new TCP connection and returns the answer (RFC 1035 4.2.2:
/// two-byte length prefix), all within `limit`.
pub(crate) async fn tcp(
    server: SocketAddr,
    message: &[u8],
    limit: Duration,
) -> Result<Vec<u8>, NetError> {
    let exchange = async {
        let mut stream = TcpStream::connect(server).await?;
        stream.set_nodelay(true)?;
        let len = u16::try_from(message.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "message too long"))?;
        let mut out = Vec::with_capacity(message.len() + 2);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(message);
        stream.write_all(&out).await?;
        let mut len = [0u8; 2];
        stream.read_exact(&mut len).await?;
        let mut answer = vec![0u8; usize::from(u16::from_be_bytes(len))];
        stream.read_exact(&mut answer).await?;
        Ok::<_, io::Error>(answer)
    };
    match timeout(limit, exchange).await {
        Err(_) => Err(NetError::Timeout(limit)),
        Ok(r) => Ok(r?),
    }
}

/// `host:port`, `host` (port 53), `[v6]:port` or a bare IPv6 address, resolved to its
/// addresses (names through the system resolver).
pub(crate) async fn resolve(server: &str) -> Result<Vec<SocketAddr>, String> {
    let (host, port) = split_host_port(server)?;
    if let Ok(ip) = host.parse::<std::net::IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| format!("cannot resolve {host}: {e}"))?
        .collect();
    if addrs.is_empty() {
        return Err(format!("{host} has no address"));
    }
    Ok(addrs)
}

pub(crate) fn split_host_port(server: &str) -> Result<(&str, u16), String> {
    let server = server.trim();
    let bad_port = |p: &str| format!("{server:?}: {p:?} is not a port number");
    if let Some(rest) = server.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| format!("{server:?}: missing ']'"))?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().map_err(|_| bad_port(p))?,
            None if after.is_empty() => 53,
            None => return Err(format!("{server:?}: unexpected {after:?} after ']'")),
        };
        return Ok((host, port));
    }
    match server.rsplit_once(':') {
        // More than one colon: a bare IPv6 address.
        Some((host, _)) if host.contains(':') => Ok((server, 53)),
        Some((host, p)) => Ok((host, p.parse().map_err(|_| bad_port(p))?)),
        None if server.is_empty() => Err("empty server address".into()),
        None => Ok((server, 53)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_and_port_forms() {
        assert_eq!(split_host_port("127.0.0.1:5353"), Ok(("127.0.0.1", 5353)));
        assert_eq!(
            split_host_port("ns1.example.com"),
            Ok(("ns1.example.com", 53))
        );
        assert_eq!(split_host_port("[::1]:5353"), Ok(("::1", 5353)));
        assert_eq!(split_host_port("[::1]"), Ok(("::1", 53)));
        assert_eq!(split_host_port("2001:db8::1"), Ok(("2001:db8::1", 53)));
        assert!(split_host_port("ns1:dns").is_err());
        assert!(split_host_port("").is_err());
    }

    #[tokio::test]
    async fn a_closed_port_is_refused_not_waited_for() {
        // A port where nothing listens, and nothing can start to while the test runs: the
        // socket holding it is connected to another peer, so the kernel does not deliver our
        // datagrams to it and answers them with port unreachable. (A port bound and dropped
        // could be taken by a parallel test in between, which then just stays silent.)
        let holder = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        holder.connect("127.0.0.1:9").unwrap();
        let server = holder.local_addr().unwrap();
        let started = std::time::Instant::now();
        let err = udp(server, &[0u8; 12], 0, Duration::from_secs(5), 1)
            .await
            .unwrap_err();
        assert!(matches!(err, NetError::Io(_)), "{err}");
        assert!(started.elapsed() < Duration::from_secs(2));
    }
}
