//! Password hashes as Dovecot stores them: `{SCHEME}hash`, or a bare hash in the
//! server's default scheme; and which schemes a server can check.

/// The schemes Dovecot 2.3 checks (`doveadm pw -l` of Debian's 2.3.19, less `OTP`, which
/// needs state of its own). Used when `spec.accounts.schemes` does not list the new
/// server's own; `tests/accounts.rs` holds it against the real `doveadm pw -l`.
pub const DOVECOT: &[&str] = &[
    "SHA1",
    "SSHA512",
    "SCRAM-SHA-256",
    "BLF-CRYPT",
    "PLAIN",
    "HMAC-MD5",
    "SHA512",
    "SHA",
    "DES-CRYPT",
    "CRYPT",
    "SSHA",
    "MD5-CRYPT",
    "PLAIN-MD4",
    "PLAIN-MD5",
    "SCRAM-SHA-1",
    "SHA512-CRYPT",
    "CLEAR",
    "CLEARTEXT",
    "ARGON2I",
    "ARGON2ID",
    "SSHA256",
    "MD5",
    "PBKDF2",
    "SHA256",
    "CRAM-MD5",
    "PLAIN-TRUNC",
    "SHA256-CRYPT",
    "SMD5",
    "DIGEST-MD5",
    "LDAP-MD5",
];

/// A stored password hash with the scheme it is in.
#[derive(Clone, PartialEq, Eq)]
pub struct Hash {
    /// Upper case, e.g. `SHA512-CRYPT`.
    pub scheme: String,
    /// The whole stored field, prefix included when it had one.
    pub stored: String,
}

// A hash is a secret too (an offline guessing target): never printed.
impl std::fmt::Debug for Hash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Hash {{ scheme: {}, .. }}", self.scheme)
    }
}

impl Hash {
    /// The hash in `field`, in `default_scheme` when it has no `{SCHEME}` prefix. A
    /// crypt(3) hash (`$6$…`, `$2y$…`) without a prefix is in its crypt scheme whatever the
    /// default, as Dovecot's CRYPT scheme reads it.
    pub fn parse(field: &str, default_scheme: &str) -> Hash {
        let scheme = match field.strip_prefix('{').and_then(|r| r.split_once('}')) {
            Some((scheme, _)) => scheme.to_ascii_uppercase(),
            None => default_scheme.to_ascii_uppercase(),
        };
        Hash {
            scheme,
            stored: field.to_owned(),
        }
    }

    /// The field as a server whose default scheme may differ must store it: with its
    /// `{SCHEME}` prefix.
    pub fn portable(&self) -> String {
        if self.stored.starts_with('{') {
            self.stored.clone()
        } else {
            format!("{{{}}}{}", self.scheme, self.stored)
        }
    }

    /// Whether a server that checks `schemes` can check this hash. Plain text in any
    /// spelling counts as plain text.
    pub fn understood_by(&self, schemes: &[String]) -> bool {
        let plain = |s: &str| matches!(s, "PLAIN" | "CLEAR" | "CLEARTEXT");
        schemes.iter().any(|s| {
            s.eq_ignore_ascii_case(&self.scheme)
                || (plain(&self.scheme) && plain(&s.to_ascii_uppercase()))
        })
    }
}

/// The schemes of the new server: as listed, or Dovecot's.
pub fn destination_schemes(listed: &[String]) -> Vec<String> {
    if listed.is_empty() {
        DOVECOT.iter().map(|s| (*s).to_owned()).collect()
    } else {
        listed.iter().map(|s| s.to_ascii_uppercase()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_or_default() {
        let h = Hash::parse("{SHA512-CRYPT}$6$abc$def", "CRYPT");
        assert_eq!(h.scheme, "SHA512-CRYPT");
        assert_eq!(h.portable(), "{SHA512-CRYPT}$6$abc$def");
        let bare = Hash::parse("$1$salt$hash", "md5-crypt");
        assert_eq!(bare.scheme, "MD5-CRYPT");
        assert_eq!(bare.portable(), "{MD5-CRYPT}$1$salt$hash");
        assert_eq!(Hash::parse("{ssha}xyz", "CRYPT").scheme, "SSHA");
    }

    #[test]
    fn schemes_understood() {
        let dovecot = destination_schemes(&[]);
        assert!(Hash::parse("{ARGON2ID}x", "CRYPT").understood_by(&dovecot));
        assert!(!Hash::parse("{NOPE}x", "CRYPT").understood_by(&dovecot));
        let only = destination_schemes(&["sha512-crypt".into(), "PLAIN".into()]);
        assert!(Hash::parse("{SHA512-CRYPT}x", "CRYPT").understood_by(&only));
        assert!(Hash::parse("{CLEARTEXT}x", "CRYPT").understood_by(&only));
        assert!(!Hash::parse("{MD5-CRYPT}x", "CRYPT").understood_by(&only));
    }

    #[test]
    fn debug_hides_the_hash() {
        let h = Hash::parse("{SHA512-CRYPT}$6$secret", "CRYPT");
        assert!(!format!("{h:?}").contains("secret"));
    }
}
