//! `limits`: how hard mailshift may use a server, across all the mailboxes of a run, and
//! the documented limits of the hosted providers as presets.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::ManifestSize;

/// How hard a server may be used. Rates and the daily budget hold across all the mailboxes
/// of one mailshift process (with `sync.parallelism` above 1, each copy Job is a process of
/// its own and holds them alone); `perMailbox` holds for each mailbox.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Limits {
    /// The documented limits of a hosted provider, as a base for the fields written here
    /// (each written field replaces the preset's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preset: Option<LimitPreset>,
    /// At most this many connections at once (with the endpoint's `maxConnections`, the
    /// smaller holds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 256))]
    pub connections: Option<u16>,
    /// At most this many logins in any 60 seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub logins_per_minute: Option<u32>,
    /// Messages read from (source) or appended to (destination) this server per second, on
    /// average over any few seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub messages_per_second: Option<u32>,
    /// Message bytes read or appended per second (`10MB`), on average over any few seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_per_second: Option<ManifestSize>,
    /// Message bytes read or appended in any 24 hours. When it is spent, the copies pause
    /// (the plan shows when they resume), which is not a failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_per_day: Option<ManifestSize>,
    /// Limits of each mailbox on its own, as providers count them per account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_mailbox: Option<MailboxLimits>,
}

/// Limits that hold for each mailbox (account) on its own.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MailboxLimits {
    /// At most this many connections of one mailbox at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 256))]
    pub connections: Option<u16>,
    /// Message bytes of one mailbox read or appended in any 24 hours.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_per_day: Option<ManifestSize>,
}

/// A hosted provider whose documented limits `limits` starts from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum LimitPreset {
    /// Gmail and Google Workspace, per account: 2,500 MB a day downloaded and 500 MB a day
    /// uploaded over IMAP, 15 connections at once (Google Workspace Admin Help, "Gmail
    /// bandwidth limits"; Gmail Help, "Too many simultaneous connections").
    Gmail,
    /// Microsoft 365 (Exchange Online), per mailbox: 20 IMAP connections at once; no daily
    /// volume is documented, throttling answers are waited out as they ask.
    Microsoft365,
}

/// Whether the limits are for reading (the old server) or writing (the new one): a
/// provider may document different volumes for each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    Download,
    Upload,
}

/// The limits in force once the preset is applied: `None` is no limit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EffectiveLimits {
    pub connections: Option<u16>,
    pub logins_per_minute: Option<u32>,
    pub messages_per_second: Option<u32>,
    pub bytes_per_second: Option<u64>,
    pub bytes_per_day: Option<u64>,
    pub mailbox_connections: Option<u16>,
    pub mailbox_bytes_per_day: Option<u64>,
}

impl EffectiveLimits {
    pub fn is_none(&self) -> bool {
        *self == EffectiveLimits::default()
    }
}

const MB: u64 = 1_000_000;

impl LimitPreset {
    fn limits(self, direction: Direction) -> EffectiveLimits {
        match self {
            LimitPreset::Gmail => EffectiveLimits {
                mailbox_connections: Some(15),
                mailbox_bytes_per_day: Some(match direction {
                    Direction::Download => 2_500 * MB,
                    Direction::Upload => 500 * MB,
                }),
                ..EffectiveLimits::default()
            },
            LimitPreset::Microsoft365 => EffectiveLimits {
                mailbox_connections: Some(20),
                ..EffectiveLimits::default()
            },
        }
    }
}

impl Limits {
    /// The preset's limits for `direction`, each replaced by the one written here.
    pub fn effective(&self, direction: Direction) -> EffectiveLimits {
        let base = self.preset.map(|p| p.limits(direction)).unwrap_or_default();
        let mailbox = self.per_mailbox.clone().unwrap_or_default();
        let size = |s: Option<ManifestSize>| s.map(|s| s.0);
        EffectiveLimits {
            connections: self.connections.or(base.connections),
            logins_per_minute: self.logins_per_minute.or(base.logins_per_minute),
            messages_per_second: self.messages_per_second.or(base.messages_per_second),
            bytes_per_second: size(self.bytes_per_second).or(base.bytes_per_second),
            bytes_per_day: size(self.bytes_per_day).or(base.bytes_per_day),
            mailbox_connections: mailbox.connections.or(base.mailbox_connections),
            mailbox_bytes_per_day: size(mailbox.bytes_per_day).or(base.mailbox_bytes_per_day),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gmail_preset_counts_downloads_and_uploads_apart_and_fields_override_it() {
        let gmail = Limits {
            preset: Some(LimitPreset::Gmail),
            ..Limits::default()
        };
        let down = gmail.effective(Direction::Download);
        assert_eq!(down.mailbox_bytes_per_day, Some(2_500_000_000));
        assert_eq!(down.mailbox_connections, Some(15));
        assert_eq!(down.bytes_per_day, None);
        assert_eq!(
            gmail.effective(Direction::Upload).mailbox_bytes_per_day,
            Some(500_000_000)
        );
        let tighter = Limits {
            per_mailbox: Some(MailboxLimits {
                connections: Some(4),
                bytes_per_day: None,
            }),
            bytes_per_second: Some(ManifestSize(1_000_000)),
            ..gmail
        };
        let e = tighter.effective(Direction::Download);
        assert_eq!(e.mailbox_connections, Some(4));
        assert_eq!(e.mailbox_bytes_per_day, Some(2_500_000_000));
        assert_eq!(e.bytes_per_second, Some(1_000_000));
        assert!(Limits::default().effective(Direction::Upload).is_none());
    }
}
