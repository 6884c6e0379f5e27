//! Gmail's labels (`X-GM-EXT-1`, <https://developers.google.com/gmail/imap/imap-extensions>)
//! as a copy reads them: which messages of All Mail are archived (held by no folder that is
//! copied), and which labels become keywords. Pure: the session fetches `X-GM-LABELS`, the
//! folder table decides which pass reads them how ([`crate::imap::folders::LabelPass`]).

use super::diff::{Flag, FlagSet};
use super::folders::LabelPass;

/// Whether a message with `labels`, listed in All Mail, is held by no copied folder, so
/// that All Mail's pass (into the destination's Archive) is the one to copy it. Starred and
/// Important are views, not folders; Spam and Trash are not in All Mail at all. Under
/// `keywords`, user labels are keywords, not folders.
pub fn archived(labels: &[String], keywords: bool) -> bool {
    !labels.iter().any(|l| holds(l, keywords))
}

fn holds(label: &str, keywords: bool) -> bool {
    match label.strip_prefix('\\') {
        Some(system) => ["Inbox", "Sent", "Draft"]
            .iter()
            .any(|s| s.eq_ignore_ascii_case(system)),
        None => !keywords,
    }
}

/// The keyword a user label becomes: its name as Gmail sent it (modified UTF-7), with the
/// characters an IMAP atom cannot hold as `_`. System labels (`\Inbox`, `\Important`, ...)
/// are folders or views, not keywords.
pub fn keyword(label: &str) -> Option<Flag> {
    if label.starts_with('\\') || label.is_empty() {
        return None;
    }
    let atom: String = label
        .chars()
        .map(|c| {
            let special = c.is_ascii_control()
                || !c.is_ascii()
                || matches!(c, '(' | ')' | '{' | ' ' | '%' | '*' | '"' | '\\' | ']');
            if special { '_' } else { c }
        })
        .collect();
    Flag::parse(&atom)
}

/// Applies a pass's reading of labels to one listed message: `None` when the pass leaves
/// it to another folder, else its flags with the label keywords added (under `keywords`).
pub fn apply(pass: LabelPass, labels: &[String], mut flags: FlagSet) -> Option<FlagSet> {
    if pass.archived_only && !archived(labels, pass.keywords) {
        return None;
    }
    if pass.keywords {
        flags.extend(labels.iter().filter_map(|l| keyword(l)));
    }
    Some(flags)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(l: &[&str]) -> Vec<String> {
        l.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn all_mail_keeps_only_what_no_copied_folder_holds() {
        let folders = LabelPass {
            archived_only: true,
            keywords: false,
        };
        let none = FlagSet::new();
        assert!(apply(folders, &labels(&[]), none.clone()).is_some());
        assert!(
            apply(
                folders,
                &labels(&["\\Important", "\\Starred"]),
                none.clone()
            )
            .is_some()
        );
        assert!(apply(folders, &labels(&["\\Inbox"]), none.clone()).is_none());
        assert!(apply(folders, &labels(&["\\Sent"]), none.clone()).is_none());
        assert!(apply(folders, &labels(&["Work"]), none.clone()).is_none());
        // As keywords, a user label no longer holds it: it is archived, with the keyword.
        let keywords = LabelPass {
            archived_only: true,
            keywords: true,
        };
        let flags = apply(keywords, &labels(&["Work", "\\Important"]), none.clone()).unwrap();
        assert_eq!(flags, [Flag::parse("Work").unwrap()].into_iter().collect());
        assert!(apply(keywords, &labels(&["Work", "\\Inbox"]), none).is_none());
    }

    #[test]
    fn labels_become_atoms() {
        assert_eq!(keyword("\\Inbox"), None);
        assert_eq!(keyword("Work/Projects"), Flag::parse("Work/Projects"));
        assert_eq!(keyword("Team (old) %1"), Flag::parse("Team__old___1"));
        assert_eq!(keyword("&AMk-t&AOk-"), Flag::parse("&AMk-t&AOk-"));
    }
}
