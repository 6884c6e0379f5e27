//! Asking one server directly for one record set: a non-recursive query, answered
//! authoritatively, with the TTLs as the zone holds them (an authoritative server does not
//! count them down, so every nameserver of a zone in sync gives the same TTL).

use std::net::SocketAddr;
use std::time::Duration;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};

use super::wire::{self, NetError};

/// How long to wait for servers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// Per UDP try of a query.
    pub query: Duration,
    /// UDP tries per query.
    pub query_tries: u32,
    /// For a whole update exchange over TCP (connect, send, answer).
    pub update: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            query: Duration::from_secs(2),
            query_tries: 2,
            update: Duration::from_secs(10),
        }
    }
}

/// Why a query got no usable answer.
#[derive(Debug)]
pub(crate) enum QueryError {
    /// No answer at all.
    Net(NetError),
    /// An answer, but not an authoritative one (REFUSED, NOTAUTH, no AA bit...).
    NotAuthoritative(String),
    /// An answer we cannot use (malformed, SERVFAIL, wrong question).
    Bad(String),
}

impl std::fmt::Display for QueryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            QueryError::Net(e) => write!(f, "{e}"),
            QueryError::NotAuthoritative(why) => write!(f, "not authoritative: {why}"),
            QueryError::Bad(why) => f.write_str(why),
        }
    }
}

/// One record set as one server holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RrSet {
    /// The smallest TTL of its records (they are equal in a well-formed set); 0 when empty.
    pub ttl: u32,
    pub rdata: Vec<RData>,
}

impl RrSet {
    pub fn is_empty(&self) -> bool {
        self.rdata.is_empty()
    }
}

/// Asks `server` for the `rtype` records of `name`, expecting an authoritative answer.
/// Returns the record set (empty for NXDOMAIN or NODATA) and the whole answer.
pub(crate) async fn rrset(
    server: SocketAddr,
    name: &Name,
    rtype: RecordType,
    t: Timeouts,
) -> Result<(RrSet, Message), QueryError> {
    let mut query = Message::query();
    query.metadata.recursion_desired = false;
    query.add_query(Query::query(name.clone(), rtype));
    let mut edns = Edns::new();
    edns.set_max_payload(wire::UDP_PAYLOAD);
    query.set_edns(edns);
    let id = query.metadata.id;
    let bytes = query
        .to_vec()
        .map_err(|e| QueryError::Bad(format!("cannot encode the query: {e}")))?;
    let raw = wire::udp(server, &bytes, id, t.query, t.query_tries)
        .await
        .map_err(QueryError::Net)?;
    let mut answer = decode(&raw)?;
    if answer.metadata.truncation {
        let raw = wire::tcp(server, &bytes, t.query * t.query_tries.max(1))
            .await
            .map_err(QueryError::Net)?;
        answer = decode(&raw)?;
    }
    check(&answer, id, name, rtype)?;
    let mut set = RrSet {
        ttl: u32::MAX,
        rdata: Vec::new(),
    };
    for r in answer
        .answers
        .iter()
        .filter(|r| r.record_type() == rtype && r.name == *name)
    {
        set.ttl = set.ttl.min(r.ttl);
        set.rdata.push(r.data.clone());
    }
    if set.rdata.is_empty() {
        set.ttl = 0;
    }
    Ok((set, answer))
}

fn decode(raw: &[u8]) -> Result<Message, QueryError> {
    Message::from_vec(raw).map_err(|e| QueryError::Bad(format!("malformed answer: {e}")))
}

fn check(answer: &Message, id: u16, name: &Name, rtype: RecordType) -> Result<(), QueryError> {
    let m = &answer.metadata;
    if m.id != id || m.message_type != MessageType::Response || m.op_code != OpCode::Query {
        return Err(QueryError::Bad(
            "the answer does not match the query".into(),
        ));
    }
    match answer.queries.first() {
        Some(q) if q.name() == name && q.query_type() == rtype => {}
        _ => return Err(QueryError::Bad("the answer is for another question".into())),
    }
    match m.response_code {
        ResponseCode::NoError | ResponseCode::NXDomain => {}
        ResponseCode::Refused | ResponseCode::NotAuth => {
            return Err(QueryError::NotAuthoritative(format!(
                "answered {}",
                m.response_code
            )));
        }
        other => return Err(QueryError::Bad(format!("answered {other}"))),
    }
    if !m.authoritative {
        return Err(QueryError::NotAuthoritative(
            "the answer is not authoritative (AA bit not set)".into(),
        ));
    }
    Ok(())
}
