//! The few file operations the Maildir and mbox readers need, on this machine ([`Local`]) or
//! on the old server over ssh ([`Remote`], through the Postfix adapter's
//! [`SshRunner`](crate::routing::SshRunner): `find`, `stat`, `head`, `tail`, `cat` there).
//! Every one of them only reads.

use std::io::{self, BufRead};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

use crate::routing::{Runner, SshRunner};

/// What a directory entry is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
    Other,
}

/// One entry of a directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirEntry {
    pub name: String,
    pub kind: Kind,
    pub size: u64,
    /// Modification time, whole seconds since the epoch.
    pub mtime: i64,
}

/// Size and modification time of a file; the nanoseconds tell a rewrite within a second.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Meta {
    pub kind: Kind,
    pub size: u64,
    pub mtime: i64,
    pub mtime_nanos: u32,
}

/// Read-only access to a tree of files.
pub trait Fs: Send + Sync + std::fmt::Debug {
    /// The entries of `dir`, without `.` and `..`. A missing directory is `NotFound`.
    fn list(&self, dir: &Path) -> io::Result<Vec<DirEntry>>;
    /// `None` when `path` does not exist.
    fn stat(&self, path: &Path) -> io::Result<Option<Meta>>;
    /// The whole file; `None` when it does not exist.
    fn read(&self, path: &Path) -> io::Result<Option<Vec<u8>>>;
    /// `len` bytes from `start` (fewer at the end of the file); `None` when it does not
    /// exist.
    fn read_range(&self, path: &Path, start: u64, len: u64) -> io::Result<Option<Vec<u8>>>;
    /// The file as a stream, for reading it once from start to end.
    fn open(&self, path: &Path) -> io::Result<Box<dyn BufRead + Send>>;
    /// Several whole files, in order (one round trip where the files are far away).
    fn read_many(&self, paths: &[PathBuf]) -> io::Result<Vec<Option<Vec<u8>>>> {
        paths.iter().map(|p| self.read(p)).collect()
    }
    /// Where the files are, for messages.
    fn describe(&self) -> String;
}

fn missing_is_none<T>(r: io::Result<T>) -> io::Result<Option<T>> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

fn seconds(t: std::time::SystemTime) -> (i64, u32) {
    match t.duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => (d.as_secs() as i64, d.subsec_nanos()),
        Err(e) => (-(e.duration().as_secs() as i64), 0),
    }
}

/// Files on this machine.
#[derive(Clone, Copy, Debug, Default)]
pub struct Local;

impl Fs for Local {
    fn list(&self, dir: &Path) -> io::Result<Vec<DirEntry>> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(dir)? {
            let e = e?;
            let Ok(name) = e.file_name().into_string() else {
                tracing::warn!(path = %e.path().display(), "name is not UTF-8; skipped");
                continue;
            };
            // Removed or renamed since the directory was read: not there.
            let Some(meta) = missing_is_none(std::fs::symlink_metadata(e.path()))? else {
                continue;
            };
            let kind = if meta.is_dir() {
                Kind::Dir
            } else if meta.is_file() {
                Kind::File
            } else {
                Kind::Other
            };
            out.push(DirEntry {
                name,
                kind,
                size: meta.len(),
                mtime: meta.modified().map(seconds)?.0,
            });
        }
        Ok(out)
    }

    fn stat(&self, path: &Path) -> io::Result<Option<Meta>> {
        let Some(meta) = missing_is_none(std::fs::metadata(path))? else {
            return Ok(None);
        };
        let (mtime, mtime_nanos) = seconds(meta.modified()?);
        Ok(Some(Meta {
            kind: if meta.is_dir() {
                Kind::Dir
            } else if meta.is_file() {
                Kind::File
            } else {
                Kind::Other
            },
            size: meta.len(),
            mtime,
            mtime_nanos,
        }))
    }

    fn read(&self, path: &Path) -> io::Result<Option<Vec<u8>>> {
        missing_is_none(std::fs::read(path))
    }

    fn read_range(&self, path: &Path, start: u64, len: u64) -> io::Result<Option<Vec<u8>>> {
        use std::io::{Read, Seek};
        let Some(mut f) = missing_is_none(std::fs::File::open(path))? else {
            return Ok(None);
        };
        f.seek(io::SeekFrom::Start(start))?;
        let mut out = Vec::with_capacity(len.min(64 << 20) as usize);
        f.take(len).read_to_end(&mut out)?;
        Ok(Some(out))
    }

    fn open(&self, path: &Path) -> io::Result<Box<dyn BufRead + Send>> {
        Ok(Box::new(io::BufReader::new(std::fs::File::open(path)?)))
    }

    fn describe(&self) -> String {
        "this machine".into()
    }
}

/// Files on the old server, read over ssh with standard tools (GNU `find`, `stat`, `head`,
/// `tail`, `cat`): nothing is written there, not even a temporary file.
#[derive(Clone, Debug)]
pub struct Remote {
    runner: Arc<SshRunner>,
}

fn path_arg(p: &Path) -> io::Result<String> {
    p.to_str()
        .map(str::to_owned)
        .ok_or_else(|| io::Error::other(format!("{} is not UTF-8", p.display())))
}

/// `sh -c SCRIPT sh ARGS...`.
fn sh(script: &str, args: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut argv = vec![
        "sh".to_owned(),
        "-c".to_owned(),
        script.to_owned(),
        "sh".to_owned(),
    ];
    argv.extend(args);
    argv
}

/// Exit status of the scripts for "no such file".
const MISSING: i32 = 3;

impl Remote {
    pub fn new(runner: SshRunner) -> Remote {
        Remote {
            runner: Arc::new(runner),
        }
    }

    /// Runs `argv` there, its standard output as bytes; `None` on [`MISSING`].
    fn bytes(&self, argv: &[String]) -> io::Result<Option<Vec<u8>>> {
        let line = self.runner.command_line(argv);
        let out = Command::new(&line[0])
            .args(&line[1..])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| io::Error::other(format!("ssh {}: {e}", self.runner.describe())))?;
        match out.status.code() {
            Some(0) => Ok(Some(out.stdout)),
            Some(MISSING) => Ok(None),
            code => Err(io::Error::other(format!(
                "on {}: {} exited with {code:?}: {}",
                self.runner.describe(),
                argv.first().map_or("", String::as_str),
                crate::text::excerpt(String::from_utf8_lossy(&out.stderr).trim(), 300)
            ))),
        }
    }
}

impl Fs for Remote {
    fn list(&self, dir: &Path) -> io::Result<Vec<DirEntry>> {
        let argv = sh(
            r#"[ -d "$1" ] || exit 3; exec find "$1" -mindepth 1 -maxdepth 1 -printf '%y %s %T@ %f\0'"#,
            [path_arg(dir)?],
        );
        let Some(out) = self.bytes(&argv)? else {
            return Err(io::ErrorKind::NotFound.into());
        };
        let mut entries = Vec::new();
        for record in out.split(|&b| b == 0).filter(|r| !r.is_empty()) {
            let text = String::from_utf8_lossy(record);
            let mut parts = text.splitn(4, ' ');
            let (Some(kind), Some(size), Some(mtime), Some(name)) =
                (parts.next(), parts.next(), parts.next(), parts.next())
            else {
                return Err(io::Error::other(format!("find printed {text:?}")));
            };
            entries.push(DirEntry {
                name: name.to_owned(),
                kind: match kind {
                    "f" => Kind::File,
                    "d" => Kind::Dir,
                    _ => Kind::Other,
                },
                size: size.parse().map_err(io::Error::other)?,
                mtime: mtime
                    .split('.')
                    .next()
                    .unwrap_or_default()
                    .parse()
                    .map_err(io::Error::other)?,
            });
        }
        Ok(entries)
    }

    fn stat(&self, path: &Path) -> io::Result<Option<Meta>> {
        let argv = sh(
            r#"[ -e "$1" ] || exit 3; exec stat -L -c '%F|%s|%Y|%y' -- "$1""#,
            [path_arg(path)?],
        );
        let Some(out) = self.bytes(&argv)? else {
            return Ok(None);
        };
        let text = String::from_utf8_lossy(&out);
        let parts: Vec<&str> = text.trim_end().split('|').collect();
        let [kind, size, mtime, human] = parts[..] else {
            return Err(io::Error::other(format!("stat printed {text:?}")));
        };
        // `%y` is `2026-12-01 19:00:00.123456789 +0000`: the nanoseconds.
        let nanos = human
            .split_once('.')
            .and_then(|(_, rest)| rest.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        Ok(Some(Meta {
            kind: match kind {
                "regular file" | "regular empty file" => Kind::File,
                "directory" => Kind::Dir,
                _ => Kind::Other,
            },
            size: size.parse().map_err(io::Error::other)?,
            mtime: mtime.parse().map_err(io::Error::other)?,
            mtime_nanos: nanos,
        }))
    }

    fn read(&self, path: &Path) -> io::Result<Option<Vec<u8>>> {
        let argv = sh(
            r#"[ -f "$1" ] || exit 3; exec cat -- "$1""#,
            [path_arg(path)?],
        );
        self.bytes(&argv)
    }

    fn read_range(&self, path: &Path, start: u64, len: u64) -> io::Result<Option<Vec<u8>>> {
        let argv = sh(
            r#"[ -f "$1" ] || exit 3; tail -c "+$2" -- "$1" | head -c "$3""#,
            [path_arg(path)?, (start + 1).to_string(), len.to_string()],
        );
        self.bytes(&argv)
    }

    fn open(&self, path: &Path) -> io::Result<Box<dyn BufRead + Send>> {
        let argv = sh(r#"exec cat -- "$1""#, [path_arg(path)?]);
        let line = self.runner.command_line(&argv);
        let mut child = Command::new(&line[0])
            .args(&line[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| io::Error::other(format!("ssh {}: {e}", self.runner.describe())))?;
        let stdout = child.stdout.take().expect("stdout is piped");
        Ok(Box::new(io::BufReader::new(Streamed { child, stdout })))
    }

    /// One ssh round trip for all of `paths`: each file opened first, then its size taken
    /// from the open file and that many bytes sent, so that a file renamed meanwhile (a
    /// Maildir flag change) is either read whole or reported missing (a failed `exec`
    /// redirection ends the subshell with 2).
    fn read_many(&self, paths: &[PathBuf]) -> io::Result<Vec<Option<Vec<u8>>>> {
        if paths.is_empty() {
            return Ok(Vec::new());
        }
        let args: Vec<String> = paths
            .iter()
            .map(|p| path_arg(p))
            .collect::<io::Result<_>>()?;
        let argv = sh(
            r#"for f do
  ( exec 3<"$f" || exit 7; s=$(stat -L -c %s /dev/fd/3) || exit 7; printf '+%s\n' "$s"; head -c "$s" <&3 ) 2>/dev/null
  case $? in 0) ;; 2|7) printf -- '-\n' ;; *) exit 1 ;; esac
done"#,
            args,
        );
        let out = self
            .bytes(&argv)?
            .ok_or_else(|| io::Error::other("read_many: unexpected status"))?;
        let mut rest = &out[..];
        let mut files = Vec::with_capacity(paths.len());
        for p in paths {
            let nl = rest.iter().position(|&b| b == b'\n').ok_or_else(|| {
                io::Error::other(format!("read {}: answer cut short", p.display()))
            })?;
            let head = std::str::from_utf8(&rest[..nl]).unwrap_or("?");
            rest = &rest[nl + 1..];
            if head == "-" {
                files.push(None);
                continue;
            }
            let n: usize = head
                .strip_prefix('+')
                .and_then(|n| n.parse().ok())
                .ok_or_else(|| {
                    io::Error::other(format!("read {}: bad frame {head:?}", p.display()))
                })?;
            if rest.len() < n {
                return Err(io::Error::other(format!(
                    "read {}: answer cut short",
                    p.display()
                )));
            }
            files.push(Some(rest[..n].to_vec()));
            rest = &rest[n..];
        }
        Ok(files)
    }

    fn describe(&self) -> String {
        self.runner.describe()
    }
}

/// A remote `cat`'s output; the process is reaped when the stream is dropped.
struct Streamed {
    child: std::process::Child,
    stdout: std::process::ChildStdout,
}

impl io::Read for Streamed {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.stdout.read(buf)?;
        if n == 0 && !buf.is_empty() {
            // At the end: a remote failure (the file gone, ssh refused) is an error, not a
            // short file.
            let status = self.child.wait()?;
            if !status.success() {
                return Err(io::Error::other(format!("remote cat ended with {status}")));
            }
        }
        Ok(n)
    }
}

impl Drop for Streamed {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
