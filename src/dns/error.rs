//! Why a DNS change did not happen. Every variant names the server and the record, and
//! none leaves anything half-changed: a step is one UPDATE message, which the server
//! applies whole or not at all.

use crate::secrets::SecretError;

/// A DNS step that failed; nothing of it was written (see the module notes).
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    /// The server refused our TSIG signature (wrong secret, unknown key or algorithm, or a
    /// clock too far off).
    #[error(
        "DNS server {server} rejected the update of {record} signed with TSIG key {key} ({algorithm}): {code}"
    )]
    TsigRejected {
        server: String,
        record: String,
        key: String,
        algorithm: String,
        code: String,
    },
    /// The provider's API refused the credentials (HTTP 401): a person's to fix.
    #[error("{server} refused the credentials while changing {record}")]
    CredentialsRejected { server: String, record: String },
    /// The server answered the update with REFUSED (or another refusal): the key may not
    /// change this zone, or updates are not allowed at all.
    #[error("DNS server {server} refused the update of {record}: {detail}")]
    UpdateRefused {
        server: String,
        record: String,
        detail: String,
    },
    /// No answer (timeout) or no connection.
    #[error("DNS server {server} is unreachable while {doing} {record}: {detail}")]
    ServerUnreachable {
        server: String,
        record: String,
        doing: &'static str,
        detail: String,
    },
    /// The record's name lies outside the zone the update is for.
    #[error("{record} is not inside zone {zone} (update server {server})")]
    NotInZone {
        server: String,
        zone: String,
        record: String,
    },
    /// The server is not authoritative for the zone (it does not serve it, or refuses to
    /// answer for it).
    #[error("DNS server {server} is not authoritative for zone {zone} ({record}): {detail}")]
    NotAuthoritative {
        server: String,
        zone: String,
        record: String,
        detail: String,
    },
    /// Compare-and-swap: the record set is no longer what the step was planned against
    /// (someone changed the zone meanwhile). Nothing was written; plan again.
    #[error(
        "{record} on {server} changed since it was planned: expected {expected}, found {found}; nothing was written"
    )]
    ZoneChanged {
        server: String,
        record: String,
        expected: String,
        found: String,
    },
    /// The TSIG secret could not be read, or is not a usable key.
    #[error("TSIG key {key}: {detail}")]
    TsigKeyInvalid { key: String, detail: String },
    /// The secret reference could not be resolved.
    #[error("TSIG key {key}: {source}")]
    SecretUnavailable {
        key: String,
        #[source]
        source: SecretError,
    },
    /// The server's answer to a signed update is not signed by our key: it cannot be
    /// trusted, whether or not the update was applied. Observe and plan again.
    #[error(
        "the answer of DNS server {server} to the update of {record} failed TSIG verification: {detail}"
    )]
    ResponseUnverified {
        server: String,
        record: String,
        detail: String,
    },
    /// The server failed the update (SERVFAIL, FORMERR, NOTIMP...) or sent garbage.
    #[error("DNS server {server} failed the update of {record}: {detail}")]
    UpdateFailed {
        server: String,
        record: String,
        detail: String,
    },
    /// The name holds more than one `v=spf1` record (an SPF permerror); mailshift will not
    /// guess which one to change.
    #[error("{record} on {server} holds {count} v=spf1 records; merge them by hand first")]
    SpfAmbiguous {
        server: String,
        record: String,
        count: usize,
    },
    /// The step or the spec holds something that is not a valid record.
    #[error("invalid DNS record {record}: {detail}")]
    InvalidRecord { record: String, detail: String },
}

/// Failure reasons only a person can fix (a key or a token refused or unreadable): the
/// step is not retried, and `apply` stops as at a refused login.
pub const PERSONS_REASONS: [&str; 4] = [
    "TsigRejected",
    "CredentialsRejected",
    "TsigKeyInvalid",
    "SecretUnavailable",
];

impl DnsError {
    /// Retrying cannot help: the credentials are wrong or cannot be read.
    pub fn needs_a_person(&self) -> bool {
        PERSONS_REASONS.contains(&self.reason())
    }

    /// The condition reason (CamelCase) for status.
    pub fn reason(&self) -> &'static str {
        match self {
            DnsError::TsigRejected { .. } => "TsigRejected",
            DnsError::UpdateRefused { .. } => "UpdateRefused",
            DnsError::CredentialsRejected { .. } => "CredentialsRejected",
            DnsError::ServerUnreachable { .. } => "ServerUnreachable",
            DnsError::NotInZone { .. } => "NotInZone",
            DnsError::NotAuthoritative { .. } => "NotAuthoritative",
            DnsError::ZoneChanged { .. } => "ZoneChanged",
            DnsError::TsigKeyInvalid { .. } => "TsigKeyInvalid",
            DnsError::SecretUnavailable { .. } => "SecretUnavailable",
            DnsError::ResponseUnverified { .. } => "ResponseUnverified",
            DnsError::UpdateFailed { .. } => "UpdateFailed",
            DnsError::SpfAmbiguous { .. } => "SpfAmbiguous",
            DnsError::InvalidRecord { .. } => "InvalidRecord",
        }
    }

    /// Worth planning again at once (the zone moved under us, or the answer could not be
    /// trusted) rather than retrying the same step with backoff.
    pub fn replan(&self) -> bool {
        matches!(
            self,
            DnsError::ZoneChanged { .. } | DnsError::ResponseUnverified { .. }
        )
    }
}
