//! The tools compared: how each is configured and invoked to copy one user's mailbox from
//! the source Dovecot to a fresh destination Dovecot.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Result;
use mailshift_harness::Dovecot;

pub enum ToolKind {
    /// `mailshift sync -f MANIFEST --state DIR --output json`.
    Mailshift(PathBuf),
    /// isync's `mbsync` with two IMAPStores and a `Sync Pull` channel.
    Mbsync,
    /// `doveadm backup -R` into the destination's own storage, reading the source through
    /// the imapc backend (Dovecot's documented migration path).
    DoveadmBackup,
}

pub struct Tool {
    kind: ToolKind,
}

/// Everything a tool needs to know about one run.
pub struct Ctx<'a> {
    pub source_port: u16,
    pub dest: &'a Dovecot,
    pub user: &'a str,
    pub password: &'a str,
    /// A scratch directory for this tool and case (config, state, logs).
    pub dir: &'a Path,
}

impl Tool {
    pub fn new(kind: ToolKind) -> Tool {
        Tool { kind }
    }

    pub fn name(&self) -> &'static str {
        match self.kind {
            ToolKind::Mailshift(_) => "mailshift",
            ToolKind::Mbsync => "mbsync",
            ToolKind::DoveadmBackup => "doveadm backup",
        }
    }

    /// The name without spaces, for file and server names.
    pub fn slug(&self) -> &'static str {
        match self.kind {
            ToolKind::Mailshift(_) => "mailshift",
            ToolKind::Mbsync => "mbsync",
            ToolKind::DoveadmBackup => "doveadm-backup",
        }
    }

    /// Why the tool cannot run here, if it cannot.
    pub fn available(&self) -> Result<(), String> {
        match &self.kind {
            ToolKind::Mailshift(bin) => {
                if !bin.exists() {
                    return Err(format!("{} not built", bin.display()));
                }
                let ok = Command::new(bin)
                    .args(["sync", "--help"])
                    .output()
                    .is_ok_and(|o| o.status.success());
                if ok {
                    Ok(())
                } else {
                    Err("this mailshift build has no `sync` command yet".into())
                }
            }
            ToolKind::Mbsync => which("mbsync"),
            ToolKind::DoveadmBackup => which("doveadm"),
        }
    }

    pub fn version(&self) -> String {
        let out = match &self.kind {
            ToolKind::Mailshift(bin) => Command::new(bin).arg("--version").output(),
            ToolKind::Mbsync => Command::new("mbsync").arg("--version").output(),
            ToolKind::DoveadmBackup => Command::new("dovecot").arg("--version").output(),
        };
        out.ok()
            .map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .next()
                    .unwrap_or("?")
                    .trim()
                    .to_string()
            })
            .unwrap_or_else(|| "not installed".into())
    }

    /// Writes the tool's configuration into `ctx.dir`.
    pub fn prepare(&self, ctx: &Ctx<'_>) -> Result<()> {
        match &self.kind {
            ToolKind::Mailshift(_) => {
                fs::create_dir_all(ctx.dir.join("state"))?;
                fs::write(ctx.dir.join("manifest.yaml"), mailshift_manifest(ctx))?;
            }
            ToolKind::Mbsync => {
                fs::create_dir_all(ctx.dir.join("mbsync-state"))?;
                fs::write(ctx.dir.join("mbsyncrc"), mbsyncrc(ctx))?;
            }
            ToolKind::DoveadmBackup => {}
        }
        Ok(())
    }

    /// The command for one run (the same for the full copy and the re-sync).
    pub fn command(&self, ctx: &Ctx<'_>) -> Command {
        match &self.kind {
            ToolKind::Mailshift(bin) => {
                let mut c = Command::new(bin);
                c.arg("sync")
                    .arg("-f")
                    .arg(ctx.dir.join("manifest.yaml"))
                    .arg("--state")
                    .arg(ctx.dir.join("state"))
                    .args(["--output", "json"])
                    .env("MAILSHIFT_BENCH_PASSWORD", ctx.password)
                    .current_dir(ctx.dir);
                c
            }
            ToolKind::Mbsync => {
                let mut c = Command::new("mbsync");
                c.arg("-c").arg(ctx.dir.join("mbsyncrc")).arg("-a");
                c
            }
            ToolKind::DoveadmBackup => {
                // Dovecot 2.3's migration recipe (doc/wiki/Migration.Dsync.txt): the imapc
                // settings given with -o, `backup -R` pulls from imapc: into the user's
                // local mailbox, run with the destination server's own configuration.
                // mail_prefetch_count and the imapc features are the recipe's performance
                // settings; mail_fsync comes from the destination config, as for the
                // other tools (whose writes go through the destination's imap process).
                let mut c = Command::new("doveadm");
                if std::env::var_os("MAILSHIFT_BENCH_DOVEADM_DEBUG").is_some() {
                    c.arg("-D");
                }
                c.arg("-c")
                    .arg(ctx.dest.config_path())
                    .args(["-o", "imapc_host=127.0.0.1"])
                    .arg("-o")
                    .arg(format!("imapc_port={}", ctx.source_port))
                    .arg("-o")
                    .arg(format!("imapc_user={}", ctx.user))
                    .arg("-o")
                    .arg(format!("imapc_password={}", ctx.password))
                    .args(["-o", "imapc_ssl=no"])
                    .args(["-o", "imapc_features=rfc822.size fetch-headers"])
                    .args(["-o", "mail_prefetch_count=20"])
                    .args(["backup", "-R", "-u", ctx.user, "imapc:"]);
                c
            }
        }
    }
}

fn which(program: &str) -> Result<(), String> {
    let found = std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|d| d.join(program).is_file()));
    if found {
        Ok(())
    } else {
        Err(format!("{program} not installed (scripts/install-deps.sh)"))
    }
}

fn mailshift_manifest(ctx: &Ctx<'_>) -> String {
    format!(
        r#"# Written by mailshift-bench.
apiVersion: mailshift.io/v1alpha1
kind: MailMigration
metadata:
  name: bench
spec:
  source:
    imap: {{ host: 127.0.0.1, port: {sport}, tls: none }}
    auth: {{ method: password }}
  destination:
    imap: {{ host: 127.0.0.1, port: {dport}, tls: none }}
    auth: {{ method: password }}
  mailboxes:
    - address: {user}@example.com
      sourceUser: {user}
      destinationUser: {user}
      sourcePassword: {{ env: MAILSHIFT_BENCH_PASSWORD }}
      destinationPassword: {{ env: MAILSHIFT_BENCH_PASSWORD }}
  folders:
    # The peers keep every folder name as it is; so does mailshift here, so the three
    # destinations can be compared folder by folder ("Отправленные" would otherwise be
    # merged into Sent, "Hộp thư đến" into INBOX).
    sourceLanguage: en
"#,
        sport = ctx.source_port,
        dport = ctx.dest.imap_port(),
        user = ctx.user,
    )
}

fn mbsyncrc(ctx: &Ctx<'_>) -> String {
    format!(
        r#"# Written by mailshift-bench.
IMAPStore source
Host 127.0.0.1
Port {sport}
User {user}
Pass {pw}
SSLType None
AuthMechs LOGIN

IMAPStore destination
Host 127.0.0.1
Port {dport}
User {user}
Pass {pw}
SSLType None
AuthMechs LOGIN

# Far = source, Near = destination: Pull copies new messages and flag changes from the
# source to the destination, Create Near makes missing folders there, nothing is deleted.
Channel bench
Far :source:
Near :destination:
Patterns *
Create Near
Remove None
Expunge None
Sync Pull
CopyArrivalDate yes
SyncState {state}/
"#,
        sport = ctx.source_port,
        dport = ctx.dest.imap_port(),
        user = ctx.user,
        pw = ctx.password,
        state = ctx.dir.join("mbsync-state").display(),
    )
}
