//! Daily budgets: what was read from or written to a server in the last 24 hours, per
//! mailbox and in all, and when a spent budget has room again. Pure: the instants come from
//! the caller, the records are saved by the caller.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

/// A budget's window: it holds for any 24 hours, not per calendar day (providers do not
/// say when their day starts).
pub fn window() -> TimeDelta {
    TimeDelta::hours(24)
}

/// Entries closer together than this are kept as one, dated at the later instant: a
/// record of a day stays small, and a merged entry is freed no earlier than its parts.
fn merge_within() -> TimeDelta {
    TimeDelta::seconds(60)
}

/// Bytes spent at an instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Spent {
    pub at: DateTime<Utc>,
    pub bytes: u64,
}

/// What one budget spent in the last 24 hours, oldest first.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Ledger(Vec<Spent>);

impl Ledger {
    pub fn used(&self, now: DateTime<Utc>) -> u64 {
        self.live(now).map(|s| s.bytes).sum()
    }

    fn live(&self, now: DateTime<Utc>) -> impl Iterator<Item = &Spent> {
        self.0.iter().filter(move |s| s.at + window() > now)
    }

    /// How many of `sizes` (in order) fit into `limit` now, or, when not even the first
    /// does, the instant enough of the spent bytes leave the window for it. A message
    /// larger than the whole budget has it to itself, once nothing else is spent.
    pub fn grant(
        &self,
        limit: u64,
        sizes: &[u64],
        now: DateTime<Utc>,
    ) -> Result<usize, DateTime<Utc>> {
        let used = self.used(now);
        let mut room = limit.saturating_sub(used);
        let mut n = 0;
        for &size in sizes {
            if size > room {
                break;
            }
            room -= size;
            n += 1;
        }
        if n > 0 || sizes.is_empty() {
            return Ok(n);
        }
        if used == 0 {
            return Ok(1);
        }
        let need = sizes[0].min(limit);
        let mut left = used;
        for s in self.live(now) {
            left -= s.bytes;
            if left + need <= limit {
                return Err(s.at + window());
            }
        }
        // Unreachable: once every entry has left, `left` is 0 and `need <= limit`.
        Err(now + window())
    }

    /// Records `bytes` spent at `now`, dropping what left the window.
    pub fn spend(&mut self, bytes: u64, now: DateTime<Utc>) {
        self.0.retain(|s| s.at + window() > now);
        match self.0.last_mut() {
            Some(last) if now - last.at < merge_within() && now >= last.at => {
                last.bytes += bytes;
                last.at = now;
            }
            _ => self.0.push(Spent { at: now, bytes }),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Every budget's ledger, as saved in the state: per side (`source`, `destination`), the
/// whole server under `""` and each mailbox under its address.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub source: BTreeMap<String, Ledger>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub destination: BTreeMap<String, Ledger>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap()
    }

    #[test]
    fn a_budget_grants_what_fits_and_says_when_room_comes_back() {
        let mut l = Ledger::default();
        assert_eq!(l.grant(100, &[40, 40, 40], t(0)), Ok(2));
        l.spend(80, t(0));
        l.spend(15, t(3_600));
        // 5 left: a 10-byte message waits until the first 80 leave the window.
        assert_eq!(l.grant(100, &[10], t(7_200)), Err(t(0) + window()));
        assert_eq!(l.grant(100, &[5, 1], t(7_200)), Ok(1));
        // A second after that, they have.
        assert_eq!(l.grant(100, &[10, 70, 10], t(86_401)), Ok(2));
        // 90 bytes wait for both entries to leave.
        l.spend(10, t(86_401));
        assert_eq!(l.grant(100, &[90], t(86_402)), Err(t(3_600) + window()));
    }

    #[test]
    fn a_message_larger_than_the_budget_waits_until_nothing_is_spent() {
        let mut l = Ledger::default();
        assert_eq!(l.grant(100, &[500], t(0)), Ok(1));
        l.spend(500, t(0));
        assert_eq!(l.grant(100, &[500], t(10)), Err(t(0) + window()));
        assert_eq!(l.grant(100, &[1], t(10)), Err(t(0) + window()));
    }

    #[test]
    fn entries_within_a_minute_merge_at_the_later_instant() {
        let mut l = Ledger::default();
        l.spend(10, t(0));
        l.spend(10, t(30));
        l.spend(10, t(200));
        assert_eq!(l.0.len(), 2);
        assert_eq!(
            l.0[0],
            Spent {
                at: t(30),
                bytes: 20
            }
        );
        l.spend(1, t(30) + window());
        assert_eq!(l.used(t(30) + window()), 11);
    }
}
