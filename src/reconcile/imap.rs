//! The [`MailEngine`] that talks to real IMAP servers.

use anyhow::Result;

use super::{LoginCheck, MailEngine, Synced, Verified};
use crate::accounts::Account;
use crate::imap::conn::{ConnectError, Connector, Side};
use crate::imap::session::{DestinationSession, SourceSession};
use crate::plan::Login;
use crate::secrets::Resolver;
use crate::spec::{Endpoint, MailMigrationSpec};
use crate::store::StateDir;

/// Connectors to both servers of one migration, plus where the engine keeps its caches.
#[derive(Clone, Debug)]
pub struct ImapEngine {
    pub spec: MailMigrationSpec,
    pub source: Connector,
    pub destination: Connector,
    pub state: StateDir,
}

impl ImapEngine {
    pub fn new(spec: &MailMigrationSpec, resolver: &Resolver, state: StateDir) -> Result<Self> {
        Ok(ImapEngine {
            spec: spec.clone(),
            source: connector(Side::Source, &spec.source.imap, resolver)?,
            destination: connector(Side::Destination, &spec.destination.imap, resolver)?,
            state,
        })
    }
}

/// A connector for one server, its private CA (if any) read through the resolver.
pub fn connector(side: Side, endpoint: &Endpoint, resolver: &Resolver) -> Result<Connector> {
    let ca = endpoint
        .ca_certificate
        .as_ref()
        .map(|r| resolver.resolve(r))
        .transpose()
        .map_err(|e| anyhow::anyhow!("{side} caCertificate: {e}"))?;
    Ok(Connector::new(
        side,
        endpoint,
        ca.as_ref().map(|s| s.expose().as_bytes()),
    )?)
}

fn outcome(r: Result<(), ConnectError>) -> Login {
    match r {
        Ok(()) => Login::Ok,
        Err(e) => Login::Failed {
            reason: e.to_string(),
        },
    }
}

impl MailEngine for ImapEngine {
    async fn check_logins(&self, account: &Account) -> LoginCheck {
        let (src, dst) = tokio::join!(
            async {
                let c = self.source.connect(&account.source).await?;
                SourceSession::new(c).logout().await;
                Ok(())
            },
            async {
                let c = self.destination.connect(&account.destination).await?;
                DestinationSession::new(c).logout().await;
                Ok(())
            }
        );
        (outcome(src), outcome(dst))
    }

    async fn sync(&self, accounts: &[Account]) -> Result<Vec<(String, Synced)>> {
        let _ = accounts;
        anyhow::bail!("the copy engine is not wired in yet")
    }

    async fn verify(&self, account: &Account) -> Result<Verified> {
        let _ = account;
        anyhow::bail!("the copy engine is not wired in yet")
    }
}
