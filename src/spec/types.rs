//! The `MailMigration` resource: what the user declares. Doc comments here become the
//! CRD's field descriptions, so they are written for the person filling in a manifest.

use crate::address::Address;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{MailMigrationStatus, ManifestDuration, ManifestSize, SecretRef};

/// Desired state of a mail migration: which mailboxes move from which server to which, and
/// optionally how DNS, relays and forwarding follow them.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "mailshift.io",
    version = "v1alpha1",
    kind = "MailMigration",
    doc = "A mail migration: mailboxes copied from one server to another, and optionally DNS, relays and forwarding moved with them, reconciled step by step.",
    plural = "mailmigrations",
    shortname = "mm",
    namespaced,
    status = "MailMigrationStatus",
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Synced","type":"integer","jsonPath":".status.mailboxes.synced"}"#,
    printcolumn = r#"{"name":"Total","type":"integer","jsonPath":".status.mailboxes.total"}"#,
    printcolumn = r#"{"name":"Copied%","type":"integer","jsonPath":".status.transfer.percent"}"#,
    printcolumn = r#"{"name":"Next","type":"string","jsonPath":".status.nextStep"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MailMigrationSpec {
    /// Mail domains being moved, e.g. `example.com`. Every mailbox address must be in one of
    /// them. May be empty for a mailbox-only import that touches no DNS or routing.
    #[serde(default)]
    #[schemars(inner(length(min = 1, max = 253)))]
    pub domains: Vec<String>,

    /// How mailshift may act: `sync` applies every step; `upsert-only` creates and updates
    /// but never removes or disables anything; `observe` plans and reports, never writes.
    #[serde(default)]
    pub policy: Policy,

    /// While true nothing is written anywhere (the convention of Flux, Velero and
    /// cert-manager): the loop still observes and plans, every step is shown as suspended,
    /// and status says so. Set it back to false (or remove it) to resume where it stopped.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub suspend: bool,

    /// Messages the destination refuses that the migration may go on without, on purpose:
    /// a reviewed list, not a default. Without it a refused message keeps the mailbox from
    /// counting as copied and the cutover waits; with a rule matching it, the loss is
    /// accepted, recorded in status and reported, and the cutover goes on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub accept_refused: Vec<AcceptRefused>,

    /// The old server, or the files it keeps its mail in. It is only ever read: folders are
    /// opened read-only, messages are fetched without setting \Seen, files are never written.
    pub source: SourceServer,

    /// The new server, which receives the mailboxes.
    pub destination: Server,

    /// Mailboxes to migrate. Either this list, `mailboxesFrom`, or both.
    #[serde(default)]
    pub mailboxes: Vec<Mailbox>,

    /// A CSV list of mailboxes, read from a file or a Secret. Header row required; columns
    /// `address` (required), `sourceUser`, `destinationUser`, `sourcePassword`,
    /// `destinationPassword`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mailboxes_from: Option<SecretRef>,

    /// Which folders to copy and where they land.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub folders: Option<Folders>,

    /// How much copying happens at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync: Option<SyncSettings>,

    /// The domain's DNS: MX switch, TTLs, SPF. Leave out to never touch DNS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<Dns>,

    /// After the MX switch, the old server relays mail for the domains to the new one
    /// instead of delivering it locally. Leave out to not touch the old server's routing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<Relay>,

    /// While some mailboxes are not yet migrated, the new server relays their mail back to
    /// the old one, so MX can move first without bounces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback: Option<Relay>,

    /// A temporary copy of every incoming message to an outside address during the move.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forwarding: Option<Forwarding>,

    /// Each mailbox's Sieve filters and vacation replies, copied over ManageSieve.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sieve: Option<Sieve>,

    /// Each mailbox's address books and calendars, copied over CardDAV and CalDAV.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dav: Option<Dav>,

    /// The new server's accounts and aliases, carried from the old server's user database
    /// and alias map before any mail moves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accounts: Option<super::Accounts>,

    /// End-to-end mail-flow check: a tagged message sent into the old server's SMTP must
    /// arrive over IMAP in a mailbox on the new server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe: Option<Probe>,

    /// When the MX switch may happen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cutover: Option<Cutover>,

    /// What happens after the switch: delta sync, how long the source is kept, TTL restored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finalize: Option<Finalize>,
}

/// How much mailshift may change.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Policy {
    /// Apply every step, including removing temporary forwarding and relays at the end.
    #[default]
    Sync,
    /// Create and update, never remove or disable anything.
    UpsertOnly,
    /// Observe and plan only; never write to any server.
    Observe,
}

/// An IMAP server and how to log in to it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Server {
    /// Where the IMAP service listens.
    pub imap: Endpoint,
    /// How mailboxes log in.
    #[serde(default)]
    pub auth: Auth,
    /// How hard the server may be used: rates, a daily volume, a preset of a hosted
    /// provider's documented limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<super::Limits>,
}

/// Where the mail comes from: exactly one of `imap`, `pop3`, `maildir`, `mbox` or `pst`, and for
/// the two servers how mailboxes log in.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SourceServer {
    /// An IMAP server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub imap: Option<Endpoint>,
    /// A POP3 server: one folder (INBOX) per mailbox, read with TOP, never deleted from.
    /// Port 995 for `tls` (the default), 110 otherwise; `starttls` is STLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pop3: Option<Endpoint>,
    /// Maildir directories (Maildir++ `.Sent`, `.Archive.2019`, or Dovecot's `LAYOUT=fs`),
    /// read as they are: nothing renamed, nothing locked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maildir: Option<FileSource>,
    /// mbox files: one file is INBOX, a directory holds one folder per file (subdirectories
    /// are levels of the hierarchy); mboxrd and mboxo `>From ` quoting undone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mbox: Option<FileSource>,
    /// An Outlook PST (or OST) file a mailbox was exported to, read with libpff: its mail
    /// folders by their display names, messages rebuilt as RFC 5322 with their attachments;
    /// contacts, calendars and tasks reported as not mail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pst: Option<PstFile>,
    /// How mailboxes log in (the servers only).
    #[serde(default)]
    pub auth: Auth,
    /// How hard the server may be used (the servers only): rates, a daily volume, a
    /// preset of a hosted provider's documented limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<super::Limits>,
}

/// Which kind of source a [`SourceServer`] names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceKind {
    Imap,
    Pop3,
    Maildir,
    Mbox,
    Pst,
}

impl SourceKind {
    pub fn name(self) -> &'static str {
        match self {
            SourceKind::Imap => "imap",
            SourceKind::Pop3 => "pop3",
            SourceKind::Maildir => "maildir",
            SourceKind::Mbox => "mbox",
            SourceKind::Pst => "pst",
        }
    }

    /// The source is files, not a server one logs in to.
    pub fn is_files(self) -> bool {
        matches!(
            self,
            SourceKind::Maildir | SourceKind::Mbox | SourceKind::Pst
        )
    }
}

impl SourceServer {
    /// The kinds given (validation makes it exactly one).
    pub fn kinds(&self) -> Vec<SourceKind> {
        [
            (self.imap.is_some(), SourceKind::Imap),
            (self.pop3.is_some(), SourceKind::Pop3),
            (self.maildir.is_some(), SourceKind::Maildir),
            (self.mbox.is_some(), SourceKind::Mbox),
            (self.pst.is_some(), SourceKind::Pst),
        ]
        .into_iter()
        .filter_map(|(given, k)| given.then_some(k))
        .collect()
    }

    /// The first kind given; IMAP when none is (validation reports that).
    pub fn kind(&self) -> SourceKind {
        self.kinds().first().copied().unwrap_or(SourceKind::Imap)
    }

    /// The network endpoint of a server source.
    pub fn endpoint(&self) -> Option<&Endpoint> {
        self.imap.as_ref().or(self.pop3.as_ref())
    }
}

/// Mail kept in files, on this machine or on the old server over ssh.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FileSource {
    /// Each mailbox's files. `{user}` is replaced by the mailbox's `sourceUser` (default its
    /// address), `{local}` and `{domain}` by the parts of its address, `{address}` by the
    /// address: e.g. `/var/vmail/{domain}/{local}/Maildir`. Without a placeholder, for one
    /// mailbox only.
    #[schemars(length(min = 1, max = 4096))]
    pub path: String,
    /// mbox only: the mailbox's INBOX file when it is kept apart from its other folders
    /// (Dovecot's `INBOX=/var/mail/%u`), with the same placeholders.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 4096))]
    pub inbox: Option<String>,
    /// mbox only: how body lines starting with `From ` were quoted when the file was
    /// written. `none` (the default) copies lines as stored, as Dovecot and mutt read them
    /// (Dovecot writes no quoting and shows `>From ` as it is); `mboxrd` removes one `>`
    /// from lines matching `>+From `; `mboxo` turns `>From ` back into `From `.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quoting: Option<MboxQuoting>,
    /// Read the files on the old server over ssh (the OpenSSH client, host keys checked;
    /// GNU `find`, `stat`, `head`, `tail` and `cat` run there, nothing is written) instead
    /// of on this machine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh: Option<Ssh>,
}

/// A PST file on this machine.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PstFile {
    /// Each mailbox's file, with the placeholders of a Maildir's `path` (`{user}`,
    /// `{local}`, `{domain}`, `{address}`): e.g. `/exports/{local}.pst`. Without a
    /// placeholder, for one mailbox only.
    #[schemars(length(min = 1, max = 4096))]
    pub file: String,
}

/// How an mbox writer quoted body lines beginning with `From `.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum MboxQuoting {
    /// Not at all, or not to be undone: lines are copied as stored.
    #[default]
    None,
    /// `>From ` → `>>From `, `>>From ` → `>>>From ` ...: one `>` is removed.
    Mboxrd,
    /// `From ` → `>From `: `>From ` is read as `From `.
    Mboxo,
}

/// A network service: host, port and transport security.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Endpoint {
    /// Host name or IP address.
    #[schemars(length(min = 1, max = 253))]
    pub host: String,
    /// TCP port. Defaults to the protocol's usual port for the chosen `tls` (IMAP: 993 for
    /// `tls`, 143 otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<u16>,
    /// `tls` (implicit TLS, the default), `starttls`, or `none` (plain text; only for
    /// loopback or test servers, and only when written here).
    #[serde(default)]
    pub tls: TlsMode,
    /// Extra CA certificate(s), PEM, trusted in addition to the system roots, for servers
    /// with a private CA. Certificates are always verified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_certificate: Option<SecretRef>,
    /// At most this many connections to this server at once, across all mailboxes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 256))]
    pub max_connections: Option<u16>,
    /// How long the server may stay silent before the connection counts as lost (default
    /// `3m`). Each phase of a connection (TCP, TLS, greeting, login) may take at most the
    /// shorter of this and 30 s, and one command's whole exchange at most 20 times this,
    /// however much the server keeps talking.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<ManifestDuration>,
}

/// Transport security of a connection.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// TLS from the first byte (IMAPS, port 993).
    #[default]
    Tls,
    /// Plain connection upgraded with STARTTLS before login; refused if not offered.
    Starttls,
    /// No encryption. Passwords cross the network in clear.
    None,
}

/// How mailboxes authenticate.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Auth {
    /// `password`: each mailbox logs in with its own password. `master`: an admin user logs
    /// in on behalf of each mailbox (SASL PLAIN authorization identity). `xoauth2`: an OAuth2
    /// access token, the mailbox's password field or `password` here holding the token (or,
    /// with `tokenSource`, what obtains it). `oauthbearer`: the same with the standard SASL
    /// mechanism (RFC 7628).
    #[serde(default)]
    pub method: AuthMethod,
    /// Master/admin user name, for `method: master`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub user: Option<String>,
    /// Master user's password (`master`), or one OAuth2 token shared by all mailboxes
    /// (`xoauth2`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<SecretRef>,
    /// Where `xoauth2`/`oauthbearer` tokens come from when they are to renew themselves (otherwise the
    /// password fields hold the tokens): a token endpoint and the grant it takes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_source: Option<TokenSourceSpec>,
}

/// How OAuth2 access tokens are obtained and renewed (a minute before they expire, and once
/// after a server refused one).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(
    rename_all = "camelCase",
    rename_all_fields = "camelCase",
    deny_unknown_fields
)]
pub enum TokenSourceSpec {
    /// A refresh-token grant (RFC 6749 6): each mailbox's password field holds its refresh
    /// token (Google, Microsoft delegated access).
    RefreshToken {
        /// e.g. `https://oauth2.googleapis.com/token`,
        /// `https://login.microsoftonline.com/TENANT/oauth2/v2.0/token`.
        token_url: String,
        client_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_secret: Option<SecretRef>,
    },
    /// A client-credentials grant (RFC 6749 4.4): one app-only token for every mailbox
    /// (Microsoft 365: scope `https://outlook.office365.com/.default`).
    ClientCredentials {
        token_url: String,
        client_id: String,
        client_secret: SecretRef,
        scope: String,
    },
    /// A Google service account with domain-wide delegation: a JWT assertion (RFC 7523)
    /// signed with its key, one per mailbox (`sub`: the mailbox's user).
    ServiceAccount {
        /// The key file (JSON) the Google console exports.
        key: SecretRef,
        /// e.g. `https://mail.google.com/`.
        scope: String,
        /// Default: the key file's `token_uri`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        token_url: Option<String>,
    },
}

/// The authentication mechanism.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AuthMethod {
    #[default]
    Password,
    Master,
    Xoauth2,
    /// The standard SASL mechanism for OAuth2 tokens (RFC 7628), configured as `xoauth2`.
    Oauthbearer,
}

/// One mailbox to migrate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Mailbox {
    /// The mailbox's email address; compared case-insensitively.
    #[schemars(length(min = 3, max = 320))]
    pub address: String,
    /// Login name on the source, when it differs from the address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub source_user: Option<String>,
    /// Login name on the destination, when it differs from the address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub destination_user: Option<String>,
    /// Password (or token) on the source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_password: Option<SecretRef>,
    /// Password (or token) on the destination.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination_password: Option<SecretRef>,
}

/// Folder selection and mapping.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Folders {
    /// Source folders not copied, by name as the source shows it (`*` matches any run of
    /// characters, e.g. `Archive/*`), or by role (`\Junk`, `\Trash`).
    #[serde(default)]
    #[schemars(inner(length(min = 1)))]
    pub exclude: Vec<String>,
    /// Source folders copied under another name; applied after default folders are matched.
    #[serde(default)]
    pub rename: Vec<Rename>,
    /// Language of the source's default folder names (`auto` detects it, or a BCP 47 code
    /// such as `vi`, `de`, `pt-BR`), so that e.g. "Hộp thư đến" merges into INBOX.
    #[serde(default = "default_language")]
    #[schemars(length(min = 2, max = 35))]
    pub source_language: String,
    /// From a Gmail source (one offering `X-GM-EXT-1`): what its labels become. `folders`
    /// (the default): one destination folder per label, a message in each folder its labels
    /// name, and the messages of All Mail with no label in the destination's Archive.
    /// `keywords`: each message copied once, into INBOX, Sent, Drafts, Spam, Trash or
    /// Archive, with its labels as keywords. Either way All Mail, Starred and Important
    /// are Gmail's views, not folders, and Starred is the `\Flagged` flag.
    #[serde(default, skip_serializing_if = "is_default")]
    pub gmail_labels: GmailLabels,
}

/// What a Gmail source's labels become on the destination.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum GmailLabels {
    /// A folder per label.
    #[default]
    Folders,
    /// Keywords on one copy of each message.
    Keywords,
}

fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

fn default_language() -> String {
    "auto".into()
}

/// One folder rename rule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rename {
    /// Source folder name, as the source shows it (with its own hierarchy separator).
    #[schemars(length(min = 1))]
    pub from: String,
    /// Destination folder name, with `/` between levels.
    #[schemars(length(min = 1))]
    pub to: String,
}

/// How much copying runs at once.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SyncSettings {
    /// Mailboxes copied at the same time by one process.
    #[serde(default = "default_concurrency")]
    #[schemars(range(min = 1, max = 64))]
    pub concurrency: u16,
    /// In a cluster, copy Jobs run at the same time (each copying a batch of mailboxes).
    #[serde(default = "default_parallelism")]
    #[schemars(range(min = 1, max = 64))]
    pub parallelism: u16,
}

fn default_concurrency() -> u16 {
    4
}

fn default_parallelism() -> u16 {
    1
}

impl Default for SyncSettings {
    fn default() -> Self {
        SyncSettings {
            concurrency: default_concurrency(),
            parallelism: default_parallelism(),
        }
    }
}

/// The domain's DNS records and how to change them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Dns {
    /// The DNS zone holding the domain's MX records, e.g. `example.com`.
    #[schemars(length(min = 1, max = 253))]
    pub zone: String,
    /// How records are changed: an RFC 2136 server or a DNS host's API.
    pub provider: super::DnsProvider,
    /// The MX record set the domain should end with (the new server).
    #[schemars(length(min = 1))]
    pub mx: Vec<MxRecord>,
    /// TTL (seconds) the MX set is lowered to before the switch, so the switch spreads fast.
    #[serde(rename = "cutoverTTL", default = "default_cutover_ttl")]
    #[schemars(range(min = 30, max = 86400))]
    pub cutover_ttl: u32,
    /// Nameservers (`host:port`) asked directly to confirm propagation. Default: the zone's
    /// NS records.
    #[serde(default)]
    #[schemars(inner(length(min = 1)))]
    pub check_nameservers: Vec<String>,
    /// Keep both servers authorized in SPF until the migration completes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spf: Option<Spf>,
    /// Publish RFC 6186 SRV records so that mail clients find the new server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub srv: Option<SrvRecords>,
    /// The MX TTL was lowered before mailshift saw the zone (by hand, or by an earlier
    /// tool): when, and from what, so that the switch waits only as long as resolvers may
    /// still hold the old answer. Without it, a TTL already at `cutoverTTL` when first
    /// seen counts as lowered then, from `finalize.restoreTTL`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub already_lowered: Option<AlreadyLowered>,
}

/// When and from what the MX TTL was lowered, as the person who did it knows.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AlreadyLowered {
    /// The instant it was lowered (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<chrono::DateTime<chrono::Utc>>,
    /// The TTL (seconds) before it was lowered.
    #[serde(rename = "oldTTL", default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = 2147483647))]
    pub old_ttl: Option<u32>,
}

fn default_cutover_ttl() -> u32 {
    300
}

/// An RFC 2136 dynamic-update server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rfc2136 {
    /// The primary nameserver, `host:port` (port 53 when left out).
    #[schemars(length(min = 1))]
    pub server: String,
    /// The TSIG key that signs updates.
    pub tsig: Tsig,
}

/// A TSIG key (RFC 8945).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Tsig {
    /// Key name as configured on the server.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// HMAC algorithm.
    #[serde(default)]
    pub algorithm: TsigAlgorithm,
    /// The base64 key.
    pub secret: SecretRef,
}

/// TSIG HMAC algorithms.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum TsigAlgorithm {
    HmacSha1,
    HmacSha224,
    #[default]
    HmacSha256,
    HmacSha384,
    HmacSha512,
}

/// One MX record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MxRecord {
    /// Lower is preferred.
    #[schemars(range(min = 0, max = 65535))]
    pub preference: u16,
    /// Fully qualified host name of the mail server, ending with a dot.
    #[schemars(length(min = 2, max = 254))]
    pub exchange: String,
}

/// SPF mechanisms of the old and the new server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Spf {
    /// The old server's mechanism(s), e.g. `ip4:192.0.2.10`; removed when complete.
    #[schemars(length(min = 1))]
    pub old: String,
    /// The new server's mechanism(s), e.g. `ip4:198.51.100.20`.
    #[schemars(length(min = 1))]
    pub new: String,
}

/// RFC 6186 service records for the new server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SrvRecords {
    /// Target of `_imaps._tcp` (port 993 unless given as `host:port`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub imaps: Option<String>,
    /// Target of `_submission._tcp` (port 587 unless given as `host:port`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub submission: Option<String>,
}

/// A mail relay configured on one server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Relay {
    /// The Postfix instance whose routing is changed.
    pub postfix: PostfixTarget,
    /// Where mail is relayed: `[host]:port` (no MX lookup), `host:port` or `host`.
    #[schemars(length(min = 1))]
    pub relay_to: String,
}

/// A Postfix instance, on this machine or reached over ssh.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PostfixTarget {
    /// Postfix configuration directory (where main.cf lives).
    #[serde(default = "default_postfix_dir")]
    #[schemars(length(min = 1))]
    pub config_dir: String,
    /// Reach the Postfix host over ssh instead of running locally.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh: Option<Ssh>,
}

fn default_postfix_dir() -> String {
    "/etc/postfix".into()
}

/// An ssh connection made with the OpenSSH client.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Ssh {
    #[schemars(length(min = 1, max = 253))]
    pub host: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<u16>,
    #[schemars(length(min = 1))]
    pub user: String,
    /// Private key for the login.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<SecretRef>,
    /// known_hosts lines for the host; host keys are always checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub known_hosts: Option<SecretRef>,
}

/// Temporary forwarding of incoming mail during the move.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Forwarding {
    /// Address that receives a copy of every incoming message.
    #[schemars(length(min = 3, max = 320))]
    pub to: String,
    /// ManageSieve service (RFC 5804) of the source server.
    pub managesieve: Endpoint,
    /// ManageSieve service of the destination server, to forward there too after the switch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination_managesieve: Option<Endpoint>,
}

/// Copying each mailbox's Sieve scripts (filters, vacation) over ManageSieve (RFC 5804), with
/// the mailbox's logins. The old server's scripts are only read; mailshift's own temporary
/// forwarding script is never copied.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Sieve {
    /// ManageSieve service of the source server. Leave it out when the source has none:
    /// `plan` says so and no filters are copied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managesieve: Option<Endpoint>,
    /// ManageSieve service of the destination server.
    pub destination_managesieve: Endpoint,
    /// A destination script of the same name with other content: `keep` it (reported; the
    /// source's is not copied) or `replace` it with the source's.
    #[serde(default)]
    pub conflicts: SieveConflicts,
}

/// Copying each mailbox's address books (CardDAV) and calendars (CalDAV) with the mailbox's
/// logins (its password as HTTP Basic, an OAuth2 token as Bearer). The old server is only
/// read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Dav {
    /// The old server's CardDAV/CalDAV service. Leave it out when it has none: `plan` says
    /// so and nothing is copied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<DavEndpoint>,
    /// The new server's CardDAV/CalDAV service.
    pub destination: DavEndpoint,
}

/// A CardDAV/CalDAV service: each user's principal, address books and calendars are found
/// from it (current-user-principal, addressbook-home-set, calendar-home-set).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DavEndpoint {
    /// `https://dav.example.org/` (or the context path the server serves DAV under).
    #[schemars(length(min = 8, max = 2048))]
    pub url: String,
    /// Extra CA certificate(s), PEM, trusted in addition to the system roots. Certificates
    /// are always verified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_certificate: Option<SecretRef>,
}

/// What to do with a destination script that has the name of a source script but other
/// content.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum SieveConflicts {
    #[default]
    Keep,
    Replace,
}

/// End-to-end mail-flow probe.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Probe {
    /// SMTP service the probe message is sent to (the old server's).
    pub smtp: SmtpEndpoint,
    /// Mailbox (one of `mailboxes`) the probe must arrive in on the new server.
    #[schemars(length(min = 3, max = 320))]
    pub mailbox: String,
    /// How long to wait for the probe to arrive.
    #[serde(default = "default_probe_timeout")]
    pub timeout: ManifestDuration,
}

/// A rule accepting the loss of messages the destination refuses: one message by its
/// Message-ID, or every message larger than a size (the destination's limit), optionally in
/// one mailbox only.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AcceptRefused {
    /// The refused message's Message-ID, with or without its angle brackets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 998))]
    pub message_id: Option<String>,
    /// Any refused message larger than this (`25MB`, `10MiB`, or bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub larger_than: Option<ManifestSize>,
    /// Only in this mailbox (one of `mailboxes`); every mailbox when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 3, max = 320))]
    pub mailbox: Option<String>,
    /// Why the loss is acceptable, for the record (shown in status and the report).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 500))]
    pub reason: Option<String>,
}

impl AcceptRefused {
    /// The rule as status and reports name it: its reason, else its condition.
    pub fn describe(&self) -> String {
        if let Some(r) = &self.reason {
            return r.clone();
        }
        let mut parts = Vec::new();
        if let Some(id) = &self.message_id {
            parts.push(format!("messageId {id}"));
        }
        if let Some(l) = self.larger_than {
            parts.push(format!("larger than {l}"));
        }
        if let Some(m) = &self.mailbox {
            parts.push(format!("in {m}"));
        }
        format!("acceptRefused: {}", parts.join(", "))
    }

    /// Whether this rule accepts the loss of a message of `mailbox` with identity `key`
    /// (`<id>` for a Message-ID) and `size` bytes. A rule without a condition accepts
    /// nothing (`validate` refuses it).
    pub fn accepts(&self, mailbox: &str, key: &str, size: u64) -> bool {
        if self
            .mailbox
            .as_ref()
            .is_some_and(|m| Address::of(m) != Address::of(mailbox))
        {
            return false;
        }
        let by_id = self.message_id.as_ref().map(|id| {
            let want = id.trim().trim_start_matches('<').trim_end_matches('>');
            key.trim_start_matches('<').trim_end_matches('>') == want
        });
        let by_size = self.larger_than.map(|l| size > l.0);
        match (by_id, by_size) {
            (None, None) => false,
            (a, b) => a.unwrap_or(true) && b.unwrap_or(true),
        }
    }
}

/// An SMTP server as a sending MTA reaches it: port 25 with STARTTLS unless told otherwise.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SmtpEndpoint {
    /// Host name or IP address.
    #[schemars(length(min = 1, max = 253))]
    pub host: String,
    /// TCP port. Defaults to 25 for `starttls` and `none`, 465 for `tls`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<u16>,
    /// `starttls` (the default, as MTAs talk to port 25), `tls` (implicit TLS, port 465), or
    /// `none` (plain text; only when written).
    #[serde(default = "starttls")]
    pub tls: TlsMode,
    /// Extra CA certificate(s), PEM, trusted in addition to the system roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_certificate: Option<SecretRef>,
}

fn starttls() -> TlsMode {
    TlsMode::Starttls
}

impl SmtpEndpoint {
    /// The port connected to.
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(match self.tls {
            TlsMode::Tls => 465,
            TlsMode::Starttls | TlsMode::None => 25,
        })
    }

    /// As a generic endpoint, for the checks and labels all endpoints share.
    pub fn endpoint(&self) -> Endpoint {
        Endpoint {
            host: self.host.clone(),
            port: Some(self.port()),
            tls: self.tls,
            ca_certificate: self.ca_certificate.clone(),
            max_connections: None,
            timeout: None,
        }
    }
}

fn default_probe_timeout() -> ManifestDuration {
    ManifestDuration(std::time::Duration::from_secs(300))
}

/// The MX switch: approval and maintenance window.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Cutover {
    /// The MX switch happens only once this is true (a commit in git is the approval).
    #[serde(default)]
    pub approved: bool,
    /// When the switch may happen. Any time when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<Window>,
}

/// A weekly maintenance window.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Window {
    /// Days the window opens on. Every day when left out.
    #[serde(default)]
    pub days: Vec<Weekday>,
    /// Opening time, `HH:MM` (24-hour) in `timeZone`.
    #[schemars(length(min = 4, max = 5))]
    pub start: String,
    /// Closing time, `HH:MM`; before `start` means the window runs past midnight.
    #[schemars(length(min = 4, max = 5))]
    pub end: String,
    /// IANA time zone, e.g. `Europe/Berlin`.
    #[serde(default = "default_time_zone")]
    #[schemars(length(min = 1))]
    pub time_zone: String,
}

fn default_time_zone() -> String {
    "UTC".into()
}

/// A day of the week.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum Weekday {
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
    Sun,
}

/// After the switch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Finalize {
    /// Run one more sync this long after the MX switch, for mail delivered to the old server
    /// by senders with stale DNS.
    #[serde(default = "default_delta_sync_after")]
    pub delta_sync_after: ManifestDuration,
    /// Keep the old server (and the gateway relay) this long after the switch before the
    /// migration is complete. mailshift never deletes the source.
    #[serde(default = "default_keep_source_for")]
    pub keep_source_for: ManifestDuration,
    /// TTL (seconds) the MX set gets back when the migration is complete.
    #[serde(rename = "restoreTTL", default = "default_restore_ttl")]
    #[schemars(range(min = 60, max = 604800))]
    pub restore_ttl: u32,
}

fn default_delta_sync_after() -> ManifestDuration {
    ManifestDuration::from_hours(48)
}

fn default_keep_source_for() -> ManifestDuration {
    ManifestDuration::from_hours(168)
}

fn default_restore_ttl() -> u32 {
    3600
}

impl Default for Finalize {
    fn default() -> Self {
        Finalize {
            delta_sync_after: default_delta_sync_after(),
            keep_source_for: default_keep_source_for(),
            restore_ttl: default_restore_ttl(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_refused_rules_match_by_id_size_and_mailbox() {
        let rule = |yaml: &str| -> AcceptRefused { serde_yaml::from_str(yaml).unwrap() };
        let by_id = rule("messageId: <big@x>");
        assert!(by_id.accepts("a@x", "<big@x>", 1));
        assert!(rule("messageId: big@x").accepts("B@X", "<big@x>", 1));
        assert!(!by_id.accepts("a@x", "<other@x>", 1));
        let big = rule("{ largerThan: 25MB, mailbox: Alice@Example.com }");
        assert!(big.accepts("alice@example.com", "<any@x>", 25_000_001));
        assert!(!big.accepts("alice@example.com", "<any@x>", 25_000_000));
        assert!(!big.accepts("bob@example.com", "<any@x>", 30_000_000));
        // Both conditions: both must hold.
        let both = rule("{ messageId: <big@x>, largerThan: 1kB }");
        assert!(both.accepts("a@x", "<big@x>", 2000) && !both.accepts("a@x", "<big@x>", 10));
        assert!(!rule("reason: nothing").accepts("a@x", "<big@x>", u64::MAX));
        assert_eq!(
            big.describe(),
            "acceptRefused: larger than 25MB, in Alice@Example.com"
        );
    }

    #[test]
    fn a_probe_talks_to_port_25_with_starttls_unless_told_otherwise() {
        let p: SmtpEndpoint = serde_yaml::from_str("host: mx.example.net").unwrap();
        assert_eq!((p.tls, p.port()), (TlsMode::Starttls, 25));
        let p: SmtpEndpoint = serde_yaml::from_str("{ host: mx.example.net, tls: tls }").unwrap();
        assert_eq!(p.port(), 465);
        let p: SmtpEndpoint =
            serde_yaml::from_str("{ host: mx.example.net, tls: none, port: 2525 }").unwrap();
        assert_eq!((p.tls, p.port()), (TlsMode::None, 2525));
        // IMAP endpoints keep implicit TLS as their default.
        let e: Endpoint = serde_yaml::from_str("host: imap.example.net").unwrap();
        assert_eq!(e.tls, TlsMode::Tls);
    }
}
