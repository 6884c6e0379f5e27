//! The DNS adapter: observe the domains' MX (and SPF, SRV) records on the update server
//! and on every authoritative nameserver, and change them through RFC 2136 UPDATE signed
//! with TSIG, one compare-and-swap message per step.
//!
//! - [`observe`] fills [`World::dns`](crate::plan::World::dns): the primary's records (the
//!   truth changes are compared against) and each nameserver's answer, TTLs as served,
//!   so the planner's propagation gate sees which nameservers still lag.
//! - [`apply`] carries out the DNS steps ([`DnsChange`]: lower and restore the MX TTL,
//!   switch MX, authorize and revoke SPF mechanisms, publish SRV records). A step either happens whole or not at all; a zone changed
//!   meanwhile gives [`DnsError::ZoneChanged`] and nothing is written (see [`update`]).
//! - Changes go out as RFC 2136 UPDATEs ([`update`]), as Route 53 change batches
//!   ([`route53`]), or through another provider's HTTP API ([`api`], with `dns-update`).
//! - Errors are [`DnsError`], with a CamelCase [`DnsError::reason`] for conditions.
//!
//! Messages are encoded and decoded by hickory-proto; the transport ([`wire`]) is mailshift's
//! own, because every exchange is with one named server (no recursion, no cache, no server
//! selection) and the raw answer is needed to verify its TSIG signature.

mod api;
mod change;
mod error;
mod observe;
mod query;
mod route53;
pub mod spf;
mod tsig;
pub mod update;
mod wire;

pub use error::{DnsError, PERSONS_REASONS};
pub use observe::observe_with;
pub use query::Timeouts;
pub use update::{Applied, apply_with};

use crate::plan::{DnsChange, DnsState};
use crate::secrets::Resolver;
use crate::spec::Dns;

/// Observes `domains` (the spec's `domains`) with default timeouts. See [`observe_with`].
pub async fn observe(dns: &Dns, domains: &[String]) -> DnsState {
    observe_with(dns, domains, Timeouts::default()).await
}

/// Carries out one DNS step with default timeouts. See [`apply_with`].
pub async fn apply(
    change: &DnsChange,
    dns: &Dns,
    resolver: &Resolver,
) -> Result<Applied, DnsError> {
    apply_with(change, dns, resolver, Timeouts::default()).await
}
