//! How far the copies under way have come: what the copy engine planned and copied, per
//! mailbox, as it reports it (messages and bytes from the servers' listings), with a rate
//! and an ETA. The loop writes it into the status at each replan (every few seconds while
//! copies run), so `mailshift status`, `kubectl get` and Argo CD show a percentage.

use crate::address::Address;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, TimeDelta, Utc};

use crate::engine::{Observer, Progress};
use crate::spec::{MailboxTransfer, Transfer};

/// Per mailbox, per folder: (planned messages, planned bytes, copied messages, copied bytes).
#[derive(Debug, Default)]
struct State {
    folders: BTreeMap<(Address, String), [u64; 4]>,
    started: Option<DateTime<Utc>>,
    /// Per mailbox: waiting until then, as a server asked.
    throttled: BTreeMap<Address, DateTime<Utc>>,
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
                        .entry((Address::of(address), folder.to_owned()))
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
                        .entry((Address::of(address), folder.to_owned()))
                        .or_default();
                    e[2] += messages;
                    e[3] += bytes;
                    e[0] = e[0].max(e[2]);
                    e[1] = e[1].max(e[3]);
                }
                Progress::Throttled { address, wait, .. } => {
                    let until =
                        (self.clock)() + TimeDelta::from_std(wait).unwrap_or(TimeDelta::zero());
                    s.throttled.insert(Address::of(address), until);
                }
                Progress::MailboxFinished { address, .. } => {
                    s.throttled.remove(&Address::of(address));
                }
                _ => {}
            }
        }
        self.inner.progress(event);
    }
}

/// The target of the `progress` log event: with `--log-format json`, `sync` logs one every
/// [`LOG_EVERY`] and one at the end, which is how the controller follows copy Jobs (it reads
/// their Pods' logs: the Jobs themselves have no access to the Kubernetes API).
pub const LOG_TARGET: &str = "mailshift::progress";
/// How often `sync` logs its progress.
pub const LOG_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// Logs `transfer` as a `progress` event (its JSON in the field `transfer`).
pub fn log(transfer: &Transfer) {
    if let Ok(json) = serde_json::to_string(transfer) {
        tracing::info!(target: LOG_TARGET, percent = transfer.percent, transfer = %json, "progress");
    }
}

/// The last `progress` event in `log`, JSON log lines as `tracing`'s JSON format writes
/// them; lines that are not such events are skipped.
pub fn from_log(log: &str) -> Option<Transfer> {
    log.lines().rev().find_map(|line| {
        let v: serde_json::Value = serde_json::from_str(line.trim()).ok()?;
        if v.get("target")?.as_str()? != LOG_TARGET {
            return None;
        }
        serde_json::from_str(v.get("fields")?.get("transfer")?.as_str()?).ok()
    })
}

fn summarize(s: &State, now: DateTime<Utc>) -> Option<Transfer> {
    let started = s.started?;
    let mut per: BTreeMap<&Address, [u64; 4]> = BTreeMap::new();
    for ((address, _), f) in &s.folders {
        let m = per.entry(address).or_default();
        for i in 0..4 {
            m[i] += f[i];
        }
    }
    let mailboxes: Vec<MailboxTransfer> = per
        .iter()
        .map(|(address, m)| MailboxTransfer {
            address: address.to_string(),
            messages: m[2],
            of_messages: m[0],
            bytes: m[3],
            of_bytes: m[1],
            throttled_until: s.throttled.get(address).copied().filter(|t| *t > now),
        })
        .collect();
    let copied: u64 = mailboxes.iter().map(|m| m.bytes).sum();
    let elapsed = (now - started).num_milliseconds().max(1) as f64 / 1000.0;
    Some(totals(
        mailboxes,
        (copied as f64 / elapsed) as u64,
        started,
        now,
    ))
}

/// One transfer from several: the copies of `current` runs (copy Jobs side by side, or the
/// controller's own), each mailbox as its newest report has it, and the mailboxes only
/// `earlier` (the last status) still knows, as they were. Rates of the current runs add up;
/// the ETA is what is left at that rate.
pub fn combine(
    earlier: Option<&Transfer>,
    current: &[Transfer],
    now: DateTime<Utc>,
) -> Option<Transfer> {
    if current.is_empty() {
        return earlier.cloned();
    }
    let mut per: BTreeMap<Address, MailboxTransfer> = BTreeMap::new();
    let reports = earlier.into_iter().chain(current);
    for m in reports.flat_map(|t| &t.mailboxes) {
        per.insert(Address::of(&m.address), m.clone());
    }
    let rate = current.iter().map(|t| t.bytes_per_second).sum();
    let since = current.iter().map(|t| t.since).min().unwrap_or(now);
    Some(totals(per.into_values().collect(), rate, since, now))
}

fn totals(
    mailboxes: Vec<MailboxTransfer>,
    bytes_per_second: u64,
    since: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Transfer {
    let sum = |f: fn(&MailboxTransfer) -> u64| mailboxes.iter().map(f).sum::<u64>();
    let (messages, of_messages) = (sum(|m| m.messages), sum(|m| m.of_messages));
    let (bytes, of_bytes) = (sum(|m| m.bytes), sum(|m| m.of_bytes));
    let throttled_until = mailboxes
        .iter()
        .filter_map(|m| m.throttled_until)
        .filter(|t| *t > now)
        .max();
    let left = of_bytes.saturating_sub(bytes);
    let eta = (left > 0 && bytes_per_second > 0).then(|| {
        now + TimeDelta::milliseconds((left as f64 / bytes_per_second as f64 * 1000.0) as i64)
    });
    Transfer {
        messages,
        of_messages,
        bytes,
        of_bytes,
        percent: bytes
            .saturating_mul(100)
            .checked_div(of_bytes)
            .map_or(100, |p| p.min(100) as u8),
        bytes_per_second,
        eta,
        since,
        mailboxes,
        throttled_until,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Silent;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().into()
    }

    #[test]
    fn a_throttled_mailbox_says_until_when_and_forgets_it_when_done() {
        fn start() -> DateTime<Utc> {
            t("2026-12-01T10:00:00Z")
        }
        let tally = Tally {
            clock: start,
            ..Tally::new(Arc::new(Silent))
        };
        tally.progress(Progress::Planned {
            address: "a@x",
            folder: "INBOX",
            messages: 10,
            bytes: 1000,
        });
        tally.progress(Progress::Throttled {
            address: "A@x",
            wait: std::time::Duration::from_secs(90),
            reason: "[THROTTLED]",
        });
        let until = t("2026-12-01T10:01:30Z");
        let p = tally.transfer(t("2026-12-01T10:00:05Z")).unwrap();
        assert_eq!(p.throttled_until, Some(until));
        assert_eq!(p.mailboxes[0].throttled_until, Some(until));
        // Once the instant is past, nothing is claimed.
        let p = tally.transfer(t("2026-12-01T10:02:00Z")).unwrap();
        assert_eq!(p.throttled_until, None);
        tally.progress(Progress::MailboxFinished {
            address: "a@x",
            perfect: true,
        });
        let p = tally.transfer(t("2026-12-01T10:00:05Z")).unwrap();
        assert_eq!(p.throttled_until, None);
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

    #[test]
    fn the_last_progress_event_of_a_log_is_read_back() {
        let transfer = Transfer {
            messages: 3,
            of_messages: 9,
            since: t("2026-12-01T10:00:00Z"),
            ..Transfer::default()
        };
        let event = |t: &Transfer| {
            serde_json::json!({
                "timestamp": "2026-12-01T10:00:10Z",
                "level": "INFO",
                "fields": { "message": "progress", "percent": 33, "transfer": serde_json::to_string(t).unwrap() },
                "target": LOG_TARGET,
            })
            .to_string()
        };
        let later = Transfer {
            messages: 6,
            ..transfer.clone()
        };
        let log = [
            event(&transfer),
            r#"{"level":"INFO","fields":{"message":"folder synced","transfer":"{}"},"target":"mailshift::imap"}"#.into(),
            event(&later),
            "not json".into(),
            r#"{"level":"INFO","fields":{"message":"folder synced"},"target":"mailshift::imap"}"#.into(),
        ]
        .join("\n");
        assert_eq!(from_log(&log), Some(later));
        assert_eq!(from_log("plain text\n"), None);
    }

    #[test]
    fn runs_side_by_side_add_up_and_finished_mailboxes_stay_counted() {
        let now = t("2026-12-01T10:01:00Z");
        let mailbox = |address: &str, bytes, of_bytes| MailboxTransfer {
            address: address.into(),
            messages: bytes / 100,
            of_messages: of_bytes / 100,
            bytes,
            of_bytes,
            throttled_until: None,
        };
        let run = |since, rate, mailboxes| Transfer {
            since: t(since),
            bytes_per_second: rate,
            mailboxes,
            ..Transfer::default()
        };
        assert_eq!(combine(None, &[], now), None);
        let earlier = run(
            "2026-12-01T09:00:00Z",
            7,
            vec![mailbox("done@x", 5000, 5000), mailbox("A@x", 100, 1000)],
        );
        let jobs = [
            run("2026-12-01T10:00:30Z", 100, vec![mailbox("a@x", 500, 1000)]),
            run("2026-12-01T10:00:00Z", 50, vec![mailbox("c@x", 0, 1500)]),
        ];
        let p = combine(Some(&earlier), &jobs, now).unwrap();
        let addresses: Vec<&str> = p.mailboxes.iter().map(|m| m.address.as_str()).collect();
        assert_eq!(
            addresses,
            ["a@x", "c@x", "done@x"],
            "newest report per mailbox"
        );
        assert_eq!((p.bytes, p.of_bytes, p.percent), (5500, 7500, 73));
        assert_eq!(p.bytes_per_second, 150);
        assert_eq!(p.since, t("2026-12-01T10:00:00Z"));
        // 2000 bytes left at 150 B/s.
        assert_eq!(p.eta, Some(now + TimeDelta::milliseconds(13_333)));
        assert_eq!(combine(Some(&earlier), &[], now), Some(earlier));
    }
}
