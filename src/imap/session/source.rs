//! The source side: read only.

use super::*;

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

    pub async fn list(&mut self) -> Result<Listing, ImapError> {
        list(&mut self.conn).await
    }

    pub async fn status(&mut self, wire: &str) -> Result<MailboxStatus, ImapError> {
        status(&mut self.conn, wire).await
    }

    /// Opens `wire` read-only (EXAMINE).
    pub async fn examine(&mut self, wire: &str) -> Result<Selected, ImapError> {
        self.examined = None;
        let sel = open(&mut self.conn, "EXAMINE", wire).await?;
        self.examined = Some(wire.to_owned());
        Ok(sel)
    }

    fn folder(&self) -> String {
        self.examined.clone().unwrap_or_default()
    }

    /// Identity and flags of the messages in `uids` (a UID set) of the examined folder.
    pub async fn fetch_meta(&mut self, uids: &str) -> Result<Vec<Entry>, ImapError> {
        let folder = self.folder();
        fetch_meta(&mut self.conn, &folder, uids).await
    }

    /// Flags of the messages in `uids`, optionally only those changed since a MODSEQ.
    pub async fn fetch_flags(
        &mut self,
        uids: &str,
        changed_since: Option<u64>,
    ) -> Result<Vec<(u32, FlagSet)>, ImapError> {
        let folder = self.folder();
        fetch_flags(&mut self.conn, &folder, uids, changed_since).await
    }

    /// The exact bytes of the messages with `uids` (ascending), with flags and INTERNALDATE,
    /// as sent (a message expunged meanwhile is simply not in the answer). None of them was
    /// listed larger than `largest` bytes: a
    /// literal announced larger than that (with some slack) ends the connection before it
    /// is read (see [`crate::imap::guard`]).
    pub async fn fetch_bodies(
        &mut self,
        uids: &[u32],
        largest: u64,
    ) -> Result<Vec<Outgoing>, ImapError> {
        if uids.is_empty() {
            return Ok(Vec::new());
        }
        let set = uid_set(uids);
        let what = format!("FETCH bodies {set} in {}", self.folder());
        let asked: HashSet<u32> = uids.iter().copied().collect();
        // Everything the server sent, as sent: whether it is what was asked for is checked
        // by the caller, which knows the listing. Memory stays bounded whatever it sends: a
        // UID not asked for is kept without its body, and no UID with more than two.
        let mut kept: HashMap<u32, u8> = HashMap::with_capacity(uids.len());
        let mut out: Vec<Outgoing> = Vec::with_capacity(uids.len());
        let stream = self.conn.session.get_mut();
        let before = stream.literal_limit();
        stream.set_literal_limit(crate::imap::guard::literal_limit_for(largest));
        let result = proto::run(
            &mut self.conn,
            &format!("UID FETCH {set} {BODY_ITEMS}"),
            &what,
            |r| {
                if let Response::Fetch(_, attrs) = r {
                    let f = fetched(attrs);
                    if let (Some(uid), Some(body)) = (f.uid, f.section) {
                        let copies = kept.entry(uid).or_default();
                        if *copies >= 2 {
                            return;
                        }
                        *copies += 1;
                        out.push(Outgoing {
                            uid,
                            flags: f.flags.unwrap_or_default(),
                            internal_date: f.internal_date,
                            body: if asked.contains(&uid) {
                                body.to_vec()
                            } else {
                                Vec::new()
                            },
                        });
                    }
                }
            },
        )
        .await;
        if result.is_ok() && self.conn.has("BINARY") {
            self.restore_nuls(&mut out, &asked, largest, &what).await?;
        }
        self.conn.session.get_mut().set_literal_limit(before);
        result?;
        Ok(out)
    }

    /// Takes the stored bytes (BINARY, RFC 3516) of the messages whose `BODY[]` may show NULs
    /// as 0x80, where they are that message with its NULs (see [`crate::imap::binary`]).
    async fn restore_nuls(
        &mut self,
        out: &mut [Outgoing],
        asked: &HashSet<u32>,
        largest: u64,
        what: &str,
    ) -> Result<(), ImapError> {
        let limit =
            u32::try_from(crate::imap::guard::literal_limit_for(largest)).unwrap_or(u32::MAX);
        for m in out.iter_mut() {
            if !asked.contains(&m.uid) || !crate::imap::binary::may_hide_nuls(&m.body) {
                continue;
            }
            let timeout = proto::deadline(&self.conn) - tokio::time::Instant::now();
            let stream = self.conn.session.get_mut();
            match crate::imap::binary::fetch(stream, m.uid, limit, timeout).await {
                Ok(Some(stored)) if crate::imap::binary::restores_nuls(&m.body, &stored) => {
                    m.body = stored;
                }
                Ok(_) => {}
                Err(e) => return Err(ImapError::io(what, e)),
            }
        }
        Ok(())
    }

    pub async fn logout(mut self) {
        logout(&mut self.conn).await;
    }
}
