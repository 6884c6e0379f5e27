//! Maildir, as Dovecot, Courier and most MDAs write it, read without touching it.
//!
//! - **Folders.** The root (`cur/`, `new/`) is INBOX. Maildir++ folders are the root's
//!   `.Name` directories, levels separated by `.` (`.Archive.2019`); Dovecot's `LAYOUT=fs`
//!   nests plain directories instead (`Archive/2019/`), levels separated by `/`. Names are
//!   modified UTF-7 on disk, as Dovecot writes them, and are shown decoded. A level without
//!   messages of its own is listed `\Noselect`, as an IMAP server lists it.
//! - **Flags** come from the file name's info part (`:2,FRS`): `D` \Draft, `F` \Flagged,
//!   `R` \Answered, `S` \Seen, `T` \Deleted (trashed but not expunged: an IMAP server shows
//!   it with \Deleted, and so it is copied), `P` (passed) has no IMAP flag; `a`–`z` are the
//!   keywords numbered in the folder's `dovecot-keywords`. Messages in `new/` have none.
//! - **INTERNALDATE** is the file's modification time (Dovecot sets it so on saving).
//! - **UIDs** are mailshift's own, by base name (the file name before `:`), kept in the
//!   state directory (see [`super::uids`]); `dovecot-uidlist` is not read.
//! - Nothing is written: a message in `new/` is not moved to `cur/`, no `tmp/` file, no lock.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::disk::{DiskFolder, Found, Place, crlf};
use super::fs::{DirEntry, Fs, Kind};
use crate::imap::diff::{Flag, FlagSet};
use crate::imap::mutf7;

/// One mailbox's Maildir.
#[derive(Clone, Debug)]
pub struct Maildir {
    root: PathBuf,
    fs: Arc<dyn Fs>,
}

/// Whether a directory listed as `entries` holds messages (`cur/` or `new/`).
fn is_maildir(entries: &[DirEntry]) -> bool {
    entries
        .iter()
        .any(|e| e.kind == Kind::Dir && (e.name == "cur" || e.name == "new"))
}

fn decoded(wire: &str) -> String {
    mutf7::decode(wire).unwrap_or_else(|_| wire.to_owned())
}

impl Maildir {
    pub fn new(root: PathBuf, fs: Arc<dyn Fs>) -> Maildir {
        Maildir { root, fs }
    }

    /// The folders, and the hierarchy delimiter.
    pub fn folders(&self) -> io::Result<(Vec<DiskFolder>, Option<char>)> {
        let mut dotted: Vec<DiskFolder> = Vec::new();
        let mut nested: Vec<DiskFolder> = Vec::new();
        let top = self.fs.list(&self.root)?;
        let mut inbox = is_maildir(&top).then(|| self.root.clone());
        for e in &top {
            let name = e.name.as_str();
            if e.kind != Kind::Dir || matches!(name, "cur" | "new" | "tmp") {
                continue;
            }
            let path = self.root.join(name);
            if let Some(wire) = name.strip_prefix('.') {
                if !wire.is_empty() && wire != "." && is_maildir(&self.listed(&path)?) {
                    dotted.push(DiskFolder {
                        name: decoded(wire),
                        wire: wire.to_owned(),
                        at: path,
                        selectable: true,
                        special_use: None,
                    });
                }
            } else if inbox.is_none()
                && name.eq_ignore_ascii_case("INBOX")
                && is_maildir(&self.listed(&path)?)
            {
                inbox = Some(path);
            } else {
                self.nested(&path, name, &mut nested)?;
            }
        }
        let delimiter = if dotted.is_empty() && !nested.is_empty() {
            '/'
        } else {
            '.'
        };
        let mut folders = if dotted.is_empty() { nested } else { dotted };
        if let Some(at) = inbox {
            folders.push(DiskFolder {
                name: "INBOX".into(),
                wire: "INBOX".into(),
                at,
                selectable: true,
                special_use: None,
            });
        }
        Ok((with_parents(folders, delimiter), Some(delimiter)))
    }

    /// A directory's entries; a directory gone meanwhile has none.
    /// The subscribed folders' names (see [`super::disk::subscriptions`]), `None` without
    /// a `subscriptions` file.
    pub fn subscriptions(&self, delimiter: char) -> io::Result<Option<Vec<String>>> {
        let text = self.fs.read(&self.root.join("subscriptions"))?;
        Ok(text.map(|t| super::disk::subscriptions(&String::from_utf8_lossy(&t), '.', delimiter)))
    }

    fn listed(&self, dir: &Path) -> io::Result<Vec<DirEntry>> {
        match self.fs.list(dir) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
            other => other,
        }
    }

    /// `LAYOUT=fs`: `dir` (named `wire` from the root) and what is below it.
    fn nested(&self, dir: &Path, wire: &str, out: &mut Vec<DiskFolder>) -> io::Result<()> {
        let entries = self.listed(dir)?;
        let here = is_maildir(&entries);
        let mut below = Vec::new();
        for e in &entries {
            let name = e.name.as_str();
            if e.kind == Kind::Dir
                && !name.starts_with('.')
                && !matches!(name, "cur" | "new" | "tmp")
            {
                below.push((dir.join(name), format!("{wire}/{name}")));
            }
        }
        if here {
            out.push(DiskFolder {
                name: wire.split('/').map(decoded).collect::<Vec<_>>().join("/"),
                wire: wire.to_owned(),
                at: dir.to_owned(),
                selectable: true,
                special_use: None,
            });
        }
        for (path, w) in below {
            self.nested(&path, &w, out)?;
        }
        Ok(())
    }

    /// The messages of `folder`: `new/` first, then `cur/`, so that a message moved from one
    /// to the other while they are read is still seen.
    pub fn scan(&self, folder: &DiskFolder) -> io::Result<Vec<Found>> {
        let keywords = keywords(self.fs.as_ref(), &folder.at);
        let mut out = Vec::new();
        for sub in ["new", "cur"] {
            let dir = folder.at.join(sub);
            for e in self.listed(&dir)? {
                let name = e.name.as_str();
                if name.starts_with('.') || e.kind != Kind::File {
                    continue;
                }
                let path = dir.join(name);
                let internal_date =
                    chrono::DateTime::from_timestamp(e.mtime, 0).map(|d| d.fixed_offset());
                let (base, info) = match name.split_once(':') {
                    Some((b, i)) => (b, Some(i)),
                    None => (name, None),
                };
                out.push(Found {
                    name: base.to_owned(),
                    flags: info.map(|i| flags(i, &keywords)).unwrap_or_default(),
                    internal_date,
                    place: Place::File(path),
                    meta: None,
                });
            }
        }
        Ok(out)
    }

    /// The files' bytes with CRLF line endings, in order; `None` for one that is gone.
    pub fn read(&self, found: &[&Found]) -> io::Result<Vec<Option<Vec<u8>>>> {
        let paths: Vec<PathBuf> = found
            .iter()
            .map(|f| match &f.place {
                Place::File(p) => p.clone(),
                Place::Range { file, .. } => file.clone(),
                Place::Item(_) => PathBuf::new(),
            })
            .collect();
        Ok(self
            .fs
            .read_many(&paths)?
            .into_iter()
            .map(|b| b.map(|b| crlf(&b)))
            .collect())
    }
}

/// The hierarchy levels named by `folders` that are not folders themselves, added as
/// `\Noselect` (Maildir++ keeps `.Archive.2019` without `.Archive`).
fn with_parents(mut folders: Vec<DiskFolder>, delimiter: char) -> Vec<DiskFolder> {
    let known: HashMap<String, ()> = folders.iter().map(|f| (f.wire.clone(), ())).collect();
    let mut parents: BTreeMap<String, ()> = BTreeMap::new();
    for f in &folders {
        let mut end = 0;
        while let Some(i) = f.wire[end..].find(delimiter) {
            let parent = &f.wire[..end + i];
            if !known.contains_key(parent) {
                parents.insert(parent.to_owned(), ());
            }
            end += i + 1;
        }
    }
    for (wire, ()) in parents {
        folders.push(DiskFolder {
            name: wire
                .split(delimiter)
                .map(decoded)
                .collect::<Vec<_>>()
                .join(&delimiter.to_string()),
            wire,
            at: PathBuf::new(),
            selectable: false,
            special_use: None,
        });
    }
    folders.sort_by(|a, b| a.wire.cmp(&b.wire));
    folders
}

/// `dovecot-keywords`: `0 $Forwarded` lines, keyword `a` being number 0.
fn keywords(fs: &dyn Fs, dir: &Path) -> HashMap<char, String> {
    let Ok(Some(bytes)) = fs.read(&dir.join("dovecot-keywords")) else {
        return HashMap::new();
    };
    String::from_utf8_lossy(&bytes)
        .lines()
        .filter_map(|line| {
            let (n, name) = line.split_once(' ')?;
            let n: u8 = n.trim().parse().ok()?;
            (n < 26).then(|| ((b'a' + n) as char, name.trim().to_owned()))
        })
        .collect()
}

/// The flags of a file name's info part (`2,FRS` and keyword letters).
fn flags(info: &str, keywords: &HashMap<char, String>) -> FlagSet {
    let Some(letters) = info.strip_prefix("2,") else {
        return FlagSet::new();
    };
    letters
        .chars()
        .filter_map(|c| match c {
            'D' => Some(Flag::Draft),
            'F' => Some(Flag::Flagged),
            'R' => Some(Flag::Answered),
            'S' => Some(Flag::Seen),
            'T' => Some(Flag::Deleted),
            'a'..='z' => keywords.get(&c).and_then(|k| Flag::parse(k)),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_letters_are_flags_and_keywords() {
        let kw: HashMap<char, String> = [('a', "$Forwarded".to_owned()), ('b', "Work".to_owned())]
            .into_iter()
            .collect();
        let f = flags("2,FRSTab", &kw);
        assert!(f.contains(&Flag::Flagged) && f.contains(&Flag::Answered));
        assert!(f.contains(&Flag::Seen) && f.contains(&Flag::Deleted));
        assert!(f.contains(&Flag::parse("$Forwarded").unwrap()));
        assert!(f.contains(&Flag::parse("Work").unwrap()));
        assert_eq!(f.len(), 6);
        assert!(flags("1,xyz", &kw).is_empty());
        assert_eq!(
            flags("2,Pc", &kw),
            FlagSet::new(),
            "P and unknown keywords have no flag"
        );
    }

    #[test]
    fn missing_levels_are_listed_noselect() {
        let f = |w: &str| DiskFolder {
            name: w.into(),
            wire: w.into(),
            at: PathBuf::from(w),
            selectable: true,
            special_use: None,
        };
        let all = with_parents(vec![f("Archive.2019"), f("Sent")], '.');
        let names: Vec<(&str, bool)> = all
            .iter()
            .map(|f| (f.wire.as_str(), f.selectable))
            .collect();
        assert_eq!(
            names,
            vec![("Archive", false), ("Archive.2019", true), ("Sent", true)]
        );
    }
}
