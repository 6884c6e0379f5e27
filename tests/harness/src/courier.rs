//! A private Courier-IMAP 5.0: Maildir++ folders under `INBOX.`, userdb users.
//!
//! Debian's `courier-imap` conflicts with `dovecot-imapd`, so it is not installed: the
//! install script (`scripts/install-imap-servers.sh`) installs `courier-base` (couriertcpd,
//! libraries) and `courier-authlib-userdb` (authdaemond with the userdb module) and unpacks
//! `courier-imap` (imaplogin, imapd) into [`crate::cyrus::server_cache`].
//!
//! Courier's authlib has compiled-in paths: its configuration under `/etc/courier`
//! (`authdaemonrc`, `userdb.dat`) and the authdaemond socket under `/run/courier`. So each
//! instance runs in a private mount namespace (`unshare --mount --pid --fork`) where its own
//! temp dir's `etc` and `run` are bind-mounted over those paths: instances are kept apart
//! and off the system's. The namespace's first process is a small shell that starts
//! `authdaemond` and `couriertcpd` (with `imaplogin`/`imapd`) in the foreground, their
//! output going to [`Courier::log_path`]; when it is told to stop, every process in the
//! namespace goes with it.
//!
//! What a client meets is Courier as deployed: NAMESPACE `(("INBOX." "."))`, `\Noselect`
//! parents for folders created deep, keywords, ACLs; no SPECIAL-USE, CONDSTORE, LITERAL+,
//! MULTIAPPEND nor MOVE. Commands pipelined behind LOGIN are lost (imaplogin execs imapd).

use std::fmt::Write as _;
use std::fs;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use tempfile::TempDir;

use crate::client::{Imap, LineConn, quote};
use crate::cyrus::server_cache;
use crate::ports::free_port;
use crate::process::{self, Daemon, LaunchError, LogMark, run, run_ok};
use crate::wait;

/// Configures a [`Courier`] before it starts. Get one from [`Courier::builder`].
#[derive(Debug, Clone)]
pub struct CourierBuilder {
    name: String,
    users: Vec<(String, String)>,
    env: Vec<(String, String)>,
}

impl Default for CourierBuilder {
    fn default() -> Self {
        CourierBuilder {
            name: "courier".into(),
            users: Vec::new(),
            env: Vec::new(),
        }
    }
}

impl CourierBuilder {
    /// A label for the temp dir name, e.g. `"destination"`.
    pub fn name(mut self, name: &str) -> Self {
        self.name = name.to_string();
        self
    }

    /// Adds a userdb user with a password (stored as a SHA-512 crypt hash); its Maildir is
    /// created empty. The login name is used as given, e.g. `"alice@example.com"`.
    pub fn user(mut self, name: &str, password: &str) -> Self {
        self.users.push((name.to_string(), password.to_string()));
        self
    }

    /// An `imapd` setting (environment variable, as in `/etc/courier/imapd`), e.g.
    /// `("IMAP_CAPABILITY", "IMAP4rev1 UIDPLUS ...")`; overrides the harness's default.
    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.env.push((name.to_string(), value.to_string()));
        self
    }

    /// Creates the instance, starts Courier and waits for IMAP and authdaemond.
    pub fn start(self) -> Result<Courier> {
        Courier::start(self)
    }
}

/// A private Courier-IMAP instance; stopped and deleted on drop.
#[derive(Debug)]
pub struct Courier {
    settings: CourierBuilder,
    port: u16,
    owner: (u32, u32),
    /// (name, password, crypt hash)
    users: Mutex<Vec<(String, String, String)>>,
    daemon: Mutex<Option<Daemon>>,
    // Last so it is removed after the daemon is stopped.
    dir: TempDir,
}

impl Courier {
    /// A builder with the defaults: no users.
    pub fn builder() -> CourierBuilder {
        CourierBuilder::default()
    }

    /// Whether Courier can be started here (root, courier-base and authlib installed,
    /// courier-imap unpacked, `unshare` available); the error says what is missing.
    pub fn available() -> Result<()> {
        process::require_root()?;
        for program in ["unshare", "couriertcpd", "makeuserdb", "openssl"] {
            process::require_program(program)?;
        }
        for path in [authdaemond_path(), imaplogin_path(), imapd_path()] {
            ensure!(
                path.is_file(),
                "{} is missing: run scripts/install-imap-servers.sh (as root)",
                path.display()
            );
        }
        // The bind mounts need their mount points (`/run/courier` is made by the start
        // script if a reboot emptied /run).
        ensure!(
            Path::new("/etc/courier").is_dir(),
            "/etc/courier is missing: run scripts/install-imap-servers.sh (as root)"
        );
        Ok(())
    }

    fn start(settings: CourierBuilder) -> Result<Courier> {
        Courier::available()?;
        ensure!(
            !settings
                .name
                .contains(|c: char| c.is_whitespace() || "'\"\\$`".contains(c)),
            "Courier instance name {:?} must not contain whitespace or quotes",
            settings.name
        );
        for (user, password) in &settings.users {
            check_user(user, password)?;
        }
        for (name, value) in &settings.env {
            ensure!(
                !name.is_empty()
                    && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                    && !value.contains(['\n', '\0']),
                "bad imapd setting {name:?}={value:?}"
            );
        }
        let dir = process::server_tempdir(&format!("mailshift-courier-{}-", settings.name))?;
        let d = dir.path();
        for sub in ["etc", "run/authdaemon", "mail"] {
            fs::create_dir_all(d.join(sub))?;
        }
        let owner = (id("-u")?, id("-g")?);
        let mut courier = Courier {
            users: Mutex::new(Vec::new()),
            port: 0,
            owner,
            settings,
            daemon: Mutex::new(None),
            dir,
        };
        fs::write(
            courier.etc().join("authdaemonrc"),
            "authmodulelist=\"authuserdb\"\ndaemons=2\nauthdaemonvar=/run/courier/authdaemon\n\
             DEBUG_LOGIN=0\nDEFAULTOPTIONS=\"\"\nLOGGEROPTS=\"\"\n",
        )?;
        {
            let mut users = courier.users();
            for (user, password) in &courier.settings.users {
                courier.make_maildir(user)?;
                users.push((user.clone(), password.clone(), hash_password(password)?));
            }
            courier.write_userdb(&users)?;
        }
        process::chown_recursive(&courier.dir.path().join("run"), "courier:courier")?;

        let daemon = process::on_fresh_ports("Courier", || {
            courier.port = free_port()?;
            fs::write(courier.dir.path().join("start.sh"), courier.start_script())?;
            courier.launch()
        })?;
        *courier.daemon() = Some(daemon);
        Ok(courier)
    }

    /// Spawns the namespace and waits for the IMAP greeting and authdaemond's socket.
    fn launch(&self) -> Result<Daemon, LaunchError> {
        let output = self.log_path();
        let mark = LogMark::new(std::slice::from_ref(&output));
        let socket = self.dir.path().join("run/authdaemon/socket");
        let _ = fs::remove_file(&socket);
        let mut cmd = Command::new("unshare");
        cmd.args([
            "--mount",
            "--propagation",
            "private",
            "--pid",
            "--fork",
            "sh",
        ])
        .arg(self.dir.path().join("start.sh"));
        // A process group of its own, so no signal meant for our group reaches it.
        cmd.process_group(0);
        let mut daemon = Daemon::spawn("courier", cmd, &output)?;
        // Our child is `unshare`, which ignores SIGTERM while it waits; the namespace's
        // first process (the shell) is told to stop instead, and takes everything with it.
        let unshare = daemon.pid();
        let init = wait::until(
            Duration::from_secs(10),
            "unshare to start the namespace",
            || {
                daemon.check_running()?;
                let children =
                    fs::read_to_string(format!("/proc/{unshare}/task/{unshare}/children"))
                        .unwrap_or_default();
                Ok(children.split_whitespace().next().map(str::to_owned))
            },
        );
        let init = match init {
            Ok(pid) => pid,
            Err(e) => {
                let _ = daemon.terminate(wait::STOP_TIMEOUT);
                return Err(e.into());
            }
        };
        let mut daemon = daemon.with_stop_command(vec!["kill".into(), "-TERM".into(), init.into()]);
        let port = self.port;
        let ready = wait::until_true(
            wait::STARTUP_TIMEOUT,
            "Courier to greet on IMAP and authdaemond to listen",
            || {
                daemon.check_running()?;
                if mark.port_in_use() {
                    bail!("the IMAP port {port} is in use");
                }
                Ok(socket.exists() && wait::greets(port, "* OK"))
            },
        );
        daemon.or_stopped(ready, &mark, |e| {
            process::startup_error("Courier", self.dir(), e, &output, &output)
        })
    }

    fn daemon(&self) -> MutexGuard<'_, Option<Daemon>> {
        self.daemon.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn users(&self) -> MutexGuard<'_, Vec<(String, String, String)>> {
        self.users.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Stops Courier (all processes of its namespace). The data stays until drop.
    pub fn stop(&self) -> Result<()> {
        match self.daemon().take() {
            Some(mut d) => d.terminate(wait::STOP_TIMEOUT),
            None => Ok(()),
        }
    }

    /// Whether the instance is running.
    pub fn is_running(&self) -> bool {
        self.daemon()
            .as_mut()
            .is_some_and(|d| matches!(d.exited(), Ok(None)))
    }

    /// Adds a user (or changes a password) while Courier runs: userdb is rebuilt with
    /// `makeuserdb`, which authdaemond notices on the next login.
    pub fn add_user(&self, name: &str, password: &str) -> Result<()> {
        check_user(name, password)?;
        let hash = hash_password(password)?;
        let mut users = self.users();
        match users.iter_mut().find(|(u, _, _)| u == name) {
            Some(entry) => {
                entry.1 = password.to_string();
                entry.2 = hash;
            }
            None => {
                self.make_maildir(name)?;
                users.push((name.to_string(), password.to_string(), hash));
            }
        }
        self.write_userdb(&users)
    }

    /// An IMAP session logged in as `user` (one added with the builder or
    /// [`add_user`](Self::add_user)).
    pub fn imap(&self, user: &str) -> Result<Imap> {
        Imap::login(self.port, user, &self.password(user)?)
    }

    fn password(&self, user: &str) -> Result<String> {
        self.users()
            .iter()
            .find(|(u, _, _)| u == user)
            .map(|(_, p, _)| p.clone())
            .with_context(|| format!("no Courier user {user:?}"))
    }

    /// Creates and subscribes `mailbox` (e.g. `INBOX.Sent`) as `user` (one added with the
    /// builder or [`add_user`](Self::add_user)).
    pub fn create_mailbox(&self, user: &str, mailbox: &str) -> Result<()> {
        let mut imap = self.imap(user)?;
        imap.command(&format!("CREATE {}", quote(mailbox)))?;
        imap.command(&format!("SUBSCRIBE {}", quote(mailbox)))?;
        imap.logout();
        Ok(())
    }

    /// Appends messages to `mailbox` as `user`, each with
    /// flags (`\\Seen $Label`) and INTERNALDATE (`"07-Mar-2019 08:09:10 +0530"`, empty for
    /// now). One APPEND each with synchronizing literals: Courier has neither LITERAL+ nor
    /// MULTIAPPEND.
    pub fn append(
        &self,
        user: &str,
        mailbox: &str,
        messages: &[(&str, &str, &[u8])],
    ) -> Result<()> {
        let mut conn = LineConn::connect(self.port)?;
        let greeting = conn.read_text_line()?;
        ensure!(greeting.starts_with("* OK"), "Courier greeting: {greeting}");
        let password = self.password(user)?;
        conn.send_line(&format!("l LOGIN {} {}", quote(user), quote(&password)))?;
        let status = read_tagged(&mut conn, "l")?;
        ensure!(status.starts_with("OK"), "LOGIN as {user}: {status}");
        for (i, (flags, date, message)) in messages.iter().enumerate() {
            let tag = format!("a{i}");
            let date = if date.is_empty() {
                String::new()
            } else {
                format!(" {}", quote(date))
            };
            conn.send_line(&format!(
                "{tag} APPEND {} ({flags}){date} {{{}}}",
                quote(mailbox),
                message.len()
            ))?;
            loop {
                let line = conn.read_text_line()?;
                if line.starts_with('+') {
                    break;
                }
                if let Some(status) = line.strip_prefix(&format!("{tag} ")) {
                    bail!("APPEND to {mailbox} refused: {status}");
                }
            }
            conn.send(message)?;
            conn.send(b"\r\n")?;
            let status = read_tagged(&mut conn, &tag)?;
            ensure!(status.starts_with("OK"), "APPEND to {mailbox}: {status}");
        }
        conn.send_line("z LOGOUT")?;
        let _ = read_tagged(&mut conn, "z");
        Ok(())
    }

    /// Always `127.0.0.1`.
    pub fn host(&self) -> &'static str {
        crate::HOST
    }

    /// IMAP port (plaintext, LOGIN allowed).
    pub fn imap_port(&self) -> u16 {
        self.port
    }

    /// The output of authdaemond, couriertcpd and imapd (logins, errors).
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("courier.log")
    }

    /// The last `n` lines of the log, e.g. for an assertion message.
    pub fn log_tail(&self, n: usize) -> String {
        process::tail(&self.log_path(), n)
    }

    /// `user`'s Maildir (`mail/USER/Maildir` in the temp dir), owned by the `courier` user.
    pub fn maildir(&self, user: &str) -> PathBuf {
        self.dir.path().join("mail").join(user).join("Maildir")
    }

    /// The instance's temp dir.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn etc(&self) -> PathBuf {
        self.dir.path().join("etc")
    }

    fn make_maildir(&self, user: &str) -> Result<()> {
        let maildir = self.maildir(user);
        for sub in ["cur", "new", "tmp"] {
            fs::create_dir_all(maildir.join(sub))?;
        }
        let owner = format!("{}:{}", self.owner.0, self.owner.1);
        process::chown_recursive(&self.dir.path().join("mail").join(user), &owner)
    }

    /// Writes `etc/userdb` (mode 0600, as makeuserdb demands) and compiles it.
    fn write_userdb(&self, users: &[(String, String, String)]) -> Result<()> {
        let mut text = String::new();
        for (user, _, hash) in users {
            let home = self.dir.path().join("mail").join(user);
            let _ = writeln!(
                text,
                "{user}\tuid={}|gid={}|home={}|mail={}|systempw={hash}",
                self.owner.0,
                self.owner.1,
                home.display(),
                self.maildir(user).display(),
            );
        }
        let path = self.etc().join("userdb");
        {
            use std::io::Write as _;
            use std::os::unix::fs::OpenOptionsExt;
            let tmp = path.with_extension("new");
            let mut f = fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(text.as_bytes())?;
            fs::rename(&tmp, &path)?;
        }
        run_ok(Command::new("makeuserdb").arg("-f").arg(&path)).map(drop)
    }

    /// The namespace's first process: bind mounts, then authdaemond and couriertcpd in the
    /// foreground; on SIGTERM it stops both and exits, which ends the namespace.
    fn start_script(&self) -> String {
        let d = self.dir.path().display();
        let mut env: Vec<(String, String)> = [
            (
                "IMAP_CAPABILITY",
                "IMAP4rev1 UIDPLUS CHILDREN NAMESPACE THREAD=ORDEREDSUBJECT THREAD=REFERENCES SORT QUOTA IDLE",
            ),
            ("IMAP_KEYWORDS", "1"),
            ("IMAP_ACL", "1"),
            ("IMAP_PROXY", "0"),
            ("IMAP_IDLE_TIMEOUT", "60"),
            ("IMAP_MAILBOX_SANITY_CHECK", "1"),
            ("IMAP_DISABLETHREADSORT", "0"),
            ("IMAP_CHECK_ALL_FOLDERS", "0"),
            ("IMAP_OBSOLETE_CLIENT", "0"),
            ("IMAP_UMASK", "022"),
            ("IMAP_USELOCKS", "1"),
            ("IMAP_ENHANCEDIDLE", "0"),
            ("IMAP_TRASHFOLDERNAME", "Trash"),
            // Not Debian's `Trash:7`: old test messages in Trash would vanish at logout.
            ("IMAP_EMPTYTRASH", ""),
            ("IMAP_MOVE_EXPUNGE_TO_TRASH", "0"),
            ("IMAP_SHAREDINDEXFILE", "/etc/courier/shared/index"),
            ("HEADERFROM", "X-IMAP-Sender"),
            ("SENDMAIL", "/usr/sbin/sendmail"),
            ("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        for (name, value) in &self.settings.env {
            env.retain(|(k, _)| k != name);
            env.push((name.clone(), value.clone()));
        }
        let env_args: String = env
            .iter()
            .map(|(k, v)| format!(" {k}='{}'", v.replace('\'', "'\\''")))
            .collect();
        format!(
            r#"# Generated by mailshift-harness. The first process of a private mount and PID
# namespace (unshare --mount --pid --fork): when it exits, the kernel ends the rest.
set -e
mkdir -p /run/courier
mount --bind {d}/etc /etc/courier
mount --bind {d}/run /run/courier
set +e
A=
T=
trap 'kill -TERM $A $T 2>/dev/null; wait; exit 0' TERM INT
{authdaemond} &
A=$!
env -i{env_args} couriertcpd -address=127.0.0.1 -maxprocs=100 -maxperip=100 \
    -nodnslookup -noidentlookup {port} {imaplogin} {imapd} Maildir &
T=$!
wait
"#,
            authdaemond = authdaemond_path().display(),
            port = self.port,
            imaplogin = imaplogin_path().display(),
            imapd = imapd_path().display(),
        )
    }
}

impl Drop for Courier {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

fn authdaemond_path() -> PathBuf {
    PathBuf::from("/usr/lib/courier/courier-authlib/authdaemond")
}

fn imaplogin_path() -> PathBuf {
    server_cache().join("courier-imap/usr/lib/courier/courier/imaplogin")
}

fn imapd_path() -> PathBuf {
    server_cache().join("courier-imap/usr/bin/imapd")
}

/// The `courier` system user's uid (`-u`) or gid (`-g`): mail is stored as that user.
fn id(flag: &str) -> Result<u32> {
    let out = run_ok(Command::new("id").arg(flag).arg("courier"))?;
    out.trim()
        .parse()
        .with_context(|| format!("`id {flag} courier` said {out:?}"))
}

/// A SHA-512 crypt hash (`$6$...`), which authlib checks with crypt(3).
fn hash_password(password: &str) -> Result<String> {
    let out = run(
        Command::new("openssl").args(["passwd", "-6", "-stdin"]),
        Some(format!("{password}\n").as_bytes()),
    )?
    .ok()?;
    Ok(out.trim().to_string())
}

fn check_user(user: &str, password: &str) -> Result<()> {
    ensure!(!user.is_empty(), "empty user name");
    if user.contains(|c: char| c.is_whitespace() || c.is_control() || "|/\"\\".contains(c)) {
        bail!("user name {user:?} cannot go in userdb (whitespace, '|', '/', quotes)");
    }
    ensure!(
        !password.contains(['\n', '\r', '\0']),
        "passwords may not contain line breaks or NUL"
    );
    Ok(())
}

/// Reads lines until the one tagged `tag`; returns its status (`OK ...`, `NO ...`).
fn read_tagged(conn: &mut LineConn, tag: &str) -> Result<String> {
    let prefix = format!("{tag} ");
    loop {
        let line = conn.read_text_line()?;
        if let Some(status) = line.strip_prefix(&prefix) {
            return Ok(status.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_names_must_fit_userdb() {
        assert!(check_user("alice@example.com", "pw").is_ok());
        assert!(check_user("a|b", "pw").is_err());
        assert!(check_user("a b", "pw").is_err());
        assert!(check_user("a", "p\nw").is_err());
    }
}
