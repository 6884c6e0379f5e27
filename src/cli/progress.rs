//! Progress bars for `sync` and `verify` on a terminal: one bar per mailbox, counting
//! messages done out of messages to copy.

use std::collections::HashMap;
use std::sync::Mutex;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use crate::imap::engine::{Observer, Progress};
use crate::imap::report::human_bytes;

/// Draws a bar per mailbox on standard error.
pub struct Bars {
    multi: MultiProgress,
    bars: Mutex<HashMap<String, (ProgressBar, u64)>>,
}

impl Bars {
    pub fn new(multi: MultiProgress) -> Bars {
        Bars {
            multi,
            bars: Mutex::new(HashMap::new()),
        }
    }

    fn with_bar(&self, address: &str, f: impl FnOnce(&ProgressBar, &mut u64)) {
        let Ok(mut bars) = self.bars.lock() else {
            return;
        };
        let (bar, bytes) = bars.entry(address.to_owned()).or_insert_with(|| {
            let bar = self.multi.add(ProgressBar::new(0));
            bar.set_style(
                ProgressStyle::with_template("{prefix:32!} [{bar:30}] {pos}/{len} messages {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            bar.set_prefix(address.to_owned());
            (bar, 0)
        });
        f(bar, bytes);
    }
}

impl Observer for Bars {
    fn progress(&self, event: Progress<'_>) {
        match event {
            Progress::MailboxStarted { address } => {
                self.with_bar(address, |b, _| b.set_message("comparing"));
            }
            Progress::Planned {
                address, messages, ..
            } => self.with_bar(address, |b, _| b.inc_length(messages)),
            Progress::Copied {
                address,
                messages,
                bytes,
            } => self.with_bar(address, |b, total| {
                *total += bytes;
                b.inc(messages);
                b.set_message(human_bytes(*total));
            }),
            Progress::Retrying {
                address,
                attempt,
                delay,
                ..
            } => self.with_bar(address, |b, _| {
                b.set_message(format!(
                    "connection lost; retry {attempt} in {:.1} s",
                    delay.as_secs_f64()
                ));
            }),
            Progress::MailboxFinished { address, perfect } => self.with_bar(address, |b, total| {
                b.finish_with_message(format!(
                    "{} {}",
                    human_bytes(*total),
                    if perfect { "done" } else { "NOT PERFECT" }
                ));
            }),
        }
    }
}
