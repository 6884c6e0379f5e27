//! The [`MailEngine`] that talks to real IMAP servers, through the copy engine.

use std::sync::Arc;

use anyhow::{Result, bail};

use super::{LoginCheck, MailEngine, Synced, Verified};
use crate::accounts::Account;
use crate::engine::{self, Engine, Observer, Options};
use crate::imap::conn::{ConnectError, Connector};
use crate::imap::report::MailboxReport;
use crate::imap::session::DestinationSession;
use crate::plan::Login;
use crate::secrets::Resolver;
use crate::sources::SourceConnector;
use crate::spec::MailMigration;
use crate::store::StateDir;

/// The copy engine of one migration, plus connectors of its own for login checks.
pub struct ImapEngine {
    engine: Arc<Engine>,
    source: SourceConnector,
    destination: Connector,
    /// Mailboxes at once, for multi-mailbox steps.
    concurrency: usize,
    /// `spec.acceptRefused`.
    accept: Vec<crate::spec::AcceptRefused>,
    /// What the copies of this run planned and copied.
    tally: Arc<super::progress::Tally>,
}

impl std::fmt::Debug for ImapEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImapEngine")
            .field("engine", &self.engine)
            .finish()
    }
}

impl ImapEngine {
    /// Resolve `migration` (secrets through `resolver`: next to the manifest, or the
    /// namespace's Secrets in a cluster; mailboxes; CA certificates); the engine's caches
    /// are kept in `store`.
    pub fn prepare_with(
        migration: &MailMigration,
        resolver: &Resolver,
        store: StateDir,
        observer: Arc<dyn Observer>,
    ) -> Result<(Self, Vec<Account>)> {
        let tally = Arc::new(super::progress::Tally::new(observer));
        let store: Arc<dyn crate::imap::cache::CacheStore> = Arc::new(store);
        let p = engine::prepare_with(
            migration,
            resolver,
            Arc::clone(&store),
            Options::default(),
            tally.clone(),
        )?;
        let spec = &migration.spec;
        // The engine's own connectors: a login check counts against `maxConnections` with
        // the copies, not beside them.
        let (source, destination) = p.engine.connectors();
        let (source, destination) = (source.clone(), destination.clone());
        let this = ImapEngine {
            engine: p.engine,
            source,
            destination,
            concurrency: p.concurrency,
            accept: spec.accept_refused.clone(),
            tally,
        };
        Ok((this, p.accounts))
    }
}

fn login(r: Result<(), ConnectError>) -> Login {
    match r {
        Ok(()) => Login::Ok,
        Err(e) => Login::Failed {
            reason: e.to_string(),
        },
    }
}

/// The refused messages of a mailbox's report whose loss a rule accepts, and how many are
/// left that no rule accepts.
fn accepted(
    r: &MailboxReport,
    rules: &[crate::spec::AcceptRefused],
) -> (Vec<crate::spec::AcceptedLoss>, u64) {
    let mut accepted = Vec::new();
    let mut left = 0;
    for f in &r.folders {
        for m in &f.refused {
            let key = m.message.name();
            match rules
                .iter()
                .find(|rule| rule.accepts(&r.address, &key, m.message.size))
            {
                Some(rule) => accepted.push(crate::spec::AcceptedLoss {
                    folder: f.source.clone(),
                    message: key,
                    size: m.message.size,
                    refused: m.reason.clone(),
                    accepted_by: rule.describe(),
                }),
                None => left += 1,
            }
        }
    }
    (accepted, left)
}

/// Messages refused and errors of a mailbox's report, for the executor.
fn problems(r: &MailboxReport) -> (u64, Vec<String>) {
    let refused = r.folders.iter().map(|f| f.refused.len() as u64).sum();
    let mut errors: Vec<String> = r.error.iter().cloned().collect();
    errors.extend(
        r.folders
            .iter()
            .filter_map(|f| f.error.as_ref().map(|e| format!("{}: {e}", f.source))),
    );
    (refused, errors)
}

impl MailEngine for ImapEngine {
    fn transfer(&self, now: chrono::DateTime<chrono::Utc>) -> Option<crate::spec::Transfer> {
        self.tally.transfer(now)
    }

    async fn check_logins(&self, account: &Account) -> LoginCheck {
        let (src, dst) = tokio::join!(
            async {
                self.source.connect(account).await?.logout().await;
                Ok(())
            },
            async {
                let c = self.destination.connect(&account.destination).await?;
                DestinationSession::new(c).logout().await;
                Ok(())
            }
        );
        (login(src), login(dst))
    }

    async fn sync(&self, accounts: &[Account]) -> Result<Vec<(String, Synced)>> {
        let reports = self.engine.sync_all(accounts, self.concurrency).await;
        Ok(reports
            .iter()
            .map(|r| {
                let (_, errors) = problems(r);
                let (accepted, refused) = accepted(r, &self.accept);
                let synced = Synced {
                    messages: r.folders.iter().map(|f| f.source_messages).sum(),
                    bytes: r.folders.iter().map(|f| f.source_bytes).sum(),
                    refused,
                    accepted,
                    errors,
                    copied_messages: r.folders.iter().map(|f| f.copied).sum(),
                    copied_bytes: r.folders.iter().map(|f| f.copied_bytes).sum(),
                    paused: r.paused.clone(),
                };
                (r.address.clone(), synced)
            })
            .collect())
    }

    async fn probe(
        &self,
        probe: &crate::spec::Probe,
        account: &Account,
        resolver: &Resolver,
    ) -> crate::plan::ProbeState {
        crate::routing::probe::run(
            probe,
            account,
            // Only an IMAP source can say that the probe was delivered there instead.
            self.source.imap(),
            &self.destination,
            resolver,
        )
        .await
    }

    async fn verify(&self, account: &Account) -> Result<Verified> {
        let mut r = self.engine.verify_mailbox(account).await;
        // A folder missing on the destination (re-created, deleted by hand) is a difference
        // the loop copies again, as the servers say, whatever the records thought.
        for f in r.folders.iter_mut().filter(|f| f.destination_missing) {
            f.error = None;
        }
        let (_, errors) = problems(&r);
        if !errors.is_empty() {
            bail!("{}", errors.join("; "));
        }
        // A comparison the provider stopped midway (its own transfer limit) compared only
        // some folders: never an equal verdict.
        if let Some(p) = &r.paused {
            bail!("verification stopped: {p}");
        }
        // Extra messages on the destination (its own new mail) are not differences; missing
        // ones and surplus copies are, and so is every message the destination refused
        // unless `spec.acceptRefused` accepts its loss: a mailbox is not equal with mail
        // left behind by accident.
        // Mail that arrived after the last sync is counted apart: whether a later sync will
        // come for it is the planner's to judge (the final sync does before the cutover;
        // nothing does in a mailbox-only import or after the delta sync).
        let (accepted, refused) = accepted(&r, &self.accept);
        Ok(Verified {
            accepted,
            messages: r.folders.iter().map(|f| f.source_messages).sum(),
            differences: refused
                + r.folders
                    .iter()
                    .map(|f| (f.missing.len() + f.surplus.len()) as u64)
                    .sum::<u64>(),
            arrived: r.folders.iter().map(|f| f.arrived).sum(),
        })
    }
}
