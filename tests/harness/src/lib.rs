//! Private, throwaway mail servers for mailshift's tests, benchmarks and demo.
//!
//! mailshift is tested against the real Debian servers it will meet in production
//! (see DESIGN.md, "Real servers, not mocks"), not against mocks. Each server started here
//! is a private instance:
//!
//! * in its own temporary directory, holding its configuration, data, pid files, sockets
//!   and log, removed on [`Drop`];
//! * listening only on `127.0.0.1`, on ports picked free by [`ports::free_port`], so any
//!   number of instances can run side by side in parallel tests;
//! * started as a direct child process (foreground mode) so it is stopped and reaped on
//!   [`Drop`] and nothing is left running;
//! * waited for by polling a readiness condition (greeting on its ports, a DNS answer)
//!   with a deadline, never by sleeping; startup failures carry the server's log tail.
//!
//! | server | type | provides |
//! |---|---|---|
//! | Dovecot 2.3 | [`Dovecot`] | IMAP (+STARTTLS), IMAPS, LMTP, ManageSieve, passwd-file users, master user |
//! | Postfix | [`Postfix`] | SMTP listener, transport map routing to LMTP or another SMTP server |
//! | BIND 9 | [`Bind`] | authoritative zones, TSIG-signed dynamic updates, secondaries via AXFR |
//!
//! The servers must be installed (`scripts/install-deps.sh`) and the tests must run as root
//! (the daemons switch to their own system users: `dovecot`/`dovenull`, `postfix`, `bind`).
//!
//! [`Proxy`] forwards loopback connections and drops them on demand, for tests of lost
//! connections.
//!
//! [`client`] has deliberately tiny IMAP/SMTP/line helpers for smoke tests and fixtures;
//! mailshift's own clients are what the real tests exercise.

pub mod bind;
pub mod client;
pub mod corpus;
pub mod dovecot;
pub mod ports;
pub mod postfix;
mod process;
pub mod proxy;
pub mod tls;
pub mod wait;

pub use bind::{Bind, BindBuilder, Record, TsigKey, Zone};
pub use dovecot::{Dovecot, DovecotBuilder, DovecotPorts};
pub use postfix::{Postfix, PostfixBuilder};
pub use process::CmdOutput;
pub use proxy::Proxy;
pub use tls::Certificates;

/// The loopback address every harness server listens on.
pub const HOST: &str = "127.0.0.1";

/// Standard base64 (RFC 4648, with padding), e.g. for SASL PLAIN in tests or TSIG secrets.
///
/// Here so that tests need no extra crate for it.
pub fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// `n` random bytes from the kernel (`/dev/urandom`), for secrets and serial numbers.
pub fn random_bytes(n: usize) -> anyhow::Result<Vec<u8>> {
    use std::io::Read;
    let mut buf = vec![0u8; n];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut buf)?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::base64;

    /// Servers can be shared between threads (e.g. in an `Arc` or a `static`).
    #[test]
    fn servers_are_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<super::Dovecot>();
        check::<super::Postfix>();
        check::<super::Bind>();
    }

    #[test]
    fn base64_matches_rfc4648_vectors() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foob"), "Zm9vYg==");
        assert_eq!(base64(b"fooba"), "Zm9vYmE=");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64(b"\0alice\0secret"), "AGFsaWNlAHNlY3JldA==");
    }
}
