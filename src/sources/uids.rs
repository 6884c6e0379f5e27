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
    pub uids: HashMap<String, u32>,
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
            uids: HashMap::new(),
        }
    }

    /// The UIDs of `found` (stable name, order: a date, a message number), new names
    /// numbered in that order (then by name), after every name seen before. Returns the
    /// UIDs in the order of `found`, and whether the map changed (and must be saved before
    /// they are used).
    pub fn assign(&mut self, found: &[(&str, i64)]) -> (Vec<u32>, bool) {
        let mut fresh: BTreeMap<(i64, &str), ()> = BTreeMap::new();
        for (name, order) in found {
            if !self.uids.contains_key(*name) {
                fresh.insert((*order, name), ());
            }
        }
        let changed = !fresh.is_empty();
        for ((_, name), ()) in fresh {
            self.uids.insert(name.to_owned(), self.next);
            self.next = self.next.saturating_add(1);
        }
        let uids = found.iter().map(|(name, _)| self.uids[*name]).collect();
        (uids, changed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_keep_their_uids_and_new_ones_come_after() {
        let mut m = UidMap::new("/x");
        let (u, changed) = m.assign(&[("b", 20), ("a", 10)]);
        assert!(changed);
        assert_eq!(u, vec![2, 1]);
        let (u, changed) = m.assign(&[("a", 10), ("c", 5)]);
        assert!(changed);
        assert_eq!(
            u,
            vec![1, 3],
            "a new name comes after every earlier one, whatever its date"
        );
        let (u, changed) = m.assign(&[("b", 20), ("a", 10), ("c", 5)]);
        assert!(!changed);
        assert_eq!(
            u,
            vec![2, 1, 3],
            "a name out of sight for a while keeps its UID"
        );
    }
}
