//! Verify one folder: list both sides and compare them in full, read-only on both.

use super::copy::Target;
use super::{Engine, FolderState};
use crate::imap::cache::FolderCacheKey;
use crate::imap::command::UidSet;
use crate::imap::diff::{KnownPairs, Storable, diff};
use crate::imap::proto::ImapError;
use crate::imap::report::{FolderReport, RefusedMessage};
use crate::imap::session::DestinationSession;
use crate::sources::SourceSession;

/// Compares a source folder with its destination folder: counts, sizes, identities
/// (multisets), every missing, surplus and extra message. `dest_exists`: the destination
/// folder is there (else every source message is missing).
pub(super) async fn verify_folder(
    engine: &Engine,
    src: &mut SourceSession,
    dst: &mut DestinationSession,
    t: &Target<'_>,
    dest_exists: bool,
    st: &mut FolderState,
) -> Result<(), ImapError> {
    let src_sel = src.examine(&t.source_wire).await?;
    let source_entries = if src_sel.exists > 0 {
        src.fetch_meta(&UidSet::all()).await?
    } else {
        Vec::new()
    };
    let dest_entries = if dest_exists {
        let sel = dst.examine(&t.dest_wire).await?;
        if sel.exists > 0 {
            dst.fetch_meta(&UidSet::all()).await?
        } else {
            Vec::new()
        }
    } else {
        Vec::new()
    };
    // Flags are compared as they are: EXAMINE's PERMANENTFLAGS say nothing about what the
    // folder can store.
    let d = diff(
        &source_entries,
        &dest_entries,
        &KnownPairs::new(),
        &Storable::Any,
    );
    // Messages the last sync saw refused are labelled so, rather than as missing; those
    // that arrived after it listed the folder are counted apart.
    let key = FolderCacheKey::new(t.address, t.source);
    let (refused, listed_below): (Vec<RefusedMessage>, Option<u32>) = match engine.store.load(&key)
    {
        Ok(Some(c)) if Some(c.source.uidvalidity) == src_sel.uid_validity => (
            c.refused
                .into_values()
                .filter(|r| d.to_copy.contains(&r.message.uid))
                .collect(),
            Some(c.source.uidnext),
        ),
        _ => (Vec::new(), None),
    };
    st.report = FolderReport::from_diff(
        t.source,
        t.dest,
        &d,
        &source_entries,
        &dest_entries,
        refused,
    );
    super::naming::name_messages(src, dst, &mut st.report).await;
    // On a live mailbox mail keeps arriving: what came after the last sync's listing is not
    // a copy gone wrong, and a verification that counted it would never find a busy
    // mailbox equal.
    if let Some(uidnext) = listed_below.filter(|_| dest_exists) {
        let before = st.report.missing.len();
        st.report.missing.retain(|m| m.uid < uidnext);
        st.report.arrived = (before - st.report.missing.len()) as u64;
    }
    if !dest_exists {
        st.report.error = Some(format!("destination folder {} does not exist", t.dest));
        st.report.destination_missing = true;
    }
    st.full = true;
    tracing::info!(
        mailbox = %t.address,
        folder = %t.source,
        destination = %t.dest,
        source_messages = st.report.source_messages,
        destination_messages = st.report.destination_messages,
        missing = st.report.missing.len(),
        surplus = st.report.surplus.len(),
        extra = st.report.extra.len(),
        arrived = st.report.arrived,
        "folder verified"
    );
    Ok(())
}
