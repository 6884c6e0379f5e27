//! A Postfix lookup table's source text (`virtual_alias_maps`): `key value` lines, `#`
//! comments, a line starting with white space continuing the one before (postmap(1)).
//! An alias's value is a list of addresses separated by commas or white space.

use std::collections::BTreeMap;

/// The entries of `text`: key → targets, in the table's own order of keys (a key listed
/// twice: the first wins, as postmap warns and keeps).
pub fn parse(text: &str) -> BTreeMap<String, Vec<String>> {
    let mut logical: Vec<String> = Vec::new();
    for line in text.lines() {
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        if line.starts_with([' ', '\t']) {
            if let Some(last) = logical.last_mut() {
                last.push(' ');
                last.push_str(line.trim());
            }
            continue;
        }
        logical.push(line.trim().to_owned());
    }
    let mut out = BTreeMap::new();
    for l in logical {
        let (key, value) = l.split_once(char::is_whitespace).unwrap_or((&l, ""));
        out.entry(key.to_owned()).or_insert_with(|| targets(value));
    }
    out
}

/// The addresses of an alias's value.
pub fn targets(value: &str) -> Vec<String> {
    value
        .split([',', ' ', '\t'])
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect()
}

/// `text` with `key`'s entry set to `targets`: its line (and continuation lines) replaced,
/// or a new line appended; everything else kept.
pub fn upsert(text: &str, key: &str, targets: &[String]) -> String {
    let entry = format!("{key} {}\n", targets.join(", "));
    let mut out = String::with_capacity(text.len() + entry.len());
    let mut replaced = false;
    let mut skipping = false;
    for line in text.lines() {
        if skipping && line.starts_with([' ', '\t']) && !line.trim().is_empty() {
            continue;
        }
        skipping = false;
        let is_entry = !line.trim().is_empty()
            && !line.trim_start().starts_with('#')
            && !line.starts_with([' ', '\t']);
        if !replaced && is_entry && line.split_whitespace().next() == Some(key) {
            out.push_str(&entry);
            replaced = true;
            skipping = true;
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    if !replaced {
        out.push_str(&entry);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_with_lists_and_continuations() {
        let text = "# aliases\nsales@example.com alice@example.com,\n    bob@example.com\npostmaster@example.com alice@example.com\nsales@example.com carol@example.com\n";
        let m = parse(text);
        assert_eq!(m.len(), 2);
        assert_eq!(
            m["sales@example.com"],
            ["alice@example.com", "bob@example.com"]
        );
        assert_eq!(m["postmaster@example.com"], ["alice@example.com"]);
    }

    #[test]
    fn upsert_replaces_a_whole_entry_or_appends() {
        let text = "# keep\na@x b@x,\n  c@x\nd@x e@x\n";
        assert_eq!(
            upsert(text, "a@x", &["f@x".into(), "g@y".into()]),
            "# keep\na@x f@x, g@y\nd@x e@x\n"
        );
        assert_eq!(
            upsert(text, "h@x", &["i@x".into()]),
            format!("{text}h@x i@x\n")
        );
    }
}
