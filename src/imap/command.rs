//! Every IMAP command mailshift sends, as a value. Names and UID sets are types that are
//! valid by construction ([`WireName`], [`UidSet`]), flags are [`Flag`]s (atoms), and the
//! one encoder, [`Command::line`], writes the command line: no caller formats IMAP text.
//!
//! imap-codec's encoder writes only whole messages with their tag (async-imap adds the tag
//! here) and has no CREATE with a special use (RFC 6154), so the handful of commands the
//! copy needs are encoded here; responses are still parsed by imap-proto and imap-codec.

use std::fmt;

use chrono::{DateTime, FixedOffset};

use super::diff::FlagSet;
use super::folder_names::Role;

/// A mailbox name in its wire form (modified UTF-7, RFC 3501 §5.1.3), checked once to be
/// sendable as a quoted string: no CR, LF, NUL or 8-bit byte. Displayed quoted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WireName<'a>(&'a str);

impl<'a> WireName<'a> {
    pub fn new(name: &'a str) -> Result<Self, Unsendable> {
        if name
            .bytes()
            .any(|b| matches!(b, b'\r' | b'\n' | 0) || b >= 0x80)
        {
            return Err(Unsendable(name.to_owned()));
        }
        Ok(WireName(name))
    }

    pub fn as_str(self) -> &'a str {
        self.0
    }
}

/// A folder name that cannot be sent in a quoted string. Not a connection problem: this
/// one folder cannot be named, the rest can (a refusal, see `proto`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("folder name {0:?} contains a character that cannot be sent in a quoted string")]
pub struct Unsendable(pub String);

impl fmt::Display for WireName<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"")?;
        for c in self.0.chars() {
            if matches!(c, '\\' | '"') {
                f.write_str("\\")?;
            }
            write!(f, "{c}")?;
        }
        f.write_str("\"")
    }
}

/// A set of UIDs in its compact wire form (`1:3,5,7:*`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UidSet(String);

impl UidSet {
    /// Every message of the folder (`1:*`).
    pub fn all() -> UidSet {
        UidSet::from(1)
    }

    /// `first` and every UID above it (`first:*`; a server answers with the last message
    /// even when its UID is below `first`, which callers filter).
    pub fn from(first: u32) -> UidSet {
        UidSet(format!("{first}:*"))
    }

    /// `first` to `last`, both included (`first <= last`).
    pub fn range(first: u32, last: u32) -> UidSet {
        UidSet(format!("{first}:{last}"))
    }

    /// Exactly `uids`, which are ascending and distinct; runs become ranges.
    pub fn of(uids: &[u32]) -> UidSet {
        let mut out = String::new();
        let mut i = 0;
        while i < uids.len() {
            let start = uids[i];
            let mut end = start;
            while i + 1 < uids.len() && uids[i + 1] == end.wrapping_add(1) {
                i += 1;
                end = uids[i];
            }
            if !out.is_empty() {
                out.push(',');
            }
            if start == end {
                out.push_str(&start.to_string());
            } else {
                out.push_str(&format!("{start}:{end}"));
            }
            i += 1;
        }
        UidSet(out)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for UidSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a UID FETCH asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FetchItems {
    /// Identity, flags, date and size: the header fields the message key is made of.
    Meta,
    /// The message to copy: exact bytes, flags, INTERNALDATE. PEEK keeps `\Seen` as it is
    /// on the source.
    Body,
    /// The whole message as binary (RFC 3516), where `BODY[]` loses NULs.
    Binary,
    Flags,
    /// [`FetchItems::Meta`], [`FetchItems::Body`], [`FetchItems::Flags`] with Gmail's
    /// `X-GM-LABELS`.
    MetaLabels,
    BodyLabels,
    FlagsLabels,
}

impl FetchItems {
    fn wire(self) -> &'static str {
        match self {
            FetchItems::Meta => {
                "(UID FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK[HEADER.FIELDS (MESSAGE-ID DATE FROM TO SUBJECT)])"
            }
            FetchItems::Body => "(UID FLAGS INTERNALDATE BODY.PEEK[])",
            FetchItems::Binary => "(UID BINARY.PEEK[])",
            FetchItems::Flags => "(UID FLAGS)",
            FetchItems::MetaLabels => {
                "(UID FLAGS INTERNALDATE RFC822.SIZE X-GM-LABELS BODY.PEEK[HEADER.FIELDS (MESSAGE-ID DATE FROM TO SUBJECT)])"
            }
            FetchItems::BodyLabels => "(UID FLAGS INTERNALDATE X-GM-LABELS BODY.PEEK[])",
            FetchItems::FlagsLabels => "(UID FLAGS X-GM-LABELS)",
        }
    }

    /// The same items, with `X-GM-LABELS` when `labels`.
    pub fn with_labels(self, labels: bool) -> FetchItems {
        match (self, labels) {
            (FetchItems::Meta, true) => FetchItems::MetaLabels,
            (FetchItems::Body, true) => FetchItems::BodyLabels,
            (FetchItems::Flags, true) => FetchItems::FlagsLabels,
            (items, _) => items,
        }
    }
}

/// How a UID STORE changes flags; always `.SILENT` (the copy knows what it set).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum StoreOp {
    Add,
    Remove,
    Replace,
}

/// One message of an APPEND: its flags, INTERNALDATE and literal announcement (the
/// literal itself follows the line).
#[derive(Clone, Copy, Debug)]
pub struct AppendItem<'a> {
    pub flags: &'a FlagSet,
    pub internal_date: Option<DateTime<FixedOffset>>,
    pub size: usize,
    /// A literal8 (`~{n}`, RFC 3516), for a message with NULs.
    pub binary: bool,
    /// LITERAL+ (`{n+}`): the message follows without waiting for the server's `+`.
    pub non_synchronizing: bool,
}

impl fmt::Display for AppendItem<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", FlagList(self.flags))?;
        if let Some(d) = self.internal_date {
            write!(f, " {}", d.format("\"%d-%b-%Y %H:%M:%S %z\""))?;
        }
        write!(
            f,
            " {}{{{}{}}}",
            if self.binary { "~" } else { "" },
            self.size,
            if self.non_synchronizing { "+" } else { "" }
        )
    }
}

struct FlagList<'a>(&'a FlagSet);

impl fmt::Display for FlagList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("(")?;
        for (i, flag) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{flag}")?;
        }
        f.write_str(")")
    }
}

/// An IMAP command, without its tag.
#[derive(Clone, Copy, Debug)]
pub enum Command<'a> {
    Capability,
    Namespace,
    /// All folders; with LIST-EXTENDED (RFC 5258) their subscription and, where
    /// offered, special use (RFC 6154) in the same answer.
    List {
        extended: bool,
        special_use: bool,
    },
    Lsub,
    Status {
        mailbox: WireName<'a>,
        /// HIGHESTMODSEQ too (CONDSTORE).
        modseq: bool,
    },
    Select(WireName<'a>),
    Examine(WireName<'a>),
    Create {
        mailbox: WireName<'a>,
        /// The role whose special use to ask for (CREATE-SPECIAL-USE, RFC 6154); one
        /// without an attribute (Inbox, Outbox) asks for none.
        special_use: Option<Role>,
    },
    Subscribe(WireName<'a>),
    UidFetch {
        set: &'a UidSet,
        items: FetchItems,
        /// Only messages whose flags changed after this MODSEQ (CONDSTORE, RFC 7162).
        changed_since: Option<u64>,
    },
    UidStore {
        set: &'a UidSet,
        op: StoreOp,
        flags: &'a FlagSet,
    },
    Append {
        mailbox: WireName<'a>,
        item: AppendItem<'a>,
    },
    Logout,
}

impl Command<'_> {
    /// The command line as sent after the tag, without CRLF.
    pub fn line(&self) -> String {
        match self {
            Command::Capability => "CAPABILITY".into(),
            Command::Namespace => "NAMESPACE".into(),
            Command::List {
                extended: true,
                special_use: true,
            } => "LIST \"\" \"*\" RETURN (SUBSCRIBED SPECIAL-USE)".into(),
            Command::List { extended: true, .. } => "LIST \"\" \"*\" RETURN (SUBSCRIBED)".into(),
            Command::List { .. } => "LIST \"\" \"*\"".into(),
            Command::Lsub => "LSUB \"\" \"*\"".into(),
            Command::Status { mailbox, modseq } => format!(
                "STATUS {mailbox} (MESSAGES UIDNEXT UIDVALIDITY{})",
                if *modseq { " HIGHESTMODSEQ" } else { "" }
            ),
            Command::Select(mailbox) => format!("SELECT {mailbox}"),
            Command::Examine(mailbox) => format!("EXAMINE {mailbox}"),
            Command::Create {
                mailbox,
                special_use,
            } => match special_use.and_then(Role::special_use) {
                Some(attribute) => format!("CREATE {mailbox} (USE ({attribute}))"),
                None => format!("CREATE {mailbox}"),
            },
            Command::Subscribe(mailbox) => format!("SUBSCRIBE {mailbox}"),
            Command::UidFetch {
                set,
                items,
                changed_since,
            } => {
                let mut line = format!("UID FETCH {set} {}", items.wire());
                if let Some(m) = changed_since {
                    line.push_str(&format!(" (CHANGEDSINCE {m})"));
                }
                line
            }
            Command::UidStore { set, op, flags } => {
                let item = match op {
                    StoreOp::Add => "+FLAGS.SILENT",
                    StoreOp::Remove => "-FLAGS.SILENT",
                    StoreOp::Replace => "FLAGS.SILENT",
                };
                format!("UID STORE {set} {item} {}", FlagList(flags))
            }
            Command::Append { mailbox, item } => format!("APPEND {mailbox} {item}"),
            Command::Logout => "LOGOUT".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::imap::diff::Flag;

    #[test]
    fn names_are_quoted_once_and_refused_when_unsendable() {
        let name = WireName::new(r#"a"b\c"#).unwrap();
        assert_eq!(name.to_string(), r#""a\"b\\c""#);
        assert!(WireName::new("a\r\nb").is_err());
        // 8-bit text is not a wire name: modified UTF-7 comes first.
        assert!(WireName::new("Hộp").is_err());
        assert_eq!(
            Command::Examine(WireName::new("&AOk-t&AOk-").unwrap()).line(),
            "EXAMINE \"&AOk-t&AOk-\""
        );
    }

    #[test]
    fn uid_sets_are_compact() {
        assert!(UidSet::of(&[]).is_empty());
        assert_eq!(UidSet::of(&[4]).to_string(), "4");
        assert_eq!(
            UidSet::of(&[1, 2, 3, 5, 7, 8, 9, 12]).to_string(),
            "1:3,5,7:9,12"
        );
        assert_eq!(
            UidSet::of(&[u32::MAX - 1, u32::MAX]).to_string(),
            format!("{}:{}", u32::MAX - 1, u32::MAX)
        );
        assert_eq!(UidSet::all().to_string(), "1:*");
        assert_eq!(UidSet::from(7).to_string(), "7:*");
    }

    #[test]
    fn each_command_line() {
        let inbox = WireName::new("INBOX").unwrap();
        let set = UidSet::of(&[3, 4]);
        let all = UidSet::all();
        let flags = Flag::parse_all(["\\Seen", "$Label1", "\\Recent"]);
        let cases: Vec<(Command<'_>, &str)> = vec![
            (
                Command::List {
                    extended: true,
                    special_use: true,
                },
                "LIST \"\" \"*\" RETURN (SUBSCRIBED SPECIAL-USE)",
            ),
            (
                Command::List {
                    extended: false,
                    special_use: true,
                },
                "LIST \"\" \"*\"",
            ),
            (
                Command::Status {
                    mailbox: inbox,
                    modseq: true,
                },
                "STATUS \"INBOX\" (MESSAGES UIDNEXT UIDVALIDITY HIGHESTMODSEQ)",
            ),
            (
                Command::Create {
                    mailbox: WireName::new("Sent").unwrap(),
                    special_use: Some(Role::Sent),
                },
                "CREATE \"Sent\" (USE (\\Sent))",
            ),
            (
                Command::UidFetch {
                    set: &all,
                    items: FetchItems::Flags,
                    changed_since: Some(42),
                },
                "UID FETCH 1:* (UID FLAGS) (CHANGEDSINCE 42)",
            ),
            (
                Command::UidStore {
                    set: &set,
                    op: StoreOp::Remove,
                    flags: &flags,
                },
                "UID STORE 3:4 -FLAGS.SILENT (\\Seen $Label1)",
            ),
        ];
        for (command, line) in cases {
            assert_eq!(command.line(), line, "{command:?}");
        }
    }

    #[test]
    fn append_lines() {
        let flags = Flag::parse_all(["\\Seen", "$Label1"]);
        let item = AppendItem {
            flags: &flags,
            internal_date: DateTime::parse_from_rfc3339("2019-03-07T08:09:10+05:30").ok(),
            size: 18,
            binary: false,
            non_synchronizing: true,
        };
        assert_eq!(
            Command::Append {
                mailbox: WireName::new("INBOX").unwrap(),
                item
            }
            .line(),
            "APPEND \"INBOX\" (\\Seen $Label1) \"07-Mar-2019 08:09:10 +0530\" {18+}"
        );
        let none = FlagSet::new();
        let bare = AppendItem {
            flags: &none,
            internal_date: None,
            binary: true,
            non_synchronizing: false,
            ..item
        };
        assert_eq!(bare.to_string(), "() ~{18}");
    }
}
