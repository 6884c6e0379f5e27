//! Modified UTF-7, the encoding of IMAP mailbox names (RFC 3501 §5.1.3).
//!
//! Printable US-ASCII (0x20..=0x7E) stands for itself, except `&`, which is written `&-`.
//! Everything else is UTF-16 (surrogate pairs outside the BMP), written in a modified BASE64
//! (`,` instead of `/`, no `=` padding) between `&` and `-`.
//!
//! [`encode`] always produces the one canonical form. [`decode`] accepts only the canonical
//! form and reports anything else as a [`Mutf7Error`]: a name that does not round-trip exactly
//! would be created under a different name on the destination, so it is refused rather than
//! guessed at. No crate on crates.io did this (`utf7-imap` 0.3 panics on bad BASE64, accepts
//! non-canonical input and treats DEL as printable), hence this small implementation.

use thiserror::Error;

/// Why a mailbox name is not valid modified UTF-7. Offsets are byte offsets into the input.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Mutf7Error {
    /// A character outside printable US-ASCII appears unencoded.
    #[error("character {ch:?} at offset {offset} must be BASE64-encoded in a mailbox name")]
    Unencoded { offset: usize, ch: char },
    /// A `&` shift has no closing `-`.
    #[error("shift sequence starting at offset {offset} is not terminated by '-'")]
    Unterminated { offset: usize },
    /// A character that is not modified BASE64 appears inside a shift sequence.
    #[error("character {ch:?} at offset {offset} is not modified BASE64")]
    InvalidBase64 { offset: usize, ch: char },
    /// The BASE64 run does not end on a 16-bit boundary, or its leftover bits are not zero.
    #[error(
        "shift sequence starting at offset {offset} has trailing bits that are not zero padding"
    )]
    BadPadding { offset: usize },
    /// A printable US-ASCII character (including `&`) was encoded instead of written directly.
    #[error("shift sequence starting at offset {offset} encodes printable ASCII {ch:?}")]
    ShiftedAscii { offset: usize, ch: char },
    /// A shift sequence directly follows another one; they must be merged into one.
    #[error("shift sequence at offset {offset} directly follows another one")]
    AdjacentShift { offset: usize },
    /// A UTF-16 surrogate without its partner.
    #[error("shift sequence starting at offset {offset} contains an unpaired UTF-16 surrogate")]
    UnpairedSurrogate { offset: usize },
}

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

fn is_direct(c: char) -> bool {
    matches!(c, ' '..='~') && c != '&'
}

fn sextet(b: u8) -> Option<u32> {
    match b {
        b'A'..=b'Z' => Some(u32::from(b - b'A')),
        b'a'..=b'z' => Some(u32::from(b - b'a') + 26),
        b'0'..=b'9' => Some(u32::from(b - b'0') + 52),
        b'+' => Some(62),
        b',' => Some(63),
        _ => None,
    }
}

/// Encodes a mailbox name (or one level of it) as modified UTF-7. The output is printable
/// US-ASCII only.
pub fn encode(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 8);
    let mut units: Vec<u16> = Vec::new();
    for c in name.chars() {
        if is_direct(c) {
            flush(&mut units, &mut out);
            out.push(c);
        } else if c == '&' {
            flush(&mut units, &mut out);
            out.push_str("&-");
        } else {
            let mut buf = [0u16; 2];
            units.extend_from_slice(c.encode_utf16(&mut buf));
        }
    }
    flush(&mut units, &mut out);
    out
}

/// Writes the pending UTF-16 units as one `&...-` sequence.
fn flush(units: &mut Vec<u16>, out: &mut String) {
    if units.is_empty() {
        return;
    }
    out.push('&');
    let mut acc: u32 = 0;
    let mut bits: u32 = 0;
    for &u in units.iter() {
        acc = (acc << 16) | u32::from(u);
        bits += 16;
        while bits >= 6 {
            bits -= 6;
            out.push(char::from(ALPHABET[((acc >> bits) & 0x3f) as usize]));
        }
        acc &= (1 << bits) - 1;
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((acc << (6 - bits)) & 0x3f) as usize]));
    }
    out.push('-');
    units.clear();
}

/// Decodes a modified UTF-7 mailbox name. Only the canonical encoding is accepted (the one
/// [`encode`] produces), so `decode` and `encode` are exact inverses.
pub fn decode(input: &str) -> Result<String, Mutf7Error> {
    let bytes = input.as_bytes();
    let mut out = String::with_capacity(input.len());
    let mut i = 0;
    // End offset (index of the '-') of the previous BASE64 run, to catch "&AOk-&AOk-".
    let mut prev_run_end: Option<usize> = None;
    while i < bytes.len() {
        let b = bytes[i];
        if b != b'&' {
            if !(0x20..=0x7e).contains(&b) {
                let ch = input[i..]
                    .chars()
                    .next()
                    .unwrap_or(char::REPLACEMENT_CHARACTER);
                return Err(Mutf7Error::Unencoded { offset: i, ch });
            }
            out.push(char::from(b));
            i += 1;
            continue;
        }
        let start = i;
        let run_len = bytes[start + 1..]
            .iter()
            .take_while(|&&c| sextet(c).is_some())
            .count();
        let end = start + 1 + run_len;
        match bytes.get(end) {
            Some(b'-') => {}
            None => return Err(Mutf7Error::Unterminated { offset: start }),
            Some(_) => {
                let ch = input[end..]
                    .chars()
                    .next()
                    .unwrap_or(char::REPLACEMENT_CHARACTER);
                return Err(Mutf7Error::InvalidBase64 { offset: end, ch });
            }
        }
        if run_len == 0 {
            out.push('&');
        } else {
            if prev_run_end.is_some_and(|e| e + 1 == start) {
                return Err(Mutf7Error::AdjacentShift { offset: start });
            }
            decode_run(&bytes[start + 1..end], start, &mut out)?;
            prev_run_end = Some(end);
        }
        i = end + 1;
    }
    Ok(out)
}

/// Decodes one BASE64 run (all characters already known to be in the alphabet) into `out`.
fn decode_run(run: &[u8], offset: usize, out: &mut String) -> Result<(), Mutf7Error> {
    let mut acc: u32 = 0;
    let mut bits: u32 = 0;
    let mut units: Vec<u16> = Vec::with_capacity(run.len() * 6 / 16);
    for &c in run {
        acc = (acc << 6) | sextet(c).unwrap_or(0);
        bits += 6;
        if bits >= 16 {
            bits -= 16;
            units.push(((acc >> bits) & 0xffff) as u16);
            acc &= (1 << bits) - 1;
        }
    }
    // Leftover must be fewer than 6 bits (no wasted BASE64 character) and all zero.
    if bits >= 6 || acc != 0 {
        return Err(Mutf7Error::BadPadding { offset });
    }
    for r in char::decode_utf16(units.iter().copied()) {
        let c = r.map_err(|_| Mutf7Error::UnpairedSurrogate { offset })?;
        if matches!(c, ' '..='~') {
            return Err(Mutf7Error::ShiftedAscii { offset, ch: c });
        }
        out.push(c);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn rt(s: &str) {
        let e = encode(s);
        assert!(e.bytes().all(|b| (0x20..=0x7e).contains(&b)), "{e:?}");
        assert_eq!(
            decode(&e).as_deref(),
            Ok(s),
            "round trip of {s:?} via {e:?}"
        );
    }

    #[test]
    fn known_encodings() {
        // RFC 3501 §5.1.3 example.
        assert_eq!(
            encode("~peter/mail/台北/日本語"),
            "~peter/mail/&U,BTFw-/&ZeVnLIqe-"
        );
        assert_eq!(
            decode("~peter/mail/&U,BTFw-/&ZeVnLIqe-").unwrap(),
            "~peter/mail/台北/日本語"
        );
        assert_eq!(encode("Отправленные"), "&BB4EQgQ,BEAEMAQyBDsENQQ9BD0ESwQ1-");
        assert_eq!(encode("Entwürfe"), "Entw&APw-rfe");
        assert_eq!(encode("théâtre"), "th&AOkA4g-tre");
        assert_eq!(encode("&"), "&-");
        assert_eq!(encode("A&B"), "A&-B");
        assert_eq!(encode(""), "");
        assert_eq!(decode("").unwrap(), "");
        assert_eq!(decode("&-").unwrap(), "&");
        assert_eq!(decode("&-&-").unwrap(), "&&");
        assert_eq!(
            decode("Sent & Received").unwrap_err(),
            Mutf7Error::InvalidBase64 { offset: 6, ch: ' ' }
        );
        assert_eq!(encode("Sent & Received"), "Sent &- Received");
        // Non-BMP: U+1F4E7 E-MAIL SYMBOL is the surrogate pair D83D DCE7.
        assert_eq!(encode("📧"), "&2D3c5w-");
        assert_eq!(decode("&2D3c5w-").unwrap(), "📧");
        // DEL and other controls are not printable: they are encoded.
        assert_eq!(encode("\u{7f}"), "&AH8-");
        assert_eq!(encode("a\tb"), "a&AAk-b");
    }

    #[test]
    fn round_trips_non_latin_names() {
        for s in [
            "Hộp thư đến",
            "Thư đã gửi",
            "Отправленные",
            "送信済みアイテム",
            "已发送邮件",
            "寄件備份",
            "العناصر المرسلة",
            "פריטים שנשלחו",
            "보낸 편지함",
            "Απεσταλμένα",
            "📧 Mail 🗂️ 𝄞",
            "&",
            "&&-&",
            "a&b",
            "Projekte & Ablage / Ünterordner",
            "INBOX.Sent",
            "-&-",
            "\u{0}",
            "e\u{301}", // NFD is kept as given
        ] {
            rt(s);
        }
    }

    #[test]
    fn rejects_invalid_input() {
        use Mutf7Error::*;
        let cases: &[(&str, Mutf7Error)] = &[
            ("&AOk", Unterminated { offset: 0 }),
            ("abc&", Unterminated { offset: 3 }),
            ("&AO.k-", InvalidBase64 { offset: 3, ch: '.' }),
            (
                "&AOké-",
                InvalidBase64 {
                    offset: 4, ch: 'é'
                },
            ),
            ("&AO/k-", InvalidBase64 { offset: 3, ch: '/' }),
            ("&AOk=-", InvalidBase64 { offset: 4, ch: '=' }),
            ("&AO&k-", InvalidBase64 { offset: 3, ch: '&' }),
            (
                "é",
                Unencoded {
                    offset: 0, ch: 'é'
                },
            ),
            (
                "a\tb",
                Unencoded {
                    offset: 1,
                    ch: '\t',
                },
            ),
            (
                "\u{7f}",
                Unencoded {
                    offset: 0,
                    ch: '\u{7f}',
                },
            ),
            // Non-zero padding bits: "AOl" carries 0x00E9 plus bits 01.
            ("&AOl-", BadPadding { offset: 0 }),
            // A wasted BASE64 character (6 leftover bits).
            ("&AOkA-", BadPadding { offset: 0 }),
            ("&A-", BadPadding { offset: 0 }),
            // Shifted printable ASCII: "A" (U+0041) and "&" (U+0026) must be direct.
            ("&AEE-", ShiftedAscii { offset: 0, ch: 'A' }),
            ("&ACY-", ShiftedAscii { offset: 0, ch: '&' }),
            ("&AOkAQQ-", ShiftedAscii { offset: 0, ch: 'A' }),
            // Non-minimal: two runs back to back.
            ("&AOk-&AOk-", AdjacentShift { offset: 5 }),
            // Unpaired surrogates: lone high, lone low, pair split across runs.
            ("&2D0-", UnpairedSurrogate { offset: 0 }),
            ("&3Oc-", UnpairedSurrogate { offset: 0 }),
            ("&2D0-x&3Oc-", UnpairedSurrogate { offset: 0 }),
        ];
        for (input, want) in cases {
            assert_eq!(decode(input).as_ref(), Err(want), "input {input:?}");
            // The error renders without panicking.
            assert!(!want.to_string().is_empty());
        }
        // "&-" followed by a run is fine, and a run followed by "&-" is fine.
        assert_eq!(decode("&-&AOk-").unwrap(), "&é");
        assert_eq!(decode("&AOk-&-").unwrap(), "é&");
        assert_eq!(decode("&AOk-x&AOk-").unwrap(), "éxé");
    }

    proptest! {
        #[test]
        fn decode_inverts_encode(s in any::<String>()) {
            let e = encode(&s);
            prop_assert!(e.bytes().all(|b| (0x20..=0x7e).contains(&b)));
            prop_assert_eq!(decode(&e), Ok(s));
        }

        #[test]
        fn decode_never_panics(s in any::<String>()) {
            let _ = decode(&s);
        }

        #[test]
        fn encode_inverts_decode(s in "[ -~]{0,24}") {
            // Whatever ASCII garbage comes in, decode never panics, and what it accepts is
            // canonical: encoding the result gives back the input.
            if let Ok(d) = decode(&s) {
                prop_assert_eq!(encode(&d), s);
            }
        }

        #[test]
        fn shift_sequences_canonical(s in "(&[A-Za-z0-9+,]{0,12}-?|[a-z]){0,6}") {
            if let Ok(d) = decode(&s) {
                prop_assert_eq!(encode(&d), s);
            }
        }
    }
}
