//! A folder's state in the four numbers a pass decides by: what the cache records of each
//! side, what a copy's record starts from, what is watched for a batch in flight.

use serde::{Deserialize, Serialize};

/// A folder's state as STATUS (or SELECT/EXAMINE) reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FolderStatus {
    pub uidvalidity: u32,
    pub uidnext: u32,
    pub messages: u32,
    /// HIGHESTMODSEQ, when the server offers CONDSTORE and the folder supports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub highestmodseq: Option<u64>,
}

impl FolderStatus {
    /// A folder's state without HIGHESTMODSEQ (a server without CONDSTORE).
    pub fn new(uidvalidity: u32, uidnext: u32, messages: u32) -> FolderStatus {
        FolderStatus {
            uidvalidity,
            uidnext,
            messages,
            highestmodseq: None,
        }
    }
}
