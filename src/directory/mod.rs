//! `spec.accounts`: the new server's accounts and aliases. The old server's user database
//! and alias map are only read; the new server's are compared with them and given what
//! they lack, right before each write read again. Nothing is ever removed, and only what
//! mailshift wrote itself ([`Provisioned`]) is ever changed again.
//!
//! A password moves as the old server's hash when the new server checks its scheme
//! ([`scheme`]); otherwise the manifest decides: the mailbox waits (reported), or gets a
//! generated password written to `temporaryPasswords` and nowhere else.

pub mod alias_map;
mod mysql;
pub mod passwd;
mod postgres;
pub mod scheme;
mod verify;

pub use verify::{Verdict, verify};

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;

use crate::accounts::Account;
use crate::address::{Address, Domain};
use crate::plan::{AccountRefusal, DirectoryState};
use crate::routing::runner;
use crate::routing::{self, RoutingError};
use crate::secrets::Resolver;
use crate::spec::{
    AliasMap, AliasStore, MailMigrationSpec, Policy, PostfixTable, Provisioned, UnknownScheme,
    UserDatabase,
};
use scheme::Hash;

#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    #[error(transparent)]
    Routing(#[from] RoutingError),
    #[error("{0}")]
    Invalid(String),
    #[error("temporary passwords file {path}: {error}")]
    Temporary { path: String, error: String },
    #[error("background task: {0}")]
    Task(String),
    #[error("{server}: {error}")]
    Sql { server: String, error: String },
}

/// What a write gives an account.
#[derive(Clone, PartialEq, Eq)]
enum Password {
    /// The old server's hash, with its `{SCHEME}` prefix.
    Hash(String),
    /// A generated one, in a scheme every Dovecot checks.
    Temporary,
}

/// One account the new server is to be given.
#[derive(Clone)]
struct AccountWrite {
    address: String,
    /// The login name on the new server (the mailbox's destination user).
    user: String,
    password: Password,
    /// The new server has the account (mailshift's, with an older hash).
    exists: bool,
}

/// Both sides compared.
#[derive(Default)]
struct Comparison {
    accounts: Vec<AccountWrite>,
    /// Alias, targets, and whether the new server has it (with other targets).
    aliases: Vec<(String, Vec<String>, bool)>,
    missing_accounts: Vec<String>,
    missing_aliases: Vec<String>,
    refused: Vec<AccountRefusal>,
}

/// What was read of both sides.
struct Read {
    source_accounts: Vec<passwd::Entry>,
    destination_accounts: Vec<passwd::Entry>,
    source_aliases: BTreeMap<String, Vec<String>>,
    destination_aliases: BTreeMap<String, Vec<String>>,
}

/// Compares what the old server (and the manifest) has with what the new one has: pure.
fn compare(
    spec: &MailMigrationSpec,
    accounts: &[Account],
    provisioned: &Provisioned,
    read: &Read,
) -> Comparison {
    let Some(a) = &spec.accounts else {
        return Comparison::default();
    };
    let schemes = scheme::destination_schemes(&a.schemes);
    let update = spec.policy == Policy::Sync;
    let source: BTreeMap<&str, &passwd::Entry> = read
        .source_accounts
        .iter()
        .map(|e| (e.user.as_str(), e))
        .collect();
    let destination: BTreeMap<&str, &passwd::Entry> = read
        .destination_accounts
        .iter()
        .map(|e| (e.user.as_str(), e))
        .collect();
    let mut out = Comparison::default();
    for account in accounts {
        let key = Address::of(&account.address);
        let refuse = |reason: String| AccountRefusal {
            address: account.address.clone(),
            reason,
        };
        let user = account.destination.user().to_owned();
        let existing = destination.get(user.as_str());
        if existing.is_none() {
            out.missing_accounts.push(account.address.clone());
        }
        let old = source
            .get(account.source.user())
            .or_else(|| source.get(account.address.as_str()));
        let Some(old) = old else {
            if existing.is_none() {
                out.refused.push(refuse(format!(
                    "{} is not in the old server's user database",
                    account.source.user()
                )));
            }
            continue;
        };
        let hash = Hash::parse(&old.password, &a.default_scheme);
        // A `:` or line break would split the line: another account's fields.
        if matches!(a.destination, UserDatabase::PasswdFile(_))
            && !(passwd::fits(&user) && passwd::fits(&hash.portable()))
        {
            out.refused.push(refuse(
                "its login name or password field holds a `:` or a line break, which a passwd-file cannot".into(),
            ));
            continue;
        }
        let ours = provisioned.accounts.contains(&key);
        let temporary = provisioned.temporary.contains(&key);
        if hash.understood_by(&schemes) {
            let wanted = hash.portable();
            let stale = existing.is_some_and(|e| e.password != wanted && ours && !temporary);
            if existing.is_none() || (stale && update) {
                out.accounts.push(AccountWrite {
                    address: account.address.clone(),
                    user,
                    password: Password::Hash(wanted),
                    exists: existing.is_some(),
                });
            }
        } else if existing.is_none() {
            match a.unknown_scheme {
                UnknownScheme::Stop => out.refused.push(refuse(format!(
                    "its password is stored as {}, which the new server does not check (accounts.schemes): list the scheme there, reset the password, or set accounts.unknownScheme: temporaryPassword",
                    hash.scheme
                ))),
                UnknownScheme::TemporaryPassword => out.accounts.push(AccountWrite {
                    address: account.address.clone(),
                    user,
                    password: Password::Temporary,
                    exists: false,
                }),
            }
        }
    }
    if a.aliases.is_some() {
        let wanted = wanted_aliases(spec, read);
        let have: BTreeMap<Address, &Vec<String>> = read
            .destination_aliases
            .iter()
            .map(|(k, v)| (Address::of(k), v))
            .collect();
        let same = |a: &[String], b: &[String]| {
            let set = |l: &[String]| l.iter().map(|t| Address::of(t)).collect::<BTreeSet<_>>();
            set(a) == set(b)
        };
        for (address, (key, to)) in wanted {
            match have.get(&address) {
                None => {
                    out.missing_aliases.push(key.clone());
                    out.aliases.push((key, to, false));
                }
                Some(current)
                    if update && !same(current, &to) && provisioned.aliases.contains(&address) =>
                {
                    out.aliases.push((key, to, true));
                }
                Some(_) => {}
            }
        }
    }
    out
}

/// The aliases the new server must have: the old map's entries for the migration's
/// domains, and the declared ones (which win), by address.
fn wanted_aliases(
    spec: &MailMigrationSpec,
    read: &Read,
) -> BTreeMap<Address, (String, Vec<String>)> {
    let mut wanted = BTreeMap::new();
    let Some(aliases) = spec.accounts.as_ref().and_then(|a| a.aliases.as_ref()) else {
        return wanted;
    };
    let domains: BTreeSet<Domain> = spec.domains.iter().map(|d| Domain::of(d)).collect();
    for (key, to) in &read.source_aliases {
        let address = Address::of(key);
        if domains.contains(&address.domain()) {
            wanted.insert(address, (key.clone(), to.clone()));
        }
    }
    for d in &aliases.declared {
        wanted.insert(Address::of(&d.address), (d.address.clone(), d.to.clone()));
    }
    wanted
}

/// Runs blocking file and command work (a runner, ssh) off the async runtime.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, DirectoryError> + Send + 'static,
) -> Result<T, DirectoryError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| DirectoryError::Task(e.to_string()))?
}

/// `accounts.discover`: the old user database's accounts in the migration's domains, as
/// (address, login name) pairs. A login that is an address counts when its domain is one
/// of `domains`; a bare one (`alice`) when there is only one domain to put it in.
pub async fn discover(
    spec: &MailMigrationSpec,
    resolver: &Resolver,
) -> Result<Vec<(String, String)>, DirectoryError> {
    let Some(a) = spec.accounts.as_ref().filter(|a| a.discover) else {
        return Ok(Vec::new());
    };
    let entries = read_accounts(&a.source, resolver).await?.ok_or_else(|| {
        DirectoryError::Invalid(format!(
            "{} does not exist: no accounts to discover",
            describe(&a.source)
        ))
    })?;
    let domains: Vec<Domain> = spec.domains.iter().map(|d| Domain::of(d)).collect();
    let mut out = Vec::new();
    for e in entries {
        let address = match Address::parse(&e.user) {
            Ok(address) if domains.contains(&address.domain()) => address,
            Ok(_) => continue,
            Err(_) if domains.len() == 1 && !e.user.contains('@') => {
                match Address::parse(&format!("{}@{}", e.user, domains[0])) {
                    Ok(a) => a,
                    Err(_) => continue,
                }
            }
            Err(_) => continue,
        };
        out.push((address.to_string(), e.user));
    }
    tracing::info!(
        accounts = out.len(),
        "accounts discovered on the old server"
    );
    Ok(out)
}

/// [`discover`] from code that is not async (preparing a migration), on a thread and a
/// runtime of its own, so that it may be called from within another runtime too.
pub fn discover_blocking(
    spec: &MailMigrationSpec,
    resolver: &Resolver,
) -> Result<Vec<(String, String)>, DirectoryError> {
    if !spec.accounts.as_ref().is_some_and(|a| a.discover) {
        return Ok(Vec::new());
    }
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| DirectoryError::Task(e.to_string()))?
                    .block_on(discover(spec, resolver))
            })
            .join()
            .unwrap_or_else(|_| Err(DirectoryError::Task("discovering accounts panicked".into())))
    })
}

/// A user database's accounts; `None` when it does not exist (a passwd-file not there).
async fn read_accounts(
    db: &UserDatabase,
    resolver: &Resolver,
) -> Result<Option<Vec<passwd::Entry>>, DirectoryError> {
    match db {
        UserDatabase::PasswdFile(p) => {
            let (p, resolver) = (p.clone(), resolver.clone());
            blocking(move || {
                let runner = routing::runner_at(p.ssh.as_ref(), &resolver)?;
                let text = runner::read_file(runner.as_ref(), &p.path)?;
                Ok(text.map(|t| passwd::parse(&t)))
            })
            .await
        }
        UserDatabase::Postgres(db) => postgres::read(db, resolver).await.map(Some),
        UserDatabase::Mysql(db) => mysql::read(db, resolver).await.map(Some),
    }
}

/// Gives `db` the password fields of `writes` (login name, field, whether the account is
/// there already).
async fn write_accounts(
    db: &UserDatabase,
    resolver: &Resolver,
    writes: Vec<(String, String, bool)>,
) -> Result<(), DirectoryError> {
    match db {
        UserDatabase::PasswdFile(p) => {
            let (p, resolver) = (p.clone(), resolver.clone());
            blocking(move || {
                let runner = routing::runner_at(p.ssh.as_ref(), &resolver)?;
                let mut text = runner::read_file(runner.as_ref(), &p.path)?.unwrap_or_default();
                for (user, field, _) in &writes {
                    text = passwd::upsert(&text, user, field);
                }
                runner::replace_file(runner.as_ref(), &p.path, &text)?;
                // Dovecot looks at a passwd-file's mtime at most once a second: a login in
                // the same second as its last look would still meet the old file.
                std::thread::sleep(std::time::Duration::from_millis(1100));
                Ok(())
            })
            .await
        }
        UserDatabase::Postgres(db) => postgres::write(db, resolver, &rows(&writes)).await,
        UserDatabase::Mysql(db) => mysql::write(db, resolver, &rows(&writes)).await,
    }
}

fn describe(db: &UserDatabase) -> String {
    match db {
        UserDatabase::PasswdFile(p) => format!("passwd-file {}", p.path),
        UserDatabase::Postgres(_) => "PostgreSQL table".into(),
        UserDatabase::Mysql(_) => "MySQL table".into(),
    }
}

/// One account written into an SQL table: the login name, the password field, whether the
/// row exists (an update) or not (an insert).
struct Row<'a> {
    user: &'a str,
    password: &'a str,
    exists: bool,
}

fn rows(writes: &[(String, String, bool)]) -> Vec<Row<'_>> {
    writes
        .iter()
        .map(|(user, password, exists)| Row {
            user,
            password,
            exists: *exists,
        })
        .collect()
}

fn table(map: &AliasMap) -> Result<PostfixTable, DirectoryError> {
    map.table().ok_or_else(|| {
        DirectoryError::Invalid(format!(
            "{:?} is not a Postfix table (type:/absolute/path)",
            map.map
        ))
    })
}

/// A server's aliases; `None` when its map file does not exist.
async fn read_aliases(
    store: &AliasStore,
    resolver: &Resolver,
) -> Result<Option<BTreeMap<String, Vec<String>>>, DirectoryError> {
    match store {
        AliasStore::PostfixMap(map) => {
            let (map, resolver) = (map.clone(), resolver.clone());
            blocking(move || {
                let runner = routing::runner_for(&map.postfix, &resolver)?;
                let t = table(&map)?;
                // A compiled table is what Postfix resolves with: its text may be an edit
                // not yet compiled, or gone. `postmap -s` dumps it; where it cannot (no
                // compiled file yet, no postmap), the text is read.
                if t.compiled() {
                    let argv: Vec<String> = vec![
                        "postmap".into(),
                        "-c".into(),
                        map.postfix.config_dir.clone(),
                        "-s".into(),
                        map.map.clone(),
                    ];
                    let out = runner.run(&argv, None)?;
                    if out.success() {
                        return Ok(Some(alias_map::parse(&out.stdout)));
                    }
                    tracing::debug!(map = %map.map, stderr = %out.stderr.trim(), "postmap -s cannot dump the compiled table; reading its text");
                }
                Ok(
                    runner::read_file(runner.as_ref(), &t.path)?
                        .map(|text| alias_map::parse(&text)),
                )
            })
            .await
        }
        AliasStore::Postgres(db) => postgres::read_aliases(db, resolver).await.map(Some),
        AliasStore::Mysql(db) => mysql::read_aliases(db, resolver).await.map(Some),
    }
}

/// Gives the store `entries` (alias, targets, whether it is there already).
async fn write_aliases(
    store: &AliasStore,
    resolver: &Resolver,
    entries: Vec<(String, Vec<String>, bool)>,
) -> Result<(), DirectoryError> {
    let rows: Vec<AliasRow> = entries
        .iter()
        .map(|(address, to, exists)| AliasRow {
            address: address.clone(),
            domain: Address::of(address).domain().to_string(),
            // postfixadmin's form: no space after the commas.
            goto: to.join(","),
            exists: *exists,
        })
        .collect();
    match store {
        AliasStore::PostfixMap(map) => {
            let (map, resolver) = (map.clone(), resolver.clone());
            let entries: Vec<(String, Vec<String>)> =
                entries.into_iter().map(|(k, to, _)| (k, to)).collect();
            blocking(move || write_map(&map, &resolver, &entries)).await
        }
        AliasStore::Postgres(db) => postgres::write_aliases(db, resolver, &rows).await,
        AliasStore::Mysql(db) => mysql::write_aliases(db, resolver, &rows).await,
    }
}

/// One alias written into an SQL table.
struct AliasRow {
    address: String,
    goto: String,
    domain: String,
    exists: bool,
}

/// Both sides as they are now, read in full.
async fn read(spec: &MailMigrationSpec, resolver: &Resolver) -> Result<Read, DirectoryError> {
    let a = spec
        .accounts
        .as_ref()
        .ok_or_else(|| DirectoryError::Invalid("the manifest has no `accounts`".into()))?;
    let source_accounts = read_accounts(&a.source, resolver).await?.ok_or_else(|| {
        DirectoryError::Invalid(format!(
            "the old server's user database ({}) does not exist",
            describe(&a.source)
        ))
    })?;
    let destination_accounts = read_accounts(&a.destination, resolver)
        .await?
        .unwrap_or_default();
    let (mut source_aliases, mut destination_aliases) = (BTreeMap::new(), BTreeMap::new());
    if let Some(al) = &a.aliases {
        if let Some(src) = &al.source {
            source_aliases = read_aliases(src, resolver).await?.ok_or_else(|| {
                DirectoryError::Invalid("the old server's alias map does not exist".into())
            })?;
        }
        destination_aliases = read_aliases(&al.destination, resolver)
            .await?
            .unwrap_or_default();
    }
    Ok(Read {
        source_accounts,
        destination_accounts,
        source_aliases,
        destination_aliases,
    })
}

/// The new server's accounts and aliases against the manifest, as the planner sees them.
pub async fn observe(
    spec: &MailMigrationSpec,
    accounts: &[Account],
    provisioned: &Provisioned,
    resolver: &Resolver,
) -> DirectoryState {
    match read(spec, resolver).await {
        Ok(r) => {
            let c = compare(spec, accounts, provisioned, &r);
            DirectoryState::Observed {
                accounts: c.accounts.iter().map(|w| w.address.clone()).collect(),
                aliases: c.aliases.iter().map(|(k, _, _)| k.clone()).collect(),
                missing_accounts: c.missing_accounts,
                missing_aliases: c.missing_aliases,
                refused: c.refused,
            }
        }
        Err(e) => DirectoryState::Error {
            reason: e.to_string(),
        },
    }
}

/// What one provisioning wrote.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Written {
    pub accounts: Vec<String>,
    pub temporary: Vec<String>,
    pub aliases: Vec<String>,
}

/// Writes the accounts of `addresses` and the aliases of `aliases` that the new server
/// still lacks or that the plan found mailshift's own and out of date (both sides read
/// again first: what changed since the plan decides).
pub async fn provision(
    spec: &MailMigrationSpec,
    accounts: &[Account],
    addresses: &[String],
    aliases: &[String],
    resolver: &Resolver,
) -> Result<Written, DirectoryError> {
    let wanted: BTreeSet<Address> = addresses.iter().map(|a| Address::of(a)).collect();
    let wanted_aliases: BTreeSet<Address> = aliases.iter().map(|a| Address::of(a)).collect();
    // The plan listed an existing entry only because it was mailshift's and out of date.
    let provisioned = Provisioned {
        accounts: wanted.clone(),
        temporary: BTreeSet::new(),
        aliases: wanted_aliases.clone(),
    };
    let read = read(spec, resolver).await?;
    let mut c = compare(spec, accounts, &provisioned, &read);
    c.accounts
        .retain(|w| wanted.contains(&Address::of(&w.address)));
    c.aliases
        .retain(|(k, _, _)| wanted_aliases.contains(&Address::of(k)));
    write(spec, c, resolver).await
}

async fn write(
    spec: &MailMigrationSpec,
    c: Comparison,
    resolver: &Resolver,
) -> Result<Written, DirectoryError> {
    let a = spec.accounts.as_ref().expect("read checked it");
    let mut written = Written::default();
    if !c.accounts.is_empty() {
        // Passwords first: an account whose password was lost cannot be logged in to,
        // while a password written twice (a crash in between) is only a stale line.
        let mut fields: Vec<(String, String, bool)> = Vec::new();
        let mut generated: Vec<(String, String)> = Vec::new();
        for w in &c.accounts {
            match &w.password {
                Password::Hash(h) => fields.push((w.user.clone(), h.clone(), w.exists)),
                Password::Temporary => {
                    let password = temporary_password()?;
                    fields.push((w.user.clone(), hash_temporary(&password)?, w.exists));
                    generated.push((w.address.clone(), password));
                }
            }
        }
        if !generated.is_empty() {
            keep_passwords(a, resolver, &generated).await?;
        }
        write_accounts(&a.destination, resolver, fields).await?;
        for w in &c.accounts {
            written.accounts.push(w.address.clone());
            if w.password == Password::Temporary {
                written.temporary.push(w.address.clone());
            }
        }
        tracing::info!(
            accounts = written.accounts.len(),
            temporary = written.temporary.len(),
            "accounts written on the new server"
        );
    }
    if let Some(al) = &a.aliases
        && !c.aliases.is_empty()
    {
        write_aliases(&al.destination, resolver, c.aliases.clone()).await?;
        written.aliases = c.aliases.into_iter().map(|(k, _, _)| k).collect();
        tracing::info!(
            aliases = written.aliases.len(),
            "aliases written on the new server"
        );
    }
    Ok(written)
}

/// Sets `entries` in the alias map's text and has Postfix see them: postmap for a compiled
/// table, a reload for a text one.
fn write_map(
    map: &AliasMap,
    resolver: &Resolver,
    entries: &[(String, Vec<String>)],
) -> Result<(), DirectoryError> {
    let runner = routing::runner_for(&map.postfix, resolver)?;
    let t = table(map)?;
    let mut text = runner::read_file(runner.as_ref(), &t.path)?.unwrap_or_default();
    for (key, to) in entries {
        text = alias_map::upsert(&text, key, to);
    }
    runner::replace_file(runner.as_ref(), &t.path, &text)?;
    let dir = map.postfix.config_dir.clone();
    if t.compiled() {
        runner::run_ok(
            runner.as_ref(),
            &["postmap".into(), "-c".into(), dir, map.map.clone()],
        )?;
    } else if t.text() {
        let status = runner.run(
            &["postfix".into(), "-c".into(), dir.clone(), "status".into()],
            None,
        )?;
        // A stopped Postfix reads the table when it starts.
        if status.success() {
            runner::run_ok(
                runner.as_ref(),
                &["postfix".into(), "-c".into(), dir, "reload".into()],
            )?;
        }
    }
    Ok(())
}

/// 20 characters from an alphabet without look-alikes: about 110 bits.
fn temporary_password() -> Result<String, DirectoryError> {
    use ring::rand::SecureRandom;
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzACDEFGHJKLMNPQRTUVWXY34679";
    let mut bytes = [0u8; 20];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| DirectoryError::Invalid("no random numbers from the system".into()))?;
    Ok(bytes
        .iter()
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
        .collect())
}

/// `{SHA512-CRYPT}$6$…` of `password`: a scheme every Dovecot checks.
fn hash_temporary(password: &str) -> Result<String, DirectoryError> {
    use ring::rand::SecureRandom;
    use sha_crypt::PasswordHasher;
    let mut salt = [0u8; 12];
    ring::rand::SystemRandom::new()
        .fill(&mut salt)
        .map_err(|_| DirectoryError::Invalid("no random numbers from the system".into()))?;
    let hash = sha_crypt::ShaCrypt::SHA512
        .hash_password_with_salt(password.as_bytes(), &salt)
        .map_err(|e| DirectoryError::Invalid(format!("hashing a temporary password: {e}")))?;
    Ok(format!("{{SHA512-CRYPT}}{hash}"))
}

/// Where generated passwords go: the Secret in a cluster, the file otherwise. The
/// controller never writes a file of its own (it would be lost with its pod).
async fn keep_passwords(
    a: &crate::spec::Accounts,
    resolver: &Resolver,
    generated: &[(String, String)],
) -> Result<(), DirectoryError> {
    let lines: String = generated
        .iter()
        .map(|(a, p)| format!("{a}:{p}\n"))
        .collect();
    match (&a.temporary_passwords_secret, &a.temporary_passwords) {
        (Some(name), _) => {
            let sink = resolver.sink().ok_or_else(|| {
                DirectoryError::Invalid(
                    "accounts.temporaryPasswordsSecret is written by the controller in a cluster; \
                     outside one, give accounts.temporaryPasswords (a file)"
                        .into(),
                )
            })?;
            sink.append(name, "passwords", lines)
                .await
                .map_err(|error| DirectoryError::Temporary {
                    path: format!("Secret {name}"),
                    error,
                })
        }
        (None, Some(_)) if resolver.is_cluster_only() => Err(DirectoryError::Invalid(
            "in a cluster, generated passwords go to a Secret: set accounts.temporaryPasswordsSecret \
             (the file accounts.temporaryPasswords would be lost with the controller's pod)"
                .into(),
        )),
        (None, Some(path)) => append_passwords(path, &lines),
        (None, None) => Err(DirectoryError::Invalid(
            "accounts.temporaryPasswords is not set".into(),
        )),
    }
}

/// Appends `address:password` lines to the file at `path` (made with mode 0600).
fn append_passwords(path: &str, text: &str) -> Result<(), DirectoryError> {
    use std::os::unix::fs::OpenOptionsExt;
    let err = |e: std::io::Error| DirectoryError::Temporary {
        path: path.to_owned(),
        error: e.to_string(),
    };
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .map_err(err)?;
    f.write_all(text.as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(err)
}

#[cfg(test)]
mod tests;
