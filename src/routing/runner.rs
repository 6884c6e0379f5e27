//! Running the Postfix tools: on this machine, or on the Postfix host over ssh (the OpenSSH
//! client, host keys always checked). Everything the Postfix provider does goes through
//! [`Runner`], file reads and writes included, so the local and the remote path run the
//! same commands.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::secrets::Resolver;
use crate::spec::Ssh;

use super::RoutingError;

/// What a command printed and how it ended.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Output {
    /// The exit code; `None` when killed by a signal.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
}

/// Runs one command (program and arguments, no shell on the local side) with optional
/// standard input.
pub trait Runner: Send + Sync {
    fn run(&self, argv: &[String], stdin: Option<&[u8]>) -> Result<Output, RoutingError>;

    /// Where the commands run, for messages.
    fn describe(&self) -> String;
}

/// Run `argv`, failing with its stderr when it exits non-zero.
pub fn run_ok(runner: &dyn Runner, argv: &[String]) -> Result<String, RoutingError> {
    let out = runner.run(argv, None)?;
    if out.success() {
        Ok(out.stdout)
    } else {
        Err(failed(runner, argv, &out))
    }
}

pub(crate) fn failed(runner: &dyn Runner, argv: &[String], out: &Output) -> RoutingError {
    RoutingError::Command {
        host: runner.describe(),
        command: argv.join(" "),
        status: out
            .code
            .map_or_else(|| "killed by a signal".to_owned(), |c| format!("exit {c}")),
        stderr: out.stderr.trim().to_owned(),
    }
}

/// Read a file; `None` when it does not exist.
pub fn read_file(runner: &dyn Runner, path: &str) -> Result<Option<String>, RoutingError> {
    // `cat` of a missing file and of an unreadable one differ only in the message: test first.
    let argv = sh(
        r#"if [ -e "$1" ]; then cat -- "$1"; else exit 3; fi"#,
        &[path],
    );
    let out = runner.run(&argv, None)?;
    match out.code {
        Some(0) => Ok(Some(out.stdout)),
        Some(3) => Ok(None),
        _ => Err(failed(runner, &argv, &out)),
    }
}

/// Replace a file atomically (temporary file, then rename), mode 0644.
pub fn write_file(runner: &dyn Runner, path: &str, contents: &str) -> Result<(), RoutingError> {
    let argv = sh(
        r#"umask 022 && cat > "$1.mailshift-tmp" && mv -f -- "$1.mailshift-tmp" "$1""#,
        &[path],
    );
    let out = runner.run(&argv, Some(contents.as_bytes()))?;
    if out.success() {
        Ok(())
    } else {
        Err(failed(runner, &argv, &out))
    }
}

/// Replace a file atomically keeping its mode and owner (a user database is readable by
/// its server only); a new file is made with mode 0600.
pub fn replace_file(runner: &dyn Runner, path: &str, contents: &str) -> Result<(), RoutingError> {
    let argv = sh(
        r#"umask 077 && cat > "$1.mailshift-tmp" && { [ ! -e "$1" ] || { chmod --reference="$1" "$1.mailshift-tmp" && { chown --reference="$1" "$1.mailshift-tmp" 2>/dev/null || true; }; }; } && mv -f -- "$1.mailshift-tmp" "$1""#,
        &[path],
    );
    let out = runner.run(&argv, Some(contents.as_bytes()))?;
    if out.success() {
        Ok(())
    } else {
        Err(failed(runner, &argv, &out))
    }
}

/// Remove files that may not exist.
pub fn remove_files(runner: &dyn Runner, paths: &[&str]) -> Result<(), RoutingError> {
    let mut argv = vec!["rm".to_owned(), "-f".to_owned(), "--".to_owned()];
    argv.extend(paths.iter().map(|p| (*p).to_owned()));
    run_ok(runner, &argv).map(drop)
}

/// `sh -c SCRIPT sh ARGS...`: a fixed script, arguments passed as positional parameters.
fn sh(script: &str, args: &[&str]) -> Vec<String> {
    let mut argv = vec![
        "sh".to_owned(),
        "-c".to_owned(),
        script.to_owned(),
        "sh".to_owned(),
    ];
    argv.extend(args.iter().map(|a| (*a).to_owned()));
    argv
}

/// Runs commands on this machine.
#[derive(Clone, Copy, Debug, Default)]
pub struct Local;

impl Runner for Local {
    fn run(&self, argv: &[String], stdin: Option<&[u8]>) -> Result<Output, RoutingError> {
        spawn(self, argv, stdin)
    }

    fn describe(&self) -> String {
        "localhost".into()
    }
}

fn spawn(
    runner: &dyn Runner,
    argv: &[String],
    stdin: Option<&[u8]>,
) -> Result<Output, RoutingError> {
    let spawn_error = |e: std::io::Error| RoutingError::Spawn {
        host: runner.describe(),
        program: argv[0].clone(),
        error: e.to_string(),
    };
    let mut child = Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(spawn_error)?;
    if let Some(data) = stdin {
        let mut pipe = child.stdin.take().expect("stdin is piped");
        pipe.write_all(data).map_err(spawn_error)?;
    }
    let out = child.wait_with_output().map_err(spawn_error)?;
    Ok(Output {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

/// Runs commands on a remote host with the OpenSSH client: `BatchMode` (never a prompt),
/// `StrictHostKeyChecking=yes` against `knownHosts` (or the user's known_hosts), the private
/// key from a secret in a 0600 temporary file that lives as long as the runner.
#[derive(Debug)]
pub struct SshRunner {
    /// The ssh program (`ssh`; tests substitute a stand-in).
    program: String,
    host: String,
    port: Option<u16>,
    user: String,
    identity: Option<tempfile::NamedTempFile>,
    known_hosts: Option<tempfile::NamedTempFile>,
}

impl SshRunner {
    /// Resolve the secrets of `ssh` and write them to private temporary files.
    pub fn new(ssh: &Ssh, resolver: &Resolver) -> Result<Self, RoutingError> {
        let secret_file = |what: &str, r: &crate::spec::SecretRef| {
            let value = resolver.resolve(r).map_err(|e| RoutingError::Secret {
                what: format!("ssh {what} for {}", ssh.host),
                error: e.to_string(),
            })?;
            // NamedTempFile is created with mode 0600.
            let mut f = tempfile::Builder::new()
                .prefix("mailshift-ssh-")
                .tempfile()
                .map_err(|e| RoutingError::Io(format!("temporary file: {e}")))?;
            let mut text = value.expose().to_owned();
            if !text.ends_with('\n') {
                text.push('\n');
            }
            f.write_all(text.as_bytes())
                .and_then(|()| f.flush())
                .map_err(|e| RoutingError::Io(format!("temporary file: {e}")))?;
            Ok::<_, RoutingError>(f)
        };
        Ok(SshRunner {
            program: "ssh".into(),
            host: ssh.host.clone(),
            port: ssh.port,
            user: ssh.user.clone(),
            identity: ssh
                .identity
                .as_ref()
                .map(|r| secret_file("identity", r))
                .transpose()?,
            known_hosts: ssh
                .known_hosts
                .as_ref()
                .map(|r| secret_file("knownHosts", r))
                .transpose()?,
        })
    }

    /// Use another program in place of `ssh` (tests).
    pub fn with_program(mut self, program: &str) -> Self {
        self.program = program.into();
        self
    }

    /// The private key file, if a key was given.
    pub fn identity_path(&self) -> Option<&std::path::Path> {
        self.identity.as_ref().map(|f| f.path())
    }

    /// The full local command line that runs `argv` on the remote host.
    pub fn command_line(&self, argv: &[String]) -> Vec<String> {
        let mut cmd = vec![
            self.program.clone(),
            "-o".into(),
            "BatchMode=yes".into(),
            "-o".into(),
            "StrictHostKeyChecking=yes".into(),
            "-o".into(),
            "ConnectTimeout=30".into(),
        ];
        if let Some(kh) = &self.known_hosts {
            cmd.push("-o".into());
            cmd.push(format!("UserKnownHostsFile={}", kh.path().display()));
        }
        if let Some(id) = &self.identity {
            cmd.extend(["-o".into(), "IdentitiesOnly=yes".into(), "-i".into()]);
            cmd.push(id.path().display().to_string());
        }
        if let Some(port) = self.port {
            cmd.push("-p".into());
            cmd.push(port.to_string());
        }
        cmd.push("-l".into());
        cmd.push(self.user.clone());
        cmd.push("--".into());
        cmd.push(self.host.clone());
        // The remote side joins the arguments and hands them to the user's shell.
        cmd.push(
            argv.iter()
                .map(|a| shell_quote(a))
                .collect::<Vec<_>>()
                .join(" "),
        );
        cmd
    }
}

impl Runner for SshRunner {
    fn run(&self, argv: &[String], stdin: Option<&[u8]>) -> Result<Output, RoutingError> {
        let out = spawn(self, &self.command_line(argv), stdin)?;
        // 255: ssh itself failed (connection, authentication, host key).
        if out.code == Some(255) {
            return Err(RoutingError::Ssh {
                host: self.describe(),
                stderr: out.stderr.trim().to_owned(),
            });
        }
        Ok(out)
    }

    fn describe(&self) -> String {
        match self.port {
            Some(p) => format!("{}@{}:{p}", self.user, self.host),
            None => format!("{}@{}", self.user, self.host),
        }
    }
}

/// Quote one word for a POSIX shell: unchanged when it is plainly safe, else in single
/// quotes with embedded single quotes as `'\''`.
pub fn shell_quote(word: &str) -> String {
    let safe = !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:=@,+%".contains(&b));
    if safe {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_quote_keeps_safe_words_and_quotes_the_rest() {
        assert_eq!(shell_quote("postmap"), "postmap");
        assert_eq!(shell_quote("hash:/etc/postfix/x"), "hash:/etc/postfix/x");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote("$HOME;rm"), "'$HOME;rm'");
    }

    #[test]
    fn local_runner_reads_writes_and_removes_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("map file").display().to_string();
        assert_eq!(read_file(&Local, &path).unwrap(), None);
        write_file(&Local, &path, "a b\n").unwrap();
        assert_eq!(read_file(&Local, &path).unwrap().as_deref(), Some("a b\n"));
        remove_files(&Local, &[&path]).unwrap();
        assert_eq!(read_file(&Local, &path).unwrap(), None);
    }
}

#[cfg(test)]
mod ssh_tests {
    use super::*;
    use crate::spec::SecretRef;
    use std::os::unix::fs::PermissionsExt;

    fn ssh() -> Ssh {
        Ssh {
            host: "old.example.net".into(),
            port: Some(2222),
            user: "deploy".into(),
            identity: Some(SecretRef::Value("-----BEGIN KEY-----\nabc".into())),
            known_hosts: Some(SecretRef::Value("old.example.net ssh-ed25519 AAAA".into())),
        }
    }

    #[test]
    fn ssh_command_line_checks_host_keys_and_quotes_the_remote_command() {
        let r = SshRunner::new(&ssh(), &Resolver::default()).unwrap();
        let key = r.identity.as_ref().unwrap().path().display().to_string();
        let kh = r.known_hosts.as_ref().unwrap().path().display().to_string();
        let line = r.command_line(&[
            "postconf".into(),
            "-c".into(),
            "/etc/postfix".into(),
            "-e".into(),
            "transport_maps=hash:/etc/postfix/mailshift-gateway, hash:$config_directory/transport"
                .into(),
        ]);
        assert_eq!(
            line,
            vec![
                "ssh".to_owned(),
                "-o".into(),
                "BatchMode=yes".into(),
                "-o".into(),
                "StrictHostKeyChecking=yes".into(),
                "-o".into(),
                "ConnectTimeout=30".into(),
                "-o".into(),
                format!("UserKnownHostsFile={kh}"),
                "-o".into(),
                "IdentitiesOnly=yes".into(),
                "-i".into(),
                key.clone(),
                "-p".into(),
                "2222".into(),
                "-l".into(),
                "deploy".into(),
                "--".into(),
                "old.example.net".into(),
                "postconf -c /etc/postfix -e 'transport_maps=hash:/etc/postfix/mailshift-gateway, hash:$config_directory/transport'".into(),
            ]
        );
        // The key is private to this process and ends with a newline (OpenSSH needs one).
        let meta = std::fs::metadata(&key).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert_eq!(
            std::fs::read_to_string(&key).unwrap(),
            "-----BEGIN KEY-----\nabc\n"
        );
        assert_eq!(r.describe(), "deploy@old.example.net:2222");
        let path = key.clone();
        drop(r);
        assert!(
            !std::path::Path::new(&path).exists(),
            "the key file is removed"
        );
    }

    /// A stand-in for `ssh` that runs the remote command line with `sh -c` here: proves that
    /// the quoting survives a shell, with stdin passed through.
    #[test]
    fn commands_survive_the_remote_shell() {
        let dir = tempfile::tempdir().unwrap();
        let fake = dir.path().join("fake-ssh");
        std::fs::write(
            &fake,
            "#!/bin/sh\nwhile [ \"$1\" != \"--\" ]; do shift; done\nshift; shift\nexec sh -c \"$1\"\n",
        )
        .unwrap();
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
        let r = SshRunner::new(&ssh(), &Resolver::default())
            .unwrap()
            .with_program(&fake.display().to_string());
        let path = dir.path().join("it's a map").display().to_string();
        write_file(&r, &path, "a $HOME `x`\n").unwrap();
        assert_eq!(
            read_file(&r, &path).unwrap().as_deref(),
            Some("a $HOME `x`\n")
        );
        remove_files(&r, &[&path]).unwrap();
        assert_eq!(read_file(&r, &path).unwrap(), None);
    }
}
