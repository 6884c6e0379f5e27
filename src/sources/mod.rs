//! Where mail is read from: an IMAP server, or a source that is not one (Maildir and mbox
//! files, [`maildir`], [`mbox`]; an Outlook PST, [`pst`]; a POP3 server, [`pop3`]), all
//! feeding the same copy engine.
//!
//! The seam is [`SourceSession`]: the operations the engine asks of a source (list the
//! folders, STATUS, open one read-only, list its messages' identities and flags, read
//! bodies ahead, settle, log out), with the IMAP server's meaning. An IMAP source passes them
//! through to [`ImapSource`] unchanged; a file source answers them from the files, each
//! folder with stable UIDs of mailshift's own ([`uids`]) and a UIDVALIDITY of its own, so
//! the engine's re-sync cache, the message identity rules, the folder mapping (localized
//! names included), the reports and `verify` work the same for every source. Every source
//! is read only: nothing here writes, renames or locks a file.

pub mod disk;
// Kept by the engine's cache store, so below both.
pub use crate::imap::uid_map as uids;
pub mod files;
pub mod fs;
pub mod maildir;
pub mod mbox;
pub mod pop3;
pub mod pst;

use crate::imap::command::UidSet;
use std::sync::Arc;

pub use crate::spec::{PathError, PathTemplate};

use crate::accounts::Account;
use crate::imap::cache::CacheStore;
use crate::imap::conn::{ConnectError, Connector, LoginGate, Side, Slot};
use crate::imap::diff::{Entry, FlagSet};
use crate::imap::proto::ImapError;
use crate::imap::session::{BodyFetches, ImapSource, Listing, MailboxStatus, Outgoing, Selected};
use crate::secrets::Resolver;
use crate::spec::{SourceKind, SourceServer};

use self::files::{FileConnector, FileSession};
use self::pop3::{Pop3Connector, Pop3Session};

/// Opens sessions on the source, whatever it is.
#[derive(Clone, Debug)]
pub enum SourceConnector {
    Imap(Connector),
    Pop3(Pop3Connector),
    Files(FileConnector),
}

impl From<Connector> for SourceConnector {
    fn from(c: Connector) -> Self {
        SourceConnector::Imap(c)
    }
}

impl From<FileConnector> for SourceConnector {
    fn from(c: FileConnector) -> Self {
        SourceConnector::Files(c)
    }
}

/// A place under the source's connection limit (files have none).
#[derive(Debug)]
pub enum SourceSlot {
    Imap(Slot),
    Pop3(tokio::sync::OwnedSemaphorePermit),
    Files,
}

impl SourceConnector {
    /// The connector for `source`; file sources keep their UIDs in `store`.
    pub fn new(
        source: &SourceServer,
        resolver: &Resolver,
        store: Arc<dyn CacheStore>,
    ) -> anyhow::Result<SourceConnector> {
        use anyhow::Context as _;
        Ok(match source.kind() {
            SourceKind::Imap | SourceKind::Pop3 => {
                let endpoint = source
                    .endpoint()
                    .context("no source server given (imap, pop3, maildir or mbox)")?;
                if source.kind() == SourceKind::Pop3 {
                    let ca = endpoint
                        .ca_certificate
                        .as_ref()
                        .map(|r| {
                            resolver
                                .resolve(r)
                                .with_context(|| format!("caCertificate {r}"))
                        })
                        .transpose()?;
                    SourceConnector::Pop3(Pop3Connector::new(
                        endpoint,
                        ca.as_ref().map(|s| s.expose().as_bytes()),
                        store,
                    )?)
                } else {
                    SourceConnector::Imap(crate::imap::conn::Connector::resolved(
                        Side::Source,
                        endpoint,
                        resolver,
                    )?)
                }
            }
            SourceKind::Maildir | SourceKind::Mbox | SourceKind::Pst => {
                SourceConnector::Files(FileConnector::new(source, resolver, store)?)
            }
        })
    }

    /// The server's `limits` (files have none: they are read on this machine or over ssh).
    pub fn governed(self, governor: Arc<crate::limits::Governor>) -> SourceConnector {
        match self {
            SourceConnector::Imap(c) => SourceConnector::Imap(c.governed(governor)),
            SourceConnector::Pop3(c) => SourceConnector::Pop3(c.governed(governor)),
            files @ SourceConnector::Files(_) => files,
        }
    }

    /// The server's limits in force.
    pub fn governor(&self) -> Arc<crate::limits::Governor> {
        match self {
            SourceConnector::Imap(c) => c.governor().clone(),
            SourceConnector::Pop3(c) => c.governor().clone(),
            SourceConnector::Files(_) => {
                crate::limits::Governor::unlimited(crate::spec::Direction::Download)
            }
        }
    }

    /// The IMAP server's connector, when the source is one.
    pub fn imap(&self) -> Option<&Connector> {
        match self {
            SourceConnector::Imap(c) => Some(c),
            _ => None,
        }
    }

    pub async fn slot(&self) -> SourceSlot {
        match self {
            SourceConnector::Imap(c) => SourceSlot::Imap(c.slot().await),
            SourceConnector::Pop3(c) => SourceSlot::Pop3(c.slot().await),
            SourceConnector::Files(_) => SourceSlot::Files,
        }
    }

    pub fn try_slot(&self) -> Option<SourceSlot> {
        match self {
            SourceConnector::Imap(c) => c.try_slot().map(SourceSlot::Imap),
            SourceConnector::Pop3(c) => c.try_slot().map(SourceSlot::Pop3),
            SourceConnector::Files(_) => Some(SourceSlot::Files),
        }
    }

    /// Logs in as `account` (or, for files, finds its files).
    pub async fn connect_in(
        &self,
        slot: SourceSlot,
        account: &Account,
    ) -> Result<SourceSession, ConnectError> {
        self.connect_gated(slot, account, None).await
    }

    /// [`SourceConnector::connect_in`], an IMAP login held back by `gate` (see
    /// [`Connector::connect_gated`]).
    pub async fn connect_gated(
        &self,
        slot: SourceSlot,
        account: &Account,
        gate: Option<LoginGate>,
    ) -> Result<SourceSession, ConnectError> {
        match (self, slot) {
            (SourceConnector::Imap(c), SourceSlot::Imap(slot)) => Ok(SourceSession::Imap(
                ImapSource::new(c.connect_gated(slot, &account.source, gate).await?),
            )),
            (SourceConnector::Imap(c), _) => Ok(SourceSession::Imap(ImapSource::new(
                c.connect(&account.source).await?,
            ))),
            (SourceConnector::Pop3(c), SourceSlot::Pop3(permit)) => {
                Ok(SourceSession::Pop3(c.connect_in(permit, account).await?))
            }
            (SourceConnector::Pop3(c), _) => {
                let permit = c.slot().await;
                Ok(SourceSession::Pop3(c.connect_in(permit, account).await?))
            }
            (SourceConnector::Files(f), _) => Ok(SourceSession::Files(f.open(account).await?)),
        }
    }

    pub async fn connect(&self, account: &Account) -> Result<SourceSession, ConnectError> {
        let slot = self.slot().await;
        self.connect_in(slot, account).await
    }
}

/// One session on the source: what the engine reads a mailbox through (see the module
/// docs). Every method reads only.
// A mailbox holds one or two sessions for its whole pass: their size does not matter, and
// the IMAP one stays as it was, unboxed.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum SourceSession {
    Imap(ImapSource),
    Pop3(Pop3Session),
    Files(FileSession),
}

impl SourceSession {
    pub async fn list(&mut self) -> Result<Listing, ImapError> {
        match self {
            SourceSession::Imap(s) => s.list().await,
            SourceSession::Pop3(s) => s.list().await,
            SourceSession::Files(s) => s.list().await,
        }
    }

    pub async fn status(&mut self, wire: &str) -> Result<MailboxStatus, ImapError> {
        match self {
            SourceSession::Imap(s) => s.status(wire).await,
            SourceSession::Pop3(s) => s.status(wire).await,
            SourceSession::Files(s) => s.status(wire).await,
        }
    }

    /// STATUS of several folders (pipelined on IMAP); `None` where refused.
    pub async fn statuses(
        &mut self,
        wires: &[String],
    ) -> Result<Vec<Option<MailboxStatus>>, ImapError> {
        match self {
            SourceSession::Imap(s) => s.statuses(wires).await,
            SourceSession::Pop3(s) => {
                let mut out = Vec::with_capacity(wires.len());
                for w in wires {
                    out.push(s.status(w).await.ok());
                }
                Ok(out)
            }
            SourceSession::Files(s) => {
                let mut out = Vec::with_capacity(wires.len());
                for w in wires {
                    out.push(s.status(w).await.ok());
                }
                Ok(out)
            }
        }
    }

    /// How the next folder's pass reads Gmail's labels (only a Gmail IMAP source has any).
    pub fn read_labels(&mut self, pass: Option<crate::imap::folders::LabelPass>) {
        if let SourceSession::Imap(s) = self {
            s.read_labels(pass);
        }
    }

    /// Opens `wire` read-only.
    pub async fn examine(&mut self, wire: &str) -> Result<Selected, ImapError> {
        match self {
            SourceSession::Imap(s) => s.examine(wire).await,
            SourceSession::Pop3(s) => s.examine(wire).await,
            SourceSession::Files(s) => s.examine(wire).await,
        }
    }

    /// Opens `wire` and lists its messages in `uids`: for an IMAP source in one round trip.
    pub async fn examine_and_list(
        &mut self,
        wire: &str,
        uids: &UidSet,
    ) -> Result<(Selected, Vec<Entry>), ImapError> {
        if let SourceSession::Imap(s) = self {
            return s.examine_and_list(wire, uids).await;
        }
        let sel = self.examine(wire).await?;
        let entries = if sel.exists > 0 {
            self.fetch_meta(uids).await?
        } else {
            Vec::new()
        };
        Ok((sel, entries))
    }

    /// Identity, flags, date and size of the messages in `uids` (a UID set).
    pub async fn fetch_meta(&mut self, uids: &UidSet) -> Result<Vec<Entry>, ImapError> {
        match self {
            SourceSession::Imap(s) => s.fetch_meta(uids).await,
            SourceSession::Pop3(s) => s.fetch_meta(&uids.to_string()).await,
            SourceSession::Files(s) => s.fetch_meta(&uids.to_string()).await,
        }
    }

    /// The Message-IDs of the messages in `uids`, for a report that names them. Only an
    /// IMAP source is asked: the others' messages are named by their keys.
    pub async fn message_ids(&mut self, uids: &UidSet) -> Result<Vec<(u32, String)>, ImapError> {
        match self {
            SourceSession::Imap(s) => s.message_ids(uids).await,
            SourceSession::Pop3(_) | SourceSession::Files(_) => Ok(Vec::new()),
        }
    }

    /// Current flags of the messages in `uids` (optionally only those changed since a
    /// MODSEQ; a file source has no MODSEQs and gives all).
    pub async fn fetch_flags(
        &mut self,
        uids: &UidSet,
        changed_since: Option<u64>,
    ) -> Result<Vec<(u32, FlagSet)>, ImapError> {
        match self {
            SourceSession::Imap(s) => s.fetch_flags(uids, changed_since).await,
            SourceSession::Pop3(s) => s.fetch_flags(&uids.to_string()).await,
            SourceSession::Files(s) => s.fetch_flags(&uids.to_string()).await,
        }
    }

    /// Asks for the bodies of `uids` (see [`ImapSource::send_bodies`]); a file source reads
    /// them now and keeps them in `fetches` until taken.
    pub async fn send_bodies(
        &mut self,
        fetches: &mut BodyFetches,
        uids: &[u32],
        largest: u64,
    ) -> Result<(), ImapError> {
        match self {
            SourceSession::Imap(s) => s.send_bodies(fetches, uids, largest).await,
            SourceSession::Pop3(s) => {
                let answer = s.read_bodies(uids).await?;
                fetches.push_ready(answer);
                Ok(())
            }
            SourceSession::Files(s) => {
                let answer = s.read_bodies(uids).await?;
                fetches.push_ready(answer);
                Ok(())
            }
        }
    }

    pub async fn next_bodies(
        &mut self,
        fetches: &mut BodyFetches,
    ) -> Result<Option<Vec<Outgoing>>, ImapError> {
        match self {
            SourceSession::Imap(s) => s.next_bodies(fetches).await,
            SourceSession::Pop3(_) | SourceSession::Files(_) => Ok(fetches.pop_ready()),
        }
    }

    pub async fn settle(&mut self, fetches: &mut BodyFetches) -> Result<(), ImapError> {
        match self {
            SourceSession::Imap(s) => s.settle(fetches).await,
            SourceSession::Pop3(_) | SourceSession::Files(_) => Ok(()),
        }
    }

    pub async fn discard(&mut self, fetches: &mut BodyFetches) -> Result<(), ImapError> {
        match self {
            SourceSession::Imap(s) => s.discard(fetches).await,
            SourceSession::Pop3(_) | SourceSession::Files(_) => {
                fetches.clear_ready();
                Ok(())
            }
        }
    }

    pub async fn logout(self) {
        match self {
            SourceSession::Imap(s) => s.logout().await,
            SourceSession::Pop3(s) => s.logout().await,
            SourceSession::Files(_) => {}
        }
    }
}
