//! Text that came from elsewhere (a server's folder names and error texts, a file's
//! content) made safe to print: control characters shown as escapes, so that a name with
//! CR/LF or ESC cannot forge a line of the report or drive the terminal, and long texts cut
//! to an excerpt, so that an error never carries a whole buffer (mail content included).

use std::borrow::Cow;
use std::fmt;

/// `s` with every control character (C0, DEL, C1) and the line and paragraph separators
/// written as a Rust-style escape (`\r`, `\n`, `\t`, `\u{1b}`); a backslash stays as is.
/// Borrowed when nothing needed escaping, which is nearly always.
pub fn printable(s: &str) -> Cow<'_, str> {
    if !s.chars().any(needs_escape) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\r' => out.push_str("\\r"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if needs_escape(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

fn needs_escape(c: char) -> bool {
    c.is_control() || matches!(c, '\u{2028}' | '\u{2029}')
}

/// A formatted log line made safe for a terminal: every control character escaped as by
/// [`printable`], except the line's final newline and the colour sequences (`ESC [ 1;32 m`)
/// the log formatter writes itself, which do no more than colour text.
pub fn log_line(line: &str) -> Cow<'_, str> {
    let body = line.strip_suffix('\n').unwrap_or(line);
    let newline = if body.len() < line.len() { "\n" } else { "" };
    if !body.chars().any(needs_escape) {
        return Cow::Borrowed(line);
    }
    let mut out = String::with_capacity(line.len() + 16);
    let mut rest = body;
    while let Some(c) = rest.chars().next() {
        if c == '\u{1b}'
            && let Some(n) = sgr_len(rest)
        {
            out.push_str(&rest[..n]);
            rest = &rest[n..];
            continue;
        }
        out.push_str(&printable(&rest[..c.len_utf8()]));
        rest = &rest[c.len_utf8()..];
    }
    out.push_str(newline);
    Cow::Owned(out)
}

/// The length of a Select Graphic Rendition sequence at the start of `s`: ESC `[`, digits
/// and semicolons, `m`.
fn sgr_len(s: &str) -> Option<usize> {
    let params = s.strip_prefix("\u{1b}[")?;
    let n = params
        .bytes()
        .take_while(|b| b.is_ascii_digit() || *b == b';')
        .count();
    (params.as_bytes().get(n) == Some(&b'm')).then_some(2 + n + 1)
}

/// Displays a value through [`printable`]: `format!("{}", Printable(name))`.
pub struct Printable<'a>(pub &'a str);

impl fmt::Display for Printable<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&printable(self.0))
    }
}

/// At most `max` characters of `s` (printable), with how much was left out.
pub fn excerpt(s: &str, max: usize) -> String {
    let total = s.chars().count();
    if total <= max {
        return printable(s).into_owned();
    }
    let head: String = s.chars().take(max).collect();
    format!("{}… ({} more characters)", printable(&head), total - max)
}

/// Bytes in SI units: `999 B`, `12.3 kB`, `4.5 MB`, `1.2 GB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["kB", "MB", "GB", "TB"];
    if n < 1000 {
        return format!("{n} B");
    }
    let mut v = n as f64;
    let mut unit = "B";
    for u in UNITS {
        if v < 1000.0 {
            break;
        }
        v /= 1000.0;
        unit = u;
    }
    format!("{v:.1} {unit}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_and_plain_text_is_borrowed() {
        assert!(matches!(printable("Sent/Ärger 2024"), Cow::Borrowed(_)));
        assert_eq!(
            printable("a\r\nsync: perfect\u{1b}[2J\u{85}\u{2028}"),
            "a\\r\\nsync: perfect\\u{1b}[2J\\u{85}\\u{2028}"
        );
        assert_eq!(Printable("x\ty").to_string(), "x\\ty");
    }

    #[test]
    fn log_lines_keep_their_colours_and_newline_and_lose_everything_else() {
        let plain = "INFO mailbox done\n";
        assert!(matches!(log_line(plain), Cow::Borrowed(_)));
        let coloured = "\u{1b}[32m INFO\u{1b}[0m folder=evil\r\nsync: perfect\u{1b}[2J\n";
        assert_eq!(
            log_line(coloured),
            "\u{1b}[32m INFO\u{1b}[0m folder=evil\\r\\nsync: perfect\\u{1b}[2J\n"
        );
    }

    #[test]
    fn excerpts_are_capped_and_say_what_was_cut() {
        assert_eq!(excerpt("short", 10), "short");
        let long = "é".repeat(1000);
        let e = excerpt(&long, 20);
        assert!(e.starts_with(&"é".repeat(20)) && e.ends_with("(980 more characters)"));
        assert_eq!(excerpt("a\nb", 10), "a\\nb");
    }
}
