//! Folder mapping: where each source folder's messages go on the destination, and why.
//!
//! [`folder_table`] takes both servers' folder lists (names already decoded from modified
//! UTF-7, with their LIST attributes and subscription state), each server's hierarchy
//! delimiter and personal NAMESPACE prefix, and the manifest's `spec.folders`, and returns
//! one [`FolderPlan`] per source folder. It is pure: `mailshift folders` / `plan` print it,
//! the copy engine follows it.
//!
//! # Rules, in order
//!
//! 1. **Names are made relative** to each server's personal namespace: `INBOX.Sent` on a
//!    Courier-style source (prefix `INBOX.`, delimiter `.`) is the top-level folder `Sent`,
//!    and lands as `Sent` on a Dovecot destination (prefix ``, delimiter `/`), or as
//!    `INBOX.Sent` on another Courier. `INBOX` (any case) is always `INBOX`.
//! 2. **Roles**: a SPECIAL-USE attribute (`\Sent`, `\Junk`...; RFC 6154) gives a folder its
//!    role wherever it is. Otherwise a folder at a *default position* (top level, or directly
//!    under `[Gmail]`/`[Google Mail]`) whose name is a default name in the source's language
//!    ([`folder_names::role_for`]) has that role. The language is `sourceLanguage`, or, for
//!    `auto`, [`folder_names::detect_languages`] over the names at default positions. A
//!    folder that merely resembles a default (`Old Sent`, `Projects/Sent`) keeps its name.
//! 3. **A role folder's messages go into the destination's own folder for that role**: the
//!    destination folder marked with the SPECIAL-USE attribute, else the one named as a
//!    default for the role in the destination's language (detected the same way), else a
//!    new folder named in that language (English when unknown), created with its
//!    SPECIAL-USE. So `Gesendete Elemente` and `Sent Items` both end in the destination's
//!    `Sent`: one Sent, not two. Inbox is always `INBOX`.
//! 4. **Rename rules** (`spec.folders.rename`) come next and win over roles: an explicit
//!    rule says where a folder goes (except `INBOX`, which always maps to `INBOX`). `from`
//!    is the source folder's name as the source shows it, with or without its namespace
//!    prefix; `to` uses `/` between levels.
//! 5. **Children follow their parent**: a folder under a role folder or a renamed folder
//!    keeps its place under the parent's destination (`Gesendete Elemente/2019` →
//!    `Sent/2019`). The nearest such ancestor decides.
//! 6. **Exclude** patterns (`spec.folders.exclude`) come last: `*` matches any run of
//!    characters and a pattern matches the source's full name or its name without the
//!    namespace prefix, with the source's delimiter or with `/` (`Junk` matches `INBOX.Junk`
//!    on Courier, and so does `Archive/*` `INBOX.Archive.2020`); a pattern matches the
//!    folders it names, not their children (write `Archive/*` for those). A role selector
//!    (`\Junk`, `\Trash`, ...) excludes the folders with that role *and* everything under
//!    them, since those follow their parent.
//! 7. Folders that cannot hold messages (`\Noselect`, `\NonExistent`) are not copied; the
//!    destination creates parent levels itself when their children are created.
//!
//! # Separators
//!
//! Each level is carried over as is. A level containing the destination's delimiter (a
//! source folder `a/b` that is one level on a `.` server, moving to a `/` server) would
//! become two levels: the delimiter is replaced by `_` in that level, and the plan says so.
//!
//! # Two folders, one destination
//!
//! When two source folders would land in the same destination folder, that is a merge. It
//! is allowed only when all of them are default folders of the same role (or children of
//! such, at the same relative place): `Sent` and `Sent Items` both → `Sent`. Each plan lists
//! the folders it merges with. Any other collision is a [`MappingError`]: nothing is copied
//! until a rename or exclude rule resolves it. (Messages present in both merged folders
//! are copied once: each source folder is compared with the whole destination folder.)

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

use thiserror::Error;

use super::folder_names::{self, Lang, Role};
use crate::spec::semantic::glob_match;
use crate::spec::{Folders, GmailLabels};

/// One folder as LIST reports it, its name decoded from modified UTF-7
/// ([`super::mutf7::decode`]; encode it again with [`super::mutf7::encode`], which gives back
/// the server's bytes since only canonical names decode).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListedFolder {
    /// Full name, as the server shows it (namespace prefix and delimiters included).
    pub name: String,
    /// LIST attributes, e.g. `\HasNoChildren`, `\Noselect`, `\Sent` (SPECIAL-USE).
    pub attributes: Vec<String>,
    /// Whether LSUB (or LIST-EXTENDED `\Subscribed`) lists it.
    pub subscribed: bool,
    /// The server listed another folder whose name decodes to the same text: (this one's
    /// spelling on the wire, the other's). `name` was then made distinct.
    pub same_text_as: Option<(String, String)>,
}

impl ListedFolder {
    pub fn new(name: &str, attributes: &[&str], subscribed: bool) -> ListedFolder {
        ListedFolder {
            name: name.to_owned(),
            attributes: attributes.iter().map(|a| (*a).to_owned()).collect(),
            subscribed,
            same_text_as: None,
        }
    }

    fn has(&self, attr: &str) -> bool {
        self.attributes.iter().any(|a| a.eq_ignore_ascii_case(attr))
    }

    /// Can hold messages: not `\Noselect` nor `\NonExistent` (RFC 5258).
    pub fn selectable(&self) -> bool {
        !self.has("\\Noselect") && !self.has("\\NonExistent")
    }

    /// The role its SPECIAL-USE attribute gives it, and that attribute.
    fn special_use(&self) -> Option<(Role, &str)> {
        self.attributes
            .iter()
            .find_map(|a| Role::from_special_use(a).map(|r| (r, a.as_str())))
    }
}

/// A server's folders and how it names them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FolderList {
    /// The hierarchy delimiter (LIST's), `None` for a flat server.
    pub delimiter: Option<char>,
    /// The personal namespace prefix (NAMESPACE), e.g. `INBOX.` on Courier, `` on Dovecot.
    pub prefix: String,
    pub folders: Vec<ListedFolder>,
    /// The namespaces that are not the user's own (NAMESPACE's other users' and shared
    /// ones): their folders are never part of the user's migration.
    pub foreign: Vec<ForeignNamespace>,
    /// The server creates folders with a special use (RFC 6154 CREATE-SPECIAL-USE); without
    /// it a created folder cannot be given one, and the plan does not promise it.
    pub create_special_use: bool,
    /// Characters the server refuses in a folder name although they are not its delimiter
    /// (Dovecot's Maildir++ refuses `.` under a `/` separator), as learned from its refusals
    /// of CREATE: written as `_` in the names mailshift gives it.
    pub refused: Vec<char>,
    /// Gmail (`X-GM-EXT-1`): folders are labels, and All Mail, Starred and Important views.
    pub gmail: bool,
}

impl FolderList {
    /// The other users' or shared namespace `name` is in, if it is not the user's own: the
    /// namespace with the longest prefix holding it wins (Cyrus: personal `INBOX.`, others
    /// `user.`, shared `""`), INBOX is always the user's.
    pub fn foreign_namespace_of(&self, name: &str) -> Option<&ForeignNamespace> {
        if is_inbox(name) {
            return None;
        }
        let personal = (self.prefix.is_empty()
            || name.starts_with(&self.prefix)
            || self
                .delimiter
                .is_some_and(|d| self.prefix.strip_suffix(d) == Some(name)))
        .then_some(self.prefix.len());
        self.foreign
            .iter()
            .filter(|n| n.holds(name, self.delimiter))
            .max_by_key(|n| n.prefix.len())
            .filter(|n| personal.is_none_or(|p| n.prefix.len() > p))
    }
}

/// A namespace of folders that are not the user's own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ForeignNamespace {
    /// Names start with it, e.g. `Other Users/`, `shared/`, `user.` (decoded).
    pub prefix: String,
    pub kind: NamespaceKind,
}

/// NAMESPACE's two kinds of folders that are not the user's own (RFC 2342).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NamespaceKind {
    OtherUsers,
    Shared,
}

impl fmt::Display for NamespaceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NamespaceKind::OtherUsers => "other users'",
            NamespaceKind::Shared => "shared",
        })
    }
}

impl ForeignNamespace {
    /// Whether `name` is in this namespace: under its prefix, or the prefix itself without
    /// its trailing delimiter (`Other Users` for `Other Users/`).
    /// An empty prefix (Cyrus's shared folders with altnamespace off) holds every name;
    /// [`FolderList::foreign_namespace_of`] gives a name to the namespace with the longest
    /// prefix that holds it.
    pub fn holds(&self, name: &str, delimiter: Option<char>) -> bool {
        if self.prefix.is_empty() {
            return true;
        }
        let bare = match delimiter {
            Some(d) => self.prefix.strip_suffix(d).unwrap_or(&self.prefix),
            None => &self.prefix,
        };
        name.starts_with(&self.prefix) || name == bare
    }
}

/// A guess at the personal namespace prefix for a server without NAMESPACE (RFC 2342):
/// `INBOX` + delimiter when every other folder is under `INBOX` (Courier, old Cyrus), else
/// empty.
pub fn guess_prefix(folders: &[ListedFolder], delimiter: Option<char>) -> String {
    let Some(d) = delimiter else {
        return String::new();
    };
    let under = format!("INBOX{d}");
    let mut others = folders
        .iter()
        .filter(|f| !f.name.eq_ignore_ascii_case("INBOX"))
        .peekable();
    if others.peek().is_some()
        && others.all(|f| {
            f.name
                .get(..under.len())
                .is_some_and(|p| p.eq_ignore_ascii_case(&under))
        })
    {
        under
    } else {
        String::new()
    }
}

/// How the destination's folder for a role was found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Found {
    /// `INBOX`.
    Inbox,
    /// Marked with this SPECIAL-USE attribute.
    SpecialUse(String),
    /// Named as a default for the role in this language.
    Named(Lang),
    /// Not there: created with the default name of this language.
    Created(Lang),
}

/// The destination's folder for a role.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub role: Role,
    /// Its full name on the destination.
    pub name: String,
    pub found: Found,
}

/// Why a source folder maps where it does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reason {
    /// `INBOX` always maps to `INBOX`.
    Inbox,
    /// A SPECIAL-USE attribute gave it its role.
    SpecialUse { attribute: String, target: Target },
    /// Its name is a default for the role in `lang`.
    DefaultName { lang: Lang, target: Target },
    /// Inside a role folder (`parent`, source name), it follows it.
    UnderDefault { parent: String, role: Role },
    /// `spec.folders.rename[rule]`.
    Renamed {
        rule: usize,
        from: String,
        to: String,
    },
    /// Inside a renamed folder, it follows it.
    UnderRenamed { parent: String, rule: usize },
    /// `spec.folders.exclude` names it.
    Excluded { pattern: String },
    /// `spec.folders.exclude` names its role (`\Junk`), and it is that folder or inside it.
    ExcludedRole { selector: String, role: Role },
    /// `\Noselect` or `\NonExistent`: holds no messages.
    NotSelectable { attribute: String },
    /// One of Gmail's views (Starred, Important) over messages its labels hold: they are
    /// copied from those (Starred as the `\Flagged` flag).
    GmailView { attribute: String },
    /// A Gmail label under `gmailLabels: keywords`: its messages carry it as a keyword.
    GmailLabelAsKeyword,
    /// The destination folder is one of Gmail's views (All Mail, Starred, Important),
    /// which shows messages appended elsewhere and takes none of its own.
    GmailDestinationView { folder: String, attribute: String },
    /// In another user's or a shared namespace: not this user's mail.
    NotPersonal {
        namespace: String,
        kind: NamespaceKind,
    },
    /// Nothing applies: same place on the destination.
    Kept,
}

/// Something more about a mapping.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Note {
    /// Other source folders land in the same destination folder (a merge of defaults).
    MergedWith(Vec<String>),
    /// A level contained the destination's delimiter, replaced by `replacement`.
    DelimiterReplaced {
        level: String,
        delimiter: char,
        replacement: char,
    },
    /// A level contained a character the destination refuses in names, replaced too.
    CharacterRefused {
        level: String,
        character: char,
        replacement: char,
    },
    /// A view of messages kept in other folders (Gmail's All Mail, Starred, Important):
    /// copying it puts those messages on the destination a second time.
    View { attribute: String },
    /// Gmail's All Mail: only the messages no copied folder holds go there.
    ArchivedOnly,
    /// The source lists two folders whose names read the same (`&AOk-` and a raw `é`):
    /// this one was given a distinct name.
    SameTextAs { wire: String, other: String },
}

/// Where one source folder goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FolderPlan {
    /// The source folder's full name.
    pub source: String,
    /// The destination folder's full name; `None`: not copied (excluded, not selectable).
    pub dest: Option<String>,
    /// The folder's own role (SPECIAL-USE or default name), also when renamed or excluded.
    pub role: Option<Role>,
    /// The destination folder does not exist (or cannot hold messages) and must be created.
    pub create: bool,
    /// Create it with this role's SPECIAL-USE attribute (RFC 6154 CREATE-SPECIAL-USE, where
    /// offered): set only when creating the destination's folder for a role.
    pub special_use: Option<Role>,
    /// SUBSCRIBE the destination folder: subscribed on the source, not on the destination.
    pub subscribe: bool,
    pub reason: Reason,
    pub notes: Vec<Note>,
    /// From a Gmail source: how this folder's messages are read (see [`LabelPass`]).
    pub labels: Option<LabelPass>,
}

/// How a Gmail source folder's pass reads its messages' labels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LabelPass {
    /// All Mail: only the messages no copied folder holds (the archived ones).
    pub archived_only: bool,
    /// `gmailLabels: keywords`: labels become keywords, and only the system folders (INBOX,
    /// Sent, Drafts) count as holding a message.
    pub keywords: bool,
}

/// The source language used for default names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LanguageChoice {
    /// `auto`, detected from the folder names; `equivalent`: other languages that explain the
    /// same names with the same roles (they would map the mailbox the same way).
    Detected { lang: Lang, equivalent: Vec<Lang> },
    /// `auto`, and no language stood out: English default names only.
    Undetected,
    /// Named in the manifest.
    Forced(Lang),
    /// Named in the manifest but not in the table: English default names only.
    Unknown(String),
}

impl LanguageChoice {
    pub fn lang(&self) -> Option<Lang> {
        match self {
            LanguageChoice::Detected { lang: l, .. } | LanguageChoice::Forced(l) => Some(*l),
            LanguageChoice::Undetected | LanguageChoice::Unknown(_) => None,
        }
    }
}

/// The mapping of every source folder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FolderTable {
    pub source_language: LanguageChoice,
    /// The destination's language, from its folder names; `None`: English.
    pub destination_language: Option<Lang>,
    /// One plan per source folder. Ordered so that a folder comes after the folders it is
    /// inside (create them in this order, or a parent created implicitly would lack its
    /// SPECIAL-USE); folders not copied come last.
    pub plans: Vec<FolderPlan>,
    /// Indexes of `spec.folders.rename` rules that match no source folder.
    pub unused_renames: Vec<usize>,
    /// `spec.folders.exclude` patterns that match no source folder.
    pub unused_excludes: Vec<String>,
}

/// Source folders that would land in one destination folder without being defaults of one
/// role.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum MappingError {
    #[error(
        "source folders {} would all land in destination folder `{dest}`; only default folders of one role are merged: rename or exclude all but one",
        .sources.iter().map(|s| format!("`{s}`")).collect::<Vec<_>>().join(", ")
    )]
    Collision { dest: String, sources: Vec<String> },
}

/// A plan being built: its sort key (destination levels), the plan, and for folders
/// following a role folder the role and the levels below it (equal for mergeable folders).
type Row = (Option<Levels>, FolderPlan, Option<(Role, Levels)>);

/// What replaces the destination's delimiter inside a level.
const DELIMITER_REPLACEMENT: char = '_';

/// A path relative to a server's personal namespace; `INBOX` spelled `INBOX`.
type Levels = Vec<String>;

fn is_inbox(s: &str) -> bool {
    s.eq_ignore_ascii_case("INBOX")
}

/// The prefix, ending with the delimiter when it has one.
fn norm_prefix(list: &FolderList) -> String {
    match list.delimiter {
        Some(d) if !list.prefix.is_empty() && !list.prefix.ends_with(d) => {
            format!("{}{d}", list.prefix)
        }
        _ => list.prefix.clone(),
    }
}

/// `name` relative to the personal namespace, split into levels.
fn relative(name: &str, list: &FolderList) -> Levels {
    if is_inbox(name) {
        return vec!["INBOX".into()];
    }
    let prefix = norm_prefix(list);
    // The INBOX part of a prefix like `INBOX.` is case-insensitive like INBOX itself.
    let rest = match name.get(..prefix.len()) {
        Some(head) if !prefix.is_empty() && head.eq_ignore_ascii_case(&prefix) => {
            &name[prefix.len()..]
        }
        _ => name,
    };
    let mut levels: Levels = match list.delimiter {
        Some(d) => rest.split(d).map(str::to_owned).collect(),
        None => vec![rest.to_owned()],
    };
    if is_inbox(&levels[0]) {
        levels[0] = "INBOX".into();
    }
    levels
}

/// The full name of relative `levels` on a server, and the levels whose delimiter had to be
/// replaced.
fn absolute(levels: &[String], list: &FolderList) -> (String, Vec<Note>) {
    let mut notes = Vec::new();
    let (sep, clean): (String, Vec<String>) = match list.delimiter {
        Some(d) => {
            let clean = levels
                .iter()
                .map(|l| {
                    if l.contains(d) {
                        notes.push(Note::DelimiterReplaced {
                            level: l.clone(),
                            delimiter: d,
                            replacement: DELIMITER_REPLACEMENT,
                        });
                        l.replace(d, &DELIMITER_REPLACEMENT.to_string())
                    } else {
                        l.clone()
                    }
                })
                .collect();
            (d.to_string(), clean)
        }
        // A flat server has no hierarchy: the levels become one name.
        None => ("/".into(), levels.to_vec()),
    };
    let clean: Vec<String> = clean
        .into_iter()
        .map(|l| {
            let mut out = l.clone();
            for &c in list.refused.iter().filter(|&&c| c != DELIMITER_REPLACEMENT) {
                if out.contains(c) && l != "INBOX" {
                    notes.push(Note::CharacterRefused {
                        level: l.clone(),
                        character: c,
                        replacement: DELIMITER_REPLACEMENT,
                    });
                    out = out.replace(c, &DELIMITER_REPLACEMENT.to_string());
                }
            }
            out
        })
        .collect();
    let name = if clean.first().is_some_and(|l| l == "INBOX") {
        // INBOX and its children are outside any prefix (`INBOX.x` on Courier is `x`'s
        // place too: a collision, reported as such).
        clean.join(&sep)
    } else {
        format!("{}{}", norm_prefix(list), clean.join(&sep))
    };
    (name, notes)
}

/// The leaf name at a default position, if `levels` is one.
fn default_leaf(levels: &[String]) -> Option<&str> {
    match levels {
        [leaf] => Some(leaf),
        [g, leaf] if g == "[Gmail]" || g == "[Google Mail]" => Some(leaf),
        _ => None,
    }
}

/// How a folder got its role.
#[derive(Clone, Debug)]
enum RoleBy {
    Inbox,
    SpecialUse(String),
    Name(Lang),
}

/// The role of a folder (or of an unlisted ancestor: `folder` None), and how.
fn role_of(
    levels: &[String],
    folder: Option<&ListedFolder>,
    lang: Option<Lang>,
) -> Option<(Role, RoleBy)> {
    if levels == ["INBOX"] {
        return Some((Role::Inbox, RoleBy::Inbox));
    }
    if let Some((role, attr)) = folder.and_then(ListedFolder::special_use) {
        return Some((role, RoleBy::SpecialUse(attr.to_owned())));
    }
    let leaf = default_leaf(levels)?;
    let role = folder_names::role_for(leaf, lang.map(Lang::as_str))?;
    // English defaults are recognized in every language: say so rather than credit `lang`.
    let by = if folder_names::role_for(leaf, None) == Some(role) {
        Lang::ENGLISH
    } else {
        lang.unwrap_or(Lang::ENGLISH)
    };
    Some((role, RoleBy::Name(by)))
}

/// The languages [`folder_names::detect_languages`] finds in a server's default-position
/// names, the one to use first.
fn detect(list: &FolderList) -> Vec<Lang> {
    let leaves: Vec<Levels> = list
        .folders
        .iter()
        .map(|f| relative(&f.name, list))
        .collect();
    let names: Vec<&str> = leaves.iter().filter_map(|l| default_leaf(l)).collect();
    folder_names::detect_languages(&names)
}

/// The destination's folder for `role`.
fn target(role: Role, dest: &FolderList, lang: Option<Lang>) -> Target {
    if role == Role::Inbox {
        return Target {
            role,
            name: "INBOX".into(),
            found: Found::Inbox,
        };
    }
    let by_depth = |f: &&ListedFolder| (relative(&f.name, dest).len(), f.name.clone());
    let selectable = || dest.folders.iter().filter(|f| f.selectable());
    if let Some((f, attr)) = selectable()
        .filter_map(|f| {
            f.special_use()
                .filter(|(r, _)| *r == role)
                .map(|(_, a)| (f, a))
        })
        .min_by_key(|(f, _)| by_depth(f))
    {
        return Target {
            role,
            name: f.name.clone(),
            found: Found::SpecialUse(attr.to_owned()),
        };
    }
    let lang_tag = lang.map(Lang::as_str);
    let canonical = name_in(role, lang);
    let named: Vec<&ListedFolder> = selectable()
        .filter(|f| f.special_use().is_none_or(|(r, _)| r == role))
        .filter(|f| {
            let levels = relative(&f.name, dest);
            default_leaf(&levels)
                .is_some_and(|leaf| folder_names::role_for(leaf, lang_tag) == Some(role))
        })
        .collect();
    let best = named
        .iter()
        .find(|f| default_leaf(&relative(&f.name, dest)) == Some(canonical.1))
        .or_else(|| named.iter().min_by_key(|f| by_depth(f)));
    if let Some(f) = best {
        let levels = relative(&f.name, dest);
        let english = default_leaf(&levels)
            .is_some_and(|leaf| folder_names::role_for(leaf, None) == Some(role));
        return Target {
            role,
            name: f.name.clone(),
            found: Found::Named(if english {
                Lang::ENGLISH
            } else {
                lang.unwrap_or(Lang::ENGLISH)
            }),
        };
    }
    let (lang, leaf) = canonical;
    Target {
        role,
        name: absolute(&[leaf.to_owned()], dest).0,
        found: Found::Created(lang),
    }
}

/// The default name for `role` in `lang`, else in English.
fn name_in(role: Role, lang: Option<Lang>) -> (Lang, &'static str) {
    lang.and_then(|l| folder_names::name_for(role, l.as_str()).map(|n| (l, n)))
        .or_else(|| folder_names::name_for(role, "en").map(|n| (Lang::ENGLISH, n)))
        // Every role has an English row (the table's tests check it); keep a literal
        // fallback rather than a panic.
        .unwrap_or((Lang::ENGLISH, role.as_str()))
}

/// An exclude entry: a name pattern or a role selector.
enum Exclude<'a> {
    Pattern(&'a str),
    Role(&'a str, Role),
}

fn parse_exclude(p: &str) -> Exclude<'_> {
    if let Some(name) = p.strip_prefix('\\') {
        let role = Role::ALL
            .into_iter()
            .find(|r| r.as_str().eq_ignore_ascii_case(name))
            .or_else(|| Role::from_special_use(p));
        if let Some(r) = role {
            return Exclude::Role(p, r);
        }
    }
    Exclude::Pattern(p)
}

/// What decides a folder's destination: the nearest of itself and its ancestors that is
/// renamed or has a role.
#[derive(Clone, Debug)]
enum Anchor {
    Role {
        depth: usize,
        role: Role,
        by: RoleBy,
    },
    Rename {
        depth: usize,
        rule: usize,
    },
}

/// Maps every source folder (see the module docs). `rules` is `spec.folders`.
pub fn folder_table(
    source: &FolderList,
    dest: &FolderList,
    rules: Option<&Folders>,
) -> Result<FolderTable, MappingError> {
    let default_rules = Folders {
        exclude: vec![],
        rename: vec![],
        source_language: "auto".into(),
        gmail_labels: GmailLabels::Folders,
    };
    let rules = rules.unwrap_or(&default_rules);

    let source_language = source_language(source, rules);
    let lang = source_language.lang();
    let dest_lang = detect(dest)
        .first()
        .copied()
        .filter(|l| *l != Lang::ENGLISH);

    let listed: HashMap<Levels, &ListedFolder> = source
        .folders
        .iter()
        .map(|f| (relative(&f.name, source), f))
        .collect();
    let rename_from: Vec<Levels> = rules
        .rename
        .iter()
        .map(|r| relative(&r.from, source))
        .collect();
    let rename_to: Vec<Levels> = rules
        .rename
        .iter()
        .map(|r| {
            let mut l: Levels = r.to.split('/').map(str::to_owned).collect();
            if is_inbox(&l[0]) {
                l[0] = "INBOX".into();
            }
            l
        })
        .collect();
    let dest_by_name: HashMap<String, &ListedFolder> = dest
        .folders
        .iter()
        .map(|f| (canonical_name(&f.name, dest), f))
        .collect();

    let mut mapper = Mapper {
        source,
        dest,
        rules,
        rename_to,
        dest_lang,
        targets: BTreeMap::new(),
        used_renames: BTreeSet::new(),
    };
    let mut used_excludes: BTreeSet<usize> = BTreeSet::new();
    let mut rows: Vec<Row> = Vec::new();

    for folder in &source.folders {
        let levels = relative(&folder.name, source);
        // Gmail's All Mail holds, beside every labelled message, the archived ones: those
        // go to the destination's Archive.
        let own_role = if source.gmail && folder.has("\\All") {
            Some((Role::Archive, RoleBy::SpecialUse("\\All".into())))
        } else {
            role_of(&levels, Some(folder), lang)
        };
        let anchor = nearest_anchor(&levels, &own_role, &rename_from, &listed, lang);
        let mut mapped = mapper.map(&levels, anchor.as_ref());

        let anchor_role = match &anchor {
            Some(Anchor::Role { role, .. }) => Some(*role),
            _ => None,
        };
        let roles = [own_role.as_ref().map(|(r, _)| *r), anchor_role];
        let withheld = withheld(folder, &levels, source, &rules.exclude, roles)
            .or_else(|| gmail_withheld(folder, &levels, source, rules.gmail_labels));
        let dest_name = match withheld {
            Some((rule, why)) => {
                used_excludes.extend(rule);
                mapped.reason = why;
                None
            }
            None => Some(mapped.name.clone()),
        };

        if let Some((wire, other)) = &folder.same_text_as {
            mapped.notes.push(Note::SameTextAs {
                wire: wire.clone(),
                other: other.clone(),
            });
        }
        if source.gmail && folder.has("\\All") && dest_name.is_some() {
            mapped.notes.push(Note::ArchivedOnly);
        }
        for attr in ["\\All", "\\Flagged", "\\Important"] {
            if dest_name.is_some() && folder.has(attr) && !source.gmail {
                mapped.notes.push(Note::View {
                    attribute: attr.to_owned(),
                });
            }
        }
        if dest_name.is_none() {
            mapped
                .notes
                .retain(|n| matches!(n, Note::View { .. } | Note::SameTextAs { .. }));
        }

        // Sorted by the destination name's own levels, so that parents (on the destination,
        // where a Dovecot `INBOX/x` and a top-level `x` may be one place) come first.
        let sort_key = dest_name.as_ref().map(|n| relative(n, dest));
        let merge_role = mapped.merge_role.take();
        let role = own_role.map(|(r, _)| r);
        let (dest_name, mapped) = gmail_destination(dest_name, mapped, dest, &dest_by_name);
        let mut plan = destination_match(folder, role, dest_name, mapped, dest, &dest_by_name);
        if source.gmail {
            plan.labels = Some(LabelPass {
                archived_only: folder.has("\\All"),
                keywords: rules.gmail_labels == GmailLabels::Keywords,
            });
        }
        rows.push((sort_key, plan, merge_role));
    }
    let used_renames = mapper.used_renames;

    merge(&mut rows, dest)?;
    sort_rows(&mut rows);

    Ok(FolderTable {
        source_language,
        destination_language: dest_lang,
        plans: rows.into_iter().map(|(_, p, _)| p).collect(),
        unused_renames: (0..rules.rename.len())
            .filter(|i| !used_renames.contains(i))
            .collect(),
        unused_excludes: rules
            .exclude
            .iter()
            .enumerate()
            .filter(|(i, _)| !used_excludes.contains(i))
            .map(|(_, p)| p.clone())
            .collect(),
    })
}

/// Where one folder goes by its anchor: the destination name, why, and what comes with it.
struct Mapped {
    name: String,
    reason: Reason,
    notes: Vec<Note>,
    /// The special use to create the folder with, when it is a role's folder to create.
    special_use: Option<Role>,
    /// The role whose folder this is or is under, with the levels below it (for merges).
    merge_role: Option<(Role, Levels)>,
}

/// What mapping each folder needs from the others: the rules, the destination, each
/// role's target (found once), and which renames were used.
struct Mapper<'a> {
    source: &'a FolderList,
    dest: &'a FolderList,
    rules: &'a Folders,
    rename_to: Vec<Levels>,
    dest_lang: Option<Lang>,
    targets: BTreeMap<Role, Target>,
    used_renames: BTreeSet<usize>,
}

impl Mapper<'_> {
    fn map(&mut self, levels: &[String], anchor: Option<&Anchor>) -> Mapped {
        let (source, dest) = (self.source, self.dest);
        let mut mapped = Mapped {
            name: String::new(),
            reason: Reason::Kept,
            notes: Vec::new(),
            special_use: None,
            merge_role: None,
        };
        match anchor {
            None => {
                (mapped.name, mapped.notes) = absolute(levels, dest);
            }
            Some(Anchor::Rename { depth, rule }) => {
                self.used_renames.insert(*rule);
                let mut l = self.rename_to[*rule].clone();
                l.extend(levels[*depth..].iter().cloned());
                (mapped.name, mapped.notes) = absolute(&l, dest);
                mapped.reason = if *depth == levels.len() {
                    Reason::Renamed {
                        rule: *rule,
                        from: self.rules.rename[*rule].from.clone(),
                        to: self.rules.rename[*rule].to.clone(),
                    }
                } else {
                    Reason::UnderRenamed {
                        parent: absolute(&levels[..*depth], source).0,
                        rule: *rule,
                    }
                };
            }
            Some(Anchor::Role { depth, role, by }) => {
                let dest_lang = self.dest_lang;
                let t = self
                    .targets
                    .entry(*role)
                    .or_insert_with(|| target(*role, dest, dest_lang))
                    .clone();
                mapped.merge_role = Some((*role, levels[*depth..].to_vec()));
                if *depth == levels.len() {
                    if matches!(t.found, Found::Created(_)) {
                        mapped.special_use = role.special_use().map(|_| *role);
                    }
                    mapped.reason = match by {
                        RoleBy::Inbox => Reason::Inbox,
                        RoleBy::SpecialUse(a) => Reason::SpecialUse {
                            attribute: a.clone(),
                            target: t.clone(),
                        },
                        RoleBy::Name(lang) => Reason::DefaultName {
                            lang: *lang,
                            target: t.clone(),
                        },
                    };
                    // The target's own name is kept verbatim.
                    mapped.name = t.name.clone();
                } else {
                    mapped.reason = Reason::UnderDefault {
                        parent: absolute(&levels[..*depth], source).0,
                        role: *role,
                    };
                    // Only the child levels are new.
                    let mut l = relative(&t.name, dest);
                    l.extend(levels[*depth..].iter().cloned());
                    (mapped.name, mapped.notes) = absolute(&l, dest);
                }
            }
        }
        mapped
    }
}

/// Why `folder` is not copied at all, if it is not, with the `exclude` rule that says so:
/// another user's or a shared folder (before anything else: no rule brings another user's
/// mail into this mailbox), excluded, or not selectable.
fn withheld(
    folder: &ListedFolder,
    levels: &[String],
    source: &FolderList,
    exclude: &[String],
    roles: [Option<Role>; 2],
) -> Option<(Option<usize>, Reason)> {
    if let Some(n) = source.foreign_namespace_of(&folder.name) {
        return Some((
            None,
            Reason::NotPersonal {
                namespace: n.prefix.clone(),
                kind: n.kind,
            },
        ));
    }
    if let Some((i, why)) = exclusion(exclude, folder, levels, source, roles) {
        return Some((Some(i), why));
    }
    if !folder.selectable() {
        let attribute = folder
            .attributes
            .iter()
            .find(|a| {
                a.eq_ignore_ascii_case("\\Noselect") || a.eq_ignore_ascii_case("\\NonExistent")
            })
            .cloned()
            .unwrap_or_default();
        return Some((None, Reason::NotSelectable { attribute }));
    }
    None
}

/// Why a Gmail source's folder is not copied as a folder: Starred and Important are
/// views, and under `gmailLabels: keywords` so are the user's labels.
fn gmail_withheld(
    folder: &ListedFolder,
    levels: &[String],
    source: &FolderList,
    labels: GmailLabels,
) -> Option<(Option<usize>, Reason)> {
    if !source.gmail {
        return None;
    }
    if let Some(attribute) = ["\\Flagged", "\\Important"]
        .into_iter()
        .find(|a| folder.has(a))
    {
        return Some((
            None,
            Reason::GmailView {
                attribute: attribute.to_owned(),
            },
        ));
    }
    let label = levels != ["INBOX"] && folder.special_use().is_none() && !folder.has("\\All");
    (labels == GmailLabels::Keywords && label && folder.selectable())
        .then_some((None, Reason::GmailLabelAsKeyword))
}

/// A destination folder that is one of Gmail's views takes nothing: what would go there is
/// not copied, and the table says why.
fn gmail_destination(
    dest_name: Option<String>,
    mut mapped: Mapped,
    dest: &FolderList,
    dest_by_name: &HashMap<String, &ListedFolder>,
) -> (Option<String>, Mapped) {
    let view = dest_name.as_ref().filter(|_| dest.gmail).and_then(|n| {
        let listed = dest_by_name.get(&canonical_name(n, dest))?;
        ["\\All", "\\Flagged", "\\Important"]
            .into_iter()
            .find(|a| listed.has(a))
            .map(|a| (n.clone(), a))
    });
    match view {
        Some((folder, attribute)) => {
            mapped.reason = Reason::GmailDestinationView {
                folder,
                attribute: attribute.to_owned(),
            };
            mapped.notes.clear();
            (None, mapped)
        }
        None => (dest_name, mapped),
    }
}

/// The plan for `folder` bound for `dest_name` (`None`: not copied), matched against the
/// destination's own folders: created unless it exists there and can be opened (INBOX
/// always exists), with its special use where the server takes one at creation, and
/// subscribed where the source's is and the destination's is not.
fn destination_match(
    folder: &ListedFolder,
    role: Option<Role>,
    dest_name: Option<String>,
    mapped: Mapped,
    dest: &FolderList,
    dest_by_name: &HashMap<String, &ListedFolder>,
) -> FolderPlan {
    let existing = dest_name
        .as_ref()
        .and_then(|n| dest_by_name.get(&canonical_name(n, dest)).copied());
    let create = dest_name.is_some() && !existing.is_some_and(ListedFolder::selectable);
    FolderPlan {
        source: folder.name.clone(),
        role,
        create: create && !dest_name.as_deref().is_some_and(is_inbox),
        special_use: if create && dest.create_special_use {
            mapped.special_use
        } else {
            None
        },
        subscribe: dest_name.is_some()
            && folder.subscribed
            && !existing.is_some_and(|f| f.subscribed),
        dest: dest_name,
        reason: mapped.reason,
        notes: mapped.notes,
        labels: None,
    }
}

/// The source's language: as `rules.sourceLanguage` says, or detected from its names.
fn source_language(source: &FolderList, rules: &Folders) -> LanguageChoice {
    if rules.source_language.eq_ignore_ascii_case("auto") {
        match detect(source).split_first() {
            Some((&lang, rest)) => LanguageChoice::Detected {
                lang,
                equivalent: rest.to_vec(),
            },
            None => LanguageChoice::Undetected,
        }
    } else {
        Lang::resolve(&rules.source_language).map_or_else(
            || LanguageChoice::Unknown(rules.source_language.clone()),
            LanguageChoice::Forced,
        )
    }
}

/// What decides where the folder at `levels` goes: the deepest of its prefixes (itself
/// included) that is renamed (rules beat roles at one depth) or has a role.
fn nearest_anchor(
    levels: &[String],
    own_role: &Option<(Role, RoleBy)>,
    rename_from: &[Levels],
    listed: &HashMap<Levels, &ListedFolder>,
    lang: Option<Lang>,
) -> Option<Anchor> {
    let mut anchor = None;
    for depth in 1..=levels.len() {
        let prefix = &levels[..depth];
        let is_self = depth == levels.len();
        let rule = (prefix != ["INBOX"])
            .then(|| rename_from.iter().position(|f| f.as_slice() == prefix))
            .flatten();
        if let Some(rule) = rule {
            anchor = Some(Anchor::Rename { depth, rule });
            continue;
        }
        let role = if is_self {
            own_role.clone()
        } else {
            role_of(prefix, listed.get(prefix).copied(), lang)
        };
        if let Some((role, by)) = role {
            anchor = Some(Anchor::Role { depth, role, by });
        }
    }
    anchor
}

/// The first `exclude` entry that leaves `folder` out, with why: a pattern matching its
/// name (as listed, relative, or with `/` between levels), or one of its `roles` (its own,
/// its anchor's).
fn exclusion(
    exclude: &[String],
    folder: &ListedFolder,
    levels: &[String],
    source: &FolderList,
    roles: [Option<Role>; 2],
) -> Option<(usize, Reason)> {
    let full_rel = levels_text(levels, source);
    let slash_rel = levels.join("/");
    exclude
        .iter()
        .enumerate()
        .find_map(|(i, p)| match parse_exclude(p) {
            Exclude::Pattern(pat) => {
                let names = [&folder.name, &full_rel, &slash_rel];
                names.into_iter().any(|n| glob_match(pat, n)).then(|| {
                    (
                        i,
                        Reason::Excluded {
                            pattern: pat.to_owned(),
                        },
                    )
                })
            }
            Exclude::Role(sel, r) => roles.contains(&Some(r)).then(|| {
                (
                    i,
                    Reason::ExcludedRole {
                        selector: sel.to_owned(),
                        role: r,
                    },
                )
            }),
        })
}

/// Folders mapped to one destination: merged where they are one role's folder (each row
/// notes the others), a [`MappingError::Collision`] otherwise.
fn merge(rows: &mut [Row], dest: &FolderList) -> Result<(), MappingError> {
    let mut by_dest: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, (_, plan, _)) in rows.iter().enumerate() {
        if let Some(d) = &plan.dest {
            by_dest.entry(canonical_name(d, dest)).or_default().push(i);
        }
    }
    for (d, idx) in by_dest {
        if idx.len() < 2 {
            continue;
        }
        let first = &rows[idx[0]].2;
        let mergeable = first.is_some()
            && idx
                .iter()
                .all(|&i| rows[i].2 == *first && !is_renamed(&rows[i].1));
        if !mergeable {
            return Err(MappingError::Collision {
                dest: rows[idx[0]].1.dest.clone().unwrap_or(d),
                sources: idx.iter().map(|&i| rows[i].1.source.clone()).collect(),
            });
        }
        for &i in &idx {
            let others = idx
                .iter()
                .filter(|&&j| j != i)
                .map(|&j| rows[j].1.source.clone())
                .collect();
            rows[i].1.notes.insert(0, Note::MergedWith(others));
        }
    }
    Ok(())
}

/// Sorted by the destination name's own levels (parents first), folders not copied last.
fn sort_rows(rows: &mut [Row]) {
    rows.sort_by(|a, b| match (&a.0, &b.0) {
        (Some(x), Some(y)) => x.cmp(y).then_with(|| a.1.source.cmp(&b.1.source)),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => a.1.source.cmp(&b.1.source),
    });
}

fn is_renamed(p: &FolderPlan) -> bool {
    matches!(
        p.reason,
        Reason::Renamed { .. } | Reason::UnderRenamed { .. }
    )
}

/// A full name compared as servers compare names: exactly, except INBOX's case.
fn canonical_name(name: &str, list: &FolderList) -> String {
    relative(name, list).join("\u{0}")
}

/// The name without the namespace prefix, with the server's delimiter.
fn levels_text(levels: &[String], list: &FolderList) -> String {
    levels.join(
        &list
            .delimiter
            .map_or_else(|| "/".to_owned(), |d| d.to_string()),
    )
}

fn lang_name(l: Lang) -> String {
    if l == Lang::ENGLISH {
        "English".into()
    } else {
        format!("`{l}`")
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the destination's {} folder `{}`", self.role, self.name)?;
        match &self.found {
            Found::Inbox => Ok(()),
            Found::SpecialUse(a) => write!(f, " (marked {a} there)"),
            Found::Named(l) => write!(f, " (its {} default name)", lang_name(*l)),
            Found::Created(l) => write!(f, " (created, {} default name)", lang_name(*l)),
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Inbox => f.write_str("INBOX always maps to INBOX"),
            Reason::SpecialUse { attribute, target } => {
                write!(f, "SPECIAL-USE {attribute} → {target}")
            }
            Reason::DefaultName { lang, target } => write!(
                f,
                "{} default name for {} → {target}",
                lang_name(*lang),
                target.role
            ),
            Reason::UnderDefault { parent, role } => {
                write!(f, "inside `{parent}` ({role}), follows it")
            }
            Reason::Renamed { rule, from, to } => {
                write!(f, "rename rule folders.rename[{rule}]: `{from}` → `{to}`")
            }
            Reason::UnderRenamed { parent, rule } => write!(
                f,
                "inside `{parent}`, renamed by folders.rename[{rule}]; follows it"
            ),
            Reason::Excluded { pattern } => write!(f, "excluded by pattern `{pattern}`"),
            Reason::ExcludedRole { selector, role } => {
                write!(
                    f,
                    "excluded by `{selector}` ({role} folders and their subfolders)"
                )
            }
            // Dovecot lists a parent that exists only as part of its children's names as
            // `\NonExistent` (RFC 5258); either way there is nothing in it to copy.
            Reason::NotSelectable { attribute }
                if attribute.eq_ignore_ascii_case("\\NonExistent") =>
            {
                write!(
                    f,
                    "a parent only in name (no folder of its own): holds no messages"
                )
            }
            Reason::NotSelectable { attribute } => {
                write!(f, "not selectable ({attribute}): holds no messages")
            }
            Reason::GmailView { attribute } => write!(
                f,
                "Gmail's view ({attribute}) of messages its labels hold: copied from those{}",
                if attribute.eq_ignore_ascii_case("\\Flagged") {
                    ", starred as \\Flagged"
                } else {
                    ""
                }
            ),
            Reason::GmailLabelAsKeyword => f.write_str(
                "a Gmail label: its messages carry it as a keyword (gmailLabels: keywords)",
            ),
            Reason::GmailDestinationView { folder, attribute } => write!(
                f,
                "{folder} is Gmail's view ({attribute}) on the destination: it takes no messages of its own"
            ),
            Reason::NotPersonal { namespace, kind } => write!(
                f,
                "in the {kind} namespace `{namespace}`: not this user's own mail, never copied"
            ),
            Reason::Kept => f.write_str("kept as is"),
        }
    }
}

impl fmt::Display for Note {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Note::MergedWith(others) => write!(
                f,
                "merged with {}",
                others
                    .iter()
                    .map(|o| format!("`{o}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Note::DelimiterReplaced {
                level,
                delimiter,
                replacement,
            } => write!(
                f,
                "`{level}` contains the destination's separator `{delimiter}`: written with `{replacement}`"
            ),
            Note::CharacterRefused {
                level,
                character,
                replacement,
            } => write!(
                f,
                "`{level}` contains `{character}`, which the destination refuses in names: written with `{replacement}`"
            ),
            Note::SameTextAs { wire, other } => write!(
                f,
                "the source lists `{wire}` and `{other}`, whose names read the same: this one is named apart"
            ),
            Note::View { attribute } => write!(
                f,
                "{attribute} is a view of messages kept in other folders: copying it stores them twice (exclude it to avoid that)"
            ),
            Note::ArchivedOnly => f.write_str(
                "only its archived messages: those in no folder that is copied, as their Gmail labels say",
            ),
        }
    }
}

impl fmt::Display for FolderPlan {
    /// One line whatever the names hold: control characters a server put in a name are
    /// shown as escapes.
    fn fmt(&self, out: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut line = String::new();
        self.write_line(&mut line)?;
        out.write_str(&crate::text::printable(&line))
    }
}

impl FolderPlan {
    fn write_line(&self, f: &mut String) -> fmt::Result {
        use std::fmt::Write as _;
        write!(f, "{} → ", self.source)?;
        match &self.dest {
            Some(d) => f.push_str(d),
            None => f.push_str("(not copied)"),
        }
        let mut tags = Vec::new();
        if self.create {
            tags.push(match self.special_use.and_then(Role::special_use) {
                Some(attr) => format!("create {attr}"),
                None => "create".to_owned(),
            });
        }
        if self.subscribe {
            tags.push("subscribe".to_owned());
        }
        if !tags.is_empty() {
            write!(f, " [{}]", tags.join(", "))?;
        }
        write!(f, ": {}", self.reason)?;
        for n in &self.notes {
            write!(f, "; {n}")?;
        }
        Ok(())
    }
}

impl fmt::Display for FolderTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.source_language {
            LanguageChoice::Detected { lang, equivalent } if equivalent.is_empty() => {
                writeln!(f, "source language: {lang} (detected from folder names)")?
            }
            LanguageChoice::Detected { lang, equivalent } => writeln!(
                f,
                "source language: {lang} (detected from folder names; {} name them the same way)",
                equivalent
                    .iter()
                    .map(Lang::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            )?,
            LanguageChoice::Undetected => writeln!(
                f,
                "source language: not detected, English default names only"
            )?,
            LanguageChoice::Forced(l) => writeln!(f, "source language: {l} (sourceLanguage)")?,
            LanguageChoice::Unknown(t) => writeln!(
                f,
                "source language: `{t}` has no default names in the table, English default names only"
            )?,
        }
        writeln!(
            f,
            "destination language: {}",
            self.destination_language
                .map_or_else(|| "en".to_owned(), |l| l.to_string())
        )?;
        for p in &self.plans {
            writeln!(f, "  {p}")?;
        }
        for r in &self.unused_renames {
            writeln!(
                f,
                "warning: folders.rename[{r}] is not applied: it matches no source folder (or names INBOX, which always maps to INBOX)"
            )?;
        }
        for p in &self.unused_excludes {
            writeln!(f, "warning: folders.exclude `{p}` matches no source folder")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::mutf7;
    use super::*;
    use crate::spec::Rename;
    use proptest::prelude::*;

    fn f(name: &str, attrs: &[&str]) -> ListedFolder {
        ListedFolder::new(name, attrs, true)
    }

    fn list(delim: char, prefix: &str, folders: Vec<ListedFolder>) -> FolderList {
        FolderList {
            delimiter: Some(delim),
            prefix: prefix.into(),
            folders,
            foreign: Vec::new(),
            create_special_use: true,
            refused: Vec::new(),
            gmail: false,
        }
    }

    /// A fresh Dovecot destination: the usual auto-created folders with SPECIAL-USE.
    fn dovecot() -> FolderList {
        list(
            '/',
            "",
            vec![
                f("INBOX", &[]),
                f("Sent", &["\\Sent"]),
                f("Drafts", &["\\Drafts"]),
                f("Trash", &["\\Trash"]),
                f("Junk", &["\\Junk"]),
            ],
        )
    }

    fn empty_dovecot() -> FolderList {
        list('/', "", vec![f("INBOX", &[])])
    }

    fn rules(exclude: &[&str], rename: &[(&str, &str)], lang: &str) -> Folders {
        Folders {
            exclude: exclude.iter().map(|s| (*s).to_owned()).collect(),
            rename: rename
                .iter()
                .map(|(a, b)| Rename {
                    from: (*a).into(),
                    to: (*b).into(),
                })
                .collect(),
            source_language: lang.into(),
            gmail_labels: GmailLabels::Folders,
        }
    }

    fn plan<'a>(t: &'a FolderTable, source: &str) -> &'a FolderPlan {
        t.plans
            .iter()
            .find(|p| p.source == source)
            .unwrap_or_else(|| panic!("no plan for {source}: {t}"))
    }

    fn dest_of(t: &FolderTable, source: &str) -> Option<String> {
        plan(t, source).dest.clone()
    }

    fn merged(p: &FolderPlan) -> Vec<String> {
        p.notes
            .iter()
            .find_map(|n| match n {
                Note::MergedWith(o) => Some(o.clone()),
                _ => None,
            })
            .unwrap_or_default()
    }

    #[test]
    fn courier_source_to_dovecot() {
        let src = list(
            '.',
            "INBOX.",
            vec![
                f("INBOX", &[]),
                f("INBOX.Sent", &[]),
                f("INBOX.Drafts", &[]),
                f("INBOX.Trash", &[]),
                f("INBOX.Junk", &[]),
                f("INBOX.Archives", &[]),
                f("INBOX.Archives.2019", &[]),
                f("INBOX.Projects", &[]),
                f("INBOX.Projects.Sent", &[]),
                f("INBOX.Projects.Old 2010", &[]),
            ],
        );
        let r = rules(
            &["Junk", "Trash", "Projects/Old*"],
            &[("INBOX.Archives", "Archive")],
            "auto",
        );
        let t = folder_table(&src, &dovecot(), Some(&r)).unwrap();
        assert_eq!(dest_of(&t, "INBOX").as_deref(), Some("INBOX"));
        assert_eq!(plan(&t, "INBOX").reason, Reason::Inbox);
        assert_eq!(dest_of(&t, "INBOX.Sent").as_deref(), Some("Sent"));
        let sent = plan(&t, "INBOX.Sent");
        assert_eq!(sent.role, Some(Role::Sent));
        assert!(!sent.create && sent.special_use.is_none());
        assert!(
            sent.to_string().contains(
                "English default name for Sent → the destination's Sent folder `Sent` (marked \\Sent there)"
            ),
            "{sent}"
        );
        assert_eq!(dest_of(&t, "INBOX.Drafts").as_deref(), Some("Drafts"));
        assert_eq!(dest_of(&t, "INBOX.Trash"), None);
        assert_eq!(
            plan(&t, "INBOX.Junk").reason,
            Reason::Excluded {
                pattern: "Junk".into()
            }
        );
        assert_eq!(dest_of(&t, "INBOX.Archives").as_deref(), Some("Archive"));
        assert!(matches!(
            plan(&t, "INBOX.Archives").reason,
            Reason::Renamed { rule: 0, .. }
        ));
        assert_eq!(
            dest_of(&t, "INBOX.Archives.2019").as_deref(),
            Some("Archive/2019")
        );
        assert!(plan(&t, "INBOX.Archives.2019").create);
        // A folder named like a default but not at a default position is a user's folder.
        assert_eq!(dest_of(&t, "INBOX.Projects").as_deref(), Some("Projects"));
        assert_eq!(
            dest_of(&t, "INBOX.Projects.Sent").as_deref(),
            Some("Projects/Sent")
        );
        assert_eq!(plan(&t, "INBOX.Projects.Sent").reason, Reason::Kept);
        assert_eq!(plan(&t, "INBOX.Projects.Sent").role, None);
        // Exclude patterns may use `/` between levels whatever the source's delimiter.
        assert_eq!(dest_of(&t, "INBOX.Projects.Old 2010"), None);
        assert!(t.unused_renames.is_empty() && t.unused_excludes.is_empty());
    }

    #[test]
    fn dovecot_source_to_courier() {
        let src = list(
            '/',
            "",
            vec![
                f("INBOX", &[]),
                f("Sent", &["\\Sent"]),
                f("Clients", &[]),
                f("Clients/ACME", &[]),
                f("v1.2 notes", &[]),
            ],
        );
        let dst = list(
            '.',
            "INBOX.",
            vec![f("INBOX", &[]), f("INBOX.Sent", &[]), f("INBOX.Trash", &[])],
        );
        let t = folder_table(&src, &dst, None).unwrap();
        assert_eq!(dest_of(&t, "Sent").as_deref(), Some("INBOX.Sent"));
        assert!(matches!(
            &plan(&t, "Sent").reason,
            Reason::SpecialUse { attribute, target } if attribute == "\\Sent" && target.found == Found::Named(Lang::ENGLISH)
        ));
        assert_eq!(
            dest_of(&t, "Clients/ACME").as_deref(),
            Some("INBOX.Clients.ACME")
        );
        // A `.` inside a level cannot be written on a `.` server.
        let v = plan(&t, "v1.2 notes");
        assert_eq!(v.dest.as_deref(), Some("INBOX.v1_2 notes"));
        assert!(v.notes.contains(&Note::DelimiterReplaced {
            level: "v1.2 notes".into(),
            delimiter: '.',
            replacement: '_'
        }));
        assert!(
            v.to_string()
                .contains("contains the destination's separator `.`"),
            "{v}"
        );
    }

    #[test]
    fn slash_in_a_level_moving_to_a_slash_server() {
        let src = list(
            '.',
            "",
            vec![f("INBOX", &[]), f("a/b", &[]), f("a/b.c", &[])],
        );
        let t = folder_table(&src, &dovecot(), None).unwrap();
        assert_eq!(dest_of(&t, "a/b").as_deref(), Some("a_b"));
        assert_eq!(dest_of(&t, "a/b.c").as_deref(), Some("a_b/c"));
        // The replacement must not collide silently with a real folder.
        let src = list('.', "", vec![f("INBOX", &[]), f("a/b", &[]), f("a_b", &[])]);
        let err = folder_table(&src, &dovecot(), None).unwrap_err();
        assert_eq!(
            err,
            MappingError::Collision {
                dest: "a_b".into(),
                sources: vec!["a/b".into(), "a_b".into()]
            }
        );
    }

    #[test]
    fn german_without_special_use_into_english_dovecot() {
        let src = list(
            '/',
            "",
            vec![
                f("INBOX", &[]),
                f("Gesendete Elemente", &[]),
                f("Gesendete Elemente/2019", &[]),
                f("Entwürfe", &[]),
                f("Gelöschte Elemente", &[]),
                f("Junk-E-Mail", &[]),
                f("Sent", &[]),
                f("Projekte", &[]),
                f("Archiv", &[]),
            ],
        );
        let t = folder_table(&src, &dovecot(), None).unwrap();
        assert_eq!(
            t.source_language,
            LanguageChoice::Detected {
                lang: Lang::resolve("de").unwrap(),
                equivalent: vec![]
            }
        );
        for (from, to) in [
            ("Gesendete Elemente", "Sent"),
            ("Sent", "Sent"),
            ("Gesendete Elemente/2019", "Sent/2019"),
            ("Entwürfe", "Drafts"),
            ("Gelöschte Elemente", "Trash"),
            ("Junk-E-Mail", "Junk"),
            ("Projekte", "Projekte"),
        ] {
            assert_eq!(dest_of(&t, from).as_deref(), Some(to), "{from}");
        }
        // Archive has no folder on the destination: created with its SPECIAL-USE.
        let archiv = plan(&t, "Archiv");
        assert_eq!(archiv.dest.as_deref(), Some("Archive"));
        assert!(archiv.create);
        assert_eq!(archiv.special_use, Some(Role::Archive));
        assert!(
            archiv.to_string().contains("[create \\Archive, subscribe]"),
            "{archiv}"
        );
        assert_eq!(
            merged(plan(&t, "Gesendete Elemente")),
            vec!["Sent".to_owned()]
        );
        assert_eq!(
            merged(plan(&t, "Sent")),
            vec!["Gesendete Elemente".to_owned()]
        );
        assert!(
            plan(&t, "Gesendete Elemente")
                .to_string()
                .contains("`de` default name for Sent"),
            "{t}"
        );
        assert_eq!(
            plan(&t, "Gesendete Elemente/2019").reason,
            Reason::UnderDefault {
                parent: "Gesendete Elemente".into(),
                role: Role::Sent
            }
        );
        assert_eq!(plan(&t, "Projekte").reason, Reason::Kept);
    }

    #[test]
    fn vietnamese_inbox_merges_into_inbox() {
        let src = list(
            '/',
            "",
            vec![
                f("INBOX", &[]),
                f("Hộp thư đến", &[]),
                f("Thư đã gửi", &[]),
                f("Thư nháp", &[]),
                f("Thùng rác", &[]),
                f("Dự án", &[]),
                f("Dự án/Khách hàng", &[]),
            ],
        );
        let t = folder_table(&src, &dovecot(), None).unwrap();
        assert_eq!(t.source_language.lang().map(Lang::as_str), Some("vi"));
        let inbox = plan(&t, "Hộp thư đến");
        assert_eq!(inbox.dest.as_deref(), Some("INBOX"));
        assert!(!inbox.create);
        assert_eq!(merged(inbox), vec!["INBOX".to_owned()]);
        assert!(
            inbox.to_string().contains("`vi` default name for Inbox"),
            "{inbox}"
        );
        assert_eq!(dest_of(&t, "Thư đã gửi").as_deref(), Some("Sent"));
        assert_eq!(dest_of(&t, "Thư nháp").as_deref(), Some("Drafts"));
        assert_eq!(dest_of(&t, "Thùng rác").as_deref(), Some("Trash"));
        assert_eq!(dest_of(&t, "Dự án").as_deref(), Some("Dự án"));
        assert_eq!(
            dest_of(&t, "Dự án/Khách hàng").as_deref(),
            Some("Dự án/Khách hàng")
        );
        // Every destination name survives the wire encoding.
        for p in &t.plans {
            if let Some(d) = &p.dest {
                assert_eq!(mutf7::decode(&mutf7::encode(d)).as_deref(), Ok(d.as_str()));
            }
        }
    }

    #[test]
    fn japanese_and_russian_sources() {
        for (lang, custom) in [("ja", "取引先"), ("ru", "Отчёты")] {
            let mut folders = vec![f("INBOX", &[]), f(custom, &[])];
            for role in [Role::Sent, Role::Drafts, Role::Trash, Role::Junk] {
                folders.push(f(folder_names::name_for(role, lang).unwrap(), &[]));
            }
            let src = list('/', "", folders);
            let t = folder_table(&src, &empty_dovecot(), None).unwrap();
            assert_eq!(t.source_language.lang().map(Lang::as_str), Some(lang));
            for (role, english) in [
                (Role::Sent, "Sent"),
                (Role::Drafts, "Drafts"),
                (Role::Trash, "Trash"),
                (Role::Junk, "Junk"),
            ] {
                let p = plan(&t, folder_names::name_for(role, lang).unwrap());
                assert_eq!(p.dest.as_deref(), Some(english), "{lang} {role}");
                assert!(p.create && p.special_use == Some(role), "{p}");
            }
            assert_eq!(dest_of(&t, custom).as_deref(), Some(custom));
            assert_eq!(plan(&t, custom).reason, Reason::Kept);
        }
    }

    #[test]
    fn destination_language_names_its_folders() {
        // A German destination without SPECIAL-USE: its own names are kept and used.
        let dst = list(
            '/',
            "",
            vec![
                f("INBOX", &[]),
                f("Gesendete Elemente", &[]),
                f("Entwürfe", &[]),
                f("Papierkorb", &[]),
            ],
        );
        let src = list(
            '/',
            "",
            vec![
                f("INBOX", &[]),
                f("Sent", &["\\Sent"]),
                f("Trash", &[]),
                f("Junk", &[]),
            ],
        );
        let t = folder_table(&src, &dst, None).unwrap();
        let de = Lang::resolve("de").unwrap();
        assert_eq!(t.destination_language, Some(de));
        assert_eq!(dest_of(&t, "Sent").as_deref(), Some("Gesendete Elemente"));
        assert!(matches!(
            &plan(&t, "Sent").reason,
            Reason::SpecialUse { target, .. } if target.found == Found::Named(de)
        ));
        assert_eq!(dest_of(&t, "Trash").as_deref(), Some("Papierkorb"));
        // No Junk folder there: created with the German default name.
        let junk = plan(&t, "Junk");
        assert_eq!(junk.dest.as_deref(), Some("Junk-E-Mail"));
        assert!(junk.create && junk.special_use == Some(Role::Junk));
        assert!(
            junk.to_string().contains("(created, `de` default name)"),
            "{junk}"
        );
    }

    #[test]
    fn special_use_wins_over_names() {
        // A folder called "Trash" marked \Junk is the Junk folder; "Sent Messages" marked
        // \Sent is Sent even though the destination calls it otherwise.
        let src = list(
            '/',
            "",
            vec![
                f("INBOX", &[]),
                f("Trash", &["\\Junk"]),
                f("Sent Messages", &["\\Sent"]),
                f("Papierkorb", &["\\Trash"]),
            ],
        );
        let t = folder_table(&src, &dovecot(), None).unwrap();
        assert_eq!(dest_of(&t, "Trash").as_deref(), Some("Junk"));
        assert_eq!(plan(&t, "Trash").role, Some(Role::Junk));
        assert_eq!(dest_of(&t, "Sent Messages").as_deref(), Some("Sent"));
        assert_eq!(dest_of(&t, "Papierkorb").as_deref(), Some("Trash"));
        // The destination's SPECIAL-USE folder is found wherever it is.
        let dst = list(
            '/',
            "",
            vec![
                f("INBOX", &[]),
                f("[Gmail]", &["\\Noselect"]),
                f("[Gmail]/Sent Mail", &["\\Sent"]),
            ],
        );
        let t = folder_table(&src, &dst, None).unwrap();
        assert_eq!(
            dest_of(&t, "Sent Messages").as_deref(),
            Some("[Gmail]/Sent Mail")
        );
    }

    #[test]
    fn gmail_source() {
        let src = list(
            '/',
            "",
            vec![
                f("INBOX", &[]),
                f("[Gmail]", &["\\Noselect", "\\HasChildren"]),
                f("[Gmail]/All Mail", &["\\All"]),
                f("[Gmail]/Gesendet", &[]),
                f("[Gmail]/Entwürfe", &["\\Drafts"]),
                f("[Gmail]/Papierkorb", &[]),
                f("[Gmail]/Markiert", &["\\Flagged"]),
                f("Rechnungen", &[]),
            ],
        );
        let t = folder_table(&src, &dovecot(), None).unwrap();
        assert_eq!(dest_of(&t, "[Gmail]"), None);
        assert!(matches!(
            plan(&t, "[Gmail]").reason,
            Reason::NotSelectable { .. }
        ));
        assert_eq!(dest_of(&t, "[Gmail]/Gesendet").as_deref(), Some("Sent"));
        assert_eq!(dest_of(&t, "[Gmail]/Entwürfe").as_deref(), Some("Drafts"));
        assert_eq!(dest_of(&t, "[Gmail]/Papierkorb").as_deref(), Some("Trash"));
        let all = plan(&t, "[Gmail]/All Mail");
        assert_eq!(all.dest.as_deref(), Some("[Gmail]/All Mail"));
        assert!(
            all.notes.iter().any(|n| matches!(n, Note::View { .. })),
            "{all}"
        );
        assert_eq!(dest_of(&t, "Rechnungen").as_deref(), Some("Rechnungen"));
    }

    #[test]
    fn a_gmail_source_is_read_as_labels_and_views() {
        let mut src = list(
            '/',
            "",
            vec![
                f("INBOX", &[]),
                f("[Gmail]", &["\\Noselect", "\\HasChildren"]),
                f("[Gmail]/All Mail", &["\\All"]),
                f("[Gmail]/Sent Mail", &["\\Sent"]),
                f("[Gmail]/Starred", &["\\Flagged"]),
                f("[Gmail]/Important", &["\\Important"]),
                f("Work", &[]),
            ],
        );
        src.gmail = true;
        let t = folder_table(&src, &dovecot(), None).unwrap();
        let all = plan(&t, "[Gmail]/All Mail");
        assert_eq!(all.dest.as_deref(), Some("Archive"), "{all}");
        assert_eq!(
            all.labels,
            Some(LabelPass {
                archived_only: true,
                keywords: false
            })
        );
        for view in ["[Gmail]/Starred", "[Gmail]/Important"] {
            let p = plan(&t, view);
            assert_eq!(p.dest, None, "{p}");
            assert!(matches!(p.reason, Reason::GmailView { .. }), "{p}");
        }
        assert_eq!(dest_of(&t, "Work").as_deref(), Some("Work"));
        assert_eq!(dest_of(&t, "[Gmail]/Sent Mail").as_deref(), Some("Sent"));

        let keywords = Folders {
            gmail_labels: GmailLabels::Keywords,
            ..rules(&[], &[], "auto")
        };
        let t = folder_table(&src, &dovecot(), Some(&keywords)).unwrap();
        assert_eq!(plan(&t, "Work").reason, Reason::GmailLabelAsKeyword);
        assert_eq!(dest_of(&t, "Work"), None);
        assert_eq!(dest_of(&t, "INBOX").as_deref(), Some("INBOX"));
        assert!(plan(&t, "INBOX").labels.is_some_and(|l| l.keywords));
    }

    #[test]
    fn nothing_is_copied_into_a_gmail_destinations_views() {
        let src = list('/', "", vec![f("INBOX", &[]), f("Starred", &[])]);
        let mut dst = list('/', "", vec![f("INBOX", &[]), f("Starred", &["\\Flagged"])]);
        dst.gmail = true;
        let t = folder_table(&src, &dst, None).unwrap();
        let p = plan(&t, "Starred");
        assert_eq!(p.dest, None, "{p}");
        assert!(
            matches!(p.reason, Reason::GmailDestinationView { .. }),
            "{p}"
        );
        assert_eq!(plan(&t, "INBOX").labels, None, "not a Gmail source");
    }

    #[test]
    fn forced_and_unknown_languages() {
        // One German name is not enough evidence for `auto`...
        let src = list(
            '/',
            "",
            vec![f("INBOX", &[]), f("Gesendet", &[]), f("Kunden", &[])],
        );
        let t = folder_table(&src, &dovecot(), None).unwrap();
        assert_eq!(t.source_language, LanguageChoice::Undetected);
        assert_eq!(dest_of(&t, "Gesendet").as_deref(), Some("Gesendet"));
        // ...but a named language decides.
        let t = folder_table(&src, &dovecot(), Some(&rules(&[], &[], "de-AT"))).unwrap();
        assert_eq!(
            t.source_language,
            LanguageChoice::Forced(Lang::resolve("de").unwrap())
        );
        assert_eq!(dest_of(&t, "Gesendet").as_deref(), Some("Sent"));
        assert_eq!(dest_of(&t, "Kunden").as_deref(), Some("Kunden"));
        let t = folder_table(&src, &dovecot(), Some(&rules(&[], &[], "xx"))).unwrap();
        assert_eq!(t.source_language, LanguageChoice::Unknown("xx".into()));
        assert_eq!(dest_of(&t, "Gesendet").as_deref(), Some("Gesendet"));
        assert!(
            t.to_string()
                .contains("`xx` has no default names in the table"),
            "{t}"
        );
    }

    #[test]
    fn lookalikes_are_kept() {
        let src = list(
            '/',
            "",
            vec![
                f("INBOX", &[]),
                f("Old Sent", &[]),
                f("Sent-Items", &[]),
                f("Archive 2020", &[]),
                f("Projects", &[]),
                f("Projects/Trash", &[]),
            ],
        );
        let t = folder_table(&src, &dovecot(), None).unwrap();
        for name in ["Old Sent", "Sent-Items", "Archive 2020", "Projects/Trash"] {
            assert_eq!(dest_of(&t, name).as_deref(), Some(name));
            assert_eq!(plan(&t, name).reason, Reason::Kept, "{name}");
            assert_eq!(plan(&t, name).role, None);
        }
    }

    #[test]
    fn role_selectors_exclude_subfolders_patterns_do_not() {
        let src = list(
            '/',
            "",
            vec![
                f("INBOX", &[]),
                f("Junk", &[]),
                f("Junk/old", &[]),
                f("Papierkorb", &["\\Trash"]),
                f("Papierkorb/x", &[]),
                f("Archive", &[]),
                f("Archive/2020", &[]),
            ],
        );
        let r = rules(
            &["\\Junk", "\\trash", "Archive", "Nothing*"],
            &[("Nope", "X")],
            "auto",
        );
        let t = folder_table(&src, &dovecot(), Some(&r)).unwrap();
        assert_eq!(dest_of(&t, "Junk"), None);
        assert_eq!(dest_of(&t, "Junk/old"), None);
        assert_eq!(
            plan(&t, "Junk/old").reason,
            Reason::ExcludedRole {
                selector: "\\Junk".into(),
                role: Role::Junk
            }
        );
        assert_eq!(dest_of(&t, "Papierkorb"), None);
        assert_eq!(dest_of(&t, "Papierkorb/x"), None);
        assert_eq!(dest_of(&t, "Archive"), None);
        // Archive is a role folder (English default) and its child follows it.
        assert_eq!(dest_of(&t, "Archive/2020").as_deref(), Some("Archive/2020"));
        assert_eq!(t.unused_excludes, vec!["Nothing*".to_owned()]);
        assert_eq!(t.unused_renames, vec![0]);
        let text = t.to_string();
        assert!(
            text.contains("warning: folders.rename[0] is not applied: it matches no source folder"),
            "{text}"
        );
        assert!(
            text.contains("warning: folders.exclude `Nothing*`"),
            "{text}"
        );
    }

    #[test]
    fn renames_win_over_roles_but_not_over_inbox() {
        let src = list(
            '/',
            "",
            vec![
                f("INBOX", &[]),
                f("Sent Items", &[]),
                f("Sent Items/2019", &[]),
                f("Sent Items/2020", &[]),
            ],
        );
        let r = rules(
            &[],
            &[
                ("Sent Items", "Old/Outlook Sent"),
                ("Sent Items/2020", "Recent"),
                ("INBOX", "Old Inbox"),
            ],
            "auto",
        );
        let t = folder_table(&src, &dovecot(), Some(&r)).unwrap();
        assert_eq!(
            dest_of(&t, "Sent Items").as_deref(),
            Some("Old/Outlook Sent")
        );
        let p = plan(&t, "Sent Items");
        assert_eq!(p.role, Some(Role::Sent));
        assert_eq!(p.special_use, None);
        assert_eq!(
            dest_of(&t, "Sent Items/2019").as_deref(),
            Some("Old/Outlook Sent/2019")
        );
        assert!(matches!(
            plan(&t, "Sent Items/2019").reason,
            Reason::UnderRenamed { rule: 0, .. }
        ));
        // The nearest rule wins.
        assert_eq!(dest_of(&t, "Sent Items/2020").as_deref(), Some("Recent"));
        assert_eq!(dest_of(&t, "INBOX").as_deref(), Some("INBOX"));
        assert_eq!(t.unused_renames, vec![2]);
    }

    #[test]
    fn collisions_that_are_not_default_merges_are_errors() {
        // A rename into a folder another source folder maps to.
        let src = list(
            '/',
            "",
            vec![f("INBOX", &[]), f("Sent", &[]), f("Old", &[])],
        );
        let r = rules(&[], &[("Old", "Sent")], "auto");
        let err = folder_table(&src, &dovecot(), Some(&r)).unwrap_err();
        assert!(matches!(&err, MappingError::Collision { dest, .. } if dest == "Sent"));
        assert!(
            err.to_string().contains("`Sent`, `Old`") || err.to_string().contains("`Old`, `Sent`"),
            "{err}"
        );
        // INBOX's children on Dovecot and top-level folders meet on a Courier destination.
        let src = list(
            '/',
            "",
            vec![f("INBOX", &[]), f("INBOX/Work", &[]), f("Work", &[])],
        );
        let dst = list('.', "INBOX.", vec![f("INBOX", &[])]);
        let err = folder_table(&src, &dst, None).unwrap_err();
        assert!(
            matches!(&err, MappingError::Collision { dest, .. } if dest == "INBOX.Work"),
            "{err}"
        );
        // Into a Dovecot destination they stay apart.
        let t = folder_table(&src, &dovecot(), None).unwrap();
        assert_eq!(dest_of(&t, "INBOX/Work").as_deref(), Some("INBOX/Work"));
        assert_eq!(dest_of(&t, "Work").as_deref(), Some("Work"));
    }

    #[test]
    fn children_of_merged_defaults_merge_too() {
        let src = list(
            '/',
            "",
            vec![
                f("INBOX", &[]),
                f("Sent", &[]),
                f("Sent/2019", &[]),
                f("Sent Items", &[]),
                f("Sent Items/2019", &[]),
            ],
        );
        let t = folder_table(&src, &dovecot(), None).unwrap();
        assert_eq!(dest_of(&t, "Sent Items/2019").as_deref(), Some("Sent/2019"));
        assert_eq!(
            merged(plan(&t, "Sent/2019")),
            vec!["Sent Items/2019".to_owned()]
        );
    }

    #[test]
    fn creation_order_and_subscriptions() {
        let src = list(
            '/',
            "",
            vec![
                ListedFolder::new("Sent/2019", &[], true),
                ListedFolder::new("INBOX", &[], true),
                ListedFolder::new("Zeta", &[], false),
                ListedFolder::new("Sent", &[], true),
                ListedFolder::new("Drafts", &[], true),
            ],
        );
        let dst = list(
            '/',
            "",
            vec![
                ListedFolder::new("INBOX", &[], true),
                ListedFolder::new("Drafts", &["\\Drafts"], true),
            ],
        );
        let t = folder_table(&src, &dst, None).unwrap();
        let order: Vec<&str> = t.plans.iter().map(|p| p.source.as_str()).collect();
        assert_eq!(order, ["Drafts", "INBOX", "Sent", "Sent/2019", "Zeta"]);
        let sent = plan(&t, "Sent");
        assert!(sent.create && sent.special_use == Some(Role::Sent) && sent.subscribe);
        let child = plan(&t, "Sent/2019");
        assert!(child.create && child.special_use.is_none());
        assert!(!plan(&t, "Drafts").subscribe && !plan(&t, "Drafts").create);
        assert!(!plan(&t, "Zeta").subscribe);
        assert!(!plan(&t, "INBOX").create);
    }

    #[test]
    fn noselect_destination_folder_is_created() {
        let src = list('/', "", vec![f("INBOX", &[]), f("Lists", &[])]);
        let dst = list('/', "", vec![f("INBOX", &[]), f("Lists", &["\\Noselect"])]);
        let t = folder_table(&src, &dst, None).unwrap();
        assert!(plan(&t, "Lists").create);
    }

    #[test]
    fn other_users_and_shared_folders_are_never_mapped() {
        // Cyrus with altnamespace: `Other Users/bob/...` and `Shared Folders/...`; Cyrus
        // without it: `user.carol.Sent` next to the user's own `INBOX.x`.
        let mut src = list(
            '/',
            "",
            vec![
                f("INBOX", &[]),
                f("Projects", &[]),
                f("Other Users", &["\\Noselect"]),
                f("Other Users/bob/Sent", &[]),
                f("Shared Folders/announce", &[]),
                f("Shared Folders", &["\\Noselect"]),
            ],
        );
        src.foreign = vec![
            ForeignNamespace {
                prefix: "Other Users/".into(),
                kind: NamespaceKind::OtherUsers,
            },
            ForeignNamespace {
                prefix: "Shared Folders/".into(),
                kind: NamespaceKind::Shared,
            },
        ];
        // A rename rule naming it does not bring it along either.
        let r = rules(&[], &[("Shared Folders/announce", "Announce")], "en");
        let t = folder_table(&src, &dovecot(), Some(&r)).unwrap();
        assert_eq!(dest_of(&t, "Projects").as_deref(), Some("Projects"));
        for name in [
            "Other Users",
            "Other Users/bob/Sent",
            "Shared Folders/announce",
            "Shared Folders",
        ] {
            assert_eq!(dest_of(&t, name), None, "{name}");
            let p = t.plans.iter().find(|p| p.source == name).unwrap();
            assert!(
                matches!(p.reason, Reason::NotPersonal { .. }),
                "{name}: {:?}",
                p.reason
            );
        }
        let shown = t.to_string();
        assert!(
            shown
                .contains("in the other users' namespace `Other Users/`: not this user's own mail"),
            "{shown}"
        );
        let mut cyrus = list(
            '.',
            "INBOX.",
            vec![
                f("INBOX", &[]),
                f("INBOX.Sent", &[]),
                f("user.carol.Sent", &[]),
            ],
        );
        cyrus.foreign = vec![ForeignNamespace {
            prefix: "user.".into(),
            kind: NamespaceKind::OtherUsers,
        }];
        let t = folder_table(&cyrus, &dovecot(), None).unwrap();
        assert_eq!(dest_of(&t, "INBOX.Sent").as_deref(), Some("Sent"));
        assert_eq!(dest_of(&t, "user.carol.Sent"), None);

        // Cyrus with altnamespace off names its shared namespace with the empty prefix:
        // everything outside `INBOX.` and `user.` is shared; the longest prefix decides.
        cyrus.folders.push(f("announce", &[]));
        cyrus.foreign.push(ForeignNamespace {
            prefix: String::new(),
            kind: NamespaceKind::Shared,
        });
        let t = folder_table(&cyrus, &dovecot(), None).unwrap();
        assert_eq!(dest_of(&t, "INBOX").as_deref(), Some("INBOX"));
        assert_eq!(dest_of(&t, "INBOX.Sent").as_deref(), Some("Sent"));
        for name in ["user.carol.Sent", "announce"] {
            let p = t.plans.iter().find(|p| p.source == name).unwrap();
            assert!(
                matches!(p.reason, Reason::NotPersonal { .. }),
                "{name}: {p:?}"
            );
        }
        // An empty shared prefix beside an empty personal one takes nothing from the user.
        let mut flat = list('/', "", vec![f("INBOX", &[]), f("Work", &[])]);
        flat.foreign = vec![ForeignNamespace {
            prefix: String::new(),
            kind: NamespaceKind::Shared,
        }];
        let t = folder_table(&flat, &dovecot(), None).unwrap();
        assert_eq!(dest_of(&t, "Work").as_deref(), Some("Work"));
    }

    #[test]
    fn namespace_prefix_guess() {
        let courier = [f("INBOX", &[]), f("INBOX.Sent", &[]), f("inbox.Trash", &[])];
        assert_eq!(guess_prefix(&courier, Some('.')), "INBOX.");
        let dovecot = [f("INBOX", &[]), f("INBOX.Sent", &[]), f("Trash", &[])];
        assert_eq!(guess_prefix(&dovecot, Some('.')), "");
        assert_eq!(guess_prefix(&[f("INBOX", &[])], Some('.')), "");
        assert_eq!(guess_prefix(&courier, None), "");
        // A prefix given without its delimiter works the same.
        let src = list('.', "INBOX", courier.to_vec());
        let t = folder_table(&src, &dovecot_list(), None).unwrap();
        assert_eq!(dest_of(&t, "INBOX.Sent").as_deref(), Some("Sent"));
        assert_eq!(dest_of(&t, "inbox.Trash").as_deref(), Some("Trash"));
    }

    fn dovecot_list() -> FolderList {
        dovecot()
    }

    #[test]
    fn flat_servers() {
        let src = FolderList {
            delimiter: None,
            prefix: String::new(),
            folders: vec![f("INBOX", &[]), f("a/b", &[]), f("Sent", &[])],
            foreign: Vec::new(),
            create_special_use: true,
            refused: Vec::new(),
            gmail: false,
        };
        let t = folder_table(&src, &dovecot(), None).unwrap();
        assert_eq!(dest_of(&t, "a/b").as_deref(), Some("a_b"));
        assert_eq!(dest_of(&t, "Sent").as_deref(), Some("Sent"));
        let dst = FolderList {
            delimiter: None,
            prefix: String::new(),
            folders: vec![f("INBOX", &[])],
            foreign: Vec::new(),
            create_special_use: true,
            refused: Vec::new(),
            gmail: false,
        };
        let src = list('.', "", vec![f("INBOX", &[]), f("a.b", &[])]);
        let t = folder_table(&src, &dst, None).unwrap();
        assert_eq!(dest_of(&t, "a.b").as_deref(), Some("a/b"));
    }

    #[test]
    fn no_special_use_is_promised_where_it_cannot_be_set_and_name_only_parents_say_so() {
        let src = list(
            '/',
            "",
            vec![
                f("INBOX", &[]),
                f("Archives", &["\\Archive"]),
                f("Lists", &["\\NonExistent", "\\HasChildren"]),
                f("Lists/rust", &[]),
            ],
        );
        let mut dst = list('/', "", vec![f("INBOX", &[])]);
        let shown = folder_table(&src, &dst, None).unwrap().to_string();
        assert!(shown.contains("[create \\Archive"), "{shown}");
        dst.create_special_use = false;
        let t = folder_table(&src, &dst, None).unwrap();
        let archive = t.plans.iter().find(|p| p.source == "Archives").unwrap();
        assert_eq!(archive.special_use, None);
        let shown = t.to_string();
        assert!(
            !shown.contains("create \\Archive") && shown.contains("[create"),
            "{shown}"
        );
        assert!(
            shown.contains("Lists → (not copied): a parent only in name (no folder of its own)"),
            "{shown}"
        );
    }

    #[test]
    fn characters_the_destination_refuses_are_written_as_underscores() {
        let src = list(
            '/',
            "",
            vec![f("INBOX", &[]), f("Release v1.2", &[]), f("INBOX/x.y", &[])],
        );
        let mut dst = list('/', "", vec![f("INBOX", &[])]);
        dst.refused = vec!['.'];
        let t = folder_table(&src, &dst, None).unwrap();
        assert_eq!(dest_of(&t, "Release v1.2").as_deref(), Some("Release v1_2"));
        assert_eq!(dest_of(&t, "INBOX/x.y").as_deref(), Some("INBOX/x_y"));
        let p = t.plans.iter().find(|p| p.source == "Release v1.2").unwrap();
        assert!(p.notes.contains(&Note::CharacterRefused {
            level: "Release v1.2".into(),
            character: '.',
            replacement: '_',
        }));
    }

    #[test]
    fn table_display() {
        let src = list(
            '.',
            "INBOX.",
            vec![
                f("INBOX", &[]),
                f("INBOX.Gesendete Elemente", &[]),
                f("INBOX.Entwürfe", &[]),
                f("INBOX.Spam", &[]),
            ],
        );
        let r = rules(&["Spam"], &[], "auto");
        let t = folder_table(&src, &dovecot(), Some(&r)).unwrap();
        let text = t.to_string();
        assert!(
            text.starts_with(
                "source language: de (detected from folder names)\ndestination language: en\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("  INBOX → INBOX: INBOX always maps to INBOX\n"),
            "{text}"
        );
        assert!(
            text.contains("  INBOX.Gesendete Elemente → Sent: `de` default name for Sent → the destination's Sent folder `Sent` (marked \\Sent there)\n"),
            "{text}"
        );
        assert!(
            text.contains("  INBOX.Spam → (not copied): excluded by pattern `Spam`\n"),
            "{text}"
        );
    }

    fn arb_list() -> impl Strategy<Value = FolderList> {
        let name = "(INBOX|Sent|Sent Items|Gesendet|Entwürfe|Junk|Trash|a|b|x\\.y|x/y|Archive|\\[Gmail\\])";
        let attrs = proptest::sample::subsequence(
            vec!["\\Sent", "\\Noselect", "\\Junk", "\\All", "\\Trash"],
            0..2,
        );
        (
            prop_oneof![Just('/'), Just('.')],
            prop_oneof![Just(""), Just("INBOX.")],
            proptest::collection::vec(
                (proptest::collection::vec(name, 1..4), attrs, any::<bool>()),
                0..10,
            ),
        )
            .prop_map(|(d, prefix, folders)| {
                let mut seen = BTreeSet::new();
                let mut out = vec![f("INBOX", &[])];
                for (levels, attrs, sub) in folders {
                    let name = format!("{prefix}{}", levels.join(&d.to_string()));
                    if seen.insert(name.clone()) && !is_inbox(&name) {
                        out.push(ListedFolder::new(&name, &attrs, sub));
                    }
                }
                list(d, prefix, out)
            })
    }

    proptest! {
        #[test]
        fn mapping_invariants(src in arb_list(), dst in arb_list(), excl in any::<bool>()) {
            let r = rules(if excl { &["\\Junk", "a"] } else { &[] }, &[("b", "Renamed/b")], "auto");
            match folder_table(&src, &dst, Some(&r)) {
                Err(MappingError::Collision { sources, .. }) => prop_assert!(sources.len() >= 2),
                Ok(t) => {
                    prop_assert_eq!(t.plans.len(), src.folders.len());
                    let mut seen: BTreeMap<String, Vec<&FolderPlan>> = BTreeMap::new();
                    for (i, p) in t.plans.iter().enumerate() {
                        let folder = src.folders.iter().find(|f| f.name == p.source).unwrap();
                        if is_inbox(&p.source) {
                            prop_assert_eq!(p.dest.as_deref(), Some("INBOX"));
                        }
                        if !folder.selectable() {
                            prop_assert!(p.dest.is_none());
                        }
                        if let Some(d) = &p.dest {
                            prop_assert!(!d.is_empty());
                            // Every level of the name is a real level on the destination.
                            seen.entry(canonical_name(d, &dst)).or_default().push(p);
                            // Parents come first.
                            for later in &t.plans[i + 1..] {
                                if let Some(ld) = &later.dest {
                                    let (a, b) = (relative(d, &dst), relative(ld, &dst));
                                    prop_assert!(!(b.len() < a.len() && a.starts_with(&b)), "{} before its parent {}", d, ld);
                                }
                            }
                        }
                        let _ = p.to_string();
                    }
                    for (_, ps) in seen {
                        if ps.len() > 1 {
                            for p in &ps {
                                prop_assert!(p.notes.iter().any(|n| matches!(n, Note::MergedWith(o) if o.len() == ps.len() - 1)));
                            }
                        }
                    }
                    let _ = t.to_string();
                }
            }
        }
    }
}
