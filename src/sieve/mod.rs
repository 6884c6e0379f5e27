//! Each mailbox's Sieve scripts (filters, vacation replies) copied from the old server to the
//! new one over ManageSieve (RFC 5804), with the mailbox's own logins.
//!
//! - The old server is only read: LISTSCRIPTS and GETSCRIPT.
//! - On the new server, every script is first offered with CHECKSCRIPT, which stores
//!   nothing: one the server refuses (an extension it lacks, such as `editheader` or
//!   `vacation-seconds`) is reported with the server's words and left out; the others are
//!   written with PUTSCRIPT, and the source's active script is made active.
//! - A script of the same name and other content on the new server is kept and reported, or
//!   replaced with `conflicts: replace`.
//! - mailshift's own temporary forwarding script is never copied. While it is the active
//!   script on the new server, the user's migrated active script becomes the one it runs
//!   (it is restored as the active script when forwarding ends), so forwarding stays on.
//!
//! [`observe`] compares (read-only on both sides) and is the verification: nothing pending
//! means the new server holds every script the old one has, with the same one active,
//! but for those it refuses or keeps.

pub mod diff;

use std::collections::BTreeMap;

use crate::accounts::{Account, Login};
use crate::imap::conn::Side as ConnSide;
use crate::plan::{SieveRefusal, SieveState};
use crate::routing::RoutingError;
use crate::routing::forwarding::{SCRIPT_NAME, Wrapper, parse_wrapper, wrapper_script};
use crate::routing::managesieve::{self, Client};
use crate::secrets::Resolver;
use crate::spec::{Endpoint, Sieve};

pub use diff::{Diff, Scripts, diff};

/// What a copy did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Copied {
    pub put: Vec<String>,
    pub replaced: Vec<String>,
    pub kept: Vec<String>,
    pub refused: Vec<SieveRefusal>,
    /// The script made active (or, while forwarding is on, the one it now runs).
    pub activated: Option<String>,
}

async fn open(
    endpoint: &Endpoint,
    login: &Login,
    side: ConnSide,
    resolver: &Resolver,
) -> Result<Client, RoutingError> {
    managesieve::open(endpoint, login, side, resolver).await
}

/// Every script of the session's user, as the user has them.
async fn read(client: &mut Client) -> Result<Scripts, RoutingError> {
    let listed = client.list_scripts().await?;
    let mut contents = BTreeMap::new();
    for s in &listed {
        contents.insert(s.name.clone(), client.get_script(&s.name).await?);
    }
    Ok(Scripts::of(&listed, contents))
}

struct Sides {
    source: Scripts,
    destination: Scripts,
    client: Client,
}

/// Read both sides; the destination's session stays open for what follows.
async fn both(
    account: &Account,
    source: &Endpoint,
    sieve: &Sieve,
    resolver: &Resolver,
) -> Result<Sides, RoutingError> {
    let (src, dst) = tokio::join!(
        open(source, &account.source, ConnSide::Source, resolver),
        open(
            &sieve.destination_managesieve,
            &account.destination,
            ConnSide::Destination,
            resolver
        ),
    );
    let (mut src, mut client) = (src?, dst?);
    let source = read(&mut src).await?;
    let _ = src.logout().await;
    let destination = read(&mut client).await?;
    Ok(Sides {
        source,
        destination,
        client,
    })
}

/// The scripts of `d.put` the destination refuses, by CHECKSCRIPT.
async fn refusals(
    client: &mut Client,
    source: &Scripts,
    d: &Diff,
) -> Result<Vec<SieveRefusal>, RoutingError> {
    let mut refused = Vec::new();
    for name in &d.put {
        if let Err(reason) = client.check_script(&source.scripts[name]).await? {
            refused.push(SieveRefusal {
                script: name.clone(),
                reason,
            });
        }
    }
    Ok(refused)
}

/// Compare the mailbox's scripts on both servers; writes nothing on either.
pub async fn observe(account: &Account, sieve: &Sieve, resolver: &Resolver) -> SieveState {
    let Some(source) = &sieve.managesieve else {
        return SieveState::NoSource;
    };
    let result = async {
        let mut s = both(account, source, sieve, resolver).await?;
        let d = diff(&s.source, &s.destination, sieve.conflicts);
        let refused = refusals(&mut s.client, &s.source, &d).await?;
        let _ = s.client.logout().await;
        let is_refused = |n: &String| refused.iter().any(|r| &r.script == n);
        let pending = d.put.iter().filter(|n| !is_refused(n)).count()
            + usize::from(d.activate.as_ref().is_some_and(|a| !is_refused(a)));
        Ok::<_, RoutingError>(SieveState::Compared {
            scripts: s.source.scripts.len(),
            pending,
            kept: d.kept,
            refused,
        })
    }
    .await;
    result.unwrap_or_else(|e| SieveState::Error {
        reason: e.to_string(),
    })
}

/// Copy the mailbox's scripts to the new server and make the source's active script
/// active there. Scripts the server refuses are reported in [`Copied::refused`] and the
/// others go on.
pub async fn copy(
    account: &Account,
    sieve: &Sieve,
    resolver: &Resolver,
) -> Result<Copied, RoutingError> {
    let Some(source) = &sieve.managesieve else {
        return Ok(Copied::default());
    };
    let mut s = both(account, source, sieve, resolver).await?;
    let d = diff(&s.source, &s.destination, sieve.conflicts);
    let mut done = Copied {
        kept: d.kept.clone(),
        refused: refusals(&mut s.client, &s.source, &d).await?,
        ..Copied::default()
    };
    for name in &d.put {
        if done.refused.iter().any(|r| &r.script == name) {
            continue;
        }
        match s
            .client
            .try_put_script(name, &s.source.scripts[name])
            .await?
        {
            Ok(()) if d.replace.contains(name) => done.replaced.push(name.clone()),
            Ok(()) => done.put.push(name.clone()),
            Err(reason) => done.refused.push(SieveRefusal {
                script: name.clone(),
                reason,
            }),
        }
    }
    if let Some(active) = &d.activate
        && !done.refused.iter().any(|r| &r.script == active)
    {
        if s.destination.forwarding {
            // Forwarding stays on and runs the user's migrated script; ending forwarding
            // makes that script the active one.
            let ours = s.client.get_script(SCRIPT_NAME).await?;
            let to = parse_wrapper(&ours).map(|w| w.to).ok_or_else(|| {
                RoutingError::Invalid(format!("{SCRIPT_NAME} on the new server was changed"))
            })?;
            let script = wrapper_script(&Wrapper {
                to,
                previous: Some(active.clone()),
            });
            s.client.put_script(SCRIPT_NAME, &script).await?;
        } else {
            s.client.set_active(active).await?;
        }
        done.activated = Some(active.clone());
    }
    let _ = s.client.logout().await;
    Ok(done)
}
