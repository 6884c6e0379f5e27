//! Message flags as mailshift copies them: the five system flags and keywords (`\\Recent` and
//! other `\\`-extension flags are not copied: see [`Flag::parse`]), and [`FlagSet`], the compact
//! set every listed message carries.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use thiserror::Error;

/// A keyword (a flag without `\`): spelled as the source spells it, compared
/// ASCII-case-insensitively.
#[derive(Clone, Debug)]
pub struct Keyword(String);

impl Keyword {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn folded(&self) -> impl Iterator<Item = u8> + '_ {
        self.0.bytes().map(|b| b.to_ascii_lowercase())
    }
}

impl PartialEq for Keyword {
    fn eq(&self, other: &Self) -> bool {
        self.0.eq_ignore_ascii_case(&other.0)
    }
}

impl Eq for Keyword {}

impl Ord for Keyword {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.folded().cmp(other.folded())
    }
}

impl PartialOrd for Keyword {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Hash for Keyword {
    fn hash<H: Hasher>(&self, state: &mut H) {
        for b in self.folded() {
            state.write_u8(b);
        }
    }
}

/// A message flag that can be copied.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Flag {
    Seen,
    Answered,
    Flagged,
    Deleted,
    Draft,
    Keyword(Keyword),
}

/// A set of flags, iterated in [`Flag`]'s order (system flags, then keywords ASCII-case-folded),
/// as the `BTreeSet` it replaces was.
///
/// Every listed message carries one on each side, and the pairs and the cache keep more: a
/// `BTreeSet` allocates a whole 11-slot node (about 280 bytes) for a single `\Seen`, which made
/// flags most of a huge folder's memory. Here the system flags are bits and only keywords take
/// heap, kept sorted and unique.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct FlagSet {
    system: u8,
    /// Only `Flag::Keyword`s, sorted and unique; `None` when there are none (never an empty
    /// list, so that derived equality holds), boxed so that the set is 16 bytes.
    #[allow(clippy::box_collection)]
    keywords: Option<Box<Vec<Flag>>>,
}

/// The system flags in [`Flag`]'s order; bit `i` of [`FlagSet`] is `SYSTEM[i]`.
static SYSTEM: [Flag; 5] = [
    Flag::Seen,
    Flag::Answered,
    Flag::Flagged,
    Flag::Deleted,
    Flag::Draft,
];

fn bit(flag: &Flag) -> Option<u8> {
    SYSTEM.iter().position(|f| f == flag).map(|i| 1 << i)
}

impl FlagSet {
    pub const fn new() -> FlagSet {
        FlagSet {
            system: 0,
            keywords: None,
        }
    }

    fn keywords(&self) -> &[Flag] {
        self.keywords.as_deref().map_or(&[], Vec::as_slice)
    }

    pub fn is_empty(&self) -> bool {
        self.system == 0 && self.keywords.is_none()
    }

    pub fn len(&self) -> usize {
        self.system.count_ones() as usize + self.keywords().len()
    }

    pub fn contains(&self, flag: &Flag) -> bool {
        match bit(flag) {
            Some(b) => self.system & b != 0,
            None => self.keywords().binary_search(flag).is_ok(),
        }
    }

    /// Adds `flag`; whether it was not there yet.
    pub fn insert(&mut self, flag: Flag) -> bool {
        if let Some(b) = bit(&flag) {
            let new = self.system & b == 0;
            self.system |= b;
            return new;
        }
        let keywords = self.keywords.get_or_insert_with(Box::default);
        match keywords.binary_search(&flag) {
            Ok(_) => false,
            Err(at) => {
                keywords.insert(at, flag);
                true
            }
        }
    }

    /// Removes `flag`; whether it was there.
    pub fn remove(&mut self, flag: &Flag) -> bool {
        if let Some(b) = bit(flag) {
            let was = self.system & b != 0;
            self.system &= !b;
            return was;
        }
        let Some(keywords) = &mut self.keywords else {
            return false;
        };
        let Ok(at) = keywords.binary_search(flag) else {
            return false;
        };
        keywords.remove(at);
        if keywords.is_empty() {
            self.keywords = None;
        }
        true
    }

    /// Keeps the flags `keep` says yes to.
    pub fn retain(&mut self, mut keep: impl FnMut(&Flag) -> bool) {
        for (i, f) in SYSTEM.iter().enumerate() {
            if self.system & (1 << i) != 0 && !keep(f) {
                self.system &= !(1 << i);
            }
        }
        if let Some(keywords) = &mut self.keywords {
            keywords.retain(|f| keep(f));
            if keywords.is_empty() {
                self.keywords = None;
            }
        }
    }

    pub fn iter(&self) -> Iter<'_> {
        Iter {
            system: self.system,
            next_bit: 0,
            keywords: self.keywords().iter(),
        }
    }

    /// The flags of `self` that `other` lacks, in order.
    pub fn difference<'a>(&'a self, other: &'a FlagSet) -> impl Iterator<Item = &'a Flag> + 'a {
        self.iter().filter(move |f| !other.contains(f))
    }
}

/// The flags of a [`FlagSet`], in order.
#[derive(Clone)]
pub struct Iter<'a> {
    system: u8,
    next_bit: usize,
    keywords: std::slice::Iter<'a, Flag>,
}

impl<'a> Iterator for Iter<'a> {
    type Item = &'a Flag;

    fn next(&mut self) -> Option<&'a Flag> {
        while self.next_bit < SYSTEM.len() {
            let i = self.next_bit;
            self.next_bit += 1;
            if self.system & (1 << i) != 0 {
                return Some(&SYSTEM[i]);
            }
        }
        self.keywords.next()
    }
}

impl<'a> IntoIterator for &'a FlagSet {
    type Item = &'a Flag;
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

impl IntoIterator for FlagSet {
    type Item = Flag;
    type IntoIter = std::iter::Chain<std::vec::IntoIter<Flag>, std::vec::IntoIter<Flag>>;

    fn into_iter(self) -> Self::IntoIter {
        let system: Vec<Flag> = self
            .iter()
            .take(self.system.count_ones() as usize)
            .cloned()
            .collect();
        system
            .into_iter()
            .chain(self.keywords.map_or_else(Vec::new, |k| *k))
    }
}

impl Extend<Flag> for FlagSet {
    fn extend<I: IntoIterator<Item = Flag>>(&mut self, flags: I) {
        for f in flags {
            self.insert(f);
        }
    }
}

impl FromIterator<Flag> for FlagSet {
    fn from_iter<I: IntoIterator<Item = Flag>>(flags: I) -> FlagSet {
        let mut set = FlagSet::new();
        set.extend(flags);
        set
    }
}

impl<const N: usize> From<[Flag; N]> for FlagSet {
    fn from(flags: [Flag; N]) -> FlagSet {
        flags.into_iter().collect()
    }
}

/// Lexicographic over the flags in order, as `BTreeSet`'s.
impl Ord for FlagSet {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.iter().cmp(other.iter())
    }
}

impl PartialOrd for FlagSet {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Debug for FlagSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

impl Serialize for FlagSet {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

impl<'de> Deserialize<'de> for FlagSet {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<FlagSet, D::Error> {
        Ok(Vec::<Flag>::deserialize(d)?.into_iter().collect())
    }
}

impl Flag {
    /// The flag for a name as a server sends it in FLAGS, or `None` for what is not copied:
    /// `\Recent`, other `\`-flags, `\*`, and text that is not an IMAP atom.
    pub fn parse(name: &str) -> Option<Flag> {
        if let Some(system) = name.strip_prefix('\\') {
            const SYSTEM: [(&str, Flag); 5] = [
                ("Seen", Flag::Seen),
                ("Answered", Flag::Answered),
                ("Flagged", Flag::Flagged),
                ("Deleted", Flag::Deleted),
                ("Draft", Flag::Draft),
            ];
            return SYSTEM
                .into_iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(system))
                .map(|(_, f)| f);
        }
        // atom-char: any CHAR except atom-specials (RFC 3501 §9); `]` is a resp-special.
        let atom = !name.is_empty()
            && name
                .bytes()
                .all(|b| (0x21..0x7f).contains(&b) && !b"(){%*\"\\]".contains(&b));
        atom.then(|| Flag::Keyword(Keyword(name.to_owned())))
    }

    /// Parses every name, dropping what [`Flag::parse`] drops.
    pub fn parse_all<'a>(names: impl IntoIterator<Item = &'a str>) -> FlagSet {
        names.into_iter().filter_map(Flag::parse).collect()
    }
}

impl fmt::Display for Flag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Flag::Seen => "\\Seen",
            Flag::Answered => "\\Answered",
            Flag::Flagged => "\\Flagged",
            Flag::Deleted => "\\Deleted",
            Flag::Draft => "\\Draft",
            Flag::Keyword(k) => k.as_str(),
        })
    }
}

/// A name [`Flag::parse`] does not accept.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("not a copyable IMAP flag: {0:?}")]
pub struct BadFlag(pub String);

impl FromStr for Flag {
    type Err = BadFlag;

    fn from_str(s: &str) -> Result<Flag, BadFlag> {
        Flag::parse(s).ok_or_else(|| BadFlag(s.to_owned()))
    }
}

impl Serialize for Flag {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Flag {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Flag, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use proptest::prelude::*;

    use super::*;

    fn flag() -> impl Strategy<Value = Flag> {
        prop_oneof![
            Just("\\Seen"),
            Just("\\Answered"),
            Just("\\Flagged"),
            Just("\\Deleted"),
            Just("\\Draft"),
            Just("$Label1"),
            Just("$label1"),
            Just("NonJunk"),
            Just("$Forwarded"),
            Just("a"),
        ]
        .prop_map(|n| Flag::parse(n).unwrap())
    }

    #[derive(Debug, Clone)]
    enum Op {
        Insert(Flag),
        Remove(Flag),
        RetainNot(Flag),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            flag().prop_map(Op::Insert),
            flag().prop_map(Op::Remove),
            flag().prop_map(Op::RetainNot),
        ]
    }

    proptest! {
        /// The set behaves as the `BTreeSet<Flag>` it replaced: same members, same order
        /// (and so the same serialized form), same answers from insert and remove.
        #[test]
        fn behaves_as_an_ordered_set(ops in proptest::collection::vec(op(), 0..24)) {
            let mut model = BTreeSet::new();
            let mut set = FlagSet::new();
            for op in ops {
                match op {
                    Op::Insert(f) => prop_assert_eq!(set.insert(f.clone()), model.insert(f)),
                    Op::Remove(f) => prop_assert_eq!(set.remove(&f), model.remove(&f)),
                    Op::RetainNot(f) => {
                        set.retain(|g| *g != f);
                        model.retain(|g| *g != f);
                    }
                }
                prop_assert_eq!(set.iter().collect::<Vec<_>>(), model.iter().collect::<Vec<_>>());
                prop_assert_eq!(set.len(), model.len());
                prop_assert_eq!(set.is_empty(), model.is_empty());
                prop_assert_eq!(
                    set.clone().into_iter().collect::<Vec<_>>(),
                    model.iter().cloned().collect::<Vec<_>>()
                );
                for f in ["\\Seen", "\\Draft", "$LABEL1", "nonjunk", "b"] {
                    let f = Flag::parse(f).unwrap();
                    prop_assert_eq!(set.contains(&f), model.contains(&f));
                }
            }
        }

        /// Two sets compare and order as the two `BTreeSet`s would.
        #[test]
        fn orders_as_btreeset(a in proptest::collection::vec(flag(), 0..8), b in proptest::collection::vec(flag(), 0..8)) {
            let (sa, sb): (FlagSet, FlagSet) = (a.iter().cloned().collect(), b.iter().cloned().collect());
            let (ma, mb): (BTreeSet<Flag>, BTreeSet<Flag>) = (a.into_iter().collect(), b.into_iter().collect());
            prop_assert_eq!(sa.cmp(&sb), ma.cmp(&mb));
            prop_assert_eq!(sa == sb, ma == mb);
            prop_assert_eq!(
                sa.difference(&sb).collect::<Vec<_>>(),
                ma.difference(&mb).collect::<Vec<_>>()
            );
        }
    }

    #[test]
    fn system_flags_take_no_heap() {
        let set = Flag::parse_all(["\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft"]);
        assert_eq!(set.len(), 5);
        assert!(set.keywords.is_none());
        assert_eq!(std::mem::size_of::<FlagSet>(), 16);
    }
}
