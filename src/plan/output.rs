//! `Plan`: the planner's answer. Ordered steps, each with the closed gates in front of it
//! and whether it will be carried out; what to do next, when to look again; the text and
//! the versioned JSON that `mailshift plan` prints.

use crate::address::Address;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::gate::{Gate, Waiting, instant};
use super::step::{Adapter, Step, Touch};
use crate::spec::Policy;

/// Version of the JSON form of a plan (`plan --output json`). Bumped on any change that
/// is not purely additive.
pub const PLAN_FORMAT_VERSION: u32 = 1;

/// Ordered steps from the world as it is to the world the manifest declares.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// The instant the plan was computed for (time gates are relative to it).
    pub computed_at: DateTime<Utc>,
    pub policy: Policy,
    /// `spec.suspend`: nothing is carried out until it is lifted.
    pub suspended: bool,
    /// In the order a careful admin takes them. A step may run when it has no gates and its
    /// execution is [`Execution::Execute`]; later steps may run before an earlier one that
    /// waits, when nothing ties them together (copying goes on while the TTL gate is shut).
    pub steps: Vec<PlannedStep>,
    /// What the migration goes on without, and why: work left out on purpose or refused by
    /// a server (a Sieve script the new server will not take, a conflict kept).
    pub notes: Vec<String>,
}

/// One step of a plan.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlannedStep {
    pub step: Step,
    /// What it reads and writes, on which server.
    pub touches: Vec<Touch>,
    pub execution: Execution,
    /// This build has the adapter it needs (shown also when the policy is `observe`).
    pub available: bool,
    /// Closed gates in front of it; empty when it may run now.
    pub gates: Vec<Gate>,
}

/// Whether a planned step will be carried out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "camelCase")]
pub enum Execution {
    /// Carried out once its gates open.
    Execute,
    /// Needs an adapter this build does not have: shown, counted as pending, never run.
    NotAvailableYet { adapter: Adapter },
    /// Policy `observe`: shown, counted as pending, never run.
    ObserveOnly,
    /// `spec.suspend`: shown, counted as pending, not run until the suspension is lifted.
    Suspended,
    /// Policy `upsert-only` never removes or switches off: shown for information, not
    /// counted as pending (the migration is converged without it).
    HeldByPolicy,
}

/// What the loop should do about a plan.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "state",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum Progress {
    /// Nothing left to do: the servers match the manifest.
    Converged,
    /// A step can run now.
    Ready,
    /// Waiting on something outside that changes by itself (DNS propagation, a copy Job
    /// running): observe again after a short interval.
    Recheck,
    /// Nothing can run before `at`.
    WaitUntil { at: DateTime<Utc> },
    /// Policy `observe`: changes are pending but will not be made.
    ObserveOnly,
    /// `spec.suspend`: changes are pending and wait for the suspension to be lifted.
    Suspended,
    /// Nothing can run until a person acts: approve the cutover, fix a login, use a build
    /// with the missing adapter. `reasons` say what, in plain words.
    Blocked { reasons: Vec<String> },
}

impl PlannedStep {
    /// May run now.
    pub fn is_actionable(&self) -> bool {
        self.execution == Execution::Execute && self.gates.is_empty()
    }

    /// Counts towards convergence (everything but what the policy holds back).
    pub fn is_pending(&self) -> bool {
        self.execution != Execution::HeldByPolicy
    }

    /// The instant all its gates are open, when they are all time gates.
    pub fn opens_at(&self) -> Option<DateTime<Utc>> {
        if self.gates.is_empty() {
            return None;
        }
        self.gates
            .iter()
            .map(Gate::opens_at)
            .collect::<Option<Vec<_>>>()
            .and_then(|ts| ts.into_iter().max())
    }

    /// Waits only on time and on outside facts that change by themselves.
    fn waits_on_outside(&self) -> bool {
        let outside = |g: &Gate| match g {
            Gate::Time { .. } => true,
            Gate::Fact { waiting } => matches!(
                waiting,
                Waiting::Propagation { .. }
                    | Waiting::MailboxNotObserved { .. }
                    | Waiting::MailboxListUnread { reason: None }
                    | Waiting::Running { .. }
            ),
        };
        self.gates.iter().any(|g| matches!(g, Gate::Fact { .. })) && self.gates.iter().all(outside)
    }
}

impl Plan {
    /// Converged: nothing pending (steps held back by `upsert-only` do not count).
    pub fn is_empty(&self) -> bool {
        !self.steps.iter().any(PlannedStep::is_pending)
    }

    /// The next step to carry out: the first that may run now.
    pub fn next(&self) -> Option<&PlannedStep> {
        self.steps.iter().find(|s| s.is_actionable())
    }

    /// Every step that may run now, in order (the executor may run independent per-mailbox
    /// steps side by side, up to `spec.sync.concurrency`).
    pub fn actionable(&self) -> impl Iterator<Item = &PlannedStep> {
        self.steps.iter().filter(|s| s.is_actionable())
    }

    /// The steps to carry out now, side by side: the first actionable step alone when it
    /// is about no single mailbox (DNS, relays, the final sync: the order of those
    /// matters), else the actionable steps of different mailboxes in plan order, one per
    /// mailbox, at most `limit`. Steps `allowed` refuses (carried out elsewhere, as the
    /// controller's copy Jobs) are passed over.
    pub fn batch(&self, limit: usize, allowed: impl Fn(&Step) -> bool) -> Vec<&PlannedStep> {
        let mut out: Vec<&PlannedStep> = Vec::new();
        let mut mailboxes = std::collections::BTreeSet::new();
        for s in self.actionable().filter(|s| allowed(&s.step)) {
            match s.step.address() {
                None if out.is_empty() => return vec![s],
                None => {}
                Some(a) if mailboxes.insert(Address::of(a)) => {
                    out.push(s);
                    if out.len() >= limit.max(1) {
                        break;
                    }
                }
                Some(_) => {}
            }
        }
        out
    }

    /// Steps that count towards convergence.
    pub fn pending(&self) -> impl Iterator<Item = &PlannedStep> {
        self.steps.iter().filter(|s| s.is_pending())
    }

    /// Steps the policy holds back.
    pub fn held(&self) -> impl Iterator<Item = &PlannedStep> {
        self.steps.iter().filter(|s| !s.is_pending())
    }

    /// The earliest instant at which a step that waits only on time may run: when `apply`
    /// stops waiting and the controller requeues.
    pub fn waiting_until(&self) -> Option<DateTime<Utc>> {
        self.steps
            .iter()
            .filter(|s| s.execution == Execution::Execute)
            .filter_map(PlannedStep::opens_at)
            .min()
    }

    /// What the loop should do.
    pub fn progress(&self) -> Progress {
        if self.is_empty() {
            return Progress::Converged;
        }
        if self.suspended {
            return Progress::Suspended;
        }
        if self.policy == Policy::Observe {
            return Progress::ObserveOnly;
        }
        if self.next().is_some() {
            return Progress::Ready;
        }
        let executable = || {
            self.steps
                .iter()
                .filter(|s| s.execution == Execution::Execute)
        };
        if executable().any(PlannedStep::waits_on_outside) {
            return Progress::Recheck;
        }
        if let Some(at) = self.waiting_until() {
            return Progress::WaitUntil { at };
        }
        Progress::Blocked {
            reasons: self.blockers(),
        }
    }

    /// Why nothing can move, in plain words, most important first, without repeats:
    /// problems, then missing adapters, then the approval.
    pub fn blockers(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let mut adapters = Vec::new();
        let mut approval = Vec::new();
        for s in self.pending() {
            if let Execution::NotAvailableYet { adapter } = s.execution {
                adapters.push(format!(
                    "this build has no {} adapter (needed to {})",
                    adapter.describe(),
                    s.step
                ));
            }
            for g in &s.gates {
                if let Gate::Fact { waiting } = g {
                    if waiting.is_problem() {
                        problems.push(waiting.to_string());
                    } else if *waiting == Waiting::NotApproved {
                        approval.push(waiting.to_string());
                    }
                }
            }
        }
        let mut out: Vec<String> = Vec::new();
        for r in problems.into_iter().chain(adapters).chain(approval) {
            if !out.contains(&r) {
                out.push(r);
            }
        }
        out
    }

    /// The versioned, serializable form (`plan --output json`).
    pub fn document(&self) -> PlanDocument {
        PlanDocument {
            version: PLAN_FORMAT_VERSION,
            computed_at: self.computed_at,
            policy: self.policy,
            converged: self.is_empty(),
            progress: self.progress(),
            next: self.steps.iter().position(PlannedStep::is_actionable),
            waiting_until: self.waiting_until(),
            notes: self.notes.clone(),
            steps: self
                .steps
                .iter()
                .map(|s| StepDocument {
                    summary: s.step.to_string(),
                    why: s.step.why().to_owned(),
                    writes: s.step.writes(),
                    removes: s.step.removes(),
                    adapter: s.step.adapter(),
                    actionable: s.is_actionable(),
                    gate_texts: s.gates.iter().map(ToString::to_string).collect(),
                    planned: s.clone(),
                })
                .collect(),
        }
    }
}

/// The JSON form of a plan. `version` is [`PLAN_FORMAT_VERSION`]; texts are included so
/// that CI can show them without knowing every step kind.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanDocument {
    pub version: u32,
    pub computed_at: DateTime<Utc>,
    pub policy: Policy,
    /// Nothing left to do.
    pub converged: bool,
    pub progress: Progress,
    /// Index in `steps` of the step to carry out next.
    pub next: Option<usize>,
    pub waiting_until: Option<DateTime<Utc>>,
    pub steps: Vec<StepDocument>,
    /// See [`Plan::notes`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// One step in the JSON form.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StepDocument {
    #[serde(flatten)]
    pub planned: PlannedStep,
    pub summary: String,
    pub why: String,
    pub writes: bool,
    pub removes: bool,
    pub adapter: Option<Adapter>,
    pub actionable: bool,
    /// Each gate in plain words, in the order of `gates`.
    pub gate_texts: Vec<String>,
}

/// Per-mailbox steps shown in a row before the rest of the row is summed up.
const MAILBOX_STEPS_SHOWN: usize = 8;

impl fmt::Display for Plan {
    /// The plan in plain words: what, on which server, why, and when each gate opens.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pending = self.pending().count();
        let at = instant(self.computed_at);
        if pending == 0 {
            writeln!(f, "Nothing to do at {at}: the servers match the manifest.")?;
        } else {
            write!(
                f,
                "{pending} step{} left at {at} (policy {})",
                if pending == 1 { "" } else { "s" },
                policy_name(self.policy)
            )?;
            match self.progress() {
                Progress::Ready => {
                    let i = self.steps.iter().position(PlannedStep::is_actionable);
                    writeln!(f, "; next: step {}.", i.map_or(0, |i| i + 1))?;
                }
                Progress::WaitUntil { at } => {
                    writeln!(f, "; nothing can run before {}.", instant(at))?
                }
                Progress::Recheck => writeln!(
                    f,
                    "; waiting for the servers to catch up (DNS propagation, work under way, mailboxes not checked yet)."
                )?,
                Progress::ObserveOnly => {
                    writeln!(f, "; observe only: none of this will be carried out.")?
                }
                Progress::Suspended => writeln!(
                    f,
                    "; suspended (spec.suspend): none of this is carried out until it is lifted."
                )?,
                Progress::Blocked { reasons } => {
                    writeln!(f, "; blocked:")?;
                    for r in reasons {
                        writeln!(f, "  - {r}")?;
                    }
                }
                Progress::Converged => writeln!(f, ".")?,
            }
        }
        let mut run = 0;
        let mut i = 0;
        while i < self.steps.len() {
            let s = &self.steps[i];
            if !s.is_pending() {
                i += 1;
                continue;
            }
            if s.step.address().is_some() {
                run += 1;
                if run > MAILBOX_STEPS_SHOWN {
                    // Sum up the rest of this row of per-mailbox steps in one line.
                    let rest: Vec<&PlannedStep> = self.steps[i..]
                        .iter()
                        .take_while(|s| s.step.address().is_some() || !s.is_pending())
                        .filter(|s| s.is_pending())
                        .collect();
                    let skipped = self.steps[i..]
                        .iter()
                        .take_while(|s| s.step.address().is_some() || !s.is_pending())
                        .count();
                    writeln!(
                        f,
                        "  {:>3}. … and {} more per-mailbox steps like these ({} may run now)",
                        i + 1,
                        rest.len(),
                        rest.iter().filter(|s| s.is_actionable()).count()
                    )?;
                    i += skipped;
                    run = 0;
                    continue;
                }
            } else {
                run = 0;
            }
            write_step(f, i, s)?;
            i += 1;
        }
        let held: Vec<&PlannedStep> = self.held().collect();
        if !held.is_empty() {
            writeln!(
                f,
                "Left in place by policy upsert-only (it never removes or switches off):"
            )?;
            for s in held {
                writeln!(f, "  - {}", s.step)?;
            }
        }
        if !self.notes.is_empty() {
            writeln!(f, "Notes:")?;
            for n in &self.notes {
                writeln!(f, "  - {n}")?;
            }
        }
        Ok(())
    }
}

fn write_step(f: &mut fmt::Formatter<'_>, i: usize, s: &PlannedStep) -> fmt::Result {
    writeln!(f, "  {:>3}. {}", i + 1, s.step)?;
    let on: Vec<String> = s.touches.iter().map(ToString::to_string).collect();
    writeln!(f, "       on: {}", on.join("; "))?;
    writeln!(f, "       why: {}", s.step.why())?;
    match s.execution {
        Execution::Execute => {}
        Execution::NotAvailableYet { adapter } => writeln!(
            f,
            "       not available yet: this build has no {} adapter",
            adapter.describe()
        )?,
        Execution::ObserveOnly if !s.available => writeln!(
            f,
            "       not carried out: policy observe (and this build has no {} adapter)",
            s.step.adapter().map_or("", Adapter::describe)
        )?,
        Execution::ObserveOnly => writeln!(f, "       not carried out: policy observe")?,
        Execution::Suspended => writeln!(
            f,
            "       not carried out: suspended (spec.suspend); set it to false to resume"
        )?,
        Execution::HeldByPolicy => writeln!(f, "       left in place: policy upsert-only")?,
    }
    for g in &s.gates {
        match g {
            Gate::Time { .. } => writeln!(f, "       waits {g}")?,
            Gate::Fact { .. } => writeln!(f, "       waits: {g}")?,
        }
    }
    Ok(())
}

fn policy_name(p: Policy) -> &'static str {
    match p {
        Policy::Sync => "sync",
        Policy::UpsertOnly => "upsert-only",
        Policy::Observe => "observe",
    }
}
