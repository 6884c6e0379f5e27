//! What every pass of a folder shares: which folder goes where ([`Target`], [`Pass`]),
//! and the copy itself ([`copy_messages`]): bodies read ahead on the source in batches,
//! checked against their listing, appended in order on the destination (each batch
//! recorded while it is on the wire, see [`crate::imap::in_flight`]), every outcome
//! recorded.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::{Engine, FolderState, Progress};
use crate::imap::cache::{Copied, FolderCache, FolderCacheKey};
use crate::imap::command::UidSet;
use crate::imap::diff::{Entry, FlagUpdate, Tally};
use crate::imap::in_flight::InFlight;
use crate::imap::proto::ImapError;
use crate::imap::report::{MessageRef, RefusedMessage};
use crate::imap::session::{
    AppendOutcome, BodyFetches, DestinationSession, MailboxStatus, Outgoing,
};
use crate::sources::SourceSession;

/// Which folder, and where it goes.
pub(super) struct Target<'a> {
    pub address: &'a str,
    /// Source folder, decoded.
    pub source: &'a str,
    pub source_wire: String,
    /// Destination folder, decoded.
    pub dest: &'a str,
    pub dest_wire: String,
    /// Told when this pass turns out to be real work (a full comparison, messages to copy),
    /// so that the mailbox's other folders may start on a connection pair of their own.
    pub wake: &'a super::Wake,
    /// This pass's share of the mailbox's batch budget ([`super::Options::batch_bytes`]).
    pub batch_bytes: u64,
    /// Both sides' STATUS, when taken already (with other folders', in one round trip).
    pub snapshot: Option<(MailboxStatus, MailboxStatus)>,
    /// How the pass reads Gmail's labels (a Gmail source only).
    pub labels: Option<crate::imap::folders::LabelPass>,
}

/// What every step of one folder's pass reads: the engine, the folder and its cache key.
#[derive(Clone, Copy)]
pub(super) struct Pass<'a> {
    pub engine: &'a Engine,
    pub t: &'a Target<'a>,
    pub key: &'a FolderCacheKey,
}

/// A batch as appended: what was listed, what the source sent, what the destination said,
/// and which UIDs the source answered wrongly.
struct Appended<'a> {
    batch: &'a [&'a Entry],
    fetched: &'a [Outgoing],
    outcomes: &'a [AppendOutcome],
    faulted: &'a BTreeSet<u32>,
}

/// What the copy loop did.
#[derive(Debug, Default)]
pub(super) struct CopyResult {
    pub copied: Vec<Copied>,
    /// Appended, but the server did not say under which UID (no UIDPLUS).
    pub without_uid: usize,
    pub refused: Vec<RefusedMessage>,
    /// Listed, but gone from the source by the time it was fetched.
    pub vanished: BTreeSet<u32>,
    pub tally: Tally,
}

pub(super) fn record_refusals(
    st: &mut FolderState,
    refused: &mut BTreeMap<u32, RefusedMessage>,
    copy: &CopyResult,
) {
    for r in &copy.refused {
        st.refused.insert(r.message.uid, r.clone());
        refused.insert(r.message.uid, r.clone());
    }
}

pub(super) fn save(
    engine: &Engine,
    key: &FolderCacheKey,
    cache: &FolderCache,
) -> Result<(), ImapError> {
    // A first copy's record goes first: a cache supersedes it, and one left beside the
    // cache would be resumed by a later full pass that must compare everything.
    engine
        .store
        .save_progress(key, None)
        .and_then(|()| engine.store.save(key, cache))
        .map_err(|e| super::unsaved(format!("saving the cache of {key}"), &e))
}

pub(super) fn flag_error(failed: &[(FlagUpdate, String)]) -> String {
    format!(
        "{} flag update(s) refused by the destination: {}",
        failed.len(),
        failed.first().map(|(_, r)| r.as_str()).unwrap_or("")
    )
}

pub(super) async fn apply_flags(
    st: &mut FolderState,
    dst: &mut DestinationSession,
    updates: &[FlagUpdate],
) -> Result<Vec<(FlagUpdate, String)>, ImapError> {
    if updates.is_empty() {
        return Ok(Vec::new());
    }
    let failed = dst.store(updates).await?;
    let failed_uids: BTreeSet<u32> = failed.iter().map(|(u, _)| u.dest_uid).collect();
    st.report.flags_updated += updates
        .iter()
        .filter(|u| !failed_uids.contains(&u.dest_uid))
        .count() as u64;
    Ok(failed)
}

/// What is left to copy when `entries` are: all of it (messages, bytes).
pub(super) fn planned(entries: &[&Entry]) -> (u64, u64) {
    let bytes = entries.iter().map(|e| u64::from(e.size)).sum();
    (entries.len() as u64, bytes)
}

/// Splits `entries` (ascending UIDs) into batches of at most `max_bytes` bytes (or one
/// message, if larger) and `max_messages` messages.
fn batches<'e>(
    entries: &'e [&'e Entry],
    max_bytes: u64,
    max_messages: usize,
) -> Vec<&'e [&'e Entry]> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut bytes = 0u64;
    for (i, e) in entries.iter().enumerate() {
        let count = i - start;
        if count > 0 && (bytes + u64::from(e.size) > max_bytes || count >= max_messages.max(1)) {
            out.push(&entries[start..i]);
            start = i;
            bytes = 0;
        }
        bytes += u64::from(e.size);
    }
    if start < entries.len() {
        out.push(&entries[start..]);
    }
    out
}

/// The in-flight window is split into this many batches: while one is appended, the others
/// are asked for, so the source's link carries the next answers while the last one is being
/// read and appended (a round trip per batch otherwise, a quarter of a 100 Mbit/s link at
/// 50 ms).
const BATCHES_IN_WINDOW: u64 = 4;

/// A batch fetched and checked, on its way to the destination, holding its share of the
/// window until it is appended.
struct Ready<'b, 'c> {
    index: usize,
    batch: &'b [&'b Entry],
    good: Vec<Outgoing>,
    faults: Vec<super::answers::Fault>,
    _window: tokio::sync::SemaphorePermit<'c>,
}

/// Copies `entries` (source messages, ascending UIDs). Bodies are read ahead of the
/// appends: the batches are asked for on the source (several at once, pipelined) as long as
/// what was asked for and not yet appended fits the window of twice this pass's
/// [`Target::batch_bytes`], and appended in order on the destination meanwhile. A batch of
/// one message larger than the window has it to itself, so memory stays near the window or
/// the largest message. Whatever completes is recorded in `out` (and in the folder's
/// report) even when a connection is lost midway.
#[allow(clippy::too_many_arguments)]
pub(super) async fn copy_messages(
    p: Pass<'_>,
    src: &mut SourceSession,
    dst: &mut DestinationSession,
    entries: &[&Entry],
    (messages, bytes): (u64, u64),
    dest_validity: Option<u32>,
    st: &mut FolderState,
    out: &mut CopyResult,
) -> Result<(), ImapError> {
    if entries.is_empty() {
        return Ok(());
    }
    let Pass { engine, t, .. } = p;
    t.wake.work();
    engine.observer.progress(Progress::Planned {
        address: t.address,
        folder: t.source,
        messages,
        bytes,
    });
    let opts = &engine.options;
    // Permits are bytes; a window past u32 (4 GB) would not be memory bounded anyway.
    let window = t
        .batch_bytes
        .saturating_mul(2)
        .clamp(1, u64::from(u32::MAX));
    // With rates set, a batch is at most a second's worth: paced smoothly, not in bursts.
    let (cap_bytes, cap_messages) = engine.batch_cap();
    let batches = batches(
        entries,
        (window / BATCHES_IN_WINDOW).max(1).min(cap_bytes),
        opts.batch_messages.min(cap_messages),
    );
    let credit = tokio::sync::Semaphore::new(window as usize);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Ready<'_, '_>>();
    let mut fetches = BodyFetches::default();
    let reading = read_ahead(p, src, &mut fetches, &batches, &credit, window, tx);
    let writing = async {
        let result = async {
            while let Some(ready) = rx.recv().await {
                append_batch(p, dst, ready, batches.len(), dest_validity, st, out).await?;
            }
            Ok(())
        }
        .await;
        // The reader stops asking once the window cannot free up any more.
        credit.close();
        rx.close();
        result
    };
    let (read, written) = tokio::join!(reading, writing);
    let result = match (read, written) {
        (Err(e), _) if e.is_connection_lost() => Err(e),
        (_, Err(e)) => Err(e),
        (read, Ok(())) => read,
    };
    match result {
        // The source goes on to other folders: answers still on their way are read first
        // (and dropped), else they would be taken for the next command's.
        Err(e) if !e.is_connection_lost() && !fetches.is_empty() => {
            src.discard(&mut fetches).await?;
            Err(e)
        }
        result => result,
    }
}

/// The source's side of [`copy_messages`]: asks for the batches in order as the window
/// and the limits allow (the daily budgets grant a batch, or the first messages of it, or
/// pause the copy; the rates pace it), reads and checks each answer, and hands it on. Stops
/// quietly when the appending side has stopped (its error says why); a pause is returned
/// once everything granted before it has been handed on.
async fn read_ahead<'b, 'c>(
    p: Pass<'_>,
    src: &mut SourceSession,
    fetches: &mut BodyFetches,
    batches: &[&'b [&'b Entry]],
    credit: &'c tokio::sync::Semaphore,
    window: u64,
    tx: tokio::sync::mpsc::UnboundedSender<Ready<'b, 'c>>,
) -> Result<(), ImapError> {
    use tokio::sync::TryAcquireError;
    let Pass { engine, t, .. } = p;
    let mut pending: std::collections::VecDeque<&'b [&'b Entry]> =
        batches.iter().copied().collect();
    let mut held = std::collections::VecDeque::new();
    let mut paused = None;
    for index in 0.. {
        while let Some(&next) = pending.front() {
            let bytes: u64 = next.iter().map(|e| u64::from(e.size)).sum();
            let need = bytes.clamp(1, window) as u32;
            let permit = if fetches.is_empty() {
                // Nothing to read meanwhile: wait until an append frees the window.
                match credit.acquire_many(need).await {
                    Ok(p) => p,
                    Err(_) => return Ok(()),
                }
            } else {
                match credit.try_acquire_many(need) {
                    Ok(p) => p,
                    Err(TryAcquireError::NoPermits) => break,
                    Err(TryAcquireError::Closed) => return Ok(()),
                }
            };
            let granted = match engine.admit(t.address, next) {
                Ok(n) => n,
                Err(pause) => {
                    pending.clear();
                    paused = Some(pause);
                    break;
                }
            };
            let (now, rest) = next.split_at(granted);
            pending.pop_front();
            if !rest.is_empty() {
                pending.push_front(rest);
            }
            let bytes: u64 = now.iter().map(|e| u64::from(e.size)).sum();
            engine.governors.0.pace(now.len(), bytes).await;
            let uids: Vec<u32> = now.iter().map(|e| e.uid).collect();
            let largest = now.iter().map(|e| u64::from(e.size)).max().unwrap_or(0);
            src.send_bodies(fetches, &uids, largest).await?;
            held.push_back((permit, now));
            tracing::trace!(mailbox = %t.address, folder = %t.source, batch = index + held.len(), outstanding = fetches.len(), "bodies asked for");
        }
        let Some((window_share, batch)) = held.pop_front() else {
            break;
        };
        let fetched = src.next_bodies(fetches).await?.unwrap_or_default();
        // Nothing is appended that is not what was asked for.
        let (good, mut faults) = super::answers::check(batch, fetched);
        // A message not sent at all was usually expunged meanwhile; one the source still
        // lists was left out, and is not a copy to count as done.
        let unanswered = super::answers::unanswered(batch, &good, &faults);
        if !unanswered.is_empty() {
            src.settle(fetches).await?;
            let still = src.fetch_flags(&UidSet::of(&unanswered), None).await?;
            faults.extend(
                still
                    .into_iter()
                    .map(|(uid, _)| uid)
                    .filter(|uid| unanswered.contains(uid))
                    .map(super::answers::left_out),
            );
        }
        let ready = Ready {
            index,
            batch,
            good,
            faults,
            _window: window_share,
        };
        if tx.send(ready).is_err() {
            return Ok(());
        }
    }
    match paused {
        Some(pause) => Err(ImapError::Paused(pause)),
        None => Ok(()),
    }
}

/// The destination's side of [`copy_messages`]: one checked batch appended and recorded.
async fn append_batch(
    p: Pass<'_>,
    dst: &mut DestinationSession,
    ready: Ready<'_, '_>,
    of: usize,
    dest_validity: Option<u32>,
    st: &mut FolderState,
    out: &mut CopyResult,
) -> Result<(), ImapError> {
    let t = p.t;
    let Ready {
        index,
        batch,
        good,
        faults,
        _window,
    } = ready;
    let faulted = source_faults(t, batch, faults, out);
    let bytes = good.iter().map(|m| m.body.len() as u64).sum();
    p.engine.governors.1.pace(good.len(), bytes).await;
    // Recorded until answered: a later pass must not list the destination while it may
    // still land (see `crate::imap::in_flight`).
    let sent = dst.sendable(&good);
    let in_flight = dst
        .next_uid(&t.dest_wire)
        .filter(|_| sent > 0)
        .map(|next| InFlight::new(&t.dest_wire, next, sent));
    if in_flight.is_some() {
        super::landing::record(p.engine, p.key, in_flight.as_ref())?;
    }
    let appended = dst.append(&t.dest_wire, &good).await;
    if in_flight.is_some() && !matches!(&appended, Err(e) if super::landing::unanswered(e)) {
        super::landing::record(p.engine, p.key, None)?;
    }
    let outcomes = appended?;
    if !dst.takes_binary() {
        note_inexact(t, &good, &outcomes, st);
    }
    tracing::debug!(mailbox = %t.address, folder = %t.source, batch = index + 1, of, messages = good.len(), "batch appended");
    record_batch(
        p,
        Appended {
            batch,
            fetched: &good,
            outcomes: &outcomes,
            faulted: &faulted,
        },
        dest_validity,
        st,
        out,
    );
    // `_window` goes with the bodies: the reader may ask for more.
    Ok(())
}

/// Lists the appended messages whose NULs the destination could not take (see
/// [`crate::imap::binary`]).
fn note_inexact(
    t: &Target<'_>,
    fetched: &[Outgoing],
    outcomes: &[AppendOutcome],
    st: &mut FolderState,
) {
    for (m, outcome) in fetched.iter().zip(outcomes) {
        if matches!(outcome, AppendOutcome::Appended(_))
            && crate::imap::binary::needs_literal8(&m.body)
        {
            tracing::warn!(mailbox = %t.address, folder = %t.source, uid = m.uid, "message with NUL bytes copied with 0x80 in their place: the destination does not offer BINARY");
            st.report.inexact.push(MessageRef::of_message(
                m.uid,
                &m.body,
                m.internal_date,
                m.body.len() as u64,
            ));
        }
    }
}

/// Reports the messages the source answered wrongly (see [`super::answers`]) as refused,
/// with the source's fault as the reason; returns their UIDs.
fn source_faults(
    t: &Target<'_>,
    batch: &[&Entry],
    faults: Vec<super::answers::Fault>,
    out: &mut CopyResult,
) -> BTreeSet<u32> {
    let mut faulted = BTreeSet::new();
    for f in faults {
        tracing::warn!(mailbox = %t.address, folder = %t.source, uid = f.uid, reason = %f.reason, "the source answered wrongly; message not copied");
        let Some(e) = batch.iter().find(|e| e.uid == f.uid).filter(|_| f.listed) else {
            continue;
        };
        faulted.insert(f.uid);
        out.refused.push(RefusedMessage {
            message: MessageRef::from(*e),
            reason: format!("source fault: {}", f.reason),
        });
    }
    faulted
}

fn record_batch(
    p: Pass<'_>,
    a: Appended<'_>,
    dest_validity: Option<u32>,
    st: &mut FolderState,
    out: &mut CopyResult,
) {
    let Pass { engine, t, .. } = p;
    let Appended {
        batch,
        fetched,
        outcomes,
        faulted,
    } = a;
    let listed: HashMap<u32, &Entry> = batch.iter().map(|e| (e.uid, *e)).collect();
    let got: BTreeSet<u32> = fetched.iter().map(|m| m.uid).collect();
    for e in batch {
        if !got.contains(&e.uid) && !faulted.contains(&e.uid) {
            tracing::info!(mailbox = %t.address, folder = %t.source, uid = e.uid, "message gone from the source before it was copied");
            out.vanished.insert(e.uid);
        }
    }
    let mut bytes = 0u64;
    for (m, outcome) in fetched.iter().zip(outcomes) {
        let size = m.body.len() as u64;
        bytes += size;
        match outcome {
            AppendOutcome::Appended(uid) => {
                out.tally.messages += 1;
                out.tally.bytes += size;
                st.report.copied += 1;
                st.report.copied_bytes += size;
                match uid {
                    Some((validity, dest_uid)) if Some(*validity) == dest_validity => {
                        out.copied.push(Copied {
                            source_uid: m.uid,
                            dest_uid: *dest_uid,
                            flags: m.flags.clone(),
                        });
                    }
                    _ => out.without_uid += 1,
                }
            }
            AppendOutcome::Refused(reason) => {
                let message = match listed.get(&m.uid) {
                    Some(e) => MessageRef::from(*e).named_from(&m.body),
                    None => MessageRef::of_message(m.uid, &m.body, m.internal_date, size),
                };
                tracing::warn!(
                    mailbox = %t.address,
                    folder = %t.source,
                    message = %message.name(),
                    date = ?message.date.map(|d| d.to_rfc3339()),
                    size = message.size,
                    reason = %reason,
                    "message refused by the destination; skipped"
                );
                out.refused.push(RefusedMessage {
                    message,
                    reason: reason.clone(),
                });
            }
        }
    }
    engine.observer.progress(Progress::Copied {
        address: t.address,
        folder: t.source,
        messages: batch.len() as u64,
        bytes,
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::imap::identity::MessageKey;

    fn e(uid: u32, size: u32) -> Entry {
        Entry {
            uid,
            key: MessageKey::of_message_id(&format!("{uid}@x")),
            flags: Default::default(),
            internal_date: None,
            size,
        }
    }

    #[test]
    fn batches_are_bounded_by_bytes_and_count() {
        let entries: Vec<Entry> = [10, 10, 10, 50, 5, 5, 5, 5, 5]
            .iter()
            .enumerate()
            .map(|(i, s)| e(i as u32 + 1, *s))
            .collect();
        let entries: Vec<&Entry> = entries.iter().collect();
        let b = batches(&entries, 30, 4);
        let sizes: Vec<Vec<u32>> = b
            .iter()
            .map(|b| b.iter().map(|e| e.uid).collect())
            .collect();
        // 10+10+10 fits 30; 50 alone (larger than the bound); then 4 at most per batch.
        assert_eq!(
            sizes,
            vec![vec![1, 2, 3], vec![4], vec![5, 6, 7, 8], vec![9]]
        );
        assert!(batches(&[], 30, 4).is_empty());
    }
}
