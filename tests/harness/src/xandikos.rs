//! A private Xandikos: a CalDAV/CardDAV server storing each collection in a Git
//! repository, for mailshift's tests of calendar and contact migration against a second
//! real DAV server beside [`Radicale`](crate::Radicale).
//!
//! `python3 -m xandikos.web --defaults -d DATA -l 127.0.0.1 -p PORT --no-detect-systemd
//! --state-dir STATE` runs in the foreground. **Xandikos has no authentication here**: it
//! serves one principal, [`PRINCIPAL`] (`/user/`), to anyone who connects, whatever
//! credentials are sent. (Xandikos 0.4.10 has `--htpasswd`, but only together with
//! `--autocert`, i.e. HTTPS with a self-signed certificate; the harness does not use it.)
//! `--defaults` creates the calendar [`CALENDAR`] (`/user/calendars/calendar/`) and the
//! address book [`ADDRESSBOOK`] (`/user/contacts/addressbook/`) at start; more can be made
//! with an extended MKCOL.
//!
//! Xandikos's behaviour worth knowing in tests (0.4.10):
//!
//! * Discovery: `current-user-principal` is `/user/` (on any path), `calendar-home-set`
//!   `/user/calendars/`, `addressbook-home-set` `/user/contacts/`. The principal is not a
//!   collection (`resourcetype` is `principal` only), so a `Depth: 1` PROPFIND on it lists
//!   nothing under it; the home sets list their collections.
//! * vCards are stored byte for byte (a Git blob; the ETag is the blob id); iCalendar
//!   objects are re-serialized (properties reordered, text values re-escaped). A body that
//!   does not parse is refused with 412.
//! * A PROPFIND whose body has a `Content-Type` other than XML (e.g. curl's default
//!   `application/x-www-form-urlencoded`) is refused with 415.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard, OnceLock};

use anyhow::{Result, anyhow, bail};
use tempfile::TempDir;

use crate::ports::free_port;
use crate::powerdns::http;
use crate::process::{self, Daemon, LaunchError, LogMark};
use crate::radicale::python_importing;
use crate::wait;

/// The one principal Xandikos serves (`--current-user-principal`, its default).
pub const PRINCIPAL: &str = "/user/";

/// The calendar `--defaults` creates.
pub const CALENDAR: &str = "/user/calendars/calendar/";

/// The address book `--defaults` creates.
pub const ADDRESSBOOK: &str = "/user/contacts/addressbook/";

/// [`python_importing`] for Xandikos, looked up once.
fn python() -> Result<PathBuf> {
    static PYTHON: OnceLock<std::result::Result<PathBuf, String>> = OnceLock::new();
    PYTHON
        .get_or_init(|| python_importing("xandikos.web", "xandikos"))
        .clone()
        .map_err(|e| anyhow!(e))
}

/// A private Xandikos (no authentication); stopped and deleted on drop.
#[derive(Debug)]
pub struct Xandikos {
    port: u16,
    python: PathBuf,
    daemon: Mutex<Option<Daemon>>,
    dir: TempDir,
}

impl Xandikos {
    /// Starts Xandikos with its default calendar and address book on a free loopback port
    /// and waits until it answers HTTP.
    pub fn start() -> Result<Xandikos> {
        let python = python()?;
        let dir = process::server_tempdir("mailshift-xandikos-")?;
        let mut xandikos = Xandikos {
            port: 0,
            python,
            daemon: Mutex::new(None),
            dir,
        };
        let daemon = process::on_fresh_ports("Xandikos", || {
            xandikos.port = free_port()?;
            xandikos.launch()
        })?;
        *xandikos.daemon() = Some(daemon);
        Ok(xandikos)
    }

    fn launch(&self) -> Result<Daemon, LaunchError> {
        let output = self.log_path();
        let mark = LogMark::new(std::slice::from_ref(&output));
        let mut cmd = Command::new(&self.python);
        cmd.args(["-m", "xandikos.web", "--defaults", "-d"])
            .arg(self.data_dir())
            .args(["-l", "127.0.0.1", "-p"])
            .arg(self.port.to_string())
            // Not a socket handed over by systemd (LISTEN_FDS), always our own port.
            .arg("--no-detect-systemd")
            // TLS certificates and VAPID keys (unused) in the temp dir, not $XDG_DATA_HOME.
            .arg("--state-dir")
            .arg(self.dir.path().join("state"))
            .current_dir(self.dir.path())
            .env("PYTHONUNBUFFERED", "1")
            .env_remove("LISTEN_FDS")
            .env_remove("LISTEN_PID");
        let mut daemon = Daemon::spawn("xandikos", cmd, &output)?;
        let ready = wait::until_true(wait::STARTUP_TIMEOUT, "Xandikos to answer HTTP", || {
            daemon.check_running()?;
            if mark.port_in_use() {
                bail!("the port is already in use");
            }
            Ok(http(self.port, "GET", "/", &[], None).is_ok())
        });
        daemon.or_stopped(ready, &mark, |e| {
            process::startup_error("Xandikos", self.dir(), e, &output, &output)
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

    /// The principal's path: always [`PRINCIPAL`] (`/user/`).
    pub fn principal(&self) -> &str {
        PRINCIPAL
    }

    /// The default calendar's path: [`CALENDAR`].
    pub fn calendar(&self) -> &str {
        CALENDAR
    }

    /// The default address book's path: [`ADDRESSBOOK`].
    pub fn addressbook(&self) -> &str {
        ADDRESSBOOK
    }

    /// Stops Xandikos. The collections stay until drop.
    pub fn stop(&self) -> Result<()> {
        match self.daemon().take() {
            Some(mut d) => d.terminate(wait::STOP_TIMEOUT),
            None => Ok(()),
        }
    }

    /// Whether Xandikos is running.
    pub fn is_running(&self) -> bool {
        self.daemon()
            .as_mut()
            .is_some_and(|d| matches!(d.exited(), Ok(None)))
    }

    /// The served directory (`-d`): `user/calendars/calendar/`, `user/contacts/addressbook/`
    /// and so on, each collection a Git repository whose work tree has the items as sent.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Xandikos's output (startup messages and any tracebacks; it logs no requests).
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("xandikos.log")
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

impl Drop for Xandikos {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deliberately not in any canonical form: odd property order, a lower-case parameter,
    /// a line folded mid-word, a group and an X- property. Xandikos keeps it byte for byte.
    const CARD: &str = "BEGIN:VCARD\r\n\
        VERSION:3.0\r\n\
        PRODID:-//mailshift//harness//EN\r\n\
        UID:bob-1\r\n\
        FN:Bob Example\r\n\
        N:Example;Bob;;;\r\n\
        EMAIL;type=INTERNET:bob@example.com\r\n\
        NOTE:A long note that is folded onto a second line because it is longer than se\r\n \
        venty-five octets\r\n\
        X-CUSTOM;x-param=Yes:value\r\n\
        item1.TEL:+1 555 0100\r\n\
        END:VCARD\r\n";

    fn request(
        server: &Xandikos,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<(&str, &[u8])>,
    ) -> (u16, String) {
        http(server.port(), method, path, headers, body)
            .unwrap_or_else(|e| panic!("{method} {path}: {e:#}\n{}", server.log_tail(20)))
    }

    #[test]
    fn xandikos_keeps_a_vcard_byte_for_byte() {
        let server = Xandikos::start().unwrap();
        assert_eq!(server.url(), format!("http://127.0.0.1:{}/", server.port()));

        // Discovery.
        let propfind = br#"<?xml version="1.0" encoding="utf-8"?>
<D:propfind xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav" xmlns:CR="urn:ietf:params:xml:ns:carddav">
  <D:prop><D:current-user-principal/><C:calendar-home-set/><CR:addressbook-home-set/></D:prop>
</D:propfind>"#;
        let xml = ("application/xml; charset=utf-8", &propfind[..]);
        let (status, body) = request(&server, "PROPFIND", "/", &[("Depth", "0")], Some(xml));
        assert_eq!(status, 207, "{body}");
        assert!(body.contains("<ns0:href>/user/</ns0:href>"), "{body}");
        let (status, body) = request(
            &server,
            "PROPFIND",
            server.principal(),
            &[("Depth", "0")],
            Some(xml),
        );
        assert_eq!(status, 207, "{body}");
        assert!(
            body.contains("<ns0:href>/user/contacts/</ns0:href>"),
            "{body}"
        );
        assert!(
            body.contains("<ns0:href>/user/calendars/</ns0:href>"),
            "{body}"
        );

        // The default address book exists; no authentication is asked for.
        let card = format!("{}bob-1.vcf", server.addressbook());
        let vcard = ("text/vcard; charset=utf-8", CARD.as_bytes());
        let (status, body) = request(&server, "PUT", &card, &[], Some(vcard));
        assert_eq!(status, 201, "{body}");
        let (status, body) = request(&server, "GET", &card, &[], None);
        assert_eq!(status, 200, "{body}");
        assert_eq!(body, CARD);
        let stored = server
            .data_dir()
            .join("user/contacts/addressbook/bob-1.vcf");
        assert_eq!(std::fs::read_to_string(stored).unwrap(), CARD);

        // Whatever credentials are sent, they are not checked.
        let (status, body) = request(
            &server,
            "GET",
            &card,
            &[("Authorization", &format!("Basic {}", crate::base64(b"x:y")))],
            None,
        );
        assert_eq!((status, body.as_str()), (200, CARD));

        // Not a vCard: refused.
        let junk = ("text/vcard", &b"not a vcard"[..]);
        let (status, _) = request(
            &server,
            "PUT",
            &format!("{}junk.vcf", server.addressbook()),
            &[],
            Some(junk),
        );
        assert_eq!(status, 412);

        server.stop().unwrap();
        assert!(!server.is_running());
    }
}
