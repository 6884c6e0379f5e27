//! The copy engine: sync and verify whole mailboxes between two real servers.
//!
//! A mailbox pass connects to both servers (one connection each, under each server's
//! connection limit, both logins at once), lists both, maps the folders ([`folder_table`]),
//! creates the missing destination folders in plan order (with their special use) and
//! subscribes them, then passes over the source folders (`folder.rs`), up to
//! [`Options::folder_concurrency`] at once, each on its own connection pair (the extra
//! pairs only when a folder turns out to be real work and both servers have a free slot;
//! source folders merged into one destination folder always go one after the other on the
//! same pair; the report keeps the table's order). In a folder pass, STATUS on both sides
//! (taken for all folders at once, pipelined, before the passes start) decides with the
//! cache whether nothing, the new messages only, or a full comparison is needed; what is
//! missing is fetched from the source in batches bounded by bytes, several asked for ahead
//! (pipelined on the one connection) while earlier ones are appended to the destination;
//! flag changes are applied; the cache is written once the folder's pass is complete.
//!
//! # What makes it safe
//!
//! - **The source is only read**: [`SourceSession`] has no method that writes; folders are
//!   opened with EXAMINE and bodies fetched with BODY.PEEK; files are only read.
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
//! Memory is bounded by the in-flight window (twice [`Options::batch_bytes`], shared by the
//! folders copied at once: bodies asked for and not yet appended, in batches of a quarter of
//! a folder's window; a message larger than the window has it to itself), not by the size
//! or number of messages in a mailbox.

mod answers;
mod copy;
mod folder;
mod landing;
mod names;
mod naming;
pub mod retry;
mod setup;
mod verify;
mod windows;

use crate::imap::command::UidSet;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tracing::Instrument as _;

use tokio::sync::Semaphore;

pub use retry::RetryPolicy;
pub use setup::{Prepared, prepare_with};

use self::retry::{AttemptError, Jitter};
use crate::accounts::Account;
use crate::imap::cache::CacheStore;
use crate::imap::conn::{Connector, LoginGate, Slot};
use crate::imap::diff::Entry;
use crate::imap::folders::{FolderTable, Note, folder_table};
use crate::imap::identity::MessageKey;
use crate::imap::proto::ImapError;
use crate::imap::report::{FolderReport, MailboxReport, MessageRef, RefusedMessage};
use crate::imap::session::{DestinationSession, Listing, MailboxStatus};
use crate::limits::{Governor, Pause};
use crate::sources::{SourceConnector, SourceSession, SourceSlot};
use crate::spec::Folders;

/// Tuning of the copy engine.
#[derive(Clone, Debug)]
pub struct Options {
    /// A batch of messages fetched from the source (and appended to the destination) holds
    /// at most this many bytes, or one message when a single message is larger. It is the
    /// mailbox's budget: with several folders copied at once, each gets an equal share.
    pub batch_bytes: u64,
    /// ... and at most this many messages.
    pub batch_messages: usize,
    /// Folders of one mailbox copied (or compared) at once, each over its own source and
    /// destination connection. The first pair is always opened; each further pair only when
    /// both servers have a free slot under their `maxConnections` at that moment, so a
    /// limit of 1 (or other mailboxes using the slots) simply means one folder at a time.
    pub folder_concurrency: usize,
    /// A first copy into an empty destination folder lists the source about this many
    /// messages at a time (a range of UIDs) and copies each window before listing the next,
    /// so that a folder of a million messages is never held as one listing. Folders of at
    /// most this many messages, and every other pass, list the whole folder at once.
    pub list_window: u32,
    pub retry: RetryPolicy,
}

impl Default for Options {
    /// 4 MB or 200 messages per batch, shared by the folders copied at once: two batches in
    /// flight keep memory near 10 MB per mailbox whether one or two folders are being copied
    /// (a 5000-message mailbox of nine folders peaked at 63 MB when each of two folders had
    /// 4 MB batches, 64 MB being the target), and a batch is large enough that each round
    /// trip carries plenty. Two folders at once: one connection pair keeps one (single-threaded) server process
    /// busy on each side, and the two wait for each other at every batch boundary and for
    /// each folder's fixed cost (STATUS, EXAMINE, SELECT, the cache); a second pair fills
    /// those gaps (measured in bench/RESULTS.md).
    fn default() -> Self {
        Options {
            batch_bytes: 4_000_000,
            batch_messages: 200,
            folder_concurrency: 2,
            // 50,000 entries are under 3 MB; a window's fixed cost is one round trip.
            list_window: 50_000,
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
    /// The server asked to slow down; the mailbox goes on after `wait`.
    Throttled {
        address: &'a str,
        wait: Duration,
        reason: &'a str,
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
    source: SourceConnector,
    destination: Connector,
    folders: Option<Folders>,
    store: Arc<dyn CacheStore>,
    options: Options,
    observer: Arc<dyn Observer>,
    refused: names::Refused,
    /// The source's and the destination's `limits`.
    governors: (Arc<Governor>, Arc<Governor>),
    /// Held while a batch is granted and charged to the budgets of both servers, so that
    /// folders copied at once never both take the last room.
    admitting: Mutex<()>,
}

/// A state file that could not be written, as the pass's error.
fn unsaved(what: String, e: &anyhow::Error) -> ImapError {
    ImapError::Refused {
        what,
        reason: format!("{e:#}"),
    }
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
        source: impl Into<SourceConnector>,
        destination: Connector,
        folders: Option<Folders>,
        store: Arc<dyn CacheStore>,
    ) -> Engine {
        let source: SourceConnector = source.into();
        let governors = (source.governor(), destination.governor().clone());
        Engine {
            source,
            destination,
            folders,
            store,
            options: Options::default(),
            observer: Arc::new(Silent),
            refused: names::Refused::default(),
            governors,
            admitting: Mutex::new(()),
        }
    }

    /// How many of `batch`'s messages (in order) the daily budgets of both servers grant
    /// `address` now, charged to them at once; or the pause, when not even the first fits.
    fn admit(&self, address: &str, batch: &[&Entry]) -> Result<usize, Pause> {
        let sizes: Vec<u64> = batch.iter().map(|e| u64::from(e.size)).collect();
        let _one_at_a_time = self.admitting.lock().unwrap_or_else(|e| e.into_inner());
        let now = chrono::Utc::now();
        let (src, dst) = &self.governors;
        let n = src
            .grant(address, &sizes, now)?
            .min(dst.grant(address, &sizes, now)?);
        let bytes = sizes[..n].iter().sum();
        src.spend(address, bytes, now);
        dst.spend(address, bytes, now);
        Ok(n)
    }

    /// The largest batch the servers' rates make sensible: bytes, messages.
    fn batch_cap(&self) -> (u64, usize) {
        let (src, dst) = &self.governors;
        let (sb, sm) = src.batch_cap();
        let (db, dm) = dst.batch_cap();
        (
            sb.into_iter().chain(db).min().unwrap_or(u64::MAX),
            sm.into_iter().chain(dm).min().unwrap_or(usize::MAX),
        )
    }

    /// Connections of one mailbox at once (`limits.perMailbox.connections`, the smaller
    /// of both servers').
    fn mailbox_connections(&self) -> usize {
        let (src, dst) = &self.governors;
        [src, dst]
            .iter()
            .filter_map(|g| g.limits().mailbox_connections)
            .min()
            .map_or(usize::MAX, usize::from)
    }

    /// The destination's folders as the mapping sees them, with the characters it is known
    /// to refuse in names.
    fn destination_folders(&self, list: &Listing) -> crate::imap::folders::FolderList {
        let mut folders = list.folder_list();
        folders.refused = self.refused.get(self.store.as_ref());
        folders
    }

    /// The source's and the destination's connectors, whose connection limits every
    /// other user of these servers in the process must share.
    pub fn connectors(&self) -> (&SourceConnector, &Connector) {
        (&self.source, &self.destination)
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
            // A child of the caller's span (the migration's, the step's), which a spawned
            // task would otherwise lose.
            let span = tracing::info_span!("mailbox", mailbox = %account.address);
            tasks.push(tokio::spawn(
                async move {
                    let _permit = limit.acquire_owned().await.expect("never closed");
                    match kind {
                        Kind::Sync => engine.sync_mailbox(&account).await,
                        Kind::Verify => engine.verify_mailbox(&account).await,
                    }
                }
                .instrument(span),
            ));
        }
        let mut reports = Vec::with_capacity(tasks.len());
        for (task, account) in tasks.into_iter().zip(accounts) {
            reports.push(task.await.unwrap_or_else(|e| MailboxReport {
                address: account.address.clone(),
                folders: Vec::new(),
                error: Some(format!("internal error: {e}")),
                paused: None,
                not_mail: Vec::new(),
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
        let mut timeouts = 0u32;
        let mut login_cuts = 0u32;
        let mut throttles = 0u32;
        let mut run = Run::default();
        let mut paused = None;
        let error = loop {
            self.observer.progress(Progress::MailboxStarted { address });
            let before = run.progress();
            let result = match kind {
                Kind::Sync => self.sync_attempt(account, &mut run).await,
                Kind::Verify => self.verify_attempt(account, &mut run).await,
            };
            let Err(e) = result else { break None };
            if let Some(p) = e.paused() {
                tracing::info!(mailbox = %address, until = %p.until, budget = %p.what, "daily budget spent; the copy pauses");
                paused = Some(p.clone());
                break None;
            }
            if run.progress() > before {
                (failures, timeouts, login_cuts, throttles) = (0, 0, 0, 0);
            }
            // Asked to slow down: wait as told and go on, without counting a failure.
            if let Some(told) = e.throttled()
                && throttles < retry::THROTTLE_ATTEMPTS
            {
                throttles += 1;
                let wait = told
                    .unwrap_or_else(|| policy.delay(throttles, &mut jitter))
                    .min(retry::MAX_THROTTLE_WAIT);
                let text = e.to_string();
                tracing::warn!(mailbox = %address, error = %text, wait_ms = wait.as_millis() as u64, "throttled by the server; waiting as it asks");
                self.observer.progress(Progress::Throttled {
                    address,
                    wait,
                    reason: &text,
                });
                tokio::time::sleep(wait).await;
                continue;
            }
            failures += 1;
            timeouts = if e.is_timeout() { timeouts + 1 } else { 0 };
            login_cuts = if e.is_login_cut() { login_cuts + 1 } else { 0 };
            if !e.is_transient() {
                tracing::error!(mailbox = %address, error = %e, "mailbox failed");
                break Some(e.to_string());
            }
            if login_cuts >= retry::LOGIN_CUT_ATTEMPTS {
                tracing::error!(mailbox = %address, error = %e, attempts = login_cuts, "mailbox failed: login cut off repeatedly");
                break Some(format!(
                    "{e}, {login_cuts} times in a row: not sending the password again (a server that counts these as failed logins may lock the account)"
                ));
            }
            if timeouts >= retry::TIMEOUT_ATTEMPTS {
                tracing::error!(mailbox = %address, error = %e, attempts = timeouts, "mailbox failed: the server stopped answering");
                break Some(format!(
                    "{e} (gave up after {timeouts} attempts that timed out)"
                ));
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
        let mut report = run.into_report(address, error, matches!(kind, Kind::Sync));
        report.paused = paused;
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
        let (src_list, dst_list) = tokio::join!(src.list(), dst.list());
        let (src_list, dst_list) = (src_list?, dst_list?);
        src.logout().await;
        dst.logout().await;
        Ok(folder_table(
            &src_list.folder_list(),
            &self.destination_folders(&dst_list),
            self.folders.as_ref(),
        )?)
    }

    async fn connect(
        &self,
        account: &Account,
    ) -> Result<(SourceSession, DestinationSession), AttemptError> {
        // The slots are always taken source first, then destination: with per-server
        // limits, every mailbox taking its slots in the same order cannot deadlock. Only
        // then are both logins made at once (each is a few round trips, mostly the
        // servers' login and auth processes).
        let src_slot = self.source.slot().await;
        let dst_slot = self.destination.slot().await;
        self.connect_in(account, src_slot, dst_slot).await
    }

    async fn connect_in(
        &self,
        account: &Account,
        src_slot: SourceSlot,
        dst_slot: Slot,
    ) -> Result<(SourceSession, DestinationSession), AttemptError> {
        let (src, dst) = tokio::join!(
            self.source.connect_in(src_slot, account),
            self.destination.connect_in(dst_slot, &account.destination),
        );
        // The source's error first, as when the logins were made one after the other.
        let src = src?;
        let dst = dst?;
        Ok((src, DestinationSession::new(dst)))
    }

    /// One more connection pair for folders at once, if both servers have a free slot now
    /// (never waiting for one: that could deadlock with mailboxes waiting for their first
    /// pair). A failure here is not the mailbox's: the first pair carries on alone.
    async fn extra_pair(&self, account: &Account) -> Option<(SourceSession, DestinationSession)> {
        let src_slot = self.source.try_slot()?;
        let dst_slot = self.destination.try_slot()?;
        match self.connect_in(account, src_slot, dst_slot).await {
            Ok(pair) => Some(pair),
            Err(e) => {
                tracing::debug!(mailbox = %account.address, error = %e, "no extra connection pair; folders go one at a time");
                None
            }
        }
    }

    /// Whether a sync of `account` opens its second connection pair at once (see
    /// [`Engine::second_pair`]): on a mailbox's first copy every folder is work, and a
    /// source other than POP3 (whose one folder leaves a second pair nothing to do).
    fn second_pair_at_once(&self, account: &Account) -> bool {
        self.options.folder_concurrency > 1
            && self.mailbox_connections() > 1
            && !matches!(self.source, SourceConnector::Pop3(_))
            && !self.store.remembers_mailbox(&account.address)
    }

    /// A second connection pair opened alongside the first instead of once a folder turns
    /// out to be work, so that its connections (several round trips each, across a WAN)
    /// overlap the first pair's logins and listings. Each of its logins waits until the
    /// first pair's login to the same server succeeded (`first_logged_in`): a refused
    /// password is sent once, not once per connection. Only free slots are taken (never
    /// waiting: the first pair's are taken first).
    async fn second_pair(
        &self,
        account: &Account,
        first_logged_in: (LoginGate, LoginGate),
    ) -> Option<Pair> {
        let src_slot = self.source.try_slot()?;
        let dst_slot = self.destination.try_slot()?;
        let (src_gate, dst_gate) = first_logged_in;
        let (src, dst) = tokio::join!(
            self.source.connect_gated(src_slot, account, Some(src_gate)),
            self.destination
                .connect_gated(dst_slot, &account.destination, Some(dst_gate)),
        );
        // Half a pair is no use: the half that logged in logs out.
        let error = match (src, dst) {
            (Ok(src), Ok(dst)) => return Some((src, DestinationSession::new(dst))),
            (Err(e), Ok(dst)) => {
                DestinationSession::new(dst).logout().await;
                e
            }
            (Ok(src), Err(e)) => {
                src.logout().await;
                e
            }
            (Err(e), Err(_)) => e,
        };
        tracing::debug!(mailbox = %account.address, error = %error, "no second connection pair yet");
        None
    }

    async fn sync_attempt(&self, account: &Account, run: &mut Run) -> Result<(), AttemptError> {
        if !self.second_pair_at_once(account) {
            let pair = self.connect(account).await?;
            return self.sync_on(account, run, pair, None).await;
        }
        let src_slot = self.source.slot().await;
        let dst_slot = self.destination.slot().await;
        let (src_said, src_gate) = LoginGate::new();
        let (dst_said, dst_gate) = LoginGate::new();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let main = async {
            let (src, dst) = tokio::join!(
                async {
                    let src = self.source.connect_in(src_slot, account).await;
                    src_said.said(src.is_ok());
                    src
                },
                async {
                    let dst = self
                        .destination
                        .connect_in(dst_slot, &account.destination)
                        .await;
                    dst_said.said(dst.is_ok());
                    dst
                },
            );
            // The source's error first, as when the logins were made one after the other.
            let pair = (src?, DestinationSession::new(dst?));
            self.sync_on(account, run, pair, Some(rx)).await
        };
        let second = async {
            let pair = self.second_pair(account, (src_gate, dst_gate)).await;
            // Not taken (the attempt ended first): logged out here.
            if let Err(Some((src, dst))) = tx.send(pair) {
                src.logout().await;
                dst.logout().await;
            }
        };
        let (result, ()) = tokio::join!(main, second);
        result
    }

    /// A sync attempt on the connected `pair`; `second` brings the second pair when it was
    /// opened at once.
    async fn sync_on(
        &self,
        account: &Account,
        run: &mut Run,
        (mut src, mut dst): Pair,
        second: Option<SecondPair>,
    ) -> Result<(), AttemptError> {
        let address = account.address.as_str();
        // Both listings at once: independent connections, one round trip's wait instead of two.
        let (src_list, dst_list) = tokio::join!(src.list(), dst.list());
        let (src_list, mut dst_list) = (src_list?, dst_list?);
        run.not_mail.clone_from(&src_list.not_mail);
        // Create the missing destination folders, parents first (the plan's order). A
        // refusal naming a character of the name teaches the mapping to write it as `_`:
        // the table is made again and the folders still missing are created then.
        let mut created: BTreeSet<String> = BTreeSet::new();
        let mut failed: HashMap<String, String>;
        let table = loop {
            let table = folder_table(
                &src_list.folder_list(),
                &self.destination_folders(&dst_list),
                self.folders.as_ref(),
            )?;
            failed = HashMap::new();
            let mut learned = false;
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
                        let taught = match &e {
                            ImapError::Refused { reason, .. } => names::refused_character(reason)
                                .filter(|&c| self.refused.learn(self.store.as_ref(), c)),
                            _ => None,
                        };
                        if let Some(c) = taught {
                            tracing::info!(mailbox = %address, folder = %dest, character = %c, "the destination refuses this character in names: writing it as _");
                            learned = true;
                        } else {
                            tracing::error!(mailbox = %address, folder = %dest, error = %e, "cannot create folder");
                        }
                        failed.insert(dest.clone(), e.to_string());
                    }
                }
            }
            if !learned {
                break table;
            }
        };
        run.set_table(&table);
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

        let jobs = run.jobs(&table, |dest| failed.get(dest).cloned());
        // A folder that could not be created is still reported with what it holds, so the
        // mailbox's totals are not short by its messages.
        for plan in &table.plans {
            if !plan.dest.as_ref().is_some_and(|d| failed.contains_key(d)) {
                continue;
            }
            let Some(state) = run.folders.get_mut(&plan.source) else {
                continue;
            };
            let counted = async {
                src.examine(&src_list.wire_name(&plan.source)).await?;
                src.fetch_meta(&UidSet::all()).await
            };
            match counted.await {
                Ok(entries) => {
                    state.report.source_messages = entries.len() as u64;
                    state.report.source_bytes = entries.iter().map(|e| u64::from(e.size)).sum();
                }
                Err(e) if e.is_connection_lost() => return Err(e.into()),
                Err(e) => {
                    tracing::warn!(mailbox = %address, folder = %plan.source, error = %e, "cannot count a folder that was not created")
                }
            }
        }
        let lists = Lists {
            source: &src_list,
            destination: &dst_list,
        };
        self.folders_at_once(account, Kind::Sync, ((src, dst), second), &lists, jobs, run)
            .await
    }

    async fn verify_attempt(&self, account: &Account, run: &mut Run) -> Result<(), AttemptError> {
        let (mut src, mut dst) = self.connect(account).await?;
        let (src_list, dst_list) = tokio::join!(src.list(), dst.list());
        let (src_list, dst_list) = (src_list?, dst_list?);
        run.not_mail.clone_from(&src_list.not_mail);
        let table = folder_table(
            &src_list.folder_list(),
            &self.destination_folders(&dst_list),
            self.folders.as_ref(),
        )?;
        run.set_table(&table);
        let jobs = run.jobs(&table, |_| None);
        let lists = Lists {
            source: &src_list,
            destination: &dst_list,
        };
        self.folders_at_once(account, Kind::Verify, ((src, dst), None), &lists, jobs, run)
            .await
    }

    /// Passes over the folders of `jobs`: on `pair`, and on up to
    /// `options.folder_concurrency - 1` more pairs (`second` the first of them, when already
    /// open) when the servers have free slots. Each
    /// worker takes the next job (all the source folders of one destination folder, in
    /// table order) when done with its last. The folders' states come back to `run` however
    /// the workers end; a lost connection stops every worker after its current job and
    /// fails the attempt, which the retry loop resumes at the unfinished folders.
    async fn folders_at_once(
        &self,
        account: &Account,
        kind: Kind,
        (pair, second): (Pair, Option<SecondPair>),
        lists: &Lists<'_>,
        jobs: VecDeque<Job>,
        run: &mut Run,
    ) -> Result<(), AttemptError> {
        let extra = self
            .options
            .folder_concurrency
            .min(self.mailbox_connections())
            .max(1)
            .saturating_sub(1)
            .min(jobs.len().saturating_sub(1));
        // With no use for it, the second pair is logged out where it is opened.
        let mut second = second.filter(|_| extra > 0);
        let mut pair = pair;
        let snapshots = match kind {
            Kind::Sync => snapshots(&mut pair, lists, &jobs).await?,
            Kind::Verify => HashMap::new(),
        };
        let mut jobs = jobs;
        if extra > 0 {
            // Largest first (by the source's count, all STATUS tells before listing): the
            // last folders to finish are then small ones, not one large folder running
            // alone on one pair while the others have nothing left to take.
            let size = |j: &Job| {
                j.folders
                    .first()
                    .and_then(|(source, _)| snapshots.get(source))
                    .map_or(0, |(s, _)| s.messages)
            };
            jobs.make_contiguous()
                .sort_by_key(|j| std::cmp::Reverse(size(j)));
        }
        let queue = JobQueue {
            jobs: Mutex::new(jobs),
            stop: AtomicBool::new(false),
            wake: Wake::default(),
            pairs: AtomicUsize::new(1),
            snapshots: Mutex::new(snapshots),
        };
        if matches!(kind, Kind::Verify) {
            // Verifying compares every folder in full: always worth more pairs.
            queue.wake.work();
        }
        let first = self.folder_worker(account, kind, Start::Open(pair), lists, &queue);
        let others = (0..extra).map(|_| {
            let start = second.take().map_or(Start::OnWork, Start::Coming);
            self.folder_worker(account, kind, start, lists, &queue)
        });
        let (first, others) = tokio::join!(first, futures::future::join_all(others));
        let mut result = Ok(());
        for (states, r) in std::iter::once(first).chain(others) {
            for (source, state) in states {
                run.folders.insert(source, state);
            }
            if result.is_ok() {
                result = r;
            }
        }
        for job in queue.jobs.into_inner().unwrap_or_else(|e| e.into_inner()) {
            for (source, state) in job.folders {
                run.folders.insert(source, state);
            }
        }
        result
    }

    /// One worker of [`Engine::folders_at_once`]: on the pair it starts with, or on a pair
    /// of its own when there is work left and both servers have a free slot. Returns the
    /// states of the folders it took, and the lost connection that stopped it, if any.
    async fn folder_worker(
        &self,
        account: &Account,
        kind: Kind,
        start: Start,
        lists: &Lists<'_>,
        queue: &JobQueue,
    ) -> (Vec<(String, FolderState)>, Result<(), AttemptError>) {
        let mut states = Vec::new();
        let arrived = match start {
            Start::Open(pair) => Some(pair),
            // Could not be opened: as any other extra pair, then.
            Start::Coming(rx) => rx.await.ok().flatten().inspect(|_| {
                queue.pairs.fetch_add(1, Ordering::Relaxed);
            }),
            Start::OnWork => None,
        };
        let (mut src, mut dst) = match arrived {
            Some(pair) => pair,
            None => {
                // A no-change re-sync is one STATUS per folder: two more logins would cost
                // more than they save. So an extra pair waits until a folder turns out to be
                // real work, and is not opened at all once the jobs are all taken.
                queue.wake.wait().await;
                if queue.is_empty() {
                    return (states, Ok(()));
                }
                match self.extra_pair(account).await {
                    Some(pair) => {
                        queue.pairs.fetch_add(1, Ordering::Relaxed);
                        pair
                    }
                    None => return (states, Ok(())),
                }
            }
        };
        let address = account.address.as_str();
        let mut lost = None;
        while lost.is_none() {
            let Some(job) = queue.next() else { break };
            for (source, mut state) in job.folders {
                if lost.is_some() {
                    states.push((source, state));
                    continue;
                }
                let dest = state.report.destination.clone();
                let share = queue.pairs.load(Ordering::Relaxed).max(1) as u64;
                let snapshot = queue
                    .snapshots
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&source);
                src.read_labels(state.labels);
                let target = copy::Target {
                    labels: state.labels,
                    snapshot,
                    batch_bytes: (self.options.batch_bytes / share).max(1),
                    address,
                    source: &source,
                    source_wire: lists.source.wire_name(&source),
                    dest: &dest,
                    dest_wire: lists.destination.wire_name(&dest),
                    wake: &queue.wake,
                };
                let result = match kind {
                    Kind::Sync => {
                        folder::sync_folder(self, &mut src, &mut dst, &target, &mut state).await
                    }
                    Kind::Verify => {
                        let exists = dest_exists(lists.destination, &dest);
                        verify::verify_folder(self, &mut src, &mut dst, &target, exists, &mut state)
                            .await
                    }
                };
                match result {
                    Ok(()) => state.done = true,
                    Err(e) if e.is_connection_lost() || e.paused().is_some() => {
                        queue.stop.store(true, Ordering::Relaxed);
                        lost = Some(e);
                    }
                    Err(e) => {
                        if matches!(kind, Kind::Sync) {
                            tracing::error!(mailbox = %address, folder = %source, error = %e, "folder failed");
                        }
                        state.report.error = Some(e.to_string());
                        state.done = true;
                    }
                }
                states.push((source, state));
            }
        }
        // No job left for anyone (or a connection lost): waiting workers need not connect,
        // and the folders still being copied may use this pair's share of the budget.
        queue.wake.finished();
        queue.pairs.fetch_sub(1, Ordering::Relaxed);
        match lost {
            Some(e) if e.is_connection_lost() => (states, Err(e.into())),
            stopped => {
                src.logout().await;
                dst.logout().await;
                (states, stopped.map_or(Ok(()), |e| Err(e.into())))
            }
        }
    }
}

/// A source and a destination connection of one mailbox.
type Pair = (SourceSession, DestinationSession);

/// The second pair of [`Engine::second_pair`], on its way (`None`: it could not be opened).
type SecondPair = tokio::sync::oneshot::Receiver<Option<Pair>>;

/// What a worker of [`Engine::folders_at_once`] starts on.
// One per worker, moved once: its size does not matter (as for `SourceSession`).
#[allow(clippy::large_enum_variant)]
enum Start {
    Open(Pair),
    Coming(SecondPair),
    /// A pair of its own, once a folder turns out to be work.
    OnWork,
}

/// Both servers' listings in an attempt.
struct Lists<'a> {
    source: &'a Listing,
    destination: &'a Listing,
}

/// The source folders that go into one destination folder (usually one), with their states
/// taken out of the [`Run`] while a worker has them. Merged folders stay in one job so that
/// they are never appended to their common destination folder at the same time: each pass
/// compares its source folder with the whole destination folder, and must not see the
/// other's copies arrive midway.
#[derive(Debug)]
struct Job {
    folders: Vec<(String, FolderState)>,
}

/// The jobs not yet taken, in table order.
struct JobQueue {
    jobs: Mutex<VecDeque<Job>>,
    /// Connection pairs copying folders now: they share the mailbox's batch budget.
    pairs: AtomicUsize,
    /// Set when a worker lost a connection: the others finish their current job and stop.
    stop: AtomicBool,
    wake: Wake,
    /// Both sides' STATUS of the first source folder of each job, taken for all of them at
    /// once; each is used (taken out) by that folder's first pass.
    snapshots: Mutex<HashMap<String, (MailboxStatus, MailboxStatus)>>,
}

/// The STATUS of every job's first source folder and of its destination folder, pipelined
/// on `pair` (both sides at once): a re-sync with nothing to do is these snapshots, so the
/// folders cost one round trip together instead of one each. Only the first folder of a
/// job: the destination of merged folders changes under the later ones' feet (the first
/// one's copies), so theirs is taken when they start. A snapshot taken earlier than the
/// pass that uses it is still taken before anything of the folder is listed, which is all
/// the cache asks (see [`crate::imap::cache`]); what changes in between is seen next time.
async fn snapshots(
    pair: &mut (SourceSession, DestinationSession),
    lists: &Lists<'_>,
    jobs: &VecDeque<Job>,
) -> Result<HashMap<String, (MailboxStatus, MailboxStatus)>, AttemptError> {
    let firsts: Vec<(&str, &str)> = jobs
        .iter()
        .filter_map(|j| j.folders.first())
        .map(|(source, state)| (source.as_str(), state.report.destination.as_str()))
        .collect();
    if firsts.len() < 2 {
        return Ok(HashMap::new());
    }
    let source_wires: Vec<String> = firsts
        .iter()
        .map(|(s, _)| lists.source.wire_name(s))
        .collect();
    let dest_wires: Vec<String> = firsts
        .iter()
        .map(|(_, d)| lists.destination.wire_name(d))
        .collect();
    let (src, dst) = pair;
    let (s, d) = tokio::join!(src.statuses(&source_wires), dst.statuses(&dest_wires));
    let (s, d) = (s?, d?);
    Ok(firsts
        .iter()
        .zip(s.into_iter().zip(d))
        .filter_map(|((source, _), st)| match st {
            (Some(a), Some(b)) => Some(((*source).to_owned(), (a, b))),
            _ => None,
        })
        .collect())
}

/// When the extra workers of a mailbox should connect (see [`Engine::folder_worker`]).
#[derive(Debug)]
pub(super) struct Wake(tokio::sync::watch::Sender<WakeState>);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum WakeState {
    Waiting,
    Work,
    Finished,
}

impl Default for Wake {
    fn default() -> Self {
        Wake(tokio::sync::watch::Sender::new(WakeState::Waiting))
    }
}

impl Wake {
    /// A folder pass is real work: the waiting workers may connect.
    pub(super) fn work(&self) {
        self.set(WakeState::Work);
    }

    fn finished(&self) {
        self.set(WakeState::Finished);
    }

    fn set(&self, to: WakeState) {
        self.0.send_if_modified(|s| {
            let change = *s == WakeState::Waiting;
            if change {
                *s = to;
            }
            change
        });
    }

    /// Until [`Wake::work`] or [`Wake::finished`].
    async fn wait(&self) {
        let mut rx = self.0.subscribe();
        // The sender lives as long as `self`, so this cannot fail.
        let _ = rx.wait_for(|s| *s != WakeState::Waiting).await;
    }
}

impl JobQueue {
    fn next(&self) -> Option<Job> {
        if self.stop.load(Ordering::Relaxed) {
            return None;
        }
        self.jobs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop_front()
    }

    fn is_empty(&self) -> bool {
        self.jobs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_empty()
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
    /// How its pass reads Gmail's labels (the table's).
    labels: Option<crate::imap::folders::LabelPass>,
}

/// A mailbox's run: the folders in plan order and their states.
#[derive(Debug, Default)]
struct Run {
    order: Vec<String>,
    folders: HashMap<String, FolderState>,
    /// Destination folder → source folders merged into it (two or more).
    merges: BTreeMap<String, Vec<String>>,
    /// What the source's listing left out as not mail.
    not_mail: Vec<crate::imap::report::NotMail>,
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

    /// The folders of `table` still to do, as jobs in table order (one per destination
    /// folder; see [`Job`]), their states taken out of the run. A folder whose destination
    /// could not be created (`failed` gives why) is done here with that error.
    fn jobs(
        &mut self,
        table: &FolderTable,
        failed: impl Fn(&str) -> Option<String>,
    ) -> VecDeque<Job> {
        let mut jobs: VecDeque<Job> = VecDeque::new();
        let mut by_dest: HashMap<String, usize> = HashMap::new();
        for plan in &table.plans {
            let Some(dest) = &plan.dest else { continue };
            let state = self.folder(&plan.source, dest);
            state.labels = plan.labels;
            if state.done {
                continue;
            }
            if let Some(e) = failed(dest) {
                state.report.error = Some(e);
                state.done = true;
                continue;
            }
            let Some(state) = self.folders.remove(&plan.source) else {
                continue;
            };
            let folder = (plan.source.clone(), state);
            match by_dest.get(dest.as_str()) {
                Some(&i) => jobs[i].folders.push(folder),
                None => {
                    by_dest.insert(dest.clone(), jobs.len());
                    jobs.push_back(Job {
                        folders: vec![folder],
                    });
                }
            }
        }
        jobs
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
            paused: None,
            not_mail: self.not_mail,
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
                    m.entry(r.key).or_default().push(r.clone());
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
