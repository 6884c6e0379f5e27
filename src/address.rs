//! Mailbox addresses and domains as mailshift compares them. Every map keyed by an address,
//! every set the planner compares with what a relay holds, and every entry a relay is given
//! is an [`Address`] (or a [`Domain`]), so `JÖRG@example.com` is one mailbox everywhere and a
//! map cannot be asked with a spelling that was not folded. (The planner once lowered case
//! by Unicode's rules where the relay lowered only ASCII.)

use std::fmt;

use serde::{Deserialize, Serialize};

/// A mailbox address in its compared form: trimmed, lower case by Unicode's rules (Postfix
/// folds UTF-8 lookup keys the same way with SMTPUTF8), without a trailing dot on the
/// domain. Text from a person is checked with [`Address::parse`]; [`Address::of`] folds text
/// that was checked when the manifest was read.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(into = "String", from = "String")]
pub struct Address(String);

/// Why text is not an address.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InvalidAddress {
    #[error("has no `@`")]
    NoAt,
    #[error("has an empty local part")]
    EmptyLocal,
    #[error("has a space or control character in its local part")]
    BadLocal,
    #[error("has a domain that is not a host name: {0}")]
    BadDomain(String),
}

impl Address {
    /// The compared form of `text`, which is taken to be an address.
    pub fn of(text: &str) -> Address {
        Address(fold(text))
    }

    /// `local@domain` with a plausible local part and a host name as domain.
    pub fn parse(text: &str) -> Result<Address, InvalidAddress> {
        let (local, domain) = text.trim().rsplit_once('@').ok_or(InvalidAddress::NoAt)?;
        if local.is_empty() {
            return Err(InvalidAddress::EmptyLocal);
        }
        if local.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(InvalidAddress::BadLocal);
        }
        host_name(domain).map_err(InvalidAddress::BadDomain)?;
        Ok(Address::of(text))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The part after the last `@`.
    pub fn domain(&self) -> Domain {
        Domain(self.0.rsplit_once('@').map_or("", |(_, d)| d).to_owned())
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A mail domain (or a DNS name) in its compared form: trimmed, without the root's trailing
/// dot, lower case by the same rules as [`Address`], so an address's domain equals the
/// domain it belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(into = "String", from = "String")]
pub struct Domain(String);

impl Domain {
    pub fn of(text: &str) -> Domain {
        Domain(fold(text))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Domain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

// Read back folded: a record written by hand or by an older version cannot hold a key
// that no lookup finds.
impl From<String> for Address {
    fn from(text: String) -> Address {
        Address::of(&text)
    }
}

impl From<Address> for String {
    fn from(a: Address) -> String {
        a.0
    }
}

impl From<String> for Domain {
    fn from(text: String) -> Domain {
        Domain::of(&text)
    }
}

impl From<Domain> for String {
    fn from(d: Domain) -> String {
        d.0
    }
}

fn fold(text: &str) -> String {
    text.trim().trim_end_matches('.').to_lowercase()
}

/// A DNS host name (letters, digits, '-', '_' in labels), without a trailing dot; the error
/// says what is wrong with it.
pub fn host_name(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("empty".into());
    }
    if s.len() > 253 {
        return Err("longer than 253 characters".into());
    }
    for label in s.split('.') {
        if label.is_empty() {
            return Err("has an empty label".into());
        }
        if label.len() > 63 {
            return Err(format!("label `{label}` is longer than 63 characters"));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(format!("label `{label}` starts or ends with '-'"));
        }
        if let Some(c) = label
            .chars()
            .find(|c| !(c.is_alphanumeric() || *c == '-' || *c == '_'))
        {
            return Err(format!("`{c}` is not allowed in a host name"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_address_whatever_the_spelling() {
        assert_eq!(
            Address::of(" JÖRG@Example.COM ").as_str(),
            "jörg@example.com"
        );
        assert_eq!(
            Address::of("jörg@example.com"),
            Address::of("JÖRG@EXAMPLE.COM")
        );
        // Stable: folding the folded form changes nothing.
        let once = Address::of("ÅSA@Ex.org");
        assert_eq!(Address::of(once.as_str()), once);
        assert_eq!(
            Address::of("JÖRG@Example.COM").domain(),
            Domain::of("EXAMPLE.com.")
        );
        assert_eq!(Domain::of("Example.COM.").as_str(), "example.com");
    }

    #[test]
    fn parse_checks_both_parts() {
        assert_eq!(
            Address::parse("A@Example.com"),
            Ok(Address::of("a@example.com"))
        );
        assert_eq!(Address::parse("example.com"), Err(InvalidAddress::NoAt));
        assert_eq!(
            Address::parse("@example.com"),
            Err(InvalidAddress::EmptyLocal)
        );
        assert_eq!(
            Address::parse("a b@example.com"),
            Err(InvalidAddress::BadLocal)
        );
        assert!(matches!(
            Address::parse("a@"),
            Err(InvalidAddress::BadDomain(_))
        ));
        assert!(matches!(
            Address::parse("a@exa mple.com"),
            Err(InvalidAddress::BadDomain(_))
        ));
    }

    #[test]
    fn serialized_as_the_plain_text_and_read_back_folded() {
        let a = Address::of("Jörg@Example.com");
        assert_eq!(serde_json::to_string(&a).unwrap(), "\"jörg@example.com\"");
        let back: Address = serde_json::from_str("\"JÖRG@example.com\"").unwrap();
        assert_eq!(back, a);
    }
}
