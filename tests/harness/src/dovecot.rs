//! A private Dovecot 2.3: IMAP (+STARTTLS), IMAPS, LMTP with Sieve, ManageSieve.
//!
//! mailshift's source and destination servers in tests. Users live in a passwd-file with
//! plain passwords so tests know them; the file can be rewritten while Dovecot runs (it
//! re-reads it on change). Mail is stored as Maildir under the instance's temp dir, owned
//! by the `dovecot` system user because Dovecot refuses to run mail processes as root.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use anyhow::{Result, bail, ensure};
use tempfile::TempDir;

use crate::ports::{free_port, is_bindable};
use crate::process::{self, Daemon, LaunchError, LogMark, run};
use crate::tls::Certificates;
use crate::wait;

/// Configures a [`Dovecot`] before it starts. Get one from [`Dovecot::builder`].
#[derive(Debug, Clone)]
pub struct DovecotBuilder {
    name: String,
    users: Vec<(String, String)>,
    master_users: Vec<(String, String)>,
    special_use: bool,
    create_special_folders: bool,
    separator: char,
    namespace_prefix: String,
    max_message_size: Option<u64>,
    lmtp_strip_domain: bool,
    submission_host: Option<String>,
    oauth2_hs256_key: Option<Vec<u8>>,
    mbox: bool,
    pop3: bool,
    extra_config: String,
}

impl Default for DovecotBuilder {
    fn default() -> Self {
        DovecotBuilder {
            name: "dovecot".into(),
            users: Vec::new(),
            master_users: Vec::new(),
            special_use: true,
            create_special_folders: false,
            separator: '.',
            namespace_prefix: String::new(),
            max_message_size: None,
            lmtp_strip_domain: false,
            submission_host: None,
            oauth2_hs256_key: None,
            mbox: false,
            pop3: false,
            extra_config: String::new(),
        }
    }
}

impl DovecotBuilder {
    /// A label for logs, process titles (`dovecot-mailshift-NAME/...`) and the temp dir
    /// name, e.g. `"source"` or `"destination"`.
    pub fn name(mut self, name: &str) -> Self {
        self.name = name.to_string();
        self
    }

    /// Adds a user with a plain-text password. The login name is used as given (e.g.
    /// `"alice"` or `"alice@example.com"`); it is also what LMTP recipients must match
    /// (see [`lmtp_strip_domain`](Self::lmtp_strip_domain)).
    pub fn user(mut self, name: &str, password: &str) -> Self {
        self.users.push((name.to_string(), password.to_string()));
        self
    }

    /// Adds a user whose passwd-file field is `hash` as given, with its `{SCHEME}` prefix
    /// (e.g. from `doveadm pw -s SHA512-CRYPT`): a user database as real servers keep it.
    pub fn user_with_hash(mut self, name: &str, hash: &str) -> Self {
        self.users.push((name.to_string(), hash.to_string()));
        self
    }

    /// Adds a master user (passdb with `master = yes`): it may log in as any existing user
    /// with `LOGIN user*master password` or with `AUTHENTICATE PLAIN` whose authorization
    /// identity is the user and authentication identity is the master.
    pub fn master_user(mut self, name: &str, password: &str) -> Self {
        self.master_users
            .push((name.to_string(), password.to_string()));
        self
    }

    /// Whether the default folders (Drafts, Sent, Trash, Junk, Archive) carry SPECIAL-USE
    /// flags (default: yes). `false` gives a server like the many old ones without
    /// RFC 6154, so folder mapping must fall back to names.
    pub fn special_use(mut self, on: bool) -> Self {
        self.special_use = on;
        self
    }

    /// Whether those default folders are created and subscribed automatically on first
    /// login (`auto = subscribe`), as on a freshly provisioned server (default: no).
    pub fn create_special_folders(mut self, on: bool) -> Self {
        self.create_special_folders = on;
        self
    }

    /// The hierarchy separator, `'.'` (default; Maildir++ layout, Courier-like) or `'/'`
    /// (Maildir with `LAYOUT=fs`).
    pub fn separator(mut self, separator: char) -> Self {
        self.separator = separator;
        self
    }

    /// A prefix for the personal namespace, e.g. `"INBOX."` for a Courier-style server
    /// where every folder lives under INBOX (default: none).
    pub fn namespace_prefix(mut self, prefix: &str) -> Self {
        self.namespace_prefix = prefix.to_string();
        self
    }

    /// Maximum size of one message in bytes. Enforced by the quota plugin's
    /// `quota_max_mail_size` for IMAP APPEND (`NO [LIMIT]`), LMTP and doveadm, and
    /// advertised as `APPENDLIMIT=n` in CAPABILITY. (Dovecot 2.3 does not advertise
    /// APPENDLIMIT by itself; the harness adds it through `imap_capability = +...`, so it
    /// appears in CAPABILITY only, not in STATUS/LIST responses.)
    pub fn max_message_size(mut self, bytes: u64) -> Self {
        self.max_message_size = Some(bytes);
        self
    }

    /// Whether LMTP looks recipients up by local part only (`auth_username_format = %n`
    /// for LMTP), so mail for `alice@example.com` is delivered to user `alice`
    /// (default: no, the full address is the user name).
    pub fn lmtp_strip_domain(mut self, on: bool) -> Self {
        self.lmtp_strip_domain = on;
        self
    }

    /// Where Sieve `redirect` (and vacation replies) are sent by SMTP, as `host:port`,
    /// e.g. a harness [`Postfix`](crate::Postfix). Without it they would go through
    /// `/usr/sbin/sendmail`, which has no system-wide Postfix behind it here.
    pub fn submission_host(mut self, host_port: &str) -> Self {
        self.submission_host = Some(host_port.to_string());
        self
    }

    /// Accept OAuth 2.0 bearer tokens (SASL XOAUTH2 and OAUTHBEARER) besides passwords:
    /// JSON Web Tokens signed with HMAC-SHA256 under `key`, checked by Dovecot itself
    /// (oauth2 passdb with `introspection_mode = local`, no identity provider needed). The
    /// token's `email` claim names the user; it must be an existing user, and `exp` must lie
    /// in the future. Make tokens with [`crate::jwt_hs256`].
    pub fn oauth2_hs256_key(mut self, key: &[u8]) -> Self {
        self.oauth2_hs256_key = Some(key.to_vec());
        self
    }

    /// Raw Dovecot configuration appended at the end of the generated file (later
    /// settings override earlier ones), for needs the builder does not cover.
    /// Stores mail in mbox files instead of Maildir: `mail_dir()/USER/mail/`, INBOX in
    /// its `inbox` file; the hierarchy separator becomes `/` (mbox knows no other).
    pub fn mbox(mut self, on: bool) -> Self {
        self.mbox = on;
        if on {
            self.separator = '/';
        }
        self
    }

    /// Also serves POP3 (dovecot-pop3d) on [`Dovecot::pop3_port`], STLS offered.
    pub fn pop3(mut self, on: bool) -> Self {
        self.pop3 = on;
        self
    }

    pub fn extra_config(mut self, config: &str) -> Self {
        self.extra_config.push_str(config);
        self.extra_config.push('\n');
        self
    }

    /// Creates the instance directory, certificates and configuration, starts Dovecot and
    /// waits until IMAP, IMAPS, LMTP and ManageSieve answer.
    pub fn start(self) -> Result<Dovecot> {
        Dovecot::start(self)
    }
}

/// The ports of a running [`Dovecot`], all on `127.0.0.1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DovecotPorts {
    /// IMAP, plaintext with STARTTLS offered (plaintext LOGIN allowed).
    pub imap: u16,
    /// IMAP over implicit TLS.
    pub imaps: u16,
    /// LMTP (plaintext, TCP).
    pub lmtp: u16,
    /// ManageSieve (RFC 5804, STARTTLS offered).
    pub managesieve: u16,
    /// POP3 (plaintext, STLS offered), when asked for; else 0.
    pub pop3: u16,
}

/// A private Dovecot instance; stopped and deleted on drop.
#[derive(Debug)]
pub struct Dovecot {
    settings: DovecotBuilder,
    ports: DovecotPorts,
    certs: Certificates,
    users: Mutex<Vec<(String, String)>>,
    daemon: Mutex<Option<Daemon>>,
    // Last so it is removed after the daemon is stopped.
    dir: TempDir,
}

impl Dovecot {
    /// A builder with the defaults: no users, SPECIAL-USE on, separator `'.'`.
    pub fn builder() -> DovecotBuilder {
        DovecotBuilder::default()
    }

    fn start(settings: DovecotBuilder) -> Result<Dovecot> {
        process::require_root()?;
        process::require_program("dovecot")?;
        ensure!(
            settings.separator == '.' || settings.separator == '/',
            "unsupported hierarchy separator {:?}: use '.' or '/'",
            settings.separator
        );
        // The name goes into the temp dir's path, and that path into userdb fields, which
        // are separated by spaces.
        ensure!(
            !settings.name.contains(char::is_whitespace),
            "Dovecot instance name {:?} must not contain whitespace",
            settings.name
        );
        for (user, password) in settings.users.iter().chain(&settings.master_users) {
            check_passwd_field(user, password)?;
        }
        let dir = process::server_tempdir(&format!("mailshift-{}-", settings.name))?;
        let certs = Certificates::generate(&dir.path().join("tls"))?;
        for sub in ["run", "state", "mail"] {
            fs::create_dir_all(dir.path().join(sub))?;
        }
        process::chown_recursive(&dir.path().join("mail"), "dovecot:dovecot")?;
        let mut dovecot = Dovecot {
            users: Mutex::new(settings.users.clone()),
            ports: DovecotPorts {
                imap: 0,
                imaps: 0,
                lmtp: 0,
                managesieve: 0,
                pop3: 0,
            },
            settings,
            certs,
            daemon: Mutex::new(None),
            dir,
        };
        write_passwd(&dovecot.passwd_path(), &dovecot.settings.users)?;
        if let Some(key) = &dovecot.settings.oauth2_hs256_key {
            write_oauth2_config(dovecot.dir.path(), key)?;
        }
        write_passwd(
            &dovecot.master_passwd_path(),
            &dovecot.settings.master_users,
        )?;

        let daemon = process::on_fresh_ports("Dovecot", || {
            dovecot.ports = DovecotPorts {
                imap: free_port()?,
                imaps: free_port()?,
                lmtp: free_port()?,
                managesieve: free_port()?,
                pop3: if dovecot.settings.pop3 {
                    free_port()?
                } else {
                    0
                },
            };
            fs::write(dovecot.config_path(), dovecot.config())?;
            dovecot.launch()
        })?;
        *dovecot.daemon.lock().unwrap_or_else(|e| e.into_inner()) = Some(daemon);
        Ok(dovecot)
    }

    /// Spawns `dovecot -F` and waits for all listeners; on failure the error carries
    /// the process output and the log tail.
    fn launch(&self) -> Result<Daemon, LaunchError> {
        let output = self.dir.path().join("dovecot.out");
        let mark = LogMark::new(&[self.log_path(), output.clone()]);
        let mut cmd = Command::new("dovecot");
        cmd.arg("-F").arg("-c").arg(self.config_path());
        let mut daemon = Daemon::spawn("dovecot", cmd, &output)?;
        let ports = self.ports;
        let ready = wait::until_true(
            wait::STARTUP_TIMEOUT,
            "Dovecot to accept IMAP, IMAPS, LMTP and ManageSieve",
            || {
                daemon.check_running()?;
                Ok(wait::greets(ports.imap, "* OK")
                    && wait::accepts(ports.imaps)
                    && wait::greets(ports.lmtp, "220 ")
                    && wait::greets(ports.managesieve, "\"IMPLEMENTATION\"")
                    && (ports.pop3 == 0 || wait::greets(ports.pop3, "+OK")))
            },
        );
        daemon.or_stopped(ready, &mark, |e| {
            process::startup_error("Dovecot", self.dir(), e, &output, &self.log_path())
        })
    }

    fn daemon(&self) -> MutexGuard<'_, Option<Daemon>> {
        self.daemon.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Stops Dovecot and starts it again with the same ports, configuration and mail,
    /// e.g. to test that a migration survives the server going away mid-run.
    pub fn restart(&self) -> Result<()> {
        let mut daemon = self.daemon();
        if let Some(mut d) = daemon.take() {
            d.terminate(wait::STOP_TIMEOUT)?;
        }
        let ports = [
            self.ports.imap,
            self.ports.imaps,
            self.ports.lmtp,
            self.ports.managesieve,
        ];
        wait::until_true(wait::STOP_TIMEOUT, "Dovecot's ports to be released", || {
            Ok(ports.iter().all(|&p| is_bindable(p)))
        })?;
        fs::write(self.config_path(), self.config())?;
        // The ports are fixed now, so a collision can only be waited out, not avoided.
        let mut attempts = 0;
        loop {
            attempts += 1;
            match self.launch() {
                Ok(d) => {
                    *daemon = Some(d);
                    return Ok(());
                }
                Err(e) if attempts < process::START_ATTEMPTS && e.port_in_use => {
                    wait::until_true(wait::STOP_TIMEOUT, "Dovecot's ports to be free", || {
                        Ok(ports.iter().all(|&p| is_bindable(p)))
                    })?;
                }
                Err(e) => return Err(e.error),
            }
        }
    }

    /// Stops Dovecot (SIGTERM, then SIGKILL after a deadline). The data stays until drop;
    /// [`restart`](Self::restart) starts it again.
    pub fn stop(&self) -> Result<()> {
        match self.daemon().take() {
            Some(mut d) => d.terminate(wait::STOP_TIMEOUT),
            None => Ok(()),
        }
    }

    /// Whether the Dovecot master process is running.
    pub fn is_running(&self) -> bool {
        self.daemon()
            .as_mut()
            .is_some_and(|d| matches!(d.exited(), Ok(None)))
    }

    /// Adds a user, or changes the password of an existing one, while Dovecot runs.
    ///
    /// The passwd-file is rewritten atomically. Dovecot checks the file for changes at most
    /// once per second (per auth process), so this returns only once the clock has moved
    /// past the second of the write: from then on every login sees the change. That can
    /// take up to a second.
    pub fn add_user(&self, name: &str, password: &str) -> Result<()> {
        check_passwd_field(name, password)?;
        let mut users = self.users.lock().unwrap_or_else(|e| e.into_inner());
        match users.iter_mut().find(|(u, _)| u == name) {
            Some(entry) => entry.1 = password.to_string(),
            None => users.push((name.to_string(), password.to_string())),
        }
        write_passwd(&self.passwd_path(), &users)?;
        let written = secs(SystemTime::now());
        wait::until_true(
            Duration::from_secs(5),
            "the clock to pass the passwd-file write",
            || Ok(secs(SystemTime::now()) > written),
        )
    }

    /// Runs `doveadm -c CONFIG args...` and returns its stdout, e.g.
    /// `doveadm(&["fetch", "-u", "alice", "uid flags", "mailbox", "INBOX", "all"])` to look
    /// at a mailbox directly, bypassing IMAP.
    pub fn doveadm(&self, args: &[&str]) -> Result<String> {
        self.doveadm_input(args, None)
    }

    fn doveadm_input(&self, args: &[&str], input: Option<&[u8]>) -> Result<String> {
        let mut cmd = Command::new("doveadm");
        cmd.arg("-c").arg(self.config_path()).args(args);
        run(&mut cmd, input)?.ok()
    }

    /// Stores `message` in `user`'s `mailbox` directly with `doveadm save` (fast fixture
    /// set-up; the mailbox must exist, INBOX always does).
    pub fn save(&self, user: &str, mailbox: &str, message: &[u8]) -> Result<()> {
        self.doveadm_input(&["save", "-u", user, "-m", mailbox], Some(message))
            .map(drop)
    }

    /// Creates (and subscribes) a mailbox for `user` with `doveadm mailbox create -s`.
    pub fn create_mailbox(&self, user: &str, mailbox: &str) -> Result<()> {
        self.doveadm(&["mailbox", "create", "-s", "-u", user, mailbox])
            .map(drop)
    }

    /// Always `127.0.0.1`.
    pub fn host(&self) -> &'static str {
        crate::HOST
    }

    /// All ports.
    pub fn ports(&self) -> DovecotPorts {
        self.ports
    }

    /// POP3 port (plaintext, STLS available); 0 unless built with `pop3(true)`.
    pub fn pop3_port(&self) -> u16 {
        self.ports.pop3
    }

    /// IMAP port (plaintext, STARTTLS available).
    pub fn imap_port(&self) -> u16 {
        self.ports.imap
    }

    /// IMAPS port (implicit TLS).
    pub fn imaps_port(&self) -> u16 {
        self.ports.imaps
    }

    /// LMTP port, e.g. for a Postfix transport `lmtp:inet:127.0.0.1:PORT`.
    pub fn lmtp_port(&self) -> u16 {
        self.ports.lmtp
    }

    /// ManageSieve port.
    pub fn managesieve_port(&self) -> u16 {
        self.ports.managesieve
    }

    /// The CA certificate (PEM) that signed the server certificate: give it to clients.
    pub fn ca_path(&self) -> &Path {
        &self.certs.ca_cert
    }

    /// All generated certificate files.
    pub fn certificates(&self) -> &Certificates {
        &self.certs
    }

    /// The generated `dovecot.conf`.
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("dovecot.conf")
    }

    /// Dovecot's log file (all services).
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("dovecot.log")
    }

    /// The users' passwd-file (`user:{PLAIN}password::::::`).
    pub fn passwd_path(&self) -> PathBuf {
        self.dir.path().join("passwd")
    }

    /// The master users' passwd-file.
    pub fn master_passwd_path(&self) -> PathBuf {
        self.dir.path().join("master-users")
    }

    /// Where user homes live: `mail_dir()/USER/Maildir` and `mail_dir()/USER/sieve`.
    pub fn mail_dir(&self) -> PathBuf {
        self.dir.path().join("mail")
    }

    /// The instance's temp dir.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The hierarchy separator configured.
    pub fn separator(&self) -> char {
        self.settings.separator
    }

    fn config(&self) -> String {
        let s = &self.settings;
        let d = self.dir.path().display();
        let p = self.ports;
        let location = if s.mbox {
            "mbox:~/mail:INBOX=~/mail/inbox".to_owned()
        } else if s.separator == '/' {
            "maildir:~/Maildir:LAYOUT=fs".to_owned()
        } else {
            "maildir:~/Maildir".to_owned()
        };
        let mut c = String::new();
        let _ = write!(
            c,
            r#"# Generated by mailshift-harness: a private, throwaway Dovecot instance.
base_dir = {d}/run
state_dir = {d}/state
instance_name = mailshift-{name}
log_path = {d}/dovecot.log
protocols = imap lmtp sieve{pop3_protocol}
listen = 127.0.0.1

# Dovecot refuses to run login processes as root; mail is owned by the dovecot user.
default_login_user = dovenull
default_internal_user = dovecot
mail_uid = dovecot
mail_gid = dovecot
first_valid_uid = 1
first_valid_gid = 1
mail_location = {location}

ssl = yes
ssl_cert = <{cert}
ssl_key = <{key}
# Tests connect without TLS too (tls: none in manifests).
disable_plaintext_auth = no
auth_mechanisms = plain login{oauth_mechanisms}
auth_verbose = yes
# Failed logins answer at once instead of after 2 seconds: keeps negative tests fast.
# (The growing per-IP penalty is disabled below, at service anvil.)
auth_failure_delay = 0
auth_master_user_separator = *
lda_mailbox_autocreate = yes
lda_mailbox_autosubscribe = yes

{oauth_passdb}passdb {{
  driver = passwd-file
  args = scheme=PLAIN {d}/master-users
  master = yes
  # Also look the target user up in the next passdb, so it must exist.
  result_success = continue
}}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN {d}/passwd
}}
userdb {{
  driver = passwd-file
  args = {d}/passwd
  default_fields = uid=dovecot gid=dovecot home={d}/mail/%u
}}

namespace inbox {{
  inbox = yes
  separator = {sep}
  prefix = {prefix}
"#,
            name = s.name,
            pop3_protocol = if s.pop3 { " pop3" } else { "" },
            cert = self.certs.server_cert.display(),
            key = self.certs.server_key.display(),
            sep = s.separator,
            prefix = s.namespace_prefix,
            oauth_mechanisms = if s.oauth2_hs256_key.is_some() {
                " xoauth2 oauthbearer"
            } else {
                ""
            },
            oauth_passdb = if s.oauth2_hs256_key.is_some() {
                format!(
                    "passdb {{\n  driver = oauth2\n  mechanisms = xoauth2 oauthbearer\n  args = {d}/oauth2.conf.ext\n}}\n"
                )
            } else {
                String::new()
            },
        );
        if s.special_use {
            let auto = if s.create_special_folders {
                "subscribe"
            } else {
                "no"
            };
            for (mailbox, flag) in [
                ("Drafts", "\\Drafts"),
                ("Sent", "\\Sent"),
                ("Trash", "\\Trash"),
                ("Junk", "\\Junk"),
                ("Archive", "\\Archive"),
            ] {
                let _ = write!(
                    c,
                    "  mailbox {mailbox} {{\n    special_use = {flag}\n    auto = {auto}\n  }}\n"
                );
            }
        } else if s.create_special_folders {
            for mailbox in ["Drafts", "Sent", "Trash", "Junk", "Archive"] {
                let _ = write!(c, "  mailbox {mailbox} {{\n    auto = subscribe\n  }}\n");
            }
        }
        c.push_str("}\n\n");

        c.push_str("plugin {\n  sieve = file:~/sieve;active=~/.dovecot.sieve\n");
        if let Some(max) = s.max_message_size {
            let _ = write!(
                c,
                "  quota = count:User quota\n  quota_vsizes = yes\n  quota_rule = *:storage=0\n  quota_max_mail_size = {max}\n"
            );
        }
        c.push_str("}\n");
        if let Some(max) = s.max_message_size {
            let _ = write!(
                c,
                "mail_plugins = $mail_plugins quota\nimap_capability = +APPENDLIMIT={max}\n"
            );
        }
        if let Some(host) = &s.submission_host {
            let _ = writeln!(c, "submission_host = {host}");
        }
        c.push_str("protocol lmtp {\n  mail_plugins = $mail_plugins sieve\n");
        if s.lmtp_strip_domain {
            c.push_str("  auth_username_format = %n\n");
        }
        c.push_str("}\n");
        let _ = write!(
            c,
            r#"protocol imap {{
  # Parallel copies and benchmarks open many sessions per user from 127.0.0.1.
  mail_max_userip_connections = 1000
}}
protocol sieve {{
  mail_max_userip_connections = 1000
}}

service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {imap}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {imaps}
    ssl = yes
  }}
}}
service lmtp {{
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {lmtp}
  }}
}}
service managesieve-login {{
  inet_listener sieve {{
    address = 127.0.0.1
    port = {sieve}
  }}
}}
# Without this socket the auth process disables its per-IP penalty, which would otherwise
# delay logins from 127.0.0.1 by 4, 8, 15 s after a few failures (negative tests fail on
# purpose, and all clients share 127.0.0.1).
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
"#,
            imap = p.imap,
            imaps = p.imaps,
            lmtp = p.lmtp,
            sieve = p.managesieve,
        );
        if s.pop3 {
            let _ = write!(
                c,
                "protocol pop3 {{\n  mail_max_userip_connections = 1000\n}}\nservice pop3-login {{\n  inet_listener pop3 {{\n    address = 127.0.0.1\n    port = {}\n  }}\n  inet_listener pop3s {{\n    port = 0\n  }}\n}}\n",
                p.pop3
            );
        }
        if !s.extra_config.is_empty() {
            c.push_str("\n# extra_config\n");
            c.push_str(&s.extra_config);
        }
        c
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

fn check_passwd_field(user: &str, password: &str) -> Result<()> {
    for (what, value) in [("user name", user), ("password", password)] {
        if value.contains([':', '\n', '\r', '\0']) {
            bail!(
                "{what} {value:?} cannot go in a passwd-file (contains ':' or a control character)"
            );
        }
    }
    ensure!(!user.is_empty(), "empty user name");
    Ok(())
}

/// Writes a passwd-file atomically. Dovecot reloads it when its mtime or size changes, so
/// the mtime is bumped past the old one: a same-size rewrite within one second would
/// otherwise go unnoticed.
fn write_passwd(path: &Path, users: &[(String, String)]) -> Result<()> {
    let old_mtime = fs::metadata(path).and_then(|m| m.modified()).ok();
    let mut text = String::new();
    for (user, password) in users {
        if is_hashed(password) {
            let _ = writeln!(text, "{user}:{password}::::::");
        } else {
            let _ = writeln!(text, "{user}:{{PLAIN}}{password}::::::");
        }
    }
    process::write_atomic(path, text.as_bytes())?;
    if let Some(old) = old_mtime {
        let new = fs::metadata(path)?.modified()?;
        if secs(new) <= secs(old) {
            let bumped = SystemTime::UNIX_EPOCH + Duration::from_secs(secs(old) + 1);
            fs::File::options()
                .write(true)
                .open(path)?
                .set_modified(bumped)?;
        }
    }
    Ok(())
}

/// A password given with its scheme ([`DovecotBuilder::user_with_hash`]).
fn is_hashed(password: &str) -> bool {
    password.starts_with('{') && password.contains('}')
}

fn secs(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The oauth2 passdb's settings and its HMAC key, where Dovecot looks keys up
/// (`shared/<azp>/<alg>/<kid>` in the dict; `default` for a token without `azp` or `kid`).
fn write_oauth2_config(dir: &Path, key: &[u8]) -> Result<()> {
    use base64::Engine as _;
    let keys = dir.join("oauth2-keys");
    let key_dir = keys.join("default").join("HS256");
    fs::create_dir_all(&key_dir)?;
    fs::write(
        key_dir.join("default"),
        base64::engine::general_purpose::STANDARD.encode(key),
    )?;
    fs::write(
        dir.join("oauth2.conf.ext"),
        format!(
            "introspection_mode = local\nlocal_validation_key_dict = fs:posix:prefix={}/\nusername_attribute = email\n",
            keys.display()
        ),
    )?;
    // The auth process reads the keys as the dovecot user.
    process::chown_recursive(&keys, "dovecot:dovecot")?;
    Ok(())
}
