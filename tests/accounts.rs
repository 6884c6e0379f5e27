//! `spec.accounts` between real servers: Dovecot with a passwd-file on both sides (the old
//! one's hashes made by `doveadm pw`), Postfix's virtual alias maps on both sides (the new
//! one compiled by postmap and looked up with `postmap -q`), through `mailshift plan` and
//! `mailshift apply`: the old passwords log in on the new server, a scheme the new server is
//! declared not to check gets a temporary password, aliases (one to several, one outside
//! the domain) move, an existing account is left alone, a mailbox added later and a
//! password changed on the old server follow, and a re-run changes nothing.

mod common;

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, ensure};
use common::mailshift;
use mailshift_harness::client::Imap;
use mailshift_harness::{Dovecot, Postfix};

const MASTER: &str = "mailshift-master";
const MASTER_PW: &str = "master-pw";

/// `doveadm pw` of the installed Dovecot: a hash exactly as a real server stores it.
fn hash(scheme: &str, password: &str) -> Result<String> {
    let out = Command::new("doveadm")
        .args(["-c", "/dev/null", "pw", "-s", scheme, "-p", password])
        .output()?;
    ensure!(out.status.success(), "doveadm pw: {out:?}");
    Ok(String::from_utf8(out.stdout)?.trim().to_owned())
}

fn text(out: &std::process::Output) -> String {
    format!(
        "exit {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn logs_in(d: &Dovecot, user: &str, password: &str) -> bool {
    Imap::login(d.imap_port(), user, password)
        .map(Imap::logout)
        .is_ok()
}

/// The targets `postmap -q` gives for `key` in `map` (`type:path`), as a set.
fn lookup(postfix: &Postfix, map: &str, key: &str) -> Result<Option<BTreeSet<String>>> {
    let out = Command::new("postmap")
        .arg("-c")
        .arg(postfix.config_dir())
        .args(["-q", key, map])
        .output()?;
    match out.status.code() {
        Some(0) => Ok(Some(
            String::from_utf8(out.stdout)?
                .split([',', ' ', '\n'])
                .filter(|t| !t.is_empty())
                .map(str::to_owned)
                .collect(),
        )),
        Some(1) => Ok(None),
        _ => anyhow::bail!("postmap -q {key}: {out:?}"),
    }
}

fn set(items: &[&str]) -> Option<BTreeSet<String>> {
    Some(items.iter().map(|s| (*s).to_owned()).collect())
}

/// A passwd-file's line for `user`.
fn line(path: &Path, user: &str) -> Result<Option<String>> {
    Ok(std::fs::read_to_string(path)?
        .lines()
        .find(|l| l.split(':').next() == Some(user))
        .map(str::to_owned))
}

struct Setup {
    src: Dovecot,
    dst: Dovecot,
    postfix: Postfix,
    dir: tempfile::TempDir,
    old_aliases: std::path::PathBuf,
    new_map: String,
}

fn manifest(s: &Setup, mailboxes: &[(&str, &str)]) -> String {
    let boxes: String = mailboxes
        .iter()
        .map(|(a, pw)| format!("    - address: {a}\n      sourcePassword: {{ value: {pw} }}\n"))
        .collect();
    format!(
        "apiVersion: mailshift.io/v1alpha1
kind: MailMigration
metadata:
  name: accounts
spec:
  domains: [example.com]
  source:
    imap: {{ host: 127.0.0.1, port: {src}, tls: none }}
  destination:
    imap: {{ host: 127.0.0.1, port: {dst}, tls: none }}
    auth: {{ method: master, user: {MASTER}, password: {{ value: {MASTER_PW} }} }}
  mailboxes:
{boxes}  accounts:
    source: {{ passwdFile: {{ path: {src_db} }} }}
    destination: {{ passwdFile: {{ path: {dst_db} }} }}
    schemes: [SHA512-CRYPT, SHA256-CRYPT, PLAIN]
    unknownScheme: temporaryPassword
    temporaryPasswords: {temporary}
    aliases:
      source: {{ postfixMap: {{ postfix: {{ configDir: {cfg} }}, map: 'hash:{old}' }} }}
      destination: {{ postfixMap: {{ postfix: {{ configDir: {cfg} }}, map: '{new}' }} }}
      declared:
        - {{ address: team@example.com, to: [alice@example.com, carol@example.com] }}
",
        src = s.src.imap_port(),
        dst = s.dst.imap_port(),
        src_db = s.src.passwd_path().display(),
        dst_db = s.dst.passwd_path().display(),
        temporary = s.dir.path().join("temporary").display(),
        cfg = s.postfix.config_dir().display(),
        old = s.old_aliases.display(),
        new = s.new_map,
    )
}

fn setup() -> Result<Setup> {
    let src = Dovecot::builder()
        .name("accounts-src")
        .master_user(MASTER, MASTER_PW)
        .user_with_hash("alice@example.com", &hash("SHA512-CRYPT", "alice-pw")?)
        .user_with_hash("bob@example.com", &hash("SHA256-CRYPT", "bob-pw")?)
        .user_with_hash("carol@example.com", &hash("MD5-CRYPT", "carol-pw")?)
        .extra_config("mail_fsync = never")
        .start()?;
    // The new server knows bob already (someone made his account by hand) and an account
    // outside the migration.
    let dst = Dovecot::builder()
        .name("accounts-dst")
        .user("bob@example.com", "bob-on-new")
        .user("erin@example.com", "erin-pw")
        .master_user(MASTER, MASTER_PW)
        .extra_config("mail_fsync = never")
        .start()?;
    let dir = tempfile::tempdir()?;
    let old_aliases = dir.path().join("old-virtual");
    std::fs::write(
        &old_aliases,
        "# the old server's aliases\n\
         sales@example.com alice@example.com,\n    bob@example.com\n\
         ext@example.com someone@example.org\n\
         other@example.net x@example.net\n",
    )?;
    let maps = tempfile::tempdir()?;
    let new_path = maps.path().join("virtual");
    std::fs::write(&new_path, "postmaster@example.com erin@example.com\n")?;
    let new_map = format!("hash:{}", new_path.display());
    let postfix = Postfix::builder()
        .name("accounts-new")
        .setting("virtual_alias_maps", &new_map)
        .start()?;
    Command::new("postmap")
        .arg("-c")
        .arg(postfix.config_dir())
        .arg(&new_map)
        .status()?;
    // The old server's table is compiled, and its text carries an edit not compiled yet:
    // Postfix resolves with the compiled one, so that one is the truth.
    let compiled = Command::new("postmap")
        .arg("-c")
        .arg(postfix.config_dir())
        .arg(format!("hash:{}", old_aliases.display()))
        .status()?;
    anyhow::ensure!(compiled.success(), "postmap of the old aliases");
    std::fs::write(
        &old_aliases,
        "# an edit not compiled yet\n\
         ext@example.com someone@example.org\n\
         other@example.net x@example.net\n",
    )?;
    // The map's directory lives as long as the test.
    std::mem::forget(maps);
    src.save(
        "alice@example.com",
        "INBOX",
        &common::message("a1", "hello", "one"),
    )?;
    Ok(Setup {
        src,
        dst,
        postfix,
        dir,
        old_aliases,
        new_map,
    })
}

#[test]
fn accounts_and_aliases_are_carried_and_the_old_passwords_log_in_on_the_new_server() -> Result<()> {
    let s = setup()?;
    // The built-in list of schemes is the installed Dovecot's own.
    let listed = Command::new("doveadm")
        .args(["-c", "/dev/null", "pw", "-l"])
        .output()?;
    let listed: BTreeSet<String> = String::from_utf8(listed.stdout)?
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    for scheme in mailshift::directory::scheme::DOVECOT {
        assert!(
            listed.contains(*scheme),
            "{scheme} is not in doveadm pw -l: {listed:?}"
        );
    }

    let src_db_before = std::fs::read(s.src.passwd_path())?;
    let old_aliases_before = std::fs::read(&s.old_aliases)?;
    let bob_before = line(&s.dst.passwd_path(), "bob@example.com")?;
    let mailboxes = [
        ("alice@example.com", "alice-pw"),
        ("bob@example.com", "bob-pw"),
        ("carol@example.com", "carol-pw"),
    ];
    std::fs::write(s.dir.path().join("m.yaml"), manifest(&s, &mailboxes))?;

    // The first step writes the accounts and aliases; nothing else may go first.
    let out = mailshift(s.dir.path(), &["plan", "-f", "m.yaml", "-o", "json"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let first = &plan[0]["plan"]["steps"][0]["step"];
    assert_eq!(first["kind"], "provisionAccounts", "{plan:#}");
    assert_eq!(
        first["accounts"],
        serde_json::json!(["alice@example.com", "carol@example.com"]),
        "bob exists on the new server: {plan:#}"
    );
    assert_eq!(
        first["aliases"],
        serde_json::json!(["ext@example.com", "sales@example.com", "team@example.com"]),
        "{plan:#}"
    );

    let out = mailshift(s.dir.path(), &["apply", "-f", "m.yaml"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let log = text(&out);

    // The hash moved as it was; the old password logs in on the new server.
    assert_eq!(
        line(&s.dst.passwd_path(), "alice@example.com")?.unwrap(),
        format!(
            "alice@example.com:{}::::::",
            line(&s.src.passwd_path(), "alice@example.com")?
                .unwrap()
                .split(':')
                .nth(1)
                .unwrap()
        )
    );
    assert!(logs_in(&s.dst, "alice@example.com", "alice-pw"));
    // Bob's account on the new server was not mailshift's: untouched.
    assert_eq!(line(&s.dst.passwd_path(), "bob@example.com")?, bob_before);
    assert!(logs_in(&s.dst, "bob@example.com", "bob-on-new"));
    assert!(line(&s.dst.passwd_path(), "erin@example.com")?.is_some());

    // Carol's MD5-CRYPT is not among the new server's schemes: a temporary password, in
    // the 0600 file only.
    let temporary = s.dir.path().join("temporary");
    let mode = std::fs::metadata(&temporary)?.permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let written = std::fs::read_to_string(&temporary)?;
    let carol = written
        .lines()
        .find_map(|l| l.strip_prefix("carol@example.com:"))
        .context("carol's temporary password")?
        .to_owned();
    assert!(
        !log.contains(&carol),
        "a temporary password is never logged"
    );
    assert!(!logs_in(&s.dst, "carol@example.com", "carol-pw"));
    assert!(logs_in(&s.dst, "carol@example.com", &carol));
    assert!(
        line(&s.dst.passwd_path(), "carol@example.com")?
            .unwrap()
            .contains("{SHA512-CRYPT}$6$")
    );

    // The domain's aliases, as the new Postfix resolves them; not another domain's; the
    // new server's own entry kept.
    let map = &s.new_map;
    assert_eq!(
        lookup(&s.postfix, map, "sales@example.com")?,
        set(&["alice@example.com", "bob@example.com"])
    );
    assert_eq!(
        lookup(&s.postfix, map, "ext@example.com")?,
        set(&["someone@example.org"]),
        "a target outside the domain stays as it is"
    );
    assert_eq!(
        lookup(&s.postfix, map, "team@example.com")?,
        set(&["alice@example.com", "carol@example.com"])
    );
    assert_eq!(lookup(&s.postfix, map, "other@example.net")?, None);
    assert_eq!(
        lookup(&s.postfix, map, "postmaster@example.com")?,
        set(&["erin@example.com"])
    );

    // The mail went too, into the account just made (read as alice, with her password).
    let copied = common::messages(&s.dst, "INBOX")?;
    assert_eq!(copied.len(), 1);
    assert_eq!(copied[0].subject(), "hello");

    // `verify` logs in with each user's password (carol's temporary one) and looks each
    // alias up; bob's hand-made account has another password than his old one: reported.
    let out = mailshift(s.dir.path(), &["verify", "-f", "m.yaml", "-o", "json"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let verdicts = report["accounts"].as_array().context("accounts verdicts")?;
    let state = |field: &str, name: &str| {
        verdicts
            .iter()
            .find(|v| v[field] == name)
            .map(|v| v["state"].as_str().unwrap_or_default().to_owned())
    };
    assert_eq!(
        state("mailbox", "alice@example.com").as_deref(),
        Some("logsIn"),
        "{report:#}"
    );
    assert_eq!(
        state("mailbox", "carol@example.com").as_deref(),
        Some("logsIn"),
        "{report:#}"
    );
    assert_eq!(
        state("mailbox", "bob@example.com").as_deref(),
        Some("refused"),
        "{report:#}"
    );
    for alias in ["sales@example.com", "ext@example.com", "team@example.com"] {
        assert_eq!(
            state("alias", alias).as_deref(),
            Some("resolves"),
            "{report:#}"
        );
    }
    assert!(
        !text(&out).contains(&carol),
        "verify does not print passwords"
    );

    // The old server is only read.
    assert_eq!(std::fs::read(s.src.passwd_path())?, src_db_before);
    assert_eq!(std::fs::read(&s.old_aliases)?, old_aliases_before);

    // Nothing left to do.
    let dst_db = std::fs::read(s.dst.passwd_path())?;
    let out = mailshift(s.dir.path(), &["plan", "-f", "m.yaml", "-o", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = mailshift(s.dir.path(), &["apply", "-f", "m.yaml"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(
        std::fs::read(s.dst.passwd_path())?,
        dst_db,
        "a re-run writes nothing"
    );

    // Alice changes her password on the old server, and dave joins: both follow; carol's
    // temporary password is not overwritten.
    s.src.add_user("alice@example.com", "alice-new")?;
    s.src.add_user("dave@example.com", "dave-pw")?;
    let mut later = mailboxes.to_vec();
    later[0].1 = "alice-new";
    later.push(("dave@example.com", "dave-pw"));
    std::fs::write(s.dir.path().join("m.yaml"), manifest(&s, &later))?;
    let out = mailshift(s.dir.path(), &["apply", "-f", "m.yaml"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(logs_in(&s.dst, "alice@example.com", "alice-new"));
    assert!(logs_in(&s.dst, "dave@example.com", "dave-pw"));
    assert!(logs_in(&s.dst, "carol@example.com", &carol));
    assert_eq!(line(&s.dst.passwd_path(), "bob@example.com")?, bob_before);
    Ok(())
}

/// postfixadmin's `mailbox` table, as its PostgreSQL schema makes it.
const MAILBOX_TABLE: &str = "CREATE TABLE mailbox (
    username varchar(255) PRIMARY KEY,
    password varchar(255) NOT NULL,
    name varchar(255) NOT NULL DEFAULT '',
    maildir varchar(255) NOT NULL DEFAULT '',
    quota bigint NOT NULL DEFAULT 0,
    local_part varchar(255) NOT NULL,
    domain varchar(255) NOT NULL,
    created timestamp with time zone NOT NULL DEFAULT now(),
    modified timestamp with time zone NOT NULL DEFAULT now(),
    active boolean NOT NULL DEFAULT true
);
CREATE TABLE alias (
    address varchar(255) PRIMARY KEY,
    goto text NOT NULL,
    domain varchar(255) NOT NULL,
    created timestamp with time zone NOT NULL DEFAULT now(),
    modified timestamp with time zone NOT NULL DEFAULT now(),
    active boolean NOT NULL DEFAULT true
)";

/// A new server whose accounts live in an SQL table (postfixadmin's `mailbox`).
struct SqlCase<'a> {
    /// Dovecot's driver name and the manifest's section name.
    driver: &'a str,
    kind: &'a str,
    port: u16,
    url: String,
    /// Runs a query; rows as `a|b|c` lines.
    query: &'a dyn Fn(&str) -> Result<String>,
}

#[test]
fn accounts_go_into_a_postgresql_user_table_the_new_dovecot_logs_in_from() -> Result<()> {
    let pg = mailshift_harness::Postgres::start()?;
    pg.create_database("mail", "mailuser", "mail-db-pw")?;
    pg.psql("mail", &format!("SET ROLE mailuser; {MAILBOX_TABLE}"))?;
    pg.psql(
        "mail",
        "INSERT INTO mailbox (username, password, local_part, domain) VALUES ('erin@example.com', '{PLAIN}erin-pw', 'erin', 'example.com')",
    )?;
    carried_into_sql(SqlCase {
        driver: "pgsql",
        kind: "postgres",
        port: pg.port(),
        url: pg.url("mail", "mailuser", "mail-db-pw"),
        query: &|sql| pg.psql("mail", sql),
    })
}

/// postfixadmin's `mailbox` table, as its MySQL schema makes it.
const MYSQL_MAILBOX_TABLE: &str = "CREATE TABLE mail.mailbox (
    username varchar(255) NOT NULL PRIMARY KEY,
    password varchar(255) NOT NULL,
    name varchar(255) NOT NULL DEFAULT '',
    maildir varchar(255) NOT NULL DEFAULT '',
    quota bigint NOT NULL DEFAULT 0,
    local_part varchar(255) NOT NULL,
    domain varchar(255) NOT NULL,
    created datetime NOT NULL DEFAULT CURRENT_TIMESTAMP,
    modified datetime NOT NULL DEFAULT CURRENT_TIMESTAMP,
    active tinyint(1) NOT NULL DEFAULT 1
);
CREATE TABLE mail.alias (
    address varchar(255) NOT NULL PRIMARY KEY,
    goto text NOT NULL,
    domain varchar(255) NOT NULL,
    created datetime NOT NULL DEFAULT CURRENT_TIMESTAMP,
    modified datetime NOT NULL DEFAULT CURRENT_TIMESTAMP,
    active tinyint(1) NOT NULL DEFAULT 1
)";

#[test]
fn accounts_go_into_a_mariadb_user_table_the_new_dovecot_logs_in_from() -> Result<()> {
    let db = mailshift_harness::MariaDb::start()?;
    db.create_database("mail", "mailuser", "mail-db-pw")?;
    db.sql(MYSQL_MAILBOX_TABLE)?;
    db.sql(
        "INSERT INTO mail.mailbox (username, password, local_part, domain) VALUES ('erin@example.com', '{PLAIN}erin-pw', 'erin', 'example.com')",
    )?;
    carried_into_sql(SqlCase {
        driver: "mysql",
        kind: "mysql",
        port: db.port(),
        url: db.url("mail", "mailuser", "mail-db-pw"),
        query: &|sql| Ok(db.sql(&format!("USE mail; {sql}"))?.replace('\t', "|")),
    })
}

fn carried_into_sql(case: SqlCase<'_>) -> Result<()> {
    let dir = tempfile::tempdir()?;
    // The new Dovecot's accounts live in the table (users unknown to its passwd-file).
    let sql_conf = dir.path().join("dovecot-sql.conf.ext");
    std::fs::write(
        &sql_conf,
        format!(
            "driver = {}\nconnect = host=127.0.0.1 port={} dbname=mail user=mailuser password=mail-db-pw\n\
             default_pass_scheme = SHA512-CRYPT\n\
             password_query = SELECT username AS user, password FROM mailbox WHERE username = '%u' AND active\n",
            case.driver, case.port
        ),
    )?;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))?;
    std::fs::set_permissions(&sql_conf, std::fs::Permissions::from_mode(0o644))?;
    let homes = dir.path().join("homes");
    std::fs::create_dir(&homes)?;
    ensure!(
        Command::new("chown")
            .args(["dovecot:dovecot"])
            .arg(&homes)
            .status()?
            .success()
    );
    let dst = Dovecot::builder()
        .name(&format!("accounts-{}", case.driver))
        .master_user(MASTER, MASTER_PW)
        .extra_config(&format!(
            "mail_fsync = never\npassdb {{\n  driver = sql\n  args = {}\n}}\nuserdb {{\n  driver = static\n  args = uid=dovecot gid=dovecot home={}/%u\n}}\n",
            sql_conf.display(),
            homes.display()
        ))
        .start()?;
    assert!(
        logs_in(&dst, "erin@example.com", "erin-pw"),
        "the table is the new server's user database"
    );
    let src = Dovecot::builder()
        .name(&format!("accounts-{}-src", case.driver))
        .user_with_hash("alice@example.com", &hash("SHA512-CRYPT", "alice-pw")?)
        .extra_config("mail_fsync = never")
        .start()?;
    src.save(
        "alice@example.com",
        "INBOX",
        &common::message("p1", "from pg", "one"),
    )?;
    let src_db = std::fs::read(src.passwd_path())?;
    let url = case.url.clone();
    let manifest = format!(
        "apiVersion: mailshift.io/v1alpha1
kind: MailMigration
metadata:
  name: accounts-sql
spec:
  domains: [example.com]
  source:
    imap: {{ host: 127.0.0.1, port: {src}, tls: none }}
  destination:
    imap: {{ host: 127.0.0.1, port: {dst}, tls: none }}
    auth: {{ method: master, user: {MASTER}, password: {{ value: {MASTER_PW} }} }}
  mailboxes:
    - address: alice@example.com
      sourcePassword: {{ value: alice-pw }}
  accounts:
    source: {{ passwdFile: {{ path: {src_db_path} }} }}
    destination: {{ {kind}: {{ url: {{ value: '{url}' }}, tls: disable }} }}
    aliases:
      destination: {{ {kind}: {{ url: {{ value: '{url}' }}, tls: disable }} }}
      declared:
        - {{ address: team@example.com, to: [alice@example.com, erin@example.org] }}
",
        kind = case.kind,
        src = src.imap_port(),
        dst = dst.imap_port(),
        src_db_path = src.passwd_path().display(),
    );
    std::fs::write(dir.path().join("m.yaml"), manifest)?;
    let out = mailshift(dir.path(), &["apply", "-f", "m.yaml"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        !text(&out).contains("mail-db-pw"),
        "the connection string is a secret"
    );

    // The row as postfixadmin would have made it, with the old hash.
    let row = (case.query)(
        "SELECT username, password, maildir, local_part, domain FROM mailbox WHERE username = 'alice@example.com'",
    )?;
    let old_hash = line(&src.passwd_path(), "alice@example.com")?
        .unwrap()
        .split(':')
        .nth(1)
        .unwrap()
        .to_owned();
    assert_eq!(
        row.trim(),
        format!("alice@example.com|{old_hash}|example.com/alice/|alice|example.com")
    );
    assert!(logs_in(&dst, "alice@example.com", "alice-pw"));
    let copied = common::messages(&dst, "INBOX")?;
    assert_eq!(copied.len(), 1);
    // The alias, in postfixadmin's `alias` table.
    assert_eq!(
        (case.query)("SELECT address, goto, domain FROM alias")?.trim(),
        "team@example.com|alice@example.com,erin@example.org|example.com"
    );
    let out = mailshift(dir.path(), &["verify", "-f", "m.yaml", "-o", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(
        report["accounts"],
        serde_json::json!([
            { "state": "logsIn", "mailbox": "alice@example.com" },
            { "state": "resolves", "alias": "team@example.com" },
        ]),
        "{report:#}"
    );

    // A re-run writes nothing; the table's own account and the old server are untouched.
    let before =
        (case.query)("SELECT username, password, modified FROM mailbox ORDER BY username")?;
    let out = mailshift(dir.path(), &["apply", "-f", "m.yaml"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(
        (case.query)("SELECT username, password, modified FROM mailbox ORDER BY username")?,
        before
    );
    assert!(before.contains("erin@example.com|{PLAIN}erin-pw|"));
    assert_eq!(std::fs::read(src.passwd_path())?, src_db);

    // A wrong database password is a clear error that does not echo the connection string.
    let wrong = url.replace("mail-db-pw", "not-the-pw");
    let bad = std::fs::read_to_string(dir.path().join("m.yaml"))?.replace(&url, &wrong);
    std::fs::write(dir.path().join("bad.yaml"), bad)?;
    let out = mailshift(dir.path(), &["plan", "-f", "bad.yaml"]);
    let t = text(&out);
    assert!(t.contains("127.0.0.1"), "{t}");
    assert!(!t.contains("not-the-pw"), "{t}");
    Ok(())
}

/// `accounts.discover`: no mailbox listed; the old passwd-file's accounts are the
/// migration's mailboxes, carried with their hashes and copied through master logins, and
/// an account added on the old server later joins the next run.
#[test]
fn accounts_discovered_on_the_old_server_are_migrated_without_a_mailbox_list() -> Result<()> {
    let s = setup()?;
    let listed = manifest(&s, &[]);
    let discovering = listed
        .replace("  mailboxes:\n", "  mailboxes: []\n")
        .replace("  accounts:\n", "  accounts:\n    discover: true\n");
    // The old server is read through its master user too.
    let src_imap = format!(
        "    imap: {{ host: 127.0.0.1, port: {}, tls: none }}\n",
        s.src.imap_port()
    );
    let discovering = discovering.replacen(
        &src_imap,
        &format!("{src_imap}    auth: {{ method: master, user: {MASTER}, password: {{ value: {MASTER_PW} }} }}\n"),
        1,
    );
    assert!(discovering.contains("discover: true"), "{discovering}");
    std::fs::write(s.dir.path().join("m.yaml"), &discovering)?;
    let out = mailshift(s.dir.path(), &["validate", "m.yaml"]);
    assert!(out.status.success(), "{}", text(&out));

    let out = mailshift(s.dir.path(), &["plan", "-f", "m.yaml", "-o", "json"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let first = &plan[0]["plan"]["steps"][0]["step"];
    assert_eq!(first["kind"], "provisionAccounts", "{plan:#}");
    assert_eq!(
        first["accounts"],
        serde_json::json!(["alice@example.com", "carol@example.com"]),
        "every old account but bob, whom the new server has: {plan:#}"
    );
    let out = mailshift(s.dir.path(), &["apply", "-f", "m.yaml"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(line(&s.dst.passwd_path(), "alice@example.com")?.is_some());
    let mut alice = Imap::login(s.dst.imap_port(), "alice@example.com", "alice-pw")?;
    let (status, _) = alice.command_status("STATUS INBOX (MESSAGES)")?;
    alice.logout();
    assert!(
        status.iter().any(|u| u.text.contains("MESSAGES 1")),
        "alice's mail was copied, and her old password logs in on the new server: {status:?} {}",
        text(&out)
    );
    // Dave's account appears on the old server: the next run carries him too.
    let dave = format!(
        "dave@example.com:{}::::::\n",
        hash("SHA512-CRYPT", "dave-pw")?
    );
    let mut db = std::fs::read_to_string(s.src.passwd_path())?;
    db.push_str(&dave);
    std::fs::write(s.src.passwd_path(), db)?;
    let out = mailshift(s.dir.path(), &["apply", "-f", "m.yaml"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        line(&s.dst.passwd_path(), "dave@example.com")?.is_some(),
        "{}",
        text(&out)
    );
    Ok(())
}
