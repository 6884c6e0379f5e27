//! What copying a user's address books and calendars needs (pure: no I/O): which
//! destination collection each source collection goes to, and which resources are missing
//! there. Resources are matched by their UID (RFC 6350 `UID`, RFC 5545 `UID`: a calendar
//! object resource holds one UID, with its recurrence exceptions), so a second pass copies
//! nothing twice whatever the destination named them.

use std::collections::{BTreeMap, BTreeSet};

/// Address books (CardDAV) or calendars (CalDAV).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    AddressBook,
    Calendar,
}

impl Kind {
    pub fn content_type(self) -> &'static str {
        match self {
            Kind::AddressBook => "text/vcard; charset=utf-8",
            Kind::Calendar => "text/calendar; charset=utf-8",
        }
    }

    pub fn noun(self) -> &'static str {
        match self {
            Kind::AddressBook => "address book",
            Kind::Calendar => "calendar",
        }
    }
}

/// A collection as found on a server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Collection {
    pub kind: Kind,
    /// Its path, ending in `/`.
    pub href: String,
    pub display_name: Option<String>,
    pub color: Option<String>,
}

impl Collection {
    /// The last segment of its path: `contacts` for `/user/contacts/`.
    pub fn segment(&self) -> &str {
        self.href
            .trim_end_matches('/')
            .rsplit('/')
            .next()
            .unwrap_or_default()
    }
}

/// Names servers and clients give the collection a new account starts with.
const DEFAULT_NAMES: [&str; 7] = [
    "default",
    "addressbook",
    "contacts",
    "calendar",
    "personal",
    "home",
    "calendars",
];

fn is_default_name(segment: &str) -> bool {
    DEFAULT_NAMES
        .iter()
        .any(|d| d.eq_ignore_ascii_case(segment))
}

/// Where a source collection goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// A collection the destination has.
    Existing(String),
    /// A collection to create, by its last path segment under the destination's home set.
    Create(String),
}

/// Each source collection's destination: the one of the same name; else, for the source's
/// default collection (its only one of the kind, or one with a default's name), the
/// destination's default; else a new one of the same name. Two source collections never
/// share a destination.
pub fn map_collections(source: &[Collection], destination: &[Collection]) -> Vec<Target> {
    let mut taken: BTreeSet<&str> = BTreeSet::new();
    let mut out: Vec<Option<Target>> = vec![None; source.len()];
    for (i, s) in source.iter().enumerate() {
        if let Some(d) = destination
            .iter()
            .find(|d| d.kind == s.kind && d.segment() == s.segment())
        {
            taken.insert(&d.href);
            out[i] = Some(Target::Existing(d.href.clone()));
        }
    }
    for (i, s) in source.iter().enumerate() {
        if out[i].is_some() {
            continue;
        }
        let of_kind = |side: &[Collection]| side.iter().filter(|c| c.kind == s.kind).count();
        let source_default = of_kind(source) == 1 || is_default_name(s.segment());
        let destination_default = destination
            .iter()
            .filter(|d| d.kind == s.kind && !taken.contains(d.href.as_str()))
            .find(|d| of_kind(destination) == 1 || is_default_name(d.segment()));
        out[i] = Some(match destination_default {
            Some(d) if source_default => {
                taken.insert(&d.href);
                Target::Existing(d.href.clone())
            }
            _ => Target::Create(s.segment().to_owned()),
        });
    }
    out.into_iter().flatten().collect()
}

/// Content lines unfolded (RFC 5545 3.1 / RFC 6350 3.2), with CRLF line ends.
pub fn unfold(data: &str) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for raw in data.split('\n') {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        if let Some(rest) = line.strip_prefix([' ', '\t'])
            && let Some(last) = lines.last_mut()
        {
            last.push_str(rest);
        } else if !line.is_empty() {
            lines.push(line.to_owned());
        }
    }
    lines
}

/// The resource's UID: the first `UID` property (a calendar object resource's components
/// all share it).
pub fn uid(data: &str) -> Option<String> {
    unfold(data).into_iter().find_map(|l| {
        let (name, value) = l.split_once(':')?;
        let name = name.split(';').next()?;
        name.eq_ignore_ascii_case("UID")
            .then(|| value.trim().to_owned())
    })
}

/// The resource as compared: its content lines unfolded, property and parameter names in
/// upper case, sorted, without `PRODID` (a server may stamp its own). Servers re-serialize
/// what they store (Radicale sorts properties, upper-cases parameter names and refolds
/// lines; Xandikos reorders iCalendar properties), so byte equality would call every copy
/// different; a changed value still differs.
pub fn comparable(data: &str) -> Vec<String> {
    let mut lines: Vec<String> = unfold(data)
        .into_iter()
        .filter_map(|l| {
            let (head, value) = l.split_once(':').unwrap_or((l.as_str(), ""));
            let head = head.to_ascii_uppercase();
            let name = head.split(';').next().unwrap_or_default();
            // `item1.TEL`: a group prefix does not change the property.
            let name = name.rsplit('.').next().unwrap_or_default();
            (name != "PRODID").then(|| format!("{head}:{value}"))
        })
        .collect();
    lines.sort();
    lines
}

/// One resource as read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Item {
    /// Its path.
    pub href: String,
    pub data: String,
}

impl Item {
    /// Its file name: the last segment of its path, unless that is empty or a dot segment
    /// (which would name the collection or its parent), then one made from its key.
    pub fn name(&self) -> String {
        let last = self.href.rsplit('/').next().unwrap_or_default();
        if last.is_empty()
            || last == "."
            || last == ".."
            || last.contains("%2F")
            || last.contains("%2f")
        {
            let safe: String = self
                .key()
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '-' {
                        c
                    } else {
                        '_'
                    }
                })
                .collect();
            format!("{safe}.item")
        } else {
            last.to_owned()
        }
    }

    /// The UID, or the file name for a resource without one.
    pub fn key(&self) -> String {
        uid(&self.data)
            .unwrap_or_else(|| format!("name:{}", self.href.rsplit('/').next().unwrap_or_default()))
    }
}

/// A source collection against its destination.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ItemDiff {
    /// Source items missing on the destination (indexes into the source list).
    pub missing: Vec<usize>,
    /// Keys present on both with other content: kept on the destination.
    pub differ: Vec<String>,
    pub equal: usize,
}

/// Which source items the destination lacks, by key, counted as multisets (two source items
/// with one UID need two on the destination).
pub fn diff_items(source: &[Item], destination: &[Item]) -> ItemDiff {
    let mut theirs: BTreeMap<String, Vec<Vec<String>>> = BTreeMap::new();
    for d in destination {
        theirs.entry(d.key()).or_default().push(comparable(&d.data));
    }
    let mut out = ItemDiff::default();
    for (i, s) in source.iter().enumerate() {
        let key = s.key();
        let ours = comparable(&s.data);
        match theirs.get_mut(&key) {
            Some(list) if !list.is_empty() => {
                if let Some(j) = list.iter().position(|c| *c == ours) {
                    list.remove(j);
                    out.equal += 1;
                } else {
                    list.remove(0);
                    out.differ.push(key);
                }
            }
            _ => out.missing.push(i),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(kind: Kind, href: &str) -> Collection {
        Collection {
            kind,
            href: href.into(),
            display_name: None,
            color: None,
        }
    }

    #[test]
    fn collections_map_by_name_then_default_onto_default_then_new() {
        let source = [
            col(Kind::AddressBook, "/u/contacts/"),
            col(Kind::Calendar, "/u/personal/"),
            col(Kind::Calendar, "/u/work/"),
            col(Kind::Calendar, "/u/holidays/"),
        ];
        let destination = [
            col(Kind::AddressBook, "/x/addressbook/"),
            col(Kind::Calendar, "/x/calendar/"),
            col(Kind::Calendar, "/x/work/"),
        ];
        assert_eq!(
            map_collections(&source, &destination),
            [
                Target::Existing("/x/addressbook/".into()),
                Target::Existing("/x/calendar/".into()),
                Target::Existing("/x/work/".into()),
                Target::Create("holidays".into()),
            ]
        );
    }

    #[test]
    fn two_source_collections_never_share_a_destination() {
        let source = [
            col(Kind::Calendar, "/u/default/"),
            col(Kind::Calendar, "/u/home/"),
        ];
        let destination = [col(Kind::Calendar, "/x/calendar/")];
        assert_eq!(
            map_collections(&source, &destination),
            [
                Target::Existing("/x/calendar/".into()),
                Target::Create("home".into())
            ]
        );
    }

    #[test]
    fn uids_are_read_from_folded_lines_and_contents_compared_unfolded() {
        let a = "BEGIN:VCARD\r\nVERSION:4.0\r\nUID:urn:uuid:12\r\n 34\r\nFN:Ana\r\nEND:VCARD\r\n";
        let b =
            "BEGIN:VCARD\nVERSION:4.0\nUID:urn:uuid:1234\nFN:Ana\nPRODID:-//Other//EN\nEND:VCARD\n";
        assert_eq!(uid(a).as_deref(), Some("urn:uuid:1234"));
        assert_eq!(comparable(a), comparable(b));
        let c = b.replace("FN:Ana", "FN:Anna");
        assert_ne!(comparable(a), comparable(&c));
    }

    #[test]
    fn a_dot_segment_never_names_the_resource() {
        let item = |href: &str| Item {
            href: href.into(),
            data: "BEGIN:VCARD\r\nUID:urn:uuid:7/8\r\nEND:VCARD\r\n".into(),
        };
        assert_eq!(item("/u/c/ana.vcf").name(), "ana.vcf");
        assert_eq!(item("/u/c/..").name(), "urn_uuid_7_8.item");
        assert_eq!(item("/u/c/").name(), "urn_uuid_7_8.item");
    }

    #[test]
    fn missing_items_by_uid_as_multisets_and_differences_kept() {
        let item = |href: &str, uid: &str, fn_: &str| Item {
            href: href.into(),
            data: format!("BEGIN:VCARD\r\nUID:{uid}\r\nFN:{fn_}\r\nEND:VCARD\r\n"),
        };
        let source = [
            item("/u/c/1.vcf", "1", "Ana"),
            item("/u/c/2.vcf", "2", "Ben"),
            item("/u/c/3.vcf", "3", "Cy"),
        ];
        let destination = [
            item("/x/c/other-name.vcf", "1", "Ana"),
            item("/x/c/2.vcf", "2", "Benjamin"),
        ];
        let d = diff_items(&source, &destination);
        assert_eq!(d.missing, vec![2]);
        assert_eq!(d.differ, vec!["2".to_owned()]);
        assert_eq!(d.equal, 1);
    }
}
