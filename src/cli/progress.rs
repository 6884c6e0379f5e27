//! Progress bars for `sync` and `verify` on a terminal: one bar per mailbox, counting
//! messages done out of messages to copy.

use std::collections::HashMap;
use std::sync::Mutex;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use mailshift::engine::{Observer, Progress};
use mailshift::imap::report::human_bytes;

/// Draws a bar per mailbox on standard error.
pub struct Bars {
    multi: MultiProgress,
    bars: Mutex<HashMap<String, Bar>>,
}

/// One mailbox's bar: messages done so far, and what is left to copy per folder (a retry
/// plans a folder again with what is left, so the total does not count anything twice).
struct Bar {
    bar: ProgressBar,
    bytes: u64,
    left: HashMap<String, u64>,
}

impl Bar {
    fn relength(&self) {
        self.bar
            .set_length(self.bar.position() + self.left.values().sum::<u64>());
    }
}

impl Bars {
    pub fn new(multi: MultiProgress) -> Bars {
        Bars {
            multi,
            bars: Mutex::new(HashMap::new()),
        }
    }

    fn with_bar(&self, address: &str, f: impl FnOnce(&mut Bar)) {
        let Ok(mut bars) = self.bars.lock() else {
            return;
        };
        let bar = bars.entry(address.to_owned()).or_insert_with(|| {
            let bar = self.multi.add(ProgressBar::new(0));
            bar.set_style(
                ProgressStyle::with_template("{prefix:32!} [{bar:30}] {pos}/{len} messages {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            bar.set_prefix(address.to_owned());
            Bar {
                bar,
                bytes: 0,
                left: HashMap::new(),
            }
        });
        f(bar);
    }
}

impl Observer for Bars {
    fn progress(&self, event: Progress<'_>) {
        match event {
            Progress::MailboxStarted { address } => {
                self.with_bar(address, |b| b.bar.set_message("comparing"));
            }
            Progress::Planned {
                address,
                folder,
                messages,
                ..
            } => self.with_bar(address, |b| {
                b.left.insert(folder.to_owned(), messages);
                b.relength();
            }),
            Progress::Copied {
                address,
                folder,
                messages,
                bytes,
            } => self.with_bar(address, |b| {
                b.bytes += bytes;
                if let Some(left) = b.left.get_mut(folder) {
                    *left = left.saturating_sub(messages);
                }
                b.bar.inc(messages);
                b.relength();
                b.bar.set_message(human_bytes(b.bytes));
            }),
            Progress::Retrying {
                address,
                attempt,
                delay,
                ..
            } => self.with_bar(address, |b| {
                b.bar.set_message(format!(
                    "connection lost; retry {attempt} in {:.1} s",
                    delay.as_secs_f64()
                ));
            }),
            Progress::Throttled { address, wait, .. } => self.with_bar(address, |b| {
                b.bar.set_message(format!(
                    "throttled by the server; going on in {:.1} s",
                    wait.as_secs_f64()
                ));
            }),
            Progress::MailboxFinished { address, perfect } => self.with_bar(address, |b| {
                b.bar.finish_with_message(format!(
                    "{} {}",
                    human_bytes(b.bytes),
                    if perfect { "done" } else { "NOT PERFECT" }
                ));
            }),
        }
    }
}

/// Logging plus, on a terminal, progress bars drawn on standard error (log lines are written
/// between redraws), and the engine observer that feeds them; off a terminal, structured
/// logs only.
pub fn setup(
    log_format: super::logging::LogFormat,
) -> (
    Option<indicatif::MultiProgress>,
    std::sync::Arc<dyn mailshift::engine::Observer>,
) {
    let bars = std::io::IsTerminal::is_terminal(&std::io::stderr()).then(|| {
        indicatif::MultiProgress::with_draw_target(indicatif::ProgressDrawTarget::stderr_with_hz(8))
    });
    super::logging::init(log_format, bars.clone());
    let observer: std::sync::Arc<dyn mailshift::engine::Observer> = match &bars {
        Some(m) => std::sync::Arc::new(Bars::new(m.clone())),
        None => std::sync::Arc::new(mailshift::engine::Silent),
    };
    (bars, observer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use indicatif::ProgressDrawTarget;

    #[test]
    fn a_retry_does_not_count_messages_twice() {
        let bars = Bars::new(MultiProgress::with_draw_target(ProgressDrawTarget::hidden()));
        let a = "alice@example.com";
        let planned = |folder, messages| Progress::Planned {
            address: a,
            folder,
            messages,
            bytes: 0,
        };
        let copied = |folder, messages| Progress::Copied {
            address: a,
            folder,
            messages,
            bytes: 100,
        };
        bars.progress(Progress::MailboxStarted { address: a });
        bars.progress(planned("INBOX", 10));
        bars.progress(copied("INBOX", 4));
        // The connection is lost; the retry plans what is left.
        bars.progress(planned("INBOX", 6));
        bars.progress(copied("INBOX", 6));
        bars.progress(planned("Sent", 3));
        bars.progress(copied("Sent", 3));
        bars.progress(Progress::MailboxFinished {
            address: a,
            perfect: true,
        });
        let map = bars.bars.lock().unwrap();
        let b = &map[a];
        assert_eq!((b.bar.position(), b.bar.length()), (13, Some(13)));
        assert_eq!(b.bytes, 300);
    }
}
