//! A stand-in for Gmail's IMAP server (`imap.gmail.com`), for tests of mailshift's Gmail
//! support: no real Gmail can run in a test, so this is, like [`crate::Hostile`], a
//! stand-in rather than a real server. It is written from Google's published
//! documentation (<https://developers.google.com/gmail/imap/imap-extensions>, the XOAUTH2
//! protocol page <https://developers.google.com/gmail/imap/xoauth2-protocol> and Gmail's
//! help pages on IMAP behaviour and limits), not from Gmail's code, so it can only be as
//! faithful as those pages are.
//!
//! What it follows:
//!
//! * **Labels, not folders.** Each account holds one store of messages, each with its
//!   `X-GM-MSGID` (unique, 64-bit), `X-GM-THRID`, raw bytes, INTERNALDATE, flags and a
//!   set of labels. Folders are views of that store: `INBOX` (label `\Inbox`),
//!   `[Gmail]/All Mail` (every message outside Spam and Trash, `\All`), `[Gmail]/Sent
//!   Mail` (`\Sent`), `[Gmail]/Drafts` (`\Draft`), `[Gmail]/Spam` (`\Junk`),
//!   `[Gmail]/Trash`, `[Gmail]/Starred` (the messages flagged `\Flagged`),
//!   `[Gmail]/Important`, and one folder per user label (hierarchy delimiter `/`, parents
//!   created with their children); `[Gmail]` itself is `\Noselect`. Messages in Spam or
//!   Trash show in no other view.
//! * **UIDs per view.** Each folder has its own UIDVALIDITY and UIDs: a message gets the
//!   next UID of a folder when it enters that view; UIDs ascend and are never reused (a
//!   message that leaves and comes back gets a new one).
//! * **The extensions** (`X-GM-EXT-1`): FETCH of `X-GM-MSGID`, `X-GM-THRID` and
//!   `X-GM-LABELS` (system labels quoted with their backslash, `"\\Inbox"`; user labels
//!   as atoms when they can be, quoted otherwise), `STORE [+-]X-GM-LABELS`. SPECIAL-USE
//!   attributes on every LIST (RFC 6154), `LIST (SPECIAL-USE)`.
//! * **APPEND, COPY and MOVE add labels.** Appending to (or copying into) a label's
//!   folder adds the label; to `[Gmail]/Starred` it adds `\Flagged`; to All Mail, none.
//!   Gmail keeps one copy of a message: an APPEND whose `Message-ID` equals that of a
//!   message already stored (not in Spam or Trash) adds the folder's label to that
//!   message (its flags are left as they are) and answers `APPENDUID` with the UID it has
//!   in that folder. MOVE also removes the source folder's label (from All Mail: none).
//! * **Logins**: LOGIN, AUTHENTICATE PLAIN and XOAUTH2 (with or without SASL-IR); a wrong
//!   XOAUTH2 token gets the documented base64 JSON challenge, then `NO
//!   [AUTHENTICATIONFAILED] Invalid credentials (Failure)` after the client's empty line.
//! * **Limits, on demand** (see [`GmailBuilder::download_limit`],
//!   [`GmailBuilder::upload_limit`], [`GmailBuilder::max_connections`]): the bandwidth
//!   limits and the simultaneous-connection limit (15 per account), answered with
//!   Gmail's texts.
//!
//! It speaks IMAP4rev1 with UIDPLUS, LITERAL+, NAMESPACE, ID, IDLE, MOVE, CHILDREN,
//! SASL-IR: CAPABILITY, NOOP, LOGOUT, ID, LOGIN, AUTHENTICATE, NAMESPACE, LIST, LSUB,
//! STATUS, SELECT, EXAMINE, CREATE, SUBSCRIBE, UNSUBSCRIBE, APPEND, IDLE, and (UID)
//! FETCH, STORE, COPY, MOVE. A selected session is told of other sessions' additions
//! and removals (EXISTS, EXPUNGE) at its next command or during IDLE.
//!
//! What it leaves out: SEARCH (and `X-GM-RAW`), EXPUNGE/CLOSE/UNSELECT and `\Deleted`
//! semantics (the flag is only stored), DELETE/RENAME of labels, BODYSTRUCTURE and MIME
//! part sections, CONDSTORE/QRESYNC, COMPRESS, TLS (plain TCP on loopback), QUOTA, the
//! per-label "Show in IMAP" settings, localized `[Google Mail]` names, untagged FETCH of
//! other sessions' flag changes, Gmail's real threading (here a message joins the thread
//! of a stored message its `In-Reply-To`/`References` name, else starts its own), Gmail's
//! rate limits per minute, and the `* BYE` Gmail may send when a limit is hit.

use std::collections::{BTreeMap, HashSet};
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::Duration;

use anyhow::{Result, bail};

/// INTERNALDATE of a [`GmailMessage`] unless it says otherwise.
pub const DEFAULT_DATE: &str = "01-Jan-2024 10:00:00 +0000";

/// Gmail's per-account limit on simultaneous IMAP connections (Gmail Help, "Too many
/// simultaneous connections"; it has said 10 in the past and 15 now).
pub const GMAIL_MAX_CONNECTIONS: usize = 15;

// Gmail's answers, as reported by its users and Google's pages: the bandwidth refusal as
// quoted in e.g. https://edoceo.com/notabene/account-exceeded-command-bandwidth (the
// limits themselves are on Google Workspace Admin Help, "Gmail bandwidth limits": 2500 MB
// a day downloaded, 500 MB uploaded over IMAP); the connection refusal as quoted on
// Gmail Help answer 97150 and client vendors' pages; the XOAUTH2 failure and challenge
// from the XOAUTH2 protocol page.
const OVERQUOTA: &str = "NO [OVERQUOTA] Account exceeded command or bandwidth limits. (Failure)";
const TOO_MANY: &str = "NO [ALERT] Too many simultaneous connections. (Failure)";
const BAD_CREDENTIALS: &str = "NO [AUTHENTICATIONFAILED] Invalid credentials (Failure)";
const XOAUTH2_CHALLENGE: &str =
    r#"{"status":"401","schemes":"bearer mac","scope":"https://mail.google.com/"}"#;
/// Gmail's APPENDLIMIT (35 MiB); a longer literal ends the connection.
const MAX_LITERAL: usize = 35_651_584;
const CAPS: &str =
    "IMAP4rev1 UIDPLUS X-GM-EXT-1 SPECIAL-USE LITERAL+ NAMESPACE ID IDLE MOVE CHILDREN";
const SYSTEM_FLAGS: [&str; 6] = [
    "\\Seen",
    "\\Answered",
    "\\Flagged",
    "\\Deleted",
    "\\Draft",
    "\\Recent",
];
const SYSTEM_LABELS: [&str; 7] = [
    "\\Inbox",
    "\\Sent",
    "\\Draft",
    "\\Important",
    "\\Spam",
    "\\Trash",
    "\\Starred",
];

/// A message to put in an account before start.
#[derive(Clone, Debug)]
pub struct GmailMessage {
    pub raw: Vec<u8>,
    /// `\Inbox`, `\Sent`, `\Draft`, `\Important`, `\Spam`, `\Trash`, `\Starred` (sets
    /// `\Flagged`) or user labels (created if not declared).
    pub labels: Vec<String>,
    pub flags: Vec<String>,
    /// INTERNALDATE, IMAP's form (`01-Jan-2024 10:00:00 +0000`).
    pub date: String,
}

impl GmailMessage {
    /// `raw` with no labels (archived: only in All Mail), no flags, [`DEFAULT_DATE`].
    pub fn new(raw: impl Into<Vec<u8>>) -> GmailMessage {
        GmailMessage {
            raw: raw.into(),
            labels: Vec::new(),
            flags: Vec::new(),
            date: DEFAULT_DATE.into(),
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

/// A message as the stand-in holds it, for assertions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredMessage {
    pub msgid: u64,
    pub thrid: u64,
    pub labels: Vec<String>,
    pub flags: Vec<String>,
    pub raw: Vec<u8>,
    pub date: String,
}

#[derive(Default)]
struct UserSpec {
    name: String,
    password: Option<String>,
    token: Option<String>,
    labels: Vec<String>,
    messages: Vec<GmailMessage>,
}

/// Builds a [`Gmail`]; `label` and `message` apply to the user named last.
#[derive(Default)]
pub struct GmailBuilder {
    users: Vec<UserSpec>,
    current: Option<usize>,
    problems: Vec<String>,
    limits: Limits,
}

#[derive(Clone, Copy, Default)]
struct Limits {
    download: Option<u64>,
    upload: Option<u64>,
    connections: Option<usize>,
}

impl GmailBuilder {
    fn spec(&mut self, user: &str) -> &mut UserSpec {
        let i = match self.users.iter().position(|u| u.name == user) {
            Some(i) => i,
            None => {
                self.users.push(UserSpec {
                    name: user.into(),
                    ..UserSpec::default()
                });
                self.users.len() - 1
            }
        };
        self.current = Some(i);
        &mut self.users[i]
    }

    /// An account logging in with `password` (LOGIN, AUTHENTICATE PLAIN).
    pub fn user(mut self, user: &str, password: &str) -> GmailBuilder {
        self.spec(user).password = Some(password.into());
        self
    }

    /// An OAuth 2.0 access token accepted for `user` by AUTHENTICATE XOAUTH2.
    pub fn token(mut self, user: &str, token: &str) -> GmailBuilder {
        self.spec(user).token = Some(token.into());
        self
    }

    /// A user label (and so a folder) of the last named user, e.g. `Work/Projects`.
    pub fn label(mut self, label: &str) -> GmailBuilder {
        match self.current {
            Some(i) => self.users[i].labels.push(label.into()),
            None => self
                .problems
                .push(format!("label {label:?} before any user")),
        }
        self
    }

    /// A message of the last named user's store.
    pub fn message(mut self, message: GmailMessage) -> GmailBuilder {
        match self.current {
            Some(i) => self.users[i].messages.push(message),
            None => self.problems.push("a message before any user".into()),
        }
        self
    }

    /// Body bytes served (all connections, all users) after which body fetches answer
    /// `NO [OVERQUOTA]`; the fetch that crosses the limit is still served.
    pub fn download_limit(mut self, bytes: u64) -> GmailBuilder {
        self.limits.download = Some(bytes);
        self
    }

    /// Likewise for bytes received by APPEND.
    pub fn upload_limit(mut self, bytes: u64) -> GmailBuilder {
        self.limits.upload = Some(bytes);
        self
    }

    /// Simultaneous logged-in connections per account (Gmail: [`GMAIL_MAX_CONNECTIONS`]);
    /// the login over it answers `NO [ALERT] Too many simultaneous connections.`.
    pub fn max_connections(mut self, n: usize) -> GmailBuilder {
        self.limits.connections = Some(n);
        self
    }

    /// Starts the server on a free loopback port.
    pub fn start(self) -> Result<Gmail> {
        if !self.problems.is_empty() {
            bail!("Gmail stand-in: {}", self.problems.join("; "));
        }
        let mut state = State {
            accounts: BTreeMap::new(),
            downloaded: 0,
            uploaded: 0,
            next_msgid: 0,
        };
        for spec in self.users {
            let mut account = Account::new(spec.password, spec.token);
            for label in &spec.labels {
                account.add_label_folder(label);
            }
            for m in spec.messages {
                let mut flags = Vec::new();
                m.flags.iter().for_each(|f| add(&mut flags, &norm_flag(f)));
                let mut msg = Msg {
                    raw: m.raw,
                    date: m.date,
                    flags,
                    ..Msg::default()
                };
                m.labels.iter().for_each(|l| account.add_label(&mut msg, l));
                state.store(&mut account, msg);
            }
            account.refresh();
            state.accounts.insert(spec.name, account);
        }
        let listener = TcpListener::bind((crate::HOST, 0))?;
        let port = listener.local_addr()?.port();
        listener.set_nonblocking(true)?;
        let shared = Arc::new(Shared {
            state: Mutex::new(state),
            limits: self.limits,
            stop: AtomicBool::new(false),
            commands: Mutex::new(Vec::new()),
            connections: AtomicUsize::new(0),
        });
        let sh = shared.clone();
        thread::spawn(move || {
            while !sh.stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        sh.connections.fetch_add(1, Ordering::Relaxed);
                        let sh = sh.clone();
                        thread::spawn(move || {
                            let _ = Conn::serve(sh, stream);
                        });
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

    /// Every command's first line received so far, tag included, on all connections.
    pub fn commands(&self) -> Vec<String> {
        self.shared
            .commands
            .lock()
            .map(|c| c.clone())
            .unwrap_or_default()
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::Relaxed)
    }

    /// `user`'s logged-in connections open now.
    pub fn sessions(&self, user: &str) -> usize {
        self.shared.lock().accounts.get(user).map_or(0, |a| a.open)
    }

    /// `user`'s store, in the order the messages were stored.
    pub fn messages(&self, user: &str) -> Vec<StoredMessage> {
        let st = self.shared.lock();
        let Some(a) = st.accounts.get(user) else {
            return Vec::new();
        };
        a.msgs
            .iter()
            .map(|m| StoredMessage {
                msgid: m.msgid,
                thrid: m.thrid,
                labels: m.labels.clone(),
                flags: m.flags.clone(),
                raw: m.raw.clone(),
                date: m.date.clone(),
            })
            .collect()
    }

    /// `(UID, X-GM-MSGID)` of each message in `folder`, ascending by UID.
    pub fn folder_uids(&self, user: &str, folder: &str) -> Vec<(u32, u64)> {
        let st = self.shared.lock();
        let Some(a) = st.accounts.get(user) else {
            return Vec::new();
        };
        a.folder(folder).map_or(Vec::new(), |f| {
            a.folders[f]
                .members
                .iter()
                .map(|&(u, i)| (u, a.msgs[i].msgid))
                .collect()
        })
    }

    /// `folder`'s UIDVALIDITY.
    pub fn uid_validity(&self, user: &str, folder: &str) -> Option<u32> {
        let st = self.shared.lock();
        let a = st.accounts.get(user)?;
        a.folder(folder).map(|f| a.folders[f].validity)
    }

    /// Body bytes served so far (what the download limit counts).
    pub fn bytes_downloaded(&self) -> u64 {
        self.shared.lock().downloaded
    }

    /// Message bytes received by APPEND so far (what the upload limit counts).
    pub fn bytes_uploaded(&self) -> u64 {
        self.shared.lock().uploaded
    }
}

impl Drop for Gmail {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
    }
}

struct Shared {
    state: Mutex<State>,
    limits: Limits,
    stop: AtomicBool,
    commands: Mutex<Vec<String>>,
    connections: AtomicUsize,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

struct State {
    accounts: BTreeMap<String, Account>,
    downloaded: u64,
    uploaded: u64,
    next_msgid: u64,
}

impl State {
    /// Gives `msg` its ids and adds it to `account` (not yet in any folder: refresh).
    fn store(&mut self, account: &mut Account, mut msg: Msg) -> usize {
        self.next_msgid += 1;
        // Gmail's ids are large 64-bit numbers; these look alike and are unique per server.
        msg.msgid = 1_700_000_000_000_000_000 + self.next_msgid * 1_000_003;
        let refs = ["in-reply-to", "references"]
            .iter()
            .filter_map(|h| header(&msg.raw, h))
            .collect::<Vec<_>>()
            .join(" ");
        msg.thrid = account
            .msgs
            .iter()
            .find(|m| header(&m.raw, "message-id").is_some_and(|id| refs.contains(id.as_str())))
            .map_or(msg.msgid, |m| m.thrid);
        account.msgs.push(msg);
        account.msgs.len() - 1
    }
}

#[derive(Default)]
struct Msg {
    msgid: u64,
    thrid: u64,
    raw: Vec<u8>,
    date: String,
    flags: Vec<String>,
    labels: Vec<String>,
}

impl Msg {
    fn has(&self, label: &str) -> bool {
        self.labels.iter().any(|l| l == label)
    }
    fn flagged(&self) -> bool {
        self.flags.iter().any(|f| f == "\\Flagged")
    }
}

#[derive(Clone, Debug, PartialEq)]
enum View {
    Inbox,
    All,
    Drafts,
    Important,
    Sent,
    Spam,
    Starred,
    Trash,
    Label(String),
}

impl View {
    fn contains(&self, m: &Msg) -> bool {
        let gone = m.has("\\Spam") || m.has("\\Trash");
        match self {
            View::Spam => m.has("\\Spam") && !m.has("\\Trash"),
            View::Trash => m.has("\\Trash"),
            _ if gone => false,
            View::Inbox => m.has("\\Inbox"),
            View::All => true,
            View::Drafts => m.has("\\Draft"),
            View::Important => m.has("\\Important"),
            View::Sent => m.has("\\Sent"),
            View::Starred => m.flagged(),
            View::Label(l) => m.has(l),
        }
    }

    /// The label (or, for Starred, the flag) that puts a message in this view.
    fn label(&self) -> Option<String> {
        Some(match self {
            View::Inbox => "\\Inbox".into(),
            View::All => return None,
            View::Drafts => "\\Draft".into(),
            View::Important => "\\Important".into(),
            View::Sent => "\\Sent".into(),
            View::Spam => "\\Spam".into(),
            View::Starred => "\\Starred".into(),
            View::Trash => "\\Trash".into(),
            View::Label(l) => l.clone(),
        })
    }
}

fn system_folders() -> [(&'static str, &'static str, View); 7] {
    [
        ("[Gmail]/All Mail", "\\All", View::All),
        ("[Gmail]/Drafts", "\\Drafts", View::Drafts),
        ("[Gmail]/Important", "\\Important", View::Important),
        ("[Gmail]/Sent Mail", "\\Sent", View::Sent),
        ("[Gmail]/Spam", "\\Junk", View::Spam),
        ("[Gmail]/Starred", "\\Flagged", View::Starred),
        ("[Gmail]/Trash", "\\Trash", View::Trash),
    ]
}

struct Folder {
    name: String,
    view: View,
    special: Option<&'static str>,
    validity: u32,
    next_uid: u32,
    members: Vec<(u32, usize)>,
    subscribed: bool,
}

struct Account {
    password: Option<String>,
    token: Option<String>,
    msgs: Vec<Msg>,
    folders: Vec<Folder>,
    next_validity: u32,
    open: usize,
}

impl Account {
    fn new(password: Option<String>, token: Option<String>) -> Account {
        let mut a = Account {
            password,
            token,
            msgs: Vec::new(),
            folders: Vec::new(),
            next_validity: 1,
            open: 0,
        };
        a.add_folder("INBOX", View::Inbox, None);
        for (name, special, view) in system_folders() {
            a.add_folder(name, view, Some(special));
        }
        a
    }

    fn add_folder(&mut self, name: &str, view: View, special: Option<&'static str>) {
        self.folders.push(Folder {
            name: name.into(),
            view,
            special,
            validity: self.next_validity,
            next_uid: 1,
            members: Vec::new(),
            subscribed: true,
        });
        self.next_validity += 1;
    }

    /// A user label's folder and its parents' (Gmail nests `a/b` under `a`).
    fn add_label_folder(&mut self, label: &str) {
        let mut prefix = String::new();
        for part in label.split('/') {
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(part);
            if self.folder(&prefix).is_none() {
                self.add_folder(&prefix.clone(), View::Label(prefix.clone()), None);
            }
        }
    }

    /// Adds a label (system or user, `\Starred` as the flag) to `m`.
    fn add_label(&mut self, m: &mut Msg, label: &str) {
        let label = norm_label(label);
        if label == "\\Starred" {
            add(&mut m.flags, "\\Flagged");
        } else {
            if !label.starts_with('\\') {
                self.add_label_folder(&label);
            }
            add(&mut m.labels, &label);
        }
    }

    fn remove_label(m: &mut Msg, label: &str) {
        let label = norm_label(label);
        if label == "\\Starred" {
            m.flags.retain(|f| f != "\\Flagged");
        }
        m.labels.retain(|l| *l != label);
    }

    fn folder(&self, name: &str) -> Option<usize> {
        let name = if name.eq_ignore_ascii_case("INBOX") {
            "INBOX"
        } else {
            name
        };
        self.folders.iter().position(|f| f.name == name)
    }

    /// Brings every folder's membership up to date with the messages' labels and flags.
    fn refresh(&mut self) {
        let msgs = &self.msgs;
        for f in &mut self.folders {
            f.members.retain(|&(_, i)| f.view.contains(&msgs[i]));
            let present: HashSet<usize> = f.members.iter().map(|&(_, i)| i).collect();
            for (i, m) in msgs.iter().enumerate() {
                if !present.contains(&i) && f.view.contains(m) {
                    f.members.push((f.next_uid, i));
                    f.next_uid += 1;
                }
            }
        }
    }

    /// The stored message with this Message-ID outside Spam and Trash (Gmail's dedup).
    fn by_message_id(&self, id: &str) -> Option<usize> {
        self.msgs.iter().position(|m| {
            !m.has("\\Spam")
                && !m.has("\\Trash")
                && header(&m.raw, "message-id").as_deref() == Some(id)
        })
    }
}

/// Adds `item` to `list` unless it is there.
fn add(list: &mut Vec<String>, item: &str) {
    if !list.iter().any(|x| x == item) {
        list.push(item.into());
    }
}

fn canonical(s: &str, known: &[&str]) -> String {
    known
        .iter()
        .find(|k| k.eq_ignore_ascii_case(s))
        .map_or_else(|| s.to_string(), |k| k.to_string())
}

fn norm_flag(f: &str) -> String {
    canonical(f, &SYSTEM_FLAGS)
}

fn norm_label(l: &str) -> String {
    canonical(l, &SYSTEM_LABELS)
}

/// A label as Gmail writes it in X-GM-LABELS: system labels quoted, user labels as atoms
/// when they can be.
fn label_astring(l: &str) -> String {
    let atom = !l.is_empty()
        && !l.eq_ignore_ascii_case("NIL")
        && l.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if atom { l.to_string() } else { quote(l) }
}

fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// A string as IMAP text: quoted, or a literal when it holds CR, LF or 8-bit bytes.
fn nstring(s: &str) -> String {
    if s.bytes().any(|b| b == b'\r' || b == b'\n' || b >= 0x80) {
        format!("{{{}}}\r\n{s}", s.len())
    } else {
        quote(s)
    }
}

// ---------------------------------------------------------------------------------------
// Message headers.

fn header_len(raw: &[u8]) -> usize {
    raw.windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| p + 4)
        .or_else(|| raw.windows(2).position(|w| w == b"\n\n").map(|p| p + 2))
        .unwrap_or(raw.len())
}

/// The header fields: lower-cased name and the field's bytes, continuation lines included.
fn fields(raw: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = Vec::new();
    for line in raw[..header_len(raw)].split_inclusive(|&b| b == b'\n') {
        if line == b"\r\n" || line == b"\n" {
            break;
        }
        if matches!(line[0], b' ' | b'\t') {
            if let Some(last) = out.last_mut() {
                last.1.extend_from_slice(line);
            }
            continue;
        }
        let name = line.split(|&b| b == b':').next().unwrap_or_default();
        out.push((
            String::from_utf8_lossy(name).trim().to_ascii_lowercase(),
            line.to_vec(),
        ));
    }
    out
}

/// The unfolded value of the first field called `name` (lower case).
fn header(raw: &[u8], name: &str) -> Option<String> {
    let (_, field) = fields(raw).into_iter().find(|(n, _)| n == name)?;
    let text = String::from_utf8_lossy(&field);
    let value = text.split_once(':')?.1;
    Some(
        value
            .replace("\r\n", "")
            .replace('\n', "")
            .trim()
            .to_string(),
    )
}

fn envelope(raw: &[u8]) -> String {
    let h = |n: &str| header(raw, n);
    let ns = |v: Option<String>| v.map_or("NIL".into(), |s| nstring(&s));
    let from = addresses(h("from"));
    let or_from = |v: Option<String>| {
        if v.is_some() {
            addresses(v)
        } else {
            from.clone()
        }
    };
    format!(
        "({} {} {} {} {} {} {} {} {} {})",
        ns(h("date")),
        ns(h("subject")),
        from,
        or_from(h("sender")),
        or_from(h("reply-to")),
        addresses(h("to")),
        addresses(h("cc")),
        addresses(h("bcc")),
        ns(h("in-reply-to")),
        ns(h("message-id"))
    )
}

/// An address list as ENVELOPE writes it (groups and comments left out).
fn addresses(value: Option<String>) -> String {
    let Some(value) = value else {
        return "NIL".into();
    };
    let (mut parts, mut cur, mut quoted, mut angle) = (Vec::new(), String::new(), false, false);
    for c in value.chars() {
        match c {
            '"' => quoted = !quoted,
            '<' if !quoted => angle = true,
            '>' if !quoted => angle = false,
            ',' if !quoted && !angle => {
                parts.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    parts.push(cur);
    let mut out = String::new();
    for part in parts
        .iter()
        .map(|p| p.trim())
        .filter(|p| !p.is_empty() && !p.ends_with(';'))
    {
        let (name, addr) = match (part.rfind('<'), part.rfind('>')) {
            (Some(a), Some(b)) if a < b => {
                let name = part[..a].trim().trim_matches('"').trim();
                ((!name.is_empty()).then(|| nstring(name)), &part[a + 1..b])
            }
            _ => (None, part),
        };
        let (mbox, host) = addr.split_once('@').unwrap_or((addr, ""));
        let host = if host.is_empty() {
            "NIL".into()
        } else {
            nstring(host)
        };
        out.push_str(&format!(
            "({} NIL {} {host})",
            name.unwrap_or("NIL".into()),
            nstring(mbox)
        ));
    }
    if out.is_empty() {
        "NIL".into()
    } else {
        format!("({out})")
    }
}

/// Now as an INTERNALDATE (UTC).
fn now_imap() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (the proleptic Gregorian calendar).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{day:02}-{}-{year} {:02}:{:02}:{:02} +0000",
        MONTHS[(month - 1) as usize],
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

fn valid_date(d: &str) -> bool {
    let p: Vec<&str> = d.trim().split(' ').collect();
    p.len() == 3 && p[0].split('-').count() == 3 && p[1].split(':').count() == 3 && p[2].len() == 5
}

// ---------------------------------------------------------------------------------------
// Command syntax.

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

    /// The texts of a list, or of a single item.
    fn texts(&self) -> Option<Vec<String>> {
        match self {
            Tok::List(l) => l.iter().map(Tok::text).collect(),
            t => Some(vec![t.text()?]),
        }
    }
}

/// Tokens of a command, its literals inline (`{n}` CRLF and n bytes). Atoms run through
/// brackets, so `BODY.PEEK[HEADER.FIELDS (A B)]<0.10>` is one.
fn tokens(b: &[u8]) -> Result<Vec<Tok>, String> {
    let mut stack: Vec<Vec<Tok>> = vec![Vec::new()];
    let mut p = 0;
    while p < b.len() {
        let tok = match b[p] {
            b' ' | b'\r' | b'\n' => {
                p += 1;
                continue;
            }
            b'(' => {
                stack.push(Vec::new());
                p += 1;
                continue;
            }
            b')' => {
                let list = stack
                    .pop()
                    .filter(|_| !stack.is_empty())
                    .ok_or("unbalanced )")?;
                p += 1;
                Tok::List(list)
            }
            b'"' => {
                let mut s = Vec::new();
                p += 1;
                loop {
                    match b.get(p) {
                        None | Some(b'\r' | b'\n') => return Err("unterminated string".into()),
                        Some(b'"') => break,
                        Some(b'\\') => {
                            s.push(*b.get(p + 1).ok_or("bad escape")?);
                            p += 2;
                        }
                        Some(&c) => {
                            s.push(c);
                            p += 1;
                        }
                    }
                }
                p += 1;
                Tok::Str(s)
            }
            b'{' => {
                let close = b[p..]
                    .iter()
                    .position(|&c| c == b'}')
                    .ok_or("bad literal")?
                    + p;
                let spec = String::from_utf8_lossy(&b[p + 1..close]);
                let n: usize = spec
                    .trim_end_matches('+')
                    .parse()
                    .map_err(|_| "bad literal")?;
                let start = close
                    + 1
                    + if b[close + 1..].starts_with(b"\r\n") {
                        2
                    } else {
                        1
                    };
                let data = b.get(start..start + n).ok_or("short literal")?;
                p = start + n;
                Tok::Str(data.to_vec())
            }
            _ => {
                let (start, mut depth) = (p, 0);
                while p < b.len() {
                    match b[p] {
                        b'[' => depth += 1,
                        b']' => depth -= 1,
                        b'\r' | b'\n' => break,
                        b' ' | b'(' | b')' | b'"' if depth == 0 => break,
                        _ => {}
                    }
                    p += 1;
                }
                Tok::Atom(String::from_utf8_lossy(&b[start..p]).into_owned())
            }
        };
        stack.last_mut().ok_or("unbalanced")?.push(tok);
    }
    match stack.len() {
        1 => Ok(stack.pop().unwrap_or_default()),
        _ => Err("unbalanced (".into()),
    }
}

/// The ranges of a sequence set, `*` standing for `max`; `None` if malformed.
fn parse_set(set: &str, max: u32) -> Option<Vec<(u32, u32)>> {
    let num = |s: &str| {
        if s == "*" {
            Some(max)
        } else {
            s.parse::<u32>().ok().filter(|&n| n > 0)
        }
    };
    set.split(',')
        .map(|part| {
            let (a, b) = part.split_once(':').unwrap_or((part, part));
            let (a, b) = (num(a)?, num(b)?);
            Some((a.min(b), a.max(b)))
        })
        .collect()
}

fn in_ranges(ranges: &[(u32, u32)], n: u32) -> bool {
    ranges.iter().any(|&(a, b)| (a..=b).contains(&n))
}

/// IMAP's LIST wildcards: `*` anything, `%` anything but the delimiter.
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

#[derive(Clone, Debug)]
enum Section {
    Full,
    Header,
    Text,
    Fields(Vec<String>, bool),
}

#[derive(Clone, Debug)]
enum Item {
    Uid,
    Flags,
    Size,
    Date,
    MsgId,
    ThrId,
    Labels,
    Envelope,
    Body {
        name: String,
        section: Section,
        peek: bool,
        partial: Option<(usize, usize)>,
    },
}

fn fetch_items(t: &Tok) -> Result<Vec<Item>, String> {
    let atoms: Vec<String> = match t {
        Tok::List(l) => l
            .iter()
            .map(|x| match x {
                Tok::Atom(a) => Ok(a.clone()),
                _ => Err("FETCH items are atoms".to_string()),
            })
            .collect::<Result<_, _>>()?,
        Tok::Atom(a) => vec![a.clone()],
        Tok::Str(_) => return Err("FETCH items are atoms".into()),
    };
    let mut items = Vec::new();
    for a in atoms {
        let u = a.to_ascii_uppercase();
        let body = |name: &str, section, peek| Item::Body {
            name: name.into(),
            section,
            peek,
            partial: None,
        };
        let item = match u.as_str() {
            "UID" => Item::Uid,
            "FLAGS" => Item::Flags,
            "RFC822.SIZE" => Item::Size,
            "INTERNALDATE" => Item::Date,
            "X-GM-MSGID" => Item::MsgId,
            "X-GM-THRID" => Item::ThrId,
            "X-GM-LABELS" => Item::Labels,
            "ENVELOPE" => Item::Envelope,
            "FAST" | "ALL" => {
                items.extend([Item::Flags, Item::Date, Item::Size]);
                if u == "FAST" {
                    continue;
                } else {
                    Item::Envelope
                }
            }
            "RFC822" => body("RFC822", Section::Full, false),
            "RFC822.HEADER" => body("RFC822.HEADER", Section::Header, true),
            "RFC822.TEXT" => body("RFC822.TEXT", Section::Text, false),
            _ => {
                let (rest, peek) = match (u.strip_prefix("BODY.PEEK["), u.strip_prefix("BODY[")) {
                    (Some(r), _) => (r, true),
                    (_, Some(r)) => (r, false),
                    _ => return Err(format!("unknown FETCH item {a}")),
                };
                let (inner, after) = rest.rsplit_once(']').ok_or("unclosed section")?;
                let section = match inner {
                    "" => Section::Full,
                    "HEADER" => Section::Header,
                    "TEXT" => Section::Text,
                    _ => {
                        let (not, list) = match (
                            inner.strip_prefix("HEADER.FIELDS.NOT "),
                            inner.strip_prefix("HEADER.FIELDS "),
                        ) {
                            (Some(l), _) => (true, l),
                            (_, Some(l)) => (false, l),
                            _ => return Err(format!("section {inner} not supported")),
                        };
                        let list = list.trim().trim_start_matches('(').trim_end_matches(')');
                        Section::Fields(
                            list.split_whitespace()
                                .map(|s| s.to_ascii_lowercase())
                                .collect(),
                            not,
                        )
                    }
                };
                let partial = match after {
                    "" => None,
                    p => {
                        let p = p
                            .strip_prefix('<')
                            .and_then(|p| p.strip_suffix('>'))
                            .ok_or("bad partial")?;
                        let (o, l) = p.split_once('.').ok_or("bad partial")?;
                        Some((
                            o.parse().map_err(|_| "bad partial")?,
                            l.parse().map_err(|_| "bad partial")?,
                        ))
                    }
                };
                let mut name = format!("BODY[{inner}]");
                if let Some((o, _)) = partial {
                    name.push_str(&format!("<{o}>"));
                }
                Item::Body {
                    name,
                    section,
                    peek,
                    partial,
                }
            }
        };
        items.push(item);
    }
    Ok(items)
}

fn section_bytes(raw: &[u8], section: &Section) -> Vec<u8> {
    let h = header_len(raw);
    match section {
        Section::Full => raw.to_vec(),
        Section::Header => raw[..h].to_vec(),
        Section::Text => raw[h..].to_vec(),
        Section::Fields(names, not) => {
            let mut out: Vec<u8> = fields(raw)
                .into_iter()
                .filter(|(n, _)| names.contains(n) != *not)
                .flat_map(|(_, f)| f)
                .collect();
            out.extend_from_slice(b"\r\n");
            out
        }
    }
}

/// APPEND's effect: a new message, or Gmail's dedup by Message-ID; the label either way.
fn append_into(st: &mut State, a: &mut Account, name: &str, msg: Msg) -> String {
    let Some(f) = a.folder(name) else {
        return "NO [TRYCREATE] Folder doesn't exist. (Failure)".into();
    };
    let view = a.folders[f].view.clone();
    let existing = header(&msg.raw, "message-id").and_then(|id| a.by_message_id(&id));
    let idx = existing.unwrap_or_else(|| st.store(a, msg));
    if let Some(label) = view.label() {
        let mut m = std::mem::take(&mut a.msgs[idx]);
        a.add_label(&mut m, &label);
        a.msgs[idx] = m;
    }
    a.refresh();
    let f = &a.folders[f];
    match f.members.iter().find(|m| m.1 == idx) {
        Some((uid, _)) => format!("OK [APPENDUID {} {uid}] (Success)", f.validity),
        None => "OK (Success)".into(),
    }
}

// ---------------------------------------------------------------------------------------
// One connection.

enum Input {
    Line(Vec<u8>),
    Tick,
    Closed,
}

struct Selected {
    folder: String,
    read_only: bool,
    /// UIDs the client knows, in sequence-number order.
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

type Reply = io::Result<String>;

impl Drop for Conn {
    fn drop(&mut self) {
        if let Some(user) = &self.user
            && let Some(a) = self.sh.lock().accounts.get_mut(user)
        {
            a.open = a.open.saturating_sub(1);
        }
    }
}

impl Conn {
    fn serve(sh: Arc<Shared>, stream: TcpStream) -> io::Result<()> {
        stream.set_nonblocking(false)?;
        stream.set_read_timeout(Some(Duration::from_millis(100)))?;
        let mut c = Conn {
            sh,
            out: BufWriter::new(stream.try_clone()?),
            input: BufReader::new(stream),
            partial: Vec::new(),
            user: None,
            sel: None,
        };
        write!(
            c.out,
            "* OK [CAPABILITY {CAPS} SASL-IR AUTH=PLAIN AUTH=XOAUTH2] Gimap ready for requests from 127.0.0.1 (stand-in)\r\n"
        )?;
        c.out.flush()?;
        while let Some((buf, first)) = c.read_command()? {
            c.sh.commands
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(first);
            let toks = match tokens(&buf) {
                Ok(t) => t,
                Err(e) => {
                    write!(c.out, "* BAD [PARSE] {e}\r\n")?;
                    c.out.flush()?;
                    continue;
                }
            };
            let (Some(Tok::Atom(tag)), Some(Tok::Atom(verb))) = (toks.first(), toks.get(1)) else {
                write!(c.out, "* BAD [PARSE] Could not parse command\r\n")?;
                c.out.flush()?;
                continue;
            };
            let (tag, verb, args) = (tag.clone(), verb.to_ascii_uppercase(), &toks[2..]);
            if verb == "LOGOUT" {
                write!(
                    c.out,
                    "* BYE LOGOUT Requested\r\n{tag} OK 73 good day (Success)\r\n"
                )?;
                return c.out.flush();
            }
            let sub = args
                .first()
                .and_then(Tok::text)
                .unwrap_or_default()
                .to_ascii_uppercase();
            // EXPUNGE may not interrupt FETCH or STORE by sequence number (RFC 3501 7.4.1).
            let syncs = !matches!(verb.as_str(), "FETCH" | "STORE");
            if syncs {
                c.sync()?;
            }
            let status = match verb.as_str() {
                "UID" => c.command(&sub, &args[1..], true)?,
                _ => c.command(&verb, args, false)?,
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
        let selected = self.sel.is_some();
        match (verb, authed, selected, uid) {
            ("CAPABILITY", ..) => {
                let auth = if authed {
                    ""
                } else {
                    " SASL-IR AUTH=PLAIN AUTH=XOAUTH2"
                };
                write!(self.out, "* CAPABILITY {CAPS}{auth}\r\n")?;
                Ok("OK Success".into())
            }
            ("NOOP", ..) => Ok("OK Success".into()),
            ("ID", ..) => {
                write!(
                    self.out,
                    "* ID (\"name\" \"GImap\" \"vendor\" \"Google, Inc.\" \"support-url\" \"https://support.google.com/mail\")\r\n"
                )?;
                Ok("OK Success".into())
            }
            ("LOGIN", false, ..) => match (
                args.first().and_then(Tok::text),
                args.get(1).and_then(Tok::text),
            ) {
                (Some(u), Some(p)) => {
                    let right = self
                        .sh
                        .lock()
                        .accounts
                        .get(&u)
                        .is_some_and(|a| a.password.as_deref() == Some(p.as_str()));
                    Ok(self.logged_in(&u, right))
                }
                _ => Ok("BAD Could not parse command".into()),
            },
            ("AUTHENTICATE", false, ..) => self.authenticate(args),
            ("LOGIN" | "AUTHENTICATE", true, ..) => Ok("BAD Already authenticated".into()),
            (_, false, ..) => Ok("BAD Command not valid before login".into()),
            ("NAMESPACE", ..) => {
                write!(self.out, "* NAMESPACE ((\"\" \"/\")) NIL NIL\r\n")?;
                Ok("OK Success".into())
            }
            ("LIST" | "LSUB", ..) => self.list(verb, args),
            ("STATUS", ..) => self.status(args),
            ("SELECT" | "EXAMINE", ..) => self.select(verb == "EXAMINE", args),
            ("CREATE", ..) => self.create(args),
            ("SUBSCRIBE" | "UNSUBSCRIBE", ..) => {
                let Some(name) = args.first().and_then(Tok::text) else {
                    return Ok("BAD Could not parse command".into());
                };
                let user = self.user.clone().unwrap_or_default();
                let mut st = self.sh.lock();
                let a = st.accounts.get_mut(&user).expect("logged-in user exists");
                match a.folder(&name) {
                    Some(f) => {
                        a.folders[f].subscribed = verb == "SUBSCRIBE";
                        Ok("OK Success".into())
                    }
                    None => Ok(format!(
                        "NO [NONEXISTENT] Unknown Mailbox: {name} (Failure)"
                    )),
                }
            }
            ("APPEND", ..) => self.append(args),
            ("IDLE", ..) => self.idle(),
            ("FETCH" | "STORE" | "COPY" | "MOVE", _, false, _) => {
                Ok("BAD Command not valid in this state".into())
            }
            ("FETCH", ..) => self.fetch(args, uid),
            ("STORE", ..) => self.store(args, uid),
            ("COPY" | "MOVE", ..) => self.copy(args, uid, verb == "MOVE"),
            _ => Ok(format!("BAD Unknown command {verb}")),
        }
    }

    fn logged_in(&mut self, user: &str, right: bool) -> String {
        if !right {
            return BAD_CREDENTIALS.into();
        }
        let max = self.sh.limits.connections.unwrap_or(usize::MAX);
        let mut st = self.sh.lock();
        let Some(a) = st.accounts.get_mut(user) else {
            return BAD_CREDENTIALS.into();
        };
        if a.open >= max {
            return TOO_MANY.into();
        }
        a.open += 1;
        self.user = Some(user.into());
        format!("OK {user} authenticated (Success)")
    }

    fn authenticate(&mut self, args: &[Tok]) -> Reply {
        let mech = args
            .first()
            .and_then(Tok::text)
            .unwrap_or_default()
            .to_ascii_uppercase();
        if mech != "PLAIN" && mech != "XOAUTH2" {
            return Ok(format!("BAD Unsupported AUTHENTICATE mechanism {mech}"));
        }
        let answer = match args.get(1).and_then(Tok::text) {
            Some(initial) => initial,
            None => {
                self.out.write_all(b"+ \r\n")?;
                self.out.flush()?;
                match self.read_line()? {
                    Some(l) => String::from_utf8_lossy(&l).trim().to_string(),
                    None => return Ok("BAD connection closed".into()),
                }
            }
        };
        if answer == "*" {
            return Ok("BAD Authentication cancelled".into());
        }
        use base64::Engine as _;
        let decoded = if answer == "=" {
            Ok(Vec::new())
        } else {
            base64::engine::general_purpose::STANDARD.decode(&answer)
        };
        let Ok(decoded) = decoded else {
            return Ok("BAD Invalid base64".into());
        };
        if mech == "PLAIN" {
            let parts: Vec<String> = decoded
                .split(|&b| b == 0)
                .map(|p| String::from_utf8_lossy(p).into_owned())
                .collect();
            let [authz, user, password] = parts.as_slice() else {
                return Ok(BAD_CREDENTIALS.into());
            };
            let right = (authz.is_empty() || authz == user)
                && self
                    .sh
                    .lock()
                    .accounts
                    .get(user)
                    .is_some_and(|a| a.password.as_deref() == Some(password.as_str()));
            return Ok(self.logged_in(user, right));
        }
        // user=<user>^Aauth=Bearer <token>^A^A
        let text = String::from_utf8_lossy(&decoded).into_owned();
        let mut user = None;
        let mut token = None;
        for part in text.split('\x01') {
            if let Some(u) = part.strip_prefix("user=") {
                user = Some(u.to_string());
            } else if let Some(t) = part.strip_prefix("auth=Bearer ") {
                token = Some(t.to_string());
            }
        }
        let right = match (&user, &token) {
            (Some(u), Some(t)) => self
                .sh
                .lock()
                .accounts
                .get(u)
                .is_some_and(|a| a.token.as_deref() == Some(t.as_str())),
            _ => false,
        };
        if right {
            return Ok(self.logged_in(&user.unwrap_or_default(), true));
        }
        // The error comes as a challenge; the client answers it with an empty line.
        write!(
            self.out,
            "+ {}\r\n",
            crate::base64(XOAUTH2_CHALLENGE.as_bytes())
        )?;
        self.out.flush()?;
        self.read_line()?;
        Ok(BAD_CREDENTIALS.into())
    }

    fn account<'a>(&self, st: &'a mut State) -> &'a mut Account {
        let user = self.user.as_deref().unwrap_or_default();
        st.accounts.get_mut(user).expect("logged-in user exists")
    }

    fn list(&mut self, verb: &str, mut args: &[Tok]) -> Reply {
        let (mut special_only, mut subscribed_only, mut show_subscribed) =
            (false, verb == "LSUB", false);
        if let Some(Tok::List(opts)) = args.first() {
            for o in opts.iter().filter_map(Tok::text) {
                match o.to_ascii_uppercase().as_str() {
                    "SPECIAL-USE" => special_only = true,
                    "SUBSCRIBED" => subscribed_only = true,
                    _ => return Ok(format!("BAD Unknown LIST option {o}")),
                }
            }
            args = &args[1..];
        }
        let (Some(reference), Some(pattern)) = (
            args.first().and_then(Tok::text),
            args.get(1).and_then(Tok::text),
        ) else {
            return Ok("BAD Could not parse command".into());
        };
        if let (Some(Tok::Atom(r)), Some(Tok::List(opts))) = (args.get(2), args.get(3))
            && r.eq_ignore_ascii_case("RETURN")
        {
            show_subscribed = opts
                .iter()
                .filter_map(Tok::text)
                .any(|o| o.eq_ignore_ascii_case("SUBSCRIBED"));
        }
        if pattern.is_empty() {
            write!(self.out, "* {verb} (\\Noselect) \"/\" \"\"\r\n")?;
            return Ok("OK Success".into());
        }
        let pattern = format!("{reference}{pattern}");
        let mut st = self.sh.lock();
        let a = self.account(&mut st);
        let mut entries: Vec<(String, Option<&str>, bool)> = a
            .folders
            .iter()
            .map(|f| (f.name.clone(), f.special, f.subscribed))
            .collect();
        entries.push(("[Gmail]".into(), None, true));
        let rank = |n: &str| match n {
            "INBOX" => 0,
            n if n.starts_with("[Gmail]") => 2,
            _ => 1,
        };
        entries.sort_by(|x, y| (rank(&x.0), &x.0).cmp(&(rank(&y.0), &y.0)));
        let names: Vec<String> = entries.iter().map(|e| e.0.clone()).collect();
        for (name, special, subscribed) in entries {
            let inbox_match =
                name == "INBOX" && wildmat(pattern.to_ascii_uppercase().as_bytes(), b"INBOX");
            if !(wildmat(pattern.as_bytes(), name.as_bytes()) || inbox_match)
                || (special_only && special.is_none())
                || (subscribed_only && !subscribed)
            {
                continue;
            }
            let prefix = format!("{name}/");
            let mut attrs = Vec::new();
            if name == "[Gmail]" {
                attrs.push("\\Noselect");
            }
            attrs.push(if names.iter().any(|n| n.starts_with(&prefix)) {
                "\\HasChildren"
            } else {
                "\\HasNoChildren"
            });
            if show_subscribed && subscribed {
                attrs.push("\\Subscribed");
            }
            attrs.extend(special);
            write!(
                self.out,
                "* {verb} ({}) \"/\" {}\r\n",
                attrs.join(" "),
                quote(&name)
            )?;
        }
        Ok("OK Success".into())
    }

    fn status(&mut self, args: &[Tok]) -> Reply {
        let (Some(name), Some(items)) = (
            args.first().and_then(Tok::text),
            args.get(1).and_then(Tok::texts),
        ) else {
            return Ok("BAD Could not parse command".into());
        };
        let mut st = self.sh.lock();
        let a = self.account(&mut st);
        let Some(f) = a.folder(&name) else {
            return Ok(format!(
                "NO [NONEXISTENT] Unknown Mailbox: {name} (Failure)"
            ));
        };
        let f = &a.folders[f];
        let mut out = Vec::new();
        for item in items {
            let value = match item.to_ascii_uppercase().as_str() {
                "MESSAGES" => f.members.len(),
                "UIDNEXT" => f.next_uid as usize,
                "UIDVALIDITY" => f.validity as usize,
                "RECENT" => 0,
                "UNSEEN" => f
                    .members
                    .iter()
                    .filter(|&&(_, i)| !a.msgs[i].flags.iter().any(|x| x == "\\Seen"))
                    .count(),
                _ => return Ok(format!("BAD Unknown STATUS item {item}")),
            };
            out.push(format!("{} {value}", item.to_ascii_uppercase()));
        }
        write!(
            self.out,
            "* STATUS {} ({})\r\n",
            quote(&f.name),
            out.join(" ")
        )?;
        Ok("OK Success".into())
    }

    fn select(&mut self, read_only: bool, args: &[Tok]) -> Reply {
        self.sel = None;
        let Some(name) = args.first().and_then(Tok::text) else {
            return Ok("BAD Could not parse command".into());
        };
        let mut st = self.sh.lock();
        let a = self.account(&mut st);
        let Some(f) = a.folder(&name) else {
            return Ok(format!(
                "NO [NONEXISTENT] Unknown Mailbox: {name} (Failure)"
            ));
        };
        let mut flags: Vec<String> = [
            "\\Answered",
            "\\Flagged",
            "\\Draft",
            "\\Deleted",
            "\\Seen",
            "$NotPhishing",
            "$Phishing",
        ]
        .map(String::from)
        .to_vec();
        for m in &a.msgs {
            m.flags.iter().for_each(|x| add(&mut flags, x));
        }
        flags.retain(|x| x != "\\Recent");
        let f = &a.folders[f];
        let permanent = if read_only {
            String::new()
        } else {
            format!("{} \\*", flags.join(" "))
        };
        write!(
            self.out,
            "* FLAGS ({})\r\n* OK [PERMANENTFLAGS ({permanent})] Flags permitted.\r\n* OK [UIDVALIDITY {}] UIDs valid.\r\n* {} EXISTS\r\n* 0 RECENT\r\n* OK [UIDNEXT {}] Predicted next UID.\r\n",
            flags.join(" "),
            f.validity,
            f.members.len(),
            f.next_uid
        )?;
        let name = f.name.clone();
        let known = f.members.iter().map(|m| m.0).collect();
        drop(st);
        self.sel = Some(Selected {
            folder: name.clone(),
            read_only,
            known,
        });
        let mode = if read_only { "READ-ONLY" } else { "READ-WRITE" };
        Ok(format!("OK [{mode}] {name} selected. (Success)"))
    }

    fn create(&mut self, args: &[Tok]) -> Reply {
        let Some(name) = args.first().and_then(Tok::text) else {
            return Ok("BAD Could not parse command".into());
        };
        if args.len() > 1 {
            return Ok("BAD CREATE takes a name only".into());
        }
        let name = name.trim_end_matches('/').to_string();
        if name.is_empty() || name.eq_ignore_ascii_case("INBOX") || name.starts_with("[Gmail]") {
            return Ok(format!("NO [CANNOT] Invalid folder name {name} (Failure)"));
        }
        let mut st = self.sh.lock();
        let a = self.account(&mut st);
        if a.folder(&name).is_some() {
            return Ok(format!(
                "NO [ALREADYEXISTS] Duplicate folder name {name} (Failure)"
            ));
        }
        a.add_label_folder(&name);
        Ok("OK Success".into())
    }

    fn append(&mut self, args: &[Tok]) -> Reply {
        let Some(name) = args.first().and_then(Tok::text) else {
            return Ok("BAD Could not parse command".into());
        };
        let mut rest = &args[1..];
        let mut flags = Vec::new();
        if let Some(Tok::List(l)) = rest.first() {
            l.iter()
                .filter_map(Tok::text)
                .map(|f| norm_flag(&f))
                .filter(|f| f != "\\Recent")
                .for_each(|f| add(&mut flags, &f));
            rest = &rest[1..];
        }
        let date = match rest {
            [Tok::Str(d), _] => {
                let d = String::from_utf8_lossy(d).trim().to_string();
                if !valid_date(&d) {
                    return Ok("BAD Invalid date".into());
                }
                d
            }
            [_] => now_imap(),
            _ => return Ok("BAD Could not parse command".into()),
        };
        let Some(Tok::Str(raw)) = rest.last() else {
            return Ok("BAD Could not parse command".into());
        };
        let limit = self.sh.limits.upload;
        let mut st = self.sh.lock();
        let user = self.user.clone().unwrap_or_default();
        if limit.is_some_and(|l| st.uploaded >= l) {
            return Ok(OVERQUOTA.into());
        }
        st.uploaded += raw.len() as u64;
        let mut a = st.accounts.remove(&user).expect("logged-in user exists");
        let msg = Msg {
            raw: raw.clone(),
            date,
            flags,
            ..Msg::default()
        };
        let reply = append_into(&mut st, &mut a, &name, msg);
        st.accounts.insert(user, a);
        Ok(reply)
    }

    fn idle(&mut self) -> Reply {
        self.out.write_all(b"+ idling\r\n")?;
        self.out.flush()?;
        loop {
            match self.read_input()? {
                Input::Line(l)
                    if String::from_utf8_lossy(&l)
                        .trim()
                        .eq_ignore_ascii_case("DONE") =>
                {
                    return Ok("OK IDLE terminated (Success)".into());
                }
                Input::Line(_) => return Ok("BAD Expected DONE".into()),
                Input::Tick => {
                    self.sync()?;
                    self.out.flush()?;
                }
                Input::Closed => return Ok("BAD connection closed".into()),
            }
        }
    }

    /// The messages a set names in the selected folder: (sequence number, UID, index).
    fn resolve(&self, a: &Account, set: &str, by_uid: bool) -> Option<Vec<(u32, u32, usize)>> {
        let sel = self.sel.as_ref()?;
        let members: &[(u32, usize)] = a.folder(&sel.folder).map_or(&[], |f| &a.folders[f].members);
        let seq_of = |uid: u32| {
            sel.known
                .iter()
                .position(|&k| k == uid)
                .map_or(0, |p| p as u32 + 1)
        };
        if by_uid {
            let ranges = parse_set(set, members.last().map_or(0, |m| m.0))?;
            Some(
                members
                    .iter()
                    .filter(|m| in_ranges(&ranges, m.0))
                    .map(|&(u, i)| (seq_of(u), u, i))
                    .collect(),
            )
        } else {
            let ranges = parse_set(set, sel.known.len() as u32)?;
            Some(
                (1..=sel.known.len() as u32)
                    .filter(|&s| in_ranges(&ranges, s))
                    .filter_map(|s| {
                        let uid = sel.known[s as usize - 1];
                        members.iter().find(|m| m.0 == uid).map(|&(u, i)| (s, u, i))
                    })
                    .collect(),
            )
        }
    }

    fn fetch(&mut self, args: &[Tok], by_uid: bool) -> Reply {
        let (Some(set), Some(items)) = (args.first().and_then(Tok::text), args.get(1)) else {
            return Ok("BAD Could not parse command".into());
        };
        if args.len() > 2 {
            return Ok("BAD FETCH modifiers are not supported".into());
        }
        let items = match fetch_items(items) {
            Ok(i) => i,
            Err(e) => return Ok(format!("BAD Could not parse command: {e}")),
        };
        let read_only = self.sel.as_ref().is_some_and(|s| s.read_only);
        let limit = self.sh.limits.download;
        let sh = self.sh.clone();
        let mut st = sh.lock();
        let user = self.user.clone().unwrap_or_default();
        let Some(targets) = self.resolve(&st.accounts[&user], &set, by_uid) else {
            return Ok("BAD Invalid sequence set".into());
        };
        let bodies = items.iter().any(|i| matches!(i, Item::Body { .. }));
        let sets_seen = !read_only
            && items
                .iter()
                .any(|i| matches!(i, Item::Body { peek: false, .. }));
        for (seq, uid, idx) in targets {
            if bodies && limit.is_some_and(|l| st.downloaded >= l) {
                return Ok(OVERQUOTA.into());
            }
            let a = st.accounts.get_mut(&user).expect("logged-in user exists");
            let m = &mut a.msgs[idx];
            let mut show_flags = items.iter().any(|i| matches!(i, Item::Flags));
            if sets_seen && !m.flags.iter().any(|f| f == "\\Seen") {
                m.flags.push("\\Seen".into());
                show_flags = true;
            }
            let m = &a.msgs[idx];
            let mut parts: Vec<Vec<u8>> = Vec::new();
            if by_uid && !items.iter().any(|i| matches!(i, Item::Uid)) {
                parts.push(format!("UID {uid}").into_bytes());
            }
            let mut served = 0;
            for item in &items {
                parts.push(match item {
                    Item::Uid => format!("UID {uid}").into_bytes(),
                    Item::Flags => continue,
                    Item::Size => format!("RFC822.SIZE {}", m.raw.len()).into_bytes(),
                    Item::Date => format!("INTERNALDATE \"{}\"", m.date).into_bytes(),
                    Item::MsgId => format!("X-GM-MSGID {}", m.msgid).into_bytes(),
                    Item::ThrId => format!("X-GM-THRID {}", m.thrid).into_bytes(),
                    Item::Labels => {
                        let labels: Vec<String> =
                            m.labels.iter().map(|l| label_astring(l)).collect();
                        format!("X-GM-LABELS ({})", labels.join(" ")).into_bytes()
                    }
                    Item::Envelope => format!("ENVELOPE {}", envelope(&m.raw)).into_bytes(),
                    Item::Body {
                        name,
                        section,
                        partial,
                        ..
                    } => {
                        let mut data = section_bytes(&m.raw, section);
                        if let Some((o, l)) = *partial {
                            data = data[o.min(data.len())..(o.saturating_add(l)).min(data.len())]
                                .to_vec();
                        }
                        served += data.len() as u64;
                        let mut p = format!("{name} {{{}}}\r\n", data.len()).into_bytes();
                        p.extend_from_slice(&data);
                        p
                    }
                });
            }
            if show_flags {
                parts.push(format!("FLAGS ({})", m.flags.join(" ")).into_bytes());
            }
            st.downloaded += served;
            write!(self.out, "* {seq} FETCH (")?;
            self.out.write_all(&parts.join(&b' '))?;
            self.out.write_all(b")\r\n")?;
        }
        Ok("OK Success".into())
    }

    fn store(&mut self, args: &[Tok], by_uid: bool) -> Reply {
        let (Some(set), Some(item), Some(values)) = (
            args.first().and_then(Tok::text),
            args.get(1).and_then(Tok::text),
            args.get(2).and_then(Tok::texts),
        ) else {
            return Ok("BAD Could not parse command".into());
        };
        if self.sel.as_ref().is_some_and(|s| s.read_only) {
            return Ok("NO STORE attempt on READ-ONLY folder (Failure)".into());
        }
        let item = item.to_ascii_uppercase();
        let (op, rest) = match item.as_bytes().first() {
            Some(b'+') => ('+', &item[1..]),
            Some(b'-') => ('-', &item[1..]),
            _ => ('=', item.as_str()),
        };
        let (kind, silent) = match rest.strip_suffix(".SILENT") {
            Some(k) => (k, true),
            None => (rest, false),
        };
        let labels = match kind {
            "FLAGS" => false,
            "X-GM-LABELS" => true,
            _ => return Ok(format!("BAD Unknown STORE item {item}")),
        };
        let mut st = self.sh.lock();
        let user = self.user.clone().unwrap_or_default();
        let a = st.accounts.get_mut(&user).expect("logged-in user exists");
        let Some(targets) = self.resolve(a, &set, by_uid) else {
            return Ok("BAD Invalid sequence set".into());
        };
        for &(_, _, idx) in &targets {
            let mut m = std::mem::take(&mut a.msgs[idx]);
            if labels {
                if op == '=' {
                    m.labels.clear();
                }
                for v in &values {
                    if op == '-' {
                        Account::remove_label(&mut m, v)
                    } else {
                        a.add_label(&mut m, v)
                    }
                }
            } else {
                if op == '=' {
                    m.flags.clear();
                }
                for v in values
                    .iter()
                    .map(|v| norm_flag(v))
                    .filter(|v| v != "\\Recent")
                {
                    if op == '-' {
                        m.flags.retain(|f| *f != v)
                    } else {
                        add(&mut m.flags, &v)
                    }
                }
            }
            a.msgs[idx] = m;
        }
        a.refresh();
        if !silent {
            for (seq, uid, idx) in targets {
                let m = &a.msgs[idx];
                let uid = if by_uid {
                    format!("UID {uid} ")
                } else {
                    String::new()
                };
                let value = if labels {
                    format!(
                        "X-GM-LABELS ({})",
                        m.labels
                            .iter()
                            .map(|l| label_astring(l))
                            .collect::<Vec<_>>()
                            .join(" ")
                    )
                } else {
                    format!("FLAGS ({})", m.flags.join(" "))
                };
                write!(self.out, "* {seq} FETCH ({uid}{value})\r\n")?;
            }
        }
        Ok("OK Success".into())
    }

    fn copy(&mut self, args: &[Tok], by_uid: bool, remove: bool) -> Reply {
        let (Some(set), Some(dest)) = (
            args.first().and_then(Tok::text),
            args.get(1).and_then(Tok::text),
        ) else {
            return Ok("BAD Could not parse command".into());
        };
        let mut st = self.sh.lock();
        let user = self.user.clone().unwrap_or_default();
        let a = st.accounts.get_mut(&user).expect("logged-in user exists");
        let Some(d) = a.folder(&dest) else {
            return Ok("NO [TRYCREATE] Folder doesn't exist. (Failure)".into());
        };
        let Some(targets) = self.resolve(a, &set, by_uid) else {
            return Ok("BAD Invalid sequence set".into());
        };
        let source = self
            .sel
            .as_ref()
            .and_then(|s| a.folder(&s.folder))
            .map(|f| a.folders[f].view.clone());
        let dest_view = a.folders[d].view.clone();
        for &(_, _, idx) in &targets {
            let mut m = std::mem::take(&mut a.msgs[idx]);
            if remove
                && source.as_ref() != Some(&dest_view)
                && let Some(l) = source.as_ref().and_then(View::label)
            {
                Account::remove_label(&mut m, &l);
            }
            if let Some(l) = dest_view.label() {
                a.add_label(&mut m, &l);
            }
            a.msgs[idx] = m;
        }
        a.refresh();
        let f = &a.folders[d];
        let dest_uids: Vec<String> = targets
            .iter()
            .filter_map(|t| {
                f.members
                    .iter()
                    .find(|m| m.1 == t.2)
                    .map(|m| m.0.to_string())
            })
            .collect();
        let src_uids: Vec<String> = targets.iter().map(|t| t.1.to_string()).collect();
        if targets.is_empty() || dest_uids.len() != src_uids.len() {
            return Ok("OK (Success)".into());
        }
        let code = format!(
            "[COPYUID {} {} {}]",
            f.validity,
            src_uids.join(","),
            dest_uids.join(",")
        );
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
            let st = self.sh.lock();
            let a = &st.accounts[self.user.as_deref().unwrap_or_default()];
            a.folder(&sel.folder).map_or(Vec::new(), |f| {
                a.folders[f].members.iter().map(|m| m.0).collect()
            })
        };
        let present: HashSet<u32> = current.iter().copied().collect();
        let mut i = 0;
        while i < sel.known.len() {
            if present.contains(&sel.known[i]) {
                i += 1;
            } else {
                write!(self.out, "* {} EXPUNGE\r\n", i + 1)?;
                sel.known.remove(i);
            }
        }
        let last = sel.known.last().copied().unwrap_or(0);
        let new: Vec<u32> = current.into_iter().filter(|&u| u > last).collect();
        if !new.is_empty() {
            sel.known.extend(new);
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
                    return Ok(if self.sh.stop.load(Ordering::Relaxed) {
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

    /// A whole command, literals included (`+` sent for synchronizing ones), and its first
    /// line for the log.
    fn read_command(&mut self) -> io::Result<Option<(Vec<u8>, String)>> {
        let mut buf = Vec::new();
        let mut first = None;
        loop {
            let Some(line) = self.read_line()? else {
                return Ok(None);
            };
            let text = String::from_utf8_lossy(&line).trim_end().to_string();
            first.get_or_insert_with(|| text.clone());
            buf.extend_from_slice(&line);
            let Some(spec) = text
                .strip_suffix('}')
                .and_then(|t| t.rsplit_once('{'))
                .map(|(_, s)| s)
            else {
                return Ok(first.map(|f| (buf, f)));
            };
            let (digits, sync) = match spec.strip_suffix('+') {
                Some(d) => (d, false),
                None => (spec, true),
            };
            let Ok(n) = digits.parse::<usize>() else {
                return Ok(first.map(|f| (buf, f)));
            };
            if n > MAX_LITERAL {
                write!(self.out, "* BYE [ALERT] Message too large. (Failure)\r\n")?;
                self.out.flush()?;
                return Ok(None);
            }
            if sync {
                self.out.write_all(b"+ go ahead\r\n")?;
                self.out.flush()?;
            }
            // The literal's bytes: first what is buffered, then the socket.
            let mut data = vec![0; n];
            let mut got = 0;
            while got < n {
                match self.input.read(&mut data[got..]) {
                    Ok(0) => return Ok(None),
                    Ok(k) => got += k,
                    Err(e)
                        if matches!(
                            e.kind(),
                            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                        ) =>
                    {
                        if self.sh.stop.load(Ordering::Relaxed) {
                            return Ok(None);
                        }
                    }
                    Err(e) => return Err(e),
                }
            }
            buf.extend_from_slice(&data);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_keep_sections_and_literals_whole() {
        let t = tokens(b"a1 UID FETCH 1:* (UID BODY.PEEK[HEADER.FIELDS (MESSAGE-ID DATE)]<0.10>) {3+}\r\nabc \"q\\\"\"\r\n").unwrap();
        assert!(
            matches!(&t[4], Tok::List(l) if l.len() == 2 && matches!(&l[1], Tok::Atom(a) if a.ends_with("<0.10>")))
        );
        assert!(matches!(&t[5], Tok::Str(s) if s == b"abc"));
        assert!(matches!(&t[6], Tok::Str(s) if s == b"q\""));
    }

    #[test]
    fn sets_wildcards_and_labels() {
        let r = parse_set("1:3,5,7:*", 9).unwrap();
        assert!(in_ranges(&r, 2) && in_ranges(&r, 5) && in_ranges(&r, 9) && !in_ranges(&r, 4));
        assert!(in_ranges(&parse_set("5:*", 3).unwrap(), 3));
        assert!(parse_set("0:2", 3).is_none());
        assert!(
            wildmat(b"*", b"[Gmail]/All Mail")
                && wildmat(b"%", b"Work")
                && !wildmat(b"%", b"Work/Projects")
        );
        assert_eq!(label_astring("\\Inbox"), "\"\\\\Inbox\"");
        assert_eq!(label_astring("Work"), "Work");
        assert_eq!(label_astring("Work/Projects"), "\"Work/Projects\"");
        assert!(valid_date(&now_imap()));
    }
}
