//! The pairs a folder's cache remembers: source UID → its copy's destination UID and the
//! source's flags when they were last made equal (the base of the three-way flag merge).
//!
//! Kept as one vector of [`KnownPair`]s sorted by source UID rather than a B-tree: a folder
//! of a million messages has a million pairs, which a `BTreeMap` holds at about 53 bytes
//! each (its nodes half full when filled in order, as copies are) and this at 24; lookups
//! are bisections. A pass's copies are recorded as pairs already, so that the cache it
//! writes takes them over instead of holding a second copy.
//! Pairs are added in bulk ([`KnownPairs::extend`], sorted once) or one by one in UID
//! order (at the end, in constant time); an insertion elsewhere moves the tail, which is
//! fine for the few a pass makes out of order. Written as the map it replaced (a JSON
//! object keyed by UID), so caches keep their format.

use std::fmt;

use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::flags::FlagSet;

/// A source message known to be copied: its destination UID and the source's flags when
/// that was last established (the base of the three-way flag merge).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KnownPair {
    pub source_uid: u32,
    pub dest_uid: u32,
    pub flags: FlagSet,
}

/// A pair as the cache file holds it, under its source UID.
#[derive(Serialize, Deserialize)]
struct Stored<F> {
    dest_uid: u32,
    flags: F,
}

/// Source UID → its known destination copy, in source UID order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KnownPairs {
    sorted: Vec<KnownPair>,
}

impl KnownPairs {
    pub const fn new() -> KnownPairs {
        KnownPairs { sorted: Vec::new() }
    }

    pub fn len(&self) -> usize {
        self.sorted.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sorted.is_empty()
    }

    fn find(&self, uid: u32) -> Result<usize, usize> {
        self.sorted.binary_search_by_key(&uid, |p| p.source_uid)
    }

    pub fn get(&self, uid: &u32) -> Option<&KnownPair> {
        self.find(*uid).ok().map(|i| &self.sorted[i])
    }

    /// The pair of `uid`, to change its destination UID or flags (not its source UID).
    pub fn get_mut(&mut self, uid: &u32) -> Option<&mut KnownPair> {
        self.find(*uid).ok().map(|i| &mut self.sorted[i])
    }

    pub fn contains_key(&self, uid: &u32) -> bool {
        self.find(*uid).is_ok()
    }

    /// Sets the pair of `pair.source_uid`, returning the one it replaces.
    pub fn insert(&mut self, pair: KnownPair) -> Option<KnownPair> {
        let uid = pair.source_uid;
        if self.sorted.last().is_none_or(|last| last.source_uid < uid) {
            self.sorted.push(pair);
            return None;
        }
        match self.find(uid) {
            Ok(i) => Some(std::mem::replace(&mut self.sorted[i], pair)),
            Err(i) => {
                self.sorted.insert(i, pair);
                None
            }
        }
    }

    pub fn remove(&mut self, uid: &u32) -> Option<KnownPair> {
        self.find(*uid).ok().map(|i| self.sorted.remove(i))
    }

    /// Pairs (source UID, pair) in source UID order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (&u32, &KnownPair)> + ExactSizeIterator {
        self.sorted.iter().map(|p| (&p.source_uid, p))
    }

    pub fn keys(&self) -> impl DoubleEndedIterator<Item = &u32> + ExactSizeIterator {
        self.sorted.iter().map(|p| &p.source_uid)
    }

    pub fn values(&self) -> impl DoubleEndedIterator<Item = &KnownPair> + ExactSizeIterator {
        self.sorted.iter()
    }

    /// Adds `pairs` (any order; the later of two for one UID wins), taking the vector
    /// over when there are no pairs yet, so that a pass's record of its copies becomes the
    /// cache's pairs without a second copy of them.
    pub fn append(&mut self, pairs: Vec<KnownPair>) {
        if self.sorted.is_empty() {
            self.sorted = pairs;
            self.reorder();
        } else {
            self.extend(pairs);
        }
    }

    /// Appends a pair wherever its UID belongs, for [`KnownPairs::reorder`] to put in
    /// place: a caller adding many pairs out of order (the diff, key by key) must call it
    /// before anything else reads these pairs.
    pub(crate) fn push_unordered(&mut self, pair: KnownPair) {
        self.sorted.push(pair);
    }

    /// Puts in order what [`KnownPairs::push_unordered`] appended.
    pub(crate) fn reorder(&mut self) {
        if !self.sorted.is_empty() {
            self.settle(0);
        }
    }

    /// Restores the order after pairs were appended in any order: sorted by UID, and of
    /// several pairs for one UID the last appended kept (as repeated inserts would).
    fn settle(&mut self, from: usize) {
        if self.sorted[from.saturating_sub(1)..].is_sorted_by(|a, b| a.source_uid < b.source_uid) {
            return;
        }
        // Stable, so that "last appended" is still last among equal UIDs.
        self.sorted.sort_by_key(|p| p.source_uid);
        let mut out: Vec<KnownPair> = Vec::with_capacity(self.sorted.len());
        for p in self.sorted.drain(..) {
            match out.last_mut() {
                Some(kept) if kept.source_uid == p.source_uid => *kept = p,
                _ => out.push(p),
            }
        }
        self.sorted = out;
    }
}

impl Extend<KnownPair> for KnownPairs {
    fn extend<I: IntoIterator<Item = KnownPair>>(&mut self, iter: I) {
        let from = self.sorted.len();
        self.sorted.extend(iter);
        if self.sorted.len() > from {
            self.settle(from);
        }
    }
}

impl FromIterator<KnownPair> for KnownPairs {
    fn from_iter<I: IntoIterator<Item = KnownPair>>(iter: I) -> KnownPairs {
        let mut pairs = KnownPairs::new();
        pairs.extend(iter);
        pairs.sorted.shrink_to_fit();
        pairs
    }
}

impl std::ops::Index<&u32> for KnownPairs {
    type Output = KnownPair;

    fn index(&self, uid: &u32) -> &KnownPair {
        self.get(uid).expect("no pair for this UID")
    }
}

impl<'a> IntoIterator for &'a KnownPairs {
    type Item = (&'a u32, &'a KnownPair);
    type IntoIter = std::iter::Map<
        std::slice::Iter<'a, KnownPair>,
        fn(&'a KnownPair) -> (&'a u32, &'a KnownPair),
    >;

    fn into_iter(self) -> Self::IntoIter {
        self.sorted.iter().map(|p| (&p.source_uid, p))
    }
}

impl Serialize for KnownPairs {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.sorted.len()))?;
        for p in &self.sorted {
            let stored = Stored {
                dest_uid: p.dest_uid,
                flags: &p.flags,
            };
            map.serialize_entry(&p.source_uid, &stored)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for KnownPairs {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<KnownPairs, D::Error> {
        struct Pairs;
        impl<'de> Visitor<'de> for Pairs {
            type Value = KnownPairs;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map from source UID to its pair")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<KnownPairs, A::Error> {
                let mut sorted = Vec::with_capacity(map.size_hint().unwrap_or(0));
                while let Some((source_uid, s)) = map.next_entry::<u32, Stored<FlagSet>>()? {
                    sorted.push(KnownPair {
                        source_uid,
                        dest_uid: s.dest_uid,
                        flags: s.flags,
                    });
                }
                let mut pairs = KnownPairs { sorted: Vec::new() };
                pairs.extend(sorted);
                Ok(pairs)
            }
        }
        d.deserialize_map(Pairs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn pair(source_uid: u32, dest_uid: u32) -> KnownPair {
        KnownPair {
            source_uid,
            dest_uid,
            flags: FlagSet::new(),
        }
    }

    #[test]
    fn behaves_as_the_map_it_replaces() {
        // The same operations on a BTreeMap and on KnownPairs, in and out of order.
        let mut map = BTreeMap::new();
        let mut pairs = KnownPairs::new();
        let ops: Vec<(u32, u32)> = (0..200u32).map(|i| ((i * 37) % 61, i)).collect();
        for &(u, d) in &ops {
            assert_eq!(pairs.insert(pair(u, d)), map.insert(u, pair(u, d)));
        }
        for u in [3, 5, 61, 0] {
            assert_eq!(pairs.remove(&u), map.remove(&u));
        }
        let more = [pair(100, 1), pair(7, 2), pair(100, 3)];
        pairs.extend(more.clone());
        map.extend(more.iter().map(|p| (p.source_uid, p.clone())));
        assert_eq!(pairs.len(), map.len());
        let got: Vec<(u32, u32)> = pairs.iter().map(|(u, p)| (*u, p.dest_uid)).collect();
        let want: Vec<(u32, u32)> = map.iter().map(|(u, p)| (*u, p.dest_uid)).collect();
        assert_eq!(got, want);
        for u in 0..110 {
            assert_eq!(pairs.get(&u), map.get(&u));
        }
        assert_eq!(pairs[&100].dest_uid, 3);
    }

    #[test]
    fn append_takes_the_vector_over_or_merges() {
        let mut pairs = KnownPairs::new();
        let copies = vec![pair(3, 30), pair(1, 10), pair(3, 31)];
        pairs.append(copies);
        assert_eq!(pairs.keys().copied().collect::<Vec<_>>(), [1, 3]);
        assert_eq!(pairs[&3].dest_uid, 31);
        pairs.append(vec![pair(2, 20), pair(1, 11)]);
        let got: Vec<(u32, u32)> = pairs.iter().map(|(u, p)| (*u, p.dest_uid)).collect();
        assert_eq!(got, [(1, 11), (2, 20), (3, 31)]);
    }

    #[test]
    fn written_as_the_map_it_replaces() {
        let pairs: KnownPairs = [pair(10, 5), pair(2, 20)].into_iter().collect();
        let json = serde_json::to_string(&pairs).unwrap();
        assert_eq!(
            json,
            r#"{"2":{"dest_uid":20,"flags":[]},"10":{"dest_uid":5,"flags":[]}}"#
        );
        assert_eq!(serde_json::from_str::<KnownPairs>(&json).unwrap(), pairs);
        // A cache whose keys are out of order still reads sorted.
        let shuffled = r#"{"10":{"dest_uid":5,"flags":[]},"2":{"dest_uid":20,"flags":[]}}"#;
        let read: KnownPairs = serde_json::from_str(shuffled).unwrap();
        assert_eq!(read, pairs);
    }

    #[test]
    fn compact() {
        assert!(std::mem::size_of::<KnownPair>() <= 24);
    }
}
