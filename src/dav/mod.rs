//! Each mailbox's address books (CardDAV, RFC 6352) and calendars (CalDAV, RFC 4791) copied
//! from the old server to the new one, with the mailbox's own logins.
//!
//! - Discovery from the configured URL: `current-user-principal`, then
//!   `addressbook-home-set` and `calendar-home-set` (RFC 6352 7.1.1, RFC 4791 6.2.1), then the
//!   collections in them.
//! - The old server is only read (PROPFIND, REPORT).
//! - Each source collection goes to the destination's collection of the same name, the
//!   source's default to the destination's default, any other to a new collection created
//!   with its display name (and a calendar's color) ([`diff::map_collections`]).
//! - A resource is written with `If-None-Match: *`, under its own file name, with the bytes
//!   the source gave, so its UID is kept; resources are matched by UID, so a run stopped
//!   anywhere and started again writes nothing twice.
//! - A resource the new server refuses (a 4xx answer: too large, a component it does not
//!   take) is reported with the status and skipped, and remembered by its content so that
//!   it holds nothing back until it changes; one of the same UID and other content on the
//!   new server is kept there and reported.
//!
//! [`observe`] compares (read-only on both sides) and is the verification.

pub mod diff;

use crate::https::{Credentials, Http};
use libdav::FetchedResource;
use libdav::caldav::{CreateCalendar, FindCalendarHomeSet, FindCalendars, GetCalendarResources};
use libdav::carddav::{
    CreateAddressBook, FindAddressBookHomeSet, FindAddressBooks, GetAddressBookResources,
};
use libdav::dav::{FoundCollection, ListResources, PutResource, WebDavClient, WebDavError};
use libdav::names;
use sha2::Digest as _;

use crate::accounts::{Account, Login};
use crate::plan::{DavCompared, DavMissing};
use crate::secrets::Resolver;
use crate::spec::DavRefusal;
use crate::spec::{Dav, DavEndpoint};
use diff::{Collection, Item, Kind, Target};

type Client = WebDavClient<Http>;

/// Why contacts and calendars could not be read or written (a refused resource is not an
/// error: see [`Copied::refused`]).
#[derive(Debug, thiserror::Error)]
pub enum DavError {
    #[error("{server}: {detail}")]
    Setup { server: String, detail: String },
    #[error("{server}: the credentials were refused (HTTP {status})")]
    CredentialsRejected { server: String, status: u16 },
    #[error("{server}: {doing}: {detail}")]
    Request {
        server: String,
        doing: String,
        detail: String,
    },
}

impl DavError {
    /// A person has to act (the password), not a retry.
    pub fn needs_person(&self) -> bool {
        matches!(self, DavError::CredentialsRejected { .. })
    }
}

/// One side: its client, home sets and collections.
struct Store {
    server: String,
    client: Client,
    homes: Vec<(Kind, String)>,
    collections: Vec<Collection>,
}

fn request_error<E: std::fmt::Display>(
    server: &str,
    doing: impl Into<String>,
    e: WebDavError<E>,
) -> DavError {
    if let WebDavError::BadStatusCode(s) = &e
        && matches!(s.as_u16(), 401 | 403)
    {
        return DavError::CredentialsRejected {
            server: server.to_owned(),
            status: s.as_u16(),
        };
    }
    DavError::Request {
        server: server.to_owned(),
        doing: doing.into(),
        detail: e.to_string(),
    }
}

fn property(found: &FoundCollection, name: &libdav::PropertyName<'_, '_>) -> Option<String> {
    found
        .properties
        .iter()
        .find(|(n, _)| *n == name)
        .and_then(|(_, v)| v.clone())
        .filter(|v| !v.is_empty())
}

async fn open(
    endpoint: &DavEndpoint,
    login: &Login,
    resolver: &Resolver,
) -> Result<Store, DavError> {
    let server = endpoint.url.clone();
    let setup = |detail: String| DavError::Setup {
        server: server.clone(),
        detail,
    };
    let url: http::Uri = endpoint
        .url
        .parse()
        .map_err(|e| setup(format!("not a URL: {e}")))?;
    let ca = endpoint
        .ca_certificate
        .as_ref()
        .map(|r| resolver.resolve(r))
        .transpose()
        .map_err(|e| setup(format!("caCertificate: {e}")))?;
    let token = match login {
        Login::OAuth2 { token, .. } => Some(token.token().await.map_err(|e| setup(e.to_string()))?),
        _ => None,
    };
    let credentials = match (login, &token) {
        (_, Some(token)) => Credentials::Bearer(token),
        (Login::Password { user, password }, None) => Credentials::Basic { user, password },
        _ => {
            return Err(setup(
                "a master-user login has no CardDAV/CalDAV equivalent: give the mailbox its own password".into(),
            ));
        }
    };
    let http = Http::new(
        &url,
        credentials,
        ca.as_ref().map(|c| c.expose().as_bytes()),
    )
    .map_err(|e| setup(e.to_string()))?;
    let client = WebDavClient::new(url.clone(), http);
    let principal = client
        .find_current_user_principal()
        .await
        .map_err(|e| match e {
            libdav::dav::FindCurrentUserPrincipalError::RequestError(w) => {
                request_error(&server, "finding the user's principal", w)
            }
            other => setup(format!("finding the user's principal: {other}")),
        })?
        .map_or_else(|| url.path().to_owned(), |p| p.path().to_owned());
    let mut homes = Vec::new();
    let cards = client
        .request(FindAddressBookHomeSet::new(&principal))
        .await
        .map_err(|e| request_error(&server, "finding the address book home", e))?;
    let calendars = client
        .request(FindCalendarHomeSet::new(&principal))
        .await
        .map_err(|e| request_error(&server, "finding the calendar home", e))?;
    // A server that names no home set keeps the collections under the principal.
    let home = |sets: Vec<http::Uri>| {
        sets.first()
            .map_or_else(|| principal.clone(), |u| u.path().to_owned())
    };
    homes.push((Kind::AddressBook, home(cards.home_sets)));
    homes.push((Kind::Calendar, home(calendars.home_sets)));
    let mut store = Store {
        server,
        client,
        homes,
        collections: Vec::new(),
    };
    store.collections = collections(&store).await?;
    Ok(store)
}

async fn collections(store: &Store) -> Result<Vec<Collection>, DavError> {
    let mut out = Vec::new();
    for (kind, home) in &store.homes {
        let found = match kind {
            Kind::AddressBook => {
                store
                    .client
                    .request(FindAddressBooks::new(home))
                    .await
                    .map_err(|e| request_error(&store.server, "listing address books", e))?
                    .addressbooks
            }
            Kind::Calendar => {
                store
                    .client
                    .request(FindCalendars::new(home))
                    .await
                    .map_err(|e| request_error(&store.server, "listing calendars", e))?
                    .calendars
            }
        };
        for f in found {
            out.push(Collection {
                kind: *kind,
                display_name: property(&f, &names::DISPLAY_NAME),
                color: property(&f, &names::CALENDAR_COLOUR),
                href: f.href,
            });
        }
    }
    Ok(out)
}

async fn items(store: &Store, c: &Collection) -> Result<Vec<Item>, DavError> {
    let doing = format!("reading {} {}", c.kind.noun(), c.href);
    let fetched: Vec<FetchedResource> = match c.kind {
        Kind::AddressBook => {
            store
                .client
                .request(GetAddressBookResources::new(&c.href))
                .await
                .map_err(|e| request_error(&store.server, &doing, e))?
                .resources
        }
        Kind::Calendar => {
            store
                .client
                .request(GetCalendarResources::new(&c.href))
                .await
                .map_err(|e| request_error(&store.server, &doing, e))?
                .resources
        }
    };
    let mut out = Vec::new();
    for r in fetched {
        match r.content {
            Ok(content) => out.push(Item {
                href: r.href,
                data: content.data,
            }),
            Err(status) => {
                return Err(DavError::Request {
                    server: store.server.clone(),
                    doing: format!("{doing}: {}", r.href),
                    detail: format!("HTTP {status}"),
                });
            }
        }
    }
    Ok(out)
}

/// A short fingerprint of a resource's comparable content, to recognize it again.
pub fn fingerprint(data: &str) -> String {
    let digest = sha2::Sha256::digest(diff::comparable(data).join("\r\n").as_bytes());
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// One source collection, its target and what the destination lacks.
struct Pair {
    source: Collection,
    target: Target,
    items: Vec<Item>,
    diff: diff::ItemDiff,
}

async fn compare(source: &Store, destination: &Store) -> Result<Vec<Pair>, DavError> {
    let targets = diff::map_collections(&source.collections, &destination.collections);
    let mut pairs = Vec::new();
    for (s, target) in source.collections.iter().zip(targets) {
        let ours = items(source, s).await?;
        let theirs = match &target {
            Target::Existing(href) => {
                let d = destination
                    .collections
                    .iter()
                    .find(|d| &d.href == href)
                    .expect("mapped onto a listed collection");
                items(destination, d).await?
            }
            Target::Create(_) => Vec::new(),
        };
        let diff = diff::diff_items(&ours, &theirs);
        pairs.push(Pair {
            source: s.clone(),
            target,
            items: ours,
            diff,
        });
    }
    Ok(pairs)
}

async fn both(
    account: &Account,
    dav: &Dav,
    resolver: &Resolver,
) -> Result<Option<(Store, Store)>, DavError> {
    let Some(source) = &dav.source else {
        return Ok(None);
    };
    let (s, d) = tokio::join!(
        open(source, &account.source, resolver),
        open(&dav.destination, &account.destination, resolver),
    );
    Ok(Some((s?, d?)))
}

fn missing_of(pairs: &[Pair]) -> Vec<DavMissing> {
    pairs
        .iter()
        .flat_map(|p| {
            p.diff.missing.iter().map(|i| DavMissing {
                collection: p.source.segment().to_owned(),
                key: p.items[*i].key(),
                fingerprint: fingerprint(&p.items[*i].data),
            })
        })
        .collect()
}

/// The ETags of every resource of every collection on both sides, with the collection
/// mapping, as one fingerprint: PROPFINDs only, no resource read.
async fn version(source: &Store, destination: &Store) -> Result<String, DavError> {
    let mut h = sha2::Sha256::new();
    let targets = diff::map_collections(&source.collections, &destination.collections);
    for (store, collections) in [
        (source, source.collections.clone()),
        (destination, destination.collections.clone()),
    ] {
        for c in &collections {
            let mut listed = store
                .client
                .request(ListResources::new(&c.href))
                .await
                .map_err(|e| request_error(&store.server, format!("listing {}", c.href), e))?
                .resources;
            listed.sort_by(|a, b| a.href.cmp(&b.href));
            h.update(c.href.as_bytes());
            for r in listed {
                h.update(r.href.as_bytes());
                h.update(r.etag.unwrap_or_default().as_bytes());
            }
        }
    }
    h.update(format!("{targets:?}").as_bytes());
    Ok(h.finalize()[..12]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// Compare the mailbox's address books and calendars on both servers; writes nothing.
/// `None` when the manifest says the old server has none. When no ETag changed since
/// `previous` was compared, it stands and no resource is read.
pub async fn observe(
    account: &Account,
    dav: &Dav,
    resolver: &Resolver,
    previous: Option<&DavCompared>,
) -> Result<Option<DavCompared>, DavError> {
    let Some((source, destination)) = both(account, dav, resolver).await? else {
        return Ok(None);
    };
    let version = version(&source, &destination).await?;
    if let Some(p) = previous.filter(|p| p.version == version) {
        return Ok(Some(p.clone()));
    }
    let pairs = compare(&source, &destination).await?;
    Ok(Some(DavCompared {
        version,
        collections: pairs.len(),
        items: pairs.iter().map(|p| p.items.len()).sum(),
        missing: missing_of(&pairs),
        to_create: pairs
            .iter()
            .filter_map(|p| match &p.target {
                Target::Create(name) => Some(name.clone()),
                Target::Existing(_) => None,
            })
            .collect(),
        kept: pairs
            .iter()
            .flat_map(|p| {
                p.diff
                    .differ
                    .iter()
                    .map(|k| format!("{}/{k}", p.source.segment()))
            })
            .collect(),
    }))
}

/// What a copy did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Copied {
    pub created: Vec<String>,
    pub put: usize,
    pub kept: Vec<String>,
    pub refused: Vec<DavRefusal>,
}

/// Copy what the destination lacks. Resources it refuses are reported in
/// [`Copied::refused`] and the others go on.
pub async fn copy(account: &Account, dav: &Dav, resolver: &Resolver) -> Result<Copied, DavError> {
    let Some((source, destination)) = both(account, dav, resolver).await? else {
        return Ok(Copied::default());
    };
    let pairs = compare(&source, &destination).await?;
    let mut done = Copied::default();
    for p in &pairs {
        let href = match &p.target {
            Target::Existing(href) => href.clone(),
            Target::Create(name) => {
                let home = destination
                    .homes
                    .iter()
                    .find(|(k, _)| *k == p.source.kind)
                    .map(|(_, h)| h.clone())
                    .unwrap_or_default();
                let href = format!("{}/{}/", home.trim_end_matches('/'), name);
                create(&destination, &p.source, &href).await?;
                done.created.push(href.clone());
                href
            }
        };
        done.kept.extend(
            p.diff
                .differ
                .iter()
                .map(|k| format!("{}/{k}", p.source.segment())),
        );
        for i in &p.diff.missing {
            let item = &p.items[*i];
            let mut outcome = put(&destination, &href, &item.name(), item, p.source.kind).await?;
            if outcome == Err(Refused::Exists) {
                // Another resource holds that name on the new server: a name of our own.
                let name = fallback_name(item, p.source.kind);
                outcome = put(&destination, &href, &name, item, p.source.kind).await?;
            }
            match outcome {
                Ok(()) => done.put += 1,
                Err(refused) => done.refused.push(DavRefusal {
                    collection: p.source.segment().to_owned(),
                    key: item.key(),
                    fingerprint: fingerprint(&item.data),
                    reason: refused.to_string(),
                }),
            }
        }
    }
    Ok(done)
}

/// Why the new server would not take a resource.
#[derive(Debug, PartialEq, Eq)]
enum Refused {
    /// 412 with `If-None-Match: *`: something is at that name already.
    Exists,
    /// Any other 4xx but 401, or a failed CalDAV/CardDAV precondition.
    Refused(String),
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refused::Exists => f.write_str("HTTP 412: a resource of that name exists"),
            Refused::Refused(r) => f.write_str(r),
        }
    }
}

/// PUT `item` as a new resource `name` in `collection`.
async fn put(
    destination: &Store,
    collection: &str,
    name: &str,
    item: &Item,
    kind: Kind,
) -> Result<Result<(), Refused>, DavError> {
    let at = format!("{collection}{name}");
    let request = PutResource::new(&at).create(item.data.clone(), kind.content_type());
    match destination.client.request(request).await {
        Ok(_) => Ok(Ok(())),
        Err(WebDavError::BadStatusCode(s)) if s.as_u16() == 412 => Ok(Err(Refused::Exists)),
        // A 403 here, after the same credentials listed the collections, is about the
        // resource, not the login.
        Err(WebDavError::BadStatusCode(s)) if s.is_client_error() && s.as_u16() != 401 => {
            Ok(Err(Refused::Refused(format!("HTTP {s}"))))
        }
        Err(WebDavError::PreconditionFailed(pre)) => {
            Ok(Err(Refused::Refused(format!("precondition failed: {pre}"))))
        }
        Err(e) => Err(request_error(
            &destination.server,
            format!("writing {at}"),
            e,
        )),
    }
}

/// A file name of mailshift's own for `item`: its fingerprint, and the kind's extension.
fn fallback_name(item: &Item, kind: Kind) -> String {
    let ext = match kind {
        Kind::AddressBook => "vcf",
        Kind::Calendar => "ics",
    };
    format!("mailshift-{}.{ext}", fingerprint(&item.data))
}

async fn create(destination: &Store, source: &Collection, href: &str) -> Result<(), DavError> {
    let name = source.display_name.as_deref();
    let doing = format!("creating {} {href}", source.kind.noun());
    let result = match source.kind {
        Kind::AddressBook => {
            let mut r = CreateAddressBook::new(href);
            if let Some(n) = name {
                r = r.with_display_name(n);
            }
            destination.client.request(r).await.map(drop)
        }
        Kind::Calendar => {
            let mut r = CreateCalendar::new(href);
            if let Some(n) = name {
                r = r.with_display_name(n);
            }
            if let Some(c) = &source.color {
                r = r.with_colour(c);
            }
            destination.client.request(r).await.map(drop)
        }
    };
    result.map_err(|e| request_error(&destination.server, doing, e))
}
