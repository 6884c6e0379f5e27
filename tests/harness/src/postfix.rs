//! A private Postfix: one SMTP listener on loopback, routing by a transport map.
//!
//! Plays the old and new servers' MTAs in tests: mail for a domain goes wherever the
//! transport map says (`lmtp:inet:127.0.0.1:PORT` into a harness Dovecot, or
//! `smtp:[127.0.0.1]:PORT` to another harness Postfix). The layout is the conventional
//! one (`main.cf`, `master.cf`, `transport` in the config dir) because mailshift's Postfix
//! routing provider edits the transport map and runs `postmap` / `postfix reload` itself.
//!
//! A domain may also be delivered to disk by Postfix's own `virtual(8)` agent (transport
//! `virtual:` and the `virtual_mailbox_*` settings): mbox files and Maildirs as a hosting
//! server's Postfix writes them.
//!
//! Nothing local: `mydestination` is empty, no aliases, no local delivery, no chroot, no
//! DNS (`smtp_dns_support_level = disabled`; next hops are `[ip]:port`). Clients on
//! 127.0.0.0/8 may relay anywhere (`mynetworks`), which is what the probe and gateway
//! tests need. Retry timers are shortened to seconds so deferred mail is retried quickly
//! once the next hop is back.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard};

use anyhow::{Context, Result, bail, ensure};
use tempfile::TempDir;

use crate::ports::free_port;
use crate::process::{self, Daemon, LaunchError, LogMark, pid_alive, run_ok};
use crate::wait;

/// Configures a [`Postfix`] before it starts. Get one from [`Postfix::builder`].
#[derive(Debug, Clone)]
pub struct PostfixBuilder {
    name: String,
    myhostname: String,
    transports: Vec<(String, String)>,
    settings: Vec<(String, String)>,
    smtp_port: Option<u16>,
}

impl Default for PostfixBuilder {
    fn default() -> Self {
        PostfixBuilder {
            name: "postfix".into(),
            myhostname: "mx.harness.test".into(),
            transports: Vec::new(),
            settings: Vec::new(),
            smtp_port: None,
        }
    }
}

impl PostfixBuilder {
    /// A label for the temp dir and the log (`syslog_name = postfix-NAME`), e.g. `"old"`.
    pub fn name(mut self, name: &str) -> Self {
        self.name = name.to_string();
        self
    }

    /// `myhostname` (default `mx.harness.test`): shows in the banner and Received headers.
    pub fn myhostname(mut self, host: &str) -> Self {
        self.myhostname = host.to_string();
        self
    }

    /// Adds a transport map entry: mail for `domain` goes to `nexthop`, e.g.
    /// `transport("example.com", "lmtp:inet:127.0.0.1:24024")`. See also
    /// [`lmtp_to`](Self::lmtp_to) and [`relay_to`](Self::relay_to).
    pub fn transport(mut self, domain: &str, nexthop: &str) -> Self {
        self.transports
            .push((domain.to_string(), nexthop.to_string()));
        self
    }

    /// Delivers `domain` by LMTP to `127.0.0.1:lmtp_port` (e.g. a harness Dovecot).
    pub fn lmtp_to(self, domain: &str, lmtp_port: u16) -> Self {
        self.transport(domain, &lmtp_nexthop(lmtp_port))
    }

    /// Relays `domain` by SMTP to `[127.0.0.1]:smtp_port` (e.g. another harness Postfix).
    pub fn relay_to(self, domain: &str, smtp_port: u16) -> Self {
        self.transport(domain, &smtp_nexthop(smtp_port))
    }

    /// Sets a `main.cf` parameter, overriding the harness default if any.
    pub fn setting(mut self, name: &str, value: &str) -> Self {
        self.settings.push((name.to_string(), value.to_string()));
        self
    }

    /// Uses this SMTP port instead of a free one picked at start (e.g. from
    /// [`ports::free_port`](crate::ports::free_port), when another server must know it first).
    /// A collision on a fixed port is an error rather than a retry.
    pub fn smtp_port(mut self, port: u16) -> Self {
        self.smtp_port = Some(port);
        self
    }

    /// Creates the config, queue and data directories, starts Postfix and waits for the
    /// SMTP greeting.
    pub fn start(self) -> Result<Postfix> {
        Postfix::start(self)
    }
}

/// The transport next hop for LMTP to `127.0.0.1:port`.
pub fn lmtp_nexthop(port: u16) -> String {
    format!("lmtp:inet:127.0.0.1:{port}")
}

/// The transport next hop for SMTP to `[127.0.0.1]:port` (brackets: no MX lookup).
pub fn smtp_nexthop(port: u16) -> String {
    format!("smtp:[127.0.0.1]:{port}")
}

/// A private Postfix instance; stopped and deleted on drop.
#[derive(Debug)]
pub struct Postfix {
    settings: PostfixBuilder,
    smtp_port: u16,
    daemon: Mutex<Option<Daemon>>,
    dir: TempDir,
}

impl Postfix {
    /// A builder with the defaults: no transport entries, a free SMTP port.
    pub fn builder() -> PostfixBuilder {
        PostfixBuilder::default()
    }

    fn start(settings: PostfixBuilder) -> Result<Postfix> {
        process::require_root()?;
        process::require_program("postfix")?;
        for (domain, nexthop) in &settings.transports {
            ensure!(
                !domain.contains(char::is_whitespace) && !nexthop.contains(char::is_whitespace),
                "transport entry {domain:?} -> {nexthop:?} contains whitespace"
            );
        }
        let dir = process::server_tempdir(&format!("mailshift-{}-", settings.name))?;
        fs::create_dir_all(dir.path().join("etc"))?;
        create_queue_layout(dir.path())?;
        let mut postfix = Postfix {
            settings,
            smtp_port: 0,
            daemon: Mutex::new(None),
            dir,
        };
        let mut transport = String::new();
        for (domain, nexthop) in &postfix.settings.transports {
            let _ = writeln!(transport, "{domain} {nexthop}");
        }
        fs::write(postfix.transport_path(), transport)?;

        let attempts = if postfix.settings.smtp_port.is_some() {
            1
        } else {
            process::START_ATTEMPTS
        };
        let mut last_err = None;
        for _ in 0..attempts {
            postfix.smtp_port = match postfix.settings.smtp_port {
                Some(port) => port,
                None => free_port()?,
            };
            write_config_file(&postfix.config_dir().join("main.cf"), &postfix.main_cf())?;
            write_config_file(
                &postfix.config_dir().join("master.cf"),
                &postfix.master_cf(),
            )?;
            postfix.postmap(&postfix.transport_path())?;
            match postfix.launch() {
                Ok(daemon) => {
                    *postfix.daemon() = Some(daemon);
                    return Ok(postfix);
                }
                Err(e) if e.port_in_use => last_err = Some(e.error),
                Err(e) => return Err(e.error),
            }
        }
        Err(last_err.expect("at least one attempt")).context("Postfix: SMTP port kept colliding")
    }

    /// `postfix -c DIR start-fg`: the master runs in the foreground under the
    /// postfix-script shell, which is our child, so stopping and reaping are reliable.
    fn launch(&self) -> Result<Daemon, LaunchError> {
        let output = self.dir.path().join("postfix.out");
        let mark = LogMark::new(&[self.log_path(), output.clone()]);
        // The queue layout is already in place (create_queue_layout): skip postfix-script's
        // integrity checks, about 40 postconf/find runs that take a second or more.
        fs::write(self.queue_dir().join("quick-start"), "")?;
        let mut cmd = Command::new("postfix");
        cmd.arg("-c").arg(self.config_dir()).arg("start-fg");
        let stop = vec![
            "postfix".into(),
            "-c".into(),
            self.config_dir().into(),
            "stop".into(),
        ];
        let mut daemon = Daemon::spawn("postfix", cmd, &output)?.with_stop_command(stop);
        let port = self.smtp_port;
        let ready = wait::until_true(wait::STARTUP_TIMEOUT, "Postfix to greet on SMTP", || {
            daemon.check_running()?;
            if mark.port_in_use() {
                bail!("SMTP port {port} is already in use");
            }
            Ok(wait::greets(port, "220 "))
        });
        match ready {
            Ok(()) => Ok(daemon),
            Err(e) => {
                let _ = self.stop_daemon(&mut daemon);
                Err(LaunchError {
                    port_in_use: mark.port_in_use(),
                    error: process::startup_error(
                        "Postfix",
                        self.dir(),
                        e,
                        &output,
                        &self.log_path(),
                    ),
                })
            }
        }
    }

    fn daemon(&self) -> MutexGuard<'_, Option<Daemon>> {
        self.daemon.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `postfix stop`, then wait for the foreground master (under our child, the
    /// postfix-script shell) to exit. If it does not, the shell is killed and the master
    /// too, by its pid file (its own children exit when it is gone).
    fn stop_daemon(&self, daemon: &mut Daemon) -> Result<()> {
        let result = daemon.terminate(wait::STOP_TIMEOUT);
        if result.is_err()
            && let Some(pid) = self.master_pid().filter(|&p| pid_alive(p))
        {
            let _ = process::signal(pid, "KILL");
        }
        result
    }

    fn master_pid(&self) -> Option<u32> {
        fs::read_to_string(self.dir.path().join("queue/pid/master.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// Stops Postfix. Queued mail stays in the queue directory until drop.
    pub fn stop(&self) -> Result<()> {
        match self.daemon().take() {
            Some(mut d) => self.stop_daemon(&mut d),
            None => Ok(()),
        }
    }

    /// Whether the Postfix master is running.
    pub fn is_running(&self) -> bool {
        self.daemon()
            .as_mut()
            .is_some_and(|d| matches!(d.exited(), Ok(None)))
    }

    /// `postfix -c DIR reload`: re-read main.cf/master.cf (map changes are picked up
    /// without it, after [`postmap`](Self::postmap)).
    pub fn reload(&self) -> Result<()> {
        run_ok(
            Command::new("postfix")
                .arg("-c")
                .arg(self.config_dir())
                .arg("reload"),
        )
        .map(drop)
    }

    /// Runs `postconf -c DIR args...` (e.g. `&["-h", "transport_maps"]`, or
    /// `&["-e", "relayhost=[127.0.0.1]:2525"]` to change main.cf) and returns stdout.
    pub fn postconf(&self, args: &[&str]) -> Result<String> {
        run_ok(
            Command::new("postconf")
                .arg("-c")
                .arg(self.config_dir())
                .args(args),
        )
    }

    /// Runs `postmap -c DIR hash:FILE` to rebuild a lookup table; a relative `file` is
    /// taken relative to the config dir.
    pub fn postmap(&self, file: &Path) -> Result<()> {
        let file = self.config_dir().join(file);
        run_ok(
            Command::new("postmap")
                .arg("-c")
                .arg(self.config_dir())
                .arg(format!("hash:{}", file.display())),
        )
        .map(drop)
    }

    /// Runs `postqueue -c DIR args...`, e.g. `&["-p"]` to list the queue or `&["-f"]` to
    /// flush it (retry deferred mail now).
    pub fn postqueue(&self, args: &[&str]) -> Result<String> {
        run_ok(
            Command::new("postqueue")
                .arg("-c")
                .arg(self.config_dir())
                .args(args),
        )
    }

    /// Replaces the transport map with `entries` (domain, next hop) and runs `postmap`.
    pub fn set_transports(&self, entries: &[(&str, &str)]) -> Result<()> {
        let mut text = String::new();
        for (domain, nexthop) in entries {
            let _ = writeln!(text, "{domain} {nexthop}");
        }
        process::write_atomic(&self.transport_path(), text.as_bytes())?;
        self.postmap(&self.transport_path())
    }

    /// Always `127.0.0.1`.
    pub fn host(&self) -> &'static str {
        crate::HOST
    }

    /// The SMTP listener's port.
    pub fn smtp_port(&self) -> u16 {
        self.smtp_port
    }

    /// The config directory (`main.cf`, `master.cf`, `transport`, `transport.db`): what
    /// `postfix -c`, `postconf -c` and mailshift's `configDir` take.
    pub fn config_dir(&self) -> PathBuf {
        self.dir.path().join("etc")
    }

    /// The transport map source file (`hash:` table).
    pub fn transport_path(&self) -> PathBuf {
        self.config_dir().join("transport")
    }

    /// The queue directory.
    pub fn queue_dir(&self) -> PathBuf {
        self.dir.path().join("queue")
    }

    /// Postfix's log (`maillog_file`, written by postlogd).
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("postfix.log")
    }

    /// The instance's temp dir.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn main_cf(&self) -> String {
        let d = self.dir.path().display();
        let s = &self.settings;
        let mut c = format!(
            r#"# Generated by mailshift-harness: a private, throwaway Postfix instance.
compatibility_level = 3.6
queue_directory = {d}/queue
data_directory = {d}/data
mail_owner = postfix
setgid_group = postdrop
syslog_name = postfix-{name}
maillog_file = {d}/postfix.log
maillog_file_prefixes = {d}
myhostname = {host}
mydomain = harness.test
myorigin = $myhostname
mydestination =
local_recipient_maps =
local_transport = error:local delivery is disabled
alias_maps =
alias_database =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
smtpd_banner = $myhostname ESMTP
transport_maps = hash:$config_directory/transport
smtp_dns_support_level = disabled
biff = no
append_dot_mydomain = no
readme_directory = no
# Retry deferred mail within seconds, not minutes.
queue_run_delay = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 5s
"#,
            name = s.name,
            host = s.myhostname,
        );
        for (name, value) in &s.settings {
            let _ = writeln!(c, "{name} = {value}");
        }
        c
    }

    fn master_cf(&self) -> String {
        // No chroot anywhere ("n" in the 5th column): the queue is in a temp dir.
        format!(
            r#"# Generated by mailshift-harness.
127.0.0.1:{port} inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
lmtp      unix  -       -       n       -       -       lmtp
virtual   unix  -       n       n       -       -       virtual
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"#,
            port = self.smtp_port
        )
    }
}

/// Writes a configuration file with its mtime set a few seconds back.
///
/// Postfix refuses to read a configuration file modified within the last second ("being
/// edited") and polls every 300 ms until it is older, so every `postmap`, `postconf` or
/// start right after writing main.cf would stall for 1-2 seconds.
fn write_config_file(path: &Path, contents: &str) -> Result<()> {
    fs::write(path, contents).with_context(|| format!("writing {}", path.display()))?;
    let past = std::time::SystemTime::now() - std::time::Duration::from_secs(5);
    fs::File::options()
        .write(true)
        .open(path)?
        .set_modified(past)?;
    Ok(())
}

/// Creates `data` and `queue` with the owners and modes of Postfix's own `postfix-files`
/// (what `post-install create-missing` would do on a first `postfix start`).
fn create_queue_layout(dir: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    const PRIVATE: &[&str] = &[
        "active", "bounce", "corrupt", "defer", "deferred", "flush", "hold", "incoming", "private",
        "saved", "trace",
    ];
    let queue = dir.join("queue");
    let mode = |path: &Path, mode: u32| fs::set_permissions(path, fs::Permissions::from_mode(mode));
    for (path, m) in [
        (dir.join("data"), 0o700),
        (queue.clone(), 0o755),
        (queue.join("pid"), 0o755),
    ] {
        fs::create_dir_all(&path)?;
        mode(&path, m)?;
    }
    for sub in PRIVATE {
        fs::create_dir_all(queue.join(sub))?;
        mode(&queue.join(sub), 0o700)?;
    }
    for (sub, m) in [("maildrop", 0o730), ("public", 0o710)] {
        fs::create_dir_all(queue.join(sub))?;
        mode(&queue.join(sub), m)?;
    }
    // Postfix writes its data directory (master.lock, caches) as the postfix user.
    let mut owned_by_postfix = Command::new("chown");
    owned_by_postfix.arg("postfix").arg(dir.join("data"));
    for sub in PRIVATE {
        owned_by_postfix.arg(queue.join(sub));
    }
    run_ok(&mut owned_by_postfix)?;
    run_ok(
        Command::new("chown")
            .arg("postfix:postdrop")
            .arg(queue.join("maildrop"))
            .arg(queue.join("public")),
    )?;
    Ok(())
}

impl Drop for Postfix {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}
