//! Localized default folder names: which folder of a source mailbox is its Sent, Drafts,
//! Trash... when the server does not say so with SPECIAL-USE (RFC 6154).
//!
//! The table lives in `data/folder-names.tsv` (see its header for the format) and is compiled
//! into the binary. Folder mapping asks, in order: SPECIAL-USE ([`Role::from_special_use`]),
//! then this table ([`detect_language`] once per mailbox, then [`role_for`] per folder), then
//! the user's rename rules.
//!
//! # Which names are looked up
//!
//! Only *leaf names of default-folder positions* are defaults: a folder at the top level, a
//! folder directly under `INBOX` on servers whose personal namespace prefix is `INBOX.` (or
//! `INBOX/`), and a folder directly under `[Gmail]` or `[Google Mail]`. The caller strips that
//! prefix and passes the leaf (`"INBOX.Sent"` → `"Sent"`, `"[Gmail]/Gesendet"` →
//! `"Gesendet"`), already decoded from modified UTF-7. A `Sent` nested anywhere else
//! (`Projects/Sent`) is a user's folder and must not be passed here.
//!
//! # Matching
//!
//! Names are compared after Unicode normalization (NFC, so NFC and NFD spellings match) and
//! case folding (full Unicode lowercase, plus `ς`→`σ`, Turkish `İ`→`i` and `’`→`'`). Nothing
//! else is forgiven: `"Sent "` or `"Sent-Items"` are not defaults.
//!
//! # English
//!
//! English defaults (`Sent`, `Sent Items`, `Trash`, `Junk`, ...) are recognized in every
//! mailbox, whatever its language: Dovecot, Thunderbird, Apple Mail, iCloud, Yahoo and
//! Outlook.com create them whatever the user's interface language. For the same reason they
//! are never evidence *for* a language in [`detect_language`].

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::str::FromStr;
use std::sync::LazyLock;

use thiserror::Error;
use unicode_normalization::UnicodeNormalization;

/// The table, as shipped. Parsed once, on first use.
const TABLE_TSV: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/data/folder-names.tsv"
));

/// What a default folder is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    Inbox,
    Sent,
    Drafts,
    Trash,
    Junk,
    Archive,
    Outbox,
}

impl Role {
    /// Every role, in table order.
    pub const ALL: [Role; 7] = [
        Role::Inbox,
        Role::Sent,
        Role::Drafts,
        Role::Trash,
        Role::Junk,
        Role::Archive,
        Role::Outbox,
    ];

    /// The name used in the TSV table and in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Inbox => "Inbox",
            Role::Sent => "Sent",
            Role::Drafts => "Drafts",
            Role::Trash => "Trash",
            Role::Junk => "Junk",
            Role::Archive => "Archive",
            Role::Outbox => "Outbox",
        }
    }

    /// The role a LIST attribute gives a mailbox, compared case-insensitively.
    ///
    /// RFC 6154 `\Sent`, `\Drafts`, `\Trash`, `\Junk` and `\Archive` map to their role; so do
    /// the pre-standard Gmail XLIST attributes `\Inbox` and `\Spam`. `\All` and `\Flagged`
    /// (Gmail's All Mail and Starred) are views over other folders, not roles: `None`, as for
    /// any other attribute (`\HasNoChildren`, `\Noselect`, ...).
    pub fn from_special_use(attr: &str) -> Option<Role> {
        const MAP: [(&str, Role); 7] = [
            ("\\Sent", Role::Sent),
            ("\\Drafts", Role::Drafts),
            ("\\Trash", Role::Trash),
            ("\\Junk", Role::Junk),
            ("\\Archive", Role::Archive),
            ("\\Spam", Role::Junk),
            ("\\Inbox", Role::Inbox),
        ];
        MAP.iter()
            .find(|(a, _)| a.eq_ignore_ascii_case(attr))
            .map(|&(_, r)| r)
    }

    /// The RFC 6154 attribute marking this role, if there is one. Inbox is the protocol's
    /// `INBOX` and Outbox is client-side only: both `None`.
    pub fn special_use(self) -> Option<&'static str> {
        match self {
            Role::Sent => Some("\\Sent"),
            Role::Drafts => Some("\\Drafts"),
            Role::Trash => Some("\\Trash"),
            Role::Junk => Some("\\Junk"),
            Role::Archive => Some("\\Archive"),
            Role::Inbox | Role::Outbox => None,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A role name that is not one of [`Role::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("unknown folder role {0:?} (expected Inbox, Sent, Drafts, Trash, Junk, Archive or Outbox)")]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;

    /// Parses the exact names of [`Role::as_str`].
    fn from_str(s: &str) -> Result<Role, UnknownRole> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| UnknownRole(s.to_owned()))
    }
}

/// A language of the table, as its BCP-47 tag (`"vi"`, `"pt-BR"`, `"zh-Hant"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Lang(&'static str);

impl Lang {
    /// English: the fallback language, and the one whose names are recognized everywhere.
    pub const ENGLISH: Lang = Lang("en");

    /// The tag exactly as the table spells it.
    pub fn as_str(self) -> &'static str {
        self.0
    }

    /// The table language for a user-supplied BCP-47 tag (`sourceLanguage` in a manifest), or
    /// `None` if the table has no rows for it. Case-insensitive, `_` accepted for `-`;
    /// subtags are dropped from the right until a table language matches (RFC 4647 lookup:
    /// `de-AT` → `de`, `zh-Hant-TW` → `zh-Hant`), with the usual aliases: `zh-CN`/`zh-SG`/`zh`
    /// → `zh-Hans`, `zh-TW`/`zh-HK`/`zh-MO` → `zh-Hant`, `sr` → `sr-Cyrl`, `no` → `nb`,
    /// `iw` → `he`, `in` → `id`.
    pub fn resolve(tag: &str) -> Option<Lang> {
        const ALIASES: [(&str, &str); 10] = [
            ("zh-CN", "zh-Hans"),
            ("zh-SG", "zh-Hans"),
            ("zh-TW", "zh-Hant"),
            ("zh-HK", "zh-Hant"),
            ("zh-MO", "zh-Hant"),
            ("zh", "zh-Hans"),
            ("sr", "sr-Cyrl"),
            ("no", "nb"),
            ("iw", "he"),
            ("in", "id"),
        ];
        let tag = tag.trim().replace('_', "-");
        let mut candidate = tag.as_str();
        while !candidate.is_empty() {
            if let Some(l) = table().lang(candidate) {
                return Some(l);
            }
            if let Some(&(_, to)) = ALIASES
                .iter()
                .find(|(from, _)| from.eq_ignore_ascii_case(candidate))
            {
                return table().lang(to);
            }
            candidate = match candidate.rfind('-') {
                Some(i) => &candidate[..i],
                None => "",
            };
        }
        None
    }

    /// The primary language (`pt` for `pt-BR`) when the table has rows for it: its rows are
    /// this language's too.
    pub fn parent(self) -> Option<Lang> {
        let primary = self.primary();
        (primary != self.0).then(|| table().lang(primary)).flatten()
    }

    /// The primary language subtag (`zh` for `zh-Hant`).
    fn primary(self) -> &'static str {
        self.0.split('-').next().unwrap_or(self.0)
    }
}

impl fmt::Display for Lang {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl PartialEq<str> for Lang {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for Lang {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

/// Every language of the table, in table order.
pub fn languages() -> Vec<Lang> {
    table().langs.clone()
}

/// Every (language, role) whose default name is `name`, in table order, each pair once.
/// Exact lookup after normalization; no language is preferred. The table guarantees that a
/// name has one role across all languages, so the roles in the result agree.
pub fn lookup(name: &str) -> Vec<(Lang, Role)> {
    let t = table();
    let mut out: Vec<(Lang, Role)> = Vec::new();
    for row in t.rows_named(&fold(name)) {
        if !out.contains(&(row.lang, row.role)) {
            out.push((row.lang, row.role));
        }
    }
    out
}

/// The role of a default-folder leaf name (see the module docs for which names are leaves)
/// in a mailbox of language `lang` (detected by [`detect_language`] or forced by the user),
/// or `None` for a folder that is not a default.
///
/// `INBOX` (any case) is always Inbox. Otherwise the name must be a default of `lang`, of its
/// primary language (`pt` for `pt-BR`), or of English (see the module docs). A name that is a
/// default only in some other language is not mapped: in a German mailbox `Enviados` is a
/// user's folder. `lang: None`, or a tag the table does not know, means English only.
pub fn role_for(name: &str, lang: Option<&str>) -> Option<Role> {
    if name.eq_ignore_ascii_case("INBOX") {
        return Some(Role::Inbox);
    }
    let t = table();
    let key = fold(name);
    let chain = lang
        .and_then(Lang::resolve)
        .map(search_chain)
        .unwrap_or_default();
    chain
        .into_iter()
        .chain([Lang::ENGLISH])
        .find_map(|l| t.rows_named(&key).find(|r| r.lang == l).map(|r| r.role))
}

/// The current default name for `role` in language `lang` (any tag [`Lang::resolve`]
/// accepts): what to call the destination's folder when the destination has no SPECIAL-USE
/// folder for the role. Inbox is always `INBOX`. `None` if the language is unknown or the
/// table has no name for the role in it (nor in its primary language); the caller then falls
/// back to English.
pub fn name_for(role: Role, lang: &str) -> Option<&'static str> {
    let l = Lang::resolve(lang)?;
    if role == Role::Inbox {
        return Some("INBOX");
    }
    let t = table();
    search_chain(l).into_iter().find_map(|l| {
        t.rows
            .iter()
            .find(|r| r.lang == l && r.role == role)
            .map(|r| r.name)
    })
}

/// Guesses the language of a mailbox from the leaf names of its default-folder positions
/// (see the module docs), for `sourceLanguage: auto`.
///
/// The rule:
/// 1. `INBOX` and names that are English defaults are ignored: every mailbox has the first,
///    and servers create the others whatever the user's language.
/// 2. Each other language scores the number of **distinct roles** the remaining names are
///    defaults for in that language (its own rows plus its primary language's). Two names
///    for the same role (`Gesendet`, `Gesendete Elemente`) count once.
/// 3. Languages sharing a primary subtag are one family (`pt`, `pt-BR`): the family scores
///    its best member's score and is represented by the primary language when that one
///    scores as high or when several members tie (a Portuguese mailbox with only names common
///    to Portugal and Brazil is `pt`), otherwise by its single best member. A family with
///    tied members and no primary language in the table (`zh-Hans` = `zh-Hant`) is
///    ambiguous.
/// 4. The best family wins if it scores **at least 2** and **strictly more than every other
///    family**, and is not ambiguous. One matching role is not evidence (a lone `Archiv` may
///    be German or Czech, or a user's own folder); a tie is not evidence either.
/// 5. Otherwise the result is English if any name is an English default other than `INBOX`,
///    and `None` if nothing matched at all. Either way, map folders with English only
///    (`role_for(name, None)` does).
pub fn detect_language(names: &[&str]) -> Option<Lang> {
    let t = table();
    let mut roles: BTreeMap<Lang, BTreeSet<Role>> = BTreeMap::new();
    let mut english_seen = false;
    for name in names {
        if name.eq_ignore_ascii_case("INBOX") {
            continue;
        }
        let key = fold(name);
        if t.rows_named(&key).any(|r| r.lang == Lang::ENGLISH) {
            english_seen = true;
            continue;
        }
        for row in t.rows_named(&key) {
            // A row counts for its own language and for every language inheriting from it.
            for &l in &t.langs {
                if l != Lang::ENGLISH && (l == row.lang || l.parent() == Some(row.lang)) {
                    roles.entry(l).or_default().insert(row.role);
                }
            }
        }
    }

    // Families by primary subtag: (score, representative or None if ambiguous).
    let mut families: BTreeMap<&'static str, (usize, Option<Lang>)> = BTreeMap::new();
    let mut by_family: BTreeMap<&'static str, Vec<(Lang, usize)>> = BTreeMap::new();
    for (&l, r) in &roles {
        by_family.entry(l.primary()).or_default().push((l, r.len()));
    }
    for (primary, members) in by_family {
        let best = members.iter().map(|&(_, s)| s).max().unwrap_or(0);
        let top: Vec<Lang> = members
            .iter()
            .filter(|&&(_, s)| s == best)
            .map(|&(l, _)| l)
            .collect();
        let primary_lang = t.lang(primary);
        let rep = match top.as_slice() {
            [only] => Some(*only),
            _ => primary_lang,
        };
        let rep = if primary_lang.is_some_and(|p| top.contains(&p)) {
            primary_lang
        } else {
            rep
        };
        families.insert(primary, (best, rep));
    }

    let best = families.values().map(|&(s, _)| s).max().unwrap_or(0);
    let winners: Vec<Option<Lang>> = families
        .values()
        .filter(|&&(s, _)| s == best)
        .map(|&(_, rep)| rep)
        .collect();
    match winners.as_slice() {
        [Some(l)] if best >= 2 => Some(*l),
        _ if english_seen => Some(Lang::ENGLISH),
        _ => None,
    }
}

/// `l`, then its primary language if the table has one.
fn search_chain(l: Lang) -> Vec<Lang> {
    let mut chain = vec![l];
    chain.extend(l.parent());
    chain
}

/// The comparison key of a folder name: NFC, lowercase, with the few foldings the module
/// docs list.
fn fold(name: &str) -> String {
    let lower: String = name
        .nfc()
        .flat_map(char::to_lowercase)
        .map(|c| match c {
            'ς' => 'σ',
            '\u{2019}' => '\'',
            c => c,
        })
        .collect();
    // Lowercasing can denormalize (Turkish İ becomes i + U+0307): renormalize, drop the dot.
    lower.nfc().collect::<String>().replace("i\u{307}", "i")
}

struct Row {
    lang: Lang,
    role: Role,
    name: &'static str,
    #[cfg_attr(not(test), allow(dead_code))]
    source: &'static str,
    /// 1-based line in the TSV, for error messages.
    line: usize,
}

struct Table {
    rows: Vec<Row>,
    /// Folded name → indexes into `rows`, in table order.
    by_key: HashMap<String, Vec<usize>>,
    /// Distinct languages in table order.
    langs: Vec<Lang>,
}

impl Table {
    fn rows_named<'a>(&'a self, key: &str) -> impl Iterator<Item = &'a Row> + 'a {
        self.by_key
            .get(key)
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .map(|&i| &self.rows[i])
    }

    /// The table's own spelling of a tag, compared case-insensitively.
    fn lang(&self, tag: &str) -> Option<Lang> {
        self.langs
            .iter()
            .copied()
            .find(|l| l.0.eq_ignore_ascii_case(tag))
    }
}

/// A malformed line in the TSV table.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("data/folder-names.tsv line {line}: {problem}")]
struct TableError {
    line: usize,
    problem: String,
}

fn table() -> &'static Table {
    static TABLE: LazyLock<Table> = LazyLock::new(|| match parse(TABLE_TSV) {
        Ok(t) => t,
        // The file is compiled in and every row is checked by the unit tests, so this is a
        // build defect, not a runtime condition.
        Err(e) => panic!("{e}"),
    });
    &TABLE
}

fn parse(text: &'static str) -> Result<Table, TableError> {
    let mut rows: Vec<Row> = Vec::new();
    let mut langs: Vec<Lang> = Vec::new();
    let mut by_key: HashMap<String, Vec<usize>> = HashMap::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let err = |problem: String| TableError { line, problem };
        if raw.trim().is_empty() || raw.starts_with('#') {
            continue;
        }
        let cols: Vec<&'static str> = raw.split('\t').collect();
        let [lang, role, name, source] = cols[..] else {
            return Err(err(format!(
                "expected 4 TAB-separated columns, found {}",
                cols.len()
            )));
        };
        if !is_lang_tag(lang) {
            return Err(err(format!("{lang:?} is not a BCP-47 language tag")));
        }
        let role: Role = role.parse().map_err(|e: UnknownRole| err(e.to_string()))?;
        if name.is_empty() || name.trim() != name {
            return Err(err(format!(
                "name {name:?} is empty or has surrounding spaces"
            )));
        }
        if name.contains('/') || name.chars().any(char::is_control) {
            return Err(err(format!(
                "name {name:?} contains '/' or a control character"
            )));
        }
        if source.trim().is_empty() {
            return Err(err("empty source column".to_owned()));
        }
        let lang = match langs.iter().find(|l| l.0 == lang) {
            Some(&l) => l,
            None => {
                if langs.iter().any(|l| l.0.eq_ignore_ascii_case(lang)) {
                    return Err(err(format!("{lang:?} is spelled differently elsewhere")));
                }
                langs.push(Lang(lang));
                Lang(lang)
            }
        };
        let key = fold(name);
        let same = by_key.entry(key).or_default();
        if let Some(&j) = same.iter().find(|&&j| rows[j].lang_is(lang, role)) {
            let first = rows[j].line;
            return Err(err(format!(
                "duplicate of line {first} ({lang} {role} {name:?})"
            )));
        }
        same.push(rows.len());
        rows.push(Row {
            lang,
            role,
            name,
            source,
            line,
        });
    }
    if !langs.contains(&Lang::ENGLISH) {
        return Err(TableError {
            line: 0,
            problem: "no English rows".to_owned(),
        });
    }
    Ok(Table {
        rows,
        by_key,
        langs,
    })
}

impl Row {
    fn lang_is(&self, lang: Lang, role: Role) -> bool {
        self.lang == lang && self.role == role
    }
}

/// `ll`, `lll`, optionally followed by `-Script` (4 letters) and/or `-RR` (2 letters or 3
/// digits). Enough for this table; not a full BCP-47 parser.
fn is_lang_tag(tag: &str) -> bool {
    let mut parts = tag.split('-');
    let primary = parts.next().unwrap_or("");
    if !(2..=3).contains(&primary.len()) || !primary.bytes().all(|b| b.is_ascii_lowercase()) {
        return false;
    }
    parts.all(|p| match p.len() {
        4 => {
            p.as_bytes()[0].is_ascii_uppercase()
                && p.bytes().skip(1).all(|b| b.is_ascii_lowercase())
        }
        2 => p.bytes().all(|b| b.is_ascii_uppercase()),
        3 => p.bytes().all(|b| b.is_ascii_digit()),
        _ => false,
    })
}

#[cfg(test)]
mod tests {
    use super::super::mutf7;
    use super::*;

    fn lang(tag: &str) -> Lang {
        Lang::resolve(tag).unwrap_or_else(|| panic!("{tag} not in table"))
    }

    #[test]
    fn every_row_parses() {
        let t = parse(TABLE_TSV).unwrap_or_else(|e| panic!("{e}"));
        assert!(t.rows.len() >= 300, "{} rows", t.rows.len());
        for r in &t.rows {
            assert!(
                !r.name.is_empty() && !r.source.is_empty(),
                "line {}",
                r.line
            );
        }
        // Languages the brief requires, at least.
        for tag in [
            "en", "de", "fr", "es", "it", "pt", "pt-BR", "nl", "ru", "pl", "vi",
        ] {
            assert!(t.lang(tag).is_some(), "{tag} missing");
        }
        // Every language names every role but Inbox/Archive/Outbox at least: Sent, Drafts,
        // Trash, Junk are what migrations need most.
        for l in &t.langs {
            for role in [Role::Sent, Role::Drafts, Role::Trash, Role::Junk] {
                assert!(name_for(role, l.0).is_some(), "{l} has no {role}");
            }
        }
    }

    #[test]
    fn parse_rejects_bad_rows() {
        let bad = [
            "en\tSent\n",
            "en\tSent\tSent\tx\textra\n",
            "EN\tSent\tSent\tx\n",
            "en\tSentItems\tSent\tx\n",
            "en\tSent\t\tx\n",
            "en\tSent\t Sent\tx\n",
            "en\tSent\ta/b\tx\n",
            "en\tSent\tSent\t \n",
            "en\tSent\tSent\tx\nen\tSent\tSENT\ty\n",
            "en\tSent\tSent\tx\nEn\tDrafts\tDrafts\tx\n",
            "de\tSent\tGesendet\tx\n",
        ];
        for text in bad {
            assert!(parse(text).is_err(), "accepted {text:?}");
        }
        let ok = parse("# c\n\nen\tSent\tSent\tx\nde\tSent\tSent\tx\n").unwrap();
        assert_eq!(ok.rows.len(), 2);
    }

    #[test]
    fn every_row_is_canonical_and_round_trips_mutf7() {
        for r in &table().rows {
            let nfc: String = r.name.nfc().collect();
            assert_eq!(nfc, r.name, "line {}: not NFC", r.line);
            let wire = mutf7::encode(r.name);
            assert!(wire.bytes().all(|b| (0x20..=0x7e).contains(&b)));
            assert_eq!(
                mutf7::decode(&wire).as_deref(),
                Ok(r.name),
                "line {}",
                r.line
            );
        }
    }

    #[test]
    fn no_name_has_two_roles() {
        // Whatever the language, a name means one role: otherwise a forced or misdetected
        // language could turn a Sent folder into an Outbox.
        for (key, idx) in &table().by_key {
            let roles: BTreeSet<Role> = idx.iter().map(|&i| table().rows[i].role).collect();
            assert_eq!(roles.len(), 1, "{key:?} has roles {roles:?}");
        }
    }

    #[test]
    fn special_use() {
        assert_eq!(Role::from_special_use("\\Sent"), Some(Role::Sent));
        assert_eq!(Role::from_special_use("\\sent"), Some(Role::Sent));
        assert_eq!(Role::from_special_use("\\Drafts"), Some(Role::Drafts));
        assert_eq!(Role::from_special_use("\\Trash"), Some(Role::Trash));
        assert_eq!(Role::from_special_use("\\Junk"), Some(Role::Junk));
        assert_eq!(Role::from_special_use("\\Archive"), Some(Role::Archive));
        assert_eq!(Role::from_special_use("\\Spam"), Some(Role::Junk));
        assert_eq!(Role::from_special_use("\\All"), None);
        assert_eq!(Role::from_special_use("\\Flagged"), None);
        assert_eq!(Role::from_special_use("\\HasNoChildren"), None);
        assert_eq!(Role::from_special_use("Sent"), None);
        for role in Role::ALL {
            if let Some(attr) = role.special_use() {
                assert_eq!(Role::from_special_use(attr), Some(role));
            }
            assert_eq!(role.as_str().parse::<Role>(), Ok(role));
        }
        assert_eq!(Role::Inbox.special_use(), None);
        assert_eq!(Role::Outbox.special_use(), None);
        assert!("sent".parse::<Role>().is_err());
    }

    #[test]
    fn lookup_normalizes() {
        let de = lang("de");
        assert!(lookup("Entwürfe").contains(&(de, Role::Drafts)));
        assert!(lookup("ENTWÜRFE").contains(&(de, Role::Drafts)));
        // NFD: u + COMBINING DIAERESIS.
        assert!(lookup("Entwu\u{308}rfe").contains(&(de, Role::Drafts)));
        let vi_nfd: String = "Hộp thư đến".nfd().collect();
        assert_ne!(vi_nfd, "Hộp thư đến");
        assert_eq!(lookup(&vi_nfd), vec![(lang("vi"), Role::Inbox)]);
        assert_eq!(role_for(&vi_nfd, Some("vi")), Some(Role::Inbox));
        // Greek final sigma and Turkish dotted capital I.
        // Accents are significant (Greek capitals usually drop them: no match).
        assert!(lookup("ΑΠΕΣΤΑΛΜΕΝΑ").is_empty());
        assert_eq!(fold("ΠΡΌΧΕΙΡΑΣ"), fold("πρόχειρας"));
        assert_eq!(fold("İstanbul"), fold("istanbul"));
        assert_eq!(fold("Boîte d’envoi"), fold("Boîte d'envoi"));
        // Several languages, one role.
        let spam = lookup("spam");
        assert!(spam.len() > 5 && spam.iter().all(|&(_, r)| r == Role::Junk));
        assert!(lookup("Projekte").is_empty());
        assert!(lookup("").is_empty());
    }

    #[test]
    fn resolve_tags() {
        assert_eq!(Lang::resolve("de-AT"), Some(lang("de")));
        assert_eq!(Lang::resolve("PT_br"), Some(lang("pt-BR")));
        assert_eq!(Lang::resolve("pt-PT"), Some(lang("pt")));
        assert_eq!(Lang::resolve("zh-TW"), Some(lang("zh-Hant")));
        assert_eq!(Lang::resolve("zh-Hant-HK"), Some(lang("zh-Hant")));
        assert_eq!(Lang::resolve("zh-CN"), Some(lang("zh-Hans")));
        assert_eq!(Lang::resolve("no"), Some(lang("nb")));
        assert_eq!(Lang::resolve("sr-Latn-RS"), Some(lang("sr-Latn")));
        assert_eq!(Lang::resolve("xx"), None);
        assert_eq!(Lang::resolve(""), None);
        assert_eq!(lang("pt-BR").parent(), Some(lang("pt")));
        assert_eq!(lang("pt").parent(), None);
        assert_eq!(lang("zh-Hant").parent(), None);
        assert_eq!(lang("vi"), "vi");
        assert!(languages().contains(&Lang::ENGLISH));
    }

    #[test]
    fn role_for_is_language_bound() {
        assert_eq!(role_for("INBOX", None), Some(Role::Inbox));
        assert_eq!(role_for("inbox", Some("de")), Some(Role::Inbox));
        assert_eq!(role_for("Gesendete Elemente", Some("de")), Some(Role::Sent));
        assert_eq!(
            role_for("gesendete elemente", Some("de-CH")),
            Some(Role::Sent)
        );
        assert_eq!(role_for("Thư đã gửi", Some("vi")), Some(Role::Sent));
        assert_eq!(role_for("Thùng rác", Some("vi")), Some(Role::Trash));
        // English defaults count everywhere.
        assert_eq!(role_for("Sent", Some("de")), Some(Role::Sent));
        assert_eq!(role_for("Deleted Items", Some("ja")), Some(Role::Trash));
        assert_eq!(role_for("Junk", None), Some(Role::Junk));
        // Another language's default is a user's folder.
        assert_eq!(role_for("Enviados", Some("de")), None);
        assert_eq!(role_for("Gesendete Elemente", Some("fr")), None);
        assert_eq!(role_for("Gesendete Elemente", None), None);
        assert_eq!(role_for("Отправленные", Some("uk")), None);
        // Inheritance: pt-BR sees pt's rows, pt does not see pt-BR's.
        assert_eq!(
            role_for("Itens Eliminados", Some("pt-BR")),
            Some(Role::Trash)
        );
        assert_eq!(role_for("Itens Excluídos", Some("pt")), None);
        // Unknown language: English only.
        assert_eq!(role_for("Gesendet", Some("xx")), None);
        assert_eq!(role_for("Sent", Some("xx")), Some(Role::Sent));
    }

    #[test]
    fn custom_folders_are_never_mapped() {
        for name in [
            "Dự án",
            "Projekte",
            "Kunden",
            "Clients 2024",
            "Sent/2019",
            "Sent ",
            " Sent",
            "Sent-Items",
            "Old Sent",
            "Archive 2020",
            "Entwurf",
            "Rechnungen",
            "Отчёты",
            "取引先",
            "",
        ] {
            assert_eq!(lookup(name), vec![], "{name:?}");
            for l in [
                None,
                Some("en"),
                Some("de"),
                Some("vi"),
                Some("ru"),
                Some("ja"),
            ] {
                assert_eq!(role_for(name, l), None, "{name:?} in {l:?}");
            }
        }
    }

    #[test]
    fn name_for_picks_current_default() {
        assert_eq!(name_for(Role::Sent, "de"), Some("Gesendete Elemente"));
        assert_eq!(name_for(Role::Trash, "de-DE"), Some("Gelöschte Elemente"));
        assert_eq!(name_for(Role::Sent, "en"), Some("Sent"));
        assert_eq!(name_for(Role::Archive, "en"), Some("Archive"));
        assert_eq!(name_for(Role::Inbox, "vi"), Some("INBOX"));
        assert_eq!(name_for(Role::Sent, "vi"), Some("Mục đã Gửi"));
        assert_eq!(name_for(Role::Trash, "pt-BR"), Some("Itens Excluídos"));
        assert_eq!(name_for(Role::Outbox, "pt-BR"), Some("Caixa de Saída"));
        assert_eq!(name_for(Role::Outbox, "pt"), Some("A Enviar"));
        assert_eq!(name_for(Role::Sent, "zh-TW"), Some("寄件備份"));
        assert_eq!(name_for(Role::Sent, "xx"), None);
        assert_eq!(name_for(Role::Inbox, "xx"), None);
        // Every (lang, role) name is recognized again in that language.
        for l in languages() {
            for role in Role::ALL {
                if let Some(n) = name_for(role, l.as_str()) {
                    assert_eq!(role_for(n, Some(l.as_str())), Some(role), "{l} {role} {n}");
                }
            }
        }
    }

    #[test]
    fn detects_vietnamese() {
        let names = ["INBOX", "Hộp thư đến", "Thư đã gửi", "Thư nháp", "Dự án"];
        let vi = detect_language(&names);
        assert_eq!(vi, Some(lang("vi")));
        let vi = vi.map(Lang::as_str);
        assert_eq!(role_for("Hộp thư đến", vi), Some(Role::Inbox));
        assert_eq!(role_for("Thư đã gửi", vi), Some(Role::Sent));
        assert_eq!(role_for("Thư nháp", vi), Some(Role::Drafts));
        assert_eq!(role_for("Dự án", vi), None);
    }

    #[test]
    fn detects_german() {
        let names = [
            "INBOX",
            "Gesendete Elemente",
            "Entwürfe",
            "Gelöschte Elemente",
            "Projekte",
        ];
        let de = detect_language(&names);
        assert_eq!(de, Some(lang("de")));
        assert_eq!(role_for("Projekte", de.map(Lang::as_str)), None);
        // Mixed with the English folders Thunderbird creates: still German.
        let names = [
            "INBOX",
            "Sent",
            "Drafts",
            "Trash",
            "Gesendete Elemente",
            "Entwürfe",
            "Archiv",
        ];
        assert_eq!(detect_language(&names), Some(lang("de")));
    }

    #[test]
    fn weak_evidence_falls_back_to_english() {
        assert_eq!(
            detect_language(&["INBOX", "Archive", "Projects", "Clients"]),
            Some(Lang::ENGLISH)
        );
        assert_eq!(
            detect_language(&["INBOX", "Sent", "Drafts", "Trash", "Junk"]),
            Some(Lang::ENGLISH)
        );
        // One non-English role only (two names for it count once).
        assert_eq!(
            detect_language(&["INBOX", "Archiv", "Sent", "Kunden"]),
            Some(Lang::ENGLISH)
        );
        assert_eq!(
            detect_language(&["Gesendet", "Gesendete Elemente", "Trash"]),
            Some(Lang::ENGLISH)
        );
        // Names shared by several languages (Spam) are English and prove nothing.
        assert_eq!(
            detect_language(&["Spam", "Papierkorb"]),
            Some(Lang::ENGLISH)
        );
        // Nothing at all.
        assert_eq!(detect_language(&["INBOX", "Projekte", "Dự án"]), None);
        assert_eq!(detect_language(&[]), None);
    }

    #[test]
    fn ties_are_not_evidence() {
        // "Papirkurv" is Trash in Danish and Norwegian; "Arkiv" is Archive in both (and in
        // Swedish): two roles each, a tie.
        assert_eq!(detect_language(&["Papirkurv", "Arkiv"]), None);
        // One more Danish-only name breaks the tie.
        assert_eq!(
            detect_language(&["Papirkurv", "Arkiv", "Kladder"]),
            Some(lang("da"))
        );
        // zh-Hans and zh-Hant share 草稿 and have no common parent row: with only that and one
        // name of each, they tie.
        assert_eq!(detect_language(&["草稿", "已删除邮件", "刪除的郵件"]), None);
        assert_eq!(
            detect_language(&["收件箱", "已发送邮件", "草稿"]),
            Some(lang("zh-Hans"))
        );
        assert_eq!(
            detect_language(&["收件匣", "寄件備份", "草稿"]),
            Some(lang("zh-Hant"))
        );
    }

    #[test]
    fn portuguese_family() {
        // Only names common to Portugal and Brazil: the family's primary language.
        assert_eq!(
            detect_language(&["Caixa de Entrada", "Rascunhos", "Itens Enviados"]),
            Some(lang("pt"))
        );
        // A Brazilian-only name decides.
        let br = [
            "Caixa de Entrada",
            "Rascunhos",
            "Itens Excluídos",
            "Lixo Eletrônico",
        ];
        assert_eq!(detect_language(&br), Some(lang("pt-BR")));
        let pt = [
            "Caixa de Entrada",
            "Rascunhos",
            "Itens Eliminados",
            "E-mail de Lixo",
        ];
        assert_eq!(detect_language(&pt), Some(lang("pt")));
    }

    #[test]
    fn every_language_is_detectable_from_its_own_defaults() {
        // A mailbox holding a language's first-choice names is detected as that language
        // (or as its primary language when every name is shared with it).
        for l in languages() {
            if l == Lang::ENGLISH {
                continue;
            }
            let names: Vec<&str> = Role::ALL
                .into_iter()
                .filter(|&r| r != Role::Inbox)
                .filter_map(|r| name_for(r, l.as_str()))
                .collect();
            let got = detect_language(&names);
            assert!(
                got == Some(l) || (got.is_some() && got == l.parent()),
                "{l}: {names:?} detected as {got:?}"
            );
        }
    }
}
