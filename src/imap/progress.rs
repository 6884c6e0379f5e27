//! The record a first copy in windows keeps of the windows it has finished.
//!
//! A first copy of a huge folder lists the source a window at a time and copies each
//! window before listing the next (see `engine::folder`). Interrupted (killed, its
//! connection lost), the next pass finds a destination that is no longer empty, and
//! without a record it would compare the two folders whole: both listings of a million
//! messages in memory at once. So the copy writes a line when it starts ([`Started`]: the
//! snapshots it started from and its windows) and one per finished window
//! ([`WindowDone`]: the copies made, what was refused or left, where the next window
//! starts and the destination's UIDNEXT after it). A pass that finds the record resumes:
//! it lists the window it was in on the source and only what arrived after the last
//! finished window on the destination, compares the two, and goes on window by window.
//! The cache it writes at the end is the one the uninterrupted copy would have written;
//! then the record goes.

use serde::{Deserialize, Serialize};

use super::diff::Tally;
use super::pairs::{KnownPair, KnownPairs};
use super::report::{MessageRef, RefusedMessage};
use super::status::FolderStatus;

/// One line of the record. (Externally tagged: an internally tagged enum is read through
/// serde's buffer, which cannot give the pairs' map its integer keys.)
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ProgressLine {
    Started(Started),
    Window(WindowDone),
}

/// The copy as it began.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Started {
    pub dest_folder: String,
    /// Both folders' STATUS when the copy began: the cache it writes records these, so
    /// that what changed on the source meanwhile is found by the next pass.
    pub source: FolderStatus,
    pub dest: FolderStatus,
    /// The windows: UIDs per window, and the last UID the source's snapshot covered.
    pub span: u32,
    pub last: u32,
}

/// One window, finished.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WindowDone {
    /// Where the next window starts; `None` after the last one.
    pub next: Option<u32>,
    /// The destination folder's UIDNEXT after this window's copies: a copy made later
    /// has a UID from here on.
    pub dest_next: u32,
    pub copied: KnownPairs,
    /// The window's source messages, and what its copies added to the destination.
    pub source: Tally,
    pub dest: Tally,
    pub refused: Vec<RefusedMessage>,
    pub missing: Vec<MessageRef>,
}

/// The record, read: the copy as it began and everything its finished windows did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CopyProgress {
    pub started: Started,
    /// Where the copy goes on (`None`: every window is done, only the cache was not
    /// written).
    pub next: Option<u32>,
    pub dest_next: u32,
    pub copied: Vec<KnownPair>,
    pub source: Tally,
    pub dest: Tally,
    pub refused: Vec<RefusedMessage>,
    pub missing: Vec<MessageRef>,
}

impl CopyProgress {
    /// The record of `lines` (in the order written; a line torn by a crash is left out
    /// by the reader, with everything after it). `None` unless it starts with
    /// [`Started`].
    pub fn of(lines: impl IntoIterator<Item = ProgressLine>) -> Option<CopyProgress> {
        let mut lines = lines.into_iter();
        let ProgressLine::Started(started) = lines.next()? else {
            return None;
        };
        let mut p = CopyProgress {
            next: Some(1),
            dest_next: started.dest.uidnext,
            started,
            copied: Vec::new(),
            source: Tally::default(),
            dest: Tally::default(),
            refused: Vec::new(),
            missing: Vec::new(),
        };
        for line in lines {
            let ProgressLine::Window(w) = line else {
                // A second start: a copy begun again from scratch; only it counts.
                return None;
            };
            p.next = w.next;
            p.dest_next = w.dest_next;
            p.copied.extend(w.copied.values().cloned());
            p.source = p.source + w.source;
            p.dest = p.dest + w.dest;
            p.refused.extend(w.refused);
            p.missing.extend(w.missing);
        }
        Some(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::imap::diff::FlagSet;

    fn status(uidvalidity: u32, uidnext: u32, messages: u32) -> FolderStatus {
        FolderStatus::new(uidvalidity, uidnext, messages)
    }

    fn started() -> ProgressLine {
        ProgressLine::Started(Started {
            dest_folder: "INBOX".into(),
            source: status(7, 301, 300),
            dest: status(9, 1, 0),
            span: 100,
            last: 300,
        })
    }

    fn window(next: Option<u32>, dest_next: u32, pairs: &[(u32, u32)]) -> ProgressLine {
        ProgressLine::Window(WindowDone {
            next,
            dest_next,
            copied: pairs
                .iter()
                .map(|&(s, d)| KnownPair {
                    source_uid: s,
                    dest_uid: d,
                    flags: FlagSet::new(),
                })
                .collect(),
            source: Tally {
                messages: pairs.len() as u64,
                bytes: 10 * pairs.len() as u64,
            },
            dest: Tally {
                messages: pairs.len() as u64,
                bytes: 10 * pairs.len() as u64,
            },
            refused: Vec::new(),
            missing: Vec::new(),
        })
    }

    #[test]
    fn the_windows_done_add_up() {
        let p = CopyProgress::of([
            started(),
            window(Some(101), 3, &[(1, 1), (2, 2)]),
            window(Some(201), 4, &[(150, 3)]),
        ])
        .unwrap();
        assert_eq!(p.next, Some(201));
        assert_eq!(p.dest_next, 4);
        assert_eq!(
            p.copied.iter().map(|c| c.source_uid).collect::<Vec<_>>(),
            [1, 2, 150]
        );
        assert_eq!(p.source.messages, 3);
        assert_eq!(p.dest.bytes, 30);
    }

    #[test]
    fn a_copy_interrupted_in_its_first_window_resumes_from_the_start() {
        let p = CopyProgress::of([started()]).unwrap();
        assert_eq!((p.next, p.dest_next), (Some(1), 1));
        assert!(p.copied.is_empty());
    }

    #[test]
    fn a_record_without_its_start_or_begun_twice_is_none() {
        assert_eq!(CopyProgress::of([window(Some(101), 3, &[(1, 1)])]), None);
        assert_eq!(CopyProgress::of([started(), started()]), None);
        assert_eq!(CopyProgress::of([]), None);
    }

    #[test]
    fn lines_round_trip_through_json() {
        for line in [started(), window(None, 5, &[(3, 4)])] {
            let text = serde_json::to_string(&line).unwrap();
            assert_eq!(serde_json::from_str::<ProgressLine>(&text).unwrap(), line);
        }
    }
}
