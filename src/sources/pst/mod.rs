//! An Outlook PST (or OST) file, read through [`libpff`] and served by the file source as
//! a read-only mailbox.
//!
//! - **Folders** are the IPM subtree's ("Top of Personal Folders", whatever its language),
//!   named by their display names, levels joined by `/` (a `/` inside a name becomes `∕`,
//!   U+2215). The message store's entry identifiers say which folder is Sent Items, Deleted
//!   Items and Drafts, given as SPECIAL-USE attributes so that they map in any language; a
//!   top-level folder whose name is an Inbox name of the folder-name table is `INBOX`.
//!   Folders of contacts, calendars, tasks, notes and journals are not mail, and folders
//!   Outlook hides from its users are its own: both left out, and counted in
//!   [`Pst::not_mail`].
//! - **Messages** are rebuilt as RFC 5322 ([`mime`]); items of a mail folder that are not
//!   mail (a contact filed among messages) are counted as not mail too.
//! - **Flags**: read (`\Seen`), unsent (`\Draft`), follow-up flag (`\Flagged`), replied
//!   (`\Answered`) and forwarded (`$Forwarded`), from the message flags, the follow-up status
//!   and the last action taken on it.
//! - **INTERNALDATE** is the delivery time (for mail never delivered, the creation time).
//! - **UIDs** are mailshift's own, by the message's node identifier, kept in the state
//!   directory: a node identifier is stable for as long as the PST is the same file.
//! - The file is opened read only and never locked.

pub mod libpff;
pub mod mime;

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, FixedOffset, Utc};

use super::disk::{DiskFolder, Found, Place};
use crate::imap::diff::{Flag, FlagSet};
use crate::imap::folder_names::{self, Role};
use crate::imap::mutf7;
use crate::imap::report::NotMail;
use libpff::Item;
use mime::{Attachment, AttachmentBody, Mailbox, PstMessage};

/// MAPI property identifiers read here ([MS-OXPROPS]).
mod tag {
    pub const MESSAGE_CLASS: u32 = 0x001a;
    pub const SUBJECT: u32 = 0x0037;
    pub const CLIENT_SUBMIT_TIME: u32 = 0x0039;
    pub const SENT_REPRESENTING_NAME: u32 = 0x0042;
    pub const SENT_REPRESENTING_ADDRESS_TYPE: u32 = 0x0064;
    pub const SENT_REPRESENTING_EMAIL: u32 = 0x0065;
    pub const TRANSPORT_HEADERS: u32 = 0x007d;
    pub const RECIPIENT_TYPE: u32 = 0x0c15;
    pub const SENDER_NAME: u32 = 0x0c1a;
    pub const SENDER_ADDRESS_TYPE: u32 = 0x0c1e;
    pub const SENDER_EMAIL: u32 = 0x0c1f;
    pub const DELIVERY_TIME: u32 = 0x0e06;
    pub const MESSAGE_FLAGS: u32 = 0x0e07;
    pub const INTERNET_MESSAGE_ID: u32 = 0x1035;
    pub const REFERENCES: u32 = 0x1039;
    pub const IN_REPLY_TO: u32 = 0x1042;
    pub const ICON_INDEX: u32 = 0x1080;
    pub const LAST_VERB_EXECUTED: u32 = 0x1081;
    pub const FLAG_STATUS: u32 = 0x1090;
    pub const ATTR_HIDDEN: u32 = 0x10f4;
    pub const CREATION_TIME: u32 = 0x3007;
    pub const DISPLAY_NAME: u32 = 0x3001;
    pub const ADDRESS_TYPE: u32 = 0x3002;
    pub const EMAIL_ADDRESS: u32 = 0x3003;
    pub const IPM_SUBTREE_ENTRYID: u32 = 0x35e0;
    pub const IPM_WASTEBASKET_ENTRYID: u32 = 0x35e3;
    pub const IPM_SENTMAIL_ENTRYID: u32 = 0x35e4;
    pub const CONTAINER_CLASS: u32 = 0x3613;
    pub const IPM_DRAFTS_ENTRYID: u32 = 0x36d7;
    pub const ATTACH_FILENAME: u32 = 0x3704;
    pub const ATTACH_LONG_FILENAME: u32 = 0x3707;
    pub const ATTACH_MIME_TAG: u32 = 0x370e;
    pub const ATTACH_CONTENT_ID: u32 = 0x3712;
    pub const SMTP_ADDRESS: u32 = 0x39fe;
    pub const INTERNET_CODEPAGE: u32 = 0x3fde;
    pub const MESSAGE_CODEPAGE: u32 = 0x3ffd;
    pub const SENDER_SMTP_ADDRESS: u32 = 0x5d01;
    pub const SENT_REPRESENTING_SMTP_ADDRESS: u32 = 0x5d02;
}

/// The message-flags bits used ([MS-OXCMSG] PidTagMessageFlags).
const MSGFLAG_READ: u32 = 0x01;
const MSGFLAG_UNSENT: u32 = 0x08;
/// PidTagFlagStatus: followupFlagged.
const FLAG_STATUS_FLAGGED: u32 = 2;
/// PidTagLastVerbExecuted: reply to sender, reply to all, forward.
const VERB_REPLIED: [u32; 2] = [102, 103];
const VERB_FORWARDED: u32 = 104;
/// PidTagIconIndex of a replied and a forwarded message (older Outlooks set only these).
const ICON_REPLIED: u32 = 261;
const ICON_FORWARDED: u32 = 262;

/// How deep attached messages are rebuilt inside each other.
const MAX_NESTING: usize = 8;

/// One PST file.
#[derive(Clone)]
pub struct Pst {
    file: PathBuf,
    open: Arc<Mutex<Option<libpff::File>>>,
    /// Listed folder name → node identifier, from the last listing.
    folders: Arc<Mutex<HashMap<String, u32>>>,
    not_mail: Arc<Mutex<Vec<NotMail>>>,
}

impl std::fmt::Debug for Pst {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pst").field("file", &self.file).finish()
    }
}

fn other(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

/// The node identifier an entry identifier names (its last four bytes, [MS-PST] 2.2.2.2).
fn entry_nid(entry_id: &[u8]) -> Option<u32> {
    let tail: [u8; 4] = entry_id.get(20..24)?.try_into().ok()?;
    Some(u32::from_le_bytes(tail))
}

/// A folder's container class says it holds mail (no class: an older PST's mail folder).
fn is_mail_folder(class: Option<&str>) -> bool {
    match class.map(str::trim) {
        None | Some("") => true,
        Some(c) => {
            let c = c.to_ascii_uppercase();
            c == "IPF" || c.starts_with("IPF.NOTE") || c.starts_with("IPF.IMAP")
        }
    }
}

/// A message class says the item is mail (a note, a report on one, a meeting request, a
/// post), not a contact, an appointment, a task or a sticky note.
fn is_mail_item(class: Option<&str>) -> bool {
    match class.map(str::trim) {
        None | Some("") => true,
        Some(c) => {
            let c = c.to_ascii_uppercase();
            ["IPM.NOTE", "REPORT.", "IPM.SCHEDULE.MEETING", "IPM.POST"]
                .iter()
                .any(|p| c.starts_with(p))
                || c == "IPM"
        }
    }
}

/// A FILETIME (100 ns since 1601-01-01) as a time.
fn filetime(ft: u64) -> Option<DateTime<Utc>> {
    const UNIX_EPOCH_AS_FILETIME: u64 = 116_444_736_000_000_000;
    let since = ft.checked_sub(UNIX_EPOCH_AS_FILETIME)?;
    DateTime::from_timestamp(
        (since / 10_000_000) as i64,
        ((since % 10_000_000) * 100) as u32,
    )
}

impl Pst {
    pub fn new(file: PathBuf) -> Pst {
        Pst {
            file,
            open: Arc::new(Mutex::new(None)),
            folders: Arc::new(Mutex::new(HashMap::new())),
            not_mail: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// What the last listing and scans left out as not mail.
    pub fn not_mail(&self) -> Vec<NotMail> {
        self.not_mail
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn with_file<T>(&self, f: impl FnOnce(&libpff::File) -> io::Result<T>) -> io::Result<T> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if open.is_none() {
            let file = libpff::File::open(&self.file)
                .map_err(|e| other(format!("{}: {e}", self.file.display())))?;
            *open = Some(file);
        }
        f(open.as_ref().expect("opened above"))
    }

    /// The folders, and the hierarchy delimiter (`/`).
    pub fn folders(&self) -> io::Result<(Vec<DiskFolder>, Option<char>)> {
        let (listed, skipped) = self.with_file(|file| {
            let store = file.message_store().map_err(other)?;
            let nid_of = |tag: u32| -> Option<u32> {
                let s = store.as_ref()?;
                entry_nid(&s.binary(tag).ok()??)
            };
            let subtree =
                match nid_of(tag::IPM_SUBTREE_ENTRYID).and_then(|nid| file.item_by_id(nid)) {
                    Some(t) => t,
                    None => ipm_subtree(file).map_err(other)?,
                };
            let mut roles: HashMap<u32, &'static str> = HashMap::new();
            for (tag, attr) in [
                (tag::IPM_SENTMAIL_ENTRYID, "\\Sent"),
                (tag::IPM_WASTEBASKET_ENTRYID, "\\Trash"),
            ] {
                if let Some(nid) = nid_of(tag) {
                    roles.insert(nid, attr);
                }
            }
            if let Some(nid) = subtree
                .binary(tag::IPM_DRAFTS_ENTRYID)
                .ok()
                .flatten()
                .as_deref()
                .and_then(entry_nid)
            {
                roles.insert(nid, "\\Drafts");
            }
            let mut walk = Walk {
                roles: &roles,
                listed: Vec::new(),
                skipped: Vec::new(),
                inbox_taken: false,
            };
            walk.children(&subtree, None).map_err(other)?;
            Ok((walk.listed, walk.skipped))
        })?;
        let mut map = HashMap::new();
        let folders = listed
            .into_iter()
            .map(|(name, nid, special_use)| {
                map.insert(name.clone(), nid);
                DiskFolder {
                    wire: if name == "INBOX" {
                        name.clone()
                    } else {
                        mutf7::encode(&name)
                    },
                    name,
                    at: self.file.clone(),
                    selectable: true,
                    special_use,
                }
            })
            .collect();
        *self.folders.lock().unwrap_or_else(|e| e.into_inner()) = map;
        *self.not_mail.lock().unwrap_or_else(|e| e.into_inner()) = skipped;
        Ok((folders, Some('/')))
    }

    fn folder_nid(&self, folder: &DiskFolder) -> io::Result<u32> {
        let known = |s: &Pst| {
            s.folders
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&folder.name)
                .copied()
        };
        if let Some(nid) = known(self) {
            return Ok(nid);
        }
        self.folders()?;
        known(self).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("no folder {} in the PST", folder.name),
            )
        })
    }

    /// The mail of `folder`.
    pub fn scan(&self, folder: &DiskFolder) -> io::Result<Vec<Found>> {
        let nid = self.folder_nid(folder)?;
        let (found, skipped) = self.with_file(|file| {
            let item = file
                .item_by_id(nid)
                .ok_or_else(|| other(format!("folder {} is gone from the PST", folder.name)))?;
            let n = item.messages().map_err(other)?;
            let mut found = Vec::with_capacity(n);
            let mut skipped: HashMap<String, u64> = HashMap::new();
            for i in 0..n {
                let Some(m) = item.message(i).map_err(other)? else {
                    continue;
                };
                let class = m.string(tag::MESSAGE_CLASS).map_err(other)?;
                if !is_mail_item(class.as_deref()) {
                    *skipped.entry(class.unwrap_or_default()).or_default() += 1;
                    continue;
                }
                let id = m.id().map_err(other)?;
                found.push(Found {
                    name: format!("{id:x}"),
                    flags: flags(&m).map_err(other)?,
                    internal_date: internal_date(&m).map_err(other)?,
                    place: Place::Item(id),
                    meta: None,
                });
            }
            Ok((found, skipped))
        })?;
        let mut not_mail = self.not_mail.lock().unwrap_or_else(|e| e.into_inner());
        not_mail.retain(|n| n.folder != folder.name);
        let mut skipped: Vec<NotMail> = skipped
            .into_iter()
            .map(|(class, items)| NotMail {
                folder: folder.name.clone(),
                class,
                items,
            })
            .collect();
        skipped.sort_by(|a, b| a.class.cmp(&b.class));
        not_mail.extend(skipped);
        Ok(found)
    }

    /// The messages' bytes, rebuilt; `None` for one no longer in the file.
    pub fn read(&self, found: &[&Found]) -> io::Result<Vec<Option<Vec<u8>>>> {
        self.with_file(|file| {
            found
                .iter()
                .map(|f| {
                    let Place::Item(id) = f.place else {
                        return Ok(None);
                    };
                    match file.item_by_id(id) {
                        Some(item) => Ok(Some(mime::rfc5322(
                            &message(&item, 0)
                                .map_err(|e| other(format!("message {id:x}: {e}")))?,
                        ))),
                        None => Ok(None),
                    }
                })
                .collect()
        })
    }
}

/// The folder tree below the IPM subtree, as listed.
struct Walk<'r> {
    roles: &'r HashMap<u32, &'static str>,
    /// (listed name, node identifier, SPECIAL-USE)
    listed: Vec<(String, u32, Option<&'static str>)>,
    skipped: Vec<NotMail>,
    inbox_taken: bool,
}

impl Walk<'_> {
    fn children(&mut self, parent: &Item<'_>, path: Option<&str>) -> libpff::Result<()> {
        let n = parent.sub_folders()?;
        let mut used: HashMap<String, u32> = HashMap::new();
        for i in 0..n {
            let Some(f) = parent.sub_folder(i)? else {
                continue;
            };
            let raw = f.folder_name()?.unwrap_or_default();
            let mut leaf = raw.replace('/', "\u{2215}");
            if leaf.trim().is_empty() {
                leaf = "Unnamed".into();
            }
            // Two sibling folders of one name (Outlook allows it only in different case,
            // other writers at all): the later ones numbered.
            let seen = used.entry(leaf.to_lowercase()).or_default();
            *seen += 1;
            if *seen > 1 {
                leaf = format!("{leaf} ({seen})");
            }
            let id = f.id()?;
            let class = f.string(tag::CONTAINER_CLASS)?;
            let full = match path {
                Some(p) => format!("{p}/{leaf}"),
                None if !self.inbox_taken && is_inbox_name(&leaf) => {
                    self.inbox_taken = true;
                    "INBOX".to_owned()
                }
                None => leaf,
            };
            if !is_mail_folder(class.as_deref()) {
                self.skip_tree(&f, &full, class.as_deref().unwrap_or(""))?;
                continue;
            }
            // Outlook's own folders (quick steps, conversation actions, Yammer feeds) are
            // hidden from its users: not theirs to migrate.
            if f.boolean(tag::ATTR_HIDDEN)? == Some(true) {
                let class = format!("{} (hidden)", class.as_deref().unwrap_or("IPF.Note"));
                self.skip_tree(&f, &full, &class)?;
                continue;
            }
            self.listed
                .push((full.clone(), id, self.roles.get(&id).copied()));
            self.children(&f, Some(&full))?;
        }
        Ok(())
    }

    /// A folder that is not mail, and everything below it, counted.
    fn skip_tree(&mut self, f: &Item<'_>, path: &str, class: &str) -> libpff::Result<()> {
        let items = f.messages()? as u64;
        self.skipped.push(NotMail {
            folder: path.to_owned(),
            class: class.to_owned(),
            items,
        });
        for i in 0..f.sub_folders()? {
            if let Some(sub) = f.sub_folder(i)? {
                let name = sub.folder_name()?.unwrap_or_default();
                let class = sub
                    .string(tag::CONTAINER_CLASS)?
                    .unwrap_or_else(|| class.to_owned());
                self.skip_tree(&sub, &format!("{path}/{name}"), &class)?;
            }
        }
        Ok(())
    }
}

/// The IPM subtree of a file whose message store does not name it (an OST from
/// Outlook.com): a folder called `IPM_SUBTREE` one or two levels below the root, as
/// Exchange names it (the mailbox's, with folders, not the empty public one), else the
/// root itself.
fn ipm_subtree(file: &libpff::File) -> libpff::Result<Item<'_>> {
    let root = file
        .root_folder()?
        .ok_or_else(|| libpff::PffError::new("the file has no root folder"))?;
    let mut candidates: Vec<Item<'_>> = Vec::new();
    for i in 0..root.sub_folders()? {
        let Some(top) = root.sub_folder(i)? else {
            continue;
        };
        for j in 0..top.sub_folders()? {
            candidates.extend(top.sub_folder(j)?);
        }
        candidates.push(top);
    }
    let mut best: Option<(usize, Item<'_>)> = None;
    for f in candidates {
        if f.folder_name()?
            .is_some_and(|n| n.eq_ignore_ascii_case("IPM_SUBTREE"))
        {
            let n = f.sub_folders()?;
            if best.as_ref().is_none_or(|(m, _)| n > *m) {
                best = Some((n, f));
            }
        }
    }
    Ok(best.map_or(root, |(_, f)| f))
}

fn is_inbox_name(name: &str) -> bool {
    folder_names::lookup(name)
        .iter()
        .any(|(_, role)| *role == Role::Inbox)
}

fn flags(m: &Item<'_>) -> libpff::Result<FlagSet> {
    let mut flags = FlagSet::default();
    let msg = m.u32(tag::MESSAGE_FLAGS)?.unwrap_or(0);
    if msg & MSGFLAG_READ != 0 {
        flags.insert(Flag::Seen);
    }
    if msg & MSGFLAG_UNSENT != 0 {
        flags.insert(Flag::Draft);
    }
    if m.u32(tag::FLAG_STATUS)? == Some(FLAG_STATUS_FLAGGED) {
        flags.insert(Flag::Flagged);
    }
    let verb = m.u32(tag::LAST_VERB_EXECUTED)?;
    let icon = m.u32(tag::ICON_INDEX)?;
    if verb.is_some_and(|v| VERB_REPLIED.contains(&v)) || icon == Some(ICON_REPLIED) {
        flags.insert(Flag::Answered);
    }
    if (verb == Some(VERB_FORWARDED) || icon == Some(ICON_FORWARDED))
        && let Some(forwarded) = Flag::parse("$Forwarded")
    {
        flags.insert(forwarded);
    }
    Ok(flags)
}

fn internal_date(m: &Item<'_>) -> libpff::Result<Option<DateTime<FixedOffset>>> {
    let ft = match m.filetime(tag::DELIVERY_TIME)? {
        Some(t) => Some(t),
        None => m.filetime(tag::CREATION_TIME)?,
    };
    Ok(ft.and_then(filetime).map(|d| d.fixed_offset()))
}

/// An address that is an SMTP one (`type` SMTP, or no type and an `@`).
fn smtp(kind: Option<String>, address: Option<String>) -> Option<String> {
    let a = address?.trim().to_owned();
    let is_smtp = match kind.as_deref().map(str::trim) {
        Some(k) if !k.is_empty() => k.eq_ignore_ascii_case("SMTP"),
        _ => true,
    };
    (is_smtp && a.contains('@') && !a.contains(['<', '>', '\r', '\n'])).then_some(a)
}

fn sender(m: &Item<'_>) -> libpff::Result<Option<Mailbox>> {
    for (name, kind, email, smtp_tag) in [
        (
            tag::SENT_REPRESENTING_NAME,
            tag::SENT_REPRESENTING_ADDRESS_TYPE,
            tag::SENT_REPRESENTING_EMAIL,
            tag::SENT_REPRESENTING_SMTP_ADDRESS,
        ),
        (
            tag::SENDER_NAME,
            tag::SENDER_ADDRESS_TYPE,
            tag::SENDER_EMAIL,
            tag::SENDER_SMTP_ADDRESS,
        ),
    ] {
        let display = m.string(name)?;
        let address = smtp(None, m.string(smtp_tag)?).or(smtp(m.string(kind)?, m.string(email)?));
        if display.is_some() || address.is_some() {
            return Ok(Some(Mailbox {
                name: display,
                address,
            }));
        }
    }
    Ok(None)
}

/// A subject as PidTagSubject stores it: a leading U+0001 and a character giving the length
/// of its prefix ("RE: ") are markers, not text ([MS-OXCMSG] 2.2.1.46).
fn subject(s: String) -> String {
    match s.strip_prefix('\u{1}') {
        Some(rest) => rest.chars().skip(1).collect(),
        None => s,
    }
}

/// The message's properties, its attachments (attached messages to `depth`) included.
fn message(m: &Item<'_>, depth: usize) -> libpff::Result<PstMessage> {
    let mut out = PstMessage {
        transport_headers: m.string(tag::TRANSPORT_HEADERS)?,
        subject: m.string(tag::SUBJECT)?.map(subject),
        from: sender(m)?,
        date: match m.filetime(tag::CLIENT_SUBMIT_TIME)? {
            Some(t) => filetime(t),
            None => m.filetime(tag::DELIVERY_TIME)?.and_then(filetime),
        },
        message_id: m.string(tag::INTERNET_MESSAGE_ID)?,
        in_reply_to: m.string(tag::IN_REPLY_TO)?,
        references: m.string(tag::REFERENCES)?,
        text: m
            .plain_body()?
            .map(|b| String::from_utf8_lossy(&b).into_owned()),
        html: m.html_body()?,
        ..PstMessage::default()
    };
    if out.html.is_some() {
        let cp = match m.u32(tag::INTERNET_CODEPAGE)? {
            Some(cp) => Some(cp),
            None => m.u32(tag::MESSAGE_CODEPAGE)?,
        };
        out.html_charset = cp.and_then(mime::charset);
    }
    if out.text.is_none() && out.html.is_none() {
        out.rtf = m.rtf_body()?;
    }
    if let Some(table) = m.recipients()? {
        for set in 0..table.sets()? {
            let who = Mailbox {
                name: table.string_in(set, tag::DISPLAY_NAME)?,
                address: smtp(None, table.string_in(set, tag::SMTP_ADDRESS)?).or(smtp(
                    table.string_in(set, tag::ADDRESS_TYPE)?,
                    table.string_in(set, tag::EMAIL_ADDRESS)?,
                )),
            };
            match table.u32_in(set, tag::RECIPIENT_TYPE)? {
                Some(2) => out.cc.push(who),
                Some(3) => out.bcc.push(who),
                _ => out.to.push(who),
            }
        }
    }
    for i in 0..m.attachments()? {
        let Some(a) = m.attachment(i)? else {
            continue;
        };
        let body = match a.attachment_type()? {
            b'i' if depth < MAX_NESTING => match a.attached_item()? {
                Some(inner) => AttachmentBody::Message(Box::new(message(&inner, depth + 1)?)),
                None => continue,
            },
            b'd' => AttachmentBody::Data(a.attachment_data()?),
            // A reference to a file elsewhere (or nesting too deep): nothing to carry.
            _ => continue,
        };
        out.attachments.push(Attachment {
            filename: match a.string(tag::ATTACH_LONG_FILENAME)? {
                Some(f) if !f.is_empty() => Some(f),
                _ => match a.string(tag::ATTACH_FILENAME)? {
                    Some(f) if !f.is_empty() => Some(f),
                    _ => a.string(tag::DISPLAY_NAME)?,
                },
            },
            mime_type: a.string(tag::ATTACH_MIME_TAG)?,
            content_id: a.string(tag::ATTACH_CONTENT_ID)?,
            body,
        });
    }
    Ok(out)
}

/// The PST file's path checked to be a file libpff opens.
pub fn check(file: &Path) -> io::Result<()> {
    libpff::File::open(file).map(drop).map_err(other)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_ids_name_their_node() {
        let mut id = vec![0u8; 20];
        id.extend_from_slice(&0x8022u32.to_le_bytes());
        assert_eq!(entry_nid(&id), Some(0x8022));
        assert_eq!(entry_nid(&[0; 10]), None);
    }

    #[test]
    fn classes_of_mail_and_of_what_is_not() {
        assert!(is_mail_folder(None));
        assert!(is_mail_folder(Some("IPF.Note")));
        assert!(is_mail_folder(Some("IPF.Imap")));
        assert!(!is_mail_folder(Some("IPF.Contact")));
        assert!(!is_mail_folder(Some("IPF.Appointment")));
        assert!(is_mail_item(Some("IPM.Note")));
        assert!(is_mail_item(Some("IPM.Note.SMIME")));
        assert!(is_mail_item(Some("REPORT.IPM.Note.NDR")));
        assert!(is_mail_item(Some("IPM.Schedule.Meeting.Request")));
        assert!(!is_mail_item(Some("IPM.Contact")));
        assert!(!is_mail_item(Some("IPM.Task")));
        assert!(!is_mail_item(Some("IPM.StickyNote")));
    }

    #[test]
    fn filetimes() {
        // 2001-08-23 22:49:51 UTC.
        let ft = (998_606_991u64) * 10_000_000 + 116_444_736_000_000_000;
        assert_eq!(filetime(ft).unwrap().timestamp(), 998_606_991);
        assert_eq!(filetime(0), None);
    }

    #[test]
    fn subject_markers_are_not_text() {
        assert_eq!(subject("\u{1}\u{4}RE: hello".into()), "RE: hello");
        assert_eq!(subject("\u{1}\u{1}Welcome".into()), "Welcome");
        assert_eq!(subject("plain".into()), "plain");
    }

    #[test]
    fn only_smtp_addresses_are_addresses() {
        let s = |k: Option<&str>, a: &str| smtp(k.map(String::from), Some(a.into()));
        assert_eq!(s(Some("SMTP"), "a@b.c").as_deref(), Some("a@b.c"));
        assert_eq!(s(None, "a@b.c").as_deref(), Some("a@b.c"));
        assert_eq!(
            s(Some("EX"), "/O=ENRON/OU=NA/CN=RECIPIENTS/CN=MLOKAY"),
            None
        );
        assert_eq!(s(None, "no address"), None);
    }
}
