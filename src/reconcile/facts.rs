//! What the loop has seen on the servers, each fact with the instant it was seen, and which
//! facts are due to be looked at again.
//!
//! Observing everything before every step made a migration of N mailboxes cost about 2N²
//! logins per server. Here a fact is observed when it may have changed:
//! - when it was never seen (a new loop, a new generation of the spec: everything once);
//! - after a step that touched it (a forwarding switched, a relay or a zone written);
//! - when a gate of the last plan waits on it (propagation, an unreadable relay or zone),
//!   at most every [`Ages::recheck`];
//! - when it is older than its age in [`Ages`] (a successful login, a relay, the zone may
//!   change behind mailshift's back; a refused login is looked at again soon, because a
//!   person is expected to fix it, but not so often that a server locks the account).
//!
//! A copy or a verification logs in on both servers, so its success is itself a fresh
//! login check, and its failure makes the next pass check the logins again.
//!
//! The facts are a cache: a restart starts with none and observes everything once, so
//! the servers stay the truth.

use crate::address::Address;
use crate::plan::{
    AccountsStep, DavObserved, DavStep, DirectoryState, DnsChange, ForwardingChange, MailStep,
    OwnStep, ProbeStep, RelayChange, SieveState, SieveStep,
};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

use super::LoginCheck;
use crate::plan::{DnsState, ForwardingSides, Login, RelayState, Step, Waiting};

/// How old each kind of fact may grow before it is observed again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ages {
    /// Logins that worked.
    pub login_ok: Duration,
    /// Logins that were refused: a person may have fixed the password meanwhile.
    pub login_failed: Duration,
    /// Temporary forwarding scripts.
    pub forwarding: Duration,
    /// The mailboxes' own Sieve scripts, compared on both servers.
    pub sieve: Duration,
    /// The mailboxes' address books and calendars, compared on both servers.
    pub dav: Duration,
    /// Gateway and fallback relays.
    pub relay: Duration,
    /// The zone on every authoritative nameserver.
    pub dns: Duration,
    /// A fact a gate waits on (propagation, an unreadable relay or zone).
    pub recheck: Duration,
}

impl Default for Ages {
    fn default() -> Self {
        Ages {
            login_ok: Duration::from_secs(3600),
            login_failed: Duration::from_secs(60),
            forwarding: Duration::from_secs(600),
            sieve: Duration::from_secs(600),
            dav: Duration::from_secs(600),
            relay: Duration::from_secs(300),
            dns: Duration::from_secs(300),
            recheck: Duration::from_secs(15),
        }
    }
}

/// Never seen, or seen at least `age` ago.
fn stale<T>(seen: Option<&Seen<T>>, age: Duration, now: DateTime<Utc>) -> bool {
    seen.is_none_or(|s| s.older_than(age, now))
}

/// A fact and the instant it was observed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seen<T> {
    pub value: T,
    pub at: DateTime<Utc>,
}

impl<T> Seen<T> {
    fn older_than(&self, age: Duration, now: DateTime<Utc>) -> bool {
        now - self.at >= TimeDelta::from_std(age).unwrap_or(TimeDelta::MAX)
    }
}

/// Everything observed so far, for one generation of one migration.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Facts {
    /// The generation the facts were observed for; another one starts from nothing.
    pub generation: i64,
    /// Per lower-cased address.
    pub logins: BTreeMap<Address, Seen<LoginCheck>>,
    pub forwarding: BTreeMap<Address, Seen<ForwardingSides>>,
    pub sieve: BTreeMap<Address, Seen<SieveState>>,
    pub dav: BTreeMap<Address, Seen<DavObserved>>,
    pub gateway: Option<Seen<RelayState>>,
    pub fallback: Option<Seen<RelayState>>,
    pub dns: Option<Seen<DnsState>>,
    pub directory: Option<Seen<DirectoryState>>,
}

/// What the next pass must observe.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Due {
    /// Mailboxes whose logins are checked (as given, not lower-cased).
    pub logins: Vec<String>,
    /// Mailboxes whose forwarding scripts are read.
    pub forwarding: Vec<String>,
    /// Mailboxes whose Sieve scripts are compared.
    pub sieve: Vec<String>,
    /// Mailboxes whose address books and calendars are compared.
    pub dav: Vec<String>,
    pub gateway: bool,
    pub fallback: bool,
    pub dns: bool,
    /// The user databases and alias maps (`spec.accounts`).
    pub directory: bool,
}

impl Due {
    pub fn is_empty(&self) -> bool {
        self.logins.is_empty()
            && self.forwarding.is_empty()
            && self.sieve.is_empty()
            && self.dav.is_empty()
            && !self.gateway
            && !self.fallback
            && !self.dns
            && !self.directory
    }
}

/// Which parts of the spec exist, and so can be observed at all.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sections {
    pub forwarding: bool,
    pub sieve: bool,
    pub dav: bool,
    pub gateway: bool,
    pub fallback: bool,
    pub dns: bool,
    pub directory: bool,
}

impl Facts {
    /// Forget everything if `generation` is not the one the facts were seen for.
    pub fn adopt(&mut self, generation: i64) {
        if self.generation != generation {
            *self = Facts {
                generation,
                ..Facts::default()
            };
        }
    }

    /// The facts to observe before planning at `now`, for these mailboxes and sections,
    /// given the gates the last plan waited on.
    pub fn due(
        &self,
        addresses: &[String],
        sections: Sections,
        waiting: &[Waiting],
        ages: &Ages,
        now: DateTime<Utc>,
    ) -> Due {
        let mut recheck_forwarding = BTreeSet::new();
        let mut recheck_sieve = BTreeSet::new();
        let mut recheck_dav = BTreeSet::new();
        let (mut gateway, mut fallback, mut dns, mut directory) = (false, false, false, false);
        for w in waiting {
            match w {
                Waiting::Propagation { .. } | Waiting::DnsUnreadable { .. } => {
                    dns |= stale(self.dns.as_ref(), ages.recheck, now);
                }
                Waiting::RelayUnreadable { relay, .. } if relay == "gateway" => {
                    gateway |= stale(self.gateway.as_ref(), ages.recheck, now);
                }
                Waiting::RelayUnreadable { .. } => {
                    fallback |= stale(self.fallback.as_ref(), ages.recheck, now);
                }
                Waiting::AccountsUnreadable { .. } | Waiting::AliasesMissing { .. } => {
                    directory |= stale(self.directory.as_ref(), ages.recheck, now);
                }
                Waiting::ForwardingUnreadable { address, .. } => {
                    let key = Address::of(address);
                    if stale(self.forwarding.get(&key), ages.recheck, now) {
                        recheck_forwarding.insert(key);
                    }
                }
                Waiting::SieveUnreadable { address, .. } => {
                    let key = Address::of(address);
                    if stale(self.sieve.get(&key), ages.recheck, now) {
                        recheck_sieve.insert(key);
                    }
                }
                Waiting::DavUnreadable { address, .. } => {
                    let key = Address::of(address);
                    if stale(self.dav.get(&key), ages.recheck, now) {
                        recheck_dav.insert(key);
                    }
                }
                _ => {}
            }
        }
        let logins = addresses
            .iter()
            .filter(|a| match self.logins.get(&Address::of(a)) {
                None => true,
                Some(s) => {
                    let ok = s.value.0 == Login::Ok && s.value.1 == Login::Ok;
                    s.older_than(if ok { ages.login_ok } else { ages.login_failed }, now)
                }
            })
            .cloned()
            .collect();
        let forwarding = if sections.forwarding {
            addresses
                .iter()
                .filter(|a| {
                    let key = Address::of(a);
                    recheck_forwarding.contains(&key)
                        || stale(self.forwarding.get(&key), ages.forwarding, now)
                })
                .cloned()
                .collect()
        } else {
            Vec::new()
        };
        let sieve = if sections.sieve {
            addresses
                .iter()
                .filter(|a| {
                    let key = Address::of(a);
                    recheck_sieve.contains(&key) || stale(self.sieve.get(&key), ages.sieve, now)
                })
                .cloned()
                .collect()
        } else {
            Vec::new()
        };
        let dav = if sections.dav {
            addresses
                .iter()
                .filter(|a| {
                    let key = Address::of(a);
                    recheck_dav.contains(&key) || stale(self.dav.get(&key), ages.dav, now)
                })
                .cloned()
                .collect()
        } else {
            Vec::new()
        };
        Due {
            logins,
            forwarding,
            sieve,
            dav,
            gateway: sections.gateway && (gateway || stale(self.gateway.as_ref(), ages.relay, now)),
            fallback: sections.fallback
                && (fallback || stale(self.fallback.as_ref(), ages.relay, now)),
            dns: sections.dns && (dns || stale(self.dns.as_ref(), ages.dns, now)),
            directory: sections.directory
                && (directory || stale(self.directory.as_ref(), ages.relay, now)),
        }
    }

    /// A copy or verification of `address` logged in on both servers at `at`.
    pub fn logins_proven(&mut self, address: &str, at: DateTime<Utc>) {
        self.logins.insert(
            Address::of(address),
            Seen {
                value: (Login::Ok, Login::Ok),
                at,
            },
        );
    }

    /// `step` was carried out (`ok`) or failed at `at`: what it touched is observed again.
    pub fn touched(&mut self, step: &Step, ok: bool, at: DateTime<Utc>) {
        let addresses: Vec<&str> = match step {
            Step::Mail(MailStep::FinalSync { addresses })
            | Step::Mail(MailStep::DeltaSync { addresses }) => {
                addresses.iter().map(String::as_str).collect()
            }
            Step::Mail(MailStep::InitialSync { address })
            | Step::Mail(MailStep::Resync { address, .. })
            | Step::Mail(MailStep::Verify { address }) => vec![address.as_str()],
            Step::Forwarding(ForwardingChange::On { address, .. })
            | Step::Forwarding(ForwardingChange::Off { address, .. }) => {
                self.forwarding.remove(&Address::of(address));
                Vec::new()
            }
            Step::Sieve(SieveStep::CopySieve { address }) => {
                self.sieve.remove(&Address::of(address));
                Vec::new()
            }
            Step::Dav(DavStep::CopyDav { address }) => {
                self.dav.remove(&Address::of(address));
                Vec::new()
            }
            Step::Relay(RelayChange::GatewayOn { .. }) => {
                self.gateway = None;
                Vec::new()
            }
            Step::Relay(RelayChange::FallbackRelay { .. })
            | Step::Relay(RelayChange::FallbackOff { .. }) => {
                self.fallback = None;
                Vec::new()
            }
            Step::Dns(DnsChange::LowerTtl { .. })
            | Step::Dns(DnsChange::SpfAuthorize { .. })
            | Step::Dns(DnsChange::SwitchMx { .. })
            | Step::Dns(DnsChange::PublishSrv { .. })
            | Step::Dns(DnsChange::SpfRevoke { .. })
            | Step::Dns(DnsChange::RestoreTtl { .. }) => {
                self.dns = None;
                Vec::new()
            }
            Step::Accounts(AccountsStep::ProvisionAccounts { accounts, .. }) => {
                self.directory = None;
                // The logins of the accounts written are what proves them.
                for a in accounts {
                    self.logins.remove(&Address::of(a));
                }
                Vec::new()
            }
            Step::Probe(ProbeStep { .. }) | Step::Own(OwnStep::MarkComplete) => Vec::new(),
        };
        for a in addresses {
            if ok {
                self.logins_proven(a, at);
            } else {
                // The failure may be a refused login: check before trying again.
                self.logins.remove(&Address::of(a));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    const NOW: &str = "2026-06-01T12:00:00Z";

    fn addresses() -> Vec<String> {
        vec!["a@example.com".into(), "B@example.com".into()]
    }

    fn all() -> Sections {
        Sections {
            forwarding: true,
            sieve: true,
            dav: true,
            gateway: true,
            fallback: true,
            dns: true,
            directory: true,
        }
    }

    fn seen_everything(at: DateTime<Utc>) -> Facts {
        let mut f = Facts::default();
        for a in addresses() {
            f.logins_proven(&a, at);
            f.forwarding.insert(
                Address::of(&a),
                Seen {
                    value: ForwardingSides::default(),
                    at,
                },
            );
            f.sieve.insert(
                Address::of(&a),
                Seen {
                    value: SieveState::default(),
                    at,
                },
            );
            f.dav.insert(
                Address::of(&a),
                Seen {
                    value: DavObserved::default(),
                    at,
                },
            );
        }
        f.gateway = Some(Seen {
            value: RelayState::Off,
            at,
        });
        f.fallback = Some(Seen {
            value: RelayState::Off,
            at,
        });
        f.dns = Some(Seen {
            value: DnsState::default(),
            at,
        });
        f.directory = Some(Seen {
            value: DirectoryState::default(),
            at,
        });
        f
    }

    #[test]
    fn accounts_written_are_observed_again_with_their_logins() {
        let mut f = seen_everything(t(NOW) - TimeDelta::seconds(10));
        f.touched(
            &Step::Accounts(AccountsStep::ProvisionAccounts {
                accounts: vec!["B@example.com".into()],
                aliases: vec![],
            }),
            true,
            t(NOW),
        );
        let due = f.due(&addresses(), all(), &[], &Ages::default(), t(NOW));
        assert!(due.directory);
        assert_eq!(due.logins, ["B@example.com"]);
        assert!(!due.gateway && !due.dns);
    }

    #[test]
    fn nothing_seen_means_everything_due_but_absent_sections() {
        let due = Facts::default().due(
            &addresses(),
            Sections::default(),
            &[],
            &Ages::default(),
            t(NOW),
        );
        assert_eq!(due.logins, addresses());
        assert!(due.forwarding.is_empty() && !due.gateway && !due.fallback && !due.dns);
    }

    #[test]
    fn fresh_facts_are_not_observed_again() {
        let f = seen_everything(t(NOW) - TimeDelta::seconds(30));
        let due = f.due(&addresses(), all(), &[], &Ages::default(), t(NOW));
        assert!(due.is_empty(), "{due:?}");
    }

    #[test]
    fn old_facts_are_observed_again_each_after_its_age() {
        let f = seen_everything(t(NOW) - TimeDelta::seconds(301));
        let due = f.due(&addresses(), all(), &[], &Ages::default(), t(NOW));
        assert!(due.logins.is_empty() && due.forwarding.is_empty());
        assert!(due.gateway && due.fallback && due.dns);
        let f = seen_everything(t(NOW) - TimeDelta::seconds(3601));
        let due = f.due(&addresses(), all(), &[], &Ages::default(), t(NOW));
        assert_eq!(due.logins, addresses());
        assert_eq!(due.forwarding, addresses());
    }

    #[test]
    fn a_refused_login_is_checked_again_after_a_minute_not_every_pass() {
        let mut f = seen_everything(t(NOW) - TimeDelta::seconds(10));
        f.logins.insert(
            Address::of("a@example.com"),
            Seen {
                value: (
                    Login::Failed {
                        reason: "no".into(),
                    },
                    Login::Ok,
                ),
                at: t(NOW) - TimeDelta::seconds(10),
            },
        );
        let ages = Ages::default();
        assert!(f.due(&addresses(), all(), &[], &ages, t(NOW)).is_empty());
        let later = t(NOW) + TimeDelta::seconds(55);
        assert_eq!(
            f.due(&addresses(), all(), &[], &ages, later).logins,
            vec!["a@example.com".to_owned()]
        );
    }

    #[test]
    fn a_gate_rechecks_only_the_fact_it_waits_on() {
        let f = seen_everything(t(NOW) - TimeDelta::seconds(20));
        let waiting = [
            Waiting::Propagation {
                name: "example.com".into(),
                nameservers: vec!["ns1".into()],
            },
            Waiting::ForwardingUnreadable {
                address: "b@example.com".into(),
                side: crate::plan::Side::Source,
                reason: "refused".into(),
            },
        ];
        let due = f.due(&addresses(), all(), &waiting, &Ages::default(), t(NOW));
        assert!(due.dns && !due.gateway && !due.fallback);
        assert!(due.logins.is_empty());
        assert_eq!(due.forwarding, vec!["B@example.com".to_owned()]);
        // Not sooner than the recheck interval.
        let f = seen_everything(t(NOW) - TimeDelta::seconds(5));
        assert!(
            f.due(&addresses(), all(), &waiting, &Ages::default(), t(NOW))
                .is_empty()
        );
    }

    #[test]
    fn a_step_makes_what_it_touched_due() {
        let now = t(NOW);
        let mut f = seen_everything(now - TimeDelta::seconds(10));
        f.touched(
            &Step::Relay(RelayChange::GatewayOn {
                relay_to: "x".into(),
                domains: vec![],
            }),
            true,
            now,
        );
        f.touched(
            &Step::Forwarding(ForwardingChange::On {
                address: "A@example.com".into(),
                side: crate::plan::Side::Source,
                to: "x@y".into(),
            }),
            true,
            now,
        );
        f.touched(
            &Step::Mail(MailStep::InitialSync {
                address: "b@example.com".into(),
            }),
            false,
            now,
        );
        let due = f.due(&addresses(), all(), &[], &Ages::default(), now);
        assert!(due.gateway && !due.fallback && !due.dns);
        assert_eq!(due.forwarding, vec!["a@example.com".to_owned()]);
        assert_eq!(
            due.logins,
            vec!["B@example.com".to_owned()],
            "a failed copy checks the logins"
        );
        // A successful copy is a login check.
        f.touched(
            &Step::Mail(MailStep::InitialSync {
                address: "b@example.com".into(),
            }),
            true,
            now,
        );
        assert!(
            f.due(&addresses(), all(), &[], &Ages::default(), now)
                .logins
                .is_empty()
        );
    }

    #[test]
    fn a_new_generation_forgets_everything() {
        let mut f = seen_everything(t(NOW));
        f.adopt(0);
        assert!(!f.logins.is_empty());
        f.adopt(2);
        assert_eq!(
            f,
            Facts {
                generation: 2,
                ..Facts::default()
            }
        );
    }
}
