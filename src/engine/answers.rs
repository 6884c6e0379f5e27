//! What a source sent for a batch of bodies, checked against what was asked: the UIDs
//! requested, each once, each as long as its RFC822.SIZE and with the Message-ID its listing
//! showed. A message failing a check is a fault of the source: reported with its folder and
//! UID among the refused messages, never appended, never recorded as copied; like a
//! message the destination refuses, it is asked for again by the next run.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::imap::diff::Entry;
use crate::imap::identity::MessageKey;
use crate::imap::session::Outgoing;

/// A fetched message that does not match its listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fault {
    pub uid: u32,
    /// Whether `uid` was asked for at all (one that was not has no listing to report).
    pub listed: bool,
    pub reason: String,
}

/// Splits `fetched` (answers to a UID FETCH of `batch`) into the messages that match their
/// listing, in UID order, and the faults.
pub fn check(batch: &[&Entry], fetched: Vec<Outgoing>) -> (Vec<Outgoing>, Vec<Fault>) {
    let listed: HashMap<u32, &Entry> = batch.iter().map(|e| (e.uid, *e)).collect();
    let mut by_uid: BTreeMap<u32, Vec<Outgoing>> = BTreeMap::new();
    for m in fetched {
        by_uid.entry(m.uid).or_default().push(m);
    }
    let mut good = Vec::with_capacity(by_uid.len());
    let mut faults = Vec::new();
    for (uid, mut copies) in by_uid {
        let fault = |listed: bool, reason: String| Fault {
            uid,
            listed,
            reason,
        };
        let Some(entry) = listed.get(&uid) else {
            faults.push(fault(
                false,
                format!("the source sent UID {uid}, which was not asked for"),
            ));
            continue;
        };
        copies.dedup_by(|a, b| a.body == b.body);
        let m = match copies.len() {
            1 => copies.remove(0),
            n => {
                faults.push(fault(
                    true,
                    format!("the source sent {n} different bodies for UID {uid}"),
                ));
                continue;
            }
        };
        let size = m.body.len() as u64;
        if size != u64::from(entry.size) {
            faults.push(fault(
                true,
                format!(
                    "the source sent {size} bytes for UID {uid}, whose RFC822.SIZE is {}",
                    entry.size
                ),
            ));
            continue;
        }
        // Only a Message-ID is compared: the hash of stable header fields is made from the
        // header fields the listing fetched, which a server may fold or order otherwise in
        // the whole message.
        if entry.key.is_message_id() && MessageKey::from_header(&m.body) != entry.key {
            let got = crate::imap::identity::message_id(&m.body)
                .map_or_else(|| "no Message-ID".to_owned(), |id| format!("<{id}>"));
            faults.push(fault(
                true,
                format!(
                    "the source sent a message for UID {uid} whose Message-ID ({got}) is not the one listed ({})",
                    entry.key
                ),
            ));
            continue;
        }
        good.push(m);
    }
    // A message asked for and not sent was usually expunged meanwhile (the next pass sees it
    // gone). Not when the server sent UIDs nobody asked for: then it answered the wrong
    // question, and what it left out is its fault too.
    let unasked: Vec<String> = faults
        .iter()
        .filter(|f| !f.listed)
        .map(|f| f.uid.to_string())
        .collect();
    if !unasked.is_empty() {
        let shown = match unasked.len() {
            n if n <= 5 => unasked.join(", "),
            n => format!("{} and {} more", unasked[..5].join(", "), n - 5),
        };
        let sent: HashSet<u32> = good
            .iter()
            .map(|m| m.uid)
            .chain(faults.iter().map(|f| f.uid))
            .collect();
        for e in batch.iter().filter(|e| !sent.contains(&e.uid)) {
            faults.push(Fault {
                uid: e.uid,
                listed: true,
                reason: format!(
                    "the source did not send UID {}, and sent UID {shown}, which was not asked for",
                    e.uid
                ),
            });
        }
    }
    (good, faults)
}

/// The UIDs of `batch` the source sent nothing for (neither a good answer nor a fault):
/// expunged meanwhile, or left out by the server. Asking again tells which.
pub fn unanswered(batch: &[&Entry], good: &[Outgoing], faults: &[Fault]) -> Vec<u32> {
    let answered: HashSet<u32> = good
        .iter()
        .map(|m| m.uid)
        .chain(faults.iter().map(|f| f.uid))
        .collect();
    batch
        .iter()
        .map(|e| e.uid)
        .filter(|u| !answered.contains(u))
        .collect()
}

/// A message the source still lists after leaving it out of a body fetch.
pub fn left_out(uid: u32) -> Fault {
    Fault {
        uid,
        listed: true,
        reason: format!("the source did not send UID {uid}, though it still lists it"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(id: &str, text: &str) -> Vec<u8> {
        format!("Message-ID: <{id}>\r\nSubject: x\r\n\r\n{text}\r\n").into_bytes()
    }

    fn entry(uid: u32, id: &str, text: &str) -> Entry {
        Entry {
            uid,
            key: MessageKey::from_header(&body(id, text)),
            flags: Default::default(),
            internal_date: None,
            size: body(id, text).len() as u32,
        }
    }

    fn out(uid: u32, b: Vec<u8>) -> Outgoing {
        Outgoing {
            uid,
            flags: Default::default(),
            internal_date: None,
            body: b,
        }
    }

    #[test]
    fn what_matches_its_listing_goes_through_in_uid_order() {
        let listed = [entry(1, "a@x", "one"), entry(2, "b@x", "two")];
        let batch: Vec<&Entry> = listed.iter().collect();
        let (good, faults) = check(
            &batch,
            vec![out(2, body("b@x", "two")), out(1, body("a@x", "one"))],
        );
        assert!(faults.is_empty(), "{faults:?}");
        assert_eq!(good.iter().map(|m| m.uid).collect::<Vec<_>>(), [1, 2]);
        // The same body sent twice is one message.
        let (good, faults) = check(
            &batch[..1],
            vec![out(1, body("a@x", "one")), out(1, body("a@x", "one"))],
        );
        assert_eq!((good.len(), faults.len()), (1, 0));
    }

    #[test]
    fn what_is_left_out_is_a_fault_only_when_something_unasked_came_instead() {
        let listed = [entry(1, "a@x", "one"), entry(2, "b@x", "two")];
        let batch: Vec<&Entry> = listed.iter().collect();
        // UID 2 expunged meanwhile: not a fault, the next pass sees it gone.
        let (good, faults) = check(&batch, vec![out(1, body("a@x", "one"))]);
        assert_eq!((good.len(), faults.len()), (1, 0));
        // The server answered other UIDs: what it left out is its fault.
        let (good, faults) = check(&batch, vec![out(101, body("a@x", "one"))]);
        assert!(good.is_empty());
        let missing: Vec<u32> = faults.iter().filter(|f| f.listed).map(|f| f.uid).collect();
        assert_eq!(missing, [1, 2]);
        assert!(
            faults[1]
                .reason
                .contains("sent UID 101, which was not asked for")
        );
    }

    #[test]
    fn wrong_extra_twice_short_or_foreign_answers_are_faults() {
        let listed = [
            entry(1, "a@x", "one"),
            entry(2, "b@x", "two"),
            entry(3, "c@x", "three"),
        ];
        let batch: Vec<&Entry> = listed.iter().collect();
        let (good, faults) = check(
            &batch,
            vec![
                // Not asked for.
                out(101, body("z@x", "zzz")),
                // Two different bodies for one UID.
                out(1, body("a@x", "one")),
                out(1, body("a@x", "ONE")),
                // Shorter than its RFC822.SIZE.
                out(2, body("b@x", "tw")),
                // Another message's identity, at the right size.
                out(3, body("d@x", "three")),
            ],
        );
        assert!(good.is_empty(), "{good:?}");
        let reasons: Vec<(u32, bool, &str)> = faults
            .iter()
            .map(|f| (f.uid, f.listed, f.reason.as_str()))
            .collect();
        assert_eq!(reasons.len(), 4, "{reasons:?}");
        assert!(reasons[0].2.contains("2 different bodies"), "{reasons:?}");
        assert!(reasons[1].2.contains("RFC822.SIZE"), "{reasons:?}");
        assert!(reasons[2].2.contains("not the one listed"), "{reasons:?}");
        assert_eq!((reasons[3].0, reasons[3].1), (101, false));
    }
}
