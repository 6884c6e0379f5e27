//! From a loaded manifest to a ready [`Engine`]: mailboxes with their logins resolved,
//! connectors (TLS, CA, connection limits) and the migration's cache store.

use std::sync::Arc;

use anyhow::{Context, Result};

use super::{Engine, Observer, Options};
use crate::accounts::{self, Account};
use crate::imap::cache::CacheStore;
use crate::imap::conn::{Connector, Side};
use crate::limits::{Budgets, Governor};
use crate::secrets::Resolver;
use crate::sources::SourceConnector;
use crate::spec::{Direction, Endpoint, MailMigration};

/// One migration ready to run.
#[derive(Debug)]
pub struct Prepared {
    /// `metadata.name`.
    pub name: String,
    pub engine: Arc<Engine>,
    pub accounts: Vec<Account>,
    /// Mailboxes at once (`spec.sync.concurrency`).
    pub concurrency: usize,
}

/// Resolves `migration`: secrets (through `resolver`: next to the manifest, or in a
/// cluster the namespace's Secrets), mailboxes, CA certificates, connectors; caches are
/// kept in `store` (the CLI's state directory).
pub fn prepare_with(
    migration: &MailMigration,
    resolver: &Resolver,
    store: Arc<dyn CacheStore>,
    options: Options,
    observer: Arc<dyn Observer>,
) -> Result<Prepared> {
    let name = migration.name().to_owned();
    let spec = &migration.spec;
    let resolver = resolver.clone();
    let discovered = crate::directory::discover_blocking(spec, &resolver)
        .with_context(|| format!("{name}: accounts.discover"))?;
    let accounts = accounts::resolve_with(spec, &resolver, &discovered)
        .with_context(|| format!("{name}: mailboxes"))?;
    let budgets = budgets(store.as_ref(), &store);
    let governor = |limits: Option<&crate::spec::Limits>, direction| {
        Arc::new(Governor::new(
            direction,
            limits.map(|l| l.effective(direction)).unwrap_or_default(),
            Arc::clone(&budgets),
        ))
    };
    let source = SourceConnector::new(&spec.source, &resolver, Arc::clone(&store))
        .with_context(|| format!("{name}: source"))?
        .governed(governor(spec.source.limits.as_ref(), Direction::Download));
    let destination = connector(Side::Destination, &spec.destination.imap, &resolver)
        .with_context(|| format!("{name}: destination"))?
        .governed(governor(
            spec.destination.limits.as_ref(),
            Direction::Upload,
        ));
    let engine = Engine::new(source, destination, spec.folders.clone(), store)
        .with_options(options)
        .with_observer(observer);
    Ok(Prepared {
        name,
        engine: Arc::new(engine),
        accounts,
        concurrency: usize::from(spec.sync.clone().unwrap_or_default().concurrency),
    })
}

/// The daily budgets' records, kept beside the caches. Unreadable records start empty,
/// with a warning: the budgets then count from now, as after a first run.
fn budgets(store: &dyn CacheStore, keep: &Arc<dyn CacheStore>) -> Arc<Budgets> {
    let usage = store.load_usage().unwrap_or_else(|e| {
        tracing::warn!(error = %e, "ignoring unreadable daily budget records");
        None
    });
    let keep = Arc::clone(keep);
    Budgets::new(
        usage.unwrap_or_default(),
        Box::new(move |u| keep.save_usage(u)),
    )
}

/// A connector for one server, its private CA (if any) read through the resolver.
fn connector(side: Side, endpoint: &Endpoint, resolver: &Resolver) -> Result<Connector> {
    Connector::resolved(side, endpoint, resolver)
}
