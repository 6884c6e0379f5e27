//! What the destination refuses in folder names beyond its delimiter, learned from its
//! answers to CREATE (`[CANNOT] Character not allowed in mailbox name: '.'` from Dovecot's
//! Maildir++ under a `/` separator) and kept in the state, so that the mapping writes such
//! characters as `_` from then on, `folders` shows it, and no folder fails for its name.

use std::collections::BTreeSet;
use std::sync::Mutex;

use crate::imap::cache::CacheStore;

/// The character a refusal of CREATE names as not allowed, if it names one.
pub fn refused_character(reason: &str) -> Option<char> {
    let lower = reason.to_ascii_lowercase();
    if !(lower.contains("not allowed") || lower.contains("invalid character")) {
        return None;
    }
    // The last quoted single character: `... name: '.'`.
    let chars: Vec<char> = reason.chars().collect();
    chars.windows(3).rev().find_map(|w| {
        let quoted = (w[0] == '\'' && w[2] == '\'') || (w[0] == '"' && w[2] == '"');
        (quoted && !w[1].is_alphanumeric() && !w[1].is_whitespace()).then_some(w[1])
    })
}

/// The characters learned so far, loaded from the store at first use.
#[derive(Debug, Default)]
pub struct Refused(Mutex<Option<BTreeSet<char>>>);

impl Refused {
    pub fn get(&self, store: &dyn CacheStore) -> Vec<char> {
        let mut known = self.0.lock().unwrap_or_else(|e| e.into_inner());
        known
            .get_or_insert_with(|| load(store))
            .iter()
            .copied()
            .collect()
    }

    /// Records `c`; true when it was new (the mapping must then be made again).
    pub fn learn(&self, store: &dyn CacheStore, c: char) -> bool {
        let mut known = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let set = known.get_or_insert_with(|| load(store));
        if !set.insert(c) {
            return false;
        }
        let all: Vec<char> = set.iter().copied().collect();
        if let Err(e) = store.save_refused_characters(&all) {
            // Learned again by the next run's first refusal: nothing is lost.
            tracing::warn!(error = %e, "cannot store the characters the destination refuses");
        }
        true
    }
}

fn load(store: &dyn CacheStore) -> BTreeSet<char> {
    store
        .load_refused_characters()
        .unwrap_or_else(|e| {
            tracing::warn!(error = %e, "ignoring unreadable record of refused characters");
            Vec::new()
        })
        .into_iter()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_naming_a_character_are_understood() {
        assert_eq!(
            refused_character("[CANNOT] Character not allowed in mailbox name: '.'"),
            Some('.')
        );
        assert_eq!(
            refused_character("Invalid character \"%\" in mailbox name"),
            Some('%')
        );
        assert_eq!(refused_character("[CANNOT] Mailbox name too long"), None);
        assert_eq!(refused_character("[ALREADYEXISTS] 'x' exists"), None);
        assert_eq!(refused_character("not allowed: 'a'"), None);
    }
}
