//! Copying fanned out as Kubernetes Jobs, for `spec.sync.parallelism` > 1.
//!
//! Each reconcile lists the Jobs the MailMigration owns and
//! - deletes those of older generations (they copy with a spec that no longer holds);
//! - tells the planner which copy steps are under way (`InFlight`), so they are planned as
//!   `Running` and never started twice;
//! - records the copy steps whose Jobs succeeded through the reconcile loop, as if it had
//!   copied them itself: a Job's success proves nothing, so the mailboxes are verified
//!   against the servers next, and the Job is deleted;
//! - counts a failed Job as a failure of its step (Warning Event, backoff before the next
//!   Job, Stalled after `STALL_AFTER` in a row, the failed Job then kept for its logs);
//! - creates Jobs for pending copy steps, up to `parallelism` at once, batches of mailboxes
//!   with deterministic names (an existing Job is never created again).
//!
//! Every other step (verification included) still runs in the controller.

mod build;
mod engine;

use crate::address::Address;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams, LogParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Resource, ResourceExt};

pub use build::{
    ANNOTATION_MAILBOXES, CopyKind, LABEL_GENERATION, LABEL_MANAGED_BY, LABEL_MIGRATION,
    LABEL_STEP, LABEL_UID, MANIFEST_ENV, MAX_BATCH, SECRET_ENV, batches, job, job_manifest,
    job_name,
};
pub use engine::Fanned;

use super::events::publish_related;
use super::metrics::Outcome;
use super::requeue::{Error, NEXT_STEP, RECHECK, REOBSERVE, requeue_after};
use super::{Context, EngineFactory};
use crate::plan::{Execution, Gate, InFlight, Plan, PlannedStep, Progress, Step, Waiting};
use crate::reconcile::{MailEngine, Reconciler};
use crate::spec::{MailMigration, Policy};

/// While Jobs run, the migration is observed again this often, which is also how often
/// their progress in status is brought up to date; their completion (the controller watches
/// the Jobs it owns) brings it back sooner.
pub const JOB_RECHECK: Duration = Duration::from_secs(30);
/// How much of a copy Job's log is read for its last `progress` event (logged every
/// [`crate::reconcile::progress::LOG_EVERY`]).
const LOG_TAIL_LINES: i64 = 2000;
const LOG_LIMIT_BYTES: i64 = 4 << 20;

/// The image copy Jobs run unless told otherwise: this very version of mailshift, so that
/// the Job understands the manifest the controller hands it.
pub const DEFAULT_IMAGE: &str = concat!("ghcr.io/mailshift/mailshift:", env!("CARGO_PKG_VERSION"));

/// What the controller remembers about each migration's Jobs between reconciles (in memory:
/// after a restart, a failed Job still present is counted again, which only allows more
/// retries).
#[derive(Debug, Default)]
pub struct Book {
    entries: Mutex<HashMap<String, Entry>>,
}

#[derive(Clone, Debug, Default)]
struct Entry {
    generation: i64,
    /// No Job is created before this instant (backoff after a failed Job).
    retry_at: Option<DateTime<Utc>>,
    /// Failed Jobs already counted, by uid; `true` when kept because the step stalled.
    counted: HashMap<String, bool>,
    /// The step that stalled with its kept failed Job: once that Job is deleted (by a
    /// person, to retry), the step gets its attempts again.
    stalled: Option<Step>,
}

impl Book {
    fn get(&self, key: &str, generation: i64) -> Entry {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .get(key)
            .filter(|e| e.generation == generation)
            .cloned()
            .unwrap_or(Entry {
                generation,
                ..Entry::default()
            })
    }

    fn put(&self, key: &str, entry: Entry) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.insert(key.to_owned(), entry);
    }

    fn has(&self, key: &str) -> bool {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.contains_key(key)
    }

    /// Forget a migration (deleted, or back to copying in-process).
    pub fn forget(&self, key: &str) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.remove(key);
    }
}

/// A Job as the controller reads it back.
#[derive(Clone, Debug)]
struct Owned {
    name: String,
    uid: String,
    generation: Option<i64>,
    kind: Option<CopyKind>,
    addresses: Vec<String>,
    state: State,
    created: DateTime<Utc>,
    took: Option<Duration>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum State {
    Active,
    Succeeded,
    Failed(String),
}

impl Owned {
    fn read(job: &Job) -> Owned {
        let labels = job.labels();
        let time = |t: &k8s_openapi::apimachinery::pkg::apis::meta::v1::Time| {
            DateTime::from_timestamp(t.0.as_second(), t.0.subsec_nanosecond().max(0) as u32)
        };
        let status = job.status.clone().unwrap_or_default();
        let condition = |type_: &str| {
            status
                .conditions
                .iter()
                .flatten()
                .find(|c| c.type_ == type_ && c.status == "True")
        };
        // Only the terminal conditions count: `FailureTarget` and `SuccessCriteriaMet`
        // come while Pods may still be running.
        let state = if condition("Complete").is_some() {
            State::Succeeded
        } else if let Some(c) = condition("Failed") {
            State::Failed(format!(
                "{}{}",
                c.reason.as_deref().unwrap_or("Failed"),
                c.message
                    .as_deref()
                    .filter(|m| !m.is_empty())
                    .map(|m| format!(": {m}"))
                    .unwrap_or_default()
            ))
        } else {
            State::Active
        };
        let took = match (&status.start_time, &status.completion_time) {
            (Some(s), Some(c)) => time(c)
                .zip(time(s))
                .and_then(|(c, s)| (c - s).to_std().ok()),
            _ => None,
        };
        Owned {
            name: job.name_any(),
            uid: job.uid().unwrap_or_default(),
            generation: labels.get(LABEL_GENERATION).and_then(|g| g.parse().ok()),
            kind: labels.get(LABEL_STEP).and_then(|k| CopyKind::from_label(k)),
            addresses: job
                .annotations()
                .get(ANNOTATION_MAILBOXES)
                .map(|a| {
                    a.split(',')
                        .filter(|a| !a.is_empty())
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default(),
            state,
            created: job
                .metadata
                .creation_timestamp
                .as_ref()
                .and_then(time)
                .unwrap_or_default(),
            took,
        }
    }

    fn covers(&self, kind: CopyKind, address: &str) -> bool {
        self.kind == Some(kind)
            && self
                .addresses
                .iter()
                .any(|a| Address::of(a) == Address::of(address))
    }

    fn serves(&self, step: &Step) -> bool {
        CopyKind::of(step).is_some_and(|k| {
            build::step_addresses(step)
                .iter()
                .any(|a| self.covers(k, a))
        })
    }
}

/// A copy step that may run but for Jobs already carrying it out.
fn launchable(s: &PlannedStep) -> bool {
    CopyKind::of(&s.step).is_some()
        && s.execution == Execution::Execute
        && s.gates.iter().all(|g| {
            matches!(
                g,
                Gate::Fact {
                    waiting: Waiting::Running { .. }
                }
            )
        })
}

/// The step the controller carries out itself while copying is left to Jobs: the first
/// actionable step that is not a copy.
pub fn in_process(plan: &Plan) -> Option<&PlannedStep> {
    plan.actionable().find(|s| CopyKind::of(&s.step).is_none())
}

/// One reconcile's view of a migration's Jobs.
pub struct FanOut {
    api: Api<Job>,
    namespace: String,
    /// The MailMigration's uid, which its Jobs and their Pods are labelled with.
    uid: String,
    key: String,
    generation: i64,
    parallelism: usize,
    jobs: Vec<Owned>,
    entry: Entry,
    launched: usize,
}

impl FanOut {
    /// `None` when the migration copies in-process (parallelism 1) and has no Jobs to
    /// clean up. Deletes Jobs of older generations.
    pub async fn start<F>(
        obj: &MailMigration,
        ctx: &Context<F>,
        key: &str,
        generation: i64,
    ) -> Result<Option<FanOut>, Error> {
        let parallelism = obj
            .spec
            .sync
            .as_ref()
            .map_or(1, |s| usize::from(s.parallelism));
        let (Some(namespace), Some(uid)) = (obj.namespace(), obj.uid()) else {
            return Ok(None);
        };
        if parallelism <= 1 && !ctx.jobs.has(key) {
            return Ok(None);
        }
        let api: Api<Job> = Api::namespaced(ctx.client.clone(), &namespace);
        let list = api
            .list(&ListParams::default().labels(&format!("{LABEL_UID}={uid}")))
            .await?;
        let mut jobs = Vec::new();
        for job in &list.items {
            // The label can be copied by hand; the owner reference cannot be faked as easily.
            let ours = job
                .owner_references()
                .iter()
                .any(|o| o.uid == uid && o.controller == Some(true));
            if !ours {
                continue;
            }
            let o = Owned::read(job);
            if o.generation != Some(generation) {
                tracing::info!(namespace, job = o.name, generation = ?o.generation, "deleting a Job of an older generation");
                delete(&api, &o.name).await?;
                continue;
            }
            jobs.push(o);
        }
        if parallelism <= 1 {
            // Back to copying in-process: Jobs of this generation cannot exist (changing
            // parallelism changed the generation), and those of older ones are gone.
            ctx.jobs.forget(key);
            return Ok(None);
        }
        Ok(Some(FanOut {
            api,
            namespace,
            uid,
            key: key.to_owned(),
            generation,
            parallelism,
            jobs,
            entry: ctx.jobs.get(key, generation),
            launched: 0,
        }))
    }

    /// A reference to one of the Jobs, for an Event's `related`.
    fn reference(&self, name: &str) -> Option<ObjectReference> {
        self.jobs
            .iter()
            .find(|j| j.name == name)
            .map(|j| ObjectReference {
                api_version: Some("batch/v1".into()),
                kind: Some("Job".into()),
                name: Some(j.name.clone()),
                namespace: Some(self.namespace.clone()),
                uid: Some(j.uid.clone()),
                ..ObjectReference::default()
            })
    }

    fn active(&self) -> usize {
        self.jobs
            .iter()
            .filter(|j| j.state == State::Active)
            .count()
    }

    /// Copy steps under way in Jobs, for the planner.
    pub fn in_flight(&self) -> Vec<InFlight> {
        self.jobs
            .iter()
            .filter(|j| j.state == State::Active)
            .filter_map(|j| Some((j, j.kind?)))
            .flat_map(|(j, kind)| {
                kind.steps(&j.addresses).into_iter().map(|step| InFlight {
                    step,
                    by: format!("job/{}", j.name),
                    since: j.created,
                })
            })
            .collect()
    }

    /// How far the copy Jobs of this generation have come, for status: the last `progress`
    /// event in the log of each Job's newest Pod (a finished or failed Job's last one says
    /// how far it got). The Jobs have no API access of their own; their logs are the channel. A log
    /// that cannot be read leaves that Job out: progress is for people, not for decisions.
    pub async fn follow<F, E>(&self, ctx: &Context<F>, r: &mut Reconciler<Fanned<E>>) {
        let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &self.namespace);
        // One list for all of this generation's Pods (they carry the Job template's
        // labels), the newest Pod of each Job kept.
        let selector = format!(
            "{LABEL_UID}={},{LABEL_GENERATION}={}",
            self.uid, self.generation
        );
        let listed = match pods.list(&ListParams::default().labels(&selector)).await {
            Ok(list) => list.items,
            Err(e) => {
                tracing::debug!(error = %e, "cannot list the copy Jobs' Pods");
                Vec::new()
            }
        };
        let mut newest: BTreeMap<String, Pod> = BTreeMap::new();
        for pod in listed {
            let Some(job) = pod.labels().get("job-name").cloned() else {
                continue;
            };
            if !self.jobs.iter().any(|j| j.name == job) {
                continue;
            }
            let created = |p: &Pod| p.metadata.creation_timestamp.clone().map(|t| t.0);
            if newest.get(&job).is_none_or(|n| created(n) < created(&pod)) {
                newest.insert(job, pod);
            }
        }
        let params = LogParams {
            container: Some("sync".into()),
            tail_lines: Some(LOG_TAIL_LINES),
            limit_bytes: Some(LOG_LIMIT_BYTES),
            ..LogParams::default()
        };
        let mut progress = Vec::new();
        for (job, pod) in &newest {
            match pods.logs(&pod.name_any(), &params).await {
                Ok(log) => progress.extend(crate::reconcile::progress::from_log(&log)),
                Err(e) => tracing::debug!(job, error = %e, "cannot read the Job's log"),
            }
        }
        r.engine.jobs_progress = progress;
    }

    /// A step that stalled whose kept failed Job is gone (deleted by a person to retry):
    /// its failures in a row are forgotten, so that Jobs are created for it again.
    pub fn release<E: MailEngine>(&mut self, r: &mut Reconciler<Fanned<E>>) -> Result<(), Error> {
        let kept = self.jobs.iter().any(|j| {
            matches!(j.state, State::Failed(_)) && self.entry.counted.get(&j.uid) == Some(&true)
        });
        if !kept && let Some(step) = self.entry.stalled.take() {
            r.forget_failure(&step).map_err(Error::Loop)?;
        }
        Ok(())
    }

    /// Take in the Jobs that finished: record the steps whose Jobs all succeeded, count
    /// failed ones. Returns whether the loop's records changed (observe again).
    pub async fn settle<F, E>(
        &mut self,
        obj: &MailMigration,
        ctx: &Context<F>,
        r: &mut Reconciler<Fanned<E>>,
        plan: &Plan,
        now: DateTime<Utc>,
    ) -> Result<bool, Error>
    where
        E: MailEngine,
    {
        let steps: Vec<Step> = plan
            .steps
            .iter()
            .filter(|s| launchable(s))
            .map(|s| s.step.clone())
            .collect();
        let mut changed = false;

        // Successes first: a success clears the loop's failure in a row, a failure
        // counted after it must stay.
        let mut recorded: BTreeMap<String, Vec<Step>> = BTreeMap::new();
        let mut executed = Vec::new();
        for step in &steps {
            let Some(kind) = CopyKind::of(step) else {
                continue;
            };
            let ok: Vec<&Owned> = self
                .jobs
                .iter()
                .filter(|j| j.state == State::Succeeded && j.serves(step))
                .collect();
            let addresses = build::step_addresses(step);
            if ok.is_empty()
                || !addresses
                    .iter()
                    .all(|a| ok.iter().any(|j| j.covers(kind, a)))
            {
                continue;
            }
            r.engine.outcome = Some(Ok(()));
            let result = r.execute(step, now).await;
            r.engine.outcome = None;
            result.map_err(Error::Loop)?;
            for j in ok {
                recorded
                    .entry(j.name.clone())
                    .or_default()
                    .push(step.clone());
            }
            executed.push(step.clone());
            changed = true;
        }
        for (name, done) in &recorded {
            let job = self.jobs.iter().find(|j| &j.name == name);
            let took = job.and_then(|j| j.took).unwrap_or_default();
            let kind = done[0].kind();
            ctx.metrics.step(kind, Outcome::Applied, took);
            let next = match CopyKind::of(&done[0]) {
                Some(k) if k.per_mailbox() => "; verifying against the servers next",
                _ => "",
            };
            let what = if done.len() == 1 {
                done[0].to_string()
            } else {
                format!("{} ({} mailboxes)", kind, done.len())
            };
            tracing::info!(job = name, steps = done.len(), "copy Job succeeded");
            publish_related(
                ctx,
                obj,
                EventType::Normal,
                "StepApplied",
                kind,
                format!("{what}: copied by Job {name}{next}"),
                self.reference(name),
            )
            .await;
        }
        // A succeeded Job is deleted once nothing it copied is still waiting on it.
        let remaining: Vec<&Step> = steps.iter().filter(|s| !executed.contains(s)).collect();
        let done: Vec<String> = self
            .jobs
            .iter()
            .filter(|j| j.state == State::Succeeded && !remaining.iter().any(|s| j.serves(s)))
            .map(|j| j.name.clone())
            .collect();
        for name in &done {
            delete(&self.api, name).await?;
        }
        self.jobs.retain(|j| !done.contains(&j.name));

        // Failures.
        let mut gone = Vec::new();
        for j in &self.jobs {
            if matches!(j.state, State::Failed(_)) && self.entry.counted.get(&j.uid) == Some(&false)
            {
                // Counted before, its deletion did not go through.
                gone.push(j.name.clone());
            }
        }
        let fresh: Vec<Owned> = self
            .jobs
            .iter()
            .filter(|j| {
                matches!(j.state, State::Failed(_)) && !self.entry.counted.contains_key(&j.uid)
            })
            .cloned()
            .collect();
        if !fresh.is_empty() {
            let why = fresh
                .iter()
                .map(|j| match &j.state {
                    State::Failed(reason) => format!("copy Job {} failed ({reason})", j.name),
                    _ => String::new(),
                })
                .collect::<Vec<_>>()
                .join("; ");
            let step = steps.iter().find(|s| fresh.iter().any(|j| j.serves(s)));
            let mut kept = false;
            if let Some(step) = step {
                r.engine.outcome = Some(Err(why.clone()));
                let _ = r.execute(step, now).await;
                r.engine.outcome = None;
                if let Some(failure) = r.failure_of(step).cloned() {
                    let kind = step.kind();
                    ctx.metrics.step(kind, Outcome::Failed, Duration::ZERO);
                    ctx.metrics.failed("CopyJobFailed");
                    let note;
                    if failure.stalled {
                        kept = true;
                        self.entry.stalled = Some(step.clone());
                        note = format!(
                            "{why}; `{step}` failed {} times in a row: no more Jobs for it. Read the Job's logs (kubectl logs job/{}), then delete the Job to retry, or change the spec",
                            failure.count, fresh[0].name
                        );
                    } else {
                        let wait = Reconciler::<Fanned<E>>::backoff(failure.count);
                        self.entry.retry_at =
                            Some(now + chrono::Duration::from_std(wait).unwrap_or_default());
                        note = format!(
                            "{why} (attempt {}); a new Job in {}s",
                            failure.count,
                            wait.as_secs()
                        );
                    }
                    tracing::warn!(step = %step, attempt = failure.count, stalled = failure.stalled, "{why}");
                    let reason = if kept { "Stalled" } else { "CopyJobFailed" };
                    let related = self.reference(&fresh[0].name);
                    publish_related(ctx, obj, EventType::Warning, reason, kind, note, related)
                        .await;
                    changed = true;
                }
            } else {
                tracing::info!("{why}; its steps are no longer pending");
            }
            for j in &fresh {
                self.entry.counted.insert(j.uid.clone(), kept);
                if !kept {
                    gone.push(j.name.clone());
                }
            }
        }
        for name in &gone {
            delete(&self.api, name).await?;
        }
        self.jobs.retain(|j| !gone.contains(&j.name));
        ctx.jobs.put(&self.key, self.entry.clone());
        Ok(changed)
    }

    /// Create Jobs for the copy steps nobody carries out yet, up to `parallelism` Jobs at
    /// once. Returns how many were created.
    pub async fn launch<F: EngineFactory>(
        &mut self,
        obj: &MailMigration,
        ctx: &Context<F>,
        plan: &Plan,
        now: DateTime<Utc>,
    ) -> Result<usize, Error> {
        if obj.spec.policy == Policy::Observe || obj.spec.suspend {
            return Ok(0);
        }
        if self.entry.retry_at.is_some_and(|at| at > now) {
            return Ok(0);
        }
        let mut lanes = self.parallelism.saturating_sub(self.active());
        // Mailboxes nobody should copy now: under way, already copied for a step that
        // waits for its other batches, or held by a kept failed Job.
        let taken = |kind: CopyKind, address: &str| {
            self.jobs.iter().any(|j| {
                j.covers(kind, address)
                    && match &j.state {
                        State::Active | State::Succeeded => true,
                        State::Failed(_) => self.entry.counted.get(&j.uid) == Some(&true),
                    }
            })
        };
        let mut groups: Vec<(CopyKind, Vec<String>)> = Vec::new();
        for kind in CopyKind::ALL {
            let steps = plan
                .steps
                .iter()
                .filter(|s| launchable(s) && CopyKind::of(&s.step) == Some(kind));
            let mut wanted = BTreeSet::new();
            let mut group = Vec::new();
            for s in steps {
                for a in build::step_addresses(&s.step) {
                    if !taken(kind, &a) && wanted.insert(Address::of(&a)) {
                        group.push(a);
                    }
                }
                if !kind.per_mailbox() {
                    // One FinalSync/DeltaSync step at a time.
                    break;
                }
            }
            group.sort_by_key(|a| Address::of(a));
            if !group.is_empty() {
                groups.push((kind, group));
            }
        }
        let mut created = 0;
        for (kind, group) in groups {
            for batch in batches(&group, lanes) {
                lanes -= 1;
                let job =
                    job(obj, self.generation, kind, &batch, &ctx.job_image).map_err(Error::Loop)?;
                let name = job.name_any();
                if self.jobs.iter().any(|j| j.name == name) {
                    continue;
                }
                match self.api.create(&PostParams::default(), &job).await {
                    Ok(made) => {
                        created += 1;
                        tracing::info!(
                            job = name,
                            step = kind.label(),
                            mailboxes = batch.len(),
                            "created a copy Job"
                        );
                        publish_related(
                            ctx,
                            obj,
                            EventType::Normal,
                            "JobCreated",
                            kind.label(),
                            format!(
                                "Job {name}: {} of {} mailbox(es): {}",
                                kind.label(),
                                batch.len(),
                                batch.join(", ")
                            ),
                            Some(made.object_ref(&())),
                        )
                        .await;
                        let mut o = Owned::read(&made);
                        o.state = State::Active;
                        if o.kind.is_none() {
                            o.kind = Some(kind);
                            o.addresses = batch.clone();
                        }
                        self.jobs.push(o);
                    }
                    // Created by an earlier reconcile whose list did not show it yet.
                    Err(kube::Error::Api(s)) if s.code == 409 => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        self.launched += created;
        Ok(created)
    }

    /// When to come back.
    pub fn action(&self, plan: &Plan, now: DateTime<Utc>) -> Action {
        let mut wait = match &plan.progress() {
            Progress::Ready if in_process(plan).is_some() => NEXT_STEP,
            // What may run is held by Jobs, their backoff, or a stall.
            Progress::Ready => REOBSERVE,
            Progress::Recheck if self.active() > 0 => JOB_RECHECK,
            Progress::Recheck => RECHECK,
            other => requeue_after(other, now),
        };
        if self.active() > 0 || self.launched > 0 {
            wait = wait.min(JOB_RECHECK);
        }
        if let Some(at) = self.entry.retry_at.filter(|at| *at > now) {
            wait = wait.min((at - now).to_std().unwrap_or_default().max(NEXT_STEP));
        }
        Action::requeue(wait)
    }
}

async fn delete(api: &Api<Job>, name: &str) -> Result<(), Error> {
    // Background: the Job goes now, its Pods after it.
    match api.delete(name, &DeleteParams::background()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}
