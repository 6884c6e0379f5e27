//! A private Cyrus IMAP 3.6: IMAP only, sasldb users, ACLs, quotas, both namespace modes.
//!
//! Debian's `cyrus-imapd` conflicts with `dovecot-imapd`, so it is not installed: the
//! install script (`scripts/install-imap-servers.sh`) installs `cyrus-common` (the master
//! process, tools, libraries) and unpacks `cyrus-imapd` (just `imapd`) into a cache
//! directory, [`server_cache`] (default `/var/cache/mailshift-test-servers`).
//!
//! The instance lives in its temp dir: `imapd.conf`, `cyrus.conf`, the configuration
//! directory (databases), the mail spool and a sasldb of users with plain passwords. The
//! Cyrus `master` runs in the foreground as our direct child, in a private mount namespace
//! (`unshare -m`) whose `/dev/log` is a socket of ours: Cyrus logs only to syslog, so the
//! harness receives its messages itself and writes them to [`Cyrus::log_path`] (the log
//! tail goes into startup errors). Nothing of the system's Cyrus (`/etc/imapd.conf`,
//! `/var/lib/cyrus`, `/run/cyrus`) is used.
//!
//! Users log in with their name (no `@domain`: virtual domains are off). The admin user
//! [`ADMIN`] manages mailboxes with the internal names (`user.alice.Sent`, or
//! `user/alice/Sent` with [`unixhierarchysep`](CyrusBuilder::unixhierarchysep)); users see
//! their own folders as `INBOX.Sent` (or `INBOX/Sent`), or as `Sent` with
//! [`altnamespace`](CyrusBuilder::altnamespace), and other users' and shared folders they
//! have rights on under `user.bob...`/`Other Users/bob/...` and `announce`/`Shared
//! Folders/announce`.

use std::fmt::Write as _;
use std::fs;
use std::io::Write as _;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use tempfile::TempDir;

use crate::client::{Imap, quote};
use crate::ports::free_port;
use crate::process::{self, Daemon, LaunchError, LogMark, run};
use crate::wait;

/// The Cyrus admin's login name (listed in `admins:`); its password is
/// [`Cyrus::admin_password`].
pub const ADMIN: &str = "cyrus";

/// The SASL realm (and `servername`) of every instance: sasldb entries are `user@REALM`.
const REALM: &str = "mailshift-test";

/// Where `scripts/install-imap-servers.sh` unpacks the packages that conflict with
/// Dovecot: `$MAILSHIFT_TEST_SERVERS`, default `/var/cache/mailshift-test-servers`.
pub fn server_cache() -> PathBuf {
    std::env::var_os("MAILSHIFT_TEST_SERVERS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/mailshift-test-servers"))
}

/// Configures a [`Cyrus`] before it starts. Get one from [`Cyrus::builder`].
#[derive(Debug, Clone)]
pub struct CyrusBuilder {
    name: String,
    users: Vec<(String, String)>,
    altnamespace: bool,
    unixhierarchysep: bool,
    quotas: Vec<(String, Option<u64>)>,
    extra_config: String,
}

impl Default for CyrusBuilder {
    fn default() -> Self {
        CyrusBuilder {
            name: "cyrus".into(),
            users: Vec::new(),
            altnamespace: false,
            unixhierarchysep: false,
            quotas: Vec::new(),
            extra_config: String::new(),
        }
    }
}

impl CyrusBuilder {
    /// A label for the temp dir name and the syslog prefix, e.g. `"source"`.
    pub fn name(mut self, name: &str) -> Self {
        self.name = name.to_string();
        self
    }

    /// Adds a user with a plain-text password; its INBOX (`user.NAME`) is created at start.
    /// Names are plain login names (`alice`, no `@domain`).
    pub fn user(mut self, name: &str, password: &str) -> Self {
        self.users.push((name.to_string(), password.to_string()));
        self
    }

    /// `altnamespace: yes`: the user's folders are shown beside INBOX (`Sent`) rather
    /// than under it (`INBOX.Sent`), other users' under `Other Users`, shared ones under
    /// `Shared Folders` (default: no, as Cyrus 2 did).
    pub fn altnamespace(mut self, on: bool) -> Self {
        self.altnamespace = on;
        self
    }

    /// `unixhierarchysep: yes`: the hierarchy separator is `/` instead of `.` (so `.` may
    /// appear in folder names) (default: no).
    pub fn unixhierarchysep(mut self, on: bool) -> Self {
        self.unixhierarchysep = on;
        self
    }

    /// A storage quota for `user` in KiB (Cyrus' unit), set at start; see
    /// [`Cyrus::set_quota`] to change it later.
    pub fn quota(mut self, user: &str, kib: u64) -> Self {
        self.quotas.push((user.to_string(), Some(kib)));
        self
    }

    /// Raw `imapd.conf` lines appended at the end (later settings win).
    pub fn extra_config(mut self, config: &str) -> Self {
        self.extra_config.push_str(config);
        self.extra_config.push('\n');
        self
    }

    /// Creates the instance, starts Cyrus, waits for IMAP and creates the users.
    pub fn start(self) -> Result<Cyrus> {
        Cyrus::start(self)
    }
}

/// A private Cyrus IMAP instance; stopped and deleted on drop.
#[derive(Debug)]
pub struct Cyrus {
    settings: CyrusBuilder,
    port: u16,
    admin_password: String,
    users: Mutex<Vec<(String, String)>>,
    daemon: Mutex<Option<Daemon>>,
    syslog: Option<Syslog>,
    // Last so it is removed after the daemon is stopped.
    dir: TempDir,
}

impl Cyrus {
    /// A builder with the defaults: no users, `altnamespace: no`, `unixhierarchysep: no`.
    pub fn builder() -> CyrusBuilder {
        CyrusBuilder::default()
    }

    /// Whether Cyrus can be started here (root, `cyrus-common` installed, `imapd`
    /// unpacked, `unshare` available); the error says what is missing.
    pub fn available() -> Result<()> {
        process::require_root()?;
        process::require_program("unshare")?;
        process::require_program("saslpasswd2")?;
        for path in [master_path(), imapd_path()] {
            ensure!(
                path.is_file(),
                "{} is missing: run scripts/install-imap-servers.sh (as root)",
                path.display()
            );
        }
        Ok(())
    }

    fn start(settings: CyrusBuilder) -> Result<Cyrus> {
        Cyrus::available()?;
        ensure!(
            !settings
                .name
                .contains(|c: char| c.is_whitespace() || c == '"'),
            "Cyrus instance name {:?} must not contain whitespace or quotes",
            settings.name
        );
        for (user, password) in &settings.users {
            check_user(user, password, settings.unixhierarchysep)?;
        }
        let dir = process::server_tempdir(&format!("mailshift-cyrus-{}-", settings.name))?;
        let d = dir.path();
        for sub in ["config", "spool", "sieve", "run", "dev", "hostdev"] {
            fs::create_dir_all(d.join(sub))?;
        }
        for sub in [
            "db", "proc", "socket", "log", "msg", "lock", "user", "quota", "sync", "ptclient",
        ] {
            fs::create_dir_all(d.join("config").join(sub))?;
        }
        let admin_password = hex(&crate::random_bytes(12)?);
        let syslog = Syslog::start(&d.join("syslog.sock"), &d.join("cyrus.log"))?;
        let mut cyrus = Cyrus {
            users: Mutex::new(Vec::new()),
            port: 0,
            admin_password,
            settings,
            daemon: Mutex::new(None),
            syslog: Some(syslog),
            dir,
        };
        cyrus.set_password(ADMIN, &cyrus.admin_password.clone())?;
        for (user, password) in &cyrus.settings.users {
            cyrus.set_password(user, password)?;
        }
        for sub in ["config", "spool", "sieve", "run"] {
            process::chown_recursive(&cyrus.dir.path().join(sub), "cyrus:mail")?;
        }
        process::chown_recursive(&cyrus.sasldb_path(), "cyrus:mail")?;
        fs::write(cyrus.imapd_conf_path(), cyrus.imapd_conf())?;
        fs::write(cyrus.dir.path().join("start.sh"), cyrus.start_script())?;

        let daemon = process::on_fresh_ports("Cyrus", || {
            cyrus.port = free_port()?;
            fs::write(cyrus.cyrus_conf_path(), cyrus.cyrus_conf())?;
            cyrus.launch()
        })?;
        *cyrus.daemon() = Some(daemon);
        let users = cyrus.settings.users.clone();
        for (user, password) in &users {
            cyrus.create_user(user, password)?;
        }
        for (user, kib) in cyrus.settings.quotas.clone() {
            cyrus.set_quota(&user, kib)?;
        }
        Ok(cyrus)
    }

    /// Spawns `unshare -m sh start.sh` (which execs `master -D`) and waits for the IMAP
    /// greeting; on failure the error carries the output and the syslog tail.
    fn launch(&self) -> Result<Daemon, LaunchError> {
        let output = self.dir.path().join("cyrus.out");
        let mark = LogMark::new(&[self.log_path(), output.clone()]);
        let mut cmd = Command::new("unshare");
        cmd.arg("--mount")
            .arg("--propagation")
            .arg("private")
            .arg("sh")
            .arg(self.dir.path().join("start.sh"));
        // A process group of its own: on shutdown Cyrus' master signals its whole group,
        // which would otherwise take other instances (and the test) with it.
        cmd.process_group(0);
        let mut daemon = Daemon::spawn("cyrus master", cmd, &output)?;
        let port = self.port;
        let ready = wait::until_true(wait::STARTUP_TIMEOUT, "Cyrus to greet on IMAP", || {
            daemon.check_running()?;
            // Cyrus' master keeps running when a service cannot bind its port.
            if mark.port_in_use() {
                bail!("the IMAP port {port} is in use");
            }
            Ok(wait::greets(port, "* OK"))
        });
        daemon.or_stopped(ready, &mark, |e| {
            process::startup_error("Cyrus", self.dir(), e, &output, &self.log_path())
        })
    }

    fn daemon(&self) -> MutexGuard<'_, Option<Daemon>> {
        self.daemon.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Stops Cyrus (SIGTERM to master, which stops its services). The data stays until
    /// drop.
    pub fn stop(&self) -> Result<()> {
        match self.daemon().take() {
            Some(mut d) => d.terminate(wait::STOP_TIMEOUT),
            None => Ok(()),
        }
    }

    /// Whether the Cyrus master process is running.
    pub fn is_running(&self) -> bool {
        self.daemon()
            .as_mut()
            .is_some_and(|d| matches!(d.exited(), Ok(None)))
    }

    /// Adds a user (sasldb entry and INBOX) while Cyrus runs, or changes a password.
    pub fn add_user(&self, name: &str, password: &str) -> Result<()> {
        check_user(name, password, self.settings.unixhierarchysep)?;
        self.set_password(name, password)?;
        let known = self.users().iter().any(|(u, _)| u == name);
        if known {
            let mut users = self.users();
            if let Some(entry) = users.iter_mut().find(|(u, _)| u == name) {
                entry.1 = password.to_string();
            }
            Ok(())
        } else {
            self.create_user(name, password)
        }
    }

    fn users(&self) -> MutexGuard<'_, Vec<(String, String)>> {
        self.users.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn create_user(&self, name: &str, password: &str) -> Result<()> {
        let mailbox = self.user_mailbox(name, "INBOX");
        self.admin_command(&format!("CREATE {}", quote(&mailbox)))?;
        self.users().push((name.to_string(), password.to_string()));
        Ok(())
    }

    fn set_password(&self, name: &str, password: &str) -> Result<()> {
        let mut cmd = Command::new("saslpasswd2");
        cmd.arg("-f")
            .arg(self.sasldb_path())
            .args(["-u", REALM, "-c", "-p", name]);
        run(&mut cmd, Some(password.as_bytes()))?.ok().map(drop)
    }

    fn password(&self, user: &str) -> Result<String> {
        if user == ADMIN {
            return Ok(self.admin_password.clone());
        }
        self.users()
            .iter()
            .find(|(u, _)| u == user)
            .map(|(_, p)| p.clone())
            .with_context(|| format!("no Cyrus user {user:?}"))
    }

    /// An IMAP session logged in as the admin ([`ADMIN`]), who sees internal names
    /// (`user.alice.Sent`) and may CREATE, SETACL, SETQUOTA anything.
    pub fn admin(&self) -> Result<Imap> {
        Imap::login(self.port, ADMIN, &self.admin_password)
    }

    /// Runs one IMAP command as the admin; fails unless it completes with OK.
    pub fn admin_command(&self, command: &str) -> Result<Vec<crate::client::Untagged>> {
        let mut imap = self.admin()?;
        let out = imap.command(command);
        imap.logout();
        out
    }

    /// An IMAP session logged in as `user` (one added with [`CyrusBuilder::user`] or
    /// [`add_user`](Self::add_user)).
    pub fn imap(&self, user: &str) -> Result<Imap> {
        Imap::login(self.port, user, &self.password(user)?)
    }

    /// The admin's (internal) name of `user`'s folder `folder`, given as the user sees it
    /// without a namespace prefix and with the server's separator: `("alice", "INBOX")` is
    /// `user.alice`, `("alice", "Sent.2024")` is `user.alice.Sent.2024` (`user/alice/...`
    /// with `unixhierarchysep`).
    pub fn user_mailbox(&self, user: &str, folder: &str) -> String {
        let sep = self.separator();
        if folder.eq_ignore_ascii_case("INBOX") {
            format!("user{sep}{user}")
        } else {
            format!("user{sep}{user}{sep}{folder}")
        }
    }

    /// How `user` names their own folder `folder` (given as for
    /// [`user_mailbox`](Self::user_mailbox)): `INBOX.Sent` (`INBOX/Sent`), or `Sent` with
    /// `altnamespace`.
    pub fn personal_name(&self, folder: &str) -> String {
        if folder.eq_ignore_ascii_case("INBOX") || self.settings.altnamespace {
            folder.to_string()
        } else {
            format!("INBOX{}{folder}", self.separator())
        }
    }

    /// How a user names the shared folder `mailbox` (a top-level mailbox, not under
    /// `user`): `Shared Folders/announce` with `altnamespace`, `announce` otherwise.
    pub fn shared_name(&self, mailbox: &str) -> String {
        if self.settings.altnamespace {
            format!("Shared Folders{}{mailbox}", self.separator())
        } else {
            mailbox.to_string()
        }
    }

    /// How a user names `owner`'s folder `folder` (as for
    /// [`user_mailbox`](Self::user_mailbox)) once it is shared with them:
    /// `Other Users/bob/Projects` with `altnamespace`, `user.bob.Projects` otherwise.
    pub fn other_user_name(&self, owner: &str, folder: &str) -> String {
        let sep = self.separator();
        let root = if self.settings.altnamespace {
            format!("Other Users{sep}{owner}")
        } else {
            format!("user{sep}{owner}")
        };
        if folder.eq_ignore_ascii_case("INBOX") {
            root
        } else {
            format!("{root}{sep}{folder}")
        }
    }

    /// Creates `user`'s folder `folder` (as for [`user_mailbox`](Self::user_mailbox)) as
    /// that user, and subscribes it.
    pub fn create_mailbox(&self, user: &str, folder: &str) -> Result<()> {
        let name = self.personal_name(folder);
        let mut imap = self.imap(user)?;
        imap.command(&format!("CREATE {}", quote(&name)))?;
        imap.command(&format!("SUBSCRIBE {}", quote(&name)))?;
        imap.logout();
        Ok(())
    }

    /// Creates a mailbox by its internal name as the admin, e.g. `announce` (a shared
    /// folder) or `user.bob.Projects` (another user's), and grants `rights` (e.g. `"lrs"`)
    /// on it to each of `grantees` (users, or `anyone`).
    pub fn create_admin_mailbox(&self, mailbox: &str, grantees: &[(&str, &str)]) -> Result<()> {
        let mut imap = self.admin()?;
        imap.command(&format!("CREATE {}", quote(mailbox)))?;
        for (who, rights) in grantees {
            imap.command(&format!(
                "SETACL {} {} {}",
                quote(mailbox),
                quote(who),
                quote(rights)
            ))?;
        }
        imap.logout();
        Ok(())
    }

    /// Grants `rights` on a mailbox (internal name) to `who`, as the admin.
    pub fn set_acl(&self, mailbox: &str, who: &str, rights: &str) -> Result<()> {
        self.admin_command(&format!(
            "SETACL {} {} {}",
            quote(mailbox),
            quote(who),
            quote(rights)
        ))
        .map(drop)
    }

    /// Sets `user`'s storage quota in KiB (`None`: no limit), effective at once.
    pub fn set_quota(&self, user: &str, kib: Option<u64>) -> Result<()> {
        let root = self.user_mailbox(user, "INBOX");
        let limits = kib.map_or(String::new(), |k| format!("STORAGE {k}"));
        self.admin_command(&format!("SETQUOTA {} ({limits})", quote(&root)))
            .map(drop)
    }

    /// `user`'s storage usage and limit in KiB (`GETQUOTA user.NAME` as the admin), if a
    /// limit is set. (Asked of the quota root itself: right after a shared folder is
    /// created, Cyrus 3.6 sometimes answers a user's `GETQUOTAROOT INBOX` without the root.)
    pub fn quota(&self, user: &str) -> Result<Option<(u64, u64)>> {
        let root = self.user_mailbox(user, "INBOX");
        let mut imap = self.admin()?;
        let (responses, status) = imap.command_status(&format!("GETQUOTA {}", quote(&root)))?;
        imap.logout();
        if !status.starts_with("OK") {
            // `NO Quota root does not exist` when no limit was ever set.
            return Ok(None);
        }
        for r in responses {
            if let Some((_, rest)) = r.text.split_once("STORAGE ") {
                let mut nums = rest
                    .split(|c: char| !c.is_ascii_digit())
                    .filter(|s| !s.is_empty());
                if let (Some(used), Some(limit)) = (nums.next(), nums.next()) {
                    return Ok(Some((used.parse()?, limit.parse()?)));
                }
            }
        }
        Ok(None)
    }

    /// Appends messages to `mailbox` (as `user` names it) as `user`, each with flags
    /// (`\\Seen $Label`) and INTERNALDATE (`"07-Mar-2019 08:09:10 +0530"`, empty for now),
    /// in one MULTIAPPEND.
    pub fn append(
        &self,
        user: &str,
        mailbox: &str,
        messages: &[(&str, &str, &[u8])],
    ) -> Result<()> {
        let mut imap = self.imap(user)?;
        imap.append_many(mailbox, messages)?;
        imap.logout();
        Ok(())
    }

    /// Always `127.0.0.1`.
    pub fn host(&self) -> &'static str {
        crate::HOST
    }

    /// IMAP port (plaintext; LOGIN and AUTHENTICATE PLAIN allowed).
    pub fn imap_port(&self) -> u16 {
        self.port
    }

    /// The admin's password (random per instance).
    pub fn admin_password(&self) -> &str {
        &self.admin_password
    }

    /// The hierarchy separator: `/` with `unixhierarchysep`, `.` otherwise.
    pub fn separator(&self) -> char {
        if self.settings.unixhierarchysep {
            '/'
        } else {
            '.'
        }
    }

    /// Whether `altnamespace` is on.
    pub fn altnamespace(&self) -> bool {
        self.settings.altnamespace
    }

    /// What Cyrus logged (received on the instance's `/dev/log`), one message a line.
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("cyrus.log")
    }

    /// The last `n` lines of the log, e.g. for an assertion message.
    pub fn log_tail(&self, n: usize) -> String {
        process::tail(&self.log_path(), n)
    }

    /// The generated `imapd.conf`.
    pub fn imapd_conf_path(&self) -> PathBuf {
        self.dir.path().join("imapd.conf")
    }

    /// The generated `cyrus.conf` (the master's services).
    pub fn cyrus_conf_path(&self) -> PathBuf {
        self.dir.path().join("cyrus.conf")
    }

    fn sasldb_path(&self) -> PathBuf {
        self.dir.path().join("sasldb2")
    }

    /// The instance's temp dir.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn imapd_conf(&self) -> String {
        let s = &self.settings;
        let d = self.dir.path().display();
        let yes_no = |b: bool| if b { "yes" } else { "no" };
        let mut c = format!(
            "# Generated by mailshift-harness: a private, throwaway Cyrus instance.
configdirectory: {d}/config
partition-default: {d}/spool
sievedir: {d}/sieve
servername: {REALM}
syslog_prefix: cyrus-{name}
admins: {ADMIN}
altnamespace: {alt}
unixhierarchysep: {unix}
virtdomains: off
allowplaintext: yes
sasl_pwcheck_method: auxprop
sasl_auxprop_plugin: sasldb
sasl_sasldb_path: {d}/sasldb2
sasl_mech_list: PLAIN LOGIN
lmtpsocket: {d}/config/socket/lmtp
idlesocket: {d}/config/socket/idle
notifysocket: {d}/config/socket/notify
mboxname_lockpath: {d}/config/lock
statuscache: off
conversations: off
search_engine: none
delete_mode: immediate
expunge_mode: immediate
hashimapspool: no
# Mailboxes stored by name, not by UNIQUEID: two mailboxes created in quick succession were
# seen sharing one directory (a user's INBOX showing a shared folder's messages).
mailbox_legacy_dirs: yes
# Failed logins answer at once (default: after 3 s), so negative tests stay fast.
failedloginpause: 0
",
            name = s.name,
            alt = yes_no(s.altnamespace),
            unix = yes_no(s.unixhierarchysep),
        );
        if !s.extra_config.is_empty() {
            c.push_str("# extra_config\n");
            c.push_str(&s.extra_config);
        }
        c
    }

    fn cyrus_conf(&self) -> String {
        let conf = self.imapd_conf_path();
        let conf = conf.display();
        format!(
            "# Generated by mailshift-harness.
START {{
  recover cmd=\"ctl_cyrusdb -C {conf} -r\"
}}
SERVICES {{
  imap cmd=\"{imapd} -C {conf}\" listen=\"127.0.0.1:{port}\" prefork=0
}}
EVENTS {{
}}
",
            imapd = imapd_path().display(),
            port = self.port,
        )
    }

    /// The script run in the private mount namespace: a `/dev` of our own whose `log` is
    /// the harness's syslog socket, then `exec master` in the foreground.
    fn start_script(&self) -> String {
        let d = self.dir.path().display();
        let mut s = String::new();
        let _ = write!(
            s,
            r#"set -e
# Runs in a private mount namespace (unshare -m): nothing here is seen outside.
mount --rbind /dev {d}/hostdev
mount -t tmpfs -o mode=0755,size=64k mailshift-dev /dev
for n in null zero full random urandom tty; do
    if [ -e {d}/hostdev/$n ]; then
        touch /dev/$n
        mount --bind {d}/hostdev/$n /dev/$n
    fi
done
ln -s /proc/self/fd /dev/fd
ln -s /proc/self/fd/0 /dev/stdin
ln -s /proc/self/fd/1 /dev/stdout
ln -s /proc/self/fd/2 /dev/stderr
if [ -d {d}/hostdev/shm ]; then
    mkdir /dev/shm
    mount --rbind {d}/hostdev/shm /dev/shm
fi
touch /dev/log
mount --bind {d}/syslog.sock /dev/log
exec {master} -C {d}/imapd.conf -M {d}/cyrus.conf -p {d}/run/master.pid -D
"#,
            master = master_path().display(),
        );
        s
    }
}

impl Drop for Cyrus {
    fn drop(&mut self) {
        let _ = self.stop();
        if let Some(syslog) = self.syslog.take() {
            syslog.stop();
        }
    }
}

fn master_path() -> PathBuf {
    PathBuf::from("/usr/lib/cyrus/bin/master")
}

fn imapd_path() -> PathBuf {
    server_cache().join("cyrus-imapd/usr/lib/cyrus/bin/imapd")
}

fn check_user(user: &str, password: &str, unixhierarchysep: bool) -> Result<()> {
    ensure!(!user.is_empty(), "empty user name");
    ensure!(
        user != ADMIN,
        "{ADMIN:?} is the harness's Cyrus admin; pick another user name"
    );
    if user.contains(|c: char| c.is_whitespace() || c.is_control() || "@\"\\%*/".contains(c)) {
        bail!("user name {user:?}: use a plain login name (no '@', spaces, quotes or wildcards)");
    }
    ensure!(
        unixhierarchysep || !user.contains('.'),
        "user name {user:?} contains '.', the hierarchy separator: use unixhierarchysep"
    );
    ensure!(
        !password.contains(['\n', '\r', '\0']),
        "passwords may not contain line breaks or NUL"
    );
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// A syslog receiver: a Unix datagram socket (bound over `/dev/log` in the server's mount
/// namespace) whose messages are appended, one a line, to a log file.
#[derive(Debug)]
struct Syslog {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Syslog {
    fn start(socket: &Path, log: &Path) -> Result<Syslog> {
        let sock = UnixDatagram::bind(socket)
            .with_context(|| format!("binding the syslog socket {}", socket.display()))?;
        // The server's processes run as its own user.
        fs::set_permissions(socket, fs::Permissions::from_mode(0o666))?;
        sock.set_read_timeout(Some(Duration::from_millis(100)))?;
        let mut file = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("opening {}", log.display()))?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::Builder::new()
            .name("cyrus-syslog".into())
            .spawn(move || {
                let mut buf = vec![0u8; 16 * 1024];
                while !stopping.load(Ordering::Relaxed) {
                    if let Ok(n) = sock.recv(&mut buf) {
                        let _ = file.write_all(&syslog_line(&buf[..n]));
                    }
                }
            })?;
        Ok(Syslog {
            stop,
            thread: Some(thread),
        })
    }

    fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One syslog datagram (`<PRI>Mmm dd hh:mm:ss tag[pid]: text`) as a log line without
/// the priority, newline-terminated.
fn syslog_line(datagram: &[u8]) -> Vec<u8> {
    let mut text = datagram;
    if text.first() == Some(&b'<')
        && let Some(end) = text.iter().position(|&b| b == b'>')
    {
        text = &text[end + 1..];
    }
    while let Some((&last, rest)) = text.split_last() {
        if last == b'\n' || last == b'\0' {
            text = rest;
        } else {
            break;
        }
    }
    let mut line = text.to_vec();
    line.push(b'\n');
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syslog_lines_lose_the_priority() {
        assert_eq!(
            syslog_line(b"<22>Dec  1 11:35:01 cyrus-x/imap[12]: login: alice\0"),
            b"Dec  1 11:35:01 cyrus-x/imap[12]: login: alice\n"
        );
        assert_eq!(syslog_line(b"plain\n"), b"plain\n");
    }

    #[test]
    fn user_names_must_be_plain() {
        assert!(check_user("alice", "pw", false).is_ok());
        assert!(check_user("alice@example.com", "pw", false).is_err());
        assert!(check_user("a.b", "pw", false).is_err());
        assert!(check_user("a.b", "pw", true).is_ok());
        assert!(check_user(ADMIN, "pw", true).is_err());
    }
}
