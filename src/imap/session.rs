//! What mailshift does over an authenticated connection, split by side: the source can
//! only be read ([`SourceSession`] has no method that writes: folders are opened with
//! EXAMINE and bodies fetched with BODY.PEEK), the destination is written.
//!
//! Everything goes through the raw command layer ([`super::proto`]): commands are
//! pipelined where that saves round trips (APPEND with LITERAL+, STORE), and the response
//! codes the engine needs (APPENDUID, PERMANENTFLAGS, HIGHESTMODSEQ) are read from the
//! server's answers.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

use chrono::{DateTime, FixedOffset};
use imap_proto::{AttributeValue, MailboxDatum, NameAttribute, Response, ResponseCode, Status};

use super::cache;
use super::conn::Connection;
use super::diff::{Entry, Flag, FlagChange, FlagSet, FlagUpdate, Storable};
use super::folder_names::Role;
use super::folders::{FolderList, ListedFolder, guess_prefix};
use super::identity::MessageKey;
use super::mutf7;
use super::proto::{self, Completion, Event, quote, uid_set};

pub use super::proto::ImapError;

/// The fetch items that identify a message, without its body.
const META_ITEMS: &str = "(UID FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK[HEADER.FIELDS (MESSAGE-ID DATE FROM TO SUBJECT)])";
/// The fetch items of a message to copy: exact bytes, flags, INTERNALDATE. PEEK keeps
/// `\Seen` as it is.
const BODY_ITEMS: &str = "(UID FLAGS INTERNALDATE BODY.PEEK[])";
/// UIDs per STORE command line.
const UIDS_PER_COMMAND: usize = 500;

/// A server's folders as LIST shows them, names decoded, with the spelling each has on the
/// wire.
#[derive(Clone, Debug, Default)]
pub struct Listing {
    pub folders: Vec<ListedFolder>,
    /// The hierarchy delimiter (the first one LIST reports), `None` for a flat server.
    pub delimiter: Option<char>,
    /// The personal namespace prefix the server named (NAMESPACE), if it did.
    pub prefix: Option<String>,
    /// The other users' and shared namespaces the server named.
    pub foreign: Vec<super::folders::ForeignNamespace>,
    /// The server offers CREATE-SPECIAL-USE.
    pub create_special_use: bool,
    wire: HashMap<String, String>,
}

impl Listing {
    /// The folder list [`super::folders::folder_table`] takes: the personal namespace
    /// prefix as NAMESPACE gave it, else guessed from the names.
    pub fn folder_list(&self) -> FolderList {
        FolderList {
            delimiter: self.delimiter,
            prefix: self
                .prefix
                .clone()
                .unwrap_or_else(|| guess_prefix(&self.folders, self.delimiter)),
            folders: self.folders.clone(),
            foreign: self.foreign.clone(),
            create_special_use: self.create_special_use,
            refused: Vec::new(),
        }
    }

    /// The name of decoded folder `name` on the wire: as the server spelled it when it
    /// listed it, else modified UTF-7.
    pub fn wire_name(&self, name: &str) -> String {
        self.wire
            .get(name)
            .cloned()
            .unwrap_or_else(|| mutf7::encode(name))
    }

    pub fn get(&self, name: &str) -> Option<&ListedFolder> {
        self.folders.iter().find(|f| f.name == name)
    }
}

/// STATUS of a folder.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MailboxStatus {
    pub messages: u32,
    pub uid_next: Option<u32>,
    pub uid_validity: Option<u32>,
    pub highest_modseq: Option<u64>,
}

impl MailboxStatus {
    /// The snapshot a cache records, when the server gave UIDVALIDITY and UIDNEXT.
    pub fn snapshot(&self) -> Option<cache::FolderStatus> {
        Some(cache::FolderStatus {
            uidvalidity: self.uid_validity?,
            uidnext: self.uid_next?,
            messages: self.messages,
            highestmodseq: self.highest_modseq,
        })
    }
}

/// What SELECT or EXAMINE reported.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selected {
    pub exists: u32,
    pub uid_validity: Option<u32>,
    pub uid_next: Option<u32>,
    pub highest_modseq: Option<u64>,
    /// PERMANENTFLAGS, when the server sent them.
    pub permanent_flags: Option<Vec<String>>,
}

impl Selected {
    /// Which flags the folder keeps.
    pub fn storable(&self) -> Storable {
        match &self.permanent_flags {
            Some(list) => Storable::from_permanent_flags(list.iter().map(String::as_str)),
            None => Storable::Any,
        }
    }
}

/// A message fetched for copying: the exact bytes, flags and INTERNALDATE of the source's
/// copy.
#[derive(Clone, PartialEq, Eq)]
pub struct Outgoing {
    pub uid: u32,
    pub flags: FlagSet,
    pub internal_date: Option<DateTime<FixedOffset>>,
    pub body: Vec<u8>,
}

impl fmt::Debug for Outgoing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Outgoing")
            .field("uid", &self.uid)
            .field("flags", &self.flags)
            .field("internal_date", &self.internal_date)
            .field("size", &self.body.len())
            .finish()
    }
}

/// The outcome of appending one message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AppendOutcome {
    /// Stored; with `(UIDVALIDITY, UID)` when the server said (APPENDUID, RFC 4315).
    Appended(Option<(u32, u32)>),
    /// The server refused this message (too big, invalid, over quota): reported, skipped.
    Refused(String),
}

// ---------------------------------------------------------------------------------------
// Operations both sides share. Each reads only.

async fn list(conn: &mut Connection) -> Result<Listing, ImapError> {
    let extended = conn.has("LIST-EXTENDED");
    let command = match (extended, conn.has("SPECIAL-USE")) {
        // RFC 6154 lets servers leave special-use attributes out of a plain LIST; RFC 5258
        // gives subscription state in the same answer, saving an LSUB.
        (true, true) => "LIST \"\" \"*\" RETURN (SUBSCRIBED SPECIAL-USE)",
        (true, false) => "LIST \"\" \"*\" RETURN (SUBSCRIBED)",
        _ => "LIST \"\" \"*\"",
    };
    let mut raw: Vec<(String, Vec<String>, Option<char>)> = Vec::new();
    proto::run(conn, command, "LIST", |r| {
        if let Response::MailboxData(MailboxDatum::List(l)) = r {
            raw.push((
                l.name.to_string(),
                l.name_attributes.iter().map(attribute_name).collect(),
                l.delimiter.as_deref().and_then(|d| d.chars().next()),
            ));
        }
    })
    .await?;
    let subscribed: Option<Vec<String>> = if extended {
        None
    } else {
        let mut names = Vec::new();
        proto::run(conn, "LSUB \"\" \"*\"", "LSUB", |r| {
            if let Response::MailboxData(MailboxDatum::List(l)) = r {
                names.push(l.name.to_string());
            }
        })
        .await?;
        Some(names)
    };
    let mut listing = Listing {
        prefix: conn.personal_namespace.as_ref().map(|n| n.prefix.clone()),
        foreign: conn.foreign_namespaces.clone(),
        create_special_use: conn.has("CREATE-SPECIAL-USE"),
        ..Listing::default()
    };
    let subscribed: Option<HashSet<String>> = subscribed.map(|v| v.into_iter().collect());
    for (wire, attributes, delimiter) in raw {
        if listing.delimiter.is_none() {
            listing.delimiter = delimiter;
        }
        let is_subscribed = match &subscribed {
            Some(names) => names.contains(&wire),
            None => attributes
                .iter()
                .any(|a| a.eq_ignore_ascii_case("\\Subscribed")),
        };
        // A name that is not valid modified UTF-7 is kept as the server spells it: it can
        // still be opened, and re-encoding it would name a different folder.
        let decoded = mutf7::decode(&wire).unwrap_or_else(|_| wire.clone());
        let mut name = decoded.clone();
        let mut same_text_as = None;
        if let Some(first) = listing.wire.get(&decoded) {
            if *first == wire {
                // Listed twice, as some servers do: one folder.
                continue;
            }
            // Two folders whose names read the same: the later one is named apart, so that
            // both are copied and both appear in the report.
            same_text_as = Some((wire.clone(), first.clone()));
            name = (2..)
                .map(|n| format!("{decoded} ({n})"))
                .find(|n| !listing.wire.contains_key(n))
                .expect("some number is free");
        }
        listing.wire.insert(name.clone(), wire);
        listing.folders.push(ListedFolder {
            name,
            attributes,
            subscribed: is_subscribed,
            same_text_as,
        });
    }
    Ok(listing)
}

fn attribute_name(a: &NameAttribute<'_>) -> String {
    match a {
        NameAttribute::NoInferiors => "\\Noinferiors".into(),
        NameAttribute::NoSelect => "\\Noselect".into(),
        NameAttribute::Marked => "\\Marked".into(),
        NameAttribute::Unmarked => "\\Unmarked".into(),
        NameAttribute::All => "\\All".into(),
        NameAttribute::Archive => "\\Archive".into(),
        NameAttribute::Drafts => "\\Drafts".into(),
        NameAttribute::Flagged => "\\Flagged".into(),
        NameAttribute::Junk => "\\Junk".into(),
        NameAttribute::Sent => "\\Sent".into(),
        NameAttribute::Trash => "\\Trash".into(),
        NameAttribute::Extension(e) => e.to_string(),
        #[allow(unreachable_patterns)]
        _ => String::new(),
    }
}

async fn status(conn: &mut Connection, wire: &str) -> Result<MailboxStatus, ImapError> {
    let items = if conn.has("CONDSTORE") {
        "(MESSAGES UIDNEXT UIDVALIDITY HIGHESTMODSEQ)"
    } else {
        "(MESSAGES UIDNEXT UIDVALIDITY)"
    };
    let what = format!("STATUS {wire}");
    let mut st = MailboxStatus::default();
    proto::run(
        conn,
        &format!("STATUS {} {items}", quote(wire)?),
        &what,
        |r| {
            if let Response::MailboxData(MailboxDatum::Status { status, .. }) = r {
                for a in status {
                    match a {
                        imap_proto::StatusAttribute::Messages(n) => st.messages = *n,
                        imap_proto::StatusAttribute::UidNext(n) => st.uid_next = Some(*n),
                        imap_proto::StatusAttribute::UidValidity(n) => st.uid_validity = Some(*n),
                        imap_proto::StatusAttribute::HighestModSeq(n) => {
                            st.highest_modseq = Some(*n)
                        }
                        _ => {}
                    }
                }
            }
        },
    )
    .await?;
    Ok(st)
}

/// SELECT or EXAMINE.
async fn open(conn: &mut Connection, verb: &str, wire: &str) -> Result<Selected, ImapError> {
    let what = format!("{verb} {wire}");
    let mut sel = Selected::default();
    proto::run(
        conn,
        &format!("{verb} {}", quote(wire)?),
        &what,
        |r| match r {
            Response::MailboxData(MailboxDatum::Exists(n)) => sel.exists = *n,
            Response::Data {
                status: Status::Ok,
                outcome,
            } => match &outcome.code {
                Some(ResponseCode::UidValidity(n)) => sel.uid_validity = Some(*n),
                Some(ResponseCode::UidNext(n)) => sel.uid_next = Some(*n),
                Some(ResponseCode::HighestModSeq(n)) => sel.highest_modseq = Some(*n),
                Some(ResponseCode::PermanentFlags(list)) => {
                    sel.permanent_flags = Some(list.iter().map(|f| f.to_string()).collect());
                }
                _ => {}
            },
            _ => {}
        },
    )
    .await?;
    Ok(sel)
}

/// The attributes of one FETCH response that mailshift reads.
#[derive(Default)]
struct Fetched<'a> {
    uid: Option<u32>,
    flags: Option<FlagSet>,
    internal_date: Option<DateTime<FixedOffset>>,
    size: Option<u32>,
    section: Option<&'a [u8]>,
    has_section: bool,
}

fn fetched<'a>(attrs: &'a [AttributeValue<'_>]) -> Fetched<'a> {
    let mut f = Fetched::default();
    for a in attrs {
        match a {
            AttributeValue::Uid(u) => f.uid = Some(*u),
            AttributeValue::Flags(list) => {
                f.flags = Some(Flag::parse_all(list.iter().map(|s| s.as_ref())));
            }
            AttributeValue::InternalDate(d) => f.internal_date = proto::parse_imap_date(d),
            AttributeValue::Rfc822Size(n) => f.size = Some(*n),
            AttributeValue::BodySection { data, .. } => {
                f.has_section = true;
                f.section = data.as_deref();
            }
            AttributeValue::Rfc822(data) => {
                f.has_section = true;
                f.section = data.as_deref();
            }
            _ => {}
        }
    }
    f
}

/// Identity, flags, date and size of the messages in `uids` (a UID set) of the open
/// folder.
async fn fetch_meta(
    conn: &mut Connection,
    folder: &str,
    uids: &str,
) -> Result<Vec<Entry>, ImapError> {
    let what = format!("FETCH {uids} in {folder}");
    let mut out: BTreeMap<u32, Entry> = BTreeMap::new();
    proto::run(
        conn,
        &format!("UID FETCH {uids} {META_ITEMS}"),
        &what,
        |r| {
            if let Response::Fetch(_, attrs) = r {
                let f = fetched(attrs);
                // Unsolicited FETCH responses (flag changes by other sessions) carry only
                // some items: only complete answers count.
                if let (Some(uid), Some(size), true) = (f.uid, f.size, f.has_section) {
                    out.insert(
                        uid,
                        Entry {
                            uid,
                            key: MessageKey::from_header(f.section.unwrap_or_default()),
                            flags: f.flags.unwrap_or_default(),
                            internal_date: f.internal_date,
                            size: u64::from(size),
                        },
                    );
                }
            }
        },
    )
    .await?;
    Ok(out.into_values().collect())
}

/// Current flags of the messages in `uids`; with `changed_since`, only of those whose
/// flags changed after that MODSEQ (CONDSTORE, RFC 7162).
async fn fetch_flags(
    conn: &mut Connection,
    folder: &str,
    uids: &str,
    changed_since: Option<u64>,
) -> Result<Vec<(u32, FlagSet)>, ImapError> {
    let what = format!("FETCH flags {uids} in {folder}");
    let command = match changed_since {
        Some(m) => format!("UID FETCH {uids} (UID FLAGS) (CHANGEDSINCE {m})"),
        None => format!("UID FETCH {uids} (UID FLAGS)"),
    };
    let mut out: BTreeMap<u32, FlagSet> = BTreeMap::new();
    proto::run(conn, &command, &what, |r| {
        if let Response::Fetch(_, attrs) = r {
            let f = fetched(attrs);
            if let (Some(uid), Some(flags)) = (f.uid, f.flags) {
                out.insert(uid, flags);
            }
        }
    })
    .await?;
    Ok(out.into_iter().collect())
}

async fn logout(conn: &mut Connection) {
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        proto::run(conn, "LOGOUT", "LOGOUT", |_| {}),
    )
    .await;
}

// ---------------------------------------------------------------------------------------

/// The source server: everything here reads. Folders are opened with EXAMINE and bodies
/// fetched with BODY.PEEK, so not even `\Seen` changes.
#[derive(Debug)]
pub struct SourceSession {
    conn: Connection,
    examined: Option<String>,
}

impl SourceSession {
    pub fn new(conn: Connection) -> Self {
        SourceSession {
            conn,
            examined: None,
        }
    }

    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    pub async fn list(&mut self) -> Result<Listing, ImapError> {
        list(&mut self.conn).await
    }

    pub async fn status(&mut self, wire: &str) -> Result<MailboxStatus, ImapError> {
        status(&mut self.conn, wire).await
    }

    /// Opens `wire` read-only (EXAMINE).
    pub async fn examine(&mut self, wire: &str) -> Result<Selected, ImapError> {
        self.examined = None;
        let sel = open(&mut self.conn, "EXAMINE", wire).await?;
        self.examined = Some(wire.to_owned());
        Ok(sel)
    }

    fn folder(&self) -> String {
        self.examined.clone().unwrap_or_default()
    }

    /// Identity and flags of the messages in `uids` (a UID set) of the examined folder.
    pub async fn fetch_meta(&mut self, uids: &str) -> Result<Vec<Entry>, ImapError> {
        let folder = self.folder();
        fetch_meta(&mut self.conn, &folder, uids).await
    }

    /// Flags of the messages in `uids`, optionally only those changed since a MODSEQ.
    pub async fn fetch_flags(
        &mut self,
        uids: &str,
        changed_since: Option<u64>,
    ) -> Result<Vec<(u32, FlagSet)>, ImapError> {
        let folder = self.folder();
        fetch_flags(&mut self.conn, &folder, uids, changed_since).await
    }

    /// The exact bytes of the messages with `uids` (ascending), with flags and INTERNALDATE,
    /// as sent (a message expunged meanwhile is simply not in the answer). None of them was
    /// listed larger than `largest` bytes: a
    /// literal announced larger than that (with some slack) ends the connection before it
    /// is read (see [`super::guard`]).
    pub async fn fetch_bodies(
        &mut self,
        uids: &[u32],
        largest: u64,
    ) -> Result<Vec<Outgoing>, ImapError> {
        if uids.is_empty() {
            return Ok(Vec::new());
        }
        let set = uid_set(uids);
        let what = format!("FETCH bodies {set} in {}", self.folder());
        let asked: HashSet<u32> = uids.iter().copied().collect();
        // Everything the server sent, as sent: whether it is what was asked for is checked
        // by the caller, which knows the listing. Memory stays bounded whatever it sends: a
        // UID not asked for is kept without its body, and no UID with more than two.
        let mut kept: HashMap<u32, u8> = HashMap::with_capacity(uids.len());
        let mut out: Vec<Outgoing> = Vec::with_capacity(uids.len());
        let stream = self.conn.session.get_mut();
        let before = stream.literal_limit();
        stream.set_literal_limit(super::guard::literal_limit_for(largest));
        let result = proto::run(
            &mut self.conn,
            &format!("UID FETCH {set} {BODY_ITEMS}"),
            &what,
            |r| {
                if let Response::Fetch(_, attrs) = r {
                    let f = fetched(attrs);
                    if let (Some(uid), Some(body)) = (f.uid, f.section) {
                        let copies = kept.entry(uid).or_default();
                        if *copies >= 2 {
                            return;
                        }
                        *copies += 1;
                        out.push(Outgoing {
                            uid,
                            flags: f.flags.unwrap_or_default(),
                            internal_date: f.internal_date,
                            body: if asked.contains(&uid) {
                                body.to_vec()
                            } else {
                                Vec::new()
                            },
                        });
                    }
                }
            },
        )
        .await;
        if result.is_ok() && self.conn.has("BINARY") {
            self.restore_nuls(&mut out, &asked, largest, &what).await?;
        }
        self.conn.session.get_mut().set_literal_limit(before);
        result?;
        Ok(out)
    }

    /// Takes the stored bytes (BINARY, RFC 3516) of the messages whose `BODY[]` may show NULs
    /// as 0x80, where they are that message with its NULs (see [`super::binary`]).
    async fn restore_nuls(
        &mut self,
        out: &mut [Outgoing],
        asked: &HashSet<u32>,
        largest: u64,
        what: &str,
    ) -> Result<(), ImapError> {
        let limit = u32::try_from(super::guard::literal_limit_for(largest)).unwrap_or(u32::MAX);
        for m in out.iter_mut() {
            if !asked.contains(&m.uid) || !super::binary::may_hide_nuls(&m.body) {
                continue;
            }
            let timeout = proto::deadline(&self.conn) - tokio::time::Instant::now();
            let stream = self.conn.session.get_mut();
            match super::binary::fetch(stream, m.uid, limit, timeout).await {
                Ok(Some(stored)) if super::binary::restores_nuls(&m.body, &stored) => {
                    m.body = stored;
                }
                Ok(_) => {}
                Err(e) => return Err(ImapError::io(what, e)),
            }
        }
        Ok(())
    }

    pub async fn logout(mut self) {
        logout(&mut self.conn).await;
    }
}

/// The destination server: where folders are created and messages appended.
#[derive(Debug)]
pub struct DestinationSession {
    conn: Connection,
    selected: Option<String>,
}

impl DestinationSession {
    pub fn new(conn: Connection) -> Self {
        DestinationSession {
            conn,
            selected: None,
        }
    }

    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    pub async fn list(&mut self) -> Result<Listing, ImapError> {
        list(&mut self.conn).await
    }

    pub async fn status(&mut self, wire: &str) -> Result<MailboxStatus, ImapError> {
        status(&mut self.conn, wire).await
    }

    /// Whether the server takes messages with NUL bytes (APPEND with a literal8, BINARY).
    pub fn takes_binary(&self) -> bool {
        self.conn.has("BINARY")
    }

    /// Largest message the server takes (APPENDLIMIT, RFC 7889), if it says.
    pub fn append_limit(&self) -> Option<u64> {
        self.conn
            .capabilities
            .iter()
            .find_map(|c| c.strip_prefix("APPENDLIMIT=")?.parse().ok())
    }

    /// Whether APPEND answers carry the new message's UID (UIDPLUS, RFC 4315).
    pub fn has_uidplus(&self) -> bool {
        self.conn.has("UIDPLUS")
    }

    /// Creates `wire`, asking for its special use where the server offers
    /// CREATE-SPECIAL-USE. A folder that already exists is not an error.
    pub async fn create(&mut self, wire: &str, role: Option<Role>) -> Result<(), ImapError> {
        let use_attr = role.and_then(Role::special_use);
        let command = match use_attr {
            Some(attr) if self.conn.has("CREATE-SPECIAL-USE") => {
                format!("CREATE {} (USE ({attr}))", quote(wire)?)
            }
            _ => format!("CREATE {}", quote(wire)?),
        };
        let what = format!("CREATE {wire}");
        let tag = proto::send(&mut self.conn, &command, &what).await?;
        match proto::finish(&mut self.conn, &tag, &what, |_| {}).await? {
            Completion::Ok(_) => Ok(()),
            Completion::Refused(r) if r.to_ascii_uppercase().contains("ALREADYEXISTS") => Ok(()),
            Completion::Refused(reason) => Err(ImapError::Refused { what, reason }),
        }
    }

    pub async fn subscribe(&mut self, wire: &str) -> Result<(), ImapError> {
        let what = format!("SUBSCRIBE {wire}");
        proto::run(
            &mut self.conn,
            &format!("SUBSCRIBE {}", quote(wire)?),
            &what,
            |_| {},
        )
        .await
        .map(drop)
    }

    /// SELECT `wire` (read-write, for STORE).
    pub async fn select(&mut self, wire: &str) -> Result<Selected, ImapError> {
        self.selected = None;
        let sel = open(&mut self.conn, "SELECT", wire).await?;
        self.selected = Some(wire.to_owned());
        Ok(sel)
    }

    /// Opens `wire` read-only (EXAMINE), for verify.
    pub async fn examine(&mut self, wire: &str) -> Result<Selected, ImapError> {
        self.selected = None;
        let sel = open(&mut self.conn, "EXAMINE", wire).await?;
        self.selected = Some(wire.to_owned());
        Ok(sel)
    }

    fn folder(&self) -> String {
        self.selected.clone().unwrap_or_default()
    }

    pub async fn fetch_meta(&mut self, uids: &str) -> Result<Vec<Entry>, ImapError> {
        let folder = self.folder();
        fetch_meta(&mut self.conn, &folder, uids).await
    }

    /// Applies flag updates in the selected folder, pipelined: `UID STORE +FLAGS.SILENT` /
    /// `-FLAGS.SILENT` (deltas, which applied twice do no more than once) or
    /// `FLAGS.SILENT` (replacements). Returns the updates the server refused, with why.
    pub async fn store(
        &mut self,
        updates: &[FlagUpdate],
    ) -> Result<Vec<(FlagUpdate, String)>, ImapError> {
        // Same change, one command for many UIDs.
        let mut groups: BTreeMap<(u8, String), Vec<usize>> = BTreeMap::new();
        for (i, u) in updates.iter().enumerate() {
            let mut add = |op: u8, flags: &FlagSet| {
                let list = flags
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(" ");
                groups.entry((op, list)).or_default().push(i);
            };
            match &u.change {
                FlagChange::Delta { add: a, remove: r } => {
                    if !a.is_empty() {
                        add(b'+', a);
                    }
                    if !r.is_empty() {
                        add(b'-', r);
                    }
                }
                FlagChange::Replace(set) => add(b'=', set),
            }
        }
        let what = format!("STORE flags in {}", self.folder());
        let mut sent: Vec<(String, Vec<usize>)> = Vec::new();
        for ((op, list), idx) in &groups {
            let mut idx = idx.clone();
            idx.sort_by_key(|&i| updates[i].dest_uid);
            for chunk in idx.chunks(UIDS_PER_COMMAND) {
                let mut uids: Vec<u32> = chunk.iter().map(|&i| updates[i].dest_uid).collect();
                uids.dedup();
                let item = match op {
                    b'+' => "+FLAGS.SILENT",
                    b'-' => "-FLAGS.SILENT",
                    _ => "FLAGS.SILENT",
                };
                let command = format!("UID STORE {} {item} ({list})", uid_set(&uids));
                let tag = proto::send(&mut self.conn, &command, &what).await?;
                sent.push((tag, chunk.to_vec()));
            }
        }
        let Some((last, _)) = sent.last().cloned() else {
            return Ok(Vec::new());
        };
        let mut refused_tags: HashMap<String, String> = HashMap::new();
        let end = proto::finish(&mut self.conn, &last, &what, |ev| {
            if let Event::Other {
                tag,
                completion: Completion::Refused(r),
            } = ev
            {
                refused_tags.insert(tag.to_owned(), r);
            }
        })
        .await?;
        if let Completion::Refused(r) = end {
            refused_tags.insert(last, r);
        }
        let mut failed = Vec::new();
        for (tag, idx) in sent {
            if let Some(reason) = refused_tags.get(&tag) {
                failed.extend(idx.iter().map(|&i| (updates[i].clone(), reason.clone())));
            }
        }
        Ok(failed)
    }

    /// Appends `messages` to `wire`, one outcome per message in order. With LITERAL+ the
    /// APPENDs are pipelined: all sent, then all answers read, so a batch costs one round
    /// trip instead of two per message; without it each message waits for the server's
    /// go-ahead (a synchronizing literal). A message the server refuses does not stop the
    /// rest. APPENDUID is read from each answer when the server offers UIDPLUS.
    pub async fn append(
        &mut self,
        wire: &str,
        messages: &[Outgoing],
    ) -> Result<Vec<AppendOutcome>, ImapError> {
        // A literal may not hold NUL: without BINARY, NULs go as 0x80 (what `BODY[]` shows
        // on a server that stores them), and the caller reports those messages as inexact.
        let replaced: Vec<Outgoing>;
        let messages = if !self.takes_binary()
            && messages
                .iter()
                .any(|m| super::binary::needs_literal8(&m.body))
        {
            replaced = messages
                .iter()
                .map(|m| Outgoing {
                    body: m
                        .body
                        .iter()
                        .map(|&b| if b == 0 { 0x80 } else { b })
                        .collect(),
                    ..m.clone()
                })
                .collect();
            &replaced[..]
        } else {
            messages
        };
        let limit = self.append_limit();
        let mut outcomes = vec![AppendOutcome::Appended(None); messages.len()];
        let mut to_send = Vec::new();
        for (i, m) in messages.iter().enumerate() {
            match limit {
                Some(l) if m.body.len() as u64 > l => {
                    outcomes[i] = AppendOutcome::Refused(format!(
                        "{} bytes is larger than the destination's APPENDLIMIT of {l} bytes",
                        m.body.len()
                    ));
                }
                _ => to_send.push(i),
            }
        }
        let mailbox = quote(wire)?;
        let what = format!("APPEND to {wire}");
        let uidplus = self.has_uidplus();
        if self.conn.has("LITERAL+") {
            // One MULTIAPPEND stores the batch in one transaction (far cheaper for the
            // server than a transaction per message). It is all or nothing: when it is
            // refused, the messages are appended one by one to find which one the server
            // will not take.
            if self.conn.has("MULTIAPPEND") && to_send.len() > 1 {
                match self
                    .multiappend(&mailbox, &what, messages, &to_send)
                    .await?
                {
                    Completion::Ok(done) => {
                        let uids = done
                            .append_uid
                            .filter(|(_, u)| uidplus && u.len() == to_send.len());
                        for (k, &i) in to_send.iter().enumerate() {
                            outcomes[i] =
                                AppendOutcome::Appended(uids.as_ref().map(|(v, u)| (*v, u[k])));
                        }
                        return Ok(outcomes);
                    }
                    Completion::Refused(reason) => {
                        tracing::debug!(folder = %wire, reason = %reason, "MULTIAPPEND refused; appending one by one");
                    }
                }
            }
            let mut tags: Vec<(String, usize)> = Vec::with_capacity(to_send.len());
            for &i in &to_send {
                let command = append_command(&mailbox, &messages[i], true);
                let tag = proto::send(&mut self.conn, &command, &what).await?;
                proto::write_raw(&mut self.conn, &messages[i].body, &what).await?;
                proto::write_raw(&mut self.conn, b"\r\n", &what).await?;
                tags.push((tag, i));
            }
            proto::flush(&mut self.conn, &what).await?;
            let Some((last, _)) = tags.last().cloned() else {
                return Ok(outcomes);
            };
            let mut done: HashMap<String, Completion> = HashMap::new();
            let end = proto::finish(&mut self.conn, &last, &what, |ev| {
                if let Event::Other { tag, completion } = ev {
                    done.insert(tag.to_owned(), completion);
                }
            })
            .await?;
            done.insert(last, end);
            for (tag, i) in tags {
                outcomes[i] = match done.remove(&tag) {
                    Some(Completion::Ok(d)) => AppendOutcome::Appended(single(d, uidplus)),
                    Some(Completion::Refused(r)) => AppendOutcome::Refused(r),
                    None => {
                        return Err(ImapError::Protocol {
                            what,
                            reason: format!("no answer to the APPEND tagged {tag}"),
                        });
                    }
                };
            }
        } else {
            for &i in &to_send {
                outcomes[i] = self
                    .append_synchronizing(&mailbox, &what, &messages[i])
                    .await?;
                if let AppendOutcome::Appended(uid) = &mut outcomes[i]
                    && !uidplus
                {
                    *uid = None;
                }
            }
        }
        Ok(outcomes)
    }

    /// `APPEND mailbox (flags) date {n+} ... (flags) date {n+} ...` (RFC 3502, with
    /// LITERAL+): the messages at `which`, in one command.
    async fn multiappend(
        &mut self,
        mailbox: &str,
        what: &str,
        messages: &[Outgoing],
        which: &[usize],
    ) -> Result<Completion, ImapError> {
        let first = append_command(mailbox, &messages[which[0]], true);
        let tag = proto::send(&mut self.conn, &first, what).await?;
        proto::write_raw(&mut self.conn, &messages[which[0]].body, what).await?;
        for &i in &which[1..] {
            let m = &messages[i];
            let part = append_command("", m, true);
            // `APPEND  (flags) ...` → ` (flags) ...`: the same item without command and name.
            let item = part.trim_start_matches("APPEND ").trim_start();
            proto::write_raw(&mut self.conn, format!(" {item}\r\n").as_bytes(), what).await?;
            proto::write_raw(&mut self.conn, &m.body, what).await?;
        }
        proto::write_raw(&mut self.conn, b"\r\n", what).await?;
        proto::flush(&mut self.conn, what).await?;
        proto::finish(&mut self.conn, &tag, what, |_| {}).await
    }

    /// One APPEND with a synchronizing literal: the command line, the server's `+`, the
    /// message, the answer.
    async fn append_synchronizing(
        &mut self,
        mailbox: &str,
        what: &str,
        m: &Outgoing,
    ) -> Result<AppendOutcome, ImapError> {
        let command = append_command(mailbox, m, false);
        let tag = proto::send(&mut self.conn, &command, what).await?;
        let deadline = proto::deadline(&self.conn);
        loop {
            let step = proto::next(&mut self.conn, what, deadline, |resp| match resp {
                Response::Continue(_) => Ok(Some(None)),
                Response::Done {
                    tag: t,
                    status,
                    outcome,
                } if t.0 == tag => {
                    // Refused before the message was sent (too large, no such folder).
                    let text = outcome.information.as_deref().unwrap_or("").to_owned();
                    Ok(Some(Some(match status {
                        Status::Ok => AppendOutcome::Appended(None),
                        _ => AppendOutcome::Refused(if text.is_empty() {
                            format!("{status:?}")
                        } else {
                            text
                        }),
                    })))
                }
                Response::Data {
                    status: Status::Bye,
                    outcome,
                } => Err(proto::bye(what, outcome.information.as_deref())),
                _ => Ok(None),
            })
            .await??;
            match step {
                Some(None) => break,
                Some(Some(outcome)) => return Ok(outcome),
                None => {}
            }
        }
        proto::write_raw(&mut self.conn, &m.body, what).await?;
        proto::write_raw(&mut self.conn, b"\r\n", what).await?;
        proto::flush(&mut self.conn, what).await?;
        Ok(
            match proto::finish(&mut self.conn, &tag, what, |_| {}).await? {
                Completion::Ok(d) => AppendOutcome::Appended(single(d, true)),
                Completion::Refused(r) => AppendOutcome::Refused(r),
            },
        )
    }

    pub async fn logout(mut self) {
        logout(&mut self.conn).await;
    }
}

/// The UID of a single appended message, when the server said and is trusted to.
fn single(done: proto::Done, uidplus: bool) -> Option<(u32, u32)> {
    match done.append_uid {
        Some((validity, uids)) if uidplus && uids.len() == 1 => Some((validity, uids[0])),
        _ => None,
    }
}

/// `APPEND "mailbox" (flags) "date" {n+}` (without the literal).
/// The APPEND command line for `m`; a message with NULs goes in a literal8 (`~{n}`,
/// RFC 3516), which [`DestinationSession::append`] sends only to a server offering BINARY.
fn append_command(mailbox: &str, m: &Outgoing, non_synchronizing: bool) -> String {
    let date = m
        .internal_date
        .map(|d| format!(" {}", proto::imap_date(d)))
        .unwrap_or_default();
    format!(
        "APPEND {mailbox} {}{date} {}{{{}{}}}",
        flag_list(&m.flags),
        if super::binary::needs_literal8(&m.body) {
            "~"
        } else {
            ""
        },
        m.body.len(),
        if non_synchronizing { "+" } else { "" }
    )
}

/// `(\Seen kw)`: flags as an APPEND or STORE list.
fn flag_list(flags: &FlagSet) -> String {
    format!(
        "({})",
        flags
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(" ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn append_commands() {
        let m = Outgoing {
            uid: 1,
            flags: Flag::parse_all(["\\Seen", "$Label1", "\\Recent"]),
            internal_date: DateTime::parse_from_rfc3339("2019-03-07T08:09:10+05:30").ok(),
            body: b"Subject: x\r\n\r\nhi\r\n".to_vec(),
        };
        assert_eq!(
            append_command("\"INBOX\"", &m, true),
            "APPEND \"INBOX\" (\\Seen $Label1) \"07-Mar-2019 08:09:10 +0530\" {18+}"
        );
        let bare = Outgoing {
            flags: FlagSet::new(),
            internal_date: None,
            ..m
        };
        assert_eq!(
            append_command("\"a\"", &bare, false),
            "APPEND \"a\" () {18}"
        );
    }
}
