//! `dns.provider`: where the zone's records are changed. Exactly one provider: an RFC 2136
//! server with a TSIG key, or the HTTP API of a DNS host (changed through the `dns-update`
//! crate). Every credential is a [`SecretRef`]; the CRD and `validate` list the fields.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::SecretRef;
use super::types::Rfc2136;

/// Where DNS changes are sent: one of the providers below, as a section of its own
/// (`provider: { cloudflare: { apiToken: { secretKeyRef: ... } } }`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub enum DnsProvider {
    /// Dynamic updates (RFC 2136) signed with TSIG, as BIND, Knot and PowerDNS accept them.
    Rfc2136(Rfc2136),
    /// Cloudflare, with an API token allowed to edit the zone's DNS.
    Cloudflare(Cloudflare),
    /// Amazon Route 53.
    Route53(Route53),
    /// Google Cloud DNS, with a service account.
    GoogleCloudDns(GoogleCloudDns),
    /// Azure DNS, with a service principal (OAuth2 client credentials).
    AzureDns(AzureDns),
    /// DigitalOcean.
    Digitalocean(TokenOnly),
    /// Hetzner DNS.
    Hetzner(TokenOnly),
    /// OVHcloud (and Kimsufi, So you Start).
    Ovh(Ovh),
    /// The PowerDNS Authoritative Server's HTTP API.
    Powerdns(Powerdns),
    /// cPanel's UAPI (a hosting account's zone editor).
    Cpanel(Cpanel),
    /// Plesk.
    Plesk(Plesk),
    /// deSEC.
    Desec(TokenOnly),
    /// Gandi LiveDNS (a personal access token).
    Gandi(TokenOnly),
    /// GoDaddy.
    Godaddy(KeyAndSecret),
    /// Linode (Akamai).
    Linode(TokenOnly),
    /// Vultr.
    Vultr(TokenOnly),
    /// Porkbun.
    Porkbun(KeyAndSecret),
    /// Bunny DNS (bunny.net), with an API key.
    Bunny(TokenOnly),
    /// Scaleway Domains and DNS.
    Scaleway(TokenOnly),
    /// Gcore DNS (a permanent API token).
    Gcore(TokenOnly),
    /// IONOS DNS (an API key, `prefix.secret`).
    Ionos(TokenOnly),
    /// NS1 (IBM NS1 Connect), with an API key.
    Ns1(TokenOnly),
    /// Netlify DNS (a personal access token).
    Netlify(TokenOnly),
    /// Infomaniak (an API access token).
    Infomaniak(TokenOnly),
    /// ANS SafeDNS (UKFast).
    Safedns(TokenOnly),
    /// hosting.de (an API key).
    Hostingde(TokenOnly),
    /// Dynu (an API key).
    Dynu(TokenOnly),
    /// NameSilo (an API key).
    Namesilo(TokenOnly),
    /// Constellix (API key and secret key).
    Constellix(KeyAndSecret),
    /// DNS Made Easy (API key and secret).
    Dnsmadeeasy(KeyAndSecret),
    /// Exoscale DNS (API key and secret).
    Exoscale(KeyAndSecret),
    /// Spaceship (API key and secret).
    Spaceship(KeyAndSecret),
    /// Domeneshop (API token as `apiKey`, and its secret).
    Domeneshop(KeyAndSecret),
    /// Websupport (API key and secret).
    Websupport(KeyAndSecret),
    /// LuaDNS (the account's e-mail as `username`, an API token).
    Luadns(UserAndToken),
    /// Name.com (the account's user name, an API token).
    Namedotcom(UserAndToken),
    /// Zone.eu (the ZoneID user name, its API key as `apiToken`).
    Zoneeu(UserAndToken),
    /// Mythic Beasts DNS API v2 (an API key id as `username`, its secret as `password`).
    Mythicbeasts(UserAndPassword),
    /// INWX (an account's user name and password).
    Inwx(UserAndPassword),
    /// Namecheap (its API must be enabled and `clientIp` allow-listed).
    Namecheap(Namecheap),
    /// DNSimple (an account token and the account id).
    Dnsimple(Dnsimple),
    /// Vercel DNS (an access token; `teamId` for a team's domains).
    Vercel(Vercel),
    /// netcup's CCP DNS API.
    Netcup(Netcup),
    /// Simply.com (account name and API key).
    Simplycom(Simplycom),
}

/// A provider reached with one token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TokenOnly {
    /// The API token.
    pub api_token: SecretRef,
}

/// A provider reached with an API key and its secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KeyAndSecret {
    pub api_key: SecretRef,
    pub api_secret: SecretRef,
}

/// A provider reached with a user name and an API token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UserAndToken {
    #[schemars(length(min = 1))]
    pub username: String,
    pub api_token: SecretRef,
}

/// A provider reached with a user name and a password.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UserAndPassword {
    #[schemars(length(min = 1))]
    pub username: String,
    pub password: SecretRef,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Namecheap {
    /// The API user (usually the account's user name).
    #[schemars(length(min = 1))]
    pub api_user: String,
    pub api_key: SecretRef,
    /// The IPv4 address mailshift's requests come from, as allow-listed at Namecheap.
    #[schemars(length(min = 1))]
    pub client_ip: String,
    /// The account acted on, when not the API user's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Dnsimple {
    pub api_token: SecretRef,
    /// The account id the zone belongs to.
    #[schemars(length(min = 1))]
    pub account_id: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Vercel {
    pub api_token: SecretRef,
    /// The team owning the domain, when it is not a personal account's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team_id: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Netcup {
    #[schemars(length(min = 1))]
    pub customer_number: String,
    pub api_key: SecretRef,
    pub api_password: SecretRef,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Simplycom {
    #[schemars(length(min = 1))]
    pub account_name: String,
    pub api_key: SecretRef,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Cloudflare {
    /// An API token with the permission Zone › DNS › Edit for the zone.
    pub api_token: SecretRef,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Route53 {
    /// The hosted zone's id (`Z0123456789ABC`); found from the zone's name when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hosted_zone_id: Option<String>,
    /// AWS region of the API (Route 53 is global; `us-east-1` by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    pub access_key_id: SecretRef,
    pub secret_access_key: SecretRef,
    /// For temporary credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_token: Option<SecretRef>,
    /// Another API endpoint (tests, private installations), e.g. `http://127.0.0.1:5000`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GoogleCloudDns {
    /// The Google Cloud project holding the managed zone.
    #[schemars(length(min = 1))]
    pub project: String,
    /// The managed zone's name; found from the zone's DNS name when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managed_zone: Option<String>,
    /// The service account's JSON key.
    pub service_account: SecretRef,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AzureDns {
    #[schemars(length(min = 1))]
    pub tenant_id: String,
    #[schemars(length(min = 1))]
    pub client_id: String,
    pub client_secret: SecretRef,
    #[schemars(length(min = 1))]
    pub subscription_id: String,
    /// The resource group holding the DNS zone.
    #[schemars(length(min = 1))]
    pub resource_group: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Ovh {
    /// Which OVH API (`ovh-eu` by default).
    #[serde(default)]
    pub endpoint: OvhEndpoint,
    pub application_key: SecretRef,
    pub application_secret: SecretRef,
    pub consumer_key: SecretRef,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum OvhEndpoint {
    #[default]
    OvhEu,
    OvhUs,
    OvhCa,
    KimsufiEu,
    KimsufiCa,
    SoyoustartEu,
    SoyoustartCa,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Powerdns {
    /// The API's base URL, e.g. `http://ns1.example.net:8081`.
    #[schemars(length(min = 1))]
    pub url: String,
    pub api_key: SecretRef,
    /// The server id in the API's paths (`localhost` by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_id: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Cpanel {
    /// The cPanel URL, e.g. `https://host.example.net:2083`.
    #[schemars(length(min = 1))]
    pub url: String,
    #[schemars(length(min = 1))]
    pub username: String,
    pub api_token: SecretRef,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Plesk {
    /// The Plesk URL, e.g. `https://host.example.net:8443`.
    #[schemars(length(min = 1))]
    pub url: String,
    pub api_key: SecretRef,
}

impl DnsProvider {
    /// The provider's key in the manifest (`rfc2136`, `cloudflare`, ...).
    pub fn kind(&self) -> &'static str {
        match self {
            DnsProvider::Rfc2136(_) => "rfc2136",
            DnsProvider::Cloudflare(_) => "cloudflare",
            DnsProvider::Route53(_) => "route53",
            DnsProvider::GoogleCloudDns(_) => "googleCloudDns",
            DnsProvider::AzureDns(_) => "azureDns",
            DnsProvider::Digitalocean(_) => "digitalocean",
            DnsProvider::Hetzner(_) => "hetzner",
            DnsProvider::Ovh(_) => "ovh",
            DnsProvider::Powerdns(_) => "powerdns",
            DnsProvider::Cpanel(_) => "cpanel",
            DnsProvider::Plesk(_) => "plesk",
            DnsProvider::Desec(_) => "desec",
            DnsProvider::Gandi(_) => "gandi",
            DnsProvider::Godaddy(_) => "godaddy",
            DnsProvider::Linode(_) => "linode",
            DnsProvider::Vultr(_) => "vultr",
            DnsProvider::Porkbun(_) => "porkbun",
            DnsProvider::Bunny(_) => "bunny",
            DnsProvider::Scaleway(_) => "scaleway",
            DnsProvider::Gcore(_) => "gcore",
            DnsProvider::Ionos(_) => "ionos",
            DnsProvider::Ns1(_) => "ns1",
            DnsProvider::Netlify(_) => "netlify",
            DnsProvider::Infomaniak(_) => "infomaniak",
            DnsProvider::Safedns(_) => "safedns",
            DnsProvider::Hostingde(_) => "hostingde",
            DnsProvider::Dynu(_) => "dynu",
            DnsProvider::Namesilo(_) => "namesilo",
            DnsProvider::Constellix(_) => "constellix",
            DnsProvider::Dnsmadeeasy(_) => "dnsmadeeasy",
            DnsProvider::Exoscale(_) => "exoscale",
            DnsProvider::Spaceship(_) => "spaceship",
            DnsProvider::Domeneshop(_) => "domeneshop",
            DnsProvider::Websupport(_) => "websupport",
            DnsProvider::Luadns(_) => "luadns",
            DnsProvider::Namedotcom(_) => "namedotcom",
            DnsProvider::Zoneeu(_) => "zoneeu",
            DnsProvider::Mythicbeasts(_) => "mythicbeasts",
            DnsProvider::Inwx(_) => "inwx",
            DnsProvider::Namecheap(_) => "namecheap",
            DnsProvider::Dnsimple(_) => "dnsimple",
            DnsProvider::Vercel(_) => "vercel",
            DnsProvider::Netcup(_) => "netcup",
            DnsProvider::Simplycom(_) => "simplycom",
        }
    }

    /// What changes go to, for plans and messages: the RFC 2136 server, or the API.
    pub fn label(&self) -> String {
        match self {
            DnsProvider::Rfc2136(r) => r.server.clone(),
            DnsProvider::Route53(Route53 {
                endpoint: Some(e), ..
            }) => format!("the Route 53 API at {e}"),
            DnsProvider::Powerdns(p) => format!("the PowerDNS API at {}", p.url),
            DnsProvider::Cpanel(p) => format!("the cPanel API at {}", p.url),
            DnsProvider::Plesk(p) => format!("the Plesk API at {}", p.url),
            other => format!("the {} API", other.kind()),
        }
    }

    /// What a change through this provider promises, for `plan`.
    pub fn guarantee(&self) -> &'static str {
        match self {
            DnsProvider::Rfc2136(_) => {
                "compare-and-swap: the server applies a change only to the records it was planned from"
            }
            DnsProvider::Route53(_) => {
                "compare-and-swap: one change batch deletes exactly the records read and adds the new ones; Route 53 refuses it whole if they changed"
            }
            _ => "read and compared right before writing: a change made in between is overwritten",
        }
    }

    /// The RFC 2136 server, for a provider that is one.
    pub fn rfc2136(&self) -> Option<&Rfc2136> {
        match self {
            DnsProvider::Rfc2136(r) => Some(r),
            _ => None,
        }
    }

    /// Every credential of the provider, with its field name (for validation).
    pub fn secrets(&self) -> Vec<(&'static str, &SecretRef)> {
        match self {
            DnsProvider::Rfc2136(r) => vec![("tsig.secret", &r.tsig.secret)],
            DnsProvider::Cloudflare(c) => vec![("apiToken", &c.api_token)],
            DnsProvider::Route53(r) => {
                let mut out = vec![
                    ("accessKeyId", &r.access_key_id),
                    ("secretAccessKey", &r.secret_access_key),
                ];
                out.extend(r.session_token.as_ref().map(|s| ("sessionToken", s)));
                out
            }
            DnsProvider::GoogleCloudDns(g) => vec![("serviceAccount", &g.service_account)],
            DnsProvider::AzureDns(a) => vec![("clientSecret", &a.client_secret)],
            DnsProvider::Digitalocean(t)
            | DnsProvider::Hetzner(t)
            | DnsProvider::Desec(t)
            | DnsProvider::Gandi(t)
            | DnsProvider::Linode(t)
            | DnsProvider::Vultr(t)
            | DnsProvider::Bunny(t)
            | DnsProvider::Scaleway(t)
            | DnsProvider::Gcore(t)
            | DnsProvider::Ionos(t)
            | DnsProvider::Ns1(t)
            | DnsProvider::Netlify(t)
            | DnsProvider::Infomaniak(t)
            | DnsProvider::Safedns(t)
            | DnsProvider::Hostingde(t)
            | DnsProvider::Dynu(t)
            | DnsProvider::Namesilo(t) => vec![("apiToken", &t.api_token)],
            DnsProvider::Ovh(o) => vec![
                ("applicationKey", &o.application_key),
                ("applicationSecret", &o.application_secret),
                ("consumerKey", &o.consumer_key),
            ],
            DnsProvider::Powerdns(p) => vec![("apiKey", &p.api_key)],
            DnsProvider::Cpanel(c) => vec![("apiToken", &c.api_token)],
            DnsProvider::Plesk(p) => vec![("apiKey", &p.api_key)],
            DnsProvider::Godaddy(k)
            | DnsProvider::Porkbun(k)
            | DnsProvider::Constellix(k)
            | DnsProvider::Dnsmadeeasy(k)
            | DnsProvider::Exoscale(k)
            | DnsProvider::Spaceship(k)
            | DnsProvider::Domeneshop(k)
            | DnsProvider::Websupport(k) => {
                vec![("apiKey", &k.api_key), ("apiSecret", &k.api_secret)]
            }
            DnsProvider::Luadns(u) | DnsProvider::Namedotcom(u) | DnsProvider::Zoneeu(u) => {
                vec![("apiToken", &u.api_token)]
            }
            DnsProvider::Mythicbeasts(u) | DnsProvider::Inwx(u) => {
                vec![("password", &u.password)]
            }
            DnsProvider::Namecheap(n) => vec![("apiKey", &n.api_key)],
            DnsProvider::Dnsimple(d) => vec![("apiToken", &d.api_token)],
            DnsProvider::Vercel(v) => vec![("apiToken", &v.api_token)],
            DnsProvider::Netcup(n) => {
                vec![("apiKey", &n.api_key), ("apiPassword", &n.api_password)]
            }
            DnsProvider::Simplycom(k) => vec![("apiKey", &k.api_key)],
        }
    }

    /// The URL a provider is reached at when the manifest gives one.
    pub fn url(&self) -> Option<(&'static str, &str)> {
        match self {
            DnsProvider::Route53(r) => r.endpoint.as_deref().map(|e| ("endpoint", e)),
            DnsProvider::Powerdns(p) => Some(("url", &p.url)),
            DnsProvider::Cpanel(p) => Some(("url", &p.url)),
            DnsProvider::Plesk(p) => Some(("url", &p.url)),
            _ => None,
        }
    }
}
