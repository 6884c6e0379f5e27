//! One reconcile of one MailMigration: finalizer, secrets, observe → plan → at most one
//! step, status, events, and when to come back.

use std::sync::Arc;

use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::finalizer::{Event as Finalizer, finalizer};

use super::events::publish_related;
use super::jobs::{CopyKind, FanOut, Fanned};
use super::metrics::Outcome;
use super::requeue::{API_RETRY, Error, UNRUNNABLE, requeue_for};
use super::{Context, EngineFactory, FINALIZER, secrets, status};
use crate::reconcile::records::{MemoryRecords, Records};
use crate::reconcile::{Done, Reconciler};
use crate::secrets::Resolver;
use crate::spec::MailMigration;
use crate::spec::MailMigrationStatus;
use crate::store::{MemoryStatus, StateDir};

/// The controller's reconcile function.
pub async fn reconcile<F: EngineFactory>(
    obj: Arc<MailMigration>,
    ctx: Arc<Context<F>>,
) -> Result<Action, Error> {
    ctx.metrics.reconciled();
    let namespace = obj.namespace().ok_or(Error::NoNamespace)?;
    let api: Api<MailMigration> = Api::namespaced(ctx.client.clone(), &namespace);
    finalizer(&api, FINALIZER, obj, |event| async {
        match event {
            Finalizer::Apply(obj) => apply(&obj, &api, &ctx).await,
            Finalizer::Cleanup(obj) => cleanup(&obj, &ctx).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)))
}

/// The controller's error policy: count, log, retry.
pub fn error_policy<F: EngineFactory>(
    obj: Arc<MailMigration>,
    error: &Error,
    ctx: Arc<Context<F>>,
) -> Action {
    ctx.metrics.failed(error.reason());
    tracing::warn!(
        namespace = obj.namespace().unwrap_or_default(),
        name = obj.name_any(),
        error = %error,
        "reconcile failed"
    );
    Action::requeue(API_RETRY)
}

pub(super) fn key(obj: &MailMigration) -> String {
    format!("{}/{}", obj.namespace().unwrap_or_default(), obj.name_any())
}

fn state_of<F>(obj: &MailMigration, ctx: &Context<F>) -> StateDir {
    StateDir::at(
        ctx.cache_dir
            .join(obj.namespace().unwrap_or_default())
            .join(obj.name_any()),
    )
}

/// Publish an Event about `obj`; a failure to publish is logged, not fatal.
pub(super) async fn publish<F>(
    ctx: &Context<F>,
    obj: &MailMigration,
    type_: EventType,
    reason: &str,
    action: &str,
    note: String,
) {
    publish_related(ctx, obj, type_, reason, action, note, None).await
}

async fn apply<F: EngineFactory>(
    obj: &MailMigration,
    api: &Api<MailMigration>,
    ctx: &Context<F>,
) -> Result<Action, Error> {
    let now = ctx.now();
    let name = obj.name_any();
    let namespace = obj.namespace().ok_or(Error::NoNamespace)?;
    let key = key(obj);
    let generation = obj.metadata.generation.unwrap_or(1);
    let previous = obj.status.clone().unwrap_or_default();

    let store = secrets::fetch(
        &ctx.client,
        &namespace,
        &secrets::referenced_secrets(&obj.spec),
    )
    .await?;
    let resolver = Resolver::cluster_only(store).with_sink(Arc::new(secrets::KubeSink::new(
        &ctx.client,
        &namespace,
        &name,
    )));
    let state = state_of(obj, ctx);
    let (engine, accounts) = match ctx.engines.prepare(obj, &resolver, state.clone()) {
        Ok(prepared) => prepared,
        Err(e) => {
            // Nothing can be observed without the mailboxes' logins: say why, and retry
            // (a missing Secret may be created later).
            let message = format!("{e:#}");
            ctx.metrics.failed("InvalidConfiguration");
            publish(
                ctx,
                obj,
                EventType::Warning,
                "InvalidConfiguration",
                "Prepare",
                message.clone(),
            )
            .await;
            let s =
                status::unrunnable(&previous, generation, "InvalidConfiguration", &message, now);
            status::apply(api, &name, &s).await?;
            return Ok(Action::requeue(UNRUNNABLE));
        }
    };
    // Copy Jobs (spec.sync.parallelism > 1): what they carry out is planned as running.
    let mut fan = FanOut::start(obj, ctx, &key, generation).await?;
    let records = Arc::new(MemoryRecords::new(seed_records(&previous, &state)));
    let memory = Arc::new(MemoryStatus::new(previous));
    let mut r = Reconciler::new(obj.clone(), accounts, state, Fanned::new(engine))
        .map_err(Error::Loop)?
        .with_records_store(records.clone())
        .map_err(Error::Loop)?
        .with_resolver(resolver)
        .with_status_store(memory.clone())
        .with_generation(generation)
        .with_facts(ctx.facts(&key))
        .with_clock(ctx.clock());

    let mut launched = 0;
    if let Some(f) = &mut fan {
        f.release(&mut r)?;
        f.follow(ctx, &mut r).await;
        r.set_in_flight(f.in_flight());
        let pass = r.pass(now, true).await.map_err(Error::Loop)?;
        let plan = if f.settle(obj, ctx, &mut r, &pass.plan, now).await? {
            r.pass(now, true).await.map_err(Error::Loop)?.plan
        } else {
            pass.plan
        };
        launched = f.launch(obj, ctx, &plan, now).await?;
        r.set_in_flight(f.in_flight());
    }
    // With Jobs, copying is theirs and every other step is the controller's; without,
    // the loop carries out every step, those of different mailboxes side by side.
    let turn = r
        .turn(|step| fan.is_none() || CopyKind::of(step).is_none())
        .await
        .map_err(Error::Loop)?;
    for done in &turn.done {
        report(ctx, obj, done).await;
    }
    let (messages, bytes) = r.copied();
    ctx.metrics.copied(messages, bytes);
    let after = ctx.now();
    let action = match &fan {
        Some(f) => f.action(&turn.pass.plan, after),
        None => requeue_for(&turn.pass.plan.progress(), after),
    };
    if turn.done.is_empty() && launched > 0 {
        tracing::debug!(namespace, name, launched, "copy Jobs created");
    }
    ctx.set_facts(&key, Some(r.facts().clone()));
    let mut status = memory.get();
    status.records = Some(records.get());
    status::apply(api, &name, &status).await?;
    Ok(action)
}

/// Metrics, logs and an Event for a step the loop carried out.
async fn report<F>(ctx: &Context<F>, obj: &MailMigration, done: &Done) {
    let kind = done.step.kind();
    let step = &done.step;
    let outcome = match done.result {
        Ok(()) => Outcome::Applied,
        Err(_) => Outcome::Failed,
    };
    ctx.metrics.step(kind, outcome, done.took);
    match &done.result {
        Ok(()) => {
            publish(
                ctx,
                obj,
                EventType::Normal,
                "StepApplied",
                kind,
                step.to_string(),
            )
            .await;
        }
        Err(failure) => {
            ctx.metrics.failed(&failure.reason);
            let reason = if failure.stalled {
                "Stalled"
            } else {
                failure.reason.as_str()
            };
            let note = format!(
                "`{step}` failed (attempt {}): {}",
                failure.count, failure.message
            );
            publish(ctx, obj, EventType::Warning, reason, kind, note).await;
        }
    }
}

/// The loop's records as the status holds them; from the cache directory when the status
/// has none yet (written by a controller from before records moved into the status).
fn seed_records(previous: &MailMigrationStatus, state: &StateDir) -> Records {
    previous
        .records
        .clone()
        .unwrap_or_else(|| Records::load(state).unwrap_or_default())
}

/// On deletion: nothing mailshift set up is undone behind the admin's back, except what
/// is temporary (forwarding), and the Event says what was left as it is. A forwarding that
/// cannot be removed yet (a server down) keeps the finalizer and is retried; one that can
/// never be (its Secret is gone, as when the namespace is deleted) is reported instead.
async fn cleanup<F: EngineFactory>(obj: &MailMigration, ctx: &Context<F>) -> Result<Action, Error> {
    let spec = &obj.spec;
    let mut left = vec!["MX and DNS records"];
    if spec.gateway.is_some() {
        left.push("the gateway relay on the old server");
    }
    if spec.fallback.is_some() {
        left.push("the fallback relay on the new server");
    }
    left.push("every mailbox on both servers");
    let mut note = format!(
        "MailMigration deleted; left as they are: {}.",
        left.join(", ")
    );
    let mut type_ = EventType::Normal;
    if let Some(fwd) = &spec.forwarding {
        let namespace = obj.namespace().ok_or(Error::NoNamespace)?;
        let store =
            secrets::fetch(&ctx.client, &namespace, &secrets::referenced_secrets(spec)).await?;
        let resolver = Resolver::cluster_only(store);
        // Only the mailboxes' logins are needed, not a mail engine.
        let discovered = crate::directory::discover(spec, &resolver)
            .await
            .unwrap_or_else(|e| {
                tracing::warn!(error = %e, "cannot discover the old server's accounts; removing forwarding of the listed mailboxes only");
                Vec::new()
            });
        match crate::accounts::resolve_with(spec, &resolver, &discovered) {
            Err(e) => {
                type_ = EventType::Warning;
                note.push_str(&format!(
                    " Temporary forwarding to {} could NOT be removed ({e:#}): delete the Sieve script `{}` of each mailbox by hand.",
                    fwd.to,
                    crate::routing::forwarding::SCRIPT_NAME
                ));
            }
            Ok(accounts) => {
                match super::cleanup::remove_forwarding(spec, &accounts, &resolver).await {
                    super::cleanup::Forwarding::Removed { mailboxes, servers } => {
                        note.push_str(&format!(
                            " Temporary forwarding to {} removed ({mailboxes} mailbox(es), {servers} server(s)).",
                            fwd.to
                        ));
                    }
                    super::cleanup::Forwarding::Failed(problems) => {
                        let message = format!(
                            "cannot remove the temporary forwarding to {} yet: {}; retrying (to give up, remove the finalizer {} by hand)",
                            fwd.to,
                            problems.join("; "),
                            super::FINALIZER
                        );
                        ctx.metrics.failed("CleanupFailed");
                        publish(
                            ctx,
                            obj,
                            EventType::Warning,
                            "CleanupFailed",
                            "Cleanup",
                            message.clone(),
                        )
                        .await;
                        return Err(Error::Loop(anyhow::anyhow!(message)));
                    }
                }
            }
        }
    }
    publish(ctx, obj, type_, "Deleted", "Cleanup", note).await;
    ctx.set_facts(&key(obj), None);
    ctx.jobs.forget(&key(obj));
    let state = state_of(obj, ctx);
    if let Err(e) = std::fs::remove_dir_all(state.root())
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(error = %e, dir = %state.root().display(), "cannot remove caches");
    }
    Ok(Action::await_change())
}
