//! A private MariaDB server (Debian's `mariadb-server`): `mariadb-install-db` into the
//! instance's temp dir and `mariadbd` in the foreground on a free loopback port, as the
//! `mysql` user, its socket and pid file in the temp dir, so the system's server is never
//! used. The harness's own `mariadb` client connects over the socket as root (unix-socket
//! authentication); TCP clients log in with a password, as a mail server's would.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use tempfile::TempDir;

use crate::ports::free_port;
use crate::process::{self, run};
use crate::wait;

/// InnoDB preallocates a 96 MiB redo log and a 128 MiB buffer pool by default; a test's
/// few rows need neither, and CI's disk has been seen too full to take the log (ENOSPC).
const SMALL_FILES: [&str; 2] = ["--innodb-log-file-size=4M", "--innodb-buffer-pool-size=16M"];

pub struct MariaDb {
    dir: TempDir,
    port: u16,
    daemon: Mutex<Option<Child>>,
}

impl MariaDb {
    pub fn start() -> Result<MariaDb> {
        process::require_root()?;
        process::require_program("mariadbd")?;
        let dir = process::server_tempdir("mailshift-mariadb-")?;
        process::chown_recursive(dir.path(), "mysql:mysql")?;
        let db = MariaDb {
            port: free_port()?,
            dir,
            daemon: Mutex::new(None),
        };
        run(
            Command::new("mariadb-install-db")
                .arg("--no-defaults")
                .arg(format!("--datadir={}", db.data().display()))
                .arg("--user=mysql")
                .arg("--skip-test-db")
                .arg("--auth-root-authentication-method=socket")
                .args(SMALL_FILES),
            None,
        )?
        .ok()
        .context("mariadb-install-db")?;
        let log = std::fs::File::create(db.log_path())?;
        let child = Command::new("mariadbd")
            .arg("--no-defaults")
            .arg(format!("--datadir={}", db.data().display()))
            .arg(format!("--socket={}", db.socket().display()))
            .arg(format!(
                "--pid-file={}",
                db.dir.path().join("mariadb.pid").display()
            ))
            .arg(format!("--port={}", db.port))
            .arg("--bind-address=127.0.0.1")
            .arg("--user=mysql")
            .arg("--skip-name-resolve")
            .arg("--innodb-flush-log-at-trx-commit=0")
            .args(SMALL_FILES)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("mariadbd")?;
        *db.daemon.lock().unwrap_or_else(|e| e.into_inner()) = Some(child);
        wait::until_true(
            Duration::from_secs(30),
            "MariaDB to accept connections",
            || Ok(wait::accepts(db.port) && db.sql("SELECT 1").is_ok()),
        )
        .with_context(|| process::tail(&db.log_path(), 20))?;
        Ok(db)
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("mariadb.sock")
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("mariadb.log")
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Runs `sql` as root over the socket; rows as the client prints them in batch mode
    /// (tab-separated, no header).
    pub fn sql(&self, sql: &str) -> Result<String> {
        run(
            Command::new("mariadb")
                .arg("--no-defaults")
                .arg(format!("--socket={}", self.socket().display()))
                .args(["-u", "root", "--batch", "--skip-column-names", "-e", sql]),
            None,
        )?
        .ok()
    }

    /// Creates a database and a user with `password` who owns it, reachable over TCP.
    pub fn create_database(&self, name: &str, user: &str, password: &str) -> Result<()> {
        ensure!(
            [name, user]
                .iter()
                .all(|s| s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')),
            "database and user names are plain words here"
        );
        ensure!(!password.contains('\''), "no quote in the password");
        self.sql(&format!(
            "CREATE DATABASE {name}; CREATE USER '{user}'@'127.0.0.1' IDENTIFIED BY '{password}'; \
             GRANT ALL ON {name}.* TO '{user}'@'127.0.0.1'"
        ))
        .map(drop)
    }

    /// `mysql://user:password@127.0.0.1:PORT/name`.
    pub fn url(&self, name: &str, user: &str, password: &str) -> String {
        format!("mysql://{user}:{password}@127.0.0.1:{}/{name}", self.port)
    }
}

impl Drop for MariaDb {
    fn drop(&mut self) {
        if let Some(mut child) = self.daemon.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
