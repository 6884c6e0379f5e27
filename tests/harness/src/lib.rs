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
//! | Dovecot 2.3 | [`Dovecot`] | IMAP (+STARTTLS), IMAPS, LMTP, ManageSieve, passwd-file users, master user, OAuth2 bearer tokens (JWT, XOAUTH2/OAUTHBEARER) |
//! | Postfix | [`Postfix`] | SMTP listener, transport map routing to LMTP or another SMTP server, `virtual(8)` delivery into mbox files and Maildirs |
//! | BIND 9 | [`Bind`] | authoritative zones, TSIG-signed dynamic updates, secondaries via AXFR |
//! | Knot DNS 3.2 | [`Knot`] | authoritative zones (from the same [`Zone`]), TSIG-signed dynamic updates kept in its journal |
//! | OpenSSH | [`Sshd`] | key-only root login on loopback, its host key for known_hosts |
//! | Cyrus IMAP 3.6 | [`Cyrus`] | IMAP, sasldb users, `altnamespace`/`unixhierarchysep`, ACLs (other users' and shared folders), quotas; logs via a private `/dev/log` |
//! | Courier-IMAP 5.0 | [`Courier`] | IMAP (Maildir++, `INBOX.` namespace, no SPECIAL-USE/CONDSTORE/LITERAL+), userdb users; in a private mount namespace |
//! | PowerDNS Authoritative 4.7 | [`PowerDns`] | zones in SQLite (gsqlite3) managed through its HTTP API (API key), served on a DNS port |
//! | moto 5 | [`Moto`] | AWS API emulation for Route 53: hosted zones and record sets (fixtures via boto3) |
//! | Radicale 3 | [`Radicale`] | CardDAV/CalDAV, htpasswd users, an upload limit; re-serializes what it stores |
//! | Xandikos 0.4 | [`Xandikos`] | CardDAV/CalDAV for one unauthenticated principal `/user/`, default address book and calendar |
//! | Tinyproxy 1.11 | [`Tinyproxy`] | an egress HTTP proxy: CONNECT tunnels to any port, optional Basic credentials, a log line per tunnel |
//!
//! The servers must be installed (`scripts/install-deps.sh`) and the tests must run as root
//! (the daemons switch to their own system users: `dovecot`/`dovenull`, `postfix`, `bind`, `knot`).
//!
//! Two stand-ins, where no real server can run here:
//!
//! * [`Hostile`]: a scripted IMAP server that misbehaves in one chosen way (stalls, floods,
//!   huge literals, wrong answers), since no real server does so on demand;
//! * [`Gmail`]: Gmail's IMAP as Google documents it (labels as folders, `[Gmail]/All Mail`,
//!   X-GM-MSGID/X-GM-LABELS, APPEND deduplicated by Message-ID, XOAUTH2, the bandwidth and
//!   connection refusals), since no Gmail runs in a test.
//!
//! [`Proxy`] forwards loopback connections and drops them on demand, for tests of lost
//! connections; [`SlowLink`] forwards them with a delay and a rate limit, for the
//! benchmark's WAN case.
//!
//! [`DavHttp`] is a plain CardDAV/CalDAV client for fixtures and read-backs.
//!
//! [`client`] has deliberately tiny IMAP/SMTP/line helpers for smoke tests and fixtures;
//! mailshift's own clients are what the real tests exercise.

pub mod bind;
pub mod client;
pub mod corpus;
pub mod courier;
pub mod cyrus;
pub mod dav;
pub mod dovecot;
pub mod gmail;
pub mod hostile;
pub mod http_front;
pub mod knot;
pub mod link;
pub mod mariadb;
pub mod moto;
pub mod nameserver;
pub mod ports;
pub mod postfix;
pub mod postgres;
pub mod powerdns;
mod process;
pub mod proxy;
pub mod radicale;
pub mod sshd;
pub mod tinyproxy;
pub mod tls;
pub mod wait;
pub mod xandikos;

pub use bind::{Bind, BindBuilder, Record, TsigKey, Zone};
pub use courier::{Courier, CourierBuilder};
pub use cyrus::{Cyrus, CyrusBuilder};
pub use dav::DavHttp;
pub use dovecot::{Dovecot, DovecotBuilder, DovecotPorts};
pub use gmail::{Gmail, GmailBuilder, GmailMessage, StoredMessage};
pub use hostile::{Hostile, Misbehaviour};
pub use http_front::HttpFront;
pub use knot::{Knot, KnotBuilder};
pub use link::SlowLink;
pub use mariadb::MariaDb;
pub use moto::Moto;
pub use nameserver::Nameserver;
pub use postfix::{Postfix, PostfixBuilder};
pub use postgres::Postgres;
pub use powerdns::PowerDns;
pub use process::CmdOutput;
pub use proxy::Proxy;
pub use radicale::{Radicale, RadicaleBuilder};
pub use sshd::Sshd;
pub use tinyproxy::Tinyproxy;
pub use tls::Certificates;
pub use xandikos::Xandikos;

/// The loopback address every harness server listens on.
pub const HOST: &str = "127.0.0.1";

/// Standard base64 (RFC 4648, with padding), e.g. for SASL PLAIN in tests or TSIG secrets.
pub fn base64(data: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(data)
}

/// A JSON Web Token (RFC 7519) over `claims` (a JSON object), signed with HMAC-SHA256 under
/// `key`: what [`DovecotBuilder::oauth2_hs256_key`] accepts as an OAuth 2.0 bearer token.
pub fn jwt_hs256(key: &[u8], claims: &str) -> String {
    use base64::Engine as _;
    use hmac::Mac as _;
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let signed = format!(
        "{}.{}",
        b64(br#"{"alg":"HS256","typ":"JWT"}"#),
        b64(claims.as_bytes())
    );
    let mut mac =
        hmac::Hmac::<sha2::Sha256>::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(signed.as_bytes());
    format!("{signed}.{}", b64(&mac.finalize().into_bytes()))
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
        check::<super::Knot>();
        check::<super::Cyrus>();
        check::<super::Courier>();
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
