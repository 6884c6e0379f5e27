//! The pairs a folder's cache remembers: source UID → its copy's destination UID and the
//! source's flags when they were last made equal (the base of the three-way flag merge).
//!
//! Kept as one vector sorted by source UID rather than a B-tree: a folder of a million
//! messages has a million pairs, which a `BTreeMap` holds at about 53 bytes each (its nodes
//! half full when filled in order, as copies are) and this at 32; lookups are bisections.
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
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KnownPair {
    pub dest_uid: u32,
    pub flags: FlagSet,
}

/// Source UID → its known destination copy, in source UID order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KnownPairs {
    sorted: Vec<(u32, KnownPair)>,
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
        self.sorted.binary_search_by_key(&uid, |(u, _)| *u)
    }

    pub fn get(&self, uid: &u32) -> Option<&KnownPair> {
        self.find(*uid).ok().map(|i| &self.sorted[i].1)
    }

    pub fn get_mut(&mut self, uid: &u32) -> Option<&mut KnownPair> {
        self.find(*uid).ok().map(|i| &mut self.sorted[i].1)
    }

    pub fn contains_key(&self, uid: &u32) -> bool {
        self.find(*uid).is_ok()
    }

    /// Sets `uid`'s pair, returning the one it replaces.
    pub fn insert(&mut self, uid: u32, pair: KnownPair) -> Option<KnownPair> {
        if self.sorted.last().is_none_or(|(last, _)| *last < uid) {
            self.sorted.push((uid, pair));
            return None;
        }
        match self.find(uid) {
            Ok(i) => Some(std::mem::replace(&mut self.sorted[i].1, pair)),
            Err(i) => {
                self.sorted.insert(i, (uid, pair));
                None
            }
        }
    }

    pub fn remove(&mut self, uid: &u32) -> Option<KnownPair> {
        self.find(*uid).ok().map(|i| self.sorted.remove(i).1)
    }

    /// Pairs in source UID order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (&u32, &KnownPair)> + ExactSizeIterator {
        self.sorted.iter().map(|(u, p)| (u, p))
    }

    pub fn keys(&self) -> impl DoubleEndedIterator<Item = &u32> + ExactSizeIterator {
        self.sorted.iter().map(|(u, _)| u)
    }

    pub fn values(&self) -> impl DoubleEndedIterator<Item = &KnownPair> + ExactSizeIterator {
        self.sorted.iter().map(|(_, p)| p)
    }

    /// Appends a pair wherever its UID belongs, for [`KnownPairs::reorder`] to put in
    /// place: a caller adding many pairs out of order (the diff, key by key) must call it
    /// before anything else reads these pairs.
    pub(crate) fn push_unordered(&mut self, uid: u32, pair: KnownPair) {
        self.sorted.push((uid, pair));
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
        if self.sorted[from.saturating_sub(1)..].is_sorted_by(|a, b| a.0 < b.0) {
            return;
        }
        // Stable, so that "last appended" is still last among equal UIDs.
        self.sorted.sort_by_key(|(u, _)| *u);
        let mut out: Vec<(u32, KnownPair)> = Vec::with_capacity(self.sorted.len());
        for (u, p) in self.sorted.drain(..) {
            match out.last_mut() {
                Some((last, kept)) if *last == u => *kept = p,
                _ => out.push((u, p)),
            }
        }
        self.sorted = out;
    }
}

impl Extend<(u32, KnownPair)> for KnownPairs {
    fn extend<I: IntoIterator<Item = (u32, KnownPair)>>(&mut self, iter: I) {
        let from = self.sorted.len();
        self.sorted.extend(iter);
        if self.sorted.len() > from {
            self.settle(from);
        }
    }
}

impl FromIterator<(u32, KnownPair)> for KnownPairs {
    fn from_iter<I: IntoIterator<Item = (u32, KnownPair)>>(iter: I) -> KnownPairs {
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
        std::slice::Iter<'a, (u32, KnownPair)>,
        fn(&'a (u32, KnownPair)) -> (&'a u32, &'a KnownPair),
    >;

    fn into_iter(self) -> Self::IntoIter {
        self.sorted.iter().map(|(u, p)| (u, p))
    }
}

impl Serialize for KnownPairs {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.sorted.len()))?;
        for (u, p) in &self.sorted {
            map.serialize_entry(u, p)?;
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
                while let Some(entry) = map.next_entry::<u32, KnownPair>()? {
                    sorted.push(entry);
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

    fn pair(dest_uid: u32) -> KnownPair {
        KnownPair {
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
            assert_eq!(pairs.insert(u, pair(d)), map.insert(u, pair(d)));
        }
        for u in [3, 5, 61, 0] {
            assert_eq!(pairs.remove(&u), map.remove(&u));
        }
        pairs.extend([(100, pair(1)), (7, pair(2)), (100, pair(3))]);
        map.extend([(100, pair(1)), (7, pair(2)), (100, pair(3))]);
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
    fn written_as_the_map_it_replaces() {
        let map: BTreeMap<u32, KnownPair> = [(2, pair(20)), (10, pair(5))].into();
        let pairs: KnownPairs = [(10, pair(5)), (2, pair(20))].into_iter().collect();
        let json = serde_json::to_string(&map).unwrap();
        assert_eq!(serde_json::to_string(&pairs).unwrap(), json);
        assert_eq!(serde_json::from_str::<KnownPairs>(&json).unwrap(), pairs);
        // A cache whose keys are out of order still reads sorted.
        let shuffled = r#"{"10":{"dest_uid":5,"flags":[]},"2":{"dest_uid":20,"flags":[]}}"#;
        let read: KnownPairs = serde_json::from_str(shuffled).unwrap();
        assert_eq!(read.keys().copied().collect::<Vec<_>>(), [2, 10]);
    }

    #[test]
    fn compact() {
        assert!(std::mem::size_of::<(u32, KnownPair)>() <= 32);
    }
}
