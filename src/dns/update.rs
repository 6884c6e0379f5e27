//! Changing records: one RFC 2136 UPDATE per step, signed with TSIG, guarded by
//! prerequisites so that it applies only to the record set it was computed from.
//!
//! ## Compare-and-swap
//! Every step reads the record set it changes from the update server, computes the new
//! set, and sends one UPDATE whose prerequisite section holds the exact set read ("RRset
//! exists (value dependent)", RFC 2136 2.4.2), or "RRset does not exist" (2.4.3) when
//! there was none. `SwitchMx` compares against the set it was *planned* against (its
//! `from`), not a fresh read. If the zone holds anything else by the time the server
//! processes the update, the server answers NXRRSET and writes nothing: the step fails
//! with [`DnsError::ZoneChanged`] and the loop plans again from a fresh observation.
//! A server applies an UPDATE atomically (all of its changes or none), so a step never
//! leaves a half-changed record set; and since the prerequisite is checked by the server,
//! even a spoofed or stale read can only make the update fail, never write a wrong set.
//!
//! Prerequisites compare record data, not TTLs (RFC 2136 sends them with TTL 0): a TTL
//! changed meanwhile with the same hosts is caught by a check of the read against
//! `LowerTtl`'s `from_ttl` instead (narrow window, not atomic; the TTL is what the step
//! sets anyway).
//!
//! A provider reached over an HTTP API gets the same record sets, written through
//! [`super::api`]: as one Route 53 change batch that deletes exactly what it read (atomic,
//! refused whole if the set changed), or for the other APIs compared by a read right before
//! the write (see there).
//!
//! ## What each step sends
//! - `LowerTtl` / `RestoreTtl`: prerequisite MX set = read set; delete the MX set; add the
//!   same records with the new TTL. Nothing is sent when there is no MX set, or it already
//!   has that TTL (`LowerTtl`: at most that TTL; lowering never raises one).
//! - `SwitchMx`: prerequisite MX set = `from` (absent when `from` is empty; a fresh read
//!   when `from` is unknown); delete the MX set; add `to` with `ttl`.
//! - `SpfAuthorize` / `SpfRevoke`: prerequisite TXT set = read set (all TXT records of the
//!   name, SPF or not); delete the old `v=spf1` record; add the edited one (see
//!   [`super::spf`]) with the TXT set's TTL (3600 for a new set).
//! - `PublishSrv`: per service, prerequisite SRV set = read set; delete it; add `0 1 PORT
//!   HOST.` (RFC 6186), TTL of the old set or 3600.

use crate::plan::DnsChange;
use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::{MX, SRV, TXT};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use tracing::info;

use super::api::Api;
use super::change::Change;
use super::error::DnsError;
use super::observe::{fqdn, mx_records, txt_text};
use super::query::{self, QueryError, RrSet, Timeouts};
use super::tsig::{self, TsigKey, Verification};
use super::{spf, wire};
use crate::secrets::Resolver;
use crate::spec::{Dns, MxRecord};

/// TTL of records mailshift creates where none existed (SPF, SRV).
pub const DEFAULT_TTL: u32 = 3600;

/// What a step did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applied {
    /// The server accepted the update.
    Updated,
    /// The zone already held what the step asks for; nothing was sent.
    AlreadyDone,
}

/// Carries out one DNS step through the provider of `dns`.
pub async fn apply_with(
    change: &DnsChange,
    dns: &Dns,
    resolver: &Resolver,
    t: Timeouts,
) -> Result<Applied, DnsError> {
    let (zone, name) = (change.zone(), change.name());
    let server = dns.provider.label();
    let zone_name = fqdn(zone).map_err(|detail| DnsError::InvalidRecord {
        record: format!("zone {zone}"),
        detail,
    })?;
    let owner = fqdn(name).map_err(|detail| DnsError::InvalidRecord {
        record: name.to_owned(),
        detail,
    })?;
    if !zone_name.zone_of(&owner) {
        return Err(DnsError::NotInZone {
            server,
            zone: show(&zone_name),
            record: format!("{} {}", record_type(change), show(&owner)),
        });
    }
    let via = match dns.provider.rfc2136() {
        Some(r) => {
            let key = key(r, resolver)?;
            let addr = wire::resolve(&r.server)
                .await
                .map_err(|detail| DnsError::ServerUnreachable {
                    server: server.clone(),
                    record: format!("{} {}", record_type(change), show(&owner)),
                    doing: "resolving the server for",
                    detail,
                })?
                .remove(0);
            Via::Rfc2136 { addr, key }
        }
        None => Via::Api(Box::new(Api::new(dns, resolver, t).await?)),
    };
    let ctx = Ctx {
        label: server,
        via,
        zone: zone_name,
        t,
    };
    match change {
        DnsChange::LowerTtl {
            from_ttl, to_ttl, ..
        } => set_mx_ttl(&ctx, &owner, *to_ttl, Some(*from_ttl)).await,
        DnsChange::RestoreTtl { ttl, .. } => set_mx_ttl(&ctx, &owner, *ttl, None).await,
        DnsChange::SwitchMx { from, to, ttl, .. } => {
            switch_mx(&ctx, &owner, from.as_deref(), to, *ttl).await
        }
        DnsChange::SpfAuthorize { mechanisms, .. } => {
            edit_spf(&ctx, &owner, |old| spf::authorize(old, mechanisms)).await
        }
        DnsChange::SpfRevoke { mechanisms, .. } => {
            edit_spf(&ctx, &owner, |old| {
                old.and_then(|o| spf::revoke(o, mechanisms))
            })
            .await
        }
        DnsChange::PublishSrv {
            imaps, submission, ..
        } => {
            publish_srv(
                &ctx,
                &owner,
                [("_imaps", imaps, 993), ("_submission", submission, 587)],
            )
            .await
        }
    }
}

fn record_type(change: &DnsChange) -> RecordType {
    match change {
        DnsChange::SpfAuthorize { .. } | DnsChange::SpfRevoke { .. } => RecordType::TXT,
        DnsChange::PublishSrv { .. } => RecordType::SRV,
        _ => RecordType::MX,
    }
}

fn key(r: &crate::spec::Rfc2136, resolver: &Resolver) -> Result<TsigKey, DnsError> {
    let t = &r.tsig;
    let secret = resolver
        .resolve(&t.secret)
        .map_err(|source| DnsError::SecretUnavailable {
            key: t.name.clone(),
            source,
        })?;
    TsigKey::new(&t.name, t.algorithm, secret.expose()).map_err(|detail| DnsError::TsigKeyInvalid {
        key: t.name.clone(),
        detail,
    })
}

/// The update server (or API) and how to talk to it.
struct Ctx {
    label: String,
    via: Via,
    zone: Name,
    t: Timeouts,
}

enum Via {
    Rfc2136 { addr: SocketAddr, key: TsigKey },
    Api(Box<Api>),
}

impl Ctx {
    /// The record set as the update server (or API) holds it now.
    async fn read(&self, name: &Name, rtype: RecordType) -> Result<RrSet, DnsError> {
        let addr = match &self.via {
            Via::Rfc2136 { addr, .. } => *addr,
            Via::Api(api) => return api.read(&self.zone, name, rtype).await,
        };
        let record = format!("{rtype} {}", show(name));
        match query::rrset(addr, name, rtype, self.t).await {
            Ok((set, _)) => Ok(set),
            Err(QueryError::Net(e)) => Err(DnsError::ServerUnreachable {
                server: self.label.clone(),
                record,
                doing: "reading",
                detail: e.to_string(),
            }),
            Err(QueryError::NotAuthoritative(detail)) => Err(DnsError::NotAuthoritative {
                server: self.label.clone(),
                zone: show(&self.zone),
                record,
                detail,
            }),
            Err(QueryError::Bad(detail)) => Err(DnsError::UpdateFailed {
                server: self.label.clone(),
                record,
                detail: format!("reading it: {detail}"),
            }),
        }
    }

    /// Replaces the record sets of `changes`, each only if it still holds what it
    /// expects: one UPDATE with prerequisites, or the API's read-then-write.
    async fn commit(
        &self,
        changes: &[Change],
        record: &str,
        check: Option<(&Name, RecordType, &str)>,
    ) -> Result<Applied, DnsError> {
        let (addr, key) = match &self.via {
            Via::Api(api) => {
                api.commit(&self.zone, changes).await?;
                return Ok(Applied::Updated);
            }
            Via::Rfc2136 { addr, key } => (*addr, key),
        };
        let mut u = Update::new(&self.zone);
        for c in changes {
            u.require_exactly(&c.owner, c.rtype, &c.expected);
            u.delete_rrset(&c.owner, c.rtype);
            for r in &c.records {
                u.add(&c.owner, c.ttl, r.clone());
            }
        }
        self.send(addr, key, u, record, check).await
    }

    /// Signs and sends `update`, verifies the signed answer, maps its RCODE. A failed
    /// prerequisite becomes [`DnsError::ZoneChanged`] with the set found by a fresh read.
    async fn send(
        &self,
        addr: SocketAddr,
        key: &TsigKey,
        update: Update,
        record: &str,
        check: Option<(&Name, RecordType, &str)>,
    ) -> Result<Applied, DnsError> {
        let mut message = update.message();
        let id = message.metadata.id;
        let request_mac = key
            .sign(&mut message, unix_now())
            .map_err(|detail| self.failed(record, format!("cannot sign the update: {detail}")))?;
        let bytes = message
            .to_vec()
            .map_err(|e| self.failed(record, format!("cannot encode the update: {e}")))?;
        info!(server = %self.label, %record, "sending DNS UPDATE");
        let raw = wire::tcp(addr, &bytes, self.t.update).await.map_err(|e| {
            DnsError::ServerUnreachable {
                server: self.label.clone(),
                record: record.to_owned(),
                doing: "updating",
                detail: e.to_string(),
            }
        })?;
        let answer = Message::from_vec(&raw)
            .map_err(|e| self.failed(record, format!("malformed answer: {e}")))?;
        let m = &answer.metadata;
        if m.id != id || m.message_type != MessageType::Response || m.op_code != OpCode::Update {
            return Err(self.failed(record, "the answer does not match the update".into()));
        }
        let rcode = m.response_code;
        let verified = match answer.signature() {
            None => Err(Verification::Unverified("the answer is not signed".into())),
            Some(_) => key.verify(&raw, &request_mac, unix_now()),
        };
        match &verified {
            Err(Verification::Rejected(code)) => {
                return Err(DnsError::TsigRejected {
                    server: self.label.clone(),
                    record: record.to_owned(),
                    key: key.name(),
                    algorithm: tsig::algorithm_name(key.algorithm()).to_owned(),
                    code: code.clone(),
                });
            }
            // Success must be proven by our key; an unsigned refusal still means nothing
            // was written (at worst it is forged and we try again).
            Err(Verification::Unverified(detail)) if rcode == ResponseCode::NoError => {
                return Err(DnsError::ResponseUnverified {
                    server: self.label.clone(),
                    record: record.to_owned(),
                    detail: detail.clone(),
                });
            }
            _ => {}
        }
        match rcode {
            ResponseCode::NoError => Ok(Applied::Updated),
            ResponseCode::NXRRSet
            | ResponseCode::YXRRSet
            | ResponseCode::NXDomain
            | ResponseCode::YXDomain => {
                let (found, expected) = match check {
                    Some((name, rtype, expected)) => (
                        match self.read(name, rtype).await {
                            Ok(set) => describe(&set),
                            Err(e) => format!("(cannot read it again: {e})"),
                        },
                        expected.to_owned(),
                    ),
                    None => (
                        "something else".into(),
                        "the set it was planned against".into(),
                    ),
                };
                Err(DnsError::ZoneChanged {
                    server: self.label.clone(),
                    record: record.to_owned(),
                    expected,
                    found: format!("{found} (the server answered {})", mnemonic(rcode)),
                })
            }
            ResponseCode::NotZone => Err(DnsError::NotInZone {
                server: self.label.clone(),
                zone: show(&self.zone),
                record: record.to_owned(),
            }),
            // RFC 8945: NOTAUTH also means "not authorized"; carrying a TSIG record that
            // our key does not verify, that is the server refusing the key. Without any
            // TSIG record it is RFC 2136's NOTAUTH, "not authoritative for the zone" (Knot's
            // answer for a zone it does not serve).
            ResponseCode::NotAuth if verified.is_err() && answer.signature().is_some() => {
                Err(DnsError::TsigRejected {
                    server: self.label.clone(),
                    record: record.to_owned(),
                    key: key.name(),
                    algorithm: tsig::algorithm_name(key.algorithm()).to_owned(),
                    code: "NOTAUTH (the server does not accept this key)".into(),
                })
            }
            ResponseCode::NotAuth => Err(DnsError::NotAuthoritative {
                server: self.label.clone(),
                zone: show(&self.zone),
                record: record.to_owned(),
                detail: "answered NOTAUTH (does it serve this zone, and accept updates for it?)"
                    .into(),
            }),
            ResponseCode::Refused => Err(DnsError::UpdateRefused {
                server: self.label.clone(),
                record: record.to_owned(),
                detail: format!(
                    "REFUSED (is it the zone's primary, and may key {} update zone {}?)",
                    key.name(),
                    show(&self.zone)
                ),
            }),
            other => Err(self.failed(record, format!("answered {other}"))),
        }
    }

    fn failed(&self, record: &str, detail: String) -> DnsError {
        DnsError::UpdateFailed {
            server: self.label.clone(),
            record: record.to_owned(),
            detail,
        }
    }
}

/// Gives the MX set of `name` the TTL `ttl`, targets unchanged. `lowering` is
/// `Some(from_ttl)` for `LowerTtl`: it never raises a TTL, and checks the TTL it replaces
/// against the planned one when known; `None` for `RestoreTtl` (any TTL becomes `ttl`).
async fn set_mx_ttl(
    ctx: &Ctx,
    name: &Name,
    ttl: u32,
    lowering: Option<Option<u32>>,
) -> Result<Applied, DnsError> {
    let record = format!("MX {}", show(name));
    let current = ctx.read(name, RecordType::MX).await?;
    let done = match lowering {
        Some(_) => current.ttl <= ttl,
        None => current.ttl == ttl,
    };
    if current.is_empty() || done {
        return Ok(Applied::AlreadyDone);
    }
    if let Some(from) = lowering.flatten().filter(|from| *from != current.ttl) {
        return Err(DnsError::ZoneChanged {
            server: ctx.label.clone(),
            record,
            expected: format!("TTL {from}"),
            found: format!("TTL {}", current.ttl),
        });
    }
    let change = Change {
        owner: name.clone(),
        rtype: RecordType::MX,
        expected: current.rdata.clone(),
        ttl,
        records: current.rdata.clone(),
    };
    let expected = describe(&current);
    ctx.commit(&[change], &record, Some((name, RecordType::MX, &expected)))
        .await
}

async fn switch_mx(
    ctx: &Ctx,
    name: &Name,
    from: Option<&[MxRecord]>,
    to: &[MxRecord],
    ttl: u32,
) -> Result<Applied, DnsError> {
    let record = format!("MX {}", show(name));
    let invalid = |detail: String| DnsError::InvalidRecord {
        record: record.clone(),
        detail,
    };
    if to.is_empty() {
        return Err(invalid("the new MX set is empty".into()));
    }
    let to = mx_rdata(to).map_err(invalid)?;
    let from = match from {
        Some(from) => mx_rdata(from).map_err(invalid)?,
        // Planned without an observation: compare against what is there now.
        None => ctx.read(name, RecordType::MX).await?.rdata,
    };
    let expected = describe(&RrSet {
        ttl: 0,
        rdata: from.clone(),
    });
    let change = Change {
        owner: name.clone(),
        rtype: RecordType::MX,
        expected: from,
        ttl,
        records: to,
    };
    ctx.commit(&[change], &record, Some((name, RecordType::MX, &expected)))
        .await
}

async fn edit_spf(
    ctx: &Ctx,
    name: &Name,
    edit: impl FnOnce(Option<&str>) -> Option<String>,
) -> Result<Applied, DnsError> {
    let record = format!("TXT {} (SPF)", show(name));
    let current = ctx.read(name, RecordType::TXT).await?;
    let spf: Vec<(&RData, String)> = current
        .rdata
        .iter()
        .filter_map(|r| txt_text(r).map(|t| (r, t)))
        .filter(|(_, t)| spf::is_spf(t))
        .collect();
    if spf.len() > 1 {
        return Err(DnsError::SpfAmbiguous {
            server: ctx.label.clone(),
            record,
            count: spf.len(),
        });
    }
    let old = spf.first();
    let Some(new) = edit(old.map(|(_, t)| t.as_str())) else {
        return Ok(Applied::AlreadyDone);
    };
    let ttl = if current.is_empty() {
        DEFAULT_TTL
    } else {
        current.ttl
    };
    // The TXT set as it is, but for the SPF record: the others stay as they are.
    let mut records: Vec<RData> = current
        .rdata
        .iter()
        .filter(|r| old.is_none_or(|(spf, _)| *r != *spf))
        .cloned()
        .collect();
    records.push(txt_rdata(&new));
    let change = Change {
        owner: name.clone(),
        rtype: RecordType::TXT,
        expected: current.rdata.clone(),
        ttl,
        records,
    };
    let expected = describe(&current);
    ctx.commit(&[change], &record, Some((name, RecordType::TXT, &expected)))
        .await
}

async fn publish_srv(
    ctx: &Ctx,
    name: &Name,
    services: [(&str, &Option<String>, u16); 2],
) -> Result<Applied, DnsError> {
    let mut changes = Vec::new();
    let mut records = Vec::new();
    for (service, target, default_port) in services {
        let Some(target) = target else { continue };
        let owner = name
            .prepend_label("_tcp")
            .and_then(|n| n.prepend_label(service))
            .map_err(|e| DnsError::InvalidRecord {
                record: format!("SRV {service}._tcp.{}", show(name)),
                detail: e.to_string(),
            })?;
        let record = format!("SRV {}", show(&owner));
        let want = srv_rdata(target, default_port).map_err(|detail| DnsError::InvalidRecord {
            record: record.clone(),
            detail,
        })?;
        let current = ctx.read(&owner, RecordType::SRV).await?;
        if current.rdata == [want.clone()] {
            continue;
        }
        let ttl = if current.is_empty() {
            DEFAULT_TTL
        } else {
            current.ttl
        };
        changes.push(Change {
            owner: owner.clone(),
            rtype: RecordType::SRV,
            expected: current.rdata.clone(),
            ttl,
            records: vec![want],
        });
        records.push(record);
    }
    if records.is_empty() {
        return Ok(Applied::AlreadyDone);
    }
    ctx.commit(&changes, &records.join(" and "), None).await
}

/// One UPDATE message under construction (RFC 2136 section 2: zone, prerequisites,
/// updates).
#[derive(Clone, Debug)]
pub(crate) struct Update {
    zone: Name,
    prerequisites: Vec<Record>,
    updates: Vec<Record>,
}

impl Update {
    pub fn new(zone: &Name) -> Self {
        Update {
            zone: zone.clone(),
            prerequisites: Vec::new(),
            updates: Vec::new(),
        }
    }

    /// Prerequisite: the `rtype` set of `name` is exactly `rdata` ("RRset exists (value
    /// dependent)"), or does not exist when `rdata` is empty.
    pub fn require_exactly(&mut self, name: &Name, rtype: RecordType, rdata: &[RData]) {
        if rdata.is_empty() {
            let mut r = Record::update0(name.clone(), 0, rtype);
            r.dns_class = DNSClass::NONE;
            self.prerequisites.push(r);
        } else {
            for d in rdata {
                self.prerequisites
                    .push(Record::from_rdata(name.clone(), 0, d.clone()));
            }
        }
    }

    /// Update: delete the whole `rtype` set of `name`.
    pub fn delete_rrset(&mut self, name: &Name, rtype: RecordType) {
        let mut r = Record::update0(name.clone(), 0, rtype);
        r.dns_class = DNSClass::ANY;
        self.updates.push(r);
    }

    /// Update: add one record.
    pub fn add(&mut self, name: &Name, ttl: u32, rdata: RData) {
        self.updates
            .push(Record::from_rdata(name.clone(), ttl, rdata));
    }

    pub fn message(&self) -> Message {
        let mut m = Message::query();
        m.metadata.op_code = OpCode::Update;
        m.metadata.recursion_desired = false;
        let mut zone = Query::query(self.zone.clone(), RecordType::SOA);
        zone.set_query_class(DNSClass::IN);
        m.add_query(zone);
        m.add_answers(self.prerequisites.iter().cloned());
        m.add_authorities(self.updates.iter().cloned());
        m
    }
}

fn mx_rdata(set: &[MxRecord]) -> Result<Vec<RData>, String> {
    set.iter()
        .map(|r| fqdn(&r.exchange).map(|exchange| RData::MX(MX::new(r.preference, exchange))))
        .collect()
}

/// `host:port` (or `host`, with `default_port`) as RFC 6186 SRV data: priority 0,
/// weight 1.
fn srv_rdata(target: &str, default_port: u16) -> Result<RData, String> {
    let (host, port) = match target.rsplit_once(':') {
        Some((host, port)) => (
            host,
            port.parse()
                .map_err(|_| format!("{target:?}: {port:?} is not a port"))?,
        ),
        None => (target, default_port),
    };
    Ok(RData::SRV(SRV::new(0, 1, port, fqdn(host)?)))
}

#[cfg(test)]
pub(super) fn txt_rdata_for_tests(text: &str) -> RData {
    txt_rdata(text)
}

/// TXT data for `text`, split into character-strings of at most 255 bytes (on character
/// boundaries; receivers join them back, RFC 7208 3.3).
fn txt_rdata(text: &str) -> RData {
    let mut parts: Vec<String> = Vec::new();
    let mut current = String::new();
    for c in text.chars() {
        if current.len() + c.len_utf8() > 255 {
            parts.push(std::mem::take(&mut current));
        }
        current.push(c);
    }
    parts.push(current);
    RData::TXT(TXT::new(parts))
}

/// A record set for messages: `10 mail.example.net., 20 b.example.net. (TTL 300)`.
fn describe(set: &RrSet) -> String {
    if set.is_empty() {
        return "no records".into();
    }
    let mx = mx_records(set);
    let items: Vec<String> = if mx.is_empty() {
        set.rdata
            .iter()
            .map(|r| match txt_text(r) {
                Some(t) => format!("{t:?}"),
                None => r.to_string(),
            })
            .collect()
    } else {
        mx.iter()
            .map(|m| format!("{} {}", m.preference, m.exchange))
            .collect()
    };
    if set.ttl == 0 {
        items.join(", ")
    } else {
        format!("{} (TTL {})", items.join(", "), set.ttl)
    }
}

/// RFC 2136's names of the prerequisite failures.
fn mnemonic(rcode: ResponseCode) -> &'static str {
    match rcode {
        ResponseCode::NXRRSet => "NXRRSET",
        ResponseCode::YXRRSet => "YXRRSET",
        ResponseCode::NXDomain => "NXDOMAIN",
        ResponseCode::YXDomain => "YXDOMAIN",
        _ => "an error",
    }
}

fn show(name: &Name) -> String {
    crate::address::Domain::of(&name.to_ascii()).into()
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> Name {
        fqdn(s).unwrap()
    }

    #[test]
    fn compare_and_swap_message_has_exact_prerequisites() {
        let zone = name("example.com");
        let apex = name("example.com");
        let old = mx_rdata(&[MxRecord {
            preference: 10,
            exchange: "mail.old.example.net.".into(),
        }])
        .unwrap();
        let mut u = Update::new(&zone);
        u.require_exactly(&apex, RecordType::MX, &old);
        u.delete_rrset(&apex, RecordType::MX);
        u.add(&apex, 300, old[0].clone());
        let m = u.message();
        assert_eq!(m.metadata.op_code, OpCode::Update);
        assert_eq!(m.queries[0].query_type(), RecordType::SOA);
        // Prerequisite: class IN, TTL 0, the exact data.
        assert_eq!(m.answers.len(), 1);
        assert_eq!(m.answers[0].dns_class, DNSClass::IN);
        assert_eq!(m.answers[0].ttl, 0);
        assert_eq!(m.answers[0].data, old[0]);
        // Updates: delete the set (class ANY), add with the new TTL.
        assert_eq!(m.authorities[0].dns_class, DNSClass::ANY);
        assert_eq!(m.authorities[0].record_type(), RecordType::MX);
        assert_eq!(m.authorities[1].ttl, 300);
        // It encodes and decodes as RFC 2136 counts (ZO, PR, UP).
        let back = Message::from_vec(&m.to_vec().unwrap()).unwrap();
        assert_eq!((back.answers.len(), back.authorities.len()), (1, 2));
    }

    #[test]
    fn an_absent_set_is_required_absent() {
        let mut u = Update::new(&name("example.com"));
        u.require_exactly(&name("example.com"), RecordType::TXT, &[]);
        let m = u.message();
        assert_eq!(m.answers[0].dns_class, DNSClass::NONE);
        assert_eq!(m.answers[0].record_type(), RecordType::TXT);
    }

    #[test]
    fn long_txt_is_split_into_255_byte_strings() {
        let text = format!("v=spf1 {} -all", "ip4:192.0.2.1 ".repeat(30));
        let RData::TXT(txt) = txt_rdata(&text) else {
            panic!()
        };
        assert!(txt.txt_data.iter().all(|s| s.len() <= 255));
        assert_eq!(txt_text(&RData::TXT(txt)).unwrap(), text);
    }

    #[test]
    fn srv_targets_take_default_ports() {
        let RData::SRV(s) = srv_rdata("imap.new.example.net", 993).unwrap() else {
            panic!()
        };
        assert_eq!((s.priority, s.weight, s.port), (0, 1, 993));
        assert_eq!(s.target.to_ascii(), "imap.new.example.net.");
        let RData::SRV(s) = srv_rdata("smtp.new.example.net:2587", 587).unwrap() else {
            panic!()
        };
        assert_eq!(s.port, 2587);
        assert!(srv_rdata("x:y", 1).is_err());
    }
}
