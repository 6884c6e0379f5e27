//! `spec.accounts`: the accounts and aliases the new server must have before mail moves,
//! read from the old server's user database and alias map (or declared here) and written
//! into the new server's.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{PostfixTarget, Ssh};

/// Accounts (login name and password hash) for the migration's mailboxes, and aliases.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Accounts {
    /// Where the mailboxes' accounts are read on the old server.
    pub source: UserDatabase,
    /// The old user database's accounts in `domains` are mailboxes of the migration too,
    /// beside those `mailboxes` and `mailboxesFrom` list: an account added on the old
    /// server joins the migration. They log in with no password of their own, so both
    /// servers' `auth` must be `master` (or one shared token).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub discover: bool,
    /// Where they are written on the new server. Accounts already there are left as they
    /// are; one mailshift created is brought up to date when the old server's hash changes
    /// (a password changed during the move), except under `policy: upsert-only`.
    pub destination: UserDatabase,
    /// The password schemes (Dovecot's `{SCHEME}` names) the new server can check. By
    /// default the schemes every Dovecot 2.3 build has (`doveadm pw -l`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub schemes: Vec<String>,
    /// The scheme of a hash the old server stores without a `{SCHEME}` prefix (its
    /// `default_pass_scheme`).
    #[serde(default = "default_scheme")]
    #[schemars(length(min = 1))]
    pub default_scheme: String,
    /// An account whose hash the new server cannot check: `stop` (the default: the
    /// mailbox waits, reported, until the scheme is listed or the password reset) or
    /// `temporaryPassword` (a generated password, written to `temporaryPasswords` or
    /// `temporaryPasswordsSecret`, never logged).
    #[serde(default)]
    pub unknown_scheme: UnknownScheme,
    /// The file that receives `address:password` lines for generated passwords (created
    /// with mode 0600). Required with `unknownScheme: temporaryPassword`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temporary_passwords: Option<String>,
    /// In a cluster: the Secret of the migration's namespace that receives them instead
    /// (key `passwords`, the same `address:password` lines), written by the controller; a
    /// file would be lost with the controller's pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temporary_passwords_secret: Option<String>,
    /// Aliases, forwards and distribution lists of the migration's domains.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aliases: Option<Aliases>,
}

fn default_scheme() -> String {
    "CRYPT".into()
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum UnknownScheme {
    #[default]
    Stop,
    TemporaryPassword,
}

/// A user database.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub enum UserDatabase {
    /// A Dovecot passwd-file (`user:{SCHEME}hash:uid:gid:gecos:home:shell:extra`).
    PasswdFile(PasswdFile),
    /// A PostgreSQL user table, by default postfixadmin's `mailbox`.
    Postgres(SqlDatabase),
    /// A MySQL or MariaDB user table, by default postfixadmin's `mailbox`.
    Mysql(SqlDatabase),
}

/// An SQL user or alias table and the queries that read and write it. Left out, a query is
/// postfixadmin's. Parameters are written as the database's client takes them: for
/// PostgreSQL `$1` the login name, `$2` the password field (with its `{SCHEME}` prefix),
/// `$3` the local part, `$4` the domain, of which a query uses the first ones it needs; for
/// MySQL `:user`, `:password`, `:local`, `:domain`. Alias queries take `$1` / `:address`,
/// `$2` / `:goto` (the targets separated by commas), `$3` / `:domain`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SqlDatabase {
    /// `postgres://user:password@host:port/database` or `mysql://…`: a secret, as it holds
    /// the password.
    pub url: super::SecretRef,
    /// `require` (the default: TLS, the certificate checked against the system's roots or
    /// `caCertificate`) or `disable` (plain text, for a server on this machine).
    #[serde(default)]
    pub tls: SqlTls,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_certificate: Option<super::SecretRef>,
    /// Rows of (login name, password field).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accounts_query: Option<String>,
    /// Creates an account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insert_account: Option<String>,
    /// Sets an account's password field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_password: Option<String>,
    /// Rows of (alias address, targets separated by commas).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aliases_query: Option<String>,
    /// Creates an alias.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insert_alias: Option<String>,
    /// Sets an alias's targets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_alias: Option<String>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum SqlTls {
    #[default]
    Require,
    Disable,
}

/// A Dovecot passwd-file, on this machine or reached over ssh.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PasswdFile {
    #[schemars(length(min = 1))]
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh: Option<Ssh>,
}

/// Where aliases come from and go.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Aliases {
    /// The old server's aliases: its entries for the migration's domains move.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<AliasStore>,
    /// The new server's, which receive them.
    pub destination: AliasStore,
    /// Aliases declared here, beside the old server's (a declared one wins).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub declared: Vec<Alias>,
}

/// Where a server keeps its aliases.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub enum AliasStore {
    /// A Postfix `virtual_alias_maps` table.
    PostfixMap(AliasMap),
    /// A PostgreSQL table, by default postfixadmin's `alias` (`address`, `goto`: the
    /// targets separated by commas).
    Postgres(SqlDatabase),
    /// A MySQL or MariaDB table, by default postfixadmin's `alias`.
    Mysql(SqlDatabase),
}

/// A Postfix `virtual_alias_maps` table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AliasMap {
    pub postfix: PostfixTarget,
    /// `type:path` as in main.cf: `hash:/etc/postfix/virtual` (compiled with postmap),
    /// `texthash:/etc/postfix/virtual` (read as text; Postfix is reloaded), `lmdb:`,
    /// `btree:`, `cdb:`.
    #[schemars(length(min = 1))]
    pub map: String,
}

impl AliasMap {
    /// `map` split, when it is a table name.
    pub fn table(&self) -> Option<PostfixTable> {
        PostfixTable::parse(&self.map)
    }
}

/// A `type:path` table name split, e.g. `hash:/etc/postfix/virtual`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PostfixTable {
    pub kind: String,
    pub path: String,
}

impl PostfixTable {
    pub fn parse(map: &str) -> Option<PostfixTable> {
        let (kind, path) = map.split_once(':')?;
        (!kind.is_empty() && path.starts_with('/')).then(|| PostfixTable {
            kind: kind.to_ascii_lowercase(),
            path: path.to_owned(),
        })
    }

    /// Whether postmap(1) compiles the text into the table Postfix reads.
    pub fn compiled(&self) -> bool {
        matches!(
            self.kind.as_str(),
            "hash" | "btree" | "lmdb" | "cdb" | "dbm" | "sdbm"
        )
    }

    /// Whether Postfix reads the text itself (and must be reloaded to see a change).
    pub fn text(&self) -> bool {
        self.kind == "texthash"
    }
}

/// One alias: mail to `address` goes to every one of `to` (inside the domain or not).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Alias {
    #[schemars(length(min = 3))]
    pub address: String,
    #[schemars(length(min = 1))]
    pub to: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names() {
        let t = PostfixTable::parse("hash:/etc/postfix/virtual").unwrap();
        assert!(t.compiled() && !t.text());
        assert!(
            PostfixTable::parse("texthash:/etc/postfix/virtual")
                .unwrap()
                .text()
        );
        assert_eq!(PostfixTable::parse("virtual"), None);
        assert_eq!(PostfixTable::parse("hash:relative"), None);
    }
}
