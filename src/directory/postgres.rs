//! A PostgreSQL user table (tokio-postgres): read with `accountsQuery`, written with
//! `insertAccount` and `updatePassword` in one transaction. The connection string is a
//! secret and never appears in an error; TLS is checked like every other client's.

use tokio_postgres::types::ToSql;

use super::{AliasRow, DirectoryError, Row, alias_map, passwd};
use crate::secrets::Resolver;
use crate::spec::{SqlDatabase, SqlTls};

/// postfixadmin's queries.
const ACCOUNTS: &str = "SELECT username, password FROM mailbox";
const INSERT: &str = "INSERT INTO mailbox (username, password, name, maildir, local_part, domain, created, modified, active) \
     VALUES ($1, $2, '', $4 || '/' || $3 || '/', $3, $4, now(), now(), true)";
const UPDATE: &str = "UPDATE mailbox SET password = $2, modified = now() WHERE username = $1";
const ALIASES: &str = "SELECT address, goto FROM alias";
const INSERT_ALIAS: &str = "INSERT INTO alias (address, goto, domain, created, modified, active) VALUES ($1, $2, $3, now(), now(), true)";
const UPDATE_ALIAS: &str = "UPDATE alias SET goto = $2, modified = now() WHERE address = $1";

async fn connect(
    db: &SqlDatabase,
    resolver: &Resolver,
) -> Result<tokio_postgres::Client, DirectoryError> {
    let url = resolver
        .resolve(&db.url)
        .map_err(|e| DirectoryError::Invalid(format!("database url: {e}")))?;
    let config: tokio_postgres::Config = url
        .expose()
        .parse()
        // The parser's message may quote the string, password and all.
        .map_err(|_| {
            DirectoryError::Invalid("postgres url: not a PostgreSQL connection string".into())
        })?;
    let where_ = describe(&config);
    let failed = |e: tokio_postgres::Error| DirectoryError::Sql {
        server: where_.clone(),
        error: e.to_string(),
    };
    let client = match db.tls {
        SqlTls::Disable => {
            let (client, connection) = config
                .connect(tokio_postgres::NoTls)
                .await
                .map_err(failed)?;
            tokio::spawn(connection);
            client
        }
        SqlTls::Require => {
            let ca = db
                .ca_certificate
                .as_ref()
                .map(|r| resolver.resolve(r))
                .transpose()
                .map_err(|e| DirectoryError::Invalid(format!("postgres caCertificate: {e}")))?;
            let tls = crate::tls::client_config(ca.as_ref().map(|c| c.expose().as_bytes()))
                .map_err(|e| DirectoryError::Invalid(format!("postgres caCertificate: {e}")))?;
            let mut config = config;
            config.ssl_mode(tokio_postgres::config::SslMode::Require);
            let (client, connection) = config
                .connect(tokio_postgres_rustls::MakeRustlsConnect::new(tls))
                .await
                .map_err(failed)?;
            tokio::spawn(connection);
            client
        }
    };
    Ok(client)
}

/// `host:port/database` for messages, without user or password.
fn describe(config: &tokio_postgres::Config) -> String {
    let host = config
        .get_hosts()
        .first()
        .map(|h| match h {
            tokio_postgres::config::Host::Tcp(h) => h.clone(),
            tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
        })
        .unwrap_or_default();
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!("{host}:{port}/{}", config.get_dbname().unwrap_or_default())
}

/// Every account the table holds.
pub async fn read(
    db: &SqlDatabase,
    resolver: &Resolver,
) -> Result<Vec<passwd::Entry>, DirectoryError> {
    let client = connect(db, resolver).await?;
    let rows = client
        .query(db.accounts_query.as_deref().unwrap_or(ACCOUNTS), &[])
        .await
        .map_err(|e| sql_error(&e))?;
    rows.iter()
        .map(|r| {
            Ok(passwd::Entry {
                user: r.try_get(0).map_err(|e| sql_error(&e))?,
                password: r
                    .try_get::<_, Option<String>>(1)
                    .map_err(|e| sql_error(&e))?
                    .unwrap_or_default(),
            })
        })
        .collect()
}

/// Inserts or updates `rows`, all or none.
pub async fn write(
    db: &SqlDatabase,
    resolver: &Resolver,
    rows: &[Row<'_>],
) -> Result<(), DirectoryError> {
    let mut client = connect(db, resolver).await?;
    let tx = client.transaction().await.map_err(|e| sql_error(&e))?;
    let insert = tx
        .prepare(db.insert_account.as_deref().unwrap_or(INSERT))
        .await
        .map_err(|e| sql_error(&e))?;
    let update = tx
        .prepare(db.update_password.as_deref().unwrap_or(UPDATE))
        .await
        .map_err(|e| sql_error(&e))?;
    for row in rows {
        let (local, domain) = row.user.rsplit_once('@').unwrap_or((row.user, ""));
        let all: [&(dyn ToSql + Sync); 4] = [&row.user, &row.password, &local, &domain];
        let statement = if row.exists { &update } else { &insert };
        // Each query takes the first of the parameters it needs.
        let n = statement.params().len().min(all.len());
        tx.execute(statement, &all[..n])
            .await
            .map_err(|e| sql_error(&e))?;
    }
    tx.commit().await.map_err(|e| sql_error(&e))
}

/// Every alias the table holds, with its targets.
pub async fn read_aliases(
    db: &SqlDatabase,
    resolver: &Resolver,
) -> Result<std::collections::BTreeMap<String, Vec<String>>, DirectoryError> {
    let client = connect(db, resolver).await?;
    let rows = client
        .query(db.aliases_query.as_deref().unwrap_or(ALIASES), &[])
        .await
        .map_err(|e| sql_error(&e))?;
    rows.iter()
        .map(|r| {
            let address: String = r.try_get(0).map_err(|e| sql_error(&e))?;
            let goto: Option<String> = r.try_get(1).map_err(|e| sql_error(&e))?;
            Ok((address, alias_map::targets(&goto.unwrap_or_default())))
        })
        .collect()
}

/// Inserts or updates the aliases of `rows`, all or none.
pub async fn write_aliases(
    db: &SqlDatabase,
    resolver: &Resolver,
    rows: &[AliasRow],
) -> Result<(), DirectoryError> {
    let mut client = connect(db, resolver).await?;
    let tx = client.transaction().await.map_err(|e| sql_error(&e))?;
    let insert = tx
        .prepare(db.insert_alias.as_deref().unwrap_or(INSERT_ALIAS))
        .await
        .map_err(|e| sql_error(&e))?;
    let update = tx
        .prepare(db.update_alias.as_deref().unwrap_or(UPDATE_ALIAS))
        .await
        .map_err(|e| sql_error(&e))?;
    for row in rows {
        let all: [&(dyn ToSql + Sync); 3] = [&row.address, &row.goto, &row.domain];
        let statement = if row.exists { &update } else { &insert };
        let n = statement.params().len().min(all.len());
        tx.execute(statement, &all[..n])
            .await
            .map_err(|e| sql_error(&e))?;
    }
    tx.commit().await.map_err(|e| sql_error(&e))
}

/// The server's own words; tokio-postgres never puts parameter values into them.
fn sql_error(e: &tokio_postgres::Error) -> DirectoryError {
    DirectoryError::Sql {
        server: "PostgreSQL".into(),
        error: match e.as_db_error() {
            Some(db) => db.message().to_owned(),
            None => e.to_string(),
        },
    }
}
