//! The reconcile loop around the pure planner: observe what is due into a [`World`], plan,
//! carry out the steps that may run now (those of different mailboxes side by side),
//! record, and plan again.
//!
//! [`Reconciler::turn`] is the one driver: the CLI (`apply`), the Kubernetes controller and
//! the tests call it; they differ only in where status and secrets live (a
//! [`StatusStore`], a [`Resolver`]) and in how long they wait between turns. What is
//! observed, and when again, is [`facts`]' business.

pub mod facts;
mod failed;
pub mod imap;
mod observe;
pub mod progress;
pub mod records;

use crate::address::Address;
use crate::plan::{AccountsStep, DavStep, MailStep, OwnStep, ProbeStep, SieveStep};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use chrono::{DateTime, Utc};
use futures::StreamExt;

use crate::accounts::Account;
use crate::plan::{self, Failure, Gate, InFlight, Milestones, Plan, Step, Waiting, World};
use crate::secrets::Resolver;
use crate::spec::{MailMigration, MailMigrationStatus};
use crate::store::{StateDir, StatusStore};
use facts::{Ages, Due, Facts, Sections};
pub use failed::Failed;
use records::{Records, RecordsStore};

/// After this many failures of the same step in a row, that step is stalled: not tried
/// again until a person acts (a new `apply`, a changed spec).
pub const STALL_AFTER: u32 = 5;

/// What a login check found, per side.
pub type LoginCheck = (plan::Login, plan::Login);

/// One mailbox's outcome of a sync.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Synced {
    /// Messages and bytes now on the destination for the mapped folders.
    pub messages: u64,
    pub bytes: u64,
    /// Messages the destination refused (reported by the engine, never retried forever),
    /// not counting those `spec.acceptRefused` accepts.
    pub refused: u64,
    /// The refused messages `spec.acceptRefused` accepts the loss of.
    pub accepted: Vec<crate::spec::AcceptedLoss>,
    /// Errors that left the mailbox incomplete.
    pub errors: Vec<String>,
    /// What this sync copied (for metrics): messages appended and their bytes.
    pub copied_messages: u64,
    pub copied_bytes: u64,
    /// The copy stopped at a spent daily budget (`limits`) and goes on then.
    pub paused: Option<crate::spec::Pause>,
}

/// One mailbox's verification.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Verified {
    pub messages: u64,
    /// Missing plus surplus messages over all folders, and refusals not accepted; 0 means
    /// equal.
    pub differences: u64,
    /// Source messages that arrived after the last sync listed their folder (not on the
    /// destination yet, not counted in `differences`).
    pub arrived: u64,
    /// The refused messages whose loss `spec.acceptRefused` accepts (not differences).
    pub accepted: Vec<crate::spec::AcceptedLoss>,
}

/// What the executor needs from the mail engine. The real one talks IMAP; tests may model
/// it.
pub trait MailEngine: Send + Sync {
    /// Log in on both sides (read-only) and report each side's outcome.
    fn check_logins(&self, account: &Account) -> impl Future<Output = LoginCheck> + Send;
    /// Copy or re-sync these mailboxes now.
    fn sync(
        &self,
        accounts: &[Account],
    ) -> impl Future<Output = Result<Vec<(String, Synced)>>> + Send;
    /// Compare source and destination of one mailbox.
    fn verify(&self, account: &Account) -> impl Future<Output = Result<Verified>> + Send;
    /// Send a tagged message into the old server and wait for it in `account` on the new.
    fn probe(
        &self,
        probe: &crate::spec::Probe,
        account: &Account,
        resolver: &Resolver,
    ) -> impl Future<Output = plan::ProbeState> + Send;
    /// How far the copies of this run have come, if the engine keeps count.
    fn transfer(&self, _now: DateTime<Utc>) -> Option<crate::spec::Transfer> {
        None
    }
}

/// One migration's loop: its spec, its accounts, its state directory and the engine.
pub struct Reconciler<E> {
    pub migration: MailMigration,
    pub accounts: Vec<Account>,
    /// The executor's records (and, for the IMAP engine, its caches).
    pub state: StateDir,
    pub engine: E,
    /// Reads secrets that adapters other than IMAP need (the TSIG key).
    resolver: Resolver,
    /// What the loop keeps and changes; apart from the rest so that steps under way (which
    /// only read the engine, the accounts and the spec) and recording go on side by side.
    book: Book,
}

/// What a step needs to be carried out: read-only, shared by the steps under way.
struct Core<'a, E> {
    migration: &'a MailMigration,
    accounts: &'a [Account],
    engine: &'a E,
    resolver: &'a Resolver,
}

impl<E> Clone for Core<'_, E> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<E> Copy for Core<'_, E> {}

/// The loop's own state: records, facts, stores, clock.
struct Book {
    /// Where status is read and written: the state directory unless set otherwise.
    status: Arc<dyn StatusStore>,
    /// `metadata.generation`, when a host knows it; else the records count spec changes.
    generation: Option<i64>,
    records: Records,
    /// Where `records` are kept: the state directory unless set otherwise.
    records_store: Arc<dyn RecordsStore>,
    /// What has been observed on the servers, and when.
    facts: Facts,
    ages: Ages,
    /// The facts the last plan's gates waited on: they are observed again first.
    waiting: Vec<Waiting>,
    clock: fn() -> DateTime<Utc>,
    /// Messages and bytes copied by the steps this value carried out.
    copied: (u64, u64),
    /// Steps carried out elsewhere right now (the controller's copy Jobs): planned with a
    /// `Running` gate so they are not started twice.
    in_flight: Vec<InFlight>,
}

/// The outcome of observing and planning once.
#[derive(Debug)]
pub struct Pass {
    pub world: World,
    pub plan: Plan,
    pub status: MailMigrationStatus,
    /// What this pass observed on the servers (the rest came from the facts already seen).
    pub observed: Due,
}

/// One step a turn carried out.
#[derive(Debug)]
pub struct Done {
    pub step: Step,
    /// `Err` with the failure as recorded (count, backoff, stalled).
    pub result: Result<(), Failure>,
    pub took: Duration,
}

/// What one turn did, and the plan after it.
#[derive(Debug)]
pub struct Turn {
    /// The steps carried out, in plan order; empty when nothing could run.
    pub done: Vec<Done>,
    /// The pass after the steps (or the only one, when none ran).
    pub pass: Pass,
}

/// What a step's adapter reported, before it is recorded.
enum Outcome {
    Synced {
        reports: Vec<(String, Synced)>,
        /// A mailbox's own copy: its verification is due again.
        reset_verification: bool,
    },
    Verified(Verified),
    Probed(plan::ProbeState),
    /// What the new server refused of a mailbox's contacts and calendars.
    DavCopied(Vec<crate::spec::DavRefusal>),
    /// Accounts and aliases written on the new server.
    Provisioned(crate::directory::Written),
    Done,
}

impl<E: MailEngine> Reconciler<E> {
    pub fn new(
        migration: MailMigration,
        accounts: Vec<Account>,
        state: StateDir,
        engine: E,
    ) -> Result<Self> {
        let records = Records::load(&state)?;
        let book = Book {
            status: Arc::new(state.clone()),
            generation: None,
            records,
            records_store: Arc::new(state.clone()),
            facts: Facts::default(),
            ages: Ages::default(),
            waiting: Vec::new(),
            clock: Utc::now,
            copied: (0, 0),
            in_flight: Vec::new(),
        };
        Ok(Reconciler {
            migration,
            accounts,
            state,
            engine,
            resolver: Resolver::default(),
            book,
        })
    }

    /// Read secret references (relative files, cluster Secrets) through `resolver`.
    pub fn with_resolver(mut self, resolver: Resolver) -> Self {
        self.resolver = resolver;
        self
    }

    /// Keep status in `store` instead of the state directory (the controller's is the
    /// resource's status subresource).
    pub fn with_status_store(mut self, store: Arc<dyn StatusStore>) -> Self {
        self.book.status = store;
        self
    }

    /// Keep the executor's records in `store` instead of the state directory (the controller
    /// keeps them in the resource's status).
    pub fn with_records_store(mut self, store: Arc<dyn RecordsStore>) -> Result<Self> {
        self.book.records = store.load_records()?;
        self.book.records_store = store;
        Ok(self)
    }

    /// Report `generation` (a resource's `metadata.generation`) as the observed generation.
    pub fn with_generation(mut self, generation: i64) -> Self {
        self.book.generation = Some(generation);
        self
    }

    /// Start from facts an earlier loop over the same migration observed (a host that
    /// builds a loop per reconcile keeps them between reconciles this way).
    pub fn with_facts(mut self, facts: Facts) -> Self {
        self.book.facts = facts;
        self
    }

    /// Observe again after these ages instead of the defaults.
    pub fn with_ages(mut self, ages: Ages) -> Self {
        self.book.ages = ages;
        self
    }

    /// Read time from `clock` (the controller's tests fix it).
    pub fn with_clock(mut self, clock: fn() -> DateTime<Utc>) -> Self {
        self.book.clock = clock;
        self
    }

    /// What has been observed so far.
    pub fn facts(&self) -> &Facts {
        &self.book.facts
    }

    /// Tell the planner which steps are under way elsewhere (replacing what it was told
    /// before); they stay in the plan, gated, until a pass no longer lists them.
    pub fn set_in_flight(&mut self, in_flight: Vec<InFlight>) {
        self.book.in_flight = in_flight;
    }

    /// The steps whose last attempts failed.
    pub fn failures(&self) -> &[Failure] {
        &self.book.records.failures
    }

    /// The failure recorded for `step`'s piece of work.
    pub fn failure_of(&self, step: &Step) -> Option<&Failure> {
        let key = step.work_key();
        self.book.records.failures.iter().find(|f| f.work == key)
    }

    /// The failure the status leads with: a stalled step first, else the one that failed
    /// most often in a row.
    pub fn failure(&self) -> Option<&Failure> {
        self.book
            .records
            .failures
            .iter()
            .max_by_key(|f| (f.stalled, f.count))
    }

    /// Forget the failures in a row of `step`'s piece of work.
    pub fn forget_failure(&mut self, step: &Step) -> Result<()> {
        let key = step.work_key();
        self.forget_failures(|f| f.work == key)
    }

    /// Give stalled steps their attempts again: a person ran `apply` once more, maybe
    /// after fixing the cause.
    pub fn retry_stalled(&mut self) -> Result<()> {
        self.forget_failures(|f| f.stalled)
    }

    fn forget_failures(&mut self, which: impl Fn(&Failure) -> bool) -> Result<()> {
        let records = &mut self.book.records;
        let before = records.failures.len();
        records.failures.retain(|f| !which(f));
        if records.failures.len() != before {
            self.book.records_store.save_records(records)?;
        }
        Ok(())
    }

    /// The generation of the spec (a count of its changes in this state directory).
    pub fn generation(&self) -> i64 {
        self.book
            .generation
            .unwrap_or(self.book.records.generation.max(1))
    }

    /// Mailboxes worked on at once (`sync.concurrency`).
    pub fn concurrency(&self) -> usize {
        self.migration
            .spec
            .sync
            .as_ref()
            .map_or(4, |s| usize::from(s.concurrency))
    }

    /// Messages and bytes copied by the steps carried out so far.
    pub fn copied(&self) -> (u64, u64) {
        self.book.copied
    }

    /// How long to wait before retrying a step that failed `count` times in a row:
    /// exponential from 2 s, capped at 5 minutes.
    pub fn backoff(count: u32) -> Duration {
        backoff(count)
    }

    fn core(&self) -> Core<'_, E> {
        Core {
            migration: &self.migration,
            accounts: &self.accounts,
            engine: &self.engine,
            resolver: &self.resolver,
        }
    }

    /// Observe what is due and plan; with `persist`, adopt a changed spec and store the
    /// derived status (`plan` runs without it and writes nothing).
    pub async fn pass(&mut self, now: DateTime<Utc>, persist: bool) -> Result<Pass> {
        let core = Core {
            migration: &self.migration,
            accounts: &self.accounts,
            engine: &self.engine,
            resolver: &self.resolver,
        };
        self.book.pass(core, now, persist, &[]).await
    }

    /// One turn of the loop: observe what is due and plan; carry out the steps that may
    /// run now and that `allowed` lets this host run, planning again as they end. Up to
    /// `sync.concurrency` steps of different mailboxes are under way at once, a new one
    /// starting as soon as one ends; any other step (DNS, relays, the final sync: their
    /// order matters) runs alone. New steps start for [`TURN`] at most, so that a host sees
    /// the status between turns; the turn ends when the steps under way have ended. A
    /// failed step is counted against itself and waits for its backoff in the plan; the
    /// other mailboxes go on.
    pub async fn turn(&mut self, allowed: impl Fn(&Step) -> bool) -> Result<Turn> {
        let limit = self.concurrency().max(1);
        let core = Core {
            migration: &self.migration,
            accounts: &self.accounts,
            engine: &self.engine,
            resolver: &self.resolver,
        };
        let book = &mut self.book;
        let started = Instant::now();
        let mut running = futures::stream::FuturesUnordered::new();
        let mut busy: Vec<Step> = Vec::new();
        let mut done = Vec::new();
        let mut pass = book.pass(core, (book.clock)(), true, &busy).await?;
        let mut planned = Instant::now();
        // The steps that may run, in plan order. Steps of different mailboxes do not open
        // or close each other's gates, so the queue of one plan stays good while they run;
        // it is planned again when it runs dry (the mailboxes' next steps) and every few
        // seconds (the status shows progress, a changed world is seen).
        let mut queue: VecDeque<Step> = startable(&pass.plan, &allowed);
        loop {
            while busy.len() < limit
                && started.elapsed() < TURN
                && !busy.iter().any(|s| s.address().is_none())
            {
                let Some(step) = queue.pop_front() else { break };
                if step.address().is_none() && !busy.is_empty() {
                    // Its order matters: it waits until the steps under way have ended.
                    queue.push_front(step);
                    break;
                }
                tracing::info!(step = %step, "applying");
                busy.push(step.clone());
                running.push(async move {
                    let t = Instant::now();
                    let outcome = core.perform(&step).await;
                    (step, outcome, t.elapsed())
                });
            }
            let Some((step, outcome, took)) = running.next().await else {
                break;
            };
            busy.retain(|s| *s != step);
            let result = book.record(&step, outcome, (book.clock)())?;
            match &result {
                Ok(()) => tracing::info!(step = %step, "done"),
                Err(f) => {
                    tracing::warn!(step = %step, attempt = f.count, stalled = f.stalled, error = %f.message, "step failed")
                }
            }
            done.push(Done { step, result, took });
            if queue.is_empty() || planned.elapsed() >= REPLAN {
                // What was done is kept too: a crash loses at most this much, and redoing
                // a step finds nothing left to do.
                book.records_store.save_records(&book.records)?;
                pass = book.pass(core, (book.clock)(), true, &busy).await?;
                planned = Instant::now();
                queue = startable(&pass.plan, &allowed);
            }
        }
        if !done.is_empty() {
            book.records_store.save_records(&book.records)?;
            pass = book.pass(core, (book.clock)(), true, &[]).await?;
        }
        Ok(Turn { done, pass })
    }

    /// Carry out `step` now and record it (a host that learnt a step's outcome elsewhere,
    /// like the controller's copy Jobs, records it through here). A failure is counted
    /// against the step: after [`STALL_AFTER`] in a row it is stalled.
    pub async fn execute(&mut self, step: &Step, now: DateTime<Utc>) -> Result<()> {
        let outcome = self.core().perform(step).await;
        let recorded = self.book.record(step, outcome, now)?;
        self.book.records_store.save_records(&self.book.records)?;
        match recorded {
            Ok(()) => Ok(()),
            Err(f) => Err(anyhow!("{}", f.message)),
        }
    }
}

/// How long a step that failed `count` times in a row waits before it is tried again.
fn backoff(count: u32) -> Duration {
    Duration::from_secs(2u64.saturating_pow(count.min(9)).min(300))
}

/// New steps start for this long in one turn.
pub const TURN: Duration = Duration::from_secs(30);
/// Within a turn, the plan is made again (and the status and records stored) at least
/// this often.
const REPLAN: Duration = Duration::from_secs(2);

/// The steps of `plan` that may start now, in the order they may start (see
/// [`Plan::batch`]).
fn startable(plan: &Plan, allowed: &impl Fn(&Step) -> bool) -> VecDeque<Step> {
    plan.batch(usize::MAX, allowed)
        .into_iter()
        .map(|s| s.step.clone())
        .collect()
}

impl<E: MailEngine> Core<'_, E> {
    fn spec(&self) -> &crate::spec::MailMigrationSpec {
        &self.migration.spec
    }

    fn account(&self, address: &str) -> Result<&Account> {
        self.accounts
            .iter()
            .find(|a| Address::of(&a.address) == Address::of(address))
            .ok_or_else(|| anyhow!("{address} is not a mailbox of this migration"))
    }

    fn sections(&self) -> Sections {
        let spec = self.spec();
        Sections {
            forwarding: spec.forwarding.is_some(),
            sieve: spec.sieve.is_some(),
            dav: spec.dav.is_some(),
            gateway: spec.gateway.is_some(),
            fallback: spec.fallback.is_some(),
            dns: spec.dns.is_some(),
            directory: spec.accounts.is_some(),
        }
    }

    /// Carry out `step` through its adapter. Only reads, so that steps of different
    /// mailboxes run side by side; [`Book::record`] takes the outcome in.
    #[tracing::instrument(
        name = "step",
        skip_all,
        fields(migration = %self.migration.name(), step = step.kind(), mailbox = step.address())
    )]
    async fn perform(self, step: &Step) -> Result<Outcome, Failed> {
        match step {
            Step::Mail(MailStep::InitialSync { address } | MailStep::Resync { address, .. }) => {
                let account = self.account(address)?.clone();
                let reports = self.engine.sync(std::slice::from_ref(&account)).await?;
                Ok(Outcome::Synced {
                    reports,
                    reset_verification: true,
                })
            }
            Step::Mail(MailStep::FinalSync { addresses } | MailStep::DeltaSync { addresses }) => {
                let accounts: Vec<Account> = addresses
                    .iter()
                    .map(|a| self.account(a).cloned())
                    .collect::<Result<_>>()?;
                let reports = self.engine.sync(&accounts).await?;
                Ok(Outcome::Synced {
                    reports,
                    reset_verification: false,
                })
            }
            Step::Mail(MailStep::Verify { address }) => {
                let account = self.account(address)?.clone();
                let v = self
                    .engine
                    .verify(&account)
                    .await
                    .with_context(|| format!("verifying {address}"))?;
                Ok(Outcome::Verified(v))
            }
            Step::Own(OwnStep::MarkComplete) => Ok(Outcome::Done),
            Step::Dns(change) => {
                let dns = self
                    .migration
                    .spec
                    .dns
                    .as_ref()
                    .ok_or_else(|| anyhow!("`{step}` needs spec.dns"))?;
                let applied = crate::dns::apply(change, dns, self.resolver)
                    .await
                    .map_err(Failed::from)?;
                tracing::info!(change = %step, outcome = ?applied, "DNS");
                Ok(Outcome::Done)
            }
            Step::Relay(change) => {
                crate::routing::apply(change, &self.migration.spec, self.resolver)
                    .await
                    .map_err(Failed::from)?;
                Ok(Outcome::Done)
            }
            Step::Forwarding(change) => {
                crate::routing::forwarding::apply(
                    change,
                    &self.migration.spec,
                    self.accounts,
                    self.resolver,
                )
                .await
                .map_err(Failed::from)?;
                Ok(Outcome::Done)
            }
            Step::Sieve(SieveStep::CopySieve { address }) => {
                let sieve = self
                    .migration
                    .spec
                    .sieve
                    .as_ref()
                    .ok_or_else(|| anyhow!("`{step}` needs spec.sieve"))?;
                let account = self.account(address)?;
                let copied = crate::sieve::copy(account, sieve, self.resolver)
                    .await
                    .map_err(Failed::from)?;
                for r in &copied.refused {
                    tracing::warn!(script = %r.script, reason = %r.reason, "the new server refuses this Sieve script; not copied");
                }
                for k in &copied.kept {
                    tracing::warn!(script = %k, "a different Sieve script of this name is on the new server; kept (sieve.conflicts: keep)");
                }
                tracing::info!(put = ?copied.put, replaced = ?copied.replaced, activated = ?copied.activated, "Sieve scripts copied");
                Ok(Outcome::Done)
            }
            Step::Dav(DavStep::CopyDav { address }) => {
                let dav = self
                    .migration
                    .spec
                    .dav
                    .as_ref()
                    .ok_or_else(|| anyhow!("`{step}` needs spec.dav"))?;
                let account = self.account(address)?;
                let copied = crate::dav::copy(account, dav, self.resolver).await?;
                for r in &copied.refused {
                    tracing::warn!(collection = %r.collection, resource = %r.key, reason = %r.reason, "the new server refuses this contact or calendar resource; not copied");
                }
                for k in &copied.kept {
                    tracing::warn!(resource = %k, "a different resource with this UID is on the new server; kept");
                }
                tracing::info!(created = ?copied.created, put = copied.put, "contacts and calendars copied");
                Ok(Outcome::DavCopied(copied.refused))
            }
            Step::Accounts(AccountsStep::ProvisionAccounts { accounts, aliases }) => {
                let written = crate::directory::provision(
                    &self.migration.spec,
                    self.accounts,
                    accounts,
                    aliases,
                    self.resolver,
                )
                .await
                .map_err(Failed::from)?;
                Ok(Outcome::Provisioned(written))
            }
            Step::Probe(ProbeStep { mailbox }) => {
                let probe = self
                    .migration
                    .spec
                    .probe
                    .clone()
                    .ok_or_else(|| anyhow!("`{step}` needs spec.probe"))?;
                let account = self.account(mailbox)?.clone();
                Ok(Outcome::Probed(
                    self.engine.probe(&probe, &account, self.resolver).await,
                ))
            }
        }
    }
}

impl Book {
    /// Observe what is due and plan, with `busy` (steps this loop has under way) planned as
    /// running.
    async fn pass<E: MailEngine>(
        &mut self,
        core: Core<'_, E>,
        now: DateTime<Utc>,
        persist: bool,
        busy: &[Step],
    ) -> Result<Pass> {
        let spec = core.spec();
        let mut records = self.records.clone();
        records.adopt(spec);
        let generation = self.generation.unwrap_or(records.generation.max(1));
        self.facts.adopt(generation);
        let previous = self.status.load_status()?;
        let addresses: Vec<String> = core.accounts.iter().map(|a| a.address.clone()).collect();
        let due = self
            .facts
            .due(&addresses, core.sections(), &self.waiting, &self.ages, now);
        if !due.is_empty() {
            observe::refresh(
                &mut self.facts,
                &due,
                spec,
                core.accounts,
                core.engine,
                core.resolver,
                now,
            )
            .await;
            // Needs the records: which accounts and aliases are mailshift's own.
            if due.directory {
                let value = crate::directory::observe(
                    spec,
                    core.accounts,
                    &records.provisioned,
                    core.resolver,
                )
                .await;
                self.facts.directory = Some(facts::Seen { value, at: now });
            }
        }
        let mut world = observe::world(spec, core.accounts, &self.facts, &records);
        world.milestones = Milestones::from_status(&previous);
        world.in_flight = self.in_flight.clone();
        world.in_flight.extend(busy.iter().map(|step| InFlight {
            step: step.clone(),
            by: "this loop".into(),
            since: now,
        }));
        let plan = plan::plan(spec, &world, now);
        self.waiting = plan
            .steps
            .iter()
            .flat_map(|s| &s.gates)
            .filter_map(|g| match g {
                Gate::Fact { waiting } => Some(waiting.clone()),
                Gate::Time { .. } => None,
            })
            .collect();
        self.waiting.dedup();
        let mut status = plan::derive_status(spec, &world, &plan, &previous, generation, now);
        // Mailboxes copied earlier stay counted (a copy Job's are gone with the Job).
        let current: Vec<_> = core.engine.transfer(now).into_iter().collect();
        status.transfer = progress::combine(previous.transfer.as_ref(), &current, now);
        if persist {
            if records != self.records {
                self.records_store.save_records(&records)?;
                self.records = records;
            }
            self.status.save_status(&status)?;
        }
        Ok(Pass {
            world,
            plan,
            status,
            observed: due,
        })
    }

    /// Record `step`'s outcome: records, milestones, facts it touched, failures in a row.
    /// The records are stored by the caller, once for all the steps it recorded (a crash
    /// before that only makes the steps run again, which finds nothing left to do). The outer
    /// error is one of the store; the inner one the step's recorded failure.
    fn record(
        &mut self,
        step: &Step,
        outcome: Result<Outcome, Failed>,
        now: DateTime<Utc>,
    ) -> Result<Result<(), Failure>> {
        let result = outcome.and_then(|o| {
            self.take(step, o, now).map_err(|e| match step {
                Step::Probe(ProbeStep { .. }) => Failed::step("ProbeFailed", e),
                _ => Failed::from(e),
            })
        });
        self.facts.touched(step, result.is_ok(), now);
        let key = step.work_key();
        let previous = self.records.failures.iter().position(|f| f.work == key);
        let recorded = match result {
            Ok(()) => {
                if let Some(i) = previous {
                    self.records.failures.remove(i);
                }
                // Most steps record no milestone: the status is written only when one does.
                let mut status = self.status.load_status()?;
                let before = Milestones::from_status(&status);
                let mut milestones = before.clone();
                milestones.record(step, now);
                if milestones != before {
                    milestones.write_to(&mut status);
                    self.status.save_status(&status)?;
                }
                Ok(())
            }
            Err(e) => {
                let count = previous.map_or(0, |i| self.records.failures[i].count) + 1;
                let (reason, person) = (e.reason, e.needs_person);
                let wait = chrono::Duration::from_std(backoff(count)).unwrap_or_default();
                let failure = Failure {
                    work: key,
                    step: step.to_string(),
                    count,
                    reason: reason.into(),
                    message: e.to_string(),
                    stalled: count >= STALL_AFTER || person,
                    retry_at: Some(now + wait),
                };
                match previous {
                    Some(i) => self.records.failures[i] = failure.clone(),
                    None => self.records.failures.push(failure.clone()),
                }
                Err(failure)
            }
        };
        Ok(recorded)
    }

    /// Take an adapter's outcome into the records.
    fn take(&mut self, step: &Step, outcome: Outcome, now: DateTime<Utc>) -> Result<()> {
        match outcome {
            Outcome::Synced {
                reports,
                reset_verification,
            } => self.record_sync(&reports, now, reset_verification),
            Outcome::Verified(v) => {
                let address = step.address().unwrap_or_default();
                let record = self.records.mailbox_mut(address);
                record.accepted_losses = v.accepted.clone();
                if v.differences == 0 {
                    // Equal as the manifest defines it: what an earlier sync left (a refusal
                    // accepted since) is no longer an error.
                    record.last_error = None;
                }
                record.verification = if v.differences == 0 {
                    plan::Verification::Equal {
                        at: now,
                        messages: v.messages,
                        arrived: v.arrived,
                    }
                } else {
                    plan::Verification::Differs {
                        at: now,
                        differences: v.differences,
                    }
                };
                Ok(())
            }
            Outcome::Probed(result) => {
                self.records.probe = result.clone();
                match result {
                    plan::ProbeState::Failed { reason, .. } => Err(anyhow!(
                        "mail-flow probe to {} failed: {reason}",
                        step.address().unwrap_or_default()
                    )),
                    _ => Ok(()),
                }
            }
            Outcome::DavCopied(refused) => {
                let address = step.address().unwrap_or_default();
                self.records.mailbox_mut(address).dav_refused = refused;
                Ok(())
            }
            Outcome::Provisioned(written) => {
                let p = &mut self.records.provisioned;
                for a in &written.accounts {
                    p.accounts.insert(Address::of(a));
                    p.temporary.remove(&Address::of(a));
                }
                p.temporary
                    .extend(written.temporary.iter().map(|a| Address::of(a)));
                p.aliases
                    .extend(written.aliases.iter().map(|a| Address::of(a)));
                Ok(())
            }
            Outcome::Done => Ok(()),
        }
    }

    /// Record a sync's outcome; a sync that could not copy everything is an error, so that
    /// it is retried with backoff and, if it keeps failing (a message the destination
    /// refuses), stalls with the reason instead of looping.
    fn record_sync(
        &mut self,
        outcome: &[(String, Synced)],
        now: DateTime<Utc>,
        reset_verification: bool,
    ) -> Result<()> {
        let mut problems = Vec::new();
        for (address, s) in outcome {
            self.copied.0 += s.copied_messages;
            self.copied.1 += s.copied_bytes;
            let record = self.records.mailbox_mut(address);
            // A copy that did not finish its pass (paused at a spent budget, or stopped by
            // an error) has not synced the mailbox: the step stays planned (behind the
            // budget's time gate, or the failure's backoff) instead of the loop moving on
            // to verify a copy that was never completed. Refused messages do not count
            // here: the pass finished, and verification weighs them.
            record.paused = s.paused.clone();
            if s.paused.is_none() && s.errors.is_empty() {
                record.sync = plan::SyncState::Synced {
                    at: now,
                    messages: s.messages,
                    bytes: s.bytes,
                };
            }
            if reset_verification {
                record.verification = plan::Verification::NotVerified;
            }
            let mut why = s.errors.clone();
            if s.refused > 0 {
                why.push(format!(
                    "{} message(s) refused by the destination",
                    s.refused
                ));
            }
            record.last_error = (!why.is_empty()).then(|| why.join("; "));
            record.accepted_losses = s.accepted.clone();
            for loss in &s.accepted {
                tracing::warn!(mailbox = %address, folder = %loss.folder, message = %loss.message, size = loss.size, refused = %loss.refused, accepted_by = %loss.accepted_by, "refused message left behind (acceptRefused)");
            }
            if !why.is_empty() {
                problems.push(format!("{address}: {}", why.join("; ")));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(anyhow!("sync incomplete: {}", problems.join(" | ")))
        }
    }
}
