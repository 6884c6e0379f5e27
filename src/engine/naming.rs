//! Message-IDs for the messages a folder's report names (missing, surplus, extra, refused by
//! a source fault). Listings keep only each message's key, a digest (see
//! [`crate::imap::identity::MessageKey`]): the ids are read back for the few messages a
//! report names, in one FETCH per side, rather than held for every message of a folder.

use crate::imap::command::UidSet;
use crate::imap::report::{FolderReport, MessageRef};
use crate::imap::session::DestinationSession;
use crate::sources::SourceSession;

/// At most this many messages per side are named in one folder's report; the rest keep
/// their keys. A verify before any sync finds every source message missing: naming a
/// million would be a second listing.
const NAMED_AT_MOST: usize = 1000;

/// Fills in the Message-IDs of `r`'s messages from the folders still selected on `src` and
/// `dst`. A failure only leaves messages named by their keys: the report's counts and UIDs
/// are already right, and a broken connection shows itself to the next command.
pub(super) async fn name_messages(
    src: &mut SourceSession,
    dst: &mut DestinationSession,
    r: &mut FolderReport,
) {
    let source_side = unnamed(r.missing.iter().chain(r.refused.iter().map(|f| &f.message)));
    let dest_side = unnamed(r.surplus.iter().chain(&r.extra));
    let (source_ids, dest_ids) = tokio::join!(
        async {
            match source_side.is_empty() {
                true => Ok(Vec::new()),
                false => src.message_ids(&UidSet::of(&source_side)).await,
            }
        },
        async {
            match dest_side.is_empty() {
                true => Ok(Vec::new()),
                false => dst.message_ids(&UidSet::of(&dest_side)).await,
            }
        }
    );
    let source_ids = source_ids.unwrap_or_else(|e| {
        tracing::debug!(error = %e, "Message-IDs of the source's reported messages not read");
        Vec::new()
    });
    let dest_ids = dest_ids.unwrap_or_else(|e| {
        tracing::debug!(error = %e, "Message-IDs of the destination's reported messages not read");
        Vec::new()
    });
    let refused = r.refused.iter_mut().map(|f| &mut f.message);
    fill(r.missing.iter_mut().chain(refused), &source_ids);
    fill(r.surplus.iter_mut().chain(r.extra.iter_mut()), &dest_ids);
}

/// UIDs of the messages without a Message-ID yet, ascending, at most [`NAMED_AT_MOST`].
fn unnamed<'a>(refs: impl Iterator<Item = &'a MessageRef>) -> Vec<u32> {
    let mut uids: Vec<u32> = refs
        .filter(|m| m.message_id.is_none() && m.key.is_message_id())
        .map(|m| m.uid)
        .collect();
    uids.sort_unstable();
    uids.dedup();
    uids.truncate(NAMED_AT_MOST);
    uids
}

/// Names each message whose UID has an id in `ids`, when the id is the one its key was
/// made from (a UID that names another message by now stays unnamed).
fn fill<'a>(refs: impl Iterator<Item = &'a mut MessageRef>, ids: &[(u32, String)]) {
    if ids.is_empty() {
        return;
    }
    let mut ids = ids.to_vec();
    ids.sort_unstable_by_key(|(uid, _)| *uid);
    for m in refs.filter(|m| m.message_id.is_none()) {
        if let Ok(i) = ids.binary_search_by_key(&m.uid, |(uid, _)| *uid) {
            let id = &ids[i].1;
            if crate::imap::identity::MessageKey::of_message_id(id) == m.key {
                m.message_id = Some(id.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::imap::identity::MessageKey;

    fn named(uid: u32, id: &str) -> MessageRef {
        MessageRef {
            uid,
            key: MessageKey::of_message_id(id),
            message_id: None,
            date: None,
            size: 1,
        }
    }

    #[test]
    fn names_only_what_matches_its_key() {
        let mut refs = [named(1, "a@x"), named(2, "b@x"), named(3, "c@x")];
        let ids = vec![
            (3, "c@x".to_owned()),
            (1, "a@x".to_owned()),
            // UID 2 now holds another message.
            (2, "other@x".to_owned()),
        ];
        fill(refs.iter_mut(), &ids);
        let got: Vec<Option<&str>> = refs.iter().map(|m| m.message_id.as_deref()).collect();
        assert_eq!(got, [Some("a@x"), None, Some("c@x")]);
    }

    #[test]
    fn asks_once_per_uid_and_not_for_header_keys() {
        let mut header_keyed = named(9, "x");
        header_keyed.key = MessageKey::from_header(b"Subject: s\r\n");
        let mut done = named(4, "d@x");
        done.message_id = Some("d@x".into());
        let refs = [
            named(5, "a@x"),
            named(2, "b@x"),
            named(5, "a@x"),
            header_keyed,
            done,
        ];
        assert_eq!(unnamed(refs.iter()), [2, 5]);
        let many: Vec<MessageRef> = (0..5000).map(|u| named(u, "m@x")).collect();
        assert_eq!(unnamed(many.iter()).len(), NAMED_AT_MOST);
    }
}
