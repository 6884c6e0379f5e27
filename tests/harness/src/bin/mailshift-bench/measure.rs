//! Wall clock, CPU time and peak RSS of one tool run, and a description of the machine.

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::tools::Tool;

/// GNU time, which reports the peak RSS of the process it runs (`%M`, from `wait4`'s
/// `ru_maxrss`: the largest of the process and the descendants it waited for).
const TIME: &str = "/usr/bin/time";

#[derive(Debug, Clone)]
pub struct Measured {
    /// Wall clock seconds from spawn to exit.
    pub wall: f64,
    /// CPU seconds of the tool (user, system); the servers' CPU is not included.
    pub user: f64,
    pub sys: f64,
    /// Peak resident set size in KiB.
    pub max_rss_kb: u64,
    pub success: bool,
    /// Exit status as text.
    pub status: String,
    /// CPU seconds the source and destination Dovecot spent meanwhile (their mail
    /// processes for this run), filled in by the caller.
    pub source_cpu: f64,
    pub dest_cpu: f64,
    /// The 1-minute load average when the run started.
    pub load: f64,
}

/// Runs `cmd` under GNU time with its stdout and stderr in `log`, in its own process group
/// (killed whole after `timeout` seconds).
pub fn run(cmd: Command, log: &Path, timeout: u64) -> Result<Measured> {
    let stats = log.with_extension("time");
    let mut timed = Command::new(TIME);
    timed
        .arg("-f")
        .arg("%e %U %S %M")
        .arg("-o")
        .arg(&stats)
        .arg(cmd.get_program())
        .args(cmd.get_args());
    if let Some(dir) = cmd.get_current_dir() {
        timed.current_dir(dir);
    }
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => timed.env(k, v),
            None => timed.env_remove(k),
        };
    }
    let out = fs::File::create(log)?;
    timed
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .process_group(0);
    let started = Instant::now();
    let mut child = timed
        .spawn()
        .with_context(|| format!("running {TIME} (install the `time` package)"))?;
    let deadline = started + Duration::from_secs(timeout);
    let status = loop {
        if let Some(st) = child.try_wait()? {
            break st;
        }
        if Instant::now() > deadline {
            let _ = Command::new("kill")
                .arg("-KILL")
                .arg("--")
                .arg(format!("-{}", child.id()))
                .status();
            let st = child.wait()?;
            eprintln!("timed out after {timeout} s: {}", log.display());
            break st;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let wall = started.elapsed().as_secs_f64();
    let text = fs::read_to_string(&stats).unwrap_or_default();
    // GNU time prefixes "Command exited with non-zero status N" on failure.
    let last = text.lines().last().unwrap_or("");
    let f: Vec<&str> = last.split_whitespace().collect();
    let num = |i: usize| f.get(i).and_then(|x| x.parse::<f64>().ok()).unwrap_or(0.0);
    Ok(Measured {
        wall,
        user: num(1),
        sys: num(2),
        max_rss_kb: num(3) as u64,
        success: status.success(),
        status: status.to_string(),
        source_cpu: 0.0,
        dest_cpu: 0.0,
        load: 0.0,
    })
}

fn first_line(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .ok()
        .map(|o| {
            let text = if o.stdout.is_empty() {
                o.stderr
            } else {
                o.stdout
            };
            String::from_utf8_lossy(&text)
                .lines()
                .next()
                .unwrap_or("")
                .trim()
                .to_string()
        })
        .unwrap_or_else(|| "?".into())
}

/// nproc, RAM, CPU model, kernel and the tools' versions.
pub fn machine_info(tools: &[Tool]) -> String {
    let meminfo = fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let ram = meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or("?".into(), |kb| format!("{:.1} GiB", kb / 1024.0 / 1024.0));
    let cpu = fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .unwrap_or("?")
        .trim()
        .to_string();
    let mut s = format!(
        "nproc: {}\nRAM: {ram}\nCPU: {cpu}\nkernel: {}\nserver data: {}\nDovecot: {}\n",
        first_line("nproc", &[]),
        first_line("uname", &["-sr"]),
        data_location(),
        first_line("dovecot", &["--version"]),
    );
    for t in tools {
        s.push_str(&format!("{}: {}\n", t.name(), t.version()));
    }
    s
}

/// CPU time used by a Dovecot's processes that have exited (the `imap` process of each
/// connection), read from the master process' `cutime + cstime`: what the servers spent
/// on a tool's behalf. Dovecot runs one `imap` process per connection (`service_count =
/// 1`), so once a tool logged out and its processes are reaped, their CPU time is there.
pub struct ServerCpu {
    pid: u32,
    ticks_per_s: f64,
}

impl ServerCpu {
    pub fn of(dovecot: &mailshift_harness::Dovecot) -> Result<ServerCpu> {
        let pidfile = dovecot.dir().join("run/master.pid");
        let pid = fs::read_to_string(&pidfile)
            .with_context(|| format!("reading {}", pidfile.display()))?
            .trim()
            .parse()
            .context("master.pid")?;
        let ticks = Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100.0);
        Ok(ServerCpu {
            pid,
            ticks_per_s: ticks,
        })
    }

    /// Seconds of CPU used by reaped children so far, after waiting (up to 5 s) for the
    /// mail processes still running to exit.
    pub fn reaped_seconds(&self) -> f64 {
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline && self.mail_processes_running() {
            std::thread::sleep(Duration::from_millis(10));
        }
        let stat = fs::read_to_string(format!("/proc/{}/stat", self.pid)).unwrap_or_default();
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map_or("", |(_, rest)| rest)
            .split_whitespace()
            .collect();
        // After the ")": state is field 3, so cutime (16) and cstime (17) are at 13 and 14.
        let tick = |i: usize| {
            fields
                .get(i)
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        (tick(13) + tick(14)) / self.ticks_per_s
    }

    fn mail_processes_running(&self) -> bool {
        let children = fs::read_to_string(format!("/proc/{0}/task/{0}/children", self.pid))
            .unwrap_or_default();
        children.split_whitespace().any(|c| {
            fs::read_to_string(format!("/proc/{c}/comm")).is_ok_and(|comm| {
                let comm = comm.trim();
                comm == "imap" || comm.starts_with("doveadm")
            })
        })
    }
}

/// The 1-minute load average: other work on the machine skews wall-clock times.
pub fn load_average() -> f64 {
    fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN)
}

/// Share of time some task waited for a CPU over the last 5 minutes (`/proc/pressure/cpu`,
/// "some avg300"), in percent: how busy the machine was with other work.
pub fn cpu_pressure() -> Option<f64> {
    let text = fs::read_to_string("/proc/pressure/cpu").ok()?;
    let line = text.lines().find(|l| l.starts_with("some"))?;
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix("avg300="))?
        .parse()
        .ok()
}

/// Where the servers keep their data (the temp dir) and on what file system.
pub fn data_location() -> String {
    let dir = std::env::temp_dir();
    let fs_type = Command::new("stat")
        .args(["-f", "-c", "%T"])
        .arg(&dir)
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "?".into());
    format!("{} ({fs_type})", dir.display())
}
