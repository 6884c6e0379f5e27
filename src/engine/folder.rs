//! One pass over one source folder: decide how much work it needs, compare, copy, update
//! flags, write the cache. Follows the contract of [`crate::imap::cache`]: the folders'
//! STATUS is recorded before anything is listed, the cache is written only once the pass
//! completed, every copy is recorded with its APPENDUID (without UIDPLUS the destination is
//! listed again and compared before a cache is written), and three-way flag updates are
//! logged ahead (`with_pending`) before they are sent.

use std::collections::{BTreeMap, BTreeSet};

use super::copy::{
    CopyResult, Pass, Target, apply_flags, copy_messages, flag_error, planned, record_refusals,
    save,
};
use super::windows::{Windows, in_windows};
use super::{Engine, FolderState};
use crate::imap::cache::{
    CACHE_VERSION, CacheHead, FlagCheck, FolderCache, FolderCacheKey, FolderStatus, FullReason,
    ResyncNeed, resync_need,
};
use crate::imap::command::UidSet;
use crate::imap::diff::{Entry, Tally, diff};
use crate::imap::proto::ImapError;
use crate::imap::report::{MessageRef, RefusedMessage};
use crate::imap::session::DestinationSession;
use crate::sources::SourceSession;

/// Syncs one folder (see the module docs). A connection error leaves the folder for a
/// retry; anything the pass completed before it stays done.
pub(super) async fn sync_folder(
    engine: &Engine,
    src: &mut SourceSession,
    dst: &mut DestinationSession,
    t: &Target<'_>,
    st: &mut FolderState,
) -> Result<(), ImapError> {
    let key = FolderCacheKey::new(t.address, t.source);
    // A batch the last run sent and never heard back about may still land: seen first.
    let waited = super::landing::settle(engine, dst, &key).await?;
    // The snapshots come first: anything that happens after them shows up next time. Both
    // at once: they are independent, and on a re-sync with nothing to do they are the pass.
    let (src_status, dst_status) = match t.snapshot.filter(|_| !waited) {
        Some(taken) => taken,
        None => {
            let (s, d) = tokio::join!(src.status(&t.source_wire), dst.status(&t.dest_wire));
            (s?, d?)
        }
    };
    let unreadable = |e: anyhow::Error| {
        tracing::warn!(mailbox = %t.address, folder = %t.source, error = %e, "cannot read the cache; comparing in full");
    };
    // The head decides; the rest (a pair per message) is read only for a pass that uses it.
    let head = engine.store.load_head(&key).unwrap_or_else(|e| {
        unreadable(e);
        None
    });
    let snaps = src_status.snapshot().zip(dst_status.snapshot());
    let need = match &snaps {
        _ if t.labels.is_some_and(|l| l.archived_only) => {
            ResyncNeed::Full(FullReason::GmailArchive)
        }
        Some((s, d)) => resync_need(head.as_ref(), t.dest, s, d),
        None => ResyncNeed::Full(FullReason::NoCache),
    };
    let cache = match (&need, &head) {
        (ResyncNeed::Nothing, _) | (_, None) => None,
        _ => engine.store.load(&key).unwrap_or_else(|e| {
            unreadable(e);
            None
        }),
    };
    tracing::debug!(mailbox = %t.address, folder = %t.source, pass = %need, "folder pass");
    if matches!(need, ResyncNeed::Full(_)) {
        t.wake.work();
    }
    st.full = false;
    st.report.error = None;
    if st.refused_validity != src_status.uid_validity {
        st.refused.clear();
        st.refused_validity = src_status.uid_validity;
    }
    let pass = Pass {
        engine,
        t,
        key: &key,
    };
    let result = match (need.clone(), head, cache, snaps) {
        (ResyncNeed::Nothing, Some(h), _, Some((s, d))) => {
            nothing(st, &h, &s, &d);
            Ok(())
        }
        (
            ResyncNeed::Incremental {
                new_since_uid,
                flags,
            },
            _,
            Some(c),
            Some((s, d)),
        ) => incremental(pass, src, dst, st, c, (s, d), (new_since_uid, flags)).await,
        (_, _, cache, snaps) => full(pass, src, dst, st, cache, snaps).await,
    };
    st.report.pass = Some(need.to_string());
    result?;
    let r = &st.report;
    tracing::info!(
        mailbox = %t.address,
        folder = %t.source,
        destination = %t.dest,
        pass = %need,
        source_messages = r.source_messages,
        copied = r.copied,
        refused = r.refused.len(),
        flags_updated = r.flags_updated,
        "folder synced"
    );
    Ok(())
}

/// The cache proves nothing changed: its claims stand.
fn nothing(st: &mut FolderState, c: &CacheHead, s: &FolderStatus, d: &FolderStatus) {
    let r = &mut st.report;
    r.source_messages = u64::from(s.messages);
    r.source_bytes = c.source_tally.bytes;
    r.destination_messages = u64::from(d.messages);
    r.destination_bytes = c.dest_tally.bytes;
    r.skipped = c.pairs;
    r.missing.clear();
    r.surplus.clear();
    r.extra.clear();
    // The cache's refusals are tried again in a full pass: none when nothing is to do.
    r.refused = st.refused.values().cloned().collect();
}

async fn full(
    p: Pass<'_>,
    src: &mut SourceSession,
    dst: &mut DestinationSession,
    st: &mut FolderState,
    cache: Option<FolderCache>,
    snaps: Option<(FolderStatus, FolderStatus)>,
) -> Result<(), ImapError> {
    let Pass { engine, t, key } = p;
    // A first copy in windows that was interrupted goes on where it was.
    if let Some(snaps) = snaps
        && let Some(progress) = super::windows::resumable(p, snaps)
    {
        return super::windows::resume(p, src, dst, st, snaps, progress).await;
    }
    // Both listings at once: across a WAN each side is a round trip or two, and neither
    // depends on the other.
    let all = UidSet::all();
    let windows = Windows::for_pass(engine.options.list_window, t, snaps);
    let first = windows.as_ref().map_or_else(|| all.clone(), Windows::first);
    let (source_side, dest_side) = tokio::join!(
        src.examine_and_list(&t.source_wire, &first),
        dst.select_and_list(&t.dest_wire, &all)
    );
    // The source's error first, as when the listings were made one after the other.
    let (_, mut source_entries) = source_side?;
    let (dst_sel, mut dest_entries) = dest_side?;
    if let (Some(w), Some(snaps)) = (windows, snaps) {
        if dest_entries.is_empty() {
            return in_windows(p, src, dst, st, snaps, w, (source_entries, Some(1)), None).await;
        }
        // Mail arrived since the destination's STATUS: compared with the whole source, as
        // in any full pass.
        let rest = w.rest();
        source_entries.extend(
            src.fetch_meta(&UidSet::from(rest))
                .await?
                .into_iter()
                .filter(|e| e.uid >= rest),
        );
    }
    // By UID (as IMAP lists them already): what is looked up by UID below is found by
    // bisection, without an index of a million entries beside the listing.
    source_entries.sort_unstable_by_key(|e| e.uid);
    dest_entries.sort_unstable_by_key(|e| e.uid);
    let storable = dst_sel.storable();
    // The cache's pairs still name the same messages only under the same UIDVALIDITYs.
    let valid = cache.filter(|c| {
        snaps.is_some_and(|(s, d)| {
            c.version == CACHE_VERSION
                && c.dest_folder == t.dest
                && c.source.uidvalidity == s.uidvalidity
                && c.dest.uidvalidity == d.uidvalidity
        })
    });
    let known = valid
        .as_ref()
        .map(FolderCache::known_pairs)
        .unwrap_or_default();
    let mut d = diff(&source_entries, &dest_entries, &known, &storable);
    // What is held while copying grows with the folder: what is done with goes first. Of
    // the destination's listing only the messages the source lacks are read again (for the
    // cache and the report).
    drop(known);
    let unmatched: BTreeSet<u32> = d.extra.iter().chain(&d.surplus).copied().collect();
    dest_entries.retain(|e| unmatched.contains(&e.uid));
    dest_entries.shrink_to_fit();
    drop(unmatched);
    let uids_to_copy = std::mem::take(&mut d.to_copy);

    // Refused by an earlier attempt of this run: not tried again within it (it would be
    // refused again). Refused by an earlier run: tried again, its cause may be gone.
    let mut refused: BTreeMap<u32, RefusedMessage> = st.refused.clone();
    refused.retain(|u, _| uids_to_copy.binary_search(u).is_ok());
    let to_copy: Vec<&Entry> = uids_to_copy
        .iter()
        .filter(|u| !refused.contains_key(u))
        .filter_map(|u| by_uid(&source_entries, *u))
        .collect();
    drop(uids_to_copy);

    // Three-way updates lean on the cached base: log them ahead.
    if let Some(c) = valid {
        let pending = c.with_pending(&d.flag_updates);
        if !pending.pending.is_empty() {
            save(engine, key, &pending)?;
        }
    }
    let failed_flags = apply_flags(st, dst, &d.flag_updates).await?;

    let mut copy = CopyResult::default();
    let copied = copy_messages(
        p,
        src,
        dst,
        &to_copy,
        planned(&to_copy),
        snaps.map(|(_, d)| d.uidvalidity),
        st,
        &mut copy,
    )
    .await;
    record_refusals(st, &mut refused, &copy);
    copied?;

    let mut done: Vec<u32> = copy.copied.iter().map(|c| c.source_uid).collect();
    done.sort_unstable();
    // The cache, when this pass may write one; it takes the record of the copies over.
    let copied_now = std::mem::take(&mut copy.copied);
    let refused_all: Vec<RefusedMessage> = refused.values().cloned().collect();
    if let (Some((s, dsnap)), true) = (snaps, failed_flags.is_empty()) {
        let mut next = None;
        if copy.without_uid == 0 {
            let mut c = FolderCache::after_full_pass(
                t.dest,
                s,
                dsnap,
                &d,
                &dest_entries,
                copied_now,
                refused_all.clone(),
            );
            c.dest_tally = d.dest + copy.tally;
            next = Some(c);
        } else {
            // No UIDPLUS: which UIDs the copies got is only known by listing again.
            let dest_again = dst.fetch_meta(&UidSet::all()).await?;
            let d2 = diff(&source_entries, &dest_again, &d.pairs, &storable);
            let settled = d2
                .to_copy
                .iter()
                .all(|u| refused.contains_key(u) || copy.vanished.contains(u));
            if settled && d2.flag_updates.is_empty() {
                next = Some(FolderCache::after_full_pass(
                    t.dest,
                    s,
                    dsnap,
                    &d2,
                    &dest_again,
                    Vec::new(),
                    refused_all.clone(),
                ));
            } else {
                tracing::warn!(mailbox = %t.address, folder = %t.source, "the destination does not match after copying; no cache written");
            }
        }
        if let Some(c) = next {
            save(engine, key, &c)?;
        }
    }

    let pick = |entries: &[Entry], uids: &[u32]| -> Vec<MessageRef> {
        uids.iter()
            .filter_map(|u| by_uid(entries, *u))
            .map(MessageRef::from)
            .collect()
    };
    let r = &mut st.report;
    r.source_messages = d.source.messages;
    r.source_bytes = d.source.bytes;
    let dest_now = d.dest + copy.tally;
    r.destination_messages = dest_now.messages;
    r.destination_bytes = dest_now.bytes;
    // Copied without a known UID counts as copied too: the server said OK.
    let appended: BTreeSet<u32> = to_copy
        .iter()
        .map(|e| e.uid)
        .filter(|u| {
            done.binary_search(u).is_err() && !copy.vanished.contains(u) && !refused.contains_key(u)
        })
        .collect();
    let missing: Vec<u32> = if copy.without_uid > 0 {
        Vec::new()
    } else {
        appended.into_iter().collect()
    };
    r.missing = pick(&source_entries, &missing);
    r.surplus = pick(&dest_entries, &d.surplus);
    r.extra = pick(&dest_entries, &d.extra);
    r.refused = refused_all;
    super::naming::name_messages(src, dst, r).await;
    r.skipped = d.pairs.len() as u64;
    // What still differs after this pass's updates: changes the destination's user made,
    // which the three-way merge keeps.
    let updated = d.flag_updates.len().saturating_sub(failed_flags.len());
    r.flags_differ = d.flags_differ.saturating_sub(updated) as u64;
    if !failed_flags.is_empty() {
        r.error = Some(flag_error(&failed_flags));
    }
    st.full = true;
    Ok(())
}

/// `(new_since_uid, flags)`: what [`resync_need`] found to do.
async fn incremental(
    p: Pass<'_>,
    src: &mut SourceSession,
    dst: &mut DestinationSession,
    st: &mut FolderState,
    c: FolderCache,
    (s, d): (FolderStatus, FolderStatus),
    (new_since_uid, flags): (Option<u32>, FlagCheck),
) -> Result<(), ImapError> {
    let Pass { engine, t, key } = p;
    // Each side's steps at once with the other's, as in a full pass; the new messages'
    // listings pipelined behind the opens.
    let (src_side, dst_side) = tokio::join!(
        async {
            match new_since_uid {
                Some(since) => {
                    src.examine_and_list(&t.source_wire, &UidSet::from(since))
                        .await
                }
                None => Ok((src.examine(&t.source_wire).await?, Vec::new())),
            }
        },
        async {
            match new_since_uid {
                Some(_) => {
                    dst.select_and_list(&t.dest_wire, &UidSet::from(c.dest.uidnext))
                        .await
                }
                None => Ok((dst.select(&t.dest_wire).await?, Vec::new())),
            }
        }
    );
    let ((src_sel, mut source_new), (dst_sel, dest_new)) = (src_side?, dst_side?);
    source_new.sort_unstable_by_key(|e| e.uid);
    let storable = dst_sel.storable();
    // (Expunged again since the STATUS: nothing new after all, which the listing shows.)
    let new =
        new_since_uid.map(|since| c.incremental_diff(since, &source_new, &dest_new, &storable));
    let flags_now = match flags {
        _ if src_sel.exists == 0 => Vec::new(),
        FlagCheck::Unchanged => Vec::new(),
        FlagCheck::ChangedSince(m) => src.fetch_flags(&UidSet::all(), Some(m)).await?,
        FlagCheck::All => src.fetch_flags(&UidSet::all(), None).await?,
    };
    let three_way = c.flag_updates(&flags_now, &storable);
    if !three_way.is_empty() {
        save(engine, key, &c.with_pending(&three_way))?;
    }
    let mut updates = three_way;
    if let Some(n) = &new {
        updates.extend(n.flag_updates.iter().cloned());
    }
    let failed_flags = apply_flags(st, dst, &updates).await?;

    let mut refused: BTreeMap<u32, RefusedMessage> = st.refused.clone();
    let to_copy: Vec<&Entry> = match &new {
        Some(n) => n
            .to_copy
            .iter()
            .filter(|u| !refused.contains_key(u) && !c.is_refused(**u))
            .filter_map(|u| by_uid(&source_new, *u))
            .collect(),
        None => Vec::new(),
    };
    let mut copy = CopyResult::default();
    let copied = copy_messages(
        p,
        src,
        dst,
        &to_copy,
        planned(&to_copy),
        Some(d.uidvalidity),
        st,
        &mut copy,
    )
    .await;
    record_refusals(st, &mut refused, &copy);
    copied?;

    let new_source_bytes: u64 = new_since_uid.map_or(0, |since| {
        source_new
            .iter()
            .filter(|e| e.uid >= since)
            .map(|e| u64::from(e.size))
            .sum()
    });
    // Copies an earlier pass made are above the UIDNEXT it saw before copying, but already
    // in its tally: only the destination's own new messages count here.
    let paired: BTreeSet<u32> = c.pairs.values().map(|p| p.dest_uid).collect();
    let new_dest = Tally {
        messages: 0,
        bytes: dest_new
            .iter()
            .filter(|e| e.uid >= c.dest.uidnext && !paired.contains(&e.uid))
            .map(|e| u64::from(e.size))
            .sum(),
    };
    let source_tally = Tally {
        messages: u64::from(s.messages),
        bytes: c.source_tally.bytes + new_source_bytes,
    };
    let dest_tally = Tally {
        messages: u64::from(d.messages) + copy.tally.messages,
        bytes: c.dest_tally.bytes + new_dest.bytes + copy.tally.bytes,
    };
    if failed_flags.is_empty() && copy.without_uid == 0 {
        let mut next = c.after_incremental_pass(crate::imap::cache::IncrementalPass {
            source: s,
            dest: d,
            new: new.as_ref(),
            dest_new: &dest_new,
            copied: &copy.copied,
            flags_now: &flags_now,
            refused: refused.values().cloned().collect(),
        });
        next.source_tally = source_tally;
        next.dest_tally = dest_tally;
        save(engine, key, &next)?;
    }

    let r = &mut st.report;
    r.source_messages = source_tally.messages;
    r.source_bytes = source_tally.bytes;
    r.destination_messages = dest_tally.messages;
    r.destination_bytes = dest_tally.bytes;
    r.missing.clear();
    r.surplus.clear();
    r.extra.clear();
    r.refused = merged_refusals(c.refused.values(), refused.values());
    r.skipped = (c.pairs.len() + new.as_ref().map_or(0, |n| n.pairs.len())) as u64;
    r.flags_differ = 0;
    if !failed_flags.is_empty() {
        r.error = Some(flag_error(&failed_flags));
    }
    Ok(())
}

/// The entry with `uid` in `entries`, which are in ascending UID order.
fn by_uid(entries: &[Entry], uid: u32) -> Option<&Entry> {
    entries
        .binary_search_by_key(&uid, |e| e.uid)
        .ok()
        .map(|i| &entries[i])
}

fn merged_refusals<'a>(
    a: impl Iterator<Item = &'a RefusedMessage>,
    b: impl Iterator<Item = &'a RefusedMessage>,
) -> Vec<RefusedMessage> {
    let all: BTreeMap<u32, RefusedMessage> =
        a.chain(b).map(|r| (r.message.uid, r.clone())).collect();
    all.into_values().collect()
}
