//! Mail routing during the move: the gateway (the old server relays the domains to the new
//! one), the fallback (the new server relays not-yet-migrated addresses back to the old
//! one), temporary forwarding over ManageSieve, and the end-to-end mail-flow probe.
//!
//! Wiring into the loop:
//! * observe: `world.gateway = routing::observe_gateway(gateway, &resolver).await`,
//!   `world.fallback = routing::observe_fallback(fallback, &resolver).await`, per mailbox
//!   and side `forwarding::observe(&account, side, forwarding, &resolver).await`;
//! * execute: [`apply`] carries out `GatewayOn`, `FallbackRelay` and `FallbackOff`;
//!   [`forwarding::apply`] `ForwardingOn`/`ForwardingOff`; [`probe::run`] `Probe`.

pub mod forwarding;
pub mod managesieve;
pub mod postfix;
pub mod probe;
pub mod runner;

use crate::address::{Address, Domain};
use crate::plan::RelayChange;
use std::collections::BTreeSet;

use crate::plan::RelayState;
use crate::secrets::Resolver;
use crate::spec::{MailMigrationSpec, Relay};

pub use postfix::{PostfixProvider, Role, RoutingProvider};
pub use runner::{Local, Runner, SshRunner};

/// Why a routing change or observation failed. Names hosts and commands, never secrets.
#[derive(Debug, thiserror::Error)]
pub enum RoutingError {
    #[error("{host}: `{command}` failed ({status}): {stderr}")]
    Command {
        host: String,
        command: String,
        status: String,
        stderr: String,
    },
    #[error("{host}: cannot run {program}: {error}")]
    Spawn {
        host: String,
        program: String,
        error: String,
    },
    #[error("ssh to {host} failed: {stderr}")]
    Ssh { host: String, stderr: String },
    #[error("{what}: {error}")]
    Secret { what: String, error: String },
    #[error("{0}")]
    Io(String),
    #[error("{0}")]
    Invalid(String),
    #[error("the manifest has no `{0}` section")]
    NotConfigured(&'static str),
    #[error("ManageSieve {addr}: {reason}")]
    Sieve { addr: String, reason: String },
    #[error(transparent)]
    Connect(#[from] crate::imap::conn::ConnectError),
    #[error("background task: {0}")]
    Task(String),
}

/// The runner for a Postfix target: local, or ssh with its secrets resolved.
pub fn runner_for(
    target: &crate::spec::PostfixTarget,
    resolver: &Resolver,
) -> Result<Box<dyn Runner>, RoutingError> {
    runner_at(target.ssh.as_ref(), resolver)
}

/// The runner for files and commands on this machine, or over `ssh`.
pub fn runner_at(
    ssh: Option<&crate::spec::Ssh>,
    resolver: &Resolver,
) -> Result<Box<dyn Runner>, RoutingError> {
    Ok(match ssh {
        None => Box::new(Local),
        Some(ssh) => Box::new(SshRunner::new(ssh, resolver)?),
    })
}

/// Run a blocking provider operation off the async runtime.
async fn blocking<T: Send + 'static>(
    relay: &Relay,
    resolver: &Resolver,
    role: Role,
    f: impl FnOnce(&PostfixProvider<'_>) -> Result<T, RoutingError> + Send + 'static,
) -> Result<T, RoutingError> {
    let (relay, resolver) = (relay.clone(), resolver.clone());
    tokio::task::spawn_blocking(move || {
        let runner = runner_for(&relay.postfix, &resolver)?;
        let provider = PostfixProvider::new(runner.as_ref(), &relay.postfix.config_dir, role);
        f(&provider)
    })
    .await
    .map_err(|e| RoutingError::Task(e.to_string()))?
}

async fn observe(relay: &Relay, resolver: &Resolver, role: Role) -> RelayState {
    blocking(relay, resolver, role, |p| p.observe())
        .await
        .unwrap_or_else(|e| RelayState::Error {
            reason: e.to_string(),
        })
}

/// The old server's gateway relay, as Postfix would route now (entries are domains).
pub async fn observe_gateway(relay: &Relay, resolver: &Resolver) -> RelayState {
    observe(relay, resolver, Role::Gateway).await
}

/// The new server's fallback relay, as Postfix would route now (entries are addresses).
pub async fn observe_fallback(relay: &Relay, resolver: &Resolver) -> RelayState {
    observe(relay, resolver, Role::Fallback).await
}

/// Carry out a routing step: `GatewayOn`, `FallbackRelay` (exactly the given addresses),
/// `FallbackOff`.
pub async fn apply(
    change: &RelayChange,
    spec: &MailMigrationSpec,
    resolver: &Resolver,
) -> Result<(), RoutingError> {
    let (relay, role, relay_to, entries) = match change {
        RelayChange::GatewayOn { relay_to, domains } => (
            spec.gateway
                .as_ref()
                .ok_or(RoutingError::NotConfigured("gateway"))?,
            Role::Gateway,
            relay_to.clone(),
            domains.iter().map(|d| Domain::of(d).into()).collect(),
        ),
        RelayChange::FallbackRelay {
            relay_to,
            addresses,
        } => (
            spec.fallback
                .as_ref()
                .ok_or(RoutingError::NotConfigured("fallback"))?,
            Role::Fallback,
            relay_to.clone(),
            addresses.iter().map(|a| Address::of(a).into()).collect(),
        ),
        RelayChange::FallbackOff { relay_to } => (
            spec.fallback
                .as_ref()
                .ok_or(RoutingError::NotConfigured("fallback"))?,
            Role::Fallback,
            relay_to.clone(),
            BTreeSet::new(),
        ),
    };
    blocking(relay, resolver, role, move |p| p.apply(&relay_to, &entries)).await
}

/// Remove a relay entirely (what `FallbackOff` does; for the gateway, by hand or at cleanup).
pub async fn remove(relay: &Relay, resolver: &Resolver, role: Role) -> Result<(), RoutingError> {
    blocking(relay, resolver, role, |p| p.remove()).await
}
