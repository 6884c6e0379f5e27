//! Child processes, helper commands and the bits of system plumbing the servers share.

use std::ffi::OsString;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::wait;

/// The result of a helper command (`doveadm`, `postconf`, `dig`, `nsupdate`, ...), kept
/// whole so tests can assert on failures too (e.g. an update with a wrong TSIG key).
#[derive(Debug, Clone)]
pub struct CmdOutput {
    /// What was run, for messages.
    pub command: String,
    /// Whether it exited with status 0.
    pub success: bool,
    /// The exit code, `None` if killed by a signal.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl CmdOutput {
    /// The stdout if the command succeeded, otherwise an error with its stderr and stdout.
    pub fn ok(self) -> Result<String> {
        if self.success {
            Ok(self.stdout)
        } else {
            bail!(
                "`{}` failed ({}):\n{}{}",
                self.command,
                self.code
                    .map_or("killed by signal".to_string(), |c| format!("exit code {c}")),
                self.stderr,
                self.stdout
            )
        }
    }
}

fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        s.push(' ');
        s.push_str(&arg.to_string_lossy());
    }
    s
}

/// Runs `cmd` to completion, feeding `input` on stdin if given.
pub(crate) fn run(cmd: &mut Command, input: Option<&[u8]>) -> Result<CmdOutput> {
    let command = describe(cmd);
    cmd.stdin(if input.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .with_context(|| format!("running `{command}`"))?;
    if let Some(input) = input {
        // Write from a thread so a command that writes a lot before reading cannot deadlock.
        let mut stdin = child.stdin.take().expect("piped stdin");
        let input = input.to_vec();
        let writer = std::thread::spawn(move || stdin.write_all(&input));
        let out = child.wait_with_output()?;
        writer
            .join()
            .map_err(|_| anyhow::anyhow!("stdin writer panicked"))??;
        return Ok(output(command, out));
    }
    Ok(output(command, child.wait_with_output()?))
}

fn output(command: String, out: std::process::Output) -> CmdOutput {
    CmdOutput {
        command,
        success: out.status.success(),
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs `cmd` and returns its stdout, failing with its stderr if it fails.
pub(crate) fn run_ok(cmd: &mut Command) -> Result<String> {
    run(cmd, None)?.ok()
}

/// Sends `signal` (e.g. `"TERM"`, `"STOP"`) to `pid` with the `kill` command (std has no
/// signal API other than SIGKILL, and we want no libc dependency for this).
pub(crate) fn signal(pid: u32, signal: &str) -> Result<()> {
    run_ok(
        Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.to_string()),
    )
    .map(drop)
}

/// Sends SIGSTOP to `pid` and waits until every one of its threads is stopped: `kill`
/// returns once the signal is queued, and a thread running on another core may still answer
/// a request or two before the stop takes hold.
pub(crate) fn freeze(pid: u32) -> Result<()> {
    signal(pid, "STOP")?;
    wait::until_true(Duration::from_secs(10), "the process to stop", || {
        let tasks = fs::read_dir(format!("/proc/{pid}/task"))
            .with_context(|| format!("listing the threads of {pid}"))?;
        for task in tasks {
            let stat = fs::read_to_string(task?.path().join("stat")).unwrap_or_default();
            // `pid (comm) S ...`: the state follows the last `)` (comm may contain one); a thread
            // that is exiting (Z, X) answers nothing either.
            let state = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next());
            if !matches!(state, Some("T" | "t" | "Z" | "X") | None) {
                return Ok(false);
            }
        }
        Ok(true)
    })
}

/// Whether `pid` names a live (not zombie) process.
pub(crate) fn pid_alive(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised command name.
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with(['Z', 'X'])),
        Err(_) => false,
    }
}

/// The last `n` lines of a file, or a note saying why there are none.
pub(crate) fn tail(path: &Path, n: usize) -> String {
    match fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(n)..].join("\n")
        }
        Err(e) => format!("(cannot read {}: {e})", path.display()),
    }
}

/// The lengths of some files at one moment, to look only at what is appended afterwards
/// (a server's log keeps the lines of earlier runs, e.g. before a restart).
#[derive(Debug)]
pub(crate) struct LogMark(Vec<(PathBuf, u64)>);

impl LogMark {
    pub(crate) fn new(paths: &[PathBuf]) -> LogMark {
        LogMark(
            paths
                .iter()
                .map(|p| (p.clone(), fs::metadata(p).map_or(0, |m| m.len())))
                .collect(),
        )
    }

    /// Whether text appended since the mark contains `needle`, ignoring ASCII case.
    pub(crate) fn appended_contains(&self, needle: &str) -> bool {
        let needle = needle.to_ascii_lowercase();
        self.0.iter().any(|(path, offset)| {
            fs::read(path).is_ok_and(|bytes| {
                let start = (*offset as usize).min(bytes.len());
                String::from_utf8_lossy(&bytes[start..])
                    .to_ascii_lowercase()
                    .contains(&needle)
            })
        })
    }

    /// Whether a server reported a port collision since the mark. Dovecot and Postfix say
    /// "Address already in use"; named says "address in use" and keeps running.
    pub(crate) fn port_in_use(&self) -> bool {
        self.appended_contains("address already in use") || self.appended_contains("address in use")
    }
}

/// Why starting a server failed: retried with fresh ports if `port_in_use`.
#[derive(Debug)]
pub(crate) struct LaunchError {
    pub(crate) error: anyhow::Error,
    pub(crate) port_in_use: bool,
}

impl From<anyhow::Error> for LaunchError {
    fn from(error: anyhow::Error) -> Self {
        LaunchError {
            error,
            port_in_use: false,
        }
    }
}

impl From<std::io::Error> for LaunchError {
    fn from(error: std::io::Error) -> Self {
        LaunchError {
            error: error.into(),
            port_in_use: false,
        }
    }
}

/// How many times a server is started on fresh ports when it finds one taken (another
/// process took it between [`crate::ports::free_port`] and the server's bind).
pub(crate) const START_ATTEMPTS: usize = 5;

/// Runs `attempt` (which picks fresh ports and launches the server on them) until it
/// succeeds, fails for another reason than a taken port, or has met taken ports
/// [`START_ATTEMPTS`] times.
pub(crate) fn on_fresh_ports<T>(
    server: &str,
    mut attempt: impl FnMut() -> Result<T, LaunchError>,
) -> Result<T> {
    let mut last = None;
    for _ in 0..START_ATTEMPTS {
        match attempt() {
            Ok(v) => return Ok(v),
            Err(e) if e.port_in_use => last = Some(e.error),
            Err(e) => return Err(e.error),
        }
    }
    Err(last.expect("at least one attempt"))
        .with_context(|| format!("{server}: ports kept colliding"))
}

/// The error for a server that did not come up: what went wrong, the process output and
/// the tail of its log.
pub(crate) fn startup_error(
    server: &str,
    dir: &Path,
    err: anyhow::Error,
    output: &Path,
    log: &Path,
) -> anyhow::Error {
    anyhow::anyhow!(
        "{server} failed to start in {}: {err:#}\n--- output ({}) ---\n{}\n--- log tail ({}) ---\n{}",
        dir.display(),
        output.display(),
        tail(output, 30),
        log.display(),
        tail(log, 30),
    )
}

/// A server process we started and must stop.
///
/// Servers run in the foreground as our direct children, so that we can always reap them:
/// PID 1 on these machines is not an init that reaps orphans promptly, and a daemonized
/// server would be left as a zombie or, worse, running.
#[derive(Debug)]
pub(crate) struct Daemon {
    pub(crate) name: &'static str,
    child: Child,
    /// A command that asks the server to stop (e.g. `postfix -c DIR stop`), used instead
    /// of SIGTERM when our child is a wrapper rather than the server itself.
    stop_command: Option<Vec<OsString>>,
}

impl Daemon {
    /// The daemon, once `ready` says it came up; else stopped, with why (`error` adds the
    /// server's output and log) and whether its port was taken (seen since `mark`).
    pub(crate) fn or_stopped(
        mut self,
        ready: Result<()>,
        mark: &LogMark,
        error: impl FnOnce(anyhow::Error) -> anyhow::Error,
    ) -> Result<Daemon, LaunchError> {
        match ready {
            Ok(()) => Ok(self),
            Err(e) => {
                let _ = self.terminate(crate::wait::STOP_TIMEOUT);
                Err(LaunchError {
                    port_in_use: mark.port_in_use(),
                    error: error(e),
                })
            }
        }
    }

    /// Spawns `cmd` with stdout and stderr appended to `output_path` (early startup
    /// errors land there, before the server has opened its own log).
    pub(crate) fn spawn(
        name: &'static str,
        mut cmd: Command,
        output_path: &Path,
    ) -> Result<Daemon> {
        let out = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(output_path)?;
        let command = describe(&cmd);
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .with_context(|| format!("starting {name}: `{command}`"))?;
        Ok(Daemon {
            name,
            child,
            stop_command: None,
        })
    }

    /// Stops the server with `command` (program and arguments) instead of SIGTERM.
    pub(crate) fn with_stop_command(mut self, command: Vec<OsString>) -> Daemon {
        self.stop_command = Some(command);
        self
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `Some(status)` once the process has exited.
    pub(crate) fn exited(&mut self) -> Result<Option<ExitStatus>> {
        Ok(self.child.try_wait()?)
    }

    /// Fails if the process has exited (used inside readiness polls).
    pub(crate) fn check_running(&mut self) -> Result<()> {
        if let Some(status) = self.exited()? {
            bail!("{} exited during startup ({status})", self.name);
        }
        Ok(())
    }

    /// Waits up to `timeout` for the process to exit by itself; true if it did.
    pub(crate) fn wait_exit(&mut self, timeout: Duration) -> bool {
        let what = format!("{} to exit", self.name);
        wait::until_true(timeout, &what, || Ok(self.exited()?.is_some())).is_ok()
    }

    /// Stops the process: SIGTERM (or the stop command), wait, then SIGKILL if it did not
    /// exit in time.
    pub(crate) fn terminate(&mut self, timeout: Duration) -> Result<()> {
        if self.exited()?.is_some() {
            return Ok(());
        }
        match &self.stop_command {
            Some(command) => {
                let _ = run(Command::new(&command[0]).args(&command[1..]), None);
            }
            None => {
                // A paused (SIGSTOP) process handles SIGTERM only once continued.
                let _ = signal(self.pid(), "CONT");
                let _ = signal(self.pid(), "TERM");
            }
        }
        self.finish(timeout)
    }

    /// Waits for the process to exit, killing it if it takes longer than `timeout`.
    pub(crate) fn finish(&mut self, timeout: Duration) -> Result<()> {
        if self.wait_exit(timeout) {
            return Ok(());
        }
        self.child.kill().ok();
        self.child.wait()?;
        bail!("{} did not stop within {timeout:?}; killed", self.name)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.terminate(wait::STOP_TIMEOUT);
        }
    }
}

/// Fails unless running as root: the servers need it to switch to their own users.
pub(crate) fn require_root() -> Result<()> {
    let status = fs::read_to_string("/proc/self/status").context("reading /proc/self/status")?;
    let euid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        .unwrap_or("");
    if euid != "0" {
        bail!(
            "mailshift-harness must run as root (the servers drop to their own users); effective uid is {euid}"
        );
    }
    Ok(())
}

/// Fails with a hint to run the install script if `program` is not installed.
pub(crate) fn require_program(program: &str) -> Result<()> {
    let found = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
        .unwrap_or(false)
        || ["/usr/sbin", "/sbin"]
            .iter()
            .any(|d| Path::new(d).join(program).is_file());
    if !found {
        bail!("`{program}` is not installed; run scripts/install-deps.sh (as root)");
    }
    Ok(())
}

/// A fresh temporary directory for one server, traversable by the servers' own users.
pub(crate) fn server_tempdir(prefix: &str) -> Result<tempfile::TempDir> {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .context("creating a temp dir")?;
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755))?;
    Ok(dir)
}

/// `chown -R owner path`.
pub(crate) fn chown_recursive(path: &Path, owner: &str) -> Result<()> {
    run_ok(Command::new("chown").arg("-R").arg(owner).arg(path)).map(drop)
}

/// Writes `contents` to `path` atomically (write to a sibling, then rename), so a running
/// server re-reading the file never sees it half-written.
pub(crate) fn write_atomic(path: &Path, contents: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp-write");
    fs::write(&tmp, contents).with_context(|| format!("writing {}", tmp.display()))?;
    if let Ok(meta) = fs::metadata(path) {
        // Keep ownership and mode of the file being replaced.
        use std::os::unix::fs::MetadataExt;
        fs::set_permissions(&tmp, meta.permissions())?;
        std::os::unix::fs::chown(&tmp, Some(meta.uid()), Some(meta.gid()))?;
    }
    fs::rename(&tmp, path).with_context(|| format!("replacing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_mark_sees_only_appended_text() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        fs::write(
            &log,
            "old: bind(127.0.0.1, 1) failed: Address already in use\n",
        )
        .unwrap();
        let mark = LogMark::new(&[log.clone(), dir.path().join("missing")]);
        assert!(!mark.port_in_use());
        let mut f = fs::OpenOptions::new().append(true).open(&log).unwrap();
        writeln!(f, "new: could not listen on UDP socket: address in use").unwrap();
        assert!(mark.port_in_use());
    }

    #[test]
    fn command_output_reports_failures() {
        let out = run(
            Command::new("sh").args(["-c", "echo out; echo err >&2; exit 3"]),
            None,
        )
        .unwrap();
        assert!(!out.success);
        assert_eq!(out.code, Some(3));
        let err = out.ok().unwrap_err().to_string();
        assert!(
            err.contains("exit code 3") && err.contains("err") && err.contains("out"),
            "{err}"
        );
        let echoed = run(&mut Command::new("cat"), Some(b"stdin"))
            .unwrap()
            .ok()
            .unwrap();
        assert_eq!(echoed, "stdin");
    }
}
