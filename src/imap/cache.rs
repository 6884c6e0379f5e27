//! The per-folder sync cache, and the decision of how much work a re-sync needs.
//!
//! The servers are the truth; this cache only lets a pass **skip work that the servers' own
//! state proves unneeded**. It never decides that a message is on the destination by itself:
//! every shortcut below is justified by what IMAP guarantees about UIDVALIDITY, UIDNEXT,
//! MESSAGES and HIGHESTMODSEQ, and anything it cannot justify is a full comparison.
//!
//! # What a cache entry claims
//!
//! A [`FolderCache`] is written (by the store component) only after a pass over the folder
//! **completed**: every source message listed was found on, copied to or refused by the
//! destination, and every flag update was applied. It records:
//!
//! - `source` and `dest`: the folders' status **taken before the pass listed them**. Anything
//!   that happened after the snapshot (a delivery, a flag change, an expunge, our own
//!   appends) is therefore *after* the recorded state and shows up as a change next time,
//!   so the snapshot can only make the next pass do more, never less.
//! - `pairs`: every source message known to be on the destination, with the destination
//!   UID and the source's flags as last applied (the base of the three-way flag merge).
//!   Copies must be recorded with their UIDs (APPENDUID, RFC 4315); a pass whose copies'
//!   UIDs are unknown (no UIDPLUS) must list the destination again and diff before it may
//!   write a cache, or not write one.
//! - `unpaired_dest`: destination messages below `dest.uidnext` that no source message of this
//!   folder is paired with (the destination's own mail, or a merged folder's). A new source
//!   message may match one of these, exactly as it would in a full comparison.
//! - `refused`: source messages the destination refused, not retried while the folder's
//!   UIDVALIDITY stands.
//! - `pending`: three-way flag updates a pass is about to send (see below).
//!
//! Its [`CacheHead`] (the statuses and how many pairs, refusals and pending updates) is all
//! [`resync_need`] reads: a store keeps it where it can be read without the pairs.
//!
//! # Why the shortcuts are safe
//!
//! - **UIDVALIDITY** unchanged on both sides means a UID still names the same message
//!   (RFC 3501 §2.3.1.1); otherwise every recorded UID is meaningless: full.
//! - **No expunge** is proven by arithmetic, on each side: UIDs are never reused and UIDNEXT
//!   only grows, so between two snapshots at most `ΔUIDNEXT` messages were added; if
//!   `ΔMESSAGES == ΔUIDNEXT`, every new UID is still there and no old message was removed.
//!   Any other difference may hide an expunge (or a server that moves UIDNEXT oddly): full.
//! - **Source unchanged** (ΔUIDNEXT = 0, ΔMESSAGES = 0) and no expunge on the destination:
//!   the cached claim "every source message is on the destination" still holds, since the
//!   destination can only have gained messages. Nothing to copy.
//! - **Source grew, no expunge**: only messages with UID ≥ the old UIDNEXT can be new; they
//!   are compared with the destination messages not paired with this folder's old messages
//!   (`unpaired_dest` plus destination UIDs ≥ the old destination UIDNEXT that are not ours),
//!   which is what a full comparison would match them against.
//! - **Flags**: with CONDSTORE (RFC 7162) every flag change raises the message's MODSEQ above
//!   the mailbox's old HIGHESTMODSEQ, so an unchanged HIGHESTMODSEQ proves no flag changed,
//!   and `CHANGEDSINCE old` returns every message whose flags may have. Without CONDSTORE
//!   nothing proves flags unchanged: every pass fetches all source FLAGS (cheap, no headers)
//!   and applies what changed against the cached base. HIGHESTMODSEQ going backwards means
//!   the mailbox was restored or rebuilt: full.
//! - The destination's HIGHESTMODSEQ is not needed: destination-side flag changes are left
//!   alone by the three-way merge anyway.
//! - **Flag updates are logged ahead.** A three-way update relies on the base recorded in
//!   `pairs`; if a pass sent some updates and crashed before writing its cache, the base
//!   would be stale and a later source change back to it would never reach the copy. So
//!   before sending three-way updates a pass persists [`FolderCache::with_pending`]; a
//!   cache with pending updates makes the next pass full, and [`FolderCache::known_pairs`]
//!   leaves those pairs out, so their flags are compared two-way (destination := source).
//!
//! A crash at any instant leaves either the previous cache (whose snapshots predate
//! everything the interrupted pass did, so the next pass sees those changes) or the new
//! one (written after completion). Appends that completed before the crash are on the
//! destination with UIDs ≥ the cached destination UIDNEXT: the next pass finds them among
//! the new destination messages and does not copy them again.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};

use super::diff::{
    Entry, FlagChange, FlagSet, FlagUpdate, FolderDiff, KnownPair, KnownPairs, Storable, Tally,
    diff,
};
use super::report::RefusedMessage;
// Where the snapshots' type was first defined, and still looked for.
pub use super::status::FolderStatus;

/// The format version of [`FolderCache`]; a cache of another version is ignored (full pass).
pub const CACHE_VERSION: u32 = 1;

/// Which cache entry: one per mailbox and source folder.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FolderCacheKey {
    /// The mailbox address, lowercased (addresses compare case-insensitively).
    pub mailbox: String,
    /// The source folder's name, decoded, as the source lists it.
    pub source_folder: String,
}

impl FolderCacheKey {
    pub fn new(mailbox: &str, source_folder: &str) -> FolderCacheKey {
        FolderCacheKey {
            mailbox: crate::address::Address::of(mailbox).into(),
            source_folder: source_folder.to_owned(),
        }
    }
}

impl fmt::Display for FolderCacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.mailbox, self.source_folder)
    }
}

/// What a complete pass over one source folder left behind (see the module docs).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FolderCache {
    pub version: u32,
    /// The destination folder the pass copied into (decoded name).
    pub dest_folder: String,
    /// Source status taken before the pass listed the source.
    pub source: FolderStatus,
    /// Destination status taken before the pass listed the destination.
    pub dest: FolderStatus,
    /// Source UID → destination copy and base flags.
    pub pairs: KnownPairs,
    /// Destination messages below `dest.uidnext` paired with none of this folder's.
    pub unpaired_dest: Vec<Entry>,
    /// Source messages the destination refused, by source UID.
    pub refused: BTreeMap<u32, RefusedMessage>,
    /// Three-way flag updates being sent by a pass that has not completed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pending: Vec<FlagUpdate>,
    /// Messages and bytes of the source folder after the pass, for reports of later passes
    /// that do not list it (informational; decides nothing).
    #[serde(default)]
    pub source_tally: Tally,
    /// The same of the destination folder.
    #[serde(default)]
    pub dest_tally: Tally,
}

/// What [`resync_need`] and a pass with nothing to do read of a [`FolderCache`]: its small
/// part. Stored ahead of the rest, so that a re-sync finding nothing changed reads a few
/// hundred bytes per folder rather than a pair per message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CacheHead {
    pub version: u32,
    pub dest_folder: String,
    pub source: FolderStatus,
    pub dest: FolderStatus,
    /// How many pairs, refused messages and pending flag updates the cache holds.
    pub pairs: u64,
    pub refused: u64,
    pub pending: u64,
    pub source_tally: Tally,
    pub dest_tally: Tally,
}

/// Why a full comparison is needed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum FullReason {
    NoCache,
    CacheVersion,
    DestinationFolderChanged,
    SourceUidValidityChanged,
    DestinationUidValidityChanged,
    /// Fewer messages than UIDNEXT's growth allows: something was expunged.
    SourceExpunged,
    DestinationExpunged,
    /// UIDNEXT or HIGHESTMODSEQ went backwards, or counts that cannot be.
    SourceInconsistent,
    DestinationInconsistent,
    /// A pass stopped while sending flag updates: their bases are unknown.
    FlagUpdatesInterrupted,
    /// Messages were refused before: each run tries them again, their cause (a quota, a
    /// size limit, a transient NO) may be gone.
    RetryRefused,
    /// Gmail's All Mail: which of its messages are archived changes with their labels,
    /// which no UID or count shows.
    GmailArchive,
}

impl fmt::Display for FullReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FullReason::NoCache => "no cache",
            FullReason::GmailArchive => {
                "Gmail's All Mail: archived messages are told by their labels"
            }
            FullReason::CacheVersion => "cache from another version",
            FullReason::DestinationFolderChanged => "destination folder changed",
            FullReason::SourceUidValidityChanged => "source UIDVALIDITY changed",
            FullReason::DestinationUidValidityChanged => "destination UIDVALIDITY changed",
            FullReason::SourceExpunged => "messages expunged on the source",
            FullReason::DestinationExpunged => "messages expunged on the destination",
            FullReason::SourceInconsistent => "source status inconsistent with the cache",
            FullReason::DestinationInconsistent => "destination status inconsistent with the cache",
            FullReason::FlagUpdatesInterrupted => "flag updates were interrupted",
            FullReason::RetryRefused => "messages refused before are tried again",
        })
    }
}

/// Which source flags must be looked at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum FlagCheck {
    /// HIGHESTMODSEQ unchanged: no flag changed.
    Unchanged,
    /// `UID FETCH 1:* (FLAGS) (CHANGEDSINCE modseq)`.
    ChangedSince(u64),
    /// No CONDSTORE: `UID FETCH 1:* (FLAGS)`.
    All,
}

/// How much a re-sync of one folder needs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ResyncNeed {
    /// Nothing to copy and no flag to change: the STATUS calls were the whole pass.
    Nothing,
    /// Only appended messages and (maybe) flag changes. `new_since_uid`: source messages with
    /// UID ≥ this are new (compare them with [`FolderCache::incremental_diff`]); `None` when
    /// none arrived.
    Incremental {
        new_since_uid: Option<u32>,
        flags: FlagCheck,
    },
    /// List both folders and compare everything ([`diff`]).
    Full(FullReason),
}

impl fmt::Display for ResyncNeed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResyncNeed::Nothing => f.write_str("no change"),
            ResyncNeed::Incremental {
                new_since_uid,
                flags,
            } => {
                f.write_str("incremental")?;
                if let Some(u) = new_since_uid {
                    write!(f, ", new from UID {u}")?;
                }
                match flags {
                    FlagCheck::Unchanged => Ok(()),
                    FlagCheck::ChangedSince(m) => write!(f, ", flags changed since MODSEQ {m}"),
                    FlagCheck::All => f.write_str(", all flags (no CONDSTORE)"),
                }
            }
            ResyncNeed::Full(why) => write!(f, "full: {why}"),
        }
    }
}

/// Growth between two snapshots of one folder: `Ok(new UIDs)` when no message can have been
/// expunged (ΔMESSAGES == ΔUIDNEXT), `Err(expunged?)` otherwise.
fn growth(was: &FolderStatus, now: &FolderStatus) -> Result<u32, bool> {
    let added = now.uidnext.checked_sub(was.uidnext).ok_or(false)?;
    let delta = i64::from(now.messages) - i64::from(was.messages);
    match delta.cmp(&i64::from(added)) {
        std::cmp::Ordering::Equal => Ok(added),
        // Fewer messages than allocated UIDs: an expunge (or UIDs skipped; indistinguishable).
        std::cmp::Ordering::Less => Err(true),
        // More messages than UIDs allocated: impossible for a sane server.
        std::cmp::Ordering::Greater => Err(false),
    }
}

/// Decides how much work a re-sync of a folder needs (see the module docs for why each
/// shortcut is safe). `dest_folder` is where the folder maps now: a cache recorded for
/// another destination folder does not apply.
pub fn resync_need(
    cache: Option<&CacheHead>,
    dest_folder: &str,
    src: &FolderStatus,
    dst: &FolderStatus,
) -> ResyncNeed {
    use FullReason::*;
    let Some(c) = cache else {
        return ResyncNeed::Full(NoCache);
    };
    if c.version != CACHE_VERSION {
        return ResyncNeed::Full(CacheVersion);
    }
    if c.dest_folder != dest_folder {
        return ResyncNeed::Full(DestinationFolderChanged);
    }
    if c.pending > 0 {
        return ResyncNeed::Full(FlagUpdatesInterrupted);
    }
    if src.uidvalidity != c.source.uidvalidity {
        return ResyncNeed::Full(SourceUidValidityChanged);
    }
    if dst.uidvalidity != c.dest.uidvalidity {
        return ResyncNeed::Full(DestinationUidValidityChanged);
    }
    if c.refused > 0 {
        return ResyncNeed::Full(RetryRefused);
    }
    let new = match growth(&c.source, src) {
        Ok(n) => n,
        Err(true) => return ResyncNeed::Full(SourceExpunged),
        Err(false) => return ResyncNeed::Full(SourceInconsistent),
    };
    match growth(&c.dest, dst) {
        Ok(_) => {}
        Err(true) => return ResyncNeed::Full(DestinationExpunged),
        Err(false) => return ResyncNeed::Full(DestinationInconsistent),
    }
    let flags = match (c.source.highestmodseq, src.highestmodseq) {
        (Some(was), Some(now)) if now < was => return ResyncNeed::Full(SourceInconsistent),
        // New messages always raise HIGHESTMODSEQ; if it did not move, the server's MODSEQs
        // cannot be trusted to find flag changes either.
        (Some(was), Some(now)) if now == was && new > 0 => FlagCheck::All,
        (Some(was), Some(now)) if now == was => FlagCheck::Unchanged,
        (Some(was), Some(_)) => FlagCheck::ChangedSince(was),
        _ => FlagCheck::All,
    };
    if new == 0 && flags == FlagCheck::Unchanged {
        return ResyncNeed::Nothing;
    }
    ResyncNeed::Incremental {
        new_since_uid: (new > 0).then_some(c.source.uidnext),
        flags,
    }
}

/// A message this pass appended: source UID, destination UID (APPENDUID) and the flags it
/// was appended with; a pair already, which the cache the pass leaves takes over.
pub type Copied = KnownPair;

impl FolderCache {
    /// The cache a complete **full** pass leaves: `diff` computed from `source_entries` and
    /// `dest_entries` (listed after the snapshots `source` and `dest` were taken), its flag
    /// updates applied, its copies made (`copied`), and `refused` what the destination refused.
    pub fn after_full_pass(
        dest_folder: &str,
        source: FolderStatus,
        dest: FolderStatus,
        diff: &FolderDiff,
        dest_entries: &[Entry],
        copied: Vec<Copied>,
        refused: Vec<RefusedMessage>,
    ) -> FolderCache {
        // The copies first: on a first copy they are all the pairs, taken over as they are.
        let mut pairs = KnownPairs::new();
        pairs.append(copied);
        let found: Vec<KnownPair> = diff
            .pairs
            .values()
            .filter(|p| !pairs.contains_key(&p.source_uid))
            .cloned()
            .collect();
        pairs.extend(found);
        let unmatched: BTreeSet<u32> = diff.extra.iter().chain(&diff.surplus).copied().collect();
        FolderCache {
            version: CACHE_VERSION,
            dest_folder: dest_folder.to_owned(),
            source,
            dest,
            pairs,
            // Destination messages at or above the snapshot's UIDNEXT arrived after it and are
            // found again as new next time: keeping them here would count them twice.
            unpaired_dest: dest_entries
                .iter()
                .filter(|e| unmatched.contains(&e.uid) && e.uid < dest.uidnext)
                .cloned()
                .collect(),
            refused: refused.into_iter().map(|r| (r.message.uid, r)).collect(),
            pending: Vec::new(),
            source_tally: diff.source,
            dest_tally: diff.dest,
        }
    }

    pub fn head(&self) -> CacheHead {
        CacheHead {
            version: self.version,
            dest_folder: self.dest_folder.clone(),
            source: self.source,
            dest: self.dest,
            pairs: self.pairs.len() as u64,
            refused: self.refused.len() as u64,
            pending: self.pending.len() as u64,
            source_tally: self.source_tally,
            dest_tally: self.dest_tally,
        }
    }

    /// The known pairs to give [`diff`] in a full pass: all but those whose flag update was
    /// interrupted (their base is unknown, so they are re-paired and compared two-way).
    pub fn known_pairs(&self) -> KnownPairs {
        let mut pairs = self.pairs.clone();
        for u in &self.pending {
            pairs.remove(&u.source_uid);
        }
        pairs
    }

    /// This cache with the three-way updates among `updates` (those of known pairs) recorded
    /// as pending. Persist it **before** sending them; the pass's final cache replaces it.
    pub fn with_pending(&self, updates: &[FlagUpdate]) -> FolderCache {
        let mut next = self.clone();
        next.pending.extend(
            updates
                .iter()
                .filter(|u| {
                    self.pairs
                        .get(&u.source_uid)
                        .is_some_and(|p| p.dest_uid == u.dest_uid)
                })
                .cloned(),
        );
        next
    }

    /// Whether a source message was refused before (skip it rather than retry forever).
    pub fn is_refused(&self, source_uid: u32) -> bool {
        self.refused.contains_key(&source_uid)
    }

    /// The free destination messages new source messages may match: `unpaired_dest` plus
    /// the listed destination messages with UID ≥ the cached destination UIDNEXT that are
    /// not copies of this folder's messages.
    fn free_dest(&self, dest_new: &[Entry]) -> Vec<Entry> {
        let ours: BTreeSet<u32> = self.pairs.values().map(|p| p.dest_uid).collect();
        let mut free = self.unpaired_dest.clone();
        free.extend(
            dest_new
                .iter()
                .filter(|e| e.uid >= self.dest.uidnext && !ours.contains(&e.uid))
                .cloned(),
        );
        free
    }

    /// The new source messages of an incremental pass: listed with UID ≥ `since`, not
    /// already paired (copied by the cached pass after its snapshot) and not refused.
    /// (`UID FETCH n:*` returns the last message even when its UID is below `n`: filtered.)
    fn new_source(&self, source_new: &[Entry], since: u32) -> Vec<Entry> {
        source_new
            .iter()
            .filter(|e| {
                e.uid >= since && !self.pairs.contains_key(&e.uid) && !self.is_refused(e.uid)
            })
            .cloned()
            .collect()
    }

    /// For [`ResyncNeed::Incremental`] with `new_since_uid: Some(since)`: compares the source
    /// messages listed from UID `since` (`source_new`) with the destination messages listed
    /// from the cached destination UIDNEXT (`dest_new`) and the cached unpaired ones. Its
    /// `to_copy` are the messages to copy, exactly those a full comparison would copy.
    ///
    /// A new message paired with a cached unpaired destination message gets a
    /// [`FlagChange::Replace`]: the cached flags may be stale (the message's own user, or an
    /// interrupted pass, may have changed them), so they are not compared.
    pub fn incremental_diff(
        &self,
        since: u32,
        source_new: &[Entry],
        dest_new: &[Entry],
        storable: &Storable,
    ) -> FolderDiff {
        let mut d = diff(
            &self.new_source(source_new, since),
            &self.free_dest(dest_new),
            &KnownPairs::new(),
            storable,
        );
        let cached: BTreeSet<u32> = self.unpaired_dest.iter().map(|e| e.uid).collect();
        d.flag_updates.retain(|u| !cached.contains(&u.dest_uid));
        for (uid, pair) in &d.pairs {
            if cached.contains(&pair.dest_uid) {
                d.flag_updates.push(FlagUpdate {
                    source_uid: *uid,
                    dest_uid: pair.dest_uid,
                    change: FlagChange::Replace(
                        pair.flags
                            .iter()
                            .filter(|f| storable.can_store(f))
                            .cloned()
                            .collect(),
                    ),
                    source_flags: pair.flags.clone(),
                });
            }
        }
        d.flag_updates.sort_by_key(|u| (u.source_uid, u.dest_uid));
        d
    }

    /// For a flag check: given source flags fetched now (`FLAGS`, or `CHANGEDSINCE`), the
    /// updates for known copies whose source flags differ from the base. The destination's
    /// flags are not needed: `+FLAGS` of what the source gained and `-FLAGS` of what it lost
    /// since the base is the three-way merge whatever the destination has.
    pub fn flag_updates(&self, current: &[(u32, FlagSet)], storable: &Storable) -> Vec<FlagUpdate> {
        let mut out: Vec<FlagUpdate> = current
            .iter()
            .filter_map(|(uid, now)| {
                let pair = self.pairs.get(uid)?;
                let add: FlagSet = now
                    .difference(&pair.flags)
                    .filter(|f| storable.can_store(f))
                    .cloned()
                    .collect();
                let remove: FlagSet = pair.flags.difference(now).cloned().collect();
                (!add.is_empty() || !remove.is_empty()).then(|| FlagUpdate {
                    source_uid: *uid,
                    dest_uid: pair.dest_uid,
                    change: FlagChange::Delta { add, remove },
                    source_flags: now.clone(),
                })
            })
            .collect();
        out.sort_by_key(|u| u.source_uid);
        out
    }

    /// The cache a complete **incremental** pass leaves: new snapshots (taken before this
    /// pass listed anything), the new comparison (`new`, from [`FolderCache::incremental_diff`]
    /// with the same `dest_new`; `None` when there were no new messages), its copies, the
    /// source flags fetched and applied, and new refusals.
    pub fn after_incremental_pass(&self, pass: IncrementalPass<'_>) -> FolderCache {
        let IncrementalPass {
            source,
            dest,
            new,
            dest_new,
            copied,
            flags_now,
            refused,
        } = pass;
        let mut next = self.clone();
        for (uid, now) in flags_now {
            if let Some(pair) = next.pairs.get_mut(uid) {
                pair.flags = now.clone();
            }
        }
        let free = self.free_dest(dest_new);
        let mut matched: BTreeSet<u32> = BTreeSet::new();
        if let Some(d) = new {
            matched.extend(d.pairs.values().map(|p| p.dest_uid));
            next.pairs.extend(d.pairs.values().cloned());
        }
        add_copies(&mut next.pairs, copied);
        next.unpaired_dest = free
            .into_iter()
            .filter(|e| !matched.contains(&e.uid) && e.uid < dest.uidnext)
            .collect();
        next.refused
            .extend(refused.into_iter().map(|r| (r.message.uid, r)));
        next.source = source;
        next.dest = dest;
        next.pending.clear();
        next
    }
}

/// What a complete incremental pass did, for [`FolderCache::after_incremental_pass`].
pub struct IncrementalPass<'a> {
    /// The snapshots taken before the pass listed anything.
    pub source: FolderStatus,
    pub dest: FolderStatus,
    /// The comparison of the new messages, `None` when there were none.
    pub new: Option<&'a FolderDiff>,
    pub dest_new: &'a [Entry],
    pub copied: &'a [Copied],
    /// The source flags fetched and applied.
    pub flags_now: &'a [(u32, FlagSet)],
    pub refused: Vec<RefusedMessage>,
}

fn add_copies(pairs: &mut KnownPairs, copied: &[Copied]) {
    pairs.extend(copied.iter().cloned());
}

/// Where the copy engine keeps its per-folder caches. The CLI keeps them in files; a
/// controller may keep them elsewhere.
pub trait CacheStore: Send + Sync {
    fn load(&self, key: &FolderCacheKey) -> anyhow::Result<Option<FolderCache>>;
    fn save(&self, key: &FolderCacheKey, cache: &FolderCache) -> anyhow::Result<()>;

    /// The head of the cache [`CacheStore::load`] would return. A store that keeps caches
    /// large should read less than all of it.
    fn load_head(&self, key: &FolderCacheKey) -> anyhow::Result<Option<CacheHead>> {
        Ok(self.load(key)?.map(|c| c.head()))
    }

    /// Whether any folder of `mailbox` (an address) has a cache: if none has, its next
    /// sync compares every folder in full, which is work for every connection it may open.
    /// A store that keeps nothing never remembers one.
    fn remembers_mailbox(&self, _mailbox: &str) -> bool {
        false
    }

    /// The characters the destination refused in folder names (see
    /// `engine::names`); a store that keeps none learns them again each run.
    fn load_refused_characters(&self) -> anyhow::Result<Vec<char>> {
        Ok(Vec::new())
    }

    fn save_refused_characters(&self, _: &[char]) -> anyhow::Result<()> {
        Ok(())
    }

    /// The daily budgets' records (see [`crate::limits`]); a store that keeps none counts
    /// each run's budgets from nothing.
    fn load_usage(&self) -> anyhow::Result<Option<crate::limits::Usage>> {
        Ok(None)
    }

    fn save_usage(&self, _: &crate::limits::Usage) -> anyhow::Result<()> {
        Ok(())
    }

    /// The batch of a folder's pass sent to the destination and not yet answered (see
    /// [`super::in_flight`]). A store that keeps none cannot tell a later pass to wait for it.
    fn load_in_flight(
        &self,
        _: &FolderCacheKey,
    ) -> anyhow::Result<Option<super::in_flight::InFlight>> {
        Ok(None)
    }

    /// Records (`Some`) or clears (`None`) a folder's batch in flight. Called twice a batch:
    /// cheap, and safe against the process being killed, not necessarily against the
    /// machine losing power (then the connection is lost before the batch is whole).
    fn save_in_flight(
        &self,
        _: &FolderCacheKey,
        _: Option<&super::in_flight::InFlight>,
    ) -> anyhow::Result<()> {
        Ok(())
    }

    /// The record of a first copy in windows (see [`super::progress`]), if one was left.
    /// A store that keeps none has every interrupted copy compared whole.
    fn load_progress(
        &self,
        _: &FolderCacheKey,
    ) -> anyhow::Result<Option<super::progress::CopyProgress>> {
        Ok(None)
    }

    /// Adds `line` to the record (a [`super::progress::ProgressLine::Started`] begins a
    /// new one), or removes the record (`None`). Durable once it returns.
    fn save_progress(
        &self,
        _: &FolderCacheKey,
        _: Option<&super::progress::ProgressLine>,
    ) -> anyhow::Result<()> {
        Ok(())
    }

    /// The UIDs mailshift gave the messages of a source folder that has none of its own
    /// (files, POP3; see [`crate::imap::uid_map`]). A store that keeps none gives new ones
    /// each run, under a new UIDVALIDITY.
    fn load_source_uids(
        &self,
        _: &FolderCacheKey,
    ) -> anyhow::Result<Option<crate::imap::uid_map::UidMap>> {
        Ok(None)
    }

    fn save_source_uids(
        &self,
        _: &FolderCacheKey,
        _: &crate::imap::uid_map::UidMap,
    ) -> anyhow::Result<()> {
        Ok(())
    }
}

/// A store that remembers nothing: every pass is a full comparison.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoCache;

impl CacheStore for NoCache {
    fn load(&self, _: &FolderCacheKey) -> anyhow::Result<Option<FolderCache>> {
        Ok(None)
    }

    fn save(&self, _: &FolderCacheKey, _: &FolderCache) -> anyhow::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::diff::Flag;
    use super::super::identity::MessageKey;
    use super::super::report::MessageRef;
    use super::*;
    use proptest::prelude::*;

    fn st(uidvalidity: u32, uidnext: u32, messages: u32, modseq: Option<u64>) -> FolderStatus {
        FolderStatus {
            uidvalidity,
            uidnext,
            messages,
            highestmodseq: modseq,
        }
    }

    fn cache(src: FolderStatus, dst: FolderStatus) -> FolderCache {
        FolderCache {
            version: CACHE_VERSION,
            dest_folder: "INBOX".into(),
            source: src,
            dest: dst,
            pairs: KnownPairs::new(),
            unpaired_dest: vec![],
            refused: BTreeMap::new(),
            pending: vec![],
            source_tally: Tally::default(),
            dest_tally: Tally::default(),
        }
    }

    fn e(uid: u32, key: &str) -> Entry {
        Entry {
            uid,
            key: MessageKey::of_message_id(key),
            flags: FlagSet::new(),
            internal_date: None,
            size: 10,
        }
    }

    fn flags(names: &[&str]) -> FlagSet {
        Flag::parse_all(names.iter().copied())
    }

    #[test]
    fn no_cache_or_changed_identity_is_full() {
        let s = st(7, 100, 50, Some(900));
        let d = st(3, 60, 50, None);
        assert_eq!(
            resync_need(None, "INBOX", &s, &d),
            ResyncNeed::Full(FullReason::NoCache)
        );
        let c = cache(s, d);
        assert_eq!(
            resync_need(Some(&c.head()), "Archive", &s, &d),
            ResyncNeed::Full(FullReason::DestinationFolderChanged)
        );
        assert_eq!(
            resync_need(Some(&c.head()), "INBOX", &st(8, 100, 50, Some(900)), &d),
            ResyncNeed::Full(FullReason::SourceUidValidityChanged)
        );
        assert_eq!(
            resync_need(Some(&c.head()), "INBOX", &s, &st(4, 60, 50, None)),
            ResyncNeed::Full(FullReason::DestinationUidValidityChanged)
        );
        let mut old = c.clone();
        old.version = 0;
        assert_eq!(
            resync_need(Some(&old.head()), "INBOX", &s, &d),
            ResyncNeed::Full(FullReason::CacheVersion)
        );
    }

    #[test]
    fn unchanged_is_nothing() {
        let s = st(7, 100, 50, Some(900));
        let d = st(3, 60, 50, None);
        let c = cache(s, d);
        assert_eq!(
            resync_need(Some(&c.head()), "INBOX", &s, &d),
            ResyncNeed::Nothing
        );
        // The destination gained mail (its own, or a merged folder's) without expunges: the
        // source's messages are all still there.
        assert_eq!(
            resync_need(Some(&c.head()), "INBOX", &s, &st(3, 65, 55, Some(4))),
            ResyncNeed::Nothing
        );
    }

    #[test]
    fn expunges_force_full() {
        let s = st(7, 100, 50, Some(900));
        let d = st(3, 60, 50, None);
        let c = cache(s, d);
        assert_eq!(
            resync_need(Some(&c.head()), "INBOX", &st(7, 100, 49, Some(901)), &d),
            ResyncNeed::Full(FullReason::SourceExpunged)
        );
        // One new, one expunged: the count alone looks unchanged but UIDNEXT moved.
        assert_eq!(
            resync_need(Some(&c.head()), "INBOX", &st(7, 101, 50, Some(902)), &d),
            ResyncNeed::Full(FullReason::SourceExpunged)
        );
        assert_eq!(
            resync_need(Some(&c.head()), "INBOX", &s, &st(3, 61, 50, None)),
            ResyncNeed::Full(FullReason::DestinationExpunged)
        );
        assert_eq!(
            resync_need(Some(&c.head()), "INBOX", &s, &st(3, 60, 49, None)),
            ResyncNeed::Full(FullReason::DestinationExpunged)
        );
        // Impossible states.
        assert_eq!(
            resync_need(Some(&c.head()), "INBOX", &st(7, 99, 49, Some(900)), &d),
            ResyncNeed::Full(FullReason::SourceInconsistent)
        );
        assert_eq!(
            resync_need(Some(&c.head()), "INBOX", &st(7, 100, 51, Some(900)), &d),
            ResyncNeed::Full(FullReason::SourceInconsistent)
        );
        assert_eq!(
            resync_need(Some(&c.head()), "INBOX", &st(7, 100, 50, Some(899)), &d),
            ResyncNeed::Full(FullReason::SourceInconsistent)
        );
    }

    #[test]
    fn growth_and_flags_are_incremental() {
        let s = st(7, 100, 50, Some(900));
        let d = st(3, 60, 50, None);
        let c = cache(s, d);
        assert_eq!(
            resync_need(Some(&c.head()), "INBOX", &st(7, 103, 53, Some(905)), &d),
            ResyncNeed::Incremental {
                new_since_uid: Some(100),
                flags: FlagCheck::ChangedSince(900)
            }
        );
        assert_eq!(
            resync_need(Some(&c.head()), "INBOX", &st(7, 100, 50, Some(901)), &d),
            ResyncNeed::Incremental {
                new_since_uid: None,
                flags: FlagCheck::ChangedSince(900)
            }
        );
        // New messages without a MODSEQ increase: MODSEQs are not trustworthy.
        assert_eq!(
            resync_need(Some(&c.head()), "INBOX", &st(7, 101, 51, Some(900)), &d),
            ResyncNeed::Incremental {
                new_since_uid: Some(100),
                flags: FlagCheck::All
            }
        );
    }

    #[test]
    fn without_condstore_flags_are_always_checked() {
        let s = st(7, 100, 50, None);
        let d = st(3, 60, 50, None);
        let c = cache(s, d);
        assert_eq!(
            resync_need(Some(&c.head()), "INBOX", &s, &d),
            ResyncNeed::Incremental {
                new_since_uid: None,
                flags: FlagCheck::All
            }
        );
        // CONDSTORE appeared or disappeared since the cache.
        let c2 = cache(st(7, 100, 50, Some(5)), d);
        assert_eq!(
            resync_need(Some(&c2.head()), "INBOX", &s, &d),
            ResyncNeed::Incremental {
                new_since_uid: None,
                flags: FlagCheck::All
            }
        );
        let c3 = cache(s, d);
        assert_eq!(
            resync_need(Some(&c3.head()), "INBOX", &st(7, 100, 50, Some(5)), &d),
            ResyncNeed::Incremental {
                new_since_uid: None,
                flags: FlagCheck::All
            }
        );
    }

    #[test]
    fn incremental_diff_matches_free_messages_only() {
        // Cached pass: source 1,2 copied to destination 11,12; destination 10 its own ("x").
        let mut c = cache(st(1, 3, 2, None), st(1, 13, 3, None));
        c.pairs.insert(KnownPair {
            source_uid: 1,
            dest_uid: 11,
            flags: FlagSet::new(),
        });
        c.pairs.insert(KnownPair {
            source_uid: 2,
            dest_uid: 12,
            flags: FlagSet::new(),
        });
        c.unpaired_dest = vec![e(10, "x")];
        // Since: source got 3 ("a", a second copy of message 1's key) and 4 ("x");
        // the destination got 13 ("a", our copy from a crashed pass) and 14 ("b").
        let source_new = [e(3, "a"), e(4, "x")];
        let dest_new = [e(13, "a"), e(14, "b")];
        let d = c.incremental_diff(3, &source_new, &dest_new, &Storable::Any);
        assert!(d.to_copy.is_empty(), "{d:?}");
        assert_eq!(d.pairs[&3].dest_uid, 13);
        assert_eq!(d.pairs[&4].dest_uid, 10);
        assert_eq!(d.extra, vec![14]);
        // Without the crashed pass's copy, message 3 is copied: the destination's 11 is
        // message 1's copy and cannot count for it.
        let d = c.incremental_diff(3, &source_new, &dest_new[1..], &Storable::Any);
        assert_eq!(d.to_copy, vec![3]);
        // `UID FETCH 3:*` returning the last old message when nothing is new: ignored.
        let d = c.incremental_diff(3, &[e(2, "b")], &[], &Storable::Any);
        assert!(d.to_copy.is_empty() && d.pairs.is_empty());
    }

    #[test]
    fn messages_copied_after_the_snapshot_are_not_new() {
        // The cached pass listed (and copied) source UID 5 after its snapshot said UIDNEXT 5.
        let mut c = cache(st(1, 5, 4, None), st(1, 20, 0, None));
        c.pairs.insert(KnownPair {
            source_uid: 5,
            dest_uid: 20,
            flags: FlagSet::new(),
        });
        let d = c.incremental_diff(5, &[e(5, "m"), e(6, "n")], &[e(20, "m")], &Storable::Any);
        assert_eq!(d.to_copy, vec![6]);
        assert!(d.extra.is_empty(), "our own copy is not free: {d:?}");
    }

    #[test]
    fn refused_messages_are_not_retried() {
        let mut c = cache(st(1, 5, 4, None), st(1, 1, 0, None));
        c.refused.insert(
            5,
            RefusedMessage {
                message: MessageRef::from(&e(5, "big")),
                reason: "too large".into(),
            },
        );
        assert!(c.is_refused(5));
        let d = c.incremental_diff(5, &[e(5, "big")], &[], &Storable::Any);
        assert!(d.to_copy.is_empty());
    }

    #[test]
    fn flag_updates_from_base() {
        let mut c = cache(st(1, 5, 4, Some(10)), st(1, 1, 0, None));
        c.pairs.insert(KnownPair {
            source_uid: 1,
            dest_uid: 9,
            flags: flags(&["\\Seen"]),
        });
        c.pairs.insert(KnownPair {
            source_uid: 2,
            dest_uid: 8,
            flags: flags(&[]),
        });
        let now = [
            (1, flags(&["\\Seen"])),
            (2, flags(&["\\Flagged", "$Custom"])),
            (3, flags(&["\\Seen"])), // not a known copy (refused, or new): ignored here
        ];
        let p = Storable::from_permanent_flags(["\\Seen", "\\Flagged"]);
        let u = c.flag_updates(&now, &p);
        assert_eq!(
            u,
            vec![FlagUpdate {
                source_uid: 2,
                dest_uid: 8,
                change: FlagChange::Delta {
                    add: flags(&["\\Flagged"]),
                    remove: FlagSet::new(),
                },
                source_flags: flags(&["\\Flagged", "$Custom"]),
            }]
        );
        let next = c.after_incremental_pass(IncrementalPass {
            source: c.source,
            dest: c.dest,
            new: None,
            dest_new: &[],
            copied: &[],
            flags_now: &now,
            refused: vec![],
        });
        assert_eq!(next.pairs[&2].flags, flags(&["\\Flagged", "$Custom"]));
        assert!(next.flag_updates(&now, &p).is_empty());
    }

    #[test]
    fn full_pass_record() {
        let src = [e(1, "a"), e(2, "b"), e(3, "c")];
        let dst = [e(10, "a"), e(11, "own"), e(12, "late")];
        let d = diff(&src, &dst, &KnownPairs::new(), &Storable::Any);
        assert_eq!(d.to_copy, vec![2, 3]);
        // Snapshot said UIDNEXT 12: message 12 arrived between snapshot and listing.
        let copied = [Copied {
            source_uid: 2,
            dest_uid: 13,
            flags: FlagSet::new(),
        }];
        let c = FolderCache::after_full_pass(
            "INBOX",
            st(1, 4, 3, None),
            st(5, 12, 2, None),
            &d,
            &dst,
            copied.to_vec(),
            vec![RefusedMessage {
                message: MessageRef::from(&src[2]),
                reason: "NO too big".into(),
            }],
        );
        assert_eq!(c.pairs.keys().copied().collect::<Vec<_>>(), vec![1, 2]);
        assert_eq!(c.pairs[&2].dest_uid, 13);
        assert_eq!(c.unpaired_dest, vec![e(11, "own")]);
        assert!(c.is_refused(3));
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(serde_json::from_str::<FolderCache>(&json).unwrap(), c);
    }

    #[test]
    fn display() {
        assert_eq!(ResyncNeed::Nothing.to_string(), "no change");
        assert_eq!(
            ResyncNeed::Full(FullReason::SourceUidValidityChanged).to_string(),
            "full: source UIDVALIDITY changed"
        );
        assert_eq!(
            ResyncNeed::Incremental {
                new_since_uid: Some(7),
                flags: FlagCheck::All
            }
            .to_string(),
            "incremental, new from UID 7, all flags (no CONDSTORE)"
        );
        assert_eq!(
            FolderCacheKey::new("Alice@Example.COM", "INBOX").to_string(),
            "alice@example.com:INBOX"
        );
    }

    // A simulated pair of servers and a sync loop that may crash after any append, to check
    // that cache-driven passes copy exactly what a full comparison would, and end with the
    // same flags.

    #[derive(Clone, Debug)]
    struct Folder {
        uidvalidity: u32,
        uidnext: u32,
        /// HIGHESTMODSEQ, when the simulated server has CONDSTORE.
        modseq: Option<u64>,
        msgs: Vec<(Entry, u64)>,
    }

    impl Folder {
        fn new(uidvalidity: u32, condstore: bool) -> Folder {
            Folder {
                uidvalidity,
                uidnext: 1,
                modseq: condstore.then_some(1),
                msgs: vec![],
            }
        }
        fn status(&self) -> FolderStatus {
            st(
                self.uidvalidity,
                self.uidnext,
                self.msgs.len() as u32,
                self.modseq,
            )
        }
        fn entries(&self) -> Vec<Entry> {
            self.msgs.iter().map(|(e, _)| e.clone()).collect()
        }
        fn bump(&mut self) -> u64 {
            let m = self.modseq.map_or(0, |m| m + 1);
            if self.modseq.is_some() {
                self.modseq = Some(m);
            }
            m
        }
        fn append(&mut self, key: &MessageKey, flags: &FlagSet) -> u32 {
            let uid = self.uidnext;
            self.uidnext += 1;
            let m = self.bump();
            let e = Entry {
                uid,
                key: *key,
                flags: flags.clone(),
                internal_date: None,
                size: 10,
            };
            self.msgs.push((e, m));
            uid
        }
        fn store(&mut self, u: &FlagUpdate) {
            let m = self.bump();
            if let Some((e, ms)) = self.msgs.iter_mut().find(|(e, _)| e.uid == u.dest_uid) {
                u.apply(&mut e.flags);
                *ms = m;
            }
        }
        fn toggle_seen(&mut self, i: usize) {
            if self.msgs.is_empty() {
                return;
            }
            let m = self.bump();
            let i = i % self.msgs.len();
            let (e, ms) = &mut self.msgs[i];
            if !e.flags.remove(&Flag::Seen) {
                e.flags.insert(Flag::Seen);
            }
            *ms = m;
        }
    }

    #[derive(Clone, Debug)]
    enum Event {
        Deliver(u8),
        ExpungeSource(usize),
        FlagSource(usize),
        DeliverDest(u8),
        ExpungeDest(usize),
        Sync { crash_after: Option<usize> },
    }

    fn arb_event() -> impl Strategy<Value = Event> {
        prop_oneof![
            3 => (0u8..4).prop_map(Event::Deliver),
            1 => (0usize..8).prop_map(Event::ExpungeSource),
            2 => (0usize..8).prop_map(Event::FlagSource),
            1 => (0u8..6).prop_map(Event::DeliverDest),
            1 => (0usize..8).prop_map(Event::ExpungeDest),
            4 => proptest::option::of(0usize..5).prop_map(|crash_after| Event::Sync { crash_after }),
        ]
    }

    fn copies_by_key(src: &[Entry], uids: &[u32]) -> BTreeMap<MessageKey, usize> {
        let mut m = BTreeMap::new();
        for u in uids {
            if let Some(e) = src.iter().find(|e| e.uid == *u) {
                *m.entry(e.key).or_insert(0) += 1;
            }
        }
        m
    }

    /// One pass, crashing before write number `crash_after` (flag stores and appends count).
    /// `store` is the persistent cache: written with pending updates before flag updates are
    /// sent, and with the new cache when the pass completes. Returns whether the pass
    /// completed and the source UIDs it copied.
    fn pass(
        src: &Folder,
        dst: &mut Folder,
        store: &mut Option<FolderCache>,
        crash_after: Option<usize>,
    ) -> (bool, Vec<u32>) {
        let (ss, ds) = (src.status(), dst.status());
        let any = Storable::Any;
        let source = src.entries();
        let mut writes = 0usize;
        let mut copied: Vec<Copied> = vec![];
        // Each write first checks whether the process "dies" now.
        let mut alive = || {
            let ok = crash_after != Some(writes);
            writes += 1;
            ok
        };
        macro_rules! write_or_crash {
            () => {
                if !alive() {
                    return (false, copied.iter().map(|c| c.source_uid).collect());
                }
            };
        }
        let cache = store.clone();
        match resync_need(
            cache.as_ref().map(FolderCache::head).as_ref(),
            "INBOX",
            &ss,
            &ds,
        ) {
            ResyncNeed::Nothing => (true, vec![]),
            ResyncNeed::Incremental {
                new_since_uid,
                flags,
            } => {
                let c = cache.unwrap();
                let dest_new: Vec<Entry> = dst
                    .entries()
                    .into_iter()
                    .filter(|e| e.uid >= c.dest.uidnext)
                    .collect();
                let d = new_since_uid.map(|since| {
                    let src_new: Vec<Entry> =
                        source.iter().filter(|e| e.uid >= since).cloned().collect();
                    c.incremental_diff(since, &src_new, &dest_new, &any)
                });
                let flags_now: Vec<(u32, FlagSet)> = src
                    .msgs
                    .iter()
                    .filter(|(_, m)| match flags {
                        FlagCheck::Unchanged => false,
                        FlagCheck::ChangedSince(since) => *m > since,
                        FlagCheck::All => true,
                    })
                    .map(|(e, _)| (e.uid, e.flags.clone()))
                    .collect();
                let mut updates = c.flag_updates(&flags_now, &any);
                updates.extend(d.iter().flat_map(|d| d.flag_updates.iter().cloned()));
                *store = Some(c.with_pending(&updates));
                for u in &updates {
                    write_or_crash!();
                    dst.store(u);
                }
                for uid in d.iter().flat_map(|d| d.to_copy.iter()) {
                    write_or_crash!();
                    let m = source.iter().find(|e| e.uid == *uid).unwrap();
                    let dest_uid = dst.append(&m.key, &m.flags);
                    copied.push(Copied {
                        source_uid: *uid,
                        dest_uid,
                        flags: m.flags.clone(),
                    });
                }
                *store = Some(c.after_incremental_pass(IncrementalPass {
                    source: ss,
                    dest: ds,
                    new: d.as_ref(),
                    dest_new: &dest_new,
                    copied: &copied,
                    flags_now: &flags_now,
                    refused: vec![],
                }));
                (true, copied.iter().map(|c| c.source_uid).collect())
            }
            ResyncNeed::Full(_) => {
                let listed = dst.entries();
                let known = cache
                    .as_ref()
                    .map(FolderCache::known_pairs)
                    .unwrap_or_default();
                let d = diff(&source, &listed, &known, &any);
                if let Some(c) = &cache {
                    *store = Some(c.with_pending(&d.flag_updates));
                }
                for u in &d.flag_updates {
                    write_or_crash!();
                    dst.store(u);
                }
                for uid in &d.to_copy {
                    write_or_crash!();
                    let m = source.iter().find(|e| e.uid == *uid).unwrap();
                    let dest_uid = dst.append(&m.key, &m.flags);
                    copied.push(Copied {
                        source_uid: *uid,
                        dest_uid,
                        flags: m.flags.clone(),
                    });
                }
                *store = Some(FolderCache::after_full_pass(
                    "INBOX",
                    ss,
                    ds,
                    &d,
                    &listed,
                    copied.to_vec(),
                    vec![],
                ));
                (true, copied.iter().map(|c| c.source_uid).collect())
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        #[test]
        fn cached_passes_copy_what_a_full_comparison_would(
            events in proptest::collection::vec(arb_event(), 0..40),
            condstore in any::<bool>(),
        ) {
            let mut src = Folder::new(1, condstore);
            let mut dst = Folder::new(9, true);
            let mut cache: Option<FolderCache> = None;
            for ev in events.into_iter().chain([Event::Sync { crash_after: None }]) {
                match ev {
                    Event::Deliver(k) => { src.append(&MessageKey::of_message_id(&format!("k{k}")), &FlagSet::new()); }
                    Event::ExpungeSource(i) => if !src.msgs.is_empty() { let i = i % src.msgs.len(); src.msgs.remove(i); },
                    Event::FlagSource(i) => src.toggle_seen(i),
                    Event::DeliverDest(k) => { dst.append(&MessageKey::of_message_id(&format!("k{k}")), &FlagSet::new()); }
                    Event::ExpungeDest(i) => if !dst.msgs.is_empty() { let i = i % dst.msgs.len(); dst.msgs.remove(i); },
                    Event::Sync { crash_after } => {
                        // What a full comparison says before the pass...
                        let full = diff(&src.entries(), &dst.entries(), &KnownPairs::new(), &Storable::Any);
                        let want = copies_by_key(&src.entries(), &full.to_copy);
                        let (completed, copied) = pass(&src, &mut dst, &mut cache, crash_after);
                        let got = copies_by_key(&src.entries(), &copied);
                        // ...is what the pass copies (all of it when it completes, never more).
                        for (k, n) in &got {
                            prop_assert!(*n <= want.get(k).copied().unwrap_or(0), "copied {k} too often");
                        }
                        if completed {
                            prop_assert_eq!(&got, &want);
                            // And the destination copies carry the source's flags.
                            let after = diff(&src.entries(), &dst.entries(), &cache.as_ref().unwrap().pairs, &Storable::Any);
                            prop_assert!(after.to_copy.is_empty());
                            prop_assert!(after.flag_updates.is_empty(), "flag updates left: {:?}", after.flag_updates);
                            prop_assert_eq!(after.flags_differ, 0, "flags differ");
                        }
                    }
                }
            }
        }
    }
}
