//! A private PostgreSQL cluster (Debian's `postgresql` package): `initdb` into the
//! instance's temp dir and `pg_ctl start` on a free loopback port, both as the `postgres`
//! user (PostgreSQL refuses to run as root), its socket in the temp dir too, so nothing of
//! the system's cluster is used. Local (socket) connections are trusted, for the harness's
//! own `psql`; TCP connections need a password (SCRAM), as a mail server's would.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, anyhow, ensure};
use tempfile::TempDir;

use crate::ports::free_port;
use crate::process::{self, run};

pub struct Postgres {
    dir: TempDir,
    bin: PathBuf,
    port: u16,
}

impl Postgres {
    /// Starts an empty cluster.
    pub fn start() -> Result<Postgres> {
        process::require_root()?;
        let bin = bin_dir()?;
        let dir = process::server_tempdir("mailshift-postgres-")?;
        process::chown_recursive(dir.path(), "postgres:postgres")?;
        let pg = Postgres {
            port: free_port()?,
            bin,
            dir,
        };
        pg.as_postgres(
            "initdb",
            &[
                "-D",
                &pg.data().display().to_string(),
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "--no-sync",
            ],
        )?;
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            pg.port,
            pg.dir.path().display()
        );
        pg.as_postgres(
            "pg_ctl",
            &[
                "-D",
                &pg.data().display().to_string(),
                "-o",
                &options,
                "-l",
                &pg.log_path().display().to_string(),
                "-w",
                "start",
            ],
        )
        .with_context(|| process::tail(&pg.log_path(), 20))?;
        Ok(pg)
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("postgres.log")
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    fn as_postgres(&self, program: &str, args: &[&str]) -> Result<String> {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "postgres", "--"])
            .arg(self.bin.join(program))
            .args(args)
            .current_dir(self.dir.path());
        run(&mut cmd, None)?.ok()
    }

    /// Runs `sql` in `database` as the superuser over the socket; returns the rows as
    /// `psql -At` prints them (fields separated by `|`).
    pub fn psql(&self, database: &str, sql: &str) -> Result<String> {
        let port = self.port.to_string();
        let socket = self.dir.path().display().to_string();
        self.as_postgres(
            "psql",
            &[
                "-h",
                &socket,
                "-p",
                &port,
                "-d",
                database,
                "-v",
                "ON_ERROR_STOP=1",
                "-At",
                "-c",
                sql,
            ],
        )
    }

    /// Creates a database owned by a new login role with `password`.
    pub fn create_database(&self, name: &str, owner: &str, password: &str) -> Result<()> {
        ensure!(
            [name, owner]
                .iter()
                .all(|s| s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')),
            "database and role names are plain words here"
        );
        ensure!(!password.contains('\''), "no quote in the password");
        self.psql(
            "postgres",
            &format!("CREATE ROLE {owner} LOGIN PASSWORD '{password}'"),
        )?;
        self.psql("postgres", &format!("CREATE DATABASE {name} OWNER {owner}"))?;
        Ok(())
    }

    /// `postgres://owner:password@127.0.0.1:PORT/name`, as a client over TCP connects.
    pub fn url(&self, name: &str, owner: &str, password: &str) -> String {
        format!(
            "postgres://{owner}:{password}@127.0.0.1:{}/{name}",
            self.port
        )
    }

    /// The cluster's directory (data, socket, log).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = self.as_postgres(
            "pg_ctl",
            &[
                "-D",
                &self.data().display().to_string(),
                "-m",
                "immediate",
                "stop",
            ],
        );
    }
}

/// The newest installed PostgreSQL's programs (`/usr/lib/postgresql/N/bin`).
fn bin_dir() -> Result<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .context("PostgreSQL is not installed (scripts/install-deps.sh installs it)")?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse().ok()?;
            Some((v, e.path().join("bin")))
        })
        .filter(|(_, p)| p.join("pg_ctl").exists())
        .collect();
    versions.sort();
    versions
        .pop()
        .map(|(_, p)| p)
        .ok_or_else(|| anyhow!("no pg_ctl under /usr/lib/postgresql"))
}
