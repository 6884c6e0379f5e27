//! Where the controller gets a mail engine for a migration: real IMAP connections, or a
//! model in tests.

use std::sync::Arc;

use anyhow::Result;

use crate::accounts::Account;
use crate::engine::Silent;
use crate::reconcile::MailEngine;
use crate::reconcile::imap::ImapEngine;
use crate::secrets::Resolver;
use crate::spec::MailMigration;
use crate::store::StateDir;

/// Builds the engine and resolves the accounts of one migration, secrets read through
/// `resolver`, caches kept in `store`.
pub trait EngineFactory: Send + Sync + 'static {
    type Engine: MailEngine + 'static;

    fn prepare(
        &self,
        migration: &MailMigration,
        resolver: &Resolver,
        store: StateDir,
    ) -> Result<(Self::Engine, Vec<Account>)>;
}

/// The real engine: IMAP to both servers.
#[derive(Clone, Copy, Debug, Default)]
pub struct Imap;

impl EngineFactory for Imap {
    type Engine = ImapEngine;

    fn prepare(
        &self,
        migration: &MailMigration,
        resolver: &Resolver,
        store: StateDir,
    ) -> Result<(ImapEngine, Vec<Account>)> {
        ImapEngine::prepare_with(migration, resolver, store, Arc::new(Silent))
    }
}
