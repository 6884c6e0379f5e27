//! What mailshift does over an authenticated connection, split by side: the source can
//! only be read ([`SourceSession`] has no method that writes), the destination is written.

use std::fmt;

use chrono::{DateTime, FixedOffset};
use futures::{StreamExt, TryStreamExt};
use imap_proto::{NameAttribute, Response, Status};
use tokio::io::AsyncWriteExt;

use super::conn::Connection;
use super::folder_names::Role;
use super::mutf7;

/// An IMAP operation failed. `Refused` is the server's NO for one item (skip it and go on);
/// `Io`/`Protocol` mean the connection is gone or unusable (reconnect and retry).
#[derive(Debug, thiserror::Error)]
pub enum ImapError {
    #[error("{what}: refused by the server: {reason}")]
    Refused { what: String, reason: String },
    #[error("{what}: connection lost: {error}")]
    Io { what: String, error: std::io::Error },
    #[error("{what}: {reason}")]
    Protocol { what: String, reason: String },
}

impl ImapError {
    fn from_imap(what: impl Into<String>, e: async_imap::error::Error) -> Self {
        let what = what.into();
        match e {
            async_imap::error::Error::No(reason) | async_imap::error::Error::Bad(reason) => {
                ImapError::Refused { what, reason }
            }
            async_imap::error::Error::Io(error) => ImapError::Io { what, error },
            async_imap::error::Error::ConnectionLost => ImapError::Io {
                what,
                error: std::io::Error::new(std::io::ErrorKind::ConnectionAborted, "closed"),
            },
            other => ImapError::Protocol {
                what,
                reason: other.to_string(),
            },
        }
    }

    /// The connection cannot be used any more.
    pub fn is_connection_lost(&self) -> bool {
        matches!(self, ImapError::Io { .. } | ImapError::Protocol { .. })
    }
}

/// A folder as LIST shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListedFolder {
    /// Decoded name (modified UTF-7 undone), with the server's own delimiter.
    pub name: String,
    /// The name as the server spells it on the wire, for commands.
    pub wire: String,
    pub delimiter: Option<char>,
    /// SPECIAL-USE role, if the server says.
    pub special_use: Option<Role>,
    /// `\Noselect` or `\NonExistent`: a hierarchy level holding no messages.
    pub selectable: bool,
    pub subscribed: bool,
}

/// STATUS of a folder: enough to tell whether anything changed since the last pass.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FolderStatus {
    pub messages: u32,
    pub uid_next: Option<u32>,
    pub uid_validity: Option<u32>,
    pub highest_modseq: Option<u64>,
}

/// What is fetched of every message to identify it and compare it, without its body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessageMeta {
    pub uid: u32,
    /// System flags (`\Seen`, ...) and keywords, `\Recent` left out (the server sets it).
    pub flags: Vec<String>,
    pub internal_date: Option<DateTime<FixedOffset>>,
    pub size: u32,
    /// The identifying header fields (Message-ID, Date, From, To, Subject), raw.
    pub header: Vec<u8>,
}

/// A message ready to append: the exact bytes, flags and INTERNALDATE of the source's copy.
#[derive(Clone, PartialEq, Eq)]
pub struct Outgoing {
    pub flags: Vec<String>,
    pub internal_date: Option<DateTime<FixedOffset>>,
    pub body: Vec<u8>,
}

impl fmt::Debug for Outgoing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Outgoing")
            .field("flags", &self.flags)
            .field("internal_date", &self.internal_date)
            .field("size", &self.body.len())
            .finish()
    }
}

/// The fetch items that identify a message (see [`MessageMeta`]).
const META_ITEMS: &str = "(UID FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK[HEADER.FIELDS (MESSAGE-ID DATE FROM TO SUBJECT)])";

/// Read-only operations, shared by both sides.
async fn list(conn: &mut Connection) -> Result<Vec<ListedFolder>, ImapError> {
    // RFC 6154 lets servers leave special-use attributes out of a plain LIST; ask for them
    // where the server understands the request.
    let pattern = if conn.has("LIST-EXTENDED") && conn.has("SPECIAL-USE") {
        "* RETURN (SPECIAL-USE)"
    } else {
        "*"
    };
    let names: Vec<async_imap::types::Name> = conn
        .session
        .list(Some(""), Some(pattern))
        .await
        .map_err(|e| ImapError::from_imap("LIST", e))?
        .try_collect()
        .await
        .map_err(|e| ImapError::from_imap("LIST", e))?;
    let subscribed: Vec<String> = conn
        .session
        .lsub(Some(""), Some("*"))
        .await
        .map_err(|e| ImapError::from_imap("LSUB", e))?
        .map_ok(|n| n.name().to_owned())
        .try_collect()
        .await
        .map_err(|e| ImapError::from_imap("LSUB", e))?;
    let mut out = Vec::with_capacity(names.len());
    for n in names {
        let wire = n.name().to_owned();
        let mut special_use = None;
        let mut selectable = true;
        for a in n.attributes() {
            match a {
                NameAttribute::NoSelect => selectable = false,
                NameAttribute::Extension(e) if e.eq_ignore_ascii_case("\\NonExistent") => {
                    selectable = false
                }
                NameAttribute::Sent => special_use = Some(Role::Sent),
                NameAttribute::Drafts => special_use = Some(Role::Drafts),
                NameAttribute::Trash => special_use = Some(Role::Trash),
                NameAttribute::Junk => special_use = Some(Role::Junk),
                NameAttribute::Archive => special_use = Some(Role::Archive),
                _ => {}
            }
        }
        // A name that is not valid modified UTF-7 is kept as the server spells it: it can
        // still be opened, and re-encoding it would name a different folder.
        let name = mutf7::decode(&wire).unwrap_or_else(|_| wire.clone());
        let is_subscribed = subscribed.contains(&wire);
        out.push(ListedFolder {
            name,
            wire,
            delimiter: n.delimiter().and_then(|d| d.chars().next()),
            special_use,
            selectable,
            subscribed: is_subscribed,
        });
    }
    Ok(out)
}

async fn status(conn: &mut Connection, wire: &str) -> Result<FolderStatus, ImapError> {
    let items = if conn.has("CONDSTORE") {
        "(MESSAGES UIDNEXT UIDVALIDITY HIGHESTMODSEQ)"
    } else {
        "(MESSAGES UIDNEXT UIDVALIDITY)"
    };
    let mb = conn
        .session
        .status(wire, items)
        .await
        .map_err(|e| ImapError::from_imap(format!("STATUS {wire}"), e))?;
    Ok(FolderStatus {
        messages: mb.exists,
        uid_next: mb.uid_next,
        uid_validity: mb.uid_validity,
        highest_modseq: mb.highest_modseq,
    })
}

async fn fetch_meta(
    conn: &mut Connection,
    wire: &str,
    uid_set: &str,
) -> Result<Vec<MessageMeta>, ImapError> {
    let what = format!("FETCH {uid_set} in {wire}");
    let stream = conn
        .session
        .uid_fetch(uid_set, META_ITEMS)
        .await
        .map_err(|e| ImapError::from_imap(what.clone(), e))?;
    let mut out = Vec::new();
    let mut stream = std::pin::pin!(stream);
    while let Some(f) = stream.next().await {
        let f = f.map_err(|e| ImapError::from_imap(what.clone(), e))?;
        // Unsolicited FETCH responses (flag changes by others) carry no UID: skip them.
        let Some(uid) = f.uid else { continue };
        out.push(MessageMeta {
            uid,
            flags: flags_of(&f),
            internal_date: f.internal_date(),
            size: f.size.unwrap_or(0),
            header: f.header().map(<[u8]>::to_vec).unwrap_or_default(),
        });
    }
    Ok(out)
}

fn flags_of(f: &async_imap::types::Fetch) -> Vec<String> {
    use async_imap::types::Flag;
    f.flags()
        .filter_map(|fl| match fl {
            Flag::Seen => Some("\\Seen".to_owned()),
            Flag::Answered => Some("\\Answered".to_owned()),
            Flag::Flagged => Some("\\Flagged".to_owned()),
            Flag::Deleted => Some("\\Deleted".to_owned()),
            Flag::Draft => Some("\\Draft".to_owned()),
            Flag::Recent | Flag::MayCreate => None,
            Flag::Custom(c) => Some(c.into_owned()),
        })
        .collect()
}

/// The source server: everything here reads. Folders are opened with EXAMINE and bodies
/// fetched with BODY.PEEK, so not even `\Seen` changes.
#[derive(Debug)]
pub struct SourceSession {
    conn: Connection,
    examined: Option<String>,
}

impl SourceSession {
    pub fn new(conn: Connection) -> Self {
        SourceSession {
            conn,
            examined: None,
        }
    }

    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    pub async fn list(&mut self) -> Result<Vec<ListedFolder>, ImapError> {
        list(&mut self.conn).await
    }

    pub async fn status(&mut self, wire: &str) -> Result<FolderStatus, ImapError> {
        status(&mut self.conn, wire).await
    }

    /// Open `wire` read-only (EXAMINE); returns its status as the server reports on opening.
    pub async fn examine(&mut self, wire: &str) -> Result<FolderStatus, ImapError> {
        let mb = self
            .conn
            .session
            .examine(wire)
            .await
            .map_err(|e| ImapError::from_imap(format!("EXAMINE {wire}"), e))?;
        self.examined = Some(wire.to_owned());
        Ok(FolderStatus {
            messages: mb.exists,
            uid_next: mb.uid_next,
            uid_validity: mb.uid_validity,
            highest_modseq: mb.highest_modseq,
        })
    }

    /// Identity and flags of the messages in `uid_set` of the examined folder.
    pub async fn fetch_meta(&mut self, uid_set: &str) -> Result<Vec<MessageMeta>, ImapError> {
        let wire = self.examined.clone().unwrap_or_default();
        fetch_meta(&mut self.conn, &wire, uid_set).await
    }

    /// The exact bytes of the messages in `uid_set`, with flags and INTERNALDATE, by UID.
    pub async fn fetch_bodies(&mut self, uid_set: &str) -> Result<Vec<(u32, Outgoing)>, ImapError> {
        let what = format!(
            "FETCH bodies {uid_set} in {}",
            self.examined.as_deref().unwrap_or("")
        );
        let stream = self
            .conn
            .session
            .uid_fetch(uid_set, "(UID FLAGS INTERNALDATE BODY.PEEK[])")
            .await
            .map_err(|e| ImapError::from_imap(what.clone(), e))?;
        let mut stream = std::pin::pin!(stream);
        let mut out = Vec::new();
        while let Some(f) = stream.next().await {
            let f = f.map_err(|e| ImapError::from_imap(what.clone(), e))?;
            let Some(uid) = f.uid else { continue };
            let Some(body) = f.body() else { continue };
            out.push((
                uid,
                Outgoing {
                    flags: flags_of(&f),
                    internal_date: f.internal_date(),
                    body: body.to_vec(),
                },
            ));
        }
        Ok(out)
    }

    pub async fn logout(mut self) {
        let _ = self.conn.session.logout().await;
    }
}

/// The destination server: where folders are created and messages appended.
#[derive(Debug)]
pub struct DestinationSession {
    conn: Connection,
    selected: Option<String>,
}

/// The outcome of appending one message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AppendOutcome {
    Appended,
    /// The server refused this message (too big, invalid, over quota): reported, skipped.
    Refused(String),
}

impl DestinationSession {
    pub fn new(conn: Connection) -> Self {
        DestinationSession {
            conn,
            selected: None,
        }
    }

    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    pub async fn list(&mut self) -> Result<Vec<ListedFolder>, ImapError> {
        list(&mut self.conn).await
    }

    pub async fn status(&mut self, wire: &str) -> Result<FolderStatus, ImapError> {
        status(&mut self.conn, wire).await
    }

    /// Largest message the server takes (APPENDLIMIT, RFC 7889), if it says.
    pub fn append_limit(&self) -> Option<u64> {
        self.conn
            .capabilities
            .iter()
            .find_map(|c| c.strip_prefix("APPENDLIMIT=")?.parse().ok())
    }

    /// Create `wire`, asking for its special use where the server offers CREATE-SPECIAL-USE.
    pub async fn create(&mut self, wire: &str, role: Option<Role>) -> Result<(), ImapError> {
        let use_attr = role.and_then(Role::special_use);
        let command = match use_attr {
            Some(attr) if self.conn.has("CREATE-SPECIAL-USE") => {
                format!("CREATE {} (USE ({attr}))", quote(wire)?)
            }
            _ => format!("CREATE {}", quote(wire)?),
        };
        self.conn
            .session
            .run_command_and_check_ok(&command)
            .await
            .map_err(|e| ImapError::from_imap(format!("CREATE {wire}"), e))
    }

    pub async fn subscribe(&mut self, wire: &str) -> Result<(), ImapError> {
        self.conn
            .session
            .subscribe(wire)
            .await
            .map_err(|e| ImapError::from_imap(format!("SUBSCRIBE {wire}"), e))
    }

    /// SELECT `wire` (read-write) for STORE; returns its status.
    pub async fn select(&mut self, wire: &str) -> Result<FolderStatus, ImapError> {
        let mb = self
            .conn
            .session
            .select(wire)
            .await
            .map_err(|e| ImapError::from_imap(format!("SELECT {wire}"), e))?;
        self.selected = Some(wire.to_owned());
        Ok(FolderStatus {
            messages: mb.exists,
            uid_next: mb.uid_next,
            uid_validity: mb.uid_validity,
            highest_modseq: mb.highest_modseq,
        })
    }

    pub async fn fetch_meta(&mut self, uid_set: &str) -> Result<Vec<MessageMeta>, ImapError> {
        let wire = self.selected.clone().unwrap_or_default();
        fetch_meta(&mut self.conn, &wire, uid_set).await
    }

    /// Replace the flags of `uid` in the selected folder.
    pub async fn set_flags(&mut self, uid: u32, flags: &[String]) -> Result<(), ImapError> {
        let list = flags.join(" ");
        let stream = self
            .conn
            .session
            .uid_store(uid.to_string(), format!("FLAGS.SILENT ({list})"))
            .await
            .map_err(|e| ImapError::from_imap(format!("STORE flags of UID {uid}"), e))?;
        let _: Vec<_> = stream
            .try_collect()
            .await
            .map_err(|e| ImapError::from_imap(format!("STORE flags of UID {uid}"), e))?;
        Ok(())
    }

    /// Append `messages` to `wire`, one outcome per message in order. With LITERAL+ the
    /// APPENDs are pipelined: all sent, then all answers read, so a batch costs one round
    /// trip instead of two per message. A message the server refuses does not stop the rest.
    pub async fn append(
        &mut self,
        wire: &str,
        messages: &[Outgoing],
    ) -> Result<Vec<AppendOutcome>, ImapError> {
        let limit = self.append_limit();
        let mut outcomes = vec![AppendOutcome::Appended; messages.len()];
        let mut to_send = Vec::new();
        for (i, m) in messages.iter().enumerate() {
            match limit {
                Some(l) if m.body.len() as u64 > l => {
                    outcomes[i] = AppendOutcome::Refused(format!(
                        "{} bytes is larger than the destination's APPENDLIMIT of {l} bytes",
                        m.body.len()
                    ));
                }
                _ => to_send.push(i),
            }
        }
        if self.conn.has("LITERAL+") {
            self.append_pipelined(wire, messages, &to_send, &mut outcomes)
                .await?;
        } else {
            for &i in &to_send {
                let m = &messages[i];
                let res = self
                    .conn
                    .session
                    .append(
                        wire,
                        Some(&flag_list(&m.flags)),
                        m.internal_date.map(imap_date).as_deref(),
                        &m.body,
                    )
                    .await;
                match res {
                    Ok(()) => {}
                    Err(async_imap::error::Error::No(r))
                    | Err(async_imap::error::Error::Bad(r)) => {
                        outcomes[i] = AppendOutcome::Refused(r)
                    }
                    // async-imap reports a refused continuation as `Append`.
                    Err(async_imap::error::Error::Append) => {
                        outcomes[i] =
                            AppendOutcome::Refused("the server refused the message".into())
                    }
                    Err(e) => return Err(ImapError::from_imap(format!("APPEND to {wire}"), e)),
                }
            }
        }
        Ok(outcomes)
    }

    async fn append_pipelined(
        &mut self,
        wire: &str,
        messages: &[Outgoing],
        to_send: &[usize],
        outcomes: &mut [AppendOutcome],
    ) -> Result<(), ImapError> {
        let what = || format!("APPEND to {wire}");
        let mailbox = quote(wire)?;
        let mut tags = Vec::with_capacity(to_send.len());
        for &i in to_send {
            let m = &messages[i];
            let date = m
                .internal_date
                .map(|d| format!(" {}", imap_date(d)))
                .unwrap_or_default();
            let command = format!(
                "APPEND {mailbox} {}{date} {{{}+}}",
                flag_list(&m.flags),
                m.body.len()
            );
            let tag = self
                .conn
                .session
                .run_command(&command)
                .await
                .map_err(|e| ImapError::from_imap(what(), e))?;
            let stream = self.conn.session.get_mut();
            stream
                .write_all(&m.body)
                .await
                .map_err(|error| ImapError::Io {
                    what: what(),
                    error,
                })?;
            stream
                .write_all(b"\r\n")
                .await
                .map_err(|error| ImapError::Io {
                    what: what(),
                    error,
                })?;
            tags.push((tag.0, i));
        }
        self.conn
            .session
            .get_mut()
            .flush()
            .await
            .map_err(|error| ImapError::Io {
                what: what(),
                error,
            })?;
        let mut pending = tags.len();
        while pending > 0 {
            let resp = self
                .conn
                .session
                .read_response()
                .await
                .map_err(|error| ImapError::Io {
                    what: what(),
                    error,
                })?
                .ok_or_else(|| ImapError::Io {
                    what: what(),
                    error: std::io::Error::new(
                        std::io::ErrorKind::ConnectionAborted,
                        "closed while appending",
                    ),
                })?;
            if let Response::Done {
                tag,
                status,
                outcome,
            } = resp.parsed()
                && let Some(&(_, i)) = tags.iter().find(|(t, _)| *t == tag.0)
            {
                pending -= 1;
                match status {
                    Status::Ok => {}
                    Status::No | Status::Bad => {
                        outcomes[i] = AppendOutcome::Refused(
                            outcome
                                .information
                                .as_deref()
                                .unwrap_or("the server refused the message")
                                .to_owned(),
                        );
                    }
                    other => {
                        return Err(ImapError::Protocol {
                            what: what(),
                            reason: format!("unexpected {other:?}"),
                        });
                    }
                }
            }
        }
        Ok(())
    }

    pub async fn logout(mut self) {
        let _ = self.conn.session.logout().await;
    }
}

/// `(\Seen kw)`: flags as an APPEND or STORE list.
fn flag_list(flags: &[String]) -> String {
    format!("({})", flags.join(" "))
}

/// INTERNALDATE as RFC 3501 date-time: `"02-Jan-2006 15:04:05 -0700"`.
fn imap_date(d: DateTime<FixedOffset>) -> String {
    d.format("\"%d-%b-%Y %H:%M:%S %z\"").to_string()
}

/// A quoted string for a command. Folder names on the wire are 7-bit (modified UTF-7), so
/// quoting covers them; CR, LF and NUL cannot be quoted at all.
fn quote(s: &str) -> Result<String, ImapError> {
    if s.bytes()
        .any(|b| matches!(b, b'\r' | b'\n' | 0) || b >= 0x80)
    {
        return Err(ImapError::Protocol {
            what: format!("folder name {s:?}"),
            reason: "contains a character that cannot be sent in a quoted string".into(),
        });
    }
    Ok(format!(
        "\"{}\"",
        s.replace('\\', "\\\\").replace('"', "\\\"")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_quotes_follow_rfc_3501() {
        let d = DateTime::parse_from_rfc3339("2019-03-07T08:09:10+05:30").unwrap();
        assert_eq!(imap_date(d), "\"07-Mar-2019 08:09:10 +0530\"");
        assert_eq!(quote(r#"a"b\c"#).unwrap(), r#""a\"b\\c""#);
        assert!(quote("a\r\nb").is_err());
        assert_eq!(
            flag_list(&["\\Seen".into(), "$Label1".into()]),
            "(\\Seen $Label1)"
        );
    }
}
