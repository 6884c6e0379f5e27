//! Appends that may still land after their client is gone.
//!
//! A batch sent in full (with LITERAL+ the client writes it without waiting) is the
//! server's to finish: if mailshift is killed, or its connection cut, while the answer is on
//! its way, the server may commit the batch a moment later. A pass that lists the
//! destination before that moment does not see the batch and appends it again; the late
//! commit then makes every message of it a duplicate. So before each batch the engine
//! records what it is about to append ([`InFlight`]: the folder, its UIDVALIDITY and
//! UIDNEXT, how many messages) and clears the record once the server has answered. A pass
//! that finds a record left behind first watches the folder's STATUS ([`Watch`]) until the
//! batch has visibly landed, or the folder has stayed still long enough that it never will.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::status::FolderStatus;

/// How long a folder must stay still (neither UIDNEXT nor the message count moving),
/// counted from when its batch was sent, before a batch not seen to land is taken as
/// abandoned. A server commits a batch it has received in full within moments; one that
/// never received all of it drops it when the connection ends.
pub const SETTLE: Duration = Duration::from_secs(5);

/// How often the folder is looked at meanwhile.
pub const POLL: Duration = Duration::from_millis(200);

/// A batch sent to the destination and not yet answered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InFlight {
    /// The destination folder, as sent (wire form).
    pub folder: String,
    pub uidvalidity: u32,
    /// The folder's UIDNEXT before the batch (as far as the session knew it: what the
    /// SELECT said, moved on by the appends it saw answered).
    pub uidnext: u32,
    pub messages: u32,
    /// When the batch was sent, in milliseconds since the Unix epoch.
    pub sent_at_ms: u64,
}

impl InFlight {
    pub fn new(folder: &str, (uidvalidity, uidnext): (u32, u32), messages: usize) -> Self {
        InFlight {
            folder: folder.to_owned(),
            uidvalidity,
            uidnext,
            messages: u32::try_from(messages).unwrap_or(u32::MAX),
            sent_at_ms: now_ms(),
        }
    }
}

/// The wall clock in milliseconds since the Unix epoch (the record outlives the process,
/// so a monotonic clock would not do).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// What a look at the folder says about the batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// UIDNEXT has moved past the whole batch: it was committed.
    Landed,
    /// The folder is not the one the batch went to any more (a new UIDVALIDITY, or gone).
    Replaced,
    /// Still for [`SETTLE`] since the batch was sent or last moved: it will not land.
    Abandoned,
    /// Look again after [`POLL`].
    Wait,
}

/// Watches one folder for one [`InFlight`] batch, look by look.
#[derive(Debug)]
pub struct Watch {
    batch: InFlight,
    last: Option<(u32, u32)>,
    still_since_ms: u64,
    settle_ms: u64,
}

impl Watch {
    pub fn new(batch: InFlight, settle: Duration) -> Self {
        Watch {
            still_since_ms: batch.sent_at_ms,
            batch,
            last: None,
            settle_ms: u64::try_from(settle.as_millis()).unwrap_or(u64::MAX),
        }
    }

    pub fn batch(&self) -> &InFlight {
        &self.batch
    }

    /// The verdict on the folder's STATUS taken at `now_ms` (`None`: the folder does not
    /// exist, or its STATUS gives no UIDVALIDITY and UIDNEXT to tell anything by).
    pub fn look(&mut self, status: Option<&FolderStatus>, now_ms: u64) -> Verdict {
        let Some(s) = status else {
            return Verdict::Replaced;
        };
        if s.uidvalidity != self.batch.uidvalidity {
            return Verdict::Replaced;
        }
        let target = u64::from(self.batch.uidnext) + u64::from(self.batch.messages);
        if u64::from(s.uidnext) >= target {
            return Verdict::Landed;
        }
        // A server committing message by message moves while it works: the clock starts
        // again from each change.
        let seen = (s.uidnext, s.messages);
        if self.last.is_some_and(|l| l != seen) {
            self.still_since_ms = self.still_since_ms.max(now_ms);
        }
        self.last = Some(seen);
        if now_ms.saturating_sub(self.still_since_ms) >= self.settle_ms {
            Verdict::Abandoned
        } else {
            Verdict::Wait
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(uidvalidity: u32, uidnext: u32, messages: u32) -> FolderStatus {
        FolderStatus::new(uidvalidity, uidnext, messages)
    }

    fn batch(sent_at_ms: u64) -> InFlight {
        InFlight {
            folder: "INBOX".into(),
            uidvalidity: 7,
            uidnext: 201,
            messages: 200,
            sent_at_ms,
        }
    }

    #[test]
    fn a_batch_lands_once_uidnext_passes_all_of_it() {
        let mut w = Watch::new(batch(1_000), SETTLE);
        assert_eq!(w.look(Some(&status(7, 201, 200)), 1_100), Verdict::Wait);
        // Part of it (a server committing one by one) is not enough.
        assert_eq!(w.look(Some(&status(7, 300, 299)), 1_300), Verdict::Wait);
        assert_eq!(w.look(Some(&status(7, 401, 400)), 1_500), Verdict::Landed);
    }

    #[test]
    fn a_batch_that_never_arrived_is_abandoned_after_the_folder_stayed_still() {
        let mut w = Watch::new(batch(1_000), Duration::from_secs(5));
        assert_eq!(w.look(Some(&status(7, 201, 200)), 2_000), Verdict::Wait);
        assert_eq!(w.look(Some(&status(7, 201, 200)), 5_999), Verdict::Wait);
        assert_eq!(
            w.look(Some(&status(7, 201, 200)), 6_000),
            Verdict::Abandoned
        );
    }

    #[test]
    fn a_folder_still_moving_is_waited_for_past_the_settle_time() {
        let mut w = Watch::new(batch(1_000), Duration::from_secs(5));
        assert_eq!(w.look(Some(&status(7, 201, 200)), 2_000), Verdict::Wait);
        assert_eq!(w.look(Some(&status(7, 250, 249)), 5_500), Verdict::Wait);
        assert_eq!(w.look(Some(&status(7, 250, 249)), 10_000), Verdict::Wait);
        assert_eq!(
            w.look(Some(&status(7, 250, 249)), 10_500),
            Verdict::Abandoned
        );
    }

    #[test]
    fn a_record_left_long_ago_costs_one_look() {
        let mut w = Watch::new(batch(1_000), SETTLE);
        assert_eq!(
            w.look(Some(&status(7, 201, 200)), 3_600_000),
            Verdict::Abandoned
        );
    }

    #[test]
    fn a_folder_recreated_or_gone_is_not_waited_for() {
        let mut w = Watch::new(batch(1_000), SETTLE);
        assert_eq!(w.look(Some(&status(8, 1, 0)), 1_100), Verdict::Replaced);
        assert_eq!(w.look(None, 1_100), Verdict::Replaced);
    }

    #[test]
    fn the_record_round_trips_through_json() {
        let b = InFlight::new("INBOX", (7, 201), 200);
        let text = serde_json::to_string(&b).unwrap();
        assert!(text.contains("\"uidnext\":201"), "{text}");
        assert_eq!(serde_json::from_str::<InFlight>(&text).unwrap(), b);
    }
}
