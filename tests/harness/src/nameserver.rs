//! What tests of DNS updates need of an authoritative server, whichever it is ([`Bind`],
//! [`Knot`]): its address, its TSIG key, queries and updates from the command line, and a
//! freeze to play a server that stops answering.
//!
//! [`Bind`]: crate::Bind
//! [`Knot`]: crate::Knot

use std::net::UdpSocket;
use std::process::Command;
use std::time::Duration;

use anyhow::{Result, bail};

use crate::bind::TsigKey;
use crate::process::{self, CmdOutput, run, run_ok};

/// An authoritative nameserver on `127.0.0.1` that accepts TSIG-signed updates.
pub trait Nameserver {
    /// The DNS port (UDP and TCP).
    fn port(&self) -> u16;

    /// The TSIG key allowed to update its zones.
    fn tsig(&self) -> &TsigKey;

    /// The daemon's pid while it runs, and its name for messages.
    fn daemon_pid(&self) -> Option<u32>;
    fn daemon_name(&self) -> &'static str;

    /// `127.0.0.1:PORT`, as mailshift's `rfc2136.server` and `checkNameservers` take it.
    fn server(&self) -> String {
        format!("127.0.0.1:{}", self.port())
    }

    /// Runs `dig @127.0.0.1 -p PORT +norec +time=2 +tries=2 args...` and returns stdout,
    /// e.g. `dig(&["+short", "example.com", "MX"])`.
    fn dig(&self, args: &[&str]) -> Result<String> {
        run_ok(
            Command::new("dig")
                .arg("@127.0.0.1")
                .arg("-p")
                .arg(self.port().to_string())
                .args(["+norec", "+time=2", "+tries=2"])
                .args(args),
        )
    }

    /// The SOA serial this server currently answers for `zone`.
    /// A malformed answer (seen once under load: dig's ";; Warning: query response not
    /// set", an answer without the QR bit) is asked again, up to three times.
    fn serial(&self, zone: &str) -> Result<u32> {
        let mut last = String::new();
        for _ in 0..3 {
            last = self.dig(&["+short", zone, "SOA"])?;
            if let Some(serial) = last.split_whitespace().nth(2).and_then(|s| s.parse().ok()) {
                return Ok(serial);
            }
        }
        Err(anyhow::anyhow!("no SOA serial for {zone} in: {last:?}"))
    }

    /// Runs `nsupdate` signed with this server's TSIG key; fails if the update fails.
    /// `commands` are nsupdate commands (`zone ...`, `update add ...`); the `server` line
    /// is prepended and a final `send` appended if missing.
    fn nsupdate(&self, commands: &str) -> Result<String> {
        self.nsupdate_with_key(Some(self.tsig()), commands)?.ok()
    }

    /// Runs `nsupdate` signed with `key` (`None`: unsigned) and returns the whole outcome,
    /// so tests can check that a wrong key is refused.
    fn nsupdate_with_key(&self, key: Option<&TsigKey>, commands: &str) -> Result<CmdOutput> {
        let mut script = format!("server 127.0.0.1 {}\n{}", self.port(), commands);
        if !script.ends_with('\n') {
            script.push('\n');
        }
        if !script.lines().any(|l| l.trim() == "send") {
            script.push_str("send\n");
        }
        let mut cmd = Command::new("nsupdate");
        cmd.args(["-t", "10"]);
        if let Some(key) = key {
            cmd.arg("-y").arg(key.nsupdate_arg());
        }
        run(&mut cmd, Some(script.as_bytes()))
    }

    /// Freezes the daemon (SIGSTOP): queries queue up unanswered until
    /// [`resume`](Self::resume).
    fn pause(&self) -> Result<()> {
        match self.daemon_pid() {
            Some(pid) => process::freeze(pid),
            None => bail!("{} is not running", self.daemon_name()),
        }
    }

    /// Lets a paused daemon continue (SIGCONT); queued queries are answered late.
    fn resume(&self) -> Result<()> {
        match self.daemon_pid() {
            Some(pid) => process::signal(pid, "CONT"),
            None => bail!("{} is not running", self.daemon_name()),
        }
    }
}

/// Sends a non-recursive SOA query for `zone` over UDP and checks for an authoritative
/// NOERROR answer. Done in-process so readiness polling spawns no `dig`.
pub(crate) fn soa_is_authoritative(port: u16, zone: &str) -> bool {
    let Ok(sock) = UdpSocket::bind(("127.0.0.1", 0)) else {
        return false;
    };
    if sock
        .set_read_timeout(Some(Duration::from_millis(500)))
        .is_err()
        || sock.connect(("127.0.0.1", port)).is_err()
    {
        return false;
    }
    let id: u16 = 0x4d53;
    let mut q = Vec::with_capacity(32 + zone.len());
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0, 0]); // flags 0 (no RD), QDCOUNT 1
    for label in zone.trim_end_matches('.').split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 6, 0, 1]); // root, QTYPE SOA, QCLASS IN
    if sock.send(&q).is_err() {
        return false;
    }
    let mut buf = [0u8; 1500];
    let Ok(n) = sock.recv(&mut buf) else {
        return false;
    };
    if n < 12 || buf[0..2] != id.to_be_bytes() {
        return false;
    }
    let qr = buf[2] & 0x80 != 0;
    let aa = buf[2] & 0x04 != 0;
    let rcode = buf[3] & 0x0f;
    let ancount = u16::from_be_bytes([buf[6], buf[7]]);
    qr && aa && rcode == 0 && ancount > 0
}
