//! What the Maildir and mbox readers find on disk, in the form the file source serves
//! it: folders, messages before they have a UID, where their bytes are.

use std::path::PathBuf;

use chrono::{DateTime, FixedOffset};

use crate::imap::diff::FlagSet;
use crate::imap::identity::MessageKey;

/// A folder as found on disk.
#[derive(Clone, Debug)]
pub struct DiskFolder {
    /// Decoded name, levels joined by the store's delimiter (`INBOX` for the inbox).
    pub name: String,
    /// The name as the engine sends it back (modified UTF-7, as an IMAP server would).
    pub wire: String,
    /// The Maildir directory or the mbox file.
    pub at: PathBuf,
    /// A level of the hierarchy that holds no messages itself (`\Noselect`).
    pub selectable: bool,
    /// The role the store itself gives the folder (a PST's Sent Items), as the SPECIAL-USE
    /// attribute an IMAP server would list.
    pub special_use: Option<&'static str>,
}

/// Where a message's bytes are.
#[derive(Clone, Debug)]
pub enum Place {
    /// A whole file (Maildir).
    File(PathBuf),
    /// Bytes `start..end` of an mbox file, the `From ` line excluded.
    Range { file: PathBuf, start: u64, end: u64 },
    /// A PST item, by its node identifier.
    Item(u32),
}

/// A message as a scan found it, before it has a UID.
#[derive(Clone, Debug)]
pub struct Found {
    /// Its stable name (see [`super::uids`]).
    pub name: String,
    pub flags: FlagSet,
    pub internal_date: Option<DateTime<FixedOffset>>,
    pub place: Place,
    /// Identity and size, when the scan read the message anyway (mbox).
    pub meta: Option<(MessageKey, u64)>,
}

/// `bytes` with every bare LF made CRLF, as an IMAP server gives a message stored with
/// Unix line endings (Dovecot does); CRLF already there stays as it is.
pub fn crlf(bytes: &[u8]) -> Vec<u8> {
    let extra = bytes.iter().filter(|&&b| b == b'\n').count();
    let mut out = Vec::with_capacity(bytes.len() + extra);
    let mut previous = 0u8;
    for &b in bytes {
        if b == b'\n' && previous != b'\r' {
            out.push(b'\r');
        }
        out.push(b);
        previous = b;
    }
    out
}

/// Dovecot's record of the subscribed folders (`subscriptions` in a Maildir, `.subscriptions`
/// in an mbox directory): since 2.x `V\t2`, an empty line, then one name per line with its
/// levels split by TAB; before that, one name per line as the storage spells it (levels
/// split by `storage_separator`). Levels are modified UTF-7. The names come back decoded,
/// levels joined by `delimiter`, as [`DiskFolder::name`] has them.
pub fn subscriptions(text: &str, storage_separator: char, delimiter: char) -> Vec<String> {
    let mut lines = text.lines().peekable();
    let split = if lines.peek().is_some_and(|l| l.trim_end() == "V\t2") {
        lines.next();
        '\t'
    } else {
        storage_separator
    };
    lines
        .map(|l| l.trim_end_matches('\r'))
        .filter(|l| !l.is_empty())
        .map(|l| {
            let levels: Vec<String> = l
                .split(split)
                .map(|level| crate::imap::mutf7::decode(level).unwrap_or_else(|_| level.to_owned()))
                .collect();
            levels.join(&delimiter.to_string())
        })
        .collect()
}

#[cfg(test)]
mod subscription_tests {
    use super::subscriptions;

    #[test]
    fn both_of_dovecots_subscription_formats_are_read() {
        // As Dovecot 2.3 wrote it (CREATE + SUBSCRIBE over IMAP on a Maildir).
        let v2 = "V\t2\n\nArchive\t2019\nProjekte\t&ANw-bersicht\nINBOX\n";
        assert_eq!(
            subscriptions(v2, '.', '.'),
            ["Archive.2019", "Projekte.Übersicht", "INBOX"]
        );
        assert_eq!(subscriptions(v2, '.', '/')[0], "Archive/2019");
        let v1 = "Archive.2019\nSent\n";
        assert_eq!(subscriptions(v1, '.', '/'), ["Archive/2019", "Sent"]);
        assert!(subscriptions("V\t2\n\n", '.', '.').is_empty());
    }
}
