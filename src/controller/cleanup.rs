//! What a deleted MailMigration takes with it: the temporary forwarding, and nothing else.
//! Gateway, fallback, MX and mailboxes are the admin's to keep or undo (the Event says so);
//! forwarding only ever existed for the migration, and left behind it would copy every
//! message of every mailbox to `forwarding.to` for good.

use crate::accounts::Account;
use crate::plan::ForwardingChange;
use crate::plan::Side;
use crate::routing::forwarding;
use crate::secrets::Resolver;
use crate::spec::MailMigrationSpec;

/// What removing the forwarding came to.
#[derive(Debug)]
pub enum Forwarding {
    /// Removed (or found absent) on every server where it can be installed, for every
    /// mailbox.
    Removed { mailboxes: usize, servers: usize },
    /// Some server could not be reached or refused: try again later.
    Failed(Vec<String>),
}

/// Removes mailshift's Sieve script ([`forwarding::SCRIPT_NAME`]) for every mailbox, from the
/// old server and, where configured, the new one; the user's own script is made active
/// again. Removing what is absent writes nothing.
pub async fn remove_forwarding(
    spec: &MailMigrationSpec,
    accounts: &[Account],
    resolver: &Resolver,
) -> Forwarding {
    let Some(fwd) = &spec.forwarding else {
        return Forwarding::Removed {
            mailboxes: 0,
            servers: 0,
        };
    };
    let mut sides = vec![Side::Source];
    if fwd.destination_managesieve.is_some() {
        sides.push(Side::Destination);
    }
    let mut failed = Vec::new();
    for account in accounts {
        for side in &sides {
            let off = ForwardingChange::Off {
                address: account.address.clone(),
                side: *side,
            };
            if let Err(e) = forwarding::apply(&off, spec, accounts, resolver).await {
                failed.push(format!("{} on the {side} server: {e}", account.address));
            }
        }
    }
    if failed.is_empty() {
        Forwarding::Removed {
            mailboxes: accounts.len(),
            servers: sides.len(),
        }
    } else {
        Forwarding::Failed(failed)
    }
}
