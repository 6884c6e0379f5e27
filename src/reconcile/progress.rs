//! How far the copies under way have come: what the copy engine planned and copied, per
//! mailbox, as it reports it (messages and bytes from the servers' listings), with a rate
//! and an ETA. The loop writes it into the status at each replan (every few seconds while
//! copies run), so `mailshift status`, `kubectl get` and Argo CD show a percentage.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, TimeDelta, Utc};

use crate::imap::engine::{Observer, Progress};
use crate::spec::{MailboxTransfer, Transfer};

/// Per mailbox, per folder: (planned messages, planned bytes, copied messages, copied bytes).
#[derive(Debug, Default)]
struct State {
    folders: BTreeMap<(String, String), [u64; 4]>,
    started: Option<DateTime<Utc>>,
}

/// An observer that tallies the copy engine's progress and hands every event on.
pub struct Tally {
    state: Mutex<State>,
    inner: Arc<dyn Observer>,
    clock: fn() -> DateTime<Utc>,
}

impl Tally {
    pub fn new(inner: Arc<dyn Observer>) -> Self {
        Tally {
            state: Mutex::default(),
            inner,
            clock: Utc::now,
        }
    }

    /// Where the copies of this run stand at `now`; `None` before anything was planned.
    pub fn transfer(&self, now: DateTime<Utc>) -> Option<Transfer> {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        summarize(&state, now)
    }
}

impl Observer for Tally {
    fn progress(&self, event: Progress<'_>) {
        {
            let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
            match event {
                Progress::Planned {
                    address,
                    folder,
                    messages,
                    bytes,
                } => {
                    s.started.get_or_insert_with(self.clock);
                    // A re-plan (a retry) replaces what was left: what was copied stays
                    // copied, the rest is planned anew.
                    let e = s
                        .folders
                        .entry((crate::address::key(address), folder.to_owned()))
                        .or_default();
                    e[0] = e[2] + messages;
                    e[1] = e[3] + bytes;
                }
                Progress::Copied {
                    address,
                    folder,
                    messages,
                    bytes,
                } => {
                    let e = s
                        .folders
                        .entry((crate::address::key(address), folder.to_owned()))
                        .or_default();
                    e[2] += messages;
                    e[3] += bytes;
                    e[0] = e[0].max(e[2]);
                    e[1] = e[1].max(e[3]);
                }
                _ => {}
            }
        }
        self.inner.progress(event);
    }
}

fn summarize(s: &State, now: DateTime<Utc>) -> Option<Transfer> {
    let started = s.started?;
    let mut per: BTreeMap<&str, [u64; 4]> = BTreeMap::new();
    for ((address, _), f) in &s.folders {
        let m = per.entry(address).or_default();
        for i in 0..4 {
            m[i] += f[i];
        }
    }
    let mut total = [0u64; 4];
    let mailboxes = per
        .iter()
        .map(|(address, m)| {
            for i in 0..4 {
                total[i] += m[i];
            }
            MailboxTransfer {
                address: (*address).to_owned(),
                messages: m[2],
                of_messages: m[0],
                bytes: m[3],
                of_bytes: m[1],
            }
        })
        .collect();
    let elapsed = (now - started).num_milliseconds().max(1) as f64 / 1000.0;
    let rate = total[3] as f64 / elapsed;
    let left = total[1].saturating_sub(total[3]);
    let eta = (left > 0 && rate > 0.0)
        .then(|| now + TimeDelta::milliseconds((left as f64 / rate * 1000.0) as i64));
    Some(Transfer {
        messages: total[2],
        of_messages: total[0],
        bytes: total[3],
        of_bytes: total[1],
        percent: total[3]
            .saturating_mul(100)
            .checked_div(total[1])
            .map_or(100, |p| p.min(100) as u8),
        bytes_per_second: rate as u64,
        eta,
        since: started,
        mailboxes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::imap::engine::Silent;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().into()
    }

    #[test]
    fn copies_are_tallied_with_a_rate_and_an_eta() {
        fn start() -> DateTime<Utc> {
            t("2026-12-01T10:00:00Z")
        }
        let tally = Tally {
            clock: start,
            ..Tally::new(Arc::new(Silent))
        };
        assert_eq!(tally.transfer(start()), None);
        let planned = |address, folder, messages, bytes| Progress::Planned {
            address,
            folder,
            messages,
            bytes,
        };
        let copied = |address, folder, messages, bytes| Progress::Copied {
            address,
            folder,
            messages,
            bytes,
        };
        tally.progress(planned("A@x", "INBOX", 10, 1000));
        tally.progress(planned("b@x", "INBOX", 10, 3000));
        tally.progress(copied("a@x", "INBOX", 5, 500));
        tally.progress(copied("b@x", "INBOX", 5, 500));
        let p = tally.transfer(t("2026-12-01T10:00:10Z")).unwrap();
        assert_eq!((p.messages, p.of_messages), (10, 20));
        assert_eq!((p.bytes, p.of_bytes, p.percent), (1000, 4000, 25));
        assert_eq!(p.bytes_per_second, 100);
        // 3000 bytes left at 100 B/s.
        assert_eq!(p.eta, Some(t("2026-12-01T10:00:40Z")));
        assert_eq!(p.mailboxes[0].address, "a@x");
        assert_eq!(
            (p.mailboxes[0].messages, p.mailboxes[0].of_messages),
            (5, 10)
        );

        // A retry re-plans what is left: copied stays, the total is not counted twice.
        tally.progress(planned("a@x", "INBOX", 5, 500));
        let p = tally.transfer(t("2026-12-01T10:00:10Z")).unwrap();
        assert_eq!((p.messages, p.of_messages), (10, 20));
        tally.progress(copied("a@x", "INBOX", 5, 500));
        tally.progress(copied("b@x", "INBOX", 5, 2500));
        let p = tally.transfer(t("2026-12-01T10:00:20Z")).unwrap();
        assert_eq!((p.percent, p.eta), (100, None));
    }
}
