//! Filling a [`World`] from the servers (logins, read-only) and from the executor's records.

use futures::StreamExt;

use super::{MailEngine, records::Records};
use crate::accounts::Account;
use crate::plan::{self, Adapter, MailboxList, MailboxState, World};
use crate::spec::MailMigrationSpec;

/// Adapters this build carries. Steps needing others are planned as "not available yet".
pub const AVAILABLE: [Adapter; 2] = [Adapter::Imap, Adapter::Dns];

/// Observe every mailbox (logins on both sides, at most `sync.concurrency` at once, and
/// what the executor recorded of its syncs and verifications) and, when the spec has a
/// `dns` section, the domains' records on the primary and on every authoritative server.
pub async fn observe<E: MailEngine>(
    spec: &MailMigrationSpec,
    accounts: &[Account],
    engine: &E,
    records: &Records,
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
    let checks: Vec<(String, super::LoginCheck)> = futures::stream::iter(accounts.to_vec())
        .map(|a| async move { (a.address.clone(), engine.check_logins(&a).await) })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    for (address, (source_login, destination_login)) in checks {
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
            forwarding: Default::default(),
        });
    }
    if let Some(dns) = &spec.dns {
        world.dns = Some(crate::dns::observe(dns, &spec.domains).await);
    }
    world
}
