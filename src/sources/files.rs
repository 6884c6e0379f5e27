//! A source of files (Maildir, mbox) answering the engine's questions as a read-only IMAP
//! server would: folders listed, each opened with its messages numbered by stable UIDs
//! ([`super::uids`]), bodies with the line endings an IMAP server gives (CRLF).
//!
//! Files are read with plain reads only: no rename (a Maildir message in `new/` stays
//! there), no lock file, no dot-lock, no `flock`: the old server, which may still be
//! delivering, sees nothing. A message that disappears between listing and reading is simply
//! not sent, as an IMAP server leaves out an expunged message.

use std::collections::{BTreeSet, HashMap};
use std::io;
use std::sync::{Arc, Mutex};

#[cfg(test)]
use super::disk::crlf;
use super::disk::{DiskFolder, Found};
use super::fs::{Fs, Local, Remote};
use super::maildir::Maildir;
use super::mbox::Mbox;
use super::pst::Pst;
use super::uids::{Seen, UidMap, flags_digest};
use crate::accounts::Account;
use crate::imap::cache::{CacheStore, FolderCacheKey};
use crate::imap::conn::{ConnectError, Side};
use crate::imap::diff::{Entry, FlagSet};
use crate::imap::folders::ListedFolder;
use crate::imap::identity::MessageKey;
use crate::imap::proto::ImapError;
use crate::imap::session::{Listing, MailboxStatus, Outgoing, Selected};
use crate::spec::PathTemplate;
use crate::spec::{SourceKind, SourceServer};

/// The files of one mailbox, in one of the layouts.
#[derive(Clone, Debug)]
pub enum Store {
    Maildir(Maildir),
    Mbox(Mbox),
    Pst(Pst),
}

impl Store {
    fn folders(&self) -> io::Result<(Vec<DiskFolder>, Option<char>)> {
        match self {
            Store::Maildir(m) => m.folders(),
            Store::Mbox(m) => m.folders(),
            Store::Pst(p) => p.folders(),
        }
    }

    /// The folders Dovecot's subscription file names, `None` where there is none.
    fn subscriptions(&self, delimiter: char) -> io::Result<Option<Vec<String>>> {
        match self {
            Store::Maildir(m) => m.subscriptions(delimiter),
            Store::Mbox(m) => m.subscriptions(delimiter),
            // A PST has no subscriptions: every mail folder is subscribed.
            Store::Pst(_) => Ok(None),
        }
    }

    fn scan(&self, folder: &DiskFolder) -> io::Result<Vec<Found>> {
        match self {
            Store::Maildir(m) => m.scan(folder),
            Store::Mbox(m) => m.scan(folder),
            Store::Pst(p) => p.scan(folder),
        }
    }

    /// The messages' bytes as an IMAP server would give them, in order; `None` for one
    /// that is gone.
    fn read(&self, found: &[&Found]) -> io::Result<Vec<Option<Vec<u8>>>> {
        match self {
            Store::Maildir(m) => m.read(found),
            Store::Mbox(m) => found.iter().map(|f| m.read(f)).collect(),
            Store::Pst(p) => p.read(found),
        }
    }
}

/// The UID maps of every folder read in this process, loaded from and saved to the store
/// (see [`super::uids`]): two sessions on one folder hand out the same UIDs.
pub(crate) struct UidMaps {
    store: Arc<dyn CacheStore>,
    maps: Mutex<HashMap<FolderCacheKey, UidMap>>,
}

impl UidMaps {
    pub(crate) fn new(store: Arc<dyn CacheStore>) -> UidMaps {
        UidMaps {
            store,
            maps: Mutex::new(HashMap::new()),
        }
    }

    /// UIDs for `names`, saved before they are returned; the map's UIDVALIDITY, next UID
    /// and MODSEQ.
    pub(crate) fn assign(
        &self,
        key: &FolderCacheKey,
        folder_id: &str,
        names: &[Seen<'_>],
    ) -> anyhow::Result<Assigned> {
        let mut maps = self.maps.lock().unwrap_or_else(|e| e.into_inner());
        if !maps.contains_key(key) {
            let loaded = self.store.load_source_uids(key)?;
            maps.insert(
                key.clone(),
                loaded.unwrap_or_else(|| UidMap::new(folder_id)),
            );
        }
        let map = maps.get_mut(key).expect("inserted above");
        let before = map.clone();
        let (uids, changed) = map.assign(names);
        if changed && let Err(e) = self.store.save_source_uids(key, map) {
            // Not saved: not handed out either.
            *map = before;
            return Err(e);
        }
        Ok(Assigned {
            uids,
            uidvalidity: map.uidvalidity,
            next: map.next,
            modseq: map.modseq,
        })
    }
}

/// What [`UidMaps::assign`] gives: the UIDs in the order asked, and the folder's state.
pub(crate) struct Assigned {
    pub uids: Vec<u32>,
    pub uidvalidity: u32,
    pub next: u32,
    pub modseq: u64,
}

/// Opens [`FileSession`]s on each mailbox's files.
#[derive(Clone)]
pub struct FileConnector {
    kind: SourceKind,
    path: PathTemplate,
    inbox: Option<PathTemplate>,
    quoting: crate::spec::MboxQuoting,
    fs: Arc<dyn Fs>,
    uids: Arc<UidMaps>,
}

impl std::fmt::Debug for FileConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileConnector")
            .field("kind", &self.kind)
            .field("path", &self.path)
            .field("on", &self.fs.describe())
            .finish()
    }
}

impl FileConnector {
    /// `resolver` gives the ssh key and known hosts when the files are read over ssh.
    pub fn new(
        source: &SourceServer,
        resolver: &crate::secrets::Resolver,
        store: Arc<dyn CacheStore>,
    ) -> anyhow::Result<Self> {
        let kind = source.kind();
        if let (SourceKind::Pst, Some(pst)) = (kind, &source.pst) {
            return Ok(FileConnector {
                kind,
                path: PathTemplate::parse(&pst.file)
                    .map_err(|e| anyhow::anyhow!("source.pst.file: {e}"))?,
                inbox: None,
                quoting: crate::spec::MboxQuoting::None,
                fs: Arc::new(Local),
                uids: Arc::new(UidMaps::new(store)),
            });
        }
        let files = match kind {
            SourceKind::Maildir => source.maildir.as_ref(),
            SourceKind::Mbox => source.mbox.as_ref(),
            _ => None,
        };
        let files = files.ok_or_else(|| anyhow::anyhow!("source: not a file source"))?;
        let path = PathTemplate::parse(&files.path)
            .map_err(|e| anyhow::anyhow!("source.{}.path: {e}", kind.name()))?;
        let inbox = files
            .inbox
            .as_deref()
            .map(PathTemplate::parse)
            .transpose()
            .map_err(|e| anyhow::anyhow!("source.{}.inbox: {e}", kind.name()))?;
        let fs: Arc<dyn Fs> = match &files.ssh {
            Some(ssh) => Arc::new(Remote::new(
                crate::routing::SshRunner::new(ssh, resolver)
                    .map_err(|e| anyhow::anyhow!("source.{}.ssh: {e}", kind.name()))?,
            )),
            None => Arc::new(Local),
        };
        Ok(FileConnector {
            kind,
            path,
            inbox,
            quoting: files.quoting.unwrap_or_default(),
            fs,
            uids: Arc::new(UidMaps::new(store)),
        })
    }

    /// The mailbox's files, checked to be there.
    pub async fn open(&self, account: &Account) -> Result<FileSession, ConnectError> {
        let root = self
            .path
            .for_mailbox(&account.address, account.source.user())
            .map_err(|reason| ConnectError::Unsupported {
                side: Side::Source,
                addr: account.address.clone(),
                reason,
            })?;
        let unusable = |reason: String| ConnectError::Unsupported {
            side: Side::Source,
            addr: root.display().to_string(),
            reason,
        };
        let fs = Arc::clone(&self.fs);
        let at = root.clone();
        let meta = tokio::task::spawn_blocking(move || fs.stat(&at))
            .await
            .map_err(|e| unusable(format!("cannot read: {e}")))?
            .map_err(|e| unusable(format!("cannot read on {}: {e}", self.fs.describe())))?
            .ok_or_else(|| {
                unusable(format!(
                    "no such file or directory on {}",
                    self.fs.describe()
                ))
            })?;
        let is_dir = meta.kind == super::fs::Kind::Dir;
        let store = match self.kind {
            SourceKind::Maildir if is_dir => {
                Store::Maildir(Maildir::new(root.clone(), Arc::clone(&self.fs)))
            }
            SourceKind::Maildir => return Err(unusable("not a Maildir directory".into())),
            SourceKind::Pst if is_dir => {
                return Err(unusable("a directory, not a PST file".into()));
            }
            SourceKind::Pst => {
                let file = root.clone();
                tokio::task::spawn_blocking(move || super::pst::check(&file))
                    .await
                    .map_err(|e| unusable(format!("cannot read: {e}")))?
                    .map_err(|e| unusable(e.to_string()))?;
                Store::Pst(Pst::new(root.clone()))
            }
            _ => {
                let inbox = match &self.inbox {
                    Some(t) => Some(
                        t.for_mailbox(&account.address, account.source.user())
                            .map_err(&unusable)?,
                    ),
                    None => None,
                };
                Store::Mbox(Mbox::new(
                    root.clone(),
                    is_dir,
                    inbox,
                    self.quoting,
                    Arc::clone(&self.fs),
                ))
            }
        };
        tracing::debug!(mailbox = %account.address, path = %root.display(), kind = self.kind.name(), "reading files");
        Ok(FileSession {
            store: Arc::new(store),
            mailbox: account.address.clone(),
            uids: Arc::clone(&self.uids),
            folders: Vec::new(),
            examined: None,
        })
    }
}

/// One message of the open folder.
#[derive(Clone, Debug)]
struct Numbered {
    uid: u32,
    found: Found,
}

#[derive(Debug)]
struct Examined {
    folder: DiskFolder,
    /// Ascending UIDs.
    messages: Vec<Numbered>,
}

/// A mailbox's files, read as a read-only IMAP session would show them.
pub struct FileSession {
    store: Arc<Store>,
    mailbox: String,
    uids: Arc<UidMaps>,
    folders: Vec<DiskFolder>,
    examined: Option<Examined>,
}

impl std::fmt::Debug for FileSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileSession")
            .field("store", &self.store)
            .field("mailbox", &self.mailbox)
            .finish()
    }
}

/// Runs blocking file work off the async threads.
async fn blocking<T: Send + 'static>(
    what: &str,
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> Result<T, ImapError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(ImapError::Refused {
            what: what.to_owned(),
            reason: e.to_string(),
        }),
        Err(e) => Err(ImapError::Protocol {
            what: what.to_owned(),
            reason: format!("reading files: {e}"),
        }),
    }
}

impl FileSession {
    pub async fn list(&mut self) -> Result<Listing, ImapError> {
        let store = Arc::clone(&self.store);
        let (folders, delimiter, subscribed) = blocking("LIST", move || {
            let (folders, delimiter) = store.folders()?;
            let subscribed = store.subscriptions(delimiter.unwrap_or('/'))?;
            Ok((folders, delimiter, subscribed))
        })
        .await?;
        let mut listing = Listing::default();
        if let Store::Pst(p) = self.store.as_ref() {
            listing.not_mail = p.not_mail();
        }
        listing.delimiter = delimiter;
        listing.prefix = Some(String::new());
        for f in &folders {
            let mut attributes: Vec<&str> = f.special_use.into_iter().collect();
            if !f.selectable {
                attributes.push("\\Noselect");
            }
            // Dovecot's subscription file says which folders the user subscribed; without
            // one every folder that holds mail is subscribed on the destination.
            let is_subscribed = match &subscribed {
                Some(names) => names.iter().any(|n| {
                    *n == f.name || (f.name == "INBOX" && n.eq_ignore_ascii_case("INBOX"))
                }),
                None => f.selectable,
            };
            listing.push_folder(
                ListedFolder::new(&f.name, &attributes, is_subscribed),
                f.wire.clone(),
            );
        }
        self.folders = folders;
        Ok(listing)
    }

    async fn folder(&mut self, wire: &str) -> Result<DiskFolder, ImapError> {
        if self.folders.is_empty() {
            self.list().await?;
        }
        self.folders
            .iter()
            .find(|f| f.wire == wire || (wire.eq_ignore_ascii_case("INBOX") && f.name == "INBOX"))
            .filter(|f| f.selectable)
            .cloned()
            .ok_or_else(|| ImapError::Refused {
                what: format!("open {wire}"),
                reason: "no such folder in the files".into(),
            })
    }

    /// Every message of `folder` with its UID, ascending; the folder's UIDVALIDITY, next
    /// UID and MODSEQ.
    async fn scan(&mut self, folder: &DiskFolder) -> Result<(Vec<Numbered>, Assigned), ImapError> {
        let store = Arc::clone(&self.store);
        let f = folder.clone();
        let what = format!("read {}", folder.at.display());
        let found = blocking(&what, move || store.scan(&f)).await?;
        let key = FolderCacheKey::new(&self.mailbox, &folder.name);
        let id = folder.at.display().to_string();
        let names: Vec<Seen<'_>> = found
            .iter()
            .map(|f| Seen {
                name: f.name.as_str(),
                order: f.internal_date.map_or(i64::MAX, |d| d.timestamp()),
                flags: flags_digest(&f.flags),
            })
            .collect();
        let mut assigned = self
            .uids
            .assign(&key, &id, &names)
            .map_err(|e| ImapError::Refused {
                what: format!("UIDs of {}", folder.name),
                reason: format!("cannot keep them in the state directory: {e:#}"),
            })?;
        let mut messages: Vec<Numbered> = std::mem::take(&mut assigned.uids)
            .into_iter()
            .zip(found)
            .map(|(uid, found)| Numbered { uid, found })
            .collect();
        messages.sort_by_key(|m| m.uid);
        // Two files with one name (a message in new/ and cur/ at once, mid-rename): one.
        messages.dedup_by_key(|m| m.uid);
        Ok((messages, assigned))
    }

    pub async fn status(&mut self, wire: &str) -> Result<MailboxStatus, ImapError> {
        let folder = self.folder(wire).await?;
        let (messages, a) = self.scan(&folder).await?;
        Ok(MailboxStatus {
            messages: messages.len() as u32,
            uid_next: Some(a.next),
            uid_validity: Some(a.uidvalidity),
            highest_modseq: Some(a.modseq),
        })
    }

    pub async fn examine(&mut self, wire: &str) -> Result<Selected, ImapError> {
        self.examined = None;
        let folder = self.folder(wire).await?;
        let (messages, a) = self.scan(&folder).await?;
        let sel = Selected {
            exists: messages.len() as u32,
            uid_validity: Some(a.uidvalidity),
            uid_next: Some(a.next),
            highest_modseq: Some(a.modseq),
            permanent_flags: None,
        };
        self.examined = Some(Examined { folder, messages });
        Ok(sel)
    }

    fn examined(&self, what: &str) -> Result<&Examined, ImapError> {
        self.examined.as_ref().ok_or_else(|| ImapError::Refused {
            what: what.to_owned(),
            reason: "no folder open".into(),
        })
    }

    /// The open folder's messages in `set`.
    fn pick(&self, set: &str, what: &str) -> Result<Vec<Numbered>, ImapError> {
        let ex = self.examined(what)?;
        let ranges = parse_uid_set(set).ok_or_else(|| ImapError::Protocol {
            what: what.to_owned(),
            reason: format!("not a UID set: {set}"),
        })?;
        Ok(ex
            .messages
            .iter()
            .filter(|m| ranges.iter().any(|&(a, b)| a <= m.uid && m.uid <= b))
            .cloned()
            .collect())
    }

    /// Reads `picked` (what is gone is left out), looking again once for messages whose
    /// file moved (a flag changed, `new/` to `cur/`) since the folder was opened.
    async fn read(
        &mut self,
        picked: Vec<Numbered>,
        what: &str,
    ) -> Result<Vec<(Numbered, Vec<u8>)>, ImapError> {
        let store = Arc::clone(&self.store);
        let (mut got, missing) = blocking(what, move || {
            let bytes = store.read(&picked.iter().map(|m| &m.found).collect::<Vec<_>>())?;
            let mut got = Vec::with_capacity(picked.len());
            let mut missing = Vec::new();
            for (m, b) in picked.into_iter().zip(bytes) {
                match b {
                    Some(bytes) => got.push((m, bytes)),
                    None => missing.push(m),
                }
            }
            Ok((got, missing))
        })
        .await?;
        if missing.is_empty() {
            return Ok(got);
        }
        self.rescan(what).await?;
        let wanted: BTreeSet<u32> = missing.iter().map(|m| m.uid).collect();
        let again: Vec<Numbered> = self
            .examined(what)?
            .messages
            .iter()
            .filter(|m| wanted.contains(&m.uid))
            .cloned()
            .collect();
        let store = Arc::clone(&self.store);
        let more = blocking(what, move || {
            let bytes = store.read(&again.iter().map(|m| &m.found).collect::<Vec<_>>())?;
            Ok(again
                .into_iter()
                .zip(bytes)
                .filter_map(|(m, b)| b.map(|b| (m, b)))
                .collect::<Vec<_>>())
        })
        .await?;
        got.extend(more);
        got.sort_by_key(|(m, _)| m.uid);
        Ok(got)
    }

    /// Reads the open folder again (its messages keep their UIDs).
    async fn rescan(&mut self, what: &str) -> Result<(), ImapError> {
        let folder = self.examined(what)?.folder.clone();
        let (messages, _) = self.scan(&folder).await?;
        self.examined = Some(Examined { folder, messages });
        Ok(())
    }

    pub async fn fetch_meta(&mut self, set: &str) -> Result<Vec<Entry>, ImapError> {
        let what = format!("FETCH {set}");
        let picked = self.pick(set, &what)?;
        let (known, unknown): (Vec<Numbered>, Vec<Numbered>) =
            picked.into_iter().partition(|m| m.found.meta.is_some());
        let mut out: Vec<Entry> = known
            .into_iter()
            .map(|m| {
                let (key, size) = m.found.meta.expect("partitioned");
                entry(&m, key, size)
            })
            .collect();
        for (m, bytes) in self.read(unknown, &what).await? {
            out.push(entry(
                &m,
                MessageKey::from_header(&bytes),
                bytes.len() as u64,
            ));
        }
        out.sort_by_key(|e| e.uid);
        Ok(out)
    }

    pub async fn fetch_flags(&mut self, set: &str) -> Result<Vec<(u32, FlagSet)>, ImapError> {
        let what = format!("FETCH flags {set}");
        // Flags live in the files' names and headers: read them again.
        self.rescan(&what).await?;
        Ok(self
            .pick(set, &what)?
            .into_iter()
            .map(|m| (m.uid, m.found.flags))
            .collect())
    }

    pub async fn read_bodies(&mut self, uids: &[u32]) -> Result<Vec<Outgoing>, ImapError> {
        let what = "FETCH bodies";
        let wanted: BTreeSet<u32> = uids.iter().copied().collect();
        let picked: Vec<Numbered> = self
            .examined(what)?
            .messages
            .iter()
            .filter(|m| wanted.contains(&m.uid))
            .cloned()
            .collect();
        Ok(self
            .read(picked, what)
            .await?
            .into_iter()
            .map(|(m, body)| Outgoing {
                uid: m.uid,
                flags: m.found.flags,
                internal_date: m.found.internal_date,
                body,
            })
            .collect())
    }
}

fn entry(m: &Numbered, key: MessageKey, size: u64) -> Entry {
    Entry {
        uid: m.uid,
        key,
        flags: m.found.flags.clone(),
        internal_date: m.found.internal_date,
        // Saturated past 4 GiB: no IMAP server takes such a message, and the copy reports
        // the file's real size as not the listed one.
        size: u32::try_from(size).unwrap_or(u32::MAX),
    }
}

/// The ranges of a UID set as the engine writes them (`1:*`, `5:9,12`).
pub(crate) fn parse_uid_set(set: &str) -> Option<Vec<(u32, u32)>> {
    let num = |s: &str| match s {
        "*" => Some(u32::MAX),
        _ => s.parse::<u32>().ok(),
    };
    set.split(',')
        .map(|part| match part.split_once(':') {
            Some((a, b)) => {
                let (a, b) = (num(a)?, num(b)?);
                Some((a.min(b), a.max(b)))
            }
            None => num(part).map(|n| (n, n)),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uid_sets_as_the_engine_writes_them() {
        assert_eq!(parse_uid_set("1:*"), Some(vec![(1, u32::MAX)]));
        assert_eq!(parse_uid_set("3,5:7"), Some(vec![(3, 3), (5, 7)]));
        assert_eq!(parse_uid_set("x"), None);
    }

    #[test]
    fn bare_line_feeds_become_crlf() {
        assert_eq!(crlf(b"a\nb\r\nc\n"), b"a\r\nb\r\nc\r\n");
    }
}
