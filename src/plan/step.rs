//! `Step`: one change to one server, with the data an adapter needs to carry it out, what it
//! touches and why. Steps are data: the executor maps each variant to one adapter call, the
//! CLI prints them, the tests apply a model of their effect.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::spec::{Endpoint, MailMigrationSpec, MxRecord, PostfixTarget, TlsMode};

/// One change. Per-mailbox steps name the mailbox by its address as the spec writes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "kind",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum Step {
    /// Lower the TTL of the existing MX set of `name`, targets unchanged.
    LowerTtl {
        zone: String,
        name: String,
        /// The TTL being replaced (recorded as `oldTTL`); `None` when DNS is not observed.
        from_ttl: Option<u32>,
        to_ttl: u32,
    },
    /// Add mechanisms to the SPF record of `name` so both servers may send during the move.
    SpfAuthorize {
        zone: String,
        name: String,
        mechanisms: Vec<String>,
    },
    /// Install the temporary forwarding script for one mailbox on one server.
    ForwardingOn {
        address: String,
        side: Side,
        to: String,
    },
    /// First copy of a mailbox.
    InitialSync { address: String },
    /// Copy what verification found missing or different.
    Resync { address: String, differences: u64 },
    /// Compare source and destination, folder by folder (read-only on both).
    Verify { address: String },
    /// Make the new server relay exactly `addresses` back to the old one (on, or update).
    /// An empty list stops relaying anything but keeps the configuration.
    FallbackRelay {
        relay_to: String,
        addresses: Vec<String>,
    },
    /// Copy the last messages of the mailboxes about to move, right before the switch.
    FinalSync { addresses: Vec<String> },
    /// Make the old server relay the domains' mail to the new one instead of delivering it.
    /// The executor must treat the last probe result as stale afterwards (it records
    /// `gatewayOnAt`, and only a later probe counts).
    GatewayOn {
        relay_to: String,
        domains: Vec<String>,
    },
    /// Send a tagged message into the old server's SMTP and wait for it in `mailbox` on the
    /// new server, then delete it there.
    Probe { mailbox: String },
    /// Replace the MX set of `name`; `from` is the set it was planned against (the DNS
    /// adapter writes nothing if the zone holds something else by then).
    SwitchMx {
        zone: String,
        name: String,
        from: Option<Vec<MxRecord>>,
        to: Vec<MxRecord>,
        ttl: u32,
    },
    /// Publish RFC 6186 SRV records pointing mail clients at the new server.
    PublishSrv {
        zone: String,
        name: String,
        imaps: Option<String>,
        submission: Option<String>,
    },
    /// Copy what reached the old server from senders with stale DNS after the switch.
    DeltaSync { addresses: Vec<String> },
    /// Remove the temporary forwarding script of one mailbox on one server.
    ForwardingOff { address: String, side: Side },
    /// Remove the fallback relay's configuration from the new server.
    FallbackOff { relay_to: String },
    /// Remove the old server's mechanisms from the SPF record of `name`.
    SpfRevoke {
        zone: String,
        name: String,
        mechanisms: Vec<String>,
    },
    /// Give the MX set of `name` its long TTL back.
    RestoreTtl {
        zone: String,
        name: String,
        ttl: u32,
    },
    /// Record that the migration is complete (mailshift's own status; no server changes).
    MarkComplete,
}

/// The old or the new server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Side {
    Source,
    Destination,
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Side::Source => "old",
            Side::Destination => "new",
        })
    }
}

/// A kind of adapter: the code that talks to one kind of server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Adapter {
    /// IMAP copy and verify.
    Imap,
    /// DNS lookups and RFC 2136 updates.
    Dns,
    /// Postfix gateway and fallback relays.
    Routing,
    /// ManageSieve forwarding scripts.
    Forwarding,
    /// SMTP-in, IMAP-out mail-flow probe.
    Probe,
}

impl Adapter {
    pub const ALL: [Adapter; 5] = [
        Adapter::Imap,
        Adapter::Dns,
        Adapter::Routing,
        Adapter::Forwarding,
        Adapter::Probe,
    ];

    /// What the adapter is, for "not available yet" messages.
    pub fn describe(self) -> &'static str {
        match self {
            Adapter::Imap => "IMAP",
            Adapter::Dns => "DNS (RFC 2136)",
            Adapter::Routing => "Postfix routing",
            Adapter::Forwarding => "ManageSieve forwarding",
            Adapter::Probe => "SMTP mail-flow probe",
        }
    }
}

/// A server or resource a step reads or changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Resource {
    /// The old server's mailboxes. Only ever read.
    SourceImap,
    DestinationImap,
    DnsZone,
    /// The old server's Postfix (gateway).
    OldPostfix,
    /// The new server's Postfix (fallback).
    NewPostfix,
    SourceManageSieve,
    DestinationManageSieve,
    /// The old server's SMTP service (the probe sends into it).
    OldSmtp,
    /// mailshift's own status record.
    Status,
}

/// Read or write.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Access {
    Read,
    Write,
}

/// One resource a step touches, with the server it lives on in plain words.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Touch {
    pub resource: Resource,
    pub server: String,
    pub access: Access,
}

impl fmt::Display for Touch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.resource {
            Resource::SourceImap => "old IMAP",
            Resource::DestinationImap => "new IMAP",
            Resource::DnsZone => "DNS",
            Resource::OldPostfix => "old Postfix",
            Resource::NewPostfix => "new Postfix",
            Resource::SourceManageSieve => "old ManageSieve",
            Resource::DestinationManageSieve => "new ManageSieve",
            Resource::OldSmtp => "old SMTP",
            Resource::Status => "status",
        };
        let how = match (self.access, self.resource) {
            (Access::Read, Resource::SourceImap) => "read-only",
            (Access::Read, _) => "reads",
            (Access::Write, _) => "writes",
        };
        write!(f, "{what} {} ({how})", self.server)
    }
}

impl Step {
    /// The adapter that carries the step out; `None` for mailshift's own bookkeeping.
    pub fn adapter(&self) -> Option<Adapter> {
        use Step::*;
        Some(match self {
            LowerTtl { .. }
            | SpfAuthorize { .. }
            | SwitchMx { .. }
            | PublishSrv { .. }
            | SpfRevoke { .. }
            | RestoreTtl { .. } => Adapter::Dns,
            ForwardingOn { .. } | ForwardingOff { .. } => Adapter::Forwarding,
            InitialSync { .. }
            | Resync { .. }
            | Verify { .. }
            | FinalSync { .. }
            | DeltaSync { .. } => Adapter::Imap,
            FallbackRelay { .. } | FallbackOff { .. } | GatewayOn { .. } => Adapter::Routing,
            Probe { .. } => Adapter::Probe,
            MarkComplete => return None,
        })
    }

    /// Whether the step changes anything on a server (verify only reads; marking complete
    /// only writes mailshift's own status).
    pub fn writes(&self) -> bool {
        !matches!(self, Step::Verify { .. } | Step::MarkComplete)
    }

    /// Whether the step removes or switches off something: what `upsert-only` never does.
    pub fn removes(&self) -> bool {
        matches!(
            self,
            Step::ForwardingOff { .. } | Step::FallbackOff { .. } | Step::SpfRevoke { .. }
        )
    }

    /// The mailbox a per-mailbox step is about.
    pub fn address(&self) -> Option<&str> {
        match self {
            Step::ForwardingOn { address, .. }
            | Step::InitialSync { address }
            | Step::Resync { address, .. }
            | Step::Verify { address }
            | Step::ForwardingOff { address, .. } => Some(address),
            _ => None,
        }
    }

    /// The same piece of work as `other`: the same kind of step on the same mailbox (or
    /// domain). Data that changes while it runs, like a fallback list, does not count.
    pub fn same_work(&self, other: &Step) -> bool {
        std::mem::discriminant(self) == std::mem::discriminant(other)
            && self.address() == other.address()
            && self.domain() == other.domain()
    }

    /// A stable name for [`same_work`](Self::same_work): the step's kind and the mailbox
    /// or domain it is about, e.g. `InitialSync alice@example.com`.
    pub fn work_key(&self) -> String {
        let kind = self.kind();
        match (self.address(), self.domain()) {
            (Some(a), _) => format!("{kind} {}", crate::address::key(a)),
            (None, Some(d)) => format!("{kind} {}", crate::address::key(d)),
            (None, None) => kind.to_owned(),
        }
    }

    /// The step's kind, as Events and metrics name it.
    pub fn kind(&self) -> &'static str {
        use Step::*;
        match self {
            LowerTtl { .. } => "LowerTtl",
            SpfAuthorize { .. } => "SpfAuthorize",
            ForwardingOn { .. } => "ForwardingOn",
            InitialSync { .. } => "InitialSync",
            Resync { .. } => "Resync",
            Verify { .. } => "Verify",
            FallbackRelay { .. } => "FallbackRelay",
            FinalSync { .. } => "FinalSync",
            GatewayOn { .. } => "GatewayOn",
            Probe { .. } => "Probe",
            SwitchMx { .. } => "SwitchMx",
            PublishSrv { .. } => "PublishSrv",
            DeltaSync { .. } => "DeltaSync",
            ForwardingOff { .. } => "ForwardingOff",
            FallbackOff { .. } => "FallbackOff",
            SpfRevoke { .. } => "SpfRevoke",
            RestoreTtl { .. } => "RestoreTtl",
            MarkComplete => "MarkComplete",
        }
    }

    /// The domain a DNS step is about.
    pub fn domain(&self) -> Option<&str> {
        match self {
            Step::LowerTtl { name, .. }
            | Step::SpfAuthorize { name, .. }
            | Step::SwitchMx { name, .. }
            | Step::PublishSrv { name, .. }
            | Step::SpfRevoke { name, .. }
            | Step::RestoreTtl { name, .. } => Some(name),
            _ => None,
        }
    }

    /// Why a careful admin takes this step, in plain words.
    pub fn why(&self) -> &'static str {
        use Step::*;
        match self {
            LowerTtl { .. } => {
                "resolvers must forget the old MX quickly once it switches; the switch waits until the old TTL has passed"
            }
            SpfAuthorize { .. } => {
                "mail sent from either server during the move must pass SPF, not land in spam"
            }
            ForwardingOn { .. } => {
                "a copy of every message arriving during the move goes to an outside address, in case anything goes wrong"
            }
            InitialSync { .. } => {
                "the mailbox must exist on the new server before mail moves there"
            }
            Resync { .. } => "verification found messages missing or different on the new server",
            Verify { .. } => {
                "every message of the mailbox must be proven on the new server (counts, sizes, identities) before the move may go on"
            }
            FallbackRelay { .. } => {
                "mail reaching the new server for mailboxes not yet verified goes back to the old server, so nothing bounces or lands in a half-copied mailbox"
            }
            FinalSync { .. } => {
                "copy the last messages that reached the old mailboxes: the gateway now relays new mail to the new server"
            }
            GatewayOn { .. } => {
                "senders whose DNS still points at the old server reach the new mailboxes"
            }
            Probe { .. } => {
                "the gateway counts as working only once a real message went through it"
            }
            SwitchMx { .. } => "new mail goes to the new server",
            PublishSrv { .. } => "mail clients find the new server by themselves",
            DeltaSync { .. } => {
                "the safety net: senders with stale DNS, or mail delivered locally on the old server, may have reached the old mailboxes since the final sync"
            }
            ForwardingOff { .. } => "the move is over; the temporary copy is no longer wanted",
            FallbackOff { .. } => "every mailbox is verified; nothing needs to go back",
            SpfRevoke { .. } => "the old server no longer sends the domain's mail",
            RestoreTtl { .. } => "the move is over; a long TTL spares the resolvers",
            MarkComplete => "every step is done and the old server was kept as long as asked",
        }
    }

    /// What the step reads and writes, on which server.
    pub fn touches(&self, spec: &MailMigrationSpec) -> Vec<Touch> {
        use Step::*;
        let src = || endpoint_label(&spec.source.imap, imap_port(&spec.source.imap));
        let dst = || endpoint_label(&spec.destination.imap, imap_port(&spec.destination.imap));
        let touch = |resource, server: String, access| Touch {
            resource,
            server,
            access,
        };
        let dns = |zone: &str| {
            let via = spec.dns.as_ref().map_or_else(
                || "?".to_owned(),
                |d| format!("{}, {}", d.provider.label(), d.provider.guarantee()),
            );
            vec![touch(
                Resource::DnsZone,
                format!("zone {zone} via {via}"),
                Access::Write,
            )]
        };
        match self {
            LowerTtl { zone, .. }
            | SpfAuthorize { zone, .. }
            | SwitchMx { zone, .. }
            | PublishSrv { zone, .. }
            | SpfRevoke { zone, .. }
            | RestoreTtl { zone, .. } => dns(zone),
            ForwardingOn { side, .. } | ForwardingOff { side, .. } => {
                let f = spec.forwarding.as_ref();
                let (resource, endpoint) = match side {
                    Side::Source => (Resource::SourceManageSieve, f.map(|f| &f.managesieve)),
                    Side::Destination => (
                        Resource::DestinationManageSieve,
                        f.and_then(|f| f.destination_managesieve.as_ref()),
                    ),
                };
                let server = endpoint.map_or("?".into(), |e| endpoint_label(e, 4190));
                vec![touch(resource, server, Access::Write)]
            }
            InitialSync { .. } | Resync { .. } | FinalSync { .. } | DeltaSync { .. } => vec![
                touch(Resource::SourceImap, src(), Access::Read),
                touch(Resource::DestinationImap, dst(), Access::Write),
            ],
            Verify { .. } => vec![
                touch(Resource::SourceImap, src(), Access::Read),
                touch(Resource::DestinationImap, dst(), Access::Read),
            ],
            FallbackRelay { .. } | FallbackOff { .. } => {
                let server = spec
                    .fallback
                    .as_ref()
                    .map_or("?".into(), |r| postfix_label(&r.postfix));
                vec![touch(Resource::NewPostfix, server, Access::Write)]
            }
            GatewayOn { .. } => {
                let server = spec
                    .gateway
                    .as_ref()
                    .map_or("?".into(), |r| postfix_label(&r.postfix));
                vec![touch(Resource::OldPostfix, server, Access::Write)]
            }
            Probe { .. } => {
                let smtp = spec
                    .probe
                    .as_ref()
                    .map_or("?".into(), |p| endpoint_label(&p.smtp.endpoint(), 25));
                vec![
                    touch(Resource::OldSmtp, smtp, Access::Write),
                    touch(Resource::DestinationImap, dst(), Access::Write),
                ]
            }
            MarkComplete => vec![touch(Resource::Status, "mailshift".into(), Access::Write)],
        }
    }
}

impl fmt::Display for Step {
    /// The step in plain words, e.g. "switch MX of example.com to mail.new.example.net.".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use Step::*;
        match self {
            LowerTtl {
                name,
                from_ttl: Some(from),
                to_ttl,
                ..
            } => write!(f, "lower the MX TTL of {name} from {from}s to {to_ttl}s"),
            LowerTtl {
                name,
                from_ttl: None,
                to_ttl,
                ..
            } => write!(f, "lower the MX TTL of {name} to {to_ttl}s"),
            SpfAuthorize {
                name, mechanisms, ..
            } => write!(
                f,
                "authorize {} in the SPF record of {name}",
                list(mechanisms)
            ),
            ForwardingOn { address, side, to } => write!(
                f,
                "forward a copy of {address}'s incoming mail to {to} on the {side} server"
            ),
            InitialSync { address } => write!(f, "copy {address} to the new server"),
            Resync {
                address,
                differences,
            } => write!(
                f,
                "copy again what is missing of {address} ({differences} differences found)"
            ),
            Verify { address } => write!(f, "verify {address} on both servers"),
            FallbackRelay {
                relay_to,
                addresses,
            } if addresses.is_empty() => write!(
                f,
                "stop relaying any address back to {relay_to} (the fallback stays configured)"
            ),
            FallbackRelay {
                relay_to,
                addresses,
            } => write!(
                f,
                "relay mail for {} from the new server back to {relay_to}",
                counted(
                    addresses,
                    "not yet verified address",
                    "not yet verified addresses"
                )
            ),
            FinalSync { addresses } => write!(
                f,
                "final sync of {} before the switch",
                counted(addresses, "mailbox", "mailboxes")
            ),
            GatewayOn { relay_to, domains } => write!(
                f,
                "relay mail for {} from the old server to {relay_to}",
                list(domains)
            ),
            Probe { mailbox } => write!(
                f,
                "send a probe message into the old server and check it arrives in {mailbox} on the new server"
            ),
            SwitchMx { name, to, .. } => {
                let targets: Vec<String> = to.iter().map(|mx| mx.exchange.clone()).collect();
                write!(f, "switch MX of {name} to {}", list(&targets))
            }
            PublishSrv {
                name,
                imaps,
                submission,
                ..
            } => {
                let mut parts = Vec::new();
                if let Some(t) = imaps {
                    parts.push(format!("_imaps._tcp.{name} → {t}"));
                }
                if let Some(t) = submission {
                    parts.push(format!("_submission._tcp.{name} → {t}"));
                }
                write!(f, "publish SRV records {}", parts.join(", "))
            }
            DeltaSync { addresses } => write!(
                f,
                "delta sync of {}: mail that reached the old server after the switch",
                counted(addresses, "mailbox", "mailboxes")
            ),
            ForwardingOff { address, side } => write!(
                f,
                "remove the temporary forwarding of {address} on the {side} server"
            ),
            FallbackOff { relay_to } => write!(
                f,
                "remove the fallback relay to {relay_to} from the new server"
            ),
            SpfRevoke {
                name, mechanisms, ..
            } => write!(
                f,
                "remove the old server's {} from the SPF record of {name}",
                list(mechanisms)
            ),
            RestoreTtl { name, ttl, .. } => write!(f, "restore the MX TTL of {name} to {ttl}s"),
            MarkComplete => f.write_str("mark the migration complete"),
        }
    }
}

/// `a, b, c` or `a, b, c and 4 more`.
pub(crate) fn list(items: &[String]) -> String {
    const SHOWN: usize = 3;
    if items.len() <= SHOWN {
        return items.join(", ");
    }
    format!(
        "{} and {} more",
        items[..SHOWN].join(", "),
        items.len() - SHOWN
    )
}

/// `1 mailbox (a)` or `5 mailboxes (a, b, c and 2 more)`.
fn counted(items: &[String], one: &str, many: &str) -> String {
    let noun = if items.len() == 1 { one } else { many };
    if items.is_empty() {
        format!("0 {many}")
    } else {
        format!("{} {noun} ({})", items.len(), list(items))
    }
}

fn imap_port(e: &Endpoint) -> u16 {
    if e.tls == TlsMode::Tls { 993 } else { 143 }
}

fn endpoint_label(e: &Endpoint, default_port: u16) -> String {
    format!("{}:{}", e.host, e.port.unwrap_or(default_port))
}

fn postfix_label(p: &PostfixTarget) -> String {
    match &p.ssh {
        Some(ssh) => format!("{}@{}:{}", ssh.user, ssh.host, p.config_dir),
        None => format!("local {}", p.config_dir),
    }
}
