//! The copy engine: sync and verify whole mailboxes between two real servers.
//!
//! A mailbox pass connects to both servers (one connection each, under each server's
//! connection limit), lists both, maps the folders ([`folder_table`]), creates the missing
//! destination folders in plan order (with their special use) and subscribes them, then
//! passes over each source folder in turn (`folder.rs`): STATUS on both sides decides with
//! the cache whether nothing, the new messages only, or a full comparison is needed; what
//! is missing is fetched from the source in batches bounded by bytes and appended to the
//! destination while the next batch is being fetched; flag changes are applied; the cache
//! is written once the folder's pass is complete.
//!
//! # What makes it safe
//!
//! - **The source is only read**: [`SourceSession`] has no method that writes; folders are
//!   opened with EXAMINE and bodies fetched with BODY.PEEK.
//! - **What to copy is always decided by comparing the servers** (the multiset diff, or the
//!   cache's proven shortcuts of it, see [`crate::imap::cache`]), never by a log of what
//!   was sent. A crash at any instant leaves the destination with a subset of the copies
//!   plus, at most, messages whose APPEND completed unseen; the next pass finds those on
//!   the destination and does not copy them again. So a restart converges to an exact copy.
//! - **Retries** (connection lost, server restarting) reconnect both sides and resume at
//!   the folder that was interrupted; its pass starts over with a comparison, which makes
//!   the resumption exact. Backoff is exponential with jitter ([`retry`]). A refused login
//!   is not retried. A message the destination refuses is reported (folder, date, size,
//!   reason), skipped, remembered in the cache and not retried on later runs.
//!
//! Memory is bounded by the in-flight window (two batches of [`Options::batch_bytes`], one
//! being appended and one being fetched, plus one message larger than that), not by the
//! size or number of messages in a mailbox.

mod folder;
pub mod retry;
mod setup;
mod verify;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

pub use retry::RetryPolicy;
pub use setup::{Prepared, connector, prepare, prepare_with};

use self::retry::{AttemptError, Jitter};
use super::conn::Connector;
use super::folders::{FolderTable, Note, folder_table};
use super::identity::MessageKey;
use super::report::{FolderReport, MailboxReport, MessageRef, RefusedMessage};
use super::session::{DestinationSession, Listing, SourceSession};
use crate::accounts::Account;
use crate::spec::Folders;
use crate::store::CacheStore;

/// Tuning of the copy engine.
#[derive(Clone, Debug)]
pub struct Options {
    /// A batch of messages fetched from the source (and appended to the destination) holds
    /// at most this many bytes, or one message when a single message is larger.
    pub batch_bytes: u64,
    /// ... and at most this many messages.
    pub batch_messages: usize,
    pub retry: RetryPolicy,
}

impl Default for Options {
    /// 4 MB or 200 messages per batch: two batches in flight keep memory near 10 MB per
    /// mailbox, and a batch is large enough that each round trip carries plenty.
    fn default() -> Self {
        Options {
            batch_bytes: 4_000_000,
            batch_messages: 200,
            retry: RetryPolicy::default(),
        }
    }
}

/// Progress of a run, for progress bars.
#[derive(Clone, Debug)]
pub enum Progress<'a> {
    /// A mailbox pass (or a retry of it) starts.
    MailboxStarted {
        address: &'a str,
    },
    /// `messages` messages of `bytes` bytes are to be copied from `folder` (on a retry,
    /// what is left of it: this replaces the folder's earlier plan).
    Planned {
        address: &'a str,
        folder: &'a str,
        messages: u64,
        bytes: u64,
    },
    /// Messages of `folder` were copied (or refused, or gone from the source): done with
    /// them.
    Copied {
        address: &'a str,
        folder: &'a str,
        messages: u64,
        bytes: u64,
    },
    /// A connection was lost; the mailbox is retried after `delay`.
    Retrying {
        address: &'a str,
        attempt: u32,
        delay: Duration,
        error: &'a str,
    },
    MailboxFinished {
        address: &'a str,
        perfect: bool,
    },
}

/// Receives [`Progress`]. Must be cheap: it is called from the copy loop.
pub trait Observer: Send + Sync {
    fn progress(&self, event: Progress<'_>);
}

/// An observer that ignores everything.
#[derive(Clone, Copy, Debug, Default)]
pub struct Silent;

impl Observer for Silent {
    fn progress(&self, _: Progress<'_>) {}
}

/// Syncs and verifies the mailboxes of one migration.
pub struct Engine {
    source: Connector,
    destination: Connector,
    folders: Option<Folders>,
    store: Arc<dyn CacheStore>,
    options: Options,
    observer: Arc<dyn Observer>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("source", &self.source)
            .field("destination", &self.destination)
            .field("options", &self.options)
            .finish()
    }
}

impl Engine {
    /// `folders` is the manifest's `spec.folders`; `store` keeps the per-folder caches.
    pub fn new(
        source: Connector,
        destination: Connector,
        folders: Option<Folders>,
        store: Arc<dyn CacheStore>,
    ) -> Engine {
        Engine {
            source,
            destination,
            folders,
            store,
            options: Options::default(),
            observer: Arc::new(Silent),
        }
    }

    pub fn with_options(mut self, options: Options) -> Engine {
        self.options = options;
        self
    }

    pub fn with_observer(mut self, observer: Arc<dyn Observer>) -> Engine {
        self.observer = observer;
        self
    }

    pub fn options(&self) -> &Options {
        &self.options
    }

    /// Copies or re-syncs `accounts`, `concurrency` mailboxes at a time (each on its own
    /// task). Reports come back in the order of `accounts`.
    pub async fn sync_all(
        self: &Arc<Self>,
        accounts: &[Account],
        concurrency: usize,
    ) -> Vec<MailboxReport> {
        self.for_all(accounts, concurrency, Kind::Sync).await
    }

    /// Compares `accounts`, `concurrency` mailboxes at a time.
    pub async fn verify_all(
        self: &Arc<Self>,
        accounts: &[Account],
        concurrency: usize,
    ) -> Vec<MailboxReport> {
        self.for_all(accounts, concurrency, Kind::Verify).await
    }

    async fn for_all(
        self: &Arc<Self>,
        accounts: &[Account],
        concurrency: usize,
        kind: Kind,
    ) -> Vec<MailboxReport> {
        let limit = Arc::new(Semaphore::new(concurrency.max(1)));
        let mut tasks = Vec::with_capacity(accounts.len());
        for account in accounts {
            let engine = Arc::clone(self);
            let account = account.clone();
            let limit = Arc::clone(&limit);
            tasks.push(tokio::spawn(async move {
                let _permit = limit.acquire_owned().await.expect("never closed");
                match kind {
                    Kind::Sync => engine.sync_mailbox(&account).await,
                    Kind::Verify => engine.verify_mailbox(&account).await,
                }
            }));
        }
        let mut reports = Vec::with_capacity(tasks.len());
        for (task, account) in tasks.into_iter().zip(accounts) {
            reports.push(task.await.unwrap_or_else(|e| MailboxReport {
                address: account.address.clone(),
                folders: Vec::new(),
                error: Some(format!("internal error: {e}")),
            }));
        }
        reports
    }

    /// Copies or re-syncs one mailbox now (see the module docs), retrying lost connections.
    pub async fn sync_mailbox(&self, account: &Account) -> MailboxReport {
        self.mailbox(account, Kind::Sync).await
    }

    /// Compares one mailbox folder by folder: counts, sizes, identities; lists every
    /// missing, surplus and extra message. Writes nothing anywhere (the destination's
    /// folders are opened with EXAMINE too).
    pub async fn verify_mailbox(&self, account: &Account) -> MailboxReport {
        self.mailbox(account, Kind::Verify).await
    }

    /// Runs attempts at a mailbox until one succeeds, one fails for good, or they keep
    /// failing without progress `retry.attempts` times.
    async fn mailbox(&self, account: &Account, kind: Kind) -> MailboxReport {
        let address = account.address.as_str();
        let policy = &self.options.retry;
        let mut jitter = Jitter::new(address);
        let mut failures = 0u32;
        let mut run = Run::default();
        let error = loop {
            self.observer.progress(Progress::MailboxStarted { address });
            let before = run.progress();
            let result = match kind {
                Kind::Sync => self.sync_attempt(account, &mut run).await,
                Kind::Verify => self.verify_attempt(account, &mut run).await,
            };
            let Err(e) = result else { break None };
            if run.progress() > before {
                failures = 0;
            }
            failures += 1;
            if !e.is_transient() {
                tracing::error!(mailbox = %address, error = %e, "mailbox failed");
                break Some(e.to_string());
            }
            if failures > policy.attempts {
                tracing::error!(mailbox = %address, error = %e, attempts = failures, "mailbox failed: giving up after repeated failures");
                break Some(format!("{e} (gave up after {failures} attempts)"));
            }
            let delay = policy.delay(failures, &mut jitter);
            let text = e.to_string();
            tracing::warn!(mailbox = %address, error = %text, attempt = failures, delay_ms = delay.as_millis() as u64, "connection lost; retrying");
            self.observer.progress(Progress::Retrying {
                address,
                attempt: failures,
                delay,
                error: &text,
            });
            tokio::time::sleep(delay).await;
        };
        let report = run.into_report(address, error, matches!(kind, Kind::Sync));
        tracing::info!(mailbox = %address, perfect = report.is_perfect(), folders = report.folders.len(), "mailbox done");
        self.observer.progress(Progress::MailboxFinished {
            address,
            perfect: report.is_perfect(),
        });
        report
    }

    /// Where each of `account`'s source folders would go, and why: both servers are listed
    /// (LIST and LSUB only, nothing is opened or written on either side) and mapped as a sync
    /// would map them. What `mailshift folders` prints.
    pub async fn folder_mapping(&self, account: &Account) -> Result<FolderTable, AttemptError> {
        let (mut src, mut dst) = self.connect(account).await?;
        let src_list = src.list().await?;
        let dst_list = dst.list().await?;
        src.logout().await;
        dst.logout().await;
        Ok(folder_table(
            &src_list.folder_list(),
            &dst_list.folder_list(),
            self.folders.as_ref(),
        )?)
    }

    async fn connect(
        &self,
        account: &Account,
    ) -> Result<(SourceSession, DestinationSession), AttemptError> {
        // Always source first, then destination: with per-server limits, every mailbox
        // taking its slots in the same order cannot deadlock.
        let src = SourceSession::new(self.source.connect(&account.source).await?);
        let dst = DestinationSession::new(self.destination.connect(&account.destination).await?);
        Ok((src, dst))
    }

    async fn sync_attempt(&self, account: &Account, run: &mut Run) -> Result<(), AttemptError> {
        let address = account.address.as_str();
        let (mut src, mut dst) = self.connect(account).await?;
        let src_list = src.list().await?;
        let mut dst_list = dst.list().await?;
        let table = folder_table(
            &src_list.folder_list(),
            &dst_list.folder_list(),
            self.folders.as_ref(),
        )?;
        run.set_table(&table);

        // Create the missing destination folders, parents first (the plan's order).
        let mut created: BTreeSet<String> = BTreeSet::new();
        let mut failed: HashMap<String, String> = HashMap::new();
        for plan in &table.plans {
            let Some(dest) = &plan.dest else { continue };
            if !plan.create || created.contains(dest) || failed.contains_key(dest) {
                continue;
            }
            let wire = dst_list.wire_name(dest);
            match dst.create(&wire, plan.special_use).await {
                Ok(()) => {
                    tracing::info!(mailbox = %address, folder = %dest, special_use = ?plan.special_use.and_then(|r| r.special_use()), "created folder");
                    created.insert(dest.clone());
                }
                Err(e) if e.is_connection_lost() => return Err(e.into()),
                Err(e) => {
                    tracing::error!(mailbox = %address, folder = %dest, error = %e, "cannot create folder");
                    failed.insert(dest.clone(), e.to_string());
                }
            }
        }
        if !created.is_empty() {
            // Learn how the server spells what it created.
            dst_list = dst.list().await?;
        }
        for plan in &table.plans {
            let Some(dest) = &plan.dest else { continue };
            if plan.subscribe && !failed.contains_key(dest) {
                let wire = dst_list.wire_name(dest);
                match dst.subscribe(&wire).await {
                    Ok(()) => {}
                    Err(e) if e.is_connection_lost() => return Err(e.into()),
                    Err(e) => {
                        tracing::warn!(mailbox = %address, folder = %dest, error = %e, "cannot subscribe")
                    }
                }
            }
        }

        for plan in &table.plans {
            let Some(dest) = &plan.dest else { continue };
            let state = run.folder(&plan.source, dest);
            if state.done {
                continue;
            }
            if let Some(e) = failed.get(dest) {
                state.report.error = Some(e.clone());
                state.done = true;
                continue;
            }
            let target = folder::Target {
                address,
                source: &plan.source,
                source_wire: src_list.wire_name(&plan.source),
                dest,
                dest_wire: dst_list.wire_name(dest),
            };
            match folder::sync_folder(self, &mut src, &mut dst, &target, state).await {
                Ok(()) => state.done = true,
                Err(e) if e.is_connection_lost() => return Err(e.into()),
                Err(e) => {
                    tracing::error!(mailbox = %address, folder = %plan.source, error = %e, "folder failed");
                    state.report.error = Some(e.to_string());
                    state.done = true;
                }
            }
        }
        src.logout().await;
        dst.logout().await;
        Ok(())
    }

    async fn verify_attempt(&self, account: &Account, run: &mut Run) -> Result<(), AttemptError> {
        let (mut src, mut dst) = self.connect(account).await?;
        let src_list = src.list().await?;
        let dst_list = dst.list().await?;
        let table = folder_table(
            &src_list.folder_list(),
            &dst_list.folder_list(),
            self.folders.as_ref(),
        )?;
        run.set_table(&table);
        for plan in &table.plans {
            let Some(dest) = &plan.dest else { continue };
            let state = run.folder(&plan.source, dest);
            if state.done {
                continue;
            }
            let target = folder::Target {
                address: &account.address,
                source: &plan.source,
                source_wire: src_list.wire_name(&plan.source),
                dest,
                dest_wire: dst_list.wire_name(dest),
            };
            let exists = dest_exists(&dst_list, dest);
            match verify::verify_folder(self, &mut src, &mut dst, &target, exists, state).await {
                Ok(()) => state.done = true,
                Err(e) if e.is_connection_lost() => return Err(e.into()),
                Err(e) => {
                    state.report.error = Some(e.to_string());
                    state.done = true;
                }
            }
        }
        src.logout().await;
        dst.logout().await;
        Ok(())
    }
}

fn dest_exists(list: &Listing, dest: &str) -> bool {
    if dest.eq_ignore_ascii_case("INBOX") {
        return true;
    }
    list.get(dest).is_some_and(|f| f.selectable())
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    Sync,
    Verify,
}

/// One folder's state across the attempts of one run.
#[derive(Debug, Default)]
struct FolderState {
    report: FolderReport,
    done: bool,
    /// The last pass compared everything (so surplus and extra are known).
    full: bool,
    /// Refused during this run, by source UID, under this source UIDVALIDITY.
    refused: BTreeMap<u32, RefusedMessage>,
    refused_validity: Option<u32>,
}

/// A mailbox's run: the folders in plan order and their states.
#[derive(Debug, Default)]
struct Run {
    order: Vec<String>,
    folders: HashMap<String, FolderState>,
    /// Destination folder → source folders merged into it (two or more).
    merges: BTreeMap<String, Vec<String>>,
}

impl Run {
    fn set_table(&mut self, table: &FolderTable) {
        self.merges.clear();
        for plan in &table.plans {
            let Some(dest) = &plan.dest else { continue };
            if !self.order.contains(&plan.source) {
                self.order.push(plan.source.clone());
            }
            if plan.notes.iter().any(|n| matches!(n, Note::MergedWith(_))) {
                self.merges
                    .entry(dest.clone())
                    .or_default()
                    .push(plan.source.clone());
            }
        }
    }

    fn folder(&mut self, source: &str, dest: &str) -> &mut FolderState {
        let state = self.folders.entry(source.to_owned()).or_default();
        state.report.source = source.to_owned();
        state.report.destination = dest.to_owned();
        state
    }

    /// Grows with every copied message and finished folder: a retry after progress starts
    /// the failure count again.
    fn progress(&self) -> u64 {
        self.folders.values().filter(|f| f.done).count() as u64
            + self.folders.values().map(|f| f.report.copied).sum::<u64>()
    }

    fn into_report(mut self, address: &str, error: Option<String>, sync: bool) -> MailboxReport {
        for sources in self.merges.values() {
            reconcile_merge(&mut self.folders, sources, sync);
        }
        let mut folders = Vec::with_capacity(self.order.len());
        for name in &self.order {
            if let Some(f) = self.folders.remove(name) {
                let mut r = f.report;
                if !f.done && r.error.is_none() && error.is_some() {
                    r.error = Some("not finished".into());
                }
                folders.push(r);
            }
        }
        MailboxReport {
            address: address.to_owned(),
            folders,
            error,
        }
    }
}

/// Source folders merged into one destination folder are each compared with the whole
/// destination folder, so each sees the others' messages as extra (or, for a message they
/// share, as surplus). What is really extra or surplus is what every one of them sees
/// so: for each key, the destination holds it `n` times and source folder `i` holds it
/// `a_i` times; `n - max(a_i)` copies are surplus (extra when no source has it).
///
/// When not every merged folder was compared in full this run (a sync whose other folders
/// took a shortcut), surplus and extra are not known and are left out.
fn reconcile_merge(folders: &mut HashMap<String, FolderState>, sources: &[String], sync: bool) {
    let all_full = sources.iter().all(|s| {
        folders
            .get(s)
            .is_some_and(|f| f.full && f.report.error.is_none())
    });
    if !all_full {
        if sync {
            for s in sources {
                if let Some(f) = folders.get_mut(s) {
                    f.report.surplus.clear();
                    f.report.extra.clear();
                }
            }
        }
        return;
    }
    // For each folder: key → destination messages unmatched from its point of view.
    let unmatched: Vec<HashMap<MessageKey, Vec<MessageRef>>> = sources
        .iter()
        .map(|s| {
            let mut m: HashMap<MessageKey, Vec<MessageRef>> = HashMap::new();
            if let Some(f) = folders.get(s) {
                for r in f.report.surplus.iter().chain(&f.report.extra) {
                    m.entry(r.key.clone()).or_default().push(r.clone());
                }
            }
            m
        })
        .collect();
    let mut surplus = Vec::new();
    let mut extra = Vec::new();
    if let Some(first) = unmatched.first() {
        for (key, refs) in first {
            let n = unmatched
                .iter()
                .map(|m| m.get(key).map_or(0, Vec::len))
                .min()
                .unwrap_or(0);
            let in_some_source = sources.iter().any(|s| {
                folders
                    .get(s)
                    .is_some_and(|f| f.report.surplus.iter().any(|r| &r.key == key))
            });
            let mut refs = refs.clone();
            refs.sort_by_key(|r| r.uid);
            refs.truncate(n);
            if in_some_source {
                surplus.extend(refs);
            } else {
                extra.extend(refs);
            }
        }
    }
    surplus.sort_by_key(|r| r.uid);
    extra.sort_by_key(|r| r.uid);
    // The destination's unmatched messages are listed once, with the first source folder.
    for (i, s) in sources.iter().enumerate() {
        if let Some(f) = folders.get_mut(s) {
            if i == 0 {
                f.report.surplus = std::mem::take(&mut surplus);
                f.report.extra = std::mem::take(&mut extra);
            } else {
                f.report.surplus.clear();
                f.report.extra.clear();
            }
        }
    }
}
