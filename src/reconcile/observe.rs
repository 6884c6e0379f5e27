//! Filling a [`World`]: observe on the servers what is due ([`Due`], read-only), keep it in
//! the [`Facts`], and complete it with the executor's records.

use crate::address::Address;
use chrono::{DateTime, Utc};
use futures::StreamExt;

use super::facts::{Due, Facts, Seen};
use super::{MailEngine, records::Records};
use crate::accounts::Account;
use crate::plan::{
    self, Adapter, DavCompared, DavObserved, DavState, ForwardingSides, MailboxList, MailboxState,
    Side, SieveState, World,
};
use crate::routing::{self, forwarding};
use crate::secrets::Resolver;
use crate::spec::MailMigrationSpec;

/// Adapters this build carries. Steps needing others are planned as "not available yet".
pub const AVAILABLE: [Adapter; 8] = [
    Adapter::Imap,
    Adapter::Dns,
    Adapter::Routing,
    Adapter::Forwarding,
    Adapter::Sieve,
    Adapter::Dav,
    Adapter::Probe,
    Adapter::Accounts,
];

/// Observe what `due` names, at most `sync.concurrency` mailboxes at once: logins on both
/// sides and the temporary forwarding of those mailboxes; the gateway and fallback relays
/// as Postfix routes them; the domains' records on every authoritative server. What was
/// seen goes into `facts`, dated `now`.
pub async fn refresh<E: MailEngine>(
    facts: &mut Facts,
    due: &Due,
    spec: &MailMigrationSpec,
    accounts: &[Account],
    engine: &E,
    resolver: &Resolver,
    now: DateTime<Utc>,
) {
    let concurrency = spec.sync.as_ref().map_or(4, |s| usize::from(s.concurrency));
    let forwarding = spec.forwarding.as_ref();
    let sieve = spec.sieve.as_ref();
    let dav = spec.dav.as_ref();
    let lower = |list: &[String]| -> std::collections::HashSet<Address> {
        list.iter().map(|a| Address::of(a)).collect()
    };
    let (logins, forwardings, sieves, davs) = (
        lower(&due.logins),
        lower(&due.forwarding),
        lower(&due.sieve),
        lower(&due.dav),
    );
    let wanted = |set: &std::collections::HashSet<Address>, a: &Account| {
        set.contains(&Address::of(&a.address))
    };
    // Owned accounts: a closure over references would make this future's `Send` depend on
    // a higher-ranked lifetime the compiler cannot prove (the controller needs it `Send`).
    // The last comparison of each mailbox's contacts and calendars, which stands while no
    // ETag changed.
    let work: Vec<(Account, [bool; 4], Option<DavCompared>)> = accounts
        .iter()
        .map(|a| {
            let w = |set| wanted(set, a);
            let previous = match facts.dav.get(&Address::of(&a.address)) {
                Some(Seen {
                    value: DavObserved::Compared(c),
                    ..
                }) => Some(c.clone()),
                _ => None,
            };
            (
                a.clone(),
                [w(&logins), w(&forwardings), w(&sieves), w(&davs)],
                previous,
            )
        })
        .filter(|(_, due, _)| due.iter().any(|d| *d))
        .collect();
    type Check = (
        Address,
        Option<super::LoginCheck>,
        Option<ForwardingSides>,
        Option<SieveState>,
        Option<DavObserved>,
    );
    let checks: Vec<Check> = futures::stream::iter(work)
        .map(
            |(a, [login, fwd, scripts, collections], previous)| async move {
                let logins = if login {
                    Some(engine.check_logins(&a).await)
                } else {
                    None
                };
                let mut sides = None;
                if let Some(f) = forwarding.filter(|_| fwd) {
                    let mut s = ForwardingSides {
                        source: forwarding::observe(&a, Side::Source, f, resolver).await,
                        ..ForwardingSides::default()
                    };
                    if f.destination_managesieve.is_some() {
                        s.destination =
                            forwarding::observe(&a, Side::Destination, f, resolver).await;
                    }
                    sides = Some(s);
                }
                let compared = match sieve.filter(|_| scripts) {
                    Some(s) => Some(crate::sieve::observe(&a, s, resolver).await),
                    None => None,
                };
                let contacts = match dav.filter(|_| collections) {
                    Some(d) => Some(
                        match crate::dav::observe(&a, d, resolver, previous.as_ref()).await {
                            Ok(None) => DavObserved::NoSource,
                            Ok(Some(c)) => DavObserved::Compared(c),
                            Err(e) => DavObserved::Error {
                                reason: e.to_string(),
                            },
                        },
                    ),
                    None => None,
                };
                (Address::of(&a.address), logins, sides, compared, contacts)
            },
        )
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    for (key, logins, sides, compared, contacts) in checks {
        if let Some(value) = logins {
            facts.logins.insert(key.clone(), Seen { value, at: now });
        }
        if let Some(value) = sides {
            facts
                .forwarding
                .insert(key.clone(), Seen { value, at: now });
        }
        if let Some(value) = compared {
            facts.sieve.insert(key.clone(), Seen { value, at: now });
        }
        if let Some(value) = contacts {
            facts.dav.insert(key, Seen { value, at: now });
        }
    }
    if let Some(g) = spec.gateway.as_ref().filter(|_| due.gateway) {
        let value = routing::observe_gateway(g, resolver).await;
        facts.gateway = Some(Seen { value, at: now });
    }
    if let Some(f) = spec.fallback.as_ref().filter(|_| due.fallback) {
        let value = routing::observe_fallback(f, resolver).await;
        facts.fallback = Some(Seen { value, at: now });
    }
    if let Some(dns) = spec.dns.as_ref().filter(|_| due.dns) {
        let value = crate::dns::observe(dns, &spec.domains).await;
        facts.dns = Some(Seen { value, at: now });
    }
}

/// The world as the facts and the records tell it (no I/O): a mailbox whose logins were
/// never checked is left out, and the planner waits for it.
pub fn world(
    spec: &MailMigrationSpec,
    accounts: &[Account],
    facts: &Facts,
    records: &Records,
) -> World {
    let mut world = World::new(AVAILABLE);
    if spec.lists_more_mailboxes() {
        let inline: Vec<Address> = spec
            .mailboxes
            .iter()
            .map(|m| Address::of(&m.address))
            .collect();
        world.mailboxes_from = Some(MailboxList::Loaded {
            addresses: accounts
                .iter()
                .map(|a| a.address.clone())
                .filter(|a| !inline.contains(&Address::of(a)))
                .collect(),
        });
    }
    // With spec.accounts the user database says which accounts the new server lacks.
    let missing: std::collections::BTreeSet<Address> =
        match facts.directory.as_ref().map(|d| &d.value) {
            Some(plan::DirectoryState::Observed {
                missing_accounts, ..
            }) if spec.accounts.is_some() => {
                missing_accounts.iter().map(|a| Address::of(a)).collect()
            }
            _ => Default::default(),
        };
    for a in accounts {
        let key = Address::of(&a.address);
        let Some(logins) = facts.logins.get(&key) else {
            continue;
        };
        let (source_login, destination_login) = logins.value.clone();
        let record = records.mailbox(&a.address);
        // A successful login is the proof that the destination account exists; a refused
        // one cannot tell a missing account from a wrong password.
        let destination_account = match destination_login {
            plan::Login::Ok => plan::Account::Exists,
            plan::Login::Failed { .. } if missing.contains(&key) => plan::Account::Missing,
            plan::Login::Failed { .. } => plan::Account::Unknown,
        };
        world.insert_mailbox(MailboxState {
            address: a.address.clone(),
            source_login,
            destination_login,
            destination_account,
            sync: record.sync,
            verification: record.verification,
            last_error: record.last_error,
            paused: record.paused,
            forwarding: facts
                .forwarding
                .get(&key)
                .map(|s| s.value.clone())
                .unwrap_or_default(),
            sieve: facts
                .sieve
                .get(&key)
                .map(|s| s.value.clone())
                .unwrap_or_default(),
            dav: facts
                .dav
                .get(&key)
                .map(|s| DavState::of(&s.value, &record.dav_refused))
                .unwrap_or_default(),
            observed_at: Some(logins.at),
        });
    }
    if spec.gateway.is_some()
        && let Some(g) = &facts.gateway
    {
        world.gateway = g.value.clone();
    }
    if spec.fallback.is_some()
        && let Some(f) = &facts.fallback
    {
        world.fallback = f.value.clone();
    }
    if spec.dns.is_some() {
        world.dns = facts.dns.as_ref().map(|d| d.value.clone());
    }
    if spec.accounts.is_some()
        && let Some(d) = &facts.directory
    {
        world.directory = d.value.clone();
    }
    world.observed = crate::spec::Freshness {
        oldest_login: None,
        dns: facts.dns.as_ref().map(|d| d.at),
        gateway: facts.gateway.as_ref().map(|g| g.at),
        fallback: facts.fallback.as_ref().map(|f| f.at),
    };
    world.probe = records.probe.clone();
    world.failures = records.failures.clone();
    world
}
