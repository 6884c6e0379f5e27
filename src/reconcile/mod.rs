//! The reconcile loop around the pure planner: observe the servers into a [`World`], plan,
//! carry out the first actionable step through the adapters, record, and observe again.
//!
//! The CLI (`plan`, `apply`) and the Kubernetes controller drive the same [`Reconciler`];
//! they differ only in where status and secrets live (a [`StatusStore`], a [`Resolver`]).

pub mod imap;
mod observe;
pub mod records;

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use chrono::{DateTime, Utc};

use crate::accounts::Account;
use crate::dns::DnsError;
use crate::plan::{self, Adapter, Failure, InFlight, Milestones, Plan, Step, World};
use crate::secrets::Resolver;
use crate::spec::{MailMigration, MailMigrationStatus};
use crate::store::{StateDir, StatusStore};
use records::{Records, RecordsStore};

/// After this many failures of the same step in a row, the migration is Stalled.
pub const STALL_AFTER: u32 = 5;

/// What a login check found, per side.
pub type LoginCheck = (plan::Login, plan::Login);

/// One mailbox's outcome of a sync.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Synced {
    /// Messages and bytes now on the destination for the mapped folders.
    pub messages: u64,
    pub bytes: u64,
    /// Messages the destination refused (reported by the engine, never retried forever).
    pub refused: u64,
    /// Errors that left the mailbox incomplete.
    pub errors: Vec<String>,
    /// What this sync copied (for metrics): messages appended and their bytes.
    pub copied_messages: u64,
    pub copied_bytes: u64,
}

/// One mailbox's verification.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Verified {
    pub messages: u64,
    /// Missing plus extra messages over all folders; 0 means equal.
    pub differences: u64,
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
}

/// One migration's loop: its spec, its accounts, its state directory and the engine.
pub struct Reconciler<E> {
    pub migration: MailMigration,
    pub accounts: Vec<Account>,
    /// The executor's records (and, for the IMAP engine, its caches).
    pub state: StateDir,
    pub engine: E,
    /// Where status is read and written: the state directory unless set otherwise.
    status: Arc<dyn StatusStore>,
    /// `metadata.generation`, when a host knows it; else the records count spec changes.
    generation: Option<i64>,
    /// Reads secrets that adapters other than IMAP need (the TSIG key).
    resolver: Resolver,
    records: Records,
    /// Where `records` are kept: the state directory unless set otherwise.
    records_store: Arc<dyn RecordsStore>,
    failure: Option<(Step, Failure)>,
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
}

impl<E: MailEngine> Reconciler<E> {
    pub fn new(
        migration: MailMigration,
        accounts: Vec<Account>,
        state: StateDir,
        engine: E,
    ) -> Result<Self> {
        let records = Records::load(&state)?;
        let records_dir = state.clone();
        Ok(Reconciler {
            migration,
            accounts,
            status: Arc::new(state.clone()),
            state,
            engine,
            generation: None,
            resolver: Resolver::default(),
            records,
            records_store: Arc::new(records_dir),
            failure: None,
            copied: (0, 0),
            in_flight: Vec::new(),
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
        self.status = store;
        self
    }

    /// Keep the executor's records in `store` instead of the state directory (the controller
    /// keeps them in the resource's status).
    pub fn with_records_store(mut self, store: Arc<dyn RecordsStore>) -> Result<Self> {
        self.records = store.load_records()?;
        self.records_store = store;
        Ok(self)
    }

    /// Report `generation` (a resource's `metadata.generation`) as the observed generation.
    pub fn with_generation(mut self, generation: i64) -> Self {
        self.generation = Some(generation);
        self
    }

    /// Continue from a failure of an earlier loop over the same migration (a host that builds
    /// a loop per pass keeps the count of failures in a row this way).
    pub fn with_failure(mut self, failure: Option<(Step, Failure)>) -> Self {
        self.failure = failure;
        self
    }

    /// Tell the planner which steps are under way elsewhere (replacing what it was told
    /// before); they stay in the plan, gated, until a pass no longer lists them.
    pub fn set_in_flight(&mut self, in_flight: Vec<InFlight>) {
        self.in_flight = in_flight;
    }

    /// The step that failed last, with its failure.
    pub fn failed_step(&self) -> Option<&(Step, Failure)> {
        self.failure.as_ref()
    }

    fn spec(&self) -> &crate::spec::MailMigrationSpec {
        &self.migration.spec
    }

    /// The generation of the spec (a count of its changes in this state directory).
    pub fn generation(&self) -> i64 {
        self.generation.unwrap_or(self.records.generation.max(1))
    }

    /// Observe and plan; with `persist`, adopt a changed spec and store the derived status
    /// (`plan` runs without it and writes nothing).
    pub async fn pass(&mut self, now: DateTime<Utc>, persist: bool) -> Result<Pass> {
        let mut records = self.records.clone();
        records.adopt(&self.migration.spec);
        let previous = self.status.load_status()?;
        let mut world = observe::observe(
            self.spec(),
            &self.accounts,
            &self.engine,
            &records,
            &self.resolver,
        )
        .await;
        world.milestones = Milestones::from_status(&previous);
        world.failure = self.failure.as_ref().map(|(_, f)| f.clone());
        world.in_flight = self.in_flight.clone();
        let plan = plan::plan(self.spec(), &world, now);
        let status = plan::derive_status(
            self.spec(),
            &world,
            &plan,
            &previous,
            self.generation.unwrap_or(records.generation.max(1)),
            now,
        );
        if persist {
            self.records_store.save_records(&records)?;
            self.records = records;
            self.status.save_status(&status)?;
        }
        Ok(Pass {
            world,
            plan,
            status,
        })
    }

    /// Carry out `step`, record what it changed, and store the status. A failure is
    /// counted against the step: after [`STALL_AFTER`] in a row the migration is Stalled.
    pub async fn execute(&mut self, step: &Step, now: DateTime<Utc>) -> Result<()> {
        match self.run_step(step, now).await {
            Ok(()) => {
                self.failure = None;
                let mut status = self.status.load_status()?;
                let mut milestones = Milestones::from_status(&status);
                milestones.record(step, now);
                milestones.write_to(&mut status);
                self.status.save_status(&status)?;
                self.records_store.save_records(&self.records)?;
                Ok(())
            }
            Err(e) => {
                let count = match &self.failure {
                    Some((s, f)) if s.same_work(step) => f.count + 1,
                    _ => 1,
                };
                // Adapters with typed errors give the condition a precise reason.
                let reason = if let Some(d) = e.downcast_ref::<DnsError>() {
                    d.reason()
                } else if e.downcast_ref::<crate::routing::RoutingError>().is_some() {
                    "RoutingFailed"
                } else if matches!(step, Step::Probe { .. }) {
                    "ProbeFailed"
                } else {
                    "StepFailed"
                };
                let failure = Failure {
                    step: step.to_string(),
                    count,
                    reason: reason.into(),
                    message: format!("{e:#}"),
                    stalled: count >= STALL_AFTER,
                };
                self.failure = Some((step.clone(), failure));
                self.records_store.save_records(&self.records)?;
                Err(e)
            }
        }
    }

    /// The current failure, if the last attempt of a step failed.
    /// Messages and bytes copied by the steps carried out so far.
    pub fn copied(&self) -> (u64, u64) {
        self.copied
    }

    pub fn failure(&self) -> Option<&Failure> {
        self.failure.as_ref().map(|(_, f)| f)
    }

    /// How long to wait before retrying a step that failed `count` times in a row:
    /// exponential from 2 s, capped at 5 minutes.
    pub fn backoff(count: u32) -> Duration {
        Duration::from_secs(2u64.saturating_pow(count.min(9)).min(300))
    }

    fn account(&self, address: &str) -> Result<&Account> {
        self.accounts
            .iter()
            .find(|a| a.address.eq_ignore_ascii_case(address))
            .ok_or_else(|| anyhow!("{address} is not a mailbox of this migration"))
    }

    async fn run_step(&mut self, step: &Step, now: DateTime<Utc>) -> Result<()> {
        match step {
            Step::InitialSync { address } | Step::Resync { address, .. } => {
                let account = self.account(address)?.clone();
                let outcome = self.engine.sync(std::slice::from_ref(&account)).await?;
                self.record_sync(&outcome, now, true)
            }
            Step::FinalSync { addresses } | Step::DeltaSync { addresses } => {
                let accounts: Vec<Account> = addresses
                    .iter()
                    .map(|a| self.account(a).cloned())
                    .collect::<Result<_>>()?;
                let outcome = self.engine.sync(&accounts).await?;
                self.record_sync(&outcome, now, false)
            }
            Step::Verify { address } => {
                let account = self.account(address)?.clone();
                let v = self
                    .engine
                    .verify(&account)
                    .await
                    .with_context(|| format!("verifying {address}"))?;
                let record = self.records.mailbox_mut(address);
                record.verification = if v.differences == 0 {
                    plan::Verification::Equal {
                        at: now,
                        messages: v.messages,
                    }
                } else {
                    plan::Verification::Differs {
                        at: now,
                        differences: v.differences,
                    }
                };
                Ok(())
            }
            Step::MarkComplete => Ok(()),
            dns_step if dns_step.adapter() == Some(Adapter::Dns) => {
                let dns = self
                    .migration
                    .spec
                    .dns
                    .as_ref()
                    .ok_or_else(|| anyhow!("`{dns_step}` needs spec.dns"))?;
                let applied = crate::dns::apply(dns_step, dns, &self.resolver).await?;
                tracing::info!(step = %dns_step, outcome = ?applied, "DNS");
                Ok(())
            }
            Step::GatewayOn { .. } | Step::FallbackRelay { .. } | Step::FallbackOff { .. } => {
                crate::routing::apply(step, &self.migration.spec, &self.resolver).await?;
                Ok(())
            }
            Step::ForwardingOn { .. } | Step::ForwardingOff { .. } => {
                crate::routing::forwarding::apply(
                    step,
                    &self.migration.spec,
                    &self.accounts,
                    &self.resolver,
                )
                .await?;
                Ok(())
            }
            Step::Probe { mailbox } => {
                let probe = self
                    .migration
                    .spec
                    .probe
                    .clone()
                    .ok_or_else(|| anyhow!("`{step}` needs spec.probe"))?;
                let account = self.account(mailbox)?.clone();
                let result = self.engine.probe(&probe, &account, &self.resolver).await;
                self.records.probe = result.clone();
                match result {
                    plan::ProbeState::Failed { reason, .. } => {
                        Err(anyhow!("mail-flow probe to {mailbox} failed: {reason}"))
                    }
                    _ => Ok(()),
                }
            }
            other => Err(anyhow!(
                "`{other}` needs the {} adapter, which this build does not have yet",
                other.adapter().map_or("?", |a| a.describe())
            )),
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
            record.sync = plan::SyncState::Synced {
                at: now,
                messages: s.messages,
                bytes: s.bytes,
            };
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
