//! The `MailMigration` manifest: typed spec and status, defaults, and the semantic checks
//! that a schema cannot express.

mod directory;
mod dns_provider;
mod duration;
mod limits;
mod path_template;
mod secret;
pub mod semantic;
mod size;
mod status;
mod types;

pub use directory::{
    Accounts, Alias, AliasMap, AliasStore, Aliases, PasswdFile, PostfixTable, SqlDatabase, SqlTls,
    UnknownScheme, UserDatabase,
};
pub use dns_provider::{
    AzureDns, Cloudflare, Cpanel, DnsProvider, Dnsimple, GoogleCloudDns, KeyAndSecret, Namecheap,
    Netcup, Ovh, OvhEndpoint, Plesk, Powerdns, Route53, Simplycom, TokenOnly, UserAndPassword,
    UserAndToken, Vercel,
};
pub use duration::{DURATION_PATTERN, DurationError, ManifestDuration};
pub use limits::{Direction, EffectiveLimits, LimitPreset, Limits, MailboxLimits};
pub use path_template::{PathError, PathTemplate};
pub use secret::{Secret, SecretKeySelector, SecretRef};
pub use size::{ManifestSize, SIZE_PATTERN, SizeError};
pub use status::{
    AcceptedLoss, Condition, ConditionStatus, DavRefusal, Failure, Freshness, LoopRecords,
    MailMigrationStatus, MailboxCounts, MailboxRecord, MailboxTransfer, Pause, Phase, ProbeState,
    Provisioned, SyncState, Transfer, Verification,
};
pub use types::*;

impl MailMigration {
    /// `metadata.name`, which names the state directory, events and logs. `validate`
    /// requires it; the fallback only keeps a hand-built object usable.
    pub fn name(&self) -> &str {
        self.metadata.name.as_deref().unwrap_or("mailmigration")
    }
}

impl MailMigrationSpec {
    /// Mailboxes come from beyond `mailboxes` too: `mailboxesFrom`, or the old server's
    /// user database (`accounts.discover`).
    pub fn lists_more_mailboxes(&self) -> bool {
        self.mailboxes_from.is_some() || self.accounts.as_ref().is_some_and(|a| a.discover)
    }
}

/// `apiVersion` of the resource.
pub const API_VERSION: &str = "mailshift.io/v1alpha1";
/// `kind` of the resource.
pub const KIND: &str = "MailMigration";
