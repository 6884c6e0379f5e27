//! A MySQL or MariaDB user table (mysql_async): read with `accountsQuery`, written with
//! `insertAccount` and `updatePassword` in one transaction, parameters named `:user`,
//! `:password`, `:local`, `:domain`. The connection string is a secret and never appears in
//! an error; TLS checks the certificate (the built-in roots, or `caCertificate`).

use mysql_async::prelude::Queryable;

use super::{AliasRow, DirectoryError, Row, alias_map, passwd};
use crate::secrets::Resolver;
use crate::spec::{SqlDatabase, SqlTls};

/// postfixadmin's queries.
const ACCOUNTS: &str = "SELECT username, password FROM mailbox";
const INSERT: &str = "INSERT INTO mailbox (username, password, name, maildir, local_part, domain, created, modified, active) \
     VALUES (:user, :password, '', CONCAT(:domain, '/', :local, '/'), :local, :domain, NOW(), NOW(), 1)";
const UPDATE: &str =
    "UPDATE mailbox SET password = :password, modified = NOW() WHERE username = :user";
const ALIASES: &str = "SELECT address, goto FROM alias";
const INSERT_ALIAS: &str = "INSERT INTO alias (address, goto, domain, created, modified, active) \
     VALUES (:address, :goto, :domain, NOW(), NOW(), 1)";
const UPDATE_ALIAS: &str =
    "UPDATE alias SET goto = :goto, modified = NOW() WHERE address = :address";

async fn connect(
    db: &SqlDatabase,
    resolver: &Resolver,
) -> Result<mysql_async::Conn, DirectoryError> {
    let url = resolver
        .resolve(&db.url)
        .map_err(|e| DirectoryError::Invalid(format!("database url: {e}")))?;
    // The parser's message may quote the string, password and all.
    let opts = mysql_async::Opts::from_url(url.expose()).map_err(|_| {
        DirectoryError::Invalid("database url: not a MySQL connection string".into())
    })?;
    let server = format!(
        "{}:{}/{}",
        opts.ip_or_hostname(),
        opts.tcp_port(),
        opts.db_name().unwrap_or_default()
    );
    let mut builder = mysql_async::OptsBuilder::from_opts(opts);
    if db.tls == SqlTls::Require {
        let mut ssl = mysql_async::SslOpts::default();
        if let Some(r) = &db.ca_certificate {
            let pem = resolver
                .resolve(r)
                .map_err(|e| DirectoryError::Invalid(format!("caCertificate: {e}")))?;
            ssl = ssl.with_root_certs(vec![pem.expose().as_bytes().to_vec().into()]);
        }
        builder = builder.ssl_opts(ssl);
    }
    mysql_async::Conn::new(builder)
        .await
        .map_err(|e| DirectoryError::Sql {
            server,
            error: message(&e),
        })
}

/// Every account the table holds.
pub async fn read(
    db: &SqlDatabase,
    resolver: &Resolver,
) -> Result<Vec<passwd::Entry>, DirectoryError> {
    let mut conn = connect(db, resolver).await?;
    let rows: Vec<(String, Option<String>)> = conn
        .query(db.accounts_query.as_deref().unwrap_or(ACCOUNTS))
        .await
        .map_err(|e| sql_error(&e))?;
    let _ = conn.disconnect().await;
    Ok(rows
        .into_iter()
        .map(|(user, password)| passwd::Entry {
            user,
            password: password.unwrap_or_default(),
        })
        .collect())
}

/// Inserts or updates `rows`, all or none.
pub async fn write(
    db: &SqlDatabase,
    resolver: &Resolver,
    rows: &[Row<'_>],
) -> Result<(), DirectoryError> {
    let statements = rows.iter().map(|row| {
        let (local, domain) = row.user.rsplit_once('@').unwrap_or((row.user, ""));
        let query = if row.exists {
            db.update_password.as_deref().unwrap_or(UPDATE)
        } else {
            db.insert_account.as_deref().unwrap_or(INSERT)
        };
        (
            query,
            named(&[
                ("user", row.user),
                ("password", row.password),
                ("local", local),
                ("domain", domain),
            ]),
        )
    });
    run_all(db, resolver, statements.collect()).await
}

/// Every alias the table holds, with its targets.
pub async fn read_aliases(
    db: &SqlDatabase,
    resolver: &Resolver,
) -> Result<std::collections::BTreeMap<String, Vec<String>>, DirectoryError> {
    let mut conn = connect(db, resolver).await?;
    let rows: Vec<(String, Option<String>)> = conn
        .query(db.aliases_query.as_deref().unwrap_or(ALIASES))
        .await
        .map_err(|e| sql_error(&e))?;
    let _ = conn.disconnect().await;
    Ok(rows
        .into_iter()
        .map(|(address, goto)| (address, alias_map::targets(&goto.unwrap_or_default())))
        .collect())
}

/// Inserts or updates the aliases of `rows`, all or none.
pub async fn write_aliases(
    db: &SqlDatabase,
    resolver: &Resolver,
    rows: &[AliasRow],
) -> Result<(), DirectoryError> {
    let statements = rows.iter().map(|row| {
        let query = if row.exists {
            db.update_alias.as_deref().unwrap_or(UPDATE_ALIAS)
        } else {
            db.insert_alias.as_deref().unwrap_or(INSERT_ALIAS)
        };
        (
            query,
            named(&[
                ("address", &row.address),
                ("goto", &row.goto),
                ("domain", &row.domain),
            ]),
        )
    });
    run_all(db, resolver, statements.collect()).await
}

/// Runs `statements` in one transaction.
async fn run_all(
    db: &SqlDatabase,
    resolver: &Resolver,
    statements: Vec<(&str, mysql_async::Params)>,
) -> Result<(), DirectoryError> {
    let mut conn = connect(db, resolver).await?;
    let mut tx = conn
        .start_transaction(mysql_async::TxOpts::default())
        .await
        .map_err(|e| sql_error(&e))?;
    for (query, params) in statements {
        tx.exec_drop(query, params)
            .await
            .map_err(|e| sql_error(&e))?;
    }
    tx.commit().await.map_err(|e| sql_error(&e))?;
    let _ = conn.disconnect().await;
    Ok(())
}

fn named(values: &[(&str, &str)]) -> mysql_async::Params {
    mysql_async::Params::Named(
        values
            .iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), mysql_async::Value::from(*v)))
            .collect(),
    )
}

/// The server's own words, or the client's; mysql_async never puts parameter values or
/// the connection string into them.
fn message(e: &mysql_async::Error) -> String {
    match e {
        mysql_async::Error::Server(s) => s.message.clone(),
        other => other.to_string(),
    }
}

fn sql_error(e: &mysql_async::Error) -> DirectoryError {
    DirectoryError::Sql {
        server: "MySQL".into(),
        error: message(e),
    }
}
