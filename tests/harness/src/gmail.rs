//! A stand-in for Gmail's IMAP server, for tests of mailshift's Gmail support: no real
//! Gmail can run in a test, so this is, like [`crate::Hostile`], a scripted server, not a
//! real one. It follows Google's published documentation (the IMAP extensions page,
//! <https://developers.google.com/gmail/imap/imap-extensions>, the XOAUTH2 protocol page,
//! <https://developers.google.com/gmail/imap/xoauth2-protocol>, and Gmail Help on IMAP
//! and its limits), not Gmail's code, so it is only as faithful as those pages.
//!
//! What it follows:
//!
//! * **Labels, not folders.** One store of messages per account, each with its
//!   `X-GM-MSGID` (unique, 64-bit), `X-GM-THRID`, raw bytes, INTERNALDATE, flags and
//!   labels. Folders are views of it: `INBOX` (label `\Inbox`), `[Gmail]/All Mail`
//!   (everything outside Spam and Trash; `\All`), `[Gmail]/Sent Mail` (`\Sent`),
//!   `[Gmail]/Drafts` (label `\Draft`), `[Gmail]/Spam` (`\Junk`), `[Gmail]/Trash`,
//!   `[Gmail]/Starred` (the messages flagged `\Flagged`), `[Gmail]/Important`, and one
//!   folder per user label (delimiter `/`, parents made with their children); `[Gmail]`
//!   is `\Noselect`. A message in Spam or Trash shows in no other view.
//! * **UIDs per view.** Each folder has its own UIDVALIDITY and UIDs: a message gets the
//!   folder's next UID when it enters the view; UIDs ascend and are never reused.
//! * **The extensions** (`X-GM-EXT-1`): FETCH `X-GM-MSGID`, `X-GM-THRID`, `X-GM-LABELS`
//!   (system labels quoted with their backslash, `"\\Inbox"`; user labels as atoms where
//!   they can be); STORE `[+-]X-GM-LABELS`; SPECIAL-USE attributes on every LIST and
//!   `LIST (SPECIAL-USE)`.
//! * **APPEND and COPY add labels**: to a label's folder, that label; to Starred,
//!   `\Flagged`; to All Mail, none. Gmail keeps one copy of a message: an APPEND whose
//!   Message-ID is a stored message's (outside Spam and Trash) adds the folder's label to
//!   that message (its flags unchanged) and answers APPENDUID with its UID in the folder.
//!   MOVE also takes off the source folder's label (from All Mail, none).
//! * **Logins**: LOGIN, AUTHENTICATE PLAIN and XOAUTH2 (also with SASL-IR); a wrong token
//!   gets the documented base64 JSON challenge, then `NO [AUTHENTICATIONFAILED] Invalid
//!   credentials (Failure)` after the client's empty answer.
//! * **Limits, on demand**: bandwidth ([`GmailBuilder::download_limit`],
//!   [`GmailBuilder::upload_limit`]) and simultaneous connections
//!   ([`GmailBuilder::max_connections`]; Gmail allows 15), refused with Gmail's texts.
//!
//! Commands: CAPABILITY, NOOP, LOGOUT, ID, LOGIN, AUTHENTICATE, NAMESPACE, LIST, LSUB,
//! STATUS, SELECT, EXAMINE, CREATE, SUBSCRIBE, UNSUBSCRIBE, APPEND (`{n}` and `{n+}`),
//! IDLE, and FETCH, STORE, COPY, MOVE by sequence number and UID. FETCH items: UID,
//! FLAGS, INTERNALDATE, RFC822.SIZE, the three X-GM ones, and `BODY[...]` or
//! `BODY.PEEK[...]` of the whole message, HEADER, TEXT or `HEADER.FIELDS[.NOT] (...)`;
//! any other item is answered BAD. A selected session hears of additions and removals
//! (EXISTS, EXPUNGE) at its next command or in IDLE.
//!
//! Left out: SEARCH and `X-GM-RAW`; EXPUNGE, CLOSE, UNSELECT and what `\Deleted` means to
//! Gmail (the flag is only stored); DELETE and RENAME; ENVELOPE, BODYSTRUCTURE, the
//! RFC822 items and macros, MIME part and partial sections; CONDSTORE, COMPRESS, QUOTA,
//! TLS; localized `[Google Mail]` names and "Show in IMAP" settings; other sessions' flag
//! changes pushed as FETCH; Gmail's threading (here a message joins the thread of a stored
//! message that its In-Reply-To or References names); INTERNALDATE "now" (an APPEND
//! without a date gets [`DEFAULT_DATE`]); per-minute command limits and the BYE Gmail may
//! send at a limit.

use std::collections::{BTreeMap, HashSet};
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::Duration;

use anyhow::Result;

/// INTERNALDATE of a message that was given none.
pub const DEFAULT_DATE: &str = "01-Jan-2024 10:00:00 +0000";

// Gmail's refusals. The bandwidth one as users who hit it quote it (e.g.
// https://edoceo.com/notabene/account-exceeded-command-bandwidth; the limits themselves are
// in Google Workspace Admin Help, "Gmail bandwidth limits": 2500 MB a day down, 500 MB up
// over IMAP). The connection one with the message Gmail Help names in "Too many
// simultaneous connections" (answer 97150; 10 connections then, 15 now per client vendors'
// pages). The XOAUTH2 challenge (a JSON status, schemes and scope) from the XOAUTH2
// protocol page; the failed login as Gmail answers a wrong password, which that page does
// not show.
const OVERQUOTA: &str = "NO [OVERQUOTA] Account exceeded command or bandwidth limits. (Failure)";
const TOO_MANY: &str = "NO [ALERT] Too many simultaneous connections. (Failure)";
const BAD_LOGIN: &str = "NO [AUTHENTICATIONFAILED] Invalid credentials (Failure)";
const OAUTH_ERROR: &str =
    r#"{"status":"401","schemes":"bearer mac","scope":"https://mail.google.com/"}"#;
const TRYCREATE: &str = "NO [TRYCREATE] Folder doesn't exist. (Failure)";
const PARSE: &str = "BAD Could not parse command";
/// Gmail's APPENDLIMIT; a longer literal ends the connection.
const MAX_LITERAL: usize = 35_651_584;
const CAPS: &str =
    "IMAP4rev1 UIDPLUS X-GM-EXT-1 SPECIAL-USE LITERAL+ NAMESPACE ID IDLE MOVE CHILDREN";
const PRE_LOGIN_CAPS: &str = " SASL-IR AUTH=PLAIN AUTH=XOAUTH2";
const FLAGS: &str = "\\Seen \\Answered \\Flagged \\Deleted \\Draft \\Recent";
const LABELS: &str = "\\Inbox \\Sent \\Draft \\Important \\Spam \\Trash \\Starred";
const ITEMS: &str = "UID FLAGS RFC822.SIZE INTERNALDATE X-GM-MSGID X-GM-THRID X-GM-LABELS";

/// A message put in an account before start.
#[derive(Clone, Debug)]
pub struct GmailMessage {
    pub raw: Vec<u8>,
    /// `\Inbox`, `\Sent`, `\Draft`, `\Important`, `\Spam`, `\Trash`, `\Starred` (sets
    /// `\Flagged`) or user labels (created if not declared). None: archived.
    pub labels: Vec<String>,
    pub flags: Vec<String>,
    /// INTERNALDATE as IMAP writes it.
    pub date: String,
}

impl GmailMessage {
    /// `raw`, archived (only in All Mail), without flags, at [`DEFAULT_DATE`].
    pub fn new(raw: impl Into<Vec<u8>>) -> GmailMessage {
        let (labels, flags, date) = (Vec::new(), Vec::new(), DEFAULT_DATE.into());
        GmailMessage {
            raw: raw.into(),
            labels,
            flags,
            date,
        }
    }

    pub fn labels(mut self, labels: &[&str]) -> GmailMessage {
        self.labels = labels.iter().map(|s| s.to_string()).collect();
        self
    }

    pub fn flags(mut self, flags: &[&str]) -> GmailMessage {
        self.flags = flags.iter().map(|s| s.to_string()).collect();
        self
    }

    pub fn date(mut self, date: &str) -> GmailMessage {
        self.date = date.into();
        self
    }
}

/// A message as the stand-in holds it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoredMessage {
    pub msgid: u64,
    pub thrid: u64,
    pub labels: Vec<String>,
    pub flags: Vec<String>,
    pub raw: Vec<u8>,
    pub date: String,
}

/// Builds a [`Gmail`]. `label` and `message` are for the user named last (they panic
/// before any).
#[derive(Default)]
pub struct GmailBuilder {
    users: Vec<(String, Account, Vec<String>, Vec<GmailMessage>)>,
    limits: Limits,
}

#[derive(Clone, Copy, Default)]
struct Limits {
    download: Option<u64>,
    upload: Option<u64>,
    connections: Option<usize>,
}

impl GmailBuilder {
    fn spec(&mut self, user: &str) -> &mut (String, Account, Vec<String>, Vec<GmailMessage>) {
        let i = self
            .users
            .iter()
            .position(|u| u.0 == user)
            .unwrap_or_else(|| {
                self.users
                    .push((user.into(), Account::new(), Vec::new(), Vec::new()));
                self.users.len() - 1
            });
        let spec = self.users.remove(i);
        self.users.push(spec);
        self.users.last_mut().expect("just pushed")
    }

    /// An account logging in with `password` (LOGIN, AUTHENTICATE PLAIN).
    pub fn user(mut self, user: &str, password: &str) -> GmailBuilder {
        self.spec(user).1.password = Some(password.into());
        self
    }

    /// An OAuth 2.0 access token AUTHENTICATE XOAUTH2 accepts for `user`.
    pub fn token(mut self, user: &str, token: &str) -> GmailBuilder {
        self.spec(user).1.token = Some(token.into());
        self
    }

    /// A user label, and so a folder, e.g. `Work/Projects`.
    pub fn label(mut self, label: &str) -> GmailBuilder {
        let user = self
            .users
            .last_mut()
            .expect("label() after user() or token()");
        user.2.push(label.into());
        self
    }

    pub fn message(mut self, message: GmailMessage) -> GmailBuilder {
        let user = self
            .users
            .last_mut()
            .expect("message() after user() or token()");
        user.3.push(message);
        self
    }

    /// Body bytes to serve (all connections) before body fetches answer `NO [OVERQUOTA]`;
    /// the fetch that crosses the limit is still served.
    pub fn download_limit(mut self, bytes: u64) -> GmailBuilder {
        self.limits.download = Some(bytes);
        self
    }

    /// Likewise for the bytes APPEND receives.
    pub fn upload_limit(mut self, bytes: u64) -> GmailBuilder {
        self.limits.upload = Some(bytes);
        self
    }

    /// Logged-in connections an account may have at once (Gmail: 15); the login over the
    /// limit answers `NO [ALERT] Too many simultaneous connections. (Failure)`.
    pub fn max_connections(mut self, n: usize) -> GmailBuilder {
        self.limits.connections = Some(n);
        self
    }

    /// Starts the server on a free loopback port.
    pub fn start(self) -> Result<Gmail> {
        let listener = TcpListener::bind((crate::HOST, 0))?;
        let port = listener.local_addr()?.port();
        listener.set_nonblocking(true)?;
        let sh = Arc::new(Shared {
            accounts: Mutex::new(BTreeMap::new()),
            limits: self.limits,
            stop: AtomicBool::new(false),
            commands: Mutex::new(Vec::new()),
            connections: AtomicUsize::new(0),
            downloaded: AtomicU64::new(0),
            uploaded: AtomicU64::new(0),
        });
        for (name, mut a, labels, messages) in self.users {
            labels.iter().for_each(|l| a.add_label_folder(l));
            for m in messages {
                let mut msg = StoredMessage {
                    raw: m.raw,
                    date: m.date,
                    ..Default::default()
                };
                m.flags
                    .iter()
                    .for_each(|f| add(&mut msg.flags, &canonical(f, FLAGS)));
                m.labels.iter().for_each(|l| a.add_label(&mut msg, l));
                a.store(msg);
            }
            a.refresh();
            sh.lock().insert(name, a);
        }
        let shared = sh.clone();
        thread::spawn(move || {
            while !sh.stop.load(Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        sh.connections.fetch_add(1, Relaxed);
                        let sh = sh.clone();
                        thread::spawn(move || Conn::serve(sh, stream));
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        thread::sleep(Duration::from_millis(5))
                    }
                    Err(_) => break,
                }
            }
        });
        Ok(Gmail { port, shared })
    }
}

/// A running stand-in, stopped on drop.
pub struct Gmail {
    port: u16,
    shared: Arc<Shared>,
}

impl Gmail {
    pub fn builder() -> GmailBuilder {
        GmailBuilder::default()
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Every command's first line so far, tag included, on all connections.
    pub fn commands(&self) -> Vec<String> {
        self.shared
            .commands
            .lock()
            .map(|c| c.clone())
            .unwrap_or_default()
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Relaxed)
    }

    /// `user`'s logged-in connections open now.
    pub fn sessions(&self, user: &str) -> usize {
        self.shared.lock().get(user).map_or(0, |a| a.open)
    }

    /// `user`'s store, in the order its messages were stored.
    pub fn messages(&self, user: &str) -> Vec<StoredMessage> {
        self.shared
            .lock()
            .get(user)
            .map_or(Vec::new(), |a| a.msgs.clone())
    }

    /// `(UID, X-GM-MSGID)` of each message in `folder`, by ascending UID.
    pub fn folder_uids(&self, user: &str, folder: &str) -> Vec<(u32, u64)> {
        let st = self.shared.lock();
        let Some((a, f)) = st.get(user).and_then(|a| Some((a, a.folder(folder)?))) else {
            return Vec::new();
        };
        f.members
            .iter()
            .map(|&(u, i)| (u, a.msgs[i].msgid))
            .collect()
    }

    pub fn uid_validity(&self, user: &str, folder: &str) -> Option<u32> {
        Some(self.shared.lock().get(user)?.folder(folder)?.validity)
    }

    /// Body bytes served so far (what the download limit counts).
    pub fn bytes_downloaded(&self) -> u64 {
        self.shared.downloaded.load(Relaxed)
    }

    /// Message bytes APPEND received so far (what the upload limit counts).
    pub fn bytes_uploaded(&self) -> u64 {
        self.shared.uploaded.load(Relaxed)
    }
}

impl Drop for Gmail {
    fn drop(&mut self) {
        self.shared.stop.store(true, Relaxed);
    }
}

type Accounts = BTreeMap<String, Account>;

struct Shared {
    accounts: Mutex<Accounts>,
    limits: Limits,
    stop: AtomicBool,
    commands: Mutex<Vec<String>>,
    connections: AtomicUsize,
    downloaded: AtomicU64,
    uploaded: AtomicU64,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Accounts> {
        self.accounts.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Gmail's ids are large 64-bit numbers; these look alike and are unique per process.
static NEXT_MSGID: AtomicU64 = AtomicU64::new(1_700_000_000_000_000_000);

#[derive(Clone, Debug, PartialEq)]
enum View {
    All,
    Starred,
    Label(String),
}

impl View {
    fn contains(&self, m: &StoredMessage) -> bool {
        let has = |l: &str| m.labels.iter().any(|x| x == l);
        let (spam, trash) = (has("\\Spam"), has("\\Trash"));
        match self {
            View::Label(l) if l == "\\Trash" => trash,
            View::Label(l) if l == "\\Spam" => spam && !trash,
            _ if spam || trash => false,
            View::All => true,
            View::Starred => m.flags.iter().any(|f| f == "\\Flagged"),
            View::Label(l) => has(l),
        }
    }

    /// The label (for Starred: the flag, as `\Starred`) that puts a message in the view.
    fn label(&self) -> Option<String> {
        match self {
            View::All => None,
            View::Starred => Some("\\Starred".into()),
            View::Label(l) => Some(l.clone()),
        }
    }
}

/// The `[Gmail]` folders: name, SPECIAL-USE attribute, view.
fn system_folders() -> Vec<(&'static str, &'static str, View)> {
    let label = |l: &str| View::Label(l.into());
    vec![
        ("[Gmail]/All Mail", "\\All", View::All),
        ("[Gmail]/Drafts", "\\Drafts", label("\\Draft")),
        ("[Gmail]/Important", "\\Important", label("\\Important")),
        ("[Gmail]/Sent Mail", "\\Sent", label("\\Sent")),
        ("[Gmail]/Spam", "\\Junk", label("\\Spam")),
        ("[Gmail]/Starred", "\\Flagged", View::Starred),
        ("[Gmail]/Trash", "\\Trash", label("\\Trash")),
    ]
}

struct Folder {
    name: String,
    view: View,
    special: Option<&'static str>,
    validity: u32,
    next_uid: u32,
    /// `(UID, index in the store)`, by ascending UID.
    members: Vec<(u32, usize)>,
    subscribed: bool,
}

#[derive(Default)]
struct Account {
    password: Option<String>,
    token: Option<String>,
    msgs: Vec<StoredMessage>,
    folders: Vec<Folder>,
    /// Logged-in connections now.
    open: usize,
}

impl Account {
    fn new() -> Account {
        let mut a = Account::default();
        a.add_folder("INBOX", View::Label("\\Inbox".into()), None);
        for (name, special, view) in system_folders() {
            a.add_folder(name, view, Some(special));
        }
        a
    }

    fn add_folder(&mut self, name: &str, view: View, special: Option<&'static str>) {
        let validity = self.folders.len() as u32 + 1;
        let (name, members) = (name.to_string(), Vec::new());
        let f = Folder {
            name,
            view,
            special,
            validity,
            next_uid: 1,
            members,
            subscribed: true,
        };
        self.folders.push(f);
    }

    /// A user label's folder and its parents' (Gmail nests `a/b` under `a`).
    fn add_label_folder(&mut self, label: &str) {
        for (i, _) in label.match_indices('/').chain([(label.len(), "")]) {
            if self.folder(&label[..i]).is_none() {
                self.add_folder(&label[..i], View::Label(label[..i].into()), None);
            }
        }
    }

    /// Adds a label to `m`: `\Starred` as the flag, a new user label with its folder.
    fn add_label(&mut self, m: &mut StoredMessage, label: &str) {
        match canonical(label, LABELS).as_str() {
            "\\Starred" => add(&mut m.flags, "\\Flagged"),
            l if l.starts_with('\\') => add(&mut m.labels, l),
            l => {
                self.add_label_folder(l);
                add(&mut m.labels, l);
            }
        }
    }

    fn remove_label(m: &mut StoredMessage, label: &str) {
        match canonical(label, LABELS).as_str() {
            "\\Starred" => m.flags.retain(|f| f != "\\Flagged"),
            l => m.labels.retain(|x| x != l),
        }
    }

    fn folder(&self, name: &str) -> Option<&Folder> {
        self.folders.get(self.folder_index(name)?)
    }

    fn folder_index(&self, name: &str) -> Option<usize> {
        let name = if name.eq_ignore_ascii_case("INBOX") {
            "INBOX"
        } else {
            name
        };
        self.folders.iter().position(|f| f.name == name)
    }

    /// Gives `m` its ids and stores it (in no folder until [`Account::refresh`]).
    fn store(&mut self, mut m: StoredMessage) -> usize {
        m.msgid = NEXT_MSGID.fetch_add(1_000_003, Relaxed);
        let refs: Vec<String> = ["in-reply-to", "references"]
            .iter()
            .filter_map(|h| header(&m.raw, h))
            .collect();
        let parent = self.msgs.iter().find(|p| {
            header(&p.raw, "message-id").is_some_and(|id| refs.iter().any(|r| r.contains(&id)))
        });
        m.thrid = parent.map_or(m.msgid, |p| p.thrid);
        self.msgs.push(m);
        self.msgs.len() - 1
    }

    /// Brings every folder's members up to date with the messages' labels and flags.
    fn refresh(&mut self) {
        let msgs = &self.msgs;
        for f in &mut self.folders {
            f.members.retain(|&(_, i)| f.view.contains(&msgs[i]));
            let present: HashSet<usize> = f.members.iter().map(|m| m.1).collect();
            for (i, m) in msgs.iter().enumerate() {
                if !present.contains(&i) && f.view.contains(m) {
                    f.members.push((f.next_uid, i));
                    f.next_uid += 1;
                }
            }
        }
    }

    /// Changes message `i` with `f`, which may add labels and so folders ([`Account::refresh`]
    /// after).
    fn change(&mut self, i: usize, f: impl FnOnce(&mut Account, &mut StoredMessage)) {
        let mut m = std::mem::take(&mut self.msgs[i]);
        f(self, &mut m);
        self.msgs[i] = m;
    }
}

fn add(list: &mut Vec<String>, item: &str) {
    if !list.iter().any(|x| x == item) {
        list.push(item.into());
    }
}

/// `s` spelt as in `known` if it is one of them (IMAP's system names ignore case).
fn canonical(s: &str, known: &str) -> String {
    let k = known.split(' ').find(|k| k.eq_ignore_ascii_case(s));
    k.map_or_else(|| s.to_string(), |k| k.to_string())
}

fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// X-GM-LABELS as Gmail writes it: system labels quoted, user labels atoms if they can be.
fn labels_list(labels: &[String]) -> String {
    let one = |l: &String| match l
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    {
        true if !l.is_empty() && !l.eq_ignore_ascii_case("NIL") => l.clone(),
        _ => quote(l),
    };
    format!(
        "X-GM-LABELS ({})",
        labels.iter().map(one).collect::<Vec<_>>().join(" ")
    )
}

fn header_len(raw: &[u8]) -> usize {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4);
    end.or_else(|| raw.windows(2).position(|w| w == b"\n\n").map(|p| p + 2))
        .unwrap_or(raw.len())
}

/// The header fields: lower-cased name and bytes, continuation lines included.
fn fields(raw: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = Vec::new();
    for line in raw[..header_len(raw)].split_inclusive(|&b| b == b'\n') {
        match (line[0], out.last_mut()) {
            (b'\r' | b'\n', _) => break,
            (b' ' | b'\t', Some(last)) => last.1.extend_from_slice(line),
            _ => {
                let name = line.split(|&b| b == b':').next().unwrap_or_default();
                let name = String::from_utf8_lossy(name).trim().to_ascii_lowercase();
                out.push((name, line.to_vec()));
            }
        }
    }
    out
}

/// The unfolded value of the first field called `name` (lower case).
fn header(raw: &[u8], name: &str) -> Option<String> {
    let (_, field) = fields(raw).into_iter().find(|(n, _)| n == name)?;
    let text = String::from_utf8_lossy(&field).replace(['\r', '\n'], "");
    Some(text.split_once(':')?.1.trim().to_string())
}

fn section_bytes(raw: &[u8], section: &str) -> Vec<u8> {
    let h = header_len(raw);
    match section {
        "" => raw.to_vec(),
        "HEADER" => raw[..h].to_vec(),
        "TEXT" => raw[h..].to_vec(),
        s => {
            let not = s.starts_with("HEADER.FIELDS.NOT");
            let list = s.split_once('(').map_or("", |p| p.1).trim_end_matches(')');
            let names: Vec<String> = list
                .split_whitespace()
                .map(str::to_ascii_lowercase)
                .collect();
            let matching = fields(raw)
                .into_iter()
                .filter(|(n, _)| names.contains(n) != not);
            let mut out: Vec<u8> = matching.flat_map(|f| f.1).collect();
            out.extend_from_slice(b"\r\n");
            out
        }
    }
}

#[derive(Clone, Debug)]
enum Tok {
    Atom(String),
    Str(Vec<u8>),
    List(Vec<Tok>),
}

impl Tok {
    fn text(&self) -> Option<String> {
        match self {
            Tok::Atom(a) => Some(a.clone()),
            Tok::Str(s) => Some(String::from_utf8_lossy(s).into_owned()),
            Tok::List(_) => None,
        }
    }

    /// The texts of a list, or of one item.
    fn texts(&self) -> Option<Vec<String>> {
        match self {
            Tok::List(l) => l.iter().map(Tok::text).collect(),
            t => Some(vec![t.text()?]),
        }
    }
}

/// A command's tokens, literals inline (`{n}` CRLF, then n bytes). An atom runs through
/// brackets: `BODY.PEEK[HEADER.FIELDS (A B)]` is one.
fn tokens(b: &[u8]) -> Result<Vec<Tok>, &'static str> {
    let mut stack = vec![Vec::new()];
    let mut p = 0;
    while p < b.len() {
        p += 1;
        let tok = match b[p - 1] {
            b' ' | b'\r' | b'\n' => continue,
            b'(' => {
                stack.push(Vec::new());
                continue;
            }
            b')' if stack.len() > 1 => Tok::List(stack.pop().unwrap_or_default()),
            b')' => return Err("unbalanced )"),
            b'"' => {
                let mut s = Vec::new();
                while let Some(&c) = b.get(p).filter(|&&c| c != b'"') {
                    p += 1;
                    s.push(if c == b'\\' {
                        *b.get(p).ok_or("bad escape")?
                    } else {
                        c
                    });
                    p += usize::from(c == b'\\');
                }
                p += 1;
                Tok::Str(s)
            }
            b'{' => {
                let close = p + b[p..]
                    .iter()
                    .position(|&c| c == b'}')
                    .ok_or("bad literal")?;
                let n = String::from_utf8_lossy(&b[p..close])
                    .trim_end_matches('+')
                    .parse::<usize>();
                let start = close
                    + if b.get(close + 1) == Some(&b'\r') {
                        3
                    } else {
                        2
                    };
                p = start + n.map_err(|_| "bad literal")?;
                Tok::Str(b.get(start..p).ok_or("short literal")?.to_vec())
            }
            _ => {
                let (start, mut depth) = (p - 1, 0);
                while let Some(&c) = b.get(p) {
                    if c == b'\r' || c == b'\n' || (depth == 0 && b" ()\"".contains(&c)) {
                        break;
                    }
                    depth += i32::from(c == b'[') - i32::from(c == b']');
                    p += 1;
                }
                Tok::Atom(String::from_utf8_lossy(&b[start..p]).into_owned())
            }
        };
        stack.last_mut().ok_or("unbalanced")?.push(tok);
    }
    if stack.len() != 1 {
        return Err("unbalanced (");
    }
    Ok(stack.pop().unwrap_or_default())
}

/// Whether `n` is in the sequence set, `*` standing for `max`; `None` if malformed.
fn in_set(set: &str, max: u32, n: u32) -> Option<bool> {
    let num = |s: &str| {
        if s == "*" {
            Some(max)
        } else {
            s.parse().ok().filter(|&n| n > 0)
        }
    };
    let mut hit = false;
    for part in set.split(',') {
        let (a, b) = part.split_once(':').unwrap_or((part, part));
        let (a, b) = (num(a)?, num(b)?);
        hit |= (a.min(b)..=a.max(b)).contains(&n);
    }
    Some(hit)
}

/// LIST's wildcards: `*` anything, `%` anything but the delimiter.
fn wildmat(pat: &[u8], name: &[u8]) -> bool {
    match pat.split_first() {
        None => name.is_empty(),
        Some((b'*', rest)) => (0..=name.len()).any(|i| wildmat(rest, &name[i..])),
        Some((b'%', rest)) => (0..=name.len())
            .take_while(|&i| i == 0 || name[i - 1] != b'/')
            .any(|i| wildmat(rest, &name[i..])),
        Some((c, rest)) => name.first() == Some(c) && wildmat(rest, &name[1..]),
    }
}

/// A handler's way out: an I/O error, or the tagged status to answer at once.
enum Fail {
    Io(io::Error),
    Say(String),
}

impl From<io::Error> for Fail {
    fn from(e: io::Error) -> Fail {
        Fail::Io(e)
    }
}

type Reply = Result<String, Fail>;

fn say<T>(status: &str) -> Result<T, Fail> {
    Err(Fail::Say(status.into()))
}

fn arg(args: &[Tok], i: usize) -> Result<String, Fail> {
    args.get(i)
        .and_then(Tok::text)
        .map_or_else(|| say(PARSE), Ok)
}

fn list_arg(args: &[Tok], i: usize) -> Result<Vec<String>, Fail> {
    args.get(i)
        .and_then(Tok::texts)
        .map_or_else(|| say(PARSE), Ok)
}

fn account<'a>(st: &'a mut Accounts, user: &Option<String>) -> &'a mut Account {
    st.get_mut(user.as_deref().unwrap_or_default())
        .expect("a logged-in user's account")
}

enum Input {
    Line(Vec<u8>),
    Tick,
    Closed,
}

struct Selected {
    folder: String,
    read_only: bool,
    /// The UIDs the client knows of, in sequence-number order.
    known: Vec<u32>,
}

struct Conn {
    sh: Arc<Shared>,
    input: BufReader<TcpStream>,
    out: BufWriter<TcpStream>,
    partial: Vec<u8>,
    user: Option<String>,
    sel: Option<Selected>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        if self.user.is_some() {
            account(&mut self.sh.lock(), &self.user).open -= 1;
        }
    }
}

impl Conn {
    fn serve(sh: Arc<Shared>, stream: TcpStream) -> io::Result<()> {
        stream.set_nonblocking(false)?;
        stream.set_read_timeout(Some(Duration::from_millis(100)))?;
        let (out, input) = (BufWriter::new(stream.try_clone()?), BufReader::new(stream));
        let mut c = Conn {
            sh,
            input,
            out,
            partial: Vec::new(),
            user: None,
            sel: None,
        };
        write!(
            c.out,
            "* OK [CAPABILITY {CAPS}{PRE_LOGIN_CAPS}] Gimap ready (stand-in)\r\n"
        )?;
        c.out.flush()?;
        while let Some((buf, first)) = c.read_command()? {
            c.sh.commands
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(first);
            let toks = tokens(&buf);
            let (tag, verb, args) = match toks.as_deref() {
                Ok([Tok::Atom(tag), Tok::Atom(verb), args @ ..]) => {
                    (tag, verb.to_ascii_uppercase(), args)
                }
                _ => {
                    c.out
                        .write_all(b"* BAD [PARSE] Could not parse command\r\n")?;
                    c.out.flush()?;
                    continue;
                }
            };
            if verb == "LOGOUT" {
                write!(
                    c.out,
                    "* BYE LOGOUT Requested\r\n{tag} OK 73 good day (Success)\r\n"
                )?;
                return c.out.flush();
            }
            // No EXPUNGE while answering FETCH or STORE by number (RFC 3501 7.4.1).
            let syncs = verb != "FETCH" && verb != "STORE";
            if syncs {
                c.sync()?;
            }
            let reply = match (verb.as_str(), args) {
                ("UID", [sub, rest @ ..]) => {
                    let sub = sub.text().unwrap_or_default().to_ascii_uppercase();
                    c.command(&sub, rest, true)
                }
                _ => c.command(&verb, args, false),
            };
            let status = match reply {
                Ok(s) | Err(Fail::Say(s)) => s,
                Err(Fail::Io(e)) => return Err(e),
            };
            if syncs {
                c.sync()?;
            }
            write!(c.out, "{tag} {status}\r\n")?;
            c.out.flush()?;
        }
        Ok(())
    }

    fn command(&mut self, verb: &str, args: &[Tok], uid: bool) -> Reply {
        let authed = self.user.is_some();
        match (verb, authed) {
            ("CAPABILITY", _) => {
                let auth = if authed { "" } else { PRE_LOGIN_CAPS };
                write!(self.out, "* CAPABILITY {CAPS}{auth}\r\n")?;
            }
            ("NOOP", _) => {}
            ("ID", _) => {
                let id = r#"("name" "GImap" "vendor" "Google, Inc." "support-url" "https://support.google.com/mail")"#;
                write!(self.out, "* ID {id}\r\n")?;
            }
            ("LOGIN", false) => {
                let (user, password) = (arg(args, 0)?, arg(args, 1)?);
                return self.login(&user, |a| a.password.as_deref() == Some(password.as_str()));
            }
            ("AUTHENTICATE", false) => return self.authenticate(args),
            ("LOGIN" | "AUTHENTICATE", true) => return say("BAD Already authenticated"),
            (_, false) => return say("BAD Command not valid before login"),
            ("NAMESPACE", _) => write!(self.out, "* NAMESPACE ((\"\" \"/\")) NIL NIL\r\n")?,
            ("LIST" | "LSUB", _) => self.list(verb, args)?,
            ("STATUS", _) => self.status(args)?,
            ("SELECT" | "EXAMINE", _) => return self.select(verb == "EXAMINE", args),
            ("CREATE", _) => self.create(args)?,
            ("SUBSCRIBE" | "UNSUBSCRIBE", _) => {
                let name = arg(args, 0)?;
                let mut st = self.sh.lock();
                let a = account(&mut st, &self.user);
                let Some(f) = a.folder_index(&name) else {
                    return say(TRYCREATE);
                };
                a.folders[f].subscribed = verb == "SUBSCRIBE";
            }
            ("APPEND", _) => return self.append(args),
            ("IDLE", _) => return self.idle(),
            ("FETCH" | "STORE" | "COPY" | "MOVE", _) if self.sel.is_none() => {
                return say("BAD Command not valid in this state");
            }
            ("FETCH", _) => self.fetch(args, uid)?,
            ("STORE", _) => self.store(args, uid)?,
            ("COPY" | "MOVE", _) => return self.copy(args, uid, verb == "MOVE"),
            _ => return say("BAD Unknown command"),
        }
        Ok("OK Success".into())
    }

    fn login(&mut self, user: &str, right: impl FnOnce(&Account) -> bool) -> Reply {
        let mut st = self.sh.lock();
        let Some(a) = st.get_mut(user).filter(|a| right(a)) else {
            return say(BAD_LOGIN);
        };
        if a.open >= self.sh.limits.connections.unwrap_or(usize::MAX) {
            return say(TOO_MANY);
        }
        a.open += 1;
        self.user = Some(user.into());
        Ok(format!("OK {user} authenticated (Success)"))
    }

    fn authenticate(&mut self, args: &[Tok]) -> Reply {
        let mech = arg(args, 0)?.to_ascii_uppercase();
        if mech != "PLAIN" && mech != "XOAUTH2" {
            return say("BAD Unsupported AUTHENTICATE mechanism");
        }
        let answer = match args.get(1).and_then(Tok::text) {
            Some(initial) => initial,
            None => self.challenge("")?,
        };
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD;
        let decoded = if answer == "=" {
            Ok(Vec::new())
        } else {
            b64.decode(&answer)
        };
        let Ok(decoded) = decoded else {
            return say("BAD Invalid SASL response");
        };
        let text = String::from_utf8_lossy(&decoded).into_owned();
        if mech == "PLAIN" {
            let [authz, user, password] = text.split('\0').collect::<Vec<_>>()[..] else {
                return say(BAD_LOGIN);
            };
            let right = authz.is_empty() || authz == user;
            return self.login(user, |a| right && a.password.as_deref() == Some(password));
        }
        // user=<user> ^A auth=Bearer <token> ^A ^A
        let part = |key: &str| text.split('\x01').find_map(|p| p.strip_prefix(key));
        let (user, token) = (part("user=").unwrap_or_default(), part("auth=Bearer "));
        let right = |a: &Account| token.is_some() && a.token.as_deref() == token;
        let known = self.sh.lock().get(user).is_some_and(right);
        if known {
            return self.login(user, right);
        }
        // The error comes as a challenge, which the client answers with an empty line.
        self.challenge(&crate::base64(OAUTH_ERROR.as_bytes()))?;
        say(BAD_LOGIN)
    }

    /// Sends a continuation and reads the client's answer line.
    fn challenge(&mut self, text: &str) -> Result<String, Fail> {
        write!(self.out, "+ {text}\r\n")?;
        self.out.flush()?;
        match self.read_line()? {
            Some(l) if l.trim_ascii() != b"*" => Ok(String::from_utf8_lossy(&l).trim().into()),
            _ => say("BAD Authentication cancelled"),
        }
    }

    fn list(&mut self, verb: &str, mut args: &[Tok]) -> Result<(), Fail> {
        // The one selection option: (SPECIAL-USE), RFC 6154.
        let special_only = matches!(args.first(), Some(Tok::List(_)));
        if special_only {
            args = &args[1..];
        }
        let (reference, pattern) = (arg(args, 0)?, arg(args, 1)?);
        if pattern.is_empty() {
            write!(self.out, "* {verb} (\\Noselect) \"/\" \"\"\r\n")?;
            return Ok(());
        }
        let pattern = format!("{reference}{pattern}");
        let mut st = self.sh.lock();
        let a = account(&mut st, &self.user);
        let mut entries: Vec<_> = a
            .folders
            .iter()
            .map(|f| (f.name.as_str(), f.special, f.subscribed))
            .collect();
        entries.push(("[Gmail]", None, true));
        entries.sort_by_key(|e| (e.0 != "INBOX", e.0.starts_with("[Gmail]"), e.0));
        let names: Vec<&str> = entries.iter().map(|e| e.0).collect();
        for &(name, special, subscribed) in &entries {
            let inbox =
                name == "INBOX" && wildmat(pattern.to_ascii_uppercase().as_bytes(), b"INBOX");
            let shown = wildmat(pattern.as_bytes(), name.as_bytes()) || inbox;
            if !shown || (special_only && special.is_none()) || (verb == "LSUB" && !subscribed) {
                continue;
            }
            let parent = names
                .iter()
                .any(|n| n.strip_prefix(name).is_some_and(|r| r.starts_with('/')));
            let mut attrs = vec![if parent {
                "\\HasChildren"
            } else {
                "\\HasNoChildren"
            }];
            if name == "[Gmail]" {
                attrs.insert(0, "\\Noselect");
            }
            attrs.extend(special);
            write!(
                self.out,
                "* {verb} ({}) \"/\" {}\r\n",
                attrs.join(" "),
                quote(name)
            )?;
        }
        Ok(())
    }

    fn status(&mut self, args: &[Tok]) -> Result<(), Fail> {
        let (name, items) = (arg(args, 0)?, list_arg(args, 1)?);
        let mut st = self.sh.lock();
        let a = account(&mut st, &self.user);
        let Some(f) = a.folder(&name) else {
            return say("NO [NONEXISTENT] Unknown Mailbox (Failure)");
        };
        let seen = |i: usize| a.msgs[i].flags.iter().any(|x| x == "\\Seen");
        let mut out = Vec::new();
        for item in items.iter().map(|i| i.to_ascii_uppercase()) {
            let value = match item.as_str() {
                "MESSAGES" => f.members.len(),
                "UIDNEXT" => f.next_uid as usize,
                "UIDVALIDITY" => f.validity as usize,
                "RECENT" => 0,
                "UNSEEN" => f.members.iter().filter(|m| !seen(m.1)).count(),
                _ => return say("BAD Unknown STATUS item"),
            };
            out.push(format!("{item} {value}"));
        }
        write!(
            self.out,
            "* STATUS {} ({})\r\n",
            quote(&f.name),
            out.join(" ")
        )?;
        Ok(())
    }

    fn select(&mut self, read_only: bool, args: &[Tok]) -> Reply {
        self.sel = None;
        let name = arg(args, 0)?;
        let mut st = self.sh.lock();
        let a = account(&mut st, &self.user);
        let Some(f) = a.folder(&name) else {
            return say("NO [NONEXISTENT] Unknown Mailbox (Failure)");
        };
        let system = "\\Answered \\Flagged \\Draft \\Deleted \\Seen $NotPhishing $Phishing";
        let mut flags: Vec<String> = system.split(' ').map(String::from).collect();
        a.msgs
            .iter()
            .flat_map(|m| &m.flags)
            .for_each(|x| add(&mut flags, x));
        let flags = flags.join(" ");
        let permanent = if read_only {
            String::new()
        } else {
            format!("{flags} \\*")
        };
        let (validity, n, next) = (f.validity, f.members.len(), f.next_uid);
        write!(
            self.out,
            "* FLAGS ({flags})\r\n* OK [PERMANENTFLAGS ({permanent})] Flags permitted.\r\n"
        )?;
        write!(
            self.out,
            "* OK [UIDVALIDITY {validity}] UIDs valid.\r\n* {n} EXISTS\r\n* 0 RECENT\r\n"
        )?;
        write!(self.out, "* OK [UIDNEXT {next}] Predicted next UID.\r\n")?;
        let known = f.members.iter().map(|m| m.0).collect();
        let folder = f.name.clone();
        let mode = if read_only { "READ-ONLY" } else { "READ-WRITE" };
        let status = format!("OK [{mode}] {folder} selected. (Success)");
        self.sel = Some(Selected {
            folder,
            read_only,
            known,
        });
        Ok(status)
    }

    fn create(&mut self, args: &[Tok]) -> Result<(), Fail> {
        let name = arg(args, 0)?.trim_end_matches('/').to_string();
        if args.len() > 1
            || name.is_empty()
            || name.eq_ignore_ascii_case("INBOX")
            || name.starts_with("[Gmail]")
        {
            return say("NO [CANNOT] Invalid folder name (Failure)");
        }
        let mut st = self.sh.lock();
        let a = account(&mut st, &self.user);
        if a.folder(&name).is_some() {
            return say("NO [ALREADYEXISTS] Duplicate folder name (Failure)");
        }
        a.add_label_folder(&name);
        Ok(())
    }

    fn append(&mut self, args: &[Tok]) -> Reply {
        let name = arg(args, 0)?;
        let mut rest = &args[1..];
        let mut msg = StoredMessage {
            date: DEFAULT_DATE.into(),
            ..Default::default()
        };
        if let [Tok::List(flags), more @ ..] = rest {
            let flags = flags
                .iter()
                .filter_map(Tok::text)
                .map(|f| canonical(&f, FLAGS));
            flags
                .filter(|f| f != "\\Recent")
                .for_each(|f| add(&mut msg.flags, &f));
            rest = more;
        }
        if let [Tok::Str(date), more @ ..] = rest
            && !more.is_empty()
        {
            msg.date = String::from_utf8_lossy(date).trim().into();
            rest = more;
        }
        let [Tok::Str(raw)] = rest else {
            return say(PARSE);
        };
        let uploaded = self.sh.uploaded.load(Relaxed);
        if self.sh.limits.upload.is_some_and(|l| uploaded >= l) {
            return say(OVERQUOTA);
        }
        self.sh.uploaded.fetch_add(raw.len() as u64, Relaxed);
        let mut st = self.sh.lock();
        let a = account(&mut st, &self.user);
        let Some(view) = a.folder(&name).map(|f| f.view.clone()) else {
            return say(TRYCREATE);
        };
        // Gmail keeps one message per Message-ID: appended again, it gets the label.
        let id = header(raw, "message-id");
        let hidden = |m: &StoredMessage| m.labels.iter().any(|l| l == "\\Spam" || l == "\\Trash");
        let existing = id.and_then(|id| {
            a.msgs
                .iter()
                .position(|m| !hidden(m) && header(&m.raw, "message-id").as_ref() == Some(&id))
        });
        msg.raw = raw.clone();
        let i = existing.unwrap_or_else(|| a.store(msg));
        a.change(i, |a, m| {
            view.label().iter().for_each(|l| a.add_label(m, l))
        });
        a.refresh();
        let f = a.folder(&name).expect("still there");
        match f.members.iter().find(|m| m.1 == i) {
            Some((uid, _)) => Ok(format!("OK [APPENDUID {} {uid}] (Success)", f.validity)),
            None => Ok("OK (Success)".into()),
        }
    }

    fn idle(&mut self) -> Reply {
        self.out.write_all(b"+ idling\r\n")?;
        self.out.flush()?;
        loop {
            match self.read_input()? {
                Input::Line(l) if l.trim_ascii().eq_ignore_ascii_case(b"DONE") => {
                    return Ok("OK Success".into());
                }
                Input::Tick => {
                    self.sync()?;
                    self.out.flush()?;
                }
                _ => return say("BAD Expected DONE"),
            }
        }
    }

    /// The selected folder's messages that `set` names: (sequence number, UID, index).
    fn resolve(
        &self,
        a: &Account,
        set: &str,
        by_uid: bool,
    ) -> Result<Vec<(u32, u32, usize)>, Fail> {
        let sel = self.sel.as_ref().expect("a folder is selected");
        let members = a.folder(&sel.folder).map_or(&[][..], |f| &f.members);
        let index: std::collections::HashMap<u32, usize> = members.iter().copied().collect();
        let max = if by_uid {
            members.last().map_or(0, |m| m.0)
        } else {
            sel.known.len() as u32
        };
        if in_set(set, max, 0).is_none() {
            return say("BAD Invalid sequence set");
        }
        let known = sel
            .known
            .iter()
            .enumerate()
            .map(|(s, &u)| (s as u32 + 1, u));
        let named =
            known.filter(|&(s, u)| in_set(set, max, if by_uid { u } else { s }) == Some(true));
        Ok(named
            .filter_map(|(s, u)| Some((s, u, *index.get(&u)?)))
            .collect())
    }

    fn fetch(&mut self, args: &[Tok], by_uid: bool) -> Result<(), Fail> {
        let set = arg(args, 0)?;
        let items = args.get(1).and_then(Tok::texts).filter(|_| args.len() == 2);
        let items = items.map_or_else(|| say(PARSE), Ok)?;
        let mut items: Vec<String> = items.iter().map(|i| i.to_ascii_uppercase()).collect();
        for item in &items {
            let section = item
                .strip_prefix("BODY.PEEK[")
                .or_else(|| item.strip_prefix("BODY["))
                .and_then(|s| s.strip_suffix(']'));
            let section_ok = section.is_some_and(|s| {
                matches!(s, "" | "HEADER" | "TEXT") || s.starts_with("HEADER.FIELDS")
            });
            if !ITEMS.split(' ').any(|i| i == item) && !section_ok {
                return say("BAD Could not parse command: unknown FETCH item");
            }
        }
        let read_only = self.sel.as_ref().is_some_and(|s| s.read_only);
        let sets_seen = !read_only && items.iter().any(|i| i.starts_with("BODY["));
        let bodies = items.iter().any(|i| i.starts_with("BODY"));
        if by_uid && !items.iter().any(|i| i == "UID") {
            items.insert(0, "UID".into());
        }
        // Answered into a buffer, written once the lock is released (a slow reader must not
        // hold up the other connections).
        let (mut out, mut status) = (Vec::new(), Ok(()));
        let mut st = self.sh.lock();
        let a = account(&mut st, &self.user);
        for (seq, uid, i) in self.resolve(a, &set, by_uid)? {
            let spent = self.sh.downloaded.load(Relaxed);
            if bodies && self.sh.limits.download.is_some_and(|l| spent >= l) {
                status = say(OVERQUOTA);
                break;
            }
            let m = &mut a.msgs[i];
            let newly_seen = sets_seen && !m.flags.iter().any(|f| f == "\\Seen");
            if newly_seen {
                m.flags.push("\\Seen".into());
            }
            let mut parts: Vec<Vec<u8>> = Vec::new();
            for item in &items {
                parts.push(match item.as_str() {
                    "UID" => format!("UID {uid}").into_bytes(),
                    "FLAGS" => continue,
                    "RFC822.SIZE" => format!("RFC822.SIZE {}", m.raw.len()).into_bytes(),
                    "INTERNALDATE" => format!("INTERNALDATE \"{}\"", m.date).into_bytes(),
                    "X-GM-MSGID" => format!("X-GM-MSGID {}", m.msgid).into_bytes(),
                    "X-GM-THRID" => format!("X-GM-THRID {}", m.thrid).into_bytes(),
                    "X-GM-LABELS" => labels_list(&m.labels).into_bytes(),
                    body => {
                        let section = &body[body.find('[').unwrap_or_default() + 1..body.len() - 1];
                        let data = section_bytes(&m.raw, section);
                        self.sh.downloaded.fetch_add(data.len() as u64, Relaxed);
                        [
                            format!("BODY[{section}] {{{}}}\r\n", data.len()).into_bytes(),
                            data,
                        ]
                        .concat()
                    }
                });
            }
            if newly_seen || items.iter().any(|i| i == "FLAGS") {
                parts.push(format!("FLAGS ({})", m.flags.join(" ")).into_bytes());
            }
            out.extend_from_slice(format!("* {seq} FETCH (").as_bytes());
            out.extend_from_slice(&parts.join(&b' '));
            out.extend_from_slice(b")\r\n");
        }
        drop(st);
        self.out.write_all(&out)?;
        status
    }

    fn store(&mut self, args: &[Tok], by_uid: bool) -> Result<(), Fail> {
        let (set, item) = (arg(args, 0)?, arg(args, 1)?.to_ascii_uppercase());
        let values = list_arg(args, 2)?;
        if self.sel.as_ref().is_some_and(|s| s.read_only) {
            return say("NO STORE attempt on READ-ONLY folder (Failure)");
        }
        let op = item.chars().next().filter(|c| *c == '+' || *c == '-');
        let kind = item.trim_start_matches(['+', '-']);
        let (kind, silent) = kind
            .strip_suffix(".SILENT")
            .map_or((kind, false), |k| (k, true));
        if kind != "FLAGS" && kind != "X-GM-LABELS" {
            return say("BAD Unknown STORE item");
        }
        let mut st = self.sh.lock();
        let a = account(&mut st, &self.user);
        let targets = self.resolve(a, &set, by_uid)?;
        for &(_, _, i) in &targets {
            a.change(i, |a, m| {
                let list = if kind == "FLAGS" {
                    &mut m.flags
                } else {
                    &mut m.labels
                };
                if op.is_none() {
                    list.clear();
                }
                for v in &values {
                    match (kind, op) {
                        ("FLAGS", Some('-')) => m.flags.retain(|f| *f != canonical(v, FLAGS)),
                        ("FLAGS", _) => add(&mut m.flags, &canonical(v, FLAGS)),
                        (_, Some('-')) => Account::remove_label(m, v),
                        _ => a.add_label(m, v),
                    }
                }
                m.flags.retain(|f| f != "\\Recent");
            });
        }
        a.refresh();
        for (seq, uid, i) in targets.into_iter().filter(|_| !silent) {
            let m = &a.msgs[i];
            let uid = if by_uid {
                format!("UID {uid} ")
            } else {
                String::new()
            };
            let value = if kind == "FLAGS" {
                format!("FLAGS ({})", m.flags.join(" "))
            } else {
                labels_list(&m.labels)
            };
            write!(self.out, "* {seq} FETCH ({uid}{value})\r\n")?;
        }
        Ok(())
    }

    fn copy(&mut self, args: &[Tok], by_uid: bool, remove: bool) -> Reply {
        let (set, dest) = (arg(args, 0)?, arg(args, 1)?);
        let mut st = self.sh.lock();
        let a = account(&mut st, &self.user);
        let Some(to) = a.folder(&dest).map(|f| f.view.clone()) else {
            return say(TRYCREATE);
        };
        let from = self
            .sel
            .as_ref()
            .and_then(|s| a.folder(&s.folder))
            .map(|f| f.view.clone());
        let targets = self.resolve(a, &set, by_uid)?;
        for &(_, _, i) in &targets {
            a.change(i, |a, m| {
                if let Some(l) = from
                    .as_ref()
                    .filter(|f| remove && **f != to)
                    .and_then(View::label)
                {
                    Account::remove_label(m, &l);
                }
                to.label().iter().for_each(|l| a.add_label(m, l));
            });
        }
        a.refresh();
        let f = a.folder(&dest).expect("still there");
        let uid_in = |i: usize| f.members.iter().find(|m| m.1 == i).map(|m| m.0.to_string());
        let to_uids: Option<Vec<String>> = targets.iter().map(|t| uid_in(t.2)).collect();
        let from_uids: Vec<String> = targets.iter().map(|t| t.1.to_string()).collect();
        let code = match to_uids {
            Some(to) if !to.is_empty() => format!(
                "[COPYUID {} {} {}]",
                f.validity,
                from_uids.join(","),
                to.join(",")
            ),
            _ => return Ok("OK (Success)".into()),
        };
        if remove {
            write!(self.out, "* OK {code}\r\n")?;
            return Ok("OK (Success)".into());
        }
        Ok(format!("OK {code} (Success)"))
    }

    /// Tells the client of messages that left (EXPUNGE) or entered (EXISTS) its folder.
    fn sync(&mut self) -> io::Result<()> {
        let Some(sel) = self.sel.as_mut() else {
            return Ok(());
        };
        let current: Vec<u32> = {
            let mut st = self.sh.lock();
            let a = account(&mut st, &self.user);
            a.folder(&sel.folder)
                .map_or(Vec::new(), |f| f.members.iter().map(|m| m.0).collect())
        };
        let present: HashSet<u32> = current.iter().copied().collect();
        while let Some(gone) = sel.known.iter().position(|u| !present.contains(u)) {
            write!(self.out, "* {} EXPUNGE\r\n", gone + 1)?;
            sel.known.remove(gone);
        }
        let last = sel.known.last().copied().unwrap_or(0);
        let before = sel.known.len();
        sel.known.extend(current.into_iter().filter(|&u| u > last));
        if sel.known.len() > before {
            write!(self.out, "* {} EXISTS\r\n", sel.known.len())?;
        }
        Ok(())
    }

    fn read_input(&mut self) -> io::Result<Input> {
        loop {
            match self.input.read_until(b'\n', &mut self.partial) {
                Ok(0) => return Ok(Input::Closed),
                Ok(_) if self.partial.ends_with(b"\n") => {
                    return Ok(Input::Line(std::mem::take(&mut self.partial)));
                }
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Ok(if self.sh.stop.load(Relaxed) {
                        Input::Closed
                    } else {
                        Input::Tick
                    });
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn read_line(&mut self) -> io::Result<Option<Vec<u8>>> {
        loop {
            match self.read_input()? {
                Input::Line(l) => return Ok(Some(l)),
                Input::Tick => {}
                Input::Closed => return Ok(None),
            }
        }
    }

    /// A whole command, literals included (`+` sent for the synchronizing ones), and its
    /// first line for the log.
    fn read_command(&mut self) -> io::Result<Option<(Vec<u8>, String)>> {
        let (mut buf, mut first) = (Vec::new(), None);
        loop {
            let Some(line) = self.read_line()? else {
                return Ok(None);
            };
            let text = String::from_utf8_lossy(&line).trim_end().to_string();
            buf.extend_from_slice(&line);
            let literal = text
                .strip_suffix('}')
                .and_then(|t| t.rsplit_once('{'))
                .map(|p| p.1.to_string());
            let first = first.get_or_insert(text);
            let Some(n) = literal
                .as_deref()
                .and_then(|s| s.trim_end_matches('+').parse::<usize>().ok())
            else {
                return Ok(Some((buf, first.clone())));
            };
            if n > MAX_LITERAL {
                self.out
                    .write_all(b"* BYE [ALERT] Message too large. (Failure)\r\n")?;
                self.out.flush()?;
                return Ok(None);
            }
            if !literal.is_some_and(|s| s.ends_with('+')) {
                self.out.write_all(b"+ go ahead\r\n")?;
                self.out.flush()?;
            }
            let (mut data, mut got) = (vec![0; n], 0);
            while got < n {
                match self.input.read(&mut data[got..]) {
                    Ok(0) => return Ok(None),
                    Ok(k) => got += k,
                    Err(e)
                        if matches!(
                            e.kind(),
                            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                        ) && !self.sh.stop.load(Relaxed) => {}
                    Err(e) => return Err(e),
                }
            }
            buf.extend_from_slice(&data);
        }
    }
}
