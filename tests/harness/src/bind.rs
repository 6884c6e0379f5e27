//! A private BIND 9: authoritative zones on a loopback port, TSIG-signed dynamic updates.
//!
//! mailshift's DNS tests change MX and SPF records through RFC 2136 UPDATE with TSIG and
//! then check every authoritative server for the new answer and its TTL. For that the
//! harness runs primaries that accept updates signed with a generated key, and
//! secondaries ([`Bind::secondary_of`]) that copy a primary's zones by AXFR.
//!
//! A secondary is a natural "late" server: the primary does not NOTIFY it (unless told
//! to with [`Bind::add_also_notify`]) and the zone's SOA refresh is long, so after an
//! update the secondary keeps answering the old data until [`Bind::refresh_zone`] (or
//! `rndc retransfer`). [`Bind::pause`] freezes a server so queries are answered only
//! after [`Bind::resume`] (or time out), for "one nameserver is slow" cases.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard};

use anyhow::{Result, bail, ensure};
use tempfile::TempDir;

use crate::ports::free_port;
use crate::process::{self, Daemon, LaunchError, LogMark, run_ok};
use crate::wait;

/// A TSIG key: what `nsupdate -y` and mailshift's RFC 2136 provider need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TsigKey {
    /// Key name, e.g. `mailshift-key`.
    pub name: String,
    /// Algorithm as BIND and nsupdate spell it, e.g. `hmac-sha256`.
    pub algorithm: String,
    /// The shared secret, base64.
    pub secret: String,
}

impl TsigKey {
    /// A new key with a random 256-bit secret.
    pub fn generate(name: &str, algorithm: &str) -> Result<TsigKey> {
        Ok(TsigKey {
            name: name.to_string(),
            algorithm: algorithm.to_string(),
            secret: crate::base64(&crate::random_bytes(32)?),
        })
    }

    /// `ALGORITHM:NAME:SECRET`, the argument of `nsupdate -y` and `dig -y`.
    pub fn nsupdate_arg(&self) -> String {
        format!("{}:{}:{}", self.algorithm, self.name, self.secret)
    }
}

/// One resource record of a [`Zone`], in zone-file syntax.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Owner name: relative (`mail`, `@`) or absolute (`mail.example.com.`).
    pub name: String,
    /// TTL; `None` uses the zone's default (`$TTL`).
    pub ttl: Option<u32>,
    /// Type, e.g. `MX`.
    pub rtype: String,
    /// RDATA as written in a zone file, e.g. `10 mail.example.com.`.
    pub data: String,
}

/// The contents of a zone to serve. SOA, NS (`ns1.ZONE.`) and `ns1` A `127.0.0.1` are
/// generated; add the records under test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Zone {
    name: String,
    default_ttl: u32,
    serial: u32,
    refresh: u32,
    retry: u32,
    expire: u32,
    negative_ttl: u32,
    records: Vec<Record>,
}

impl Zone {
    /// An empty zone `name` (e.g. `example.com`): default TTL 3600, serial 1, SOA refresh
    /// 3600s (so secondaries do not refresh by themselves during a test).
    pub fn new(name: &str) -> Zone {
        Zone {
            name: name.trim_end_matches('.').to_string(),
            default_ttl: 3600,
            serial: 1,
            refresh: 3600,
            retry: 600,
            expire: 86400,
            negative_ttl: 300,
            records: Vec::new(),
        }
    }

    /// The zone name, without trailing dot.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The records added (without the generated SOA/NS).
    pub fn records(&self) -> &[Record] {
        &self.records
    }

    /// Default TTL (`$TTL`) for records without their own.
    pub fn default_ttl(mut self, ttl: u32) -> Self {
        self.default_ttl = ttl;
        self
    }

    /// Initial SOA serial.
    pub fn serial(mut self, serial: u32) -> Self {
        self.serial = serial;
        self
    }

    /// SOA refresh and retry intervals in seconds: how often secondaries check the primary.
    pub fn refresh(mut self, refresh: u32, retry: u32) -> Self {
        self.refresh = refresh;
        self.retry = retry;
        self
    }

    /// SOA minimum (negative-caching TTL).
    pub fn negative_ttl(mut self, ttl: u32) -> Self {
        self.negative_ttl = ttl;
        self
    }

    /// Adds any record with an explicit TTL.
    pub fn record(mut self, name: &str, ttl: u32, rtype: &str, data: &str) -> Self {
        self.records.push(Record {
            name: name.into(),
            ttl: Some(ttl),
            rtype: rtype.into(),
            data: data.into(),
        });
        self
    }

    /// Adds a record with the default TTL.
    pub fn record_default_ttl(mut self, name: &str, rtype: &str, data: &str) -> Self {
        self.records.push(Record {
            name: name.into(),
            ttl: None,
            rtype: rtype.into(),
            data: data.into(),
        });
        self
    }

    /// Adds an A record with the default TTL.
    pub fn a(self, name: &str, address: &str) -> Self {
        self.record_default_ttl(name, "A", address)
    }

    /// Adds an MX record at the apex with its own TTL (the TTL mailshift lowers before a
    /// cutover). `exchange` should be absolute (`mail.example.com.`).
    pub fn mx(self, preference: u16, exchange: &str, ttl: u32) -> Self {
        self.record("@", ttl, "MX", &format!("{preference} {exchange}"))
    }

    /// Adds a TXT record with the default TTL (e.g. SPF); long text is split into
    /// 255-byte strings and quotes/backslashes are escaped.
    pub fn txt(self, name: &str, text: &str) -> Self {
        self.record_default_ttl(name, "TXT", &txt_rdata(text))
    }

    fn file_contents(&self) -> String {
        let z = &self.name;
        let mut f = format!(
            "; Generated by mailshift-harness.\n$ORIGIN {z}.\n$TTL {ttl}\n\
             @ IN SOA ns1.{z}. hostmaster.{z}. ( {serial} {refresh} {retry} {expire} {neg} )\n\
             @ IN NS ns1.{z}.\nns1 IN A 127.0.0.1\n",
            ttl = self.default_ttl,
            serial = self.serial,
            refresh = self.refresh,
            retry = self.retry,
            expire = self.expire,
            neg = self.negative_ttl,
        );
        for r in &self.records {
            match r.ttl {
                Some(ttl) => writeln!(f, "{} {ttl} IN {} {}", r.name, r.rtype, r.data),
                None => writeln!(f, "{} IN {} {}", r.name, r.rtype, r.data),
            }
            .expect("writing to a String");
        }
        f
    }
}

impl From<&str> for Zone {
    fn from(name: &str) -> Zone {
        Zone::new(name)
    }
}

/// TXT RDATA: quoted, escaped character-strings of at most 255 bytes each.
fn txt_rdata(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut parts = Vec::new();
    for chunk in bytes.chunks(255) {
        let mut s = String::from("\"");
        for &b in chunk {
            match b {
                b'"' | b'\\' => {
                    s.push('\\');
                    s.push(b as char);
                }
                0x20..=0x7e => s.push(b as char),
                _ => {
                    let _ = write!(s, "\\{b:03}");
                }
            }
        }
        s.push('"');
        parts.push(s);
    }
    if parts.is_empty() {
        parts.push("\"\"".into());
    }
    parts.join(" ")
}

/// Configures a [`Bind`] before it starts. Get one from [`Bind::builder`] or
/// [`Bind::secondary_of`].
#[derive(Debug, Clone)]
pub struct BindBuilder {
    name: String,
    zones: Vec<Zone>,
    key_name: String,
    algorithm: String,
    secret: Option<String>,
    /// For a secondary: the primary's port.
    primary_port: Option<u16>,
}

impl BindBuilder {
    /// A label for the temp dir, e.g. `"ns1"`.
    pub fn name(mut self, name: &str) -> Self {
        self.name = name.to_string();
        self
    }

    /// Serves `zone` (a [`Zone`], or just a name for an empty one).
    pub fn zone(mut self, zone: impl Into<Zone>) -> Self {
        self.zones.push(zone.into());
        self
    }

    /// TSIG key name (default `mailshift-key`).
    pub fn tsig_key_name(mut self, name: &str) -> Self {
        self.key_name = name.to_string();
        self
    }

    /// TSIG algorithm (default `hmac-sha256`; BIND also has hmac-sha1/224/384/512, hmac-md5).
    pub fn tsig_algorithm(mut self, algorithm: &str) -> Self {
        self.algorithm = algorithm.to_string();
        self
    }

    /// A fixed base64 TSIG secret instead of a random one.
    pub fn tsig_secret(mut self, secret: &str) -> Self {
        self.secret = Some(secret.to_string());
        self
    }

    /// Writes the configuration and zones, starts `named` and waits until every zone is
    /// answered authoritatively (for a secondary: until the first transfer is done).
    pub fn start(self) -> Result<Bind> {
        Bind::start(self)
    }
}

/// A private `named` instance; stopped and deleted on drop.
#[derive(Debug)]
pub struct Bind {
    settings: BindBuilder,
    key: TsigKey,
    rndc_key: TsigKey,
    port: u16,
    rndc_port: u16,
    also_notify: Mutex<Vec<u16>>,
    daemon: Mutex<Option<Daemon>>,
    dir: TempDir,
}

impl Bind {
    /// A primary with no zones yet; add them with [`BindBuilder::zone`].
    pub fn builder() -> BindBuilder {
        BindBuilder {
            name: "bind".into(),
            zones: Vec::new(),
            key_name: "mailshift-key".into(),
            algorithm: "hmac-sha256".into(),
            secret: None,
            primary_port: None,
        }
    }

    /// A secondary for all of `primary`'s zones, transferring them from it by AXFR (it
    /// also knows the primary's TSIG key, so the same key works for queries to both).
    pub fn secondary_of(primary: &Bind) -> BindBuilder {
        BindBuilder {
            name: format!("{}-secondary", primary.settings.name),
            zones: primary.settings.zones.clone(),
            key_name: primary.key.name.clone(),
            algorithm: primary.key.algorithm.clone(),
            secret: Some(primary.key.secret.clone()),
            primary_port: Some(primary.port),
        }
    }

    fn start(settings: BindBuilder) -> Result<Bind> {
        process::require_root()?;
        process::require_program("named")?;
        ensure!(!settings.zones.is_empty(), "BIND needs at least one zone");
        let dir = process::server_tempdir(&format!("mailshift-{}-", settings.name))?;
        let key = match &settings.secret {
            Some(secret) => TsigKey {
                name: settings.key_name.clone(),
                algorithm: settings.algorithm.clone(),
                secret: secret.clone(),
            },
            None => TsigKey::generate(&settings.key_name, &settings.algorithm)?,
        };
        let mut bind = Bind {
            key,
            rndc_key: TsigKey::generate("harness-rndc", "hmac-sha256")?,
            port: 0,
            rndc_port: 0,
            also_notify: Mutex::new(Vec::new()),
            daemon: Mutex::new(None),
            settings,
            dir,
        };
        if bind.settings.primary_port.is_none() {
            for zone in &bind.settings.zones {
                fs::write(bind.zone_path(zone.name()), zone.file_contents())?;
            }
        }
        let daemon = process::on_fresh_ports("BIND", || {
            bind.port = free_port()?;
            bind.rndc_port = free_port()?;
            bind.write_config()?;
            // named drops to the bind user and must write pid, journal and zone files.
            process::chown_recursive(bind.dir.path(), "bind:bind")?;
            bind.launch()
        })?;
        *bind.daemon() = Some(daemon);
        Ok(bind)
    }

    fn launch(&self) -> Result<Daemon, LaunchError> {
        let output = self.dir.path().join("named.out");
        let mark = LogMark::new(&[self.log_path(), output.clone()]);
        let mut cmd = Command::new("named");
        cmd.arg("-4")
            .arg("-f")
            .arg("-u")
            .arg("bind")
            .arg("-c")
            .arg(self.config_path());
        let mut daemon = Daemon::spawn("named", cmd, &output)?;
        let zones: Vec<String> = self.settings.zones.iter().map(|z| z.name.clone()).collect();
        let ready = wait::until_true(
            wait::STARTUP_TIMEOUT,
            "named to answer for its zones",
            || {
                daemon.check_running()?;
                // named logs a failed listener and keeps running without it.
                if mark.port_in_use() {
                    bail!("a port is already in use");
                }
                Ok(zones
                    .iter()
                    .all(|z| crate::nameserver::soa_is_authoritative(self.port, z)))
            },
        );
        daemon.or_stopped(ready, &mark, |e| {
            process::startup_error("BIND", self.dir(), e, &output, &self.log_path())
        })
    }

    fn daemon(&self) -> MutexGuard<'_, Option<Daemon>> {
        self.daemon.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn write_config(&self) -> Result<()> {
        let d = self.dir.path().display();
        let k = &self.key;
        let r = &self.rndc_key;
        let notify: Vec<u16> = self
            .also_notify
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let mut c = format!(
            r#"// Generated by mailshift-harness: a private, throwaway BIND instance.
options {{
    directory "{d}";
    pid-file "{d}/named.pid";
    session-keyfile "{d}/session.key";
    managed-keys-directory "{d}";
    listen-on port {port} {{ 127.0.0.1; }};
    listen-on-v6 {{ none; }};
    recursion no;
    dnssec-validation no;
    notify no;
    // Send NOTIFY at once after a change (default: after 5 s).
    notify-delay 0;
    allow-transfer {{ 127.0.0.1; }};
}};
key "{kn}" {{ algorithm {ka}; secret "{ks}"; }};
key "{rn}" {{ algorithm {ra}; secret "{rs}"; }};
// An explicit controls statement: without it named would use /etc/bind/rndc.key and port 953.
controls {{ inet 127.0.0.1 port {rport} allow {{ 127.0.0.1; }} keys {{ "{rn}"; }}; }};
logging {{
    channel harness {{ file "{d}/named.log"; severity info; print-time yes; print-category yes; print-severity yes; }};
    category default {{ harness; }};
    category lame-servers {{ null; }};
}};
"#,
            port = self.port,
            rport = self.rndc_port,
            kn = k.name,
            ka = k.algorithm,
            ks = k.secret,
            rn = r.name,
            ra = r.algorithm,
            rs = r.secret,
        );
        for zone in &self.settings.zones {
            let name = zone.name();
            let file = self.zone_path(name);
            let file = file.display();
            match self.settings.primary_port {
                None => {
                    let _ = write!(
                        c,
                        "zone \"{name}\" {{\n    type primary;\n    file \"{file}\";\n    allow-update {{ key \"{kn}\"; }};\n",
                        kn = k.name
                    );
                    if !notify.is_empty() {
                        c.push_str("    notify explicit;\n    also-notify {");
                        for p in &notify {
                            let _ = write!(c, " 127.0.0.1 port {p};");
                        }
                        c.push_str(" };\n");
                    }
                    c.push_str("};\n");
                }
                Some(primary) => {
                    let _ = write!(
                        c,
                        "zone \"{name}\" {{\n    type secondary;\n    primaries {{ 127.0.0.1 port {primary}; }};\n    file \"{file}\";\n}};\n"
                    );
                }
            }
        }
        let rndc_conf = format!(
            "key \"{rn}\" {{ algorithm {ra}; secret \"{rs}\"; }};\noptions {{ default-key \"{rn}\"; default-server 127.0.0.1; default-port {rport}; }};\n",
            rn = r.name,
            ra = r.algorithm,
            rs = r.secret,
            rport = self.rndc_port,
        );
        process::write_atomic(&self.config_path(), c.as_bytes())?;
        process::write_atomic(&self.dir.path().join("rndc.conf"), rndc_conf.as_bytes())?;
        Ok(())
    }

    /// Makes this primary send NOTIFY for its zones to `127.0.0.1:port` (e.g. a secondary's
    /// [`port`](Self::port)) after every change, so the secondary follows within moments.
    /// Rewrites named.conf and runs `rndc reconfig`.
    pub fn add_also_notify(&self, port: u16) -> Result<()> {
        ensure!(
            self.settings.primary_port.is_none(),
            "only a primary sends NOTIFY here"
        );
        self.also_notify
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(port);
        self.write_config()?;
        self.rndc(&["reconfig"]).map(drop)
    }

    /// Runs `rndc` against this instance (own key and control port), e.g.
    /// `&["retransfer", "example.com"]`, `&["freeze", "example.com"]`, `&["reload"]`.
    pub fn rndc(&self, args: &[&str]) -> Result<String> {
        run_ok(
            Command::new("rndc")
                .arg("-c")
                .arg(self.dir.path().join("rndc.conf"))
                .args(args),
        )
    }

    /// For a secondary: check the primary's serial now and transfer if newer (`rndc
    /// refresh`). Returns at once; poll [`serial`](Self::serial) to see it land.
    pub fn refresh_zone(&self, zone: &str) -> Result<()> {
        self.rndc(&["refresh", zone]).map(drop)
    }

    /// Stops `named`. Zone data and journals stay until drop.
    pub fn stop(&self) -> Result<()> {
        match self.daemon().take() {
            Some(mut d) => d.terminate(wait::STOP_TIMEOUT),
            None => Ok(()),
        }
    }

    /// Whether `named` is running.
    pub fn is_running(&self) -> bool {
        self.daemon()
            .as_mut()
            .is_some_and(|d| matches!(d.exited(), Ok(None)))
    }

    /// Always `127.0.0.1`.
    pub fn host(&self) -> &'static str {
        crate::HOST
    }

    /// Whether this is a secondary.
    pub fn is_secondary(&self) -> bool {
        self.settings.primary_port.is_some()
    }

    /// The zones served.
    pub fn zones(&self) -> &[Zone] {
        &self.settings.zones
    }

    /// The zone file of `zone` (a secondary writes its transferred copy here).
    pub fn zone_path(&self, zone: &str) -> PathBuf {
        self.dir
            .path()
            .join(format!("{}.zone", zone.trim_end_matches('.')))
    }

    /// The generated `named.conf`.
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("named.conf")
    }

    /// named's log.
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("named.log")
    }

    /// The instance's temp dir.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Bind {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

impl crate::Nameserver for Bind {
    fn port(&self) -> u16 {
        self.port
    }

    fn tsig(&self) -> &TsigKey {
        &self.key
    }

    fn daemon_pid(&self) -> Option<u32> {
        self.daemon().as_ref().map(|d| d.pid())
    }

    fn daemon_name(&self) -> &'static str {
        "named"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn txt_is_quoted_and_split() {
        assert_eq!(txt_rdata("v=spf1 -all"), "\"v=spf1 -all\"");
        assert_eq!(txt_rdata(r#"a"b\c"#), r#""a\"b\\c""#);
        let long = "x".repeat(300);
        assert_eq!(
            txt_rdata(&long),
            format!("\"{}\" \"{}\"", "x".repeat(255), "x".repeat(45))
        );
    }

    #[test]
    fn zone_file_has_soa_ns_and_records() {
        let z = Zone::new("example.com.")
            .mx(10, "mail.example.com.", 3600)
            .a("mail", "192.0.2.10");
        let f = z.file_contents();
        assert!(f.contains("$ORIGIN example.com.\n"));
        assert!(f.contains(
            "@ IN SOA ns1.example.com. hostmaster.example.com. ( 1 3600 600 86400 300 )"
        ));
        assert!(f.contains("@ 3600 IN MX 10 mail.example.com.\n"));
        assert!(f.contains("mail IN A 192.0.2.10\n"));
    }
}
