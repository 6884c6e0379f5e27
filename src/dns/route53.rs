//! Route 53 change batches: compare-and-swap where the API can keep it.
//!
//! `dns-update` writes a record set with one `UPSERT`, which replaces whatever is there.
//! Route 53 can do better: a `ChangeResourceRecordSets` batch is applied atomically, and
//! its `DELETE` must name the exact TTL and values the set holds, or the whole batch is
//! refused (`InvalidChangeBatch`). So a step reads the set (its stored TTL and values,
//! verbatim), compares it with what the step was planned from, and sends one batch that
//! deletes exactly what it read and creates the new set; a change landing between the read
//! and the write makes Route 53 refuse the batch, nothing is written, and the step is
//! [`DnsError::ZoneChanged`]. Every record set of a step goes in the same batch, so a step
//! changing several sets (SRV) is atomic too.
//!
//! Requests are signed with AWS Signature Version 4 by `aws-sigv4` (AWS's own signer) and
//! sent over mailshift's HTTP client. Throttling (HTTP 429/503, or Route 53's `Throttling`
//! and `PriorRequestNotComplete`) waits as long as `Retry-After` says, or backs off.

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use hickory_proto::rr::rdata::{MX, SRV, TXT};
use hickory_proto::rr::{Name, RData, RecordType};
use http::{HeaderMap, Request, StatusCode, Uri};

use super::change::{Change, convert, describe, redact, same_set, show, still_expected};
use super::error::DnsError;
use super::observe::{fqdn, txt_text};
use crate::https::Http;

const API_VERSION: &str = "2013-04-01";
const XMLNS: &str = "https://route53.amazonaws.com/doc/2013-04-01/";
const DEFAULT_ENDPOINT: &str = "https://route53.amazonaws.com";
/// Route 53 is global; its requests are signed for this region.
const DEFAULT_REGION: &str = "us-east-1";
/// The largest answer read (a list of a few record sets, or an error).
const BODY_LIMIT: usize = 1 << 20;
/// Tries of one request that the API throttles.
const TRIES: u32 = 6;
/// The longest `Retry-After` waited inside a step; a longer one fails the step, which the
/// loop tries again later.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(600);

/// A Route 53 client for one hosted zone.
pub(super) struct Route53 {
    http: Http,
    /// The endpoint's base, e.g. `https://route53.amazonaws.com`.
    base: String,
    region: String,
    zone_id: Option<String>,
    access_key_id: String,
    secret_access_key: String,
    session_token: Option<String>,
    label: String,
    /// Cut out of any error text.
    secrets: Vec<String>,
}

/// A record set as Route 53 stores it: what a `DELETE` must repeat exactly.
#[derive(Clone, Debug, PartialEq)]
struct Stored {
    ttl: u32,
    values: Vec<String>,
}

/// The credentials, as [`super::api::Api`] resolved them.
pub(super) struct Keys {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

impl Route53 {
    pub fn new(
        spec: &crate::spec::Route53,
        keys: Keys,
        label: String,
        secrets: Vec<String>,
    ) -> Result<Route53, DnsError> {
        let base = spec
            .endpoint
            .as_deref()
            .unwrap_or(DEFAULT_ENDPOINT)
            .trim_end_matches('/')
            .to_owned();
        let uri: Uri = base.parse().map_err(|e| DnsError::UpdateFailed {
            server: label.clone(),
            record: "the API endpoint".into(),
            detail: format!("`{base}` is not a URL: {e}"),
        })?;
        let http = Http::anonymous(&uri, None).map_err(|e| DnsError::UpdateFailed {
            server: label.clone(),
            record: "the API endpoint".into(),
            detail: e.to_string(),
        })?;
        Ok(Route53 {
            http,
            base,
            region: spec.region.clone().unwrap_or_else(|| DEFAULT_REGION.into()),
            zone_id: spec
                .hosted_zone_id
                .as_deref()
                .map(|z| z.trim_start_matches("/hostedzone/").to_owned()),
            access_key_id: keys.access_key_id,
            secret_access_key: keys.secret_access_key,
            session_token: keys.session_token,
            label,
            secrets,
        })
    }

    /// Replaces every record set of `changes` in one batch, if each still holds what it
    /// expects (see the module's documentation).
    pub async fn commit(&self, zone: &Name, changes: &[Change]) -> Result<(), DnsError> {
        let record = changes
            .iter()
            .map(|c| format!("{} {}", c.rtype, show(&c.owner)))
            .collect::<Vec<_>>()
            .join(", ");
        let zone_id = self.zone_id(zone, &record).await?;
        let mut batch = String::new();
        let mut read = Vec::with_capacity(changes.len());
        for c in changes {
            let record = format!("{} {}", c.rtype, show(&c.owner));
            let stored = self.read(&zone_id, &c.owner, c.rtype, &record).await?;
            let now = match &stored {
                Some(s) => {
                    parse_values(c.rtype, &s.values).map_err(|detail| DnsError::UpdateFailed {
                        server: self.label.clone(),
                        record: record.clone(),
                        detail: format!("Route 53 holds a record mailshift cannot read: {detail}"),
                    })?
                }
                None => Vec::new(),
            };
            still_expected(&self.label, &record, &now, c)?;
            let new = convert(&c.records, render_value, &record)?;
            if let Some(s) = &stored {
                if s.ttl == c.ttl && same_set(&now, &c.records) {
                    continue;
                }
                batch.push_str(&change_xml("DELETE", &c.owner, c.rtype, s.ttl, &s.values));
            }
            if !new.is_empty() {
                batch.push_str(&change_xml("CREATE", &c.owner, c.rtype, c.ttl, &new));
            }
            read.push((c, now));
        }
        if batch.is_empty() {
            return Ok(());
        }
        let body = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
             <ChangeResourceRecordSetsRequest xmlns=\"{XMLNS}\"><ChangeBatch>\
             <Comment>mailshift</Comment><Changes>{batch}</Changes></ChangeBatch>\
             </ChangeResourceRecordSetsRequest>"
        );
        tracing::info!(server = %self.label, %record, "sending a Route 53 change batch");
        let path = format!("/{API_VERSION}/hostedzone/{zone_id}/rrset");
        match self.send("POST", &path, body, &record).await {
            Ok(_) => Ok(()),
            Err(Refusal::Api(e)) if e.is_changed_set() => {
                // Route 53 refused the batch whole: find which set is no longer as read.
                for (c, was) in read {
                    let record = format!("{} {}", c.rtype, show(&c.owner));
                    let found = match self.read(&zone_id, &c.owner, c.rtype, &record).await {
                        Ok(Some(s)) => match parse_values(c.rtype, &s.values) {
                            Ok(v) if same_set(&v, &was) => continue,
                            Ok(v) => describe(&v),
                            Err(_) => s.values.join(", "),
                        },
                        Ok(None) if was.is_empty() => continue,
                        Ok(None) => describe(&[]),
                        Err(e) => format!("(cannot read it again: {e})"),
                    };
                    return Err(DnsError::ZoneChanged {
                        server: self.label.clone(),
                        record,
                        expected: describe(&was),
                        found: format!("{found} (Route 53 refused the change batch)"),
                    });
                }
                Err(self.refused(&record, &e))
            }
            Err(Refusal::Api(e)) => Err(self.refused(&record, &e)),
            Err(Refusal::Other(e)) => Err(e),
        }
    }

    async fn zone_id(&self, zone: &Name, record: &str) -> Result<String, DnsError> {
        if let Some(z) = &self.zone_id {
            return Ok(z.clone());
        }
        let name = zone.to_ascii();
        let path = format!(
            "/{API_VERSION}/hostedzonesbyname?dnsname={}&maxitems=10",
            crate::https::urlencode(&name)
        );
        let body = self
            .send("GET", &path, String::new(), record)
            .await
            .map_err(|r| self.refusal(record, r))?;
        let zones = hosted_zones(&body).map_err(|detail| self.unreadable(record, detail))?;
        zones
            .iter()
            .filter(|z| same_name(&z.name, &name))
            .min_by_key(|z| z.private)
            .map(|z| z.id.trim_start_matches("/hostedzone/").to_owned())
            .ok_or_else(|| DnsError::UpdateRefused {
                server: self.label.clone(),
                record: record.to_owned(),
                detail: format!(
                    "these credentials see no hosted zone named {} (give dns.provider.route53.hostedZoneId?)",
                    show(zone)
                ),
            })
    }

    /// The record set `name`/`rtype` as stored, if there is one.
    async fn read(
        &self,
        zone_id: &str,
        name: &Name,
        rtype: RecordType,
        record: &str,
    ) -> Result<Option<Stored>, DnsError> {
        let owner = name.to_ascii();
        let path = format!(
            "/{API_VERSION}/hostedzone/{zone_id}/rrset?name={}&type={rtype}&maxitems=1",
            crate::https::urlencode(&owner)
        );
        let body = self
            .send("GET", &path, String::new(), record)
            .await
            .map_err(|r| self.refusal(record, r))?;
        let sets = record_sets(&body).map_err(|detail| self.unreadable(record, detail))?;
        // The listing starts at the name and type asked for, and goes on past them when
        // there is no such set.
        let Some(set) = sets
            .into_iter()
            .find(|s| same_name(&s.name, &owner) && s.rtype == rtype.to_string())
        else {
            return Ok(None);
        };
        if set.weighted {
            return Err(DnsError::UpdateRefused {
                server: self.label.clone(),
                record: record.to_owned(),
                detail: "the record set has a routing policy (SetIdentifier or alias): mailshift \
                         leaves such sets to whoever made them"
                    .into(),
            });
        }
        Ok(Some(Stored {
            ttl: set.ttl,
            values: set.values,
        }))
    }

    /// Sends one signed request, waiting out throttling; the body of a 2xx answer.
    async fn send(
        &self,
        method: &str,
        path: &str,
        body: String,
        record: &str,
    ) -> Result<Bytes, Refusal> {
        let mut backoff = Duration::from_secs(1);
        for attempt in 1..=TRIES {
            let request = self.signed(method, path, body.clone(), record)?;
            let (status, headers, answer) =
                self.http.request(request, BODY_LIMIT).await.map_err(|e| {
                    Refusal::Other(DnsError::ServerUnreachable {
                        server: self.label.clone(),
                        record: record.to_owned(),
                        doing: if method == "GET" {
                            "reading"
                        } else {
                            "updating"
                        },
                        detail: redact(&e.to_string(), &self.secrets),
                    })
                })?;
            if status.is_success() {
                return Ok(answer);
            }
            let error = ApiError::parse(status, &answer);
            if !error.is_throttled() || attempt == TRIES {
                return Err(Refusal::Api(error));
            }
            let wait = match retry_after(&headers) {
                Some(w) if w > MAX_RETRY_AFTER => return Err(Refusal::Api(error)),
                Some(w) => w,
                None => backoff,
            };
            tracing::warn!(
                server = %self.label, %record, status = status.as_u16(), code = %error.code,
                wait_ms = wait.as_millis() as u64, "Route 53 is throttling; waiting"
            );
            tokio::time::sleep(wait).await;
            backoff = (backoff * 2).min(Duration::from_secs(30));
        }
        unreachable!("the last try returns")
    }

    fn signed(
        &self,
        method: &str,
        path: &str,
        body: String,
        record: &str,
    ) -> Result<Request<String>, Refusal> {
        use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
        let fail = |detail: String| {
            Refusal::Other(DnsError::UpdateFailed {
                server: self.label.clone(),
                record: record.to_owned(),
                detail: format!("cannot sign the request: {detail}"),
            })
        };
        let url = format!("{}{path}", self.base);
        let identity = aws_credential_types::Credentials::new(
            &self.access_key_id,
            &self.secret_access_key,
            self.session_token.clone(),
            None,
            "mailshift",
        )
        .into();
        let params = aws_sigv4::sign::v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name("route53")
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| fail(e.to_string()))?
            .into();
        let content_type = [("content-type", "text/xml")];
        let headers = if body.is_empty() {
            &content_type[..0]
        } else {
            &content_type[..]
        };
        let signable = SignableRequest::new(
            method,
            url.as_str(),
            headers.iter().copied(),
            SignableBody::Bytes(body.as_bytes()),
        )
        .map_err(|e| fail(e.to_string()))?;
        let (instructions, _) = sign(signable, &params)
            .map_err(|e| fail(e.to_string()))?
            .into_parts();
        let mut request = Request::builder().method(method).uri(path);
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        let mut request = request.body(body).map_err(|e| fail(e.to_string()))?;
        instructions.apply_to_request_http1x(&mut request);
        Ok(request)
    }

    fn refusal(&self, record: &str, r: Refusal) -> DnsError {
        match r {
            Refusal::Api(e) => self.refused(record, &e),
            Refusal::Other(e) => e,
        }
    }

    /// Route 53's refusal as ours: refused credentials are a person's to fix.
    fn refused(&self, record: &str, e: &ApiError) -> DnsError {
        let record = record.to_owned();
        let server = self.label.clone();
        if e.is_credentials() {
            return DnsError::CredentialsRejected { server, record };
        }
        let detail = redact(
            &format!("{} ({}): {}", e.code, e.status, e.message),
            &self.secrets,
        );
        match e.status.as_u16() {
            404 | 400 if !e.is_throttled() => DnsError::UpdateRefused {
                server,
                record,
                detail,
            },
            _ => DnsError::UpdateFailed {
                server,
                record,
                detail,
            },
        }
    }

    fn unreadable(&self, record: &str, detail: String) -> DnsError {
        DnsError::UpdateFailed {
            server: self.label.clone(),
            record: record.to_owned(),
            detail: format!("the API answered what mailshift cannot read: {detail}"),
        }
    }
}

/// Why a request did not succeed: Route 53 said no, or it could not be asked.
enum Refusal {
    Api(ApiError),
    Other(DnsError),
}

/// Route 53's error answer: `<ErrorResponse><Error><Code>` ... or `<InvalidChangeBatch>`
/// with its `<Messages>`.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    code: String,
    message: String,
}

impl ApiError {
    fn parse(status: StatusCode, body: &[u8]) -> ApiError {
        let mut code = String::new();
        let mut messages = Vec::new();
        let mut root = String::new();
        walk(body, |path, text| {
            if root.is_empty() {
                root = path.first().cloned().unwrap_or_default();
            }
            match path.last().map(String::as_str) {
                Some("Code") => code = text.to_owned(),
                Some("Message") => messages.push(text.to_owned()),
                _ => {}
            }
        })
        .ok();
        if code.is_empty() {
            code = if root.is_empty() {
                format!("HTTP {}", status.as_u16())
            } else {
                root
            };
        }
        ApiError {
            status,
            code,
            message: messages.join("; "),
        }
    }

    fn is_throttled(&self) -> bool {
        matches!(self.status.as_u16(), 429 | 503)
            || matches!(self.code.as_str(), "Throttling" | "PriorRequestNotComplete")
    }

    fn is_credentials(&self) -> bool {
        matches!(self.status.as_u16(), 401 | 403)
            || matches!(
                self.code.as_str(),
                "InvalidClientTokenId"
                    | "SignatureDoesNotMatch"
                    | "AccessDenied"
                    | "AccessDeniedException"
                    | "UnrecognizedClientException"
                    | "ExpiredToken"
                    | "IncompleteSignature"
            )
    }

    /// A batch refused because a `DELETE` no longer matches or a `CREATE` finds a set
    /// (Route 53 says `InvalidChangeBatch`; moto, standing in for it in the tests, says
    /// `InvalidInput` for the first). Which set changed is read again to be sure.
    fn is_changed_set(&self) -> bool {
        self.status == StatusCode::BAD_REQUEST
            && matches!(self.code.as_str(), "InvalidChangeBatch" | "InvalidInput")
    }
}

fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers
        .get(http::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(SystemTime::now()).unwrap_or_default())
}

struct ZoneEntry {
    id: String,
    name: String,
    private: bool,
}

struct SetEntry {
    name: String,
    rtype: String,
    ttl: u32,
    values: Vec<String>,
    /// A set with a routing policy or an alias, which a plain DELETE cannot name.
    weighted: bool,
}

fn hosted_zones(body: &[u8]) -> Result<Vec<ZoneEntry>, String> {
    let mut out: Vec<ZoneEntry> = Vec::new();
    walk(body, |path, text| {
        let tail: Vec<&str> = path.iter().rev().take(2).map(String::as_str).collect();
        match tail.as_slice() {
            ["Id", "HostedZone"] => out.push(ZoneEntry {
                id: text.to_owned(),
                name: String::new(),
                private: false,
            }),
            ["Name", "HostedZone"] => {
                if let Some(z) = out.last_mut() {
                    z.name = text.to_owned();
                }
            }
            ["PrivateZone", "Config"] => {
                if let Some(z) = out.last_mut() {
                    z.private = text == "true";
                }
            }
            _ => {}
        }
    })?;
    Ok(out)
}

fn record_sets(body: &[u8]) -> Result<Vec<SetEntry>, String> {
    let mut out: Vec<SetEntry> = Vec::new();
    let mut bad = None;
    walk(body, |path, text| {
        let n = path.len();
        let parent = n.checked_sub(2).map(|i| path[i].as_str());
        let leaf = path.last().map(String::as_str);
        if parent == Some("ResourceRecordSet") && leaf == Some("Name") {
            out.push(SetEntry {
                name: text.to_owned(),
                rtype: String::new(),
                ttl: 0,
                values: Vec::new(),
                weighted: false,
            });
            return;
        }
        let Some(set) = out.last_mut() else { return };
        match (parent, leaf) {
            (Some("ResourceRecordSet"), Some("Type")) => set.rtype = text.to_owned(),
            (Some("ResourceRecordSet"), Some("TTL")) => match text.parse() {
                Ok(t) => set.ttl = t,
                Err(_) => bad = Some(format!("TTL `{text}`")),
            },
            (Some("ResourceRecordSet"), Some("SetIdentifier")) => set.weighted = true,
            (Some("AliasTarget"), _) => set.weighted = true,
            (Some("ResourceRecord"), Some("Value")) => set.values.push(text.to_owned()),
            _ => {}
        }
    })?;
    match bad {
        Some(b) => Err(b),
        None => Ok(out),
    }
}

/// Calls `each(path, text)` for every element's text (entities resolved, trimmed),
/// `path` being the element names from the root (namespaces dropped).
fn walk(body: &[u8], mut each: impl FnMut(&[String], &str)) -> Result<(), String> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_reader(body);
    let mut path: Vec<String> = Vec::new();
    let mut text = String::new();
    let mut buf = Vec::new();
    loop {
        match reader.read_event_into(&mut buf) {
            Ok(Event::Start(e)) => {
                path.push(e.local_name().as_ref().to_owned());
                text.clear();
            }
            Ok(Event::End(_)) => {
                if !text.trim().is_empty() {
                    each(&path, text.trim());
                }
                text.clear();
                path.pop();
            }
            Ok(Event::Text(t)) => text.push_str(&t.xml10_content()),
            Ok(Event::GeneralRef(r)) => {
                // `&amp;` and the like arrive as events of their own.
                if let Some(c) = r.resolve_char_ref().map_err(|e| e.to_string())? {
                    text.push(c);
                } else {
                    let name = r.into_inner();
                    let resolved = quick_xml::escape::unescape(&format!("&{name};"))
                        .map_err(|e| e.to_string())?
                        .into_owned();
                    text.push_str(&resolved);
                }
            }
            Ok(Event::Eof) => return Ok(()),
            Ok(_) => {}
            Err(e) => return Err(e.to_string()),
        }
        buf.clear();
    }
}

fn change_xml(
    action: &str,
    owner: &Name,
    rtype: RecordType,
    ttl: u32,
    values: &[String],
) -> String {
    let records: String = values
        .iter()
        .map(|v| {
            format!(
                "<ResourceRecord><Value>{}</Value></ResourceRecord>",
                quick_xml::escape::escape(v.as_str())
            )
        })
        .collect();
    format!(
        "<Change><Action>{action}</Action><ResourceRecordSet><Name>{}</Name><Type>{rtype}</Type>\
         <TTL>{ttl}</TTL><ResourceRecords>{records}</ResourceRecords></ResourceRecordSet></Change>",
        quick_xml::escape::escape(owner.to_ascii().as_str())
    )
}

/// A record as Route 53 writes its value.
fn render_value(r: &RData) -> Result<String, String> {
    Ok(match r {
        RData::MX(m) => format!("{} {}", m.preference, m.exchange.to_ascii()),
        RData::SRV(s) => format!(
            "{} {} {} {}",
            s.priority,
            s.weight,
            s.port,
            s.target.to_ascii()
        ),
        RData::TXT(_) => {
            let text = txt_text(r).unwrap_or_default();
            // Character-strings of at most 255 bytes, quoted, `"` and `\` escaped.
            let mut out = Vec::new();
            let mut chunk = String::new();
            for ch in text.chars() {
                if chunk.len() + ch.len_utf8() > 255 {
                    out.push(std::mem::take(&mut chunk));
                }
                chunk.push(ch);
            }
            if !chunk.is_empty() || out.is_empty() {
                out.push(chunk);
            }
            out.iter()
                .map(|c| format!("\"{}\"", c.replace('\\', "\\\\").replace('"', "\\\"")))
                .collect::<Vec<_>>()
                .join(" ")
        }
        other => return Err(format!("cannot write {other:?} to Route 53")),
    })
}

/// Route 53's values of one set, as records.
fn parse_values(rtype: RecordType, values: &[String]) -> Result<Vec<RData>, String> {
    values.iter().map(|v| parse_value(rtype, v)).collect()
}

fn parse_value(rtype: RecordType, v: &str) -> Result<RData, String> {
    let fields: Vec<&str> = v.split_whitespace().collect();
    let number = |s: &str| s.parse::<u16>().map_err(|_| format!("`{v}`"));
    Ok(match (rtype, fields.as_slice()) {
        (RecordType::MX, [p, host]) => RData::MX(MX::new(number(p)?, fqdn(host)?)),
        (RecordType::SRV, [p, w, port, host]) => {
            RData::SRV(SRV::new(number(p)?, number(w)?, number(port)?, fqdn(host)?))
        }
        (RecordType::TXT, _) => RData::TXT(TXT::new(vec![txt_strings(v)?.concat()])),
        _ => return Err(format!("`{v}` is not a {rtype} record")),
    })
}

/// The character-strings of a TXT value in zone-file syntax: quoted strings with `\"`,
/// `\\` and `\DDD` escapes, or bare words.
fn txt_strings(v: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut chars = v.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        let quoted = c == '"';
        if quoted {
            chars.next();
        }
        let mut bytes = Vec::new();
        loop {
            match chars.next() {
                None if quoted => return Err(format!("unterminated string in `{v}`")),
                None => break,
                Some('"') if quoted => break,
                Some(c) if !quoted && c.is_whitespace() => break,
                Some('\\') => {
                    let digits: String = std::iter::from_fn(|| chars.next_if(char::is_ascii_digit))
                        .take(3)
                        .collect();
                    if digits.is_empty() {
                        let c = chars.next().ok_or_else(|| format!("`{v}` ends in `\\`"))?;
                        let mut b = [0; 4];
                        bytes.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
                    } else {
                        let n: u16 = digits.parse().map_err(|_| format!("`{v}`"))?;
                        bytes.push(u8::try_from(n).map_err(|_| format!("`\\{digits}` in `{v}`"))?);
                    }
                }
                Some(c) => {
                    let mut b = [0; 4];
                    bytes.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
                }
            }
        }
        out.push(String::from_utf8_lossy(&bytes).into_owned());
    }
    Ok(out)
}

fn same_name(a: &str, b: &str) -> bool {
    a.trim_end_matches('.')
        .eq_ignore_ascii_case(b.trim_end_matches('.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_written_and_read_back_as_route53_stores_them() {
        let long = "v=spf1 ".to_owned() + &"ip4:192.0.2.1 ".repeat(30) + "\"quoted\" -all";
        for r in [
            RData::MX(MX::new(10, fqdn("mail.example.net").unwrap())),
            RData::SRV(SRV::new(0, 1, 993, fqdn("imap.example.net").unwrap())),
            RData::TXT(TXT::new(vec![long.clone()])),
        ] {
            let rtype = r.record_type();
            let value = render_value(&r).unwrap();
            let back = parse_value(rtype, &value).unwrap();
            assert!(same_set(&[back], &[r]), "{value}");
        }
        let txt = render_value(&RData::TXT(TXT::new(vec![long.clone()]))).unwrap();
        assert!(
            txt.starts_with('"') && txt.contains("\" \""),
            "split: {txt}"
        );
        assert_eq!(
            txt_strings(r#""a\"b" "c\\d" "\065" bare"#).unwrap(),
            ["a\"b", "c\\d", "A", "bare"]
        );
    }

    #[test]
    fn listings_and_refusals_are_read() {
        let list = br#"<?xml version="1.0"?>
<ListResourceRecordSetsResponse xmlns="https://route53.amazonaws.com/doc/2013-04-01/">
<ResourceRecordSets><ResourceRecordSet><Name>example.com.</Name><Type>MX</Type><TTL>3600</TTL>
<ResourceRecords><ResourceRecord><Value>10 a.example.net.</Value></ResourceRecord>
<ResourceRecord><Value>20 b.example.net.</Value></ResourceRecord></ResourceRecords></ResourceRecordSet>
<ResourceRecordSet><Name>example.com.</Name><Type>TXT</Type><SetIdentifier>eu</SetIdentifier><TTL>60</TTL>
<ResourceRecords><ResourceRecord><Value>"x &amp; y"</Value></ResourceRecord></ResourceRecords></ResourceRecordSet>
</ResourceRecordSets><IsTruncated>false</IsTruncated></ListResourceRecordSetsResponse>"#;
        let sets = record_sets(list).unwrap();
        assert_eq!(sets.len(), 2);
        assert_eq!((sets[0].rtype.as_str(), sets[0].ttl), ("MX", 3600));
        assert_eq!(sets[0].values, ["10 a.example.net.", "20 b.example.net."]);
        assert!(!sets[0].weighted && sets[1].weighted);
        assert_eq!(sets[1].values, ["\"x & y\""]);

        let batch = br#"<?xml version="1.0"?><InvalidChangeBatch xmlns="https://route53.amazonaws.com/doc/2013-04-01/"><Messages><Message>Tried to delete resource record set [name='example.com.', type='MX'] but the values provided do not match the current values</Message></Messages><RequestId>r</RequestId></InvalidChangeBatch>"#;
        let e = ApiError::parse(StatusCode::BAD_REQUEST, batch);
        assert_eq!(e.code, "InvalidChangeBatch");
        assert!(e.is_changed_set() && !e.is_throttled() && !e.is_credentials());
        assert!(e.message.contains("do not match"), "{e:?}");

        let denied = br#"<ErrorResponse><Error><Type>Sender</Type><Code>InvalidClientTokenId</Code><Message>The security token included in the request is invalid.</Message></Error></ErrorResponse>"#;
        assert!(ApiError::parse(StatusCode::FORBIDDEN, denied).is_credentials());
        let slow = br#"<ErrorResponse><Error><Code>Throttling</Code><Message>Rate exceeded</Message></Error></ErrorResponse>"#;
        assert!(ApiError::parse(StatusCode::BAD_REQUEST, slow).is_throttled());
        assert_eq!(
            ApiError::parse(StatusCode::BAD_GATEWAY, b"").code,
            "HTTP 502"
        );
    }

    #[test]
    fn the_batch_names_the_old_set_exactly() {
        let owner = fqdn("example.com").unwrap();
        let xml = change_xml(
            "DELETE",
            &owner,
            RecordType::TXT,
            3600,
            &["\"a<b\"".to_owned()],
        );
        assert!(xml.contains("<Action>DELETE</Action>"));
        assert!(xml.contains("<Name>example.com.</Name><Type>TXT</Type><TTL>3600</TTL>"));
        assert!(xml.contains("<Value>&quot;a&lt;b&quot;</Value>"), "{xml}");
    }
}
