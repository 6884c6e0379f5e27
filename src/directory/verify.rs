//! `verify` for `spec.accounts`: each carried account logs in on the new server with the
//! password its user has (the manifest's source password, or the temporary one written for
//! it), and the new Postfix resolves each alias (`postmap -q`) to the same targets as
//! wanted. Only reads, on both servers.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::{DirectoryError, alias_map, read, wanted_aliases};
use crate::accounts::{Account, Login};
use crate::address::Address;
use crate::imap::conn::Connector;
use crate::imap::session::DestinationSession;
use crate::routing::{self, runner};
use crate::secrets::Resolver;
use crate::spec::{AliasMap, AliasStore, MailMigrationSpec, Secret};

/// One account or alias as verified.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(
    rename_all = "camelCase",
    tag = "state",
    rename_all_fields = "camelCase"
)]
pub enum Verdict {
    /// The account logs in on the new server with its user's password.
    LogsIn { mailbox: String },
    /// It does not.
    Refused { mailbox: String, reason: String },
    /// No password to try: the manifest logs in as a master user or with OAuth2, and no
    /// temporary password was written for it.
    NotChecked { mailbox: String },
    /// The alias resolves to the wanted targets.
    Resolves { alias: String },
    /// It resolves to others, or to nothing.
    Differs {
        alias: String,
        wanted: Vec<String>,
        found: Vec<String>,
    },
}

impl Verdict {
    pub fn ok(&self) -> bool {
        !matches!(self, Verdict::Refused { .. } | Verdict::Differs { .. })
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Verdict::LogsIn { mailbox } => {
                write!(f, "Account {mailbox}: logs in on the new server")
            }
            Verdict::Refused { mailbox, reason } => write!(
                f,
                "Account {mailbox}: REFUSED on the new server: {}",
                crate::text::printable(reason)
            ),
            Verdict::NotChecked { mailbox } => write!(
                f,
                "Account {mailbox}: not checked (no password of its user in the manifest)"
            ),
            Verdict::Resolves { alias } => write!(f, "Alias {alias}: resolves as wanted"),
            Verdict::Differs {
                alias,
                wanted,
                found,
            } => write!(
                f,
                "Alias {alias}: DIFFERENT: wanted {}, the new server has {}",
                wanted.join(", "),
                if found.is_empty() {
                    "nothing".to_owned()
                } else {
                    found.join(", ")
                }
            ),
        }
    }
}

/// Every account of `accounts` and every wanted alias, checked.
pub async fn verify(
    spec: &MailMigrationSpec,
    accounts: &[Account],
    destination: &Connector,
    resolver: &Resolver,
) -> Result<Vec<Verdict>, DirectoryError> {
    let Some(a) = &spec.accounts else {
        return Ok(Vec::new());
    };
    let temporary = match &a.temporary_passwords {
        Some(path) => temporary_passwords(path)?,
        None => BTreeMap::new(),
    };
    let mut out = Vec::new();
    for account in accounts {
        let mailbox = account.address.clone();
        let password = temporary
            .get(&Address::of(&account.address))
            .cloned()
            .or_else(|| match &account.source {
                Login::Password { password, .. } => Some(password.expose().to_owned()),
                _ => None,
            });
        let Some(password) = password else {
            out.push(Verdict::NotChecked { mailbox });
            continue;
        };
        let login = Login::Password {
            user: account.destination.user().to_owned(),
            password: Secret::new(password),
        };
        out.push(match destination.connect(&login).await {
            Ok(c) => {
                DestinationSession::new(c).logout().await;
                Verdict::LogsIn { mailbox }
            }
            Err(e) => Verdict::Refused {
                mailbox,
                reason: e.to_string(),
            },
        });
    }
    if let Some(al) = &a.aliases {
        let read = read(spec, resolver).await?;
        let wanted: Vec<(String, Vec<String>)> =
            wanted_aliases(spec, &read).into_values().collect();
        let found: Vec<Vec<String>> = match &al.destination {
            // As Postfix resolves them, through the compiled table.
            AliasStore::PostfixMap(map) => {
                let (resolver, map) = (resolver.clone(), map.clone());
                let keys: Vec<String> = wanted.iter().map(|(k, _)| k.clone()).collect();
                tokio::task::spawn_blocking(move || postmap_lookups(&map, &resolver, &keys))
                    .await
                    .map_err(|e| DirectoryError::Task(e.to_string()))??
            }
            AliasStore::Postgres(_) | AliasStore::Mysql(_) => {
                let have: BTreeMap<Address, &Vec<String>> = read
                    .destination_aliases
                    .iter()
                    .map(|(k, v)| (Address::of(k), v))
                    .collect();
                wanted
                    .iter()
                    .map(|(k, _)| {
                        have.get(&Address::of(k))
                            .map(|v| v.to_vec())
                            .unwrap_or_default()
                    })
                    .collect()
            }
        };
        let set = |l: &[String]| l.iter().map(|t| Address::of(t)).collect::<BTreeSet<_>>();
        for ((alias, to), found) in wanted.into_iter().zip(found) {
            out.push(if set(&found) == set(&to) {
                Verdict::Resolves { alias }
            } else {
                Verdict::Differs {
                    alias,
                    wanted: to,
                    found,
                }
            });
        }
    }
    Ok(out)
}

/// What `postmap -q` gives for each of `keys` in the map (nothing for a key it lacks).
fn postmap_lookups(
    map: &AliasMap,
    resolver: &Resolver,
    keys: &[String],
) -> Result<Vec<Vec<String>>, DirectoryError> {
    let runner = routing::runner_for(&map.postfix, resolver)?;
    keys.iter()
        .map(|key| {
            let argv = [
                "postmap".to_owned(),
                "-c".into(),
                map.postfix.config_dir.clone(),
                "-q".into(),
                key.clone(),
                map.map.clone(),
            ];
            let got = runner.run(&argv, None)?;
            // postmap -q exits 1 for a key it does not have.
            if !(got.success() || got.code == Some(1)) {
                return Err(runner::failed(runner.as_ref(), &argv, &got).into());
            }
            Ok(alias_map::targets(&got.stdout))
        })
        .collect()
}

/// The `address:password` lines of the temporary passwords file; the last one of an
/// address is the one written last.
fn temporary_passwords(path: &str) -> Result<BTreeMap<Address, String>, DirectoryError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => {
            return Err(DirectoryError::Temporary {
                path: path.to_owned(),
                error: e.to_string(),
            });
        }
    };
    Ok(text
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(a, p)| (Address::of(a), p.to_owned()))
        .collect())
}
