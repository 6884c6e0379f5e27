//! Where a mailbox's files are: the manifest's `path` with the mailbox's names put in.

use std::path::PathBuf;

/// A `path` with `{user}`, `{local}`, `{domain}` and `{address}` placeholders.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PathTemplate {
    parts: Vec<Part>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    Text(String),
    User,
    Local,
    Domain,
    Address,
}

/// Why a `path` is not a template.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("`{0}` is not an absolute path")]
    NotAbsolute(String),
    #[error(
        "`{{{0}}}` is not a placeholder: use `{{user}}`, `{{local}}`, `{{domain}}` or `{{address}}`"
    )]
    Unknown(String),
    #[error("a `{{` without its `}}`")]
    Unclosed,
}

impl PathTemplate {
    pub fn parse(text: &str) -> Result<PathTemplate, PathError> {
        if !text.starts_with('/') {
            return Err(PathError::NotAbsolute(text.to_owned()));
        }
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                parts.push(Part::Text(rest[..open].to_owned()));
            }
            let after = &rest[open + 1..];
            let close = after.find('}').ok_or(PathError::Unclosed)?;
            parts.push(match &after[..close] {
                "user" => Part::User,
                "local" => Part::Local,
                "domain" => Part::Domain,
                "address" => Part::Address,
                other => return Err(PathError::Unknown(other.to_owned())),
            });
            rest = &after[close + 1..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_owned()));
        }
        Ok(PathTemplate { parts })
    }

    /// Whether different mailboxes get different paths.
    pub fn varies(&self) -> bool {
        self.parts.iter().any(|p| !matches!(p, Part::Text(_)))
    }

    /// The path of the mailbox `address` whose source login name is `user`. A name that
    /// would climb out of the template's directory (`..`, `/`) is refused.
    pub fn for_mailbox(&self, address: &str, user: &str) -> Result<PathBuf, String> {
        let (local, domain) = address.rsplit_once('@').unwrap_or((address, ""));
        let mut out = String::new();
        for p in &self.parts {
            let value = match p {
                Part::Text(t) => {
                    out.push_str(t);
                    continue;
                }
                Part::User => user,
                Part::Local => local,
                Part::Domain => domain,
                Part::Address => address,
            };
            if value.is_empty() || value == "." || value == ".." || value.contains(['/', '\0']) {
                return Err(format!(
                    "`{value}` cannot be part of a path (mailbox {address})"
                ));
            }
            out.push_str(value);
        }
        Ok(PathBuf::from(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_filled_and_checked() {
        let t = PathTemplate::parse("/var/vmail/{domain}/{local}/Maildir").unwrap();
        assert!(t.varies());
        assert_eq!(
            t.for_mailbox("alice@example.com", "alice").unwrap(),
            PathBuf::from("/var/vmail/example.com/alice/Maildir")
        );
        let u = PathTemplate::parse("/home/{user}/mbox").unwrap();
        assert!(u.for_mailbox("a@b", "../root").is_err());
        assert!(!PathTemplate::parse("/srv/mail").unwrap().varies());
        assert_eq!(
            PathTemplate::parse("/x/{name}"),
            Err(PathError::Unknown("name".into()))
        );
        assert_eq!(
            PathTemplate::parse("mail/{user}"),
            Err(PathError::NotAbsolute("mail/{user}".into()))
        );
        assert_eq!(PathTemplate::parse("/x/{user"), Err(PathError::Unclosed));
    }
}
