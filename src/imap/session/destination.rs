//! The destination side: folders created, messages appended, flags stored.

use super::*;
use crate::imap::command::{AppendItem, StoreOp};

/// The destination server: where folders are created and messages appended.
#[derive(Debug)]
pub struct DestinationSession {
    conn: Connection,
    selected: Option<String>,
    /// The selected folder's UIDVALIDITY and UIDNEXT as this session knows them: what the
    /// SELECT said, moved on by the appends answered since (mail delivered meanwhile by
    /// others is not seen, so the real UIDNEXT may be higher).
    next_uid: Option<(u32, u32)>,
}

impl DestinationSession {
    pub fn new(conn: Connection) -> Self {
        DestinationSession {
            conn,
            selected: None,
            next_uid: None,
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

    /// STATUS of several folders in one round trip (see [`statuses`]).
    pub async fn statuses(
        &mut self,
        wires: &[String],
    ) -> Result<Vec<Option<MailboxStatus>>, ImapError> {
        statuses(&mut self.conn, wires).await
    }

    /// Whether the server takes messages with NUL bytes (APPEND with a literal8, BINARY).
    pub fn takes_binary(&self) -> bool {
        self.conn.has("BINARY")
    }

    /// Largest message the server takes (APPENDLIMIT, RFC 7889), if it says.
    pub fn append_limit(&self) -> Option<u64> {
        self.conn
            .capabilities
            .iter()
            .find_map(|c| c.strip_prefix("APPENDLIMIT=")?.parse().ok())
    }

    /// How many of `messages` an append sends: those within the APPENDLIMIT (the others
    /// are refused before anything goes out).
    pub fn sendable(&self, messages: &[Outgoing]) -> usize {
        let limit = self.append_limit().unwrap_or(u64::MAX);
        messages
            .iter()
            .filter(|m| m.body.len() as u64 <= limit)
            .count()
    }

    /// Whether APPEND answers carry the new message's UID (UIDPLUS, RFC 4315).
    pub fn has_uidplus(&self) -> bool {
        self.conn.has("UIDPLUS")
    }

    /// Creates `wire`, asking for its special use where the server offers
    /// CREATE-SPECIAL-USE. A folder that already exists is not an error.
    pub async fn create(&mut self, wire: &str, role: Option<Role>) -> Result<(), ImapError> {
        let command = Command::Create {
            mailbox: WireName::new(wire)?,
            special_use: role.filter(|_| self.conn.has("CREATE-SPECIAL-USE")),
        };
        let what = format!("CREATE {wire}");
        let tag = proto::send(&mut self.conn, &command, &what).await?;
        match proto::finish(&mut self.conn, &tag, &what, |_| {}).await? {
            Completion::Ok(_) => Ok(()),
            Completion::Refused(r) if r.to_ascii_uppercase().contains("ALREADYEXISTS") => Ok(()),
            Completion::Refused(reason) => Err(ImapError::Refused { what, reason }),
        }
    }

    pub async fn subscribe(&mut self, wire: &str) -> Result<(), ImapError> {
        let what = format!("SUBSCRIBE {wire}");
        proto::run(
            &mut self.conn,
            &Command::Subscribe(WireName::new(wire)?),
            &what,
            |_| {},
        )
        .await
        .map(drop)
    }

    /// SELECT `wire` (read-write, for STORE).
    pub async fn select(&mut self, wire: &str) -> Result<Selected, ImapError> {
        self.selected = None;
        let sel = open(&mut self.conn, wire, false).await?;
        self.opened(wire, &sel);
        Ok(sel)
    }

    fn opened(&mut self, wire: &str, sel: &Selected) {
        self.selected = Some(wire.to_owned());
        self.next_uid = sel.uid_validity.zip(sel.uid_next);
    }

    /// UIDVALIDITY and UIDNEXT of `wire` as far as this session knows them, when `wire`
    /// is the selected folder (see [`crate::imap::in_flight`]).
    pub fn next_uid(&self, wire: &str) -> Option<(u32, u32)> {
        self.next_uid
            .filter(|_| self.selected.as_deref() == Some(wire))
    }

    /// SELECT `wire` and list its messages in `uids`, the listing pipelined behind the
    /// SELECT.
    pub async fn select_and_list(
        &mut self,
        wire: &str,
        uids: &UidSet,
    ) -> Result<(Selected, Vec<Entry>), ImapError> {
        self.selected = None;
        let listed = open_and_list(&mut self.conn, wire, false, uids, None).await?;
        self.opened(wire, &listed.0);
        Ok(listed)
    }

    /// Opens `wire` read-only (EXAMINE), for verify.
    pub async fn examine(&mut self, wire: &str) -> Result<Selected, ImapError> {
        self.selected = None;
        let sel = open(&mut self.conn, wire, true).await?;
        self.opened(wire, &sel);
        Ok(sel)
    }

    fn folder(&self) -> String {
        self.selected.clone().unwrap_or_default()
    }

    pub async fn fetch_meta(&mut self, uids: &UidSet) -> Result<Vec<Entry>, ImapError> {
        let folder = self.folder();
        fetch_meta(&mut self.conn, &folder, uids, None).await
    }

    /// The Message-IDs of the messages in `uids` that have one (for a report).
    pub async fn message_ids(&mut self, uids: &UidSet) -> Result<Vec<(u32, String)>, ImapError> {
        let folder = self.folder();
        fetch_message_ids(&mut self.conn, &folder, uids).await
    }

    /// Applies flag updates in the selected folder, pipelined: `UID STORE +FLAGS.SILENT` /
    /// `-FLAGS.SILENT` (deltas, which applied twice do no more than once) or
    /// `FLAGS.SILENT` (replacements). Returns the updates the server refused, with why.
    pub async fn store(
        &mut self,
        updates: &[FlagUpdate],
    ) -> Result<Vec<(FlagUpdate, String)>, ImapError> {
        // Same change, one command for many UIDs.
        let mut groups: BTreeMap<(StoreOp, &FlagSet), Vec<usize>> = BTreeMap::new();
        for (i, u) in updates.iter().enumerate() {
            let mut add = |op: StoreOp, flags| groups.entry((op, flags)).or_default().push(i);
            match &u.change {
                FlagChange::Delta { add: a, remove: r } => {
                    if !a.is_empty() {
                        add(StoreOp::Add, a);
                    }
                    if !r.is_empty() {
                        add(StoreOp::Remove, r);
                    }
                }
                FlagChange::Replace(set) => add(StoreOp::Replace, set),
            }
        }
        let what = format!("STORE flags in {}", self.folder());
        let mut sent: Vec<(String, Vec<usize>)> = Vec::new();
        for (&(op, flags), idx) in &groups {
            let mut idx = idx.clone();
            idx.sort_by_key(|&i| updates[i].dest_uid);
            for chunk in idx.chunks(UIDS_PER_COMMAND) {
                let mut uids: Vec<u32> = chunk.iter().map(|&i| updates[i].dest_uid).collect();
                uids.dedup();
                let set = UidSet::of(&uids);
                let command = Command::UidStore {
                    set: &set,
                    op,
                    flags,
                };
                let tag = proto::send(&mut self.conn, &command, &what).await?;
                sent.push((tag, chunk.to_vec()));
            }
        }
        let Some((last, _)) = sent.last().cloned() else {
            return Ok(Vec::new());
        };
        let mut refused_tags: HashMap<String, String> = HashMap::new();
        let end = proto::finish(&mut self.conn, &last, &what, |ev| {
            if let Event::Other {
                tag,
                completion: Completion::Refused(r),
            } = ev
            {
                refused_tags.insert(tag.to_owned(), r);
            }
        })
        .await?;
        if let Completion::Refused(r) = end {
            refused_tags.insert(last, r);
        }
        let mut failed = Vec::new();
        for (tag, idx) in sent {
            if let Some(reason) = refused_tags.get(&tag) {
                failed.extend(idx.iter().map(|&i| (updates[i].clone(), reason.clone())));
            }
        }
        Ok(failed)
    }

    /// Appends `messages` to `wire`, one outcome per message in order. With LITERAL+ the
    /// APPENDs are pipelined: all sent, then all answers read, so a batch costs one round
    /// trip instead of two per message; without it each message waits for the server's
    /// go-ahead (a synchronizing literal). A message the server refuses does not stop the
    /// rest. APPENDUID is read from each answer when the server offers UIDPLUS. A refusal
    /// that asks to slow down (a hosted provider's upload limit) is not the message's fault:
    /// the whole batch ends as [`ImapError::Throttled`], to be tried again after the wait
    /// (what was stored meanwhile is found on the destination then, not copied twice).
    pub async fn append(
        &mut self,
        wire: &str,
        messages: &[Outgoing],
    ) -> Result<Vec<AppendOutcome>, ImapError> {
        let outcomes = self.append_all(wire, messages).await?;
        self.appended(wire, &outcomes);
        for o in &outcomes {
            if let AppendOutcome::Refused(reason) = o
                && (crate::imap::throttle::hint(reason).is_some()
                    || crate::imap::throttle::provider_limit(reason))
            {
                return Err(proto::refused(&format!("APPEND to {wire}"), reason.clone()));
            }
        }
        Ok(outcomes)
    }

    /// Moves [`Self::next_uid`] past what was appended to the selected folder.
    fn appended(&mut self, wire: &str, outcomes: &[AppendOutcome]) {
        let Some((validity, mut next)) = self.next_uid(wire) else {
            return;
        };
        for o in outcomes {
            match o {
                AppendOutcome::Appended(Some((v, uid))) if *v == validity => {
                    next = next.max(uid.saturating_add(1));
                }
                // A new UIDVALIDITY: what this session knew is wrong now.
                AppendOutcome::Appended(Some(_)) => {
                    self.next_uid = None;
                    return;
                }
                AppendOutcome::Appended(None) => next = next.saturating_add(1),
                AppendOutcome::Refused(_) => {}
            }
        }
        self.next_uid = Some((validity, next));
    }

    async fn append_all(
        &mut self,
        wire: &str,
        messages: &[Outgoing],
    ) -> Result<Vec<AppendOutcome>, ImapError> {
        // A literal may not hold NUL: without BINARY, NULs go as 0x80 (what `BODY[]` shows
        // on a server that stores them), and the caller reports those messages as inexact.
        let replaced: Vec<Outgoing>;
        let messages = if !self.takes_binary()
            && messages
                .iter()
                .any(|m| crate::imap::binary::needs_literal8(&m.body))
        {
            replaced = messages
                .iter()
                .map(|m| Outgoing {
                    body: m
                        .body
                        .iter()
                        .map(|&b| if b == 0 { 0x80 } else { b })
                        .collect(),
                    ..m.clone()
                })
                .collect();
            &replaced[..]
        } else {
            messages
        };
        let limit = self.append_limit();
        let mut outcomes = vec![AppendOutcome::Appended(None); messages.len()];
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
        let mailbox = WireName::new(wire)?;
        let what = format!("APPEND to {wire}");
        let uidplus = self.has_uidplus();
        if self.conn.has("LITERAL+") {
            // One MULTIAPPEND stores the batch in one transaction (far cheaper for the
            // server than a transaction per message). It is all or nothing: when it is
            // refused, the messages are appended one by one to find which one the server
            // will not take.
            if self.conn.has("MULTIAPPEND") && to_send.len() > 1 {
                match self.multiappend(mailbox, &what, messages, &to_send).await? {
                    Completion::Ok(done) => {
                        let uids = done
                            .append_uid
                            .filter(|(_, u)| uidplus && u.len() == to_send.len());
                        for (k, &i) in to_send.iter().enumerate() {
                            outcomes[i] =
                                AppendOutcome::Appended(uids.as_ref().map(|(v, u)| (*v, u[k])));
                        }
                        return Ok(outcomes);
                    }
                    Completion::Refused(reason) => {
                        tracing::debug!(folder = %wire, reason = %reason, "MULTIAPPEND refused; appending one by one");
                    }
                }
            }
            let mut tags: Vec<(String, usize)> = Vec::with_capacity(to_send.len());
            for &i in &to_send {
                let command = Command::Append {
                    mailbox,
                    item: append_item(&messages[i], true),
                };
                let tag = proto::send(&mut self.conn, &command, &what).await?;
                proto::write_raw(&mut self.conn, &messages[i].body, &what).await?;
                proto::write_raw(&mut self.conn, b"\r\n", &what).await?;
                tags.push((tag, i));
            }
            proto::flush(&mut self.conn, &what).await?;
            let Some((last, _)) = tags.last().cloned() else {
                return Ok(outcomes);
            };
            let mut done: HashMap<String, Completion> = HashMap::new();
            let end = proto::finish(&mut self.conn, &last, &what, |ev| {
                if let Event::Other { tag, completion } = ev {
                    done.insert(tag.to_owned(), completion);
                }
            })
            .await?;
            done.insert(last, end);
            for (tag, i) in tags {
                outcomes[i] = match done.remove(&tag) {
                    Some(Completion::Ok(d)) => AppendOutcome::Appended(single(d, uidplus)),
                    Some(Completion::Refused(r)) => AppendOutcome::Refused(r),
                    None => {
                        return Err(ImapError::Protocol {
                            what,
                            reason: format!("no answer to the APPEND tagged {tag}"),
                        });
                    }
                };
            }
        } else {
            for &i in &to_send {
                outcomes[i] = self
                    .append_synchronizing(mailbox, &what, &messages[i])
                    .await?;
                if let AppendOutcome::Appended(uid) = &mut outcomes[i]
                    && !uidplus
                {
                    *uid = None;
                }
            }
        }
        Ok(outcomes)
    }

    /// `APPEND mailbox (flags) date {n+} ... (flags) date {n+} ...` (RFC 3502, with
    /// LITERAL+): the messages at `which`, in one command.
    async fn multiappend(
        &mut self,
        mailbox: WireName<'_>,
        what: &str,
        messages: &[Outgoing],
        which: &[usize],
    ) -> Result<Completion, ImapError> {
        let first = Command::Append {
            mailbox,
            item: append_item(&messages[which[0]], true),
        };
        let tag = proto::send(&mut self.conn, &first, what).await?;
        proto::write_raw(&mut self.conn, &messages[which[0]].body, what).await?;
        for &i in &which[1..] {
            let m = &messages[i];
            let item = append_item(m, true);
            proto::write_raw(&mut self.conn, format!(" {item}\r\n").as_bytes(), what).await?;
            proto::write_raw(&mut self.conn, &m.body, what).await?;
        }
        proto::write_raw(&mut self.conn, b"\r\n", what).await?;
        proto::flush(&mut self.conn, what).await?;
        proto::finish(&mut self.conn, &tag, what, |_| {}).await
    }

    /// One APPEND with a synchronizing literal: the command line, the server's `+`, the
    /// message, the answer.
    async fn append_synchronizing(
        &mut self,
        mailbox: WireName<'_>,
        what: &str,
        m: &Outgoing,
    ) -> Result<AppendOutcome, ImapError> {
        let command = Command::Append {
            mailbox,
            item: append_item(m, false),
        };
        let tag = proto::send(&mut self.conn, &command, what).await?;
        let deadline = proto::deadline(&self.conn);
        loop {
            let step = proto::next(&mut self.conn, what, deadline, |resp| match resp {
                Response::Continue(_) => Ok(Some(None)),
                Response::Done {
                    tag: t,
                    status,
                    outcome,
                } if t.0 == tag => {
                    // Refused before the message was sent (too large, no such folder).
                    let text = outcome.information.as_deref().unwrap_or("").to_owned();
                    Ok(Some(Some(match status {
                        Status::Ok => AppendOutcome::Appended(None),
                        _ => AppendOutcome::Refused(if text.is_empty() {
                            format!("{status:?}")
                        } else {
                            text
                        }),
                    })))
                }
                Response::Data {
                    status: Status::Bye,
                    outcome,
                } => Err(proto::bye(what, outcome.information.as_deref())),
                _ => Ok(None),
            })
            .await??;
            match step {
                Some(None) => break,
                Some(Some(outcome)) => return Ok(outcome),
                None => {}
            }
        }
        proto::write_raw(&mut self.conn, &m.body, what).await?;
        proto::write_raw(&mut self.conn, b"\r\n", what).await?;
        proto::flush(&mut self.conn, what).await?;
        Ok(
            match proto::finish(&mut self.conn, &tag, what, |_| {}).await? {
                Completion::Ok(d) => AppendOutcome::Appended(single(d, true)),
                Completion::Refused(r) => AppendOutcome::Refused(r),
            },
        )
    }

    pub async fn logout(mut self) {
        logout(&mut self.conn).await;
    }
}

/// The UID of a single appended message, when the server said and is trusted to.
fn single(done: proto::Done, uidplus: bool) -> Option<(u32, u32)> {
    match done.append_uid {
        Some((validity, uids)) if uidplus && uids.len() == 1 => Some((validity, uids[0])),
        _ => None,
    }
}

/// The APPEND item for `m`; a message with NULs goes in a literal8, which
/// [`DestinationSession::append`] sends only to a server offering BINARY.
fn append_item(m: &Outgoing, non_synchronizing: bool) -> AppendItem<'_> {
    AppendItem {
        flags: &m.flags,
        internal_date: m.internal_date,
        size: m.body.len(),
        binary: crate::imap::binary::needs_literal8(&m.body),
        non_synchronizing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_with_nul_goes_in_a_literal8() {
        let m = Outgoing {
            uid: 1,
            flags: Flag::parse_all(["\\Seen", "$Label1", "\\Recent"]),
            internal_date: DateTime::parse_from_rfc3339("2019-03-07T08:09:10+05:30").ok(),
            body: b"Subject: x\r\n\r\nhi\r\n".to_vec(),
        };
        assert_eq!(
            append_item(&m, true).to_string(),
            "(\\Seen $Label1) \"07-Mar-2019 08:09:10 +0530\" {18+}"
        );
        let nul = Outgoing {
            body: b"Subject: x\r\n\r\nh\0\r\n".to_vec(),
            internal_date: None,
            ..m
        };
        assert_eq!(
            append_item(&nul, false).to_string(),
            "(\\Seen $Label1) ~{18}"
        );
    }
}
