//! mbox files, read without locking or changing them.
//!
//! - **Folders.** `path` is one file (INBOX) or a directory: each mbox file in it is a
//!   folder named after the file (modified UTF-7 decoded, as Dovecot writes names), each
//!   subdirectory a level of the hierarchy (`/`); a top-level file `inbox` (any case) or the
//!   `inbox` path of the manifest is INBOX. Files that do not start with `From ` are not
//!   mbox files and are skipped, and so are dot files (Dovecot's `.imap/`, `.subscriptions`).
//! - **Messages** begin after a `From ` line at the start of the file or after an empty
//!   line; the empty line before the next `From ` line is the separator, not the message's.
//!   Body lines are copied as stored by default, as Dovecot reads its own mbox files (it
//!   writes no quoting, and shows `>From ` as it is); with `quoting: mboxrd` one `>` goes
//!   from lines matching `>+From `, with `quoting: mboxo` `>From ` becomes `From `.
//! - **Flags and hidden headers**, as Dovecot reads them: `Status: R` is \Seen, `X-Status:`
//!   `A` \Answered, `F` \Flagged, `T` \Draft, `D` \Deleted; `X-Keywords:` names keywords.
//!   These headers and the other ones mbox servers keep for themselves (`Content-Length`,
//!   `X-IMAP`, `X-IMAPbase`, `X-UID`) are removed from the copy, as Dovecot hides them from
//!   its IMAP clients: they describe the old server's state, not the message.
//! - **INTERNALDATE** is the date of the `From ` line, read as UTC when it names no zone.
//! - **UIDs** are mailshift's own (see [`super::uids`]), by a digest of the message as copied
//!   and its rank among identical ones: a rewritten mbox (a message deleted by the old
//!   server) keeps the other messages' UIDs. `X-UID` headers are not used.

use std::collections::HashMap;
use std::io::{self, BufRead};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, FixedOffset, NaiveDateTime};
use sha2::{Digest, Sha256};

use super::disk::{DiskFolder, Found, Place, crlf};
use super::fs::{Fs, Kind};
use crate::imap::diff::{Flag, FlagSet};
use crate::imap::identity::MessageKey;
use crate::imap::mutf7;
use crate::spec::MboxQuoting;

/// Headers an mbox server keeps for itself (Dovecot's list): not part of the message.
const HIDDEN: [&str; 7] = [
    "content-length",
    "status",
    "x-imap",
    "x-imapbase",
    "x-keywords",
    "x-status",
    "x-uid",
];

/// One mailbox's mbox file or directory of them.
#[derive(Clone, Debug)]
pub struct Mbox {
    root: PathBuf,
    is_dir: bool,
    inbox: Option<PathBuf>,
    quoting: MboxQuoting,
    fs: Arc<dyn Fs>,
    /// The last scan of each file, by size and modification time: a pass's STATUS and
    /// EXAMINE read the file once.
    scans: Arc<Mutex<HashMap<PathBuf, Scan>>>,
}

/// A file's size and modification time when it was read, and its messages.
type Scan = (u64, (i64, u32), Vec<Found>);

fn decoded(wire: &str) -> String {
    mutf7::decode(wire).unwrap_or_else(|_| wire.to_owned())
}

/// Whether `path` is an mbox file: empty, or starting with `From `.
fn is_mbox(fs: &dyn Fs, path: &Path) -> bool {
    match fs.read_range(path, 0, 5) {
        Ok(Some(head)) => head.is_empty() || head == b"From ",
        _ => false,
    }
}

impl Mbox {
    pub fn new(
        root: PathBuf,
        is_dir: bool,
        inbox: Option<PathBuf>,
        quoting: MboxQuoting,
        fs: Arc<dyn Fs>,
    ) -> Mbox {
        Mbox {
            root,
            is_dir,
            inbox,
            quoting,
            fs,
            scans: Arc::default(),
        }
    }

    /// The subscribed folders' names from an mbox directory's `.subscriptions` (see
    /// [`super::disk::subscriptions`]), `None` without one (or for a single file).
    pub fn subscriptions(&self, delimiter: char) -> io::Result<Option<Vec<String>>> {
        if !self.is_dir {
            return Ok(None);
        }
        let text = self.fs.read(&self.root.join(".subscriptions"))?;
        Ok(text.map(|t| super::disk::subscriptions(&String::from_utf8_lossy(&t), '/', delimiter)))
    }

    pub fn folders(&self) -> io::Result<(Vec<DiskFolder>, Option<char>)> {
        let inbox = |at: PathBuf| DiskFolder {
            name: "INBOX".into(),
            wire: "INBOX".into(),
            at,
            selectable: true,
            special_use: None,
        };
        let mut out = Vec::new();
        if !self.is_dir {
            out.push(inbox(self.root.clone()));
            return Ok((out, None));
        }
        self.walk(&self.root, "", &mut out)?;
        if let Some(at) = &self.inbox {
            out.retain(|f| f.name != "INBOX");
            if self.fs.stat(at)?.is_some_and(|m| m.kind == Kind::File) {
                out.push(inbox(at.clone()));
            }
        }
        out.sort_by(|a, b| a.wire.cmp(&b.wire));
        Ok((out, Some('/')))
    }

    fn walk(&self, dir: &Path, prefix: &str, out: &mut Vec<DiskFolder>) -> io::Result<()> {
        for e in self.fs.list(dir)? {
            let name = e.name.as_str();
            if name.starts_with('.') || name.ends_with(".lock") {
                continue;
            }
            let path = dir.join(name);
            let wire = format!("{prefix}{name}");
            let display = wire.split('/').map(decoded).collect::<Vec<_>>().join("/");
            if e.kind == Kind::Dir {
                out.push(DiskFolder {
                    name: display,
                    wire: wire.clone(),
                    at: path.clone(),
                    selectable: false,
                    special_use: None,
                });
                self.walk(&path, &format!("{wire}/"), out)?;
            } else if e.kind == Kind::File && is_mbox(self.fs.as_ref(), &path) {
                let top_inbox = prefix.is_empty() && name.eq_ignore_ascii_case("inbox");
                out.push(DiskFolder {
                    name: if top_inbox { "INBOX".into() } else { display },
                    wire: if top_inbox { "INBOX".into() } else { wire },
                    at: path,
                    selectable: true,
                    special_use: None,
                });
            } else if e.kind == Kind::File {
                tracing::debug!(path = %path.display(), "not an mbox file; skipped");
            }
        }
        Ok(())
    }

    pub fn scan(&self, folder: &DiskFolder) -> io::Result<Vec<Found>> {
        let meta = self
            .fs
            .stat(&folder.at)?
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
        let stamp = (meta.size, (meta.mtime, meta.mtime_nanos));
        if let Some((len, at, found)) = self
            .scans
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&folder.at)
            && (*len, *at) == stamp
        {
            return Ok(found.clone());
        }
        let found = scan_file(self.fs.open(&folder.at)?, &folder.at, self.quoting)?;
        self.scans
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(folder.at.clone(), (stamp.0, stamp.1, found.clone()));
        Ok(found)
    }

    /// The message as copied; `None` when the file no longer holds it there (rewritten).
    pub fn read(&self, found: &Found) -> io::Result<Option<Vec<u8>>> {
        let Place::Range { file, start, end } = &found.place else {
            return Ok(None);
        };
        let Some(raw) = self.fs.read_range(file, *start, end - start)? else {
            return Ok(None);
        };
        let (bytes, _) = message(&raw, self.quoting);
        let digest = name_digest(&bytes);
        Ok(found.name.starts_with(&digest).then_some(bytes))
    }
}

fn name_digest(bytes: &[u8]) -> String {
    let d = Sha256::digest(bytes);
    d[..16].iter().map(|b| format!("{b:02x}")).collect()
}

fn is_blank(line: &[u8]) -> bool {
    line == b"\n" || line == b"\r\n"
}

/// Every message of an mbox file.
fn scan_file(
    mut reader: Box<dyn BufRead + Send>,
    path: &Path,
    quoting: MboxQuoting,
) -> io::Result<Vec<Found>> {
    let mut out = Vec::new();
    let mut seen: HashMap<String, u32> = HashMap::new();
    let mut current: Option<(u64, Option<DateTime<FixedOffset>>, Vec<u8>)> = None;
    let mut offset = 0u64;
    let mut previous_blank = true;
    let mut line = Vec::new();
    let mut finish = |cur: Option<(u64, Option<DateTime<FixedOffset>>, Vec<u8>)>,
                      out: &mut Vec<Found>| {
        let Some((start, date, mut raw)) = cur else {
            return;
        };
        // The separator's empty line is the mbox's, not the message's.
        if raw.ends_with(b"\r\n\r\n") || raw == b"\r\n" {
            raw.truncate(raw.len() - 2);
        } else if raw.ends_with(b"\n\n") || raw == b"\n" {
            raw.truncate(raw.len() - 1);
        }
        let (bytes, flags) = message(&raw, quoting);
        let digest = name_digest(&bytes);
        let rank = seen.entry(digest.clone()).or_default();
        *rank += 1;
        out.push(Found {
            name: format!("{digest}#{rank}"),
            flags,
            internal_date: date,
            place: Place::Range {
                file: path.to_owned(),
                start,
                end: start + raw.len() as u64,
            },
            meta: Some((MessageKey::from_header(&bytes), bytes.len() as u64)),
        });
    };
    loop {
        line.clear();
        let n = reader.read_until(b'\n', &mut line)?;
        if n == 0 {
            break;
        }
        // A separator as Dovecot reads one: after an empty line (or first in the file), with
        // a date; a body line `From me` after an empty line stays in its message.
        let date = (previous_blank && line.starts_with(b"From "))
            .then(|| from_line_date(&line))
            .flatten();
        if date.is_some() || (offset == 0 && line.starts_with(b"From ")) {
            finish(current.take(), &mut out);
            current = Some((offset + n as u64, date, Vec::new()));
        } else if let Some((_, _, raw)) = &mut current {
            raw.extend_from_slice(&line);
        }
        previous_blank = is_blank(&line);
        offset += n as u64;
    }
    finish(current.take(), &mut out);
    Ok(out)
}

/// The message as an IMAP server gives it (hidden headers out, quoting undone as asked,
/// CRLF), and the flags its hidden headers held.
fn message(raw: &[u8], quoting: MboxQuoting) -> (Vec<u8>, FlagSet) {
    let mut flags = FlagSet::new();
    let mut out = Vec::with_capacity(raw.len());
    let mut in_header = true;
    let mut hiding = false;
    for line in raw.split_inclusive(|&b| b == b'\n') {
        if in_header {
            if is_blank(line) {
                in_header = false;
                out.extend_from_slice(line);
                continue;
            }
            let continued = line.first().is_some_and(|b| *b == b' ' || *b == b'\t');
            if continued {
                if !hiding {
                    out.extend_from_slice(line);
                }
                continue;
            }
            let name = line.iter().position(|&b| b == b':').map(|i| {
                String::from_utf8_lossy(&line[..i])
                    .trim()
                    .to_ascii_lowercase()
            });
            hiding = name.as_deref().is_some_and(|n| HIDDEN.contains(&n));
            if hiding {
                let value = line
                    .iter()
                    .position(|&b| b == b':')
                    .map(|i| String::from_utf8_lossy(&line[i + 1..]).trim().to_owned())
                    .unwrap_or_default();
                read_flags(name.as_deref().unwrap_or_default(), &value, &mut flags);
            } else {
                out.extend_from_slice(line);
            }
            continue;
        }
        let quotes = line.iter().take_while(|&&b| b == b'>').count();
        let unquote = match quoting {
            MboxQuoting::None => false,
            MboxQuoting::Mboxrd => quotes > 0,
            MboxQuoting::Mboxo => quotes == 1,
        };
        if unquote && line[quotes..].starts_with(b"From ") {
            out.extend_from_slice(&line[1..]);
        } else {
            out.extend_from_slice(line);
        }
    }
    (crlf(&out), flags)
}

fn read_flags(header: &str, value: &str, flags: &mut FlagSet) {
    match header {
        "status" if value.contains('R') => {
            flags.insert(Flag::Seen);
        }
        "x-status" => {
            for c in value.chars() {
                match c {
                    'A' => flags.insert(Flag::Answered),
                    'F' => flags.insert(Flag::Flagged),
                    'T' => flags.insert(Flag::Draft),
                    'D' => flags.insert(Flag::Deleted),
                    _ => false,
                };
            }
        }
        "x-keywords" => {
            flags.extend(
                value
                    .split([' ', ','])
                    .filter(|k| !k.is_empty())
                    .filter_map(Flag::parse),
            );
        }
        _ => {}
    }
}

/// The date of `From sender Wed Jan  2 03:04:05 2019` (a zone after the year is used when
/// given, else UTC).
fn from_line_date(line: &[u8]) -> Option<DateTime<FixedOffset>> {
    const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    let text = String::from_utf8_lossy(line);
    let words: Vec<&str> = text.split_whitespace().collect();
    let i = (2..words.len()).find(|&i| DAYS.contains(&words[i]))?;
    let date = words.get(i..i + 5)?.join(" ");
    let naive = NaiveDateTime::parse_from_str(&date, "%a %b %d %H:%M:%S %Y").ok()?;
    let zone = words
        .get(i + 5)
        .and_then(|z| {
            DateTime::parse_from_str(&format!("2000-01-01 00:00:00 {z}"), "%Y-%m-%d %H:%M:%S %z")
                .ok()
        })
        .map(|d| *d.offset())
        .unwrap_or_else(|| FixedOffset::east_opt(0).expect("zero is a valid offset"));
    naive.and_local_timezone(zone).single()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hidden_headers_are_flags_and_quotes_are_undone() {
        let raw = b"Status: RO\nX-Status: AF\nX-Keywords: Work $Label1\nX-UID: 7\nSubject: hi\n\n>From here\n>>From there\n>Fromage\n";
        let (bytes, flags) = message(raw, MboxQuoting::Mboxrd);
        assert_eq!(
            bytes,
            b"Subject: hi\r\n\r\nFrom here\r\n>From there\r\n>Fromage\r\n".to_vec()
        );
        let (o, _) = message(raw, MboxQuoting::Mboxo);
        assert_eq!(
            o,
            b"Subject: hi\r\n\r\nFrom here\r\n>>From there\r\n>Fromage\r\n".to_vec()
        );
        let (none, _) = message(raw, MboxQuoting::None);
        assert!(none.ends_with(b"\r\n\r\n>From here\r\n>>From there\r\n>Fromage\r\n"));
        for f in ["\\Seen", "\\Answered", "\\Flagged", "Work", "$Label1"] {
            assert!(flags.contains(&Flag::parse(f).unwrap()), "{f}");
        }
        assert_eq!(flags.len(), 5);
    }

    #[test]
    fn from_lines_give_dates() {
        let d = from_line_date(b"From MAILER-DAEMON  Wed Jan  2 03:04:05 2019\n").unwrap();
        assert_eq!(d.to_rfc3339(), "2019-01-02T03:04:05+00:00");
        let z = from_line_date(b"From a@b Sat Feb 16 10:00:00 2019 +0200\n").unwrap();
        assert_eq!(z.to_rfc3339(), "2019-02-16T10:00:00+02:00");
    }

    #[test]
    fn messages_are_split_at_from_lines_after_empty_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("box");
        std::fs::write(
            &path,
            b"From a Wed Jan  2 03:04:05 2019\nSubject: one\n\nhello\nFrom inside, unquoted\n\nFrom b Wed Jan  2 03:04:06 2019\nSubject: two\n\nbody\n\n",
        )
        .unwrap();
        let fs = Arc::new(super::super::fs::Local);
        let found = scan_file(fs.open(&path).unwrap(), &path, MboxQuoting::None).unwrap();
        assert_eq!(found.len(), 2);
        let mbox = Mbox::new(path.clone(), false, None, MboxQuoting::None, fs);
        let first = mbox.read(&found[0]).unwrap().unwrap();
        assert_eq!(
            first,
            b"Subject: one\r\n\r\nhello\r\nFrom inside, unquoted\r\n".to_vec()
        );
        let second = mbox.read(&found[1]).unwrap().unwrap();
        assert_eq!(second, b"Subject: two\r\n\r\nbody\r\n".to_vec());
        assert_eq!(found[0].meta.as_ref().unwrap().1, first.len() as u64);
    }
}
