//! When to try again: which failures are worth a retry, and how long to wait before it
//! (exponential backoff with jitter, so that many mailboxes cut off together do not all
//! reconnect in the same instant).

use std::time::Duration;

use crate::imap::conn::ConnectError;
use crate::imap::folders::MappingError;
use crate::imap::proto::ImapError;

/// How often and how patiently a mailbox is retried after losing a connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The first wait.
    pub initial: Duration,
    /// No wait is longer than this.
    pub max: Duration,
    /// Consecutive failures without progress after which the mailbox is given up (a
    /// failure after a copied batch or a finished folder starts the count again).
    pub attempts: u32,
}

impl Default for RetryPolicy {
    /// 0.5 s, 1 s, 2 s ... up to 30 s between attempts, 10 attempts: a server that is back
    /// within about three minutes loses nothing.
    fn default() -> Self {
        RetryPolicy {
            initial: Duration::from_millis(500),
            max: Duration::from_secs(30),
            attempts: 10,
        }
    }
}

impl RetryPolicy {
    /// The wait before retry number `attempt` (1-based): `initial · 2^(attempt-1)`, capped
    /// at `max`, then scaled by a random factor in [0.5, 1] ("equal jitter").
    pub fn delay(&self, attempt: u32, jitter: &mut Jitter) -> Duration {
        let exp = attempt.saturating_sub(1).min(30);
        let full = self
            .initial
            .saturating_mul(1u32 << exp)
            .min(self.max)
            .max(Duration::from_millis(1));
        let half = full / 2;
        half + full.mul_f64(jitter.unit() * 0.5)
    }
}

/// A small xorshift generator for jitter: not for secrets, only to spread reconnects.
#[derive(Clone, Debug)]
pub struct Jitter(u64);

impl Jitter {
    /// Seeded from the clock and `salt` (e.g. the mailbox address), so that mailboxes differ.
    pub fn new(salt: &str) -> Jitter {
        let mut seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        for b in salt.bytes() {
            seed = seed.rotate_left(5) ^ u64::from(b);
        }
        Jitter(seed | 1)
    }

    /// A number in [0, 1).
    pub fn unit(&mut self) -> f64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        (x >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// What stopped an attempt at a mailbox.
#[derive(Debug, thiserror::Error)]
pub enum AttemptError {
    #[error(transparent)]
    Connect(#[from] ConnectError),
    #[error(transparent)]
    Imap(#[from] ImapError),
    #[error(transparent)]
    Mapping(#[from] MappingError),
}

impl AttemptError {
    /// Worth another attempt: the network, the server restarting. A refused login, a TLS
    /// verification failure, a folder mapping conflict are not (they would fail again).
    pub fn is_transient(&self) -> bool {
        match self {
            AttemptError::Connect(e) => e.is_transient(),
            AttemptError::Imap(e) => e.is_transient(),
            AttemptError::Mapping(_) => false,
        }
    }

    /// The server stopped answering. Each such attempt costs a whole timeout, so fewer of
    /// them are made than after a quick failure ([`TIMEOUT_ATTEMPTS`]).
    pub fn is_timeout(&self) -> bool {
        match self {
            AttemptError::Connect(e) => e.is_timeout(),
            AttemptError::Imap(e) => e.is_timeout(),
            AttemptError::Mapping(_) => false,
        }
    }

    /// The server asked to slow down: `Some(wait)`, the wait it suggested if it did.
    pub fn throttled(&self) -> Option<Option<Duration>> {
        match self {
            AttemptError::Imap(e) => e.throttled(),
            _ => None,
        }
    }

    /// A daily budget is spent: the mailbox waits, it has not failed.
    pub fn paused(&self) -> Option<&crate::limits::Pause> {
        match self {
            AttemptError::Imap(e) => e.paused(),
            _ => None,
        }
    }

    /// The server closed the connection after it was sent the credentials
    /// ([`LOGIN_CUT_ATTEMPTS`]).
    pub fn is_login_cut(&self) -> bool {
        matches!(self, AttemptError::Connect(ConnectError::LoginCut { .. }))
    }
}

/// Throttling answers in a row, without progress, that are waited out before they count as
/// failures: a provider that keeps refusing for longer is treated like one that fails.
pub const THROTTLE_ATTEMPTS: u32 = 20;
/// No wait for a throttling server is longer than this, whatever it suggests.
pub const MAX_THROTTLE_WAIT: Duration = Duration::from_secs(15 * 60);

/// Attempts in a row that end in a timeout, without progress, before a mailbox is given up:
/// a server silent for three whole timeouts is not coming back soon, and each costs minutes.
pub const TIMEOUT_ATTEMPTS: u32 = 3;

/// Logins in a row the server cuts off after the credentials were sent: a server that
/// counts those as failed logins may lock the account, so the password is not sent again
/// after the second.
pub const LOGIN_CUT_ATTEMPTS: u32 = 2;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_exponentially_with_jitter_and_a_cap() {
        let p = RetryPolicy {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(2),
            attempts: 5,
        };
        let mut j = Jitter::new("alice@example.com");
        for (attempt, full) in [
            (1, 100),
            (2, 200),
            (3, 400),
            (4, 800),
            (5, 1600),
            (6, 2000),
            (40, 2000),
        ] {
            for _ in 0..50 {
                let d = p.delay(attempt, &mut j).as_millis() as u64;
                assert!(d >= full / 2 && d <= full, "attempt {attempt}: {d} ms");
            }
        }
    }

    #[test]
    fn jitter_is_uniformish() {
        let mut j = Jitter::new("x");
        let samples: Vec<f64> = (0..10_000).map(|_| j.unit()).collect();
        assert!(samples.iter().all(|x| (0.0..1.0).contains(x)));
        let mean = samples.iter().sum::<f64>() / samples.len() as f64;
        assert!((mean - 0.5).abs() < 0.05, "{mean}");
    }
}
