//! Observing the domains' DNS: what the update server (the primary) holds, and what every
//! authoritative nameserver answers, each asked directly.
//!
//! The nameservers are `checkNameservers` when given, otherwise the zone's NS records as
//! the primary serves them (their addresses from the glue in its answer, or the system
//! resolver; port 53). Each one's answer is recorded as it is, TTLs included, so that a
//! nameserver still serving the old MX set or the old TTL shows up as lagging
//! ([`NameState::lagging`]).
//!
//! How the planner reads [`Records`]:
//! - `mx` is the MX set, sorted by preference then host, hosts in lower case with the
//!   trailing dot.
//! - `ttl` is the MX set's TTL; **0 when there is no MX record** (NXDOMAIN or NODATA):
//!   there is nothing to lower, so the planner does not plan a `LowerTtl` on an empty set.
//! - `spf` is the `v=spf1` TXT record (its strings joined), observed only when
//!   `spec.dns.spf` is set; with several (an SPF error), the first in sorted order.
//! - `srv_imaps` / `srv_submission` are `host:port` (host without trailing dot) of the
//!   preferred SRV record (lowest priority, then highest weight), observed only when
//!   `spec.dns.srv` names them; `None` also for the "not offered" target `.`.

use std::net::SocketAddr;

use futures::future::join_all;
use hickory_proto::rr::{Name, RData, RecordType};

use super::query::{self, QueryError, RrSet, Timeouts};
use super::{spf, wire};
use crate::plan::{Answer, DnsState, NameState, NameserverAnswer, Records};
use crate::spec::{Dns, MxRecord};

/// Which records to ask for besides MX.
#[derive(Clone, Copy, Debug)]
struct Wanted {
    spf: bool,
    imaps: bool,
    submission: bool,
}

/// Observes `domains` (the spec's) in `dns.zone`: the primary and every authoritative
/// nameserver. Never fails as a whole: what cannot be read is an [`Answer::Error`] naming
/// the server.
pub async fn observe_with(dns: &Dns, domains: &[String], t: Timeouts) -> DnsState {
    let wanted = Wanted {
        spf: dns.spf.is_some(),
        imaps: dns.srv.as_ref().is_some_and(|s| s.imaps.is_some()),
        submission: dns.srv.as_ref().is_some_and(|s| s.submission.is_some()),
    };
    // An API provider's zone is read where resolvers read it: at its first nameserver.
    let primary_label = match dns.provider.rfc2136() {
        Some(r) => r.server.clone(),
        None => dns.check_nameservers.first().cloned().unwrap_or_default(),
    };
    let primary = wire::resolve(&primary_label)
        .await
        .map(|addrs| addrs[0])
        .map_err(|e| format!("{primary_label}: {e}"));
    let nameservers = match &dns.check_nameservers {
        listed if !listed.is_empty() => configured(listed).await,
        _ => discovered(&primary, &dns.zone, t).await,
    };
    let names = join_all(domains.iter().map(|domain| {
        let (primary, nameservers, primary_label) = (&primary, &nameservers, &primary_label);
        async move {
            let primary_answer = answer(primary_label, primary, domain, wanted, t);
            let ns_answers = join_all(nameservers.iter().map(|(label, addr)| async move {
                NameserverAnswer {
                    server: label.clone(),
                    answer: answer(label, addr, domain, wanted, t).await,
                }
            }));
            let (primary, nameservers) = futures::join!(primary_answer, ns_answers);
            (
                crate::address::Domain::of(domain),
                NameState {
                    primary,
                    nameservers,
                },
            )
        }
    }))
    .await;
    DnsState {
        names: names.into_iter().collect(),
    }
}

/// `checkNameservers`, each resolved; a name with several addresses is asked at each.
async fn configured(listed: &[String]) -> Vec<(String, Result<SocketAddr, String>)> {
    let mut out = Vec::new();
    for server in listed {
        match wire::resolve(server).await {
            Ok(addrs) if addrs.len() == 1 => out.push((server.clone(), Ok(addrs[0]))),
            Ok(addrs) => out.extend(
                addrs
                    .into_iter()
                    .map(|a| (format!("{server} ({a})"), Ok(a))),
            ),
            Err(e) => out.push((server.clone(), Err(format!("{server}: {e}")))),
        }
    }
    out
}

/// The zone's NS records as the primary serves them, with their addresses. When they
/// cannot be read, one entry carries the error, so propagation is never taken as
/// confirmed by an empty list.
async fn discovered(
    primary: &Result<SocketAddr, String>,
    zone: &str,
    t: Timeouts,
) -> Vec<(String, Result<SocketAddr, String>)> {
    let label = format!("NS of {}", crate::address::Domain::of(zone));
    let primary = match primary {
        Ok(p) => *p,
        Err(e) => return vec![(label, Err(e.clone()))],
    };
    let zone_name = match fqdn(zone) {
        Ok(z) => z,
        Err(e) => return vec![(label, Err(e))],
    };
    let (set, message) = match query::rrset(primary, &zone_name, RecordType::NS, t).await {
        Ok(r) => r,
        Err(e) => return vec![(label, Err(format!("{primary}: NS {zone_name}: {e}")))],
    };
    let mut hosts: Vec<Name> = set
        .rdata
        .iter()
        .filter_map(|r| match r {
            RData::NS(ns) => Some(ns.0.to_lowercase()),
            _ => None,
        })
        .collect();
    hosts.sort();
    hosts.dedup();
    if hosts.is_empty() {
        return vec![(
            label,
            Err(format!("{primary}: {zone_name} has no NS records")),
        )];
    }
    let mut out = Vec::new();
    for host in hosts {
        let glue: Vec<SocketAddr> = message
            .additionals
            .iter()
            .filter(|r| r.name == host)
            .filter_map(|r| match &r.data {
                RData::A(a) => Some(SocketAddr::new(a.0.into(), 53)),
                RData::AAAA(a) => Some(SocketAddr::new(a.0.into(), 53)),
                _ => None,
            })
            .collect();
        let host_label: String = crate::address::Domain::of(&host.to_ascii()).into();
        let addrs = if glue.is_empty() {
            wire::resolve(&host_label).await
        } else {
            Ok(glue)
        };
        match addrs {
            Ok(addrs) => out.extend(
                addrs
                    .into_iter()
                    .map(|a| (format!("{host_label} ({a})"), Ok(a))),
            ),
            Err(e) => out.push((host_label, Err(e))),
        }
    }
    out
}

/// One server's answer for one domain.
async fn answer(
    label: &str,
    server: &Result<SocketAddr, String>,
    domain: &str,
    wanted: Wanted,
    t: Timeouts,
) -> Answer {
    let server = match server {
        Ok(s) => *s,
        Err(e) => {
            return Answer::Error { reason: e.clone() };
        }
    };
    match records(server, domain, wanted, t).await {
        Ok(r) => Answer::Records(r),
        Err((what, e)) => Answer::Error {
            reason: format!("{label}: {what}: {e}"),
        },
    }
}

async fn records(
    server: SocketAddr,
    domain: &str,
    wanted: Wanted,
    t: Timeouts,
) -> Result<Records, (String, QueryError)> {
    let name = fqdn(domain).map_err(|e| (domain.to_owned(), QueryError::Bad(e)))?;
    let get = |name: Name, rtype: RecordType, on: bool| async move {
        if !on {
            return Ok(None);
        }
        query::rrset(server, &name, rtype, t)
            .await
            .map(|(set, _)| Some(set))
            .map_err(|e| (format!("{rtype} {name}"), e))
    };
    let srv_name = |label: &str| {
        name.prepend_label("_tcp")
            .and_then(|n| n.prepend_label(label))
            .map_err(|e| {
                (
                    format!("{label}._tcp.{name}"),
                    QueryError::Bad(e.to_string()),
                )
            })
    };
    let (imaps_name, submission_name) = (srv_name("_imaps")?, srv_name("_submission")?);
    let (mx, txt, imaps, submission) = futures::join!(
        get(name.clone(), RecordType::MX, true),
        get(name.clone(), RecordType::TXT, wanted.spf),
        get(imaps_name, RecordType::SRV, wanted.imaps),
        get(submission_name, RecordType::SRV, wanted.submission),
    );
    let mx = mx?.expect("MX is always asked for");
    Ok(Records {
        mx: mx_records(&mx),
        ttl: mx.ttl,
        spf: txt?.and_then(|set| spf_record(&set)),
        srv_imaps: imaps?.and_then(|set| srv_target(&set)),
        srv_submission: submission?.and_then(|set| srv_target(&set)),
    })
}

pub(crate) fn fqdn(name: &str) -> Result<Name, String> {
    let mut n =
        Name::from_utf8(name.trim()).map_err(|e| format!("{name:?} is not a domain name: {e}"))?;
    n.set_fqdn(true);
    Ok(n)
}

pub(crate) fn mx_records(set: &RrSet) -> Vec<MxRecord> {
    let mut mx: Vec<MxRecord> = set
        .rdata
        .iter()
        .filter_map(|r| match r {
            RData::MX(mx) => Some(MxRecord {
                preference: mx.preference,
                exchange: mx.exchange.to_lowercase().to_ascii(),
            }),
            _ => None,
        })
        .collect();
    mx.sort_by(|a, b| (a.preference, &a.exchange).cmp(&(b.preference, &b.exchange)));
    mx.dedup();
    mx
}

/// The text of a TXT record: its character-strings joined (RFC 7208 3.3).
pub(crate) fn txt_text(r: &RData) -> Option<String> {
    match r {
        RData::TXT(txt) => Some(
            txt.txt_data
                .iter()
                .map(|s| String::from_utf8_lossy(s))
                .collect(),
        ),
        _ => None,
    }
}

fn spf_record(set: &RrSet) -> Option<String> {
    let mut spf: Vec<String> = set
        .rdata
        .iter()
        .filter_map(txt_text)
        .filter(|t| spf::is_spf(t))
        .collect();
    spf.sort();
    spf.into_iter().next()
}

fn srv_target(set: &RrSet) -> Option<String> {
    set.rdata
        .iter()
        .filter_map(|r| match r {
            RData::SRV(s) if !s.target.is_root() => Some(s),
            _ => None,
        })
        .min_by(|a, b| {
            (a.priority, std::cmp::Reverse(a.weight), &a.target, a.port).cmp(&(
                b.priority,
                std::cmp::Reverse(b.weight),
                &b.target,
                b.port,
            ))
        })
        .map(|s| {
            format!(
                "{}:{}",
                crate::address::Domain::of(&s.target.to_ascii()),
                s.port
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::rr::rdata::{MX, SRV, TXT};

    fn name(s: &str) -> Name {
        Name::from_ascii(s).unwrap()
    }

    #[test]
    fn mx_sets_are_sorted_lower_case_with_trailing_dot() {
        let set = RrSet {
            ttl: 300,
            rdata: vec![
                RData::MX(MX::new(20, name("B.example.net."))),
                RData::MX(MX::new(10, name("mail.Example.net."))),
            ],
        };
        assert_eq!(
            mx_records(&set),
            vec![
                MxRecord {
                    preference: 10,
                    exchange: "mail.example.net.".into()
                },
                MxRecord {
                    preference: 20,
                    exchange: "b.example.net.".into()
                },
            ]
        );
    }

    #[test]
    fn spf_is_the_joined_v_spf1_text() {
        let set = RrSet {
            ttl: 3600,
            rdata: vec![
                RData::TXT(TXT::new(vec!["google-site-verification=x".into()])),
                RData::TXT(TXT::new(vec![
                    "v=spf1 ip4:192.0.2.10".into(),
                    " -all".into(),
                ])),
            ],
        };
        assert_eq!(
            spf_record(&set).as_deref(),
            Some("v=spf1 ip4:192.0.2.10 -all")
        );
    }

    #[test]
    fn srv_target_prefers_low_priority_then_high_weight() {
        let set = RrSet {
            ttl: 3600,
            rdata: vec![
                RData::SRV(SRV::new(10, 5, 993, name("backup.example.net."))),
                RData::SRV(SRV::new(0, 1, 993, name("low.example.net."))),
                RData::SRV(SRV::new(0, 9, 993, name("Imap.Example.net."))),
            ],
        };
        assert_eq!(srv_target(&set).as_deref(), Some("imap.example.net:993"));
        let none = RrSet {
            ttl: 3600,
            rdata: vec![RData::SRV(SRV::new(0, 0, 0, Name::root()))],
        };
        assert_eq!(srv_target(&none), None);
    }
}
