//! Pacing: a rate over time (messages or bytes per second) and a number of logins in any
//! minute, shared by every mailbox of a run. Each reservation says when its work may
//! start; the callers wait until then outside the lock.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Work a rate may run ahead of its average: a second's worth, so that a short pause
/// (a folder switch) is made up for, but no more.
const BURST: Duration = Duration::from_secs(1);

/// A rate of `per_second` units, by the generic cell rate algorithm: each reservation
/// moves a theoretical instant forward by its cost, and may start once that instant is
/// less than [`BURST`] ahead of now. Over any interval of `t`, at most
/// `per_second · (t + 1 s)` units start, plus the last reservation's.
#[derive(Debug)]
pub struct Pacer {
    per_unit: f64,
    due: Mutex<Option<Instant>>,
}

impl Pacer {
    pub fn per_second(units: u64) -> Pacer {
        Pacer {
            per_unit: 1.0 / units.max(1) as f64,
            due: Mutex::new(None),
        }
    }

    /// Reserves `cost` units at `now`; returns when they may start.
    pub fn reserve(&self, cost: u64, now: Instant) -> Instant {
        let mut due = self.due.lock().unwrap_or_else(|e| e.into_inner());
        let at = due.map_or(now, |d| d.max(now));
        *due = Some(at + Duration::from_secs_f64(self.per_unit * cost as f64));
        at.checked_sub(BURST).map_or(now, |start| start.max(now))
    }
}

/// At most `per_minute` logins in any 60 seconds: the instants of the last ones are kept,
/// and a login waits until the oldest of them is a minute old.
#[derive(Debug)]
pub struct LoginWindow {
    per_minute: usize,
    recent: Mutex<VecDeque<Instant>>,
}

const MINUTE: Duration = Duration::from_secs(60);

impl LoginWindow {
    pub fn per_minute(n: u32) -> LoginWindow {
        LoginWindow {
            per_minute: (n as usize).max(1),
            recent: Mutex::new(VecDeque::new()),
        }
    }

    /// Reserves a login at `now`; returns when it may be made.
    pub fn reserve(&self, now: Instant) -> Instant {
        let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        let at = if recent.len() < self.per_minute {
            now
        } else {
            let oldest = recent.pop_front().expect("the window is full");
            (oldest + MINUTE).max(now)
        };
        recent.push_back(at);
        at
    }
}

/// Waits until `at` (at once when it has passed).
pub async fn until(at: Instant) {
    if at > Instant::now() {
        tokio::time::sleep_until(at.into()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rate_lets_a_second_run_ahead_and_then_spaces_the_work() {
        let p = Pacer::per_second(100);
        let t0 = Instant::now();
        // A second's worth goes at once.
        assert_eq!(p.reserve(50, t0), t0);
        assert_eq!(p.reserve(50, t0), t0);
        // Then each unit costs 10 ms.
        assert_eq!(p.reserve(100, t0), t0);
        let next = p.reserve(10, t0);
        assert_eq!(next - t0, Duration::from_secs(1));
        // Over 10 s of steady asking, no more than 11 s worth starts.
        let p = Pacer::per_second(100);
        let end = t0 + Duration::from_secs(10);
        let (mut started, mut now) = (0, t0);
        loop {
            now = p.reserve(7, now).max(now);
            if now >= end {
                break;
            }
            started += 7;
        }
        assert!((1_000..=1_100 + 7).contains(&started), "{started}");
    }

    #[test]
    fn an_idle_rate_does_not_save_up_more_than_a_second() {
        let p = Pacer::per_second(10);
        let t0 = Instant::now();
        assert_eq!(p.reserve(10, t0), t0);
        // A minute idle: still only the second ahead (and the one now) go at once.
        let later = t0 + Duration::from_secs(60);
        assert_eq!(p.reserve(10, later), later);
        assert_eq!(p.reserve(10, later), later);
        assert_eq!(p.reserve(10, later), later + Duration::from_secs(1));
    }

    #[test]
    fn logins_per_minute_hold_in_any_sixty_seconds() {
        let w = LoginWindow::per_minute(3);
        let t0 = Instant::now();
        let at: Vec<Instant> = (0..7)
            .map(|i| w.reserve(t0 + Duration::from_secs(i)))
            .collect();
        assert_eq!(
            &at[..3],
            &[t0, t0 + Duration::from_secs(1), t0 + Duration::from_secs(2)]
        );
        assert_eq!(at[3], t0 + MINUTE);
        assert_eq!(at[4], t0 + MINUTE + Duration::from_secs(1));
        assert_eq!(at[6], t0 + MINUTE * 2);
        for (i, a) in at.iter().enumerate() {
            let within = at.iter().filter(|b| **b >= *a && **b < *a + MINUTE).count();
            assert!(within <= 3, "login {i}: {within} in a minute");
        }
    }
}
