//! Message identity: which message on the destination is the copy of which message on the
//! source, decided from the message's header alone.
//!
//! A [`MessageKey`] is computed from the raw bytes of a message's header (the full header, or
//! just `BODY.PEEK[HEADER.FIELDS (MESSAGE-ID DATE FROM TO SUBJECT)]`; both give the same key)
//! and must come out identical for the source's copy and the destination's copy of the same
//! message. The destination stores the bytes we append, so the header bytes are the same; what
//! may differ between two servers is the *framing*: line endings (a bare-LF message can come
//! back with CRLF) and therefore `RFC822.SIZE`. Hence:
//!
//! - **Message-ID first.** The first `Message-ID` field, unfolded, the text between the first
//!   `<` and the next `>` with all whitespace removed (folding may split a long id). Compared
//!   exactly otherwise: no case folding of the domain part, no comment stripping beyond taking
//!   the bracketed part. Both copies carry the same bytes, so being lenient gains nothing and
//!   could merge two messages whose ids differ only in case. An id without brackets is taken
//!   whole, whitespace removed. An empty id (`<>`) or one longer than a header line may be
//!   (998 bytes) counts as missing.
//! - **Else a hash of stable headers**: SHA-256 over the first `Date`, `From`, `To` and
//!   `Subject` fields, each unfolded and whitespace-normalized (runs of SP, HTAB, CR become one
//!   space, trimmed), with presence and length encoded so that fields cannot run into each
//!   other.
//! - **Never the size.** `RFC822.SIZE` changes when a server normalizes line endings, and a key
//!   that differs between the two copies means a message copied again on every run. Two
//!   different messages that share a key are still told apart: keys are counted as multisets
//!   (two on the source, one on the destination → one copy), and the pairing in
//!   [`super::diff`] prefers partners with the same INTERNALDATE and size.
//!
//! Header bytes are taken as they are: no RFC 2047 decoding, no charset guessing, so 8-bit and
//! raw UTF-8 headers hash the same on both sides and the key does not depend on a parser's
//! version. Lines end with LF or CRLF; the header ends at the first empty line (or the end of
//! the input). Nothing here panics, whatever the bytes.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};
use thiserror::Error;

/// The identity of a message within a folder. Ordered and hashable so it can key maps.
///
/// Held as 16 bytes inline, `Copy`: a 127-bit digest of the normalized Message-ID (or of the
/// stable header fields) and one bit for which of the two it is. Every listed message holds
/// one on each side, and a million-message folder's listing would otherwise hold a million
/// heap strings (about 60 bytes each beside the key's own 24). Two distinct ids share a
/// digest with a probability of about 2⁻¹²⁷ per pair, and even then nothing is lost: keys are counted as multisets (see
/// [`super::diff`]), so the two messages are paired like two messages sharing a Message-ID,
/// by date and size. Reports name messages by their Message-ID text, fetched for the few
/// they name ([`super::report::MessageRef::message_id`]).
///
/// Written as text (in reports and in the serialized cache): `id:` or `headers:` and 32 hex
/// digits. Text of the form `<id>` parses as the key of that Message-ID.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageKey {
    /// The digest, its first byte's top bit set for a Message-ID ([`KIND_BIT`]).
    digest: [u8; 16],
}

/// The bit of the first byte that tells a Message-ID's key from a header hash's.
const KIND_BIT: u8 = 0x80;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum KeyKind {
    /// From the normalized Message-ID.
    MessageId,
    /// From the stable header fields, for messages without a usable Message-ID.
    Headers,
}

impl MessageKey {
    /// The key of a message, from its header bytes (see the module docs).
    pub fn from_header(header: &[u8]) -> MessageKey {
        let fields = Fields::parse(header);
        match fields.first(b"message-id").and_then(normalize_id) {
            Some(id) => MessageKey::of_message_id(&escape(&id)),
            None => MessageKey::new(KeyKind::Headers, stable_hash(&fields)),
        }
    }

    /// The key of a message whose normalized, escaped Message-ID (as [`message_id`] gives
    /// it) is `id`.
    pub fn of_message_id(id: &str) -> MessageKey {
        let mut h = Sha256::new();
        // Versioned domain separation, as for the header hash.
        h.update(b"mailshift-message-id-v1\0");
        h.update(id.as_bytes());
        MessageKey::new(KeyKind::MessageId, h.finalize().into())
    }

    /// The first half of `hash`, marked with `kind`.
    fn new(kind: KeyKind, hash: [u8; 32]) -> MessageKey {
        let mut digest = [0u8; 16];
        digest.copy_from_slice(&hash[..16]);
        MessageKey::marked(kind, digest)
    }

    fn marked(kind: KeyKind, mut digest: [u8; 16]) -> MessageKey {
        match kind {
            KeyKind::MessageId => digest[0] |= KIND_BIT,
            KeyKind::Headers => digest[0] &= !KIND_BIT,
        }
        MessageKey { digest }
    }

    fn kind(&self) -> KeyKind {
        match self.digest[0] & KIND_BIT {
            0 => KeyKind::Headers,
            _ => KeyKind::MessageId,
        }
    }

    /// Whether the key was made from a Message-ID (rather than from the other header
    /// fields).
    pub fn is_message_id(&self) -> bool {
        self.kind() == KeyKind::MessageId
    }
}

impl fmt::Display for MessageKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.kind() {
            KeyKind::MessageId => "id:",
            KeyKind::Headers => "headers:",
        })?;
        self.digest.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for MessageKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Text that is not a [`MessageKey`] as [`fmt::Display`] writes it.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("not a message key: {0:?} (expected id:, headers: and 32 hex digits, or <message-id>)")]
pub struct BadKey(pub String);

impl FromStr for MessageKey {
    type Err = BadKey;

    fn from_str(s: &str) -> Result<MessageKey, BadKey> {
        if let Some(inner) = s.strip_prefix('<').and_then(|r| r.strip_suffix('>')) {
            return Ok(MessageKey::of_message_id(inner));
        }
        let bad = || BadKey(s.into());
        let (kind, hex) = if let Some(h) = s.strip_prefix("id:") {
            (KeyKind::MessageId, h)
        } else if let Some(h) = s.strip_prefix("headers:") {
            (KeyKind::Headers, h)
        } else if let Some(h) = s.strip_prefix("sha256:") {
            // The whole header hash, as caches written before keys were digests hold it:
            // its first half is the digest.
            if h.len() != 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(bad());
            }
            (KeyKind::Headers, &h[..32])
        } else {
            return Err(bad());
        };
        if hex.len() != 32 {
            return Err(bad());
        }
        let mut digest = [0u8; 16];
        for (i, byte) in digest.iter_mut().enumerate() {
            *byte = hex
                .get(2 * i..2 * i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(bad)?;
        }
        let key = MessageKey::marked(kind, digest);
        // What Display writes has the kind's bit as its prefix says; other text is not a key
        // (a `sha256:` hash is only the first half of one: its bit is set here).
        if s.starts_with("sha256:") || key.digest == digest {
            Ok(key)
        } else {
            Err(bad())
        }
    }
}

impl Serialize for MessageKey {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for MessageKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<MessageKey, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The message's normalized Message-ID (see the module docs), if it has a usable one.
pub fn message_id(header: &[u8]) -> Option<String> {
    Fields::parse(header)
        .first(b"message-id")
        .and_then(normalize_id)
        .map(|id| escape(&id))
}

/// The first field called `name` (case-insensitive), unfolded and whitespace-normalized, as
/// text for people (reports): invalid UTF-8 is replaced, nothing is decoded.
pub fn header_text(header: &[u8], name: &str) -> Option<String> {
    let lower = name.to_ascii_lowercase();
    Fields::parse(header)
        .first(lower.as_bytes())
        .map(|v| String::from_utf8_lossy(&collapse_ws(&v)).into_owned())
}

/// Ids longer than this are not ids (RFC 5322 limits a line to 998 characters).
const MAX_ID_LEN: usize = 998;

/// Header fields: lowercase name and unfolded raw value (CRLF/LF of folds removed, the
/// folding whitespace kept), in order.
struct Fields {
    fields: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Fields {
    fn parse(header: &[u8]) -> Fields {
        let mut fields: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        // Whether the last line started a field that continuation lines may extend.
        let mut open = false;
        for line in header.split(|&b| b == b'\n') {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.is_empty() {
                break; // end of the header section
            }
            if matches!(line[0], b' ' | b'\t') {
                if open && let Some((_, value)) = fields.last_mut() {
                    value.extend_from_slice(line);
                }
                continue;
            }
            open = false;
            let Some(colon) = line.iter().position(|&b| b == b':') else {
                continue; // not a field (an mbox "From " line, garbage): ignored
            };
            // RFC 5322 field names are printable ASCII without space; the obsolete syntax
            // allows whitespace before the colon.
            let name = trim_end_ws(&line[..colon]);
            if name.is_empty() || !name.iter().all(|&b| (33..=126).contains(&b)) {
                continue;
            }
            fields.push((name.to_ascii_lowercase(), line[colon + 1..].to_vec()));
            open = true;
        }
        Fields { fields }
    }

    /// The first field with this (lowercase) name. Later duplicates are ignored: both copies
    /// have the same fields in the same order, so "first" means the same field on both sides.
    fn first(&self, name: &[u8]) -> Option<Vec<u8>> {
        self.fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    }
}

fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

fn trim_end_ws(s: &[u8]) -> &[u8] {
    let end = s.iter().rposition(|&b| !is_ws(b)).map_or(0, |i| i + 1);
    &s[..end]
}

/// Runs of whitespace become one space; leading and trailing whitespace goes.
fn collapse_ws(v: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(v.len());
    for word in v.split(|&b| is_ws(b)).filter(|w| !w.is_empty()) {
        if !out.is_empty() {
            out.push(b' ');
        }
        out.extend_from_slice(word);
    }
    out
}

/// The id inside the first `<...>`, or the whole value without brackets; whitespace removed.
fn normalize_id(value: Vec<u8>) -> Option<Vec<u8>> {
    let inner = match value.iter().position(|&b| b == b'<') {
        Some(open) => {
            let rest = &value[open + 1..];
            let close = rest.iter().position(|&b| b == b'>').unwrap_or(rest.len());
            &rest[..close]
        }
        None => &value[..],
    };
    let id: Vec<u8> = inner.iter().copied().filter(|&b| !is_ws(b)).collect();
    (!id.is_empty() && id.len() <= MAX_ID_LEN).then_some(id)
}

/// Bytes as text without losing distinctions: valid UTF-8 stays, except control characters
/// and `%`; those and invalid bytes become `%XX`.
fn escape(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c == '%' || c.is_control() {
                let mut buf = [0u8; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    out.push_str(&format!("%{b:02X}"));
                }
            } else {
                out.push(c);
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The header fields hashed when there is no Message-ID, in hashing order.
const STABLE_FIELDS: [&[u8]; 4] = [b"date", b"from", b"to", b"subject"];

fn stable_hash(fields: &Fields) -> [u8; 32] {
    let mut h = Sha256::new();
    // Versioned domain separation: a change of this recipe must change every key.
    h.update(b"mailshift-headers-v1\0");
    for name in STABLE_FIELDS {
        match fields.first(name) {
            Some(value) => {
                let v = collapse_ws(&value);
                h.update([1u8]);
                h.update((v.len() as u64).to_be_bytes());
                h.update(&v);
            }
            None => h.update([0u8]),
        }
    }
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key(h: &str) -> MessageKey {
        MessageKey::from_header(h.as_bytes())
    }

    fn id(s: &str) -> MessageKey {
        MessageKey::of_message_id(s)
    }

    #[test]
    fn message_id_normalization() {
        assert_eq!(key("Message-ID: <a@b>\r\n\r\n"), id("a@b"));
        assert_eq!(key("message-id:<a@b>\n"), id("a@b"));
        assert_eq!(key("MESSAGE-ID :   <a@b>   \r\n"), id("a@b"));
        // Folded, with whitespace inside the brackets from a broken folder.
        assert_eq!(key("Message-ID:\r\n <a@\r\n b>\r\n"), id("a@b"));
        // Comments around the id.
        assert_eq!(key("Message-ID: (x) <a@b> (y <c@d>)\r\n"), id("a@b"));
        // No brackets: the whole value.
        assert_eq!(key("Message-ID: a@b\r\n"), id("a@b"));
        // Unterminated bracket: the rest.
        assert_eq!(key("Message-ID: <a@b\r\n"), id("a@b"));
        // Case is significant: the two copies carry the same bytes.
        assert_ne!(key("Message-ID: <a@B>\r\n"), key("Message-ID: <a@b>\r\n"));
        // The first of duplicate fields.
        assert_eq!(
            key("Message-ID: <first@x>\r\nMessage-ID: <second@x>\r\n"),
            id("first@x")
        );
        // Another field's value is not the id.
        assert_eq!(key("References: <r@x>\r\nMessage-ID: <m@x>\r\n"), id("m@x"));
        assert_eq!(key("X-Message-ID: <x@x>\r\n"), key(""));
    }

    #[test]
    fn unusable_ids_fall_back_to_headers() {
        let plain = "Date: Mon, 1 Jan 2024 10:00:00 +0000\r\nSubject: hi\r\n";
        let fallback = key(plain);
        assert!(!fallback.is_message_id());
        assert_eq!(key(&format!("Message-ID: <>\r\n{plain}")), fallback);
        assert_eq!(key(&format!("Message-ID:   \r\n{plain}")), fallback);
        let long = format!("Message-ID: <{}@x>\r\n{plain}", "a".repeat(MAX_ID_LEN));
        assert_eq!(key(&long), fallback);
    }

    #[test]
    fn fields_in_the_body_do_not_count() {
        assert_eq!(
            key("Subject: s\r\n\r\nMessage-ID: <body@x>\r\n"),
            key("Subject: s\r\n")
        );
        // Bare LF blank line ends the header too.
        assert_eq!(
            key("Subject: s\n\nMessage-ID: <body@x>\n"),
            key("Subject: s\n")
        );
    }

    #[test]
    fn line_endings_and_folding_do_not_change_keys() {
        let crlf = "Date: Mon, 1 Jan 2024\r\nFrom: A <a@x>\r\nTo: b@x,\r\n c@x\r\nSubject: Hello\r\n  world\r\n\r\nbody\r\n";
        let lf = crlf.replace("\r\n", "\n");
        let refolded =
            "Subject:  Hello world\nTo: b@x, c@x\nFrom: A <a@x>\nDate:\tMon, 1 Jan 2024\n";
        assert_eq!(key(crlf), key(&lf));
        assert_eq!(key(crlf), key(refolded));
        // The same with a Message-ID.
        let with_id = format!("Message-ID: <z@x>\r\n{crlf}");
        assert_eq!(key(&with_id), key(&with_id.replace("\r\n", "\n")));
    }

    #[test]
    fn hash_distinguishes_fields() {
        // Presence and boundaries are part of the hash.
        assert_ne!(key("Subject: \r\n"), key(""));
        assert_ne!(key("From: ab\r\nTo: c\r\n"), key("From: a\r\nTo: bc\r\n"));
        assert_ne!(key("From: x\r\n"), key("To: x\r\n"));
        assert_ne!(key("Subject: a\r\n"), key("Subject: b\r\n"));
        // Only the stable fields count.
        assert_eq!(key("Subject: a\r\nReceived: x\r\n"), key("Subject: a\r\n"));
        // Field names are case-insensitive.
        assert_eq!(key("SUBJECT: a\r\n"), key("subject: a\r\n"));
    }

    #[test]
    fn raw_8bit_headers() {
        let utf8 = "Subject: Grüße aus Hà Nội\r\nFrom: Ông <o@x>\r\n".as_bytes();
        let latin1 = b"Subject: Gr\xfc\xdfe\r\nFrom: o@x\r\n";
        assert!(!MessageKey::from_header(utf8).is_message_id());
        assert_ne!(
            MessageKey::from_header(utf8),
            MessageKey::from_header(latin1)
        );
        assert_eq!(
            MessageKey::from_header(b"Message-ID: <caf\xe9@x>\r\n"),
            id("caf%E9@x")
        );
        assert_eq!(key("Message-ID: <ü%@x>\r\n"), id("ü%25@x"));
        assert_eq!(
            MessageKey::from_header(b"Message-ID: <a\x01b@x>\r\n"),
            id("a%01b@x")
        );
    }

    #[test]
    fn degenerate_messages() {
        let empty = MessageKey::from_header(b"");
        assert!(!empty.is_message_id());
        assert_eq!(MessageKey::from_header(b"\r\n\r\nbody"), empty);
        // An mbox separator line and a header-less blob are not fields.
        assert_eq!(
            key("From alice@x Mon Jan  1 10:00:00 2024\nSubject: s\n"),
            key("Subject: s\n")
        );
        assert_eq!(key(": no name\r\n"), empty);
        // A continuation line with nothing to continue.
        assert_eq!(key(" Subject: s\r\n"), empty);
    }

    #[test]
    fn text_round_trip() {
        for k in [
            id("a@b"),
            id("a>b"),
            id(""),
            key("Subject: x\r\n"),
            key("Message-ID: <m@x>\r\n"),
        ] {
            let text = k.to_string();
            assert_eq!(text.parse::<MessageKey>(), Ok(k), "{text}");
            let json = serde_json::to_string(&k).unwrap();
            assert_eq!(serde_json::from_str::<MessageKey>(&json).unwrap(), k);
        }
        assert_eq!("<a@b>".parse::<MessageKey>(), Ok(id("a@b")));
        assert!(id("a@b").to_string().starts_with("id:"));
        assert!(key("").to_string().starts_with("headers:"));
        assert_eq!(id("a@b").to_string().len(), "id:".len() + 32);
        // The kind's bit must agree with the prefix.
        let hex = &id("a@b").to_string()["id:".len()..];
        assert!(format!("headers:{hex}").parse::<MessageKey>().is_err());
        for bad in [
            "a@b",
            "id:",
            "id:zz",
            "sha256:00",
            &format!("id:{}", "g".repeat(32)),
            &format!("headers:{}", "0".repeat(31)),
        ] {
            assert!(bad.parse::<MessageKey>().is_err(), "{bad}");
        }
    }

    #[test]
    fn reads_the_keys_of_older_caches() {
        // Before keys were digests, the cache held `<id>` and the whole header hash.
        let h = "Subject: x\r\n";
        let old = {
            let hash = stable_hash(&Fields::parse(h.as_bytes()));
            let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
            format!("sha256:{hex}")
        };
        assert_eq!(old.parse::<MessageKey>(), Ok(key(h)));
        assert_eq!(
            "<m@x>".parse::<MessageKey>(),
            Ok(key("Message-ID: <m@x>\r\n"))
        );
        assert!(
            format!("sha256:{}", "g".repeat(64))
                .parse::<MessageKey>()
                .is_err()
        );
    }

    #[test]
    fn compact() {
        // What makes a million-message listing fit: no heap, and small.
        assert_eq!(std::mem::size_of::<MessageKey>(), 16);
        // A Message-ID and a header hash never give the same key, even with equal digests.
        let d = [0xff; 16];
        assert_ne!(
            MessageKey::marked(KeyKind::MessageId, d),
            MessageKey::marked(KeyKind::Headers, d)
        );
        assert!(id("a@b").is_message_id() && !key("Subject: a\r\n").is_message_id());
    }

    #[test]
    fn helpers() {
        let h = b"Message-ID: <m@x>\r\nDate: Tue,\r\n 2 Jan 2024\r\n\r\n";
        assert_eq!(message_id(h).as_deref(), Some("m@x"));
        assert_eq!(header_text(h, "DATE").as_deref(), Some("Tue, 2 Jan 2024"));
        assert_eq!(header_text(h, "Subject"), None);
        assert_eq!(message_id(b"Subject: x\r\n"), None);
        assert!(id("m@x").is_message_id());
        assert_eq!(MessageKey::from_header(h), id("m@x"));
        assert!(!key("").is_message_id());
    }

    proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let k = MessageKey::from_header(&bytes);
            let _ = message_id(&bytes);
            let _ = header_text(&bytes, "subject");
            prop_assert_eq!(k.to_string().parse::<MessageKey>(), Ok(k));
        }

        #[test]
        fn crlf_and_lf_agree(
            lines in proptest::collection::vec(
                ("(Message-ID|Date|From|To|Subject|X-Other)", "[ -~\u{e0}-\u{ff}]{0,20}", any::<bool>()),
                0..8,
            )
        ) {
            // The same header written with CRLF and with bare LF, some fields folded.
            let mut crlf = String::new();
            for (name, value, fold) in &lines {
                crlf.push_str(name);
                crlf.push_str(": ");
                if *fold {
                    crlf.push_str("x\r\n\t");
                }
                crlf.push_str(value.trim_end_matches('\r'));
                crlf.push_str("\r\n");
            }
            let lf = crlf.replace("\r\n", "\n");
            prop_assert_eq!(key(&crlf), key(&lf));
            // A body after the header changes nothing.
            prop_assert_eq!(key(&crlf), key(&format!("{crlf}\r\nMessage-ID: <b@x>\r\n")));
        }

        #[test]
        fn distinct_ids_distinct_keys(a in proptest::collection::vec(any::<u8>(), 1..40),
                                      b in proptest::collection::vec(any::<u8>(), 1..40)) {
            let clean = |v: &[u8]| -> Vec<u8> {
                v.iter().copied().filter(|&c| !is_ws(c) && c != b'<' && c != b'>').collect()
            };
            let (a, b) = (clean(&a), clean(&b));
            prop_assume!(!a.is_empty() && !b.is_empty() && a != b);
            let ka = MessageKey::from_header(&[b"Message-ID: <", &a[..], b">\r\n"].concat());
            let kb = MessageKey::from_header(&[b"Message-ID: <", &b[..], b">\r\n"].concat());
            prop_assert_ne!(ka, kb);
        }
    }
}
