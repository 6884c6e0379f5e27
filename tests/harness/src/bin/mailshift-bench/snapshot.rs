//! What a mailbox holds, per folder, read directly from a Dovecot's storage with
//! `doveadm fetch` (not through any tool under test), and comparisons of two such views.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use anyhow::{Context, Result};
use mailshift_harness::Dovecot;

/// One folder: message count, total size, flag counts and the INTERNALDATE multiset.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Folder {
    pub count: usize,
    /// Sum of the messages' sizes with CRLF line ends (RFC822.SIZE).
    pub bytes: u64,
    /// How many messages carry each flag or keyword (`\Recent` ignored).
    pub flags: BTreeMap<String, usize>,
    /// Sorted INTERNALDATEs.
    pub dates: Vec<String>,
    /// Sorted (size, Message-ID) pairs: identifies the messages without reading bodies.
    pub ids: Vec<(u64, String)>,
}

#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Folder name (UTF-8, `/` between levels) → contents.
    pub folders: BTreeMap<String, Folder>,
}

impl Snapshot {
    pub fn take(dovecot: &Dovecot, user: &str) -> Result<Snapshot> {
        let sep = dovecot.separator();
        // One line per message; tab-separated, with a header line.
        let out = dovecot
            .doveadm(&[
                "-f",
                "tab",
                "fetch",
                "-u",
                user,
                "mailbox size.virtual date.received hdr.message-id flags",
                "all",
            ])
            .context("doveadm fetch")?;
        let mut snap = Snapshot::default();
        // Folders without messages appear only in the mailbox list.
        let list = dovecot.doveadm(&["mailbox", "list", "-u", user])?;
        for name in list.lines().filter(|l| !l.trim().is_empty()) {
            snap.folders
                .entry(name.trim().replace(sep, "/"))
                .or_default();
        }
        for line in out.lines().skip(1) {
            let f: Vec<&str> = line.split('\t').collect();
            if f.len() < 5 {
                continue;
            }
            let folder = snap.folders.entry(f[0].replace(sep, "/")).or_default();
            let size: u64 = f[1].parse().unwrap_or(0);
            folder.count += 1;
            folder.bytes += size;
            folder.dates.push(f[2].to_string());
            folder.ids.push((size, f[3].trim().to_string()));
            for flag in f[4].split_whitespace() {
                if flag != "\\Recent" {
                    *folder.flags.entry(flag.to_string()).or_default() += 1;
                }
            }
        }
        for f in snap.folders.values_mut() {
            f.dates.sort();
            f.ids.sort();
        }
        Ok(snap)
    }

    pub fn total(&self) -> usize {
        self.folders.values().map(|f| f.count).sum()
    }
}

/// A source/destination comparison.
pub struct Comparison {
    lines: Vec<String>,
    folders: usize,
    equal_counts: usize,
    total: (usize, usize),
    bytes: (u64, u64),
    /// Net change of each flag's count over all folders, where it changed.
    flag_deltas: BTreeMap<String, i64>,
    date_folders: usize,
    id_folders: usize,
    identical: bool,
    counts_equal: bool,
}

impl Comparison {
    pub fn new(a: &Snapshot, b: &Snapshot) -> Comparison {
        let mut c = Comparison {
            lines: Vec::new(),
            folders: 0,
            equal_counts: 0,
            total: (a.total(), b.total()),
            bytes: (
                a.folders.values().map(|f| f.bytes).sum(),
                b.folders.values().map(|f| f.bytes).sum(),
            ),
            flag_deltas: BTreeMap::new(),
            date_folders: 0,
            id_folders: 0,
            identical: true,
            counts_equal: true,
        };
        for (name, fa) in &a.folders {
            c.folders += 1;
            let Some(fb) = b.folders.get(name) else {
                if fa.count > 0 {
                    c.lines
                        .push(format!("{name}: missing ({} messages)", fa.count));
                    c.identical = false;
                    c.counts_equal = false;
                }
                continue;
            };
            if fa.count == fb.count {
                c.equal_counts += 1;
            } else {
                c.counts_equal = false;
                c.lines
                    .push(format!("{name}: {} → {} messages", fa.count, fb.count));
            }
            if fa == fb {
                continue;
            }
            c.identical = false;
            if fa.bytes != fb.bytes {
                c.lines
                    .push(format!("{name}: {} → {} bytes", fa.bytes, fb.bytes));
            }
            if fa.ids != fb.ids {
                c.id_folders += 1;
                let set_b: std::collections::BTreeSet<&(u64, String)> = fb.ids.iter().collect();
                let set_a: std::collections::BTreeSet<&(u64, String)> = fa.ids.iter().collect();
                let missing = fa.ids.iter().filter(|x| !set_b.contains(x)).count();
                let extra = fb.ids.iter().filter(|x| !set_a.contains(x)).count();
                c.lines.push(format!(
                    "{name}: (size, Message-ID) pairs differ: {missing} missing, {extra} extra"
                ));
            }
            if fa.dates != fb.dates {
                c.date_folders += 1;
                let differ = fa
                    .dates
                    .iter()
                    .zip(&fb.dates)
                    .filter(|(x, y)| x != y)
                    .count();
                c.lines.push(format!(
                    "{name}: INTERNALDATEs differ ({differ} of {} in sorted order)",
                    fa.count
                ));
            }
            if fa.flags != fb.flags {
                let mut keys: Vec<&String> = fa.flags.keys().chain(fb.flags.keys()).collect();
                keys.sort();
                keys.dedup();
                let mut diffs = Vec::new();
                for k in keys {
                    let x = fa.flags.get(k).copied().unwrap_or(0);
                    let y = fb.flags.get(k).copied().unwrap_or(0);
                    if x != y {
                        diffs.push(format!("{k} {x}→{y}"));
                        *c.flag_deltas.entry(k.clone()).or_default() += y as i64 - x as i64;
                    }
                }
                c.lines
                    .push(format!("{name}: flags differ: {}", diffs.join(", ")));
            }
        }
        for (name, fb) in &b.folders {
            if !a.folders.contains_key(name) && fb.count > 0 {
                c.identical = false;
                c.counts_equal = false;
                c.lines
                    .push(format!("{name}: extra folder ({} messages)", fb.count));
            }
        }
        c
    }

    /// Whether every folder has the same message count on both sides.
    pub fn messages_equal(&self) -> bool {
        self.counts_equal
    }

    /// Whether counts, sizes, Message-IDs, dates and flags all agree.
    pub fn identical(&self) -> bool {
        self.identical
    }

    pub fn summary(&self) -> String {
        let mut s = format!(
            "{}/{} messages, {}/{} folders equal in count",
            self.total.1, self.total.0, self.equal_counts, self.folders
        );
        if self.identical {
            s.push_str("; sizes, Message-IDs, INTERNALDATEs, flags equal");
            return s;
        }
        let mut differ = Vec::new();
        if self.bytes.0 != self.bytes.1 {
            let delta = self.bytes.1 as i64 - self.bytes.0 as i64;
            let per = if self.total.1 > 0 && self.total.0 == self.total.1 {
                format!(", {:+} B/message", delta as f64 / self.total.1 as f64)
            } else {
                String::new()
            };
            differ.push(format!("size {delta:+} B{per}"));
        }
        if self.id_folders > 0 {
            differ.push(format!(
                "(size, Message-ID) sets in {} folders",
                self.id_folders
            ));
        }
        if self.date_folders > 0 {
            differ.push(format!("INTERNALDATEs in {} folders", self.date_folders));
        }
        if !self.flag_deltas.is_empty() {
            let f: Vec<String> = self
                .flag_deltas
                .iter()
                .map(|(k, d)| format!("{k} {d:+}"))
                .collect();
            differ.push(format!("flags {}", f.join(" ")));
        }
        if !differ.is_empty() {
            let _ = write!(s, "; differ: {}", differ.join("; "));
        }
        s
    }

    pub fn details(&self) -> String {
        self.lines.join("\n")
    }
}
