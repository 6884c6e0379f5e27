//! A private Tinyproxy: the egress HTTP proxy a cluster or a company puts between its hosts
//! and the internet, for testing that mailshift's HTTP clients go through `HTTPS_PROXY` /
//! `HTTP_PROXY` (HTTP CONNECT tunnels, `Proxy-Authorization` from the proxy's URL).
//!
//! `tinyproxy -d -c CONF` runs in the foreground, listening on `127.0.0.1` only and
//! allowing only `127.0.0.1`; without `ConnectPort` lines it tunnels to any port. With
//! [`Tinyproxy::start_with_user`] it asks for Basic credentials (407 without them). Its log
//! (`LogLevel Connect`) has a `Request ...: CONNECT host:port HTTP/1.1` line per tunnel,
//! which [`Tinyproxy::tunnels`] reads.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard};

use anyhow::{Result, bail};
use tempfile::TempDir;

use crate::ports::free_port;
use crate::process::{self, Daemon, LaunchError, LogMark};
use crate::wait;

/// A private Tinyproxy; stopped and deleted on drop.
#[derive(Debug)]
pub struct Tinyproxy {
    port: u16,
    user: Option<(String, String)>,
    daemon: Mutex<Option<Daemon>>,
    dir: TempDir,
}

impl Tinyproxy {
    /// Starts a proxy that asks for no credentials.
    pub fn start() -> Result<Tinyproxy> {
        Tinyproxy::launch_with(None)
    }

    /// Starts a proxy that takes only `user` and `password` (Basic).
    pub fn start_with_user(user: &str, password: &str) -> Result<Tinyproxy> {
        Tinyproxy::launch_with(Some((user.to_owned(), password.to_owned())))
    }

    fn launch_with(user: Option<(String, String)>) -> Result<Tinyproxy> {
        process::require_program("tinyproxy")?;
        let dir = process::server_tempdir("mailshift-tinyproxy-")?;
        // It drops to `nobody` and must write its log there.
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777))?;
        }
        let mut proxy = Tinyproxy {
            port: 0,
            user,
            daemon: Mutex::new(None),
            dir,
        };
        let daemon = process::on_fresh_ports("Tinyproxy", || {
            proxy.port = free_port()?;
            proxy.launch()
        })?;
        *proxy.daemon() = Some(daemon);
        Ok(proxy)
    }

    fn launch(&self) -> Result<Daemon, LaunchError> {
        let conf = self.dir.path().join("tinyproxy.conf");
        let auth = self
            .user
            .as_ref()
            .map(|(u, p)| format!("BasicAuth {u} {p}\n"))
            .unwrap_or_default();
        std::fs::write(
            &conf,
            format!(
                "User nobody\nGroup nogroup\nPort {port}\nListen 127.0.0.1\nTimeout 60\n\
                 LogFile \"{log}\"\nLogLevel Connect\nMaxClients 50\nAllow 127.0.0.1\n\
                 DisableViaHeader Yes\n{auth}",
                port = self.port,
                log = self.log_path().display(),
            ),
        )?;
        let output = self.dir.path().join("output.log");
        let mark = LogMark::new(&[output.clone(), self.log_path()]);
        let mut cmd = Command::new("tinyproxy");
        cmd.arg("-d")
            .arg("-c")
            .arg(&conf)
            .current_dir(self.dir.path());
        let mut daemon = Daemon::spawn("tinyproxy", cmd, &output)?;
        let ready = wait::until_true(wait::STARTUP_TIMEOUT, "Tinyproxy to listen", || {
            daemon.check_running()?;
            if mark.port_in_use() {
                bail!("the port is already in use");
            }
            Ok(wait::accepts(self.port))
        });
        daemon.or_stopped(ready, &mark, |e| {
            process::startup_error("Tinyproxy", self.dir(), e, &output, &self.log_path())
        })
    }

    fn daemon(&self) -> MutexGuard<'_, Option<Daemon>> {
        self.daemon.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The proxy's URL as `HTTPS_PROXY` takes it, with `user:password@` when asked for
    /// and given.
    pub fn url(&self, credentials: Option<(&str, &str)>) -> String {
        match credentials {
            Some((u, p)) => format!("http://{u}:{p}@127.0.0.1:{}", self.port),
            None => format!("http://127.0.0.1:{}", self.port),
        }
    }

    /// The `host:port` of every CONNECT it was asked for, in order.
    pub fn tunnels(&self) -> Vec<String> {
        std::fs::read_to_string(self.log_path())
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split(": CONNECT ").nth(1))
            .filter_map(|rest| rest.split_whitespace().next())
            .map(str::to_owned)
            .collect()
    }

    /// Tinyproxy's log.
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("tinyproxy.log")
    }

    /// The instance's temp dir.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tinyproxy {
    fn drop(&mut self) {
        if let Some(mut d) = self.daemon().take() {
            let _ = d.terminate(wait::STOP_TIMEOUT);
        }
    }
}
