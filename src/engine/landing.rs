//! The engine's side of [`crate::imap::in_flight`]: each batch recorded before it is sent
//! and cleared once answered, and a folder whose last batch was never answered watched
//! until that batch has landed (or never will) before its pass lists the destination.

use super::Engine;
use crate::imap::cache::FolderCacheKey;
use crate::imap::in_flight::{InFlight, POLL, SETTLE, Verdict, Watch, now_ms};
use crate::imap::proto::ImapError;
use crate::imap::session::DestinationSession;

/// Records `batch` as sent (`Some`) or answered (`None`).
pub(super) fn record(
    engine: &Engine,
    key: &FolderCacheKey,
    batch: Option<&InFlight>,
) -> Result<(), ImapError> {
    engine
        .store
        .save_in_flight(key, batch)
        .map_err(|e| super::unsaved(format!("recording the append in flight to {key}"), &e))
}

/// Whether an append ended so that its batch may still be on the server's side: the
/// connection went before the answer came. (A throttling refusal is an answer.)
pub(super) fn unanswered(e: &ImapError) -> bool {
    e.is_connection_lost() && e.throttled().is_none()
}

/// If the folder's last batch was left unanswered (by a killed process or a lost
/// connection), waits until it has landed or the folder has been still for [`SETTLE`].
/// Returns whether there was one: then the STATUS taken before this pass is stale.
pub(super) async fn settle(
    engine: &Engine,
    dst: &mut DestinationSession,
    key: &FolderCacheKey,
) -> Result<bool, ImapError> {
    let batch = match engine.store.load_in_flight(key) {
        Ok(Some(b)) => b,
        Ok(None) => return Ok(false),
        Err(e) => {
            tracing::warn!(folder = %key, error = %e, "cannot read the record of an append in flight");
            return Ok(false);
        }
    };
    let started = std::time::Instant::now();
    let mut watch = Watch::new(batch, SETTLE);
    let mut told = false;
    let verdict = loop {
        let status = match dst.status(&watch.batch().folder).await {
            Ok(s) => s.snapshot(),
            Err(e) if e.is_connection_lost() => return Err(e),
            // Refused: the folder is gone.
            Err(_) => None,
        };
        match watch.look(status.as_ref(), now_ms()) {
            Verdict::Wait => {
                if !std::mem::replace(&mut told, true) {
                    tracing::info!(folder = %key, messages = watch.batch().messages, "a batch appended before the last run ended was not answered; waiting for it to land");
                }
                tokio::time::sleep(POLL).await;
            }
            v => break v,
        }
    };
    tracing::info!(folder = %key, messages = watch.batch().messages, verdict = ?verdict, waited_ms = started.elapsed().as_millis() as u64, "unanswered batch settled");
    record(engine, key, None)?;
    Ok(true)
}
