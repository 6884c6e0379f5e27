//! Dovecot's passwd-file: `user:password:uid:gid:gecos:home:shell:extra_fields`, one account
//! a line, `#` comments. Read whole; written by appending or replacing single lines, every
//! other line (comments, other accounts, their fields) kept byte for byte.

/// One account line.
#[derive(Clone, PartialEq, Eq)]
pub struct Entry {
    pub user: String,
    /// The password field as stored.
    pub password: String,
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Entry {{ user: {:?}, .. }}", self.user)
    }
}

/// The accounts of a passwd-file's text.
pub fn parse(text: &str) -> Vec<Entry> {
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .filter_map(|l| {
            let mut fields = l.splitn(3, ':');
            let user = fields.next()?.trim();
            let password = fields.next().unwrap_or("");
            (!user.is_empty()).then(|| Entry {
                user: user.to_owned(),
                password: password.to_owned(),
            })
        })
        .collect()
}

/// `text` with `user`'s password field set to `password`: its line changed in place (the
/// other fields kept), or a new `user:password::::::` line appended.
pub fn upsert(text: &str, user: &str, password: &str) -> String {
    let mut out = String::with_capacity(text.len() + user.len() + password.len() + 8);
    let mut found = false;
    for line in text.lines() {
        let mut fields = line.splitn(3, ':');
        let name = fields.next().unwrap_or("");
        if !found && !line.trim_start().starts_with('#') && name.trim() == user {
            found = true;
            let _ = fields.next();
            match fields.next() {
                Some(rest) => out.push_str(&format!("{name}:{password}:{rest}\n")),
                None => out.push_str(&format!("{name}:{password}\n")),
            }
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    if !found {
        out.push_str(&format!("{user}:{password}::::::\n"));
    }
    out
}

/// Whether `s` can stand in a passwd-file field (no `:` separator, no line break).
pub fn fits(s: &str) -> bool {
    !s.contains([':', '\n', '\r'])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_accounts_and_skips_comments() {
        let text = "# users\nalice@example.com:{SHA512-CRYPT}$6$x$y:1000:1000::/home/alice::\n\nbob:{PLAIN}pw\n";
        let e = parse(text);
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].user, "alice@example.com");
        assert_eq!(e[0].password, "{SHA512-CRYPT}$6$x$y");
        assert_eq!(e[1].password, "{PLAIN}pw");
    }

    #[test]
    fn upsert_changes_one_field_or_appends() {
        let text = "# keep me\nalice:{PLAIN}old:1000:1000::/home/alice::userdb_quota_rule=*:storage=1G\nbob:{PLAIN}b::::::\n";
        let changed = upsert(text, "alice", "{SHA512-CRYPT}$6$n");
        assert_eq!(
            changed,
            "# keep me\nalice:{SHA512-CRYPT}$6$n:1000:1000::/home/alice::userdb_quota_rule=*:storage=1G\nbob:{PLAIN}b::::::\n"
        );
        let added = upsert(text, "carol@example.com", "{PLAIN}c");
        assert!(added.starts_with(text));
        assert!(added.ends_with("carol@example.com:{PLAIN}c::::::\n"));
        assert_eq!(upsert("", "a", "{PLAIN}x"), "a:{PLAIN}x::::::\n");
    }
}
