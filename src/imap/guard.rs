//! Limits on what a server can make mailshift hold in memory, checked on the bytes as they
//! arrive, before the IMAP parser sees them.
//!
//! async-imap grows its read buffer to the size a literal announces (`{400000000}` costs
//! 400 MB before a byte of it arrives) and parses the whole buffer again after every read,
//! so a line without an end costs quadratic time. [`Guard`] follows the response grammar
//! only as far as lines and literals go: a literal larger than the connection's current
//! limit, or a line longer than [`MAX_LINE`], is a protocol violation and the connection is
//! given up before anything is allocated for it.

use std::fmt;

/// The longest line segment (text between two CRLFs or literals) a server may send. A real
/// response line (a LIST entry, a FETCH of flags and sizes, CAPABILITY, the FLAGS of a
/// folder with thousands of keywords) stays far below it; async-imap parses an unfinished
/// line again after every read, so the cap also bounds that quadratic cost.
pub const MAX_LINE: usize = 256 << 10;

/// The literal limit while nothing larger is expected: folder names, header fields of the
/// listing. Fetching bodies raises it to the largest listed message of the batch.
pub const DEFAULT_LITERAL_LIMIT: u64 = 8 << 20;

/// How much a fetched body may exceed its listed RFC822.SIZE before it is refused unread (a
/// body of any other size is a fault anyway; this only keeps the read bounded).
pub fn literal_limit_for(largest_listed: u64) -> u64 {
    DEFAULT_LITERAL_LIMIT.max(largest_listed.saturating_add(largest_listed / 8 + 4096))
}

/// A server broke the limits: the connection is unusable, and trying again would meet the
/// same answer.
#[derive(Debug)]
pub struct Violation(pub String);

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Violation {}

/// Where the scanner is in the server's byte stream.
#[derive(Clone, Debug)]
pub struct Guard {
    literal_limit: u64,
    /// Bytes of literal data still to come; 0 while reading a line.
    in_literal: u64,
    /// Bytes of the current line segment.
    line: usize,
    /// Whether the current response is a status or continuation response, whose text may
    /// contain `{5}` without it being a literal.
    text_response: Option<bool>,
    /// The first bytes of the response (enough to tell its kind) and the last of the line
    /// (enough to hold a `{digits}` announcement before CRLF).
    head: Vec<u8>,
    tail: Vec<u8>,
}

const HEAD: usize = 24;
const TAIL: usize = 24;

impl Default for Guard {
    fn default() -> Self {
        Guard {
            literal_limit: DEFAULT_LITERAL_LIMIT,
            in_literal: 0,
            line: 0,
            text_response: None,
            head: Vec::with_capacity(HEAD),
            tail: Vec::with_capacity(TAIL),
        }
    }
}

impl Guard {
    /// The largest literal accepted from now on.
    pub fn set_literal_limit(&mut self, limit: u64) {
        self.literal_limit = limit;
    }

    pub fn literal_limit(&self) -> u64 {
        self.literal_limit
    }

    /// Checks bytes just read, in order.
    pub fn scan(&mut self, mut bytes: &[u8]) -> Result<(), Violation> {
        while !bytes.is_empty() {
            if self.in_literal > 0 {
                let n = (self.in_literal.min(bytes.len() as u64)) as usize;
                self.in_literal -= n as u64;
                bytes = &bytes[n..];
                continue;
            }
            let end = bytes.iter().position(|&b| b == b'\n');
            let (segment, rest) = match end {
                Some(i) => bytes.split_at(i + 1),
                None => (bytes, &[][..]),
            };
            self.line += segment.len();
            if self.line > MAX_LINE {
                return Err(Violation(format!(
                    "the server sent a line longer than {} KiB",
                    MAX_LINE / 1024
                )));
            }
            if self.head.len() < HEAD {
                let take = (HEAD - self.head.len()).min(segment.len());
                self.head.extend_from_slice(&segment[..take]);
            }
            if segment.len() >= TAIL {
                self.tail.clear();
                self.tail
                    .extend_from_slice(&segment[segment.len() - TAIL..]);
            } else {
                self.tail.extend_from_slice(segment);
                let over = self.tail.len().saturating_sub(TAIL);
                self.tail.drain(..over);
            }
            if end.is_some() {
                self.line_ended()?;
            }
            bytes = rest;
        }
        Ok(())
    }

    /// At a LF: either a literal follows (`{n}` CRLF) or the response is complete.
    fn line_ended(&mut self) -> Result<(), Violation> {
        let text = *self
            .text_response
            .get_or_insert_with(|| is_text_response(&self.head));
        let announced = if text { None } else { announced(&self.tail) };
        self.line = 0;
        self.tail.clear();
        match announced {
            Some(n) if n > self.literal_limit => Err(Violation(format!(
                "the server announced a literal of {n} bytes, more than the {} expected",
                self.literal_limit
            ))),
            Some(n) => {
                self.in_literal = n;
                Ok(())
            }
            None => {
                self.text_response = None;
                self.head.clear();
                Ok(())
            }
        }
    }
}

/// `{123}` CRLF (or `~{123}` for a BINARY literal) at the end of `tail`.
fn announced(tail: &[u8]) -> Option<u64> {
    let line = tail.strip_suffix(b"\n")?;
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let inner = line.strip_suffix(b"}")?;
    let Some(open) = inner.iter().rposition(|&b| b == b'{') else {
        // Digits all the way back past the kept tail: a number longer than u64 holds.
        let digits = inner.strip_suffix(b"+").unwrap_or(inner);
        let all = digits.len() + 4 >= TAIL && digits.iter().all(u8::is_ascii_digit);
        return all.then_some(u64::MAX);
    };
    let digits = &inner[open + 1..];
    let digits = digits.strip_suffix(b"+").unwrap_or(digits);
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    // A number too long for u64 is larger than any limit.
    Some(
        std::str::from_utf8(digits)
            .ok()?
            .parse()
            .unwrap_or(u64::MAX),
    )
}

/// `+ ...`, `* OK ...`, `tag NO ...` and the like: responses whose remainder is free text.
fn is_text_response(head: &[u8]) -> bool {
    if head.starts_with(b"+") {
        return true;
    }
    let mut words = head.split(|&b| b == b' ');
    let _tag = words.next();
    let Some(word) = words.next() else {
        return false;
    };
    ["OK", "NO", "BAD", "BYE", "PREAUTH"]
        .iter()
        .any(|s| word.eq_ignore_ascii_case(s.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(g: &mut Guard, chunks: &[&[u8]]) -> Result<(), Violation> {
        chunks.iter().try_for_each(|c| g.scan(c))
    }

    #[test]
    fn literals_within_the_limit_pass_in_any_chunking() {
        let stream: &[u8] =
            b"* 1 FETCH (UID 4 BODY[] {5}\r\nab{9} RFC822.SIZE 5)\r\n* OK done {99999999999}\r\n";
        for split in 1..stream.len() {
            let mut g = Guard::default();
            g.set_literal_limit(10);
            let (a, b) = stream.split_at(split);
            feed(&mut g, &[a, b]).unwrap_or_else(|e| panic!("split {split}: {e}"));
            assert_eq!(g.in_literal, 0);
        }
    }

    #[test]
    fn a_literal_over_the_limit_is_refused_before_its_data() {
        let mut g = Guard::default();
        g.set_literal_limit(1000);
        let err = g.scan(b"* 1 FETCH (BODY[] {400000000}\r\n").unwrap_err();
        assert!(err.0.contains("400000000"), "{err}");
        let mut g = Guard::default();
        assert!(
            g.scan(b"* LIST () \"/\" {99999999999999999999999}\r\n")
                .is_err()
        );
        // Binary literals too.
        let mut g = Guard::default();
        g.set_literal_limit(10);
        assert!(g.scan(b"* 1 FETCH (BINARY[] ~{11}\r\n").is_err());
    }

    #[test]
    fn a_line_without_end_is_refused_at_the_cap() {
        let mut g = Guard::default();
        let chunk = vec![b'x'; 4096];
        let mut fed = 0;
        let err = loop {
            match g.scan(&chunk) {
                Ok(()) => fed += chunk.len(),
                Err(e) => break e,
            }
        };
        assert!(fed <= MAX_LINE && fed + chunk.len() > MAX_LINE, "{fed}");
        assert!(err.0.contains("line longer"), "{err}");
    }

    #[test]
    fn literal_data_does_not_count_as_line() {
        let mut g = Guard::default();
        let big = 3 * MAX_LINE as u64;
        g.set_literal_limit(big);
        g.scan(format!("* 1 FETCH (BODY[] {{{big}}}\r\n").as_bytes())
            .unwrap();
        let data = vec![b'a'; big as usize];
        g.scan(&data).unwrap();
        g.scan(b")\r\n").unwrap();
    }

    #[test]
    fn limits_follow_the_listing() {
        assert_eq!(literal_limit_for(10), DEFAULT_LITERAL_LIMIT);
        let big = 100 << 20;
        assert!(literal_limit_for(big) > big && literal_limit_for(big) < big + big / 4);
    }
}
