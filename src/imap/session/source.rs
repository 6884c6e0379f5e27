//! The source side: read only.

use std::collections::VecDeque;

use super::*;

/// The source IMAP server: everything here reads. Folders are opened with EXAMINE and
/// bodies fetched with BODY.PEEK, so not even `\Seen` changes. The engine drives it through
/// [`crate::sources::SourceSession`], beside the sources that are not IMAP servers.
#[derive(Debug)]
pub struct ImapSource {
    conn: Connection,
    examined: Option<String>,
    /// How this folder's pass reads Gmail's labels (a Gmail source only).
    labels: Option<LabelPass>,
}

impl ImapSource {
    pub fn new(conn: Connection) -> Self {
        ImapSource {
            conn,
            examined: None,
            labels: None,
        }
    }

    /// The next folder's pass reads Gmail's labels so (see [`LabelPass`]); `None` for a
    /// server that is not Gmail.
    pub fn read_labels(&mut self, pass: Option<LabelPass>) {
        self.labels = pass.filter(|_| self.conn.has("X-GM-EXT-1"));
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

    /// STATUS of several folders in one round trip (see [`statuses`]).
    pub async fn statuses(
        &mut self,
        wires: &[String],
    ) -> Result<Vec<Option<MailboxStatus>>, ImapError> {
        statuses(&mut self.conn, wires).await
    }

    /// Opens `wire` read-only (EXAMINE).
    pub async fn examine(&mut self, wire: &str) -> Result<Selected, ImapError> {
        self.examined = None;
        let sel = open(&mut self.conn, wire, true).await?;
        self.examined = Some(wire.to_owned());
        Ok(sel)
    }

    /// EXAMINE `wire` and list its messages in `uids`, the listing pipelined behind the
    /// EXAMINE.
    pub async fn examine_and_list(
        &mut self,
        wire: &str,
        uids: &UidSet,
    ) -> Result<(Selected, Vec<Entry>), ImapError> {
        self.examined = None;
        let listed = open_and_list(&mut self.conn, wire, true, uids, self.labels).await?;
        self.examined = Some(wire.to_owned());
        Ok(listed)
    }

    fn folder(&self) -> String {
        self.examined.clone().unwrap_or_default()
    }

    /// Identity and flags of the messages in `uids` (a UID set) of the examined folder.
    pub async fn fetch_meta(&mut self, uids: &UidSet) -> Result<Vec<Entry>, ImapError> {
        let folder = self.folder();
        fetch_meta(&mut self.conn, &folder, uids, self.labels).await
    }

    /// The Message-IDs of the messages in `uids` that have one (for a report).
    pub async fn message_ids(&mut self, uids: &UidSet) -> Result<Vec<(u32, String)>, ImapError> {
        let folder = self.folder();
        fetch_message_ids(&mut self.conn, &folder, uids).await
    }

    /// Flags of the messages in `uids`, optionally only those changed since a MODSEQ.
    pub async fn fetch_flags(
        &mut self,
        uids: &UidSet,
        changed_since: Option<u64>,
    ) -> Result<Vec<(u32, FlagSet)>, ImapError> {
        let folder = self.folder();
        fetch_flags(&mut self.conn, &folder, uids, changed_since, self.labels).await
    }

    /// Asks for the exact bytes of the messages with `uids` (ascending), with flags and
    /// INTERNALDATE, without waiting for the answer: it is read by [`Self::next_bodies`],
    /// in the order asked. Several asks in a row keep the link busy while earlier answers are
    /// still on their way (pipelining, RFC 3501 §5.5). None of the messages was listed
    /// larger than `largest` bytes: a literal announced larger than that (with some slack)
    /// ends the connection before it is read (see [`crate::imap::guard`]).
    pub async fn send_bodies(
        &mut self,
        fetches: &mut BodyFetches,
        uids: &[u32],
        largest: u64,
    ) -> Result<(), ImapError> {
        let set = UidSet::of(uids);
        let what = format!("FETCH bodies {set} in {}", self.folder());
        let mut pending = PendingBodies {
            tag: String::new(),
            what,
            asked: uids.iter().copied().collect(),
            largest,
            kept: HashMap::with_capacity(uids.len()),
            out: Vec::with_capacity(uids.len()),
            completion: None,
            // The listing decided which messages this folder copies; the body's answer
            // only brings the keywords.
            labels: self.labels.filter(|l| l.keywords).map(|l| LabelPass {
                archived_only: false,
                ..l
            }),
        };
        if uids.is_empty() {
            pending.completion = Some(Completion::Ok(proto::Done::default()));
            fetches.pending.push_back(pending);
            return Ok(());
        }
        let stream = self.conn.session.get_mut();
        let base = *fetches.base_limit.get_or_insert(stream.literal_limit());
        // The answers of every outstanding ask may arrive before this one is read: the
        // limit is the largest any of them allows.
        let limit = fetches
            .pending
            .iter()
            .map(|p| crate::imap::guard::literal_limit_for(p.largest))
            .chain([crate::imap::guard::literal_limit_for(largest), base])
            .max()
            .unwrap_or(base);
        stream.set_literal_limit(limit);
        pending.tag = proto::send(
            &mut self.conn,
            &Command::UidFetch {
                set: &set,
                items: FetchItems::Body.with_labels(pending.labels.is_some()),
                changed_since: None,
            },
            &pending.what,
        )
        .await?;
        fetches.pending.push_back(pending);
        Ok(())
    }

    /// The answer to the oldest ask of [`Self::send_bodies`] not yet taken: everything the
    /// server sent for it, as sent (a message expunged meanwhile is simply not in it).
    /// Whether that is what was asked for is checked by the caller, which knows the
    /// listing. `None` when nothing is outstanding.
    pub async fn next_bodies(
        &mut self,
        fetches: &mut BodyFetches,
    ) -> Result<Option<Vec<Outgoing>>, ImapError> {
        if fetches.pending.is_empty() {
            return Ok(None);
        }
        self.read_until_done(fetches, 0).await?;
        let Some(mut front) = fetches.pending.pop_front() else {
            return Ok(None);
        };
        let result = match front.completion.take() {
            Some(Completion::Refused(reason)) => Err(proto::refused(&front.what, reason)),
            _ => Ok(()),
        };
        if result.is_ok()
            && self.conn.has("BINARY")
            && front
                .out
                .iter()
                .any(|m| crate::imap::binary::may_hide_nuls(&m.body))
        {
            // BINARY goes on the raw stream, which must be quiet: the later answers are
            // read (and kept) first.
            if let Some(last) = fetches.pending.len().checked_sub(1) {
                self.read_until_done(fetches, last).await?;
            }
            self.restore_nuls(&mut front.out, &front.asked, front.largest, &front.what)
                .await?;
        }
        if fetches.pending.is_empty()
            && let Some(base) = fetches.base_limit.take()
        {
            self.conn.session.get_mut().set_literal_limit(base);
        }
        result?;
        Ok(Some(front.out))
    }

    /// Reads every outstanding answer, so that the connection is quiet and other commands
    /// can be sent; the answers stay in `fetches` for [`Self::next_bodies`].
    pub async fn settle(&mut self, fetches: &mut BodyFetches) -> Result<(), ImapError> {
        match fetches.pending.len().checked_sub(1) {
            Some(last) => self.read_until_done(fetches, last).await,
            None => Ok(()),
        }
    }

    /// Reads and drops every outstanding answer: the connection is then as before the
    /// first ask, ready for other commands.
    pub async fn discard(&mut self, fetches: &mut BodyFetches) -> Result<(), ImapError> {
        self.settle(fetches).await?;
        fetches.pending.clear();
        if let Some(base) = fetches.base_limit.take() {
            self.conn.session.get_mut().set_literal_limit(base);
        }
        Ok(())
    }

    /// Reads until the ask at `index` is complete. An answer goes to the oldest incomplete
    /// ask that asked for its UID, else to the oldest incomplete one (whose check then
    /// finds a UID not asked for): servers may run pipelined FETCHes at once and interleave
    /// their answers (Dovecot does), and the UID is what tells them apart.
    async fn read_until_done(
        &mut self,
        fetches: &mut BodyFetches,
        index: usize,
    ) -> Result<(), ImapError> {
        while let Some(current) = fetches
            .pending
            .iter()
            .take(index + 1)
            .position(|p| p.completion.is_none())
        {
            let tag = fetches.pending[current].tag.clone();
            let what = fetches.pending[current].what.clone();
            let pending = &mut fetches.pending;
            let completion = proto::finish(&mut self.conn, &tag, &what, |ev| match ev {
                Event::Untagged(Response::Fetch(_, attrs)) => {
                    let uid = attrs.iter().find_map(|a| match a {
                        AttributeValue::Uid(u) => Some(*u),
                        _ => None,
                    });
                    let asker = uid.and_then(|u| {
                        pending
                            .iter()
                            .position(|p| p.completion.is_none() && p.asked.contains(&u))
                    });
                    let to = asker.or_else(|| pending.iter().position(|p| p.completion.is_none()));
                    if let Some(to) = to {
                        pending[to].take(attrs);
                    }
                }
                Event::Untagged(_) => {}
                Event::Other { tag, completion } => {
                    if let Some(p) = pending
                        .iter_mut()
                        .find(|p| p.tag == tag && p.completion.is_none())
                    {
                        p.completion = Some(completion);
                    }
                }
            })
            .await?;
            fetches.pending[current].completion = Some(completion);
        }
        Ok(())
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

/// Body fetches asked for on one source connection whose answers have not all been taken
/// yet, oldest first (see [`ImapSource::send_bodies`]).
#[derive(Debug, Default)]
pub struct BodyFetches {
    pending: VecDeque<PendingBodies>,
    /// The connection's literal limit before the first outstanding ask raised it.
    base_limit: Option<u64>,
    /// Answers of a source that is not an IMAP server, read when asked for, in order.
    ready: VecDeque<Vec<Outgoing>>,
}

impl BodyFetches {
    /// Asks whose answers were not taken yet.
    pub fn len(&self) -> usize {
        self.pending.len() + self.ready.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty() && self.ready.is_empty()
    }

    /// An answer of a source without a wire: kept until taken, like an IMAP one.
    pub(crate) fn push_ready(&mut self, answer: Vec<Outgoing>) {
        self.ready.push_back(answer);
    }

    pub(crate) fn pop_ready(&mut self) -> Option<Vec<Outgoing>> {
        self.ready.pop_front()
    }

    pub(crate) fn clear_ready(&mut self) {
        self.ready.clear();
    }
}

#[derive(Debug)]
struct PendingBodies {
    tag: String,
    what: String,
    asked: HashSet<u32>,
    largest: u64,
    /// Copies kept per UID: memory stays bounded whatever the server sends, as a UID not
    /// asked for is kept without its body, and no UID with more than two.
    kept: HashMap<u32, u8>,
    out: Vec<Outgoing>,
    /// The tagged answer, once read.
    completion: Option<Completion>,
    /// Gmail's labels, to read as keywords.
    labels: Option<LabelPass>,
}

impl PendingBodies {
    fn take(&mut self, attrs: &[AttributeValue<'_>]) {
        let f = fetched(attrs);
        let (Some(uid), Some(body)) = (f.uid, f.section) else {
            return;
        };
        let copies = self.kept.entry(uid).or_default();
        if *copies >= 2 {
            return;
        }
        *copies += 1;
        self.out.push(Outgoing {
            uid,
            flags: f.flags_for(self.labels).unwrap_or_default(),
            internal_date: f.internal_date,
            body: if self.asked.contains(&uid) {
                body.to_vec()
            } else {
                Vec::new()
            },
        });
    }
}
