//! A private Radicale 3: a CalDAV/CardDAV server with htpasswd users, for mailshift's
//! tests of calendar and contact migration against a real DAV server.
//!
//! `python3 -m radicale -C CONFIG` runs in the foreground with a config file in the
//! instance's temp dir (`radicale.conf`, which replaces `/etc/radicale/config` and
//! `~/.config/radicale/config`): `multifilesystem` storage under [`Radicale::data_dir`],
//! `[auth] type = htpasswd` with `htpasswd_encryption = plain` over the users given to
//! [`RadicaleBuilder::user`], `owner_only` rights, plain HTTP on `127.0.0.1` and a free
//! port. Radicale logs to stderr, which goes to [`Radicale::log_path`].
//!
//! Radicale's behaviour worth knowing in tests (3.9 with vobject 0.9.9):
//!
//! * A user's principal collection `/USER/` is created on the user's first authenticated
//!   request; it is also the calendar and address book home set (`current-user-principal`,
//!   `calendar-home-set` and `addressbook-home-set` all answer `/USER/`, with `@`
//!   percent-encoded: `/alice%40example.com/`). There are no default collections: a
//!   calendar or address book is made with an extended MKCOL (RFC 5689) whose
//!   `resourcetype` has `C:calendar` or `CR:addressbook`.
//! * Items are parsed and re-serialized, not stored as sent: properties are reordered
//!   (`VERSION`, `PRODID`, `UID` first, the rest sorted by name), parameter names
//!   upper-cased, lines refolded at 75 octets and LF line ends made CRLF; no `PRODID` is
//!   added. An unescaped `,` in a text value (`NOTE:a, b`, `SUMMARY:a, b`) is taken as a
//!   list separator and everything after it is lost.
//! * A wrong password is answered 401; `auth.delay` is 0 here (the default 1 s delay would
//!   only slow tests down).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard, OnceLock};

use anyhow::{Result, anyhow, bail, ensure};
use tempfile::TempDir;

use crate::ports::free_port;
use crate::powerdns::http;
use crate::process::{self, Daemon, LaunchError, LogMark, run};
use crate::wait;

/// The real interpreter behind `python3` (not a pyenv shim, so stopping a server signals
/// Python itself), if `import MODULES` (comma-separated) works; otherwise an error that
/// names `package` and the install script.
pub(crate) fn python_importing(
    modules: &str,
    package: &str,
) -> std::result::Result<PathBuf, String> {
    let out = run(
        Command::new("python3").args([
            "-c",
            &format!("import sys, {modules}; print(sys.executable)"),
        ]),
        None,
    )
    .map_err(|e| format!("{e:#}"))?;
    if !out.success {
        return Err(format!(
            "{package} is not installed for python3 ({}); run scripts/install-deps.sh",
            out.stderr.trim()
        ));
    }
    Ok(PathBuf::from(out.stdout.trim()))
}

/// [`python_importing`] for Radicale, looked up once.
fn python() -> Result<PathBuf> {
    static PYTHON: OnceLock<std::result::Result<PathBuf, String>> = OnceLock::new();
    PYTHON
        .get_or_init(|| python_importing("radicale", "radicale"))
        .clone()
        .map_err(|e| anyhow!(e))
}

/// Settings for a [`Radicale`]; see [`Radicale::builder`].
#[derive(Debug, Clone, Default)]
pub struct RadicaleBuilder {
    users: Vec<(String, String)>,
    max_content_length: Option<u64>,
}

impl RadicaleBuilder {
    /// Adds a user (htpasswd, plain-text password), e.g. `("alice@example.com", "pw")`.
    /// Its principal collection appears on its first authenticated request.
    pub fn user(mut self, name: &str, password: &str) -> Self {
        self.users.push((name.to_string(), password.to_string()));
        self
    }

    /// Refuse request bodies larger than `bytes` (HTTP 413), as a server with an upload
    /// limit does.
    pub fn max_content_length(mut self, bytes: u64) -> Self {
        self.max_content_length = Some(bytes);
        self
    }

    /// Starts the server; see [`Radicale`].
    pub fn start(self) -> Result<Radicale> {
        Radicale::start(self)
    }
}

/// A private Radicale; stopped and deleted on drop.
#[derive(Debug)]
pub struct Radicale {
    port: u16,
    python: PathBuf,
    users: Vec<(String, String)>,
    max_content_length: Option<u64>,
    daemon: Mutex<Option<Daemon>>,
    dir: TempDir,
}

impl Radicale {
    /// Settings for a new instance: `Radicale::builder().user("alice@example.com",
    /// "pw").start()`.
    pub fn builder() -> RadicaleBuilder {
        RadicaleBuilder::default()
    }

    /// Starts Radicale on a free loopback port and waits until it answers HTTP.
    fn start(settings: RadicaleBuilder) -> Result<Radicale> {
        for (name, password) in &settings.users {
            ensure!(
                !name.is_empty() && !name.contains([':', '\n', '\r', '/']),
                "Radicale user name {name:?} cannot go in an htpasswd file"
            );
            ensure!(
                !password.contains(['\n', '\r']),
                "Radicale password for {name} has a line break"
            );
        }
        let python = python()?;
        let dir = process::server_tempdir("mailshift-radicale-")?;
        let mut radicale = Radicale {
            port: 0,
            python,
            users: settings.users,
            max_content_length: settings.max_content_length,
            daemon: Mutex::new(None),
            dir,
        };
        radicale.write_users()?;
        let daemon = process::on_fresh_ports("Radicale", || {
            radicale.port = free_port()?;
            radicale.write_config()?;
            radicale.launch()
        })?;
        *radicale.daemon() = Some(daemon);
        Ok(radicale)
    }

    fn write_users(&self) -> Result<()> {
        let mut users = String::new();
        for (name, password) in &self.users {
            writeln!(users, "{name}:{password}")?;
        }
        process::write_atomic(&self.users_path(), users.as_bytes())
    }

    fn write_config(&self) -> Result<()> {
        let conf = format!(
            "# Generated by mailshift-harness.
[server]
hosts = 127.0.0.1:{port}
ssl = False
# No pause before answering a 5xx.
delay_on_error = 0
{limit}

[auth]
type = htpasswd
htpasswd_filename = {users}
htpasswd_encryption = plain
# No pause before answering a wrong password.
delay = 0

[rights]
type = owner_only

[storage]
filesystem_folder = {data}

[logging]
level = info
",
            port = self.port,
            limit = self
                .max_content_length
                .map_or_else(String::new, |n| format!("max_content_length = {n}")),
            users = self.users_path().display(),
            data = self.data_dir().display(),
        );
        process::write_atomic(&self.config_path(), conf.as_bytes())
    }

    fn launch(&self) -> Result<Daemon, LaunchError> {
        let output = self.log_path();
        let mark = LogMark::new(std::slice::from_ref(&output));
        let mut cmd = Command::new(&self.python);
        cmd.args(["-m", "radicale", "-C"])
            .arg(self.config_path())
            .current_dir(self.dir.path())
            .env("PYTHONUNBUFFERED", "1")
            .env_remove("RADICALE_CONFIG");
        let mut daemon = Daemon::spawn("radicale", cmd, &output)?;
        let ready = wait::until_true(wait::STARTUP_TIMEOUT, "Radicale to answer HTTP", || {
            daemon.check_running()?;
            if mark.port_in_use() {
                bail!("the port is already in use");
            }
            Ok(http(self.port, "GET", "/", &[], None).is_ok())
        });
        daemon.or_stopped(ready, &mark, |e| {
            process::startup_error("Radicale", self.dir(), e, &output, &output)
        })
    }

    fn daemon(&self) -> MutexGuard<'_, Option<Daemon>> {
        self.daemon.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `http://127.0.0.1:PORT/`: the server's root, where clients start discovery.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }

    /// The port on `127.0.0.1`.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The path of `user`'s principal collection as Radicale reports it in
    /// `current-user-principal` (also its calendar and address book home set), e.g.
    /// `/alice%40example.com/`.
    pub fn principal(&self, user: &str) -> String {
        let mut path = String::from("/");
        for b in user.bytes() {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                path.push(char::from(b));
            } else {
                write!(path, "%{b:02X}").expect("writing to a String");
            }
        }
        path.push('/');
        path
    }

    /// The users given to the builder (name, password).
    pub fn users(&self) -> &[(String, String)] {
        &self.users
    }

    /// Stops Radicale. The collections stay until drop.
    pub fn stop(&self) -> Result<()> {
        match self.daemon().take() {
            Some(mut d) => d.terminate(wait::STOP_TIMEOUT),
            None => Ok(()),
        }
    }

    /// Whether Radicale is running.
    pub fn is_running(&self) -> bool {
        self.daemon()
            .as_mut()
            .is_some_and(|d| matches!(d.exited(), Ok(None)))
    }

    /// The storage folder (`filesystem_folder`): collections are under
    /// `collection-root/USER/NAME/`, one file per item, as Radicale re-serialized it.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("collections")
    }

    /// The generated configuration file.
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("radicale.conf")
    }

    /// The htpasswd file (plain-text passwords).
    pub fn users_path(&self) -> PathBuf {
        self.dir.path().join("users")
    }

    /// Radicale's output (its log, at level info, and any tracebacks).
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("radicale.log")
    }

    /// The last `n` lines of the log, e.g. for an assertion message.
    pub fn log_tail(&self, n: usize) -> String {
        process::tail(&self.log_path(), n)
    }

    /// The instance's temp dir.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Radicale {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const USER: &str = "alice@example.com";
    const PASSWORD: &str = "pw";

    /// Already in the form Radicale writes back (see the module doc): `VERSION`, `PRODID`,
    /// `UID` first, the rest sorted by name, upper-case parameter names, folded at 75
    /// octets, CRLF. So the GET must return exactly these bytes.
    const CANONICAL_CARD: &str = "BEGIN:VCARD\r\n\
        VERSION:3.0\r\n\
        PRODID:-//mailshift//harness//EN\r\n\
        UID:bob-1\r\n\
        EMAIL;TYPE=INTERNET:bob@example.com\r\n\
        FN:Bob Example\r\n\
        N:Example;Bob;;;\r\n\
        NOTE:A long note that is folded onto a second line because it is longer tha\r\n \
        n seventy-five octets\r\n\
        TEL;TYPE=CELL:+1 555 0100\r\n\
        END:VCARD\r\n";

    fn auth(user: &str, password: &str) -> String {
        format!(
            "Basic {}",
            crate::base64(format!("{user}:{password}").as_bytes())
        )
    }

    fn request(
        server: &Radicale,
        password: &str,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<(&str, &[u8])>,
    ) -> (u16, String) {
        let authorization = auth(USER, password);
        let mut all = vec![("Authorization", authorization.as_str())];
        all.extend_from_slice(headers);
        http(server.port(), method, path, &all, body)
            .unwrap_or_else(|e| panic!("{method} {path}: {e:#}\n{}", server.log_tail(20)))
    }

    #[test]
    fn radicale_stores_a_vcard_and_refuses_a_wrong_password() {
        let server = Radicale::builder().user(USER, PASSWORD).start().unwrap();
        assert_eq!(server.url(), format!("http://127.0.0.1:{}/", server.port()));
        let principal = server.principal(USER);
        assert_eq!(principal, "/alice%40example.com/");

        // Discovery: the first authenticated request creates the principal collection,
        // which is also both home sets.
        let propfind = br#"<?xml version="1.0" encoding="utf-8"?>
<D:propfind xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav" xmlns:CR="urn:ietf:params:xml:ns:carddav">
  <D:prop><D:current-user-principal/><C:calendar-home-set/><CR:addressbook-home-set/></D:prop>
</D:propfind>"#;
        let xml = ("application/xml; charset=utf-8", &propfind[..]);
        let (status, body) = request(
            &server,
            PASSWORD,
            "PROPFIND",
            "/",
            &[("Depth", "0")],
            Some(xml),
        );
        assert_eq!(status, 207, "{body}");
        assert!(
            body.contains(&format!("<href>{principal}</href>")),
            "{body}"
        );
        let (status, body) = request(
            &server,
            PASSWORD,
            "PROPFIND",
            &principal,
            &[("Depth", "0")],
            Some(xml),
        );
        assert_eq!(status, 207, "{body}");
        assert!(
            body.contains(&format!(
                "<CR:addressbook-home-set><href>{principal}</href>"
            )),
            "{body}"
        );

        // An address book is made with an extended MKCOL.
        let book = format!("{principal}contacts/");
        let mkcol = br#"<?xml version="1.0" encoding="utf-8"?>
<D:mkcol xmlns:D="DAV:" xmlns:CR="urn:ietf:params:xml:ns:carddav">
  <D:set><D:prop>
    <D:resourcetype><D:collection/><CR:addressbook/></D:resourcetype>
    <D:displayname>Contacts</D:displayname>
  </D:prop></D:set>
</D:mkcol>"#;
        let (status, body) = request(
            &server,
            PASSWORD,
            "MKCOL",
            &book,
            &[],
            Some(("application/xml; charset=utf-8", mkcol)),
        );
        assert_eq!(status, 201, "{body}");

        // Radicale re-serializes what it stores; a card already in its form comes back
        // byte for byte.
        let card = format!("{book}bob-1.vcf");
        let vcard = ("text/vcard; charset=utf-8", CANONICAL_CARD.as_bytes());
        let (status, body) = request(&server, PASSWORD, "PUT", &card, &[], Some(vcard));
        assert_eq!(status, 201, "{body}");
        let (status, body) = request(&server, PASSWORD, "GET", &card, &[], None);
        assert_eq!(status, 200, "{body}");
        assert_eq!(body, CANONICAL_CARD);

        // Out of order, lower-case parameter, LF line ends: the same lines come back, but
        // reordered and with CRLF (observed with Radicale 3.9 / vobject 0.9.9).
        let messy = "BEGIN:VCARD\nVERSION:3.0\nUID:carol-1\nN:Example;Carol;;;\nFN:Carol Example\n\
                     tel;type=home:+1 555 0101\nEND:VCARD\n";
        let messy_card = format!("{book}carol-1.vcf");
        let vcard = ("text/vcard; charset=utf-8", messy.as_bytes());
        let (status, body) = request(&server, PASSWORD, "PUT", &messy_card, &[], Some(vcard));
        assert_eq!(status, 201, "{body}");
        let (status, body) = request(&server, PASSWORD, "GET", &messy_card, &[], None);
        assert_eq!(status, 200, "{body}");
        let mut sent: Vec<String> = messy.lines().map(str::to_ascii_uppercase).collect();
        let mut got: Vec<String> = body.lines().map(str::to_ascii_uppercase).collect();
        sent.sort();
        got.sort();
        assert_eq!(got, sent, "{body:?}");

        // A wrong password is refused.
        let (status, _) = request(&server, "wrong", "GET", &card, &[], None);
        assert_eq!(status, 401);
        let (status, _) = request(
            &server,
            "wrong",
            "PROPFIND",
            &principal,
            &[("Depth", "0")],
            Some(xml),
        );
        assert_eq!(status, 401);

        assert!(
            server
                .data_dir()
                .join("collection-root")
                .join(USER)
                .join("contacts")
                .is_dir()
        );
        server.stop().unwrap();
        assert!(!server.is_running());
    }
}
