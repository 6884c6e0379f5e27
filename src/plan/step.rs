//! `Step`: one change to one server, with the data an adapter needs to carry it out, what it
//! touches and why. Steps are data: the executor maps each variant to one adapter call, the
//! CLI prints them, the tests apply a model of their effect.

use crate::address::Address;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::spec::{Endpoint, MailMigrationSpec, MxRecord, PostfixTarget, TlsMode};

/// One change, nested by the adapter that carries it out, so that each adapter is handed
/// only its own kind of step (as external-dns hands a provider only its `Changes`).
/// Per-mailbox steps name the mailbox by its address as the spec writes it.
///
/// The serialized form is flat and tagged by `kind` (`{"kind": "lowerTtl", "zone": ...}`):
/// each adapter's enum carries the tag, the outer enum adds nothing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Step {
    Dns(DnsChange),
    Relay(RelayChange),
    Forwarding(ForwardingChange),
    Mail(MailStep),
    Sieve(SieveStep),
    Dav(DavStep),
    Accounts(AccountsStep),
    Probe(ProbeStep),
    Own(OwnStep),
}

/// A change to the zone, through the DNS provider.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "kind",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum DnsChange {
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
}

impl DnsChange {
    /// The zone the change is sent to.
    pub fn zone(&self) -> &str {
        match self {
            DnsChange::LowerTtl { zone, .. }
            | DnsChange::SpfAuthorize { zone, .. }
            | DnsChange::SwitchMx { zone, .. }
            | DnsChange::PublishSrv { zone, .. }
            | DnsChange::SpfRevoke { zone, .. }
            | DnsChange::RestoreTtl { zone, .. } => zone,
        }
    }

    /// The owner name whose records change.
    pub fn name(&self) -> &str {
        match self {
            DnsChange::LowerTtl { name, .. }
            | DnsChange::SpfAuthorize { name, .. }
            | DnsChange::SwitchMx { name, .. }
            | DnsChange::PublishSrv { name, .. }
            | DnsChange::SpfRevoke { name, .. }
            | DnsChange::RestoreTtl { name, .. } => name,
        }
    }
}

/// A change to a Postfix relay: the old server's gateway or the new server's fallback.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "kind",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum RelayChange {
    /// Make the old server relay the domains' mail to the new one instead of delivering it.
    /// The executor must treat the last probe result as stale afterwards (it records
    /// `gatewayOnAt`, and only a later probe counts).
    GatewayOn {
        relay_to: String,
        domains: Vec<String>,
    },
    /// Make the new server relay exactly `addresses` back to the old one (on, or update).
    /// An empty list stops relaying anything but keeps the configuration.
    FallbackRelay {
        relay_to: String,
        addresses: Vec<String>,
    },
    /// Remove the fallback relay's configuration from the new server.
    FallbackOff { relay_to: String },
}

/// A change to one mailbox's temporary forwarding script, over ManageSieve.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all_fields = "camelCase")]
pub enum ForwardingChange {
    /// Install the temporary forwarding script for one mailbox on one server.
    #[serde(rename = "forwardingOn")]
    On {
        address: String,
        side: Side,
        to: String,
    },
    /// Remove the temporary forwarding script of one mailbox on one server.
    #[serde(rename = "forwardingOff")]
    Off { address: String, side: Side },
}

impl ForwardingChange {
    pub fn address(&self) -> &str {
        match self {
            ForwardingChange::On { address, .. } | ForwardingChange::Off { address, .. } => address,
        }
    }
}

/// Work of the IMAP engine: copies and verification.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "kind",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum MailStep {
    /// First copy of a mailbox.
    InitialSync { address: String },
    /// Copy what verification found missing or different.
    Resync { address: String, differences: u64 },
    /// Compare source and destination, folder by folder (read-only on both).
    Verify { address: String },
    /// Copy the last messages of the mailboxes about to move, right before the switch.
    FinalSync { addresses: Vec<String> },
    /// Copy what reached the old server from senders with stale DNS after the switch.
    DeltaSync { addresses: Vec<String> },
}

/// Work over ManageSieve on a mailbox's own scripts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "kind",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum SieveStep {
    /// Copy the mailbox's Sieve scripts to the new server and activate the same one.
    CopySieve { address: String },
}

/// Work over CardDAV and CalDAV on a mailbox's address books and calendars.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "kind",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum DavStep {
    /// Copy what the new server lacks of the mailbox's address books and calendars.
    CopyDav { address: String },
}

/// Work on the new server's user database and alias map (`spec.accounts`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "kind",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum AccountsStep {
    /// Write the accounts of `accounts` (mailbox addresses) with the old server's password
    /// hashes (or temporary passwords) and the aliases of `aliases` into the new server.
    ProvisionAccounts {
        accounts: Vec<String>,
        aliases: Vec<String>,
    },
}

/// Send a tagged message into the old server's SMTP and wait for it in `mailbox` on the
/// new server, then delete it there.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename = "probe")]
pub struct ProbeStep {
    pub mailbox: String,
}

/// mailshift's own bookkeeping: no server changes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum OwnStep {
    /// Record that the migration is complete.
    MarkComplete,
}

macro_rules! into_step {
    ($($t:ident => $v:ident),*) => {$(
        impl From<$t> for Step {
            fn from(s: $t) -> Step {
                Step::$v(s)
            }
        }
    )*};
}
into_step!(DnsChange => Dns, RelayChange => Relay, ForwardingChange => Forwarding, MailStep => Mail, SieveStep => Sieve, DavStep => Dav, AccountsStep => Accounts, ProbeStep => Probe, OwnStep => Own);

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
    /// The mailboxes' own Sieve scripts, over ManageSieve.
    Sieve,
    /// Address books and calendars, over CardDAV and CalDAV.
    Dav,
    /// SMTP-in, IMAP-out mail-flow probe.
    Probe,
    /// User databases and alias maps.
    Accounts,
}

impl Adapter {
    pub const ALL: [Adapter; 8] = [
        Adapter::Imap,
        Adapter::Dns,
        Adapter::Routing,
        Adapter::Forwarding,
        Adapter::Sieve,
        Adapter::Dav,
        Adapter::Probe,
        Adapter::Accounts,
    ];

    /// What the adapter is, for "not available yet" messages.
    pub fn describe(self) -> &'static str {
        match self {
            Adapter::Imap => "IMAP",
            Adapter::Dns => "DNS (RFC 2136)",
            Adapter::Routing => "Postfix routing",
            Adapter::Forwarding => "ManageSieve forwarding",
            Adapter::Sieve => "ManageSieve scripts",
            Adapter::Dav => "CardDAV/CalDAV",
            Adapter::Probe => "SMTP mail-flow probe",
            Adapter::Accounts => "user databases and alias maps",
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
    /// The old server's CardDAV/CalDAV. Only ever read.
    SourceDav,
    DestinationDav,
    /// The old server's user database. Only ever read.
    OldUserDatabase,
    NewUserDatabase,
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
            Resource::SourceDav => "old CardDAV/CalDAV",
            Resource::DestinationDav => "new CardDAV/CalDAV",
            Resource::OldUserDatabase => "old user database",
            Resource::NewUserDatabase => "new user database",
            Resource::OldSmtp => "old SMTP",
            Resource::Status => "status",
        };
        let how = match (self.access, self.resource) {
            (
                Access::Read,
                Resource::SourceImap | Resource::SourceDav | Resource::OldUserDatabase,
            ) => "read-only",
            (Access::Read, _) => "reads",
            (Access::Write, _) => "writes",
        };
        write!(f, "{what} {} ({how})", self.server)
    }
}

impl Step {
    /// The adapter that carries the step out; `None` for mailshift's own bookkeeping.
    pub fn adapter(&self) -> Option<Adapter> {
        Some(match self {
            Step::Dns(_) => Adapter::Dns,
            Step::Relay(_) => Adapter::Routing,
            Step::Forwarding(_) => Adapter::Forwarding,
            Step::Mail(_) => Adapter::Imap,
            Step::Sieve(_) => Adapter::Sieve,
            Step::Dav(_) => Adapter::Dav,
            Step::Accounts(_) => Adapter::Accounts,
            Step::Probe(_) => Adapter::Probe,
            Step::Own(_) => return None,
        })
    }

    /// Whether the step changes anything on a server (verify only reads; marking complete
    /// only writes mailshift's own status).
    pub fn writes(&self) -> bool {
        !matches!(self, Step::Mail(MailStep::Verify { .. }) | Step::Own(_))
    }

    /// Whether the step removes or switches off something: what `upsert-only` never does.
    pub fn removes(&self) -> bool {
        matches!(
            self,
            Step::Forwarding(ForwardingChange::Off { .. })
                | Step::Relay(RelayChange::FallbackOff { .. })
                | Step::Dns(DnsChange::SpfRevoke { .. })
        )
    }

    /// The mailbox a per-mailbox step is about.
    pub fn address(&self) -> Option<&str> {
        match self {
            Step::Forwarding(f) => Some(f.address()),
            Step::Sieve(SieveStep::CopySieve { address }) => Some(address),
            Step::Dav(DavStep::CopyDav { address }) => Some(address),
            Step::Mail(
                MailStep::InitialSync { address }
                | MailStep::Resync { address, .. }
                | MailStep::Verify { address },
            ) => Some(address),
            _ => None,
        }
    }

    /// The same piece of work as `other`: the same kind of step on the same mailbox (or
    /// domain). Data that changes while it runs, like a fallback list, does not count.
    pub fn same_work(&self, other: &Step) -> bool {
        self.kind() == other.kind()
            && self.address() == other.address()
            && self.domain() == other.domain()
    }

    /// A stable name for [`same_work`](Self::same_work): the step's kind and the mailbox
    /// or domain it is about, e.g. `InitialSync alice@example.com`.
    pub fn work_key(&self) -> String {
        let kind = self.kind();
        match (self.address(), self.domain()) {
            (Some(a), _) => format!("{kind} {}", Address::of(a)),
            (None, Some(d)) => format!("{kind} {}", Address::of(d)),
            (None, None) => kind.to_owned(),
        }
    }

    /// The step's kind, as Events, metrics and copy Jobs' labels name it.
    pub fn kind(&self) -> &'static str {
        match self {
            Step::Dns(d) => match d {
                DnsChange::LowerTtl { .. } => "LowerTtl",
                DnsChange::SpfAuthorize { .. } => "SpfAuthorize",
                DnsChange::SwitchMx { .. } => "SwitchMx",
                DnsChange::PublishSrv { .. } => "PublishSrv",
                DnsChange::SpfRevoke { .. } => "SpfRevoke",
                DnsChange::RestoreTtl { .. } => "RestoreTtl",
            },
            Step::Relay(r) => match r {
                RelayChange::GatewayOn { .. } => "GatewayOn",
                RelayChange::FallbackRelay { .. } => "FallbackRelay",
                RelayChange::FallbackOff { .. } => "FallbackOff",
            },
            Step::Forwarding(ForwardingChange::On { .. }) => "ForwardingOn",
            Step::Forwarding(ForwardingChange::Off { .. }) => "ForwardingOff",
            Step::Mail(m) => match m {
                MailStep::InitialSync { .. } => "InitialSync",
                MailStep::Resync { .. } => "Resync",
                MailStep::Verify { .. } => "Verify",
                MailStep::FinalSync { .. } => "FinalSync",
                MailStep::DeltaSync { .. } => "DeltaSync",
            },
            Step::Sieve(SieveStep::CopySieve { .. }) => "CopySieve",
            Step::Dav(DavStep::CopyDav { .. }) => "CopyDav",
            Step::Accounts(AccountsStep::ProvisionAccounts { .. }) => "ProvisionAccounts",
            Step::Probe(_) => "Probe",
            Step::Own(OwnStep::MarkComplete) => "MarkComplete",
        }
    }

    /// The domain a DNS step is about.
    pub fn domain(&self) -> Option<&str> {
        match self {
            Step::Dns(d) => Some(d.name()),
            _ => None,
        }
    }

    /// Why a careful admin takes this step, in plain words.
    pub fn why(&self) -> &'static str {
        match self {
            Step::Dns(DnsChange::LowerTtl { .. }) => {
                "resolvers must forget the old MX quickly once it switches; the switch waits until the old TTL has passed"
            }
            Step::Dns(DnsChange::SpfAuthorize { .. }) => {
                "mail sent from either server during the move must pass SPF, not land in spam"
            }
            Step::Forwarding(ForwardingChange::On { .. }) => {
                "a copy of every message arriving during the move goes to an outside address, in case anything goes wrong"
            }
            Step::Mail(MailStep::InitialSync { .. }) => {
                "the mailbox must exist on the new server before mail moves there"
            }
            Step::Mail(MailStep::Resync { .. }) => {
                "verification found messages missing or different on the new server"
            }
            Step::Mail(MailStep::Verify { .. }) => {
                "every message of the mailbox must be proven on the new server (counts, sizes, identities) before the move may go on"
            }
            Step::Relay(RelayChange::FallbackRelay { .. }) => {
                "mail reaching the new server for mailboxes not yet verified goes back to the old server, so nothing bounces or lands in a half-copied mailbox"
            }
            Step::Mail(MailStep::FinalSync { .. }) => {
                "copy the last messages that reached the old mailboxes: the gateway now relays new mail to the new server"
            }
            Step::Relay(RelayChange::GatewayOn { .. }) => {
                "senders whose DNS still points at the old server reach the new mailboxes"
            }
            Step::Sieve(SieveStep::CopySieve { .. }) => {
                "the user's filters and vacation reply must work on the new server from the first message it delivers"
            }
            Step::Dav(DavStep::CopyDav { .. }) => {
                "the user's contacts and calendars must be on the new server when their mail is"
            }
            Step::Accounts(AccountsStep::ProvisionAccounts { .. }) => {
                "users log in on the new server with the passwords they have, and mail to an alias is delivered there, before any mail moves"
            }
            Step::Probe(ProbeStep { .. }) => {
                "the gateway counts as working only once a real message went through it"
            }
            Step::Dns(DnsChange::SwitchMx { .. }) => "new mail goes to the new server",
            Step::Dns(DnsChange::PublishSrv { .. }) => {
                "mail clients find the new server by themselves"
            }
            Step::Mail(MailStep::DeltaSync { .. }) => {
                "the safety net: senders with stale DNS, or mail delivered locally on the old server, may have reached the old mailboxes since the final sync"
            }
            Step::Forwarding(ForwardingChange::Off { .. }) => {
                "the move is over; the temporary copy is no longer wanted"
            }
            Step::Relay(RelayChange::FallbackOff { .. }) => {
                "every mailbox is verified; nothing needs to go back"
            }
            Step::Dns(DnsChange::SpfRevoke { .. }) => {
                "the old server no longer sends the domain's mail"
            }
            Step::Dns(DnsChange::RestoreTtl { .. }) => {
                "the move is over; a long TTL spares the resolvers"
            }
            Step::Own(OwnStep::MarkComplete) => {
                "every step is done and the old server was kept as long as asked"
            }
        }
    }

    /// What the step reads and writes, on which server.
    pub fn touches(&self, spec: &MailMigrationSpec) -> Vec<Touch> {
        let src = || source_label(&spec.source);
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
            Step::Dns(d) => dns(d.zone()),
            Step::Forwarding(ForwardingChange::On { side, .. })
            | Step::Forwarding(ForwardingChange::Off { side, .. }) => {
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
            Step::Mail(MailStep::InitialSync { .. })
            | Step::Mail(MailStep::Resync { .. })
            | Step::Mail(MailStep::FinalSync { .. })
            | Step::Mail(MailStep::DeltaSync { .. }) => vec![
                touch(Resource::SourceImap, src(), Access::Read),
                touch(Resource::DestinationImap, dst(), Access::Write),
            ],
            Step::Mail(MailStep::Verify { .. }) => vec![
                touch(Resource::SourceImap, src(), Access::Read),
                touch(Resource::DestinationImap, dst(), Access::Read),
            ],
            Step::Relay(RelayChange::FallbackRelay { .. })
            | Step::Relay(RelayChange::FallbackOff { .. }) => {
                let server = spec
                    .fallback
                    .as_ref()
                    .map_or("?".into(), |r| postfix_label(&r.postfix));
                vec![touch(Resource::NewPostfix, server, Access::Write)]
            }
            Step::Relay(RelayChange::GatewayOn { .. }) => {
                let server = spec
                    .gateway
                    .as_ref()
                    .map_or("?".into(), |r| postfix_label(&r.postfix));
                vec![touch(Resource::OldPostfix, server, Access::Write)]
            }
            Step::Sieve(SieveStep::CopySieve { .. }) => {
                let label =
                    |e: Option<&Endpoint>| e.map_or("?".into(), |e| endpoint_label(e, 4190));
                let sieve = spec.sieve.as_ref();
                vec![
                    touch(
                        Resource::SourceManageSieve,
                        label(sieve.and_then(|s| s.managesieve.as_ref())),
                        Access::Read,
                    ),
                    touch(
                        Resource::DestinationManageSieve,
                        label(sieve.map(|s| &s.destination_managesieve)),
                        Access::Write,
                    ),
                ]
            }
            Step::Dav(DavStep::CopyDav { .. }) => {
                let dav = spec.dav.as_ref();
                let url =
                    |e: Option<&crate::spec::DavEndpoint>| e.map_or("?".into(), |e| e.url.clone());
                vec![
                    touch(
                        Resource::SourceDav,
                        url(dav.and_then(|d| d.source.as_ref())),
                        Access::Read,
                    ),
                    touch(
                        Resource::DestinationDav,
                        url(dav.map(|d| &d.destination)),
                        Access::Write,
                    ),
                ]
            }
            Step::Accounts(AccountsStep::ProvisionAccounts { aliases, .. }) => {
                let Some(a) = spec.accounts.as_ref() else {
                    return vec![];
                };
                let db = |d: &crate::spec::UserDatabase| match d {
                    crate::spec::UserDatabase::PasswdFile(p) => match &p.ssh {
                        Some(ssh) => format!("passwd-file {} on {}", p.path, ssh.host),
                        None => format!("passwd-file {}", p.path),
                    },
                    crate::spec::UserDatabase::Postgres(_) => "PostgreSQL table".into(),
                    crate::spec::UserDatabase::Mysql(_) => "MySQL table".into(),
                };
                let mut t = vec![
                    touch(Resource::OldUserDatabase, db(&a.source), Access::Read),
                    touch(Resource::NewUserDatabase, db(&a.destination), Access::Write),
                ];
                let store = |s: &crate::spec::AliasStore| match s {
                    crate::spec::AliasStore::PostfixMap(m) => m.map.clone(),
                    crate::spec::AliasStore::Postgres(_) => "PostgreSQL alias table".into(),
                    crate::spec::AliasStore::Mysql(_) => "MySQL alias table".into(),
                };
                if let Some(m) = a.aliases.as_ref().filter(|_| !aliases.is_empty()) {
                    if let Some(src) = &m.source {
                        t.push(touch(Resource::OldUserDatabase, store(src), Access::Read));
                    }
                    t.push(touch(
                        Resource::NewUserDatabase,
                        store(&m.destination),
                        Access::Write,
                    ));
                }
                t
            }
            Step::Probe(ProbeStep { .. }) => {
                let smtp = spec
                    .probe
                    .as_ref()
                    .map_or("?".into(), |p| endpoint_label(&p.smtp.endpoint(), 25));
                vec![
                    touch(Resource::OldSmtp, smtp, Access::Write),
                    touch(Resource::DestinationImap, dst(), Access::Write),
                ]
            }
            Step::Own(OwnStep::MarkComplete) => {
                vec![touch(Resource::Status, "mailshift".into(), Access::Write)]
            }
        }
    }
}

impl fmt::Display for Step {
    /// The step in plain words, e.g. "switch MX of example.com to mail.new.example.net.".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::Dns(DnsChange::LowerTtl {
                name,
                from_ttl: Some(from),
                to_ttl,
                ..
            }) => write!(f, "lower the MX TTL of {name} from {from}s to {to_ttl}s"),
            Step::Dns(DnsChange::LowerTtl {
                name,
                from_ttl: None,
                to_ttl,
                ..
            }) => write!(f, "lower the MX TTL of {name} to {to_ttl}s"),
            Step::Dns(DnsChange::SpfAuthorize {
                name, mechanisms, ..
            }) => write!(
                f,
                "authorize {} in the SPF record of {name}",
                list(mechanisms)
            ),
            Step::Forwarding(ForwardingChange::On { address, side, to }) => write!(
                f,
                "forward a copy of {address}'s incoming mail to {to} on the {side} server"
            ),
            Step::Mail(MailStep::InitialSync { address }) => {
                write!(f, "copy {address} to the new server")
            }
            Step::Mail(MailStep::Resync {
                address,
                differences,
            }) => write!(
                f,
                "copy again what is missing of {address} ({differences} differences found)"
            ),
            Step::Mail(MailStep::Verify { address }) => {
                write!(f, "verify {address} on both servers")
            }
            Step::Relay(RelayChange::FallbackRelay {
                relay_to,
                addresses,
            }) if addresses.is_empty() => write!(
                f,
                "stop relaying any address back to {relay_to} (the fallback stays configured)"
            ),
            Step::Relay(RelayChange::FallbackRelay {
                relay_to,
                addresses,
            }) => write!(
                f,
                "relay mail for {} from the new server back to {relay_to}",
                counted(
                    addresses,
                    "not yet verified address",
                    "not yet verified addresses"
                )
            ),
            Step::Mail(MailStep::FinalSync { addresses }) => write!(
                f,
                "final sync of {} before the switch",
                counted(addresses, "mailbox", "mailboxes")
            ),
            Step::Relay(RelayChange::GatewayOn { relay_to, domains }) => write!(
                f,
                "relay mail for {} from the old server to {relay_to}",
                list(domains)
            ),
            Step::Sieve(SieveStep::CopySieve { address }) => write!(
                f,
                "copy {address}'s Sieve scripts to the new server and activate the same one"
            ),
            Step::Dav(DavStep::CopyDav { address }) => write!(
                f,
                "copy {address}'s address books and calendars to the new server"
            ),
            Step::Accounts(AccountsStep::ProvisionAccounts { accounts, aliases }) => {
                let mut parts = Vec::new();
                if !accounts.is_empty() {
                    parts.push(counted(accounts, "account", "accounts"));
                }
                if !aliases.is_empty() {
                    parts.push(counted(aliases, "alias", "aliases"));
                }
                write!(f, "write {} on the new server", parts.join(" and "))
            }
            Step::Probe(ProbeStep { mailbox }) => write!(
                f,
                "send a probe message into the old server and check it arrives in {mailbox} on the new server"
            ),
            Step::Dns(DnsChange::SwitchMx { name, to, .. }) => {
                let targets: Vec<String> = to.iter().map(|mx| mx.exchange.clone()).collect();
                write!(f, "switch MX of {name} to {}", list(&targets))
            }
            Step::Dns(DnsChange::PublishSrv {
                name,
                imaps,
                submission,
                ..
            }) => {
                let mut parts = Vec::new();
                if let Some(t) = imaps {
                    parts.push(format!("_imaps._tcp.{name} → {t}"));
                }
                if let Some(t) = submission {
                    parts.push(format!("_submission._tcp.{name} → {t}"));
                }
                write!(f, "publish SRV records {}", parts.join(", "))
            }
            Step::Mail(MailStep::DeltaSync { addresses }) => write!(
                f,
                "delta sync of {}: mail that reached the old server after the switch",
                counted(addresses, "mailbox", "mailboxes")
            ),
            Step::Forwarding(ForwardingChange::Off { address, side }) => write!(
                f,
                "remove the temporary forwarding of {address} on the {side} server"
            ),
            Step::Relay(RelayChange::FallbackOff { relay_to }) => write!(
                f,
                "remove the fallback relay to {relay_to} from the new server"
            ),
            Step::Dns(DnsChange::SpfRevoke {
                name, mechanisms, ..
            }) => write!(
                f,
                "remove the old server's {} from the SPF record of {name}",
                list(mechanisms)
            ),
            Step::Dns(DnsChange::RestoreTtl { name, ttl, .. }) => {
                write!(f, "restore the MX TTL of {name} to {ttl}s")
            }
            Step::Own(OwnStep::MarkComplete) => f.write_str("mark the migration complete"),
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

/// The old server as a step names it: its IMAP or POP3 endpoint, or the files' path.
fn source_label(s: &crate::spec::SourceServer) -> String {
    use crate::spec::SourceKind;
    match (s.kind(), s.endpoint()) {
        (SourceKind::Pop3, Some(e)) => {
            let port = if e.tls == TlsMode::Tls { 995 } else { 110 };
            format!("pop3 {}", endpoint_label(e, port))
        }
        (_, Some(e)) => endpoint_label(e, imap_port(e)),
        (kind, None) => {
            let path = s
                .maildir
                .as_ref()
                .or(s.mbox.as_ref())
                .map(|f| f.path.as_str())
                .or(s.pst.as_ref().map(|p| p.file.as_str()))
                .unwrap_or("?");
            format!("{} files {path}", kind.name())
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Steps are stored (in-flight records, status) and printed (`plan -o json`) flat,
    /// tagged by `kind`: the nesting by adapter is not visible outside.
    #[test]
    fn the_wire_form_is_flat_and_tagged_by_kind() {
        let steps: Vec<Step> = vec![
            DnsChange::LowerTtl {
                zone: "example.com".into(),
                name: "example.com".into(),
                from_ttl: Some(3600),
                to_ttl: 300,
            }
            .into(),
            RelayChange::FallbackOff {
                relay_to: "old.example.net".into(),
            }
            .into(),
            ForwardingChange::On {
                address: "a@example.com".into(),
                side: Side::Source,
                to: "keep@example.org".into(),
            }
            .into(),
            MailStep::Resync {
                address: "a@example.com".into(),
                differences: 2,
            }
            .into(),
            ProbeStep {
                mailbox: "a@example.com".into(),
            }
            .into(),
            OwnStep::MarkComplete.into(),
        ];
        let json: Vec<serde_json::Value> = steps
            .iter()
            .map(|s| serde_json::to_value(s).unwrap())
            .collect();
        assert_eq!(
            json[0],
            serde_json::json!({"kind": "lowerTtl", "zone": "example.com",
                "name": "example.com", "fromTtl": 3600, "toTtl": 300})
        );
        assert_eq!(
            json[1],
            serde_json::json!({"kind": "fallbackOff", "relayTo": "old.example.net"})
        );
        assert_eq!(
            json[2],
            serde_json::json!({"kind": "forwardingOn", "address": "a@example.com",
                "side": "source", "to": "keep@example.org"})
        );
        assert_eq!(
            json[3],
            serde_json::json!({"kind": "resync", "address": "a@example.com", "differences": 2})
        );
        assert_eq!(
            json[4],
            serde_json::json!({"kind": "probe", "mailbox": "a@example.com"})
        );
        assert_eq!(json[5], serde_json::json!({"kind": "markComplete"}));
        for (step, value) in steps.iter().zip(json) {
            let back: Step = serde_json::from_value(value).unwrap();
            assert_eq!(&back, step);
        }
    }

    #[test]
    fn same_work_tells_kinds_of_one_adapter_apart() {
        let lower: Step = DnsChange::LowerTtl {
            zone: "example.com".into(),
            name: "example.com".into(),
            from_ttl: None,
            to_ttl: 300,
        }
        .into();
        let restore: Step = DnsChange::RestoreTtl {
            zone: "example.com".into(),
            name: "example.com".into(),
            ttl: 3600,
        }
        .into();
        assert!(!lower.same_work(&restore));
        assert!(lower.same_work(&lower.clone()));
    }
}
