//! Comparing one source folder with its destination folder: what to copy, which flags to
//! change, what the destination has that the source does not.
//!
//! Messages are compared by [`MessageKey`] as **multisets**: a key three times on the source
//! and once on the destination means two copies to make, never more. Within a key, source
//! and destination messages are *paired* one to one, deterministically, whatever order the
//! servers listed them in:
//!
//! 1. pairs remembered from the previous pass ([`KnownPairs`], from the cache), when both
//!    UIDs are still there with the same key, so a pairing is stable from run to run;
//! 2. then same INTERNALDATE and same size (the copy keeps both, unless a server normalized
//!    line endings);
//! 3. then same INTERNALDATE; 4. then same size;
//! 5. then the rest in (INTERNALDATE, UID) order.
//!
//! The steps only decide *which* source duplicate counts as already copied (so that, of two
//! messages sharing a Message-ID, the one not yet on the destination is the one copied);
//! the *number* of copies is always the difference of the counts.
//!
//! Unpaired source messages are copied. Unpaired destination messages are reported, never
//! deleted: `extra` when the source has no message with that key (the destination's own
//! mail, e.g. delivered after the MX switch), `surplus` when it has fewer (a message twice
//! on the destination: what a migration must never cause).
//!
//! # Flags
//!
//! System flags (`\Seen \Answered \Flagged \Deleted \Draft`) and keywords are carried;
//! `\Recent` (session state the server sets) and unknown `\`-extension flags (no client can
//! set them) are ignored. Keywords compare ASCII-case-insensitively, as servers treat them.
//!
//! For a pair, the destination's flags are updated with a **three-way merge** when the pair
//! is known from the previous pass, whose record holds the source's flags as they were then
//! (the *base*): flags the source gained since are added, flags it lost since are removed,
//! and changes made on the destination (by its user, after the switch) are left alone. A
//! pair without a base gets the source's flags exactly. Updates are `+FLAGS`/`-FLAGS`, so
//! applying one twice (after a crash) does nothing more. Flags the destination cannot store
//! (not in its PERMANENTFLAGS) are never added, so they do not cause an update on every run.
//!
//! # `\Deleted`
//!
//! A source message flagged `\Deleted` but not yet expunged is copied like any other, with
//! its `\Deleted` flag. It still exists on the source and a user of a mark-then-expunge
//! client still sees it (and may undelete it); dropping it would make the copy inexact and
//! lose mail the user has not finally removed. The destination's next EXPUNGE removes it,
//! as the source's would have. mailshift itself never expunges.

use std::collections::{BTreeMap, HashMap, VecDeque};

use chrono::{DateTime, FixedOffset};
use serde::{Deserialize, Serialize};

pub use super::flags::{BadFlag, Flag, FlagSet, Keyword};
use super::identity::MessageKey;

/// Which flags the destination folder keeps (its PERMANENTFLAGS).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Storable {
    /// Everything (no PERMANENTFLAGS seen, or it contains `\*` and every system flag).
    #[default]
    Any,
    /// These flags, plus any keyword when `new_keywords` (`\*`).
    Only { flags: FlagSet, new_keywords: bool },
}

impl Storable {
    /// From the PERMANENTFLAGS response code's list, as the server sends it.
    pub fn from_permanent_flags<'a>(names: impl IntoIterator<Item = &'a str>) -> Storable {
        let mut flags = FlagSet::new();
        let mut new_keywords = false;
        for n in names {
            if n == "\\*" {
                new_keywords = true;
            } else if let Some(f) = Flag::parse(n) {
                flags.insert(f);
            }
        }
        Storable::Only {
            flags,
            new_keywords,
        }
    }

    pub fn can_store(&self, flag: &Flag) -> bool {
        match self {
            Storable::Any => true,
            Storable::Only {
                flags,
                new_keywords,
            } => flags.contains(flag) || (*new_keywords && matches!(flag, Flag::Keyword(_))),
        }
    }
}

/// One message of a folder, as listed for comparison.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub uid: u32,
    pub key: MessageKey,
    pub flags: FlagSet,
    /// INTERNALDATE; compared as an instant (the copy may carry another UTC offset).
    pub internal_date: Option<DateTime<FixedOffset>>,
    /// RFC822.SIZE: an IMAP number, so 32 bits (RFC 3501), which keeps the entry at 56
    /// bytes; a file source's larger file saturates (and no IMAP server could take it).
    pub size: u32,
}

pub use super::pairs::{KnownPair, KnownPairs};

/// Flags to change on one destination message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FlagUpdate {
    pub source_uid: u32,
    pub dest_uid: u32,
    pub change: FlagChange,
    /// The source's flags this update brings the copy in line with: the pair's base once
    /// applied.
    pub source_flags: FlagSet,
}

/// How to change a destination message's flags.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum FlagChange {
    /// `UID STORE +FLAGS (add)` and `-FLAGS (remove)`: leaves every other flag alone, and
    /// applying it twice is the same as once.
    Delta { add: FlagSet, remove: FlagSet },
    /// `UID STORE FLAGS (...)`: when the destination's current flags are not known, the copy
    /// gets exactly these.
    Replace(FlagSet),
}

impl FlagUpdate {
    /// What the destination message's flags become (`flags` before).
    pub fn apply(&self, flags: &mut FlagSet) {
        match &self.change {
            FlagChange::Delta { add, remove } => {
                flags.extend(add.iter().cloned());
                flags.retain(|f| !remove.contains(f));
            }
            FlagChange::Replace(set) => flags.clone_from(set),
        }
    }
}

/// Message count and total size of one side.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    pub messages: u64,
    pub bytes: u64,
}

impl Tally {
    pub fn of(entries: &[Entry]) -> Tally {
        Tally {
            messages: entries.len() as u64,
            bytes: entries.iter().map(|e| u64::from(e.size)).sum(),
        }
    }
}

impl std::ops::Add for Tally {
    type Output = Tally;

    fn add(self, other: Tally) -> Tally {
        Tally {
            messages: self.messages + other.messages,
            bytes: self.bytes + other.bytes,
        }
    }
}

/// The comparison of a source folder with its destination folder.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FolderDiff {
    /// Source UIDs to copy, ascending.
    pub to_copy: Vec<u32>,
    /// Flag changes for paired messages, by source UID.
    pub flag_updates: Vec<FlagUpdate>,
    /// Every pair found, with the source's flags now: after `flag_updates` are applied, the
    /// base for the next pass's three-way merge.
    pub pairs: KnownPairs,
    /// Destination UIDs whose key the source does not have, ascending.
    pub extra: Vec<u32>,
    /// Destination UIDs of messages the destination has more often than the source, ascending.
    pub surplus: Vec<u32>,
    /// Pairs whose flags differ (destination-storable flags only), before any update.
    pub flags_differ: usize,
    pub source: Tally,
    pub dest: Tally,
}

impl FolderDiff {
    /// Nothing to copy, nothing twice on the destination.
    pub fn is_complete(&self) -> bool {
        self.to_copy.is_empty() && self.surplus.is_empty()
    }
}

/// Compares a source folder's entries with its destination folder's (see the module docs).
/// `known` may be empty; pass it only when both folders' UIDVALIDITY are those it was
/// recorded under.
pub fn diff(
    source: &[Entry],
    dest: &[Entry],
    known: &KnownPairs,
    storable: &Storable,
) -> FolderDiff {
    // Each side sorted by key (and within a key by the pairing order): a key's group is then
    // one run on each side, walked side by side, at a pointer per message rather than a map
    // node per key (a folder may hold a million messages).
    fn sorted(entries: &[Entry]) -> Vec<&Entry> {
        let order = |e: &Entry| (e.internal_date, e.uid, e.size);
        let mut v: Vec<&Entry> = entries.iter().collect();
        // UIDs are unique on a side, so the order is total and an unstable sort (which
        // needs no buffer of half the listing) gives the same order as a stable one.
        v.sort_unstable_by(|a, b| a.key.cmp(&b.key).then_with(|| order(a).cmp(&order(b))));
        v
    }
    let (src_all, dst_all) = (sorted(source), sorted(dest));

    let mut out = FolderDiff {
        source: Tally::of(source),
        dest: Tally::of(dest),
        ..FolderDiff::default()
    };
    let (mut i, mut j) = (0, 0);
    while i < src_all.len() || j < dst_all.len() {
        let key = match (src_all.get(i), dst_all.get(j)) {
            (Some(s), Some(d)) => (&s.key).min(&d.key),
            (Some(s), None) => &s.key,
            (None, Some(d)) => &d.key,
            (None, None) => break,
        };
        let run = |all: &[&Entry], from: usize| {
            from + all[from..].iter().take_while(|e| &e.key == key).count()
        };
        let (i_end, j_end) = (run(&src_all, i), run(&dst_all, j));
        group(
            &mut out,
            &src_all[i..i_end],
            &dst_all[j..j_end],
            known,
            storable,
        );
        (i, j) = (i_end, j_end);
    }
    out.pairs.reorder();
    out.to_copy.sort_unstable();
    out.extra.sort_unstable();
    out.surplus.sort_unstable();
    out.flag_updates.sort_by_key(|u| (u.source_uid, u.dest_uid));
    out
}

/// One key's messages on each side (each in pairing order), settled into `out`.
fn group(
    out: &mut FolderDiff,
    src: &[&Entry],
    dst: &[&Entry],
    known: &KnownPairs,
    storable: &Storable,
) {
    match (src, dst) {
        // The usual cases, without the general matching's maps. A message on each side
        // pairs: the known pair (step 1) or the rest in order (step 5).
        ([s], [d]) => {
            let with_base = known.get(&s.uid).is_some_and(|kp| kp.dest_uid == d.uid);
            settle_pair(out, s, d, with_base.then(|| &known[&s.uid].flags), storable);
        }
        (_, []) => out.to_copy.extend(src.iter().map(|e| e.uid)),
        ([], _) => out.extra.extend(dst.iter().map(|e| e.uid)),
        _ => {
            let (pairs, src_left, dst_left) = pair_group(src, dst, known);
            for (s, d, with_base) in pairs {
                settle_pair(out, s, d, with_base.then(|| &known[&s.uid].flags), storable);
            }
            out.to_copy.extend(src_left.iter().map(|e| e.uid));
            out.surplus.extend(dst_left.iter().map(|e| e.uid));
        }
    }
}

/// A source message found on the destination: its flags compared (three-way against `base`
/// when the pair is the known one) and the pair recorded.
fn settle_pair(
    out: &mut FolderDiff,
    s: &Entry,
    d: &Entry,
    base: Option<&FlagSet>,
    storable: &Storable,
) {
    if differ(&s.flags, &d.flags, storable) {
        out.flags_differ += 1;
    }
    if let Some(update) = flag_update(s, d, base, storable) {
        out.flag_updates.push(update);
    }
    // Groups come in key order, not UID order: put in place once, at the end of the diff.
    out.pairs.push_unordered(KnownPair {
        source_uid: s.uid,
        dest_uid: d.uid,
        flags: s.flags.clone(),
    });
}

/// Pairs within one key's group, both sides sorted. Returns the pairs (with whether the pair
/// is the known one, so its base applies) and the unpaired entries of each side, in order.
#[allow(clippy::type_complexity)]
fn pair_group<'a>(
    src: &[&'a Entry],
    dst: &[&'a Entry],
    known: &KnownPairs,
) -> (
    Vec<(&'a Entry, &'a Entry, bool)>,
    Vec<&'a Entry>,
    Vec<&'a Entry>,
) {
    let mut src_used = vec![false; src.len()];
    let mut dst_used = vec![false; dst.len()];
    let mut pairs = Vec::new();

    // 1. Known pairs.
    let dst_at: HashMap<u32, usize> = dst.iter().enumerate().map(|(j, e)| (e.uid, j)).collect();
    for (i, s) in src.iter().enumerate() {
        if let Some(kp) = known.get(&s.uid)
            && let Some(&j) = dst_at.get(&kp.dest_uid)
            && !dst_used[j]
        {
            src_used[i] = true;
            dst_used[j] = true;
            pairs.push((*s, dst[j], true));
        }
    }

    // 2.–4. Greedy matching on ever weaker evidence; 5. the rest in order.
    type Feature = fn(&Entry) -> Option<(Option<DateTime<FixedOffset>>, Option<u32>)>;
    let features: [Feature; 4] = [
        |e| e.internal_date.map(|d| (Some(d), Some(e.size))),
        |e| e.internal_date.map(|d| (Some(d), None)),
        |e| Some((None, Some(e.size))),
        |_| Some((None, None)),
    ];
    for feature in features {
        let mut free: BTreeMap<_, VecDeque<usize>> = BTreeMap::new();
        for (j, d) in dst.iter().enumerate() {
            if !dst_used[j]
                && let Some(k) = feature(d)
            {
                free.entry(k).or_default().push_back(j);
            }
        }
        if free.is_empty() {
            continue;
        }
        for (i, s) in src.iter().enumerate() {
            if src_used[i] {
                continue;
            }
            if let Some(k) = feature(s)
                && let Some(j) = free.get_mut(&k).and_then(VecDeque::pop_front)
            {
                src_used[i] = true;
                dst_used[j] = true;
                pairs.push((*s, dst[j], false));
            }
        }
    }

    let src_left = src
        .iter()
        .zip(&src_used)
        .filter(|(_, used)| !**used)
        .map(|(e, _)| *e)
        .collect();
    let dst_left = dst
        .iter()
        .zip(&dst_used)
        .filter(|(_, used)| !**used)
        .map(|(e, _)| *e)
        .collect();
    (pairs, src_left, dst_left)
}

fn differ(src: &FlagSet, dst: &FlagSet, storable: &Storable) -> bool {
    let s: FlagSet = src
        .iter()
        .filter(|f| storable.can_store(f))
        .cloned()
        .collect();
    s != *dst
}

/// The flag change that brings a destination message in line with its source message
/// (three-way with `base`, see the module docs), or `None` when there is nothing to do.
pub fn flag_update(
    source: &Entry,
    dest: &Entry,
    base: Option<&FlagSet>,
    storable: &Storable,
) -> Option<FlagUpdate> {
    let (s, d) = (&source.flags, &dest.flags);
    let (add, remove): (FlagSet, FlagSet) = match base {
        Some(b) => (
            s.difference(b)
                .filter(|f| !d.contains(f))
                .cloned()
                .collect(),
            b.difference(s).filter(|f| d.contains(f)).cloned().collect(),
        ),
        None => (
            s.difference(d).cloned().collect(),
            d.difference(s).cloned().collect(),
        ),
    };
    let add: FlagSet = add.into_iter().filter(|f| storable.can_store(f)).collect();
    (!add.is_empty() || !remove.is_empty()).then(|| FlagUpdate {
        source_uid: source.uid,
        dest_uid: dest.uid,
        change: FlagChange::Delta { add, remove },
        source_flags: s.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    fn k(id: &str) -> MessageKey {
        MessageKey::of_message_id(id)
    }

    fn date(secs: i64) -> Option<DateTime<FixedOffset>> {
        FixedOffset::east_opt(0)
            .unwrap()
            .timestamp_opt(secs, 0)
            .single()
    }

    fn e(uid: u32, key: &str, flags: &[&str], secs: i64, size: u32) -> Entry {
        Entry {
            uid,
            key: k(key),
            flags: Flag::parse_all(flags.iter().copied()),
            internal_date: date(secs),
            size,
        }
    }

    fn flags(names: &[&str]) -> FlagSet {
        Flag::parse_all(names.iter().copied())
    }

    const NONE: &KnownPairs = &KnownPairs::new();

    /// Every message of a folder is listed as an `Entry` on each side: its size is most of a
    /// huge folder's memory (it was 104 bytes with an inline hash key and a `BTreeSet`).
    #[test]
    fn a_listed_message_is_small() {
        assert!(
            std::mem::size_of::<Entry>() <= 56,
            "{}",
            std::mem::size_of::<Entry>()
        );
    }

    #[test]
    fn flag_parsing() {
        assert_eq!(Flag::parse("\\Seen"), Some(Flag::Seen));
        assert_eq!(Flag::parse("\\SEEN"), Some(Flag::Seen));
        assert_eq!(Flag::parse("\\deleted"), Some(Flag::Deleted));
        assert_eq!(Flag::parse("\\Recent"), None);
        assert_eq!(Flag::parse("\\Forwarded"), None);
        assert_eq!(Flag::parse("\\*"), None);
        assert_eq!(Flag::parse(""), None);
        assert_eq!(Flag::parse("two words"), None);
        assert_eq!(Flag::parse("a]"), None);
        assert_eq!(Flag::parse("$Forwarded"), Flag::parse("$forwarded"));
        assert_eq!(
            Flag::parse("$Forwarded").map(|f| f.to_string()).as_deref(),
            Some("$Forwarded")
        );
        assert_eq!(flags(&["NonJunk", "nonjunk", "\\Seen"]).len(), 2);
        let json = serde_json::to_string(&flags(&["\\Seen", "$Label1"])).unwrap();
        assert_eq!(json, r#"["\\Seen","$Label1"]"#);
        assert_eq!(
            serde_json::from_str::<FlagSet>(&json).unwrap(),
            flags(&["\\Seen", "$label1"])
        );
        assert!(serde_json::from_str::<FlagSet>(r#"["\\Recent"]"#).is_err());
    }

    #[test]
    fn storable() {
        let p = Storable::from_permanent_flags(["\\Seen", "\\Deleted", "\\*"]);
        assert!(p.can_store(&Flag::Seen));
        assert!(!p.can_store(&Flag::Flagged));
        assert!(p.can_store(&Flag::parse("$Junk").unwrap()));
        let p = Storable::from_permanent_flags(["\\Seen", "$Junk"]);
        assert!(p.can_store(&Flag::parse("$junk").unwrap()));
        assert!(!p.can_store(&Flag::parse("$Other").unwrap()));
        assert!(Storable::Any.can_store(&Flag::Draft));
    }

    #[test]
    fn copies_only_what_is_missing() {
        let src = [
            e(1, "a", &[], 10, 100),
            e(2, "b", &[], 20, 200),
            e(3, "c", &[], 30, 300),
        ];
        let dst = [e(7, "b", &[], 20, 200)];
        let d = diff(&src, &dst, NONE, &Storable::Any);
        assert_eq!(d.to_copy, vec![1, 3]);
        assert!(d.extra.is_empty() && d.surplus.is_empty() && d.flag_updates.is_empty());
        assert_eq!(
            d.source,
            Tally {
                messages: 3,
                bytes: 600
            }
        );
        assert_eq!(
            d.dest,
            Tally {
                messages: 1,
                bytes: 200
            }
        );
        assert_eq!(d.pairs[&2].dest_uid, 7);
        assert!(!d.is_complete());
    }

    #[test]
    fn duplicates_are_counted() {
        // Three on the source, one on the destination: two copies, never more.
        let src = [
            e(1, "a", &[], 10, 1),
            e(2, "a", &[], 20, 1),
            e(3, "a", &[], 30, 1),
        ];
        let dst = [e(9, "a", &[], 20, 1)];
        let d = diff(&src, &dst, NONE, &Storable::Any);
        // The destination's copy has uid 2's date: uids 1 and 3 are the missing ones.
        assert_eq!(d.to_copy, vec![1, 3]);
        assert_eq!(d.pairs[&2].dest_uid, 9);
        // One on the source, three on the destination: two surplus, nothing copied.
        let d = diff(&dst, &src, NONE, &Storable::Any);
        assert!(d.to_copy.is_empty());
        assert_eq!(d.surplus, vec![1, 3]);
        assert!(d.extra.is_empty());
        assert!(!d.is_complete());
    }

    #[test]
    fn pairing_prefers_date_and_size() {
        // Same Message-ID, different messages (a list copy and a direct copy).
        let src = [e(1, "a", &[], 100, 5000), e(2, "a", &[], 100, 7000)];
        let dst = [e(5, "a", &[], 100, 7000)];
        assert_eq!(diff(&src, &dst, NONE, &Storable::Any).to_copy, vec![1]);
        // Size changed by line-ending normalization: the date still decides.
        let src = [e(1, "a", &[], 100, 5000), e(2, "a", &[], 200, 5000)];
        let dst = [e(5, "a", &[], 200, 5100)];
        assert_eq!(diff(&src, &dst, NONE, &Storable::Any).to_copy, vec![1]);
        // No INTERNALDATE kept: the size decides.
        let mut dst = [e(5, "a", &[], 0, 5000)];
        dst[0].internal_date = None;
        let src = [e(1, "a", &[], 100, 7000), e(2, "a", &[], 200, 5000)];
        assert_eq!(diff(&src, &dst, NONE, &Storable::Any).to_copy, vec![1]);
    }

    #[test]
    fn known_pairs_come_first() {
        let src = [e(1, "a", &["\\Seen"], 100, 10), e(2, "a", &[], 100, 10)];
        let dst = [e(5, "a", &[], 100, 10), e(6, "a", &["\\Seen"], 100, 10)];
        let mut known = KnownPairs::new();
        known.insert(KnownPair {
            source_uid: 1,
            dest_uid: 6,
            flags: flags(&["\\Seen"]),
        });
        known.insert(KnownPair {
            source_uid: 2,
            dest_uid: 5,
            flags: flags(&[]),
        });
        let d = diff(&src, &dst, &known, &Storable::Any);
        assert!(d.flag_updates.is_empty(), "{:?}", d.flag_updates);
        assert_eq!(d.pairs[&1].dest_uid, 6);
        assert_eq!(d.pairs[&2].dest_uid, 5);
        // A known pair whose destination message is gone is not used.
        let d = diff(&src, &dst[..1], &known, &Storable::Any);
        assert_eq!(d.to_copy, vec![1]);
    }

    #[test]
    fn extra_and_surplus() {
        let src = [e(1, "a", &[], 1, 1)];
        let dst = [
            e(1, "a", &[], 1, 1),
            e(2, "a", &[], 1, 1),
            e(3, "new", &[], 9, 9),
        ];
        let d = diff(&src, &dst, NONE, &Storable::Any);
        assert_eq!(d.surplus, vec![2]);
        assert_eq!(d.extra, vec![3]);
        assert!(d.to_copy.is_empty());
        // Extra mail on the destination does not make a folder incomplete.
        assert!(
            diff(
                &src,
                &[dst[0].clone(), dst[2].clone()],
                NONE,
                &Storable::Any
            )
            .is_complete()
        );
    }

    #[test]
    fn two_way_flags_without_base() {
        let src = [e(1, "a", &["\\Seen", "$Label1"], 1, 1)];
        let dst = [e(2, "a", &["\\Flagged", "$label1"], 1, 1)];
        let d = diff(&src, &dst, NONE, &Storable::Any);
        assert_eq!(
            d.flag_updates,
            vec![FlagUpdate {
                source_uid: 1,
                dest_uid: 2,
                change: FlagChange::Delta {
                    add: flags(&["\\Seen"]),
                    remove: flags(&["\\Flagged"]),
                },
                source_flags: flags(&["\\Seen", "$Label1"]),
            }]
        );
        assert_eq!(d.flags_differ, 1);
        assert_eq!(d.pairs[&1].flags, flags(&["\\Seen", "$Label1"]));
    }

    #[test]
    fn three_way_keeps_destination_changes() {
        // Last pass: source \Seen. Since: source gained \Answered and lost \Seen; the
        // destination's user flagged the message.
        let src = [e(1, "a", &["\\Answered"], 1, 1)];
        let dst = [e(2, "a", &["\\Seen", "\\Flagged"], 1, 1)];
        let mut known = KnownPairs::new();
        known.insert(KnownPair {
            source_uid: 1,
            dest_uid: 2,
            flags: flags(&["\\Seen"]),
        });
        let d = diff(&src, &dst, &known, &Storable::Any);
        assert_eq!(d.flag_updates.len(), 1);
        assert_eq!(
            d.flag_updates[0].change,
            FlagChange::Delta {
                add: flags(&["\\Answered"]),
                remove: flags(&["\\Seen"]),
            }
        );
        // Source unchanged since: the destination's own changes stay.
        known.insert(KnownPair {
            source_uid: 1,
            dest_uid: 2,
            flags: flags(&["\\Answered"]),
        });
        assert!(
            diff(&src, &dst, &known, &Storable::Any)
                .flag_updates
                .is_empty()
        );
    }

    #[test]
    fn unstorable_flags_are_not_pushed() {
        let src = [e(1, "a", &["\\Seen", "$Custom"], 1, 1)];
        let dst = [e(2, "a", &["\\Seen"], 1, 1)];
        let p = Storable::from_permanent_flags(["\\Seen", "\\Deleted"]);
        let d = diff(&src, &dst, NONE, &p);
        assert!(d.flag_updates.is_empty());
        assert_eq!(d.flags_differ, 0);
    }

    #[test]
    fn deleted_messages_are_copied_with_their_flag() {
        let src = [e(1, "a", &["\\Deleted", "\\Seen"], 1, 1)];
        let d = diff(&src, &[], NONE, &Storable::Any);
        assert_eq!(d.to_copy, vec![1]);
        // And an undelete on the source reaches the copy.
        let src = [e(1, "a", &["\\Seen"], 1, 1)];
        let dst = [e(4, "a", &["\\Deleted", "\\Seen"], 1, 1)];
        let mut known = KnownPairs::new();
        known.insert(KnownPair {
            source_uid: 1,
            dest_uid: 4,
            flags: flags(&["\\Deleted", "\\Seen"]),
        });
        let d = diff(&src, &dst, &known, &Storable::Any);
        assert_eq!(
            d.flag_updates[0].change,
            FlagChange::Delta {
                add: flags(&[]),
                remove: flags(&["\\Deleted"]),
            }
        );
    }

    fn arb_entries(uid_base: u32) -> impl Strategy<Value = Vec<Entry>> {
        proptest::collection::vec((0u8..5, 0i64..4, 0u32..3, any::<bool>()), 0..24).prop_map(
            move |v| {
                v.into_iter()
                    .enumerate()
                    .map(|(i, (key, d, size, seen))| {
                        e(
                            uid_base + i as u32,
                            &format!("k{key}"),
                            if seen { &["\\Seen"] } else { &[] },
                            d,
                            size,
                        )
                    })
                    .collect()
            },
        )
    }

    fn counts(entries: &[Entry]) -> BTreeMap<MessageKey, usize> {
        let mut m = BTreeMap::new();
        for e in entries {
            *m.entry(e.key).or_insert(0) += 1;
        }
        m
    }

    proptest! {
        #[test]
        fn multiset_arithmetic(src in arb_entries(1), dst in arb_entries(1000)) {
            let d = diff(&src, &dst, NONE, &Storable::Any);
            let (cs, cd) = (counts(&src), counts(&dst));
            for (key, &n) in &cs {
                let m = cd.get(key).copied().unwrap_or(0);
                let copies = d.to_copy.iter().filter(|u| src.iter().any(|e| e.uid == **u && &e.key == key)).count();
                prop_assert_eq!(copies, n.saturating_sub(m));
            }
            prop_assert_eq!(d.to_copy.len() + d.pairs.len(), src.len());
            prop_assert_eq!(d.pairs.len() + d.extra.len() + d.surplus.len(), dst.len());
        }

        #[test]
        fn copying_converges(src in arb_entries(1), dst in arb_entries(1000)) {
            // Append the copies (same bytes, flags and date; new uids), diff again: nothing
            // left to copy, no flag to change, nothing twice.
            let d = diff(&src, &dst, NONE, &Storable::Any);
            let mut after = dst.clone();
            for (n, uid) in d.to_copy.iter().enumerate() {
                let mut c = src.iter().find(|e| e.uid == *uid).unwrap().clone();
                c.uid = 5000 + n as u32;
                after.push(c);
            }
            for u in &d.flag_updates {
                let m = after.iter_mut().find(|e| e.uid == u.dest_uid).unwrap();
                u.apply(&mut m.flags);
            }
            let again = diff(&src, &after, &d.pairs, &Storable::Any);
            prop_assert!(again.to_copy.is_empty());
            prop_assert!(again.flag_updates.is_empty());
            prop_assert_eq!(again.surplus, d.surplus);
        }

        #[test]
        fn order_does_not_matter(src in arb_entries(1), dst in arb_entries(1000), seed in any::<u64>()) {
            let d = diff(&src, &dst, NONE, &Storable::Any);
            let mut s2 = src.clone();
            let mut d2 = dst.clone();
            // Deterministic shuffles.
            let n = s2.len().max(1);
            s2.rotate_left((seed as usize) % n);
            s2.reverse();
            let n = d2.len().max(1);
            d2.rotate_left((seed as usize / 7) % n);
            prop_assert_eq!(diff(&s2, &d2, NONE, &Storable::Any), d);
        }
    }
}
