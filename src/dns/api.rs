//! Changing records through a DNS host's HTTP API (Cloudflare, Route 53, PowerDNS, ...),
//! with the `dns-update` crate.
//!
//! An API is the truth about the zone's contents but not about what resolvers are served:
//! record sets are read from the API, their TTL from the zone's first listed nameserver
//! (`checkNameservers`), which the observation asks anyway.
//!
//! Route 53 is the one API that can keep compare-and-swap: its change batches are written
//! by [`super::route53`]. The others offer nothing like RFC 2136's prerequisites, so
//! compare-and-swap is a read right before the write: a record set that is no longer the
//! one the step was computed from is [`DnsError::ZoneChanged`] and nothing is written. The
//! window between the read and the write is one round trip; a change landing inside it is
//! overwritten (said in the README and by `plan`). A write replaces the whole record set
//! (`set_rrset`), which every provider of the crate applies in one request where its API
//! allows.

use std::net::SocketAddr;

use dns_update::{DnsRecord, DnsRecordType, DnsUpdater, MXRecord, SRVRecord};
use hickory_proto::rr::rdata::{MX, SRV, TXT};
use hickory_proto::rr::{Name, RData, RecordType};

use super::change::{Change, convert, redact, show, still_expected};
use super::error::DnsError;
use super::observe::txt_text;
use super::query::{self, RrSet, Timeouts};
use super::route53::{Keys, Route53};
use super::wire;
use crate::secrets::Resolver;
use crate::spec::{Dns, DnsProvider, OvhEndpoint};

/// A provider's API, ready to use.
pub(super) struct Api {
    updater: DnsUpdater,
    /// Route 53 writes its own change batches, which it can make compare-and-swap.
    route53: Option<Route53>,
    pub label: String,
    /// Where TTLs are read.
    /// The first of `checkNameservers`, resolved; why not, when it cannot be.
    nameserver: Result<(String, SocketAddr), String>,
    /// The credentials, to be cut out of any error text an API sends back.
    secrets: Vec<String>,
    t: Timeouts,
}

impl Api {
    pub async fn new(dns: &Dns, resolver: &Resolver, t: Timeouts) -> Result<Api, DnsError> {
        let provider = &dns.provider;
        let label = provider.label();
        let mut secrets = Vec::new();
        let mut secret = |field: &str, s: &crate::spec::SecretRef| {
            let value = resolver
                .resolve(s)
                .map_err(|source| DnsError::SecretUnavailable {
                    key: format!("dns.provider.{}.{field}", provider.kind()),
                    source,
                })?
                .expose()
                .trim()
                .to_owned();
            secrets.push(value.clone());
            Ok::<_, DnsError>(value)
        };
        let timeout = Some(t.update);
        let mut batches = None;
        let updater = match provider {
            DnsProvider::Rfc2136(_) => unreachable!("RFC 2136 is sent by mailshift itself"),
            DnsProvider::Cloudflare(c) => {
                DnsUpdater::new_cloudflare(secret("apiToken", &c.api_token)?, timeout)
            }
            DnsProvider::Route53(r) => {
                let keys = Keys {
                    access_key_id: secret("accessKeyId", &r.access_key_id)?,
                    secret_access_key: secret("secretAccessKey", &r.secret_access_key)?,
                    session_token: match &r.session_token {
                        Some(s) => Some(secret("sessionToken", s)?),
                        None => None,
                    },
                };
                let config = dns_update::providers::route53::Route53Config {
                    access_key_id: keys.access_key_id.clone(),
                    secret_access_key: keys.secret_access_key.clone(),
                    session_token: keys.session_token.clone(),
                    region: r.region.clone(),
                    hosted_zone_id: r.hosted_zone_id.clone(),
                    private_zone_only: None,
                    endpoint: r.endpoint.clone(),
                };
                batches = Some((r, keys));
                DnsUpdater::new_route53(config)
            }
            DnsProvider::GoogleCloudDns(g) => DnsUpdater::new_google_cloud_dns(
                dns_update::providers::google_cloud_dns::GoogleCloudDnsConfig {
                    service_account_json: secret("serviceAccount", &g.service_account)?,
                    project_id: g.project.clone(),
                    managed_zone: g.managed_zone.clone(),
                    private_zone: false,
                    impersonate_service_account: None,
                    request_timeout: timeout,
                },
            ),
            DnsProvider::AzureDns(a) => {
                DnsUpdater::new_azuredns(dns_update::providers::azuredns::AzureDnsConfig {
                    tenant_id: a.tenant_id.clone(),
                    client_id: a.client_id.clone(),
                    client_secret: secret("clientSecret", &a.client_secret)?,
                    subscription_id: a.subscription_id.clone(),
                    resource_group: a.resource_group.clone(),
                    environment: dns_update::providers::azuredns::AzureEnvironment::Public,
                    request_timeout: timeout,
                })
            }
            DnsProvider::Digitalocean(k) => {
                DnsUpdater::new_digitalocean(secret("apiToken", &k.api_token)?, timeout)
            }
            DnsProvider::Hetzner(k) => {
                DnsUpdater::new_hetzner(secret("apiToken", &k.api_token)?, timeout)
            }
            DnsProvider::Ovh(o) => DnsUpdater::new_ovh(
                secret("applicationKey", &o.application_key)?,
                secret("applicationSecret", &o.application_secret)?,
                secret("consumerKey", &o.consumer_key)?,
                ovh_endpoint(o.endpoint),
                timeout,
            ),
            DnsProvider::Powerdns(p) => DnsUpdater::new_pdns(
                secret("apiKey", &p.api_key)?,
                Some(p.url.trim_end_matches('/')),
                p.server_id.as_deref(),
                timeout,
            ),
            DnsProvider::Cpanel(c) => DnsUpdater::new_cpanel(
                c.url.trim_end_matches('/'),
                &c.username,
                secret("apiToken", &c.api_token)?,
                timeout,
            ),
            DnsProvider::Plesk(p) => DnsUpdater::new_plesk(
                p.url.trim_end_matches('/'),
                secret("apiKey", &p.api_key)?,
                timeout,
            ),
            DnsProvider::Desec(k) => {
                DnsUpdater::new_desec(secret("apiToken", &k.api_token)?, timeout)
            }
            DnsProvider::Gandi(k) => {
                DnsUpdater::new_gandiv5(secret("apiToken", &k.api_token)?, timeout)
            }
            DnsProvider::Godaddy(k) => DnsUpdater::new_godaddy(
                secret("apiKey", &k.api_key)?,
                secret("apiSecret", &k.api_secret)?,
                timeout,
            ),
            DnsProvider::Linode(k) => {
                DnsUpdater::new_linode(secret("apiToken", &k.api_token)?, timeout)
            }
            DnsProvider::Vultr(k) => {
                DnsUpdater::new_vultr(secret("apiToken", &k.api_token)?, timeout)
            }
            DnsProvider::Porkbun(k) => DnsUpdater::new_porkbun(
                secret("apiKey", &k.api_key)?,
                secret("apiSecret", &k.api_secret)?,
                timeout,
            ),
            DnsProvider::Bunny(k) => {
                DnsUpdater::new_bunny(secret("apiToken", &k.api_token)?, timeout)
            }
            DnsProvider::Scaleway(k) => {
                DnsUpdater::new_scaleway(secret("apiToken", &k.api_token)?, timeout)
            }
            DnsProvider::Gcore(k) => {
                DnsUpdater::new_gcore(secret("apiToken", &k.api_token)?, timeout)
            }
            DnsProvider::Ionos(k) => {
                DnsUpdater::new_ionos(secret("apiToken", &k.api_token)?, timeout)
            }
            DnsProvider::Ns1(k) => DnsUpdater::new_ns1(secret("apiToken", &k.api_token)?, timeout),
            DnsProvider::Netlify(k) => {
                DnsUpdater::new_netlify(secret("apiToken", &k.api_token)?, timeout)
            }
            DnsProvider::Infomaniak(k) => {
                DnsUpdater::new_infomaniak(secret("apiToken", &k.api_token)?, timeout)
            }
            DnsProvider::Safedns(k) => {
                DnsUpdater::new_safedns(secret("apiToken", &k.api_token)?, timeout)
            }
            DnsProvider::Hostingde(k) => {
                DnsUpdater::new_hostingde(secret("apiToken", &k.api_token)?, timeout)
            }
            DnsProvider::Dynu(k) => {
                DnsUpdater::new_dynu(secret("apiToken", &k.api_token)?, timeout)
            }
            DnsProvider::Namesilo(k) => {
                DnsUpdater::new_namesilo(secret("apiToken", &k.api_token)?, timeout)
            }
            DnsProvider::Constellix(k) => DnsUpdater::new_constellix(
                secret("apiKey", &k.api_key)?,
                secret("apiSecret", &k.api_secret)?,
                timeout,
            ),
            DnsProvider::Dnsmadeeasy(k) => DnsUpdater::new_dnsmadeeasy(
                secret("apiKey", &k.api_key)?,
                secret("apiSecret", &k.api_secret)?,
                timeout,
            ),
            DnsProvider::Exoscale(k) => DnsUpdater::new_exoscale(
                secret("apiKey", &k.api_key)?,
                secret("apiSecret", &k.api_secret)?,
                timeout,
            ),
            DnsProvider::Spaceship(k) => DnsUpdater::new_spaceship(
                secret("apiKey", &k.api_key)?,
                secret("apiSecret", &k.api_secret)?,
                timeout,
            ),
            DnsProvider::Domeneshop(k) => DnsUpdater::new_domeneshop(
                secret("apiKey", &k.api_key)?,
                secret("apiSecret", &k.api_secret)?,
                timeout,
            ),
            DnsProvider::Websupport(k) => DnsUpdater::new_websupport(
                secret("apiKey", &k.api_key)?,
                secret("apiSecret", &k.api_secret)?,
                timeout,
            ),
            DnsProvider::Luadns(u) => {
                DnsUpdater::new_luadns(&u.username, secret("apiToken", &u.api_token)?, timeout)
            }
            DnsProvider::Namedotcom(u) => {
                DnsUpdater::new_namedotcom(&u.username, secret("apiToken", &u.api_token)?, timeout)
            }
            DnsProvider::Zoneeu(u) => {
                DnsUpdater::new_zoneeu(&u.username, secret("apiToken", &u.api_token)?, timeout)
            }
            DnsProvider::Mythicbeasts(u) => {
                DnsUpdater::new_mythicbeasts(&u.username, secret("password", &u.password)?, timeout)
            }
            DnsProvider::Inwx(u) => DnsUpdater::new_inwx(
                u.username.clone(),
                secret("password", &u.password)?,
                false,
                timeout,
            ),
            DnsProvider::Namecheap(n) => DnsUpdater::new_namecheap(
                &n.api_user,
                secret("apiKey", &n.api_key)?,
                &n.client_ip,
                n.username.as_deref(),
                timeout,
            ),
            DnsProvider::Dnsimple(d) => {
                DnsUpdater::new_dnsimple(secret("apiToken", &d.api_token)?, &d.account_id, timeout)
            }
            DnsProvider::Vercel(v) => DnsUpdater::new_vercel(
                secret("apiToken", &v.api_token)?,
                v.team_id.as_deref(),
                timeout,
            ),
            DnsProvider::Netcup(n) => DnsUpdater::new_netcup(
                &n.customer_number,
                secret("apiKey", &n.api_key)?,
                secret("apiPassword", &n.api_password)?,
                timeout,
            ),
            DnsProvider::Simplycom(k) => {
                DnsUpdater::new_simplycom(&k.account_name, secret("apiKey", &k.api_key)?, timeout)
            }
        }
        // A credential that does not parse (a service account's JSON) may be echoed back.
        .map_err(|e| DnsError::UpdateFailed {
            server: label.clone(),
            record: format!("zone {}", dns.zone),
            detail: format!(
                "cannot set up the provider: {}",
                redact(&e.to_string(), &secrets)
            ),
        })?;
        let route53 = match batches {
            Some((spec, keys)) => Some(Route53::new(spec, keys, label.clone(), secrets.clone())?),
            None => None,
        };
        let nameserver = match dns.check_nameservers.first() {
            Some(ns) => wire::resolve(ns)
                .await
                .map(|a| (ns.clone(), a[0]))
                .map_err(|e| format!("{ns}: {e}")),
            None => Err(
                "no nameserver to ask: list the zone's nameservers in dns.checkNameservers".into(),
            ),
        };
        Ok(Api {
            updater,
            route53,
            label,
            nameserver,
            secrets,
            t,
        })
    }

    /// The record set as the API holds it, with the TTL the first nameserver serves it
    /// with (0 for an empty set).
    pub async fn read(
        &self,
        zone: &Name,
        name: &Name,
        rtype: RecordType,
    ) -> Result<RrSet, DnsError> {
        let record = format!("{rtype} {}", show(name));
        let listed = self
            .updater
            .list_rrset(fqdn_text(name), api_type(rtype), fqdn_text(zone))
            .await
            .map_err(|e| self.error(&record, "reading", e))?;
        let rdata = listed
            .into_iter()
            .map(|r| to_rdata(&r))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|detail| DnsError::UpdateFailed {
                server: self.label.clone(),
                record: record.clone(),
                detail: format!("the API answered a record mailshift cannot read: {detail}"),
            })?;
        if rdata.is_empty() {
            return Ok(RrSet { ttl: 0, rdata });
        }
        let (label, addr) = match &self.nameserver {
            Ok(ns) => ns,
            Err(why) => {
                return Err(DnsError::ServerUnreachable {
                    server: self.label.clone(),
                    record,
                    doing: "reading the TTL of",
                    detail: why.clone(),
                });
            }
        };
        let ttl = match query::rrset(*addr, name, rtype, self.t).await {
            Ok((set, _)) if !set.is_empty() => set.ttl,
            Ok(_) => 0,
            Err(e) => {
                return Err(DnsError::ServerUnreachable {
                    server: label.clone(),
                    record,
                    doing: "reading the TTL of",
                    detail: e.to_string(),
                });
            }
        };
        Ok(RrSet { ttl, rdata })
    }

    /// Replaces each record set of `changes` that still holds what it expects; stops at
    /// the first that does not (those before it are written: an API has no transaction
    /// across record sets).
    pub async fn commit(&self, zone: &Name, changes: &[Change]) -> Result<(), DnsError> {
        if let Some(r) = &self.route53 {
            return r.commit(zone, changes).await;
        }
        for c in changes {
            let record = format!("{} {}", c.rtype, show(&c.owner));
            let now = self.read_data(zone, c, &record).await?;
            still_expected(&self.label, &record, &now, c)?;
            let records = convert(&c.records, to_api, &record)?;
            tracing::info!(server = %self.label, %record, "changing the record set through the API");
            self.updater
                .set_rrset(
                    fqdn_text(&c.owner),
                    api_type(c.rtype),
                    c.ttl,
                    records,
                    fqdn_text(zone),
                )
                .await
                .map_err(|e| self.error(&record, "updating", e))?;
        }
        Ok(())
    }

    async fn read_data(
        &self,
        zone: &Name,
        c: &Change,
        record: &str,
    ) -> Result<Vec<RData>, DnsError> {
        let listed = self
            .updater
            .list_rrset(fqdn_text(&c.owner), api_type(c.rtype), fqdn_text(zone))
            .await
            .map_err(|e| self.error(record, "reading", e))?;
        listed
            .iter()
            .map(to_rdata)
            .collect::<Result<_, _>>()
            .map_err(|detail| DnsError::UpdateFailed {
                server: self.label.clone(),
                record: record.to_owned(),
                detail,
            })
    }

    /// The crate's error as ours: credentials refused are a person's to fix, a request
    /// that did not get through is worth trying again. Any credential an API echoes back
    /// is cut out.
    fn error(&self, record: &str, doing: &'static str, e: dns_update::Error) -> DnsError {
        let detail = redact(&e.to_string(), &self.secrets);
        match e {
            dns_update::Error::Unauthorized => DnsError::CredentialsRejected {
                server: self.label.clone(),
                record: record.to_owned(),
            },
            // Forbidden: the credentials are known but may not do this.
            dns_update::Error::Api(ref m) if m.starts_with("HTTP 403") => {
                DnsError::CredentialsRejected {
                    server: self.label.clone(),
                    record: record.to_owned(),
                }
            }
            dns_update::Error::NotFound => DnsError::UpdateRefused {
                server: self.label.clone(),
                record: record.to_owned(),
                detail: "not found (is the zone hosted there, and may these credentials reach it?)"
                    .into(),
            },
            dns_update::Error::Api(_) if detail.contains("Failed to send request") => {
                DnsError::ServerUnreachable {
                    server: self.label.clone(),
                    record: record.to_owned(),
                    doing,
                    detail,
                }
            }
            _ => DnsError::UpdateFailed {
                server: self.label.clone(),
                record: record.to_owned(),
                detail,
            },
        }
    }
}

fn ovh_endpoint(e: OvhEndpoint) -> dns_update::providers::ovh::OvhEndpoint {
    use dns_update::providers::ovh::OvhEndpoint as O;
    match e {
        OvhEndpoint::OvhEu => O::OvhEu,
        OvhEndpoint::OvhUs => O::OvhUs,
        OvhEndpoint::OvhCa => O::OvhCa,
        OvhEndpoint::KimsufiEu => O::KimsufiEu,
        OvhEndpoint::KimsufiCa => O::KimsufiCa,
        OvhEndpoint::SoyoustartEu => O::SoyoustartEu,
        OvhEndpoint::SoyoustartCa => O::SoyoustartCa,
    }
}

fn api_type(rtype: RecordType) -> DnsRecordType {
    match rtype {
        RecordType::TXT => DnsRecordType::TXT,
        RecordType::SRV => DnsRecordType::SRV,
        _ => DnsRecordType::MX,
    }
}

fn fqdn_text(name: &Name) -> String {
    name.to_ascii()
}

fn name_of(host: &str) -> Result<Name, String> {
    super::observe::fqdn(host)
}

fn to_rdata(r: &DnsRecord) -> Result<RData, String> {
    Ok(match r {
        DnsRecord::MX(m) => RData::MX(MX::new(m.priority, name_of(&m.exchange)?)),
        DnsRecord::TXT(t) => RData::TXT(TXT::new(vec![t.clone()])),
        DnsRecord::SRV(s) => {
            RData::SRV(SRV::new(s.priority, s.weight, s.port, name_of(&s.target)?))
        }
        other => return Err(format!("unexpected record {other:?}")),
    })
}

fn to_api(r: &RData) -> Result<DnsRecord, String> {
    Ok(match r {
        RData::MX(m) => DnsRecord::MX(MXRecord {
            exchange: m.exchange.to_ascii(),
            priority: m.preference,
        }),
        RData::SRV(s) => DnsRecord::SRV(SRVRecord {
            target: s.target.to_ascii(),
            priority: s.priority,
            weight: s.weight,
            port: s.port,
        }),
        RData::TXT(_) => DnsRecord::TXT(txt_text(r).unwrap_or_default()),
        other => return Err(format!("cannot write {other:?} through an API")),
    })
}

#[cfg(test)]
mod tests {
    use super::super::change::same_set;
    use super::*;

    #[test]
    fn records_convert_both_ways() {
        for r in [
            RData::MX(MX::new(10, name_of("mail.example.net").unwrap())),
            RData::SRV(SRV::new(0, 1, 993, name_of("imap.example.net").unwrap())),
            RData::TXT(TXT::new(vec!["v=spf1 -all".into()])),
        ] {
            let back = to_rdata(&to_api(&r).unwrap()).unwrap();
            assert!(same_set(&[back], std::slice::from_ref(&r)), "{r:?}");
        }
    }
}
