//! SPF (RFC 7208) edits during a move: add the servers' mechanisms, later take the old
//! server's out, touching nothing else of the record.
//!
//! - A record is SPF when its text starts with `v=spf1` followed by a space or its end
//!   (case-insensitive).
//! - Mechanisms are compared case-insensitively, `+` (the default qualifier) ignored:
//!   `+ip4:192.0.2.10` is `ip4:192.0.2.10`.
//! - Added mechanisms go right before the `all` term (evaluation stops there), in the
//!   order given; without one, at the end. Terms already present are not added twice.
//! - Without any SPF record, a new one is `v=spf1 MECHANISMS ?all`: only the named servers
//!   pass, every other sender stays "neutral", which is what receivers concluded without
//!   a record, so no one else's mail is judged worse than before.
//! - Revoking removes exactly the named mechanisms (any qualifier spelling of `+`) and
//!   keeps the rest, even if only `v=spf1 ?all` is left.

/// Whether `text` is an SPF record.
pub fn is_spf(text: &str) -> bool {
    let t = text.trim_start();
    t.get(..6).is_some_and(|v| v.eq_ignore_ascii_case("v=spf1"))
        && t[6..].chars().next().is_none_or(|c| c == ' ')
}

/// The record with `mechanisms` authorized; `None` when it authorizes all of them already.
/// `existing` is the current SPF record, if any.
pub fn authorize(existing: Option<&str>, mechanisms: &[String]) -> Option<String> {
    let Some(existing) = existing else {
        let mut terms = vec!["v=spf1".to_owned()];
        dedup_into(&mut terms, mechanisms);
        if terms.len() == 1 {
            return None;
        }
        terms.push("?all".into());
        return Some(terms.join(" "));
    };
    let mut terms: Vec<String> = existing.split_whitespace().map(str::to_owned).collect();
    let mut add = Vec::new();
    dedup_into(&mut add, mechanisms);
    add.retain(|m| !terms.iter().any(|t| same_term(t, m)));
    if add.is_empty() {
        return None;
    }
    let at = terms.iter().position(|t| is_all(t)).unwrap_or(terms.len());
    terms.splice(at..at, add);
    Some(terms.join(" "))
}

/// The record without `mechanisms`; `None` when it holds none of them.
pub fn revoke(existing: &str, mechanisms: &[String]) -> Option<String> {
    let terms: Vec<&str> = existing.split_whitespace().collect();
    let kept: Vec<&str> = terms
        .iter()
        .copied()
        .filter(|t| !mechanisms.iter().any(|m| same_term(t, m)))
        .collect();
    (kept.len() != terms.len()).then(|| kept.join(" "))
}

fn dedup_into(out: &mut Vec<String>, mechanisms: &[String]) {
    for m in mechanisms
        .iter()
        .map(|m| m.trim())
        .filter(|m| !m.is_empty())
    {
        if !out.iter().any(|t| same_term(t, m)) {
            out.push(m.to_owned());
        }
    }
}

fn normalized(term: &str) -> String {
    term.strip_prefix('+').unwrap_or(term).to_ascii_lowercase()
}

fn same_term(a: &str, b: &str) -> bool {
    normalized(a) == normalized(b)
}

fn is_all(term: &str) -> bool {
    let t = term.trim_start_matches(['+', '-', '~', '?']);
    t.eq_ignore_ascii_case("all")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn recognizes_spf_records() {
        assert!(is_spf("v=spf1 -all"));
        assert!(is_spf("V=SPF1 ip4:192.0.2.1"));
        assert!(is_spf("v=spf1"));
        assert!(!is_spf("v=spf10 -all"));
        assert!(!is_spf("google-site-verification=abc"));
        assert!(!is_spf("v=DKIM1; k=rsa"));
    }

    #[test]
    fn authorizing_inserts_before_all_and_skips_what_is_there() {
        assert_eq!(
            authorize(
                Some("v=spf1 ip4:192.0.2.10 -all"),
                &v(&["ip4:192.0.2.10", "ip4:198.51.100.20"])
            )
            .as_deref(),
            Some("v=spf1 ip4:192.0.2.10 ip4:198.51.100.20 -all")
        );
        assert_eq!(
            authorize(Some("v=spf1 +IP4:192.0.2.10 ~all"), &v(&["ip4:192.0.2.10"])),
            None
        );
        assert_eq!(
            authorize(Some("v=spf1 include:_spf.example.net"), &v(&["a:mx.new."])).as_deref(),
            Some("v=spf1 include:_spf.example.net a:mx.new.")
        );
        assert_eq!(
            authorize(
                Some("v=spf1 mx redirect=_spf.example.com"),
                &v(&["ip4:1.2.3.4"])
            )
            .as_deref(),
            Some("v=spf1 mx redirect=_spf.example.com ip4:1.2.3.4")
        );
    }

    #[test]
    fn a_new_record_is_neutral_for_everyone_else() {
        assert_eq!(
            authorize(None, &v(&["ip4:192.0.2.10", "ip4:198.51.100.20"])).as_deref(),
            Some("v=spf1 ip4:192.0.2.10 ip4:198.51.100.20 ?all")
        );
        assert_eq!(authorize(None, &[]), None);
    }

    #[test]
    fn revoking_removes_only_the_named_mechanisms() {
        assert_eq!(
            revoke(
                "v=spf1 ip4:192.0.2.10 ip4:198.51.100.20 -all",
                &v(&["ip4:192.0.2.10"])
            )
            .as_deref(),
            Some("v=spf1 ip4:198.51.100.20 -all")
        );
        assert_eq!(
            revoke("v=spf1 +ip4:192.0.2.10 ?all", &v(&["IP4:192.0.2.10"])).as_deref(),
            Some("v=spf1 ?all")
        );
        assert_eq!(revoke("v=spf1 mx -all", &v(&["ip4:192.0.2.10"])), None);
    }
}
