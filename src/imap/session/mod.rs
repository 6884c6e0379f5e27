//! What mailshift does over an authenticated connection, split by side: the source can
//! only be read ([`ImapSource`] has no method that writes: folders are opened with
//! EXAMINE and bodies fetched with BODY.PEEK), the destination is written.
//!
//! Everything goes through the raw command layer ([`super::proto`]): commands are
//! pipelined where that saves round trips (APPEND with LITERAL+, STORE), and the response
//! codes the engine needs (APPENDUID, PERMANENTFLAGS, HIGHESTMODSEQ) are read from the
//! server's answers.
//!
//! [`source`] holds the read-only side, [`destination`] the written one; what both use
//! (LIST, STATUS, opening a folder, listing its messages) is here.

mod destination;
mod source;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

use chrono::{DateTime, FixedOffset};
use imap_proto::{AttributeValue, MailboxDatum, NameAttribute, Response, ResponseCode, Status};

use super::command::{Command, FetchItems, UidSet, WireName};
use super::conn::Connection;
use super::diff::{Entry, Flag, FlagChange, FlagSet, FlagUpdate, Storable};
use super::folder_names::Role;
use super::folders::{FolderList, LabelPass, ListedFolder, guess_prefix};
use super::identity::MessageKey;
use super::mutf7;
use super::proto::{self, Completion, Event};

pub use super::proto::ImapError;

pub use destination::DestinationSession;
pub use source::{BodyFetches, ImapSource};

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
    /// The server is Gmail (`X-GM-EXT-1`): its folders are labels and views.
    pub gmail: bool,
    /// Folders of what is not mail, not listed (a PST's contacts and calendars).
    pub not_mail: Vec<super::report::NotMail>,
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
            gmail: self.gmail,
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

    /// Adds a folder named `wire` at its source (a source that is not an IMAP server
    /// lists its folders itself).
    pub(crate) fn push_folder(&mut self, folder: ListedFolder, wire: String) {
        self.wire.insert(folder.name.clone(), wire);
        self.folders.push(folder);
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
    pub fn snapshot(&self) -> Option<super::status::FolderStatus> {
        Some(super::status::FolderStatus {
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
    // RFC 6154 lets servers leave special-use attributes out of a plain LIST; RFC 5258
    // gives subscription state in the same answer, saving an LSUB.
    let command = Command::List {
        extended,
        special_use: conn.has("SPECIAL-USE"),
    };
    let mut raw: Vec<(String, Vec<String>, Option<char>)> = Vec::new();
    proto::run(conn, &command, "LIST", |r| {
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
        proto::run(conn, &Command::Lsub, "LSUB", |r| {
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
        gmail: conn.has("X-GM-EXT-1"),
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
    let command = Command::Status {
        mailbox: WireName::new(wire)?,
        modseq: conn.has("CONDSTORE"),
    };
    let what = format!("STATUS {wire}");
    let mut st = MailboxStatus::default();
    proto::run(conn, &command, &what, |r| {
        if let Response::MailboxData(MailboxDatum::Status { status, .. }) = r {
            read_status(status, &mut st);
        }
    })
    .await?;
    Ok(st)
}

/// STATUS commands sent before the first answer is read: a connection's share of a
/// re-sync's snapshots costs one round trip per this many folders.
const STATUS_PIPELINE: usize = 64;

/// STATUS of each of `wires`, pipelined (a re-sync with nothing to do is mostly these). An
/// entry is `None` where the server refused (or the name cannot be sent): the folder's pass
/// asks again on its own and meets the refusal there, as without this.
async fn statuses(
    conn: &mut Connection,
    wires: &[String],
) -> Result<Vec<Option<MailboxStatus>>, ImapError> {
    let modseq = conn.has("CONDSTORE");
    let mut out: Vec<Option<MailboxStatus>> = vec![None; wires.len()];
    let indices: Vec<usize> = (0..wires.len()).collect();
    for chunk in indices.chunks(STATUS_PIPELINE) {
        let mut sent: Vec<(String, usize)> = Vec::with_capacity(chunk.len());
        for &i in chunk {
            let Ok(mailbox) = WireName::new(&wires[i]) else {
                continue;
            };
            let what = format!("STATUS {}", wires[i]);
            let tag = proto::send(conn, &Command::Status { mailbox, modseq }, &what).await?;
            sent.push((tag, i));
        }
        let Some((last, _)) = sent.last().cloned() else {
            continue;
        };
        // Servers may run pipelined commands at once (Dovecot does): a STATUS response is
        // told apart by the name it carries.
        let mut got: Vec<Option<MailboxStatus>> = vec![None; sent.len()];
        let mut refused = vec![false; sent.len()];
        let end = proto::finish(conn, &last, "STATUS", |ev| match ev {
            Event::Untagged(Response::MailboxData(MailboxDatum::Status { mailbox, status })) => {
                let k = sent
                    .iter()
                    .zip(&got)
                    .position(|((_, i), g)| g.is_none() && same_mailbox(mailbox, &wires[*i]));
                if let Some(k) = k {
                    read_status(status, got[k].get_or_insert_default());
                }
            }
            Event::Untagged(_) => {}
            Event::Other { tag, completion } => {
                if let Some(k) = sent.iter().position(|(t, _)| t == tag) {
                    refused[k] = matches!(completion, Completion::Refused(_));
                }
            }
        })
        .await?;
        if let Some(k) = refused.last_mut() {
            *k = matches!(end, Completion::Refused(_));
        }
        for (k, (_, i)) in sent.iter().enumerate() {
            if !refused[k] {
                out[*i] = got[k];
            }
        }
    }
    Ok(out)
}

/// Whether a STATUS response's mailbox name is `wire`'s (INBOX in any case).
fn same_mailbox(answered: &str, wire: &str) -> bool {
    answered == wire
        || (answered.eq_ignore_ascii_case("INBOX") && wire.eq_ignore_ascii_case("INBOX"))
}

fn read_status(status: &[imap_proto::StatusAttribute], st: &mut MailboxStatus) {
    for a in status {
        match a {
            imap_proto::StatusAttribute::Messages(n) => st.messages = *n,
            imap_proto::StatusAttribute::UidNext(n) => st.uid_next = Some(*n),
            imap_proto::StatusAttribute::UidValidity(n) => st.uid_validity = Some(*n),
            imap_proto::StatusAttribute::HighestModSeq(n) => st.highest_modseq = Some(*n),
            _ => {}
        }
    }
}

/// SELECT `wire`, or EXAMINE it when `read_only`.
async fn open(conn: &mut Connection, wire: &str, read_only: bool) -> Result<Selected, ImapError> {
    let (command, what) = open_command(wire, read_only)?;
    let mut sel = Selected::default();
    proto::run(conn, &command, &what, |r| read_selected(r, &mut sel)).await?;
    Ok(sel)
}

fn open_command(wire: &str, read_only: bool) -> Result<(Command<'_>, String), ImapError> {
    let mailbox = WireName::new(wire)?;
    let command = if read_only {
        Command::Examine(mailbox)
    } else {
        Command::Select(mailbox)
    };
    let what = format!("{} {wire}", if read_only { "EXAMINE" } else { "SELECT" });
    Ok((command, what))
}

/// What a SELECT or EXAMINE response tells of the folder.
fn read_selected(r: &Response<'_>, sel: &mut Selected) {
    match r {
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
    }
}

/// Opens `wire` (SELECT, or EXAMINE when `read_only`) and lists its messages in `uids`, the
/// listing sent right behind the open without waiting for it: across a WAN that is a round
/// trip less per folder. An empty folder may refuse `n:*` (some servers call `*` of an empty
/// folder invalid): that is an empty listing. A refused open is the error, whatever the
/// listing's answer (it then ran on no folder, or on the one open before).
async fn open_and_list(
    conn: &mut Connection,
    wire: &str,
    read_only: bool,
    uids: &UidSet,
    labels: Option<LabelPass>,
) -> Result<(Selected, Vec<Entry>), ImapError> {
    let (open, open_what) = open_command(wire, read_only)?;
    let list_what = format!("FETCH {uids} in {wire}");
    let open_tag = proto::send(conn, &open, &open_what).await?;
    let list_tag = proto::send(conn, &meta_command(uids, labels), &list_what).await?;
    let mut sel = Selected::default();
    let mut opened: Option<Completion> = None;
    let mut out = Vec::new();
    let listed = proto::finish(conn, &list_tag, &list_what, |ev| match ev {
        Event::Untagged(r) if opened.is_none() => read_selected(r, &mut sel),
        Event::Untagged(r) => read_meta(r, labels, &mut out),
        Event::Other { tag, completion } if tag == open_tag => opened = Some(completion),
        Event::Other { .. } => {}
    })
    .await?;
    match opened {
        Some(Completion::Ok(_)) => {}
        Some(Completion::Refused(reason)) => return Err(proto::refused(&open_what, reason)),
        None => {
            return Err(ImapError::Protocol {
                what: open_what,
                reason: "the server completed the listing before the open".into(),
            });
        }
    }
    match listed {
        Completion::Ok(_) => Ok((sel, by_uid(out))),
        Completion::Refused(_) if sel.exists == 0 => Ok((sel, Vec::new())),
        Completion::Refused(reason) => Err(proto::refused(&list_what, reason)),
    }
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
    /// Gmail's `X-GM-LABELS`, when asked for.
    labels: Option<Vec<String>>,
}

impl Fetched<'_> {
    /// The flags as a Gmail pass reads them (see [`crate::imap::gmail::apply`]): `None`
    /// when the pass leaves the message to another folder.
    fn flags_for(&self, pass: Option<LabelPass>) -> Option<FlagSet> {
        let flags = self.flags.clone().unwrap_or_default();
        match pass {
            Some(pass) => {
                crate::imap::gmail::apply(pass, self.labels.as_deref().unwrap_or_default(), flags)
            }
            None => Some(flags),
        }
    }
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
            AttributeValue::GmailLabels(labels) => {
                f.labels = Some(labels.iter().map(|l| unescaped(l)).collect());
            }
            _ => {}
        }
    }
    f
}

/// A label as the server wrote it: Gmail quotes system labels (`"\\Inbox"`), and the
/// parser hands quoted strings over with their escapes.
fn unescaped(label: &str) -> String {
    let mut out = String::with_capacity(label.len());
    let mut chars = label.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(next @ ('\\' | '"')) => out.push(next),
                Some(other) => {
                    out.push('\\');
                    out.push(other);
                }
                None => out.push('\\'),
            },
            c => out.push(c),
        }
    }
    out
}

/// Identity, flags, date and size of the messages in `uids` (a UID set) of the open
/// folder.
async fn fetch_meta(
    conn: &mut Connection,
    folder: &str,
    uids: &UidSet,
    labels: Option<LabelPass>,
) -> Result<Vec<Entry>, ImapError> {
    let what = format!("FETCH {uids} in {folder}");
    let mut out = Vec::new();
    proto::run(conn, &meta_command(uids, labels), &what, |r| {
        read_meta(r, labels, &mut out)
    })
    .await?;
    Ok(by_uid(out))
}

/// A listing in UID order, each UID once (the last answer for it, as a map keyed by UID
/// would keep). Collected as a vector, sorted once and compacted in place: a map of a
/// million entries, or a second vector the entries are moved into, would hold about twice
/// the listing's memory while it is built.
fn by_uid(mut entries: Vec<Entry>) -> Vec<Entry> {
    // Servers answer in UID order: then nothing is sorted, and a stable sort's buffer of
    // half a listing is not needed. Stable otherwise, so that of two answers for one UID
    // the later stays later.
    if !entries.is_sorted_by_key(|e| e.uid) {
        entries.sort_by_key(|e| e.uid);
    }
    let mut kept = 0;
    for i in 0..entries.len() {
        let superseded = entries
            .get(i + 1)
            .is_some_and(|next| next.uid == entries[i].uid);
        if !superseded {
            entries.swap(kept, i);
            kept += 1;
        }
    }
    entries.truncate(kept);
    entries.shrink_to_fit();
    entries
}

/// The Message-IDs of the messages in `uids` that have one, for a report that names them
/// (listings keep only their keys' digests).
async fn fetch_message_ids(
    conn: &mut Connection,
    folder: &str,
    uids: &UidSet,
) -> Result<Vec<(u32, String)>, ImapError> {
    let what = format!("FETCH Message-IDs {uids} in {folder}");
    let mut out = Vec::new();
    proto::run(conn, &meta_command(uids, None), &what, |r| {
        if let Response::Fetch(_, attrs) = r {
            let f = fetched(attrs);
            if let (Some(uid), true) = (f.uid, f.has_section)
                && let Some(id) = super::identity::message_id(f.section.unwrap_or_default())
            {
                out.push((uid, id));
            }
        }
    })
    .await?;
    Ok(out)
}

fn meta_command(uids: &UidSet, labels: Option<LabelPass>) -> Command<'_> {
    Command::UidFetch {
        set: uids,
        items: FetchItems::Meta.with_labels(labels.is_some()),
        changed_since: None,
    }
}

/// One FETCH response of a listing, into `out` by UID.
fn read_meta(r: &Response<'_>, labels: Option<LabelPass>, out: &mut Vec<Entry>) {
    if let Response::Fetch(_, attrs) = r {
        let f = fetched(attrs);
        // Unsolicited FETCH responses (flag changes by other sessions) carry only some
        // items: only complete answers count.
        if let (Some(uid), Some(size), true) = (f.uid, f.size, f.has_section)
            && let Some(flags) = f.flags_for(labels)
        {
            out.push(Entry {
                uid,
                key: MessageKey::from_header(f.section.unwrap_or_default()),
                flags,
                internal_date: f.internal_date,
                size,
            });
        }
    }
}

/// Current flags of the messages in `uids`; with `changed_since`, only of those whose
/// flags changed after that MODSEQ (CONDSTORE, RFC 7162).
async fn fetch_flags(
    conn: &mut Connection,
    folder: &str,
    uids: &UidSet,
    changed_since: Option<u64>,
    labels: Option<LabelPass>,
) -> Result<Vec<(u32, FlagSet)>, ImapError> {
    let what = format!("FETCH flags {uids} in {folder}");
    // Only keywords change flags; which folder holds a message is the listing's to say.
    let labels = labels.map(|l| LabelPass {
        archived_only: false,
        ..l
    });
    let command = Command::UidFetch {
        set: uids,
        items: FetchItems::Flags.with_labels(labels.is_some_and(|l| l.keywords)),
        changed_since,
    };
    let mut out: BTreeMap<u32, FlagSet> = BTreeMap::new();
    proto::run(conn, &command, &what, |r| {
        if let Response::Fetch(_, attrs) = r {
            let f = fetched(attrs);
            if let (Some(uid), true) = (f.uid, f.flags.is_some())
                && let Some(flags) = f.flags_for(labels)
            {
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
        proto::run(conn, &Command::Logout, "LOGOUT", |_| {}),
    )
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(uid: u32, size: u32) -> Entry {
        Entry {
            uid,
            key: MessageKey::of_message_id(&format!("<{uid}@example.com>")),
            flags: FlagSet::new(),
            internal_date: None,
            size,
        }
    }

    #[test]
    fn a_listing_is_by_uid_with_the_last_answer_for_each() {
        let answers = vec![
            entry(3, 30),
            entry(1, 10),
            entry(3, 31),
            entry(2, 20),
            entry(1, 11),
            entry(3, 32),
        ];
        let got: Vec<(u32, u32)> = by_uid(answers).iter().map(|e| (e.uid, e.size)).collect();
        assert_eq!(got, [(1, 11), (2, 20), (3, 32)]);
        let in_order: Vec<Entry> = (1..=5).map(|u| entry(u, u)).collect();
        assert_eq!(by_uid(in_order.clone()), in_order);
        assert!(by_uid(Vec::new()).is_empty());
    }
}
