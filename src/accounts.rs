//! The mailboxes of a migration with their logins resolved: the inline list plus
//! `mailboxesFrom`, each with how it logs in on the source and on the destination.

use crate::address::Address;
use std::collections::HashMap;

use crate::secrets::{Resolver, SecretError};
use crate::spec::{Auth, AuthMethod, MailMigrationSpec, Secret, SecretRef};

/// How one mailbox logs in on one server. `Debug` shows no secret.
#[derive(Clone, Debug)]
pub enum Login {
    /// LOGIN or AUTHENTICATE PLAIN with the mailbox's own password.
    Password { user: String, password: Secret },
    /// AUTHENTICATE PLAIN with `user` as authorization identity and the master user's
    /// credentials as authentication identity.
    Master {
        user: String,
        master_user: String,
        master_password: Secret,
    },
    /// AUTHENTICATE XOAUTH2 or OAUTHBEARER (RFC 7628) with an access token from `token`
    /// (fixed, or renewed).
    OAuth2 {
        user: String,
        token: crate::oauth::TokenSource,
        mechanism: OAuthMechanism,
    },
    /// No login at all: the source is files (Maildir, mbox), read by path as `user`.
    Files { user: String },
}

/// The SASL mechanism that carries an OAuth2 token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OAuthMechanism {
    /// Google's and Microsoft's.
    Xoauth2,
    /// The standard one (RFC 7628).
    Oauthbearer,
}

impl OAuthMechanism {
    pub fn name(self) -> &'static str {
        match self {
            OAuthMechanism::Xoauth2 => "XOAUTH2",
            OAuthMechanism::Oauthbearer => "OAUTHBEARER",
        }
    }

    /// The initial client response for `user` with `token`, to the server `host:port`.
    pub fn initial_response(self, user: &str, token: &str, host: &str, port: u16) -> String {
        match self {
            OAuthMechanism::Xoauth2 => format!("user={user}\x01auth=Bearer {token}\x01\x01"),
            // RFC 7628 3.1: a GS2 header naming the user, then key=value pairs.
            OAuthMechanism::Oauthbearer => format!(
                "n,a={},\x01host={host}\x01port={port}\x01auth=Bearer {token}\x01\x01",
                user.replace('=', "=3D").replace(',', "=2C")
            ),
        }
    }

    /// What the client answers to an error challenge so that the server sends its NO:
    /// empty for XOAUTH2, a single ^A for OAUTHBEARER (RFC 7628 3.2.3).
    pub fn error_response(self) -> &'static [u8] {
        match self {
            OAuthMechanism::Xoauth2 => b"",
            OAuthMechanism::Oauthbearer => b"\x01",
        }
    }
}

impl Login {
    /// The mailbox's login name, for messages and logs.
    pub fn user(&self) -> &str {
        match self {
            Login::Password { user, .. }
            | Login::Master { user, .. }
            | Login::OAuth2 { user, .. }
            | Login::Files { user } => user,
        }
    }
}

/// A mailbox to migrate, ready to log in on both sides.
#[derive(Clone, Debug)]
pub struct Account {
    pub address: String,
    pub source: Login,
    pub destination: Login,
}

/// Why the mailboxes could not be resolved; names the mailbox and the reference, not secrets.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("{address}: {side} password: {error}")]
    Secret {
        address: String,
        side: &'static str,
        error: SecretError,
    },
    #[error("{address}: no {side} password given and {side}.auth.method is {method}")]
    NoPassword {
        address: String,
        side: &'static str,
        method: &'static str,
    },
    #[error("{side}.auth: {error}")]
    SharedSecret {
        side: &'static str,
        error: SecretError,
    },
    #[error("mailboxesFrom: {0}")]
    Csv(String),
    #[error("{side}.auth.tokenSource: {error}")]
    OAuth { side: &'static str, error: String },
}

/// One row of the mailbox list before credentials are resolved.
struct Row {
    address: String,
    source_user: Option<String>,
    destination_user: Option<String>,
    source_password: Option<Secret>,
    destination_password: Option<Secret>,
}

/// Resolve every mailbox of `spec`: the inline list first, then `mailboxesFrom`.
pub fn resolve(
    spec: &MailMigrationSpec,
    resolver: &Resolver,
) -> Result<Vec<Account>, AccountError> {
    resolve_with(spec, resolver, &[])
}

/// [`resolve`], then the `discovered` mailboxes (address, login on the old server) that
/// neither list names, logging in without passwords of their own (`accounts.discover`).
pub fn resolve_with(
    spec: &MailMigrationSpec,
    resolver: &Resolver,
    discovered: &[(String, String)],
) -> Result<Vec<Account>, AccountError> {
    let mut rows = Vec::new();
    for m in &spec.mailboxes {
        let secret =
            |r: &Option<SecretRef>, side: &'static str| -> Result<Option<Secret>, AccountError> {
                r.as_ref()
                    .map(|r| resolver.resolve(r))
                    .transpose()
                    .map_err(|error| AccountError::Secret {
                        address: m.address.clone(),
                        side,
                        error,
                    })
            };
        rows.push(Row {
            address: m.address.clone(),
            source_user: m.source_user.clone(),
            destination_user: m.destination_user.clone(),
            source_password: secret(&m.source_password, "source")?,
            destination_password: secret(&m.destination_password, "destination")?,
        });
    }
    if let Some(from) = &spec.mailboxes_from {
        let text = resolver
            .resolve(from)
            .map_err(|e| AccountError::Csv(e.to_string()))?;
        rows.extend(parse_csv(text.expose(), &from.to_string())?);
    }
    let mut seen: HashMap<Address, usize> = HashMap::new();
    for (i, r) in rows.iter().enumerate() {
        if let Some(first) = seen.insert(Address::of(&r.address), i) {
            return Err(AccountError::Csv(format!(
                "{} is listed twice (entries {} and {})",
                r.address,
                first + 1,
                i + 1
            )));
        }
    }
    for (address, user) in discovered {
        if seen.contains_key(&Address::of(address)) {
            continue;
        }
        seen.insert(Address::of(address), rows.len());
        rows.push(Row {
            address: address.clone(),
            source_user: (user != address).then(|| user.clone()),
            destination_user: None,
            source_password: None,
            destination_password: None,
        });
    }
    let files = spec.source.kind().is_files();
    let src = shared(&spec.source.auth, resolver, "source")?;
    let dst = shared(&spec.destination.auth, resolver, "destination")?;
    let src_tokens = Tokens::of(&spec.source.auth, resolver, "source")?;
    let dst_tokens = Tokens::of(&spec.destination.auth, resolver, "destination")?;
    rows.into_iter()
        .map(|r| {
            let source_user = r.source_user.clone().unwrap_or_else(|| r.address.clone());
            let source = if files {
                Login::Files { user: source_user }
            } else {
                login(
                    &spec.source.auth,
                    &src_tokens,
                    src.as_ref(),
                    source_user,
                    r.source_password.clone(),
                    &r.address,
                    "source",
                )?
            };
            let destination = login(
                &spec.destination.auth,
                &dst_tokens,
                dst.as_ref(),
                r.destination_user
                    .clone()
                    .unwrap_or_else(|| r.address.clone()),
                r.destination_password.clone(),
                &r.address,
                "destination",
            )?;
            Ok(Account {
                address: r.address,
                source,
                destination,
            })
        })
        .collect()
}

/// Offline check of a `mailboxesFrom` file for `validate`: it parses, its addresses are
/// valid and none repeats an inline mailbox. Other sources need the process environment or
/// a cluster and are checked when used.
pub fn check_list_file(
    spec: &MailMigrationSpec,
    resolver: &Resolver,
) -> Result<usize, AccountError> {
    let Some(from @ SecretRef::File(_)) = &spec.mailboxes_from else {
        return Ok(0);
    };
    let text = resolver
        .resolve(from)
        .map_err(|e| AccountError::Csv(e.to_string()))?;
    let rows = parse_csv(text.expose(), &from.to_string())?;
    let mut seen: HashMap<Address, String> = spec
        .mailboxes
        .iter()
        .map(|m| (Address::of(&m.address), "spec.mailboxes".to_owned()))
        .collect();
    for r in &rows {
        if let Some(other) = seen.insert(Address::of(&r.address), from.to_string()) {
            return Err(AccountError::Csv(format!(
                "{}: {} is also listed in {other}",
                from, r.address
            )));
        }
    }
    Ok(rows.len())
}

/// A server's token source, resolved once for all its mailboxes.
enum Tokens {
    Fixed,
    Refresh {
        endpoint: crate::oauth::Endpoint,
        client_id: String,
        client_secret: Option<Secret>,
    },
    Shared(crate::oauth::TokenSource),
    ServiceAccount {
        endpoint: crate::oauth::Endpoint,
        issuer: String,
        key: std::sync::Arc<zeroize::Zeroizing<Vec<u8>>>,
        scope: String,
    },
}

impl Tokens {
    fn of(auth: &Auth, resolver: &Resolver, side: &'static str) -> Result<Tokens, AccountError> {
        use crate::oauth::{Endpoint, Grant, ServiceAccountKey, TokenSource};
        use crate::spec::TokenSourceSpec;
        let oauth = |e: crate::oauth::OAuthError| AccountError::OAuth {
            side,
            error: e.to_string(),
        };
        let secret = |r: &SecretRef| {
            resolver
                .resolve(r)
                .map_err(|error| AccountError::SharedSecret { side, error })
        };
        Ok(match &auth.token_source {
            None => Tokens::Fixed,
            Some(TokenSourceSpec::RefreshToken {
                token_url,
                client_id,
                client_secret,
            }) => Tokens::Refresh {
                endpoint: Endpoint::new(token_url, None).map_err(oauth)?,
                client_id: client_id.clone(),
                client_secret: client_secret.as_ref().map(secret).transpose()?,
            },
            Some(TokenSourceSpec::ClientCredentials {
                token_url,
                client_id,
                client_secret,
                scope,
            }) => Tokens::Shared(TokenSource::new(Grant::ClientCredentials {
                endpoint: Endpoint::new(token_url, None).map_err(oauth)?,
                client_id: client_id.clone(),
                client_secret: secret(client_secret)?,
                scope: scope.clone(),
            })),
            Some(TokenSourceSpec::ServiceAccount {
                key,
                scope,
                token_url,
            }) => {
                let file = ServiceAccountKey::parse(secret(key)?.expose()).map_err(oauth)?;
                let url = token_url
                    .clone()
                    .or_else(|| file.token_uri.clone())
                    .unwrap_or_else(|| "https://oauth2.googleapis.com/token".into());
                Tokens::ServiceAccount {
                    endpoint: Endpoint::new(&url, None).map_err(oauth)?,
                    issuer: file.client_email.clone(),
                    key: file.der().map_err(oauth)?,
                    scope: scope.clone(),
                }
            }
        })
    }
}

/// The master password or shared token of a server, if its method uses one.
fn shared(
    auth: &Auth,
    resolver: &Resolver,
    side: &'static str,
) -> Result<Option<Secret>, AccountError> {
    auth.password
        .as_ref()
        .map(|r| resolver.resolve(r))
        .transpose()
        .map_err(|error| AccountError::SharedSecret { side, error })
}

fn login(
    auth: &Auth,
    tokens: &Tokens,
    shared: Option<&Secret>,
    user: String,
    own: Option<Secret>,
    address: &str,
    side: &'static str,
) -> Result<Login, AccountError> {
    let missing = |method| AccountError::NoPassword {
        address: address.to_owned(),
        side,
        method,
    };
    Ok(match auth.method {
        AuthMethod::Password => Login::Password {
            user,
            password: own.ok_or_else(|| missing("password"))?,
        },
        AuthMethod::Master => Login::Master {
            user,
            master_user: auth.user.clone().unwrap_or_default(),
            master_password: shared.cloned().ok_or_else(|| missing("master"))?,
        },
        AuthMethod::Xoauth2 | AuthMethod::Oauthbearer => {
            let token = match tokens {
                Tokens::Fixed => crate::oauth::TokenSource::fixed(
                    own.or_else(|| shared.cloned())
                        .ok_or_else(|| missing("xoauth2"))?,
                ),
                Tokens::Refresh {
                    endpoint,
                    client_id,
                    client_secret,
                } => crate::oauth::TokenSource::new(crate::oauth::Grant::RefreshToken {
                    endpoint: endpoint.clone(),
                    client_id: client_id.clone(),
                    client_secret: client_secret.clone(),
                    refresh_token: own
                        .or_else(|| shared.cloned())
                        .ok_or_else(|| missing("xoauth2 refresh token"))?,
                }),
                // One app-only token, shared (and renewed once) for every mailbox.
                Tokens::Shared(source) => source.clone(),
                Tokens::ServiceAccount {
                    endpoint,
                    issuer,
                    key,
                    scope,
                } => crate::oauth::TokenSource::new(crate::oauth::Grant::ServiceAccount {
                    endpoint: endpoint.clone(),
                    issuer: issuer.clone(),
                    key: key.clone(),
                    scope: scope.clone(),
                    subject: user.clone(),
                }),
            };
            Login::OAuth2 {
                user,
                token,
                mechanism: if auth.method == AuthMethod::Oauthbearer {
                    OAuthMechanism::Oauthbearer
                } else {
                    OAuthMechanism::Xoauth2
                },
            }
        }
    })
}

const COLUMNS: [&str; 5] = [
    "address",
    "sourceUser",
    "destinationUser",
    "sourcePassword",
    "destinationPassword",
];

/// Parse the CSV of `mailboxesFrom`; errors name the line and column, never a password.
fn parse_csv(text: &str, origin: &str) -> Result<Vec<Row>, AccountError> {
    let err = |msg: String| AccountError::Csv(format!("{origin}: {msg}"));
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .comment(Some(b'#'))
        .from_reader(text.as_bytes());
    // No message quotes a field that may hold a secret: with a quote left open, one field
    // runs over the rows after it, passwords included. Only the header's names, when they
    // look like names, are shown.
    let headers = reader
        .headers()
        .map_err(|_| err("header row: malformed (is a quote not closed?)".into()))?
        .clone();
    let mut index = HashMap::new();
    for (i, h) in headers.iter().enumerate() {
        if !COLUMNS.contains(&h) {
            let shown = if h.len() <= 40
                && h.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                format!("`{h}`")
            } else {
                format!(
                    "number {} (not shown: a column name runs over several fields or lines; is a quote not closed?)",
                    i + 1
                )
            };
            return Err(err(format!(
                "unknown column {shown} (expected {})",
                COLUMNS.join(", ")
            )));
        }
        index.insert(h.to_owned(), i);
    }
    if !index.contains_key("address") {
        return Err(err("no `address` column in the header row".into()));
    }
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| {
            let line = e.position().map_or(0, |p| p.line());
            // csv's own message may quote the field; say only where.
            err(format!(
                "line {line}: malformed row (not as many fields as the header: is a quote not closed?)"
            ))
        })?;
        let line = record.position().map_or(0, |p| p.line());
        // No address, login or password holds a line break: a field that does swallowed the
        // rows after it (a quote not closed), and those mailboxes would vanish unseen.
        if record.iter().any(|f| f.contains(['\n', '\r'])) {
            return Err(err(format!(
                "line {line}: a field runs over several lines (is a quote not closed?)"
            )));
        }
        let get = |col: &str| {
            index
                .get(col)
                .and_then(|&i| record.get(i))
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        };
        let address = get("address").ok_or_else(|| err(format!("line {line}: empty address")))?;
        if Address::parse(&address).is_err() {
            let hint = if address.contains(['\n', '\r', ',', '"']) {
                " (it runs over several fields or lines: is a quote not closed?)"
            } else {
                ""
            };
            return Err(err(format!(
                "line {line}: the `address` field is not an email address{hint}"
            )));
        }
        rows.push(Row {
            address,
            source_user: get("sourceUser"),
            destination_user: get("destinationUser"),
            source_password: get("sourcePassword").map(Secret::new),
            destination_password: get("destinationPassword").map(Secret::new),
        });
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(yaml: &str) -> MailMigrationSpec {
        let v: serde_json::Value = serde_yaml::from_str(yaml).unwrap();
        serde_json::from_value(v).unwrap()
    }

    const BASE: &str = "
source: { imap: { host: 127.0.0.1, tls: none } }
destination:
  imap: { host: 127.0.0.1, tls: none }
  auth: { method: master, user: admin, password: { value: masterpw } }
";

    #[test]
    fn inline_and_csv_mailboxes_resolve_with_their_logins() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("list.csv"),
            "address,sourceUser,sourcePassword\n# a comment\nbob@example.com,bob,bobpw\n",
        )
        .unwrap();
        let s = spec(&format!(
            "{BASE}mailboxes:\n  - {{ address: alice@example.com, sourcePassword: {{ value: alicepw }} }}\nmailboxesFrom: {{ file: list.csv }}\n"
        ));
        let r = Resolver::for_manifest(&dir.path().join("m.yaml"));
        let accounts = resolve(&s, &r).unwrap();
        assert_eq!(accounts.len(), 2);
        assert_eq!(accounts[1].address, "bob@example.com");
        assert_eq!(accounts[1].source.user(), "bob");
        match &accounts[1].destination {
            Login::Master {
                user,
                master_user,
                master_password,
            } => {
                assert_eq!(user, "bob@example.com");
                assert_eq!(master_user, "admin");
                assert_eq!(master_password.expose(), "masterpw");
            }
            other => panic!("expected master login, got {other:?}"),
        }
        let dbg = format!("{accounts:?}");
        assert!(!dbg.contains("bobpw") && !dbg.contains("masterpw") && !dbg.contains("alicepw"));
    }

    #[test]
    fn csv_errors_name_the_line_and_never_the_password() {
        let e = parse_csv(
            "address,sourcePassword\nnot-an-address,topsecret\n",
            "file x.csv",
        )
        .err()
        .unwrap();
        let msg = e.to_string();
        assert!(msg.contains("line 2"), "{msg}");
        assert!(!msg.contains("topsecret"), "{msg}");
        let e = parse_csv("mail,password\n", "file x.csv").err().unwrap();
        assert!(e.to_string().contains("unknown column `mail`"));
        // A quote left open swallows the rows after it, passwords included.
        for text in [
            "address,sourcePassword,destinationPassword\n\"alice@example.com,pw-a1,pw-a2\nbob@example.com,pw-b1,pw-b2\n",
            "address,sourcePassword\nalice@example.com,\"pw-a1\nbob@example.com,pw-b1\n",
            "address,\"sourcePassword\nalice@example.com,pw-a1\n",
        ] {
            let msg = match parse_csv(text, "file x.csv") {
                Err(e) => e.to_string(),
                Ok(rows) => panic!("{} rows from {text:?}", rows.len()),
            };
            assert!(!msg.contains("pw-"), "{msg}");
            assert!(msg.contains("quote"), "{msg}");
        }
    }

    #[test]
    fn duplicates_across_list_and_csv_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("l.csv"),
            "address,sourcePassword\nALICE@example.com,x\n",
        )
        .unwrap();
        let s = spec(&format!(
            "{BASE}mailboxes:\n  - {{ address: alice@example.com, sourcePassword: {{ value: p }} }}\nmailboxesFrom: {{ file: l.csv }}\n"
        ));
        let e = resolve(&s, &Resolver::for_manifest(&dir.path().join("m.yaml"))).unwrap_err();
        assert!(e.to_string().contains("listed twice"), "{e}");
    }
}
