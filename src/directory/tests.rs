use super::*;
use crate::accounts::Login;
use crate::spec::Secret;

fn spec(accounts: &str) -> MailMigrationSpec {
    // Through JSON, as the manifest loader reads: YAML's own enum form is a tag.
    let yaml: serde_json::Value = serde_yaml::from_str(&format!(
        r#"
domains: [example.com]
source: {{ imap: {{ host: 127.0.0.1, port: 1 }} }}
destination: {{ imap: {{ host: 127.0.0.1, port: 2 }} }}
mailboxes: [{{ address: a@example.com }}]
accounts:
{accounts}
"#
    ))
    .unwrap();
    serde_json::from_value(yaml).unwrap()
}

const FILES: &str =
    "  source: { passwdFile: { path: /old } }\n  destination: { passwdFile: { path: /new } }\n";

fn account(address: &str, destination_user: &str) -> Account {
    let login = |user: &str| Login::Password {
        user: user.into(),
        password: Secret::new("x"),
    };
    Account {
        address: address.into(),
        source: login(address),
        destination: login(destination_user),
    }
}

fn entry(user: &str, password: &str) -> passwd::Entry {
    passwd::Entry {
        user: user.into(),
        password: password.into(),
    }
}

fn read(source: Vec<passwd::Entry>, destination: Vec<passwd::Entry>) -> Read {
    Read {
        source_accounts: source,
        destination_accounts: destination,
        source_aliases: BTreeMap::new(),
        destination_aliases: BTreeMap::new(),
    }
}

#[test]
fn a_missing_account_gets_the_old_hash_with_its_scheme() {
    let s = spec(&format!("{FILES}  defaultScheme: MD5-CRYPT\n"));
    let c = compare(
        &s,
        &[account("a@example.com", "a"), account("b@example.com", "b")],
        &Provisioned::default(),
        &read(
            vec![
                entry("a@example.com", "$1$s$h"),
                entry("b@example.com", "{PLAIN}x"),
            ],
            vec![entry("b", "{PLAIN}x")],
        ),
    );
    assert_eq!(c.missing_accounts, ["a@example.com"]);
    assert_eq!(c.accounts.len(), 1);
    assert_eq!(c.accounts[0].user, "a");
    assert!(c.accounts[0].password == Password::Hash("{MD5-CRYPT}$1$s$h".into()));
    assert!(c.refused.is_empty());
}

#[test]
fn an_unknown_scheme_stops_or_gets_a_temporary_password() {
    let old = vec![entry("a@example.com", "{MD5-CRYPT}$1$s$h")];
    let stop = spec(&format!("{FILES}  schemes: [SHA512-CRYPT]\n"));
    let c = compare(
        &stop,
        &[account("a@example.com", "a")],
        &Provisioned::default(),
        &read(old.clone(), vec![]),
    );
    assert!(c.accounts.is_empty());
    assert_eq!(c.refused.len(), 1);
    assert!(
        c.refused[0].reason.contains("MD5-CRYPT"),
        "{}",
        c.refused[0].reason
    );
    let temp = spec(&format!(
        "{FILES}  schemes: [SHA512-CRYPT]\n  unknownScheme: temporaryPassword\n  temporaryPasswords: /tmp/x\n"
    ));
    let c = compare(
        &temp,
        &[account("a@example.com", "a")],
        &Provisioned::default(),
        &read(old, vec![]),
    );
    assert!(c.refused.is_empty());
    assert!(c.accounts[0].password == Password::Temporary);
}

#[test]
fn only_accounts_mailshift_wrote_follow_a_changed_password() {
    let s = spec(FILES);
    let a = [account("a@example.com", "a")];
    let r = read(
        vec![entry("a@example.com", "{PLAIN}new")],
        vec![entry("a", "{PLAIN}old")],
    );
    // Someone else's account: left alone.
    assert!(
        compare(&s, &a, &Provisioned::default(), &r)
            .accounts
            .is_empty()
    );
    let mut ours = Provisioned::default();
    ours.accounts.insert(Address::of("a@example.com"));
    assert_eq!(compare(&s, &a, &ours, &r).accounts.len(), 1);
    // Not under upsert-only, and never over a temporary password.
    let mut upsert = s.clone();
    upsert.policy = Policy::UpsertOnly;
    assert!(compare(&upsert, &a, &ours, &r).accounts.is_empty());
    ours.temporary.insert(Address::of("a@example.com"));
    assert!(compare(&s, &a, &ours, &r).accounts.is_empty());
}

#[test]
fn a_mailbox_the_old_database_lacks_is_refused_unless_it_exists() {
    let s = spec(FILES);
    let c = compare(
        &s,
        &[account("a@example.com", "a")],
        &Provisioned::default(),
        &read(vec![], vec![]),
    );
    assert_eq!(c.refused.len(), 1);
    let c = compare(
        &s,
        &[account("a@example.com", "a")],
        &Provisioned::default(),
        &read(vec![], vec![entry("a", "{PLAIN}x")]),
    );
    assert!(c.refused.is_empty() && c.missing_accounts.is_empty());
}

#[test]
fn aliases_of_the_domains_move_and_declared_ones_win() {
    let s = spec(&format!(
        "{FILES}  aliases:\n    source: {{ postfixMap: {{ postfix: {{}}, map: 'hash:/old/virtual' }} }}\n    destination: {{ postfixMap: {{ postfix: {{}}, map: 'hash:/new/virtual' }} }}\n    declared: [{{ address: Sales@Example.com, to: [a@example.com, c@example.org] }}]\n"
    ));
    let mut r = read(vec![], vec![]);
    r.source_aliases = alias_map::parse(
        "sales@example.com old@example.com\nall@example.com a@example.com, b@example.com\nother@example.net x@example.net\npost@example.com a@example.com\n",
    );
    r.destination_aliases = alias_map::parse("post@example.com someone@example.com\n");
    let c = compare(&s, &[], &Provisioned::default(), &r);
    let keys: Vec<&str> = c.aliases.iter().map(|(k, _, _)| k.as_str()).collect();
    // Not example.net's; not post@, which the new server has (differently: its own).
    assert_eq!(keys, ["all@example.com", "Sales@Example.com"]);
    assert_eq!(c.aliases[1].1, ["a@example.com", "c@example.org"]);
    assert_eq!(c.missing_aliases, ["all@example.com", "Sales@Example.com"]);
}

#[test]
fn temporary_passwords_hash_as_sha512_crypt() {
    use sha_crypt::PasswordVerifier;
    let p = temporary_password().unwrap();
    assert_eq!(p.len(), 20);
    let h = hash_temporary(&p).unwrap();
    let crypt = h.strip_prefix("{SHA512-CRYPT}").unwrap();
    assert!(crypt.starts_with("$6$"));
    sha_crypt::ShaCrypt::default()
        .verify_password(p.as_bytes(), crypt)
        .unwrap();
}

#[test]
fn a_field_that_would_split_a_passwd_line_is_refused() {
    let s = spec(FILES);
    let c = compare(
        &s,
        &[account("a@example.com", "a")],
        &Provisioned::default(),
        &read(vec![entry("a@example.com", "{PLAIN}x:y\nz")], vec![]),
    );
    assert!(c.accounts.is_empty());
    assert_eq!(c.refused.len(), 1, "{:?}", c.refused);
}
