//! Whether a port expects TLS from the first byte (implicit TLS, as on 993).
//!
//! A client that connects in plain text to such a port waits for a greeting the server never
//! sends: the server is waiting for the client's TLS hello. The silence looks exactly like a
//! slow or stalled server, so a `tls: none` or `starttls` endpoint pointed at port 993 would
//! be retried until the timeouts run out. Sending a real ClientHello on a second connection
//! and looking at the first bytes of the answer tells the two apart: a TLS server answers
//! with a handshake or alert record, an IMAP server with text (or not at all).

use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long the plain greeting may be missing before the port is sniffed.
pub(crate) const SNIFF_AFTER: Duration = Duration::from_secs(2);

/// True when `host:port` answers a TLS ClientHello with a TLS record within `limit`.
/// Every failure (connection refused, silence, text) is "no": the caller then goes on
/// waiting for its greeting as before.
pub(crate) async fn expects_tls(host: &str, port: u16, limit: Duration) -> bool {
    let Some(hello) = client_hello(host) else {
        return false;
    };
    let exchange = async {
        let mut tcp = TcpStream::connect((host, port)).await.ok()?;
        tcp.write_all(&hello).await.ok()?;
        let mut head = [0u8; 3];
        tcp.read_exact(&mut head).await.ok()?;
        Some(head)
    };
    match tokio::time::timeout(limit, exchange).await {
        Ok(Some(head)) => is_tls_record(head),
        _ => false,
    }
}

/// The first bytes of a TLS record the server sends first: content type handshake (22) or
/// alert (21), then the record's protocol version, 3.x.
fn is_tls_record(head: [u8; 3]) -> bool {
    matches!(head[0], 21 | 22) && head[1] == 3 && head[2] <= 4
}

/// The bytes of a ClientHello for `host`. No certificate is ever checked: the handshake
/// goes no further than the server's first record.
fn client_hello(host: &str) -> Option<Vec<u8>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .ok()?
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    // A name that is not a valid SNI name (an odd host string) still gets a hello.
    let name = ServerName::try_from(host.to_owned())
        .unwrap_or_else(|_| ServerName::try_from("imap.invalid").expect("a valid name"));
    let mut conn = rustls::ClientConnection::new(Arc::new(config), name).ok()?;
    let mut hello = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut hello).ok()?;
    }
    Some(hello)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    #[test]
    fn records_are_told_from_text() {
        assert!(is_tls_record([22, 3, 3]));
        assert!(is_tls_record([21, 3, 1]));
        assert!(!is_tls_record(*b"* O"));
        assert!(!is_tls_record([22, 2, 0]));
    }

    #[test]
    fn the_hello_is_a_tls_handshake_record() {
        let hello = client_hello("127.0.0.1").unwrap();
        assert!(hello.len() > 40);
        assert!(is_tls_record([hello[0], hello[1], hello[2]]));
        assert_eq!(hello[5], 1, "handshake type client_hello");
    }

    #[tokio::test]
    async fn a_text_answer_or_silence_is_not_tls() {
        let text = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = text.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (mut s, _) = text.accept().await.unwrap();
            s.write_all(b"* BAD what is this\r\n").await.unwrap();
            let mut sink = Vec::new();
            let _ = s.read_to_end(&mut sink).await;
        });
        assert!(!expects_tls("127.0.0.1", port, Duration::from_secs(5)).await);

        let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = silent.local_addr().unwrap().port();
        let held = tokio::spawn(async move {
            let (s, _) = silent.accept().await.unwrap();
            std::future::pending::<()>().await;
            drop(s);
        });
        let started = std::time::Instant::now();
        assert!(!expects_tls("127.0.0.1", port, Duration::from_millis(300)).await);
        assert!(started.elapsed() < Duration::from_secs(2));
        held.abort();
    }
}
