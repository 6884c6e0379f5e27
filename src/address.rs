//! The one way mailshift compares mailbox addresses and domains: every map keyed by an
//! address, every set the planner compares with what a relay holds, and every entry a relay
//! is given go through [`key`], so `JÖRG@example.com` is one mailbox everywhere. (The
//! planner once lowered case by Unicode's rules where the relay lowered only ASCII.)

/// An address or domain as mailshift compares it: trimmed, without a trailing dot (a DNS
/// name's root), lower case by Unicode's rules (Postfix folds UTF-8 lookup keys the same
/// way with SMTPUTF8).
pub fn key(s: &str) -> String {
    s.trim().trim_end_matches('.').to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_key_whatever_the_spelling() {
        assert_eq!(key(" JÖRG@Example.COM "), "jörg@example.com");
        assert_eq!(key("jörg@example.com"), key("JÖRG@EXAMPLE.COM"));
        assert_eq!(key("Example.COM."), "example.com");
        // Stable: a key is its own key.
        assert_eq!(key(&key("ÅSA@Ex.org")), key("ÅSA@Ex.org"));
    }
}
