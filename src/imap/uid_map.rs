//! Stable UIDs for folders that have none: files in a Maildir, messages in an mbox, POP3
//! UIDLs.
//!
//! The engine's re-sync cache (see [`crate::imap::cache`]) needs what IMAP promises: under
//! one UIDVALIDITY a UID always names the same message, and a message that appears later
//! gets a UID above every earlier one. A folder of files promises neither, so mailshift keeps
//! its own map from each message's stable name (its Maildir base name, its mbox content
//! digest, its UIDL) to a UID, saved before any UID it hands out is used. The server's own
//! numbering (Dovecot's `dovecot-uidlist`, mbox `X-UID` headers) is not used: a live old
//! server renumbers as it likes, and the map must never depend on what it does next.
//!
//! The map also keeps a digest of each message's flags and a HIGHESTMODSEQ of its own,
//! raised whenever a read of the folder finds a new name or flags other than recorded, so
//! that a re-sync of an unchanged folder is one read of it (STATUS), as with a CONDSTORE
//! server. The raise is saved before the STATUS that shows it is answered.
//!
//! A name is never forgotten: a file briefly out of sight (renamed while the directory was
//! read) comes back under its old UID, which the engine sees as an inconsistent folder and
//! answers with a full comparison, never as a new message to copy again. A lost map starts a
//! new UIDVALIDITY, which makes the next pass a full comparison too.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

/// The UIDs of one folder's messages, by stable name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UidMap {
    pub uidvalidity: u32,
    /// The UID the next new name gets.
    pub next: u32,
    /// Raised by every read that found a new name or changed flags.
    pub modseq: u64,
    /// Name → (UID, digest of its flags when last read).
    pub uids: HashMap<String, (u32, u64)>,
}

/// A message as a read found it: its stable name, its order among new ones (a date, a
/// message number) and a digest of its flags.
#[derive(Clone, Copy, Debug)]
pub struct Seen<'a> {
    pub name: &'a str,
    pub order: i64,
    pub flags: u64,
}

/// A digest of a flag set, for telling whether it changed.
pub fn flags_digest(flags: &crate::imap::diff::FlagSet) -> u64 {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for f in flags {
        h.update(f.to_string().to_ascii_lowercase().as_bytes());
        h.update([0]);
    }
    let d = h.finalize();
    u64::from_be_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]])
}

impl UidMap {
    /// A new map for the folder `folder_id` (its path), with a UIDVALIDITY of its own.
    pub fn new(folder_id: &str) -> UidMap {
        use sha2::{Digest, Sha256};
        let now = chrono::Utc::now().timestamp_micros();
        let digest = Sha256::digest(format!("{folder_id}\0{now}").as_bytes());
        let v = u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]);
        UidMap {
            uidvalidity: v.max(1),
            next: 1,
            modseq: 1,
            uids: HashMap::new(),
        }
    }

    /// The UIDs of `found`, new names numbered in their order (then by name), after every
    /// name seen before; MODSEQ raised when a name is new or its flags changed. Returns the
    /// UIDs in the order of `found`, and whether the map changed (and must be saved before
    /// anything it says is used).
    pub fn assign(&mut self, found: &[Seen<'_>]) -> (Vec<u32>, bool) {
        let mut fresh: BTreeMap<(i64, &str), u64> = BTreeMap::new();
        let mut changed = false;
        for seen in found {
            match self.uids.get_mut(seen.name) {
                Some((_, flags)) if *flags == seen.flags => {}
                Some((_, flags)) => {
                    *flags = seen.flags;
                    changed = true;
                }
                None => {
                    fresh.insert((seen.order, seen.name), seen.flags);
                }
            }
        }
        changed |= !fresh.is_empty();
        for ((_, name), flags) in fresh {
            self.uids.insert(name.to_owned(), (self.next, flags));
            self.next = self.next.saturating_add(1);
        }
        if changed {
            self.modseq = self.modseq.saturating_add(1);
        }
        let uids = found.iter().map(|s| self.uids[s.name].0).collect();
        (uids, changed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(name: &str, order: i64, flags: u64) -> Seen<'_> {
        Seen { name, order, flags }
    }

    #[test]
    fn names_keep_their_uids_and_new_ones_come_after() {
        let mut m = UidMap::new("/x");
        let (u, changed) = m.assign(&[seen("b", 20, 0), seen("a", 10, 0)]);
        assert!(changed);
        assert_eq!(u, vec![2, 1]);
        let (u, changed) = m.assign(&[seen("a", 10, 0), seen("c", 5, 0)]);
        assert!(changed);
        assert_eq!(
            u,
            vec![1, 3],
            "a new name comes after every earlier one, whatever its date"
        );
        let modseq = m.modseq;
        let (u, changed) = m.assign(&[seen("b", 20, 0), seen("a", 10, 0), seen("c", 5, 0)]);
        assert!(!changed);
        assert_eq!(
            u,
            vec![2, 1, 3],
            "a name out of sight for a while keeps its UID"
        );
        assert_eq!(m.modseq, modseq, "nothing changed: MODSEQ stays");
    }

    #[test]
    fn changed_flags_raise_modseq() {
        let mut m = UidMap::new("/x");
        m.assign(&[seen("a", 1, 0)]);
        let before = m.modseq;
        let (u, changed) = m.assign(&[seen("a", 1, 7)]);
        assert!(changed);
        assert_eq!(u, vec![1]);
        assert!(m.modseq > before);
        let after = m.modseq;
        assert!(!m.assign(&[seen("a", 1, 7)]).1);
        assert_eq!(m.modseq, after);
    }
}
