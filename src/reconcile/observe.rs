//! Filling a [`World`] from the servers (logins, read-only) and from the executor's records.

use futures::StreamExt;

use super::{MailEngine, records::Records};
use crate::accounts::Account;
use crate::plan::{self, Adapter, ForwardingSides, MailboxList, MailboxState, Side, World};
use crate::routing::{self, forwarding};
use crate::secrets::Resolver;
use crate::spec::MailMigrationSpec;

/// Adapters this build carries. Steps needing others are planned as "not available yet".
pub const AVAILABLE: [Adapter; 5] = [
    Adapter::Imap,
    Adapter::Dns,
    Adapter::Routing,
    Adapter::Forwarding,
    Adapter::Probe,
];

/// Observe every mailbox (logins on both sides and its temporary forwarding, at most
/// `sync.concurrency` at once, and what the executor recorded of its syncs and
/// verifications); the gateway and fallback relays as Postfix routes them; and, when the
/// spec has a `dns` section, the domains' records on every authoritative server.
pub async fn observe<E: MailEngine>(
    spec: &MailMigrationSpec,
    accounts: &[Account],
    engine: &E,
    records: &Records,
    resolver: &Resolver,
) -> World {
    let mut world = World::new(AVAILABLE);
    if spec.mailboxes_from.is_some() {
        let inline: Vec<String> = spec
            .mailboxes
            .iter()
            .map(|m| m.address.to_lowercase())
            .collect();
        world.mailboxes_from = Some(MailboxList::Loaded {
            addresses: accounts
                .iter()
                .map(|a| a.address.clone())
                .filter(|a| !inline.contains(&a.to_lowercase()))
                .collect(),
        });
    }
    let concurrency = spec.sync.as_ref().map_or(4, |s| usize::from(s.concurrency));
    // Owned accounts: a closure over references would make this future's `Send` depend on
    // a higher-ranked lifetime the compiler cannot prove (the controller needs it `Send`).
    let forwarding = spec.forwarding.as_ref();
    let checks: Vec<(String, super::LoginCheck, ForwardingSides)> =
        futures::stream::iter(accounts.to_vec())
            .map(|a| async move {
                let logins = engine.check_logins(&a).await;
                let mut sides = ForwardingSides::default();
                if let Some(fwd) = forwarding {
                    sides.source = forwarding::observe(&a, Side::Source, fwd, resolver).await;
                    if fwd.destination_managesieve.is_some() {
                        sides.destination =
                            forwarding::observe(&a, Side::Destination, fwd, resolver).await;
                    }
                }
                (a.address.clone(), logins, sides)
            })
            .buffer_unordered(concurrency.max(1))
            .collect()
            .await;
    for (address, (source_login, destination_login), forwarding) in checks {
        let record = records.mailbox(&address);
        // A successful login is the proof that the destination account exists; a refused
        // one cannot tell a missing account from a wrong password.
        let destination_account = match destination_login {
            plan::Login::Ok => plan::Account::Exists,
            plan::Login::Failed { .. } => plan::Account::Unknown,
        };
        world.insert_mailbox(MailboxState {
            address,
            source_login,
            destination_login,
            destination_account,
            sync: record.sync,
            verification: record.verification,
            last_error: record.last_error,
            forwarding,
        });
    }
    if let Some(g) = &spec.gateway {
        world.gateway = routing::observe_gateway(g, resolver).await;
    }
    if let Some(f) = &spec.fallback {
        world.fallback = routing::observe_fallback(f, resolver).await;
    }
    world.probe = records.probe.clone();
    if let Some(dns) = &spec.dns {
        world.dns = Some(crate::dns::observe(dns, &spec.domains).await);
    }
    world
}
