//! `limits` at run time: what each server's [`Governor`] lets through, shared by every
//! mailbox of the process. Logins wait for the login window, bodies for the message and
//! byte rates; the daily budgets either grant a batch (all of it or the messages that fit)
//! or say until when the copies pause ([`Pause`]), which the loop turns into a time gate.
//!
//! The budgets are charged when a batch is asked for, before its bytes move, and saved in
//! the state at once: a crash or a restart counts what was already read or written, never
//! less (a batch lost to a dropped connection stays counted, as the provider counted it).

mod ledger;
pub mod pace;

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};

pub use ledger::{Ledger, Usage};
use pace::{LoginWindow, Pacer};

use crate::spec::{Direction, EffectiveLimits};

pub use crate::spec::Pause;

/// Saves the budgets' records (the state directory, or nowhere).
pub type SaveUsage = Box<dyn Fn(&Usage) -> anyhow::Result<()> + Send + Sync>;

/// The budgets' records of both servers, loaded from the state and saved after each change.
pub struct Budgets {
    usage: Mutex<Usage>,
    save: SaveUsage,
}

impl std::fmt::Debug for Budgets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Budgets")
    }
}

impl Budgets {
    pub fn new(usage: Usage, save: SaveUsage) -> Arc<Budgets> {
        Arc::new(Budgets {
            usage: Mutex::new(usage),
            save,
        })
    }

    /// Budgets that start empty and are not kept.
    pub fn unsaved() -> Arc<Budgets> {
        Budgets::new(Usage::default(), Box::new(|_| Ok(())))
    }

    fn with<T>(&self, f: impl FnOnce(&mut Usage) -> T) -> T {
        f(&mut self.usage.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// Whose budget an entry of a side's ledgers is: the whole server's, or one mailbox's.
const SERVER: &str = "";

/// One server's limits in force.
#[derive(Debug)]
pub struct Governor {
    direction: Direction,
    limits: EffectiveLimits,
    messages: Option<Pacer>,
    bytes: Option<Pacer>,
    logins: Option<LoginWindow>,
    budgets: Arc<Budgets>,
}

impl Governor {
    pub fn new(direction: Direction, limits: EffectiveLimits, budgets: Arc<Budgets>) -> Governor {
        Governor {
            direction,
            messages: limits
                .messages_per_second
                .map(|n| Pacer::per_second(n.into())),
            bytes: limits.bytes_per_second.map(Pacer::per_second),
            logins: limits.logins_per_minute.map(LoginWindow::per_minute),
            limits,
            budgets,
        }
    }

    /// No limits at all.
    pub fn unlimited(direction: Direction) -> Arc<Governor> {
        Arc::new(Governor::new(
            direction,
            EffectiveLimits::default(),
            Budgets::unsaved(),
        ))
    }

    pub fn limits(&self) -> &EffectiveLimits {
        &self.limits
    }

    /// A connector's slots for `max` (its `maxConnections`): the smaller of it and
    /// `limits.connections`.
    pub fn connection_slots(&self, max: usize) -> usize {
        self.limits
            .connections
            .map_or(max, |n| max.min(usize::from(n)))
    }

    /// Waits until a login is allowed (`loginsPerMinute`), and takes it.
    pub async fn login(&self) {
        if let Some(w) = &self.logins {
            pace::until(w.reserve(std::time::Instant::now())).await;
        }
    }

    /// Waits until `messages` messages of `bytes` bytes may move (the rates), and takes
    /// them.
    pub async fn pace(&self, messages: usize, bytes: u64) {
        let now = std::time::Instant::now();
        let a = self
            .messages
            .as_ref()
            .map(|p| p.reserve(messages as u64, now));
        let b = self.bytes.as_ref().map(|p| p.reserve(bytes, now));
        if let Some(at) = a.into_iter().chain(b).max() {
            pace::until(at).await;
        }
    }

    /// The largest batch the rates make sensible: a second's worth, so that pacing stays
    /// smooth instead of a batch's burst and a long wait.
    pub fn batch_cap(&self) -> (Option<u64>, Option<usize>) {
        (
            self.limits.bytes_per_second,
            self.limits.messages_per_second.map(|n| n as usize),
        )
    }

    /// How many of `sizes` (a batch's messages, in order) this server's daily budgets
    /// grant `mailbox` now, without spending anything; or the pause, when not even the
    /// first message fits.
    pub fn grant(&self, mailbox: &str, sizes: &[u64], now: DateTime<Utc>) -> Result<usize, Pause> {
        let budgets = self.budgets_of(mailbox);
        if budgets.is_empty() {
            return Ok(sizes.len());
        }
        self.budgets.with(|usage| {
            let ledgers = self.ledgers(usage);
            let none = Ledger::default();
            let mut n = sizes.len();
            let mut pause: Option<Pause> = None;
            for (key, limit, what) in budgets {
                let ledger = ledgers.get(&key).unwrap_or(&none);
                match ledger.grant(limit, sizes, now) {
                    Ok(k) => n = n.min(k),
                    Err(until) if pause.as_ref().is_none_or(|p| until > p.until) => {
                        pause = Some(Pause { until, what })
                    }
                    Err(_) => {}
                }
            }
            match pause {
                Some(p) => Err(p),
                None => Ok(n),
            }
        })
    }

    /// Records `bytes` of `mailbox` as read or written now, and saves the records.
    pub fn spend(&self, mailbox: &str, bytes: u64, now: DateTime<Utc>) {
        let budgets = self.budgets_of(mailbox);
        if budgets.is_empty() {
            return;
        }
        let saved = self.budgets.with(|usage| {
            let ledgers = self.ledgers(usage);
            for (key, _, _) in budgets {
                ledgers.entry(key).or_default().spend(bytes, now);
            }
            ledgers.retain(|_, l| !l.is_empty());
            (self.budgets.save)(usage)
        });
        if let Err(e) = saved {
            // The run goes on with the budget counted in memory; only a restart before the
            // next save could forget these bytes.
            tracing::warn!(error = %e, "cannot save the daily budgets' records");
        }
    }

    fn ledgers<'u>(
        &self,
        usage: &'u mut Usage,
    ) -> &'u mut std::collections::BTreeMap<String, Ledger> {
        match self.direction {
            Direction::Download => &mut usage.source,
            Direction::Upload => &mut usage.destination,
        }
    }

    /// The daily budgets that hold for `mailbox`: ledger key, limit, and what to call it.
    fn budgets_of(&self, mailbox: &str) -> Vec<(String, u64, String)> {
        let server = match self.direction {
            Direction::Download => "the old server's",
            Direction::Upload => "the new server's",
        };
        let mut out = Vec::new();
        if let Some(limit) = self.limits.bytes_per_day {
            out.push((
                SERVER.to_owned(),
                limit,
                format!(
                    "{server} daily budget of {}",
                    crate::text::human_bytes(limit)
                ),
            ));
        }
        if let Some(limit) = self.limits.mailbox_bytes_per_day {
            out.push((
                crate::address::Address::of(mailbox).to_string(),
                limit,
                format!(
                    "{server} daily budget of {} for each mailbox",
                    crate::text::human_bytes(limit)
                ),
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap()
    }

    fn governor(limits: EffectiveLimits) -> (Governor, Arc<Mutex<Vec<Usage>>>) {
        let saved = Arc::new(Mutex::new(Vec::new()));
        let log = saved.clone();
        let budgets = Budgets::new(
            Usage::default(),
            Box::new(move |u| {
                log.lock().unwrap().push(u.clone());
                Ok(())
            }),
        );
        (Governor::new(Direction::Download, limits, budgets), saved)
    }

    #[test]
    fn the_server_budget_and_each_mailbox_budget_both_hold() {
        let (g, saved) = governor(EffectiveLimits {
            bytes_per_day: Some(250),
            mailbox_bytes_per_day: Some(100),
            ..EffectiveLimits::default()
        });
        assert_eq!(g.grant("a@x", &[60, 60], t(0)), Ok(1));
        g.spend("a@x", 60, t(0));
        assert_eq!(
            g.grant("A@X", &[60], t(1)).unwrap_err().until,
            t(0) + ledger::window()
        );
        g.spend("b@x", 100, t(2));
        // 160 of the server's 250 spent: c@x may have 90 of its 100.
        assert_eq!(g.grant("c@x", &[50, 40, 10], t(3)), Ok(2));
        g.spend("c@x", 90, t(3));
        let p = g.grant("d@x", &[1], t(4)).unwrap_err();
        assert!(
            p.what.contains("old server's daily budget of 250 B"),
            "{}",
            p.what
        );
        assert!(!p.what.contains("each mailbox"), "{}", p.what);
        let last = saved.lock().unwrap().last().cloned().unwrap();
        assert_eq!(last.source[""].used(t(4)), 250);
        assert_eq!(last.source["a@x"].used(t(4)), 60);
    }

    #[test]
    fn without_budgets_everything_is_granted_and_nothing_saved() {
        let (g, saved) = governor(EffectiveLimits::default());
        assert_eq!(g.grant("a@x", &[1 << 40, 1], t(0)), Ok(2));
        g.spend("a@x", 1 << 40, t(0));
        assert!(saved.lock().unwrap().is_empty());
    }
}
