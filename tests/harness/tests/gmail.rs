//! The Gmail stand-in ([`Gmail`]) itself: labels as folders, per-folder UIDs, the X-GM
//! extensions, Gmail's APPEND semantics, XOAUTH2 and the limits, checked over the wire
//! with a small IMAP client written here. Asynchronous effects are awaited by polling
//! with a deadline ([`wait::until_true`]), never by sleeping.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use mailshift_harness::{Gmail, GmailMessage, base64, wait};

const ALICE: &str = "alice@example.com";
const PW: &str = "alice-pw";

/// A raw IMAP conversation: commands tagged `t1`, `t2`, ...; responses as text with any
/// literal's bytes inline.
struct Client {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    tag: u32,
    greeting: String,
}

impl Client {
    fn connect(port: u16) -> Result<Client> {
        let stream = TcpStream::connect((mailshift_harness::HOST, port))?;
        stream.set_read_timeout(Some(Duration::from_secs(20)))?;
        let mut c = Client {
            writer: stream.try_clone()?,
            reader: BufReader::new(stream),
            tag: 0,
            greeting: String::new(),
        };
        c.greeting = c.response()?;
        Ok(c)
    }

    fn login(port: u16, user: &str, password: &str) -> Result<Client> {
        let mut c = Client::connect(port)?;
        c.ok(&format!("LOGIN \"{user}\" \"{password}\""))?;
        Ok(c)
    }

    /// One response line, literals included.
    fn response(&mut self) -> Result<String> {
        let mut out = Vec::new();
        loop {
            let mut line = Vec::new();
            self.reader.read_until(b'\n', &mut line)?;
            if line.is_empty() {
                bail!("connection closed");
            }
            out.extend_from_slice(&line);
            let text = String::from_utf8_lossy(&line);
            let literal = text
                .trim_end()
                .strip_suffix('}')
                .and_then(|t| t.rsplit_once('{'))
                .and_then(|(_, n)| n.parse::<usize>().ok());
            match literal {
                Some(n) => {
                    let mut data = vec![0; n];
                    self.reader.read_exact(&mut data)?;
                    out.extend_from_slice(&data);
                }
                None => {
                    let s = String::from_utf8_lossy(&out);
                    return Ok(s.trim_end_matches(['\r', '\n']).to_string());
                }
            }
        }
    }

    fn send(&mut self, data: &[u8]) -> Result<()> {
        self.writer.write_all(data)?;
        Ok(())
    }

    fn next_tag(&mut self) -> String {
        self.tag += 1;
        format!("t{}", self.tag)
    }

    /// Untagged responses and the tagged status (without its tag).
    fn finish(&mut self, tag: &str) -> Result<(Vec<String>, String)> {
        let mut untagged = Vec::new();
        loop {
            let r = self.response()?;
            if let Some(status) = r.strip_prefix(&format!("{tag} ")) {
                return Ok((untagged, status.to_string()));
            }
            untagged.push(r);
        }
    }

    fn cmd(&mut self, line: &str) -> Result<(Vec<String>, String)> {
        let tag = self.next_tag();
        self.send(format!("{tag} {line}\r\n").as_bytes())?;
        self.finish(&tag)
    }

    fn ok(&mut self, line: &str) -> Result<Vec<String>> {
        let (untagged, status) = self.cmd(line)?;
        ensure!(status.starts_with("OK"), "{line}: {status}");
        Ok(untagged)
    }

    /// APPEND with a non-synchronizing literal; the tagged status.
    fn append(&mut self, folder: &str, flags: &str, date: &str, raw: &[u8]) -> Result<String> {
        let tag = self.next_tag();
        let date = if date.is_empty() {
            String::new()
        } else {
            format!(" \"{date}\"")
        };
        let line = format!(
            "{tag} APPEND \"{folder}\" ({flags}){date} {{{}+}}\r\n",
            raw.len()
        );
        self.send(line.as_bytes())?;
        self.send(raw)?;
        self.send(b"\r\n")?;
        Ok(self.finish(&tag)?.1)
    }

    /// `(UID, the response)` of each message of `folder` for `items`.
    fn fetch_all(&mut self, folder: &str, items: &str) -> Result<Vec<(u32, String)>> {
        self.ok(&format!("EXAMINE \"{folder}\""))?;
        let lines = self.ok(&format!("UID FETCH 1:* ({items})"))?;
        lines
            .into_iter()
            .filter(|l| l.contains(" FETCH ("))
            .map(|l| Ok((num(&l, "UID").context("no UID")? as u32, l)))
            .collect()
    }

    fn status(&mut self, folder: &str, item: &str) -> Result<u64> {
        let lines = self.ok(&format!("STATUS \"{folder}\" ({item})"))?;
        num(&lines[0], item).context("no such STATUS item")
    }
}

/// The number after `key ` in `text`.
fn num(text: &str, key: &str) -> Option<u64> {
    let rest = text.split(&format!("{key} ")).nth(1)?;
    rest.split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

fn message(id: &str, subject: &str) -> Vec<u8> {
    format!(
        "From: Bob <bob@example.org>\r\nTo: Alice <alice@example.com>\r\nSubject: {subject}\r\n\
         Message-ID: <{id}@example.org>\r\nDate: Sat, 21 Nov 2026 10:00:00 +0000\r\n\r\n\
         Hello, {subject}.\r\n"
    )
    .into_bytes()
}

/// Alice: an archived message, one in INBOX and Work, one in INBOX, one in Work/Projects.
fn alice() -> mailshift_harness::GmailBuilder {
    Gmail::builder()
        .user(ALICE, PW)
        .token(ALICE, "alice-token")
        .label("Work")
        .message(GmailMessage::new(message("archived", "archived")))
        .message(
            GmailMessage::new(message("both", "both"))
                .labels(&["\\Inbox", "Work", "\\Important"])
                .flags(&["\\Seen"])
                .date("07-Mar-2019 08:09:10 +0530"),
        )
        .message(GmailMessage::new(message("inbox", "inbox")).labels(&["\\Inbox"]))
        .message(GmailMessage::new(message("project", "project")).labels(&["Work/Projects"]))
}

#[test]
fn one_message_shows_in_each_of_its_views_with_one_msgid_and_per_folder_uids() -> Result<()> {
    let labelled = |id: &str, labels: &[&str]| GmailMessage::new(message(id, id)).labels(labels);
    let both = GmailMessage::new(message("both", "both"))
        .labels(&["\\Inbox", "Work", "\\Important"])
        .flags(&["\\Seen"])
        .date("07-Mar-2019 08:09:10 +0530");
    let gmail = Gmail::builder()
        .user(ALICE, PW)
        .label("Work")
        .message(labelled("w1", &["Work"]))
        .message(labelled("i1", &["\\Inbox"]))
        .message(labelled("w2", &["Work"]))
        .message(both)
        .message(labelled("project", &["Work/Projects"]))
        .message(labelled("archived", &[]))
        .start()?;
    let mut c = Client::login(gmail.port(), ALICE, PW)?;
    let items = "UID X-GM-MSGID X-GM-THRID X-GM-LABELS FLAGS INTERNALDATE";
    let inbox = c.fetch_all("INBOX", items)?;
    let all = c.fetch_all("[Gmail]/All Mail", items)?;
    let work = c.fetch_all("Work", items)?;
    assert_eq!((inbox.len(), all.len(), work.len()), (2, 6, 3));
    // "both" is All Mail's 4th message, INBOX's 2nd, Work's 3rd: one message, three UIDs.
    let (in_all, in_inbox, in_work) = (&all[3], &inbox[1], &work[2]);
    let msgid = |l: &String| num(l, "X-GM-MSGID").unwrap();
    assert_eq!(msgid(&in_all.1), msgid(&in_inbox.1));
    assert_eq!(msgid(&in_all.1), msgid(&in_work.1));
    assert_eq!((in_all.0, in_inbox.0, in_work.0), (4, 2, 3));
    let ids: std::collections::BTreeSet<u64> = all.iter().map(|m| msgid(&m.1)).collect();
    assert_eq!(ids.len(), 6, "X-GM-MSGID is unique");
    let labels = r#"X-GM-LABELS ("\\Inbox" Work "\\Important")"#;
    assert!(in_all.1.contains(labels), "{}", in_all.1);
    assert!(in_all.1.contains("FLAGS (\\Seen)"));
    assert!(
        in_all
            .1
            .contains("INTERNALDATE \"07-Mar-2019 08:09:10 +0530\"")
    );
    assert!(
        all[4].1.contains(r#"X-GM-LABELS ("Work/Projects")"#),
        "{}",
        all[4].1
    );
    assert!(all[5].1.contains("X-GM-LABELS ()"), "archived: no labels");
    assert_eq!(
        num(&in_all.1, "X-GM-THRID"),
        Some(msgid(&in_all.1)),
        "a thread of one"
    );

    // The inspection helpers agree with the wire.
    let uids = gmail.folder_uids(ALICE, "Work");
    assert_eq!(uids.iter().map(|u| u.0).collect::<Vec<_>>(), vec![1, 2, 3]);
    assert_eq!(uids[2].1, msgid(&in_work.1));
    let validities: std::collections::BTreeSet<_> = ["INBOX", "[Gmail]/All Mail", "Work"]
        .iter()
        .map(|f| gmail.uid_validity(ALICE, f).unwrap())
        .collect();
    assert_eq!(validities.len(), 3, "each folder its own UIDVALIDITY");

    // Sequence numbers and sets: FETCH by number, `n:*`, lists and ranges.
    c.ok("SELECT \"[Gmail]/All Mail\"")?;
    let by_seq = c.ok("FETCH 2:3 (UID)")?;
    assert_eq!(by_seq, vec!["* 2 FETCH (UID 2)", "* 3 FETCH (UID 3)"]);
    let high = c.ok("UID FETCH 9:* (FLAGS)")?;
    assert_eq!(
        high.len(),
        1,
        "n:* names the last message even below n: {high:?}"
    );
    assert!(high[0].starts_with("* 6 FETCH (UID 6 "), "{high:?}");
    assert_eq!(c.ok("UID FETCH 1,3:5 (UID)")?.len(), 4);
    let (_, bad) = c.cmd("UID FETCH 1:* (UID BODYSTRUCTURE)")?;
    assert!(bad.starts_with("BAD"), "unknown items are refused: {bad}");
    Ok(())
}

#[test]
fn a_reply_joins_its_parents_thread() -> Result<()> {
    let reply = b"Message-ID: <re@example.org>\r\nIn-Reply-To: <both@example.org>\r\n\r\nx\r\n";
    let gmail = alice().message(GmailMessage::new(reply.to_vec())).start()?;
    let stored = gmail.messages(ALICE);
    assert_eq!(stored[4].thrid, stored[1].msgid);
    assert_ne!(stored[4].msgid, stored[1].msgid);
    Ok(())
}

#[test]
fn fetch_serves_bodies_header_fields_and_mailshift_items() -> Result<()> {
    let gmail = alice().start()?;
    let mut c = Client::login(gmail.port(), ALICE, PW)?;
    c.ok("EXAMINE INBOX")?;
    let raw = message("inbox", "inbox");
    let meta = c.ok("UID FETCH 2 (UID FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK[HEADER.FIELDS (MESSAGE-ID DATE FROM TO SUBJECT)])")?;
    assert_eq!(meta.len(), 1);
    assert!(meta[0].contains(&format!("RFC822.SIZE {}", raw.len())));
    assert!(meta[0].contains("BODY[HEADER.FIELDS (MESSAGE-ID DATE FROM TO SUBJECT)] {"));
    assert!(meta[0].contains("Message-ID: <inbox@example.org>\r\n"));
    assert!(!meta[0].contains("Hello"), "only the header fields");
    let body = c.ok("UID FETCH 2 (UID FLAGS INTERNALDATE BODY.PEEK[])")?;
    let expected = format!(
        "BODY[] {{{}}}\r\n{}",
        raw.len(),
        String::from_utf8_lossy(&raw)
    );
    assert!(body[0].contains(&expected), "{body:?}");
    assert!(!body[0].contains("\\Seen"), "PEEK leaves \\Seen alone");
    assert!(
        !gmail.messages(ALICE)[2]
            .flags
            .contains(&"\\Seen".to_string())
    );
    assert_eq!(
        gmail.bytes_downloaded(),
        literal_len(&meta[0]) + raw.len() as u64
    );
    Ok(())
}

/// The length of the first literal in a response.
fn literal_len(response: &str) -> u64 {
    let n = response
        .split_once('{')
        .and_then(|(_, rest)| rest.split_once('}'));
    n.and_then(|(n, _)| n.parse().ok()).unwrap_or(0)
}

#[test]
fn capability_namespace_and_list_show_gmail_folders_with_special_use() -> Result<()> {
    let gmail = alice().start()?;
    let mut c = Client::connect(gmail.port())?;
    assert!(
        c.greeting.starts_with("* OK [CAPABILITY IMAP4rev1"),
        "{}",
        c.greeting
    );
    let pre = c.ok("CAPABILITY")?.join(" ");
    for cap in [
        "X-GM-EXT-1",
        "UIDPLUS",
        "SPECIAL-USE",
        "LITERAL+",
        "AUTH=XOAUTH2",
        "AUTH=PLAIN",
    ] {
        assert!(
            pre.split_whitespace().any(|c| c == cap),
            "{cap} missing: {pre}"
        );
    }
    let (_, before) = c.cmd("LIST \"\" \"*\"")?;
    assert!(before.starts_with("BAD"), "LIST before login: {before}");
    c.ok(&format!("LOGIN {ALICE} {PW}"))?;
    let post = c.ok("CAPABILITY")?.join(" ");
    assert!(
        post.contains("X-GM-EXT-1") && !post.contains("AUTH="),
        "{post}"
    );
    assert_eq!(
        c.ok("NAMESPACE")?,
        vec!["* NAMESPACE ((\"\" \"/\")) NIL NIL"]
    );
    let list = c.ok("LIST \"\" \"*\"")?;
    for line in [
        "* LIST (\\HasNoChildren) \"/\" \"INBOX\"",
        "* LIST (\\HasChildren) \"/\" \"Work\"",
        "* LIST (\\HasNoChildren) \"/\" \"Work/Projects\"",
        "* LIST (\\Noselect \\HasChildren) \"/\" \"[Gmail]\"",
        "* LIST (\\HasNoChildren \\All) \"/\" \"[Gmail]/All Mail\"",
        "* LIST (\\HasNoChildren \\Drafts) \"/\" \"[Gmail]/Drafts\"",
        "* LIST (\\HasNoChildren \\Important) \"/\" \"[Gmail]/Important\"",
        "* LIST (\\HasNoChildren \\Sent) \"/\" \"[Gmail]/Sent Mail\"",
        "* LIST (\\HasNoChildren \\Junk) \"/\" \"[Gmail]/Spam\"",
        "* LIST (\\HasNoChildren \\Flagged) \"/\" \"[Gmail]/Starred\"",
        "* LIST (\\HasNoChildren \\Trash) \"/\" \"[Gmail]/Trash\"",
    ] {
        assert!(
            list.iter().any(|l| l == line),
            "{line} missing from {list:#?}"
        );
    }
    assert_eq!(list.len(), 11, "{list:#?}");
    assert_eq!(list[0], "* LIST (\\HasNoChildren) \"/\" \"INBOX\"");
    let special = c.ok("LIST (SPECIAL-USE) \"\" \"*\"")?;
    assert_eq!(special.len(), 7, "{special:#?}");
    assert_eq!(c.ok("LIST \"\" \"%\"")?.len(), 3, "INBOX, Work, [Gmail]");
    assert_eq!(c.ok("LSUB \"\" \"*\"")?.len(), 11);
    c.ok("UNSUBSCRIBE \"Work/Projects\"")?;
    assert_eq!(c.ok("LSUB \"\" \"*\"")?.len(), 10);
    c.ok("SUBSCRIBE \"Work/Projects\"")?;
    assert_eq!(c.ok("LSUB \"\" \"*\"")?.len(), 11);

    // CREATE makes a label (parents too); it lists as a folder.
    c.ok("CREATE \"Clients/Acme\"")?;
    let list = c.ok("LIST \"\" \"Clients*\"")?;
    assert_eq!(
        list,
        vec![
            "* LIST (\\HasChildren) \"/\" \"Clients\"",
            "* LIST (\\HasNoChildren) \"/\" \"Clients/Acme\""
        ]
    );
    assert!(
        c.cmd("CREATE \"Clients/Acme\"")?
            .1
            .starts_with("NO [ALREADYEXISTS]")
    );
    assert!(c.cmd("CREATE \"[Gmail]/Mine\"")?.1.starts_with("NO"));
    let id = c.ok("ID (\"name\" \"test\")")?;
    assert!(id[0].contains("\"GImap\""), "{id:?}");
    Ok(())
}

#[test]
fn select_and_status_report_the_view() -> Result<()> {
    let gmail = alice().start()?;
    let mut c = Client::login(gmail.port(), ALICE, PW)?;
    let inbox_validity = gmail.uid_validity(ALICE, "INBOX").unwrap();
    let sel = c.ok("SELECT INBOX")?;
    assert!(sel.contains(&"* 2 EXISTS".to_string()), "{sel:#?}");
    assert!(sel.contains(&format!("* OK [UIDVALIDITY {inbox_validity}] UIDs valid.")));
    assert!(sel.contains(&"* OK [UIDNEXT 3] Predicted next UID.".to_string()));
    assert!(
        sel.iter()
            .any(|l| l.starts_with("* OK [PERMANENTFLAGS (") && l.contains("\\*"))
    );
    let (_, status) = c.cmd("EXAMINE \"[Gmail]/All Mail\"")?;
    assert!(status.starts_with("OK [READ-ONLY]"), "{status}");
    assert_eq!(c.status("[Gmail]/All Mail", "MESSAGES")?, 4);
    assert_eq!(c.status("Work", "UIDNEXT")?, 2);
    assert_eq!(c.status("INBOX", "UNSEEN")?, 1);
    assert!(c.cmd("STATUS \"[Gmail]\" (MESSAGES)")?.1.starts_with("NO"));
    assert!(c.cmd("SELECT \"Nope\"")?.1.starts_with("NO [NONEXISTENT]"));
    Ok(())
}

#[test]
fn append_of_a_known_message_id_adds_the_label_and_no_message() -> Result<()> {
    let gmail = alice().start()?;
    let mut c = Client::login(gmail.port(), ALICE, PW)?;
    let before = gmail.messages(ALICE);
    let all_before = c.status("[Gmail]/All Mail", "MESSAGES")?;
    // "inbox" is in INBOX only; appended to Work, Gmail labels the stored message.
    let status = c.append("Work", "\\Seen", "", &message("inbox", "inbox"))?;
    let validity = gmail.uid_validity(ALICE, "Work").unwrap();
    assert_eq!(status, format!("OK [APPENDUID {validity} 2] (Success)"));
    assert_eq!(c.status("[Gmail]/All Mail", "MESSAGES")?, all_before);
    let after = gmail.messages(ALICE);
    assert_eq!(after.len(), before.len(), "no second message");
    assert_eq!(after[2].labels, vec!["\\Inbox", "Work"]);
    assert_eq!(after[2].msgid, before[2].msgid);
    assert_eq!(gmail.folder_uids(ALICE, "Work")[1], (2, before[2].msgid));
    // Appended again to a folder it is already in: the UID it has there.
    let again = c.append("INBOX", "", "", &message("inbox", "inbox"))?;
    let inbox_validity = gmail.uid_validity(ALICE, "INBOX").unwrap();
    assert_eq!(
        again,
        format!("OK [APPENDUID {inbox_validity} 2] (Success)")
    );
    assert_eq!(gmail.messages(ALICE).len(), before.len());
    Ok(())
}

#[test]
fn append_of_a_new_message_lands_in_its_label_and_all_mail() -> Result<()> {
    let gmail = alice().start()?;
    let mut c = Client::login(gmail.port(), ALICE, PW)?;
    c.ok("SELECT Work")?;
    let raw = message("new", "new");
    let status = c.append(
        "Work",
        "\\Seen $Forwarded",
        "02-Feb-2022 03:04:05 +0100",
        &raw,
    )?;
    let validity = gmail.uid_validity(ALICE, "Work").unwrap();
    assert_eq!(status, format!("OK [APPENDUID {validity} 2] (Success)"));
    let stored = gmail.messages(ALICE);
    assert_eq!(stored.len(), 5);
    let new = &stored[4];
    assert_eq!(
        (new.labels.clone(), new.flags.clone()),
        (
            vec!["Work".to_string()],
            vec!["\\Seen".to_string(), "$Forwarded".to_string()]
        )
    );
    assert_eq!(new.raw, raw);
    assert_eq!(gmail.bytes_uploaded(), raw.len() as u64);
    assert_eq!(
        gmail
            .folder_uids(ALICE, "[Gmail]/All Mail")
            .last()
            .unwrap()
            .1,
        new.msgid
    );
    assert!(
        gmail
            .folder_uids(ALICE, "INBOX")
            .iter()
            .all(|u| u.1 != new.msgid)
    );
    // The selected folder's session hears of it; the body comes back byte for byte.
    let (untagged, _) = c.cmd("NOOP")?;
    assert!(
        untagged.is_empty(),
        "EXISTS came with the APPEND: {untagged:?}"
    );
    let body = c.ok("UID FETCH 2 (BODY.PEEK[] INTERNALDATE X-GM-LABELS)")?;
    assert!(body[0].contains(&String::from_utf8_lossy(&raw).to_string()));
    assert!(body[0].contains("INTERNALDATE \"02-Feb-2022 03:04:05 +0100\""));
    assert!(body[0].contains("X-GM-LABELS (Work)"), "{body:?}");

    // A synchronizing literal to All Mail: archived, no label.
    let raw2 = message("sync", "sync");
    let tag = c.next_tag();
    c.send(format!("{tag} APPEND \"[Gmail]/All Mail\" {{{}}}\r\n", raw2.len()).as_bytes())?;
    assert!(c.response()?.starts_with("+ "));
    c.send(&raw2)?;
    c.send(b"\r\n")?;
    let (_, status) = c.finish(&tag)?;
    let all_validity = gmail.uid_validity(ALICE, "[Gmail]/All Mail").unwrap();
    assert_eq!(status, format!("OK [APPENDUID {all_validity} 6] (Success)"));
    assert!(gmail.messages(ALICE)[5].labels.is_empty());
    let missing = c.append("Nope", "", "", &raw2)?;
    assert!(missing.starts_with("NO [TRYCREATE]"), "{missing}");
    Ok(())
}

#[test]
fn flagging_stars_and_labels_move_messages_between_views() -> Result<()> {
    let gmail = alice().start()?;
    let mut c = Client::login(gmail.port(), ALICE, PW)?;
    assert_eq!(c.status("[Gmail]/Starred", "MESSAGES")?, 0);
    c.ok("SELECT INBOX")?;
    let answer = c.ok("UID STORE 2 +FLAGS (\\Flagged)")?;
    assert_eq!(answer, vec!["* 2 FETCH (UID 2 FLAGS (\\Flagged))"]);
    let starred = c.fetch_all("[Gmail]/Starred", "X-GM-MSGID")?;
    assert_eq!(starred.len(), 1);
    assert_eq!(
        num(&starred[0].1, "X-GM-MSGID"),
        Some(gmail.messages(ALICE)[2].msgid)
    );

    // Unstarred in Starred: it leaves the view, and the session is told.
    c.ok("SELECT \"[Gmail]/Starred\"")?;
    let answer = c.ok("UID STORE 1 -FLAGS.SILENT (\\Flagged)")?;
    assert_eq!(answer, vec!["* 1 EXPUNGE"]);
    assert_eq!(c.status("[Gmail]/Starred", "MESSAGES")?, 0);

    // Labels: added and removed with X-GM-LABELS, which moves the message between folders.
    c.ok("SELECT INBOX")?;
    let answer = c.ok("UID STORE 2 +X-GM-LABELS (Work \"New Label\")")?;
    assert_eq!(
        answer,
        vec![r#"* 2 FETCH (UID 2 X-GM-LABELS ("\\Inbox" Work "New Label"))"#]
    );
    assert_eq!(c.status("Work", "MESSAGES")?, 2);
    assert_eq!(
        c.status("New Label", "MESSAGES")?,
        1,
        "the label was created"
    );
    let answer = c.ok("UID STORE 2 -X-GM-LABELS.SILENT (\\Inbox)")?;
    assert_eq!(answer, vec!["* 2 EXPUNGE"], "archived: out of INBOX");
    assert_eq!(c.status("INBOX", "MESSAGES")?, 1);
    // Flags by sequence number, replaced.
    let answer = c.ok("STORE 1 FLAGS (\\Answered)")?;
    assert_eq!(answer, vec!["* 1 FETCH (FLAGS (\\Answered))"]);
    let (_, ro) = {
        c.ok("EXAMINE INBOX")?;
        c.cmd("UID STORE 1 +FLAGS (\\Seen)")?
    };
    assert!(ro.starts_with("NO"), "EXAMINE is read-only: {ro}");
    Ok(())
}

#[test]
fn copy_and_move_add_and_remove_labels() -> Result<()> {
    let gmail = alice().start()?;
    let mut c = Client::login(gmail.port(), ALICE, PW)?;
    c.ok("SELECT INBOX")?;
    let (_, copied) = c.cmd("UID COPY 2 \"Work/Projects\"")?;
    let validity = gmail.uid_validity(ALICE, "Work/Projects").unwrap();
    assert_eq!(copied, format!("OK [COPYUID {validity} 2 2] (Success)"));
    let moved = c.ok("UID MOVE 1 \"[Gmail]/Trash\"")?;
    assert_eq!(moved[1], "* 1 EXPUNGE", "{moved:?}");
    let both = &gmail.messages(ALICE)[1];
    assert!(both.labels.contains(&"\\Trash".into()) && !both.labels.contains(&"\\Inbox".into()));
    assert_eq!(
        c.status("[Gmail]/All Mail", "MESSAGES")?,
        3,
        "Trash is not in All Mail"
    );
    assert_eq!(
        c.status("Work", "MESSAGES")?,
        0,
        "nor in its labels' folders"
    );
    Ok(())
}

#[test]
fn authenticate_plain_and_xoauth2_right_and_wrong() -> Result<()> {
    let gmail = alice().start()?;
    let port = gmail.port();
    // PLAIN, with the response after a continuation and with SASL-IR.
    let mut c = Client::connect(port)?;
    let tag = c.next_tag();
    c.send(format!("{tag} AUTHENTICATE PLAIN\r\n").as_bytes())?;
    assert_eq!(c.response()?, "+ ");
    c.send(format!("{}\r\n", base64(format!("\0{ALICE}\0{PW}").as_bytes())).as_bytes())?;
    assert_eq!(
        c.finish(&tag)?.1,
        format!("OK {ALICE} authenticated (Success)")
    );
    let mut c = Client::connect(port)?;
    let (_, wrong) = c.cmd(&format!(
        "AUTHENTICATE PLAIN {}",
        base64(format!("\0{ALICE}\0nope").as_bytes())
    ))?;
    assert_eq!(
        wrong,
        "NO [AUTHENTICATIONFAILED] Invalid credentials (Failure)"
    );
    assert!(
        c.cmd(&format!("LOGIN {ALICE} nope"))?
            .1
            .starts_with("NO [AUTHENTICATIONFAILED]")
    );

    // XOAUTH2: user=...^Aauth=Bearer ...^A^A.
    let xoauth =
        |token: &str| base64(format!("user={ALICE}\x01auth=Bearer {token}\x01\x01").as_bytes());
    let mut c = Client::connect(port)?;
    c.ok(&format!("AUTHENTICATE XOAUTH2 {}", xoauth("alice-token")))?;
    assert_eq!(c.status("INBOX", "MESSAGES")?, 2);
    let mut c = Client::connect(port)?;
    let tag = c.next_tag();
    c.send(format!("{tag} AUTHENTICATE XOAUTH2\r\n").as_bytes())?;
    assert_eq!(c.response()?, "+ ");
    c.send(format!("{}\r\n", xoauth("stale-token")).as_bytes())?;
    let challenge = c.response()?;
    let json = challenge.strip_prefix("+ ").context("a challenge")?;
    use base64::Engine as _;
    let json = String::from_utf8(base64::engine::general_purpose::STANDARD.decode(json)?)?;
    assert!(
        json.contains("\"status\":\"401\"") && json.contains("https://mail.google.com/"),
        "{json}"
    );
    c.send(b"\r\n")?;
    assert_eq!(
        c.finish(&tag)?.1,
        "NO [AUTHENTICATIONFAILED] Invalid credentials (Failure)"
    );
    let (_, after) = c.cmd("SELECT INBOX")?;
    assert!(after.starts_with("BAD"), "still not logged in: {after}");
    Ok(())
}

#[test]
fn the_download_budget_answers_overquota_once_spent() -> Result<()> {
    let size = message("archived", "archived").len() as u64;
    let gmail = alice().download_limit(size + 1).start()?;
    let mut c = Client::login(gmail.port(), ALICE, PW)?;
    c.ok("EXAMINE \"[Gmail]/All Mail\"")?;
    c.ok("UID FETCH 1 (BODY.PEEK[])")?;
    assert_eq!(gmail.bytes_downloaded(), size);
    // Not spent yet: this one is served, and crosses the limit.
    c.ok("UID FETCH 2 (BODY.PEEK[])")?;
    let (untagged, status) = c.cmd("UID FETCH 3:4 (UID BODY.PEEK[])")?;
    assert_eq!(
        status,
        "NO [OVERQUOTA] Account exceeded command or bandwidth limits. (Failure)"
    );
    assert!(untagged.is_empty(), "{untagged:?}");
    // Metadata still flows; bodies stay refused, on any connection.
    assert_eq!(c.ok("UID FETCH 1:* (UID FLAGS X-GM-MSGID)")?.len(), 4);
    let mut other = Client::login(gmail.port(), ALICE, PW)?;
    other.ok("EXAMINE INBOX")?;
    assert!(
        other
            .cmd("FETCH 1 (BODY[])")?
            .1
            .starts_with("NO [OVERQUOTA]")
    );
    Ok(())
}

#[test]
fn the_upload_budget_answers_overquota_once_spent() -> Result<()> {
    let gmail = alice().upload_limit(10).start()?;
    let mut c = Client::login(gmail.port(), ALICE, PW)?;
    assert!(
        c.append("INBOX", "", "", &message("u1", "u1"))?
            .starts_with("OK [APPENDUID")
    );
    let refused = c.append("INBOX", "", "", &message("u2", "u2"))?;
    assert_eq!(
        refused,
        "NO [OVERQUOTA] Account exceeded command or bandwidth limits. (Failure)"
    );
    assert_eq!(gmail.messages(ALICE).len(), 5);
    Ok(())
}

#[test]
fn the_connection_limit_refuses_the_sixteenth_login() -> Result<()> {
    let gmail = alice()
        .user("bob@example.com", "bob-pw")
        .max_connections(15)
        .start()?;
    let port = gmail.port();
    let mut open: Vec<Client> = (0..15)
        .map(|_| Client::login(port, ALICE, PW))
        .collect::<Result<_>>()?;
    assert_eq!(gmail.sessions(ALICE), 15);
    let mut sixteenth = Client::connect(port)?;
    let (_, refused) = sixteenth.cmd(&format!("LOGIN {ALICE} {PW}"))?;
    assert_eq!(
        refused,
        "NO [ALERT] Too many simultaneous connections. (Failure)"
    );
    // Per account: Bob logs in.
    Client::login(port, "bob@example.com", "bob-pw")?;
    // One leaves; once the server has seen it go, a login is accepted again.
    open.pop().context("a client")?.ok("LOGOUT").ok();
    wait::until_true(
        Duration::from_secs(10),
        "the server to drop a session",
        || Ok(gmail.sessions(ALICE) == 14),
    )?;
    sixteenth.ok(&format!("LOGIN {ALICE} {PW}"))?;
    assert!(gmail.connections() >= 17);
    assert!(gmail.commands().iter().any(|c| c.contains("LOGIN")));
    Ok(())
}

#[test]
fn idle_reports_other_sessions_additions() -> Result<()> {
    let gmail = alice().start()?;
    let mut watcher = Client::login(gmail.port(), ALICE, PW)?;
    watcher.ok("SELECT INBOX")?;
    let tag = watcher.next_tag();
    watcher.send(format!("{tag} IDLE\r\n").as_bytes())?;
    assert!(watcher.response()?.starts_with("+ "));
    let mut writer = Client::login(gmail.port(), ALICE, PW)?;
    writer.append("INBOX", "", "", &message("pushed", "pushed"))?;
    assert_eq!(watcher.response()?, "* 3 EXISTS");
    watcher.send(b"DONE\r\n")?;
    assert!(watcher.finish(&tag)?.1.starts_with("OK"));
    Ok(())
}

#[test]
fn the_stand_in_can_be_shared_between_threads() {
    fn check<T: Send + Sync>() {}
    check::<Gmail>();
}
