//! Logging for every command, set up once: `tracing` events to standard error, as text or
//! JSON lines (`--log-format`), filtered by `RUST_LOG` (default: mailshift's own events at
//! `info`, everything else at `warn`; on a terminal with progress bars, `warn` only).
//!
//! Nothing secret reaches a log: async-imap traces raw commands (LOGIN with its password)
//! through the `log` crate, which is deliberately not bridged into `tracing`, and every
//! type holding a secret prints as redacted.

use std::io::Write;

use clap::ValueEnum;
use indicatif::MultiProgress;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

/// How log events are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Installs the global subscriber. `progress`: progress bars are drawn on standard error,
/// so log lines are written between redraws.
pub fn init(format: LogFormat, progress: Option<MultiProgress>) {
    let default = if progress.is_some() {
        "warn"
    } else {
        "warn,mailshift=info"
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let writer = Stderr(progress);
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let result = match format {
        LogFormat::Text => tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(writer)
            .with_ansi(ansi)
            .with_target(false)
            .try_init(),
        LogFormat::Json => tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .with_writer(writer)
            .with_current_span(false)
            .try_init(),
    };
    // Already installed (tests running commands in-process): keep the first.
    let _ = result;
}

/// Standard error, one event per write, around the progress bars.
#[derive(Clone)]
struct Stderr(Option<MultiProgress>);

impl<'a> MakeWriter<'a> for Stderr {
    type Writer = EventWriter;

    fn make_writer(&'a self) -> EventWriter {
        EventWriter {
            buf: Vec::new(),
            progress: self.0.clone(),
        }
    }
}

/// Collects one formatted event and writes it in one go when dropped.
struct EventWriter {
    buf: Vec<u8>,
    progress: Option<MultiProgress>,
}

impl Write for EventWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for EventWriter {
    fn drop(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        // Fields carry what servers named (folder names, error texts): a CR, LF or ESC in
        // them must not forge a line or drive the terminal.
        let text = String::from_utf8_lossy(&self.buf);
        let line = mailshift::text::log_line(&text);
        let write = || {
            let mut err = std::io::stderr().lock();
            let _ = err.write_all(line.as_bytes());
            let _ = err.flush();
        };
        match &self.progress {
            Some(p) => p.suspend(write),
            None => write(),
        }
    }
}
