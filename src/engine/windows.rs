//! A first copy of a huge folder into an empty destination folder, window by window
//! ([`Windows`]), and its resumption after an interruption from the record it keeps (see
//! [`crate::imap::progress`]): what is held is one window's listing and the record of the
//! copies, never both folders' whole listings.

use std::collections::{BTreeMap, BTreeSet};

use super::FolderState;
use super::copy::{
    CopyResult, Pass, Target, apply_flags, copy_messages, planned, record_refusals, save,
};
use crate::imap::cache::{FolderCache, FolderStatus};
use crate::imap::command::UidSet;
use crate::imap::diff::{Entry, FolderDiff, Storable, Tally, diff};
use crate::imap::pairs::{KnownPair, KnownPairs};
use crate::imap::progress::{CopyProgress, ProgressLine, Started, WindowDone};
use crate::imap::proto::ImapError;
use crate::imap::report::{MessageRef, RefusedMessage};
use crate::imap::session::DestinationSession;
use crate::sources::SourceSession;

/// The source folder's UIDs in ranges of about [`super::Options::list_window`] messages,
/// for a first copy into an empty destination folder: listed and copied one after the
/// other, so that what is held is one window's listing and the record of the copies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Windows {
    /// UIDs per window: the window's size scaled by how sparse the folder's UIDs are.
    span: u32,
    /// The last UID the STATUS snapshot covers; the last window is open-ended (`n:*`), as a
    /// full pass's listing is.
    last: u32,
}

impl Windows {
    /// Windows when the pass is a first copy of a folder larger than one window into an
    /// empty destination folder (a Gmail pass reads labels across folders: never).
    pub(super) fn for_pass(
        window: u32,
        t: &Target<'_>,
        snaps: Option<(FolderStatus, FolderStatus)>,
    ) -> Option<Windows> {
        let (s, d) = snaps?;
        if t.labels.is_some() || d.messages > 0 || s.messages <= window.max(1) {
            return None;
        }
        Windows::of(window, s.uidnext.saturating_sub(1), s.messages)
    }

    fn of(window: u32, last: u32, messages: u32) -> Option<Windows> {
        let window = window.max(1);
        if messages <= window || last <= window {
            return None;
        }
        let span = u64::from(window) * u64::from(last) / u64::from(messages.max(1));
        let span = span.clamp(u64::from(window), u64::from(last)) as u32;
        Some(Windows { span, last })
    }

    pub(super) fn first(&self) -> UidSet {
        self.window(1).0
    }

    /// The first UID after the first window.
    pub(super) fn rest(&self) -> u32 {
        1 + self.span
    }

    /// The window that starts at `from`, and where the next one starts (`None` after the
    /// open-ended last one).
    pub(super) fn window(&self, from: u32) -> (UidSet, Option<u32>) {
        let end = from.saturating_add(self.span - 1);
        if end >= self.last {
            (UidSet::from(from), None)
        } else {
            (UidSet::range(from, end), Some(end + 1))
        }
    }
}

/// Where an interrupted copy picks up: its record, and what the destination holds after
/// the record's last window (copies of the window it was in, of the next one too when a
/// crash tore the record's last line, and mail delivered by others). Each window is
/// compared with what is left of those before it is copied.
pub(super) struct Resume {
    progress: CopyProgress,
    tail: Vec<Entry>,
    storable: Storable,
}

/// The record of a first copy in windows, if one was left for this folder and still
/// describes it (the same destination folder, both UIDVALIDITYs unchanged); one that does
/// not is removed.
pub(super) fn resumable(
    p: Pass<'_>,
    (src, dst): (FolderStatus, FolderStatus),
) -> Option<CopyProgress> {
    let Pass { engine, t, key } = p;
    let progress = match engine.store.load_progress(key) {
        Ok(progress) => progress?,
        Err(e) => {
            tracing::warn!(mailbox = %t.address, folder = %t.source, error = %e, "cannot read the record of an interrupted copy; comparing in full");
            return None;
        }
    };
    let s = &progress.started;
    let fits = t.labels.is_none()
        && s.dest_folder == t.dest
        && s.source.uidvalidity == src.uidvalidity
        && s.dest.uidvalidity == dst.uidvalidity;
    if !fits {
        tracing::info!(mailbox = %t.address, folder = %t.source, "the record of an interrupted copy no longer fits the folders; comparing in full");
        forget(p);
        return None;
    }
    tracing::info!(mailbox = %t.address, folder = %t.source, copied = progress.copied.len(), next = ?progress.next, "resuming an interrupted copy window by window");
    Some(progress)
}

/// Removes the folder's record (a full comparison or a cache supersedes it).
fn forget(p: Pass<'_>) {
    if let Err(e) = p.engine.store.save_progress(p.key, None) {
        tracing::warn!(mailbox = %p.t.address, folder = %p.t.source, error = %e, "cannot remove the record of an interrupted copy");
    }
}

fn record(p: Pass<'_>, line: &ProgressLine) -> Result<(), ImapError> {
    p.engine
        .store
        .save_progress(p.key, Some(line))
        .map_err(|e| super::unsaved(format!("recording the copy of {}", p.key), &e))
}

/// Resumes the copy `progress` records: the window it was in listed on the source, what
/// arrived on the destination after its last finished window listed there, and on from
/// that window (see [`crate::imap::progress`]).
pub(super) async fn resume(
    p: Pass<'_>,
    src: &mut SourceSession,
    dst: &mut DestinationSession,
    st: &mut FolderState,
    snaps: (FolderStatus, FolderStatus),
    progress: CopyProgress,
) -> Result<(), ImapError> {
    let t = p.t;
    let windows = Windows {
        span: progress.started.span,
        last: progress.started.last,
    };
    let next = progress.next;
    let tail = UidSet::from(progress.dest_next);
    let (source_side, dest_side) = tokio::join!(
        async {
            match next {
                Some(n) => {
                    src.examine_and_list(&t.source_wire, &windows.window(n).0)
                        .await
                }
                None => Ok((src.examine(&t.source_wire).await?, Vec::new())),
            }
        },
        dst.select_and_list(&t.dest_wire, &tail)
    );
    let (_, window) = source_side?;
    let (dst_sel, mut tail) = dest_side?;
    // `n:*` names the last message even when it is below `n`.
    tail.retain(|e| e.uid >= progress.dest_next);
    tail.sort_unstable_by_key(|e| e.uid);
    let r = Resume {
        progress,
        tail,
        storable: dst_sel.storable(),
    };
    in_windows(p, src, dst, st, snaps, windows, (window, next), Some(r)).await
}

/// The messages of `entries` (one window's listing) that `tail` already holds, as pairs
/// with their sizes, taken out of `tail`; their flags are brought up to date as a full
/// pass would.
async fn match_tail(
    dst: &mut DestinationSession,
    st: &mut FolderState,
    entries: &[Entry],
    tail: &mut Vec<Entry>,
    storable: &Storable,
) -> Result<Vec<(KnownPair, u64)>, ImapError> {
    if tail.is_empty() || entries.is_empty() {
        return Ok(Vec::new());
    }
    let d = diff(entries, tail, &KnownPairs::new(), storable);
    let failed = apply_flags(st, dst, &d.flag_updates).await?;
    if !failed.is_empty() {
        st.report.error = Some(super::copy::flag_error(&failed));
    }
    let unmatched: BTreeSet<u32> = d.extra.iter().chain(&d.surplus).copied().collect();
    let size: std::collections::HashMap<u32, u64> =
        tail.iter().map(|e| (e.uid, u64::from(e.size))).collect();
    let found = d
        .pairs
        .values()
        .map(|p| (p.clone(), size.get(&p.dest_uid).copied().unwrap_or(0)))
        .collect();
    tail.retain(|e| unmatched.contains(&e.uid));
    Ok(found)
}

/// A first copy into an empty destination folder, window by window ([`Windows`]): each
/// window's listing copied as a full pass copies its listing, then let go. The destination
/// was listed empty: every source message is copied (a message in the source twice, in two
/// windows or one, twice, as a multiset comparison has it), none is compared, and the cache
/// written at the end has the copies as its pairs. Each finished window is recorded (with
/// UIDPLUS: the record needs the copies' UIDs); `resume` continues a copy so recorded.
#[allow(clippy::too_many_arguments)]
pub(super) async fn in_windows(
    p: Pass<'_>,
    src: &mut SourceSession,
    dst: &mut DestinationSession,
    st: &mut FolderState,
    snaps: (FolderStatus, FolderStatus),
    windows: Windows,
    (first, from): (Vec<Entry>, Option<u32>),
    resume: Option<Resume>,
) -> Result<(), ImapError> {
    let Pass { t, key, .. } = p;
    let recording = dst.has_uidplus() && dst.next_uid(&t.dest_wire).is_some();
    let mut refused: BTreeMap<u32, RefusedMessage> = BTreeMap::new();
    let mut copy = CopyResult::default();
    let mut source = Tally::default();
    let mut missing: Vec<MessageRef> = Vec::new();
    let mut listed = 0u64;
    // The destination's messages after the record's last window, not yet matched.
    let mut tail: Vec<Entry> = Vec::new();
    let mut storable = Storable::Any;
    // What the record has (the rest of `copy` goes in the next line).
    let mut recorded = (0, Tally::default());
    // The copy's own snapshots: the cache records these, so that whatever changed on the
    // source since the copy began is found by the next pass.
    let (s, dsnap) = match resume {
        Some(r) => {
            let started = r.progress.started.clone();
            copy.copied = r.progress.copied;
            copy.tally = r.progress.dest;
            recorded.1 = r.progress.dest;
            source = r.progress.source;
            listed = source.messages;
            refused.extend(r.progress.refused.into_iter().map(|m| (m.message.uid, m)));
            missing = r.progress.missing;
            recorded.0 = copy.copied.len();
            tail = r.tail;
            storable = r.storable;
            (started.source, started.dest)
        }
        None => {
            if recording {
                record(
                    p,
                    &ProgressLine::Started(Started {
                        dest_folder: t.dest.to_owned(),
                        source: snaps.0,
                        dest: snaps.1,
                        span: windows.span,
                        last: windows.last,
                    }),
                )?;
            }
            snaps
        }
    };
    let (mut entries, mut from, mut next) = match from {
        Some(f) => (first, f, windows.window(f).1),
        None => (Vec::new(), windows.last.saturating_add(1), None),
    };
    loop {
        // An open-ended window's answer may include the folder's last message below it.
        entries.retain(|e| e.uid >= from);
        let tally = Tally::of(&entries);
        source = source + tally;
        listed += tally.messages;
        // Refused by an earlier attempt of this run: not tried again within it.
        for e in &entries {
            if let Some(r) = st.refused.get(&e.uid) {
                refused.insert(e.uid, r.clone());
            }
        }
        let found = match_tail(dst, st, &entries, &mut tail, &storable).await?;
        let found_uids: BTreeSet<u32> = found.iter().map(|(f, _)| f.source_uid).collect();
        for (pair, size) in found {
            copy.tally = copy.tally
                + Tally {
                    messages: 1,
                    bytes: size,
                };
            copy.copied.push(pair);
        }
        let to_copy: Vec<&Entry> = entries
            .iter()
            .filter(|e| !refused.contains_key(&e.uid) && !found_uids.contains(&e.uid))
            .collect();
        // What is left: this window, and the windows after it at the average size so far.
        let (now, now_bytes) = planned(&to_copy);
        let after = u64::from(s.messages).saturating_sub(listed);
        let average = source.bytes / source.messages.max(1);
        let left = (now + after, now_bytes + after * average);
        let before = copy.copied.len();
        let copied = copy_messages(
            p,
            src,
            dst,
            &to_copy,
            left,
            Some(dsnap.uidvalidity),
            st,
            &mut copy,
        )
        .await;
        record_refusals(st, &mut refused, &copy);
        copied?;
        let mut done: Vec<u32> = copy.copied[before..].iter().map(|c| c.source_uid).collect();
        done.sort_unstable();
        let window_missing: Vec<MessageRef> = to_copy
            .iter()
            .filter(|e| {
                done.binary_search(&e.uid).is_err()
                    && !copy.vanished.contains(&e.uid)
                    && !refused.contains_key(&e.uid)
            })
            .map(|e| MessageRef::from(*e))
            .collect();
        drop(to_copy);
        if recording && let Some((_, dest_next)) = dst.next_uid(&t.dest_wire) {
            let upto = next.unwrap_or(u32::MAX);
            record(
                p,
                &ProgressLine::Window(WindowDone {
                    next,
                    dest_next,
                    copied: copy.copied[recorded.0..].iter().cloned().collect(),
                    source: tally,
                    dest: Tally {
                        messages: copy.tally.messages - recorded.1.messages,
                        bytes: copy.tally.bytes - recorded.1.bytes,
                    },
                    refused: refused.range(from..upto).map(|(_, r)| r.clone()).collect(),
                    missing: window_missing.clone(),
                }),
            )?;
            recorded = (copy.copied.len(), copy.tally);
        }
        missing.extend(window_missing);
        let Some(start) = next else { break };
        let (set, after) = windows.window(start);
        (from, next) = (start, after);
        entries = src.fetch_meta(&set).await?;
    }
    drop(entries);
    // What no window accounted for: delivered by others.
    let unmatched = tail;

    let refused_all: Vec<RefusedMessage> = refused.values().cloned().collect();
    if copy.without_uid == 0 {
        let d = FolderDiff {
            source,
            extra: unmatched.iter().map(|e| e.uid).collect(),
            ..FolderDiff::default()
        };
        let copied_now = std::mem::take(&mut copy.copied);
        let mut c = FolderCache::after_full_pass(
            t.dest,
            s,
            dsnap,
            &d,
            &unmatched,
            copied_now,
            refused_all.clone(),
        );
        c.dest_tally = copy.tally;
        // The record goes with the cache written (`save` removes it first).
        save(p.engine, key, &c)?;
    } else {
        // Copied without UIDPLUS: which UIDs the copies got is only known by listing the
        // whole destination, which a full pass does (without a cache, the next one).
        tracing::info!(mailbox = %t.address, folder = %t.source, "the destination gave no UIDs for its copies; the next pass compares the folder in full");
        forget(p);
        missing.clear();
    }

    let r = &mut st.report;
    r.source_messages = source.messages;
    r.source_bytes = source.bytes;
    r.destination_messages = copy.tally.messages + unmatched.len() as u64;
    r.destination_bytes = copy.tally.bytes + Tally::of(&unmatched).bytes;
    r.missing = missing;
    r.surplus.clear();
    r.extra = unmatched.iter().map(MessageRef::from).collect();
    r.refused = refused_all;
    super::naming::name_messages(src, dst, r).await;
    r.skipped = 0;
    r.flags_differ = 0;
    st.full = true;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every window's set, in order, from `1`.
    fn sets(w: Windows) -> Vec<String> {
        let mut out = Vec::new();
        let mut from = Some(1);
        while let Some(f) = from {
            let (set, next) = w.window(f);
            out.push(set.to_string());
            from = next;
        }
        out
    }

    #[test]
    fn windows_cover_every_uid_once_and_the_last_is_open_ended() {
        // Dense UIDs: windows of the size asked for.
        let w = Windows::of(40, 100, 100).unwrap();
        assert_eq!(sets(w), ["1:40", "41:80", "81:*"]);
        assert_eq!(w.first().to_string(), "1:40");
        assert_eq!(w.rest(), 41);
        // Sparse UIDs (a tenth left after expunges): spans ten times as wide, so that a
        // window still holds about 40 messages.
        assert_eq!(
            sets(Windows::of(40, 1000, 100).unwrap()),
            ["1:400", "401:800", "801:*"]
        );
        // Exactly one window's worth past the first: no empty window at the end.
        assert_eq!(sets(Windows::of(50, 100, 100).unwrap()), ["1:50", "51:*"]);
        // A folder of one window or less is listed whole.
        assert_eq!(Windows::of(40, 1000, 40), None);
        assert_eq!(Windows::of(40, 40, 41), None);
        // More messages than UIDs below UIDNEXT (a server's STATUS racing an append): the
        // window's size holds.
        assert_eq!(
            sets(Windows::of(40, 90, 120).unwrap()),
            ["1:40", "41:80", "81:*"]
        );
    }
}
